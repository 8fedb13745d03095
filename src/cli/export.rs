//! `vmbench export RUN_DIR --format ...`: a run for CI dashboards.

use crate::compare::{baseline, export};
use crate::output::text;
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// github-action-benchmark's customSmallerIsBetter JSON (customBiggerIsBetter with --bigger-is-better).
    GithubActionBenchmark,
    /// Bencher Metric Format JSON.
    Bencher,
    /// JUnit XML of threshold checks (needs --thresholds).
    Junit,
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A run directory or a baseline name.
    pub run: String,
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// github-action-benchmark: export the metrics where more is better.
    #[arg(long)]
    pub bigger_is_better: bool,
    /// junit: the thresholds file to check.
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
    /// Write here instead of standard output.
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[arg(long, default_value = "results", hide = true)]
    pub results_dir: PathBuf,
}

pub fn exec(args: ExportArgs) -> anyhow::Result<i32> {
    let text = match render(&args) {
        Ok(text) => text,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    };
    match &args.output {
        Some(path) => crate::guest::cache::write_atomic(path, text.as_bytes(), 0o644)?,
        None => print!("{text}"),
    }
    Ok(0)
}

fn render(args: &ExportArgs) -> anyhow::Result<String> {
    let gab = export::GithubActionBenchmark {
        bigger_is_better: args.bigger_is_better,
    };
    match args.format {
        ExportFormat::GithubActionBenchmark => text(&gab, &load(args)?),
        ExportFormat::Bencher => text(&export::Bencher, &load(args)?),
        ExportFormat::Junit => {
            let thresholds = args
                .thresholds
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("--format junit needs --thresholds FILE"))?;
            text(
                &export::Junit,
                super::check::rows(&args.run, thresholds, &args.results_dir)?.as_slice(),
            )
        }
    }
}

fn load(args: &ExportArgs) -> anyhow::Result<crate::rundir::Run> {
    crate::rundir::load(&baseline::resolve(&args.run, &args.results_dir)?)
}

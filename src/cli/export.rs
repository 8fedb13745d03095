//! `vmbench export RUN --format ...`: a run for CI dashboards and test
//! reports (see docs/ci.md).

use crate::compare::export::{self, direction_words, gab_tool, GithubActionBenchmark};
use crate::compare::junit::{JunitChecks, RunTime};
use crate::metric::Direction;
use crate::output::Render;
use anyhow::Context;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// github-action-benchmark's customSmallerIsBetter / customBiggerIsBetter JSON.
    GithubActionBenchmark,
    /// Bencher Metric Format JSON (value, lower_value, upper_value).
    Bencher,
    /// JUnit XML of threshold checks (needs --thresholds).
    Junit,
}

/// github-action-benchmark's two tools, one per file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum GabDirection {
    /// Times, sizes, latencies: `tool: customSmallerIsBetter`.
    Smaller,
    /// Throughput: `tool: customBiggerIsBetter`.
    Bigger,
}

impl GabDirection {
    fn metric(self) -> Direction {
        match self {
            GabDirection::Smaller => Direction::LowerIsBetter,
            GabDirection::Bigger => Direction::HigherIsBetter,
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// A run directory or a baseline name.
    pub run: String,
    /// The format to write.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// github-action-benchmark: export only this direction, to standard output or --output FILE.
    /// Without it, --output BASE writes BASE-smaller.json and BASE-bigger.json (BASE may end in
    /// .json); a direction the run has no metrics of gets no file, since the action rejects an
    /// empty list.
    #[arg(long, value_enum)]
    pub direction: Option<GabDirection>,
    /// junit: the thresholds file to check.
    #[arg(long)]
    pub thresholds: Option<PathBuf>,
    /// Write here instead of standard output (for github-action-benchmark without --direction: the base of the two file names).
    #[arg(long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub results: super::ResultsDir,
}

pub fn exec(args: ExportArgs) -> anyhow::Result<i32> {
    match (args.format, args.direction) {
        (ExportFormat::GithubActionBenchmark, None) => both_directions(&args),
        _ => match render(&args) {
            Ok(bytes) => {
                super::write_or_print(args.output.as_deref(), &bytes)?;
                Ok(0)
            }
            Err(e) => {
                eprintln!("error: {e:#}");
                Ok(super::EXIT_INPUT)
            }
        },
    }
}

fn render(args: &ExportArgs) -> anyhow::Result<Vec<u8>> {
    match args.format {
        ExportFormat::GithubActionBenchmark => {
            let direction = args.direction.unwrap_or(GabDirection::Smaller).metric();
            GithubActionBenchmark { direction }.render(&load(args)?)
        }
        ExportFormat::Bencher => export::Bencher.render(&load(args)?),
        ExportFormat::Junit => {
            let thresholds = args
                .thresholds
                .as_ref()
                .ok_or_else(|| anyhow::anyhow!("--format junit needs --thresholds FILE"))?;
            let checked = super::check::load(&args.run, thresholds, &args.results.results_dir)?;
            JunitChecks {
                when: RunTime::of(&checked.record),
            }
            .render(&checked.rows)
        }
    }
}

fn load(args: &ExportArgs) -> anyhow::Result<crate::rundir::Run> {
    crate::rundir::load(&crate::compare::baseline::resolve(&args.run, &args.results.results_dir)?)
}

/// `BASE-smaller.json` or `BASE-bigger.json`; a `.json` ending of BASE is
/// dropped first, so `--output boot.json` gives `boot-smaller.json`.
pub fn direction_path(base: &Path, direction: GabDirection) -> PathBuf {
    let stem = if base.extension().is_some_and(|e| e == "json") {
        base.with_extension("")
    } else {
        base.to_path_buf()
    };
    let mut name = stem.into_os_string();
    name.push(match direction {
        GabDirection::Smaller => "-smaller.json",
        GabDirection::Bigger => "-bigger.json",
    });
    PathBuf::from(name)
}

/// Both github-action-benchmark files; prints the path of each written.
fn both_directions(args: &ExportArgs) -> anyhow::Result<i32> {
    let Some(base) = &args.output else {
        eprintln!("error: github-action-benchmark writes one file per direction: give --output BASE, or --direction smaller|bigger");
        return Ok(super::EXIT_INPUT);
    };
    let run = match load(args) {
        Ok(run) => run,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    };
    let mut written = 0;
    for direction in [GabDirection::Smaller, GabDirection::Bigger] {
        let path = direction_path(base, direction);
        let metric = direction.metric();
        if export::github_action_benchmark(&run, metric).is_empty() {
            // A file left by an earlier export would pass for this run's.
            if path.exists() {
                std::fs::remove_file(&path).with_context(|| format!("removing the stale {}", path.display()))?;
            }
            eprintln!(
                "note: no {} metrics in this run, so no {} (github-action-benchmark rejects an empty list)",
                direction_words(metric),
                path.display()
            );
            continue;
        }
        let bytes = GithubActionBenchmark { direction: metric }.render(&run)?;
        crate::guest::cache::write_atomic(&path, &bytes, 0o644)?;
        println!("{}\t{}", path.display(), gab_tool(metric));
        written += 1;
    }
    if written == 0 {
        eprintln!("error: the run has no metrics to export");
        return Ok(super::EXIT_INPUT);
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn direction_files_are_named_after_the_base() {
        let p = |base: &str, d| direction_path(Path::new(base), d).display().to_string();
        assert_eq!(p("out/boot.json", GabDirection::Smaller), "out/boot-smaller.json");
        assert_eq!(p("out/boot", GabDirection::Bigger), "out/boot-bigger.json");
        assert_eq!(p("boot.v2", GabDirection::Bigger), "boot.v2-bigger.json");
    }
}

//! `vmbench compare BASE NEW`: did anything regress?

use crate::compare::format::{self, CompareFormat};
use crate::compare::{self, baseline, Comparison, Options};
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Md,
    Json,
}

#[derive(Debug, clap::Args)]
pub struct CompareArgs {
    /// The reference: a run directory or a baseline name.
    pub base: String,
    /// The run to judge: a run directory or a baseline name.
    pub new: String,
    /// Changes of a median smaller than this many percent are noise.
    #[arg(long, default_value_t = 5.0)]
    pub threshold: f64,
    /// Significance level of the permutation test on the raw samples.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Compare even when accel, CPU model, kernel or scenario differ.
    #[arg(long)]
    pub allow_env_change: bool,
    /// Where runs and baselines live.
    #[arg(long, default_value = "results", hide = true)]
    pub results_dir: PathBuf,
}

pub fn exec(args: CompareArgs) -> anyhow::Result<i32> {
    if !(args.threshold >= 0.0 && args.alpha > 0.0 && args.alpha < 1.0) {
        eprintln!("error: --threshold must be ≥ 0 and --alpha between 0 and 1");
        return Ok(super::EXIT_INPUT);
    }
    let options = Options {
        threshold_pct: args.threshold,
        alpha: args.alpha,
        ..Options::default()
    };
    let result = (|| {
        let base = baseline::resolve(&args.base, &args.results_dir)?;
        let new = baseline::resolve(&args.new, &args.results_dir)?;
        let (b, n) = (crate::rundir::load(&base)?, crate::rundir::load(&new)?);
        Ok::<_, anyhow::Error>(compare::compare(&b, &n, &args.base, &args.new, options))
    })();
    let comparison = match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    };
    Ok(report(&comparison, args.format, args.allow_env_change))
}

/// Prints `c`, appends it to the GitHub step summary, and returns the exit
/// status: 0 no regression, 1 a regression, 2 an environment change that was
/// not allowed.
pub fn report(c: &Comparison, format: Format, allow_env_change: bool) -> i32 {
    let format = match format {
        Format::Table => CompareFormat::Table,
        Format::Md => CompareFormat::Markdown,
        Format::Json => CompareFormat::Json,
    };
    match crate::output::text(&format, c) {
        Ok(text) => println!("{text}"),
        Err(e) => eprintln!("error: rendering the comparison: {e:#}"),
    }
    super::step_summary(&format::markdown(c));
    if !c.environment_changes.is_empty() && !allow_env_change {
        eprintln!(
            "error: the runs' environments differ ({}); their numbers are not comparable. Pass --allow-env-change to compare anyway",
            c.environment_changes.join("; ")
        );
        return super::EXIT_INPUT;
    }
    if c.regressions() > 0 {
        super::EXIT_REGRESSION
    } else {
        0
    }
}

/// Compares a fresh run with baseline `name` (for `run --baseline`).
pub fn against_baseline(run_dir: &Path, name: &str, results_dir: &Path) -> anyhow::Result<i32> {
    let base = baseline::resolve(name, results_dir)?;
    let (b, n) = (crate::rundir::load(&base)?, crate::rundir::load(run_dir)?);
    let c = compare::compare(&b, &n, name, &run_dir.display().to_string(), Options::default());
    Ok(report(&c, Format::Table, false))
}

//! `vmbench compare BASE NEW`: did anything regress?

use crate::compare::format::{self, CompareFormat};
use crate::compare::html::HtmlComparison;
use crate::compare::junit::{JunitComparison, RunTime};
use crate::compare::{self, baseline, Comparison, Options};
use crate::output::Render;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A table for people and CI logs (verdicts coloured on a terminal).
    Table,
    /// GitHub-flavoured Markdown.
    Md,
    /// The whole comparison as JSON.
    Json,
    /// JUnit XML: a failure per regression, an error for a refused environment change.
    Junit,
    /// One self-contained HTML page: per metric both runs' samples and the change with its interval.
    Html,
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
    /// Also write the comparison as JUnit XML to FILE (for GitLab's or Jenkins' test reports).
    #[arg(long, value_name = "FILE")]
    pub junit: Option<PathBuf>,
    /// Compare even when accel, CPU model, kernel or scenario differ.
    #[arg(long)]
    pub allow_env_change: bool,
    #[command(flatten)]
    pub results: super::ResultsDir,
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
    let results_dir = &args.results.results_dir;
    let result = (|| {
        let base = baseline::resolve(&args.base, results_dir)?;
        let new = baseline::resolve(&args.new, results_dir)?;
        let (b, n) = (crate::rundir::load(&base)?, crate::rundir::load(&new)?);
        let c = compare::compare(&b, &n, &args.base, &args.new, options);
        let page = match args.format {
            Format::Html => Some(crate::output::text(&HtmlComparison { base: &b, new: &n }, &c)?),
            _ => None,
        };
        Ok::<_, anyhow::Error>((c, RunTime::of(&n.record), page))
    })();
    let (comparison, when, page) = match result {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    };
    let how = How {
        format: args.format,
        allow_env_change: args.allow_env_change,
        junit: args.junit.as_deref(),
        human: super::Human::Stdout,
        page,
    };
    report(&comparison, when, &how)
}

/// How to show a comparison and what to accept.
pub struct How<'a> {
    pub format: Format,
    pub allow_env_change: bool,
    /// A file to write JUnit XML to as well.
    pub junit: Option<&'a Path>,
    /// Where the table goes.
    pub human: super::Human,
    /// The HTML page, already rendered (it needs the runs' samples).
    pub page: Option<String>,
}

/// Prints `c`, writes it as JUnit when asked, appends it to the GitHub step
/// summary, and returns the exit status: 0 no regression, 1 a regression,
/// 2 an environment change that was not allowed.
pub fn report(c: &Comparison, when: RunTime, how: &How<'_>) -> anyhow::Result<i32> {
    let junit = JunitComparison {
        when,
        allow_env_change: how.allow_env_change,
    };
    let shown = match how.format {
        Format::Table => crate::output::text(&CompareFormat::Table, c).map(|t| how.human.paint().verdicts(&t)),
        Format::Md => crate::output::text(&CompareFormat::Markdown, c),
        Format::Json => crate::output::text(&CompareFormat::Json, c),
        Format::Junit => crate::output::text(&junit, c),
        Format::Html => how.page.clone().ok_or_else(|| anyhow::anyhow!("no page was rendered")),
    };
    match shown {
        Ok(text) if matches!(how.format, Format::Junit | Format::Html) => how.human.print(&text),
        Ok(text) => how.human.print(&format!("{text}\n")),
        Err(e) => eprintln!("error: rendering the comparison: {e:#}"),
    }
    if let Some(path) = how.junit {
        super::write_or_print(Some(path), &junit.render(c)?)?;
    }
    super::step_summary(&format::markdown(c));
    if !c.environment_changes.is_empty() && !how.allow_env_change {
        eprintln!(
            "error: the runs' environments differ ({}); their numbers are not comparable. Pass --allow-env-change to compare anyway",
            c.environment_changes.join("; ")
        );
        return Ok(super::EXIT_INPUT);
    }
    Ok(if c.regressions() > 0 { super::EXIT_REGRESSION } else { 0 })
}

/// Compares a fresh run with baseline `name` (for `run --baseline`), its
/// table going to `human`.
pub fn against_baseline(run_dir: &Path, name: &str, results_dir: &Path, human: super::Human) -> anyhow::Result<i32> {
    let base = baseline::resolve(name, results_dir)?;
    let (b, n) = (crate::rundir::load(&base)?, crate::rundir::load(run_dir)?);
    let c = compare::compare(&b, &n, name, &run_dir.display().to_string(), Options::default());
    let how = How {
        format: Format::Table,
        allow_env_change: false,
        junit: None,
        human,
        page: None,
    };
    report(&c, RunTime::of(&n.record), &how)
}

//! `vmbench check RUN_DIR --thresholds FILE`: pass/fail against fixed bounds.

use crate::compare::{baseline, thresholds};
use crate::report::table::{number, render};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// A run directory or a baseline name.
    pub run: String,
    /// The thresholds file (TOML; see scenarios/thresholds/boot.toml).
    #[arg(long)]
    pub thresholds: PathBuf,
    #[arg(long, default_value = "results", hide = true)]
    pub results_dir: PathBuf,
}

/// Loads a run and its threshold checks; input problems are errors.
pub fn rows(run: &str, thresholds_file: &std::path::Path, results_dir: &std::path::Path) -> anyhow::Result<Vec<thresholds::CheckRow>> {
    let dir = baseline::resolve(run, results_dir)?;
    let run = crate::rundir::load(&dir)?;
    let thresholds = thresholds::load(thresholds_file)?;
    let targets: Vec<String> = run.record.targets.iter().map(|t| t.name.clone()).collect();
    Ok(thresholds::check(&thresholds, &targets, &run.samples))
}

pub fn exec(args: CheckArgs) -> anyhow::Result<i32> {
    let rows = match rows(&args.run, &args.thresholds, &args.results_dir) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    };
    let bound = |b: Option<f64>| b.map(number).unwrap_or_else(|| "-".into());
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.target.clone(),
                format!("{} {} {}", r.workload, r.metric, r.statistic),
                r.value.map(number).unwrap_or_else(|| "missing".into()),
                bound(r.min),
                bound(r.max),
                if r.pass { "pass".into() } else { "FAIL".into() },
            ]
        })
        .collect();
    let table = render(&["target", "check", "value", "min", "max", "result"], &cells);
    let failed = rows.iter().filter(|r| !r.pass).count();
    println!("{table}\n{failed} of {} check(s) failed", rows.len());
    super::step_summary(&format!(
        "### vmbench check\n\n```\n{table}```\n\n{failed} of {} check(s) failed\n",
        rows.len()
    ));
    Ok(if failed > 0 { super::EXIT_REGRESSION } else { 0 })
}

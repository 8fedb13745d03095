//! `vmbench check RUN_DIR --thresholds FILE`: pass/fail against fixed bounds.

use crate::compare::{baseline, thresholds};
use crate::report::table::{number, render};
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// A run directory or a baseline name.
    pub run: String,
    /// The thresholds file (TOML; see scenarios/thresholds/boot.toml).
    #[arg(long)]
    pub thresholds: PathBuf,
    /// json: `{"run", "failed", "checks": [{target, workload, metric, statistic, value, min, max, pass}]}`.
    #[arg(long, value_enum, default_value_t = super::TextOrJson::Text)]
    pub format: super::TextOrJson,
    #[command(flatten)]
    pub results: super::ResultsDir,
}

/// A run's threshold checks and the run they judged.
pub struct Checked {
    pub dir: PathBuf,
    pub record: crate::rundir::RunRecord,
    pub rows: Vec<thresholds::CheckRow>,
}

/// Loads a run and its threshold checks; input problems are errors.
pub fn load(run: &str, thresholds_file: &Path, results_dir: &Path) -> anyhow::Result<Checked> {
    let dir = baseline::resolve(run, results_dir)?;
    let run = crate::rundir::load(&dir)?;
    let thresholds = thresholds::load(thresholds_file)?;
    let targets: Vec<String> = run.record.targets.iter().map(|t| t.name.clone()).collect();
    let rows = thresholds::check(&thresholds, &targets, &run.samples);
    Ok(Checked {
        dir,
        record: run.record,
        rows,
    })
}

pub fn exec(args: CheckArgs) -> anyhow::Result<i32> {
    let checked = match load(&args.run, &args.thresholds, &args.results.results_dir) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    };
    let rows = &checked.rows;
    let failed = rows.iter().filter(|r| !r.pass).count();
    let table = table(rows, super::color::Paint::plain());
    match args.format {
        super::TextOrJson::Text => {
            let paint = super::color::Paint::stdout();
            println!("{}\n{failed} of {} check(s) failed", self::table(rows, paint), rows.len());
        }
        super::TextOrJson::Json => {
            super::print_json(&serde_json::json!({
                "run": checked.dir,
                "failed": failed,
                "checks": rows,
            }))?;
        }
    }
    super::step_summary(&format!(
        "### vmbench check\n\n```\n{table}```\n\n{failed} of {} check(s) failed\n",
        rows.len()
    ));
    Ok(if failed > 0 { super::EXIT_REGRESSION } else { 0 })
}

/// The checks as a text table, `FAIL` painted when `paint` says so.
fn table(rows: &[thresholds::CheckRow], paint: super::color::Paint) -> String {
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
    let text = render(&["target", "check", "value", "min", "max", "result"], &cells);
    paint.verdicts(&text)
}

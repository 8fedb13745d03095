//! `vmbench history DIR... --metric NAME`: a metric across runs.

use crate::report::table::{number, render};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct HistoryArgs {
    /// Run directories, or directories holding runs (such as results/).
    #[arg(required = true)]
    pub dirs: Vec<PathBuf>,
    /// The metric to follow, e.g. ready_ms.
    #[arg(long)]
    pub metric: String,
    /// Only this workload (when several report the metric).
    #[arg(long)]
    pub workload: Option<String>,
    /// Where the SVG and PNG charts go.
    #[arg(long, default_value = "results/history")]
    pub out: PathBuf,
    /// json: `{"metric", "unit", "targets", "runs": [{"dir", "started_at", "tag", "values": {TARGET: {"median", "low", "high", "n"} or null}}], "charts"}`.
    #[arg(long, value_enum, default_value_t = super::TextOrJson::Text)]
    pub format: super::TextOrJson,
}

pub fn exec(args: HistoryArgs) -> anyhow::Result<i32> {
    if crate::metric::info(&args.metric).is_none() {
        eprintln!(
            "error: unknown metric `{}` (metric names end in their unit, e.g. ready_ms)",
            args.metric
        );
        return Ok(super::EXIT_INPUT);
    }
    let history =
        match crate::history::run_dirs(&args.dirs).and_then(|d| crate::history::collect(&d, &args.metric, args.workload.as_deref())) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("error: {e:#}");
                return Ok(super::EXIT_INPUT);
            }
        };
    let text = args.format == super::TextOrJson::Text;
    if text {
        println!("{} ({})\n", history.metric, history.unit);
        print!("{}", table(&history));
    }
    let charts = crate::charts::history::write(&history, &args.out, &format!("history-{}", args.metric))?;
    if text {
        for path in &charts {
            println!("chart: {}", path.display());
        }
    } else {
        super::print_json(&json(&history, &charts))?;
    }
    Ok(0)
}

/// One row per run: when, which, and each target's median with its interval.
fn table(history: &crate::history::History) -> String {
    let mut header = vec!["started".to_string(), "run".to_string()];
    header.extend(history.targets.iter().map(|t| format!("{t} median [95% CI]")));
    let rows: Vec<Vec<String>> = history
        .runs
        .iter()
        .map(|r| {
            let mut row = vec![r.started_at.chars().take(19).collect(), r.tag.clone()];
            row.extend(r.values.iter().map(|v| match v {
                Some(p) => format!("{} [{}, {}]", number(p.median), number(p.low), number(p.high)),
                None => "-".to_string(),
            }));
            row
        })
        .collect();
    let header: Vec<&str> = header.iter().map(String::as_str).collect();
    render(&header, &rows)
}

/// The history for scripts: each run's values keyed by target.
fn json(history: &crate::history::History, charts: &[PathBuf]) -> serde_json::Value {
    let runs: Vec<serde_json::Value> = history
        .runs
        .iter()
        .map(|r| {
            let values: serde_json::Map<String, serde_json::Value> = history
                .targets
                .iter()
                .zip(&r.values)
                .map(|(target, v)| {
                    let point = v
                        .as_ref()
                        .map(|p| serde_json::json!({"median": p.median, "low": p.low, "high": p.high, "n": p.n}));
                    (target.clone(), point.unwrap_or(serde_json::Value::Null))
                })
                .collect();
            serde_json::json!({"dir": r.dir, "started_at": r.started_at, "tag": r.tag, "values": values})
        })
        .collect();
    serde_json::json!({
        "metric": history.metric,
        "unit": history.unit,
        "targets": history.targets,
        "runs": runs,
        "charts": charts,
    })
}

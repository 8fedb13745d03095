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
    println!("{} ({})\n", history.metric, history.unit);
    print!("{}", render(&header, &rows));
    let stem = format!("history-{}", args.metric);
    for path in crate::charts::history::write(&history, &args.out, &stem)? {
        println!("chart: {}", path.display());
    }
    Ok(0)
}

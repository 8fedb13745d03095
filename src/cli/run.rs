//! `vmbench run SCENARIO`

use crate::plan::Overrides;
use crate::rundir::Sample;
use crate::runner::{self, InputError, Observer, RunHandle, RunOptions};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The scenario: a TOML file, or when no such file exists the name of a built-in one
    /// (boot, boot-q35, firmware, full-os, kernels, mysql, nginx, overhead, overhead-quick, runtimes, spectrum).
    pub scenario: PathBuf,
    /// Write the run into this directory (default: results/<scenario>-<UTC time>/).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Measured repetitions per target, instead of the scenario's.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub reps: Option<u32>,
    /// Warmup repetitions per target, instead of the scenario's.
    #[arg(long)]
    pub warmup: Option<u32>,
    /// Run only this target (repeatable).
    #[arg(long = "only", value_name = "TARGET")]
    pub only: Vec<String>,
    /// The seed of the order of targets within each round (default: a fresh
    /// one, recorded in run.json as `order_seed`; pass it to repeat an order).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Free text recorded in run.json (a build number, a description).
    #[arg(long)]
    pub label: Option<String>,
    /// Store this run as baseline NAME (results/baselines/NAME).
    #[arg(long, value_name = "NAME")]
    pub save_baseline: Option<String>,
    /// Compare this run with baseline NAME at the end; exit 1 on a regression.
    #[arg(long, value_name = "NAME")]
    pub baseline: Option<String>,
    /// Print one JSON object on standard output at the end (`run_dir`, `status`, `exit_status`, ...);
    /// the tables go to standard error instead. (With GITHUB_OUTPUT set, `run_dir=DIR` is appended to it either way.)
    #[arg(long)]
    pub json: bool,
    /// At the end, print every metric of every target (the long table) instead of the headline.
    #[arg(long, short = 'v')]
    pub all_metrics: bool,
    #[command(flatten)]
    pub results: super::ResultsDir,
}

pub fn exec(args: RunArgs) -> anyhow::Result<i32> {
    let scenario = match crate::scenario::shipped::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}", crate::redact::text(&e.to_string()));
            return Ok(super::EXIT_INPUT);
        }
    };
    for name in args.save_baseline.iter().chain(&args.baseline) {
        if let Err(e) = crate::compare::baseline::check_name(name) {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    }
    if let Some(name) = &args.baseline {
        if let Err(e) = crate::compare::baseline::resolve(name, &args.results.results_dir) {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    }
    let after = After {
        save_baseline: args.save_baseline,
        baseline: args.baseline,
        results_dir: args.results.results_dir.clone(),
        human: if args.json { super::Human::Stderr } else { super::Human::Stdout },
        all_metrics: args.all_metrics,
    };
    let opts = RunOptions {
        overrides: Overrides {
            repetitions: args.reps,
            warmup: args.warmup,
            only: args.only,
            order_seed: args.seed,
        },
        out: args.out,
        results_root: args.results.results_dir,
        label: args.label,
    };
    let runtime = super::runtime()?;
    let code = runtime.block_on(run(scenario, opts, after));
    // A build still going after an interruption (a kernel's `make` takes
    // minutes) is not waited for: it is killed when vmbench exits.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    code
}

/// What to do with a finished run: save it as a baseline, compare it with
/// one; and where its tables go (standard error when standard output
/// carries JSON).
struct After {
    save_baseline: Option<String>,
    baseline: Option<String>,
    results_dir: PathBuf,
    human: super::Human,
    /// The long table of every metric instead of the headline.
    all_metrics: bool,
}

async fn run(scenario: crate::scenario::Scenario, opts: RunOptions, after: After) -> anyhow::Result<i32> {
    let run_id = runner::new_run_id();
    let handle = Arc::new(RunHandle::locked(run_id.clone()).unwrap_or_else(|e| {
        eprintln!("warning: no lock for this run ({e:#}); should vmbench be killed, `vmbench clean` removes what it leaves");
        RunHandle::new(run_id)
    }));
    // A run that died without its own cleanup (kill -9) is swept now, before
    // anything of this run starts; a live run's lock is left alone.
    for said in runner::sweep_dead_runs(&runner::lock::default_dir()).await {
        eprintln!("{said}");
    }
    let status = run_locked(scenario, opts, after, &handle).await;
    handle.release();
    status
}

async fn run_locked(scenario: crate::scenario::Scenario, opts: RunOptions, after: After, handle: &Arc<RunHandle>) -> anyhow::Result<i32> {
    let progress = Arc::new(Progress::new());
    let mut task = {
        let (scenario, handle, progress) = (scenario.clone(), handle.clone(), progress.clone());
        tokio::spawn(async move { runner::execute(&scenario, &opts, handle, progress.as_ref()).await })
    };
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let (signal_name, code) = tokio::select! {
        joined = &mut task => {
            progress.bar.finish_and_clear();
            return finish(handle, joined, &after).await;
        }
        _ = sigint.recv() => ("SIGINT", 130),
        _ = sigterm.recv() => ("SIGTERM", 143),
    };
    // Dropping the run task kills its QEMU children; containers and the
    // run record are swept here.
    task.abort();
    let _ = task.await;
    progress.bar.finish_and_clear();
    let note = format!("interrupted by {signal_name}");
    swept(handle, &note).await;
    eprintln!("{note}; finished samples are kept");
    if let Some(dir) = handle.dir.lock().expect("run handle lock").clone() {
        eprintln!("run directory: {}", dir.display());
        super::github_output("run_dir", &dir.display().to_string());
        if after.human == super::Human::Stderr {
            super::print_json(&serde_json::json!({
                "run_dir": dir,
                "status": "interrupted",
                "signal": signal_name,
                "exit_status": code,
            }))?;
        }
    }
    Ok(code)
}

/// Sweeps after an interruption or a crash of the run task; what finished
/// still gets its reports, marked incomplete.
async fn swept(handle: &RunHandle, note: &str) {
    match runner::sweep(handle, note).await {
        Ok(Some(dir)) => {
            let _ = crate::publish::write_all(&dir, &[], std::path::Path::new("report-templates"));
        }
        Ok(None) => {}
        Err(e) => eprintln!("warning: cleaning up after the interruption: {e:#}"),
    }
}

async fn finish(
    handle: &RunHandle,
    joined: Result<anyhow::Result<runner::RunOutcome>, tokio::task::JoinError>,
    after: &After,
) -> anyhow::Result<i32> {
    match joined {
        Ok(Ok(outcome)) => finished(&outcome, after),
        Ok(Err(e)) if e.downcast_ref::<InputError>().is_some() => {
            // A preflight error may quote an engine address: a CI log is a result too.
            eprintln!("error: {}", crate::redact::text(&format!("{e:#}")));
            Ok(super::EXIT_INPUT)
        }
        Ok(Err(e)) => {
            swept(handle, &format!("failed: {e:#}")).await;
            Err(e)
        }
        Err(join_error) => {
            let note = if join_error.is_panic() {
                "vmbench panicked"
            } else {
                "the run task was cancelled"
            };
            swept(handle, note).await;
            anyhow::bail!("{note}; containers of the run were removed and finished samples kept")
        }
    }
}

/// Reports a run that ran to its end, writes its report files, saves or
/// compares it as asked, and returns its exit status.
fn finished(outcome: &runner::RunOutcome, after: &After) -> anyhow::Result<i32> {
    let human = after.human;
    let summary = if after.all_metrics {
        crate::report::table::summary(&outcome.record, &outcome.samples)
    } else {
        crate::report::headline::headline(&outcome.record, &outcome.samples)
    };
    human.print(&summary);
    let reports = match crate::publish::write_all(&outcome.dir, &[], std::path::Path::new("report-templates")) {
        Ok(files) => {
            human.print(&format!("\nrun directory: {} ({})\n", outcome.dir.display(), files.join(", ")));
            files
        }
        Err(e) => {
            human.print(&format!("\nrun directory: {}\n", outcome.dir.display()));
            eprintln!("warning: writing the reports: {e:#}");
            Vec::new()
        }
    };
    super::github_output("run_dir", &outcome.dir.display().to_string());
    super::step_summary(&format!(
        "### vmbench run `{}`\n\n```\n{summary}```\n",
        outcome.record.scenario.name
    ));
    let mut status = if outcome.record.failed_samples > 0 {
        super::EXIT_FAILED_SAMPLES
    } else {
        0
    };
    let mut saved = None;
    if let Some(name) = &after.save_baseline {
        let path = crate::compare::baseline::save(&outcome.dir, name, &after.results_dir)?;
        human.print(&format!("saved as baseline `{name}`: {}\n", path.display()));
        saved = Some(path);
    }
    if let Some(name) = &after.baseline {
        human.print("\n");
        status = status.max(super::compare::against_baseline(&outcome.dir, name, &after.results_dir, human)?);
    }
    if human == super::Human::Stderr {
        let ended = Ended {
            reports,
            saved_baseline: saved,
            compared_with_baseline: after.baseline.clone(),
            exit_status: status,
        };
        super::print_json(&run_json(outcome, &ended))?;
    }
    Ok(status)
}

/// What happened after the run itself, for its JSON.
struct Ended {
    reports: Vec<String>,
    saved_baseline: Option<PathBuf>,
    compared_with_baseline: Option<String>,
    exit_status: i32,
}

/// `run --json`'s object: where the run is and how it ended.
fn run_json(outcome: &runner::RunOutcome, ended: &Ended) -> serde_json::Value {
    let r = &outcome.record;
    serde_json::json!({
        "run_dir": outcome.dir,
        "run_id": r.run_id,
        "scenario": r.scenario.name,
        "status": r.status,
        "samples": r.samples,
        "failed_samples": r.failed_samples,
        "reports": ended.reports,
        "saved_baseline": ended.saved_baseline,
        "compared_with_baseline": ended.compared_with_baseline,
        "exit_status": ended.exit_status,
    })
}

/// A progress bar on stderr (hidden when stderr is not a terminal); failed
/// trials are printed as they happen either way.
struct Progress {
    bar: ProgressBar,
    /// Whether stderr is a terminal that shows the bar.
    interactive: bool,
}

impl Progress {
    fn new() -> Self {
        let bar = ProgressBar::hidden();
        bar.set_style(ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} (eta {eta}) {msg}").expect("static template"));
        let interactive = std::io::IsTerminal::is_terminal(&std::io::stderr());
        Progress { bar, interactive }
    }
}

impl Progress {
    /// `[12/48] native boot rep 3: ready_ms 0.71` for a log.
    fn done_line(&self, sample: &Sample) -> String {
        let phase = if sample.warmup { "warmup" } else { "rep" };
        let metric = crate::metric::headline(sample.workload);
        let value = sample
            .metrics
            .get(metric)
            .map(|v| format!(": {metric} {}", crate::report::table::number(*v)))
            .unwrap_or_default();
        format!(
            "[{}/{}] {} {} {phase} {}{value}",
            self.bar.position(),
            self.bar.length().unwrap_or(0),
            sample.target,
            sample.workload,
            sample.rep
        )
    }
}

impl Observer for Progress {
    fn prepared(&self, total: usize) {
        self.bar.set_length(total as u64);
        if self.interactive {
            self.bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
        }
    }

    fn trial_started(&self, target: &str, workload: crate::scenario::WorkloadKind, rep: u32, warmup: bool) {
        let phase = if warmup { "warmup" } else { "rep" };
        self.bar.set_message(format!("{target} {workload} {phase} {rep}"));
    }

    fn trial_skipped(&self) {
        self.bar.inc(1);
    }

    fn trial_finished(&self, sample: &Sample) {
        self.bar.inc(1);
        let line = match (&sample.error, &sample.not_applicable) {
            (Some(error), _) => {
                let first = error.lines().next().unwrap_or_default();
                Some(format!("failed: {} {} rep {}: {first}", sample.target, sample.workload, sample.rep))
            }
            (None, Some(reason)) => Some(format!("not applicable: {} {}: {reason}", sample.target, sample.workload)),
            // A CI log has no progress bar: one line per trial instead of
            // silence for the length of the run.
            (None, None) if !self.interactive => Some(self.done_line(sample)),
            (None, None) => None,
        };
        if let Some(line) = line {
            if self.interactive {
                self.bar.println(line);
            } else {
                eprintln!("{line}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_says_where_the_run_is_and_how_it_ended() {
        let run = crate::compare::tests::run(1.0, 3);
        let outcome = runner::RunOutcome {
            dir: PathBuf::from("results/s-20261125T150102Z"),
            record: run.record,
            samples: run.samples,
        };
        let ended = Ended {
            reports: vec!["summary.json".into()],
            saved_baseline: Some(PathBuf::from("results/baselines/main")),
            compared_with_baseline: None,
            exit_status: 3,
        };
        let json = run_json(&outcome, &ended);
        assert_eq!(json["run_dir"], "results/s-20261125T150102Z");
        assert_eq!(json["status"], "complete");
        assert_eq!(json["exit_status"], 3);
        assert_eq!(json["saved_baseline"], "results/baselines/main");
        assert!(json["compared_with_baseline"].is_null());
        assert_eq!(json["reports"], serde_json::json!(["summary.json"]));
    }
}

#[cfg(test)]
mod help_tests {
    use clap::CommandFactory;

    #[test]
    fn the_help_of_run_names_every_built_in_scenario() {
        let cli = crate::cli::Cli::command();
        let run = cli.find_subcommand("run").unwrap();
        let arg = run.get_arguments().find(|a| a.get_id() == "scenario").unwrap();
        let help = arg.get_help().unwrap().to_string();
        for name in crate::scenario::shipped::names() {
            assert!(help.contains(name), "{name} missing from: {help}");
        }
    }
}

//! The command line: one file per subcommand. Each returns the process exit
//! status; the statuses are listed in `--help` ([`EXIT_STATUSES`]).

mod check;
mod clean;
mod compare;
mod doctor;
mod export;
mod history;
mod report;
mod run;
mod validate;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vmbench",
    version,
    about = "What does a VM cost compared with a container, and both compared with the bare host?",
    after_help = EXIT_STATUSES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: build guest artifacts, launch every target, record samples.
    Run(run::RunArgs),
    /// Check scenario files without launching anything.
    Validate(validate::ValidateArgs),
    /// Report what this host can run (QEMU, KVM, Docker, kernel, agent) and how to fix what is missing.
    Doctor(doctor::DoctorArgs),
    /// Remove containers left behind by crashed runs.
    Clean(clean::CleanArgs),
    /// Compare two runs (directories or baseline names): exit 1 if anything regressed.
    Compare(compare::CompareArgs),
    /// Check a run against a thresholds file: exit 1 if any check fails.
    Check(check::CheckArgs),
    /// Write a run in a CI tool's format (github-action-benchmark, Bencher, JUnit).
    Export(export::ExportArgs),
    /// Follow one metric across runs: a table and SVG/PNG charts with confidence bands.
    History(history::HistoryArgs),
    /// Re-render a run's reports (summary.json, samples.csv, report.md) from its files.
    Report(report::ReportArgs),
}

/// A regression (`compare`, `run --baseline`) or a failed threshold check.
pub const EXIT_REGRESSION: i32 = 1;
/// Exit status for bad input: the scenario, the flags or a preflight check.
pub const EXIT_INPUT: i32 = 2;
/// A run that finished and kept everything, but some samples failed.
pub const EXIT_FAILED_SAMPLES: i32 = 3;
/// vmbench itself failed (a bug, a panic, a file it could not write).
pub const EXIT_INTERNAL: i32 = 4;

/// What `--help` says about exit statuses.
pub const EXIT_STATUSES: &str = "Exit status: 0 fine; 1 a regression or a failed check; 2 bad input (scenario, flags, \
preflight: nothing ran); 3 the run finished but some samples failed; 4 an internal error; 130/143 interrupted by \
SIGINT/SIGTERM (finished samples kept).";

/// Parses the command line and runs it; returns the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::exec(args),
        Command::Validate(args) => validate::exec(args),
        Command::Doctor(args) => doctor::exec(args),
        Command::Clean(args) => clean::exec(args),
        Command::Compare(args) => compare::exec(args),
        Command::Check(args) => check::exec(args),
        Command::Export(args) => export::exec(args),
        Command::Report(args) => report::exec(args),
        Command::History(args) => history::exec(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", crate::redact::text(&format!("{err:#}")));
            EXIT_INTERNAL
        }
    }
}

/// The single-threaded runtime every subcommand uses: measurements are not
/// perturbed by idle worker threads, and QEMU's PR_SET_PDEATHSIG is tied to a
/// thread that lives as long as vmbench.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

/// Appends Markdown to the GitHub Actions job summary when
/// `GITHUB_STEP_SUMMARY` names a file; a failure to write it is reported but
/// changes nothing else.
pub fn step_summary(markdown: &str) {
    let Some(path) = std::env::var_os("GITHUB_STEP_SUMMARY").filter(|p| !p.is_empty()) else {
        return;
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, format!("{markdown}\n").as_bytes()));
    if let Err(e) = written {
        eprintln!(
            "warning: could not append to GITHUB_STEP_SUMMARY ({}): {e}",
            std::path::Path::new(&path).display()
        );
    }
}

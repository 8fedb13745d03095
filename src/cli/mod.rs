//! The command line: one file per subcommand. Each returns the process exit
//! status; the statuses are listed in `--help` and the man page ([`EXIT_CODES`]).

mod check;
mod clean;
pub mod color;
mod compare;
mod completions;
mod doctor;
mod export;
mod history;
mod init;
mod manpage;
mod report;
mod run;
pub mod schema;
mod validate;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vmbench",
    version,
    about = "What does a VM cost compared with a container, and both compared with the bare host?",
    after_help = exit_statuses()
)]
pub struct Cli {
    /// Colour verdicts (REGRESSED, FAIL, improved): auto = on a terminal, unless NO_COLOR is set.
    #[arg(long, global = true, value_enum, default_value_t = color::ColorChoice::Auto, value_name = "WHEN")]
    pub color: color::ColorChoice,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a scenario: build guest artifacts, launch every target, record samples.
    Run(run::RunArgs),
    /// Check scenario files without launching anything.
    Validate(validate::ValidateArgs),
    /// Write a commented starter scenario (DIR/scenario.toml) to edit.
    Init(init::InitArgs),
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
    /// Print shell completions (bash, zsh, fish, elvish, powershell) to standard output.
    Completions(completions::CompletionsArgs),
    /// Print the man page (roff) to standard output, or write it and one page per command to --out DIR.
    Manpage(manpage::ManpageArgs),
    /// Print the JSON Schema of a scenario file, run.json or summary.json (for editors and scripts).
    Schema(schema::SchemaArgs),
    /// Re-render a run's reports (summary.json, samples.csv, report.md, report.html, summary.tex) from its files.
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

/// Every exit status and what it means: `--help` and the man page are made
/// from this one list.
pub const EXIT_CODES: &[(&str, &str)] = &[
    ("0", "fine"),
    ("1", "a regression or a failed check"),
    ("2", "bad input (scenario, flags, preflight: nothing ran)"),
    ("3", "the run finished but some samples failed"),
    ("4", "an internal error"),
    ("130/143", "interrupted by SIGINT/SIGTERM (finished samples kept)"),
];

/// What `--help` says about exit statuses.
pub fn exit_statuses() -> String {
    let codes: Vec<String> = EXIT_CODES.iter().map(|(code, meaning)| format!("{code} {meaning}")).collect();
    format!("Exit status: {}.", codes.join("; "))
}

/// Parses the command line and runs it; returns the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    color::set_choice(cli.color);
    if !matches!(cli.command, Command::Run(_) | Command::Clean(_) | Command::Doctor(_)) {
        quiet_on_closed_pipe();
    }
    let result = match cli.command {
        Command::Run(args) => run::exec(args),
        Command::Validate(args) => validate::exec(args),
        Command::Init(args) => init::exec(args),
        Command::Doctor(args) => doctor::exec(args),
        Command::Clean(args) => clean::exec(args),
        Command::Compare(args) => compare::exec(args),
        Command::Check(args) => check::exec(args),
        Command::Export(args) => export::exec(args),
        Command::Report(args) => report::exec(args),
        Command::History(args) => history::exec(args),
        Command::Completions(args) => completions::exec(args),
        Command::Manpage(args) => manpage::exec(args),
        Command::Schema(args) => schema::exec(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {}", crate::redact::text(&format!("{err:#}")));
            EXIT_INTERNAL
        }
    }
}

/// A reader that stops early (`vmbench compare ... | head`) ends the
/// command as it ends `cat`: by SIGPIPE, quietly. Rust ignores SIGPIPE, so
/// the next write failed and `println!` panicked. Not for the commands that
/// start or remove things (`run`, `clean`, `doctor`), which must finish
/// their work whatever happens to their output: they ignore a closed
/// standard output instead ([`say!`]).
fn quiet_on_closed_pipe() {
    // SAFETY: restores the default action of one signal before any thread
    // is started; no handler is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// `println!` for the commands that must finish their work whoever reads
/// their output: a closed standard output is ignored.
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = $crate::cli::print_out(&format!("{}\n", format_args!($($arg)*)));
    }};
}
pub(crate) use say;

/// Writes `text` to standard output; a reader that went away is not an
/// error (see [`quiet_on_closed_pipe`]).
pub(crate) fn print_out(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Where runs and baselines live, for every command that reads or writes
/// them by name: one definition, so the flag and its variable are the same
/// everywhere.
#[derive(Debug, Clone, clap::Args)]
pub struct ResultsDir {
    /// Where runs go (without --out) and baseline names are looked up (BASE/baselines/NAME).
    #[arg(long, env = "VMBENCH_RESULTS_DIR", default_value = "results", value_name = "DIR")]
    pub results_dir: std::path::PathBuf,
}

/// `--format` of the commands that print either for people or for scripts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TextOrJson {
    /// Lines and tables for people and CI logs.
    Text,
    /// One JSON document on standard output, for scripts.
    Json,
}

/// Where a command's output for people goes: standard output, or standard
/// error when standard output carries JSON for a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Human {
    Stdout,
    Stderr,
}

impl Human {
    pub fn print(self, text: &str) {
        match self {
            Human::Stdout => {
                let _ = print_out(text);
            }
            Human::Stderr => eprint!("{text}"),
        }
    }

    /// How verdicts are painted there: standard error is never painted.
    pub fn paint(self) -> color::Paint {
        match self {
            Human::Stdout => color::Paint::stdout(),
            Human::Stderr => color::Paint::plain(),
        }
    }
}

/// Appends `key=value` to the GitHub Actions step outputs when
/// `GITHUB_OUTPUT` names a file (later steps read `steps.ID.outputs.key`).
/// A value with a line break is not written: it would end the entry early.
pub fn github_output(key: &str, value: &str) {
    let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) else {
        return;
    };
    if let Err(e) = append_output(std::path::Path::new(&path), key, value) {
        eprintln!(
            "warning: could not append {key} to GITHUB_OUTPUT ({}): {e:#}",
            std::path::Path::new(&path).display()
        );
    }
}

/// One `key=value` line of GitHub's output file format.
fn append_output(path: &std::path::Path, key: &str, value: &str) -> anyhow::Result<()> {
    if value.contains(['\n', '\r']) {
        anyhow::bail!("the value has a line break");
    }
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    std::io::Write::write_all(&mut file, format!("{key}={value}\n").as_bytes())?;
    Ok(())
}

/// Prints `value` as pretty JSON on standard output.
pub fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    print_out(&format!("{}\n", serde_json::to_string_pretty(value)?))?;
    Ok(())
}

/// Writes `bytes` to `path` (atomically), or to standard output without one.
pub fn write_or_print(path: Option<&std::path::Path>, bytes: &[u8]) -> anyhow::Result<()> {
    match path {
        Some(path) => crate::guest::cache::write_atomic(path, bytes, 0o644),
        None => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            out.write_all(bytes)?;
            out.flush()?;
            Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_output_lines_are_appended_and_line_breaks_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("output");
        std::fs::write(&file, "earlier=1\n").unwrap();
        append_output(&file, "run_dir", "results/boot-20261125T150102Z").unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "earlier=1\nrun_dir=results/boot-20261125T150102Z\n"
        );
        assert!(append_output(&file, "run_dir", "a\nsneaky=1").is_err());
        assert!(!std::fs::read_to_string(&file).unwrap().contains("sneaky"));
    }

    #[test]
    fn every_format_flag_is_a_value_enum_listed_in_help() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        cmd.build();
        let mut formats = 0;
        for sub in cmd.get_subcommands() {
            for arg in sub.get_arguments().filter(|a| a.get_id() == "format") {
                formats += 1;
                let values = arg.get_possible_values();
                assert!(values.len() >= 2, "vmbench {} --format lists no values", sub.get_name());
                let help = sub.clone().render_long_help().to_string();
                for v in values {
                    assert!(
                        help.contains(v.get_name()),
                        "vmbench {} --help lacks {}",
                        sub.get_name(),
                        v.get_name()
                    );
                }
            }
        }
        assert_eq!(formats, 7, "check compare doctor export history report validate");
    }

    #[test]
    fn results_dir_is_visible_with_its_environment_variable() {
        use clap::CommandFactory;
        let mut cmd = Cli::command();
        cmd.build();
        for name in ["run", "compare", "check", "export", "report"] {
            let sub = cmd.find_subcommand(name).unwrap();
            let arg = sub.get_arguments().find(|a| a.get_id() == "results_dir").unwrap();
            assert!(!arg.is_hide_set(), "{name}");
            assert_eq!(arg.get_env(), Some(std::ffi::OsStr::new("VMBENCH_RESULTS_DIR")), "{name}");
            assert!(
                sub.clone().render_help().to_string().contains("[env: VMBENCH_RESULTS_DIR="),
                "{name}"
            );
        }
    }
}

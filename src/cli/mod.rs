//! The command line: one file per subcommand. Each returns the process exit
//! status: 0 fine, 1 something measured failed, 2 bad input (nothing ran).

mod clean;
mod doctor;
mod run;
mod validate;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "vmbench",
    version,
    about = "What does a VM cost compared with a container, and both compared with the bare host?"
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
}

/// Exit status for bad input: the scenario, the flags or a preflight check.
pub const EXIT_INPUT: i32 = 2;

/// Parses the command line and runs it; returns the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run::exec(args),
        Command::Validate(args) => validate::exec(args),
        Command::Doctor(args) => doctor::exec(args),
        Command::Clean(args) => clean::exec(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            1
        }
    }
}

/// The single-threaded runtime every subcommand uses: measurements are not
/// perturbed by idle worker threads, and QEMU's PR_SET_PDEATHSIG is tied to a
/// thread that lives as long as vmbench.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread().enable_all().build()?)
}

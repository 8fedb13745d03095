//! The servers the application workloads run inside a target (`http`:
//! nginx, `sql`: MariaDB), one file each behind [`Server`]. The agent starts
//! the server itself in every target alike (a VM booted from a guest disk, a
//! container from a guest image, natively the host's own binary), with a
//! configuration it writes from the same template, so the only differences
//! are the ones being measured.

pub mod mariadb;
pub mod nginx;

use super::workloads::Params;
use std::path::PathBuf;

/// Where and how one server runs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// A private, empty, writable directory for configuration, data, logs,
    /// the pid file and sockets; removed afterwards.
    pub dir: PathBuf,
    /// The TCP port the server listens on (every IPv4 address).
    pub port: u16,
    /// Worker processes or threads: the CPUs the agent may run on.
    pub workers: usize,
    /// The workload's parameters, already checked against its specs.
    pub params: Params,
    /// The agent runs as root (uid 0): servers that would drop privileges
    /// are told to stay root, so every target runs them alike.
    pub root: bool,
}

/// One server program.
pub trait Server {
    /// Its name in facts and messages (`nginx`, `mariadb`).
    fn name(&self) -> &'static str;
    /// The port it listens on inside a VM or container (natively the agent
    /// picks a free one).
    fn port(&self) -> u16;
    /// Writes its configuration and initialises its data under
    /// `setup.dir` (a database's system tables); not timed as the server's
    /// start.
    fn prepare(&self, setup: &Setup) -> Result<(), String>;
    /// The program (absolute path) and arguments that run it in the
    /// foreground, logging to its files under `setup.dir`.
    fn command(&self, setup: &Setup) -> Result<Vec<String>, String>;
    /// Log files whose last lines explain a failure.
    fn logs(&self, setup: &Setup) -> Vec<PathBuf>;
    /// Its version as the program reports it (`nginx -v`), for the facts.
    fn version(&self) -> Option<String>;
    /// Its settings that change results, recorded with them.
    fn settings(&self, setup: &Setup) -> Vec<(String, String)>;
}

/// The first of `candidates` that exists.
pub fn find_program(candidates: &[&str]) -> Result<std::path::PathBuf, String> {
    candidates
        .iter()
        .map(std::path::PathBuf::from)
        .find(|p| p.exists())
        .ok_or_else(|| format!("none of {} exists in this target", candidates.join(", ")))
}

/// The first line a program prints (on stdout or stderr) when run with
/// `args`, for its version.
pub fn first_line_of(program: &std::path::Path, args: &[&str]) -> Option<String> {
    let out = std::process::Command::new(program)
        .args(args)
        .env_clear()
        .env("PATH", crate::agent::workloads::serve::PATH)
        .stdin(std::process::Stdio::null())
        .output()
        .ok()?;
    let text = if out.stdout.is_empty() { out.stderr } else { out.stdout };
    String::from_utf8_lossy(&text).lines().next().map(|l| l.trim().to_string())
}

//! What the application workloads (`http`, `sql`) share inside a target:
//! the agent starts the server, times how long it takes to accept a
//! connection, tells the host where the server and the agent listen, and
//! holds the server up until the host closes its control connection (the
//! load is the host's: `load/`). Then it stops the server and reports what
//! the server cost: its start, its stop, its CPU time.
//!
//! In a VM the agent first brings the network up, as for the network
//! workload. Where the host lets the agent choose its own port (natively,
//! `vmbench.listen=127.0.0.1:0`), the server's port is chosen too: the host
//! may already run a server on 80 or 3306.

use super::{Env, Metrics, Params, WorkloadError};
use crate::agent::servers::{Server, Setup};
use crate::protocol::ServerFacts;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to accept its first connection: MariaDB in a
/// VM under TCG takes tens of seconds.
const READY_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the host may take to open its control connection once told
/// where: a host that failed before it did must not keep the target (and
/// its server) up until the trial's deadline.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a server may take to stop after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// `PATH` for the server and its tools: the agent may be PID 1 with an empty
/// environment.
pub const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Runs `server` for one trial of an application workload.
pub fn run(server: &dyn Server, params: &Params, env: &Env) -> Result<Metrics, WorkloadError> {
    let listen = env
        .listen
        .as_deref()
        .ok_or("an application workload needs a listen address (vmbench.listen=)")?;
    let listen: SocketAddr = listen.parse().map_err(|e| format!("listen address `{listen}`: {e}"))?;
    if env.vm_init {
        crate::agent::modules::load_all()?;
        crate::agent::modules::load_network_from_tree()?;
        super::network::configure_vm_network(env.address.as_deref())?;
    }
    let port = if listen.port() == 0 { free_port()? } else { server.port() };
    let dir = WorkDir::create(server.name())?;
    let setup = Setup {
        dir: dir.0.clone(),
        port,
        workers: super::params::threads(0),
        params: params.clone(),
        root: is_root(),
    };
    let mut metrics = Metrics::new();
    let preparing = Instant::now();
    server.prepare(&setup).map_err(|e| with_logs(e, server, &setup))?;
    metrics.insert("server_init_ms".into(), ms(preparing.elapsed()));
    let facts = ServerFacts {
        name: server.name().into(),
        version: server.version(),
        port,
        workers: setup.workers,
        settings: server.settings(&setup).into_iter().collect(),
        data_fs: file_system(&setup.dir),
    };
    let mut running = Running::start(server, &setup)?;
    let ready = running.wait_ready(port, server, &setup)?;
    metrics.insert("server_ready_ms".into(), ms(ready));
    let control = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
    let control_port = control.local_addr().map_err(|e| e.to_string())?.port();
    (env.announce)(control_port, Some(facts));
    let conn = accept_within(&control, CONTROL_TIMEOUT)?;
    wait_closed(conn);
    if let Some(status) = running.exited() {
        return Err(with_logs(format!("{} exited during the load ({status})", server.name()), server, &setup).into());
    }
    let (stop, cpu) = running.stop()?;
    metrics.insert("server_stop_ms".into(), ms(stop));
    metrics.insert("server_cpu_ms".into(), cpu);
    Ok(metrics)
}

/// The host's control connection, if it comes within `timeout`.
fn accept_within(listener: &TcpListener, timeout: Duration) -> Result<TcpStream, String> {
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let start = Instant::now();
    loop {
        match listener.accept() {
            Ok((conn, _)) => {
                conn.set_nonblocking(false).map_err(|e| e.to_string())?;
                return Ok(conn);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if start.elapsed() > timeout {
                    return Err(format!(
                        "the host did not open its control connection within {} s",
                        timeout.as_secs()
                    ));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => return Err(format!("accepting the host's control connection: {e}")),
        }
    }
}

/// Blocks until the host closes the control connection (or it breaks).
fn wait_closed(mut conn: TcpStream) {
    let mut buf = [0u8; 64];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// The server process, killed if the workload ends early.
struct Running {
    child: Option<Child>,
    name: &'static str,
    started: Instant,
}

impl Running {
    fn start(server: &dyn Server, setup: &Setup) -> Result<Running, String> {
        let argv = server.command(setup)?;
        let (program, args) = argv.split_first().ok_or("the server has an empty command")?;
        let log = |name: &str| {
            std::fs::File::create(setup.dir.join(name)).map_err(|e| format!("creating {name} in {}: {e}", setup.dir.display()))
        };
        let mut command = Command::new(program);
        command
            .args(args)
            .env_clear()
            .env("PATH", PATH)
            .current_dir(&setup.dir)
            .stdin(Stdio::null())
            // The console is the protocol's: the server's own output goes
            // to files, quoted when it fails.
            .stdout(log("stdout.log")?)
            .stderr(log("stderr.log")?);
        // The server dies with the agent, however the agent ends.
        // SAFETY: the hook only calls async-signal-safe functions.
        unsafe {
            command.pre_exec(crate::agent::dies_with_this_process());
        }
        let started = Instant::now();
        let child = command.spawn().map_err(|e| format!("cannot start {program}: {e}"))?;
        Ok(Running {
            child: Some(child),
            name: server.name(),
            started,
        })
    }

    /// Time from the spawn until the server accepts a connection on
    /// `port`, tried every millisecond.
    fn wait_ready(&mut self, port: u16, server: &dyn Server, setup: &Setup) -> Result<Duration, String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
                return Ok(self.started.elapsed());
            }
            if let Some(status) = self.exited() {
                let message = format!("{} exited before it listened on port {port} ({status})", self.name);
                return Err(with_logs(message, server, setup));
            }
            if self.started.elapsed() > READY_TIMEOUT {
                let message = format!(
                    "{} did not accept a connection on port {port} within {} s",
                    self.name,
                    READY_TIMEOUT.as_secs()
                );
                return Err(with_logs(message, server, setup));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// The exit status, if the server has exited.
    fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.as_mut().and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops the server with SIGTERM (SIGKILL after [`STOP_TIMEOUT`]);
    /// returns how long it took and the CPU time (ms, user + system) of the
    /// server and the children it reaped.
    fn stop(&mut self) -> Result<(Duration, f64), String> {
        let child = self.child.take().ok_or("the server was already stopped")?;
        let pid = child.id() as libc::pid_t;
        let stopping = Instant::now();
        // SAFETY: signalling our own child, not yet reaped.
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let mut killed = false;
        loop {
            let mut status = 0;
            // SAFETY: all-zero is a valid rusage; wait4 fills it.
            let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
            // SAFETY: `pid` is our child; `status` and `usage` are writable.
            let rc = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
            if rc == pid {
                let cpu = tv_ms(usage.ru_utime) + tv_ms(usage.ru_stime);
                return Ok((stopping.elapsed(), cpu));
            }
            if rc < 0 {
                return Err(format!("waiting for {}: {}", self.name, std::io::Error::last_os_error()));
            }
            if !killed && stopping.elapsed() > STOP_TIMEOUT {
                // SAFETY: as above.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                killed = true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn tv_ms(tv: libc::timeval) -> f64 {
    tv.tv_sec as f64 * 1e3 + tv.tv_usec as f64 / 1e3
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// A free TCP port on every address, for a server run natively.
fn free_port() -> Result<u16, String> {
    let probe = TcpListener::bind("0.0.0.0:0").map_err(|e| format!("finding a free port for the server: {e}"))?;
    Ok(probe.local_addr().map_err(|e| e.to_string())?.port())
}

/// `message` with the last lines of the server's logs.
fn with_logs(message: String, server: &dyn Server, setup: &Setup) -> String {
    let mut out = message;
    let mut files = server.logs(setup);
    files.push(setup.dir.join("stderr.log"));
    files.push(setup.dir.join("stdout.log"));
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        if lines.is_empty() {
            continue;
        }
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        out.push_str(&format!("\n{name}:"));
        for line in &lines[lines.len().saturating_sub(8)..] {
            out.push_str("\n  ");
            out.push_str(line);
        }
    }
    out
}

/// The name of the file system `path` is on, from `statfs`'s magic number.
fn file_system(path: &Path) -> Option<String> {
    let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).ok()?;
    // SAFETY: all-zero is a valid statfs; statfs fills it.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid C string, `st` writable.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return None;
    }
    Some(fs_name(st.f_type as u64))
}

/// Known `statfs` magic numbers (linux/magic.h), else the number in hex.
pub fn fs_name(magic: u64) -> String {
    let name = match magic {
        0xEF53 => "ext4",
        0x794c_7630 => "overlay",
        0x0102_1994 => "tmpfs",
        0x5846_5342 => "xfs",
        0x9123_683e => "btrfs",
        0x0102_1997 => "9p",
        0x6a65_6a63 => "virtiofs",
        0x6573_5546 => "fuse",
        0x8584_58f6 => "ramfs",
        0x5346_544e => "ntfs",
        0x2fc1_2fc1 => "zfs",
        _ => return format!("{magic:#x}"),
    };
    name.to_string()
}

/// The server's private directory, removed when dropped.
struct WorkDir(PathBuf);

impl WorkDir {
    fn create(name: &str) -> Result<WorkDir, String> {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("vmbench-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        // Readable by a server's unprivileged workers.
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755));
        Ok(WorkDir(dir))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_system_names_known_magics_and_shows_others() {
        assert_eq!(fs_name(0xEF53), "ext4");
        assert_eq!(fs_name(0x794c7630), "overlay");
        assert_eq!(fs_name(0x1234), "0x1234");
        // The temporary directory is on some file system with a name.
        assert!(file_system(&std::env::temp_dir()).is_some());
    }

    /// A "server" that exits at once, complaining on stderr, after its
    /// preparation wrote a log line.
    struct Exits;

    impl Server for Exits {
        fn name(&self) -> &'static str {
            "exits"
        }
        fn port(&self) -> u16 {
            0
        }
        fn prepare(&self, setup: &Setup) -> Result<(), String> {
            std::fs::write(setup.dir.join("own.log"), "first line\nthe server's own reason\n").map_err(|e| e.to_string())
        }
        fn command(&self, _: &Setup) -> Result<Vec<String>, String> {
            Ok(vec!["/bin/ls".into(), "/nonexistent-vmbench-path".into()])
        }
        fn logs(&self, setup: &Setup) -> Vec<PathBuf> {
            vec![setup.dir.join("own.log")]
        }
        fn version(&self) -> Option<String> {
            None
        }
        fn settings(&self, _: &Setup) -> Vec<(String, String)> {
            Vec::new()
        }
    }

    #[test]
    fn a_server_that_exits_before_listening_fails_with_its_own_log_lines() {
        let dir = WorkDir::create("test-exits").unwrap();
        let setup = Setup {
            dir: dir.0.clone(),
            port: free_port().unwrap(),
            workers: 1,
            params: Params::new(),
            root: is_root(),
        };
        Exits.prepare(&setup).unwrap();
        let mut running = Running::start(&Exits, &setup).unwrap();
        let e = running.wait_ready(setup.port, &Exits, &setup).unwrap_err();
        assert!(e.contains("exits exited before it listened on port"), "{e}");
        assert!(e.contains("own.log:\n  first line\n  the server's own reason"), "{e}");
        assert!(e.contains("stderr.log:") && e.contains("nonexistent-vmbench-path"), "{e}");
    }

    #[test]
    fn a_host_that_never_connects_ends_the_wait() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let e = accept_within(&listener, Duration::from_millis(50)).unwrap_err();
        assert!(e.contains("did not open its control connection"), "{e}");
        let addr = listener.local_addr().unwrap();
        let client = std::thread::spawn(move || TcpStream::connect(addr).unwrap());
        assert!(accept_within(&listener, Duration::from_secs(5)).is_ok());
        client.join().unwrap();
    }

    #[test]
    fn work_dir_is_removed_when_dropped() {
        let dir = WorkDir::create("test").unwrap();
        let path = dir.0.clone();
        std::fs::write(path.join("f"), b"x").unwrap();
        drop(dir);
        assert!(!path.exists());
    }
}

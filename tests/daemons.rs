//! A container engine killed (SIGKILL) in the middle of a trial, then
//! started again the way `scripts/setup.sh` starts it: the trial is a
//! failed sample that says the engine went away, the run goes on once the
//! engine answers, never hangs past `timeout_s`, keeps every sample it
//! wrote, and leaves nothing behind once the engine is back. These kill the
//! host's daemons, so they run one at a time and restart them whatever
//! happens.

mod common;

use common::*;
use std::path::Path;
use std::time::{Duration, Instant};

/// Pids of processes whose command line contains `needle`.
fn pids_with(needle: &str) -> Vec<i32> {
    processes()
        .into_iter()
        .filter(|p| p.cmdline.contains(needle))
        .map(|p| p.pid)
        .collect()
}

/// Runs `scripts/setup.sh`, which starts whatever daemon is not running
/// (and installs nothing that is installed); on drop too, so a failed
/// assertion does not leave the host without its engine.
struct Restart;

impl Restart {
    fn now(&self) {
        let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup.sh");
        let status = std::process::Command::new("bash")
            .arg(setup)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "scripts/setup.sh could not start the daemons again");
    }
}

impl Drop for Restart {
    fn drop(&mut self) {
        // No assertion here: a panic while a failed test unwinds would
        // abort the whole test binary.
        let setup = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/setup.sh");
        if !std::process::Command::new("bash").arg(setup).status().is_ok_and(|s| s.success()) {
            eprintln!("scripts/setup.sh could not start the daemons again");
        }
    }
}

/// A target (`target`: its TOML lines) whose two trials each run several
/// seconds of cpu workload; the daemon (`daemon`: a command line to find it
/// by) is killed 2 s into the first one's workload and started again 1 s later.
fn daemon_killed_mid_trial(target: &str, daemon: &str) -> (Option<i32>, Vec<vmbench::rundir::Sample>, String, String) {
    let _serial = serial();
    let restart = Restart;
    restart.now();
    let tmp = tempfile::tempdir().unwrap();
    let text = format!(
        r#"
name = "killed"
repetitions = 2
warmup = 0
timeout_s = 60

[[target]]
{target}

[[workload]]
kind = "cpu"
threads = 1
sha_mib = 1
min_time_ms = 2000
"#
    );
    let scenario = write(tmp.path(), "k.toml", &text);
    let out = tmp.path().join("run");
    let started = Instant::now();
    let mut run = spawn_run(tmp.path(), &scenario, &out);
    // The agent's first line of work: its process is up in the container.
    while pids_with("vmbench.workload=cpu").is_empty() {
        assert!(run.try_wait().unwrap().is_none(), "the run ended before its first trial started");
        assert!(started.elapsed() < Duration::from_secs(60), "the container never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_secs(2));
    let daemons = pids_with(daemon);
    assert!(!daemons.is_empty(), "no `{daemon}` running");
    for pid in &daemons {
        // SAFETY: kill sends a signal to the daemon found above.
        unsafe { libc::kill(*pid, libc::SIGKILL) };
    }
    std::thread::sleep(Duration::from_secs(1));
    restart.now();
    let status = loop {
        if let Some(status) = run.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(150),
            "the run hung past its trials' timeouts"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let samples = samples(&out);
    // Every line of the file is a whole sample.
    let lines = std::fs::read_to_string(out.join("samples.jsonl")).unwrap().lines().count();
    assert_eq!(samples.len(), lines);
    let first = samples.iter().find(|s| s.rep == 0).expect("the first trial is recorded");
    let error = first.error.clone().unwrap_or_default();
    eprintln!("{daemon}: {error}");
    let run_id = record(&out).run_id;
    (status.code(), samples, error, run_id)
}

#[test]
fn dockerd_killed_mid_trial_fails_that_trial_and_the_run_goes_on_once_it_is_back() {
    let target = "name = \"ctr\"\nkind = \"container\"\nengine = \"docker\"";
    let (status, samples, error, run_id) = daemon_killed_mid_trial(target, "dockerd");
    assert_eq!(status, Some(3), "the run finished with a failed sample");
    assert!(error.contains("the console closed before the agent finished"), "{error}");
    assert!(
        samples.iter().any(|s| s.rep == 1 && s.ok),
        "the second trial ran once dockerd was back: {samples:#?}"
    );
    assert_eq!(containers_of_run(&run_id), 0, "nothing of the run is left");
}

#[test]
fn the_podman_service_killed_mid_trial_fails_that_trial_and_the_run_goes_on() {
    let target = "name = \"ctr\"\nkind = \"container\"\nengine = \"podman\"";
    let (status, samples, error, run_id) = daemon_killed_mid_trial(target, "podman system service");
    assert_eq!(status, Some(3), "the run finished with a failed sample");
    assert!(error.contains("the console closed before the agent finished"), "{error}");
    assert!(
        samples.iter().any(|s| s.rep == 1 && s.ok),
        "the second trial ran once the service was back: {samples:#?}"
    );
    let left = std::process::Command::new("podman")
        .args(["ps", "-a", "-q", "--filter", &format!("label=vmbench.run={run_id}")])
        .output()
        .unwrap();
    assert!(
        left.stdout.is_empty(),
        "nothing of the run is left: {}",
        String::from_utf8_lossy(&left.stdout)
    );
}

/// libvirtd is only the manager: the domain it started runs on without it.
/// vmbench watches the domain through a new connection once libvirtd is
/// back, so the trial completes and so does the next one.
#[cfg(feature = "libvirt")]
#[test]
fn libvirtd_killed_mid_trial_leaves_the_guest_running_and_the_run_goes_on() {
    let target = "name = \"vm\"\nkind = \"vm\"\nbackend = \"libvirt\"\naccel = \"tcg\"";
    let (status, samples, error, run_id) = daemon_killed_mid_trial(target, "/usr/sbin/libvirtd");
    assert_eq!(status, Some(0), "{samples:#?}");
    assert!(error.is_empty(), "{error}");
    assert!(
        samples.iter().all(|s| s.ok && s.metrics.contains_key("sha256_1t_mb_per_s")),
        "{samples:#?}"
    );
    let left = vmbench::backend::libvirt::destroy_run_domains("qemu:///system", &run_id).unwrap();
    assert!(left.is_empty(), "domains of the run left: {left:?}");
}

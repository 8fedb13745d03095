//! A guest is not trusted. A small program of the tests' own
//! (`tests/guests/hostile.rs`, built here with rustc) runs as the agent of
//! native targets and misbehaves: it floods the console, prints a line that
//! never ends, invalid UTF-8, ready lines with wrong or missing nonces, a
//! valid ready line and then nothing, and results no measurement can have.
//! vmbench must accept no line without the launch's nonce, fail absurd
//! metrics with the reason, fire its timeouts, and keep its memory bounded.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const BEHAVIOURS: [&str; 9] = [
    "flood",
    "endless-line",
    "invalid-utf8",
    "wrong-nonce",
    "hang",
    "negative",
    "huge",
    "nan",
    "overflow",
];
const TIMEOUT_S: u64 = 3;
/// Enough for a microVM under TCG to boot (about 2 s here).
const GUEST_TIMEOUT_S: u64 = 10;

/// Builds the hostile guest into `dir` and links each behaviour's name to it.
fn build_guest(dir: &Path) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/hostile.rs");
    let binary = dir.join("hostile");
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let built = std::process::Command::new(rustc)
        .args(["--edition", "2021", "-C", "opt-level=2", "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("rustc runs");
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let guests = dir.join("guests");
    std::fs::create_dir_all(&guests).unwrap();
    for name in BEHAVIOURS {
        std::os::unix::fs::symlink(&binary, guests.join(name)).unwrap();
    }
    binary
}

fn scenario() -> String {
    let mut text = format!("name = \"hostile\"\nrepetitions = 1\nwarmup = 0\ntimeout_s = {TIMEOUT_S}\n");
    for name in BEHAVIOURS {
        text.push_str(&format!(
            "\n[[target]]\nname = \"{name}\"\nkind = \"native\"\nagent = \"guests/{name}\"\n"
        ));
    }
    text.push_str("\n[[workload]]\nkind = \"boot\"\n");
    text
}

/// A finished child's exit code and its own peak resident memory in KiB:
/// its `VmHWM`, read every 50 ms until it exits (the rusage of `wait4`
/// would give a reaped QEMU's instead, some 200 MiB).
fn wait_with_peak_rss(child: &std::process::Child) -> (i32, i64) {
    let pid = child.id() as i32;
    let status_file = format!("/proc/{pid}/status");
    let mut peak = 0;
    loop {
        if let Some(hwm) = std::fs::read_to_string(&status_file).ok().and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        }) {
            peak = peak.max(hwm);
        }
        let mut status = 0;
        // SAFETY: waits for our own child without blocking.
        let reaped = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        assert!(reaped >= 0, "waitpid: {}", std::io::Error::last_os_error());
        if reaped == pid {
            assert!(libc::WIFEXITED(status), "vmbench did not exit normally: {status:#x}");
            assert!(peak > 0, "no VmHWM was read");
            return (libc::WEXITSTATUS(status), peak);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Processes still running `binary`.
fn running(binary: &Path) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read_link(e.path().join("exe")).is_ok_and(|exe| exe == binary))
        .count()
}

#[test]
fn hostile_guests_get_failed_samples_with_reasons_and_vmbench_stays_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    let binary = build_guest(tmp.path());
    let scenario = write(tmp.path(), "hostile.toml", &scenario());
    let out = tmp.path().join("run");
    let started = Instant::now();
    // Reaped by wait_with_peak_rss, which also reads its peak memory.
    #[allow(clippy::zombie_processes)]
    let child = spawn_quiet_run(tmp.path(), &scenario, &out);
    let (code, peak_kib) = wait_with_peak_rss(&child);
    let took = started.elapsed();
    assert_eq!(code, 3, "some samples failed, the run finished");
    // Three targets run into the timeout (flood, endless line, hang); every
    // other trial ends at once. A timeout that did not fire would hang here.
    let three_timeouts = Duration::from_secs(3 * TIMEOUT_S);
    assert!(took < three_timeouts + Duration::from_secs(15), "took {took:?}");
    // A flood of several hundred MB went through; vmbench kept what it needs.
    assert!(peak_kib < 150 * 1024, "vmbench's peak RSS was {peak_kib} KiB");
    eprintln!("vmbench's peak RSS under a {TIMEOUT_S} s flood: {} MiB", peak_kib / 1024);
    assert_eq!(running(&binary), 0, "a hostile guest outlived its trial");

    let samples = samples(&out);
    assert_eq!(samples.len(), BEHAVIOURS.len());
    assert_each_failed_for_its_reason(&samples, "");

    // The files hold nothing a reader chokes on: the reports render again.
    let again = run_in(tmp.path(), &["report", out.to_str().unwrap()]);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["schema_version"], 2);
}

/// What every behaviour must come to, for the targets named `{prefix}NAME`.
fn assert_each_failed_for_its_reason(samples: &[vmbench::rundir::Sample], prefix: &str) {
    let sample = |name: &str| {
        samples
            .iter()
            .find(|s| s.target == format!("{prefix}{name}"))
            .unwrap_or_else(|| panic!("no sample of {prefix}{name}"))
    };
    let error = |name: &str| sample(name).error.clone().unwrap_or_default();
    for (name, reason) in [
        ("flood", "timed out before the agent was ready"),
        ("endless-line", "timed out before the agent was ready"),
        ("wrong-nonce", "the console closed before the agent was ready"),
        ("hang", "timed out before the agent finished"),
        ("negative", "the agent reported an impossible x_ms = -1e0"),
        ("huge", "the agent reported an impossible x_ms = 1e308"),
        ("nan", "agent error: malformed agent line"),
        ("overflow", "agent error: malformed agent line"),
    ] {
        let s = sample(name);
        assert!(!s.ok && error(name).starts_with(reason), "{prefix}{name}: {s:#?}");
        assert!(
            !s.metrics.contains_key("x_ms"),
            "{prefix}{name}: an impossible value was kept: {s:?}"
        );
    }
    // No ready line without this launch's nonce was taken.
    for name in ["flood", "endless-line", "wrong-nonce"] {
        assert!(!sample(name).metrics.contains_key("ready_ms"), "{prefix}{name}: {:?}", sample(name));
    }
    // What was good in a bad sample is still there; invalid UTF-8 harms nothing.
    assert!(sample("negative").metrics.contains_key("ready_extra_ms"), "{prefix}negative");
    assert!(sample("hang").metrics.contains_key("ready_ms"), "{prefix}hang");
    let utf8 = sample("invalid-utf8");
    assert!(utf8.ok && utf8.metrics["ready_ms"] > 0.0, "{utf8:?}");
    // The flood's last lines are in its error, each cut short, the whole bounded.
    assert!(error("flood").contains(&"x".repeat(99)) && error("flood").len() < 64 * 1024);
    assert_eq!(
        error("wrong-nonce").matches("\"type\":").count(),
        8,
        "all kept: {}",
        error("wrong-nonce")
    );
}

/// One static build of the hostile guest per behaviour in `dir/static/`:
/// a VM's `/init` and a container's entrypoint have names of their own, so
/// each carries its behaviour from its build.
fn build_static_guests(dir: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/guests/hostile.rs");
    let out = dir.join("static");
    std::fs::create_dir_all(&out).unwrap();
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    for name in BEHAVIOURS {
        let built = std::process::Command::new(&rustc)
            .env("HOSTILE_BEHAVIOUR", name)
            .args(["--edition", "2021", "-C", "opt-level=2", "-C", "target-feature=+crt-static", "-o"])
            .arg(out.join(name))
            .arg(&source)
            .output()
            .expect("rustc runs");
        assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    }
}

/// The same hostile guests through the other two transports: the VM's
/// serial console (the guest as `/init` of vmbench's initramfs) and the
/// container's log stream (the guest as the entrypoint of a `FROM scratch`
/// image). The same promises hold, and nothing is left running.
#[test]
fn hostile_guests_as_a_vm_init_and_a_container_entrypoint_get_the_same_verdicts() {
    let _serial = serial();
    let tmp = tempfile::tempdir().unwrap();
    build_static_guests(tmp.path());
    let mut text = format!("name = \"hostile-guests\"\nrepetitions = 1\nwarmup = 0\ntimeout_s = {GUEST_TIMEOUT_S}\n");
    for name in BEHAVIOURS {
        text.push_str(&format!(
            "\n[[target]]\nname = \"vm-{name}\"\nkind = \"vm\"\naccel = \"tcg\"\nagent = \"static/{name}\"\n\
             \n[[target]]\nname = \"ctr-{name}\"\nkind = \"container\"\nagent = \"static/{name}\"\n"
        ));
    }
    text.push_str("\n[[workload]]\nkind = \"boot\"\n");
    let scenario = write(tmp.path(), "hostile-guests.toml", &text);
    let out = tmp.path().join("run");
    // Reaped by wait_with_peak_rss.
    #[allow(clippy::zombie_processes)]
    let child = spawn_quiet_run(tmp.path(), &scenario, &out);
    let (code, peak_kib) = wait_with_peak_rss(&child);
    assert_eq!(code, 3, "some samples failed, the run finished");
    assert!(peak_kib < 150 * 1024, "vmbench's peak RSS was {peak_kib} KiB");
    eprintln!("vmbench's peak RSS with VM and container floods: {} MiB", peak_kib / 1024);

    let samples = samples(&out);
    assert_eq!(samples.len(), 2 * BEHAVIOURS.len());
    assert_each_failed_for_its_reason(&samples, "vm-");
    assert_each_failed_for_its_reason(&samples, "ctr-");
    // Each target ran the program it was given, not vmbench's agent.
    let record = record(&out);
    for name in BEHAVIOURS {
        let program = std::fs::read(tmp.path().join("static").join(name)).unwrap();
        let sha = vmbench::guest::sha256_hex(&program);
        for kind in ["vm", "ctr"] {
            let facts = record.targets.iter().find(|t| t.name == format!("{kind}-{name}")).unwrap();
            assert_eq!(facts.agent_sha256, sha, "{kind}-{name}");
        }
    }
    assert!(vmbench_qemu_processes().is_empty(), "a VM outlived its trial");
    assert_eq!(containers_of_run(&record.run_id), 0, "a container outlived its trial");
}

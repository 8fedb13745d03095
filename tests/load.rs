//! A long run's memory: vmbench keeps no sample in memory while it runs
//! (they are on disk; the stopping rule of `repetitions = "auto"` keeps one
//! value each), so its resident set stays flat from the first hundred
//! trials to the last. The figures for 10 000 repetitions are in
//! docs/reliability.md.

mod common;

use common::*;
use std::time::Duration;

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:")?.split_whitespace().next()?.parse().ok())
}

fn lines(path: &std::path::Path) -> usize {
    std::fs::read_to_string(path).map(|t| t.lines().count()).unwrap_or(0)
}

#[test]
fn a_long_native_run_keeps_vmbenchs_memory_flat() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let text = "name = \"load\"\nrepetitions = 2000\nwarmup = 0\ntimeout_s = 30\n\n[[target]]\nname = \"native\"\nkind = \"native\"\n\n[[workload]]\nkind = \"boot\"\n";
    let scenario = write(tmp.path(), "load.toml", text);
    let out = tmp.path().join("run");
    let mut run = spawn_run(tmp.path(), &scenario, &out);
    let samples_file = out.join("samples.jsonl");
    // The resident set once 200 samples are written, and once 1800 are.
    let mut at = |n: usize| loop {
        assert!(run.try_wait().unwrap().is_none(), "the run ended before {n} samples");
        if lines(&samples_file) >= n {
            break rss_kib(run.id()).unwrap();
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let early = at(200);
    let late = at(1800);
    assert!(run.wait().unwrap().success());
    assert_eq!(samples(&out).len(), 2000);
    // 1600 more samples held in memory would be several MiB (each is about
    // 2 KiB as a Rust value); allow 1 MiB of allocator noise.
    assert!(
        late <= early + 1024,
        "vmbench grew from {early} KiB to {late} KiB over 1600 samples"
    );
}

//! The trial driver and the run loop against the scripted fake backend:
//! milliseconds each, no engine involved.

use super::driver::run_trial;
use super::*;
use crate::backend::fake::{FakeBackend, Script, Scripter, Step};
use std::sync::atomic::Ordering;
use std::time::Duration;

const MS: Duration = Duration::from_millis(1);

fn workload(toml_kind: &str) -> crate::scenario::Workload {
    scenario(
        &format!("[[target]]\nname = \"a\"\nkind = \"native\"\n[[workload]]\nkind = \"{toml_kind}\"\n"),
        1,
    )
    .workloads
    .remove(0)
}

fn scenario(body: &str, reps: u32) -> Scenario {
    let text = format!("name = \"fake\"\nrepetitions = {reps}\nwarmup = 0\ntimeout_s = 2\n{body}");
    crate::scenario::parse(Path::new("fake.toml"), &text).expect("valid scenario")
}

fn fake(scripter: impl Fn(usize, &crate::scenario::Workload) -> Script + Send + Sync + 'static) -> FakeBackend {
    let dir = tempfile::tempdir().unwrap().keep();
    FakeBackend::new("fake", dir, Arc::new(scripter) as Scripter)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

#[test]
fn phases_and_metrics_are_assembled_once_for_every_backend() {
    let backend = fake(|_, _| Script::good(20 * MS, vec![("x_ms", 3.0)]));
    let result = rt().block_on(run_trial(&backend, &workload("boot"), Duration::from_secs(2)));
    assert_eq!(result.error, None);
    let m = &result.metrics;
    assert!(m["ready_ms"] >= 20.0 && m["ready_ms"] < 500.0, "{m:?}");
    assert_eq!(m["init_ms"], 0.5);
    assert_eq!(m["x_ms"], 3.0);
    assert_eq!(m["spawn_ms"], 0.25, "the launch's own phases are kept");
    assert!(m["exit_ms"] >= m["ready_ms"], "{m:?}");
    assert!(m["teardown_ms"] >= 2.0, "done line to gone: {m:?}");
    assert_eq!(m["mem_ready_bytes"], 4096.0, "agent-reported footprint");
    assert_eq!(result.agent_kernel.as_deref(), Some("fake"));
    assert_eq!(backend.counters.removed.load(Ordering::SeqCst), 1);
}

#[test]
fn vmbenchs_own_work_in_the_start_call_is_left_out_of_the_launch_clock() {
    // 300 ms of cgroup join, then ready 20 ms later: ready_ms and exit_ms
    // count from the end of the join.
    let backend = fake(|_, _| Script {
        uncounted: 300 * MS,
        ..Script::good(20 * MS, vec![])
    });
    let result = rt().block_on(run_trial(&backend, &workload("boot"), Duration::from_secs(2)));
    assert_eq!(result.error, None);
    let m = &result.metrics;
    assert!(m["ready_ms"] >= 20.0 && m["ready_ms"] < 250.0, "{m:?}");
    assert!(m["exit_ms"] < 250.0, "{m:?}");
}

#[test]
fn garbage_and_foreign_ready_lines_do_not_count() {
    let backend = fake(|_, _| Script {
        steps: vec![
            Step::Garbage(b"\x00\xffboot noise\nVMBENCH1 nonsense\n"),
            Step::ForeignReady,
            Step::Pause(10 * MS),
            Step::Ready { init_ms: 1.0 },
            Step::Done,
        ],
        ..Default::default()
    });
    let result = rt().block_on(run_trial(&backend, &workload("boot"), Duration::from_secs(2)));
    assert_eq!(result.error, None);
    assert!(result.metrics["ready_ms"] >= 10.0, "the foreign ready line was ignored");
}

#[test]
fn silence_times_out_with_the_console_tail_and_removes_the_target() {
    let backend = fake(|_, _| Script {
        steps: vec![Step::Garbage(b"kernel panic here\n"), Step::Pause(Duration::from_secs(60))],
        ..Default::default()
    });
    let started = std::time::Instant::now();
    let result = rt().block_on(run_trial(&backend, &workload("boot"), 150 * MS));
    assert!(started.elapsed() < Duration::from_secs(2), "the timeout fired");
    let error = result.error.unwrap();
    assert!(error.starts_with("timed out before the agent was ready"), "{error}");
    assert!(error.contains("kernel panic here"), "{error}");
    assert!(!result.metrics.contains_key("exit_ms"));
    assert_eq!(backend.counters.removed.load(Ordering::SeqCst), 1);
}

#[test]
fn a_launch_that_fails_to_start_is_a_failed_sample() {
    let backend = fake(|_, _| Script {
        start_error: Some("could not start: no such engine".into()),
        ..Default::default()
    });
    let result = rt().block_on(run_trial(&backend, &workload("boot"), Duration::from_secs(2)));
    assert_eq!(result.error.as_deref(), Some("could not start: no such engine"));
    assert!(result.metrics.is_empty());
    assert_eq!(
        backend.counters.removed.load(Ordering::SeqCst),
        1,
        "removed after a failed start too"
    );
}

#[test]
fn agent_errors_and_late_exits_fail_the_sample() {
    let backend = fake(|_, _| Script {
        steps: vec![Step::Ready { init_ms: 0.1 }, Step::Error("disk full"), Step::Done],
        ..Default::default()
    });
    let result = rt().block_on(run_trial(&backend, &workload("boot"), Duration::from_secs(2)));
    assert!(result.error.unwrap().starts_with("agent error: disk full"));
    let backend = fake(|_, _| Script {
        exit_after: Duration::from_secs(60),
        ..Script::good(MS, vec![])
    });
    let result = rt().block_on(run_trial(&backend, &workload("boot"), 100 * MS));
    assert_eq!(result.error.as_deref(), Some("the fake did not exit in time"));
    assert!(!result.metrics.contains_key("exit_ms"));
}

#[test]
fn impossible_values_from_the_agent_fail_the_sample() {
    let backend = fake(|_, _| Script::good(MS, vec![("x_ms", -1.0), ("y_ms", 2.0)]));
    let result = rt().block_on(run_trial(&backend, &workload("boot"), Duration::from_secs(2)));
    let error = result.error.unwrap();
    assert!(error.starts_with("the agent reported an impossible x_ms = -1e0"), "{error}");
    assert!(!result.metrics.contains_key("x_ms") && result.metrics["y_ms"] == 2.0);
    // Finite but beyond any measurement: two such samples made the summary's
    // mean and median infinite.
    let backend = fake(|_, _| Script::good(MS, vec![("big_ms", 1e308), ("y_ms", 2.0)]));
    let result = rt().block_on(run_trial(&backend, &workload("boot"), Duration::from_secs(2)));
    assert!(result.error.unwrap().contains("impossible big_ms = 1e308"));
    assert!(!result.metrics.contains_key("big_ms"));
    let backend = fake(|_, _| Script::good(MS, vec![("big_ms", 1e12)]));
    let result = rt().block_on(run_trial(&backend, &workload("boot"), Duration::from_secs(2)));
    assert_eq!(result.error, None, "large but possible is a number");
}

#[test]
fn disk_trials_get_a_scratch_file_that_is_gone_afterwards() {
    let backend = fake(|_, _| Script::good(MS, vec![("rand_read_iops", 1.0)]));
    let result = rt().block_on(run_trial(&backend, &workload("disk"), Duration::from_secs(2)));
    assert_eq!(result.error, None);
    let seen = backend.counters.scratch_seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "the file existed at launch");
    assert!(!seen[0].exists(), "and was removed after the trial");
}

/// Options that write the run into a fresh directory.
fn fresh_out() -> RunOptions {
    RunOptions {
        overrides: Default::default(),
        out: Some(tempfile::tempdir().unwrap().keep().join("run")),
        results_root: PathBuf::from("/nonexistent"),
        label: None,
    }
}

/// A run of `scenario` against fakes made by `scripter`, in a fresh directory.
fn run(scenario: &Scenario, scripter: Scripter) -> (RunOutcome, Vec<Arc<crate::backend::fake::Counters>>) {
    let opts = fresh_out();
    let counters = Mutex::new(Vec::new());
    let handle = Arc::new(RunHandle::new("fake-run".into()));
    let outcome = rt()
        .block_on(execute_with(scenario, &opts, handle, &Quiet, |target| {
            let backend = FakeBackend::new(&target.name, std::env::temp_dir(), scripter.clone());
            counters.lock().unwrap().push(backend.counters.clone());
            Box::new(backend)
        }))
        .unwrap();
    (outcome, counters.into_inner().unwrap())
}

const TWO_TARGETS: &str = "[[target]]\nname = \"a\"\nkind = \"native\"\n[[target]]\nname = \"b\"\nkind = \"native\"\n";

#[test]
fn targets_run_in_complete_rounds_and_every_sample_is_on_disk() {
    let body = format!("{TWO_TARGETS}[[workload]]\nkind = \"boot\"\n");
    let (outcome, counters) = run(&scenario(&body, 3), Arc::new(|_, _| Script::good(MS, vec![])));
    for round in outcome.samples.chunks(2) {
        let mut targets: Vec<&str> = round.iter().map(|s| s.target.as_str()).collect();
        targets.sort();
        assert_eq!(targets, ["a", "b"], "every round has every target");
        assert_eq!(round[0].rep, round[1].rep);
    }
    assert!(outcome.record.scenario.order_seed.is_some(), "the order's seed is recorded");
    assert!(outcome.samples.iter().all(|s| s.ok));
    // serde_json may round a float's last bit: compare what identifies each sample.
    let key = |s: &Sample| (s.seq, s.target.clone(), s.ok, s.metrics.keys().cloned().collect::<Vec<_>>());
    let on_disk = crate::rundir::read_samples(&outcome.dir).unwrap();
    assert_eq!(
        on_disk.iter().map(key).collect::<Vec<_>>(),
        outcome.samples.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(outcome.record.status, RunStatus::Complete);
    // The sweepers (one key) ran once at the end of the run.
    assert_eq!(counters.iter().map(|c| c.sweeps.load(Ordering::SeqCst)).sum::<usize>(), 1);
}

#[test]
fn not_applicable_pairs_get_one_sample_and_the_rest_are_skipped() {
    let body = format!("{TWO_TARGETS}[[workload]]\nkind = \"boot\"\n[[workload]]\nkind = \"syscall\"\n");
    let scripter: Scripter = Arc::new(|_, w| Script {
        not_applicable: (w.kind == WorkloadKind::Syscall).then(|| "no syscalls here".to_string()),
        ..Script::good(MS, vec![("getppid_ns", 200.0)])
    });
    let (outcome, counters) = run(&scenario(&body, 3), scripter);
    let na: Vec<&Sample> = outcome.samples.iter().filter(|s| s.not_applicable.is_some()).collect();
    assert_eq!(na.len(), 2, "one per target");
    assert!(na.iter().all(|s| !s.failed()));
    assert_eq!(outcome.samples.len(), 6 + 2);
    assert_eq!(counters.iter().map(|c| c.launches.load(Ordering::SeqCst)).sum::<usize>(), 6);
    // An agent that says `unsupported` settles its pair the same way.
    let scripter: Scripter = Arc::new(|_, _| Script {
        steps: vec![Step::Ready { init_ms: 0.1 }, Step::Unsupported("no O_DIRECT"), Step::Done],
        ..Default::default()
    });
    let (outcome, _) = run(&scenario(&format!("{TWO_TARGETS}[[workload]]\nkind = \"boot\"\n"), 4), scripter);
    assert_eq!(outcome.samples.len(), 2);
    assert_eq!(outcome.record.failed_samples, 0);
}

#[test]
fn auto_repetitions_keep_rounds_whole_until_every_target_may_stop() {
    let body = format!(
        "repetitions = \"auto\"\nmin_repetitions = 3\nmax_repetitions = 8\ntarget_cov = 0.05\n{TWO_TARGETS}[[workload]]\nkind = \"syscall\"\n"
    );
    let text = format!("name = \"fake\"\nwarmup = 0\ntimeout_s = 2\n{body}");
    let scenario = crate::scenario::parse(Path::new("fake.toml"), &text).unwrap();
    // Target "a" (even launches of its own backend) is steady; "b" alternates 100 / 300.
    let scripter: Scripter = Arc::new(|n, _| {
        let value = if n % 2 == 0 { 100.0 } else { 300.0 };
        Script::good(MS, vec![("getppid_ns", value)])
    });
    let steady: Scripter = Arc::new(|_, _| Script::good(MS, vec![("getppid_ns", 200.0)]));
    let opts = fresh_out();
    let outcome = rt()
        .block_on(execute_with(
            &scenario,
            &opts,
            Arc::new(RunHandle::new("auto".into())),
            &Quiet,
            |t| {
                let s = if t.name == "a" { steady.clone() } else { scripter.clone() };
                Box::new(FakeBackend::new(&t.name, std::env::temp_dir(), s))
            },
        ))
        .unwrap();
    // The steady target may stop at the earliest the rule allows (its
    // median's exact 95% interval is narrow at 6 samples and again at 7),
    // but keeps running while the noisy one goes on to the maximum.
    let count = |t: &str| outcome.samples.iter().filter(|s| s.target == t).count();
    assert_eq!((count("a"), count("b")), (8, 8), "the steady target keeps the noisy one company");
    let auto = outcome.record.scenario.auto.unwrap();
    let a = auto.outcomes.iter().find(|o| o.target == "a").unwrap();
    assert!(a.converged && a.repetitions == 8 && a.median_ci_rel_width == Some(0.0), "{a:?}");
    let b = auto.outcomes.iter().find(|o| o.target == "b").unwrap();
    assert!(!b.converged && b.median_ci_rel_width.unwrap() > 0.1, "{b:?}");
    // Two steady targets stop together at the earliest the rule allows.
    let opts = fresh_out();
    let outcome = rt()
        .block_on(execute_with(
            &scenario,
            &opts,
            Arc::new(RunHandle::new("auto2".into())),
            &Quiet,
            |t| Box::new(FakeBackend::new(&t.name, std::env::temp_dir(), steady.clone())),
        ))
        .unwrap();
    assert_eq!(outcome.samples.len(), 2 * 7);
}

#[test]
fn sweep_after_an_interruption_runs_the_registered_sweepers_and_marks_the_run() {
    let handle = RunHandle::new("swept".into());
    let backend = fake(|_, _| Script::default());
    let counters = backend.counters.clone();
    handle.register(backend.sweeper().unwrap());
    handle.register(backend.sweeper().unwrap());
    let dir = tempfile::tempdir().unwrap();
    let record = RunRecord {
        status: RunStatus::Running,
        ..crate::compare::tests::run(1.0, 1).record
    };
    let mut sink = crate::rundir::Sink::create(dir.path(), record).unwrap();
    sink.append(&crate::compare::tests::run(1.0, 1).samples[0]).unwrap();
    *handle.dir.lock().unwrap() = Some(dir.path().to_path_buf());
    let swept = rt().block_on(sweep(&handle, "interrupted by SIGINT")).unwrap();
    assert_eq!(swept.as_deref(), Some(dir.path()));
    assert_eq!(counters.sweeps.load(Ordering::SeqCst), 1, "one sweep per key");
    let record = crate::rundir::read_run_record(dir.path()).unwrap();
    assert_eq!(record.status, RunStatus::Interrupted);
    assert_eq!(record.samples, 1);
}

#[test]
fn credentials_reach_no_file_of_the_run() {
    // A container target whose engine address carries a password, a VM
    // whose kernel gets a secret environment variable, a backend that
    // records both in its reproduce line and settings, and an agent whose
    // error quotes the address: none of it may reach the run directory.
    let body = "[[target]]\nname = \"ctr\"\nkind = \"container\"\nhost = \"tcp://ci:pw-ctr-1@10.0.0.2:2375\"\n\
                [[target]]\nname = \"vm\"\nkind = \"vm\"\nkernel_args = [\"DB_PASSWORD=pw-env-2\"]\n\
                [[workload]]\nkind = \"boot\"\n";
    let scenario = scenario(body, 2);
    assert!(scenario.text.contains("pw-ctr-1") && scenario.text.contains("pw-env-2"));
    let opts = fresh_out();
    let scripter: Scripter = Arc::new(|n, _| match n {
        0 => Script {
            steps: vec![
                Step::Ready { init_ms: 0.1 },
                Step::Error("cannot reach ssh://ci:pw-agent-3@db"),
                Step::Done,
            ],
            ..Default::default()
        },
        _ => Script::good(MS, vec![]),
    });
    let outcome = rt()
        .block_on(execute_with(
            &scenario,
            &opts,
            Arc::new(RunHandle::new("secrets".into())),
            &Quiet,
            |t| {
                let mut backend = FakeBackend::new(&t.name, std::env::temp_dir(), scripter.clone());
                backend.facts = Some(TargetFacts {
                    name: t.name.clone(),
                    reproduce: vec!["client".into(), "--host".into(), "tcp://ci:pw-ctr-1@10.0.0.2:2375".into()],
                    kernel_cmdline: Some("console=ttyS0 DB_PASSWORD=pw-env-2".into()),
                    settings: [("engine".to_string(), "tcp://ci:pw-ctr-1@10.0.0.2:2375".to_string())].into(),
                    ..Default::default()
                });
                Box::new(backend)
            },
        ))
        .unwrap();
    assert_eq!(outcome.record.failed_samples, 2, "the first launch of each target failed");
    crate::publish::write_all(&outcome.dir, &[], Path::new("report-templates")).unwrap();
    let mut files = 0;
    for entry in std::fs::read_dir(&outcome.dir).unwrap().flatten().filter(|e| e.path().is_file()) {
        let text = String::from_utf8_lossy(&std::fs::read(entry.path()).unwrap()).into_owned();
        for secret in ["pw-ctr-1", "pw-env-2", "pw-agent-3"] {
            assert!(!text.contains(secret), "{secret} in {}", entry.path().display());
        }
        files += 1;
    }
    assert!(files >= 6, "run.json, samples.jsonl and the reports were all read ({files})");
    // What was redacted is still visible as such, and the hash is of the recorded text.
    let record = crate::rundir::read_run_record(&outcome.dir).unwrap();
    assert!(record.scenario.text.contains("tcp://ci:<redacted>@10.0.0.2:2375"));
    assert!(record.scenario.text.contains("DB_PASSWORD=<redacted>"));
    assert_eq!(record.scenario.sha256, crate::guest::sha256_hex(record.scenario.text.as_bytes()));
    assert_eq!(record.targets[0].reproduce[2], "tcp://ci:<redacted>@10.0.0.2:2375");
    let failed = outcome.samples.iter().find(|s| s.failed()).unwrap();
    assert!(failed.error.as_deref().unwrap().contains("ssh://ci:<redacted>@db"), "{failed:?}");
}

#[test]
fn a_run_that_died_holding_its_lock_is_swept_and_marked_and_a_live_one_is_not() {
    let locks = tempfile::tempdir().unwrap();
    let results = tempfile::tempdir().unwrap();
    let dead_id = format!("test-dead-{}", std::process::id());
    // A run that got as far as writing a sample and a scratch file, then died.
    let dead = lock::RunLock::acquire(locks.path(), &dead_id).unwrap();
    dead.add(crate::backend::Leftovers::Cgroups).unwrap();
    let dir = results.path().join("dead");
    let record = RunRecord {
        status: RunStatus::Running,
        run_id: dead_id.clone(),
        ..crate::compare::tests::run(1.0, 1).record
    };
    let mut sink = crate::rundir::Sink::create(&dir, record).unwrap();
    let sample = sink.append(&crate::compare::tests::run(1.0, 1).samples[0]).unwrap();
    dead.set_dir(&dir).unwrap();
    let scratch = crate::backend::scratch_root(&dead_id);
    std::fs::create_dir_all(&scratch).unwrap();
    std::fs::write(scratch.join("x.img"), b"scratch").unwrap();
    drop(dead); // its process is gone: the kernel drops the flock
                // A run that is alive.
    let live = lock::RunLock::acquire(locks.path(), "test-live").unwrap();

    let said = rt().block_on(sweep_dead_runs(locks.path()));
    assert_eq!(said.len(), 1, "{said:?}");
    assert!(
        said[0].starts_with(&format!("run {dead_id} (vmbench pid {}", std::process::id())),
        "{said:?}"
    );
    assert!(said[0].contains("vmbench cgroups") && said[0].contains("marked"), "{said:?}");
    assert!(!scratch.exists(), "its scratch files are gone");
    let record = crate::rundir::read_run_record(&dir).unwrap();
    assert_eq!(record.status, RunStatus::Interrupted);
    assert!(record.note.unwrap().contains("died without cleaning up"));
    assert_eq!(crate::rundir::read_samples(&dir).unwrap(), [sample], "finished samples are kept");
    let left: Vec<String> = std::fs::read_dir(locks.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "only the live run's lock and info remain: {left:?}");
    assert!(left.iter().all(|f| f.starts_with("test-live")), "{left:?}");
    // Swept once: a second vmbench finds nothing more to do.
    assert!(rt().block_on(sweep_dead_runs(locks.path())).is_empty());
    drop(live);
}

/// A real HTTP answer on a real socket: the status line is read whatever
/// follows it, and what is not HTTP is an error.
#[test]
fn the_http_probe_reads_the_status_line() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for (answer, expected) in [
            (&b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"[..], Ok(200)),
            (b"HTTP/1.0 503 Service Unavailable\r\n\r\n", Ok(503)),
            (b"SSH-2.0-OpenSSH_9.2\r\n", Err(())),
        ] {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let server = tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut request = vec![0u8; 1024];
                let n = conn.read(&mut request).await.unwrap();
                conn.write_all(answer).await.unwrap();
                String::from_utf8_lossy(&request[..n]).into_owned()
            });
            let conn = tokio::net::TcpStream::connect(addr).await.unwrap();
            let got = super::driver::http_status(conn, &addr, "/health").await.map_err(|_| ());
            assert_eq!(got, expected);
            let request = server.await.unwrap();
            assert!(
                request.starts_with("GET /health HTTP/1.1\r\n") && request.contains("\r\nHost: 127.0.0.1:"),
                "{request}"
            );
        }
    });
}

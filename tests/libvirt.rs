//! The libvirt backend against the real libvirtd that scripts/setup.sh
//! starts: transient domains under TCG (KVM guests hang on these hosts, and
//! the domain type follows vmbench's KVM probe), their phases, and that no
//! domain outlives a run, however it ends.
#![cfg(feature = "libvirt")]

mod common;

use common::*;
use std::time::{Duration, Instant};
use vmbench::backend::libvirt;

fn scenario(reps: u32, extra: &str) -> String {
    format!(
        "name = \"lv\"\nrepetitions = {reps}\nwarmup = 0\ntimeout_s = 60\n[[target]]\nname = \"lv\"\nkind = \"vm\"\nbackend = \"libvirt\"\naccel = \"tcg\"\n{extra}\n[[workload]]\nkind = \"boot\"\n"
    )
}

/// Names of running vmbench domains whose run id is `run_id`.
fn domains_of_run(run_id: &str) -> Vec<String> {
    let conn = libvirt::open(libvirt::DEFAULT_URI).unwrap();
    conn.list_all_domains(0)
        .unwrap()
        .into_iter()
        .filter_map(|d| d.name().ok())
        .filter(|n| n.starts_with(&format!("vmbench-{run_id}-")))
        .collect()
}

#[test]
fn a_libvirt_domain_boots_the_agent_and_reports_libvirts_phases() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let (result, out) = run_scenario(tmp.path(), "lv.toml", &scenario(2, ""));
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let samples = samples(&out);
    assert_eq!(samples.len(), 2);
    for s in &samples {
        assert!(s.ok, "{s:?}");
        assert_eq!(s.accel.as_deref(), Some("tcg"));
        let m = &s.metrics;
        // The create call returns before the guest is ready, and the phases
        // of the boot add up to the time to ready.
        assert!(m["create_ms"] > 0.0 && m["create_ms"] < m["ready_ms"], "{m:?}");
        let sum = m["pre_kernel_ms"] + m["kernel_ms"] + m["init_ms"];
        assert!((sum - m["ready_ms"]).abs() < 1.0, "{m:?}");
        assert!(m["teardown_ms"] > 0.0 && m["exit_ms"] > m["ready_ms"], "{m:?}");
        assert!(m["mem_ready_bytes"] > 64.0 * 1024.0 * 1024.0, "{m:?}");
    }
    let record = record(&out);
    let target = &record.targets[0];
    assert_eq!(target.backend, "libvirt");
    let xml = &target.settings["domain_xml"];
    assert!(xml.starts_with("<domain type='qemu'>"), "{xml}");
    assert!(target.qemu_version.as_deref().unwrap().contains("through libvirt"), "{target:?}");
    assert!(domains_of_run(&record.run_id).is_empty());
    assert!(!libvirt::images_dir(&record.run_id).exists());
}

/// vmbench's Debian guest (the definition tests/guests.rs builds, so the
/// cache holds one tree) as a libvirt domain booted by OVMF,
/// with systemd, running the boot and the disk workload: the root disk is
/// a transient disk staged in the run's images directory, the scratch disk
/// beside it found by its serial.
#[test]
fn a_guest_system_boots_under_libvirt_by_uefi() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let mut text = String::from(
        "name = \"lv-guest\"\nrepetitions = 1\nwarmup = 0\ntimeout_s = 180\n\n[[guest]]\nname = \"debian\"\n\
         rootfs = { distro = \"debian\", suite = \"bookworm\" }\ninit = \"systemd\"\n",
    );
    // UEFI only: the direct boot's XML is the one every libvirt target uses.
    text.push_str(
        "\n[[target]]\nname = \"lv-uefi\"\nkind = \"vm\"\nbackend = \"libvirt\"\nguest = \"debian\"\n\
         boot = \"uefi\"\naccel = \"tcg\"\nmemory_mib = 512\n",
    );
    text.push_str("\n[[workload]]\nkind = \"boot\"\n\n[[workload]]\nkind = \"disk\"\nfile_mib = 32\nrand_ops = 200\nfsync_ops = 20\n");
    let (result, out) = run_scenario(tmp.path(), "lv-guest.toml", &text);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let samples = samples(&out);
    assert_eq!(samples.len(), 2);
    for s in &samples {
        assert!(s.ok, "{s:?}");
        let m = &s.metrics;
        assert!(
            m["userspace_ms"] > 0.0 && m["ready_ms"] > m["userspace_ms"],
            "systemd's phases: {m:?}"
        );
        assert!(m.contains_key("create_ms"), "libvirt's phases: {m:?}");
    }
    assert!(samples.iter().any(|s| s.metrics.contains_key("rand_read_iops")));
    let record = record(&out);
    for target in &record.targets {
        let xml = &target.settings["domain_xml"];
        assert!(
            xml.contains("<transient/>") && xml.contains("<serial>vmbench-root</serial>"),
            "{xml}"
        );
        assert_eq!(target.guest.as_ref().and_then(|g| g.boot.as_deref()), Some(&target.name[3..]));
        if target.name == "lv-uefi" {
            assert!(
                xml.contains("<loader readonly='yes' type='rom'>") && xml.contains("<oemStrings>"),
                "{xml}"
            );
            assert!(!xml.contains("<kernel>"), "{xml}");
        }
    }
    assert!(domains_of_run(&record.run_id).is_empty());
    assert!(!libvirt::images_dir(&record.run_id).exists(), "the staged disks go with the run");
}

#[test]
fn a_libvirt_uri_that_does_not_answer_is_a_preflight_error() {
    let tmp = tempfile::tempdir().unwrap();
    let file = write(
        tmp.path(),
        "lv.toml",
        &scenario(1, "uri = \"qemu+unix:///system?socket=/nonexistent/libvirt-sock\""),
    );
    let out = tmp.path().join("run");
    let result = run_in(tmp.path(), &["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(2), "{}", stdout(&result));
    let err = stderr(&result);
    assert!(
        err.contains("libvirt does not answer at qemu+unix:///system") && err.contains("libvirtd -d"),
        "{err}"
    );
    assert!(!out.exists());
}

#[test]
fn a_panic_after_the_create_call_leaves_no_domain_behind() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let file = write(tmp.path(), "lv.toml", &scenario(2, ""));
    let out = tmp.path().join("run");
    let result = vmbench()
        .current_dir(tmp.path())
        .env("VMBENCH_FAULT", "libvirt-after-create")
        .args(["run", file.to_str().unwrap(), "--out", out.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(result.status.code(), Some(4), "an internal error: {}", stderr(&result));
    assert!(stderr(&result).contains("injected fault at libvirt-after-create"));
    let record = record(&out);
    assert_eq!(record.status, vmbench::rundir::RunStatus::Interrupted);
    assert!(domains_of_run(&record.run_id).is_empty(), "{:?}", domains_of_run(&record.run_id));
}

#[test]
fn vmbench_clean_destroys_the_domain_of_a_killed_run() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    // A long CPU workload, so the domain is still busy when clean comes.
    let text = scenario(1, "").replace("kind = \"boot\"", "kind = \"cpu\"\nsha_mib = 4096");
    let file = write(tmp.path(), "lv.toml", &text);
    let out = tmp.path().join("run");
    let mut child = spawn_run(tmp.path(), &file, &out);
    let started = Instant::now();
    let run_id = loop {
        if let Ok(record) = vmbench::rundir::read_run_record(&out) {
            if !domains_of_run(&record.run_id).is_empty() {
                break record.run_id;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no domain started");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Past libvirt's create call (~0.4 s here): killed during it, vmbench's
    // connection closes and libvirt itself abandons the half-started domain.
    std::thread::sleep(Duration::from_secs(3));
    assert!(!domains_of_run(&run_id).is_empty(), "the domain ended early");
    // SIGKILL: vmbench gets no chance to clean up, like a crash.
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!domains_of_run(&run_id).is_empty());
    let result = run_in(tmp.path(), &["clean"]);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    // The killed run left its lock: clean sweeps that run first, by its id,
    // and says so; nothing is left for the sweep of every vmbench domain.
    let said = stdout(&result);
    assert!(
        said.contains(&format!("run {run_id}")) && said.contains("swept libvirt qemu:///system"),
        "{said}"
    );
    assert!(said.contains("destroyed 0 vmbench libvirt domain(s)"), "{said}");
    assert!(domains_of_run(&run_id).is_empty());
}

#[test]
fn the_next_run_destroys_the_domain_of_a_killed_run_and_records_libvirts_sandbox() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let text = scenario(1, "").replace("kind = \"boot\"", "kind = \"cpu\"\nsha_mib = 4096");
    let file = write(tmp.path(), "lv.toml", &text);
    let out = tmp.path().join("run");
    let mut child = spawn_run(tmp.path(), &file, &out);
    let started = Instant::now();
    let run_id = loop {
        if let Ok(record) = vmbench::rundir::read_run_record(&out) {
            if !domains_of_run(&record.run_id).is_empty() {
                break record.run_id;
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no domain started");
        std::thread::sleep(Duration::from_millis(50));
    };
    // Past libvirt's create call, as in the test of `vmbench clean` above.
    std::thread::sleep(Duration::from_secs(3));
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(!domains_of_run(&run_id).is_empty(), "the domain outlives vmbench");
    // libvirt sandboxes its QEMU as its qemu.conf says; run.json says which.
    let sandbox = record(&out).targets[0].settings["sandbox"].clone();
    assert!(sandbox.contains("qemu.conf"), "{sandbox}");
    // Any next run sweeps the dead run's domain; no `vmbench clean` needed.
    let next = "name = \"next\"\nrepetitions = 1\nwarmup = 0\n[[target]]\nname = \"n\"\nkind = \"native\"\n[[workload]]\nkind = \"boot\"\n";
    let next = write(tmp.path(), "next.toml", next);
    let result = run_in(tmp.path(), &["run", next.to_str().unwrap(), "--out", "next"]);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    assert!(stderr(&result).contains(&format!("run {run_id} ")), "{}", stderr(&result));
    assert!(domains_of_run(&run_id).is_empty(), "{:?}", domains_of_run(&run_id));
    assert_eq!(record(&out).status, vmbench::rundir::RunStatus::Interrupted);
}

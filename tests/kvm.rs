//! KVM detection. On hosts where /dev/kvm exists but guests hang (these CI
//! machines), the probe must say no within its timeout and `accel = "kvm"`
//! must be a preflight error; where KVM works, a KVM boot must succeed.

mod common;

use common::*;
use std::time::{Duration, Instant};
use vmbench::backend::qemu::{accel, find_qemu};
use vmbench::guest;

fn verdict() -> (accel::Verdict, Duration) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let qemu = find_qemu(None).unwrap();
    let kernel = guest::kernel::find(None).unwrap();
    let initramfs = guest::initramfs::for_kernel(&kernel.path, false, &guest::agent::Agent::embedded()).unwrap();
    let started = Instant::now();
    let verdict = rt.block_on(accel::probe(&qemu, &kernel.path, &initramfs.path));
    (verdict, started.elapsed())
}

#[test]
fn the_kvm_probe_decides_within_its_timeout_and_the_run_follows_it() {
    let _guard = serial();
    let (verdict, took) = verdict();
    assert!(took < accel::probe_timeout() + Duration::from_secs(5), "probe took {took:?}");
    assert!(!verdict.reason.is_empty());
    assert!(vmbench_qemu_processes().is_empty(), "the probe left QEMU running");

    let tmp = tempfile::tempdir().unwrap();
    let text = three_targets("kvm", 1, 0, 60.0).replace("accel = \"tcg\"", "accel = \"kvm\"");
    let scenario = write(tmp.path(), "kvm.toml", &text);
    let out = tmp.path().join("run");
    let result = run_in(
        tmp.path(),
        &["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap(), "--only", "vm"],
    );
    if verdict.kvm_works {
        assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
        assert!(samples(&out).iter().all(|s| s.accel.as_deref() == Some("kvm")));
    } else {
        assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
        let err = stderr(&result);
        assert!(
            err.contains("asks for accel = \"kvm\", but KVM does not work on this host"),
            "{err}"
        );
        assert!(!out.exists());
    }
}

#[test]
fn auto_accel_records_the_choice_and_the_reason() {
    let _guard = serial();
    let (verdict, _) = verdict();
    let tmp = tempfile::tempdir().unwrap();
    let text = three_targets("auto", 1, 0, 60.0).replace("accel = \"tcg\"", "accel = \"auto\"");
    let scenario = write(tmp.path(), "auto.toml", &text);
    let out = tmp.path().join("run");
    let result = run_in(
        tmp.path(),
        &["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap(), "--only", "vm"],
    );
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let vm = &record(&out).targets[0];
    let expected = if verdict.kvm_works { "kvm" } else { "tcg" };
    assert_eq!(vm.accel.as_deref(), Some(expected));
    assert!(
        vm.accel_reason
            .as_deref()
            .unwrap()
            .contains(if verdict.kvm_works { "booted" } else { "using TCG" }),
        "{:?}",
        vm.accel_reason
    );
    assert!(samples(&out).iter().all(|s| s.accel.as_deref() == Some(expected)));
}

#[test]
fn device_check_reports_why_when_kvm_is_absent() {
    match accel::device_check() {
        Ok(()) => assert!(std::path::Path::new("/dev/kvm").exists()),
        Err(why) => assert!(why.contains("/dev/kvm") || why.contains("KVM"), "{why}"),
    }
}

//! Fault injection, so tests can prove that a panic in the middle of a trial
//! leaves nothing behind. `VMBENCH_FAULT=<point>` panics at that point; the
//! points are `qemu-after-spawn`, `docker-after-create` (Docker and Podman)
//! and `libvirt-after-create`, each right after its launch started
//! something. Unset, this is a single environment lookup per trial.

/// Panics if `VMBENCH_FAULT` names `point`.
pub fn point(point: &str) {
    if std::env::var("VMBENCH_FAULT").is_ok_and(|v| v == point) {
        panic!("injected fault at {point} (VMBENCH_FAULT)");
    }
}

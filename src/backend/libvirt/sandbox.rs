//! What libvirt does about QEMU's seccomp sandbox, for `run.json`. vmbench
//! does not choose it for libvirt targets: libvirt passes its own `-sandbox`
//! to the QEMU it starts, as `seccomp_sandbox` in its `qemu.conf` says (unset:
//! on wherever QEMU supports it, with the same options the qemu backend
//! uses). vmbench reads the local file and records the answer; it never
//! changes the host's configuration.

use crate::backend::qemu::cmdline::SANDBOX;

/// The system instance's configuration file.
pub const QEMU_CONF: &str = "/etc/libvirt/qemu.conf";

/// The `settings.sandbox` entry of a libvirt target at `uri`.
pub fn setting(uri: &str) -> String {
    if !uri.starts_with("qemu:///system") {
        return format!("libvirt's own, as qemu.conf at {uri} says (not read: vmbench reads only the local system instance's)");
    }
    match std::fs::read_to_string(QEMU_CONF) {
        Ok(text) => from_conf(&text),
        Err(e) => format!("libvirt's own; {QEMU_CONF} could not be read ({e})"),
    }
}

/// The sandbox libvirt applies under `text`, a `qemu.conf`.
pub fn from_conf(text: &str) -> String {
    match seccomp_sandbox(text) {
        None => {
            format!("-sandbox {SANDBOX} by libvirt (seccomp_sandbox unset in {QEMU_CONF}: libvirt's default, on where QEMU supports it)")
        }
        Some(0) => format!("off: seccomp_sandbox = 0 in {QEMU_CONF} (libvirt passes -sandbox off)"),
        Some(n) => format!("-sandbox {SANDBOX} by libvirt (seccomp_sandbox = {n} in {QEMU_CONF})"),
    }
}

/// The value of the last uncommented `seccomp_sandbox = N` line, if any.
fn seccomp_sandbox(text: &str) -> Option<i64> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next()?.trim();
            let (key, value) = line.split_once('=')?;
            (key.trim() == "seccomp_sandbox").then(|| value.trim().parse().ok())?
        })
        .next_back()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debians_commented_default_means_libvirt_sandboxes_qemu() {
        let conf = "# Use seccomp syscall filtering sandbox in QEMU.\n#seccomp_sandbox = 1\n\n#user = \"qemu\"\n";
        let said = from_conf(conf);
        assert!(said.starts_with("-sandbox on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny"));
        assert!(said.contains("unset"), "{said}");
    }

    #[test]
    fn an_explicit_setting_wins_and_zero_turns_it_off() {
        assert!(from_conf("seccomp_sandbox = 0\n").starts_with("off: seccomp_sandbox = 0"));
        assert!(from_conf("seccomp_sandbox = 0\nseccomp_sandbox=1 # again\n").contains("seccomp_sandbox = 1"));
        assert!(from_conf("  seccomp_sandbox = 0   # off for debugging\n").starts_with("off"));
    }

    #[test]
    fn a_remote_instance_is_not_guessed() {
        assert!(setting("qemu+ssh://h/system").contains("not read"));
    }
}

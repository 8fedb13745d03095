//! A VM's `tap` network: per launch a tap device on a Linux bridge vmbench
//! makes (`vmbench0`, 10.77.77.1/24 on the host), the guest at its own
//! address on it and reached there directly, with no forwarding process in
//! between (vhost-net moves the packets in the kernel under KVM). Devices
//! are made and removed with `ip` (an argument vector, never a shell); each
//! tap carries `vmbench:<run id>` as its alias so a sweep finds what a run
//! left, and the bridge goes once no tap is on it.

use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};

pub const BRIDGE: &str = "vmbench0";
/// The host's address on the bridge; guests get .2 upwards.
pub const HOST: Ipv4Addr = Ipv4Addr::new(10, 77, 77, 1);
pub const PREFIX: u8 = 24;
const ALIAS_PREFIX: &str = "vmbench:";
const SYS_NET: &str = "/sys/class/net";

/// One launch's tap device and the guest's address behind it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tap {
    pub ifname: String,
    pub guest: Ipv4Addr,
    /// vhost-net moves the packets (KVM, and `/dev/vhost-net` present).
    pub vhost: bool,
}

/// Whether a tap under `accel` gets vhost-net: only with KVM, and only
/// where the host has `/dev/vhost-net`.
pub fn vhost(accel: super::cmdline::Accel) -> bool {
    accel == super::cmdline::Accel::Kvm && Path::new("/dev/vhost-net").exists()
}

/// What the host lacks to make a tap network, if anything.
pub fn preflight() -> Result<(), String> {
    if !Path::new("/dev/net/tun").exists() {
        return Err("/dev/net/tun is missing: load the tun module (modprobe tun)".into());
    }
    // SAFETY: geteuid cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Err("making a bridge and tap devices needs root (CAP_NET_ADMIN); run vmbench as root".into());
    }
    ip(&["-V"]).map_err(|e| format!("{e} (iproute2 makes the bridge and the tap devices)"))
}

/// Makes the bridge with the host's address, unless it is there.
pub fn ensure_bridge() -> Result<(), String> {
    if !Path::new(SYS_NET).join(BRIDGE).exists() {
        ip(&["link", "add", "name", BRIDGE, "type", "bridge"])?;
        ip(&["link", "set", "dev", BRIDGE, "alias", &format!("{ALIAS_PREFIX}bridge")])?;
        ip(&["addr", "add", &format!("{HOST}/{PREFIX}"), "dev", BRIDGE])?;
    }
    ip(&["link", "set", "dev", BRIDGE, "up"])
}

/// The tap device name of launch `n` of `run_id` (at most 15 bytes).
pub fn ifname(run_id: &str, n: u32) -> String {
    let hash = run_id.bytes().fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("vmbt{:06x}{:02}", hash & 0xff_ffff, n % 100)
}

/// The guest's address of launch `n`: .2 to .251.
pub fn guest_address(n: u32) -> Ipv4Addr {
    Ipv4Addr::new(10, 77, 77, 2 + (n % 250) as u8)
}

/// Tap launches so far in this process, over every target: numbers the
/// devices and addresses, so two tap targets of one run never share them.
static LAUNCHES: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The guest NIC's MAC address for `tap`: one per guest address, so two
/// guests on the bridge never share QEMU's default.
pub fn mac(tap: &Tap) -> String {
    format!("52:54:00:4d:4d:{:02x}", tap.guest.octets()[3])
}

/// Makes the next launch's tap device on the bridge, up. A device of that
/// name that another run left is not touched: the launch fails, saying so.
pub fn create(run_id: &str, vhost: bool) -> Result<Tap, String> {
    ensure_bridge()?;
    let n = LAUNCHES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tap = Tap {
        ifname: ifname(run_id, n),
        guest: guest_address(n),
        vhost,
    };
    if let Some((_, alias)) = interfaces().into_iter().find(|(name, _)| *name == tap.ifname) {
        if alias != format!("{ALIAS_PREFIX}{run_id}") {
            return Err(format!(
                "a network device {} already exists (alias `{alias}`); `vmbench clean` removes vmbench's",
                tap.ifname
            ));
        }
        delete(&tap.ifname);
    }
    let made = (|| {
        ip(&["tuntap", "add", "dev", &tap.ifname, "mode", "tap"])?;
        ip(&["link", "set", "dev", &tap.ifname, "alias", &format!("{ALIAS_PREFIX}{run_id}")])?;
        ip(&["link", "set", "dev", &tap.ifname, "master", BRIDGE])?;
        ip(&["link", "set", "dev", &tap.ifname, "up"])
    })();
    if let Err(e) = made {
        delete(&tap.ifname);
        return Err(e);
    }
    Ok(tap)
}

/// Removes a tap device; already gone is fine.
pub fn delete(ifname: &str) {
    if Path::new(SYS_NET).join(ifname).exists() {
        let _ = ip(&["link", "del", "dev", ifname]);
    }
}

/// Removes the taps of `run_id` (every vmbench tap with `None`), then the
/// bridge if no device is left on it. Returns how many taps went.
pub fn sweep(run_id: Option<&str>) -> usize {
    let mut removed = 0;
    for (name, alias) in interfaces() {
        let Some(owner) = alias.strip_prefix(ALIAS_PREFIX) else { continue };
        if name == BRIDGE || run_id.is_some_and(|id| id != owner) {
            continue;
        }
        delete(&name);
        removed += 1;
    }
    let ports = std::fs::read_dir(Path::new(SYS_NET).join(BRIDGE).join("brif"))
        .map(|d| d.count())
        .ok();
    if ports == Some(0) {
        let _ = ip(&["link", "del", "dev", BRIDGE]);
    }
    removed
}

/// Every interface with its alias (empty when it has none).
pub fn interfaces() -> Vec<(String, String)> {
    let Ok(dir) = std::fs::read_dir(SYS_NET) else {
        return Vec::new();
    };
    dir.flatten()
        .map(|e| {
            let alias = std::fs::read_to_string(e.path().join("ifalias")).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), alias.trim().to_string())
        })
        .collect()
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_the_kernels_limit_and_addresses_stay_in_the_subnet() {
        let name = ifname("20261126T042516Z-5d1a", 123);
        assert!(name.len() <= 15, "{name}");
        assert!(name.starts_with("vmbt") && name.ends_with("23"), "{name}");
        assert_ne!(ifname("a", 1), ifname("b", 1));
        assert_eq!(guest_address(0), Ipv4Addr::new(10, 77, 77, 2));
        assert_eq!(guest_address(249), Ipv4Addr::new(10, 77, 77, 251));
        assert_eq!(guest_address(250), guest_address(0));
    }
}

//! Loading the kernel modules the initramfs carries (virtio transports,
//! block and network drivers), in the order the host wrote to
//! `/vmbench/modules`, and waiting for the devices they bring.

use std::ffi::CString;
use std::time::{Duration, Instant};

/// Where the initramfs keeps the modules and their load order.
pub const ORDER_FILE: &str = "/vmbench/modules";
pub const DIR: &str = "/lib/modules";

/// Loads every listed module; already loaded or built in is fine.
pub fn load_all() -> Result<Vec<String>, String> {
    let Ok(order) = std::fs::read_to_string(ORDER_FILE) else {
        return Ok(Vec::new());
    };
    let mut loaded = Vec::new();
    for name in order.lines().map(str::trim).filter(|l| !l.is_empty()) {
        load(&format!("{DIR}/{name}.ko")).map_err(|e| format!("loading module {name}: {e}"))?;
        loaded.push(name.to_string());
    }
    Ok(loaded)
}

/// The network driver and what it needs, as a distribution's kernel ships
/// them under `/lib/modules/<release>/`, in load order.
const TREE_NET_MODULES: &[&str] = &[
    "kernel/net/core/failover.ko",
    "kernel/drivers/net/net_failover.ko",
    "kernel/drivers/net/virtio_net.ko",
];

/// On a guest system's own root (no initramfs list of vmbench's): loads the
/// virtio network driver from the running kernel's module tree, where the
/// files exist; built-in or already loaded is fine. With systemd, udev has
/// usually loaded it already.
pub fn load_network_from_tree() -> Result<(), String> {
    if std::path::Path::new(ORDER_FILE).exists() {
        return Ok(());
    }
    let dir = format!("{DIR}/{}", super::pid1::kernel_release());
    for module in TREE_NET_MODULES {
        let path = format!("{dir}/{module}");
        if std::path::Path::new(&path).exists() {
            load(&path).map_err(|e| format!("loading {path}: {e}"))?;
        }
    }
    Ok(())
}

fn load(path: &str) -> Result<(), String> {
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let params = CString::new("").expect("no NUL");
    use std::os::fd::AsRawFd;
    // SAFETY: finit_module reads the module from an open descriptor; the
    // parameter string is a valid empty C string.
    let rc = unsafe { libc::syscall(libc::SYS_finit_module, file.as_raw_fd(), params.as_ptr(), 0) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EEXIST) {
        Ok(())
    } else {
        Err(err.to_string())
    }
}

/// Waits until `path` exists (devtmpfs creates device nodes asynchronously
/// after a driver probes).
pub fn wait_for(path: &str, timeout: Duration) -> Result<(), String> {
    let start = Instant::now();
    while !std::path::Path::new(path).exists() {
        if start.elapsed() > timeout {
            return Err(format!(
                "{path} did not appear within {:.0} s of loading the drivers",
                timeout.as_secs_f64()
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(())
}

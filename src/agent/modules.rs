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

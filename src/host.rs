//! Facts about the host, recorded next to every run's numbers.

use crate::rundir::HostFacts;
use sysinfo::{CpuRefreshKind, MemoryRefreshKind, RefreshKind, System};

pub fn facts() -> HostFacts {
    let sys = System::new_with_specifics(
        RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing())
            .with_memory(MemoryRefreshKind::nothing().with_ram()),
    );
    HostFacts {
        hostname: System::host_name().unwrap_or_default(),
        os: System::long_os_version().unwrap_or_default(),
        kernel: System::kernel_version().unwrap_or_default(),
        cpu_model: sys.cpus().first().map(|c| c.brand().trim().to_string()).unwrap_or_default(),
        logical_cpus: sys.cpus().len(),
        physical_cores: System::physical_core_count(),
        memory_bytes: sys.total_memory(),
        boot_id: std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
            .map(|s| s.trim().to_string())
            .unwrap_or_default(),
    }
}

/// The host's TSC frequency in kHz, measured against `CLOCK_MONOTONIC_RAW`
/// over 20 ms (best of three); `None` off x86_64.
///
/// Under TCG the guest's TSC ticks at the host's rate. A guest kernel
/// calibrates it against the PIT, and under emulation that calibration
/// sometimes fails; on a microVM (no HPET, no ACPI PM timer) the kernel then
/// hangs during boot (seen here about once in twelve boots). Passing the
/// frequency with `tsc_early_khz=` skips that calibration.
pub fn tsc_khz() -> Option<u64> {
    #[cfg(target_arch = "x86_64")]
    {
        let measure = || {
            let start = std::time::Instant::now();
            // SAFETY: rdtsc has no preconditions on x86_64.
            let t0 = unsafe { core::arch::x86_64::_rdtsc() };
            std::thread::sleep(std::time::Duration::from_millis(20));
            let t1 = unsafe { core::arch::x86_64::_rdtsc() };
            let ns = start.elapsed().as_nanos() as f64;
            (t1.wrapping_sub(t0) as f64 / ns * 1e6, ns)
        };
        // The shortest interval was the least disturbed by scheduling.
        let (khz, _) = (0..3).map(|_| measure()).min_by(|a, b| a.1.total_cmp(&b.1))?;
        (khz > 100_000.0).then_some(khz.round() as u64)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        None
    }
}

/// The commit and branch of the git work tree holding `dir`, read from
/// `.git` directly (no git binary needed).
pub fn git(dir: &std::path::Path) -> Option<crate::rundir::GitFacts> {
    let root = dir.ancestors().find(|d| d.join(".git").is_dir())?;
    let git = root.join(".git");
    let head = std::fs::read_to_string(git.join("HEAD")).ok()?;
    let head = head.trim();
    let Some(reference) = head.strip_prefix("ref: ") else {
        return Some(crate::rundir::GitFacts {
            commit: head.to_string(),
            branch: None,
        });
    };
    let branch = reference.strip_prefix("refs/heads/").map(str::to_string);
    let commit = std::fs::read_to_string(git.join(reference))
        .ok()
        .map(|c| c.trim().to_string())
        .or_else(|| {
            let packed = std::fs::read_to_string(git.join("packed-refs")).ok()?;
            packed
                .lines()
                .find(|l| l.ends_with(reference))
                .and_then(|l| l.split_whitespace().next())
                .map(str::to_string)
        })?;
    Some(crate::rundir::GitFacts { commit, branch })
}

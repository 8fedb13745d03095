//! Facts about the host, recorded next to every run's numbers.

use crate::agent::facts::{self as agent_facts, read_trimmed};
use crate::rundir::HostFacts;
use std::path::Path;
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
        cpu_governor: read_trimmed("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        smt: read_trimmed("/sys/devices/system/cpu/smt/control"),
        mitigations: agent_facts::vulnerabilities(Path::new(agent_facts::VULNERABILITIES)).unwrap_or_default(),
        thp: read_trimmed(agent_facts::THP_ENABLED).and_then(|t| agent_facts::selected_mode(&t)),
        load_avg: read_trimmed("/proc/loadavg").and_then(|t| load_avg(&t)),
        steal_s: std::fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|t| steal_ticks(&t))
            .map(|ticks| ticks as f64 / clock_ticks_per_s()),
    }
}

/// The three load averages of `/proc/loadavg`.
pub fn load_avg(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(str::parse::<f64>);
    Some([fields.next()?.ok()?, fields.next()?.ok()?, fields.next()?.ok()?])
}

/// Steal time of all CPUs since boot, in clock ticks: the eighth number of
/// `/proc/stat`'s `cpu` line (user nice system idle iowait irq softirq steal).
pub fn steal_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.split_whitespace().next() == Some("cpu"))?;
    line.split_whitespace().nth(8)?.parse().ok()
}

/// `USER_HZ`, the unit of `/proc/stat`.
fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_and_steal_parse() {
        assert_eq!(load_avg("0.52 0.58 0.59 2/345 12345\n"), Some([0.52, 0.58, 0.59]));
        assert_eq!(load_avg("garbage"), None);
        let stat = "cpu  10132153 290696 3084719 46828483 16683 0 25195 1750 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n";
        assert_eq!(steal_ticks(stat), Some(1750));
        assert_eq!(steal_ticks("cpu0 1 2 3\n"), None);
    }

    #[test]
    fn facts_of_this_host_are_read() {
        let f = facts();
        assert!(f.load_avg.is_some(), "{f:?}");
    }
}

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

/// The commit, branch and state of the git work tree holding `dir`: from
/// `git` itself (worktrees and submodules included), else from the CI's own
/// variables (`GITHUB_SHA`, `CI_COMMIT_SHA`) where the checkout has no
/// repository or the host no git; `None` when neither knows.
pub fn git(dir: &std::path::Path) -> Option<crate::rundir::GitFacts> {
    from_git_binary(dir).or_else(|| from_ci_variables(&|name| std::env::var(name).ok()))
}

fn from_git_binary(dir: &std::path::Path) -> Option<crate::rundir::GitFacts> {
    let run = |args: &[&str]| -> Option<(bool, String)> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        Some((out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string()))
    };
    let (ok, commit) = run(&["rev-parse", "--verify", "-q", "HEAD"])?;
    if !ok || commit.is_empty() {
        return None;
    }
    let branch = run(&["symbolic-ref", "--short", "-q", "HEAD"])
        .filter(|(ok, b)| *ok && !b.is_empty())
        .map(|(_, b)| b);
    // Tracked files changed and not committed (untracked ones do not count).
    let dirty = run(&["status", "--porcelain", "--untracked-files=no"])
        .filter(|(ok, _)| *ok)
        .map(|(_, changes)| !changes.is_empty());
    Some(crate::rundir::GitFacts {
        commit,
        branch,
        dirty,
        source: Some("git".into()),
    })
}

/// The commit a CI job says it built: GitHub Actions' `GITHUB_SHA` (branch
/// from `GITHUB_REF_NAME`), GitLab's `CI_COMMIT_SHA` (`CI_COMMIT_REF_NAME`).
pub fn from_ci_variables(var: &dyn Fn(&str) -> Option<String>) -> Option<crate::rundir::GitFacts> {
    [("GITHUB_SHA", "GITHUB_REF_NAME"), ("CI_COMMIT_SHA", "CI_COMMIT_REF_NAME")]
        .into_iter()
        .find_map(|(sha, branch)| {
            let commit = var(sha).filter(|c| !c.is_empty())?;
            Some(crate::rundir::GitFacts {
                commit,
                branch: var(branch).filter(|b| !b.is_empty()),
                dirty: None,
                source: Some(sha.to_string()),
            })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_facts_come_from_git_in_a_worktree_and_from_ci_variables_without_one() {
        let repo = tempfile::tempdir().unwrap();
        let git = |dir: &std::path::Path, args: &[&str]| {
            let ok = std::process::Command::new("git")
                .arg("-C")
                .arg(dir)
                .args(["-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main"])
                .args(args)
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false);
            assert!(ok, "git {args:?}");
        };
        git(repo.path(), &["init", "-q"]);
        std::fs::write(repo.path().join("f"), "1").unwrap();
        git(repo.path(), &["add", "f"]);
        git(repo.path(), &["commit", "-q", "-m", "one"]);
        let facts = super::git(repo.path()).unwrap();
        assert_eq!((facts.branch.as_deref(), facts.dirty), (Some("main"), Some(false)));
        assert_eq!(facts.commit.len(), 40);
        // A linked worktree: `.git` is a file there, which reading it by hand missed.
        let linked = repo.path().join("wt");
        git(repo.path(), &["worktree", "add", "-q", "-b", "side", linked.to_str().unwrap()]);
        std::fs::write(linked.join("f"), "2").unwrap();
        let facts = super::git(&linked).unwrap();
        assert_eq!((facts.branch.as_deref(), facts.dirty), (Some("side"), Some(true)));
        // No repository: what the CI says it built.
        let vars = |name: &str| match name {
            "CI_COMMIT_SHA" => Some("abc123".to_string()),
            "CI_COMMIT_REF_NAME" => Some("feature".to_string()),
            _ => None,
        };
        let facts = from_ci_variables(&vars).unwrap();
        assert_eq!((facts.commit.as_str(), facts.branch.as_deref()), ("abc123", Some("feature")));
        assert_eq!(facts.source.as_deref(), Some("CI_COMMIT_SHA"));
        assert!(from_ci_variables(&|_| None).is_none());
    }

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

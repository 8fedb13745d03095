//! What the agent sees of its target: CPU, caches, memory, transparent huge
//! pages and CPU vulnerability mitigations, read from `/proc` and `/sys`.
//! The parsers are pure (text in, values out); `host.rs` uses the same ones
//! for the host's own facts, so both sides read these files alike.

use crate::protocol::{AgentFacts, CacheFact, MitigationSummary};
use std::collections::BTreeMap;
use std::path::Path;

pub const CPU0_CACHES: &str = "/sys/devices/system/cpu/cpu0/cache";
pub const THP_ENABLED: &str = "/sys/kernel/mm/transparent_hugepage/enabled";
pub const VULNERABILITIES: &str = "/sys/devices/system/cpu/vulnerabilities";

/// Flags whose presence changes results or explains them: a TSC the kernel
/// trusts (or not), vector units the compiler may use, crypto units, and
/// whether the CPU knows it runs under a hypervisor.
const KEY_FLAGS: &[&str] = &[
    "hypervisor",
    "constant_tsc",
    "nonstop_tsc",
    "tsc_known_freq",
    "tsc_reliable",
    "rdtscp",
    "sse4_2",
    "avx",
    "avx2",
    "avx512f",
    "aes",
    "sha_ni",
    "erms",
    "fsrm",
    "pdpe1gb",
];

/// Everything the agent reports in its `facts` line; `clock_res_ns` comes
/// from the clock measured just before.
pub fn gather(clock_res_ns: Option<u64>) -> AgentFacts {
    let (cpu_model, cpu_flags, cpu_key_flags) = cpuinfo(&std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default());
    AgentFacts {
        clock_res_ns,
        cpu_model,
        cpu_flags,
        cpu_key_flags,
        cpus: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        caches: caches(Path::new(CPU0_CACHES)),
        thp: read_trimmed(THP_ENABLED).and_then(|t| selected_mode(&t)),
        mitigations: vulnerabilities(Path::new(VULNERABILITIES)).map(|m| summarise(&m)),
        memory_available_bytes: memory_available_bytes(),
    }
}

/// A file's contents without surrounding white space; `None` if unreadable.
pub fn read_trimmed(path: impl AsRef<Path>) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_string())
}

/// The bracketed choice of a sysfs mode file: `always [madvise] never` → `madvise`.
pub fn selected_mode(text: &str) -> Option<String> {
    let start = text.find('[')? + 1;
    let end = start + text[start..].find(']')?;
    Some(text[start..end].to_string())
}

/// Model name, number of flags and the key flags present, from the first
/// processor block of `/proc/cpuinfo`.
pub fn cpuinfo(text: &str) -> (Option<String>, usize, Vec<String>) {
    let first = text.split("\n\n").next().unwrap_or("");
    let field = |name: &str| {
        first.lines().find_map(|l| {
            let (key, value) = l.split_once(':')?;
            (key.trim() == name).then(|| value.trim().to_string())
        })
    };
    let flags = field("flags").unwrap_or_default();
    let flags: Vec<&str> = flags.split_whitespace().collect();
    let key = KEY_FLAGS.iter().filter(|f| flags.contains(*f)).map(|f| f.to_string()).collect();
    (field("model name"), flags.len(), key)
}

/// A sysfs cache size (`32K`, `16384K`, `1M`) in bytes.
pub fn parse_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let (digits, unit) = match text.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => text.split_at(i),
        None => (text, ""),
    };
    let scale = match unit {
        "" => 1,
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => return None,
    };
    digits.parse::<u64>().ok().map(|n| n * scale)
}

/// One cache from the contents of its `level`, `type` and `size` files.
pub fn cache_from(level: &str, kind: &str, size: &str) -> Option<CacheFact> {
    Some(CacheFact {
        level: level.trim().parse().ok()?,
        kind: kind.trim().to_string(),
        size_bytes: parse_size(size)?,
    })
}

/// The caches under `dir` (`index0`, `index1`, ...), by level.
pub fn caches(dir: &Path) -> Vec<CacheFact> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<CacheFact> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("index"))
        .filter_map(|e| {
            let read = |f: &str| std::fs::read_to_string(e.path().join(f)).ok();
            cache_from(&read("level")?, &read("type")?, &read("size")?)
        })
        .collect();
    out.sort_by(|a, b| (a.level, &a.kind).cmp(&(b.level, &b.kind)));
    out
}

/// Size of the last-level data (or unified) cache, in bytes.
pub fn last_level_cache(caches: &[CacheFact]) -> Option<u64> {
    caches
        .iter()
        .filter(|c| c.kind != "Instruction")
        .max_by_key(|c| (c.level, c.size_bytes))
        .map(|c| c.size_bytes)
}

/// Every file of the vulnerabilities directory, name → its text; `None`
/// when the directory does not exist (old kernels, gVisor).
pub fn vulnerabilities(dir: &Path) -> Option<BTreeMap<String, String>> {
    let entries = std::fs::read_dir(dir).ok()?;
    Some(
        entries
            .flatten()
            .filter_map(|e| {
                let text = std::fs::read_to_string(e.path()).ok()?;
                Some((e.file_name().to_string_lossy().into_owned(), text.trim().to_string()))
            })
            .collect(),
    )
}

/// How many vulnerabilities are listed, and which are unmitigated.
pub fn summarise(vulnerabilities: &BTreeMap<String, String>) -> MitigationSummary {
    MitigationSummary {
        listed: vulnerabilities.len(),
        vulnerable: vulnerabilities
            .iter()
            .filter(|(_, text)| text.starts_with("Vulnerable"))
            .map(|(name, _)| name.clone())
            .collect(),
    }
}

/// A `/proc/meminfo` field in bytes (`MemAvailable:  812345 kB`).
pub fn meminfo_bytes(text: &str, field: &str) -> Option<u64> {
    let rest = text.lines().find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
    Some(kib * 1024)
}

/// Room left under a cgroup memory limit: `limit - usage`; `None` for no
/// limit (`max`, or v1's huge "unlimited" number).
pub fn cgroup_room(limit: &str, usage: &str) -> Option<u64> {
    let limit: u64 = limit.trim().parse().ok()?;
    let usage: u64 = usage.trim().parse().ok()?;
    (limit < 1 << 60).then(|| limit.saturating_sub(usage))
}

/// Memory this process may still use: `MemAvailable`, lowered to the room
/// left under its cgroup's limit (v2, then v1) where there is one. A
/// container sees the host's `/proc/meminfo`, so the limit matters there.
pub fn memory_available_bytes() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok();
    let available = meminfo.as_deref().and_then(|m| meminfo_bytes(m, "MemAvailable"));
    let cgroup = [
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ]
    .iter()
    .find_map(|(limit, usage)| cgroup_room(&std::fs::read_to_string(limit).ok()?, &std::fs::read_to_string(usage).ok()?));
    match (available, cgroup) {
        (Some(a), Some(c)) => Some(a.min(c)),
        (a, c) => a.or(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_sizes_and_caches_parse() {
        assert_eq!(selected_mode("always [madvise] never\n").as_deref(), Some("madvise"));
        assert_eq!(selected_mode("always madvise never"), None);
        assert_eq!(parse_size("32K\n"), Some(32 << 10));
        assert_eq!(parse_size("16384K"), Some(16 << 20));
        assert_eq!(parse_size("1M"), Some(1 << 20));
        assert_eq!(parse_size("lots"), None);
        let caches = vec![
            cache_from("1\n", "Data\n", "32K\n").unwrap(),
            cache_from("1", "Instruction", "32K").unwrap(),
            cache_from("2", "Unified", "512K").unwrap(),
            cache_from("3", "Unified", "32768K").unwrap(),
        ];
        assert_eq!(last_level_cache(&caches), Some(32 << 20));
        assert_eq!(last_level_cache(&caches[..2]), Some(32 << 10));
        assert_eq!(cache_from("x", "Data", "32K"), None);
    }

    #[test]
    fn cpuinfo_gives_model_flag_count_and_key_flags() {
        let text = "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu sse4_2 avx2 hypervisor aes\n\n\
                    processor\t: 1\nmodel name\t: other\nflags\t\t: fpu\n";
        let (model, count, key) = cpuinfo(text);
        assert_eq!(model.as_deref(), Some("AMD EPYC 7B13"));
        assert_eq!(count, 5);
        assert_eq!(key, vec!["hypervisor", "sse4_2", "avx2", "aes"]);
        assert_eq!(cpuinfo(""), (None, 0, vec![]));
    }

    #[test]
    fn vulnerabilities_are_summarised() {
        let map: BTreeMap<String, String> = [
            ("meltdown", "Not affected"),
            (
                "mds",
                "Vulnerable: Clear CPU buffers attempted, no microcode; SMT Host state unknown",
            ),
            ("spectre_v2", "Mitigation: Retpolines; IBPB: conditional"),
            ("srbds", "Vulnerable"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = summarise(&map);
        assert_eq!(s.listed, 4);
        assert_eq!(s.vulnerable, vec!["mds", "srbds"]);
    }

    #[test]
    fn vulnerabilities_are_read_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("meltdown"), "Not affected\n").unwrap();
        std::fs::write(dir.path().join("retbleed"), "Vulnerable\n").unwrap();
        let map = vulnerabilities(dir.path()).unwrap();
        assert_eq!(map["meltdown"], "Not affected");
        assert_eq!(summarise(&map).vulnerable, vec!["retbleed"]);
        assert_eq!(vulnerabilities(&dir.path().join("none")), None);
    }

    #[test]
    fn memory_room_parses() {
        let meminfo = "MemTotal:       16000000 kB\nMemAvailable:     812345 kB\n";
        assert_eq!(meminfo_bytes(meminfo, "MemAvailable"), Some(812345 * 1024));
        assert_eq!(meminfo_bytes(meminfo, "MemFree"), None);
        assert_eq!(cgroup_room("268435456\n", "68435456\n"), Some(200_000_000));
        assert_eq!(cgroup_room("max\n", "1"), None);
        assert_eq!(cgroup_room("9223372036854771712", "1"), None);
    }
}

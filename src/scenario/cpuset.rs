//! Which host CPUs the targets run on. Every target gets the same set
//! (native by affinity, a container by its cpuset, a VM's whole QEMU process
//! including its helper threads), and vmbench's own measuring thread runs
//! on the other CPUs, so placement is the same for every target and the
//! harness does not compete with what it measures.

use std::fmt;

/// A set of CPU numbers, kept sorted and without duplicates.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CpuSet(Vec<u32>);

impl CpuSet {
    pub fn new(mut cpus: Vec<u32>) -> CpuSet {
        cpus.sort_unstable();
        cpus.dedup();
        CpuSet(cpus)
    }

    /// Parses Linux's list format: `1`, `0-3`, `0,2-3`.
    pub fn parse(text: &str) -> Result<CpuSet, String> {
        let mut cpus = Vec::new();
        for part in text.split(',').map(str::trim) {
            let number = |s: &str| {
                s.trim()
                    .parse::<u32>()
                    .map_err(|_| format!("`{part}` is not a CPU number or range"))
            };
            match part.split_once('-') {
                Some((from, to)) => {
                    let (from, to) = (number(from)?, number(to)?);
                    if from > to {
                        return Err(format!("`{part}`: the range runs backwards"));
                    }
                    cpus.extend(from..=to);
                }
                None => cpus.push(number(part)?),
            }
        }
        if cpus.is_empty() {
            return Err("the CPU set is empty".into());
        }
        Ok(CpuSet::new(cpus))
    }

    pub fn cpus(&self) -> &[u32] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The CPUs of `all` that are not in this set.
    pub fn complement_in(&self, all: &CpuSet) -> CpuSet {
        CpuSet::new(all.0.iter().copied().filter(|c| !self.0.contains(c)).collect())
    }

    /// The default for a host whose usable CPUs are `host`: all but the
    /// first, which is left to vmbench; `None` (no pinning) with one CPU.
    pub fn default_for(host: &CpuSet) -> Option<CpuSet> {
        (host.len() >= 2).then(|| CpuSet::new(host.0[1..].to_vec()))
    }

    /// The CPUs this process may run on.
    pub fn allowed() -> CpuSet {
        // SAFETY: a zeroed cpu_set_t is a valid empty set; the call writes
        // at most its size.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } == 0;
        let count = std::thread::available_parallelism().map(|n| n.get() as u32).unwrap_or(1);
        if !ok {
            return CpuSet::new((0..count).collect());
        }
        let cpus = (0..libc::CPU_SETSIZE as u32)
            .filter(|&c| unsafe { libc::CPU_ISSET(c as usize, &set) })
            .collect();
        CpuSet::new(cpus)
    }

    /// Restricts the calling thread (and what it spawns from now on) to
    /// this set. Async-signal-safe: usable between fork and exec.
    pub fn apply_to_current_thread(&self) -> std::io::Result<()> {
        // SAFETY: as in `allowed`; CPU_SET only writes inside the set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &c in &self.0 {
            unsafe { libc::CPU_SET(c as usize, &mut set) };
        }
        match unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } {
            0 => Ok(()),
            _ => Err(std::io::Error::last_os_error()),
        }
    }
}

/// Linux's list format, with ranges: `0,2-3`.
impl fmt::Display for CpuSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut parts = Vec::new();
        let mut i = 0;
        while i < self.0.len() {
            let start = self.0[i];
            let mut end = start;
            while i + 1 < self.0.len() && self.0[i + 1] == end + 1 {
                i += 1;
                end = self.0[i];
            }
            parts.push(if start == end {
                start.to_string()
            } else {
                format!("{start}-{end}")
            });
            i += 1;
        }
        f.write_str(&parts.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_and_ranges_round_trip() {
        let set = CpuSet::parse("3, 0-1,1").unwrap();
        assert_eq!(set.cpus(), &[0, 1, 3]);
        assert_eq!(set.to_string(), "0-1,3");
        assert_eq!(CpuSet::parse("5").unwrap().to_string(), "5");
        assert!(CpuSet::parse("2-1").unwrap_err().contains("backwards"));
        assert!(CpuSet::parse("a").is_err() && CpuSet::parse("").is_err());
    }

    #[test]
    fn the_default_leaves_the_first_cpu_to_vmbench() {
        let host = CpuSet::parse("0-3").unwrap();
        let targets = CpuSet::default_for(&host).unwrap();
        assert_eq!(targets.to_string(), "1-3");
        assert_eq!(targets.complement_in(&host).to_string(), "0");
        assert_eq!(CpuSet::default_for(&CpuSet::parse("0").unwrap()), None);
    }

    #[test]
    fn this_process_may_run_somewhere() {
        assert!(!CpuSet::allowed().is_empty());
    }
}

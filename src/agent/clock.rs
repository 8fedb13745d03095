//! What the agent's clock can resolve, and the rule every timed region the
//! agent reports must pass.
//!
//! Every duration the agent measures is read from `CLOCK_MONOTONIC`. Its
//! resolution depends on the target: a few tens of nanoseconds with a TSC or
//! kvm-clock, but a guest under TCG can lose the TSC and fall back to the
//! `jiffies` clocksource, which advances in whole timer ticks (4 ms at
//! HZ=250). Then every duration is quantised to 4 ms and an fsync "takes"
//! 0 or 4000 µs. The rule: a timed region must last at least
//! [`MIN_RESOLUTIONS`] times the measured resolution (quantisation error at
//! most 0.1%), or the workload fails saying which region and why.

use std::time::Duration;

/// A timed region must be at least this many resolutions long.
pub const MIN_RESOLUTIONS: u64 = 1000;
/// Successive readings compared when the clock is fine-grained.
const TRIES: u32 = 1000;
/// With a coarse clock, stop after this many steps have been seen ...
const COARSE_STEPS: u32 = 3;
/// ... or once this much time has passed by the clock itself (with at least one step).
const BUDGET_NS: u64 = 50_000_000;
/// A clock that has not moved after this many readings is stuck.
const MAX_READS: u64 = 20_000_000;

const CLOCKSOURCE: &str = "/sys/devices/system/clocksource/clocksource0/current_clocksource";

/// The agent's clock as measured inside this target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Clock {
    /// Smallest non-zero step between successive `CLOCK_MONOTONIC` readings,
    /// in ns; `None` if the clock never advanced.
    pub res_ns: Option<u64>,
    /// The kernel's current clocksource (`tsc`, `kvm-clock`, `jiffies`), if
    /// sysfs shows it.
    pub source: Option<String>,
}

impl Clock {
    /// Measures the resolution now (about 1000 readings on a fine clock, at
    /// most ~50 ms on a coarse one) and reads the clocksource.
    pub fn measure() -> Clock {
        Clock {
            res_ns: measure_resolution(monotonic_ns),
            source: clocksource(),
        }
    }

    /// Fails unless the timed region `region` (`what` says what one region
    /// is) of `region_ns` is at least [`MIN_RESOLUTIONS`] × the resolution.
    pub fn check(&self, region: &str, what: &str, region_ns: f64) -> Result<(), String> {
        let source = self.source.as_deref().unwrap_or("unknown");
        let Some(res) = self.res_ns else {
            return Err(format!(
                "timed region {region} cannot be measured: CLOCK_MONOTONIC did not advance over {MAX_READS} readings (clocksource {source})"
            ));
        };
        if region_ns >= (res * MIN_RESOLUTIONS) as f64 {
            return Ok(());
        }
        Err(format!(
            "timed region {region} ({what}, ~{}) is under {MIN_RESOLUTIONS}x the clock's resolution {} (clocksource {source})",
            human_ns(region_ns),
            human_ns(res as f64)
        ))
    }
}

/// `CLOCK_MONOTONIC` now, in ns (what `Instant` reads).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// What `clock_getres(CLOCK_MONOTONIC)` claims, in ns. The kernel says 1 ns
/// whenever high-resolution timers run, whatever the clocksource really
/// resolves, so this is recorded beside the measured value, not instead.
pub fn getres_ns() -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable timespec.
    let rc = unsafe { libc::clock_getres(libc::CLOCK_MONOTONIC, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// Whether two clocksources read the same counter: the kernel replaces
/// `tsc-early` with `tsc` once it has calibrated the TSC (about a second
/// after boot, so often while a VM's first workload runs); that changes the
/// name, not the clock.
pub fn same_counter(a: Option<&str>, b: Option<&str>) -> bool {
    let counter = |s: Option<&str>| s.map(|s| s.strip_suffix("-early").unwrap_or(s).to_string());
    counter(a) == counter(b)
}

/// The current clocksource from sysfs; `None` without `/sys` (gVisor shows
/// none, and the file may simply be absent).
pub fn clocksource() -> Option<String> {
    let text = std::fs::read_to_string(CLOCKSOURCE).ok()?;
    Some(text.trim().to_string()).filter(|s| !s.is_empty())
}

/// Smallest non-zero difference between successive values of `read` (ns).
/// A fine clock steps on almost every reading, so [`TRIES`] readings are
/// enough; a coarse one stays put for a whole tick, so reading goes on until
/// a few steps were seen or [`BUDGET_NS`] passed by the clock itself.
pub fn measure_resolution(mut read: impl FnMut() -> u64) -> Option<u64> {
    let first = read();
    let (mut last, mut smallest, mut steps) = (first, u64::MAX, 0u32);
    for reads in 1..=MAX_READS {
        let now = read();
        if now > last {
            smallest = smallest.min(now - last);
            steps += 1;
        }
        last = now;
        let fine_done = reads >= TRIES as u64 && steps >= COARSE_STEPS;
        let out_of_time = steps >= 1 && now.saturating_sub(first) >= BUDGET_NS;
        if fine_done || out_of_time || steps >= TRIES {
            break;
        }
    }
    (steps > 0).then_some(smallest)
}

/// A duration for people: `25 ns`, `60 µs`, `4 ms`, `1.5 s`.
pub fn human_ns(ns: f64) -> String {
    let (value, unit) = if ns < 1e3 {
        (ns, "ns")
    } else if ns < 1e6 {
        (ns / 1e3, "µs")
    } else if ns < 1e9 {
        (ns / 1e6, "ms")
    } else {
        (ns / 1e9, "s")
    };
    let digits = if value >= 10.0 || value.fract() == 0.0 { 0 } else { 1 };
    format!("{value:.digits$} {unit}")
}

/// A duration in ns, as [`Clock::check`] takes it.
pub fn ns(d: Duration) -> f64 {
    d.as_nanos() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_early_tsc_and_the_tsc_are_one_counter() {
        assert!(same_counter(Some("tsc-early"), Some("tsc")));
        assert!(same_counter(Some("kvm-clock"), Some("kvm-clock")));
        assert!(!same_counter(Some("tsc"), Some("jiffies")));
        assert!(!same_counter(None, Some("tsc")));
    }

    #[test]
    fn a_fine_clock_resolves_its_step() {
        let mut t = 0;
        let res = measure_resolution(|| {
            t += 25;
            t
        });
        assert_eq!(res, Some(25));
    }

    #[test]
    fn a_jiffies_clock_resolves_to_its_tick() {
        // Each reading costs 1 µs of real time; the clock shows 4 ms ticks.
        let mut real = 0u64;
        let res = measure_resolution(|| {
            real += 1_000;
            real / 4_000_000 * 4_000_000
        });
        assert_eq!(res, Some(4_000_000));
    }

    #[test]
    fn a_stuck_clock_has_no_resolution() {
        assert_eq!(measure_resolution(|| 7), None);
    }

    #[test]
    fn regions_under_1000_resolutions_fail_and_say_why() {
        let jiffies = Clock {
            res_ns: Some(4_000_000),
            source: Some("jiffies".into()),
        };
        let e = jiffies.check("fsync", "one operation", 60_000.0).unwrap_err();
        assert_eq!(
            e,
            "timed region fsync (one operation, ~60 µs) is under 1000x the clock's resolution 4 ms (clocksource jiffies)"
        );
        assert!(jiffies.check("chase", "all steps", 4e9).is_ok());
        let tsc = Clock {
            res_ns: Some(25),
            source: Some("tsc".into()),
        };
        assert!(tsc.check("fsync", "one operation", 60_000.0).is_ok());
        assert!(tsc.check("x", "one call", 24_999.0).is_err());
        let stuck = Clock {
            res_ns: None,
            source: None,
        };
        assert!(stuck.check("x", "y", 1e12).unwrap_err().contains("did not advance"));
    }

    #[test]
    fn this_machine_has_a_usable_clock() {
        let clock = Clock::measure();
        assert!(clock.res_ns.is_some_and(|r| r > 0), "{clock:?}");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(human_ns(25.0), "25 ns");
        assert_eq!(human_ns(60_000.0), "60 µs");
        assert_eq!(human_ns(4_000_000.0), "4 ms");
        assert_eq!(human_ns(1_500_000_000.0), "1.5 s");
    }
}

//! Memory: STREAM-style copy/scale/add/triad bandwidth over arrays larger
//! than the caches (best of `stream_reps`, as STREAM reports), and the
//! latency of dependent random loads (pointer chasing over a random cycle of
//! cache lines, so neither the prefetcher nor the cache helps).
//!
//! Every buffer is its own anonymous mapping, 2 MiB aligned, advised for
//! transparent huge pages as `huge_pages` says before any page is touched,
//! then written in full before anything is timed; it is unmapped when
//! dropped, so the STREAM arrays are gone before the chase buffer exists.

use super::params::{read, ParamSpec, XorShift};
use super::{Metrics, Params, Workload, WorkloadError};
use crate::agent::clock::Clock;
use crate::agent::facts;
use std::hint::black_box;
use std::ops::{Deref, DerefMut};
use std::time::Instant;

pub struct Memory;

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "stream_mib",
        default: 0,
        min: 0,
        max: 1_048_576,
        doc: "MiB per STREAM array (three arrays); 0 = 4 × the last-level cache, at least 16 MiB, capped to fit the memory the agent sees",
    },
    ParamSpec {
        name: "stream_reps",
        default: 5,
        min: 1,
        max: 1000,
        doc: "passes over each kernel; the best is reported",
    },
    ParamSpec {
        name: "chase_mib",
        default: 128,
        min: 1,
        max: 1_048_576,
        doc: "MiB walked by the pointer chase",
    },
    ParamSpec {
        name: "chase_steps",
        default: 2_000_000,
        min: 1,
        max: 10_000_000_000,
        doc: "dependent loads timed",
    },
    ParamSpec {
        name: "huge_pages",
        default: 0,
        min: 0,
        max: 2,
        doc: "transparent huge pages for the buffers: 0 = the kernel's setting, 1 = off (MADV_NOHUGEPAGE), 2 = on (MADV_HUGEPAGE)",
    },
];
const MIB: u64 = 1024 * 1024;
/// One node per cache line.
const LINE_WORDS: usize = 8;
/// Smallest array `stream_mib = 0` picks; a target that cannot hold three
/// of these cannot run the workload.
pub const AUTO_FLOOR_MIB: u64 = 16;
/// The array size `stream_mib = 0` picks when sysfs shows no caches: 4 × a
/// 32 MiB last-level cache.
const AUTO_UNKNOWN_MIB: u64 = 128;
/// Huge-page size on x86_64; buffers start on this boundary.
const HUGE: usize = 2 << 20;

impl Workload for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, params: &Params, env: &super::Env) -> Result<Metrics, WorkloadError> {
        let [stream_mib, reps, chase_mib, steps, huge] = read(params, "memory", PARAMS)?[..] else {
            unreachable!("one value per spec")
        };
        let huge = HugePages::from_param(huge);
        let array_bytes = match stream_mib {
            0 => {
                let caches = facts::caches(std::path::Path::new(facts::CPU0_CACHES));
                auto_array_bytes(facts::last_level_cache(&caches), facts::memory_available_bytes())?
            }
            mib => mib * MIB,
        };
        let mut m = stream(array_bytes as usize / 8, reps as usize, huge, &env.clock)?;
        m.insert("stream_array_bytes".into(), array_bytes as f64);
        let chase_nodes = (chase_mib * MIB) as usize / (LINE_WORDS * 8);
        let (latency_ns, huge_bytes) = chase(chase_nodes, steps as usize, huge, &env.clock)?;
        m.insert("chase_latency_ns".into(), latency_ns);
        if let Some(bytes) = huge_bytes {
            m.insert("chase_anon_huge_bytes".into(), bytes as f64);
        }
        Ok(m)
    }
}

/// MiB the workload needs at its peak: the three STREAM arrays, or later
/// the chase buffer with its shuffled order (one word per line), whichever
/// is more. The scenario validator checks this against each target.
pub fn needed_mib(stream_mib: u64, chase_mib: u64) -> u64 {
    let stream = if stream_mib == 0 { AUTO_FLOOR_MIB } else { stream_mib };
    (3 * stream).max(chase_mib + chase_mib.div_ceil(8))
}

/// The array size of `stream_mib = 0`: 4 × the last-level cache (STREAM's
/// rule, so the arrays come from memory), at least [`AUTO_FLOOR_MIB`], at
/// most what lets three arrays fit in three quarters of `available`.
pub fn auto_array_bytes(llc: Option<u64>, available: Option<u64>) -> Result<u64, String> {
    let want = llc.map_or(AUTO_UNKNOWN_MIB * MIB, |l| 4 * l).max(AUTO_FLOOR_MIB * MIB);
    let want = want.div_ceil(MIB) * MIB;
    let cap = available.map_or(u64::MAX, |a| a / 4 / MIB * MIB);
    let size = want.min(cap);
    if size < AUTO_FLOOR_MIB * MIB {
        return Err(format!(
            "only {} MiB of memory available: too little for three {AUTO_FLOOR_MIB} MiB STREAM arrays",
            available.unwrap_or(0) / MIB
        ));
    }
    Ok(size)
}

/// The `huge_pages` parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum HugePages {
    /// Whatever `/sys/kernel/mm/transparent_hugepage/enabled` says.
    Default,
    Off,
    On,
}

impl HugePages {
    fn from_param(value: u64) -> HugePages {
        match value {
            1 => HugePages::Off,
            2 => HugePages::On,
            _ => HugePages::Default,
        }
    }
}

/// Element types for which all-zero bytes (a fresh anonymous mapping) are a
/// valid value.
///
/// # Safety
/// Implement only for types whose all-zero bit pattern is valid.
unsafe trait Zeroable: Copy {}
// SAFETY: 0.0 and 0 are valid values.
unsafe impl Zeroable for f64 {}
// SAFETY: as above.
unsafe impl Zeroable for usize {}

/// One buffer in its own anonymous mapping (see the module comment).
struct Mapped<T> {
    base: *mut libc::c_void,
    map_len: usize,
    data: *mut T,
    len: usize,
}

impl<T: Zeroable> Mapped<T> {
    fn new(len: usize, huge: HugePages) -> Result<Mapped<T>, WorkloadError> {
        let bytes = len * std::mem::size_of::<T>();
        // One huge page extra, so the data can start on a 2 MiB boundary.
        let map_len = bytes + HUGE;
        let (prot, flags) = (libc::PROT_READ | libc::PROT_WRITE, libc::MAP_PRIVATE | libc::MAP_ANONYMOUS);
        // SAFETY: a fresh private anonymous mapping; no existing memory is touched.
        let base = unsafe { libc::mmap(std::ptr::null_mut(), map_len, prot, flags, -1, 0) };
        if base == libc::MAP_FAILED {
            let e = std::io::Error::last_os_error();
            return Err(format!("mapping {} MiB: {e}", bytes as u64 / MIB).into());
        }
        let data = (base as usize).next_multiple_of(HUGE) as *mut T;
        let mapped = Mapped { base, map_len, data, len };
        mapped.advise(bytes, huge)?;
        Ok(mapped)
    }

    /// Applies `huge_pages` before the first touch, when it decides what
    /// backs each page.
    fn advise(&self, bytes: usize, huge: HugePages) -> Result<(), WorkloadError> {
        let advice = match huge {
            HugePages::Default => return Ok(()),
            HugePages::Off => libc::MADV_NOHUGEPAGE,
            HugePages::On => libc::MADV_HUGEPAGE,
        };
        // SAFETY: the range lies inside our own mapping and starts page aligned.
        if unsafe { libc::madvise(self.data.cast(), bytes, advice) } == 0 {
            return Ok(());
        }
        let e = std::io::Error::last_os_error();
        match huge {
            // A kernel without transparent huge pages has none to turn off.
            HugePages::Off => Ok(()),
            _ => Err(WorkloadError::Unsupported(format!(
                "huge_pages = 2 asks for MADV_HUGEPAGE, which this kernel refuses ({e})"
            ))),
        }
    }

    fn addr(&self) -> usize {
        self.data as usize
    }
}

impl<T> Deref for Mapped<T> {
    type Target = [T];
    fn deref(&self) -> &[T] {
        // SAFETY: `data` points to `len` initialised (zero or written) values
        // inside our mapping, which lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

impl<T> DerefMut for Mapped<T> {
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in `deref`; `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.len) }
    }
}

impl<T> Drop for Mapped<T> {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the mapping made in `new`.
        unsafe { libc::munmap(self.base, self.map_len) };
    }
}

/// Seconds `f` takes.
fn timed(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64()
}

/// The four STREAM kernels over arrays of `len` f64, best of `reps` each.
fn stream(len: usize, reps: usize, huge: HugePages, clock: &Clock) -> Result<Metrics, WorkloadError> {
    let mut a = Mapped::<f64>::new(len, huge)?;
    let mut b = Mapped::<f64>::new(len, huge)?;
    let mut c = Mapped::<f64>::new(len, huge)?;
    // Written in full, so no page fault lands in a timed pass.
    a.fill(1.0);
    b.fill(2.0);
    c.fill(0.5);
    // Opaque to the compiler, so it can neither turn copy into a memcpy call
    // nor fold the arithmetic.
    let (mask, scalar) = (black_box(0u64), black_box(3.0f64));
    // A pass runs each kernel `inner` times back to back, enough for the
    // clock to time it (1 on a fine clock; more where a clock read is slow,
    // as under gVisor). The untimed copies that find it are the warm-up;
    // doubling with a margin, since the first passes are slower than later ones.
    let threshold = clock.res_ns.map_or(0.0, |res| (res * 1000) as f64 / 1e9);
    // Two untimed passes first: under gVisor the first ones over fresh
    // arrays take four times as long as the rest.
    (0..2).for_each(|_| copy(&mut c, &a, mask));
    let mut inner = 1;
    while inner < 1024 && timed(|| (0..inner).for_each(|_| copy(&mut c, &a, mask))) < 1.5 * threshold {
        inner *= 2;
    }
    let mut best = [f64::MAX; 4];
    for _ in 0..reps {
        best[0] = best[0].min(timed(|| (0..inner).for_each(|_| copy(&mut c, &a, mask))) / inner as f64);
        best[1] = best[1].min(timed(|| (0..inner).for_each(|_| scale(&mut b, &c, scalar))) / inner as f64);
        best[2] = best[2].min(timed(|| (0..inner).for_each(|_| add(&mut c, &a, &b))) / inner as f64);
        best[3] = best[3].min(timed(|| (0..inner).for_each(|_| triad(&mut a, &b, &c, scalar))) / inner as f64);
    }
    black_box((&a[..], &b[..], &c[..]));
    let names = ["stream_copy", "stream_scale", "stream_add", "stream_triad"];
    let what = format!("{inner} pass(es) over {} MiB arrays", (len * 8) as u64 / MIB);
    for (name, secs) in names.iter().zip(best) {
        // The best pass is the shortest, so every pass passes if it does.
        clock.check(name, &what, secs * inner as f64 * 1e9)?;
    }
    // Bytes moved per kernel: copy and scale read one array and write one;
    // add and triad read two and write one.
    let bytes = (len * 8) as f64;
    let moved = [2.0, 2.0, 3.0, 3.0];
    Ok(names
        .iter()
        .zip(best.iter().zip(moved))
        .map(|(name, (secs, arrays))| (format!("{name}_gb_per_s"), arrays * bytes / secs / 1e9))
        .collect())
}

/// c = a, element by element. XOR with a mask that is zero at run time (but
/// unknown to the compiler) keeps this a loop of vector loads and stores:
/// a plain copy loop is recognised as a memcpy idiom and becomes a call into
/// the C library, whose copy strategy (non-temporal stores, `rep movsb`)
/// would then be what is measured.
#[inline(never)]
fn copy(c: &mut [f64], a: &[f64], mask: u64) {
    for (ci, ai) in c.iter_mut().zip(a) {
        *ci = f64::from_bits(ai.to_bits() ^ mask);
    }
}

/// b = s × c.
#[inline(never)]
fn scale(b: &mut [f64], c: &[f64], s: f64) {
    for (bi, ci) in b.iter_mut().zip(c) {
        *bi = s * ci;
    }
}

/// c = a + b.
#[inline(never)]
fn add(c: &mut [f64], a: &[f64], b: &[f64]) {
    for ((ci, ai), bi) in c.iter_mut().zip(a).zip(b) {
        *ci = ai + bi;
    }
}

/// a = b + s × c.
#[inline(never)]
fn triad(a: &mut [f64], b: &[f64], c: &[f64], s: f64) {
    for ((ai, bi), ci) in a.iter_mut().zip(b).zip(c) {
        *ai = bi + s * ci;
    }
}

/// Nanoseconds per dependent load over a random cycle through `nodes`
/// lines, and the bytes of the buffer backed by transparent huge pages
/// (`None` where `/proc/self/smaps` cannot say).
fn chase(nodes: usize, steps: usize, huge: HugePages, clock: &Clock) -> Result<(f64, Option<u64>), WorkloadError> {
    let mut next = Mapped::<usize>::new(nodes * LINE_WORDS, huge)?;
    {
        // Sattolo's algorithm: a random permutation that is one single cycle.
        let mut order: Vec<usize> = (0..nodes).collect();
        let mut rng = XorShift(0x2545f4914f6cdd1d);
        for i in (1..nodes).rev() {
            let j = (rng.next_u64() % i as u64) as usize;
            order.swap(i, j);
        }
        // Writes one word of every line, so every page is touched.
        for i in 0..nodes {
            next[order[i] * LINE_WORDS] = order[(i + 1) % nodes] * LINE_WORDS;
        }
    }
    let huge_bytes = std::fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|smaps| anon_huge_kib_at(&smaps, next.addr()))
        .map(|kib| kib * 1024);
    let mut p = 0usize;
    // One lap to warm the TLB as far as it goes.
    for _ in 0..nodes.min(steps) {
        p = next[p];
    }
    let t = Instant::now();
    for _ in 0..steps {
        p = next[p];
    }
    let secs = t.elapsed().as_secs_f64();
    black_box(p);
    clock.check("chase", &format!("{steps} dependent loads"), secs * 1e9)?;
    Ok((secs * 1e9 / steps as f64, huge_bytes))
}

/// `AnonHugePages` (kB) of the mapping holding `addr`, from the text of
/// `/proc/self/smaps`.
pub fn anon_huge_kib_at(smaps: &str, addr: usize) -> Option<u64> {
    let mut inside = false;
    for line in smaps.lines() {
        let first = line.split_whitespace().next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-') {
            if let (Ok(start), Ok(end)) = (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16)) {
                inside = (start..end).contains(&addr);
                continue;
            }
        }
        if let Some(rest) = line.strip_prefix("AnonHugePages:").filter(|_| inside) {
            return rest.split_whitespace().next()?.parse().ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> Params {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn small_run_reports_every_metric() {
        for huge in ["0", "1", "2"] {
            let p = params(&[
                ("stream_mib", "4"),
                ("stream_reps", "1"),
                ("chase_mib", "4"),
                ("chase_steps", "100000"),
                ("huge_pages", huge),
            ]);
            let m = Memory.run(&p, &Default::default()).unwrap();
            for key in [
                "stream_copy_gb_per_s",
                "stream_scale_gb_per_s",
                "stream_add_gb_per_s",
                "stream_triad_gb_per_s",
                "chase_latency_ns",
            ] {
                assert!(m[key] > 0.0 && m[key].is_finite(), "{key}: {m:?}");
            }
            assert_eq!(m["stream_array_bytes"], (4 * MIB) as f64);
            if huge == "1" {
                assert_eq!(m.get("chase_anon_huge_bytes"), Some(&0.0), "{m:?}");
            }
        }
    }

    #[test]
    fn the_kernels_compute_stream() {
        let (mut a, mut b, mut c) = (vec![1.0; 5], vec![2.0; 5], vec![0.5; 5]);
        copy(&mut c, &a, 0);
        assert_eq!(c, a);
        scale(&mut b, &c, 3.0);
        add(&mut c, &a, &b);
        triad(&mut a, &b, &c, 3.0);
        assert_eq!((b[0], c[0], a[0]), (3.0, 4.0, 15.0));
    }

    #[test]
    fn auto_size_follows_the_cache_within_memory() {
        // 4 × a 32 MiB cache when memory allows.
        assert_eq!(auto_array_bytes(Some(32 * MIB), None), Ok(128 * MIB));
        // At least the floor for a small cache.
        assert_eq!(auto_array_bytes(Some(MIB), Some(64 << 30)), Ok(16 * MIB));
        // A 256 MiB target with ~200 MiB available: a quarter each.
        assert_eq!(auto_array_bytes(Some(32 * MIB), Some(200 * MIB)), Ok(50 * MIB));
        assert_eq!(auto_array_bytes(None, None), Ok(128 * MIB));
        assert!(auto_array_bytes(Some(32 * MIB), Some(40 * MIB)).is_err());
    }

    #[test]
    fn peak_need_is_the_larger_phase() {
        assert_eq!(needed_mib(0, 128), 144);
        assert_eq!(needed_mib(128, 128), 384);
        assert_eq!(needed_mib(16, 16), 48);
    }

    #[test]
    fn smaps_gives_the_huge_pages_of_one_mapping() {
        let smaps = "00400000-00452000 r-xp 00000000 08:02 173521 /bin/agent\n\
                     AnonHugePages:         0 kB\n\
                     7f0000000000-7f0008000000 rw-p 00000000 00:00 0\n\
                     Size:             131072 kB\n\
                     AnonHugePages:    126976 kB\n\
                     VmFlags: rd wr mr mw me ac hg\n";
        assert_eq!(anon_huge_kib_at(smaps, 0x7f0000200000), Some(126976));
        assert_eq!(anon_huge_kib_at(smaps, 0x400100), Some(0));
        assert_eq!(anon_huge_kib_at(smaps, 0x10), None);
    }

    #[test]
    fn unknown_parameters_are_rejected() {
        let p = params(&[("stream_gib", "1")]);
        assert!(Memory
            .run(&p, &Default::default())
            .unwrap_err()
            .to_string()
            .contains("no parameter `stream_gib`"));
    }
}

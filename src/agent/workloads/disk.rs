//! Disk: sequential write and read (O_DIRECT, fsync after the writes),
//! 4 KiB random read and write IOPS (O_DIRECT), and the latency of a 4 KiB
//! write followed by `fdatasync`. In a VM the target is the virtio-blk
//! device backed by a raw image file on the host; elsewhere a file in a host
//! directory. O_DIRECT keeps the page cache out of the numbers, so what is
//! measured is the path to the host's storage.
//!
//! Everything written is pseudo-random (filled once from a fast generator)
//! with each 4 KiB page stamped with its offset, so no layer below can
//! compress it, skip it as zeros or deduplicate it. `iodepth` N runs the
//! random passes as N threads, each doing one synchronous `pread`/`pwrite`
//! at a time on its own slice of the file: N requests in flight, as fio's
//! psync engine with N jobs, not an asynchronous (libaio/io_uring) queue.

use super::params::{fill_random, read, ParamSpec, XorShift};
use super::{Env, Metrics, Params, Workload};
use crate::percentile::nearest_rank;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::sync::Barrier;
use std::time::{Duration, Instant};

pub struct Disk;

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "file_mib",
        default: 256,
        min: 16,
        max: 1_048_576,
        doc: "size of the file (or disk) written and read",
    },
    ParamSpec {
        name: "block_kib",
        default: 1024,
        min: 4,
        max: 65_536,
        doc: "block size of the sequential passes",
    },
    ParamSpec {
        name: "rand_ops",
        default: 2000,
        min: 1,
        max: 10_000_000,
        doc: "4 KiB random reads, and as many random writes",
    },
    ParamSpec {
        name: "fsync_ops",
        default: 200,
        min: 1,
        max: 1_000_000,
        doc: "4 KiB writes each followed by fdatasync",
    },
    ParamSpec {
        name: "iodepth",
        default: 1,
        min: 1,
        max: 64,
        doc: "random I/O in flight: N threads with one synchronous 4 KiB I/O each, on separate slices of the file",
    },
];

const ALIGN: usize = 4096;

impl Workload for Disk {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, params: &Params, env: &Env) -> Result<Metrics, super::WorkloadError> {
        let [file_mib, block_kib, rand_ops, fsync_ops, iodepth] = read(params, "disk", PARAMS)?[..] else {
            unreachable!("one value per spec")
        };
        let path = env
            .scratch
            .as_deref()
            .ok_or("the disk workload needs a scratch location (vmbench.scratch=)")?;
        let file = open_scratch(path)?;
        let size = file_mib * 1024 * 1024;
        let blocks = size / ALIGN as u64;
        let mut m = sequential_passes(&file, size, (block_kib * 1024) as usize, env)?;
        for (write, name) in [(false, "rand_read"), (true, "rand_write")] {
            let unit = format!("{name}_io");
            let secs = env.per_unit(&unit, || {
                Ok((random_pass(&file, blocks, rand_ops, iodepth as usize, write)?, rand_ops as f64))
            })?;
            let what = format!("{rand_ops} operations at iodepth {iodepth}");
            env.clock.check(&name.replace('_', " "), &what, secs * 1e9)?;
            m.insert(format!("{name}_iops"), rand_ops as f64 / secs);
        }
        let mut latencies = fsync_latencies(&file, blocks, fsync_ops, &mut XorShift(0x9e3779b97f4a7c15))?;
        latencies.sort_by(f64::total_cmp);
        // Nearest rank, the one definition the host and the summaries use.
        let p50 = nearest_rank(&latencies, 0.50);
        // What is timed is each operation; the median one's length stands for
        // the reported percentiles (p99 is longer still).
        env.clock
            .check("fsync", &format!("one operation, median of {fsync_ops}"), p50 * 1e3)?;
        m.insert("fsync_p50_us".into(), p50);
        m.insert("fsync_p99_us".into(), nearest_rank(&latencies, 0.99));
        Ok(m)
    }
}

/// A scratch location named by the disk's serial number (`serial:NAME`):
/// a guest system has its own root disk too, and which of the two the kernel
/// calls `vda` is not fixed.
pub const SERIAL_PREFIX: &str = "serial:";

/// The block device whose virtio serial is `serial`, waiting for it.
fn by_serial(serial: &str, timeout: Duration) -> Result<String, String> {
    let start = std::time::Instant::now();
    loop {
        let found = std::fs::read_dir("/sys/block").ok().and_then(|entries| {
            entries.flatten().find_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let own = std::fs::read_to_string(e.path().join("serial")).ok()?;
                (own.trim() == serial).then(|| format!("/dev/{name}"))
            })
        });
        match found {
            Some(dev) => return Ok(dev),
            None if start.elapsed() > timeout => {
                return Err(format!("no disk with serial {serial} appeared in /sys/block"));
            }
            None => std::thread::sleep(Duration::from_millis(5)),
        }
    }
}

/// Opens the scratch file or device with O_DIRECT, loading a VM's block
/// driver first.
fn open_scratch(path: &str) -> Result<File, super::WorkloadError> {
    let resolved;
    let path = match path.strip_prefix(SERIAL_PREFIX) {
        Some(serial) => {
            resolved = by_serial(serial, Duration::from_secs(10))?;
            resolved.as_str()
        }
        None => path,
    };
    if path.starts_with("/dev/") {
        super::super::modules::load_all()?;
        super::super::modules::wait_for(path, Duration::from_secs(10))?;
    }
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(!path.starts_with("/dev/"))
        .truncate(false)
        .custom_flags(libc::O_DIRECT)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            // The file system has no direct I/O (tmpfs, some sandboxes).
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
                super::WorkloadError::Unsupported(format!("{path} cannot be opened with O_DIRECT here ({e})"))
            }
            _ => super::WorkloadError::Failed(format!("cannot open {path} with O_DIRECT ({e})")),
        })
}

/// The sequential write (with its final fsync) and read, each one timed
/// region.
fn sequential_passes(file: &File, size: u64, block: usize, env: &super::Env) -> Result<Metrics, String> {
    let mut buf = AlignedBuf::new(block.max(ALIGN));
    buf.fill(&mut XorShift(0xd1b54a32d192ed03));
    let mut m = Metrics::new();
    for (write, name) in [(true, "seq_write"), (false, "seq_read")] {
        let unit = format!("{name}_mb");
        let secs = env.per_unit(&unit, || {
            Ok((timed(|| sequential(file, size, &mut buf, block, write))?, size as f64 / 1e6))
        })?;
        let what = format!("{} MiB in {} KiB blocks", size >> 20, block >> 10);
        env.clock.check(&name.replace('_', " "), &what, secs * 1e9)?;
        m.insert(format!("{name}_mb_per_s"), size as f64 / secs / 1e6);
    }
    Ok(m)
}

fn timed(f: impl FnOnce() -> Result<(), String>) -> Result<f64, String> {
    let t = Instant::now();
    f()?;
    Ok(t.elapsed().as_secs_f64())
}

fn sequential(file: &File, size: u64, buf: &mut AlignedBuf, block: usize, write: bool) -> Result<(), String> {
    let mut offset = 0;
    while offset < size {
        let len = block.min((size - offset) as usize);
        let r = if write {
            buf.stamp(offset);
            file.write_all_at(&buf.as_mut()[..len], offset)
        } else {
            file.read_exact_at(&mut buf.as_mut()[..len], offset)
        };
        r.map_err(|e| format!("{} at offset {offset}: {e}", if write { "write" } else { "read" }))?;
        offset += len as u64;
    }
    if write {
        file.sync_all().map_err(|e| format!("fsync after the sequential write: {e}"))?;
    }
    Ok(())
}

/// `ops` random 4 KiB reads or writes spread over `depth` threads, each on
/// its own slice of the file's `blocks`; all start together after a
/// barrier. Returns the seconds from the first start to the last finish.
fn random_pass(file: &File, blocks: u64, ops: u64, depth: usize, write: bool) -> Result<f64, String> {
    let barrier = Barrier::new(depth);
    let spans: Vec<Result<(Instant, Instant), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..depth)
            .map(|t| {
                let (first, count) = (blocks * t as u64 / depth as u64, blocks / depth as u64);
                let ops = ops / depth as u64 + u64::from((t as u64) < ops % depth as u64);
                let barrier = &barrier;
                scope.spawn(move || -> Result<(Instant, Instant), String> {
                    let mut rng = XorShift(0x2545f4914f6cdd1d_u64.wrapping_mul(t as u64 + 1) | 1);
                    let mut page = AlignedBuf::new(ALIGN);
                    page.fill(&mut rng);
                    barrier.wait();
                    let start = Instant::now();
                    random(file, (first, count.max(1)), ops, &mut rng, &mut page, write)?;
                    Ok((start, Instant::now()))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("a disk I/O thread panicked")).collect()
    });
    let spans = spans.into_iter().collect::<Result<Vec<_>, String>>()?;
    let start = spans.iter().map(|s| s.0).min().expect("at least one thread");
    let end = spans.iter().map(|s| s.1).max().expect("at least one thread");
    Ok((end - start).as_secs_f64())
}

/// `ops` random 4 KiB I/Os within the blocks `first..first + count`.
fn random(file: &File, (first, count): (u64, u64), ops: u64, rng: &mut XorShift, page: &mut AlignedBuf, write: bool) -> Result<(), String> {
    for _ in 0..ops {
        let offset = (first + rng.next_u64() % count) * ALIGN as u64;
        let r = if write {
            page.stamp(offset);
            file.write_all_at(page.as_mut(), offset)
        } else {
            file.read_exact_at(page.as_mut(), offset)
        };
        r.map_err(|e| format!("random {} at {offset}: {e}", if write { "write" } else { "read" }))?;
    }
    Ok(())
}

/// Microseconds of each 4 KiB write + `fdatasync`, one at a time.
fn fsync_latencies(file: &File, blocks: u64, ops: u64, rng: &mut XorShift) -> Result<Vec<f64>, String> {
    let mut page = AlignedBuf::new(ALIGN);
    page.fill(rng);
    let mut out = Vec::with_capacity(ops as usize);
    for _ in 0..ops {
        let offset = (rng.next_u64() % blocks) * ALIGN as u64;
        page.stamp(offset);
        let t = Instant::now();
        file.write_all_at(page.as_mut(), offset)
            .map_err(|e| format!("write before fdatasync: {e}"))?;
        file.sync_data().map_err(|e| format!("fdatasync: {e}"))?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(out)
}

/// A page-aligned buffer, as O_DIRECT requires.
struct AlignedBuf {
    ptr: *mut u8,
    layout: std::alloc::Layout,
}

impl AlignedBuf {
    fn new(len: usize) -> Self {
        let layout = std::alloc::Layout::from_size_align(len, ALIGN).expect("valid layout");
        // SAFETY: the layout has a non-zero size.
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        assert!(!ptr.is_null(), "out of memory for an I/O buffer");
        AlignedBuf { ptr, layout }
    }

    fn as_mut(&mut self) -> &mut [u8] {
        // SAFETY: ptr is valid for layout.size() bytes for our lifetime.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.layout.size()) }
    }

    fn fill(&mut self, rng: &mut XorShift) {
        fill_random(self.as_mut(), rng);
    }

    /// Writes each page's file offset (buffer at `offset`) into its first 8
    /// bytes, so no two pages written are the same.
    fn stamp(&mut self, offset: u64) {
        for (i, page) in self.as_mut().chunks_exact_mut(ALIGN).enumerate() {
            page[..8].copy_from_slice(&(offset + (i * ALIGN) as u64).to_le_bytes());
        }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A directory beside the test binary, in whatever target directory
    /// cargo uses: a disk-backed file system that takes O_DIRECT (`/tmp`
    /// may be a tmpfs that refuses it), without assuming that the package
    /// directory has a `target/`.
    fn disk_backed_tempdir() -> tempfile::TempDir {
        let exe = std::env::current_exe().unwrap();
        tempfile::tempdir_in(exe.parent().unwrap()).unwrap()
    }

    #[test]
    fn a_small_run_on_a_real_file_reports_every_metric() {
        let dir = disk_backed_tempdir();
        let path = dir.path().join("disk.img");
        let params: Params = [
            ("file_mib", "16"),
            ("block_kib", "256"),
            ("rand_ops", "50"),
            ("fsync_ops", "10"),
            ("iodepth", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = lines.clone();
        let env = Env {
            scratch: Some(path.display().to_string()),
            region: std::sync::Arc::new(Box::new(move |unit: &str, units| {
                seen.lock().unwrap().push((unit.to_string(), units))
            })),
            ..Default::default()
        };
        let m = Disk.run(&params, &env).unwrap();
        // Each region a begin and an end with the work it did, for the host's
        // CPU time per unit.
        let mb = 16.0 * 1048576.0 / 1e6;
        let expected: Vec<(String, Option<f64>)> = [
            ("seq_write_mb", mb),
            ("seq_read_mb", mb),
            ("rand_read_io", 50.0),
            ("rand_write_io", 50.0),
        ]
        .into_iter()
        .flat_map(|(unit, n)| [(unit.to_string(), None), (unit.to_string(), Some(n))])
        .collect();
        assert_eq!(*lines.lock().unwrap(), expected);
        for key in [
            "seq_write_mb_per_s",
            "seq_read_mb_per_s",
            "rand_read_iops",
            "rand_write_iops",
            "fsync_p50_us",
            "fsync_p99_us",
        ] {
            assert!(m[key] > 0.0 && m[key].is_finite(), "{key}: {m:?}");
        }
        assert!(m["fsync_p99_us"] >= m["fsync_p50_us"]);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 16 * 1024 * 1024);
    }

    #[test]
    fn random_passes_run_at_any_iodepth_and_write_what_was_stamped() {
        let dir = disk_backed_tempdir();
        let path = dir.path().join("depth.img");
        let file = open_scratch(&path.display().to_string()).unwrap();
        sequential_passes(&file, 16 << 20, 256 << 10, &Env::default()).unwrap();
        let blocks = (16 << 20) / ALIGN as u64;
        for depth in [1, 4] {
            assert!(random_pass(&file, blocks, 64, depth, true).unwrap() > 0.0);
            assert!(random_pass(&file, blocks, 64, depth, false).unwrap() > 0.0);
        }
        let mut page = AlignedBuf::new(ALIGN);
        file.read_exact_at(page.as_mut(), 5 * ALIGN as u64).unwrap();
        assert_eq!(page.as_mut()[..8], (5 * ALIGN as u64).to_le_bytes());
        assert!(
            page.as_mut()[8..].iter().filter(|&&b| b == 0).count() < 100,
            "written data must not be zeros"
        );
    }

    #[test]
    fn without_a_scratch_location_it_says_so() {
        assert!(Disk
            .run(&Params::new(), &Env::default())
            .unwrap_err()
            .to_string()
            .contains("scratch"));
    }
}

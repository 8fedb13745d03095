//! Disk: sequential write and read (O_DIRECT, fsync after the writes),
//! 4 KiB random read and write IOPS (O_DIRECT), and the latency of a 4 KiB
//! write followed by `fdatasync`. In a VM the target is the virtio-blk
//! device backed by a raw image file on the host; elsewhere a file in a host
//! directory. O_DIRECT keeps the page cache out of the numbers, so what is
//! measured is the path to the host's storage.

use super::params::{read, ParamSpec, XorShift};
use super::{Env, Metrics, Params, Workload};
use crate::percentile::nearest_rank;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
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
        let [file_mib, block_kib, rand_ops, fsync_ops] = read(params, "disk", PARAMS)?[..] else {
            unreachable!("one value per spec")
        };
        let path = env
            .scratch
            .as_deref()
            .ok_or("the disk workload needs a scratch location (vmbench.scratch=)")?;
        if path.starts_with("/dev/") {
            super::super::modules::load_all()?;
            super::super::modules::wait_for(path, Duration::from_secs(10))?;
        }
        let file = OpenOptions::new()
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
            })?;
        let size = file_mib * 1024 * 1024;
        let block = (block_kib * 1024) as usize;
        let mut m = Metrics::new();
        let mut buf = AlignedBuf::new(block.max(ALIGN));
        let mut rng = XorShift(0xd1b54a32d192ed03);
        buf.fill(&mut rng);
        let secs = timed(|| sequential(&file, size, &mut buf, block, true))?;
        m.insert("seq_write_mb_per_s".into(), size as f64 / secs / 1e6);
        let secs = timed(|| sequential(&file, size, &mut buf, block, false))?;
        m.insert("seq_read_mb_per_s".into(), size as f64 / secs / 1e6);
        let blocks = size / ALIGN as u64;
        let secs = timed(|| random(&file, blocks, rand_ops, &mut rng, false))?;
        m.insert("rand_read_iops".into(), rand_ops as f64 / secs);
        let secs = timed(|| random(&file, blocks, rand_ops, &mut rng, true))?;
        m.insert("rand_write_iops".into(), rand_ops as f64 / secs);
        let mut latencies = fsync_latencies(&file, blocks, fsync_ops, &mut rng)?;
        latencies.sort_by(f64::total_cmp);
        // Nearest rank, the one definition the host and the summaries use.
        m.insert("fsync_p50_us".into(), nearest_rank(&latencies, 0.50));
        m.insert("fsync_p99_us".into(), nearest_rank(&latencies, 0.99));
        Ok(m)
    }
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
        let slice = &mut buf.as_mut()[..len];
        let r = if write {
            file.write_all_at(slice, offset)
        } else {
            file.read_exact_at(slice, offset)
        };
        r.map_err(|e| format!("{} at offset {offset}: {e}", if write { "write" } else { "read" }))?;
        offset += len as u64;
    }
    if write {
        file.sync_all().map_err(|e| format!("fsync after the sequential write: {e}"))?;
    }
    Ok(())
}

fn random(file: &File, blocks: u64, ops: u64, rng: &mut XorShift, write: bool) -> Result<(), String> {
    let mut page = AlignedBuf::new(ALIGN);
    for _ in 0..ops {
        let offset = (rng.next_u64() % blocks) * ALIGN as u64;
        let r = if write {
            file.write_all_at(page.as_mut(), offset)
        } else {
            file.read_exact_at(page.as_mut(), offset)
        };
        r.map_err(|e| format!("random {} at {offset}: {e}", if write { "write" } else { "read" }))?;
    }
    Ok(())
}

fn fsync_latencies(file: &File, blocks: u64, ops: u64, rng: &mut XorShift) -> Result<Vec<f64>, String> {
    let mut page = AlignedBuf::new(ALIGN);
    let mut out = Vec::with_capacity(ops as usize);
    for _ in 0..ops {
        let offset = (rng.next_u64() % blocks) * ALIGN as u64;
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
        for b in self.as_mut() {
            *b = rng.next_u64() as u8;
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

    #[test]
    fn a_small_run_on_a_real_file_reports_every_metric() {
        // Under target/, which is on a disk-backed file system (O_DIRECT).
        let dir = tempfile::tempdir_in(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target")).unwrap();
        let path = dir.path().join("disk.img");
        let params: Params = [("file_mib", "16"), ("block_kib", "256"), ("rand_ops", "50"), ("fsync_ops", "10")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let env = Env {
            scratch: Some(path.display().to_string()),
            ..Default::default()
        };
        let m = Disk.run(&params, &env).unwrap();
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
    fn without_a_scratch_location_it_says_so() {
        assert!(Disk
            .run(&Params::new(), &Env::default())
            .unwrap_err()
            .to_string()
            .contains("scratch"));
    }
}

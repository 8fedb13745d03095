//! CPU: a fixed amount of integer work (SHA-256 over a buffer) and
//! floating-point work (a dense matrix multiply), on one thread and then on
//! `threads` threads at once.

use super::params::{read, ParamSpec, XorShift};
use super::{sha256, Metrics, Params, Workload};
use std::hint::black_box;
use std::time::Instant;

pub struct Cpu;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "sha_mib",
        default: 16,
        min: 1,
        max: 65_536,
        doc: "MiB each thread hashes with SHA-256",
    },
    ParamSpec {
        name: "matrix_n",
        default: 128,
        min: 2,
        max: 4096,
        doc: "size of the square f64 matrices multiplied",
    },
    ParamSpec {
        name: "matrix_reps",
        default: 4,
        min: 1,
        max: 100_000,
        doc: "multiplications per thread",
    },
    ParamSpec {
        name: "threads",
        default: 0,
        min: 0,
        max: 1024,
        doc: "threads for the multi-threaded pass; 0 = every CPU the agent may use",
    },
];

struct Work {
    sha_bytes: usize,
    n: usize,
    reps: usize,
}

impl Workload for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, params: &Params, _env: &super::Env) -> Result<Metrics, super::WorkloadError> {
        let [sha_mib, n, reps, threads] = read(params, "cpu", PARAMS)?[..] else {
            unreachable!("one value per spec")
        };
        let work = Work {
            sha_bytes: sha_mib as usize * 1024 * 1024,
            n: n as usize,
            reps: reps as usize,
        };
        let threads = super::params::threads(threads);
        let mut m = Metrics::new();
        let (sha_1, mm_1) = (sha_mb_per_s(&work, 1), matmul_mflops(&work, 1));
        m.insert("sha256_1t_mb_per_s".into(), sha_1);
        m.insert("matmul_1t_mflops".into(), mm_1);
        m.insert("sha256_mt_mb_per_s".into(), sha_mb_per_s(&work, threads));
        m.insert("matmul_mt_mflops".into(), matmul_mflops(&work, threads));
        Ok(m)
    }
}

/// Runs `job` on `threads` threads at once; returns the wall time in seconds.
fn on_threads(threads: usize, job: impl Fn(usize) + Sync) -> f64 {
    let start = Instant::now();
    std::thread::scope(|scope| {
        for t in 0..threads {
            let job = &job;
            scope.spawn(move || job(t));
        }
    });
    start.elapsed().as_secs_f64()
}

/// MB/s (10^6 bytes) of SHA-256, all threads together; each hashes `sha_bytes`.
fn sha_mb_per_s(work: &Work, threads: usize) -> f64 {
    let mut rng = XorShift(0x9e3779b97f4a7c15);
    let buffer: Vec<u8> = (0..1 << 20).map(|_| rng.next_u64() as u8).collect();
    let secs = on_threads(threads, |_| {
        let mut remaining = work.sha_bytes;
        while remaining > 0 {
            let take = remaining.min(buffer.len());
            black_box(sha256::digest(black_box(&buffer[..take])));
            remaining -= take;
        }
    });
    (work.sha_bytes * threads) as f64 / secs / 1e6
}

/// MFLOP/s of an n×n f64 matrix multiply (2n³ flops), all threads together.
fn matmul_mflops(work: &Work, threads: usize) -> f64 {
    let n = work.n;
    let a: Vec<f64> = (0..n * n).map(|i| (i % 7) as f64 * 0.5).collect();
    let b: Vec<f64> = (0..n * n).map(|i| (i % 5) as f64 * 0.25).collect();
    let secs = on_threads(threads, |_| {
        let mut c = vec![0.0f64; n * n];
        for _ in 0..work.reps {
            multiply(black_box(&a), black_box(&b), &mut c, n);
            black_box(&c);
        }
    });
    (2.0 * (n as f64).powi(3) * work.reps as f64 * threads as f64) / secs / 1e6
}

/// C = A × B, i-k-j order so the inner loop streams rows.
pub fn multiply(a: &[f64], b: &[f64], c: &mut [f64], n: usize) {
    c.fill(0.0);
    for i in 0..n {
        for k in 0..n {
            let aik = a[i * n + k];
            let (row_b, row_c) = (&b[k * n..(k + 1) * n], &mut c[i * n..(i + 1) * n]);
            for (cij, bkj) in row_c.iter_mut().zip(row_b) {
                *cij += aik * bkj;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multiply_is_right() {
        let (a, b) = (vec![1.0, 2.0, 3.0, 4.0], vec![5.0, 6.0, 7.0, 8.0]);
        let mut c = vec![0.0; 4];
        multiply(&a, &b, &mut c, 2);
        assert_eq!(c, vec![19.0, 22.0, 43.0, 50.0]);
    }

    #[test]
    fn small_run_reports_positive_rates() {
        let params: Params = [("sha_mib", "1"), ("matrix_n", "16"), ("matrix_reps", "1"), ("threads", "2")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let m = Cpu.run(&params, &Default::default()).unwrap();
        assert_eq!(m.len(), 4);
        assert!(m.values().all(|v| *v > 0.0 && v.is_finite()), "{m:?}");
    }
}

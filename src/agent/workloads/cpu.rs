//! CPU: integer work (SHA-256 over a buffer) and floating-point work (a
//! dense matrix multiply), on one thread and then on `threads` threads at
//! once.
//!
//! How each pass is timed: every thread is started and prepares its buffers,
//! runs the kernel once untimed (caches, page faults, the CPU's clock
//! ramping up), then waits at a barrier, so no thread is timed while others
//! are still being created. After the barrier each thread repeats the
//! kernel, timing every iteration, until one thread has run at least
//! `min_time_ms` and [`MIN_ITERATIONS`] iterations; then all stop after their
//! current iteration. Only iterations that ended before the first thread
//! stopped count, so no thread is credited with a tail it ran alone. A pass's
//! rate is the sum over threads of each thread's counted work divided by its
//! counted time; its `_cov_ratio` is the coefficient of variation of the
//! per-iteration rates (all threads pooled): how steady the target was
//! during the trial.

use super::params::{fill_random, read, ParamSpec, XorShift};
use super::{sha256, Metrics, Params, Workload};
use crate::agent::clock::{ns, Clock};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

pub struct Cpu;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "sha_mib",
        default: 16,
        min: 1,
        max: 65_536,
        doc: "MiB one iteration hashes with SHA-256",
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
        doc: "multiplications per iteration",
    },
    ParamSpec {
        name: "threads",
        default: 0,
        min: 0,
        max: 1024,
        doc: "threads for the multi-threaded pass; 0 = every CPU the agent may use",
    },
    ParamSpec {
        name: "min_time_ms",
        default: 500,
        min: 10,
        max: 600_000,
        doc: "the threads repeat the kernel until one of them has run at least this long (and 3 iterations)",
    },
];

/// Iterations per thread at the least, so the per-iteration spread exists.
const MIN_ITERATIONS: usize = 3;

impl Workload for Cpu {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, params: &Params, env: &super::Env) -> Result<Metrics, super::WorkloadError> {
        let [sha_mib, n, reps, threads, min_time_ms] = read(params, "cpu", PARAMS)?[..] else {
            unreachable!("one value per spec")
        };
        let sha = Sha::new(sha_mib as usize * 1024 * 1024);
        let matmul = Matmul::new(n as usize, reps as usize);
        let min_time = Duration::from_millis(min_time_ms);
        let mut m = Metrics::new();
        for (label, threads) in [("1t", 1), ("mt", super::params::threads(threads))] {
            let pass = env.per_unit(&format!("sha256_{label}_mb"), || {
                let pass = timed_pass(&sha, threads, min_time);
                let mb = pass.done / 1e6;
                Ok((pass, mb))
            })?;
            pass.check(&env.clock, &format!("sha256 {label}"), &format!("one pass over {sha_mib} MiB"))?;
            m.insert(format!("sha256_{label}_mb_per_s"), pass.rate() / 1e6);
            if pass.iterations_resolved(&env.clock) {
                m.insert(format!("sha256_{label}_cov_ratio"), pass.cov());
            }
            let pass = timed_pass(&matmul, threads, min_time);
            pass.check(
                &env.clock,
                &format!("matmul {label}"),
                &format!("{reps} multiplications of {n}×{n}"),
            )?;
            m.insert(format!("matmul_{label}_mflops"), pass.rate() / 1e6);
            if pass.iterations_resolved(&env.clock) {
                m.insert(format!("matmul_{label}_cov_ratio"), pass.cov());
            }
        }
        Ok(m)
    }
}

/// One kernel: what each thread prepares before the barrier (its own
/// buffers, touched), and one iteration. `work` is what one iteration does,
/// in the unit of the reported rate (bytes hashed, floating-point operations).
trait Kernel: Sync {
    type State;
    fn prepare(&self) -> Self::State;
    fn run(&self, state: &mut Self::State);
    fn work(&self) -> f64;
}

/// SHA-256 over `bytes` per iteration, hashing a random 1 MiB buffer (or
/// less) again and again.
struct Sha {
    input: Vec<u8>,
    bytes: usize,
}

impl Sha {
    fn new(bytes: usize) -> Sha {
        let mut input = vec![0u8; bytes.min(1 << 20)];
        fill_random(&mut input, &mut XorShift(0x9e3779b97f4a7c15));
        Sha { input, bytes }
    }
}

impl Kernel for Sha {
    type State = Vec<u8>;

    /// Each thread hashes its own copy, written (so touched) by this thread.
    fn prepare(&self) -> Vec<u8> {
        self.input.clone()
    }

    fn run(&self, input: &mut Vec<u8>) {
        let mut remaining = self.bytes;
        while remaining > 0 {
            let take = remaining.min(input.len());
            black_box(sha256::digest(black_box(&input[..take])));
            remaining -= take;
        }
    }

    fn work(&self) -> f64 {
        self.bytes as f64
    }
}

/// `reps` n×n f64 matrix multiplies per iteration (2n³ flops each); A and B
/// are shared and only read, C is each thread's own.
struct Matmul {
    a: Vec<f64>,
    b: Vec<f64>,
    n: usize,
    reps: usize,
}

impl Matmul {
    fn new(n: usize, reps: usize) -> Matmul {
        let a = (0..n * n).map(|i| (i % 7) as f64 * 0.5).collect();
        let b = (0..n * n).map(|i| (i % 5) as f64 * 0.25).collect();
        Matmul { a, b, n, reps }
    }
}

impl Kernel for Matmul {
    type State = Vec<f64>;

    fn prepare(&self) -> Vec<f64> {
        vec![1.0; self.n * self.n]
    }

    fn run(&self, c: &mut Vec<f64>) {
        for _ in 0..self.reps {
            multiply(black_box(&self.a), black_box(&self.b), c, self.n);
            black_box(&c);
        }
    }

    fn work(&self) -> f64 {
        2.0 * (self.n as f64).powi(3) * self.reps as f64
    }
}

/// One thread's timed iterations: when it started after the barrier and
/// when each iteration ended.
struct ThreadRun {
    start: Instant,
    ends: Vec<Instant>,
}

/// One pass of a kernel on some threads at once: per thread, the seconds of
/// each iteration that counts.
struct Pass {
    work: f64,
    iterations: Vec<Vec<f64>>,
    /// All work done by every thread, warm-up and uncounted iterations
    /// included (the host's CPU time over the pass pays for all of it).
    done: f64,
}

impl Pass {
    /// Counts, for every thread, only the iterations that ended while every
    /// thread was still running (by the first thread's stop), so no rate
    /// includes a tail where a thread had the machine to itself.
    fn new(work: f64, runs: &[ThreadRun]) -> Pass {
        let cutoff = runs.iter().filter_map(|r| r.ends.last()).min().copied();
        let iterations = runs
            .iter()
            .map(|r| {
                let counted = r.ends.iter().take_while(|&&end| Some(end) <= cutoff);
                let mut last = r.start;
                counted
                    .map(|&end| {
                        let secs = ns(end - last) / 1e9;
                        last = end;
                        secs
                    })
                    .collect()
            })
            .collect();
        // Each thread's iterations and its warm-up.
        let done = work * runs.iter().map(|r| r.ends.len() + 1).sum::<usize>() as f64;
        Pass { work, iterations, done }
    }

    /// Work per second, all threads together.
    fn rate(&self) -> f64 {
        let per_thread = self.iterations.iter().filter(|it| !it.is_empty());
        per_thread.map(|it| self.work * it.len() as f64 / it.iter().sum::<f64>()).sum()
    }

    /// Coefficient of variation of the per-iteration rates, threads pooled.
    fn cov(&self) -> f64 {
        let rates: Vec<f64> = self.iterations.iter().flatten().map(|s| self.work / s).collect();
        cov(&rates)
    }

    /// The rate comes from each thread's whole counted run (at least
    /// `min_time_ms`): the shortest of those against the clock rule.
    fn check(&self, clock: &Clock, region: &str, what: &str) -> Result<(), String> {
        let shortest = self.iterations.iter().map(|it| it.iter().sum::<f64>()).fold(f64::MAX, f64::min);
        clock.check(region, &format!("every thread's counted iterations of {what}"), shortest * 1e9)
    }

    /// Whether single iterations are long enough for the clock to time them
    /// (the per-iteration spread is reported only then: under gVisor a
    /// clock read costs about 13 µs, so a 0.3 ms iteration is not resolved).
    fn iterations_resolved(&self, clock: &Clock) -> bool {
        let shortest = self.iterations.iter().flatten().fold(f64::MAX, |a, &b| a.min(b));
        clock.check("iteration", "", shortest * 1e9).is_ok()
    }
}

/// Sample standard deviation over the mean; 0 for fewer than two values.
fn cov(values: &[f64]) -> f64 {
    if values.len() < 2 {
        return 0.0;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (values.len() - 1) as f64;
    var.sqrt() / mean
}

/// Runs `kernel` on `threads` threads that start their timed regions
/// together and stop together.
fn timed_pass<K: Kernel>(kernel: &K, threads: usize, min_time: Duration) -> Pass {
    let barrier = Barrier::new(threads);
    let stop = AtomicBool::new(false);
    let runs: Vec<ThreadRun> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| scope.spawn(|| timed_thread(kernel, &barrier, &stop, min_time)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("a cpu kernel thread panicked"))
            .collect()
    });
    Pass::new(kernel.work(), &runs)
}

/// One thread of a pass: prepare, one untimed warm-up iteration, the
/// barrier, then timed iterations until this thread has run `min_time` and
/// [`MIN_ITERATIONS`] (and tells the others to stop) or another thread did.
fn timed_thread<K: Kernel>(kernel: &K, barrier: &Barrier, stop: &AtomicBool, min_time: Duration) -> ThreadRun {
    let mut state = kernel.prepare();
    kernel.run(&mut state);
    barrier.wait();
    let start = Instant::now();
    let mut ends = Vec::new();
    loop {
        kernel.run(&mut state);
        let now = Instant::now();
        ends.push(now);
        if stop.load(Ordering::Relaxed) {
            break;
        }
        if ends.len() >= MIN_ITERATIONS && now - start >= min_time {
            stop.store(true, Ordering::Relaxed);
            break;
        }
    }
    ThreadRun { start, ends }
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
    fn small_run_reports_rates_and_spreads() {
        let params: Params = [
            ("sha_mib", "1"),
            ("matrix_n", "64"),
            ("matrix_reps", "1"),
            ("threads", "2"),
            ("min_time_ms", "10"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let m = Cpu.run(&params, &Default::default()).unwrap();
        assert_eq!(m.len(), 8, "{m:?}");
        for (k, v) in &m {
            let ok = if k.ends_with("_cov_ratio") { *v >= 0.0 } else { *v > 0.0 };
            assert!(ok && v.is_finite(), "{k}: {m:?}");
        }
    }

    #[test]
    fn a_thread_repeats_until_the_minimum_time_and_iterations() {
        let sha = Sha::new(4096);
        let run = timed_thread(&sha, &Barrier::new(1), &AtomicBool::new(false), Duration::from_millis(5));
        assert!(run.ends.len() >= MIN_ITERATIONS);
        assert!(*run.ends.last().unwrap() - run.start >= Duration::from_millis(5));
        let pass = Pass::new(4096.0, &[run]);
        assert_eq!(pass.iterations[0].len(), pass.iterations.iter().flatten().count());
    }

    #[test]
    fn only_iterations_while_every_thread_ran_count() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        // Thread 0 stopped at 30 ms; thread 1's iteration ending at 40 ms ran alone.
        let runs = [
            ThreadRun {
                start: t0,
                ends: vec![at(10), at(20), at(30)],
            },
            ThreadRun {
                start: t0,
                ends: vec![at(15), at(30), at(40)],
            },
        ];
        let pass = Pass::new(1000.0, &runs);
        assert_eq!(pass.iterations[1].len(), 2);
        // 3 × 1000 in 30 ms, plus 2 × 1000 in 30 ms.
        assert!((pass.rate() - 5000.0 / 0.030).abs() < 1e-6, "{}", pass.rate());
    }

    #[test]
    fn cov_is_spread_over_mean() {
        assert_eq!(cov(&[2.0]), 0.0);
        assert!((cov(&[1.0, 3.0]) - 2f64.sqrt() / 2.0).abs() < 1e-12);
    }
}

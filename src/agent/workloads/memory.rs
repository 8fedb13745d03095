//! Memory: STREAM-style copy/scale/add/triad bandwidth over arrays larger
//! than the caches (best of `stream_reps`, as STREAM reports), and the
//! latency of dependent random loads (pointer chasing over a random cycle of
//! cache lines, so neither the prefetcher nor the cache helps).

use super::params::{read, ParamSpec, XorShift};
use super::{Metrics, Params, Workload};
use std::hint::black_box;
use std::time::Instant;

pub struct Memory;

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "stream_mib",
        default: 128,
        min: 1,
        max: 1_048_576,
        doc: "MiB per STREAM array (three arrays)",
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
];
const MIB: usize = 1024 * 1024;
/// One node per cache line.
const LINE_WORDS: usize = 8;

impl Workload for Memory {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, params: &Params, _env: &super::Env) -> Result<Metrics, super::WorkloadError> {
        let [stream_mib, reps, chase_mib, steps] = read(params, "memory", PARAMS)?[..] else {
            unreachable!("one value per spec")
        };
        let stream_len = stream_mib as usize * MIB / 8;
        let chase_nodes = chase_mib as usize * MIB / (LINE_WORDS * 8);
        let (reps, steps) = (reps as usize, steps as usize);
        let mut m = stream(stream_len, reps);
        m.insert("chase_latency_ns".into(), chase(chase_nodes, steps));
        Ok(m)
    }
}

fn stream(len: usize, reps: usize) -> Metrics {
    let mut a = vec![1.0f64; len];
    let mut b = vec![2.0f64; len];
    let mut c = vec![0.0f64; len];
    let bytes = (len * 8) as f64;
    let scalar = 3.0;
    let mut best = [f64::MAX; 4];
    for _ in 0..reps {
        let t = Instant::now();
        c.copy_from_slice(black_box(&a));
        best[0] = best[0].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for (bi, ci) in b.iter_mut().zip(&c) {
            *bi = scalar * ci;
        }
        best[1] = best[1].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for ((ci, ai), bi) in c.iter_mut().zip(&a).zip(&b) {
            *ci = ai + bi;
        }
        best[2] = best[2].min(t.elapsed().as_secs_f64());
        let t = Instant::now();
        for ((ai, bi), ci) in a.iter_mut().zip(&b).zip(&c) {
            *ai = bi + scalar * ci;
        }
        best[3] = best[3].min(t.elapsed().as_secs_f64());
        black_box((&a, &b, &c));
    }
    // Bytes moved per kernel: copy and scale read one array and write one;
    // add and triad read two and write one.
    let moved = [2.0, 2.0, 3.0, 3.0];
    ["stream_copy", "stream_scale", "stream_add", "stream_triad"]
        .iter()
        .zip(best.iter().zip(moved))
        .map(|(name, (secs, arrays))| (format!("{name}_gb_per_s"), arrays * bytes / secs / 1e9))
        .collect()
}

/// Nanoseconds per dependent load over a random cycle through `nodes` lines.
fn chase(nodes: usize, steps: usize) -> f64 {
    // Sattolo's algorithm: a random permutation that is one single cycle.
    let mut order: Vec<usize> = (0..nodes).collect();
    let mut rng = XorShift(0x2545f4914f6cdd1d);
    for i in (1..nodes).rev() {
        let j = (rng.next_u64() % i as u64) as usize;
        order.swap(i, j);
    }
    let mut next = vec![0usize; nodes * LINE_WORDS];
    for i in 0..nodes {
        next[order[i] * LINE_WORDS] = order[(i + 1) % nodes] * LINE_WORDS;
    }
    let mut p = 0usize;
    // One lap to fault the pages in and warm the TLB as far as it goes.
    for _ in 0..nodes.min(steps) {
        p = next[p];
    }
    let t = Instant::now();
    for _ in 0..steps {
        p = next[p];
    }
    let secs = t.elapsed().as_secs_f64();
    black_box(p);
    secs * 1e9 / steps as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_reports_every_metric() {
        let params: Params = [
            ("stream_mib", "1"),
            ("stream_reps", "1"),
            ("chase_mib", "1"),
            ("chase_steps", "10000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let m = Memory.run(&params, &Default::default()).unwrap();
        for key in [
            "stream_copy_gb_per_s",
            "stream_scale_gb_per_s",
            "stream_add_gb_per_s",
            "stream_triad_gb_per_s",
            "chase_latency_ns",
        ] {
            assert!(m[key] > 0.0 && m[key].is_finite(), "{key}: {m:?}");
        }
    }

    #[test]
    fn unknown_parameters_are_rejected() {
        let params: Params = [("stream_gib".to_string(), "1".to_string())].into_iter().collect();
        assert!(Memory
            .run(&params, &Default::default())
            .unwrap_err()
            .to_string()
            .contains("no parameter `stream_gib`"));
    }
}

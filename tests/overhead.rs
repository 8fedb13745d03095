//! The overhead workloads in every target, on the real QEMU (TCG here) and
//! Docker daemon: every metric present, positive and with a unit, overheads
//! against native, and the orderings that must hold.

mod common;

use common::*;
use std::path::Path;
use vmbench::metric;

const CPU: &[&str] = &[
    "sha256_1t_mb_per_s",
    "sha256_mt_mb_per_s",
    "matmul_1t_mflops",
    "matmul_mt_mflops",
    // The host's CPU time over the region, read as the agent's region lines
    // arrive (every target is in a cgroup by default).
    "host_cpu_per_sha256_1t_mb_us",
];
const MEMORY: &[&str] = &[
    "stream_copy_gb_per_s",
    "stream_scale_gb_per_s",
    "stream_add_gb_per_s",
    "stream_triad_gb_per_s",
    "chase_latency_ns",
];
const SYSCALL: &[&str] = &[
    "getppid_ns",
    "pipe_same_cpu_ns",
    "host_cpu_per_getppid_us",
    "host_cpu_per_pipe_same_cpu_us",
];
const NETWORK: &[&str] = &["tcp_rr_p50_us", "tcp_rr_p99_us", "tcp_stream_gbps"];
const DISK: &[&str] = &[
    "seq_write_mb_per_s",
    "seq_read_mb_per_s",
    "rand_read_iops",
    "rand_write_iops",
    "fsync_p50_us",
    "fsync_p99_us",
    "host_cpu_per_seq_write_mb_us",
    "host_cpu_per_seq_read_mb_us",
    "host_cpu_per_rand_read_io_us",
    "host_cpu_per_rand_write_io_us",
];

#[test]
fn quick_overhead_scenario_measures_every_workload_everywhere() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/overhead-quick.toml");
    let out = tmp.path().join("run");
    // TCG on every host, so the orderings below hold everywhere.
    let text = std::fs::read_to_string(&scenario)
        .unwrap()
        .replace("accel = \"auto\"", "accel = \"tcg\"");
    let scenario = write(tmp.path(), "quick.toml", &text);
    let args = ["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap(), "--all-metrics"];
    let result = run_in(tmp.path(), &args);
    assert_eq!(result.status.code(), Some(0), "{}\n{}", stderr(&result), stdout(&result));
    let samples = samples(&out);
    assert_eq!(samples.len(), 3 * 5 * 2);
    assert!(samples.iter().all(|s| s.ok), "{samples:#?}");

    for (workload, metrics) in [
        ("cpu", CPU),
        ("memory", MEMORY),
        ("syscall", SYSCALL),
        ("disk", DISK),
        ("network", NETWORK),
    ] {
        for s in samples.iter().filter(|s| s.workload.as_str() == workload) {
            // Every target's memory and host CPU, however it is accounted.
            let own_memory: &[&str] = if s.target == "qemu-microvm" {
                &["mem_peak_bytes", "host_cpu_ms"]
            } else {
                &["mem_peak_bytes", "agent_peak_rss_bytes", "host_cpu_ms"]
            };
            for m in metrics.iter().chain(own_memory) {
                let v = s.metrics.get(*m).unwrap_or_else(|| panic!("{m} missing in {s:?}"));
                assert!(*v > 0.0 && v.is_finite(), "{m} = {v} in {s:?}");
                assert!(metric::info(m).is_some(), "{m} has no unit");
            }
        }
    }
    // Emulating the CPU costs: the VM computes slower than native under TCG.
    for m in ["sha256_1t_mb_per_s", "matmul_1t_mflops"] {
        let (vm, native) = (median(&samples, "qemu-microvm", m), median(&samples, "native", m));
        assert!(vm < native, "{m}: vm {vm} should be below native {native}");
    }
    // A VM holds its guest's memory; the native agent is a small process.
    let (vm_mem, native_mem) = (
        median(&samples, "qemu-microvm", "mem_ready_bytes"),
        median(&samples, "native", "mem_ready_bytes"),
    );
    assert!(vm_mem > 10.0 * native_mem, "vm {vm_mem} vs native {native_mem}");
    assert!(median(&samples, "qemu-microvm", "pss_ready_bytes") > 0.0);
    assert!(median(&samples, "docker", "mem_peak_bytes") > 0.0);

    // Percentiles are ordered.
    for s in samples.iter().filter(|s| s.workload == vmbench::rundir::WorkloadKind::Network) {
        assert!(s.metrics["tcp_rr_p99_us"] >= s.metrics["tcp_rr_p50_us"], "{s:?}");
        // Host CPU per request and per MB for every target: by default the
        // native agent is in a cgroup of its own too, read as a container's.
        for metric in ["host_cpu_per_request_us", "host_cpu_per_mb_us"] {
            let per_unit = s.metrics.get(metric).copied();
            assert!(per_unit.is_some_and(|v| v > 0.0), "{} {metric}: {:?}", s.target, s.metrics);
        }
    }
    // Scratch files and images are gone with the run.
    assert!(!vmbench::backend::scratch_root(&common::record(&out).run_id).exists());

    // The summary shows overheads with confidence intervals.
    let table = stdout(&result);
    let row = table
        .lines()
        .find(|l| l.starts_with("qemu-microvm") && l.contains("cpu matmul_1t_mflops"))
        .expect(&table);
    assert!(row.contains("× ["), "{row}");
    let native_row = table
        .lines()
        .find(|l| l.starts_with("native") && l.contains("cpu matmul_1t_mflops"))
        .unwrap();
    assert!(!native_row.contains("×"), "native is the baseline: {native_row}");
    assert!(table.contains("memory stream_triad_gb_per_s") && table.contains("syscall pipe_same_cpu_ns"));

    // Overheads are also computable from the files alone.
    let record = record(&out);
    let rows = vmbench::report::metric_rows(&record, &samples);
    let vm_cpu = rows
        .iter()
        .find(|r| r.target == "qemu-microvm" && r.metric == "matmul_1t_mflops")
        .unwrap();
    let ratio = vm_cpu.vs_native.unwrap();
    assert!(
        ratio.value > 1.0 && ratio.low <= ratio.value && ratio.value <= ratio.high,
        "{ratio:?}"
    );
}

//! What a metric name means. Every metric carries its unit as a suffix
//! (`ready_ms`, `image_bytes`, `copy_gbps`), and the unit decides whether
//! more is better. One rule, used by tables, reports and comparisons.

use crate::protocol::WorkloadKind;

/// The largest value a metric may have. Every metric is a duration, a size,
/// a count, a rate or a ratio, none of which comes near (1e15 ns is eleven
/// days, 1e15 bytes a petabyte); a larger value is a broken or hostile agent.
/// The bound also keeps the statistics finite: sums and squares of a million
/// such values fit in an f64, where two samples of 1e308 made the mean and
/// the median infinite (written as `null` into summary.json).
pub const MAX_VALUE: f64 = 1e15;

/// Whether `value` can be a metric's value: finite, at least 0, at most [`MAX_VALUE`].
pub fn possible(value: f64) -> bool {
    value.is_finite() && (0.0..=MAX_VALUE).contains(&value)
}

/// Whether a larger value is good or bad news.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    LowerIsBetter,
    HigherIsBetter,
}

/// The unit and direction of one metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricInfo {
    /// Unit as shown to people.
    pub unit: &'static str,
    pub direction: Direction,
}

const SUFFIXES: &[(&str, &str, Direction)] = &[
    ("_ms", "ms", Direction::LowerIsBetter),
    ("_us", "µs", Direction::LowerIsBetter),
    ("_ns", "ns", Direction::LowerIsBetter),
    ("_bytes", "bytes", Direction::LowerIsBetter),
    ("_mib", "MiB", Direction::LowerIsBetter),
    ("_gbps", "Gbit/s", Direction::HigherIsBetter),
    ("_gb_per_s", "GB/s", Direction::HigherIsBetter),
    ("_mb_per_s", "MB/s", Direction::HigherIsBetter),
    ("_ops_per_s", "ops/s", Direction::HigherIsBetter),
    ("_iops", "IOPS", Direction::HigherIsBetter),
    ("_mflops", "MFLOP/s", Direction::HigherIsBetter),
    ("_rps", "req/s", Direction::HigherIsBetter),
    ("_tps", "txn/s", Direction::HigherIsBetter),
    ("_qps", "queries/s", Direction::HigherIsBetter),
    // Failed requests or transactions.
    ("_count", "count", Direction::LowerIsBetter),
    // 1 when something went wrong that does not fail the sample (an open
    // loop the generator could not keep on schedule), else 0.
    ("_flag", "flag", Direction::LowerIsBetter),
    // Dimensionless spreads (a coefficient of variation): steadier is better.
    ("_ratio", "ratio", Direction::LowerIsBetter),
];

/// Unit and direction of `name`, or `None` for a name without a known unit
/// suffix (which the agent and backends never produce).
pub fn info(name: &str) -> Option<MetricInfo> {
    SUFFIXES
        .iter()
        .find(|(suffix, _, _)| name.ends_with(suffix))
        .map(|&(_, unit, direction)| MetricInfo { unit, direction })
}

/// Metrics every launch produces whatever the workload (the phases of
/// starting and stopping a target). Under a workload other than `boot` they
/// are kept in the samples but left out of summaries, where they would only
/// repeat the boot numbers with the workload's run time mixed in.
pub const LAUNCH_METRICS: &[&str] = &[
    "ready_ms",
    "exit_ms",
    "init_ms",
    "first_byte_ms",
    "kernel_ms",
    "firmware_ms",
    "loader_ms",
    "initrd_ms",
    "userspace_ms",
    "pre_kernel_ms",
    "spawn_ms",
    "cgroup_join_ms",
    "create_ms",
    "attach_ms",
    "start_ms",
    "start_to_ready_ms",
    "stopped_ms",
    "remove_ms",
];

/// Metrics that describe the machine a target ran on rather than how well
/// it did (the clock's resolution, the array size the memory workload chose,
/// huge pages it got): summarised and reported, but never a regression.
pub const DESCRIPTIVE_METRICS: &[&str] = &[
    "clock_res_ns",
    "stream_array_bytes",
    "chase_anon_huge_bytes",
    "http_open_fell_behind_flag",
    // vmbench's own work (moving a target it starts into its cgroup), left
    // out of the target's launch clock and kept to show what it cost.
    "cgroup_join_ms",
];

/// Whether a change of `metric` between two runs can be a regression.
pub fn judged(metric: &str) -> bool {
    info(metric).is_some() && !DESCRIPTIVE_METRICS.contains(&metric)
}

/// Whether `metric` belongs in the summary of `workload`.
pub fn summarised(workload: WorkloadKind, metric: &str) -> bool {
    workload == WorkloadKind::Boot || !LAUNCH_METRICS.contains(&metric)
}

/// The unit of `name` for display; empty when unknown.
pub fn unit(name: &str) -> &'static str {
    info(name).map(|i| i.unit).unwrap_or("")
}

/// The metric that stands for a workload where one must (the stopping rule
/// of `repetitions = "auto"`): the one a reader of the report looks at first.
pub fn headline(workload: WorkloadKind) -> &'static str {
    match workload {
        WorkloadKind::Cpu => "sha256_1t_mb_per_s",
        WorkloadKind::Memory => "chase_latency_ns",
        WorkloadKind::Syscall => "getppid_ns",
        WorkloadKind::Disk => "rand_read_iops",
        WorkloadKind::Network => "tcp_rr_p50_us",
        WorkloadKind::Boot => "ready_ms",
        WorkloadKind::Http => "http_rps",
        WorkloadKind::Sql => "sql_point_tps",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_and_directions_come_from_the_suffix() {
        assert_eq!(info("ready_ms").unwrap().direction, Direction::LowerIsBetter);
        assert_eq!(info("copy_gb_per_s").unwrap().unit, "GB/s");
        assert_eq!(info("sha256_ops_per_s").unwrap().direction, Direction::HigherIsBetter);
        assert_eq!(info("ready"), None);
        assert_eq!(unit("image_bytes"), "bytes");
        assert_eq!(info("sha256_1t_cov_ratio").unwrap().direction, Direction::LowerIsBetter);
    }
}

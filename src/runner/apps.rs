//! The host side of the application workloads: once the agent says its
//! server is up, vmbench holds the agent's control connection open, runs its
//! load generator (`load::http`, `load::sql`) against the server's address
//! on the path the target was given, and closes the control connection so
//! the agent stops the server and reports what the server cost.

use super::network::{Measured, UnitWindow};
use crate::agent::servers::mariadb;
use crate::backend::Launch;
use crate::load::{http, reference, sql};
use crate::scenario::{Workload, WorkloadKind};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What the host runs against one target's server.
#[derive(Debug, Clone)]
pub enum AppClient {
    Http {
        load: http::HttpLoad,
        rate: f64,
        /// Run wrk too (`reference = 1`).
        reference: bool,
    },
    Sql {
        load: sql::SqlLoad,
        read_write: bool,
        /// Run sysbench too (`reference = 1`).
        reference: bool,
    },
}

/// What is kept of a trial's time for the agent to stop its server and
/// report once the load is over (or has run out of time).
const STOP_RESERVE: Duration = Duration::from_secs(30);

impl AppClient {
    /// The client for `workload` if it is an application workload.
    pub fn for_workload(workload: &Workload) -> Option<Self> {
        let secs = |name: &str, default: u64| Duration::from_secs(workload.param(name).unwrap_or(default));
        match workload.kind {
            WorkloadKind::Http => Some(AppClient::Http {
                load: http::HttpLoad {
                    path: crate::agent::servers::nginx::BODY_PATH.to_string(),
                    host: "vmbench".to_string(),
                    connections: workload.param("connections").unwrap_or(16) as usize,
                    threads: workload.param("client_threads").unwrap_or(1) as usize,
                    warmup: secs("warmup_s", 2),
                    duration: secs("duration_s", 10),
                    expect_body_bytes: Some(workload.param("body_bytes").unwrap_or(1024) as usize),
                },
                rate: workload.param("rate").unwrap_or(0) as f64,
                reference: workload.param("reference").unwrap_or(0) == 1,
            }),
            WorkloadKind::Sql => Some(AppClient::Sql {
                load: sql::SqlLoad {
                    clients: workload.param("clients").unwrap_or(4) as usize,
                    warmup: secs("warmup_s", 2),
                    duration: secs("duration_s", 10),
                    table_rows: workload.param("table_rows").unwrap_or(10_000),
                    // The account the agent's init file creates.
                    user: mariadb::USER.to_string(),
                    password: mariadb::PASSWORD.to_string(),
                    database: mariadb::DATABASE.to_string(),
                },
                read_write: workload.param("read_write").unwrap_or(1) == 1,
                reference: workload.param("reference").unwrap_or(0) == 1,
            }),
            _ => None,
        }
    }

    /// Runs the load against the server at `server_port` in the target
    /// while holding the agent's control connection at `control_port`,
    /// within `timeout`.
    pub async fn run(self, launch: &dyn Launch, control_port: u16, server_port: u16, timeout: Duration) -> Result<Measured, String> {
        let control_addr = launch.address(control_port).await?;
        let server = match launch.address(server_port).await {
            Ok(server) => server,
            Err(e) => {
                // Still tell the agent to stop, so the trial ends now rather
                // than at its deadline.
                drop(super::network::connect(control_addr).await);
                return Err(e);
            }
        };
        // Held open while the load runs; dropping it tells the agent to stop
        // the server.
        let control = super::network::connect(control_addr).await?;
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let _ = tx.send(self.run_blocking(server));
        });
        // The agent needs time to stop the server and report after the load.
        let budget = timeout.saturating_sub(STOP_RESERVE);
        let result = match tokio::time::timeout(budget, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err("the load generator's thread ended without an answer".to_string()),
            Err(_) => Err("timed out".to_string()),
        };
        drop(control);
        result
    }

    fn run_blocking(self, server: SocketAddr) -> Result<Measured, String> {
        match self {
            AppClient::Http { load, rate, reference } => run_http(server, &load, rate, reference),
            AppClient::Sql {
                load,
                read_write,
                reference,
            } => run_sql(server, &load, read_write, reference),
        }
    }
}

/// Closed loop, then (with a rate) open loop. With `reference`, wrk runs
/// right before and right after the closed loop with the same connections,
/// threads and duration, and its mean is recorded: vmbench's figure sits
/// between the two in time, so a drifting host does not favour either.
fn run_http(server: SocketAddr, load: &http::HttpLoad, rate: f64, reference: bool) -> Result<Measured, String> {
    let mut m = BTreeMap::new();
    let wrk = || reference::wrk(server, &load.path, load.connections, load.threads, load.duration);
    let tool: Option<Tool> = reference.then_some(("wrk", &wrk));
    let (closed, cpu_ms) = with_reference(&mut m, tool, load.duration, || http::run(server, load, http::Loop::Closed))?;
    let phase = load.warmup + load.duration;
    m.insert(
        "client_cpu_per_request_us".to_string(),
        per_unit_us(cpu_ms, closed.achieved_rps, phase),
    );
    m.insert("http_rps".to_string(), closed.achieved_rps);
    latencies(&mut m, "http", &closed.latency);
    m.insert("http_errors_count".to_string(), closed.errors as f64);
    m.insert("http_reconnects_count".to_string(), closed.reconnects as f64);
    let mut windows = vec![window(
        "host_cpu_per_request_us",
        closed.window_start,
        closed.window_end,
        closed.requests,
    )];
    if rate > 0.0 {
        let open = http::run(server, load, http::Loop::Open { rate })?;
        m.insert("http_open_achieved_rps".to_string(), open.achieved_rps);
        latencies(&mut m, "http_open", &open.latency);
        m.insert("http_open_errors_count".to_string(), open.errors as f64);
        m.insert("http_open_fell_behind_flag".to_string(), if open.kept_up { 0.0 } else { 1.0 });
        windows.push(window(
            "host_cpu_per_request_open_us",
            open.window_start,
            open.window_end,
            open.requests,
        ));
    }
    Ok(Measured { metrics: m, windows })
}

/// Logs in (the server may accept connections before its init file has
/// made vmbench's account), fills the table, runs point selects and, if
/// asked, the read/write mix; with `reference`, sysbench's same test right
/// before and after each.
fn run_sql(server: SocketAddr, load: &sql::SqlLoad, read_write: bool, reference: bool) -> Result<Measured, String> {
    let mut m = BTreeMap::new();
    sql::wait_ready(server, load, Duration::from_secs(120))?;
    let preparing = Instant::now();
    sql::prepare(server, load)?;
    m.insert("sql_prepare_ms".to_string(), preparing.elapsed().as_secs_f64() * 1e3);
    let point_select = || reference::sysbench(server, load, reference::sysbench_test(false));
    let read_write_mix = || reference::sysbench(server, load, reference::sysbench_test(true));
    let phase = load.warmup + load.duration;
    let tool: Option<Tool> = reference.then_some(("sysbench_point", &point_select));
    let (point, cpu_ms) = with_reference(&mut m, tool, load.duration, || sql::run(server, load, sql::Mix::PointSelect))?;
    m.insert("client_cpu_per_txn_us".to_string(), per_unit_us(cpu_ms, point.tps, phase));
    m.insert("sql_point_tps".to_string(), point.tps);
    latencies(&mut m, "sql_point", &point.latency);
    m.insert("sql_point_errors_count".to_string(), point.errors as f64);
    let mut windows = vec![window(
        "host_cpu_per_txn_us",
        point.window_start,
        point.window_end,
        point.transactions,
    )];
    if read_write {
        let tool: Option<Tool> = reference.then_some(("sysbench_rw", &read_write_mix));
        let (rw, cpu_ms) = with_reference(&mut m, tool, load.duration, || sql::run(server, load, sql::Mix::ReadWrite))?;
        m.insert("client_cpu_per_rw_txn_us".to_string(), per_unit_us(cpu_ms, rw.tps, phase));
        m.insert("sql_rw_tps".to_string(), rw.tps);
        m.insert("sql_rw_qps".to_string(), rw.qps);
        latencies(&mut m, "sql_rw", &rw.latency);
        m.insert("sql_rw_errors_count".to_string(), rw.errors as f64);
        windows.push(window("host_cpu_per_rw_txn_us", rw.window_start, rw.window_end, rw.transactions));
    }
    Ok(Measured { metrics: m, windows })
}

fn window(metric: &'static str, from: Instant, to: Instant, units: u64) -> UnitWindow {
    UnitWindow {
        metric: metric.into(),
        from,
        to,
        units: units as f64,
    }
}

/// The percentiles as `<prefix>_p50_us` ... `<prefix>_p999_us`.
fn latencies(m: &mut BTreeMap<String, f64>, prefix: &str, l: &crate::load::Latency) {
    for (name, value) in [("p50", l.p50), ("p90", l.p90), ("p99", l.p99), ("p999", l.p999)] {
        m.insert(format!("{prefix}_{name}_us"), value);
    }
}

/// Whose CPU time [`measured_cpu`] reads: vmbench's load generator threads
/// (nothing else vmbench does meanwhile), or the children it has waited for
/// (a reference tool).
#[derive(Clone, Copy)]
enum Usage {
    LoadThreads,
    Children,
}

/// User + system CPU time in ms of `who` so far.
fn cpu_ms(who: Usage) -> f64 {
    let which = match who {
        Usage::LoadThreads => return crate::load::load_threads_cpu_ms(),
        Usage::Children => libc::RUSAGE_CHILDREN,
    };
    // SAFETY: all-zero is a valid rusage; getrusage fills it.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `u` is writable.
    unsafe { libc::getrusage(which, &mut u) };
    let ms = |tv: libc::timeval| tv.tv_sec as f64 * 1e3 + tv.tv_usec as f64 / 1e3;
    ms(u.ru_utime) + ms(u.ru_stime)
}

/// `f`'s result and the CPU time (ms) `who` spent while it ran.
fn measured_cpu<T>(who: Usage, f: impl FnOnce() -> Result<T, String>) -> Result<(T, f64), String> {
    let from = cpu_ms(who);
    let out = f()?;
    Ok((out, cpu_ms(who) - from))
}

/// The client's CPU per unit of work in µs: its CPU time over a whole phase
/// (warm-up included) divided by the units the phase did at the window's
/// rate.
fn per_unit_us(cpu_ms: f64, rate: f64, phase: std::time::Duration) -> f64 {
    let units = rate * phase.as_secs_f64();
    if units > 0.0 {
        cpu_ms * 1e3 / units
    } else {
        0.0
    }
}

/// A reference tool: the name its metrics carry, and one run of it.
type Tool<'a> = (&'static str, &'a dyn Fn() -> Result<reference::Reported, String>);

/// vmbench's own load phase `own`, with its load threads' CPU time (ms),
/// run between two runs of the reference `tool` when there is one, whose
/// results are recorded in `m`: vmbench's figure sits between the tool's
/// two in time, so a drifting host favours neither.
fn with_reference<T>(
    m: &mut BTreeMap<String, f64>,
    tool: Option<Tool>,
    duration: Duration,
    own: impl FnOnce() -> Result<T, String>,
) -> Result<(T, f64), String> {
    let before = tool.map(|(_, run)| measured_cpu(Usage::Children, run)).transpose()?;
    let measured = measured_cpu(Usage::LoadThreads, own)?;
    if let (Some((name, run)), Some(before)) = (tool, before) {
        let after = measured_cpu(Usage::Children, run)?;
        record_reference(m, name, duration, &before, &after);
    }
    Ok(measured)
}

/// A reference tool's two runs around vmbench's (each with the CPU time it
/// took): their mean rate and median latency, the errors it counted and
/// its CPU per unit, as `<tool>_rps` or `_tps`, `<tool>_p50_us`,
/// `<tool>_errors_count`, `<tool>_cpu_per_unit_us`.
fn record_reference(
    m: &mut BTreeMap<String, f64>,
    tool: &str,
    duration: std::time::Duration,
    (a, a_cpu): &(reference::Reported, f64),
    (b, b_cpu): &(reference::Reported, f64),
) {
    let unit = if tool == "wrk" { "rps" } else { "tps" };
    m.insert(format!("{tool}_{unit}"), (a.rate + b.rate) / 2.0);
    m.insert(format!("{tool}_p50_us"), (a.p50_us + b.p50_us) / 2.0);
    m.insert(format!("{tool}_errors_count"), a.errors + b.errors);
    let cpu = (per_unit_us(*a_cpu, a.rate, duration) + per_unit_us(*b_cpu, b.rate, duration)) / 2.0;
    m.insert(format!("{tool}_cpu_per_unit_us"), cpu);
}

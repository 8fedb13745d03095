//! The reference tools run against the same server in the same trial, so
//! vmbench's own generators can be checked against the ones the field
//! knows: `wrk` for HTTP (closed loop, the same connections and threads)
//! and `sysbench`'s `oltp_point_select` / `oltp_read_write` for SQL (the
//! same table, clients and uniform ids). Each runs as a program with an
//! argument vector, on vmbench's own CPUs, and its printed summary is
//! parsed here.

use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

/// What a reference tool reported: its rate (requests or transactions per
/// second) and its median latency in µs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Reported {
    pub rate: f64,
    pub p50_us: f64,
    /// Failed requests or ignored errors the tool counted.
    pub errors: f64,
}

/// Runs `wrk` against `http://addr{path}`.
pub fn wrk(addr: SocketAddr, path: &str, connections: usize, threads: usize, duration: Duration) -> Result<Reported, String> {
    let threads = threads.min(connections).max(1);
    let args = vec![
        "-t".to_string(),
        threads.to_string(),
        "-c".to_string(),
        connections.to_string(),
        "-d".to_string(),
        format!("{}s", duration.as_secs().max(1)),
        "--latency".to_string(),
        format!("http://{addr}{path}"),
    ];
    parse_wrk(&run("wrk", &args)?)
}

/// The sysbench test a mix corresponds to.
pub fn sysbench_test(read_write: bool) -> &'static str {
    if read_write {
        "oltp_read_write"
    } else {
        "oltp_point_select"
    }
}

/// Runs sysbench's `test` against the table vmbench prepared (`sbtest1`,
/// `table_rows` rows) with uniform ids.
pub fn sysbench(addr: SocketAddr, load: &super::sql::SqlLoad, test: &str) -> Result<Reported, String> {
    let args: Vec<String> = [
        test.to_string(),
        "--db-driver=mysql".into(),
        format!("--mysql-host={}", addr.ip()),
        format!("--mysql-port={}", addr.port()),
        format!("--mysql-user={}", load.user),
        format!("--mysql-password={}", load.password),
        format!("--mysql-db={}", load.database),
        "--tables=1".into(),
        format!("--table-size={}", load.table_rows),
        format!("--threads={}", load.clients),
        format!("--time={}", load.duration.as_secs().max(1)),
        "--rand-type=uniform".into(),
        "--percentile=50".into(),
        "run".into(),
    ]
    .into();
    parse_sysbench(&run("sysbench", &args)?)
}

fn run(program: &str, args: &[String]) -> Result<String, String> {
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {program} (scripts/setup.sh installs it): {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let said: Vec<&str> = stderr.lines().chain(stdout.lines()).rev().take(6).collect();
        return Err(format!(
            "{program} failed ({}): {}",
            out.status,
            said.into_iter().rev().collect::<Vec<_>>().join(" | ")
        ));
    }
    Ok(stdout)
}

/// `235.00us`, `1.20ms`, `2.00s` in µs.
fn wrk_duration_us(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|v| v * scale)
}

/// `Requests/sec:`, the 50% line of `--latency`, and any non-2xx or
/// socket errors from wrk's summary.
pub fn parse_wrk(out: &str) -> Result<Reported, String> {
    let mut rate = None;
    let mut p50 = None;
    let mut errors = 0.0;
    for line in out.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("Requests/sec:") {
            rate = v.trim().parse::<f64>().ok();
        } else if let Some(v) = line.strip_prefix("50%") {
            p50 = wrk_duration_us(v.trim());
        } else if let Some(v) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += v.trim().parse::<f64>().unwrap_or(0.0);
        } else if let Some(v) = line.strip_prefix("Socket errors:") {
            // connect 0, read 0, write 0, timeout 0
            errors += v
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<f64>().ok())
                .sum::<f64>();
        }
    }
    match (rate, p50) {
        (Some(rate), Some(p50_us)) => Ok(Reported { rate, p50_us, errors }),
        _ => Err(format!("wrk printed no Requests/sec and 50% latency: {}", out.trim())),
    }
}

/// `transactions: N (R per sec.)`, the `50th percentile:` (ms) of
/// `--percentile=50`, and `ignored errors:` from sysbench's summary.
pub fn parse_sysbench(out: &str) -> Result<Reported, String> {
    let mut rate = None;
    let mut p50 = None;
    let mut errors = 0.0;
    let per_sec = |v: &str| {
        let inside = v.split('(').nth(1)?;
        inside.split_whitespace().next()?.parse::<f64>().ok()
    };
    for line in out.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("transactions:") {
            rate = per_sec(v);
        } else if let Some(v) = line.strip_prefix("50th percentile:") {
            p50 = v.trim().parse::<f64>().ok().map(|ms| ms * 1e3);
        } else if let Some(v) = line.strip_prefix("ignored errors:") {
            errors += v.split_whitespace().next().and_then(|n| n.parse::<f64>().ok()).unwrap_or(0.0);
        }
    }
    match (rate, p50) {
        (Some(rate), Some(p50_us)) => Ok(Reported { rate, p50_us, errors }),
        _ => Err(format!("sysbench printed no transactions and 50th percentile: {}", out.trim())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WRK: &str = "Running 2s test @ http://127.0.0.1:33637/body
  1 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.00ms    2.96ms  32.75ms   93.75%
    Req/Sec    43.31k     8.50k   75.51k    90.00%
  Latency Distribution
     50%  235.00us
     75%  301.00us
     90%    1.20ms
     99%   15.02ms
  86205 requests in 2.00s, 105.07MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  43082.51
Transfer/sec:     52.51MB
";

    #[test]
    fn wrk_summary_gives_rate_median_and_errors() {
        let r = parse_wrk(WRK).unwrap();
        assert_eq!(r.rate, 43082.51);
        assert!((r.p50_us - 235.0).abs() < 1e-9);
        assert_eq!(r.errors, 7.0);
        assert_eq!(wrk_duration_us("1.20ms"), Some(1200.0));
        assert_eq!(wrk_duration_us("2.00s"), Some(2e6));
        assert!(parse_wrk("Running 2s test\n").is_err());
    }

    const SYSBENCH: &str = "SQL statistics:
    queries performed:
        read:                            12345
        write:                           0
        other:                           0
        total:                           12345
    transactions:                        12345  (1234.12 per sec.)
    queries:                             12345  (1234.12 per sec.)
    ignored errors:                      3      (0.30 per sec.)
    reconnects:                          0      (0.00 per sec.)

Latency (ms):
         min:                                    0.06
         avg:                                    0.10
         max:                                    5.39
         50th percentile:                        0.09
         sum:                                 9990.00
";

    #[test]
    fn sysbench_summary_gives_rate_median_and_ignored_errors() {
        let r = parse_sysbench(SYSBENCH).unwrap();
        assert_eq!(r.rate, 1234.12);
        assert!((r.p50_us - 90.0).abs() < 1e-9);
        assert_eq!(r.errors, 3.0);
        assert!(parse_sysbench("FATAL: error").is_err());
    }
}

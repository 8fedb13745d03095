//! The host side of the network workload: vmbench itself connects to the
//! agent and measures TCP request/response latency and stream throughput.

use crate::scenario::{Workload, WorkloadKind};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// What the host needs to run the network workload against one target.
#[derive(Debug, Clone, Copy)]
pub struct NetworkClient {
    pub rr_count: u64,
    pub rr_bytes: usize,
    pub stream_bytes: u64,
}

impl NetworkClient {
    /// A client for `workload` if it is the network workload.
    pub fn for_workload(workload: &Workload) -> Option<Self> {
        (workload.kind == WorkloadKind::Network).then(|| NetworkClient {
            rr_count: workload.param("rr_count").unwrap_or(10_000),
            rr_bytes: workload.param("rr_bytes").unwrap_or(64) as usize,
            stream_bytes: workload.param("stream_mib").unwrap_or(256) * 1024 * 1024,
        })
    }

    /// [`NetworkClient::run`] on an OS thread of its own with its own
    /// runtime, within `timeout`, so the round trips it times never share a
    /// thread with console reading or footprint sampling.
    pub async fn run_on_own_thread(
        self,
        addr: SocketAddr,
        timeout: Duration,
        mark: Option<crate::backend::footprint::Mark>,
    ) -> Result<Measured, String> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        std::thread::spawn(move || {
            let result = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(async {
                    tokio::time::timeout(timeout, self.run(addr, mark))
                        .await
                        .unwrap_or_else(|_| Err("timed out".into()))
                }),
                Err(e) => Err(format!("starting the client's runtime: {e}")),
            };
            let _ = tx.send(result);
        });
        rx.await
            .map_err(|_| "the network client's thread ended without an answer".to_string())?
    }

    /// Connects to the agent at `addr` (a forwarded or published port on the
    /// host) and measures; metrics in µs and Gbit/s, and when each phase ran.
    /// With a `mark`, the target's CPU time is read at each phase's ends.
    pub async fn run(self, addr: SocketAddr, mark: Option<crate::backend::footprint::Mark>) -> Result<Measured, String> {
        let (rr_count, rr_bytes, stream_bytes) = (self.rr_count, self.rr_bytes, self.stream_bytes);
        let now = || {
            let at = Instant::now();
            if let Some(mark) = &mark {
                mark.now();
            }
            at
        };
        let mut m = BTreeMap::new();
        let conn = connect(addr).await?;
        let rr_from = now();
        let mut latencies = request_response(conn, rr_count, rr_bytes).await?;
        let rr_to = now();
        latencies.sort_by(f64::total_cmp);
        m.insert("tcp_rr_p50_us".into(), pick(&latencies, 0.50));
        m.insert("tcp_rr_p99_us".into(), pick(&latencies, 0.99));
        let conn = connect(addr).await?;
        let stream_from = now();
        let secs = stream(conn, stream_bytes).await?;
        let stream_to = now();
        m.insert("tcp_stream_gbps".into(), stream_bytes as f64 * 8.0 / secs / 1e9);
        Ok(Measured {
            metrics: m,
            windows: vec![
                UnitWindow {
                    metric: "host_cpu_per_request_us".into(),
                    from: rr_from,
                    to: rr_to,
                    units: rr_count as f64,
                },
                UnitWindow {
                    metric: "host_cpu_per_mb_us".into(),
                    from: stream_from,
                    to: stream_to,
                    units: stream_bytes as f64 / 1e6,
                },
            ],
        })
    }
}

/// What the host side measured, and the windows in which it did each unit
/// of work, for the host CPU the target spent per unit.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub metrics: BTreeMap<String, f64>,
    pub windows: Vec<UnitWindow>,
}

/// A phase of host-driven work: `units` of it between `from` and `to`,
/// whose host CPU per unit (in µs) is reported as `metric`.
#[derive(Debug, Clone, PartialEq)]
pub struct UnitWindow {
    pub metric: String,
    pub from: Instant,
    pub to: Instant,
    pub units: f64,
}

/// Connects, retrying briefly: a forwarded port may accept before the
/// forwarder reaches the agent (a VM's user network, an engine's userland proxy).
pub async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let start = Instant::now();
    loop {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                s.set_nodelay(true).map_err(|e| e.to_string())?;
                return Ok(s);
            }
            Err(e) if start.elapsed() < Duration::from_secs(5) => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => return Err(format!("connecting to the agent at {addr}: {e}")),
        }
    }
}

/// Per-round-trip latencies in µs.
async fn request_response(mut conn: TcpStream, count: u64, size: usize) -> Result<Vec<f64>, String> {
    let request = vec![0x5au8; size];
    let mut response = vec![0u8; size];
    let mut out = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let t = Instant::now();
        conn.write_all(&request).await.map_err(|e| format!("request: {e}"))?;
        conn.read_exact(&mut response).await.map_err(|e| format!("response: {e}"))?;
        out.push(t.elapsed().as_secs_f64() * 1e6);
    }
    Ok(out)
}

/// Seconds to send `bytes` and have the agent confirm it received them all.
async fn stream(mut conn: TcpStream, bytes: u64) -> Result<f64, String> {
    let chunk = vec![0xa5u8; 1 << 20];
    let t = Instant::now();
    let mut sent = 0u64;
    while sent < bytes {
        let n = chunk.len().min((bytes - sent) as usize);
        conn.write_all(&chunk[..n]).await.map_err(|e| format!("stream: {e}"))?;
        sent += n as u64;
    }
    conn.shutdown().await.map_err(|e| format!("stream shutdown: {e}"))?;
    let mut count = [0u8; 8];
    conn.read_exact(&mut count).await.map_err(|e| format!("stream answer: {e}"))?;
    let secs = t.elapsed().as_secs_f64();
    let received = u64::from_be_bytes(count);
    if received != bytes {
        return Err(format!("the agent received {received} of {bytes} bytes"));
    }
    Ok(secs)
}

/// The `q` percentile of the round trips by nearest rank, the definition the
/// agent's own percentiles and the summaries use too; 0 without round trips.
fn pick(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    crate::stats::percentile::nearest_rank(sorted, q)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The host's round-trip percentiles, the agent's (which reaches the
    /// definition as `crate::percentile`, being built without `stats`) and
    /// the summaries' tail percentiles are one function: they agree exactly.
    #[test]
    fn host_agent_and_summary_percentiles_agree() {
        for n in [1usize, 2, 7, 10, 99, 100, 101, 1000, 1234] {
            let mut values: Vec<f64> = (0..n).map(|i| ((i * 7919) % 1009) as f64 * 0.37 + 3.0).collect();
            let summary = crate::stats::Summary::of(&values).unwrap();
            values.sort_by(f64::total_cmp);
            for (q, tail) in [(0.9, summary.p90), (0.99, summary.p99), (0.999, summary.p999)] {
                assert_eq!(pick(&values, q), tail, "n = {n}, q = {q}");
                assert_eq!(crate::percentile::nearest_rank(&values, q), tail, "n = {n}, q = {q}");
            }
            assert_eq!(pick(&values, 0.5), crate::percentile::nearest_rank(&values, 0.5));
        }
        assert_eq!(pick(&[], 0.5), 0.0);
    }
}

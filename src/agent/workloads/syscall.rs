//! System calls: the cost of a trivial one (`getppid`, which no libc caches)
//! and a context switch measured as a one-byte ping-pong between two threads
//! over two pipes. This is where VM exits and gVisor-style sandboxes show.

use super::params::{read, ParamSpec};
use super::{Metrics, Params, Workload};
use std::time::Instant;

pub struct Syscall;

const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "calls",
        default: 1_000_000,
        min: 1,
        max: 10_000_000_000,
        doc: "getppid calls timed",
    },
    ParamSpec {
        name: "round_trips",
        default: 50_000,
        min: 1,
        max: 1_000_000_000,
        doc: "pipe ping-pong round trips timed",
    },
];

impl Workload for Syscall {
    fn name(&self) -> &'static str {
        "syscall"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, params: &Params, env: &super::Env) -> Result<Metrics, super::WorkloadError> {
        let [calls, round_trips] = read(params, "syscall", PARAMS)?[..] else {
            unreachable!("one value per spec")
        };
        // Each loop is timed as a whole and divided, so the loop is the
        // timed region, not one call.
        let mut m = Metrics::new();
        let secs = getppid_secs(calls);
        env.clock.check("getppid", &format!("all {calls} calls"), secs * 1e9)?;
        m.insert("getppid_ns".into(), secs * 1e9 / calls as f64);
        let secs = pipe_round_trip_secs(round_trips)?;
        env.clock
            .check("pipe round trips", &format!("all {round_trips} round trips"), secs * 1e9)?;
        m.insert("pipe_round_trip_ns".into(), secs * 1e9 / round_trips as f64);
        Ok(m)
    }
}

/// Seconds for `calls` getppid system calls.
fn getppid_secs(calls: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..calls {
        // SAFETY: getppid takes no arguments and cannot fail.
        std::hint::black_box(unsafe { libc::syscall(libc::SYS_getppid) });
    }
    t.elapsed().as_secs_f64()
}

fn pipe() -> Result<(i32, i32), String> {
    let mut fds = [0i32; 2];
    // SAFETY: fds has room for the two descriptors pipe writes.
    if unsafe { libc::pipe(fds.as_mut_ptr()) } != 0 {
        return Err(format!("pipe: {}", std::io::Error::last_os_error()));
    }
    Ok((fds[0], fds[1]))
}

fn transfer(read_fd: i32, write_fd: i32) -> bool {
    let mut byte = [0u8; 1];
    // SAFETY: one-byte reads and writes into a live local buffer.
    unsafe { libc::write(write_fd, byte.as_ptr().cast(), 1) == 1 && libc::read(read_fd, byte.as_mut_ptr().cast(), 1) == 1 }
}

/// Seconds for `round_trips` one-byte ping-pongs between two threads.
fn pipe_round_trip_secs(round_trips: u64) -> Result<f64, String> {
    let (ping_r, ping_w) = pipe()?;
    let (pong_r, pong_w) = pipe()?;
    let echo = std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        for _ in 0..round_trips {
            // SAFETY: as in `transfer`.
            unsafe {
                if libc::read(ping_r, byte.as_mut_ptr().cast(), 1) != 1 || libc::write(pong_w, byte.as_ptr().cast(), 1) != 1 {
                    return;
                }
            }
        }
    });
    let t = Instant::now();
    let mut ok = true;
    for _ in 0..round_trips {
        ok &= transfer(pong_r, ping_w);
        if !ok {
            break;
        }
    }
    let secs = t.elapsed().as_secs_f64();
    let _ = echo.join();
    for fd in [ping_r, ping_w, pong_r, pong_w] {
        // SAFETY: closing descriptors this function opened.
        unsafe { libc::close(fd) };
    }
    if !ok {
        return Err(format!("pipe ping-pong failed: {}", std::io::Error::last_os_error()));
    }
    Ok(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_run_reports_both_costs() {
        let params: Params = [("calls", "20000"), ("round_trips", "1000")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let m = Syscall.run(&params, &Default::default()).unwrap();
        assert!(m["getppid_ns"] > 0.0 && m["pipe_round_trip_ns"] > m["getppid_ns"], "{m:?}");
    }
}

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
        let secs = env.per_unit("getppid", || Ok((getppid_secs(calls), calls as f64)))?;
        env.clock.check("getppid", &format!("all {calls} calls"), secs * 1e9)?;
        m.insert("getppid_ns".into(), secs * 1e9 / calls as f64);
        // The ping-pong in two named placements: both threads on one CPU (a
        // switch on that CPU) and on two CPUs (a cross-CPU wake-up), set by
        // the agent itself so every target measures the same thing; the
        // second only where the target has two CPUs to give.
        let cpus = allowed_cpus();
        let placements = [
            ("pipe_same_cpu_ns", cpus.first().map(|&c| (c, c))),
            ("pipe_cross_cpu_ns", cpus.get(1).map(|&c| (cpus[0], c))),
        ];
        for (name, placement) in placements {
            let Some((main, echo)) = placement else { continue };
            let unit = name.trim_end_matches("_ns");
            let secs = env.per_unit(unit, || Ok((pipe_round_trip_secs(round_trips, main, echo)?, round_trips as f64)))?;
            env.clock.check(name, &format!("all {round_trips} round trips"), secs * 1e9)?;
            m.insert(name.into(), secs * 1e9 / round_trips as f64);
        }
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
/// The CPUs this process may run on, in order.
fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the call writes at
    // most its size.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    if unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        .filter(|&c| unsafe { libc::CPU_ISSET(c, &set) })
        .collect()
}

/// Pins the calling thread to `cpu`.
fn pin(cpu: usize) -> Result<(), String> {
    // SAFETY: as in `allowed_cpus`; CPU_SET writes inside the set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    unsafe { libc::CPU_SET(cpu, &mut set) };
    match unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) } {
        0 => Ok(()),
        _ => Err(format!("pinning a thread to CPU {cpu}: {}", std::io::Error::last_os_error())),
    }
}

/// Seconds for `round_trips` one-byte ping-pongs between this thread, pinned
/// to `main_cpu`, and an echo thread pinned to `echo_cpu`. This thread's
/// placement is restored afterwards.
fn pipe_round_trip_secs(round_trips: u64, main_cpu: usize, echo_cpu: usize) -> Result<f64, String> {
    let before = allowed_cpus();
    pin(main_cpu)?;
    let result = ping_pong(round_trips, echo_cpu);
    restore(&before);
    result
}

/// Puts the calling thread back on `cpus`.
fn restore(cpus: &[usize]) {
    // SAFETY: as in `pin`.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus {
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
}

fn ping_pong(round_trips: u64, echo_cpu: usize) -> Result<f64, String> {
    let (ping_r, ping_w) = pipe()?;
    let (pong_r, pong_w) = pipe()?;
    // The echo thread owns its two ends and closes them however it ends, so
    // a failure there ends this side's reads instead of blocking them.
    let echo = std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        if pin(echo_cpu).is_ok() {
            for _ in 0..round_trips {
                // SAFETY: as in `transfer`.
                unsafe {
                    if libc::read(ping_r, byte.as_mut_ptr().cast(), 1) != 1 || libc::write(pong_w, byte.as_ptr().cast(), 1) != 1 {
                        break;
                    }
                }
            }
        }
        for fd in [ping_r, pong_w] {
            // SAFETY: closing the descriptors this thread owns.
            unsafe { libc::close(fd) };
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
    let error = std::io::Error::last_os_error();
    for fd in [ping_w, pong_r] {
        // SAFETY: closing the descriptors this side owns.
        unsafe { libc::close(fd) };
    }
    let _ = echo.join();
    if !ok {
        return Err(format!("pipe ping-pong (echo on CPU {echo_cpu}) failed: {error}"));
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
        assert!(m["getppid_ns"] > 0.0 && m["pipe_same_cpu_ns"] > m["getppid_ns"], "{m:?}");
        if allowed_cpus().len() >= 2 {
            assert!(m["pipe_cross_cpu_ns"] > 0.0, "{m:?}");
        }
        assert_eq!(
            allowed_cpus().len(),
            std::thread::available_parallelism().unwrap().get(),
            "placement restored"
        );
    }
}

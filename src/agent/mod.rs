//! `vmbench-agent`: the one program that runs inside every target.
//!
//! It is PID 1 in a VM's initramfs, the entrypoint of a `FROM scratch`
//! image, and a plain child process for the native target. It reads its
//! instructions, prints a `ready` line at once, runs one workload, prints the
//! result, and leaves (as PID 1 by rebooting, which QEMU turns into an exit).
//! Everything it prints that the host acts on goes through [`crate::protocol`].

pub mod clock;
pub mod facts;
pub mod modules;
mod pid1;
pub mod servers;
pub mod service;
pub mod workloads;

use crate::protocol::{encode_line, AgentMessage, Instructions};
use std::io::Write;
use std::time::Instant;

/// How the agent was started, which decides where its instructions come
/// from, where it writes and how it leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// A VM's init (`/init` of vmbench's initramfs, or `init=` on a root
    /// file system): instructions on the kernel command line, leaves by
    /// rebooting.
    VmInit,
    /// A unit of the guest's own init (`--service`, started by systemd after
    /// `multi-user.target`) in a VM or a container; see [`service`].
    Service(service::Place),
    /// A container's entrypoint or a native child: instructions as
    /// arguments, leaves by exiting.
    Process,
}

impl Role {
    /// The agent runs inside a VM's guest kernel.
    pub fn in_vm(self) -> bool {
        matches!(self, Role::VmInit | Role::Service(service::Place::Vm))
    }
}

/// Runs the agent and returns the process exit status. As a VM's init it
/// does not return.
pub fn run() -> i32 {
    // Read the clock first: everything before this instant is the guest
    // kernel's (or the host's) business, everything after is ours.
    let boottime_ns = pid1::boottime_ns();
    let started = Instant::now();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let role = if args.first().map(String::as_str) == Some(service::FLAG) {
        Role::Service(service::place())
    } else if pid1::is_vm_init(&args) {
        Role::VmInit
    } else {
        Role::Process
    };
    if role == Role::VmInit {
        pid1::mount_basics();
    }
    let tokens = match role {
        Role::VmInit => pid1::vm_instructions(),
        Role::Service(place) => service::instructions(place),
        Role::Process => args,
    };
    if let Role::Service(_) = role {
        service::take_console();
        if !service::has_instructions(&tokens) {
            // Booted without vmbench (by hand, or as a disk of the user's
            // own): a system like any other, left up.
            println!("vmbench-agent: no instructions from vmbench; leaving the system up");
            return 0;
        }
    }
    let parsed = Instructions::from_tokens(tokens.iter().map(String::as_str));
    let exit = parsed.as_ref().map(|i| i.exit).unwrap_or(crate::protocol::ExitMode::Reboot);
    let status = match parsed {
        Ok(instructions) => serve(&instructions, boottime_ns, started, role),
        Err(err) => {
            eprintln!("vmbench-agent: {err}");
            2
        }
    };
    match role {
        Role::VmInit | Role::Service(service::Place::Vm) => pid1::leave(exit, status),
        Role::Service(service::Place::Container) => service::stop_container(status),
        Role::Process => status,
    }
}

fn serve(instructions: &Instructions, boottime_ns: u64, started: Instant, role: Role) -> i32 {
    let vm_init = role.in_vm();
    let nonce = instructions.nonce.as_str();
    // Two cheap reads (a sysfs file, one system call) that say whether the
    // numbers below can be trusted; anything slower waits until after the
    // ready line, which is the boot measurement.
    let (clocksource, clock_getres_ns) = (clock::clocksource(), clock::getres_ns());
    let init_ns = started.elapsed().as_nanos() as u64;
    let ready = AgentMessage::Ready {
        boottime_ns,
        init_ns,
        pid: std::process::id(),
        rss_bytes: pid1::rss_bytes(),
        kernel: pid1::kernel_release(),
        clocksource,
        clock_getres_ns,
    };
    emit(nonce, &ready);
    if let Role::Service(place) = role {
        // Read after the ready line: asking systemd takes milliseconds.
        let phases = service::systemd_phases(place);
        if !phases.is_empty() {
            emit(nonce, &AgentMessage::Phases(phases));
        }
    }
    let clock = clock::Clock::measure();
    if instructions.workload != "boot" {
        emit(nonce, &AgentMessage::Facts(facts::gather(clock.res_ns)));
    }
    let announce_nonce = nonce.to_string();
    let announce: workloads::Announce = Box::new(move |port, server| emit(&announce_nonce, &AgentMessage::Listening { port, server }));
    let region_nonce = nonce.to_string();
    let region: workloads::RegionLine = Box::new(move |unit, units| {
        emit(
            &region_nonce,
            &AgentMessage::Region {
                unit: unit.to_string(),
                units,
            },
        )
    });
    let env = workloads::Env {
        region: std::sync::Arc::new(region),
        scratch: instructions.scratch.clone(),
        listen: instructions.listen.clone(),
        address: instructions.address.clone(),
        vm_init,
        announce: std::sync::Arc::new(announce),
        clock,
        // Outside a VM the start-up is ~20-40 µs, within a factor of two of
        // 1000 × a TSC's measured ~20 ns, so checking it would fail good
        // samples at random; a VM's init mounts file systems first and is
        // where a guest's clock can be coarse.
        startup: (role == Role::VmInit).then_some(workloads::Startup { init_ns, boottime_ns }),
    };
    let status = report(nonce, instructions, &env);
    emit(nonce, &AgentMessage::Done);
    status
}

/// Runs the workload and prints its result, error or unsupported line;
/// returns the exit status.
fn report(nonce: &str, instructions: &Instructions, env: &workloads::Env) -> i32 {
    let outcome = workloads::run(&instructions.workload, &instructions.params, env).and_then(|metrics| {
        // The kernel's watchdog may demote an unstable TSC while the workload
        // runs (seen under TCG); then durations it timed mix two clocks.
        let now = clock::clocksource();
        if !clock::same_counter(now.as_deref(), env.clock.source.as_deref()) {
            let name = |s: &Option<String>| s.clone().unwrap_or_else(|| "none".into());
            return Err(workloads::WorkloadError::Failed(format!(
                "the clocksource changed from {} to {} while the workload ran",
                name(&env.clock.source),
                name(&now)
            )));
        }
        Ok(metrics)
    });
    match outcome {
        Ok(mut metrics) => {
            // The agent's own peak memory is the host's cost natively and part
            // of it in a container. Inside a VM the guest's accounting of an
            // init running from the initramfs says nothing about the host
            // (QEMU's footprint does), so it is not reported there.
            if !env.vm_init {
                metrics.insert("agent_peak_rss_bytes".into(), pid1::peak_rss_bytes() as f64);
                metrics.insert("agent_cpu_ms".into(), pid1::cpu_ms());
            }
            // Recorded with every sample, so a coarse clock is visible next
            // to the numbers it produced.
            if let Some(res) = env.clock.res_ns {
                metrics.insert("clock_res_ns".into(), res as f64);
            }
            emit(
                nonce,
                &AgentMessage::Result {
                    workload: instructions.workload.clone(),
                    metrics,
                },
            );
            0
        }
        Err(workloads::WorkloadError::Failed(message)) => {
            emit(nonce, &AgentMessage::Error { message });
            1
        }
        Err(workloads::WorkloadError::Unsupported(reason)) => {
            emit(nonce, &AgentMessage::Unsupported { reason });
            0
        }
    }
}

/// Writes one protocol line in a single write and flushes it, so the host
/// sees it the moment it exists. A console hung up under a service is
/// reopened and the line written again.
fn emit(nonce: &str, message: &AgentMessage) {
    let line = encode_line(nonce, message);
    let write = |line: &str| {
        let mut out = std::io::stdout().lock();
        out.write_all(line.as_bytes()).and_then(|()| out.flush())
    };
    // A closed console leaves nothing to report to; the exit status remains.
    if write(&line).is_err() && service::reopen_console() {
        let _ = write(&line);
    }
}

/// The `pre_exec` hook that makes a child die with this process: between
/// fork and exec it sets `PR_SET_PDEATHSIG` to SIGKILL, and fails (so the
/// child never starts) if this process died before that. Shared by the
/// harness (QEMU, the native agent) and the agent (a workload's server), as
/// the one place this rule lives.
pub fn dies_with_this_process() -> impl FnMut() -> std::io::Result<()> + Send + Sync + 'static {
    let parent = std::process::id() as libc::pid_t;
    move || {
        // SAFETY: prctl and getppid are async-signal-safe; nothing is
        // allocated between fork and exec.
        unsafe {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
        }
        Ok(())
    }
}

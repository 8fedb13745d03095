//! A hostile guest for vmbench's tests: run as a target's `agent`, it
//! misbehaves as its program name says (the test links one name per
//! behaviour to one binary), or as `HOSTILE_BEHAVIOUR` said when it was
//! built (a VM's `/init` and a container's entrypoint have names of their
//! own). Standard library only, so the test builds it with rustc alone.
//! It reads its launch's nonce where vmbench's agent finds it: in its argv
//! (`vmbench.nonce=...`: a native agent, a container's command) or, as a
//! VM's init, on the kernel command line. As init it powers the VM off when
//! it is done, as the agent does.

use std::io::Write;
use std::os::unix::process::CommandExt;

fn main() {
    let from_argv = std::env::args().find_map(|a| a.strip_prefix("vmbench.nonce=").map(str::to_string));
    let vm_init = from_argv.is_none() && std::process::id() == 1;
    let nonce = from_argv.or_else(|| vm_init.then(nonce_from_kernel).flatten()).unwrap_or_default();
    let program = std::env::args().next().unwrap_or_default();
    let behaviour = option_env!("HOSTILE_BEHAVIOUR")
        .map(str::to_string)
        .unwrap_or_else(|| program.rsplit('/').next().unwrap_or_default().to_string());
    misbehave(&behaviour, &nonce);
    if vm_init {
        power_off();
    }
}

extern "C" {
    fn mount(source: *const u8, target: *const u8, fstype: *const u8, flags: u64, data: *const u8) -> i32;
    fn reboot(cmd: i32) -> i32;
}

/// As a VM's init: `/proc` mounted, the nonce from `/proc/cmdline`.
fn nonce_from_kernel() -> Option<String> {
    // SAFETY: NUL-terminated literals; mount copies what it needs.
    unsafe { mount(b"proc\0".as_ptr(), b"/proc\0".as_ptr(), b"proc\0".as_ptr(), 0, std::ptr::null()) };
    let cmdline = std::fs::read_to_string("/proc/cmdline").ok()?;
    cmdline
        .split_whitespace()
        .find_map(|t| t.strip_prefix("vmbench.nonce=").map(str::to_string))
}

/// Ends the VM as the agent does (init must not exit: the kernel panics).
fn power_off() -> ! {
    const RB_POWER_OFF: i32 = 0x4321_fedc_u32 as i32;
    let _ = std::io::stdout().flush();
    // SAFETY: no memory is passed.
    unsafe { reboot(RB_POWER_OFF) };
    loop {
        std::thread::sleep(std::time::Duration::from_secs(3600));
    }
}

fn misbehave(behaviour: &str, nonce: &str) {
    let ready = r#"{"type":"ready","boottime_ns":1,"init_ns":1000,"pid":1,"rss_bytes":4096,"kernel":"hostile"}"#;
    let line = |json: &str| format!("VMBENCH1 {nonce} {json}\n");
    let mut out = std::io::stdout().lock();
    let _ = match behaviour {
        // Lines as fast as the pipe takes them, for ever.
        "flood" => {
            let chunk = "x".repeat(99) + "\n";
            let block = chunk.repeat(655);
            loop {
                if out.write_all(block.as_bytes()).is_err() {
                    return;
                }
            }
        }
        // One line that never ends.
        "endless-line" => {
            let block = vec![b'y'; 64 * 1024];
            loop {
                if out.write_all(&block).is_err() {
                    return;
                }
            }
        }
        // Bytes that are not UTF-8 around a well-behaved launch: must succeed.
        "invalid-utf8" => out
            .write_all(b"\xff\xfe\xc3\x28 bad \xed\xa0\x80 bytes\n\x80\x80\x80")
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.write_all(line(ready).as_bytes()))
            .and_then(|_| out.write_all(b"\xf0\x28\x8c\x28\n"))
            .and_then(|_| out.write_all(line(r#"{"type":"done"}"#).as_bytes())),
        // Ready lines vmbench must not accept, then exits as if done.
        "wrong-nonce" => {
            let other = if nonce.starts_with('0') { "1" } else { "0" };
            let wrong = format!("{other}{}", &nonce[1..]);
            let lines = [
                format!("VMBENCH1 {wrong} {ready}\n"),
                format!("VMBENCH1 {ready}\n"),
                format!("VMBENCH1  {ready}\n"),
                format!("VMBENCH1 {nonce}0 {ready}\n"),
                format!("VMBENCH1 {} {ready}\n", &nonce[..nonce.len() - 1]),
                format!("vmbench1 {nonce} {ready}\n"),
                format!("VMBENCH2 {nonce} {ready}\n"),
                format!("VMBENCH1 {wrong} {{\"type\":\"done\"}}\n"),
            ];
            lines.iter().try_for_each(|l| out.write_all(l.as_bytes()))
        }
        // A valid ready line, then nothing, for ever.
        "hang" => {
            let _ = out.write_all(line(ready).as_bytes()).and_then(|_| out.flush());
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        // Results no measurement can have.
        "negative" => result(&mut out, &line, ready, r#"{"ready_extra_ms":1.0,"x_ms":-1.0}"#),
        "huge" => result(&mut out, &line, ready, r#"{"x_ms":1e308}"#),
        "nan" => result(&mut out, &line, ready, r#"{"x_ms":NaN}"#),
        "overflow" => result(&mut out, &line, ready, r#"{"x_ms":1e999}"#),
        // Memory until something stops it: every page touched, progress
        // printed every 16 MiB.
        "membomb" => {
            let mut held: Vec<Vec<u8>> = Vec::new();
            loop {
                held.push(vec![1u8; 1 << 20]);
                if held.len() % 16 == 0 {
                    let _ = writeln!(out, "membomb: holding {} MiB", held.len());
                    let _ = out.flush();
                }
            }
        }
        // Processes until the system refuses one: every child sleeps, the
        // parent says how many it got and why it stopped, then exits 1.
        "forkbomb" => {
            let mut children = Vec::new();
            loop {
                match std::process::Command::new("/proc/self/exe").arg0("sleeper").spawn() {
                    Ok(child) => children.push(child),
                    Err(e) => {
                        let _ = writeln!(out, "forkbomb: refused after {} processes: {e}", children.len());
                        let _ = out.flush();
                        std::process::exit(1);
                    }
                }
            }
        }
        "sleeper" => loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        },
        other => {
            eprintln!("hostile guest: no behaviour called `{other}`");
            std::process::exit(2);
        }
    };
}

/// A ready line, a result with `metrics`, and done.
fn result(out: &mut impl Write, line: &impl Fn(&str) -> String, ready: &str, metrics: &str) -> std::io::Result<()> {
    out.write_all(line(ready).as_bytes())?;
    out.write_all(line(&format!(r#"{{"type":"result","workload":"boot","metrics":{metrics}}}"#)).as_bytes())?;
    out.write_all(line(r#"{"type":"done"}"#).as_bytes())
}

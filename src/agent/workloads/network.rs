//! Network: the agent serves, vmbench (on the host) measures. The agent
//! listens where the host told it (`vmbench.listen=`), says on which port,
//! then serves two connections: an echo of fixed-size messages (request /
//! response latency) and a sink that counts what it receives and answers
//! the count (stream throughput). In a VM it first loads the virtio-net
//! driver and configures `eth0` for QEMU's user network (10.0.2.15/24).

use super::params::{read, ParamSpec};
use super::{Env, Metrics, Params, Workload};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

pub struct Network;

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "rr_count",
        default: 10_000,
        min: 1,
        max: 100_000_000,
        doc: "request/response round trips timed by the host",
    },
    ParamSpec {
        name: "rr_bytes",
        default: 64,
        min: 1,
        max: 65_536,
        doc: "size of each request and response",
    },
    ParamSpec {
        name: "stream_mib",
        default: 256,
        min: 1,
        max: 1_048_576,
        doc: "MiB the host streams to the agent",
    },
];

/// QEMU user networking's guest address.
pub const GUEST_ADDR: [u8; 4] = [10, 0, 2, 15];

impl Workload for Network {
    fn name(&self) -> &'static str {
        "network"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, params: &Params, env: &Env) -> Result<Metrics, super::WorkloadError> {
        let [_, rr_bytes, _] = read(params, "network", PARAMS)?[..] else {
            unreachable!("one value per spec")
        };
        let listen = env
            .listen
            .as_deref()
            .ok_or("the network workload needs a listen address (vmbench.listen=)")?;
        if env.vm_init {
            super::super::modules::load_all()?;
            super::super::modules::load_network_from_tree()?;
            configure_vm_network(env.address.as_deref())?;
        }
        let listener = TcpListener::bind(listen).map_err(|e| format!("cannot listen on {listen}: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        (env.announce)(port, None);
        let (echo, _) = listener.accept().map_err(|e| format!("accepting the echo connection: {e}"))?;
        serve_echo(echo, rr_bytes as usize)?;
        let (sink, _) = listener.accept().map_err(|e| format!("accepting the stream connection: {e}"))?;
        // The host checks the count it gets back; the measurements are its own.
        serve_sink(sink)?;
        Ok(Metrics::new())
    }
}

fn serve_echo(mut conn: TcpStream, size: usize) -> Result<(), String> {
    conn.set_nodelay(true).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; size];
    loop {
        match conn.read_exact(&mut buf) {
            Ok(()) => conn.write_all(&buf).map_err(|e| format!("echo write: {e}"))?,
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(format!("echo read: {e}")),
        }
    }
}

fn serve_sink(mut conn: TcpStream) -> Result<u64, String> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("stream read: {e}")),
        }
    }
    conn.write_all(&total.to_be_bytes()).map_err(|e| format!("stream answer: {e}"))?;
    // Wait for the host to close once it has the answer: returning now would
    // let a VM power off while its user network still holds the answer for
    // the host, which then read an early end of file (seen under TCG).
    conn.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let _ = conn.read(&mut [0u8; 1]);
    Ok(total)
}

/// `a.b.c.d/prefix` as an address and its netmask.
pub fn parse_address(text: &str) -> Result<([u8; 4], [u8; 4]), String> {
    let bad = || format!("`{text}` is not an IPv4 address with a prefix length (a.b.c.d/n)");
    let (ip, prefix) = text.split_once('/').ok_or_else(bad)?;
    let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| bad())?;
    let prefix: u32 = prefix.parse().ok().filter(|p| (1..=32).contains(p)).ok_or_else(bad)?;
    let mask = (u32::MAX << (32 - prefix)).to_be_bytes();
    Ok((ip.octets(), mask))
}

/// Brings up `lo` and the VM's NIC with `address` (`a.b.c.d/prefix`, a tap
/// network's), or QEMU user networking's guest address.
pub fn configure_vm_network(address: Option<&str>) -> Result<(), String> {
    let (ip, mask) = match address {
        Some(text) => parse_address(text)?,
        None => (GUEST_ADDR, [255, 255, 255, 0]),
    };
    let nic = first_nic(Duration::from_secs(10))?;
    // SAFETY: a plain datagram socket used only for interface ioctls.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM, 0) };
    if fd < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    let result = (|| {
        up(fd, "lo")?;
        set_addr(fd, &nic, libc::SIOCSIFADDR, ip)?;
        set_addr(fd, &nic, libc::SIOCSIFNETMASK, mask)?;
        up(fd, &nic)
    })();
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    result
}

/// The VM's one network interface, whatever the guest named it (`eth0`
/// from the kernel, `enp0s2` after a guest system's udev), waiting for its
/// driver to bring it.
fn first_nic(timeout: Duration) -> Result<String, String> {
    let start = std::time::Instant::now();
    loop {
        let mut names: Vec<String> = std::fs::read_dir("/sys/class/net")
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        names.retain(|n| n != "lo");
        names.sort();
        if let Some(name) = names.into_iter().next() {
            return Ok(name);
        }
        if start.elapsed() > timeout {
            return Err("no network interface appeared within 10 s of loading the drivers".to_string());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `struct ifreq`: a name and a 24-byte union (address or flags).
#[repr(C)]
struct IfReq {
    name: [u8; 16],
    data: [u8; 24],
}

impl IfReq {
    fn new(name: &str) -> IfReq {
        let mut req = IfReq {
            name: [0; 16],
            data: [0; 24],
        };
        req.name[..name.len()].copy_from_slice(name.as_bytes());
        req
    }
}

fn ioctl(fd: i32, request: libc::c_ulong, req: &mut IfReq, what: &str) -> Result<(), String> {
    // SAFETY: `req` is a properly sized ifreq for these interface ioctls.
    if unsafe { libc::ioctl(fd, request, req as *mut IfReq) } != 0 {
        return Err(format!("{what}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}

fn set_addr(fd: i32, name: &str, request: libc::c_ulong, addr: [u8; 4]) -> Result<(), String> {
    let mut req = IfReq::new(name);
    // sockaddr_in: family (host order u16), port, address.
    req.data[..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
    req.data[4..8].copy_from_slice(&addr);
    ioctl(fd, request, &mut req, &format!("setting an address on {name}"))
}

fn up(fd: i32, name: &str) -> Result<(), String> {
    let mut req = IfReq::new(name);
    ioctl(fd, libc::SIOCGIFFLAGS, &mut req, &format!("reading the flags of {name}"))?;
    let flags = i16::from_ne_bytes([req.data[0], req.data[1]]) | (libc::IFF_UP | libc::IFF_RUNNING) as i16;
    req.data[..2].copy_from_slice(&flags.to_ne_bytes());
    ioctl(fd, libc::SIOCSIFFLAGS, &mut req, &format!("bringing {name} up"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    #[test]
    fn addresses_parse_with_their_netmask() {
        assert_eq!(parse_address("10.77.77.9/24"), Ok(([10, 77, 77, 9], [255, 255, 255, 0])));
        assert_eq!(parse_address("10.0.0.1/30").unwrap().1, [255, 255, 255, 252]);
        assert!(parse_address("10.0.0.1").is_err());
        assert!(parse_address("10.0.0.1/33").is_err());
        assert!(parse_address("nope/24").is_err());
    }

    #[test]
    fn serves_an_echo_then_a_sink_on_loopback() {
        let (tx, rx) = mpsc::channel();
        let announce: super::super::Announce = Box::new(move |port, _| tx.send(port).unwrap());
        let env = Env {
            listen: Some("127.0.0.1:0".into()),
            announce: std::sync::Arc::new(announce),
            ..Default::default()
        };
        let params: Params = [("rr_bytes".to_string(), "8".to_string())].into_iter().collect();
        let agent = std::thread::spawn(move || Network.run(&params, &env));
        let port = rx.recv().unwrap();
        let mut echo = TcpStream::connect(("127.0.0.1", port)).unwrap();
        echo.write_all(b"12345678").unwrap();
        let mut back = [0u8; 8];
        echo.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"12345678");
        drop(echo);
        let mut sink = TcpStream::connect(("127.0.0.1", port)).unwrap();
        sink.write_all(&[7u8; 1000]).unwrap();
        sink.shutdown(std::net::Shutdown::Write).unwrap();
        let mut count = [0u8; 8];
        sink.read_exact(&mut count).unwrap();
        assert_eq!(u64::from_be_bytes(count), 1000);
        assert!(agent.join().unwrap().unwrap().is_empty());
    }
}

//! The HTTP load generator's throughput in a closed loop against a minimal
//! in-process server on loopback: the time per request of generator and
//! server together. The server does the least it can (one read, one
//! prepared write per request), so a regression in the generator's cost per
//! request (parsing, bookkeeping, syscalls, allocation) moves this number.
//! A later check compares the generator with wrk against nginx; this one
//! needs neither.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::Duration;
use vmbench::load::http::{run, HttpLoad, Loop};

const BODY: &[u8] = &[b'x'; 612]; // nginx's default index.html is 612 bytes

/// A thread-per-connection server answering every request with the same
/// bytes; it lives as long as the bench process.
fn server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    let addr = listener.local_addr().unwrap();
    let mut response = format!(
        "HTTP/1.1 200 OK\r\nServer: bench\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: keep-alive\r\n\r\n",
        BODY.len()
    )
    .into_bytes();
    response.extend_from_slice(BODY);
    thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let response = response.clone();
            thread::spawn(move || serve(conn, &response));
        }
    });
    addr
}

fn serve(mut conn: TcpStream, response: &[u8]) {
    let _ = conn.set_nodelay(true);
    let (mut buf, mut filled) = ([0u8; 4096], 0);
    loop {
        match conn.read(&mut buf[filled..]) {
            Ok(0) | Err(_) => return,
            Ok(n) => filled += n,
        }
        // One request at a time (the generator does not pipeline).
        if buf[..filled].ends_with(b"\r\n\r\n") {
            filled = 0;
            if conn.write_all(response).is_err() {
                return;
            }
        } else if filled == buf.len() {
            return;
        }
    }
}

fn closed_loop(c: &mut Criterion) {
    let addr = server();
    let mut group = c.benchmark_group("loadgen");
    group.throughput(Throughput::Elements(1));
    group.sample_size(10);
    group.warm_up_time(Duration::from_millis(500));
    group.measurement_time(Duration::from_secs(3));
    for (connections, threads) in [(1usize, 1usize), (8, 1), (8, 2)] {
        let load = |duration| HttpLoad {
            path: "/".into(),
            host: "bench.invalid".into(),
            connections,
            threads,
            warmup: Duration::from_millis(10),
            duration,
            expect_body_bytes: Some(BODY.len()),
        };
        let id = BenchmarkId::new("closed loop, per request", format!("{connections} conn / {threads} thr"));
        group.bench_function(id, |b| {
            // One "iteration" is one request: run a window long enough for
            // about `iters` of them and scale its length to `iters`.
            b.iter_custom(|iters| {
                let window = Duration::from_micros(iters.saturating_mul(20)).clamp(Duration::from_millis(20), Duration::from_secs(2));
                let out = run(addr, &load(window), Loop::Closed).expect("the generator measures the bench server");
                assert_eq!(out.errors, 0, "{:?}", out.first_error);
                window.mul_f64(iters as f64 / out.requests as f64)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, closed_loop);
criterion_main!(benches);

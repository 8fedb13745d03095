//! The console parser sits between QEMU's serial output and the ready
//! timestamp, so it must keep up with a chatty kernel without adding latency.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::hint::black_box;
use std::time::Instant;
use vmbench::console::Console;
use vmbench::protocol::{encode_line, AgentMessage};

/// A boot log like a verbose kernel's, with the agent's lines at the end.
fn boot_log(kernel_lines: usize) -> Vec<u8> {
    let mut log = String::new();
    for i in 0..kernel_lines {
        log.push_str(&format!(
            "[    {}.{:06}] virtio_blk virtio0: [vda] 2097152 512-byte logical blocks (1.07 GB/1.00 GiB)\n",
            i / 1000,
            i
        ));
    }
    log.push_str(&encode_line(
        "0123456789abcdef",
        &AgentMessage::Ready {
            boottime_ns: 900_000_000,
            init_ns: 12_000,
            pid: 1,
            rss_bytes: 1 << 20,
            kernel: "6.1.0".into(),
            clocksource: Some("tsc".into()),
            clock_getres_ns: Some(1),
        },
    ));
    log.push_str(&encode_line("0123456789abcdef", &AgentMessage::Done));
    log.into_bytes()
}

fn parse(c: &mut Criterion) {
    let mut group = c.benchmark_group("console");
    for lines in [10usize, 1000] {
        let log = boot_log(lines);
        group.throughput(Throughput::Bytes(log.len() as u64));
        for chunk in [64usize, 4096] {
            group.bench_with_input(
                BenchmarkId::new(format!("{lines}_lines"), format!("chunk_{chunk}")),
                &log,
                |b, log| {
                    b.iter(|| {
                        let mut console = Console::new("0123456789abcdef");
                        let now = Instant::now();
                        for piece in log.chunks(chunk) {
                            console.feed(now, black_box(piece));
                        }
                        assert!(console.is_done());
                        console.report.ready_at
                    })
                },
            );
        }
    }
    group.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);

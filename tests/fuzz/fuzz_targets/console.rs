//! The console splitter and protocol parser: bytes from a guest, read in
//! chunks of any size. The first two input bytes choose the chunk sizes; the
//! rest is the console stream. Fed whole or in chunks, the report and the
//! kept lines must be the same, and the kept lines stay bounded.
#![no_main]
use libfuzzer_sys::fuzz_target;
use std::time::Instant;
use vmbench::console::{Console, TAIL_LINES, TAIL_LINE_BYTES};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let (seed, stream) = data.split_at(2);
    let mut state = u16::from_le_bytes([seed[0], seed[1]]) as u32 | 1;
    let at = Instant::now();

    let mut whole = Console::new(common::NONCE);
    whole.feed(at, stream);
    whole.finish(at);

    let mut chunked = Console::new(common::NONCE);
    let mut rest = stream;
    while !rest.is_empty() {
        // xorshift: chunk sizes from 1 to 64 bytes, as reads of a pipe vary.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        let n = (state as usize % 64 + 1).min(rest.len());
        chunked.feed(at, &rest[..n]);
        rest = &rest[n..];
    }
    chunked.finish(at);

    assert_eq!(whole.report, chunked.report, "chunking changed what was read");
    assert_eq!(whole.tail(), chunked.tail(), "chunking changed the kept lines");
    let tail = whole.tail();
    assert!(tail.len() <= TAIL_LINES);
    for line in &tail {
        assert!(
            line.len() <= TAIL_LINE_BYTES + 4 + " [line truncated]".len(),
            "kept line of {} bytes",
            line.len()
        );
        assert!(
            !line.chars().any(|c| c.is_control() && c != '\t'),
            "control character kept: {line:?}"
        );
    }
});

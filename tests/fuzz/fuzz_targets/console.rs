//! The console splitter and protocol parser: bytes from a guest, read in
//! chunks of any size. The first two input bytes choose the chunk sizes; the
//! rest is the console stream. Fed whole or in chunks, the report and the
//! kept lines must be the same, and the kept lines stay bounded.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::console(data));

//! One console line as the protocol reads it (`protocol::decode_line`), and
//! the same text as instruction tokens (`Instructions::from_tokens`):
//! instructions that parse must survive their own formatting.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::protocol_line(data));

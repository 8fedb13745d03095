//! One console line as the protocol reads it (`protocol::decode_line`), and
//! the same text as instruction tokens (`Instructions::from_tokens`):
//! instructions that parse must survive their own formatting.
#![no_main]
use libfuzzer_sys::fuzz_target;
use vmbench::protocol::{decode_line, encode_line, Instructions};

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for line in text.split('\n') {
        if let Ok(message) = decode_line(line, common::NONCE) {
            let again = encode_line(common::NONCE, &message);
            assert!(
                decode_line(again.trim_end_matches('\n'), common::NONCE).is_ok(),
                "re-encoded line does not parse: {again}"
            );
        }
    }
    if let Ok(instructions) = Instructions::from_tokens(text.split_whitespace()) {
        let tokens = instructions.to_tokens();
        let again = Instructions::from_tokens(tokens.iter().map(String::as_str)).expect("formatted instructions parse");
        assert_eq!(instructions, again);
    }
});

//! The scenario parser and validator (`vmbench validate`, `vmbench run`): a
//! user's TOML. Errors must name a line inside the text.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::scenario(data));

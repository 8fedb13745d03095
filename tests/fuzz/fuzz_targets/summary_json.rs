//! `summary.json` as `vmbench history` reads it (`history::collect`: the
//! summary when it parses, else the run's own files; here there are none, so
//! a summary that does not parse is an error, never a crash).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::summary_json(data));

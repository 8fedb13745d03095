//! `samples.jsonl` as a user may edit it or a crash may tear it
//! (`rundir::read_samples`), and the samples that read summarised against a
//! real run's record, as `vmbench report` and `vmbench check` do.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::samples_jsonl(data));

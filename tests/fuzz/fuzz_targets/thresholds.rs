//! A thresholds file (`vmbench check --thresholds`, `vmbench export
//! --thresholds`): `compare::thresholds::load`, then the bounds checked
//! against a real run's samples.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::thresholds(data));

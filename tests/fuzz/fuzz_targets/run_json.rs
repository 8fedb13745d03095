//! `run.json` as a user may edit it or a crash may leave it, read as every
//! command reads a run (`rundir::load`: schema check, then record and
//! samples), and, when it reads, summarised as `vmbench report` does.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::run_json(data));

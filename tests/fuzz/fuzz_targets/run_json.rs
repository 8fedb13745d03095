//! `run.json` as a user may edit it or a crash may leave it, read as every
//! command reads a run (`rundir::load`: schema check, then record and
//! samples), and, when it reads, summarised as `vmbench report` does.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let dir = common::run_dir(&[("run.json", data), ("samples.jsonl", b"")], &[]);
    if let Ok(run) = vmbench::rundir::load(dir) {
        let _ = vmbench::report::summary::build(&run.record, &run.samples);
    }
});

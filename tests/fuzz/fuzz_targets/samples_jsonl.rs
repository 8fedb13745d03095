//! `samples.jsonl` as a user may edit it or a crash may tear it
//! (`rundir::read_samples`), and the samples that read summarised against a
//! real run's record, as `vmbench report` and `vmbench check` do.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

const RUN_JSON: &[u8] = include_bytes!("../corpus/run_json/native-boot.json");

fuzz_target!(|data: &[u8]| {
    let dir = common::run_dir(&[("run.json", RUN_JSON), ("samples.jsonl", data)], &[]);
    let Ok(samples) = vmbench::rundir::read_samples(dir) else {
        return;
    };
    let record = vmbench::rundir::read_run_record(dir).expect("the fixed run.json reads");
    let _ = vmbench::report::summary::build(&record, &samples);
});

//! `summary.json` as `vmbench history` reads it (`history::collect`: the
//! summary when it parses, else the run's own files; here there are none, so
//! a summary that does not parse is an error, never a crash).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

fuzz_target!(|data: &[u8]| {
    let dir = common::run_dir(&[("summary.json", data)], &["run.json", "samples.jsonl"]);
    let dirs = [dir.to_path_buf()];
    for metric in ["ready_ms", "exit_ms"] {
        let _ = vmbench::history::collect(&dirs, metric, None);
    }
});

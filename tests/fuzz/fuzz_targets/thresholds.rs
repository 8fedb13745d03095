//! A thresholds file (`vmbench check --thresholds`, `vmbench export
//! --thresholds`): `compare::thresholds::load`, then the bounds checked
//! against a real run's samples.
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "common.rs"]
mod common;

const SAMPLES: &str = include_str!("../corpus/samples_jsonl/native-boot.jsonl");

fuzz_target!(|data: &[u8]| {
    let dir = common::run_dir(&[("thresholds.toml", data)], &[]);
    let Ok(thresholds) = vmbench::compare::thresholds::load(&dir.join("thresholds.toml")) else {
        return;
    };
    let samples: Vec<vmbench::rundir::Sample> = SAMPLES.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let targets = vec!["native".to_string()];
    for row in vmbench::compare::thresholds::check(&thresholds, &targets, &samples) {
        let _ = (row.pass, row.value);
    }
});

//! Every fuzz target's check, run on every seed in `tests/fuzz/corpus/` on
//! the stable toolchain: the checks libFuzzer runs (`tests/fuzz/checks.rs`)
//! stay true of the inputs they start from, in every CI run. Fuzzing itself
//! needs a nightly toolchain: `scripts/fuzz-smoke.sh`.

#[path = "fuzz/checks.rs"]
mod checks;

use std::path::Path;

#[test]
fn every_fuzz_target_holds_on_its_seeds() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/corpus");
    let mut seeds_of_targets = Vec::new();
    for (target, check) in checks::TARGETS {
        let mut seeds = 0;
        for entry in std::fs::read_dir(corpus.join(target)).unwrap() {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            let outcome = std::panic::catch_unwind(|| check(&bytes));
            assert!(outcome.is_ok(), "{target}: the check failed on {}", path.display());
            seeds += 1;
        }
        seeds_of_targets.push((*target, seeds));
    }
    let _ = std::fs::remove_dir_all(checks::scratch_dir());
    // Every target has seeds, and every seed directory has a target.
    assert!(seeds_of_targets.iter().all(|(_, n)| *n > 0), "{seeds_of_targets:?}");
    let directories = std::fs::read_dir(&corpus).unwrap().count();
    assert_eq!(directories, checks::TARGETS.len(), "a seed directory without a target");
}

//! The command line's contract: exit statuses, messages naming file, line
//! and key, and nothing created when the input is wrong.

mod common;

use common::*;

const GOOD: &str = "name = \"x\"\nrepetitions = 1\n\n[[target]]\nname = \"native\"\nkind = \"native\"\n\n[[workload]]\nkind = \"boot\"\n";

fn rejected(text: &str, expect: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "bad.toml", text);
    let result = run_in(tmp.path(), &["run", scenario.to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(2), "{}", stderr(&result));
    let err = stderr(&result);
    for needle in expect {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
    assert!(!tmp.path().join("results").exists(), "a results directory was created");
    let validated = run_in(tmp.path(), &["validate", scenario.to_str().unwrap()]);
    assert_eq!(validated.status.code(), Some(2));
}

#[test]
fn bad_scenarios_exit_2_naming_file_line_and_key() {
    rejected(
        &GOOD.replace("repetitions = 1", "repetitions = 0"),
        &["bad.toml:2:15", "key `repetitions`", "out of range"],
    );
    rejected(
        &GOOD.replace("kind = \"native\"", "kind = \"native\"\ncolour = \"red\""),
        &["bad.toml:7:1", "key `target[0].colour`", "unknown field"],
    );
    rejected(
        &GOOD.replace("repetitions = 1", "repetitions = \"1\""),
        &["bad.toml:2:", "key `repetitions`", "whole number"],
    );
    rejected(
        &GOOD.replace("kind = \"native\"", "kind = \"jail\""),
        &["bad.toml:6:", "key `target[0].kind`", "unknown kind"],
    );
    // TOML reports an unclosed array where it expected more: the next line.
    rejected(&GOOD.replace("name = \"x\"", "name = [x"), &["bad.toml:2:", "expected"]);
    rejected(
        &format!("{GOOD}\n[[target]]\nname = \"native\"\nkind = \"native\"\n"),
        &["key `target[1].name`", "duplicate"],
    );
    rejected(
        &GOOD.replace("kind = \"native\"", "kind = \"vm\"\nmemory_mib = 1"),
        &["bad.toml:7:", "key `target[0].memory_mib`", "out of range"],
    );
    rejected(
        &GOOD.replace("kind = \"native\"", "kind = \"vm\"\nsandbox = \"no\""),
        &["bad.toml:7:11", "key `target[0].sandbox`", "expected a boolean"],
    );
    rejected(
        &GOOD.replace("kind = \"native\"", "kind = \"native\"\nsandbox = false"),
        &["bad.toml:7:", "key `target[0].sandbox`", "does not apply"],
    );
}

#[test]
fn a_missing_scenario_file_exits_2() {
    let tmp = tempfile::tempdir().unwrap();
    let result = run_in(tmp.path(), &["run", "nope.toml"]);
    assert_eq!(result.status.code(), Some(2));
    assert!(stderr(&result).contains("nope.toml: cannot read the scenario"));
    assert!(!tmp.path().join("results").exists());
}

#[test]
fn validate_accepts_the_shipped_scenarios() {
    let root = env!("CARGO_MANIFEST_DIR");
    let result = run_in(
        std::path::Path::new(root),
        &["validate", "scenarios/boot.toml", "scenarios/boot-q35.toml"],
    );
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    assert_eq!(stdout(&result).matches("ok: ").count(), 2);
}

#[test]
fn unknown_only_target_and_occupied_out_dir_exit_2() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "s.toml", GOOD);
    let result = run_in(tmp.path(), &["run", scenario.to_str().unwrap(), "--only", "ghost"]);
    assert_eq!(result.status.code(), Some(2));
    assert!(stderr(&result).contains("--only ghost: no such target"), "{}", stderr(&result));
    let occupied = tmp.path().join("occupied");
    std::fs::create_dir(&occupied).unwrap();
    std::fs::write(occupied.join("keep.txt"), "precious").unwrap();
    let result = run_in(
        tmp.path(),
        &["run", scenario.to_str().unwrap(), "--out", occupied.to_str().unwrap()],
    );
    assert_eq!(result.status.code(), Some(2));
    assert!(stderr(&result).contains("already exists and is not empty"));
    assert_eq!(std::fs::read_to_string(occupied.join("keep.txt")).unwrap(), "precious");
}

#[test]
fn a_run_without_out_goes_under_results_named_after_the_scenario() {
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "s.toml", GOOD);
    let result = run_in(tmp.path(), &["run", scenario.to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let runs: Vec<_> = std::fs::read_dir(tmp.path().join("results"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(runs.len(), 1);
    let name = runs[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(name.starts_with("x-") && name.ends_with('Z'), "{name}");
    assert_eq!(samples(&runs[0]).len(), 2, "one warmup (the default) and one measured");
}

#[test]
fn doctor_reports_the_static_agent_qemu_and_docker() {
    let result = vmbench().arg("doctor").output().unwrap();
    let text = stdout(&result);
    assert!(text.contains("ok       agent    static"), "{text}");
    assert!(text.contains("ok       qemu"), "{text}");
    assert!(text.contains("ok       docker") && text.contains("runc"), "{text}");
    assert!(text.contains("kvm"), "{text}");
    // setup.sh installs what guest systems need, so nothing is missing here.
    assert!(text.contains("ok       guests"), "{text}");
    assert_eq!(result.status.code(), Some(0), "{text}");
}

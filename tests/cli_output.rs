//! What the commands print for people and for scripts: colour only where
//! asked or on a terminal, JSON where a script reads. Runs come from
//! vmbench's own writer (nothing is measured here).

mod common;

use common::*;

const RED_FAIL: &str = "\x1b[1;31mFAIL\x1b[0m";

#[test]
fn verdicts_are_coloured_only_when_asked_or_on_a_terminal() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_run(&tmp.path().join("run"), 1.0, 6, false);
    let thresholds = write(tmp.path(), "t.toml", "[[metric]]\nname = \"ready_ms\"\nmax = 10.0\n");
    let check = |extra: &[&str], no_color: Option<&str>| {
        let mut cmd = vmbench();
        cmd.current_dir(tmp.path())
            .args(["check", run.to_str().unwrap(), "--thresholds", thresholds.to_str().unwrap()])
            .args(extra)
            .env_remove("NO_COLOR");
        if let Some(v) = no_color {
            cmd.env("NO_COLOR", v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(1), "the VM fails its check: {}", stdout(&out));
        stdout(&out)
    };
    // Standard output is a pipe here: auto means no colour.
    let plain = check(&[], None);
    assert!(plain.contains("FAIL") && !plain.contains('\x1b'), "{plain:?}");
    assert!(check(&["--color", "always"], None).contains(RED_FAIL));
    assert!(
        check(&["--color", "always"], Some("1")).contains(RED_FAIL),
        "an explicit flag wins over NO_COLOR"
    );
    assert!(!check(&["--color", "never"], None).contains('\x1b'));
    // The flag is global: it may come before the command too.
    let out = vmbench()
        .current_dir(tmp.path())
        .args([
            "--color",
            "always",
            "check",
            run.to_str().unwrap(),
            "--thresholds",
            thresholds.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(stdout(&out).contains(RED_FAIL));
    // The job summary is Markdown for GitHub: never painted.
    let summary = tmp.path().join("summary.md");
    let out = vmbench()
        .current_dir(tmp.path())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args([
            "check",
            run.to_str().unwrap(),
            "--thresholds",
            thresholds.to_str().unwrap(),
            "--color",
            "always",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let md = std::fs::read_to_string(&summary).unwrap();
    assert!(md.contains("FAIL") && !md.contains('\x1b'), "{md}");
}

fn json_of(out: &std::process::Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", stdout(out)))
}

#[test]
fn check_validate_and_history_speak_json_with_their_usual_exit_statuses() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_run(&tmp.path().join("runs/one"), 1.0, 6, false);
    synthetic_run(&tmp.path().join("runs/two"), 1.1, 6, false);

    let thresholds = write(tmp.path(), "t.toml", "[[metric]]\nname = \"ready_ms\"\nmax = 10.0\n");
    let out = run_in(
        tmp.path(),
        &[
            "check",
            run.to_str().unwrap(),
            "--thresholds",
            thresholds.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(1), "the VM's check fails");
    let json = json_of(&out);
    assert_eq!(json["failed"], 1);
    let checks = json["checks"].as_array().unwrap();
    assert_eq!(checks.len(), 2);
    assert_eq!(
        (checks[0]["target"].as_str(), checks[0]["pass"].as_bool()),
        (Some("vm"), Some(false))
    );
    assert_eq!(
        (checks[1]["target"].as_str(), checks[1]["pass"].as_bool()),
        (Some("native"), Some(true))
    );
    assert!(checks[0]["value"].as_f64().unwrap() > 1800.0);

    let good = write(
        tmp.path(),
        "good.toml",
        "name = \"g\"\nrepetitions = 3\n\n[[target]]\nname = \"native\"\nkind = \"native\"\n\n[[workload]]\nkind = \"boot\"\n",
    );
    let bad = write(tmp.path(), "bad.toml", "name = \"b\"\nrepetitions = 0\n");
    let out = run_in(
        tmp.path(),
        &["validate", good.to_str().unwrap(), bad.to_str().unwrap(), "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr.is_empty(), "the errors are in the JSON: {}", stderr(&out));
    let json = json_of(&out);
    assert_eq!(json["valid"], false);
    let (g, b) = (&json["scenarios"][0], &json["scenarios"][1]);
    assert_eq!(
        (g["valid"].as_bool(), g["name"].as_str(), g["repetitions"].as_u64()),
        (Some(true), Some("g"), Some(3))
    );
    assert_eq!(g["targets"], serde_json::json!(["native"]));
    assert_eq!(g["workloads"], serde_json::json!(["boot"]));
    assert_eq!(b["valid"], false);
    assert!(b["error"].as_str().unwrap().contains("bad.toml:2:"), "{b}");
    let out = run_in(tmp.path(), &["validate", good.to_str().unwrap(), "--format", "json"]);
    assert_eq!((out.status.code(), json_of(&out)["valid"].as_bool()), (Some(0), Some(true)));

    let charts = tmp.path().join("charts");
    let out = run_in(
        tmp.path(),
        &[
            "history",
            "runs",
            "--metric",
            "ready_ms",
            "--out",
            charts.to_str().unwrap(),
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json = json_of(&out);
    assert_eq!((json["metric"].as_str(), json["unit"].as_str()), (Some("ready_ms"), Some("ms")));
    assert_eq!(json["targets"], serde_json::json!(["vm", "native"]));
    let runs = json["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    let vm = &runs[0]["values"]["vm"];
    assert!(
        vm["low"].as_f64() <= vm["median"].as_f64() && vm["median"].as_f64() <= vm["high"].as_f64(),
        "{vm}"
    );
    assert_eq!(vm["n"], 6);
    assert_eq!(json["charts"].as_array().unwrap().len(), 2, "SVG and PNG");
}

#[test]
fn every_format_flag_lists_its_values_and_results_dir_has_its_variable_in_help() {
    for (command, values) in [
        ("check", "[possible values: text, json]"),
        ("validate", "[possible values: text, json]"),
        ("history", "[possible values: text, json]"),
        ("doctor", "[possible values: text, json]"),
        ("compare", "[possible values: table, md, json, junit, html]"),
        ("export", "[possible values: github-action-benchmark, bencher, junit]"),
        ("report", "[possible values: json, csv, md, html, tex]"),
    ] {
        let out = vmbench().args([command, "-h"]).output().unwrap();
        assert!(stdout(&out).contains(values), "vmbench {command} -h:\n{}", stdout(&out));
    }
    let out = vmbench().args(["compare", "--help"]).output().unwrap();
    assert!(stdout(&out).contains("--results-dir <DIR>") && stdout(&out).contains("[env: VMBENCH_RESULTS_DIR="));
    // The variable is honoured: a baseline name is looked up under it.
    let tmp = tempfile::tempdir().unwrap();
    synthetic_run(&tmp.path().join("elsewhere/baselines/main"), 1.0, 6, false);
    let out = vmbench()
        .current_dir(tmp.path())
        .env("VMBENCH_RESULTS_DIR", tmp.path().join("elsewhere"))
        .args(["compare", "main", "main", "--format", "json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(json_of(&out)["base"], "main");
}

/// A reader that stops early ends vmbench quietly, as it ends `cat`: no
/// panic about a broken pipe (a page of HTML is more than a pipe holds).
#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let tmp = tempfile::tempdir().unwrap();
    // Enough samples that the page's charts are more than a pipe holds.
    let run = synthetic_run(&tmp.path().join("run"), 1.0, 400, false);
    let args = ["compare", run.to_str().unwrap(), run.to_str().unwrap(), "--format", "html"];
    let whole = vmbench().current_dir(tmp.path()).args(args).output().unwrap();
    assert!(whole.stdout.len() > 1 << 16, "more than a pipe holds: {}", whole.stdout.len());
    let mut child = vmbench()
        .current_dir(tmp.path())
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 16];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    // The pipe's reading end is closed here.
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.status.signal() == Some(libc::SIGPIPE) || out.status.success(),
        "{:?}: {stderr}",
        out.status
    );
}

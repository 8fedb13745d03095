//! `vmbench compare` and baselines on real run directories.

mod common;

use common::*;
use std::path::Path;

// 12 repetitions: verdicts use p-values Holm-adjusted over every row (about
// 17 boot metrics of the two targets here), and the smallest p a permutation
// test of medians of 6 against 6 samples can reach is 12/924 ≈ 0.013, which
// no adjustment for 17 rows leaves under 0.05. With 12 against 12 it is
// about 0.0002.
const SCENARIO: &str = r#"name = "cmp"
repetitions = 12
warmup = 0
[[target]]
name = "vm"
kind = "vm"
accel = "tcg"
[[target]]
name = "native"
kind = "native"
[[workload]]
kind = "boot"
"#;

/// A copy of run `from` whose `target` ready_ms samples are scaled by `factor`.
fn scaled_copy(from: &Path, to: &Path, target: &str, factor: f64) {
    std::fs::create_dir_all(to).unwrap();
    std::fs::copy(from.join("run.json"), to.join("run.json")).unwrap();
    let mut out = String::new();
    for mut s in samples(from) {
        if s.target == target {
            if let Some(v) = s.metrics.get_mut("ready_ms") {
                *v *= factor;
            }
        }
        out.push_str(&serde_json::to_string(&s).unwrap());
        out.push('\n');
    }
    std::fs::write(to.join("samples.jsonl"), out).unwrap();
}

fn compare(cwd: &Path, base: &Path, new: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["compare", base.to_str().unwrap(), new.to_str().unwrap()];
    args.extend_from_slice(extra);
    run_in(cwd, &args)
}

#[test]
fn compare_finds_exactly_the_regression_that_is_there() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "cmp.toml", SCENARIO);
    let base = tmp.path().join("base");
    let result = run_in(
        tmp.path(),
        &[
            "run",
            scenario.to_str().unwrap(),
            "--out",
            base.to_str().unwrap(),
            "--label",
            "ci-1",
        ],
    );
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let record = record(&base);
    assert_eq!(record.label.as_deref(), Some("ci-1"));

    // Itself: nothing regressed.
    let same = compare(tmp.path(), &base, &base, &[]);
    assert_eq!(same.status.code(), Some(0), "{}", stdout(&same));
    assert!(stdout(&same).contains("0 regression(s)"));

    // VM boot 30% slower: a regression, named.
    let slow = tmp.path().join("slow");
    scaled_copy(&base, &slow, "vm", 1.3);
    let out = compare(tmp.path(), &base, &slow, &[]);
    let vm_ready: Vec<f64> = samples(&base)
        .iter()
        .filter(|s| s.target == "vm")
        .filter_map(|s| s.metrics.get("ready_ms").copied())
        .collect();
    assert_eq!(out.status.code(), Some(1), "{}\nbase VM ready_ms: {vm_ready:?}", stdout(&out));
    let line = stdout(&out)
        .lines()
        .find(|l| l.contains("REGRESSED"))
        .unwrap_or_default()
        .to_string();
    assert!(
        line.starts_with("vm ") && line.contains("boot ready_ms") && line.contains("+30.0%"),
        "{}",
        stdout(&out)
    );

    // 2% slower: noise at the default threshold.
    let slightly = tmp.path().join("slightly");
    scaled_copy(&base, &slightly, "vm", 1.02);
    assert_eq!(compare(tmp.path(), &base, &slightly, &[]).status.code(), Some(0));

    // JSON parses and says the same.
    let json = compare(tmp.path(), &base, &slow, &["--format", "json"]);
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).unwrap();
    let regressed: Vec<&serde_json::Value> = value["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["verdict"] == "regressed")
        .collect();
    assert_eq!(regressed.len(), 1);
    assert_eq!(
        (regressed[0]["target"].as_str(), regressed[0]["metric"].as_str()),
        (Some("vm"), Some("ready_ms"))
    );

    // Markdown goes to the GitHub step summary too.
    let summary = tmp.path().join("summary.md");
    let out = vmbench()
        .current_dir(tmp.path())
        .env("GITHUB_STEP_SUMMARY", &summary)
        .args(["compare", base.to_str().unwrap(), slow.to_str().unwrap(), "--format", "md"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(std::fs::read_to_string(&summary).unwrap().contains("**REGRESSED**"));
}

#[test]
fn baselines_are_saved_and_compared_against() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "cmp.toml", &SCENARIO.replace("repetitions = 12", "repetitions = 3"));
    let first = run_in(
        tmp.path(),
        &["run", scenario.to_str().unwrap(), "--only", "native", "--save-baseline", "main"],
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert!(tmp.path().join("results/baselines/main/run.json").is_file());
    let again = run_in(
        tmp.path(),
        &[
            "run",
            scenario.to_str().unwrap(),
            "--only",
            "native",
            "--baseline",
            "main",
            "--save-baseline",
            "main",
        ],
    );
    assert!(
        again.status.code() == Some(0) || again.status.code() == Some(1),
        "{}",
        stderr(&again)
    );
    assert!(stdout(&again).contains("base: main"), "{}", stdout(&again));
    // The saved baseline was replaced whole: no temporary directories left.
    let names: Vec<String> = std::fs::read_dir(tmp.path().join("results/baselines"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, vec!["main".to_string()]);
    // Bad names and missing baselines are input errors, before anything runs.
    for bad in [&["--save-baseline", "../evil"][..], &["--baseline", "nope"][..]] {
        let mut args = vec!["run", scenario.to_str().unwrap()];
        args.extend_from_slice(bad);
        let out = run_in(tmp.path(), &args);
        assert_eq!(out.status.code(), Some(2), "{bad:?}: {}", stderr(&out));
    }
    let not_a_run = run_in(tmp.path(), &["compare", tmp.path().to_str().unwrap(), "main"]);
    assert_eq!(not_a_run.status.code(), Some(2));
    assert!(stderr(&not_a_run).contains("not a vmbench run directory"), "{}", stderr(&not_a_run));
}

#[test]
fn thresholds_and_exports_work_on_a_real_run() {
    // Serialised with the VM runs above: its load would only add noise to them.
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "cmp.toml", SCENARIO);
    let run = tmp.path().join("run");
    let result = run_in(
        tmp.path(),
        &[
            "run",
            scenario.to_str().unwrap(),
            "--out",
            run.to_str().unwrap(),
            "--only",
            "native",
        ],
    );
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let run_arg = run.to_str().unwrap();

    let pass = write(tmp.path(), "pass.toml", "[[metric]]\nname = \"ready_ms\"\nmax = 1000.0\n");
    let fail = write(
        tmp.path(),
        "fail.toml",
        "[[metric]]\nname = \"ready_ms\"\nstatistic = \"min\"\nmax = 0.000001\n",
    );
    let out = run_in(tmp.path(), &["check", run_arg, "--thresholds", pass.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = run_in(tmp.path(), &["check", run_arg, "--thresholds", fail.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("FAIL") && stdout(&out).contains("1 of 1 check(s) failed"),
        "{}",
        stdout(&out)
    );
    let bad = write(tmp.path(), "bad.toml", "[[metric]]\nname = \"ready_ms\"\nmaximum = 1.0\n");
    assert_eq!(
        run_in(tmp.path(), &["check", run_arg, "--thresholds", bad.to_str().unwrap()])
            .status
            .code(),
        Some(2)
    );
    // The shipped example is valid.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios/thresholds/boot.toml");
    assert!(vmbench::compare::thresholds::load(&example).is_ok());

    // github-action-benchmark: an array of {name, unit, value, range, extra}
    // (tests/exports.rs checks both directions and the JUnit in detail).
    let out = run_in(
        tmp.path(),
        &["export", run_arg, "--format", "github-action-benchmark", "--direction", "smaller"],
    );
    let gab: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let ready = gab
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "native boot ready_ms")
        .expect("ready_ms exported");
    assert_eq!(ready["unit"], "ms");
    assert!(ready["value"].as_f64().unwrap() > 0.0);
    assert!(ready["range"].is_string() && ready["extra"].as_str().unwrap().contains("n=12"));

    // Bencher Metric Format, written to a file.
    let file = tmp.path().join("bmf.json");
    let out = run_in(
        tmp.path(),
        &["export", run_arg, "--format", "bencher", "--output", file.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0));
    let bmf: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let measure = &bmf["native/boot"]["ready_ms"];
    assert!(measure["lower_value"].as_f64().unwrap() <= measure["value"].as_f64().unwrap());

    // JUnit of the failing thresholds.
    let out = run_in(
        tmp.path(),
        &["export", run_arg, "--format", "junit", "--thresholds", fail.to_str().unwrap()],
    );
    let xml = stdout(&out);
    assert!(
        xml.starts_with("<?xml") && xml.contains("failures=\"1\"") && xml.contains("<failure message="),
        "{xml}"
    );
    assert_eq!(run_in(tmp.path(), &["export", run_arg, "--format", "junit"]).status.code(), Some(2));
}

#[test]
fn history_follows_a_metric_across_runs_and_draws_it() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "h.toml", &SCENARIO.replace("repetitions = 12", "repetitions = 3"));
    for label in ["first", "second", "third"] {
        let out = run_in(
            tmp.path(),
            &["run", scenario.to_str().unwrap(), "--only", "native", "--label", label],
        );
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    // A run without summary.json is summarised from its samples.
    let runs: Vec<_> = std::fs::read_dir(tmp.path().join("results"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    std::fs::remove_file(runs[0].join("summary.json")).unwrap();
    let charts = tmp.path().join("charts");
    let out = run_in(
        tmp.path(),
        &["history", "results", "--metric", "ready_ms", "--out", charts.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let table = stdout(&out);
    let rows = table.lines().filter(|l| l.starts_with("20") && l.contains('[')).count();
    assert_eq!(rows, 3, "one row per run:\n{table}");
    let svg = std::fs::read_to_string(charts.join("history-ready_ms.svg")).unwrap();
    assert!(
        svg.contains("ready_ms") && svg.contains("native"),
        "the chart names the metric and target"
    );
    let png = std::fs::read(charts.join("history-ready_ms.png")).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    assert!(png.len() > 10_000, "a drawn chart, not a blank one ({} bytes)", png.len());
    // Bad input: an unknown metric, a directory without runs.
    assert_eq!(
        run_in(tmp.path(), &["history", "results", "--metric", "ready"]).status.code(),
        Some(2)
    );
    assert_eq!(
        run_in(tmp.path(), &["history", charts.to_str().unwrap(), "--metric", "ready_ms"])
            .status
            .code(),
        Some(2)
    );
}

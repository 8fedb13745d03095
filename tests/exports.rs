//! The CI exports as their consumers read them, on run directories written
//! through vmbench's own writer (nothing is measured here): JUnit parsed by
//! Python's junitparser, an independent implementation; the two
//! github-action-benchmark files with the fields its extract.ts reads; Bencher's
//! bounds from the median's interval.

mod common;

use common::*;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Reads JUnit files with junitparser and prints what it understood as
/// JSON: per suite its declared counts, time and timestamp, and per test
/// case its results (kind, message, type, text).
const JUNITPARSER: &str = r#"
import json, sys
from junitparser import JUnitXml, TestSuite
out = []
for path in sys.argv[1:]:
    xml = JUnitXml.fromfile(path)
    suites = [xml] if isinstance(xml, TestSuite) else list(xml)
    for suite in suites:
        cases = []
        for case in suite:
            results = [{"kind": type(r).__name__, "message": r.message, "type": r.type, "text": r.text} for r in case.result]
            cases.append({"name": case.name, "classname": case.classname, "time": case.time, "results": results})
        out.append({"file": path, "name": suite.name, "tests": suite.tests, "failures": suite.failures,
                    "errors": suite.errors, "skipped": suite.skipped, "time": suite.time,
                    "timestamp": suite.timestamp, "cases": cases})
print(json.dumps(out))
"#;

/// A Python that has junitparser: Debian's (python3-junitparser, which
/// scripts/setup.sh installs) or whichever python3 comes first on PATH.
fn python_with_junitparser() -> &'static str {
    for candidate in ["/usr/bin/python3", "python3"] {
        let found = Command::new(candidate)
            .args(["-c", "import junitparser"])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return candidate;
        }
    }
    panic!("no python3 with junitparser: apt-get install python3-junitparser (scripts/setup.sh installs it)");
}

/// Every suite junitparser finds in `files`.
fn junitparser(files: &[&Path]) -> Vec<Value> {
    let out = Command::new(python_with_junitparser())
        .arg("-c")
        .arg(JUNITPARSER)
        .args(files)
        .output()
        .expect("python3 runs");
    assert!(out.status.success(), "junitparser refused the XML: {}", stderr(&out));
    serde_json::from_slice::<Value>(&out.stdout).unwrap().as_array().unwrap().clone()
}

fn case<'a>(suite: &'a Value, name: &str) -> &'a Value {
    suite["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no test case {name} in {suite}"))
}

/// The declared counts agree with the test cases junitparser read, and
/// `time` and `timestamp` are the judged run's.
fn consistent(suite: &Value) {
    let count = |kind: &str| {
        suite["cases"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["results"].as_array().unwrap().iter().any(|r| r["kind"] == kind))
            .count() as u64
    };
    assert_eq!(
        suite["tests"].as_u64(),
        Some(suite["cases"].as_array().unwrap().len() as u64),
        "{suite}"
    );
    assert_eq!(suite["failures"].as_u64(), Some(count("Failure")), "{suite}");
    assert_eq!(suite["errors"].as_u64(), Some(count("Error")), "{suite}");
    assert_eq!(suite["skipped"].as_u64(), Some(count("Skipped")), "{suite}");
    assert_eq!(suite["time"].as_f64(), Some(62.5), "{suite}");
    assert!(suite["timestamp"].as_str().unwrap().starts_with("2026-11-25T15:01:02"), "{suite}");
    for case in suite["cases"].as_array().unwrap() {
        assert_eq!(case["time"].as_f64(), Some(0.0), "{case}");
    }
}

#[test]
fn junit_of_checks_and_of_a_comparison_reads_back_in_junitparser() {
    let tmp = tempfile::tempdir().unwrap();
    let base = synthetic_run(&tmp.path().join("base"), 1.0, 12, false);
    let slow = synthetic_run(&tmp.path().join("slow"), 1.3, 12, false);
    let thresholds = write(
        tmp.path(),
        "t.toml",
        "[[metric]]\ntarget = \"vm\"\nname = \"ready_ms\"\nmax = 1000.0\n\n\
         [[metric]]\ntarget = \"native\"\nname = \"ready_ms\"\nmax = 1000.0\n\n\
         [[metric]]\ntarget = \"ghost\"\nname = \"ready_ms\"\nmax = 1.0\n",
    );
    let checks = tmp.path().join("checks.xml");
    let out = run_in(
        tmp.path(),
        &[
            "export",
            base.to_str().unwrap(),
            "--format",
            "junit",
            "--thresholds",
            thresholds.to_str().unwrap(),
            "--output",
            checks.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));

    let compared = tmp.path().join("compare.xml");
    let out = run_in(
        tmp.path(),
        &[
            "compare",
            base.to_str().unwrap(),
            slow.to_str().unwrap(),
            "--junit",
            compared.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(1), "a regression: {}", stdout(&out));
    assert!(stdout(&out).contains("REGRESSED"), "the table is still printed");
    let out = run_in(
        tmp.path(),
        &["compare", base.to_str().unwrap(), slow.to_str().unwrap(), "--format", "junit"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        out.stdout,
        std::fs::read(&compared).unwrap(),
        "--format junit prints what --junit writes"
    );

    let suites = junitparser(&[&checks, &compared]);
    assert_eq!(suites.len(), 2);
    let (checks, compare) = (&suites[0], &suites[1]);
    consistent(checks);
    consistent(compare);

    assert_eq!(checks["name"], "vmbench check");
    assert_eq!((checks["tests"].as_u64(), checks["failures"].as_u64()), (Some(3), Some(2)));
    assert_eq!(case(checks, "native boot ready_ms median")["results"], serde_json::json!([]));
    let vm = &case(checks, "vm boot ready_ms median")["results"][0];
    assert_eq!((vm["kind"].as_str(), vm["type"].as_str()), (Some("Failure"), Some("threshold")));
    // GitLab shows the failure's text: it must hold the whole reason.
    let text = vm["text"].as_str().unwrap();
    assert!(
        text.starts_with("vm boot ready_ms: the median is 18") && text.ends_with("outside the allowed range [-, 1000] ms"),
        "{text}"
    );
    let ghost = &case(checks, "ghost * ready_ms median")["results"][0];
    assert_eq!(ghost["type"], "missing");
    assert!(ghost["text"].as_str().unwrap().contains("no measured samples"));

    assert_eq!(compare["name"], "vmbench compare");
    assert_eq!(
        (compare["tests"].as_u64(), compare["failures"].as_u64(), compare["errors"].as_u64()),
        (Some(3), Some(1), Some(0)),
        "two metrics and the environment"
    );
    let regressed = &case(compare, "vm boot ready_ms")["results"][0];
    assert_eq!(regressed["type"], "regression");
    let text = regressed["text"].as_str().unwrap();
    assert!(
        text.contains("vm boot ready_ms regressed from") && text.contains("(+30.0%, 95% CI ["),
        "{text}"
    );
    assert!(regressed["message"].as_str().unwrap().starts_with("+30.0% ["));
    assert_eq!(case(compare, "native boot ready_ms")["results"], serde_json::json!([]));
    assert_eq!(case(compare, "environment")["results"], serde_json::json!([]));
}

#[test]
fn a_changed_environment_is_a_junit_error() {
    let tmp = tempfile::tempdir().unwrap();
    let base = synthetic_run(&tmp.path().join("base"), 1.0, 6, false);
    let other = synthetic_run(&tmp.path().join("other"), 1.0, 6, false);
    let mut record = record(&other);
    record.host.kernel = "6.12".into();
    vmbench::rundir::write_run_record(&other, &record).unwrap();
    let xml = tmp.path().join("env.xml");
    let out = run_in(
        tmp.path(),
        &[
            "compare",
            base.to_str().unwrap(),
            other.to_str().unwrap(),
            "--junit",
            xml.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let suite = &junitparser(&[&xml])[0];
    consistent(suite);
    let env = &case(suite, "environment")["results"][0];
    assert_eq!((env["kind"].as_str(), env["type"].as_str()), (Some("Error"), Some("environment")));
    assert!(env["text"].as_str().unwrap().contains("host kernel: 6.1 → 6.12"), "{env}");
}

fn entries(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str::<Value>(&text).unwrap().as_array().unwrap().clone()
}

/// Exactly the fields github-action-benchmark's extract.ts reads for the
/// custom tools, `value` a number and the others strings.
fn gab_shaped(entry: &Value) {
    let object = entry.as_object().unwrap();
    let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["extra", "name", "range", "unit", "value"], "{entry}");
    assert!(entry["value"].is_number(), "{entry}");
    for key in ["extra", "name", "range", "unit"] {
        assert!(entry[key].is_string(), "{entry}");
    }
    assert!(entry["range"].as_str().unwrap().starts_with("95% CI ["), "{entry}");
}

#[test]
fn github_action_benchmark_gets_one_file_per_direction_and_never_an_empty_one() {
    let tmp = tempfile::tempdir().unwrap();
    let both = synthetic_run(&tmp.path().join("both"), 1.0, 12, true);
    let base = tmp.path().join("out/bench.json");
    let export = |run: &Path, extra: &[&str]| {
        let mut args = vec!["export", run.to_str().unwrap(), "--format", "github-action-benchmark"];
        args.extend_from_slice(extra);
        run_in(tmp.path(), &args)
    };
    let out = export(&both, &["--output", base.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let smaller: PathBuf = tmp.path().join("out/bench-smaller.json");
    let bigger: PathBuf = tmp.path().join("out/bench-bigger.json");
    assert_eq!(
        stdout(&out),
        format!(
            "{}\tcustomSmallerIsBetter\n{}\tcustomBiggerIsBetter\n",
            smaller.display(),
            bigger.display()
        )
    );
    let names = |entries: &[Value]| entries.iter().map(|e| e["name"].as_str().unwrap().to_string()).collect::<Vec<_>>();
    let s = entries(&smaller);
    s.iter().for_each(gab_shaped);
    assert_eq!(names(&s), ["vm boot ready_ms", "native boot ready_ms"]);
    let b = entries(&bigger);
    b.iter().for_each(gab_shaped);
    assert_eq!(names(&b), ["vm boot image_read_mb_per_s"]);
    assert_eq!(b[0]["unit"], "MB/s");

    // A run with times only: no bigger file, and the earlier one is gone.
    let times = synthetic_run(&tmp.path().join("times"), 1.0, 12, false);
    let out = export(&times, &["--output", base.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(!bigger.exists(), "a stale bigger-is-better file would pass for this run's");
    assert!(stderr(&out).contains("no bigger-is-better metrics"), "{}", stderr(&out));
    assert_eq!(entries(&smaller).len(), 2);

    // One direction to standard output; an empty one is refused.
    let out = export(&times, &["--direction", "smaller"]);
    assert_eq!(out.status.code(), Some(0));
    serde_json::from_slice::<Value>(&out.stdout)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .for_each(gab_shaped);
    let out = export(&times, &["--direction", "bigger"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("rejects an empty list"), "{}", stderr(&out));
    // Two directions cannot share standard output.
    assert_eq!(export(&times, &[]).status.code(), Some(2));
}

#[test]
fn bencher_bounds_are_the_median_interval_from_the_summary() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_run(&tmp.path().join("run"), 1.0, 12, true);
    let file = tmp.path().join("bmf.json");
    let out = run_in(
        tmp.path(),
        &[
            "export",
            run.to_str().unwrap(),
            "--format",
            "bencher",
            "--output",
            file.to_str().unwrap(),
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let bmf: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let summary = vmbench::report::summary::build(&record(&run), &samples(&run));
    let mut measures = 0;
    for m in &summary.metrics {
        let measure = &bmf[format!("{}/{}", m.target, m.workload)][&m.metric];
        assert_eq!(measure["value"].as_f64(), Some(m.median), "{m:?}");
        assert_eq!(measure["lower_value"].as_f64(), Some(m.median_low), "{m:?}");
        assert_eq!(measure["upper_value"].as_f64(), Some(m.median_high), "{m:?}");
        measures += 1;
    }
    assert_eq!(measures, 3);
    let vm = summary.metrics.iter().find(|m| m.target == "vm" && m.metric == "ready_ms").unwrap();
    assert!(vm.min < vm.median_low && vm.median_high < vm.max, "the interval, not min and max");
}

/// `\input`s `summary.tex` into the smallest document that loads booktabs.
const LATEX_DOCUMENT: &str = "\\documentclass{article}\n\\usepackage{booktabs}\n\\begin{document}\n\\input{summary.tex}\n\\end{document}\n";

#[test]
fn the_latex_summary_is_written_alone_and_compiles_where_latex_is_installed() {
    let tmp = tempfile::tempdir().unwrap();
    let run = synthetic_run(&tmp.path().join("run"), 1.0, 12, true);
    let out = run_in(tmp.path(), &["report", run.to_str().unwrap(), "--format", "tex"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), run.join("summary.tex").display().to_string());
    assert!(!run.join("report.md").exists(), "only the format asked for");
    let tex = std::fs::read_to_string(run.join("summary.tex")).unwrap();
    assert!(
        tex.contains("\\toprule") && tex.contains("vm & image\\_read\\_mb\\_per\\_s & MB/s & 12 &"),
        "{tex}"
    );
    // An unknown format is refused by the flag's parser, listing the valid ones.
    let out = run_in(tmp.path(), &["report", run.to_str().unwrap(), "--format", "pdf"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("[possible values: json, csv, md, html, tex]"),
        "{}",
        stderr(&out)
    );

    let Ok(pdflatex) = Command::new("pdflatex").arg("--version").output() else {
        eprintln!("skipped compiling summary.tex: no pdflatex here (Debian: texlive-latex-recommended)");
        return;
    };
    assert!(pdflatex.status.success());
    std::fs::write(run.join("doc.tex"), LATEX_DOCUMENT).unwrap();
    let out = Command::new("pdflatex")
        .current_dir(&run)
        .args(["-interaction=nonstopmode", "-halt-on-error", "doc.tex"])
        .output()
        .unwrap();
    assert!(out.status.success(), "pdflatex: {}", stdout(&out));
    let log = std::fs::read_to_string(run.join("doc.log")).unwrap();
    assert!(!log.contains("Missing character"), "every character has a glyph");
    assert!(run.join("doc.pdf").is_file());
}

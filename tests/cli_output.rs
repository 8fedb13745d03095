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

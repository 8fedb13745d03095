//! `cargo install --path .` gives a vmbench that needs nothing from the
//! checkout: run from another directory, it validates and runs a built-in
//! scenario by name and draws its charts with its built-in font.
//!
//! Ignored by default: it builds vmbench once more (about 30 s with a warm
//! target directory, minutes with a cold one). Run it with
//! `cargo test --test install -- --ignored`.

use std::path::{Path, PathBuf};
use std::process::Command;

fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target"))
}

#[test]
#[ignore = "builds and installs vmbench: slow; run by hand with --ignored"]
fn an_installed_vmbench_runs_built_in_scenarios_from_anywhere() {
    let root = tempfile::tempdir().unwrap();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    // --target-dir rather than CARGO_TARGET_DIR, so build.rs takes the
    // OUT_DIR path that a plain `cargo install` takes.
    let status = Command::new(cargo)
        .args(["install", "--locked", "--debug", "--path", env!("CARGO_MANIFEST_DIR"), "--root"])
        .arg(root.path())
        .arg("--target-dir")
        .arg(target_dir())
        .env_remove("CARGO_TARGET_DIR")
        .status()
        .unwrap();
    assert!(status.success(), "cargo install failed: {status}");
    let vmbench = root.path().join("bin/vmbench");
    let elsewhere = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(&vmbench)
            .args(args)
            .current_dir(elsewhere.path())
            // No system font is looked for; make sure none could be found.
            .env_remove("VMBENCH_FONT")
            .env("FONTCONFIG_FILE", "/nonexistent")
            .env("XDG_DATA_DIRS", "/nonexistent")
            .output()
            .unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        (out.status.code(), text)
    };
    let (code, text) = run(&["validate", "boot", "overhead-quick"]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&["init", "."]);
    assert_eq!(code, Some(0), "{text}");
    let (code, text) = run(&["validate", "scenario.toml"]);
    assert_eq!(code, Some(0), "{text}");
    std::fs::write(
        elsewhere.path().join("tiny.toml"),
        "name = \"tiny\"\nrepetitions = 3\nwarmup = 0\n[[target]]\nname = \"native\"\nkind = \"native\"\n[[workload]]\nkind = \"boot\"\n",
    )
    .unwrap();
    let (code, text) = run(&["run", "tiny.toml", "--out", "out"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(!text.contains("no charts"), "{text}");
    let charts = elsewhere.path().join("out/charts");
    for chart in ["boot-ready.png", "boot-ready.svg", "boot-phases.png"] {
        assert!(std::fs::metadata(charts.join(chart)).unwrap().len() > 1000, "{chart}");
    }
    let html = std::fs::read_to_string(elsewhere.path().join("out/report.html")).unwrap();
    assert!(html.contains("<svg"), "the built-in template inlines the charts");
}

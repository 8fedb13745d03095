//! Secrets never land in results: a real run whose scenario holds an engine
//! address with a password (the engine is not there, so the optional target
//! is unavailable and its reason quotes the address), a libvirt URI with one
//! (in a build with libvirt), and a VM whose guest gets a secret environment
//! variable on its kernel command line. Nothing of any secret may reach the
//! run directory, the reports or vmbench's own output; the VM still boots.

mod common;

use common::*;

const SECRETS: [&str; 3] = ["pw-engine-1", "pw-libvirt-2", "pw-guest-3"];

fn scenario() -> String {
    let mut text = String::from(
        r#"name = "secrets"
repetitions = 1
warmup = 0
timeout_s = 60

[[target]]
name = "native"
kind = "native"

[[target]]
name = "vm"
kind = "vm"
accel = "tcg"
kernel_args = ["DB_PASSWORD=pw-guest-3"]

[[target]]
name = "ctr"
kind = "container"
optional = true
# Port 9 (discard): nothing answers, so the target is unavailable here.
host = "tcp://vmbench:pw-engine-1@127.0.0.1:9"
"#,
    );
    if cfg!(feature = "libvirt") {
        text.push_str(
            "\n[[target]]\nname = \"lv\"\nkind = \"vm\"\nbackend = \"libvirt\"\noptional = true\n\
             uri = \"qemu+tcp://vmbench:pw-libvirt-2@127.0.0.1:9/system\"\n",
        );
    }
    text.push_str("\n[[workload]]\nkind = \"boot\"\n");
    text
}

/// Every file under `dir`, recursively.
fn files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn no_credential_reaches_the_run_directory_the_reports_or_the_output() {
    let tmp = tempfile::tempdir().unwrap();
    let (result, out) = run_scenario(tmp.path(), "secrets.toml", &scenario());
    assert_eq!(result.status.code(), Some(0), "{}\n{}", stderr(&result), stdout(&result));
    let output = format!("{}{}", stdout(&result), stderr(&result));
    let written = files(&out);
    assert!(
        [
            "run.json",
            "samples.jsonl",
            "summary.json",
            "samples.csv",
            "report.md",
            "report.html"
        ]
        .iter()
        .all(|f| written.contains(&out.join(f))),
        "{written:?}"
    );
    for secret in SECRETS {
        assert!(!output.contains(secret), "{secret} printed: {output}");
        for file in &written {
            let bytes = std::fs::read(file).unwrap();
            assert!(!String::from_utf8_lossy(&bytes).contains(secret), "{secret} in {}", file.display());
        }
    }

    let record = record(&out);
    // The secrets were there to leak: the recorded text and facts show where.
    assert!(record.scenario.text.contains("tcp://vmbench:<redacted>@127.0.0.1:9"));
    assert!(record.scenario.text.contains("DB_PASSWORD=<redacted>"));
    let target = |name: &str| record.targets.iter().find(|t| t.name == name).unwrap();
    let reason = target("ctr").unavailable.as_deref().unwrap();
    assert!(reason.contains("vmbench:<redacted>@127.0.0.1:9"), "{reason}");
    let vm = target("vm");
    assert!(vm.kernel_cmdline.as_deref().unwrap().contains("DB_PASSWORD=<redacted>"));
    assert!(
        vm.reproduce.iter().any(|a| a.contains("DB_PASSWORD=<redacted>")),
        "{:?}",
        vm.reproduce
    );
    if cfg!(feature = "libvirt") {
        let reason = target("lv").unavailable.as_deref().unwrap();
        assert!(reason.contains("qemu+tcp://vmbench:<redacted>@127.0.0.1:9/system"), "{reason}");
    }
    // The guest that got the secret still booted.
    let samples = samples(&out);
    assert!(samples.iter().any(|s| s.target == "vm" && s.ok), "{samples:#?}");
}

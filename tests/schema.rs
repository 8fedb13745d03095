//! The JSON Schemas of scenario files, run.json and summary.json: the files
//! in docs/schema/ are what `vmbench schema` generates from the types (so
//! they cannot fall behind), and an independent validator (Python's
//! jsonschema, Debian's python3-jsonschema, which scripts/setup.sh installs)
//! accepts every shipped scenario and a real run's run.json and
//! summary.json, and refuses a scenario with a key vmbench does not know.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// Validates each TOML or JSON file against the schema; prints one line per
/// file: `ok` or the first error.
const VALIDATE: &str = r#"
import json, sys, tomllib, jsonschema
schema = json.load(open(sys.argv[1]))
for path in sys.argv[2:]:
    with open(path, "rb") as f:
        doc = tomllib.load(f) if path.endswith(".toml") else json.load(f)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(doc), key=str)
    print(path, "ok" if not errors else "error: " + errors[0].message)
"#;

fn python() -> &'static str {
    for candidate in ["/usr/bin/python3", "python3"] {
        let found = Command::new(candidate)
            .args(["-c", "import jsonschema, tomllib"])
            .output()
            .is_ok_and(|o| o.status.success());
        if found {
            return candidate;
        }
    }
    panic!("no python3 (3.11+) with jsonschema: apt-get install python3-jsonschema (scripts/setup.sh installs it)");
}

fn validate(schema: &Path, files: &[&Path]) -> Vec<String> {
    let out = Command::new(python())
        .arg("-c")
        .arg(VALIDATE)
        .arg(schema)
        .args(files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect()
}

fn schema_file(which: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("docs/schema/{which}.schema.json"))
}

#[test]
fn the_committed_schemas_are_the_generated_ones() {
    for which in ["scenario", "run", "summary"] {
        let out = vmbench().args(["schema", which]).output().unwrap();
        assert!(out.status.success());
        let committed = std::fs::read_to_string(schema_file(which)).unwrap();
        assert!(
            committed == stdout(&out),
            "docs/schema/{which}.schema.json is stale: vmbench schema {which} > docs/schema/{which}.schema.json"
        );
    }
}

#[test]
fn an_independent_validator_accepts_the_shipped_scenarios_and_refuses_an_unknown_key() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 10);
    let tmp = tempfile::tempdir().unwrap();
    let unknown = write(
        tmp.path(),
        "unknown.toml",
        "name = \"x\"\n\n[[target]]\nname = \"n\"\nkind = \"native\"\nvcpu = 2\n\n[[workload]]\nkind = \"boot\"\n",
    );
    files.push(unknown);
    let refs: Vec<&Path> = files.iter().map(|p| p.as_path()).collect();
    let said = validate(&schema_file("scenario"), &refs);
    let (last, shipped) = said.split_last().unwrap();
    assert!(shipped.iter().all(|l| l.ends_with(" ok")), "{said:#?}");
    assert!(last.contains("error:") && last.contains("vcpu"), "{last}");
}

#[test]
fn a_real_runs_files_match_their_schemas() {
    let _guard = serial();
    let tmp = tempfile::tempdir().unwrap();
    let text = "name = \"schema\"\nrepetitions = 2\nwarmup = 0\n\n[[target]]\nname = \"native\"\nkind = \"native\"\n\n[[workload]]\nkind = \"boot\"\n";
    let (result, out) = run_scenario(tmp.path(), "s.toml", text);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    for (which, file) in [("run", "run.json"), ("summary", "summary.json")] {
        let said = validate(&schema_file(which), &[&out.join(file)]);
        assert!(said[0].ends_with(" ok"), "{said:?}");
    }
}

//! `vmbench validate SCENARIO...`

use serde_json::{json, Value};
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Scenario files to check (or names of built-in scenarios, when no such file exists).
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
    /// json: `{"valid", "scenarios": [{"path", "valid", "name", "targets", "workloads", "repetitions"} or {"path", "valid", "error", "errors": [{"line", "column", "key", "message"}]}]}`.
    #[arg(long, value_enum, default_value_t = super::TextOrJson::Text)]
    pub format: super::TextOrJson,
}

pub fn exec(args: ValidateArgs) -> anyhow::Result<i32> {
    let text = args.format == super::TextOrJson::Text;
    let mut bad = 0;
    let mut results = Vec::new();
    for path in &args.scenarios {
        match crate::scenario::shipped::load(path) {
            Ok(s) => {
                if text {
                    println!(
                        "ok: {} ({} target(s), {} workload(s), {} repetitions)",
                        path.display(),
                        s.targets.len(),
                        s.workloads.len(),
                        s.repetitions
                    );
                }
                results.push(valid(path, &s));
            }
            Err(e) => {
                if text {
                    eprintln!("error: {e}");
                }
                // Each error on its own, for scripts and editors.
                let errors: Vec<Value> = std::iter::once(&e)
                    .chain(e.more.iter())
                    .map(|e| json!({ "line": e.line, "column": e.column, "key": e.key, "message": e.message }))
                    .collect();
                results.push(json!({ "path": path, "valid": false, "error": e.to_string(), "errors": errors }));
                bad += 1;
            }
        }
    }
    if !text {
        super::print_json(&json!({ "valid": bad == 0, "scenarios": results }))?;
    }
    Ok(if bad == 0 { 0 } else { super::EXIT_INPUT })
}

/// What a script may want to know of a valid scenario.
fn valid(path: &std::path::Path, s: &crate::scenario::Scenario) -> Value {
    json!({
        "path": path,
        "valid": true,
        "name": s.name,
        "targets": s.targets.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
        "workloads": s.workloads.iter().map(|w| w.kind.as_str()).collect::<Vec<_>>(),
        "repetitions": s.repetitions,
        "auto_repetitions": s.auto.is_some(),
        "warmup": s.warmup,
    })
}

//! `vmbench validate SCENARIO...`

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// Scenario files to check.
    #[arg(required = true)]
    pub scenarios: Vec<PathBuf>,
}

pub fn exec(args: ValidateArgs) -> anyhow::Result<i32> {
    let mut bad = 0;
    for path in &args.scenarios {
        match crate::scenario::load(path) {
            Ok(s) => println!(
                "ok: {} ({} target(s), {} workload(s), {} repetitions)",
                path.display(),
                s.targets.len(),
                s.workloads.len(),
                s.repetitions
            ),
            Err(e) => {
                eprintln!("error: {e}");
                bad += 1;
            }
        }
    }
    Ok(if bad == 0 { 0 } else { super::EXIT_INPUT })
}

//! The run directory: the contract between running and reading. `run.json`
//! ([`RunRecord`]) and `samples.jsonl` (one [`Sample`] per trial) are
//! written only through [`Sink`] and read only through [`load`] and the
//! readers here, by the runner on one side and by report, charts, compare,
//! history and check on the other.

mod record;
mod sink;

use anyhow::Context;

pub use record::*;
pub use sink::*;

/// The current UTC time as RFC 3339, as every timestamp in the run files.
pub fn now_rfc3339() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// A run directory read back: its record and samples.
#[derive(Debug, Clone)]
pub struct Run {
    pub record: RunRecord,
    pub samples: Vec<Sample>,
}

/// Reads a run directory, refusing what is not one or was written by an
/// incompatible schema.
pub fn load(dir: &std::path::Path) -> anyhow::Result<Run> {
    if !dir.join(RUN_FILE).is_file() {
        anyhow::bail!("{} is not a vmbench run directory (no run.json)", dir.display());
    }
    let text = std::fs::read_to_string(dir.join(RUN_FILE))?;
    let version: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("{}/run.json is not JSON", dir.display()))?;
    let schema = version.get("schema_version").and_then(|v| v.as_u64());
    if schema != Some(SCHEMA_VERSION as u64) {
        anyhow::bail!(
            "{} was written with schema_version {:?}; this vmbench reads {SCHEMA_VERSION}",
            dir.display(),
            schema
        );
    }
    read(dir)
}

/// Reads a run directory's record and samples, whatever its schema version
/// says (runs this vmbench wrote itself).
pub fn read(dir: &std::path::Path) -> anyhow::Result<Run> {
    let record = read_run_record(dir)?;
    let samples = read_samples(dir)?;
    Ok(Run { record, samples })
}

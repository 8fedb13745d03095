//! Writes a run to disk as it happens: `run.json` rewritten atomically at
//! each change of state, `samples.jsonl` appended, flushed and synced after
//! every sample, so an interrupted run keeps everything it measured. Every
//! string written passes through [`crate::redact`] first, whichever field
//! holds it, so no credential reaches the run directory (or the reports,
//! which are rendered from it).

use crate::rundir::{RunRecord, RunStatus, Sample};
use anyhow::{Context, Result};
use serde::{de::DeserializeOwned, Serialize};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const RUN_FILE: &str = "run.json";
pub const SAMPLES_FILE: &str = "samples.jsonl";

pub struct Sink {
    dir: PathBuf,
    samples: File,
    pub record: RunRecord,
}

impl Sink {
    /// Creates the run directory's files. `dir` must not hold a run already.
    /// The record kept is the one written, secrets redacted.
    pub fn create(dir: &Path, record: RunRecord) -> Result<Sink> {
        let record = redacted(&record)?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating run directory {}", dir.display()))?;
        let samples = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(dir.join(SAMPLES_FILE))
            .with_context(|| format!("creating {}", dir.join(SAMPLES_FILE).display()))?;
        let sink = Sink {
            dir: dir.to_path_buf(),
            samples,
            record,
        };
        sink.write_record()?;
        Ok(sink)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Appends one sample and makes sure it is on disk before returning;
    /// returns it as written (secrets redacted).
    pub fn append(&mut self, sample: &Sample) -> Result<Sample> {
        let sample = redacted(sample)?;
        let mut line = serde_json::to_string(&sample).context("serialising a sample")?;
        line.push('\n');
        let path = self.dir.join(SAMPLES_FILE);
        let before = self
            .samples
            .metadata()
            .with_context(|| format!("reading {}", path.display()))?
            .len();
        if let Err(e) = self.samples.write_all(line.as_bytes()).and_then(|()| self.samples.sync_data()) {
            // A full file system takes part of the line: cut it off, so the
            // file ends with the last whole sample, not a torn one.
            let _ = self.samples.set_len(before).and_then(|()| self.samples.sync_data());
            return Err(e).with_context(|| format!("appending a sample to {}", path.display()));
        }
        self.record.samples += 1;
        if sample.failed() {
            self.record.failed_samples += 1;
        }
        Ok(sample)
    }

    /// Records how `repetitions = "auto"` ended for one target × workload,
    /// in `run.json` at once.
    pub fn record_auto(&mut self, auto: crate::scenario::AutoRepetitions, outcome: crate::rundir::AutoOutcome) -> Result<()> {
        let facts = self.record.scenario.auto.get_or_insert_with(|| crate::rundir::AutoFacts {
            min_repetitions: auto.min,
            max_repetitions: auto.max,
            target_cov: auto.target_cov,
            outcomes: Vec::new(),
        });
        facts.outcomes.push(outcome);
        self.write_record()
    }

    /// Records how the run ended.
    pub fn finish(&mut self, status: RunStatus, note: Option<String>) -> Result<()> {
        self.record.status = status;
        self.record.note = note.map(|n| crate::redact::text(&n).into_owned());
        self.record.finished_at = Some(crate::rundir::now_rfc3339());
        self.write_record()
    }

    fn write_record(&self) -> Result<()> {
        write_run_record(&self.dir, &self.record)
    }
}

/// Writes `run.json` through a temporary file and a rename, secrets redacted.
pub fn write_run_record(dir: &Path, record: &RunRecord) -> Result<()> {
    let json = serde_json::to_vec_pretty(&redacted(record)?).context("serialising run.json")?;
    crate::guest::cache::write_atomic(&dir.join(RUN_FILE), &json, 0o644)
}

/// `value` with every string in it (at any depth, whatever the field) passed
/// through [`crate::redact::text`]. A field added later is covered too.
pub fn redacted<T: Serialize + DeserializeOwned>(value: &T) -> Result<T> {
    fn walk(value: &mut serde_json::Value) {
        match value {
            serde_json::Value::String(s) => {
                if let std::borrow::Cow::Owned(clean) = crate::redact::text(s) {
                    *s = clean;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(walk),
            serde_json::Value::Object(fields) => fields.values_mut().for_each(walk),
            _ => {}
        }
    }
    let mut json = serde_json::to_value(value).context("serialising for redaction")?;
    walk(&mut json);
    // A non-finite number becomes null here, as it would in the file, and
    // then fails to read back: the same error a reader of the file would meet.
    serde_json::from_value(json).context("reading back a redacted value")
}

/// Reads `run.json` from a run directory.
pub fn read_run_record(dir: &Path) -> Result<RunRecord> {
    let path = dir.join(RUN_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

/// Reads every sample of a run directory. A torn last line (the process died
/// mid-write) is skipped; any other bad line is an error.
pub fn read_samples(dir: &Path) -> Result<Vec<Sample>> {
    let path = dir.join(SAMPLES_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut samples = Vec::with_capacity(lines.len());
    for (i, line) in lines.iter().enumerate() {
        match serde_json::from_str(line) {
            Ok(sample) => samples.push(sample),
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => break,
            Err(e) => return Err(e).with_context(|| format!("{}:{}", path.display(), i + 1)),
        }
    }
    Ok(samples)
}

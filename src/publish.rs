//! Turns a run directory into its report files: reads the run, summarises
//! it, draws the charts, renders every format and writes the bytes. The
//! one place where rendering meets the file system.

use crate::report::formats::{self, Input};
use anyhow::{Context, Result};
use std::path::Path;

/// Renders `names` (every format when empty) for the run in `dir`, into
/// `dir`; returns the file names written.
pub fn write_all(dir: &Path, names: &[String], templates: &Path) -> Result<Vec<String>> {
    let run = crate::rundir::read(dir)?;
    let summary = crate::report::summary::build(&run.record, &run.samples);
    // Charts are part of the Markdown and HTML reports; without a font the
    // reports are still written, and say why they have no charts.
    let charts = if names.is_empty() || names.iter().any(|n| n == "md" || n == "html") {
        crate::charts::write_run(dir, &run.record, &run.samples, &summary).unwrap_or_else(|e| {
            eprintln!("warning: no charts: {e:#}");
            Vec::new()
        })
    } else {
        Vec::new()
    };
    let input = Input {
        record: &run.record,
        samples: &run.samples,
        summary: &summary,
        templates,
        charts: &charts,
        dir,
    };
    let mut written = Vec::new();
    for format in formats::all()
        .into_iter()
        .filter(|f| names.is_empty() || names.iter().any(|n| n == f.name()))
    {
        let file = format.file_name().expect("report formats name their file");
        let bytes = format.render(&input).with_context(|| format!("rendering {file}"))?;
        crate::guest::cache::write_atomic(&dir.join(file), &bytes, 0o644)?;
        written.push(file.to_string());
    }
    Ok(written)
}

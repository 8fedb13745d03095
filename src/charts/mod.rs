//! Charts with plotters, one file per kind, each written as SVG (for HTML)
//! and PNG (for slides and Markdown). Text is drawn with DejaVu Sans built
//! into vmbench (`report-templates/fonts/`, under the Bitstream Vera license in
//! `report-templates/fonts/LICENSE-DejaVu`), so charts look the same on every host and
//! need no system font; `VMBENCH_FONT` names another TrueType file. plotters
//! is built with `ab_glyph` only (not `ttf`, which would ask fontconfig), so
//! it knows no font but the one registered here.

pub mod distribution;
pub mod footprint;
pub mod history;
pub mod order;
pub mod overhead;
pub mod phases;

use anyhow::{bail, Result};
use std::sync::OnceLock;

/// DejaVu Sans 2.37, from Debian's fonts-dejavu-core.
const BUILT_IN_FONT: &[u8] = include_bytes!("../../report-templates/fonts/DejaVuSans.ttf");

/// The font's bytes: the file `VMBENCH_FONT` names, or the built-in one.
fn font_bytes(chosen: Option<std::ffi::OsString>) -> Result<&'static [u8], String> {
    let Some(path) = chosen else { return Ok(BUILT_IN_FONT) };
    let bytes = std::fs::read(&path).map_err(|e| format!("VMBENCH_FONT={}: {e}", path.to_string_lossy()))?;
    // plotters keeps the font for the life of the process.
    Ok(Box::leak(bytes.into_boxed_slice()))
}

/// Registers the chart font once per process.
pub fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = REGISTERED.get_or_init(|| {
        let bytes = font_bytes(std::env::var_os("VMBENCH_FONT"))?;
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
            .map_err(|_| "the chart font could not be read".to_string())
    });
    match result {
        Ok(()) => Ok(()),
        Err(e) => bail!("{e}"),
    }
}

/// Distinct colours for targets, in order.
pub fn colour(i: usize) -> plotters::style::RGBColor {
    const PALETTE: [(u8, u8, u8); 8] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
    ];
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    plotters::style::RGBColor(r, g, b)
}

/// The label of the horizontal-bar row at `y` in a chart whose rows are
/// `labels` from the top (row i sits at y = n − 1 − i); empty between rows.
pub fn row_label(labels: &[String], y: f64) -> String {
    let n = labels.len() as f64;
    let i = (n - 1.0 - y).round();
    if i < 0.0 || (n - 1.0 - y - i).abs() > 1e-6 {
        return String::new();
    }
    labels.get(i as usize).cloned().unwrap_or_default()
}

pub use crate::report::ChartFile;

/// Draws one chart into `charts/<stem>.svg` and `.png` under `dir`: the
/// drawing expression is written once and runs on both backends.
macro_rules! svg_and_png {
    ($dir:expr, $stem:expr, $title:expr, $size:expr, |$area:ident| $draw:expr) => {
        both($dir, $stem, $title, |svg, path| {
            if svg {
                let $area = SVGBackend::new(path, $size).into_drawing_area();
                $draw
            } else {
                let $area = BitMapBackend::new(path, $size).into_drawing_area();
                $draw
            }
        })
    };
}

/// Draws `draw` into `charts/<stem>.svg` and `.png` under `dir`.
fn both(dir: &std::path::Path, stem: &str, title: &str, draw: impl Fn(bool, &std::path::Path) -> Result<()>) -> Result<ChartFile> {
    use std::path::Path;
    let charts = dir.join("charts");
    std::fs::create_dir_all(&charts)?;
    let (svg, png) = (format!("charts/{stem}.svg"), format!("charts/{stem}.png"));
    draw(true, &dir.join(Path::new(&svg)))?;
    draw(false, &dir.join(Path::new(&png)))?;
    Ok(ChartFile {
        title: title.to_string(),
        svg,
        png,
    })
}

/// The charts of one run: per workload its headline metric's distribution
/// per target and the same in run order, where the boot time goes (phases),
/// artifact size and memory per target, and the overhead against native of
/// every workload that has a native baseline.
pub fn write_run(
    dir: &std::path::Path,
    record: &crate::rundir::RunRecord,
    samples: &[crate::rundir::Sample],
    summary: &crate::report::summary::RunSummary,
) -> Result<Vec<ChartFile>> {
    ensure_font()?;
    let targets: Vec<String> = record.targets.iter().map(|t| t.name.clone()).collect();
    let accel = accel_note(record);
    let mut out = Vec::new();
    out.extend(per_workload_charts(dir, record, &targets, samples, accel)?);
    out.extend(boot_phases_chart(dir, record, summary, accel)?);
    out.extend(footprint_chart(dir, record, summary, accel)?);
    out.extend(overhead_charts(dir, record, summary, &targets, accel)?);
    Ok(out)
}

/// The run's workload kinds in scenario order, each once (a scenario may
/// list one kind twice with other parameters; its samples share one chart).
fn workload_kinds(record: &crate::rundir::RunRecord) -> Vec<crate::rundir::WorkloadKind> {
    let mut seen = std::collections::HashSet::new();
    record.scenario.workloads.iter().copied().filter(|w| seen.insert(*w)).collect()
}

/// The note appended to chart titles saying how the run's VMs were accelerated.
fn accel_note(record: &crate::rundir::RunRecord) -> &'static str {
    if record.targets.iter().any(|t| t.accel.as_deref() == Some("tcg")) {
        " (VMs under TCG emulation)"
    } else if record.targets.iter().any(|t| t.accel.as_deref() == Some("kvm")) {
        " (VMs under KVM)"
    } else {
        ""
    }
}

/// `name (how)`: a chart row naming the target and how it ran (accel and
/// machine, or engine and runtime).
fn name_and_how(summary: &crate::report::summary::RunSummary, name: &str) -> String {
    let how = summary
        .targets
        .iter()
        .find(|t| t.name == name)
        .map(|t| t.how.as_str())
        .unwrap_or("");
    format!("{name} ({how})")
}

/// Per workload of the scenario, the distribution of its headline metric
/// per target (boot: `ready_ms`, in `charts/boot-ready`) and the same metric
/// in run order (`charts/order-<workload>`), where drift shows.
fn per_workload_charts(
    dir: &std::path::Path,
    record: &crate::rundir::RunRecord,
    targets: &[String],
    samples: &[crate::rundir::Sample],
    accel: &str,
) -> Result<Vec<ChartFile>> {
    use plotters::prelude::*;
    let mut out = Vec::new();
    for workload in workload_kinds(record) {
        let metric = crate::metric::headline(workload);
        let unit = crate::metric::unit(metric);
        let data = distribution::values(targets, samples, workload, metric);
        if data.is_empty() {
            continue;
        }
        let stem = match workload {
            crate::rundir::WorkloadKind::Boot => "boot-ready".to_string(),
            other => format!("distribution-{other}"),
        };
        let title = format!("{workload}: {metric} per target, every sample, black = median{accel}");
        out.push(svg_and_png!(dir, &stem, &title, (960, 540), |area| distribution::draw(
            area, &title, unit, &data
        ))?);
        let series = order::series(targets, samples, workload, metric);
        let title = format!("{workload}: {metric} in run order (hollow = warm-up){accel}");
        out.push(svg_and_png!(dir, &format!("order-{workload}"), &title, (1100, 480), |area| {
            order::draw(area, &title, unit, &series)
        })?);
    }
    Ok(out)
}

/// Where the time to ready goes, one bar per target; `None` without boot phases.
fn boot_phases_chart(
    dir: &std::path::Path,
    record: &crate::rundir::RunRecord,
    summary: &crate::report::summary::RunSummary,
    accel: &str,
) -> Result<Option<ChartFile>> {
    use plotters::prelude::*;
    let kinds: Vec<(String, crate::rundir::TargetKind)> = record.targets.iter().map(|t| (t.name.clone(), t.kind)).collect();
    let mut bars = phases::bars(&summary.metrics, &kinds);
    bars.iter_mut().for_each(|b| b.target = name_and_how(summary, &b.target));
    if bars.is_empty() {
        return Ok(None);
    }
    let title = format!("boot: where the time to ready goes (medians){accel}");
    let height = (160 + 60 * bars.len() as u32).max(360);
    let chart = svg_and_png!(dir, "boot-phases", &title, (1100, height), |area| phases::draw(area, &title, &bars))?;
    Ok(Some(chart))
}

/// Artifact size and memory per target; `None` when no target has either.
fn footprint_chart(
    dir: &std::path::Path,
    record: &crate::rundir::RunRecord,
    summary: &crate::report::summary::RunSummary,
    accel: &str,
) -> Result<Option<ChartFile>> {
    use plotters::prelude::*;
    let mut rows = footprint::collect(record, &summary.metrics);
    rows.iter_mut().for_each(|r| r.target = name_and_how(summary, &r.target));
    if rows.is_empty() {
        return Ok(None);
    }
    let title = format!("size and memory per target{accel}");
    let height = (160 + 50 * rows.len() as u32).max(360);
    let chart = svg_and_png!(dir, "footprint", &title, (1100, height), |area| footprint::draw(
        area, &title, &rows
    ))?;
    Ok(Some(chart))
}

/// One chart per workload of the scenario that has a cost against native.
fn overhead_charts(
    dir: &std::path::Path,
    record: &crate::rundir::RunRecord,
    summary: &crate::report::summary::RunSummary,
    targets: &[String],
    accel: &str,
) -> Result<Vec<ChartFile>> {
    use plotters::prelude::*;
    let mut out = Vec::new();
    for workload in &workload_kinds(record) {
        let metrics: Vec<&crate::report::summary::MetricSummary> = summary.metrics.iter().filter(|m| m.workload == *workload).collect();
        let bars = overhead::bars(&metrics, targets);
        if bars.is_empty() {
            continue;
        }
        let title = format!("{workload}: cost against native, ratio of medians with 95% interval{accel}");
        let height = (140 + 28 * bars.len() as u32).max(320);
        out.push(svg_and_png!(
            dir,
            &format!("overhead-{workload}"),
            &title,
            (1100, height),
            |area| overhead::draw(area, &title, &bars)
        )?);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_font_is_a_truetype_file_and_a_chosen_one_must_exist() {
        let built_in = font_bytes(None).unwrap();
        assert_eq!(built_in[..4], [0, 1, 0, 0], "a TrueType font starts with version 1.0");
        assert!(built_in.len() > 100_000);
        let err = font_bytes(Some("/nonexistent/font.ttf".into())).unwrap_err();
        assert!(err.contains("VMBENCH_FONT=/nonexistent/font.ttf"), "{err}");
    }
}

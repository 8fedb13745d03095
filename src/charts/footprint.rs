//! What each target costs before it does anything: its artifact on disk
//! (image, or kernel + initramfs) and its memory on the host (the median at
//! the ready line, and the peak), side by side per target.

use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One target's sizes in MiB; `None` where nothing was measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Footprint {
    pub target: String,
    pub artifact_mib: Option<f64>,
    pub memory_ready_mib: Option<f64>,
    pub memory_peak_mib: Option<f64>,
}

const MIB: f64 = 1024.0 * 1024.0;

/// Per target: the artifact size from `run.json`, and the memory medians of
/// the first workload (in scenario order) that measured them.
pub fn collect(record: &crate::rundir::RunRecord, metrics: &[crate::report::summary::MetricSummary]) -> Vec<Footprint> {
    let memory = |target: &str, metric: &str| {
        record
            .scenario
            .workloads
            .iter()
            .find_map(|w| {
                metrics
                    .iter()
                    .find(|m| m.target == target && m.workload == *w && m.metric == metric)
            })
            .map(|m| m.median / MIB)
    };
    record
        .targets
        .iter()
        .map(|t| Footprint {
            target: t.name.clone(),
            artifact_mib: (t.artifact_bytes > 0).then(|| t.artifact_bytes as f64 / MIB),
            // A native agent's own memory is all it costs the host; for the
            // others it would understate the cost, so it does not stand in.
            memory_ready_mib: memory(&t.name, "mem_ready_bytes").or_else(|| {
                (t.kind == crate::rundir::TargetKind::Native)
                    .then(|| memory(&t.name, "agent_peak_rss_bytes"))
                    .flatten()
            }),
            memory_peak_mib: memory(&t.name, "mem_peak_bytes"),
        })
        .filter(|f| f.artifact_mib.is_some() || f.memory_ready_mib.is_some())
        .collect()
}

pub fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, rows: &[Footprint]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {title}: {e}");
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 20)).map_err(err)?;
    let (left, right) = root.split_horizontally((58).percent_width());
    let artifact: Vec<(usize, f64, f64)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.artifact_mib?, 0.0)))
        .collect();
    let memory: Vec<(usize, f64, f64)> = rows
        .iter()
        .enumerate()
        .filter_map(|(i, r)| Some((i, r.memory_ready_mib?, r.memory_peak_mib.unwrap_or(0.0))))
        .collect();
    panel(left, "artifact on disk (MiB)", rows, &artifact, true).map_err(|e| anyhow!("{title}: {e}"))?;
    panel(right, "host memory at ready (MiB; | = peak)", rows, &memory, false).map_err(|e| anyhow!("{title}: {e}"))?;
    root.present().map_err(err)?;
    Ok(())
}

/// One half: a horizontal bar per row that has a value, labelled with it.
fn panel<DB: DrawingBackend>(
    area: DrawingArea<DB, Shift>,
    caption: &str,
    rows: &[Footprint],
    values: &[(usize, f64, f64)],
    labels: bool,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("{e}");
    let n = rows.len() as f64;
    let top = values.iter().map(|v| v.1.max(v.2)).fold(1.0, f64::max) * 1.3;
    let names: Vec<String> = rows.iter().map(|r| r.target.clone()).collect();
    let mut chart = ChartBuilder::on(&area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(if labels { 260 } else { 10 })
        .build_cartesian_2d(0.0..top, -0.5f64..(n - 0.5))
        .map_err(err)?;
    let label = |y: &f64| if labels { super::row_label(&names, *y) } else { String::new() };
    chart
        .configure_mesh()
        .y_labels(rows.len())
        .y_label_formatter(&label)
        .x_desc("MiB")
        .draw()
        .map_err(err)?;
    for &(i, value, peak) in values {
        let y = n - 1.0 - i as f64;
        let colour = super::colour(i);
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(0.0, y - 0.3), (value, y + 0.3)],
                colour.mix(0.75).filled(),
            )))
            .map_err(err)?;
        if peak > 0.0 {
            chart
                .draw_series(std::iter::once(PathElement::new(
                    vec![(peak, y - 0.35), (peak, y + 0.35)],
                    BLACK.stroke_width(2),
                )))
                .map_err(err)?;
        }
        chart
            .draw_series(std::iter::once(Text::new(
                crate::report::table::number(value),
                (value.max(peak) + top * 0.02, y + 0.1),
                ("sans-serif", 14),
            )))
            .map_err(err)?;
    }
    Ok(())
}

//! A metric across runs: one line per target through the medians, a band
//! for each median's 95% interval.

use crate::history::History;
use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::Path;

/// Writes `<stem>.svg` and `<stem>.png` into `dir`; returns their paths.
pub fn write(history: &History, dir: &Path, stem: &str) -> Result<Vec<std::path::PathBuf>> {
    super::ensure_font()?;
    std::fs::create_dir_all(dir)?;
    let (svg, png) = (dir.join(format!("{stem}.svg")), dir.join(format!("{stem}.png")));
    draw(history, SVGBackend::new(&svg, (960, 540)).into_drawing_area())?;
    draw(history, BitMapBackend::new(&png, (960, 540)).into_drawing_area())?;
    Ok(vec![svg, png])
}

/// The chart's plotting area: run index across, the metric's value up.
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

fn draw<DB: DrawingBackend>(history: &History, root: DrawingArea<DB, Shift>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing the history chart: {e}");
    root.fill(&WHITE).map_err(err)?;
    let highs = history.runs.iter().flat_map(|r| r.values.iter().flatten().map(|p| p.high));
    let y_max = highs.fold(0.0f64, f64::max).max(f64::MIN_POSITIVE) * 1.1;
    let x_max = (history.runs.len().max(2) - 1) as f64;
    let caption = format!("{} ({}) across {} runs", history.metric, history.unit, history.runs.len());
    let mut chart = ChartBuilder::on(&root)
        .caption(caption, ("sans-serif", 24))
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.2f64..x_max + 0.2, 0f64..y_max)
        .map_err(err)?;
    draw_axes(&mut chart, history).map_err(err)?;
    for (i, target) in history.targets.iter().enumerate() {
        draw_target(&mut chart, history, i, target).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// The mesh and axis labels: each run is labelled with its tag.
fn draw_axes<DB: DrawingBackend>(chart: &mut Chart<'_, DB>, history: &History) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let tags: Vec<String> = history.runs.iter().map(|r| r.tag.clone()).collect();
    chart
        .configure_mesh()
        .x_desc("run (oldest first; commit, label or run id)")
        .y_desc(format!("{} [{}], median and 95% interval", history.metric, history.unit))
        .x_labels(tags.len().min(12))
        .x_label_formatter(&|x| {
            tags.get(x.round() as usize)
                .filter(|_| (x - x.round()).abs() < 1e-6)
                .cloned()
                .unwrap_or_default()
        })
        .draw()
}

/// Target `i`'s band of 95% intervals, its line through the medians (with
/// a legend entry) and a dot on each median.
fn draw_target<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    history: &History,
    i: usize,
    target: &str,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let colour = super::colour(i);
    let points: Vec<(f64, f64, f64, f64)> = history
        .runs
        .iter()
        .enumerate()
        .filter_map(|(x, r)| r.values[i].as_ref().map(|p| (x as f64, p.median, p.low, p.high)))
        .collect();
    let band: Vec<(f64, f64)> = points
        .iter()
        .map(|p| (p.0, p.3))
        .chain(points.iter().rev().map(|p| (p.0, p.2)))
        .collect();
    chart.draw_series(std::iter::once(Polygon::new(band, colour.mix(0.18))))?;
    chart
        .draw_series(LineSeries::new(points.iter().map(|p| (p.0, p.1)), colour.stroke_width(2)))?
        .label(target)
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
    chart.draw_series(points.iter().map(|p| Circle::new((p.0, p.1), 3, colour.filled())))?;
    Ok(())
}

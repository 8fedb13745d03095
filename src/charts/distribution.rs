//! Every measured sample of one metric per target (a strip plot with the
//! median marked), on a log scale when targets differ by orders of magnitude,
//! as boot times of native processes and emulated VMs do.

use crate::rundir::Sample;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// Values of `metric` in `workload` per target, measured and ok only.
pub fn values(targets: &[String], samples: &[Sample], workload: crate::rundir::WorkloadKind, metric: &str) -> Vec<(String, Vec<f64>)> {
    targets
        .iter()
        .map(|t| {
            let v = samples
                .iter()
                .filter(|s| s.ok && !s.warmup && &s.target == t && s.workload == workload)
                .filter_map(|s| s.metrics.get(metric).copied())
                .collect();
            (t.clone(), v)
        })
        .filter(|(_, v): &(String, Vec<f64>)| !v.is_empty())
        .collect()
}

pub fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, unit: &str, data: &[(String, Vec<f64>)]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {title}: {e}");
    root.fill(&WHITE).map_err(err)?;
    let all = data.iter().flat_map(|(_, v)| v.iter().copied());
    let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
    let names: Vec<String> = data.iter().map(|(n, _)| n.clone()).collect();
    let x_range = -0.5f64..(data.len() as f64 - 0.5);
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80);
    let label = |x: &f64| {
        names
            .get(x.round() as usize)
            .filter(|_| (x - x.round()).abs() < 1e-6)
            .cloned()
            .unwrap_or_default()
    };
    if lo > 0.0 && hi / lo > 100.0 {
        let mut chart = builder
            .build_cartesian_2d(x_range, (lo * 0.8..hi * 1.25).log_scale())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(data.len())
            .x_label_formatter(&label)
            .y_desc(format!("{unit} (log scale)"))
            .draw()
            .map_err(err)?;
        plot(&mut chart, data).map_err(err)?;
    } else {
        let mut chart = builder.build_cartesian_2d(x_range, 0f64..hi * 1.15).map_err(err)?;
        chart
            .configure_mesh()
            .x_labels(data.len())
            .x_label_formatter(&label)
            .y_desc(unit.to_string())
            .draw()
            .map_err(err)?;
        plot(&mut chart, data).map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Every sample of target i spread across its column, and a bar at the median.
fn plot<DB: DrawingBackend, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    data: &[(String, Vec<f64>)],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (i, (_, v)) in data.iter().enumerate() {
        let c = super::colour(i);
        let n = v.len().max(2) as f64;
        let points = v.iter().enumerate().map(|(j, y)| (i as f64 - 0.2 + 0.4 * j as f64 / (n - 1.0), *y));
        chart.draw_series(points.map(|p| Circle::new(p, 4, c.mix(0.6).filled())))?;
        let m = median(v);
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(i as f64 - 0.3, m), (i as f64 + 0.3, m)],
            BLACK.stroke_width(2),
        )))?;
    }
    Ok(())
}

fn median(v: &[f64]) -> f64 {
    crate::stats::Summary::of(v).map(|s| s.median).unwrap_or(0.0)
}

//! Overhead against native per metric of one workload: the ratio of medians
//! (1 = as native, above = costs more) with its 95% interval as error bars.

use crate::report::summary::MetricSummary;
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// The metrics an application workload's chart shows: its rate, latencies,
/// host CPU and memory. The server's start, the reference tools and the
/// client's own CPU stay in the tables, where the chart would drown in them.
pub fn charted(workload: crate::rundir::WorkloadKind) -> Option<&'static [&'static str]> {
    use crate::rundir::WorkloadKind;
    match workload {
        WorkloadKind::Http => Some(&[
            "http_rps",
            "http_p50_us",
            "http_p99_us",
            "http_open_p50_us",
            "http_open_p99_us",
            "host_cpu_per_request_us",
            "mem_peak_bytes",
        ]),
        WorkloadKind::Sql => Some(&[
            "sql_point_tps",
            "sql_point_p50_us",
            "sql_point_p99_us",
            "sql_rw_tps",
            "sql_rw_p50_us",
            "host_cpu_per_txn_us",
            "mem_peak_bytes",
        ]),
        _ => None,
    }
}

/// (label, ratio, low, high, target index) for every metric with a ratio
/// (of an application workload, those [`charted`] names).
pub fn bars(metrics: &[&MetricSummary], targets: &[String]) -> Vec<(String, f64, f64, f64, usize)> {
    metrics
        .iter()
        // What describes the machine (the clock's resolution, say) is no cost.
        .filter(|m| !crate::metric::DESCRIPTIVE_METRICS.contains(&m.metric.as_str()))
        .filter(|m| charted(m.workload).is_none_or(|keep| keep.contains(&m.metric.as_str())))
        .filter_map(|m| {
            let r = m.vs_native?;
            let t = targets.iter().position(|t| t == &m.target)?;
            Some((format!("{} {}", m.target, m.metric), r.value, r.low, r.high, t))
        })
        .collect()
}

/// Horizontal bars, one row per target and metric, so long names stay readable.
pub fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, bars: &[(String, f64, f64, f64, usize)]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {title}: {e}");
    root.fill(&WHITE).map_err(err)?;
    let (lo, hi) = bars.iter().fold((1.0f64, 1.0f64), |(a, b), x| (a.min(x.2), b.max(x.3)));
    let x_range = (lo.max(1e-4) * 0.7..hi * 1.4).log_scale();
    let n = bars.len() as f64;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(280)
        .build_cartesian_2d(x_range, -0.5f64..(n - 0.5))
        .map_err(err)?;
    // Row i counts from the top.
    let label = |y: &f64| super::row_label(&labels, *y);
    chart
        .configure_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&label)
        .x_desc("× native (log scale; 1 = as native, > 1 costs more)")
        .draw()
        .map_err(err)?;
    chart
        .draw_series(std::iter::once(PathElement::new(
            vec![(1.0, -0.5), (1.0, n - 0.5)],
            BLACK.stroke_width(1),
        )))
        .map_err(err)?;
    for (i, (_, value, low, high, t)) in bars.iter().enumerate() {
        let c = super::colour(*t);
        let y = n - 1.0 - i as f64;
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(1.0, y - 0.3), (*value, y + 0.3)],
                c.mix(0.7).filled(),
            )))
            .map_err(err)?;
        chart
            .draw_series(std::iter::once(ErrorBar::new_horizontal(
                y,
                *low,
                *value,
                *high,
                BLACK.stroke_width(1),
                8,
            )))
            .map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

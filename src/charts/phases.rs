//! Where start-up time goes: one stacked bar per target, made of the medians
//! of its phases (VM: before the kernel, kernel, init, and for a guest
//! booting systemd its userspace phase and the wait for the agent's unit;
//! libvirt: the create
//! call first; container: create, attach, start to ready; native: spawn to
//! ready). Each bar is labelled with its median `ready_ms` (a sum of
//! medians is not the median of the sums), so targets that differ by orders
//! of magnitude stay readable on the linear axis. The legend sits in the
//! right part of the axis the bars never reach.

use crate::report::summary::MetricSummary;
use anyhow::{anyhow, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

/// One target's bar: (phase, milliseconds) from left to right.
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseBar {
    pub target: String,
    pub segments: Vec<(&'static str, f64)>,
    /// The median of `ready_ms` itself, which the bar is labelled with: a
    /// sum of medians is not the median of the sums.
    pub ready_ms: Option<f64>,
}

/// Phase names in legend order, with their colours.
const PHASES: &[(&str, (u8, u8, u8))] = &[
    ("libvirt create call", (140, 86, 75)),
    ("before the kernel (QEMU, firmware)", (31, 119, 180)),
    ("guest kernel", (174, 199, 232)),
    ("systemd to multi-user.target", (148, 103, 189)),
    ("then to the agent's start", (197, 176, 213)),
    ("create", (255, 127, 14)),
    ("attach", (255, 187, 120)),
    ("start to ready", (44, 160, 44)),
    ("spawn to ready", (127, 127, 127)),
    ("agent init", (214, 39, 40)),
];

fn phase_colour(name: &str) -> RGBColor {
    let (r, g, b) = PHASES.iter().find(|(n, _)| *n == name).map(|p| p.1).unwrap_or((0, 0, 0));
    RGBColor(r, g, b)
}

/// The bars for every target of `targets` with boot phases in `metrics`.
pub fn bars(metrics: &[MetricSummary], targets: &[(String, crate::rundir::TargetKind)]) -> Vec<PhaseBar> {
    let median = |target: &str, metric: &str| {
        metrics
            .iter()
            .find(|m| m.target == target && m.workload == crate::rundir::WorkloadKind::Boot && m.metric == metric)
            .map(|m| m.median)
    };
    let mut out = Vec::new();
    for (target, kind) in targets {
        let m = |metric: &str| median(target, metric);
        let segments: Option<Vec<(&'static str, f64)>> = match kind {
            crate::rundir::TargetKind::Vm => (|| {
                let (pre, kernel, init) = (m("pre_kernel_ms")?, m("kernel_ms")?, m("init_ms")?);
                if let (Some(userspace), Some(ready)) = (m("userspace_ms"), m("ready_ms")) {
                    // A guest booting systemd: its own phases, then the wait
                    // until the agent's unit ran.
                    let rest = (ready - pre - kernel - userspace - init).max(0.0);
                    return Some(vec![
                        ("before the kernel (QEMU, firmware)", pre),
                        ("guest kernel", kernel),
                        ("systemd to multi-user.target", userspace),
                        ("then to the agent's start", rest),
                        ("agent init", init),
                    ]);
                }
                Some(match m("create_ms") {
                    // libvirt: its create call is part of the time before the kernel.
                    Some(create) => vec![
                        ("libvirt create call", create.min(pre)),
                        ("before the kernel (QEMU, firmware)", (pre - create).max(0.0)),
                        ("guest kernel", kernel),
                        ("agent init", init),
                    ],
                    None => vec![
                        ("before the kernel (QEMU, firmware)", pre),
                        ("guest kernel", kernel),
                        ("agent init", init),
                    ],
                })
            })(),
            crate::rundir::TargetKind::Container => (|| {
                Some(vec![
                    ("create", m("create_ms")?),
                    ("attach", m("attach_ms")?),
                    ("start to ready", m("start_to_ready_ms")?),
                ])
            })(),
            crate::rundir::TargetKind::Native => m("ready_ms").map(|ready| vec![("spawn to ready", ready)]),
        };
        if let Some(segments) = segments {
            out.push(PhaseBar {
                target: target.clone(),
                segments,
                ready_ms: m("ready_ms"),
            });
        }
    }
    out
}

/// How far the x axis reaches beyond the longest bar, so that the longest
/// bar's `ready` label (up to ~140 px) ends left of the legend (up to
/// ~300 px wide, in the upper right) on a chart `width` pixels wide with a
/// 300 px label area and 16 px margins.
fn x_stretch(width: u32) -> f64 {
    let plot = f64::from(width.saturating_sub(332)).max(1.0);
    let free = (plot - 440.0).max(plot * 0.3);
    plot / free
}

/// The chart's plotting area: milliseconds across, one row per bar.
type Chart<'a, DB> = ChartContext<'a, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>;

/// The length of `bar`: the sum of its phases' medians.
fn total_ms(bar: &PhaseBar) -> f64 {
    bar.segments.iter().map(|s| s.1).sum::<f64>()
}

pub fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, bars: &[PhaseBar]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {title}: {e}");
    root.fill(&WHITE).map_err(err)?;
    let longest = bars.iter().map(total_ms).fold(1e-3, f64::max);
    let n = bars.len() as f64;
    let labels: Vec<String> = bars.iter().map(|b| b.target.clone()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(300)
        .build_cartesian_2d(0.0..longest * x_stretch(root.dim_in_pixel().0), -0.5f64..(n - 0.5))
        .map_err(err)?;
    let label = |y: &f64| super::row_label(&labels, *y);
    chart
        .configure_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&label)
        .x_desc("milliseconds (medians of each phase)")
        .draw()
        .map_err(err)?;
    let mut legend_done: Vec<&'static str> = Vec::new();
    for (i, bar) in bars.iter().enumerate() {
        let y = n - 1.0 - i as f64;
        draw_bar(&mut chart, bar, y, longest, &mut legend_done).map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(err)?;
    root.present().map_err(err)?;
    Ok(())
}

/// One bar at row `y`: a rectangle per phase (the first of each phase gets
/// the legend entry, recorded in `legend_done`), then its `ready_ms` label.
fn draw_bar<DB: DrawingBackend>(
    chart: &mut Chart<'_, DB>,
    bar: &PhaseBar,
    y: f64,
    longest: f64,
    legend_done: &mut Vec<&'static str>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    let mut x = 0.0;
    for &(phase, ms) in &bar.segments {
        let colour = phase_colour(phase);
        let series = chart.draw_series(std::iter::once(Rectangle::new([(x, y - 0.3), (x + ms, y + 0.3)], colour.filled())))?;
        if !legend_done.contains(&phase) {
            legend_done.push(phase);
            series
                .label(phase)
                .legend(move |(lx, ly)| Rectangle::new([(lx, ly - 6), (lx + 12, ly + 6)], colour.filled()));
        }
        x += ms;
    }
    chart.draw_series(std::iter::once(Text::new(
        match bar.ready_ms {
            Some(ready) => format!("ready {} ms", crate::report::table::number(ready)),
            None => format!("{} ms", crate::report::table::number(total_ms(bar))),
        },
        (x + longest * 0.01, y + 0.1),
        ("sans-serif", 15),
    )))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metric(target: &str, name: &str, median: f64) -> MetricSummary {
        MetricSummary {
            target: target.into(),
            workload: crate::rundir::WorkloadKind::Boot,
            metric: name.into(),
            unit: "ms".into(),
            lower_is_better: true,
            n: 3,
            min: median,
            max: median,
            mean: median,
            stddev: 0.0,
            cov: 0.0,
            median,
            median_low: median,
            median_high: median,
            median_ci_coverage: 0.75,
            p90: None,
            p99: None,
            p999: None,
            outliers: vec![],
            vs_native: None,
            trend: None,
        }
    }

    #[test]
    fn phases_add_up_per_kind_of_target() {
        let metrics = vec![
            metric("vm", "pre_kernel_ms", 500.0),
            metric("vm", "kernel_ms", 1400.0),
            metric("vm", "init_ms", 12.0),
            metric("lv", "create_ms", 300.0),
            metric("lv", "pre_kernel_ms", 700.0),
            metric("lv", "kernel_ms", 1400.0),
            metric("lv", "init_ms", 12.0),
            metric("ctr", "create_ms", 10.0),
            metric("ctr", "attach_ms", 70.0),
            metric("ctr", "start_to_ready_ms", 11.0),
            metric("native", "ready_ms", 0.9),
        ];
        use crate::rundir::TargetKind;
        let targets: Vec<(String, TargetKind)> = [
            ("vm", TargetKind::Vm),
            ("lv", TargetKind::Vm),
            ("ctr", TargetKind::Container),
            ("native", TargetKind::Native),
            ("none", TargetKind::Vm),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), *b))
        .collect();
        let bars = bars(&metrics, &targets);
        assert_eq!(bars.len(), 4, "a target without phases gets no bar");
        let sum = |b: &PhaseBar| b.segments.iter().map(|s| s.1).sum::<f64>();
        assert_eq!(sum(&bars[0]), 1912.0);
        assert_eq!(bars[1].segments[0], ("libvirt create call", 300.0));
        assert_eq!(bars[1].segments[1].1, 400.0);
        assert_eq!(sum(&bars[1]), 2112.0);
        assert_eq!(
            bars[2].segments.iter().map(|s| s.0).collect::<Vec<_>>(),
            ["create", "attach", "start to ready"]
        );
        assert_eq!(bars[3].segments, [("spawn to ready", 0.9)]);
        assert_eq!((bars[0].ready_ms, bars[3].ready_ms), (None, Some(0.9)));
    }
}

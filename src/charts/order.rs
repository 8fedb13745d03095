//! One metric against run order, every target on the same axis (as
//! hyperfine's progression plot): a level line is a steady host, a slope is
//! drift, and a target that is always first or last in its round shows
//! carry-over. Warm-up samples are drawn hollow; failed samples not at all.

use crate::rundir::{Sample, WorkloadKind};
use anyhow::{anyhow, Result};
use plotters::coord::Shift;
use plotters::prelude::*;

/// One target's points: (run order, value, warm-up).
pub struct Series {
    pub target: String,
    pub points: Vec<(f64, f64, bool)>,
}

/// `metric` of `workload` per target, in run order (`seq`).
pub fn series(targets: &[String], samples: &[Sample], workload: WorkloadKind, metric: &str) -> Vec<Series> {
    targets
        .iter()
        .map(|t| Series {
            target: t.clone(),
            points: samples
                .iter()
                .filter(|s| s.ok && &s.target == t && s.workload == workload)
                .filter_map(|s| Some((s.seq as f64, *s.metrics.get(metric)?, s.warmup)))
                .collect(),
        })
        .filter(|s| !s.points.is_empty())
        .collect()
}

pub fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, title: &str, unit: &str, data: &[Series]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let err = |e: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("drawing {title}: {e}");
    root.fill(&WHITE).map_err(err)?;
    let all = || data.iter().flat_map(|s| s.points.iter());
    let (x_lo, x_hi) = all().fold((f64::MAX, 0f64), |(a, b), &(x, _, _)| (a.min(x), b.max(x)));
    let (lo, hi) = all().fold((f64::MAX, f64::MIN), |(a, b), &(_, v, _)| (a.min(v), b.max(v)));
    let mut builder = ChartBuilder::on(&root);
    builder
        .caption(title, ("sans-serif", 22))
        .margin(16)
        .x_label_area_size(40)
        .y_label_area_size(80);
    // The workload's own stretch of the run; room above for the legend.
    let x_range = x_lo - 0.5..x_hi + 0.5;
    if lo > 0.0 && hi / lo > 100.0 {
        let mut chart = builder.build_cartesian_2d(x_range, (lo * 0.8..hi * 4.0).log_scale()).map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("run order (sample seq)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(format!("{unit} (log scale)"))
            .draw()
            .map_err(err)?;
        plot(&mut chart, data).map_err(err)?;
        legend(&mut chart).map_err(err)?;
    } else {
        let mut chart = builder.build_cartesian_2d(x_range, 0f64..hi * 1.4).map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("run order (sample seq)")
            .x_label_formatter(&|x| format!("{x:.0}"))
            .y_desc(unit.to_string())
            .draw()
            .map_err(err)?;
        plot(&mut chart, data).map_err(err)?;
        legend(&mut chart).map_err(err)?;
    }
    root.present().map_err(err)?;
    Ok(())
}

/// Each target's measured points joined in order, warm-ups as open circles.
fn plot<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
    data: &[Series],
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    for (i, s) in data.iter().enumerate() {
        let c = super::colour(i);
        let measured: Vec<(f64, f64)> = s.points.iter().filter(|p| !p.2).map(|&(x, y, _)| (x, y)).collect();
        chart
            .draw_series(LineSeries::new(measured.clone(), c.mix(0.5).stroke_width(1)))?
            .label(s.target.clone())
            .legend(move |(x, y)| Circle::new((x + 10, y), 4, c.filled()));
        chart.draw_series(measured.into_iter().map(|p| Circle::new(p, 4, c.filled())))?;
        let warmups = s
            .points
            .iter()
            .filter(|p| p.2)
            .map(|&(x, y, _)| Circle::new((x, y), 4, c.stroke_width(1)));
        chart.draw_series(warmups)?;
    }
    Ok(())
}

fn legend<'a, DB: DrawingBackend + 'a, Y: Ranged<ValueType = f64>>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .label_font(("sans-serif", 15))
        .draw()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_follow_run_order_and_keep_warmups_apart() {
        let run = crate::compare::tests::run(1.0, 3);
        let targets: Vec<String> = run.record.targets.iter().map(|t| t.name.clone()).collect();
        let workload = run.samples[0].workload;
        let metric = run.samples[0].metrics.keys().next().unwrap().clone();
        let data = series(&targets, &run.samples, workload, &metric);
        assert!(!data.is_empty());
        for s in &data {
            let xs: Vec<f64> = s.points.iter().map(|p| p.0).collect();
            assert!(xs.windows(2).all(|w| w[0] < w[1]), "in run order: {xs:?}");
            let expected = run
                .samples
                .iter()
                .filter(|x| x.ok && x.target == s.target && x.workload == workload && x.metrics.contains_key(&metric))
                .count();
            assert_eq!(s.points.len(), expected);
            let warmups = run
                .samples
                .iter()
                .filter(|x| x.ok && x.warmup && x.target == s.target && x.workload == workload)
                .count();
            assert_eq!(s.points.iter().filter(|p| p.2).count(), warmups, "warm-ups drawn apart");
        }
    }
}

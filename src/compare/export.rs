//! A run in the formats CI dashboards read, checked against the consumers'
//! own parsers rather than our reading of their docs:
//!
//! - github-action-benchmark's `customSmallerIsBetter` / `customBiggerIsBetter`
//!   (its `extract.ts`): a JSON array of `{name, unit, value, range?, extra?}`;
//!   `value` a number, the rest strings. One file per direction, since the
//!   action takes one `tool` per file, and never an empty array (the action
//!   fails on "No benchmark result was found"). `range` is shown verbatim
//!   next to the value; only a `±`/`+-` prefix is parsed (and rescaled on a
//!   unit change), which an interval never has.
//! - Bencher Metric Format: `{benchmark: {measure: {value, lower_value,
//!   upper_value}}}`, the bounds being the value's confidence interval as
//!   Bencher's own adapters write them (criterion's interval, for instance).
//!
//! Both carry the median with its exact distribution-free interval from
//! `summary.json`, and only the metrics a comparison may call regressed
//! ([`metric::judged`]): the clock's resolution or an array size the
//! workload chose would raise alerts about the machine, not the code.
//! JUnit lives in [`super::junit`].

use crate::metric::{self, Direction};
use crate::output::Render;
use crate::report::summary::{self, MetricSummary};
use crate::report::table::number;
use crate::rundir::Run;
use serde::Serialize;
use serde_json::{json, Value};

/// One entry of github-action-benchmark's custom JSON.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GabEntry {
    pub name: String,
    pub unit: String,
    pub value: f64,
    pub range: String,
    pub extra: String,
}

/// The median's interval as `range`: `95% CI [low, high]`, with the real
/// coverage when fewer than six samples cannot reach 95%.
fn interval_text(m: &MetricSummary) -> String {
    let level = if m.median_ci_coverage >= crate::stats::CONFIDENCE {
        "95%".to_string()
    } else {
        format!("{:.1}%", m.median_ci_coverage * 100.0)
    };
    format!("{level} CI [{}, {}]", number(m.median_low), number(m.median_high))
}

/// The metrics of `run` exported to dashboards, with their summaries.
fn exported(run: &Run) -> Vec<MetricSummary> {
    summary::build(&run.record, &run.samples)
        .metrics
        .into_iter()
        .filter(|m| metric::judged(&m.metric))
        .collect()
}

/// github-action-benchmark entries of one direction: one per target,
/// workload and metric, valued by the median.
pub fn github_action_benchmark(run: &Run, direction: Direction) -> Vec<GabEntry> {
    let how = |target: &str| {
        run.record
            .targets
            .iter()
            .find(|t| t.name == target)
            .map(|t| crate::report::table::how(Some(t)))
            .unwrap_or_default()
    };
    exported(run)
        .into_iter()
        .filter(|m| metric::info(&m.metric).map(|i| i.direction) == Some(direction))
        .map(|m| {
            let p90 = m.p90.map_or(crate::report::table::WITHHELD.to_string(), number);
            GabEntry {
                name: format!("{} {} {}", m.target, m.workload, m.metric),
                unit: m.unit.clone(),
                value: m.median,
                range: interval_text(&m),
                extra: format!(
                    "n={} p90={p90} min={} max={}\n{}",
                    m.n,
                    number(m.min),
                    number(m.max),
                    how(&m.target)
                )
                .trim_end()
                .to_string(),
            }
        })
        .collect()
}

/// github-action-benchmark's `tool` for a direction.
pub fn gab_tool(direction: Direction) -> &'static str {
    match direction {
        Direction::LowerIsBetter => "customSmallerIsBetter",
        Direction::HigherIsBetter => "customBiggerIsBetter",
    }
}

/// github-action-benchmark's custom JSON of one direction. Rendering an
/// empty direction is an error: the action would reject the file.
pub struct GithubActionBenchmark {
    pub direction: Direction,
}

impl Render<Run> for GithubActionBenchmark {
    fn name(&self) -> &'static str {
        "github-action-benchmark"
    }
    fn render(&self, run: &Run) -> anyhow::Result<Vec<u8>> {
        let entries = github_action_benchmark(run, self.direction);
        if entries.is_empty() {
            anyhow::bail!(
                "the run has no {} metrics, and github-action-benchmark ({}) rejects an empty list",
                direction_words(self.direction),
                gab_tool(self.direction)
            );
        }
        pretty(serde_json::to_value(entries)?)
    }
}

/// `smaller-is-better` or `bigger-is-better`.
pub fn direction_words(direction: Direction) -> &'static str {
    match direction {
        Direction::LowerIsBetter => "smaller-is-better",
        Direction::HigherIsBetter => "bigger-is-better",
    }
}

/// Bencher Metric Format JSON.
pub struct Bencher;

impl Render<Run> for Bencher {
    fn name(&self) -> &'static str {
        "bencher"
    }
    fn render(&self, run: &Run) -> anyhow::Result<Vec<u8>> {
        pretty(bencher(run))
    }
}

fn pretty(value: Value) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(&value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Bencher Metric Format: the benchmark is `target/workload`, the measure
/// the metric; `value` the median, `lower_value`/`upper_value` its interval.
pub fn bencher(run: &Run) -> Value {
    let mut out = serde_json::Map::new();
    for m in exported(run) {
        let bench = out.entry(format!("{}/{}", m.target, m.workload)).or_insert_with(|| json!({}));
        bench[&m.metric] = json!({ "value": m.median, "lower_value": m.median_low, "upper_value": m.median_high });
    }
    Value::Object(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fixture's run with a throughput metric on the VM, so both
    /// directions have entries, and the clock's resolution, which neither
    /// export carries.
    fn run() -> Run {
        let mut run = crate::compare::tests::run(1.0, 12);
        for (i, s) in run.samples.iter_mut().enumerate() {
            s.metrics.insert("clock_res_ns".into(), 40.0);
            if s.target == "vm" {
                // Distinct values, so the interval's order statistics differ from min and max.
                s.metrics.insert("ready_ms".into(), 1800.0 + i as f64);
                s.metrics.insert("image_read_mb_per_s".into(), 100.0 + i as f64);
            }
        }
        run
    }

    #[test]
    fn github_action_benchmark_splits_by_direction_with_the_median_interval() {
        let run = run();
        let smaller = github_action_benchmark(&run, Direction::LowerIsBetter);
        let names: Vec<&str> = smaller.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["vm boot ready_ms", "native boot ready_ms"], "no clock_res_ns");
        let vm = &smaller[0];
        assert_eq!(vm.unit, "ms");
        let s = summary::build(&run.record, &run.samples);
        let m = s.metrics.iter().find(|m| m.target == "vm" && m.metric == "ready_ms").unwrap();
        assert_eq!(vm.value, m.median);
        assert!(m.median_low < m.median_high, "a real interval, not a point");
        assert_eq!(vm.range, format!("95% CI [{}, {}]", number(m.median_low), number(m.median_high)));
        assert!(
            vm.extra.starts_with("n=12 p90=") && vm.extra.ends_with("TCG (emulated)"),
            "{}",
            vm.extra
        );
        let bigger = github_action_benchmark(&run, Direction::HigherIsBetter);
        assert_eq!(bigger.len(), 1);
        assert_eq!(bigger[0].name, "vm boot image_read_mb_per_s");
        // The JSON holds exactly the fields extract.ts reads, value a number.
        let json: Value = serde_json::from_slice(
            &GithubActionBenchmark {
                direction: Direction::HigherIsBetter,
            }
            .render(&run)
            .unwrap(),
        )
        .unwrap();
        let keys: Vec<&String> = json[0].as_object().unwrap().keys().collect();
        assert_eq!(keys, ["extra", "name", "range", "unit", "value"]);
        assert!(json[0]["value"].is_f64());
    }

    #[test]
    fn an_empty_direction_is_refused_and_few_samples_show_their_coverage() {
        let run = crate::compare::tests::run(1.0, 5);
        let err = GithubActionBenchmark {
            direction: Direction::HigherIsBetter,
        }
        .render(&run)
        .unwrap_err();
        assert!(err.to_string().contains("no bigger-is-better metrics"), "{err}");
        let smaller = github_action_benchmark(&run, Direction::LowerIsBetter);
        assert!(smaller[0].range.starts_with("93.8% CI ["), "{}", smaller[0].range);
    }

    #[test]
    fn bencher_bounds_are_the_median_interval_not_min_and_max() {
        let run = run();
        let bmf = bencher(&run);
        let s = summary::build(&run.record, &run.samples);
        let m = s.metrics.iter().find(|m| m.target == "vm" && m.metric == "ready_ms").unwrap();
        let vm = &bmf["vm/boot"]["ready_ms"];
        assert_eq!(vm["value"].as_f64(), Some(m.median));
        assert_eq!(
            (vm["lower_value"].as_f64(), vm["upper_value"].as_f64()),
            (Some(m.median_low), Some(m.median_high))
        );
        assert!(
            m.min < m.median_low && m.median_high < m.max,
            "12 samples: the interval is inside [min, max]"
        );
        assert!(bmf["vm/boot"].get("clock_res_ns").is_none());
        assert!(bmf["vm/boot"]["image_read_mb_per_s"]["value"].is_f64());
    }
}

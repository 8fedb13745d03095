//! A run in the formats CI tools read: github-action-benchmark's custom
//! JSON, Bencher Metric Format, and JUnit XML of threshold checks.

use super::thresholds::CheckRow;
use crate::metric::{self, Direction};
use crate::output::Render;
use crate::report::metric_rows;
use crate::rundir::Run;
use crate::xml::escape;
use serde_json::{json, Value};

/// github-action-benchmark `customSmallerIsBetter` (or, with `bigger`,
/// `customBiggerIsBetter`) entries: one per target, workload and metric whose
/// direction matches, valued by the median.
pub fn github_action_benchmark(run: &Run, bigger: bool) -> Value {
    let wanted = if bigger {
        Direction::HigherIsBetter
    } else {
        Direction::LowerIsBetter
    };
    let accel = |target: &str| {
        run.record
            .targets
            .iter()
            .find(|t| t.name == target)
            .and_then(|t| t.accel.clone().or(t.runtime.clone()))
    };
    let entries: Vec<Value> = metric_rows(&run.record, &run.samples)
        .into_iter()
        .filter(|r| metric::info(&r.metric).map(|i| i.direction) == Some(wanted))
        .map(|r| {
            let s = &r.summary;
            json!({
                "name": format!("{} {} {}", r.target, r.workload, r.metric),
                "unit": metric::unit(&r.metric),
                "value": s.median,
                "range": format!("± {:.3}", s.stddev),
                "extra": format!("n={} p90={} min={:.3} max={:.3} {}", s.n, p90(s), s.min, s.max, accel(&r.target).unwrap_or_default()),
            })
        })
        .collect();
    Value::Array(entries)
}

/// p90 to three decimals, or `–` below the 10 samples it needs.
fn p90(s: &crate::stats::Summary) -> String {
    s.supported_tails()[0].map_or(crate::report::table::WITHHELD.to_string(), |p| format!("{p:.3}"))
}

/// github-action-benchmark's custom JSON, one direction per file.
pub struct GithubActionBenchmark {
    pub bigger_is_better: bool,
}

impl Render<Run> for GithubActionBenchmark {
    fn name(&self) -> &'static str {
        "github-action-benchmark"
    }
    fn render(&self, run: &Run) -> anyhow::Result<Vec<u8>> {
        pretty(github_action_benchmark(run, self.bigger_is_better))
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

/// JUnit XML of threshold checks.
pub struct Junit;

impl Render<[CheckRow]> for Junit {
    fn name(&self) -> &'static str {
        "junit"
    }
    fn render(&self, rows: &[CheckRow]) -> anyhow::Result<Vec<u8>> {
        Ok(junit(rows).into_bytes())
    }
}

fn pretty(value: Value) -> anyhow::Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(&value)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Bencher Metric Format: `{benchmark: {measure: {value, lower_value, upper_value}}}`
/// with the benchmark named `target/workload` and the metric as the measure.
pub fn bencher(run: &Run) -> Value {
    let mut out = serde_json::Map::new();
    for r in metric_rows(&run.record, &run.samples) {
        let bench = out.entry(format!("{}/{}", r.target, r.workload)).or_insert_with(|| json!({}));
        bench[&r.metric] = json!({ "value": r.summary.median, "lower_value": r.summary.min, "upper_value": r.summary.max });
    }
    Value::Object(out)
}

/// JUnit XML: one test case per threshold check, a failure for each miss.
pub fn junit(rows: &[CheckRow]) -> String {
    let failures = rows.iter().filter(|r| !r.pass).count();
    let mut xml = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n<testsuite name=\"vmbench thresholds\" tests=\"{}\" failures=\"{failures}\">\n", rows.len());
    for r in rows {
        let name = escape(&format!("{} {} {} {}", r.target, r.workload, r.metric, r.statistic));
        xml.push_str(&format!("<testcase classname=\"vmbench.{}\" name=\"{name}\">", escape(&r.target)));
        if !r.pass {
            let message = match r.value {
                Some(v) => format!("{v:.3} outside [{}, {}]", bound(r.min), bound(r.max)),
                None => "no samples for this metric".to_string(),
            };
            xml.push_str(&format!("<failure message=\"{}\"/>", escape(&message)));
        }
        xml.push_str("</testcase>\n");
    }
    xml.push_str("</testsuite>\n</testsuites>\n");
    xml
}

fn bound(b: Option<f64>) -> String {
    b.map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn github_action_benchmark_splits_by_direction() {
        let run = crate::compare::tests::run(1.0, 4);
        let smaller = github_action_benchmark(&run, false);
        let entries = smaller.as_array().unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0]["name"], "vm boot ready_ms");
        assert_eq!(entries[0]["unit"], "ms");
        assert!(entries[0]["value"].as_f64().unwrap() > 1700.0);
        assert!(entries[0]["range"].as_str().unwrap().starts_with("± "));
        assert_eq!(github_action_benchmark(&run, true), json!([]));
    }

    #[test]
    fn bencher_groups_measures_by_benchmark() {
        let run = crate::compare::tests::run(1.0, 4);
        let bmf = bencher(&run);
        let vm = &bmf["vm/boot"]["ready_ms"];
        assert!(vm["lower_value"].as_f64().unwrap() <= vm["value"].as_f64().unwrap());
        assert!(vm["value"].as_f64().unwrap() <= vm["upper_value"].as_f64().unwrap());
    }

    #[test]
    fn junit_marks_failures_and_escapes() {
        let row = |pass: bool| CheckRow {
            target: "a<b".into(),
            workload: "boot".into(),
            metric: "ready_ms".into(),
            statistic: "median".into(),
            value: Some(5.0),
            min: None,
            max: Some(4.0),
            pass,
        };
        let xml = junit(&[row(true), row(false)]);
        assert!(xml.contains("tests=\"2\" failures=\"1\""));
        assert_eq!(xml.matches("<failure").count(), 1);
        assert!(xml.contains("a&lt;b") && !xml.contains("a<b"));
    }
}

//! The files a report consists of, one [`Format`] each: bytes out. Writing
//! them (and drawing the charts they show) is `publish`'s job.

use super::summary::RunSummary;
use crate::output::Render;
use crate::rundir::{RunRecord, Sample};
use anyhow::Result;
use std::path::Path;

/// Everything a format may draw on.
pub struct Input<'a> {
    pub record: &'a RunRecord,
    pub samples: &'a [Sample],
    pub summary: &'a RunSummary,
    /// Where user-editable templates are looked for first.
    pub templates: &'a Path,
    /// Charts already written into the run directory.
    pub charts: &'a [crate::report::ChartFile],
    /// The run directory the charts' paths are relative to.
    pub dir: &'a Path,
}

/// A report format: renders an [`Input`] into the file it names.
pub type Format = dyn for<'a> Render<Input<'a>>;

pub struct Json;
pub struct Csv;
pub struct Markdown;
pub struct Html;
pub struct Latex;

impl Render<Input<'_>> for Json {
    fn name(&self) -> &'static str {
        "json"
    }
    fn file_name(&self) -> Option<&'static str> {
        Some("summary.json")
    }
    fn render(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        Ok(serde_json::to_vec_pretty(input.summary)?)
    }
}

impl Render<Input<'_>> for Csv {
    fn name(&self) -> &'static str {
        "csv"
    }
    fn file_name(&self) -> Option<&'static str> {
        Some("samples.csv")
    }
    /// One row per sample and metric; a failed sample without metrics still
    /// has a row, with its error.
    fn render(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        let mut out = String::from("seq,target,workload,rep,warmup,ok,metric,value,unit,accel,runtime,started_at,error,not_applicable\n");
        for s in input.samples {
            let common = |metric: &str, value: String, unit: &str| {
                [
                    s.seq.to_string(),
                    s.target.clone(),
                    s.workload.to_string(),
                    s.rep.to_string(),
                    s.warmup.to_string(),
                    s.ok.to_string(),
                    metric.to_string(),
                    value,
                    unit.to_string(),
                    s.accel.clone().unwrap_or_default(),
                    s.runtime.clone().unwrap_or_default(),
                    s.started_at.clone(),
                    s.error.clone().unwrap_or_default(),
                    s.not_applicable.clone().unwrap_or_default(),
                ]
                .iter()
                .map(|c| csv_field(c))
                .collect::<Vec<_>>()
                .join(",")
            };
            if s.metrics.is_empty() {
                out.push_str(&common("", String::new(), ""));
                out.push('\n');
            }
            for (metric, value) in &s.metrics {
                out.push_str(&common(metric, value.to_string(), crate::metric::unit(metric)));
                out.push('\n');
            }
        }
        Ok(out.into_bytes())
    }
}

/// RFC 4180 quoting where needed.
pub fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

impl Render<Input<'_>> for Markdown {
    fn name(&self) -> &'static str {
        "md"
    }
    fn file_name(&self) -> Option<&'static str> {
        Some("report.md")
    }
    fn render(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        super::template::render("report.md.j2", input).map(String::into_bytes)
    }
}

impl Render<Input<'_>> for Html {
    fn name(&self) -> &'static str {
        "html"
    }
    fn file_name(&self) -> Option<&'static str> {
        Some("report.html")
    }
    /// One self-contained file: the charts' SVG is inlined, styles are in
    /// the page, nothing is loaded from elsewhere and no script runs.
    fn render(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        super::template::render("report.html.j2", input).map(String::into_bytes)
    }
}

impl Render<Input<'_>> for Latex {
    fn name(&self) -> &'static str {
        "tex"
    }
    fn file_name(&self) -> Option<&'static str> {
        Some("summary.tex")
    }
    /// The summary as booktabs tables, one per workload (see `latex`).
    fn render(&self, input: &Input<'_>) -> Result<Vec<u8>> {
        let tcg = input.record.targets.iter().any(|t| t.accel.as_deref() == Some("tcg"));
        Ok(super::latex::render(input.summary, &input.record.scenario.workloads, tcg).into_bytes())
    }
}

pub fn all() -> Vec<Box<Format>> {
    vec![Box::new(Json), Box::new(Csv), Box::new(Markdown), Box::new(Html), Box::new(Latex)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rundir::RunStatus;

    /// What a format renders from, for a test run without user templates.
    fn input<'a>(run: &'a crate::rundir::Run, summary: &'a RunSummary, charts: &'a [crate::report::ChartFile], dir: &'a Path) -> Input<'a> {
        Input {
            record: &run.record,
            samples: &run.samples,
            summary,
            templates: Path::new("/nonexistent"),
            charts,
            dir,
        }
    }

    fn render_all(status: RunStatus) -> (String, String, RunSummary) {
        let mut run = crate::compare::tests::run(1.0, 6);
        run.record.status = status;
        run.samples[0].ok = false;
        run.samples[0].error = Some("timed out, \"badly\"\nlast line".into());
        run.samples[0].metrics.clear();
        let summary = crate::report::summary::build(&run.record, &run.samples);
        let input = input(&run, &summary, &[], Path::new("/nonexistent"));
        let md = String::from_utf8(Markdown.render(&input).unwrap()).unwrap();
        let csv = String::from_utf8(Csv.render(&input).unwrap()).unwrap();
        (md, csv, summary)
    }

    #[test]
    fn html_is_one_self_contained_page_with_charts_inline() {
        let tmp = tempfile::tempdir().unwrap();
        let mut run = crate::compare::tests::run(1.0, 6);
        run.samples[1].ok = false;
        run.samples[1].metrics.clear();
        run.samples[1].not_applicable = Some("no <network> here".into());
        let summary = crate::report::summary::build(&run.record, &run.samples);
        let charts = crate::charts::write_run(tmp.path(), &run.record, &run.samples, &summary).unwrap();
        assert!(charts.iter().any(|c| c.svg == "charts/boot-ready.svg"));
        let input = input(&run, &summary, &charts, tmp.path());
        let html = String::from_utf8(Html.render(&input).unwrap()).unwrap();
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert_eq!(html.matches("<svg").count(), charts.len(), "every chart inline");
        assert!(!html.contains("<?xml") && !html.contains("<script") && !html.contains("src=\"http"));
        assert!(html.contains("<h2>Workload <code>boot</code></h2>") && html.contains("<h2>Methodology</h2>"));
        // Text from the run is escaped; the inlined SVG is not.
        assert!(html.contains("no &lt;network&gt; here"), "not applicable, escaped");
        assert!(html.contains("<h2>Scenario</h2>"));
        assert!(html.contains("<h2>Every target against every other</h2>") && html.contains("<th>vs native</th>"));
    }

    #[test]
    fn guest_systems_show_a_built_tree_and_an_image_of_your_own_with_its_layers() {
        use crate::rundir::{BaseImageFacts, GuestFacts, GuestSourceKind};
        let mut run = crate::compare::tests::run(1.0, 6);
        run.record.targets[0].guest = Some(GuestFacts {
            name: "debian".into(),
            init: "systemd".into(),
            ready: "http:80/=200".into(),
            distro: "debian".into(),
            suite: "bookworm".into(),
            tree_bytes: 300 << 20,
            disk_bytes: Some(600 << 20),
            ..Default::default()
        });
        run.record.targets[1].guest = Some(GuestFacts {
            name: "mine".into(),
            source: GuestSourceKind::Dockerfile,
            init: "agent".into(),
            ready: "agent".into(),
            base_image: Some(BaseImageFacts::example()),
            ..Default::default()
        });
        let summary = crate::report::summary::build(&run.record, &run.samples);
        let input = input(&run, &summary, &[], Path::new("/nonexistent"));
        let md = String::from_utf8(Markdown.render(&input).unwrap()).unwrap();
        assert!(
            md.contains("| vm | debian | systemd | `http:80/=200` | debian bookworm | – | 300.0 | 600.0 |"),
            "{md}"
        );
        assert!(
            md.contains("| native | mine | agent | `agent` | dockerfile `my/Dockerfile` | – | – |"),
            "{md}"
        );
        assert!(
            md.contains("| native | vmbench/build:ab | 0123456789ab | 1 | 1.50 | `COPY dir:1 in /app` |"),
            "{md}"
        );
        assert!(md.contains("| 2 | 0.001 | `COPY file:2 in /etc/app\\|conf` |"), "{md}");
        assert!(!md.contains("ENV X=1"), "metadata-only steps are left out: {md}");
        let html = String::from_utf8(Html.render(&input).unwrap()).unwrap();
        // (HTML-escaped: `/` is `&#x2f;`.)
        assert!(html.contains("<td>dockerfile <code>my&#x2f;Dockerfile</code></td>"), "{html}");
        assert!(html.contains("<td class=\"num\">1.50</td><td><code>COPY dir:1 in &#x2f;app</code>"));
        // Without an image of your own there is no layer table.
        run.record.targets[1].guest = None;
        let summary = crate::report::summary::build(&run.record, &run.samples);
        let md = String::from_utf8(Markdown.render(&input_of(&run, &summary)).unwrap()).unwrap();
        assert!(md.contains("debian bookworm") && !md.contains("Layers of the images"), "{md}");
        // A disk of your own: what its header said, no tree, its chain's sizes.
        run.record.targets[0].guest = Some(GuestFacts {
            name: "cloud".into(),
            source: GuestSourceKind::Disk,
            init: "image".into(),
            ready: "console:login:".into(),
            disk_bytes: Some(2 << 30),
            disk_allocated_bytes: Some(512 << 20),
            disk_image: Some(crate::rundir::DiskImageFacts {
                path: "/images/cloud.qcow2".into(),
                format: "qcow2".into(),
                detected: "qcow2 (version 3)".into(),
                virtual_bytes: 2 << 30,
                backing_chain: Vec::new(),
            }),
            ..Default::default()
        });
        let summary = crate::report::summary::build(&run.record, &run.samples);
        let md = String::from_utf8(Markdown.render(&input_of(&run, &summary)).unwrap()).unwrap();
        assert!(
            md.contains(
                "| vm | cloud | image | `console:login:` | disk `/images/cloud.qcow2` (qcow2 (version 3)) | – | – | 2048.0 | 512.0 |"
            ),
            "{md}"
        );
    }

    fn input_of<'a>(run: &'a crate::rundir::Run, summary: &'a RunSummary) -> Input<'a> {
        input(run, summary, &[], Path::new("/nonexistent"))
    }

    #[test]
    fn markdown_lists_not_applicable_pairs_and_tail_percentiles() {
        let mut run = crate::compare::tests::run(1.0, 6);
        run.samples[1].ok = false;
        run.samples[1].metrics.clear();
        run.samples[1].not_applicable = Some("runsc has no network".into());
        let summary = crate::report::summary::build(&run.record, &run.samples);
        assert_eq!(summary.not_applicable.len(), 1);
        assert_eq!(summary.targets.iter().map(|t| t.failed_trials).sum::<usize>(), 0, "not a failure");
        let input = input(&run, &summary, &[], Path::new("/nonexistent"));
        let md = String::from_utf8(Markdown.render(&input).unwrap()).unwrap();
        assert!(md.contains("| native | boot | runsc has no network |"), "{md}");
        assert!(md.contains("| p99 | p99.9 |"));
        assert!(
            md.contains("## Every target against every other") && md.contains("| target | vs vm | vs native |"),
            "{md}"
        );
    }

    #[test]
    fn markdown_has_the_tables_and_flags_incomplete_runs() {
        let (md, _, _) = render_all(RunStatus::Complete);
        assert!(md.starts_with("# vmbench: s"));
        assert!(
            md.contains("## Workload `boot`") && md.contains("| vm | ready_ms | ms | 5 |"),
            "{md}"
        );
        assert!(md.contains("TCG") && !md.contains("Incomplete run"));
        let (md, _, summary) = render_all(RunStatus::Interrupted);
        assert!(md.contains("**Incomplete run** (status: interrupted"), "{md}");
        assert!(summary.incomplete);
    }

    #[test]
    fn csv_quotes_errors_and_keeps_failed_samples() {
        let (_, csv, _) = render_all(RunStatus::Complete);
        let header = csv.lines().next().unwrap();
        assert_eq!(header.split(',').count(), 14);
        assert!(csv.contains("\"timed out, \"\"badly\"\"\nlast line\""), "{csv}");
        // 12 samples: 11 with one metric each, 1 failed with none but still a row.
        assert_eq!(csv.matches(",ready_ms,").count(), 11);
    }

    #[test]
    fn summary_has_intervals_and_native_ratios() {
        let (md, _, summary) = render_all(RunStatus::Complete);
        let vm = summary.metrics.iter().find(|m| m.target == "vm").unwrap();
        assert!(vm.median_low <= vm.median && vm.median <= vm.median_high);
        // 5 good samples: [min, max] is the best there is, at 93.75%.
        assert_eq!((vm.n, vm.median_low, vm.median_high), (5, vm.min, vm.max));
        assert_eq!(vm.median_ci_coverage, 0.9375, "exact for small n");
        assert!(md.contains("(93.8%)"), "{md}");
        // Too few samples for any tail percentile: null, and – in the report.
        assert_eq!((vm.p90, vm.p99, vm.p999), (None, None, None));
        assert!(md.contains("| – | – | – |"), "{md}");
        // The failed trial leaves the VM without repetition 0: no rounds to
        // pair, so a ratio of medians, marked.
        let ratio = vm.vs_native.unwrap();
        assert!(ratio.value > 1000.0 && !ratio.paired);
        assert!(md.contains(" \\* |"), "{md}");
        assert_eq!(summary.targets[0].failed_trials, 1);
        assert_eq!(summary.schema_version, crate::report::summary::SUMMARY_SCHEMA_VERSION);
        let json: serde_json::Value = serde_json::from_slice(
            &Json
                .render(&input(&crate::compare::tests::run(1.0, 6), &summary, &[], Path::new("/x")))
                .unwrap(),
        )
        .unwrap();
        assert_eq!(json["tail_min_n"], serde_json::json!({"p90": 10, "p99": 100, "p999": 1000}));
        assert!(json["metrics"][0]["p90"].is_null() && json["metrics"][0]["vs_native"]["paired"] == false);
    }

    #[test]
    fn drift_is_listed_in_the_summary_and_warned_about_in_the_reports() {
        let mut run = crate::compare::tests::run(1.0, 12);
        for s in run.samples.iter_mut().filter(|s| s.target == "native") {
            *s.metrics.get_mut("ready_ms").unwrap() = 1.0 + s.seq as f64 * 0.1;
        }
        let summary = crate::report::summary::build(&run.record, &run.samples);
        assert_eq!(summary.drift.len(), 1);
        let native = summary.metrics.iter().find(|m| m.target == "native").unwrap();
        assert_eq!(native.trend.unwrap().rho, 1.0);
        let vm = summary.metrics.iter().find(|m| m.target == "vm").unwrap();
        // 12 rounds, every one complete: the ratio is paired.
        assert!(vm.vs_native.unwrap().paired);
        assert!(vm.p90.is_some() && vm.p99.is_none(), "12 samples support p90 only");
        let input = input(&run, &summary, &[], Path::new("/nonexistent"));
        let md = String::from_utf8(Markdown.render(&input).unwrap()).unwrap();
        assert!(
            md.contains("> **warning**: native boot ready_ms trends with run order (Spearman ρ = 1.0"),
            "{md}"
        );
        let html = String::from_utf8(Html.render(&input).unwrap()).unwrap();
        assert!(html.contains("<strong>warning</strong>: native boot ready_ms trends with run order"));
        let table = crate::report::table::summary(&run.record, &run.samples);
        assert!(table.contains("warning: native boot ready_ms trends with run order"), "{table}");
    }
}

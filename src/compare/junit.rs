//! JUnit XML of threshold checks and of comparisons, built with
//! `quick-junit` rather than by hand. What each CI system reads: GitLab shows
//! a failure's *text* (not its `message` attribute), Jenkins and most
//! GitHub reporters the message, so every failure carries both; `type` says
//! what kind of failure it is (`threshold`, `missing`, `regression`,
//! `environment`). `tests`, `failures`, `errors`, `skipped`, `time` and
//! `timestamp` are always written: the timestamp and time are those of the
//! run whose numbers are judged (when it was measured and how long it took).

use super::thresholds::CheckRow;
use super::{Comparison, Row, Verdict};
use crate::output::Render;
use crate::report::table::number;
use crate::rundir::RunRecord;
use chrono::{DateTime, FixedOffset};
use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
use std::time::Duration;

/// When the judged run started and how long it ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunTime {
    pub started: Option<DateTime<FixedOffset>>,
    pub duration: Duration,
}

impl RunTime {
    /// From `run.json`'s RFC 3339 times; a duration of zero when the run has
    /// no finish time (interrupted before it could write one).
    pub fn of(record: &RunRecord) -> Self {
        let parse = |s: &str| DateTime::parse_from_rfc3339(s).ok();
        let started = parse(&record.started_at);
        let finished = record.finished_at.as_deref().and_then(parse);
        let duration = match (started, finished) {
            (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        };
        RunTime { started, duration }
    }

    fn stamp(&self, suite: &mut TestSuite) {
        suite.set_time(self.duration);
        if let Some(started) = self.started {
            suite.set_timestamp(started);
        }
    }
}

/// A test case; a check or a comparison takes no time of its own, so its
/// `time` is zero (the measuring is the suite's time).
fn case(name: String, classname: String, status: TestCaseStatus) -> TestCase {
    let mut case = TestCase::new(name, status);
    case.set_classname(classname).set_time(Duration::ZERO);
    case
}

/// A failure (or error) whose text is the whole reason and whose message is
/// its short form.
fn not_passed(kind: NonSuccessKind, ty: &str, message: String, text: String) -> TestCaseStatus {
    let mut status = TestCaseStatus::non_success(kind);
    status.set_type(ty).set_message(message).set_description(text);
    status
}

fn serialize(suite: TestSuite) -> anyhow::Result<Vec<u8>> {
    let mut report = Report::new("vmbench");
    report.add_test_suite(suite);
    let mut bytes = Vec::new();
    report.serialize(&mut bytes)?;
    Ok(bytes)
}

fn bound(b: Option<f64>) -> String {
    b.map(number).unwrap_or_else(|| "-".into())
}

/// One test case per threshold check: a failure for a value outside its
/// bounds or a check that matched no samples.
pub fn checks(rows: &[CheckRow], when: RunTime) -> TestSuite {
    let mut suite = TestSuite::new("vmbench check");
    when.stamp(&mut suite);
    for r in rows {
        let unit = crate::metric::unit(&r.metric);
        let status = match (r.pass, r.value) {
            (true, _) => TestCaseStatus::success(),
            (false, Some(v)) => not_passed(
                NonSuccessKind::Failure,
                "threshold",
                format!("{} {} {unit} outside [{}, {}]", r.statistic, number(v), bound(r.min), bound(r.max)),
                format!(
                    "{} {} {}: the {} is {} {unit}, outside the allowed range [{}, {}] {unit}",
                    r.target,
                    r.workload,
                    r.metric,
                    r.statistic,
                    number(v),
                    bound(r.min),
                    bound(r.max)
                ),
            ),
            (false, None) => not_passed(
                NonSuccessKind::Failure,
                "missing",
                "no samples for this metric".into(),
                format!(
                    "{} {} {}: the run has no measured samples to check (target `{}`, workload `{}`); \
                     a check that matches nothing fails rather than passing silently",
                    r.target, r.workload, r.metric, r.target, r.workload
                ),
            ),
        };
        suite.add_test_case(case(
            format!("{} {} {} {}", r.target, r.workload, r.metric, r.statistic),
            format!("vmbench.{}.{}", r.target, r.workload),
            status,
        ));
    }
    suite
}

/// The numbers of a compared row, as one sentence.
fn row_numbers(r: &Row) -> String {
    format!(
        "median {} → {} {} ({:+.1}%, 95% CI [{:+.1}%, {:+.1}%]), n {} → {}, permutation-test p {}, Holm-adjusted p {}",
        number(r.base_median),
        number(r.new_median),
        r.unit,
        r.change_pct,
        r.change_low_pct,
        r.change_high_pct,
        r.base_n,
        r.new_n,
        p_is(r.p_value),
        p_is(r.p_adjusted),
    )
}

/// `= 0.012` or `< 0.001`.
fn p_is(p: f64) -> String {
    let cell = super::format::p_cell(p);
    match cell.strip_prefix('<') {
        Some(bound) => format!("< {bound}"),
        None => format!("= {cell}"),
    }
}

/// One test case per compared metric (a failure for each regression),
/// one per metric found in only one of the runs (skipped), and one for the
/// environment: an error when the runs' environments differ and that was
/// not allowed, since their numbers are then not comparable at all.
pub fn comparison(c: &Comparison, allow_env_change: bool, when: RunTime) -> TestSuite {
    let mut suite = TestSuite::new("vmbench compare");
    when.stamp(&mut suite);
    let o = &c.options;
    for r in &c.rows {
        let status = match r.verdict {
            Verdict::Regressed => not_passed(
                NonSuccessKind::Failure,
                "regression",
                format!(
                    "{:+.1}% [{:+.1}, {:+.1}], Holm-adjusted p {}",
                    r.change_pct,
                    r.change_low_pct,
                    r.change_high_pct,
                    p_is(r.p_adjusted)
                ),
                format!(
                    "{} {} {} regressed from {} to {}: {}; beyond the {}% threshold at α = {}",
                    r.target,
                    r.workload,
                    r.metric,
                    c.base,
                    c.new,
                    row_numbers(r),
                    o.threshold_pct,
                    o.alpha
                ),
            ),
            Verdict::Improved | Verdict::NoChange => TestCaseStatus::success(),
        };
        let mut case = case(
            format!("{} {} {}", r.target, r.workload, r.metric),
            format!("vmbench.{}.{}", r.target, r.workload),
            status,
        );
        case.set_system_out(format!("{}: {}", r.verdict.as_str(), row_numbers(r)));
        suite.add_test_case(case);
    }
    for (labels, only_in) in [(&c.only_in_base, "base"), (&c.only_in_new, "new")] {
        for label in labels {
            let mut status = TestCaseStatus::skipped();
            status
                .set_type("unpaired")
                .set_message(format!("only in the {only_in} run"))
                .set_description(format!(
                    "{label} has samples only in the {only_in} run, so there is nothing to compare it with"
                ));
            suite.add_test_case(case(label.clone(), "vmbench.unpaired".into(), status));
        }
    }
    let changes = c.environment_changes.join("\n");
    let status = if c.environment_changes.is_empty() || allow_env_change {
        TestCaseStatus::success()
    } else {
        not_passed(
            NonSuccessKind::Error,
            "environment",
            format!("the runs' environments differ ({} change(s))", c.environment_changes.len()),
            format!(
                "the numbers of {} and {} are not comparable; pass --allow-env-change to compare anyway:\n{changes}",
                c.base, c.new
            ),
        )
    };
    let mut env = case("environment".into(), "vmbench.environment".into(), status);
    if !changes.is_empty() {
        env.set_system_out(changes);
    }
    suite.add_test_case(env);
    suite
}

/// JUnit XML of threshold checks, stamped with the checked run's time.
pub struct JunitChecks {
    pub when: RunTime,
}

impl Render<[CheckRow]> for JunitChecks {
    fn name(&self) -> &'static str {
        "junit"
    }
    fn render(&self, rows: &[CheckRow]) -> anyhow::Result<Vec<u8>> {
        serialize(checks(rows, self.when))
    }
}

/// JUnit XML of a comparison, stamped with the new run's time.
pub struct JunitComparison {
    pub when: RunTime,
    pub allow_env_change: bool,
}

impl Render<Comparison> for JunitComparison {
    fn name(&self) -> &'static str {
        "junit"
    }
    fn render(&self, c: &Comparison) -> anyhow::Result<Vec<u8>> {
        serialize(comparison(c, self.allow_env_change, self.when))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quick_junit::Report;

    fn row(pass: bool, value: Option<f64>) -> CheckRow {
        CheckRow {
            target: "a<b".into(),
            workload: "boot".into(),
            metric: "ready_ms".into(),
            statistic: "median".into(),
            value,
            min: None,
            max: Some(4.0),
            pass,
        }
    }

    fn when() -> RunTime {
        let mut record = crate::compare::tests::run(1.0, 1).record;
        record.started_at = "2026-11-25T15:01:02Z".into();
        record.finished_at = Some("2026-11-25T15:03:04.5Z".into());
        RunTime::of(&record)
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn run_time_comes_from_run_json_and_survives_a_missing_finish() {
        let w = when();
        assert_eq!(w.duration, Duration::from_millis(122_500));
        assert_eq!(w.started.unwrap().to_rfc3339(), "2026-11-25T15:01:02+00:00");
        let mut record = crate::compare::tests::run(1.0, 1).record;
        record.started_at = "not a time".into();
        assert_eq!(
            RunTime::of(&record),
            RunTime {
                started: None,
                duration: Duration::ZERO
            }
        );
    }

    #[test]
    fn a_failed_check_says_why_in_the_failure_text_and_counts_are_written() {
        let xml = text(
            JunitChecks { when: when() }
                .render(&[row(true, Some(3.0)), row(false, Some(5.0)), row(false, None)])
                .unwrap(),
        );
        assert!(xml.starts_with("<?xml"), "{xml}");
        assert!(
            xml.contains(r#"<testsuite name="vmbench check" tests="3" skipped="0" errors="0" failures="2" timestamp="2026-11-25T15:01:02.000+00:00" time="122.500">"#),
            "{xml}"
        );
        assert!(
            xml.contains(
                r#"type="threshold">a&lt;b boot ready_ms: the median is 5.00 ms, outside the allowed range [-, 4.00] ms</failure>"#
            ),
            "{xml}"
        );
        assert!(
            xml.contains(r#"type="missing">a&lt;b boot ready_ms: the run has no measured samples"#),
            "{xml}"
        );
        assert_eq!(xml.matches(r#"time="0.000""#).count(), 3, "every test case has a time");
        assert!(!xml.contains("a<b"), "escaped");
        // quick-junit reads back what it wrote: the text is the description.
        let report = Report::deserialize_from_str(&xml).unwrap();
        let failed = &report.test_suites[0].test_cases[1];
        match &failed.status {
            TestCaseStatus::NonSuccess { description, ty, .. } => {
                assert!(description.as_ref().unwrap().as_str().contains("outside the allowed range"));
                assert_eq!(ty.as_ref().unwrap().as_str(), "threshold");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_regression_is_a_failure_an_unpaired_metric_skipped_a_changed_environment_an_error() {
        let base = crate::compare::tests::run(1.0, 12);
        let mut new = crate::compare::tests::run(1.3, 12);
        new.record.host.kernel = "6.12".into();
        let mut c = crate::compare::compare(&base, &new, "main", "pr", crate::compare::Options::default());
        c.only_in_new.push("vm boot exit_ms".into());
        assert_eq!(c.regressions(), 1);
        let xml = text(
            JunitComparison {
                when: when(),
                allow_env_change: false,
            }
            .render(&c)
            .unwrap(),
        );
        assert!(xml.contains(r#"tests="4" skipped="1" errors="1" failures="1""#), "{xml}");
        assert!(
            xml.contains(r#"type="regression">vm boot ready_ms regressed from main to pr: median "#),
            "{xml}"
        );
        assert!(xml.contains("<skipped message=\"only in the new run\" type=\"unpaired\">"), "{xml}");
        assert!(
            xml.contains("<error message=\"the runs&apos; environments differ (1 change(s))\" type=\"environment\">")
                || xml.contains("<error message=\"the runs' environments differ (1 change(s))\" type=\"environment\">"),
            "{xml}"
        );
        assert!(xml.contains("host kernel: 6.1 → 6.12"), "{xml}");
        // Allowed: the environment is reported, not an error.
        let allowed = text(
            JunitComparison {
                when: when(),
                allow_env_change: true,
            }
            .render(&c)
            .unwrap(),
        );
        assert!(allowed.contains(r#"errors="0" failures="1""#), "{allowed}");
        assert!(allowed.contains("host kernel: 6.1 → 6.12"));
    }
}

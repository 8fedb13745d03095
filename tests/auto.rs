//! `repetitions = "auto"` on the real native target: it stops once the
//! median of the headline metric is known closely enough (its exact 95%
//! interval narrow at two consecutive sample sizes of at least 6, so at 7 at
//! the earliest), or at the maximum, and run.json and the report say which
//! happened.

mod common;

use common::*;

fn scenario(target_cov: f64) -> String {
    format!(
        "name = \"auto\"\nrepetitions = \"auto\"\nmin_repetitions = 3\nmax_repetitions = 8\ntarget_cov = {target_cov}\nwarmup = 0\n\
         [[target]]\nname = \"native\"\nkind = \"native\"\n[[workload]]\nkind = \"syscall\"\ncalls = 20000\nround_trips = 200\n"
    )
}

fn run(target_cov: f64) -> (vmbench::rundir::RunRecord, Vec<vmbench::rundir::Sample>, String) {
    let tmp = tempfile::tempdir().unwrap();
    let (result, out) = run_scenario(tmp.path(), "auto.toml", &scenario(target_cov));
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let md = std::fs::read_to_string(out.join("report.md")).unwrap();
    (record(&out), samples(&out), md)
}

#[test]
fn a_loose_target_stops_at_the_earliest_and_says_it_converged() {
    // target_cov = 1: the median to ±100%, met by any sane spread; the rule
    // still needs a 95% interval (6 samples) at two consecutive sizes.
    let (record, samples, md) = run(1.0);
    let auto = record.scenario.auto.expect("auto facts in run.json");
    assert_eq!((auto.min_repetitions, auto.max_repetitions), (3, 8));
    let outcome = &auto.outcomes[0];
    assert_eq!(
        (outcome.metric.as_str(), outcome.repetitions, outcome.converged),
        ("getppid_ns", 7, true)
    );
    assert!(outcome.median_ci_rel_width.unwrap() <= 2.0);
    assert_eq!(samples.len(), 7);
    assert!(
        md.contains("native syscall (getppid_ns): 7 repetitions") && md.contains("converged"),
        "{md}"
    );
}

#[test]
fn an_unreachable_target_runs_to_the_maximum_and_says_so() {
    let (record, samples, md) = run(0.0001);
    let outcome = &record.scenario.auto.unwrap().outcomes[0];
    assert_eq!((outcome.repetitions, outcome.converged), (8, false));
    assert_eq!(samples.len(), 8);
    assert!(md.contains("maximum reached"), "{md}");
}

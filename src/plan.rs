//! Scenario → the ordered list of trials. Pure.
//!
//! Targets are interleaved (rep 0 of every target, then rep 1, ...) rather
//! than run one after the other, so slow drift on the host (thermal state,
//! page cache, a background job) lands on every target alike instead of on
//! whichever ran last.

use crate::scenario::Scenario;

/// One launch of one target running one workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Trial {
    /// Position in the run, from 0: the order trials were executed in.
    pub seq: usize,
    /// Index into `Scenario::targets`.
    pub target: usize,
    /// Index into `Scenario::workloads`.
    pub workload: usize,
    /// Repetition number from 0, counted separately for warmups.
    pub rep: u32,
    pub warmup: bool,
}

/// What the command line changes about a scenario.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub repetitions: Option<u32>,
    pub warmup: Option<u32>,
    /// Run only these targets (by name); empty means all.
    pub only: Vec<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Indices of the targets taking part, in scenario order.
    pub targets: Vec<usize>,
    pub repetitions: u32,
    pub warmup: u32,
    /// `repetitions = "auto"` (unless `--reps` fixed the count): the runner
    /// may stop a target × workload before `repetitions`.
    pub auto: Option<crate::scenario::AutoRepetitions>,
    pub trials: Vec<Trial>,
}

/// Builds the plan, or says which `--only` name matches no target.
pub fn build(scenario: &Scenario, overrides: &Overrides) -> Result<Plan, String> {
    for name in &overrides.only {
        if !scenario.targets.iter().any(|t| &t.name == name) {
            let names: Vec<&str> = scenario.targets.iter().map(|t| t.name.as_str()).collect();
            return Err(format!("--only {name}: no such target (the scenario has {})", names.join(", ")));
        }
    }
    let targets: Vec<usize> = (0..scenario.targets.len())
        .filter(|&i| overrides.only.is_empty() || overrides.only.contains(&scenario.targets[i].name))
        .collect();
    let repetitions = overrides.repetitions.unwrap_or(scenario.repetitions);
    let auto = scenario.auto.filter(|_| overrides.repetitions.is_none());
    let warmup = overrides.warmup.unwrap_or(scenario.warmup);
    let mut trials = Vec::new();
    for workload in 0..scenario.workloads.len() {
        let passes = (0..warmup).map(|r| (r, true)).chain((0..repetitions).map(|r| (r, false)));
        for (rep, is_warmup) in passes {
            for &target in &targets {
                trials.push(Trial {
                    seq: trials.len(),
                    target,
                    workload,
                    rep,
                    warmup: is_warmup,
                });
            }
        }
    }
    Ok(Plan {
        targets,
        repetitions,
        warmup,
        auto,
        trials,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn scenario() -> Scenario {
        let text = r#"
name = "t"
repetitions = 2
warmup = 1
[[target]]
name = "a"
kind = "native"
[[target]]
name = "b"
kind = "native"
[[workload]]
kind = "boot"
"#;
        crate::scenario::parse(Path::new("t.toml"), text).unwrap()
    }

    #[test]
    fn warmups_come_first_and_targets_interleave() {
        let plan = build(&scenario(), &Overrides::default()).unwrap();
        let order: Vec<(usize, u32, bool)> = plan.trials.iter().map(|t| (t.target, t.rep, t.warmup)).collect();
        assert_eq!(
            order,
            vec![
                (0, 0, true),
                (1, 0, true),
                (0, 0, false),
                (1, 0, false),
                (0, 1, false),
                (1, 1, false)
            ]
        );
        assert!(plan.trials.iter().enumerate().all(|(i, t)| t.seq == i));
    }

    #[test]
    fn overrides_change_counts_and_filter_targets() {
        let o = Overrides {
            repetitions: Some(3),
            warmup: Some(0),
            only: vec!["b".into()],
        };
        let plan = build(&scenario(), &o).unwrap();
        assert_eq!(plan.targets, vec![1]);
        assert_eq!(plan.trials.len(), 3);
        assert!(plan.trials.iter().all(|t| t.target == 1 && !t.warmup));
    }

    #[test]
    fn unknown_only_names_are_errors() {
        let o = Overrides {
            only: vec!["zz".into()],
            ..Default::default()
        };
        let err = build(&scenario(), &o).unwrap_err();
        assert!(err.contains("zz") && err.contains("a, b"), "{err}");
    }
}

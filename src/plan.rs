//! Scenario → the ordered list of trials. Pure.
//!
//! Targets are interleaved in rounds (rep 0 of every target, then rep 1,
//! ...) rather than run one after the other, so slow drift on the host
//! (thermal state, page cache, a background job) lands on every target alike
//! instead of on whichever ran last. Within each round the targets run in a
//! seeded random order, so the carry-over of one trial (an engine's
//! asynchronous cleanup, unlinking a large image) does not always land on
//! the same successor; the seed is recorded, so the order can be repeated.

use crate::scenario::Scenario;
use rand::seq::SliceRandom;
use rand::SeedableRng;

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
    /// The seed of the order within rounds; `None` draws one.
    pub order_seed: Option<u64>,
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
    /// The seed of the order of targets within each round.
    pub order_seed: u64,
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
    let order_seed = overrides.order_seed.unwrap_or_else(rand::random);
    let mut rng = rand::rngs::StdRng::seed_from_u64(order_seed);
    let mut trials = Vec::new();
    for workload in 0..scenario.workloads.len() {
        let passes = (0..warmup).map(|r| (r, true)).chain((0..repetitions).map(|r| (r, false)));
        for (rep, is_warmup) in passes {
            let mut round = targets.clone();
            round.shuffle(&mut rng);
            for target in round {
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
        order_seed,
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
    fn warmups_come_first_and_every_round_has_every_target() {
        let plan = build(&scenario(), &Overrides::default()).unwrap();
        let rounds: Vec<(u32, bool)> = plan.trials.chunks(2).map(|r| (r[0].rep, r[0].warmup)).collect();
        assert_eq!(rounds, vec![(0, true), (0, false), (1, false)]);
        for round in plan.trials.chunks(2) {
            let mut targets: Vec<usize> = round.iter().map(|t| t.target).collect();
            targets.sort();
            assert_eq!(targets, vec![0, 1]);
            assert!(round.iter().all(|t| (t.rep, t.warmup) == (round[0].rep, round[0].warmup)));
        }
        assert!(plan.trials.iter().enumerate().all(|(i, t)| t.seq == i));
    }

    #[test]
    fn the_order_within_rounds_follows_the_seed() {
        let order = |seed: u64| {
            let o = Overrides {
                repetitions: Some(40),
                order_seed: Some(seed),
                ..Default::default()
            };
            let plan = build(&scenario(), &o).unwrap();
            assert_eq!(plan.order_seed, seed);
            plan.trials.iter().map(|t| t.target).collect::<Vec<_>>()
        };
        assert_eq!(order(7), order(7), "the same seed repeats the order");
        assert_ne!(order(7), order(8));
        let firsts: Vec<usize> = order(7).chunks(2).map(|r| r[0]).collect();
        assert!(firsts.contains(&0) && firsts.contains(&1), "both targets lead some rounds");
    }

    #[test]
    fn overrides_change_counts_and_filter_targets() {
        let o = Overrides {
            repetitions: Some(3),
            warmup: Some(0),
            only: vec!["b".into()],
            ..Default::default()
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

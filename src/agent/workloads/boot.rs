//! The boot workload: nothing to do. The `ready` line the agent printed
//! before any workload is the measurement; the host times it. In a VM two of
//! its durations come from the guest's clock (`init_ns` and the guest
//! kernel's `boottime_ns`), so there they must pass the clock rule like any
//! timed region.

use super::params::{read, ParamSpec};
use super::{Metrics, Params, Workload};

pub struct Boot;

impl Workload for Boot {
    fn name(&self) -> &'static str {
        "boot"
    }

    fn params(&self) -> &'static [ParamSpec] {
        &[]
    }

    fn run(&self, params: &Params, env: &super::Env) -> Result<Metrics, super::WorkloadError> {
        read(params, "boot", &[])?;
        if let Some(startup) = env.startup {
            env.clock
                .check("init", "the agent's start-up before its ready line", startup.init_ns as f64)?;
            env.clock
                .check("kernel", "the guest kernel's boot up to init", startup.boottime_ns as f64)?;
        }
        Ok(Metrics::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::clock::Clock;
    use crate::agent::workloads::{Env, Startup};

    #[test]
    fn a_start_up_shorter_than_the_clock_can_time_fails() {
        let env = Env {
            clock: Clock {
                res_ns: Some(4_000_000),
                source: Some("jiffies".into()),
            },
            startup: Some(Startup {
                init_ns: 12_000_750,
                boottime_ns: 2_000_000_000,
            }),
            ..Default::default()
        };
        let e = Boot.run(&Params::new(), &env).unwrap_err().to_string();
        assert!(e.contains("timed region init") && e.contains("jiffies"), "{e}");
        let fine = Env {
            clock: Clock {
                res_ns: Some(30),
                source: Some("tsc".into()),
            },
            ..env
        };
        assert!(Boot.run(&Params::new(), &fine).unwrap().is_empty());
    }
}

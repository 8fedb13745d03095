//! The boot workload: nothing to do. The `ready` line the agent printed
//! before any workload is the measurement; the host times it.

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

    fn run(&self, params: &Params, _env: &super::Env) -> Result<Metrics, super::WorkloadError> {
        read(params, "boot", &[])?;
        Ok(Metrics::new())
    }
}

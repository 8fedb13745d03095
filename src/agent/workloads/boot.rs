//! The boot workload: nothing to do. The `ready` line the agent printed
//! before any workload is the measurement; the host times it.

use super::{Metrics, Params, Workload};

pub struct Boot;

impl Workload for Boot {
    fn name(&self) -> &'static str {
        "boot"
    }

    fn run(&self, params: &Params) -> Result<Metrics, String> {
        if let Some(key) = params.keys().next() {
            return Err(format!("the boot workload takes no parameters (got `{key}`)"));
        }
        Ok(Metrics::new())
    }
}

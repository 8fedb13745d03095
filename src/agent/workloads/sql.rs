//! SQL: MariaDB in the target; vmbench's client on the host (`load::sql`)
//! runs sysbench-like point selects and a read/write mix. See `serve.rs`.

use super::params::{read, ParamSpec};
use super::{Env, Metrics, Params, Workload, WorkloadError};
use crate::agent::servers::mariadb::{MariaDb, PARAMS};

pub struct Sql;

impl Workload for Sql {
    fn name(&self) -> &'static str {
        "sql"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, params: &Params, env: &Env) -> Result<Metrics, WorkloadError> {
        read(params, "sql", PARAMS)?;
        super::serve::run(&MariaDb, params, env)
    }
}

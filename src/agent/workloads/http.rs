//! HTTP: nginx in the target serves a static file; vmbench's load
//! generator on the host (`load::http`) measures requests/s and latency,
//! closed loop and, with a `rate`, open loop. See `serve.rs`.

use super::params::{read, ParamSpec};
use super::{Env, Metrics, Params, Workload, WorkloadError};
use crate::agent::servers::nginx::Nginx;

pub struct Http;

pub const PARAMS: &[ParamSpec] = &[
    ParamSpec {
        name: "duration_s",
        default: 10,
        min: 1,
        max: 3600,
        doc: "seconds of each timed load phase",
    },
    ParamSpec {
        name: "warmup_s",
        default: 2,
        min: 0,
        max: 600,
        doc: "seconds of load before each timed phase, not recorded",
    },
    ParamSpec {
        name: "connections",
        default: 16,
        min: 1,
        max: 10_000,
        doc: "keep-alive connections of the load generator",
    },
    ParamSpec {
        name: "client_threads",
        default: 1,
        min: 1,
        max: 256,
        doc: "OS threads of the load generator (on vmbench's CPUs)",
    },
    ParamSpec {
        name: "body_bytes",
        default: 1024,
        min: 0,
        max: 1 << 30,
        doc: "size of the static file nginx serves",
    },
    ParamSpec {
        name: "rate",
        default: 0,
        min: 0,
        max: 10_000_000,
        doc: "requests/s of an open-loop phase after the closed loop (0: none)",
    },
    ParamSpec {
        name: "reference",
        default: 0,
        min: 0,
        max: 1,
        doc: "1: also run wrk against the same server, before and after the closed loop",
    },
];

impl Workload for Http {
    fn name(&self) -> &'static str {
        "http"
    }

    fn params(&self) -> &'static [ParamSpec] {
        PARAMS
    }

    fn run(&self, params: &Params, env: &Env) -> Result<Metrics, WorkloadError> {
        read(params, "http", PARAMS)?;
        super::serve::run(&Nginx, params, env)
    }
}

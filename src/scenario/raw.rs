//! The scenario file exactly as TOML gives it: every value with its span so
//! validation can point at the line. Only `validate` reads these.

use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    pub name: Option<Spanned<String>>,
    pub description: Option<Spanned<String>>,
    pub repetitions: Option<Spanned<toml::Value>>,
    pub warmup: Option<Spanned<toml::Value>>,
    pub min_repetitions: Option<Spanned<toml::Value>>,
    pub max_repetitions: Option<Spanned<toml::Value>>,
    pub target_cov: Option<Spanned<toml::Value>>,
    pub timeout_s: Option<Spanned<toml::Value>>,
    pub cpuset: Option<Spanned<String>>,
    pub accounting: Option<Spanned<String>>,
    #[serde(default)]
    pub guest: Vec<Spanned<RawGuest>>,
    #[serde(default)]
    pub target: Vec<Spanned<RawTarget>>,
    #[serde(default)]
    pub workload: Vec<Spanned<RawWorkload>>,
}

/// One `[[guest]]`: a guest system and where it comes from (one source).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawGuest {
    pub name: Option<Spanned<String>>,
    pub ready: Option<Spanned<RawReady>>,
    pub rootfs: Option<Spanned<RawRootfs>>,
    pub image: Option<Spanned<String>>,
    pub dockerfile: Option<Spanned<String>>,
    pub image_archive: Option<Spanned<String>>,
    pub init: Option<Spanned<String>>,
}

/// `ready = { tcp = 80 }`, `{ console = "regex" }` or `{ http = "/", port = 80, status = 200 }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawReady {
    pub tcp: Option<Spanned<i64>>,
    pub console: Option<Spanned<String>>,
    pub http: Option<Spanned<String>>,
    pub port: Option<Spanned<i64>>,
    pub status: Option<Spanned<i64>>,
}

/// `rootfs = { distro = ..., suite = ..., packages = [...] }`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRootfs {
    pub distro: Option<Spanned<String>>,
    pub suite: Option<Spanned<String>>,
    pub packages: Option<Spanned<Vec<String>>>,
    pub mirror: Option<Spanned<String>>,
}

/// One `[[target]]`: a flat table; which keys apply depends on `kind`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub name: Option<Spanned<String>>,
    pub kind: Option<Spanned<String>>,
    pub optional: Option<Spanned<bool>>,
    // vm and container
    pub guest: Option<Spanned<String>>,
    // vm
    pub backend: Option<Spanned<String>>,
    pub machine: Option<Spanned<String>>,
    pub accel: Option<Spanned<String>>,
    pub vcpus: Option<Spanned<toml::Value>>,
    pub kernel: Option<Spanned<String>>,
    pub kernel_args: Option<Spanned<Vec<String>>>,
    pub qemu: Option<Spanned<String>>,
    pub uri: Option<Spanned<String>>,
    pub boot: Option<Spanned<String>>,
    pub sandbox: Option<Spanned<bool>>,
    pub run_as: Option<Spanned<String>>,
    // vm and container
    pub memory_mib: Option<Spanned<toml::Value>>,
    // container
    pub engine: Option<Spanned<String>>,
    pub runtime: Option<Spanned<String>>,
    pub cpus: Option<Spanned<toml::Value>>,
    pub host: Option<Spanned<String>>,
    pub pids_limit: Option<Spanned<toml::Value>>,
    pub network: Option<Spanned<String>>,
    pub storage: Option<Spanned<String>>,
    // native
    pub agent: Option<Spanned<String>>,
}

/// One `[[workload]]`: its kind plus the workload's own parameters.
#[derive(Debug, Deserialize)]
pub struct RawWorkload {
    pub kind: Option<Spanned<String>>,
    #[serde(flatten)]
    pub params: BTreeMap<String, toml::Value>,
}

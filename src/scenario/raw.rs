//! The scenario file exactly as TOML gives it: every value with its span so
//! validation can point at the line. Only `validate` reads these.

use schemars::JsonSchema;
use serde::Deserialize;
use std::collections::BTreeMap;
use toml::Spanned;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawScenario {
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub description: Option<Spanned<String>>,
    #[schemars(with = "Option<NumberOrWord>")]
    pub repetitions: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<NumberOrWord>")]
    pub warmup: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<NumberOrWord>")]
    pub min_repetitions: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<NumberOrWord>")]
    pub max_repetitions: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<NumberOrWord>")]
    pub target_cov: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<NumberOrWord>")]
    pub timeout_s: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<String>")]
    pub cpuset: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub accounting: Option<Spanned<String>>,
    #[serde(default)]
    #[schemars(with = "Vec<RawGuest>")]
    pub guest: Vec<Spanned<RawGuest>>,
    #[serde(default)]
    #[schemars(with = "Vec<RawTarget>")]
    pub target: Vec<Spanned<RawTarget>>,
    #[serde(default)]
    #[schemars(with = "Vec<RawWorkload>")]
    pub workload: Vec<Spanned<RawWorkload>>,
}

/// One `[[guest]]`: a guest system and where it comes from (one source).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGuest {
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    #[schemars(with = "Option<RawReady>")]
    pub ready: Option<Spanned<RawReady>>,
    #[schemars(with = "Option<RawRootfs>")]
    pub rootfs: Option<Spanned<RawRootfs>>,
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub dockerfile: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub image_archive: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub disk: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub init: Option<Spanned<String>>,
}

/// `ready = { tcp = 80 }`, `{ console = "regex" }` or `{ http = "/", port = 80, status = 200 }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawReady {
    #[schemars(with = "Option<i64>")]
    pub tcp: Option<Spanned<i64>>,
    #[schemars(with = "Option<String>")]
    pub console: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub http: Option<Spanned<String>>,
    #[schemars(with = "Option<i64>")]
    pub port: Option<Spanned<i64>>,
    #[schemars(with = "Option<i64>")]
    pub status: Option<Spanned<i64>>,
}

/// `rootfs = { distro = ..., suite = ..., packages = [...] }`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRootfs {
    #[schemars(with = "Option<String>")]
    pub distro: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub suite: Option<Spanned<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub packages: Option<Spanned<Vec<String>>>,
    #[schemars(with = "Option<String>")]
    pub mirror: Option<Spanned<String>>,
}

/// One `[[target]]`: a flat table; which keys apply depends on `kind`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub kind: Option<Spanned<String>>,
    #[schemars(with = "Option<bool>")]
    pub optional: Option<Spanned<bool>>,
    // vm and container
    #[schemars(with = "Option<String>")]
    pub guest: Option<Spanned<String>>,
    // vm
    #[schemars(with = "Option<String>")]
    pub backend: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub machine: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub accel: Option<Spanned<String>>,
    #[schemars(with = "Option<NumberOrWord>")]
    pub vcpus: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<String>")]
    pub kernel: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub initrd: Option<Spanned<String>>,
    #[schemars(with = "Option<Vec<String>>")]
    pub kernel_args: Option<Spanned<Vec<String>>>,
    #[schemars(with = "Option<String>")]
    pub qemu: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub uri: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub boot: Option<Spanned<String>>,
    #[schemars(with = "Option<bool>")]
    pub sandbox: Option<Spanned<bool>>,
    #[schemars(with = "Option<String>")]
    pub run_as: Option<Spanned<String>>,
    // vm and container
    #[schemars(with = "Option<NumberOrWord>")]
    pub memory_mib: Option<Spanned<toml::Value>>,
    // container
    #[schemars(with = "Option<String>")]
    pub engine: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub runtime: Option<Spanned<String>>,
    #[schemars(with = "Option<NumberOrWord>")]
    pub cpus: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
    #[schemars(with = "Option<NumberOrWord>")]
    pub pids_limit: Option<Spanned<toml::Value>>,
    #[schemars(with = "Option<String>")]
    pub network: Option<Spanned<String>>,
    #[schemars(with = "Option<String>")]
    pub storage: Option<Spanned<String>>,
    // native
    #[schemars(with = "Option<String>")]
    pub agent: Option<Spanned<String>>,
}

/// One `[[workload]]`: its kind plus the workload's own parameters.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct RawWorkload {
    #[schemars(with = "Option<String>")]
    pub kind: Option<Spanned<String>>,
    /// The workload's own parameters (see scenarios/README.md): numbers.
    #[serde(flatten)]
    #[schemars(with = "BTreeMap<String, NumberOrWord>")]
    pub params: BTreeMap<String, toml::Value>,
}

/// A number, or a word some keys take instead (`repetitions = "auto"`).
#[derive(JsonSchema)]
#[serde(untagged)]
#[allow(dead_code)] // only describes the schema
pub enum NumberOrWord {
    Integer(i64),
    Number(f64),
    Word(String),
}

/// The JSON Schema of a scenario file (for editors: Taplo reads it), from
/// the types the file is read into.
pub fn scenario_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(RawScenario)).expect("a schema is JSON")
}

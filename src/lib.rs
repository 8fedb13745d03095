//! vmbench: what does a VM cost compared with a container, and both compared
//! with the bare host?
//!
//! Data flows one way: scenario → plan → runner (backends, console) →
//! `samples.jsonl` + `run.json` → stats → reports. See `docs/design.md`.

pub mod agent;
pub mod protocol;

// The one percentile definition, shared by the agent and the harness. The
// agent is built without the harness and so without the rest of `stats`: it
// compiles the file alone. With the harness it is `stats::percentile`, so
// both paths name the same function.
#[cfg(not(feature = "harness"))]
#[path = "stats/percentile.rs"]
pub mod percentile;
#[cfg(feature = "harness")]
pub use stats::percentile;

#[cfg(feature = "harness")]
pub mod backend;
#[cfg(feature = "harness")]
pub mod cache;
#[cfg(feature = "harness")]
pub mod charts;
#[cfg(feature = "harness")]
pub mod cli;
#[cfg(feature = "harness")]
pub mod compare;
#[cfg(feature = "harness")]
pub mod console;
#[cfg(feature = "harness")]
pub mod disk_image;
#[cfg(feature = "harness")]
pub mod elf;
#[cfg(feature = "harness")]
pub mod fault;
#[cfg(feature = "harness")]
pub mod guest;
#[cfg(feature = "harness")]
pub mod history;
#[cfg(feature = "harness")]
pub mod host;
#[cfg(feature = "harness")]
pub mod load;
#[cfg(feature = "harness")]
pub mod metric;
#[cfg(feature = "harness")]
pub mod output;
#[cfg(feature = "harness")]
pub mod plan;
#[cfg(feature = "harness")]
pub mod publish;
#[cfg(feature = "harness")]
pub mod redact;
#[cfg(feature = "harness")]
pub mod report;
#[cfg(feature = "harness")]
pub mod rundir;
#[cfg(feature = "harness")]
pub mod runner;
#[cfg(feature = "harness")]
pub mod scenario;
#[cfg(feature = "harness")]
pub mod stats;
#[cfg(feature = "harness")]
pub mod xml;

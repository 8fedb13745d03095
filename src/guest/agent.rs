//! The static `vmbench-agent`, embedded in the harness at build time (see
//! `build.rs`) and written into the cache when a target needs it as a file.

use super::{cache, sha256_hex};
use anyhow::{Context, Result};
use std::path::PathBuf;

/// The agent's bytes, as built by the nested static build.
pub fn bytes() -> &'static [u8] {
    include_bytes!(env!("VMBENCH_AGENT_BIN"))
}

/// SHA-256 of the embedded agent; names every artifact built from it.
pub fn sha256() -> String {
    sha256_hex(bytes())
}

/// The agent as an executable file in the cache, written once per version.
pub fn path() -> Result<PathBuf> {
    let sha = sha256();
    let path = cache::dir().join("agent").join(&sha[..16]).join("vmbench-agent");
    let current = std::fs::read(&path).ok().map(|b| sha256_hex(&b));
    if current.as_deref() != Some(sha.as_str()) {
        cache::write_atomic(&path, bytes(), 0o755).with_context(|| format!("writing the agent to {}", path.display()))?;
    }
    Ok(path)
}

/// The program a target runs as its agent: vmbench's own, or one the
/// scenario names with `agent = "PATH"` (it must speak the agent's
/// protocol: a modified agent, or a hostile guest for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Agent {
    bytes: std::borrow::Cow<'static, [u8]>,
    sha256: String,
}

impl Agent {
    /// vmbench's own agent.
    pub fn embedded() -> Agent {
        Agent {
            bytes: std::borrow::Cow::Borrowed(bytes()),
            sha256: sha256(),
        }
    }

    /// The program at `path` when given, else vmbench's own.
    pub fn from_file(path: Option<&std::path::Path>) -> Result<Agent> {
        let Some(path) = path else {
            return Ok(Agent::embedded());
        };
        let bytes = std::fs::read(path).with_context(|| format!("reading the agent program {}", path.display()))?;
        Ok(Agent {
            sha256: sha256_hex(&bytes),
            bytes: std::borrow::Cow::Owned(bytes),
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of the program; names every artifact built from it.
    pub fn sha256(&self) -> &str {
        &self.sha256
    }
}

pub use crate::elf::{linkage, Linkage};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_agent_is_static() {
        assert_eq!(linkage(bytes()), Linkage::Static);
    }
}

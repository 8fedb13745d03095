//! `vmbench init [DIR]`: a commented starter scenario to edit.

use std::path::PathBuf;

/// The starter: three targets (native, container, VM) and the boot workload,
/// with the other workloads commented out. A test validates it.
const STARTER: &str = include_str!("starter.toml");

/// The file name the starter is written under.
const FILE_NAME: &str = "scenario.toml";

#[derive(Debug, clap::Args)]
pub struct InitArgs {
    /// Where to write scenario.toml (created if absent; an existing scenario.toml is left alone).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

pub fn exec(args: InitArgs) -> anyhow::Result<i32> {
    let path = args.dir.join(FILE_NAME);
    if path.exists() {
        eprintln!("error: {} exists; vmbench init does not overwrite it", path.display());
        return Ok(super::EXIT_INPUT);
    }
    std::fs::create_dir_all(&args.dir).map_err(|e| anyhow::anyhow!("creating {}: {e}", args.dir.display()))?;
    // create_new: a file that appeared since the check is not overwritten either.
    let mut file = match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
        Ok(file) => file,
        Err(e) => {
            eprintln!("error: {}: {e}", path.display());
            return Ok(super::EXIT_INPUT);
        }
    };
    std::io::Write::write_all(&mut file, STARTER.as_bytes())?;
    println!("wrote {}", path.display());
    println!("next: vmbench validate {0} && vmbench run {0}", path.display());
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_starter_validates_with_its_commented_workloads_too() {
        let s = crate::scenario::parse(std::path::Path::new(FILE_NAME), STARTER).unwrap();
        assert_eq!(s.targets.len(), 3);
        assert_eq!(s.workloads.len(), 1);
        // Uncommenting the workloads, as the comment suggests, still validates.
        let all = STARTER.replace("# [[workload]]", "[[workload]]").replace("# kind = ", "kind = ");
        let s = crate::scenario::parse(std::path::Path::new(FILE_NAME), &all).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(s.workloads.len(), 6);
    }

    #[test]
    fn init_writes_the_starter_once_and_never_overwrites() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("new");
        assert_eq!(exec(InitArgs { dir: sub.clone() }).unwrap(), 0);
        let written = std::fs::read_to_string(sub.join(FILE_NAME)).unwrap();
        assert_eq!(written, STARTER);
        std::fs::write(sub.join(FILE_NAME), "mine").unwrap();
        assert_eq!(exec(InitArgs { dir: sub.clone() }).unwrap(), super::super::EXIT_INPUT);
        assert_eq!(std::fs::read_to_string(sub.join(FILE_NAME)).unwrap(), "mine");
    }
}

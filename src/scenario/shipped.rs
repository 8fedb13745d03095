//! The scenarios shipped in `scenarios/`, built into vmbench so that
//! `vmbench run boot` works from any directory and after `cargo install`.
//! A file on disk always wins: `vmbench run boot` reads `./boot` if there is
//! one, and `vmbench run scenarios/boot.toml` reads that file.

use super::{Scenario, ScenarioError};
use std::path::Path;

/// Name (the file name without `.toml`) and text of each built-in scenario.
/// `my-image.toml` is not here: it names a Dockerfile beside it, so it only
/// makes sense as a file to copy.
const SHIPPED: &[(&str, &str)] = &[
    ("boot", include_str!("../../scenarios/boot.toml")),
    ("boot-q35", include_str!("../../scenarios/boot-q35.toml")),
    ("firmware", include_str!("../../scenarios/firmware.toml")),
    ("full-os", include_str!("../../scenarios/full-os.toml")),
    ("kernels", include_str!("../../scenarios/kernels.toml")),
    ("mysql", include_str!("../../scenarios/mysql.toml")),
    ("nginx", include_str!("../../scenarios/nginx.toml")),
    ("overhead", include_str!("../../scenarios/overhead.toml")),
    ("overhead-quick", include_str!("../../scenarios/overhead-quick.toml")),
    ("runtimes", include_str!("../../scenarios/runtimes.toml")),
    ("spectrum", include_str!("../../scenarios/spectrum.toml")),
];

/// Scenarios in `scenarios/` that are deliberately not built in.
#[cfg(test)]
const NOT_SHIPPED: &[&str] = &["my-image"];

/// The names of the built-in scenarios.
pub fn names() -> impl Iterator<Item = &'static str> {
    SHIPPED.iter().map(|(name, _)| *name)
}

/// The built-in scenario `arg` names (`boot` or `boot.toml`), if `arg` is a
/// bare name.
pub fn find(arg: &Path) -> Option<(&'static str, &'static str)> {
    let name = arg.to_str()?;
    let name = name.strip_suffix(".toml").unwrap_or(name);
    SHIPPED.iter().copied().find(|(n, _)| *n == name)
}

/// The path a built-in scenario is recorded and reported under.
pub fn path_of(name: &str) -> std::path::PathBuf {
    format!("built-in:{name}.toml").into()
}

/// Loads the scenario file `arg`, or when no such file exists and `arg` is
/// the name of a built-in scenario, that one.
pub fn load(arg: &Path) -> Result<Scenario, ScenarioError> {
    load_in(Path::new(""), arg)
}

/// [`load`] with relative paths taken from `cwd` (`""`: the process's).
fn load_in(cwd: &Path, arg: &Path) -> Result<Scenario, ScenarioError> {
    let file = cwd.join(arg);
    if !file.exists() {
        if let Some((name, text)) = find(arg) {
            return super::parse(&path_of(name), text);
        }
    }
    super::load(&file).map_err(|mut e| {
        if e.line == 0 && !file.exists() {
            let names: Vec<&str> = names().collect();
            e.message = format!("{} (nor is it a built-in scenario: {})", e.message, names.join(", "));
        }
        e
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_scenario_file_is_built_in_or_listed_as_not_and_the_copies_are_current() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scenarios");
        let mut on_disk = Vec::new();
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                on_disk.push(path.file_stem().unwrap().to_str().unwrap().to_string());
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = names().chain(NOT_SHIPPED.iter().copied()).map(String::from).collect();
        listed.sort();
        assert_eq!(on_disk, listed);
        for (name, text) in SHIPPED {
            assert_eq!(std::fs::read_to_string(dir.join(format!("{name}.toml"))).unwrap(), *text);
        }
    }

    #[test]
    fn a_built_in_scenario_loads_by_name_from_anywhere() {
        let s = load(Path::new("boot")).unwrap();
        assert_eq!(s.name, "boot");
        assert_eq!(s.path, Path::new("built-in:boot.toml"));
        assert_eq!(load(Path::new("boot.toml")).unwrap().name, "boot");
        for name in names() {
            match load(Path::new(name)) {
                Ok(_) => {}
                // spectrum.toml has a libvirt target: without the feature
                // that is the error this build must give.
                Err(e) if !cfg!(feature = "libvirt") && e.key.ends_with(".backend") => {
                    assert!(e.message.contains("built without libvirt support"), "{name}: {e}")
                }
                Err(e) => panic!("{name}: {e}"),
            }
        }
    }

    #[test]
    fn a_file_on_disk_wins_and_an_unknown_name_lists_the_built_in_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mine = "name = \"mine\"\n[[target]]\nname = \"n\"\nkind = \"native\"\n[[workload]]\nkind = \"boot\"\n";
        std::fs::write(dir.path().join("boot"), mine).unwrap();
        assert_eq!(load_in(dir.path(), Path::new("boot")).unwrap().name, "mine");
        assert_eq!(load_in(dir.path(), Path::new("boot.toml")).unwrap().name, "boot");
        let e = load(Path::new("no-such-scenario")).unwrap_err();
        assert!(e.to_string().contains("nor is it a built-in scenario: boot, boot-q35"), "{e}");
    }
}

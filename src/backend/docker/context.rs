//! A build context from a directory, as the `docker build` client makes it:
//! a tar of the directory without what its `.dockerignore` excludes (the
//! Dockerfile and the `.dockerignore` itself are always sent). Symbolic
//! links are sent as links. Pure apart from reading the directory.

use anyhow::{Context, Result};
use std::path::Path;

/// The context tar of `dir`, whose Dockerfile is `dockerfile` (a name
/// inside `dir`).
pub fn from_dir(dir: &Path, dockerfile: &str) -> Result<Vec<u8>> {
    let ignore = match std::fs::read_to_string(dir.join(".dockerignore")) {
        Ok(text) => Ignore::parse(&text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ignore::default(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.join(".dockerignore").display())),
    };
    let mut tar = tar::Builder::new(Vec::new());
    tar.follow_symlinks(false);
    let mut stack = vec![String::new()];
    while let Some(rel_dir) = stack.pop() {
        let full_dir = dir.join(&rel_dir);
        let mut entries: Vec<_> = std::fs::read_dir(&full_dir)
            .with_context(|| format!("reading {}", full_dir.display()))?
            .collect::<std::io::Result<_>>()
            .with_context(|| format!("reading {}", full_dir.display()))?;
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if rel_dir.is_empty() { name } else { format!("{rel_dir}/{name}") };
            let always = rel == dockerfile || rel == ".dockerignore";
            let excluded = !always && ignore.excludes(&rel);
            let is_dir = entry.file_type()?.is_dir();
            if !excluded {
                tar.append_path_with_name(entry.path(), &rel)
                    .with_context(|| format!("adding {} to the build context", entry.path().display()))?;
            }
            // An excluded directory may still hold a file a `!` pattern takes back.
            if is_dir && (!excluded || ignore.has_exceptions()) {
                stack.push(rel);
            }
        }
    }
    Ok(tar.into_inner()?)
}

/// The patterns of a `.dockerignore`, in order; the last one that matches a
/// path (or one of its parent directories) decides, and a `!` pattern
/// takes a path back.
#[derive(Debug, Default)]
pub struct Ignore {
    patterns: Vec<(bool, Vec<String>)>,
}

impl Ignore {
    pub fn parse(text: &str) -> Self {
        let patterns = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|line| {
                let (exception, pattern) = match line.strip_prefix('!') {
                    Some(rest) => (true, rest.trim()),
                    None => (false, line),
                };
                let segments = pattern
                    .split('/')
                    .filter(|s| !s.is_empty() && *s != ".")
                    .map(str::to_string)
                    .collect();
                (exception, segments)
            })
            .collect();
        Ignore { patterns }
    }

    fn has_exceptions(&self) -> bool {
        self.patterns.iter().any(|(exception, _)| *exception)
    }

    /// Whether `path` (relative, `/`-separated) is left out of the context.
    pub fn excludes(&self, path: &str) -> bool {
        let segments: Vec<&str> = path.split('/').collect();
        let mut excluded = false;
        for (exception, pattern) in &self.patterns {
            let hit = (1..=segments.len()).any(|n| glob(pattern, &segments[..n]));
            if hit {
                excluded = !exception;
            }
        }
        excluded
    }
}

/// Segment-wise match where `**` stands for any number of directories.
fn glob(pattern: &[String], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((first, rest)) if first == "**" => (0..=path.len()).any(|skip| glob(rest, &path[skip..])),
        Some((first, rest)) => path.split_first().is_some_and(|(p, more)| segment(first, p) && glob(rest, more)),
    }
}

/// `*` (any run of characters) and `?` (one character) within one segment.
fn segment(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dockerignore_patterns_match_as_docker_reads_them() {
        let ignore = Ignore::parse("# build output\ntarget\n*.log\n**/cache\n/secret/*.key\n!keep.log\n");
        assert!(ignore.excludes("target"));
        assert!(ignore.excludes("target/debug/app"), "a parent directory matches");
        assert!(ignore.excludes("x.log") && !ignore.excludes("keep.log"), "the last match decides");
        assert!(!ignore.excludes("logs/x.log"), "`*` stays within one directory");
        assert!(ignore.excludes("a/b/cache/f") && ignore.excludes("cache"));
        assert!(ignore.excludes("secret/id.key") && !ignore.excludes("secret/id.pub"));
        assert!(!ignore.excludes("src/main.rs"));
    }

    #[test]
    fn the_context_leaves_out_what_dockerignore_says_but_never_the_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::write(dir.path().join(".dockerignore"), "Dockerfile\nbig\n*.tmp\n!big/wanted\n").unwrap();
        std::fs::create_dir_all(dir.path().join("big/sub")).unwrap();
        std::fs::write(dir.path().join("big/sub/blob"), "x").unwrap();
        std::fs::write(dir.path().join("big/wanted"), "y").unwrap();
        std::fs::write(dir.path().join("app.conf"), "z").unwrap();
        std::fs::write(dir.path().join("a.tmp"), "z").unwrap();
        std::os::unix::fs::symlink("app.conf", dir.path().join("link")).unwrap();
        let bytes = from_dir(dir.path(), "Dockerfile").unwrap();
        let mut names = Vec::new();
        for entry in tar::Archive::new(bytes.as_slice()).entries().unwrap() {
            let entry = entry.unwrap();
            if entry.header().entry_type().is_symlink() {
                assert_eq!(entry.link_name().unwrap().unwrap(), Path::new("app.conf"));
            }
            names.push(entry.path().unwrap().display().to_string());
        }
        names.sort();
        assert_eq!(names, [".dockerignore", "Dockerfile", "app.conf", "big/wanted", "link"]);
    }
}

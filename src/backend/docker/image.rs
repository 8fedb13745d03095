//! The container image: `FROM scratch` plus the static agent, built locally
//! through the Engine API and tagged with the agent's hash, so it is built
//! once and reused. Nothing is pulled.

use super::spec::AGENT_PATH;
use crate::rundir::ImageFacts;
use anyhow::{bail, Context, Result};
use bollard::query_parameters::BuildImageOptionsBuilder;
use bollard::Docker;
use futures_util::StreamExt;
use std::path::{Path, PathBuf};

/// Repository of vmbench's images; the tag is the agent hash.
pub const REPOSITORY: &str = "vmbench/agent";

pub fn tag_for(agent_sha256: &str) -> String {
    format!("{REPOSITORY}:{}", &agent_sha256[..16])
}

/// The Dockerfile of the agent image.
pub fn dockerfile(agent_sha256: &str) -> String {
    format!("FROM scratch\nCOPY vmbench-agent {AGENT_PATH}\nLABEL vmbench.agent.sha256=\"{agent_sha256}\"\nENTRYPOINT [\"{AGENT_PATH}\"]\n")
}

/// A build context tar holding the Dockerfile and the agent.
pub fn build_context(agent: &[u8], agent_sha256: &str) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, data, mode) in [
        ("Dockerfile", dockerfile(agent_sha256).into_bytes(), 0o644),
        ("vmbench-agent", agent.to_vec(), 0o755),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, name, data.as_slice())?;
    }
    Ok(tar.into_inner()?)
}

/// Returns the image for `agent`, building it if the engine lacks it.
pub async fn ensure(docker: &Docker, agent: &[u8], agent_sha256: &str) -> Result<ImageFacts> {
    let tag = tag_for(agent_sha256);
    if let Ok(found) = docker.inspect_image(&tag).await {
        return Ok(facts(tag, found, true));
    }
    build_tagged(docker, tag.clone(), build_context(agent, agent_sha256)?)
        .await
        .with_context(|| format!("building image {tag}"))
}

/// Builds `context` (a tar with a `Dockerfile`, nothing pulled) as `tag`
/// and describes the image the engine then has.
pub(super) async fn build_tagged(docker: &Docker, tag: String, context: Vec<u8>) -> Result<ImageFacts> {
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .pull("false")
        .build();
    build(docker, options, context).await?;
    let built = docker
        .inspect_image(&tag)
        .await
        .with_context(|| format!("image {tag} was not there after its build"))?;
    Ok(facts(tag, built, false))
}

/// How many of a failed build's last output lines its error carries.
const BUILD_LOG_TAIL: usize = 15;

/// Runs one build through the Engine API. A failed build's error is the
/// engine's message followed by the build's last output lines.
pub(super) async fn build(docker: &Docker, options: bollard::query_parameters::BuildImageOptions, context: Vec<u8>) -> Result<()> {
    let mut stream = docker.build_image(options, None, Some(bollard::body_full(context.into())));
    let mut log = String::new();
    let tail = |log: &str| {
        let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(BUILD_LOG_TAIL)..].join("\n")
    };
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(e) => bail!("{}\nthe build's last lines:\n{}", engine_message(&e), tail(&log)),
        };
        if let Some(detail) = info.error_detail {
            bail!("{}\nthe build's last lines:\n{}", detail.message.unwrap_or_default(), tail(&log));
        }
        if let Some(line) = info.stream {
            log.push_str(&line);
        }
    }
    Ok(())
}

/// What the engine itself said, without bollard's wrapping.
pub(super) fn engine_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.trim().to_string(),
        bollard::errors::Error::DockerStreamError { error } => error.trim().to_string(),
        other => other.to_string(),
    }
}

/// Repository of imported guest root file systems; the tag is the tree's
/// cache key and the agent's hash.
pub const ROOTFS_REPOSITORY: &str = "vmbench/rootfs";

pub fn rootfs_tag(built: &crate::guest::rootfs::Built, agent_sha256: &str) -> String {
    format!("{ROOTFS_REPOSITORY}:{}-{}", &built.key[..16], &agent_sha256[..12])
}

/// How an engine is given the tar of a guest tree to import.
pub enum ImportFrom<'a> {
    /// In the request's body (`fromSrc=-`): Docker.
    Body,
    /// As a file the engine reads itself, written into this directory and
    /// removed after the import: Podman, whose compatible endpoint copies a
    /// body into `/var/tmp/api_load.tar*` and never removes the copy (a
    /// guest tree's size left behind on every import; podman#28531).
    File(&'a Path),
}

/// Returns the image of a guest's root file system (the same tree the VM
/// disk is made of), importing it through the Engine API (`docker import`)
/// if the engine lacks it.
pub async fn ensure_rootfs(
    docker: &Docker,
    built: &crate::guest::rootfs::Built,
    agent_sha256: &str,
    from: ImportFrom<'_>,
) -> Result<ImageFacts> {
    let tag = rootfs_tag(built, agent_sha256);
    if let Ok(found) = docker.inspect_image(&tag).await {
        return Ok(facts(tag, found, true));
    }
    // The whole reference as `repo`, which the API allows: Podman's
    // compatible import ignores a separate `tag` and names the image
    // `latest`, so it was never found under its tag.
    let options = |src: &str| {
        bollard::query_parameters::CreateImageOptionsBuilder::default()
            .from_src(src)
            .repo(&tag)
            .changes(vec![format!("LABEL vmbench.rootfs.key=\"{}\"", built.key)])
            .build()
    };
    let tree = built.tree.clone();
    match from {
        ImportFrom::Body => {
            let archive = tokio::task::spawn_blocking(move || archive(&tree, Vec::new()))
                .await
                .context("archiving the guest tree")??;
            let stream = docker.create_image(Some(options("-")), Some(bollard::body_full(archive.into())), None);
            finish_import(docker, tag, stream).await
        }
        ImportFrom::File(dir) => {
            let file = TempTar::new(dir, &tag)?;
            let path = file.path.clone();
            tokio::task::spawn_blocking(move || -> Result<()> {
                let out = std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
                archive(&tree, std::io::BufWriter::new(out))?
                    .into_inner()
                    .map_err(|e| e.into_error())
                    .and_then(|f| f.sync_all())
                    .with_context(|| format!("writing {}", path.display()))
            })
            .await
            .context("archiving the guest tree")??;
            let stream = docker.create_image(Some(options(&file.path.display().to_string())), None, None);
            // `file` is removed when this returns, imported or not.
            finish_import(docker, tag, stream).await
        }
    }
}

/// The guest tree as a tar written to `out`. Docker's importer rejects GNU
/// sparse entries (header type S), so none are made.
fn archive<W: std::io::Write>(tree: &Path, out: W) -> Result<W> {
    let mut tar = tar::Builder::new(out);
    tar.follow_symlinks(false);
    tar.sparse(false);
    tar.append_dir_all(".", tree)
        .with_context(|| format!("archiving {}", tree.display()))?;
    Ok(tar.into_inner()?)
}

async fn finish_import(
    docker: &Docker,
    tag: String,
    mut stream: impl futures_util::Stream<Item = Result<bollard::models::CreateImageInfo, bollard::errors::Error>> + Unpin,
) -> Result<ImageFacts> {
    while let Some(item) = stream.next().await {
        item.with_context(|| format!("importing image {tag}"))?;
    }
    let imported = docker
        .inspect_image(&tag)
        .await
        .with_context(|| format!("image {tag} was not there after its import"))?;
    Ok(facts(tag, imported, false))
}

/// A tar file for the engine to import, removed when dropped (an import
/// that fails or a vmbench that dies leaves it in the run's scratch
/// directory, which the next run's sweep removes).
struct TempTar {
    path: PathBuf,
}

impl TempTar {
    fn new(dir: &Path, tag: &str) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let name = tag.replace(['/', ':'], "-");
        Ok(TempTar {
            path: dir.join(format!("{name}.import.tar")),
        })
    }
}

impl Drop for TempTar {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Removes every image vmbench made for guests: imported root file systems
/// (`vmbench/rootfs`), builds of the user's Dockerfiles (`vmbench/build`) and
/// the user's images with the agent added (`vmbench/own`). The user's own
/// images are left alone. Returns how many tags were removed.
pub async fn remove_guest_images(docker: &Docker) -> Result<usize> {
    let mut removed = 0;
    for repository in [ROOTFS_REPOSITORY, super::own::BUILD_REPOSITORY, super::own::OWN_REPOSITORY] {
        let filters = std::collections::HashMap::from([("reference", vec![format!("{repository}:*")])]);
        let options = bollard::query_parameters::ListImagesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let images = docker.list_images(Some(options)).await.context("listing guest images")?;
        for image in images {
            // Podman names them `docker.io/<repository>:<tag>`.
            let ours = |t: &&String| {
                let t = t.strip_prefix("docker.io/").or_else(|| t.strip_prefix("localhost/")).unwrap_or(t);
                t.starts_with(&format!("{repository}:"))
            };
            for tag in image.repo_tags.iter().filter(ours) {
                docker
                    .remove_image(tag, None::<bollard::query_parameters::RemoveImageOptions>, None)
                    .await
                    .with_context(|| format!("removing image {tag}"))?;
                removed += 1;
            }
        }
    }
    Ok(removed)
}

pub(super) fn facts(tag: String, image: bollard::models::ImageInspect, reused: bool) -> ImageFacts {
    ImageFacts {
        tag,
        id: image.id.unwrap_or_default(),
        size_bytes: image.size.unwrap_or(0).max(0) as u64,
        reused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_context_holds_a_scratch_dockerfile_and_the_agent() {
        let sha = "0123456789abcdef0123456789abcdef";
        let bytes = build_context(b"\x7fELFagent", sha).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        let mut names = Vec::new();
        for entry in archive.entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut content = String::new();
            if name == "Dockerfile" {
                std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
                assert!(content.starts_with("FROM scratch\n"));
                assert!(content.contains("ENTRYPOINT [\"/vmbench-agent\"]"));
            } else {
                assert_eq!(entry.header().mode().unwrap(), 0o755);
            }
            names.push(name);
        }
        assert_eq!(names, ["Dockerfile", "vmbench-agent"]);
        assert_eq!(tag_for(sha), "vmbench/agent:0123456789abcdef");
    }
}

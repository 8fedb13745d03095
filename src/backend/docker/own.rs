//! The user's own container image as a guest: one already in the engine
//! (`image`), one built from a Dockerfile (`dockerfile`) or one loaded from
//! an archive (`image_archive`), all through the Engine API; nothing is
//! pulled by name. Targets run a derived image: the user's as its base,
//! the static agent (and, for systemd, the agent's unit) added on top,
//! built once per base image, agent and init and tagged by their hash, so
//! a later run reuses it.

use super::image::{build, build_tagged, engine_message, facts};
use crate::guest::rootfs::AgentFile;
use crate::rundir::{BaseImageFacts, GuestFacts, ImageFacts, LayerFacts};
use crate::scenario::{Engine, Guest, GuestInit, GuestSource};
use anyhow::{anyhow, bail, Context, Result};
use bollard::query_parameters::{BuildImageOptionsBuilder, ImportImageOptionsBuilder};
use bollard::Docker;
use futures_util::StreamExt;
use std::path::Path;
use std::time::Instant;

/// Repository of the images vmbench builds from the user's Dockerfiles; the
/// tag is a hash of the Dockerfile's path.
pub const BUILD_REPOSITORY: &str = "vmbench/build";
/// Repository of the derived images (the user's image plus the agent); the
/// tag is a hash of what makes them.
pub const OWN_REPOSITORY: &str = "vmbench/own";

/// The user's image found, built or loaded, and the derived image the
/// target runs, with the guest's facts (the base image's id, size and
/// layers).
pub async fn ensure(docker: &Docker, engine: Engine, guest: &Guest, agent: &[u8], agent_sha256: &str) -> Result<(ImageFacts, GuestFacts)> {
    let started = Instant::now();
    let (source, reference, made) = match &guest.source {
        GuestSource::Image(reference) => (reference.clone(), reference.clone(), false),
        GuestSource::Dockerfile(path) => (path.display().to_string(), build_dockerfile(docker, path).await?, true),
        GuestSource::ImageArchive(path) => (path.display().to_string(), load_archive(docker, engine, path).await?, true),
        GuestSource::Rootfs(_) | GuestSource::Disk(_) => bail!("guest `{}` is not a container image of your own", guest.name),
    };
    let build_ms = made.then(|| started.elapsed().as_secs_f64() * 1e3);
    let base = docker
        .inspect_image(&reference)
        .await
        .map_err(|e| not_in_engine(engine, &reference, &e))?;
    let id = base.id.clone().context("the engine reported an image without an id")?;
    let history = docker
        .image_history(&id)
        .await
        .with_context(|| format!("asking {engine} for the history of image {reference}"))?;
    let base_facts = BaseImageFacts {
        source,
        reference,
        id: id.clone(),
        size_bytes: base.size.unwrap_or(0).max(0) as u64,
        layers: history
            .into_iter()
            .rev()
            .map(|step| LayerFacts {
                // An imported layer has no command, only a comment ("Imported from -").
                created_by: if step.created_by.is_empty() {
                    step.comment
                } else {
                    step.created_by
                },
                size_bytes: step.size.max(0) as u64,
            })
            .collect(),
        build_ms,
    };
    let image = if guest.init == GuestInit::Image {
        // Run as it is: no agent to add.
        ImageFacts {
            tag: base_facts.reference.clone(),
            id: id.clone(),
            size_bytes: base_facts.size_bytes,
            reused: !made,
        }
    } else {
        ensure_derived(docker, &id, agent, agent_sha256, guest.init).await?
    };
    Ok((image, GuestFacts::own_image(guest, base_facts)))
}

/// The preflight error for a reference the engine does not have.
fn not_in_engine(engine: Engine, reference: &str, e: &bollard::errors::Error) -> anyhow::Error {
    anyhow!(
        "image `{reference}` is not in the {engine} engine ({}); vmbench never pulls images: put it there first \
         (`{cli} pull {reference}` where a registry is reachable, `{cli} build -t {reference} DIR`, `{cli} load -i FILE`), \
         or let vmbench build or load it with `dockerfile = \"PATH\"` or `image_archive = \"PATH\"` in the [[guest]]",
        engine_message(e),
        cli = engine.as_str()
    )
}

/// The tag vmbench gives the build of the Dockerfile at `path`.
pub fn build_tag(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let hash = crate::guest::sha256_hex(path.as_os_str().as_encoded_bytes());
    format!("{BUILD_REPOSITORY}:{}", &hash[..16])
}

/// Builds the Dockerfile at `path` with its directory as the context;
/// returns the tag of the image. A failed build is a preflight error with
/// the engine's message and the build's last lines.
async fn build_dockerfile(docker: &Docker, path: &Path) -> Result<String> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let file = path
        .file_name()
        .and_then(|n| n.to_str())
        .context("the Dockerfile's name is not UTF-8")?
        .to_string();
    let context = {
        let (dir, file) = (dir.clone(), file.clone());
        tokio::task::spawn_blocking(move || super::context::from_dir(&dir, &file))
            .await
            .context("packing the build context")??
    };
    // Built as `docker build` would, with nothing added (a label would
    // change the image), so the base is the image the user knows.
    let tag = build_tag(path);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile(&file)
        .t(&tag)
        .rm(true)
        .forcerm(true)
        .build();
    build(docker, options, context).await.with_context(|| {
        format!(
            "building {} failed; fix the Dockerfile (try it by hand: `docker build -f {} {}`), \
             and note that a FROM image the engine lacks must be pulled, which needs its registry",
            path.display(),
            path.display(),
            dir.display()
        )
    })?;
    Ok(tag)
}

/// Loads the archive at `path` (`docker load`); returns a reference to the
/// image it held. Anything the engine cannot read as an image archive is
/// a preflight error with its message.
async fn load_archive(docker: &Docker, engine: Engine, path: &Path) -> Result<String> {
    let file = tokio::fs::File::open(path)
        .await
        .with_context(|| format!("opening {}", path.display()))?;
    let chunks = futures_util::stream::unfold(file, |mut file| async move {
        use tokio::io::AsyncReadExt;
        let mut buf = vec![0u8; 1 << 16];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((Ok::<_, std::io::Error>(bytes::Bytes::from(buf)), file))
            }
            Err(e) => Some((Err(e), file)),
        }
    });
    let options = ImportImageOptionsBuilder::default().quiet(true).build();
    let mut stream = docker.import_image_stream(options, chunks, None);
    let mut output = String::new();
    while let Some(item) = stream.next().await {
        match item {
            Ok(info) => output.extend(info.stream.or(info.status)),
            Err(e) => bail!(
                "{engine} could not load {} as an image archive: {}; give a file made by `{cli} save -o FILE IMAGE` \
                 (or an OCI image layout archive the engine supports)",
                path.display(),
                engine_message(&e),
                cli = engine.as_str()
            ),
        }
    }
    loaded_reference(&output).ok_or_else(|| {
        anyhow!(
            "{engine} loaded {} but named no image it holds (it said: {:?}); give a file made by `{cli} save -o FILE IMAGE`",
            path.display(),
            output.trim(),
            cli = engine.as_str()
        )
    })
}

/// The image a load reported: the first `Loaded image: NAME` (a tagged
/// image), else the first `Loaded image ID: sha256:...`.
pub fn loaded_reference(output: &str) -> Option<String> {
    let lines = || output.lines().map(str::trim);
    lines()
        .find_map(|l| l.strip_prefix("Loaded image: "))
        .or_else(|| lines().find_map(|l| l.strip_prefix("Loaded image ID: ")))
        .map(|r| r.trim().to_string())
}

/// The derived image for `base_id`: built unless the engine has it.
async fn ensure_derived(docker: &Docker, base_id: &str, agent: &[u8], agent_sha256: &str, init: GuestInit) -> Result<ImageFacts> {
    let derived = Derived::new(base_id, agent, agent_sha256, init);
    let tag = derived.tag();
    if let Ok(found) = docker.inspect_image(&tag).await {
        return Ok(facts(tag, found, true));
    }
    build_tagged(docker, tag.clone(), derived.context()?)
        .await
        .with_context(|| format!("adding the agent to image {base_id} as {tag}"))
}

/// The derived image as data: its Dockerfile and the files its context
/// holds, from the same [`AgentFile`]s vmbench adds to the trees it builds.
pub struct Derived<'a> {
    pub dockerfile: String,
    /// Context entries: (name in the context, the agent file it holds).
    files: Vec<(String, AgentFile<'a>)>,
}

impl<'a> Derived<'a> {
    /// `FROM` the base image by id, one `COPY` per regular file (so no
    /// directory the image already has is touched), links copied as the
    /// contents of a directory (which keeps them links), and the agent run
    /// as root, as in every other target.
    pub fn new(base_id: &str, agent: &'a [u8], agent_sha256: &str, init: GuestInit) -> Self {
        let mut dockerfile = format!("FROM {base_id}\n");
        let mut files = Vec::new();
        for (i, file) in crate::guest::rootfs::agent_files(agent, init == GuestInit::Systemd)
            .into_iter()
            .enumerate()
        {
            let (path, name) = match &file {
                AgentFile::File { path, .. } => (path.clone(), format!("file{i}")),
                AgentFile::Symlink { path, .. } => (path.clone(), format!("link{i}")),
            };
            let (dir, base) = path.rsplit_once('/').unwrap_or(("", path.as_str()));
            match &file {
                AgentFile::File { .. } => dockerfile.push_str(&format!("COPY {name} {path}\n")),
                AgentFile::Symlink { .. } => dockerfile.push_str(&format!("COPY {name}/ {dir}/\n")),
            }
            let entry = match &file {
                AgentFile::File { .. } => name,
                AgentFile::Symlink { .. } => format!("{name}/{base}"),
            };
            files.push((entry, file));
        }
        dockerfile.push_str(&format!(
            "USER 0:0\nLABEL vmbench.base.id=\"{base_id}\" vmbench.agent.sha256=\"{agent_sha256}\" vmbench.init=\"{}\"\n",
            init.as_str()
        ));
        Derived { dockerfile, files }
    }

    /// The tag: a hash of everything that makes the image (the Dockerfile
    /// names the base image's id, the agent's hash and the init; the files
    /// it copies are the agent and the unit text).
    pub fn tag(&self) -> String {
        let mut made_of = self.dockerfile.clone();
        made_of.push_str(&crate::guest::rootfs::unit_text());
        format!("{OWN_REPOSITORY}:{}", &crate::guest::sha256_hex(made_of.as_bytes())[..16])
    }

    /// The build context: the Dockerfile and the agent's files.
    pub fn context(&self) -> Result<Vec<u8>> {
        let mut tar = tar::Builder::new(Vec::new());
        let header = |size: usize, mode: u32, kind: tar::EntryType| {
            let mut h = tar::Header::new_gnu();
            h.set_size(size as u64);
            h.set_mode(mode);
            h.set_mtime(0);
            h.set_entry_type(kind);
            h
        };
        let mut h = header(self.dockerfile.len(), 0o644, tar::EntryType::Regular);
        tar.append_data(&mut h, "Dockerfile", self.dockerfile.as_bytes())?;
        for (name, file) in &self.files {
            match file {
                AgentFile::File { bytes, mode, .. } => {
                    let mut h = header(bytes.len(), *mode, tar::EntryType::Regular);
                    tar.append_data(&mut h, name, bytes.as_ref())?;
                }
                AgentFile::Symlink { target, .. } => {
                    let mut h = header(0, 0o777, tar::EntryType::Symlink);
                    tar.append_link(&mut h, name, target)?;
                }
            }
        }
        Ok(tar.into_inner()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn the_derived_image_adds_the_agent_and_for_systemd_its_unit() {
        let agent = Derived::new(BASE, b"\x7fELF", "feed", GuestInit::Agent);
        assert_eq!(
            agent.dockerfile,
            format!(
                "FROM {BASE}\nCOPY file0 /usr/local/sbin/vmbench-agent\nUSER 0:0\n\
                 LABEL vmbench.base.id=\"{BASE}\" vmbench.agent.sha256=\"feed\" vmbench.init=\"agent\"\n"
            )
        );
        let systemd = Derived::new(BASE, b"\x7fELF", "feed", GuestInit::Systemd);
        assert!(systemd
            .dockerfile
            .contains("COPY file1 /etc/systemd/system/vmbench-agent.service\nCOPY link2/ /etc/systemd/system/multi-user.target.wants/\n"));
        let bytes = systemd.context().unwrap();
        let mut seen = Vec::new();
        for entry in tar::Archive::new(bytes.as_slice()).entries().unwrap() {
            let mut entry = entry.unwrap();
            let name = entry.path().unwrap().display().to_string();
            let mut content = String::new();
            match name.as_str() {
                "file0" => assert_eq!(entry.header().mode().unwrap(), 0o755),
                "file1" => {
                    std::io::Read::read_to_string(&mut entry, &mut content).unwrap();
                    assert_eq!(content, crate::guest::rootfs::unit_text());
                }
                "link2/vmbench-agent.service" => assert_eq!(
                    entry.link_name().unwrap().unwrap(),
                    Path::new("/etc/systemd/system/vmbench-agent.service")
                ),
                _ => {}
            }
            seen.push(name);
        }
        assert_eq!(seen, ["Dockerfile", "file0", "file1", "link2/vmbench-agent.service"]);
    }

    #[test]
    fn the_derived_tag_changes_with_the_base_the_agent_and_the_init_only() {
        let tag = |base: &str, sha: &str, init| Derived::new(base, b"a", sha, init).tag();
        let same = tag(BASE, "feed", GuestInit::Agent);
        assert!(same.starts_with("vmbench/own:") && same.len() == "vmbench/own:".len() + 16);
        assert_eq!(same, tag(BASE, "feed", GuestInit::Agent));
        assert_ne!(same, tag(&BASE.replace('0', "f"), "feed", GuestInit::Agent));
        assert_ne!(same, tag(BASE, "beef", GuestInit::Agent));
        assert_ne!(same, tag(BASE, "feed", GuestInit::Systemd));
    }

    #[test]
    fn a_load_names_the_image_it_loaded() {
        assert_eq!(loaded_reference("Loaded image: app:1\n").as_deref(), Some("app:1"));
        assert_eq!(loaded_reference("Loaded image ID: sha256:abc\n").as_deref(), Some("sha256:abc"));
        assert_eq!(loaded_reference("nothing\n"), None);
    }
}

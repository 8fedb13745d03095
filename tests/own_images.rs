//! The user's own container images as guests, for real, against the Docker
//! daemon: a Dockerfile built through the Engine API (its `.dockerignore`
//! applied), an image archive loaded through it, an image already in the
//! engine; each run with the agent added on top in a derived image that a
//! second run reuses. Nothing is pulled: every base is `FROM scratch` or
//! an archive the test writes itself. Bad input is a preflight error.

mod common;

use common::*;
use std::path::Path;
use vmbench::rundir::{GuestSourceKind, TargetFacts, WorkloadKind};

/// A name no other test (or earlier run) uses.
fn unique(prefix: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

/// Removes the image tags it holds when dropped, whatever the test did;
/// only the images this test made (shared layers stay with their users).
struct Images(std::cell::RefCell<Vec<String>>);

impl Images {
    fn new() -> Self {
        Images(Default::default())
    }

    fn add(&self, tag: &str) {
        self.0.borrow_mut().push(tag.to_string());
    }
}

impl Drop for Images {
    fn drop(&mut self) {
        let tags = self.0.borrow().clone();
        with_docker(|docker| async move {
            for tag in tags {
                let _ = docker
                    .remove_image(&tag, None::<bollard::query_parameters::RemoveImageOptions>, None)
                    .await;
            }
        });
    }
}

fn image_exists(tag: &str) -> bool {
    let mut found = false;
    with_docker(|docker| {
        let found = &mut found;
        async move { *found = docker.inspect_image(tag).await.is_ok() }
    });
    found
}

/// A scenario running `guest` (one `[[guest]]` source line) as a container
/// next to native, boot only.
fn scenario(source: &str) -> String {
    format!(
        r#"name = "own"
repetitions = 2
warmup = 0
timeout_s = 60

[[guest]]
name = "mine"
{source}

[[target]]
name = "ctr"
kind = "container"
guest = "mine"

[[target]]
name = "native"
kind = "native"

[[workload]]
kind = "boot"
"#
    )
}

/// Runs `text` as `own.toml` in a fresh directory under `dir`.
fn run_in_dir(dir: &Path, sub: &str, text: &str) -> (std::process::Output, std::path::PathBuf) {
    let here = dir.join(sub);
    std::fs::create_dir_all(&here).unwrap();
    let file = write(dir, &format!("{sub}.toml"), text);
    let out = here.join("run");
    // The long table too: it carries the guest systems' sizes and layers.
    let args = ["run", file.to_str().unwrap(), "--out", out.to_str().unwrap(), "--all-metrics"];
    let result = run_in(dir, &args);
    (result, out)
}

fn ctr_facts(run: &Path) -> TargetFacts {
    record(run).targets.into_iter().find(|t| t.name == "ctr").unwrap()
}

/// Every trial ran, and the container's boot has its ready time.
fn assert_booted(run: &Path) -> f64 {
    let samples = samples(run);
    assert_eq!(samples.len(), 4, "{samples:?}");
    for s in &samples {
        assert!(s.ok, "{} {}: {:?}", s.target, s.workload, s.error);
    }
    let ready = median(&samples, "ctr", "ready_ms");
    assert!(ready > 0.0 && ready < 60_000.0, "{ready}");
    assert!(samples
        .iter()
        .filter(|s| s.target == "ctr" && s.workload == WorkloadKind::Boot)
        .all(|s| s.metrics.contains_key("start_to_ready_ms")));
    ready
}

#[test]
fn a_dockerfile_of_your_own_runs_with_the_agent_added_and_a_second_run_reuses_it() {
    let tmp = tempfile::tempdir().unwrap();
    let app = tmp.path().join("app");
    std::fs::create_dir_all(app.join("etc")).unwrap();
    std::fs::write(app.join("etc/app.conf"), "answer = 42\n").unwrap();
    // Incompressible, so the layer's size is the file's.
    let data: Vec<u8> = (0u32..256 * 1024).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(app.join("data.bin"), &data).unwrap();
    std::fs::write(app.join("ignored.bin"), vec![7u8; 2 << 20]).unwrap();
    std::fs::write(app.join(".dockerignore"), "ignored.bin\n").unwrap();
    std::fs::write(
        app.join("Dockerfile"),
        "FROM scratch\nCOPY etc/ /etc/\nCOPY data.bin /opt/app/data.bin\nENV APP_MODE=bench\n",
    )
    .unwrap();
    let images = Images::new();
    let text = scenario("dockerfile = \"app/Dockerfile\"");
    let (out, run) = run_in_dir(tmp.path(), "first", &text);
    assert!(out.status.success(), "{}", stderr(&out));
    let facts = ctr_facts(&run);
    if let Some(base) = facts.guest.as_ref().and_then(|g| g.base_image.as_ref()) {
        images.add(&base.reference);
    }
    if let Some(image) = &facts.image {
        images.add(&image.tag);
    }
    assert_booted(&run);

    let guest = facts.guest.clone().unwrap();
    assert_eq!((guest.source, guest.init.as_str()), (GuestSourceKind::Dockerfile, "agent"));
    let base = guest.base_image.clone().unwrap();
    assert!(base.reference.starts_with("vmbench/build:"), "{}", base.reference);
    assert!(base.id.starts_with("sha256:") && base.build_ms.is_some_and(|ms| ms > 0.0));
    // Two layers hold files: /etc and the data (not the ignored file); the
    // ENV step holds none. Together they are the image.
    let sizes: Vec<u64> = base.file_layers().map(|l| l.size_bytes).collect();
    assert_eq!(sizes.len(), 2, "{:?}", base.layers);
    assert!(sizes[1] >= 256 * 1024 && sizes[1] < 300 * 1024, "{sizes:?}");
    assert!(base
        .layers
        .iter()
        .any(|l| l.size_bytes == 0 && l.created_by.contains("ENV APP_MODE=bench")));
    assert_eq!(base.layers.iter().map(|l| l.size_bytes).sum::<u64>(), base.size_bytes);
    assert!(base.size_bytes < 1 << 20, ".dockerignore kept ignored.bin out: {}", base.size_bytes);
    // The target ran the derived image: the base plus the agent.
    let image = facts.image.clone().unwrap();
    assert!(image.tag.starts_with("vmbench/own:"), "{}", image.tag);
    let agent_bytes = vmbench::guest::agent::bytes().len() as u64;
    assert!(
        image.size_bytes >= base.size_bytes + agent_bytes,
        "{} {}",
        image.size_bytes,
        base.size_bytes
    );
    assert_eq!(facts.artifact_bytes, image.size_bytes);
    let summary = stdout(&out);
    assert!(
        summary.contains("base image layers MiB") && summary.contains("dockerfile "),
        "{summary}"
    );
    let md = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        md.contains("Layers of the images of your own") && md.contains(" in /opt/app/data.bin"),
        "{md}"
    );
    assert_eq!(containers_of_run(&record(&run).run_id), 0);

    // A second run builds the Dockerfile again (from the engine's cache:
    // the same image) and finds the derived image made for it.
    let (out, again) = run_in_dir(tmp.path(), "second", &text);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_booted(&again);
    let facts = ctr_facts(&again);
    let image_again = facts.image.clone().unwrap();
    assert_eq!(facts.guest.unwrap().base_image.unwrap().id, base.id);
    assert_eq!((image_again.tag.as_str(), image_again.reused), (image.tag.as_str(), true));
}

/// A `docker save` archive holding one layer with `files`, tagged `tag`,
/// written by hand (the format `docker load` reads).
fn image_archive(path: &Path, tag: &str, files: &[(&str, &[u8])]) {
    use sha2::{Digest, Sha256};
    let mut layer = tar::Builder::new(Vec::new());
    for (name, bytes) in files {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        layer.append_data(&mut header, name, *bytes).unwrap();
    }
    let layer = layer.into_inner().unwrap();
    let diff_id = hex::encode(Sha256::digest(&layer));
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Env": ["PATH=/usr/bin"] },
        "rootfs": { "type": "layers", "diff_ids": [format!("sha256:{diff_id}")] },
        "history": [{ "created_by": "test: one layer by hand" }],
    })
    .to_string();
    let config_name = format!("{}.json", hex::encode(Sha256::digest(config.as_bytes())));
    let manifest = serde_json::json!([{ "Config": config_name, "RepoTags": [tag], "Layers": ["layer/layer.tar"] }]).to_string();
    let mut archive = tar::Builder::new(Vec::new());
    for (name, bytes) in [
        ("manifest.json", manifest.as_bytes()),
        (config_name.as_str(), config.as_bytes()),
        ("layer/layer.tar", layer.as_slice()),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(bytes.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        archive.append_data(&mut header, name, bytes).unwrap();
    }
    std::fs::write(path, archive.into_inner().unwrap()).unwrap();
}

#[test]
fn an_image_archive_is_loaded_and_then_runs_by_name_reusing_the_derived_image() {
    let tmp = tempfile::tempdir().unwrap();
    let tag = format!("vmbench-test/archive:{}", unique("t"));
    let images = Images::new();
    images.add(&tag);
    let payload = vec![3u8; 64 * 1024];
    image_archive(
        &tmp.path().join("app.tar"),
        &tag,
        &[("etc/os-release", b"ID=test\n"), ("srv/payload", &payload)],
    );
    let (out, run) = run_in_dir(tmp.path(), "archive", &scenario("image_archive = \"app.tar\""));
    assert!(out.status.success(), "{}", stderr(&out));
    let facts = ctr_facts(&run);
    if let Some(image) = &facts.image {
        images.add(&image.tag);
    }
    assert_booted(&run);
    let guest = facts.guest.unwrap();
    assert_eq!(guest.source, GuestSourceKind::ImageArchive);
    let base = guest.base_image.unwrap();
    assert_eq!(base.reference, tag, "the archive's own tag");
    assert!(base.build_ms.is_some(), "the load is timed");
    assert_eq!(base.layers.len(), 1);
    assert_eq!(base.layers[0].created_by, "test: one layer by hand");
    assert!(base.layers[0].size_bytes >= 64 * 1024, "{:?}", base.layers);
    assert!(image_exists(&tag));

    // Now in the engine: the same image by name, and the same derived image.
    let (out, by_name) = run_in_dir(tmp.path(), "by-name", &scenario(&format!("image = \"{tag}\"")));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_booted(&by_name);
    let again = ctr_facts(&by_name);
    let guest = again.guest.unwrap();
    assert_eq!(guest.source, GuestSourceKind::Image);
    let again_base = guest.base_image.unwrap();
    assert_eq!((again_base.id, again_base.build_ms), (base.id, None));
    let (first, second) = (facts.image.unwrap(), again.image.unwrap());
    assert_eq!((second.tag, second.reused), (first.tag, true));
}

/// `text` fails preflight with status 2, creating no run directory, and its
/// message holds every one of `expect`.
fn rejected_at_preflight(dir: &Path, text: &str, expect: &[&str]) {
    let (out, run) = run_in_dir(dir, &unique("bad"), text);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(!run.exists(), "no run directory after a failed preflight");
    for needle in expect {
        assert!(err.contains(needle), "{needle:?} not in {err}");
    }
}

#[test]
fn an_image_the_engine_lacks_a_failing_build_and_a_non_archive_are_preflight_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let absent = format!("vmbench-test/absent:{}", unique("t"));
    rejected_at_preflight(
        tmp.path(),
        &scenario(&format!("image = \"{absent}\"")),
        &[
            &format!("image `{absent}` is not in the Docker engine"),
            "No such image",
            "never pulls",
        ],
    );

    std::fs::create_dir_all(tmp.path().join("broken")).unwrap();
    std::fs::write(
        tmp.path().join("broken/Dockerfile"),
        // Failing at its first step, so the build leaves no image behind.
        "FROM scratch\nCOPY not-in-the-context.txt /x\nCOPY present.txt /present.txt\n",
    )
    .unwrap();
    std::fs::write(tmp.path().join("broken/present.txt"), "here\n").unwrap();
    rejected_at_preflight(
        tmp.path(),
        &scenario("dockerfile = \"broken/Dockerfile\""),
        &[
            "not-in-the-context.txt",
            "the build's last lines",
            ": COPY not-in-the-context.txt /x\n",
            "fix the Dockerfile",
            "guest `mine`",
        ],
    );

    std::fs::write(tmp.path().join("notes.tar"), "these are notes, not an image\n").unwrap();
    rejected_at_preflight(
        tmp.path(),
        &scenario("image_archive = \"notes.tar\""),
        &["could not load", "notes.tar", "docker save -o FILE IMAGE"],
    );
}

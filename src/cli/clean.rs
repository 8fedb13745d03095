//! `vmbench clean`: removes what runs that crashed before their own cleanup
//! left behind: first every run that died holding its lock (as `vmbench run`
//! does at its start), then containers (by vmbench's run label) in Docker and
//! Podman, libvirt domains (by vmbench's name prefix), cgroups and tap
//! devices of any run.
//! QEMU processes and native agents vmbench spawned itself die with it
//! (PR_SET_PDEATHSIG). An engine that does not answer is reported and skipped.

use super::say;
use crate::backend::docker;
use crate::scenario::Engine;

#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// Docker engine address; default: DOCKER_HOST, then the local socket.
    #[arg(long)]
    pub host: Option<String>,
    /// Podman API address; default: CONTAINER_HOST, then /run/podman/podman.sock.
    #[arg(long)]
    pub podman_host: Option<String>,
    /// libvirt connection URI whose vmbench domains to destroy.
    #[arg(long, default_value = "qemu:///system")]
    pub libvirt_uri: String,
    /// Also empty the cache of built guest systems: the root file systems
    /// and disk images under the cache directory, and the images vmbench
    /// made for guests in Docker and Podman (`vmbench/rootfs`, `vmbench/build`
    /// and `vmbench/own`; the user's own images stay). The next run builds
    /// them again.
    #[arg(long)]
    pub cache: bool,
}

pub fn exec(args: CleanArgs) -> anyhow::Result<i32> {
    super::runtime()?.block_on(async {
        // Runs that died holding their lock first: their own sweepers, and
        // their run.json marked interrupted.
        for said in crate::runner::sweep_dead_runs(&crate::runner::lock::default_dir()).await {
            say!("{said}");
        }
        for engine in Engine::ALL {
            let configured = match engine {
                Engine::Docker => args.host.as_deref(),
                Engine::Podman => args.podman_host.as_deref(),
            };
            let address = docker::engine_address(engine, configured);
            match docker::connect(engine, &address).await {
                Ok(client) => {
                    let removed = docker::remove_all_containers(&client).await?;
                    say!("removed {removed} vmbench container(s) from {engine} at {address}");
                    if args.cache {
                        let removed = docker::image::remove_guest_images(&client).await?;
                        say!("removed {removed} guest image(s) from {engine} at {address}");
                    }
                }
                Err(e) => say!("skipped {engine}: {e:#}"),
            }
        }
        clean_libvirt(&args.libvirt_uri).await;
        if let Some(hierarchies) = crate::backend::cgroup::Hierarchies::of_host() {
            let removed = crate::backend::cgroup::remove_all(&hierarchies);
            say!("removed {removed} cgroup directory(ies) of vmbench runs");
        }
        let taps = crate::backend::qemu::tap::sweep(None);
        say!("removed {taps} vmbench tap device(s) (and the bridge, once empty)");
        if args.cache {
            clean_guest_cache()?;
        }
        Ok(0)
    })
}

#[cfg(feature = "libvirt")]
async fn clean_libvirt(uri: &str) {
    let owned = uri.to_string();
    let outcome = tokio::task::spawn_blocking(move || crate::backend::libvirt::destroy_all_domains(&owned)).await;
    match outcome {
        Ok(Ok(names)) => say!("destroyed {} vmbench libvirt domain(s) at {uri}", names.len()),
        Ok(Err(e)) => say!("skipped libvirt: {e:#}"),
        Err(e) => say!("skipped libvirt: {e}"),
    }
}

#[cfg(not(feature = "libvirt"))]
async fn clean_libvirt(_uri: &str) {
    say!("skipped libvirt: this vmbench was built without the `libvirt` feature");
}

/// Removes the built guest root file systems and disk images.
fn clean_guest_cache() -> anyhow::Result<()> {
    for (dir, what) in [
        (crate::guest::rootfs::cache_root(), "guest systems"),
        (crate::guest::minimal::cache_root(), "minimal kernels"),
    ] {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => say!("removed the {what} in {}", dir.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => say!("no {what} in {}", dir.display()),
            Err(e) => anyhow::bail!("removing {}: {e}", dir.display()),
        }
    }
    Ok(())
}

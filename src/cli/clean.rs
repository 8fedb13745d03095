//! `vmbench clean`: removes containers left by runs that crashed before
//! their own cleanup. QEMU processes die with vmbench (PR_SET_PDEATHSIG).

#[derive(Debug, clap::Args)]
pub struct CleanArgs {
    /// Docker engine address; default: DOCKER_HOST, then the local socket.
    #[arg(long)]
    pub host: Option<String>,
}

pub fn exec(args: CleanArgs) -> anyhow::Result<i32> {
    super::runtime()?.block_on(async {
        let address = crate::backend::docker::engine_address(args.host.as_deref());
        let docker = crate::backend::docker::connect(&address).await?;
        let removed = crate::backend::docker::remove_all_containers(&docker).await?;
        println!("removed {removed} vmbench container(s) from {address}");
        Ok(0)
    })
}

//! `vmbench completions SHELL`: completions generated from the command
//! line's own definition, so they never fall behind it.

use clap::CommandFactory;
use clap_complete::Shell;

#[derive(Debug, clap::Args)]
#[command(after_help = "Install, for example:\n  \
    vmbench completions bash > /etc/bash_completion.d/vmbench   (or ~/.local/share/bash-completion/completions/vmbench)\n  \
    vmbench completions zsh > \"${fpath[1]}/_vmbench\"\n  \
    vmbench completions fish > ~/.config/fish/completions/vmbench.fish")]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: Shell,
}

pub fn exec(args: CompletionsArgs) -> anyhow::Result<i32> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut super::Cli::command(), "vmbench", &mut script);
    super::write_or_print(None, &script)?;
    Ok(0)
}

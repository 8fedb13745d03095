//! `vmbench manpage`: the man page, rendered by clap_mangen from the command
//! line's own definition, with a standard EXIT STATUS section (clap_mangen
//! would file the exit statuses under EXTRA) made from [`super::EXIT_CODES`].

use clap::CommandFactory;
use clap_mangen::Man;
use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ManpageArgs {
    /// Write vmbench.1 and one page per command (vmbench-run.1, ...) into DIR instead of printing vmbench.1.
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
}

pub fn exec(args: ManpageArgs) -> anyhow::Result<i32> {
    let mut cmd = command();
    cmd.build();
    let Some(dir) = args.out else {
        super::write_or_print(None, &page(&cmd)?)?;
        return Ok(0);
    };
    std::fs::create_dir_all(&dir)?;
    let main = dir.join("vmbench.1");
    crate::guest::cache::write_atomic(&main, &page(&cmd)?, 0o644)?;
    println!("{}", main.display());
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let path = Man::new(sub.clone()).generate_to(&dir)?;
        println!("{}", path.display());
    }
    Ok(0)
}

/// The command line as the pages show it: `help` is an option there, not a
/// command with a page of its own.
fn command() -> clap::Command {
    super::Cli::command().disable_help_subcommand(true)
}

/// vmbench(1): clap_mangen's sections with EXIT STATUS in place of EXTRA.
fn page(cmd: &clap::Command) -> anyhow::Result<Vec<u8>> {
    let man = Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    man.render_subcommands_section(&mut out)?;
    out.extend_from_slice(exit_status_section().as_bytes());
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// The EXIT STATUS section in roff: one tagged paragraph per status.
fn exit_status_section() -> String {
    let mut roff = String::from(".SH \"EXIT STATUS\"\n");
    for (code, meaning) in super::EXIT_CODES {
        roff.push_str(&format!(".TP\n\\fB{code}\\fR\n{}\n", roff_text(meaning)));
    }
    roff
}

/// Text safe on a roff line: backslashes doubled, and a leading `.` or `'`
/// (a request) guarded by a zero-width character.
fn roff_text(text: &str) -> String {
    let escaped = text.replace('\\', "\\\\");
    if escaped.starts_with(['.', '\'']) {
        format!("\\&{escaped}")
    } else {
        escaped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_every_command_and_every_exit_status() {
        let mut cmd = command();
        cmd.build();
        let page = String::from_utf8(page(&cmd).unwrap()).unwrap();
        assert!(page.contains(".TH vmbench 1"), "{page}");
        assert!(!page.contains("vmbench\\-help"), "help is an option here, not a command");
        for sub in ["run", "compare", "export", "completions", "manpage"] {
            assert!(page.contains(&format!("vmbench\\-{sub}")), "{sub} missing");
        }
        assert!(page.contains(".SH \"EXIT STATUS\"\n.TP\n\\fB0\\fR\nfine\n"));
        assert!(page.contains("\\fB130/143\\fR\ninterrupted by SIGINT/SIGTERM"));
        assert!(!page.contains(".SH EXTRA"), "the exit statuses are not filed as EXTRA");
    }

    #[test]
    fn roff_text_cannot_start_a_request() {
        assert_eq!(roff_text(".hidden"), "\\&.hidden");
        assert_eq!(roff_text("a\\b"), "a\\\\b");
        assert_eq!(roff_text("plain"), "plain");
    }
}

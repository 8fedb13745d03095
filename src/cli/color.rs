//! Colour for verdicts (`REGRESSED`, `FAIL` in red, `improved` in green),
//! only where a person reads them: `--color always|never` decides when
//! given; under `auto` (the default) standard output must be a terminal,
//! `NO_COLOR` unset or empty (no-color.org) and `TERM` not `dumb`. Tables
//! are painted after they are laid out, so escape codes never upset the
//! column widths, and Markdown, JSON and files are never painted.

use std::ffi::OsStr;
use std::sync::OnceLock;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when standard output is a terminal and NO_COLOR is not set.
    #[default]
    Auto,
    /// Always colour (overrides NO_COLOR).
    Always,
    /// Never colour.
    Never,
}

static CHOICE: OnceLock<ColorChoice> = OnceLock::new();

/// Records the command line's `--color` for the whole process.
pub fn set_choice(choice: ColorChoice) {
    let _ = CHOICE.set(choice);
}

/// Whether to colour: the decision alone, from what the environment says.
pub fn enabled(choice: ColorChoice, no_color: Option<&OsStr>, term: Option<&OsStr>, is_terminal: bool) -> bool {
    match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => is_terminal && no_color.is_none_or(OsStr::is_empty) && term.is_none_or(|t| t != "dumb"),
    }
}

const RED: &str = "\x1b[1;31m";
const GREEN: &str = "\x1b[32m";
const RESET: &str = "\x1b[0m";

/// Verdicts a table may end a row with, and their colours.
const VERDICTS: &[(&str, &str)] = &[("REGRESSED", RED), ("FAIL", RED), ("improved", GREEN)];

/// Paints verdicts, or passes text through unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Paint {
    on: bool,
}

impl Paint {
    /// Never paints: for files, Markdown, JSON, the step summary.
    pub fn plain() -> Self {
        Paint { on: false }
    }

    /// Paints when `--color` and the environment allow it for standard output.
    pub fn stdout() -> Self {
        let choice = CHOICE.get().copied().unwrap_or_default();
        let no_color = std::env::var_os("NO_COLOR");
        let term = std::env::var_os("TERM");
        let tty = std::io::IsTerminal::is_terminal(&std::io::stdout());
        Paint {
            on: enabled(choice, no_color.as_deref(), term.as_deref(), tty),
        }
    }

    /// `text` with the verdict that ends a line (a table's last column)
    /// coloured.
    pub fn verdicts(self, text: &str) -> String {
        if !self.on {
            return text.to_string();
        }
        let mut out = String::with_capacity(text.len() + 64);
        for line in text.split_inclusive('\n') {
            let (body, newline) = match line.strip_suffix('\n') {
                Some(body) => (body, "\n"),
                None => (line, ""),
            };
            let painted = VERDICTS.iter().find_map(|(word, colour)| {
                let head = body.strip_suffix(word)?;
                // A whole word: the cell before it ends in a space.
                (head.is_empty() || head.ends_with(' ')).then(|| format!("{head}{colour}{word}{RESET}"))
            });
            out.push_str(painted.as_deref().unwrap_or(body));
            out.push_str(newline);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_colours_only_a_terminal_without_no_color_or_a_dumb_term() {
        let auto = |no_color: Option<&str>, term: Option<&str>, tty| {
            enabled(ColorChoice::Auto, no_color.map(OsStr::new), term.map(OsStr::new), tty)
        };
        assert!(auto(None, Some("xterm-256color"), true));
        assert!(auto(None, None, true));
        assert!(!auto(None, Some("xterm"), false), "a pipe or a CI log");
        assert!(!auto(Some("1"), Some("xterm"), true), "NO_COLOR set");
        assert!(auto(Some(""), Some("xterm"), true), "an empty NO_COLOR does not count");
        assert!(!auto(None, Some("dumb"), true));
    }

    #[test]
    fn always_and_never_override_the_environment() {
        let on = |choice| enabled(choice, Some(OsStr::new("1")), Some(OsStr::new("dumb")), false);
        assert!(on(ColorChoice::Always));
        assert!(!enabled(ColorChoice::Never, None, None, true));
    }

    #[test]
    fn only_a_verdict_ending_a_line_is_painted() {
        let text = "target  result\n------  ------\nFAILING    pass\nvm        FAIL\nx     improved\nnot_REGRESSED\n";
        let painted = Paint { on: true }.verdicts(text);
        assert_eq!(
            painted,
            "target  result\n------  ------\nFAILING    pass\nvm        \x1b[1;31mFAIL\x1b[0m\nx     \x1b[32mimproved\x1b[0m\nnot_REGRESSED\n"
        );
        assert_eq!(Paint::plain().verdicts(text), text);
    }
}

//! Scenario errors that name the file, line and key.

use std::fmt;
use std::ops::Range;

/// A problem with a scenario file. Always the user's input, so the CLI exits
/// with status 2 and creates nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ScenarioError {
    pub file: String,
    /// 1-based; 0 when the problem is not at a place in the file (missing file).
    pub line: usize,
    pub column: usize,
    /// Dotted key path such as `target[1].memory_mib`; empty when none applies.
    pub key: String,
    pub message: String,
    /// The text of `line`, shown under the message with a caret at `column`.
    pub source_line: Option<Box<str>>,
    /// The file's other errors, in the order found: the first of each
    /// `[[guest]]`, `[[target]]` and `[[workload]]` table, and each failed
    /// top-level key.
    pub more: Box<[ScenarioError]>,
}

impl ScenarioError {
    /// The first of `errors`, carrying the rest; `errors` must not be empty.
    pub fn all(mut errors: Vec<ScenarioError>) -> ScenarioError {
        assert!(!errors.is_empty(), "no error to report");
        let mut first = errors.remove(0);
        first.more = errors.into_boxed_slice();
        first
    }

    /// How many errors this reports.
    pub fn count(&self) -> usize {
        1 + self.more.len()
    }

    fn one(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file)?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": key `{}`", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(source) = self.source_line.as_ref().filter(|_| self.line > 0) {
            // The offending line, as rustc shows it, with a caret under the spot.
            let number = self.line.to_string();
            let pad = " ".repeat(number.len());
            let caret = " ".repeat(self.column.saturating_sub(1));
            write!(f, "\n{pad} |\n{number} | {source}\n{pad} | {caret}^")?;
        }
        Ok(())
    }
}

impl fmt::Display for ScenarioError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.one(f)?;
        for other in self.more.iter() {
            write!(f, "\nerror: ")?;
            other.one(f)?;
        }
        if !self.more.is_empty() {
            write!(f, "\n({} errors in {})", self.count(), self.file)?;
        }
        Ok(())
    }
}

impl std::error::Error for ScenarioError {}

/// Turns byte offsets of one scenario text into file:line:column errors.
pub struct Locator<'a> {
    pub file: &'a str,
    pub text: &'a str,
}

impl<'a> Locator<'a> {
    pub fn error(&self, span: Option<Range<usize>>, key: &str, message: impl Into<String>) -> ScenarioError {
        let (line, column) = span.map(|s| line_column(self.text, s.start)).unwrap_or((0, 0));
        // Tabs would put the caret off its column: shown as one space each.
        let source_line = (line > 0)
            .then(|| self.text.lines().nth(line - 1))
            .flatten()
            .map(|l| l.replace('\t', " ").into_boxed_str());
        ScenarioError {
            file: self.file.to_string(),
            line,
            column,
            key: key.to_string(),
            message: message.into(),
            source_line,
            more: Box::default(),
        }
    }

    /// An error at `span` whose key is worked out from the text itself (for
    /// errors raised by the TOML parser, which knows where but not which key).
    pub fn error_at(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ScenarioError {
        let key = span.as_ref().map(|s| key_path_at(self.text, s.start)).unwrap_or_default();
        self.error(span, &key, message)
    }

    /// The span of `key = ...` in the table that starts at `table.start`
    /// (its header), as the TOML parser gives it. For keys serde cannot hand
    /// over with their spans (a workload's parameters, read as one map).
    pub fn find_key(&self, table: Range<usize>, key: &str) -> Option<Range<usize>> {
        let root = toml::de::DeTable::parse(self.text).ok()?;
        let root = toml::Spanned::new(root.span(), toml::de::DeValue::Table(root.into_inner()));
        key_in(&root, table.start, key)
    }
}

/// The span of `key` in the table somewhere under `value` that starts at
/// `start`.
fn key_in(value: &toml::Spanned<toml::de::DeValue<'_>>, start: usize, key: &str) -> Option<Range<usize>> {
    match value.get_ref() {
        toml::de::DeValue::Table(table) => {
            if value.span().start == start {
                if let Some((k, _)) = table.iter().find(|(k, _)| k.get_ref().as_ref() == key) {
                    return Some(k.span());
                }
            }
            table.values().find_map(|v| key_in(v, start, key))
        }
        toml::de::DeValue::Array(items) => items.iter().find_map(|v| key_in(v, start, key)),
        _ => None,
    }
}

/// 1-based line and column (in characters) of byte `offset`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..floor_char_boundary(text, offset)];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut offset: usize) -> usize {
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    offset
}

/// The dotted key path of the line holding `offset`: the enclosing table
/// header (with the index of an array of tables) and the key on that line.
pub fn key_path_at(text: &str, offset: usize) -> String {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let mut table = String::new();
    let mut counts: std::collections::HashMap<String, usize> = Default::default();
    let mut pos = 0;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim();
        let is_last = pos + line.len() > offset || pos + line.len() == text.len();
        if let Some(name) = trimmed.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            let name = name.trim().to_string();
            let index = counts.entry(name.clone()).and_modify(|c| *c += 1).or_insert(0);
            table = format!("{name}[{index}]");
        } else if let Some(name) = trimmed.strip_prefix('[').and_then(|r| r.split(']').next()) {
            table = name.trim().to_string();
        } else if is_last {
            let key = trimmed.split('=').next().unwrap_or("").trim();
            let valid = !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric() || "_-.\"".contains(c));
            return match (table.is_empty(), valid) {
                (_, false) => table,
                (true, true) => key.to_string(),
                (false, true) => format!("{table}.{key}"),
            };
        }
        if is_last {
            return table;
        }
        pos += line.len();
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "name = \"x\"\n\n[[target]]\nname = \"a\"\n\n[[target]]\nname = \"b\"\nvcpus = 0\n";

    #[test]
    fn key_paths_follow_arrays_of_tables() {
        let offset = TEXT.find("vcpus").unwrap();
        assert_eq!(key_path_at(TEXT, offset), "target[1].vcpus");
        assert_eq!(key_path_at(TEXT, 0), "name");
        assert_eq!(key_path_at(TEXT, TEXT.find("[[target]]").unwrap()), "target[0]");
    }

    #[test]
    fn lines_and_columns_are_one_based() {
        assert_eq!(line_column(TEXT, 0), (1, 1));
        assert_eq!(line_column(TEXT, TEXT.find("vcpus").unwrap() + 8), (8, 9));
    }

    #[test]
    fn find_key_locates_a_key_inside_a_table() {
        let loc = Locator { file: "f", text: TEXT };
        let second = TEXT.rfind("[[target]]").unwrap();
        let span = loc.find_key(second..second + 10, "vcpus").unwrap();
        assert_eq!(&TEXT[span], "vcpus");
        // The first table ends at the second header.
        let first = TEXT.find("[[target]]").unwrap();
        assert_eq!(loc.find_key(first..first + 10, "vcpus"), None);
    }

    #[test]
    fn display_names_file_line_and_key() {
        let e = ScenarioError {
            file: "s.toml".into(),
            line: 3,
            column: 1,
            key: "warmup".into(),
            message: "too big".into(),
            ..Default::default()
        };
        assert_eq!(e.to_string(), "s.toml:3:1: key `warmup`: too big");
    }
}

//! XML text and attribute escaping for the XML vmbench writes by hand (libvirt
//! domains; JUnit is written by `quick-junit`, which escapes its own). A leaf
//! module: it imports nothing from the crate, so any module may use it
//! without creating an import cycle.

/// `text` made safe for XML element content and for attribute values in
/// either quote style.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn the_five_special_characters_are_escaped_and_nothing_else() {
        assert_eq!(escape(r#"a&b<c>d"e'f"#), "a&amp;b&lt;c&gt;d&quot;e&apos;f");
        assert_eq!(escape("plain /path-1 é"), "plain /path-1 é");
        // `&` first would be escaped twice if done by chained replaces in
        // the wrong order.
        assert_eq!(escape("&lt;"), "&amp;lt;");
    }
}

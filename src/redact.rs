//! Secrets never land in results. Whatever vmbench records (run.json with
//! the scenario's text, the reproduce lines and settings, the samples'
//! errors) passes through [`text`], which replaces every credential it can
//! recognise by [`REDACTED`]:
//!
//! - the password of a URL's user information: engine addresses such as
//!   `tcp://user:pass@host:2375` or `ssh://user:pass@host`, libvirt URIs
//!   (`qemu+ssh://user:pass@host/system`); the user name is kept (it says who
//!   connected, and `ssh://user@host` holds no secret);
//! - the value of an assignment `NAME=value` whose name says it is secret
//!   (`DB_PASSWORD=...`, `api_key=...`, `GITHUB_TOKEN=...`, a URL's
//!   `?password=...`): environment variables given to a guest (a VM's init
//!   receives unknown `NAME=value` kernel parameters as its environment)
//!   and query parameters alike.
//!
//! A reproduce line with a redacted secret no longer works as it is: the
//! placeholder cannot be mistaken for a password. Redacting twice changes
//! nothing. Pure; a leaf module.

use std::borrow::Cow;

/// What a secret is replaced with.
pub const REDACTED: &str = "<redacted>";

/// `text` with every recognisable credential replaced by [`REDACTED`].
pub fn text(text: &str) -> Cow<'_, str> {
    let urls = url_passwords(text);
    match secret_assignments(&urls) {
        Cow::Borrowed(_) => urls,
        Cow::Owned(owned) => Cow::Owned(owned),
    }
}

/// Characters that end a URL's authority (or a value) in free text: what a
/// password cannot hold unencoded, plus the quotes around it in TOML or JSON.
fn ends_authority(c: char) -> bool {
    c.is_whitespace() || matches!(c, '/' | '?' | '#' | '"' | '\'' | '<' | '>' | '\\' | '`')
}

/// Replaces `user:password@` after every `://` by `user:<redacted>@`.
fn url_passwords(text: &str) -> Cow<'_, str> {
    let mut out = String::new();
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("://") {
        let start = from + found + 3;
        let len = text[start..].find(ends_authority).unwrap_or(text.len() - start);
        let authority = &text[start..start + len];
        from = start;
        // The last `@` ends the user information, even if the password holds
        // an unencoded one.
        let Some(at) = authority.rfind('@') else { continue };
        let Some(colon) = authority[..at].find(':') else { continue };
        let (secret_start, secret_end) = (start + colon + 1, start + at);
        let secret = &text[secret_start..secret_end];
        if secret_start < copied || secret.is_empty() || secret == REDACTED {
            continue;
        }
        out.push_str(&text[copied..secret_start]);
        out.push_str(REDACTED);
        copied = secret_end;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Replaces the value of every `NAME=value` whose name says it is secret.
fn secret_assignments(text: &str) -> Cow<'_, str> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-');
    let ends_value = |c: char| ends_authority(c) || matches!(c, ',' | '&' | ';' | ']' | ')' | '}');
    let mut out = String::new();
    let mut copied = 0;
    for (eq, _) in text.match_indices('=') {
        if eq < copied {
            continue;
        }
        let name_start = text[..eq]
            .char_indices()
            .rev()
            .find(|(_, c)| !is_name(*c))
            .map_or(0, |(i, c)| i + c.len_utf8());
        if !secret_name(&text[name_start..eq]) {
            continue;
        }
        let value_start = eq + 1;
        let len = text[value_start..].find(ends_value).unwrap_or(text.len() - value_start);
        let value = &text[value_start..value_start + len];
        if value.is_empty() || value == REDACTED {
            continue;
        }
        out.push_str(&text[copied..value_start]);
        out.push_str(REDACTED);
        copied = value_start + len;
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// Whether a variable, parameter or option name says its value is secret:
/// one of its parts (split at `_`, `.`, `-`) is or ends in a word for a
/// secret, or is `key` after a word that makes a key secret (`API_KEY`,
/// `aws_secret_access_key`). `secretmem.enable` or `vmbench.p.threads` are not.
fn secret_name(name: &str) -> bool {
    const ENDINGS: [&str; 6] = ["password", "passwd", "passphrase", "secret", "token", "apikey"];
    const WHOLE: [&str; 4] = ["pass", "pwd", "credential", "credentials"];
    const KEY_KINDS: [&str; 6] = ["api", "access", "private", "secret", "auth", "signing"];
    let lower = name.to_ascii_lowercase();
    let parts: Vec<&str> = lower.split(['_', '.', '-']).collect();
    parts.iter().enumerate().any(|(i, part)| {
        ENDINGS.iter().any(|w| part.ends_with(w)) || WHOLE.contains(part) || (*part == "key" && i > 0 && KEY_KINDS.contains(&parts[i - 1]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_addresses_keep_the_user_and_lose_the_password() {
        assert_eq!(text("tcp://user:pass@host:2375"), "tcp://user:<redacted>@host:2375");
        assert_eq!(text("ssh://user:pass@host"), "ssh://user:<redacted>@host");
        assert_eq!(
            text("qemu+ssh://root:hunter2@db.example/system?keyfile=/k"),
            "qemu+ssh://root:<redacted>@db.example/system?keyfile=/k"
        );
        // A password holding an unencoded `@` or `:` is redacted whole.
        assert_eq!(text("tcp://u:p@ss:w@h:1"), "tcp://u:<redacted>@h:1");
    }

    #[test]
    fn addresses_without_a_password_are_left_alone() {
        for plain in [
            "ssh://user@host",
            "unix:///var/run/docker.sock",
            "qemu:///system",
            "tcp://127.0.0.1:2375",
            "see https://example.com/a@b for details",
        ] {
            assert!(matches!(text(plain), Cow::Borrowed(_)), "{plain}");
        }
    }

    #[test]
    fn addresses_inside_free_text_are_found() {
        let scenario = "[[target]]\nhost = \"tcp://ci:s3cret@10.0.0.2:2375\"\nengine = \"docker\"\n";
        assert_eq!(
            text(scenario),
            "[[target]]\nhost = \"tcp://ci:<redacted>@10.0.0.2:2375\"\nengine = \"docker\"\n"
        );
        let error = "the Docker API at tcp://ci:s3cret@h:1 does not answer (error trying to connect)";
        assert!(!text(error).contains("s3cret"));
        let two = "from ssh://a:one@h1 to ssh://b:two@h2";
        assert_eq!(text(two), "from ssh://a:<redacted>@h1 to ssh://b:<redacted>@h2");
    }

    #[test]
    fn secret_environment_variables_and_parameters_lose_their_values() {
        assert_eq!(
            text("console=ttyS0 DB_PASSWORD=hunter2 quiet"),
            "console=ttyS0 DB_PASSWORD=<redacted> quiet"
        );
        assert_eq!(
            text("kernel_args = [\"GITHUB_TOKEN=ghp_x\", \"api_key=k1\"]"),
            "kernel_args = [\"GITHUB_TOKEN=<redacted>\", \"api_key=<redacted>\"]"
        );
        assert_eq!(
            text("AWS_SECRET_ACCESS_KEY=abc,PGPASS=x&mysqlPassword=y"),
            "AWS_SECRET_ACCESS_KEY=<redacted>,PGPASS=x&mysqlPassword=<redacted>"
        );
        assert_eq!(text("--password=x"), "--password=<redacted>");
        assert_eq!(
            text("qemu+tcp://h/system?password=p&mode=legacy"),
            "qemu+tcp://h/system?password=<redacted>&mode=legacy"
        );
    }

    #[test]
    fn ordinary_parameters_are_not_mistaken_for_secrets() {
        for plain in [
            "secretmem.enable=1 iommu.passthrough=1 tsc=reliable",
            "vmbench.nonce=ab12 vmbench.p.threads=2 vmbench.workload=boot",
            "--security-opt no-new-privileges --label vmbench.run=20261126T010425Z-3327",
            "keyboard=us monkey=1 key=value",
        ] {
            assert!(matches!(text(plain), Cow::Borrowed(_)), "{plain} became {}", text(plain));
        }
    }

    #[test]
    fn redacting_twice_changes_nothing() {
        for input in ["tcp://u:p@h DB_PASSWORD=x", "ssh://u:<redacted>@h TOKEN=<redacted>"] {
            let once = text(input).into_owned();
            assert_eq!(text(&once), once);
            assert!(matches!(text(&once), Cow::Borrowed(_)));
        }
    }

    #[test]
    fn any_text_is_handled_without_panicking() {
        // Console lines of a hostile guest end up in errors, which are redacted.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let alphabet = ["é", "@", ":", "//", "=", "ß=", "€://", "a", "PASSWORD", " ", "\u{0}", "=é", ":@"];
        for _ in 0..2000 {
            let mut line = String::new();
            for _ in 0..12 {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                line.push_str(alphabet[(seed % alphabet.len() as u64) as usize]);
            }
            let once = text(&line).into_owned();
            assert_eq!(text(&once), once, "{line:?}");
        }
        assert_eq!(text("é€TOKEN=ü"), "é€TOKEN=<redacted>");
    }

    #[test]
    fn text_without_secrets_is_not_copied() {
        assert!(matches!(text("plain text, no secret = here"), Cow::Borrowed(_)));
        assert!(matches!(text(""), Cow::Borrowed(_)));
    }
}

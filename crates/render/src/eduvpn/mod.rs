//! eduVPN configuration files: the PHP array files of vpn-server-api and
//! vpn-server-node, the YAML `config.yaml` of the 1.x "More Locations" draft,
//! Apache's `<RequireAny>` allow-list for the API, and the vpn-daemon
//! environment file.
//!
//! Two layers:
//! - Generic file formats, each a validated representation with `emit` and
//!   `parse` ([`Format`](crate::Format)):
//!   [`php::PhpFile`] (`<?php return array (...);`, emitted exactly as PHP's
//!   `var_export` prints it), [`yaml::YamlDoc`] (a strict YAML subset),
//!   [`apache::ApacheAccess`] (a `<RequireAny>` block, optionally inside
//!   `<Location>`/`<Directory>`), [`sysconfig::EnvFile`] (`KEY=VALUE`).
//! - Typed eduVPN files on top of them ([`config`]): the controller's
//!   `/etc/vpn-server-api/config.php` (or `config.yaml`) with its
//!   `vpnProfiles`, the node's `/etc/vpn-server-node/config.php` and
//!   `firewall.php`, and `/etc/sysconfig/vpn-daemon`.
//!
//! PHP arrays and YAML documents share one data model, [`Value`] (null,
//! bool, 64-bit int, string, list, ordered map with string keys); the typed
//! files convert to and from it, so the same profile type is written as PHP
//! or YAML.
//!
//! [`examples`] holds the files of reference documents 000 and 001 as typed
//! values.
//!
//! Secrets (`apiConsumers`, `apiPass`, keys named like `*secret*`,
//! `*pass*`, `*psk*`, `*token*`) are redacted in every `Debug` output of this
//! module; see [`Secret`] and [`is_secret_key`].

pub mod apache;
pub mod config;
pub mod examples;
pub mod php;
pub mod sysconfig;
#[cfg(test)]
mod tests;
mod value;
pub mod yaml;

pub use value::{Map, Value};

use std::fmt;

/// A value that does not satisfy a representation's rules (e.g. a comment
/// with a newline, an empty `<RequireAny>`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

/// One line of a header comment, written at the top of a file (`// …` in
/// PHP, `# …` elsewhere) and read back from it. Used to mark generated
/// files and files holding seed-derived (test-only) secrets.
///
/// Valid: no line breaks, no control characters other than tab, no `?>`
/// (which would end PHP mode inside a `//` comment), none of the characters
/// YAML treats as line breaks or refuses (U+0085, U+2028, U+2029, U+FEFF,
/// U+FFFE, U+FFFF).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommentLine(String);

impl CommentLine {
    pub fn new(text: impl Into<String>) -> Result<Self, ValueError> {
        let text = text.into();
        if let Some(c) = text
            .chars()
            .find(|&c| (c.is_control() && c != '\t') || is_yaml_special(c))
        {
            return Err(ValueError(format!(
                "comment contains the character U+{:04X}",
                c as u32
            )));
        }
        if text.contains("?>") {
            return Err(ValueError(
                "comment contains `?>`, which ends PHP mode".into(),
            ));
        }
        Ok(CommentLine(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CommentLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Characters YAML 1.1 reads as line breaks or refuses as non-printable,
/// beyond the C0/C1 controls.
pub(crate) fn is_yaml_special(c: char) -> bool {
    matches!(
        c,
        '\u{85}' | '\u{2028}' | '\u{2029}' | '\u{FEFF}' | '\u{FFFE}' | '\u{FFFF}'
    )
}

/// Builds the header lines from text, splitting on line breaks; a line that
/// is not a valid [`CommentLine`] is an error.
pub fn header(text: &str) -> Result<Vec<CommentLine>, ValueError> {
    text.lines().map(CommentLine::new).collect()
}

/// A secret string (an `apiConsumers` secret, a node's `apiPass`). `Debug`
/// never shows it; [`Secret::expose`] does, for writing the file.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(secret.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// Whether a string under this map key is a secret, for redaction in
/// `Debug`: the key contains (ignoring case) `secret`, `pass`, `psk`,
/// `token` or `private`, or is `apiConsumers` (every string below it is a
/// consumer's secret).
pub fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    k == "apiconsumers"
        || ["secret", "pass", "psk", "token", "private"]
            .iter()
            .any(|w| k.contains(w))
}

/// Where in a file each key path was found, for typed errors that name the
/// line.
#[derive(Debug, Clone, Default)]
pub(crate) struct Spans(std::collections::BTreeMap<Vec<String>, usize>);

impl Spans {
    pub(crate) fn record(&mut self, path: &[String], line: usize) {
        self.0.entry(path.to_vec()).or_insert(line);
    }

    /// The line of the longest recorded prefix of `path` (0 when none).
    pub(crate) fn line_of(&self, path: &[String]) -> usize {
        (0..=path.len())
            .rev()
            .find_map(|n| self.0.get(&path[..n]).copied())
            .unwrap_or(0)
    }
}

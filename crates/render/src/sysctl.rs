//! sysctl.d(5) files (`/etc/sysctl.d/*.conf`, `sysctl -p FILE`).
//!
//! A file is `key = value` lines. What [`SysctlConf::parse`] accepts, as
//! procps `sysctl -p` and systemd-sysctl do:
//! - `key = value` and `key=value`, whitespace around both trimmed, tabs
//!   and spaces inside a value kept (`32768\t60999`);
//! - a `-` right before the key: systemd-sysctl ignores failures to set it
//!   (procps 4.0.2, Debian 12, accepts the prefix but still reports a
//!   missing key);
//! - keys with `.` or `/` separators (`net/ipv4/ip_forward`) and `*` globs;
//! - comment lines starting with `#` or `;` (after optional whitespace);
//!   `#` after a value is part of the value, as in both tools;
//! - a key given twice: both entries are kept in order, so the last wins
//!   when applied ([`SysctlConf::get`] answers with it).
//!
//! It rejects, with the line: a line without `=` (procps only warns and
//! skips it, which hides typos), an empty key or value, whitespace inside a
//! key or between `-` and the key, and control characters.
//!
//! Comment lines up to the first blank line before any entry are the
//! [`SysctlConf::header`]; comment lines right above an entry are its
//! [`Entry::comments`]; other comments are dropped on parse.

use std::fmt;

use crate::format::{Format, ParseError};
pub use crate::wgquick::{Comment, InvalidValue};

/// A sysctl key: printable ASCII without whitespace or `=`, not starting
/// with `-`, `#` or `;`, no empty component between separators (`.`/`/`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    pub fn new(key: impl Into<String>) -> Result<Key, InvalidValue> {
        let key = key.into();
        let bad = |reason| Err(InvalidValue::new("sysctl key", &key, reason));
        if key.is_empty() {
            return bad("is empty");
        }
        if !key.bytes().all(|b| b.is_ascii_graphic() && b != b'=') {
            return bad("holds only printable ASCII without whitespace or '='");
        }
        if key.starts_with(['-', '#', ';']) {
            return bad("must not start with '-', '#' or ';'");
        }
        if key.split(['.', '/']).any(str::is_empty) {
            return bad("has an empty component");
        }
        Ok(Key(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The file under `/proc/sys` this key names, e.g. `net/ipv4/ip_forward`.
    /// With a `/` in the key, dots stay (they are part of names like
    /// `eth0.100`); otherwise dots are the separators.
    pub fn proc_path(&self) -> String {
        if self.0.contains('/') {
            self.0.clone()
        } else {
            self.0.replace('.', "/")
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A sysctl value: non-empty, no control characters but tab, no surrounding
/// whitespace (several numbers are separated by spaces or tabs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Value(String);

impl Value {
    pub fn new(value: impl Into<String>) -> Result<Value, InvalidValue> {
        let value = value.into();
        let bad = |reason| Err(InvalidValue::new("sysctl value", &value, reason));
        if value.is_empty() {
            return bad("is empty");
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return bad("contains a control character");
        }
        if value.trim() != value {
            return bad("has leading or trailing whitespace");
        }
        Ok(Value(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `1` is true and `0` false, as the kernel's boolean knobs read them.
    pub fn as_bool(&self) -> Option<bool> {
        match self.0.as_str() {
            "1" => Some(true),
            "0" => Some(false),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.0.parse().ok()
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One `key = value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Comment lines right above the entry (why it is set).
    pub comments: Vec<Comment>,
    /// Written as `-key`: a failure to set this key is not an error (for
    /// systemd-sysctl; procps 4.0.2 still reports a missing key).
    pub ignore_errors: bool,
    pub key: Key,
    pub value: Value,
}

impl Entry {
    /// An entry without comments whose errors count.
    pub fn new(key: &str, value: &str) -> Result<Entry, InvalidValue> {
        Ok(Entry {
            comments: Vec::new(),
            ignore_errors: false,
            key: Key::new(key)?,
            value: Value::new(value)?,
        })
    }
}

/// A whole sysctl.d file; entries are applied in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SysctlConf {
    /// Comment lines at the top, followed by a blank line.
    pub header: Vec<Comment>,
    pub entries: Vec<Entry>,
}

impl SysctlConf {
    /// The value `key` ends up with after the file is applied (the last
    /// entry for it), matching `.` and `/` spellings of the same key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        let wanted = Key::new(key).ok()?.proc_path();
        self.entries
            .iter()
            .rev()
            .find(|e| e.key.proc_path() == wanted)
            .map(|e| &e.value)
    }

    /// Whether the file turns IPv4 forwarding on (`Some(true)`), off, or
    /// leaves it alone (`None`).
    pub fn ipv4_forwarding(&self) -> Option<bool> {
        self.get("net.ipv4.ip_forward").and_then(Value::as_bool)
    }

    /// Whether the file turns IPv6 forwarding on for all interfaces.
    pub fn ipv6_forwarding(&self) -> Option<bool> {
        self.get("net.ipv6.conf.all.forwarding")
            .and_then(Value::as_bool)
    }
}

impl Format for SysctlConf {
    fn emit(&self) -> String {
        let mut out = String::new();
        for c in &self.header {
            out.push_str(&c.to_line('#'));
            out.push('\n');
        }
        if !self.header.is_empty() {
            out.push('\n');
        }
        for entry in &self.entries {
            if !entry.comments.is_empty() {
                // A blank line keeps the comment from joining the entry
                // above or, first of all, being read as the header.
                if out.is_empty() || !out.ends_with("\n\n") {
                    out.push('\n');
                }
                for c in &entry.comments {
                    out.push_str(&c.to_line('#'));
                    out.push('\n');
                }
            }
            if entry.ignore_errors {
                out.push('-');
            }
            out.push_str(&format!("{} = {}\n", entry.key, entry.value));
        }
        out
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let mut conf = SysctlConf::default();
        let mut pending: Vec<Comment> = Vec::new();
        let mut header_done = false;
        for (index, raw) in text.lines().enumerate() {
            let n = index + 1;
            if let Some(c) = raw.chars().find(|&c| c.is_control() && c != '\t') {
                return Err(ParseError::new(
                    n,
                    format!("control character {c:?} in line"),
                ));
            }
            let line = raw.trim();
            if line.is_empty() {
                if !header_done && conf.entries.is_empty() {
                    conf.header = std::mem::take(&mut pending);
                    header_done = true;
                }
                pending.clear();
                continue;
            }
            if let Some(rest) = line.strip_prefix(['#', ';']) {
                pending.push(Comment::from_line_lossy(rest));
                continue;
            }
            let (ignore_errors, line) = match line.strip_prefix('-') {
                Some(rest) => (true, rest),
                None => (false, line),
            };
            let (key, value) = line.split_once('=').ok_or_else(|| {
                ParseError::new(n, format!("expected `key = value`, got {line:?}"))
            })?;
            if key.starts_with(char::is_whitespace) {
                return Err(ParseError::new(n, "whitespace between '-' and the key"));
            }
            let key = Key::new(key.trim()).map_err(|e| ParseError::new(n, e.to_string()))?;
            let value = Value::new(value.trim()).map_err(|e| ParseError::new(n, e.to_string()))?;
            header_done = true;
            conf.entries.push(Entry {
                comments: std::mem::take(&mut pending),
                ignore_errors,
                key,
                value,
            });
        }
        if !header_done {
            conf.header = pending;
        }
        Ok(conf)
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use crate::wgquick::strategies::arb_comment;
    use proptest::prelude::*;

    fn arb_key() -> impl Strategy<Value = Key> {
        "[a-z0-9_*]{1,8}([./][a-z0-9_*-]{1,8}){0,4}"
            .prop_filter_map("valid key", |s| Key::new(s).ok())
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        "[ -~\t]{0,12}".prop_filter_map("valid value", |s| Value::new(s.trim()).ok())
    }

    prop_compose! {
        fn arb_entry()(
            comments in proptest::collection::vec(arb_comment(), 0..2),
            ignore_errors in any::<bool>(),
            key in arb_key(),
            value in arb_value(),
        ) -> Entry {
            Entry { comments, ignore_errors, key, value }
        }
    }

    pub(crate) fn arb_sysctl() -> impl Strategy<Value = SysctlConf> {
        (
            proptest::collection::vec(arb_comment(), 0..3),
            proptest::collection::vec(arb_entry(), 0..6),
        )
            .prop_map(|(header, entries)| SysctlConf { header, entries })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::strategies::*;
    use super::*;
    use crate::wgquick::comments;
    use crate::wgquick::strategies::mutate;
    use proptest::prelude::*;

    /// The forwarding settings of reference 003's VPN servers.
    fn forwarding() -> SysctlConf {
        let mut ip_forward = Entry::new("net.ipv4.ip_forward", "1").unwrap();
        ip_forward.comments = comments("route between the VPC and the tunnels").unwrap();
        let mut redirects = Entry::new("net.ipv4.conf.all.accept_redirects", "0").unwrap();
        redirects.comments =
            comments("a VPN gateway neither takes nor sends ICMP redirects").unwrap();
        SysctlConf {
            header: comments("Generated by vpnsim from scenario aws-three-regions").unwrap(),
            entries: vec![
                ip_forward,
                redirects,
                Entry::new("net.ipv4.conf.all.send_redirects", "0").unwrap(),
            ],
        }
    }

    #[test]
    fn snapshot_forwarding() {
        let text = forwarding().emit();
        insta::assert_snapshot!(text);
        let back = SysctlConf::parse(&text).unwrap();
        assert_eq!(back, forwarding());
        assert_eq!(back.ipv4_forwarding(), Some(true));
        assert_eq!(back.ipv6_forwarding(), None);
    }

    #[test]
    fn parses_handwritten_variations() {
        let text = "\
; top\r
\r
net.ipv4.ip_forward=0
  # why
-net/ipv4/conf/all/accept_redirects =\t0
net.ipv4.ip_local_port_range = 32768\t60999
net.ipv4.conf.*.rp_filter = 1 # kept
net.ipv4.ip_forward = 1
";
        let conf = SysctlConf::parse(text).unwrap();
        assert_eq!(conf.header, comments("top").unwrap());
        assert_eq!(conf.entries.len(), 5);
        assert!(conf.entries[1].ignore_errors);
        assert_eq!(conf.entries[1].comments, comments("why").unwrap());
        assert_eq!(
            conf.get("net.ipv4.conf.all.accept_redirects")
                .unwrap()
                .as_bool(),
            Some(false)
        );
        assert_eq!(
            conf.get("net.ipv4.ip_local_port_range").unwrap().as_str(),
            "32768\t60999"
        );
        assert_eq!(
            conf.get("net.ipv4.conf.*.rp_filter").unwrap().as_str(),
            "1 # kept"
        );
        assert_eq!(conf.ipv4_forwarding(), Some(true));
    }

    #[test]
    fn rejects_with_line_numbers() {
        for (text, line, needle) in [
            ("net.ipv4.ip_forward\n", 1, "key = value"),
            ("# c\nnet.ipv4.ip_forward =\n", 2, "empty"),
            ("= 1\n", 1, "empty"),
            ("\n- net.ipv4.ip_forward = 1\n", 2, "whitespace"),
            ("net.ipv4 .ip_forward = 1\n", 1, "whitespace"),
            ("net..ip_forward = 1\n", 1, "empty component"),
            ("a = 1\nb = \u{7}\n", 2, "control"),
        ] {
            let err = SysctlConf::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn header_only_and_empty_files() {
        assert_eq!(SysctlConf::parse("").unwrap(), SysctlConf::default());
        let only = SysctlConf {
            header: comments("nothing to set").unwrap(),
            entries: vec![],
        };
        assert_eq!(SysctlConf::parse(&only.emit()).unwrap(), only);
    }

    proptest! {
        #[test]
        fn roundtrip(conf in arb_sysctl()) {
            let text = conf.emit();
            prop_assert_eq!(SysctlConf::parse(&text), Ok(conf), "{}", text);
        }

        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = SysctlConf::parse(&text);
        }

        #[test]
        fn parse_never_panics_bytes(bytes in any::<Vec<u8>>()) {
            let _ = SysctlConf::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn parse_never_panics_on_mutations(conf in arb_sysctl(), index in any::<usize>(), c in any::<char>()) {
            let _ = SysctlConf::parse(&mutate(&conf.emit(), index, c));
        }
    }
}

//! Shell-style environment files (`/etc/sysconfig/vpn-daemon`), read both
//! by `sh` and by systemd's `EnvironmentFile=`.
//!
//! Emit: header as `#` lines, then `KEY=value`, the value bare when it is
//! made of `A-Za-z0-9_@%+=:,./-[]` (sh does not glob in assignments) (or empty), otherwise in double quotes with
//! `\`, `"`, `$` and `` ` `` escaped — text that `sh` and systemd read
//! alike.
//!
//! Parse accepts blank lines, `#` comment lines (those before the first
//! assignment are the header), leading blanks, and a value that is bare
//! (the characters above), one single-quoted string, or one double-quoted
//! string (escapes `\\ \" \$ \``; another backslash stays). Rejected, with
//! the line: `export`, spaces around `=`, invalid names, unquoted
//! characters outside the set, `$` or `` ` `` expansions, text after a
//! closing quote, multi-line values, control characters, duplicate names.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use super::{CommentLine, ValueError};
use crate::format::{Format, ParseError};

/// A variable name: `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EnvKey(String);

impl EnvKey {
    pub fn new(key: impl Into<String>) -> Result<Self, ValueError> {
        let key = key.into();
        let mut chars = key.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
        if ok {
            Ok(EnvKey(key))
        } else {
            Err(ValueError(format!("`{key}` is not a variable name")))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A value: any text without control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvValue(String);

impl EnvValue {
    pub fn new(value: impl Into<String>) -> Result<Self, ValueError> {
        let value = value.into();
        if let Some(c) = value.chars().find(|c| c.is_control()) {
            return Err(ValueError(format!(
                "value contains the control character U+{:04X}",
                c as u32
            )));
        }
        Ok(EnvValue(value))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn bare_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "_@%+=:,./-[]".contains(c)
}

/// An environment file: header lines and ordered, unique assignments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EnvFile {
    pub header: Vec<CommentLine>,
    entries: Vec<(EnvKey, EnvValue)>,
}

impl EnvFile {
    pub fn new() -> Self {
        EnvFile::default()
    }

    /// Sets a variable (an existing one keeps its place).
    pub fn set(&mut self, key: EnvKey, value: EnvValue) {
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => *v = value,
            None => self.entries.push((key, value)),
        }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|(k, _)| k.0 == key)
            .map(|(_, v)| v.0.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.entries
            .iter()
            .map(|(k, v)| (k.0.as_str(), v.0.as_str()))
    }

    fn parse_lines(text: &str) -> Result<(EnvFile, Vec<(String, usize)>), ParseError> {
        let mut file = EnvFile::new();
        let mut lines = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let no = i + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            let err = |m: &str| ParseError::new(no, m);
            if raw.chars().any(|c| c.is_control() && c != '\t') {
                return Err(err("control character in the line"));
            }
            let line = raw.trim_start_matches([' ', '\t']);
            if line.trim().is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                if file.entries.is_empty() {
                    let comment = comment.strip_prefix(' ').unwrap_or(comment);
                    file.header
                        .push(CommentLine::new(comment).map_err(|e| err(&e.0))?);
                }
                continue;
            }
            if line.starts_with("export ") || line.starts_with("export\t") {
                return Err(err("`export` is not supported (systemd does not read it)"));
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(err("expected `NAME=value`"));
            };
            let key = EnvKey::new(key)
                .map_err(|_| err("invalid variable name (no spaces around `=`)"))?;
            let value = parse_value(value).map_err(|m| err(&m))?;
            if file.get(&key.0).is_some() {
                return Err(err("variable set twice"));
            }
            lines.push((key.0.clone(), no));
            file.entries.push((key, EnvValue(value)));
        }
        Ok((file, lines))
    }
}

fn parse_value(v: &str) -> Result<String, String> {
    let trailing = |rest: &str| -> Result<(), String> {
        if rest.trim_matches([' ', '\t']).is_empty() {
            Ok(())
        } else {
            Err("text after the closing quote".into())
        }
    };
    if let Some(q) = v.strip_prefix('\'') {
        let Some((inner, rest)) = q.split_once('\'') else {
            return Err("unterminated single quote (multi-line values are not supported)".into());
        };
        trailing(rest)?;
        if inner.contains('\\') {
            return Err("backslash inside single quotes (sh and systemd read it differently): use double quotes".into());
        }
        return Ok(inner.to_string());
    }
    if let Some(q) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '"' => {
                    trailing(&q[i + 1..])?;
                    return Ok(out);
                }
                '\\' => match chars.next() {
                    Some((_, e @ ('\\' | '"' | '$' | '`'))) => out.push(e),
                    Some((_, e)) => {
                        out.push('\\');
                        out.push(e);
                    }
                    None => return Err("line continuation is not supported".into()),
                },
                '$' | '`' => {
                    return Err("`$` and `` ` `` expansions are not supported: escape them".into());
                }
                c => out.push(c),
            }
        }
        return Err("unterminated double quote (multi-line values are not supported)".into());
    }
    let v = v.trim_end_matches([' ', '\t']);
    match v.chars().find(|&c| !bare_char(c)) {
        None => Ok(v.to_string()),
        Some(c) => Err(format!("{c:?} in an unquoted value: quote the value")),
    }
}

impl Format for EnvFile {
    fn emit(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            if line.as_str().is_empty() {
                out.push_str("#\n");
            } else {
                out.push_str("# ");
                out.push_str(line.as_str());
                out.push('\n');
            }
        }
        for (k, v) in &self.entries {
            out.push_str(&k.0);
            out.push('=');
            if v.0.chars().all(bare_char) {
                out.push_str(&v.0);
            } else {
                out.push('"');
                for c in v.0.chars() {
                    if matches!(c, '\\' | '"' | '$' | '`') {
                        out.push('\\');
                    }
                    out.push(c);
                }
                out.push('"');
            }
            out.push('\n');
        }
        out
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        EnvFile::parse_lines(text).map(|(f, _)| f)
    }
}

/// Where vpn-daemon listens: `:PORT` (every address), `ADDR:PORT`,
/// `[ADDR6]:PORT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DaemonListen {
    pub addr: Option<IpAddr>,
    pub port: u16,
}

impl fmt::Display for DaemonListen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.addr {
            None => write!(f, ":{}", self.port),
            Some(a) => SocketAddr::new(a, self.port).fmt(f),
        }
    }
}

impl std::str::FromStr for DaemonListen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || format!("`{s}` is not `:PORT`, `ADDR:PORT` or `[ADDR6]:PORT`");
        if let Some(port) = s.strip_prefix(':') {
            if port.starts_with('+') {
                return Err(bad());
            }
            return port
                .parse()
                .map(|port| DaemonListen { addr: None, port })
                .map_err(|_| bad());
        }
        let sa: SocketAddr = s.parse().map_err(|_| bad())?;
        if let SocketAddr::V6(v6) = sa
            && (v6.scope_id() != 0 || v6.flowinfo() != 0)
        {
            return Err(bad());
        }
        Ok(DaemonListen {
            addr: Some(sa.ip()),
            port: sa.port(),
        })
    }
}

/// `/etc/sysconfig/vpn-daemon`: `ENABLE_TLS=-enable-tls` when TLS is on
/// (absent when off), `LISTEN=…` when set. Other variables are refused.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VpnDaemonSysconfig {
    pub header: Vec<CommentLine>,
    pub enable_tls: bool,
    pub listen: Option<DaemonListen>,
}

impl VpnDaemonSysconfig {
    pub fn to_env(&self) -> EnvFile {
        let mut env = EnvFile {
            header: self.header.clone(),
            entries: Vec::new(),
        };
        if self.enable_tls {
            env.entries
                .push((EnvKey("ENABLE_TLS".into()), EnvValue("-enable-tls".into())));
        }
        if let Some(l) = self.listen {
            env.entries
                .push((EnvKey("LISTEN".into()), EnvValue(l.to_string())));
        }
        env
    }
}

impl Format for VpnDaemonSysconfig {
    fn emit(&self) -> String {
        self.to_env().emit()
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let (env, lines) = EnvFile::parse_lines(text)?;
        let mut out = VpnDaemonSysconfig {
            header: env.header.clone(),
            ..Default::default()
        };
        for ((key, value), (_, no)) in env.entries.iter().zip(&lines) {
            match key.0.as_str() {
                "ENABLE_TLS" => match value.0.as_str() {
                    "-enable-tls" => out.enable_tls = true,
                    "" => {}
                    v => {
                        return Err(ParseError::new(
                            *no,
                            format!("ENABLE_TLS: expected `-enable-tls` or nothing, found `{v}`"),
                        ));
                    }
                },
                "LISTEN" => {
                    out.listen = Some(
                        value
                            .0
                            .parse()
                            .map_err(|m: String| ParseError::new(*no, format!("LISTEN: {m}")))?,
                    )
                }
                k => {
                    return Err(ParseError::new(
                        *no,
                        format!("unknown vpn-daemon variable `{k}`"),
                    ));
                }
            }
        }
        Ok(out)
    }
}

//! strongSwan `swanctl.conf` (and `swanctl/conf.d/*.conf`): the
//! `connections` and `secrets` sections `swanctl --load-all` hands to charon
//! over vici ([`SwanctlConf`]).
//!
//! # Syntax
//!
//! strongSwan's settings syntax, line by line, as written by this module and
//! read back by [`SwanctlConf::parse`]:
//! - `name {` opens a section, a line holding only `}` closes it; sections
//!   nest (at most [`MAX_DEPTH`] deep: deeper input is refused, so a
//!   hostile file cannot exhaust the stack or memory);
//! - `key = value` sets a key; a value is the rest of the line, trimmed, up
//!   to a `#` comment, or a `"quoted string"` (followed by nothing but a
//!   comment); lists are comma-separated (`a, b`);
//! - lines whose first non-blank character is `#` are comments; CRLF ends
//!   are accepted.
//!
//! Deliberately narrower than strongSwan: `include`, several statements on
//! one line, `{` on its own line, backslash escapes in quoted strings, empty
//! values, a key or section given twice in one section (strongSwan merges
//! them), traffic selectors with protocol/port or ranges, and sections other
//! than those below are refused, with the line.
//!
//! # Structure
//!
//! `connections { <name> { version, local_addrs, remote_addrs, proposals,
//! dpd_delay, local { auth, id }, remote { auth, id }, children { <name> {
//! local_ts, remote_ts, esp_proposals, start_action, dpd_action } } } }`
//! and `secrets { ike-<name> { id[-suffix] = ..., secret = "..." } }`.
//! Other `key = value` lines of a connection or child are kept verbatim, in
//! order, in `extra` (e.g. `dpd_timeout`, `rekey_time`, `mode`).
//!
//! Comment lines before the first section are the file's `header` (e.g.
//! the demo-key marker); other comments are dropped on parse. Emit writes
//! 4-space indents per level and a blank line between top-level sections.
//! [`Secret`] never prints its content in `Debug`.

use std::collections::BTreeSet;
use std::fmt;

use ipnet::IpNet;

use crate::format::{Format, ParseError};
use crate::wgquick::{Comment, InvalidValue};

/// How deep sections may nest in a file that [`SwanctlConf::parse`] reads.
pub const MAX_DEPTH: usize = 8;

// ---------------------------------------------------------------------------
// Leaf values
// ---------------------------------------------------------------------------

/// A section or key name: 1 to 64 ASCII letters, digits, `.`, `_` and `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    pub fn new(name: impl Into<String>) -> Result<Name, InvalidValue> {
        InvalidValue::check_chars(
            "name",
            name.into(),
            (64, "must be 1 to 64 characters"),
            (
                |c| c.is_ascii_alphanumeric() || "._-".contains(c),
                "only ASCII letters, digits, '.', '_' and '-'",
            ),
        )
        .map(Name)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One item of a comma list (an address, a proposal, an auth method):
/// printable ASCII without whitespace and without `, " # { } = \`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Word(String);

impl Word {
    pub fn new(word: impl Into<String>) -> Result<Word, InvalidValue> {
        InvalidValue::check_chars(
            "word",
            word.into(),
            (255, "must be 1 to 255 characters"),
            (
                |c| c.is_ascii_graphic() && !",\"#{}=\\".contains(c),
                "printable ASCII without whitespace or , \" # { } = \\",
            ),
        )
        .map(Word)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A non-empty value (an identity such as `198.51.100.10`, `@gw.example`
/// or `C=CH, O=x, CN=gw`, or an extra key's value): no control characters,
/// `"` or `\`, no surrounding whitespace. Emitted bare when that reads back
/// unchanged, quoted otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(String);

impl Text {
    pub fn new(text: impl Into<String>) -> Result<Text, InvalidValue> {
        let text = text.into();
        if text.is_empty() || text.len() > 1024 {
            return Err(InvalidValue::new(
                "value",
                &text,
                "must be 1 to 1024 characters",
            ));
        }
        if text
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(InvalidValue::new(
                "value",
                &text,
                "must not contain control characters, '\"' or '\\'",
            ));
        }
        if text.trim() != text {
            return Err(InvalidValue::new(
                "value",
                &text,
                "has leading or trailing whitespace",
            ));
        }
        Ok(Text(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn emitted(&self) -> String {
        let bare = self
            .0
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._:/%@+*!-,[] ".contains(c));
        if bare {
            self.0.clone()
        } else {
            format!("\"{}\"", self.0)
        }
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, PartialEq, Eq)]
enum SecretForm {
    Quoted(String),
    Encoded(String),
}

/// A shared secret (`secret = "..."`, or a `0x` hex / `0s` base64 word).
/// `Debug` never shows it; read it with [`Secret::expose_secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(SecretForm);

impl Secret {
    /// A secret written as a quoted string: non-empty, no `"`, `\` or
    /// control characters.
    pub fn text(secret: impl Into<String>) -> Result<Secret, InvalidValue> {
        let secret = secret.into();
        if secret.is_empty()
            || secret
                .chars()
                .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(InvalidValue::new(
                "secret",
                "<redacted>",
                "must be non-empty, without '\"', '\\' or control characters",
            ));
        }
        Ok(Secret(SecretForm::Quoted(secret)))
    }

    /// A secret in encoded form: `0x` + hex digits or `0s` + base64.
    pub fn encoded(secret: impl Into<String>) -> Result<Secret, InvalidValue> {
        let secret = secret.into();
        let body = secret.get(2..).unwrap_or("");
        let ok = match secret.get(..2) {
            Some("0x") => !body.is_empty() && body.chars().all(|c| c.is_ascii_hexdigit()),
            Some("0s") => {
                !body.is_empty()
                    && body
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
            }
            _ => false,
        };
        if !ok {
            return Err(InvalidValue::new(
                "secret",
                "<redacted>",
                "an encoded secret is 0x + hex digits or 0s + base64",
            ));
        }
        Ok(Secret(SecretForm::Encoded(secret)))
    }

    /// The secret as written (without quotes).
    pub fn expose_secret(&self) -> &str {
        match &self.0 {
            SecretForm::Quoted(s) | SecretForm::Encoded(s) => s,
        }
    }

    fn emitted(&self) -> String {
        match &self.0 {
            SecretForm::Quoted(s) => format!("\"{s}\""),
            SecretForm::Encoded(s) => s.clone(),
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

macro_rules! keywords {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            pub fn from_keyword(text: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|k| k.as_str() == text)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

keywords! {
    /// `start_action`: what charon does with a child when it is loaded.
    StartAction { None = "none", Trap = "trap", Start = "start" }
}

keywords! {
    /// `dpd_action`: what happens to a child when the peer is dead.
    DpdAction { Clear = "clear", Trap = "trap", Restart = "restart" }
}

// ---------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------

/// A `key = value` line this module has no typed field for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub key: Name,
    pub value: Text,
}

impl Param {
    pub fn new(key: &str, value: &str) -> Result<Param, InvalidValue> {
        Ok(Param {
            key: Name::new(key)?,
            value: Text::new(value)?,
        })
    }
}

/// `local { ... }` or `remote { ... }`: one authentication round.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AuthRound {
    /// `auth`: `psk`, `pubkey`, `eap-...`.
    pub auth: Option<Word>,
    /// `id`: the IKE identity.
    pub id: Option<Text>,
}

/// A `children { <name> { ... } }` entry: one CHILD_SA.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Child {
    pub name: Name,
    /// `local_ts`: the local traffic selectors (empty: unset, i.e. dynamic).
    pub local_ts: Vec<IpNet>,
    /// `remote_ts`.
    pub remote_ts: Vec<IpNet>,
    /// `esp_proposals` (empty: unset, i.e. `default`).
    pub esp_proposals: Vec<Word>,
    pub start_action: Option<StartAction>,
    pub dpd_action: Option<DpdAction>,
    /// Every other key, verbatim and in order.
    pub extra: Vec<Param>,
}

impl Child {
    pub fn new(name: Name) -> Child {
        Child {
            name,
            local_ts: Vec::new(),
            remote_ts: Vec::new(),
            esp_proposals: Vec::new(),
            start_action: None,
            dpd_action: None,
            extra: Vec::new(),
        }
    }
}

/// A `connections { <name> { ... } }` entry: one IKE_SA configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connection {
    pub name: Name,
    /// `version`: 0 (any), 1 or 2.
    pub version: Option<u8>,
    /// `local_addrs` (empty: unset).
    pub local_addrs: Vec<Word>,
    /// `remote_addrs` (empty: unset).
    pub remote_addrs: Vec<Word>,
    /// `proposals`: IKE proposals (empty: unset, i.e. `default`).
    pub proposals: Vec<Word>,
    /// `dpd_delay`, seconds.
    pub dpd_delay: Option<u32>,
    /// Every other key, verbatim and in order.
    pub extra: Vec<Param>,
    pub local: Option<AuthRound>,
    pub remote: Option<AuthRound>,
    pub children: Vec<Child>,
}

impl Connection {
    pub fn new(name: Name) -> Connection {
        Connection {
            name,
            version: None,
            local_addrs: Vec::new(),
            remote_addrs: Vec::new(),
            proposals: Vec::new(),
            dpd_delay: None,
            extra: Vec::new(),
            local: None,
            remote: None,
            children: Vec::new(),
        }
    }

    pub fn child(&self, name: &str) -> Option<&Child> {
        self.children.iter().find(|c| c.name.as_str() == name)
    }
}

/// A `secrets { ike-<name> { ... } }` entry: a pre-shared IKE key.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct IkeSecret {
    /// The section name; starts with `ike` (e.g. `ike-vpc1-to-vpc2`).
    pub name: Name,
    /// The `id` / `id-<suffix>` keys with the identities they name.
    pub ids: Vec<(Name, Text)>,
    pub secret: Secret,
}

impl IkeSecret {
    /// The identities this secret is for.
    pub fn identities(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().map(|(_, id)| id.as_str())
    }
}

/// A whole `swanctl.conf` (or a `conf.d/*.conf` fragment).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SwanctlConf {
    /// Comment lines at the top.
    pub header: Vec<Comment>,
    pub connections: Vec<Connection>,
    pub secrets: Vec<IkeSecret>,
}

impl SwanctlConf {
    pub fn connection(&self, name: &str) -> Option<&Connection> {
        self.connections.iter().find(|c| c.name.as_str() == name)
    }

    /// The secret whose identities include both `a` and `b`.
    pub fn secret_for(&self, a: &str, b: &str) -> Option<&Secret> {
        self.secrets.iter().find_map(|s| {
            let ids: Vec<&str> = s.identities().collect();
            (ids.contains(&a) && ids.contains(&b)).then_some(&s.secret)
        })
    }

    /// Checks what the types cannot: unique names per level, secret section
    /// names starting with `ike`, `id`/`id-*` keys, a version of 0–2, extra
    /// keys that are neither typed nor repeated. Every parsed value passes;
    /// for values that pass, `parse(emit(x)) == Ok(x)`.
    pub fn validate(&self) -> Result<(), String> {
        let mut names = BTreeSet::new();
        for c in &self.connections {
            if !names.insert(c.name.as_str()) {
                return Err(format!("two connections named {}", c.name));
            }
            if c.version.is_some_and(|v| v > 2) {
                return Err(format!("connection {}: version must be 0, 1 or 2", c.name));
            }
            check_extra(&format!("connection {}", c.name), &c.extra, CONN_KEYS)?;
            let mut children = BTreeSet::new();
            for ch in &c.children {
                if !children.insert(ch.name.as_str()) {
                    return Err(format!(
                        "connection {}: two children named {}",
                        c.name, ch.name
                    ));
                }
                check_extra(&format!("child {}", ch.name), &ch.extra, CHILD_KEYS)?;
            }
        }
        let mut names = BTreeSet::new();
        for s in &self.secrets {
            if !names.insert(s.name.as_str()) {
                return Err(format!("two secrets named {}", s.name));
            }
            if !s.name.as_str().starts_with("ike") {
                return Err(format!("secret {}: only ike secrets are supported", s.name));
            }
            let mut keys = BTreeSet::new();
            for (key, _) in &s.ids {
                if !is_id_key(key.as_str()) {
                    return Err(format!("secret {}: {key} is not an id key", s.name));
                }
                if !keys.insert(key.as_str()) {
                    return Err(format!("secret {}: {key} given twice", s.name));
                }
            }
        }
        Ok(())
    }
}

const CONN_KEYS: &[&str] = &[
    "version",
    "local_addrs",
    "remote_addrs",
    "proposals",
    "dpd_delay",
    "local",
    "remote",
    "children",
];

const CHILD_KEYS: &[&str] = &[
    "local_ts",
    "remote_ts",
    "esp_proposals",
    "start_action",
    "dpd_action",
];

fn is_id_key(key: &str) -> bool {
    key == "id" || key.strip_prefix("id-").is_some_and(|s| !s.is_empty())
}

fn check_extra(section: &str, extra: &[Param], typed: &[&str]) -> Result<(), String> {
    let mut seen = BTreeSet::new();
    for p in extra {
        if typed.contains(&p.key.as_str()) {
            return Err(format!("{section}: {} has a typed field", p.key));
        }
        if !seen.insert(p.key.as_str()) {
            return Err(format!("{section}: key {} given twice", p.key));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Emit
// ---------------------------------------------------------------------------

struct Writer {
    out: String,
    depth: usize,
}

impl Writer {
    fn indent(&mut self) {
        for _ in 0..self.depth {
            self.out.push_str("    ");
        }
    }

    fn open(&mut self, name: &str) {
        self.indent();
        self.out.push_str(name);
        self.out.push_str(" {\n");
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth = self.depth.saturating_sub(1);
        self.indent();
        self.out.push_str("}\n");
    }

    fn kv(&mut self, key: &str, value: &str) {
        self.indent();
        self.out.push_str(key);
        self.out.push_str(" = ");
        self.out.push_str(value);
        self.out.push('\n');
    }

    fn list<T: fmt::Display>(&mut self, key: &str, items: &[T]) {
        if !items.is_empty() {
            let text = items
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ");
            self.kv(key, &text);
        }
    }
}

fn emit_auth(w: &mut Writer, name: &str, round: &AuthRound) {
    w.open(name);
    if let Some(auth) = &round.auth {
        w.kv("auth", auth.as_str());
    }
    if let Some(id) = &round.id {
        w.kv("id", &id.emitted());
    }
    w.close();
}

fn emit_connection(w: &mut Writer, c: &Connection) {
    w.open(c.name.as_str());
    if let Some(v) = c.version {
        w.kv("version", &v.to_string());
    }
    w.list("local_addrs", &c.local_addrs);
    w.list("remote_addrs", &c.remote_addrs);
    w.list("proposals", &c.proposals);
    if let Some(d) = c.dpd_delay {
        w.kv("dpd_delay", &format!("{d}s"));
    }
    for p in &c.extra {
        w.kv(p.key.as_str(), &p.value.emitted());
    }
    if let Some(local) = &c.local {
        emit_auth(w, "local", local);
    }
    if let Some(remote) = &c.remote {
        emit_auth(w, "remote", remote);
    }
    if !c.children.is_empty() {
        w.open("children");
        for ch in &c.children {
            w.open(ch.name.as_str());
            w.list("local_ts", &ch.local_ts);
            w.list("remote_ts", &ch.remote_ts);
            w.list("esp_proposals", &ch.esp_proposals);
            if let Some(a) = ch.start_action {
                w.kv("start_action", a.as_str());
            }
            if let Some(a) = ch.dpd_action {
                w.kv("dpd_action", a.as_str());
            }
            for p in &ch.extra {
                w.kv(p.key.as_str(), &p.value.emitted());
            }
            w.close();
        }
        w.close();
    }
    w.close();
}

impl Format for SwanctlConf {
    fn emit(&self) -> String {
        let mut w = Writer {
            out: String::new(),
            depth: 0,
        };
        for c in &self.header {
            w.out.push_str(&c.to_line('#'));
            w.out.push('\n');
        }
        if !self.connections.is_empty() {
            if !w.out.is_empty() {
                w.out.push('\n');
            }
            w.open("connections");
            for c in &self.connections {
                emit_connection(&mut w, c);
            }
            w.close();
        }
        if !self.secrets.is_empty() {
            if !w.out.is_empty() {
                w.out.push('\n');
            }
            w.open("secrets");
            for s in &self.secrets {
                w.open(s.name.as_str());
                for (key, id) in &s.ids {
                    w.kv(key.as_str(), &id.emitted());
                }
                w.kv("secret", &s.secret.emitted());
                w.close();
            }
            w.close();
        }
        w.out
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let (header, root) = parse_tree(text)?;
        let mut conf = SwanctlConf {
            header,
            ..SwanctlConf::default()
        };
        let mut seen = BTreeSet::new();
        for item in root {
            match item {
                Item::Kv { key, line, .. } => {
                    return Err(ParseError::new(
                        line,
                        format!(
                            "'{key}' outside a section (expected `connections {{` or `secrets {{`)"
                        ),
                    ));
                }
                Item::Section(sec) => {
                    if !seen.insert(sec.name.clone()) {
                        return Err(ParseError::new(
                            sec.line,
                            format!("a second `{}` section", sec.name),
                        ));
                    }
                    match sec.name.as_str() {
                        "connections" => conf.connections = parse_connections(sec)?,
                        "secrets" => conf.secrets = parse_secrets(sec)?,
                        other => {
                            return Err(ParseError::new(
                                sec.line,
                                format!(
                                    "unknown section '{other}' (expected connections or secrets)"
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(conf)
    }
}

// ---------------------------------------------------------------------------
// Parse: the generic tree
// ---------------------------------------------------------------------------

#[derive(Debug)]
enum Item {
    Kv {
        key: String,
        value: String,
        /// Written as a `"quoted string"`.
        quoted: bool,
        line: usize,
    },
    Section(Section),
}

#[derive(Debug)]
struct Section {
    name: String,
    line: usize,
    items: Vec<Item>,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "._-".contains(c)
}

fn check_name(name: &str, line: usize) -> Result<(), ParseError> {
    if name.is_empty() || !name.chars().all(is_name_char) {
        return Err(ParseError::new(
            line,
            format!("invalid name '{name}' (ASCII letters, digits, '.', '_', '-')"),
        ));
    }
    Ok(())
}

/// The value after `=`: quoted (then only a comment may follow) or bare up
/// to a `#`, trimmed; and whether it was quoted. Never empty.
fn parse_value(rest: &str, line: usize) -> Result<(String, bool), ParseError> {
    let rest = rest.trim_matches([' ', '\t']);
    let quoted = rest.starts_with('"');
    let value = if let Some(q) = rest.strip_prefix('"') {
        let end = q
            .find('"')
            .ok_or_else(|| ParseError::new(line, "unterminated quoted string"))?;
        let inner = &q[..end];
        let after = q[end + 1..].trim_start_matches([' ', '\t']);
        if !after.is_empty() && !after.starts_with('#') {
            return Err(ParseError::new(
                line,
                format!("unexpected text after the closing quote: '{after}'"),
            ));
        }
        if inner.contains('\\') {
            return Err(ParseError::new(
                line,
                "backslash escapes in quoted strings are not supported",
            ));
        }
        inner.to_owned()
    } else {
        let bare = rest
            .split('#')
            .next()
            .unwrap_or("")
            .trim_end_matches([' ', '\t']);
        if bare.contains(['"', '{', '}', '\\']) {
            return Err(ParseError::new(
                line,
                format!("'{bare}': quote a value holding '\"', '{{', '}}' or '\\'"),
            ));
        }
        bare.to_owned()
    };
    if value.is_empty() {
        return Err(ParseError::new(line, "empty value"));
    }
    Ok((value, quoted))
}

fn parse_tree(text: &str) -> Result<(Vec<Comment>, Vec<Item>), ParseError> {
    let mut header = Vec::new();
    let mut in_header = true;
    // The open sections, innermost last; the root is the first.
    let mut stack: Vec<Section> = vec![Section {
        name: String::new(),
        line: 0,
        items: Vec::new(),
    }];
    let mut last = 0;
    for (i, raw) in text.split('\n').enumerate() {
        let n = i + 1;
        last = n;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if raw.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ParseError::new(n, "control character in line"));
        }
        let line = raw.trim_matches([' ', '\t']);
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            if in_header {
                header.push(Comment::from_line_lossy(comment));
            }
            continue;
        }
        in_header = false;
        if let Some(rest) = line.strip_prefix('}') {
            let rest = rest.trim_start_matches([' ', '\t']);
            if !rest.is_empty() && !rest.starts_with('#') {
                return Err(ParseError::new(n, "text after '}'"));
            }
            if stack.len() < 2 {
                return Err(ParseError::new(n, "'}' without an open section"));
            }
            if let Some(done) = stack.pop()
                && let Some(parent) = stack.last_mut()
            {
                parent.items.push(Item::Section(done));
            }
            continue;
        }
        let code = match line.find('#') {
            // A '#' inside a quoted value is not a comment: only look for
            // section openers in the part before any quote.
            Some(h) if !line[..h].contains('"') => line[..h].trim_end_matches([' ', '\t']),
            _ => line,
        };
        if let Some(name) = code.strip_suffix('{')
            && !name.contains(['=', '"'])
        {
            let name = name.trim_end_matches([' ', '\t']);
            check_name(name, n)?;
            if stack.len() > MAX_DEPTH {
                return Err(ParseError::new(
                    n,
                    format!("sections nest deeper than {MAX_DEPTH} levels"),
                ));
            }
            stack.push(Section {
                name: name.to_owned(),
                line: n,
                items: Vec::new(),
            });
            continue;
        }
        let Some((key, rest)) = line.split_once('=') else {
            return Err(ParseError::new(
                n,
                format!("expected `name {{`, `}}` or `key = value`, got '{line}'"),
            ));
        };
        let key = key.trim_end_matches([' ', '\t']);
        check_name(key, n)?;
        let (value, quoted) = parse_value(rest, n)?;
        if let Some(open) = stack.last_mut() {
            open.items.push(Item::Kv {
                key: key.to_owned(),
                value,
                quoted,
                line: n,
            });
        }
    }
    if stack.len() > 1 {
        let open = stack.last().map_or(0, |s| s.line);
        return Err(ParseError::new(
            open,
            format!("section not closed: end of file (line {last}) inside it"),
        ));
    }
    let root = stack.pop().map(|s| s.items).unwrap_or_default();
    Ok((header, root))
}

// ---------------------------------------------------------------------------
// Parse: typed sections
// ---------------------------------------------------------------------------

fn invalid(line: usize, key: &str, e: InvalidValue) -> ParseError {
    ParseError::new(line, format!("{key}: {e}"))
}

/// Keys and sections of one section, each at most once.
struct Seen(BTreeSet<String>);

impl Seen {
    fn new() -> Seen {
        Seen(BTreeSet::new())
    }

    fn check(&mut self, name: &str, line: usize) -> Result<(), ParseError> {
        if !self.0.insert(name.to_owned()) {
            return Err(ParseError::new(
                line,
                format!("'{name}' given twice in this section"),
            ));
        }
        Ok(())
    }
}

fn words(key: &str, value: &str, line: usize) -> Result<Vec<Word>, ParseError> {
    value
        .split(',')
        .map(|w| {
            let w = w.trim_matches([' ', '\t']);
            Word::new(w).map_err(|e| invalid(line, key, e))
        })
        .collect()
}

/// A traffic selector: an IP prefix (a bare address is a host prefix)
/// without host bits.
pub fn parse_selector(v: &str) -> Result<IpNet, String> {
    let net = match v.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match v.parse::<std::net::IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => return Err(format!("'{v}' is not an IP prefix")),
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "'{v}' has host bits set (the network is {})",
            net.trunc()
        ));
    }
    Ok(net)
}

fn selectors(key: &str, value: &str, line: usize) -> Result<Vec<IpNet>, ParseError> {
    value
        .split(',')
        .map(|s| {
            parse_selector(s.trim_matches([' ', '\t']))
                .map_err(|e| ParseError::new(line, format!("{key}: {e}")))
        })
        .collect()
}

/// Seconds, optionally with an `s`, `m`, `h` or `d` suffix.
fn seconds(key: &str, v: &str, line: usize) -> Result<u32, ParseError> {
    let bad = || {
        ParseError::new(
            line,
            format!("{key}: expected a duration like 30s, 5m or 1h, got '{v}'"),
        )
    };
    let (digits, factor) = match v.as_bytes().last() {
        Some(b's') => (&v[..v.len() - 1], 1),
        Some(b'm') => (&v[..v.len() - 1], 60),
        Some(b'h') => (&v[..v.len() - 1], 3600),
        Some(b'd') => (&v[..v.len() - 1], 86400),
        _ => (v, 1),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    digits
        .parse::<u32>()
        .ok()
        .and_then(|x| x.checked_mul(factor))
        .ok_or_else(bad)
}

fn text(key: &str, value: String, line: usize) -> Result<Text, ParseError> {
    Text::new(value).map_err(|e| invalid(line, key, e))
}

fn extra(key: &str, value: String, line: usize) -> Result<Param, ParseError> {
    Ok(Param {
        key: Name::new(key).map_err(|e| invalid(line, key, e))?,
        value: text(key, value, line)?,
    })
}

fn no_section(sec: &Section, parent: &str) -> ParseError {
    ParseError::new(
        sec.line,
        format!("unexpected section '{}' in {parent}", sec.name),
    )
}

fn no_key(key: &str, line: usize, parent: &str) -> ParseError {
    ParseError::new(line, format!("unexpected key '{key}' in {parent}"))
}

fn parse_connections(sec: Section) -> Result<Vec<Connection>, ParseError> {
    let mut out = Vec::new();
    let mut seen = Seen::new();
    for item in sec.items {
        match item {
            Item::Kv { key, line, .. } => return Err(no_key(&key, line, "connections")),
            Item::Section(c) => {
                seen.check(&c.name, c.line)?;
                out.push(parse_connection(c)?);
            }
        }
    }
    Ok(out)
}

fn parse_connection(sec: Section) -> Result<Connection, ParseError> {
    let name = Name::new(sec.name.as_str()).map_err(|e| invalid(sec.line, "connection", e))?;
    let mut c = Connection::new(name);
    let mut seen = Seen::new();
    for item in sec.items {
        match item {
            Item::Kv {
                key, value, line, ..
            } => {
                seen.check(&key, line)?;
                match key.as_str() {
                    "version" => {
                        c.version = Some(match value.as_str() {
                            "0" => 0,
                            "1" => 1,
                            "2" => 2,
                            _ => {
                                return Err(ParseError::new(
                                    line,
                                    format!("version: expected 0, 1 or 2, got '{value}'"),
                                ));
                            }
                        });
                    }
                    "local_addrs" => c.local_addrs = words(&key, &value, line)?,
                    "remote_addrs" => c.remote_addrs = words(&key, &value, line)?,
                    "proposals" => c.proposals = words(&key, &value, line)?,
                    "dpd_delay" => c.dpd_delay = Some(seconds(&key, &value, line)?),
                    "local" | "remote" | "children" => {
                        return Err(ParseError::new(line, format!("'{key}' is a section")));
                    }
                    _ => c.extra.push(extra(&key, value, line)?),
                }
            }
            Item::Section(s) => {
                seen.check(&s.name, s.line)?;
                match s.name.as_str() {
                    "local" => c.local = Some(parse_auth(s)?),
                    "remote" => c.remote = Some(parse_auth(s)?),
                    "children" => c.children = parse_children(s)?,
                    _ => return Err(no_section(&s, "a connection")),
                }
            }
        }
    }
    Ok(c)
}

fn parse_auth(sec: Section) -> Result<AuthRound, ParseError> {
    let mut round = AuthRound::default();
    let mut seen = Seen::new();
    for item in sec.items {
        match item {
            Item::Kv {
                key, value, line, ..
            } => {
                seen.check(&key, line)?;
                match key.as_str() {
                    "auth" => {
                        round.auth = Some(Word::new(value).map_err(|e| invalid(line, "auth", e))?);
                    }
                    "id" => round.id = Some(text("id", value, line)?),
                    _ => return Err(no_key(&key, line, &sec.name)),
                }
            }
            Item::Section(s) => return Err(no_section(&s, &sec.name)),
        }
    }
    Ok(round)
}

fn parse_children(sec: Section) -> Result<Vec<Child>, ParseError> {
    let mut out = Vec::new();
    let mut names = Seen::new();
    for item in sec.items {
        match item {
            Item::Kv { key, line, .. } => return Err(no_key(&key, line, "children")),
            Item::Section(s) => {
                names.check(&s.name, s.line)?;
                let name = Name::new(s.name.as_str()).map_err(|e| invalid(s.line, "child", e))?;
                let mut child = Child::new(name);
                let mut seen = Seen::new();
                for item in s.items {
                    match item {
                        Item::Kv {
                            key, value, line, ..
                        } => {
                            seen.check(&key, line)?;
                            match key.as_str() {
                                "local_ts" => child.local_ts = selectors(&key, &value, line)?,
                                "remote_ts" => child.remote_ts = selectors(&key, &value, line)?,
                                "esp_proposals" => child.esp_proposals = words(&key, &value, line)?,
                                "start_action" => {
                                    child.start_action =
                                        Some(StartAction::from_keyword(&value).ok_or_else(|| {
                                            ParseError::new(
                                                line,
                                                format!("start_action: unknown value '{value}' (none, trap, start)"),
                                            )
                                        })?);
                                }
                                "dpd_action" => {
                                    child.dpd_action =
                                        Some(DpdAction::from_keyword(&value).ok_or_else(|| {
                                            ParseError::new(
                                                line,
                                                format!("dpd_action: unknown value '{value}' (clear, trap, restart)"),
                                            )
                                        })?);
                                }
                                _ => child.extra.push(extra(&key, value, line)?),
                            }
                        }
                        Item::Section(inner) => return Err(no_section(&inner, "a child")),
                    }
                }
                out.push(child);
            }
        }
    }
    Ok(out)
}

fn parse_secrets(sec: Section) -> Result<Vec<IkeSecret>, ParseError> {
    let mut out = Vec::new();
    let mut names = Seen::new();
    for item in sec.items {
        match item {
            Item::Kv { key, line, .. } => return Err(no_key(&key, line, "secrets")),
            Item::Section(s) => {
                names.check(&s.name, s.line)?;
                if !s.name.starts_with("ike") {
                    return Err(ParseError::new(
                        s.line,
                        format!(
                            "secret section '{}': only ike[-name] secrets are supported",
                            s.name
                        ),
                    ));
                }
                let name = Name::new(s.name.as_str()).map_err(|e| invalid(s.line, "secret", e))?;
                let mut ids = Vec::new();
                let mut secret = None;
                let mut seen = Seen::new();
                for item in s.items {
                    match item {
                        Item::Kv {
                            key,
                            value,
                            quoted,
                            line,
                        } => {
                            seen.check(&key, line)?;
                            if key == "secret" {
                                let encoded = value.starts_with("0x") || value.starts_with("0s");
                                secret = Some(
                                    if encoded && !quoted {
                                        Secret::encoded(value)
                                    } else {
                                        Secret::text(value)
                                    }
                                    .map_err(|e| invalid(line, "secret", e))?,
                                );
                            } else if is_id_key(&key) {
                                let k =
                                    Name::new(key.as_str()).map_err(|e| invalid(line, "id", e))?;
                                ids.push((k, text(&key, value, line)?));
                            } else {
                                return Err(no_key(&key, line, "an ike secret"));
                            }
                        }
                        Item::Section(inner) => return Err(no_section(&inner, "an ike secret")),
                    }
                }
                let secret = secret.ok_or_else(|| {
                    ParseError::new(s.line, format!("secret section '{name}' has no `secret`"))
                })?;
                out.push(IkeSecret { name, ids, secret });
            }
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use crate::libreswan::strategies::arb_net;
    use crate::wgquick::strategies::arb_comment;
    use proptest::collection::vec;
    use proptest::option::of;
    use proptest::prelude::*;

    fn arb_name() -> impl Strategy<Value = Name> {
        "[a-zA-Z0-9._-]{1,12}".prop_filter_map("name", |s| Name::new(s).ok())
    }

    fn arb_word() -> impl Strategy<Value = Word> {
        "[a-z0-9%@:./_+-]{1,16}".prop_filter_map("word", |s| Word::new(s).ok())
    }

    fn arb_text() -> impl Strategy<Value = Text> {
        "[ -!#-\\[\\]-~]{1,20}".prop_filter_map("text", |s| Text::new(s).ok())
    }

    fn arb_extra(typed: &'static [&'static str]) -> impl Strategy<Value = Vec<Param>> {
        vec(
            ("[a-z][a-z0-9_]{0,10}", arb_text()).prop_filter_map("param", |(k, value)| {
                Name::new(k).ok().map(|key| Param { key, value })
            }),
            0..3,
        )
        .prop_map(move |mut ps| {
            let mut seen = BTreeSet::new();
            ps.retain(|p| !typed.contains(&p.key.as_str()) && seen.insert(p.key.0.clone()));
            ps
        })
    }

    fn arb_auth() -> impl Strategy<Value = AuthRound> {
        (of(arb_word()), of(arb_text())).prop_map(|(auth, id)| AuthRound { auth, id })
    }

    prop_compose! {
        fn arb_child()(
            name in arb_name(),
            local_ts in vec(arb_net(), 0..3),
            remote_ts in vec(arb_net(), 0..3),
            esp_proposals in vec(arb_word(), 0..3),
            start_action in of(proptest::sample::select(StartAction::ALL)),
            dpd_action in of(proptest::sample::select(DpdAction::ALL)),
            extra in arb_extra(CHILD_KEYS),
        ) -> Child {
            Child { name, local_ts, remote_ts, esp_proposals, start_action, dpd_action, extra }
        }
    }

    prop_compose! {
        fn arb_connection()(
            name in arb_name(),
            version in of(0u8..=2),
            local_addrs in vec(arb_word(), 0..3),
            remote_addrs in vec(arb_word(), 0..3),
            proposals in vec(arb_word(), 0..3),
            dpd_delay in of(any::<u32>()),
            extra in arb_extra(CONN_KEYS),
            local in of(arb_auth()),
            remote in of(arb_auth()),
            children in vec(arb_child(), 0..3),
        ) -> Connection {
            let mut seen = BTreeSet::new();
            let children = children.into_iter().filter(|c| seen.insert(c.name.clone())).collect();
            Connection { name, version, local_addrs, remote_addrs, proposals, dpd_delay, extra, local, remote, children }
        }
    }

    fn arb_secret() -> impl Strategy<Value = Secret> {
        prop_oneof![
            "[ -!#-\\[\\]-~]{1,24}".prop_filter_map("text", |s| Secret::text(s).ok()),
            "0x[0-9a-f]{2,16}".prop_filter_map("hex", |s| Secret::encoded(s).ok()),
            "0s[A-Za-z0-9+/]{4,16}={0,2}".prop_filter_map("b64", |s| Secret::encoded(s).ok()),
        ]
    }

    prop_compose! {
        fn arb_ike_secret()(
            suffix in "(-[a-z0-9-]{1,10})?",
            ids in vec(("(id|id-[a-z0-9]{1,4})", arb_text()), 0..3),
            secret in arb_secret(),
        ) -> Option<IkeSecret> {
            let name = Name::new(format!("ike{suffix}")).ok()?;
            let mut seen = BTreeSet::new();
            let ids = ids
                .into_iter()
                .filter(|(k, _)| seen.insert(k.clone()))
                .filter_map(|(k, v)| Name::new(k).ok().map(|k| (k, v)))
                .collect();
            Some(IkeSecret { name, ids, secret })
        }
    }

    pub(crate) fn arb_swanctl() -> impl Strategy<Value = SwanctlConf> {
        (
            vec(arb_comment(), 0..3),
            vec(arb_connection(), 0..3),
            vec(arb_ike_secret(), 0..3),
        )
            .prop_map(|(header, connections, secrets)| {
                let mut seen = BTreeSet::new();
                let connections = connections
                    .into_iter()
                    .filter(|c| seen.insert(c.name.clone()))
                    .collect();
                let mut seen = BTreeSet::new();
                let secrets = secrets
                    .into_iter()
                    .flatten()
                    .filter(|s| seen.insert(s.name.clone()))
                    .collect();
                SwanctlConf {
                    header,
                    connections,
                    secrets,
                }
            })
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

    fn w(s: &str) -> Word {
        Word::new(s).unwrap()
    }

    fn t(s: &str) -> Text {
        Text::new(s).unwrap()
    }

    /// Reference 003's vpc1-to-vpc2 tunnel as the Virginia gateway's
    /// strongSwan configuration (private address local, EIPs as IDs).
    fn virginia() -> SwanctlConf {
        let mut child = Child::new(Name::new("vpc1-to-vpc2").unwrap());
        child.local_ts = vec!["10.11.0.0/16".parse().unwrap()];
        child.remote_ts = vec!["12.11.0.0/16".parse().unwrap()];
        child.esp_proposals = vec![w("aes256-sha256-modp2048")];
        child.start_action = Some(StartAction::Start);
        child.dpd_action = Some(DpdAction::Restart);
        let mut conn = Connection::new(Name::new("vpc1-to-vpc2").unwrap());
        conn.version = Some(1);
        conn.local_addrs = vec![w("10.11.4.5")];
        conn.remote_addrs = vec![w("203.0.113.20")];
        conn.proposals = vec![w("aes256-sha256-modp2048")];
        conn.dpd_delay = Some(30);
        conn.extra = vec![Param::new("dpd_timeout", "120s").unwrap()];
        conn.local = Some(AuthRound {
            auth: Some(w("psk")),
            id: Some(t("198.51.100.10")),
        });
        conn.remote = Some(AuthRound {
            auth: Some(w("psk")),
            id: Some(t("203.0.113.20")),
        });
        conn.children = vec![child];
        SwanctlConf {
            header: comments(
                "Generated by vpnsim from scenario aws-three-regions\nDEMO KEY derived from scenario seed 3 -- for tests and demos only, never for production",
            )
            .unwrap(),
            connections: vec![conn],
            secrets: vec![IkeSecret {
                name: Name::new("ike-vpc1-to-vpc2").unwrap(),
                ids: vec![
                    (Name::new("id-1").unwrap(), t("198.51.100.10")),
                    (Name::new("id-2").unwrap(), t("203.0.113.20")),
                ],
                secret: Secret::text("demo-psk").unwrap(),
            }],
        }
    }

    #[test]
    fn snapshot_virginia() {
        let conf = virginia();
        assert!(conf.validate().is_ok());
        let text = conf.emit();
        insta::assert_snapshot!("virginia_swanctl", text);
        let back = SwanctlConf::parse(&text).unwrap();
        assert_eq!(back, conf);
        assert_eq!(
            back.secret_for("203.0.113.20", "198.51.100.10")
                .unwrap()
                .expose_secret(),
            "demo-psk"
        );
        let c = back.connection("vpc1-to-vpc2").unwrap();
        assert_eq!(c.child("vpc1-to-vpc2").unwrap().remote_ts.len(), 1);
    }

    #[test]
    fn reads_strongswan_style_files() {
        // Tabs, comments after values and braces, quoted DNs, CRLF,
        // suffixed id keys, an encoded secret, durations in minutes.
        let text = "# swanctl.conf\r\nconnections {\r\n\tgw { # the gateway\n\t\tversion = 2\n\t\tremote_addrs = 192.0.2.1, %any # peers\n\t\tdpd_delay = 1m\n\t\trekey_time = 4h\n\t\tlocal {\n\t\t\tauth = pubkey\n\t\t\tid = \"C=CH, O=x, CN=gw # not a comment\"\n\t\t}\n\t\tchildren {\n\t\t\tnet {\n\t\t\t\tlocal_ts = 10.0.0.0/8, 2001:db8::/32\n\t\t\t\tmode = tunnel\n\t\t\t}\n\t\t}\n\t}\n}\nsecrets {\n\tike-gw {\n\t\tid-a = @a\n\t\tsecret = 0sYWJjZA==\n\t}\n}\n";
        let conf = SwanctlConf::parse(text).unwrap();
        let c = conf.connection("gw").unwrap();
        assert_eq!(c.version, Some(2));
        assert_eq!(c.remote_addrs, vec![w("192.0.2.1"), w("%any")]);
        assert_eq!(c.dpd_delay, Some(60));
        assert_eq!(c.extra, vec![Param::new("rekey_time", "4h").unwrap()]);
        assert_eq!(
            c.local.as_ref().unwrap().id.as_ref().unwrap().as_str(),
            "C=CH, O=x, CN=gw # not a comment"
        );
        let child = c.child("net").unwrap();
        assert_eq!(child.local_ts.len(), 2);
        assert_eq!(child.extra, vec![Param::new("mode", "tunnel").unwrap()]);
        assert_eq!(conf.secrets[0].secret.expose_secret(), "0sYWJjZA==");
        assert_eq!(conf.header, comments("swanctl.conf").unwrap());
        assert_eq!(SwanctlConf::parse(&conf.emit()).unwrap(), conf);
    }

    #[test]
    fn rejections_with_lines() {
        for (text, line, what) in [
            ("connections {\n", 1, "end of file"),
            ("}\n", 1, "without an open section"),
            ("a = b\n", 1, "outside a section"),
            ("frob {\n}\n", 1, "unknown section"),
            ("connections {\n}\nconnections {\n}\n", 3, "second"),
            (
                "connections {\n  a {\n    version = 3\n  }\n}\n",
                3,
                "0, 1 or 2",
            ),
            (
                "connections {\n  a {\n    x = 1\n    x = 2\n  }\n}\n",
                4,
                "twice",
            ),
            ("connections {\n  a {\n  }\n  a {\n  }\n}\n", 4, "twice"),
            (
                "connections {\n  a {\n    dpd_delay = 3x\n  }\n}\n",
                3,
                "duration",
            ),
            (
                "connections {\n  a {\n    local {\n      frob = 1\n    }\n  }\n}\n",
                4,
                "unexpected key",
            ),
            (
                "connections {\n  a {\n    children {\n      c {\n        local_ts = 10.0.0.1/8\n      }\n    }\n  }\n}\n",
                5,
                "host bits",
            ),
            (
                "connections {\n  a {\n    children {\n      c {\n        start_action = go\n      }\n    }\n  }\n}\n",
                5,
                "unknown value",
            ),
            (
                "connections {\n  a {\n    remote_addrs = a,,b\n  }\n}\n",
                3,
                "remote_addrs",
            ),
            ("connections {\n  a {\n    x =\n  }\n}\n", 3, "empty value"),
            (
                "connections {\n  a {\n    x = \"unterminated\n  }\n}\n",
                3,
                "unterminated",
            ),
            (
                "connections {\n  a {\n    x = \"a\" b\n  }\n}\n",
                3,
                "after the closing quote",
            ),
            ("connections {\n  a b {\n  }\n}\n", 2, "invalid name"),
            (
                "secrets {\n  eap-x {\n    secret = \"a\"\n  }\n}\n",
                2,
                "only ike",
            ),
            (
                "secrets {\n  ike-x {\n    id = a\n  }\n}\n",
                2,
                "no `secret`",
            ),
            (
                "secrets {\n  ike-x {\n    secret = \"a\\\"b\"\n  }\n}\n",
                3,
                "",
            ),
            ("connections {\n  a {\u{7}\n", 2, "control"),
            ("connections\n{\n}\n", 1, "expected"),
        ] {
            let e = SwanctlConf::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn nesting_is_limited() {
        let deep = "a {\n".repeat(MAX_DEPTH + 1) + &"}\n".repeat(MAX_DEPTH + 1);
        let e = SwanctlConf::parse(&deep).unwrap_err();
        assert_eq!(e.line, MAX_DEPTH + 1, "{e}");
        assert!(e.message.contains("deeper"), "{e}");
        // A huge nesting fails fast at the limit, without recursion.
        let huge = "a {\n".repeat(100_000);
        assert!(SwanctlConf::parse(&huge).is_err());
    }

    #[test]
    fn debug_redacts_secrets() {
        let debug = format!("{:?}", virginia());
        assert!(!debug.contains("demo-psk"), "{debug}");
        assert!(debug.contains("redacted"));
    }

    proptest! {
        #[test]
        fn roundtrip(conf in arb_swanctl()) {
            prop_assert!(conf.validate().is_ok());
            let text = conf.emit();
            prop_assert_eq!(SwanctlConf::parse(&text), Ok(conf), "{}", text);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,300}") {
            let _ = SwanctlConf::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_bytes(bytes in any::<Vec<u8>>()) {
            let _ = SwanctlConf::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn parse_never_panics_on_line_soup(lines in proptest::collection::vec(
            "(connections|secrets|children|local|ike-a|[a-z_]{1,6}| |\t|=|\\{|\\}|\"|#|,|[0-9./]{1,8})*", 0..16)) {
            let text = lines.join("\n");
            if let Ok(conf) = SwanctlConf::parse(&text) {
                prop_assert!(conf.validate().is_ok());
                prop_assert_eq!(SwanctlConf::parse(&conf.emit()), Ok(conf));
            }
        }

        #[test]
        fn mutations_parse_or_fail_cleanly(conf in arb_swanctl(), index in any::<usize>(),
            c in prop_oneof![Just('"'), Just('='), Just('\n'), Just(' '), Just('#'), Just(','), Just('{'), Just('}'), any::<char>()]) {
            let text = mutate(&conf.emit(), index, c);
            if let Ok(parsed) = SwanctlConf::parse(&text) {
                prop_assert!(parsed.validate().is_ok());
                prop_assert_eq!(SwanctlConf::parse(&parsed.emit()), Ok(parsed));
            }
        }
    }
}

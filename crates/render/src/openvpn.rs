//! OpenVPN 2.6 configuration files.
//!
//! Two layers:
//! - [`Config`], the file itself: an ordered list of [`Item`]s (directives,
//!   inline blocks such as `<ca>…</ca>`, comments, blank lines). It
//!   implements [`Format`]; `parse` follows OpenVPN's own line reader
//!   (`parse_line`/`read_inline_file` in `options_util.c`): double quotes
//!   with `\\` and `\"` escapes, single quotes without escapes, backslash
//!   escapes outside quotes (only before `\`, `"` or a space, anything else
//!   is OpenVPN's "Bad backslash" error), `#` and `;` comments at the start
//!   of any parameter, an optional leading `--` on the option name, a UTF-8
//!   BOM on the first line, lines of at most [`MAX_LINE`] bytes, at most 16
//!   tokens on a line.
//! - Typed views and builders for the files vpnsim generates: [`Server`]
//!   (eduVPN-style node process), [`Client`] (profile with inline
//!   certificates) and [`TapPeer`] (one end of the point-to-point TAP link of
//!   the dual-path bond). Each has `to_config` (validates, then builds a
//!   [`Config`] in a fixed order) and `from_config` (reads any order, rejects
//!   duplicates of single-valued options, reports the line of the problem).
//!
//! Secrets: the `Debug` output of inline blocks that hold private keys
//! (`<key>`, `<tls-crypt>`, `<tls-auth>`, …) and of every inline
//! [`Material`] is redacted.

use std::collections::BTreeSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::format::{Format, ParseError};
use crate::ifupdown::MacAddr;

/// Longest line (in bytes, without the newline) OpenVPN reads without
/// splitting or warning: its line buffer holds 256 bytes including `\n`.
pub const MAX_LINE: usize = 254;
/// Longest parameter OpenVPN accepts (`OPTION_PARM_SIZE`).
pub const MAX_PARAM: usize = 256;
/// Most arguments after the option name (`MAX_PARMS` is 16 tokens).
pub const MAX_ARGS: usize = 15;

/// A value that cannot be written as an OpenVPN config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(message.into()))
}

/// C's `isspace` in the C locale (OpenVPN's `space()` adds the NUL that ends
/// a C string; the tokenizer handles that end itself).
fn c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{b}' | '\u{c}' | '\r')
}

/// Text we can put on a line: no control characters other than tab.
fn check_text(what: &str, s: &str) -> Result<(), String> {
    match s.chars().find(|&c| c.is_control() && c != '\t') {
        Some(c) => Err(format!("{what} contains the control character {c:?}")),
        None => Ok(()),
    }
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if !first_ok
        || !chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        || name.len() > 64
    {
        return Err(format!(
            "`{name}` is not an OpenVPN option name (lowercase letters, digits and `-`)"
        ));
    }
    Ok(())
}

/// Writes one parameter so that OpenVPN's tokenizer reads it back unchanged.
fn quote(arg: &str, out: &mut String) {
    let bare = !arg.is_empty()
        && !arg.starts_with(['#', ';'])
        && !arg
            .chars()
            .any(|c| c_space(c) || matches!(c, '"' | '\'' | '\\'));
    if bare {
        out.push_str(arg);
        return;
    }
    out.push('"');
    for c in arg.chars() {
        if matches!(c, '\\' | '"') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// OpenVPN's `parse_line`: splits one line into parameters.
fn tokenize(line: &str) -> Result<Vec<String>, String> {
    #[derive(PartialEq, Clone, Copy)]
    enum St {
        Initial,
        Quoted,
        SQuoted,
        Unquoted,
    }
    let mut tokens = Vec::new();
    let mut st = St::Initial;
    let mut backslash = false;
    let mut parm = String::new();
    for c in line.chars().chain(std::iter::once('\0')) {
        if !backslash && c == '\\' && st != St::SQuoted {
            backslash = true;
            continue;
        }
        let space = c == '\0' || c_space(c);
        let mut out = None;
        let mut done = false;
        match st {
            St::Initial => {
                if !space {
                    if c == ';' || c == '#' {
                        break;
                    }
                    if !backslash && c == '"' {
                        st = St::Quoted;
                    } else if !backslash && c == '\'' {
                        st = St::SQuoted;
                    } else {
                        out = Some(c);
                        st = St::Unquoted;
                    }
                }
            }
            St::Unquoted => {
                if !backslash && space {
                    done = true;
                } else {
                    out = Some(c);
                }
            }
            St::Quoted => {
                if !backslash && c == '"' {
                    done = true;
                } else {
                    out = Some(c);
                }
            }
            St::SQuoted => {
                if c == '\'' {
                    done = true;
                } else {
                    out = Some(c);
                }
            }
        }
        if done {
            tokens.push(std::mem::take(&mut parm));
            st = St::Initial;
        }
        if c == '\0' {
            out = None;
        }
        let bad_escape = backslash && out.is_some_and(|o| !(o == '\\' || o == '"' || c_space(o)));
        if let (true, Some(o)) = (bad_escape, out) {
            return Err(format!(
                "bad backslash usage before {o:?} (only `\\\\`, `\\\"` and `\\ ` are escapes)"
            ));
        }
        backslash = false;
        if let Some(o) = out {
            if parm.len() + o.len_utf8() > MAX_PARAM {
                return Err(format!("parameter longer than {MAX_PARAM} bytes"));
            }
            parm.push(o);
        }
    }
    match st {
        St::Initial => {}
        St::Quoted => return Err("no closing quotation (\")".into()),
        St::SQuoted => return Err("no closing single quotation (')".into()),
        St::Unquoted => return Err("line ends inside a parameter (trailing backslash)".into()),
    }
    if tokens.len() > MAX_ARGS + 1 {
        return Err(format!(
            "more than {} parameters on one line (OpenVPN drops the rest)",
            MAX_ARGS + 1
        ));
    }
    Ok(tokens)
}

/// One option line: `name arg arg …`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    name: String,
    args: Vec<String>,
}

impl Directive {
    /// Validates the name (lowercase letters, digits, `-`), the arguments
    /// (no control characters but tab, at most [`MAX_PARAM`] bytes, at most
    /// [`MAX_ARGS`]) and the length of the line they make.
    pub fn new<I, S>(name: &str, args: I) -> Result<Directive, Invalid>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        check_name(name).map_err(Invalid)?;
        let args: Vec<String> = args.into_iter().map(Into::into).collect();
        if args.len() > MAX_ARGS {
            return invalid(format!(
                "`{name}` has {} arguments, OpenVPN reads at most {MAX_ARGS}",
                args.len()
            ));
        }
        for arg in &args {
            check_text(&format!("an argument of `{name}`"), arg).map_err(Invalid)?;
            if arg.len() > MAX_PARAM {
                return invalid(format!(
                    "an argument of `{name}` is longer than {MAX_PARAM} bytes"
                ));
            }
        }
        let d = Directive {
            name: name.to_owned(),
            args,
        };
        let len = d.line().len();
        if len > MAX_LINE {
            return invalid(format!(
                "the `{name}` line is {len} bytes long, OpenVPN reads at most {MAX_LINE}"
            ));
        }
        Ok(d)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn args(&self) -> &[String] {
        &self.args
    }

    pub fn arg(&self, i: usize) -> Option<&str> {
        self.args.get(i).map(String::as_str)
    }

    fn line(&self) -> String {
        let mut s = self.name.clone();
        for arg in &self.args {
            s.push(' ');
            quote(arg, &mut s);
        }
        s
    }
}

/// Options whose file may be given inline as `<tag>…</tag>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum InlineTag {
    Ca,
    Cert,
    Key,
    Dh,
    ExtraCerts,
    TlsCrypt,
    TlsCryptV2,
    TlsAuth,
    PeerFingerprint,
    Secret,
    CrlVerify,
    Pkcs12,
    AuthUserPass,
    HttpProxyUserPass,
}

impl InlineTag {
    pub const ALL: [InlineTag; 14] = [
        InlineTag::Ca,
        InlineTag::Cert,
        InlineTag::Key,
        InlineTag::Dh,
        InlineTag::ExtraCerts,
        InlineTag::TlsCrypt,
        InlineTag::TlsCryptV2,
        InlineTag::TlsAuth,
        InlineTag::PeerFingerprint,
        InlineTag::Secret,
        InlineTag::CrlVerify,
        InlineTag::Pkcs12,
        InlineTag::AuthUserPass,
        InlineTag::HttpProxyUserPass,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            InlineTag::Ca => "ca",
            InlineTag::Cert => "cert",
            InlineTag::Key => "key",
            InlineTag::Dh => "dh",
            InlineTag::ExtraCerts => "extra-certs",
            InlineTag::TlsCrypt => "tls-crypt",
            InlineTag::TlsCryptV2 => "tls-crypt-v2",
            InlineTag::TlsAuth => "tls-auth",
            InlineTag::PeerFingerprint => "peer-fingerprint",
            InlineTag::Secret => "secret",
            InlineTag::CrlVerify => "crl-verify",
            InlineTag::Pkcs12 => "pkcs12",
            InlineTag::AuthUserPass => "auth-user-pass",
            InlineTag::HttpProxyUserPass => "http-proxy-user-pass",
        }
    }

    pub fn from_name(name: &str) -> Option<InlineTag> {
        InlineTag::ALL.into_iter().find(|t| t.as_str() == name)
    }

    /// Whether the block holds secret material (redacted in `Debug`).
    pub fn is_secret(self) -> bool {
        matches!(
            self,
            InlineTag::Key
                | InlineTag::TlsCrypt
                | InlineTag::TlsCryptV2
                | InlineTag::TlsAuth
                | InlineTag::Secret
                | InlineTag::Pkcs12
                | InlineTag::AuthUserPass
                | InlineTag::HttpProxyUserPass
        )
    }
}

impl fmt::Display for InlineTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inline block `<tag>` … `</tag>`, its content kept line by line.
#[derive(Clone, PartialEq, Eq)]
pub struct Inline {
    tag: InlineTag,
    lines: Vec<String>,
}

impl fmt::Debug for Inline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("Inline");
        s.field("tag", &self.tag);
        if self.tag.is_secret() {
            s.field(
                "lines",
                &format_args!("<redacted: {} lines>", self.lines.len()),
            );
        } else {
            s.field("lines", &self.lines);
        }
        s.finish()
    }
}

impl Inline {
    /// A block from the file's text (`\n`-separated; one trailing newline
    /// does not make an extra line). Lines must not contain control
    /// characters but tab, must fit OpenVPN's line buffer and must not start
    /// (after blanks) with the closing tag.
    pub fn new(tag: InlineTag, text: &str) -> Result<Inline, Invalid> {
        let lines = if text.is_empty() {
            Vec::new()
        } else {
            text.strip_suffix('\n')
                .unwrap_or(text)
                .split('\n')
                .map(str::to_owned)
                .collect()
        };
        Inline::from_lines(tag, lines)
    }

    pub fn from_lines(tag: InlineTag, lines: Vec<String>) -> Result<Inline, Invalid> {
        let close = format!("</{tag}>");
        for line in &lines {
            Self::check_line(&close, line).map_err(|m| Invalid(format!("<{tag}>: {m}")))?;
        }
        Ok(Inline { tag, lines })
    }

    fn check_line(close: &str, line: &str) -> Result<(), String> {
        check_text("a line", line)?;
        if line.len() > MAX_LINE {
            return Err(format!("a line is longer than {MAX_LINE} bytes"));
        }
        if line.trim_start_matches(c_space).starts_with(close) {
            return Err(format!("a line starts with the closing tag {close}"));
        }
        Ok(())
    }

    pub fn tag(&self) -> InlineTag {
        self.tag
    }

    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The content as a file would hold it: every line ends with `\n`.
    pub fn text(&self) -> String {
        self.lines.iter().map(|l| format!("{l}\n")).collect()
    }
}

/// A comment line, written `# text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment(String);

impl Comment {
    pub fn new(text: &str) -> Result<Comment, Invalid> {
        check_text("a comment", text).map_err(Invalid)?;
        if text.len() + 2 > MAX_LINE {
            return invalid(format!("a comment is longer than {} bytes", MAX_LINE - 2));
        }
        Ok(Comment(text.to_owned()))
    }

    pub fn text(&self) -> &str {
        &self.0
    }
}

/// One element of a config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Directive(Directive),
    Inline(Inline),
    Comment(Comment),
    Blank,
}

impl Item {
    /// How many lines the item takes in the file.
    fn line_count(&self) -> usize {
        match self {
            Item::Inline(b) => b.lines.len() + 2,
            _ => 1,
        }
    }
}

/// An OpenVPN config file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    pub items: Vec<Item>,
}

impl Config {
    pub fn new() -> Config {
        Config::default()
    }

    /// A config that starts with these comment lines (for instance the note
    /// that a file holds demo keys) and a blank line.
    pub fn with_header<S: AsRef<str>>(lines: &[S]) -> Result<Config, Invalid> {
        let mut cfg = Config::new();
        for line in lines {
            cfg.comment(line.as_ref())?;
        }
        if !lines.is_empty() {
            cfg.blank();
        }
        Ok(cfg)
    }

    pub fn directive<I, S>(&mut self, name: &str, args: I) -> Result<&mut Config, Invalid>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.items
            .push(Item::Directive(Directive::new(name, args)?));
        Ok(self)
    }

    pub fn inline(&mut self, tag: InlineTag, text: &str) -> Result<&mut Config, Invalid> {
        self.items.push(Item::Inline(Inline::new(tag, text)?));
        Ok(self)
    }

    pub fn comment(&mut self, text: &str) -> Result<&mut Config, Invalid> {
        self.items.push(Item::Comment(Comment::new(text)?));
        Ok(self)
    }

    pub fn blank(&mut self) -> &mut Config {
        self.items.push(Item::Blank);
        self
    }

    /// The comment lines before the first other line.
    pub fn header(&self) -> Vec<&str> {
        self.items
            .iter()
            .map_while(|i| match i {
                Item::Comment(c) => Some(c.text()),
                _ => None,
            })
            .collect()
    }

    pub fn directives(&self) -> impl Iterator<Item = &Directive> {
        self.items.iter().filter_map(|i| match i {
            Item::Directive(d) => Some(d),
            _ => None,
        })
    }

    /// The last directive of that name (OpenVPN: the last one wins).
    pub fn get(&self, name: &str) -> Option<&Directive> {
        self.directives().filter(|d| d.name == name).last()
    }

    /// Every directive of that name, in file order (`remote`, `push`, `route`).
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Directive> + 'a {
        self.directives().filter(move |d| d.name == name)
    }

    pub fn inline_block(&self, tag: InlineTag) -> Option<&Inline> {
        self.items.iter().rev().find_map(|i| match i {
            Item::Inline(b) if b.tag == tag => Some(b),
            _ => None,
        })
    }

    /// Each item with the 1-based line it starts on.
    pub fn located(&self) -> impl Iterator<Item = (usize, &Item)> {
        self.items.iter().scan(1usize, |line, item| {
            let at = *line;
            *line += item.line_count();
            Some((at, item))
        })
    }
}

impl Format for Config {
    fn emit(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            match item {
                Item::Directive(d) => out.push_str(&d.line()),
                Item::Inline(b) => {
                    out.push_str(&format!("<{}>\n", b.tag));
                    for line in &b.lines {
                        out.push_str(line);
                        out.push('\n');
                    }
                    out.push_str(&format!("</{}>", b.tag));
                }
                Item::Comment(c) if c.0.is_empty() => out.push('#'),
                Item::Comment(c) => {
                    out.push_str("# ");
                    out.push_str(&c.0);
                }
                Item::Blank => {}
            }
            out.push('\n');
        }
        out
    }

    fn parse(text: &str) -> Result<Config, ParseError> {
        let body = text.strip_suffix('\n').unwrap_or(text);
        let lines: Vec<&str> = if text.is_empty() {
            Vec::new()
        } else {
            body.split('\n').collect()
        };
        let clean = |i: usize, raw: &str| -> Result<String, ParseError> {
            let mut line = raw.strip_suffix('\r').unwrap_or(raw);
            if i == 0 {
                line = line.strip_prefix('\u{feff}').unwrap_or(line);
            }
            if line.contains('\0') {
                return Err(ParseError::new(i + 1, "NUL byte in the line"));
            }
            if line.len() > MAX_LINE {
                return Err(ParseError::new(
                    i + 1,
                    format!("line longer than {MAX_LINE} bytes"),
                ));
            }
            Ok(line.to_owned())
        };
        let mut items = Vec::new();
        let mut i = 0;
        while i < lines.len() {
            let line = clean(i, lines[i])?;
            let no = i + 1;
            i += 1;
            let trimmed = line.trim_start_matches(c_space);
            if trimmed.is_empty() {
                items.push(Item::Blank);
                continue;
            }
            if let Some(rest) = trimmed.strip_prefix(['#', ';']) {
                let text = rest.strip_prefix(' ').unwrap_or(rest);
                let c = Comment::new(text).map_err(|e| ParseError::new(no, e.0))?;
                items.push(Item::Comment(c));
                continue;
            }
            let mut tokens = tokenize(&line).map_err(|m| ParseError::new(no, m))?;
            if tokens.is_empty() {
                items.push(Item::Blank);
                continue;
            }
            if tokens[0].len() >= 3 && tokens[0].starts_with("--") {
                tokens[0].drain(..2);
            }
            let first = &tokens[0];
            if tokens.len() == 1
                && first.len() >= 2
                && first.starts_with('<')
                && first.ends_with('>')
            {
                let name = &first[1..first.len() - 1];
                let Some(tag) = InlineTag::from_name(name) else {
                    return Err(ParseError::new(
                        no,
                        format!("unsupported inline block <{name}>"),
                    ));
                };
                let close = format!("</{tag}>");
                let mut content = Vec::new();
                let mut closed = false;
                while i < lines.len() {
                    let l = clean(i, lines[i])?;
                    i += 1;
                    if l.trim_start_matches(c_space).starts_with(&close) {
                        closed = true;
                        break;
                    }
                    Inline::check_line(&close, &l)
                        .map_err(|m| ParseError::new(i, format!("<{tag}>: {m}")))?;
                    content.push(l);
                }
                if !closed {
                    return Err(ParseError::new(
                        no,
                        format!("<{tag}> has no closing {close}"),
                    ));
                }
                items.push(Item::Inline(Inline {
                    tag,
                    lines: content,
                }));
                continue;
            }
            let name = tokens.remove(0);
            let d = Directive::new(&name, tokens).map_err(|e| ParseError::new(no, e.0))?;
            items.push(Item::Directive(d));
        }
        Ok(Config { items })
    }
}

// ---------------------------------------------------------------------------
// Typed values.
// ---------------------------------------------------------------------------

/// A key or certificate: a file path or the inline content.
#[derive(Clone, PartialEq, Eq)]
pub enum Material {
    File(String),
    Inline(String),
}

impl fmt::Debug for Material {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Material::File(p) => f.debug_tuple("File").field(p).finish(),
            Material::Inline(t) => write!(f, "Inline(<redacted: {} bytes>)", t.len()),
        }
    }
}

/// `dh`: `none` (ECDH only) or parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dh {
    None,
    Params(Material),
}

macro_rules! keyword_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                $name::ALL.iter().copied().find(|v| v.as_str() == s).ok_or_else(|| {
                    let all: Vec<&str> = $name::ALL.iter().map(|v| v.as_str()).collect();
                    format!("`{s}` is not one of {}", all.join(", "))
                })
            }
        }
    };
}

keyword_enum!(
    /// `proto`.
    Proto {
        Udp = "udp",
        Udp4 = "udp4",
        Udp6 = "udp6",
        Tcp = "tcp",
        Tcp4 = "tcp4",
        Tcp6 = "tcp6",
        TcpServer = "tcp-server",
        Tcp4Server = "tcp4-server",
        Tcp6Server = "tcp6-server",
        TcpClient = "tcp-client",
        Tcp4Client = "tcp4-client",
        Tcp6Client = "tcp6-client",
    }
);

impl Proto {
    pub fn is_udp(self) -> bool {
        matches!(self, Proto::Udp | Proto::Udp4 | Proto::Udp6)
    }
}

keyword_enum!(
    /// `dev-type`.
    DevType { Tun = "tun", Tap = "tap" }
);

keyword_enum!(
    /// `topology`.
    Topology { Net30 = "net30", P2p = "p2p", Subnet = "subnet" }
);

keyword_enum!(
    /// `verify-client-cert`.
    VerifyClientCert { None = "none", Optional = "optional", Require = "require" }
);

keyword_enum!(
    /// `remote-cert-tls`: the extended key usage the peer's certificate must have.
    CertUsage { Client = "client", Server = "server" }
);

/// `dev NAME` plus `dev-type` when the name does not say tun or tap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dev {
    pub name: String,
    pub dev_type: Option<DevType>,
}

impl Dev {
    pub fn new(name: &str, dev_type: Option<DevType>) -> Dev {
        Dev {
            name: name.to_owned(),
            dev_type,
        }
    }

    /// The device type OpenVPN will use.
    pub fn kind(&self) -> Option<DevType> {
        self.dev_type.or_else(|| {
            if self.name.starts_with("tun") {
                Some(DevType::Tun)
            } else if self.name.starts_with("tap") {
                Some(DevType::Tap)
            } else {
                None
            }
        })
    }

    fn check(&self) -> Result<(), String> {
        let ok = !self.name.is_empty()
            && self.name.len() <= 15
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
        if !ok {
            return Err(format!(
                "`{}` is not a Linux interface name (1-15 of A-Z a-z 0-9 - _ .)",
                self.name
            ));
        }
        if self.kind().is_none() {
            return Err(format!("dev `{}` needs a dev-type (tun or tap)", self.name));
        }
        Ok(())
    }
}

/// `remote HOST [PORT [PROTO]]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub host: String,
    pub port: Option<u16>,
    pub proto: Option<Proto>,
}

impl Remote {
    fn check(&self) -> Result<(), String> {
        let ok = !self.host.is_empty()
            && self.host.len() <= 253
            && self
                .host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        if !ok {
            return Err(format!("`{}` is not a host name or address", self.host));
        }
        if self.proto.is_some() && self.port.is_none() {
            return Err("a remote with a proto needs a port".into());
        }
        if self.port == Some(0) {
            return Err("remote port 0".into());
        }
        Ok(())
    }
}

/// A `push "…"` option sent to clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Push {
    /// `route NET MASK`.
    Route(Ipv4Net),
    /// `route-ipv6 NET/LEN`.
    RouteIpv6(Ipv6Net),
    /// `redirect-gateway FLAGS…` (def1, ipv6, bypass-dhcp, …).
    RedirectGateway(Vec<String>),
    /// `dhcp-option DNS ADDR` (OpenVPN 2.6 takes v4 and v6 addresses here).
    Dns(IpAddr),
    /// Anything else, verbatim. Must not be one of the forms above.
    Other(String),
}

impl Push {
    pub fn text(&self) -> String {
        match self {
            Push::Route(n) => format!("route {} {}", n.network(), n.netmask()),
            Push::RouteIpv6(n) => format!("route-ipv6 {}", n.trunc()),
            Push::RedirectGateway(flags) if flags.is_empty() => "redirect-gateway".into(),
            Push::RedirectGateway(flags) => format!("redirect-gateway {}", flags.join(" ")),
            Push::Dns(a) => format!("dhcp-option DNS {a}"),
            Push::Other(s) => s.clone(),
        }
    }

    /// Reads the text of a `push` argument.
    pub fn parse(text: &str) -> Result<Push, String> {
        if text.contains(',') {
            return Err(
                "a pushed option must not contain `,` (OpenVPN splits PUSH_REPLY at commas)".into(),
            );
        }
        let t: Vec<&str> = text.split(c_space).filter(|s| !s.is_empty()).collect();
        match t.as_slice() {
            ["route", net, rest @ ..] => {
                let addr: Ipv4Addr = net
                    .parse()
                    .map_err(|_| format!("push route: `{net}` is not an IPv4 address"))?;
                let mask: Ipv4Addr = match rest {
                    [] => Ipv4Addr::BROADCAST,
                    [m] => m
                        .parse()
                        .map_err(|_| format!("push route: `{m}` is not a netmask"))?,
                    _ => return Err("push route: vpnsim reads `route NET MASK` only".into()),
                };
                let n = Ipv4Net::with_netmask(addr, mask)
                    .map_err(|_| format!("push route: `{mask}` is not a netmask"))?;
                if n.trunc() != n {
                    return Err(format!(
                        "push route: {addr} is not the network address of {}",
                        n.trunc()
                    ));
                }
                Ok(Push::Route(n))
            }
            ["route-ipv6", net] => {
                let n: Ipv6Net = net
                    .parse()
                    .map_err(|_| format!("push route-ipv6: `{net}` is not an IPv6 prefix"))?;
                if n.trunc() != n {
                    return Err(format!("push route-ipv6: `{net}` has host bits set"));
                }
                Ok(Push::RouteIpv6(n))
            }
            ["route-ipv6", ..] => {
                Err("push route-ipv6: vpnsim reads `route-ipv6 NET/LEN` only".into())
            }
            ["redirect-gateway", flags @ ..] => Ok(Push::RedirectGateway(
                flags.iter().map(|s| (*s).to_owned()).collect(),
            )),
            ["dhcp-option", "DNS" | "DNS6", addr] => addr
                .parse()
                .map(Push::Dns)
                .map_err(|_| format!("push dhcp-option DNS: `{addr}` is not an address")),
            _ => Ok(Push::Other(text.to_owned())),
        }
    }
}

/// Dead-peer detection: `keepalive` (a server pushes it) or `ping` and
/// `ping-restart`, in seconds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Liveness {
    pub keepalive: Option<(u32, u32)>,
    pub ping: Option<u32>,
    pub ping_restart: Option<u32>,
}

impl Liveness {
    /// `keepalive I T` as OpenVPN expands it on this side (a server doubles
    /// the restart timeout for itself), overridden by explicit options.
    pub fn effective(&self, server: bool) -> (Option<u32>, Option<u32>) {
        let (mut ping, mut restart) = match self.keepalive {
            Some((i, t)) => (Some(i), Some(if server { t.saturating_mul(2) } else { t })),
            None => (None, None),
        };
        if self.ping.is_some() {
            ping = self.ping;
        }
        if self.ping_restart.is_some() {
            restart = self.ping_restart;
        }
        (ping, restart)
    }
}

/// The TLS side: PKI material, tls-crypt, peer checks, data-channel ciphers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tls {
    pub ca: Material,
    pub cert: Material,
    pub key: Material,
    /// Required on a TLS server; `Dh::None` means ECDH only.
    pub dh: Option<Dh>,
    pub tls_crypt: Option<Material>,
    pub remote_cert_tls: Option<CertUsage>,
    pub verify_client_cert: Option<VerifyClientCert>,
    /// `data-ciphers`, joined with `:`; empty means OpenVPN's default.
    pub data_ciphers: Vec<String>,
}

/// Scripts, pid file and management interface.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Daemon {
    pub script_security: Option<u8>,
    pub route_up: Option<String>,
    pub route_pre_down: Option<String>,
    pub writepid: Option<String>,
    pub management: Option<(IpAddr, u16)>,
}

// ---------------------------------------------------------------------------
// Writing typed configs.
// ---------------------------------------------------------------------------

struct Writer {
    cfg: Config,
    inline: Vec<Inline>,
}

impl Writer {
    fn new(header: &[String]) -> Result<Writer, Invalid> {
        Ok(Writer {
            cfg: Config::with_header(header)?,
            inline: Vec::new(),
        })
    }

    fn d<S: Into<String>>(
        &mut self,
        name: &str,
        args: impl IntoIterator<Item = S>,
    ) -> Result<(), Invalid> {
        self.cfg.directive(name, args)?;
        Ok(())
    }

    fn flag(&mut self, name: &str) -> Result<(), Invalid> {
        self.d(name, Vec::<String>::new())
    }

    fn material(&mut self, tag: InlineTag, m: &Material) -> Result<(), Invalid> {
        match m {
            Material::File(path) => self.d(tag.as_str(), [path.as_str()]),
            Material::Inline(text) => {
                self.inline.push(Inline::new(tag, text)?);
                Ok(())
            }
        }
    }

    fn dev(&mut self, dev: &Dev) -> Result<(), Invalid> {
        dev.check().map_err(Invalid)?;
        self.d("dev", [dev.name.as_str()])?;
        if let Some(t) = dev.dev_type {
            self.d("dev-type", [t.as_str()])?;
        }
        Ok(())
    }

    fn remote(&mut self, r: &Remote) -> Result<(), Invalid> {
        r.check().map_err(Invalid)?;
        let mut args = vec![r.host.clone()];
        if let Some(p) = r.port {
            args.push(p.to_string());
        }
        if let Some(p) = r.proto {
            args.push(p.to_string());
        }
        self.d("remote", args)
    }

    fn liveness(&mut self, l: &Liveness) -> Result<(), Invalid> {
        if let Some((i, t)) = l.keepalive {
            self.d("keepalive", [i.to_string(), t.to_string()])?;
        }
        if let Some(p) = l.ping {
            self.d("ping", [p.to_string()])?;
        }
        if let Some(p) = l.ping_restart {
            self.d("ping-restart", [p.to_string()])?;
        }
        Ok(())
    }

    fn tls(&mut self, t: &Tls) -> Result<(), Invalid> {
        if let Some(u) = t.remote_cert_tls {
            self.d("remote-cert-tls", [u.as_str()])?;
        }
        if let Some(v) = t.verify_client_cert {
            self.d("verify-client-cert", [v.as_str()])?;
        }
        if !t.data_ciphers.is_empty() {
            if let Some(c) = t
                .data_ciphers
                .iter()
                .find(|c| c.is_empty() || c.contains([':', ' ', '\t']))
            {
                return invalid(format!("`{c}` is not a cipher name"));
            }
            self.d("data-ciphers", [t.data_ciphers.join(":")])?;
        }
        match &t.dh {
            Some(Dh::None) => self.d("dh", ["none"])?,
            Some(Dh::Params(Material::File(p))) if p == "none" => {
                return invalid("dh file `none` would read as `dh none`; use Dh::None");
            }
            Some(Dh::Params(m)) => self.material(InlineTag::Dh, m)?,
            None => {}
        }
        self.material(InlineTag::Ca, &t.ca)?;
        self.material(InlineTag::Cert, &t.cert)?;
        self.material(InlineTag::Key, &t.key)?;
        if let Some(m) = &t.tls_crypt {
            self.material(InlineTag::TlsCrypt, m)?;
        }
        Ok(())
    }

    fn daemon(&mut self, d: &Daemon) -> Result<(), Invalid> {
        if let Some(s) = d.script_security {
            if s > 3 {
                return invalid(format!("script-security {s}: OpenVPN knows levels 0 to 3"));
            }
            self.d("script-security", [s.to_string()])?;
        }
        if (d.route_up.is_some() || d.route_pre_down.is_some())
            && d.script_security.unwrap_or(1) < 2
        {
            return invalid("route-up/route-pre-down scripts need script-security 2 or more");
        }
        if let Some(s) = &d.route_up {
            self.d("route-up", [s.as_str()])?;
        }
        if let Some(s) = &d.route_pre_down {
            self.d("route-pre-down", [s.as_str()])?;
        }
        if let Some(p) = &d.writepid {
            self.d("writepid", [p.as_str()])?;
        }
        if let Some((ip, port)) = d.management {
            if port == 0 {
                return invalid("management port 0");
            }
            self.d("management", [ip.to_string(), port.to_string()])?;
        }
        Ok(())
    }

    fn extra(&mut self, extra: &[Directive], known: &[&str]) -> Result<(), Invalid> {
        for d in extra {
            if known.contains(&d.name()) {
                return invalid(format!(
                    "extra directive `{}` is a typed field; set the field instead",
                    d.name()
                ));
            }
            self.cfg.items.push(Item::Directive(d.clone()));
        }
        Ok(())
    }

    fn finish(mut self) -> Config {
        if !self.inline.is_empty() {
            self.cfg.blank();
            self.cfg
                .items
                .extend(self.inline.into_iter().map(Item::Inline));
        }
        self.cfg
    }
}

fn check_port(what: &str, port: u16) -> Result<(), Invalid> {
    if port == 0 {
        return invalid(format!("{what} 0 is not a port"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Reading typed configs.
// ---------------------------------------------------------------------------

const COMMON: &[&str] = &[
    "dev",
    "dev-type",
    "proto",
    "keepalive",
    "ping",
    "ping-restart",
    "ca",
    "cert",
    "key",
    "dh",
    "tls-crypt",
    "remote-cert-tls",
    "verify-client-cert",
    "data-ciphers",
    "script-security",
    "route-up",
    "route-pre-down",
    "writepid",
    "management",
];

/// What the common options of any typed config say.
#[derive(Default)]
struct Common {
    header: Vec<String>,
    dev: Option<String>,
    dev_type: Option<DevType>,
    proto: Option<Proto>,
    liveness: Liveness,
    ca: Option<Material>,
    cert: Option<Material>,
    key: Option<Material>,
    dh: Option<Dh>,
    tls_crypt: Option<Material>,
    remote_cert_tls: Option<CertUsage>,
    verify_client_cert: Option<VerifyClientCert>,
    data_ciphers: Vec<String>,
    daemon: Daemon,
    extra: Vec<Directive>,
    seen: BTreeSet<String>,
}

fn err(line: usize, m: impl Into<String>) -> ParseError {
    ParseError::new(line, m)
}

fn exact(line: usize, d: &Directive, n: usize) -> Result<&[String], ParseError> {
    if d.args.len() != n {
        return Err(err(
            line,
            format!("`{}` takes {n} argument(s), found {}", d.name, d.args.len()),
        ));
    }
    Ok(&d.args)
}

fn num<T: FromStr>(line: usize, what: &str, s: &str) -> Result<T, ParseError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(line, format!("{what}: `{s}` is not a number")));
    }
    s.parse()
        .map_err(|_| err(line, format!("{what}: `{s}` is out of range")))
}

fn port(line: usize, what: &str, s: &str) -> Result<u16, ParseError> {
    let p: u16 = num(line, what, s)?;
    if p == 0 {
        return Err(err(line, format!("{what}: port 0")));
    }
    Ok(p)
}

fn keyword<T: FromStr<Err = String>>(line: usize, what: &str, s: &str) -> Result<T, ParseError> {
    s.parse()
        .map_err(|m: String| err(line, format!("{what}: {m}")))
}

fn ip(line: usize, what: &str, s: &str) -> Result<IpAddr, ParseError> {
    s.parse()
        .map_err(|_| err(line, format!("{what}: `{s}` is not an IP address")))
}

fn set<T>(slot: &mut Option<T>, line: usize, name: &str, v: T) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(err(line, format!("`{name}` given twice")));
    }
    *slot = Some(v);
    Ok(())
}

impl Common {
    /// Walks the config: `specific` sees every directive first and returns
    /// whether it took it; the rest goes to the common options or `extra`.
    fn read(
        cfg: &Config,
        known: &[&str],
        mut specific: impl FnMut(&mut Common, usize, &Directive) -> Result<bool, ParseError>,
    ) -> Result<Common, ParseError> {
        let mut c = Common {
            header: cfg.header().into_iter().map(str::to_owned).collect(),
            ..Common::default()
        };
        for (line, item) in cfg.located() {
            match item {
                Item::Comment(_) | Item::Blank => {}
                Item::Inline(b) => {
                    let m = Material::Inline(b.text());
                    let name = b.tag.as_str();
                    match b.tag {
                        InlineTag::Ca => set(&mut c.ca, line, name, m)?,
                        InlineTag::Cert => set(&mut c.cert, line, name, m)?,
                        InlineTag::Key => set(&mut c.key, line, name, m)?,
                        InlineTag::Dh => set(&mut c.dh, line, name, Dh::Params(m))?,
                        InlineTag::TlsCrypt => set(&mut c.tls_crypt, line, name, m)?,
                        other => {
                            return Err(err(
                                line,
                                format!("inline <{other}> is not part of a vpnsim config"),
                            ));
                        }
                    }
                }
                Item::Directive(d) => {
                    let single = !matches!(d.name(), "push" | "remote");
                    if single && known.contains(&d.name()) && !c.seen.insert(d.name().to_owned()) {
                        return Err(err(line, format!("`{}` given twice", d.name())));
                    }
                    if !specific(&mut c, line, d)? {
                        c.common(line, d, known)?;
                    }
                }
            }
        }
        Ok(c)
    }

    fn common(&mut self, line: usize, d: &Directive, known: &[&str]) -> Result<(), ParseError> {
        let name = d.name();
        match name {
            "dev" => self.dev = Some(exact(line, d, 1)?[0].clone()),
            "dev-type" => self.dev_type = Some(keyword(line, name, &exact(line, d, 1)?[0])?),
            "proto" => self.proto = Some(keyword(line, name, &exact(line, d, 1)?[0])?),
            "keepalive" => {
                let a = exact(line, d, 2)?;
                self.liveness.keepalive = Some((num(line, name, &a[0])?, num(line, name, &a[1])?));
            }
            "ping" => self.liveness.ping = Some(num(line, name, &exact(line, d, 1)?[0])?),
            "ping-restart" => {
                self.liveness.ping_restart = Some(num(line, name, &exact(line, d, 1)?[0])?)
            }
            "ca" | "cert" | "key" | "tls-crypt" => {
                let m = Material::File(exact(line, d, 1)?[0].clone());
                let slot = match name {
                    "ca" => &mut self.ca,
                    "cert" => &mut self.cert,
                    "key" => &mut self.key,
                    _ => &mut self.tls_crypt,
                };
                set(slot, line, name, m)?;
            }
            "dh" => {
                let a = &exact(line, d, 1)?[0];
                let v = if a == "none" {
                    Dh::None
                } else {
                    Dh::Params(Material::File(a.clone()))
                };
                set(&mut self.dh, line, name, v)?;
            }
            "remote-cert-tls" => {
                self.remote_cert_tls = Some(keyword(line, name, &exact(line, d, 1)?[0])?)
            }
            "verify-client-cert" => {
                self.verify_client_cert = Some(keyword(line, name, &exact(line, d, 1)?[0])?)
            }
            "data-ciphers" => {
                let a = &exact(line, d, 1)?[0];
                let list: Vec<String> = a.split(':').map(str::to_owned).collect();
                if list.iter().any(|c| c.is_empty() || c.contains(c_space)) {
                    return Err(err(
                        line,
                        format!("data-ciphers: `{a}` is not a `:`-separated list"),
                    ));
                }
                self.data_ciphers = list;
            }
            "script-security" => {
                let s: u8 = num(line, name, &exact(line, d, 1)?[0])?;
                if s > 3 {
                    return Err(err(
                        line,
                        format!("script-security {s}: OpenVPN knows levels 0 to 3"),
                    ));
                }
                self.daemon.script_security = Some(s);
            }
            "route-up" => self.daemon.route_up = Some(exact(line, d, 1)?[0].clone()),
            "route-pre-down" => self.daemon.route_pre_down = Some(exact(line, d, 1)?[0].clone()),
            "writepid" => self.daemon.writepid = Some(exact(line, d, 1)?[0].clone()),
            "management" => {
                let a = exact(line, d, 2)?;
                self.daemon.management = Some((ip(line, name, &a[0])?, port(line, name, &a[1])?));
            }
            _ if known.contains(&name) => {
                return Err(err(line, format!("`{name}` is not read here")));
            }
            _ => self.extra.push(d.clone()),
        }
        Ok(())
    }

    fn dev(&mut self) -> Result<Dev, ParseError> {
        let dev = Dev {
            name: self.dev.take().ok_or_else(|| err(0, "missing `dev`"))?,
            dev_type: self.dev_type,
        };
        dev.check().map_err(|m| err(0, m))?;
        Ok(dev)
    }

    fn tls(&mut self) -> Result<Tls, ParseError> {
        let missing = |what: &str| err(0, format!("missing `{what}` (file or inline block)"));
        Ok(Tls {
            ca: self.ca.take().ok_or_else(|| missing("ca"))?,
            cert: self.cert.take().ok_or_else(|| missing("cert"))?,
            key: self.key.take().ok_or_else(|| missing("key"))?,
            dh: self.dh.take(),
            tls_crypt: self.tls_crypt.take(),
            remote_cert_tls: self.remote_cert_tls,
            verify_client_cert: self.verify_client_cert,
            data_ciphers: std::mem::take(&mut self.data_ciphers),
        })
    }

    fn daemon(&mut self) -> Result<Daemon, ParseError> {
        let d = std::mem::take(&mut self.daemon);
        if (d.route_up.is_some() || d.route_pre_down.is_some())
            && d.script_security.unwrap_or(1) < 2
        {
            return Err(err(
                0,
                "route-up/route-pre-down scripts need script-security 2 or more",
            ));
        }
        Ok(d)
    }
}

fn parse_remote(line: usize, d: &Directive) -> Result<Remote, ParseError> {
    let a = d.args();
    if a.is_empty() || a.len() > 3 {
        return Err(err(line, "`remote` takes HOST [PORT [PROTO]]"));
    }
    let r = Remote {
        host: a[0].clone(),
        port: a.get(1).map(|p| port(line, "remote", p)).transpose()?,
        proto: a.get(2).map(|p| keyword(line, "remote", p)).transpose()?,
    };
    r.check().map_err(|m| err(line, m))?;
    Ok(r)
}

fn flag(line: usize, d: &Directive) -> Result<bool, ParseError> {
    exact(line, d, 0)?;
    Ok(true)
}

// ---------------------------------------------------------------------------
// Server.
// ---------------------------------------------------------------------------

/// One OpenVPN server process (an eduVPN node's `tun-N-0`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// Comment lines at the top of the file.
    pub header: Vec<String>,
    pub dev: Dev,
    pub proto: Proto,
    pub port: u16,
    pub local: Option<IpAddr>,
    pub topology: Option<Topology>,
    /// `server NET MASK`: the IPv4 client pool (the server takes `.1`).
    pub network: Option<Ipv4Net>,
    /// `server-ipv6 NET/LEN`.
    pub network6: Option<Ipv6Net>,
    pub push: Vec<Push>,
    /// `ifconfig-pool-persist FILE [SECONDS]`: pool entries by common name
    /// ([`PoolFile`]).
    pub pool_persist: Option<PoolPersist>,
    pub liveness: Liveness,
    pub tls: Tls,
    pub daemon: Daemon,
    /// Other directives, written after the typed ones.
    pub extra: Vec<Directive>,
}

/// `ifconfig-pool-persist FILE [SECONDS]`: OpenVPN reads the pool's
/// entries (common name → address) from FILE at start. With SECONDS 0 the
/// file is read only and its entries are fixed: each belongs to its common
/// name and is never handed to another client; otherwise OpenVPN rewrites
/// it every SECONDS (600 when left out) and a returning client merely
/// prefers its old address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolPersist {
    pub path: String,
    pub seconds: Option<u32>,
}

impl PoolPersist {
    /// Whether the file's entries are reserved for their common names.
    pub fn fixed(&self) -> bool {
        self.seconds == Some(0)
    }
}

const SERVER: &[&str] = &[
    "port",
    "local",
    "topology",
    "server",
    "server-ipv6",
    "push",
    "ifconfig-pool-persist",
];

impl Server {
    pub fn to_config(&self) -> Result<Config, Invalid> {
        let mut w = Writer::new(&self.header)?;
        w.dev(&self.dev)?;
        w.d("proto", [self.proto.as_str()])?;
        check_port("port", self.port)?;
        w.d("port", [self.port.to_string()])?;
        if let Some(a) = self.local {
            w.d("local", [a.to_string()])?;
        }
        if let Some(t) = self.topology {
            w.d("topology", [t.as_str()])?;
        }
        if let Some(n) = self.network {
            if n.trunc() != n || n.prefix_len() > 29 {
                return invalid(format!(
                    "server {n}: needs a network address and a /29 or larger pool"
                ));
            }
            w.d("server", [n.network().to_string(), n.netmask().to_string()])?;
        }
        if let Some(n) = self.network6 {
            if n.trunc() != n || !(64..=124).contains(&n.prefix_len()) {
                return invalid(format!(
                    "server-ipv6 {n}: needs a network address and a /64 to /124 prefix"
                ));
            }
            w.d("server-ipv6", [n.to_string()])?;
        }
        for p in &self.push {
            let text = p.text();
            if Push::parse(&text).as_ref() != Ok(p) {
                return invalid(format!("push `{text}` does not read back as itself"));
            }
            w.d("push", [text])?;
        }
        if let Some(pp) = &self.pool_persist {
            check_text("ifconfig-pool-persist", &pp.path).map_err(Invalid)?;
            if pp.path.is_empty() {
                return invalid("ifconfig-pool-persist needs a file");
            }
            match pp.seconds {
                Some(n) => w.d("ifconfig-pool-persist", [pp.path.clone(), n.to_string()])?,
                None => w.d("ifconfig-pool-persist", [pp.path.as_str()])?,
            }
        }
        w.liveness(&self.liveness)?;
        if self.tls.dh.is_none() {
            return invalid("a TLS server needs `dh` (Dh::None for ECDH only)");
        }
        w.tls(&self.tls)?;
        w.daemon(&self.daemon)?;
        w.extra(&self.extra, &[COMMON, SERVER].concat())?;
        Ok(w.finish())
    }

    pub fn from_config(cfg: &Config) -> Result<Server, ParseError> {
        let known = [COMMON, SERVER].concat();
        let (mut port_, mut local, mut topology, mut network, mut network6, mut push) =
            (None, None, None, None, None, Vec::new());
        let mut pool_persist = None;
        let mut c = Common::read(cfg, &known, |_, line, d| {
            let name = d.name();
            match name {
                "port" => port_ = Some(port(line, name, &exact(line, d, 1)?[0])?),
                "local" => local = Some(ip(line, name, &exact(line, d, 1)?[0])?),
                "topology" => topology = Some(keyword(line, name, &exact(line, d, 1)?[0])?),
                "server" => {
                    let a = exact(line, d, 2)?;
                    let addr: Ipv4Addr = a[0].parse().map_err(|_| {
                        err(line, format!("server: `{}` is not an IPv4 address", a[0]))
                    })?;
                    let mask: Ipv4Addr = a[1]
                        .parse()
                        .map_err(|_| err(line, format!("server: `{}` is not a netmask", a[1])))?;
                    let n = Ipv4Net::with_netmask(addr, mask)
                        .map_err(|_| err(line, format!("server: `{mask}` is not a netmask")))?;
                    if n.trunc() != n || n.prefix_len() > 29 {
                        return Err(err(
                            line,
                            format!("server {n}: needs a network address and a /29 or larger pool"),
                        ));
                    }
                    network = Some(n);
                }
                "server-ipv6" => {
                    let a = &exact(line, d, 1)?[0];
                    let n: Ipv6Net = a
                        .parse()
                        .map_err(|_| err(line, format!("server-ipv6: `{a}` is not a prefix")))?;
                    if n.trunc() != n || !(64..=124).contains(&n.prefix_len()) {
                        return Err(err(
                            line,
                            format!(
                                "server-ipv6 {n}: needs a network address and a /64 to /124 prefix"
                            ),
                        ));
                    }
                    network6 = Some(n);
                }
                "push" => push.push(Push::parse(&exact(line, d, 1)?[0]).map_err(|m| err(line, m))?),
                "ifconfig-pool-persist" => {
                    if pool_persist.is_some() {
                        return Err(err(line, "ifconfig-pool-persist given twice"));
                    }
                    let (path, seconds) = match d.args() {
                        [path] => (path, None),
                        [path, n] => (path, Some(num(line, name, n)?)),
                        _ => {
                            return Err(err(
                                line,
                                "ifconfig-pool-persist takes a file and optionally seconds",
                            ));
                        }
                    };
                    pool_persist = Some(PoolPersist {
                        path: path.clone(),
                        seconds,
                    });
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let server = Server {
            dev: c.dev()?,
            proto: c.proto.ok_or_else(|| err(0, "missing `proto`"))?,
            port: port_.ok_or_else(|| err(0, "missing `port`"))?,
            local,
            topology,
            network,
            network6,
            push,
            pool_persist,
            liveness: std::mem::take(&mut c.liveness),
            tls: c.tls()?,
            daemon: c.daemon()?,
            header: std::mem::take(&mut c.header),
            extra: std::mem::take(&mut c.extra),
        };
        if server.tls.dh.is_none() {
            return Err(err(
                0,
                "missing `dh` (a TLS server needs it; `dh none` for ECDH only)",
            ));
        }
        Ok(server)
    }

    pub fn render(&self) -> Result<String, Invalid> {
        Ok(self.to_config()?.emit())
    }

    pub fn parse(text: &str) -> Result<Server, ParseError> {
        Server::from_config(&Config::parse(text)?)
    }

    /// The server's own tunnel address (`.1` of the pool).
    pub fn tunnel_address(&self) -> Option<Ipv4Addr> {
        self.network
            .map(|n| Ipv4Addr::from(u32::from(n.network()).wrapping_add(1)))
    }
}

// ---------------------------------------------------------------------------
// Client.
// ---------------------------------------------------------------------------

/// A client profile (`client`, remotes, usually inline certificates).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub header: Vec<String>,
    pub dev: Dev,
    /// Default protocol for remotes that name none.
    pub proto: Option<Proto>,
    pub remotes: Vec<Remote>,
    pub remote_random: bool,
    pub resolv_retry_infinite: bool,
    pub nobind: bool,
    pub liveness: Liveness,
    pub tls: Tls,
    pub daemon: Daemon,
    pub extra: Vec<Directive>,
}

const CLIENT: &[&str] = &[
    "client",
    "remote",
    "remote-random",
    "resolv-retry",
    "nobind",
];

impl Client {
    pub fn to_config(&self) -> Result<Config, Invalid> {
        let mut w = Writer::new(&self.header)?;
        w.flag("client")?;
        w.dev(&self.dev)?;
        if let Some(p) = self.proto {
            w.d("proto", [p.as_str()])?;
        }
        if self.remotes.is_empty() {
            return invalid("a client needs at least one remote");
        }
        for r in &self.remotes {
            w.remote(r)?;
        }
        if self.remote_random {
            w.flag("remote-random")?;
        }
        if self.resolv_retry_infinite {
            w.d("resolv-retry", ["infinite"])?;
        }
        if self.nobind {
            w.flag("nobind")?;
        }
        w.liveness(&self.liveness)?;
        w.tls(&self.tls)?;
        w.daemon(&self.daemon)?;
        w.extra(&self.extra, &[COMMON, CLIENT].concat())?;
        Ok(w.finish())
    }

    pub fn from_config(cfg: &Config) -> Result<Client, ParseError> {
        let known = [COMMON, CLIENT].concat();
        let (mut client, mut remotes, mut remote_random, mut resolv, mut nobind) =
            (false, Vec::new(), false, false, false);
        let mut c = Common::read(cfg, &known, |_, line, d| {
            match d.name() {
                "client" => client = flag(line, d)?,
                "remote" => remotes.push(parse_remote(line, d)?),
                "remote-random" => remote_random = flag(line, d)?,
                "nobind" => nobind = flag(line, d)?,
                "resolv-retry" => {
                    if exact(line, d, 1)?[0] != "infinite" {
                        return Err(err(line, "vpnsim reads `resolv-retry infinite` only"));
                    }
                    resolv = true;
                }
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        if !client {
            return Err(err(0, "missing `client`"));
        }
        if remotes.is_empty() {
            return Err(err(0, "missing `remote`"));
        }
        Ok(Client {
            dev: c.dev()?,
            proto: c.proto,
            remotes,
            remote_random,
            resolv_retry_infinite: resolv,
            nobind,
            liveness: std::mem::take(&mut c.liveness),
            tls: c.tls()?,
            daemon: c.daemon()?,
            header: std::mem::take(&mut c.header),
            extra: std::mem::take(&mut c.extra),
        })
    }

    pub fn render(&self) -> Result<String, Invalid> {
        Ok(self.to_config()?.emit())
    }

    pub fn parse(text: &str) -> Result<Client, ParseError> {
        Client::from_config(&Config::parse(text)?)
    }
}

// ---------------------------------------------------------------------------
// TAP point-to-point peer.
// ---------------------------------------------------------------------------

/// Which end of a point-to-point TLS link this is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapSide {
    /// `tls-server`: waits for the peer on `local:port` (no `remote`).
    Listen { local: Option<IpAddr>, port: u16 },
    /// `tls-client`: dials the peer.
    Dial { remotes: Vec<Remote>, nobind: bool },
}

/// One end of a point-to-point TAP link (reference 004's `ovn0`/`ovn1`):
/// `dev NAME` + `dev-type tap`, TLS without `mode server`, a pinned MAC,
/// and the route-up/route-pre-down scripts that move the device in and out
/// of the bond.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPeer {
    pub header: Vec<String>,
    pub dev: Dev,
    pub lladdr: Option<MacAddr>,
    pub proto: Proto,
    pub side: TapSide,
    pub liveness: Liveness,
    pub tls: Tls,
    pub daemon: Daemon,
    pub extra: Vec<Directive>,
}

const TAP: &[&str] = &[
    "lladdr",
    "port",
    "local",
    "remote",
    "nobind",
    "tls-server",
    "tls-client",
];

impl TapPeer {
    pub fn to_config(&self) -> Result<Config, Invalid> {
        let mut w = Writer::new(&self.header)?;
        w.dev(&self.dev)?;
        if self.dev.kind() != Some(DevType::Tap) {
            return invalid(format!("dev `{}` is not a tap device", self.dev.name));
        }
        if let Some(mac) = self.lladdr {
            w.d("lladdr", [mac.to_string()])?;
        }
        w.d("proto", [self.proto.as_str()])?;
        match &self.side {
            TapSide::Listen { local, port } => {
                w.flag("tls-server")?;
                if let Some(a) = local {
                    w.d("local", [a.to_string()])?;
                }
                check_port("port", *port)?;
                w.d("port", [port.to_string()])?;
                if self.tls.dh.is_none() {
                    return invalid("a TLS server needs `dh` (Dh::None for ECDH only)");
                }
            }
            TapSide::Dial { remotes, nobind } => {
                w.flag("tls-client")?;
                if remotes.is_empty() {
                    return invalid("the dialling end needs at least one remote");
                }
                for r in remotes {
                    w.remote(r)?;
                }
                if *nobind {
                    w.flag("nobind")?;
                }
            }
        }
        w.liveness(&self.liveness)?;
        w.tls(&self.tls)?;
        w.daemon(&self.daemon)?;
        w.extra(&self.extra, &[COMMON, TAP].concat())?;
        Ok(w.finish())
    }

    pub fn from_config(cfg: &Config) -> Result<TapPeer, ParseError> {
        let known = [COMMON, TAP].concat();
        let (mut lladdr, mut port_, mut local, mut remotes, mut nobind) =
            (None, None, None, Vec::new(), false);
        let (mut server, mut client) = (None, None);
        let mut c = Common::read(cfg, &known, |_, line, d| {
            let name = d.name();
            match name {
                "lladdr" => {
                    let a = &exact(line, d, 1)?[0];
                    lladdr = Some(a.parse().map_err(|m| err(line, format!("lladdr: {m}")))?);
                }
                "port" => port_ = Some((line, port(line, name, &exact(line, d, 1)?[0])?)),
                "local" => local = Some((line, ip(line, name, &exact(line, d, 1)?[0])?)),
                "remote" => remotes.push((line, parse_remote(line, d)?)),
                "nobind" => nobind = flag(line, d)?,
                "tls-server" => server = Some(flag(line, d).map(|_| line)?),
                "tls-client" => client = Some(flag(line, d).map(|_| line)?),
                _ => return Ok(false),
            }
            Ok(true)
        })?;
        let side = match (server, client) {
            (Some(_), None) => {
                if let Some((line, _)) = remotes.first() {
                    return Err(err(
                        *line,
                        "the listening (tls-server) end takes no `remote`",
                    ));
                }
                if nobind {
                    return Err(err(0, "the listening (tls-server) end cannot be `nobind`"));
                }
                let port = port_
                    .map(|(_, p)| p)
                    .ok_or_else(|| err(0, "missing `port` on the tls-server end"))?;
                TapSide::Listen {
                    local: local.map(|(_, a)| a),
                    port,
                }
            }
            (None, Some(_)) => {
                if let Some((line, _)) = port_.or(local.map(|(l, _)| (l, 0))) {
                    return Err(err(
                        line,
                        "the dialling (tls-client) end takes no `port` or `local`",
                    ));
                }
                if remotes.is_empty() {
                    return Err(err(0, "missing `remote` on the tls-client end"));
                }
                TapSide::Dial {
                    remotes: remotes.into_iter().map(|(_, r)| r).collect(),
                    nobind,
                }
            }
            (Some(_), Some(line)) => return Err(err(line, "both `tls-server` and `tls-client`")),
            (None, None) => return Err(err(0, "missing `tls-server` or `tls-client`")),
        };
        let dev = c.dev()?;
        if dev.kind() != Some(DevType::Tap) {
            return Err(err(0, format!("dev `{}` is not a tap device", dev.name)));
        }
        let peer = TapPeer {
            dev,
            lladdr,
            proto: c.proto.ok_or_else(|| err(0, "missing `proto`"))?,
            side,
            liveness: std::mem::take(&mut c.liveness),
            tls: c.tls()?,
            daemon: c.daemon()?,
            header: std::mem::take(&mut c.header),
            extra: std::mem::take(&mut c.extra),
        };
        if matches!(peer.side, TapSide::Listen { .. }) && peer.tls.dh.is_none() {
            return Err(err(
                0,
                "missing `dh` (a TLS server needs it; `dh none` for ECDH only)",
            ));
        }
        Ok(peer)
    }

    pub fn render(&self) -> Result<String, Invalid> {
        Ok(self.to_config()?.emit())
    }

    pub fn parse(text: &str) -> Result<TapPeer, ParseError> {
        TapPeer::from_config(&Config::parse(text)?)
    }
}

/// The file `ifconfig-pool-persist` names: one pool entry per line,
/// `CN,IPv4[,IPv6]` (either address may be empty, not both); `#` and `;`
/// lines are comments (OpenVPN's `ifconfig_pool_read`). The header comes
/// first, as `# ` comment lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolFile {
    pub header: Vec<String>,
    pub entries: Vec<PoolEntry>,
}

/// One pool entry: the address(es) a common name gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolEntry {
    pub common_name: String,
    pub v4: Option<Ipv4Addr>,
    pub v6: Option<Ipv6Addr>,
}

/// OpenVPN reads each field of a pool entry into a 128-byte buffer.
const POOL_FIELD_MAX: usize = 127;

impl PoolEntry {
    fn check(&self) -> Result<(), String> {
        let cn = &self.common_name;
        if cn.is_empty()
            || cn.len() > POOL_FIELD_MAX
            || cn.starts_with(['#', ';'])
            || cn.contains(',')
            || cn.chars().any(char::is_control)
        {
            return Err(format!(
                "`{cn}` cannot be a pool entry's common name (1 to {POOL_FIELD_MAX} bytes, no comma or control character, not starting with # or ;)"
            ));
        }
        if self.v4.is_none() && self.v6.is_none() {
            return Err(format!("pool entry `{cn}` has no address"));
        }
        Ok(())
    }
}

impl PoolFile {
    /// The text, after checking the header and every entry.
    pub fn render(&self) -> Result<String, Invalid> {
        for line in &self.header {
            check_text("header", line).map_err(Invalid)?;
        }
        for e in &self.entries {
            e.check().map_err(Invalid)?;
        }
        Ok(self.emit())
    }
}

impl Format for PoolFile {
    fn emit(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            out.push_str(format!("# {line}").trim_end());
            out.push('\n');
        }
        for e in &self.entries {
            out.push_str(&e.common_name);
            out.push(',');
            if let Some(a) = e.v4 {
                out.push_str(&a.to_string());
            }
            if let Some(a) = e.v6 {
                out.push(',');
                out.push_str(&a.to_string());
            }
            out.push('\n');
        }
        out
    }

    fn parse(text: &str) -> Result<PoolFile, ParseError> {
        let mut header = Vec::new();
        let mut entries = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            if line.is_empty() {
                continue;
            }
            if line.starts_with(['#', ';']) {
                if entries.is_empty() {
                    let body = line.get(1..).unwrap_or_default();
                    header.push(body.strip_prefix(' ').unwrap_or(body).to_string());
                }
                continue;
            }
            let mut fields = line.split(',');
            let (Some(cn), Some(v4)) = (fields.next(), fields.next()) else {
                return Err(err(n, "a pool entry is `CN,IPv4[,IPv6]`"));
            };
            let v6 = fields.next();
            if fields.next().is_some() {
                return Err(err(n, "a pool entry has at most three fields"));
            }
            let v4 = match v4 {
                "" => None,
                a => Some(
                    a.parse()
                        .map_err(|_| err(n, format!("`{a}` is not an IPv4 address")))?,
                ),
            };
            let v6 = match v6 {
                None | Some("") => None,
                Some(a) => Some(
                    a.parse()
                        .map_err(|_| err(n, format!("`{a}` is not an IPv6 address")))?,
                ),
            };
            let entry = PoolEntry {
                common_name: cn.to_string(),
                v4,
                v6,
            };
            entry.check().map_err(|m| err(n, m))?;
            entries.push(entry);
        }
        Ok(PoolFile { header, entries })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv6Addr;

    const FAKE_CA: &str =
        "-----BEGIN CERTIFICATE-----\nFAKE-CA-FOR-SNAPSHOTS-ONLY\n-----END CERTIFICATE-----\n";
    const FAKE_CERT: &str = "-----BEGIN CERTIFICATE-----\nFAKE-CLIENT-CERT-FOR-SNAPSHOTS-ONLY\n-----END CERTIFICATE-----\n";
    const FAKE_KEY: &str = "-----BEGIN PRIVATE KEY-----\nFAKE-CLIENT-KEY-FOR-SNAPSHOTS-ONLY\n-----END PRIVATE KEY-----\n";
    const FAKE_TC: &str = "-----BEGIN OpenVPN Static key V1-----\n00000000000000000000000000000000\n-----END OpenVPN Static key V1-----\n";

    fn files(dir: &str, name: &str) -> Tls {
        Tls {
            ca: Material::File(format!("{dir}/ca.crt")),
            cert: Material::File(format!("{dir}/{name}.crt")),
            key: Material::File(format!("{dir}/{name}.key")),
            dh: Some(Dh::None),
            tls_crypt: Some(Material::File(format!("{dir}/tls-crypt.key"))),
            remote_cert_tls: None,
            verify_client_cert: None,
            data_ciphers: vec!["AES-256-GCM".into(), "CHACHA20-POLY1305".into()],
        }
    }

    /// 001's node-a profile: range 10.1.0.0/25, range6 fd00:1:1:1::/64,
    /// udp/1194, default gateway, DNS, management on its managementIp.
    fn node_a_server() -> Server {
        Server {
            header: vec![
                "eduVPN node-a, profile 1 (Secure Internet), process 0: udp/1194".into(),
                "Generated by vpnsim; do not edit.".into(),
            ],
            dev: Dev::new("tun-1-0", None),
            proto: Proto::Udp,
            port: 1194,
            local: Some("145.0.6.72".parse().unwrap()),
            topology: Some(Topology::Subnet),
            network: Some("10.1.0.0/25".parse().unwrap()),
            network6: Some("fd00:1:1:1::/64".parse().unwrap()),
            push: vec![
                Push::RedirectGateway(vec!["def1".into(), "ipv6".into()]),
                Push::Route("0.0.0.0/1".parse().unwrap()),
                Push::RouteIpv6("2000::/3".parse().unwrap()),
                Push::Dns("9.9.9.9".parse().unwrap()),
                Push::Dns("2620:fe::fe".parse().unwrap()),
                Push::Other("block-outside-dns".into()),
            ],
            pool_persist: Some(PoolPersist {
                path: "/etc/openvpn/server/ipp-tun-1-0.txt".into(),
                seconds: Some(0),
            }),
            liveness: Liveness {
                keepalive: Some((10, 60)),
                ..Liveness::default()
            },
            tls: Tls {
                verify_client_cert: Some(VerifyClientCert::Require),
                ..files("/etc/openvpn/server/node-a", "server")
            },
            daemon: Daemon {
                script_security: Some(2),
                route_up: None,
                route_pre_down: None,
                writepid: Some("/run/openvpn/tun-1-0.pid".into()),
                management: Some(("145.0.6.72".parse().unwrap(), 11940)),
            },
            extra: vec![Directive::new("verb", ["3"]).unwrap()],
        }
    }

    fn client_profile() -> Client {
        Client {
            header: vec![
                "eduVPN profile \"Secure Internet\" for client-1 (DEMO certificates: not for production)".into(),
            ],
            dev: Dev::new("tun", None),
            proto: None,
            remotes: vec![
                Remote { host: "nodes.frkovpn.tuxed.net".into(), port: Some(1194), proto: Some(Proto::Udp) },
                Remote { host: "nodes.frkovpn.tuxed.net".into(), port: Some(1194), proto: Some(Proto::TcpClient) },
            ],
            remote_random: true,
            resolv_retry_infinite: true,
            nobind: true,
            liveness: Liveness::default(),
            tls: Tls {
                ca: Material::Inline(FAKE_CA.into()),
                cert: Material::Inline(FAKE_CERT.into()),
                key: Material::Inline(FAKE_KEY.into()),
                dh: None,
                tls_crypt: Some(Material::Inline(FAKE_TC.into())),
                remote_cert_tls: Some(CertUsage::Server),
                verify_client_cert: None,
                data_ciphers: vec!["AES-256-GCM".into(), "CHACHA20-POLY1305".into()],
            },
            daemon: Daemon::default(),
            extra: vec![],
        }
    }

    /// 004's ovn0 link: machine A dials B over ISP A, B listens on udp/1194.
    fn ovn0(dial: bool) -> TapPeer {
        let (me, mac) = if dial {
            ("machine-a", "72:2d:a8:a3:a2:01")
        } else {
            ("machine-b", "02:5e:00:00:00:01")
        };
        TapPeer {
            header: vec![format!(
                "ovn0 on {me}: TAP link slave of bond0 (dual-path-bond)"
            )],
            dev: Dev::new("ovn0", Some(DevType::Tap)),
            lladdr: Some(mac.parse().unwrap()),
            proto: Proto::Udp,
            side: if dial {
                TapSide::Dial {
                    remotes: vec![Remote {
                        host: "198.51.100.2".into(),
                        port: Some(1194),
                        proto: None,
                    }],
                    nobind: true,
                }
            } else {
                TapSide::Listen {
                    local: Some("198.51.100.2".parse().unwrap()),
                    port: 1194,
                }
            },
            liveness: Liveness {
                keepalive: None,
                ping: Some(10),
                ping_restart: Some(60),
            },
            tls: Tls {
                remote_cert_tls: Some(if dial {
                    CertUsage::Server
                } else {
                    CertUsage::Client
                }),
                dh: if dial { None } else { Some(Dh::None) },
                ..files("/etc/openvpn/ovn0", me)
            },
            daemon: Daemon {
                script_security: Some(2),
                route_up: Some("/etc/openvpn/scripts/ovn-to-bond.sh".into()),
                route_pre_down: Some("/etc/openvpn/scripts/ovn-remove-bond.sh".into()),
                writepid: Some("/run/openvpn/ovn0.pid".into()),
                management: None,
            },
            extra: vec![],
        }
    }

    #[test]
    fn snapshot_node_a_server() {
        let s = node_a_server();
        let text = s.render().unwrap();
        insta::assert_snapshot!("node_a_server", text);
        assert_eq!(Server::parse(&text).unwrap(), s);
        assert_eq!(s.tunnel_address(), Some(Ipv4Addr::new(10, 1, 0, 1)));
    }

    #[test]
    fn snapshot_client_profile() {
        let c = client_profile();
        let text = c.render().unwrap();
        insta::assert_snapshot!("client_profile_inline", text);
        assert_eq!(Client::parse(&text).unwrap(), c);
    }

    #[test]
    fn snapshot_tap_pair() {
        for (dial, name) in [
            (true, "tap_ovn0_machine_a_dial"),
            (false, "tap_ovn0_machine_b_listen"),
        ] {
            let p = ovn0(dial);
            let text = p.render().unwrap();
            insta::assert_snapshot!(name, text);
            assert_eq!(TapPeer::parse(&text).unwrap(), p);
        }
    }

    #[test]
    fn debug_redacts_secrets() {
        let c = client_profile();
        let dbg = format!("{:?} {:?}", c, c.to_config().unwrap());
        assert!(!dbg.contains("FAKE-CLIENT-KEY"), "{dbg}");
        assert!(!dbg.contains("00000000000000000000000000000000"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn quoting_follows_openvpn() {
        let t = |line: &str| tokenize(line);
        assert_eq!(
            t(r#"push "route 10.0.0.0 255.0.0.0""#).unwrap(),
            ["push", "route 10.0.0.0 255.0.0.0"]
        );
        assert_eq!(t(r"a 'x\y' b\ c").unwrap(), ["a", r"x\y", "b c"]);
        assert_eq!(t(r#"a "q\"q\\" # comment"#).unwrap(), ["a", r#"q"q\"#]);
        assert_eq!(t(r#"a "x"y"#).unwrap(), ["a", "x", "y"]);
        assert_eq!(t("a b#c ;d").unwrap(), ["a", "b#c"]);
        assert_eq!(t(r#"a """#).unwrap(), ["a", ""]);
        assert!(t(r"a \q").is_err());
        assert!(t(r#"a "b"#).is_err());
        assert!(t("a 'b").is_err());
        assert!(t(r"a b\").is_err());
        assert!(t(&"a ".repeat(17)).is_err());
    }

    #[test]
    fn parse_accepts_openvpn_forms() {
        let text = "\u{feff}--dev tun\n  ; note\n\"proto\" udp # trailing\n<ca>\nA\n  </ca> junk\n\r\nport 1194\r\n";
        let cfg = Config::parse(text).unwrap();
        assert_eq!(cfg.get("dev").unwrap().args(), ["tun"]);
        assert_eq!(cfg.get("proto").unwrap().args(), ["udp"]);
        assert_eq!(cfg.inline_block(InlineTag::Ca).unwrap().text(), "A\n");
        assert_eq!(cfg.get("port").unwrap().args(), ["1194"]);
        let lines: Vec<usize> = cfg.located().map(|(l, _)| l).collect();
        assert_eq!(lines, [1, 2, 3, 4, 7, 8]);
    }

    #[test]
    fn parse_rejects() {
        for (text, line) in [
            ("<ca>\nx\n", 1),
            ("<connection>\n</connection>\n", 1),
            ("Dev tun\n", 1),
            ("dev tun\nproto \"udp\n", 2),
            ("dev tun\0\n", 1),
            (&format!("remote {}\n", "a".repeat(300)), 1),
            ("ok 1\nbad \\x\n", 2),
        ] {
            let e = Config::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
    }

    #[test]
    fn typed_views_report_lines() {
        let text = node_a_server()
            .render()
            .unwrap()
            .replace("port 1194", "port 1194\nport 1195");
        let e = Server::parse(&text).unwrap_err();
        assert!(e.message.contains("twice"), "{e}");
        assert!(e.line > 1);
        let text = node_a_server().render().unwrap().replace(
            "server 10.1.0.0 255.255.255.128",
            "server 10.1.0.1 255.255.255.128",
        );
        assert!(
            Server::parse(&text)
                .unwrap_err()
                .message
                .contains("network address")
        );
        let text = ovn0(true)
            .render()
            .unwrap()
            .replace("tls-client", "tls-server");
        assert!(TapPeer::parse(&text).is_err());
    }

    // --- property tests -----------------------------------------------------

    fn arg() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-zA-Z0-9./:_-]{1,12}",
            "\\PC{0,16}",
            r#"[ #;"'\\a\t]{0,8}"#,
        ]
    }

    fn directive() -> impl Strategy<Value = Directive> {
        ("[a-z][a-z0-9-]{0,15}", prop::collection::vec(arg(), 0..5))
            .prop_filter_map("fits a line", |(n, a)| Directive::new(&n, a).ok())
    }

    fn inline() -> impl Strategy<Value = Inline> {
        (
            prop::sample::select(InlineTag::ALL.to_vec()),
            prop::collection::vec(prop_oneof!["[A-Za-z0-9+/= -]{0,64}", "\\PC{0,20}"], 0..5),
        )
            .prop_filter_map("valid block", |(t, l)| Inline::from_lines(t, l).ok())
    }

    fn config() -> impl Strategy<Value = Config> {
        let item = prop_oneof![
            4 => directive().prop_map(Item::Directive),
            1 => inline().prop_map(Item::Inline),
            1 => "\\PC{0,30}".prop_filter_map("comment", |t| Comment::new(&t).ok().map(Item::Comment)),
            1 => Just(Item::Blank),
        ];
        prop::collection::vec(item, 0..12).prop_map(|items| Config { items })
    }

    fn material() -> impl Strategy<Value = Material> {
        prop_oneof![
            "/etc/openvpn/[a-z]{1,8}\\.(crt|key)".prop_map(Material::File),
            prop::collection::vec("[A-Za-z0-9+/=-]{1,64}", 0..4)
                .prop_map(|l| Material::Inline(l.iter().map(|s| format!("{s}\n")).collect())),
        ]
    }

    fn liveness() -> impl Strategy<Value = Liveness> {
        (
            prop::option::of((1u32..100, 1u32..1000)),
            prop::option::of(0u32..100),
            prop::option::of(0u32..1000),
        )
            .prop_map(|(keepalive, ping, ping_restart)| Liveness {
                keepalive,
                ping,
                ping_restart,
            })
    }

    fn tls(server: bool) -> impl Strategy<Value = Tls> {
        (
            material(),
            material(),
            material(),
            prop::option::of(prop_oneof![Just(Dh::None), material().prop_map(Dh::Params)]),
            prop::option::of(material()),
            prop::option::of(prop::sample::select(CertUsage::ALL.to_vec())),
            prop::option::of(prop::sample::select(VerifyClientCert::ALL.to_vec())),
            prop::collection::vec("[A-Z0-9-]{1,17}", 0..3),
        )
            .prop_map(
                move |(
                    ca,
                    cert,
                    key,
                    dh,
                    tls_crypt,
                    remote_cert_tls,
                    verify_client_cert,
                    data_ciphers,
                )| Tls {
                    ca,
                    cert,
                    key,
                    dh: if server { dh.or(Some(Dh::None)) } else { dh },
                    tls_crypt,
                    remote_cert_tls,
                    verify_client_cert,
                    data_ciphers,
                },
            )
    }

    fn daemon() -> impl Strategy<Value = Daemon> {
        (
            prop::option::of(0u8..=3),
            prop::option::of("/etc/openvpn/scripts/[a-z-]{1,12}\\.sh( [a-z]{1,4})?"),
            prop::option::of("/etc/openvpn/scripts/[a-z-]{1,12}\\.sh"),
            prop::option::of("/run/openvpn/[a-z0-9-]{1,12}\\.pid"),
            prop::option::of((any::<IpAddr>(), 1u16..)),
        )
            .prop_map(|(ss, up, down, writepid, management)| {
                let scripts = up.is_some() || down.is_some();
                Daemon {
                    script_security: if scripts {
                        Some(ss.unwrap_or(2).max(2))
                    } else {
                        ss
                    },
                    route_up: up,
                    route_pre_down: down,
                    writepid,
                    management,
                }
            })
    }

    fn dev() -> impl Strategy<Value = Dev> {
        prop_oneof![
            "tun(-[0-9]{1,2}-[0-9])?".prop_map(|n| Dev::new(&n, None)),
            (
                "[a-z][a-z0-9]{0,8}",
                prop::sample::select(DevType::ALL.to_vec())
            )
                .prop_map(|(n, t)| Dev::new(&n, Some(t))),
        ]
    }

    fn remote() -> impl Strategy<Value = Remote> {
        (
            "[a-z0-9][a-z0-9.-]{0,20}",
            prop::option::of((
                1u16..,
                prop::option::of(prop::sample::select(Proto::ALL.to_vec())),
            )),
        )
            .prop_map(|(host, pp)| Remote {
                host,
                port: pp.map(|(p, _)| p),
                proto: pp.and_then(|(_, pr)| pr),
            })
    }

    fn push() -> impl Strategy<Value = Push> {
        prop_oneof![
            (any::<Ipv4Addr>(), 0u8..=32)
                .prop_map(|(a, l)| Push::Route(Ipv4Net::new(a, l).unwrap().trunc())),
            (any::<Ipv6Addr>(), 0u8..=128)
                .prop_map(|(a, l)| Push::RouteIpv6(Ipv6Net::new(a, l).unwrap().trunc())),
            prop::collection::vec(
                prop::sample::select(vec!["def1", "ipv6", "bypass-dhcp", "!ipv4"]),
                0..3
            )
            .prop_map(|f| Push::RedirectGateway(f.into_iter().map(String::from).collect())),
            any::<IpAddr>().prop_map(Push::Dns),
            prop::sample::select(vec![
                "block-outside-dns",
                "ping 10",
                "route-gateway 10.0.0.1",
                "topology subnet"
            ])
            .prop_map(|s| Push::Other(s.into())),
        ]
    }

    fn header() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec("[ -~]{0,40}", 0..3)
    }

    fn extra() -> impl Strategy<Value = Vec<Directive>> {
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "verb",
                    "mute",
                    "persist-key",
                    "user",
                    "group",
                    "status",
                ]),
                prop::collection::vec("[a-z0-9/]{1,8}", 0..2),
            )
                .prop_map(|(n, a)| Directive::new(n, a).unwrap()),
            0..3,
        )
    }

    fn server() -> impl Strategy<Value = Server> {
        (
            (
                header(),
                dev(),
                prop::sample::select(Proto::ALL.to_vec()),
                1u16..,
                prop::option::of(any::<IpAddr>()),
            ),
            (
                prop::option::of(prop::sample::select(Topology::ALL.to_vec())),
                prop::option::of(
                    (any::<Ipv4Addr>(), 0u8..=29)
                        .prop_map(|(a, l)| Ipv4Net::new(a, l).unwrap().trunc()),
                ),
                prop::option::of(
                    (any::<Ipv6Addr>(), 64u8..=124)
                        .prop_map(|(a, l)| Ipv6Net::new(a, l).unwrap().trunc()),
                ),
                prop::collection::vec(push(), 0..5),
                prop::option::of(
                    ("/[a-z0-9/._-]{1,20}", prop::option::of(any::<u32>()))
                        .prop_map(|(path, seconds)| PoolPersist { path, seconds }),
                ),
            ),
            (liveness(), tls(true), daemon(), extra()),
        )
            .prop_map(
                |(
                    (header, dev, proto, port, local),
                    (topology, network, network6, push, pool_persist),
                    (liveness, tls, daemon, extra),
                )| {
                    Server {
                        header,
                        dev,
                        proto,
                        port,
                        local,
                        topology,
                        network,
                        network6,
                        push,
                        pool_persist,
                        liveness,
                        tls,
                        daemon,
                        extra,
                    }
                },
            )
    }

    fn pool_file() -> impl Strategy<Value = PoolFile> {
        (
            prop::collection::vec("[ -~]{0,30}", 0..3),
            prop::collection::vec(
                (
                    "[a-zA-Z0-9_.@-][a-zA-Z0-9_.@ -]{0,40}",
                    prop::option::of(any::<Ipv4Addr>()),
                    prop::option::of(any::<Ipv6Addr>()),
                )
                    .prop_filter("an entry has an address", |(_, a, b)| {
                        a.is_some() || b.is_some()
                    })
                    .prop_map(|(common_name, v4, v6)| PoolEntry {
                        common_name,
                        v4,
                        v6,
                    }),
                0..5,
            ),
        )
            .prop_map(|(header, entries)| PoolFile {
                header: header.iter().map(|h| h.trim().to_string()).collect(),
                entries,
            })
    }

    #[test]
    fn a_pool_file_is_what_openvpn_writes() {
        let f = PoolFile {
            header: vec!["pinned by vpnsim".into()],
            entries: vec![
                PoolEntry {
                    common_name: "laptop".into(),
                    v4: Some("10.8.0.2".parse().unwrap()),
                    v6: Some("fd00::1000".parse().unwrap()),
                },
                PoolEntry {
                    common_name: "phone".into(),
                    v4: Some("10.8.0.3".parse().unwrap()),
                    v6: None,
                },
            ],
        };
        assert_eq!(
            f.render().unwrap(),
            "# pinned by vpnsim\nlaptop,10.8.0.2,fd00::1000\nphone,10.8.0.3\n"
        );
        assert!(PoolFile::parse("laptop\n").is_err());
        assert!(PoolFile::parse("laptop,,\n").is_err());
    }

    fn client() -> impl Strategy<Value = Client> {
        (
            (
                header(),
                dev(),
                prop::option::of(prop::sample::select(Proto::ALL.to_vec())),
                prop::collection::vec(remote(), 1..4),
            ),
            (any::<bool>(), any::<bool>(), any::<bool>()),
            (liveness(), tls(false), daemon(), extra()),
        )
            .prop_map(
                |(
                    (header, dev, proto, remotes),
                    (remote_random, resolv_retry_infinite, nobind),
                    (liveness, tls, daemon, extra),
                )| {
                    Client {
                        header,
                        dev,
                        proto,
                        remotes,
                        remote_random,
                        resolv_retry_infinite,
                        nobind,
                        liveness,
                        tls,
                        daemon,
                        extra,
                    }
                },
            )
    }

    fn tap() -> impl Strategy<Value = TapPeer> {
        let side = prop_oneof![
            (prop::option::of(any::<IpAddr>()), 1u16..)
                .prop_map(|(local, port)| TapSide::Listen { local, port }),
            (prop::collection::vec(remote(), 1..3), any::<bool>())
                .prop_map(|(remotes, nobind)| TapSide::Dial { remotes, nobind }),
        ];
        (
            (
                header(),
                "(tap[0-9]?|ovn[0-9])",
                any::<Option<[u8; 6]>>(),
                prop::sample::select(Proto::ALL.to_vec()),
                side,
            ),
            (liveness(), tls(true), daemon(), extra()),
        )
            .prop_map(
                |((header, name, mac, proto, side), (liveness, tls, daemon, extra))| TapPeer {
                    header,
                    dev: Dev::new(
                        &name,
                        if name.starts_with("tap") {
                            None
                        } else {
                            Some(DevType::Tap)
                        },
                    ),
                    lladdr: mac.map(MacAddr),
                    proto,
                    side,
                    liveness,
                    tls,
                    daemon,
                    extra,
                },
            )
    }

    /// Random edits of a valid text: insert, delete or replace characters.
    fn mutate(text: String, edits: Vec<(usize, u8, char)>) -> String {
        let mut chars: Vec<char> = text.chars().collect();
        for (pos, op, c) in edits {
            let at = if chars.is_empty() {
                0
            } else {
                pos % (chars.len() + 1)
            };
            match op % 3 {
                0 => chars.insert(at, c),
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                _ if at < chars.len() => chars[at] = c,
                _ => chars.push(c),
            }
        }
        chars.into_iter().collect()
    }

    fn edit_char() -> impl Strategy<Value = char> {
        prop_oneof![
            prop::sample::select(vec![
                '"', '\'', '\\', '#', ';', '<', '>', '/', '\n', '\r', ' ', '\t', '\0', '-'
            ]),
            any::<char>(),
        ]
    }

    proptest! {

        #[test]
        fn config_round_trips(cfg in config()) {
            let text = cfg.emit();
            prop_assert_eq!(Config::parse(&text), Ok(cfg));
        }

        #[test]
        fn parse_never_panics(text in "\\PC*|[\\s\\S]{0,200}") {
            let _ = Config::parse(&text);
            let _ = Server::parse(&text);
            let _ = Client::parse(&text);
            let _ = TapPeer::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_mutations(
            which in 0usize..4,
            cfg in config(),
            edits in prop::collection::vec((any::<usize>(), any::<u8>(), edit_char()), 1..8),
        ) {
            let base = match which {
                0 => node_a_server().render().unwrap(),
                1 => client_profile().render().unwrap(),
                2 => ovn0(true).render().unwrap(),
                _ => cfg.emit(),
            };
            let text = mutate(base, edits);
            if let Ok(c) = Config::parse(&text) {
                prop_assert_eq!(Config::parse(&c.emit()), Ok(c.clone()));
                let _ = Server::from_config(&c);
                let _ = Client::from_config(&c);
                let _ = TapPeer::from_config(&c);
            }
        }

        #[test]
        fn pool_file_round_trips(f in pool_file()) {
            let text = f.render().unwrap();
            prop_assert_eq!(PoolFile::parse(&text), Ok(f));
        }

        #[test]
        fn pool_file_parse_never_panics(text in "\\PC*|[a-z0-9,.:#;\n]{0,120}") {
            if let Ok(f) = PoolFile::parse(&text) {
                prop_assert_eq!(PoolFile::parse(&f.emit()), Ok(f));
            }
        }

        #[test]
        fn server_round_trips(s in server()) {
            let text = s.render().unwrap();
            prop_assert_eq!(Server::parse(&text), Ok(s));
        }

        #[test]
        fn client_round_trips(c in client()) {
            let text = c.render().unwrap();
            prop_assert_eq!(Client::parse(&text), Ok(c));
        }

        #[test]
        fn tap_round_trips(p in tap()) {
            let text = p.render().unwrap();
            prop_assert_eq!(TapPeer::parse(&text), Ok(p));
        }
    }
}

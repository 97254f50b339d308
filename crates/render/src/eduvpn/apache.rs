//! Apache httpd 2.4 access control for the eduVPN API: a `<RequireAny>`
//! block (`Require local`, `Require ip ADDR`, `Require host NAME`,
//! `Require all granted|denied`), standalone or inside one `<Location>` or
//! `<Directory>` section, as in `/etc/httpd/conf.d/vpn-server-api.conf`.
//!
//! Emit: header as `#` lines, the optional section with its path in double
//! quotes, four-space indentation, one address or host per `Require` line.
//!
//! Parse accepts directive and section names in any case, comment lines,
//! blank lines, the section path quoted or not, several addresses or hosts
//! on one `Require ip`/`Require host` line (read as one rule each: the same
//! meaning inside `<RequireAny>`). `Require ip` takes a full IPv4/IPv6
//! address or `address/prefix-length`. Rejected, with the line: an empty
//! `<RequireAny>` (httpd refuses it), `Require not …` (no effect in
//! `<RequireAny>`, httpd refuses it), partial addresses (`10.1`) and
//! netmasks (`/255.0.0.0`), other providers and directives, line
//! continuations, unbalanced or mismatched sections.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::{CommentLine, ValueError};
use crate::format::{Format, ParseError};

/// One `Require` rule inside `<RequireAny>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Require {
    /// `Require local`: loopback and the server's own addresses.
    Local,
    /// `Require all granted`.
    AllGranted,
    /// `Require all denied`.
    AllDenied,
    /// `Require ip ADDR` or `Require ip ADDR/LEN`.
    Ip(IpMatch),
    /// `Require host NAME` (matches NAME and its subdomains, by reverse DNS).
    Host(HostPattern),
}

/// An address or a network for `Require ip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpMatch {
    Addr(IpAddr),
    Net(IpNet),
}

impl IpMatch {
    pub fn contains(&self, addr: IpAddr) -> bool {
        match self {
            IpMatch::Addr(a) => *a == addr,
            IpMatch::Net(n) => n.contains(&addr),
        }
    }
}

impl fmt::Display for IpMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpMatch::Addr(a) => a.fmt(f),
            IpMatch::Net(n) => n.fmt(f),
        }
    }
}

/// A host name or domain for `Require host`: letters, digits, `-`, `_`,
/// `.`; not empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    pub fn new(name: impl Into<String>) -> Result<Self, ValueError> {
        let name = name.into();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(ValueError(format!("`{name}` is not a host name")));
        }
        Ok(HostPattern(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The kind of the section around the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SectionKind {
    Location,
    Directory,
}

impl SectionKind {
    fn name(self) -> &'static str {
        match self {
            SectionKind::Location => "Location",
            SectionKind::Directory => "Directory",
        }
    }
}

/// A `<Location>` or `<Directory>` path: not empty, no white space, `"`,
/// `<`, `>`, `\` or control characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionPath(String);

impl SectionPath {
    pub fn new(path: impl Into<String>) -> Result<Self, ValueError> {
        let path = path.into();
        if path.is_empty()
            || path
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || "\"<>\\".contains(c))
        {
            return Err(ValueError(format!("`{path}` is not a usable section path")));
        }
        Ok(SectionPath(path))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    pub kind: SectionKind,
    pub path: SectionPath,
}

/// A `<RequireAny>` block: at least one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequireAny(Vec<Require>);

impl RequireAny {
    pub fn new(rules: Vec<Require>) -> Result<Self, ValueError> {
        if rules.is_empty() {
            return Err(ValueError(
                "<RequireAny> needs at least one Require rule".into(),
            ));
        }
        Ok(RequireAny(rules))
    }

    pub fn rules(&self) -> &[Require] {
        &self.0
    }

    /// Whether a request from `addr` is let through, judging `ip`, `local`
    /// (loopback only: the server's own addresses are not known here) and
    /// `all` rules; `host` rules need reverse DNS and never match here.
    pub fn allows(&self, addr: IpAddr) -> bool {
        self.0.iter().any(|r| match r {
            Require::Local => addr.is_loopback(),
            Require::AllGranted => true,
            Require::AllDenied | Require::Host(_) => false,
            Require::Ip(m) => m.contains(addr),
        })
    }
}

/// The conf snippet: header, optional section, the `<RequireAny>` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApacheAccess {
    pub header: Vec<CommentLine>,
    pub section: Option<Section>,
    pub require_any: RequireAny,
}

impl Format for ApacheAccess {
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
        let pad = if self.section.is_some() { "    " } else { "" };
        if let Some(s) = &self.section {
            out.push_str(&format!("<{} \"{}\">\n", s.kind.name(), s.path.0));
        }
        out.push_str(pad);
        out.push_str("<RequireAny>\n");
        for rule in &self.require_any.0 {
            out.push_str(pad);
            out.push_str("    Require ");
            match rule {
                Require::Local => out.push_str("local"),
                Require::AllGranted => out.push_str("all granted"),
                Require::AllDenied => out.push_str("all denied"),
                Require::Ip(m) => out.push_str(&format!("ip {m}")),
                Require::Host(h) => out.push_str(&format!("host {}", h.0)),
            }
            out.push('\n');
        }
        out.push_str(pad);
        out.push_str("</RequireAny>\n");
        if let Some(s) = &self.section {
            out.push_str(&format!("</{}>\n", s.kind.name()));
        }
        out
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        parse(text)
    }
}

enum State {
    Start,
    InSection,
    InRequireAny,
    AfterRequireAny,
    Done,
}

fn parse(text: &str) -> Result<ApacheAccess, ParseError> {
    let mut header = Vec::new();
    let mut section: Option<Section> = None;
    let mut rules = Vec::new();
    let mut state = State::Start;
    let mut require_any_line = 0;
    for (i, raw) in text.split('\n').enumerate() {
        let no = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(c) = raw.chars().find(|&c| c.is_control() && c != '\t') {
            return Err(ParseError::new(
                no,
                format!("control character U+{:04X}", c as u32),
            ));
        }
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if line.starts_with('#') {
            if matches!(state, State::Start) && section.is_none() {
                let after = &raw[raw.find('#').map_or(0, |p| p + 1)..];
                let after = after.strip_prefix(' ').unwrap_or(after);
                header.push(CommentLine::new(after).map_err(|e| ParseError::new(no, e.0))?);
            }
            continue;
        }
        if line.ends_with('\\') {
            return Err(ParseError::new(no, "line continuations are not supported"));
        }
        let err = |m: String| ParseError::new(no, m);
        if let Some(tag) = line.strip_prefix("</") {
            let name = tag
                .strip_suffix('>')
                .ok_or_else(|| err("expected `>` at the end of the closing tag".into()))?
                .trim();
            state = match state {
                State::InRequireAny if name.eq_ignore_ascii_case("RequireAny") => {
                    if rules.is_empty() {
                        return Err(err(
                            "<RequireAny> directive contains no authorization directives".into(),
                        ));
                    }
                    if section.is_some() {
                        State::AfterRequireAny
                    } else {
                        State::Done
                    }
                }
                State::AfterRequireAny
                    if section
                        .as_ref()
                        .is_some_and(|s| name.eq_ignore_ascii_case(s.kind.name())) =>
                {
                    State::Done
                }
                _ => return Err(err(format!("unexpected `</{name}>`"))),
            };
            continue;
        }
        if let Some(tag) = line.strip_prefix('<') {
            let inner = tag
                .strip_suffix('>')
                .ok_or_else(|| err("expected `>` at the end of the section tag".into()))?;
            let (name, arg) = match inner.split_once(char::is_whitespace) {
                Some((n, a)) => (n, a.trim()),
                None => (inner, ""),
            };
            state = match state {
                State::Start | State::InSection if name.eq_ignore_ascii_case("RequireAny") => {
                    if !arg.is_empty() {
                        return Err(err("<RequireAny> takes no arguments".into()));
                    }
                    require_any_line = no;
                    State::InRequireAny
                }
                State::Start
                    if name.eq_ignore_ascii_case("Location")
                        || name.eq_ignore_ascii_case("Directory") =>
                {
                    let kind = if name.eq_ignore_ascii_case("Location") {
                        SectionKind::Location
                    } else {
                        SectionKind::Directory
                    };
                    let path = match arg.strip_prefix('"') {
                        Some(q) => q
                            .strip_suffix('"')
                            .ok_or_else(|| err("unterminated quoted path".into()))?,
                        None => arg,
                    };
                    let path = SectionPath::new(path).map_err(|e| err(e.0))?;
                    section = Some(Section { kind, path });
                    State::InSection
                }
                _ => return Err(err(format!("unexpected or unsupported section `<{name}>`"))),
            };
            continue;
        }
        let mut words = line.split_whitespace();
        let directive = words.next().unwrap_or_default();
        if !directive.eq_ignore_ascii_case("Require") {
            return Err(err(format!(
                "unsupported directive `{directive}` (only Require inside <RequireAny>)"
            )));
        }
        if !matches!(state, State::InRequireAny) {
            return Err(err("`Require` outside <RequireAny>".into()));
        }
        let provider = words.next().unwrap_or_default();
        let args: Vec<&str> = words.collect();
        match provider {
            "local" if args.is_empty() => rules.push(Require::Local),
            "local" => return Err(err("`Require local` takes no arguments".into())),
            "all" => match args.as_slice() {
                ["granted"] => rules.push(Require::AllGranted),
                ["denied"] => rules.push(Require::AllDenied),
                _ => {
                    return Err(err(
                        "expected `Require all granted` or `Require all denied`".into(),
                    ));
                }
            },
            "ip" | "host" if args.is_empty() => {
                return Err(err(format!("`Require {provider}` needs an argument")));
            }
            "ip" => {
                for a in args {
                    rules.push(Require::Ip(parse_ip(a).map_err(err)?));
                }
            }
            "host" => {
                for a in args {
                    rules.push(Require::Host(HostPattern::new(a).map_err(|e| err(e.0))?));
                }
            }
            "not" => {
                return Err(err(
                    "negated Require has no effect in <RequireAny> (httpd refuses it)".into(),
                ));
            }
            "" => return Err(err("`Require` needs a provider".into())),
            p => return Err(err(format!("unsupported Require provider `{p}`"))),
        }
    }
    match state {
        State::Done => {}
        State::InRequireAny => {
            return Err(ParseError::new(
                require_any_line,
                "<RequireAny> is not closed",
            ));
        }
        State::Start | State::InSection => return Err(ParseError::new(0, "no <RequireAny> block")),
        State::AfterRequireAny => return Err(ParseError::new(0, "the section is not closed")),
    }
    Ok(ApacheAccess {
        header,
        section,
        require_any: RequireAny(rules),
    })
}

fn parse_ip(a: &str) -> Result<IpMatch, String> {
    if a.contains('/') {
        a.parse::<IpNet>().map(IpMatch::Net).map_err(|_| {
            format!("`{a}` is not an address/prefix-length (netmask forms are not supported)")
        })
    } else {
        a.parse::<IpAddr>().map(IpMatch::Addr).map_err(|_| {
            format!("`{a}` is not a full IP address (partial addresses are not supported)")
        })
    }
}

//! DNS zone files in BIND's master format (RFC 1035 section 5), as
//! `named-checkzone` and `named` read them, e.g. the round-robin name of
//! reference 001:
//!
//! ```text
//! $ORIGIN tuxed.net.
//! $TTL 300
//! nodes.frkovpn   IN  A       145.0.6.72
//!                 IN  A       145.0.6.73
//!                 IN  AAAA    2001:610:188:418:145:0:6:72
//! ```
//!
//! The representation ([`Zone`]) holds the zone's origin, its default TTL
//! and its records with ABSOLUTE owner names ([`Name`], lower case, no
//! trailing dot), so two files that differ only in how they abbreviate names
//! are equal values. [`Zone::emit`] writes names relative to the origin
//! (`@` for the origin itself), leaves the owner blank when it repeats the
//! previous record's, and writes the SOA timers one per line in
//! parentheses.
//!
//! What [`Zone::parse`] accepts, as BIND does: `;` comments; blank lines;
//! `$ORIGIN` (absolute or relative to the current origin) and `$TTL`
//! directives; owner names relative to the current origin, absolute with a
//! trailing dot, `@`, or left out (a line starting with a blank repeats
//! the previous owner); TTL and class in either order, both optional; TTLs
//! as seconds or with BIND's units (`1h30m`, `2d`, `1w`); types and class
//! case-insensitively; parentheses that continue a record over several
//! lines; CRLF line ends.
//!
//! Deliberately narrower than BIND, and rejected with the line: record
//! types other than SOA, NS, A, AAAA and CNAME; classes other than IN;
//! `$INCLUDE` and `$GENERATE`; quoted strings and backslash escapes; names
//! that are not LDH host names (letters, digits, inner `-`; no `_`, no
//! wildcard `*`, no root `.` as a name); a file without `$ORIGIN` before
//! its first relative name (BIND takes the origin from the command line);
//! TTLs above 2^31 - 1 (BIND silently turns them into 0); control
//! characters.
//!
//! Comment lines before the first directive or record are the
//! [`Zone::header`]; every other comment is dropped on parse.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sha2::{Digest, Sha256};

use crate::format::{Format, ParseError};
pub use crate::wgquick::{Comment, InvalidValue};

/// The largest TTL a zone file may carry (RFC 2181 section 8).
pub const MAX_TTL: u32 = 0x7fff_ffff;

/// A TTL or SOA timer in seconds, at most [`MAX_TTL`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ttl(u32);

impl Ttl {
    pub fn new(seconds: u32) -> Option<Ttl> {
        (seconds <= MAX_TTL).then_some(Ttl(seconds))
    }

    pub fn seconds(self) -> u32 {
        self.0
    }
}

impl fmt::Display for Ttl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// An absolute domain name: dot-separated LDH labels (ASCII letters,
/// digits, `-` not at a label's ends), 1–63 bytes each, at most 253 bytes,
/// stored in lower case without the trailing dot. Displayed with the dot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    /// Reads `tuxed.net` or `tuxed.net.` (case-insensitively).
    pub fn new(text: &str) -> Result<Name, InvalidValue> {
        let bad = |reason| Err(InvalidValue::new("domain name", text, reason));
        let name = text.strip_suffix('.').unwrap_or(text);
        if name.is_empty() || name.len() > 253 {
            return bad("must be 1 to 253 bytes (the root is not supported)");
        }
        for label in name.split('.') {
            if label.is_empty() || label.len() > 63 {
                return bad("labels must be 1 to 63 bytes");
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return bad("labels hold only ASCII letters, digits and '-'");
            }
            if label.starts_with('-') || label.ends_with('-') {
                return bad("labels must not start or end with '-'");
            }
        }
        Ok(Name(name.to_ascii_lowercase()))
    }

    /// The name without the trailing dot.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True when `self` is `origin` or below it.
    pub fn is_within(&self, origin: &Name) -> bool {
        self.relative_to(origin).is_some()
    }

    /// `self` relative to `origin`: `Some("")` for the origin itself,
    /// `Some("nodes.frkovpn")` below it, `None` outside.
    pub fn relative_to(&self, origin: &Name) -> Option<&str> {
        if self.0 == origin.0 {
            return Some("");
        }
        let prefix = self.0.strip_suffix(origin.0.as_str())?;
        prefix.strip_suffix('.').filter(|p| !p.is_empty())
    }

    /// How the name is written in a file whose origin is `origin`.
    fn to_source(&self, origin: &Name) -> String {
        match self.relative_to(origin) {
            Some("") => "@".to_owned(),
            Some(relative) => relative.to_owned(),
            None => format!("{}.", self.0),
        }
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.", self.0)
    }
}

/// The SOA record's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Soa {
    /// MNAME: the primary name server.
    pub mname: Name,
    /// RNAME: the responsible mailbox (`hostmaster.example.com` is
    /// `hostmaster@example.com`).
    pub rname: Name,
    pub serial: u32,
    pub refresh: Ttl,
    pub retry: Ttl,
    pub expire: Ttl,
    /// Negative-caching TTL (RFC 2308).
    pub minimum: Ttl,
}

/// A record's type and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RData {
    Soa(Soa),
    Ns(Name),
    A(Ipv4Addr),
    Aaaa(Ipv6Addr),
    Cname(Name),
}

impl RData {
    /// The type mnemonic (`A`, `AAAA`, ...).
    pub fn type_name(&self) -> &'static str {
        match self {
            RData::Soa(_) => "SOA",
            RData::Ns(_) => "NS",
            RData::A(_) => "A",
            RData::Aaaa(_) => "AAAA",
            RData::Cname(_) => "CNAME",
        }
    }
}

/// One resource record (class IN).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub owner: Name,
    /// `None`: the zone's `$TTL` applies.
    pub ttl: Option<Ttl>,
    pub data: RData,
}

/// A whole zone file. Records keep their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Zone {
    /// Comment lines at the top.
    pub header: Vec<Comment>,
    /// `$ORIGIN`: the zone's apex.
    pub origin: Name,
    /// `$TTL`: the TTL of records that give none.
    pub default_ttl: Option<Ttl>,
    pub records: Vec<Record>,
}

impl Zone {
    /// The SOA record's data, if any.
    pub fn soa(&self) -> Option<&Soa> {
        self.records.iter().find_map(|r| match &r.data {
            RData::Soa(soa) => Some(soa),
            _ => None,
        })
    }

    /// Every A and AAAA address of `name`, in file order: what a resolver
    /// hands out (in rotating order) for a round-robin name.
    pub fn addresses(&self, name: &Name) -> Vec<IpAddr> {
        self.records
            .iter()
            .filter(|r| &r.owner == name)
            .filter_map(|r| match r.data {
                RData::A(a) => Some(IpAddr::V4(a)),
                RData::Aaaa(a) => Some(IpAddr::V6(a)),
                _ => None,
            })
            .collect()
    }

    /// A serial that depends only on the zone's content: the first 31 bits
    /// of the SHA-256 of the file emitted with serial 0. Deterministic (no
    /// clock), and it changes whenever a record changes; unlike a date
    /// serial it does not grow monotonically, so a secondary that compares
    /// serials (RFC 1982) may need `rndc retransfer` after a change.
    pub fn content_serial(&self) -> u32 {
        let mut copy = self.clone();
        for record in &mut copy.records {
            if let RData::Soa(soa) = &mut record.data {
                soa.serial = 0;
            }
        }
        let digest = Sha256::digest(copy.emit().as_bytes());
        let bytes = [digest[0], digest[1], digest[2], digest[3]];
        u32::from_be_bytes(bytes) & 0x7fff_ffff
    }
}

// ---------------------------------------------------------------------------
// Emit
// ---------------------------------------------------------------------------

fn rdata_source(data: &RData, origin: &Name, indent: &str) -> String {
    match data {
        RData::A(a) => a.to_string(),
        RData::Aaaa(a) => a.to_string(),
        RData::Ns(n) | RData::Cname(n) => n.to_source(origin),
        RData::Soa(soa) => {
            let timers: [(String, &str); 5] = [
                (soa.serial.to_string(), "serial"),
                (soa.refresh.to_string(), "refresh"),
                (soa.retry.to_string(), "retry"),
                (soa.expire.to_string(), "expire"),
                (soa.minimum.to_string(), "minimum (negative caching TTL)"),
            ];
            let width = timers.iter().map(|(v, _)| v.len()).max().unwrap_or(0) + 2;
            let mut text = format!(
                "{} {} (",
                soa.mname.to_source(origin),
                soa.rname.to_source(origin)
            );
            for (i, (value, what)) in timers.iter().enumerate() {
                let value = if i + 1 == timers.len() {
                    format!("{value} )")
                } else {
                    value.clone()
                };
                text.push_str(&format!("\n{indent}{value:<width$} ; {what}"));
            }
            text
        }
    }
}

impl Format for Zone {
    fn emit(&self) -> String {
        let mut out = String::new();
        for c in &self.header {
            out.push_str(&c.to_line(';'));
            out.push('\n');
        }
        if !self.header.is_empty() {
            out.push('\n');
        }
        out.push_str(&format!("$ORIGIN {}\n", self.origin));
        if let Some(ttl) = self.default_ttl {
            out.push_str(&format!("$TTL {ttl}\n"));
        }
        if self.records.is_empty() {
            return out;
        }
        out.push('\n');
        let owners: Vec<String> = self
            .records
            .iter()
            .map(|r| r.owner.to_source(&self.origin))
            .collect();
        let ttls: Vec<String> = self
            .records
            .iter()
            .map(|r| r.ttl.map(|t| t.to_string()).unwrap_or_default())
            .collect();
        let owner_width = owners.iter().map(String::len).max().unwrap_or(1);
        let ttl_width = ttls.iter().map(String::len).max().unwrap_or(0);
        let indent = " ".repeat(owner_width + 1 + ttl_width + usize::from(ttl_width > 0) + 9);
        let mut previous: Option<&Name> = None;
        for ((record, owner), ttl) in self.records.iter().zip(&owners).zip(&ttls) {
            let shown = if previous == Some(&record.owner) {
                ""
            } else {
                owner.as_str()
            };
            previous = Some(&record.owner);
            let mut line = format!("{shown:<owner_width$} ");
            if ttl_width > 0 {
                line.push_str(&format!("{ttl:<ttl_width$} "));
            }
            line.push_str(&format!(
                "IN {:<5} {}",
                record.data.type_name(),
                rdata_source(&record.data, &self.origin, &indent)
            ));
            // A blank owner column must start with whitespace, which the
            // padding guarantees; trailing blanks are trimmed per line.
            for (i, part) in line.split('\n').enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                out.push_str(part.trim_end());
            }
            out.push('\n');
        }
        out
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        Parser::default().run(text)
    }
}

// ---------------------------------------------------------------------------
// Parse
// ---------------------------------------------------------------------------

/// One logical entry: a directive or record, possibly over several lines.
struct Entry {
    line: usize,
    /// The first line started with a blank: the owner is left out.
    blank_owner: bool,
    tokens: Vec<String>,
}

#[derive(Default)]
struct Parser {
    header: Vec<Comment>,
    seen_entry: bool,
    first_origin: Option<Name>,
    origin: Option<Name>,
    default_ttl: Option<Ttl>,
    previous_owner: Option<Name>,
    records: Vec<Record>,
}

/// Reads a TTL: seconds, or BIND's `1w2d3h4m5s` units (case-insensitive).
fn parse_ttl(text: &str) -> Result<Ttl, String> {
    let bad = || format!("{text:?} is not a TTL (seconds, or units like 1h30m)");
    if text.is_empty() || !text.as_bytes()[0].is_ascii_digit() {
        return Err(bad());
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    for c in text.chars() {
        if let Some(d) = c.to_digit(10) {
            let n = number.unwrap_or(0) * 10 + u64::from(d);
            if n > u64::from(u32::MAX) {
                return Err(format!("TTL {text:?} is above {MAX_TTL}"));
            }
            number = Some(n);
            continue;
        }
        let factor: u64 = match c.to_ascii_lowercase() {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86400,
            'w' => 604_800,
            _ => return Err(bad()),
        };
        let n = number.take().ok_or_else(bad)?;
        total += n * factor;
        if total > u64::from(MAX_TTL) {
            return Err(format!("TTL {text:?} is above {MAX_TTL}"));
        }
    }
    if let Some(n) = number {
        total += n;
    }
    u32::try_from(total)
        .ok()
        .and_then(Ttl::new)
        .ok_or_else(|| format!("TTL {text:?} is above {MAX_TTL}"))
}

fn parse_serial(text: &str) -> Result<u32, String> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("serial {text:?} is not a number"));
    }
    text.parse()
        .map_err(|_| format!("serial {text:?} is above 4294967295"))
}

fn is_class(token: &str) -> bool {
    let upper = token.to_ascii_uppercase();
    matches!(upper.as_str(), "IN" | "CH" | "CS" | "HS" | "ANY" | "NONE")
        || upper.starts_with("CLASS")
}

/// Splits a line's content into tokens, `(` and `)` on their own.
fn tokenize(content: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    for c in content.chars() {
        if c.is_whitespace() || c == '(' || c == ')' {
            if !current.is_empty() {
                tokens.push(std::mem::take(&mut current));
            }
            if c == '(' || c == ')' {
                tokens.push(c.to_string());
            }
        } else {
            current.push(c);
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

impl Parser {
    fn run(mut self, text: &str) -> Result<Zone, ParseError> {
        let mut open: Option<Entry> = None;
        for (index, raw) in text.lines().enumerate() {
            let n = index + 1;
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if let Some(c) = raw.chars().find(|&c| c.is_control() && c != '\t') {
                return Err(ParseError::new(
                    n,
                    format!("control character {c:?} in line"),
                ));
            }
            let (content, comment) = match raw.split_once(';') {
                Some((before, after)) => (before, Some(after)),
                None => (raw, None),
            };
            if content.contains('"') {
                return Err(ParseError::new(n, "quoted strings are not supported"));
            }
            if content.contains('\\') {
                return Err(ParseError::new(n, "backslash escapes are not supported"));
            }
            let tokens = tokenize(content);
            if let Some(entry) = open.as_mut() {
                entry.tokens.extend(tokens);
            } else if tokens.is_empty() {
                if let (Some(after), false) = (comment, self.seen_entry) {
                    self.header.push(Comment::from_line_lossy(after));
                }
                continue;
            } else {
                open = Some(Entry {
                    line: n,
                    blank_owner: raw.starts_with([' ', '\t']),
                    tokens,
                });
            }
            let Some(entry) = open.take() else { continue };
            let mut depth = 0i32;
            for t in &entry.tokens {
                match t.as_str() {
                    "(" if depth > 0 => return Err(ParseError::new(n, "nested '('")),
                    "(" => depth += 1,
                    ")" if depth == 0 => return Err(ParseError::new(n, "')' without '('")),
                    ")" => depth -= 1,
                    _ => {}
                }
            }
            if depth > 0 {
                open = Some(entry);
                continue;
            }
            self.seen_entry = true;
            self.entry(entry)?;
        }
        if let Some(entry) = open {
            return Err(ParseError::new(
                entry.line,
                "'(' is never closed before the end of the file",
            ));
        }
        let Some(origin) = self.first_origin else {
            return Err(ParseError::new(0, "no $ORIGIN directive"));
        };
        Ok(Zone {
            header: self.header,
            origin,
            default_ttl: self.default_ttl,
            records: self.records,
        })
    }

    fn name(&self, token: &str) -> Result<Name, String> {
        if token == "@" {
            return self
                .origin
                .clone()
                .ok_or_else(|| "`@` before any $ORIGIN".to_owned());
        }
        if token == "." {
            return Err("the root name is not supported".to_owned());
        }
        if token.ends_with('.') {
            return Name::new(token).map_err(|e| e.to_string());
        }
        let Some(origin) = &self.origin else {
            return Err(format!("relative name {token:?} before any $ORIGIN"));
        };
        Name::new(&format!("{token}.{}", origin.as_str())).map_err(|e| e.to_string())
    }

    fn entry(&mut self, entry: Entry) -> Result<(), ParseError> {
        let n = entry.line;
        let tokens: Vec<&str> = entry
            .tokens
            .iter()
            .map(String::as_str)
            .filter(|t| *t != "(" && *t != ")")
            .collect();
        let fail = |message: String| ParseError::new(n, message);
        let first = tokens.first().copied().unwrap_or_default();
        if !entry.blank_owner && first.starts_with('$') {
            return self.directive(&tokens).map_err(fail);
        }
        let (owner, rest) = if entry.blank_owner {
            let owner = self
                .previous_owner
                .clone()
                .ok_or_else(|| fail("a record without owner and no previous owner".into()))?;
            (owner, &tokens[..])
        } else {
            (self.name(first).map_err(fail)?, &tokens[1..])
        };
        let mut ttl = None;
        let mut class = false;
        let mut i = 0;
        while let Some(token) = rest.get(i) {
            if !class && is_class(token) {
                if !token.eq_ignore_ascii_case("IN") {
                    return Err(fail(format!("class {token} is not supported (only IN)")));
                }
                class = true;
            } else if ttl.is_none() && token.as_bytes().first().is_some_and(u8::is_ascii_digit) {
                ttl = Some(parse_ttl(token).map_err(fail)?);
            } else {
                break;
            }
            i += 1;
        }
        let Some(kind) = rest.get(i) else {
            return Err(fail("a record without a type".into()));
        };
        let args = &rest[i + 1..];
        let want = |count: usize| -> Result<(), ParseError> {
            if args.len() == count {
                Ok(())
            } else {
                Err(fail(format!(
                    "{} takes {count} value(s), got {}",
                    kind.to_ascii_uppercase(),
                    args.len()
                )))
            }
        };
        let data = match kind.to_ascii_uppercase().as_str() {
            "A" => {
                want(1)?;
                RData::A(
                    args[0]
                        .parse()
                        .map_err(|_| fail(format!("{:?} is not an IPv4 address", args[0])))?,
                )
            }
            "AAAA" => {
                want(1)?;
                RData::Aaaa(
                    args[0]
                        .parse()
                        .map_err(|_| fail(format!("{:?} is not an IPv6 address", args[0])))?,
                )
            }
            "NS" => {
                want(1)?;
                RData::Ns(self.name(args[0]).map_err(fail)?)
            }
            "CNAME" => {
                want(1)?;
                RData::Cname(self.name(args[0]).map_err(fail)?)
            }
            "SOA" => {
                want(7)?;
                RData::Soa(Soa {
                    mname: self.name(args[0]).map_err(fail)?,
                    rname: self.name(args[1]).map_err(fail)?,
                    serial: parse_serial(args[2]).map_err(fail)?,
                    refresh: parse_ttl(args[3]).map_err(fail)?,
                    retry: parse_ttl(args[4]).map_err(fail)?,
                    expire: parse_ttl(args[5]).map_err(fail)?,
                    minimum: parse_ttl(args[6]).map_err(fail)?,
                })
            }
            _ => {
                return Err(fail(format!(
                    "record type {kind:?} is not supported (SOA, NS, A, AAAA, CNAME)"
                )));
            }
        };
        self.previous_owner = Some(owner.clone());
        self.records.push(Record { owner, ttl, data });
        Ok(())
    }

    fn directive(&mut self, tokens: &[&str]) -> Result<(), String> {
        let (name, args) = match tokens.split_first() {
            Some((name, args)) => (name.to_ascii_uppercase(), args),
            None => return Err("empty directive".into()),
        };
        match name.as_str() {
            "$ORIGIN" => {
                let [origin] = args else {
                    return Err("$ORIGIN takes one name".into());
                };
                let origin = self.name(origin)?;
                if self.first_origin.is_none() {
                    self.first_origin = Some(origin.clone());
                }
                self.origin = Some(origin);
                Ok(())
            }
            "$TTL" => {
                let [ttl] = args else {
                    return Err("$TTL takes one TTL".into());
                };
                self.default_ttl = Some(parse_ttl(ttl)?);
                Ok(())
            }
            other => Err(format!(
                "directive {other} is not supported ($ORIGIN and $TTL are)"
            )),
        }
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn name(text: &str) -> Name {
        Name::new(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ttl(seconds: u32) -> Ttl {
        Ttl::new(seconds).unwrap_or_else(|| panic!("ttl {seconds}"))
    }

    fn record(owner: &str, t: Option<u32>, data: RData) -> Record {
        Record {
            owner: name(owner),
            ttl: t.map(ttl),
            data,
        }
    }

    /// Reference 001's round-robin name in the tuxed.net zone.
    fn reference() -> Zone {
        let ip4 = |s: &str| RData::A(s.parse().unwrap_or_else(|e| panic!("{e}")));
        let ip6 = |s: &str| RData::Aaaa(s.parse().unwrap_or_else(|e| panic!("{e}")));
        let mut zone = Zone {
            header: vec![
                Comment::new("tuxed.net: eduVPN multi-node (reference 001)")
                    .unwrap_or_else(|e| panic!("{e}")),
            ],
            origin: name("tuxed.net"),
            default_ttl: Some(ttl(300)),
            records: vec![
                record(
                    "tuxed.net",
                    None,
                    RData::Soa(Soa {
                        mname: name("ns.vpnsim.invalid"),
                        rname: name("hostmaster.tuxed.net"),
                        serial: 0,
                        refresh: ttl(3600),
                        retry: ttl(900),
                        expire: ttl(604_800),
                        minimum: ttl(300),
                    }),
                ),
                record("tuxed.net", None, RData::Ns(name("ns.vpnsim.invalid"))),
                record("frkovpn.tuxed.net", None, ip4("145.0.6.71")),
                record("nodes.frkovpn.tuxed.net", Some(60), ip4("145.0.6.72")),
                record("nodes.frkovpn.tuxed.net", Some(60), ip4("145.0.6.73")),
                record(
                    "nodes.frkovpn.tuxed.net",
                    Some(60),
                    ip6("2001:610:188:418:145:0:6:72"),
                ),
                record(
                    "www.tuxed.net",
                    None,
                    RData::Cname(name("frkovpn.tuxed.net")),
                ),
            ],
        };
        let serial = zone.content_serial();
        if let RData::Soa(soa) = &mut zone.records[0].data {
            soa.serial = serial;
        }
        zone
    }

    #[test]
    fn snapshot_reference_001() {
        let zone = reference();
        let text = zone.emit();
        insta::assert_snapshot!(text);
        assert_eq!(Zone::parse(&text), Ok(zone));
    }

    #[test]
    fn serial_follows_content_only() {
        let a = reference();
        assert_eq!(a.content_serial(), reference().content_serial());
        let mut b = a.clone();
        b.records.push(record(
            "x.tuxed.net",
            None,
            RData::A(Ipv4Addr::new(192, 0, 2, 1)),
        ));
        assert_ne!(a.content_serial(), b.content_serial());
        assert!(a.content_serial() <= MAX_TTL);
    }

    #[test]
    fn parses_handwritten_variations() {
        let text = "; top\n;second\n\n$ORIGIN Tuxed.NET.\r\n$ttl 1h\n\
            @ IN SOA ns.other.example. hostmaster ( 2024010101 ; serial\n  1d 2h 1W 5m30s\n )\n\
            \tIN NS ns.other.example.\n\
            nodes.frkovpn 60 in a 145.0.6.72\n\
            \t\t IN 60 A 145.0.6.73 ; same owner\n\
            \t aaaa 2001:db8::1\n\
            $ORIGIN frkovpn.tuxed.net.\n\
            node-a A 145.0.6.72\n\
            alias.example. CNAME node-a\n";
        let zone = Zone::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(zone.header.len(), 2);
        assert_eq!(zone.origin, name("tuxed.net"));
        assert_eq!(zone.default_ttl, Some(ttl(3600)));
        let soa = zone.soa().unwrap_or_else(|| panic!("no SOA"));
        assert_eq!(soa.serial, 2_024_010_101);
        assert_eq!(soa.refresh, ttl(86400));
        assert_eq!(soa.retry, ttl(7200));
        assert_eq!(soa.expire, ttl(604_800));
        assert_eq!(soa.minimum, ttl(330));
        assert_eq!(soa.rname, name("hostmaster.tuxed.net"));
        let rr = name("nodes.frkovpn.tuxed.net");
        assert_eq!(
            zone.addresses(&rr),
            vec![
                IpAddr::from([145, 0, 6, 72]),
                IpAddr::from([145, 0, 6, 73]),
                "2001:db8::1"
                    .parse::<IpAddr>()
                    .unwrap_or_else(|e| panic!("{e}")),
            ]
        );
        assert_eq!(zone.records[3].ttl, Some(ttl(60)));
        assert_eq!(zone.records[3].owner, rr);
        assert_eq!(zone.records[4].ttl, None);
        assert_eq!(zone.records[5].owner, name("node-a.frkovpn.tuxed.net"));
        assert_eq!(
            zone.records[6].data,
            RData::Cname(name("node-a.frkovpn.tuxed.net"))
        );
        assert_eq!(zone.records[6].owner, name("alias.example"));
        // Emitting and reading back gives the same value.
        assert_eq!(Zone::parse(&zone.emit()), Ok(zone));
    }

    #[test]
    fn rejects_with_line_numbers() {
        for (text, line, needle) in [
            ("a.example. IN A 1.2.3.4\n", 0, "no $ORIGIN"),
            ("a IN A 1.2.3.4\n", 1, "before any $ORIGIN"),
            (
                "$ORIGIN example.com.\n@ IN MX 10 mail\n",
                2,
                "not supported",
            ),
            ("$ORIGIN example.com.\n@ CH A 1.2.3.4\n", 2, "only IN"),
            ("$ORIGIN example.com.\n$INCLUDE other\n", 2, "not supported"),
            ("$ORIGIN example.com.\n@ IN A 1.2.3\n", 2, "IPv4"),
            ("$ORIGIN example.com.\n@ IN AAAA 1.2.3.4\n", 2, "IPv6"),
            (
                "$ORIGIN example.com.\n@ IN A 1.2.3.4 5.6.7.8\n",
                2,
                "takes 1",
            ),
            (
                "$ORIGIN example.com.\n@ IN SOA a b ( 1 2 3 4\n",
                2,
                "never closed",
            ),
            (
                "$ORIGIN example.com.\n@ IN SOA a b ( 1 2 3 4 ( 5 ) )\n",
                2,
                "nested",
            ),
            ("$ORIGIN example.com.\n@ IN A ) 1.2.3.4\n", 2, "without"),
            (
                "$ORIGIN example.com.\n IN A 1.2.3.4\n",
                2,
                "no previous owner",
            ),
            ("$ORIGIN example.com.\n_sip IN A 1.2.3.4\n", 2, "letters"),
            (
                "$ORIGIN example.com.\n@ 4294967295 IN A 1.2.3.4\n",
                2,
                "above",
            ),
            ("$ORIGIN example.com.\n@ 1x IN A 1.2.3.4\n", 2, "not a TTL"),
            ("$ORIGIN example.com.\n@ IN TXT \"a\"\n", 2, "quoted"),
            ("$ORIGIN example.com.\n@ IN\n", 2, "without a type"),
            ("$ORIGIN example.com.\n$TTL\n", 2, "$TTL takes"),
            ("$ORIGIN example.com.\n@ IN A 1.2.3.4\x07\n", 2, "control"),
            (
                "$ORIGIN example.com.\n@ IN SOA a b 99999999999 1 2 3 4\n",
                2,
                "serial",
            ),
            ("@ IN A 1.2.3.4\n", 1, "$ORIGIN"),
            ("$ORIGIN .\n", 1, "root"),
        ] {
            match Zone::parse(text) {
                Ok(z) => panic!("accepted {text:?}: {z:?}"),
                Err(e) => {
                    assert_eq!(e.line, line, "{text:?}: {e}");
                    assert!(e.message.contains(needle), "{text:?}: {e}");
                }
            }
        }
    }

    #[test]
    fn names_validate_and_relativize() {
        assert_eq!(name("Foo.Example.").as_str(), "foo.example");
        assert!(Name::new("-a.example").is_err());
        assert!(Name::new("a..example").is_err());
        assert!(Name::new(".").is_err());
        assert!(Name::new(&"a".repeat(64)).is_err());
        let origin = name("tuxed.net");
        assert_eq!(name("tuxed.net").relative_to(&origin), Some(""));
        assert_eq!(name("a.b.tuxed.net").relative_to(&origin), Some("a.b"));
        assert_eq!(name("xtuxed.net").relative_to(&origin), None);
        assert_eq!(name("net").relative_to(&origin), None);
        assert_eq!(parse_ttl("1w1d1h1m1s"), Ok(ttl(694_861)));
        assert!(parse_ttl("h").is_err());
        assert!(parse_ttl("1hh").is_err());
    }

    // -----------------------------------------------------------------------
    // Properties
    // -----------------------------------------------------------------------

    fn arb_label() -> impl Strategy<Value = String> {
        "[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?"
    }

    fn arb_origin() -> impl Strategy<Value = Name> {
        proptest::collection::vec(arb_label(), 1..3)
            .prop_filter_map("valid name", |labels| Name::new(&labels.join(".")).ok())
    }

    /// A name at, below or outside `origin`.
    fn arb_name(origin: Name) -> impl Strategy<Value = Name> {
        (0..3u8, proptest::collection::vec(arb_label(), 1..3)).prop_filter_map(
            "valid name",
            move |(kind, labels)| match kind {
                0 => Some(origin.clone()),
                1 => Name::new(&format!("{}.{}", labels.join("."), origin.as_str())).ok(),
                _ => Name::new(&labels.join(".")).ok(),
            },
        )
    }

    fn arb_ttl() -> impl Strategy<Value = Ttl> {
        prop_oneof![0..=MAX_TTL, 0..100_000u32].prop_filter_map("ttl", Ttl::new)
    }

    fn arb_rdata(origin: Name) -> impl Strategy<Value = RData> {
        prop_oneof![
            any::<u32>().prop_map(|v| RData::A(Ipv4Addr::from(v))),
            any::<u128>().prop_map(|v| RData::Aaaa(Ipv6Addr::from(v))),
            arb_name(origin.clone()).prop_map(RData::Ns),
            arb_name(origin.clone()).prop_map(RData::Cname),
            (
                arb_name(origin.clone()),
                arb_name(origin),
                any::<u32>(),
                arb_ttl(),
                arb_ttl(),
                arb_ttl(),
                arb_ttl()
            )
                .prop_map(|(mname, rname, serial, refresh, retry, expire, minimum)| {
                    RData::Soa(Soa {
                        mname,
                        rname,
                        serial,
                        refresh,
                        retry,
                        expire,
                        minimum,
                    })
                }),
        ]
    }

    fn arb_zone() -> impl Strategy<Value = Zone> {
        arb_origin().prop_flat_map(|origin| {
            (
                proptest::collection::vec("[ -~]{0,20}", 0..3),
                proptest::option::of(arb_ttl()),
                proptest::collection::vec(
                    (
                        arb_name(origin.clone()),
                        proptest::option::of(arb_ttl()),
                        arb_rdata(origin.clone()),
                    ),
                    0..8,
                ),
                Just(origin),
            )
                .prop_map(|(header, default_ttl, records, origin)| Zone {
                    header: header.iter().map(|c| Comment::from_line_lossy(c)).collect(),
                    origin,
                    default_ttl,
                    records: records
                        .into_iter()
                        .map(|(owner, ttl, data)| Record { owner, ttl, data })
                        .collect(),
                })
        })
    }

    proptest! {
        #[test]
        fn roundtrip(zone in arb_zone()) {
            let text = zone.emit();
            prop_assert_eq!(Zone::parse(&text), Ok(zone), "{}", text);
        }

        #[test]
        fn emit_is_stable(zone in arb_zone()) {
            let text = zone.emit();
            let back = Zone::parse(&text).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(back.emit(), text);
        }

        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = Zone::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_zone_like_text(
            lines in proptest::collection::vec(
                "[ \t]?(\\$ORIGIN|\\$TTL|@|a|b\\.c\\.|[0-9]{1,11}[smhdw]?|IN|CH|A|AAAA|NS|SOA|CNAME|\\(|\\)|;|1\\.2\\.3\\.4|::1| ){0,9}",
                0..10,
            )
        ) {
            let _ = Zone::parse(&lines.join("\n"));
        }

        #[test]
        fn parse_never_panics_on_mutations(zone in arb_zone(), index in any::<usize>(), c in any::<char>()) {
            let text = zone.emit();
            let mut chars: Vec<char> = text.chars().collect();
            if !chars.is_empty() {
                let i = index % chars.len();
                chars[i] = c;
            }
            let mutated: String = chars.into_iter().collect();
            let _ = Zone::parse(&mutated);
        }
    }
}

//! wg-quick(8) configuration files (`/etc/wireguard/wg0.conf`).
//!
//! A file is an `[Interface]` section and `[Peer]` sections of `Key = Value`
//! lines. wg-quick takes `Address`, `MTU`, `DNS`, `Table`, the four hooks and
//! `SaveConfig` for itself and hands every other line to `wg setconf`, which
//! knows `ListenPort`, `FwMark`, `PrivateKey` and, per peer, `PublicKey`,
//! `PresharedKey`, `AllowedIPs`, `Endpoint` and `PersistentKeepalive`.
//!
//! What [`WgQuickConf::parse`] accepts, following both programs:
//! - keys and section names case-insensitively; whitespace around keys and
//!   values; `#` starts a comment anywhere on a line; CRLF line ends;
//! - the sections in any order, `[Interface]` once;
//! - `Address`, `DNS` and `AllowedIPs` as comma lists, repeated lines adding
//!   up; addresses without a prefix length mean a host prefix;
//! - for other keys given twice, the last value wins (as in both tools);
//! - `PersistentKeepalive` and `FwMark` as a number or `off` (0).
//!
//! It rejects, with the line: a key wg would not recognise (wg fails on
//! them, so there is nothing to keep), a line before any section, a value
//! that does not parse, an `[Interface]` without `PrivateKey`, a peer
//! without `PublicKey`, and two peers with the same public key (wg would
//! merge them; that is never what a generated file means). Deliberately
//! narrower than the tools: keys with inner whitespace, service names as
//! ports, and routing-table names other than plain words are refused.
//!
//! Comment lines before the first section are the file's
//! [`WgQuickConf::header`]; comment lines right before a `[Peer]` are that
//! peer's [`Peer::comments`]; other comments are dropped on parse.
//!
//! Also home of the small value types the line-based formats of this crate
//! share: [`Comment`], [`Hostname`] and [`Host`].

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ipnet::IpNet;

use crate::format::{Format, ParseError};

/// Why a value cannot be written into a file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {what} {value:?}: {reason}")]
pub struct InvalidValue {
    /// What kind of value (e.g. "comment", "hostname").
    pub what: &'static str,
    /// The offending input (never a secret: key errors do not echo input).
    pub value: String,
    pub reason: &'static str,
}

impl InvalidValue {
    pub(crate) fn new(what: &'static str, value: &str, reason: &'static str) -> Self {
        InvalidValue {
            what,
            value: value.to_owned(),
            reason,
        }
    }

    /// The check most name-like values of the formats share: 1 to `max`
    /// bytes, every character `allowed`. The reasons name the rule broken.
    pub(crate) fn check_chars(
        what: &'static str,
        value: String,
        (max, length_rule): (usize, &'static str),
        (allowed, chars_rule): (fn(char) -> bool, &'static str),
    ) -> Result<String, InvalidValue> {
        if value.is_empty() || value.len() > max {
            return Err(InvalidValue::new(what, &value, length_rule));
        }
        if !value.chars().all(allowed) {
            return Err(InvalidValue::new(what, &value, chars_rule));
        }
        Ok(value)
    }
}

// ---------------------------------------------------------------------------
// Shared value types
// ---------------------------------------------------------------------------

/// The text of one comment line, without its `#`: no control characters,
/// no leading or trailing whitespace (so every tool reads it back the same).
/// Emitted as `# text` (or `#` when empty).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Comment(String);

impl Comment {
    pub fn new(text: impl Into<String>) -> Result<Comment, InvalidValue> {
        let text = text.into();
        if text.chars().any(char::is_control) {
            return Err(InvalidValue::new(
                "comment",
                &text,
                "contains a control character",
            ));
        }
        if text.trim() != text {
            return Err(InvalidValue::new(
                "comment",
                &text,
                "has leading or trailing whitespace",
            ));
        }
        Ok(Comment(text))
    }

    /// Reads the text after the comment character of a line, tolerantly:
    /// control characters become spaces and surrounding whitespace goes.
    /// Never fails; a valid comment's emitted line reads back unchanged.
    pub fn from_line_lossy(text: &str) -> Comment {
        let cleaned: String = text
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        Comment(cleaned.trim().to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The comment as a line starting with `marker` (`#` or `;`).
    pub fn to_line(&self, marker: char) -> String {
        if self.0.is_empty() {
            marker.to_string()
        } else {
            format!("{marker} {}", self.0)
        }
    }
}

impl fmt::Display for Comment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Builds comment lines from text, one [`Comment`] per line of `text`.
pub fn comments(text: &str) -> Result<Vec<Comment>, InvalidValue> {
    text.lines().map(Comment::new).collect()
}

/// A DNS host name: dot-separated labels of ASCII letters, digits and `-`
/// (not at a label's ends), 1–63 bytes each, at most 253 bytes, and a last
/// label that is not all digits (so it never reads as an IPv4 address).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hostname(String);

impl Hostname {
    pub fn new(name: impl Into<String>) -> Result<Hostname, InvalidValue> {
        let name = name.into();
        let bad = |reason| Err(InvalidValue::new("hostname", &name, reason));
        if name.is_empty() || name.len() > 253 {
            return bad("must be 1 to 253 bytes");
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
        if name
            .rsplit('.')
            .next()
            .is_some_and(|last| last.bytes().all(|b| b.is_ascii_digit()))
        {
            return bad("the last label must not be all digits");
        }
        Ok(Hostname(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Hostname {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A host given as an address or as a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Host {
    Ip(IpAddr),
    Name(Hostname),
}

impl Host {
    /// Reads an IP address (IPv6 without brackets) or a host name.
    pub fn parse(text: &str) -> Result<Host, InvalidValue> {
        match text.parse::<IpAddr>() {
            Ok(ip) => Ok(Host::Ip(ip)),
            Err(_) => Hostname::new(text).map(Host::Name),
        }
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(name) => write!(f, "{name}"),
        }
    }
}

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// Length in bytes of every WireGuard key.
pub const KEY_LEN: usize = 32;

/// Why a text is not a WireGuard key. Never includes the text itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("a WireGuard key is 44 base64 characters ending in '=', got {0} characters")]
    Length(usize),
    #[error("a WireGuard key must be canonical base64 of 32 bytes")]
    Base64,
}

fn key_from_base64(text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    if text.len() != 44 || !text.ends_with('=') {
        return Err(KeyError::Length(text.chars().count()));
    }
    let bytes = BASE64.decode(text).map_err(|_| KeyError::Base64)?;
    bytes.try_into().map_err(|_| KeyError::Base64)
}

/// A WireGuard public key: 32 bytes, written as base64.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        key_from_base64(text).map(PublicKey)
    }
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

/// A private or preshared key: 32 secret bytes. `Debug` never shows them;
/// only [`SecretKey::to_base64`] and the emitted file do.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretKey([u8; KEY_LEN]);

impl SecretKey {
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        SecretKey(bytes)
    }
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        key_from_base64(text).map(SecretKey)
    }
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
    pub fn to_base64(&self) -> String {
        BASE64.encode(self.0)
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

// ---------------------------------------------------------------------------
// The representation
// ---------------------------------------------------------------------------

/// A wg-quick hook command (`PreUp`, `PostUp`, `PreDown`, `PostDown`), run by
/// bash with `%i` replaced by the interface name. Non-empty, no control
/// characters, no `#` (wg-quick would cut the line there), no surrounding
/// whitespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Hook(String);

impl Hook {
    pub fn new(command: impl Into<String>) -> Result<Hook, InvalidValue> {
        let command = command.into();
        let bad = |reason| Err(InvalidValue::new("hook command", &command, reason));
        if command.is_empty() {
            return bad("is empty");
        }
        if command.chars().any(char::is_control) {
            return bad("contains a control character");
        }
        if command.contains('#') {
            return bad("contains '#', which wg-quick reads as a comment");
        }
        if command.trim() != command {
            return bad("has leading or trailing whitespace");
        }
        Ok(Hook(command))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One `DNS =` entry: wg-quick sends addresses to resolvconf as servers and
/// everything else as search domains.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DnsEntry {
    Server(IpAddr),
    Search(Hostname),
}

/// The `Table =` setting: where wg-quick puts the routes for `AllowedIPs`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Table {
    /// `off`: no routes at all.
    Off,
    /// `auto` (the default): the main table, or a fresh one for default routes.
    Auto,
    /// A numeric routing table.
    Id(u32),
    /// A named routing table from `/etc/iproute2/rt_tables`: ASCII letters,
    /// digits, `_` and `-`, not all digits, not `off` or `auto`.
    Name(String),
}

impl Table {
    pub fn name(name: impl Into<String>) -> Result<Table, InvalidValue> {
        let name = name.into();
        let bad = |reason| Err(InvalidValue::new("routing table", &name, reason));
        if name.is_empty()
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return bad("a table name holds only ASCII letters, digits, '_' and '-'");
        }
        if name.bytes().all(|b| b.is_ascii_digit()) {
            return bad("an all-digit table is Table::Id");
        }
        if name == "off" || name == "auto" {
            return bad("off and auto are Table::Off and Table::Auto");
        }
        Ok(Table::Name(name))
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Table::Off => f.write_str("off"),
            Table::Auto => f.write_str("auto"),
            Table::Id(id) => write!(f, "{id}"),
            Table::Name(name) => f.write_str(name),
        }
    }
}

/// A peer's `Endpoint`: `host:port`, `[v6]:port` or `name:port`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    pub host: Host,
    pub port: u16,
}

impl Endpoint {
    /// Reads `1.2.3.4:55820`, `[2001:db8::1]:55820` or
    /// `node3.example.com:55820` (and, as wg does, an unbracketed IPv6
    /// address before the last colon).
    pub fn parse(text: &str) -> Result<Endpoint, String> {
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or("unable to find the matching ']' of the endpoint")?;
            let port = after
                .strip_prefix(':')
                .ok_or("unable to find the port of the endpoint")?;
            let ip: std::net::Ipv6Addr = host
                .parse()
                .map_err(|_| format!("{host:?} is not an IPv6 address"))?;
            (Host::Ip(IpAddr::V6(ip)), port)
        } else {
            let (host, port) = text
                .rsplit_once(':')
                .ok_or("unable to find the port of the endpoint")?;
            (Host::parse(host).map_err(|e| e.to_string())?, port)
        };
        let port =
            parse_decimal_u16(port).ok_or_else(|| format!("{port:?} is not a port number"))?;
        Ok(Endpoint { host, port })
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            host => write!(f, "{host}:{}", self.port),
        }
    }
}

/// The `[Interface]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// `Address`: the interface's addresses with prefix lengths, in order.
    pub addresses: Vec<IpNet>,
    /// `ListenPort`: UDP port; `None` picks a random one.
    pub listen_port: Option<u16>,
    /// `PrivateKey`.
    pub private_key: SecretKey,
    /// `FwMark` for outgoing packets; `Some(0)` is `off`.
    pub fwmark: Option<u32>,
    /// `MTU`; `None` lets wg-quick derive it from the route to the endpoints.
    pub mtu: Option<u16>,
    /// `DNS`: servers and search domains, in order.
    pub dns: Vec<DnsEntry>,
    /// `Table`; `None` is `auto`.
    pub table: Option<Table>,
    pub pre_up: Vec<Hook>,
    pub post_up: Vec<Hook>,
    pub pre_down: Vec<Hook>,
    pub post_down: Vec<Hook>,
    /// `SaveConfig = true`: wg-quick writes the runtime state back on down.
    pub save_config: bool,
}

impl Interface {
    /// An interface with only a private key.
    pub fn new(private_key: SecretKey) -> Interface {
        Interface {
            addresses: Vec::new(),
            listen_port: None,
            private_key,
            fwmark: None,
            mtu: None,
            dns: Vec::new(),
            table: None,
            pre_up: Vec::new(),
            post_up: Vec::new(),
            pre_down: Vec::new(),
            post_down: Vec::new(),
            save_config: false,
        }
    }
}

/// A `[Peer]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Comment lines written right above `[Peer]` (e.g. which node it is).
    pub comments: Vec<Comment>,
    /// `PublicKey`.
    pub public_key: PublicKey,
    /// `PresharedKey`.
    pub preshared_key: Option<SecretKey>,
    /// `AllowedIPs`: what may come from this peer and is routed to it.
    pub allowed_ips: Vec<IpNet>,
    /// `Endpoint`; `None` waits for the peer to reach us.
    pub endpoint: Option<Endpoint>,
    /// `PersistentKeepalive` in seconds; `Some(0)` is `off`.
    pub persistent_keepalive: Option<u16>,
}

impl Peer {
    /// A peer with only a public key.
    pub fn new(public_key: PublicKey) -> Peer {
        Peer {
            comments: Vec::new(),
            public_key,
            preshared_key: None,
            allowed_ips: Vec::new(),
            endpoint: None,
            persistent_keepalive: None,
        }
    }
}

/// A whole wg-quick file. Peers keep their order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WgQuickConf {
    /// Comment lines at the top (e.g. "Generated by vpnsim ...", a demo-key
    /// warning).
    pub header: Vec<Comment>,
    pub interface: Interface,
    pub peers: Vec<Peer>,
}

impl WgQuickConf {
    /// The peer with this public key.
    pub fn peer(&self, key: &PublicKey) -> Option<&Peer> {
        self.peers.iter().find(|p| &p.public_key == key)
    }
}

// ---------------------------------------------------------------------------
// Emit
// ---------------------------------------------------------------------------

fn join<T: fmt::Display>(items: &[T]) -> String {
    items
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

impl Format for WgQuickConf {
    fn emit(&self) -> String {
        let mut out = String::new();
        let mut line = |s: &str| {
            out.push_str(s);
            out.push('\n');
        };
        for c in &self.header {
            line(&c.to_line('#'));
        }
        if !self.header.is_empty() {
            line("");
        }
        let i = &self.interface;
        line("[Interface]");
        if !i.addresses.is_empty() {
            line(&format!("Address = {}", join(&i.addresses)));
        }
        if let Some(port) = i.listen_port {
            line(&format!("ListenPort = {port}"));
        }
        line(&format!("PrivateKey = {}", i.private_key.to_base64()));
        if let Some(mark) = i.fwmark {
            line(&format!("FwMark = {mark}"));
        }
        if let Some(mtu) = i.mtu {
            line(&format!("MTU = {mtu}"));
        }
        if !i.dns.is_empty() {
            let dns: Vec<String> = i
                .dns
                .iter()
                .map(|d| match d {
                    DnsEntry::Server(ip) => ip.to_string(),
                    DnsEntry::Search(name) => name.to_string(),
                })
                .collect();
            line(&format!("DNS = {}", dns.join(", ")));
        }
        if let Some(table) = &i.table {
            line(&format!("Table = {table}"));
        }
        for (key, hooks) in [
            ("PreUp", &i.pre_up),
            ("PostUp", &i.post_up),
            ("PreDown", &i.pre_down),
            ("PostDown", &i.post_down),
        ] {
            for hook in hooks {
                line(&format!("{key} = {}", hook.as_str()));
            }
        }
        if i.save_config {
            line("SaveConfig = true");
        }
        for peer in &self.peers {
            line("");
            for c in &peer.comments {
                line(&c.to_line('#'));
            }
            line("[Peer]");
            line(&format!("PublicKey = {}", peer.public_key));
            if let Some(psk) = &peer.preshared_key {
                line(&format!("PresharedKey = {}", psk.to_base64()));
            }
            if !peer.allowed_ips.is_empty() {
                line(&format!("AllowedIPs = {}", join(&peer.allowed_ips)));
            }
            if let Some(endpoint) = &peer.endpoint {
                line(&format!("Endpoint = {endpoint}"));
            }
            if let Some(keepalive) = peer.persistent_keepalive {
                line(&format!("PersistentKeepalive = {keepalive}"));
            }
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

/// Digits only (no sign, no spaces), as a u16.
pub(crate) fn parse_decimal_u16(text: &str) -> Option<u16> {
    if text.is_empty() || text.len() > 5 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

fn parse_decimal_u32(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 10 || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `strtoul(.., 0)` as wg reads `FwMark`: decimal, `0x` hex or `0` octal.
fn parse_c_u32(text: &str) -> Option<u32> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        if hex.is_empty() || hex.len() > 8 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        return u32::from_str_radix(hex, 16).ok();
    }
    if text.len() > 1 && text.starts_with('0') {
        if !text.bytes().all(|b| (b'0'..=b'7').contains(&b)) || text.len() > 12 {
            return None;
        }
        return u32::from_str_radix(text, 8).ok();
    }
    parse_decimal_u32(text)
}

/// An address with or without `/prefix`, as wg and `ip address add` read it.
fn parse_net(text: &str) -> Option<IpNet> {
    if text.contains('/') {
        let (addr, len) = text.split_once('/')?;
        let addr: IpAddr = addr.parse().ok()?;
        if len.is_empty() || len.len() > 3 || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: u8 = len.parse().ok()?;
        IpNet::new(addr, len).ok()
    } else {
        IpAddr::from_str(text).ok().map(IpNet::from)
    }
}

fn parse_net_list(value: &str, split_whitespace: bool) -> Result<Vec<IpNet>, String> {
    let items: Vec<&str> = if split_whitespace {
        value
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|s| !s.is_empty())
            .collect()
    } else {
        value.split(',').map(str::trim).collect()
    };
    items
        .into_iter()
        .map(|item| {
            parse_net(item).ok_or_else(|| format!("{item:?} is not an IP address or prefix"))
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Interface,
    Peer,
}

#[derive(Default)]
struct PendingPeer {
    line: usize,
    comments: Vec<Comment>,
    public_key: Option<PublicKey>,
    preshared_key: Option<SecretKey>,
    allowed_ips: Vec<IpNet>,
    endpoint: Option<Endpoint>,
    persistent_keepalive: Option<u16>,
}

struct PendingInterface {
    line: usize,
    private_key: Option<SecretKey>,
    rest: Interface,
}

struct Parser {
    header: Vec<Comment>,
    pending_comments: Vec<Comment>,
    section: Section,
    seen_section: bool,
    interface: Option<PendingInterface>,
    peers: Vec<PendingPeer>,
}

impl Default for Parser {
    fn default() -> Self {
        Parser {
            header: Vec::new(),
            pending_comments: Vec::new(),
            section: Section::None,
            seen_section: false,
            interface: None,
            peers: Vec::new(),
        }
    }
}

impl Parser {
    fn run(mut self, text: &str) -> Result<WgQuickConf, ParseError> {
        for (index, raw) in text.lines().enumerate() {
            let n = index + 1;
            if let Some(c) = raw.chars().find(|&c| c.is_control() && c != '\t') {
                return Err(ParseError::new(
                    n,
                    format!("control character {c:?} in line"),
                ));
            }
            let (content, comment) = match raw.split_once('#') {
                Some((before, after)) => (before, Some(after)),
                None => (raw, None),
            };
            let content = content.trim();
            if content.is_empty() {
                if let Some(after) = comment {
                    let c = Comment::from_line_lossy(after);
                    if self.seen_section {
                        self.pending_comments.push(c)
                    } else {
                        self.header.push(c)
                    }
                }
                continue;
            }
            if content.starts_with('[') {
                self.section_header(n, content)?;
                continue;
            }
            self.pending_comments.clear();
            let (key, value) = content.split_once('=').ok_or_else(|| {
                ParseError::new(n, format!("expected `Key = Value`, got {content:?}"))
            })?;
            let (key, value) = (key.trim(), value.trim());
            if key.is_empty() || key.contains(char::is_whitespace) {
                return Err(ParseError::new(n, format!("invalid key {key:?}")));
            }
            if value.is_empty() {
                return Err(ParseError::new(n, format!("{key} has no value")));
            }
            let result = match self.section {
                Section::None => Err(format!("{key} is outside of any section")),
                Section::Interface => self.interface_key(key, value),
                Section::Peer => self.peer_key(key, value),
            };
            result.map_err(|message| ParseError::new(n, message))?;
        }
        self.finish()
    }

    fn section_header(&mut self, n: usize, content: &str) -> Result<(), ParseError> {
        self.seen_section = true;
        if content.eq_ignore_ascii_case("[Interface]") {
            if let Some(first) = &self.interface {
                return Err(ParseError::new(
                    n,
                    format!(
                        "second [Interface] section (the first is on line {})",
                        first.line
                    ),
                ));
            }
            self.pending_comments.clear();
            self.interface = Some(PendingInterface {
                line: n,
                private_key: None,
                rest: Interface::new(SecretKey::from_bytes([0; KEY_LEN])),
            });
            self.section = Section::Interface;
            Ok(())
        } else if content.eq_ignore_ascii_case("[Peer]") {
            let comments = std::mem::take(&mut self.pending_comments);
            self.peers.push(PendingPeer {
                line: n,
                comments,
                ..PendingPeer::default()
            });
            self.section = Section::Peer;
            Ok(())
        } else {
            Err(ParseError::new(
                n,
                format!("unknown section {content:?} (expected [Interface] or [Peer])"),
            ))
        }
    }

    fn interface_key(&mut self, key: &str, value: &str) -> Result<(), String> {
        let Some(pending) = self.interface.as_mut() else {
            return Err("internal: no [Interface]".to_owned());
        };
        let i = &mut pending.rest;
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "address" => i.addresses.extend(parse_net_list(value, true)?),
            "listenport" | "privatekey" | "fwmark" if value.contains(char::is_whitespace) => {
                return Err(format!("{key} {value:?} contains whitespace"));
            }
            "listenport" => {
                i.listen_port = Some(
                    parse_decimal_u16(value)
                        .ok_or_else(|| format!("ListenPort {value:?} is not a port number"))?,
                )
            }
            "privatekey" => {
                pending.private_key =
                    Some(SecretKey::from_base64(value).map_err(|e| format!("PrivateKey: {e}"))?)
            }
            "fwmark" => {
                i.fwmark = Some(if value == "off" {
                    0
                } else {
                    parse_c_u32(value)
                        .ok_or_else(|| format!("FwMark {value:?} is not a number or off"))?
                })
            }
            "mtu" => {
                i.mtu = Some(
                    parse_decimal_u16(value)
                        .ok_or_else(|| format!("MTU {value:?} is not a number up to 65535"))?,
                )
            }
            "dns" => {
                for v in value
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                {
                    // wg-quick: `^[0-9.]+$` or anything with a colon is a server.
                    let server =
                        v.bytes().all(|b| b.is_ascii_digit() || b == b'.') || v.contains(':');
                    i.dns.push(if server {
                        DnsEntry::Server(
                            v.parse()
                                .map_err(|_| format!("DNS server {v:?} is not an IP address"))?,
                        )
                    } else {
                        DnsEntry::Search(
                            Hostname::new(v).map_err(|e| format!("DNS search domain: {e}"))?,
                        )
                    });
                }
            }
            "table" => {
                i.table = Some(match value {
                    "off" => Table::Off,
                    "auto" => Table::Auto,
                    v if v.bytes().all(|b| b.is_ascii_digit()) => Table::Id(
                        parse_decimal_u32(v)
                            .ok_or_else(|| format!("Table {v:?} is out of range"))?,
                    ),
                    v => Table::name(v).map_err(|e| e.to_string())?,
                })
            }
            "preup" => i.pre_up.push(Hook::new(value).map_err(|e| e.to_string())?),
            "postup" => i.post_up.push(Hook::new(value).map_err(|e| e.to_string())?),
            "predown" => i
                .pre_down
                .push(Hook::new(value).map_err(|e| e.to_string())?),
            "postdown" => i
                .post_down
                .push(Hook::new(value).map_err(|e| e.to_string())?),
            "saveconfig" => {
                i.save_config = if value.eq_ignore_ascii_case("true") {
                    true
                } else if value.eq_ignore_ascii_case("false") {
                    false
                } else {
                    return Err(format!("SaveConfig {value:?} is neither true nor false"));
                }
            }
            _ => return Err(format!("unknown [Interface] key {key:?}")),
        }
        Ok(())
    }

    fn peer_key(&mut self, key: &str, value: &str) -> Result<(), String> {
        let Some(peer) = self.peers.last_mut() else {
            return Err("internal: no [Peer]".to_owned());
        };
        // wg drops every whitespace character of the lines it reads.
        let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
        let value = value.as_str();
        let lower = key.to_ascii_lowercase();
        match lower.as_str() {
            "publickey" => {
                peer.public_key =
                    Some(PublicKey::from_base64(value).map_err(|e| format!("PublicKey: {e}"))?)
            }
            "presharedkey" => {
                peer.preshared_key =
                    Some(SecretKey::from_base64(value).map_err(|e| format!("PresharedKey: {e}"))?)
            }
            "allowedips" => peer.allowed_ips.extend(parse_net_list(value, false)?),
            "endpoint" => peer.endpoint = Some(Endpoint::parse(value)?),
            "persistentkeepalive" => {
                peer.persistent_keepalive = Some(if value == "off" {
                    0
                } else {
                    parse_decimal_u16(value).ok_or_else(|| {
                        format!("PersistentKeepalive {value:?} is not 0 to 65535 or off")
                    })?
                })
            }
            _ => return Err(format!("unknown [Peer] key {key:?}")),
        }
        Ok(())
    }

    fn finish(self) -> Result<WgQuickConf, ParseError> {
        let Some(pending) = self.interface else {
            return Err(ParseError::new(0, "no [Interface] section"));
        };
        let Some(private_key) = pending.private_key else {
            return Err(ParseError::new(
                pending.line,
                "[Interface] has no PrivateKey",
            ));
        };
        let interface = Interface {
            private_key,
            ..pending.rest
        };
        let mut peers: Vec<Peer> = Vec::with_capacity(self.peers.len());
        for p in self.peers {
            let Some(public_key) = p.public_key else {
                return Err(ParseError::new(p.line, "[Peer] has no PublicKey"));
            };
            if peers.iter().any(|q| q.public_key == public_key) {
                return Err(ParseError::new(
                    p.line,
                    format!("a second [Peer] with PublicKey {public_key}"),
                ));
            }
            peers.push(Peer {
                comments: p.comments,
                public_key,
                preshared_key: p.preshared_key,
                allowed_ips: p.allowed_ips,
                endpoint: p.endpoint,
                persistent_keepalive: p.persistent_keepalive,
            });
        }
        Ok(WgQuickConf {
            header: self.header,
            interface,
            peers,
        })
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
pub(crate) mod strategies {
    //! Proptest strategies for this module's types, shared with the other
    //! line-based formats' tests.
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub(crate) fn arb_comment() -> impl Strategy<Value = Comment> {
        "[ -~]{0,30}".prop_map(|s| Comment::from_line_lossy(&s))
    }

    pub(crate) fn arb_hostname() -> impl Strategy<Value = Hostname> {
        (
            proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", 0..3),
            "[a-z]([a-z0-9-]{0,6}[a-z0-9])?",
        )
            .prop_filter_map("valid hostname", |(mut labels, last)| {
                labels.push(last);
                Hostname::new(labels.join(".")).ok()
            })
    }

    pub(crate) fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|v| IpAddr::V4(Ipv4Addr::from(v))),
            any::<u128>().prop_map(|v| IpAddr::V6(Ipv6Addr::from(v))),
        ]
    }

    pub(crate) fn arb_host() -> impl Strategy<Value = Host> {
        prop_oneof![
            arb_ip().prop_map(Host::Ip),
            arb_hostname().prop_map(Host::Name)
        ]
    }

    pub(crate) fn arb_net() -> impl Strategy<Value = IpNet> {
        (arb_ip(), any::<u8>()).prop_map(|(ip, len)| {
            let max = if ip.is_ipv4() { 33 } else { 129 };
            IpNet::new(ip, len % max).unwrap_or_else(|_| IpNet::from(ip))
        })
    }

    fn arb_hook() -> impl Strategy<Value = Hook> {
        "[a-z%/][ -\"$-~]{0,30}[a-z]".prop_filter_map("valid hook", |s| Hook::new(s).ok())
    }

    fn arb_table() -> impl Strategy<Value = Table> {
        prop_oneof![
            Just(Table::Off),
            Just(Table::Auto),
            any::<u32>().prop_map(Table::Id),
            "[a-z_-][a-z0-9_-]{0,8}".prop_filter_map("valid table", |s| Table::name(s).ok()),
        ]
    }

    fn arb_dns() -> impl Strategy<Value = DnsEntry> {
        prop_oneof![
            arb_ip().prop_map(DnsEntry::Server),
            arb_hostname().prop_map(DnsEntry::Search)
        ]
    }

    pub(crate) fn arb_secret() -> impl Strategy<Value = SecretKey> {
        any::<[u8; KEY_LEN]>().prop_map(SecretKey::from_bytes)
    }

    fn arb_public() -> impl Strategy<Value = PublicKey> {
        any::<[u8; KEY_LEN]>().prop_map(PublicKey::from_bytes)
    }

    prop_compose! {
        fn arb_interface()(
            addresses in proptest::collection::vec(arb_net(), 0..3),
            listen_port in proptest::option::of(any::<u16>()),
            private_key in arb_secret(),
            fwmark in proptest::option::of(any::<u32>()),
            mtu in proptest::option::of(any::<u16>()),
            dns in proptest::collection::vec(arb_dns(), 0..3),
            table in proptest::option::of(arb_table()),
            hooks in proptest::collection::vec(proptest::collection::vec(arb_hook(), 0..2), 4),
            save_config in any::<bool>(),
        ) -> Interface {
            Interface {
                addresses, listen_port, private_key, fwmark, mtu, dns, table,
                pre_up: hooks[0].clone(), post_up: hooks[1].clone(),
                pre_down: hooks[2].clone(), post_down: hooks[3].clone(),
                save_config,
            }
        }
    }

    prop_compose! {
        fn arb_peer()(
            comments in proptest::collection::vec(arb_comment(), 0..2),
            public_key in arb_public(),
            preshared_key in proptest::option::of(arb_secret()),
            allowed_ips in proptest::collection::vec(arb_net(), 0..4),
            endpoint in proptest::option::of((arb_host(), any::<u16>()).prop_map(|(host, port)| Endpoint { host, port })),
            persistent_keepalive in proptest::option::of(any::<u16>()),
        ) -> Peer {
            Peer { comments, public_key, preshared_key, allowed_ips, endpoint, persistent_keepalive }
        }
    }

    pub(crate) fn arb_wgquick() -> impl Strategy<Value = WgQuickConf> {
        (
            proptest::collection::vec(arb_comment(), 0..3),
            arb_interface(),
            proptest::collection::vec(arb_peer(), 0..4),
        )
            .prop_map(|(header, interface, mut peers)| {
                let mut seen = std::collections::BTreeSet::new();
                peers.retain(|p| seen.insert(p.public_key));
                WgQuickConf {
                    header,
                    interface,
                    peers,
                }
            })
    }

    /// Replaces the character at `index` (modulo the length) with `c`.
    pub(crate) fn mutate(text: &str, index: usize, c: char) -> String {
        let count = text.chars().count();
        if count == 0 {
            return c.to_string();
        }
        let at = index % count;
        text.chars()
            .enumerate()
            .map(|(i, old)| if i == at { c } else { old })
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::strategies::*;
    use super::*;
    use proptest::prelude::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    /// The NethServer leader (hub) of reference 002, with a demo key.
    fn hub() -> WgQuickConf {
        let mut interface = Interface::new(SecretKey::from_bytes([7; KEY_LEN]));
        interface.addresses = vec![net("10.5.4.1/24")];
        interface.listen_port = Some(55820);
        let peer = |key: &str, addr: &str, endpoint: &str, comment: &str| Peer {
            comments: vec![Comment::new(comment).unwrap()],
            public_key: PublicKey::from_base64(key).unwrap(),
            preshared_key: None,
            allowed_ips: vec![net(addr)],
            endpoint: Some(Endpoint::parse(endpoint).unwrap()),
            persistent_keepalive: Some(25),
        };
        WgQuickConf {
            header: comments(
                "Generated by vpnsim from scenario wireguard-star\nDEMO KEYS derived from a seed: not for production",
            )
            .unwrap(),
            interface,
            peers: vec![
                peer("3Ft+OeV/fdRXnWKcyD8e+emsMxzQGZ1grWqR+/FCoEc=", "10.5.4.2/32", "178.128.169.93:55820", "node 2"),
                peer(
                    "nvu810d2Q3LGUwJNmJawXj7u16+JUukgreQo4NCcACc=",
                    "10.5.4.3/32",
                    "node3.example.com:55820",
                    "node 3",
                ),
            ],
        }
    }

    #[test]
    fn snapshot_hub() {
        let text = hub().emit();
        insta::assert_snapshot!(text);
        assert_eq!(WgQuickConf::parse(&text).unwrap(), hub());
    }

    #[test]
    fn parses_handwritten_variations() {
        let text = "\
# top\r
[interface] # the hub\r
  address=10.5.4.1/24 , fd00::1/64\r
address = 10.9.0.1\r
PRIVATEKEY = BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=
ListenPort = 1
listenport = 55820
FwMark = 0x10
DNS = 10.5.4.53, example.com fd00::53
Table = off
PostUp = iptables -A FORWARD -i %i -j ACCEPT
PostUp = true
SaveConfig = True

# not a peer comment
ListenPort = 55820
# node 2
[PEER]
PublicKey = 3Ft+OeV/fdRXnWKcyD8e+emsMxzQGZ1grWqR+/FCoEc=
AllowedIPs = 10.5.4.2/32,10.6.0.0/16
AllowedIPs = fd00::2
Endpoint = [2001:db8::2]:55820
PersistentKeepalive = off
";
        let conf = WgQuickConf::parse(text).unwrap();
        assert_eq!(conf.header, comments("top").unwrap());
        let i = &conf.interface;
        assert_eq!(
            i.addresses,
            vec![net("10.5.4.1/24"), net("fd00::1/64"), net("10.9.0.1/32")]
        );
        assert_eq!(i.listen_port, Some(55820));
        assert_eq!(i.fwmark, Some(16));
        assert_eq!(i.dns.len(), 3);
        assert_eq!(
            i.dns[1],
            DnsEntry::Search(Hostname::new("example.com").unwrap())
        );
        assert_eq!(i.table, Some(Table::Off));
        assert_eq!(i.post_up.len(), 2);
        assert!(i.save_config);
        let p = &conf.peers[0];
        assert_eq!(p.comments, comments("node 2").unwrap());
        assert_eq!(
            p.allowed_ips,
            vec![net("10.5.4.2/32"), net("10.6.0.0/16"), net("fd00::2/128")]
        );
        assert_eq!(
            p.endpoint.as_ref().unwrap().to_string(),
            "[2001:db8::2]:55820"
        );
        assert_eq!(p.persistent_keepalive, Some(0));
    }

    #[test]
    fn rejects_with_line_numbers() {
        let key = "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=";
        let cases: &[(&str, usize, &str)] = &[
            ("Address = 10.0.0.1/24\n", 1, "outside"),
            (
                &format!("[Interface]\nPrivateKey = {key}\nFoo = 1\n"),
                3,
                "unknown",
            ),
            ("[Interface]\nPrivateKey = AAAA\n", 2, "44"),
            (
                "[Interface]\nPrivateKey = BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwd=\n",
                2,
                "canonical",
            ),
            (
                &format!("[Interface]\nPrivateKey = {key}\n[Peer]\nAllowedIPs = 10.0.0.0/8\n"),
                3,
                "PublicKey",
            ),
            (
                &format!(
                    "[Interface]\nPrivateKey = {key}\n[Peer]\nPublicKey = {key}\nEndpoint = 1.2.3.4\n"
                ),
                5,
                "port",
            ),
            (
                &format!(
                    "[Interface]\nPrivateKey = {key}\n[Peer]\nPublicKey = {key}\nAllowedIPs = 10.0.0.0/33\n"
                ),
                5,
                "10.0.0.0/33",
            ),
            (
                &format!(
                    "[Interface]\nPrivateKey = {key}\n[Peer]\nPublicKey = {key}\nPersistentKeepalive = 65536\n"
                ),
                5,
                "65535",
            ),
            (
                &format!(
                    "[Interface]\nPrivateKey = {key}\n[Peer]\nPublicKey = {key}\nMTU = 1420\n"
                ),
                5,
                "unknown [Peer] key",
            ),
            (
                &format!("[Interface]\nPrivateKey = {key}\n[Peers]\n"),
                3,
                "unknown section",
            ),
            (
                &format!("[Interface]\nPrivateKey = {key}\nSaveConfig = yes\n"),
                3,
                "neither",
            ),
            (
                &format!("[Interface]\nPrivateKey = {key}\nListenPort\n"),
                3,
                "Key = Value",
            ),
            (
                &format!("[Interface]\nPrivateKey = {key}\nListenPort =\n"),
                3,
                "no value",
            ),
            (
                &format!("[Interface]\nPrivateKey = {key}\n[Interface]\n"),
                3,
                "second",
            ),
            (
                &format!(
                    "[Interface]\nPrivateKey = {key}\n[Peer]\nPublicKey = {key}\n[Peer]\nPublicKey = {key}\n"
                ),
                5,
                "second",
            ),
            ("[Interface]\nListenPort = 1\n", 1, "PrivateKey"),
        ];
        for (text, line, needle) in cases {
            let err = WgQuickConf::parse(text).unwrap_err();
            assert_eq!(err.line, *line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
        assert_eq!(WgQuickConf::parse("").unwrap_err().line, 0);
    }

    #[test]
    fn secret_keys_are_not_debug_printed() {
        let conf = hub();
        assert!(!format!("{conf:?}").contains(&conf.interface.private_key.to_base64()));
    }

    #[test]
    fn value_types_validate() {
        assert!(Comment::new("a\nb").is_err());
        assert!(Comment::new(" a").is_err());
        assert!(Hostname::new("1.2.3.4").is_err());
        assert!(Hostname::new("-a.com").is_err());
        assert!(Hostname::new("node3.example.com").is_ok());
        assert!(Hook::new("echo # x").is_err());
        assert!(Table::name("off").is_err());
        assert!(Table::name("123").is_err());
        assert!(Endpoint::parse("[::1]55820").is_err());
        assert_eq!(
            Endpoint::parse("::1:55820").unwrap().to_string(),
            "[::1]:55820"
        );
    }

    proptest! {
        #[test]
        fn roundtrip(conf in arb_wgquick()) {
            let text = conf.emit();
            prop_assert_eq!(WgQuickConf::parse(&text), Ok(conf), "{}", text);
        }

        #[test]
        fn emit_is_stable(conf in arb_wgquick()) {
            let text = conf.emit();
            prop_assert_eq!(WgQuickConf::parse(&text).map(|c| c.emit()), Ok(text));
        }

        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = WgQuickConf::parse(&text);
        }

        #[test]
        fn parse_never_panics_bytes(bytes in any::<Vec<u8>>()) {
            let _ = WgQuickConf::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn parse_never_panics_on_mutations(conf in arb_wgquick(), index in any::<usize>(), c in any::<char>()) {
            let _ = WgQuickConf::parse(&mutate(&conf.emit(), index, c));
        }
    }
}

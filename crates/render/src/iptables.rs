//! `iptables-restore` / `ip6tables-restore` files (`/etc/sysconfig/iptables`,
//! `/etc/iptables/rules.v4`, ...), in the exact form `iptables-save` writes.
//!
//! ```text
//! *nat
//! :PREROUTING ACCEPT [0:0]
//! :POSTROUTING ACCEPT [0:0]
//! -A POSTROUTING -s 10.1.0.0/25 -j SNAT --to-source 145.0.6.72
//! COMMIT
//! *filter
//! :INPUT ACCEPT [0:0]
//! -A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT
//! -A FORWARD -i tun+ -o ens160 -j ACCEPT
//! -A INPUT -j REJECT --reject-with icmp-host-prohibited
//! COMMIT
//! ```
//!
//! The representation is semantic: a [`Ruleset`] holds tables, a table its
//! chains, a chain its policy and its rules in order. A rule is the basic
//! options (`-s -d -i -o -p`, each negatable), the match modules in the order
//! they were given ([`Match`]: typed `tcp`, `udp`, `icmp`, `icmp6`,
//! `multiport`, `conntrack --ctstate`, `comment`; any other module is kept as
//! its raw argument list) and a [`Target`]. Emission writes what
//! `iptables-save` (1.8, nf_tables and legacy) prints for the same rule, so a
//! file loaded into the kernel and saved back parses to the same value.
//!
//! Facts checked with the real tools (`tests/render/firewall.rs`):
//! - `-P CHAIN POLICY` lines inside a table are accepted by both
//!   `iptables-restore` backends (they are an ordinary command). Reference
//!   001 uses them; [`Ruleset::parse`] accepts them and folds them into the
//!   chain's policy, [`Ruleset::emit`] writes `:CHAIN POLICY [0:0]` lines as
//!   `iptables-save` does.
//! - A table must end with `COMMIT` before the next `*table` starts:
//!   reference 001's ip6tables file lacks the `COMMIT` of its `*nat` table
//!   and `ip6tables-restore` refuses it ("Bad argument `*filter'").
//!
//! Deliberately stricter than the tools: `-p icmp` in an ip6tables file and
//! `-p ipv6-icmp` in an iptables file (legal, but they never match), a table
//! given twice in one file, options of a match placed after a later `-m`
//! (iptables-save never writes that), and getopt-style abbreviations of long
//! options are rejected.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::format::{Format, ParseError};

/// Why a value cannot be represented in an iptables file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct InvalidRuleset {
    pub message: String,
}

impl InvalidRuleset {
    fn new(message: impl Into<String>) -> Self {
        InvalidRuleset {
            message: message.into(),
        }
    }
}

/// Address family: which tool reads the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `iptables-restore`.
    V4,
    /// `ip6tables-restore`.
    V6,
}

impl Family {
    fn tool(self) -> &'static str {
        match self {
            Family::V4 => "iptables",
            Family::V6 => "ip6tables",
        }
    }

    fn matches(self, addr: &IpAddr) -> bool {
        matches!(
            (self, addr),
            (Family::V4, IpAddr::V4(_)) | (Family::V6, IpAddr::V6(_))
        )
    }
}

// ---------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------

/// A table of the restore file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableName {
    Raw,
    Mangle,
    Nat,
    Filter,
    Security,
}

impl TableName {
    pub const ALL: [TableName; 5] = [
        TableName::Raw,
        TableName::Mangle,
        TableName::Nat,
        TableName::Filter,
        TableName::Security,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            TableName::Raw => "raw",
            TableName::Mangle => "mangle",
            TableName::Nat => "nat",
            TableName::Filter => "filter",
            TableName::Security => "security",
        }
    }

    fn from_name(s: &str) -> Option<TableName> {
        TableName::ALL.into_iter().find(|t| t.as_str() == s)
    }

    /// The built-in chains of this table, in hook order (the order
    /// `iptables-save` lists them).
    pub fn builtin_chains(self) -> &'static [&'static str] {
        match self {
            TableName::Raw => &["PREROUTING", "OUTPUT"],
            TableName::Mangle => &["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"],
            TableName::Nat => &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"],
            TableName::Filter | TableName::Security => &["INPUT", "FORWARD", "OUTPUT"],
        }
    }

    pub fn is_builtin(self, chain: &str) -> bool {
        self.builtin_chains().contains(&chain)
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

const BUILTIN_CHAIN_NAMES: [&str; 5] = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"];

/// Target names that are not chains: a user chain may not be called so.
const TARGET_NAMES: [&str; 10] = [
    "ACCEPT",
    "DROP",
    "RETURN",
    "QUEUE",
    "REJECT",
    "SNAT",
    "DNAT",
    "MASQUERADE",
    "LOG",
    "REDIRECT",
];

/// A chain name: a built-in (`INPUT`, ...) or a user chain (1 to 28
/// characters of `A-Z a-z 0-9 _ . -`, not starting with `-`, not a built-in
/// or standard target name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainName(String);

impl ChainName {
    pub fn new(name: impl Into<String>) -> Result<ChainName, InvalidRuleset> {
        let name = name.into();
        if name.is_empty() || name.len() > 28 {
            return Err(InvalidRuleset::new(format!(
                "chain name {name:?} must have 1 to 28 characters"
            )));
        }
        if name.starts_with('-')
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(InvalidRuleset::new(format!(
                "chain name {name:?} may only use letters, digits, `_`, `.` and `-`, and not start with `-`"
            )));
        }
        if TARGET_NAMES.contains(&name.as_str()) {
            return Err(InvalidRuleset::new(format!(
                "{name} is a target, not a chain name"
            )));
        }
        Ok(ChainName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_builtin_name(&self) -> bool {
        BUILTIN_CHAIN_NAMES.contains(&self.0.as_str())
    }
}

impl fmt::Display for ChainName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An interface for `-i`/`-o`: up to 15 characters of `A-Z a-z 0-9 _ . -`,
/// optionally ending in the wildcard `+` (`tun+` matches every `tun*`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Interface(String);

impl Interface {
    pub fn new(name: impl Into<String>) -> Result<Interface, InvalidRuleset> {
        let name = name.into();
        let stem = name.strip_suffix('+').unwrap_or(&name);
        if stem.is_empty() || name.len() > 15 {
            return Err(InvalidRuleset::new(format!(
                "interface {name:?} must have 1 to 15 characters before an optional `+`"
            )));
        }
        if !stem
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            return Err(InvalidRuleset::new(format!(
                "interface {name:?} may only use letters, digits, `_`, `.`, `-` and a final `+`"
            )));
        }
        Ok(Interface(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `true` for a `+` wildcard.
    pub fn is_wildcard(&self) -> bool {
        self.0.ends_with('+')
    }

    /// Whether a concrete interface name matches (`tun+` matches `tun0`).
    pub fn matches(&self, ifname: &str) -> bool {
        match self.0.strip_suffix('+') {
            Some(stem) => ifname.starts_with(stem),
            None => self.0 == ifname,
        }
    }
}

impl fmt::Display for Interface {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An IP protocol number for `-p` (never 0: "all" is written as no `-p`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Protocol(pub u8);

/// Protocol names as `/etc/protocols` (netbase) spells them; `iptables-save`
/// prints these names.
const PROTOCOL_NAMES: &[(&str, u8)] = &[
    ("icmp", 1),
    ("igmp", 2),
    ("ggp", 3),
    ("ipencap", 4),
    ("st", 5),
    ("tcp", 6),
    ("egp", 8),
    ("igp", 9),
    ("pup", 12),
    ("udp", 17),
    ("hmp", 20),
    ("xns-idp", 22),
    ("rdp", 27),
    ("iso-tp4", 29),
    ("dccp", 33),
    ("xtp", 36),
    ("ddp", 37),
    ("idpr-cmtp", 38),
    ("ipv6", 41),
    ("ipv6-route", 43),
    ("ipv6-frag", 44),
    ("idrp", 45),
    ("rsvp", 46),
    ("gre", 47),
    ("esp", 50),
    ("ah", 51),
    ("skip", 57),
    ("ipv6-icmp", 58),
    ("ipv6-nonxt", 59),
    ("ipv6-opts", 60),
    ("rspf", 73),
    ("vmtp", 81),
    ("eigrp", 88),
    ("ospf", 89),
    ("ax.25", 93),
    ("ipip", 94),
    ("etherip", 97),
    ("encap", 98),
    ("pim", 103),
    ("ipcomp", 108),
    ("vrrp", 112),
    ("l2tp", 115),
    ("isis", 124),
    ("sctp", 132),
    ("fc", 133),
    ("mobility-header", 135),
    ("udplite", 136),
    ("mpls-in-ip", 137),
    ("manet", 138),
    ("hip", 139),
    ("shim6", 140),
    ("wesp", 141),
    ("rohc", 142),
    ("ethernet", 143),
];

impl Protocol {
    pub const ICMP: Protocol = Protocol(1);
    pub const TCP: Protocol = Protocol(6);
    pub const UDP: Protocol = Protocol(17);
    pub const GRE: Protocol = Protocol(47);
    pub const ESP: Protocol = Protocol(50);
    pub const AH: Protocol = Protocol(51);
    pub const IPV6_ICMP: Protocol = Protocol(58);
    pub const SCTP: Protocol = Protocol(132);
    pub const UDPLITE: Protocol = Protocol(136);

    /// The name `iptables-save` prints, or `None` for a number without one.
    pub fn name(self) -> Option<&'static str> {
        PROTOCOL_NAMES
            .iter()
            .find(|(_, n)| *n == self.0)
            .map(|(name, _)| *name)
    }

    /// Reads a `-p` value: a name, an alias (`icmpv6`, `mh`, `ipv6-mh`) or a
    /// number. `Ok(None)` is `all` / `0`.
    fn parse(text: &str) -> Result<Option<Protocol>, String> {
        if text == "all" {
            return Ok(None);
        }
        let alias = match text {
            "icmpv6" => Some(58),
            "mh" | "ipv6-mh" => Some(135),
            _ => None,
        };
        if let Some(n) = alias.or_else(|| {
            PROTOCOL_NAMES
                .iter()
                .find(|(name, _)| *name == text)
                .map(|(_, n)| *n)
        }) {
            return Ok(Some(Protocol(n)));
        }
        match parse_decimal::<u8>(text) {
            Some(0) => Ok(None),
            Some(n) => Ok(Some(Protocol(n))),
            None => Err(format!("unknown protocol {text:?}")),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => f.write_str(name),
            None => write!(f, "{}", self.0),
        }
    }
}

/// A value that can be negated with `!` (`! -s 10.0.0.0/8`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Negatable<T> {
    pub negated: bool,
    pub value: T,
}

impl<T> Negatable<T> {
    pub fn is(value: T) -> Self {
        Negatable {
            negated: false,
            value,
        }
    }

    pub fn not(value: T) -> Self {
        Negatable {
            negated: true,
            value,
        }
    }
}

// ---------------------------------------------------------------------------
// Matches
// ---------------------------------------------------------------------------

/// A port or an inclusive port range (`22`, `1024:65535`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        PortRange {
            first: port,
            last: port,
        }
    }

    pub fn contains(&self, port: u16) -> bool {
        self.first <= port && port <= self.last
    }

    fn parse(text: &str) -> Result<PortRange, String> {
        let port = |s: &str, default: u16| -> Result<u16, String> {
            if s.is_empty() {
                Ok(default)
            } else {
                parse_decimal::<u16>(s).ok_or_else(|| format!("invalid port {s:?}"))
            }
        };
        let range = match text.split_once(':') {
            Some(("", "")) => return Err(format!("invalid port range {text:?}")),
            Some((a, b)) => PortRange {
                first: port(a, 0)?,
                last: port(b, u16::MAX)?,
            },
            None if text.is_empty() => return Err("empty port".into()),
            None => PortRange::single(port(text, 0)?),
        };
        if range.first > range.last {
            return Err(format!(
                "invalid port range {text:?}: first port above last"
            ));
        }
        Ok(range)
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}:{}", self.first, self.last)
        }
    }
}

/// `-m tcp` / `-m udp`: `--sport`, `--dport`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct PortMatch {
    pub sport: Option<Negatable<PortRange>>,
    pub dport: Option<Negatable<PortRange>>,
}

impl PortMatch {
    pub fn dport(port: u16) -> Self {
        PortMatch {
            sport: None,
            dport: Some(Negatable::is(PortRange::single(port))),
        }
    }
}

/// Which ports `-m multiport` compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MultiportDirection {
    Source,
    Destination,
    Either,
}

impl MultiportDirection {
    fn option(self) -> &'static str {
        match self {
            MultiportDirection::Source => "--sports",
            MultiportDirection::Destination => "--dports",
            MultiportDirection::Either => "--ports",
        }
    }
}

/// An ICMP (`--icmp-type`) or ICMPv6 (`--icmpv6-type`) type, with an
/// optional exact code. For IPv4, type 255 without a code is `any`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpType {
    pub kind: u8,
    pub code: Option<u8>,
}

impl IcmpType {
    pub const ANY: IcmpType = IcmpType {
        kind: 255,
        code: None,
    };

    pub fn kind(kind: u8) -> Self {
        IcmpType { kind, code: None }
    }

    fn parse(family: Family, text: &str) -> Result<IcmpType, String> {
        let names: &[(&str, u8, Option<u8>)] = match family {
            Family::V4 => ICMP_NAMES,
            Family::V6 => ICMP6_NAMES,
        };
        if let Some((_, kind, code)) = names.iter().find(|(name, _, _)| *name == text) {
            return Ok(IcmpType {
                kind: *kind,
                code: *code,
            });
        }
        let (kind, code) = match text.split_once('/') {
            Some((k, c)) => (k, Some(c)),
            None => (text, None),
        };
        let kind =
            parse_decimal::<u8>(kind).ok_or_else(|| format!("unknown ICMP type {text:?}"))?;
        let code = match code {
            Some(c) => Some(
                parse_decimal::<u8>(c).ok_or_else(|| format!("invalid ICMP code in {text:?}"))?,
            ),
            None => None,
        };
        if family == Family::V4 && kind == 255 && code.is_some() {
            return Err(format!(
                "ICMP type 255 is `any` and takes no code ({text:?})"
            ));
        }
        Ok(IcmpType { kind, code })
    }

    fn write(&self, family: Family, out: &mut String) {
        if family == Family::V4 && *self == IcmpType::ANY {
            out.push_str("any");
            return;
        }
        let _ = write!(out, "{}", self.kind);
        if let Some(code) = self.code {
            let _ = write!(out, "/{code}");
        }
    }
}

const ICMP_NAMES: &[(&str, u8, Option<u8>)] = &[
    ("any", 255, None),
    ("echo-reply", 0, None),
    ("pong", 0, None),
    ("destination-unreachable", 3, None),
    ("network-unreachable", 3, Some(0)),
    ("host-unreachable", 3, Some(1)),
    ("protocol-unreachable", 3, Some(2)),
    ("port-unreachable", 3, Some(3)),
    ("fragmentation-needed", 3, Some(4)),
    ("source-route-failed", 3, Some(5)),
    ("network-unknown", 3, Some(6)),
    ("host-unknown", 3, Some(7)),
    ("network-prohibited", 3, Some(9)),
    ("host-prohibited", 3, Some(10)),
    ("TOS-network-unreachable", 3, Some(11)),
    ("TOS-host-unreachable", 3, Some(12)),
    ("communication-prohibited", 3, Some(13)),
    ("host-precedence-violation", 3, Some(14)),
    ("precedence-cutoff", 3, Some(15)),
    ("source-quench", 4, None),
    ("redirect", 5, None),
    ("network-redirect", 5, Some(0)),
    ("host-redirect", 5, Some(1)),
    ("TOS-network-redirect", 5, Some(2)),
    ("TOS-host-redirect", 5, Some(3)),
    ("echo-request", 8, None),
    ("ping", 8, None),
    ("router-advertisement", 9, None),
    ("router-solicitation", 10, None),
    ("time-exceeded", 11, None),
    ("ttl-exceeded", 11, None),
    ("ttl-zero-during-transit", 11, Some(0)),
    ("ttl-zero-during-reassembly", 11, Some(1)),
    ("parameter-problem", 12, None),
    ("ip-header-bad", 12, Some(0)),
    ("required-option-missing", 12, Some(1)),
    ("timestamp-request", 13, None),
    ("timestamp-reply", 14, None),
    ("address-mask-request", 17, None),
    ("address-mask-reply", 18, None),
];

const ICMP6_NAMES: &[(&str, u8, Option<u8>)] = &[
    ("destination-unreachable", 1, None),
    ("no-route", 1, Some(0)),
    ("communication-prohibited", 1, Some(1)),
    ("beyond-scope", 1, Some(2)),
    ("address-unreachable", 1, Some(3)),
    ("port-unreachable", 1, Some(4)),
    ("failed-policy", 1, Some(5)),
    ("reject-route", 1, Some(6)),
    ("packet-too-big", 2, None),
    ("time-exceeded", 3, None),
    ("ttl-exceeded", 3, None),
    ("ttl-zero-during-transit", 3, Some(0)),
    ("ttl-zero-during-reassembly", 3, Some(1)),
    ("parameter-problem", 4, None),
    ("bad-header", 4, Some(0)),
    ("unknown-header-type", 4, Some(1)),
    ("unknown-option", 4, Some(2)),
    ("echo-request", 128, None),
    ("ping", 128, None),
    ("echo-reply", 129, None),
    ("pong", 129, None),
    ("mld-listener-query", 130, None),
    ("mld-listener-report", 131, None),
    ("mld-listener-done", 132, None),
    ("mld-listener-reduction", 132, None),
    ("router-solicitation", 133, None),
    ("router-advertisement", 134, None),
    ("neighbour-solicitation", 135, None),
    ("neighbor-solicitation", 135, None),
    ("neighbour-advertisement", 136, None),
    ("neighbor-advertisement", 136, None),
    ("redirect", 137, None),
];

/// A connection-tracking state for `-m conntrack --ctstate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CtState {
    Invalid,
    New,
    Related,
    Established,
    Untracked,
    Snat,
    Dnat,
}

impl CtState {
    /// In the order `iptables-save` prints them.
    pub const ALL: [CtState; 7] = [
        CtState::Invalid,
        CtState::New,
        CtState::Related,
        CtState::Established,
        CtState::Untracked,
        CtState::Snat,
        CtState::Dnat,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CtState::Invalid => "INVALID",
            CtState::New => "NEW",
            CtState::Related => "RELATED",
            CtState::Established => "ESTABLISHED",
            CtState::Untracked => "UNTRACKED",
            CtState::Snat => "SNAT",
            CtState::Dnat => "DNAT",
        }
    }
}

/// A match module (`-m NAME options`), in the order given on the rule line.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Match {
    /// `-m tcp [--sport P] [--dport P]` (needs `-p tcp`).
    Tcp(PortMatch),
    /// `-m udp [--sport P] [--dport P]` (needs `-p udp`).
    Udp(PortMatch),
    /// `-m icmp --icmp-type T` (IPv4, needs `-p icmp`).
    Icmp(Negatable<IcmpType>),
    /// `-m icmp6 --icmpv6-type T` (IPv6, needs `-p ipv6-icmp`).
    Icmp6(Negatable<IcmpType>),
    /// `-m multiport --dports 500,4500` (at most 15 ports, a range counts 2).
    Multiport {
        negated: bool,
        direction: MultiportDirection,
        ports: Vec<PortRange>,
    },
    /// `-m conntrack --ctstate NEW,ESTABLISHED` (a non-empty set).
    Conntrack(Negatable<BTreeSet<CtState>>),
    /// `-m comment --comment TEXT` (at most 255 bytes, no control characters).
    Comment(String),
    /// Any other module (or a known one with options not modelled here),
    /// kept as its argument list so the round trip is lossless.
    Raw { module: String, args: Vec<String> },
}

impl Match {
    pub fn ctstate(states: &[CtState]) -> Match {
        Match::Conntrack(Negatable::is(states.iter().copied().collect()))
    }
}

// ---------------------------------------------------------------------------
// Targets
// ---------------------------------------------------------------------------

/// `REJECT --reject-with` for IPv4 (`icmp-*`), IPv6 (`icmp6-*`) or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectWith {
    IcmpNetUnreachable,
    IcmpHostUnreachable,
    IcmpPortUnreachable,
    IcmpProtoUnreachable,
    IcmpNetProhibited,
    IcmpHostProhibited,
    IcmpAdminProhibited,
    Icmp6NoRoute,
    Icmp6AdmProhibited,
    Icmp6AddrUnreachable,
    Icmp6PortUnreachable,
    Icmp6PolicyFail,
    Icmp6RejectRoute,
    /// TCP RST (needs `-p tcp`).
    TcpReset,
}

/// (canonical name, alias, value, family or None for both)
const REJECT_NAMES: &[(&str, &str, RejectWith, Option<Family>)] = &[
    (
        "icmp-net-unreachable",
        "net-unreach",
        RejectWith::IcmpNetUnreachable,
        Some(Family::V4),
    ),
    (
        "icmp-host-unreachable",
        "host-unreach",
        RejectWith::IcmpHostUnreachable,
        Some(Family::V4),
    ),
    (
        "icmp-port-unreachable",
        "port-unreach",
        RejectWith::IcmpPortUnreachable,
        Some(Family::V4),
    ),
    (
        "icmp-proto-unreachable",
        "proto-unreach",
        RejectWith::IcmpProtoUnreachable,
        Some(Family::V4),
    ),
    (
        "icmp-net-prohibited",
        "net-prohib",
        RejectWith::IcmpNetProhibited,
        Some(Family::V4),
    ),
    (
        "icmp-host-prohibited",
        "host-prohib",
        RejectWith::IcmpHostProhibited,
        Some(Family::V4),
    ),
    (
        "icmp-admin-prohibited",
        "admin-prohib",
        RejectWith::IcmpAdminProhibited,
        Some(Family::V4),
    ),
    (
        "icmp6-no-route",
        "no-route",
        RejectWith::Icmp6NoRoute,
        Some(Family::V6),
    ),
    (
        "icmp6-adm-prohibited",
        "adm-prohibited",
        RejectWith::Icmp6AdmProhibited,
        Some(Family::V6),
    ),
    (
        "icmp6-addr-unreachable",
        "addr-unreach",
        RejectWith::Icmp6AddrUnreachable,
        Some(Family::V6),
    ),
    (
        "icmp6-port-unreachable",
        "port-unreach",
        RejectWith::Icmp6PortUnreachable,
        Some(Family::V6),
    ),
    (
        "icmp6-policy-fail",
        "policy-fail",
        RejectWith::Icmp6PolicyFail,
        Some(Family::V6),
    ),
    (
        "icmp6-reject-route",
        "reject-route",
        RejectWith::Icmp6RejectRoute,
        Some(Family::V6),
    ),
    ("tcp-reset", "tcp-reset", RejectWith::TcpReset, None),
];

impl RejectWith {
    pub fn as_str(self) -> &'static str {
        REJECT_NAMES
            .iter()
            .find(|(_, _, v, _)| *v == self)
            .map(|(name, _, _, _)| *name)
            .unwrap_or("tcp-reset")
    }

    /// The family this reply exists in (`None`: both).
    pub fn family(self) -> Option<Family> {
        REJECT_NAMES
            .iter()
            .find(|(_, _, v, _)| *v == self)
            .and_then(|(_, _, _, f)| *f)
    }

    /// What `REJECT` without `--reject-with` sends.
    pub fn default_for(family: Family) -> RejectWith {
        match family {
            Family::V4 => RejectWith::IcmpPortUnreachable,
            Family::V6 => RejectWith::Icmp6PortUnreachable,
        }
    }

    fn parse(family: Family, text: &str) -> Result<RejectWith, String> {
        REJECT_NAMES
            .iter()
            .find(|(name, alias, _, f)| {
                (*name == text || *alias == text) && f.is_none_or(|f| f == family)
            })
            .map(|(_, _, v, _)| *v)
            .ok_or_else(|| format!("{text:?} is not a --reject-with value of {}", family.tool()))
    }
}

/// The target of a rule (`-j` / `-g`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Accept,
    Drop,
    Return,
    /// `-j REJECT --reject-with X` (always written with `--reject-with`, as
    /// `iptables-save` does).
    Reject(RejectWith),
    /// `-j SNAT --to-source A[-B]` (table nat; POSTROUTING, INPUT or a user chain).
    Snat {
        to: IpAddr,
        to_last: Option<IpAddr>,
    },
    /// `-j MASQUERADE` (table nat; POSTROUTING or a user chain).
    Masquerade,
    /// `-j LOG [--log-prefix P] [--log-level L]`; level 4 (warning) is the
    /// default and not written. A prefix has at most 29 bytes.
    Log {
        prefix: Option<String>,
        level: u8,
    },
    /// `-j CHAIN`: a user chain declared in the same table.
    Jump(ChainName),
    /// `-g CHAIN`.
    Goto(ChainName),
    /// Any other target extension (upper-case name), or a known one with
    /// options not modelled here, with its raw arguments.
    Raw {
        name: String,
        args: Vec<String>,
    },
}

// ---------------------------------------------------------------------------
// Rules, chains, tables
// ---------------------------------------------------------------------------

/// One `-A CHAIN ...` line (the chain is the one that holds it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Rule {
    pub source: Option<Negatable<IpNet>>,
    pub destination: Option<Negatable<IpNet>>,
    pub in_interface: Option<Negatable<Interface>>,
    pub out_interface: Option<Negatable<Interface>>,
    pub protocol: Option<Negatable<Protocol>>,
    pub matches: Vec<Match>,
    /// `None`: a rule that only counts.
    pub target: Option<Target>,
}

impl Rule {
    /// A rule with only a target.
    pub fn target(target: Target) -> Rule {
        Rule {
            target: Some(target),
            ..Rule::default()
        }
    }

    /// The protocol when given and not negated.
    fn positive_protocol(&self) -> Option<Protocol> {
        self.protocol
            .as_ref()
            .filter(|p| !p.negated)
            .map(|p| p.value)
    }
}

/// Packet and byte counters of a chain (`[0:0]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// The policy of a built-in chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    Accept,
    Drop,
}

impl Policy {
    pub fn as_str(self) -> &'static str {
        match self {
            Policy::Accept => "ACCEPT",
            Policy::Drop => "DROP",
        }
    }
}

/// A chain: built-in (with a policy) or user-defined (`policy: None`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chain {
    pub name: ChainName,
    pub policy: Option<Policy>,
    pub counters: Counters,
    pub rules: Vec<Rule>,
}

impl Chain {
    /// A built-in chain with a policy and no rules.
    pub fn builtin(name: &str, policy: Policy) -> Result<Chain, InvalidRuleset> {
        Ok(Chain {
            name: ChainName::new(name)?,
            policy: Some(policy),
            counters: Counters::default(),
            rules: Vec::new(),
        })
    }

    /// A user chain with no rules.
    pub fn user(name: &str) -> Result<Chain, InvalidRuleset> {
        Ok(Chain {
            name: ChainName::new(name)?,
            policy: None,
            counters: Counters::default(),
            rules: Vec::new(),
        })
    }
}

/// One `*table ... COMMIT` section.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Table {
    pub name: TableName,
    pub chains: Vec<Chain>,
}

impl Table {
    /// The table with its built-in chains, all with policy ACCEPT.
    pub fn with_builtins(name: TableName) -> Table {
        let chains = name
            .builtin_chains()
            .iter()
            .map(|c| Chain {
                name: ChainName(c.to_string()),
                policy: Some(Policy::Accept),
                counters: Counters::default(),
                rules: Vec::new(),
            })
            .collect();
        Table { name, chains }
    }

    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name.as_str() == name)
    }

    pub fn chain_mut(&mut self, name: &str) -> Option<&mut Chain> {
        self.chains.iter_mut().find(|c| c.name.as_str() == name)
    }
}

/// A whole restore file for one family.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ruleset {
    pub family: Family,
    /// `#` comment lines written before the first table (without the `#`).
    pub header: Vec<String>,
    pub tables: Vec<Table>,
}

impl Ruleset {
    pub fn new(family: Family) -> Ruleset {
        Ruleset {
            family,
            header: Vec::new(),
            tables: Vec::new(),
        }
    }

    pub fn table(&self, name: TableName) -> Option<&Table> {
        self.tables.iter().find(|t| t.name == name)
    }

    pub fn table_mut(&mut self, name: TableName) -> Option<&mut Table> {
        self.tables.iter_mut().find(|t| t.name == name)
    }

    /// The same policy in a canonical arrangement, for comparing what two
    /// files mean: header and counters dropped, tables in `iptables-save`
    /// order, built-in chains in hook order before user chains by name.
    pub fn normalized(&self) -> Ruleset {
        let mut tables = self.tables.clone();
        tables.sort_by_key(|t| t.name);
        for table in &mut tables {
            let name = table.name;
            table.chains.sort_by(|a, b| {
                let rank = |c: &Chain| {
                    name.builtin_chains()
                        .iter()
                        .position(|b| *b == c.name.as_str())
                        .unwrap_or(usize::MAX)
                };
                rank(a).cmp(&rank(b)).then_with(|| a.name.cmp(&b.name))
            });
            for chain in &mut table.chains {
                chain.counters = Counters::default();
            }
        }
        Ruleset {
            family: self.family,
            header: Vec::new(),
            tables,
        }
    }

    /// Checks everything `emit` relies on and the real tools enforce.
    pub fn validate(&self) -> Result<(), InvalidRuleset> {
        for line in &self.header {
            check_comment_line(line).map_err(InvalidRuleset::new)?;
        }
        let mut seen = BTreeSet::new();
        for table in &self.tables {
            if !seen.insert(table.name) {
                return Err(InvalidRuleset::new(format!(
                    "table {} appears twice",
                    table.name
                )));
            }
            validate_table(self.family, table).map_err(InvalidRuleset::new)?;
        }
        Ok(())
    }

    /// The restore file. Deterministic; never panics (an invalid value
    /// gives a file the tools reject).
    pub fn emit(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            if line.is_empty() {
                out.push_str("#\n");
            } else {
                let _ = writeln!(out, "# {line}");
            }
        }
        for table in &self.tables {
            let _ = writeln!(out, "*{}", table.name);
            for chain in &table.chains {
                let policy = chain.policy.map_or("-", Policy::as_str);
                let _ = writeln!(
                    out,
                    ":{} {} [{}:{}]",
                    chain.name, policy, chain.counters.packets, chain.counters.bytes
                );
            }
            for chain in &table.chains {
                for rule in &chain.rules {
                    let _ = write!(out, "-A {}", chain.name);
                    write_rule(rule, &mut out);
                    out.push('\n');
                }
            }
            out.push_str("COMMIT\n");
        }
        out
    }

    /// Reads a restore file (or `iptables-save` output) of the given family.
    pub fn parse(family: Family, text: &str) -> Result<Ruleset, ParseError> {
        Parser::new(family).run(text)
    }
}

/// An `iptables-restore` file: a valid IPv4 [`Ruleset`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Iptables(Ruleset);

/// An `ip6tables-restore` file: a valid IPv6 [`Ruleset`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ip6tables(Ruleset);

macro_rules! family_file {
    ($ty:ident, $family:expr) => {
        impl $ty {
            /// Checks the family and [`Ruleset::validate`].
            pub fn new(ruleset: Ruleset) -> Result<Self, InvalidRuleset> {
                if ruleset.family != $family {
                    return Err(InvalidRuleset::new(format!(
                        "a {:?} ruleset is not a {} file",
                        ruleset.family,
                        $family.tool()
                    )));
                }
                ruleset.validate()?;
                Ok($ty(ruleset))
            }

            pub fn ruleset(&self) -> &Ruleset {
                &self.0
            }

            pub fn into_ruleset(self) -> Ruleset {
                self.0
            }
        }

        impl Format for $ty {
            fn emit(&self) -> String {
                self.0.emit()
            }

            fn parse(text: &str) -> Result<Self, ParseError> {
                Ruleset::parse($family, text).map($ty)
            }
        }
    };
}

family_file!(Iptables, Family::V4);
family_file!(Ip6tables, Family::V6);

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

fn check_comment_line(line: &str) -> Result<(), String> {
    if line.chars().any(|c| c.is_control() && c != '\t') {
        return Err(format!("comment {line:?} has a control character"));
    }
    if line.ends_with(char::is_whitespace) || line.starts_with(char::is_whitespace) {
        return Err(format!("comment {line:?} starts or ends with whitespace"));
    }
    Ok(())
}

fn check_text(what: &str, text: &str, max: usize) -> Result<(), String> {
    if text.len() > max {
        return Err(format!("{what} {text:?} is longer than {max} bytes"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what} {text:?} has a control character"));
    }
    Ok(())
}

/// Tokens that the rule parser reads as options of the rule itself; a raw
/// argument may not be one of them.
fn is_reserved_token(t: &str) -> bool {
    basic_option(t).is_some()
        || matches!(
            t,
            "-c" | "--set-counters"
                | "-f"
                | "--fragment"
                | "-A"
                | "--append"
                | "-I"
                | "-D"
                | "-R"
                | "-N"
                | "-X"
                | "-F"
                | "-P"
                | "-Z"
                | "-E"
        )
}

fn check_raw_args(args: &[String]) -> Result<(), String> {
    for a in args {
        check_text("argument", a, 1024)?;
        if is_reserved_token(a) {
            return Err(format!(
                "argument {a:?} would be read as an option of the rule"
            ));
        }
    }
    if args.last().is_some_and(|a| a == "!") {
        return Err("arguments end with a dangling `!`".into());
    }
    Ok(())
}

fn check_module_name(name: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 28
        || !name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    {
        return Err(format!(
            "match module name {name:?} must be 1 to 28 characters of `a-z 0-9 _`"
        ));
    }
    Ok(())
}

fn check_target_name(name: &str) -> Result<(), String> {
    if BUILTIN_CHAIN_NAMES.contains(&name) {
        return Err(format!("cannot jump to built-in chain {name}"));
    }
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_uppercase())
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        && name.len() <= 28;
    if !ok {
        return Err(format!(
            "{name:?} is neither a declared chain nor a target extension name (A-Z, 0-9, _)"
        ));
    }
    Ok(())
}

fn validate_table(family: Family, table: &Table) -> Result<(), String> {
    let mut names = BTreeSet::new();
    for chain in &table.chains {
        if !names.insert(chain.name.as_str()) {
            return Err(format!(
                "chain {} declared twice in table {}",
                chain.name, table.name
            ));
        }
        let builtin = table.name.is_builtin(chain.name.as_str());
        match (builtin, chain.policy) {
            (true, None) => {
                return Err(format!(
                    "built-in chain {} of table {} needs a policy",
                    chain.name, table.name
                ));
            }
            (false, Some(_)) if chain.name.is_builtin_name() => {
                return Err(format!(
                    "{} is not a built-in chain of table {}",
                    chain.name, table.name
                ));
            }
            (false, Some(_)) => {
                return Err(format!("user chain {} cannot have a policy", chain.name));
            }
            (false, None) if chain.name.is_builtin_name() => {
                return Err(format!(
                    "{} is a built-in chain name; it is not a chain of table {}",
                    chain.name, table.name
                ));
            }
            _ => {}
        }
    }
    for chain in &table.chains {
        for rule in &chain.rules {
            validate_rule(family, table, chain, rule)?;
        }
    }
    check_loops(table)
}

/// The kernel refuses a table whose jumps form a loop.
fn check_loops(table: &Table) -> Result<(), String> {
    fn visit<'a>(
        table: &'a Table,
        name: &'a str,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Result<(), String> {
        if done.contains(name) {
            return Ok(());
        }
        if let Some(at) = path.iter().position(|n| *n == name) {
            let mut cycle: Vec<&str> = path[at..].to_vec();
            cycle.push(name);
            return Err(format!("chains jump in a loop: {}", cycle.join(" -> ")));
        }
        path.push(name);
        if let Some(chain) = table.chain(name) {
            for rule in &chain.rules {
                if let Some(Target::Jump(to) | Target::Goto(to)) = &rule.target {
                    visit(table, to.as_str(), path, done)?;
                }
            }
        }
        path.pop();
        done.insert(name);
        Ok(())
    }
    let mut done = BTreeSet::new();
    for chain in &table.chains {
        visit(table, chain.name.as_str(), &mut Vec::new(), &mut done)?;
    }
    Ok(())
}

fn validate_rule(family: Family, table: &Table, chain: &Chain, rule: &Rule) -> Result<(), String> {
    let tool = family.tool();
    for (what, net) in [("source", &rule.source), ("destination", &rule.destination)] {
        if let Some(n) = net {
            if !family.matches(&n.value.addr()) {
                return Err(format!("{what} {} is not an address of {tool}", n.value));
            }
            if n.value.trunc() != n.value {
                return Err(format!(
                    "{what} {} has host bits set (iptables-save writes {})",
                    n.value,
                    n.value.trunc()
                ));
            }
        }
    }
    let chain_name = chain.name.as_str();
    if rule.in_interface.is_some() && matches!(chain_name, "OUTPUT" | "POSTROUTING") {
        return Err(format!("-i cannot be used in {chain_name}"));
    }
    if rule.out_interface.is_some() && matches!(chain_name, "INPUT" | "PREROUTING") {
        return Err(format!("-o cannot be used in {chain_name}"));
    }
    if let Some(p) = &rule.protocol {
        if p.value.0 == 0 {
            return Err("protocol 0 is `all`: leave -p out".into());
        }
        match (family, p.value) {
            (Family::V6, Protocol::ICMP) => {
                return Err("-p icmp never matches in ip6tables: use ipv6-icmp".into());
            }
            (Family::V4, Protocol::IPV6_ICMP) => {
                return Err("-p ipv6-icmp never matches in iptables: use icmp".into());
            }
            _ => {}
        }
    }
    let proto = rule.positive_protocol();
    let needs = |want: Protocol, what: &str| -> Result<(), String> {
        if proto != Some(want) {
            return Err(format!("{what} needs `-p {want}`"));
        }
        Ok(())
    };
    for m in &rule.matches {
        match m {
            Match::Tcp(_) => needs(Protocol::TCP, "-m tcp")?,
            Match::Udp(_) => needs(Protocol::UDP, "-m udp")?,
            Match::Icmp(_) => {
                if family == Family::V6 {
                    return Err("-m icmp is IPv4 only: use -m icmp6 in ip6tables".into());
                }
                needs(Protocol::ICMP, "-m icmp")?;
            }
            Match::Icmp6(_) => {
                if family == Family::V4 {
                    return Err("-m icmp6 is IPv6 only: use -m icmp in iptables".into());
                }
                needs(Protocol::IPV6_ICMP, "-m icmp6")?;
            }
            Match::Multiport { ports, .. } => {
                if !matches!(
                    proto,
                    Some(Protocol::TCP | Protocol::UDP | Protocol::UDPLITE | Protocol::SCTP)
                        | Some(Protocol(33))
                ) {
                    return Err("-m multiport needs -p tcp, udp, udplite, sctp or dccp".into());
                }
                if ports.is_empty() {
                    return Err("-m multiport needs at least one port".into());
                }
                let slots: usize = ports
                    .iter()
                    .map(|p| if p.first == p.last { 1 } else { 2 })
                    .sum();
                if slots > 15 {
                    return Err(format!(
                        "-m multiport takes at most 15 ports (a range counts 2), got {slots}"
                    ));
                }
                if ports.iter().any(|p| p.first > p.last) {
                    return Err("-m multiport: a range's first port is above its last".into());
                }
            }
            Match::Conntrack(states) => {
                if states.value.is_empty() {
                    return Err("--ctstate needs at least one state".into());
                }
            }
            Match::Comment(text) => check_text("comment", text, 255)?,
            Match::Raw { module, args } => {
                check_module_name(module)?;
                check_raw_args(args)?;
                if typed_match(module, args)?.is_some() {
                    return Err(format!(
                        "-m {module} {} is a typed match and must be written as one",
                        args.join(" ")
                    ));
                }
            }
        }
        for port in match m {
            Match::Tcp(p) | Match::Udp(p) => [p.sport.as_ref(), p.dport.as_ref()],
            _ => [None, None],
        }
        .into_iter()
        .flatten()
        {
            if port.value.first > port.value.last {
                return Err(format!(
                    "port range {}:{} has its first port above its last",
                    port.value.first, port.value.last
                ));
            }
        }
        if let Match::Icmp(t) = m
            && t.value.kind == 255
            && t.value.code.is_some()
        {
            return Err("ICMP type 255 is `any` and takes no code".into());
        }
    }
    let user_chain = !table.name.is_builtin(chain_name);
    match &rule.target {
        None | Some(Target::Accept | Target::Drop | Target::Return) => {}
        Some(Target::Reject(with)) => {
            if with.family().is_some_and(|f| f != family) {
                return Err(format!(
                    "--reject-with {} is not available in {tool}",
                    with.as_str()
                ));
            }
            if *with == RejectWith::TcpReset {
                needs(Protocol::TCP, "--reject-with tcp-reset")?;
            }
            if !user_chain && !matches!(chain_name, "INPUT" | "FORWARD" | "OUTPUT") {
                return Err(format!(
                    "REJECT is only valid in INPUT, FORWARD, OUTPUT and user chains, not {chain_name}"
                ));
            }
        }
        Some(Target::Snat { to, to_last }) => {
            if table.name != TableName::Nat {
                return Err("SNAT is only valid in table nat".into());
            }
            if !user_chain && !matches!(chain_name, "POSTROUTING" | "INPUT") {
                return Err(format!(
                    "SNAT is only valid in POSTROUTING, INPUT and user chains, not {chain_name}"
                ));
            }
            if !family.matches(to) || to_last.is_some_and(|l| !family.matches(&l)) {
                return Err(format!("--to-source is not an address of {tool}"));
            }
            if to_last.is_some_and(|l| l < *to) {
                return Err("--to-source range ends below its start".into());
            }
        }
        Some(Target::Masquerade) => {
            if table.name != TableName::Nat {
                return Err("MASQUERADE is only valid in table nat".into());
            }
            if !user_chain && chain_name != "POSTROUTING" {
                return Err(format!(
                    "MASQUERADE is only valid in POSTROUTING and user chains, not {chain_name}"
                ));
            }
        }
        Some(Target::Log { prefix, level }) => {
            if let Some(p) = prefix {
                check_text("log prefix", p, 29)?;
            }
            if *level > 7 {
                return Err(format!("log level {level} is above 7"));
            }
        }
        Some(Target::Jump(to) | Target::Goto(to)) => match table.chain(to.as_str()) {
            Some(c) if c.policy.is_none() => {}
            Some(_) => return Err(format!("cannot jump to built-in chain {to}")),
            None => {
                return Err(format!(
                    "chain {to} is not declared in table {}",
                    table.name
                ));
            }
        },
        Some(Target::Raw { name, args }) => {
            check_target_name(name)?;
            check_raw_args(args)?;
            if table.chain(name).is_some() {
                return Err(format!("{name} is a chain of this table: use a jump"));
            }
            if typed_target(family, name, args)?.is_some() {
                return Err(format!(
                    "-j {name} {} is a typed target and must be written as one",
                    args.join(" ")
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Emission
// ---------------------------------------------------------------------------

/// `iptables-save`'s quoting: bare when only `A-Z a-z 0-9 _ -`, otherwise
/// double quotes with `"`, `\` and `'` escaped by a backslash.
fn save_string(out: &mut String, s: &str) {
    out.push(' ');
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '\'') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// A raw argument: bare unless it is empty or holds whitespace or quotes.
fn raw_token(out: &mut String, s: &str) {
    if s.is_empty() || s.chars().any(|c| c.is_whitespace() || c == '"') {
        save_string(out, s);
    } else {
        out.push(' ');
        out.push_str(s);
    }
}

fn neg(out: &mut String, negated: bool) {
    if negated {
        out.push_str(" !");
    }
}

fn write_rule(rule: &Rule, out: &mut String) {
    if let Some(s) = &rule.source {
        neg(out, s.negated);
        let _ = write!(out, " -s {}", s.value);
    }
    if let Some(d) = &rule.destination {
        neg(out, d.negated);
        let _ = write!(out, " -d {}", d.value);
    }
    if let Some(i) = &rule.in_interface {
        neg(out, i.negated);
        let _ = write!(out, " -i {}", i.value);
    }
    if let Some(o) = &rule.out_interface {
        neg(out, o.negated);
        let _ = write!(out, " -o {}", o.value);
    }
    if let Some(p) = &rule.protocol {
        neg(out, p.negated);
        let _ = write!(out, " -p {}", p.value);
    }
    for m in &rule.matches {
        write_match(m, out);
    }
    match &rule.target {
        None => {}
        Some(Target::Goto(chain)) => {
            let _ = write!(out, " -g {chain}");
        }
        Some(target) => write_target(target, out),
    }
}

fn write_ports(out: &mut String, pm: &PortMatch) {
    if let Some(p) = &pm.sport {
        neg(out, p.negated);
        let _ = write!(out, " --sport {}", p.value);
    }
    if let Some(p) = &pm.dport {
        neg(out, p.negated);
        let _ = write!(out, " --dport {}", p.value);
    }
}

fn write_match(m: &Match, out: &mut String) {
    match m {
        Match::Tcp(pm) => {
            out.push_str(" -m tcp");
            write_ports(out, pm);
        }
        Match::Udp(pm) => {
            out.push_str(" -m udp");
            write_ports(out, pm);
        }
        Match::Icmp(t) => {
            out.push_str(" -m icmp");
            neg(out, t.negated);
            out.push_str(" --icmp-type ");
            t.value.write(Family::V4, out);
        }
        Match::Icmp6(t) => {
            out.push_str(" -m icmp6");
            neg(out, t.negated);
            out.push_str(" --icmpv6-type ");
            t.value.write(Family::V6, out);
        }
        Match::Multiport {
            negated,
            direction,
            ports,
        } => {
            out.push_str(" -m multiport");
            neg(out, *negated);
            let list: Vec<String> = ports.iter().map(PortRange::to_string).collect();
            let _ = write!(out, " {} {}", direction.option(), list.join(","));
        }
        Match::Conntrack(states) => {
            out.push_str(" -m conntrack");
            neg(out, states.negated);
            let list: Vec<&str> = states.value.iter().map(|s| s.as_str()).collect();
            let _ = write!(out, " --ctstate {}", list.join(","));
        }
        Match::Comment(text) => {
            out.push_str(" -m comment --comment");
            save_string(out, text);
        }
        Match::Raw { module, args } => {
            let _ = write!(out, " -m {module}");
            for a in args {
                raw_token(out, a);
            }
        }
    }
}

fn write_target(target: &Target, out: &mut String) {
    match target {
        Target::Accept => out.push_str(" -j ACCEPT"),
        Target::Drop => out.push_str(" -j DROP"),
        Target::Return => out.push_str(" -j RETURN"),
        Target::Reject(with) => {
            let _ = write!(out, " -j REJECT --reject-with {}", with.as_str());
        }
        Target::Snat { to, to_last } => {
            let _ = write!(out, " -j SNAT --to-source {to}");
            if let Some(last) = to_last {
                let _ = write!(out, "-{last}");
            }
        }
        Target::Masquerade => out.push_str(" -j MASQUERADE"),
        Target::Log { prefix, level } => {
            out.push_str(" -j LOG");
            if let Some(p) = prefix {
                out.push_str(" --log-prefix");
                save_string(out, p);
            }
            if *level != 4 {
                let _ = write!(out, " --log-level {level}");
            }
        }
        Target::Jump(chain) => {
            let _ = write!(out, " -j {chain}");
        }
        Target::Goto(chain) => {
            let _ = write!(out, " -g {chain}");
        }
        Target::Raw { name, args } => {
            let _ = write!(out, " -j {name}");
            for a in args {
                raw_token(out, a);
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------

fn parse_decimal<T: std::str::FromStr>(s: &str) -> Option<T> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || s.len() > 20 {
        return None;
    }
    s.parse().ok()
}

/// Splits a rule line as `iptables-restore` does: whitespace-separated
/// words, double quotes group, a backslash inside quotes takes the next
/// character literally. A quote inside a bare word is refused.
fn tokenize(line: &str) -> Result<Vec<String>, String> {
    let mut tokens = Vec::new();
    let mut chars = line.chars().peekable();
    loop {
        while chars.next_if(|c| *c == ' ' || *c == '\t').is_some() {}
        let Some(&first) = chars.peek() else { break };
        let mut token = String::new();
        if first == '"' {
            chars.next();
            let mut closed = false;
            while let Some(c) = chars.next() {
                match c {
                    '\\' => match chars.next() {
                        Some(n) => token.push(n),
                        None => return Err("backslash at the end of the line".into()),
                    },
                    '"' => {
                        closed = true;
                        break;
                    }
                    c => token.push(c),
                }
            }
            if !closed {
                return Err("unterminated quote".into());
            }
            if chars.peek().is_some_and(|c| *c != ' ' && *c != '\t') {
                return Err("text right after a closing quote".into());
            }
        } else {
            while let Some(c) = chars.next_if(|c| *c != ' ' && *c != '\t') {
                if c == '"' {
                    return Err("quote inside a word".into());
                }
                token.push(c);
            }
        }
        tokens.push(token);
    }
    Ok(tokens)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Basic {
    Source,
    Destination,
    In,
    Out,
    Protocol,
    Match,
    Jump,
    Goto,
}

fn basic_option(t: &str) -> Option<Basic> {
    Some(match t {
        "-s" | "--source" | "--src" => Basic::Source,
        "-d" | "--destination" | "--dst" => Basic::Destination,
        "-i" | "--in-interface" => Basic::In,
        "-o" | "--out-interface" => Basic::Out,
        "-p" | "--protocol" | "--proto" => Basic::Protocol,
        "-m" | "--match" => Basic::Match,
        "-j" | "--jump" => Basic::Jump,
        "-g" | "--goto" => Basic::Goto,
        _ => return None,
    })
}

/// Options of a module: `[!] --name values...`.
struct Opt<'a> {
    negated: bool,
    name: &'a str,
    values: Vec<&'a str>,
}

/// How many values an option of a typed module or target takes: getopt
/// gives it the next words whatever they look like (`--comment !` is the
/// comment "!").
fn option_arity(module: &str, option: &str) -> Option<usize> {
    let n = match (module, option) {
        ("tcp", "sport" | "source-port" | "dport" | "destination-port" | "tcp-option") => 1,
        ("tcp", "tcp-flags") => 2,
        ("tcp", "syn") => 0,
        ("udp", "sport" | "source-port" | "dport" | "destination-port") => 1,
        ("icmp", "icmp-type") | ("icmp6", "icmpv6-type") => 1,
        ("multiport", "sports" | "source-ports" | "dports" | "destination-ports" | "ports") => 1,
        (
            "conntrack",
            "ctstate" | "ctproto" | "ctorigsrc" | "ctorigdst" | "ctreplsrc" | "ctrepldst"
            | "ctorigsrcport" | "ctorigdstport" | "ctreplsrcport" | "ctrepldstport" | "ctstatus"
            | "ctexpire" | "ctdir",
        ) => 1,
        ("comment", "comment") => 1,
        ("REJECT", "reject-with")
        | ("SNAT", "to-source")
        | ("MASQUERADE", "to-ports")
        | ("LOG", "log-prefix" | "log-level") => 1,
        ("SNAT", "random" | "random-fully" | "persistent")
        | ("MASQUERADE", "random" | "random-fully") => 0,
        (
            "LOG",
            "log-tcp-sequence" | "log-tcp-options" | "log-ip-options" | "log-uid" | "log-macdecode",
        ) => 0,
        _ => return None,
    };
    Some(n)
}

fn split_options<'a>(module: &str, args: &'a [String]) -> Result<Vec<Opt<'a>>, String> {
    let mut opts: Vec<Opt<'a>> = Vec::new();
    let mut negated = false;
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        i += 1;
        if a == "!" {
            if negated {
                return Err("`! !`".into());
            }
            negated = true;
        } else if let Some(name) = a.strip_prefix("--") {
            let mut opt = Opt {
                negated,
                name,
                values: Vec::new(),
            };
            negated = false;
            if let Some(n) = option_arity(module, name) {
                if i + n > args.len() {
                    return Err(format!("--{name} needs {n} value(s)"));
                }
                opt.values.extend(args[i..i + n].iter().map(String::as_str));
                i += n;
            }
            opts.push(opt);
        } else if negated {
            return Err(format!("`!` before {a:?}, which is not an option"));
        } else if let Some(last) = opts.last_mut() {
            last.values.push(a);
        } else {
            return Err(format!("unexpected argument {a:?}"));
        }
    }
    if negated {
        return Err("dangling `!`".into());
    }
    Ok(opts)
}

fn one_value<'a>(opt: &Opt<'a>) -> Result<&'a str, String> {
    match opt.values.as_slice() {
        [v] => Ok(v),
        [] => Err(format!("--{} needs a value", opt.name)),
        _ => Err(format!(
            "--{} takes one value, got {}",
            opt.name,
            opt.values.join(" ")
        )),
    }
}

fn no_negation(opt: &Opt<'_>) -> Result<(), String> {
    if opt.negated {
        return Err(format!("--{} cannot be negated", opt.name));
    }
    Ok(())
}

fn set_once<T>(slot: &mut Option<T>, value: T, name: &str) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("--{name} given twice"));
    }
    *slot = Some(value);
    Ok(())
}

/// `Ok(Some)`: the typed form; `Ok(None)`: a module this crate keeps raw
/// (unknown, or known with options it does not model); `Err`: invalid.
fn typed_match(module: &str, args: &[String]) -> Result<Option<Match>, String> {
    let known_unmodelled: &[&str] = match module {
        "tcp" => &["tcp-flags", "syn", "tcp-option"],
        "udp" | "icmp" | "icmp6" | "comment" | "multiport" => &[],
        "conntrack" => &[
            "ctproto",
            "ctorigsrc",
            "ctorigdst",
            "ctreplsrc",
            "ctrepldst",
            "ctorigsrcport",
            "ctorigdstport",
            "ctreplsrcport",
            "ctrepldstport",
            "ctstatus",
            "ctexpire",
            "ctdir",
        ],
        _ => return Ok(None),
    };
    let opts = split_options(module, args).map_err(|e| format!("-m {module}: {e}"))?;
    if opts.iter().any(|o| known_unmodelled.contains(&o.name)) {
        return Ok(None);
    }
    let unknown = |o: &Opt<'_>| format!("-m {module} has no option --{}", o.name);
    match module {
        "tcp" | "udp" => {
            let mut pm = PortMatch::default();
            for o in &opts {
                let slot = match o.name {
                    "sport" | "source-port" => &mut pm.sport,
                    "dport" | "destination-port" => &mut pm.dport,
                    _ => return Err(unknown(o)),
                };
                let value = Negatable {
                    negated: o.negated,
                    value: PortRange::parse(one_value(o)?)?,
                };
                set_once(slot, value, o.name)?;
            }
            Ok(Some(if module == "tcp" {
                Match::Tcp(pm)
            } else {
                Match::Udp(pm)
            }))
        }
        "icmp" | "icmp6" => {
            let (option, fam) = if module == "icmp" {
                ("icmp-type", Family::V4)
            } else {
                ("icmpv6-type", Family::V6)
            };
            let mut found = None;
            for o in &opts {
                if o.name != option {
                    return Err(unknown(o));
                }
                set_once(
                    &mut found,
                    Negatable {
                        negated: o.negated,
                        value: IcmpType::parse(fam, one_value(o)?)?,
                    },
                    option,
                )?;
            }
            let t = found.ok_or_else(|| format!("-m {module} needs --{option}"))?;
            Ok(Some(if module == "icmp" {
                Match::Icmp(t)
            } else {
                Match::Icmp6(t)
            }))
        }
        "multiport" => {
            let mut found = None;
            for o in &opts {
                let direction = match o.name {
                    "sports" | "source-ports" => MultiportDirection::Source,
                    "dports" | "destination-ports" => MultiportDirection::Destination,
                    "ports" => MultiportDirection::Either,
                    _ => return Err(unknown(o)),
                };
                let ports = one_value(o)?
                    .split(',')
                    .map(PortRange::parse)
                    .collect::<Result<Vec<_>, _>>()?;
                set_once(
                    &mut found,
                    Match::Multiport {
                        negated: o.negated,
                        direction,
                        ports,
                    },
                    "ports",
                )?;
            }
            found
                .map(Some)
                .ok_or_else(|| "-m multiport needs --sports, --dports or --ports".into())
        }
        "conntrack" => {
            let mut found = None;
            for o in &opts {
                if o.name != "ctstate" {
                    return Err(unknown(o));
                }
                let mut states = BTreeSet::new();
                for s in one_value(o)?.split(',') {
                    let state = CtState::ALL
                        .into_iter()
                        .find(|c| c.as_str() == s)
                        .ok_or_else(|| format!("unknown ctstate {s:?}"))?;
                    states.insert(state);
                }
                set_once(
                    &mut found,
                    Negatable {
                        negated: o.negated,
                        value: states,
                    },
                    "ctstate",
                )?;
            }
            found
                .map(|s| Some(Match::Conntrack(s)))
                .ok_or_else(|| "-m conntrack needs --ctstate".into())
        }
        "comment" => {
            let mut found = None;
            for o in &opts {
                if o.name != "comment" {
                    return Err(unknown(o));
                }
                no_negation(o)?;
                let text = one_value(o)?;
                check_text("comment", text, 255)?;
                set_once(&mut found, text.to_string(), "comment")?;
            }
            found
                .map(|c| Some(Match::Comment(c)))
                .ok_or_else(|| "-m comment needs --comment".into())
        }
        _ => Ok(None),
    }
}

/// Like [`typed_match`] for targets other than jumps.
fn typed_target(family: Family, name: &str, args: &[String]) -> Result<Option<Target>, String> {
    let known_unmodelled: &[&str] = match name {
        "ACCEPT" | "DROP" | "RETURN" | "REJECT" => &[],
        "SNAT" => &["random", "random-fully", "persistent"],
        "MASQUERADE" => &["to-ports", "random", "random-fully"],
        "LOG" => &[
            "log-tcp-sequence",
            "log-tcp-options",
            "log-ip-options",
            "log-uid",
            "log-macdecode",
        ],
        _ => return Ok(None),
    };
    let opts = split_options(name, args).map_err(|e| format!("-j {name}: {e}"))?;
    if opts.iter().any(|o| known_unmodelled.contains(&o.name)) {
        return Ok(None);
    }
    let unknown = |o: &Opt<'_>| format!("-j {name} has no option --{}", o.name);
    for o in &opts {
        no_negation(o)?;
    }
    match name {
        "ACCEPT" | "DROP" | "RETURN" => match opts.first() {
            Some(o) => Err(unknown(o)),
            None => Ok(Some(match name {
                "ACCEPT" => Target::Accept,
                "DROP" => Target::Drop,
                _ => Target::Return,
            })),
        },
        "REJECT" => {
            let mut with = None;
            for o in &opts {
                if o.name != "reject-with" {
                    return Err(unknown(o));
                }
                set_once(
                    &mut with,
                    RejectWith::parse(family, one_value(o)?)?,
                    "reject-with",
                )?;
            }
            Ok(Some(Target::Reject(
                with.unwrap_or(RejectWith::default_for(family)),
            )))
        }
        "SNAT" => {
            let mut to = None;
            for o in &opts {
                if o.name != "to-source" && o.name != "to" {
                    return Err(unknown(o));
                }
                let v = one_value(o)?;
                if v.contains('[') || (family == Family::V4 && v.contains(':')) {
                    return Ok(None); // ports: not modelled
                }
                let (first, last) = match v.split_once('-') {
                    Some((a, b)) => (a, Some(b)),
                    None => (v, None),
                };
                let parse_addr = |s: &str| -> Result<IpAddr, String> {
                    s.parse::<IpAddr>()
                        .ok()
                        .filter(|a| family.matches(a))
                        .ok_or_else(|| {
                            format!("--to-source {v:?} is not an address of {}", family.tool())
                        })
                };
                let first = parse_addr(first)?;
                let last = last.map(parse_addr).transpose()?;
                if last.is_some_and(|l| l < first) {
                    return Err(format!("--to-source range {v:?} ends below its start"));
                }
                set_once(&mut to, (first, last), "to-source")?;
            }
            let (to, to_last) = to.ok_or("-j SNAT needs --to-source")?;
            Ok(Some(Target::Snat { to, to_last }))
        }
        "MASQUERADE" => match opts.first() {
            Some(o) => Err(unknown(o)),
            None => Ok(Some(Target::Masquerade)),
        },
        "LOG" => {
            let (mut prefix, mut level) = (None, None);
            for o in &opts {
                let v = one_value(o)?;
                match o.name {
                    "log-prefix" => {
                        check_text("log prefix", v, 29)?;
                        set_once(&mut prefix, v.to_string(), "log-prefix")?;
                    }
                    "log-level" => {
                        let l = match v {
                            "emerg" => 0,
                            "alert" => 1,
                            "crit" => 2,
                            "error" | "err" => 3,
                            "warning" | "warn" => 4,
                            "notice" => 5,
                            "info" => 6,
                            "debug" => 7,
                            _ => parse_decimal::<u8>(v)
                                .filter(|l| *l <= 7)
                                .ok_or_else(|| format!("invalid log level {v:?}"))?,
                        };
                        set_once(&mut level, l, "log-level")?;
                    }
                    _ => return Err(unknown(o)),
                }
            }
            Ok(Some(Target::Log {
                prefix,
                level: level.unwrap_or(4),
            }))
        }
        _ => Ok(None),
    }
}

struct OpenTable {
    line: usize,
    table: Table,
}

struct Parser {
    family: Family,
    ruleset: Ruleset,
    open: Option<OpenTable>,
    seen_table: bool,
}

impl Parser {
    fn new(family: Family) -> Parser {
        Parser {
            family,
            ruleset: Ruleset::new(family),
            open: None,
            seen_table: false,
        }
    }

    fn run(mut self, text: &str) -> Result<Ruleset, ParseError> {
        for (index, raw) in text.split('\n').enumerate() {
            let n = index + 1;
            let line = raw.trim_end_matches([' ', '\t']);
            if let Some(c) = line.chars().find(|c| c.is_control() && *c != '\t') {
                return Err(ParseError::new(
                    n,
                    format!("control character {c:?} in line"),
                ));
            }
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                if !self.seen_table {
                    let text = comment.strip_prefix(' ').unwrap_or(comment).trim();
                    self.ruleset.header.push(text.to_string());
                }
                continue;
            }
            if line.starts_with([' ', '\t']) {
                return Err(ParseError::new(n, "line starts with whitespace"));
            }
            self.line(n, line)
                .map_err(|message| ParseError::new(n, message))?;
        }
        if let Some(open) = &self.open {
            return Err(ParseError::new(
                open.line,
                format!("table {} is not closed by COMMIT", open.table.name),
            ));
        }
        Ok(self.ruleset)
    }

    fn line(&mut self, n: usize, line: &str) -> Result<(), String> {
        if let Some(name) = line.strip_prefix('*') {
            if let Some(open) = &self.open {
                return Err(format!(
                    "*{name} starts before table {} (line {}) is closed by COMMIT",
                    open.table.name, open.line
                ));
            }
            let name =
                TableName::from_name(name).ok_or_else(|| format!("unknown table {name:?}"))?;
            if self.ruleset.table(name).is_some() {
                return Err(format!("table {name} appears twice"));
            }
            self.seen_table = true;
            self.open = Some(OpenTable {
                line: n,
                table: Table {
                    name,
                    chains: Vec::new(),
                },
            });
            return Ok(());
        }
        if line == "COMMIT" {
            let open = self.open.take().ok_or("COMMIT outside a table")?;
            check_loops(&open.table)?;
            self.ruleset.tables.push(open.table);
            return Ok(());
        }
        let family = self.family;
        let open = self
            .open
            .as_mut()
            .ok_or("a line outside a table (a `*table` line must come first)")?;
        let table = &mut open.table;
        if let Some(decl) = line.strip_prefix(':') {
            return declare_chain(table, decl);
        }
        let tokens = tokenize(line)?;
        match tokens.first().map(String::as_str) {
            Some("-A" | "--append") => {
                let chain_name = tokens.get(1).ok_or("-A needs a chain")?;
                let rule = parse_rule(family, table, &tokens[2..])?;
                let chain = ensure_chain(table, chain_name)?;
                chain.rules.push(rule);
                let chain = table.chain(chain_name).ok_or("chain vanished")?;
                let rule = chain.rules.last().ok_or("rule vanished")?;
                validate_rule(family, table, chain, rule)
            }
            Some("-P" | "--policy") => {
                let [_, chain, policy] = tokens.as_slice() else {
                    return Err("-P needs a chain and a policy".into());
                };
                if !table.name.is_builtin(chain) {
                    return Err(format!(
                        "-P: {chain} is not a built-in chain of table {}",
                        table.name
                    ));
                }
                let policy = parse_policy(policy)?;
                ensure_chain(table, chain)?.policy = Some(policy);
                Ok(())
            }
            Some(
                cmd @ ("-I" | "-D" | "-R" | "-N" | "-X" | "-F" | "-Z" | "-E" | "--insert"
                | "--delete" | "--new-chain"),
            ) => Err(format!(
                "command {cmd} is not supported in a generated file (use :CHAIN lines and -A)"
            )),
            Some(other) => Err(format!(
                "unexpected {other:?} (expected -A, -P, :CHAIN, COMMIT or *table)"
            )),
            None => Ok(()),
        }
    }
}

fn parse_policy(text: &str) -> Result<Policy, String> {
    match text {
        "ACCEPT" => Ok(Policy::Accept),
        "DROP" => Ok(Policy::Drop),
        _ => Err(format!("invalid policy {text:?} (ACCEPT or DROP)")),
    }
}

/// `:NAME POLICY [p:b]` with the counters optional.
fn declare_chain(table: &mut Table, decl: &str) -> Result<(), String> {
    let mut words = decl.split([' ', '\t']).filter(|w| !w.is_empty());
    let name = words.next().ok_or("chain declaration without a name")?;
    let policy = words
        .next()
        .ok_or_else(|| format!("chain {name} has no policy (use `-` for a user chain)"))?;
    let counters = match words.next() {
        Some(c) => {
            let inner = c
                .strip_prefix('[')
                .and_then(|c| c.strip_suffix(']'))
                .ok_or_else(|| format!("invalid counters {c:?}"))?;
            let (p, b) = inner
                .split_once(':')
                .ok_or_else(|| format!("invalid counters {c:?}"))?;
            Counters {
                packets: parse_decimal(p).ok_or_else(|| format!("invalid counters {c:?}"))?,
                bytes: parse_decimal(b).ok_or_else(|| format!("invalid counters {c:?}"))?,
            }
        }
        None => Counters::default(),
    };
    if let Some(extra) = words.next() {
        return Err(format!("unexpected {extra:?} after the chain declaration"));
    }
    let builtin = table.name.is_builtin(name);
    let policy = match (policy, builtin) {
        ("-", false) => None,
        ("-", true) => return Err(format!("built-in chain {name} needs a policy, not `-`")),
        (p, true) => Some(parse_policy(p)?),
        (_, false) => {
            return Err(format!(
                "{name} is not a built-in chain of table {}: a user chain's policy is `-`",
                table.name
            ));
        }
    };
    let name = ChainName::new(name).map_err(|e| e.message)?;
    if !builtin && name.is_builtin_name() {
        return Err(format!("{name} is not a chain of table {}", table.name));
    }
    if table.chain(name.as_str()).is_some() {
        return Err(format!("chain {name} declared twice"));
    }
    table.chains.push(Chain {
        name,
        policy,
        counters,
        rules: Vec::new(),
    });
    Ok(())
}

/// The chain for `-A`/`-P`: declared, or a built-in declared implicitly
/// (policy ACCEPT, as both backends create it).
fn ensure_chain<'a>(table: &'a mut Table, name: &str) -> Result<&'a mut Chain, String> {
    if table.chain(name).is_none() {
        if !table.name.is_builtin(name) {
            return Err(format!(
                "chain {name} is not declared in table {}",
                table.name
            ));
        }
        table.chains.push(Chain {
            name: ChainName(name.to_string()),
            policy: Some(Policy::Accept),
            counters: Counters::default(),
            rules: Vec::new(),
        });
    }
    table
        .chain_mut(name)
        .ok_or_else(|| format!("chain {name} missing"))
}

enum Context {
    None,
    Module(usize),
    Target,
    Done,
}

/// The module an option implies after `-p PROTO` without `-m`
/// (`-p tcp --dport 22`).
fn implicit_module(protocol: Option<Protocol>, option: &str) -> Option<&'static str> {
    match (protocol?, option) {
        (
            Protocol::TCP,
            "--sport" | "--dport" | "--source-port" | "--destination-port" | "--tcp-flags"
            | "--syn" | "--tcp-option",
        ) => Some("tcp"),
        (Protocol::UDP, "--sport" | "--dport" | "--source-port" | "--destination-port") => {
            Some("udp")
        }
        (Protocol::ICMP, "--icmp-type") => Some("icmp"),
        (Protocol::IPV6_ICMP, "--icmpv6-type") => Some("icmp6"),
        _ => None,
    }
}

fn parse_rule(family: Family, table: &Table, tokens: &[String]) -> Result<Rule, String> {
    let mut rule = Rule::default();
    let mut modules: Vec<(String, Vec<String>)> = Vec::new();
    let mut target: Option<(String, Vec<String>, bool)> = None; // (name, args, goto)
    let mut context = Context::None;
    let mut negated = false;
    let mut i = 0;
    while i < tokens.len() {
        let t = tokens[i].as_str();
        if t == "!" {
            let next = tokens.get(i + 1).map(String::as_str);
            let next_basic = next.and_then(basic_option);
            if matches!(
                next_basic,
                Some(Basic::Source | Basic::Destination | Basic::In | Basic::Out | Basic::Protocol)
            ) {
                if negated {
                    return Err("`! !`".into());
                }
                negated = true;
                i += 1;
                continue;
            }
            match context {
                Context::Module(m) => modules[m].1.push(t.to_string()),
                Context::Target => {
                    if let Some(tg) = target.as_mut() {
                        tg.1.push(t.to_string());
                    }
                }
                Context::None => {
                    match next.and_then(|o| implicit_module(rule.positive_protocol(), o)) {
                        Some(module) => {
                            modules.push((module.to_string(), vec![t.to_string()]));
                            context = Context::Module(modules.len() - 1);
                        }
                        None => {
                            return Err(format!(
                                "`!` before {:?}, which cannot be negated here",
                                next.unwrap_or("the end of the line")
                            ));
                        }
                    }
                }
                Context::Done => return Err("`!` after -g".into()),
            }
            i += 1;
            continue;
        }
        if let Some(basic) = basic_option(t) {
            let value = tokens
                .get(i + 1)
                .ok_or_else(|| format!("{t} needs a value"))?;
            if negated && matches!(basic, Basic::Match | Basic::Jump | Basic::Goto) {
                return Err(format!("{t} cannot be negated"));
            }
            let was_negated = std::mem::take(&mut negated);
            let twice = || format!("{t} given twice");
            match basic {
                Basic::Source | Basic::Destination => {
                    let net = parse_net(family, value)?;
                    let slot = if basic == Basic::Source {
                        &mut rule.source
                    } else {
                        &mut rule.destination
                    };
                    if slot.is_some() {
                        return Err(twice());
                    }
                    *slot = Some(Negatable {
                        negated: was_negated,
                        value: net,
                    });
                }
                Basic::In | Basic::Out => {
                    let iface = Interface::new(value.as_str()).map_err(|e| e.message)?;
                    let slot = if basic == Basic::In {
                        &mut rule.in_interface
                    } else {
                        &mut rule.out_interface
                    };
                    if slot.is_some() {
                        return Err(twice());
                    }
                    *slot = Some(Negatable {
                        negated: was_negated,
                        value: iface,
                    });
                }
                Basic::Protocol => {
                    if rule.protocol.is_some() {
                        return Err(twice());
                    }
                    match Protocol::parse(value)? {
                        Some(p) => {
                            rule.protocol = Some(Negatable {
                                negated: was_negated,
                                value: p,
                            })
                        }
                        None if was_negated => return Err("`! -p all` matches nothing".into()),
                        None => {}
                    }
                }
                Basic::Match => {
                    check_module_name(value)?;
                    modules.push((value.clone(), Vec::new()));
                    i += 2;
                    context = Context::Module(modules.len() - 1);
                    continue;
                }
                Basic::Jump | Basic::Goto => {
                    if target.is_some() {
                        return Err("a rule has one -j or -g".into());
                    }
                    let goto = basic == Basic::Goto;
                    target = Some((value.clone(), Vec::new(), goto));
                    i += 2;
                    context = if goto { Context::Done } else { Context::Target };
                    continue;
                }
            }
            i += 2;
            if !matches!(context, Context::Done) {
                context = Context::None;
            }
            continue;
        }
        if negated {
            return Err(format!("`!` before {t:?}"));
        }
        if is_reserved_token(t) {
            return Err(format!("option {t} is not supported"));
        }
        // An option of a typed module or target takes its values verbatim.
        let owner = match context {
            Context::Module(m) => Some(modules[m].0.as_str()),
            Context::Target => target.as_ref().map(|t| t.0.as_str()),
            _ => None,
        };
        if let Some(n) = owner
            .zip(t.strip_prefix("--"))
            .and_then(|(owner, name)| option_arity(owner, name))
        {
            let end = (i + 1 + n).min(tokens.len());
            let words = tokens[i..end].iter().cloned();
            match context {
                Context::Module(m) => modules[m].1.extend(words),
                _ => {
                    if let Some(tg) = target.as_mut() {
                        tg.1.extend(words);
                    }
                }
            }
            i = end;
            continue;
        }
        match context {
            Context::Module(m) => modules[m].1.push(t.to_string()),
            Context::Target => {
                if let Some(tg) = target.as_mut() {
                    tg.1.push(t.to_string());
                }
            }
            Context::None => match implicit_module(rule.positive_protocol(), t) {
                Some(module) => {
                    let n = t
                        .strip_prefix("--")
                        .and_then(|name| option_arity(module, name))
                        .unwrap_or(0);
                    let end = (i + 1 + n).min(tokens.len());
                    modules.push((module.to_string(), tokens[i..end].to_vec()));
                    context = Context::Module(modules.len() - 1);
                    i = end;
                    continue;
                }
                None if t.starts_with('-') => return Err(format!("unknown option {t:?}")),
                None => return Err(format!("unexpected argument {t:?}")),
            },
            Context::Done => return Err(format!("unexpected {t:?} after -g")),
        }
        i += 1;
    }
    if negated {
        return Err("dangling `!` at the end of the rule".into());
    }
    for (module, args) in modules {
        rule.matches.push(match typed_match(&module, &args)? {
            Some(m) => m,
            None => Match::Raw { module, args },
        });
    }
    rule.target = match target {
        None => None,
        Some((name, args, true)) => {
            if !args.is_empty() {
                return Err("-g takes no options".into());
            }
            Some(Target::Goto(
                ChainName::new(name.as_str()).map_err(|e| e.message)?,
            ))
        }
        Some((name, args, false)) => Some(
            if table.chain(&name).is_some() && !table.name.is_builtin(&name) {
                if !args.is_empty() {
                    return Err(format!("a jump to chain {name} takes no options"));
                }
                Target::Jump(ChainName::new(name.as_str()).map_err(|e| e.message)?)
            } else {
                match typed_target(family, &name, &args)? {
                    Some(t) => t,
                    None => {
                        check_target_name(&name)?;
                        Target::Raw { name, args }
                    }
                }
            },
        ),
    };
    Ok(rule)
}

/// `-s`/`-d`: an address or prefix of the family; host bits are cleared as
/// the kernel does (`1.2.3.4/16` is `1.2.0.0/16`).
fn parse_net(family: Family, text: &str) -> Result<IpNet, String> {
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => IpNet::from(text.parse::<IpAddr>().map_err(|_| {
            format!("{text:?} is not an address or prefix (host names are not resolved)")
        })?),
    };
    if !family.matches(&net.addr()) {
        return Err(format!("{text} is not an address of {}", family.tool()));
    }
    Ok(net.trunc())
}

#[cfg(test)]
pub(crate) mod strategies {
    //! Proptest strategies for valid rulesets, and a text mutator shared by
    //! the crate's never-panics tests.

    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub fn family() -> impl Strategy<Value = Family> {
        prop_oneof![Just(Family::V4), Just(Family::V6)]
    }

    pub fn net(family: Family) -> BoxedStrategy<IpNet> {
        match family {
            Family::V4 => (any::<u32>(), 0u8..=32)
                .prop_map(|(a, p)| {
                    IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), p)
                        .expect("prefix length")
                        .trunc()
                })
                .boxed(),
            Family::V6 => (any::<u128>(), 0u8..=128)
                .prop_map(|(a, p)| {
                    IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), p)
                        .expect("prefix length")
                        .trunc()
                })
                .boxed(),
        }
    }

    pub fn addr(family: Family) -> BoxedStrategy<IpAddr> {
        match family {
            Family::V4 => any::<u32>()
                .prop_map(|a| IpAddr::V4(Ipv4Addr::from(a)))
                .boxed(),
            Family::V6 => any::<u128>()
                .prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                .boxed(),
        }
    }

    /// Printable text including quotes, backslashes and spaces.
    pub fn text(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[ -~äé]{{0,{max}}}")).expect("regex")
    }

    pub fn interface() -> impl Strategy<Value = Interface> {
        "[a-z][a-z0-9_.-]{0,9}\\+?".prop_map(|s| Interface::new(s).expect("valid interface"))
    }

    fn port_range() -> impl Strategy<Value = PortRange> {
        prop_oneof![
            any::<u16>().prop_map(PortRange::single),
            (any::<u16>(), any::<u16>()).prop_map(|(a, b)| PortRange {
                first: a.min(b),
                last: a.max(b)
            })
        ]
    }

    fn neg<T: std::fmt::Debug + Clone>(
        s: impl Strategy<Value = T>,
    ) -> impl Strategy<Value = Negatable<T>> {
        (any::<bool>(), s).prop_map(|(negated, value)| Negatable { negated, value })
    }

    fn port_match() -> impl Strategy<Value = PortMatch> {
        (
            proptest::option::of(neg(port_range())),
            proptest::option::of(neg(port_range())),
        )
            .prop_map(|(sport, dport)| PortMatch { sport, dport })
    }

    fn icmp_type(family: Family) -> impl Strategy<Value = IcmpType> {
        (any::<u8>(), proptest::option::of(any::<u8>())).prop_map(move |(kind, code)| {
            if family == Family::V4 && kind == 255 {
                IcmpType::ANY
            } else {
                IcmpType { kind, code }
            }
        })
    }

    fn raw_arg() -> impl Strategy<Value = String> {
        prop_oneof![
            "--[a-z][a-z-]{0,8}",
            "[A-Za-z0-9,:/._]{1,8}",
            Just("!".to_string()),
            text(6)
        ]
        .prop_filter("not reserved", |s| !is_reserved_token(s))
    }

    fn raw_args() -> impl Strategy<Value = Vec<String>> {
        vec(raw_arg(), 0..5).prop_map(|mut a| {
            while a.last().is_some_and(|x| x == "!") {
                a.pop();
            }
            a
        })
    }

    /// A match consistent with the protocol.
    fn a_match(family: Family, proto: Option<Protocol>) -> BoxedStrategy<Match> {
        let mut options: Vec<BoxedStrategy<Match>> = vec![
            neg(proptest::collection::btree_set(
                proptest::sample::select(CtState::ALL.to_vec()),
                1..4,
            ))
            .prop_map(Match::Conntrack)
            .boxed(),
            text(40).prop_map(Match::Comment).boxed(),
            ("(mark|limit|state|physdev|addrtype|set|u32)", raw_args())
                .prop_map(|(module, args)| Match::Raw { module, args })
                .boxed(),
        ];
        match proto {
            Some(Protocol::TCP) => {
                options.push(port_match().prop_map(Match::Tcp).boxed());
                options.push(
                    Just(Match::Raw {
                        module: "tcp".into(),
                        args: vec!["--syn".into()],
                    })
                    .boxed(),
                );
            }
            Some(Protocol::UDP) => options.push(port_match().prop_map(Match::Udp).boxed()),
            Some(Protocol::ICMP) => {
                options.push(neg(icmp_type(family)).prop_map(Match::Icmp).boxed())
            }
            Some(Protocol::IPV6_ICMP) => {
                options.push(neg(icmp_type(family)).prop_map(Match::Icmp6).boxed())
            }
            _ => {}
        }
        if matches!(proto, Some(Protocol::TCP | Protocol::UDP)) {
            options.push(
                (
                    any::<bool>(),
                    prop_oneof![
                        Just(MultiportDirection::Source),
                        Just(MultiportDirection::Destination),
                        Just(MultiportDirection::Either)
                    ],
                    vec(port_range(), 1..7),
                )
                    .prop_map(|(negated, direction, ports)| Match::Multiport {
                        negated,
                        direction,
                        ports,
                    })
                    .boxed(),
            );
        }
        proptest::strategy::Union::new(options).boxed()
    }

    #[derive(Debug, Clone)]
    pub struct ChainCtx {
        pub family: Family,
        pub table: TableName,
        pub chain: String,
        /// User chains this chain may jump to (later ones: no loops).
        pub jumpable: Vec<ChainName>,
    }

    fn target(ctx: &ChainCtx, proto: Option<Protocol>) -> BoxedStrategy<Option<Target>> {
        let family = ctx.family;
        let builtin = ctx.table.is_builtin(&ctx.chain);
        let mut options: Vec<BoxedStrategy<Option<Target>>> = vec![
            Just(None).boxed(),
            Just(Some(Target::Accept)).boxed(),
            Just(Some(Target::Drop)).boxed(),
            Just(Some(Target::Return)).boxed(),
            (
                proptest::option::of(proptest::string::string_regex("[ -~]{0,29}").expect("regex")),
                0u8..=7,
            )
                .prop_map(|(prefix, level)| Some(Target::Log { prefix, level }))
                .boxed(),
            ("[A-Z][A-Z0-9_]{2,10}", raw_args())
                .prop_filter("not typed", |(n, _)| {
                    !TARGET_NAMES.contains(&n.as_str())
                        && !BUILTIN_CHAIN_NAMES.contains(&n.as_str())
                })
                .prop_map(|(name, args)| Some(Target::Raw { name, args }))
                .boxed(),
        ];
        if !builtin || matches!(ctx.chain.as_str(), "INPUT" | "FORWARD" | "OUTPUT") {
            let mut withs: Vec<RejectWith> = REJECT_NAMES
                .iter()
                .filter(|(_, _, _, f)| *f == Some(family))
                .map(|(_, _, w, _)| *w)
                .collect();
            if proto == Some(Protocol::TCP) {
                withs.push(RejectWith::TcpReset);
            }
            options.push(
                proptest::sample::select(withs)
                    .prop_map(|w| Some(Target::Reject(w)))
                    .boxed(),
            );
        }
        if ctx.table == TableName::Nat {
            if !builtin || matches!(ctx.chain.as_str(), "POSTROUTING" | "INPUT") {
                options.push(
                    (addr(family), proptest::option::of(addr(family)))
                        .prop_map(|(a, b)| {
                            let (to, to_last) = match b {
                                Some(b) => (a.min(b), Some(a.max(b))),
                                None => (a, None),
                            };
                            Some(Target::Snat { to, to_last })
                        })
                        .boxed(),
                );
            }
            if !builtin || ctx.chain == "POSTROUTING" {
                options.push(Just(Some(Target::Masquerade)).boxed());
            }
        }
        if !ctx.jumpable.is_empty() {
            let jumpable = ctx.jumpable.clone();
            options.push(
                (proptest::sample::select(jumpable), any::<bool>())
                    .prop_map(|(c, goto)| {
                        Some(if goto {
                            Target::Goto(c)
                        } else {
                            Target::Jump(c)
                        })
                    })
                    .boxed(),
            );
        }
        proptest::strategy::Union::new(options).boxed()
    }

    pub fn rule(ctx: ChainCtx) -> BoxedStrategy<Rule> {
        let family = ctx.family;
        let icmp = if family == Family::V4 {
            Protocol::ICMP
        } else {
            Protocol::IPV6_ICMP
        };
        let proto = proptest::option::of(neg(prop_oneof![
            Just(Protocol::TCP),
            Just(Protocol::UDP),
            Just(icmp),
            Just(Protocol::ESP),
            (2u8..=255)
                .prop_filter("family icmp", move |p| *p != 1 && *p != 58)
                .prop_map(Protocol),
        ]));
        let allow_in = !matches!(ctx.chain.as_str(), "OUTPUT" | "POSTROUTING");
        let allow_out = !matches!(ctx.chain.as_str(), "INPUT" | "PREROUTING");
        (
            proptest::option::of(neg(net(family))),
            proptest::option::of(neg(net(family))),
            proptest::option::of(neg(interface())),
            proptest::option::of(neg(interface())),
            proto,
        )
            .prop_flat_map(move |(source, destination, i, o, protocol)| {
                let positive = protocol.as_ref().filter(|p| !p.negated).map(|p| p.value);
                let base = Rule {
                    source,
                    destination,
                    in_interface: i.filter(|_| allow_in),
                    out_interface: o.filter(|_| allow_out),
                    protocol,
                    matches: Vec::new(),
                    target: None,
                };
                (
                    Just(base),
                    vec(a_match(family, positive), 0..3),
                    target(&ctx, positive),
                )
            })
            .prop_map(|(mut rule, matches, target)| {
                rule.matches = matches;
                rule.target = target;
                rule
            })
            .boxed()
    }

    fn table(family: Family, name: TableName) -> BoxedStrategy<Table> {
        let user_names = proptest::collection::btree_set("[a-z][a-z0-9_-]{0,10}", 0..3);
        let policies = vec(
            prop_oneof![Just(Policy::Accept), Just(Policy::Drop)],
            name.builtin_chains().len(),
        );
        let counters = vec(
            (any::<u64>(), any::<u64>()),
            name.builtin_chains().len() + 3,
        );
        (user_names, policies, counters)
            .prop_flat_map(move |(users, policies, counters)| {
                let users: Vec<ChainName> = users
                    .into_iter()
                    .filter_map(|u| ChainName::new(u).ok())
                    .collect();
                let mut chains: Vec<(Chain, Vec<ChainName>)> = Vec::new();
                for (i, b) in name.builtin_chains().iter().enumerate() {
                    let (packets, bytes) = counters[i];
                    chains.push((
                        Chain {
                            name: ChainName(b.to_string()),
                            policy: Some(policies[i]),
                            counters: Counters { packets, bytes },
                            rules: vec![],
                        },
                        users.clone(),
                    ));
                }
                for (i, u) in users.iter().enumerate() {
                    let (packets, bytes) = counters[name.builtin_chains().len() + i];
                    chains.push((
                        Chain {
                            name: u.clone(),
                            policy: None,
                            counters: Counters { packets, bytes },
                            rules: vec![],
                        },
                        users[i + 1..].to_vec(),
                    ));
                }
                let per_chain: Vec<BoxedStrategy<Chain>> = chains
                    .into_iter()
                    .map(|(chain, jumpable)| {
                        let ctx = ChainCtx {
                            family,
                            table: name,
                            chain: chain.name.as_str().to_string(),
                            jumpable,
                        };
                        vec(rule(ctx), 0..4)
                            .prop_map(move |rules| Chain {
                                rules,
                                ..chain.clone()
                            })
                            .boxed()
                    })
                    .collect();
                per_chain.prop_map(move |chains| Table { name, chains })
            })
            .boxed()
    }

    pub fn ruleset() -> impl Strategy<Value = Ruleset> {
        family().prop_flat_map(|family| {
            let tables = proptest::sample::subsequence(TableName::ALL.to_vec(), 0..=5)
                .prop_shuffle()
                .prop_flat_map(move |names| {
                    names
                        .into_iter()
                        .map(|n| table(family, n))
                        .collect::<Vec<_>>()
                });
            let header = vec("[!-~][ -~]{0,30}[!-~]", 0..3);
            (header, tables).prop_map(move |(header, tables)| Ruleset {
                family,
                header,
                tables,
            })
        })
    }

    /// Random edits of a valid text: delete, duplicate or insert characters
    /// and lines.
    pub fn mutated(text: String) -> impl Strategy<Value = String> {
        let len = text.chars().count().max(1);
        vec(
            (0usize..len, 0u8..6, proptest::char::any(), 0usize..20),
            1..6,
        )
        .prop_map(move |edits| {
            let mut chars: Vec<char> = text.chars().collect();
            for (at, op, c, n) in edits {
                let at = if chars.is_empty() {
                    0
                } else {
                    at % chars.len()
                };
                match op {
                    0 => {
                        let end = (at + n).min(chars.len());
                        chars.drain(at..end);
                    }
                    1 => chars.insert(at, c),
                    2 => {
                        if at < chars.len() {
                            chars[at] = c;
                        }
                    }
                    3 => {
                        let end = (at + n).min(chars.len());
                        let copy: Vec<char> = chars[at..end].to_vec();
                        chars.splice(at..at, copy);
                    }
                    4 => chars.insert(at, '\n'),
                    _ => {
                        for q in ['"', '{', '(', ';', '\\', '!'].into_iter().take(n % 6 + 1) {
                            chars.insert(at.min(chars.len()), q);
                        }
                    }
                }
            }
            chars.into_iter().collect()
        })
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

    fn tcp_new(port: u16) -> Vec<Match> {
        vec![
            Match::Tcp(PortMatch::dport(port)),
            Match::ctstate(&[CtState::New, CtState::Untracked]),
        ]
    }

    /// Node A's firewall from reference 001, for one family.
    pub(crate) fn node_a(family: Family) -> Ruleset {
        let (range, public, controller, icmp, reject) = match family {
            Family::V4 => (
                "10.1.0.0/25",
                "145.0.6.72",
                "145.0.6.71/32",
                Protocol::ICMP,
                RejectWith::IcmpHostProhibited,
            ),
            Family::V6 => (
                "fd00:1:1:1::/64",
                "2001:610:188:418:145:0:6:72",
                "2001:610:188:418:145:0:6:71/128",
                Protocol::IPV6_ICMP,
                RejectWith::Icmp6AdmProhibited,
            ),
        };
        let mut nat = Table::with_builtins(TableName::Nat);
        nat.chain_mut("POSTROUTING").unwrap().rules.push(Rule {
            source: Some(Negatable::is(net(range))),
            ..Rule::target(Target::Snat {
                to: public.parse().unwrap(),
                to_last: None,
            })
        });
        let mut filter = Table::with_builtins(TableName::Filter);
        let tcp = Some(Negatable::is(Protocol::TCP));
        let input = vec![
            Rule {
                matches: vec![Match::ctstate(&[CtState::Related, CtState::Established])],
                ..Rule::target(Target::Accept)
            },
            Rule {
                in_interface: Some(Negatable::is(Interface::new("lo").unwrap())),
                ..Rule::target(Target::Accept)
            },
            Rule {
                protocol: Some(Negatable::is(icmp)),
                ..Rule::target(Target::Accept)
            },
            Rule {
                protocol: tcp.clone(),
                matches: tcp_new(22),
                ..Rule::target(Target::Accept)
            },
            Rule {
                source: Some(Negatable::is(net(controller))),
                protocol: tcp.clone(),
                matches: tcp_new(41194),
                ..Rule::target(Target::Accept)
            },
            Rule {
                protocol: Some(Negatable::is(Protocol::UDP)),
                matches: vec![
                    Match::Udp(PortMatch::dport(1194)),
                    Match::ctstate(&[CtState::New, CtState::Untracked]),
                ],
                ..Rule::target(Target::Accept)
            },
            Rule {
                protocol: tcp.clone(),
                matches: tcp_new(1194),
                ..Rule::target(Target::Accept)
            },
            Rule {
                matches: vec![Match::ctstate(&[CtState::Invalid])],
                ..Rule::target(Target::Drop)
            },
            Rule::target(Target::Reject(reject)),
        ];
        let iface = |s: &str| Some(Negatable::is(Interface::new(s).unwrap()));
        let forward = vec![
            Rule {
                in_interface: iface("tun+"),
                out_interface: iface("ens160"),
                ..Rule::target(Target::Accept)
            },
            Rule {
                in_interface: iface("ens160"),
                out_interface: iface("tun+"),
                ..Rule::target(Target::Accept)
            },
            Rule::target(Target::Reject(reject)),
        ];
        filter.chain_mut("INPUT").unwrap().rules = input;
        filter.chain_mut("FORWARD").unwrap().rules = forward;
        Ruleset {
            family,
            header: vec!["Generated by vpnsim for node-a (scenario eduvpn-multinode)".into()],
            tables: vec![nat, filter],
        }
    }

    #[test]
    fn node_a_v4_snapshot() {
        let rs = node_a(Family::V4);
        rs.validate().unwrap();
        let text = rs.emit();
        insta::assert_snapshot!("node_a_iptables", text);
        assert_eq!(Ruleset::parse(Family::V4, &text).unwrap(), rs);
    }

    #[test]
    fn node_a_v6_snapshot() {
        let rs = node_a(Family::V6);
        rs.validate().unwrap();
        let text = rs.emit();
        insta::assert_snapshot!("node_a_ip6tables", text);
        let file = Ip6tables::parse(&text).unwrap();
        assert_eq!(file.ruleset(), &rs);
        assert!(Iptables::new(rs.clone()).is_err());
        assert!(Ip6tables::new(rs).is_ok());
    }

    const REFERENCE_V4: &str = "*nat\n-P PREROUTING ACCEPT\n-P INPUT ACCEPT\n-P OUTPUT ACCEPT\n-P POSTROUTING ACCEPT\n\
        -A POSTROUTING -s 10.1.0.0/25 -j SNAT --to-source 145.0.6.72\nCOMMIT\n*filter\n-P INPUT ACCEPT\n-P FORWARD ACCEPT\n\
        -P OUTPUT ACCEPT\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -i lo -j ACCEPT\n\
        -A INPUT -p icmp -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT\n\
        -A INPUT -s 145.0.6.71/32 -p tcp -m tcp --dport 41194 -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT\n\
        -A INPUT -p udp -m udp --dport 1194 -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT\n\
        -A INPUT -p tcp -m tcp --dport 1194 -m conntrack --ctstate NEW,UNTRACKED -j ACCEPT\n\
        -A INPUT -m conntrack --ctstate INVALID -j DROP\n-A INPUT -j REJECT --reject-with icmp-host-prohibited\n\
        -A FORWARD -i tun+ -o ens160 -j ACCEPT\n-A FORWARD -i ens160 -o tun+ -j ACCEPT\n\
        -A FORWARD -j REJECT --reject-with icmp-host-prohibited\nCOMMIT\n";

    #[test]
    fn reference_001_v4_with_dash_p_lines_means_the_same() {
        let parsed = Ruleset::parse(Family::V4, REFERENCE_V4).unwrap();
        assert_eq!(parsed.normalized(), node_a(Family::V4).normalized());
    }

    #[test]
    fn reference_001_v6_missing_commit_is_rejected() {
        let text = "*nat\n-P PREROUTING ACCEPT\n-A POSTROUTING -s fd00:1:1:1::/64 -j SNAT --to-source 2001:610:188:418:145:0:6:72\n\
            *filter\n-P INPUT ACCEPT\nCOMMIT\n";
        let err = Ruleset::parse(Family::V6, text).unwrap_err();
        assert_eq!(err.line, 4, "{err}");
        assert!(err.message.contains("COMMIT"), "{err}");
    }

    #[test]
    fn reads_iptables_save_forms() {
        let text = "# Generated by iptables-save v1.8.9 (nf_tables) on Sun Nov 22 01:10:06 2026\n*filter\n:INPUT DROP [5:100]\n\
            :FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n:vpn-in - [0:0]\n\
            -A INPUT -p tcp -m comment --comment \"it\\'s a \\\"quoted\\\" back\\\\slash\" -m tcp --dport 22 -j ACCEPT\n\
            -A INPUT ! -s 10.0.0.0/8 -p udp -m multiport --dports 500,4500,1000:2000 -j ACCEPT\n\
            -A INPUT -p icmp -m icmp --icmp-type 3/3 -j LOG --log-prefix \"in: \" --log-level 6\n\
            -A INPUT -p tcp -m tcp ! --dport 22 -m conntrack ! --ctstate INVALID,NEW,SNAT -j vpn-in\n\
            -A INPUT -p tcp -m tcp --tcp-flags SYN,RST SYN -j TCPMSS --clamp-mss-to-pmtu\n\
            -A INPUT -m state --state NEW -j ACCEPT\n-A INPUT -p tcp -j REJECT --reject-with tcp-reset\n-A INPUT -p esp -g vpn-in\n\
            -A vpn-in -j RETURN\nCOMMIT\n# Completed on Sun Nov 22 01:10:06 2026\n";
        let rs = Ruleset::parse(Family::V4, text).unwrap();
        assert_eq!(
            rs.header,
            vec!["Generated by iptables-save v1.8.9 (nf_tables) on Sun Nov 22 01:10:06 2026"]
        );
        let input = &rs.tables[0].chains[0];
        assert_eq!(
            input.counters,
            Counters {
                packets: 5,
                bytes: 100
            }
        );
        assert_eq!(
            input.rules[0].matches[0],
            Match::Comment("it's a \"quoted\" back\\slash".into())
        );
        assert_eq!(
            input.rules[2].target,
            Some(Target::Log {
                prefix: Some("in: ".into()),
                level: 6
            })
        );
        assert_eq!(
            input.rules[3].target,
            Some(Target::Jump(ChainName::new("vpn-in").unwrap()))
        );
        assert!(matches!(&input.rules[4].matches[0], Match::Raw { module, .. } if module == "tcp"));
        assert!(
            matches!(&input.rules[4].target, Some(Target::Raw { name, .. }) if name == "TCPMSS")
        );
        // Everything but the header and the closing comment comes back byte for byte.
        let body: String = text
            .lines()
            .skip(1)
            .filter(|l| !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect();
        let mut again = rs.clone();
        again.header.clear();
        assert_eq!(again.emit(), body);
    }

    #[test]
    fn implicit_protocol_match_and_aliases() {
        let text = "*filter\n-A INPUT -p tcp --dport 22 -j REJECT\n-A INPUT -p 50 -j ACCEPT\n-A INPUT -p all -d 10.1.2.3 -j ACCEPT\nCOMMIT\n";
        let rs = Ruleset::parse(Family::V4, text).unwrap();
        let rules = &rs.tables[0].chains[0].rules;
        assert_eq!(rules[0].matches, vec![Match::Tcp(PortMatch::dport(22))]);
        assert_eq!(
            rules[0].target,
            Some(Target::Reject(RejectWith::IcmpPortUnreachable))
        );
        assert_eq!(rules[1].protocol, Some(Negatable::is(Protocol::ESP)));
        assert_eq!(rules[2].protocol, None);
        assert_eq!(
            rules[2].destination,
            Some(Negatable::is(net("10.1.2.3/32")))
        );
        assert_eq!(
            rs.emit(),
            "*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with icmp-port-unreachable\n\
             -A INPUT -p esp -j ACCEPT\n-A INPUT -d 10.1.2.3/32 -j ACCEPT\nCOMMIT\n"
        );
    }

    #[test]
    fn rejects_what_the_tools_reject() {
        let cases: &[(Family, &str, usize, &str)] = &[
            (Family::V4, "-A INPUT -j ACCEPT\n", 1, "outside a table"),
            (
                Family::V4,
                "*filter\n-A INPUT -o eth0 -j ACCEPT\nCOMMIT\n",
                2,
                "-o cannot",
            ),
            (
                Family::V4,
                "*filter\n-A INPUT -j REJECT --reject-with icmp6-adm-prohibited\nCOMMIT\n",
                2,
                "reject-with",
            ),
            (
                Family::V6,
                "*filter\n-A INPUT -p icmp -j ACCEPT\nCOMMIT\n",
                2,
                "ipv6-icmp",
            ),
            (
                Family::V4,
                "*filter\n-A INPUT -s 2001:db8::/32 -j ACCEPT\nCOMMIT\n",
                2,
                "not an address",
            ),
            (
                Family::V4,
                "*filter\n-A INPUT -m tcp --dport 22 -j ACCEPT\nCOMMIT\n",
                2,
                "-p tcp",
            ),
            (
                Family::V4,
                "*filter\n-A INPUT -j nowhere\nCOMMIT\n",
                2,
                "neither",
            ),
            (
                Family::V4,
                "*filter\n-A INPUT -j SNAT --to-source 1.2.3.4\nCOMMIT\n",
                2,
                "nat",
            ),
            (
                Family::V4,
                "*filter\n:a - [0:0]\n:b - [0:0]\n-A a -j b\n-A b -j a\nCOMMIT\n",
                6,
                "loop",
            ),
            (
                Family::V4,
                "*filter\n-A INPUT -p tcp -m tcp --dport 99999 -j ACCEPT\nCOMMIT\n",
                2,
                "port",
            ),
            (
                Family::V4,
                "*filter\n-A INPUT -m comment --comment \"open -j ACCEPT\nCOMMIT\n",
                2,
                "quote",
            ),
            (
                Family::V4,
                "*filter\n:INPUT RETURN [0:0]\nCOMMIT\n",
                2,
                "policy",
            ),
            (
                Family::V4,
                "*filter\n:FOO ACCEPT [0:0]\nCOMMIT\n",
                2,
                "user chain",
            ),
            (Family::V4, "*filter\n-P FOO DROP\nCOMMIT\n", 2, "built-in"),
            (Family::V4, "*filter\nCOMMIT\n*filter\nCOMMIT\n", 3, "twice"),
            (Family::V4, "*bogus\nCOMMIT\n", 1, "unknown table"),
            (
                Family::V4,
                "*filter\n-A INPUT -p udp -m udp --syn -j ACCEPT\nCOMMIT\n",
                2,
                "no option",
            ),
        ];
        for (family, text, line, needle) in cases {
            let err = Ruleset::parse(*family, text).unwrap_err();
            assert_eq!(err.line, *line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn round_trip(rs in ruleset()) {
            rs.validate().unwrap();
            let text = rs.emit();
            let back = Ruleset::parse(rs.family, &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(back, rs);
        }

        #[test]
        fn parse_never_panics(family in family(), text in "\\PC*") {
            let _ = Ruleset::parse(family, &text);
        }

        #[test]
        fn parse_never_panics_on_mutations(text in ruleset().prop_flat_map(|rs| { let t = rs.emit(); (Just(rs.family), mutated(t)) })) {
            let (family, text) = text;
            if let Ok(rs) = Ruleset::parse(family, &text) {
                // Whatever parses is valid and round-trips.
                rs.validate().map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
                prop_assert_eq!(Ruleset::parse(family, &rs.emit()).unwrap(), rs);
            }
        }
    }
}

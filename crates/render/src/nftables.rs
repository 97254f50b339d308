//! nftables rulesets for `nft -f`, in the form `nft list ruleset` prints.
//!
//! ```text
//! flush ruleset
//!
//! table inet filter {
//!     chain input {
//!         type filter hook input priority filter; policy drop;
//!         ct state established,related accept
//!         iifname "lo" accept
//!         ip saddr 145.0.6.71 tcp dport 41194 ct state new,untracked accept
//!         reject with icmpx admin-prohibited
//!     }
//! }
//! table ip nat {
//!     chain postrouting {
//!         type nat hook postrouting priority srcnat; policy accept;
//!         ip saddr 10.1.0.0/25 snat to 145.0.6.72
//!     }
//! }
//! ```
//!
//! (`nft` and [`Ruleset::emit`] indent with tabs; shown here with spaces.)
//!
//! A [`Ruleset`] holds tables (`ip`, `ip6`, `inet`), a table its chains, a
//! base chain its `type/hook/priority/policy`, and a chain its rules. A rule
//! is a list of typed [`Statement`]s for what this project generates
//! (`iifname`/`oifname` with `*` wildcards, `ip`/`ip6 saddr`/`daddr`,
//! `meta l4proto`, `tcp`/`udp sport`/`dport`, `ct state`, `counter`, `log`,
//! verdicts, `reject`, `snat`, `masquerade`) and an optional `comment`.
//!
//! Emission is canonical in the way `nft list ruleset` (nftables 1.0.6)
//! normalizes: host prefixes without `/32`, sets sorted, `ct state` flags in
//! kernel bit order, standard priority names (`filter`, `srcnat + 5`), the
//! default `reject` and log level left out. [`Ruleset::validate`] refuses
//! values that `nft` would rewrite on listing (so loading a file and
//! listing it gives back the same value) or refuse outright (icmpx outside
//! `inet`, `snat` without `ip`/`ip6` in an `inet` table, jumps into a loop,
//! overlapping set intervals, names that are nft keywords).
//!
//! [`Ruleset::parse`] reads the same subset, with and without `flush
//! ruleset`, in `nft list ruleset` layout or free layout (`;` or newlines
//! between rules, `#` comments). Other statements are refused with the
//! line of the problem.

use std::collections::BTreeSet;
use std::fmt::{self, Write as _};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::format::{Format, ParseError};
pub use crate::iptables::{PortRange, Protocol};

/// Why a value cannot be written as an nftables ruleset.
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

/// Words the nft scanner reads as keywords: a table or chain may not be
/// named so (nftables 1.0.6 refuses `table inet tcp`).
const KEYWORDS: &[&str] = &[
    "accept",
    "ackseq",
    "add",
    "addr",
    "ah",
    "all",
    "and",
    "arp",
    "at",
    "audit",
    "auto-merge",
    "bridge",
    "burst",
    "bypass",
    "bytes",
    "cgroup",
    "cgroupv2",
    "chain",
    "chains",
    "checksum",
    "classid",
    "comment",
    "comp",
    "constant",
    "continue",
    "counter",
    "counters",
    "cpu",
    "create",
    "ct",
    "daddr",
    "day",
    "dccp",
    "define",
    "delete",
    "describe",
    "destroy",
    "device",
    "devices",
    "dnat",
    "doff",
    "drop",
    "dport",
    "dst",
    "dup",
    "dynamic",
    "ecn",
    "element",
    "elements",
    "eq",
    "esp",
    "ether",
    "exists",
    "expires",
    "export",
    "exthdr",
    "fib",
    "flags",
    "flow",
    "flowtable",
    "flowtables",
    "flush",
    "frag",
    "fwd",
    "ge",
    "geneve",
    "get",
    "goto",
    "gre",
    "gretap",
    "group",
    "gt",
    "handle",
    "hbh",
    "hook",
    "hour",
    "icmp",
    "icmpv6",
    "icmpx",
    "id",
    "iif",
    "iifgroup",
    "iifname",
    "iiftype",
    "import",
    "include",
    "index",
    "inet",
    "insert",
    "interval",
    "ip",
    "ip6",
    "ipsec",
    "jhash",
    "jump",
    "label",
    "last",
    "le",
    "length",
    "level",
    "limit",
    "list",
    "log",
    "lshift",
    "lt",
    "map",
    "mark",
    "masquerade",
    "meta",
    "meter",
    "mh",
    "missing",
    "monitor",
    "ne",
    "netdev",
    "nftrace",
    "not",
    "notrack",
    "numgen",
    "obriport",
    "obrname",
    "offload",
    "oif",
    "oifgroup",
    "oifname",
    "oiftype",
    "or",
    "osf",
    "packets",
    "pkttype",
    "policy",
    "position",
    "prefix",
    "priority",
    "protocol",
    "queue",
    "quota",
    "random",
    "redefine",
    "redirect",
    "reject",
    "rename",
    "replace",
    "reset",
    "return",
    "rshift",
    "rt",
    "rt0",
    "rt2",
    "rtclassid",
    "rule",
    "ruleset",
    "saddr",
    "sctp",
    "secmark",
    "set",
    "size",
    "skgid",
    "skuid",
    "snat",
    "socket",
    "sport",
    "srh",
    "state",
    "symhash",
    "synproxy",
    "table",
    "tcp",
    "th",
    "time",
    "timeout",
    "to",
    "tproxy",
    "tunnel",
    "type",
    "typeof",
    "udp",
    "udplite",
    "undefine",
    "update",
    "vlan",
    "vmap",
    "vni",
    "vxlan",
    "with",
    "xor",
    "xt",
];

/// A table or chain name: a letter or `_`, then letters, digits, `_`, `.`,
/// `-` (at most 255 bytes), not an nft keyword.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

impl Name {
    pub fn new(name: impl Into<String>) -> Result<Name, InvalidRuleset> {
        let name = name.into();
        let mut chars = name.chars();
        let ok = chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            && name.len() <= 255;
        if !ok {
            return Err(InvalidRuleset::new(format!(
                "name {name:?} must start with a letter or `_` and use letters, digits, `_`, `.`, `-` (at most 255 bytes)"
            )));
        }
        if KEYWORDS.contains(&name.as_str()) {
            return Err(InvalidRuleset::new(format!(
                "{name:?} is an nft keyword and cannot be a name"
            )));
        }
        Ok(Name(name))
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

/// An interface name for `iifname`/`oifname`: up to 15 bytes of letters,
/// digits, `_ . - + :`, optionally ending in the wildcard `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);

impl IfName {
    pub fn new(name: impl Into<String>) -> Result<IfName, InvalidRuleset> {
        let name = name.into();
        let stem = name.strip_suffix('*').unwrap_or(&name);
        if stem.is_empty()
            || name.len() > 15
            || !stem
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '+' | ':'))
        {
            return Err(InvalidRuleset::new(format!(
                "interface {name:?} must have 1 to 15 bytes of letters, digits, `_ . - + :` and an optional final `*`"
            )));
        }
        Ok(IfName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a concrete interface name matches (`"tun*"` matches `tun0`).
    pub fn matches(&self, ifname: &str) -> bool {
        match self.0.strip_suffix('*') {
            Some(stem) => ifname.starts_with(stem),
            None => self.0 == ifname,
        }
    }
}

/// Family of a table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableFamily {
    Ip,
    Ip6,
    Inet,
}

impl TableFamily {
    pub fn as_str(self) -> &'static str {
        match self {
            TableFamily::Ip => "ip",
            TableFamily::Ip6 => "ip6",
            TableFamily::Inet => "inet",
        }
    }
}

/// `ip` or `ip6` (of `ip saddr`, `snat ip to`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    V4,
    V6,
}

impl IpVersion {
    fn keyword(self) -> &'static str {
        match self {
            IpVersion::V4 => "ip",
            IpVersion::V6 => "ip6",
        }
    }

    fn of(addr: &IpAddr) -> IpVersion {
        match addr {
            IpAddr::V4(_) => IpVersion::V4,
            IpAddr::V6(_) => IpVersion::V6,
        }
    }

    fn allowed_in(self, family: TableFamily) -> bool {
        !matches!(
            (self, family),
            (IpVersion::V4, TableFamily::Ip6) | (IpVersion::V6, TableFamily::Ip)
        )
    }
}

/// `type` of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChainType {
    Filter,
    Nat,
    Route,
}

impl ChainType {
    fn as_str(self) -> &'static str {
        match self {
            ChainType::Filter => "filter",
            ChainType::Nat => "nat",
            ChainType::Route => "route",
        }
    }
}

/// `hook` of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Hook {
    Prerouting,
    Input,
    Forward,
    Output,
    Postrouting,
}

impl Hook {
    const ALL: [Hook; 5] = [
        Hook::Prerouting,
        Hook::Input,
        Hook::Forward,
        Hook::Output,
        Hook::Postrouting,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Hook::Prerouting => "prerouting",
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }
}

/// Policy of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Policy {
    Accept,
    Drop,
}

/// Standard priorities (ip, ip6, inet) and the hooks where nft prints and
/// accepts the name.
const STD_PRIORITIES: [(&str, i32, Option<Hook>); 6] = [
    ("raw", -300, None),
    ("mangle", -150, None),
    ("dstnat", -100, Some(Hook::Prerouting)),
    ("filter", 0, None),
    ("security", 50, None),
    ("srcnat", 100, Some(Hook::Postrouting)),
];

/// The header of a base chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BaseChain {
    pub kind: ChainType,
    pub hook: Hook,
    /// Written by name when within 10 of a standard priority valid for the
    /// hook (`filter`, `srcnat + 5`), as nft lists it.
    pub priority: i32,
    pub policy: Policy,
}

impl BaseChain {
    pub fn filter(hook: Hook, policy: Policy) -> BaseChain {
        BaseChain {
            kind: ChainType::Filter,
            hook,
            priority: 0,
            policy,
        }
    }

    /// `type nat hook postrouting priority srcnat`.
    pub fn srcnat() -> BaseChain {
        BaseChain {
            kind: ChainType::Nat,
            hook: Hook::Postrouting,
            priority: 100,
            policy: Policy::Accept,
        }
    }
}

/// A `ct state` flag, in kernel bit order (the order nft lists them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum CtState {
    Invalid,
    Established,
    Related,
    New,
    Untracked,
}

impl CtState {
    pub const ALL: [CtState; 5] = [
        CtState::Invalid,
        CtState::Established,
        CtState::Related,
        CtState::New,
        CtState::Untracked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CtState::Invalid => "invalid",
            CtState::Established => "established",
            CtState::Related => "related",
            CtState::New => "new",
            CtState::Untracked => "untracked",
        }
    }
}

/// `==` (written as nothing) or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Op {
    #[default]
    Eq,
    Ne,
}

/// `saddr` or `daddr`, `sport` or `dport`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Source,
    Destination,
}

/// Transport protocol of a port match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PortProtocol {
    Tcp,
    Udp,
}

/// `reject with ...`. Which ones exist depends on the table family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RejectWith {
    /// `icmpx` (inet only): port-unreachable (the default), admin-prohibited, no-route, host-unreachable.
    Icmpx(IcmpxCode),
    /// `icmp` (IPv4; in ip and inet).
    Icmp(IcmpCode),
    /// `icmpv6` (IPv6; in ip6 and inet).
    Icmpv6(Icmpv6Code),
    /// `tcp reset` (listed as `meta l4proto tcp reject with tcp reset`).
    TcpReset,
}

macro_rules! code_enum {
    ($name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            fn from_name(s: &str) -> Option<$name> {
                $name::ALL.iter().copied().find(|c| c.as_str() == s)
            }
        }
    };
}

code_enum!(IcmpxCode { PortUnreachable = "port-unreachable", AdminProhibited = "admin-prohibited", NoRoute = "no-route", HostUnreachable = "host-unreachable" });
code_enum!(IcmpCode {
    NetUnreachable = "net-unreachable",
    HostUnreachable = "host-unreachable",
    ProtUnreachable = "prot-unreachable",
    PortUnreachable = "port-unreachable",
    NetProhibited = "net-prohibited",
    HostProhibited = "host-prohibited",
    AdminProhibited = "admin-prohibited",
});
code_enum!(Icmpv6Code {
    NoRoute = "no-route",
    AdminProhibited = "admin-prohibited",
    AddrUnreachable = "addr-unreachable",
    PortUnreachable = "port-unreachable",
    PolicyFail = "policy-fail",
    RejectRoute = "reject-route",
});

/// A statement of a rule. Matches come first, a terminal statement
/// (verdict, `reject`, `snat`, `masquerade`) last.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Statement {
    /// `iifname "tun*"` / `iifname != { "a", "b" }`.
    Iifname {
        op: Op,
        names: Vec<IfName>,
    },
    Oifname {
        op: Op,
        names: Vec<IfName>,
    },
    /// `ip saddr 10.0.0.0/8`, `ip6 daddr { ... }`: prefixes sorted, not
    /// overlapping or adjacent (nft would merge them).
    Addr {
        version: IpVersion,
        direction: Direction,
        op: Op,
        nets: Vec<IpNet>,
    },
    /// `meta l4proto tcp` / `meta l4proto { tcp, udp }` (sorted by number).
    L4proto {
        op: Op,
        protocols: Vec<Protocol>,
    },
    /// `tcp dport 22`, `udp dport { 500, 4500 }` (sorted, not overlapping).
    Port {
        protocol: PortProtocol,
        direction: Direction,
        op: Op,
        ports: Vec<PortRange>,
    },
    /// `ct state established,related`.
    CtState {
        op: Op,
        states: BTreeSet<CtState>,
    },
    /// `counter` (`packets N bytes M` as nft lists a loaded rule).
    Counter(Option<(u64, u64)>),
    /// `log [prefix "P"] [level L]`; level 4 (warn) is the default and not written.
    Log {
        prefix: Option<String>,
        level: u8,
    },
    Accept,
    Drop,
    Return,
    Jump(Name),
    Goto(Name),
    /// `reject` (the family's default reply when `None`).
    Reject(Option<RejectWith>),
    /// `snat to A` (ip/ip6 tables) / `snat ip to A` (inet tables: `version` given).
    Snat {
        version: Option<IpVersion>,
        to: IpAddr,
    },
    Masquerade,
}

impl Statement {
    fn is_terminal(&self) -> bool {
        matches!(
            self,
            Statement::Accept
                | Statement::Drop
                | Statement::Return
                | Statement::Jump(_)
                | Statement::Goto(_)
                | Statement::Reject(_)
                | Statement::Snat { .. }
                | Statement::Masquerade
        )
    }

    pub fn iifname(name: &str) -> Result<Statement, InvalidRuleset> {
        Ok(Statement::Iifname {
            op: Op::Eq,
            names: vec![IfName::new(name)?],
        })
    }

    pub fn oifname(name: &str) -> Result<Statement, InvalidRuleset> {
        Ok(Statement::Oifname {
            op: Op::Eq,
            names: vec![IfName::new(name)?],
        })
    }

    pub fn dport(protocol: PortProtocol, port: u16) -> Statement {
        Statement::Port {
            protocol,
            direction: Direction::Destination,
            op: Op::Eq,
            ports: vec![PortRange::single(port)],
        }
    }

    pub fn saddr(net: IpNet) -> Statement {
        let version = IpVersion::of(&net.addr());
        Statement::Addr {
            version,
            direction: Direction::Source,
            op: Op::Eq,
            nets: vec![net],
        }
    }

    pub fn ct_state(states: &[CtState]) -> Statement {
        Statement::CtState {
            op: Op::Eq,
            states: states.iter().copied().collect(),
        }
    }
}

/// One rule: statements and an optional comment (at most 127 bytes, no `"`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Rule {
    pub statements: Vec<Statement>,
    pub comment: Option<String>,
}

impl Rule {
    pub fn new(statements: Vec<Statement>) -> Rule {
        Rule {
            statements,
            comment: None,
        }
    }
}

/// A chain: a base chain (with `type ... hook ...`) or a regular chain.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Chain {
    pub name: Name,
    pub base: Option<BaseChain>,
    pub rules: Vec<Rule>,
}

/// A table.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Table {
    pub family: TableFamily,
    pub name: Name,
    pub chains: Vec<Chain>,
}

impl Table {
    pub fn chain(&self, name: &str) -> Option<&Chain> {
        self.chains.iter().find(|c| c.name.as_str() == name)
    }
}

/// A whole `nft -f` file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ruleset {
    /// `#` comment lines at the top (without the `#`).
    pub header: Vec<String>,
    /// Starts with `flush ruleset` (the file replaces everything).
    pub flush: bool,
    pub tables: Vec<Table>,
}

impl Ruleset {
    pub fn table(&self, family: TableFamily, name: &str) -> Option<&Table> {
        self.tables
            .iter()
            .find(|t| t.family == family && t.name.as_str() == name)
    }

    /// The same ruleset with counters zeroed, no header and no flush: what
    /// to compare with `nft list ruleset` output.
    pub fn without_state(&self) -> Ruleset {
        let mut out = self.clone();
        out.header.clear();
        out.flush = false;
        for rule in out
            .tables
            .iter_mut()
            .flat_map(|t| t.chains.iter_mut())
            .flat_map(|c| c.rules.iter_mut())
        {
            for s in &mut rule.statements {
                if let Statement::Counter(c) = s {
                    *c = None;
                }
            }
        }
        out
    }

    pub fn validate(&self) -> Result<(), InvalidRuleset> {
        for line in &self.header {
            if line.chars().any(|c| c.is_control() && c != '\t') || line.trim() != line {
                return Err(InvalidRuleset::new(format!(
                    "header comment {line:?} has control characters or surrounding whitespace"
                )));
            }
        }
        let mut seen = BTreeSet::new();
        for table in &self.tables {
            if !seen.insert((table.family, table.name.as_str())) {
                return Err(InvalidRuleset::new(format!(
                    "table {} {} appears twice",
                    table.family.as_str(),
                    table.name
                )));
            }
            validate_table(table).map_err(InvalidRuleset::new)?;
        }
        Ok(())
    }

    /// The `nft -f` text, laid out as `nft list ruleset` does (tabs).
    pub fn emit(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            if line.is_empty() {
                out.push_str("#\n");
            } else {
                let _ = writeln!(out, "# {line}");
            }
        }
        if self.flush {
            out.push_str("flush ruleset\n");
        }
        if (self.flush || !self.header.is_empty()) && !self.tables.is_empty() {
            out.push('\n');
        }
        for table in &self.tables {
            let _ = writeln!(out, "table {} {} {{", table.family.as_str(), table.name);
            for (i, chain) in table.chains.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                let _ = writeln!(out, "\tchain {} {{", chain.name);
                if let Some(base) = &chain.base {
                    let _ = writeln!(
                        out,
                        "\t\ttype {} hook {} priority {}; policy {};",
                        base.kind.as_str(),
                        base.hook.as_str(),
                        priority_text(base.hook, base.priority),
                        match base.policy {
                            Policy::Accept => "accept",
                            Policy::Drop => "drop",
                        }
                    );
                }
                for rule in &chain.rules {
                    out.push_str("\t\t");
                    write_rule(rule, &mut out);
                    out.push('\n');
                }
                out.push_str("\t}\n");
            }
            out.push_str("}\n");
        }
        out
    }

    pub fn parse(text: &str) -> Result<Ruleset, ParseError> {
        let tokens = lex(text)?;
        let mut p = Parser { tokens, pos: 0 };
        let ruleset = p.file()?;
        Ok(ruleset)
    }
}

impl Format for Ruleset {
    fn emit(&self) -> String {
        Ruleset::emit(self)
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        Ruleset::parse(text)
    }
}

fn priority_text(hook: Hook, value: i32) -> String {
    for (name, base, only) in STD_PRIORITIES {
        if only.is_some_and(|h| h != hook) {
            continue;
        }
        let off = i64::from(value) - i64::from(base);
        if off == 0 {
            return name.to_string();
        }
        if (1..=10).contains(&off) {
            return format!("{name} + {off}");
        }
        if (-10..=-1).contains(&off) {
            return format!("{name} - {}", -off);
        }
    }
    value.to_string()
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

fn check_string(what: &str, s: &str, max: usize) -> Result<(), String> {
    if s.len() > max {
        return Err(format!("{what} {s:?} is longer than {max} bytes"));
    }
    if s.chars().any(|c| c.is_control() || c == '"') {
        return Err(format!(
            "{what} {s:?} may not hold `\"` or control characters (nft strings have no escapes)"
        ));
    }
    Ok(())
}

fn sorted_disjoint<T, K: Ord + Copy>(
    items: &[T],
    bounds: impl Fn(&T) -> (K, K, bool),
    next: impl Fn(K) -> Option<K>,
) -> Result<(), String> {
    for pair in items.windows(2) {
        let (_, a_last, a_interval) = bounds(&pair[0]);
        let (b_first, _, b_interval) = bounds(&pair[1]);
        if a_last >= b_first {
            return Err("set elements must be sorted and must not overlap".into());
        }
        if (a_interval || b_interval) && next(a_last) == Some(b_first) {
            return Err(
                "adjacent intervals in a set: nft merges them, write the merged interval".into(),
            );
        }
    }
    Ok(())
}

fn validate_table(table: &Table) -> Result<(), String> {
    let mut names = BTreeSet::new();
    for chain in &table.chains {
        if !names.insert(chain.name.as_str()) {
            return Err(format!(
                "chain {} appears twice in table {}",
                chain.name, table.name
            ));
        }
        if let Some(base) = &chain.base {
            let ok = match base.kind {
                ChainType::Filter => true,
                ChainType::Nat => base.hook != Hook::Forward,
                ChainType::Route => base.hook == Hook::Output,
            };
            if !ok {
                return Err(format!(
                    "chain {}: type {} has no hook {}",
                    chain.name,
                    base.kind.as_str(),
                    base.hook.as_str()
                ));
            }
            if base.kind == ChainType::Nat && base.priority <= -200 {
                return Err(format!(
                    "chain {}: a nat chain's priority must be above -200 (after conntrack), got {}",
                    chain.name, base.priority
                ));
            }
        }
    }
    for chain in &table.chains {
        for rule in &chain.rules {
            validate_rule(table, chain, rule).map_err(|e| format!("chain {}: {e}", chain.name))?;
        }
    }
    check_loops(table)
}

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
            let mut cycle = path[at..].to_vec();
            cycle.push(name);
            return Err(format!("chains jump in a loop: {}", cycle.join(" -> ")));
        }
        path.push(name);
        if let Some(chain) = table.chain(name) {
            for s in chain.rules.iter().flat_map(|r| r.statements.iter()) {
                if let Statement::Jump(to) | Statement::Goto(to) = s {
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

fn validate_rule(table: &Table, chain: &Chain, rule: &Rule) -> Result<(), String> {
    if rule.statements.is_empty() {
        return Err("empty rule".into());
    }
    if let Some(c) = &rule.comment {
        check_string("comment", c, 127)?;
    }
    let last = rule.statements.len() - 1;
    for (i, s) in rule.statements.iter().enumerate() {
        if s.is_terminal() && i != last {
            return Err(
                "a verdict, reject, snat or masquerade must be the rule's last statement".into(),
            );
        }
        validate_statement(table, chain, s)?;
    }
    check_protocol_context(table.family, rule)
}

/// nft tracks which layer 3 and layer 4 protocol a rule has committed to
/// and refuses contradictions ("conflicting protocols specified: tcp vs.
/// udp"); it also drops a `meta l4proto P` that a later `P dport` implies
/// and adds the `meta l4proto tcp` that `reject with tcp reset` needs.
fn check_protocol_context(family: TableFamily, rule: &Rule) -> Result<(), String> {
    #[derive(Clone, Copy, PartialEq)]
    enum L4 {
        One(u8),
        Several,
    }
    let mut l3 = match family {
        TableFamily::Ip => Some(IpVersion::V4),
        TableFamily::Ip6 => Some(IpVersion::V6),
        TableFamily::Inet => None,
    };
    let mut l4: Option<L4> = None;
    let conflict = |a: &str, b: &str| {
        Err(format!(
            "conflicting protocols in one rule: {a} vs. {b} (the rule could never match)"
        ))
    };
    let version_name = |v: IpVersion| v.keyword();
    for (i, s) in rule.statements.iter().enumerate() {
        let need_l3 = |want: IpVersion, l3: &mut Option<IpVersion>| -> Result<(), String> {
            match *l3 {
                Some(have) if have != want => conflict(version_name(have), version_name(want)),
                _ => {
                    *l3 = Some(want);
                    Ok(())
                }
            }
        };
        match s {
            Statement::Addr { version, .. } => need_l3(*version, &mut l3)?,
            Statement::Reject(Some(RejectWith::Icmp(_))) => need_l3(IpVersion::V4, &mut l3)?,
            Statement::Reject(Some(RejectWith::Icmpv6(_))) => need_l3(IpVersion::V6, &mut l3)?,
            Statement::Snat {
                version: Some(v), ..
            } => need_l3(*v, &mut l3)?,
            Statement::L4proto {
                op: Op::Eq,
                protocols,
            } => {
                if l4.is_none() {
                    l4 = Some(if let [p] = protocols.as_slice() {
                        L4::One(p.0)
                    } else {
                        L4::Several
                    });
                }
                if let [p] = protocols.as_slice() {
                    let implied = rule.statements[i + 1..].iter().any(|later| match later {
                        Statement::Port { protocol, .. } => port_protocol_number(*protocol) == p.0,
                        _ => false,
                    });
                    if implied {
                        return Err(format!(
                            "`meta l4proto {p}` is implied by a later {p} port match (nft drops it)"
                        ));
                    }
                }
            }
            Statement::Port { protocol, .. } => {
                let want = port_protocol_number(*protocol);
                match l4 {
                    Some(L4::One(have)) if have != want => {
                        return conflict(&Protocol(have).to_string(), &Protocol(want).to_string());
                    }
                    Some(L4::Several) => {
                        return conflict("a set of protocols", &Protocol(want).to_string());
                    }
                    _ => l4 = Some(L4::One(want)),
                }
            }
            Statement::Reject(Some(RejectWith::TcpReset)) if l4 != Some(L4::One(6)) => {
                return Err("`reject with tcp reset` needs `meta l4proto tcp` or a tcp port match before it".into());
            }
            _ => {}
        }
    }
    Ok(())
}

fn port_protocol_number(p: PortProtocol) -> u8 {
    match p {
        PortProtocol::Tcp => 6,
        PortProtocol::Udp => 17,
    }
}

fn validate_statement(table: &Table, chain: &Chain, s: &Statement) -> Result<(), String> {
    let family = table.family;
    match s {
        Statement::Iifname { names, .. } | Statement::Oifname { names, .. } => {
            if names.is_empty() {
                return Err("interface set is empty".into());
            }
            if names.windows(2).any(|w| w[0] >= w[1]) {
                return Err("set elements must be sorted and must not repeat".into());
            }
            for a in names {
                if let Some(stem) = a.as_str().strip_suffix('*')
                    && let Some(b) = names
                        .iter()
                        .find(|b| *b != a && b.as_str().starts_with(stem))
                {
                    return Err(format!(
                        "interface set: \"{}\" already covers \"{}\"",
                        a.as_str(),
                        b.as_str()
                    ));
                }
            }
            let hook = chain.base.map(|b| b.hook);
            if matches!(s, Statement::Iifname { .. })
                && matches!(hook, Some(Hook::Output | Hook::Postrouting))
            {
                return Err("iifname cannot match in an output or postrouting chain".into());
            }
            if matches!(s, Statement::Oifname { .. })
                && matches!(hook, Some(Hook::Prerouting | Hook::Input))
            {
                return Err("oifname cannot match in a prerouting or input chain".into());
            }
        }
        Statement::Addr { version, nets, .. } => {
            if !version.allowed_in(family) {
                return Err(format!(
                    "{} addresses in a table of family {}",
                    version.keyword(),
                    family.as_str()
                ));
            }
            if nets.is_empty() {
                return Err("address set is empty".into());
            }
            for n in nets {
                if IpVersion::of(&n.addr()) != *version {
                    return Err(format!("{n} is not an {} address", version.keyword()));
                }
                if n.trunc() != *n {
                    return Err(format!("{n} has host bits set (nft lists {})", n.trunc()));
                }
            }
            sorted_disjoint(
                nets,
                |n| {
                    (
                        n.network(),
                        n.broadcast(),
                        n.prefix_len() < n.max_prefix_len(),
                    )
                },
                |a| match a {
                    IpAddr::V4(v) => u32::from(v).checked_add(1).map(|x| IpAddr::V4(x.into())),
                    IpAddr::V6(v) => u128::from(v).checked_add(1).map(|x| IpAddr::V6(x.into())),
                },
            )?;
        }
        Statement::L4proto { protocols, .. } => {
            if protocols.is_empty() || protocols.iter().any(|p| p.0 == 0) {
                return Err("meta l4proto needs protocols other than 0".into());
            }
            sorted_disjoint(protocols, |p| (p.0, p.0, false), |_| None)?;
        }
        Statement::Port { ports, .. } => {
            if ports.is_empty() {
                return Err("port set is empty".into());
            }
            if ports.iter().any(|p| p.first > p.last) {
                return Err("a port range's first port is above its last".into());
            }
            sorted_disjoint(
                ports,
                |p| (p.first, p.last, p.first != p.last),
                |p| p.checked_add(1),
            )?;
        }
        Statement::CtState { states, .. } => {
            if states.is_empty() {
                return Err("ct state needs at least one state".into());
            }
        }
        Statement::Counter(_) | Statement::Accept | Statement::Drop | Statement::Return => {}
        Statement::Log { prefix, level } => {
            if let Some(p) = prefix {
                check_string("log prefix", p, 127)?;
                if p.contains('$') {
                    return Err(format!("log prefix {p:?}: nft reads `$` as a variable"));
                }
            }
            if *level > 7 {
                return Err(format!("log level {level} is above 7"));
            }
        }
        Statement::Jump(to) | Statement::Goto(to) => match table.chain(to.as_str()) {
            None => {
                return Err(format!(
                    "jump to chain {to}, which table {} does not have",
                    table.name
                ));
            }
            Some(c) if c.base.is_some() => return Err(format!("cannot jump to base chain {to}")),
            Some(_) => {}
        },
        Statement::Reject(with) => {
            let ok = match with {
                None | Some(RejectWith::TcpReset) => true,
                Some(RejectWith::Icmpx(code)) => {
                    family == TableFamily::Inet && *code != IcmpxCode::PortUnreachable
                }
                Some(RejectWith::Icmp(code)) => {
                    family != TableFamily::Ip6
                        && !(family == TableFamily::Ip && *code == IcmpCode::PortUnreachable)
                }
                Some(RejectWith::Icmpv6(code)) => {
                    family != TableFamily::Ip
                        && !(family == TableFamily::Ip6 && *code == Icmpv6Code::PortUnreachable)
                }
            };
            if !ok {
                return Err(format!(
                    "this reject is not valid in a table of family {} (icmpx only in inet; the family's default is plain `reject`)",
                    family.as_str()
                ));
            }
            check_filter_hook(chain, "reject")?;
        }
        Statement::Snat { version, to } => {
            match (family, version) {
                (TableFamily::Inet, None) => {
                    return Err("snat in an inet table needs `ip` or `ip6`".into());
                }
                (TableFamily::Inet, Some(v)) if *v != IpVersion::of(to) => {
                    return Err(format!("snat {} to {to}", v.keyword()));
                }
                (TableFamily::Ip | TableFamily::Ip6, Some(_)) => {
                    return Err("snat in an ip/ip6 table is written without `ip`/`ip6`".into());
                }
                _ => {}
            }
            if !IpVersion::of(to).allowed_in(family) {
                return Err(format!(
                    "snat to {to} in a table of family {}",
                    family.as_str()
                ));
            }
            check_nat_hook(chain, "snat", &[Hook::Postrouting, Hook::Input])?;
        }
        Statement::Masquerade => check_nat_hook(chain, "masquerade", &[Hook::Postrouting])?,
    }
    Ok(())
}

fn check_filter_hook(chain: &Chain, what: &str) -> Result<(), String> {
    match chain.base {
        Some(b) if !matches!(b.hook, Hook::Input | Hook::Forward | Hook::Output) => Err(format!(
            "{what} is only valid in input, forward and output hooks"
        )),
        _ => Ok(()),
    }
}

fn check_nat_hook(chain: &Chain, what: &str, hooks: &[Hook]) -> Result<(), String> {
    match chain.base {
        Some(b) if b.kind != ChainType::Nat || !hooks.contains(&b.hook) => {
            let names: Vec<&str> = hooks.iter().map(|h| h.as_str()).collect();
            Err(format!(
                "{what} is only valid in a nat chain on hook {}",
                names.join(" or ")
            ))
        }
        _ => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Emission
// ---------------------------------------------------------------------------

fn write_op(out: &mut String, op: Op) {
    if op == Op::Ne {
        out.push_str(" !=");
    }
}

fn write_set<T>(out: &mut String, items: &[T], one: impl Fn(&T) -> String) {
    if items.len() == 1 {
        out.push(' ');
        out.push_str(&one(&items[0]));
    } else {
        let parts: Vec<String> = items.iter().map(one).collect();
        let _ = write!(out, " {{ {} }}", parts.join(", "));
    }
}

fn net_text(n: &IpNet) -> String {
    if n.prefix_len() == n.max_prefix_len() {
        n.addr().to_string()
    } else {
        n.to_string()
    }
}

fn port_text(p: &PortRange) -> String {
    if p.first == p.last {
        p.first.to_string()
    } else {
        format!("{}-{}", p.first, p.last)
    }
}

fn write_rule(rule: &Rule, out: &mut String) {
    let mut first = true;
    for s in &rule.statements {
        if !first {
            out.push(' ');
        }
        first = false;
        let mut buf = String::new();
        write_statement(s, &mut buf);
        out.push_str(buf.trim_start());
    }
    if let Some(c) = &rule.comment {
        let _ = write!(out, " comment \"{c}\"");
    }
}

fn write_statement(s: &Statement, out: &mut String) {
    match s {
        Statement::Iifname { op, names } | Statement::Oifname { op, names } => {
            out.push_str(if matches!(s, Statement::Iifname { .. }) {
                "iifname"
            } else {
                "oifname"
            });
            write_op(out, *op);
            write_set(out, names, |n| format!("\"{}\"", n.as_str()));
        }
        Statement::Addr {
            version,
            direction,
            op,
            nets,
        } => {
            let _ = write!(
                out,
                "{} {}",
                version.keyword(),
                if *direction == Direction::Source {
                    "saddr"
                } else {
                    "daddr"
                }
            );
            write_op(out, *op);
            write_set(out, nets, net_text);
        }
        Statement::L4proto { op, protocols } => {
            out.push_str("meta l4proto");
            write_op(out, *op);
            write_set(out, protocols, |p| p.to_string());
        }
        Statement::Port {
            protocol,
            direction,
            op,
            ports,
        } => {
            let proto = if *protocol == PortProtocol::Tcp {
                "tcp"
            } else {
                "udp"
            };
            let _ = write!(
                out,
                "{proto} {}",
                if *direction == Direction::Source {
                    "sport"
                } else {
                    "dport"
                }
            );
            write_op(out, *op);
            write_set(out, ports, port_text);
        }
        Statement::CtState { op, states } => {
            out.push_str("ct state");
            write_op(out, *op);
            let list: Vec<&str> = states.iter().map(|s| s.as_str()).collect();
            let _ = write!(out, " {}", list.join(","));
        }
        Statement::Counter(None) => out.push_str("counter"),
        Statement::Counter(Some((p, b))) => {
            let _ = write!(out, "counter packets {p} bytes {b}");
        }
        Statement::Log { prefix, level } => {
            out.push_str("log");
            if let Some(p) = prefix {
                let _ = write!(out, " prefix \"{p}\"");
            }
            if *level != 4 {
                let _ = write!(
                    out,
                    " level {}",
                    LOG_LEVELS
                        .get(usize::from(*level))
                        .copied()
                        .unwrap_or("debug")
                );
            }
        }
        Statement::Accept => out.push_str("accept"),
        Statement::Drop => out.push_str("drop"),
        Statement::Return => out.push_str("return"),
        Statement::Jump(c) => {
            let _ = write!(out, "jump {c}");
        }
        Statement::Goto(c) => {
            let _ = write!(out, "goto {c}");
        }
        Statement::Reject(None) => out.push_str("reject"),
        Statement::Reject(Some(with)) => {
            let _ = match with {
                RejectWith::Icmpx(c) => write!(out, "reject with icmpx {}", c.as_str()),
                RejectWith::Icmp(c) => write!(out, "reject with icmp {}", c.as_str()),
                RejectWith::Icmpv6(c) => write!(out, "reject with icmpv6 {}", c.as_str()),
                RejectWith::TcpReset => write!(out, "reject with tcp reset"),
            };
        }
        Statement::Snat { version, to } => {
            out.push_str("snat");
            if let Some(v) = version {
                let _ = write!(out, " {}", v.keyword());
            }
            let _ = write!(out, " to {to}");
        }
        Statement::Masquerade => out.push_str("masquerade"),
    }
}

const LOG_LEVELS: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warn", "notice", "info", "debug",
];

// ---------------------------------------------------------------------------
// Lexer and parser
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    Str(String),
    Open,
    Close,
    Semi,
    Comma,
    Newline,
    /// A `#` comment line before anything else (header).
    Header(String),
}

#[derive(Debug)]
struct Token {
    tok: Tok,
    line: usize,
}

fn lex(text: &str) -> Result<Vec<Token>, ParseError> {
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    let mut started = false;
    let mut at_line_start = true;
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                tokens.push(Token {
                    tok: Tok::Newline,
                    line,
                });
                line += 1;
                at_line_start = true;
                continue;
            }
            ' ' | '\t' => continue,
            '#' => {
                let mut comment = String::new();
                while let Some(c) = chars.next_if(|c| *c != '\n') {
                    comment.push(c);
                }
                if !started && at_line_start {
                    let text = comment
                        .strip_prefix(' ')
                        .unwrap_or(&comment)
                        .trim()
                        .to_string();
                    if text.chars().any(|c| c.is_control() && c != '\t') {
                        return Err(ParseError::new(line, "control character in a comment"));
                    }
                    tokens.push(Token {
                        tok: Tok::Header(text),
                        line,
                    });
                }
                continue;
            }
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
                line += 1;
                continue;
            }
            _ => {}
        }
        at_line_start = false;
        started = true;
        let tok = match c {
            '{' => Tok::Open,
            '}' => Tok::Close,
            ';' => Tok::Semi,
            ',' => Tok::Comma,
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\n') | None => {
                            return Err(ParseError::new(line, "unterminated string"));
                        }
                        Some(c) if c.is_control() => {
                            return Err(ParseError::new(
                                line,
                                format!("control character {c:?} in a string"),
                            ));
                        }
                        Some(c) => s.push(c),
                    }
                }
                Tok::Str(s)
            }
            c if c.is_control() => {
                return Err(ParseError::new(line, format!("control character {c:?}")));
            }
            c => {
                let mut w = c.to_string();
                while let Some(c) = chars.next_if(|c| {
                    !c.is_whitespace() && !matches!(c, '{' | '}' | ';' | ',' | '"' | '#')
                }) {
                    if c.is_control() {
                        return Err(ParseError::new(line, format!("control character {c:?}")));
                    }
                    w.push(c);
                }
                Tok::Word(w)
            }
        };
        tokens.push(Token { tok, line });
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

type PResult<T> = Result<T, ParseError>;

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn line(&self) -> usize {
        self.tokens
            .get(self.pos)
            .or_else(|| self.tokens.last())
            .map_or(1, |t| t.line)
    }

    fn err<T>(&self, message: impl Into<String>) -> PResult<T> {
        Err(ParseError::new(self.line(), message))
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.tokens.get(self.pos).map(|t| t.tok.clone());
        if t.is_some() {
            self.pos += 1;
        }
        t
    }

    fn skip_separators(&mut self) {
        while matches!(self.peek(), Some(Tok::Newline | Tok::Semi)) {
            self.pos += 1;
        }
    }

    fn skip_newlines(&mut self) {
        while matches!(self.peek(), Some(Tok::Newline)) {
            self.pos += 1;
        }
    }

    fn word(&mut self, what: &str) -> PResult<String> {
        match self.peek() {
            Some(Tok::Word(w)) => {
                let w = w.clone();
                self.pos += 1;
                Ok(w)
            }
            _ => self.err(format!("expected {what}")),
        }
    }

    fn keyword(&mut self, kw: &str) -> PResult<()> {
        match self.peek() {
            Some(Tok::Word(w)) if w == kw => {
                self.pos += 1;
                Ok(())
            }
            _ => self.err(format!("expected `{kw}`")),
        }
    }

    fn expect(&mut self, tok: Tok, what: &str) -> PResult<()> {
        if self.peek() == Some(&tok) {
            self.pos += 1;
            Ok(())
        } else {
            self.err(format!("expected {what}"))
        }
    }

    fn name(&mut self, what: &str) -> PResult<Name> {
        let line = self.line();
        let w = self.word(what)?;
        Name::new(w).map_err(|e| ParseError::new(line, e.message))
    }

    fn file(&mut self) -> PResult<Ruleset> {
        let mut ruleset = Ruleset {
            header: Vec::new(),
            flush: false,
            tables: Vec::new(),
        };
        let mut in_header = true;
        loop {
            match self.peek() {
                None => break,
                Some(Tok::Header(h)) => {
                    if in_header {
                        ruleset.header.push(h.clone());
                    }
                    self.pos += 1;
                }
                Some(Tok::Newline | Tok::Semi) => self.pos += 1,
                Some(Tok::Word(w)) if w == "flush" => {
                    in_header = false;
                    self.pos += 1;
                    self.keyword("ruleset")?;
                    if ruleset.flush || !ruleset.tables.is_empty() {
                        return self.err("`flush ruleset` only once, before the tables");
                    }
                    ruleset.flush = true;
                    self.end_of_statement()?;
                }
                Some(Tok::Word(w)) if w == "table" => {
                    in_header = false;
                    let line = self.line();
                    self.pos += 1;
                    let table = self.table()?;
                    if ruleset.table(table.family, table.name.as_str()).is_some() {
                        return Err(ParseError::new(
                            line,
                            format!(
                                "table {} {} appears twice",
                                table.family.as_str(),
                                table.name
                            ),
                        ));
                    }
                    check_loops(&table).map_err(|e| ParseError::new(line, e))?;
                    ruleset.tables.push(table);
                    self.end_of_statement()?;
                }
                Some(other) => {
                    return self.err(format!(
                        "unexpected {} at the top level (expected `table` or `flush ruleset`)",
                        describe(other)
                    ));
                }
            }
        }
        Ok(ruleset)
    }

    /// nft ends every statement, rule and block with a newline or `;`
    /// (`chain a { accept }` and `} }` on one line are syntax errors).
    fn end_of_statement(&mut self) -> PResult<()> {
        match self.peek() {
            None | Some(Tok::Newline | Tok::Semi) => Ok(()),
            Some(other) => {
                let d = describe(other);
                self.err(format!("expected a newline or `;`, got {d}"))
            }
        }
    }

    fn table(&mut self) -> PResult<Table> {
        let family = match self.word("a table family")?.as_str() {
            "ip" => TableFamily::Ip,
            "ip6" => TableFamily::Ip6,
            "inet" => TableFamily::Inet,
            other => {
                return self.err(format!(
                    "table family {other:?} is not supported (ip, ip6, inet)"
                ));
            }
        };
        let name = self.name("a table name")?;
        self.expect(Tok::Open, "`{` after the table name")?;
        let mut table = Table {
            family,
            name,
            chains: Vec::new(),
        };
        let mut lines: Vec<(usize, Vec<usize>)> = Vec::new();
        loop {
            self.skip_separators();
            match self.next() {
                Some(Tok::Close) => break,
                Some(Tok::Word(w)) if w == "chain" => {
                    let line = self.line();
                    let (chain, rule_lines) = self.chain()?;
                    match self.peek() {
                        Some(Tok::Newline | Tok::Semi) => {}
                        _ => return self.err("expected a newline or `;` after the chain's `}`"),
                    }
                    if table.chain(chain.name.as_str()).is_some() {
                        return Err(ParseError::new(
                            line,
                            format!("chain {} appears twice", chain.name),
                        ));
                    }
                    table.chains.push(chain);
                    lines.push((line, rule_lines));
                }
                Some(other) => {
                    self.pos -= 1;
                    return self.err(format!(
                        "unexpected {} in a table (expected `chain` or `}}`)",
                        describe(&other)
                    ));
                }
                None => return self.err("table not closed by `}`"),
            }
        }
        // Checked once the whole table is read: jumps may go to chains
        // declared further down.
        for (chain, (line, rule_lines)) in table.chains.iter().zip(&lines) {
            let mut single = table.clone();
            single.chains = vec![Chain {
                rules: Vec::new(),
                ..chain.clone()
            }];
            validate_table(&single).map_err(|e| ParseError::new(*line, e))?;
            for (rule, rule_line) in chain.rules.iter().zip(rule_lines) {
                validate_rule(&table, chain, rule).map_err(|e| ParseError::new(*rule_line, e))?;
            }
        }
        Ok(table)
    }

    fn chain(&mut self) -> PResult<(Chain, Vec<usize>)> {
        let name = self.name("a chain name")?;
        self.expect(Tok::Open, "`{` after the chain name")?;
        let mut chain = Chain {
            name,
            base: None,
            rules: Vec::new(),
        };
        let mut lines = Vec::new();
        loop {
            self.skip_separators();
            match self.peek() {
                Some(Tok::Close) => {
                    self.pos += 1;
                    break;
                }
                None => return self.err("chain not closed by `}`"),
                Some(Tok::Word(w)) if w == "type" => {
                    if chain.base.is_some() || !chain.rules.is_empty() {
                        return self.err("`type` must come first in a chain, once");
                    }
                    self.pos += 1;
                    chain.base = Some(self.base_chain()?);
                }
                Some(Tok::Word(w)) if w == "policy" => {
                    return self.err("`policy` must follow `type ... priority ...;`");
                }
                Some(_) => {
                    lines.push(self.line());
                    let rule = self.rule()?;
                    chain.rules.push(rule);
                    self.end_of_statement()?;
                }
            }
        }
        Ok((chain, lines))
    }

    fn base_chain(&mut self) -> PResult<BaseChain> {
        let kind = match self.word("a chain type")?.as_str() {
            "filter" => ChainType::Filter,
            "nat" => ChainType::Nat,
            "route" => ChainType::Route,
            other => return self.err(format!("unknown chain type {other:?}")),
        };
        self.keyword("hook")?;
        let hook_word = self.word("a hook")?;
        let hook = Hook::ALL.into_iter().find(|h| h.as_str() == hook_word).ok_or_else(|| {
            ParseError::new(
                self.line(),
                format!("hook {hook_word:?} is not supported (prerouting, input, forward, output, postrouting)"),
            )
        })?;
        self.keyword("priority")?;
        let priority = self.priority(hook)?;
        self.end_of_statement()?;
        self.skip_separators();
        let mut policy = Policy::Accept;
        if matches!(self.peek(), Some(Tok::Word(w)) if w == "policy") {
            self.pos += 1;
            policy = match self.word("a policy")?.as_str() {
                "accept" => Policy::Accept,
                "drop" => Policy::Drop,
                other => return self.err(format!("invalid policy {other:?}")),
            };
            self.end_of_statement()?;
        }
        Ok(BaseChain {
            kind,
            hook,
            priority,
            policy,
        })
    }

    fn priority(&mut self, hook: Hook) -> PResult<i32> {
        let w = self.word("a priority")?;
        if let Some(v) = parse_int(&w) {
            return Ok(v);
        }
        let Some((_, base, only)) = STD_PRIORITIES.iter().find(|(name, _, _)| *name == w) else {
            return self.err(format!("invalid priority {w:?}"));
        };
        if only.is_some_and(|h| h != hook) {
            return self.err(format!(
                "priority {w} is not valid on hook {}",
                hook.as_str()
            ));
        }
        let mut value = i64::from(*base);
        if let Some(Tok::Word(sign)) = self.peek()
            && (sign == "+" || sign == "-")
        {
            let negative = sign == "-";
            self.pos += 1;
            let off = self.word("a priority offset")?;
            let off = parse_int(&off)
                .filter(|o| *o >= 0)
                .ok_or_else(|| ParseError::new(self.line(), format!("invalid offset {off:?}")))?;
            value += if negative {
                -i64::from(off)
            } else {
                i64::from(off)
            };
        }
        i32::try_from(value).or_else(|_| self.err("priority out of range"))
    }

    /// Tokens up to the end of the rule (newline, `;` or `}` outside braces).
    fn rule(&mut self) -> PResult<Rule> {
        let mut statements = Vec::new();
        let mut comment = None;
        loop {
            match self.peek() {
                None | Some(Tok::Newline | Tok::Semi | Tok::Close) => break,
                Some(_) => {}
            }
            if comment.is_some() {
                return self.err("`comment` must end the rule");
            }
            let w = self.word("a statement")?;
            match w.as_str() {
                "comment" => match self.next() {
                    Some(Tok::Str(s)) => {
                        check_string("comment", &s, 127).or_else(|e| self.err(e))?;
                        comment = Some(s);
                    }
                    _ => return self.err("comment needs a quoted string"),
                },
                _ => {
                    let s = self.statement(&w)?;
                    statements.push(s);
                }
            }
        }
        if statements.is_empty() {
            return self.err("a rule needs at least one statement");
        }
        Ok(Rule {
            statements,
            comment,
        })
    }

    fn op(&mut self) -> Op {
        match self.peek() {
            Some(Tok::Word(w)) if w == "!=" => {
                self.pos += 1;
                Op::Ne
            }
            Some(Tok::Word(w)) if w == "==" => {
                self.pos += 1;
                Op::Eq
            }
            _ => Op::Eq,
        }
    }

    /// One value or `{ a, b, ... }`, each read by `one`.
    fn set<T>(
        &mut self,
        what: &str,
        mut one: impl FnMut(&mut Parser, Tok) -> Result<T, String>,
    ) -> PResult<Vec<T>> {
        let mut items = Vec::new();
        if self.peek() == Some(&Tok::Open) {
            self.pos += 1;
            loop {
                self.skip_newlines();
                let t = self
                    .next()
                    .ok_or_else(|| ParseError::new(self.line(), "set not closed"))?;
                if t == Tok::Close && items.is_empty() {
                    return self.err("empty set");
                }
                let item = one(self, t).or_else(|e| self.err(e))?;
                items.push(item);
                self.skip_newlines();
                match self.next() {
                    Some(Tok::Comma) => continue,
                    Some(Tok::Close) => break,
                    _ => return self.err(format!("expected `,` or `}}` in a set of {what}")),
                }
            }
        } else {
            let t = self
                .next()
                .ok_or_else(|| ParseError::new(self.line(), format!("expected {what}")))?;
            items.push(one(self, t).or_else(|e| self.err(e))?);
        }
        Ok(items)
    }

    fn statement(&mut self, w: &str) -> PResult<Statement> {
        Ok(match w {
            "iifname" | "oifname" => {
                let op = self.op();
                let names = self.set("interface names", |_, t| match t {
                    Tok::Str(s) | Tok::Word(s) => IfName::new(s).map_err(|e| e.message),
                    other => Err(format!(
                        "expected an interface name, got {}",
                        describe(&other)
                    )),
                })?;
                let names = canonical_set(names, |n| n.clone());
                if w == "iifname" {
                    Statement::Iifname { op, names }
                } else {
                    Statement::Oifname { op, names }
                }
            }
            "ip" | "ip6" => {
                let version = if w == "ip" {
                    IpVersion::V4
                } else {
                    IpVersion::V6
                };
                let direction = match self.word("saddr or daddr")?.as_str() {
                    "saddr" => Direction::Source,
                    "daddr" => Direction::Destination,
                    other => {
                        return self.err(format!("`{w} {other}` is not supported (saddr, daddr)"));
                    }
                };
                let op = self.op();
                let nets = self.set("addresses", |_, t| match t {
                    Tok::Word(s) => parse_net(version, &s),
                    other => Err(format!("expected an address, got {}", describe(&other))),
                })?;
                let nets = canonical_set(nets, |n| (n.network(), n.prefix_len()));
                Statement::Addr {
                    version,
                    direction,
                    op,
                    nets,
                }
            }
            "meta" => {
                self.keyword("l4proto")?;
                let op = self.op();
                let protocols = self.set("protocols", |_, t| match t {
                    Tok::Word(s) => match Protocol::parse_nft(&s) {
                        Some(p) => Ok(p),
                        None => Err(format!("unknown protocol {s:?}")),
                    },
                    other => Err(format!("expected a protocol, got {}", describe(&other))),
                })?;
                Statement::L4proto {
                    op,
                    protocols: canonical_set(protocols, |p| p.0),
                }
            }
            "tcp" | "udp" => {
                let protocol = if w == "tcp" {
                    PortProtocol::Tcp
                } else {
                    PortProtocol::Udp
                };
                let direction = match self.word("sport or dport")?.as_str() {
                    "sport" => Direction::Source,
                    "dport" => Direction::Destination,
                    other => {
                        return self.err(format!("`{w} {other}` is not supported (sport, dport)"));
                    }
                };
                let op = self.op();
                let ports = self.set("ports", |_, t| match t {
                    Tok::Word(s) => parse_port_range(&s),
                    other => Err(format!("expected a port, got {}", describe(&other))),
                })?;
                Statement::Port {
                    protocol,
                    direction,
                    op,
                    ports: canonical_set(ports, |p| (p.first, p.last)),
                }
            }
            "ct" => {
                self.keyword("state")?;
                let op = self.op();
                let mut states = BTreeSet::new();
                let state = |s: &str| {
                    CtState::ALL
                        .into_iter()
                        .find(|c| c.as_str() == s)
                        .ok_or_else(|| format!("unknown ct state {s:?}"))
                };
                if self.peek() == Some(&Tok::Open) {
                    for s in self.set("ct states", |_, t| match t {
                        Tok::Word(s) => state(&s),
                        other => Err(format!("expected a ct state, got {}", describe(&other))),
                    })? {
                        states.insert(s);
                    }
                } else {
                    loop {
                        let s = self.word("a ct state")?;
                        states.insert(state(&s).or_else(|e| self.err(e))?);
                        if self.peek() == Some(&Tok::Comma) {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                }
                Statement::CtState { op, states }
            }
            "counter" => {
                if matches!(self.peek(), Some(Tok::Word(w)) if w == "packets") {
                    self.pos += 1;
                    let p = self.word("a packet count")?;
                    self.keyword("bytes")?;
                    let b = self.word("a byte count")?;
                    let (Some(p), Some(b)) = (parse_u64(&p), parse_u64(&b)) else {
                        return self.err("invalid counter values");
                    };
                    Statement::Counter(Some((p, b)))
                } else {
                    Statement::Counter(None)
                }
            }
            "log" => {
                let (mut prefix, mut level) = (None, None);
                loop {
                    match self.peek() {
                        Some(Tok::Word(w)) if w == "prefix" && prefix.is_none() => {
                            self.pos += 1;
                            match self.next() {
                                Some(Tok::Str(s)) => {
                                    check_string("log prefix", &s, 127).or_else(|e| self.err(e))?;
                                    prefix = Some(s);
                                }
                                _ => return self.err("log prefix needs a quoted string"),
                            }
                        }
                        Some(Tok::Word(w)) if w == "level" && level.is_none() => {
                            self.pos += 1;
                            let l = self.word("a log level")?;
                            let n = LOG_LEVELS.iter().position(|x| *x == l).ok_or_else(|| {
                                ParseError::new(self.line(), format!("unknown log level {l:?}"))
                            })?;
                            level = u8::try_from(n).ok();
                        }
                        _ => break,
                    }
                }
                Statement::Log {
                    prefix,
                    level: level.unwrap_or(4),
                }
            }
            "accept" => Statement::Accept,
            "drop" => Statement::Drop,
            "return" => Statement::Return,
            "jump" => Statement::Jump(self.name("a chain name")?),
            "goto" => Statement::Goto(self.name("a chain name")?),
            "reject" => {
                if matches!(self.peek(), Some(Tok::Word(w)) if w == "with") {
                    self.pos += 1;
                    let kind = self.word("icmpx, icmp, icmpv6 or tcp")?;
                    if kind == "tcp" {
                        self.keyword("reset")?;
                        Statement::Reject(Some(RejectWith::TcpReset))
                    } else {
                        if matches!(self.peek(), Some(Tok::Word(w)) if w == "type") {
                            self.pos += 1;
                        }
                        let code = self.word("a reject code")?;
                        let with = match kind.as_str() {
                            "icmpx" => IcmpxCode::from_name(&code).map(RejectWith::Icmpx),
                            "icmp" => IcmpCode::from_name(&code).map(RejectWith::Icmp),
                            "icmpv6" => Icmpv6Code::from_name(&code).map(RejectWith::Icmpv6),
                            _ => return self.err(format!("reject with {kind:?} is not supported")),
                        };
                        match with {
                            Some(w) => Statement::Reject(Some(w)),
                            None => {
                                return self.err(format!("unknown {kind} reject code {code:?}"));
                            }
                        }
                    }
                } else {
                    Statement::Reject(None)
                }
            }
            "snat" => {
                let mut version = None;
                let mut next = self.word("`to`")?;
                if next == "ip" || next == "ip6" {
                    version = Some(if next == "ip" {
                        IpVersion::V4
                    } else {
                        IpVersion::V6
                    });
                    next = self.word("`to`")?;
                }
                if next != "to" {
                    return self.err("expected `snat [ip|ip6] to ADDRESS`");
                }
                let addr = self.word("an address")?;
                let to = addr.parse::<IpAddr>().or_else(|_| {
                    self.err(format!(
                        "snat to {addr:?}: not an address (ports and ranges are not supported)"
                    ))
                })?;
                Statement::Snat { version, to }
            }
            "masquerade" => Statement::Masquerade,
            other => return self.err(format!("statement {other:?} is not supported")),
        })
    }
}

/// nft sorts anonymous set elements; duplicates collapse.
fn canonical_set<T, K: Ord>(mut items: Vec<T>, key: impl Fn(&T) -> K) -> Vec<T> {
    items.sort_by_key(|a| key(a));
    items.dedup_by(|a, b| key(a) == key(b));
    items
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::Word(w) => format!("{w:?}"),
        Tok::Str(s) => format!("string \"{s}\""),
        Tok::Open => "`{`".into(),
        Tok::Close => "`}`".into(),
        Tok::Semi => "`;`".into(),
        Tok::Comma => "`,`".into(),
        Tok::Newline => "end of line".into(),
        Tok::Header(_) => "comment".into(),
    }
}

fn parse_int(s: &str) -> Option<i32> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    if digits.is_empty() || digits.len() > 10 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse_net(version: IpVersion, s: &str) -> Result<IpNet, String> {
    let net = match s.parse::<IpNet>() {
        Ok(n) => n,
        Err(_) => IpNet::from(
            s.parse::<IpAddr>()
                .map_err(|_| format!("{s:?} is not an address or prefix"))?,
        ),
    };
    if IpVersion::of(&net.addr()) != version {
        return Err(format!("{s} is not an {} address", version.keyword()));
    }
    Ok(net.trunc())
}

fn parse_port_range(s: &str) -> Result<PortRange, String> {
    let port = |p: &str| -> Result<u16, String> {
        if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid port {s:?}"));
        }
        p.parse().map_err(|_| format!("invalid port {s:?}"))
    };
    let range = match s.split_once('-') {
        Some((a, b)) => PortRange {
            first: port(a)?,
            last: port(b)?,
        },
        None => PortRange::single(port(s)?),
    };
    if range.first > range.last {
        return Err(format!("port range {s} runs backwards"));
    }
    Ok(range)
}

impl Protocol {
    /// nft protocol names (`/etc/protocols`) or numbers.
    fn parse_nft(s: &str) -> Option<Protocol> {
        if let Some(n) = parse_u64(s) {
            return u8::try_from(n).ok().filter(|n| *n != 0).map(Protocol);
        }
        (1..=255u8).map(Protocol).find(|p| p.name() == Some(s))
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![Just(Op::Eq), Just(Op::Ne)]
    }

    fn nft_string(max: usize) -> impl Strategy<Value = String> {
        proptest::string::string_regex(&format!("[ !#-~é]{{0,{max}}}")).expect("regex")
    }

    fn ifname() -> impl Strategy<Value = IfName> {
        "[a-z][a-z0-9_.-]{0,9}\\*?".prop_map(|s| IfName::new(s).expect("interface"))
    }

    pub fn name() -> impl Strategy<Value = Name> {
        "[a-z]{1,4}_[a-z0-9_-]{0,8}".prop_map(|s| Name::new(s).expect("name"))
    }

    fn net(version: IpVersion) -> BoxedStrategy<IpNet> {
        match version {
            IpVersion::V4 => (any::<u32>(), 0u8..=32)
                .prop_map(|(a, p)| {
                    IpNet::new(IpAddr::V4(Ipv4Addr::from(a)), p)
                        .expect("len")
                        .trunc()
                })
                .boxed(),
            IpVersion::V6 => (any::<u128>(), 0u8..=128)
                .prop_map(|(a, p)| {
                    IpNet::new(IpAddr::V6(Ipv6Addr::from(a)), p)
                        .expect("len")
                        .trunc()
                })
                .boxed(),
        }
    }

    /// Sorted, deduplicated, then thinned so no two neighbours overlap or
    /// touch.
    fn disjoint<T: Clone, K: Ord + Copy>(
        items: Vec<T>,
        bounds: impl Fn(&T) -> (K, K),
        next: impl Fn(K) -> Option<K>,
    ) -> Vec<T> {
        let mut items = items;
        items.sort_by_key(|a| bounds(a));
        let mut out: Vec<T> = Vec::new();
        for item in items {
            let (first, _) = bounds(&item);
            if let Some(prev) = out.last() {
                let (_, last) = bounds(prev);
                if last >= first || next(last) == Some(first) {
                    continue;
                }
            }
            out.push(item);
        }
        out
    }

    /// Sorted, without names a wildcard of the set already covers.
    fn uncovered(names: Vec<IfName>) -> Vec<IfName> {
        let names = canonical_set(names, |n| n.clone());
        names
            .iter()
            .filter(|b| {
                !names.iter().any(|a| {
                    a != *b
                        && a.as_str()
                            .strip_suffix('*')
                            .is_some_and(|stem| b.as_str().starts_with(stem))
                })
            })
            .cloned()
            .collect()
    }

    fn statement_match(family: TableFamily, hook: Option<Hook>) -> BoxedStrategy<Statement> {
        let mut versions = vec![];
        if family != TableFamily::Ip6 {
            versions.push(IpVersion::V4);
        }
        if family != TableFamily::Ip {
            versions.push(IpVersion::V6);
        }
        let mut options: Vec<BoxedStrategy<Statement>> = vec![
            (proptest::sample::select(versions), any::<bool>(), op())
                .prop_flat_map(|(version, src, op)| {
                    vec(net(version), 1..4).prop_map(move |nets| Statement::Addr {
                        version,
                        direction: if src {
                            Direction::Source
                        } else {
                            Direction::Destination
                        },
                        op,
                        nets: disjoint(
                            nets,
                            |n| (n.network(), n.broadcast()),
                            |a| match a {
                                IpAddr::V4(v) => {
                                    u32::from(v).checked_add(1).map(|x| IpAddr::V4(x.into()))
                                }
                                IpAddr::V6(v) => {
                                    u128::from(v).checked_add(1).map(|x| IpAddr::V6(x.into()))
                                }
                            },
                        ),
                    })
                })
                .boxed(),
            (op(), proptest::collection::btree_set(1u8..=255, 1..4))
                .prop_map(|(op, ps)| Statement::L4proto {
                    op,
                    protocols: ps.into_iter().map(Protocol).collect(),
                })
                .boxed(),
            (
                any::<bool>(),
                any::<bool>(),
                op(),
                vec((any::<u16>(), 0u16..40, any::<bool>()), 1..5),
            )
                .prop_map(|(tcp, src, op, ports)| Statement::Port {
                    protocol: if tcp {
                        PortProtocol::Tcp
                    } else {
                        PortProtocol::Udp
                    },
                    direction: if src {
                        Direction::Source
                    } else {
                        Direction::Destination
                    },
                    op,
                    ports: disjoint(
                        ports
                            .into_iter()
                            .map(|(a, w, r)| PortRange {
                                first: a,
                                last: if r { a.saturating_add(w) } else { a },
                            })
                            .collect(),
                        |p| (p.first, p.last),
                        |p| p.checked_add(1),
                    ),
                })
                .boxed(),
            (
                op(),
                proptest::collection::btree_set(
                    proptest::sample::select(CtState::ALL.to_vec()),
                    1..4,
                ),
            )
                .prop_map(|(op, states)| Statement::CtState { op, states })
                .boxed(),
            proptest::option::of((any::<u64>(), any::<u64>()))
                .prop_map(Statement::Counter)
                .boxed(),
            (
                proptest::option::of(nft_string(20).prop_map(|p| p.replace('$', "S"))),
                0u8..=7,
            )
                .prop_map(|(prefix, level)| Statement::Log { prefix, level })
                .boxed(),
        ];
        if !matches!(hook, Some(Hook::Output | Hook::Postrouting)) {
            options.push(
                (op(), vec(ifname(), 1..3))
                    .prop_map(|(op, names)| Statement::Iifname {
                        op,
                        names: uncovered(names),
                    })
                    .boxed(),
            );
        }
        if !matches!(hook, Some(Hook::Prerouting | Hook::Input)) {
            options.push(
                (op(), vec(ifname(), 1..3))
                    .prop_map(|(op, names)| Statement::Oifname {
                        op,
                        names: uncovered(names),
                    })
                    .boxed(),
            );
        }
        proptest::strategy::Union::new(options).boxed()
    }

    fn terminal(
        family: TableFamily,
        base: Option<BaseChain>,
        jumpable: Vec<Name>,
    ) -> BoxedStrategy<Option<Statement>> {
        let mut options: Vec<BoxedStrategy<Option<Statement>>> = vec![
            Just(None).boxed(),
            Just(Some(Statement::Accept)).boxed(),
            Just(Some(Statement::Drop)).boxed(),
            Just(Some(Statement::Return)).boxed(),
        ];
        let filter_hook =
            base.is_none_or(|b| matches!(b.hook, Hook::Input | Hook::Forward | Hook::Output));
        if filter_hook {
            let mut rejects: Vec<Option<RejectWith>> = vec![None, Some(RejectWith::TcpReset)];
            if family == TableFamily::Inet {
                rejects.extend(
                    IcmpxCode::ALL
                        .iter()
                        .filter(|c| **c != IcmpxCode::PortUnreachable)
                        .map(|c| Some(RejectWith::Icmpx(*c))),
                );
            }
            if family != TableFamily::Ip6 {
                rejects.extend(
                    IcmpCode::ALL
                        .iter()
                        .filter(|c| {
                            !(family == TableFamily::Ip && **c == IcmpCode::PortUnreachable)
                        })
                        .map(|c| Some(RejectWith::Icmp(*c))),
                );
            }
            if family != TableFamily::Ip {
                rejects.extend(
                    Icmpv6Code::ALL
                        .iter()
                        .filter(|c| {
                            !(family == TableFamily::Ip6 && **c == Icmpv6Code::PortUnreachable)
                        })
                        .map(|c| Some(RejectWith::Icmpv6(*c))),
                );
            }
            options.push(
                proptest::sample::select(rejects)
                    .prop_map(|r| Some(Statement::Reject(r)))
                    .boxed(),
            );
        }
        let nat = base.is_none_or(|b| b.kind == ChainType::Nat);
        let hook = base.map(|b| b.hook);
        if nat && matches!(hook, None | Some(Hook::Postrouting | Hook::Input)) {
            let fam = family;
            options.push(
                prop_oneof![
                    any::<u32>().prop_map(|a| IpAddr::V4(Ipv4Addr::from(a))),
                    any::<u128>().prop_map(|a| IpAddr::V6(Ipv6Addr::from(a)))
                ]
                .prop_filter("family", move |a| IpVersion::of(a).allowed_in(fam))
                .prop_map(move |to| {
                    Some(Statement::Snat {
                        version: (fam == TableFamily::Inet).then(|| IpVersion::of(&to)),
                        to,
                    })
                })
                .boxed(),
            );
        }
        if nat && matches!(hook, None | Some(Hook::Postrouting)) {
            options.push(Just(Some(Statement::Masquerade)).boxed());
        }
        if !jumpable.is_empty() {
            options.push(
                (proptest::sample::select(jumpable), any::<bool>())
                    .prop_map(|(c, g)| {
                        Some(if g {
                            Statement::Goto(c)
                        } else {
                            Statement::Jump(c)
                        })
                    })
                    .boxed(),
            );
        }
        proptest::strategy::Union::new(options).boxed()
    }

    fn rule(
        family: TableFamily,
        base: Option<BaseChain>,
        jumpable: Vec<Name>,
    ) -> BoxedStrategy<Rule> {
        let hook = base.map(|b| b.hook);
        (
            vec(statement_match(family, hook), 0..4),
            terminal(family, base, jumpable),
            proptest::option::of(nft_string(30)),
        )
            .prop_filter_map(
                "non-empty, protocols consistent",
                move |(mut statements, term, comment)| {
                    statements.extend(term);
                    let rule = Rule {
                        statements,
                        comment,
                    };
                    (!rule.statements.is_empty() && check_protocol_context(family, &rule).is_ok())
                        .then_some(rule)
                },
            )
            .boxed()
    }

    fn base_chain(family: TableFamily) -> impl Strategy<Value = BaseChain> {
        let _ = family;
        (
            prop_oneof![
                Just(ChainType::Filter),
                Just(ChainType::Nat),
                Just(ChainType::Route)
            ],
            proptest::sample::select(Hook::ALL.to_vec()),
            prop_oneof![-400i32..400, any::<i32>(), Just(0), Just(100), Just(-100)],
            prop_oneof![Just(Policy::Accept), Just(Policy::Drop)],
        )
            .prop_map(|(kind, hook, priority, policy)| {
                let hook = match kind {
                    ChainType::Route => Hook::Output,
                    ChainType::Nat if hook == Hook::Forward => Hook::Postrouting,
                    _ => hook,
                };
                let priority = if kind == ChainType::Nat && priority <= -200 {
                    priority.saturating_add(400).max(-199)
                } else {
                    priority
                };
                BaseChain {
                    kind,
                    hook,
                    priority,
                    policy,
                }
            })
    }

    fn table() -> BoxedStrategy<Table> {
        (
            prop_oneof![
                Just(TableFamily::Ip),
                Just(TableFamily::Ip6),
                Just(TableFamily::Inet)
            ],
            name(),
            proptest::collection::btree_set(name(), 1..5),
        )
            .prop_flat_map(|(family, tname, chain_names)| {
                let names: Vec<Name> = chain_names.into_iter().collect();
                let n = names.len();
                (
                    Just(family),
                    Just(tname),
                    Just(names),
                    vec(proptest::option::of(base_chain(family)), n),
                )
            })
            .prop_flat_map(|(family, tname, names, bases)| {
                let chains: Vec<BoxedStrategy<Chain>> = names
                    .iter()
                    .enumerate()
                    .map(|(i, name)| {
                        let base = bases[i];
                        // Jumps only forward, to regular chains: no loops.
                        let jumpable: Vec<Name> = names
                            .iter()
                            .zip(&bases)
                            .skip(i + 1)
                            .filter(|(_, b)| b.is_none())
                            .map(|(n, _)| n.clone())
                            .collect();
                        let name = name.clone();
                        vec(rule(family, base, jumpable), 0..4)
                            .prop_map(move |rules| Chain {
                                name: name.clone(),
                                base,
                                rules,
                            })
                            .boxed()
                    })
                    .collect();
                (Just(family), Just(tname), chains).prop_map(|(family, name, chains)| Table {
                    family,
                    name,
                    chains,
                })
            })
            .boxed()
    }

    pub fn ruleset() -> impl Strategy<Value = Ruleset> {
        (
            vec("[!-~][ -~]{0,20}[!-~]", 0..3),
            any::<bool>(),
            vec(table(), 0..3),
        )
            .prop_map(|(header, flush, tables)| {
                let mut seen = BTreeSet::new();
                let tables = tables
                    .into_iter()
                    .filter(|t| seen.insert((t.family, t.name.clone())))
                    .collect();
                Ruleset {
                    header,
                    flush,
                    tables,
                }
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

    /// Node A's firewall of reference 001 as one nftables ruleset: the same
    /// policy as its iptables and ip6tables files (inet filter table, one
    /// NAT table per family).
    pub(crate) fn node_a() -> Ruleset {
        let new = || Statement::ct_state(&[CtState::New, CtState::Untracked]);
        let tcp = |p| Statement::dport(PortProtocol::Tcp, p);
        let input = vec![
            Rule::new(vec![
                Statement::ct_state(&[CtState::Established, CtState::Related]),
                Statement::Accept,
            ]),
            Rule::new(vec![Statement::iifname("lo").unwrap(), Statement::Accept]),
            Rule::new(vec![
                Statement::L4proto {
                    op: Op::Eq,
                    protocols: vec![Protocol::ICMP],
                },
                Statement::Accept,
            ]),
            Rule::new(vec![
                Statement::L4proto {
                    op: Op::Eq,
                    protocols: vec![Protocol::IPV6_ICMP],
                },
                Statement::Accept,
            ]),
            Rule::new(vec![tcp(22), new(), Statement::Accept]),
            Rule::new(vec![
                Statement::saddr(net("145.0.6.71/32")),
                tcp(41194),
                new(),
                Statement::Accept,
            ]),
            Rule::new(vec![
                Statement::saddr(net("2001:610:188:418:145:0:6:71/128")),
                tcp(41194),
                new(),
                Statement::Accept,
            ]),
            Rule::new(vec![
                Statement::dport(PortProtocol::Udp, 1194),
                new(),
                Statement::Accept,
            ]),
            Rule::new(vec![tcp(1194), new(), Statement::Accept]),
            Rule::new(vec![
                Statement::ct_state(&[CtState::Invalid]),
                Statement::Drop,
            ]),
            Rule::new(vec![
                Statement::Counter(None),
                Statement::Reject(Some(RejectWith::Icmpx(IcmpxCode::AdminProhibited))),
            ]),
        ];
        let forward = vec![
            Rule::new(vec![
                Statement::iifname("tun*").unwrap(),
                Statement::oifname("ens160").unwrap(),
                Statement::Accept,
            ]),
            Rule::new(vec![
                Statement::iifname("ens160").unwrap(),
                Statement::oifname("tun*").unwrap(),
                Statement::Accept,
            ]),
            Rule::new(vec![
                Statement::Counter(None),
                Statement::Reject(Some(RejectWith::Icmpx(IcmpxCode::AdminProhibited))),
            ]),
        ];
        let chain = |name: &str, base, rules| Chain {
            name: Name::new(name).unwrap(),
            base,
            rules,
        };
        let filter = Table {
            family: TableFamily::Inet,
            name: Name::new("filter").unwrap(),
            chains: vec![
                chain(
                    "input",
                    Some(BaseChain::filter(Hook::Input, Policy::Drop)),
                    input,
                ),
                chain(
                    "forward",
                    Some(BaseChain::filter(Hook::Forward, Policy::Drop)),
                    forward,
                ),
                chain(
                    "output",
                    Some(BaseChain::filter(Hook::Output, Policy::Accept)),
                    vec![],
                ),
            ],
        };
        let nat = |family, range: &str, to: &str| Table {
            family,
            name: Name::new("nat").unwrap(),
            chains: vec![chain(
                "postrouting",
                Some(BaseChain::srcnat()),
                vec![Rule::new(vec![
                    Statement::saddr(net(range)),
                    Statement::Snat {
                        version: None,
                        to: to.parse().unwrap(),
                    },
                ])],
            )],
        };
        Ruleset {
            header: vec!["Generated by vpnsim for node-a (scenario eduvpn-multinode)".into()],
            flush: true,
            tables: vec![
                filter,
                nat(TableFamily::Ip, "10.1.0.0/25", "145.0.6.72"),
                nat(
                    TableFamily::Ip6,
                    "fd00:1:1:1::/64",
                    "2001:610:188:418:145:0:6:72",
                ),
            ],
        }
    }

    #[test]
    fn node_a_snapshot() {
        let rs = node_a();
        rs.validate().unwrap();
        let text = rs.emit();
        insta::assert_snapshot!("node_a_nft", text);
        assert_eq!(Ruleset::parse(&text).unwrap(), rs);
    }

    #[test]
    fn reads_free_layout_and_listing_forms() {
        let text = "#!/usr/sbin/nft -f\n# header\nflush ruleset\ntable inet t {\n  chain c { type filter hook input priority filter + 5; policy drop; \
            ct state { new, untracked } counter packets 3 bytes 120 accept; tcp dport { 443, 80, 1000-2000 } accept\n\
            iifname tun0 log prefix \"in: \" level info drop comment \"x y\"\n reject with icmpx type admin-prohibited; };\
            chain d { type nat hook postrouting priority srcnat - 3\n ip saddr 10.0.0.5/24 snat ip to 1.2.3.4\n}\n}\n";
        let rs = Ruleset::parse(text).unwrap();
        assert_eq!(rs.header, vec!["!/usr/sbin/nft -f", "header"]);
        let c = &rs.tables[0].chains[0];
        assert_eq!(c.base.unwrap().priority, 5);
        assert_eq!(c.rules.len(), 4);
        assert_eq!(c.rules[0].statements[1], Statement::Counter(Some((3, 120))));
        assert_eq!(c.rules[2].comment.as_deref(), Some("x y"));
        let d = &rs.tables[0].chains[1];
        assert_eq!(d.base.unwrap().priority, 97);
        assert_eq!(
            rs.emit(),
            "# !/usr/sbin/nft -f\n# header\nflush ruleset\n\ntable inet t {\n\tchain c {\n\t\ttype filter hook input priority filter + 5; policy drop;\n\
             \t\tct state new,untracked counter packets 3 bytes 120 accept\n\t\ttcp dport { 80, 443, 1000-2000 } accept\n\
             \t\tiifname \"tun0\" log prefix \"in: \" level info drop comment \"x y\"\n\t\treject with icmpx admin-prohibited\n\t}\n\n\
             \tchain d {\n\t\ttype nat hook postrouting priority srcnat - 3; policy accept;\n\t\tip saddr 10.0.0.0/24 snat ip to 1.2.3.4\n\t}\n}\n"
        );
    }

    #[test]
    fn priorities_are_named_as_nft_lists_them() {
        assert_eq!(priority_text(Hook::Input, 5), "filter + 5");
        assert_eq!(priority_text(Hook::Forward, -160), "mangle - 10");
        assert_eq!(priority_text(Hook::Forward, 11), "11");
        assert_eq!(priority_text(Hook::Output, -100), "-100");
        assert_eq!(priority_text(Hook::Prerouting, -100), "dstnat");
        assert_eq!(priority_text(Hook::Postrouting, 105), "srcnat + 5");
    }

    #[test]
    fn rejects_what_nft_rejects_or_rewrites() {
        let cases: &[(&str, usize, &str)] = &[
            (
                "table ip x {\n chain a { reject with icmpx admin-prohibited; }\n}\n",
                2,
                "icmpx",
            ),
            (
                "table inet x {\n chain a { type nat hook postrouting priority srcnat; snat to 1.2.3.4; }\n}\n",
                2,
                "ip` or `ip6",
            ),
            ("table inet tcp {\n}\n", 1, "keyword"),
            (
                "table inet x {\n chain a { jump b; }\n chain b { jump a; }\n}\n",
                1,
                "loop",
            ),
            (
                "table inet x {\n chain a { tcp dport { 22-25, 26 } accept; }\n}\n",
                2,
                "adjacent",
            ),
            ("table inet x {\n chain a { accept drop; }\n}\n", 2, "last"),
            ("table inet x {\n chain a { accept }\n}\n", 2, "newline"),
            ("table inet x {\n chain a { accept; } }\n", 2, "newline"),
            (
                "table inet x {\n chain a { type nat hook forward priority 0; }\n}\n",
                2,
                "no hook",
            ),
            (
                "table inet x {\n chain a { type filter hook output priority dstnat; }\n}\n",
                2,
                "not valid",
            ),
            (
                "table inet x {\n chain a { ip protocol tcp accept; }\n}\n",
                2,
                "not supported",
            ),
            (
                "table inet x {\n chain a { log prefix \"unterminated }\n}\n",
                2,
                "unterminated",
            ),
            ("table inet x {\n chain a { accept\n", 2, "not closed"),
            (
                "table ip6 x {\n chain a { ip saddr 1.2.3.4 accept; }\n}\n",
                2,
                "ip addresses",
            ),
        ];
        for (text, line, needle) in cases {
            let err = Ruleset::parse(text).unwrap_err();
            assert!(err.message.contains(needle), "{text:?}: {err}");
            assert_eq!(err.line, *line, "{text:?}: {err}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        #[test]
        fn round_trip(rs in ruleset()) {
            rs.validate().map_err(|e| TestCaseError::fail(format!("{e}")))?;
            let text = rs.emit();
            let back = Ruleset::parse(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
            prop_assert_eq!(back, rs);
        }

        #[test]
        fn parse_never_panics(text in "\\PC*") {
            let _ = Ruleset::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_mutations(text in ruleset().prop_flat_map(|rs| crate::iptables::strategies::mutated(rs.emit()))) {
            if let Ok(rs) = Ruleset::parse(&text) {
                rs.validate().map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
                prop_assert_eq!(Ruleset::parse(&rs.emit()).unwrap(), rs);
            }
        }
    }
}

//! Libreswan (and its ancestor OpenSwan) configuration: the main
//! `ipsec.conf` ([`IpsecConf`]), a conn file `ipsec.d/<name>.conf`
//! ([`ConnFile`]) and a secrets file `ipsec.secrets` /
//! `ipsec.d/<name>.secrets` ([`Secrets`]).
//!
//! # `ipsec.conf` and conn files
//!
//! Line-based, as Libreswan's own parser reads it (checked against
//! `ipsec addconn --checkconfig` and `ipsec readwriteconf` of Libreswan 4.10):
//! - sections start in column 0: `config setup`, `conn NAME` (the name may be
//!   quoted); `include PATH` and `version 2.0` are column-0 lines too; a
//!   trailing `# comment` may follow these;
//! - parameters are indented `key=value` lines (spaces or tabs, whitespace
//!   around `=` allowed); keys are case-insensitive;
//! - a value is one bare word, a `"quoted string"` or a `{braced list}`;
//!   nothing may follow it on the line, not even a comment (Libreswan 4.10
//!   reports a syntax error there); an empty value (`leftid=`) means unset;
//! - lines whose first non-blank character is `#` are comments; CRLF ends
//!   are accepted.
//!
//! Parse rejects, with the line: an unindented parameter, an indented line
//! outside a section, a key given twice in a section (Libreswan refuses such
//! a conn), two `config setup` sections or two conns of one name, an unknown
//! keyword for an enumerated key (`type=`, `auto=`, `authby=`,
//! `dpdaction=`, ...), a traffic selector that is not an IP prefix (or has
//! host bits set), text after a value. Deliberately narrower than Libreswan:
//! `vhost:`/`vnet:` subnets, `leftsubnet` lists, hostnames with odd
//! characters, and quotes inside bare values are refused.
//!
//! Known keys are typed fields ([`Conn`], [`Side`], [`ConfigSetup`]); every
//! other key is kept verbatim, in order, in `extra`. OpenSwan's
//! `nat_traversal=` and `oe=` are read (reference files use them) but
//! Libreswan 4.10 rejects both: see [`ConfigSetup::openswan_only_keys`].
//! Libreswan ≥ 4 also refuses IKEv1 conns (`ikev2=no`) unless `config
//! setup` says `ikev1-policy=accept`.
//!
//! Comment lines before the first section are the file's `header`; other
//! comments are dropped on parse. Emit writes 4-space indents and a blank
//! line between sections.
//!
//! # Secrets
//!
//! One record per entry: `ID ID : PSK "secret"` (IDs are IP addresses,
//! `@fqdn`, `%any`, `%any6` or a quoted distinguished name; the `:` may touch
//! the last ID), `include PATH`, and other key types (`: RSA {...}`,
//! `: XAUTH ...`) kept verbatim as [`RawRecord`]. A record starts in column 0
//! and continues on indented lines; `#` starts a comment outside quotes. A
//! PSK is a quoted string or a `0x` (hex), `0s` (base64) or `0t` (text)
//! word. [`Psk`] and [`RawRecord`] never print their content in `Debug`.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::format::{Format, ParseError};
use crate::wgquick::{Comment, Hostname, InvalidValue};

// ---------------------------------------------------------------------------
// Leaf values
// ---------------------------------------------------------------------------

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// The value of a `key=value` line: any text without `"` or control
/// characters (so it fits on one line inside quotes). May be empty. Emitted
/// bare when it is one word, quoted otherwise.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Value(String);

impl Value {
    pub fn new(text: impl Into<String>) -> Result<Value, InvalidValue> {
        let text = text.into();
        if has_control(&text) {
            return Err(InvalidValue::new(
                "value",
                &text,
                "contains a control character",
            ));
        }
        if text.contains('"') {
            return Err(InvalidValue::new("value", &text, "contains a double quote"));
        }
        Ok(Value(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn emitted(&self) -> String {
        let s = &self.0;
        if s.is_empty() {
            String::new()
        } else if s.chars().any(char::is_whitespace) || s.starts_with(['{', '#']) {
            format!("\"{s}\"")
        } else {
            s.clone()
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A non-empty [`Value`] (an empty value means "unset" to Libreswan).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(Value);

impl Text {
    pub fn new(text: impl Into<String>) -> Result<Text, InvalidValue> {
        let value = Value::new(text)?;
        if value.0.is_empty() {
            return Err(InvalidValue::new("value", "", "must not be empty"));
        }
        Ok(Text(value))
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One bare word: non-empty, no whitespace, quotes or control characters,
/// not starting with `#` or `{`. Used for algorithm lists (`ike=`, `esp=`),
/// include paths and the version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Token(String);

impl Token {
    pub fn new(text: impl Into<String>) -> Result<Token, InvalidValue> {
        let text = text.into();
        let bad = |reason| Err(InvalidValue::new("word", &text, reason));
        if text.is_empty() {
            return bad("must not be empty");
        }
        if text
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || c == '"' || c == '\'')
        {
            return bad("must not contain whitespace, quotes or control characters");
        }
        if text.starts_with(['#', '{']) {
            return bad("must not start with '#' or '{'");
        }
        Ok(Token(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A conn name: printable ASCII without whitespace and without
/// `" ' # = { }`; `%default` is the defaults section.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnName(String);

impl ConnName {
    pub fn new(name: impl Into<String>) -> Result<ConnName, InvalidValue> {
        InvalidValue::check_chars(
            "conn name",
            name.into(),
            (200, "must be 1 to 200 characters"),
            (
                |c| c.is_ascii_graphic() && !"\"'#={}".contains(c),
                "only printable ASCII without whitespace or \" ' # = { }",
            ),
        )
        .map(ConnName)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The key of a parameter this module has no typed field for: ASCII
/// letters, digits, `_`, `-` and `.`, starting with a letter or digit, and
/// not one of the typed keys (which have their own fields).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Key(String);

impl Key {
    pub fn new(key: impl Into<String>) -> Result<Key, InvalidValue> {
        let key = key.into();
        if key.is_empty() || key.len() > 64 {
            return Err(InvalidValue::new("key", &key, "must be 1 to 64 characters"));
        }
        if !key.starts_with(|c: char| c.is_ascii_alphanumeric())
            || !key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
        {
            return Err(InvalidValue::new(
                "key",
                &key,
                "only ASCII letters, digits, '_', '-' and '.'",
            ));
        }
        let lower = key.to_ascii_lowercase();
        if is_typed_conn_key(&lower) || SETUP_KEYS.contains(&lower.as_str()) {
            return Err(InvalidValue::new("key", &key, "has a typed field"));
        }
        if ["conn", "config", "include", "version"].contains(&lower.as_str()) {
            return Err(InvalidValue::new("key", &key, "is a section keyword"));
        }
        Ok(Key(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A `key=value` line kept verbatim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Param {
    pub key: Key,
    pub value: Value,
}

impl Param {
    pub fn new(key: &str, value: &str) -> Result<Param, InvalidValue> {
        Ok(Param {
            key: Key::new(key)?,
            value: Value::new(value)?,
        })
    }
}

macro_rules! keywords {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The keyword as written in the file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }

            /// Reads a keyword, ASCII case-insensitively.
            pub fn from_keyword(text: &str) -> Option<$name> {
                let lower = text.to_ascii_lowercase();
                $name::ALL.iter().copied().find(|k| k.as_str() == lower)
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
    /// `type=`: what the conn does with matching traffic.
    ConnType { Tunnel = "tunnel", Transport = "transport", Passthrough = "passthrough", Drop = "drop", Reject = "reject" }
}

keywords! {
    /// `authby=`: how the peers authenticate (Libreswan 4.10's values).
    AuthBy {
        /// Pre-shared key.
        Secret = "secret",
        RsaSig = "rsasig",
        Ecdsa = "ecdsa",
        RsaSha2 = "rsa-sha2",
        RsaSha2_256 = "rsa-sha2_256",
        RsaSha2_384 = "rsa-sha2_384",
        RsaSha2_512 = "rsa-sha2_512",
        Null = "null",
        Never = "never",
    }
}

keywords! {
    /// `auto=`: what pluto does with the conn when it starts.
    Auto { Ignore = "ignore", Add = "add", Ondemand = "ondemand", Route = "route", Start = "start", Up = "up", Keep = "keep" }
}

keywords! {
    /// `dpdaction=`: what happens when the peer is declared dead.
    DpdAction { Hold = "hold", Clear = "clear", Restart = "restart", RestartByPeer = "restart_by_peer" }
}

keywords! {
    /// `ikev2=`: `no` means IKEv1 (and needs `ikev1-policy=accept`).
    Ikev2 { Yes = "yes", No = "no", Insist = "insist", Permit = "permit", Propose = "propose", Never = "never" }
}

keywords! {
    /// `keyexchange=`: Libreswan 4.10 takes only `ike`; `ikev1`/`ikev2` are
    /// Libreswan 5's spelling of `ikev2=no`/`yes`.
    KeyExchange { Ike = "ike", Ikev1 = "ikev1", Ikev2 = "ikev2" }
}

keywords! {
    /// `phase2=`.
    Phase2 { Esp = "esp", Ah = "ah" }
}

keywords! {
    /// `protostack=` (`netkey` and `xfrm` both mean the Linux XFRM stack).
    Protostack { Netkey = "netkey", Xfrm = "xfrm", Klips = "klips", Mast = "mast", None = "none" }
}

keywords! {
    /// `ikev1-policy=` (Libreswan ≥ 4): whether IKEv1 conns are allowed.
    Ikev1Policy { Accept = "accept", Reject = "reject", Drop = "drop" }
}

/// The address of one end (`left=`, `right=`) or a next hop.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Endpoint {
    Ip(IpAddr),
    /// A DNS name, resolved by pluto.
    Name(Hostname),
    /// `%defaultroute`: the address of the default-route interface.
    DefaultRoute,
    /// `%any`: any address (road warriors).
    Any,
    /// `%direct` (next hop only): the peer is on-link.
    Direct,
    /// `%opportunistic`.
    Opportunistic,
    /// `%opportunisticgroup`.
    OpportunisticGroup,
    /// `%group`.
    Group,
}

impl Endpoint {
    const SPECIAL: [(&'static str, Endpoint); 6] = [
        ("%defaultroute", Endpoint::DefaultRoute),
        ("%any", Endpoint::Any),
        ("%direct", Endpoint::Direct),
        ("%opportunistic", Endpoint::Opportunistic),
        ("%opportunisticgroup", Endpoint::OpportunisticGroup),
        ("%group", Endpoint::Group),
    ];

    pub fn parse(text: &str) -> Result<Endpoint, InvalidValue> {
        if let Some((_, e)) = Endpoint::SPECIAL
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(text))
        {
            return Ok(e.clone());
        }
        if let Ok(ip) = text.parse::<IpAddr>() {
            return Ok(Endpoint::Ip(ip));
        }
        if text.starts_with('%') {
            return Err(InvalidValue::new("endpoint", text, "unknown %keyword"));
        }
        Hostname::new(text).map(Endpoint::Name)
    }

    /// The address, when given as one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Endpoint::Ip(ip) => Some(*ip),
            _ => None,
        }
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Ip(ip) => write!(f, "{ip}"),
            Endpoint::Name(name) => write!(f, "{name}"),
            other => {
                let text = Endpoint::SPECIAL
                    .iter()
                    .find(|(_, e)| e == other)
                    .map_or("%any", |(k, _)| k);
                f.write_str(text)
            }
        }
    }
}

/// One `virtual_private=` entry: `%v4:10.0.0.0/8` or, excluded,
/// `%v4:!10.1.0.0/16` (`%v6:` for IPv6 prefixes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VirtualPrivate {
    pub exclude: bool,
    pub net: IpNet,
}

impl fmt::Display for VirtualPrivate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let family = if self.net.addr().is_ipv4() {
            "%v4:"
        } else {
            "%v6:"
        };
        let bang = if self.exclude { "!" } else { "" };
        write!(f, "{family}{bang}{}", self.net)
    }
}

// ---------------------------------------------------------------------------
// Sections
// ---------------------------------------------------------------------------

/// The parameters of one end of a conn (`left*` or `right*`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Side {
    /// `left=`: the public address.
    pub host: Option<Endpoint>,
    /// `leftid=`: the IKE identity (`@fqdn`, an address, a DN, `%fromcert`).
    pub id: Option<Text>,
    /// `leftnexthop=`.
    pub nexthop: Option<Endpoint>,
    /// `leftsubnet=`: the traffic selector.
    pub subnet: Option<IpNet>,
    /// `leftsubnets={a b}`: several traffic selectors (empty: unset).
    pub subnets: Vec<IpNet>,
    /// `leftsourceip=`.
    pub sourceip: Option<IpAddr>,
    /// `leftcert=` (an NSS nickname).
    pub cert: Option<Text>,
    /// `leftrsasigkey=` (`%cert`, `0s...`).
    pub rsasigkey: Option<Text>,
    /// `leftupdown=`.
    pub updown: Option<Text>,
}

impl Side {
    /// Every traffic selector of this end: `subnet` then `subnets`.
    pub fn selectors(&self) -> Vec<IpNet> {
        self.subnet.iter().chain(&self.subnets).copied().collect()
    }
}

/// One `conn NAME` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conn {
    pub name: ConnName,
    /// `also=`: conns whose parameters this one includes (one line each).
    pub also: Vec<ConnName>,
    /// `type=`.
    pub conn_type: Option<ConnType>,
    pub authby: Option<AuthBy>,
    pub left: Side,
    pub right: Side,
    pub pfs: Option<bool>,
    pub auto: Option<Auto>,
    pub keyexchange: Option<KeyExchange>,
    pub ikev2: Option<Ikev2>,
    /// `ike=`: IKE proposals, e.g. `aes256-sha2_256;modp2048`.
    pub ike: Option<Token>,
    /// `esp=`: ESP proposals.
    pub esp: Option<Token>,
    pub phase2: Option<Phase2>,
    /// `phase2alg=`: the child SA proposals (alias of `esp=`).
    pub phase2alg: Option<Token>,
    /// `ikelifetime=`, seconds.
    pub ikelifetime: Option<u32>,
    /// `salifetime=` (also read as its aliases `lifetime=` and `keylife=`),
    /// seconds.
    pub salifetime: Option<u32>,
    /// `rekey=`: whether pluto renegotiates the SAs before they expire.
    pub rekey: Option<bool>,
    /// `rekeymargin=`, seconds: how long before expiry rekeying starts.
    pub rekeymargin: Option<u32>,
    /// `rekeyfuzz=N%`: the most by which `rekeymargin` is randomly
    /// increased (may exceed 100).
    pub rekeyfuzz: Option<u32>,
    /// `dpddelay=`, seconds.
    pub dpddelay: Option<u32>,
    /// `dpdtimeout=`, seconds.
    pub dpdtimeout: Option<u32>,
    pub dpdaction: Option<DpdAction>,
    /// Every other parameter, verbatim and in order.
    pub extra: Vec<Param>,
}

impl Conn {
    /// A conn with only a name.
    pub fn new(name: ConnName) -> Conn {
        Conn {
            name,
            also: Vec::new(),
            conn_type: None,
            authby: None,
            left: Side::default(),
            right: Side::default(),
            pfs: None,
            auto: None,
            keyexchange: None,
            ikev2: None,
            ike: None,
            esp: None,
            phase2: None,
            phase2alg: None,
            ikelifetime: None,
            salifetime: None,
            rekey: None,
            rekeymargin: None,
            rekeyfuzz: None,
            dpddelay: None,
            dpdtimeout: None,
            dpdaction: None,
            extra: Vec::new(),
        }
    }

    /// Whether this conn negotiates IKEv1 (`ikev2=no`/`never` or
    /// `keyexchange=ikev1`).
    pub fn is_ikev1(&self) -> bool {
        matches!(self.ikev2, Some(Ikev2::No | Ikev2::Never))
            || self.keyexchange == Some(KeyExchange::Ikev1)
    }

    /// The extra parameter with this key (ASCII case-insensitive).
    pub fn extra(&self, key: &str) -> Option<&Value> {
        self.extra
            .iter()
            .find(|p| p.key.0.eq_ignore_ascii_case(key))
            .map(|p| &p.value)
    }
}

/// The `config setup` section.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConfigSetup {
    pub protostack: Option<Protostack>,
    /// OpenSwan only: Libreswan 4.10 rejects the key (NAT-T is always on).
    pub nat_traversal: Option<bool>,
    /// OpenSwan only: Libreswan 4.10 rejects the key.
    pub oe: Option<bool>,
    /// `virtual_private=` (`Some(vec![])` for an empty `virtual_private=`).
    pub virtual_private: Option<Vec<VirtualPrivate>>,
    pub plutodebug: Option<Text>,
    pub uniqueids: Option<bool>,
    pub logfile: Option<Text>,
    /// `ikev1-policy=`: Libreswan 4 drops IKEv1 unless this is `accept`.
    pub ikev1_policy: Option<Ikev1Policy>,
    pub nhelpers: Option<u32>,
    /// Every other parameter, verbatim and in order.
    pub extra: Vec<Param>,
}

impl ConfigSetup {
    /// The OpenSwan keys present that Libreswan 4.10 refuses with a syntax
    /// error (`nat_traversal`, `oe`).
    pub fn openswan_only_keys(&self) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.nat_traversal.is_some() {
            keys.push("nat_traversal");
        }
        if self.oe.is_some() {
            keys.push("oe");
        }
        keys
    }
}

/// A whole `ipsec.conf`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpsecConf {
    /// Comment lines at the top.
    pub header: Vec<Comment>,
    /// `version 2.0`.
    pub version: Option<Token>,
    pub setup: Option<ConfigSetup>,
    /// Inline conns (emitted after `config setup`).
    pub conns: Vec<Conn>,
    /// `include` lines (emitted last), e.g. `/etc/ipsec.d/*.conf`.
    pub includes: Vec<Token>,
}

impl IpsecConf {
    pub fn conn(&self, name: &str) -> Option<&Conn> {
        self.conns.iter().find(|c| c.name.as_str() == name)
    }

    /// Checks what the types cannot: unique conn names and unique extra
    /// keys per section. Every parsed value passes; for values that pass,
    /// `parse(emit(x)) == Ok(x)`.
    pub fn validate(&self) -> Result<(), String> {
        validate_conns(&self.conns)?;
        if let Some(setup) = &self.setup {
            validate_extra("config setup", &setup.extra)?;
        }
        Ok(())
    }
}

/// A conn file (`ipsec.d/<name>.conf`): conn sections only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConnFile {
    /// Comment lines at the top.
    pub header: Vec<Comment>,
    pub conns: Vec<Conn>,
}

impl ConnFile {
    pub fn conn(&self, name: &str) -> Option<&Conn> {
        self.conns.iter().find(|c| c.name.as_str() == name)
    }

    /// As [`IpsecConf::validate`].
    pub fn validate(&self) -> Result<(), String> {
        validate_conns(&self.conns)
    }
}

fn validate_extra(section: &str, extra: &[Param]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for p in extra {
        if !seen.insert(p.key.0.to_ascii_lowercase()) {
            return Err(format!("{section}: key {} given twice", p.key.0));
        }
    }
    Ok(())
}

fn validate_conns(conns: &[Conn]) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for c in conns {
        if !seen.insert(c.name.as_str()) {
            return Err(format!("two conns named {}", c.name));
        }
        validate_extra(&format!("conn {}", c.name), &c.extra)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Typed keys
// ---------------------------------------------------------------------------

const CONN_KEYS: &[&str] = &[
    "also",
    "type",
    "authby",
    "pfs",
    "auto",
    "keyexchange",
    "ikev2",
    "ike",
    "esp",
    "phase2",
    "phase2alg",
    "ikelifetime",
    "salifetime",
    "lifetime",
    "keylife",
    "rekey",
    "rekeymargin",
    "rekeyfuzz",
    "dpddelay",
    "dpdtimeout",
    "dpdaction",
];

const SIDE_SUFFIXES: &[&str] = &[
    "",
    "id",
    "nexthop",
    "subnet",
    "subnets",
    "sourceip",
    "cert",
    "rsasigkey",
    "updown",
];

const SETUP_KEYS: &[&str] = &[
    "protostack",
    "nat_traversal",
    "oe",
    "virtual_private",
    "plutodebug",
    "uniqueids",
    "logfile",
    "ikev1-policy",
    "nhelpers",
];

/// Splits `leftsubnet` into (left, "subnet") for the typed side keys.
fn side_key(lower: &str) -> Option<(bool, &str)> {
    let (left, suffix) = if let Some(s) = lower.strip_prefix("left") {
        (true, s)
    } else if let Some(s) = lower.strip_prefix("right") {
        (false, s)
    } else {
        return None;
    };
    SIDE_SUFFIXES.contains(&suffix).then_some((left, suffix))
}

fn is_typed_conn_key(lower: &str) -> bool {
    CONN_KEYS.contains(&lower) || side_key(lower).is_some()
}

// ---------------------------------------------------------------------------
// Emit
// ---------------------------------------------------------------------------

fn yes_no(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

struct Lines(String);

impl Lines {
    fn line(&mut self, s: &str) {
        self.0.push_str(s);
        self.0.push('\n');
    }

    fn param(&mut self, key: &str, value: &str) {
        self.0.push_str("    ");
        self.0.push_str(key);
        self.0.push('=');
        self.0.push_str(value);
        self.0.push('\n');
    }

    fn header(&mut self, header: &[Comment]) {
        for c in header {
            self.line(&c.to_line('#'));
        }
    }

    /// A blank line between blocks (not at the start of the file).
    fn gap(&mut self) {
        if !self.0.is_empty() {
            self.0.push('\n');
        }
    }
}

fn join_nets(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn emit_side(out: &mut Lines, prefix: &str, side: &Side) {
    let key = |suffix: &str| format!("{prefix}{suffix}");
    if let Some(host) = &side.host {
        out.param(&key(""), &host.to_string());
    }
    if let Some(id) = &side.id {
        out.param(&key("id"), &id.0.emitted());
    }
    if let Some(hop) = &side.nexthop {
        out.param(&key("nexthop"), &hop.to_string());
    }
    if let Some(net) = &side.subnet {
        out.param(&key("subnet"), &net.to_string());
    }
    if !side.subnets.is_empty() {
        out.param(
            &key("subnets"),
            &format!("{{{}}}", join_nets(&side.subnets)),
        );
    }
    if let Some(ip) = &side.sourceip {
        out.param(&key("sourceip"), &ip.to_string());
    }
    for (suffix, text) in [
        ("cert", &side.cert),
        ("rsasigkey", &side.rsasigkey),
        ("updown", &side.updown),
    ] {
        if let Some(text) = text {
            out.param(&key(suffix), &text.0.emitted());
        }
    }
}

fn emit_conn(out: &mut Lines, conn: &Conn) {
    out.gap();
    out.line(&format!("conn {}", conn.name));
    for also in &conn.also {
        out.param("also", also.as_str());
    }
    if let Some(t) = conn.conn_type {
        out.param("type", t.as_str());
    }
    if let Some(a) = conn.authby {
        out.param("authby", a.as_str());
    }
    emit_side(out, "left", &conn.left);
    emit_side(out, "right", &conn.right);
    if let Some(pfs) = conn.pfs {
        out.param("pfs", yes_no(pfs));
    }
    if let Some(a) = conn.auto {
        out.param("auto", a.as_str());
    }
    if let Some(k) = conn.keyexchange {
        out.param("keyexchange", k.as_str());
    }
    if let Some(v) = conn.ikev2 {
        out.param("ikev2", v.as_str());
    }
    if let Some(ike) = &conn.ike {
        out.param("ike", ike.as_str());
    }
    if let Some(esp) = &conn.esp {
        out.param("esp", esp.as_str());
    }
    if let Some(p) = conn.phase2 {
        out.param("phase2", p.as_str());
    }
    if let Some(alg) = &conn.phase2alg {
        out.param("phase2alg", alg.as_str());
    }
    if let Some(rekey) = conn.rekey {
        out.param("rekey", yes_no(rekey));
    }
    for (key, secs) in [
        ("ikelifetime", conn.ikelifetime),
        ("salifetime", conn.salifetime),
        ("rekeymargin", conn.rekeymargin),
        ("dpddelay", conn.dpddelay),
        ("dpdtimeout", conn.dpdtimeout),
    ] {
        if let Some(secs) = secs {
            out.param(key, &secs.to_string());
        }
    }
    if let Some(fuzz) = conn.rekeyfuzz {
        out.param("rekeyfuzz", &format!("{fuzz}%"));
    }
    if let Some(a) = conn.dpdaction {
        out.param("dpdaction", a.as_str());
    }
    for p in &conn.extra {
        out.param(p.key.as_str(), &p.value.emitted());
    }
}

fn emit_setup(out: &mut Lines, setup: &ConfigSetup) {
    out.gap();
    out.line("config setup");
    if let Some(p) = setup.protostack {
        out.param("protostack", p.as_str());
    }
    if let Some(b) = setup.nat_traversal {
        out.param("nat_traversal", yes_no(b));
    }
    if let Some(b) = setup.oe {
        out.param("oe", yes_no(b));
    }
    if let Some(vp) = &setup.virtual_private {
        let list = vp
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        out.param("virtual_private", &list);
    }
    if let Some(t) = &setup.plutodebug {
        out.param("plutodebug", &t.0.emitted());
    }
    if let Some(b) = setup.uniqueids {
        out.param("uniqueids", yes_no(b));
    }
    if let Some(t) = &setup.logfile {
        out.param("logfile", &t.0.emitted());
    }
    if let Some(p) = setup.ikev1_policy {
        out.param("ikev1-policy", p.as_str());
    }
    if let Some(n) = setup.nhelpers {
        out.param("nhelpers", &n.to_string());
    }
    for p in &setup.extra {
        out.param(p.key.as_str(), &p.value.emitted());
    }
}

impl Format for IpsecConf {
    fn emit(&self) -> String {
        let mut out = Lines(String::new());
        out.header(&self.header);
        if let Some(v) = &self.version {
            out.gap();
            out.line(&format!("version {v}"));
        }
        if let Some(setup) = &self.setup {
            emit_setup(&mut out, setup);
        }
        for conn in &self.conns {
            emit_conn(&mut out, conn);
        }
        if !self.includes.is_empty() {
            out.gap();
            for inc in &self.includes {
                out.line(&format!("include {inc}"));
            }
        }
        out.0
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let doc = parse_document(text)?;
        Ok(IpsecConf {
            header: doc.header,
            version: doc.version,
            setup: doc.setup,
            conns: doc.conns,
            includes: doc.includes,
        })
    }
}

impl Format for ConnFile {
    fn emit(&self) -> String {
        let mut out = Lines(String::new());
        out.header(&self.header);
        for conn in &self.conns {
            emit_conn(&mut out, conn);
        }
        out.0
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let doc = parse_document(text)?;
        if let Some(line) = doc.non_conn_line {
            return Err(ParseError::new(
                line,
                "a conn file holds only `conn` sections (no config setup, include or version)",
            ));
        }
        Ok(ConnFile {
            header: doc.header,
            conns: doc.conns,
        })
    }
}

// ---------------------------------------------------------------------------
// Parse: ipsec.conf and conn files
// ---------------------------------------------------------------------------

#[derive(Default)]
struct Document {
    header: Vec<Comment>,
    version: Option<Token>,
    setup: Option<ConfigSetup>,
    conns: Vec<Conn>,
    includes: Vec<Token>,
    /// The first line that is not part of a conn section (for [`ConnFile`]).
    non_conn_line: Option<usize>,
}

enum Open {
    None,
    Setup(ConfigSetup, SeenKeys),
    Conn(Box<Conn>, SeenKeys),
}

#[derive(Default)]
struct SeenKeys(std::collections::BTreeSet<String>);

impl SeenKeys {
    fn check(&mut self, key: &str, line: usize) -> Result<(), ParseError> {
        let lower = key.to_ascii_lowercase();
        // also= may repeat (Libreswan joins them).
        if lower != "also" && !self.0.insert(lower) {
            return Err(ParseError::new(
                line,
                format!("duplicate key '{key}' in this section (Libreswan refuses the section)"),
            ));
        }
        Ok(())
    }
}

/// The lines of a text, 1-based, with a trailing CR removed. Fails on NUL
/// and other control characters (tab excepted).
fn lines(text: &str) -> Result<Vec<(usize, &str)>, ParseError> {
    let mut out = Vec::new();
    for (i, raw) in text.split('\n').enumerate() {
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ParseError::new(i + 1, "control character in line"));
        }
        out.push((i + 1, line));
    }
    if text.ends_with('\n') {
        out.pop();
    }
    Ok(out)
}

/// Removes a trailing `# comment` (preceded by whitespace) from a header line.
fn strip_trailing_comment(s: &str) -> &str {
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'#' && (i == 0 || bytes[i - 1] == b' ' || bytes[i - 1] == b'\t') {
            return s[..i].trim_end();
        }
    }
    s.trim_end()
}

/// A line without its indentation (spaces and tabs, as Libreswan counts it).
fn unindent(s: &str) -> &str {
    s.trim_start_matches([' ', '\t'])
}

fn invalid(line: usize, e: InvalidValue) -> ParseError {
    ParseError::new(line, e.to_string())
}

fn parse_document(text: &str) -> Result<Document, ParseError> {
    let mut doc = Document::default();
    let mut open = Open::None;
    let mut in_header = true;
    let mut names = std::collections::BTreeSet::new();
    for (n, line) in lines(text)? {
        let trimmed = unindent(line);
        if trimmed.is_empty() {
            continue;
        }
        if let Some(comment) = trimmed.strip_prefix('#') {
            if in_header {
                doc.header.push(Comment::from_line_lossy(comment));
            }
            continue;
        }
        in_header = false;
        if trimmed.len() != line.len() {
            // An indented line: a parameter of the open section.
            if matches!(open, Open::None) {
                return Err(ParseError::new(
                    n,
                    "indented line outside a section (sections start in column 0 with `conn NAME` or `config setup`)",
                ));
            }
            let (key, value) = parse_param(trimmed, n)?;
            match &mut open {
                Open::None => {}
                Open::Setup(setup, seen) => {
                    seen.check(&key, n)?;
                    setup_param(setup, &key, value, n)?;
                }
                Open::Conn(conn, seen) => {
                    seen.check(&key, n)?;
                    conn_param(conn, &key, value, n)?;
                }
            }
            continue;
        }
        // Column 0: a section header or a directive; closes the open section.
        close(&mut doc, std::mem::replace(&mut open, Open::None));
        let body = strip_trailing_comment(line);
        let (word, rest) = body
            .split_once([' ', '\t'])
            .map_or((body, ""), |(w, r)| (w, r.trim()));
        match word {
            "conn" => {
                let name =
                    unquote_name(rest).ok_or_else(|| ParseError::new(n, "expected `conn NAME`"))?;
                let name = ConnName::new(name).map_err(|e| invalid(n, e))?;
                if !names.insert(name.clone()) {
                    return Err(ParseError::new(n, format!("a second conn named {name}")));
                }
                open = Open::Conn(Box::new(Conn::new(name)), SeenKeys::default());
            }
            "config" => {
                if rest != "setup" {
                    return Err(ParseError::new(n, "expected `config setup`"));
                }
                if doc.setup.is_some() {
                    return Err(ParseError::new(n, "a second `config setup` section"));
                }
                doc.non_conn_line.get_or_insert(n);
                open = Open::Setup(ConfigSetup::default(), SeenKeys::default());
            }
            "include" => {
                let path = Token::new(rest).map_err(|e| invalid(n, e))?;
                doc.non_conn_line.get_or_insert(n);
                doc.includes.push(path);
            }
            "version" => {
                if doc.version.is_some() {
                    return Err(ParseError::new(n, "a second `version` line"));
                }
                doc.version = Some(Token::new(rest).map_err(|e| invalid(n, e))?);
                doc.non_conn_line.get_or_insert(n);
            }
            _ if word.contains('=') => {
                return Err(ParseError::new(
                    n,
                    "parameters must be indented (only section headers start in column 0)",
                ));
            }
            _ => {
                return Err(ParseError::new(
                    n,
                    format!(
                        "unknown section '{word}': expected `conn NAME`, `config setup`, `include PATH` or `version 2.0`"
                    ),
                ));
            }
        }
    }
    close(&mut doc, open);
    Ok(doc)
}

fn close(doc: &mut Document, open: Open) {
    match open {
        Open::None => {}
        Open::Setup(setup, _) => doc.setup = Some(setup),
        Open::Conn(conn, _) => doc.conns.push(*conn),
    }
}

fn unquote_name(rest: &str) -> Option<&str> {
    if let Some(inner) = rest.strip_prefix('"') {
        return inner.strip_suffix('"').filter(|s| !s.contains('"'));
    }
    (!rest.is_empty() && !rest.contains([' ', '\t'])).then_some(rest)
}

/// Splits an indented `key=value` line (already trimmed at the start).
fn parse_param(s: &str, n: usize) -> Result<(String, Value), ParseError> {
    let key_end = s.find(['=', ' ', '\t']).unwrap_or(s.len());
    let key = &s[..key_end];
    let rest = s[key_end..].trim_start_matches([' ', '\t']);
    let Some(rest) = rest.strip_prefix('=') else {
        return Err(ParseError::new(n, format!("expected key=value, got '{s}'")));
    };
    if key.is_empty() {
        return Err(ParseError::new(n, "missing key before '='"));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
    {
        return Err(ParseError::new(n, format!("invalid key '{key}'")));
    }
    let rest = rest.trim_start_matches([' ', '\t']);
    let (value, after) = if let Some(q) = rest.strip_prefix('"') {
        let end = q
            .find('"')
            .ok_or_else(|| ParseError::new(n, "unterminated quoted value"))?;
        (&q[..end], &q[end + 1..])
    } else if let Some(b) = rest.strip_prefix('{') {
        let end = b
            .find('}')
            .ok_or_else(|| ParseError::new(n, "unterminated {braced} value"))?;
        (&b[..end], &b[end + 1..])
    } else {
        let end = rest.find([' ', '\t']).unwrap_or(rest.len());
        let word = &rest[..end];
        if word.contains('"') {
            return Err(ParseError::new(
                n,
                format!("quote inside the value of {key}"),
            ));
        }
        (word, &rest[end..])
    };
    if !after.trim().is_empty() {
        return Err(ParseError::new(
            n,
            format!(
                "unexpected text after the value of {key}: '{}' (Libreswan allows nothing after a value, not even a comment)",
                after.trim()
            ),
        ));
    }
    let value = Value::new(value).map_err(|e| invalid(n, e))?;
    Ok((key.to_owned(), value))
}

fn parse_bool(key: &str, v: &str, n: usize) -> Result<bool, ParseError> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "y" | "true" | "on" => Ok(true),
        "no" | "n" | "false" | "off" => Ok(false),
        _ => Err(ParseError::new(
            n,
            format!("{key}: expected yes or no, got '{v}'"),
        )),
    }
}

/// `N%` (Libreswan's percentages: an integer, which may exceed 100).
fn parse_percent(key: &str, v: &str, n: usize) -> Result<u32, ParseError> {
    v.strip_suffix('%')
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| {
            ParseError::new(
                n,
                format!("{key}: expected a percentage like 100%, got '{v}'"),
            )
        })
}

/// Seconds, optionally with an `s`, `m`, `h` or `d` suffix.
fn parse_seconds(key: &str, v: &str, n: usize) -> Result<u32, ParseError> {
    let bad = || {
        ParseError::new(
            n,
            format!("{key}: expected a duration like 30, 30s, 5m, 8h or 1d, got '{v}'"),
        )
    };
    let (digits, unit) = match v.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&v[..i], c.to_ascii_lowercase()),
        _ => (v, 's'),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let factor = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86400,
        _ => return Err(bad()),
    };
    digits
        .parse::<u32>()
        .ok()
        .and_then(|x| x.checked_mul(factor))
        .ok_or_else(bad)
}

fn parse_keyword<T>(
    key: &str,
    v: &str,
    n: usize,
    from: fn(&str) -> Option<T>,
    all: &[&str],
) -> Result<T, ParseError> {
    from(v).ok_or_else(|| {
        ParseError::new(
            n,
            format!("{key}: unknown value '{v}' (one of: {})", all.join(", ")),
        )
    })
}

macro_rules! keyword {
    ($ty:ident, $key:expr, $v:expr, $n:expr) => {
        parse_keyword(
            $key,
            $v,
            $n,
            $ty::from_keyword,
            &$ty::ALL.iter().map(|k| k.as_str()).collect::<Vec<_>>(),
        )
    };
}

/// A traffic selector: an IP prefix (a bare address means a host prefix),
/// without host bits.
pub fn parse_selector(v: &str) -> Result<IpNet, String> {
    let net = match v.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match v.parse::<IpAddr>() {
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

fn selector(key: &str, v: &str, n: usize) -> Result<IpNet, ParseError> {
    parse_selector(v).map_err(|e| ParseError::new(n, format!("{key}: {e}")))
}

fn endpoint(key: &str, v: &str, n: usize) -> Result<Endpoint, ParseError> {
    Endpoint::parse(v).map_err(|e| ParseError::new(n, format!("{key}: {e}")))
}

fn token(key: &str, v: &str, n: usize) -> Result<Token, ParseError> {
    Token::new(v).map_err(|e| ParseError::new(n, format!("{key}: {e}")))
}

fn text(v: Value) -> Text {
    Text(v)
}

fn extra_param(key: &str, value: Value, n: usize, section: &str) -> Result<Param, ParseError> {
    let lower = key.to_ascii_lowercase();
    match Key::new(key) {
        Ok(key) => Ok(Param { key, value }),
        Err(_) if SETUP_KEYS.contains(&lower.as_str()) => Err(ParseError::new(
            n,
            format!("'{key}' is a config setup parameter, not a {section} parameter"),
        )),
        Err(_) if is_typed_conn_key(&lower) => Err(ParseError::new(
            n,
            format!("'{key}' is a conn parameter, not a {section} parameter"),
        )),
        Err(e) => Err(invalid(n, e)),
    }
}

fn conn_param(conn: &mut Conn, key: &str, value: Value, n: usize) -> Result<(), ParseError> {
    let lower = key.to_ascii_lowercase();
    if value.0.is_empty() {
        // `key=` unsets a key in Libreswan; an unknown key is kept as is.
        if !is_typed_conn_key(&lower) {
            conn.extra.push(extra_param(key, value, n, "conn")?);
        }
        return Ok(());
    }
    let v = value.as_str();
    if let Some((left, suffix)) = side_key(&lower) {
        let side = if left {
            &mut conn.left
        } else {
            &mut conn.right
        };
        match suffix {
            "" => side.host = Some(endpoint(key, v, n)?),
            "id" => side.id = Some(text(value)),
            "nexthop" => side.nexthop = Some(endpoint(key, v, n)?),
            "subnet" => side.subnet = Some(selector(key, v, n)?),
            "subnets" => {
                side.subnets = v
                    .split([' ', '\t', ','])
                    .filter(|s| !s.is_empty())
                    .map(|s| selector(key, s, n))
                    .collect::<Result<_, _>>()?;
            }
            "sourceip" => {
                side.sourceip = Some(v.parse().map_err(|_| {
                    ParseError::new(n, format!("{key}: '{v}' is not an IP address"))
                })?);
            }
            "cert" => side.cert = Some(text(value)),
            "rsasigkey" => side.rsasigkey = Some(text(value)),
            _ => side.updown = Some(text(value)),
        }
        return Ok(());
    }
    match lower.as_str() {
        "also" => conn.also.push(ConnName::new(v).map_err(|e| invalid(n, e))?),
        "type" => conn.conn_type = Some(keyword!(ConnType, key, v, n)?),
        "authby" => conn.authby = Some(keyword!(AuthBy, key, v, n)?),
        "pfs" => conn.pfs = Some(parse_bool(key, v, n)?),
        "auto" => conn.auto = Some(keyword!(Auto, key, v, n)?),
        "keyexchange" => conn.keyexchange = Some(keyword!(KeyExchange, key, v, n)?),
        "ikev2" => conn.ikev2 = Some(keyword!(Ikev2, key, v, n)?),
        "ike" => conn.ike = Some(token(key, v, n)?),
        "esp" => conn.esp = Some(token(key, v, n)?),
        "phase2" => conn.phase2 = Some(keyword!(Phase2, key, v, n)?),
        "phase2alg" => conn.phase2alg = Some(token(key, v, n)?),
        "ikelifetime" => conn.ikelifetime = Some(parse_seconds(key, v, n)?),
        "salifetime" | "lifetime" | "keylife" => {
            conn.salifetime = Some(parse_seconds(key, v, n)?);
        }
        "rekey" => conn.rekey = Some(parse_bool(key, v, n)?),
        "rekeymargin" => conn.rekeymargin = Some(parse_seconds(key, v, n)?),
        "rekeyfuzz" => conn.rekeyfuzz = Some(parse_percent(key, v, n)?),
        "dpddelay" => conn.dpddelay = Some(parse_seconds(key, v, n)?),
        "dpdtimeout" => conn.dpdtimeout = Some(parse_seconds(key, v, n)?),
        "dpdaction" => conn.dpdaction = Some(keyword!(DpdAction, key, v, n)?),
        _ => conn.extra.push(extra_param(key, value, n, "conn")?),
    }
    Ok(())
}

fn setup_param(
    setup: &mut ConfigSetup,
    key: &str,
    value: Value,
    n: usize,
) -> Result<(), ParseError> {
    let lower = key.to_ascii_lowercase();
    if value.0.is_empty() && lower != "virtual_private" {
        if !SETUP_KEYS.contains(&lower.as_str()) {
            setup
                .extra
                .push(extra_param(key, value, n, "config setup")?);
        }
        return Ok(());
    }
    let v = value.as_str();
    match lower.as_str() {
        "protostack" => setup.protostack = Some(keyword!(Protostack, key, v, n)?),
        "nat_traversal" => setup.nat_traversal = Some(parse_bool(key, v, n)?),
        "oe" => setup.oe = Some(parse_bool(key, v, n)?),
        "virtual_private" => {
            let mut list = Vec::new();
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                list.push(
                    parse_virtual_private(item)
                        .map_err(|e| ParseError::new(n, format!("virtual_private: {e}")))?,
                );
            }
            setup.virtual_private = Some(list);
        }
        "plutodebug" => setup.plutodebug = Some(text(value)),
        "uniqueids" => setup.uniqueids = Some(parse_bool(key, v, n)?),
        "logfile" => setup.logfile = Some(text(value)),
        "ikev1-policy" => setup.ikev1_policy = Some(keyword!(Ikev1Policy, key, v, n)?),
        "nhelpers" => {
            setup.nhelpers = Some(
                v.parse()
                    .map_err(|_| ParseError::new(n, format!("nhelpers: '{v}' is not a number")))?,
            );
        }
        _ => setup
            .extra
            .push(extra_param(key, value, n, "config setup")?),
    }
    Ok(())
}

fn parse_virtual_private(item: &str) -> Result<VirtualPrivate, String> {
    let (v4, rest) = if let Some(r) = item.strip_prefix("%v4:") {
        (true, r)
    } else if let Some(r) = item.strip_prefix("%v6:") {
        (false, r)
    } else {
        return Err(format!("'{item}' must start with %v4: or %v6:"));
    };
    let (exclude, rest) = rest.strip_prefix('!').map_or((false, rest), |r| (true, r));
    let net = parse_selector(rest)?;
    if net.addr().is_ipv4() != v4 {
        return Err(format!(
            "'{item}': address family does not match its %v4/%v6 prefix"
        ));
    }
    Ok(VirtualPrivate { exclude, net })
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

/// An index (ID) of a secrets record: an IP address, `%any`, `%any6`,
/// `@fqdn` (or `@#hex`, `@[...]`), or a distinguished name such as
/// `C=CH, O=Example, CN=gw` (emitted quoted). Other bare words are refused:
/// pluto would try to resolve them in DNS.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretId(String);

impl SecretId {
    pub fn new(id: impl Into<String>) -> Result<SecretId, InvalidValue> {
        let id = id.into();
        let bad = |reason| Err(InvalidValue::new("secret ID", &id, reason));
        if id.is_empty() || has_control(&id) || id.contains(['"', '\'']) {
            return bad("must be non-empty, without quotes or control characters");
        }
        if SecretId::is_bare(&id) {
            return Ok(SecretId(id));
        }
        if id.contains('=')
            && !id.starts_with(char::is_whitespace)
            && !id.ends_with(char::is_whitespace)
        {
            return Ok(SecretId(id));
        }
        bad(
            "must be an IP address, %any, %any6, @name or a distinguished name (with '='); \
             a bare name would make pluto look it up in DNS",
        )
    }

    /// Written without quotes.
    fn is_bare(id: &str) -> bool {
        if id.parse::<IpAddr>().is_ok() || id == "%any" || id == "%any6" {
            return true;
        }
        id.len() > 1
            && id.starts_with('@')
            && !id.ends_with(':')
            && id
                .chars()
                .all(|c| c.is_ascii_graphic() && c != '"' && c != '\'')
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The address, when the ID is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.0.parse().ok()
    }

    fn emitted(&self) -> String {
        if SecretId::is_bare(&self.0) {
            self.0.clone()
        } else {
            format!("\"{}\"", self.0)
        }
    }
}

impl fmt::Display for SecretId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Clone, PartialEq, Eq)]
enum PskForm {
    /// `"text"`: no quotes or control characters.
    Quoted(String),
    /// `0x...`, `0s...` or `0t...`: one word.
    Encoded(String),
}

/// A pre-shared key. `Debug` never shows it; read it with
/// [`Psk::expose_secret`].
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(PskForm);

impl Psk {
    /// A PSK written as a quoted string: any text without `"` or control
    /// characters.
    pub fn text(secret: impl Into<String>) -> Result<Psk, InvalidValue> {
        let secret = secret.into();
        if has_control(&secret) || secret.contains('"') {
            return Err(InvalidValue::new(
                "PSK",
                "<redacted>",
                "must not contain '\"' or control characters",
            ));
        }
        Ok(Psk(PskForm::Quoted(secret)))
    }

    /// A PSK in Libreswan's encoded form: `0x` + hex digits, `0s` + base64,
    /// or `0t` + text, one word.
    pub fn encoded(secret: impl Into<String>) -> Result<Psk, InvalidValue> {
        let secret = secret.into();
        let ok = secret.len() > 2
            && ["0x", "0s", "0t"]
                .iter()
                .any(|p| secret.get(..2).is_some_and(|s| s.eq_ignore_ascii_case(p)))
            && !secret.ends_with(':')
            && secret
                .chars()
                .all(|c| c.is_ascii_graphic() && !"\"'#{}".contains(c));
        if !ok {
            return Err(InvalidValue::new(
                "PSK",
                "<redacted>",
                "an encoded PSK is one word starting 0x, 0s or 0t",
            ));
        }
        Ok(Psk(PskForm::Encoded(secret)))
    }

    /// The secret as written in the file (without quotes).
    pub fn expose_secret(&self) -> &str {
        match &self.0 {
            PskForm::Quoted(s) | PskForm::Encoded(s) => s,
        }
    }

    /// Whether the secret is in an encoded (`0x`/`0s`/`0t`) form.
    pub fn is_encoded(&self) -> bool {
        matches!(self.0, PskForm::Encoded(_))
    }

    fn emitted(&self) -> String {
        match &self.0 {
            PskForm::Quoted(s) => format!("\"{s}\""),
            PskForm::Encoded(s) => s.clone(),
        }
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

/// `ID ID : PSK "secret"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PskEntry {
    /// The indices (empty: the default secret for any pair).
    pub ids: Vec<SecretId>,
    pub psk: Psk,
}

/// A record of another key type (`: RSA {...}`, `@a : XAUTH "..."`), kept
/// line for line. May hold private key material: `Debug` prints only the
/// key type.
#[derive(Clone, PartialEq, Eq)]
pub struct RawRecord {
    lines: Vec<String>,
    kind: String,
}

impl RawRecord {
    /// Builds a record from its lines (the first in column 0, the others
    /// indented), checking it reads back as a non-PSK record.
    pub fn new(lines: Vec<String>) -> Result<RawRecord, InvalidValue> {
        let numbered: Vec<(usize, &str)> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| (i + 1, l.as_str()))
            .collect();
        let well_formed = !lines.is_empty()
            && !lines[0].starts_with([' ', '\t', '#'])
            && lines.iter().all(|l| {
                !l.chars().any(|c| c.is_control() && c != '\t')
                    && !unindent(l).is_empty()
                    && !unindent(l).starts_with('#')
            })
            && lines[1..].iter().all(|l| l.starts_with([' ', '\t']));
        if !well_formed {
            return Err(InvalidValue::new(
                "secrets record",
                "<redacted>",
                "one column-0 line, then indented lines, no blank or comment lines",
            ));
        }
        match parse_record(&numbered) {
            Ok(SecretEntry::Other(record)) => Ok(record),
            _ => Err(InvalidValue::new(
                "secrets record",
                "<redacted>",
                "must read back as a non-PSK `IDS : TYPE ...` record",
            )),
        }
    }

    /// The lines as written.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The key type, e.g. `RSA`.
    pub fn kind(&self) -> &str {
        &self.kind
    }
}

impl fmt::Debug for RawRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "RawRecord({}, <{} lines redacted>)",
            self.kind,
            self.lines.len()
        )
    }
}

/// One record of a secrets file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretEntry {
    Psk(PskEntry),
    /// `include PATH`.
    Include(Token),
    Other(RawRecord),
}

/// A secrets file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Secrets {
    /// Comment lines at the top (e.g. a demo-key warning).
    pub header: Vec<Comment>,
    pub entries: Vec<SecretEntry>,
}

impl Secrets {
    /// The PSK for this pair of IDs, in either order.
    pub fn psk_for(&self, a: &str, b: &str) -> Option<&Psk> {
        self.entries.iter().find_map(|e| match e {
            SecretEntry::Psk(p) => {
                let ids: Vec<&str> = p.ids.iter().map(SecretId::as_str).collect();
                (ids.contains(&a) && ids.contains(&b)).then_some(&p.psk)
            }
            _ => None,
        })
    }
}

impl Format for Secrets {
    fn emit(&self) -> String {
        let mut out = Lines(String::new());
        out.header(&self.header);
        if !self.header.is_empty() && !self.entries.is_empty() {
            out.line("");
        }
        for entry in &self.entries {
            match entry {
                SecretEntry::Psk(p) => {
                    let mut line = String::new();
                    for id in &p.ids {
                        line.push_str(&id.emitted());
                        line.push(' ');
                    }
                    line.push_str(": PSK ");
                    line.push_str(&p.psk.emitted());
                    out.line(&line);
                }
                SecretEntry::Include(path) => out.line(&format!("include {path}")),
                SecretEntry::Other(raw) => {
                    for l in &raw.lines {
                        out.line(l);
                    }
                }
            }
        }
        out.0
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let mut secrets = Secrets::default();
        let mut in_header = true;
        let mut record: Vec<(usize, &str)> = Vec::new();
        for (n, line) in lines(text)? {
            let trimmed = unindent(line);
            if trimmed.is_empty() {
                continue;
            }
            if let Some(comment) = trimmed.strip_prefix('#') {
                if in_header {
                    secrets.header.push(Comment::from_line_lossy(comment));
                }
                continue;
            }
            in_header = false;
            if trimmed.len() != line.len() {
                if record.is_empty() {
                    return Err(ParseError::new(
                        n,
                        "indented line without a record to continue (records start in column 0)",
                    ));
                }
                record.push((n, line));
                continue;
            }
            if !record.is_empty() {
                secrets.entries.push(parse_record(&record)?);
                record.clear();
            }
            record.push((n, line));
        }
        if !record.is_empty() {
            secrets.entries.push(parse_record(&record)?);
        }
        Ok(secrets)
    }
}

#[derive(Debug, PartialEq)]
enum Tok<'a> {
    Word(&'a str),
    Quoted(&'a str),
    Colon,
}

/// Splits one line of a record into tokens; `#` outside quotes ends it.
/// Braced blocks (`{ ... }`) come back as words.
fn tokenize(line: &str, n: usize) -> Result<Vec<Tok<'_>>, ParseError> {
    let mut toks = Vec::new();
    let mut rest = line;
    loop {
        rest = rest.trim_start_matches([' ', '\t']);
        let Some(c) = rest.chars().next() else { break };
        match c {
            '#' => break,
            '"' | '\'' => {
                let inner = &rest[1..];
                let end = inner
                    .find(c)
                    .ok_or_else(|| ParseError::new(n, "unterminated quoted string"))?;
                toks.push(Tok::Quoted(&inner[..end]));
                rest = &inner[end + 1..];
                if rest.starts_with(|c: char| c != ' ' && c != '\t') {
                    return Err(ParseError::new(n, "text right after a closing quote"));
                }
            }
            ':' if rest[1..].starts_with([' ', '\t']) || rest.len() == 1 => {
                toks.push(Tok::Colon);
                rest = &rest[1..];
            }
            _ => {
                let end = rest.find([' ', '\t']).unwrap_or(rest.len());
                let word = &rest[..end];
                rest = &rest[end..];
                if word.parse::<IpAddr>().is_ok() {
                    // IPv6 addresses may end in "::".
                    toks.push(Tok::Word(word));
                } else if let Some(w) = word.strip_suffix(':').filter(|w| !w.is_empty()) {
                    toks.push(Tok::Word(w));
                    toks.push(Tok::Colon);
                } else if word.starts_with(':') {
                    // Libreswan reads ":PSK" as an index named ":PSK".
                    return Err(ParseError::new(
                        n,
                        format!("'{word}': put whitespace after ':'"),
                    ));
                } else {
                    toks.push(Tok::Word(word));
                }
            }
        }
    }
    Ok(toks)
}

/// An `include PATH` record, read from the raw line: the path is one word
/// taken as written (it may end in `:` or hold braces, which the record
/// tokenizer would split). Only a trailing `# comment` may follow it, and
/// no continuation lines.
fn parse_include(lines: &[(usize, &str)]) -> Result<Option<SecretEntry>, ParseError> {
    let Some(&(n, line)) = lines.first() else {
        return Ok(None);
    };
    let mut words = line.split([' ', '\t']).filter(|w| !w.is_empty());
    if words.next() != Some("include") {
        return Ok(None);
    }
    let bad = || ParseError::new(n, "expected `include PATH`");
    let path = words.next().ok_or_else(bad)?;
    if words.next().is_some_and(|w| !w.starts_with('#')) || lines.len() > 1 {
        return Err(bad());
    }
    let path = Token::new(path).map_err(|e| invalid(n, e))?;
    Ok(Some(SecretEntry::Include(path)))
}

fn parse_record(lines: &[(usize, &str)]) -> Result<SecretEntry, ParseError> {
    let first = lines.first().map_or(0, |l| l.0);
    if let Some(entry) = parse_include(lines)? {
        return Ok(entry);
    }
    let mut toks: Vec<(usize, Tok<'_>)> = Vec::new();
    for &(n, line) in lines {
        // Braces span lines in RSA records: tokenise those loosely.
        for t in tokenize(line, n).or_else(|e| {
            if line.contains(['{', '}']) {
                Ok(vec![Tok::Word(line.trim())])
            } else {
                Err(e)
            }
        })? {
            toks.push((n, t));
        }
    }
    let colon = toks
        .iter()
        .position(|(_, t)| *t == Tok::Colon)
        .ok_or_else(|| {
            ParseError::new(
                first,
                "expected `ID ... : TYPE secret` (no ':' in the record)",
            )
        })?;
    let mut ids = Vec::new();
    for (n, t) in &toks[..colon] {
        if let Tok::Word(text) | Tok::Quoted(text) = t {
            ids.push(SecretId::new(*text).map_err(|e| invalid(*n, e))?);
        }
    }
    let after = &toks[colon + 1..];
    let Some((kn, Tok::Word(kind))) = after.first() else {
        return Err(ParseError::new(
            first,
            "expected a key type (PSK, RSA, ...) after ':'",
        ));
    };
    if !kind.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(ParseError::new(*kn, format!("'{kind}' is not a key type")));
    }
    if kind.eq_ignore_ascii_case("psk") {
        let psk = match &after[1..] {
            [(n, Tok::Quoted(s))] => Psk::text(*s).map_err(|e| invalid(*n, e))?,
            [(n, Tok::Word(s))] => Psk::encoded(*s).map_err(|_| {
                ParseError::new(*n, "a PSK is a \"quoted string\" or a 0x/0s/0t word (Libreswan: input does not begin with format prefix)")
            })?,
            [] => return Err(ParseError::new(*kn, "PSK without a secret")),
            [_, (n, _), ..] => return Err(ParseError::new(*n, "more than one secret after PSK (expected record boundary)")),
            [(n, Tok::Colon)] => return Err(ParseError::new(*n, "unexpected ':' after PSK")),
        };
        return Ok(SecretEntry::Psk(PskEntry { ids, psk }));
    }
    Ok(SecretEntry::Other(RawRecord {
        lines: lines.iter().map(|(_, l)| (*l).to_owned()).collect(),
        kind: kind.to_ascii_uppercase(),
    }))
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
pub(crate) mod strategies {
    //! Proptest strategies for this module's types.
    use super::*;
    use proptest::collection::vec;
    use proptest::option::of;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    pub(crate) fn arb_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            3 => any::<u32>().prop_map(|x| IpAddr::V4(Ipv4Addr::from(x))),
            1 => any::<u128>().prop_map(|x| IpAddr::V6(Ipv6Addr::from(x))),
        ]
    }

    pub(crate) fn arb_net() -> impl Strategy<Value = IpNet> {
        (arb_ip(), any::<u8>()).prop_map(|(ip, len)| {
            let max = if ip.is_ipv4() { 33 } else { 129 };
            IpNet::new(ip, len % max)
                .map(|n| n.trunc())
                .unwrap_or_else(|_| IpNet::from(ip))
        })
    }

    pub(crate) fn arb_comment() -> impl Strategy<Value = Comment> {
        "[ -~]{0,30}".prop_map(|s| Comment::from_line_lossy(&s))
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        "[ -!#-~]{0,16}".prop_filter_map("valid value", |s| Value::new(s).ok())
    }

    fn arb_text() -> impl Strategy<Value = Text> {
        "[ -!#-~]{1,16}".prop_filter_map("valid text", |s| Text::new(s).ok())
    }

    fn arb_token() -> impl Strategy<Value = Token> {
        "[a-z0-9_;,+=.:/!-]{1,20}".prop_filter_map("valid token", |s| Token::new(s).ok())
    }

    fn arb_conn_name() -> impl Strategy<Value = ConnName> {
        prop_oneof![
            Just(ConnName("%default".to_owned())),
            "[a-zA-Z0-9][a-zA-Z0-9_.%+-]{0,15}"
                .prop_filter_map("valid name", |s| ConnName::new(s).ok()),
        ]
    }

    fn arb_hostname() -> impl Strategy<Value = Hostname> {
        "[a-z]([a-z0-9-]{0,6}[a-z0-9])?(\\.[a-z]{1,5}){0,2}"
            .prop_filter_map("valid hostname", |s| Hostname::new(s).ok())
    }

    fn arb_endpoint() -> impl Strategy<Value = Endpoint> {
        prop_oneof![
            arb_ip().prop_map(Endpoint::Ip),
            arb_hostname().prop_map(Endpoint::Name),
            proptest::sample::select(
                Endpoint::SPECIAL
                    .iter()
                    .map(|(_, e)| e.clone())
                    .collect::<Vec<_>>()
            ),
        ]
    }

    fn arb_key() -> impl Strategy<Value = Key> {
        "[a-z][a-z0-9_-]{0,12}".prop_filter_map("untyped key", |s| Key::new(s).ok())
    }

    fn arb_extra() -> impl Strategy<Value = Vec<Param>> {
        vec(
            (arb_key(), arb_value()).prop_map(|(key, value)| Param { key, value }),
            0..4,
        )
        .prop_map(|mut ps| {
            let mut seen = std::collections::BTreeSet::new();
            ps.retain(|p| seen.insert(p.key.0.to_ascii_lowercase()));
            ps
        })
    }

    prop_compose! {
        fn arb_side()(
            host in of(arb_endpoint()),
            id in of(arb_text()),
            nexthop in of(arb_endpoint()),
            subnet in of(arb_net()),
            subnets in vec(arb_net(), 0..3),
            sourceip in of(arb_ip()),
            cert in of(arb_text()),
            rsasigkey in of(arb_text()),
            updown in of(arb_text()),
        ) -> Side {
            Side { host, id, nexthop, subnet, subnets, sourceip, cert, rsasigkey, updown }
        }
    }

    fn arb_kw<T: Copy + fmt::Debug + 'static>(
        all: &'static [T],
    ) -> impl Strategy<Value = Option<T>> {
        of(proptest::sample::select(all))
    }

    prop_compose! {
        fn arb_conn()(
            name in arb_conn_name(),
            also in vec(arb_conn_name(), 0..2),
            conn_type in arb_kw(ConnType::ALL),
            authby in arb_kw(AuthBy::ALL),
            left in arb_side(),
            right in arb_side(),
            pfs in of(any::<bool>()),
            auto in arb_kw(Auto::ALL),
            keyexchange in arb_kw(KeyExchange::ALL),
            ikev2 in arb_kw(Ikev2::ALL),
            ike in of(arb_token()),
            esp in of(arb_token()),
            phase2 in arb_kw(Phase2::ALL),
            phase2alg in of(arb_token()),
            // ikelifetime, salifetime, dpddelay, dpdtimeout, rekeymargin,
            // rekeyfuzz, rekey (odd: yes). One vector: another argument
            // overflows the test thread's stack in debug builds.
            times in vec(of(any::<u32>()), 7),
            dpdaction in arb_kw(DpdAction::ALL),
            extra in arb_extra(),
        ) -> Conn {
            Conn {
                name, also, conn_type, authby, left, right, pfs, auto, keyexchange, ikev2, ike, esp, phase2, phase2alg,
                ikelifetime: times[0], salifetime: times[1], rekey: times[6].map(|x| x % 2 == 1),
                rekeymargin: times[4], rekeyfuzz: times[5], dpddelay: times[2], dpdtimeout: times[3],
                dpdaction, extra,
            }
        }
    }

    fn arb_conns() -> impl Strategy<Value = Vec<Conn>> {
        vec(arb_conn(), 0..4).prop_map(|mut conns| {
            let mut seen = std::collections::BTreeSet::new();
            conns.retain(|c| seen.insert(c.name.clone()));
            conns
        })
    }

    prop_compose! {
        fn arb_setup()(
            protostack in arb_kw(Protostack::ALL),
            nat_traversal in of(any::<bool>()),
            oe in of(any::<bool>()),
            virtual_private in of(vec((any::<bool>(), arb_net()).prop_map(|(exclude, net)| VirtualPrivate { exclude, net }), 0..3)),
            plutodebug in of(arb_text()),
            uniqueids in of(any::<bool>()),
            logfile in of(arb_text()),
            ikev1_policy in arb_kw(Ikev1Policy::ALL),
            nhelpers in of(any::<u32>()),
            extra in arb_extra(),
        ) -> ConfigSetup {
            ConfigSetup { protostack, nat_traversal, oe, virtual_private, plutodebug, uniqueids, logfile, ikev1_policy, nhelpers, extra }
        }
    }

    pub(crate) fn arb_ipsec_conf() -> impl Strategy<Value = IpsecConf> {
        (
            vec(arb_comment(), 0..3),
            of("[0-9](\\.[0-9])?".prop_filter_map("token", |s| Token::new(s).ok())),
            of(arb_setup()),
            arb_conns(),
            vec(arb_token(), 0..3),
        )
            .prop_map(|(header, version, setup, conns, includes)| IpsecConf {
                header,
                version,
                setup,
                conns,
                includes,
            })
    }

    pub(crate) fn arb_conn_file() -> impl Strategy<Value = ConnFile> {
        (vec(arb_comment(), 0..3), arb_conns())
            .prop_map(|(header, conns)| ConnFile { header, conns })
    }

    fn arb_secret_id() -> impl Strategy<Value = SecretId> {
        prop_oneof![
            arb_ip().prop_map(|ip| SecretId(ip.to_string())),
            Just(SecretId("%any".to_owned())),
            "@[a-z0-9.-]{1,12}".prop_filter_map("id", |s| SecretId::new(s).ok()),
            "[A-Z]{1,2}=[a-zA-Z0-9 ,=]{0,12}[a-z]".prop_filter_map("dn", |s| SecretId::new(s).ok()),
        ]
    }

    fn arb_psk() -> impl Strategy<Value = Psk> {
        prop_oneof![
            "[ -!#-~]{0,24}".prop_filter_map("psk", |s| Psk::text(s).ok()),
            "0x[0-9a-f]{2,16}".prop_filter_map("hex", |s| Psk::encoded(s).ok()),
            "0s[A-Za-z0-9+/]{4,16}={0,2}".prop_filter_map("b64", |s| Psk::encoded(s).ok()),
        ]
    }

    fn arb_raw() -> impl Strategy<Value = RawRecord> {
        (of(arb_secret_id()), "[0-9a-f]{4,12}", 0..3usize).prop_filter_map(
            "raw",
            |(id, ckaid, extra_lines)| {
                let ids = id.map(|i| format!("{} ", i.emitted())).unwrap_or_default();
                let mut lines = vec![format!("{ids}: RSA {{")];
                for i in 0..extra_lines {
                    lines.push(format!("\tPart{i}: 0x{ckaid}"));
                }
                lines.push("\t}".to_owned());
                RawRecord::new(lines).ok()
            },
        )
    }

    pub(crate) fn arb_secrets() -> impl Strategy<Value = Secrets> {
        let entry = prop_oneof![
            4 => (vec(arb_secret_id(), 0..3), arb_psk()).prop_map(|(ids, psk)| SecretEntry::Psk(PskEntry { ids, psk })),
            1 => arb_token().prop_map(SecretEntry::Include),
            1 => arb_raw().prop_map(SecretEntry::Other),
        ];
        (vec(arb_comment(), 0..3), vec(entry, 0..5))
            .prop_map(|(header, entries)| Secrets { header, entries })
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

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// Reference 003's `ipsec.d/vpc1-to-vpc2.conf` on the Virginia gateway,
    /// with the scenario's values for EIP1, EIP2 and the VPC CIDRs.
    pub(super) fn virginia_conn() -> Conn {
        let mut conn = Conn::new(ConnName::new("vpc1-to-vpc2").unwrap());
        conn.conn_type = Some(ConnType::Tunnel);
        conn.authby = Some(AuthBy::Secret);
        conn.left.host = Some(Endpoint::DefaultRoute);
        conn.left.id = Some(Text::new("198.51.100.10").unwrap());
        conn.left.nexthop = Some(Endpoint::DefaultRoute);
        conn.left.subnet = Some(net("10.11.0.0/16"));
        conn.right.host = Some(Endpoint::Ip(ip("203.0.113.20")));
        conn.right.subnet = Some(net("12.11.0.0/16"));
        conn.pfs = Some(true);
        conn.auto = Some(Auto::Start);
        conn
    }

    fn virginia_conn_file() -> ConnFile {
        ConnFile {
            header: crate::wgquick::comments(
                "Generated by vpnsim from scenario aws-three-regions (reference 003)",
            )
            .unwrap(),
            conns: vec![virginia_conn()],
        }
    }

    fn virginia_secrets() -> Secrets {
        Secrets {
            header: crate::wgquick::comments(
                "Generated by vpnsim from scenario aws-three-regions\nDEMO KEY derived from seed 3: not for production",
            )
            .unwrap(),
            entries: vec![SecretEntry::Psk(PskEntry {
                ids: vec![SecretId::new("198.51.100.10").unwrap(), SecretId::new("203.0.113.20").unwrap()],
                psk: Psk::text("demo-psk-vpc1-to-vpc2-seed-3").unwrap(),
            })],
        }
    }

    const REFERENCE_IPSEC_CONF: &str = r#"# /etc/ipsec.conf - Openswan IPsec configuration file
#
# Manual: ipsec.conf.5
#
# Please place your own config files in /etc/ipsec.d/ ending in .conf

version 2.0 # conforms to second version of ipsec.conf specification

# basic configuration
config setup
    # Debug-logging controls: "none" for (almost) none, "all" for lots.
    # klipsdebug=none
    # plutodebug="control parsing"
    # For Red Hat Enterprise Linux and Fedora, leave protostack=netkey
    protostack=netkey
    nat_traversal=yes
    virtual_private=
    oe=off
    # Enable this if you see "failed to find any available worker"
    # nhelpers=0

#You may put your configuration (.conf) file in the "/etc/ipsec.d/" and uncomment this.
include /etc/ipsec.d/*.conf
"#;

    /// The document's conn file with its placeholders filled in.
    const REFERENCE_CONN: &str = "conn vpc1-to-vpc2
    type=tunnel
    authby=secret
    left=%defaultroute
    leftid=198.51.100.10
    leftnexthop=%defaultroute
    leftsubnet=10.11.0.0/16
    right=203.0.113.20
    rightsubnet=12.11.0.0/16
    pfs=yes
    auto=start
";

    #[test]
    fn snapshot_virginia_conn_file() {
        let text = virginia_conn_file().emit();
        insta::assert_snapshot!("virginia_vpc1_to_vpc2_conf", text);
        assert_eq!(ConnFile::parse(&text).unwrap(), virginia_conn_file());
    }

    #[test]
    fn snapshot_virginia_secrets() {
        let text = virginia_secrets().emit();
        insta::assert_snapshot!("virginia_vpc1_to_vpc2_secrets", text);
        assert_eq!(Secrets::parse(&text).unwrap(), virginia_secrets());
    }

    #[test]
    fn reference_conn_reads_as_the_typed_conn() {
        let file = ConnFile::parse(REFERENCE_CONN).unwrap();
        assert_eq!(file.conns, vec![virginia_conn()]);
        // The document's text is exactly what emit writes for it.
        assert_eq!(
            ConnFile {
                header: vec![],
                conns: file.conns.clone()
            }
            .emit(),
            REFERENCE_CONN
        );
        let conn = file.conn("vpc1-to-vpc2").unwrap();
        assert_eq!(conn.left.selectors(), vec![net("10.11.0.0/16")]);
        assert_eq!(conn.right.selectors(), vec![net("12.11.0.0/16")]);
    }

    #[test]
    fn reference_secrets_line_reads() {
        let s = Secrets::parse("198.51.100.10 203.0.113.20: PSK \"Preshared Key\"\n").unwrap();
        let psk = s.psk_for("203.0.113.20", "198.51.100.10").unwrap();
        assert_eq!(psk.expose_secret(), "Preshared Key");
    }

    #[test]
    fn reference_ipsec_conf_reads_with_openswan_keys_flagged() {
        let conf = IpsecConf::parse(REFERENCE_IPSEC_CONF).unwrap();
        assert_eq!(conf.header.len(), 5);
        assert_eq!(conf.version.as_ref().map(Token::as_str), Some("2.0"));
        let setup = conf.setup.as_ref().unwrap();
        assert_eq!(setup.protostack, Some(Protostack::Netkey));
        assert_eq!(setup.nat_traversal, Some(true));
        assert_eq!(setup.virtual_private, Some(vec![]));
        assert_eq!(setup.oe, Some(false));
        assert_eq!(setup.openswan_only_keys(), vec!["nat_traversal", "oe"]);
        assert_eq!(
            conf.includes,
            vec![Token::new("/etc/ipsec.d/*.conf").unwrap()]
        );
        insta::assert_snapshot!("reference_ipsec_conf_reemitted", conf.emit());
        assert_eq!(IpsecConf::parse(&conf.emit()).unwrap(), conf);
    }

    #[test]
    fn debug_redacts_secrets() {
        let s = virginia_secrets();
        let debug = format!("{s:?}");
        assert!(!debug.contains("demo-psk"), "{debug}");
        assert!(debug.contains("redacted"));
        let raw = RawRecord::new(vec![
            ": RSA {".into(),
            "\tPrivateExponent: 0x1234".into(),
            "\t}".into(),
        ])
        .unwrap();
        let debug = format!("{raw:?}");
        assert!(!debug.contains("1234") && debug.contains("RSA"), "{debug}");
    }

    #[test]
    fn secrets_forms_pluto_accepts() {
        let text = "# keys\n\
            1.2.3.4 5.6.7.8: PSK \"attached colon\"\n\
            2001:db8::1 2001:db8::2 : PSK \"v6 ids\"\n\
            @a.example @b.example : PSK \"fqdn\" # trailing comment\n\
            \"C=CH, O=x, CN=y\" %any : PSK 'single quoted'\n\
            @c.example\n    @d.example : PSK \"continued\"\n\
            : PSK 0x1234abcd\n\
            @e : psk 0sYWJjZA==\n\
            include /etc/ipsec.d/*.secrets\n\
            : RSA {\n\tModulus: 0x00\n\t}\n";
        let s = Secrets::parse(text).unwrap();
        assert_eq!(s.entries.len(), 9);
        assert_eq!(
            s.psk_for("@c.example", "@d.example")
                .unwrap()
                .expose_secret(),
            "continued"
        );
        assert_eq!(
            s.psk_for("C=CH, O=x, CN=y", "%any")
                .unwrap()
                .expose_secret(),
            "single quoted"
        );
        assert!(
            matches!(&s.entries[8], SecretEntry::Other(r) if r.kind() == "RSA" && r.lines().len() == 3)
        );
        assert_eq!(Secrets::parse(&s.emit()).unwrap(), s);
    }

    #[test]
    fn secrets_rejections() {
        for (text, line, what) in [
            ("1.2.3.4 : PSK bare\n", 1, "format prefix"),
            ("1.2.3.4 : PSK \"a\" \"b\"\n", 1, "more than one"),
            ("1.2.3.4 PSK \"a\"\n", 1, "no ':'"),
            ("1.2.3.4 :PSK \"a\"\n", 1, "whitespace after ':'"),
            ("vpn.example.com : PSK \"a\"\n", 1, "DNS"),
            ("# c\n    @a : PSK \"x\"\n", 2, "column 0"),
            ("@a : PSK \"x\n", 1, "unterminated"),
            ("@a :\n", 1, "key type"),
        ] {
            let e = Secrets::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(what), "{text:?}: {e}");
        }
    }

    #[test]
    fn conf_syntax_like_libreswan() {
        // Whitespace around '=', quoted and braced values, tabs, CRLF,
        // comment lines anywhere, trailing comments on headers, quoted names.
        let text = "conn \"a\" # trailing\r\n\tleft = 1.2.3.4\r\n# col-0 comment\n    rightid=\"C=CH, CN=b\"\n    \
                    # indented comment\n    leftsubnets={10.0.0.0/8 11.0.0.0/8}\n    leftid=a#b\n    x-custom=1\n    also=b\n    also=c\n";
        let f = ConnFile::parse(text).unwrap();
        let c = &f.conns[0];
        assert_eq!(c.name.as_str(), "a");
        assert_eq!(c.left.host, Some(Endpoint::Ip(ip("1.2.3.4"))));
        assert_eq!(c.right.id.as_ref().unwrap().as_str(), "C=CH, CN=b");
        assert_eq!(c.left.subnets, vec![net("10.0.0.0/8"), net("11.0.0.0/8")]);
        assert_eq!(c.left.id.as_ref().unwrap().as_str(), "a#b");
        assert_eq!(c.extra("X-CUSTOM").unwrap().as_str(), "1");
        assert_eq!(c.also.len(), 2);
        assert_eq!(ConnFile::parse(&f.emit()).unwrap(), f);
    }

    #[test]
    fn conf_rejections() {
        for (text, line, what) in [
            ("conn a\nleft=1.2.3.4\n", 2, "indented"),
            ("    left=1.2.3.4\n", 1, "outside a section"),
            ("conn a\n    rightid=c #comment\n", 2, "after the value"),
            ("conn a\n    leftid=foo bar\n", 2, "after the value"),
            (
                "conn a\n    left=1.2.3.4\n    LEFT=1.2.3.5\n",
                3,
                "duplicate",
            ),
            ("conn a\n    type=weird\n", 2, "unknown value"),
            ("conn a\n    authby=psk\n", 2, "unknown value"),
            ("conn a\n    dpdaction=none\n", 2, "unknown value"),
            ("conn a\n    pfs=maybe\n", 2, "yes or no"),
            (
                "conn a\n    leftsubnet=10.11.0.0/33\n",
                2,
                "not an IP prefix",
            ),
            ("conn a\n    leftsubnet=10.11.4.5/16\n", 2, "host bits"),
            ("conn a\n    dpddelay=30x\n", 2, "duration"),
            (
                "conn a\n    virtual_private=%v4:10.0.0.0/8\n",
                2,
                "config setup",
            ),
            ("conn a\nconn a\n", 2, "second conn"),
            ("config setup\nconfig setup\n", 2, "second `config setup`"),
            (
                "config setup\n    leftid=x\n",
                2,
                "not a config setup parameter",
            ),
            (" conn a\n", 1, "outside a section"),
            ("conn\n", 1, "conn NAME"),
            ("frob a\n", 1, "unknown section"),
            ("conn a\n    left=\"1.2.3.4\n", 2, "unterminated"),
            ("conn a\n    leftid=\"a\"b\n", 2, "after the value"),
            ("conn a\n    leftid=\u{1}\n", 2, "control"),
        ] {
            let e = IpsecConf::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.message.contains(what), "{text:?}: {e}");
        }
        let e = ConnFile::parse("config setup\n    protostack=netkey\n").unwrap_err();
        assert!(e.message.contains("only `conn` sections"), "{e}");
    }

    #[test]
    fn empty_value_unsets_typed_keys() {
        let f = ConnFile::parse("conn a\n    leftid=\n    rightid=bar\n    custom=\n").unwrap();
        assert_eq!(f.conns[0].left.id, None);
        assert_eq!(f.conns[0].right.id.as_ref().unwrap().as_str(), "bar");
        assert_eq!(f.conns[0].extra("custom").unwrap().as_str(), "");
    }

    #[test]
    fn durations() {
        let f = ConnFile::parse(
            "conn a\n    dpddelay=30s\n    dpdtimeout=2m\n    ikelifetime=8h\n    salifetime=1d\n",
        )
        .unwrap();
        let c = &f.conns[0];
        assert_eq!(
            (c.dpddelay, c.dpdtimeout, c.ikelifetime, c.salifetime),
            (Some(30), Some(120), Some(28800), Some(86400))
        );
        assert!(ConnFile::parse("conn a\n    dpddelay=99999999d\n").is_err());
        // Rekeying, and salifetime's aliases (ipsec.conf(5)).
        let f = ConnFile::parse(
            "conn a\n    rekey=no\n    rekeymargin=9m\n    rekeyfuzz=100%\n    lifetime=1h\n\
             conn b\n    keylife=2h\n    rekeyfuzz=250%\n",
        )
        .unwrap();
        let (a, b) = (&f.conns[0], &f.conns[1]);
        assert_eq!(
            (a.rekey, a.rekeymargin, a.rekeyfuzz, a.salifetime),
            (Some(false), Some(540), Some(100), Some(3600))
        );
        assert_eq!((b.salifetime, b.rekeyfuzz), (Some(7200), Some(250)));
        let emitted = f.emit();
        assert!(emitted.contains("rekeyfuzz=100%") && emitted.contains("salifetime=3600"));
        assert_eq!(ConnFile::parse(&emitted), Ok(f));
        for bad in [
            "rekeyfuzz=10",
            "rekeyfuzz=10foo",
            "rekeyfuzz=%",
            "rekey=maybe",
        ] {
            assert!(
                ConnFile::parse(&format!("conn a\n    {bad}\n")).is_err(),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn ipsec_conf_roundtrip(conf in arb_ipsec_conf()) {
            prop_assert!(conf.validate().is_ok());
            let text = conf.emit();
            prop_assert_eq!(IpsecConf::parse(&text), Ok(conf), "{}", text);
        }

        #[test]
        fn conn_file_roundtrip(file in arb_conn_file()) {
            let text = file.emit();
            prop_assert_eq!(ConnFile::parse(&text), Ok(file), "{}", text);
        }

        #[test]
        fn secrets_roundtrip(secrets in arb_secrets()) {
            let text = secrets.emit();
            prop_assert_eq!(Secrets::parse(&text), Ok(secrets), "{}", text);
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = IpsecConf::parse(&text);
            let _ = ConnFile::parse(&text);
            let _ = Secrets::parse(&text);
        }

        #[test]
        fn parse_never_panics_on_line_soup(lines in proptest::collection::vec(
            "(conn|config setup|include|version|    [a-z]{1,8}=|\t|:|PSK|\"|'|\\{|\\}|#|@|%any|[a-z0-9./ ]){0,8}", 0..12)) {
            let text = lines.join("\n");
            // Whatever parses is valid and re-reads to itself.
            if let Ok(conf) = IpsecConf::parse(&text) {
                prop_assert!(conf.validate().is_ok());
                prop_assert_eq!(IpsecConf::parse(&conf.emit()), Ok(conf));
            }
            if let Ok(s) = Secrets::parse(&text) {
                prop_assert_eq!(Secrets::parse(&s.emit()), Ok(s));
            }
        }

        #[test]
        fn mutations_of_valid_texts(conf in arb_ipsec_conf(), secrets in arb_secrets(), index in any::<usize>(),
                                     c in prop_oneof![Just('"'), Just('='), Just('\n'), Just(' '), Just('#'), Just(':'), Just('{'), Just('}'), any::<char>()]) {
            let text = mutate(&conf.emit(), index, c);
            if let Ok(parsed) = IpsecConf::parse(&text) {
                prop_assert!(parsed.validate().is_ok());
                prop_assert_eq!(IpsecConf::parse(&parsed.emit()), Ok(parsed));
            }
            let text = mutate(&secrets.emit(), index, c);
            if let Ok(parsed) = Secrets::parse(&text) {
                prop_assert_eq!(Secrets::parse(&parsed.emit()), Ok(parsed));
            }
        }
    }
}

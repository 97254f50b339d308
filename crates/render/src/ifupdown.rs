//! ifupdown's `/etc/network/interfaces` and `/etc/network/interfaces.d/*`
//! (Debian package `ifupdown`, interfaces(5)).
//!
//! [`Interfaces`] is the file: top-level [`Item`]s (`auto`, `allow-CLASS`,
//! `no-auto-down`, `no-scripts`, `source`, `source-directory`, `iface`
//! stanzas with their option lines, comments, blank lines). `parse` reads
//! what ifup reads: comments are whole lines starting with `#` (an `#`
//! later on a line is part of the value), a trailing `\` continues a line,
//! option lines belong to the last `iface` whatever their indentation, an
//! option before any `iface` is ifup's "misplaced option", an option needs a
//! value, the family/method pair must be one ifup knows. `mapping` and
//! `rename` stanzas are rejected (vpnsim does not write them). Comments and
//! blank lines between the options of one stanza are not kept; those after
//! its last option are top-level items. `emit` writes one stanza per block,
//! options indented by four spaces.
//!
//! [`Stanza`] is the typed view of one interface as vpnsim writes them (the
//! bond and the TAP slaves of reference 004): `auto`/`allow-hotplug`,
//! static/manual/dhcp addressing, bonding options, pinned MAC, MTU, hook
//! commands.

use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use ipnet::Ipv4Net;

use crate::format::{Format, ParseError};

/// A value that cannot be written as an interfaces file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn invalid<T>(message: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(message.into()))
}

/// An Ethernet MAC address, written `16:b9:3f:58:cb:4c`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// Locally administered (bit 1 of the first octet) and unicast.
    pub fn is_local_unicast(self) -> bool {
        self.0[0] & 0b11 == 0b10
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = String;

    /// Six colon-separated pairs of hex digits, either case.
    fn from_str(s: &str) -> Result<MacAddr, String> {
        let bad = || format!("`{s}` is not a MAC address (six hex pairs joined by `:`)");
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for byte in &mut out {
            let p = parts.next().ok_or_else(bad)?;
            if p.len() != 2 || !p.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad());
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(MacAddr(out))
    }
}

fn check_text(what: &str, s: &str) -> Result<(), Invalid> {
    match s.chars().find(|&c| c.is_control() && c != '\t') {
        Some(c) => invalid(format!("{what} contains the control character {c:?}")),
        None => Ok(()),
    }
}

/// What ifupdown trims: ASCII whitespace.
fn ws(c: char) -> bool {
    c.is_ascii_whitespace() || c == '\u{b}'
}

/// A (logical) interface name: 1 to 15 of `A-Z a-z 0-9 _ . : -`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IfName(String);

impl IfName {
    pub fn new(name: &str) -> Result<IfName, Invalid> {
        let ok = !name.is_empty()
            && name.len() <= 15
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | ':' | '-'));
        if !ok {
            return invalid(format!(
                "`{name}` is not an interface name (1-15 of A-Z a-z 0-9 _ . : -)"
            ));
        }
        Ok(IfName(name.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for IfName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
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
    /// Address family of an `iface` line.
    Family { Inet = "inet", Inet6 = "inet6", Can = "can", Ipx = "ipx" }
);

keyword_enum!(
    /// Method of an `iface` line.
    Method {
        Loopback = "loopback",
        Static = "static",
        Manual = "manual",
        Dhcp = "dhcp",
        Bootp = "bootp",
        Tunnel = "tunnel",
        Ppp = "ppp",
        Wvdial = "wvdial",
        Ipv4ll = "ipv4ll",
        Auto = "auto",
        V4Tunnel = "v4tunnel",
        SixToFour = "6to4",
        Dynamic = "dynamic",
    }
);

impl Method {
    /// Whether ifup (0.8) knows this method for the family.
    pub fn allowed(self, family: Family) -> bool {
        use Method::*;
        match family {
            Family::Inet => matches!(
                self,
                Loopback | Static | Manual | Dhcp | Bootp | Tunnel | Ppp | Wvdial | Ipv4ll
            ),
            Family::Inet6 => {
                matches!(
                    self,
                    Auto | Loopback | Static | Manual | Dhcp | V4Tunnel | SixToFour
                )
            }
            Family::Can => matches!(self, Static),
            Family::Ipx => matches!(self, Static | Dynamic),
        }
    }
}

/// Whether ifupdown reads this first word as the start of a stanza.
fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "iface"
            | "mapping"
            | "auto"
            | "source"
            | "source-directory"
            | "source-dir"
            | "no-auto-down"
            | "no-scripts"
            | "rename"
    ) || word.strip_prefix("allow-").is_some_and(|c| !c.is_empty())
}

/// One option line of a stanza: `name value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfOption {
    name: String,
    value: String,
}

impl IfOption {
    /// The name is `[A-Za-z0-9][A-Za-z0-9_.-]*` and no stanza keyword; the
    /// value is not empty, has no control characters but tab, no blanks at
    /// either end and no trailing `\` (a line continuation).
    pub fn new(name: &str, value: &str) -> Result<IfOption, Invalid> {
        let mut chars = name.chars();
        let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
        if !ok || is_keyword(name) {
            return invalid(format!("`{name}` cannot be an option name"));
        }
        check_text(&format!("the value of `{name}`"), value)?;
        if value.is_empty() {
            return invalid(format!("option `{name}` has an empty value"));
        }
        if value.trim_matches(ws) != value {
            return invalid(format!("the value of `{name}` starts or ends with a blank"));
        }
        if value.ends_with('\\') {
            return invalid(format!(
                "the value of `{name}` ends with `\\` (a line continuation)"
            ));
        }
        Ok(IfOption {
            name: name.to_owned(),
            value: value.to_owned(),
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn value(&self) -> &str {
        &self.value
    }
}

/// `iface NAME FAMILY METHOD [inherits OTHER]` and its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Iface {
    pub name: IfName,
    pub family: Family,
    pub method: Method,
    pub inherits: Option<IfName>,
    pub options: Vec<IfOption>,
}

impl Iface {
    /// The first option of that name.
    pub fn option(&self, name: &str) -> Option<&str> {
        self.options
            .iter()
            .find(|o| o.name == name)
            .map(|o| o.value.as_str())
    }

    /// Every option of that name (`up`, `pre-up`, … repeat).
    pub fn options_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.options
            .iter()
            .filter(move |o| o.name == name)
            .map(|o| o.value.as_str())
    }
}

/// A comment line, written `# text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment(String);

impl Comment {
    pub fn new(text: &str) -> Result<Comment, Invalid> {
        check_text("a comment", text)?;
        Ok(Comment(text.to_owned()))
    }

    pub fn text(&self) -> &str {
        &self.0
    }
}

/// A path after `source` / `source-directory` (may hold glob characters).
fn check_path(path: &str) -> Result<(), Invalid> {
    check_text("a path", path)?;
    if path.is_empty() || path.contains(ws) || path.contains('\\') {
        return invalid(format!(
            "`{path}` is not a path without blanks and backslashes"
        ));
    }
    Ok(())
}

fn check_class(class: &str) -> Result<(), Invalid> {
    let ok = !class.is_empty()
        && class
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'));
    if !ok {
        return invalid(format!(
            "`allow-{class}`: a class is made of A-Z a-z 0-9 - _"
        ));
    }
    Ok(())
}

/// One element of an interfaces file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Comment(Comment),
    Blank,
    Auto(Vec<IfName>),
    /// `allow-CLASS NAME…` (`allow-hotplug`).
    Allow {
        class: String,
        ifaces: Vec<IfName>,
    },
    NoAutoDown(Vec<IfName>),
    NoScripts(Vec<IfName>),
    Source(String),
    SourceDirectory(String),
    Iface(Iface),
}

impl Item {
    fn check(&self) -> Result<(), Invalid> {
        match self {
            Item::Allow { class, .. } => check_class(class),
            Item::Source(p) | Item::SourceDirectory(p) => check_path(p),
            _ => Ok(()),
        }
    }

    fn line_count(&self) -> usize {
        match self {
            Item::Iface(i) => 1 + i.options.len(),
            _ => 1,
        }
    }
}

/// An interfaces file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Interfaces {
    pub items: Vec<Item>,
}

fn names(list: &[IfName]) -> String {
    list.iter().map(|n| format!(" {n}")).collect()
}

fn name_list(line: usize, words: &[&str]) -> Result<Vec<IfName>, ParseError> {
    words
        .iter()
        .map(|w| IfName::new(w).map_err(|e| ParseError::new(line, e.0)))
        .collect()
}

impl Interfaces {
    /// A file starting with these comment lines and a blank line.
    pub fn with_header<S: AsRef<str>>(lines: &[S]) -> Result<Interfaces, Invalid> {
        let mut items = Vec::new();
        for l in lines {
            items.push(Item::Comment(Comment::new(l.as_ref())?));
        }
        if !items.is_empty() {
            items.push(Item::Blank);
        }
        Ok(Interfaces { items })
    }

    /// The leading comment lines.
    pub fn header(&self) -> Vec<&str> {
        self.items
            .iter()
            .map_while(|i| match i {
                Item::Comment(c) => Some(c.text()),
                _ => None,
            })
            .collect()
    }

    pub fn ifaces(&self) -> impl Iterator<Item = &Iface> {
        self.items.iter().filter_map(|i| match i {
            Item::Iface(f) => Some(f),
            _ => None,
        })
    }

    pub fn iface(&self, name: &str, family: Family) -> Option<&Iface> {
        self.ifaces()
            .find(|f| f.name.as_str() == name && f.family == family)
    }

    /// Named on an `auto` (or `allow-auto`) line.
    pub fn is_auto(&self, name: &str) -> bool {
        self.items.iter().any(|i| match i {
            Item::Auto(l) => l.iter().any(|n| n.as_str() == name),
            Item::Allow { class, ifaces } if class == "auto" => {
                ifaces.iter().any(|n| n.as_str() == name)
            }
            _ => false,
        })
    }

    /// Named on an `allow-CLASS` line.
    pub fn is_allowed(&self, class: &str, name: &str) -> bool {
        self.items.iter().any(|i| matches!(i, Item::Allow { class: c, ifaces } if c == class && ifaces.iter().any(|n| n.as_str() == name)))
    }

    /// Each item with the line it starts on in the emitted layout (equal to
    /// the source line for files vpnsim wrote).
    pub fn located(&self) -> impl Iterator<Item = (usize, &Item)> {
        self.items.iter().scan(1usize, |line, item| {
            let at = *line;
            *line += item.line_count();
            Some((at, item))
        })
    }

    /// Checks the items that hold unvalidated strings.
    pub fn check(&self) -> Result<(), Invalid> {
        self.items.iter().try_for_each(Item::check)
    }

    /// A file of stanzas, blank lines between them.
    pub fn from_stanzas<S: AsRef<str>>(
        header: &[S],
        stanzas: &[Stanza],
    ) -> Result<Interfaces, Invalid> {
        let mut f = Interfaces::with_header(header)?;
        for (i, s) in stanzas.iter().enumerate() {
            if i > 0 {
                f.items.push(Item::Blank);
            }
            f.items.extend(s.to_items()?);
        }
        Ok(f)
    }

    /// The typed view of the `inet` stanza of `name`.
    pub fn stanza(&self, name: &str) -> Result<Stanza, ParseError> {
        Stanza::from_interfaces(self, name)
    }
}

impl Format for Interfaces {
    fn emit(&self) -> String {
        let mut out = String::new();
        for item in &self.items {
            match item {
                Item::Comment(c) if c.0.is_empty() => out.push('#'),
                Item::Comment(c) => {
                    out.push_str("# ");
                    out.push_str(&c.0);
                }
                Item::Blank => {}
                Item::Auto(l) => out.push_str(&format!("auto{}", names(l))),
                Item::Allow { class, ifaces } => {
                    out.push_str(&format!("allow-{class}{}", names(ifaces)))
                }
                Item::NoAutoDown(l) => out.push_str(&format!("no-auto-down{}", names(l))),
                Item::NoScripts(l) => out.push_str(&format!("no-scripts{}", names(l))),
                Item::Source(p) => out.push_str(&format!("source {p}")),
                Item::SourceDirectory(p) => out.push_str(&format!("source-directory {p}")),
                Item::Iface(f) => {
                    out.push_str(&format!("iface {} {} {}", f.name, f.family, f.method));
                    if let Some(p) = &f.inherits {
                        out.push_str(&format!(" inherits {p}"));
                    }
                    for o in &f.options {
                        out.push_str(&format!("\n    {} {}", o.name, o.value));
                    }
                }
            }
            out.push('\n');
        }
        out
    }

    fn parse(text: &str) -> Result<Interfaces, ParseError> {
        let body = text.strip_suffix('\n').unwrap_or(text);
        let raw: Vec<&str> = if text.is_empty() {
            Vec::new()
        } else {
            body.split('\n').collect()
        };
        let mut items: Vec<Item> = Vec::new();
        let mut current: Option<Iface> = None;
        let mut pending: Vec<Item> = Vec::new();
        let mut i = 0;
        while i < raw.len() {
            let no = i + 1;
            let first = raw[i].strip_suffix('\r').unwrap_or(raw[i]);
            i += 1;
            if first.contains('\0') {
                return Err(ParseError::new(no, "NUL byte in the line"));
            }
            let start = first.trim_start_matches(ws);
            if let Some(rest) = start.strip_prefix('#') {
                let text = rest.strip_prefix(' ').unwrap_or(rest);
                let c = Comment::new(text).map_err(|e| ParseError::new(no, e.0))?;
                if current.is_some() {
                    &mut pending
                } else {
                    &mut items
                }
                .push(Item::Comment(c));
                continue;
            }
            // Join continuation lines.
            let mut line = first.trim_matches(ws).to_owned();
            while line.ends_with('\\') {
                line.pop();
                let Some(next) = raw.get(i) else { break };
                i += 1;
                let next = next.strip_suffix('\r').unwrap_or(next);
                if next.contains('\0') {
                    return Err(ParseError::new(i, "NUL byte in the line"));
                }
                line.push_str(next);
                line = line.trim_end_matches(ws).to_owned();
            }
            let line = line.trim_matches(ws);
            if line.is_empty() {
                if current.is_some() {
                    &mut pending
                } else {
                    &mut items
                }
                .push(Item::Blank);
                continue;
            }
            let (word, rest) = match line.find(ws) {
                Some(k) => (&line[..k], line[k..].trim_matches(ws)),
                None => (line, ""),
            };
            let words: Vec<&str> = rest.split(ws).filter(|w| !w.is_empty()).collect();
            let err = |m: String| ParseError::new(no, m);
            if !is_keyword(word) {
                let Some(f) = current.as_mut() else {
                    return Err(err(format!(
                        "misplaced option `{word}` (options belong after an `iface` line)"
                    )));
                };
                if rest.is_empty() {
                    return Err(err(format!("option `{word}` with empty value")));
                }
                f.options
                    .push(IfOption::new(word, rest).map_err(|e| err(e.0))?);
                pending.clear();
                continue;
            }
            if let Some(f) = current.take() {
                items.push(Item::Iface(f));
            }
            items.append(&mut pending);
            let item = match word {
                "auto" => Item::Auto(name_list(no, &words)?),
                "no-auto-down" => Item::NoAutoDown(name_list(no, &words)?),
                "no-scripts" => Item::NoScripts(name_list(no, &words)?),
                "source" | "source-directory" | "source-dir" => {
                    let [path] = words.as_slice() else {
                        return Err(err(format!("`{word}` takes one path")));
                    };
                    check_path(path).map_err(|e| err(e.0))?;
                    if word == "source" {
                        Item::Source((*path).to_owned())
                    } else {
                        Item::SourceDirectory((*path).to_owned())
                    }
                }
                "mapping" | "rename" => {
                    return Err(err(format!("`{word}` stanzas are not supported")));
                }
                "iface" => {
                    let (name, family, method, inherits) = match words.as_slice() {
                        [n, f, m] => (n, f, m, None),
                        [n, f, m, "inherits", p] => (n, f, m, Some(p)),
                        [_, _, _, extra, ..] => {
                            return Err(err(format!(
                                "extra parameter `{extra}` on the iface line"
                            )));
                        }
                        _ => return Err(err("`iface` takes NAME FAMILY METHOD".into())),
                    };
                    let family: Family = family
                        .parse()
                        .map_err(|m| err(format!("iface {name}: {m}")))?;
                    let method: Method = method
                        .parse()
                        .map_err(|m| err(format!("iface {name}: {m}")))?;
                    if !method.allowed(family) {
                        return Err(err(format!(
                            "iface {name}: unknown method `{method}` for family `{family}`"
                        )));
                    }
                    current = Some(Iface {
                        name: IfName::new(name).map_err(|e| err(e.0))?,
                        family,
                        method,
                        inherits: inherits
                            .map(|p| IfName::new(p))
                            .transpose()
                            .map_err(|e| err(e.0))?,
                        options: Vec::new(),
                    });
                    continue;
                }
                _ => {
                    let class = &word["allow-".len()..];
                    check_class(class).map_err(|e| err(e.0))?;
                    Item::Allow {
                        class: class.to_owned(),
                        ifaces: name_list(no, &words)?,
                    }
                }
            };
            items.push(item);
        }
        if let Some(f) = current.take() {
            items.push(Item::Iface(f));
        }
        items.append(&mut pending);
        Ok(Interfaces { items })
    }
}

// ---------------------------------------------------------------------------
// Typed stanza.
// ---------------------------------------------------------------------------

keyword_enum!(
    /// Linux bonding modes (`bond-mode`; the numbers 0-6 are read too).
    BondMode {
        BalanceRr = "balance-rr",
        ActiveBackup = "active-backup",
        BalanceXor = "balance-xor",
        Broadcast = "broadcast",
        Ieee8023ad = "802.3ad",
        BalanceTlb = "balance-tlb",
        BalanceAlb = "balance-alb",
    }
);

keyword_enum!(
    /// When a hook command runs.
    HookStage {
        PreUp = "pre-up",
        Up = "up",
        PostUp = "post-up",
        PreDown = "pre-down",
        Down = "down",
        PostDown = "post-down",
    }
);

/// How the interface gets its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Addressing {
    /// `inet static`: `address`, `netmask`, optional `gateway` and `metric`.
    Static {
        address: Ipv4Net,
        gateway: Option<Ipv4Addr>,
        metric: Option<u32>,
    },
    /// `inet manual`: brought up without an address (a bond slave, a TAP
    /// device that OpenVPN creates).
    Manual,
    Dhcp,
}

/// The bonding options (ifenslave).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bond {
    pub mode: Option<BondMode>,
    /// `bond-miimon`, milliseconds.
    pub miimon: Option<u32>,
    /// `bond-slaves`: `Some(vec![])` is `none` (slaves are added later, by
    /// the OpenVPN scripts in reference 004).
    pub slaves: Option<Vec<IfName>>,
    /// `bond-arp-interval`, milliseconds: the ARP link monitor's period
    /// (the kernel's `arp_interval`; 0 disables it).
    pub arp_interval: Option<u32>,
    /// `bond-arp-ip-target`: the ARP monitor's peers, space-separated
    /// (ifenslave writes each as `+ADDR` to `bonding/arp_ip_target`). At
    /// most [`ARP_TARGETS_MAX`], no duplicates, none the kernel refuses
    /// (0.0.0.0/8, multicast, 255.255.255.255). Empty: not written.
    pub arp_ip_target: Vec<Ipv4Addr>,
}

/// The kernel's `BOND_MAX_ARP_TARGETS` (bonding.rst: "The maximum number
/// of targets that can be specified is 16").
pub const ARP_TARGETS_MAX: usize = 16;

/// Why the kernel refuses `target` in `arp_ip_target`, if it does
/// (`bond_option_arp_ip_target_add`: zeronet, broadcast, multicast).
fn unusable_arp_target(target: Ipv4Addr) -> Option<&'static str> {
    if target.octets()[0] == 0 {
        Some("is in 0.0.0.0/8")
    } else if target.is_broadcast() {
        Some("is the broadcast address")
    } else if target.is_multicast() {
        Some("is multicast")
    } else {
        None
    }
}

/// Checks a list of ARP targets as the kernel does when ifenslave adds them.
fn check_arp_targets(targets: &[Ipv4Addr]) -> Result<(), String> {
    if targets.len() > ARP_TARGETS_MAX {
        return Err(format!(
            "{} ARP targets; the kernel takes at most {ARP_TARGETS_MAX}",
            targets.len()
        ));
    }
    for (i, t) in targets.iter().enumerate() {
        if let Some(why) = unusable_arp_target(*t) {
            return Err(format!("ARP target {t} {why}"));
        }
        if targets[..i].contains(t) {
            return Err(format!("ARP target {t} is given twice"));
        }
    }
    Ok(())
}

/// A command run by ifup/ifdown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hook {
    pub stage: HookStage,
    pub command: String,
}

/// One interface as vpnsim writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stanza {
    pub name: IfName,
    pub auto: bool,
    pub hotplug: bool,
    pub addressing: Addressing,
    pub bond: Option<Bond>,
    pub hwaddress: Option<MacAddr>,
    pub mtu: Option<u16>,
    pub hooks: Vec<Hook>,
    /// Other options, written after the typed ones.
    pub extra: Vec<IfOption>,
}

const KNOWN: &[&str] = &[
    "address",
    "netmask",
    "gateway",
    "metric",
    "bond-mode",
    "bond_mode",
    "bond-miimon",
    "bond_miimon",
    "bond-slaves",
    "bond_slaves",
    "bond-arp-interval",
    "bond_arp_interval",
    "bond-arp-ip-target",
    "bond_arp_ip_target",
    "hwaddress",
    "mtu",
    "pre-up",
    "up",
    "post-up",
    "pre-down",
    "down",
    "post-down",
];

impl Stanza {
    /// `auto NAME`, `allow-hotplug NAME` (as asked) and the `iface` stanza.
    pub fn to_items(&self) -> Result<Vec<Item>, Invalid> {
        let mut items = Vec::new();
        if self.auto {
            items.push(Item::Auto(vec![self.name.clone()]));
        }
        if self.hotplug {
            items.push(Item::Allow {
                class: "hotplug".into(),
                ifaces: vec![self.name.clone()],
            });
        }
        let mut o = Vec::new();
        let mut opt = |name: &str, value: String| -> Result<(), Invalid> {
            o.push(IfOption::new(name, &value)?);
            Ok(())
        };
        let method = match &self.addressing {
            Addressing::Static {
                address,
                gateway,
                metric,
            } => {
                opt("address", address.addr().to_string())?;
                opt("netmask", address.netmask().to_string())?;
                if let Some(m) = metric {
                    opt("metric", m.to_string())?;
                }
                if let Some(g) = gateway {
                    opt("gateway", g.to_string())?;
                }
                Method::Static
            }
            Addressing::Manual => Method::Manual,
            Addressing::Dhcp => Method::Dhcp,
        };
        if let Some(b) = &self.bond {
            if *b == Bond::default() {
                return invalid("an empty Bond writes no option and reads back as None");
            }
            if let Some(s) = &b.slaves {
                let list: Vec<&str> = s.iter().map(IfName::as_str).collect();
                opt(
                    "bond-slaves",
                    if list.is_empty() {
                        "none".into()
                    } else {
                        list.join(" ")
                    },
                )?;
            }
            if let Some(m) = b.mode {
                opt("bond-mode", m.to_string())?;
            }
            if let Some(m) = b.miimon {
                opt("bond-miimon", m.to_string())?;
            }
            if let Some(i) = b.arp_interval {
                opt("bond-arp-interval", i.to_string())?;
            }
            check_arp_targets(&b.arp_ip_target).map_err(Invalid)?;
            if !b.arp_ip_target.is_empty() {
                let list: Vec<String> = b.arp_ip_target.iter().map(|a| a.to_string()).collect();
                opt("bond-arp-ip-target", list.join(" "))?;
            }
            if b.slaves
                .as_ref()
                .is_some_and(|s| s.iter().any(|n| n.as_str() == "none"))
            {
                return invalid("a bond slave named `none` reads as `bond-slaves none`");
            }
        }
        if let Some(mac) = self.hwaddress {
            opt("hwaddress", format!("ether {mac}"))?;
        }
        if let Some(m) = self.mtu {
            opt("mtu", m.to_string())?;
        }
        for h in &self.hooks {
            opt(h.stage.as_str(), h.command.clone())?;
        }
        for e in &self.extra {
            if KNOWN.contains(&e.name()) || e.name().starts_with("bond") {
                return invalid(format!(
                    "extra option `{}` is a typed field; set the field instead",
                    e.name()
                ));
            }
            o.push(e.clone());
        }
        items.push(Item::Iface(Iface {
            name: self.name.clone(),
            family: Family::Inet,
            method,
            inherits: None,
            options: o,
        }));
        Ok(items)
    }

    /// Reads the `inet` stanza of `name` (exactly one) and whether it is
    /// `auto` / `allow-hotplug`.
    pub fn from_interfaces(file: &Interfaces, name: &str) -> Result<Stanza, ParseError> {
        let mut found = None;
        for (line, item) in file.located() {
            let Item::Iface(f) = item else { continue };
            if f.name.as_str() == name && f.family == Family::Inet {
                if found.is_some() {
                    return Err(ParseError::new(
                        line,
                        format!("second `iface {name} inet` stanza"),
                    ));
                }
                found = Some((line, f));
            }
        }
        let Some((line, f)) = found else {
            return Err(ParseError::new(0, format!("no `iface {name} inet` stanza")));
        };
        let e = |m: String| ParseError::new(line, format!("iface {name}: {m}"));
        if f.inherits.is_some() {
            return Err(e("`inherits` is not read by vpnsim".into()));
        }
        let mut seen = std::collections::BTreeSet::new();
        let (mut address, mut netmask, mut gateway, mut metric) = (None, None, None, None);
        let (mut bond, mut hwaddress, mut mtu, mut hooks, mut extra) =
            (None::<Bond>, None, None, Vec::new(), Vec::new());
        let num = |o: &IfOption| -> Result<u32, ParseError> {
            if !o.value.bytes().all(|b| b.is_ascii_digit()) {
                return Err(e(format!("{}: `{}` is not a number", o.name, o.value)));
            }
            o.value
                .parse()
                .map_err(|_| e(format!("{}: `{}` is out of range", o.name, o.value)))
        };
        for o in &f.options {
            let canon = o.name.replace('_', "-");
            let stage: Result<HookStage, _> = canon.parse();
            if KNOWN.contains(&o.name.as_str()) && stage.is_err() && !seen.insert(canon.clone()) {
                return Err(e(format!("`{}` given twice", o.name)));
            }
            let v = o.value.as_str();
            match canon.as_str() {
                "address" => {
                    address = Some(match v.split_once('/') {
                        Some((a, len)) => {
                            let a: Ipv4Addr = a
                                .parse()
                                .map_err(|_| e(format!("address: `{v}` is not IPv4")))?;
                            let len: u8 = len.parse().map_err(|_| {
                                e(format!("address: `{v}` has a bad prefix length"))
                            })?;
                            (
                                a,
                                Some(Ipv4Net::new(a, len).map_err(|_| {
                                    e(format!("address: `{v}` has a bad prefix length"))
                                })?),
                            )
                        }
                        None => (
                            v.parse()
                                .map_err(|_| e(format!("address: `{v}` is not IPv4")))?,
                            None,
                        ),
                    })
                }
                "netmask" => {
                    netmask = Some(
                        v.parse::<Ipv4Addr>()
                            .map_err(|_| e(format!("netmask: `{v}` is not a netmask")))?,
                    )
                }
                "gateway" => {
                    gateway = Some(
                        v.parse::<Ipv4Addr>()
                            .map_err(|_| e(format!("gateway: `{v}` is not IPv4")))?,
                    )
                }
                "metric" => metric = Some(num(o)?),
                "bond-mode" => {
                    let m = match v.parse::<u8>() {
                        Ok(n) => *BondMode::ALL
                            .get(usize::from(n))
                            .ok_or_else(|| e(format!("bond-mode {n}: modes are 0 to 6")))?,
                        Err(_) => v.parse().map_err(|m| e(format!("bond-mode: {m}")))?,
                    };
                    bond.get_or_insert_default().mode = Some(m);
                }
                "bond-miimon" => bond.get_or_insert_default().miimon = Some(num(o)?),
                "bond-arp-interval" => {
                    bond.get_or_insert_default().arp_interval = Some(num(o)?);
                }
                "bond-arp-ip-target" => {
                    let list = v
                        .split(ws)
                        .filter(|w| !w.is_empty())
                        .map(|w| {
                            w.parse::<Ipv4Addr>().map_err(|_| {
                                e(format!("bond-arp-ip-target: `{w}` is not an IPv4 address"))
                            })
                        })
                        .collect::<Result<Vec<_>, _>>()?;
                    check_arp_targets(&list).map_err(|m| e(format!("bond-arp-ip-target: {m}")))?;
                    bond.get_or_insert_default().arp_ip_target = list;
                }
                "bond-slaves" => {
                    let list = if v == "none" {
                        Vec::new()
                    } else {
                        v.split(ws)
                            .filter(|w| !w.is_empty())
                            .map(IfName::new)
                            .collect::<Result<_, _>>()
                            .map_err(|x| e(x.0))?
                    };
                    bond.get_or_insert_default().slaves = Some(list);
                }
                "hwaddress" => {
                    let mac = v
                        .strip_prefix("ether")
                        .map(|r| r.trim_start_matches(ws))
                        .unwrap_or(v);
                    hwaddress = Some(
                        mac.parse::<MacAddr>()
                            .map_err(|m| e(format!("hwaddress: {m}")))?,
                    );
                }
                "mtu" => {
                    let m = num(o)?;
                    mtu =
                        Some(u16::try_from(m).map_err(|_| e(format!("mtu {m} is out of range")))?);
                }
                _ if stage.is_ok() && canon == o.name => {
                    if let Ok(stage) = stage {
                        hooks.push(Hook {
                            stage,
                            command: o.value.clone(),
                        });
                    }
                }
                _ if o.name.starts_with("bond") => {
                    return Err(e(format!(
                        "bonding option `{}` is not read by vpnsim",
                        o.name
                    )));
                }
                _ => extra.push(o.clone()),
            }
        }
        let addressing = match f.method {
            Method::Static => {
                let (a, net) = address.ok_or_else(|| e("static without `address`".into()))?;
                let net = match (net, netmask) {
                    (Some(_), Some(_)) => {
                        return Err(e("both `address A/LEN` and `netmask`".into()));
                    }
                    (Some(n), None) => n,
                    (None, Some(m)) => Ipv4Net::with_netmask(a, m)
                        .map_err(|_| e(format!("netmask: `{m}` is not a netmask")))?,
                    (None, None) => {
                        return Err(e("static without `netmask` or a prefix length".into()));
                    }
                };
                Addressing::Static {
                    address: net,
                    gateway,
                    metric,
                }
            }
            Method::Manual | Method::Dhcp => {
                if address.is_some() || netmask.is_some() || gateway.is_some() || metric.is_some() {
                    return Err(e(format!("address options on a `{}` stanza", f.method)));
                }
                if f.method == Method::Manual {
                    Addressing::Manual
                } else {
                    Addressing::Dhcp
                }
            }
            other => return Err(e(format!("method `{other}` is not read by vpnsim"))),
        };
        let name_ = &f.name;
        Ok(Stanza {
            name: name_.clone(),
            auto: file.is_auto(name),
            hotplug: file.is_allowed("hotplug", name),
            addressing,
            bond,
            hwaddress,
            mtu,
            hooks,
            extra,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn n(s: &str) -> IfName {
        IfName::new(s).unwrap()
    }

    /// Reference 004's three stanzas, as the document gives them.
    fn reference_004() -> Vec<Stanza> {
        let tap = |name: &str, mac: &str| Stanza {
            name: n(name),
            auto: true,
            hotplug: true,
            addressing: Addressing::Manual,
            bond: None,
            hwaddress: Some(mac.parse().unwrap()),
            mtu: None,
            hooks: vec![],
            extra: vec![],
        };
        vec![
            Stanza {
                name: n("bond0"),
                auto: true,
                hotplug: true,
                addressing: Addressing::Static {
                    address: "10.0.0.1/24".parse().unwrap(),
                    gateway: None,
                    metric: Some(1),
                },
                bond: Some(Bond {
                    mode: Some(BondMode::BalanceAlb),
                    ..Bond::default()
                }),
                hwaddress: Some("16:b9:3f:58:cb:4c".parse().unwrap()),
                mtu: Some(1500),
                hooks: vec![],
                extra: vec![],
            },
            tap("ovn0", "72:2d:a8:a3:a2:01"),
            tap("ovn1", "b2:0f:a3:5b:84:04"),
        ]
    }

    #[test]
    fn snapshot_reference_004() {
        let f = Interfaces::from_stanzas(
            &["bond0 and its two OpenVPN TAP slaves (reference 004, machine A)"],
            &reference_004(),
        )
        .unwrap();
        let text = f.emit();
        insta::assert_snapshot!("reference_004_bond", text);
        let back = Interfaces::parse(&text).unwrap();
        assert_eq!(back, f);
        for s in reference_004() {
            assert_eq!(back.stanza(s.name.as_str()).unwrap(), s);
        }
    }

    #[test]
    fn snapshot_generated_bond() {
        let mut stanzas = reference_004();
        stanzas[0].bond = Some(Bond {
            mode: Some(BondMode::BalanceAlb),
            miimon: Some(100),
            slaves: Some(vec![]),
            ..Bond::default()
        });
        stanzas[0].hooks = vec![Hook {
            stage: HookStage::PostDown,
            command: "ip link del bond0 2>/dev/null || true".into(),
        }];
        let f = Interfaces::from_stanzas(
            &["Generated by vpnsim for machine-a (dual-path-bond); do not edit."],
            &stanzas,
        )
        .unwrap();
        let text = f.emit();
        insta::assert_snapshot!("generated_bond", text);
        assert_eq!(
            Interfaces::parse(&text).unwrap().stanza("bond0").unwrap(),
            stanzas[0]
        );
    }

    #[test]
    fn reads_the_arp_monitor_options_and_refuses_what_the_kernel_refuses() {
        let stanza = |opts: &str| {
            let text = format!("iface bond0 inet manual\n    bond-mode active-backup\n{opts}");
            Interfaces::parse(&text).and_then(|f| f.stanza("bond0"))
        };
        let s = stanza("    bond-arp-interval 200\n    bond_arp_ip_target 10.0.0.2  10.0.0.3\n")
            .unwrap();
        let b = s.bond.clone().unwrap();
        assert_eq!(b.arp_interval, Some(200));
        assert_eq!(
            b.arp_ip_target,
            [
                "10.0.0.2".parse::<Ipv4Addr>().unwrap(),
                "10.0.0.3".parse().unwrap()
            ]
        );
        let many: Vec<String> = (1..=17).map(|i| format!("10.0.1.{i}")).collect();
        for (opts, needle) in [
            ("    bond-arp-ip-target 0.0.0.0\n".to_string(), "0.0.0.0/8"),
            ("    bond-arp-ip-target 224.0.0.1\n".into(), "multicast"),
            (
                "    bond-arp-ip-target 255.255.255.255\n".into(),
                "broadcast",
            ),
            ("    bond-arp-ip-target 10.0.0.2 10.0.0.2\n".into(), "twice"),
            (
                "    bond-arp-ip-target 10.0.0.2,10.0.0.3\n".into(),
                "not an IPv4",
            ),
            (
                format!("    bond-arp-ip-target {}\n", many.join(" ")),
                "at most 16",
            ),
            ("    bond-arp-interval 1s\n".into(), "not a number"),
            (
                "    bond-arp-interval 100\n    bond-arp-interval 200\n".into(),
                "twice",
            ),
        ] {
            let err = stanza(&opts).unwrap_err();
            assert!(err.message.contains(needle), "{opts:?}: {err}");
        }
        // What the parser refuses, the typed value cannot write either.
        let mut bad = s.clone();
        if let Some(b) = &mut bad.bond {
            b.arp_ip_target.push("10.0.0.2".parse().unwrap());
        }
        assert!(bad.to_items().is_err());
    }

    #[test]
    fn reads_the_scraped_forms() {
        let text = "auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n\
                    auto bond0\n  allow-hotplug bond0\niface bond0 inet static\n\taddress 10.0.0.2/24\n  # inside\n\
                    bond_mode 6\n  hwaddress 16:B9:3F:58:CB:4C\n  up echo a \\\n     b # not a comment\n# after\n";
        let f = Interfaces::parse(text).unwrap();
        let s = f.stanza("bond0").unwrap();
        assert!(s.auto && s.hotplug);
        assert_eq!(s.bond.unwrap().mode, Some(BondMode::BalanceAlb));
        assert_eq!(s.hwaddress.unwrap().to_string(), "16:b9:3f:58:cb:4c");
        assert_eq!(s.hooks[0].command, "echo a      b # not a comment");
        assert_eq!(
            f.items.last(),
            Some(&Item::Comment(Comment::new("after").unwrap()))
        );
    }

    #[test]
    fn rejects_what_ifup_rejects() {
        for (text, line) in [
            ("address 1.2.3.4\n", 1),
            ("auto x\niface x inet\n", 2),
            ("iface x inet auto\n", 1),
            ("iface x inet manual\n  mtu\n", 2),
            ("iface x inet manual extra\n", 1),
            ("mapping eth0\n", 1),
            ("auto thisnameistoolong0\n", 1),
        ] {
            let e = Interfaces::parse(text).unwrap_err();
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
        let f = Interfaces::parse("iface x inet manual\n  mtu 1\n  mtu 2\n").unwrap();
        assert!(f.stanza("x").unwrap_err().message.contains("twice"));
        assert!(
            Interfaces::parse("iface x inet static\n  netmask 255.0.0.0\n")
                .unwrap()
                .stanza("x")
                .is_err()
        );
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

    fn ifname() -> impl Strategy<Value = IfName> {
        "[a-z][a-z0-9_.:-]{0,14}".prop_map(|s| IfName::new(&s).unwrap())
    }

    fn option() -> impl Strategy<Value = IfOption> {
        (
            "[a-z0-9][a-z0-9_.-]{0,12}",
            prop_oneof!["[!-~]([ -~]{0,30}[!-[\\]-~])?", "\\PC{1,20}"],
        )
            .prop_filter_map("valid option", |(n, v)| IfOption::new(&n, &v).ok())
    }

    fn iface() -> impl Strategy<Value = Iface> {
        let fm = prop::sample::select(
            Family::ALL
                .iter()
                .flat_map(|&f| {
                    Method::ALL
                        .iter()
                        .filter(move |m| m.allowed(f))
                        .map(move |&m| (f, m))
                })
                .collect::<Vec<_>>(),
        );
        (
            ifname(),
            fm,
            prop::option::of(ifname()),
            prop::collection::vec(option(), 0..5),
        )
            .prop_map(|(name, (family, method), inherits, options)| Iface {
                name,
                family,
                method,
                inherits,
                options,
            })
    }

    fn item() -> impl Strategy<Value = Item> {
        let list = || prop::collection::vec(ifname(), 0..3);
        prop_oneof![
            1 => "\\PC{0,30}".prop_map(|t| Item::Comment(Comment::new(&t).unwrap())),
            1 => Just(Item::Blank),
            1 => list().prop_map(Item::Auto),
            1 => ("[a-z0-9_-]{1,8}", list()).prop_map(|(class, ifaces)| Item::Allow { class, ifaces }),
            1 => list().prop_map(Item::NoAutoDown),
            1 => list().prop_map(Item::NoScripts),
            1 => "/[a-z/.*]{1,20}".prop_map(Item::Source),
            1 => "/[a-z/.]{1,20}".prop_map(Item::SourceDirectory),
            3 => iface().prop_map(Item::Iface),
        ]
    }

    fn interfaces() -> impl Strategy<Value = Interfaces> {
        prop::collection::vec(item(), 0..10).prop_map(|items| Interfaces { items })
    }

    fn stanza() -> impl Strategy<Value = Stanza> {
        let addressing = prop_oneof![
            (
                any::<u32>(),
                0u8..=32,
                prop::option::of(any::<u32>()),
                prop::option::of(any::<u32>())
            )
                .prop_map(|(a, l, g, m)| {
                    Addressing::Static {
                        address: Ipv4Net::new(Ipv4Addr::from(a), l).unwrap(),
                        gateway: g.map(Ipv4Addr::from),
                        metric: m,
                    }
                }),
            Just(Addressing::Manual),
            Just(Addressing::Dhcp),
        ];
        let bond = prop::option::of(
            (
                prop::option::of(prop::sample::select(BondMode::ALL.to_vec())),
                prop::option::of(any::<u32>()),
                prop::option::of(prop::collection::vec(
                    "(eth|ovn)[0-9]".prop_map(|s| n(&s)),
                    0..3,
                )),
                prop::option::of(any::<u32>()),
                prop::collection::btree_set(any::<u32>().prop_map(Ipv4Addr::from), 0..4),
            )
                .prop_map(|(mode, miimon, slaves, arp_interval, targets)| Bond {
                    mode,
                    miimon,
                    slaves,
                    arp_interval,
                    arp_ip_target: targets
                        .into_iter()
                        .filter(|t| unusable_arp_target(*t).is_none())
                        .collect(),
                }),
        )
        .prop_map(|b| b.filter(|b| *b != Bond::default()));
        let hook = (
            prop::sample::select(HookStage::ALL.to_vec()),
            "[a-z/][ -~]{0,20}[a-z]",
        )
            .prop_map(|(stage, command)| Hook { stage, command });
        let extra = (
            "(dns-nameservers|vlan-raw-device|post-up-x|wpa-ssid)",
            "[a-z0-9]{1,8}",
        )
            .prop_map(|(k, v)| IfOption::new(&k, &v).unwrap());
        (
            ifname(),
            any::<bool>(),
            any::<bool>(),
            addressing,
            bond,
            any::<Option<[u8; 6]>>(),
            any::<Option<u16>>(),
            prop::collection::vec(hook, 0..3),
            prop::collection::vec(extra, 0..2),
        )
            .prop_map(
                |(name, auto, hotplug, addressing, bond, mac, mtu, hooks, extra)| Stanza {
                    name,
                    auto,
                    hotplug,
                    addressing,
                    bond,
                    hwaddress: mac.map(MacAddr),
                    mtu,
                    hooks,
                    extra,
                },
            )
    }

    proptest! {

        #[test]
        fn round_trips(f in interfaces()) {
            prop_assert_eq!(Interfaces::parse(&f.emit()), Ok(f));
        }

        #[test]
        fn stanza_round_trips(s in stanza()) {
            let f = Interfaces::from_stanzas(&["x"], std::slice::from_ref(&s)).unwrap();
            let back = Interfaces::parse(&f.emit()).unwrap();
            prop_assert_eq!(&back, &f);
            prop_assert_eq!(back.stanza(s.name.as_str()), Ok(s));
        }

        #[test]
        fn parse_never_panics(text in "\\PC*|[\\s\\S]{0,200}") {
            if let Ok(f) = Interfaces::parse(&text) {
                prop_assert_eq!(Interfaces::parse(&f.emit()), Ok(f.clone()));
                for i in f.ifaces() {
                    let _ = f.stanza(i.name.as_str());
                }
            }
        }

        #[test]
        fn parse_never_panics_on_mutations(
            f in interfaces(),
            edits in prop::collection::vec((any::<usize>(), any::<u8>(), prop_oneof![
                prop::sample::select(vec!['#', '\\', '\n', '\r', ' ', '\t', '\0', '/', ':', '-']),
                any::<char>(),
            ]), 1..8),
            reference in any::<bool>(),
        ) {
            let base = if reference {
                Interfaces::from_stanzas(&["h"], &reference_004()).unwrap().emit()
            } else {
                f.emit()
            };
            let text = mutate(base, edits);
            if let Ok(f) = Interfaces::parse(&text) {
                prop_assert_eq!(Interfaces::parse(&f.emit()), Ok(f.clone()));
                for i in f.ifaces() {
                    let _ = f.stanza(i.name.as_str());
                }
            }
        }
    }
}

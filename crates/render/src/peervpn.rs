//! PeerVPN configuration files (`/etc/peervpn/vpn.conf`): one `option value`
//! per line, as in the eduVPN "more locations" mesh of reference 000:
//!
//! ```text
//! ifconfig4 10.42.42.2/24
//! initpeers vpn.example 7000
//! networkname VPN
//! psk P2vH0aYuhVZZGZOITWvYer3p1qo57D2w
//! ```
//!
//! What [`PeerVpnConf::parse`] accepts, following PeerVPN 0.044's own
//! parser (`config.c`): option names case-sensitively, separated from the
//! value by spaces or tabs; leading and trailing blanks; `#`, `;` and `\r`
//! end a line wherever they appear (so no value can hold them); `endconfig`
//! ends the file (the rest is ignored); an option given twice keeps the
//! last value (PeerVPN overwrites: several `initpeers` lines do NOT add up,
//! all peers belong on one line); `echo` lines are kept in order. Booleans
//! are `yes`/`no`, `true`/`false` or `1`/`0`.
//!
//! It rejects, with the line: an unknown option (PeerVPN stops there too),
//! an option without a value, a value PeerVPN would silently cut at 512
//! bytes, boolean spellings other than the six above (PeerVPN matches only
//! their prefixes), an odd `initpeers` list, addresses that do not parse,
//! and named ports (PeerVPN would ask getaddrinfo).
//!
//! Comment lines before the first option are the
//! [`PeerVpnConf::header`]; other comments are dropped on parse.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;

use ipnet::{Ipv4Net, Ipv6Net};

use crate::format::{Format, ParseError};
use crate::wgquick::parse_decimal_u16;
pub use crate::wgquick::{Comment, Host, InvalidValue};

/// PeerVPN's buffer for one option's value (`CONFPARSER_NAMEBUF_SIZE`).
pub const MAX_VALUE_LEN: usize = 512;

/// A value PeerVPN reads to the end of its line: non-empty, at most
/// [`MAX_VALUE_LEN`] bytes, no control characters but tab, no `#` or `;` (they
/// start a comment anywhere), no leading or trailing blanks.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text(String);

impl Text {
    pub fn new(text: impl Into<String>) -> Result<Text, InvalidValue> {
        let text = text.into();
        let bad = |reason| Err(InvalidValue::new("PeerVPN value", &text, reason));
        if text.is_empty() || text.len() > MAX_VALUE_LEN {
            return bad("must be 1 to 512 bytes");
        }
        if text.chars().any(|c| c.is_control() && c != '\t') {
            return bad("contains a control character");
        }
        if text.contains(['#', ';']) {
            return bad("contains '#' or ';', which start a comment");
        }
        if text.trim() != text {
            return bad("has leading or trailing whitespace");
        }
        Ok(Text(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A [`Text`] without whitespace (interface, user and group names).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Word(Text);

impl Word {
    pub fn new(word: impl Into<String>) -> Result<Word, InvalidValue> {
        let text = Text::new(word)?;
        if text.0.contains(char::is_whitespace) {
            return Err(InvalidValue::new(
                "PeerVPN word",
                &text.0,
                "contains whitespace",
            ));
        }
        Ok(Word(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0.0
    }
}

impl fmt::Display for Word {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The network's pre-shared key (`psk`). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(Text);

impl Psk {
    pub fn new(psk: impl Into<String>) -> Result<Psk, InvalidValue> {
        // Never echo a secret in an error.
        Text::new(psk)
            .map(Psk)
            .map_err(|e| InvalidValue::new("psk", "<redacted>", e.reason))
    }

    pub fn expose(&self) -> &str {
        self.0.as_str()
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

/// `sockmark`: a packet mark PeerVPN reads with `atoi`, so at most
/// `i32::MAX`; 0 disables it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SockMark(u32);

impl SockMark {
    pub fn new(mark: u32) -> Option<SockMark> {
        (mark <= i32::MAX as u32).then_some(SockMark(mark))
    }
    pub fn get(self) -> u32 {
        self.0
    }
}

/// One initial peer: `host port`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct InitPeer {
    pub host: Host,
    pub port: u16,
}

/// The `initpeers` list: all peers on one line, at most
/// [`MAX_VALUE_LEN`] bytes written out.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct InitPeers(Vec<InitPeer>);

impl InitPeers {
    pub fn new(peers: Vec<InitPeer>) -> Result<InitPeers, InvalidValue> {
        let peers = InitPeers(peers);
        let written = peers.to_string();
        if written.len() > MAX_VALUE_LEN {
            return Err(InvalidValue::new(
                "initpeers",
                &written,
                "longer than the 512 bytes PeerVPN reads",
            ));
        }
        Ok(peers)
    }

    pub fn as_slice(&self) -> &[InitPeer] {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for InitPeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, peer) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            write!(f, "{} {}", peer.host, peer.port)?;
        }
        Ok(())
    }
}

/// PeerVPN's yes/no options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Flag {
    /// `enabletunneling` (default yes): open the TAP device.
    EnableTunneling,
    /// `enableipv4` (default yes): open an IPv4 socket.
    EnableIpv4,
    /// `enableipv6` (default yes): open an IPv6 socket.
    EnableIpv6,
    /// `enablenat64clat` (default no).
    EnableNat64Clat,
    /// `enablendpcache` (default no).
    EnableNdpCache,
    /// `enablerelay` (default no): relay for peers that cannot meet directly.
    EnableRelay,
    /// `enableprivdrop` (default yes).
    EnablePrivDrop,
    /// `enableseccomp` (default no).
    EnableSeccomp,
    /// `forceseccomp` (default no).
    ForceSeccomp,
    /// `enableconsole` (default no).
    EnableConsole,
    /// `enablevirtserv` (default no).
    EnableVirtServ,
}

impl Flag {
    pub const ALL: [Flag; 11] = [
        Flag::EnableTunneling,
        Flag::EnableIpv4,
        Flag::EnableIpv6,
        Flag::EnableNat64Clat,
        Flag::EnableNdpCache,
        Flag::EnableRelay,
        Flag::EnablePrivDrop,
        Flag::EnableSeccomp,
        Flag::ForceSeccomp,
        Flag::EnableConsole,
        Flag::EnableVirtServ,
    ];

    /// The option's name in the file.
    pub fn name(self) -> &'static str {
        match self {
            Flag::EnableTunneling => "enabletunneling",
            Flag::EnableIpv4 => "enableipv4",
            Flag::EnableIpv6 => "enableipv6",
            Flag::EnableNat64Clat => "enablenat64clat",
            Flag::EnableNdpCache => "enablendpcache",
            Flag::EnableRelay => "enablerelay",
            Flag::EnablePrivDrop => "enableprivdrop",
            Flag::EnableSeccomp => "enableseccomp",
            Flag::ForceSeccomp => "forceseccomp",
            Flag::EnableConsole => "enableconsole",
            Flag::EnableVirtServ => "enablevirtserv",
        }
    }

    /// PeerVPN's value when the option is absent.
    pub fn default_value(self) -> bool {
        matches!(
            self,
            Flag::EnableTunneling | Flag::EnableIpv4 | Flag::EnableIpv6 | Flag::EnablePrivDrop
        )
    }
}

/// A whole `vpn.conf`. `None` and empty mean "not in the file" (PeerVPN's
/// default applies).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PeerVpnConf {
    /// Comment lines at the top.
    pub header: Vec<Comment>,
    /// `echo` lines: printed by PeerVPN while reading the file.
    pub echo: Vec<Text>,
    /// `networkname` (default `PEERVPN`): only peers with the same name join.
    pub networkname: Option<Text>,
    /// `psk` (default `default`).
    pub psk: Option<Psk>,
    /// `interface`: the TAP device's name.
    pub interface: Option<Word>,
    /// `ifconfig4`: the TAP device's IPv4 address and prefix.
    pub ifconfig4: Option<Ipv4Net>,
    /// `ifconfig6`: the TAP device's IPv6 address and prefix.
    pub ifconfig6: Option<Ipv6Net>,
    /// `upcmd`: shell command run after the TAP device opened.
    pub upcmd: Option<Text>,
    /// `local`: address to bind (default all).
    pub local: Option<IpAddr>,
    /// `port`: UDP port (default random).
    pub port: Option<u16>,
    /// `sockmark`.
    pub sockmark: Option<SockMark>,
    /// `initpeers`: whom to contact first and after losing the network.
    pub initpeers: InitPeers,
    /// `engine`: OpenSSL engine names, space-separated.
    pub engine: Option<Text>,
    /// `user` to drop privileges to.
    pub user: Option<Word>,
    /// `group` to drop privileges to.
    pub group: Option<Word>,
    /// `chroot` directory.
    pub chroot: Option<Text>,
    /// The yes/no options that are set.
    pub flags: BTreeMap<Flag, bool>,
}

impl PeerVpnConf {
    /// The network name in effect.
    pub fn network_name(&self) -> &str {
        self.networkname.as_ref().map_or("PEERVPN", Text::as_str)
    }

    /// A yes/no option's value in effect.
    pub fn flag(&self, flag: Flag) -> bool {
        self.flags
            .get(&flag)
            .copied()
            .unwrap_or(flag.default_value())
    }
}

impl Format for PeerVpnConf {
    fn emit(&self) -> String {
        let mut out = String::new();
        let mut line = |key: &str, value: &dyn fmt::Display| {
            out.push_str(key);
            out.push(' ');
            out.push_str(&value.to_string());
            out.push('\n');
        };
        for e in &self.echo {
            line("echo", e);
        }
        if let Some(v) = &self.networkname {
            line("networkname", v);
        }
        if let Some(v) = &self.psk {
            line("psk", &v.0);
        }
        if let Some(v) = &self.interface {
            line("interface", v);
        }
        if let Some(v) = &self.ifconfig4 {
            line("ifconfig4", v);
        }
        if let Some(v) = &self.ifconfig6 {
            line("ifconfig6", v);
        }
        if let Some(v) = &self.upcmd {
            line("upcmd", v);
        }
        if let Some(v) = &self.local {
            line("local", v);
        }
        if let Some(v) = &self.port {
            line("port", v);
        }
        if let Some(v) = &self.sockmark {
            line("sockmark", &v.0);
        }
        if !self.initpeers.is_empty() {
            line("initpeers", &self.initpeers);
        }
        if let Some(v) = &self.engine {
            line("engine", v);
        }
        if let Some(v) = &self.user {
            line("user", v);
        }
        if let Some(v) = &self.group {
            line("group", v);
        }
        if let Some(v) = &self.chroot {
            line("chroot", v);
        }
        for (flag, on) in &self.flags {
            line(flag.name(), &if *on { "yes" } else { "no" });
        }
        let mut head = String::new();
        for c in &self.header {
            head.push_str(&c.to_line('#'));
            head.push('\n');
        }
        if !self.header.is_empty() && !out.is_empty() {
            head.push('\n');
        }
        head + &out
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let mut conf = PeerVpnConf::default();
        let mut in_header = true;
        for (index, raw) in text.split('\n').enumerate() {
            let n = index + 1;
            let line = raw.trim_start_matches([' ', '\t']);
            if let Some(rest) = line.strip_prefix(['#', ';']) {
                if in_header {
                    conf.header.push(Comment::from_line_lossy(rest));
                }
                continue;
            }
            let end = line.find(['#', ';', '\r', '\0']).unwrap_or(line.len());
            let line = line[..end].trim_end_matches([' ', '\t']);
            if line.is_empty() {
                continue;
            }
            in_header = false;
            if raw.len() > 4096 {
                return Err(ParseError::new(
                    n,
                    "line longer than the 4096 bytes PeerVPN reads",
                ));
            }
            if let Some(c) = line.chars().find(|&c| c.is_control() && c != '\t') {
                return Err(ParseError::new(
                    n,
                    format!("control character {c:?} in line"),
                ));
            }
            let (key, value) = match line.find([' ', '\t']) {
                Some(at) => (&line[..at], line[at..].trim_start_matches([' ', '\t'])),
                None => (line, ""),
            };
            if key == "endconfig" {
                break;
            }
            conf.option(key, value)
                .map_err(|message| ParseError::new(n, message))?;
        }
        Ok(conf)
    }
}

fn parse_bool(value: &str) -> Option<bool> {
    match value {
        "yes" | "true" | "1" => Some(true),
        "no" | "false" | "0" => Some(false),
        _ => None,
    }
}

impl PeerVpnConf {
    fn option(&mut self, key: &str, value: &str) -> Result<(), String> {
        if value.is_empty() {
            return if key_known(key) {
                Err(format!("{key} needs a value"))
            } else {
                Err(format!("unknown option {key:?}"))
            };
        }
        let text = || Text::new(value).map_err(|e| format!("{key}: {e}"));
        let word = || Word::new(value).map_err(|e| format!("{key}: {e}"));
        match key {
            "echo" => self.echo.push(text()?),
            "networkname" => self.networkname = Some(text()?),
            "psk" => self.psk = Some(Psk::new(value).map_err(|e| format!("psk: {}", e.reason))?),
            "interface" => self.interface = Some(word()?),
            "ifconfig4" => {
                self.ifconfig4 =
                    Some(value.parse().map_err(|_| {
                        format!("ifconfig4 {value:?} is not an IPv4 address/prefix")
                    })?)
            }
            "ifconfig6" => {
                self.ifconfig6 =
                    Some(value.parse().map_err(|_| {
                        format!("ifconfig6 {value:?} is not an IPv6 address/prefix")
                    })?)
            }
            "upcmd" => self.upcmd = Some(text()?),
            "local" => {
                self.local = Some(
                    value
                        .parse()
                        .map_err(|_| format!("local {value:?} is not an IP address"))?,
                )
            }
            "port" => {
                self.port = Some(
                    parse_decimal_u16(value)
                        .ok_or_else(|| format!("port {value:?} is not a port number"))?,
                )
            }
            "sockmark" => {
                let mark = value
                    .parse::<u32>()
                    .ok()
                    .filter(|_| value.bytes().all(|b| b.is_ascii_digit()));
                self.sockmark = Some(
                    mark.and_then(SockMark::new)
                        .ok_or_else(|| format!("sockmark {value:?} is not 0 to 2147483647"))?,
                )
            }
            "initpeers" => {
                text()?;
                let words: Vec<&str> = value.split([' ', '\t']).filter(|w| !w.is_empty()).collect();
                let pairs = words.chunks_exact(2);
                if !pairs.remainder().is_empty() {
                    return Err("initpeers needs `host port` pairs".to_owned());
                }
                let mut peers = Vec::new();
                for pair in pairs {
                    let host = Host::parse(pair[0]).map_err(|e| format!("initpeers: {e}"))?;
                    let port = parse_decimal_u16(pair[1])
                        .ok_or_else(|| format!("initpeers: {:?} is not a port number", pair[1]))?;
                    peers.push(InitPeer { host, port });
                }
                self.initpeers = InitPeers::new(peers).map_err(|e| e.to_string())?;
            }
            "engine" => self.engine = Some(text()?),
            "user" => self.user = Some(word()?),
            "group" => self.group = Some(word()?),
            "chroot" => self.chroot = Some(text()?),
            _ => {
                let flag = Flag::ALL
                    .into_iter()
                    .find(|f| f.name() == key)
                    .ok_or_else(|| format!("unknown option {key:?}"))?;
                let on =
                    parse_bool(value).ok_or_else(|| format!("{key} {value:?} is not yes or no"))?;
                self.flags.insert(flag, on);
            }
        }
        Ok(())
    }
}

fn key_known(key: &str) -> bool {
    const STRINGS: [&str; 15] = [
        "echo",
        "networkname",
        "psk",
        "interface",
        "ifconfig4",
        "ifconfig6",
        "upcmd",
        "local",
        "port",
        "sockmark",
        "initpeers",
        "engine",
        "user",
        "group",
        "chroot",
    ];
    STRINGS.contains(&key) || Flag::ALL.iter().any(|f| f.name() == key)
}

#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use crate::wgquick::strategies::{arb_comment, arb_host, arb_ip};
    use proptest::prelude::*;

    fn arb_text() -> impl Strategy<Value = Text> {
        "[!-\"$-:<-~][ -\"$-:<-~]{0,20}".prop_filter_map("valid text", |s| Text::new(s.trim()).ok())
    }

    fn arb_word() -> impl Strategy<Value = Word> {
        "[!-\"$-:<-~]{1,12}".prop_filter_map("valid word", |s| Word::new(s).ok())
    }

    fn arb_flags() -> impl Strategy<Value = BTreeMap<Flag, bool>> {
        proptest::collection::btree_map(
            proptest::sample::select(Flag::ALL.to_vec()),
            any::<bool>(),
            0..4,
        )
    }

    prop_compose! {
        pub(crate) fn arb_peervpn()(
            header in proptest::collection::vec(arb_comment(), 0..3),
            echo in proptest::collection::vec(arb_text(), 0..2),
            networkname in proptest::option::of(arb_text()),
            psk in proptest::option::of(arb_text().prop_map(Psk)),
            interface in proptest::option::of(arb_word()),
            ifconfig4 in proptest::option::of((any::<u32>(), 0u8..=32).prop_filter_map("v4", |(a, l)| Ipv4Net::new(a.into(), l).ok())),
            ifconfig6 in proptest::option::of((any::<u128>(), 0u8..=128).prop_filter_map("v6", |(a, l)| Ipv6Net::new(a.into(), l).ok())),
            upcmd in proptest::option::of(arb_text()),
            local in proptest::option::of(arb_ip()),
            port in proptest::option::of(any::<u16>()),
            sockmark in proptest::option::of((0..=i32::MAX as u32).prop_filter_map("mark", SockMark::new)),
            initpeers in proptest::collection::vec((arb_host(), any::<u16>()).prop_map(|(host, port)| InitPeer { host, port }), 0..4),
            engine in proptest::option::of(arb_text()),
            user in proptest::option::of(arb_word()),
            group in proptest::option::of(arb_word()),
            chroot in proptest::option::of(arb_text()),
            flags in arb_flags(),
        ) -> PeerVpnConf {
            PeerVpnConf {
                header, echo, networkname, psk, interface, ifconfig4, ifconfig6, upcmd, local, port, sockmark,
                initpeers: InitPeers::new(initpeers).unwrap_or_default(),
                engine, user, group, chroot, flags,
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::strategies::*;
    use super::*;
    use crate::wgquick::strategies::mutate;
    use crate::wgquick::{Hostname, comments};
    use proptest::prelude::*;

    /// `europe.vpn.example`'s vpn.conf from reference 000 (demo PSK).
    fn europe() -> PeerVpnConf {
        PeerVpnConf {
            header: comments(
                "Generated by vpnsim from scenario eduvpn-locations\nDEMO PSK derived from a seed: not for production",
            )
            .unwrap(),
            networkname: Some(Text::new("VPN").unwrap()),
            psk: Some(Psk::new("demo-P2vH0aYuhVZZGZOITWvYer3p1qo5").unwrap()),
            interface: Some(Word::new("tap0").unwrap()),
            ifconfig4: Some("10.42.42.2/24".parse().unwrap()),
            port: Some(7000),
            initpeers: InitPeers::new(vec![InitPeer {
                host: Host::Name(Hostname::new("vpn.example").unwrap()),
                port: 7000,
            }])
            .unwrap(),
            flags: [(Flag::EnableTunneling, true), (Flag::EnableRelay, false)].into_iter().collect(),
            ..PeerVpnConf::default()
        }
    }

    #[test]
    fn snapshot_europe() {
        let text = europe().emit();
        insta::assert_snapshot!(text);
        assert_eq!(PeerVpnConf::parse(&text).unwrap(), europe());
    }

    #[test]
    fn parses_reference_and_variations() {
        // Exactly the controller's file from reference 000.
        let reference =
            "ifconfig4 10.42.42.1/24\nnetworkname VPN\npsk P2vH0aYuhVZZGZOITWvYer3p1qo57D2w\n";
        let conf = PeerVpnConf::parse(reference).unwrap();
        assert_eq!(conf.network_name(), "VPN");
        assert_eq!(
            conf.psk.as_ref().unwrap().expose(),
            "P2vH0aYuhVZZGZOITWvYer3p1qo57D2w"
        );
        assert!(conf.initpeers.is_empty());
        assert!(conf.flag(Flag::EnableTunneling));
        assert!(!conf.flag(Flag::EnableRelay));

        let text = "\
## PeerVPN configuration
\t initpeers 10.8.6.4 1234\r
initpeers 2001:DB8:1337::1 5678\t10.12.10.8 6420 ; the last line wins
enablerelay\ttrue # comment
echo hello world
port 7000
endconfig
this is not an option
";
        let conf = PeerVpnConf::parse(text).unwrap();
        assert_eq!(conf.header, comments("# PeerVPN configuration").unwrap());
        assert_eq!(
            conf.initpeers.to_string(),
            "2001:db8:1337::1 5678 10.12.10.8 6420"
        );
        assert!(conf.flag(Flag::EnableRelay));
        assert_eq!(conf.echo[0].as_str(), "hello world");
        assert_eq!(conf.port, Some(7000));
    }

    #[test]
    fn rejects_with_line_numbers() {
        for (text, line, needle) in [
            ("networkname VPN\nNetworkName VPN\n", 2, "unknown option"),
            ("# c\n\npsk\n", 3, "needs a value"),
            ("initpeers vpn.example\n", 1, "pairs"),
            ("initpeers vpn.example port\n", 1, "port number"),
            ("enablerelay yess\n", 1, "yes or no"),
            ("ifconfig4 10.42.42.1\n", 1, "ifconfig4"),
            ("sockmark -1\n", 1, "sockmark"),
            ("sockmark 2147483648\n", 1, "sockmark"),
            ("port 70000\n", 1, "port"),
            ("interface tap 0\n", 1, "whitespace"),
        ] {
            let err = PeerVpnConf::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
        let long = format!("psk {}\n", "x".repeat(513));
        assert!(
            PeerVpnConf::parse(&long)
                .unwrap_err()
                .message
                .contains("512")
        );
        assert!(
            !PeerVpnConf::parse(&long)
                .unwrap_err()
                .message
                .contains("xxx"),
            "psk echoed"
        );
    }

    #[test]
    fn psk_is_not_debug_printed() {
        assert!(!format!("{:?}", europe()).contains("P2vH0"));
    }

    proptest! {
        #[test]
        fn roundtrip(conf in arb_peervpn()) {
            let text = conf.emit();
            prop_assert_eq!(PeerVpnConf::parse(&text), Ok(conf), "{}", text);
        }

        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = PeerVpnConf::parse(&text);
        }

        #[test]
        fn parse_never_panics_bytes(bytes in any::<Vec<u8>>()) {
            let _ = PeerVpnConf::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn parse_never_panics_on_mutations(conf in arb_peervpn(), index in any::<usize>(), c in any::<char>()) {
            let _ = PeerVpnConf::parse(&mutate(&conf.emit(), index, c));
        }
    }
}

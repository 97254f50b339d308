//! Round trips, snapshots of the reference files, the reference documents'
//! own snippets read back, rejections, and parsers fed garbage.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use super::apache::{
    ApacheAccess, HostPattern, IpMatch, Require, RequireAny, Section, SectionKind, SectionPath,
};
use super::config::{
    DnsServer, InputRule, IpFamily, NatRule, NodeConfig, NodeFirewall, PortSpec, Proto, ProtoPort,
    ServerApiConfig, VpnProfile,
};
use super::php::{PhpArray, PhpFile, PhpKey, PhpValue};
use super::sysconfig::{DaemonListen, EnvFile, EnvKey, EnvValue, VpnDaemonSysconfig};
use super::yaml::YamlDoc;
use super::{CommentLine, Map, Secret, Value, examples};
use crate::format::{Format, ParseError};

// ---------------------------------------------------------------------------
// Strategies
// ---------------------------------------------------------------------------

const TRICKY: &[&str] = &[
    "",
    "1",
    "-1",
    "0",
    "-0",
    "+1",
    "01",
    "1.5",
    "1.",
    ".5",
    "1e5",
    "1e+5",
    "yes",
    "No",
    "ON",
    "off",
    "y",
    "n",
    "null",
    "Null",
    "~",
    "true",
    "False",
    "nan",
    ".inf",
    "-.inf",
    ".NaN",
    "0x1F",
    "0o17",
    "0b11",
    "0755",
    "08",
    "1_000",
    "12:30",
    "190:20:30",
    "2024-01-01",
    "2001-12-14t21:59:43.10-05:00",
    "fd00::/48",
    "::",
    "8.8.8.8",
    "10.0.0.0/24",
    "0.0.0.0",
    "- a",
    "-",
    "-a",
    "a: b",
    "a:b",
    "a:",
    ":",
    "#x",
    "a #b",
    "a#b",
    "[a]",
    "{}",
    "{a: b}",
    "'",
    "''",
    "\"",
    "\\",
    "\\n",
    "\0",
    "a\0b",
    "\0\0",
    "a\nb",
    "\r\n",
    "\t",
    " lead",
    "trail ",
    "@GW4@",
    "<<",
    "=",
    "?",
    "?x",
    "? x",
    ":x",
    "|",
    ">",
    "&a",
    "*a",
    "!tag",
    "%x",
    "`",
    ",",
    "é",
    "日本",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{2029}",
    "\u{feff}",
    "\u{fffe}",
    "\u{ffff}",
    "\u{1f600}",
    "\u{7f}",
    "?>",
    "<?php",
    "$x",
    "{$x}",
    "${x}",
    "//",
    "/*",
    "*/",
    "array",
    "NULL",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "-9223372036854775807-1",
];

fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => "[a-zA-Z0-9_./@-]{0,12}",
        2 => "[ -~]{0,12}",
        2 => any::<String>(),
        3 => prop::sample::select(TRICKY).prop_map(String::from),
        1 => (prop::sample::select(TRICKY), prop::sample::select(TRICKY)).prop_map(|(a, b)| format!("{a}{b}")),
    ]
}

fn arb_int() -> impl Strategy<Value = i64> {
    prop_oneof![
        any::<i64>(),
        Just(i64::MIN),
        Just(i64::MAX),
        Just(i64::MIN + 1),
        -3..3i64
    ]
}

fn arb_comment() -> impl Strategy<Value = CommentLine> {
    prop_oneof!["[ -~]{0,20}", arb_text()]
        .prop_filter_map("valid comment", |s| CommentLine::new(s).ok())
}

fn arb_header() -> impl Strategy<Value = Vec<CommentLine>> {
    vec(arb_comment(), 0..3)
}

fn arb_php_key() -> impl Strategy<Value = PhpKey> {
    prop_oneof![
        arb_int().prop_map(PhpKey::Int),
        arb_text().prop_map(PhpKey::from)
    ]
}

fn php_array(entries: Vec<(PhpKey, PhpValue)>) -> PhpArray {
    let mut a = PhpArray::new();
    for (k, v) in entries {
        a.insert(k, v);
    }
    a
}

fn arb_php_value() -> impl Strategy<Value = PhpValue> {
    let leaf = prop_oneof![
        Just(PhpValue::Null),
        any::<bool>().prop_map(PhpValue::Bool),
        arb_int().prop_map(PhpValue::Int),
        arb_text().prop_map(PhpValue::Str),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(|l| PhpValue::Array(PhpArray::list(l))),
            vec((arb_php_key(), inner), 0..5).prop_map(|e| PhpValue::Array(php_array(e))),
        ]
    })
}

fn arb_php_file() -> impl Strategy<Value = PhpFile> {
    (arb_header(), vec((arb_php_key(), arb_php_value()), 0..6)).prop_map(|(header, entries)| {
        PhpFile {
            header,
            root: php_array(entries),
        }
    })
}

fn arb_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        arb_int().prop_map(Value::Int),
        arb_text().prop_map(Value::Str),
    ];
    leaf.prop_recursive(4, 40, 5, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..5).prop_map(Value::List),
            vec((arb_text(), inner), 0..5).prop_map(|e| Value::Map(e.into_iter().collect())),
        ]
    })
}

fn arb_yaml_doc() -> impl Strategy<Value = YamlDoc> {
    (arb_header(), arb_value()).prop_map(|(header, root)| YamlDoc { header, root })
}

fn arb_ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<Ipv4Addr>().prop_map(IpAddr::V4),
        any::<Ipv6Addr>().prop_map(IpAddr::V6)
    ]
}

fn arb_ipv4net() -> impl Strategy<Value = Ipv4Net> {
    (any::<Ipv4Addr>(), 0..=32u8).prop_filter_map("prefix", |(a, l)| Ipv4Net::new(a, l).ok())
}

fn arb_ipv6net() -> impl Strategy<Value = Ipv6Net> {
    (any::<Ipv6Addr>(), 0..=128u8).prop_filter_map("prefix", |(a, l)| Ipv6Net::new(a, l).ok())
}

fn arb_ipnet() -> impl Strategy<Value = IpNet> {
    prop_oneof![
        arb_ipv4net().prop_map(IpNet::V4),
        arb_ipv6net().prop_map(IpNet::V6)
    ]
}

fn arb_require() -> impl Strategy<Value = Require> {
    prop_oneof![
        Just(Require::Local),
        Just(Require::AllGranted),
        Just(Require::AllDenied),
        arb_ip().prop_map(|a| Require::Ip(IpMatch::Addr(a))),
        arb_ipnet().prop_map(|n| Require::Ip(IpMatch::Net(n))),
        "[a-zA-Z0-9_.-]{1,12}"
            .prop_filter_map("host", |h| HostPattern::new(h).ok().map(Require::Host)),
    ]
}

fn arb_apache() -> impl Strategy<Value = ApacheAccess> {
    let section = (
        prop_oneof![Just(SectionKind::Location), Just(SectionKind::Directory)],
        "/[a-zA-Z0-9_./~-]{0,15}".prop_filter_map("path", |p| SectionPath::new(p).ok()),
    )
        .prop_map(|(kind, path)| Section { kind, path });
    (arb_header(), option::of(section), vec(arb_require(), 1..6)).prop_filter_map(
        "rules",
        |(header, section, rules)| {
            RequireAny::new(rules).ok().map(|require_any| ApacheAccess {
                header,
                section,
                require_any,
            })
        },
    )
}

fn arb_env() -> impl Strategy<Value = EnvFile> {
    let entry = (
        "[A-Za-z_][A-Za-z0-9_]{0,8}".prop_filter_map("key", |k| EnvKey::new(k).ok()),
        arb_text().prop_filter_map("value", |v| EnvValue::new(v).ok()),
    );
    (arb_header(), vec(entry, 0..5)).prop_map(|(header, entries)| {
        let mut f = EnvFile::new();
        f.header = header;
        for (k, v) in entries {
            f.set(k, v);
        }
        f
    })
}

fn arb_daemon() -> impl Strategy<Value = VpnDaemonSysconfig> {
    (
        arb_header(),
        any::<bool>(),
        option::of((option::of(arb_ip()), any::<u16>())),
    )
        .prop_map(|(header, enable_tls, listen)| VpnDaemonSysconfig {
            header,
            enable_tls,
            listen: listen.map(|(addr, port)| DaemonListen { addr, port }),
        })
}

fn ob() -> impl Strategy<Value = Option<bool>> {
    option::of(any::<bool>())
}

fn arb_name() -> impl Strategy<Value = String> {
    prop_oneof![3 => "[a-z][a-z0-9-]{0,8}", 1 => arb_text()]
}

fn dedup<T>(items: Vec<(String, T)>) -> Vec<(String, T)> {
    let mut out: Vec<(String, T)> = Vec::new();
    for (k, v) in items {
        if !out.iter().any(|(o, _)| *o == k) {
            out.push((k, v));
        }
    }
    out
}

/// Unmodelled keys (all start with `x`, which no modelled key does), with
/// values as PHP gives them back (empty maps and 0..n maps are lists).
fn arb_extra() -> impl Strategy<Value = Map> {
    vec(("x[a-zA-Z0-9]{0,6}", arb_value()), 0..3).prop_map(|e| {
        e.into_iter()
            .map(|(k, v)| (k, PhpValue::from_value(&v).to_value()))
            .collect()
    })
}

fn arb_proto() -> impl Strategy<Value = Proto> {
    prop_oneof![Just(Proto::Udp), Just(Proto::Tcp)]
}

fn arb_proto_port() -> impl Strategy<Value = ProtoPort> {
    (arb_proto(), any::<u16>()).prop_map(|(proto, port)| ProtoPort { proto, port })
}

fn arb_dns() -> impl Strategy<Value = DnsServer> {
    prop_oneof![4 => arb_ip().prop_map(DnsServer::Addr), 1 => Just(DnsServer::Gw4), 1 => Just(DnsServer::Gw6)]
}

fn arb_profile_base() -> BoxedStrategy<VpnProfile> {
    let a = (
        option::of(any::<u32>()),
        option::of(arb_text()),
        option::of(arb_text()),
        ob(),
        ob(),
        option::of(arb_text()),
        option::of(arb_ipv4net()),
        option::of(arb_ipv6net()),
        option::of(vec(arb_dns(), 0..3)),
        ob(),
        option::of(arb_ip()),
        option::of(arb_ip()),
    )
        .boxed();
    let b = (
        ob(),
        option::of(vec(arb_proto_port(), 0..3)),
        option::of(vec(arb_proto_port(), 0..2)),
        option::of(vec(arb_ipnet(), 0..3)),
        ob(),
        ob(),
        ob(),
        ob(),
        ob(),
        ob(),
        ob(),
        option::of(vec(arb_text(), 0..3)),
    )
        .boxed();
    // Boxed parts keep the strategy's value tree shallow: unboxed, it overflowed
    // the 2 MiB test-thread stack in debug builds.
    let c = (ob(), ob(), ob(), arb_extra()).boxed();
    (a, b, c)
        .prop_map(|(a, b, c)| VpnProfile {
            profile_number: a.0,
            display_name: a.1,
            ext_if: a.2,
            use_nat: a.3,
            default_gateway: a.4,
            host_name: a.5,
            range: a.6,
            range6: a.7,
            dns: a.8,
            use_proxy: a.9,
            listen: a.10,
            management_ip: a.11,
            hide_profile: b.0,
            vpn_proto_ports: b.1,
            exposed_vpn_proto_ports: b.2,
            routes: b.3,
            reject4: b.4,
            reject6: b.5,
            client_to_client: b.6,
            block_lan: b.7,
            block_smb: b.8,
            enable_log: b.9,
            enable_acl: b.10,
            acl_group_list: b.11,
            two_factor: c.0,
            tls_crypt: c.1,
            enable_compression: c.2,
            multi_node: None,
            extra: c.3,
        })
        .boxed()
}

fn arb_profile() -> impl Strategy<Value = VpnProfile> {
    (
        arb_profile_base(),
        option::of(vec((arb_name(), arb_profile_base()), 0..3)),
    )
        .prop_map(|(mut p, nodes)| {
            p.multi_node = nodes.map(dedup);
            p
        })
}

fn arb_server_api() -> impl Strategy<Value = ServerApiConfig> {
    (
        arb_header(),
        option::of(vec((arb_name(), arb_text().prop_map(Secret::new)), 0..3)),
        ob(),
        vec((arb_name(), arb_profile()), 0..3),
        arb_extra(),
    )
        .prop_map(
            |(header, consumers, use_vpn_daemon, profiles, extra)| ServerApiConfig {
                header,
                api_consumers: consumers.map(dedup),
                use_vpn_daemon,
                vpn_profiles: dedup(profiles),
                extra,
            },
        )
}

fn arb_node_config() -> impl Strategy<Value = NodeConfig> {
    (
        arb_header(),
        option::of(arb_text()),
        option::of(arb_text().prop_map(Secret::new)),
        option::of(arb_text()),
        ob(),
        option::of(vec(arb_name(), 0..3)),
        ob(),
        arb_extra(),
    )
        .prop_map(
            |(
                header,
                api_user,
                api_pass,
                api_uri,
                use_vpn_daemon,
                profile_list,
                manage_firewall,
                extra,
            )| {
                NodeConfig {
                    header,
                    api_user,
                    api_pass,
                    api_uri,
                    use_vpn_daemon,
                    profile_list,
                    manage_firewall,
                    extra,
                }
            },
        )
}

fn arb_port_spec() -> impl Strategy<Value = PortSpec> {
    prop_oneof![
        (1..=u16::MAX).prop_map(PortSpec::Port),
        (1..=u16::MAX, 1..=u16::MAX).prop_map(|(a, b)| PortSpec::Range(a.min(b), a.max(b))),
    ]
}

fn arb_firewall() -> impl Strategy<Value = NodeFirewall> {
    let rule = (
        vec(arb_proto(), 0..3),
        option::of(vec(arb_ipnet(), 0..3)),
        option::of(vec(arb_port_spec(), 0..3)),
    )
        .prop_map(|(proto, src_net, dst_port)| InputRule {
            proto,
            src_net,
            dst_port,
        });
    let family = prop_oneof![Just(IpFamily::V4), Just(IpFamily::V6)];
    let nat = vec(family, 0..3).prop_map(|enable_nat| NatRule { enable_nat });
    (
        arb_header(),
        option::of(vec(rule, 0..4)),
        option::of(vec((arb_name(), nat), 0..3)),
        arb_extra(),
    )
        .prop_map(|(header, input_rules, nat_rules, extra)| NodeFirewall {
            header,
            input_rules,
            nat_rules: nat_rules.map(dedup),
            extra,
        })
}

// ---------------------------------------------------------------------------
// Mutations of valid texts
// ---------------------------------------------------------------------------

const NOISE: &[char] = &[
    '\'', '"', '\\', '[', ']', '(', ')', ',', '=', '>', '<', '-', ' ', '\n', '\t', ':', '#', '/',
    '*', '?', '0', '9', 'a', '{', '}', '$', '.', 'é', '\0', '\r', '|', '&', '!', '%', '@', '`',
    '~', ';', '\u{85}', '\u{feff}',
];

type Edit = (usize, u8, char);

fn arb_edits() -> impl Strategy<Value = Vec<Edit>> {
    vec((any::<usize>(), 0..6u8, prop::sample::select(NOISE)), 1..8)
}

fn boundary(s: &str, i: usize) -> usize {
    let mut i = i % (s.len() + 1);
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn mutate(text: &str, edits: &[Edit]) -> String {
    let mut s = text.to_string();
    for &(at, op, c) in edits {
        let i = boundary(&s, at);
        match op {
            0 => s.insert(i, c),
            1 => {
                if let Some(ch) = s[i..].chars().next() {
                    s.replace_range(i..i + ch.len_utf8(), "");
                }
            }
            2 => {
                if let Some(ch) = s[i..].chars().next() {
                    s.replace_range(i..i + ch.len_utf8(), c.encode_utf8(&mut [0; 4]));
                }
            }
            3 => {
                let j = boundary(&s, at / 7);
                let (a, b) = (i.min(j), i.max(j));
                let piece = s[a..b].to_string();
                s.insert_str(b, &piece);
            }
            4 => s.truncate(i),
            _ => s.insert_str(i, &c.to_string().repeat(3)),
        }
    }
    s
}

/// Parsing never panics, and whatever parses is valid: it emits and parses
/// back to itself.
fn check_parse<T: Format + PartialEq + std::fmt::Debug>(text: &str) -> Result<(), TestCaseError> {
    if let Ok(v) = T::parse(text) {
        let again = v.emit();
        let reparsed = T::parse(&again);
        prop_assert_eq!(reparsed.as_ref(), Ok(&v), "re-emitted:\n{}", again);
    }
    Ok(())
}

fn check_all_parsers(text: &str) -> Result<(), TestCaseError> {
    check_parse::<PhpFile>(text)?;
    check_parse::<YamlDoc>(text)?;
    check_parse::<ApacheAccess>(text)?;
    check_parse::<EnvFile>(text)?;
    check_parse::<VpnDaemonSysconfig>(text)?;
    check_parse::<ServerApiConfig>(text)?;
    check_parse::<NodeConfig>(text)?;
    check_parse::<NodeFirewall>(text)?;
    if let Ok(c) = ServerApiConfig::parse_yaml(text) {
        prop_assert_eq!(ServerApiConfig::parse_yaml(&c.emit_yaml()), Ok(c));
    }
    if let Ok(c) = NodeConfig::parse_yaml(text) {
        prop_assert_eq!(NodeConfig::parse_yaml(&c.emit_yaml()), Ok(c));
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn php_round_trip(f in arb_php_file()) {
        let text = f.emit();
        prop_assert_eq!(PhpFile::parse(&text), Ok(f), "text:\n{}", text);
    }

    #[test]
    fn yaml_round_trip(d in arb_yaml_doc()) {
        let text = d.emit();
        prop_assert_eq!(YamlDoc::parse(&text), Ok(d), "text:\n{}", text);
    }

    #[test]
    fn apache_round_trip(a in arb_apache()) {
        let text = a.emit();
        prop_assert_eq!(ApacheAccess::parse(&text), Ok(a), "text:\n{}", text);
    }

    #[test]
    fn env_round_trip(e in arb_env()) {
        let text = e.emit();
        prop_assert_eq!(EnvFile::parse(&text), Ok(e), "text:\n{}", text);
    }

    #[test]
    fn vpn_daemon_round_trip(d in arb_daemon()) {
        prop_assert_eq!(VpnDaemonSysconfig::parse(&d.emit()), Ok(d));
    }

    #[test]
    fn server_api_php_round_trip(c in arb_server_api()) {
        let text = c.emit();
        prop_assert_eq!(ServerApiConfig::parse(&text), Ok(c), "text:\n{}", text);
    }

    #[test]
    fn server_api_yaml_round_trip(c in arb_server_api()) {
        let text = c.emit_yaml();
        prop_assert_eq!(ServerApiConfig::parse_yaml(&text), Ok(c), "text:\n{}", text);
    }

    #[test]
    fn node_config_round_trip(c in arb_node_config()) {
        prop_assert_eq!(NodeConfig::parse(&c.emit()), Ok(c));
    }

    #[test]
    fn node_config_yaml_round_trip(c in arb_node_config()) {
        let text = c.emit_yaml();
        prop_assert_eq!(NodeConfig::parse_yaml(&text), Ok(c), "text:\n{}", text);
    }

    #[test]
    fn firewall_round_trip(c in arb_firewall()) {
        prop_assert_eq!(NodeFirewall::parse(&c.emit()), Ok(c));
    }

    /// PHP arrays and the shared model: a map-shaped value survives the
    /// trip through PHP once it is in PHP's canonical form.
    #[test]
    fn php_value_model(v in arb_value()) {
        let canonical = PhpValue::from_value(&v).to_value();
        prop_assert_eq!(PhpValue::from_value(&canonical).to_value(), canonical);
    }

    #[test]
    fn parsers_take_any_string(s in any::<String>()) {
        check_all_parsers(&s)?;
    }

    #[test]
    fn parsers_take_near_php(s in "<\\?php (return )?[\\[\\]()'\"a-z0-9,=> .$\\\\/#*\n-]{0,60};?") {
        check_all_parsers(&s)?;
    }

    #[test]
    fn parsers_take_near_yaml(s in "([ -]{0,6}[a-z0-9'\"\\[\\]{},:#.~ -]{0,12}\n){0,8}") {
        check_all_parsers(&s)?;
    }

    #[test]
    fn mutated_php(f in arb_php_file(), edits in arb_edits()) {
        check_all_parsers(&mutate(&f.emit(), &edits))?;
    }

    #[test]
    fn mutated_yaml(d in arb_yaml_doc(), edits in arb_edits()) {
        check_all_parsers(&mutate(&d.emit(), &edits))?;
    }

    #[test]
    fn mutated_apache(a in arb_apache(), edits in arb_edits()) {
        check_all_parsers(&mutate(&a.emit(), &edits))?;
    }

    #[test]
    fn mutated_env(e in arb_env(), edits in arb_edits()) {
        check_all_parsers(&mutate(&e.emit(), &edits))?;
    }

    #[test]
    fn mutated_server_api(c in arb_server_api(), edits in arb_edits()) {
        // One strategy per test: the combined strategy tree overflowed the
        // 2 MiB test-thread stack in debug builds.
        check_all_parsers(&mutate(&c.emit(), &edits))?;
        check_all_parsers(&mutate(&c.emit_yaml(), &edits))?;
    }

    #[test]
    fn mutated_firewall(f in arb_firewall(), edits in arb_edits()) {
        check_all_parsers(&mutate(&f.emit(), &edits))?;
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let php = format!("<?php return {};", "[".repeat(100_000));
    assert!(PhpFile::parse(&php).is_err());
    let flow = format!("{}\n", "[".repeat(100_000));
    assert!(YamlDoc::parse(&flow).is_err());
    let block = format!("{}a\n", "- ".repeat(100_000));
    assert!(YamlDoc::parse(&block).is_err());
    let mut nested = String::new();
    for i in 0..200 {
        nested.push_str(&" ".repeat(i));
        nested.push_str("k:\n");
    }
    assert!(YamlDoc::parse(&nested).is_err());
    // 64 levels are fine.
    let ok = format!("<?php return {}{};", "[".repeat(63), "]".repeat(63));
    assert!(PhpFile::parse(&ok).is_ok());
}

// ---------------------------------------------------------------------------
// Snapshots of the reference files
// ---------------------------------------------------------------------------

#[test]
fn snapshot_multinode_controller_config_php() {
    let c = examples::multinode_controller();
    let text = c.emit();
    insta::assert_snapshot!("multinode_controller_config_php", text);
    assert_eq!(ServerApiConfig::parse(&text), Ok(c));
}

#[test]
fn snapshot_multinode_node_a_config_php() {
    let c = examples::multinode_node("node-a");
    let text = c.emit();
    insta::assert_snapshot!("multinode_node_a_config_php", text);
    assert_eq!(NodeConfig::parse(&text), Ok(c));
}

#[test]
fn snapshot_multinode_node_a_firewall_php() {
    let c = examples::multinode_firewall("node-a");
    let text = c.emit();
    insta::assert_snapshot!("multinode_node_a_firewall_php", text);
    assert_eq!(NodeFirewall::parse(&text), Ok(c));
}

#[test]
fn snapshot_multinode_api_require_any() {
    let a = examples::multinode_api_access();
    let text = a.emit();
    insta::assert_snapshot!("multinode_vpn_server_api_require_any_conf", text);
    assert_eq!(ApacheAccess::parse(&text), Ok(a.clone()));
    let bare = ApacheAccess { section: None, ..a };
    insta::assert_snapshot!("multinode_require_any_standalone_conf", bare.emit());
    assert_eq!(ApacheAccess::parse(&bare.emit()), Ok(bare));
}

#[test]
fn snapshot_multinode_vpn_daemon_sysconfig() {
    let d = examples::multinode_vpn_daemon();
    let text = d.emit();
    insta::assert_snapshot!("multinode_sysconfig_vpn_daemon", text);
    assert_eq!(VpnDaemonSysconfig::parse(&text), Ok(d));
}

#[test]
fn snapshot_locations_config_yaml() {
    let c = examples::locations_config();
    let text = c.emit_yaml();
    insta::assert_snapshot!("locations_config_yaml", text);
    assert_eq!(ServerApiConfig::parse_yaml(&text), Ok(c));
}

#[test]
fn snapshot_more_servers_config_yaml() {
    let c = examples::more_servers_config();
    let text = c.emit_yaml();
    insta::assert_snapshot!("more_servers_config_yaml", text);
    assert_eq!(ServerApiConfig::parse_yaml(&text), Ok(c));
}

// ---------------------------------------------------------------------------
// The reference documents' own snippets, read back
// ---------------------------------------------------------------------------

/// Configuration snippets of the reference documents (000: eduVPN
/// multi-node draft, 001: multi-node how-to), cut out verbatim with their
/// markdown indentation removed, so the tests do not need the documents.
fn fixture(name: &str) -> &'static str {
    match name {
        "000-more-locations.yaml" => include_str!("testdata/000-more-locations.yaml"),
        "000-more-servers.yaml" => include_str!("testdata/000-more-servers.yaml"),
        "001-require-any.conf" => include_str!("testdata/001-require-any.conf"),
        "001-vpn-daemon.env" => include_str!("testdata/001-vpn-daemon.env"),
        "001-controller-skeleton.php" => include_str!("testdata/001-controller-skeleton.php"),
        "001-node-config-lines.php" => include_str!("testdata/001-node-config-lines.php"),
        "001-firewall-input-rules.php" => include_str!("testdata/001-firewall-input-rules.php"),
        "001-firewall-nat-rules.php" => include_str!("testdata/001-firewall-nat-rules.php"),
        other => panic!("no fixture {other}"),
    }
}

#[test]
fn reference_000_more_locations_yaml_reads_as_the_example() {
    let yaml = fixture("000-more-locations.yaml").to_string();
    assert_eq!(
        ServerApiConfig::parse_yaml(&yaml),
        Ok(examples::locations_config()),
        "\n{yaml}"
    );
}

#[test]
fn reference_000_more_servers_yaml_reads_as_the_example() {
    let yaml = fixture("000-more-servers.yaml").to_string();
    assert_eq!(
        ServerApiConfig::parse_yaml(&yaml),
        Ok(examples::more_servers_config()),
        "\n{yaml}"
    );
}

#[test]
fn reference_001_require_any_reads_as_the_example() {
    let conf = fixture("001-require-any.conf").to_string();
    let parsed = ApacheAccess::parse(&conf);
    let want = ApacheAccess {
        section: None,
        ..examples::multinode_api_access()
    };
    assert_eq!(parsed, Ok(want), "\n{conf}");
}

#[test]
fn reference_001_vpn_daemon_reads_as_the_example() {
    let env = fixture("001-vpn-daemon.env").to_string();
    assert_eq!(
        VpnDaemonSysconfig::parse(&env),
        Ok(examples::multinode_vpn_daemon()),
        "\n{env}"
    );
}

#[test]
fn reference_001_php_snippets_parse() {
    // The controller skeleton with `// ...` comments inside the arrays.
    let skeleton = fixture("001-controller-skeleton.php").to_string();
    let c = ServerApiConfig::parse(&skeleton).unwrap_or_else(|e| panic!("{e}\n{skeleton}"));
    assert_eq!(c.use_vpn_daemon, Some(true));
    assert_eq!(
        c.vpn_profiles
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["node-a", "node-b"]
    );

    // The node config lines, wrapped into a file.
    let lines = fixture("001-node-config-lines.php").to_string();
    let node = NodeConfig::parse(&format!("<?php\n\nreturn [\n{lines}];\n"))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(node.use_vpn_daemon, Some(true));
    assert_eq!(node.profile_list, Some(vec!["node-a".to_string()]));

    // The firewall fragments, wrapped into a file.
    let input = fixture("001-firewall-input-rules.php").to_string();
    let nat = fixture("001-firewall-nat-rules.php").to_string();
    let text = format!("<?php\n\nreturn [\n'inputRules' => [\n{input}],\n{nat}];\n");
    let fw = NodeFirewall::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let want = examples::multinode_firewall("node-a");
    let rules = want.input_rules.as_deref().unwrap_or_default();
    assert_eq!(fw.input_rules.as_deref(), Some(&rules[1..2]));
    assert_eq!(fw.nat_rules, want.nat_rules);
}

// ---------------------------------------------------------------------------
// Accepted and rejected texts
// ---------------------------------------------------------------------------

fn php(text: &str) -> Result<PhpFile, ParseError> {
    PhpFile::parse(text)
}

#[test]
fn php_accepts_the_documented_subset() {
    let text = "<?PHP\n\ndeclare(strict_types=1);\n// head one\n#  head two\n/* not header */\nreturn ARRAY (\n  'a' => [1, 2, 3,],\n  \"b\\x41\\101\\u{e9}\\$\\q\" => 'it\\'s \\\\ \\n',\n  5 => NULL, 'x',\n  -9223372036854775807-1 => -9223372036854775807-1,\n  'c' . \"\\0\" . 'd' => - 5, // trailing\n  '07' => '7', '7' => TRUE,\n) ;\n?>\n";
    let f = php(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        f.header.iter().map(CommentLine::as_str).collect::<Vec<_>>(),
        ["head one", " head two"]
    );
    let get = |k: PhpKey| f.root.get(k).cloned();
    assert_eq!(
        get("a".into()),
        Some(PhpValue::Array(PhpArray::list(
            [1, 2, 3].map(PhpValue::Int)
        )))
    );
    assert_eq!(
        get("bAA\u{e9}$\\q".into()),
        Some(PhpValue::Str("it's \\ \\n".into()))
    );
    assert_eq!(get(5.into()), Some(PhpValue::Null));
    assert_eq!(get(6.into()), Some(PhpValue::Str("x".into())));
    assert_eq!(get(i64::MIN.into()), Some(PhpValue::Int(i64::MIN)));
    assert_eq!(get("c\0d".into()), Some(PhpValue::Int(-5)));
    assert_eq!(
        get(PhpKey::Str("07".into())),
        Some(PhpValue::Str("7".into()))
    );
    assert_eq!(get(7.into()), Some(PhpValue::Bool(true)));
    // var_export's own form of the smallest key.
    assert!(php("<?php return [-9223372036854775808 => 1];").is_ok());
}

#[test]
fn php_rejects_with_the_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("", 1, "starts with `<?php`"),
        (" <?php return [];", 1, "starts with `<?php`"),
        ("<?phpreturn [];", 1, "white space"),
        ("<?php\nreturn [];\n?>\nhello", 3, "printed by PHP"),
        ("<?php\nreturn 'x';", 2, "must return an array"),
        ("<?php\nreturn [\n'a' => 1.5];", 3, "floating-point"),
        ("<?php\nreturn [\n'a' => 1e3];", 3, "decimal integer"),
        ("<?php\nreturn [0x1F];", 2, "decimal integer"),
        ("<?php\nreturn [\n\n017];", 4, "octal"),
        ("<?php\nreturn [9223372036854775808];", 2, "64-bit"),
        ("<?php\nreturn [-9223372036854775808];", 2, "is a float"),
        ("<?php\nreturn [FOO];", 2, "constants"),
        ("<?php\nreturn [$x];", 2, "variables"),
        ("<?php\nreturn [\"a$x\"];", 2, "interpolation"),
        (
            "<?php\nreturn ['a' => 1,\n'a' => 2];",
            3,
            "duplicate key 'a'",
        ),
        ("<?php\nreturn [1 => 1,\n'1' => 2];", 3, "duplicate key 1"),
        ("<?php\nreturn [true => 1];", 2, "integers or strings"),
        ("<?php\nreturn [-5 => 1, 2];", 2, "negative"),
        (
            "<?php\nreturn [9223372036854775807 => 1, 2];",
            2,
            "occupied",
        ),
        ("<?php\nreturn [1 + 2];", 2, "unexpected character '+'"),
        ("<?php\nreturn [1 - 2];", 2, "expected `,` or `]`"),
        ("<?php\nreturn ['a' . 1];", 2, "only string literals"),
        ("<?php\nreturn [,];", 2, "expected a value"),
        ("<?php\nreturn [\n'a'\n", 4, "expected `,` or `]`"),
        (
            "<?php\nreturn [];\nreturn [];",
            3,
            "after the return statement",
        ),
        ("<?php\n/* open\n\nreturn [];", 2, "unterminated `/*`"),
        ("<?php\nreturn ['abc\n\n];", 2, "unterminated string"),
        ("<?php\nreturn <<<EOT\nx\nEOT;", 2, "heredoc"),
        ("<?php\n// a ?> b\nreturn [];", 2, "expected `return`"),
    ];
    for (text, line, msg) in cases {
        match php(text) {
            Err(e) => {
                assert_eq!(e.line, *line, "{text:?}: {e}");
                assert!(e.message.contains(msg), "{text:?}: {e} (wanted {msg:?})");
            }
            Ok(f) => panic!("{text:?} parsed: {f:?}"),
        }
    }
}

#[test]
fn php_emits_var_export() {
    let mut inner = PhpArray::new();
    inner.insert("x", 1);
    inner.insert("e", PhpArray::new());
    let mut root = PhpArray::new();
    root.insert("a", true);
    root.insert("b", inner);
    root.insert("n", PhpValue::Null);
    root.insert("s", "it's \\ back\nnl");
    root.insert("z", "a\0b");
    root.insert("min", i64::MIN);
    root.insert(-3, "m");
    let want = "array (\n  'a' => true,\n  'b' => \n  array (\n    'x' => 1,\n    'e' => \n    array (\n    ),\n  ),\n  'n' => NULL,\n  's' => 'it\\'s \\\\ back\nnl',\n  'z' => 'a' . \"\\0\" . 'b',\n  'min' => -9223372036854775807-1,\n  -3 => 'm',\n)";
    let file = PhpFile::new(root);
    assert_eq!(file.export(), want);
    assert_eq!(file.emit(), format!("<?php\nreturn {want};\n"));
}

#[test]
fn php_keys_are_cast_like_php() {
    assert_eq!(PhpKey::from("5"), PhpKey::Int(5));
    assert_eq!(PhpKey::from("-5"), PhpKey::Int(-5));
    assert_eq!(PhpKey::from("-9223372036854775808"), PhpKey::Int(i64::MIN));
    for s in [
        "05",
        "-0",
        "+5",
        " 5",
        "5 ",
        "9223372036854775808",
        "1e3",
        "",
    ] {
        assert_eq!(PhpKey::from(s), PhpKey::Str(s.into()), "{s:?}");
    }
}

fn yaml(text: &str) -> Result<Value, ParseError> {
    YamlDoc::parse(text).map(|d| d.root)
}

fn map(entries: Vec<(&str, Value)>) -> Value {
    Value::Map(entries.into_iter().collect())
}

fn s(v: &str) -> Value {
    Value::Str(v.into())
}

#[test]
fn yaml_accepts_the_documented_subset() {
    let text = "# head\n---\nOpenVpn:\n    - id: udp_1194\n      socket: tcp://localhost:7505 # comment\n\n    - id: tcp_443\nlist:\n- a\n- - b\n  - c\n-\n  k: v\n- ''\nflow: [1, 'x y', \"q\\tq\", [], {}, ~, ]\nempty:\nnested:\n  deeper:\n     - true\n'quoted key': \"\\u00e9\\x41\"\nn: -5\np: +7\ns: a b#c\n...\n";
    let want = map(vec![
        (
            "OpenVpn",
            Value::List(vec![
                map(vec![
                    ("id", s("udp_1194")),
                    ("socket", s("tcp://localhost:7505")),
                ]),
                map(vec![("id", s("tcp_443"))]),
            ]),
        ),
        (
            "list",
            Value::List(vec![
                s("a"),
                Value::List(vec![s("b"), s("c")]),
                map(vec![("k", s("v"))]),
                s(""),
            ]),
        ),
        (
            "flow",
            Value::List(vec![
                Value::Int(1),
                s("x y"),
                s("q\tq"),
                Value::List(vec![]),
                Value::Map(Map::new()),
                Value::Null,
            ]),
        ),
        ("empty", Value::Null),
        (
            "nested",
            map(vec![("deeper", Value::List(vec![Value::Bool(true)]))]),
        ),
        ("quoted key", s("\u{e9}A")),
        ("n", Value::Int(-5)),
        ("p", Value::Int(7)),
        ("s", s("a b#c")),
    ]);
    assert_eq!(yaml(text), Ok(want));
    let doc = YamlDoc::parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        doc.header
            .iter()
            .map(CommentLine::as_str)
            .collect::<Vec<_>>(),
        ["head"]
    );
    assert_eq!(yaml(""), Ok(Value::Null));
    assert_eq!(yaml("# only a comment\n"), Ok(Value::Null));
    assert_eq!(yaml("plain\n"), Ok(s("plain")));
}

#[test]
fn yaml_rejects_with_the_line() {
    let cases: &[(&str, usize, &str)] = &[
        ("a: 1.5", 1, "number or date"),
        ("a: yes", 1, "YAML 1.1"),
        ("a:\n  b: 0755", 2, "number or date"),
        ("a: 2024-01-01", 1, "number or date"),
        ("a: 12:30", 1, "number or date"),
        ("a: 1e5", 1, "number or date"),
        ("a: 9223372036854775808", 1, "64-bit"),
        ("a: &x 1", 1, "anchors"),
        ("a: *x", 1, "anchors"),
        ("a: !!str 1", 1, "anchors"),
        ("a: |\n  text", 1, "block scalars"),
        ("a: {b: 1}", 1, "flow mappings"),
        ("a: [1,\n 2]", 1, "same line"),
        ("a: [x:y]", 1, "`:` inside"),
        ("a: [?x]", 1, "`?` inside"),
        ("a: 'open", 1, "unterminated"),
        ("a: \"\\q\"", 1, "unknown escape"),
        ("a: b: c", 1, "`: `"),
        ("a: - b", 1, "cannot start"),
        ("a: 1\na: 2", 2, "duplicate key"),
        ("1: x", 1, "keys must be strings"),
        ("null: x", 1, "keys must be strings"),
        ("a:\n  b: 1\n c: 2", 3, "indentation"),
        ("a: 1\n  b: 2", 2, "indentation"),
        ("a: x\n  continued", 2, "indentation"),
        ("a:\n\t- b", 2, "tab"),
        ("a: b\tc", 1, "tab"),
        ("? a\n: b", 1, "complex keys"),
        ("%YAML 1.1\n---\na: 1", 1, "directives"),
        ("a: 1\n---\nb: 2", 2, "several documents"),
        ("a: 1\n...\nb: 2", 3, "after the document end"),
        ("a: \u{85}", 1, "U+0085"),
        ("\u{feff}a: 1", 1, "U+FEFF"),
        ("a: 'x' y", 1, "unexpected text"),
        ("- a\nb: 1", 2, "unexpected content"),
    ];
    for (text, line, msg) in cases {
        match yaml(text) {
            Err(e) => {
                assert_eq!(e.line, *line, "{text:?}: {e}");
                assert!(e.message.contains(msg), "{text:?}: {e} (wanted {msg:?})");
            }
            Ok(v) => panic!("{text:?} parsed: {v:?}"),
        }
    }
}

#[test]
fn yaml_quotes_what_would_read_as_something_else() {
    let doc = |v: &str| YamlDoc::new(map(vec![("k", s(v))])).emit();
    for (v, want) in [
        ("10.0.0.0/24", "k: 10.0.0.0/24\n"),
        ("8.8.8.8", "k: 8.8.8.8\n"),
        ("0.0.0.0", "k: 0.0.0.0\n"),
        ("eth0", "k: eth0\n"),
        ("fd00:4242:4242::/48", "k: 'fd00:4242:4242::/48'\n"),
        ("1", "k: '1'\n"),
        ("1.5", "k: '1.5'\n"),
        ("yes", "k: 'yes'\n"),
        ("Null", "k: 'Null'\n"),
        ("0755", "k: '0755'\n"),
        ("2024-01-01", "k: '2024-01-01'\n"),
        ("it's", "k: 'it''s'\n"),
        ("a\nb", "k: \"a\\nb\"\n"),
        ("\u{2028}", "k: \"\\u2028\"\n"),
        ("", "k: ''\n"),
    ] {
        assert_eq!(doc(v), want, "{v:?}");
    }
}

#[test]
fn apache_accepts_and_rejects() {
    let ok = "# head\n<location /api>\n  <requireany>\n    require local\n    Require ip 10.0.0.0/8 192.0.2.1 ::1\n    Require host example.org .example.net\n  </RequireAny>\n</Location>\n";
    let a = ApacheAccess::parse(ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a.require_any.rules().len(), 6);
    assert!(
        a.require_any.allows(
            "10.1.2.3"
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        )
    );
    assert!(
        !a.require_any
            .allows(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)))
    );
    let cases: &[(&str, usize, &str)] = &[
        ("<RequireAny>\n</RequireAny>\n", 2, "no authorization"),
        (
            "<RequireAny>\n  Require not ip 10.0.0.1\n</RequireAny>\n",
            2,
            "negated",
        ),
        (
            "<RequireAny>\n  Require ip 10.1\n</RequireAny>\n",
            2,
            "partial",
        ),
        (
            "<RequireAny>\n  Require ip 10.0.0.0/255.0.0.0\n</RequireAny>\n",
            2,
            "netmask",
        ),
        (
            "<RequireAny>\n  Require user bob\n</RequireAny>\n",
            2,
            "unsupported Require provider",
        ),
        ("<RequireAny>\n  Require local\n", 1, "not closed"),
        (
            "<Location /x>\n<RequireAny>\n  Require local\n</RequireAny>\n</Directory>\n",
            5,
            "unexpected `</Directory>`",
        ),
        (
            "<RequireAny>\n  Require local \\\n</RequireAny>\n",
            2,
            "continuations",
        ),
        (
            "<RequireAny>\n  Order allow,deny\n</RequireAny>\n",
            2,
            "unsupported directive",
        ),
        ("Require local\n", 1, "outside"),
    ];
    for (text, line, msg) in cases {
        match ApacheAccess::parse(text) {
            Err(e) => {
                assert_eq!(e.line, *line, "{text:?}: {e}");
                assert!(e.message.contains(msg), "{text:?}: {e} (wanted {msg:?})");
            }
            Ok(v) => panic!("{text:?} parsed: {v:?}"),
        }
    }
}

#[test]
fn env_accepts_and_rejects() {
    let ok = "# head\n\n  A=plain\nB='single quoted $x'\nC=\"double \\\"\\$\\\\ \\q\"\nD=\n";
    let e = EnvFile::parse(ok).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        e.iter().collect::<Vec<_>>(),
        [
            ("A", "plain"),
            ("B", "single quoted $x"),
            ("C", "double \"$\\ \\q"),
            ("D", "")
        ]
    );
    let cases: &[(&str, usize, &str)] = &[
        ("export A=1", 1, "export"),
        ("A = 1", 1, "no spaces"),
        ("1A=1", 1, "invalid variable name"),
        ("A=a b", 1, "quote the value"),
        ("A=$HOME", 1, "quote the value"),
        ("A=\"$HOME\"", 1, "expansions"),
        ("A='open", 1, "unterminated"),
        ("A='a'b", 1, "after the closing quote"),
        ("A='a\\b'", 1, "backslash"),
        ("A=1\nA=2", 2, "twice"),
        ("just words", 1, "NAME=value"),
    ];
    for (text, line, msg) in cases {
        match EnvFile::parse(text) {
            Err(e) => {
                assert_eq!(e.line, *line, "{text:?}: {e}");
                assert!(e.message.contains(msg), "{text:?}: {e} (wanted {msg:?})");
            }
            Ok(v) => panic!("{text:?} parsed: {v:?}"),
        }
    }
    let d = VpnDaemonSysconfig::parse("ENABLE_TLS=-enable-tls\nLISTEN=[::1]:41194\n");
    assert_eq!(
        d.map(|d| d.listen),
        Ok(Some(DaemonListen {
            addr: Some(IpAddr::V6(Ipv6Addr::LOCALHOST)),
            port: 41194
        }))
    );
    assert!(VpnDaemonSysconfig::parse("LISTEN=41194").is_err());
    assert!(VpnDaemonSysconfig::parse("ENABLE_TLS=yes").is_err());
    assert!(VpnDaemonSysconfig::parse("OTHER=1").is_err());
}

#[test]
fn typed_errors_name_the_key_path_and_line() {
    let text = "<?php\nreturn [\n    'vpnProfiles' => [\n        'p' => [\n            'range' => '10.0.0.0',\n        ],\n    ],\n];\n";
    let e = ServerApiConfig::parse(text).err();
    assert_eq!(e.as_ref().map(|e| e.line), Some(5), "{e:?}");
    assert!(e.is_some_and(|e| {
        e.message
            .starts_with("vpnProfiles.p.range: `10.0.0.0` is not an IPv4 network")
    }));

    let yaml = "vpnProfiles:\n    p:\n        dns: [8.8.8.8, 'x']\n";
    let e = ServerApiConfig::parse_yaml(yaml).err();
    assert_eq!(
        e.as_ref().map(|e| (e.line, e.message.as_str())),
        Some((
            3,
            "vpnProfiles.p.dns.1: `x` is not an IP address, @GW4@ or @GW6@"
        ))
    );

    assert_eq!(
        ServerApiConfig::parse("<?php return [];").map_err(|e| e.message),
        Err("missing `vpnProfiles`".into())
    );
    let fw = "<?php return ['inputRules' => [['proto' => ['tcp'], 'dport' => [22]]]];";
    assert!(
        NodeFirewall::parse(fw)
            .is_err_and(|e| e.message.contains("inputRules.0.dport: unknown key"))
    );
    let fw = "<?php return ['inputRules' => [['proto' => ['tcp'], 'dst_port' => [0]]]];";
    assert!(NodeFirewall::parse(fw).is_err());
    let fw = "<?php return ['inputRules' => [['proto' => ['icmp']]]];";
    assert!(NodeFirewall::parse(fw).is_err());
}

#[test]
fn unmodelled_keys_are_kept() {
    let text = "<?php\nreturn [\n  'instanceNumber' => 1,\n  'vpnProfiles' => ['internet' => ['profileNumber' => 1, 'enableFoo' => true]],\n  'CA' => ['key_size' => 4096],\n];\n";
    let c = ServerApiConfig::parse(text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        c.extra.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        ["instanceNumber", "CA"]
    );
    assert_eq!(
        c.profile("internet").and_then(|p| p.extra.get("enableFoo")),
        Some(&Value::Bool(true))
    );
    assert_eq!(ServerApiConfig::parse(&c.emit()), Ok(c));
}

#[test]
fn secrets_are_redacted_in_debug() {
    let secret = "XXX-vpn-server-node/vpn-server-api-XXX";
    let c = examples::multinode_controller();
    let n = examples::multinode_node("node-a");
    let php = c.to_php();
    let yaml = c.to_yaml();
    for shown in [
        format!("{c:?}"),
        format!("{n:?}"),
        format!("{php:?}"),
        format!("{:?}", php.root.to_value()),
        format!("{yaml:?}"),
        format!("{:?}", n.to_php()),
        format!("{:?}", Secret::new("s3cr3t")),
    ] {
        assert!(
            !shown.contains(secret) && !shown.contains("s3cr3t"),
            "{shown}"
        );
        assert!(shown.contains("redacted"), "{shown}");
    }
    let mut m = Map::new();
    m.insert("bindPass", "hunter2");
    m.insert(
        "groups",
        Value::List(vec![map(vec![("clientSecret", s("hunter3"))])]),
    );
    let shown = format!("{:?}", Value::Map(m));
    assert!(!shown.contains("hunter"), "{shown}");
}

#[test]
fn comment_lines_are_validated() {
    assert!(CommentLine::new("generated by vpnsim").is_ok());
    for bad in ["a\nb", "a\rb", "end ?> here", "\u{2028}", "bell\u{7}"] {
        assert!(CommentLine::new(bad).is_err(), "{bad:?}");
    }
    let header = super::header("one\ntwo").unwrap_or_default();
    let mut f = examples::multinode_controller();
    f.header = header;
    let text = f.emit();
    assert!(
        text.starts_with("<?php\n// one\n// two\nreturn array (\n"),
        "{text}"
    );
    assert_eq!(ServerApiConfig::parse(&text), Ok(f.clone()));
    assert!(
        f.emit_yaml().starts_with("# one\n# two\nvpnProfiles:")
            || f.emit_yaml().starts_with("# one\n# two\napiConsumers:")
    );
}

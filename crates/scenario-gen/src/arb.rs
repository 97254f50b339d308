//! proptest strategies for random valid scenarios.
//!
//! A scenario is generated in two steps: a [`Spec`] of plain values (counts,
//! choices, and references as [`Index`]es, which resolve against whatever
//! the list finally holds), then [`build`], a pure function that names
//! everything and resolves every reference. Because references are indexes
//! rather than names, shrinking (dropping a site, a host, an overlay) never
//! leaves a dangling name: every shrunk value is still a valid scenario.
//!
//! Sizes are small (at most 8 sites, 20 hosts, a few overlays) so failures
//! shrink to something a person can read. Prefixes are drawn from a few
//! crowded ranges on purpose, so declared ranges overlap each other and the
//! ranges IPAM likes to hand out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use serde_json::json;
use vpnsim_topology::ScenarioFile;
use vpnsim_topology::format::*;
use vpnsim_topology::units::{Bandwidth, Duration, Listener, Mac, Proto};

use crate::de;

/// Random valid scenarios: every value passes `vpnsim_topology::load_str`
/// after [`crate::to_toml`].
pub fn arb_scenario() -> impl Strategy<Value = ScenarioFile> {
    arb_spec().prop_map(build)
}

/// The plain-value description [`build`] turns into a scenario.
pub fn arb_spec() -> impl Strategy<Value = Spec> {
    let head = (
        arb_meta(),
        vec(arb_region(), 0..=3),
        vec(arb_site(), 1..=8),
        vec(arb_subnet(), 0..=10),
        vec(arb_host(), 1..=20),
        vec(arb_link(), 0..=3),
    );
    let overlays = (
        vec(arb_ipsec(), 0..=2),
        vec(arb_star(), 0..=2),
        vec(arb_openvpn(), 0..=2),
        vec(arb_mesh(), 0..=2),
        vec(arb_bond(), 0..=1),
    );
    let policy = (
        vec(arb_firewall(), 0..=3),
        vec(arb_dns(), 0..=2),
        vec(arb_flow(), 0..=3),
        vec(arb_flow(), 0..=3),
        vec(arb_recover(), 0..=2),
        vec(arb_throughput(), 0..=2),
        vec(arb_stream(), 0..=2),
        vec(arb_event(), 0..=5),
    );
    (head, overlays, policy).prop_map(
        |(
            (meta, regions, sites, subnets, hosts, links),
            (ipsec, stars, openvpn, meshes, bonds),
            (firewalls, dns, reach, isolated, recover, throughput, stream, events),
        )| Spec {
            meta,
            regions,
            sites,
            subnets,
            hosts,
            links,
            ipsec,
            stars,
            openvpn,
            meshes,
            bonds,
            firewalls,
            dns,
            reach,
            isolated,
            recover,
            throughput,
            stream,
            events,
        },
    )
}

// ---------------------------------------------------------------------------
// Specs: plain values, references as indexes.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub struct Spec {
    pub meta: MetaSpec,
    pub regions: Vec<RegionSpec>,
    pub sites: Vec<SiteSpec>,
    pub subnets: Vec<SubnetSpec>,
    pub hosts: Vec<HostSpec>,
    pub links: Vec<LinkSpec>,
    pub ipsec: Vec<IpsecSpec>,
    pub stars: Vec<StarSpec>,
    pub openvpn: Vec<OpenVpnSpec>,
    pub meshes: Vec<MeshSpec>,
    pub bonds: Vec<BondSpec>,
    pub firewalls: Vec<FirewallSpec>,
    pub dns: Vec<DnsSpec>,
    pub reach: Vec<FlowSpec>,
    pub isolated: Vec<FlowSpec>,
    pub recover: Vec<RecoverSpec>,
    pub throughput: Vec<ThroughputSpec>,
    pub stream: Vec<StreamSpec>,
    pub events: Vec<EventSpec>,
}

/// Year, month, day.
pub type Date = (u16, u8, u8);

#[derive(Debug, Clone)]
pub struct MetaSpec {
    pub name: Option<String>,
    pub seed: u64,
    pub description: Option<String>,
    pub source: Option<String>,
    pub dates: (Option<Date>, Option<Date>),
}

#[derive(Debug, Clone)]
pub struct RegionSpec {
    pub suffix: Option<String>,
    pub display_name: Option<String>,
    pub provider: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SiteSpec {
    pub suffix: Option<String>,
    pub region: Option<Index>,
    pub kind: SiteKind,
    pub display_name: Option<String>,
    pub cidrs: Vec<IpNet>,
    pub public: bool,
    pub uplink: Option<Index>,
    pub nat_address: Option<Ipv4Addr>,
    pub routes: Vec<(IpNet, Index)>,
}

#[derive(Debug, Clone)]
pub struct SubnetSpec {
    pub site: Index,
    /// Carve the subnet out of the site's first IPv4 CIDR: (extra prefix bits, block).
    pub within: Option<(u8, u32)>,
    pub cidr: IpNet,
    pub cidr6: Option<Ipv6Net>,
    pub zone: Option<String>,
    pub purpose: Option<String>,
    pub mtu: u32,
}

#[derive(Debug, Clone)]
pub struct InterfaceSpec {
    pub on_link: bool,
    pub segment: Index,
    /// Declared address as an offset into the segment's prefix.
    pub address: Option<u32>,
    pub address6: Option<u32>,
    pub mac: Option<Mac>,
    pub mtu: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct HostSpec {
    pub suffix: Option<String>,
    pub site: Index,
    pub roles: Vec<Role>,
    pub description: Option<String>,
    pub forwarding: bool,
    pub source_dest_check: bool,
    pub public_address: Option<Ipv4Addr>,
    pub public_address6: Option<Ipv6Addr>,
    pub dns_name: Option<String>,
    pub interfaces: Vec<InterfaceSpec>,
    pub routes: Vec<(IpNet, Option<u32>, Option<String>)>,
    pub services: Vec<(Listener, Option<IpAddr>)>,
}

#[derive(Debug, Clone)]
pub struct LinkSpec {
    pub suffix: Option<String>,
    pub kind: LinkKind,
    pub cidr: Option<IpNet>,
    pub latency: Option<Duration>,
    pub jitter: Option<Duration>,
    pub loss: Option<f64>,
    pub bandwidth: Option<Bandwidth>,
    pub mtu: u32,
}

#[derive(Debug, Clone)]
pub struct IpsecSpec {
    pub daemon: IpsecDaemon,
    pub auth: IpsecAuth,
    pub full_mesh: bool,
    pub hub: Index,
    pub gateways: Vec<Index>,
    pub selectors: Vec<(Index, Vec<IpNet>)>,
    pub ike_version: u8,
    pub pfs: bool,
    pub auto: IpsecAuto,
    pub dpd: (Duration, Duration),
    pub nat_traversal: bool,
}

#[derive(Debug, Clone)]
pub enum EndpointSpec {
    V4(Ipv4Addr, u16),
    V6(Ipv6Addr, u16),
    Dns(String, u16),
}

#[derive(Debug, Clone)]
pub struct StarSpec {
    pub interface: String,
    pub cidr: IpNet,
    pub port: u16,
    pub hub: Index,
    pub workers: Vec<Index>,
    pub addresses: Vec<(Index, u32)>,
    pub endpoints: Vec<(Index, EndpointSpec)>,
    pub allowed_ips: Vec<(Index, Vec<IpNet>)>,
    pub persistent_keepalive: Option<Duration>,
    pub mtu: Option<u32>,
    pub preshared_keys: bool,
}

#[derive(Debug, Clone)]
pub struct ProfileSpec {
    pub number: u32,
    pub display_name: String,
    pub node: Index,
    pub host_name: String,
    pub range: Option<Ipv4Net>,
    pub range6: Option<Ipv6Net>,
    pub management_ip: Option<IpAddr>,
    pub listen: Option<IpAddr>,
    pub listeners: Vec<Listener>,
    pub flags: (bool, bool, bool),
    pub dns: Vec<IpAddr>,
    pub ext_if: String,
    pub nat: Vec<NatFamily>,
    pub keepalive: (Duration, Duration),
}

#[derive(Debug, Clone)]
pub struct OpenVpnSpec {
    pub controller: Index,
    pub use_vpn_daemon: bool,
    pub vpn_daemon_port: u16,
    pub management_mesh: Option<Index>,
    pub shared_tls_crypt: bool,
    pub profiles: Vec<ProfileSpec>,
    pub clients: Vec<(Index, Index)>,
}

#[derive(Debug, Clone)]
pub struct MeshSpec {
    pub network_name: String,
    pub cidr: IpNet,
    pub port: u16,
    pub interface: String,
    /// Host, declared address offset, init peers (indexes into the members).
    pub members: Vec<(Index, Option<u32>, Vec<Index>)>,
}

#[derive(Debug, Clone)]
pub struct TapSpec {
    pub client_is_first: bool,
    pub via: Index,
    pub listen: Listener,
    pub macs: Option<(Mac, Mac)>,
    pub ping: Duration,
    pub ping_restart: Duration,
}

#[derive(Debug, Clone)]
pub struct BondSpec {
    pub hosts: (Index, Index),
    pub interface: String,
    pub mode: BondMode,
    pub network: Ipv4Net,
    pub macs: Option<(Mac, Mac)>,
    pub miimon: Duration,
    pub enslave_delay: Duration,
    pub mtu: u32,
    pub links: Vec<TapSpec>,
    pub monitor: Option<(Duration, u32, Duration)>,
}

#[derive(Debug, Clone)]
pub enum SourceSpec {
    Any,
    Host(Index),
    Net(IpNet),
    Ip(IpAddr),
}

#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub from: Vec<SourceSpec>,
    pub proto: &'static str,
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone)]
pub struct FirewallSpec {
    pub host: Index,
    pub input_policy: Policy,
    pub forward_policy: Policy,
    pub trusted_interfaces: Vec<String>,
    pub allow: Vec<RuleSpec>,
    pub forward: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
pub struct DnsSpec {
    pub name: String,
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    pub hosts: Vec<Index>,
    pub ttl: Option<u32>,
}

#[derive(Debug, Clone)]
pub struct FlowSpec {
    pub from: Index,
    pub to: Index,
    pub via: Option<Index>,
    pub probe: (ProbeProto, u16),
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RecoverSpec {
    pub from: Index,
    pub to: Index,
    pub via: Option<Index>,
    pub probe: (ProbeProto, u16),
    pub after: Index,
    pub within: Duration,
}

#[derive(Debug, Clone)]
pub struct ThroughputSpec {
    pub from: Index,
    pub to: Index,
    pub via: Option<Index>,
    pub at_least: Bandwidth,
}

/// A UDP stream whose rate and size keep it within the simulator's
/// datagrams-per-second bound.
#[derive(Debug, Clone)]
pub struct StreamSpec {
    pub from: Index,
    pub to: Index,
    pub via: Option<Index>,
    pub rate: Bandwidth,
    pub size: Option<u32>,
    pub port: Option<u16>,
    /// Tenths of a percent.
    pub max_loss: Option<u16>,
    pub max_jitter: Option<Duration>,
}

#[derive(Debug, Clone)]
pub enum EventKind {
    Link {
        up: bool,
        link: Index,
    },
    Interface {
        up: bool,
        host: Index,
        interface: String,
    },
    /// Crash, restart, stop or start (by `action % 4`).
    Host {
        action: u8,
        host: Index,
    },
    Partition {
        groups: Vec<Vec<Index>>,
        one_way: bool,
    },
    Heal,
    LossBurst {
        link: Index,
        loss: f64,
        duration: Duration,
    },
    EndpointChange {
        host: Index,
        address: IpAddr,
        interface: Option<String>,
    },
    Promote {
        host: Index,
        star: Index,
        alive: bool,
    },
}

#[derive(Debug, Clone)]
pub struct EventSpec {
    pub named: bool,
    pub at: Duration,
    pub kind: EventKind,
}

// ---------------------------------------------------------------------------
// Value strategies.
// ---------------------------------------------------------------------------

/// `-` plus a short lowercase suffix, appended to `prefix{index}` so names
/// stay unique and valid.
fn arb_suffix() -> impl Strategy<Value = Option<String>> {
    option::weighted(0.3, "[a-z0-9]{1,6}")
}

/// Free text: ASCII, quotes, backslashes, newlines, tabs and non-ASCII.
fn arb_text() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => "[a-zA-Z0-9 .,()-]{0,24}",
        1 => "[ -~\t\n\"'\\\\é漢🦀]{0,16}",
        1 => any::<String>(),
    ]
}

fn arb_opt_text() -> impl Strategy<Value = Option<String>> {
    option::weighted(0.3, arb_text())
}

/// Linux interface names (1–15 printable, no `/` or `:`).
fn arb_ifname() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => select(vec!["eth0", "eth1", "ens5", "wg0", "tun0", "tap+", "bond0", "peervpn0"]).prop_map(String::from),
        1 => "[a-zA-Z0-9_.+#-]{1,15}",
    ]
}

/// Interface patterns: a name, or a name with a trailing `+` (prefix match).
fn arb_ifname_pattern() -> impl Strategy<Value = String> {
    (arb_ifname(), any::<bool>()).prop_map(|(name, plus)| {
        // The model strips one trailing `+` and checks the rest as a name.
        let base = match name.trim_end_matches('+') {
            "" => "tap",
            base => base,
        };
        if plus {
            format!("{base}+")
        } else {
            base.to_string()
        }
    })
}

fn arb_dns_name() -> impl Strategy<Value = String> {
    (
        "[a-z][a-z0-9-]{0,8}[a-z0-9]",
        select(vec!["example.net", "example.org", "vpn.example.com"]),
        any::<bool>(),
    )
        .prop_map(|(label, zone, dot)| format!("{label}.{zone}{}", if dot { "." } else { "" }))
}

fn arb_duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        3 => (0u64..120).prop_map(Duration::from_secs),
        2 => (0u64..100_000).prop_map(Duration::from_millis),
        1 => any::<u64>().prop_map(Duration),
    ]
}

fn arb_bandwidth() -> impl Strategy<Value = Bandwidth> {
    prop_oneof![
        (1u64..10_000).prop_map(|m| Bandwidth(m * 1_000_000)),
        (1u64..u64::MAX).prop_map(Bandwidth),
    ]
}

fn arb_mtu() -> impl Strategy<Value = u32> {
    prop_oneof![4 => Just(1500u32), 2 => 576u32..=9000, 1 => Just(65535u32)]
}

fn arb_port() -> impl Strategy<Value = u16> {
    prop_oneof![
        select(vec![22u16, 443, 500, 1194, 4500, 51820, 55820, 7000, 41194]),
        1u16..=u16::MAX
    ]
}

fn arb_listener() -> impl Strategy<Value = Listener> {
    (prop_oneof![Just(Proto::Udp), Just(Proto::Tcp)], arb_port())
        .prop_map(|(proto, port)| Listener { proto, port })
}

fn arb_mac() -> impl Strategy<Value = Mac> {
    any::<[u8; 6]>().prop_map(Mac)
}

/// IPv4 prefixes from a few crowded ranges, so overlaps are common.
pub fn arb_v4_net() -> impl Strategy<Value = Ipv4Net> {
    let bases = vec![
        (Ipv4Addr::new(10, 0, 0, 0), 8u8),
        (Ipv4Addr::new(10, 11, 0, 0), 16),
        (Ipv4Addr::new(172, 16, 0, 0), 12),
        (Ipv4Addr::new(192, 168, 0, 0), 16),
        (Ipv4Addr::new(100, 64, 0, 0), 10),
        (Ipv4Addr::new(12, 11, 0, 0), 16),
        (Ipv4Addr::new(198, 51, 100, 0), 24),
    ];
    let len = prop_oneof![8 => 16u8..=30, 1 => Just(8u8), 1 => 9u8..=15, 1 => 31u8..=32];
    (select(bases), len, 0u32..16).prop_map(|((base, base_len), len, block)| {
        let len = len.max(base_len);
        let shift = 32 - u32::from(len);
        let room = u32::from(len - base_len);
        let block = if room >= 32 {
            block
        } else {
            block % (1u32 << room.min(31))
        };
        let addr = u32::from(base).wrapping_add(block.checked_shl(shift).unwrap_or(0));
        Ipv4Net::new(Ipv4Addr::from(addr), len)
            .map(|n| n.trunc())
            .unwrap_or_default()
    })
}

/// IPv6 prefixes, mostly /64s of two ULA /48s and the documentation range.
pub fn arb_v6_net() -> impl Strategy<Value = Ipv6Net> {
    let bases = vec![
        "fd00:1::"
            .parse::<Ipv6Addr>()
            .unwrap_or(Ipv6Addr::UNSPECIFIED),
        "fd12:3456:789a::".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
        "2001:db8::".parse().unwrap_or(Ipv6Addr::UNSPECIFIED),
    ];
    let len = prop_oneof![6 => Just(64u8), 2 => 48u8..=63, 2 => 65u8..=126, 1 => 127u8..=128];
    (select(bases), len, 0u128..8).prop_map(|(base, len, block)| {
        let addr = u128::from(base).wrapping_add(block << (128 - u32::from(len)));
        Ipv6Net::new(Ipv6Addr::from(addr), len)
            .map(|n| n.trunc())
            .unwrap_or_default()
    })
}

fn arb_net() -> impl Strategy<Value = IpNet> {
    prop_oneof![5 => arb_v4_net().prop_map(IpNet::V4), 1 => arb_v6_net().prop_map(IpNet::V6)]
}

fn arb_v4_addr() -> impl Strategy<Value = Ipv4Addr> {
    prop_oneof![
        (0u8..=255).prop_map(|d| Ipv4Addr::new(203, 0, 113, d)),
        (0u8..=255).prop_map(|d| Ipv4Addr::new(192, 0, 2, d)),
        any::<u32>().prop_map(Ipv4Addr::from),
    ]
}

fn arb_v6_addr() -> impl Strategy<Value = Ipv6Addr> {
    prop_oneof![
        any::<u16>().prop_map(|x| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, x)),
        any::<u128>().prop_map(Ipv6Addr::from),
    ]
}

fn arb_addr() -> impl Strategy<Value = IpAddr> {
    prop_oneof![3 => arb_v4_addr().prop_map(IpAddr::V4), 1 => arb_v6_addr().prop_map(IpAddr::V6)]
}

/// Offsets into a prefix: mostly its first few addresses (so declared and
/// allocated addresses meet), sometimes anywhere.
fn arb_offset() -> impl Strategy<Value = u32> {
    prop_oneof![4 => 0u32..8, 1 => any::<u32>()]
}

fn arb_date() -> impl Strategy<Value = Date> {
    (2000u16..2100, 1u8..=12, 1u8..=31)
}

// ---------------------------------------------------------------------------
// Spec strategies.
// ---------------------------------------------------------------------------

fn arb_meta() -> impl Strategy<Value = MetaSpec> {
    (
        option::weighted(0.8, "[a-z][a-z0-9-]{0,20}[a-z0-9]"),
        prop_oneof![0u64..1000, 0..=i64::MAX as u64], /* TOML integers are i64 */
        arb_opt_text(),
        arb_opt_text(),
        (option::of(arb_date()), option::of(arb_date())),
    )
        .prop_map(|(name, seed, description, source, dates)| MetaSpec {
            name,
            seed,
            description,
            source,
            dates,
        })
}

fn arb_region() -> impl Strategy<Value = RegionSpec> {
    (
        arb_suffix(),
        arb_opt_text(),
        option::of(select(vec!["aws", "hetzner", "ovh"]).prop_map(String::from)),
    )
        .prop_map(|(suffix, display_name, provider)| RegionSpec {
            suffix,
            display_name,
            provider,
        })
}

fn arb_site_kind() -> impl Strategy<Value = SiteKind> {
    prop_oneof![
        Just(SiteKind::CloudVpc),
        Just(SiteKind::Datacenter),
        Just(SiteKind::Home),
        Just(SiteKind::Roaming)
    ]
}

fn arb_site() -> impl Strategy<Value = SiteSpec> {
    (
        arb_suffix(),
        option::of(any::<Index>()),
        arb_site_kind(),
        arb_opt_text(),
        vec(arb_net(), 0..=2),
        any::<bool>(),
        option::of(any::<Index>()),
        option::weighted(0.3, arb_v4_addr()),
        vec((arb_net(), any::<Index>()), 0..=2),
    )
        .prop_map(
            |(suffix, region, kind, display_name, cidrs, public, uplink, nat_address, routes)| {
                SiteSpec {
                    suffix,
                    region,
                    kind,
                    display_name,
                    cidrs,
                    public,
                    uplink,
                    nat_address,
                    routes,
                }
            },
        )
}

fn arb_subnet() -> impl Strategy<Value = SubnetSpec> {
    (
        any::<Index>(),
        option::weighted(0.6, (0u8..=14, any::<u32>())),
        arb_net(),
        option::weighted(0.3, arb_v6_net()),
        option::of("[a-z]{2}-[a-z]{4}-[1-3][a-c]"),
        option::of(select(vec!["fns", "epss", "vpn", "app"]).prop_map(String::from)),
        arb_mtu(),
    )
        .prop_map(
            |(site, within, cidr, cidr6, zone, purpose, mtu)| SubnetSpec {
                site,
                within,
                cidr,
                cidr6,
                zone,
                purpose,
                mtu,
            },
        )
}

fn arb_role() -> impl Strategy<Value = Role> {
    select(vec![
        Role::Gateway,
        Role::Hub,
        Role::Spoke,
        Role::Controller,
        Role::Node,
        Role::RoamingPeer,
        Role::Client,
        Role::Application,
    ])
}

fn arb_interface() -> impl Strategy<Value = InterfaceSpec> {
    (
        prop::bool::weighted(0.25),
        any::<Index>(),
        option::of(arb_offset()),
        option::weighted(0.2, arb_offset()),
        option::weighted(0.2, arb_mac()),
        option::weighted(0.2, arb_mtu()),
    )
        .prop_map(
            |(on_link, segment, address, address6, mac, mtu)| InterfaceSpec {
                on_link,
                segment,
                address,
                address6,
                mac,
                mtu,
            },
        )
}

fn arb_host() -> impl Strategy<Value = HostSpec> {
    (
        (
            arb_suffix(),
            any::<Index>(),
            vec(arb_role(), 0..=3),
            arb_opt_text(),
        ),
        (any::<bool>(), any::<bool>()),
        (
            option::weighted(0.3, arb_v4_addr()),
            option::weighted(0.15, arb_v6_addr()),
            option::weighted(0.2, arb_dns_name()),
        ),
        vec(arb_interface(), 0..=3),
        vec(
            (
                arb_net(),
                option::of(any::<u32>()),
                option::of(arb_ifname()),
            ),
            0..=2,
        ),
        vec((arb_listener(), option::weighted(0.3, arb_addr())), 0..=2),
    )
        .prop_map(
            |(
                (suffix, site, roles, description),
                (forwarding, source_dest_check),
                (public_address, public_address6, dns_name),
                interfaces,
                routes,
                services,
            )| HostSpec {
                suffix,
                site,
                roles,
                description,
                forwarding,
                source_dest_check,
                public_address,
                public_address6,
                dns_name,
                interfaces,
                routes,
                services,
            },
        )
}

fn arb_link() -> impl Strategy<Value = LinkSpec> {
    (
        arb_suffix(),
        prop_oneof![Just(LinkKind::Wan), Just(LinkKind::Lan)],
        option::of(arb_net()),
        option::of(arb_duration()),
        option::of(arb_duration()),
        option::of((0u32..=10_000).prop_map(|l| f64::from(l) / 100.0)),
        option::of(arb_bandwidth()),
        arb_mtu(),
    )
        .prop_map(
            |(suffix, kind, cidr, latency, jitter, loss, bandwidth, mtu)| LinkSpec {
                suffix,
                kind,
                cidr,
                latency,
                jitter,
                loss,
                bandwidth,
                mtu,
            },
        )
}

fn arb_ipsec() -> impl Strategy<Value = IpsecSpec> {
    (
        (
            prop_oneof![Just(IpsecDaemon::Libreswan), Just(IpsecDaemon::Strongswan)],
            prop_oneof![Just(IpsecAuth::Psk), Just(IpsecAuth::Cert)],
            any::<bool>(),
        ),
        any::<Index>(),
        vec(any::<Index>(), 1..=4),
        vec((any::<Index>(), vec(arb_net(), 1..=2)), 0..=2),
        (
            1u8..=2,
            any::<bool>(),
            prop_oneof![
                Just(IpsecAuto::Start),
                Just(IpsecAuto::Add),
                Just(IpsecAuto::Ondemand)
            ],
        ),
        (arb_duration(), arb_duration(), any::<bool>()),
    )
        .prop_map(
            |(
                (daemon, auth, full_mesh),
                hub,
                gateways,
                selectors,
                (ike_version, pfs, auto),
                (d1, d2, nat_traversal),
            )| {
                IpsecSpec {
                    daemon,
                    auth,
                    full_mesh,
                    hub,
                    gateways,
                    selectors,
                    ike_version,
                    pfs,
                    auto,
                    dpd: (d1, d2),
                    nat_traversal,
                }
            },
        )
}

fn arb_endpoint() -> impl Strategy<Value = EndpointSpec> {
    prop_oneof![
        (arb_v4_addr(), 1u16..=u16::MAX).prop_map(|(a, p)| EndpointSpec::V4(a, p)),
        (arb_v6_addr(), 1u16..=u16::MAX).prop_map(|(a, p)| EndpointSpec::V6(a, p)),
        (arb_dns_name(), 1u16..=u16::MAX).prop_map(|(n, p)| EndpointSpec::Dns(n, p)),
    ]
}

fn arb_star() -> impl Strategy<Value = StarSpec> {
    (
        (arb_ifname(), arb_net(), 1u16..=u16::MAX),
        (any::<Index>(), vec(any::<Index>(), 0..=5)),
        vec((any::<Index>(), arb_offset()), 0..=3),
        vec((any::<Index>(), arb_endpoint()), 0..=3),
        vec((any::<Index>(), vec(arb_net(), 1..=2)), 0..=2),
        (
            option::of(arb_duration()),
            option::weighted(0.2, arb_mtu()),
            any::<bool>(),
        ),
    )
        .prop_map(
            |(
                (interface, cidr, port),
                (hub, workers),
                addresses,
                endpoints,
                allowed_ips,
                (persistent_keepalive, mtu, preshared_keys),
            )| {
                StarSpec {
                    interface,
                    cidr,
                    port,
                    hub,
                    workers,
                    addresses,
                    endpoints,
                    allowed_ips,
                    persistent_keepalive,
                    mtu,
                    preshared_keys,
                }
            },
        )
}

fn arb_profile() -> impl Strategy<Value = ProfileSpec> {
    (
        (
            prop_oneof![3 => 0u32..4, 1 => any::<u32>()],
            arb_text(),
            any::<Index>(),
            arb_dns_name(),
        ),
        // OpenVPN needs a /29 (`server`) and a /112 (`server-ipv6`) or larger.
        (
            option::of(arb_v4_net().prop_map(|r| {
                Ipv4Net::new(r.network(), r.prefix_len().min(29)).map_or(r, |n| n.trunc())
            })),
            option::of(arb_v6_net().prop_map(|r| {
                Ipv6Net::new(r.network(), r.prefix_len().min(112)).map_or(r, |n| n.trunc())
            })),
        ),
        (
            option::weighted(0.3, arb_addr()),
            option::weighted(0.2, arb_addr()),
        ),
        vec(arb_listener(), 1..=2),
        (any::<bool>(), any::<bool>(), any::<bool>()),
        vec(arb_addr(), 0..=2),
        arb_ifname(),
        (
            proptest::sample::subsequence(vec![NatFamily::IPv4, NatFamily::IPv6], 0..=2),
            arb_duration(),
            arb_duration(),
        ),
    )
        .prop_map(
            |(
                (number, display_name, node, host_name),
                (range, range6),
                (management_ip, listen),
                listeners,
                flags,
                dns,
                ext_if,
                (nat, ping, ping_restart),
            )| {
                ProfileSpec {
                    number,
                    display_name,
                    node,
                    host_name,
                    range,
                    range6,
                    management_ip,
                    listen,
                    listeners,
                    flags,
                    dns,
                    ext_if,
                    nat,
                    keepalive: (ping, ping_restart),
                }
            },
        )
}

fn arb_openvpn() -> impl Strategy<Value = OpenVpnSpec> {
    (
        (
            any::<Index>(),
            any::<bool>(),
            arb_port(),
            option::of(any::<Index>()),
            any::<bool>(),
        ),
        vec(arb_profile(), 1..=3),
        vec((any::<Index>(), any::<Index>()), 0..=4),
    )
        .prop_map(
            |(
                (controller, use_vpn_daemon, vpn_daemon_port, management_mesh, shared_tls_crypt),
                profiles,
                clients,
            )| {
                OpenVpnSpec {
                    controller,
                    use_vpn_daemon,
                    vpn_daemon_port,
                    management_mesh,
                    shared_tls_crypt,
                    profiles,
                    clients,
                }
            },
        )
}

fn arb_mesh() -> impl Strategy<Value = MeshSpec> {
    (
        "[a-zA-Z0-9 _-]{0,12}",
        arb_net(),
        1u16..=u16::MAX,
        arb_ifname(),
        vec(
            (
                any::<Index>(),
                option::of(arb_offset()),
                vec(any::<Index>(), 0..=2),
            ),
            1..=4,
        ),
    )
        .prop_map(|(network_name, cidr, port, interface, members)| MeshSpec {
            network_name,
            cidr,
            port,
            interface,
            members,
        })
}

fn arb_tap() -> impl Strategy<Value = TapSpec> {
    (
        any::<bool>(),
        any::<Index>(),
        arb_listener(),
        option::weighted(0.3, (arb_mac(), arb_mac())),
        arb_duration(),
        arb_duration(),
    )
        .prop_map(
            |(client_is_first, via, listen, macs, ping, ping_restart)| TapSpec {
                client_is_first,
                via,
                listen,
                macs,
                ping,
                ping_restart,
            },
        )
}

fn arb_bond() -> impl Strategy<Value = BondSpec> {
    (
        (any::<Index>(), any::<Index>()),
        arb_ifname(),
        prop_oneof![Just(BondMode::ActiveBackup), Just(BondMode::BalanceAlb)],
        arb_v4_net(),
        option::weighted(0.3, (arb_mac(), arb_mac())),
        (arb_duration(), arb_duration(), arb_mtu()),
        vec(arb_tap(), 1..=2),
        option::of((arb_duration(), 0u32..10, arb_duration())),
    )
        .prop_map(
            |(
                hosts,
                interface,
                mode,
                network,
                macs,
                (miimon, enslave_delay, mtu),
                links,
                monitor,
            )| {
                BondSpec {
                    hosts,
                    interface,
                    mode,
                    network,
                    macs,
                    miimon,
                    enslave_delay,
                    mtu,
                    links,
                    monitor,
                }
            },
        )
}

fn arb_source() -> impl Strategy<Value = SourceSpec> {
    prop_oneof![
        Just(SourceSpec::Any),
        any::<Index>().prop_map(SourceSpec::Host),
        arb_net().prop_map(SourceSpec::Net),
        arb_addr().prop_map(SourceSpec::Ip),
    ]
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        Just(Policy::Accept),
        Just(Policy::Drop),
        Just(Policy::Reject)
    ]
}

fn arb_rule() -> impl Strategy<Value = RuleSpec> {
    (
        vec(arb_source(), 1..=3),
        select(vec!["tcp", "udp", "icmp", "any"]),
        vec(arb_port(), 0..=3),
    )
        .prop_map(|(from, proto, ports)| {
            let ports = if matches!(proto, "tcp" | "udp") {
                ports
            } else {
                Vec::new()
            };
            RuleSpec { from, proto, ports }
        })
}

fn arb_firewall() -> impl Strategy<Value = FirewallSpec> {
    (
        any::<Index>(),
        arb_policy(),
        arb_policy(),
        vec(arb_ifname_pattern(), 0..=2),
        vec(arb_rule(), 0..=3),
        vec((arb_ifname_pattern(), arb_ifname_pattern()), 0..=2),
    )
        .prop_map(
            |(host, input_policy, forward_policy, trusted_interfaces, allow, forward)| {
                FirewallSpec {
                    host,
                    input_policy,
                    forward_policy,
                    trusted_interfaces,
                    allow,
                    forward,
                }
            },
        )
}

fn arb_dns() -> impl Strategy<Value = DnsSpec> {
    (
        arb_dns_name(),
        vec(arb_v4_addr(), 0..=2),
        vec(arb_v6_addr(), 0..=1),
        vec(any::<Index>(), 0..=2),
        option::of(any::<u32>()),
    )
        .prop_map(|(name, a, aaaa, hosts, ttl)| DnsSpec {
            name,
            a,
            aaaa,
            hosts,
            ttl,
        })
}

fn arb_probe() -> impl Strategy<Value = (ProbeProto, u16)> {
    (
        prop_oneof![
            Just(ProbeProto::Icmp),
            Just(ProbeProto::Tcp),
            Just(ProbeProto::Udp)
        ],
        any::<u16>(),
    )
}

fn arb_flow() -> impl Strategy<Value = FlowSpec> {
    (
        any::<Index>(),
        any::<Index>(),
        option::of(any::<Index>()),
        arb_probe(),
        arb_opt_text(),
    )
        .prop_map(|(from, to, via, probe, reason)| FlowSpec {
            from,
            to,
            via,
            probe,
            reason,
        })
}

fn arb_recover() -> impl Strategy<Value = RecoverSpec> {
    (
        any::<Index>(),
        any::<Index>(),
        option::of(any::<Index>()),
        arb_probe(),
        any::<Index>(),
        arb_duration(),
    )
        .prop_map(|(from, to, via, probe, after, within)| RecoverSpec {
            from,
            to,
            via,
            probe,
            after,
            within,
        })
}

fn arb_throughput() -> impl Strategy<Value = ThroughputSpec> {
    (
        any::<Index>(),
        any::<Index>(),
        option::of(any::<Index>()),
        arb_bandwidth(),
    )
        .prop_map(|(from, to, via, at_least)| ThroughputSpec {
            from,
            to,
            via,
            at_least,
        })
}

fn arb_stream() -> impl Strategy<Value = StreamSpec> {
    (
        (any::<Index>(), any::<Index>(), option::of(any::<Index>())),
        1u64..=100_000,
        option::of(any::<Index>()),
        option::of(1u16..=u16::MAX),
        option::of(0u16..=1000),
        option::of(arb_duration()),
    )
        .prop_map(
            |((from, to, via), kbit, size, port, max_loss, max_jitter)| {
                // Up to 100 Mbit/s: within STREAM_MAX_PPS with the size the
                // check assumes when there is none; a given size is at
                // least large enough for that too.
                let rate = kbit * 1000;
                let min = u32::try_from(rate / 8 / vpnsim_topology::model::STREAM_MAX_PPS + 1)
                    .unwrap_or(u32::MAX)
                    .max(vpnsim_topology::model::STREAM_MIN_SIZE);
                StreamSpec {
                    from,
                    to,
                    via,
                    rate: Bandwidth(rate),
                    size: size.map(|i| min + i.index(1473 - min as usize) as u32),
                    port,
                    max_loss,
                    max_jitter,
                }
            },
        )
}

fn arb_event_kind() -> impl Strategy<Value = EventKind> {
    prop_oneof![
        (any::<bool>(), any::<Index>()).prop_map(|(up, link)| EventKind::Link { up, link }),
        (any::<bool>(), any::<Index>(), arb_ifname()).prop_map(|(up, host, interface)| {
            EventKind::Interface {
                up,
                host,
                interface,
            }
        }),
        (0u8..4, any::<Index>()).prop_map(|(action, host)| EventKind::Host { action, host }),
        (vec(vec(any::<Index>(), 1..=3), 2..=3), any::<bool>())
            .prop_map(|(groups, one_way)| EventKind::Partition { groups, one_way }),
        Just(EventKind::Heal),
        (
            any::<Index>(),
            (0u32..=10_000).prop_map(|l| f64::from(l) / 100.0),
            arb_duration()
        )
            .prop_map(|(link, loss, duration)| EventKind::LossBurst {
                link,
                loss,
                duration
            }),
        (any::<Index>(), arb_addr(), option::of(arb_ifname())).prop_map(
            |(host, address, interface)| {
                EventKind::EndpointChange {
                    host,
                    address,
                    interface,
                }
            }
        ),
        (any::<Index>(), any::<Index>(), any::<bool>())
            .prop_map(|(host, star, alive)| EventKind::Promote { host, star, alive }),
    ]
}

fn arb_event() -> impl Strategy<Value = EventSpec> {
    (
        any::<bool>(),
        (0u64..600).prop_map(Duration::from_secs),
        arb_event_kind(),
    )
        .prop_map(|(named, at, kind)| EventSpec { named, at, kind })
}

// ---------------------------------------------------------------------------
// Build: name everything, resolve indexes.
// ---------------------------------------------------------------------------

fn name(prefix: &str, i: usize, suffix: &Option<String>) -> String {
    match suffix {
        Some(s) => format!("{prefix}{i}-{s}"),
        None => format!("{prefix}{i}"),
    }
}

fn pick<'a, T>(index: &Index, items: &'a [T]) -> Option<&'a T> {
    (!items.is_empty()).then(|| index.get(items))
}

/// The address at `offset` (modulo the prefix size) of `net`.
pub fn nth_address(net: IpNet, offset: u32) -> IpAddr {
    match net {
        IpNet::V4(n) => {
            let size = 1u64 << (32 - u32::from(n.prefix_len()));
            let off = (u64::from(offset) % size) as u32;
            IpAddr::V4(Ipv4Addr::from(u32::from(n.network()).wrapping_add(off)))
        }
        IpNet::V6(n) => {
            let bits = 128 - u32::from(n.prefix_len());
            let off = if bits >= 32 {
                u128::from(offset)
            } else {
                u128::from(offset) % (1u128 << bits)
            };
            IpAddr::V6(Ipv6Addr::from(u128::from(n.network()).wrapping_add(off)))
        }
    }
}

fn date((y, m, d): Date) -> String {
    format!("{y:04}-{m:02}-{d:02}")
}

/// Keeps the first occurrence of every item.
fn dedup<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|x| seen.insert(x.clone()))
        .collect()
}

fn probe(flow_probe: (ProbeProto, u16)) -> (ProbeProto, Option<u16>) {
    match flow_probe {
        (ProbeProto::Icmp, _) => (ProbeProto::Icmp, None),
        (p, port) => (p, Some(port)),
    }
}

/// Two distinct hosts, or `None` when there are fewer than two.
fn pair(hosts: &[String], a: &Index, b: &Index) -> Option<(String, String)> {
    if hosts.len() < 2 {
        return None;
    }
    let i = a.index(hosts.len());
    let mut j = b.index(hosts.len());
    if i == j {
        j = (j + 1) % hosts.len();
    }
    Some((hosts[i].clone(), hosts[j].clone()))
}

fn flow(
    from: String,
    to: String,
    via: Option<String>,
    flow_probe: (ProbeProto, u16),
    reason: Option<String>,
) -> Flow {
    let (proto, port) = probe(flow_probe);
    let mut f: Flow = de(json!({ "from": from, "to": to }));
    f.via = via;
    f.proto = proto;
    f.port = port;
    f.reason = reason;
    f
}

/// Turns a spec into a scenario that resolves without diagnostics.
///
/// Format values are made from their required fields through serde (so
/// fields added to the format later take their defaults) and then filled in.
pub fn build(spec: Spec) -> ScenarioFile {
    let name_of_scenario = spec.meta.name.clone().unwrap_or_else(|| "scenario".into());
    let mut file: ScenarioFile =
        de(json!({ "scenario": { "name": name_of_scenario, "seed": spec.meta.seed } }));
    let (from, until) = match spec.meta.dates {
        (Some(a), Some(b)) if a == b => (Some(a), None),
        (Some(a), Some(b)) => (Some(a.min(b)), Some(a.max(b))),
        other => other,
    };
    file.scenario.description = spec.meta.description.clone();
    file.scenario.source = spec.meta.source.clone();
    file.scenario.valid_from = from.map(date);
    file.scenario.valid_until = until.map(date);

    let region_names: Vec<String> = spec
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| name("r", i, &r.suffix))
        .collect();
    let site_names: Vec<String> = spec
        .sites
        .iter()
        .enumerate()
        .map(|(i, s)| name("site", i, &s.suffix))
        .collect();
    let link_names: Vec<String> = spec
        .links
        .iter()
        .enumerate()
        .map(|(i, l)| name("l", i, &l.suffix))
        .collect();
    let host_names: Vec<String> = spec
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| name("h", i, &h.suffix))
        .collect();
    let subnet_names: Vec<String> = (0..spec.subnets.len()).map(|i| format!("sn{i}")).collect();

    for (r, n) in spec.regions.iter().zip(&region_names) {
        let mut region: Region = de(json!({}));
        region.display_name = r.display_name.clone();
        region.provider = r.provider.clone();
        file.regions.insert(n.clone(), region);
    }

    // Links, with a lan cidr made up when the spec has none.
    let mut links: Vec<Link> = Vec::new();
    for (i, l) in spec.links.iter().enumerate() {
        let mut link: Link = de(json!({ "kind": l.kind }));
        link.cidr = match (l.kind, l.cidr) {
            (LinkKind::Lan, None) => Some(IpNet::V4(
                Ipv4Net::new(Ipv4Addr::new(192, 168, 200 + i as u8, 0), 24).unwrap_or_default(),
            )),
            (_, c) => c,
        };
        link.latency = l.latency;
        link.jitter = l.jitter;
        link.loss = l.loss;
        link.bandwidth = l.bandwidth;
        link.mtu = l.mtu;
        links.push(link);
    }

    for (s, site_name) in spec.sites.iter().zip(&site_names) {
        let uplink = s
            .uplink
            .as_ref()
            .and_then(|l| pick(l, &link_names))
            .cloned();
        let mut site: Site = de(json!({ "kind": s.kind }));
        site.region = s
            .region
            .as_ref()
            .and_then(|r| pick(r, &region_names))
            .cloned();
        site.display_name = s.display_name.clone();
        site.cidrs = s.cidrs.clone();
        site.address_space = if s.public {
            AddressSpace::Public
        } else {
            AddressSpace::Private
        };
        site.nat_address = uplink.as_ref().and(s.nat_address);
        site.uplink = uplink;
        site.routes = s
            .routes
            .iter()
            .filter_map(|(to, via)| {
                pick(via, &host_names).map(|h| de::<SiteRoute>(json!({ "to": to, "via": h })))
            })
            .collect();
        file.sites.insert(site_name.clone(), site);
    }

    let mut subnets: Vec<Subnet> = Vec::new();
    for sn in &spec.subnets {
        let site_index = sn.site.index(spec.sites.len());
        let site_v4 = spec.sites[site_index].cidrs.iter().find_map(|c| match c {
            IpNet::V4(n) => Some(*n),
            IpNet::V6(_) => None,
        });
        let cidr = match (sn.within, site_v4) {
            (Some((extra, block)), Some(site)) => {
                let len = (site.prefix_len() + extra).min(32);
                let count = 1u64 << (len - site.prefix_len());
                let off = (u64::from(block) % count) as u32;
                let shift = 32 - u32::from(len);
                let addr =
                    u32::from(site.network()).wrapping_add(off.checked_shl(shift).unwrap_or(0));
                IpNet::V4(Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap_or(site))
            }
            _ => sn.cidr,
        };
        let mut subnet: Subnet = de(json!({ "site": site_names[site_index], "cidr": cidr }));
        subnet.cidr6 = sn.cidr6.map(IpNet::V6);
        subnet.zone = sn.zone.clone();
        subnet.purpose = sn.purpose.clone();
        subnet.mtu = sn.mtu;
        subnets.push(subnet);
    }

    for (hi, (h, host_name)) in spec.hosts.iter().zip(&host_names).enumerate() {
        let mut host: Host = de(json!({ "site": site_names[h.site.index(site_names.len())] }));
        for (ii, iface) in h.interfaces.iter().enumerate() {
            // Fall back to the other kind of segment when one kind is absent.
            let on_link = (iface.on_link && !links.is_empty()) || subnets.is_empty();
            if on_link && links.is_empty() {
                continue;
            }
            let mut interface: Interface = de(json!({ "name": format!("eth{ii}") }));
            let (prefix, prefix6, wan) = if on_link {
                let l = iface.segment.index(links.len());
                interface.link = Some(link_names[l].clone());
                (links[l].cidr, None, links[l].kind == LinkKind::Wan)
            } else {
                let s = iface.segment.index(subnets.len());
                interface.subnet = Some(subnet_names[s].clone());
                (Some(subnets[s].cidr), subnets[s].cidr6, false)
            };
            interface.address = match (iface.address, wan, prefix) {
                // A wan interface needs an explicit public address.
                (offset, true, _) => {
                    let last = (hi * 4 + ii) % 250 + offset.unwrap_or(0) as usize % 4 + 1;
                    Some(IpAddr::V4(Ipv4Addr::new(198, 51, 100, last as u8)))
                }
                (Some(offset), false, Some(p)) => Some(nth_address(p, offset)),
                _ => None,
            };
            interface.address6 = match (iface.address6, prefix6) {
                (Some(offset), Some(p @ IpNet::V6(_))) => match nth_address(p, offset) {
                    IpAddr::V6(a) => Some(a),
                    IpAddr::V4(_) => None,
                },
                _ => None,
            };
            interface.mac = iface.mac;
            interface.mtu = iface.mtu;
            host.interfaces.push(interface);
        }
        for (to, via, dev) in &h.routes {
            let mut route: Route = de(json!({ "to": to }));
            route.via = via.map(|v| nth_address(*to, v));
            route.dev = if route.via.is_none() && dev.is_none() {
                Some("eth0".to_string())
            } else {
                dev.clone()
            };
            host.routes.push(route);
        }
        for (j, (listen, address)) in h.services.iter().enumerate() {
            let mut service: Service = de(json!({ "name": format!("svc{j}"), "listen": listen }));
            service.address = *address;
            host.services.push(service);
        }
        host.roles = h.roles.clone();
        host.description = h.description.clone();
        host.forwarding = h.forwarding;
        host.source_dest_check = h.source_dest_check;
        host.public_address = h.public_address;
        host.public_address6 = h.public_address6;
        host.dns_name = h.dns_name.clone();
        file.hosts.insert(host_name.clone(), host);
    }
    file.subnets = subnet_names.iter().cloned().zip(subnets).collect();
    file.links = link_names.iter().cloned().zip(links).collect();

    let mut overlay_names: Vec<String> = Vec::new();

    for (i, sp) in spec.ipsec.iter().enumerate() {
        let hub = sp.hub.get(&host_names).clone();
        let mut members: Vec<String> =
            dedup(sp.gateways.iter().map(|g| g.get(&host_names).clone()));
        let (layout, hub) = if sp.full_mesh {
            (IpsecLayout::FullMesh, None)
        } else {
            members.retain(|m| *m != hub);
            (IpsecLayout::HubAndSpoke, Some(hub))
        };
        if members.len() < if sp.full_mesh { 2 } else { 1 } {
            continue;
        }
        let all: Vec<String> = hub.iter().cloned().chain(members.iter().cloned()).collect();
        let mut ipsec: Ipsec = de(json!({
            "daemon": sp.daemon, "auth": sp.auth, "layout": layout, "gateways": members,
        }));
        ipsec.hub = hub;
        ipsec.subnets = sp
            .selectors
            .iter()
            .map(|(m, nets)| (m.get(&all).clone(), nets.clone()))
            .collect();
        ipsec.ike_version = sp.ike_version;
        ipsec.pfs = sp.pfs;
        ipsec.auto = sp.auto;
        ipsec.dpd_delay = sp.dpd.0;
        ipsec.dpd_timeout = sp.dpd.1;
        ipsec.nat_traversal = sp.nat_traversal;
        let overlay = format!("ipsec{i}");
        overlay_names.push(overlay.clone());
        file.ipsec.insert(overlay, ipsec);
    }

    let mut star_names = Vec::new();
    for (i, sp) in spec.stars.iter().enumerate() {
        let hub = sp.hub.get(&host_names).clone();
        let workers: Vec<String> = dedup(sp.workers.iter().map(|w| w.get(&host_names).clone()))
            .into_iter()
            .filter(|w| *w != hub)
            .collect();
        let members: Vec<String> = std::iter::once(hub.clone())
            .chain(workers.iter().cloned())
            .collect();
        let mut star: WireguardStar =
            de(json!({ "cidr": sp.cidr, "hub": hub, "workers": workers }));
        star.interface = sp.interface.clone();
        star.port = sp.port;
        star.addresses = sp
            .addresses
            .iter()
            .map(|(m, off)| (m.get(&members).clone(), nth_address(sp.cidr, *off)))
            .collect();
        star.endpoints = sp
            .endpoints
            .iter()
            .map(|(m, e)| {
                let text = match e {
                    EndpointSpec::V4(a, p) => format!("{a}:{p}"),
                    EndpointSpec::V6(a, p) => format!("[{a}]:{p}"),
                    EndpointSpec::Dns(n, p) => format!("{n}:{p}"),
                };
                (m.get(&members).clone(), text)
            })
            .collect();
        star.allowed_ips = sp
            .allowed_ips
            .iter()
            .map(|(m, nets)| (m.get(&members).clone(), nets.clone()))
            .collect();
        star.persistent_keepalive = sp.persistent_keepalive;
        star.mtu = sp.mtu;
        star.preshared_keys = sp.preshared_keys;
        let overlay = format!("wg{i}");
        overlay_names.push(overlay.clone());
        star_names.push(overlay.clone());
        file.wireguard.insert(overlay, star);
    }

    let mut mesh_names = Vec::new();
    for (i, sp) in spec.meshes.iter().enumerate() {
        let mut seen = BTreeSet::new();
        let picked: Vec<(String, Option<u32>, &Vec<Index>)> = sp
            .members
            .iter()
            .map(|(h, off, peers)| (h.get(&host_names).clone(), *off, peers))
            .filter(|(h, _, _)| seen.insert(h.clone()))
            .collect();
        let hosts_in: Vec<String> = picked.iter().map(|(h, _, _)| h.clone()).collect();
        let mut members = Vec::new();
        for (h, off, peers) in &picked {
            let mut member: MeshMember = de(json!({ "host": h }));
            member.address = off.map(|o| nth_address(sp.cidr, o));
            member.init_peers = dedup(
                peers
                    .iter()
                    .map(|p| p.get(&hosts_in).clone())
                    .filter(|p| p != h),
            );
            members.push(member);
        }
        let mut mesh: Mesh =
            de(json!({ "network_name": sp.network_name, "cidr": sp.cidr, "members": [] }));
        mesh.members = members;
        mesh.port = sp.port;
        mesh.interface = sp.interface.clone();
        let overlay = format!("mesh{i}");
        overlay_names.push(overlay.clone());
        mesh_names.push(overlay.clone());
        file.mesh.insert(overlay, mesh);
    }

    for (i, sp) in spec.openvpn.iter().enumerate() {
        let profile_ids: Vec<String> = (0..sp.profiles.len()).map(|j| format!("p{j}")).collect();
        let mut dep: OpenVpnDeployment =
            de(json!({ "controller": sp.controller.get(&host_names), "profiles": {} }));
        for (p, id) in sp.profiles.iter().zip(&profile_ids) {
            let mut profile: Profile = de(json!({
                "profile_number": p.number,
                "display_name": p.display_name,
                "node": p.node.get(&host_names),
                "host_name": p.host_name,
            }));
            profile.range = p.range.map(IpNet::V4);
            profile.range6 = p.range6.map(IpNet::V6);
            profile.management_ip = p.management_ip;
            profile.listen = p.listen;
            profile.listeners = p.listeners.clone();
            (
                profile.use_proxy,
                profile.hide_profile,
                profile.default_gateway,
            ) = p.flags;
            profile.dns = p.dns.clone();
            profile.ext_if = p.ext_if.clone();
            profile.nat = p.nat.clone();
            (profile.ping, profile.ping_restart) = p.keepalive;
            dep.profiles.insert(id.clone(), profile);
        }
        dep.clients = sp
            .clients
            .iter()
            .map(|(h, p)| de(json!({ "host": h.get(&host_names), "profile": p.get(&profile_ids) })))
            .collect();
        dep.use_vpn_daemon = sp.use_vpn_daemon;
        dep.vpn_daemon_port = sp.vpn_daemon_port;
        dep.management_mesh = sp
            .management_mesh
            .as_ref()
            .and_then(|m| pick(m, &mesh_names))
            .cloned();
        dep.shared_tls_crypt = sp.shared_tls_crypt;
        let overlay = format!("ovpn{i}");
        overlay_names.push(overlay.clone());
        file.openvpn.insert(overlay, dep);
    }

    for (i, sp) in spec.bonds.iter().enumerate() {
        let Some((a, b)) = pair(&host_names, &sp.hosts.0, &sp.hosts.1) else {
            continue;
        };
        if link_names.is_empty() {
            continue;
        }
        let net = IpNet::V4(sp.network);
        let addr_of = |k: u32| -> IpNet {
            IpNet::new(nth_address(net, k), sp.network.prefix_len()).unwrap_or(net)
        };
        let macs_of = |macs: Option<(Mac, Mac)>| -> BTreeMap<String, Mac> {
            macs.map(|(ma, mb)| [(a.clone(), ma), (b.clone(), mb)].into_iter().collect())
                .unwrap_or_default()
        };
        let mut links = Vec::new();
        for (j, t) in sp.links.iter().enumerate() {
            let (client, server) = if t.client_is_first {
                (&a, &b)
            } else {
                (&b, &a)
            };
            let mut tap: TapLink = de(json!({
                "name": format!("ovn{j}"), "client": client, "server": server, "via": t.via.get(&link_names),
            }));
            tap.listen = t.listen;
            tap.macs = macs_of(t.macs);
            tap.ping = t.ping;
            tap.ping_restart = t.ping_restart;
            links.push(tap);
        }
        let addresses: BTreeMap<String, IpNet> = [(a.clone(), addr_of(1)), (b.clone(), addr_of(2))]
            .into_iter()
            .collect();
        let mut bond: Bond = de(json!({
            "hosts": [a, b], "mode": sp.mode, "addresses": addresses, "links": [],
        }));
        bond.links = links;
        bond.interface = sp.interface.clone();
        bond.macs = macs_of(sp.macs);
        bond.miimon = sp.miimon;
        bond.enslave_delay = sp.enslave_delay;
        bond.mtu = sp.mtu;
        bond.monitor = sp.monitor.map(|(interval, count, timeout)| {
            let mut monitor: Monitor = de(json!({}));
            (monitor.interval, monitor.count, monitor.timeout) = (interval, count, timeout);
            monitor
        });
        let overlay = format!("bond{i}");
        overlay_names.push(overlay.clone());
        file.bond.insert(overlay, bond);
    }

    for fw in &spec.firewalls {
        let mut firewall: Firewall = de(json!({}));
        firewall.input_policy = fw.input_policy;
        firewall.forward_policy = fw.forward_policy;
        firewall.trusted_interfaces = fw.trusted_interfaces.clone();
        for r in &fw.allow {
            let from: Vec<String> = r
                .from
                .iter()
                .map(|s| match s {
                    SourceSpec::Any => "any".to_string(),
                    SourceSpec::Host(h) => h.get(&host_names).clone(),
                    SourceSpec::Net(n) => n.to_string(),
                    SourceSpec::Ip(a) => a.to_string(),
                })
                .collect();
            let mut rule: AllowRule = de(json!({ "from": from, "proto": r.proto }));
            rule.ports = r.ports.clone();
            firewall.allow.push(rule);
        }
        firewall.forward = fw
            .forward
            .iter()
            .map(|(i, o)| de(json!({ "in_interface": i, "out_interface": o })))
            .collect();
        file.firewall
            .insert(fw.host.get(&host_names).clone(), firewall);
    }

    for d in &spec.dns {
        let publishing: Vec<String> = d
            .hosts
            .iter()
            .map(|h| h.index(host_names.len()))
            .filter(|i| {
                spec.hosts[*i].public_address.is_some() || spec.hosts[*i].public_address6.is_some()
            })
            .map(|i| host_names[i].clone())
            .collect();
        let mut record: DnsRecord = de(json!({}));
        record.a = d.a.clone();
        if record.a.is_empty() && d.aaaa.is_empty() && publishing.is_empty() {
            record.a.push(Ipv4Addr::new(192, 0, 2, 1));
        }
        record.aaaa = d.aaaa.clone();
        record.hosts = publishing;
        record.ttl = d.ttl;
        file.dns.insert(d.name.clone(), record);
    }

    // Events, in time order; ones whose targets do not exist are dropped.
    let mut event_specs: Vec<&EventSpec> = spec.events.iter().collect();
    event_specs.sort_by_key(|e| e.at);
    for (i, e) in event_specs.into_iter().enumerate() {
        let (action, fields) = match &e.kind {
            EventKind::Link { up, link } => {
                let Some(l) = pick(link, &link_names) else {
                    continue;
                };
                (
                    if *up { "link-up" } else { "link-down" },
                    json!({ "link": l }),
                )
            }
            EventKind::Interface {
                up,
                host,
                interface,
            } => (
                if *up { "link-up" } else { "link-down" },
                json!({ "host": host.get(&host_names), "interface": interface }),
            ),
            EventKind::Host { action, host } => (
                ["crash", "restart", "stop", "start"][usize::from(action % 4)],
                json!({ "host": host.get(&host_names) }),
            ),
            EventKind::Partition { groups, one_way } => {
                let groups: Vec<Vec<String>> = groups
                    .iter()
                    .map(|g| dedup(g.iter().map(|h| h.get(&host_names).clone())))
                    .collect();
                ("partition", json!({ "groups": groups, "one_way": one_way }))
            }
            EventKind::Heal => ("heal", json!({})),
            EventKind::LossBurst {
                link,
                loss,
                duration,
            } => {
                let Some(l) = pick(link, &link_names) else {
                    continue;
                };
                (
                    "loss-burst",
                    json!({ "link": l, "loss": loss, "duration": duration }),
                )
            }
            EventKind::EndpointChange {
                host,
                address,
                interface,
            } => (
                "endpoint-change",
                json!({ "host": host.get(&host_names), "address": address, "interface": interface }),
            ),
            EventKind::Promote { host, star, alive } => {
                let Some(s) = pick(star, &star_names) else {
                    continue;
                };
                let procedure = if *alive {
                    "alive-leader"
                } else {
                    "dead-leader"
                };
                (
                    "promote",
                    json!({ "host": host.get(&host_names), "star": s, "procedure": procedure }),
                )
            }
        };
        let mut event = json!({ "at": e.at, "action": action });
        if let (Some(target), Some(extra)) = (event.as_object_mut(), fields.as_object()) {
            target.extend(
                extra
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        let mut event: Event = de(event);
        event.name = e.named.then(|| format!("e{i}"));
        file.events.push(event);
    }
    let event_names: Vec<String> = file.events.iter().filter_map(|e| e.name.clone()).collect();

    let via = |v: &Option<Index>| v.as_ref().and_then(|v| pick(v, &overlay_names)).cloned();
    for (flows, out) in [
        (&spec.reach, &mut file.expect.reach),
        (&spec.isolated, &mut file.expect.isolated),
    ] {
        for f in flows {
            let Some((from, to)) = pair(&host_names, &f.from, &f.to) else {
                continue;
            };
            out.push(flow(from, to, via(&f.via), f.probe, f.reason.clone()));
        }
    }
    for r in &spec.recover {
        let Some((from, to)) = pair(&host_names, &r.from, &r.to) else {
            continue;
        };
        let Some(after) = pick(&r.after, &event_names) else {
            continue;
        };
        let (proto, port) = probe(r.probe);
        let mut recover: Recover =
            de(json!({ "from": from, "to": to, "after": after, "within": r.within }));
        recover.via = via(&r.via);
        recover.proto = proto;
        recover.port = port;
        file.expect.recover.push(recover);
    }
    for t in &spec.throughput {
        let Some((from, to)) = pair(&host_names, &t.from, &t.to) else {
            continue;
        };
        let mut throughput: Throughput =
            de(json!({ "from": from, "to": to, "at_least": t.at_least }));
        throughput.via = via(&t.via);
        file.expect.throughput.push(throughput);
    }
    for st in &spec.stream {
        let Some((from, to)) = pair(&host_names, &st.from, &st.to) else {
            continue;
        };
        let mut stream: Stream = de(json!({ "from": from, "to": to, "rate": st.rate }));
        stream.via = via(&st.via);
        stream.size = st.size;
        stream.port = st.port;
        stream.max_loss = st.max_loss.map(|t| f64::from(t) / 10.0);
        stream.max_jitter = st.max_jitter;
        file.expect.stream.push(stream);
    }
    file
}

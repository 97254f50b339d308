//! proptest strategy for random *deployable* scenarios: small networks a
//! person could have written, which `render` accepts and which have no
//! addressing errors, for properties that run the rendered files (static
//! analysis against the simulator).
//!
//! [`crate::arb`] stresses the loader with crowded, overlapping ranges and
//! free text; almost none of its scenarios render, and the few that do
//! give one address to several hosts, where "does A reach B" has no single
//! answer. Here every range is disjoint by construction:
//!
//! - site `i` (1-based) owns `10.i.0.0/16`; its subnet `j` is `10.i.j.0/24`
//!   (and `fd00:i:j::/64` when it has IPv6); host `h` sits at `.(10 + h)`;
//! - hosts of roaming sites sit on the `internet` wan link at
//!   `203.0.113.(10 + h)`, a second wan `isp-b` at `192.0.2.(10 + h)`, a
//!   `lan` leased line at `192.168.250.(10 + h)`;
//! - elastic IPs are `198.18.0.(1 + h)`, home routers masquerade behind
//!   `198.51.100.i`;
//! - the WireGuard star is `10.200.0.0/24`, the mesh `10.201.0.0/24`, the
//!   bond `10.202.0.0/24`, OpenVPN profile `p` hands out `10.(210 + p).0.0/24`.
//!
//! Everything else is chosen at random: site kinds and uplinks, which hosts
//! forward, source/dest checks, static and site routes (to other sites and
//! to the overlays), overlay members and options, firewalls. There is no
//! timeline and no impairment besides latency: a generated scenario
//! describes a steady state.
//!
//! References are [`Index`]es resolved in [`build_deployment`], so shrinking
//! never leaves a dangling name.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::json;
use vpnsim_topology::ScenarioFile;
use vpnsim_topology::format::*;
use vpnsim_topology::units::{Duration, Listener, Proto};

use crate::de;

/// Random deployable scenarios (see the module docs).
pub fn arb_deployment() -> impl Strategy<Value = ScenarioFile> {
    arb_deploy_spec().prop_map(build_deployment)
}

#[derive(Debug, Clone)]
pub struct DeploySpec {
    pub seed: u64,
    pub latency_ms: u64,
    pub sites: Vec<DSite>,
    pub hosts: Vec<DHost>,
    pub star: Option<DStar>,
    pub ipsec: Option<DIpsec>,
    pub openvpn: Option<DOpenVpn>,
    pub mesh: Option<DMesh>,
    pub bond: Option<DBond>,
    pub firewalls: Vec<DFirewall>,
}

#[derive(Debug, Clone)]
pub struct DSite {
    pub kind: SiteKind,
    pub uplink: bool,
    pub nat: bool,
    pub subnets: usize,
    pub v6: bool,
    /// Route-table entries: (destination, the host in this site it goes to).
    pub routes: Vec<(Index, Index)>,
}

#[derive(Debug, Clone)]
pub struct DHost {
    pub site: Index,
    pub subnet: Index,
    pub forwarding: bool,
    pub source_dest_check: bool,
    pub elastic: bool,
    /// 0: none, 1: the site's other subnet (or `isp-b` for hosts on the
    /// internet), 2: the `lan` leased line.
    pub second: u8,
    /// Static routes: (destination, next hop among the hosts it shares a
    /// segment with).
    pub routes: Vec<(Index, Index)>,
}

#[derive(Debug, Clone)]
pub struct DStar {
    pub hub: Index,
    pub workers: Vec<Index>,
    pub keepalive: bool,
    /// Extra AllowedIPs: (member, site whose range it routes).
    pub allowed: Vec<(Index, Index)>,
}

#[derive(Debug, Clone)]
pub struct DIpsec {
    pub daemon: IpsecDaemon,
    pub full_mesh: bool,
    pub gateways: Vec<Index>,
    pub ike_version: u8,
    pub auto: IpsecAuto,
    pub nat_traversal: bool,
    pub dpd: bool,
}

#[derive(Debug, Clone)]
pub struct DProfile {
    pub node: Index,
    pub default_gateway: bool,
    pub nat: bool,
    pub tcp_only: bool,
}

#[derive(Debug, Clone)]
pub struct DOpenVpn {
    pub controller: Index,
    pub use_vpn_daemon: bool,
    pub profiles: Vec<DProfile>,
    pub clients: Vec<(Index, Index)>,
}

#[derive(Debug, Clone)]
pub struct DMesh {
    /// Member and its initial peers (indexes into the members).
    pub members: Vec<(Index, Vec<Index>)>,
}

#[derive(Debug, Clone)]
pub struct DBond {
    pub hosts: (Index, Index),
    pub mode: BondMode,
    /// Per TAP link: the first host dials (always in active-backup), and
    /// over which wan link (0: internet, 1: isp-b).
    pub links: Vec<(bool, bool)>,
}

#[derive(Debug, Clone)]
pub enum DSource {
    Any,
    Host(Index),
    Site(Index),
}

#[derive(Debug, Clone)]
pub struct DFirewall {
    pub host: Index,
    pub input: Policy,
    pub forward: Policy,
    pub trusted: Vec<Index>,
    /// Sources and protocol (0: icmp, 1: any, 2: tcp/22).
    pub allow: Vec<(DSource, u8)>,
    pub forward_rules: Vec<(Index, Index)>,
}

fn arb_policy() -> impl Strategy<Value = Policy> {
    prop_oneof![
        2 => Just(Policy::Accept),
        1 => Just(Policy::Drop),
        1 => Just(Policy::Reject)
    ]
}

fn arb_site() -> impl Strategy<Value = DSite> {
    (
        prop_oneof![
            Just(SiteKind::CloudVpc),
            Just(SiteKind::Datacenter),
            Just(SiteKind::Home),
            Just(SiteKind::Roaming)
        ],
        prop::bool::weighted(0.85),
        any::<bool>(),
        1usize..=2,
        prop::bool::weighted(0.25),
        vec((any::<Index>(), any::<Index>()), 0..=1),
    )
        .prop_map(|(kind, uplink, nat, subnets, v6, routes)| DSite {
            kind,
            uplink,
            nat,
            subnets,
            v6,
            routes,
        })
}

fn arb_host() -> impl Strategy<Value = DHost> {
    (
        any::<Index>(),
        any::<Index>(),
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.4),
        prop_oneof![4 => Just(0u8), 1 => Just(1u8), 1 => Just(2u8)],
        vec((any::<Index>(), any::<Index>()), 0..=1),
    )
        .prop_map(
            |(site, subnet, forwarding, source_dest_check, elastic, second, routes)| DHost {
                site,
                subnet,
                forwarding,
                source_dest_check,
                elastic,
                second,
                routes,
            },
        )
}

fn arb_star() -> impl Strategy<Value = DStar> {
    (
        any::<Index>(),
        vec(any::<Index>(), 1..=4),
        prop::bool::weighted(0.7),
        vec((any::<Index>(), any::<Index>()), 0..=1),
    )
        .prop_map(|(hub, workers, keepalive, allowed)| DStar {
            hub,
            workers,
            keepalive,
            allowed,
        })
}

fn arb_ipsec() -> impl Strategy<Value = DIpsec> {
    (
        prop_oneof![
            3 => Just(IpsecDaemon::Libreswan),
            1 => Just(IpsecDaemon::Strongswan)
        ],
        any::<bool>(),
        vec(any::<Index>(), 2..=3),
        1u8..=2,
        prop_oneof![
            2 => Just(IpsecAuto::Start),
            1 => Just(IpsecAuto::Add),
            1 => Just(IpsecAuto::Ondemand)
        ],
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(daemon, full_mesh, gateways, ike_version, auto, nat_traversal, dpd)| DIpsec {
                daemon,
                full_mesh,
                gateways,
                ike_version,
                auto,
                nat_traversal,
                dpd,
            },
        )
}

fn arb_openvpn() -> impl Strategy<Value = DOpenVpn> {
    let profile = (
        any::<Index>(),
        any::<bool>(),
        any::<bool>(),
        prop::bool::weighted(0.2),
    )
        .prop_map(|(node, default_gateway, nat, tcp_only)| DProfile {
            node,
            default_gateway,
            nat,
            tcp_only,
        });
    (
        any::<Index>(),
        any::<bool>(),
        vec(profile, 1..=2),
        vec((any::<Index>(), any::<Index>()), 1..=3),
    )
        .prop_map(|(controller, use_vpn_daemon, profiles, clients)| DOpenVpn {
            controller,
            use_vpn_daemon,
            profiles,
            clients,
        })
}

fn arb_mesh() -> impl Strategy<Value = DMesh> {
    vec((any::<Index>(), vec(any::<Index>(), 0..=2)), 2..=4).prop_map(|members| DMesh { members })
}

fn arb_bond() -> impl Strategy<Value = DBond> {
    (
        (any::<Index>(), any::<Index>()),
        prop_oneof![Just(BondMode::ActiveBackup), Just(BondMode::BalanceAlb)],
        vec((any::<bool>(), any::<bool>()), 1..=2),
    )
        .prop_map(|(hosts, mode, links)| DBond { hosts, mode, links })
}

fn arb_source() -> impl Strategy<Value = DSource> {
    prop_oneof![
        Just(DSource::Any),
        any::<Index>().prop_map(DSource::Host),
        any::<Index>().prop_map(DSource::Site),
    ]
}

fn arb_firewall() -> impl Strategy<Value = DFirewall> {
    (
        any::<Index>(),
        arb_policy(),
        arb_policy(),
        vec(any::<Index>(), 0..=1),
        vec((arb_source(), 0u8..3), 0..=2),
        vec((any::<Index>(), any::<Index>()), 0..=2),
    )
        .prop_map(
            |(host, input, forward, trusted, allow, forward_rules)| DFirewall {
                host,
                input,
                forward,
                trusted,
                allow,
                forward_rules,
            },
        )
}

/// The plain-value description [`build_deployment`] turns into a scenario.
pub fn arb_deploy_spec() -> impl Strategy<Value = DeploySpec> {
    (
        (0u64..1000, 1u64..=30),
        vec(arb_site(), 1..=4),
        vec(arb_host(), 2..=7),
        (
            option::weighted(0.5, arb_star()),
            option::weighted(0.4, arb_ipsec()),
            option::weighted(0.3, arb_openvpn()),
            option::weighted(0.2, arb_mesh()),
            option::weighted(0.15, arb_bond()),
        ),
        vec(arb_firewall(), 0..=2),
    )
        .prop_map(
            |((seed, latency_ms), sites, hosts, (star, ipsec, openvpn, mesh, bond), firewalls)| {
                DeploySpec {
                    seed,
                    latency_ms,
                    sites,
                    hosts,
                    star,
                    ipsec,
                    openvpn,
                    mesh,
                    bond,
                    firewalls,
                }
            },
        )
}

const INTERNET: &str = "internet";
const ISP_B: &str = "isp-b";
const LAN: &str = "lan";
const STAR: &str = "wg0";
const MESH: &str = "mesh0";
const BOND: &str = "bond0";
const IPSEC: &str = "ipsec0";
const OPENVPN: &str = "ovpn0";

fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

fn net4(addr: Ipv4Addr, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new(addr, len).unwrap_or_default())
}

fn site_cidr(i: usize) -> IpNet {
    net4(v4(10, i as u8 + 1, 0, 0), 16)
}

fn subnet_cidr(i: usize, j: usize) -> IpNet {
    net4(v4(10, i as u8 + 1, j as u8, 0), 24)
}

fn subnet_cidr6(i: usize, j: usize) -> Ipv6Net {
    Ipv6Net::new(
        Ipv6Addr::new(0xfd00, i as u16 + 1, j as u16, 0, 0, 0, 0, 0),
        64,
    )
    .unwrap_or_default()
}

fn star_cidr() -> IpNet {
    net4(v4(10, 200, 0, 0), 24)
}

fn mesh_cidr() -> IpNet {
    net4(v4(10, 201, 0, 0), 24)
}

fn profile_range(p: usize) -> IpNet {
    net4(v4(10, 210 + p as u8, 0, 0), 24)
}

/// Where a host sits, as built.
#[derive(Debug, Clone)]
struct Placed {
    name: String,
    site: usize,
    /// Segment name → the host's address there.
    segments: Vec<(String, IpAddr)>,
    /// Elastic IP or address on a wan link: what the internet dials.
    public: Option<IpAddr>,
}

/// Turns a spec into a scenario (see the module docs for the layout).
pub fn build_deployment(spec: DeploySpec) -> ScenarioFile {
    let mut file: ScenarioFile =
        de(json!({ "scenario": { "name": "deployment", "seed": spec.seed } }));
    let mut internet: Link = de(json!({ "kind": LinkKind::Wan }));
    internet.latency = Some(Duration::from_millis(spec.latency_ms));
    file.links.insert(INTERNET.into(), internet);
    let uses_second_wan = spec.hosts.iter().any(|h| h.second == 1)
        || spec
            .bond
            .as_ref()
            .is_some_and(|b| b.links.iter().any(|l| l.1));
    if uses_second_wan {
        let mut isp_b: Link = de(json!({ "kind": LinkKind::Wan }));
        isp_b.latency = Some(Duration::from_millis(spec.latency_ms + 5));
        file.links.insert(ISP_B.into(), isp_b);
    }
    if spec.hosts.iter().any(|h| h.second == 2) {
        let mut lan: Link = de(json!({ "kind": LinkKind::Lan }));
        lan.cidr = Some(net4(v4(192, 168, 250, 0), 24));
        lan.latency = Some(Duration::from_millis(1));
        file.links.insert(LAN.into(), lan);
    }

    // Sites and their subnets.
    let site_names: Vec<String> = (0..spec.sites.len()).map(|i| format!("s{i}")).collect();
    let mut subnets_of: Vec<Vec<String>> = Vec::new();
    for (i, s) in spec.sites.iter().enumerate() {
        let mut site: Site = de(json!({ "kind": s.kind }));
        let mut names = Vec::new();
        if s.kind != SiteKind::Roaming {
            site.cidrs = vec![site_cidr(i)];
            if s.uplink {
                site.uplink = Some(INTERNET.into());
                if s.nat && matches!(s.kind, SiteKind::Home | SiteKind::Datacenter) {
                    site.nat_address = Some(v4(198, 51, 100, i as u8 + 1));
                }
            }
            for j in 0..s.subnets {
                let name = format!("s{i}-n{j}");
                let mut subnet: Subnet =
                    de(json!({ "site": site_names[i], "cidr": subnet_cidr(i, j) }));
                if s.v6 {
                    subnet.cidr6 = Some(IpNet::V6(subnet_cidr6(i, j)));
                }
                file.subnets.insert(name.clone(), subnet);
                names.push(name);
            }
        }
        file.sites.insert(site_names[i].clone(), site);
        subnets_of.push(names);
    }

    // Hosts.
    let mut placed: Vec<Placed> = Vec::new();
    for (h, hs) in spec.hosts.iter().enumerate() {
        let name = format!("h{h}");
        let si = hs.site.index(spec.sites.len());
        let site = &spec.sites[si];
        let last = 10 + h as u8;
        let mut host: Host = de(json!({ "site": site_names[si] }));
        host.forwarding = hs.forwarding;
        host.source_dest_check = hs.source_dest_check;
        let mut segments = Vec::new();
        let mut public = None;
        let mut iface = |host: &mut Host,
                         kind: &str,
                         segment: &str,
                         address: IpAddr,
                         address6: Option<Ipv6Addr>| {
            let n = host.interfaces.len();
            let mut i: Interface = de(json!({ "name": format!("eth{n}") }));
            if kind == "link" {
                i.link = Some(segment.to_string());
            } else {
                i.subnet = Some(segment.to_string());
            }
            i.address = Some(address);
            i.address6 = address6;
            host.interfaces.push(i);
            segments.push((segment.to_string(), address));
        };
        if site.kind == SiteKind::Roaming {
            let a = IpAddr::V4(v4(203, 0, 113, last));
            iface(&mut host, "link", INTERNET, a, None);
            public = Some(a);
            if hs.second == 1 {
                iface(
                    &mut host,
                    "link",
                    ISP_B,
                    IpAddr::V4(v4(192, 0, 2, last)),
                    None,
                );
            }
        } else {
            let subnets = &subnets_of[si];
            let j = hs.subnet.index(subnets.len());
            let six = |j: usize| {
                site.v6.then(|| {
                    Ipv6Addr::from(u128::from(subnet_cidr6(si, j).network()) + u128::from(last))
                })
            };
            iface(
                &mut host,
                "subnet",
                &subnets[j],
                IpAddr::V4(v4(10, si as u8 + 1, j as u8, last)),
                six(j),
            );
            if hs.second == 1 && subnets.len() > 1 {
                let k = 1 - j;
                iface(
                    &mut host,
                    "subnet",
                    &subnets[k],
                    IpAddr::V4(v4(10, si as u8 + 1, k as u8, last)),
                    six(k),
                );
            }
            if hs.elastic && site.uplink {
                let e = v4(198, 18, 0, 1 + h as u8);
                host.public_address = Some(e);
                public = Some(IpAddr::V4(e));
            }
        }
        if hs.second == 2 {
            iface(
                &mut host,
                "link",
                LAN,
                IpAddr::V4(v4(192, 168, 250, last)),
                None,
            );
        }
        file.hosts.insert(name.clone(), host);
        placed.push(Placed {
            name,
            site: si,
            segments,
            public,
        });
    }
    let host_names: Vec<String> = placed.iter().map(|p| p.name.clone()).collect();
    let pick_host = |i: &Index| &placed[i.index(placed.len())];

    // Overlays.
    let mut overlay_ranges: Vec<IpNet> = Vec::new();
    if let Some(sp) = &spec.star {
        let hub = pick_host(&sp.hub);
        let workers: Vec<String> = dedup(sp.workers.iter().map(|w| pick_host(w).name.clone()))
            .into_iter()
            .filter(|w| *w != hub.name)
            .collect();
        if !workers.is_empty() {
            let members: Vec<String> = std::iter::once(hub.name.clone())
                .chain(workers.iter().cloned())
                .collect();
            let mut star: WireguardStar =
                de(json!({ "cidr": star_cidr(), "hub": hub.name, "workers": workers }));
            let endpoint = hub.public.or_else(|| hub.segments.first().map(|s| s.1));
            if let Some(IpAddr::V4(a)) = endpoint {
                star.endpoints
                    .insert(hub.name.clone(), format!("{a}:{}", star.port));
            }
            star.persistent_keepalive = sp.keepalive.then(|| Duration::from_secs(25));
            let mut routed = BTreeSet::new();
            for (m, s) in &sp.allowed {
                let member = m.get(&members).clone();
                let si = s.index(spec.sites.len());
                if spec.sites[si].kind != SiteKind::Roaming && routed.insert(si) {
                    star.allowed_ips
                        .entry(member)
                        .or_default()
                        .push(site_cidr(si));
                }
            }
            file.wireguard.insert(STAR.into(), star);
            overlay_ranges.push(star_cidr());
        }
    }
    if let Some(sp) = &spec.ipsec {
        // One gateway per site with a range.
        let mut seen = BTreeSet::new();
        let gateways: Vec<&Placed> = sp
            .gateways
            .iter()
            .map(pick_host)
            .filter(|p| spec.sites[p.site].kind != SiteKind::Roaming && seen.insert(p.site))
            .collect();
        if gateways.len() >= 2 {
            let names: Vec<String> = gateways.iter().map(|g| g.name.clone()).collect();
            let (layout, hub, members) = if sp.full_mesh {
                (IpsecLayout::FullMesh, None, names)
            } else {
                (
                    IpsecLayout::HubAndSpoke,
                    Some(names[0].clone()),
                    names[1..].to_vec(),
                )
            };
            let mut ipsec: Ipsec = de(json!({
                "daemon": sp.daemon, "auth": IpsecAuth::Psk, "layout": layout, "gateways": members,
            }));
            ipsec.hub = hub;
            ipsec.ike_version = sp.ike_version;
            ipsec.auto = sp.auto;
            ipsec.nat_traversal = sp.nat_traversal;
            if sp.dpd {
                ipsec.dpd_delay = Duration::from_secs(10);
                ipsec.dpd_timeout = Duration::from_secs(60);
            }
            file.ipsec.insert(IPSEC.into(), ipsec);
        }
    }
    if let Some(sp) = &spec.mesh {
        let picked: Vec<(&Placed, &Vec<Index>)> = {
            let mut seen = BTreeSet::new();
            sp.members
                .iter()
                .map(|(h, peers)| (pick_host(h), peers))
                .filter(|(p, _)| seen.insert(p.name.clone()))
                .collect()
        };
        if picked.len() >= 2 {
            let names: Vec<String> = picked.iter().map(|(p, _)| p.name.clone()).collect();
            let mut members = Vec::new();
            for (p, peers) in &picked {
                let mut member: MeshMember = de(json!({ "host": p.name }));
                member.init_peers = dedup(
                    peers
                        .iter()
                        .map(|i| i.get(&names).clone())
                        .filter(|n| *n != p.name),
                );
                members.push(member);
            }
            let mut mesh: Mesh =
                de(json!({ "network_name": "mgmt", "cidr": mesh_cidr(), "members": [] }));
            mesh.members = members;
            file.mesh.insert(MESH.into(), mesh);
            overlay_ranges.push(mesh_cidr());
        }
    }
    if let Some(sp) = &spec.openvpn {
        let controller = pick_host(&sp.controller);
        let mut dep: OpenVpnDeployment =
            de(json!({ "controller": controller.name, "profiles": {} }));
        dep.use_vpn_daemon = sp.use_vpn_daemon;
        let mut ids = Vec::new();
        for (p, ps) in sp.profiles.iter().enumerate() {
            let node = pick_host(&ps.node);
            let id = format!("p{p}");
            let host_name = format!("vpn{p}.example.net");
            let mut profile: Profile = de(json!({
                "profile_number": p + 1,
                "display_name": format!("Profile {p}"),
                "node": node.name,
                "host_name": host_name,
            }));
            profile.range = Some(profile_range(p));
            profile.default_gateway = ps.default_gateway;
            if ps.nat {
                profile.nat = vec![NatFamily::IPv4];
            }
            // Each profile's processes listen on their own port, as
            // eduVPN's do (two on one port is a `port-conflict`).
            let port = 1194 + p as u16;
            profile.listeners = if ps.tcp_only {
                vec![Listener {
                    proto: Proto::Tcp,
                    port,
                }]
            } else {
                vec![
                    Listener {
                        proto: Proto::Udp,
                        port,
                    },
                    Listener {
                        proto: Proto::Tcp,
                        port,
                    },
                ]
            };
            profile.ext_if = "eth0".into();
            // Clients find the node by name: its public address.
            let mut record: DnsRecord = de(json!({}));
            match node.public.or_else(|| node.segments.first().map(|s| s.1)) {
                Some(IpAddr::V4(a)) => record.a.push(a),
                Some(IpAddr::V6(a)) => record.aaaa.push(a),
                None => {}
            }
            file.dns.insert(host_name, record);
            dep.profiles.insert(id.clone(), profile);
            ids.push(id);
            overlay_ranges.push(profile_range(p));
        }
        // A node is nobody's client (it would dial itself).
        let mut seen: BTreeSet<String> = dep.profiles.values().map(|p| p.node.clone()).collect();
        dep.clients = sp
            .clients
            .iter()
            .map(|(h, p)| (pick_host(h).name.clone(), p.get(&ids).clone()))
            .filter(|(h, _)| seen.insert(h.clone()))
            .map(|(h, p)| de(json!({ "host": h, "profile": p })))
            .collect();
        file.openvpn.insert(OPENVPN.into(), dep);
    }
    if let Some(sp) = &spec.bond {
        let (a, b) = (pick_host(&sp.hosts.0), pick_host(&sp.hosts.1));
        let on = |p: &Placed, link: &str| p.segments.iter().any(|(s, _)| s == link);
        let mut links = Vec::new();
        for (k, (first_dials, second_wan)) in sp.links.iter().enumerate() {
            let via = if *second_wan { ISP_B } else { INTERNET };
            // In active-backup each host makes active the slave that came
            // up first there, and drops frames arriving on the other. Links
            // dialled from both ends come up in opposite orders at the two
            // ends (the listening side finishes the handshake first), so
            // the hosts would each use their own slave and drop the other's
            // frames: operators dial every link from one host. Balance-alb
            // receives on every slave, so either host may dial.
            let first_dials = *first_dials || sp.mode == BondMode::ActiveBackup;
            let (client, server) = if first_dials { (a, b) } else { (b, a) };
            if a.name == b.name || !on(client, via) || !on(server, via) {
                continue;
            }
            let mut tap: TapLink = de(json!({
                "name": format!("ovn{k}"), "client": client.name, "server": server.name, "via": via,
            }));
            // One port per TAP link (both listen on the same two hosts),
            // away from the OpenVPN profiles' 1194 + p.
            tap.listen = Listener {
                proto: Proto::Udp,
                port: 1300 + k as u16,
            };
            links.push(tap);
        }
        if !links.is_empty() {
            let network = net4(v4(10, 202, 0, 0), 24);
            let addresses: BTreeMap<String, IpNet> = [
                (a.name.clone(), net4(v4(10, 202, 0, 1), 24)),
                (b.name.clone(), net4(v4(10, 202, 0, 2), 24)),
            ]
            .into_iter()
            .collect();
            let mut bond: Bond = de(json!({
                "hosts": [a.name, b.name], "mode": sp.mode, "addresses": addresses, "links": [],
            }));
            bond.links = links;
            bond.interface = BOND.into();
            file.bond.insert(BOND.into(), bond);
            overlay_ranges.push(network);
        }
    }

    // Routes: to other sites' ranges and to the overlays.
    let destinations: Vec<IpNet> = spec
        .sites
        .iter()
        .enumerate()
        .filter(|(_, s)| s.kind != SiteKind::Roaming)
        .map(|(i, _)| site_cidr(i))
        .chain(overlay_ranges.iter().copied())
        .collect();
    if !destinations.is_empty() {
        for (i, s) in spec.sites.iter().enumerate() {
            let in_site: Vec<&Placed> = placed
                .iter()
                .filter(|p| {
                    p.site == i
                        && p.segments
                            .iter()
                            .any(|(seg, _)| subnets_of[i].contains(seg))
                })
                .collect();
            if in_site.is_empty() {
                continue;
            }
            let routes: Vec<SiteRoute> = s
                .routes
                .iter()
                .map(|(to, via)| (*to.get(&destinations), via.get(&in_site)))
                .filter(|(to, _)| *to != site_cidr(i))
                .map(|(to, via)| de(json!({ "to": to, "via": via.name })))
                .collect();
            if let Some(site) = file.sites.get_mut(&site_names[i]) {
                site.routes = routes;
            }
        }
        for (h, hs) in spec.hosts.iter().enumerate() {
            let me = &placed[h];
            // Neighbours: hosts sharing a segment, with their address there.
            let neighbours: Vec<IpAddr> = placed
                .iter()
                .filter(|p| p.name != me.name)
                .flat_map(|p| p.segments.iter())
                .filter(|(seg, _)| me.segments.iter().any(|(s, _)| s == seg))
                .map(|(_, a)| *a)
                .filter(IpAddr::is_ipv4)
                .collect();
            if neighbours.is_empty() {
                continue;
            }
            let routes: Vec<Route> = hs
                .routes
                .iter()
                .map(|(to, via)| (*to.get(&destinations), *via.get(&neighbours)))
                .map(|(to, via)| {
                    let mut r: Route = de(json!({ "to": to }));
                    r.via = Some(via);
                    r
                })
                .collect();
            if let Some(host) = file.hosts.get_mut(&me.name) {
                host.routes = routes;
            }
        }
    }

    // Firewalls.
    let trusted_names = ["wg0", "tun+", "peervpn0", "bond0", "eth1"];
    let forward_names = ["eth0", "eth1", "wg0", "tun+", "bond0"];
    for fw in &spec.firewalls {
        let host = pick_host(&fw.host);
        let mut firewall: Firewall = de(json!({}));
        firewall.input_policy = fw.input;
        firewall.forward_policy = fw.forward;
        firewall.trusted_interfaces =
            dedup(fw.trusted.iter().map(|t| t.get(&trusted_names).to_string()));
        for (source, proto) in &fw.allow {
            let from = match source {
                DSource::Any => "any".to_string(),
                DSource::Host(h) => h.get(&host_names).clone(),
                DSource::Site(s) => {
                    let si = s.index(spec.sites.len());
                    if spec.sites[si].kind == SiteKind::Roaming {
                        "any".to_string()
                    } else {
                        site_cidr(si).to_string()
                    }
                }
            };
            let (proto, ports): (&str, Vec<u16>) = match proto {
                0 => ("icmp", vec![]),
                1 => ("any", vec![]),
                _ => ("tcp", vec![22]),
            };
            let mut rule: AllowRule = de(json!({ "from": [from], "proto": proto }));
            rule.ports = ports;
            firewall.allow.push(rule);
        }
        firewall.forward = fw
            .forward_rules
            .iter()
            .map(|(i, o)| {
                de(json!({ "in_interface": i.get(&forward_names), "out_interface": o.get(&forward_names) }))
            })
            .collect();
        file.firewall.insert(host.name.clone(), firewall);
    }
    file
}

/// Keeps the first occurrence of every item.
fn dedup<T: Ord + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = BTreeSet::new();
    items
        .into_iter()
        .filter(|x| seen.insert(x.clone()))
        .collect()
}

//! A large, realistic deployment for benchmarks: `sites` cloud VPCs over a
//! handful of regions, joined by an IPsec hub-and-spoke (site 0 is the hub,
//! as Virginia is in the AWS three-region write-up) and a WireGuard
//! management star over every gateway.
//!
//! Layout of site `i` (names zero-padded so name order is index order):
//! - `site-i`: a cloud VPC with one private block (see [`site_block`]),
//!   uplink `internet`, and a route table sending the hub's block (spokes)
//!   or the whole private space (hub) to its gateway;
//! - `site-i-a` (VPN subnet), `site-i-b`, and sometimes `site-i-c`, each a
//!   /24 (or smaller for very large counts) in its own availability zone;
//! - `gw-i`: the VPN gateway (forwarding on, source/dest check off, a unique
//!   public address from the benchmarking range 198.18.0.0/15);
//! - `app-i-1` and sometimes `app-i-2`: application hosts.
//!
//! Everything is a pure function of `(sites, seed)`.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net};
use serde_json::json;
use vpnsim_topology::ScenarioFile;
use vpnsim_topology::format::*;
use vpnsim_topology::units::{Bandwidth, Duration, Listener, Proto};

use crate::de;

/// Regions sites are spread over (AWS names, as in the reference write-ups).
const REGIONS: [(&str, &str); 6] = [
    ("us-east-1", "US East (N. Virginia)"),
    ("ap-southeast-2", "Asia Pacific (Sydney)"),
    ("eu-central-1", "Europe (Frankfurt)"),
    ("us-west-2", "US West (Oregon)"),
    ("eu-west-1", "Europe (Ireland)"),
    ("ap-northeast-1", "Asia Pacific (Tokyo)"),
];

/// Most sites [`large`] can lay out without overlapping blocks.
pub const MAX_SITES: usize = (1 << 16) + (1 << 12);

/// Prefix length of every site block for a deployment of `sites` sites: the
/// shortest of /16, /20, /22, /24 such that 10.0.0.0/8 plus 172.16.0.0/12
/// hold `sites` disjoint blocks (272 /16s, 4,352 /20s, ...).
pub fn site_prefix_len(sites: usize) -> u8 {
    [16u8, 20, 22, 24]
        .into_iter()
        .find(|len| capacity(*len) >= sites)
        .unwrap_or(24)
}

fn capacity(len: u8) -> usize {
    (1usize << (len - 8)) + (1usize << (len - 12))
}

/// The private block of site `index` in a deployment of `sites` sites:
/// blocks of 10.0.0.0/8 in order, then of 172.16.0.0/12. Distinct indexes
/// give disjoint blocks.
///
/// # Panics
/// When `index >= MAX_SITES`.
pub fn site_block(index: usize, sites: usize) -> Ipv4Net {
    assert!(index < MAX_SITES, "large(): at most {MAX_SITES} sites");
    let len = site_prefix_len(sites.max(index + 1));
    let in_ten = 1usize << (len - 8);
    let (base, i) = if index < in_ten {
        (u32::from(Ipv4Addr::new(10, 0, 0, 0)), index)
    } else {
        (u32::from(Ipv4Addr::new(172, 16, 0, 0)), index - in_ten)
    };
    let addr = base + ((i as u32) << (32 - u32::from(len)));
    Ipv4Net::new(Ipv4Addr::from(addr), len).unwrap_or_default()
}

/// Public (elastic) address of the gateway of site `index`: 198.18.0.0/15
/// (RFC 2544 benchmarking space), skipping `.0` and `.255`.
pub fn public_address(index: usize) -> Ipv4Addr {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 0));
    let i = index as u32;
    Ipv4Addr::from(base + (i / 254) * 256 + 1 + i % 254)
}

/// The WireGuard management overlay: a /16 of 100.64.0.0/10 (RFC 6598),
/// or all of 100.64.0.0/10 past 65,000 gateways.
pub fn overlay_cidr(sites: usize) -> Ipv4Net {
    let len = if sites < 65_000 { 16 } else { 10 };
    Ipv4Net::new(Ipv4Addr::new(100, 64, 0, 0), len).unwrap_or_default()
}

/// SplitMix64: a tiny, stable PRNG, so the output never depends on another
/// crate's algorithm choices.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0; the tiny modulo bias does not matter here).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn coin(&mut self) -> bool {
        self.next() & 1 == 1
    }
}

fn net(addr: Ipv4Addr, len: u8) -> IpNet {
    IpNet::V4(Ipv4Net::new(addr, len).unwrap_or_default())
}

fn flow(
    from: &str,
    to: &str,
    via: Option<&str>,
    proto: ProbeProto,
    port: Option<u16>,
    reason: &str,
) -> Flow {
    let mut flow: Flow = de(json!({ "from": from, "to": to }));
    flow.via = via.map(String::from);
    flow.proto = proto;
    flow.port = port;
    flow.reason = Some(reason.into());
    flow
}

fn interface(subnet: &str, address: Option<IpAddr>) -> Interface {
    let mut iface: Interface = de(json!({ "name": "eth0", "subnet": subnet }));
    iface.address = address;
    iface
}

fn service(name: &str, proto: Proto, port: u16) -> Service {
    de(json!({ "name": name, "listen": Listener { proto, port } }))
}

/// A realistic deployment of `sites` cloud VPCs (at least 2, at most
/// [`MAX_SITES`]); see the module docs for the layout. The result loads
/// without diagnostics and is a pure function of `(sites, seed)`.
///
/// # Panics
/// When `sites > MAX_SITES`.
pub fn large(sites: usize, seed: u64) -> ScenarioFile {
    let n = sites.max(2);
    assert!(
        n <= MAX_SITES,
        "large(): at most {MAX_SITES} sites, not {n}"
    );
    let mut rng = Rng(seed ^ (n as u64).wrapping_mul(0xA24B_AED4_963E_E407));
    let width = n.saturating_sub(1).to_string().len().max(4);
    let site_name = |i: usize| format!("site-{i:0width$}");
    let gw_name = |i: usize| format!("gw-{i:0width$}");
    let app_name = |i: usize, j: usize| format!("app-{i:0width$}-{j}");

    let region_count = (3 + rng.below(4)).min(n);
    let len = site_prefix_len(n);
    let subnet_len = (len + 2).max(24);
    let hub_block = IpNet::V4(site_block(0, n));
    let uses_172 = n > (1usize << (len - 8));
    let star_name = "mgmt";
    let ipsec_name = "backbone";

    let mut file: ScenarioFile = de(json!({
        "scenario": { "name": format!("large-{n}"), "seed": seed },
    }));
    file.scenario.description = Some(format!(
        "{n} cloud VPCs over {region_count} regions: IPsec hub-and-spoke with site 0 as hub, \
         WireGuard management star over every gateway (generated)"
    ));
    file.scenario.source = Some("vpnsim-scenario-gen::large".into());
    file.scenario.valid_from = Some("2026-01-01".into());
    file.scenario.valid_until = Some("2027-01-01".into());

    for (name, display) in &REGIONS[..region_count] {
        let mut region: Region = de(json!({}));
        region.display_name = Some((*display).into());
        region.provider = Some("aws".into());
        file.regions.insert((*name).into(), region);
    }

    let mut internet: Link = de(json!({ "kind": LinkKind::Wan }));
    internet.latency = Some(Duration::from_millis(40));
    internet.jitter = Some(Duration::from_millis(2));
    internet.bandwidth = Some(Bandwidth(1_000_000_000));
    file.links.insert("internet".into(), internet);

    let mut app_counts = Vec::with_capacity(n);
    for i in 0..n {
        let region = if i == 0 { 0 } else { rng.below(region_count) };
        let region_name = REGIONS[region].0;
        let block = site_block(i, n);
        let gw = gw_name(i);
        let route = |to: IpNet| -> SiteRoute { de(json!({ "to": to, "via": gw })) };
        let mut site: Site = de(json!({ "kind": SiteKind::CloudVpc }));
        site.region = Some(region_name.into());
        site.display_name = Some(format!("VPC {i} ({region_name})"));
        site.cidrs = vec![IpNet::V4(block)];
        site.uplink = Some("internet".into());
        site.routes = if i == 0 {
            let mut routes = vec![route(net(Ipv4Addr::new(10, 0, 0, 0), 8))];
            if uses_172 {
                routes.push(route(net(Ipv4Addr::new(172, 16, 0, 0), 12)));
            }
            routes
        } else {
            vec![route(hub_block)]
        };
        file.sites.insert(site_name(i), site);

        let subnet_count = 2 + usize::from(rng.coin());
        let zone_offset = rng.below(3);
        let mut subnet_names = Vec::new();
        let mut blocks = block.subnets(subnet_len).into_iter().flatten();
        for j in 0..subnet_count {
            let letter = ['a', 'b', 'c'][j];
            let zone = ['a', 'b', 'c'][(j + zone_offset) % 3];
            let name = format!("{}-{letter}", site_name(i));
            let cidr = blocks.next().unwrap_or(block);
            let mut subnet: Subnet = de(json!({ "site": site_name(i), "cidr": IpNet::V4(cidr) }));
            subnet.zone = Some(format!("{region_name}{zone}"));
            subnet.purpose = Some(if j == 0 { "vpn".into() } else { "app".into() });
            file.subnets.insert(name.clone(), subnet);
            subnet_names.push((name, cidr));
        }

        // The gateway: a static address like the write-up's x.x.4.5 on some
        // sites, an allocated one on the others.
        let (vpn_subnet, vpn_cidr) = &subnet_names[0];
        let static_address = rng
            .coin()
            .then(|| IpAddr::V4(Ipv4Addr::from(u32::from(vpn_cidr.network()) + 5)));
        let mut host: Host = de(json!({ "site": site_name(i) }));
        host.roles = vec![Role::Gateway, if i == 0 { Role::Hub } else { Role::Spoke }];
        host.description = Some(format!("VPN gateway of {}", site_name(i)));
        host.forwarding = true;
        host.source_dest_check = false;
        host.public_address = Some(public_address(i));
        host.dns_name = Some(format!("{gw}.vpn.example.net"));
        host.interfaces = vec![interface(vpn_subnet, static_address)];
        host.services = vec![service("sshd", Proto::Tcp, 22)];
        file.hosts.insert(gw.clone(), host);

        let apps = 1 + usize::from(rng.coin());
        app_counts.push(apps);
        for j in 1..=apps {
            let (subnet, _) = &subnet_names[1 + (j - 1) % (subnet_count - 1)];
            let mut host: Host = de(json!({ "site": site_name(i) }));
            host.roles = vec![Role::Application];
            host.interfaces = vec![interface(subnet, None)];
            if j == 1 {
                host.services = vec![service("https", Proto::Tcp, 443)];
            }
            file.hosts.insert(app_name(i, j), host);
        }
    }

    let spokes: Vec<String> = (1..n).map(gw_name).collect();
    let mut ipsec: Ipsec = de(json!({
        "daemon": if rng.coin() { IpsecDaemon::Strongswan } else { IpsecDaemon::Libreswan },
        "auth": if rng.coin() { IpsecAuth::Psk } else { IpsecAuth::Cert },
        "layout": IpsecLayout::HubAndSpoke,
        "hub": gw_name(0),
        "gateways": spokes,
    }));
    ipsec.dpd_delay = Duration::from_secs(30);
    ipsec.dpd_timeout = Duration::from_secs(120);
    file.ipsec.insert(ipsec_name.into(), ipsec);

    // Two workers besides the hub publish endpoints: promotion candidates.
    let overlay = overlay_cidr(n);
    let mut star: WireguardStar =
        de(json!({ "cidr": IpNet::V4(overlay), "hub": gw_name(0), "workers": spokes }));
    star.interface = "wg0".into();
    star.port = 51820;
    for i in [0, 1 + rng.below(n - 1), 1 + rng.below(n - 1)] {
        star.endpoints
            .insert(gw_name(i), format!("{}:51820", public_address(i)));
    }
    star.addresses.insert(
        gw_name(0),
        IpAddr::V4(Ipv4Addr::from(u32::from(overlay.network()) + 1)),
    );
    star.persistent_keepalive = Some(Duration::from_secs(25));
    file.wireguard.insert(star_name.into(), star);

    // The hub's application server: https from the private space, ssh and
    // ping only from the hub gateway.
    let hub_app = app_name(0, 1);
    let mut private_sources = vec!["10.0.0.0/8".to_string()];
    if uses_172 {
        private_sources.push("172.16.0.0/12".into());
    }
    let mut firewall: Firewall =
        de(json!({ "input_policy": Policy::Drop, "forward_policy": Policy::Drop }));
    firewall.allow = vec![
        de(json!({ "from": private_sources, "proto": "tcp", "ports": [443] })),
        de(json!({ "from": [gw_name(0)], "proto": "tcp", "ports": [22] })),
        de(json!({ "from": [gw_name(0)], "proto": "icmp" })),
    ];
    file.firewall.insert(hub_app.clone(), firewall);

    let mut record: DnsRecord = de(json!({}));
    record.hosts = vec![gw_name(0)];
    record.ttl = Some(60);
    file.dns.insert("vpn.example.net".into(), record);

    // Expectations between two distinct spokes a and b.
    let a = 1 + rng.below(n - 1);
    let b = if n > 2 {
        1 + (a + rng.below(n - 2)) % (n - 1)
    } else {
        a
    };
    let (app_a, app_b) = (app_name(a, 1), app_name(b, 1));
    let expect = &mut file.expect;
    expect.reach.push(flow(
        &app_a,
        &hub_app,
        None,
        ProbeProto::Tcp,
        Some(443),
        "spokes use the hub's service",
    ));
    expect.reach.push(flow(
        &hub_app,
        &app_a,
        None,
        ProbeProto::Icmp,
        None,
        "the hub reaches every spoke",
    ));
    expect.reach.push(flow(
        &gw_name(a),
        &gw_name(0),
        Some(star_name),
        ProbeProto::Icmp,
        None,
        "management overlay",
    ));
    expect.reach.push(flow(
        &gw_name(0),
        &app_name(a, app_counts[a]),
        None,
        ProbeProto::Icmp,
        None,
        "hub gateway reaches spoke hosts",
    ));
    expect.isolated.push(flow(
        &app_a,
        &hub_app,
        None,
        ProbeProto::Tcp,
        Some(22),
        "only the hub gateway may ssh to the hub's server",
    ));
    if a != b {
        expect.reach.push(flow(
            &gw_name(a),
            &gw_name(b),
            Some(star_name),
            ProbeProto::Icmp,
            None,
            "workers reach each other through the hub",
        ));
        expect.isolated.push(flow(
            &app_a,
            &app_b,
            None,
            ProbeProto::Icmp,
            None,
            "spokes do not talk to each other",
        ));
    }
    file
}

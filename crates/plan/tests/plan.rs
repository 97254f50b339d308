//! Properties of IPAM over random valid scenarios, and a few fixed cases.
//!
//! (a) allocated client ranges overlap no declared prefix and no other
//!     client range;
//! (b) allocated addresses are unique per attachment and never equal a
//!     declared address there;
//! (c) every allocated address lies inside its attachment's prefix, is not
//!     its network or IPv4 broadcast address, and AWS-style subnets never
//!     hand out .1-.3;
//! (d) planning is deterministic;
//! (e) adding a host whose name sorts last moves no existing allocation.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use proptest::prelude::*;
use proptest::sample::Index;
use vpnsim_plan::{Address, Attachment, Origin, Plan, Planned, plan};
use vpnsim_scenario_gen::{arb_scenario, to_toml};
use vpnsim_topology::format::{Host, Interface, LinkKind, MeshMember, SiteKind, VpnClient};
use vpnsim_topology::model::Topology;
use vpnsim_topology::{LoadError, Scenario, ScenarioFile, load_str};

/// `cases` by default; `PROPTEST_CASES` overrides it for a longer hunt.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn load(text: &str) -> Scenario {
    match load_str("plan-test.toml", text) {
        Ok(s) => s,
        Err(LoadError::Invalid { diagnostics, .. }) => {
            let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            panic!("does not load:\n{}\n--- text ---\n{text}", shown.join("\n"))
        }
        Err(e) => panic!("{e}"),
    }
}

fn load_file(file: &ScenarioFile) -> Scenario {
    load(&to_toml(file))
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b) || b.contains(&a)
}

/// The address space the scenario itself declares: site, subnet, link,
/// overlay and bond prefixes and declared client ranges.
fn declared_prefixes(t: &Topology) -> Vec<(String, IpNet)> {
    let mut nets = Vec::new();
    for s in &t.sites {
        nets.extend(s.cidrs.iter().map(|c| (format!("site {}", s.name), *c)));
    }
    for s in &t.subnets {
        nets.push((format!("subnet {}", s.name), s.cidr));
        nets.extend(s.cidr6.map(|c| (format!("subnet {} cidr6", s.name), c)));
    }
    for l in &t.links {
        nets.extend(l.cidr.map(|c| (format!("link {}", l.name), c)));
    }
    nets.extend(
        t.stars
            .iter()
            .map(|s| (format!("wireguard {}", s.name), s.cidr)),
    );
    nets.extend(
        t.meshes
            .iter()
            .map(|m| (format!("mesh {}", m.name), m.cidr)),
    );
    for b in &t.bonds {
        nets.extend(
            b.addresses
                .values()
                .map(|n| (format!("bond {}", b.name), n.trunc())),
        );
    }
    for d in &t.openvpn {
        for p in &d.profiles {
            nets.extend(
                p.spec
                    .range
                    .map(|r| (format!("openvpn {} profile {} range", d.name, p.id), r)),
            );
            nets.extend(
                p.spec
                    .range6
                    .map(|r| (format!("openvpn {} profile {} range6", d.name, p.id), r)),
            );
        }
    }
    nets
}

/// Prefixes an allocated address on `attachment` must lie in.
fn attachment_prefixes(t: &Topology, plan: &Plan, attachment: Attachment) -> Vec<IpNet> {
    match attachment {
        Attachment::Subnet(s) => std::iter::once(t.subnet(s).cidr)
            .chain(t.subnet(s).cidr6)
            .collect(),
        Attachment::Link(l) => t.link(l).cidr.into_iter().collect(),
        Attachment::Star(s) => vec![t.stars[s.index()].cidr],
        Attachment::Mesh(m) => vec![t.meshes[m.index()].cidr],
        Attachment::Bond(_) => Vec::new(),
        // Each server process has its part of the ranges.
        Attachment::Profile(d, p) => plan
            .client_range(d, p as usize)
            .map(|r| {
                let listeners = t.openvpn[d.index()].profiles[p as usize]
                    .spec
                    .listeners
                    .len()
                    .max(1);
                let parts = vpnsim_plan::process_networks(listeners, r.range, r.range6)
                    .unwrap_or_else(|_| {
                        vec![vpnsim_plan::ProcessNet {
                            network: r.range,
                            network6: r.range6,
                        }]
                    });
                parts
                    .iter()
                    .flat_map(|n| {
                        std::iter::once(IpNet::V4(n.network)).chain(n.network6.map(IpNet::V6))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    }
}

fn offset_in(net: IpNet, addr: IpAddr) -> u128 {
    match (net, addr) {
        (IpNet::V4(n), IpAddr::V4(a)) => u128::from(u32::from(a) - u32::from(n.network())),
        (IpNet::V6(n), IpAddr::V6(a)) => u128::from(a) - u128::from(n.network()),
        _ => u128::MAX,
    }
}

fn host_bits(net: IpNet) -> u8 {
    net.max_prefix_len() - net.prefix_len()
}

/// (a) for one plan.
fn check_client_ranges(t: &Topology, planned: &Planned) -> Result<(), TestCaseError> {
    let declared = declared_prefixes(t);
    let ranges = &planned.plan.client_ranges;
    for (i, r) in ranges.iter().enumerate() {
        let dep = &t.openvpn[r.deployment.index()];
        let who = format!(
            "openvpn {} profile {}",
            dep.name, dep.profiles[r.profile as usize].id
        );
        let mut mine: Vec<(IpNet, bool)> =
            vec![(IpNet::V4(r.range), r.origin == Origin::Allocated)];
        mine.extend(
            r.range6
                .map(|r6| (IpNet::V6(r6), r.origin6 == Origin::Allocated)),
        );
        for (net, allocated) in mine {
            if !allocated {
                continue;
            }
            for (owner, d) in &declared {
                prop_assert!(
                    !overlaps(net, *d),
                    "{who}: allocated {net} overlaps declared {d} ({owner})"
                );
            }
            for (j, other) in ranges.iter().enumerate() {
                if i == j {
                    continue;
                }
                let theirs =
                    std::iter::once(IpNet::V4(other.range)).chain(other.range6.map(IpNet::V6));
                for o in theirs {
                    prop_assert!(
                        !overlaps(net, o),
                        "{who}: allocated {net} overlaps client range {o} of profile #{j}"
                    );
                }
            }
        }
    }
    Ok(())
}

/// (b) and (c) for one plan.
fn check_addresses(t: &Topology, plan: &Plan) -> Result<(), TestCaseError> {
    let mut declared: BTreeMap<Attachment, BTreeSet<IpAddr>> = BTreeMap::new();
    for a in plan
        .addresses
        .iter()
        .filter(|a| a.origin == Origin::Declared)
    {
        declared.entry(a.attachment).or_default().insert(a.address);
    }
    let mut allocated: BTreeMap<Attachment, BTreeSet<IpAddr>> = BTreeMap::new();
    for a in plan
        .addresses
        .iter()
        .filter(|a| a.origin == Origin::Allocated)
    {
        let who = format!("{} {} {}", t.host(a.host).name, a.interface, a.address);
        prop_assert!(
            allocated.entry(a.attachment).or_default().insert(a.address),
            "{who}: allocated twice on {:?}",
            a.attachment
        );
        prop_assert!(
            !declared
                .get(&a.attachment)
                .is_some_and(|d| d.contains(&a.address)),
            "{who}: allocated although declared on {:?}",
            a.attachment
        );
        let prefixes = attachment_prefixes(t, plan, a.attachment);
        let Some(net) = prefixes.iter().find(|n| n.contains(&a.address)).copied() else {
            return Err(TestCaseError::fail(format!("{who}: outside {prefixes:?}")));
        };
        prop_assert_eq!(a.prefix_len, net.prefix_len(), "{}: prefix length", who);
        let offset = offset_in(net, a.address);
        let bits = host_bits(net);
        if bits >= 2 {
            prop_assert!(offset != 0, "{who}: network address of {net}");
            if net.addr().is_ipv4() {
                prop_assert!(
                    a.address != net.broadcast(),
                    "{who}: broadcast address of {net}"
                );
            }
        }
        if let Attachment::Subnet(s) = a.attachment {
            let cloud = t
                .sites
                .get(t.subnet(s).site.index())
                .is_some_and(|site| site.kind == SiteKind::CloudVpc);
            if cloud && bits >= 2 {
                prop_assert!(
                    !(1..=3).contains(&offset),
                    "{who}: AWS reserves .1-.3 of {net}"
                );
            }
        }
        if let Attachment::Profile(d, p) = a.attachment {
            // The first address of a process's part of the client range is
            // the node's own (the server of that process).
            let node = t.openvpn[d.index()].profiles[p as usize].node;
            if bits >= 2 {
                prop_assert_eq!(
                    offset == 1,
                    a.host == node && a.interface != vpnsim_plan::CLIENT_DEVICE,
                    "{}: server address of {}",
                    who,
                    net
                );
            }
        }
    }
    Ok(())
}

fn key(a: &Address) -> (u32, String, Attachment, IpAddr, u8, Origin) {
    (
        a.host.0,
        a.interface.clone(),
        a.attachment,
        a.address,
        a.prefix_len,
        a.origin,
    )
}

/// A format value from JSON, so new optional fields never break the tests.
fn from_json<T: serde::de::DeserializeOwned>(json: serde_json::Value) -> T {
    serde_json::from_value(json).unwrap()
}

/// Adds a host named `zzzz-added` (sorting after every generated host) with
/// one interface without an address, and optionally makes it a worker of
/// the first star, a member of the first mesh and a client of the first
/// OpenVPN profile.
fn add_last_host(file: &mut ScenarioFile, segment: Index, overlays: (bool, bool, bool)) {
    let name = "zzzz-added".to_string();
    let site = file.sites.keys().next().cloned().unwrap();
    let subnets: Vec<String> = file.subnets.keys().cloned().collect();
    let lans: Vec<String> = file
        .links
        .iter()
        .filter(|(_, l)| l.kind == LinkKind::Lan)
        .map(|(n, _)| n.clone())
        .collect();
    let mut host: Host = from_json(serde_json::json!({ "site": site }));
    let mut iface: Interface = from_json(serde_json::json!({ "name": "eth0" }));
    if !subnets.is_empty() {
        iface.subnet = Some(segment.get(&subnets).clone());
        host.interfaces.push(iface);
    } else if !lans.is_empty() {
        iface.link = Some(segment.get(&lans).clone());
        host.interfaces.push(iface);
    }
    file.hosts.insert(name.clone(), host);
    if overlays.0
        && let Some(star) = file.wireguard.values_mut().next()
    {
        star.workers.push(name.clone());
    }
    if overlays.1
        && let Some(mesh) = file.mesh.values_mut().next()
    {
        mesh.members
            .push(from_json::<MeshMember>(serde_json::json!({ "host": name })));
    }
    if overlays.2
        && let Some(dep) = file.openvpn.values_mut().next()
        && let Some(profile) = dep.profiles.keys().next().cloned()
    {
        dep.clients.push(from_json::<VpnClient>(
            serde_json::json!({ "host": name, "profile": profile }),
        ));
    }
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn client_ranges_avoid_declared_space_and_each_other(file in arb_scenario()) {
        let s = load_file(&file);
        check_client_ranges(&s.topology, &plan(&s))?;
    }

    #[test]
    fn allocated_addresses_are_unique_and_inside_their_prefix(file in arb_scenario()) {
        let s = load_file(&file);
        check_addresses(&s.topology, &plan(&s).plan)?;
    }

    #[test]
    fn planning_is_deterministic(file in arb_scenario()) {
        let s = load_file(&file);
        let (a, b) = (plan(&s), plan(&s));
        prop_assert_eq!(&a.plan, &b.plan);
        prop_assert_eq!(&a.findings, &b.findings);
        // And independent of the load: the same text loaded again plans the same.
        let again = plan(&load_file(&file));
        prop_assert_eq!(&a.plan, &again.plan);
    }

    #[test]
    fn adding_a_last_host_moves_no_allocation(
        file in arb_scenario(),
        segment in any::<Index>(),
        overlays in (any::<bool>(), any::<bool>(), any::<bool>()),
    ) {
        let before = plan(&load_file(&file));
        let mut grown = file.clone();
        add_last_host(&mut grown, segment, overlays);
        let after = plan(&load_file(&grown));
        let after_keys: BTreeSet<_> = after.plan.addresses.iter().map(key).collect();
        for a in &before.plan.addresses {
            prop_assert!(after_keys.contains(&key(a)), "{:?} moved or vanished after adding a host", a);
        }
        prop_assert_eq!(&before.plan.client_ranges, &after.plan.client_ranges);
    }
}

// ---------------------------------------------------------------------------
// Fixed cases.
// ---------------------------------------------------------------------------

/// The AWS three-region write-up, condensed: static VPN server IPs x.11.4.5,
/// application hosts left to the plan.
const AWS_003: &str = r#"
[scenario]
name = "aws-003"
seed = 3

[links.internet]
kind = "wan"

[sites.vpc1]
kind = "cloud-vpc"
cidrs = ["10.11.0.0/16"]
uplink = "internet"
routes = [{ to = "12.11.0.0/16", via = "vpn-virginia" }, { to = "13.11.0.0/16", via = "vpn-virginia" }]

[sites.vpc2]
kind = "cloud-vpc"
cidrs = ["12.11.0.0/16"]
uplink = "internet"
routes = [{ to = "10.11.0.0/16", via = "vpn-sydney" }]

[sites.vpc3]
kind = "cloud-vpc"
cidrs = ["13.11.0.0/16"]
uplink = "internet"
routes = [{ to = "10.11.0.0/16", via = "vpn-eu" }]

[subnets.virginia-vpn]
site = "vpc1"
cidr = "10.11.4.0/24"
[subnets.sydney-vpn]
site = "vpc2"
cidr = "12.11.4.0/24"
[subnets.sydney-fns-a]
site = "vpc2"
cidr = "12.11.6.0/24"
[subnets.eu-vpn]
site = "vpc3"
cidr = "13.11.4.0/24"
[subnets.eu-epss-b]
site = "vpc3"
cidr = "13.11.9.0/24"

[hosts.vpn-virginia]
site = "vpc1"
forwarding = true
source_dest_check = false
public_address = "198.51.100.10"
interfaces = [{ name = "eth0", subnet = "virginia-vpn", address = "10.11.4.5" }]

[hosts.vpn-sydney]
site = "vpc2"
forwarding = true
source_dest_check = false
public_address = "203.0.113.20"
interfaces = [{ name = "eth0", subnet = "sydney-vpn", address = "12.11.4.5" }]

[hosts.vpn-eu]
site = "vpc3"
forwarding = true
source_dest_check = false
public_address = "192.0.2.30"
interfaces = [{ name = "eth0", subnet = "eu-vpn", address = "13.11.4.5" }]

[hosts.sydney-fns-1]
site = "vpc2"
interfaces = [{ name = "eth0", subnet = "sydney-fns-a" }]

[hosts.eu-epss-1]
site = "vpc3"
interfaces = [{ name = "eth0", subnet = "eu-epss-b" }]

[hosts.build-server]
site = "vpc1"
interfaces = [{ name = "eth0", subnet = "virginia-vpn" }]

[ipsec.openswan]
daemon = "libreswan"
auth = "psk"
layout = "hub-and-spoke"
hub = "vpn-virginia"
gateways = ["vpn-sydney", "vpn-eu"]
"#;

fn addresses_by_host(s: &Scenario, plan: &Plan) -> BTreeMap<String, Vec<(String, Origin)>> {
    let mut out: BTreeMap<String, Vec<(String, Origin)>> = BTreeMap::new();
    for a in &plan.addresses {
        out.entry(s.topology.host(a.host).name.clone())
            .or_default()
            .push((a.with_prefix().to_string(), a.origin));
    }
    out
}

#[test]
fn aws_003_keeps_the_declared_static_ips() {
    let s = load(AWS_003);
    let planned = plan(&s);
    assert!(planned.findings.is_empty(), "{:?}", planned.findings);
    let got = addresses_by_host(&s, &planned.plan);
    let d = |a: &str| vec![(a.to_string(), Origin::Declared)];
    let al = |a: &str| vec![(a.to_string(), Origin::Allocated)];
    let want: BTreeMap<String, Vec<(String, Origin)>> = [
        ("vpn-virginia", d("10.11.4.5/24")),
        ("vpn-sydney", d("12.11.4.5/24")),
        ("vpn-eu", d("13.11.4.5/24")),
        // AWS keeps .0-.3: the first free address is .4.
        ("sydney-fns-1", al("12.11.6.4/24")),
        ("eu-epss-1", al("13.11.9.4/24")),
        ("build-server", al("10.11.4.4/24")),
    ]
    .into_iter()
    .map(|(h, a)| (h.to_string(), a))
    .collect();
    assert_eq!(got, want);
}

/// A shipped scenario, when present, gets exactly the addresses it declares
/// for every interface that declares one.
#[test]
fn shipped_aws_three_regions_keeps_declared_addresses() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../scenarios/aws-three-regions.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return;
    };
    let s = load(&text);
    let planned = plan(&s);
    for host in &s.topology.hosts {
        for iface in &host.interfaces {
            let Some(declared) = iface.address else {
                continue;
            };
            let got: Vec<&Address> = planned
                .plan
                .addresses
                .iter()
                .filter(|a| s.topology.host(a.host).name == host.name && a.interface == iface.name)
                .collect();
            assert!(
                got.iter()
                    .any(|a| a.address == declared && a.origin == Origin::Declared),
                "{} {}: {got:?}",
                host.name,
                iface.name
            );
        }
    }
}

#[test]
fn a_slash_30_with_three_hosts_is_exhausted_at_the_interfaces() {
    let text = r#"
[scenario]
name = "tiny"
seed = 1

[sites.dc]
kind = "datacenter"
cidrs = ["192.168.10.0/24"]

[subnets.p2p]
site = "dc"
cidr = "192.168.10.0/30"

[hosts.a]
site = "dc"
interfaces = [{ name = "eth0", subnet = "p2p" }]

[hosts.b]
site = "dc"
interfaces = [{ name = "eth0", subnet = "p2p" }]

[hosts.c]
site = "dc"

[[hosts.c.interfaces]]
name = "eth0"
subnet = "p2p"
"#;
    let s = load(text);
    let planned = plan(&s);
    // A /30 behind a router: .0 network, .1 router, .3 broadcast; one host fits.
    let got = addresses_by_host(&s, &planned.plan);
    assert_eq!(
        got.get("a"),
        Some(&vec![("192.168.10.2/30".to_string(), Origin::Allocated)])
    );
    assert_eq!(got.get("b"), None);
    let findings: Vec<(&str, Option<&str>, usize)> = planned
        .findings
        .iter()
        .map(|d| (d.code.as_str(), d.field.as_deref(), d.line))
        .collect();
    assert_eq!(
        findings,
        vec![
            ("pool-exhausted", Some("hosts.b.interfaces[0]"), 20),
            ("pool-exhausted", Some("hosts.c.interfaces[0]"), 25)
        ],
        "{:#?}",
        planned.findings
    );
    assert!(
        planned
            .findings
            .iter()
            .all(|d| d.severity == vpnsim_topology::Severity::Error)
    );
}

#[test]
fn a_cloud_slash_30_has_no_address_at_all() {
    let text = r#"
[scenario]
name = "tiny-cloud"
seed = 1

[sites.vpc]
kind = "cloud-vpc"
cidrs = ["10.0.0.0/16"]

[subnets.small]
site = "vpc"
cidr = "10.0.0.0/30"

[hosts.a]
site = "vpc"
interfaces = [{ name = "eth0", subnet = "small" }]
"#;
    let s = load(text);
    let planned = plan(&s);
    assert!(planned.plan.addresses.is_empty());
    assert_eq!(planned.findings.len(), 1);
    assert_eq!(planned.findings[0].code, "pool-exhausted");
    assert_eq!(
        planned.findings[0].field.as_deref(),
        Some("hosts.a.interfaces[0]")
    );
}

/// Large generated deployments plan without findings, every gateway keeps
/// its static address, and every address is unique.
#[test]
fn large_deployment_plans_cleanly() {
    let file = vpnsim_scenario_gen::large(300, 11);
    let s = load_file(&file);
    let planned = plan(&s);
    assert!(planned.findings.is_empty(), "{:?}", planned.findings);
    let all: Vec<IpAddr> = planned
        .plan
        .addresses
        .iter()
        .filter(|a| !matches!(a.attachment, Attachment::Star(_)))
        .map(|a| a.address)
        .collect();
    let unique: BTreeSet<IpAddr> = all.iter().copied().collect();
    assert_eq!(all.len(), unique.len(), "an address is used twice");
    check_addresses(&s.topology, &planned.plan).unwrap();
}

fn profile_scenario(range: &str, range6: &str) -> String {
    format!(
        r#"
[scenario]
name = "tiny-range"
seed = 0

[sites.site0]
kind = "cloud-vpc"

[hosts.h0]
site = "site0"

[openvpn.ovpn0]
controller = "h0"

[openvpn.ovpn0.profiles.p0]
profile_number = 0
display_name = "p0"
node = "h0"
host_name = "a0.example.net"
range = "{range}"
range6 = "{range6}"
"#
    )
}

/// Regression, found by `allocated_addresses_are_unique_and_inside_their_prefix`
/// (minimal input: one profile with `range = "10.0.0.0/32"`, later
/// `range6 = "fd00:1::/128"`): the node's server address was `network + 1`
/// without checking that the range holds it (10.0.0.1/32 on `tun-0-0`,
/// outside 10.0.0.0/32). Ranges too small for OpenVPN are now refused, and
/// the smallest accepted ones keep every address inside.
#[test]
fn tiny_profile_ranges_are_refused_and_the_smallest_accepted_ones_hold_the_server() {
    for (range, range6, field) in [
        ("10.0.0.0/32", "fd00:1::/64", "range"),
        ("10.0.0.0/24", "fd00:1::/128", "range6"),
    ] {
        let Err(LoadError::Invalid { diagnostics, .. }) =
            load_str("tiny.toml", &profile_scenario(range, range6))
        else {
            panic!("{range} / {range6} accepted")
        };
        let want = format!("openvpn.ovpn0.profiles.p0.{field}");
        assert!(
            diagnostics
                .iter()
                .any(|d| d.field.as_deref() == Some(want.as_str())),
            "{diagnostics:?}"
        );
    }
    let s = load(&profile_scenario("10.0.0.8/29", "fd00:1::/112"));
    let planned = plan(&s);
    let (v4, v6): (IpNet, IpNet) = (
        "10.0.0.8/29".parse().unwrap(),
        "fd00:1::/112".parse().unwrap(),
    );
    assert!(!planned.plan.addresses.is_empty());
    for a in &planned.plan.addresses {
        assert!(
            v4.contains(&a.address) || v6.contains(&a.address),
            "{} is outside the profile's ranges",
            a.with_prefix()
        );
    }
}

//! The address plan: prefixes that must be disjoint, subnets inside their
//! site, addresses inside their prefix, one address per interface, and
//! private ranges that are really someone else's public space.
//!
//! Codes: `cidr-overlap`, `subnet-outside-site`, `address-outside-subnet`,
//! `duplicate-address`, `public-address-space`.
//!
//! Semantics chosen where the brief is silent:
//! - `cidr-overlap` compares these pairs (one finding per pair, at the
//!   later range in the order sites, subnets, lan links, stars, meshes,
//!   bonds, client ranges): site/site of different sites; subnet/subnet;
//!   subnet/site of another site when the subnet is not inside its own
//!   site's CIDRs (otherwise the site/site pair already says it); every
//!   client range against everything but other client ranges (that is
//!   `profile-range-collision`); overlays (star, mesh, bond networks)
//!   against underlay (sites, subnets, lan links) and other overlays; lan
//!   links against subnets and other lan links (two L2 segments with one
//!   prefix break connected routes). Lan links against site CIDRs are not
//!   compared: a leased line numbered out of a site's own space is normal.
//! - `subnet-outside-site` checks a family only when the site declares a
//!   CIDR of that family (a site with only IPv4 CIDRs says nothing about
//!   its subnets' `cidr6`).
//! - `address-outside-subnet` also flags an IPv6 address on a segment with
//!   no IPv6 prefix, the addresses cloud VPCs reserve (first four and the
//!   last of an IPv4 subnet, as AWS does), and bond addresses of the two
//!   hosts that are not in each other's network.
//! - `duplicate-address`: routing domains are the site (private subnets),
//!   the lan link, each overlay attachment, and one scenario-wide public
//!   domain (public addresses, wan interfaces, subnets of public sites). One
//!   host holding the same address twice in a domain is not flagged: a host
//!   may legitimately bind its public address on its wan interface and as
//!   `public_address`, or reuse an address on two of its own devices. A
//!   site's `nat_address` is a public address of the site router. Holders
//!   are taken in file order; the finding sits at the later one.
//!   With three holders, each later holder is reported once against the
//!   first.
//! - `public-address-space`: a subnet (or other range) inside a site CIDR
//!   that was already reported is not reported again.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use vpnsim_plan::{Address, Attachment, Origin};
use vpnsim_topology::Diagnostic;
use vpnsim_topology::FieldPath;
use vpnsim_topology::format::{AddressSpace, LinkKind, SiteKind};
use vpnsim_topology::model::{LinkId, OpenVpnId, OverlayId, Segment, SiteId, SubnetId, Topology};

use crate::Ctx;
use crate::check_util::{finding, host_name, overlaps, position};

pub fn check(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    out.extend(cidr_overlap(ctx));
    out.extend(subnet_outside_site(ctx));
    out.extend(address_outside_subnet(ctx));
    out.extend(duplicate_address(ctx));
    out.extend(public_address_space(ctx));
    out
}

// ---------------------------------------------------------------- ranges

/// What a declared range belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Site(SiteId),
    Subnet(SubnetId),
    LanLink(LinkId),
    Overlay(OverlayId),
    Client(OpenVpnId, u32),
}

/// One range of the scenario with a human label and where it is written.
#[derive(Debug, Clone)]
struct Range {
    net: IpNet,
    kind: Kind,
    /// E.g. "subnet `sydney-fns-a` 12.11.6.0/24".
    label: String,
    path: FieldPath,
}

/// Every range in the scenario, in a fixed order (see the module docs).
fn ranges(ctx: &Ctx<'_>) -> Vec<Range> {
    let t = ctx.topology();
    let mut out = Vec::new();
    for (i, site) in t.sites.iter().enumerate() {
        for (k, cidr) in site.cidrs.iter().enumerate() {
            out.push(Range {
                net: *cidr,
                kind: Kind::Site(SiteId(i as u32)),
                label: format!("site `{}` CIDR {cidr}", site.name),
                path: site.path.key("cidrs").index(k),
            });
        }
    }
    for (i, subnet) in t.subnets.iter().enumerate() {
        for (field, net) in [("cidr", Some(subnet.cidr)), ("cidr6", subnet.cidr6)] {
            let Some(net) = net else { continue };
            out.push(Range {
                net,
                kind: Kind::Subnet(SubnetId(i as u32)),
                label: format!("subnet `{}` {net}", subnet.name),
                path: subnet.path.key(field),
            });
        }
    }
    for (i, link) in t.links.iter().enumerate() {
        if let (LinkKind::Lan, Some(net)) = (link.kind, link.cidr) {
            out.push(Range {
                net,
                kind: Kind::LanLink(LinkId(i as u32)),
                label: format!("link `{}` {net}", link.name),
                path: link.path.key("cidr"),
            });
        }
    }
    out.extend(overlay_ranges(t));
    for r in &ctx.plan.client_ranges {
        let Some(dep) = t.openvpn.get(r.deployment.index()) else {
            continue;
        };
        let Some(profile) = dep.profiles.get(r.profile as usize) else {
            continue;
        };
        let nets = [
            ("range", Some(IpNet::V4(r.range)), r.origin),
            ("range6", r.range6.map(IpNet::V6), r.origin6),
        ];
        for (field, net, origin) in nets {
            let Some(net) = net else { continue };
            let how = if origin == Origin::Allocated {
                " (allocated by the plan)"
            } else {
                ""
            };
            out.push(Range {
                net,
                kind: Kind::Client(r.deployment, r.profile),
                label: format!(
                    "client {field} {net}{how} of profile `{}` in openvpn `{}`",
                    profile.id, dep.name
                ),
                path: profile.path.key(field),
            });
        }
    }
    out
}

/// Star and mesh prefixes and bond networks (one per distinct network).
fn overlay_ranges(t: &Topology) -> Vec<Range> {
    let mut out = Vec::new();
    for (i, star) in t.stars.iter().enumerate() {
        out.push(Range {
            net: star.cidr,
            kind: Kind::Overlay(OverlayId::Star(vpnsim_topology::model::StarId(i as u32))),
            label: format!("WireGuard star `{}` {}", star.name, star.cidr),
            path: star.path.key("cidr"),
        });
    }
    for (i, mesh) in t.meshes.iter().enumerate() {
        out.push(Range {
            net: mesh.cidr,
            kind: Kind::Overlay(OverlayId::Mesh(vpnsim_topology::model::MeshId(i as u32))),
            label: format!("mesh `{}` {}", mesh.name, mesh.cidr),
            path: mesh.path.key("cidr"),
        });
    }
    for (i, bond) in t.bonds.iter().enumerate() {
        let mut seen: Vec<IpNet> = Vec::new();
        for (host, net) in &bond.addresses {
            let network = net.trunc();
            if seen.contains(&network) {
                continue;
            }
            seen.push(network);
            out.push(Range {
                net: network,
                kind: Kind::Overlay(OverlayId::Bond(vpnsim_topology::model::BondId(i as u32))),
                label: format!("bond `{}` network {network}", bond.name),
                path: bond.path.key("addresses").key(host_name(t, *host)),
            });
        }
    }
    out
}

/// Whether a subnet prefix lies inside one of its own site's CIDRs.
fn inside_own_site(t: &Topology, subnet: SubnetId, net: &IpNet) -> bool {
    t.subnets
        .get(subnet.index())
        .and_then(|s| t.sites.get(s.site.index()))
        .is_some_and(|site| site.cidrs.iter().any(|c| c.contains(net)))
}

/// Whether two ranges must be disjoint, and the advice when they are not.
fn must_be_disjoint(t: &Topology, a: &Range, b: &Range) -> Option<&'static str> {
    use Kind::*;
    match (a.kind, b.kind) {
        (Site(x), Site(y)) => (x != y)
            .then_some("IPsec traffic selectors and route tables cannot tell the two sites apart; renumber one site"),
        (Subnet(x), Subnet(y)) => (x != y).then_some("give them disjoint prefixes"),
        (Subnet(s), Site(x)) | (Site(x), Subnet(s)) => {
            let (subnet_range, foreign) = if matches!(a.kind, Subnet(_)) { (a, x) } else { (b, x) };
            let own = t.subnets.get(s.index()).map(|s| s.site);
            (own != Some(foreign) && !inside_own_site(t, s, &subnet_range.net))
                .then_some("routes to the other site would capture the subnet's traffic; give the subnet a prefix outside every other site")
        }
        (Client(..), Client(..)) => None,
        (Client(..), _) | (_, Client(..)) => Some(
            "VPN clients would get addresses that also exist there, and the routes of one would capture the other; choose a client range outside every site, subnet, link and overlay",
        ),
        (Overlay(x), Overlay(y)) => {
            (x != y).then_some("two overlays with one prefix cannot be routed apart; give each its own prefix")
        }
        (Overlay(_), _) | (_, Overlay(_)) => Some(
            "the overlay's routes would shadow the underlay network (or the other way round); move the overlay to a prefix not used anywhere in the underlay",
        ),
        (LanLink(x), LanLink(y)) => (x != y).then_some("give each link its own prefix"),
        (LanLink(_), Subnet(_)) | (Subnet(_), LanLink(_)) => Some("give the link a prefix outside every subnet"),
        (LanLink(_), Site(_)) | (Site(_), LanLink(_)) => None,
    }
}

fn cidr_overlap(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let all = ranges(ctx);
    let mut out = Vec::new();
    for (j, b) in all.iter().enumerate() {
        for a in all.iter().take(j) {
            if !overlaps(&a.net, &b.net) {
                continue;
            }
            let Some(advice) = must_be_disjoint(t, a, b) else {
                continue;
            };
            out.push(finding(
                ctx,
                "cidr-overlap",
                &b.path,
                format!("{} overlaps {}; {advice}", b.label, a.label),
            ));
        }
    }
    out
}

// ------------------------------------------------------ subnet-outside-site

fn subnet_outside_site(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let mut out = Vec::new();
    for subnet in &t.subnets {
        let Some(site) = t.sites.get(subnet.site.index()) else {
            continue;
        };
        for (field, net) in [("cidr", Some(subnet.cidr)), ("cidr6", subnet.cidr6)] {
            let Some(net) = net else { continue };
            let same_family: Vec<&IpNet> = site
                .cidrs
                .iter()
                .filter(|c| c.addr().is_ipv4() == net.addr().is_ipv4())
                .collect();
            if same_family.is_empty() || same_family.iter().any(|c| c.contains(&net)) {
                continue;
            }
            let list: Vec<String> = same_family.iter().map(ToString::to_string).collect();
            out.push(finding(
                ctx,
                "subnet-outside-site",
                &subnet.path.key(field),
                format!(
                    "subnet `{}` {net} is not inside any CIDR of site `{}` ({}); choose a prefix inside the site or add its range to the site's `cidrs`",
                    subnet.name,
                    site.name,
                    list.join(", ")
                ),
            ));
        }
    }
    out
}

// --------------------------------------------------- address-outside-subnet

/// Why a host address inside `net` cannot be used, if it cannot.
fn reserved_reason(net: &IpNet, addr: IpAddr, cloud: bool) -> Option<String> {
    let (IpNet::V4(n), IpAddr::V4(a)) = (net, addr) else {
        return None;
    };
    if n.prefix_len() >= 31 {
        return None;
    }
    let offset = u32::from(a).wrapping_sub(u32::from(n.network()));
    if a == n.network() {
        Some(format!("is the network address of {n}"))
    } else if a == n.broadcast() {
        Some(format!("is the broadcast address of {n}"))
    } else if cloud && (1..=3).contains(&offset) {
        let role = match offset {
            1 => "the VPC router",
            2 => "the VPC DNS resolver",
            _ => "future use",
        };
        Some(format!(
            "is reserved by the cloud provider in {n} (first four and last addresses; .{offset} is {role})"
        ))
    } else {
        None
    }
}

fn address_outside_subnet(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let mut out = Vec::new();
    let mut push = |path: &FieldPath, message: String| {
        out.push(finding(ctx, "address-outside-subnet", path, message))
    };
    for host in &t.hosts {
        for iface in &host.interfaces {
            let (prefixes, segment, cloud): (Vec<IpNet>, String, bool) = match iface.segment {
                Segment::Subnet(s) => {
                    let Some(subnet) = t.subnets.get(s.index()) else {
                        continue;
                    };
                    let cloud = t
                        .sites
                        .get(subnet.site.index())
                        .is_some_and(|site| site.kind == SiteKind::CloudVpc);
                    (
                        std::iter::once(subnet.cidr).chain(subnet.cidr6).collect(),
                        format!("subnet `{}`", subnet.name),
                        cloud,
                    )
                }
                Segment::Link(l) => {
                    let Some(link) = t.links.get(l.index()) else {
                        continue;
                    };
                    // A wan link without a prefix takes any public address.
                    let Some(cidr) = link.cidr else { continue };
                    (vec![cidr], format!("link `{}`", link.name), false)
                }
            };
            let declared = [
                ("address", iface.address),
                ("address6", iface.address6.map(IpAddr::V6)),
            ];
            for (field, addr) in declared {
                let Some(addr) = addr else { continue };
                let path = iface.path.key(field);
                let who = format!("`{}` {}", host.name, iface.name);
                let same_family: Vec<&IpNet> = prefixes
                    .iter()
                    .filter(|p| p.addr().is_ipv4() == addr.is_ipv4())
                    .collect();
                let family = if addr.is_ipv4() { "IPv4" } else { "IPv6" };
                if same_family.is_empty() {
                    let fix = if addr.is_ipv4() {
                        "an IPv4 prefix"
                    } else {
                        "`cidr6`"
                    };
                    push(
                        &path,
                        format!(
                            "address {addr} of {who} is on {segment}, which has no {family} prefix; give {segment} {fix} or remove the address"
                        ),
                    );
                    continue;
                }
                match same_family.iter().find(|p| p.contains(&addr)) {
                    None => {
                        let list: Vec<String> =
                            same_family.iter().map(ToString::to_string).collect();
                        push(
                            &path,
                            format!(
                                "address {addr} of {who} is outside {segment} ({}); use an address inside it, or attach the interface to the segment that holds {addr}",
                                list.join(", ")
                            ),
                        );
                    }
                    Some(net) => {
                        if let Some(reason) = reserved_reason(net, addr, cloud) {
                            push(
                                &path,
                                format!(
                                    "address {addr} of {who} on {segment} {reason}; use another host address of {net}"
                                ),
                            );
                        }
                    }
                }
            }
        }
    }
    for star in &t.stars {
        for (host, addr) in &star.addresses {
            let path = star.path.key("addresses").key(host_name(t, *host));
            let who = format!("`{}`", host_name(t, *host));
            if !star.cidr.contains(addr) {
                push(
                    &path,
                    format!(
                        "star address {addr} of {who} is outside the star's cidr {}; pick an address inside {}",
                        star.cidr, star.cidr
                    ),
                );
            } else if let Some(reason) = reserved_reason(&star.cidr, *addr, false) {
                push(
                    &path,
                    format!(
                        "star address {addr} of {who} {reason}; pick another host address of {}",
                        star.cidr
                    ),
                );
            }
        }
    }
    for mesh in &t.meshes {
        for (i, member) in mesh.members.iter().enumerate() {
            let Some(addr) = member.address else { continue };
            let path = mesh.path.key("members").index(i).key("address");
            let who = format!("`{}`", host_name(t, member.host));
            if !mesh.cidr.contains(&addr) {
                push(
                    &path,
                    format!(
                        "mesh address {addr} of {who} is outside mesh `{}` cidr {}; pick an address inside it",
                        mesh.name, mesh.cidr
                    ),
                );
            } else if let Some(reason) = reserved_reason(&mesh.cidr, addr, false) {
                push(
                    &path,
                    format!(
                        "mesh address {addr} of {who} {reason}; pick another host address of {}",
                        mesh.cidr
                    ),
                );
            }
        }
    }
    for bond in &t.bonds {
        let entries: Vec<_> = bond.addresses.iter().collect();
        for (k, (host, net)) in entries.iter().enumerate() {
            let path = bond.path.key("addresses").key(host_name(t, **host));
            if let Some(reason) = reserved_reason(&net.trunc(), net.addr(), false) {
                push(
                    &path,
                    format!(
                        "bond address {net} of `{}` {reason}; use another host address",
                        host_name(t, **host)
                    ),
                );
                continue;
            }
            for (other, other_net) in entries.iter().take(k) {
                if !net.contains(&other_net.addr()) || !other_net.contains(&net.addr()) {
                    push(
                        &path,
                        format!(
                            "bond `{}` address {net} of `{}` and {other_net} of `{}` are not in one network, so the two ends cannot talk; put both in {}",
                            bond.name,
                            host_name(t, **host),
                            host_name(t, **other),
                            other_net.trunc()
                        ),
                    );
                }
            }
        }
    }
    out
}

// -------------------------------------------------------- duplicate-address

/// Where one address must be unique.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Domain {
    /// Public addresses: unique in the whole scenario.
    Public,
    /// Private subnets of one site.
    Site(SiteId),
    /// One lan link.
    Lan(LinkId),
    /// One overlay (star, mesh, bond, client range).
    Overlay(Attachment),
}

/// One address holder.
#[derive(Debug, Clone)]
struct Holder {
    owner: Owner,
    /// E.g. "`vpn-a` eth0 (subnet `s`)".
    label: String,
    path: FieldPath,
}

/// Who holds an address: a host, or a site router (`nat_address`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Host(vpnsim_topology::model::HostId),
    Site(SiteId),
}

fn domain_name(t: &Topology, d: Domain) -> String {
    match d {
        Domain::Public => "the public internet".into(),
        Domain::Site(s) => {
            format!(
                "site `{}`",
                t.sites.get(s.index()).map_or("?", |s| s.name.as_str())
            )
        }
        Domain::Lan(l) => {
            format!(
                "link `{}`",
                t.links.get(l.index()).map_or("?", |l| l.name.as_str())
            )
        }
        Domain::Overlay(a) => attachment_name(t, a),
    }
}

fn attachment_name(t: &Topology, a: Attachment) -> String {
    let name = |list: Option<&str>| list.unwrap_or("?").to_string();
    match a {
        Attachment::Subnet(s) => {
            format!(
                "subnet `{}`",
                name(t.subnets.get(s.index()).map(|s| s.name.as_str()))
            )
        }
        Attachment::Link(l) => {
            format!(
                "link `{}`",
                name(t.links.get(l.index()).map(|l| l.name.as_str()))
            )
        }
        Attachment::Star(s) => {
            format!(
                "star `{}`",
                name(t.stars.get(s.index()).map(|s| s.name.as_str()))
            )
        }
        Attachment::Mesh(m) => {
            format!(
                "mesh `{}`",
                name(t.meshes.get(m.index()).map(|m| m.name.as_str()))
            )
        }
        Attachment::Bond(b) => {
            format!(
                "bond `{}`",
                name(t.bonds.get(b.index()).map(|b| b.name.as_str()))
            )
        }
        Attachment::Profile(d, p) => {
            let dep = t.openvpn.get(d.index());
            let profile = dep
                .and_then(|d| d.profiles.get(p as usize))
                .map(|p| p.id.as_str());
            format!(
                "profile `{}` of openvpn `{}`",
                name(profile),
                name(dep.map(|d| d.name.as_str()))
            )
        }
    }
}

fn domain_of(t: &Topology, a: Attachment) -> Domain {
    match a {
        Attachment::Subnet(s) => {
            let site = t.subnets.get(s.index()).map(|s| s.site);
            let public = site
                .and_then(|s| t.sites.get(s.index()))
                .is_some_and(|s| s.address_space == AddressSpace::Public);
            match site {
                Some(site) if !public => Domain::Site(site),
                _ => Domain::Public,
            }
        }
        Attachment::Link(l) => match t.links.get(l.index()).map(|l| l.kind) {
            Some(LinkKind::Lan) => Domain::Lan(l),
            _ => Domain::Public,
        },
        other => Domain::Overlay(other),
    }
}

/// Where a planned address is written (or would be).
fn address_path(t: &Topology, a: &Address) -> FieldPath {
    let host = t.hosts.get(a.host.index());
    let name = host_name(t, a.host);
    match a.attachment {
        Attachment::Subnet(_) | Attachment::Link(_) => {
            let Some(iface) =
                host.and_then(|h| h.interfaces.iter().find(|i| i.name == a.interface))
            else {
                return host.map_or_else(FieldPath::root, |h| h.path.clone());
            };
            if a.origin == Origin::Allocated {
                iface.path.clone()
            } else if iface.address == Some(a.address) {
                iface.path.key("address")
            } else {
                iface.path.key("address6")
            }
        }
        Attachment::Star(s) => t
            .stars
            .get(s.index())
            .map_or_else(FieldPath::root, |s| s.path.key("addresses").key(name)),
        Attachment::Mesh(m) => t.meshes.get(m.index()).map_or_else(FieldPath::root, |m| {
            match m.members.iter().position(|mm| mm.host == a.host) {
                Some(i) => m.path.key("members").index(i).key("address"),
                None => m.path.clone(),
            }
        }),
        Attachment::Bond(b) => t
            .bonds
            .get(b.index())
            .map_or_else(FieldPath::root, |b| b.path.key("addresses").key(name)),
        Attachment::Profile(d, p) => t
            .openvpn
            .get(d.index())
            .and_then(|d| d.profiles.get(p as usize))
            .map_or_else(FieldPath::root, |p| p.path.key("range")),
    }
}

fn duplicate_address(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let mut groups: BTreeMap<(Domain, IpAddr), Vec<Holder>> = BTreeMap::new();
    for id in t.host_ids() {
        let Some(host) = t.hosts.get(id.index()) else {
            continue;
        };
        for a in ctx.plan.host_addresses(id) {
            let how = if a.origin == Origin::Allocated {
                ", allocated"
            } else {
                ""
            };
            let label = format!(
                "`{}` {} ({}{how})",
                host.name,
                a.interface,
                attachment_name(t, a.attachment)
            );
            let holder = Holder {
                owner: Owner::Host(id),
                label,
                path: address_path(t, a),
            };
            groups
                .entry((domain_of(t, a.attachment), a.address))
                .or_default()
                .push(holder);
        }
        let public = [
            (host.public_address.map(IpAddr::V4), "public_address"),
            (host.public_address6.map(IpAddr::V6), "public_address6"),
        ];
        for (addr, field) in public {
            let Some(addr) = addr else { continue };
            let holder = Holder {
                owner: Owner::Host(id),
                label: format!("`{}` {field}", host.name),
                path: host.path.key(field),
            };
            groups
                .entry((Domain::Public, addr))
                .or_default()
                .push(holder);
        }
    }
    for (i, site) in t.sites.iter().enumerate() {
        let Some(nat) = site.nat_address else {
            continue;
        };
        let holder = Holder {
            owner: Owner::Site(SiteId(i as u32)),
            label: format!("the router of site `{}` (nat_address)", site.name),
            path: site.path.key("nat_address"),
        };
        groups
            .entry((Domain::Public, IpAddr::V4(nat)))
            .or_default()
            .push(holder);
    }
    let mut out = Vec::new();
    for ((domain, addr), holders) in &groups {
        // In file order, so the finding sits at the later declaration.
        let mut ordered: Vec<(usize, usize, &Holder)> = holders
            .iter()
            .enumerate()
            .map(|(i, h)| (position(ctx, &h.path), i, h))
            .collect();
        ordered.sort_by_key(|(pos, i, _)| (*pos, *i));
        let mut distinct: Vec<&Holder> = Vec::new();
        for (_, _, h) in ordered {
            if !distinct.iter().any(|d| d.owner == h.owner) {
                distinct.push(h);
            }
        }
        let Some((first, rest)) = distinct.split_first() else {
            continue;
        };
        for later in rest {
            out.push(finding(
                ctx,
                "duplicate-address",
                &later.path,
                format!(
                    "address {addr} of {} is already used by {} in {}; give each interface its own address",
                    later.label,
                    first.label,
                    domain_name(t, *domain)
                ),
            ));
        }
    }
    out
}

// ----------------------------------------------------- public-address-space

/// Ranges that are fine to use privately: RFC 1918, RFC 6598 shared space,
/// documentation (RFC 5737, RFC 3849), link-local, loopback and ULA.
fn private_spaces() -> Vec<IpNet> {
    let v4 = [
        (Ipv4Addr::new(10, 0, 0, 0), 8),
        (Ipv4Addr::new(172, 16, 0, 0), 12),
        (Ipv4Addr::new(192, 168, 0, 0), 16),
        (Ipv4Addr::new(100, 64, 0, 0), 10),
        (Ipv4Addr::new(192, 0, 2, 0), 24),
        (Ipv4Addr::new(198, 51, 100, 0), 24),
        (Ipv4Addr::new(203, 0, 113, 0), 24),
        (Ipv4Addr::new(169, 254, 0, 0), 16),
        (Ipv4Addr::new(127, 0, 0, 0), 8),
    ];
    let v6 = [
        (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
        (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32),
        (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10),
        (Ipv6Addr::LOCALHOST, 128),
    ];
    let mut out: Vec<IpNet> = v4
        .iter()
        .filter_map(|(a, l)| Ipv4Net::new(*a, *l).ok())
        .map(IpNet::V4)
        .collect();
    out.extend(
        v6.iter()
            .filter_map(|(a, l)| Ipv6Net::new(*a, *l).ok())
            .map(IpNet::V6),
    );
    out
}

/// Whether a range lies entirely inside private, documentation, link-local
/// or loopback space.
pub(crate) fn is_private_range(net: &IpNet) -> bool {
    private_spaces().iter().any(|p| p.contains(net))
}

fn public_address_space(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    // What the scenario uses, so a suggested replacement is really free.
    let mut avoid: Vec<IpNet> = ranges(ctx).into_iter().map(|r| r.net).collect();
    let mut reported: Vec<IpNet> = Vec::new();
    let mut candidates: Vec<(IpNet, String, FieldPath)> = Vec::new();
    for site in t
        .sites
        .iter()
        .filter(|s| s.address_space == AddressSpace::Private)
    {
        for (k, cidr) in site.cidrs.iter().enumerate() {
            candidates.push((
                *cidr,
                format!("site `{}` CIDR {cidr}", site.name),
                site.path.key("cidrs").index(k),
            ));
        }
    }
    for subnet in &t.subnets {
        let private_site = t
            .sites
            .get(subnet.site.index())
            .is_some_and(|s| s.address_space == AddressSpace::Private);
        if !private_site {
            continue;
        }
        for (field, net) in [("cidr", Some(subnet.cidr)), ("cidr6", subnet.cidr6)] {
            let Some(net) = net else { continue };
            candidates.push((
                net,
                format!("subnet `{}` {net}", subnet.name),
                subnet.path.key(field),
            ));
        }
    }
    for r in overlay_ranges(t) {
        candidates.push((r.net, r.label, r.path));
    }
    for r in ranges(ctx)
        .into_iter()
        .filter(|r| matches!(r.kind, Kind::Client(..)))
    {
        candidates.push((r.net, r.label, r.path));
    }
    let mut out = Vec::new();
    for (net, label, path) in candidates {
        if is_private_range(&net) || reported.iter().any(|r| r.contains(&net)) {
            continue;
        }
        reported.push(net);
        let suggestion = match net {
            // Searching blocks longer than /24 one by one can take millions
            // of steps; a free /24 holds a free block of any longer prefix.
            IpNet::V4(n) => {
                match vpnsim_plan::ipam::free_v4_block(n.prefix_len().min(24), &avoid) {
                    Some(free) => {
                        let free = Ipv4Net::new(free.network(), n.prefix_len()).unwrap_or(free);
                        avoid.push(IpNet::V4(free));
                        format!("renumber into RFC 1918 space, e.g. {free}")
                    }
                    None => {
                        "renumber into RFC 1918 space (10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16)"
                            .into()
                    }
                }
            }
            IpNet::V6(_) => {
                format!(
                    "renumber into ULA space, e.g. a prefix of the scenario's {}",
                    ctx.plan.ula
                )
            }
        };
        out.push(finding(
            ctx,
            "public-address-space",
            &path,
            format!(
                "{label} is public address space used as private: these addresses belong to someone else on the internet, and traffic to their real owners will be captured by the VPN routes; {suggestion}, or set address_space = \"public\" on the site if the range is really assigned to you"
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_util::testing::{fields, run, with_code};

    const HEAD: &str = "[scenario]\nname = \"t\"\nseed = 1\n";

    fn scenario(body: &str) -> String {
        format!("{HEAD}{body}")
    }

    /// The AWS three-region layout of reference 003.
    fn aws() -> String {
        let mut s = scenario(
            r#"
[links.internet]
kind = "wan"

[sites.virginia]
kind = "cloud-vpc"
cidrs = ["10.11.0.0/16"]
uplink = "internet"
[sites.sydney]
kind = "cloud-vpc"
cidrs = ["12.11.0.0/16"]
uplink = "internet"
[sites.eu]
kind = "cloud-vpc"
cidrs = ["13.11.0.0/16"]
uplink = "internet"
"#,
        );
        for (site, net) in [("virginia", "10.11"), ("sydney", "12.11"), ("eu", "13.11")] {
            s.push_str(&format!(
                "[subnets.{site}-vpn]\nsite = \"{site}\"\ncidr = \"{net}.4.0/24\"\n"
            ));
            if site != "virginia" {
                for (name, third) in [("fns-a", 6), ("fns-b", 7), ("epss-a", 8), ("epss-b", 9)] {
                    s.push_str(&format!("[subnets.{site}-{name}]\nsite = \"{site}\"\ncidr = \"{net}.{third}.0/24\"\n"));
                }
            }
            s.push_str(&format!(
                "[hosts.vpn-{site}]\nsite = \"{site}\"\nroles = [\"gateway\"]\n[[hosts.vpn-{site}.interfaces]]\nname = \"eth0\"\nsubnet = \"{site}-vpn\"\naddress = \"{net}.4.5\"\n"
            ));
        }
        s
    }

    #[test]
    fn aws_public_vpcs_warn_once_each_at_the_site() {
        let findings = run(check, &aws());
        let public = with_code(&findings, "public-address-space");
        // Sites are in name order: eu, sydney, virginia.
        assert_eq!(
            fields(&findings, "public-address-space"),
            ["sites.eu.cidrs[0]", "sites.sydney.cidrs[0]"]
        );
        assert!(
            public
                .iter()
                .all(|d| d.severity == vpnsim_topology::Severity::Warning)
        );
        assert!(
            public[0].message.contains("13.11.0.0/16"),
            "{}",
            public[0].message
        );
        assert!(
            public[1].message.contains("12.11.0.0/16"),
            "{}",
            public[1].message
        );
        assert!(public[0].message.contains("belong to someone else"));
        assert!(public[0].message.contains("RFC 1918"));
        // Suggestions avoid 10.11.0.0/16 and each other.
        assert!(
            public[0].message.contains("10.0.0.0/16"),
            "{}",
            public[0].message
        );
        assert!(
            public[1].message.contains("10.1.0.0/16"),
            "{}",
            public[1].message
        );
        assert!(
            with_code(&findings, "cidr-overlap").is_empty(),
            "{findings:#?}"
        );
        assert!(with_code(&findings, "subnet-outside-site").is_empty());
        assert!(with_code(&findings, "address-outside-subnet").is_empty());
        assert!(with_code(&findings, "duplicate-address").is_empty());
    }

    #[test]
    fn public_sites_and_private_ranges_do_not_warn() {
        let text = scenario(
            r#"
[sites.dc]
kind = "datacenter"
cidrs = ["145.0.6.64/26"]
address_space = "public"
[subnets.dc-lan]
site = "dc"
cidr = "145.0.6.64/26"
[sites.home]
kind = "home"
cidrs = ["192.168.1.0/24", "fd00:1::/48"]
[subnets.lan]
site = "home"
cidr = "192.168.1.0/24"
[sites.lab]
kind = "datacenter"
[subnets.doc]
site = "lab"
cidr = "198.51.100.0/24"
[subnets.pub]
site = "lab"
cidr = "8.8.8.0/24"
"#,
        );
        let findings = run(check, &text);
        // Only the subnet of a site without CIDRs that squats on 8.8.8.0/24.
        assert_eq!(
            fields(&findings, "public-address-space"),
            ["subnets.pub.cidr"]
        );
    }

    #[test]
    fn overlapping_subnets_and_sites() {
        let text = scenario(
            r#"
[sites.a]
kind = "cloud-vpc"
cidrs = ["10.1.0.0/16"]
[sites.b]
kind = "cloud-vpc"
cidrs = ["10.1.128.0/17"]
[sites.c]
kind = "home"
[subnets.sydney-fns-a]
site = "a"
cidr = "10.1.6.0/24"
[subnets.sydney-fns-b]
site = "a"
cidr = "10.1.6.0/25"
[subnets.other]
site = "a"
cidr = "10.1.7.0/24"
[subnets.home]
site = "c"
cidr = "10.1.200.0/24"
"#,
        );
        let findings = run(check, &text);
        let overlap = with_code(&findings, "cidr-overlap");
        let msgs: Vec<&str> = overlap.iter().map(|d| d.message.as_str()).collect();
        assert_eq!(overlap.len(), 4, "{msgs:#?}");
        assert_eq!(overlap[0].field.as_deref(), Some("sites.b.cidrs[0]"));
        assert!(msgs[0].contains("site `b` CIDR 10.1.128.0/17 overlaps site `a` CIDR 10.1.0.0/16"));
        assert!(msgs[0].contains("IPsec"));
        // Subnets are in name order: home, other, sydney-fns-a, sydney-fns-b.
        // `home` (its site has no CIDRs) lies in both a and b.
        assert!(
            msgs[1].contains("subnet `home` 10.1.200.0/24 overlaps site `a`"),
            "{}",
            msgs[1]
        );
        assert!(
            msgs[2].contains("subnet `home` 10.1.200.0/24 overlaps site `b`"),
            "{}",
            msgs[2]
        );
        assert_eq!(
            overlap[3].field.as_deref(),
            Some("subnets.sydney-fns-b.cidr")
        );
        assert!(msgs[3].contains(
            "subnet `sydney-fns-b` 10.1.6.0/25 overlaps subnet `sydney-fns-a` 10.1.6.0/24"
        ));
        assert!(
            overlap
                .iter()
                .all(|d| d.severity == vpnsim_topology::Severity::Error)
        );
    }

    #[test]
    fn disjoint_plan_has_no_overlap() {
        let text = scenario(
            r#"
[sites.a]
kind = "cloud-vpc"
cidrs = ["10.1.0.0/16"]
[sites.b]
kind = "cloud-vpc"
cidrs = ["10.2.0.0/16"]
[subnets.a1]
site = "a"
cidr = "10.1.1.0/24"
cidr6 = "fd00:1:1:1::/64"
[subnets.a2]
site = "a"
cidr = "10.1.2.0/24"
cidr6 = "fd00:1:1:2::/64"
[subnets.b1]
site = "b"
cidr = "10.2.1.0/24"
"#,
        );
        assert!(run(check, &text).is_empty());
    }

    #[test]
    fn overlays_and_client_ranges_against_underlay() {
        let text = scenario(
            r#"
[links.internet]
kind = "wan"
[links.leased]
kind = "lan"
cidr = "10.9.0.0/30"
[sites.dc]
kind = "datacenter"
cidrs = ["10.5.0.0/16"]
[subnets.lan]
site = "dc"
cidr = "10.5.4.0/24"
[hosts.a]
site = "dc"
[[hosts.a.interfaces]]
name = "eth0"
link = "internet"
address = "192.0.2.1"
[hosts.b]
site = "dc"
[[hosts.b.interfaces]]
name = "eth0"
link = "internet"
address = "192.0.2.2"
[wireguard.cluster]
cidr = "10.5.4.0/24"
hub = "a"
workers = ["b"]
[mesh.mgmt]
network_name = "VPN"
cidr = "10.9.0.0/24"
members = [{ host = "a" }, { host = "b" }]
[openvpn.edu]
controller = "a"
[openvpn.edu.profiles.one]
profile_number = 1
display_name = "One"
node = "b"
host_name = "vpn.example.org"
range = "10.5.0.0/24"
[openvpn.edu.profiles.two]
profile_number = 2
display_name = "Two"
node = "b"
host_name = "vpn.example.org"
range = "10.5.0.0/25"
"#,
        );
        let findings = run(check, &text);
        let overlap = with_code(&findings, "cidr-overlap");
        let got: Vec<(String, String)> = overlap
            .iter()
            .map(|d| (d.field.clone().unwrap_or_default(), d.message.clone()))
            .collect();
        let expect_at = |field: &str, needle: &str| {
            assert!(
                got.iter().any(|(f, m)| f == field && m.contains(needle)),
                "missing {field} / {needle} in {got:#?}"
            );
        };
        expect_at(
            "wireguard.cluster.cidr",
            "overlaps site `dc` CIDR 10.5.0.0/16",
        );
        expect_at(
            "wireguard.cluster.cidr",
            "overlaps subnet `lan` 10.5.4.0/24",
        );
        expect_at("mesh.mgmt.cidr", "overlaps link `leased` 10.9.0.0/30");
        expect_at("openvpn.edu.profiles.one.range", "overlaps site `dc`");
        expect_at("openvpn.edu.profiles.two.range", "overlaps site `dc`");
        // Profile against profile is profile-range-collision, not this check.
        assert!(
            !got.iter().any(|(_, m)| m.contains("overlaps client")),
            "{got:#?}"
        );
        assert_eq!(got.len(), 5, "{got:#?}");
    }

    #[test]
    fn subnet_outside_its_site() {
        let text = scenario(
            r#"
[sites.a]
kind = "cloud-vpc"
cidrs = ["10.1.0.0/16", "fd00:a::/48"]
[sites.b]
kind = "home"
[subnets.inside]
site = "a"
cidr = "10.1.1.0/24"
cidr6 = "fd00:a:0:1::/64"
[subnets.outside]
site = "a"
cidr = "10.2.1.0/24"
cidr6 = "fd00:b:0:1::/64"
[subnets.free]
site = "b"
cidr = "10.3.0.0/24"
"#,
        );
        let findings = run(check, &text);
        assert_eq!(
            fields(&findings, "subnet-outside-site"),
            ["subnets.outside.cidr", "subnets.outside.cidr6"]
        );
        let d = with_code(&findings, "subnet-outside-site");
        assert!(
            d[0].message
                .contains("not inside any CIDR of site `a` (10.1.0.0/16)"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn addresses_outside_their_prefix() {
        let text = scenario(
            r#"
[sites.a]
kind = "cloud-vpc"
[sites.h]
kind = "home"
[subnets.s]
site = "a"
cidr = "10.1.1.0/24"
[subnets.hs]
site = "h"
cidr = "192.168.1.0/24"
[hosts.ok]
site = "a"
[[hosts.ok.interfaces]]
name = "eth0"
subnet = "s"
address = "10.1.1.10"
[hosts.bad]
site = "a"
[[hosts.bad.interfaces]]
name = "eth0"
subnet = "s"
address = "10.1.2.10"
address6 = "fd00::1"
[hosts.net]
site = "h"
[[hosts.net.interfaces]]
name = "eth0"
subnet = "hs"
address = "192.168.1.255"
[hosts.aws]
site = "a"
[[hosts.aws.interfaces]]
name = "eth0"
subnet = "s"
address = "10.1.1.2"
[wireguard.w]
cidr = "10.5.4.0/24"
hub = "ok"
workers = ["bad"]
addresses = { ok = "10.5.4.1", bad = "10.6.0.1" }
[mesh.m]
network_name = "VPN"
cidr = "10.42.42.0/24"
members = [{ host = "ok", address = "10.42.42.0" }, { host = "bad", address = "10.42.42.2" }]
[links.l]
kind = "lan"
cidr = "10.9.0.0/30"
[bond.b]
hosts = ["ok", "net"]
mode = "active-backup"
addresses = { ok = "10.0.0.1/24", net = "10.0.1.2/24" }
links = [{ name = "ovn0", client = "ok", server = "net", via = "l" }]
"#,
        );
        let findings = run(check, &text);
        let got = fields(&findings, "address-outside-subnet");
        assert_eq!(
            got,
            [
                "hosts.aws.interfaces[0].address",
                "hosts.bad.interfaces[0].address",
                "hosts.bad.interfaces[0].address6",
                "hosts.net.interfaces[0].address",
                "wireguard.w.addresses.bad",
                "mesh.m.members[0].address",
                // Bond addresses are in host order (`net` < `ok`).
                "bond.b.addresses.ok",
            ]
        );
        let msgs: Vec<String> = with_code(&findings, "address-outside-subnet")
            .iter()
            .map(|d| d.message.clone())
            .collect();
        assert!(
            msgs[0].contains("reserved by the cloud provider"),
            "{}",
            msgs[0]
        );
        assert!(
            msgs[1].contains("10.1.2.10 of `bad` eth0 is outside subnet `s` (10.1.1.0/24)"),
            "{}",
            msgs[1]
        );
        assert!(msgs[2].contains("no IPv6 prefix"), "{}", msgs[2]);
        assert!(msgs[3].contains("broadcast address"), "{}", msgs[3]);
        assert!(msgs[5].contains("network address"), "{}", msgs[5]);
        assert!(msgs[6].contains("not in one network"), "{}", msgs[6]);
    }

    #[test]
    fn duplicate_addresses_by_domain() {
        let text = scenario(
            r#"
[links.internet]
kind = "wan"
[sites.a]
kind = "datacenter"
[sites.b]
kind = "home"
[subnets.a1]
site = "a"
cidr = "10.0.1.0/24"
[subnets.a2]
site = "a"
cidr = "10.0.2.0/24"
[subnets.b1]
site = "b"
cidr = "10.0.1.0/24"
[hosts.h1]
site = "a"
public_address = "192.0.2.10"
interfaces = [{ name = "eth0", subnet = "a1", address = "10.0.1.10" }, { name = "eth1", link = "internet", address = "192.0.2.10" }]
[hosts.h2]
site = "a"
interfaces = [{ name = "eth0", subnet = "a1", address = "10.0.1.10" }]
[hosts.h3]
site = "b"
interfaces = [{ name = "eth0", subnet = "b1", address = "10.0.1.10" }]
[hosts.h4]
site = "b"
public_address = "192.0.2.10"
[hosts.h5]
site = "a"
interfaces = [{ name = "eth0", subnet = "a1", address = "10.0.1.10" }]
"#,
        );
        let findings = run(check, &text);
        assert_eq!(
            fields(&findings, "duplicate-address"),
            [
                "hosts.h4.public_address",
                "hosts.h2.interfaces[0].address",
                "hosts.h5.interfaces[0].address"
            ]
        );
        let d = with_code(&findings, "duplicate-address");
        assert!(
            d[0].message.contains(
                "192.0.2.10 of `h4` public_address is already used by `h1` public_address"
            ),
            "{}",
            d[0].message
        );
        assert!(
            d[1].message.contains(
                "`h2` eth0 (subnet `a1`) is already used by `h1` eth0 (subnet `a1`) in site `a`"
            ),
            "{}",
            d[1].message
        );
        // h3 reuses 10.0.1.10 in another site: fine (the overlap of the two
        // site-less subnets is reported as cidr-overlap instead).
        assert!(!d.iter().any(|d| d.message.contains("`h3`")));
    }

    #[test]
    fn site_nat_address_is_public() {
        let text = scenario(
            r#"
[links.internet]
kind = "wan"
[sites.home]
kind = "home"
uplink = "internet"
nat_address = "192.0.2.7"
[sites.office]
kind = "home"
uplink = "internet"
nat_address = "192.0.2.8"
[hosts.web]
site = "office"
interfaces = [{ name = "eth0", link = "internet", address = "192.0.2.7" }]
"#,
        );
        let findings = run(check, &text);
        assert_eq!(
            fields(&findings, "duplicate-address"),
            ["hosts.web.interfaces[0].address"]
        );
        assert!(
            findings[0]
                .message
                .contains("already used by the router of site `home` (nat_address)"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn duplicate_overlay_addresses() {
        let text = scenario(
            r#"
[sites.a]
kind = "home"
[hosts.x]
site = "a"
[hosts.y]
site = "a"
[wireguard.w]
cidr = "10.5.4.0/24"
hub = "x"
workers = ["y"]
addresses = { x = "10.5.4.1", y = "10.5.4.1" }
[wireguard.v]
cidr = "10.6.4.0/24"
hub = "x"
workers = ["y"]
"#,
        );
        let findings = run(check, &text);
        assert_eq!(
            fields(&findings, "duplicate-address"),
            ["wireguard.w.addresses.y"]
        );
    }

    /// The project's own reference scenario (reference 003): 12.11.0.0/16
    /// and 13.11.0.0/16 are warned about once each, at the site.
    #[test]
    fn aws_three_regions_scenario_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scenarios/aws-three-regions.toml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let findings = run(check, &text);
        let public = with_code(&findings, "public-address-space");
        assert_eq!(public.len(), 2, "{public:#?}");
        assert!(
            public
                .iter()
                .any(|d| d.message.contains("CIDR 12.11.0.0/16"))
        );
        assert!(
            public
                .iter()
                .any(|d| d.message.contains("CIDR 13.11.0.0/16"))
        );
        assert!(public.iter().all(|d| {
            d.field
                .as_deref()
                .is_some_and(|f| f.starts_with("sites.") && f.contains(".cidrs["))
        }));
        assert!(
            findings.len() == 2,
            "only the two public-space warnings: {findings:#?}"
        );
    }

    #[test]
    fn long_public_prefixes_get_a_suggestion_quickly() {
        let text = scenario(
            r#"
[sites.a]
kind = "datacenter"
cidrs = ["10.0.0.0/8", "172.16.0.0/12"]
[sites.b]
kind = "datacenter"
cidrs = ["8.8.8.0/30"]
"#,
        );
        let findings = run(check, &text);
        let d = with_code(&findings, "public-address-space");
        assert_eq!(d.len(), 1);
        assert!(
            d[0].message.contains("e.g. 192.168.0.0/30"),
            "{}",
            d[0].message
        );
    }

    /// Extreme prefixes and MTUs: every check of these modules runs to the
    /// end without panicking.
    #[test]
    fn extreme_inputs_do_not_panic() {
        let text = scenario(
            r#"
[links.internet]
kind = "wan"
mtu = 576
[links.p2p]
kind = "lan"
cidr = "10.9.9.0/31"
[sites.all]
kind = "cloud-vpc"
cidrs = ["0.0.0.0/0", "::/0"]
uplink = "internet"
[sites.tiny]
kind = "datacenter"
cidrs = ["8.8.8.8/32"]
[subnets.host]
site = "all"
cidr = "8.8.8.8/32"
cidr6 = "2001:4860::/128"
mtu = 65535
[subnets.world]
site = "tiny"
cidr = "0.0.0.0/0"
[hosts.a]
site = "all"
public_address = "8.8.8.8"
interfaces = [{ name = "eth0", subnet = "host", address = "8.8.8.8", address6 = "2001:4860::" }, { name = "p", link = "p2p", address = "10.9.9.0" }]
[hosts.b]
site = "tiny"
interfaces = [{ name = "eth0", link = "internet", address = "8.8.8.8" }, { name = "p", link = "p2p", address = "10.9.9.1" }]
[wireguard.w]
cidr = "0.0.0.0/0"
hub = "a"
workers = ["b"]
mtu = 65535
endpoints = { b = "[2001:4860::1]:1" }
allowed_ips = { a = ["0.0.0.0/0"], b = ["0.0.0.0/0", "::/0"] }
[bond.x]
hosts = ["a", "b"]
mode = "active-backup"
mtu = 65535
addresses = { a = "0.0.0.0/0", b = "255.255.255.255/32" }
links = [{ name = "t0", client = "a", server = "b", via = "internet", listen = "tcp/1" }]
[ipsec.i]
daemon = "strongswan"
auth = "psk"
layout = "full-mesh"
gateways = ["a", "b"]
"#,
        );
        let (scenario, plan) = crate::check_util::testing::load(&text);
        let ctx = Ctx {
            scenario: &scenario,
            plan: &plan,
        };
        let mut all = check(&ctx);
        all.extend(crate::wireguard::check(&ctx));
        all.extend(crate::services::check(&ctx));
        all.extend(crate::mtu::check(&ctx));
        assert!(!all.is_empty());
        assert!(!with_code(&all, "cidr-overlap").is_empty());
        assert!(!with_code(&all, "mtu-budget").is_empty());
        assert!(!with_code(&all, "duplicate-address").is_empty());
    }

    #[test]
    fn private_range_table() {
        let net = |s: &str| s.parse::<IpNet>().unwrap_or_else(|e| panic!("{s}: {e}"));
        for p in [
            "10.0.0.0/8",
            "172.31.0.0/16",
            "192.168.4.0/24",
            "100.64.1.0/24",
            "fd12::/48",
            "2001:db8:1::/48",
            "203.0.113.0/25",
        ] {
            assert!(is_private_range(&net(p)), "{p}");
        }
        for p in [
            "12.11.0.0/16",
            "10.0.0.0/7",
            "172.32.0.0/16",
            "2001:610::/32",
            "0.0.0.0/0",
        ] {
            assert!(!is_private_range(&net(p)), "{p}");
        }
    }
}

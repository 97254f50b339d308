//! The plan stage: IP address management for a topology.
//!
//! Map:
//! - [`plan`]: the entry point; fills in every address the scenario leaves
//!   out and reports what is used and free in every pool.
//! - [`ipam`]: pure prefix arithmetic (reserved addresses, free-range search).
//! - [`Plan`]: the result, printed by `sim plan` and consumed by `verify`
//!   and (later) `render`.
//!
//! Architecture invariant: planning is a pure function of the topology. No
//! clock, no RNG: every allocation is "the lowest free address in a fixed
//! order", so the same file always gives the same plan, and adding a host
//! never moves the addresses of hosts that sort before it.

pub mod ipam;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;
use sha2::{Digest, Sha256};
use vpnsim_topology::format::SiteKind;
use vpnsim_topology::model::{
    BondId, HostId, LinkId, MeshId, OpenVpnId, Segment, StarId, SubnetId, Topology,
};
use vpnsim_topology::{Diagnostic, FieldPath, Scenario, Severity};

use crate::ipam::{Reserve, Taken};

/// What an address is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(tag = "kind", content = "id", rename_all = "kebab-case")]
pub enum Attachment {
    Subnet(SubnetId),
    Link(LinkId),
    Star(StarId),
    Mesh(MeshId),
    Bond(BondId),
    /// A VPN client's address from a profile range (deployment, profile index).
    Profile(OpenVpnId, u32),
}

/// Whether the file said the address or the plan chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    Declared,
    Allocated,
}

/// One address of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Address {
    pub host: HostId,
    /// Interface name on the host (`eth0`, `wg0`, `bond0`, `tun0`).
    pub interface: String,
    pub attachment: Attachment,
    pub address: IpAddr,
    pub prefix_len: u8,
    pub origin: Origin,
}

impl Address {
    /// The address with its prefix length, e.g. `10.11.4.5/24`.
    pub fn with_prefix(&self) -> IpNet {
        IpNet::new(self.address, self.prefix_len).unwrap_or_else(|_| IpNet::from(self.address))
    }
}

/// What a pool holds addresses for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PoolKind {
    /// A site's address space; "used" counts addresses covered by subnets.
    Site,
    Subnet,
    Link,
    Overlay,
    /// A VPN profile's client range.
    ClientRange,
    /// The scenario's ULA /48; "used" counts /64s handed out.
    Ula,
}

/// A range and how much of it is taken.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pool {
    pub range: IpNet,
    pub kind: PoolKind,
    /// Who owns it, e.g. `subnet sydney-fns-a`.
    pub owner: String,
    /// Usable units (addresses, or /64s for the ULA pool), saturating at u128::MAX.
    pub size: u128,
    pub used: u128,
    /// Where the range is declared, for diagnostics.
    #[serde(skip)]
    pub path: FieldPath,
}

impl Pool {
    pub fn free(&self) -> u128 {
        self.size.saturating_sub(self.used)
    }
}

/// Client ranges of one profile, declared or allocated.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClientRange {
    pub deployment: OpenVpnId,
    pub profile: u32,
    pub range: Ipv4Net,
    pub range6: Option<Ipv6Net>,
    pub origin: Origin,
    pub origin6: Origin,
}

/// The address plan of a scenario.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// ULA /48 derived from the scenario name (RFC 4193 style).
    pub ula: Ipv6Net,
    /// Every address, ordered by host, then interface order in the file.
    pub addresses: Vec<Address>,
    pub client_ranges: Vec<ClientRange>,
    pub pools: Vec<Pool>,
}

impl Plan {
    /// Addresses of one host.
    pub fn host_addresses(&self, host: HostId) -> impl Iterator<Item = &Address> {
        self.addresses.iter().filter(move |a| a.host == host)
    }

    /// A host's address on an attachment, preferring IPv4.
    pub fn address_on(&self, host: HostId, attachment: Attachment) -> Option<IpAddr> {
        let mut found: Vec<IpAddr> = self
            .host_addresses(host)
            .filter(|a| a.attachment == attachment)
            .map(|a| a.address)
            .collect();
        found.sort_by_key(|a| a.is_ipv6());
        found.first().copied()
    }

    /// Client range of a profile.
    pub fn client_range(&self, deployment: OpenVpnId, profile: usize) -> Option<&ClientRange> {
        self.client_ranges
            .iter()
            .find(|r| r.deployment == deployment && r.profile as usize == profile)
    }
}

/// A plan and what planning found wrong (exhausted pools).
#[derive(Debug, Clone)]
pub struct Planned {
    pub plan: Plan,
    pub findings: Vec<Diagnostic>,
}

/// The ULA /48 of a scenario: `fd` + 40 bits of SHA-256 of the name, so two
/// scenarios get different prefixes and one scenario always the same.
pub fn ula_for(name: &str) -> Ipv6Net {
    let digest = Sha256::digest(format!("vpnsim-ula:{name}").as_bytes());
    let mut octets = [0u8; 16];
    octets[0] = 0xfd;
    octets[1..6].copy_from_slice(&digest[..5]);
    Ipv6Net::new(Ipv6Addr::from(octets), 48).unwrap_or_else(|_| unreachable_ula())
}

fn unreachable_ula() -> Ipv6Net {
    // 48 is a valid IPv6 prefix length; this only satisfies the type.
    Ipv6Net::default()
}

/// Plans a scenario: every address the file leaves out is allocated.
pub fn plan(scenario: &Scenario) -> Planned {
    let mut planner = Planner::new(scenario);
    planner.subnet_and_link_addresses();
    planner.star_addresses();
    planner.mesh_addresses();
    planner.bond_addresses();
    planner.client_ranges();
    planner.pools();
    let Planner { plan, findings, .. } = planner;
    Planned { plan, findings }
}

struct Planner<'a> {
    scenario: &'a Scenario,
    t: &'a Topology,
    plan: Plan,
    findings: Vec<Diagnostic>,
    /// Per host, interface order, for sorting the final address list.
    order: BTreeMap<(HostId, String), usize>,
}

impl<'a> Planner<'a> {
    fn new(scenario: &'a Scenario) -> Self {
        let t = &scenario.topology;
        let mut order = BTreeMap::new();
        for id in t.host_ids() {
            for (i, iface) in t.host(id).interfaces.iter().enumerate() {
                order.insert((id, iface.name.clone()), i);
            }
        }
        Planner {
            scenario,
            t,
            plan: Plan {
                ula: ula_for(&t.name),
                addresses: Vec::new(),
                client_ranges: Vec::new(),
                pools: Vec::new(),
            },
            findings: Vec::new(),
            order,
        }
    }

    fn exhausted(&mut self, field: &FieldPath, what: String) {
        let d = self
            .scenario
            .diagnostic("pool-exhausted", Severity::Error, field, what);
        self.findings
            .push(d.with_help("use a larger prefix or give the address explicitly"));
    }

    fn push(
        &mut self,
        host: HostId,
        interface: &str,
        attachment: Attachment,
        address: IpAddr,
        prefix_len: u8,
        origin: Origin,
    ) {
        self.plan.addresses.push(Address {
            host,
            interface: interface.to_string(),
            attachment,
            address,
            prefix_len,
            origin,
        });
    }

    /// Reserved addresses of a subnet depend on the site: AWS keeps five per
    /// subnet, other routers one (the gateway) plus network and broadcast.
    fn subnet_reserve(&self, subnet: SubnetId) -> Reserve {
        match self
            .t
            .sites
            .get(self.t.subnet(subnet).site.index())
            .map(|s| s.kind)
        {
            Some(SiteKind::CloudVpc) => Reserve::Cloud,
            _ => Reserve::Router,
        }
    }

    fn subnet_and_link_addresses(&mut self) {
        let t = self.t;
        // Declared addresses first, so allocation never hands them out again.
        let mut taken: BTreeMap<Segment, Taken> = BTreeMap::new();
        for host in &t.hosts {
            for iface in &host.interfaces {
                let entry = taken.entry(iface.segment).or_default();
                entry.extend(iface.address);
                entry.extend(iface.address6.map(IpAddr::V6));
            }
        }
        for id in t.host_ids() {
            for iface in &t.host(id).interfaces {
                let (attachment, v4_net, v6_net, reserve) = match iface.segment {
                    Segment::Subnet(s) => {
                        let subnet = t.subnet(s);
                        let (v4, v6) = split_families(Some(subnet.cidr), subnet.cidr6);
                        (Attachment::Subnet(s), v4, v6, self.subnet_reserve(s))
                    }
                    Segment::Link(l) => {
                        let (v4, v6) = split_families(t.link(l).cidr, None);
                        (Attachment::Link(l), v4, v6, Reserve::Ends)
                    }
                };
                let pool_taken = taken.entry(iface.segment).or_default();
                match (iface.address, v4_net.or(v6_net)) {
                    (Some(address), _) => {
                        let len = prefix_len_for(address, v4_net, v6_net);
                        self.push(id, &iface.name, attachment, address, len, Origin::Declared);
                    }
                    (None, Some(net)) => {
                        self.allocate(id, iface, attachment, net, reserve, pool_taken)
                    }
                    (None, None) => {}
                }
                match (iface.address6, v6_net) {
                    (Some(a6), _) => {
                        let len = v6_net.map_or(128, |n| n.prefix_len());
                        self.push(
                            id,
                            &iface.name,
                            attachment,
                            IpAddr::V6(a6),
                            len,
                            Origin::Declared,
                        );
                    }
                    // Dual-stack segment: the v6 address comes in addition to the v4 one.
                    (None, Some(net)) if v4_net.is_some() => {
                        let pool_taken = taken.entry(iface.segment).or_default();
                        self.allocate(id, iface, attachment, net, reserve, pool_taken);
                    }
                    _ => {}
                }
            }
        }
    }

    /// Gives an interface the lowest free address of `net`, or reports the
    /// pool as exhausted at the interface.
    fn allocate(
        &mut self,
        host: HostId,
        iface: &vpnsim_topology::model::InterfaceM,
        attachment: Attachment,
        net: IpNet,
        reserve: Reserve,
        taken: &mut Taken,
    ) {
        match ipam::next_free(net, reserve, taken) {
            Some(a) => {
                taken.insert(a);
                self.push(
                    host,
                    &iface.name,
                    attachment,
                    a,
                    net.prefix_len(),
                    Origin::Allocated,
                );
            }
            None => {
                let message = format!(
                    "no free address left in {net} for `{}` {}",
                    self.t.host(host).name,
                    iface.name
                );
                self.exhausted(&iface.path, message);
            }
        }
    }

    /// Overlay addresses: declared ones are kept; the rest get the lowest
    /// free address in member order (hub first).
    fn overlay_addresses(
        &mut self,
        cidr: IpNet,
        interface: &str,
        attachment: Attachment,
        members: &[(HostId, Option<IpAddr>)],
        path: &FieldPath,
    ) {
        let mut taken: Taken = members.iter().filter_map(|(_, a)| *a).collect();
        let mut last_allocated = None;
        for (host, declared) in members {
            match declared {
                Some(a) => self.push(
                    *host,
                    interface,
                    attachment,
                    *a,
                    cidr.prefix_len(),
                    Origin::Declared,
                ),
                None => match ipam::next_free_after(cidr, Reserve::Ends, &taken, last_allocated) {
                    Some(a) => {
                        taken.insert(a);
                        last_allocated = Some(a);
                        self.push(
                            *host,
                            interface,
                            attachment,
                            a,
                            cidr.prefix_len(),
                            Origin::Allocated,
                        );
                    }
                    None => {
                        let name = self.t.host(*host).name.clone();
                        self.exhausted(
                            path,
                            format!("overlay {cidr} has no free address for `{name}`"),
                        );
                    }
                },
            }
        }
    }

    fn star_addresses(&mut self) {
        for (i, star) in self.t.stars.iter().enumerate() {
            let members: Vec<(HostId, Option<IpAddr>)> = star
                .members()
                .map(|h| (h, star.addresses.get(&h).copied()))
                .collect();
            self.overlay_addresses(
                star.cidr,
                &star.interface,
                Attachment::Star(StarId(i as u32)),
                &members,
                &star.path.key("cidr"),
            );
        }
    }

    fn mesh_addresses(&mut self) {
        for (i, mesh) in self.t.meshes.iter().enumerate() {
            let members: Vec<(HostId, Option<IpAddr>)> =
                mesh.members.iter().map(|m| (m.host, m.address)).collect();
            self.overlay_addresses(
                mesh.cidr,
                &mesh.interface,
                Attachment::Mesh(MeshId(i as u32)),
                &members,
                &mesh.path.key("cidr"),
            );
        }
    }

    fn bond_addresses(&mut self) {
        for (i, bond) in self.t.bonds.iter().enumerate() {
            for (host, net) in &bond.addresses {
                self.push(
                    *host,
                    &bond.interface,
                    Attachment::Bond(BondId(i as u32)),
                    net.addr(),
                    net.prefix_len(),
                    Origin::Declared,
                );
            }
        }
    }

    /// Every prefix the scenario declares, which allocated client ranges
    /// must avoid.
    fn declared_prefixes(&self) -> Vec<IpNet> {
        let t = self.t;
        let mut nets: Vec<IpNet> = Vec::new();
        nets.extend(t.sites.iter().flat_map(|s| s.cidrs.iter().copied()));
        nets.extend(
            t.subnets
                .iter()
                .flat_map(|s| std::iter::once(s.cidr).chain(s.cidr6)),
        );
        nets.extend(t.links.iter().filter_map(|l| l.cidr));
        nets.extend(t.stars.iter().map(|s| s.cidr));
        nets.extend(t.meshes.iter().map(|m| m.cidr));
        nets.extend(
            t.bonds
                .iter()
                .flat_map(|b| b.addresses.values().map(|n| n.trunc())),
        );
        for dep in &t.openvpn {
            for p in &dep.profiles {
                nets.extend(p.spec.range);
                nets.extend(p.spec.range6);
            }
        }
        nets
    }

    fn client_ranges(&mut self) {
        let t = self.t;
        let mut avoid = self.declared_prefixes();
        for (d, dep) in t.openvpn.iter().enumerate() {
            let deployment = OpenVpnId(d as u32);
            for (p, profile) in dep.profiles.iter().enumerate() {
                let (range, origin) = match profile.spec.range {
                    Some(IpNet::V4(r)) => (Some(r), Origin::Declared),
                    _ => {
                        let found = ipam::free_v4_block(24, &avoid);
                        if let Some(r) = found {
                            avoid.push(IpNet::V4(r));
                        } else {
                            self.exhausted(
                                &profile.path,
                                "no free /24 left in 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16 for the client range"
                                    .into(),
                            );
                        }
                        (found, Origin::Allocated)
                    }
                };
                let (range6, origin6) = match profile.spec.range6 {
                    Some(IpNet::V6(r)) => (Some(r), Origin::Declared),
                    _ => {
                        // /64 number = profileNumber when free, so addresses read
                        // naturally; otherwise the lowest free one.
                        let found = ipam::free_ula_subnet(
                            self.plan.ula,
                            profile.spec.profile_number,
                            &avoid,
                        );
                        if let Some(r6) = found {
                            avoid.push(IpNet::V6(r6));
                        }
                        (found, Origin::Allocated)
                    }
                };
                let Some(range) = range else { continue };
                self.plan.client_ranges.push(ClientRange {
                    deployment,
                    profile: p as u32,
                    range,
                    range6,
                    origin,
                    origin6,
                });
                // One process per listener, each with its part of the
                // ranges on its own tun device, its server address the first
                // of its part. (A split the renderer refuses leaves the
                // whole range to one process here; rendering reports it.)
                let attachment = Attachment::Profile(deployment, p as u32);
                let processes =
                    process_networks(profile.spec.listeners.len().max(1), range, range6)
                        .unwrap_or_else(|_| {
                            vec![ProcessNet {
                                network: range,
                                network6: range6,
                            }]
                        });
                for (i, proc) in processes.iter().enumerate() {
                    let device = process_device(profile.spec.profile_number, i);
                    let (v4, v6) = proc.server();
                    self.push(
                        profile.node,
                        &device,
                        attachment,
                        IpAddr::V4(v4),
                        proc.network.prefix_len(),
                        Origin::Allocated,
                    );
                    if let (Some(v6), Some(n6)) = (v6, proc.network6) {
                        self.push(
                            profile.node,
                            &device,
                            attachment,
                            IpAddr::V6(v6),
                            n6.prefix_len(),
                            Origin::Allocated,
                        );
                    }
                }
                // Clients get the pool addresses of the profile's first
                // process (the listener they dial first), in file order; the
                // renderer pins them there (`ifconfig-pool-persist`).
                let Some(first) = processes.first() else {
                    continue;
                };
                let clients = dep.clients.iter().filter(|(_, cp)| *cp == p);
                for (k, (client, _)) in clients.enumerate() {
                    match u32::try_from(k).ok().and_then(|k| first.slot(k)) {
                        Some((v4, v6)) => {
                            self.push(
                                *client,
                                CLIENT_DEVICE,
                                attachment,
                                IpAddr::V4(v4),
                                first.network.prefix_len(),
                                Origin::Allocated,
                            );
                            if let (Some(v6), Some(n6)) = (v6, first.network6) {
                                self.push(
                                    *client,
                                    CLIENT_DEVICE,
                                    attachment,
                                    IpAddr::V6(v6),
                                    n6.prefix_len(),
                                    Origin::Allocated,
                                );
                            }
                        }
                        None => {
                            let name = t.host(*client).name.clone();
                            self.exhausted(
                                &profile.path,
                                format!(
                                    "client range {range} has no free address for `{name}` in the pool of its first process ({})",
                                    first.network
                                ),
                            );
                        }
                    }
                }
            }
        }
    }

    fn pools(&mut self) {
        let t = self.t;
        let used_in = |net: IpNet, addresses: &[Address]| -> u128 {
            addresses
                .iter()
                .filter(|a| net.contains(&a.address))
                .map(|a| a.address)
                .collect::<BTreeSet<_>>()
                .len() as u128
        };
        let mut pools = Vec::new();
        for site in &t.sites {
            for (i, cidr) in site.cidrs.iter().enumerate() {
                let covered: Vec<IpNet> = site
                    .subnets
                    .iter()
                    .flat_map(|s| std::iter::once(t.subnet(*s).cidr).chain(t.subnet(*s).cidr6))
                    .filter(|n| cidr.contains(n))
                    .collect();
                pools.push(Pool {
                    range: *cidr,
                    kind: PoolKind::Site,
                    owner: format!("site {}", site.name),
                    size: ipam::size(*cidr),
                    used: ipam::union_size(&covered),
                    path: site.path.key("cidrs").index(i),
                });
            }
        }
        for (i, subnet) in t.subnets.iter().enumerate() {
            let reserve = self.subnet_reserve(SubnetId(i as u32));
            for (field, net) in [("cidr", Some(subnet.cidr)), ("cidr6", subnet.cidr6)] {
                let Some(net) = net else { continue };
                pools.push(Pool {
                    range: net,
                    kind: PoolKind::Subnet,
                    owner: format!("subnet {}", subnet.name),
                    size: ipam::usable(net, reserve),
                    used: used_in(net, &self.plan.addresses),
                    path: subnet.path.key(field),
                });
            }
        }
        for link in &t.links {
            if let Some(net) = link.cidr {
                pools.push(Pool {
                    range: net,
                    kind: PoolKind::Link,
                    owner: format!("link {}", link.name),
                    size: ipam::usable(net, Reserve::Ends),
                    used: used_in(net, &self.plan.addresses),
                    path: link.path.key("cidr"),
                });
            }
        }
        let overlays = t
            .stars
            .iter()
            .map(|s| (s.cidr, format!("wireguard {}", s.name), s.path.key("cidr")))
            .chain(
                t.meshes
                    .iter()
                    .map(|m| (m.cidr, format!("mesh {}", m.name), m.path.key("cidr"))),
            );
        for (net, owner, path) in overlays {
            pools.push(Pool {
                range: net,
                kind: PoolKind::Overlay,
                owner,
                size: ipam::usable(net, Reserve::Ends),
                used: used_in(net, &self.plan.addresses),
                path,
            });
        }
        for r in &self.plan.client_ranges {
            let dep = &t.openvpn[r.deployment.index()];
            let profile = &dep.profiles[r.profile as usize];
            let clients = dep
                .clients
                .iter()
                .filter(|(_, p)| *p == r.profile as usize)
                .count() as u128;
            let owner = format!("openvpn {} profile {}", dep.name, profile.id);
            pools.push(Pool {
                range: IpNet::V4(r.range),
                kind: PoolKind::ClientRange,
                owner: owner.clone(),
                // Network, broadcast and the server's own address are not for clients.
                size: ipam::usable(IpNet::V4(r.range), Reserve::Ends).saturating_sub(1),
                used: clients,
                path: profile.path.key("range"),
            });
            if let Some(r6) = r.range6 {
                pools.push(Pool {
                    range: IpNet::V6(r6),
                    kind: PoolKind::ClientRange,
                    owner,
                    size: ipam::usable(IpNet::V6(r6), Reserve::Ends).saturating_sub(1),
                    used: clients,
                    path: profile.path.key("range6"),
                });
            }
        }
        let ula_used = self
            .plan
            .client_ranges
            .iter()
            .filter_map(|r| r.range6)
            .filter(|r6| self.plan.ula.contains(r6))
            .count() as u128;
        pools.push(Pool {
            range: IpNet::V6(self.plan.ula),
            kind: PoolKind::Ula,
            owner: format!("scenario {} (ULA, /64s)", t.name),
            size: 1 << 16,
            used: ula_used,
            path: FieldPath::root().key("scenario").key("name"),
        });
        self.plan.pools = pools;
        let order = &self.order;
        self.plan.addresses.sort_by_key(|a| {
            (
                a.host,
                order
                    .get(&(a.host, a.interface.clone()))
                    .copied()
                    .unwrap_or(usize::MAX),
                a.interface.clone(),
                a.address.is_ipv6(),
                a.address,
            )
        });
    }
}

/// The tun device of a profile's first process on its node, named as
/// eduVPN names them (`tun-<profileNumber>-<process>`).
pub fn profile_device(profile_number: u32) -> String {
    process_device(profile_number, 0)
}

/// The tun device of process `process` of profile `profile_number`:
/// `tun-N-i`.
pub fn process_device(profile_number: u32, process: usize) -> String {
    format!("tun-{profile_number}-{process}")
}

/// First IPv6 pool address of OpenVPN's `server-ipv6` helper (`::1000`).
pub const POOL6_BASE: u128 = 0x1000;

/// The networks of one OpenVPN server process of a profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProcessNet {
    /// `server NET MASK`.
    pub network: Ipv4Net,
    /// `server-ipv6 NET/LEN`.
    pub network6: Option<Ipv6Net>,
}

impl ProcessNet {
    /// The server's own addresses: `.1` and `::1`.
    pub fn server(&self) -> (Ipv4Addr, Option<Ipv6Addr>) {
        let v4 = Ipv4Addr::from(u32::from(self.network.network()).saturating_add(1));
        let v6 = self
            .network6
            .map(|n| Ipv6Addr::from(u128::from(n.network()).saturating_add(1)));
        (v4, v6)
    }

    /// Entry `k` of the process's address pool, as OpenVPN's `server`
    /// helper lays it out (topology subnet): IPv4 from `.2` to the address
    /// before broadcast, IPv6 from `::1000`, one entry holding both.
    /// `None` past the end of the pool.
    pub fn slot(&self, k: u32) -> Option<(Ipv4Addr, Option<Ipv6Addr>)> {
        let first = u32::from(self.network.network()).checked_add(2)?;
        let last = u32::from(self.network.broadcast()).checked_sub(1)?;
        let v4 = first.checked_add(k).filter(|a| *a <= last)?;
        let v6 = match self.network6 {
            None => None,
            Some(n) => {
                let a = Ipv6Addr::from(
                    u128::from(n.network()).checked_add(POOL6_BASE + u128::from(k))?,
                );
                Some(a).filter(|a| n.contains(a))
            }
        };
        if self.network6.is_some() && v6.is_none() {
            return None;
        }
        Some((Ipv4Addr::from(v4), v6))
    }
}

/// The networks of a profile's server processes, as eduVPN runs them: one
/// process per listener, the ranges split into as many equal parts as the
/// next power of two (a `range6` shorter than /64 narrowed to its first
/// /64 first, because `server-ipv6` takes /64 to /124), process `i` taking
/// part `i`; with one listener the process has the whole range.
pub fn process_networks(
    processes: usize,
    range: Ipv4Net,
    range6: Option<Ipv6Net>,
) -> Result<Vec<ProcessNet>, String> {
    let n = processes;
    if n == 0 {
        return Err("the profile has no listener".into());
    }
    let bits = usize::BITS - (n - 1).leading_zeros();
    let bits = u8::try_from(bits).map_err(|_| "too many listeners".to_string())?;
    let v4_len = range.prefix_len().saturating_add(bits);
    if v4_len > 29 {
        return Err(format!(
            "range {range} split over {n} listener processes gives /{v4_len} pools; OpenVPN's `server` needs /29 or larger"
        ));
    }
    let v4: Vec<Ipv4Net> = range
        .subnets(v4_len)
        .map_err(|e| format!("range {range}: {e}"))?
        .take(n)
        .collect();
    let v6: Vec<Option<Ipv6Net>> = match range6 {
        None => vec![None; n],
        Some(r6) => {
            let base = if r6.prefix_len() < 64 {
                Ipv6Net::new(r6.network(), 64).map_err(|e| format!("range6 {r6}: {e}"))?
            } else {
                r6
            };
            let len = base.prefix_len().saturating_add(bits);
            if len > 124 {
                return Err(format!(
                    "range6 {r6} split over {n} listener processes gives /{len} pools; OpenVPN's `server-ipv6` needs /124 or larger"
                ));
            }
            base.subnets(len)
                .map_err(|e| format!("range6 {r6}: {e}"))?
                .take(n)
                .map(Some)
                .collect()
        }
    };
    Ok(v4
        .into_iter()
        .zip(v6)
        .map(|(network, network6)| ProcessNet { network, network6 })
        .collect())
}

/// The tun device of a VPN client.
pub const CLIENT_DEVICE: &str = "tun0";

fn split_families(a: Option<IpNet>, b: Option<IpNet>) -> (Option<IpNet>, Option<IpNet>) {
    let nets = [a, b];
    let v4 = nets
        .iter()
        .flatten()
        .find(|n| matches!(n, IpNet::V4(_)))
        .copied();
    let v6 = nets
        .iter()
        .flatten()
        .find(|n| matches!(n, IpNet::V6(_)))
        .copied();
    (v4, v6)
}

fn prefix_len_for(address: IpAddr, v4: Option<IpNet>, v6: Option<IpNet>) -> u8 {
    match address {
        IpAddr::V4(_) => v4.map_or(32, |n| n.prefix_len()),
        IpAddr::V6(_) => v6.map_or(128, |n| n.prefix_len()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scenario(text: &str) -> Scenario {
        vpnsim_topology::load_str("t.toml", text).unwrap_or_else(|e| panic!("{e:?}"))
    }

    const BASE: &str = r#"
[scenario]
name = "t"
seed = 1
[sites.vpc]
kind = "cloud-vpc"
cidrs = ["10.11.0.0/16"]
[sites.office]
kind = "datacenter"
cidrs = ["192.168.0.0/16"]
[subnets.a]
site = "vpc"
cidr = "10.11.4.0/24"
zone = "us-east-1a"
[subnets.lan]
site = "office"
cidr = "192.168.1.0/24"
cidr6 = "fd00:1::/64"
[hosts.gw]
site = "vpc"
interfaces = [{ name = "eth0", subnet = "a", address = "10.11.4.4" }]
[hosts.app]
site = "vpc"
interfaces = [{ name = "eth0", subnet = "a" }]
[hosts.pc]
site = "office"
interfaces = [{ name = "eth0", subnet = "lan" }]
"#;

    #[test]
    fn openvpn_clients_get_the_pool_entries_of_the_first_process() {
        // Two listeners: two processes, each with half the ranges. The
        // node has the first address of each half; the clients, in file
        // order, the pool entries of the first (.2 up, ::1000 up).
        let text = format!(
            "{BASE}[hosts.c1]\nsite = \"office\"\ninterfaces = [{{ name = \"eth0\", subnet = \"lan\" }}]\n[hosts.c2]\nsite = \"office\"\ninterfaces = [{{ name = \"eth0\", subnet = \"lan\" }}]\n[openvpn.vpn]\ncontroller = \"gw\"\n[openvpn.vpn.profiles.p]\nprofile_number = 1\ndisplay_name = \"P\"\nnode = \"gw\"\nhost_name = \"vpn.example.net\"\nrange = \"10.8.0.0/24\"\nrange6 = \"fd00:8::/64\"\nlisteners = [\"udp/1194\", \"tcp/1194\"]\n[[openvpn.vpn.clients]]\nhost = \"c2\"\nprofile = \"p\"\n[[openvpn.vpn.clients]]\nhost = \"c1\"\nprofile = \"p\"\n"
        );
        let s = scenario(&text);
        let plan = plan(&s).plan;
        let t = &s.topology;
        let tun = |host: &str| -> Vec<String> {
            let id = t.host_id(host).unwrap_or_else(|| panic!("no host {host}"));
            plan.host_addresses(id)
                .filter(|a| a.interface.starts_with("tun"))
                .map(|a| format!("{} {}/{}", a.interface, a.address, a.prefix_len))
                .collect()
        };
        assert_eq!(
            tun("gw"),
            [
                "tun-1-0 10.8.0.1/25",
                "tun-1-0 fd00:8::1/65",
                "tun-1-1 10.8.0.129/25",
                "tun-1-1 fd00:8::8000:0:0:1/65"
            ]
        );
        assert_eq!(tun("c2"), ["tun0 10.8.0.2/25", "tun0 fd00:8::1000/65"]);
        assert_eq!(tun("c1"), ["tun0 10.8.0.3/25", "tun0 fd00:8::1001/65"]);
    }

    fn address_of(plan: &Plan, t: &Topology, host: &str) -> Vec<String> {
        let id = t.host_id(host).unwrap_or_else(|| panic!("no host {host}"));
        plan.host_addresses(id)
            .map(|a| format!("{}/{}", a.address, a.prefix_len))
            .collect()
    }

    #[test]
    fn cloud_subnets_skip_reserved_and_declared_addresses() {
        let s = scenario(BASE);
        let planned = plan(&s);
        assert!(planned.findings.is_empty());
        // .1-.3 are AWS's; .4 is declared by gw.
        assert_eq!(
            address_of(&planned.plan, &s.topology, "app"),
            ["10.11.4.5/24"]
        );
        // Other sites keep .1 for the router; v6 is allocated too.
        assert_eq!(
            address_of(&planned.plan, &s.topology, "pc"),
            ["192.168.1.2/24", "fd00:1::2/64"]
        );
    }

    #[test]
    fn overlay_addresses_go_hub_first_around_declared_ones() {
        let text = format!(
            "{BASE}\n[wireguard.star]\ncidr = \"10.5.4.0/24\"\nhub = \"gw\"\nworkers = [\"app\", \"pc\"]\naddresses = {{ app = \"10.5.4.2\" }}\n"
        );
        let s = scenario(&text);
        let planned = plan(&s);
        let star: Vec<String> = planned
            .plan
            .addresses
            .iter()
            .filter(|a| matches!(a.attachment, Attachment::Star(_)))
            .map(|a| {
                format!(
                    "{} {} {:?}",
                    s.topology.host(a.host).name,
                    a.address,
                    a.origin
                )
            })
            .collect();
        assert_eq!(
            star,
            [
                "app 10.5.4.2 Declared",
                "gw 10.5.4.1 Allocated",
                "pc 10.5.4.3 Allocated"
            ]
        );
    }

    #[test]
    fn client_ranges_avoid_every_declared_prefix() {
        let text = format!(
            "{BASE}\n[sites.x]\nkind = \"home\"\ncidrs = [\"10.0.0.0/16\"]\n[openvpn.edu]\ncontroller = \"gw\"\n[openvpn.edu.profiles.p]\nprofile_number = 3\ndisplay_name = \"P\"\nnode = \"app\"\nhost_name = \"vpn.example.org\"\n"
        );
        let s = scenario(&text);
        let planned = plan(&s);
        let range = &planned.plan.client_ranges[0];
        assert_eq!(range.range.to_string(), "10.1.0.0/24");
        assert_eq!(range.origin, Origin::Allocated);
        // range6 is /64 number 3 (the profileNumber) of the scenario's ULA.
        let r6 = range.range6.unwrap_or_else(|| panic!("no range6"));
        assert!(planned.plan.ula.contains(&r6));
        assert_eq!((u128::from(r6.network()) >> 64) & 0xffff, 3);
    }

    #[test]
    fn equal_profile_numbers_in_two_deployments_get_different_range6() {
        let text = format!(
            "{BASE}\n[openvpn.one]\ncontroller = \"gw\"\n[openvpn.one.profiles.p]\nprofile_number = 1\ndisplay_name = \"P\"\nnode = \"app\"\nhost_name = \"a.example.org\"\n\
             [openvpn.two]\ncontroller = \"gw\"\n[openvpn.two.profiles.q]\nprofile_number = 1\ndisplay_name = \"Q\"\nnode = \"pc\"\nhost_name = \"b.example.org\"\n"
        );
        let planned = plan(&scenario(&text));
        let r6: Vec<_> = planned
            .plan
            .client_ranges
            .iter()
            .map(|r| r.range6)
            .collect();
        assert_eq!(r6.len(), 2);
        assert_ne!(r6[0], r6[1]);
        let r4: Vec<_> = planned.plan.client_ranges.iter().map(|r| r.range).collect();
        assert_ne!(r4[0], r4[1]);
    }

    #[test]
    fn ula_depends_on_the_name_only() {
        assert_eq!(ula_for("a"), ula_for("a"));
        assert_ne!(ula_for("a"), ula_for("b"));
        assert_eq!(ula_for("a").prefix_len(), 48);
        assert_eq!(ula_for("a").network().octets()[0], 0xfd);
    }

    #[test]
    fn exhausted_pools_are_reported_at_the_interface() {
        let text = BASE
            .replace("cidr = \"10.11.4.0/24\"", "cidr = \"10.11.4.0/29\"")
            .replace("address = \"10.11.4.4\"", "address = \"10.11.4.5\"")
            + "[hosts.app2]\nsite = \"vpc\"\ninterfaces = [{ name = \"eth0\", subnet = \"a\" }]\n";
        let s = scenario(&text);
        let planned = plan(&s);
        // /29 in AWS: .4, .5 (gw), .6 usable; app gets .4, app2 gets .6.
        assert!(planned.findings.is_empty(), "{:?}", planned.findings);
        let text = text
            + "[hosts.app3]\nsite = \"vpc\"\ninterfaces = [{ name = \"eth0\", subnet = \"a\" }]\n";
        let s = scenario(&text);
        let planned = plan(&s);
        let fields: Vec<_> = planned
            .findings
            .iter()
            .map(|d| (d.code.as_str(), d.field.clone().unwrap_or_default()))
            .collect();
        assert_eq!(
            fields,
            [("pool-exhausted", "hosts.app3.interfaces[0]".to_string())]
        );
    }

    #[test]
    fn pools_report_use_of_sites_and_subnets() {
        let s = scenario(BASE);
        let planned = plan(&s);
        let pool = |owner: &str| {
            planned
                .plan
                .pools
                .iter()
                .find(|p| p.owner == owner)
                .cloned()
                .unwrap_or_else(|| panic!("no pool {owner}"))
        };
        assert_eq!((pool("site vpc").size, pool("site vpc").used), (65536, 256));
        assert_eq!((pool("subnet a").size, pool("subnet a").used), (251, 2));
    }
}

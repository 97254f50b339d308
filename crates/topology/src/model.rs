//! The validated topology: names resolved to IDs, defaults filled in, every
//! reference checked.
//!
//! Resolution never stops at the first problem: it records a diagnostic and
//! goes on, so a user fixing a file sees every dangling name at once. A
//! [`Topology`] only exists when resolution found nothing wrong, so later
//! stages may index by ID without checking.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Serialize;

use crate::diag::{Diagnostic, Severity, did_you_mean};
use crate::format::{self, *};
use crate::source::{FieldPath, SourceFile, SourceMap};
use crate::units::{Bandwidth, Duration, Listener, Mac};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        pub struct $name(pub u32);
        impl $name {
            pub fn index(self) -> usize {
                self.0 as usize
            }
        }
    };
}

id_type!(
    /// A region.
    RegionId
);
id_type!(
    /// A site.
    SiteId
);
id_type!(
    /// A subnet.
    SubnetId
);
id_type!(
    /// A host.
    HostId
);
id_type!(
    /// An underlay link.
    LinkId
);
id_type!(
    /// An IPsec deployment.
    IpsecId
);
id_type!(
    /// A WireGuard star.
    StarId
);
id_type!(
    /// An OpenVPN (eduVPN-style) deployment.
    OpenVpnId
);
id_type!(
    /// An L2 mesh.
    MeshId
);
id_type!(
    /// A bond.
    BondId
);
id_type!(
    /// A timeline event.
    EventId
);

/// What an interface is attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Segment {
    Subnet(SubnetId),
    Link(LinkId),
}

/// An overlay named by an expectation's `via`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum OverlayId {
    Ipsec(IpsecId),
    Star(StarId),
    OpenVpn(OpenVpnId),
    Mesh(MeshId),
    Bond(BondId),
}

#[derive(Debug, Clone, PartialEq)]
pub struct RegionM {
    pub name: String,
    pub path: FieldPath,
    pub display_name: Option<String>,
    pub provider: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SiteM {
    pub name: String,
    pub path: FieldPath,
    pub kind: SiteKind,
    pub region: Option<RegionId>,
    pub display_name: Option<String>,
    pub cidrs: Vec<IpNet>,
    pub address_space: AddressSpace,
    pub uplink: Option<LinkId>,
    /// Masquerade address of the site router on the uplink.
    pub nat_address: Option<Ipv4Addr>,
    /// Route table: destination → instance.
    pub routes: Vec<(IpNet, HostId)>,
    pub subnets: Vec<SubnetId>,
    pub hosts: Vec<HostId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SubnetM {
    pub name: String,
    pub path: FieldPath,
    pub site: SiteId,
    pub cidr: IpNet,
    pub cidr6: Option<IpNet>,
    pub zone: Option<String>,
    pub purpose: Option<String>,
    pub mtu: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HostM {
    pub name: String,
    pub path: FieldPath,
    pub site: SiteId,
    pub roles: Vec<Role>,
    pub description: Option<String>,
    pub forwarding: bool,
    pub source_dest_check: bool,
    pub public_address: Option<Ipv4Addr>,
    pub public_address6: Option<Ipv6Addr>,
    pub dns_name: Option<String>,
    pub interfaces: Vec<InterfaceM>,
    pub routes: Vec<format::Route>,
    pub services: Vec<format::Service>,
}

impl HostM {
    pub fn has_role(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct InterfaceM {
    pub name: String,
    pub path: FieldPath,
    pub segment: Segment,
    /// Declared address; `None` means the plan allocates one.
    pub address: Option<IpAddr>,
    pub address6: Option<Ipv6Addr>,
    pub mac: Option<Mac>,
    /// Effective MTU (declared, else the segment's).
    pub mtu: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct LinkM {
    pub name: String,
    pub path: FieldPath,
    pub kind: LinkKind,
    pub cidr: Option<IpNet>,
    pub latency: Duration,
    pub jitter: Duration,
    /// Percent, 0–100.
    pub loss: f64,
    pub bandwidth: Option<Bandwidth>,
    pub mtu: u32,
}

/// One IPsec tunnel between two gateways, with its traffic selectors.
#[derive(Debug, Clone, PartialEq)]
pub struct TunnelM {
    /// Conn name as seen from `left`, e.g. `virginia-to-sydney`.
    pub name: String,
    pub left: HostId,
    pub right: HostId,
    pub left_subnets: Vec<IpNet>,
    pub right_subnets: Vec<IpNet>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct IpsecM {
    pub name: String,
    pub path: FieldPath,
    pub daemon: IpsecDaemon,
    pub auth: IpsecAuth,
    pub layout: IpsecLayout,
    pub hub: Option<HostId>,
    pub gateways: Vec<HostId>,
    pub tunnels: Vec<TunnelM>,
    pub ike_version: u8,
    pub pfs: bool,
    pub auto: IpsecAuto,
    pub dpd_delay: Duration,
    pub dpd_timeout: Duration,
    pub nat_traversal: bool,
}

/// Where a WireGuard peer can be reached.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum EndpointHost {
    Ip(IpAddr),
    Dns(String),
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Endpoint {
    pub host: EndpointHost,
    pub port: u16,
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.host {
            EndpointHost::Ip(IpAddr::V6(a)) => write!(f, "[{a}]:{}", self.port),
            EndpointHost::Ip(a) => write!(f, "{a}:{}", self.port),
            EndpointHost::Dns(name) => write!(f, "{name}:{}", self.port),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct StarM {
    pub name: String,
    pub path: FieldPath,
    pub interface: String,
    pub cidr: IpNet,
    pub port: u16,
    pub hub: HostId,
    pub workers: Vec<HostId>,
    /// Declared overlay addresses; the rest are allocated by the plan.
    pub addresses: BTreeMap<HostId, IpAddr>,
    pub endpoints: BTreeMap<HostId, Endpoint>,
    pub allowed_ips: BTreeMap<HostId, Vec<IpNet>>,
    pub persistent_keepalive: Option<Duration>,
    pub mtu: Option<u32>,
    pub preshared_keys: bool,
}

impl StarM {
    /// Hub first, then workers in file order.
    pub fn members(&self) -> impl Iterator<Item = HostId> + '_ {
        std::iter::once(self.hub).chain(self.workers.iter().copied())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ProfileM {
    /// Profile id (the key), e.g. `node-a`.
    pub id: String,
    pub path: FieldPath,
    pub node: HostId,
    pub spec: format::Profile,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OpenVpnM {
    pub name: String,
    pub path: FieldPath,
    pub controller: HostId,
    pub use_vpn_daemon: bool,
    pub vpn_daemon_port: u16,
    pub management_mesh: Option<MeshId>,
    pub shared_tls_crypt: bool,
    pub profiles: Vec<ProfileM>,
    /// Client host and index into `profiles`.
    pub clients: Vec<(HostId, usize)>,
}

impl OpenVpnM {
    /// Hosts that run at least one profile, in order of first appearance.
    pub fn nodes(&self) -> Vec<HostId> {
        let mut seen = BTreeSet::new();
        self.profiles
            .iter()
            .map(|p| p.node)
            .filter(|n| seen.insert(*n))
            .collect()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct MeshMemberM {
    pub host: HostId,
    pub address: Option<IpAddr>,
    pub init_peers: Vec<HostId>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MeshM {
    pub name: String,
    pub path: FieldPath,
    pub network_name: String,
    pub cidr: IpNet,
    pub port: u16,
    pub interface: String,
    pub members: Vec<MeshMemberM>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TapLinkM {
    pub name: String,
    pub client: HostId,
    pub server: HostId,
    pub via: LinkId,
    pub listen: Listener,
    pub macs: BTreeMap<HostId, Mac>,
    pub ping: Duration,
    pub ping_restart: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct BondM {
    pub name: String,
    pub path: FieldPath,
    pub hosts: [HostId; 2],
    pub interface: String,
    pub mode: BondMode,
    pub addresses: BTreeMap<HostId, IpNet>,
    pub macs: BTreeMap<HostId, Mac>,
    pub miimon: Duration,
    pub enslave_delay: Duration,
    pub mtu: u32,
    pub links: Vec<TapLinkM>,
    pub monitor: Option<Monitor>,
}

/// A traffic source in a firewall rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum Source {
    Any,
    Host(HostId),
    Net(IpNet),
}

/// Protocol matched by a firewall rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum RuleProto {
    Any,
    Tcp,
    Udp,
    Icmp,
}

#[derive(Debug, Clone, PartialEq)]
pub struct AllowM {
    pub path: FieldPath,
    pub from: Vec<Source>,
    pub proto: RuleProto,
    pub ports: Vec<u16>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FirewallM {
    pub path: FieldPath,
    pub input_policy: Policy,
    pub forward_policy: Policy,
    pub trusted_interfaces: Vec<String>,
    pub allow: Vec<AllowM>,
    pub forward: Vec<format::ForwardRule>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct DnsM {
    pub name: String,
    pub path: FieldPath,
    /// Literal records plus the named hosts' public addresses, in file order.
    pub a: Vec<Ipv4Addr>,
    pub aaaa: Vec<Ipv6Addr>,
    pub ttl: u32,
}

#[derive(Debug, Clone, PartialEq)]
pub struct FlowM {
    pub path: FieldPath,
    pub from: HostId,
    pub to: HostId,
    pub via: Option<OverlayId>,
    pub proto: ProbeProto,
    pub port: Option<u16>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RecoverM {
    pub path: FieldPath,
    pub from: HostId,
    pub to: HostId,
    pub via: Option<OverlayId>,
    pub proto: ProbeProto,
    pub port: Option<u16>,
    pub after: EventId,
    pub within: Duration,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputM {
    pub path: FieldPath,
    pub from: HostId,
    pub to: HostId,
    pub via: Option<OverlayId>,
    pub at_least: Bandwidth,
}

/// A constant-bitrate UDP stream (`expect.stream`).
#[derive(Debug, Clone, PartialEq)]
pub struct StreamM {
    pub path: FieldPath,
    pub from: HostId,
    pub to: HostId,
    pub via: Option<OverlayId>,
    pub rate: Bandwidth,
    /// `None`: fits the route MTU (decided where the route is known).
    pub size: Option<u32>,
    pub port: u16,
    /// Percent.
    pub max_loss: f64,
    pub max_jitter: Option<Duration>,
    pub reason: Option<String>,
}

impl StreamM {
    /// The reach a stream needs: UDP to its port.
    pub fn flow(&self) -> FlowM {
        FlowM {
            path: self.path.clone(),
            from: self.from,
            to: self.to,
            via: self.via,
            proto: ProbeProto::Udp,
            port: Some(self.port),
            reason: self.reason.clone(),
        }
    }
}

/// Datagrams per second a stream may send: each is an event of the
/// simulation, so this bounds what one expectation costs.
pub const STREAM_MAX_PPS: u64 = 100_000;
/// Smallest stream datagram: room for the sequence tag and an RTP header.
pub const STREAM_MIN_SIZE: u32 = 16;
/// Largest UDP payload over IPv4.
pub const STREAM_MAX_SIZE: u32 = 65_507;
/// The datagram size the rate check assumes for a stream without `size`
/// (whose real size, from the route MTU, is known only when it runs).
pub const STREAM_ASSUMED_SIZE: u32 = 1200;
/// Destination port of a stream without `port` (iperf3's).
pub const STREAM_DEFAULT_PORT: u16 = 5201;
/// Loss a stream without `max_loss` may have, percent.
pub const STREAM_DEFAULT_MAX_LOSS: f64 = 1.0;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExpectationsM {
    pub reach: Vec<FlowM>,
    pub isolated: Vec<FlowM>,
    pub recover: Vec<RecoverM>,
    pub throughput: Vec<ThroughputM>,
    pub stream: Vec<StreamM>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct EventM {
    pub path: FieldPath,
    pub name: Option<String>,
    pub at: Duration,
    pub action: Action,
    pub host: Option<HostId>,
    pub interface: Option<String>,
    pub link: Option<LinkId>,
    pub groups: Vec<Vec<HostId>>,
    pub one_way: bool,
    pub loss: Option<f64>,
    pub duration: Option<Duration>,
    pub address: Option<IpAddr>,
    pub star: Option<StarId>,
    pub procedure: Option<Procedure>,
}

/// A validated scenario. Vectors are indexed by the matching ID type and are
/// in name order (the order of the file's keyed tables), which makes every
/// later stage deterministic without sorting again.
#[derive(Debug, Clone, PartialEq)]
pub struct Topology {
    pub name: String,
    pub seed: u64,
    pub description: Option<String>,
    pub valid_from: Option<String>,
    pub valid_until: Option<String>,
    pub regions: Vec<RegionM>,
    pub sites: Vec<SiteM>,
    pub subnets: Vec<SubnetM>,
    pub hosts: Vec<HostM>,
    pub links: Vec<LinkM>,
    pub ipsec: Vec<IpsecM>,
    pub stars: Vec<StarM>,
    pub openvpn: Vec<OpenVpnM>,
    pub meshes: Vec<MeshM>,
    pub bonds: Vec<BondM>,
    pub firewalls: BTreeMap<HostId, FirewallM>,
    pub dns: Vec<DnsM>,
    pub expect: ExpectationsM,
    pub events: Vec<EventM>,
}

impl Topology {
    pub fn host(&self, id: HostId) -> &HostM {
        &self.hosts[id.index()]
    }
    pub fn site(&self, id: SiteId) -> &SiteM {
        &self.sites[id.index()]
    }
    pub fn subnet(&self, id: SubnetId) -> &SubnetM {
        &self.subnets[id.index()]
    }
    pub fn link(&self, id: LinkId) -> &LinkM {
        &self.links[id.index()]
    }
    pub fn host_id(&self, name: &str) -> Option<HostId> {
        self.hosts
            .iter()
            .position(|h| h.name == name)
            .map(|i| HostId(i as u32))
    }
    pub fn host_ids(&self) -> impl Iterator<Item = HostId> {
        (0..self.hosts.len() as u32).map(HostId)
    }
    /// Human name of an overlay.
    pub fn overlay_name(&self, id: OverlayId) -> &str {
        match id {
            OverlayId::Ipsec(i) => &self.ipsec[i.index()].name,
            OverlayId::Star(i) => &self.stars[i.index()].name,
            OverlayId::OpenVpn(i) => &self.openvpn[i.index()].name,
            OverlayId::Mesh(i) => &self.meshes[i.index()].name,
            OverlayId::Bond(i) => &self.bonds[i.index()].name,
        }
    }
    /// Path of an overlay's table in the file.
    pub fn overlay_path(&self, id: OverlayId) -> &FieldPath {
        match id {
            OverlayId::Ipsec(i) => &self.ipsec[i.index()].path,
            OverlayId::Star(i) => &self.stars[i.index()].path,
            OverlayId::OpenVpn(i) => &self.openvpn[i.index()].path,
            OverlayId::Mesh(i) => &self.meshes[i.index()].path,
            OverlayId::Bond(i) => &self.bonds[i.index()].path,
        }
    }
}

/// Names may become directory names, interface labels and DNS labels.
pub fn is_valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes[0].is_ascii_alphanumeric()
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && !name.ends_with('-')
}

/// Linux interface names: at most 15 bytes, no `/`, whitespace or `:`.
pub fn is_valid_ifname(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

fn is_valid_dns_name(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

fn is_valid_date(text: &str) -> bool {
    let parts: Vec<&str> = text.split('-').collect();
    let [y, m, d] = parts.as_slice() else {
        return false;
    };
    let num = |s: &str, len: usize| s.len() == len && s.bytes().all(|b| b.is_ascii_digit());
    if !(num(y, 4) && num(m, 2) && num(d, 2)) {
        return false;
    }
    let (m, d): (u32, u32) = (m.parse().unwrap_or(0), d.parse().unwrap_or(0));
    (1..=12).contains(&m) && (1..=31).contains(&d)
}

/// Parses `1.2.3.4:55820`, `[2001:db8::1]:55820` or `node3.example.com:55820`.
pub fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let bad = || format!("endpoint `{text}` must be `address:port` or `dns-name:port`");
    let (host, port) = text.rsplit_once(':').ok_or_else(bad)?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(bad)?;
    let host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        EndpointHost::Ip(IpAddr::V6(v6.parse().map_err(|_| bad())?))
    } else if let Ok(ip) = host.parse::<Ipv4Addr>() {
        EndpointHost::Ip(IpAddr::V4(ip))
    } else if is_valid_dns_name(host) && !host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        EndpointHost::Dns(host.to_string())
    } else {
        return Err(bad());
    };
    Ok(Endpoint { host, port })
}

/// Resolves a parsed file into a [`Topology`], or returns every problem found.
pub fn resolve(
    file: &ScenarioFile,
    source: &SourceFile,
    map: &SourceMap,
) -> Result<Topology, Vec<Diagnostic>> {
    let mut r = Resolver {
        source,
        map,
        diagnostics: Vec::new(),
    };
    let topology = r.topology(file);
    if r.diagnostics.is_empty() {
        Ok(topology)
    } else {
        let mut diagnostics = r.diagnostics;
        diagnostics.sort_by_key(Diagnostic::position_key);
        diagnostics.dedup();
        Err(diagnostics)
    }
}

/// A name → ID table for one kind of thing.
struct Names<'a> {
    kind: &'static str,
    ids: BTreeMap<&'a str, u32>,
}

impl<'a> Names<'a> {
    fn new<V>(kind: &'static str, table: &'a BTreeMap<String, V>) -> Self {
        Names {
            kind,
            ids: table
                .keys()
                .enumerate()
                .map(|(i, k)| (k.as_str(), i as u32))
                .collect(),
        }
    }
}

struct Resolver<'s> {
    source: &'s SourceFile,
    map: &'s SourceMap,
    diagnostics: Vec<Diagnostic>,
}

fn root(section: &str) -> FieldPath {
    FieldPath::root().key(section)
}

impl Resolver<'_> {
    fn error(&mut self, code: &str, field: &FieldPath, message: impl Into<String>) {
        let d = Diagnostic::at_field(code, Severity::Error, self.source, self.map, field, message);
        self.diagnostics.push(d);
    }

    fn error_with_help(
        &mut self,
        code: &str,
        field: &FieldPath,
        message: String,
        help: Option<String>,
    ) {
        let mut d =
            Diagnostic::at_field(code, Severity::Error, self.source, self.map, field, message);
        d.help = help;
        self.diagnostics.push(d);
    }

    /// Looks a name up; on failure records a dangling-reference diagnostic
    /// with the closest existing name as a hint.
    fn lookup(&mut self, names: &Names<'_>, name: &str, field: &FieldPath) -> Option<u32> {
        if let Some(id) = names.ids.get(name) {
            return Some(*id);
        }
        let help = did_you_mean(name, names.ids.keys().copied());
        let message = if names.ids.is_empty() {
            format!("no {} named `{name}`: the file defines none", names.kind)
        } else {
            format!("no {} named `{name}`", names.kind)
        };
        self.error_with_help("dangling-reference", field, message, help);
        None
    }

    fn check_name(&mut self, kind: &str, name: &str, field: &FieldPath) {
        if !is_valid_name(name) {
            self.error(
                "invalid-name",
                field,
                format!(
                    "{kind} name `{name}` must be 1-63 lowercase letters, digits or `-`, \
                     starting with a letter or digit and not ending with `-`"
                ),
            );
        }
    }

    fn check_ifname(&mut self, name: &str, field: &FieldPath) {
        if !is_valid_ifname(name) {
            self.error(
                "invalid-name",
                field,
                format!(
                    "interface name `{name}` must be 1-15 printable characters without `/` or `:`"
                ),
            );
        }
    }

    fn topology(&mut self, file: &ScenarioFile) -> Topology {
        let names = AllNames::new(file);
        self.check_all_names(file, &names);
        self.check_meta(&file.scenario);
        let regions = self.regions(file);
        let sites = self.sites(file, &names);
        let subnets = self.subnets(file, &names);
        let hosts = self.hosts(file, &names, &subnets);
        let links = self.links(file);
        let ipsec = self.ipsec(file, &names, &sites, &hosts);
        let stars = self.stars(file, &names);
        let meshes = self.meshes(file, &names);
        let openvpn = self.openvpn(file, &names);
        let bonds = self.bonds(file, &names);
        let firewalls = self.firewalls(file, &names);
        let dns = self.dns(file, &names, &hosts);
        let events = self.events(file, &names);
        let expect = self.expectations(file, &names, &events);
        let mut topology = Topology {
            name: file.scenario.name.clone(),
            seed: file.scenario.seed,
            description: file.scenario.description.clone(),
            valid_from: file.scenario.valid_from.clone(),
            valid_until: file.scenario.valid_until.clone(),
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
            expect,
            events,
        };
        link_sites_to_members(&mut topology);
        topology
    }

    fn check_all_names(&mut self, file: &ScenarioFile, names: &AllNames<'_>) {
        let sections: [(&str, &str, Vec<&String>); 10] = [
            ("regions", "region", file.regions.keys().collect()),
            ("sites", "site", file.sites.keys().collect()),
            ("subnets", "subnet", file.subnets.keys().collect()),
            ("hosts", "host", file.hosts.keys().collect()),
            ("links", "link", file.links.keys().collect()),
            ("ipsec", "overlay", file.ipsec.keys().collect()),
            ("wireguard", "overlay", file.wireguard.keys().collect()),
            ("openvpn", "overlay", file.openvpn.keys().collect()),
            ("mesh", "overlay", file.mesh.keys().collect()),
            ("bond", "overlay", file.bond.keys().collect()),
        ];
        for (section, kind, keys) in sections {
            for key in keys {
                self.check_name(kind, key, &root(section).key(key));
            }
        }
        // Overlays share one namespace because expectations name them by `via`.
        let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
        for (section, name) in names.overlay_sections() {
            if let Some(first) = seen.insert(name, section) {
                self.error(
                    "duplicate-name",
                    &root(section).key(name),
                    format!(
                        "overlay name `{name}` is used by both [{first}] and [{section}]; overlay names must be unique"
                    ),
                );
            }
        }
        if !file.scenario.name.is_empty() && !is_valid_name(&file.scenario.name) {
            self.check_name(
                "scenario",
                &file.scenario.name,
                &root("scenario").key("name"),
            );
        }
    }

    fn check_meta(&mut self, meta: &Meta) {
        let path = root("scenario");
        if meta.name.is_empty() {
            self.error(
                "invalid-value",
                &path.key("name"),
                "scenario name must not be empty",
            );
        }
        for (field, value) in [
            ("valid_from", &meta.valid_from),
            ("valid_until", &meta.valid_until),
        ] {
            if let Some(date) = value
                && !is_valid_date(date)
            {
                self.error(
                    "invalid-value",
                    &path.key(field),
                    format!("`{date}` is not a date like 2026-01-01"),
                );
            }
        }
        if let (Some(from), Some(until)) = (&meta.valid_from, &meta.valid_until)
            && is_valid_date(from)
            && is_valid_date(until)
            && from >= until
        {
            self.error(
                "invalid-value",
                &path.key("valid_until"),
                format!("valid_until {until} must be after valid_from {from}"),
            );
        }
    }

    fn regions(&mut self, file: &ScenarioFile) -> Vec<RegionM> {
        file.regions
            .iter()
            .map(|(name, r)| RegionM {
                name: name.clone(),
                path: root("regions").key(name),
                display_name: r.display_name.clone(),
                provider: r.provider.clone(),
            })
            .collect()
    }

    fn sites(&mut self, file: &ScenarioFile, names: &AllNames<'_>) -> Vec<SiteM> {
        let mut sites = Vec::new();
        for (name, site) in &file.sites {
            let path = root("sites").key(name);
            let region = site
                .region
                .as_ref()
                .and_then(|r| self.lookup(&names.regions, r, &path.key("region")))
                .map(RegionId);
            let uplink = site
                .uplink
                .as_ref()
                .and_then(|l| self.lookup(&names.links, l, &path.key("uplink")))
                .map(LinkId);
            if site.nat_address.is_some() && site.uplink.is_none() {
                self.error(
                    "missing-field",
                    &path.key("uplink"),
                    "a site with a nat_address needs the `uplink` the address lives on",
                );
            }
            let mut routes = Vec::new();
            for (i, route) in site.routes.iter().enumerate() {
                let field = path.key("routes").index(i).key("via");
                if let Some(h) = self.lookup(&names.hosts, &route.via, &field) {
                    routes.push((route.to, HostId(h)));
                }
            }
            sites.push(SiteM {
                name: name.clone(),
                path,
                kind: site.kind,
                region,
                display_name: site.display_name.clone(),
                cidrs: site.cidrs.clone(),
                address_space: site.address_space,
                uplink,
                nat_address: site.nat_address,
                routes,
                subnets: Vec::new(),
                hosts: Vec::new(),
            });
        }
        sites
    }

    fn subnets(&mut self, file: &ScenarioFile, names: &AllNames<'_>) -> Vec<SubnetM> {
        let mut subnets = Vec::new();
        for (name, subnet) in &file.subnets {
            let path = root("subnets").key(name);
            let site = self
                .lookup(&names.sites, &subnet.site, &path.key("site"))
                .map(SiteId);
            if let Some(cidr6) = subnet.cidr6
                && !matches!(cidr6, IpNet::V6(_))
            {
                self.error(
                    "invalid-value",
                    &path.key("cidr6"),
                    format!("cidr6 `{cidr6}` must be an IPv6 prefix"),
                );
            }
            self.check_mtu(subnet.mtu, &path.key("mtu"));
            subnets.push(SubnetM {
                name: name.clone(),
                site: site.unwrap_or(SiteId(u32::MAX)),
                path,
                cidr: subnet.cidr,
                cidr6: subnet.cidr6,
                zone: subnet.zone.clone(),
                purpose: subnet.purpose.clone(),
                mtu: subnet.mtu,
            });
        }
        subnets
    }

    fn check_mtu(&mut self, mtu: u32, field: &FieldPath) {
        if !(576..=65535).contains(&mtu) {
            self.error(
                "invalid-value",
                field,
                format!("MTU {mtu} is outside 576..=65535"),
            );
        }
    }

    fn hosts(
        &mut self,
        file: &ScenarioFile,
        names: &AllNames<'_>,
        subnets: &[SubnetM],
    ) -> Vec<HostM> {
        let mut hosts = Vec::new();
        for (name, host) in &file.hosts {
            let path = root("hosts").key(name);
            let site = self
                .lookup(&names.sites, &host.site, &path.key("site"))
                .map(SiteId);
            if let Some(dns) = &host.dns_name
                && !is_valid_dns_name(dns)
            {
                self.error(
                    "invalid-value",
                    &path.key("dns_name"),
                    format!("`{dns}` is not a valid DNS name"),
                );
            }
            let interfaces = self.interfaces(host, &path, names, subnets, file);
            for (i, route) in host.routes.iter().enumerate() {
                let field = path.key("routes").index(i);
                if route.via.is_none() && route.dev.is_none() {
                    self.error(
                        "missing-field",
                        &field,
                        "a route needs `via` (next hop) or `dev` (interface)",
                    );
                }
                if let Some(via) = route.via
                    && route.to.addr().is_ipv4() != via.is_ipv4()
                {
                    self.error(
                        "invalid-value",
                        &field.key("via"),
                        format!(
                            "next hop {via} is not of the same address family as {}",
                            route.to
                        ),
                    );
                }
            }
            hosts.push(HostM {
                name: name.clone(),
                site: site.unwrap_or(SiteId(u32::MAX)),
                path,
                roles: host.roles.clone(),
                description: host.description.clone(),
                forwarding: host.forwarding,
                source_dest_check: host.source_dest_check,
                public_address: host.public_address,
                public_address6: host.public_address6,
                dns_name: host.dns_name.clone(),
                interfaces,
                routes: host.routes.clone(),
                services: host.services.clone(),
            });
        }
        hosts
    }

    fn interfaces(
        &mut self,
        host: &Host,
        path: &FieldPath,
        names: &AllNames<'_>,
        subnets: &[SubnetM],
        file: &ScenarioFile,
    ) -> Vec<InterfaceM> {
        let mut seen = BTreeSet::new();
        let mut interfaces = Vec::new();
        for (i, iface) in host.interfaces.iter().enumerate() {
            let ipath = path.key("interfaces").index(i);
            self.check_ifname(&iface.name, &ipath.key("name"));
            if !seen.insert(iface.name.as_str()) {
                self.error(
                    "duplicate-name",
                    &ipath.key("name"),
                    format!("interface `{}` is declared twice on this host", iface.name),
                );
            }
            let segment = match (&iface.subnet, &iface.link) {
                (Some(s), None) => self
                    .lookup(&names.subnets, s, &ipath.key("subnet"))
                    .map(|s| Segment::Subnet(SubnetId(s))),
                (None, Some(l)) => self
                    .lookup(&names.links, l, &ipath.key("link"))
                    .map(|l| Segment::Link(LinkId(l))),
                (Some(_), Some(_)) => {
                    self.error(
                        "invalid-value",
                        &ipath,
                        "an interface attaches to a `subnet` or a `link`, not both",
                    );
                    None
                }
                (None, None) => {
                    self.error(
                        "missing-field",
                        &ipath,
                        "an interface needs `subnet` or `link`",
                    );
                    None
                }
            };
            if let (Some(Segment::Link(l)), None) = (segment, iface.address) {
                let link = file.links.values().nth(l.index());
                if link.is_some_and(|l| l.kind == LinkKind::Wan) {
                    self.error(
                        "missing-field",
                        &ipath.key("address"),
                        "an interface on a wan link needs an explicit public `address`",
                    );
                }
            }
            if let Some(mtu) = iface.mtu {
                self.check_mtu(mtu, &ipath.key("mtu"));
            }
            let segment_mtu = match segment {
                Some(Segment::Subnet(s)) => subnets.get(s.index()).map_or(1500, |s| s.mtu),
                Some(Segment::Link(l)) => {
                    file.links.values().nth(l.index()).map_or(1500, |l| l.mtu)
                }
                None => 1500,
            };
            interfaces.push(InterfaceM {
                name: iface.name.clone(),
                path: ipath,
                segment: segment.unwrap_or(Segment::Subnet(SubnetId(u32::MAX))),
                address: iface.address,
                address6: iface.address6,
                mac: iface.mac,
                mtu: iface.mtu.unwrap_or(segment_mtu),
            });
        }
        interfaces
    }

    fn links(&mut self, file: &ScenarioFile) -> Vec<LinkM> {
        let mut links = Vec::new();
        for (name, link) in &file.links {
            let path = root("links").key(name);
            if link.kind == LinkKind::Lan && link.cidr.is_none() {
                self.error(
                    "missing-field",
                    &path.key("cidr"),
                    "a lan link needs a `cidr`",
                );
            }
            let loss = link.loss.unwrap_or(0.0);
            if !(0.0..=100.0).contains(&loss) {
                self.error(
                    "invalid-value",
                    &path.key("loss"),
                    format!("loss {loss} must be a percentage between 0 and 100"),
                );
            }
            self.check_mtu(link.mtu, &path.key("mtu"));
            links.push(LinkM {
                name: name.clone(),
                path,
                kind: link.kind,
                cidr: link.cidr,
                latency: link.latency.unwrap_or_default(),
                jitter: link.jitter.unwrap_or_default(),
                loss,
                bandwidth: link.bandwidth,
                mtu: link.mtu,
            });
        }
        links
    }

    fn host_list(
        &mut self,
        names: &AllNames<'_>,
        list: &[String],
        field: &FieldPath,
    ) -> Vec<HostId> {
        let mut out = Vec::new();
        for (i, name) in list.iter().enumerate() {
            let f = field.index(i);
            if let Some(h) = self.lookup(&names.hosts, name, &f) {
                if out.contains(&HostId(h)) {
                    self.error(
                        "duplicate-name",
                        &f,
                        format!("host `{name}` is listed twice"),
                    );
                } else {
                    out.push(HostId(h));
                }
            }
        }
        out
    }

    fn host_map<V: Clone>(
        &mut self,
        names: &AllNames<'_>,
        map: &BTreeMap<String, V>,
        field: &FieldPath,
        members: &[HostId],
        what: &str,
    ) -> BTreeMap<HostId, V> {
        let mut out = BTreeMap::new();
        for (name, value) in map {
            let f = field.key(name);
            if let Some(h) = self.lookup(&names.hosts, name, &f) {
                if members.contains(&HostId(h)) {
                    out.insert(HostId(h), value.clone());
                } else {
                    self.error(
                        "dangling-reference",
                        &f,
                        format!("host `{name}` is not a member of this {what}"),
                    );
                }
            }
        }
        out
    }

    fn ipsec(
        &mut self,
        file: &ScenarioFile,
        names: &AllNames<'_>,
        sites: &[SiteM],
        hosts: &[HostM],
    ) -> Vec<IpsecM> {
        let mut out = Vec::new();
        for (name, ipsec) in &file.ipsec {
            let path = root("ipsec").key(name);
            let hub = ipsec
                .hub
                .as_ref()
                .and_then(|h| self.lookup(&names.hosts, h, &path.key("hub")))
                .map(HostId);
            let gateways = self.host_list(names, &ipsec.gateways, &path.key("gateways"));
            match ipsec.layout {
                IpsecLayout::HubAndSpoke if ipsec.hub.is_none() => {
                    self.error(
                        "missing-field",
                        &path.key("hub"),
                        "layout hub-and-spoke needs a `hub`",
                    );
                }
                IpsecLayout::FullMesh if ipsec.hub.is_some() => {
                    self.error(
                        "invalid-value",
                        &path.key("hub"),
                        "layout full-mesh has no hub; list every gateway in `gateways`",
                    );
                }
                _ => {}
            }
            if let Some(h) = hub
                && gateways.contains(&h)
            {
                self.error(
                    "invalid-value",
                    &path.key("gateways"),
                    "the hub must not also be listed as a spoke",
                );
            }
            let needed = if ipsec.layout == IpsecLayout::HubAndSpoke {
                1
            } else {
                2
            };
            if ipsec.gateways.len() < needed {
                self.error(
                    "invalid-value",
                    &path.key("gateways"),
                    format!("layout needs at least {needed} gateway(s)"),
                );
            }
            if !matches!(ipsec.ike_version, 1 | 2) {
                self.error(
                    "invalid-value",
                    &path.key("ike_version"),
                    format!("ike_version must be 1 or 2, not {}", ipsec.ike_version),
                );
            }
            let members: Vec<HostId> = hub.into_iter().chain(gateways.iter().copied()).collect();
            let selectors = self.host_map(
                names,
                &ipsec.subnets,
                &path.key("subnets"),
                &members,
                "IPsec deployment",
            );
            let selector_of = |h: HostId| -> Vec<IpNet> {
                selectors.get(&h).cloned().unwrap_or_else(|| {
                    hosts
                        .get(h.index())
                        .and_then(|host| sites.get(host.site.index()))
                        .map(|s| s.cidrs.clone())
                        .unwrap_or_default()
                })
            };
            let site_name = |h: HostId| -> String {
                hosts
                    .get(h.index())
                    .and_then(|host| sites.get(host.site.index()))
                    .map_or_else(|| "unknown".into(), |s| s.name.clone())
            };
            let pairs: Vec<(HostId, HostId)> = match (ipsec.layout, hub) {
                (IpsecLayout::HubAndSpoke, Some(hub)) => {
                    gateways.iter().map(|g| (hub, *g)).collect()
                }
                (IpsecLayout::FullMesh, _) => gateways
                    .iter()
                    .enumerate()
                    .flat_map(|(i, a)| gateways[i + 1..].iter().map(move |b| (*a, *b)))
                    .collect(),
                _ => Vec::new(),
            };
            let tunnels = pairs
                .into_iter()
                .map(|(left, right)| TunnelM {
                    name: format!("{}-to-{}", site_name(left), site_name(right)),
                    left,
                    right,
                    left_subnets: selector_of(left),
                    right_subnets: selector_of(right),
                })
                .collect();
            out.push(IpsecM {
                name: name.clone(),
                path,
                daemon: ipsec.daemon,
                auth: ipsec.auth,
                layout: ipsec.layout,
                hub,
                gateways,
                tunnels,
                ike_version: ipsec.ike_version,
                pfs: ipsec.pfs,
                auto: ipsec.auto,
                dpd_delay: ipsec.dpd_delay,
                dpd_timeout: ipsec.dpd_timeout,
                nat_traversal: ipsec.nat_traversal,
            });
        }
        out
    }

    fn stars(&mut self, file: &ScenarioFile, names: &AllNames<'_>) -> Vec<StarM> {
        let mut out = Vec::new();
        for (name, star) in &file.wireguard {
            let path = root("wireguard").key(name);
            self.check_ifname(&star.interface, &path.key("interface"));
            let hub = self
                .lookup(&names.hosts, &star.hub, &path.key("hub"))
                .map(HostId);
            let workers = self.host_list(names, &star.workers, &path.key("workers"));
            if let Some(h) = hub
                && workers.contains(&h)
            {
                self.error(
                    "invalid-value",
                    &path.key("workers"),
                    format!("the hub `{}` must not also be a worker", star.hub),
                );
            }
            if star.port == 0 {
                self.error("invalid-value", &path.key("port"), "port must not be 0");
            }
            if let Some(mtu) = star.mtu {
                self.check_mtu(mtu, &path.key("mtu"));
            }
            let members: Vec<HostId> = hub.into_iter().chain(workers.iter().copied()).collect();
            let addresses = self.host_map(
                names,
                &star.addresses,
                &path.key("addresses"),
                &members,
                "star",
            );
            let raw_endpoints = self.host_map(
                names,
                &star.endpoints,
                &path.key("endpoints"),
                &members,
                "star",
            );
            let mut endpoints = BTreeMap::new();
            for (host, text) in raw_endpoints {
                match parse_endpoint(&text) {
                    Ok(e) => {
                        endpoints.insert(host, e);
                    }
                    Err(message) => {
                        let key = file
                            .hosts
                            .keys()
                            .nth(host.index())
                            .cloned()
                            .unwrap_or_default();
                        self.error("invalid-value", &path.key("endpoints").key(&key), message);
                    }
                }
            }
            let allowed_ips = self.host_map(
                names,
                &star.allowed_ips,
                &path.key("allowed_ips"),
                &members,
                "star",
            );
            out.push(StarM {
                name: name.clone(),
                path,
                interface: star.interface.clone(),
                cidr: star.cidr,
                port: star.port,
                hub: hub.unwrap_or(HostId(u32::MAX)),
                workers,
                addresses,
                endpoints,
                allowed_ips,
                persistent_keepalive: star.persistent_keepalive,
                mtu: star.mtu,
                preshared_keys: star.preshared_keys,
            });
        }
        out
    }

    fn meshes(&mut self, file: &ScenarioFile, names: &AllNames<'_>) -> Vec<MeshM> {
        let mut out = Vec::new();
        for (name, mesh) in &file.mesh {
            let path = root("mesh").key(name);
            self.check_ifname(&mesh.interface, &path.key("interface"));
            let member_names: Vec<String> = mesh.members.iter().map(|m| m.host.clone()).collect();
            let hosts = self.host_list(names, &member_names, &path.key("members"));
            let mut members = Vec::new();
            for (i, member) in mesh.members.iter().enumerate() {
                let mpath = path.key("members").index(i);
                let Some(host) = names
                    .hosts
                    .ids
                    .get(member.host.as_str())
                    .map(|h| HostId(*h))
                else {
                    continue;
                };
                let mut init_peers = Vec::new();
                for (j, peer) in member.init_peers.iter().enumerate() {
                    let f = mpath.key("init_peers").index(j);
                    let Some(p) = self.lookup(&names.hosts, peer, &f).map(HostId) else {
                        continue;
                    };
                    if p == host {
                        self.error("invalid-value", &f, format!("`{peer}` cannot dial itself"));
                    } else if !hosts.contains(&p) {
                        self.error(
                            "dangling-reference",
                            &f,
                            format!("`{peer}` is not a member of mesh `{name}`"),
                        );
                    } else {
                        init_peers.push(p);
                    }
                }
                members.push(MeshMemberM {
                    host,
                    address: member.address,
                    init_peers,
                });
            }
            out.push(MeshM {
                name: name.clone(),
                path,
                network_name: mesh.network_name.clone(),
                cidr: mesh.cidr,
                port: mesh.port,
                interface: mesh.interface.clone(),
                members,
            });
        }
        out
    }

    fn openvpn(&mut self, file: &ScenarioFile, names: &AllNames<'_>) -> Vec<OpenVpnM> {
        let mut out = Vec::new();
        for (name, dep) in &file.openvpn {
            let path = root("openvpn").key(name);
            let controller = self
                .lookup(&names.hosts, &dep.controller, &path.key("controller"))
                .map(HostId);
            let management_mesh = dep
                .management_mesh
                .as_ref()
                .and_then(|m| self.lookup(&names.meshes, m, &path.key("management_mesh")))
                .map(MeshId);
            let mut profiles = Vec::new();
            for (id, profile) in &dep.profiles {
                let ppath = path.key("profiles").key(id);
                self.check_name("profile", id, &ppath);
                if !is_valid_dns_name(&profile.host_name) {
                    self.error(
                        "invalid-value",
                        &ppath.key("host_name"),
                        format!("`{}` is not a valid DNS name", profile.host_name),
                    );
                }
                if let Some(range @ IpNet::V6(_)) = profile.range {
                    self.error(
                        "invalid-value",
                        &ppath.key("range"),
                        format!("range `{range}` must be an IPv4 prefix"),
                    );
                }
                if let Some(range @ IpNet::V4(_)) = profile.range
                    && range.prefix_len() > 29
                {
                    self.error(
                        "invalid-value",
                        &ppath.key("range"),
                        format!("range `{range}` is too small: OpenVPN's `server` needs a /29 or larger pool"),
                    );
                }
                match profile.range6 {
                    Some(IpNet::V4(_)) => {
                        self.error("invalid-value", &ppath.key("range6"), "range6 must be an IPv6 prefix")
                    }
                    Some(range6) if range6.prefix_len() > 112 => self.error(
                        "invalid-value",
                        &ppath.key("range6"),
                        format!("range6 `{range6}` is too small: OpenVPN's `server-ipv6` needs a /112 or larger pool"),
                    ),
                    _ => {}
                }
                if profile.listeners.is_empty() {
                    self.error(
                        "invalid-value",
                        &ppath.key("listeners"),
                        "a profile needs at least one listener",
                    );
                }
                if let Some(node) = self.lookup(&names.hosts, &profile.node, &ppath.key("node")) {
                    profiles.push(ProfileM {
                        id: id.clone(),
                        path: ppath,
                        node: HostId(node),
                        spec: profile.clone(),
                    });
                }
            }
            let mut clients = Vec::new();
            for (i, client) in dep.clients.iter().enumerate() {
                let cpath = path.key("clients").index(i);
                let host = self.lookup(&names.hosts, &client.host, &cpath.key("host"));
                let profile = profiles.iter().position(|p| p.id == client.profile);
                if profile.is_none() {
                    let help =
                        did_you_mean(&client.profile, dep.profiles.keys().map(String::as_str));
                    self.error_with_help(
                        "dangling-reference",
                        &cpath.key("profile"),
                        format!("no profile named `{}` in `{name}`", client.profile),
                        help,
                    );
                }
                if let (Some(h), Some(p)) = (host, profile) {
                    clients.push((HostId(h), p));
                }
            }
            out.push(OpenVpnM {
                name: name.clone(),
                path,
                controller: controller.unwrap_or(HostId(u32::MAX)),
                use_vpn_daemon: dep.use_vpn_daemon,
                vpn_daemon_port: dep.vpn_daemon_port,
                management_mesh,
                shared_tls_crypt: dep.shared_tls_crypt,
                profiles,
                clients,
            });
        }
        out
    }

    fn bonds(&mut self, file: &ScenarioFile, names: &AllNames<'_>) -> Vec<BondM> {
        let mut out = Vec::new();
        for (name, bond) in &file.bond {
            let path = root("bond").key(name);
            self.check_ifname(&bond.interface, &path.key("interface"));
            self.check_mtu(bond.mtu, &path.key("mtu"));
            let hosts = self.host_list(names, &bond.hosts, &path.key("hosts"));
            let pair: [HostId; 2] = match hosts.as_slice() {
                [a, b] => [*a, *b],
                _ => {
                    if bond.hosts.len() != 2 {
                        self.error(
                            "invalid-value",
                            &path.key("hosts"),
                            format!("a bond joins exactly two hosts, not {}", bond.hosts.len()),
                        );
                    }
                    [HostId(u32::MAX), HostId(u32::MAX)]
                }
            };
            let addresses = self.host_map(
                names,
                &bond.addresses,
                &path.key("addresses"),
                &hosts,
                "bond",
            );
            for h in &hosts {
                if !addresses.contains_key(h) {
                    let host = file
                        .hosts
                        .keys()
                        .nth(h.index())
                        .cloned()
                        .unwrap_or_default();
                    self.error(
                        "missing-field",
                        &path.key("addresses"),
                        format!("no bond address for `{host}`"),
                    );
                }
            }
            let macs = self.host_map(names, &bond.macs, &path.key("macs"), &hosts, "bond");
            if bond.links.is_empty() {
                self.error(
                    "invalid-value",
                    &path.key("links"),
                    "a bond needs at least one link",
                );
            }
            let mut links = Vec::new();
            let mut link_names = BTreeSet::new();
            for (i, link) in bond.links.iter().enumerate() {
                let lpath = path.key("links").index(i);
                self.check_ifname(&link.name, &lpath.key("name"));
                if !link_names.insert(link.name.as_str()) {
                    self.error(
                        "duplicate-name",
                        &lpath.key("name"),
                        format!("link `{}` is declared twice in this bond", link.name),
                    );
                }
                let client = self
                    .lookup(&names.hosts, &link.client, &lpath.key("client"))
                    .map(HostId);
                let server = self
                    .lookup(&names.hosts, &link.server, &lpath.key("server"))
                    .map(HostId);
                let via = self
                    .lookup(&names.links, &link.via, &lpath.key("via"))
                    .map(LinkId);
                for (field, h) in [("client", client), ("server", server)] {
                    if h.is_some_and(|h| !hosts.contains(&h)) {
                        self.error(
                            "dangling-reference",
                            &lpath.key(field),
                            "must be one of the bond's two hosts",
                        );
                    }
                }
                if client.is_some() && client == server {
                    self.error(
                        "invalid-value",
                        &lpath.key("server"),
                        "client and server must be different hosts",
                    );
                }
                let macs = self.host_map(names, &link.macs, &lpath.key("macs"), &hosts, "bond");
                if let (Some(client), Some(server), Some(via)) = (client, server, via) {
                    links.push(TapLinkM {
                        name: link.name.clone(),
                        client,
                        server,
                        via,
                        listen: link.listen,
                        macs,
                        ping: link.ping,
                        ping_restart: link.ping_restart,
                    });
                }
            }
            out.push(BondM {
                name: name.clone(),
                path,
                hosts: pair,
                interface: bond.interface.clone(),
                mode: bond.mode,
                addresses,
                macs,
                miimon: bond.miimon,
                enslave_delay: bond.enslave_delay,
                mtu: bond.mtu,
                links,
                monitor: bond.monitor.clone(),
            });
        }
        out
    }

    fn firewalls(
        &mut self,
        file: &ScenarioFile,
        names: &AllNames<'_>,
    ) -> BTreeMap<HostId, FirewallM> {
        let mut out = BTreeMap::new();
        for (host, fw) in &file.firewall {
            let path = root("firewall").key(host);
            let Some(h) = self.lookup(&names.hosts, host, &path) else {
                continue;
            };
            let mut allow = Vec::new();
            for (i, rule) in fw.allow.iter().enumerate() {
                let rpath = path.key("allow").index(i);
                let proto = match rule.proto.as_str() {
                    "any" => RuleProto::Any,
                    "tcp" => RuleProto::Tcp,
                    "udp" => RuleProto::Udp,
                    "icmp" => RuleProto::Icmp,
                    other => {
                        let help = did_you_mean(other, ["any", "tcp", "udp", "icmp"]);
                        self.error_with_help(
                            "invalid-value",
                            &rpath.key("proto"),
                            format!("proto `{other}` must be tcp, udp, icmp or any"),
                            help,
                        );
                        RuleProto::Any
                    }
                };
                if !rule.ports.is_empty() && !matches!(proto, RuleProto::Tcp | RuleProto::Udp) {
                    self.error(
                        "invalid-value",
                        &rpath.key("ports"),
                        "ports only apply to tcp or udp rules",
                    );
                }
                let mut from = Vec::new();
                for (j, src) in rule.from.iter().enumerate() {
                    let f = rpath.key("from").index(j);
                    if src == "any" {
                        from.push(Source::Any);
                    } else if let Ok(net) = src.parse::<IpNet>() {
                        from.push(Source::Net(net));
                    } else if let Ok(ip) = src.parse::<IpAddr>() {
                        from.push(Source::Net(IpNet::from(ip)));
                    } else if let Some(h) = self.lookup(&names.hosts, src, &f) {
                        from.push(Source::Host(HostId(h)));
                    }
                }
                if rule.from.is_empty() {
                    self.error(
                        "invalid-value",
                        &rpath.key("from"),
                        "list at least one source (a host, a CIDR or \"any\")",
                    );
                }
                allow.push(AllowM {
                    path: rpath,
                    from,
                    proto,
                    ports: rule.ports.clone(),
                });
            }
            for (i, rule) in fw.forward.iter().enumerate() {
                let rpath = path.key("forward").index(i);
                for (field, pattern) in [
                    ("in_interface", &rule.in_interface),
                    ("out_interface", &rule.out_interface),
                ] {
                    self.check_ifname(
                        pattern.strip_suffix('+').unwrap_or(pattern),
                        &rpath.key(field),
                    );
                }
            }
            for (i, pattern) in fw.trusted_interfaces.iter().enumerate() {
                self.check_ifname(
                    pattern.strip_suffix('+').unwrap_or(pattern),
                    &path.key("trusted_interfaces").index(i),
                );
            }
            out.insert(
                HostId(h),
                FirewallM {
                    path,
                    input_policy: fw.input_policy,
                    forward_policy: fw.forward_policy,
                    trusted_interfaces: fw.trusted_interfaces.clone(),
                    allow,
                    forward: fw.forward.clone(),
                },
            );
        }
        out
    }

    fn dns(&mut self, file: &ScenarioFile, names: &AllNames<'_>, hosts: &[HostM]) -> Vec<DnsM> {
        let mut out = Vec::new();
        for (name, record) in &file.dns {
            let path = root("dns").key(name);
            if !is_valid_dns_name(name) {
                self.error(
                    "invalid-name",
                    &path,
                    format!("`{name}` is not a valid DNS name"),
                );
            }
            let mut a = record.a.clone();
            let mut aaaa = record.aaaa.clone();
            for (i, host) in record.hosts.iter().enumerate() {
                let f = path.key("hosts").index(i);
                let Some(h) = self.lookup(&names.hosts, host, &f) else {
                    continue;
                };
                let Some(host_m) = hosts.get(h as usize) else {
                    continue;
                };
                if host_m.public_address.is_none() && host_m.public_address6.is_none() {
                    self.error(
                        "invalid-value",
                        &f,
                        format!(
                            "host `{host}` has no public_address or public_address6 to publish"
                        ),
                    );
                }
                a.extend(host_m.public_address);
                aaaa.extend(host_m.public_address6);
            }
            if a.is_empty() && aaaa.is_empty() {
                self.error(
                    "invalid-value",
                    &path,
                    format!("`{name}` has no A or AAAA record"),
                );
            }
            out.push(DnsM {
                name: name.clone(),
                path,
                a,
                aaaa,
                ttl: record.ttl.unwrap_or(300),
            });
        }
        out
    }

    fn events(&mut self, file: &ScenarioFile, names: &AllNames<'_>) -> Vec<EventM> {
        let mut out = Vec::new();
        let mut event_names = BTreeSet::new();
        let mut last_at = Duration::default();
        for (i, event) in file.events.iter().enumerate() {
            let path = root("events").index(i);
            if let Some(name) = &event.name {
                self.check_name("event", name, &path.key("name"));
                if !event_names.insert(name.as_str()) {
                    self.error(
                        "duplicate-name",
                        &path.key("name"),
                        format!("event name `{name}` is used twice"),
                    );
                }
            }
            if event.at < last_at {
                self.error(
                    "invalid-value",
                    &path.key("at"),
                    format!(
                        "events must be in time order: {} comes after {last_at}",
                        event.at
                    ),
                );
            }
            last_at = last_at.max(event.at);
            let host = event
                .host
                .as_ref()
                .and_then(|h| self.lookup(&names.hosts, h, &path.key("host")))
                .map(HostId);
            let link = event
                .link
                .as_ref()
                .and_then(|l| self.lookup(&names.links, l, &path.key("link")))
                .map(LinkId);
            let star = event
                .star
                .as_ref()
                .and_then(|s| self.lookup(&names.stars, s, &path.key("star")))
                .map(StarId);
            let mut groups = Vec::new();
            for (g, group) in event.groups.iter().enumerate() {
                groups.push(self.host_list(names, group, &path.key("groups").index(g)));
            }
            self.check_event_fields(event, &path);
            out.push(EventM {
                path,
                name: event.name.clone(),
                at: event.at,
                action: event.action,
                host,
                interface: event.interface.clone(),
                link,
                groups,
                one_way: event.one_way,
                loss: event.loss,
                duration: event.duration,
                address: event.address,
                star,
                procedure: event.procedure,
            });
        }
        out
    }

    /// Each action needs some fields and ignores the rest; a field that would
    /// be ignored is an error, because the user meant something by it.
    fn check_event_fields(&mut self, e: &Event, path: &FieldPath) {
        let present: [(&str, bool); 9] = [
            ("host", e.host.is_some()),
            ("interface", e.interface.is_some()),
            ("link", e.link.is_some()),
            ("groups", !e.groups.is_empty()),
            ("one_way", e.one_way),
            ("loss", e.loss.is_some()),
            ("duration", e.duration.is_some()),
            ("address", e.address.is_some()),
            ("star", e.star.is_some()),
        ];
        let (required, optional): (&[&str], &[&str]) = match e.action {
            Action::LinkDown | Action::LinkUp if e.link.is_some() => (&["link"], &[]),
            Action::LinkDown | Action::LinkUp => (&["host", "interface"], &[]),
            Action::Crash | Action::Restart | Action::Stop | Action::Start => (&["host"], &[]),
            Action::Partition => (&["groups"], &["one_way"]),
            Action::Heal => (&[], &[]),
            Action::LossBurst => (&["link", "loss", "duration"], &[]),
            Action::EndpointChange => (&["host", "address"], &["interface"]),
            Action::Promote => (&["host", "star"], &[]),
        };
        let action = serde_json::to_value(e.action)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default();
        for (field, is_set) in present {
            if required.contains(&field) && !is_set {
                self.error(
                    "missing-field",
                    &path.key(field),
                    format!("action `{action}` needs `{field}`"),
                );
            } else if is_set && !required.contains(&field) && !optional.contains(&field) {
                self.error(
                    "invalid-value",
                    &path.key(field),
                    format!("action `{action}` does not use `{field}`"),
                );
            }
        }
        match (e.action, e.procedure) {
            (Action::Promote, None) => self.error(
                "missing-field",
                &path.key("procedure"),
                "action `promote` needs `procedure` (alive-leader or dead-leader)",
            ),
            (Action::Promote, Some(_)) | (_, None) => {}
            (_, Some(_)) => self.error(
                "invalid-value",
                &path.key("procedure"),
                format!("action `{action}` does not use `procedure`"),
            ),
        }
        if e.action == Action::Partition && e.groups.len() < 2 {
            self.error(
                "invalid-value",
                &path.key("groups"),
                "a partition needs at least two groups",
            );
        }
        if let Some(loss) = e.loss
            && !(0.0..=100.0).contains(&loss)
        {
            self.error(
                "invalid-value",
                &path.key("loss"),
                format!("loss {loss} must be a percentage between 0 and 100"),
            );
        }
    }

    fn flow(&mut self, names: &AllNames<'_>, flow: &Flow, path: FieldPath) -> Option<FlowM> {
        let from = self
            .lookup(&names.hosts, &flow.from, &path.key("from"))
            .map(HostId);
        let to = self
            .lookup(&names.hosts, &flow.to, &path.key("to"))
            .map(HostId);
        let via = self.via(names, flow.via.as_deref(), &path);
        self.check_probe(flow.proto, flow.port, &path);
        if from.is_some() && from == to {
            self.error(
                "invalid-value",
                &path.key("to"),
                "a flow needs two different hosts",
            );
        }
        Some(FlowM {
            path,
            from: from?,
            to: to?,
            via: via?,
            proto: flow.proto,
            port: flow.port,
            reason: flow.reason.clone(),
        })
    }

    fn check_probe(&mut self, proto: ProbeProto, port: Option<u16>, path: &FieldPath) {
        if proto == ProbeProto::Icmp && port.is_some() {
            self.error(
                "invalid-value",
                &path.key("port"),
                "icmp probes have no port; set proto = \"tcp\" or \"udp\"",
            );
        }
        if proto != ProbeProto::Icmp && port.is_none() {
            self.error(
                "missing-field",
                &path.key("port"),
                "tcp and udp probes need a `port`",
            );
        }
    }

    /// `Some(None)`: no via; `Some(Some(id))`: resolved; `None`: dangling.
    fn via(
        &mut self,
        names: &AllNames<'_>,
        via: Option<&str>,
        path: &FieldPath,
    ) -> Option<Option<OverlayId>> {
        let Some(via) = via else { return Some(None) };
        let found = names.overlay(via);
        if found.is_none() {
            let help = did_you_mean(via, names.overlay_sections().map(|(_, n)| n));
            self.error_with_help(
                "dangling-reference",
                &path.key("via"),
                format!("no overlay named `{via}`"),
                help,
            );
        }
        found.map(Some)
    }

    fn expectations(
        &mut self,
        file: &ScenarioFile,
        names: &AllNames<'_>,
        events: &[EventM],
    ) -> ExpectationsM {
        let base = root("expect");
        let mut expect = ExpectationsM::default();
        for (i, flow) in file.expect.reach.iter().enumerate() {
            expect
                .reach
                .extend(self.flow(names, flow, base.key("reach").index(i)));
        }
        for (i, flow) in file.expect.isolated.iter().enumerate() {
            expect
                .isolated
                .extend(self.flow(names, flow, base.key("isolated").index(i)));
        }
        for (i, rec) in file.expect.recover.iter().enumerate() {
            let path = base.key("recover").index(i);
            let from = self
                .lookup(&names.hosts, &rec.from, &path.key("from"))
                .map(HostId);
            let to = self
                .lookup(&names.hosts, &rec.to, &path.key("to"))
                .map(HostId);
            let via = self.via(names, rec.via.as_deref(), &path);
            let after = events
                .iter()
                .position(|e| e.name.as_deref() == Some(rec.after.as_str()));
            if after.is_none() {
                let help =
                    did_you_mean(&rec.after, events.iter().filter_map(|e| e.name.as_deref()));
                self.error_with_help(
                    "dangling-reference",
                    &path.key("after"),
                    format!("no event named `{}`", rec.after),
                    help,
                );
            }
            self.check_probe(rec.proto, rec.port, &path);
            if let (Some(from), Some(to), Some(via), Some(after)) = (from, to, via, after) {
                expect.recover.push(RecoverM {
                    path,
                    from,
                    to,
                    via,
                    proto: rec.proto,
                    port: rec.port,
                    after: EventId(after as u32),
                    within: rec.within,
                });
            }
        }
        for (i, tp) in file.expect.throughput.iter().enumerate() {
            let path = base.key("throughput").index(i);
            let from = self
                .lookup(&names.hosts, &tp.from, &path.key("from"))
                .map(HostId);
            let to = self
                .lookup(&names.hosts, &tp.to, &path.key("to"))
                .map(HostId);
            let via = self.via(names, tp.via.as_deref(), &path);
            if let (Some(from), Some(to), Some(via)) = (from, to, via) {
                expect.throughput.push(ThroughputM {
                    path,
                    from,
                    to,
                    via,
                    at_least: tp.at_least,
                });
            }
        }
        for (i, st) in file.expect.stream.iter().enumerate() {
            expect
                .stream
                .extend(self.stream(names, st, base.key("stream").index(i)));
        }
        expect
    }

    fn stream(
        &mut self,
        names: &AllNames<'_>,
        st: &crate::format::Stream,
        path: FieldPath,
    ) -> Option<StreamM> {
        let from = self
            .lookup(&names.hosts, &st.from, &path.key("from"))
            .map(HostId);
        let to = self
            .lookup(&names.hosts, &st.to, &path.key("to"))
            .map(HostId);
        if from.is_some() && from == to {
            self.error(
                "invalid-value",
                &path.key("to"),
                "a stream goes to another host than `from`",
            );
        }
        let via = self.via(names, st.via.as_deref(), &path);
        let mut ok = true;
        if let Some(size) = st.size
            && !(STREAM_MIN_SIZE..=STREAM_MAX_SIZE).contains(&size)
        {
            ok = false;
            self.error(
                "invalid-value",
                &path.key("size"),
                format!(
                    "size {size} must be between {STREAM_MIN_SIZE} and {STREAM_MAX_SIZE} bytes of UDP payload"
                ),
            );
        }
        let size_for_rate = st.size.unwrap_or(STREAM_ASSUMED_SIZE);
        let pps = st.rate.bits_per_second() / (u64::from(size_for_rate) * 8).max(1);
        if pps > STREAM_MAX_PPS {
            ok = false;
            self.error(
                "invalid-value",
                &path.key("rate"),
                format!(
                    "rate {} with {size_for_rate}-byte datagrams is {pps} datagrams per second; \
                     the simulator sends each one as an event, at most {STREAM_MAX_PPS} per second: \
                     lower the rate or make the datagrams larger",
                    st.rate
                ),
            );
        }
        if st.port == Some(0) {
            ok = false;
            self.error("invalid-value", &path.key("port"), "port 0 is not a port");
        }
        let max_loss = st.max_loss.unwrap_or(STREAM_DEFAULT_MAX_LOSS);
        if !(0.0..=100.0).contains(&max_loss) {
            ok = false;
            self.error(
                "invalid-value",
                &path.key("max_loss"),
                format!("max_loss {max_loss} must be a percentage between 0 and 100"),
            );
        }
        let (Some(from), Some(to), Some(via), true) = (from, to, via, ok) else {
            return None;
        };
        Some(StreamM {
            path,
            from,
            to,
            via,
            rate: st.rate,
            size: st.size,
            port: st.port.unwrap_or(STREAM_DEFAULT_PORT),
            max_loss,
            max_jitter: st.max_jitter,
            reason: st.reason.clone(),
        })
    }
}

/// Name tables for every kind of thing in a file.
struct AllNames<'a> {
    regions: Names<'a>,
    sites: Names<'a>,
    subnets: Names<'a>,
    hosts: Names<'a>,
    links: Names<'a>,
    ipsec: Names<'a>,
    stars: Names<'a>,
    openvpn: Names<'a>,
    meshes: Names<'a>,
    bonds: Names<'a>,
}

impl<'a> AllNames<'a> {
    fn new(file: &'a ScenarioFile) -> Self {
        AllNames {
            regions: Names::new("region", &file.regions),
            sites: Names::new("site", &file.sites),
            subnets: Names::new("subnet", &file.subnets),
            hosts: Names::new("host", &file.hosts),
            links: Names::new("link", &file.links),
            ipsec: Names::new("IPsec deployment", &file.ipsec),
            stars: Names::new("WireGuard star", &file.wireguard),
            openvpn: Names::new("OpenVPN deployment", &file.openvpn),
            meshes: Names::new("mesh", &file.mesh),
            bonds: Names::new("bond", &file.bond),
        }
    }

    fn overlay_sections(&self) -> impl Iterator<Item = (&'static str, &'a str)> + '_ {
        [
            ("ipsec", &self.ipsec),
            ("wireguard", &self.stars),
            ("openvpn", &self.openvpn),
            ("mesh", &self.meshes),
            ("bond", &self.bonds),
        ]
        .into_iter()
        .flat_map(|(section, names)| names.ids.keys().map(move |n| (section, *n)))
    }

    fn overlay(&self, name: &str) -> Option<OverlayId> {
        let get = |names: &Names<'_>| names.ids.get(name).copied();
        get(&self.ipsec)
            .map(|i| OverlayId::Ipsec(IpsecId(i)))
            .or_else(|| get(&self.stars).map(|i| OverlayId::Star(StarId(i))))
            .or_else(|| get(&self.openvpn).map(|i| OverlayId::OpenVpn(OpenVpnId(i))))
            .or_else(|| get(&self.meshes).map(|i| OverlayId::Mesh(MeshId(i))))
            .or_else(|| get(&self.bonds).map(|i| OverlayId::Bond(BondId(i))))
    }
}

/// Fills the back references from sites to their subnets and hosts.
fn link_sites_to_members(t: &mut Topology) {
    for (i, subnet) in t.subnets.iter().enumerate() {
        if let Some(site) = t.sites.get_mut(subnet.site.index()) {
            site.subnets.push(SubnetId(i as u32));
        }
    }
    for (i, host) in t.hosts.iter().enumerate() {
        if let Some(site) = t.sites.get_mut(host.site.index()) {
            site.hosts.push(HostId(i as u32));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_dns_label_rules() {
        assert!(is_valid_name("vpn-virginia"));
        assert!(is_valid_name("node3"));
        assert!(!is_valid_name("Node"));
        assert!(!is_valid_name("-a"));
        assert!(!is_valid_name("a-"));
        assert!(!is_valid_name(""));
        assert!(!is_valid_name(&"a".repeat(64)));
    }

    #[test]
    fn endpoints_parse() {
        let e = parse_endpoint("node3.example.com:55820").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.host, EndpointHost::Dns("node3.example.com".into()));
        assert_eq!(e.to_string(), "node3.example.com:55820");
        let e = parse_endpoint("[2001:db8::1]:51820").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(e.to_string(), "[2001:db8::1]:51820");
        assert!(parse_endpoint("1.2.3.4").is_err());
        assert!(parse_endpoint("1.2.3.999:5").is_err());
        assert!(parse_endpoint("a:0").is_err());
    }
}

#[cfg(test)]
mod resolve_tests {
    use crate::{LoadError, load_str};

    fn errors(text: &str) -> Vec<String> {
        match load_str("t.toml", text) {
            Ok(_) => Vec::new(),
            Err(LoadError::Invalid { diagnostics, .. }) => diagnostics
                .iter()
                .map(|d| {
                    format!(
                        "{}:{}:{} {} {}",
                        d.line,
                        d.column,
                        d.code,
                        d.field.clone().unwrap_or_default(),
                        d.help.clone().unwrap_or_default()
                    )
                })
                .collect(),
            Err(other) => vec![other.to_string()],
        }
    }

    const HEAD: &str = "[scenario]\nname = \"t\"\nseed = 1\n[sites.s]\nkind = \"home\"\n[hosts.a]\nsite = \"s\"\n[hosts.b]\nsite = \"s\"\n[links.l]\nkind = \"wan\"\n";

    #[test]
    fn every_dangling_reference_is_reported_at_once() {
        let text = format!(
            "{HEAD}[hosts.c]\nsite = \"ss\"\n[[expect.reach]]\nfrom = \"aa\"\nto = \"b\"\n[[expect.recover]]\nfrom = \"a\"\nto = \"b\"\nafter = \"boom\"\nwithin = \"5s\"\n"
        );
        assert_eq!(
            errors(&text),
            [
                "13:1:dangling-reference hosts.c.site did you mean `s`?",
                "15:1:dangling-reference expect.reach[0].from did you mean `a`?",
                "20:1:dangling-reference expect.recover[0].after ",
            ]
        );
    }

    #[test]
    fn a_stream_is_refused_with_every_bad_field_named() {
        let text = format!(
            "{HEAD}[[expect.stream]]\nfrom = \"a\"\nto = \"a\"\nrate = \"1Gbit\"\nsize = 8\nmax_loss = 120\nport = 0\n[[expect.stream]]\nfrom = \"a\"\nto = \"b\"\nrate = \"10Gbit\"\n"
        );
        let found = errors(&text);
        assert_eq!(
            found,
            [
                "14:1:invalid-value expect.stream[0].to ",
                "15:1:invalid-value expect.stream[0].rate ",
                "16:1:invalid-value expect.stream[0].size ",
                "17:1:invalid-value expect.stream[0].max_loss ",
                "18:1:invalid-value expect.stream[0].port ",
                "22:1:invalid-value expect.stream[1].rate ",
            ]
        );
        // A VoIP-like stream loads with the defaults filled in.
        let text =
            format!("{HEAD}[[expect.stream]]\nfrom = \"a\"\nto = \"b\"\nrate = \"64kbit\"\n");
        let scenario = load_str("t.toml", &text).unwrap_or_else(|e| panic!("{e}"));
        let st = &scenario.topology.expect.stream[0];
        assert_eq!((st.port, st.size, st.max_loss), (5201, None, 1.0));
        assert_eq!(st.flow().proto, crate::format::ProbeProto::Udp);
    }

    #[test]
    fn events_need_the_fields_of_their_action() {
        let text = format!(
            "{HEAD}[[events]]\nat = \"1s\"\naction = \"crash\"\n[[events]]\nat = \"2s\"\naction = \"link-down\"\nlink = \"l\"\nhost = \"a\"\n[[events]]\nat = \"1s\"\naction = \"heal\"\n"
        );
        let found = errors(&text);
        assert!(
            found
                .iter()
                .any(|e| e.contains("missing-field events[0].host")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|e| e.contains("invalid-value events[1].host")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|e| e.contains("invalid-value events[2].at")),
            "{found:?}"
        );
    }

    #[test]
    fn duplicate_overlay_names_and_interfaces_are_refused() {
        let text = format!(
            "{HEAD}[mesh.x]\nnetwork_name = \"n\"\ncidr = \"10.42.42.0/24\"\nmembers = [{{ host = \"a\" }}]\n[wireguard.x]\ncidr = \"10.5.4.0/24\"\nhub = \"a\"\nworkers = [\"b\", \"b\"]\n"
        );
        let found = errors(&text);
        assert!(
            found
                .iter()
                .any(|e| e.contains("duplicate-name wireguard.x ")
                    || e.contains("duplicate-name mesh.x ")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|e| e.contains("duplicate-name wireguard.x.workers[1]")),
            "{found:?}"
        );
    }

    #[test]
    fn names_must_be_dns_labels() {
        let text = HEAD.replace("[hosts.b]", "[hosts.Bad_Name]");
        assert!(
            errors(&text)
                .iter()
                .any(|e| e.contains("invalid-name hosts.Bad_Name")),
            "{:?}",
            errors(&text)
        );
    }

    #[test]
    fn a_valid_file_has_no_errors() {
        assert!(errors(HEAD).is_empty());
    }
}

//! The scenario file format: what a user writes, as serde types.
//!
//! Every collection of named things is a TOML table keyed by name
//! (`[hosts.vpn-virginia]`), so names are unique by construction and the
//! file reads like an inventory. References between things are by name and
//! are resolved (with "did you mean" hints) in [`crate::model`].
//!
//! Every struct denies unknown fields: a misspelt key must never be ignored
//! silently, because an ignored `persistent_keepalive` is a production
//! outage that no test would show. Doc comments here become the JSON Schema
//! descriptions that editors show, so they are written for users.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::units::{Bandwidth, Duration, Listener, Mac, Proto};

fn is_false(b: &bool) -> bool {
    !*b
}
fn is_true(b: &bool) -> bool {
    *b
}
fn yes() -> bool {
    true
}

/// One deployment: sites, hosts, links, overlays, policy, expectations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScenarioFile {
    /// Name, seed and description of the scenario.
    pub scenario: Meta,
    /// Geographic or provider regions (e.g. AWS `us-east-1`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub regions: BTreeMap<String, Region>,
    /// Sites: cloud VPCs, data centres, homes, roaming machines.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sites: BTreeMap<String, Site>,
    /// Subnets inside sites, each an L2 segment behind the site router.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subnets: BTreeMap<String, Subnet>,
    /// Hosts (machines, VMs, instances) with their interfaces and routes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, Host>,
    /// Underlay links: the public internet, ISP paths, leased lines.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, Link>,
    /// IPsec site-to-site deployments (ESP tunnel mode between gateways).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ipsec: BTreeMap<String, Ipsec>,
    /// WireGuard stars: the hub (cluster leader) peers with every worker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub wireguard: BTreeMap<String, WireguardStar>,
    /// eduVPN-style OpenVPN deployments: a controller and OpenVPN nodes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub openvpn: BTreeMap<String, OpenVpnDeployment>,
    /// L2 management meshes like PeerVPN.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mesh: BTreeMap<String, Mesh>,
    /// Two hosts joined by OpenVPN TAP links enslaved into one bond.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub bond: BTreeMap<String, Bond>,
    /// Firewall intent per host (keyed by host name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub firewall: BTreeMap<String, Firewall>,
    /// DNS records (keyed by fully qualified name), e.g. round-robin names.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dns: BTreeMap<String, DnsRecord>,
    /// What must hold: reachability, isolation, recovery, throughput.
    #[serde(default, skip_serializing_if = "Expectations::is_empty")]
    pub expect: Expectations,
    /// Timeline of faults and procedures, in order of `at`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
}

/// Identity of the scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Short name; also seeds derived values such as ULA prefixes.
    pub name: String,
    /// Seed for every random choice (simulation, demo keys, allocation ties).
    pub seed: u64,
    /// What the scenario rehearses.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Where the facts come from (a document, a ticket).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// First day generated certificates are valid (`YYYY-MM-DD`); never the clock.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    /// Last day generated certificates are valid (`YYYY-MM-DD`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
}

/// A region: where sites are.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Human name, e.g. "US East (N. Virginia)".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Provider, e.g. "aws"; informational.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
}

/// What kind of place a site is; decides its implicit router behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SiteKind {
    /// A cloud VPC: an implicit router joins its subnets and applies `routes`
    /// (the VPC route table); instances have source/dest checks.
    CloudVpc,
    /// A data centre or office network behind a router.
    Datacenter,
    /// A home network behind a consumer router.
    Home,
    /// A machine that moves between networks (no fixed address).
    Roaming,
}

/// Whether a site's addresses are meant to be private or are assigned public space.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum AddressSpace {
    /// Meant to be private: should be RFC 1918, RFC 6598, ULA or documentation space.
    #[default]
    Private,
    /// Assigned public space, routed on the internet (e.g. a data centre /26).
    Public,
}

/// A site: a VPC, a data centre, a home, a roaming machine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Site {
    /// Region name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Kind of site.
    pub kind: SiteKind,
    /// Human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    /// Address ranges of the site (the VPC CIDRs); subnets must lie inside.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cidrs: Vec<IpNet>,
    /// Whether `cidrs` are private or assigned public space.
    #[serde(default, skip_serializing_if = "is_default_space")]
    pub address_space: AddressSpace,
    /// The underlay link the site's internet gateway attaches to; hosts with a
    /// `public_address` are reachable on it through 1:1 NAT (elastic IPs).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<String>,
    /// Public IPv4 address of the site router on the uplink. Hosts without a
    /// public address of their own leave masqueraded behind it (a home
    /// router, a NAT gateway); nothing can dial in to them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nat_address: Option<Ipv4Addr>,
    /// Route table of the site router (e.g. a VPC main route table).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<SiteRoute>,
}

fn is_default_space(s: &AddressSpace) -> bool {
    *s == AddressSpace::Private
}

/// A route-table entry: traffic to `to` goes to the instance `via`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SiteRoute {
    /// Destination CIDR.
    pub to: IpNet,
    /// Host (instance) that receives the traffic, e.g. the VPN server.
    pub via: String,
}

/// A subnet: one L2 segment inside a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    /// Site the subnet belongs to.
    pub site: String,
    /// IPv4 (or IPv6) prefix.
    pub cidr: IpNet,
    /// Optional second (IPv6) prefix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr6: Option<IpNet>,
    /// Availability zone, e.g. "ap-southeast-2a".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    /// What lives here, e.g. "fns" or "epss".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose: Option<String>,
    /// MTU of the segment.
    #[serde(default = "default_mtu", skip_serializing_if = "is_default_mtu")]
    pub mtu: u32,
}

fn default_mtu() -> u32 {
    1500
}
fn is_default_mtu(m: &u32) -> bool {
    *m == 1500
}

/// Roles a host plays; several may apply.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Routes between a site and the VPN (VPN server, IPsec gateway).
    Gateway,
    /// Hub of a star (the WireGuard cluster leader, the IPsec hub).
    Hub,
    /// Spoke or worker of a star.
    Spoke,
    /// eduVPN controller (portal, API, CA).
    Controller,
    /// OpenVPN node of a multi-node deployment.
    Node,
    /// Roaming peer (laptop, road warrior).
    RoamingPeer,
    /// A VPN client.
    Client,
    /// An application host that only uses the network.
    Application,
}

/// A host: a machine with interfaces.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// Site the host lives in.
    pub site: String,
    /// Roles (gateway, hub, spoke, controller, node, roaming-peer, client, application).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<Role>,
    /// What the host is, e.g. "OpenAperture build server".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `net.ipv4.ip_forward` / `net.ipv6.conf.all.forwarding`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub forwarding: bool,
    /// Cloud source/destination check: when on, the instance drops traffic not
    /// addressed to or from itself (AWS default: on).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub source_dest_check: bool,
    /// Public IPv4 address (elastic IP or address on a public link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_address: Option<Ipv4Addr>,
    /// Public IPv6 address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_address6: Option<Ipv6Addr>,
    /// DNS name of the host, e.g. "node-a.frkovpn.tuxed.net".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns_name: Option<String>,
    /// Network interfaces.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Static routes beyond connected networks and overlays.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// Services listening on the host besides the VPN daemons (ssh, https).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<Service>,
}

/// An interface attached to a subnet or an underlay link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    /// Interface name, e.g. "eth0".
    pub name: String,
    /// Subnet the interface sits in (exclusive with `link`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    /// Underlay link the interface attaches to (exclusive with `subnet`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// IPv4 (or IPv6) address; allocated from the subnet when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// Second (IPv6) address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Addr>,
    /// Pinned MAC address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac: Option<Mac>,
    /// Interface MTU; defaults to the segment's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
}

/// A static route on a host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Route {
    /// Destination prefix.
    pub to: IpNet,
    /// Next-hop address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<IpAddr>,
    /// Outgoing interface (for routes into a tunnel device).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
}

/// A listening service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Service name, e.g. "sshd".
    pub name: String,
    /// Where it listens, e.g. "tcp/22".
    pub listen: Listener,
    /// Address it binds; all addresses when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
}

/// What an underlay link is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum LinkKind {
    /// A routed public network (the internet, an ISP): every attached public
    /// address reaches every other.
    Wan,
    /// A shared L2 segment (switch, leased line) with its own prefix.
    Lan,
}

/// An underlay link with its impairments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// Kind of link.
    pub kind: LinkKind,
    /// Prefix of a LAN link (required for `lan`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cidr: Option<IpNet>,
    /// One-way latency.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency: Option<Duration>,
    /// Jitter added to the latency (uniform ±).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter: Option<Duration>,
    /// Packet loss in percent (0–100).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// Bandwidth of the bottleneck.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bandwidth: Option<Bandwidth>,
    /// Path MTU.
    #[serde(default = "default_mtu", skip_serializing_if = "is_default_mtu")]
    pub mtu: u32,
}

/// Which IPsec implementation the gateways run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IpsecDaemon {
    /// Libreswan (the maintained OpenSwan fork): ipsec.conf + ipsec.d/.
    Libreswan,
    /// strongSwan: swanctl.conf.
    Strongswan,
}

/// How the gateways authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IpsecAuth {
    /// A pre-shared key per tunnel (generated, kept in the key store).
    Psk,
    /// X.509 certificates from the deployment's CA.
    Cert,
}

/// Which tunnels an IPsec deployment builds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IpsecLayout {
    /// One tunnel from `hub` to every spoke; spokes do not talk to each other.
    HubAndSpoke,
    /// A tunnel between every pair of `gateways`.
    FullMesh,
}

/// What the daemon does with a tunnel at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum IpsecAuto {
    /// Bring the tunnel up at start and keep it up.
    #[default]
    Start,
    /// Load it; it comes up when the peer initiates.
    Add,
    /// Bring it up when traffic matches the selectors.
    Ondemand,
}

/// An IPsec site-to-site deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Ipsec {
    /// Implementation on the gateways.
    pub daemon: IpsecDaemon,
    /// Authentication.
    pub auth: IpsecAuth,
    /// Tunnel layout.
    pub layout: IpsecLayout,
    /// Hub gateway (hub-and-spoke only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<String>,
    /// Spokes (hub-and-spoke) or members (full-mesh).
    pub gateways: Vec<String>,
    /// Traffic selectors per gateway (leftsubnet/rightsubnet); defaults to the
    /// gateway's site CIDRs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subnets: BTreeMap<String, Vec<IpNet>>,
    /// IKE version (1 as OpenSwan did by default, or 2).
    #[serde(default = "default_ike", skip_serializing_if = "is_default_ike")]
    pub ike_version: u8,
    /// Perfect forward secrecy for child SAs.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub pfs: bool,
    /// Start behaviour.
    #[serde(default, skip_serializing_if = "is_default_auto")]
    pub auto: IpsecAuto,
    /// Dead peer detection interval.
    #[serde(default = "default_dpd_delay")]
    pub dpd_delay: Duration,
    /// Dead peer detection timeout before the peer is declared dead.
    #[serde(default = "default_dpd_timeout")]
    pub dpd_timeout: Duration,
    /// Use NAT traversal (UDP 4500), needed behind 1:1 NAT such as elastic IPs.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub nat_traversal: bool,
}

fn default_ike() -> u8 {
    2
}
fn is_default_ike(v: &u8) -> bool {
    *v == 2
}
fn is_default_auto(a: &IpsecAuto) -> bool {
    *a == IpsecAuto::Start
}
fn default_dpd_delay() -> Duration {
    Duration::from_secs(30)
}
fn default_dpd_timeout() -> Duration {
    Duration::from_secs(120)
}

/// A WireGuard star: `hub` peers with every worker; workers peer only with the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct WireguardStar {
    /// Interface name on every member.
    #[serde(default = "default_wg_interface")]
    pub interface: String,
    /// Overlay prefix.
    pub cidr: IpNet,
    /// UDP listen port on every member.
    #[serde(default = "default_wg_port")]
    pub port: u16,
    /// The hub (cluster leader).
    pub hub: String,
    /// Workers.
    pub workers: Vec<String>,
    /// Overlay addresses; members left out are allocated in order (hub first).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub addresses: BTreeMap<String, IpAddr>,
    /// Reachable endpoints (`address:port` or `dns-name:port`). The hub needs
    /// one; a worker with one can be promoted to leader.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub endpoints: BTreeMap<String, String>,
    /// Extra AllowedIPs per member beyond its overlay address (routed subnets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub allowed_ips: BTreeMap<String, Vec<IpNet>>,
    /// PersistentKeepalive on every worker's hub peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persistent_keepalive: Option<Duration>,
    /// Tunnel MTU; 1420 (IPv4 underlay) when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mtu: Option<u32>,
    /// Add a PresharedKey per peer pair (post-quantum hedge).
    #[serde(default, skip_serializing_if = "is_false")]
    pub preshared_keys: bool,
}

fn default_wg_interface() -> String {
    "wg0".into()
}
fn default_wg_port() -> u16 {
    51820
}

/// An eduVPN-style deployment: one controller, OpenVPN nodes, profiles.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct OpenVpnDeployment {
    /// The controller (portal, API, CA).
    pub controller: String,
    /// Nodes talk to the controller through vpn-daemon (`useVpnDaemon`).
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub use_vpn_daemon: bool,
    /// TCP port of vpn-daemon on every node; only the controller may reach it.
    #[serde(default = "default_daemon_port")]
    pub vpn_daemon_port: u16,
    /// Management mesh the controller reaches the nodes over (PeerVPN), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_mesh: Option<String>,
    /// All profiles share one tls-crypt key (`ta.key`), required when profiles
    /// are merged behind one round-robin name.
    #[serde(default, skip_serializing_if = "is_false")]
    pub shared_tls_crypt: bool,
    /// Profiles keyed by profile id (e.g. "node-a", "europe").
    pub profiles: BTreeMap<String, Profile>,
    /// VPN clients and the profile each uses.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub clients: Vec<VpnClient>,
}

fn default_daemon_port() -> u16 {
    41194
}

/// Which address families a profile NATs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum NatFamily {
    IPv4,
    IPv6,
}

/// A VPN profile served by one node (eduVPN `vpnProfiles` entry).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// `profileNumber`: unique per deployment; selects ports and tun devices.
    pub profile_number: u32,
    /// `displayName` shown in the portal.
    pub display_name: String,
    /// Host that runs this profile's OpenVPN processes.
    pub node: String,
    /// `hostName` clients connect to (a round-robin name when profiles merge).
    pub host_name: String,
    /// `range`: IPv4 client pool; allocated (a free /24 in 10.0.0.0/8) when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range: Option<IpNet>,
    /// `range6`: IPv6 client pool; a /64 of the scenario's ULA /48 when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub range6: Option<IpNet>,
    /// `managementIp`: where the controller reaches the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub management_ip: Option<IpAddr>,
    /// `listen`: address OpenVPN binds; all when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub listen: Option<IpAddr>,
    /// OpenVPN listeners; `["udp/1194", "tcp/1194"]` when left out.
    #[serde(default = "default_listeners")]
    pub listeners: Vec<Listener>,
    /// `useProxy`: share tcp/443 with the web server through sniproxy.
    #[serde(default, skip_serializing_if = "is_false")]
    pub use_proxy: bool,
    /// `hideProfile`: not shown in the portal (merged behind another).
    #[serde(default, skip_serializing_if = "is_false")]
    pub hide_profile: bool,
    /// `defaultGateway`: clients send all traffic through the VPN.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub default_gateway: bool,
    /// `dns`: resolvers pushed to clients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<IpAddr>,
    /// `extIf`: the node's interface to the internet.
    #[serde(default = "default_ext_if")]
    pub ext_if: String,
    /// `enableNat`: families NATed to the node's public address.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nat: Vec<NatFamily>,
    /// OpenVPN `keepalive` interval: the server pushes `ping` to clients.
    #[serde(default = "default_ping")]
    pub ping: Duration,
    /// OpenVPN `keepalive` timeout: a client restarts (and re-resolves
    /// `host_name`) after this long without traffic from the node.
    #[serde(default = "default_ping_restart")]
    pub ping_restart: Duration,
}

fn default_listeners() -> Vec<Listener> {
    vec![
        Listener {
            proto: Proto::Udp,
            port: 1194,
        },
        Listener {
            proto: Proto::Tcp,
            port: 1194,
        },
    ]
}
fn default_ext_if() -> String {
    "eth0".into()
}

/// A client using a profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VpnClient {
    /// Client host.
    pub host: String,
    /// Profile id it downloaded.
    pub profile: String,
}

/// An L2 mesh (PeerVPN): members share one Ethernet segment over UDP.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Mesh {
    /// `networkname`.
    pub network_name: String,
    /// Prefix of the mesh segment.
    pub cidr: IpNet,
    /// UDP port members listen on.
    #[serde(default = "default_mesh_port")]
    pub port: u16,
    /// Name of the TAP device on every member.
    #[serde(default = "default_mesh_interface")]
    pub interface: String,
    /// Members with their mesh address and the peers they dial first.
    pub members: Vec<MeshMember>,
}

fn default_mesh_port() -> u16 {
    7000
}
fn default_mesh_interface() -> String {
    "peervpn0".into()
}

/// One mesh member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MeshMember {
    /// Member host.
    pub host: String,
    /// Address on the mesh (`ifconfig4`); allocated when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// Hosts this member dials at start (`initpeers`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub init_peers: Vec<String>,
}

/// Linux bonding mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BondMode {
    /// One slave carries traffic; another takes over when it fails.
    ActiveBackup,
    /// Adaptive load balancing: both slaves carry traffic, no switch support needed.
    BalanceAlb,
}

/// Two hosts joined by OpenVPN TAP links enslaved into one bond on each side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bond {
    /// The two hosts.
    pub hosts: Vec<String>,
    /// Bond interface name.
    #[serde(default = "default_bond_interface")]
    pub interface: String,
    /// Bonding mode.
    pub mode: BondMode,
    /// Address with prefix of each host on the bond, e.g. "10.0.0.1/24".
    pub addresses: BTreeMap<String, IpNet>,
    /// Pinned bond MAC per host; derived from the seed when left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub macs: BTreeMap<String, Mac>,
    /// MII link monitoring interval.
    #[serde(default = "default_miimon")]
    pub miimon: Duration,
    /// Delay in the route-up script before enslaving (the `sleep 10`).
    #[serde(default = "default_enslave_delay")]
    pub enslave_delay: Duration,
    /// Bond MTU.
    #[serde(default = "default_mtu", skip_serializing_if = "is_default_mtu")]
    pub mtu: u32,
    /// The TAP links.
    pub links: Vec<TapLink>,
    /// monit watchdog restarting a link whose peer stops answering ping.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor: Option<Monitor>,
}

fn default_bond_interface() -> String {
    "bond0".into()
}
fn default_miimon() -> Duration {
    Duration::from_millis(100)
}
fn default_enslave_delay() -> Duration {
    Duration::from_secs(10)
}

/// One OpenVPN TAP link of a bond; `client` dials `server`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TapLink {
    /// Interface name on both hosts, e.g. "ovn0".
    pub name: String,
    /// Host that dials.
    pub client: String,
    /// Host that listens.
    pub server: String,
    /// Underlay link the connection runs over.
    pub via: String,
    /// Where the server listens.
    #[serde(default = "default_tap_listener")]
    pub listen: Listener,
    /// Pinned MAC of the TAP device per host; derived when left out.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub macs: BTreeMap<String, Mac>,
    /// OpenVPN `ping` interval.
    #[serde(default = "default_ping")]
    pub ping: Duration,
    /// OpenVPN `ping-restart` timeout.
    #[serde(default = "default_ping_restart")]
    pub ping_restart: Duration,
}

fn default_tap_listener() -> Listener {
    Listener {
        proto: Proto::Udp,
        port: 1194,
    }
}
fn default_ping() -> Duration {
    Duration::from_secs(10)
}
fn default_ping_restart() -> Duration {
    Duration::from_secs(60)
}

/// monit host check: `if failed icmp type echo count N with timeout T then restart`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Monitor {
    /// monit poll cycle.
    #[serde(default = "default_monit_cycle")]
    pub interval: Duration,
    /// Echo requests per check.
    #[serde(default = "default_monit_count")]
    pub count: u32,
    /// Timeout of one check.
    #[serde(default = "default_monit_timeout")]
    pub timeout: Duration,
}

fn default_monit_cycle() -> Duration {
    Duration::from_secs(30)
}
fn default_monit_count() -> u32 {
    5
}
fn default_monit_timeout() -> Duration {
    Duration::from_secs(15)
}

/// What a firewall does with traffic no rule allows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Policy {
    /// Let it in (no firewall).
    #[default]
    Accept,
    /// Drop silently.
    Drop,
    /// Reject with ICMP prohibited.
    Reject,
}

/// Firewall intent for one host (keyed by host name).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Firewall {
    /// What happens to inbound traffic that no rule allows.
    #[serde(default)]
    pub input_policy: Policy,
    /// What happens to forwarded traffic that no rule allows.
    #[serde(default)]
    pub forward_policy: Policy,
    /// Interfaces whose traffic is trusted entirely (e.g. "tap+" for the mesh).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trusted_interfaces: Vec<String>,
    /// Inbound allow rules.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<AllowRule>,
    /// Forwarding allowed between interface pairs when `forward_policy` is not
    /// accept (e.g. `tun+` → `eth0` and back for VPN clients).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<ForwardRule>,
}

/// Forwarding from one interface to another (iptables `-i`/`-o` patterns).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ForwardRule {
    /// Incoming interface; a trailing `+` matches a prefix (`tun+`).
    pub in_interface: String,
    /// Outgoing interface; a trailing `+` matches a prefix.
    pub out_interface: String,
}

/// Who may reach which ports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AllowRule {
    /// Sources: host names, CIDRs, or "any".
    pub from: Vec<String>,
    /// Protocol: "tcp", "udp", "icmp" or "any".
    pub proto: String,
    /// Destination ports (tcp/udp only; all when left out).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<u16>,
}

/// DNS records for one name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DnsRecord {
    /// A records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub a: Vec<Ipv4Addr>,
    /// AAAA records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aaaa: Vec<Ipv6Addr>,
    /// Hosts whose public addresses become A/AAAA records.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hosts: Vec<String>,
    /// Record TTL in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl: Option<u32>,
}

/// Expectations grouped by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Expectations {
    /// `from` can reach `to`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reach: Vec<Flow>,
    /// `from` cannot reach `to`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub isolated: Vec<Flow>,
    /// After the event `after`, reach from `from` to `to` returns within `within`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recover: Vec<Recover>,
    /// A TCP transfer from `from` to `to` achieves at least `at_least`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub throughput: Vec<Throughput>,
    /// A constant-bitrate UDP stream from `from` to `to` arrives with at
    /// most `max_loss` percent lost (and `max_jitter` jitter).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stream: Vec<Stream>,
}

impl Expectations {
    pub fn is_empty(&self) -> bool {
        self.reach.is_empty()
            && self.isolated.is_empty()
            && self.recover.is_empty()
            && self.throughput.is_empty()
            && self.stream.is_empty()
    }
}

/// Protocol of a probe.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ProbeProto {
    /// ICMP echo.
    #[default]
    Icmp,
    /// TCP connect to `port`.
    Tcp,
    /// UDP to `port`.
    Udp,
}

/// A flow between two hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// Source host.
    pub from: String,
    /// Destination host.
    pub to: String,
    /// Use the destination's address on this overlay (a WireGuard star, a
    /// mesh, a bond, or an OpenVPN deployment); its first interface address
    /// when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Probe protocol.
    #[serde(default, skip_serializing_if = "is_default_probe")]
    pub proto: ProbeProto,
    /// Destination port (tcp/udp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Why this must hold; shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

fn is_default_probe(p: &ProbeProto) -> bool {
    *p == ProbeProto::Icmp
}

/// Recovery after an event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Recover {
    /// Source host.
    pub from: String,
    /// Destination host.
    pub to: String,
    /// Overlay whose address of `to` is probed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Probe protocol.
    #[serde(default, skip_serializing_if = "is_default_probe")]
    pub proto: ProbeProto,
    /// Destination port (tcp/udp).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Name of the event after which reach must return.
    pub after: String,
    /// Deadline, counted from the event.
    pub within: Duration,
}

/// Throughput between two hosts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Throughput {
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// Overlay whose address of `to` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Minimum rate.
    pub at_least: Bandwidth,
}

/// A constant-bitrate UDP stream (a call, a video feed, `iperf3 -u -b`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// Sender.
    pub from: String,
    /// Receiver.
    pub to: String,
    /// Overlay whose address of `to` is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// Offered load: the sender's constant bitrate (UDP payload bits).
    pub rate: Bandwidth,
    /// UDP payload bytes per datagram (16-65507); default: the largest
    /// that fits the sender's route MTU unfragmented, as iperf3 does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u32>,
    /// Destination UDP port; default 5201 (iperf3's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Most datagrams lost in the steady state, percent; default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_loss: Option<f64>,
    /// Largest interarrival jitter (RFC 3550) in the steady state; not
    /// judged when left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_jitter: Option<Duration>,
    /// Why this must hold; shown in reports.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What an event does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Action {
    /// Take `link` down (or one host interface with `host` + `interface`).
    LinkDown,
    /// Bring `link` back up.
    LinkUp,
    /// `host` crashes: all its processes stop, state is lost.
    Crash,
    /// `host` boots again and starts its daemons.
    Restart,
    /// Split hosts into `groups` that cannot reach each other (`one_way` for A→B only).
    Partition,
    /// Undo every partition.
    Heal,
    /// Loss of `loss` percent on `link` for `duration`.
    LossBurst,
    /// `host` stops its VPN daemons cleanly (clients are told to reconnect);
    /// the machine stays up, as in a maintenance window.
    Stop,
    /// `host` starts its VPN daemons again after `stop`.
    Start,
    /// `host` gets a new underlay `address` (roaming).
    EndpointChange,
    /// Promote `host` to leader of WireGuard star `star` by `procedure`.
    Promote,
}

/// Which promotion procedure runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Procedure {
    /// The old leader is alive and tells every node to switch (`promote-node`).
    AliveLeader,
    /// The old leader is dead: `switch-leader` runs on every worker.
    DeadLeader,
}

/// One timeline entry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Name that expectations refer to (`after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When, from the start of the run.
    pub at: Duration,
    /// What happens.
    pub action: Action,
    /// Host affected (crash, restart, endpoint-change, promote, link-down of one interface).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Interface of `host` (link-down/link-up of one interface).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// Underlay link affected (link-down, link-up, loss-burst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link: Option<String>,
    /// Groups of hosts (partition).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub groups: Vec<Vec<String>>,
    /// Partition only the first group's traffic towards the others.
    #[serde(default, skip_serializing_if = "is_false")]
    pub one_way: bool,
    /// Loss in percent (loss-burst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
    /// How long (loss-burst).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<Duration>,
    /// New underlay address (endpoint-change).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<IpAddr>,
    /// WireGuard star (promote).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub star: Option<String>,
    /// Promotion procedure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure: Option<Procedure>,
}

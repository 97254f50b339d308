//! Building the network: the physical layer from the scenario topology
//! (segments, interfaces with their underlay addresses, site routers with
//! elastic-IP 1:1 NAT and masquerade, connected and default routes), and
//! each host's software from its rendered files parsed back (sysctl
//! forwarding, iptables rules, wg-quick tunnels), re-read on restart.
//! Promotion scripts are run here too (`wg set`, `wg syncconf`,
//! `wg-quick strip`/`save`; see [`run_script`]).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use vpnsim_render::Format;
use vpnsim_render::iptables::{Family, Ruleset};
use vpnsim_render::script::{Script, Step};
use vpnsim_render::sysctl::SysctlConf;
use vpnsim_render::tree::FileSet;
use vpnsim_render::wgquick::{self, WgQuickConf};
use vpnsim_render::zone::{self, Zone};
use vpnsim_topology::Scenario;
use vpnsim_topology::format::{LinkKind, SiteKind};
use vpnsim_topology::model::{HostId, Segment as SegRef};
use vpnsim_topology::units::Proto;

use crate::SimError;
use crate::host::{Engine, Iface, IfaceKind, Node, Route, SiteRouter, Tunnel};
use crate::net::Segment;
use crate::time::Span;
use crate::world::World;

/// Sysctl file the renderer writes.
pub const SYSCTL_PATH: &str = "etc/sysctl.d/90-vpnsim.conf";
pub const RULES_V4_PATH: &str = "etc/iptables/rules.v4";
pub const RULES_V6_PATH: &str = "etc/iptables/rules.v6";
pub const WIREGUARD_DIR: &str = "etc/wireguard/";
pub const SCRIPT_DIR: &str = "usr/local/sbin/";
/// vpn-daemon's environment file (eduVPN): `LISTEN=[addr]:port`.
pub const VPN_DAEMON_PATH: &str = "etc/sysconfig/vpn-daemon";
/// `Tunnel::kind` of an OpenVPN TAP point-to-point link (a bond slave).
pub const KIND_TAP: &str = "openvpn-tap";
/// OpenVPN's default tun MTU (`tun-mtu 1500`).
pub const OPENVPN_TUN_MTU: u32 = 1500;
/// wg-quick's default MTU for an IPv4 underlay of 1500 (1500 - 80).
pub const WG_DEFAULT_MTU: u32 = 1420;
/// Latency of a site subnet (a switched LAN).
pub const SUBNET_LATENCY: Span = Span::micros(50);

/// One underlay or overlay address of a host (what the plan says).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddressEntry {
    pub host: HostId,
    pub interface: String,
    pub address: IpAddr,
    pub prefix_len: u8,
}

/// Every address of every host, as planned: `vpnsim_plan::Plan::addresses`
/// mapped one to one (`host`, `interface`, `address`, `prefix_len`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Addressing {
    pub entries: Vec<AddressEntry>,
}

impl From<&vpnsim_plan::Plan> for Addressing {
    fn from(plan: &vpnsim_plan::Plan) -> Self {
        Addressing {
            entries: plan
                .addresses
                .iter()
                .map(|a| AddressEntry {
                    host: a.host,
                    interface: a.interface.clone(),
                    address: a.address,
                    prefix_len: a.prefix_len,
                })
                .collect(),
        }
    }
}

impl Addressing {
    pub fn on(&self, host: HostId, interface: &str) -> impl Iterator<Item = &AddressEntry> {
        let interface = interface.to_string();
        self.entries
            .iter()
            .filter(move |e| e.host == host && e.interface == interface)
    }
}

/// The files of one host the simulator reads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostFiles {
    pub host: String,
    pub sysctl: Option<String>,
    pub rules4: Option<String>,
    pub rules6: Option<String>,
    /// Interface name → wg-quick file text.
    pub wireguard: BTreeMap<String, String>,
    /// Path → script text (promotion procedures).
    pub scripts: BTreeMap<String, String>,
    /// Libreswan: `etc/ipsec.conf` and `etc/ipsec.d/*.conf`, path → text.
    pub ipsec_conns: BTreeMap<String, String>,
    /// Libreswan: `etc/ipsec.secrets` and `etc/ipsec.d/*.secrets`.
    pub ipsec_secrets: BTreeMap<String, String>,
    /// OpenVPN configs: `etc/openvpn/server/*.conf`, `etc/openvpn/client/*.conf`.
    pub openvpn: BTreeMap<String, String>,
    /// PeerVPN: `etc/peervpn/*.conf`, path → text.
    pub peervpn: BTreeMap<String, String>,
    /// monit control files in the order monit reads them: the main file
    /// (`etc/monit/monitrc`, or `etc/monitrc`), then the files Debian's
    /// monitrc includes (`etc/monit/conf.d/*`, `etc/monit/conf-enabled/*`)
    /// in name order. (path, text).
    pub monit: Vec<(String, String)>,
    /// Every file of the host, for configs that name other files (`ca /etc/...`).
    pub all: BTreeMap<String, String>,
    /// TCP ports daemons listen on, from their files (vpn-daemon's `LISTEN`).
    pub tcp_listen: Vec<(Option<IpAddr>, u16)>,
    /// Resolver view: name → addresses, from the zone files of the tree.
    pub dns: BTreeMap<String, Vec<IpAddr>>,
}

impl HostFiles {
    pub fn from_set(files: &FileSet, host: &str, dns: &BTreeMap<String, Vec<IpAddr>>) -> HostFiles {
        let get = |path: &str| files.get(host, path).map(|f| f.contents.clone());
        let mut out = HostFiles {
            host: host.to_string(),
            sysctl: get(SYSCTL_PATH),
            rules4: get(RULES_V4_PATH),
            rules6: get(RULES_V6_PATH),
            dns: dns.clone(),
            ..HostFiles::default()
        };
        for f in files.host_files(host) {
            out.all.insert(f.path.clone(), f.contents.clone());
            if let Some(name) = f
                .path
                .strip_prefix(WIREGUARD_DIR)
                .and_then(|n| n.strip_suffix(".conf"))
                && !name.contains('/')
            {
                out.wireguard.insert(name.to_string(), f.contents.clone());
            } else if f.path.starts_with(SCRIPT_DIR) {
                out.scripts.insert(f.path.clone(), f.contents.clone());
            } else if f.path == "etc/ipsec.conf"
                || (f.path.starts_with("etc/ipsec.d/") && f.path.ends_with(".conf"))
            {
                out.ipsec_conns.insert(f.path.clone(), f.contents.clone());
            } else if f.path == "etc/ipsec.secrets"
                || (f.path.starts_with("etc/ipsec.d/") && f.path.ends_with(".secrets"))
            {
                out.ipsec_secrets.insert(f.path.clone(), f.contents.clone());
            } else if f.path.starts_with("etc/openvpn/")
                && f.path.ends_with(".conf")
                && (f.path.matches('/').count() == 2
                    || ((f.path.starts_with("etc/openvpn/server/")
                        || f.path.starts_with("etc/openvpn/client/"))
                        && f.path.matches('/').count() == 3))
            {
                out.openvpn.insert(f.path.clone(), f.contents.clone());
            } else if f.path.starts_with("etc/peervpn/")
                && f.path.ends_with(".conf")
                && f.path.matches('/').count() == 2
            {
                out.peervpn.insert(f.path.clone(), f.contents.clone());
            } else if f.path == VPN_DAEMON_PATH {
                out.tcp_listen.extend(env_listen(&f.contents));
            }
        }
        // monit: the main file first, then the included directories.
        let main = ["etc/monit/monitrc", "etc/monitrc"]
            .into_iter()
            .find(|p| out.all.contains_key(*p));
        for (path, text) in &out.all {
            let included = ["etc/monit/conf.d/", "etc/monit/conf-enabled/"]
                .iter()
                .any(|d| path.strip_prefix(d).is_some_and(|n| !n.contains('/')));
            if Some(path.as_str()) == main || included {
                out.monit.push((path.clone(), text.clone()));
            }
        }
        out.monit
            .sort_by_key(|(p, _)| (Some(p.as_str()) != main, p.clone()));
        out
    }
}

/// `LISTEN=:41194` or `LISTEN=10.0.0.1:41194` lines of an environment file.
fn env_listen(text: &str) -> Vec<(Option<IpAddr>, u16)> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("LISTEN="))
        .filter_map(|v| {
            let v = v.trim().trim_matches('"');
            let (host, port) = v.rsplit_once(':')?;
            let port = port.parse().ok()?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            Some((host.parse().ok(), port))
        })
        .collect()
}

/// The bonds of a host: `etc/network/interfaces.d/*` stanzas with a bond,
/// with the route-up / route-pre-down scripts its TAP links' configs name.
fn bond_models(
    files: &HostFiles,
    openvpn: &[(String, Vec<IpNet>, Engine, bool)],
) -> Result<Vec<(String, crate::proto::bond::Bond)>, SimError> {
    let host = files.host.as_str();
    let scripts = openvpn.iter().find_map(|(_, _, e, _)| {
        let s = match e {
            Engine::OpenVpnClient(c) => c.scripts(),
            Engine::OpenVpnServer(s) => s.scripts(),
            _ => return None,
        };
        (s.route_up.is_some() || s.route_pre_down.is_some()).then(|| s.clone())
    });
    let text_of = |p: &Option<String>| {
        p.as_ref()
            .and_then(|p| files.all.get(p.trim_start_matches('/')))
    };
    let (up, down) = match &scripts {
        Some(s) => (text_of(&s.route_up), text_of(&s.route_pre_down)),
        None => (None, None),
    };
    let mut out = Vec::new();
    for (path, text) in files
        .all
        .iter()
        .filter(|(p, _)| p.starts_with("etc/network/interfaces.d/"))
    {
        let name = path.rsplit('/').next().unwrap_or_default();
        if !text.lines().any(|l| {
            l.trim_start().starts_with("bond-mode") || l.trim_start().starts_with("bond_mode")
        }) {
            continue;
        }
        let bond = crate::proto::bond::Bond::from_texts(
            text,
            name,
            up.map(String::as_str),
            down.map(String::as_str),
        )
        .map_err(|e| file_err(host, path, e.0))?;
        out.push((name.to_string(), bond));
    }
    Ok(out)
}

type OpenVpnModels = (Vec<(String, Vec<IpNet>, Engine, bool)>, Vec<String>);

/// The device an OpenVPN config opens: `dev NAME`; a bare `tun` or `tap`
/// is the first free one, `tun0` / `tap0` (the default is `tun`).
pub fn openvpn_dev(cfg: &vpnsim_render::openvpn::Config) -> String {
    let dev = cfg
        .get("dev")
        .and_then(|d| d.arg(0))
        .unwrap_or("tun")
        .to_string();
    if dev == "tun" || dev == "tap" {
        format!("{dev}0")
    } else {
        dev
    }
}

/// A fresh OpenVPN process for the config at `path` of the host (what
/// `systemctl start` runs): its device name and model, as
/// [`apply_files`] builds them. `None` when the config is not one the
/// simulator runs.
pub fn openvpn_process(
    w: &World,
    node: usize,
    files: &HostFiles,
    path: &str,
) -> Result<Option<(String, Engine)>, SimError> {
    let mut one = files.clone();
    one.openvpn.retain(|p, _| p == path);
    let (mut models, _) = openvpn_models(w, node, &one)?;
    Ok(models.pop().map(|(dev, _, engine, _)| (dev, engine)))
}

/// The OpenVPN processes of a host: servers (`server` pools) and client
/// profiles (`client`). TAP point-to-point configs belong to bonds and are
/// returned as skipped.
fn openvpn_models(w: &World, node: usize, files: &HostFiles) -> Result<OpenVpnModels, SimError> {
    use vpnsim_render::openvpn::Config;
    let host = files.host.as_str();
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    let read = |path: &str| files.all.get(path.trim_start_matches('/')).cloned();
    let locals: Vec<IpAddr> = w
        .nodes
        .get(node)
        .map(|n| {
            n.ifaces
                .iter()
                .filter(|i| matches!(i.kind, IfaceKind::Underlay(_)))
                .flat_map(|i| i.addrs.iter().map(|a| a.addr()))
                .collect()
        })
        .unwrap_or_default();
    for (path, text) in &files.openvpn {
        let cfg = Config::parse(text).map_err(|e| file_err(host, path, e))?;
        // The kernel gives an unbound socket the address of the interface
        // the route to the server leaves by: put that address first.
        let mut locals = locals.clone();
        let first_remote = cfg.get("remote").and_then(|d| d.arg(0)).and_then(|h| {
            h.parse::<IpAddr>()
                .ok()
                .or_else(|| crate::tunnels::resolve(&files.dns, h))
        });
        if let Some(remote) = first_remote
            && let Some(n) = w.nodes.get(node)
            && let Some(src) = n
                .lookup(remote, true)
                .and_then(|r| n.source_for(r.iface, remote))
            && let Some(pos) = locals.iter().position(|a| *a == src)
        {
            let preferred = locals.remove(pos);
            locals.insert(0, preferred);
        }
        let dev = openvpn_dev(&cfg);
        let tap =
            dev.starts_with("tap") || cfg.get("dev-type").and_then(|d| d.arg(0)) == Some("tap");
        if cfg.get("client").is_some() {
            let dns = files.dns.clone();
            let resolve: Box<crate::proto::openvpn::Resolver> =
                Box::new(move |name: &str, rng: &mut crate::rng::Rng| {
                    let mut addrs = dns
                        .get(name.trim_end_matches('.'))
                        .cloned()
                        .unwrap_or_default();
                    // A round-robin name server rotates its answer.
                    let len = addrs.len() as u64;
                    addrs.rotate_left(rng.below(len) as usize);
                    addrs
                });
            let c = crate::proto::openvpn::Client::from_text(text, &locals, &read, resolve)
                .map_err(|e| file_err(host, path, e.0))?;
            out.push((dev, Vec::new(), Engine::OpenVpnClient(Box::new(c)), tap));
        } else if cfg.get("server").is_some() || cfg.get("server-ipv6").is_some() {
            let s = crate::proto::openvpn::Server::from_text(text, &read)
                .map_err(|e| file_err(host, path, e.0))?;
            let mut addrs = Vec::new();
            if let (Some(a), Some(mask)) = (
                s.tunnel_address(),
                cfg.get("server")
                    .and_then(|d| d.arg(1))
                    .and_then(|m| m.parse::<std::net::Ipv4Addr>().ok()),
            ) {
                let len = u32::from(mask).leading_ones() as u8;
                addrs.extend(ipnet::Ipv4Net::new(a, len).ok().map(IpNet::V4));
            }
            if let Some(net) = cfg
                .get("server-ipv6")
                .and_then(|d| d.arg(0))
                .and_then(|n| n.parse::<ipnet::Ipv6Net>().ok())
                && let Some(first) = net.hosts().next()
            {
                addrs.extend(
                    ipnet::Ipv6Net::new(first, net.prefix_len())
                        .ok()
                        .map(IpNet::V6),
                );
            }
            out.push((dev, addrs, Engine::OpenVpnServer(Box::new(s)), tap));
        } else if cfg.get("tls-client").is_some() && cfg.get("remote").is_some() {
            let dns = files.dns.clone();
            let resolve: Box<crate::proto::openvpn::Resolver> =
                Box::new(move |name: &str, _: &mut crate::rng::Rng| {
                    dns.get(name.trim_end_matches('.'))
                        .cloned()
                        .unwrap_or_default()
                });
            let c = crate::proto::openvpn::Client::from_text(text, &locals, &read, resolve)
                .map_err(|e| file_err(host, path, e.0))?;
            out.push((dev, Vec::new(), Engine::OpenVpnClient(Box::new(c)), tap));
        } else if cfg.get("tls-server").is_some() {
            let s = crate::proto::openvpn::Server::from_text(text, &read)
                .map_err(|e| file_err(host, path, e.0))?;
            out.push((dev, Vec::new(), Engine::OpenVpnServer(Box::new(s)), tap));
        } else {
            skipped.push(path.clone());
        }
    }
    Ok((out, skipped))
}

/// Every A/AAAA record of every zone file in the tree (`etc/bind/db.*`),
/// keyed by the name without the trailing dot.
pub fn zone_records(files: &FileSet) -> Result<BTreeMap<String, Vec<IpAddr>>, SimError> {
    let mut out: BTreeMap<String, Vec<IpAddr>> = BTreeMap::new();
    for f in files.files().filter(|f| f.path.starts_with("etc/bind/db.")) {
        let z = Zone::parse(&f.contents).map_err(|e| SimError::File {
            host: f.host.clone(),
            path: f.path.clone(),
            message: e.to_string(),
        })?;
        for r in &z.records {
            let addr = match r.data {
                zone::RData::A(a) => IpAddr::V4(a),
                zone::RData::Aaaa(a) => IpAddr::V6(a),
                _ => continue,
            };
            let name = r.owner.as_str().trim_end_matches('.').to_string();
            out.entry(name).or_default().push(addr);
        }
    }
    Ok(out)
}

fn file_err(host: &str, path: &str, message: impl std::fmt::Display) -> SimError {
    SimError::File {
        host: host.to_string(),
        path: path.to_string(),
        message: message.to_string(),
    }
}

/// The first usable address of a prefix: the site router's address on a
/// subnet (as in AWS, where the VPC router is the subnet's base + 1).
pub fn gateway_of(net: IpNet) -> Option<IpAddr> {
    net.hosts().next()
}

/// Builds the network and every host from the scenario's physical layer,
/// the addresses and the rendered files.
pub fn build(
    scenario: &Scenario,
    addressing: &Addressing,
    files: &FileSet,
    seed: u64,
) -> Result<World, SimError> {
    let t = &scenario.topology;
    let mut w = World::new(seed);
    // Segments: links first, then subnets.
    for link in &t.links {
        let mut s = Segment::new(&link.name, link.mtu);
        s.latency = link.latency.into();
        s.jitter = link.jitter.into();
        s.loss = (link.loss / 100.0).clamp(0.0, 1.0);
        s.bandwidth = link.bandwidth.map(|b| b.0);
        w.segs.push(s);
    }
    let subnet_seg = |i: usize| t.links.len() + i;
    for subnet in &t.subnets {
        let mut s = Segment::new(&subnet.name, subnet.mtu);
        s.latency = SUBNET_LATENCY;
        w.segs.push(s);
    }
    let dns = zone_records(files)?;
    // Hosts: node index = host index.
    for (hi, host) in t.hosts.iter().enumerate() {
        let id = HostId(hi as u32);
        let mut node = Node::new(&host.name, Some(id), host.site);
        let site = t.site(host.site);
        node.source_dest_check = host.source_dest_check && site.kind == SiteKind::CloudVpc;
        for svc in &host.services {
            if svc.listen.proto == Proto::Tcp {
                node.tcp_listen.insert(svc.listen.port, svc.address);
            }
        }
        for (ii, iface) in host.interfaces.iter().enumerate() {
            let (seg, prefixes): (usize, Vec<IpNet>) = match iface.segment {
                SegRef::Link(l) => {
                    let link = t.link(l);
                    (l.index(), link.cidr.into_iter().collect())
                }
                SegRef::Subnet(s) => {
                    let sub = t.subnet(s);
                    (
                        subnet_seg(s.index()),
                        sub.cidr6.into_iter().chain([sub.cidr]).collect(),
                    )
                }
            };
            let mut addrs: Vec<IpNet> = addressing
                .on(id, &iface.name)
                .filter_map(|e| IpNet::new(e.address, e.prefix_len).ok())
                .collect();
            for declared in iface
                .address
                .into_iter()
                .chain(iface.address6.map(IpAddr::V6))
            {
                if !addrs.iter().any(|a| a.addr() == declared) {
                    let len = prefixes
                        .iter()
                        .find(|p| p.contains(&declared))
                        .map_or(if declared.is_ipv4() { 32 } else { 128 }, |p| {
                            p.prefix_len()
                        });
                    addrs.extend(IpNet::new(declared, len).ok());
                }
            }
            for a in &addrs {
                w.addr_host.insert(a.addr(), hi);
                node.routes.push(Route {
                    dest: a.trunc(),
                    iface: ii,
                    via: None,
                    metric: 0,
                });
            }
            // Default routes: on a WAN link, on-link; on a subnet, via the site router.
            match iface.segment {
                SegRef::Link(l) if t.link(l).kind == LinkKind::Wan => {
                    for def in ["0.0.0.0/0", "::/0"] {
                        if let Ok(dest) = def.parse::<IpNet>() {
                            node.routes.push(Route {
                                dest,
                                iface: ii,
                                via: None,
                                metric: 100 + ii as u32,
                            });
                        }
                    }
                }
                SegRef::Subnet(s) => {
                    let sub = t.subnet(s);
                    for (def, net) in [("0.0.0.0/0", Some(sub.cidr)), ("::/0", sub.cidr6)] {
                        if let (Ok(dest), Some(gw)) =
                            (def.parse::<IpNet>(), net.and_then(gateway_of))
                        {
                            node.routes.push(Route {
                                dest,
                                iface: ii,
                                via: Some(gw),
                                metric: 100 + ii as u32,
                            });
                        }
                    }
                }
                SegRef::Link(_) => {}
            }
            node.ifaces.push(Iface {
                name: iface.name.clone(),
                kind: IfaceKind::Underlay(seg),
                addrs,
                mtu: iface.mtu,
                up: true,
            });
            if let Some(s) = w.segs.get_mut(seg) {
                s.attachments.push((hi, ii));
            }
        }
        // Installed once the VPN interfaces exist (`install_host_routes`).
        w.host_routes.insert(
            hi,
            host.routes
                .iter()
                .map(|r| (r.to.trunc(), r.via, r.dev.clone()))
                .collect(),
        );
        if let Some(public) = host.public_address {
            w.addr_host.insert(IpAddr::V4(public), hi);
        }
        if let Some(public) = host.public_address6 {
            w.addr_host.insert(IpAddr::V6(public), hi);
        }
        w.base
            .insert(hi, (node.ifaces.clone(), node.routes.clone()));
        w.nodes.push(node);
    }
    // Site routers.
    for (si, site) in t.sites.iter().enumerate() {
        if site.subnets.is_empty() {
            continue;
        }
        let ni = w.nodes.len();
        let mut node = Node::new(
            &format!("{}-router", site.name),
            None,
            vpnsim_topology::model::SiteId(si as u32),
        );
        node.forward_v4 = true;
        node.forward_v6 = true;
        let mut router = SiteRouter::default();
        for s in &site.subnets {
            let sub = t.subnet(*s);
            let addrs: Vec<IpNet> = [Some(sub.cidr), sub.cidr6]
                .into_iter()
                .flatten()
                .filter_map(|net| {
                    gateway_of(net).and_then(|g| IpNet::new(g, net.prefix_len()).ok())
                })
                .collect();
            let ii = node.ifaces.len();
            for a in &addrs {
                node.routes.push(Route {
                    dest: a.trunc(),
                    iface: ii,
                    via: None,
                    metric: 0,
                });
            }
            node.ifaces.push(Iface {
                name: sub.name.clone(),
                kind: IfaceKind::Underlay(subnet_seg(s.index())),
                addrs,
                mtu: sub.mtu,
                up: true,
            });
            if let Some(seg) = w.segs.get_mut(subnet_seg(s.index())) {
                seg.attachments.push((ni, ii));
            }
        }
        // The VPC route table: prefix → instance (its address in this site).
        for (to, via) in &site.routes {
            let Some(target) = w.nodes.get(via.index()) else {
                continue;
            };
            let hop = target
                .ifaces
                .iter()
                .filter(|i| matches!(i.kind, IfaceKind::Underlay(seg) if seg >= t.links.len()))
                .flat_map(|i| i.addrs.iter())
                .find(|a| a.addr().is_ipv4() == to.addr().is_ipv4())
                .map(|a| a.addr());
            if let Some(hop) = hop
                && let Some(r) = node.lookup(hop, true).cloned()
            {
                node.routes.push(Route {
                    dest: to.trunc(),
                    iface: r.iface,
                    via: Some(hop),
                    metric: 0,
                });
            }
        }
        if let Some(uplink) = site.uplink {
            let ii = node.ifaces.len();
            let addrs: Vec<IpNet> = site
                .nat_address
                .map(|a| IpNet::from(IpAddr::V4(a)))
                .into_iter()
                .collect();
            node.ifaces.push(Iface {
                name: "uplink".into(),
                kind: IfaceKind::Underlay(uplink.index()),
                addrs,
                mtu: t.link(uplink).mtu,
                up: true,
            });
            for def in ["0.0.0.0/0", "::/0"] {
                if let Ok(dest) = def.parse::<IpNet>() {
                    node.routes.push(Route {
                        dest,
                        iface: ii,
                        via: None,
                        metric: 100,
                    });
                }
            }
            router.uplink = Some(ii);
            router.masquerade = site.nat_address.map(IpAddr::V4);
            let seg = &mut w.segs[uplink.index()];
            seg.attachments.push((ni, ii));
            for h in &site.hosts {
                let host = t.host(*h);
                let Some(public) = host.public_address.map(IpAddr::V4) else {
                    continue;
                };
                let Some(n) = w.nodes.get(h.index()) else {
                    continue;
                };
                if n.is_local(public) {
                    continue;
                }
                let private = n
                    .ifaces
                    .iter()
                    .flat_map(|i| i.addrs.iter())
                    .find(|a| a.addr().is_ipv4())
                    .map(|a| a.addr());
                if let Some(private) = private {
                    router.one_to_one.insert(public, private);
                    seg.proxies.push((IpNet::from(public), (ni, ii)));
                }
            }
            if site.address_space == vpnsim_topology::format::AddressSpace::Public {
                for net in &site.cidrs {
                    router.public_space.push(*net);
                    seg.proxies.push((*net, (ni, ii)));
                }
            }
        }
        node.router = Some(router);
        w.nodes.push(node);
    }
    wan_neighbour_routes(&mut w, t);
    for seg in 0..w.segs.len() {
        w.index_segment(seg);
    }
    // Software from the files.
    for (hi, host) in t.hosts.iter().enumerate() {
        let hf = HostFiles::from_set(files, &host.name, &dns);
        w.files.insert(hi, hf.clone());
        apply_files(&mut w, hi, &hf)?;
    }
    Ok(w)
}

/// A host on several WAN links reaches each address attached to a link
/// through that link ("every attached public address reaches every
/// other"): one on-link route per neighbour, ahead of the default route of
/// the first link. Hosts on a single WAN link need none.
fn wan_neighbour_routes(w: &mut World, t: &vpnsim_topology::Topology) {
    let is_wan = |seg: usize| t.links.get(seg).is_some_and(|l| l.kind == LinkKind::Wan);
    for hi in 0..t.hosts.len() {
        let wans: Vec<(usize, usize)> = w.nodes[hi]
            .ifaces
            .iter()
            .enumerate()
            .filter_map(|(ii, i)| match i.kind {
                IfaceKind::Underlay(seg) if is_wan(seg) => Some((ii, seg)),
                _ => None,
            })
            .collect();
        if wans.len() < 2 {
            continue;
        }
        let mut routes = Vec::new();
        for (ii, seg) in wans {
            let Some(s) = w.segs.get(seg) else { continue };
            for (n, i) in s.attachments.iter().filter(|(n, _)| *n != hi) {
                if let Some(iface) = w.nodes.get(*n).and_then(|n| n.ifaces.get(*i)) {
                    routes.extend(iface.addrs.iter().map(|a| Route {
                        dest: IpNet::from(a.addr()),
                        iface: ii,
                        via: None,
                        metric: 50,
                    }));
                }
            }
            routes.extend(s.proxies.iter().map(|(net, _)| Route {
                dest: *net,
                iface: ii,
                via: None,
                metric: 50,
            }));
        }
        w.nodes[hi].routes.extend(routes.iter().cloned());
        if let Some(base) = w.base.get_mut(&hi) {
            base.1.extend(routes);
        }
    }
}

/// Applies a host's files to its node: forwarding, firewall, tunnels.
pub fn apply_files(w: &mut World, node: usize, files: &HostFiles) -> Result<(), SimError> {
    let host = files.host.as_str();
    let (mut f4, mut f6) = (false, false);
    if let Some(text) = &files.sysctl {
        let conf = SysctlConf::parse(text).map_err(|e| file_err(host, SYSCTL_PATH, e))?;
        f4 = conf.ipv4_forwarding().unwrap_or(false);
        f6 = conf.ipv6_forwarding().unwrap_or(false);
    }
    let fw4 = match &files.rules4 {
        Some(text) => {
            Some(Ruleset::parse(Family::V4, text).map_err(|e| file_err(host, RULES_V4_PATH, e))?)
        }
        None => None,
    };
    let fw6 = match &files.rules6 {
        Some(text) => {
            Some(Ruleset::parse(Family::V6, text).map_err(|e| file_err(host, RULES_V6_PATH, e))?)
        }
        None => None,
    };
    let mut confs = Vec::new();
    for (iface, text) in &files.wireguard {
        let path = format!("{WIREGUARD_DIR}{iface}.conf");
        let conf = WgQuickConf::parse(text).map_err(|e| file_err(host, &path, e))?;
        let device = crate::tunnels::wireguard(&conf, iface, &files.dns)
            .map_err(|e| file_err(host, &path, e))?;
        confs.push((iface.clone(), conf, device));
    }
    let ipsec = if files.ipsec_conns.is_empty() {
        None
    } else {
        let conns: Vec<(&str, &str)> = files
            .ipsec_conns
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let secrets: Vec<(&str, &str)> = files
            .ipsec_secrets
            .iter()
            .map(|(p, t)| (p.as_str(), t.as_str()))
            .collect();
        let n = w.nodes.get(node);
        let underlay: Vec<(usize, IpAddr)> = n
            .map(|n| {
                n.ifaces
                    .iter()
                    .enumerate()
                    .filter(|(_, i)| matches!(i.kind, IfaceKind::Underlay(_)))
                    .flat_map(|(ii, i)| i.addrs.iter().map(move |a| (ii, a.addr())))
                    .collect()
            })
            .unwrap_or_default();
        let local: Vec<IpAddr> = underlay.iter().map(|(_, a)| *a).collect();
        let default_src = n.and_then(|n| {
            let r = n.lookup(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), true)?;
            n.source_for(r.iface, IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED))
        });
        let dns = &files.dns;
        let resolve = |name: &str| {
            if name == "%defaultroute" {
                default_src
            } else {
                crate::tunnels::resolve(dns, name)
            }
        };
        let gateway = crate::proto::ipsec::Gateway::from_texts(&conns, &secrets, &local, &resolve)
            .map_err(|e| file_err(host, "etc/ipsec.d", e.0))?;
        Some((underlay.first().map_or(0, |(i, _)| *i), gateway))
    };
    let (openvpn, skipped) = openvpn_models(w, node, files)?;
    for path in skipped {
        w.log(format!(
            "{host}: {path}: not an OpenVPN client, server or TAP link; not run"
        ));
    }
    let bonds = bond_models(files, &openvpn)?;
    let mut peervpn = Vec::new();
    for (path, text) in &files.peervpn {
        let conf = vpnsim_render::peervpn::PeerVpnConf::parse(text)
            .map_err(|e| file_err(host, path, e))?;
        let dns = &files.dns;
        let member = crate::proto::peervpn::Member::from_conf(&conf, |name| {
            dns.get(name.trim_end_matches('.'))
                .cloned()
                .unwrap_or_default()
        })
        .map_err(|e| file_err(host, path, e))?;
        peervpn.push(member);
    }
    let monit = crate::monit::Monit::from_files(files, node);
    let Some(n) = w.nodes.get_mut(node) else {
        return Ok(());
    };
    n.monit = monit.map(Box::new);
    for (addr, port) in &files.tcp_listen {
        n.tcp_listen.insert(*port, *addr);
    }
    n.forward_v4 = f4;
    n.forward_v6 = f6;
    n.fw4 = fw4;
    n.fw6 = fw6;
    n.tunnels.clear();
    // Timers of the previous models must not reach the new ones.
    n.epoch += 1;
    if let Some((iface, gateway)) = ipsec {
        n.tunnels.push(Tunnel {
            iface,
            engine: Engine::Ipsec(Box::new(gateway)),
            ports: Default::default(),
            esp: true,
            kind: "ipsec".into(),
        });
    }
    for (name, addrs, engine, tap) in openvpn {
        let t = n.tunnels.len();
        let ii = match n.iface_index(&name) {
            Some(i) => i,
            None => {
                n.ifaces.push(Iface {
                    name: name.clone(),
                    kind: IfaceKind::Tunnel(t),
                    addrs: Vec::new(),
                    mtu: OPENVPN_TUN_MTU,
                    up: true,
                });
                n.ifaces.len() - 1
            }
        };
        n.routes.retain(|r| r.iface != ii);
        for a in &addrs {
            n.routes.push(Route {
                dest: a.trunc(),
                iface: ii,
                via: None,
                metric: 0,
            });
        }
        if let Some(i) = n.ifaces.get_mut(ii) {
            i.kind = IfaceKind::Tunnel(t);
            i.addrs = addrs;
            i.up = true;
        }
        let kind = if tap { KIND_TAP } else { "openvpn" };
        n.tunnels.push(Tunnel {
            iface: ii,
            engine,
            ports: Default::default(),
            esp: false,
            kind: kind.into(),
        });
    }
    for (name, bond) in bonds {
        let t = n.tunnels.len();
        let addrs: Vec<IpNet> = bond.address().map(IpNet::V4).into_iter().collect();
        let ii = match n.iface_index(&name) {
            Some(i) => i,
            None => {
                n.ifaces.push(Iface {
                    name: name.clone(),
                    kind: IfaceKind::Tunnel(t),
                    addrs: Vec::new(),
                    mtu: OPENVPN_TUN_MTU,
                    up: true,
                });
                n.ifaces.len() - 1
            }
        };
        n.routes.retain(|r| r.iface != ii);
        for a in &addrs {
            n.routes.push(Route {
                dest: a.trunc(),
                iface: ii,
                via: None,
                metric: 0,
            });
        }
        if let Some(i) = n.ifaces.get_mut(ii) {
            i.kind = IfaceKind::Tunnel(t);
            i.addrs = addrs;
            i.up = true;
        }
        n.tunnels.push(Tunnel {
            iface: ii,
            engine: Engine::Bond(Box::new(bond)),
            ports: Default::default(),
            esp: false,
            kind: "bond".into(),
        });
    }
    for (name, conf, device) in confs {
        let ii = match n.iface_index(&name) {
            Some(i) => i,
            None => {
                n.ifaces.push(Iface {
                    name: name.clone(),
                    kind: IfaceKind::Tunnel(n.tunnels.len()),
                    addrs: Vec::new(),
                    mtu: WG_DEFAULT_MTU,
                    up: true,
                });
                n.ifaces.len() - 1
            }
        };
        let t = n.tunnels.len();
        if let Some(i) = n.ifaces.get_mut(ii) {
            i.kind = IfaceKind::Tunnel(t);
            i.addrs = conf.interface.addresses.clone();
            i.mtu = conf.interface.mtu.map_or(WG_DEFAULT_MTU, u32::from);
            i.up = true;
        }
        n.routes.retain(|r| r.iface != ii);
        // wg-quick up: the interface's addresses, then a route per AllowedIPs
        // prefix unless a route on the device already covers it (wg-quick
        // checks `ip route show dev wg0 match PREFIX` first).
        for a in &conf.interface.addresses {
            n.routes.push(Route {
                dest: a.trunc(),
                iface: ii,
                via: None,
                metric: 0,
            });
        }
        for p in &conf.peers {
            for a in &p.allowed_ips {
                let a = a.trunc();
                if !n
                    .routes
                    .iter()
                    .any(|r| r.iface == ii && r.dest.contains(&a))
                {
                    n.routes.push(Route {
                        dest: a.trunc(),
                        iface: ii,
                        via: None,
                        metric: 0,
                    });
                }
            }
        }
        n.tunnels.push(Tunnel {
            iface: ii,
            ports: [device.listen_port()].into_iter().collect(),
            engine: Engine::WireGuard(Box::new(device)),
            esp: false,
            kind: "wireguard".into(),
        });
    }
    // PeerVPN: the TAP device with its ifconfig4/6 address and connected
    // route; the member's datagrams arrive on its udp port.
    for member in peervpn {
        let t = n.tunnels.len();
        let name = member.iface().to_string();
        let addrs = member.addresses().to_vec();
        let ii = match n.iface_index(&name) {
            Some(i) => i,
            None => {
                n.ifaces.push(Iface {
                    name,
                    kind: IfaceKind::Tunnel(t),
                    addrs: Vec::new(),
                    mtu: crate::proto::peervpn::TAP_MTU,
                    up: true,
                });
                n.ifaces.len() - 1
            }
        };
        n.routes.retain(|r| r.iface != ii);
        for a in &addrs {
            n.routes.push(Route {
                dest: a.trunc(),
                iface: ii,
                via: None,
                metric: 0,
            });
        }
        if let Some(i) = n.ifaces.get_mut(ii) {
            i.kind = IfaceKind::Tunnel(t);
            i.addrs = addrs;
            i.up = true;
        }
        n.tunnels.push(Tunnel {
            iface: ii,
            ports: [member.port()].into_iter().collect(),
            engine: Engine::Other(Box::new(member)),
            esp: false,
            kind: "peervpn".into(),
        });
    }
    install_host_routes(w, node);
    Ok(())
}

/// The host's static routes (`routes` in the scenario), added the way
/// `ip route add TO via GW [dev DEV]` does once the host's interfaces are
/// up, its VPN devices included: without `dev`, by the device whose
/// network holds the gateway (a gateway on a mesh or bond network takes
/// that device), else the one the underlay reaches it by (on-link on a wan
/// link). A route already there is not added twice (daemons started again
/// after a stop). They go right after the underlay's own routes, so at an
/// equal prefix they win over the VPN devices' routes, as a route the
/// operator wrote before the VPN came up does.
fn install_host_routes(w: &mut World, node: usize) {
    let routes = w.host_routes.get(&node).cloned().unwrap_or_default();
    let underlay = w.base.get(&node).map_or(0, |(_, r)| r.len());
    let Some(n) = w.nodes.get_mut(node) else {
        return;
    };
    let mut at = underlay.min(n.routes.len());
    for (dest, via, dev) in routes {
        let iface = match &dev {
            Some(dev) => n.iface_index(dev),
            None => via.and_then(|via| {
                n.ifaces
                    .iter()
                    .position(|i| i.up && i.addrs.iter().any(|a| a.trunc().contains(&via)))
                    .or_else(|| n.lookup(via, true).map(|x| x.iface))
            }),
        };
        let Some(iface) = iface else { continue };
        let route = Route {
            dest,
            iface,
            via,
            metric: 0,
        };
        if !n.routes.contains(&route) {
            n.routes.insert(at, route);
            at += 1;
        }
    }
}

/// What one `wg set IFACE peer KEY ...` asks for.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WgSet {
    pub iface: String,
    pub peer: String,
    pub remove: bool,
    pub allowed_ips: Option<Vec<IpNet>>,
    /// `host:port` as written (a name is resolved when the command runs).
    pub endpoint: Option<String>,
    pub keepalive: Option<u16>,
}

/// Reads the arguments after `wg set`: `IFACE peer KEY [remove]
/// [allowed-ips A,B] [endpoint E] [persistent-keepalive N|off]`.
pub fn parse_wg_set(args: &[&str]) -> Result<WgSet, String> {
    let mut it = args.iter().copied();
    let mut set = WgSet {
        iface: it.next().ok_or("no interface")?.to_string(),
        ..WgSet::default()
    };
    while let Some(word) = it.next() {
        match word {
            "peer" if set.peer.is_empty() => {
                set.peer = it.next().ok_or("peer needs a key")?.to_string()
            }
            "remove" => set.remove = true,
            "allowed-ips" => {
                let list = it.next().ok_or("allowed-ips needs a list")?;
                let nets = list
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| {
                        s.parse::<IpNet>()
                            .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    })
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| format!("allowed-ips: {e}"))?;
                set.allowed_ips = Some(nets);
            }
            "endpoint" => {
                set.endpoint = Some(it.next().ok_or("endpoint needs a value")?.to_string())
            }
            "persistent-keepalive" => {
                let text = it.next().ok_or("persistent-keepalive needs a value")?;
                let v = if text == "off" {
                    0
                } else {
                    text.parse::<u16>()
                        .map_err(|e| format!("persistent-keepalive: {e}"))?
                };
                set.keepalive = Some(v);
            }
            other => return Err(format!("unsupported `wg set` option `{other}`")),
        }
    }
    if set.peer.is_empty() {
        return Err("no peer".into());
    }
    Ok(set)
}

/// One run of a promotion script: where, when, for which timeline entry,
/// and why it failed (none: every command ran).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptRun {
    pub at: crate::time::Instant,
    pub node: usize,
    pub host: String,
    pub path: String,
    /// The timeline entry (index in the scenario's `events`) it belongs to.
    pub event: usize,
    /// Whether the host was up to run it.
    pub ran: bool,
    pub failure: Option<String>,
}

/// Runs one host's promotion script, command by command, on the host's
/// running state and files:
/// - `wg set IFACE peer ...` changes the running device
///   (`Device::set_peer` / `remove_peer`);
/// - `wg syncconf IFACE FILE` applies FILE (`Device::sync_conf`);
/// - `wg-quick strip FILE|IFACE` prints FILE without wg-quick's own keys
///   (usually redirected: `> /run/x.conf` writes it to the host);
/// - `wg-quick save IFACE` writes the running configuration back to
///   `/etc/wireguard/IFACE.conf`, so a later restart reads it;
/// - `systemctl reload wg-quick@IFACE` is what the unit's `ExecReload`
///   does: `wg syncconf IFACE <(wg-quick strip IFACE)`;
/// - `rm [-f] FILE...`, `umask MODE` and `set -e` (or other shell options)
///   do what they say (files have no modes here);
/// - a redirection `> FILE` / `>> FILE` writes (appends) the command's
///   output to the host's file.
///
/// Any other command is one the simulator cannot run: it fails, as a
/// missing program fails with status 127. A failing command is logged;
/// under `set -e` (which every generated script sets) the script stops
/// there, else it goes on. Either way the run is recorded as failed in
/// `World::scripts_run`, and the timeline reports the procedure as
/// failed.
pub fn run_script(w: &mut World, node: usize, path: &str, event: usize) {
    let at = w.now();
    let host = w
        .files
        .get(&node)
        .map(|f| f.host.clone())
        .unwrap_or_default();
    let ran = w.nodes.get(node).is_some_and(|n| n.up);
    let failure = run_script_steps(w, node, path);
    w.scripts_run.push(ScriptRun {
        at,
        node,
        host,
        path: path.to_string(),
        event,
        ran,
        failure,
    });
}

fn run_script_steps(w: &mut World, node: usize, path: &str) -> Option<String> {
    let Some(files) = w.files.get(&node).cloned() else {
        return Some("the host has no files".into());
    };
    let host = files.host.clone();
    let Some(text) = files.scripts.get(path) else {
        w.log(format!("{host}: {path}: no such script"));
        return Some(format!("{path}: no such script"));
    };
    let script = match Script::parse(text) {
        Ok(s) => s,
        Err(e) => {
            w.log(format!("{host}: {path}: {e}"));
            return Some(format!("{path}: {e}"));
        }
    };
    if !w.nodes.get(node).is_some_and(|n| n.up) {
        w.log(format!("{host}: down, {path} does not run"));
        return Some("the host is down".into());
    }
    w.log(format!("{host}: runs {path}"));
    let mut errexit = false;
    let mut failure = None;
    for step in script.steps(&BTreeMap::new()) {
        let Step::Run(inv) = step else { continue };
        let line = inv.argv.join(" ");
        w.log(format!("{host}: {line}"));
        let argv: Vec<&str> = inv.argv.iter().map(String::as_str).collect();
        let result = match argv.as_slice() {
            ["set", options @ ..]
                if options
                    .iter()
                    .all(|o| o.starts_with('-') || o.starts_with('+')) =>
            {
                for o in options {
                    if o.starts_with('-') && o.contains('e') {
                        errexit = true;
                    } else if o.starts_with('+') && o.contains('e') {
                        errexit = false;
                    }
                }
                Ok(None)
            }
            ["umask", mode] if mode.bytes().all(|b| (b'0'..=b'7').contains(&b)) => Ok(None),
            ["rm", args @ ..] => rm(w, node, args),
            ["wg", "set", rest @ ..] => wg_set(w, node, rest, &files.dns).map(|()| None),
            ["wg", "syncconf", iface, file] => {
                let text = read_host_file(w, node, file)
                    .ok_or_else(|| format!("wg syncconf: {file}: No such file or directory"));
                text.and_then(|t| wg_syncconf(w, node, iface, &t, &files.dns))
                    .map(|()| None)
            }
            ["wg-quick", "strip", what] => wg_quick_strip(w, node, what).map(Some),
            ["wg-quick", "save", iface] => wg_quick_save(w, node, iface).map(|()| None),
            ["systemctl", "reload", unit] if unit.starts_with("wg-quick@") => {
                let iface = unit
                    .trim_start_matches("wg-quick@")
                    .trim_end_matches(".service");
                wg_quick_strip(w, node, iface)
                    .and_then(|t| wg_syncconf(w, node, iface, &t, &files.dns))
                    .map(|()| None)
            }
            _ => Err(format!(
                "{}: not a command the simulator can run (exit status 127)",
                argv.first().copied().unwrap_or_default()
            )),
        };
        let result = result.map(|output| {
            // Redirections: the last `>`/`>>` of stdout gets the output.
            if let Some((_, op, target)) = inv
                .redirects
                .iter()
                .rev()
                .find(|(fd, op, _)| *fd == 1 && *op != vpnsim_render::script::RedirectOp::Read)
            {
                let text = output.unwrap_or_default();
                let append = *op == vpnsim_render::script::RedirectOp::Append;
                let old = if append {
                    read_host_file(w, node, target).unwrap_or_default()
                } else {
                    String::new()
                };
                write_host_file(w, node, target, format!("{old}{text}"));
            }
        });
        if let Err(e) = result {
            let stops = if errexit {
                " (script stops: set -e)"
            } else {
                ""
            };
            w.log(format!("{host}: FAILED: {line}: {e}{stops}"));
            failure.get_or_insert(format!("`{line}`: {e}"));
            if errexit {
                break;
            }
        }
    }
    failure
}

/// A host file by absolute or relative path (`/run/x` and `run/x` alike).
fn read_host_file(w: &World, node: usize, path: &str) -> Option<String> {
    let path = path.trim_start_matches('/');
    let f = w.files.get(&node)?;
    if let Some(iface) = wireguard_conf_name(path) {
        return f.wireguard.get(iface).cloned();
    }
    f.all.get(path).cloned()
}

/// Writes a host file; a wg-quick file in `etc/wireguard/` is what the
/// next `wg-quick up` (a restart) reads.
fn write_host_file(w: &mut World, node: usize, path: &str, text: String) {
    let path = path.trim_start_matches('/');
    let Some(f) = w.files.get_mut(&node) else {
        return;
    };
    if let Some(iface) = wireguard_conf_name(path) {
        f.wireguard.insert(iface.to_string(), text.clone());
    }
    f.all.insert(path.to_string(), text);
}

/// `etc/wireguard/<I>.conf` → `I`.
fn wireguard_conf_name(path: &str) -> Option<&str> {
    path.strip_prefix(WIREGUARD_DIR)
        .and_then(|n| n.strip_suffix(".conf"))
        .filter(|n| !n.contains('/'))
}

/// `rm [-f] FILE...`: without `-f` a missing file is an error.
fn rm(w: &mut World, node: usize, args: &[&str]) -> Result<Option<String>, String> {
    let force = args.iter().any(|a| a.starts_with('-') && a.contains('f'));
    for file in args.iter().filter(|a| !a.starts_with('-')) {
        let path = file.trim_start_matches('/');
        let Some(f) = w.files.get_mut(&node) else {
            continue;
        };
        let existed = f.all.remove(path).is_some();
        if let Some(iface) = wireguard_conf_name(path) {
            f.wireguard.remove(iface);
        }
        if !existed && !force {
            return Err(format!("cannot remove '{file}': No such file or directory"));
        }
    }
    Ok(None)
}

/// `wg-quick strip FILE` (or an interface name, for
/// `/etc/wireguard/NAME.conf`): the file without wg-quick's own keys
/// (`Address`, `DNS`, `MTU`, `Table`, the hooks, `SaveConfig`), which is
/// what `wg setconf`/`syncconf` accept. Emitted through the wg-quick
/// format, so comments are not kept.
fn wg_quick_strip(w: &World, node: usize, what: &str) -> Result<String, String> {
    let path = if what.contains('/') || what.ends_with(".conf") {
        what.to_string()
    } else {
        format!("/{WIREGUARD_DIR}{what}.conf")
    };
    let text = read_host_file(w, node, &path)
        .ok_or_else(|| format!("wg-quick strip: `{path}' does not exist"))?;
    strip_conf(&text)
}

/// The text of `wg-quick strip` for a wg-quick file.
pub fn strip_conf(text: &str) -> Result<String, String> {
    let mut conf = WgQuickConf::parse(text).map_err(|e| format!("wg-quick strip: {e}"))?;
    let i = &mut conf.interface;
    i.addresses.clear();
    i.dns.clear();
    i.mtu = None;
    i.table = None;
    i.pre_up.clear();
    i.post_up.clear();
    i.pre_down.clear();
    i.post_down.clear();
    i.save_config = false;
    conf.header.clear();
    for p in &mut conf.peers {
        p.comments.clear();
    }
    Ok(conf.emit())
}

fn wg_syncconf(
    w: &mut World,
    node: usize,
    iface: &str,
    text: &str,
    dns: &BTreeMap<String, Vec<IpAddr>>,
) -> Result<(), String> {
    let t = wireguard_device(w, node, iface)
        .ok_or_else(|| format!("wg syncconf: no WireGuard interface {iface}"))?;
    let conf = WgQuickConf::parse(text).map_err(|e| format!("wg syncconf: {e}"))?;
    let now = w.now();
    let (actions, port) = {
        let World { nodes, rng, .. } = &mut *w;
        let Some(Engine::WireGuard(device)) = nodes
            .get_mut(node)
            .and_then(|n| n.tunnels.get_mut(t))
            .map(|t| &mut t.engine)
        else {
            return Ok(());
        };
        let actions =
            device.sync_conf(now, rng, &conf, |name| crate::tunnels::resolve(dns, name))?;
        (actions, device.listen_port())
    };
    if let Some(tunnel) = w.nodes.get_mut(node).and_then(|n| n.tunnels.get_mut(t)) {
        tunnel.ports = [port].into_iter().collect();
    }
    w.apply(node, t, actions);
    Ok(())
}

fn wireguard_device(w: &mut World, node: usize, iface: &str) -> Option<usize> {
    let n = w.nodes.get(node)?;
    n.tunnels.iter().position(|t| {
        matches!(&t.engine, Engine::WireGuard(_))
            && n.ifaces.get(t.iface).is_some_and(|i| i.name == iface)
    })
}

fn wg_set(
    w: &mut World,
    node: usize,
    args: &[&str],
    dns: &BTreeMap<String, Vec<IpAddr>>,
) -> Result<(), String> {
    let set = parse_wg_set(args)?;
    let t = wireguard_device(w, node, &set.iface)
        .ok_or_else(|| format!("wg set: no WireGuard interface {}", set.iface))?;
    let endpoint = match &set.endpoint {
        None => None,
        Some(text) => {
            let ep = wgquick::Endpoint::parse(text)?;
            let ip = match &ep.host {
                wgquick::Host::Ip(ip) => *ip,
                wgquick::Host::Name(name) => crate::tunnels::resolve(dns, name.as_str())
                    .ok_or_else(|| format!("{name}: name does not resolve"))?,
            };
            Some(std::net::SocketAddr::new(ip, ep.port))
        }
    };
    let now = w.now();
    let actions = {
        let World { nodes, rng, .. } = &mut *w;
        let Some(Engine::WireGuard(device)) = nodes
            .get_mut(node)
            .and_then(|n| n.tunnels.get_mut(t))
            .map(|t| &mut t.engine)
        else {
            return Ok(());
        };
        if set.remove {
            device.remove_peer(now, &set.peer)?
        } else {
            device.set_peer(
                now,
                rng,
                &set.peer,
                set.allowed_ips.clone(),
                endpoint,
                set.keepalive,
            )?
        }
    };
    w.apply(node, t, actions);
    Ok(())
}

fn wg_quick_save(w: &mut World, node: usize, iface: &str) -> Result<(), String> {
    let t = wireguard_device(w, node, iface)
        .ok_or_else(|| format!("wg-quick save: no interface {iface}"))?;
    let Some(original) = w
        .files
        .get(&node)
        .and_then(|f| f.wireguard.get(iface))
        .cloned()
    else {
        return Err(format!("wg-quick save: no {WIREGUARD_DIR}{iface}.conf"));
    };
    let original = WgQuickConf::parse(&original).map_err(|e| e.to_string())?;
    let saved = match w
        .nodes
        .get(node)
        .and_then(|n| n.tunnels.get(t))
        .map(|t| &t.engine)
    {
        Some(Engine::WireGuard(device)) => device.saved_conf(&original).emit(),
        _ => return Ok(()),
    };
    if let Some(f) = w.files.get_mut(&node) {
        f.wireguard.insert(iface.to_string(), saved);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wg_set_lines_of_the_promotion_scripts_parse() {
        let set = parse_wg_set(&[
            "wg0",
            "peer",
            "KEY=",
            "allowed-ips",
            "10.5.4.0/24,10.9.0.1",
            "endpoint",
            "node3.example.com:55820",
            "persistent-keepalive",
            "25",
        ])
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.iface, "wg0");
        assert_eq!(set.peer, "KEY=");
        assert!(!set.remove);
        let nets: Vec<String> = set
            .allowed_ips
            .unwrap_or_default()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(nets, ["10.5.4.0/24", "10.9.0.1/32"]);
        assert_eq!(set.endpoint.as_deref(), Some("node3.example.com:55820"));
        assert_eq!(set.keepalive, Some(25));
        let set = parse_wg_set(&["wg0", "peer", "K=", "persistent-keepalive", "off"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(set.keepalive, Some(0));
        assert!(parse_wg_set(&["wg0", "peer", "K=", "remove"]).is_ok_and(|s| s.remove));
        assert!(parse_wg_set(&["wg0", "peer", "K=", "fwmark", "1"]).is_err());
        assert!(parse_wg_set(&["wg0"]).is_err());
    }

    #[test]
    fn wg_quick_strip_leaves_what_wg_accepts() {
        let text = "# header\n[Interface]\nAddress = 10.5.4.2/24\nListenPort = 55820\n\
                    PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nMTU = 1380\n\
                    DNS = 10.5.4.1\nPostUp = true\nSaveConfig = true\n\n# hub\n[Peer]\n\
                    PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
                    AllowedIPs = 10.5.4.0/24\nPersistentKeepalive = 25\n";
        let out = strip_conf(text).unwrap_or_else(|e| panic!("{e}"));
        let conf = WgQuickConf::parse(&out).unwrap_or_else(|e| panic!("{e}"));
        for gone in ["Address", "MTU", "DNS", "PostUp", "SaveConfig", "#"] {
            assert!(!out.contains(gone), "{gone} in {out}");
        }
        assert_eq!(conf.interface.listen_port, Some(55820));
        assert_eq!(conf.peers.len(), 1);
        assert_eq!(conf.peers[0].persistent_keepalive, Some(25));
        assert!(strip_conf("[Interface]\nAddress = x\n").is_err());
    }

    #[test]
    fn vpn_daemon_listen_lines() {
        assert_eq!(
            env_listen("ENABLE_TLS=-enable-tls\nLISTEN=:41194\n"),
            [(None, 41194)]
        );
        let addr: IpAddr = "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            env_listen("LISTEN=\"10.0.0.1:41194\""),
            [(Some(addr), 41194)]
        );
        assert!(env_listen("LISTEN=nonsense").is_empty());
    }

    #[test]
    fn the_site_router_is_the_first_address_of_a_subnet() {
        let net: IpNet = "10.11.4.0/24".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            gateway_of(net).map(|a| a.to_string()).as_deref(),
            Some("10.11.4.1")
        );
    }
}

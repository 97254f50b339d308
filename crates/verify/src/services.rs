//! Listening services: one socket per protocol, port and address; one
//! client range per profile; vpn-daemon reachable from the controller only.
//!
//! Codes: `port-conflict`, `profile-range-collision`, `daemon-port-exposed`.
//!
//! Semantics chosen where the brief is silent:
//! - Listeners per host: `services` (bound to `address` or all), every
//!   WireGuard star member on udp/`port`, one IKE daemon per host and IPsec
//!   implementation on udp/500 (+ udp/4500 when any of its deployments uses
//!   NAT-T; two implementations on one host do conflict), OpenVPN profiles
//!   on their node (bound to `listen` or all; with `use_proxy = true` the
//!   tcp listeners sit behind sniproxy and are not counted, with
//!   `use_proxy = false` they are the node's own sockets, so tcp/443 there
//!   conflicts with an https service), vpn-daemon on tcp/`vpn_daemon_port`
//!   on every node of a deployment with `use_vpn_daemon` (all addresses, as
//!   reference 001 has to run it), PeerVPN on udp/`port` on every mesh
//!   member, and the server side of every bond TAP link on its `listen`.
//!   An unspecified bind address (0.0.0.0, ::) means all addresses. A
//!   conflict is reported once per pair, at the listener declared later in
//!   the file.
//! - `profile-range-collision` compares every pair of profiles of all
//!   deployments, IPv4 and IPv6 separately, with the effective (declared or
//!   allocated) ranges from the plan.
//! - `daemon-port-exposed`, for every node of a deployment with
//!   `use_vpn_daemon`: no firewall or `input_policy = "accept"` (one finding);
//!   else every allow rule source that admits tcp/`vpn_daemon_port` and is
//!   `any`, a host other than the controller and the node itself, or a CIDR
//!   that is not exactly one of the controller's addresses; and every
//!   trusted interface pattern (`tap+` style, as iptables matches them) that
//!   matches a device over which others arrive: a star, mesh or bond with
//!   members besides the controller and the node, the OpenVPN tun devices
//!   (every VPN client), an interface on a wan link or a subnet (the
//!   internet, or whatever the site router forwards), or a lan link shared
//!   with other hosts.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use vpnsim_plan::Origin;
use vpnsim_topology::format::{LinkKind, Policy};
use vpnsim_topology::model::{HostId, OpenVpnM, RuleProto, Segment, Source};
use vpnsim_topology::units::Proto;
use vpnsim_topology::{Diagnostic, FieldPath};

use crate::Ctx;
use crate::check_util::{all_addresses, finding, host_name, join_names, overlaps, position};

pub fn check(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let mut out = port_conflict(ctx);
    out.extend(profile_range_collision(ctx));
    out.extend(daemon_port_exposed(ctx));
    out
}

// ------------------------------------------------------------ port-conflict

/// One socket a host listens on.
#[derive(Debug, Clone)]
struct Socket {
    proto: Proto,
    port: u16,
    /// `None`: all addresses.
    bind: Option<IpAddr>,
    /// E.g. "OpenVPN profile `node-a` of `edu`".
    label: String,
    path: FieldPath,
    /// OpenVPN with `use_proxy = false` (for the tcp/443 hint).
    openvpn_direct: bool,
}

fn bind_text(bind: Option<IpAddr>) -> String {
    bind.map_or_else(|| "all addresses".into(), |a| format!("address {a}"))
}

fn normalize(bind: Option<IpAddr>) -> Option<IpAddr> {
    bind.filter(|a| !a.is_unspecified())
}

fn sockets(ctx: &Ctx<'_>) -> BTreeMap<HostId, Vec<Socket>> {
    let t = ctx.topology();
    let mut out: BTreeMap<HostId, Vec<Socket>> = BTreeMap::new();
    let mut add = |host: HostId,
                   proto: Proto,
                   port: u16,
                   bind: Option<IpAddr>,
                   label: String,
                   path: FieldPath,
                   direct: bool| {
        out.entry(host).or_default().push(Socket {
            proto,
            port,
            bind: normalize(bind),
            label,
            path,
            openvpn_direct: direct,
        });
    };
    for id in t.host_ids() {
        let Some(host) = t.hosts.get(id.index()) else {
            continue;
        };
        for (i, s) in host.services.iter().enumerate() {
            let path = host.path.key("services").index(i).key("listen");
            add(
                id,
                s.listen.proto,
                s.listen.port,
                s.address,
                format!("service `{}`", s.name),
                path,
                false,
            );
        }
    }
    // One IKE daemon per host and implementation.
    let mut ike: BTreeMap<(HostId, String), (FieldPath, String, bool)> = BTreeMap::new();
    for ipsec in &t.ipsec {
        let daemon = format!("{:?}", ipsec.daemon).to_lowercase();
        for host in ipsec.hub.iter().chain(ipsec.gateways.iter()) {
            let entry = ike
                .entry((*host, daemon.clone()))
                .or_insert_with(|| (ipsec.path.clone(), ipsec.name.clone(), false));
            entry.2 |= ipsec.nat_traversal;
        }
    }
    for ((host, daemon), (path, name, nat_t)) in ike {
        add(
            host,
            Proto::Udp,
            500,
            None,
            format!("IKE ({daemon}) of IPsec `{name}`"),
            path.clone(),
            false,
        );
        if nat_t {
            add(
                host,
                Proto::Udp,
                4500,
                None,
                format!("IPsec NAT-T ({daemon}) of `{name}`"),
                path,
                false,
            );
        }
    }
    for star in &t.stars {
        for member in star.members() {
            add(
                member,
                Proto::Udp,
                star.port,
                None,
                format!("WireGuard star `{}` ({})", star.name, star.interface),
                star.path.key("port"),
                false,
            );
        }
    }
    for dep in &t.openvpn {
        for profile in &dep.profiles {
            for (k, l) in profile.spec.listeners.iter().enumerate() {
                if profile.spec.use_proxy && l.proto == Proto::Tcp {
                    continue; // behind sniproxy on tcp/443
                }
                let label = format!("OpenVPN profile `{}` of `{}`", profile.id, dep.name);
                let path = profile.path.key("listeners").index(k);
                add(
                    profile.node,
                    l.proto,
                    l.port,
                    profile.spec.listen,
                    label,
                    path,
                    !profile.spec.use_proxy,
                );
            }
        }
        if dep.use_vpn_daemon {
            for node in dep.nodes() {
                let label = format!("vpn-daemon of `{}`", dep.name);
                add(
                    node,
                    Proto::Tcp,
                    dep.vpn_daemon_port,
                    None,
                    label,
                    dep.path.key("vpn_daemon_port"),
                    false,
                );
            }
        }
    }
    for mesh in &t.meshes {
        for member in &mesh.members {
            add(
                member.host,
                Proto::Udp,
                mesh.port,
                None,
                format!("PeerVPN mesh `{}`", mesh.name),
                mesh.path.key("port"),
                false,
            );
        }
    }
    for bond in &t.bonds {
        for (i, link) in bond.links.iter().enumerate() {
            let label = format!("OpenVPN TAP link `{}` of bond `{}`", link.name, bond.name);
            let path = bond.path.key("links").index(i).key("listen");
            add(
                link.server,
                link.listen.proto,
                link.listen.port,
                None,
                label,
                path,
                false,
            );
        }
    }
    out
}

fn port_conflict(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let mut out = Vec::new();
    for (host, mut list) in sockets(ctx) {
        // Declaration order in the file, so "later" means what a reader sees.
        let mut keyed: Vec<(usize, usize, Socket)> = list
            .drain(..)
            .enumerate()
            .map(|(i, s)| (position(ctx, &s.path), i, s))
            .collect();
        keyed.sort_by_key(|(pos, i, _)| (*pos, *i));
        let list: Vec<Socket> = keyed.into_iter().map(|(_, _, s)| s).collect();
        for (j, b) in list.iter().enumerate() {
            for a in list.iter().take(j) {
                let same_addr = a.bind.is_none() || b.bind.is_none() || a.bind == b.bind;
                if a.proto != b.proto || a.port != b.port || !same_addr {
                    continue;
                }
                let hint = if b.proto == Proto::Tcp
                    && b.port == 443
                    && (a.openvpn_direct || b.openvpn_direct)
                {
                    "; with use_proxy = false OpenVPN takes tcp/443 itself, so set use_proxy = true to share the port with the web server through sniproxy, or"
                } else {
                    ";"
                };
                out.push(finding(
                    ctx,
                    "port-conflict",
                    &b.path,
                    format!(
                        "{} listens on {}/{} on {} of `{}`, which {} already uses ({}){hint} give one of them another port or bind them to different addresses",
                        b.label,
                        b.proto,
                        b.port,
                        bind_text(b.bind),
                        host_name(t, host),
                        a.label,
                        bind_text(a.bind),
                    ),
                ));
            }
        }
    }
    out
}

// -------------------------------------------------- profile-range-collision

fn profile_range_collision(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let ranges = &ctx.plan.client_ranges;
    let name = |d: vpnsim_topology::model::OpenVpnId, p: u32| -> Option<(String, FieldPath)> {
        let dep = t.openvpn.get(d.index())?;
        let profile = dep.profiles.get(p as usize)?;
        Some((
            format!("profile `{}` of openvpn `{}`", profile.id, dep.name),
            profile.path.clone(),
        ))
    };
    let mut out = Vec::new();
    for (j, b) in ranges.iter().enumerate() {
        let Some((b_name, b_path)) = name(b.deployment, b.profile) else {
            continue;
        };
        for a in ranges.iter().take(j) {
            let Some((a_name, _)) = name(a.deployment, a.profile) else {
                continue;
            };
            let pairs = [
                (
                    "range",
                    Some(IpNet::V4(a.range)),
                    Some(IpNet::V4(b.range)),
                    b.origin,
                ),
                (
                    "range6",
                    a.range6.map(IpNet::V6),
                    b.range6.map(IpNet::V6),
                    b.origin6,
                ),
            ];
            for (field, an, bn, origin) in pairs {
                let (Some(an), Some(bn)) = (an, bn) else {
                    continue;
                };
                if !overlaps(&an, &bn) {
                    continue;
                }
                let how = if origin == Origin::Allocated {
                    format!(" (allocated by the plan; set `{field}` explicitly)")
                } else {
                    String::new()
                };
                out.push(finding(
                    ctx,
                    "profile-range-collision",
                    &b_path.key(field),
                    format!(
                        "client {field} {bn} of {b_name}{how} overlaps {an} of {a_name}: two OpenVPN servers would hand out the same client addresses and the routes back to them collide; give every profile its own {field}"
                    ),
                ));
            }
        }
    }
    out
}

// ------------------------------------------------------ daemon-port-exposed

/// iptables interface matching: `tap+` matches every name starting `tap`.
fn if_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// Who besides the controller and the node arrives over interfaces that
/// match a trusted pattern, as sentences; empty when nobody does.
fn trusted_exposure(ctx: &Ctx<'_>, dep: &OpenVpnM, node: HostId, pattern: &str) -> Vec<String> {
    let t = ctx.topology();
    let allowed = [dep.controller, node];
    let others = |members: Vec<HostId>| -> Vec<&str> {
        members
            .into_iter()
            .filter(|h| !allowed.contains(h))
            .map(|h| host_name(t, h))
            .collect()
    };
    let mut out = Vec::new();
    let Some(host) = t.hosts.get(node.index()) else {
        return out;
    };
    for iface in host
        .interfaces
        .iter()
        .filter(|i| if_matches(pattern, &i.name))
    {
        match iface.segment {
            Segment::Link(l) => {
                let Some(link) = t.links.get(l.index()) else {
                    continue;
                };
                if link.kind == LinkKind::Wan {
                    out.push(format!(
                        "{} is on wan link `{}`: anyone on the internet",
                        iface.name, link.name
                    ));
                } else {
                    let attached: Vec<HostId> = t
                        .host_ids()
                        .filter(|h| {
                            t.hosts.get(h.index()).is_some_and(|hm| {
                                hm.interfaces.iter().any(|i| i.segment == Segment::Link(l))
                            })
                        })
                        .collect();
                    let o = others(attached);
                    if !o.is_empty() {
                        out.push(format!(
                            "{} is on link `{}` shared with {}",
                            iface.name,
                            link.name,
                            join_names(&o)
                        ));
                    }
                }
            }
            Segment::Subnet(s) => {
                let subnet = t.subnets.get(s.index()).map_or("?", |s| s.name.as_str());
                out.push(format!(
                    "{} is on subnet `{subnet}`: every host there and everything the site router forwards",
                    iface.name
                ));
            }
        }
    }
    for mesh in t
        .meshes
        .iter()
        .filter(|m| if_matches(pattern, &m.interface))
    {
        let members: Vec<HostId> = mesh.members.iter().map(|m| m.host).collect();
        if !members.contains(&node) {
            continue;
        }
        let o = others(members);
        if !o.is_empty() {
            out.push(format!(
                "{} is mesh `{}`, whose members include {}",
                mesh.interface,
                mesh.name,
                join_names(&o)
            ));
        }
    }
    for star in t.stars.iter().filter(|s| if_matches(pattern, &s.interface)) {
        let members: Vec<HostId> = star.members().collect();
        if !members.contains(&node) {
            continue;
        }
        let o = others(members);
        if !o.is_empty() {
            out.push(format!(
                "{} is WireGuard star `{}`, whose members include {}",
                star.interface,
                star.name,
                join_names(&o)
            ));
        }
    }
    for bond in t.bonds.iter().filter(|b| if_matches(pattern, &b.interface)) {
        if !bond.hosts.contains(&node) {
            continue;
        }
        let o = others(bond.hosts.to_vec());
        if !o.is_empty() {
            out.push(format!(
                "{} is bond `{}` to {}",
                bond.interface,
                bond.name,
                join_names(&o)
            ));
        }
    }
    let serves_clients = t
        .openvpn
        .iter()
        .any(|d| d.profiles.iter().any(|p| p.node == node));
    if serves_clients && if_matches(pattern, "tun0") {
        out.push(format!(
            "`{pattern}` matches the OpenVPN tun devices: every VPN client of `{}`",
            host_name(t, node)
        ));
    }
    out
}

fn daemon_port_exposed(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let mut out = Vec::new();
    for dep in t.openvpn.iter().filter(|d| d.use_vpn_daemon) {
        let port = dep.vpn_daemon_port;
        let controller = host_name(t, dep.controller);
        let controller_addrs = all_addresses(ctx, dep.controller);
        let fix = format!(
            "allow tcp/{port} only from the controller: {{ from = [\"{controller}\"], proto = \"tcp\", ports = [{port}] }}"
        );
        for node in dep.nodes() {
            let node_name = host_name(t, node);
            let what = format!("vpn-daemon of `{}` on `{node_name}` (tcp/{port})", dep.name);
            let Some(fw) = t.firewalls.get(&node) else {
                let path = t
                    .hosts
                    .get(node.index())
                    .map_or_else(FieldPath::root, |h| h.path.clone());
                out.push(finding(
                    ctx,
                    "daemon-port-exposed",
                    &path,
                    format!(
                        "{what} is reachable by every host that can route to `{node_name}`: it has no [firewall.{node_name}]; add one with input_policy = \"reject\" and {fix}"
                    ),
                ));
                continue;
            };
            if fw.input_policy == Policy::Accept {
                out.push(finding(
                    ctx,
                    "daemon-port-exposed",
                    &fw.path.key("input_policy"),
                    format!("{what} is reachable by everyone: the firewall's input_policy is accept; set input_policy = \"reject\" and {fix}"),
                ));
                continue;
            }
            for rule in &fw.allow {
                let proto_matches = matches!(rule.proto, RuleProto::Any | RuleProto::Tcp);
                if !proto_matches || !(rule.ports.is_empty() || rule.ports.contains(&port)) {
                    continue;
                }
                for (k, source) in rule.from.iter().enumerate() {
                    let why = match source {
                        Source::Any => Some("allows it from any source".to_string()),
                        Source::Host(h) if *h == dep.controller || *h == node => None,
                        Source::Host(h) => Some(format!(
                            "allows it from `{}`, which is not the controller `{controller}`",
                            host_name(t, *h)
                        )),
                        Source::Net(net) => {
                            let exact = net.prefix_len() == net.max_prefix_len()
                                && controller_addrs.contains(&net.addr());
                            (!exact).then(|| {
                                let inside: Vec<&str> = t
                                    .host_ids()
                                    .filter(|h| *h != dep.controller && *h != node)
                                    .filter(|h| all_addresses(ctx, *h).iter().any(|a| net.contains(a)))
                                    .map(|h| host_name(t, h))
                                    .collect();
                                let who = if inside.is_empty() { String::new() } else { format!(", including {}", join_names(&inside)) };
                                let narrow = controller_addrs
                                    .iter()
                                    .find(|a| net.contains(*a))
                                    .map(|a| format!(" (narrow it to {})", IpNet::from(*a)))
                                    .unwrap_or_default();
                                format!("allows it from {net}, which holds addresses beyond the controller `{controller}`{who}{narrow}")
                            })
                        }
                    };
                    if let Some(why) = why {
                        out.push(finding(
                            ctx,
                            "daemon-port-exposed",
                            &rule.path.key("from").index(k),
                            format!("{what} is exposed: an allow rule of [firewall.{node_name}] {why}; {fix}"),
                        ));
                    }
                }
            }
            for (k, pattern) in fw.trusted_interfaces.iter().enumerate() {
                let exposure = trusted_exposure(ctx, dep, node, pattern);
                if exposure.is_empty() {
                    continue;
                }
                out.push(finding(
                    ctx,
                    "daemon-port-exposed",
                    &fw.path.key("trusted_interfaces").index(k),
                    format!(
                        "{what} is exposed: [firewall.{node_name}] trusts `{pattern}`, so all traffic arriving there is accepted ({}); trust only interfaces no one but the controller uses, or drop `{pattern}` and {fix}",
                        exposure.join("; ")
                    ),
                ));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_util::testing::{fields, run, with_code};

    /// eduVPN multi-node (reference 001): controller, node-a, node-b.
    fn edu(profiles: &str, firewalls: &str) -> String {
        format!(
            r#"[scenario]
name = "t"
seed = 1
[links.internet]
kind = "wan"
[sites.dc]
kind = "datacenter"
[hosts.controller]
site = "dc"
public_address6 = "2001:610:188:418:145:0:6:71"
interfaces = [{{ name = "eth0", link = "internet", address = "145.0.6.71" }}]
services = [{{ name = "httpd", listen = "tcp/443" }}]
[hosts.node-a]
site = "dc"
interfaces = [{{ name = "eth0", link = "internet", address = "145.0.6.72" }}]
services = [{{ name = "httpd", listen = "tcp/443" }}, {{ name = "sshd", listen = "tcp/22" }}]
[hosts.node-b]
site = "dc"
interfaces = [{{ name = "eth0", link = "internet", address = "145.0.6.73" }}]
[openvpn.edu]
controller = "controller"
{profiles}
{firewalls}
"#
        )
    }

    fn profile(id: &str, number: u32, node: &str, extra: &str) -> String {
        format!(
            "[openvpn.edu.profiles.{id}]\nprofile_number = {number}\ndisplay_name = \"{id}\"\nnode = \"{node}\"\nhost_name = \"nodes.example.org\"\n{extra}\n"
        )
    }

    const GOOD_FW: &str = r#"
[firewall.node-a]
input_policy = "reject"
allow = [{ from = ["any"], proto = "udp", ports = [1194] }, { from = ["controller", "145.0.6.71/32", "2001:610:188:418:145:0:6:71/128"], proto = "tcp", ports = [41194] }, { from = ["any"], proto = "tcp", ports = [22, 443] }]
[firewall.node-b]
input_policy = "drop"
allow = [{ from = ["controller"], proto = "tcp" }]
"#;

    #[test]
    fn reference_001_is_clean() {
        let text = edu(
            &(profile(
                "node-a",
                1,
                "node-a",
                "range = \"10.1.0.0/25\"\nrange6 = \"fd00:1:1:1::/64\"",
            ) + &profile(
                "node-b",
                2,
                "node-b",
                "range = \"10.2.0.0/25\"\nrange6 = \"fd00:2:2:2::/64\"",
            )),
            GOOD_FW,
        );
        let findings = run(check, &text);
        assert!(findings.is_empty(), "{findings:#?}");
    }

    #[test]
    fn two_profiles_on_one_node_share_udp_1194() {
        let text = edu(
            &(profile("a1", 1, "node-a", "listen = \"145.0.6.72\"")
                + &profile(
                    "a2",
                    2,
                    "node-a",
                    "listen = \"145.0.6.72\"\nlisteners = [\"udp/1194\", \"tcp/1195\"]",
                )
                + &profile(
                    "a3",
                    3,
                    "node-a",
                    "listen = \"192.0.2.9\"\nlisteners = [\"udp/1194\"]",
                )),
            GOOD_FW,
        );
        let findings = run(check, &text);
        let d = with_code(&findings, "port-conflict");
        assert_eq!(
            fields(&findings, "port-conflict"),
            ["openvpn.edu.profiles.a2.listeners[0]"],
            "{d:#?}"
        );
        assert!(
            d[0].message.contains("OpenVPN profile `a2` of `edu` listens on udp/1194 on address 145.0.6.72 of `node-a`, which OpenVPN profile `a1` of `edu` already uses"),
            "{}",
            d[0].message
        );
    }

    #[test]
    fn openvpn_on_443_without_proxy_conflicts_with_https() {
        let without = edu(
            &profile("a", 1, "node-a", "listeners = [\"udp/1194\", \"tcp/443\"]"),
            GOOD_FW,
        );
        let findings = run(check, &without);
        assert_eq!(
            fields(&findings, "port-conflict"),
            ["openvpn.edu.profiles.a.listeners[1]"]
        );
        assert!(
            findings[0].message.contains("use_proxy = true"),
            "{}",
            findings[0].message
        );
        assert!(
            findings[0].message.contains("service `httpd`"),
            "{}",
            findings[0].message
        );
        let with = edu(
            &profile(
                "a",
                1,
                "node-a",
                "listeners = [\"udp/1194\", \"tcp/443\"]\nuse_proxy = true",
            ),
            GOOD_FW,
        );
        assert!(with_code(&run(check, &with), "port-conflict").is_empty());
    }

    #[test]
    fn overlay_daemons_conflict_on_one_host() {
        let text = r#"[scenario]
name = "t"
seed = 1
[links.internet]
kind = "wan"
[sites.s]
kind = "home"
[hosts.a]
site = "s"
interfaces = [{ name = "eth0", link = "internet", address = "192.0.2.1" }]
services = [{ name = "dns", listen = "udp/7000", address = "127.0.0.1" }]
[hosts.b]
site = "s"
interfaces = [{ name = "eth0", link = "internet", address = "192.0.2.2" }]
[wireguard.one]
cidr = "10.1.0.0/24"
port = 7000
hub = "a"
workers = ["b"]
[wireguard.two]
cidr = "10.2.0.0/24"
port = 7001
hub = "a"
workers = ["b"]
[mesh.m]
network_name = "VPN"
cidr = "10.42.42.0/24"
members = [{ host = "a" }, { host = "b" }]
[ipsec.x]
daemon = "libreswan"
auth = "psk"
layout = "full-mesh"
gateways = ["a", "b"]
[ipsec.y]
daemon = "libreswan"
auth = "psk"
layout = "full-mesh"
gateways = ["a", "b"]
"#;
        let findings = run(check, text);
        // The star and the mesh share udp/7000 on both hosts (the service
        // bound to 127.0.0.1 conflicts too, since the star binds all); two
        // IPsec deployments with one daemon share one IKE socket.
        let got = fields(&findings, "port-conflict");
        // On `a`: star vs service, mesh vs service, mesh vs star; on `b`: mesh vs star.
        assert_eq!(
            got,
            [
                "wireguard.one.port",
                "mesh.m.port",
                "mesh.m.port",
                "mesh.m.port"
            ],
            "{findings:#?}"
        );
        let strongswan = text.replace(
            "[ipsec.y]\ndaemon = \"libreswan\"",
            "[ipsec.y]\ndaemon = \"strongswan\"",
        );
        let findings = run(check, &strongswan);
        let ike: Vec<_> = with_code(&findings, "port-conflict")
            .into_iter()
            .filter(|d| d.field.as_deref().is_some_and(|f| f.starts_with("ipsec.")))
            .collect();
        assert_eq!(ike.len(), 4, "{ike:#?}"); // udp/500 and udp/4500 on a and b
    }

    #[test]
    fn bond_servers_on_one_port() {
        let text = r#"[scenario]
name = "t"
seed = 1
[links.isp1]
kind = "wan"
[links.isp2]
kind = "wan"
[sites.r]
kind = "roaming"
[hosts.a]
site = "r"
[hosts.b]
site = "r"
[bond.pair]
hosts = ["a", "b"]
mode = "balance-alb"
addresses = { a = "10.0.0.1/24", b = "10.0.0.2/24" }
links = [{ name = "ovn0", client = "a", server = "b", via = "isp1" }, { name = "ovn1", client = "a", server = "b", via = "isp2" }]
"#;
        assert_eq!(
            fields(&run(check, text), "port-conflict"),
            ["bond.pair.links[1].listen"]
        );
        let fixed = text.replace(
            "client = \"a\", server = \"b\", via = \"isp2\"",
            "client = \"b\", server = \"a\", via = \"isp2\"",
        );
        assert!(run(check, &fixed).is_empty());
    }

    #[test]
    fn profile_ranges_collide() {
        let text = edu(
            &(profile(
                "node-a",
                1,
                "node-a",
                "range = \"10.1.0.0/24\"\nrange6 = \"fd00:1::/48\"",
            ) + &profile(
                "node-b",
                2,
                "node-b",
                "range = \"10.1.0.128/25\"\nrange6 = \"fd00:1:0:5::/64\"",
            ) + &profile(
                "node-c",
                3,
                "node-b",
                "range = \"10.3.0.0/24\"\nlisteners = [\"udp/1195\"]",
            )),
            GOOD_FW,
        );
        let findings = run(check, &text);
        assert_eq!(
            fields(&findings, "profile-range-collision"),
            [
                "openvpn.edu.profiles.node-b.range",
                "openvpn.edu.profiles.node-b.range6"
            ]
        );
        let d = with_code(&findings, "profile-range-collision");
        assert!(d[0].message.contains("client range 10.1.0.128/25 of profile `node-b` of openvpn `edu` overlaps 10.1.0.0/24 of profile `node-a`"), "{}", d[0].message);
    }

    /// Regression: the plan once derived range6 from profile_number alone,
    /// so two deployments with profile 1 got the same /64.
    #[test]
    fn allocated_range6_never_collide_across_deployments() {
        let mut text = edu(
            &profile("node-a", 1, "node-a", "range = \"10.1.0.0/24\""),
            GOOD_FW,
        );
        text.push_str(
            "[openvpn.other]\ncontroller = \"controller\"\nuse_vpn_daemon = false\n[openvpn.other.profiles.x]\nprofile_number = 1\ndisplay_name = \"x\"\nnode = \"node-b\"\nhost_name = \"x.example.org\"\nrange = \"10.9.0.0/24\"\n",
        );
        let findings = run(check, &text);
        let d = with_code(&findings, "profile-range-collision");
        assert!(d.is_empty(), "{d:#?}");
    }

    #[test]
    fn daemon_port_without_firewall_or_with_accept() {
        let text = edu(
            &(profile("a", 1, "node-a", "") + &profile("b", 2, "node-b", "")),
            "[firewall.node-a]\ninput_policy = \"accept\"\n",
        );
        let findings = run(check, &text);
        assert_eq!(
            fields(&findings, "daemon-port-exposed"),
            ["firewall.node-a.input_policy", "hosts.node-b"]
        );
        let d = with_code(&findings, "daemon-port-exposed");
        assert!(
            d[1].message.contains("no [firewall.node-b]"),
            "{}",
            d[1].message
        );
        assert!(d[1].message.contains("input_policy = \"reject\""));
        assert!(d[1].message.contains("from = [\"controller\"]"));
    }

    #[test]
    fn daemon_port_open_to_wide_sources() {
        let fw = r#"
[firewall.node-a]
input_policy = "reject"
allow = [{ from = ["145.0.6.0/24", "node-b", "145.0.6.71"], proto = "tcp", ports = [41194] }, { from = ["any"], proto = "any" }, { from = ["any"], proto = "tcp", ports = [22] }]
[firewall.node-b]
input_policy = "reject"
allow = [{ from = ["controller"], proto = "tcp", ports = [41194] }]
"#;
        let text = edu(
            &(profile("a", 1, "node-a", "") + &profile("b", 2, "node-b", "")),
            fw,
        );
        let findings = run(check, &text);
        assert_eq!(
            fields(&findings, "daemon-port-exposed"),
            [
                "firewall.node-a.allow[0].from[0]",
                "firewall.node-a.allow[0].from[1]",
                "firewall.node-a.allow[1].from[0]"
            ]
        );
        let d = with_code(&findings, "daemon-port-exposed");
        assert!(
            d[0].message.contains(
                "holds addresses beyond the controller `controller`, including `node-b` (narrow it to 145.0.6.71/32)"
            ),
            "{}",
            d[0].message
        );
        assert!(
            d[1].message
                .contains("from `node-b`, which is not the controller"),
            "{}",
            d[1].message
        );
        assert!(d[2].message.contains("from any source"));
    }

    #[test]
    fn daemon_port_through_trusted_interfaces() {
        let mesh = r#"
[mesh.mgmt]
network_name = "VPN"
cidr = "10.42.42.0/24"
interface = "tap0"
members = [{ host = "controller" }, { host = "node-a" }, { host = "node-b" }]
[firewall.node-a]
input_policy = "reject"
trusted_interfaces = ["tap+", "lo", "tun+"]
[firewall.node-b]
input_policy = "reject"
trusted_interfaces = ["tap0"]
"#;
        let text = edu(
            &(profile("a", 1, "node-a", "") + &profile("b", 2, "node-b", "")),
            mesh,
        )
        .replace(
            "controller = \"controller\"\n",
            "controller = \"controller\"\nmanagement_mesh = \"mgmt\"\n",
        );
        let findings = run(check, &text);
        assert_eq!(
            fields(&findings, "daemon-port-exposed"),
            [
                "firewall.node-a.trusted_interfaces[0]",
                "firewall.node-a.trusted_interfaces[2]",
                "firewall.node-b.trusted_interfaces[0]"
            ]
        );
        let d = with_code(&findings, "daemon-port-exposed");
        assert!(
            d[0].message
                .contains("tap0 is mesh `mgmt`, whose members include `node-b`"),
            "{}",
            d[0].message
        );
        assert!(
            d[1].message.contains("every VPN client"),
            "{}",
            d[1].message
        );
        // A mesh of only the controller and the node is fine.
        let two = text.replace(", { host = \"node-b\" }]", "]").replace(
            "[firewall.node-b]\ninput_policy = \"reject\"\ntrusted_interfaces = [\"tap0\"]",
            "[firewall.node-b]\ninput_policy = \"reject\"",
        );
        let findings = run(check, &two);
        assert_eq!(
            fields(&findings, "daemon-port-exposed"),
            ["firewall.node-a.trusted_interfaces[2]"]
        );
    }

    #[test]
    fn iptables_interface_patterns() {
        assert!(if_matches("tap+", "tap0"));
        assert!(if_matches("tun+", "tun0"));
        assert!(!if_matches("tap+", "peervpn0"));
        assert!(if_matches("eth0", "eth0"));
        assert!(!if_matches("eth0", "eth01"));
        assert!(if_matches("+", "anything"));
    }
}

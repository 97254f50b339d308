//! Static reachability: a hop-by-hop forwarding model of the planned
//! topology, the way the kernels and cloud routers involved would forward a
//! packet, without time.
//!
//! At every host: delivery if the address is its own (then the input
//! firewall), otherwise forwarding only with `forwarding = true` and no cloud
//! source/dest check, IPsec policies (traffic selectors) before routing, then
//! longest-prefix match over connected prefixes, overlay routes, static
//! routes and the default route. Site routers apply the site's route table
//! and 1:1 NAT for elastic IPs; wan links deliver to public addresses.
//! Tunnels only carry traffic when their underlay works: a WireGuard worker
//! must reach the hub's endpoint, an IPsec gateway its peer, an OpenVPN
//! client its node (and has its VPN address only then), two PeerVPN members
//! each other at an address one of them dials (an init peer's, or one a
//! common peer lists: PeerVPN does not relay), a bond at least one of its
//! TAP links. WireGuard applies
//! cryptokey routing both ways (AllowedIPs pick the peer on send and filter
//! the source on receive). A flow "reaches" when the request is delivered
//! and the reply finds its way back (through NAT state where NAT was done).
//!
//! Used by `intent-violation`, `single-point-of-failure`, `routing-loop` and
//! the site matrix of `sim plan`.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::Serialize;
use vpnsim_plan::{Attachment, Plan};
use vpnsim_topology::format::{IpsecAuto, Policy, ProbeProto, SiteKind};
use vpnsim_topology::graph::NetworkGraph;
use vpnsim_topology::model::{
    BondId, EndpointHost, FlowM, HostId, LinkId, MeshId, OpenVpnId, OverlayId, RuleProto, Segment,
    SiteId, Source, StarId, Topology,
};
use vpnsim_topology::units::Proto;
use vpnsim_topology::{Diagnostic, FieldPath, Severity};

use crate::Ctx;

/// How much of one site reaches another.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Reach {
    /// Every host pair reaches.
    All,
    /// Some host pairs reach.
    Partial,
    /// No host pair reaches.
    None,
    /// There is no pair of distinct hosts to try (a site with one host, to itself).
    NoPairs,
}

/// Site × site reachability under static routing, rows = from, columns = to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SiteMatrix {
    pub sites: Vec<String>,
    pub cells: Vec<Vec<Reach>>,
}

/// A probe: what is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    pub proto: ProbeProto,
    pub port: Option<u16>,
}

impl Probe {
    pub const PING: Probe = Probe {
        proto: ProbeProto::Icmp,
        port: None,
    };

    fn transport(proto: Proto, port: u16) -> Probe {
        let proto = match proto {
            Proto::Tcp => ProbeProto::Tcp,
            Proto::Udp => ProbeProto::Udp,
        };
        Probe {
            proto,
            port: Some(port),
        }
    }
}

/// Outcome of tracing one flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    pub delivered: bool,
    /// Hops in order, as human names (`vpn-sydney`, `router of sydney`, `internet`).
    pub hops: Vec<String>,
    /// Hosts the packet went through, including both ends.
    pub hosts: Vec<HostId>,
    /// Why it stopped, when not delivered.
    pub reason: Option<String>,
    /// Set when the packet went around a loop.
    pub looped: bool,
    /// Static route entries used (field paths), for locating loops.
    pub routes_used: Vec<FieldPath>,
    /// Source address as the receiver saw it (after any NAT on the way).
    pub seen_source: Option<IpAddr>,
}

/// Where a packet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Hop {
    Host(HostId),
    Router(SiteId),
    Wan(LinkId),
}

/// What a route does with a packet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    /// To the owner of the destination on an attachment (connected network).
    Attached(Attachment),
    /// To the site's router (default route of a subnet host).
    Router(SiteId),
    /// Onto a wan link (default route of a host on the internet).
    Wan(LinkId),
    /// To a next-hop address.
    Via(IpAddr),
}

#[derive(Debug, Clone)]
struct RouteEntry {
    prefix: IpNet,
    action: Action,
    /// Interface name the route leaves by.
    dev: String,
    /// Field of a static route, for diagnostics.
    origin: Option<FieldPath>,
    /// Overlay routes are ignored when tracing the underlay.
    overlay: bool,
    /// Installed by an OpenVPN client of this deployment once connected
    /// (the host route to its server), gone while it is not.
    while_connected: Option<OpenVpnId>,
}

/// NAT done on the way, so the reply can be translated back.
#[derive(Debug, Clone, Copy)]
struct NatRecord {
    at: NatPoint,
    original: IpAddr,
    translated: IpAddr,
}

/// Where a translation happened: a host (OpenVPN node masquerading its
/// clients) or a site router (a home router, a NAT gateway).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum NatPoint {
    Host(HostId),
    Router(SiteId),
}

/// A packet in flight.
#[derive(Debug, Clone, Copy)]
struct Packet {
    src: IpAddr,
    dst: IpAddr,
    probe: Probe,
}

/// Tracing options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Mode {
    /// The sender's own tunnels (routes into them, IPsec policies) apply.
    /// Off for a tunnel's own datagrams (the underlay); hosts on the way
    /// forward those with all of theirs.
    overlays: bool,
    /// Stateful firewalls let replies through (conntrack ESTABLISHED).
    reply: bool,
}

/// The forwarding model of one planned topology with a set of failed hosts.
pub struct Engine<'a> {
    t: &'a Topology,
    plan: &'a Plan,
    failed: BTreeSet<HostId>,
    tables: Vec<Vec<RouteEntry>>,
    /// Addresses each host owns (interface addresses and public aliases).
    own: Vec<BTreeSet<IpAddr>>,
    /// (attachment, address) → host.
    on_attachment: BTreeMap<(Attachment, IpAddr), HostId>,
    /// Public address → host, per wan link (interfaces on it, and elastic IPs
    /// of hosts in sites whose uplink it is).
    on_wan: BTreeMap<(LinkId, IpAddr), HostId>,
    tunnel_cache: RefCell<BTreeMap<TunnelKey, Result<(), String>>>,
}

impl std::fmt::Debug for Engine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("failed", &self.failed)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TunnelKey {
    Star(StarId, HostId),
    Ipsec(HostId, HostId),
    Client(OpenVpnId, HostId),
    MeshPair(MeshId, HostId, HostId),
    Bond(BondId),
}

const MAX_HOPS: usize = 64;

impl<'a> Engine<'a> {
    pub fn new(t: &'a Topology, plan: &'a Plan) -> Self {
        Self::with_failed(t, plan, BTreeSet::new())
    }

    /// The model with some hosts down (for single-point-of-failure analysis).
    pub fn with_failed(t: &'a Topology, plan: &'a Plan, failed: BTreeSet<HostId>) -> Self {
        let mut own = vec![BTreeSet::new(); t.hosts.len()];
        let mut on_attachment = BTreeMap::new();
        for a in &plan.addresses {
            if let Some(set) = own.get_mut(a.host.index()) {
                set.insert(a.address);
            }
            on_attachment
                .entry((a.attachment, a.address))
                .or_insert(a.host);
        }
        let mut on_wan = BTreeMap::new();
        for id in t.host_ids() {
            let host = t.host(id);
            for alias in public_aliases(t, id) {
                own[id.index()].insert(alias);
            }
            for a in plan.host_addresses(id) {
                if let Attachment::Link(l) = a.attachment {
                    on_wan.entry((l, a.address)).or_insert(id);
                }
            }
            if let Some(uplink) = t.sites.get(host.site.index()).and_then(|s| s.uplink) {
                for alias in public_aliases(t, id) {
                    on_wan.entry((uplink, alias)).or_insert(id);
                }
            }
        }
        let tables = t.host_ids().map(|id| route_table(t, plan, id)).collect();
        Engine {
            t,
            plan,
            failed,
            tables,
            own,
            on_attachment,
            on_wan,
            tunnel_cache: RefCell::new(BTreeMap::new()),
        }
    }

    fn alive(&self, h: HostId) -> bool {
        !self.failed.contains(&h)
    }

    fn name(&self, h: HostId) -> &str {
        &self.t.host(h).name
    }

    /// The address a flow targets: the destination's address on `via`, or
    /// its first planned address.
    pub fn target_address(
        &self,
        to: HostId,
        via: Option<OverlayId>,
        family_of: Option<IpAddr>,
    ) -> Option<IpAddr> {
        let candidates: Vec<IpAddr> = match via {
            Some(OverlayId::Star(s)) => self
                .plan
                .address_on(to, Attachment::Star(s))
                .into_iter()
                .collect(),
            Some(OverlayId::Mesh(m)) => self
                .plan
                .address_on(to, Attachment::Mesh(m))
                .into_iter()
                .collect(),
            Some(OverlayId::Bond(b)) => self
                .plan
                .address_on(to, Attachment::Bond(b))
                .into_iter()
                .collect(),
            Some(OverlayId::OpenVpn(d)) => self
                .plan
                .host_addresses(to)
                .filter(|a| matches!(a.attachment, Attachment::Profile(dd, _) if dd == d))
                .map(|a| a.address)
                .chain(self.primary_addresses(to))
                .collect(),
            Some(OverlayId::Ipsec(_)) | None => self.primary_addresses(to),
        };
        match family_of {
            Some(f) => candidates
                .iter()
                .find(|a| a.is_ipv4() == f.is_ipv4())
                .or(candidates.first())
                .copied(),
            None => candidates.first().copied(),
        }
    }

    /// Whether `h` has `addr` now: an OpenVPN client has its VPN address
    /// only while connected (OpenVPN configures tun0 with what the server
    /// pushes).
    fn owns(&self, h: HostId, addr: IpAddr) -> bool {
        if !self.own[h.index()].contains(&addr) {
            return false;
        }
        self.plan
            .host_addresses(h)
            .filter(|a| a.address == addr)
            .all(|a| match a.attachment {
                Attachment::Profile(d, p) => {
                    self.t.openvpn[d.index()].profiles[p as usize].node == h
                        || self.tunnel_up(TunnelKey::Client(d, h)).is_ok()
                }
                _ => true,
            })
    }

    /// The private address an elastic IP of `h` is translated to by its
    /// site router (1:1 NAT, IPv4): the host's first IPv4 interface
    /// address. `None` when `addr` is not one of its elastic IPs.
    fn elastic_private(&self, h: HostId, addr: IpAddr) -> Option<IpAddr> {
        if !addr.is_ipv4() || !public_aliases(self.t, h).contains(&addr) {
            return None;
        }
        self.primary_addresses(h).into_iter().find(IpAddr::is_ipv4)
    }

    /// Underlay addresses of a host in interface order.
    fn primary_addresses(&self, h: HostId) -> Vec<IpAddr> {
        self.plan
            .host_addresses(h)
            .filter(|a| matches!(a.attachment, Attachment::Subnet(_) | Attachment::Link(_)))
            .map(|a| a.address)
            .collect()
    }

    /// Source address `from` uses towards `dst`: the address of the
    /// interface the route leaves by (same family), else its first address.
    fn source_for(&self, from: HostId, dst: IpAddr, mode: Mode) -> Option<IpAddr> {
        let route = self.lookup(from, dst, mode);
        let same_family = |a: &&vpnsim_plan::Address| a.address.is_ipv4() == dst.is_ipv4();
        let by_dev = route.and_then(|r| {
            self.plan
                .host_addresses(from)
                .filter(same_family)
                .find(|a| a.interface == r.dev)
                .map(|a| a.address)
        });
        by_dev.or_else(|| {
            self.plan
                .host_addresses(from)
                .find(same_family)
                .map(|a| a.address)
        })
    }

    /// Traces a flow from `from` to `dst` and, when delivered, the reply.
    pub fn flow(&self, from: HostId, dst: IpAddr, probe: Probe) -> Trace {
        self.flow_mode(
            from,
            dst,
            probe,
            Mode {
                overlays: true,
                reply: false,
            },
        )
    }

    fn flow_mode(&self, from: HostId, dst: IpAddr, probe: Probe, mode: Mode) -> Trace {
        let Some(src) = self.source_for(from, dst, mode) else {
            return Trace::dropped(
                vec![self.name(from).to_string()],
                vec![from],
                format!(
                    "`{}` has no address of the family of {dst}",
                    self.name(from)
                ),
            );
        };
        let mut nat = Vec::new();
        let forward = self.trace(Hop::Host(from), Packet { src, dst, probe }, mode, &mut nat);
        if !forward.delivered {
            return forward;
        }
        let Some(&responder) = forward.hosts.last() else {
            return forward;
        };
        // The reply leaves from the address that was reached, towards the
        // source as the responder saw it (after NAT).
        let seen_src = forward.seen_source.unwrap_or(src);
        let reply_mode = Mode {
            reply: true,
            ..mode
        };
        // Replies pass the NAT points again in reverse: conntrack maps the
        // translated address back to the original one there.
        let reply = self.trace(
            Hop::Host(responder),
            Packet {
                src: dst,
                dst: seen_src,
                probe,
            },
            reply_mode,
            &mut nat,
        );
        let mut trace = forward;
        trace.routes_used.extend(reply.routes_used);
        if !reply.delivered || reply.hosts.last() != Some(&from) {
            trace.delivered = false;
            trace.looped |= reply.looped;
            trace.reason = Some(format!(
                "the request arrives but the reply does not return: {} (reply path: {})",
                reply
                    .reason
                    .unwrap_or_else(|| "it is delivered to another host".into()),
                reply.hops.join(" → ")
            ));
        }
        trace
    }

    /// Longest prefix match; among equally long prefixes the route
    /// installed first wins, as in the kernel: the table lists connected
    /// networks, then static routes (ifupdown, at boot), then the routes the
    /// VPN daemons add when they start. A later `ip route add` of an
    /// existing prefix fails (EEXIST), and the prefix route of an address
    /// added later is appended behind the existing one.
    ///
    /// An OpenVPN client adds its routes (the client range, `def1` and
    /// the host route to its server) only once connected: while its
    /// tunnel is down, and while it connects, they are not there.
    fn lookup(&self, h: HostId, dst: IpAddr, mode: Mode) -> Option<&RouteEntry> {
        self.tables
            .get(h.index())?
            .iter()
            .filter(|r| (mode.overlays || !r.overlay) && r.prefix.contains(&dst))
            .filter(|r| match r.action {
                Action::Attached(Attachment::Profile(d, p)) if r.overlay => {
                    let node = self.t.openvpn[d.index()].profiles[p as usize].node;
                    node == h || self.tunnel_up(TunnelKey::Client(d, h)).is_ok()
                }
                _ => r
                    .while_connected
                    .is_none_or(|d| self.tunnel_up(TunnelKey::Client(d, h)).is_ok()),
            })
            .rev()
            .max_by_key(|r| r.prefix.prefix_len())
    }

    /// Walks a packet hop by hop until it is delivered, dropped or loops.
    fn trace(&self, start: Hop, mut packet: Packet, mode: Mode, nat: &mut Vec<NatRecord>) -> Trace {
        let mut trace = Trace {
            delivered: false,
            hops: Vec::new(),
            hosts: Vec::new(),
            reason: None,
            looped: false,
            routes_used: Vec::new(),
            seen_source: None,
        };
        let mut seen = BTreeSet::new();
        let mut hop = start;
        let mut ingress: Option<String> = None;
        let mut from_peer: Option<(StarId, HostId)> = None;
        let mut from_tunnel = false;
        let mut from_wan = false;
        for step in 0..MAX_HOPS {
            trace.hops.push(self.hop_name(hop));
            if !seen.insert((hop, packet.src, packet.dst)) {
                trace.looped = true;
                trace.reason = Some(format!("routing loop: {}", trace.hops.join(" → ")));
                return trace;
            }
            let next = match hop {
                Hop::Host(h) => {
                    trace.hosts.push(h);
                    if !self.alive(h) {
                        trace.reason = Some(format!("`{}` is down", self.name(h)));
                        return trace;
                    }
                    if let Some((star, sender)) = from_peer.take()
                        && let Err(e) = self.cryptokey_accepts(star, h, sender, packet.src)
                    {
                        trace.reason = Some(e);
                        return trace;
                    }
                    // Addressed to this host as it arrives, before conntrack
                    // translates a reply back.
                    let addressed_here = self.owns(h, packet.dst);
                    // A reply to the host's elastic IP arrives through the
                    // site router's 1:1 NAT at the private address it maps
                    // to, where the host's own conntrack entry waits.
                    let arrived_at = self.elastic_private(h, packet.dst).unwrap_or(packet.dst);
                    if mode.reply
                        && let Some(r) = nat
                            .iter()
                            .find(|r| r.at == NatPoint::Host(h) && r.translated == arrived_at)
                    {
                        packet.dst = r.original;
                    }
                    if self.owns(h, packet.dst) {
                        trace.seen_source = Some(packet.src);
                        if mode.reply {
                            trace.delivered = true;
                            return trace;
                        }
                        match self.firewall_admits(h, packet, ingress.as_deref()) {
                            Ok(()) => trace.delivered = true,
                            Err(e) => trace.reason = Some(e),
                        }
                        return trace;
                    }
                    let arrival = Arrival {
                        originated: step == 0,
                        ingress: ingress.as_deref(),
                        from_tunnel,
                        addressed_here,
                    };
                    // A tunnel daemon sends its datagrams around its host's
                    // tunnels, but every host they cross routes them with
                    // its whole table, IPsec policies and VPN routes
                    // included.
                    let hop_mode = if step == 0 {
                        mode
                    } else {
                        Mode {
                            overlays: true,
                            ..mode
                        }
                    };
                    self.host_step(h, arrival, &mut packet, hop_mode, nat, &mut trace)
                }
                Hop::Router(site) => self
                    .router_step(site, &mut packet, mode, nat, from_wan)
                    .map(|(next, route)| {
                        trace.routes_used.extend(route);
                        next
                    }),
                Hop::Wan(link) => self.wan_step(link, packet),
            };
            match next {
                Ok(Next {
                    hop: n,
                    ingress: i,
                    peer,
                    tunnel,
                }) => {
                    from_wan = matches!(hop, Hop::Wan(_));
                    hop = n;
                    ingress = i;
                    from_peer = peer;
                    from_tunnel = tunnel;
                }
                Err(reason) => {
                    trace.reason = Some(reason);
                    return trace;
                }
            }
        }
        trace.looped = true;
        trace.reason = Some(format!(
            "more than {MAX_HOPS} hops: {}",
            trace.hops.join(" → ")
        ));
        trace
    }

    fn hop_name(&self, hop: Hop) -> String {
        match hop {
            Hop::Host(h) => self.name(h).to_string(),
            Hop::Router(s) => format!("router of {}", self.t.site(s).name),
            Hop::Wan(l) => self.t.link(l).name.clone(),
        }
    }

    fn host_step(
        &self,
        h: HostId,
        arrival: Arrival<'_>,
        packet: &mut Packet,
        mode: Mode,
        nat: &mut Vec<NatRecord>,
        trace: &mut Trace,
    ) -> Result<Next, String> {
        let host = self.t.host(h);
        let originated = arrival.originated;
        // The cloud checks packets on the instance's network interface: one
        // arriving off the subnet must be addressed to the instance, one
        // leaving onto it must come from the instance (after NAT). Tunnel
        // traffic crosses the interface encapsulated, to and from the
        // instance itself.
        let source_dest_check = host.source_dest_check
            && self
                .t
                .sites
                .get(host.site.index())
                .is_some_and(|s| s.kind == SiteKind::CloudVpc);
        let checked = |packet: &Packet| {
            format!(
                "`{}` forwards {} → {} but its source/dest check is on (set source_dest_check = false)",
                host.name, packet.src, packet.dst
            )
        };
        if !originated {
            if !host.forwarding {
                return Err(format!(
                    "`{}` would have to forward {} → {} but has forwarding = false",
                    host.name, packet.src, packet.dst
                ));
            }
            if source_dest_check && !arrival.from_tunnel && !arrival.addressed_here {
                return Err(checked(packet));
            }
        }
        if mode.overlays
            && let Some(next) = self.ipsec_step(h, *packet)?
        {
            if !originated {
                self.forward_admits(h, arrival.ingress, self.default_dev(h).as_deref(), *packet)?;
            }
            return Ok(next);
        }
        let Some(route) = self.lookup(h, packet.dst, mode).cloned() else {
            return Err(format!("`{}` has no route to {}", host.name, packet.dst));
        };
        if !originated {
            self.forward_admits(h, arrival.ingress, Some(&route.dev), *packet)?;
        }
        trace.routes_used.extend(route.origin.clone());
        self.snat_if_needed(h, &route, packet, nat);
        if source_dest_check && !route.overlay && !self.own[h.index()].contains(&packet.src) {
            return Err(checked(packet));
        }
        match route.action {
            Action::Attached(att) => self.attached_step(h, att, *packet, &route.dev),
            Action::Router(site) => Ok(Next::plain(Hop::Router(site))),
            Action::Wan(link) => Ok(Next::plain(Hop::Wan(link))),
            Action::Via(gw) => self.via_step(h, gw, &route.dev),
        }
    }

    /// OpenVPN nodes NAT client traffic leaving by the profile's external
    /// interface (`ext_if`), and only that.
    fn snat_if_needed(
        &self,
        h: HostId,
        route: &RouteEntry,
        packet: &mut Packet,
        nat: &mut Vec<NatRecord>,
    ) {
        if route.overlay {
            return;
        }
        for (d, dep) in self.t.openvpn.iter().enumerate() {
            for (p, profile) in dep.profiles.iter().enumerate() {
                if profile.node != h {
                    continue;
                }
                let Some(range) = self.plan.client_range(OpenVpnId(d as u32), p) else {
                    continue;
                };
                let in_range = IpNet::V4(range.range).contains(&packet.src)
                    || range
                        .range6
                        .is_some_and(|r| IpNet::V6(r).contains(&packet.src));
                let family_nat = profile.spec.nat.iter().any(|f| {
                    matches!(
                        (f, packet.src),
                        (vpnsim_topology::format::NatFamily::IPv4, IpAddr::V4(_))
                            | (vpnsim_topology::format::NatFamily::IPv6, IpAddr::V6(_))
                    )
                });
                if in_range && family_nat {
                    // The rule is `-s RANGE -o ext_if -j SNAT`: traffic
                    // leaving by another interface keeps its source.
                    if route.dev != profile.spec.ext_if {
                        return;
                    }
                    let translated = self
                        .plan
                        .host_addresses(h)
                        .find(|a| {
                            a.interface == route.dev && a.address.is_ipv4() == packet.src.is_ipv4()
                        })
                        .map(|a| a.address)
                        .or_else(|| {
                            public_aliases(self.t, h)
                                .into_iter()
                                .find(|a| a.is_ipv4() == packet.src.is_ipv4())
                        });
                    if let Some(translated) = translated {
                        nat.push(NatRecord {
                            at: NatPoint::Host(h),
                            original: packet.src,
                            translated,
                        });
                        packet.src = translated;
                    }
                    return;
                }
            }
        }
    }

    /// Policy-based IPsec: a packet matching a tunnel's selectors goes to the
    /// peer gateway, whatever the routing table says.
    fn ipsec_step(&self, h: HostId, packet: Packet) -> Result<Option<Next>, String> {
        for ipsec in &self.t.ipsec {
            for tunnel in &ipsec.tunnels {
                let (local, remote, peer) = if tunnel.left == h {
                    (&tunnel.left_subnets, &tunnel.right_subnets, tunnel.right)
                } else if tunnel.right == h {
                    (&tunnel.right_subnets, &tunnel.left_subnets, tunnel.left)
                } else {
                    continue;
                };
                let matches = local.iter().any(|n| n.contains(&packet.src))
                    && remote.iter().any(|n| n.contains(&packet.dst));
                if !matches {
                    continue;
                }
                if ipsec.auto == IpsecAuto::Add {
                    // Both ends only listen: no SA ever comes up.
                    return Err(format!(
                        "IPsec tunnel {} of `{}` never comes up: auto = \"add\" on both gateways, so neither initiates",
                        tunnel.name, ipsec.name
                    ));
                }
                return match self.tunnel_up(TunnelKey::Ipsec(
                    tunnel.left.min(tunnel.right),
                    tunnel.left.max(tunnel.right),
                )) {
                    Ok(()) => Ok(Some(Next {
                        hop: Hop::Host(peer),
                        ingress: self.default_dev(peer),
                        peer: None,
                        tunnel: true,
                    })),
                    Err(e) => Err(format!(
                        "IPsec tunnel {} of `{}` is down: {e}",
                        tunnel.name, ipsec.name
                    )),
                };
            }
        }
        Ok(None)
    }

    fn attached_step(
        &self,
        h: HostId,
        att: Attachment,
        packet: Packet,
        dev: &str,
    ) -> Result<Next, String> {
        match att {
            Attachment::Star(s) => self.star_step(s, h, packet, dev),
            Attachment::Profile(d, p) => self.profile_step(d, p, h, packet),
            Attachment::Bond(b) => {
                self.tunnel_up(TunnelKey::Bond(b))
                    .map_err(|e| format!("bond `{}` is down: {e}", self.t.bonds[b.index()].name))?;
                self.neighbour(att, packet.dst, dev)
            }
            Attachment::Mesh(m) => self.mesh_step(m, h, packet.dst, dev),
            Attachment::Subnet(s) => match self.on_attachment.get(&(att, packet.dst)) {
                Some(peer) => Ok(Next {
                    hop: Hop::Host(*peer),
                    ingress: self.iface_on(*peer, att, dev),
                    peer: None,
                    tunnel: false,
                }),
                None => Err(format!(
                    "no host in subnet `{}` has {}",
                    self.t.subnet(s).name,
                    packet.dst
                )),
            },
            Attachment::Link(_) => self.neighbour(att, packet.dst, dev),
        }
    }

    /// PeerVPN switches a frame to the member that owns `next_hop` (the
    /// destination, or a member routing on to it), over that pair's
    /// connection.
    fn mesh_step(&self, m: MeshId, h: HostId, next_hop: IpAddr, dev: &str) -> Result<Next, String> {
        let att = Attachment::Mesh(m);
        let peer = self
            .on_attachment
            .get(&(att, next_hop))
            .copied()
            .ok_or_else(|| {
                format!(
                    "no member of mesh `{}` has {next_hop}",
                    self.t.meshes[m.index()].name,
                )
            })?;
        self.tunnel_up(TunnelKey::MeshPair(m, h.min(peer), h.max(peer)))
            .map_err(|e| {
                format!(
                    "mesh `{}` does not connect `{}` and `{}`: {e}",
                    self.t.meshes[m.index()].name,
                    self.name(h),
                    self.name(peer)
                )
            })?;
        Ok(Next {
            hop: Hop::Host(peer),
            ingress: Some(dev.to_string()),
            peer: None,
            tunnel: true,
        })
    }

    /// The interface a packet sent on `att` arrives on at `peer`: the
    /// peer's own interface there (the sender's may be named otherwise),
    /// else the sender's `dev` (overlay devices share their name).
    fn iface_on(&self, peer: HostId, att: Attachment, dev: &str) -> Option<String> {
        self.plan
            .host_addresses(peer)
            .find(|a| a.attachment == att)
            .map(|a| a.interface.clone())
            .or_else(|| Some(dev.to_string()))
    }

    fn neighbour(&self, att: Attachment, dst: IpAddr, dev: &str) -> Result<Next, String> {
        self.on_attachment
            .get(&(att, dst))
            .map(|peer| Next {
                hop: Hop::Host(*peer),
                ingress: self.iface_on(*peer, att, dev),
                peer: None,
                tunnel: matches!(att, Attachment::Bond(_)),
            })
            .ok_or_else(|| format!("no neighbour on {dev} has {dst}"))
    }

    /// WireGuard cryptokey routing on send: the peer whose AllowedIPs contain
    /// the destination gets the packet, if its tunnel is up.
    fn star_step(&self, s: StarId, h: HostId, packet: Packet, dev: &str) -> Result<Next, String> {
        let star = &self.t.stars[s.index()];
        let peers: Vec<HostId> = if h == star.hub {
            star.workers.clone()
        } else {
            vec![star.hub]
        };
        let peer = peers
            .into_iter()
            .filter(|p| {
                self.allowed_ips(s, h, *p)
                    .iter()
                    .any(|n| n.contains(&packet.dst))
            })
            .max_by_key(|p| {
                self.allowed_ips(s, h, *p)
                    .iter()
                    .filter(|n| n.contains(&packet.dst))
                    .map(|n| n.prefix_len())
                    .max()
            })
            .ok_or_else(|| {
                format!(
                    "no WireGuard peer of `{}` on {dev} has {} in its AllowedIPs",
                    self.name(h),
                    packet.dst
                )
            })?;
        let worker = if peer == star.hub { h } else { peer };
        self.tunnel_up(TunnelKey::Star(s, worker)).map_err(|e| {
            format!(
                "WireGuard tunnel `{}` ↔ `{}` of `{}` is down: {e}",
                self.name(star.hub),
                self.name(worker),
                star.name
            )
        })?;
        if peer == worker && !self.worker_initiates(s, worker) {
            return Err(format!(
                "`{}` cannot send to worker `{}` of `{}`: the hub has no endpoint for it and learns one only from its handshake, but it has no persistent_keepalive and routes nothing into {}",
                self.name(star.hub),
                self.name(worker),
                star.name,
                star.interface
            ));
        }
        Ok(Next {
            hop: Hop::Host(peer),
            ingress: Some(dev.to_string()),
            peer: Some((s, h)),
            tunnel: true,
        })
    }

    /// Whether the hub of star `s` learns where `worker` is: the hub knows
    /// its endpoint, or the worker initiates a handshake, which it does
    /// with `persistent_keepalive` or when it sends something into the
    /// tunnel: the model takes it that a worker does when at least one of
    /// its routes into the interface is not shadowed by another route.
    fn worker_initiates(&self, s: StarId, worker: HostId) -> bool {
        let star = &self.t.stars[s.index()];
        if star.endpoints.contains_key(&worker)
            || star.persistent_keepalive.is_some_and(|k| k.0 > 0)
        {
            return true;
        }
        let mode = Mode {
            overlays: true,
            reply: false,
        };
        self.tables.get(worker.index()).is_some_and(|table| {
            table
                .iter()
                .filter(|r| r.overlay && r.dev == star.interface)
                .any(|r| {
                    self.lookup(worker, probe_address(r.prefix), mode)
                        .is_some_and(|chosen| chosen.dev == star.interface)
                })
        })
    }

    /// AllowedIPs that member `on` configures for its peer `p`.
    fn allowed_ips(&self, s: StarId, on: HostId, p: HostId) -> Vec<IpNet> {
        star_allowed_ips(self.t, self.plan, s, on, p)
    }

    /// WireGuard cryptokey routing on receive: the source must be in the
    /// sender's AllowedIPs as the receiver configured them.
    fn cryptokey_accepts(
        &self,
        s: StarId,
        receiver: HostId,
        sender: HostId,
        src: IpAddr,
    ) -> Result<(), String> {
        if self
            .allowed_ips(s, receiver, sender)
            .iter()
            .any(|n| n.contains(&src))
        {
            Ok(())
        } else {
            Err(format!(
                "WireGuard drops {src} from `{}`: not in that peer's AllowedIPs",
                self.name(sender)
            ))
        }
    }

    fn profile_step(
        &self,
        d: OpenVpnId,
        p: u32,
        h: HostId,
        packet: Packet,
    ) -> Result<Next, String> {
        let dep = &self.t.openvpn[d.index()];
        let profile = &dep.profiles[p as usize];
        if h == profile.node {
            let client = self
                .on_attachment
                .get(&(Attachment::Profile(d, p), packet.dst))
                .copied()
                .ok_or_else(|| {
                    format!("no client of profile `{}` has {}", profile.id, packet.dst)
                })?;
            self.tunnel_up(TunnelKey::Client(d, client)).map_err(|e| {
                format!(
                    "OpenVPN client `{}` is not connected: {e}",
                    self.name(client)
                )
            })?;
            Ok(Next {
                hop: Hop::Host(client),
                ingress: Some(vpnsim_plan::CLIENT_DEVICE.to_string()),
                peer: None,
                tunnel: true,
            })
        } else {
            self.tunnel_up(TunnelKey::Client(d, h)).map_err(|e| {
                format!(
                    "OpenVPN tunnel of `{}` to `{}` is down: {e}",
                    self.name(h),
                    self.name(profile.node)
                )
            })?;
            // The server takes from a client only packets sent from the
            // address it gave that client ("MULTI: bad source address from
            // client"); vpnsim writes no `iroute`.
            let own = self
                .plan
                .host_addresses(h)
                .any(|a| a.attachment == Attachment::Profile(d, p) && a.address == packet.src);
            if !own {
                return Err(format!(
                    "OpenVPN node `{}` drops {} from client `{}`: not the address the node gave it (MULTI: bad source address)",
                    self.name(profile.node),
                    packet.src,
                    self.name(h)
                ));
            }
            Ok(Next {
                hop: Hop::Host(profile.node),
                ingress: Some(vpnsim_plan::profile_device(profile.spec.profile_number)),
                peer: None,
                tunnel: true,
            })
        }
    }

    fn via_step(&self, h: HostId, gw: IpAddr, dev: &str) -> Result<Next, String> {
        for a in self.plan.host_addresses(h) {
            if a.with_prefix().trunc().contains(&gw) {
                // A gateway on the mesh is reached through the PeerVPN
                // switch, which needs that pair connected.
                if let Attachment::Mesh(m) = a.attachment {
                    return self.mesh_step(m, h, gw, &a.interface);
                }
                if let Some(peer) = self.on_attachment.get(&(a.attachment, gw)) {
                    return Ok(Next {
                        hop: Hop::Host(*peer),
                        ingress: self.iface_on(*peer, a.attachment, dev),
                        peer: None,
                        tunnel: false,
                    });
                }
                if let Attachment::Subnet(s) = a.attachment {
                    return Ok(Next::plain(Hop::Router(self.t.subnet(s).site)));
                }
            }
        }
        // A wan link is one routed network whose default route is on-link
        // ("every attached public address reaches every other"), so the
        // kernel accepts any address on it as a gateway, whatever the
        // prefix: on the link of the interface the route leaves by.
        for a in self.plan.host_addresses(h) {
            if let Attachment::Link(l) = a.attachment
                && a.interface == dev
                && self.t.link(l).kind == vpnsim_topology::format::LinkKind::Wan
                && let Some(peer) = self.on_attachment.get(&(a.attachment, gw))
            {
                return Ok(Next {
                    hop: Hop::Host(*peer),
                    ingress: self.iface_on(*peer, a.attachment, dev),
                    peer: None,
                    tunnel: false,
                });
            }
        }
        Err(format!(
            "next hop {gw} of `{}` is on none of its networks",
            self.name(h)
        ))
    }

    /// The implicit router of a site: its subnets, its route table, then the
    /// internet through the uplink with 1:1 NAT for elastic IPs.
    fn router_step(
        &self,
        site_id: SiteId,
        packet: &mut Packet,
        mode: Mode,
        nat: &mut Vec<NatRecord>,
        from_wan: bool,
    ) -> Result<(Next, Option<FieldPath>), String> {
        let site = self.t.site(site_id);
        // Replies are translated back only as they come in from the uplink:
        // an answer sent from inside the site to the router's own public
        // address (after a hairpin out and back in) meets no NAT loopback.
        if mode.reply
            && from_wan
            && let Some(r) = nat
                .iter()
                .find(|r| r.at == NatPoint::Router(site_id) && r.translated == packet.dst)
        {
            packet.dst = r.original;
        }
        if site.nat_address.map(IpAddr::V4) == Some(packet.dst) {
            if !from_wan {
                return Err(format!(
                    "{} → {} is sent to the router of `{}` from inside: it is the router's own public address, and the router does no NAT loopback",
                    packet.src, packet.dst, site.name
                ));
            }
            return Err(format!(
                "`{}` masquerades behind {}: nothing can dial in to it (no port forward)",
                site.name, packet.dst
            ));
        }
        let mut best: Option<(u8, Next, Option<FieldPath>)> = None;
        let mut consider = |len: u8, next: Next, route: Option<FieldPath>| {
            if best.as_ref().is_none_or(|(l, _, _)| len > *l) {
                best = Some((len, next, route));
            }
        };
        for s in &site.subnets {
            let subnet = self.t.subnet(*s);
            for net in std::iter::once(subnet.cidr).chain(subnet.cidr6) {
                if net.contains(&packet.dst) {
                    let next = match self
                        .on_attachment
                        .get(&(Attachment::Subnet(*s), packet.dst))
                    {
                        Some(h) => Next {
                            hop: Hop::Host(*h),
                            ingress: self.iface_in_site(*h, site_id),
                            peer: None,
                            tunnel: false,
                        },
                        None => {
                            return Err(format!(
                                "no host in subnet `{}` has {}",
                                subnet.name, packet.dst
                            ));
                        }
                    };
                    consider(net.prefix_len(), next, None);
                }
            }
        }
        for (i, (to, via)) in site.routes.iter().enumerate() {
            if to.contains(&packet.dst) {
                consider(
                    to.prefix_len(),
                    Next {
                        hop: Hop::Host(*via),
                        ingress: self.iface_in_site(*via, site_id),
                        peer: None,
                        tunnel: false,
                    },
                    Some(site.path.key("routes").index(i)),
                );
            }
        }
        if let Some((_, next, route)) = best {
            return Ok((next, route));
        }
        if site.cidrs.iter().any(|c| c.contains(&packet.dst)) {
            return Err(format!(
                "{} is inside site `{}` but in none of its subnets",
                packet.dst, site.name
            ));
        }
        let Some(uplink) = site.uplink else {
            return Err(format!(
                "the router of `{}` has no route to {} (no uplink, no route-table entry)",
                site.name, packet.dst
            ));
        };
        if !self.is_public_on(uplink, packet.src) {
            let owner = self
                .on_attachment
                .iter()
                .find(|((att, a), _)| *a == packet.src && matches!(att, Attachment::Subnet(_)))
                .map(|(_, h)| *h);
            let elastic = owner.and_then(|h| {
                public_aliases(self.t, h)
                    .into_iter()
                    .find(|a| a.is_ipv4() == packet.src.is_ipv4())
            });
            let masquerade = site
                .nat_address
                .map(IpAddr::V4)
                .filter(|a| a.is_ipv4() == packet.src.is_ipv4());
            match (elastic, masquerade) {
                // Elastic IPs are 1:1: the host answers to the alias itself.
                (Some(public), _) => packet.src = public,
                (None, Some(public)) => {
                    nat.push(NatRecord {
                        at: NatPoint::Router(site_id),
                        original: packet.src,
                        translated: public,
                    });
                    packet.src = public;
                }
                (None, None) => {
                    return Err(format!(
                        "{} leaves `{}` for the internet without a public address (no elastic IP, no nat_address on the site)",
                        packet.src, site.name
                    ));
                }
            }
        }
        Ok((Next::plain(Hop::Wan(uplink)), None))
    }

    fn is_public_on(&self, link: LinkId, addr: IpAddr) -> bool {
        self.on_wan.contains_key(&(link, addr))
    }

    fn wan_step(&self, link: LinkId, packet: Packet) -> Result<Next, String> {
        let masquerading = self.t.sites.iter().position(|s| {
            s.uplink == Some(link) && s.nat_address.map(IpAddr::V4) == Some(packet.dst)
        });
        if let Some(site) = masquerading {
            return Ok(Next::plain(Hop::Router(SiteId(site as u32))));
        }
        let host = self
            .on_wan
            .get(&(link, packet.dst))
            .copied()
            .ok_or_else(|| format!("nobody on `{}` has {}", self.t.link(link).name, packet.dst))?;
        let iface = self
            .plan
            .host_addresses(host)
            .find(|a| a.attachment == Attachment::Link(link))
            .map(|a| a.interface.clone())
            .or_else(|| self.default_dev(host));
        // An elastic IP arrives through the site router to the private address.
        Ok(Next {
            hop: Hop::Host(host),
            ingress: iface,
            peer: None,
            tunnel: false,
        })
    }

    /// FORWARD chain: with a restrictive forward policy only the declared
    /// interface pairs pass (in both directions only if both are declared,
    /// as in a rule set without a conntrack shortcut).
    fn forward_admits(
        &self,
        h: HostId,
        ingress: Option<&str>,
        egress: Option<&str>,
        packet: Packet,
    ) -> Result<(), String> {
        let Some(fw) = self.t.firewalls.get(&h) else {
            return Ok(());
        };
        if fw.forward_policy == Policy::Accept {
            return Ok(());
        }
        let (Some(ingress), Some(egress)) = (ingress, egress) else {
            return Err(format!(
                "the firewall of `{}` forwards only declared interface pairs and the packet's interfaces are unknown",
                self.name(h)
            ));
        };
        let allowed = fw.forward.iter().any(|r| {
            interface_matches(&r.in_interface, ingress)
                && interface_matches(&r.out_interface, egress)
        });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "the firewall of `{}` does not forward {ingress} → {egress} ({} → {}); add a `forward` rule for that interface pair",
                self.name(h),
                packet.src,
                packet.dst
            ))
        }
    }

    /// The device of a host's IPv4 default route.
    fn default_dev(&self, h: HostId) -> Option<String> {
        self.tables
            .get(h.index())?
            .iter()
            .find(|r| !r.overlay && r.prefix.prefix_len() == 0 && r.prefix.addr().is_ipv4())
            .map(|r| r.dev.clone())
    }

    /// The interface by which a host sits in one of a site's subnets.
    fn iface_in_site(&self, h: HostId, site: SiteId) -> Option<String> {
        self.t
            .host(h)
            .interfaces
            .iter()
            .find_map(|i| match i.segment {
                Segment::Subnet(s) if self.t.subnet(s).site == site => Some(i.name.clone()),
                _ => None,
            })
    }

    /// Input firewall at the destination.
    fn firewall_admits(
        &self,
        h: HostId,
        packet: Packet,
        ingress: Option<&str>,
    ) -> Result<(), String> {
        let Some(fw) = self.t.firewalls.get(&h) else {
            return Ok(());
        };
        if fw.input_policy == Policy::Accept {
            return Ok(());
        }
        if let Some(dev) = ingress
            && fw
                .trusted_interfaces
                .iter()
                .any(|p| interface_matches(p, dev))
        {
            return Ok(());
        }
        let admitted = fw.allow.iter().any(|rule| {
            let proto_ok = match (rule.proto, packet.probe.proto) {
                (RuleProto::Any, _) => true,
                (RuleProto::Icmp, ProbeProto::Icmp) => true,
                (RuleProto::Tcp, ProbeProto::Tcp) | (RuleProto::Udp, ProbeProto::Udp) => {
                    rule.ports.is_empty()
                        || packet.probe.port.is_some_and(|p| rule.ports.contains(&p))
                }
                _ => false,
            };
            proto_ok && rule.from.iter().any(|s| self.source_matches(s, packet.src))
        });
        if admitted {
            Ok(())
        } else {
            let what = match (packet.probe.proto, packet.probe.port) {
                (ProbeProto::Icmp, _) => "icmp".to_string(),
                (p, Some(port)) => format!("{}/{port}", format!("{p:?}").to_lowercase()),
                (p, None) => format!("{p:?}").to_lowercase(),
            };
            Err(format!(
                "the firewall of `{}` ({:?} policy) does not admit {what} from {}",
                self.name(h),
                fw.input_policy,
                packet.src
            )
            .replace("Reject policy", "reject policy")
            .replace("Drop policy", "drop policy"))
        }
    }

    fn source_matches(&self, source: &Source, src: IpAddr) -> bool {
        match source {
            Source::Any => true,
            Source::Net(n) => n.contains(&src),
            Source::Host(h) => self.own.get(h.index()).is_some_and(|o| o.contains(&src)),
        }
    }

    /// Whether a tunnel's underlay works (cached).
    fn tunnel_up(&self, key: TunnelKey) -> Result<(), String> {
        if let Some(r) = self.tunnel_cache.borrow().get(&key) {
            return r.clone();
        }
        // Mark as down while computing, so a tunnel whose underlay runs
        // through itself is not up.
        self.tunnel_cache
            .borrow_mut()
            .insert(key, Err("its underlay runs through itself".into()));
        let result = self.compute_tunnel(key);
        self.tunnel_cache.borrow_mut().insert(key, result.clone());
        result
    }

    fn compute_tunnel(&self, key: TunnelKey) -> Result<(), String> {
        let underlay = Mode {
            overlays: false,
            reply: false,
        };
        match key {
            TunnelKey::Star(s, worker) => {
                let star = &self.t.stars[s.index()];
                self.both_alive(star.hub, worker)?;
                let endpoint = self.endpoint_of(s, star.hub).ok_or_else(|| {
                    format!(
                        "hub `{}` has no endpoint workers could dial",
                        self.name(star.hub)
                    )
                })?;
                self.underlay(
                    worker,
                    endpoint,
                    Probe::transport(Proto::Udp, star.port),
                    underlay,
                )
            }
            TunnelKey::Ipsec(a, b) => {
                self.both_alive(a, b)?;
                // Either end may initiate; the responder takes it only from
                // the address its conn names for the initiator (`right=`).
                let mut reasons = Vec::new();
                for (x, y) in [(a, b), (b, a)] {
                    let (Some(expected), Some(target)) =
                        (self.ipsec_address(x), self.ipsec_address(y))
                    else {
                        reasons.push(format!("`{}` has no address", self.name(x)));
                        continue;
                    };
                    let trace =
                        self.flow_mode(x, target, Probe::transport(Proto::Udp, 500), underlay);
                    if !trace.delivered {
                        reasons.push(format!(
                            "`{}` → {target}: {}",
                            self.name(x),
                            trace.reason.unwrap_or_else(|| "unreachable".into())
                        ));
                    } else if trace.seen_source.is_some_and(|seen| seen != expected) {
                        reasons.push(format!(
                            "`{}` knows `{}` as {expected}, but its IKE packets arrive from {} (no conn for that peer)",
                            self.name(y),
                            self.name(x),
                            trace.seen_source.map(|a| a.to_string()).unwrap_or_default()
                        ));
                    } else {
                        return Ok(());
                    }
                }
                Err(reasons.join("; "))
            }
            TunnelKey::Client(d, client) => {
                let dep = &self.t.openvpn[d.index()];
                let Some((_, p)) = dep.clients.iter().find(|(c, _)| *c == client) else {
                    return Err(format!(
                        "`{}` is not a client of `{}`",
                        self.name(client),
                        dep.name
                    ));
                };
                let profile = &dep.profiles[*p];
                self.both_alive(client, profile.node)?;
                let target = self.node_address(profile).ok_or_else(|| {
                    format!(
                        "`{}`, the name clients dial node `{}` by, has no address (no [dns] record)",
                        profile.spec.host_name,
                        self.name(profile.node)
                    )
                })?;
                let listener = profile.spec.listeners.first().copied().unwrap_or(
                    vpnsim_topology::units::Listener {
                        proto: Proto::Udp,
                        port: 1194,
                    },
                );
                self.underlay(
                    client,
                    target,
                    Probe::transport(listener.proto, listener.port),
                    underlay,
                )
            }
            TunnelKey::MeshPair(m, a, b) => {
                self.both_alive(a, b)?;
                if self.mesh_links(m).contains_key(&(a, b)) {
                    Ok(())
                } else {
                    Err("neither reaches the other at an address it dials (its init peers, or what a common peer tells it); PeerVPN does not relay".into())
                }
            }
            TunnelKey::Bond(b) => {
                let bond = &self.t.bonds[b.index()];
                self.both_alive(bond.hosts[0], bond.hosts[1])?;
                let mut reasons = Vec::new();
                for link in &bond.links {
                    let target = self
                        .plan
                        .host_addresses(link.server)
                        .find(|a| a.attachment == Attachment::Link(link.via))
                        .map(|a| a.address);
                    let Some(target) = target else {
                        reasons.push(format!(
                            "{}: `{}` has no address on `{}`",
                            link.name,
                            self.name(link.server),
                            self.t.link(link.via).name
                        ));
                        continue;
                    };
                    match self.underlay(
                        link.client,
                        target,
                        Probe::transport(link.listen.proto, link.listen.port),
                        underlay,
                    ) {
                        Ok(()) => return Ok(()),
                        Err(e) => reasons.push(format!("{}: {e}", link.name)),
                    }
                }
                Err(format!("no TAP link works ({})", reasons.join("; ")))
            }
        }
    }

    fn both_alive(&self, a: HostId, b: HostId) -> Result<(), String> {
        for h in [a, b] {
            if !self.alive(h) {
                return Err(format!("`{}` is down", self.name(h)));
            }
        }
        Ok(())
    }

    fn underlay(&self, from: HostId, to: IpAddr, probe: Probe, mode: Mode) -> Result<(), String> {
        let trace = self.flow_mode(from, to, probe, mode);
        if trace.delivered {
            Ok(())
        } else {
            Err(trace.reason.unwrap_or_else(|| "unreachable".into()))
        }
    }

    /// A datagram from `from` to `target` (an address of `to`) is answered
    /// by a daemon on an unbound UDP socket (PeerVPN): the answer leaves
    /// from the address routing picks, and the dialer takes it only from
    /// the address it dialled (or from `to`'s elastic IP, which the site
    /// router puts back). When answered: the address `to` sees `from` at
    /// (after NAT on the way).
    fn unbound_udp_dial(
        &self,
        from: HostId,
        to: HostId,
        target: IpAddr,
        probe: Probe,
    ) -> Option<IpAddr> {
        let underlay = Mode {
            overlays: false,
            reply: false,
        };
        let trace = self.flow_mode(from, target, probe, underlay);
        if !trace.delivered || trace.hosts.last() != Some(&to) {
            return None;
        }
        let seen = trace.seen_source.unwrap_or(target);
        (public_aliases(self.t, to).contains(&target)
            || self.source_for(to, seen, underlay) == Some(target))
        .then_some(seen)
    }

    /// The member pairs of a mesh that hold a PeerVPN connection, each
    /// member's address for the other as it learnt it. PeerVPN does not
    /// relay: two members exchange frames only over a connection of their
    /// own. A member dials its init peers (their public address, else
    /// their first address); once connected, it lists its peers with the
    /// address it knows each at (the source their datagrams come from) in
    /// its PEERINFO to every peer, and those dial that address. A
    /// connection needs the dialled address to answer.
    fn mesh_links(&self, m: MeshId) -> BTreeMap<(HostId, HostId), IpAddr> {
        let mesh = &self.t.meshes[m.index()];
        let probe = Probe::transport(Proto::Udp, mesh.port);
        let alive: Vec<HostId> = mesh
            .members
            .iter()
            .map(|mm| mm.host)
            .filter(|h| self.alive(*h))
            .collect();
        // (a, b) → the address a knows b at.
        let mut knows: BTreeMap<(HostId, HostId), IpAddr> = BTreeMap::new();
        let dial = |knows: &mut BTreeMap<(HostId, HostId), IpAddr>,
                    a: HostId,
                    b: HostId,
                    target: IpAddr| {
            if a == b || knows.contains_key(&(a, b)) {
                return false;
            }
            match self.unbound_udp_dial(a, b, target, probe) {
                Some(seen) => {
                    knows.insert((a, b), target);
                    knows.entry((b, a)).or_insert(seen);
                    true
                }
                None => false,
            }
        };
        for member in &mesh.members {
            if !alive.contains(&member.host) {
                continue;
            }
            for peer in member.init_peers.iter().filter(|p| alive.contains(p)) {
                let target = self
                    .public_address(*peer)
                    .or_else(|| self.primary_addresses(*peer).first().copied());
                if let Some(target) = target {
                    dial(&mut knows, member.host, *peer, target);
                }
            }
        }
        // Peer exchange until nothing new connects.
        loop {
            let mut grew = false;
            let known: Vec<((HostId, HostId), IpAddr)> =
                knows.iter().map(|(k, v)| (*k, *v)).collect();
            for ((c, b), addr) in &known {
                for a in &alive {
                    if knows.contains_key(&(*a, *c)) && !knows.contains_key(&(*a, *b)) {
                        grew |= dial(&mut knows, *a, *b, *addr);
                    }
                }
            }
            if !grew {
                break;
            }
        }
        knows
    }

    /// The hub's endpoint as workers dial it.
    fn endpoint_of(&self, s: StarId, h: HostId) -> Option<IpAddr> {
        let star = &self.t.stars[s.index()];
        match star.endpoints.get(&h).map(|e| &e.host) {
            Some(EndpointHost::Ip(ip)) => Some(*ip),
            Some(EndpointHost::Dns(name)) => self.resolve(name),
            None => self.public_address(h),
        }
    }

    fn resolve(&self, name: &str) -> Option<IpAddr> {
        resolve_name(self.t, name)
    }

    /// The address an IPsec conn names a gateway by (`left`/`right`), as
    /// the generator writes it: its elastic IP, else its first interface
    /// address (IPv4 preferred).
    fn ipsec_address(&self, h: HostId) -> Option<IpAddr> {
        let found = self.primary_addresses(h);
        let private = found
            .iter()
            .find(|a| a.is_ipv4())
            .or_else(|| found.first())
            .copied()?;
        let host = self.t.host(h);
        let public = match private {
            IpAddr::V4(_) => host.public_address.map(IpAddr::V4),
            IpAddr::V6(_) => host
                .public_address
                .map(IpAddr::V4)
                .or(host.public_address6.map(IpAddr::V6)),
        };
        Some(public.unwrap_or(private))
    }

    /// Where clients dial a profile's node: the client config's `remote` is
    /// the profile's `host_name`, so what that name resolves to; a name
    /// without a `[dns]` record resolves to nothing.
    fn node_address(&self, profile: &vpnsim_topology::model::ProfileM) -> Option<IpAddr> {
        node_address(self.t, profile)
    }

    /// A host's public IPv4 (elastic IP or address on a wan link), else IPv6.
    fn public_address(&self, h: HostId) -> Option<IpAddr> {
        let mut aliases = public_aliases(self.t, h);
        aliases.extend(self.plan.host_addresses(h).filter(|a| matches!(a.attachment, Attachment::Link(l) if self.t.link(l).kind == vpnsim_topology::format::LinkKind::Wan)).map(|a| a.address));
        aliases.sort_by_key(|a| a.is_ipv6());
        aliases.first().copied()
    }
}

impl Trace {
    fn dropped(hops: Vec<String>, hosts: Vec<HostId>, reason: String) -> Trace {
        Trace {
            delivered: false,
            hops,
            hosts,
            reason: Some(reason),
            looped: false,
            routes_used: Vec::new(),
            seen_source: None,
        }
    }
}

/// How a packet came to a host.
#[derive(Debug, Clone, Copy)]
struct Arrival<'a> {
    /// The host sent it itself (no forwarding checks).
    originated: bool,
    /// Interface it arrived on.
    ingress: Option<&'a str>,
    /// It came out of a tunnel rather than off a network segment.
    from_tunnel: bool,
    /// Its destination was one of the host's addresses when it arrived
    /// (a reply to NAT done here, translated back since).
    addressed_here: bool,
}

#[derive(Debug, Clone)]
struct Next {
    hop: Hop,
    /// Interface the packet arrives on at the next host.
    ingress: Option<String>,
    /// For WireGuard: the star and the sending host, checked on receive.
    peer: Option<(StarId, HostId)>,
    /// It came out of a tunnel (decapsulated or decrypted here), not
    /// straight off a network segment.
    tunnel: bool,
}

impl Next {
    fn plain(hop: Hop) -> Next {
        Next {
            hop,
            ingress: None,
            peer: None,
            tunnel: false,
        }
    }
}

/// iptables-style interface match: `tap+` matches every name starting with `tap`.
fn interface_matches(pattern: &str, name: &str) -> bool {
    match pattern.strip_suffix('+') {
        Some(prefix) => name.starts_with(prefix),
        None => pattern == name,
    }
}

/// The first address of a `[dns]` name (A before AAAA).
fn resolve_name(t: &Topology, name: &str) -> Option<IpAddr> {
    let name = name.trim_end_matches('.');
    let record = t
        .dns
        .iter()
        .find(|r| r.name.trim_end_matches('.') == name)?;
    record
        .a
        .first()
        .map(|a| IpAddr::V4(*a))
        .or_else(|| record.aaaa.first().map(|a| IpAddr::V6(*a)))
}

/// Where clients dial a profile's node: the client config's `remote` is
/// the profile's `host_name`, so what that name resolves to; a name
/// without a `[dns]` record resolves to nothing.
fn node_address(t: &Topology, profile: &vpnsim_topology::model::ProfileM) -> Option<IpAddr> {
    let name = &profile.spec.host_name;
    name.parse().ok().or_else(|| resolve_name(t, name))
}

/// Elastic/public addresses a host answers to.
fn public_aliases(t: &Topology, h: HostId) -> Vec<IpAddr> {
    let host = t.host(h);
    host.public_address
        .map(IpAddr::V4)
        .into_iter()
        .chain(host.public_address6.map(IpAddr::V6))
        .collect()
}

const DEF1_V4: [(Ipv4Addr, u8); 2] = [
    (Ipv4Addr::new(0, 0, 0, 0), 1),
    (Ipv4Addr::new(128, 0, 0, 0), 1),
];

/// A host's routing table, built the way the rendered files will configure it.
fn route_table(t: &Topology, plan: &Plan, h: HostId) -> Vec<RouteEntry> {
    let host = t.host(h);
    let mut table = Vec::new();
    let connected =
        |prefix: IpNet, action: Action, dev: &str, overlay: bool, table: &mut Vec<RouteEntry>| {
            table.push(RouteEntry {
                prefix: prefix.trunc(),
                action,
                dev: dev.to_string(),
                origin: None,
                overlay,
                while_connected: None,
            });
        };
    let mut defaults: Vec<RouteEntry> = Vec::new();
    for iface in &host.interfaces {
        match iface.segment {
            Segment::Subnet(s) => {
                let subnet = t.subnet(s);
                for net in std::iter::once(subnet.cidr).chain(subnet.cidr6) {
                    connected(
                        net,
                        Action::Attached(Attachment::Subnet(s)),
                        &iface.name,
                        false,
                        &mut table,
                    );
                    let default = if net.addr().is_ipv4() {
                        IpNet::V4(Ipv4Net::default())
                    } else {
                        IpNet::V6(Ipv6Net::default())
                    };
                    if !defaults.iter().any(|d| d.prefix == default) {
                        defaults.push(RouteEntry {
                            prefix: default,
                            action: Action::Router(subnet.site),
                            dev: iface.name.clone(),
                            origin: None,
                            overlay: false,
                            while_connected: None,
                        });
                    }
                }
            }
            Segment::Link(l) => {
                let link = t.link(l);
                if let Some(cidr) = link.cidr {
                    connected(
                        cidr,
                        Action::Attached(Attachment::Link(l)),
                        &iface.name,
                        false,
                        &mut table,
                    );
                }
                if link.kind == vpnsim_topology::format::LinkKind::Wan {
                    // A host directly on the internet defaults there, before any site router.
                    let families = [
                        iface.address.map(|a| a.is_ipv4()),
                        iface.address6.map(|_| false),
                    ];
                    for v4 in families.into_iter().flatten() {
                        let default = if v4 {
                            IpNet::V4(Ipv4Net::default())
                        } else {
                            IpNet::V6(Ipv6Net::default())
                        };
                        defaults
                            .retain(|d| d.prefix != default || matches!(d.action, Action::Wan(_)));
                        if !defaults.iter().any(|d| d.prefix == default) {
                            defaults.push(RouteEntry {
                                prefix: default,
                                action: Action::Wan(l),
                                dev: iface.name.clone(),
                                origin: None,
                                overlay: false,
                                while_connected: None,
                            });
                        }
                    }
                }
            }
        }
    }
    // The on-link routes to the other addresses on a wan link count when
    // the kernel picks the device of a gateway, though they come after
    // the static routes in the table.
    let mut neighbours = Vec::new();
    wan_neighbour_routes(t, plan, h, &mut neighbours);
    for (i, route) in host.routes.iter().enumerate() {
        let origin = Some(host.path.key("routes").index(i));
        // Without `dev` the kernel takes the interface the gateway is
        // reached by: a connected network holding it (the routes are added
        // with the VPN devices up, so a mesh or bond network counts), else
        // the default route's (on-link on a wan link).
        let dev = route.dev.clone().unwrap_or_else(|| {
            let connected = route.via.and_then(|via| {
                plan.host_addresses(h)
                    .find(|a| a.with_prefix().trunc().contains(&via))
                    .map(|a| a.interface.clone())
            });
            let gateway_dev = route.via.and_then(|via| {
                table
                    .iter()
                    .chain(&neighbours)
                    .filter(|r| r.prefix.contains(&via))
                    .rev()
                    .max_by_key(|r| r.prefix.prefix_len())
                    .or_else(|| defaults.iter().find(|d| d.prefix.contains(&via)))
                    .map(|r| r.dev.clone())
            });
            connected.or(gateway_dev).unwrap_or_default()
        });
        let action = match route.via {
            Some(via) => Action::Via(via),
            None => match overlay_dev_attachment(t, plan, h, &dev) {
                Some(att) => Action::Attached(att),
                None => continue,
            },
        };
        let overlay = route.via.is_none()
            && overlay_dev_attachment(t, plan, h, &dev)
                .is_some_and(|a| !matches!(a, Attachment::Subnet(_) | Attachment::Link(_)));
        table.push(RouteEntry {
            prefix: route.to.trunc(),
            action,
            dev,
            origin,
            overlay,
            while_connected: None,
        });
    }
    wan_neighbour_routes(t, plan, h, &mut table);
    overlay_routes(t, plan, h, &mut table);
    table.extend(defaults);
    table
}

/// A host on several wan links reaches every address on each of them
/// through that link (the wan is one routed network per link, and the
/// default route leaves by the first one only): a host route per
/// neighbour address, per elastic IP behind a site uplinked there and per
/// site router's public (masquerade) address there, as the simulator's
/// physical layer sets them up. A host on one wan link
/// needs none.
fn wan_neighbour_routes(t: &Topology, plan: &Plan, h: HostId, table: &mut Vec<RouteEntry>) {
    let wans: Vec<(LinkId, String)> = t
        .host(h)
        .interfaces
        .iter()
        .filter_map(|i| match i.segment {
            Segment::Link(l) if t.link(l).kind == vpnsim_topology::format::LinkKind::Wan => {
                Some((l, i.name.clone()))
            }
            _ => None,
        })
        .collect();
    if wans.len() < 2 {
        return;
    }
    for (l, dev) in wans {
        let attached = plan
            .addresses
            .iter()
            .filter(|a| a.host != h && a.attachment == Attachment::Link(l))
            .map(|a| a.address);
        let elastic = t
            .host_ids()
            .filter(|o| *o != h && t.site(t.host(*o).site).uplink == Some(l))
            .flat_map(|o| public_aliases(t, o));
        // Site routers on the link: their address there is the site's
        // nat_address (a site without subnets has no router).
        let routers = t
            .sites
            .iter()
            .filter(|s| s.uplink == Some(l) && !s.subnets.is_empty())
            .filter_map(|s| s.nat_address.map(IpAddr::V4));
        for address in attached.chain(elastic).chain(routers) {
            table.push(RouteEntry {
                prefix: IpNet::from(address),
                action: Action::Wan(l),
                dev: dev.clone(),
                origin: None,
                overlay: false,
                while_connected: None,
            });
        }
    }
}

/// The attachment of the interface called `dev` on host `h`.
fn overlay_dev_attachment(t: &Topology, plan: &Plan, h: HostId, dev: &str) -> Option<Attachment> {
    plan.host_addresses(h)
        .find(|a| a.interface == dev)
        .map(|a| a.attachment)
        .or_else(|| {
            t.host(h)
                .interfaces
                .iter()
                .find(|i| i.name == dev)
                .map(|i| match i.segment {
                    Segment::Subnet(s) => Attachment::Subnet(s),
                    Segment::Link(l) => Attachment::Link(l),
                })
        })
}

/// AllowedIPs that member `on` of star `s` configures for its peer `p`, as
/// the WireGuard generator writes them: the hub gives each worker its
/// overlay address and its declared `allowed_ips`; a worker gives the hub
/// the overlay prefix and the declared `allowed_ips` of every other member
/// (the hub forwards to them).
fn star_allowed_ips(t: &Topology, plan: &Plan, s: StarId, on: HostId, p: HostId) -> Vec<IpNet> {
    let star = &t.stars[s.index()];
    let declared = |m: &HostId| star.allowed_ips.get(m).into_iter().flatten().copied();
    if p == star.hub {
        std::iter::once(star.cidr)
            .chain(
                star.members()
                    .filter(|m| *m != on)
                    .flat_map(|m| declared(&m)),
            )
            .collect()
    } else {
        plan.host_addresses(p)
            .filter(|a| a.attachment == Attachment::Star(s))
            .map(|a| IpNet::from(a.address))
            .chain(declared(&p))
            .collect()
    }
}

fn overlay_entry(prefix: IpNet, att: Attachment, dev: &str) -> RouteEntry {
    RouteEntry {
        prefix: prefix.trunc(),
        action: Action::Attached(att),
        dev: dev.to_string(),
        origin: None,
        overlay: true,
        while_connected: None,
    }
}

fn overlay_routes(t: &Topology, plan: &Plan, h: HostId, table: &mut Vec<RouteEntry>) {
    for (i, star) in t.stars.iter().enumerate() {
        let att = Attachment::Star(StarId(i as u32));
        if !star.members().any(|m| m == h) {
            continue;
        }
        table.push(overlay_entry(star.cidr, att, &star.interface));
        // wg-quick routes every peer's AllowedIPs into the interface, unless
        // a route on the interface already covers the prefix (`ip route
        // show dev wg0 match PREFIX`).
        let peers: Vec<HostId> = if h == star.hub {
            star.workers.clone()
        } else {
            vec![star.hub]
        };
        for p in peers {
            for net in star_allowed_ips(t, plan, StarId(i as u32), h, p) {
                let covered = table
                    .iter()
                    .any(|r| r.dev == star.interface && r.prefix.contains(&net.trunc()));
                if !covered {
                    table.push(overlay_entry(net, att, &star.interface));
                }
            }
        }
    }
    for (i, mesh) in t.meshes.iter().enumerate() {
        if mesh.members.iter().any(|m| m.host == h) {
            table.push(overlay_entry(
                mesh.cidr,
                Attachment::Mesh(MeshId(i as u32)),
                &mesh.interface,
            ));
        }
    }
    for (i, bond) in t.bonds.iter().enumerate() {
        if let Some(net) = bond.addresses.get(&h) {
            table.push(overlay_entry(
                *net,
                Attachment::Bond(BondId(i as u32)),
                &bond.interface,
            ));
        }
    }
    for (d, dep) in t.openvpn.iter().enumerate() {
        let d = OpenVpnId(d as u32);
        for (p, profile) in dep.profiles.iter().enumerate() {
            let att = Attachment::Profile(d, p as u32);
            let is_client = dep.clients.iter().any(|(c, cp)| *c == h && *cp == p);
            // The prefix routes of the tun addresses: on the node one per
            // server process (its part of the ranges), on a client the
            // part of the process it connects to (pushed `ifconfig`).
            if profile.node == h || is_client {
                for a in plan.host_addresses(h).filter(|a| a.attachment == att) {
                    table.push(overlay_entry(a.with_prefix(), att, &a.interface));
                }
            }
            if is_client && profile.spec.default_gateway {
                // OpenVPN's def1: two /1 routes beat the underlay default
                // without replacing it; the server itself stays reachable
                // through the underlay by a host route.
                for (net, len) in DEF1_V4 {
                    if let Ok(n) = Ipv4Net::new(net, len) {
                        table.push(overlay_entry(IpNet::V4(n), att, vpnsim_plan::CLIENT_DEVICE));
                    }
                }
                let underlay_default = table
                    .iter()
                    .rev()
                    .find(|r| !r.overlay && r.prefix.prefix_len() == 0 && r.prefix.addr().is_ipv4())
                    .map(|r| (r.action.clone(), r.dev.clone()));
                // The host route goes to the address the client connected
                // to, added with the others once connected: the connection
                // itself is made without it.
                let node_addr = node_address(t, profile).filter(IpAddr::is_ipv4);
                let default = host_default(t, plan, h);
                if let (Some(addr), Some((action, dev))) = (node_addr, underlay_default.or(default))
                {
                    table.push(RouteEntry {
                        prefix: IpNet::from(addr),
                        action,
                        dev,
                        origin: None,
                        overlay: false,
                        while_connected: Some(d),
                    });
                }
            }
        }
    }
}

/// The IPv4 underlay default route of a host (for OpenVPN's host route to its server).
fn host_default(t: &Topology, plan: &Plan, h: HostId) -> Option<(Action, String)> {
    let _ = plan;
    for iface in &t.host(h).interfaces {
        match iface.segment {
            Segment::Link(l) if t.link(l).kind == vpnsim_topology::format::LinkKind::Wan => {
                return Some((Action::Wan(l), iface.name.clone()));
            }
            Segment::Subnet(s) => {
                return Some((Action::Router(t.subnet(s).site), iface.name.clone()));
            }
            _ => {}
        }
    }
    None
}

/// Evaluates a declared flow: `Ok(trace)` with `delivered` saying whether it reaches.
fn evaluate(engine: &Engine<'_>, flow: &FlowM) -> Result<Trace, String> {
    let dst = engine
        .target_address(flow.to, flow.via, None)
        .ok_or_else(|| {
            format!(
                "`{}` has no address{}",
                engine.name(flow.to),
                flow.via
                    .map(|v| format!(" on `{}`", engine.t.overlay_name(v)))
                    .unwrap_or_default()
            )
        })?;
    Ok(engine.flow(
        flow.from,
        dst,
        Probe {
            proto: flow.proto,
            port: flow.port,
        },
    ))
}

fn flow_label(t: &Topology, flow: &FlowM) -> String {
    let via = flow
        .via
        .map(|v| format!(" via {}", t.overlay_name(v)))
        .unwrap_or_default();
    let port = match (flow.proto, flow.port) {
        (ProbeProto::Icmp, _) => String::new(),
        (p, Some(port)) => format!(" {}/{port}", format!("{p:?}").to_lowercase()),
        (p, None) => format!(" {}", format!("{p:?}").to_lowercase()),
    };
    format!(
        "{} → {}{via}{port}",
        t.host(flow.from).name,
        t.host(flow.to).name
    )
}

/// Findings: intent violations, single points of failure, routing loops.
pub fn check(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let engine = Engine::new(t, ctx.plan);
    let graph = NetworkGraph::build(t);
    let mut findings = Vec::new();
    let mut holding: Vec<(&FlowM, Trace)> = Vec::new();
    let mut loops: BTreeSet<FieldPath> = BTreeSet::new();
    // A UDP stream needs what a reach of its port needs.
    let streams: Vec<FlowM> = t.expect.stream.iter().map(|s| s.flow()).collect();
    let declared = t
        .expect
        .reach
        .iter()
        .map(|f| ("reach", f))
        .chain(streams.iter().map(|f| ("stream", f)));
    for (what, flow) in declared {
        match evaluate(&engine, flow) {
            Ok(trace) if trace.delivered => holding.push((flow, trace)),
            Ok(trace) => {
                if trace.looped {
                    loops.extend(trace.routes_used.iter().cloned());
                }
                let mut reason = trace.reason.unwrap_or_default();
                if !graph.connected(flow.from, flow.to) {
                    reason.push_str(
                        "; nothing joins these hosts at all (no shared subnet, link or tunnel)",
                    );
                }
                findings.push(ctx.finding(
                    "intent-violation",
                    Severity::Error,
                    &flow.path,
                    format!(
                        "declared {what} {} does not hold: {reason}",
                        flow_label(t, flow)
                    ),
                ));
            }
            Err(e) => findings.push(ctx.finding(
                "intent-violation",
                Severity::Error,
                &flow.path,
                format!(
                    "declared {what} {} cannot be checked: {e}",
                    flow_label(t, flow)
                ),
            )),
        }
    }
    for flow in &t.expect.isolated {
        if let Ok(trace) = evaluate(&engine, flow)
            && trace.delivered
        {
            findings.push(ctx.finding(
                "intent-violation",
                Severity::Error,
                &flow.path,
                format!(
                    "declared isolation {} does not hold: the packet gets through {}",
                    flow_label(t, flow),
                    trace.hops.join(" → ")
                ),
            ));
        }
    }
    findings.extend(single_points_of_failure(ctx, &holding));
    findings.extend(management_paths(ctx, &engine));
    findings.extend(routing_loops(ctx, &engine, loops));
    findings
}

/// Hosts on the path of a holding reach expectation whose failure breaks it.
fn single_points_of_failure(ctx: &Ctx<'_>, holding: &[(&FlowM, Trace)]) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let mut cuts: BTreeMap<HostId, Vec<&FlowM>> = BTreeMap::new();
    let candidates: BTreeSet<HostId> = holding
        .iter()
        .flat_map(|(flow, trace)| {
            trace
                .hosts
                .iter()
                .copied()
                .filter(move |h| !is_endpoint(flow, *h))
        })
        .collect();
    for candidate in candidates {
        let engine = Engine::with_failed(t, ctx.plan, BTreeSet::from([candidate]));
        for (flow, _) in holding {
            // Losing an endpoint of a flow says nothing about redundancy.
            if is_endpoint(flow, candidate) || fails_over_by_round_robin(t, candidate, flow) {
                continue;
            }
            if evaluate(&engine, flow).is_ok_and(|trace| !trace.delivered) {
                cuts.entry(candidate).or_default().push(flow);
            }
        }
    }
    cuts.into_iter()
        .map(|(host, flows)| {
            let labels: Vec<String> = flows.iter().map(|f| flow_label(t, f)).collect();
            ctx.finding(
                "single-point-of-failure",
                Severity::Warning,
                &t.host(host).path,
                format!(
                    "losing `{}` cuts {} declared reach expectation(s): {}; {}",
                    t.host(host).name,
                    labels.len(),
                    labels.join(", "),
                    recovery_advice(t, host)
                ),
            )
        })
        .collect()
}

/// OpenVPN's management interface port in eduVPN 1.x deployments without
/// vpn-daemon (the controller connects to it at the profile's managementIp).
pub const OPENVPN_MANAGEMENT_PORT: u16 = 11940;

/// The controller manages each node at the profile's `management_ip`: that
/// address must be the node's, and the controller must reach it on the
/// management port (vpn-daemon, or OpenVPN's management interface).
fn management_paths(ctx: &Ctx<'_>, engine: &Engine<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let mut findings = Vec::new();
    for dep in &t.openvpn {
        let port = if dep.use_vpn_daemon {
            dep.vpn_daemon_port
        } else {
            OPENVPN_MANAGEMENT_PORT
        };
        for profile in &dep.profiles {
            let Some(ip) = profile.spec.management_ip else {
                continue;
            };
            let field = profile.path.key("management_ip");
            let node = &t.host(profile.node).name;
            if !engine.own[profile.node.index()].contains(&ip) {
                let mesh_hint = dep
                    .management_mesh
                    .and_then(|m| engine.plan.address_on(profile.node, Attachment::Mesh(m)))
                    .map(|a| format!("; its address on the management mesh is {a}"))
                    .unwrap_or_default();
                findings.push(ctx.finding(
                    "management-ip-mismatch",
                    Severity::Error,
                    &field,
                    format!(
                        "management_ip {ip} of profile `{}` is none of node `{node}`'s addresses{mesh_hint}",
                        profile.id
                    ),
                ));
                continue;
            }
            let trace = engine.flow(dep.controller, ip, Probe::transport(Proto::Tcp, port));
            if !trace.delivered {
                findings.push(ctx.finding(
                    "management-unreachable",
                    Severity::Error,
                    &field,
                    format!(
                        "controller `{}` cannot reach node `{node}` at {ip} tcp/{port}: {}",
                        t.host(dep.controller).name,
                        trace.reason.unwrap_or_default()
                    ),
                ));
            }
        }
    }
    findings
}

fn is_endpoint(flow: &FlowM, host: HostId) -> bool {
    flow.from == host || flow.to == host
}

/// An OpenVPN client whose node is lost reconnects through DNS round-robin
/// when another profile of the deployment shares its `host_name` on another
/// node (eduVPN's merged profiles).
fn fails_over_by_round_robin(t: &Topology, lost: HostId, flow: &FlowM) -> bool {
    t.openvpn.iter().any(|dep| {
        dep.clients.iter().any(|(client, p)| {
            let profile = &dep.profiles[*p];
            *client == flow.from
                && profile.node == lost
                && dep.profiles.iter().any(|other| {
                    other.node != lost && other.spec.host_name == profile.spec.host_name
                })
        })
    })
}

/// What would remove the single point of failure, in the terms of the overlay it serves.
fn recovery_advice(t: &Topology, host: HostId) -> String {
    if let Some(star) = t.stars.iter().find(|s| s.hub == host) {
        let candidates: Vec<&str> = star
            .workers
            .iter()
            .filter(|w| star.endpoints.contains_key(w))
            .map(|w| t.host(*w).name.as_str())
            .collect();
        if !candidates.is_empty() {
            return format!(
                "until a worker is promoted to hub of `{}` (candidates with an endpoint: {})",
                star.name,
                candidates.join(", ")
            );
        }
        return format!(
            "no worker of `{}` has an endpoint to be promoted to hub",
            star.name
        );
    }
    if t.ipsec
        .iter()
        .any(|i| i.hub == Some(host) || i.gateways.contains(&host))
    {
        return "add a second gateway (another instance in another zone) with its own tunnels"
            .into();
    }
    if t.openvpn
        .iter()
        .any(|d| d.profiles.iter().any(|p| p.node == host))
    {
        return "add another node behind the same host_name (DNS round-robin) so clients can reconnect".into();
    }
    "add a redundant path around it".into()
}

/// Static routes (host and site) that send their own destination around a
/// loop, found by tracing a packet to each route's prefix.
fn routing_loops(
    ctx: &Ctx<'_>,
    engine: &Engine<'_>,
    suspects: BTreeSet<FieldPath>,
) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let mut probes: Vec<(HostId, IpNet)> = Vec::new();
    for id in t.host_ids() {
        for route in &t.host(id).routes {
            probes.push((id, route.to));
        }
    }
    for site in &t.sites {
        for (to, via) in &site.routes {
            probes.push((*via, *to));
        }
    }
    let mut loops: BTreeMap<FieldPath, String> = BTreeMap::new();
    for (from, prefix) in probes {
        let dst = probe_address(prefix);
        let trace = engine.flow_mode(
            from,
            dst,
            Probe::PING,
            Mode {
                overlays: true,
                reply: false,
            },
        );
        if trace.looped {
            let hops = trace.hops.join(" → ");
            for path in &trace.routes_used {
                loops.entry(path.clone()).or_insert_with(|| hops.clone());
            }
        }
    }
    for path in suspects {
        loops
            .entry(path)
            .or_insert_with(|| "found while checking an expectation".into());
    }
    loops
        .into_iter()
        .map(|(path, hops)| ctx.finding("routing-loop", Severity::Error, &path, format!("this route is part of a forwarding loop: {hops}; make one side route towards the destination instead of back")))
        .collect()
}

/// A host address inside a prefix to probe it with.
fn probe_address(prefix: IpNet) -> IpAddr {
    match prefix {
        IpNet::V4(n) if n.prefix_len() < 31 => {
            IpAddr::V4(Ipv4Addr::from(u32::from(n.network()).wrapping_add(1)))
        }
        IpNet::V6(n) if n.prefix_len() < 127 => {
            IpAddr::V6(Ipv6Addr::from(u128::from(n.network()).wrapping_add(1)))
        }
        other => other.addr(),
    }
}

/// Site × site matrix: for every host of one site, every host of the other,
/// ping from first address to first address.
pub fn site_matrix(ctx: &Ctx<'_>) -> SiteMatrix {
    let t = ctx.topology();
    let engine = Engine::new(t, ctx.plan);
    let sites: Vec<String> = t.sites.iter().map(|s| s.name.clone()).collect();
    let mut cells = Vec::new();
    for from in &t.sites {
        let mut row = Vec::new();
        for to in &t.sites {
            let (mut ok, mut total) = (0usize, 0usize);
            for a in &from.hosts {
                for b in &to.hosts {
                    if a == b {
                        continue;
                    }
                    let Some(dst) = engine.target_address(*b, None, None) else {
                        continue;
                    };
                    total += 1;
                    if engine.flow(*a, dst, Probe::PING).delivered {
                        ok += 1;
                    }
                }
            }
            row.push(match (ok, total) {
                (_, 0) => Reach::NoPairs,
                (ok, total) if ok == total => Reach::All,
                (0, _) => Reach::None,
                _ => Reach::Partial,
            });
        }
        cells.push(row);
    }
    SiteMatrix { sites, cells }
}

/// Used by tests and the CLI: trace a flow between two named hosts.
pub fn trace_between(
    t: &Topology,
    plan: &Plan,
    from: &str,
    to: &str,
    via: Option<OverlayId>,
) -> Option<Trace> {
    let engine = Engine::new(t, plan);
    let (from, to) = (t.host_id(from)?, t.host_id(to)?);
    let dst = engine.target_address(to, via, None)?;
    Some(engine.flow(from, dst, Probe::PING))
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpnsim_topology::{Scenario, load_str};

    fn load(name: &str, text: &str) -> Scenario {
        load_str(name, text).unwrap_or_else(|e| match e {
            vpnsim_topology::LoadError::Invalid { diagnostics, .. } => {
                panic!(
                    "{}",
                    diagnostics
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                )
            }
            other => panic!("{other}"),
        })
    }

    fn findings(scenario: &Scenario) -> Vec<Diagnostic> {
        let planned = vpnsim_plan::plan(scenario);
        check(&Ctx {
            scenario,
            plan: &planned.plan,
        })
    }

    fn codes(found: &[Diagnostic]) -> Vec<(String, String)> {
        found
            .iter()
            .map(|d| (d.code.clone(), d.field.clone().unwrap_or_default()))
            .collect()
    }

    const HUB_SPOKE: &str = include_str!("testdata/hub_spoke.toml");
    const STAR: &str = include_str!("testdata/star.toml");

    // -----------------------------------------------------------------
    // Regressions found by the simulator property (sim/tests/sim/props.rs):
    // the static model against the rendered files run in the simulator.
    // -----------------------------------------------------------------

    /// `a`, `b` and `c` on the internet; `b` and `c` also on a leased line.
    const WAN: &str = r#"
[scenario]
name = "wan"
seed = 1
[links.internet]
kind = "wan"
[links.lan]
kind = "lan"
cidr = "192.168.250.0/24"
[sites.road]
kind = "roaming"
[hosts.a]
site = "road"
interfaces = [{ name = "eth0", link = "internet", address = "203.0.113.1" }]
[hosts.b]
site = "road"
interfaces = [{ name = "eth0", link = "internet", address = "203.0.113.2" }, { name = "eth1", link = "lan", address = "192.168.250.2" }]
[hosts.c]
site = "road"
interfaces = [{ name = "eth0", link = "internet", address = "203.0.113.3" }, { name = "eth1", link = "lan", address = "192.168.250.3" }]
"#;

    fn trace(text: &str, from: &str, to: &str, via: Option<&str>) -> Trace {
        let s = load("t.toml", text);
        let planned = vpnsim_plan::plan(&s);
        let via = via.map(|v| {
            (0..s.topology.stars.len())
                .map(|i| OverlayId::Star(StarId(i as u32)))
                .chain(
                    (0..s.topology.openvpn.len()).map(|i| OverlayId::OpenVpn(OpenVpnId(i as u32))),
                )
                .find(|o| s.topology.overlay_name(*o) == v)
                .unwrap_or_else(|| panic!("no overlay {v}"))
        });
        trace_between(&s.topology, &planned.plan, from, to, via)
            .unwrap_or_else(|| panic!("no trace"))
    }

    /// An OpenVPN deployment on WAN: `c` is the node, `a` its client.
    fn openvpn(record: &str, default_gateway: bool) -> String {
        format!(
            "{WAN}[openvpn.vpn]\ncontroller = \"c\"\n[openvpn.vpn.profiles.p]\nprofile_number = 1\ndisplay_name = \"P\"\nnode = \"c\"\nhost_name = \"vpn.example.net\"\nrange = \"10.8.0.0/24\"\ndefault_gateway = {default_gateway}\nnat = [\"IPv4\"]\n[[openvpn.vpn.clients]]\nhost = \"a\"\nprofile = \"p\"\n[dns.\"vpn.example.net\"]\na = [\"{record}\"]\n"
        )
    }

    #[test]
    fn an_openvpn_node_drops_what_a_client_sends_from_another_address() {
        // b pings a on the internet; a answers from 203.0.113.1 into its
        // tunnel (def1), and the node takes only 10.8.0.x from a.
        let t = trace(&openvpn("203.0.113.3", true), "b", "a", None);
        assert!(!t.delivered, "{t:?}");
        let reason = t.reason.unwrap_or_default();
        assert!(reason.contains("MULTI: bad source address"), "{reason}");
        // Without def1 the answer does not enter the tunnel.
        assert!(trace(&openvpn("203.0.113.3", false), "b", "a", None).delivered);
    }

    #[test]
    fn openvpn_clients_dial_the_address_their_host_name_resolves_to() {
        // The node is on the internet at 203.0.113.3, but its name points
        // elsewhere: the client never connects.
        let t = trace(&openvpn("192.0.2.99", false), "a", "c", Some("vpn"));
        assert!(!t.delivered, "{t:?}");
        assert!(trace(&openvpn("203.0.113.3", false), "a", "c", Some("vpn")).delivered);
    }

    #[test]
    fn a_reply_to_the_elastic_ip_of_a_nat_node_reaches_its_client() {
        // Node c sits in a VPC behind its elastic IP and masquerades its
        // client a (def1) to its private address; b's answer comes back to
        // the elastic IP, the site router puts back the private address
        // and c's conntrack the client's.
        let text = openvpn("198.18.0.3", true)
            .replace(
                "[hosts.c]\nsite = \"road\"\ninterfaces = [{ name = \"eth0\", link = \"internet\", address = \"203.0.113.3\" }, { name = \"eth1\", link = \"lan\", address = \"192.168.250.3\" }]",
                "[hosts.c]\nsite = \"vpc\"\nforwarding = true\npublic_address = \"198.18.0.3\"\ninterfaces = [{ name = \"eth0\", subnet = \"vpc-a\", address = \"10.2.0.3\" }]",
            )
            .replace(
                "[sites.road]",
                "[sites.vpc]\nkind = \"cloud-vpc\"\ncidrs = [\"10.2.0.0/16\"]\nuplink = \"internet\"\n[subnets.vpc-a]\nsite = \"vpc\"\ncidr = \"10.2.0.0/24\"\n[sites.road]",
            );
        assert!(text.contains("10.2.0.3"), "{text}");
        let t = trace(&text, "a", "b", None);
        assert!(t.delivered, "{t:?}");
        assert_eq!(t.hops, ["a", "c", "router of vpc", "internet", "b"]);
    }

    #[test]
    fn an_openvpn_client_connects_without_the_host_route_to_its_server() {
        // a sends the internet's /24 via b, which does not forward: its
        // connection attempt to the node dies there. The host route to the
        // node (def1) would go around b, but OpenVPN adds it only once
        // connected.
        let text = openvpn("203.0.113.3", true).replacen(
            "address = \"203.0.113.1\" }]",
            "address = \"203.0.113.1\" }]\nroutes = [{ to = \"203.0.113.0/24\", via = \"203.0.113.2\" }]",
            1,
        );
        let t = trace(&text, "a", "c", Some("vpn"));
        assert!(!t.delivered, "{t:?}");
        // Not connected: no route into the tunnel for the node's address.
        assert_eq!(t.hops, ["a", "internet"], "{t:?}");
    }

    #[test]
    fn an_openvpn_node_masquerades_clients_only_out_of_its_ext_if() {
        // Node c NATs its clients out of eth0 (ext_if); to d on the leased
        // line they leave by eth1 with their own address, and d has no
        // route back to the client range.
        let text = format!(
            "{}[hosts.d]\nsite = \"road\"\ninterfaces = [{{ name = \"eth0\", link = \"lan\", address = \"192.168.250.4\" }}]\n",
            openvpn("203.0.113.3", true).replacen(
                "[hosts.c]\nsite = \"road\"",
                "[hosts.c]\nsite = \"road\"\nforwarding = true",
                1
            )
        );
        let t = trace(&text, "a", "d", None);
        assert!(!t.delivered, "{t:?}");
        assert!(
            t.reason
                .clone()
                .unwrap_or_default()
                .contains("`d` has no route to 10.8.0.2"),
            "{t:?}"
        );
        // Out of eth0 the same client is masqueraded and b answers.
        assert!(trace(&text, "a", "b", None).delivered);
    }

    #[test]
    fn a_tunnel_crossing_a_host_takes_that_hosts_vpn_routes() {
        // d, on the leased line only, reaches the internet through b; b is
        // an OpenVPN client of c with def1, so what it forwards for d goes
        // into its tunnel, where c drops it (not b's address): d's
        // WireGuard handshakes to hub a never arrive.
        let text = format!(
            "{}[hosts.d]\nsite = \"road\"\ninterfaces = [{{ name = \"eth0\", link = \"lan\", address = \"192.168.250.4\" }}]\nroutes = [{{ to = \"203.0.113.0/24\", via = \"192.168.250.2\" }}]\n[wireguard.wg]\ncidr = \"10.5.0.0/24\"\nhub = \"a\"\nworkers = [\"d\"]\npersistent_keepalive = \"25s\"\nendpoints = {{ a = \"203.0.113.1:51820\" }}\n",
            openvpn("203.0.113.3", true)
                .replace("host = \"a\"\nprofile", "host = \"b\"\nprofile")
                .replacen(
                    "[hosts.b]\nsite = \"road\"",
                    "[hosts.b]\nsite = \"road\"\nforwarding = true",
                    1
                )
        );
        let t = trace(&text, "d", "a", Some("wg"));
        assert!(!t.delivered, "{t:?}");
        let reason = t.reason.unwrap_or_default();
        assert!(reason.contains("MULTI: bad source address"), "{reason}");
    }

    #[test]
    fn an_openvpn_client_has_its_vpn_address_only_while_connected() {
        // The node's firewall drops a's connection, so a's tun0 never gets
        // 10.8.0.2: b's route to the client range through a ends at a,
        // which does not forward.
        let text = format!(
            "{}[firewall.c]\ninput_policy = \"drop\"\n",
            openvpn("203.0.113.3", false).replacen(
                "address = \"192.168.250.2\" }]",
                "address = \"192.168.250.2\" }]\nroutes = [{ to = \"10.8.0.0/24\", via = \"203.0.113.1\" }]",
                1,
            )
        );
        let t = trace(&text, "b", "a", Some("vpn"));
        assert!(!t.delivered, "{t:?}");
        assert!(
            t.reason
                .clone()
                .unwrap_or_default()
                .contains("forwarding = false"),
            "{t:?}"
        );
    }

    #[test]
    fn an_openvpn_client_that_is_not_connected_has_no_vpn_routes() {
        // The node's firewall drops the client's connection: no def1
        // routes while the tunnel is down, a reaches b directly.
        let text = format!(
            "{}[firewall.c]\ninput_policy = \"drop\"\n",
            openvpn("203.0.113.3", true)
        );
        let t = trace(&text, "a", "b", None);
        assert!(t.delivered, "{t:?}");
        assert_eq!(t.hops, ["a", "internet", "b"]);
    }

    /// WAN with `d` on the leased line only, and a star: hub `c`,
    /// workers `a` and `b`.
    fn star_on_wan(extra: &str, keepalive: bool) -> String {
        let keepalive = if keepalive {
            "persistent_keepalive = \"25s\"\n"
        } else {
            ""
        };
        format!(
            "{WAN}[hosts.d]\nsite = \"road\"\ninterfaces = [{{ name = \"eth0\", link = \"lan\", address = \"192.168.250.4\" }}]\n[wireguard.wg]\ncidr = \"10.5.0.0/24\"\nhub = \"c\"\nworkers = [\"a\", \"b\"]\n{keepalive}endpoints = {{ c = \"203.0.113.3:51820\" }}\n{extra}"
        )
    }

    #[test]
    fn of_two_equal_prefixes_the_route_installed_first_wins() {
        // b's static route (ifupdown, at boot) for the overlay's prefix
        // was there before wg-quick added the interface's.
        let text = star_on_wan("", true).replace(
            "{ name = \"eth1\", link = \"lan\", address = \"192.168.250.2\" }]",
            "{ name = \"eth1\", link = \"lan\", address = \"192.168.250.2\" }]\nroutes = [{ to = \"10.5.0.0/24\", via = \"192.168.250.4\" }]",
        );
        let t = trace(&text, "b", "c", Some("wg"));
        assert_eq!(t.hops, ["b", "d"], "{t:?}");
        assert!(!t.delivered);
    }

    #[test]
    fn workers_send_the_other_members_allowed_ips_through_the_hub() {
        // 10.9.0.0/24 is behind worker b: worker a routes it into wg0 too,
        // and accepts it from the hub on the way back.
        let text = star_on_wan(
            "[links.back]\nkind = \"lan\"\ncidr = \"10.9.0.0/24\"\n[hosts.e]\nsite = \"road\"\ninterfaces = [{ name = \"eth0\", link = \"back\", address = \"10.9.0.5\" }]\nroutes = [{ to = \"10.5.0.0/24\", via = \"10.9.0.2\" }]\n[wireguard.wg.allowed_ips]\nb = [\"10.9.0.0/24\"]\n",
            true,
        )
        .replace(
            "{ name = \"eth1\", link = \"lan\", address = \"192.168.250.2\" }]",
            "{ name = \"eth1\", link = \"lan\", address = \"192.168.250.2\" }, { name = \"eth2\", link = \"back\", address = \"10.9.0.2\" }]\nforwarding = true",
        )
        .replacen("site = \"road\"\ninterfaces = [{ name = \"eth0\", link = \"internet\", address = \"203.0.113.3\" }", "site = \"road\"\nforwarding = true\ninterfaces = [{ name = \"eth0\", link = \"internet\", address = \"203.0.113.3\" }", 1);
        let t = trace(&text, "a", "e", None);
        assert!(t.delivered, "{t:?}");
        assert_eq!(t.hops, ["a", "c", "b", "e"]);
        // wg-quick adds no route a route on the interface covers: the hub's
        // static route for the overlay still beats the workers' /32s.
        let text = text.replacen(
            "forwarding = true\ninterfaces = [{ name = \"eth0\", link = \"internet\", address = \"203.0.113.3\" }, { name = \"eth1\", link = \"lan\", address = \"192.168.250.3\" }]",
            "forwarding = true\ninterfaces = [{ name = \"eth0\", link = \"internet\", address = \"203.0.113.3\" }, { name = \"eth1\", link = \"lan\", address = \"192.168.250.3\" }]\nroutes = [{ to = \"10.5.0.0/24\", via = \"192.168.250.4\" }]",
            1,
        );
        let t = trace(&text, "c", "b", Some("wg"));
        assert_eq!(t.hops, ["c", "d"], "{t:?}");
    }

    #[test]
    fn a_worker_without_keepalive_is_reachable_only_if_it_sends_into_the_tunnel() {
        // b's static route shadows the overlay: it never handshakes, so
        // the hub never learns where it is.
        let shadow = |keepalive| {
            star_on_wan("", keepalive).replace(
                "{ name = \"eth1\", link = \"lan\", address = \"192.168.250.2\" }]",
                "{ name = \"eth1\", link = \"lan\", address = \"192.168.250.2\" }]\nroutes = [{ to = \"10.5.0.0/24\", via = \"192.168.250.4\" }]",
            )
        };
        let t = trace(&shadow(false), "c", "b", Some("wg"));
        assert!(!t.delivered);
        assert!(
            t.reason
                .clone()
                .unwrap_or_default()
                .contains("persistent_keepalive"),
            "{t:?}"
        );
        // With keepalive the request gets there (the answer takes the
        // static route and is lost at d).
        let t = trace(&shadow(true), "c", "b", Some("wg"));
        assert_eq!(t.hops, ["c", "b"], "{t:?}");
        // A worker whose overlay route is its own handshakes on its first packet.
        assert!(trace(&star_on_wan("", false), "c", "b", Some("wg")).delivered);
    }

    #[test]
    fn the_source_dest_check_applies_on_the_instance_interface_only() {
        // The hub is a cloud instance with the check on: worker-to-worker
        // traffic crosses its interface encrypted, to and from itself.
        let text = format!(
            "{WAN}[sites.vpc]\nkind = \"cloud-vpc\"\ncidrs = [\"10.1.0.0/16\"]\nuplink = \"internet\"\n[subnets.vpc-a]\nsite = \"vpc\"\ncidr = \"10.1.0.0/24\"\n[hosts.hub]\nsite = \"vpc\"\nforwarding = true\npublic_address = \"198.18.0.1\"\ninterfaces = [{{ name = \"eth0\", subnet = \"vpc-a\", address = \"10.1.0.10\" }}]\n[wireguard.wg]\ncidr = \"10.5.0.0/24\"\nhub = \"hub\"\nworkers = [\"a\", \"b\"]\npersistent_keepalive = \"25s\"\nendpoints = {{ hub = \"198.18.0.1:51820\" }}\n"
        );
        let t = trace(&text, "a", "b", Some("wg"));
        assert!(t.delivered, "{t:?}");
        assert_eq!(t.hops, ["a", "hub", "b"]);
        // An OpenVPN node in the VPC masquerades its clients: what it sends
        // is from itself, and the answers come back addressed to it.
        let text = format!(
            "{text}[openvpn.vpn]\ncontroller = \"hub\"\n[openvpn.vpn.profiles.p]\nprofile_number = 1\ndisplay_name = \"P\"\nnode = \"hub\"\nhost_name = \"vpn.example.net\"\nrange = \"10.8.0.0/24\"\nnat = [\"IPv4\"]\n[[openvpn.vpn.clients]]\nhost = \"c\"\nprofile = \"p\"\n[dns.\"vpn.example.net\"]\na = [\"198.18.0.1\"]\n[hosts.inner]\nsite = \"vpc\"\ninterfaces = [{{ name = \"eth0\", subnet = \"vpc-a\", address = \"10.1.0.20\" }}]\n"
        );
        let t = trace(&text, "c", "inner", None);
        assert!(t.delivered, "{t:?}");
        assert_eq!(t.hops, ["c", "hub", "inner"]);
    }

    #[test]
    fn a_static_route_may_use_a_gateway_on_a_wan_link() {
        // The wan's default route is on-link, so any address on it is a
        // valid gateway.
        let text = WAN
            .replacen(
                "address = \"203.0.113.1\" }]",
                "address = \"203.0.113.1\" }]\nroutes = [{ to = \"192.168.250.0/24\", via = \"203.0.113.3\" }]",
                1,
            )
            .replacen(
                "[hosts.c]\nsite = \"road\"\n",
                "[hosts.c]\nsite = \"road\"\nforwarding = true\n",
                1,
            );
        let t = trace(&text, "a", "b", None);
        assert!(t.delivered, "{t:?}");
        // b's first address is on the internet; aim at its lan address.
        let s = load("t.toml", &text);
        let planned = vpnsim_plan::plan(&s);
        let engine = Engine::new(&s.topology, &planned.plan);
        let a = s.topology.host_id("a").unwrap_or_else(|| panic!("a"));
        let t = engine.flow(
            a,
            "192.168.250.2".parse().unwrap_or_else(|e| panic!("{e}")),
            Probe::PING,
        );
        assert!(t.delivered, "{t:?}");
        assert_eq!(t.hops, ["a", "c", "b"]);
    }

    #[test]
    fn a_static_route_without_dev_leaves_by_the_interface_of_its_gateway() {
        // a's route to c's back link has no dev: the kernel takes the
        // leased line, so a speaks from its address there, which c can
        // answer (c is not on the internet).
        let text = format!(
            "{}[links.back]\nkind = \"lan\"\ncidr = \"10.9.0.0/24\"\n",
            WAN.replacen(
                "address = \"203.0.113.1\" }]",
                "address = \"203.0.113.1\" }, { name = \"eth1\", link = \"lan\", address = \"192.168.250.1\" }]\nroutes = [{ to = \"10.9.0.0/24\", via = \"192.168.250.3\" }]",
                1,
            )
            .replacen(
                "interfaces = [{ name = \"eth0\", link = \"internet\", address = \"203.0.113.3\" }, { name = \"eth1\", link = \"lan\", address = \"192.168.250.3\" }]",
                "interfaces = [{ name = \"eth1\", link = \"lan\", address = \"192.168.250.3\" }, { name = \"eth2\", link = \"back\", address = \"10.9.0.3\" }]",
                1,
            )
        );
        let s = load("t.toml", &text);
        let planned = vpnsim_plan::plan(&s);
        let engine = Engine::new(&s.topology, &planned.plan);
        let a = s.topology.host_id("a").unwrap_or_else(|| panic!("a"));
        let t = engine.flow(
            a,
            "10.9.0.3".parse().unwrap_or_else(|e| panic!("{e}")),
            Probe::PING,
        );
        assert!(t.delivered, "{t:?}");
        assert_eq!(t.seen_source, "192.168.250.1".parse().ok());
    }

    #[test]
    fn a_host_on_two_wan_links_reaches_each_neighbour_by_its_link() {
        let text = format!(
            "{}[links.isp-b]\nkind = \"wan\"\n[hosts.e]\nsite = \"road\"\ninterfaces = [{{ name = \"eth0\", link = \"isp-b\", address = \"192.0.2.5\" }}]\n",
            WAN.replacen(
                "address = \"203.0.113.1\" }]",
                "address = \"203.0.113.1\" }, { name = \"eth1\", link = \"isp-b\", address = \"192.0.2.1\" }]",
                1,
            )
        );
        let t = trace(&text, "a", "e", None);
        assert!(t.delivered, "{t:?}");
        assert_eq!(t.hops, ["a", "isp-b", "e"]);
        assert!(trace(&text, "a", "b", None).delivered);
    }

    #[test]
    fn a_host_on_two_wan_links_answers_a_site_router_by_its_link() {
        // y's home masquerades it behind 198.51.100.1 on isp-b; a, on the
        // internet and isp-b, answers it by isp-b, not by its default
        // route on the internet (where nobody has that address).
        let text = format!(
            "{}[links.isp-b]\nkind = \"wan\"\n[sites.home]\nkind = \"home\"\ncidrs = [\"10.1.0.0/16\"]\nuplink = \"isp-b\"\nnat_address = \"198.51.100.1\"\n[subnets.lan-a]\nsite = \"home\"\ncidr = \"10.1.0.0/24\"\n[hosts.y]\nsite = \"home\"\ninterfaces = [{{ name = \"eth0\", subnet = \"lan-a\", address = \"10.1.0.11\" }}]\n",
            WAN.replacen(
                "address = \"203.0.113.1\" }]",
                "address = \"203.0.113.1\" }, { name = \"eth1\", link = \"isp-b\", address = \"192.0.2.1\" }]",
                1,
            )
        );
        let s = load("t.toml", &text);
        let planned = vpnsim_plan::plan(&s);
        let engine = Engine::new(&s.topology, &planned.plan);
        let y = s.topology.host_id("y").unwrap_or_else(|| panic!("y"));
        let t = engine.flow(
            y,
            "192.0.2.1".parse().unwrap_or_else(|e| panic!("{e}")),
            Probe::PING,
        );
        assert!(t.delivered, "{t:?}");
    }

    #[test]
    fn the_firewall_sees_the_interface_a_packet_arrives_on_at_the_receiver() {
        // b sends from its eth1; c's end of the leased line is eth2, and
        // c trusts only an eth1 it does not have.
        let text = format!(
            "{}[firewall.c]\ninput_policy = \"reject\"\ntrusted_interfaces = [\"eth1\"]\n",
            WAN.replacen(
                "{ name = \"eth1\", link = \"lan\", address = \"192.168.250.3\" }",
                "{ name = \"eth2\", link = \"lan\", address = \"192.168.250.3\" }",
                1,
            )
        );
        let s = load("t.toml", &text);
        let planned = vpnsim_plan::plan(&s);
        let engine = Engine::new(&s.topology, &planned.plan);
        let b = s.topology.host_id("b").unwrap_or_else(|| panic!("b"));
        let t = engine.flow(
            b,
            "192.168.250.3".parse().unwrap_or_else(|e| panic!("{e}")),
            Probe::PING,
        );
        assert!(!t.delivered, "{t:?}");
        assert!(t.reason.unwrap_or_default().contains("does not admit"));
    }

    #[test]
    fn site_routers_do_no_nat_loopback() {
        // y leaves masqueraded, reaches x's elastic IP from outside; x's
        // answer goes to the router's own public address from inside.
        let text = format!(
            "{WAN}[sites.home]\nkind = \"home\"\ncidrs = [\"10.1.0.0/16\"]\nuplink = \"internet\"\nnat_address = \"198.51.100.1\"\n[subnets.lan-a]\nsite = \"home\"\ncidr = \"10.1.0.0/24\"\n[hosts.x]\nsite = \"home\"\npublic_address = \"198.18.0.1\"\ninterfaces = [{{ name = \"eth0\", subnet = \"lan-a\", address = \"10.1.0.10\" }}]\n[hosts.y]\nsite = \"home\"\ninterfaces = [{{ name = \"eth0\", subnet = \"lan-a\", address = \"10.1.0.11\" }}]\n"
        );
        let s = load("t.toml", &text);
        let planned = vpnsim_plan::plan(&s);
        let engine = Engine::new(&s.topology, &planned.plan);
        let y = s.topology.host_id("y").unwrap_or_else(|| panic!("y"));
        let t = engine.flow(
            y,
            "198.18.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
            Probe::PING,
        );
        assert!(!t.delivered, "{t:?}");
        assert!(t.reason.unwrap_or_default().contains("NAT loopback"));
        // From outside, the same masquerade works.
        assert!(trace(&text, "y", "a", None).delivered);
    }

    #[test]
    fn an_ipsec_deployment_with_auto_add_on_both_ends_never_comes_up() {
        let text = HUB_SPOKE.replace(
            "gateways = [\"vpn-sydney\", \"vpn-eu\"]",
            "gateways = [\"vpn-sydney\", \"vpn-eu\"]\nauto = \"add\"",
        );
        let t = trace(&text, "app-sydney", "build", None);
        assert!(!t.delivered, "{t:?}");
        assert!(t.reason.unwrap_or_default().contains("neither initiates"));
    }

    #[test]
    fn an_ipsec_responder_takes_the_initiator_only_at_its_conn_address() {
        // Sydney's gateway loses its elastic IP and leaves through a NAT
        // gateway: Virginia's conn names it by its private address, and
        // its IKE packets come from the NAT address.
        let text = HUB_SPOKE
            .replace(
                "source_dest_check = false\npublic_address = \"198.51.100.2\"\n",
                "source_dest_check = false\n",
            )
            .replace(
                "cidrs = [\"12.11.0.0/16\"]\nuplink = \"internet\"",
                "cidrs = [\"12.11.0.0/16\"]\nuplink = \"internet\"\nnat_address = \"198.51.100.20\"",
            );
        let t = trace(&text, "app-sydney", "build", None);
        assert!(!t.delivered, "{t:?}");
        assert!(
            t.reason
                .clone()
                .unwrap_or_default()
                .contains("no conn for that peer"),
            "{t:?}"
        );
        // EU keeps its elastic IP and its tunnel.
        assert!(trace(&text, "app-eu", "build", None).delivered);
    }

    #[test]
    fn a_peervpn_member_answers_from_the_address_routing_picks() {
        // x dials y at y's first address (other subnet, through the
        // router); y answers from its address on x's subnet, which x did
        // not dial: PeerVPN's unbound socket, no session.
        let text = "[scenario]\nname = \"mesh\"\nseed = 1\n[sites.dc]\nkind = \"datacenter\"\ncidrs = [\"10.2.0.0/16\"]\n[subnets.n0]\nsite = \"dc\"\ncidr = \"10.2.0.0/24\"\n[subnets.n1]\nsite = \"dc\"\ncidr = \"10.2.1.0/24\"\n[hosts.x]\nsite = \"dc\"\ninterfaces = [{ name = \"eth0\", subnet = \"n1\", address = \"10.2.1.10\" }]\n[hosts.y]\nsite = \"dc\"\ninterfaces = [{ name = \"eth0\", subnet = \"n0\", address = \"10.2.0.11\" }, { name = \"eth1\", subnet = \"n1\", address = \"10.2.1.11\" }]\n[mesh.m]\nnetwork_name = \"mgmt\"\ncidr = \"10.201.0.0/24\"\nmembers = [{ host = \"x\", init_peers = [\"y\"] }, { host = \"y\" }]\n";
        let s = load("t.toml", text);
        let planned = vpnsim_plan::plan(&s);
        let t = trace_between(
            &s.topology,
            &planned.plan,
            "x",
            "y",
            Some(OverlayId::Mesh(MeshId(0))),
        )
        .unwrap_or_else(|| panic!("no trace"));
        assert!(!t.delivered, "{t:?}");
        // Dialled at the address on its own subnet, y answers from it.
        let text = text.replace(
            "[{ name = \"eth0\", subnet = \"n0\", address = \"10.2.0.11\" }, { name = \"eth1\", subnet = \"n1\", address = \"10.2.1.11\" }]",
            "[{ name = \"eth1\", subnet = \"n1\", address = \"10.2.1.11\" }, { name = \"eth0\", subnet = \"n0\", address = \"10.2.0.11\" }]",
        );
        let s = load("t.toml", &text);
        let planned = vpnsim_plan::plan(&s);
        let t = trace_between(
            &s.topology,
            &planned.plan,
            "x",
            "y",
            Some(OverlayId::Mesh(MeshId(0))),
        )
        .unwrap_or_else(|| panic!("no trace"));
        assert!(t.delivered, "{t:?}");
    }

    #[test]
    fn peervpn_members_exchange_frames_only_over_their_own_connection() {
        // b dials a (internet) and d (leased line). From b's peer lists a
        // learns d at 192.168.250.4 and d learns a at 203.0.113.1; neither
        // reaches that address, and PeerVPN does not relay through b: a
        // and d stay apart although the mesh is connected.
        let text = format!(
            "{WAN}[hosts.d]\nsite = \"road\"\ninterfaces = [{{ name = \"eth0\", link = \"lan\", address = \"192.168.250.4\" }}]\n[mesh.m]\nnetwork_name = \"mgmt\"\ncidr = \"10.201.0.0/24\"\nmembers = [{{ host = \"a\" }}, {{ host = \"b\", init_peers = [\"a\", \"d\"] }}, {{ host = \"d\" }}]\n"
        );
        let s = load("t.toml", &text);
        let planned = vpnsim_plan::plan(&s);
        let via = Some(OverlayId::Mesh(MeshId(0)));
        let between = |from: &str, to: &str| {
            trace_between(&s.topology, &planned.plan, from, to, via)
                .unwrap_or_else(|| panic!("no trace"))
        };
        assert!(between("a", "b").delivered);
        assert!(between("d", "b").delivered);
        let t = between("a", "d");
        assert!(!t.delivered, "{t:?}");
        assert!(
            t.reason.unwrap_or_default().contains("does not relay"),
            "{:?}",
            between("a", "d")
        );
    }

    #[test]
    fn hub_and_spoke_reaches_the_hub_and_keeps_spokes_apart() {
        let s = load("hub.toml", HUB_SPOKE);
        let found = findings(&s);
        assert!(
            !found.iter().any(|d| d.code == "intent-violation"),
            "{found:#?}"
        );
        let planned = vpnsim_plan::plan(&s);
        let trace = trace_between(&s.topology, &planned.plan, "app-sydney", "build", None)
            .unwrap_or_else(|| panic!("no trace"));
        // `build` shares the hub's subnet, so the hub delivers directly.
        assert_eq!(
            trace.hops,
            [
                "app-sydney",
                "router of sydney",
                "vpn-sydney",
                "vpn-virginia",
                "build"
            ]
        );
    }

    #[test]
    fn the_hub_gateway_is_a_single_point_of_failure() {
        let s = load("hub.toml", HUB_SPOKE);
        let found = findings(&s);
        let spof: Vec<_> = found
            .iter()
            .filter(|d| d.code == "single-point-of-failure")
            .map(|d| d.field.clone().unwrap_or_default())
            .collect();
        assert!(spof.contains(&"hosts.vpn-virginia".to_string()), "{spof:?}");
        let hub = found
            .iter()
            .find(|d| d.field.as_deref() == Some("hosts.vpn-virginia"))
            .map(|d| d.message.clone())
            .unwrap_or_default();
        assert!(hub.contains("2 declared reach"), "{hub}");
    }

    #[test]
    fn source_dest_check_on_the_gateway_breaks_the_spoke() {
        let text = HUB_SPOKE.replacen(
            "forwarding = true\nsource_dest_check = false\npublic_address = \"198.51.100.2\"",
            "forwarding = true\npublic_address = \"198.51.100.2\"",
            1,
        );
        let found = findings(&load("hub.toml", &text));
        let violation = found
            .iter()
            .find(|d| d.code == "intent-violation")
            .unwrap_or_else(|| panic!("{found:#?}"));
        assert_eq!(violation.field.as_deref(), Some("expect.reach[0]"));
        assert!(
            violation.message.contains("source/dest check"),
            "{}",
            violation.message
        );
    }

    #[test]
    fn a_spoke_route_to_the_other_spoke_breaks_isolation_only_if_selectors_allow() {
        // Sydney routes EU's range to its gateway; the tunnel selectors do not
        // cover it, so the gateway sends it back to the router: a loop.
        let text = HUB_SPOKE.replace(
            "routes = [{ to = \"10.11.0.0/16\", via = \"vpn-sydney\" }]",
            "routes = [{ to = \"10.11.0.0/16\", via = \"vpn-sydney\" }, { to = \"13.11.0.0/16\", via = \"vpn-sydney\" }]",
        );
        let found = findings(&load("hub.toml", &text));
        assert!(
            codes(&found).contains(&("routing-loop".into(), "sites.sydney.routes[1]".into())),
            "{found:#?}"
        );
        assert!(
            !found.iter().any(|d| d.code == "intent-violation"
                && d.field.as_deref() == Some("expect.isolated[0]"))
        );
    }

    #[test]
    fn workers_reach_each_other_through_the_leader() {
        let s = load("star.toml", STAR);
        let found = findings(&s);
        assert!(
            !found.iter().any(|d| d.code == "intent-violation"),
            "{found:#?}"
        );
        assert!(
            codes(&found).contains(&("single-point-of-failure".into(), "hosts.leader".into())),
            "{found:#?}"
        );
    }

    #[test]
    fn a_leader_that_does_not_forward_cuts_the_workers() {
        let text = STAR.replacen("forwarding = true\n", "", 1);
        let found = findings(&load("star.toml", &text));
        let v = found
            .iter()
            .find(|d| d.code == "intent-violation")
            .unwrap_or_else(|| panic!("{found:#?}"));
        assert!(v.message.contains("forwarding = false"), "{}", v.message);
    }

    #[test]
    fn extra_allowed_ips_on_the_hub_reach_a_worker_lan() {
        let text = format!(
            "{STAR}\n[sites.branch]\nkind = \"home\"\n[subnets.lan]\nsite = \"branch\"\ncidr = \"192.168.7.0/24\"\n[hosts.printer]\nsite = \"branch\"\ninterfaces = [{{ name = \"eth0\", subnet = \"lan\" }}]\n"
        )
        .replace("[hosts.worker-3]\nsite = \"dc\"\n", "[hosts.worker-3]\nsite = \"dc\"\nforwarding = true\n")
        .replace(
            "interfaces = [{ name = \"eth0\", link = \"internet\", address = \"203.0.113.3\" }]",
            "interfaces = [{ name = \"eth0\", link = \"internet\", address = \"203.0.113.3\" }, { name = \"eth1\", subnet = \"lan\", address = \"192.168.7.2\" }]",
        )
        .replace("persistent_keepalive = \"25s\"", "persistent_keepalive = \"25s\"\nallowed_ips = { worker-3 = [\"192.168.7.0/24\"] }")
        .replace("to = \"worker-3\"\nvia = \"cluster\"", "to = \"printer\"");
        let s = load("star.toml", &text);
        let planned = vpnsim_plan::plan(&s);
        let trace = trace_between(&s.topology, &planned.plan, "worker-2", "printer", None)
            .unwrap_or_else(|| panic!("no trace"));
        // worker-2's hub peer allows worker-3's LAN too (the hub forwards
        // it), so the request gets there; the printer's answer to
        // worker-2's overlay address has no route back.
        assert!(!trace.delivered);
        assert_eq!(trace.hops, ["worker-2", "leader", "worker-3", "printer"]);
        let trace = trace_between(&s.topology, &planned.plan, "leader", "printer", None)
            .unwrap_or_else(|| panic!("no trace"));
        // The printer's reply has no route back to the leader's overlay address.
        assert!(!trace.delivered, "{trace:?}");
        assert!(trace.reason.unwrap_or_default().contains("reply"));
    }

    #[test]
    fn firewall_admits_only_the_allowed_source() {
        let text = format!(
            "{STAR}\n[firewall.worker-3]\ninput_policy = \"reject\"\nallow = [{{ from = [\"leader\"], proto = \"tcp\", ports = [41194] }}]\n[[expect.reach]]\nfrom = \"leader\"\nto = \"worker-3\"\nproto = \"tcp\"\nport = 41194\n[[expect.isolated]]\nfrom = \"worker-2\"\nto = \"worker-3\"\nproto = \"tcp\"\nport = 41194\n"
        );
        let found = findings(&load("star.toml", &text));
        // The star reach (icmp to worker-3) is now rejected; the tcp flows hold.
        let violations: Vec<_> = found
            .iter()
            .filter(|d| d.code == "intent-violation")
            .map(|d| d.field.clone().unwrap_or_default())
            .collect();
        assert_eq!(violations, ["expect.reach[0]"], "{found:#?}");
    }

    /// Regression (issue 4): a UDP stream is checked like a reach of its
    /// port, so a firewall that admits only another port refuses it.
    #[test]
    fn issue_4_a_stream_needs_its_udp_port_through_the_firewalls() {
        let text = format!(
            "{STAR}\n[firewall.worker-3]\ninput_policy = \"reject\"\nallow = [{{ from = [\"any\"], proto = \"icmp\" }}, {{ from = [\"leader\"], proto = \"udp\", ports = [5004] }}]\n\
             [[expect.stream]]\nfrom = \"leader\"\nto = \"worker-3\"\nrate = \"1Mbit\"\nport = 5004\n\
             [[expect.stream]]\nfrom = \"leader\"\nto = \"worker-3\"\nrate = \"1Mbit\"\n"
        );
        let found = findings(&load("star.toml", &text));
        let violations: Vec<String> = found
            .iter()
            .filter(|d| d.code == "intent-violation")
            .map(|d| format!("{} {}", d.field.clone().unwrap_or_default(), d.message))
            .collect();
        assert_eq!(violations.len(), 1, "{found:#?}");
        assert!(
            violations[0].starts_with(
                "expect.stream[1] declared stream leader → worker-3 udp/5201 does not hold"
            ),
            "{violations:?}"
        );
    }

    #[test]
    fn a_home_router_masquerades_out_but_nobody_dials_in() {
        let text = format!(
            "{STAR}\n[sites.home]\nkind = \"home\"\ncidrs = [\"192.168.1.0/24\"]\nuplink = \"internet\"\nnat_address = \"198.51.100.77\"\n\
             [subnets.home-lan]\nsite = \"home\"\ncidr = \"192.168.1.0/24\"\n\
             [hosts.laptop]\nsite = \"home\"\ninterfaces = [{{ name = \"wlan0\", subnet = \"home-lan\" }}]\n"
        );
        let s = load("home.toml", &text);
        let planned = vpnsim_plan::plan(&s);
        let out = trace_between(&s.topology, &planned.plan, "laptop", "leader", None)
            .unwrap_or_else(|| panic!("no trace"));
        assert!(out.delivered, "{out:?}");
        assert_eq!(
            out.seen_source,
            Some("198.51.100.77".parse().unwrap_or_else(|e| panic!("{e}")))
        );
        let engine = Engine::new(&s.topology, &planned.plan);
        let leader = s
            .topology
            .host_id("leader")
            .unwrap_or_else(|| panic!("leader"));
        let inbound = engine.flow(
            leader,
            "198.51.100.77".parse().unwrap_or_else(|e| panic!("{e}")),
            Probe::PING,
        );
        assert!(!inbound.delivered);
        assert!(
            inbound
                .reason
                .unwrap_or_default()
                .contains("nothing can dial in")
        );
    }

    /// Regression: reference 000 keeps managementIp 10.10.10.x from its
    /// "More Servers" section although the nodes sit on the 10.42.42.0/24 mesh.
    #[test]
    fn document_000_management_ips_are_flagged() {
        let shipped = include_str!("../../../scenarios/eduvpn-locations.toml");
        assert!(
            findings(&load("eduvpn-locations.toml", shipped))
                .iter()
                .all(|d| !d.code.starts_with("management"))
        );
        let document = shipped
            .replace(
                "management_ip = \"10.42.42.2\"",
                "management_ip = \"10.10.10.2\"",
            )
            .replace(
                "management_ip = \"10.42.42.3\"",
                "management_ip = \"10.10.10.3\"",
            );
        let found = findings(&load("eduvpn-locations.toml", &document));
        let mismatches: Vec<_> = codes(&found)
            .into_iter()
            .filter(|(c, _)| c == "management-ip-mismatch")
            .map(|(_, f)| f)
            .collect();
        assert_eq!(
            mismatches,
            [
                "openvpn.eduvpn.profiles.asia.management_ip",
                "openvpn.eduvpn.profiles.europe.management_ip"
            ]
        );
    }

    #[test]
    fn a_node_firewall_that_forgets_the_controller_cuts_management() {
        let shipped = include_str!("../../../scenarios/eduvpn-multinode.toml");
        assert!(
            findings(&load("eduvpn-multinode.toml", shipped))
                .iter()
                .all(|d| !d.code.starts_with("management"))
        );
        // Allow the daemon port from a documentation address instead of the controller.
        let broken = shipped.replacen("from = [\"controller\"]", "from = [\"192.0.2.1\"]", 1);
        assert_ne!(
            broken, shipped,
            "the scenario's node firewall allows the controller by name"
        );
        let found = findings(&load("eduvpn-multinode.toml", &broken));
        assert!(
            found.iter().any(|d| d.code == "management-unreachable"
                && d.message.contains("does not admit tcp/41194")),
            "{found:#?}"
        );
    }

    #[test]
    fn forward_rules_need_both_directions() {
        let shipped = include_str!("../../../scenarios/eduvpn-multinode.toml");
        let one_way = shipped.replacen(
            "  { in_interface = \"ens160\", out_interface = \"tun+\" },\n",
            "",
            1,
        );
        assert_ne!(one_way, shipped);
        let found = findings(&load("eduvpn-multinode.toml", &one_way));
        let violation = found
            .iter()
            .find(|d| d.code == "intent-violation" && d.message.contains("client-1 → web"))
            .unwrap_or_else(|| panic!("{found:#?}"));
        assert!(
            violation.message.contains("reply does not return"),
            "{}",
            violation.message
        );
        assert!(
            violation
                .message
                .contains("does not forward ens160 → tun-1-0"),
            "{}",
            violation.message
        );
    }
}

//! Hosts and site routers as the forwarding plane sees them: interfaces,
//! routes (longest-prefix match), the rendered iptables rules evaluated
//! against packets with connection tracking, and NAT bindings.
//!
//! ICMP numbers: RFC 792 (echo request 8, echo reply 0, destination
//! unreachable 3 with codes net 0, host 1, port 3, fragmentation needed 4,
//! administratively prohibited 13; time exceeded 11) and RFC 4443 for ICMPv6
//! (destination unreachable 1 with codes administratively prohibited 1,
//! address unreachable 3, port unreachable 4; packet too big 2; time
//! exceeded 3; echo request 128, echo reply 129).

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use vpnsim_render::iptables::{
    CtState, Match, MultiportDirection, Negatable, RejectWith, Rule, Ruleset, TableName, Target,
};
use vpnsim_topology::model::{HostId, SiteId};

use crate::packet::{Icmp, Packet, Payload, UnreachableCode};
use crate::proto::Model;

/// How long a learnt path MTU holds (Linux `net.ipv4.route.mtu_expires`).
pub const PMTU_EXPIRES: crate::time::Span = crate::time::Span::secs(600);

/// Index of a segment (link or subnet) in the network.
pub type SegIdx = usize;

/// What an interface is plugged into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfaceKind {
    /// A physical interface on a segment.
    Underlay(SegIdx),
    /// A tunnel device served by the node's model number `.0`.
    Tunnel(usize),
}

#[derive(Debug, Clone)]
pub struct Iface {
    pub name: String,
    pub kind: IfaceKind,
    pub addrs: Vec<IpNet>,
    pub mtu: u32,
    pub up: bool,
}

/// A route: destination prefix, outgoing interface, optional gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dest: IpNet,
    pub iface: usize,
    pub via: Option<IpAddr>,
    pub metric: u32,
}

/// A connection-tracking tuple (ICMP echo uses its identifier as both ports).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Tuple {
    pub proto: u8,
    pub src: IpAddr,
    pub sport: u16,
    pub dst: IpAddr,
    pub dport: u16,
}

impl Tuple {
    pub fn reversed(self) -> Tuple {
        Tuple {
            proto: self.proto,
            src: self.dst,
            sport: self.dport,
            dst: self.src,
            dport: self.sport,
        }
    }
}

/// The tuple of a packet; `None` for ICMP errors (they belong to the
/// connection of the packet they quote).
pub fn tuple(p: &Packet) -> Option<Tuple> {
    let (proto, sport, dport) = match &p.payload {
        Payload::Icmp(Icmp::EchoRequest { id, .. } | Icmp::EchoReply { id, .. }) => {
            (icmp_proto(p), *id, *id)
        }
        Payload::Icmp(_) => return None,
        _ => p.ports(),
    };
    Some(Tuple {
        proto,
        src: p.src,
        sport,
        dst: p.dst,
        dport,
    })
}

pub fn icmp_proto(p: &Packet) -> u8 {
    if p.src.is_ipv4() { 1 } else { 58 }
}

/// Rewrites the source address and port (echo identifier for ICMP echo).
pub fn set_src(p: &mut Packet, addr: IpAddr, port: u16) {
    p.src = addr;
    match &mut p.payload {
        Payload::Icmp(Icmp::EchoRequest { id, .. } | Icmp::EchoReply { id, .. }) => *id = port,
        Payload::Udp { src_port, .. } | Payload::Tcp { src_port, .. } => *src_port = port,
        _ => {}
    }
}

/// Rewrites the destination address and port.
pub fn set_dst(p: &mut Packet, addr: IpAddr, port: u16) {
    p.dst = addr;
    match &mut p.payload {
        Payload::Icmp(Icmp::EchoRequest { id, .. } | Icmp::EchoReply { id, .. }) => *id = port,
        Payload::Udp { dst_port, .. } | Payload::Tcp { dst_port, .. } => *dst_port = port,
        _ => {}
    }
}

/// ICMP (type, code) numbers of a message for the given family.
pub fn icmp_type_code(icmp: &Icmp, v4: bool) -> (u8, u8) {
    match (icmp, v4) {
        (Icmp::EchoRequest { .. }, true) => (8, 0),
        (Icmp::EchoReply { .. }, true) => (0, 0),
        (Icmp::EchoRequest { .. }, false) => (128, 0),
        (Icmp::EchoReply { .. }, false) => (129, 0),
        (Icmp::TimeExceeded { .. }, true) => (11, 0),
        (Icmp::TimeExceeded { .. }, false) => (3, 0),
        (Icmp::Unreachable { code, .. }, true) => (
            3,
            match code {
                UnreachableCode::Net => 0,
                UnreachableCode::Host => 1,
                UnreachableCode::Port => 3,
                UnreachableCode::FragmentationNeeded => 4,
                UnreachableCode::AdminProhibited => 13,
            },
        ),
        (
            Icmp::Unreachable {
                code: UnreachableCode::FragmentationNeeded,
                ..
            },
            false,
        ) => (2, 0),
        (Icmp::Unreachable { code, .. }, false) => (
            1,
            match code {
                UnreachableCode::Net => 0,
                UnreachableCode::AdminProhibited => 1,
                UnreachableCode::Host => 3,
                _ => 4,
            },
        ),
    }
}

/// The ICMP unreachable code a REJECT target sends.
pub fn reject_code(with: RejectWith) -> UnreachableCode {
    match with {
        RejectWith::IcmpNetUnreachable | RejectWith::Icmp6NoRoute => UnreachableCode::Net,
        RejectWith::IcmpHostUnreachable | RejectWith::Icmp6AddrUnreachable => UnreachableCode::Host,
        RejectWith::IcmpPortUnreachable
        | RejectWith::IcmpProtoUnreachable
        | RejectWith::Icmp6PortUnreachable
        | RejectWith::TcpReset => UnreachableCode::Port,
        _ => UnreachableCode::AdminProhibited,
    }
}

/// A site's implicit router: 1:1 NAT of public addresses, masquerade.
#[derive(Debug, Clone, Default)]
pub struct SiteRouter {
    /// Interface index of the uplink, if any.
    pub uplink: Option<usize>,
    /// Public address → private address (elastic IPs).
    pub one_to_one: BTreeMap<IpAddr, IpAddr>,
    pub masquerade: Option<IpAddr>,
    /// The site's addresses are routed public space (no NAT needed).
    pub public_space: Vec<IpNet>,
}

/// The model behind a tunnel interface. WireGuard is kept as its own type
/// for its administrative inputs (`wg set`, `wg-quick save`).
pub enum Engine {
    WireGuard(Box<crate::proto::wireguard::Device>),
    /// Libreswan: policy-based (XFRM), no interface of its own; `iface`
    /// of the tunnel is the underlay interface decrypted packets arrive on.
    Ipsec(Box<crate::proto::ipsec::Gateway>),
    /// An OpenVPN client (its tun device gets the pushed address when it connects).
    OpenVpnClient(Box<crate::proto::openvpn::Client>),
    /// An OpenVPN server process (`dev tun-N-M`).
    OpenVpnServer(Box<crate::proto::openvpn::Server>),
    /// A Linux bond over OpenVPN TAP slaves (not a [`Model`]: it sits
    /// between the host and its slave devices).
    Bond(Box<crate::proto::bond::Bond>),
    Other(Box<dyn Model>),
}

/// A tunnel model on a host, with the UDP ports it listens on.
pub struct Tunnel {
    pub iface: usize,
    pub engine: Engine,
    pub ports: BTreeSet<u16>,
    /// Receives ESP (IP protocol 50).
    pub esp: bool,
    /// `wireguard`, `ipsec`, ...
    pub kind: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Engine::WireGuard(d) => write!(f, "WireGuard({})", d.iface()),
            Engine::Ipsec(g) => write!(f, "Ipsec({:?})", g.conn_names()),
            Engine::OpenVpnClient(c) => write!(f, "OpenVpnClient({:?})", c.connected_to()),
            Engine::OpenVpnServer(s) => write!(f, "OpenVpnServer({:?})", s.listen()),
            Engine::Bond(b) => write!(f, "Bond({})", b.name()),
            Engine::Other(_) => f.write_str("Other"),
        }
    }
}

impl Tunnel {
    /// The model behind the tunnel; `None` for a bond, which has its own calls.
    pub fn model(&mut self) -> Option<&mut dyn Model> {
        match &mut self.engine {
            Engine::WireGuard(d) => Some(d.as_mut()),
            Engine::Ipsec(g) => Some(g.as_mut()),
            Engine::OpenVpnClient(c) => Some(c.as_mut()),
            Engine::OpenVpnServer(s) => Some(s.as_mut()),
            Engine::Bond(_) => None,
            Engine::Other(m) => Some(m.as_mut()),
        }
    }
}

impl Tunnel {
    /// A model that claims this underlay packet by its own rules (IPsec:
    /// IKE and ESP to its addresses; OpenVPN: its port / its connection).
    /// WireGuard is found by its UDP port instead.
    pub fn accepts(&self, p: &Packet) -> bool {
        match &self.engine {
            Engine::Ipsec(g) => g.accepts(p),
            Engine::OpenVpnClient(c) => c.accepts(p),
            Engine::OpenVpnServer(s) => s.accepts(p),
            Engine::WireGuard(_) | Engine::Bond(_) | Engine::Other(_) => false,
        }
    }
    /// An IPsec policy (leftsubnet -> rightsubnet) that matches this packet.
    pub fn ipsec_policy(&self, p: &Packet) -> bool {
        matches!(&self.engine, Engine::Ipsec(g) if g.policy_for(p).is_some())
    }
}

impl Node {
    /// The Linux XFRM inbound policy check (`dir in` / `dir fwd`) of a
    /// packet the node received, after PREROUTING: why it is dropped, if an
    /// IPsec conn's inbound policy covers it although it did not come out
    /// of that conn's SA. `from_tunnel` is the tunnel model that delivered
    /// it (none: it came off the wire); packets an IPsec gateway decrypted
    /// passed its own selector check, and IKE and ESP for a gateway are
    /// the gateway's to take (pluto's IKE socket bypasses the policies).
    /// A packet another tunnel (WireGuard, OpenVPN) decrypted is cleartext
    /// to XFRM, as in the kernel.
    pub fn xfrm_inbound_violation(&self, p: &Packet, from_tunnel: Option<usize>) -> Option<String> {
        if !self
            .tunnels
            .iter()
            .any(|t| matches!(t.engine, Engine::Ipsec(_)))
        {
            return None;
        }
        if from_tunnel
            .and_then(|t| self.tunnels.get(t))
            .is_some_and(|t| matches!(t.engine, Engine::Ipsec(_)))
        {
            return None;
        }
        if self.tunnels.iter().any(|t| t.accepts(p)) {
            return None;
        }
        let forwarded = !self.is_local(p.dst);
        self.tunnels.iter().find_map(|t| match &t.engine {
            Engine::Ipsec(g) => g.inbound_policy_violation(p, forwarded),
            _ => None,
        })
    }
}

impl std::fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tunnel")
            .field("iface", &self.iface)
            .field("kind", &self.kind)
            .finish()
    }
}

/// A node of the network: a scenario host, or a site's implicit router.
#[derive(Debug)]
pub struct Node {
    pub name: String,
    pub host: Option<HostId>,
    pub site: SiteId,
    pub up: bool,
    /// Bumped on crash so timers of the previous life are ignored.
    pub epoch: u64,
    pub ifaces: Vec<Iface>,
    pub routes: Vec<Route>,
    pub forward_v4: bool,
    pub forward_v6: bool,
    pub source_dest_check: bool,
    pub fw4: Option<Ruleset>,
    pub fw6: Option<Ruleset>,
    /// Tracked connections (original direction, before NAT).
    pub conns: BTreeSet<Tuple>,
    /// Original tuple → translated source (address, port).
    pub nat_out: BTreeMap<Tuple, (IpAddr, u16)>,
    /// Expected reply tuple (after translation) → original source.
    pub nat_in: BTreeMap<Tuple, (IpAddr, u16)>,
    pub tunnels: Vec<Tunnel>,
    pub router: Option<SiteRouter>,
    /// TCP ports with a listener (the host's services), per port the bound address.
    pub tcp_listen: BTreeMap<u16, Option<IpAddr>>,
    /// UDP ports a measurement's receiver listens on.
    pub udp_apps: BTreeSet<u16>,
    /// The host's own TCP/IP stack, made at first use after boot.
    pub stack: Option<Box<crate::stack::Stack>>,
    /// Path MTUs learnt from ICMP (destination → MTU, learnt at); Linux
    /// forgets them after `net.ipv4.route.mtu_expires`, 600 s.
    pub pmtu: BTreeMap<IpAddr, (u32, crate::time::Instant)>,
    /// The monit daemon, when the host has monit control files.
    pub monit: Option<Box<crate::monit::Monit>>,
}

impl Node {
    pub fn new(name: &str, host: Option<HostId>, site: SiteId) -> Node {
        Node {
            name: name.to_string(),
            host,
            site,
            up: true,
            epoch: 0,
            ifaces: Vec::new(),
            routes: Vec::new(),
            forward_v4: false,
            forward_v6: false,
            source_dest_check: false,
            fw4: None,
            fw6: None,
            conns: BTreeSet::new(),
            nat_out: BTreeMap::new(),
            nat_in: BTreeMap::new(),
            tunnels: Vec::new(),
            router: None,
            tcp_listen: BTreeMap::new(),
            udp_apps: BTreeSet::new(),
            stack: None,
            pmtu: BTreeMap::new(),
            monit: None,
        }
    }

    /// Records a path MTU an ICMP "fragmentation needed" / "packet too
    /// big" announced (never below the IPv4 minimum of 68, RFC 791).
    pub fn learn_pmtu(&mut self, dst: IpAddr, mtu: u32, now: crate::time::Instant) {
        let floor = if dst.is_ipv4() { 68 } else { 1280 };
        self.pmtu.insert(dst, (mtu.max(floor), now));
    }

    /// The learnt path MTU towards `dst`, while it has not expired.
    pub fn pmtu(&self, dst: IpAddr, now: crate::time::Instant) -> Option<u32> {
        self.pmtu
            .get(&dst)
            .filter(|(_, at)| now.since(*at) < PMTU_EXPIRES)
            .map(|(mtu, _)| *mtu)
    }

    /// Whether `addr` is one of this node's own addresses.
    pub fn is_local(&self, addr: IpAddr) -> bool {
        self.ifaces
            .iter()
            .any(|i| i.addrs.iter().any(|a| a.addr() == addr))
    }

    pub fn iface_index(&self, name: &str) -> Option<usize> {
        self.ifaces.iter().position(|i| i.name == name)
    }

    /// Longest-prefix match; ties go to the lower metric, then the earlier
    /// route. `underlay_only` skips tunnel devices (a tunnel's own
    /// encapsulated packets, like wg-quick's fwmark rule).
    pub fn lookup(&self, dst: IpAddr, underlay_only: bool) -> Option<&Route> {
        let mut best: Option<&Route> = None;
        for r in &self.routes {
            if !r.dest.contains(&dst) {
                continue;
            }
            let Some(iface) = self.ifaces.get(r.iface) else {
                continue;
            };
            if !iface.up || (underlay_only && matches!(iface.kind, IfaceKind::Tunnel(_))) {
                continue;
            }
            let better = match best {
                None => true,
                Some(b) => {
                    r.dest.prefix_len() > b.dest.prefix_len()
                        || (r.dest.prefix_len() == b.dest.prefix_len() && r.metric < b.metric)
                }
            };
            if better {
                best = Some(r);
            }
        }
        best
    }

    /// The preferred source address for a packet out of `iface` to `dst`.
    pub fn source_for(&self, iface: usize, dst: IpAddr) -> Option<IpAddr> {
        let i = self.ifaces.get(iface)?;
        let same = |a: &&IpNet| a.addr().is_ipv4() == dst.is_ipv4();
        i.addrs
            .iter()
            .filter(same)
            .find(|a| a.contains(&dst))
            .or_else(|| i.addrs.iter().find(same))
            .map(|a| a.addr())
            .or_else(|| {
                self.ifaces
                    .iter()
                    .flat_map(|i| i.addrs.iter())
                    .find(|a| a.addr().is_ipv4() == dst.is_ipv4())
                    .map(|a| a.addr())
            })
    }

    /// Connection state of a packet as `-m conntrack --ctstate` sees it.
    pub fn ct_state(&self, p: &Packet) -> CtState {
        match tuple(p) {
            Some(t) => {
                if self.conns.contains(&t) || self.conns.contains(&t.reversed()) {
                    CtState::Established
                } else {
                    CtState::New
                }
            }
            None => match quoted(p).and_then(tuple) {
                Some(t) if self.conns.contains(&t) || self.conns.contains(&t.reversed()) => {
                    CtState::Related
                }
                _ => CtState::Invalid,
            },
        }
    }

    /// Records a connection that a filter let through.
    pub fn track(&mut self, p: &Packet) {
        if let Some(t) = tuple(p)
            && !self.conns.contains(&t.reversed())
        {
            self.conns.insert(t);
        }
    }

    pub fn ruleset(&self, p: &Packet) -> Option<&Ruleset> {
        if p.dst.is_ipv4() {
            self.fw4.as_ref()
        } else {
            self.fw6.as_ref()
        }
    }
}

/// The packet an ICMP error quotes.
pub fn quoted(p: &Packet) -> Option<&Packet> {
    match &p.payload {
        Payload::Icmp(Icmp::Unreachable { original, .. } | Icmp::TimeExceeded { original }) => {
            Some(original)
        }
        _ => None,
    }
}

/// What a chain decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Drop,
    Reject(RejectWith),
    Snat(IpAddr),
    Masquerade,
    /// Fell off the end of a user chain, or `RETURN`.
    Continue,
}

/// What a rule is matched against.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub packet: &'a Packet,
    pub in_if: Option<&'a str>,
    pub out_if: Option<&'a str>,
    pub state: CtState,
}

/// Evaluates a built-in chain of `table`: its rules, then its policy. A
/// table or chain the file does not have accepts.
pub fn eval(rs: &Ruleset, table: TableName, chain: &str, ctx: Ctx<'_>) -> Verdict {
    match eval_chain(rs, table, chain, ctx, 0) {
        Verdict::Continue => {
            let policy = rs
                .table(table)
                .and_then(|t| t.chain(chain))
                .and_then(|c| c.policy);
            match policy {
                Some(vpnsim_render::iptables::Policy::Drop) => Verdict::Drop,
                _ => Verdict::Accept,
            }
        }
        v => v,
    }
}

fn eval_chain(rs: &Ruleset, table: TableName, chain: &str, ctx: Ctx<'_>, depth: u32) -> Verdict {
    // Loops between user chains are refused by iptables-restore; stop anyway.
    if depth > 32 {
        return Verdict::Drop;
    }
    let Some(c) = rs.table(table).and_then(|t| t.chain(chain)) else {
        return Verdict::Continue;
    };
    for rule in &c.rules {
        if !rule_matches(rule, ctx) {
            continue;
        }
        match &rule.target {
            None | Some(Target::Log { .. }) | Some(Target::Raw { .. }) => continue,
            Some(Target::Accept) => return Verdict::Accept,
            Some(Target::Drop) => return Verdict::Drop,
            Some(Target::Reject(with)) => return Verdict::Reject(*with),
            Some(Target::Return) => return Verdict::Continue,
            Some(Target::Snat { to, .. }) => return Verdict::Snat(*to),
            Some(Target::Masquerade) => return Verdict::Masquerade,
            Some(Target::Jump(name)) => {
                match eval_chain(rs, table, name.as_str(), ctx, depth + 1) {
                    Verdict::Continue => continue,
                    v => return v,
                }
            }
            Some(Target::Goto(name)) => {
                return eval_chain(rs, table, name.as_str(), ctx, depth + 1);
            }
        }
    }
    Verdict::Continue
}

fn neg<T>(n: &Negatable<T>, hit: bool) -> bool {
    hit != n.negated
}

fn rule_matches(rule: &Rule, ctx: Ctx<'_>) -> bool {
    let p = ctx.packet;
    if let Some(s) = &rule.source
        && !neg(s, s.value.contains(&p.src))
    {
        return false;
    }
    if let Some(d) = &rule.destination
        && !neg(d, d.value.contains(&p.dst))
    {
        return false;
    }
    for (want, have) in [
        (&rule.in_interface, ctx.in_if),
        (&rule.out_interface, ctx.out_if),
    ] {
        if let Some(w) = want {
            let Some(have) = have else { return false };
            if !neg(w, w.value.matches(have)) {
                return false;
            }
        }
    }
    let proto = match &p.payload {
        Payload::Icmp(_) => icmp_proto(p),
        _ => p.ports().0,
    };
    if let Some(pr) = &rule.protocol
        && !neg(pr, pr.value.0 == proto)
    {
        return false;
    }
    let (_, sport, dport) = p.ports();
    rule.matches.iter().all(|m| match m {
        Match::Tcp(pm) | Match::Udp(pm) => {
            let want = if matches!(m, Match::Tcp(_)) { 6 } else { 17 };
            proto == want
                && pm
                    .sport
                    .as_ref()
                    .is_none_or(|r| neg(r, r.value.contains(sport)))
                && pm
                    .dport
                    .as_ref()
                    .is_none_or(|r| neg(r, r.value.contains(dport)))
        }
        Match::Icmp(t) | Match::Icmp6(t) => match &p.payload {
            Payload::Icmp(icmp) => {
                let (ty, code) = icmp_type_code(icmp, p.src.is_ipv4());
                let hit = (t.value.kind == 255 && t.value.code.is_none())
                    || (t.value.kind == ty && t.value.code.is_none_or(|c| c == code));
                neg(t, hit)
            }
            _ => false,
        },
        Match::Multiport {
            negated,
            direction,
            ports,
        } => {
            if proto != 6 && proto != 17 {
                return false;
            }
            let hit = ports.iter().any(|r| match direction {
                MultiportDirection::Source => r.contains(sport),
                MultiportDirection::Destination => r.contains(dport),
                MultiportDirection::Either => r.contains(sport) || r.contains(dport),
            });
            hit != *negated
        }
        Match::Conntrack(states) => neg(states, states.value.contains(&ctx.state)),
        Match::Comment(_) => true,
        // A module the simulator does not model never matches.
        Match::Raw { .. } => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpnsim_render::iptables::Family;

    fn ping(src: &str, dst: &str) -> Packet {
        Packet {
            src: src.parse().unwrap_or_else(|e| panic!("{e}")),
            dst: dst.parse().unwrap_or_else(|e| panic!("{e}")),
            ttl: 64,
            dont_fragment: true,
            payload: Payload::Icmp(Icmp::EchoRequest {
                id: 7,
                seq: 1,
                len: 56,
            }),
        }
    }

    #[test]
    fn icmp_numbers_follow_rfc_792_and_4443() {
        let p = ping("10.0.0.1", "10.0.0.2");
        let frag = Icmp::Unreachable {
            code: UnreachableCode::FragmentationNeeded,
            mtu: Some(1400),
            original: Box::new(p.clone()),
        };
        assert_eq!(icmp_type_code(&frag, true), (3, 4));
        assert_eq!(icmp_type_code(&frag, false), (2, 0));
        assert_eq!(
            icmp_type_code(
                &Icmp::EchoRequest {
                    id: 0,
                    seq: 0,
                    len: 0
                },
                true
            ),
            (8, 0)
        );
        assert_eq!(
            icmp_type_code(
                &Icmp::EchoReply {
                    id: 0,
                    seq: 0,
                    len: 0
                },
                false
            ),
            (129, 0)
        );
        let admin = Icmp::Unreachable {
            code: UnreachableCode::AdminProhibited,
            mtu: None,
            original: Box::new(p),
        };
        assert_eq!(icmp_type_code(&admin, true), (3, 13));
    }

    #[test]
    fn rules_policy_and_conntrack() {
        let text = "*filter\n:INPUT DROP [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT\n-A INPUT -s 10.0.0.9/32 -p icmp -j ACCEPT\n-A INPUT -p tcp -m tcp --dport 22 -j REJECT --reject-with tcp-reset\nCOMMIT\n";
        let rs = Ruleset::parse(Family::V4, text).unwrap_or_else(|e| panic!("{e}"));
        let p = ping("10.0.0.1", "10.0.0.2");
        let ctx = |p, state| Ctx {
            packet: p,
            in_if: Some("eth0"),
            out_if: None,
            state,
        };
        assert_eq!(
            eval(&rs, TableName::Filter, "INPUT", ctx(&p, CtState::New)),
            Verdict::Drop
        );
        assert_eq!(
            eval(
                &rs,
                TableName::Filter,
                "INPUT",
                ctx(&p, CtState::Established)
            ),
            Verdict::Accept
        );
        let q = ping("10.0.0.9", "10.0.0.2");
        assert_eq!(
            eval(&rs, TableName::Filter, "INPUT", ctx(&q, CtState::New)),
            Verdict::Accept
        );
        assert_eq!(
            eval(&rs, TableName::Filter, "FORWARD", ctx(&q, CtState::New)),
            Verdict::Accept
        );
        let mut node = Node::new("n", None, SiteId(0));
        assert_eq!(node.ct_state(&p), CtState::New);
        node.track(&p);
        let mut reply = p.clone();
        reply.src = p.dst;
        reply.dst = p.src;
        assert_eq!(node.ct_state(&reply), CtState::Established);
    }
}

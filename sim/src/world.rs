//! The running network: nodes (hosts and site routers), segments, the
//! event queue, the packet pipeline (PREROUTING de-NAT → INPUT or
//! FORWARD → POSTROUTING NAT → MTU → segment), tunnel models, probes and
//! the administrative actions of the timeline.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, DefaultHasher};
use std::net::IpAddr;

use vpnsim_render::iptables::{RejectWith, TableName};

use crate::engine::{Queue, TraceLine};
use crate::host::{
    Ctx, Iface, IfaceKind, Node, Route, Verdict, eval, quoted, reject_code, set_dst, set_src, tuple,
};
use crate::load::HostFiles;
use crate::net::{self, Port, Segment};
use crate::packet::{Body, Icmp, Packet, Payload, TcpFlags, UnreachableCode};
use crate::probe::Probe;
use crate::proto::Action;
use crate::rng::Rng;
use crate::stack::{PortOwner, Stack};
use crate::time::{Instant, Span};

/// Events on the queue.
#[derive(Debug)]
pub enum Ev {
    /// A frame arrives at an interface (boxed: packets are large);
    /// `generation` is its segment's when it was sent (see
    /// `net::Segment::generation`).
    Arrive {
        node: usize,
        iface: usize,
        packet: Box<Packet>,
        generation: u64,
    },
    /// A model's timer, valid only in the node's `epoch`.
    Timer {
        node: usize,
        tunnel: usize,
        token: u64,
        epoch: u64,
    },
    /// A probe sends its next request.
    Probe { probe: usize },
    /// A bulk transfer starts.
    Bulk { flow: usize },
    /// A node's stack asked to be polled (valid for the stack with this
    /// serial number: a crash and reboot make a new stack).
    Stack { node: usize, serial: u64 },
    /// Timeline entry number `.0` (prepared by the runner).
    Timeline(usize),
    /// One host's part of a promotion procedure (timeline entry `event`).
    Script {
        node: usize,
        path: String,
        event: usize,
    },
    /// The node's monit daemon wakes up (valid in the node's `epoch`, for
    /// the daemon's wake-up number `wake`).
    Monit { node: usize, epoch: u64, wake: u64 },
}

/// A model timer: the deadline it asked for last, and the wake-ups on the
/// queue (latest first).
#[derive(Debug, Clone, Default)]
struct TimerSlot {
    epoch: u64,
    deadline: Option<Instant>,
    queued: Vec<Instant>,
}

/// A partition: hosts in different groups cannot reach each other.
#[derive(Debug, Clone)]
pub struct Partition {
    pub groups: Vec<Vec<usize>>,
    pub one_way: bool,
}

/// The simulated network.
#[derive(Debug)]
pub struct World {
    pub q: Queue<Ev>,
    pub rng: Rng,
    pub nodes: Vec<Node>,
    pub segs: Vec<Segment>,
    pub trace: Vec<TraceLine>,
    pub probes: Vec<Probe>,
    /// Messages of OpenVPN models on their way through a TCP connection,
    /// by the id their record carries (see [`crate::carrier`]).
    pub stream_messages: BTreeMap<u64, crate::proto::openvpn::Message>,
    pub next_stream_message: u64,
    /// Stacks made so far (each gets the next number as its serial).
    stacks_made: u64,
    /// The connect attempts of TCP probes by the (source address, port)
    /// their SYN leaves with: (probe, attempt).
    pub tcp_attempts: BTreeMap<(IpAddr, u16), (usize, u32)>,
    /// Bulk transfers (`expect.throughput`).
    pub bulks: Vec<crate::probe::Bulk>,
    pub partitions: Vec<Partition>,
    /// Which host node an address belongs to (underlay and public addresses).
    pub addr_host: BTreeMap<IpAddr, usize>,
    /// Files of each host node, re-read on restart.
    pub files: BTreeMap<usize, HostFiles>,
    /// Interfaces and routes of the underlay, restored on restart.
    pub base: BTreeMap<usize, (Vec<Iface>, Vec<Route>)>,
    /// Model timers by (node, tunnel, token). Looked up on every timer a
    /// model sets, never iterated: a hash map (with the fixed-key std
    /// hasher, so nothing depends on a random seed) keeps that cheap.
    timers: HashMap<(usize, usize, u64), TimerSlot, BuildHasherDefault<DefaultHasher>>,
    pub events_run: u64,
    /// Drops by reason (for the report).
    pub drops: BTreeMap<String, u64>,
    /// With `RunOptions::capture`: every packet put on each segment, by
    /// segment name, at the time it was sent.
    pub captures: Option<BTreeMap<String, Vec<(Instant, Packet)>>>,
    /// The host route to its server each connected OpenVPN client
    /// (node, tunnel) added beside its pushed routes (removed at down).
    openvpn_bypass: BTreeMap<(usize, usize), Route>,
    /// Probe requests (probe, sequence number) that left a node inside
    /// ESP, with the nodes whose IPsec gateway encrypted them (see
    /// `probe::request_of`; judged for `via = <ipsec deployment>`).
    pub esp_carried: BTreeMap<(usize, u32), std::collections::BTreeSet<usize>>,
    /// Every promotion script run, in order.
    pub scripts_run: Vec<crate::load::ScriptRun>,
    /// Every change of a tunnel session, in order (see [`Action::Session`]).
    pub sessions: Vec<SessionChange>,
    /// Each host's static routes from the scenario.
    pub host_routes: BTreeMap<usize, Vec<HostRoute>>,
    /// The sessions open now: (node, tunnel label, peer) → the peer's address.
    open_sessions: BTreeMap<(usize, String, String), Option<IpAddr>>,
}

/// A static route of a host as the scenario gives it: to, via, dev.
pub type HostRoute = (ipnet::IpNet, Option<IpAddr>, Option<String>);

/// One change of a tunnel session: a client connected to a server, a
/// WireGuard peer completed a handshake, an IPsec SA was lost, a bond
/// slave joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionChange {
    pub at: Instant,
    pub host: String,
    /// The tunnel's interface (`tun0`, `wg0`, `bond0`), or `ipsec`.
    pub tunnel: String,
    /// The peer as the daemon names it (see [`crate::proto::Session`]).
    pub peer: String,
    pub addr: Option<IpAddr>,
    /// The scenario host that owns `addr`, when one does.
    pub peer_host: Option<String>,
    pub up: bool,
    pub why: String,
}

impl World {
    pub fn new(seed: u64) -> World {
        World {
            q: Queue::new(),
            rng: Rng::new(seed),
            nodes: Vec::new(),
            segs: Vec::new(),
            trace: Vec::new(),
            probes: Vec::new(),
            bulks: Vec::new(),
            tcp_attempts: BTreeMap::new(),
            stacks_made: 0,
            stream_messages: BTreeMap::new(),
            next_stream_message: 0,
            partitions: Vec::new(),
            addr_host: BTreeMap::new(),
            files: BTreeMap::new(),
            base: BTreeMap::new(),
            timers: HashMap::default(),
            events_run: 0,
            drops: BTreeMap::new(),
            captures: None,
            openvpn_bypass: BTreeMap::new(),
            esp_carried: BTreeMap::new(),
            scripts_run: Vec::new(),
            sessions: Vec::new(),
            open_sessions: BTreeMap::new(),
            host_routes: BTreeMap::new(),
        }
    }

    /// The label sessions of tunnel `t` of `node` go under.
    fn tunnel_label(&self, node: usize, t: usize) -> String {
        let n = &self.nodes[node];
        match n.tunnels.get(t) {
            Some(x) if x.kind == "ipsec" => "ipsec".to_string(),
            Some(x) => n
                .ifaces
                .get(x.iface)
                .map_or_else(|| x.kind.clone(), |i| i.name.clone()),
            None => String::new(),
        }
    }

    /// Records a session change a model reported, unless it changes
    /// nothing: an `up` of an open session with the same peer address (a
    /// rekey), a `down` of one that is not open.
    fn session(&mut self, node: usize, t: usize, s: crate::proto::Session) {
        let key = (node, self.tunnel_label(node, t), s.peer);
        let open = self.open_sessions.get(&key).copied();
        let changes = match (s.up, open) {
            (true, Some(addr)) => addr != s.addr,
            (true, None) => true,
            (false, open) => open.is_some(),
        };
        if !changes {
            return;
        }
        if s.up {
            self.open_sessions.insert(key.clone(), s.addr);
        } else {
            self.open_sessions.remove(&key);
        }
        let (_, tunnel, peer) = key;
        self.record_session(node, tunnel, peer, s.addr, s.up, s.why);
    }

    fn record_session(
        &mut self,
        node: usize,
        tunnel: String,
        peer: String,
        addr: Option<IpAddr>,
        up: bool,
        why: String,
    ) {
        let peer_host = addr
            .and_then(|a| self.addr_host.get(&a))
            .and_then(|h| self.nodes.get(*h))
            .map(|n| n.name.clone());
        let host = self.nodes[node].name.clone();
        self.log(format!(
            "{host}: session {tunnel} {peer} {}: {why}",
            if up { "up" } else { "down" }
        ));
        self.sessions.push(SessionChange {
            at: self.now(),
            host,
            tunnel,
            peer,
            addr,
            peer_host,
            up,
            why,
        });
    }

    /// Ends every open session of `node`: its daemons are gone.
    pub fn close_sessions(&mut self, node: usize, why: &str) {
        let open: Vec<((usize, String, String), Option<IpAddr>)> = self
            .open_sessions
            .range((node, String::new(), String::new())..)
            .take_while(|((n, _, _), _)| *n == node)
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        for (key, addr) in open {
            self.open_sessions.remove(&key);
            let (_, tunnel, peer) = key;
            self.record_session(node, tunnel, peer, addr, false, why.to_string());
        }
    }

    pub fn now(&self) -> Instant {
        self.q.now()
    }

    pub fn log(&mut self, text: impl Into<String>) {
        let at = self.now();
        self.trace.push(TraceLine {
            at,
            text: text.into(),
        });
    }

    pub fn drop_packet(&mut self, node: usize, p: &Packet, reason: &str) {
        *self.drops.entry(reason.to_string()).or_default() += 1;
        let name = self
            .nodes
            .get(node)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        self.log(format!(
            "{name}: drop {} -> {} ({}): {reason}",
            p.src,
            p.dst,
            describe(p)
        ));
    }

    /// Runs every event up to `until`.
    pub fn run_until(&mut self, until: Instant, mut timeline: impl FnMut(&mut World, usize)) {
        while let Some((_, ev)) = self.q.pop_until(until) {
            self.events_run += 1;
            match ev {
                Ev::Arrive {
                    node,
                    iface,
                    packet,
                    generation,
                } => self.arrive(node, iface, *packet, generation),
                Ev::Timer {
                    node,
                    tunnel,
                    token,
                    epoch,
                } => self.fire_timer(node, tunnel, token, epoch),
                Ev::Probe { probe } => crate::probe::send(self, probe),
                Ev::Bulk { flow } => crate::probe::start_bulk(self, flow),
                Ev::Stack { node, serial } => self.stack_timer(node, serial),
                Ev::Timeline(i) => timeline(self, i),
                Ev::Script { node, path, event } => {
                    crate::load::run_script(self, node, &path, event)
                }
                Ev::Monit { node, epoch, wake } => crate::monit::on_timer(self, node, epoch, wake),
            }
        }
        self.q.run_until(until, |_, _, _| {});
    }

    // ---------------------------------------------------------------
    // Tunnel models
    // ---------------------------------------------------------------

    pub fn start_models(&mut self, node: usize) {
        let count = self.nodes.get(node).map_or(0, |n| n.tunnels.len());
        for t in 0..count {
            let now = self.now();
            let actions = match self.nodes[node].tunnels.get_mut(t) {
                Some(tunnel) => match &mut tunnel.engine {
                    crate::host::Engine::Bond(b) => b.start(now),
                    _ => tunnel
                        .model()
                        .map(|m| m.start(now, &mut self.rng))
                        .unwrap_or_default(),
                },
                None => continue,
            };
            self.apply(node, t, actions);
        }
        crate::monit::start(self, node);
    }

    /// Forgets the pending timers of model `t` of the node: its process
    /// stopped, and a process started in its place begins afresh.
    pub(crate) fn forget_timers(&mut self, node: usize, t: usize) {
        self.timers.retain(|(n, x, _), _| !(*n == node && *x == t));
    }

    fn fire_timer(&mut self, node: usize, t: usize, token: u64, epoch: u64) {
        let now = self.now();
        let Some(slot) = self.timers.get_mut(&(node, t, token)) else {
            return;
        };
        if slot.epoch != epoch {
            return; // a timer of the model's previous life
        }
        slot.queued.pop();
        match slot.deadline {
            Some(d) if d <= now => slot.deadline = None,
            Some(d) => {
                // Moved later while this one waited: wake up then instead.
                if slot.queued.last().is_none_or(|q| *q > d) {
                    slot.queued.push(d);
                    self.q.schedule(
                        d,
                        Ev::Timer {
                            node,
                            tunnel: t,
                            token,
                            epoch,
                        },
                    );
                }
                return;
            }
            None => return,
        }
        if !self
            .nodes
            .get(node)
            .is_some_and(|n| n.up && n.epoch == epoch)
        {
            return;
        }
        let now = self.now();
        let actions = match self.nodes[node].tunnels.get_mut(t) {
            Some(tunnel) => match &mut tunnel.engine {
                crate::host::Engine::Bond(b) => b.on_timer(now, token),
                _ => tunnel
                    .model()
                    .map(|m| m.on_timer(now, &mut self.rng, token))
                    .unwrap_or_default(),
            },
            None => return,
        };
        self.apply(node, t, actions);
    }

    /// Carries out what a model asked for.
    pub fn apply(&mut self, node: usize, t: usize, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Transmit(p) => {
                    let Some(p) = crate::carrier::transmit(self, node, t, p) else {
                        continue;
                    };
                    if let Some(key) = crate::proto::ipsec::esp_inner(&p)
                        .and_then(|inner| crate::probe::request_of(self, inner))
                    {
                        self.esp_carried.entry(key).or_default().insert(node);
                    }
                    if let Payload::Udp { src_port, .. } = &p.payload
                        && let Some(tunnel) = self.nodes[node].tunnels.get_mut(t)
                    {
                        tunnel.ports.insert(*src_port);
                    }
                    self.output_local(node, p, true);
                }
                Action::Deliver(p) => {
                    self.capture_tunnel(node, t, &p);
                    // A frame from a TAP slave goes to the bond.
                    if let Some(dev) = self.tap_name(node, t)
                        && let Some(b) = self.bonds(node).first().copied()
                    {
                        let now = self.now();
                        let actions =
                            match self.nodes[node].tunnels.get_mut(b).map(|x| &mut x.engine) {
                                Some(crate::host::Engine::Bond(bond)) => bond.receive(now, &dev, p),
                                _ => Vec::new(),
                            };
                        self.apply(node, b, actions);
                        continue;
                    }
                    let Some(iface) = self.nodes[node].tunnels.get(t).map(|t| t.iface) else {
                        continue;
                    };
                    self.input_from(node, iface, p, Some(t));
                }
                Action::Timer { at, token } => {
                    // One queue entry per timer: moving it later only
                    // updates the deadline (the queued wake-up re-arms).
                    let epoch = self.nodes[node].epoch;
                    let slot = self.timers.entry((node, t, token)).or_default();
                    if slot.epoch != epoch {
                        *slot = TimerSlot {
                            epoch,
                            ..TimerSlot::default()
                        };
                    }
                    slot.deadline = Some(at);
                    if slot.queued.last().is_none_or(|q| at < *q) {
                        slot.queued.push(at);
                        self.q.schedule(
                            at,
                            Ev::Timer {
                                node,
                                tunnel: t,
                                token,
                                epoch,
                            },
                        );
                    }
                }
                Action::LinkState { up } => {
                    self.openvpn_addresses(node, t, up);
                    // A TAP slave's link runs route-up / route-pre-down for the bonds.
                    if let Some(dev) = self.tap_name(node, t) {
                        for b in self.bonds(node) {
                            let now = self.now();
                            let actions =
                                match self.nodes[node].tunnels.get_mut(b).map(|x| &mut x.engine) {
                                    Some(crate::host::Engine::Bond(bond)) if up => {
                                        bond.slave_link_up(now, &dev)
                                    }
                                    Some(crate::host::Engine::Bond(bond)) => {
                                        bond.slave_link_down(now, &dev)
                                    }
                                    _ => Vec::new(),
                                };
                            self.apply(node, b, actions);
                        }
                    }
                    let n = &mut self.nodes[node];
                    if let Some(iface) = n.tunnels.get(t).map(|t| t.iface)
                        && let Some(i) = n.ifaces.get_mut(iface)
                    {
                        i.up = up;
                        let text =
                            format!("{}: {} {}", n.name, i.name, if up { "up" } else { "down" });
                        self.log(text);
                    }
                }
                Action::TransmitOn { device, packet } => self.send_on_device(node, &device, packet),
                Action::Drop { packet, reason } => self.drop_packet(node, &packet, &reason),
                Action::Log(text) => {
                    let text = format!("{}: {text}", self.nodes[node].name);
                    self.log(text);
                }
                Action::Session(s) => self.session(node, t, s),
            }
        }
        crate::carrier::sync(self, node, t);
    }

    /// A packet into tunnel `t`: its model encapsulates it; a bond picks
    /// the slave whose OpenVPN TAP model carries it.
    /// With captures on: records `p` on the tunnel interface `t` of `node`
    /// (capture name `<host>-<interface>`), both directions in one file.
    fn capture_tunnel(&mut self, node: usize, t: usize, p: &Packet) {
        let now = self.now();
        let Some(captures) = &mut self.captures else {
            return;
        };
        let n = &self.nodes[node];
        let Some(iface) = n.tunnels.get(t).and_then(|x| n.ifaces.get(x.iface)) else {
            return;
        };
        captures
            .entry(format!("{}-{}", n.name, iface.name))
            .or_default()
            .push((now, p.clone()));
    }

    fn tunnel_send(&mut self, node: usize, t: usize, p: Packet) {
        self.tunnel_send_via(node, t, p, None);
    }

    /// [`World::tunnel_send`] by a route whose next hop is `next_hop` (its
    /// gateway, else the destination): what an L2 device resolves by ARP.
    fn tunnel_send_via(&mut self, node: usize, t: usize, p: Packet, next_hop: Option<IpAddr>) {
        self.capture_tunnel(node, t, &p);
        let now = self.now();
        let Some(tunnel) = self.nodes[node].tunnels.get_mut(t) else {
            return self.drop_packet(node, &p, "no model serves the interface");
        };
        if let crate::host::Engine::Bond(bond) = &mut tunnel.engine {
            match bond.transmit(now, p) {
                Ok((slave, p)) => {
                    let n = &self.nodes[node];
                    let st = n
                        .tunnels
                        .iter()
                        .position(|x| n.ifaces.get(x.iface).is_some_and(|i| i.name == slave));
                    match st {
                        Some(st) => self.tunnel_send(node, st, p),
                        None => self.drop_packet(
                            node,
                            &p,
                            &format!("bond slave {slave} has no OpenVPN process"),
                        ),
                    }
                }
                Err(action) => self.apply(node, t, vec![*action]),
            }
            return;
        }
        let actions = match (tunnel.model(), next_hop) {
            (Some(m), Some(hop)) => m.send_via(now, &mut self.rng, p, hop),
            (Some(m), None) => m.send(now, &mut self.rng, p),
            (None, _) => Vec::new(),
        };
        self.apply(node, t, actions);
    }

    /// A frame a model sends on one device of the node (a bond's ARP
    /// probe on a slave): to the model behind that device.
    fn send_on_device(&mut self, node: usize, device: &str, p: Packet) {
        let n = &self.nodes[node];
        let t = n
            .tunnels
            .iter()
            .position(|x| n.ifaces.get(x.iface).is_some_and(|i| i.name == device));
        match t {
            Some(t) => self.tunnel_send(node, t, p),
            None => self.drop_packet(node, &p, &format!("{device} has no model behind it")),
        }
    }

    /// The carrier of device `dev` of the node changed (administratively
    /// down or up): the bonds it is a slave of see it at their next MII
    /// poll.
    fn slave_carrier(&mut self, node: usize, dev: &str, up: bool) {
        for b in self.bonds(node) {
            let now = self.now();
            let actions = match self.nodes[node].tunnels.get_mut(b).map(|x| &mut x.engine) {
                Some(crate::host::Engine::Bond(bond)) => bond.carrier(now, dev, up),
                _ => Vec::new(),
            };
            self.apply(node, b, actions);
        }
    }

    /// Bonds of the node (tunnel indices).
    fn bonds(&self, node: usize) -> Vec<usize> {
        self.nodes.get(node).map_or_else(Vec::new, |n| {
            n.tunnels
                .iter()
                .enumerate()
                .filter(|(_, t)| matches!(t.engine, crate::host::Engine::Bond(_)))
                .map(|(i, _)| i)
                .collect()
        })
    }

    /// The name of tunnel `t`'s interface if it is an OpenVPN TAP device.
    fn tap_name(&self, node: usize, t: usize) -> Option<String> {
        let n = self.nodes.get(node)?;
        let tunnel = n.tunnels.get(t)?;
        (tunnel.kind == crate::load::KIND_TAP)
            .then(|| n.ifaces.get(tunnel.iface).map(|i| i.name.clone()))
            .flatten()
    }

    /// An OpenVPN client's tun device takes the addresses the server
    /// pushed when it connects, and loses them when it goes down; so do
    /// the pushed routes (`redirect-gateway`, `route`) and the host route
    /// to the server through the previous gateway.
    fn openvpn_addresses(&mut self, node: usize, t: usize, up: bool) {
        let old_bypass = self.openvpn_bypass.remove(&(node, t));
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let Some(tunnel) = n.tunnels.get(t) else {
            return;
        };
        let crate::host::Engine::OpenVpnClient(client) = &tunnel.engine else {
            return;
        };
        let iface = tunnel.iface;
        let (v4, v6) = if up { client.assigned() } else { (None, None) };
        let pushed = if up {
            client.pushed_routes()
        } else {
            crate::proto::openvpn::PushedRoutes::default()
        };
        if let Some(old) = old_bypass {
            n.routes.retain(|r| *r != old);
        }
        // OpenVPN routes the server through the default gateway it found
        // (`rl->rgi.gateway`, route.c), whatever route reached the server
        // before: a server on another connected subnet is then reached
        // through the router too.
        let bypass = pushed.bypass.and_then(|server| {
            let r = n
                .routes
                .iter()
                .filter(|r| r.dest.prefix_len() == 0 && r.dest.addr().is_ipv4() == server.is_ipv4())
                .filter(|r| {
                    n.ifaces
                        .get(r.iface)
                        .is_some_and(|i| i.up && matches!(i.kind, IfaceKind::Underlay(_)))
                })
                .min_by_key(|r| r.metric)?;
            Some(Route {
                dest: ipnet::IpNet::from(server),
                iface: r.iface,
                via: r.via,
                metric: 0,
            })
        });
        let addrs: Vec<ipnet::IpNet> = v4
            .map(ipnet::IpNet::V4)
            .into_iter()
            .chain(v6.map(ipnet::IpNet::V6))
            .collect();
        n.routes.retain(|r| r.iface != iface);
        for a in &addrs {
            n.routes.push(Route {
                dest: a.trunc(),
                iface,
                via: None,
                metric: 0,
            });
        }
        for dest in pushed.tunnel {
            n.routes.push(Route {
                dest,
                iface,
                via: None,
                metric: 0,
            });
        }
        if let Some(b) = bypass {
            n.routes.push(b.clone());
            self.openvpn_bypass.insert((node, t), b);
        }
        if let Some(i) = n.ifaces.get_mut(iface) {
            i.addrs = addrs;
        }
    }

    // ---------------------------------------------------------------
    // Packet pipeline
    // ---------------------------------------------------------------

    fn arrive(&mut self, node: usize, iface: usize, p: Packet, generation: u64) {
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        // The link went down while the frame was on the wire.
        if let Some(IfaceKind::Underlay(seg)) = n.ifaces.get(iface).map(|i| i.kind)
            && let Some(s) = self.segs.get(seg)
            && !s.carries(generation)
        {
            let reason = format!("lost on {}: it went down in flight", s.name);
            return self.drop_packet(node, &p, &reason);
        }
        if !n.up {
            return self.drop_packet(node, &p, "host is down");
        }
        if !n.ifaces.get(iface).is_some_and(|i| i.up) {
            return self.drop_packet(node, &p, "interface down");
        }
        if n.host.is_some()
            && let Some(src) = self.addr_host.get(&p.src)
            && self.partitioned(*src, node)
        {
            return self.drop_packet(node, &p, "partition");
        }
        // The cloud's check on the instance's network interface.
        if n.source_dest_check && !n.is_local(p.dst) {
            return self.drop_packet(node, &p, "source/destination check");
        }
        self.input(node, iface, p);
    }

    /// A packet received on `iface` (from a segment or out of a tunnel).
    pub fn input(&mut self, node: usize, iface: usize, p: Packet) {
        self.input_from(node, iface, p, None);
    }

    /// [`World::input`] of a packet tunnel `from_tunnel` delivered (none:
    /// off the wire).
    fn input_from(&mut self, node: usize, iface: usize, mut p: Packet, from_tunnel: Option<usize>) {
        let n = &mut self.nodes[node];
        if !n.up {
            return;
        }
        // PREROUTING: the site router's 1:1 NAT, then reverse NAT of tracked flows.
        if let Some(r) = &n.router
            && Some(iface) == r.uplink
            && let Some(private) = r.one_to_one.get(&p.dst)
        {
            p.dst = *private;
        } else if let Some(t) = tuple(&p) {
            if let Some((addr, port)) = n.nat_in.get(&t).copied() {
                set_dst(&mut p, addr, port);
            }
        } else if let Some(qt) = quoted(&p).and_then(tuple)
            && let Some((addr, port)) = n.nat_in.get(&qt.reversed()).copied()
        {
            p.dst = addr;
            if let Payload::Icmp(
                Icmp::Unreachable { original, .. } | Icmp::TimeExceeded { original },
            ) = &mut p.payload
            {
                set_src(original, addr, port);
            }
        }
        // XFRM inbound policy (`dir in` / `dir fwd`), after PREROUTING.
        if let Some(reason) = self.nodes[node].xfrm_inbound_violation(&p, from_tunnel) {
            return self.drop_packet(node, &p, &reason);
        }
        if self.nodes[node].is_local(p.dst) {
            self.local_in(node, iface, p);
        } else {
            self.forward(node, iface, p);
        }
    }

    fn filter(
        &mut self,
        node: usize,
        chain: &str,
        p: &Packet,
        in_if: Option<usize>,
        out_if: Option<usize>,
    ) -> bool {
        let n = &self.nodes[node];
        // Without rules there is no conntrack either: nothing would read it.
        let Some(rs) = n.ruleset(p) else {
            return true;
        };
        let name = |i: Option<usize>| i.and_then(|i| n.ifaces.get(i)).map(|i| i.name.as_str());
        let ctx = Ctx {
            packet: p,
            in_if: name(in_if),
            out_if: name(out_if),
            state: n.ct_state(p),
        };
        match eval(rs, TableName::Filter, chain, ctx) {
            Verdict::Accept | Verdict::Continue | Verdict::Snat(_) | Verdict::Masquerade => {
                self.nodes[node].track(p);
                true
            }
            Verdict::Drop => {
                self.drop_packet(node, p, &format!("iptables {chain} DROP"));
                false
            }
            Verdict::Reject(with) => {
                self.drop_packet(node, p, &format!("iptables {chain} REJECT"));
                self.reject(node, p, with, in_if);
                false
            }
        }
    }

    fn reject(&mut self, node: usize, p: &Packet, with: RejectWith, in_if: Option<usize>) {
        if with == RejectWith::TcpReset
            && let Payload::Tcp {
                src_port,
                dst_port,
                seq,
                ..
            } = &p.payload
        {
            let rst = Packet {
                src: p.dst,
                dst: p.src,
                ttl: 64,
                dont_fragment: true,
                payload: Payload::Tcp {
                    src_port: *dst_port,
                    dst_port: *src_port,
                    flags: TcpFlags {
                        rst: true,
                        ack: true,
                        ..TcpFlags::default()
                    },
                    seq: 0,
                    ack: seq.wrapping_add(1),
                    window: 0,
                    options: crate::packet::TcpOptions::default(),
                    data: crate::packet::Data::default(),
                },
            };
            return self.output_local(node, rst, false);
        }
        self.icmp_error(node, p, reject_code(with), None, in_if);
    }

    /// Sends an ICMP error about `p` back to its source.
    fn icmp_error(
        &mut self,
        node: usize,
        p: &Packet,
        code: UnreachableCode,
        mtu: Option<u32>,
        in_if: Option<usize>,
    ) {
        if quoted(p).is_some() {
            return; // never an error about an error (RFC 1122 3.2.2)
        }
        let n = &self.nodes[node];
        let src = in_if.and_then(|i| n.source_for(i, p.src)).or_else(|| {
            n.lookup(p.src, false)
                .and_then(|r| n.source_for(r.iface, p.src))
        });
        let Some(src) = src else { return };
        let err = Packet {
            src,
            dst: p.src,
            ttl: 64,
            dont_fragment: false,
            payload: Payload::Icmp(Icmp::Unreachable {
                code,
                mtu,
                original: Box::new(p.clone()),
            }),
        };
        if self.nodes[node].is_local(err.dst) {
            self.local_in(node, in_if.unwrap_or(0), err);
        } else {
            self.output_local(node, err, false);
        }
    }

    fn local_in(&mut self, node: usize, iface: usize, p: Packet) {
        let is_router = self.nodes[node].router.is_some();
        if !is_router && !self.filter(node, "INPUT", &p, Some(iface), None) {
            return;
        }
        let now = self.now();
        // TCP is the stack's (OpenVPN's TCP connections too: `carrier`).
        let tcp = matches!(p.payload, Payload::Tcp { .. });
        if !tcp && let Some(t) = self.nodes[node].tunnels.iter().position(|t| t.accepts(&p)) {
            return self.deliver_to_model(node, t, p);
        }
        match &p.payload {
            Payload::Icmp(Icmp::Unreachable {
                original,
                code,
                mtu,
            }) => {
                let what = match (code, mtu) {
                    (UnreachableCode::FragmentationNeeded, Some(m)) => {
                        format!("fragmentation needed (mtu {m}) from {}", p.src)
                    }
                    _ => format!("{code:?} unreachable from {}", p.src),
                };
                if let (UnreachableCode::FragmentationNeeded, Some(m)) = (code, mtu) {
                    self.nodes[node].learn_pmtu(original.dst, *m, now);
                    crate::probe::path_mtu_changed(&mut self.bulks, node, original.dst);
                }
                crate::probe::on_error(self, node, original, what);
            }
            Payload::Icmp(Icmp::TimeExceeded { original }) => {
                let what = format!("time exceeded from {}", p.src);
                crate::probe::on_error(self, node, original, what);
            }
            Payload::Icmp(_) => self.deliver_to_stack(node, p),
            Payload::Udp { dst_port, body, .. } => {
                let dst_port = *dst_port;
                let t = self.nodes[node]
                    .tunnels
                    .iter()
                    .position(|t| t.ports.contains(&dst_port));
                if let Some(t) = t {
                    return self.deliver_to_model(node, t, p);
                }
                if self.nodes[node].udp_apps.contains(&dst_port)
                    && let Some(stack) = self.stack(node)
                    && let Err(e) = stack.udp_receiver(dst_port)
                {
                    self.log(format!("udp receiver: {e}"));
                }
                let served = self
                    .nodes
                    .get(node)
                    .and_then(|n| n.stack.as_ref())
                    .is_some_and(|s| s.has_udp_port(dst_port));
                if !served && !matches!(body, Body::Data { .. }) {
                    // The stack answers with a port unreachable; say why here.
                    self.drop_packet(node, &p, "no socket on the port");
                }
                self.deliver_to_stack(node, p);
            }
            Payload::Tcp {
                dst_port, flags, ..
            } => {
                if flags.rst {
                    crate::probe::on_reset(self, node, &p);
                } else if flags.syn && !flags.ack {
                    crate::carrier::listen_for(self, node, &p);
                    let listening = self.nodes[node]
                        .tcp_listen
                        .get(dst_port)
                        .copied()
                        .filter(|bound| bound.is_none_or(|a| a == p.dst));
                    if let Some(bound) = listening
                        && let Some(stack) = self.stack(node)
                    {
                        stack.ensure_listener(*dst_port, bound);
                    }
                }
                self.deliver_to_stack(node, p);
            }
            Payload::Esp(_) => {
                let t = self.nodes[node].tunnels.iter().position(|t| t.esp);
                match t {
                    Some(t) => self.deliver_to_model(node, t, p),
                    None => self.drop_packet(node, &p, "no IPsec SA"),
                }
            }
        }
    }

    /// A packet for tunnel model `t` of the node.
    pub fn deliver_to_model(&mut self, node: usize, t: usize, p: Packet) {
        let now = self.now();
        let actions = match self.nodes[node].tunnels.get_mut(t) {
            Some(tunnel) => tunnel
                .model()
                .map(|m| m.receive(now, &mut self.rng, p))
                .unwrap_or_default(),
            None => Vec::new(),
        };
        self.apply(node, t, actions);
    }

    // ---------------------------------------------------------------
    // The hosts' own stacks (smoltcp)
    // ---------------------------------------------------------------

    /// The node's stack, made at its first use after boot; `None` while
    /// the node is down.
    pub fn stack(&mut self, node: usize) -> Option<&mut Stack> {
        let now = self.now();
        let n = self.nodes.get(node).filter(|n| n.up)?;
        if n.stack.is_none() {
            let seed = self.rng.next_u64();
            self.stacks_made += 1;
            let mut stack = Stack::new(seed, now);
            stack.serial = self.stacks_made;
            self.nodes[node].stack = Some(Box::new(stack));
        }
        self.nodes[node].stack.as_deref_mut()
    }

    /// The source address a connection from `node` to `target` uses: the
    /// target itself when it is local, else the preferred address of the
    /// interface the route uses (`None`: no route).
    pub fn route_source(&self, node: usize, target: IpAddr) -> Option<IpAddr> {
        let n = self.nodes.get(node)?;
        if n.is_local(target) {
            return Some(target);
        }
        let route = n.lookup(target, false)?;
        n.source_for(route.iface, target)
    }

    /// UDP ports the node's tunnel models use, which the stack must not
    /// hand out.
    pub fn reserved_ports(&self, node: usize) -> BTreeSet<u16> {
        self.nodes.get(node).map_or_else(BTreeSet::new, |n| {
            n.tunnels
                .iter()
                .flat_map(|t| t.ports.iter().copied())
                .collect()
        })
    }

    pub fn port_owner(&self, node: usize, proto: u8, port: u16) -> Option<PortOwner> {
        self.nodes
            .get(node)?
            .stack
            .as_ref()?
            .port_owner(proto, port)
    }

    /// Hands a packet the node accepted to its stack.
    fn deliver_to_stack(&mut self, node: usize, mut p: Packet) {
        let now = self.now();
        crate::probe::observe_received(&mut self.bulks, node, &p, now);
        self.clamp_peer_mss(node, &mut p);
        let bytes = crate::wire::emit(&p, false);
        let Some(stack) = self.stack(node) else {
            return;
        };
        stack.receive(bytes);
        self.poll_stack(node);
    }

    /// Runs the node's stack now: what it sends goes out through the
    /// host, what its applications saw goes to the probes; then its next
    /// wake-up is queued.
    pub fn poll_stack(&mut self, node: usize) {
        let now = self.now();
        let Some(stack) = self.nodes.get_mut(node).and_then(|n| n.stack.as_mut()) else {
            return;
        };
        let polled = stack.poll(now);
        let next = stack.poll_at(now).map(|at| at.max(now + Span::micros(1)));
        let queue = match (next, stack.wake) {
            (Some(at), Some(queued)) => at < queued,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if queue {
            stack.wake = next;
        }
        let serial = stack.serial;
        if let (true, Some(at)) = (queue, next) {
            self.q.schedule(at, Ev::Stack { node, serial });
        }
        for bytes in polled.packets {
            match crate::wire::parse(&bytes) {
                Ok(p) => self.stack_output(node, p),
                Err(e) => {
                    let text = format!(
                        "{}: unreadable packet from the stack: {e}",
                        self.nodes[node].name
                    );
                    self.log(text);
                }
            }
        }
        for ev in polled.events {
            crate::probe::on_app_event(self, node, ev);
        }
    }

    /// A stack wake-up (`Ev::Stack`) fires.
    fn stack_timer(&mut self, node: usize, serial: u64) {
        let now = self.now();
        let Some(n) = self.nodes.get_mut(node).filter(|n| n.up) else {
            return;
        };
        let Some(stack) = n
            .stack
            .as_mut()
            .filter(|s| s.serial == serial && s.wake == Some(now))
        else {
            return; // replaced by an earlier wake-up, or the stack is gone
        };
        stack.wake = None;
        self.poll_stack(node);
    }

    /// A packet from the node's stack leaves like any local packet, with
    /// what the kernel adds to TCP: the advertised MSS follows the route's
    /// MTU, and segments are split to a path MTU learnt from ICMP (smoltcp
    /// knows neither).
    fn stack_output(&mut self, node: usize, mut p: Packet) {
        let now = self.now();
        if p.src.is_unspecified()
            && let Some(src) = crate::probe::requested_source(self, node, &p)
        {
            p.src = src;
        }
        let limit = self.path_mtu(node, p.dst);
        let header = p.ip_header_len() + crate::packet::TCP_HEADER;
        if let (Payload::Tcp { flags, options, .. }, Some(mtu)) = (&mut p.payload, limit)
            && flags.syn
        {
            let advertised = mtu.saturating_sub(header).min(u32::from(u16::MAX)) as u16;
            options.mss = options.mss.map(|m| m.min(advertised));
        }
        for piece in split_segment(p, limit) {
            crate::probe::observe_sent(&mut self.bulks, node, &piece, now);
            self.output_local(node, piece, false);
        }
    }

    /// The smallest of the route's interface MTU, its link's MTU and a
    /// learnt path MTU towards `dst`.
    pub fn path_mtu(&self, node: usize, dst: IpAddr) -> Option<u32> {
        let n = self.nodes.get(node)?;
        let route = n.lookup(dst, false)?;
        let iface = n.ifaces.get(route.iface)?;
        let mut mtu = iface.mtu;
        if let IfaceKind::Underlay(seg) = iface.kind
            && let Some(s) = self.segs.get(seg)
        {
            mtu = mtu.min(s.mtu);
        }
        if let Some(learnt) = n.pmtu(dst, self.now()) {
            mtu = mtu.min(learnt);
        }
        Some(mtu)
    }

    /// The MSS a peer announces in its SYN is also capped by this host's
    /// own path MTU towards it (Linux sends min(peer MSS, PMTU − headers)).
    fn clamp_peer_mss(&self, node: usize, p: &mut Packet) {
        let header = p.ip_header_len() + crate::packet::TCP_HEADER;
        let limit = self.path_mtu(node, p.src);
        if let (Payload::Tcp { flags, options, .. }, Some(mtu)) = (&mut p.payload, limit)
            && flags.syn
        {
            let cap = mtu.saturating_sub(header).min(u32::from(u16::MAX)) as u16;
            options.mss = Some(options.mss.map_or(cap, |m| m.min(cap)));
        }
    }

    fn forward(&mut self, node: usize, iface: usize, mut p: Packet) {
        let n = &self.nodes[node];
        let on = if p.dst.is_ipv4() {
            n.forward_v4
        } else {
            n.forward_v6
        };
        if !on && n.router.is_none() {
            let reason = if p.dst.is_ipv4() {
                "not addressed to this host and net.ipv4.ip_forward is off"
            } else {
                "not addressed to this host and IPv6 forwarding is off"
            };
            return self.drop_packet(node, &p, reason);
        }
        if p.ttl <= 1 {
            self.drop_packet(node, &p, "TTL expired");
            if quoted(&p).is_none()
                && let Some(src) = self.nodes[node].source_for(iface, p.src)
            {
                let err = Packet {
                    src,
                    dst: p.src,
                    ttl: 64,
                    dont_fragment: false,
                    payload: Payload::Icmp(Icmp::TimeExceeded {
                        original: Box::new(p),
                    }),
                };
                self.output_local(node, err, false);
            }
            return;
        }
        p.ttl -= 1;
        let Some(route) = self.nodes[node].lookup(p.dst, false).cloned() else {
            self.drop_packet(node, &p, "no route");
            return self.icmp_error(node, &p, UnreachableCode::Net, None, Some(iface));
        };
        if self.nodes[node].router.is_none()
            && !self.filter(node, "FORWARD", &p, Some(iface), Some(route.iface))
        {
            return;
        }
        self.send_on(node, &route, p, Some(iface), false);
    }

    /// A packet the node itself sends (ICMP replies, probes, tunnel
    /// datagrams). `underlay_only`: a tunnel's encapsulated packet, which
    /// must not be routed back into a tunnel.
    pub fn output_local(&mut self, node: usize, mut p: Packet, underlay_only: bool) {
        let Some(n) = self.nodes.get(node) else {
            return;
        };
        if !n.up {
            return;
        }
        let Some(route) = n.lookup(p.dst, underlay_only).cloned() else {
            return self.drop_packet(node, &p, "no route");
        };
        if p.src.is_unspecified() {
            match n.source_for(route.iface, p.dst) {
                Some(src) => p.src = src,
                None => return self.drop_packet(node, &p, "no source address"),
            }
        }
        if n.is_local(p.dst) {
            return self.local_in(node, route.iface, p);
        }
        if !self.filter(node, "OUTPUT", &p, None, Some(route.iface)) {
            return;
        }
        self.send_on(node, &route, p, None, underlay_only);
    }

    fn send_on(
        &mut self,
        node: usize,
        route: &Route,
        mut p: Packet,
        in_if: Option<usize>,
        from_model: bool,
    ) {
        let Some(iface) = self.nodes[node].ifaces.get(route.iface).cloned() else {
            return;
        };
        if !iface.up {
            return self.drop_packet(node, &p, &format!("{} is down", iface.name));
        }
        // An IPsec policy (XFRM) takes matching packets before they leave,
        // whatever device the route names: the kernel looks the policy up
        // on the route's result (`xfrm_lookup_route`), so a route into
        // another tunnel (wg0, tun0) does not bypass it.
        if !from_model
            && let Some(t) = self.nodes[node]
                .tunnels
                .iter()
                .position(|t| t.ipsec_policy(&p))
        {
            return self.tunnel_send(node, t, p);
        }
        let IfaceKind::Underlay(seg) = iface.kind else {
            if p.wire_len() > iface.mtu && p.dont_fragment {
                self.drop_packet(
                    node,
                    &p,
                    &format!("larger than the MTU {} of {}", iface.mtu, iface.name),
                );
                return self.icmp_error(
                    node,
                    &p,
                    UnreachableCode::FragmentationNeeded,
                    Some(iface.mtu),
                    in_if,
                );
            }
            let IfaceKind::Tunnel(t) = iface.kind else {
                return;
            };
            let next_hop = route.via.unwrap_or(p.dst);
            return self.tunnel_send_via(node, t, p, Some(next_hop));
        };
        // MTU before NAT, so that the error goes to the real source.
        let mtu = iface
            .mtu
            .min(self.segs.get(seg).map_or(u32::MAX, |s| s.mtu));
        // Without DF the packet is fragmented on the way: the fragments
        // carry the same bytes, so it simply goes on.
        if p.wire_len() > mtu && p.dont_fragment {
            self.drop_packet(node, &p, &format!("larger than the MTU {mtu} with DF set"));
            return self.icmp_error(
                node,
                &p,
                UnreachableCode::FragmentationNeeded,
                Some(mtu),
                in_if,
            );
        }
        // POSTROUTING
        if !self.postrouting(node, route.iface, &mut p) {
            return;
        }
        let n = &self.nodes[node];
        if n.source_dest_check && !n.is_local(p.src) {
            return self.drop_packet(node, &p, "source/destination check");
        }
        let next_hop = route.via.unwrap_or(p.dst);
        self.transmit(seg, (node, route.iface), next_hop, p);
    }

    fn postrouting(&mut self, node: usize, out: usize, p: &mut Packet) -> bool {
        let Some(t) = tuple(p) else { return true };
        if let Some((addr, port)) = self.nodes[node].nat_out.get(&t).copied() {
            set_src(p, addr, port);
            return true;
        }
        let n = &self.nodes[node];
        let to = if let Some(r) = &n.router {
            if Some(out) != r.uplink {
                return true;
            }
            if let Some((public, _)) = r.one_to_one.iter().find(|(_, private)| **private == p.src) {
                p.src = *public;
                return true;
            }
            if r.public_space.iter().any(|net| net.contains(&p.src))
                || r.one_to_one.contains_key(&p.src)
            {
                return true;
            }
            match r.masquerade {
                Some(m) if m.is_ipv4() == p.src.is_ipv4() => m,
                _ => {
                    self.drop_packet(node, p, "leaves the site without a public address");
                    return false;
                }
            }
        } else {
            let Some(rs) = n.ruleset(p) else { return true };
            // The nat table sees a connection's first packet: the filter
            // chains have already tracked it (as `t`), so only a reply
            // (its reverse tracked) or a de-NATed packet is skipped here.
            if n.conns.contains(&t.reversed()) || n.nat_in.contains_key(&t) {
                return true;
            }
            let name = n.ifaces.get(out).map(|i| i.name.as_str());
            let ctx = Ctx {
                packet: p,
                in_if: None,
                out_if: name,
                state: n.ct_state(p),
            };
            match eval(rs, TableName::Nat, "POSTROUTING", ctx) {
                Verdict::Snat(to) => to,
                Verdict::Masquerade => match n.source_for(out, p.dst) {
                    Some(a) => a,
                    None => return true,
                },
                _ => return true,
            }
        };
        self.snat(node, p, t, to);
        true
    }

    fn snat(&mut self, node: usize, p: &mut Packet, t: crate::host::Tuple, to: IpAddr) {
        let n = &mut self.nodes[node];
        let mut port = t.sport;
        for _ in 0..u16::MAX {
            let reply = crate::host::Tuple {
                proto: t.proto,
                src: t.dst,
                sport: t.dport,
                dst: to,
                dport: port,
            };
            if let std::collections::btree_map::Entry::Vacant(slot) = n.nat_in.entry(reply) {
                slot.insert((t.src, t.sport));
                n.nat_out.insert(t, (to, port));
                set_src(p, to, port);
                return;
            }
            port = if port == u16::MAX { 1024 } else { port + 1 };
        }
    }

    fn transmit(&mut self, seg: usize, from: Port, next_hop: IpAddr, p: Packet) {
        let Some(s) = self.segs.get(seg) else { return };
        if !s.up {
            return self.drop_packet(from.0, &p, &format!("{} is down", s.name));
        }
        let Some(to) = net::owner(s, next_hop) else {
            let reason = format!("no host has {next_hop} on {}", s.name);
            return self.drop_packet(from.0, &p, &reason);
        };
        if self.nodes[from.0].host.is_some()
            && let Some(dst) = self.addr_host.get(&p.dst)
            && self.partitioned(from.0, *dst)
        {
            return self.drop_packet(from.0, &p, "partition");
        }
        let now = self.now();
        let loss = s.loss_at(now);
        if self.rng.chance(loss) {
            let reason = format!("lost on {}", self.segs[seg].name);
            return self.drop_packet(from.0, &p, &reason);
        }
        let Some(at) = self.segs[seg].schedule(from, now, p.wire_len(), &mut self.rng) else {
            let reason = format!("queue full on {}", self.segs[seg].name);
            return self.drop_packet(from.0, &p, &reason);
        };
        if let Some(captures) = &mut self.captures {
            captures
                .entry(self.segs[seg].name.clone())
                .or_default()
                .push((now, p.clone()));
        }
        let generation = self.segs[seg].generation;
        self.q.schedule(
            at,
            Ev::Arrive {
                node: to.0,
                iface: to.1,
                packet: Box::new(p),
                generation,
            },
        );
    }

    /// Rebuilds the address → attachment index of a segment.
    pub fn index_segment(&mut self, seg: usize) {
        let Some(s) = self.segs.get(seg) else { return };
        let mut owners = BTreeMap::new();
        for &(n, i) in &s.attachments {
            if let Some(iface) = self.nodes.get(n).and_then(|n| n.ifaces.get(i)) {
                for a in &iface.addrs {
                    owners.entry(a.addr()).or_insert((n, i));
                }
            }
        }
        if let Some(s) = self.segs.get_mut(seg) {
            s.owners = owners;
        }
    }

    /// Whether a partition stops traffic from node `a` to node `b`.
    pub fn partitioned(&self, a: usize, b: usize) -> bool {
        self.partitions.iter().any(|part| {
            let group = |x: usize| part.groups.iter().position(|g| g.contains(&x));
            match (group(a), group(b)) {
                (Some(ga), Some(gb)) if ga != gb => !part.one_way || ga == 0,
                _ => false,
            }
        })
    }

    // ---------------------------------------------------------------
    // Probes
    // ---------------------------------------------------------------

    pub fn add_probe(&mut self, probe: Probe, start: Instant) -> usize {
        let index = self.probes.len();
        self.probes.push(probe);
        self.q.schedule(start, Ev::Probe { probe: index });
        index
    }

    // ---------------------------------------------------------------
    // Administrative actions (the timeline)
    // ---------------------------------------------------------------

    pub fn crash(&mut self, node: usize) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        n.up = false;
        n.epoch += 1;
        n.conns.clear();
        n.nat_in.clear();
        n.nat_out.clear();
        n.tunnels.clear();
        n.stack = None;
        n.pmtu.clear();
        let name = n.name.clone();
        self.log(format!("{name}: crashed (all state lost)"));
        self.close_sessions(node, "host crashed");
    }

    /// Boots a node again: underlay as cabled, then its files re-read.
    pub fn restart(&mut self, node: usize) -> Result<(), crate::SimError> {
        if let Some((ifaces, routes)) = self.base.get(&node).cloned()
            && let Some(n) = self.nodes.get_mut(node)
        {
            n.ifaces = ifaces;
            n.routes = routes;
            n.up = true;
            n.epoch += 1;
        }
        if let Some(files) = self.files.get(&node).cloned() {
            crate::load::apply_files(self, node, &files)?;
        }
        let name = self
            .nodes
            .get(node)
            .map(|n| n.name.clone())
            .unwrap_or_default();
        self.log(format!("{name}: booted, files read"));
        self.start_models(node);
        Ok(())
    }

    /// Stops (or starts) the VPN daemons of a node.
    pub fn stop_daemons(&mut self, node: usize) {
        self.close_sessions(node, "daemons stopped");
        if let Some(n) = self.nodes.get_mut(node) {
            n.tunnels.clear();
            n.epoch += 1;
            // The daemons' TCP connections close with them.
            if let Some(stack) = n.stack.as_mut() {
                stack.stream_close(None, None);
            }
        }
        self.poll_stack(node);
    }

    pub fn set_iface(&mut self, node: usize, iface: &str, up: bool) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        if let Some(i) = n.ifaces.iter_mut().find(|i| i.name == iface) {
            i.up = up;
        }
        if let Some((ifaces, _)) = self.base.get_mut(&node)
            && let Some(i) = ifaces.iter_mut().find(|i| i.name == iface)
        {
            i.up = up;
        }
        // A device set down loses its carrier (a bond slave's link goes down).
        self.slave_carrier(node, iface, up);
    }

    /// `host` gets `address` on `iface` in place of its old one (roaming).
    pub fn change_address(&mut self, node: usize, iface: &str, address: IpAddr) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let Some(i) = n.ifaces.iter_mut().find(|i| i.name == iface) else {
            return;
        };
        let old = i
            .addrs
            .iter()
            .position(|a| a.addr().is_ipv4() == address.is_ipv4());
        let prefix = old
            .and_then(|o| i.addrs.get(o))
            .map_or(if address.is_ipv4() { 32 } else { 128 }, |a| a.prefix_len());
        let net =
            ipnet::IpNet::new(address, prefix).unwrap_or_else(|_| ipnet::IpNet::from(address));
        let previous = match old {
            Some(o) => std::mem::replace(&mut i.addrs[o], net).addr(),
            None => {
                i.addrs.push(net);
                address
            }
        };
        for r in n.routes.iter_mut() {
            if r.dest
                == ipnet::IpNet::new(previous, prefix)
                    .map(|n| n.trunc())
                    .unwrap_or(r.dest)
            {
                r.dest = net.trunc();
            }
        }
        let new_ifaces = n.ifaces.clone();
        let new_routes = n.routes.clone();
        if let Some(b) = self.base.get_mut(&node) {
            b.0.iter_mut()
                .zip(new_ifaces.iter())
                .filter(|(_, n)| matches!(n.kind, IfaceKind::Underlay(_)))
                .for_each(|(b, n)| *b = n.clone());
            b.1 = new_routes
                .into_iter()
                .filter(|r| {
                    matches!(
                        new_ifaces.get(r.iface).map(|i| i.kind),
                        Some(IfaceKind::Underlay(_))
                    )
                })
                .collect();
        }
        self.addr_host.remove(&previous);
        self.addr_host.insert(address, node);
        let segs: Vec<usize> = self.nodes[node]
            .ifaces
            .iter()
            .filter_map(|i| match i.kind {
                IfaceKind::Underlay(seg) => Some(seg),
                IfaceKind::Tunnel(_) => None,
            })
            .collect();
        for seg in segs {
            self.index_segment(seg);
        }
    }
}

/// Splits a TCP segment whose payload does not fit `mtu` into segments
/// that do (what Linux's TCP does once it knows the path MTU); other
/// packets pass whole.
pub fn split_segment(p: Packet, mtu: Option<u32>) -> Vec<Packet> {
    let Some(mtu) = mtu else {
        return vec![p];
    };
    let Payload::Tcp {
        src_port,
        dst_port,
        flags,
        seq,
        ack,
        window,
        options,
        data,
    } = &p.payload
    else {
        return vec![p];
    };
    let room =
        mtu.saturating_sub(p.ip_header_len() + crate::packet::TCP_HEADER + options.wire_len());
    if data.len() <= room || room == 0 || flags.syn {
        return vec![p];
    }
    let bytes = data.as_slice();
    let chunks: Vec<&[u8]> = bytes.chunks(room as usize).collect();
    let last = chunks.len() - 1;
    chunks
        .iter()
        .enumerate()
        .map(|(i, chunk)| {
            let offset = (i * room as usize) as u32;
            Packet {
                payload: Payload::Tcp {
                    src_port: *src_port,
                    dst_port: *dst_port,
                    flags: TcpFlags {
                        fin: flags.fin && i == last,
                        psh: flags.psh && i == last,
                        ..*flags
                    },
                    seq: seq.wrapping_add(offset),
                    ack: *ack,
                    window: *window,
                    options: *options,
                    data: crate::packet::Data::new(chunk),
                },
                ..p.clone()
            }
        })
        .collect()
}

/// A short description of a packet for the trace.
pub fn describe(p: &Packet) -> String {
    match &p.payload {
        Payload::Icmp(Icmp::EchoRequest { seq, .. }) => format!("echo request seq {seq}"),
        Payload::Icmp(Icmp::EchoReply { seq, .. }) => format!("echo reply seq {seq}"),
        Payload::Icmp(Icmp::Unreachable { code, .. }) => format!("icmp {code:?} unreachable"),
        Payload::Icmp(Icmp::TimeExceeded { .. }) => "icmp time exceeded".into(),
        Payload::Udp {
            src_port, dst_port, ..
        } => format!("udp {src_port}->{dst_port}, {} bytes", p.wire_len()),
        Payload::Tcp {
            src_port,
            dst_port,
            flags,
            ..
        } => format!(
            "tcp {src_port}->{dst_port}{}{}{}",
            if flags.syn { " SYN" } else { "" },
            if flags.ack { " ACK" } else { "" },
            if flags.rst { " RST" } else { "" }
        ),
        Payload::Esp(_) => format!("esp, {} bytes", p.wire_len()),
    }
}

/// Spans in seconds as the trace prints them.
pub fn secs(s: Span) -> String {
    format!("{:.3}s", s.as_secs_f64())
}

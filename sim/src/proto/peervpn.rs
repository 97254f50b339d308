//! PeerVPN, sans-IO: one [`Member`] per `etc/peervpn/<mesh>.conf`, built
//! from the file parsed back with [`vpnsim_render::peervpn::PeerVpnConf`]
//! ([`Member::from_conf`]).
//!
//! Sources: PeerVPN 0.044's own code (mirror `netzverweigerer/peervpn`):
//! `libp2psec/peermgt.c` (peer table, keepalive, timeouts, peer exchange,
//! new connections), `libp2psec/packet.c` (packet header sizes),
//! `libp2psec/auth.c` (auth message sizes), `mainloop.c` (initpeers
//! re-dial), `platform/ifconfig.c` (the TAP device: no MTU set, so 1500).
//!
//! # What is modelled
//! - Each member binds udp `port` (all addresses) and, at start, contacts
//!   every address its `initpeers` names resolve to (`connectInitpeers`).
//!   While it has no peer at all it contacts them again every
//!   [`INITPEERS_INTERVAL`] (mainloop: `(tnow - lastinit) > 30` and no
//!   peer in the map).
//! - Authentication: PeerVPN's auth exchange (S0..S4, `auth.c`) is
//!   collapsed into four messages ([`AuthStage`]): hello, hello reply,
//!   identity, identity reply. Instead of cryptography each carries the
//!   sender's network id and PSK id ([`Secret`], one-way images of
//!   `networkname` and `psk`, never the text): auth packets are encrypted
//!   with keys derived from the PSK and carry the network id, so a member
//!   with another PSK or network name cannot complete it; the model drops
//!   such a message with the reason. A member's node id is fresh at each
//!   start (PeerVPN generates a new node key per run); a node id already
//!   connected is refused (`authmgtRejectAuthedPeer` on a duplicate). Both
//!   sides derive the same session tag from the two node ids (standing in
//!   for the negotiated session keys), so crossing handshakes agree.
//! - Keepalive and peer exchange: a PEERINFO message goes to each peer when
//!   nothing was sent to it for more than [`KEEPALIVE_INTERVAL`] (10 s) or no
//!   PEERINFO for more than [`PEERINFO_INTERVAL`] (60 s); it lists up to
//!   [`PEERINFO_MAX`] (PeerVPN: 5 or 7 at random) connected peers with their
//!   node ids and addresses. Received entries go to the node database.
//! - Dead peers: a peer heard from nothing for [`RECV_TIMEOUT`] (100 s,
//!   `peermgt_RECV_TIMEOUT`) is deleted.
//! - New connections: once per second (PeerVPN's clock is in seconds) the
//!   member dials one node database entry it is not connected to and did
//!   not try within [`NEWCONNECT_MIN_LASTCONNTRY`] (60 s). So a mesh whose
//!   members only know one initpeer becomes full, and a member lost by a
//!   partition is dialled again once the network heals.
//! - The mesh interface: PeerVPN is a virtual Ethernet switch over a TAP
//!   device. Its frames are switched by MAC, and a host addresses a frame
//!   to the MAC its ARP finds for the route's next hop; the model keeps
//!   that outcome and leaves out the ARP and MAC-learning frames: each
//!   member announces its `ifconfig4`/`ifconfig6` addresses in its identity
//!   message (the latest session claiming an address owns it), a packet
//!   the host routes into the device goes encapsulated to the member that
//!   owns the route's next hop ([`Model::send_via`]: the destination on
//!   the mesh's network, or a member that routes on to it), and the
//!   receiving member hands it to its host, which takes it or forwards it
//!   like any frame for its MAC. Roaming: every authenticated message sets
//!   the peer's address to the datagram's source (as `peermgt.c` does).
//! - Wire sizes ([`Message::wire_len`], the UDP payload): every packet has
//!   PeerVPN's header, 4 B peer id + 32 B HMAC + 16 B IV, then the encrypted
//!   part: 12 B (sequence 8, length 2, type 1, options 1) plus the payload,
//!   padded to the 16-byte AES block (so about 52-68 B of overhead).
//!   Payloads: user data is an Ethernet frame (14 B header + IP packet);
//!   PEERINFO is 4 B + 60 B per peer (peer id 4, node id 32, address 24);
//!   auth messages use `auth.c`'s maximum sizes with 2048-bit DH and RSA
//!   keys ([`AUTH_PAYLOAD`]). Frames larger than [`MSGSIZE_MIN`] (1024 B)
//!   are sent by PeerVPN as several fragments; the model sends one datagram
//!   without DF carrying the fragments' total bytes.
//!
//! # Not modelled
//! Relaying (`enablerelay`), the ARP/NDP and MAC-learning frames themselves
//! (their outcome is modelled, see above), the virtual server, broadcast
//! and multicast frames, replay windows, authentication
//! retransmissions (an attempt just expires after [`AUTH_TIMEOUT`], the
//! model's own figure), `local`/`sockmark`, and encryption itself.
//!
//! # Contract with the engine
//! - `Action::Transmit` packets have an unspecified source address; their
//!   source port is the member's port, on which replies arrive.
//! - `Action::Deliver` hands over inner packets addressed to the member.
//! - Timer token [`TICK_TOKEN`] is the once-per-second main loop.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;
use vpnsim_render::peervpn::{Host, PeerVpnConf};

use crate::packet::{Body, Packet, Payload};
use crate::proto::{Action, Model, Session};
use crate::rng::Rng;
use crate::time::{Instant, Span};

/// `peermgt_KEEPALIVE_INTERVAL`.
pub const KEEPALIVE_INTERVAL: Span = Span::secs(10);
/// `peermgt_PEERINFO_INTERVAL`.
pub const PEERINFO_INTERVAL: Span = Span::secs(60);
/// `peermgt_RECV_TIMEOUT`: a peer silent this long is deleted.
pub const RECV_TIMEOUT: Span = Span::secs(100);
/// `peermgt_NEWCONNECT_MIN_LASTCONNTRY`: at most one try per known node
/// in this span.
pub const NEWCONNECT_MIN_LASTCONNTRY: Span = Span::secs(60);
/// mainloop.c: initpeers are contacted again after 30 s without any peer.
pub const INITPEERS_INTERVAL: Span = Span::secs(30);
/// The model's own bound on an unanswered authentication attempt.
pub const AUTH_TIMEOUT: Span = Span::secs(10);
/// PeerVPN's main loop works on a one-second clock (`utilGetClock`).
pub const TICK: Span = Span::secs(1);
/// The timer token of the main loop.
pub const TICK_TOKEN: u64 = 1;
/// Most peers listed in one PEERINFO message (PeerVPN: 5 or 7 at random).
pub const PEERINFO_MAX: usize = 7;
/// `peermgt_MSGSIZE_MIN`: user data above this is fragmented.
pub const MSGSIZE_MIN: u32 = 1024;
/// packet.c: peer id 4 + HMAC 32 + IV 16.
pub const PACKET_HEADER: u32 = 4 + 32 + 16;
/// packet.c: the encrypted header: sequence 8, length 2, type 1, options 1.
pub const CRYPTED_HEADER: u32 = 12;
/// AES block size (the encrypted part is padded to it).
pub const BLOCK: u32 = 16;
/// An Ethernet header (the TAP device carries frames).
pub const ETHERNET_HEADER: u32 = 14;
/// PEERINFO entry: peer id 4 + node id 32 + peer address 24.
pub const PEERINFO_ENTRY: u32 = 4 + 32 + 24;
/// Auth payloads by stage (auth.c maximum sizes, netid 32 B, 2048-bit DH
/// and RSA): S0 4+2+8+4+4+32; S1 4+2+8+4+32+2+256; S2 with two 2048-bit
/// keys' worth (public key 294 B, signature 256 B) and the HMAC/IV fields;
/// S3 4+2+32+8+4+8+16+32+16.
pub const AUTH_PAYLOAD: [u32; 4] = [54, 308, 656, 122];
/// The TAP device's MTU (PeerVPN sets none: Linux's 1500).
pub const TAP_MTU: u32 = 1500;

/// A member's node id (PeerVPN: the hash of a node key made at start).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub u64);

impl NodeId {
    /// How sessions name a peer: its node id's first 32 bits (a member
    /// gets a new id at each start, so a restarted peer is a new session).
    fn label(self) -> String {
        format!("node {:08x}", self.0 >> 32)
    }
}

/// A one-way image of a secret or name: equal texts give equal images, the
/// text cannot be read back. `Debug` shows the image only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Secret([u8; 16]);

impl Secret {
    /// The text folded to 32 bytes (four FNV-1a lanes), then X25519 with
    /// the base point (the crate's one one-way function), first 16 bytes.
    pub fn of(domain: &str, text: &str) -> Secret {
        let mut bytes = [0u8; 32];
        for (lane, chunk) in bytes.chunks_mut(8).enumerate() {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ (lane as u64).wrapping_mul(0x9e37_79b9);
            for b in domain.bytes().chain([0]).chain(text.bytes()) {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            chunk.copy_from_slice(&h.to_le_bytes());
        }
        let image = x25519_dalek::x25519(bytes, x25519_dalek::X25519_BASEPOINT_BYTES);
        let mut out = [0u8; 16];
        out.copy_from_slice(&image[..16]);
        Secret(out)
    }
}

/// The four modelled steps of PeerVPN's authentication.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum AuthStage {
    Hello,
    HelloReply,
    Identity,
    IdentityReply,
}

/// What a PeerVPN datagram carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// Authentication (PeerVPN's peer id 0 packets).
    Auth {
        stage: AuthStage,
        network: Secret,
        psk: Secret,
        from: NodeId,
        /// The sender's mesh addresses (identity stages).
        addrs: Vec<IpAddr>,
    },
    /// Keepalive and peer exchange.
    PeerInfo {
        from: NodeId,
        session: u64,
        peers: Vec<(NodeId, SocketAddr)>,
    },
    /// An inner packet (a frame on the TAP device).
    Data {
        from: NodeId,
        session: u64,
        packet: Box<Packet>,
    },
}

/// One encoded PeerVPN packet of `payload` bytes.
fn encoded(payload: u32) -> u32 {
    PACKET_HEADER + (CRYPTED_HEADER + payload).div_ceil(BLOCK) * BLOCK
}

impl Message {
    /// Bytes of the UDP payload.
    pub fn wire_len(&self) -> u32 {
        match self {
            Message::Auth { stage, .. } => encoded(match stage {
                AuthStage::Hello => AUTH_PAYLOAD[0],
                AuthStage::HelloReply => AUTH_PAYLOAD[1],
                AuthStage::Identity => AUTH_PAYLOAD[2],
                AuthStage::IdentityReply => AUTH_PAYLOAD[3],
            }),
            Message::PeerInfo { peers, .. } => encoded(4 + PEERINFO_ENTRY * peers.len() as u32),
            Message::Data { packet, .. } => {
                let frame = ETHERNET_HEADER + packet.wire_len();
                let full = frame / MSGSIZE_MIN;
                let rest = frame % MSGSIZE_MIN;
                full * encoded(MSGSIZE_MIN) + if rest > 0 { encoded(rest) } else { 0 }
            }
        }
    }
}

/// Both ends' session tag from the two node ids (order-independent).
fn session_of(a: NodeId, b: NodeId) -> u64 {
    let (lo, hi) = if a <= b { (a.0, b.0) } else { (b.0, a.0) };
    let mut z = lo ^ hi.rotate_left(29) ^ 0x9e37_79b9_7f4a_7c15;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31) ^ lo.wrapping_add(hi)
}

#[derive(Debug, Clone)]
struct Peer {
    addr: SocketAddr,
    addrs: Vec<IpAddr>,
    last_recv: Instant,
    last_send: Instant,
    last_peerinfo: Instant,
}

#[derive(Debug, Clone)]
struct Known {
    addr: SocketAddr,
    last_try: Option<Instant>,
}

/// One PeerVPN process.
#[derive(Debug, Clone)]
pub struct Member {
    iface: String,
    network: Secret,
    psk: Secret,
    port: u16,
    addrs: Vec<IpNet>,
    initpeers: Vec<SocketAddr>,
    running: bool,
    node: NodeId,
    peers: BTreeMap<NodeId, Peer>,
    pending: BTreeMap<SocketAddr, Instant>,
    nodedb: BTreeMap<NodeId, Known>,
    owners: BTreeMap<IpAddr, NodeId>,
    last_init: Option<Instant>,
}

impl Member {
    /// The member of `conf`; `resolve` gives every address of a name.
    /// Without `interface` the kernel names the TAP device `tap0`; without
    /// `port` PeerVPN picks a random one (here a fixed ephemeral port).
    pub fn from_conf(
        conf: &PeerVpnConf,
        resolve: impl Fn(&str) -> Vec<IpAddr>,
    ) -> Result<Member, String> {
        let network = Secret::of("networkname", conf.network_name());
        let psk = Secret::of("psk", conf.psk.as_ref().map_or("default", |p| p.expose()));
        let port = conf
            .port
            .filter(|p| *p != 0)
            .unwrap_or(49152 + u16::from(network.0[0]) * 64);
        let mut addrs = Vec::new();
        addrs.extend(conf.ifconfig4.map(IpNet::V4));
        addrs.extend(conf.ifconfig6.map(IpNet::V6));
        let mut initpeers = Vec::new();
        for p in conf.initpeers.as_slice() {
            let ips = match &p.host {
                Host::Ip(ip) => vec![*ip],
                Host::Name(name) => resolve(&name.to_string()),
            };
            if ips.is_empty() {
                return Err(format!("initpeers: cannot resolve {}", p.host));
            }
            initpeers.extend(ips.into_iter().map(|ip| SocketAddr::new(ip, p.port)));
        }
        Ok(Member {
            iface: conf
                .interface
                .as_ref()
                .map_or_else(|| "tap0".to_string(), |w| w.as_str().to_string()),
            network,
            psk,
            port,
            addrs,
            initpeers,
            running: false,
            node: NodeId(0),
            peers: BTreeMap::new(),
            pending: BTreeMap::new(),
            nodedb: BTreeMap::new(),
            owners: BTreeMap::new(),
            last_init: None,
        })
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }
    pub fn port(&self) -> u16 {
        self.port
    }
    /// The TAP device's addresses (`ifconfig4`, `ifconfig6`).
    pub fn addresses(&self) -> &[IpNet] {
        &self.addrs
    }
    /// Node ids of the connected peers.
    pub fn peers(&self) -> Vec<NodeId> {
        self.peers.keys().copied().collect()
    }
    pub fn node(&self) -> NodeId {
        self.node
    }

    fn datagram(&self, to: SocketAddr, msg: Message, dont_fragment: bool) -> Action {
        let src = match to {
            SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        Action::Transmit(Packet {
            src,
            dst: to.ip(),
            ttl: 64,
            dont_fragment,
            payload: Payload::Udp {
                src_port: self.port,
                dst_port: to.port(),
                body: Body::PeerVpn(msg),
            },
        })
    }

    fn auth(&self, stage: AuthStage, to: SocketAddr) -> Action {
        let addrs = match stage {
            AuthStage::Identity | AuthStage::IdentityReply => {
                self.addrs.iter().map(|a| a.addr()).collect()
            }
            _ => Vec::new(),
        };
        let msg = Message::Auth {
            stage,
            network: self.network,
            psk: self.psk,
            from: self.node,
            addrs,
        };
        self.datagram(to, msg, true)
    }

    fn dial(&mut self, now: Instant, to: SocketAddr, out: &mut Vec<Action>) {
        self.pending.insert(to, now);
        out.push(self.auth(AuthStage::Hello, to));
    }

    fn connect(
        &mut self,
        now: Instant,
        node: NodeId,
        addr: SocketAddr,
        addrs: Vec<IpAddr>,
        out: &mut Vec<Action>,
    ) {
        for a in &addrs {
            self.owners.insert(*a, node);
        }
        self.nodedb.insert(
            node,
            Known {
                addr,
                last_try: Some(now),
            },
        );
        self.peers.insert(
            node,
            Peer {
                addr,
                addrs,
                last_recv: now,
                last_send: now,
                last_peerinfo: now,
            },
        );
        out.push(Action::Log(format!(
            "PeerVPN {}: peer {:016x} at {addr} connected ({} peers)",
            self.iface,
            node.0,
            self.peers.len()
        )));
        out.push(Session::up(
            node.label(),
            Some(addr.ip()),
            format!("authenticated at {addr}"),
        ));
    }

    fn remove(&mut self, node: NodeId) {
        if let Some(p) = self.peers.remove(&node) {
            for a in p.addrs {
                if self.owners.get(&a) == Some(&node) {
                    self.owners.remove(&a);
                }
            }
        }
    }

    fn tick(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.pending.retain(|_, at| now.since(*at) < AUTH_TIMEOUT);
        let dead: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| now.since(p.last_recv) >= RECV_TIMEOUT)
            .map(|(n, _)| *n)
            .collect();
        for n in dead {
            let addr = self.peers.get(&n).map(|p| p.addr.ip());
            self.remove(n);
            out.push(Session::down(n.label(), addr, "peer timeout (100 s)"));
            out.push(Action::Log(format!(
                "PeerVPN {}: peer {:016x} timed out ({} peers)",
                self.iface,
                n.0,
                self.peers.len()
            )));
        }
        let list: Vec<(NodeId, SocketAddr)> =
            self.peers.iter().map(|(n, p)| (*n, p.addr)).collect();
        let due: Vec<NodeId> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                now.since(p.last_send) > KEEPALIVE_INTERVAL
                    || now.since(p.last_peerinfo) > PEERINFO_INTERVAL
            })
            .map(|(n, _)| *n)
            .collect();
        for n in due {
            let Some(p) = self.peers.get_mut(&n) else {
                continue;
            };
            p.last_send = now;
            p.last_peerinfo = now;
            let to = p.addr;
            let peers = list
                .iter()
                .filter(|(m, _)| *m != n)
                .take(PEERINFO_MAX)
                .copied()
                .collect();
            let msg = Message::PeerInfo {
                from: self.node,
                session: session_of(self.node, n),
                peers,
            };
            out.push(self.datagram(to, msg, true));
        }
        if self.peers.is_empty()
            && self
                .last_init
                .is_none_or(|t| now.since(t) > INITPEERS_INTERVAL)
        {
            self.last_init = Some(now);
            for to in self.initpeers.clone() {
                self.dial(now, to, out);
            }
        }
        let next = self
            .nodedb
            .iter()
            .find(|(n, k)| {
                **n != self.node
                    && !self.peers.contains_key(n)
                    && k.last_try
                        .is_none_or(|t| now.since(t) > NEWCONNECT_MIN_LASTCONNTRY)
            })
            .map(|(n, k)| (*n, k.addr));
        if let Some((n, addr)) = next {
            if let Some(k) = self.nodedb.get_mut(&n) {
                k.last_try = Some(now);
            }
            self.dial(now, addr, out);
        }
        out.push(Action::Timer {
            at: now + TICK,
            token: TICK_TOKEN,
        });
    }

    fn drop_with(packet: Packet, reason: impl Into<String>) -> Action {
        Action::Drop {
            packet: Box::new(packet),
            reason: reason.into(),
        }
    }
}

impl Model for Member {
    fn send(&mut self, now: Instant, rng: &mut Rng, packet: Packet) -> Vec<Action> {
        let dst = packet.dst;
        self.send_via(now, rng, packet, dst)
    }

    /// The frame goes to the member that owns `next_hop` (the one whose
    /// MAC the sender's ARP found): the destination itself, or a member
    /// that routes on to it.
    fn send_via(
        &mut self,
        now: Instant,
        _rng: &mut Rng,
        packet: Packet,
        next_hop: IpAddr,
    ) -> Vec<Action> {
        if !self.running {
            return vec![Self::drop_with(packet, "PeerVPN not running")];
        }
        let owner = self.owners.get(&next_hop).copied();
        let Some((node, to)) = owner.and_then(|n| self.peers.get(&n).map(|p| (n, p.addr))) else {
            let reason = if self.addrs.iter().any(|a| a.contains(&next_hop)) {
                format!(
                    "PeerVPN {}: no connected mesh member has {next_hop} (ARP gets no answer)",
                    self.iface
                )
            } else {
                format!(
                    "PeerVPN {}: next hop {next_hop} is not on the mesh's network",
                    self.iface
                )
            };
            return vec![Self::drop_with(packet, reason)];
        };
        if let Some(p) = self.peers.get_mut(&node) {
            p.last_send = now;
        }
        let msg = Message::Data {
            from: self.node,
            session: session_of(self.node, node),
            packet: Box::new(packet),
        };
        vec![self.datagram(to, msg, false)]
    }

    fn receive(&mut self, now: Instant, _rng: &mut Rng, packet: Packet) -> Vec<Action> {
        let Payload::Udp {
            src_port,
            body: Body::PeerVpn(msg),
            ..
        } = &packet.payload
        else {
            return vec![Self::drop_with(packet, "PeerVPN: not a PeerVPN datagram")];
        };
        if !self.running {
            return vec![Self::drop_with(packet, "PeerVPN not running")];
        }
        let source = SocketAddr::new(packet.src, *src_port);
        let mut out = Vec::new();
        match msg.clone() {
            Message::Auth {
                stage,
                network,
                psk,
                from,
                addrs,
            } => {
                if network != self.network {
                    return vec![Self::drop_with(
                        packet,
                        format!(
                            "PeerVPN {}: auth from {source}: network name differs",
                            self.iface
                        ),
                    )];
                }
                if psk != self.psk {
                    return vec![Self::drop_with(
                        packet,
                        format!("PeerVPN {}: auth from {source}: PSK differs", self.iface),
                    )];
                }
                if from == self.node {
                    return vec![Self::drop_with(packet, "PeerVPN: own node id (loopback)")];
                }
                match stage {
                    AuthStage::Hello => out.push(self.auth(AuthStage::HelloReply, source)),
                    AuthStage::HelloReply => {
                        if self.pending.remove(&source).is_none() {
                            return vec![Self::drop_with(packet, "PeerVPN: no auth in progress")];
                        }
                        if !self.peers.contains_key(&from) {
                            self.pending.insert(source, now);
                            out.push(self.auth(AuthStage::Identity, source));
                        }
                    }
                    AuthStage::Identity => {
                        if self.peers.contains_key(&from) {
                            return vec![Self::drop_with(
                                packet,
                                format!(
                                    "PeerVPN {}: node {:016x} already connected",
                                    self.iface, from.0
                                ),
                            )];
                        }
                        self.connect(now, from, source, addrs, &mut out);
                        out.push(self.auth(AuthStage::IdentityReply, source));
                    }
                    AuthStage::IdentityReply => {
                        if self.pending.remove(&source).is_none() {
                            return vec![Self::drop_with(packet, "PeerVPN: no auth in progress")];
                        }
                        if !self.peers.contains_key(&from) {
                            self.connect(now, from, source, addrs, &mut out);
                        }
                    }
                }
            }
            Message::PeerInfo {
                from,
                session,
                peers,
            } => {
                if !self.heard(now, from, session, source) {
                    return vec![Self::drop_with(packet, "PeerVPN: unknown session")];
                }
                for (n, addr) in peers {
                    if n != self.node {
                        self.nodedb
                            .entry(n)
                            .and_modify(|k| k.addr = addr)
                            .or_insert(Known {
                                addr,
                                last_try: None,
                            });
                    }
                }
            }
            Message::Data {
                from,
                session,
                packet: inner,
            } => {
                if !self.heard(now, from, session, source) {
                    return vec![Self::drop_with(packet, "PeerVPN: unknown session")];
                }
                // The sender addressed the frame to this member's MAC: the
                // host takes it (and forwards it, if it routes).
                out.push(Action::Deliver(*inner));
            }
        }
        out
    }

    fn on_timer(&mut self, now: Instant, _rng: &mut Rng, token: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if self.running && token == TICK_TOKEN {
            self.tick(now, &mut out);
        }
        out
    }

    fn start(&mut self, now: Instant, rng: &mut Rng) -> Vec<Action> {
        let ended: Vec<Action> = self
            .peers
            .iter()
            .map(|(n, p)| Session::down(n.label(), Some(p.addr.ip()), "restarted"))
            .collect();
        self.running = true;
        self.node = NodeId(rng.next_u64());
        self.peers.clear();
        self.pending.clear();
        self.nodedb.clear();
        self.owners.clear();
        self.last_init = None;
        let mut out = ended;
        out.push(Action::Log(format!(
            "PeerVPN {}: started, node {:016x}, udp/{}",
            self.iface, self.node.0, self.port
        )));
        self.tick(now, &mut out);
        out
    }
}

impl Member {
    /// An authenticated message from connected `from`: refreshes it.
    fn heard(&mut self, now: Instant, from: NodeId, session: u64, source: SocketAddr) -> bool {
        if session != session_of(self.node, from) {
            return false;
        }
        let Some(p) = self.peers.get_mut(&from) else {
            return false;
        };
        p.last_recv = now;
        p.addr = source;
        if let Some(k) = self.nodedb.get_mut(&from) {
            k.addr = source;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use vpnsim_render::Format;

    use super::*;
    use crate::packet::Icmp;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn member(text: &str) -> Member {
        let conf = PeerVpnConf::parse(text).unwrap_or_else(|e| panic!("{e}"));
        Member::from_conf(&conf, |name| match name {
            "hub.example" => vec![ip("192.0.2.1")],
            _ => Vec::new(),
        })
        .unwrap_or_else(|e| panic!("{e}"))
    }

    fn conf(addr: &str, psk: &str, initpeers: bool) -> String {
        let mut t =
            format!("networkname VPN\npsk {psk}\ninterface tap0\nifconfig4 {addr}/24\nport 7000\n");
        if initpeers {
            t.push_str("initpeers hub.example 7000\n");
        }
        t
    }

    /// A zero-latency network of members, one underlay address each.
    struct Net {
        nodes: Vec<(IpAddr, Member, bool)>,
        rng: Rng,
        now: Instant,
        ticks: BTreeMap<usize, Instant>,
        cut: BTreeSet<(usize, usize)>,
        delivered: Vec<(usize, Packet)>,
        drops: Vec<String>,
        sent: Vec<Message>,
        sessions: Vec<(usize, Session)>,
    }

    impl Net {
        fn new(members: Vec<(&str, Member)>) -> Net {
            Net {
                nodes: members
                    .into_iter()
                    .map(|(a, m)| (ip(a), m, false))
                    .collect(),
                rng: Rng::new(7),
                now: Instant::START,
                ticks: BTreeMap::new(),
                cut: BTreeSet::new(),
                delivered: Vec::new(),
                drops: Vec::new(),
                sent: Vec::new(),
                sessions: Vec::new(),
            }
        }

        fn start(&mut self, i: usize) {
            self.nodes[i].2 = true;
            let now = self.now;
            let actions = self.nodes[i].1.start(now, &mut self.rng);
            self.apply(i, actions);
        }

        fn stop(&mut self, i: usize) {
            self.nodes[i].2 = false;
            self.ticks.remove(&i);
        }

        fn apply(&mut self, i: usize, actions: Vec<Action>) {
            for a in actions {
                match a {
                    Action::Transmit(mut p) => {
                        p.src = self.nodes[i].0;
                        if let Payload::Udp {
                            body: Body::PeerVpn(m),
                            ..
                        } = &p.payload
                        {
                            self.sent.push(m.clone());
                        }
                        let Some(j) = self.nodes.iter().position(|n| n.0 == p.dst) else {
                            continue;
                        };
                        if !self.nodes[j].2 || self.cut.contains(&(i.min(j), i.max(j))) {
                            continue;
                        }
                        let now = self.now;
                        let out = self.nodes[j].1.receive(now, &mut self.rng, p);
                        self.apply(j, out);
                    }
                    Action::Deliver(p) => self.delivered.push((i, p)),
                    Action::Drop { reason, .. } => self.drops.push(reason),
                    Action::Timer { at, .. } => {
                        self.ticks.insert(i, at);
                    }
                    Action::Session(s) => self.sessions.push((i, s)),
                    Action::LinkState { .. } | Action::Log(_) | Action::TransmitOn { .. } => {}
                }
            }
        }

        fn run_until(&mut self, until: Instant) {
            while let Some((i, at)) = self
                .ticks
                .iter()
                .map(|(i, at)| (*i, *at))
                .filter(|(_, at)| *at <= until)
                .min_by_key(|(i, at)| (*at, *i))
            {
                self.ticks.remove(&i);
                self.now = at;
                let out = self.nodes[i].1.on_timer(at, &mut self.rng, TICK_TOKEN);
                self.apply(i, out);
            }
            self.now = until;
        }

        fn peers(&self, i: usize) -> usize {
            self.nodes[i].1.peers().len()
        }

        fn ping(&mut self, i: usize, dst: &str) {
            self.ping_via(i, dst, dst);
        }

        /// A ping routed into member `i`'s TAP device with next hop `hop`.
        fn ping_via(&mut self, i: usize, dst: &str, hop: &str) {
            let p = Packet {
                src: ip("10.42.42.9"),
                dst: ip(dst),
                ttl: 64,
                dont_fragment: true,
                payload: Payload::Icmp(Icmp::EchoRequest {
                    id: 1,
                    seq: 1,
                    len: 56,
                }),
            };
            let now = self.now;
            let out = self.nodes[i].1.send_via(now, &mut self.rng, p, ip(hop));
            self.apply(i, out);
        }
    }

    fn t(s: u64) -> Instant {
        Instant::START + Span::secs(s)
    }

    #[test]
    fn peervpn_numbers() {
        assert_eq!(KEEPALIVE_INTERVAL, Span::secs(10));
        assert_eq!(PEERINFO_INTERVAL, Span::secs(60));
        assert_eq!(RECV_TIMEOUT, Span::secs(100));
        assert_eq!(NEWCONNECT_MIN_LASTCONNTRY, Span::secs(60));
        assert_eq!(INITPEERS_INTERVAL, Span::secs(30));
        assert_eq!(PACKET_HEADER, 52);
        assert_eq!(MSGSIZE_MIN, 1024);
    }

    #[test]
    fn wire_sizes() {
        let m = |stage| Message::Auth {
            stage,
            network: Secret::of("networkname", "VPN"),
            psk: Secret::of("psk", "x"),
            from: NodeId(1),
            addrs: Vec::new(),
        };
        // 52 + (12 + 54 = 66, padded to 80).
        assert_eq!(m(AuthStage::Hello).wire_len(), 132);
        let info = Message::PeerInfo {
            from: NodeId(1),
            session: 0,
            peers: vec![(NodeId(2), SocketAddr::new(ip("192.0.2.2"), 7000))],
        };
        // 52 + (12 + 4 + 60 = 76, padded to 80).
        assert_eq!(info.wire_len(), 132);
        let data = |len| Message::Data {
            from: NodeId(1),
            session: 0,
            packet: Box::new(Packet {
                src: ip("10.42.42.1"),
                dst: ip("10.42.42.2"),
                ttl: 64,
                dont_fragment: true,
                payload: Payload::Icmp(Icmp::EchoRequest { id: 1, seq: 1, len }),
            }),
        };
        // An 84-byte ping: frame 98, 52 + (110 padded to 112) = 164.
        assert_eq!(data(56).wire_len(), 164);
        // A 1500-byte packet: frame 1514 = 1024 + 490 in two fragments.
        assert_eq!(
            data(1472).wire_len(),
            (52 + 1040) + (52 + (12 + 490u32).div_ceil(16) * 16)
        );
    }

    #[test]
    fn secrets_are_images_not_text() {
        let a = Secret::of("psk", "P2vH0aYuhVZZGZOITWvYer3p1qo57D2w");
        assert_eq!(a, Secret::of("psk", "P2vH0aYuhVZZGZOITWvYer3p1qo57D2w"));
        assert_ne!(a, Secret::of("psk", "P2vH0aYuhVZZGZOITWvYer3p1qo57D2x"));
        assert_ne!(Secret::of("psk", "VPN"), Secret::of("networkname", "VPN"));
        assert!(!format!("{a:?}").contains("P2vH"));
    }

    #[test]
    fn handshake_connects_initpeer() {
        let mut net = Net::new(vec![
            ("192.0.2.1", member(&conf("10.42.42.1", "s3cret", false))),
            ("192.0.2.2", member(&conf("10.42.42.2", "s3cret", true))),
        ]);
        net.start(0);
        net.start(1);
        assert_eq!((net.peers(0), net.peers(1)), (1, 1));
        let stages: Vec<AuthStage> = net
            .sent
            .iter()
            .filter_map(|m| match m {
                Message::Auth { stage, .. } => Some(*stage),
                _ => None,
            })
            .collect();
        assert_eq!(
            stages,
            [
                AuthStage::Hello,
                AuthStage::HelloReply,
                AuthStage::Identity,
                AuthStage::IdentityReply
            ]
        );
        assert!(net.drops.is_empty(), "{:?}", net.drops);
    }

    #[test]
    fn psk_or_network_mismatch_is_dropped() {
        let mut net = Net::new(vec![
            ("192.0.2.1", member(&conf("10.42.42.1", "s3cret", false))),
            ("192.0.2.2", member(&conf("10.42.42.2", "other", true))),
        ]);
        net.start(0);
        net.start(1);
        net.run_until(t(40));
        assert_eq!((net.peers(0), net.peers(1)), (0, 0));
        assert!(net.drops.iter().any(|d| d.contains("PSK differs")));
        // Retried after 30 s without peers: two attempts by 40 s.
        assert_eq!(net.drops.len(), 2);

        let other = conf("10.42.42.2", "s3cret", true).replace("networkname VPN", "networkname X");
        let mut net = Net::new(vec![
            ("192.0.2.1", member(&conf("10.42.42.1", "s3cret", false))),
            ("192.0.2.2", member(&other)),
        ]);
        net.start(0);
        net.start(1);
        assert_eq!(net.peers(0), 0);
        assert!(net.drops.iter().any(|d| d.contains("network name differs")));
    }

    #[test]
    fn peer_exchange_makes_the_mesh_full() {
        let mut net = Net::new(vec![
            ("192.0.2.1", member(&conf("10.42.42.1", "s3cret", false))),
            ("192.0.2.2", member(&conf("10.42.42.2", "s3cret", true))),
            ("192.0.2.3", member(&conf("10.42.42.3", "s3cret", true))),
        ]);
        for i in 0..3 {
            net.start(i);
        }
        assert_eq!((net.peers(1), net.peers(2)), (1, 1));
        // First PEERINFO after more than 10 s of silence, dial on the next tick.
        net.run_until(t(13));
        assert_eq!((net.peers(0), net.peers(1), net.peers(2)), (2, 2, 2));
        net.ping(1, "10.42.42.3");
        assert_eq!(net.delivered.len(), 1);
        assert_eq!(net.delivered[0].0, 2);
    }

    #[test]
    fn dead_peer_times_out_after_100_s_and_initpeers_are_redialled() {
        let mut net = Net::new(vec![
            ("192.0.2.1", member(&conf("10.42.42.1", "s3cret", false))),
            ("192.0.2.2", member(&conf("10.42.42.2", "s3cret", true))),
        ]);
        net.start(0);
        net.start(1);
        net.run_until(t(30));
        // Keepalives keep both alive.
        assert_eq!((net.peers(0), net.peers(1)), (1, 1));
        net.cut.insert((0, 1));
        net.run_until(t(100));
        assert_eq!(net.peers(0), 1, "not yet 100 s since the last keepalive");
        net.run_until(t(135));
        assert_eq!((net.peers(0), net.peers(1)), (0, 0));
        net.cut.clear();
        // Member 1 dials its initpeer again within 30 s.
        net.run_until(t(170));
        assert_eq!((net.peers(0), net.peers(1)), (1, 1));
        // Each member reports its session with the other: up, down by the
        // timeout, up again (the same peer: neither restarted).
        for i in 0..2 {
            let of: Vec<(bool, &str, &str)> = net
                .sessions
                .iter()
                .filter(|(n, _)| *n == i)
                .map(|(_, s)| (s.up, s.peer.as_str(), s.why.as_str()))
                .collect();
            let [
                (true, a, _),
                (false, b, "peer timeout (100 s)"),
                (true, c, _),
            ] = of.as_slice()
            else {
                panic!("member {i}: {of:?}");
            };
            assert!(a == b && b == c, "{of:?}");
        }
    }

    #[test]
    fn restarted_member_reconnects_with_a_new_node_id() {
        let mut net = Net::new(vec![
            ("192.0.2.1", member(&conf("10.42.42.1", "s3cret", false))),
            ("192.0.2.2", member(&conf("10.42.42.2", "s3cret", true))),
        ]);
        net.start(0);
        net.start(1);
        let old = net.nodes[1].1.node();
        net.stop(1);
        net.run_until(t(20));
        net.start(1);
        assert_ne!(net.nodes[1].1.node(), old);
        // The hub holds the old session until it times out, but the new
        // one owns the address at once.
        assert_eq!(net.peers(0), 2);
        net.ping(0, "10.42.42.2");
        assert_eq!(net.delivered.len(), 1);
        net.run_until(t(120));
        assert_eq!(net.peers(0), 1);
    }

    #[test]
    fn delivery_only_to_the_owner_and_unknown_addresses_dropped() {
        let mut net = Net::new(vec![
            ("192.0.2.1", member(&conf("10.42.42.1", "s3cret", false))),
            ("192.0.2.2", member(&conf("10.42.42.2", "s3cret", true))),
        ]);
        net.start(0);
        net.start(1);
        net.ping(0, "10.42.42.2");
        assert_eq!(net.delivered.len(), 1);
        assert_eq!(net.delivered[0].1.dst, ip("10.42.42.2"));
        net.ping(0, "10.42.42.7");
        assert!(
            net.drops
                .last()
                .is_some_and(|d| d.contains("no connected mesh member has 10.42.42.7"))
        );
        net.ping(0, "172.16.0.1");
        assert!(
            net.drops
                .last()
                .is_some_and(|d| d.contains("next hop 172.16.0.1 is not on the mesh's network"))
        );
        assert_eq!(net.delivered.len(), 1);
        // Routed through member 1 (next hop its mesh address), a packet for
        // a network behind it is switched to it, like any frame for its MAC.
        net.ping_via(0, "172.16.0.1", "10.42.42.2");
        assert_eq!(net.delivered.len(), 2);
        assert_eq!(net.delivered[1].0, 1);
        assert_eq!(net.delivered[1].1.dst, ip("172.16.0.1"));
    }

    #[test]
    fn defaults_from_a_minimal_file() {
        let m = member("ifconfig4 10.1.0.1/16\nport 7001\n");
        assert_eq!(m.iface(), "tap0");
        assert_eq!(m.port(), 7001);
        assert_eq!(m.addresses().len(), 1);
        let conf = PeerVpnConf::parse("initpeers nowhere.example 7000\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(Member::from_conf(&conf, |_| Vec::new()).is_err());
    }
}

//! Protocol models, sans-IO: each is a state machine that takes the current
//! virtual time and an input (a packet from the network, a packet to send
//! into the tunnel, a timer, an administrative event) and returns the
//! [`Action`]s the engine must carry out. Models hold no clock, no socket
//! and no RNG of their own: time comes in as [`Instant`], randomness (e.g.
//! WireGuard's rekey jitter) from the [`Rng`] the engine passes. That keeps
//! them unit-testable against the protocols' documented numbers and keeps
//! runs deterministic.
//!
//! Models are built from the rendered files parsed back (wg-quick configs,
//! Libreswan conns, OpenVPN configs, ifupdown stanzas), never from the
//! scenario model.
//!
//! - [`wireguard`]: handshake (148/92-byte messages), handshake queue with
//!   CPU time and cookie replies under load, transport
//!   data (32 B overhead + padding to 16), timers (REKEY_AFTER_TIME 120 s,
//!   REJECT_AFTER_TIME 180 s, REKEY_TIMEOUT 5 s + jitter, KEEPALIVE 10 s,
//!   persistent keepalive), cryptokey routing, endpoint roaming.
//! - [`ipsec`]: IKE SA set-up round trips, child SAs with traffic selectors,
//!   ESP tunnel mode, inbound policy, DPD, `auto=start` restart, lifetimes
//!   and rekeying (make-before-break).
//! - [`openvpn`]: TLS set-up round trips, ping / ping-restart, reconnect
//!   across `remote`s, TUN and TAP over UDP or TCP.
//! - [`peervpn`]: PeerVPN mesh members: initpeers, PSK/network-name
//!   authentication, peer exchange, keepalive 10 s, peer timeout 100 s.
//! - [`bond`]: Linux bonding (active-backup, balance-alb, ...), MII
//!   monitoring of the slaves' carrier and ARP monitoring (`arp_interval`,
//!   `arp_ip_target`), slaves joining through the rendered scripts' delays.

use std::net::{IpAddr, SocketAddr};

use crate::packet::Packet;
use crate::rng::Rng;
use crate::time::Instant;

pub mod bond;
pub mod ipsec;
pub mod openvpn;
pub mod peervpn;
pub mod wireguard;

/// What a model asks the engine to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Send this packet from the host into its underlay (routed normally).
    Transmit(Packet),
    /// Hand this decapsulated packet to the host as received on the
    /// model's tunnel interface.
    Deliver(Packet),
    /// Send this frame on the host's device `device` itself, past routing
    /// and the model's own transmit choice: a bond's ARP monitor probes
    /// and ARP replies on one slave (the engine gives it to the model
    /// behind that device).
    TransmitOn { device: String, packet: Packet },
    /// Call the model's `on_timer` with `token` at `at` (a later timer with
    /// the same token replaces an earlier one).
    Timer { at: Instant, token: u64 },
    /// The tunnel interface goes up (`true`) or down, e.g. an OpenVPN
    /// client that completed or lost its connection, a bond slave joining.
    LinkState { up: bool },
    /// A packet the model refused, with why (for the trace and for
    /// expectation evidence): e.g. "no peer allows 10.0.0.9".
    Drop { packet: Box<Packet>, reason: String },
    /// A protocol event worth a line in the trace: "handshake complete with
    /// peer X", "IKE SA established", "Initialization Sequence Completed".
    Log(String),
    /// A session with one peer began or ended. The engine keeps the open
    /// ones per host and interface and reports every change: which node a
    /// client connected to, when a path left or re-joined a bond, when an
    /// IPsec SA was lost and re-established. A model may repeat `up` (a
    /// WireGuard rekey); only a change of the peer's address counts again.
    Session(Session),
}

/// See [`Action::Session`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The peer as the daemon names it: a server's or client's address and
    /// port, a WireGuard peer's short key, an IPsec conn, a bond slave.
    pub peer: String,
    /// The peer's underlay address, when there is one: the report names
    /// the host behind it.
    pub addr: Option<IpAddr>,
    pub up: bool,
    /// What made it change: "Initialization Sequence Completed",
    /// "ping-restart", "DPD: peer dead".
    pub why: String,
}

impl Session {
    pub fn up(peer: impl Into<String>, addr: Option<IpAddr>, why: impl Into<String>) -> Action {
        Action::Session(Session {
            peer: peer.into(),
            addr,
            up: true,
            why: why.into(),
        })
    }

    pub fn down(peer: impl Into<String>, addr: Option<IpAddr>, why: impl Into<String>) -> Action {
        Action::Session(Session {
            peer: peer.into(),
            addr,
            up: false,
            why: why.into(),
        })
    }
}

/// Where an underlay datagram came from, as a model sees it.
pub type Source = SocketAddr;

/// The common shape of the tunnel models (each also has its own
/// constructor from parsed files and its own administrative inputs).
pub trait Model {
    /// A packet the host routed into the tunnel interface.
    fn send(&mut self, now: Instant, rng: &mut Rng, packet: Packet) -> Vec<Action>;
    /// The same, by a route whose next hop is `next_hop` (its gateway,
    /// else the destination). A layer-3 tunnel ignores it; an L2 device
    /// (the PeerVPN switch) sends the frame to whoever answers ARP for it.
    fn send_via(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        packet: Packet,
        next_hop: IpAddr,
    ) -> Vec<Action> {
        let _ = next_hop;
        self.send(now, rng, packet)
    }
    /// A packet for this model arrived from the underlay.
    fn receive(&mut self, now: Instant, rng: &mut Rng, packet: Packet) -> Vec<Action>;
    /// A timer the model asked for fired.
    fn on_timer(&mut self, now: Instant, rng: &mut Rng, token: u64) -> Vec<Action>;
    /// The host starts (boot or restart after a crash): state is fresh.
    fn start(&mut self, now: Instant, rng: &mut Rng) -> Vec<Action>;
}

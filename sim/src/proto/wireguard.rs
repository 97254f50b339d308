//! WireGuard, sans-IO: one [`Device`] per `wg` interface, built from the
//! host's wg-quick file parsed back ([`Device::from_conf`]).
//!
//! Sources: the WireGuard whitepaper (J. A. Donenfeld, "WireGuard: Next
//! Generation Kernel Network Tunnel", revision e2da747), section 5.4 for
//! the messages and section 6 for the timers, and the Linux implementation
//! (`drivers/net/wireguard/{messages.h,timers.c,send.c,receive.c,noise.c}`)
//! where the paper leaves a detail open (which timer is reset by what, the
//! number of retries, the size of the staging queue).
//!
//! # What is modelled
//! - Messages with their wire sizes (paper 5.4.2, 5.4.3, 5.4.7, 5.4.6):
//!   handshake initiation 148 B, response 92 B, cookie reply 64 B, transport
//!   data 16 B header + inner packet padded to 16 + 16 B tag (a keepalive is
//!   32 B). Instead of cryptography a message carries what decides whether
//!   the real one would authenticate: the sender's static public key, the
//!   public key the sender believes the receiver has, the preshared key's
//!   identity ([`PskId`], a one-way image of the key, never the key), and a
//!   session id standing in for the derived transport keys.
//! - The handshake (Noise IKpsk2): the responder accepts an initiation only
//!   when it was made for the responder's real public key and the
//!   initiator's key is one of its peers; the preshared key is mixed in only
//!   at the response (paper 5.4.3, `Q` after the responder's ephemeral), so
//!   a PSK mismatch makes the *initiator* drop the response. The responder
//!   keeps the new session as "next" until the initiator's first data
//!   packet confirms it (paper 5.4.5 / kernel `noise.c`).
//! - Timers (paper section 6, kernel `timers.c`): retransmission of the
//!   initiation after REKEY_TIMEOUT + jitter, giving up after
//!   MAX_TIMER_HANDSHAKES retries (REKEY_ATTEMPT_TIME / REKEY_TIMEOUT = 18,
//!   counted as the kernel counts them: 20 initiations in all), rekey on
//!   send after REKEY_AFTER_TIME (initiator only) or REKEY_AFTER_MESSAGES,
//!   rekey on receive after REJECT_AFTER_TIME - KEEPALIVE_TIMEOUT -
//!   REKEY_TIMEOUT, sessions unusable after REJECT_AFTER_TIME, passive
//!   keepalive KEEPALIVE_TIMEOUT after receiving data with nothing sent, new
//!   handshake when nothing came back KEEPALIVE_TIMEOUT + REKEY_TIMEOUT
//!   after sending data, persistent keepalive, key zeroing after
//!   3 × REJECT_AFTER_TIME, and at most one initiation per REKEY_TIMEOUT.
//! - Cryptokey routing: one AllowedIPs table per device, longest prefix
//!   wins, a prefix belongs to one peer (setting it on another moves it, as
//!   the kernel's trie does). Outgoing packets go to the peer whose
//!   AllowedIPs hold the destination; an authenticated incoming packet whose
//!   inner source does not route back to the same peer is dropped.
//! - Staging: packets wait (up to MAX_STAGED_PACKETS, oldest dropped
//!   first) while a handshake is pending and leave when it completes; they
//!   are dropped when the handshake gives up.
//! - Endpoint roaming: every authenticated message (initiation, response,
//!   data, keepalive) sets the peer's endpoint to the datagram's source.
//! - Handshake processing costs CPU time and queues (kernel `receive.c`,
//!   one handshake worker: a one-vCPU host): received initiations and
//!   responses wait in the device's handshake queue (at most
//!   [`MAX_QUEUED_INCOMING_HANDSHAKES`], more are dropped) and take
//!   [`INITIATION_CPU`] / [`RESPONSE_CPU`] each, from measured Curve25519
//!   figures. The device is under load while the queue holds at least
//!   [`UNDER_LOAD_QUEUE_LEN`] messages and for [`UNDER_LOAD_AFTER`] after;
//!   under load, an initiation without a valid cookie (`mac2`) gets a
//!   64-byte cookie reply (paper 5.4.7; its cost, a MAC and an XChaCha20
//!   encryption, is not counted) instead of a response. The initiator
//!   keeps the cookie; its next retry (REKEY_TIMEOUT later) carries it and
//!   is then processed. [`Device::set_under_load`] forces the state (tests).
//!   A burst of initiations (hundreds of workers handshaking at once, e.g.
//!   after a restart) builds the queue and gets cookie replies. Responses
//!   are not subject to the cookie check in this model.
//!
//! Not modelled: replay windows and TAI64N timestamps (the simulated network
//! neither replays nor reorders across restarts), the handshake rate limit
//! per source (the kernel applies it to initiations with a cookie under
//! load), the CPU cost of sending initiations and of data, and encryption
//! itself.
//!
//! # Contract with the engine
//! - [`Device::start`] (the trait's `start`) brings the interface up; before
//!   it, and after [`Device::stop`], everything is dropped as "down".
//! - `Action::Transmit` packets have an **unspecified source address**
//!   (`0.0.0.0` or `::`, of the endpoint's family): the engine picks the
//!   source from its routing table, as the kernel does for the socket;
//!   except towards an endpoint learnt from the peer's datagrams: then the
//!   source is the local address those were sent to, as the kernel caches
//!   it with the endpoint (`endpoint.src4`/`src6`), so a multi-homed host
//!   answers from the address it was reached at. The
//!   source port is the listen port, the destination the peer's endpoint.
//!   TTL is 64 and DF is clear (the kernel's UDP tunnel socket sets no DF).
//! - `receive` takes the UDP datagram as it arrives (`packet.src` and the
//!   UDP source port are the peer's address as seen here, after any NAT).
//! - Timer tokens are `peer id << 8 | timer kind` (peer ids start at 1;
//!   [`HANDSHAKE_WORKER_TOKEN`] is the handshake worker's); a timer that
//!   fires after it was moved or cancelled is ignored, so the engine needs
//!   no cancel operation. The trace text of `Action::Log` names peers by the
//!   first 8 characters of their base64 public key.

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

use ipnet::IpNet;
use vpnsim_render::wgquick::{self, Host, PublicKey, SecretKey, WgQuickConf};

use crate::packet::{Body, Packet, Payload};
use crate::proto::{Action, Model, Session};
use crate::rng::Rng;
use crate::time::{Instant, Span};

// ---------------------------------------------------------------------------
// Protocol numbers
// ---------------------------------------------------------------------------

/// Handshake initiation: type 1 + reserved 3 + sender 4 + ephemeral 32 +
/// AEAD(static 32) 48 + AEAD(timestamp 12) 28 + mac1 16 + mac2 16
/// (whitepaper 5.4.2).
pub const MESSAGE_INITIATION_LEN: u32 = 148;
/// Handshake response: type 1 + reserved 3 + sender 4 + receiver 4 +
/// ephemeral 32 + AEAD(empty) 16 + mac1 16 + mac2 16 (whitepaper 5.4.3).
pub const MESSAGE_RESPONSE_LEN: u32 = 92;
/// Cookie reply: type 1 + reserved 3 + receiver 4 + nonce 24 +
/// AEAD(cookie 16) 32 (whitepaper 5.4.7).
pub const MESSAGE_COOKIE_REPLY_LEN: u32 = 64;
/// Transport data header: type 1 + reserved 3 + receiver 4 + counter 8
/// (whitepaper 5.4.6).
pub const MESSAGE_DATA_HEADER_LEN: u32 = 16;
/// The Poly1305 tag after the encrypted packet.
pub const AEAD_TAG_LEN: u32 = 16;
/// The encrypted packet is zero-padded to a multiple of this (5.4.6).
pub const PADDING_MULTIPLE: u32 = 16;
/// A keepalive: a transport data message with an empty packet.
pub const KEEPALIVE_LEN: u32 = MESSAGE_DATA_HEADER_LEN + AEAD_TAG_LEN;

/// Whitepaper 6.1: Rekey-After-Messages, 2^60.
pub const REKEY_AFTER_MESSAGES: u64 = 1 << 60;
/// Whitepaper 6.1: Reject-After-Messages, 2^64 − 2^13 − 1.
pub const REJECT_AFTER_MESSAGES: u64 = u64::MAX - (1 << 13);
/// Whitepaper 6.1: Rekey-After-Time, 120 s.
pub const REKEY_AFTER_TIME: Span = Span::secs(120);
/// Whitepaper 6.1: Reject-After-Time, 180 s.
pub const REJECT_AFTER_TIME: Span = Span::secs(180);
/// Whitepaper 6.1: Rekey-Attempt-Time, 90 s.
pub const REKEY_ATTEMPT_TIME: Span = Span::secs(90);
/// Whitepaper 6.1: Rekey-Timeout, 5 s.
pub const REKEY_TIMEOUT: Span = Span::secs(5);
/// Whitepaper 6.4: the retransmission timer gets up to a third of a
/// second of jitter (kernel: `HZ / 3`), drawn from `[0, 333 ms)`.
pub const REKEY_TIMEOUT_JITTER_MAX: Span = Span::millis(333);
/// Whitepaper 6.1: Keepalive-Timeout, 10 s.
pub const KEEPALIVE_TIMEOUT: Span = Span::secs(10);
/// Kernel `timers.c`: REKEY_ATTEMPT_TIME / REKEY_TIMEOUT retries.
pub const MAX_TIMER_HANDSHAKES: u32 = 18;
/// Kernel `device.h`: packets staged per peer while there is no session.
pub const MAX_STAGED_PACKETS: usize = 128;
/// Whitepaper 5.4.7: the cookie secret changes every 2 minutes; a received
/// cookie is used for COOKIE_SECRET_MAX_AGE − COOKIE_SECRET_LATENCY.
pub const COOKIE_SECRET_MAX_AGE: Span = Span::secs(120);
/// Kernel `messages.h`: COOKIE_SECRET_LATENCY, 5 s.
pub const COOKIE_SECRET_LATENCY: Span = Span::secs(5);
/// Kernel `timers.c`: key material is zeroed 3 × REJECT_AFTER_TIME after
/// the last session was derived (whitepaper 6.3 speaks of the same bound).
pub const ZERO_KEY_MATERIAL_AFTER: Span = Span(REJECT_AFTER_TIME.0 * 3);
/// Whitepaper 6.2: the initiator of a session rekeys on *receiving* data
/// once the session is REJECT_AFTER_TIME − KEEPALIVE_TIMEOUT −
/// REKEY_TIMEOUT (165 s) old.
pub const REKEY_ON_RECEIVE_AFTER: Span =
    Span(REJECT_AFTER_TIME.0 - KEEPALIVE_TIMEOUT.0 - REKEY_TIMEOUT.0);
const COOKIE_USABLE_FOR: Span = Span(COOKIE_SECRET_MAX_AGE.0 - COOKIE_SECRET_LATENCY.0);
/// wg-quick's MTU on a 1500-byte underlay (1500 − 80).
pub const DEFAULT_MTU: u32 = 1420;
/// Kernel `messages.h`: MAX_QUEUED_INCOMING_HANDSHAKES, the length of the
/// device's queue of received handshake messages; one more is dropped.
pub const MAX_QUEUED_INCOMING_HANDSHAKES: usize = 4096;
/// Kernel `receive.c`: the device is under load while its handshake queue
/// holds at least MAX_QUEUED_INCOMING_HANDSHAKES / 8 = 512 messages
/// (wireguard-go: `QueueHandshakeSize / 8` with a queue of 1024).
pub const UNDER_LOAD_QUEUE_LEN: usize = MAX_QUEUED_INCOMING_HANDSHAKES / 8;
/// Kernel `receive.c` (`wg_birthdate_has_expired(last_under_load, 1)`) and
/// wireguard-go `UnderLoadAfterTime`: the device stays under load for 1 s
/// after the queue was last that long.
pub const UNDER_LOAD_AFTER: Span = Span::secs(1);
/// CPU time of one Curve25519 scalar multiplication: 156,995 cycles, the
/// measured figure of T. Chou, "Sandy2x: New Curve25519 Speed Records"
/// (SAC 2015) on Ivy Bridge, on a 2.5 GHz core (the clock is this model's
/// assumption: a typical server vCPU).
pub const X25519_TIME: Span = Span::nanos(156_995 * 2 / 5);
/// CPU time to process a handshake initiation and answer it (kernel
/// `noise.c`): consuming it takes one DH (`es`; `ss` is precomputed per
/// peer), the response a new ephemeral key pair and two DHs (`ee`, `se`):
/// 4 × [`X25519_TIME`] ≈ 251 µs, about 3,980 handshakes a second.
pub const INITIATION_CPU: Span = Span(4 * X25519_TIME.0);
/// CPU time to consume a handshake response: two DHs (`ee`, `se`).
pub const RESPONSE_CPU: Span = Span(2 * X25519_TIME.0);

// ---------------------------------------------------------------------------
// Keys
// ---------------------------------------------------------------------------

/// The public key of a private key: X25519 with the base point, as
/// `wg pubkey` computes it.
pub fn public_key_of(private: &SecretKey) -> PublicKey {
    // The fixed-base multiplication with the precomputed table: the same
    // clamped scalar times the base point as `x25519(k, 9)`, several times
    // faster (a star's hub and every worker derive theirs at load).
    let secret = x25519_dalek::StaticSecret::from(*private.as_bytes());
    PublicKey::from_bytes(x25519_dalek::PublicKey::from(&secret).to_bytes())
}

/// What a message carries instead of a preshared key: a one-way image of
/// it (equal keys give equal ids; the key cannot be recovered). No PSK is
/// the all-zero key, as in the protocol (whitepaper 5.2: `Q` defaults to
/// zeros), so a peer without `PresharedKey` matches one with the zero key.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PskId([u8; 8], [u8; 8]);

impl PskId {
    /// Built from X25519 (the one one-way function among this crate's
    /// dependencies): the first 8 bytes of `X25519(k, 9)` and of
    /// `X25519(rot16(k), 9)`. Clamping loses five bits of each scalar; the
    /// rotation moves them into bytes the other product keeps, so keys that
    /// differ in any bit give different ids (up to a 2^-64 coincidence).
    /// A one-line swap for a real hash (BLAKE2s, as WireGuard uses) if the
    /// crate ever depends on one.
    pub fn of(psk: Option<&SecretKey>) -> PskId {
        match psk {
            None => Self::none(),
            Some(key) => Self::of_bytes(*key.as_bytes()),
        }
    }

    fn none() -> PskId {
        static NONE: OnceLock<PskId> = OnceLock::new();
        *NONE.get_or_init(|| Self::of_bytes([0; 32]))
    }

    fn of_bytes(bytes: [u8; 32]) -> PskId {
        let mut rotated = bytes;
        rotated.rotate_left(16);
        let a = x25519_dalek::x25519(bytes, x25519_dalek::X25519_BASEPOINT_BYTES);
        let b = x25519_dalek::x25519(rotated, x25519_dalek::X25519_BASEPOINT_BYTES);
        let (mut x, mut y) = ([0u8; 8], [0u8; 8]);
        x.copy_from_slice(&a[..8]);
        y.copy_from_slice(&b[..8]);
        PskId(x, y)
    }
}

impl fmt::Debug for PskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "PskId({:02x}{:02x}{:02x}{:02x}..)",
            self.0[0], self.0[1], self.0[2], self.0[3]
        )
    }
}

/// A public key shortened for trace lines (first 8 base64 characters).
fn short(key: &PublicKey) -> String {
    key.to_base64().chars().take(8).collect()
}

// ---------------------------------------------------------------------------
// Messages
// ---------------------------------------------------------------------------

/// WireGuard messages on the wire (the UDP payload).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    HandshakeInitiation(Initiation),
    HandshakeResponse(Response),
    CookieReply(CookieReply),
    TransportData(TransportData),
}

/// Message type 1 (whitepaper 5.4.2).
#[derive(Debug, Clone, PartialEq)]
pub struct Initiation {
    pub sender_index: u32,
    /// The initiator's static public key (encrypted on the wire).
    pub sender_static: PublicKey,
    /// The public key the initiator has configured for the responder: the
    /// real message only decrypts with the matching private key.
    pub receiver_static: PublicKey,
    /// A valid `mac2`, i.e. a cookie from a recent cookie reply.
    pub has_cookie: bool,
}

/// Message type 2 (whitepaper 5.4.3).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub sender_index: u32,
    pub receiver_index: u32,
    /// The responder's static public key (implied on the wire by the DH).
    pub sender_static: PublicKey,
    /// The initiator key the responder found the peer by.
    pub receiver_static: PublicKey,
    /// The responder's preshared key for this peer, as an identity.
    pub psk: PskId,
    /// Stands in for the transport keys derived from both ephemerals.
    pub session: u64,
}

/// Message type 3 (whitepaper 5.4.7).
#[derive(Debug, Clone, PartialEq)]
pub struct CookieReply {
    pub receiver_index: u32,
}

/// Message type 4 (whitepaper 5.4.6).
#[derive(Debug, Clone, PartialEq)]
pub struct TransportData {
    pub receiver_index: u32,
    pub counter: u64,
    /// Must equal the receiver's session for the index (else: no decrypt).
    pub session: u64,
    /// The encapsulated packet; `None` is a keepalive.
    pub inner: Option<Box<Packet>>,
    /// Bytes of encrypted packet: the inner length plus padding.
    pub padded_len: u32,
}

impl Message {
    /// The UDP payload size in bytes.
    pub fn wire_len(&self) -> u32 {
        match self {
            Message::HandshakeInitiation(_) => MESSAGE_INITIATION_LEN,
            Message::HandshakeResponse(_) => MESSAGE_RESPONSE_LEN,
            Message::CookieReply(_) => MESSAGE_COOKIE_REPLY_LEN,
            Message::TransportData(d) => MESSAGE_DATA_HEADER_LEN + d.padded_len + AEAD_TAG_LEN,
        }
    }

    /// A short name for traces and pcap comments.
    pub fn kind(&self) -> &'static str {
        match self {
            Message::HandshakeInitiation(_) => "handshake initiation",
            Message::HandshakeResponse(_) => "handshake response",
            Message::CookieReply(_) => "cookie reply",
            Message::TransportData(d) if d.inner.is_none() => "keepalive",
            Message::TransportData(_) => "transport data",
        }
    }
}

/// The encrypted length of an inner packet of `len` bytes: padded to a
/// multiple of 16 but never beyond the MTU (kernel `send.c`,
/// `calculate_skb_padding`).
pub fn padded_len(len: u32, mtu: u32) -> u32 {
    let mut last_unit = len;
    if mtu > 0 && last_unit > mtu {
        last_unit %= mtu;
    }
    let aligned = last_unit.div_ceil(PADDING_MULTIPLE) * PADDING_MULTIPLE;
    let padded = if mtu > 0 { aligned.min(mtu) } else { aligned };
    len + padded.saturating_sub(last_unit)
}

// ---------------------------------------------------------------------------
// Device state
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimerKind {
    RetransmitHandshake = 0,
    SendKeepalive = 1,
    NewHandshake = 2,
    ZeroKeyMaterial = 3,
    PersistentKeepalive = 4,
    /// Log-only: the current session reaches REJECT_AFTER_TIME.
    SessionExpiry = 5,
}

const TIMER_KINDS: [TimerKind; 6] = [
    TimerKind::RetransmitHandshake,
    TimerKind::SendKeepalive,
    TimerKind::NewHandshake,
    TimerKind::ZeroKeyMaterial,
    TimerKind::PersistentKeepalive,
    TimerKind::SessionExpiry,
];

/// The handshake worker's timer token (peer 0, which no peer has).
pub const HANDSHAKE_WORKER_TOKEN: u64 = 0xff;

fn token(peer: u32, kind: TimerKind) -> u64 {
    (u64::from(peer) << 8) | kind as u64
}

fn decode_token(token: u64) -> Option<(u32, TimerKind)> {
    let peer = u32::try_from(token >> 8).ok()?;
    let kind = TIMER_KINDS.get(usize::try_from(token & 0xff).ok()?)?;
    Some((peer, *kind))
}

/// `wg_birthdate_has_expired`: strictly more than `span` has passed.
fn has_expired(birth: Instant, span: Span, now: Instant) -> bool {
    now.since(birth) > span
}

fn jitter(rng: &mut Rng) -> Span {
    Span(rng.below(REKEY_TIMEOUT_JITTER_MAX.0))
}

#[derive(Debug, Clone)]
struct Keypair {
    local_index: u32,
    remote_index: u32,
    session: u64,
    birth: Instant,
    initiator: bool,
    send_counter: u64,
}

#[derive(Debug, Clone)]
enum Staged {
    Data(Box<Packet>),
    Keepalive,
}

#[derive(Debug, Clone)]
struct PeerState {
    id: u32,
    public_key: PublicKey,
    /// Kept for [`Device::saved_conf`]; `SecretKey`'s Debug redacts it.
    preshared_key: Option<SecretKey>,
    psk: PskId,
    /// Truncated, in the order given.
    allowed_ips: Vec<IpNet>,
    /// From the file or the last `wg set ... endpoint`.
    conf_endpoint: Option<SocketAddr>,
    /// Current (roamed) endpoint.
    endpoint: Option<SocketAddr>,
    /// The local address the last authenticated datagram from the peer was
    /// sent to: the kernel caches it with the endpoint (`endpoint.src4`)
    /// and sends from it, whatever interface the route leaves by. `None`
    /// for a configured endpoint not heard from yet.
    endpoint_src: Option<IpAddr>,
    persistent_keepalive: u16,

    /// Our pending initiation's local index.
    handshake: Option<u32>,
    last_sent_handshake: Option<Instant>,
    attempts: u32,
    cookie: Option<Instant>,
    previous: Option<Keypair>,
    current: Option<Keypair>,
    next: Option<Keypair>,
    staged: VecDeque<Staged>,
    timers: [Option<Instant>; 6],
    /// The wake-up asked of the engine per timer and not delivered yet.
    /// Moving a deadline later asks for nothing: the wake-up finds the
    /// deadline later and asks again. Data packets re-arm timers all the
    /// time; this keeps the engine's work per packet small.
    requested: [Option<Instant>; 6],
    need_another_keepalive: bool,
    sent_lastminute_handshake: bool,
    last_handshake: Option<Instant>,
    rx_bytes: u64,
    tx_bytes: u64,
}

impl PeerState {
    fn new(id: u32, public_key: PublicKey) -> PeerState {
        PeerState {
            id,
            public_key,
            preshared_key: None,
            psk: PskId::none(),
            allowed_ips: Vec::new(),
            conf_endpoint: None,
            endpoint: None,
            endpoint_src: None,
            persistent_keepalive: 0,
            handshake: None,
            last_sent_handshake: None,
            attempts: 0,
            cookie: None,
            previous: None,
            current: None,
            next: None,
            staged: VecDeque::new(),
            timers: [None; 6],
            requested: [None; 6],
            need_another_keepalive: false,
            sent_lastminute_handshake: false,
            last_handshake: None,
            rx_bytes: 0,
            tx_bytes: 0,
        }
    }

    fn arm(&mut self, kind: TimerKind, at: Instant, out: &mut Vec<Action>) {
        let k = kind as usize;
        self.timers[k] = Some(at);
        if self.requested[k].is_none_or(|r| at < r) {
            self.requested[k] = Some(at);
            out.push(Action::Timer {
                at,
                token: token(self.id, kind),
            });
        }
    }

    fn disarm(&mut self, kind: TimerKind) {
        self.timers[kind as usize] = None;
    }

    fn armed(&self, kind: TimerKind) -> bool {
        self.timers[kind as usize].is_some()
    }

    /// Every local index this peer holds (handshake and keypairs).
    fn indices(&self) -> Vec<u32> {
        let mut v: Vec<u32> = [&self.previous, &self.current, &self.next]
            .into_iter()
            .flatten()
            .map(|k| k.local_index)
            .collect();
        v.extend(self.handshake);
        v
    }

    /// Forgets sessions, handshake, staged packets and timers (interface
    /// down, restart); the endpoint goes back to the configured one.
    fn reset(&mut self) {
        self.handshake = None;
        self.last_sent_handshake = None;
        self.attempts = 0;
        self.cookie = None;
        self.previous = None;
        self.current = None;
        self.next = None;
        self.staged.clear();
        self.timers = [None; 6];
        self.requested = [None; 6];
        self.need_another_keepalive = false;
        self.sent_lastminute_handshake = false;
        self.endpoint = self.conf_endpoint;
        self.endpoint_src = None;
    }

    fn name(&self) -> String {
        format!("peer {}", short(&self.public_key))
    }
}

/// What `wg show` says about a peer (no secrets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub public_key: PublicKey,
    pub has_preshared_key: bool,
    /// The current endpoint (after roaming).
    pub endpoint: Option<SocketAddr>,
    pub allowed_ips: Vec<IpNet>,
    /// Seconds; 0 is off.
    pub persistent_keepalive: u16,
    pub latest_handshake: Option<Instant>,
    /// When the session in use was made (none: no confirmed session).
    pub session_since: Option<Instant>,
    /// Whether an initiation is waiting for its response.
    pub handshake_pending: bool,
    /// WireGuard message bytes (UDP payloads) received and sent.
    pub rx_bytes: u64,
    pub tx_bytes: u64,
}

/// A WireGuard interface (`wg0`), sans-IO.
///
/// Holds no private key: only the public key derived from it (and peers'
/// preshared keys, for [`Device::saved_conf`], redacted by their Debug).
#[derive(Debug, Clone)]
pub struct Device {
    iface: String,
    public_key: PublicKey,
    listen_port: u16,
    addresses: Vec<IpNet>,
    mtu: u32,
    running: bool,
    /// Forced under load ([`Device::set_under_load`]).
    under_load: bool,
    /// Received handshake messages waiting for the worker (the front one
    /// is being processed while `worker_busy`).
    handshake_queue: VecDeque<Packet>,
    worker_busy: bool,
    /// When the queue was last [`UNDER_LOAD_QUEUE_LEN`] long.
    last_under_load: Option<Instant>,
    /// By id, i.e. in configuration order.
    peers: BTreeMap<u32, PeerState>,
    by_key: BTreeMap<PublicKey, u32>,
    /// The cryptokey routing table: prefix → peer id.
    allowed: BTreeMap<IpNet, u32>,
    /// How many prefixes of each length (IPv4, IPv6), for longest-prefix
    /// match by probing only the lengths in use.
    prefix_lens: [BTreeMap<u8, usize>; 2],
    /// Local index → peer id.
    indices: BTreeMap<u32, u32>,
    next_peer_id: u32,
}

impl Device {
    /// Builds the interface `iface` from its wg-quick file. Endpoint host
    /// names are resolved with `resolve` (as `wg setconf` does when
    /// wg-quick brings the interface up); a name that does not resolve
    /// fails, as `wg setconf` fails. IP endpoints need no resolver.
    pub fn from_conf(
        conf: &WgQuickConf,
        iface: &str,
        resolve: impl Fn(&str) -> Option<IpAddr>,
    ) -> Result<Device, String> {
        let public_key = public_key_of(&conf.interface.private_key);
        let listen_port = conf
            .interface
            .listen_port
            .filter(|&p| p != 0)
            .unwrap_or_else(|| ephemeral_port(&public_key));
        let mut device = Device {
            iface: iface.to_owned(),
            public_key,
            listen_port,
            addresses: conf.interface.addresses.clone(),
            mtu: conf.interface.mtu.map_or(DEFAULT_MTU, u32::from),
            running: false,
            under_load: false,
            handshake_queue: VecDeque::new(),
            worker_busy: false,
            last_under_load: None,
            peers: BTreeMap::new(),
            by_key: BTreeMap::new(),
            allowed: BTreeMap::new(),
            prefix_lens: [BTreeMap::new(), BTreeMap::new()],
            indices: BTreeMap::new(),
            next_peer_id: 1,
        };
        for peer in &conf.peers {
            if peer.public_key == public_key {
                // The kernel silently ignores a peer with the device's key.
                continue;
            }
            let endpoint = match &peer.endpoint {
                None => None,
                Some(e) => Some(resolve_endpoint(e, &resolve).map_err(|why| {
                    format!("{iface}: peer {}: {why}", peer.public_key.to_base64())
                })?),
            };
            let id = device.add_peer(peer.public_key);
            device.set_allowed(id, peer.allowed_ips.clone());
            if let Some(p) = device.peers.get_mut(&id) {
                p.preshared_key = peer.preshared_key.clone();
                p.psk = PskId::of(peer.preshared_key.as_ref());
                p.conf_endpoint = endpoint;
                p.endpoint = endpoint;
                p.endpoint_src = None;
                p.persistent_keepalive = peer.persistent_keepalive.unwrap_or(0);
            }
        }
        Ok(device)
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }
    /// The UDP port the device listens and sends on.
    pub fn listen_port(&self) -> u16 {
        self.listen_port
    }
    /// The `Address` lines of the file.
    pub fn addresses(&self) -> &[IpNet] {
        &self.addresses
    }
    /// The tunnel MTU (the file's `MTU`, else wg-quick's 1420).
    pub fn mtu(&self) -> u32 {
        self.mtu
    }
    /// Sets the tunnel MTU (wg-quick derives it from the route to the
    /// endpoints minus 80 when the file has none).
    pub fn set_mtu(&mut self, mtu: u32) {
        self.mtu = mtu;
    }
    pub fn is_running(&self) -> bool {
        self.running
    }
    /// Forces the device under load (or back to judging by its queue):
    /// under load it answers initiations without a cookie with a cookie
    /// reply instead of a response (whitepaper 5.4.7).
    pub fn set_under_load(&mut self, under_load: bool) {
        self.under_load = under_load;
    }

    /// Whether the device is under load at `now` (see the module docs);
    /// notes the time when the queue is long.
    fn is_under_load(&mut self, now: Instant) -> bool {
        if self.handshake_queue.len() >= UNDER_LOAD_QUEUE_LEN {
            self.last_under_load = Some(now);
            return true;
        }
        self.under_load
            || self
                .last_under_load
                .is_some_and(|t| !has_expired(t, UNDER_LOAD_AFTER, now))
    }

    /// Messages in the handshake queue (the one being processed included).
    pub fn handshake_queue_len(&self) -> usize {
        self.handshake_queue.len()
    }

    /// The handshake worker takes the next message: invalid `mac1` (made
    /// for another public key) and, under load, initiations without a
    /// cookie are dealt with at once (negligible CPU: a MAC, a cookie
    /// reply); anything else occupies it for its CPU time.
    fn pump_handshakes(&mut self, now: Instant, out: &mut Vec<Action>) {
        while !self.worker_busy {
            let Some(front) = self.handshake_queue.front() else {
                return;
            };
            // (initiation: its mac1 is for us, it has a cookie, its index)
            let initiation = match &front.payload {
                Payload::Udp {
                    src_port,
                    body: Body::WireGuard(Message::HandshakeInitiation(m)),
                    ..
                } => Some((
                    SocketAddr::new(front.src, *src_port),
                    m.receiver_static,
                    m.has_cookie,
                    m.sender_index,
                )),
                _ => None,
            };
            let cost = match initiation {
                Some((from, receiver, _, _)) if receiver != self.public_key => {
                    let reason = format!(
                        "{}: handshake initiation from {from} does not decrypt: made for public key {receiver}, this interface has {}",
                        self.iface, self.public_key
                    );
                    if let Some(p) = self.handshake_queue.pop_front() {
                        out.push(dropped(&p, reason));
                    }
                    continue;
                }
                Some((from, _, false, sender_index)) if self.is_under_load(now) => {
                    let reply = Message::CookieReply(CookieReply {
                        receiver_index: sender_index,
                    });
                    // Answered from the address the initiation came to.
                    if let Some(p) = self.handshake_queue.pop_front() {
                        out.push(Action::Transmit(udp_packet(
                            self.listen_port,
                            Some(p.dst),
                            from,
                            reply,
                        )));
                    }
                    continue;
                }
                Some(_) => INITIATION_CPU,
                None => RESPONSE_CPU,
            };
            self.worker_busy = true;
            out.push(Action::Timer {
                at: now + cost,
                token: HANDSHAKE_WORKER_TOKEN,
            });
        }
    }

    /// The worker is done with the front message: it takes effect.
    fn handshake_processed(&mut self, now: Instant, rng: &mut Rng, out: &mut Vec<Action>) {
        self.worker_busy = false;
        if let Some(packet) = self.handshake_queue.pop_front()
            && let Payload::Udp {
                src_port,
                body: Body::WireGuard(msg),
                ..
            } = &packet.payload
        {
            let from = SocketAddr::new(packet.src, *src_port);
            match msg {
                Message::HandshakeInitiation(m) => {
                    let m = m.clone();
                    self.on_initiation(now, rng, &m, from, &packet, out);
                }
                Message::HandshakeResponse(m) => {
                    let m = m.clone();
                    self.on_response(now, rng, &m, from, &packet, out);
                }
                _ => {}
            }
        }
        self.pump_handshakes(now, out);
    }

    /// The host's addresses changed: cached endpoint sources may no longer
    /// be local. The kernel then fails the route lookup with the cached
    /// source, clears it and lets routing pick; the engine calls this so
    /// the next datagrams leave from an address the host has.
    pub fn forget_local_sources(&mut self) {
        for p in self.peers.values_mut() {
            p.endpoint_src = None;
        }
    }

    /// `wg show`: every peer in configuration order.
    pub fn peers(&self) -> Vec<PeerInfo> {
        self.peers
            .values()
            .map(|p| PeerInfo {
                public_key: p.public_key,
                has_preshared_key: p.preshared_key.is_some(),
                endpoint: p.endpoint,
                allowed_ips: p.allowed_ips.clone(),
                persistent_keepalive: p.persistent_keepalive,
                latest_handshake: p.last_handshake,
                session_since: p.current.as_ref().map(|k| k.birth),
                handshake_pending: p.handshake.is_some(),
                rx_bytes: p.rx_bytes,
                tx_bytes: p.tx_bytes,
            })
            .collect()
    }

    /// The peer whose AllowedIPs hold `ip` (longest prefix), if any.
    pub fn route(&self, ip: IpAddr) -> Option<PublicKey> {
        self.lookup(ip)
            .and_then(|id| self.peers.get(&id))
            .map(|p| p.public_key)
    }

    /// What `wg-quick save` writes: `original`'s `[Interface]` and the
    /// runtime peers (current endpoints, AllowedIPs, keepalives), without
    /// comments, as `wg showconf` prints them.
    pub fn saved_conf(&self, original: &WgQuickConf) -> WgQuickConf {
        let peers = self
            .peers
            .values()
            .map(|p| wgquick::Peer {
                comments: Vec::new(),
                public_key: p.public_key,
                preshared_key: p.preshared_key.clone(),
                allowed_ips: p.allowed_ips.clone(),
                endpoint: p.endpoint.map(|e| wgquick::Endpoint {
                    host: Host::Ip(e.ip()),
                    port: e.port(),
                }),
                persistent_keepalive: (p.persistent_keepalive > 0)
                    .then_some(p.persistent_keepalive),
            })
            .collect();
        WgQuickConf {
            header: Vec::new(),
            interface: original.interface.clone(),
            peers,
        }
    }

    /// `wg set <iface> peer <KEY> [allowed-ips ..] [endpoint ..]
    /// [persistent-keepalive ..]`: adds the peer if it is new, replaces
    /// its AllowedIPs (taking prefixes away from other peers), sets its
    /// endpoint and keepalive. As the kernel does, turning persistent
    /// keepalive on sends a keepalive at once (which starts a handshake),
    /// and staged packets are sent. Fails on a key that is not a key.
    pub fn set_peer(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        public_key_b64: &str,
        allowed_ips: Option<Vec<IpNet>>,
        endpoint: Option<SocketAddr>,
        keepalive: Option<u16>,
    ) -> Result<Vec<Action>, String> {
        let key = PublicKey::from_base64(public_key_b64).map_err(|e| e.to_string())?;
        Ok(self.upsert_peer(now, rng, key, allowed_ips, endpoint, keepalive, None))
    }

    /// `wg syncconf <iface> FILE`, with FILE parsed: the interface ends up
    /// with exactly the file's peers, keys and settings (wg(8): "like
    /// setconf, but reads back the existing configuration first and only
    /// makes changes that are explicitly different between the
    /// configuration file and the interface ... not disrupting current peer
    /// sessions"). Peers missing from the file are removed; every peer of
    /// the file gets its AllowedIPs, preshared key (none if the file has
    /// none) and persistent keepalive (off if unset), and its endpoint when
    /// the file gives one; sessions of peers that stay are kept. A new
    /// `PrivateKey` changes the interface's identity and drops every
    /// session; `ListenPort` moves the socket when given. Like wg, it
    /// refuses wg-quick's own keys (`Address`, `DNS`, `MTU`, `Table`,
    /// hooks, `SaveConfig`: the file must come from `wg-quick strip`) and
    /// an endpoint name that does not resolve, before changing anything.
    pub fn sync_conf(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        conf: &WgQuickConf,
        resolve: impl Fn(&str) -> Option<IpAddr>,
    ) -> Result<Vec<Action>, String> {
        let i = &conf.interface;
        let wg_quick_only = [
            ("Address", !i.addresses.is_empty()),
            ("DNS", !i.dns.is_empty()),
            ("MTU", i.mtu.is_some()),
            ("Table", i.table.is_some()),
            ("PreUp", !i.pre_up.is_empty()),
            ("PostUp", !i.post_up.is_empty()),
            ("PreDown", !i.pre_down.is_empty()),
            ("PostDown", !i.post_down.is_empty()),
            ("SaveConfig", i.save_config),
        ];
        if let Some((key, _)) = wg_quick_only.iter().find(|(_, set)| *set) {
            return Err(format!(
                "Line unrecognized: `{key}` (a wg-quick key: give wg the output of `wg-quick strip`)"
            ));
        }
        let mut endpoints = Vec::new();
        for peer in &conf.peers {
            endpoints.push(match &peer.endpoint {
                None => None,
                Some(e) => Some(resolve_endpoint(e, &resolve)?),
            });
        }
        let mut out = Vec::new();
        let public_key = public_key_of(&i.private_key);
        if public_key != self.public_key {
            self.public_key = public_key;
            out.extend(self.sessions_ended("private key changed"));
            self.indices.clear();
            for p in self.peers.values_mut() {
                p.reset();
            }
            out.push(Action::Log(format!(
                "{}: private key changed (public key {}): every session dropped",
                self.iface,
                short(&public_key)
            )));
            if self.by_key.contains_key(&public_key) {
                out.extend(self.remove_peer(now, &public_key.to_base64())?);
            }
        }
        if let Some(port) = i.listen_port.filter(|&p| p != 0) {
            self.listen_port = port;
        }
        let keep: Vec<PublicKey> = conf.peers.iter().map(|p| p.public_key).collect();
        let gone: Vec<PublicKey> = self
            .by_key
            .keys()
            .filter(|k| !keep.contains(k))
            .copied()
            .collect();
        for key in gone {
            out.extend(self.remove_peer(now, &key.to_base64())?);
        }
        for (peer, endpoint) in conf.peers.iter().zip(endpoints) {
            out.extend(self.upsert_peer(
                now,
                rng,
                peer.public_key,
                Some(peer.allowed_ips.clone()),
                endpoint,
                Some(peer.persistent_keepalive.unwrap_or(0)),
                Some(peer.preshared_key.clone()),
            ));
        }
        Ok(out)
    }

    /// `set_peer` by key; `psk`: `Some(k)` sets the preshared key to `k`
    /// (none: the all-zero key), `None` leaves it.
    #[allow(clippy::too_many_arguments)]
    fn upsert_peer(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        key: PublicKey,
        allowed_ips: Option<Vec<IpNet>>,
        endpoint: Option<SocketAddr>,
        keepalive: Option<u16>,
        psk: Option<Option<SecretKey>>,
    ) -> Vec<Action> {
        let mut out = Vec::new();
        if key == self.public_key {
            out.push(Action::Log(format!(
                "{}: ignoring peer {} with the interface's own public key",
                self.iface,
                short(&key)
            )));
            return out;
        }
        let id = match self.by_key.get(&key) {
            Some(&id) => id,
            None => {
                out.push(Action::Log(format!(
                    "{}: peer {} added",
                    self.iface,
                    short(&key)
                )));
                self.add_peer(key)
            }
        };
        if let Some(nets) = allowed_ips {
            self.set_allowed(id, nets);
        }
        let running = self.running;
        let Some(p) = self.peers.get_mut(&id) else {
            return out;
        };
        if let Some(e) = endpoint {
            p.conf_endpoint = Some(e);
            p.endpoint = Some(e);
            p.endpoint_src = None;
        }
        if let Some(k) = psk {
            p.psk = PskId::of(k.as_ref());
            p.preshared_key = k;
        }
        let mut send_keepalive = false;
        if let Some(k) = keepalive {
            send_keepalive = p.persistent_keepalive == 0 && k > 0 && running;
            p.persistent_keepalive = k;
            if k == 0 {
                p.disarm(TimerKind::PersistentKeepalive);
            }
        }
        if send_keepalive {
            self.send_keepalive(id, now, rng, &mut out);
        }
        if running {
            self.send_staged(id, now, rng, &mut out);
        }
        out
    }

    /// `wg set <iface> peer <KEY> remove`: the peer, its sessions, staged
    /// packets and AllowedIPs go. Removing an unknown peer is no error
    /// (as with wg).
    pub fn remove_peer(
        &mut self,
        _now: Instant,
        public_key_b64: &str,
    ) -> Result<Vec<Action>, String> {
        let key = PublicKey::from_base64(public_key_b64).map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        let Some(id) = self.by_key.remove(&key) else {
            return Ok(out);
        };
        self.set_allowed(id, Vec::new());
        if let Some(p) = self.peers.remove(&id) {
            for index in p.indices() {
                self.indices.remove(&index);
            }
            out.push(Action::Log(format!("{}: {} removed", self.iface, p.name())));
            if p.current.is_some() {
                out.push(Session::down(
                    p.name(),
                    p.endpoint.map(|e| e.ip()),
                    "peer removed",
                ));
            }
        }
        Ok(out)
    }

    /// The interface goes down (`wg-quick down`, or the host stops):
    /// sessions, handshakes and staged packets are forgotten.
    /// A session-down for every peer that has a session now.
    fn sessions_ended(&self, why: &str) -> Vec<Action> {
        self.peers
            .values()
            .filter(|p| p.current.is_some())
            .map(|p| Session::down(p.name(), p.endpoint.map(|e| e.ip()), why))
            .collect()
    }

    pub fn stop(&mut self) {
        self.running = false;
        self.handshake_queue.clear();
        self.worker_busy = false;
        self.last_under_load = None;
        self.indices.clear();
        for p in self.peers.values_mut() {
            p.reset();
        }
    }

    // -- internals ----------------------------------------------------------

    fn add_peer(&mut self, key: PublicKey) -> u32 {
        let id = self.next_peer_id;
        self.next_peer_id = self.next_peer_id.wrapping_add(1).max(1);
        self.peers.insert(id, PeerState::new(id, key));
        self.by_key.insert(key, id);
        id
    }

    /// Replaces peer `id`'s AllowedIPs with `nets` (host bits cleared);
    /// a prefix another peer holds moves to this one.
    fn set_allowed(&mut self, id: u32, nets: Vec<IpNet>) {
        let old = self
            .peers
            .get_mut(&id)
            .map(|p| std::mem::take(&mut p.allowed_ips))
            .unwrap_or_default();
        for net in old {
            if self.allowed.get(&net) == Some(&id) {
                self.allowed.remove(&net);
                self.count_prefix(&net, false);
            }
        }
        let mut mine = Vec::new();
        for net in nets {
            let net = net.trunc();
            if mine.contains(&net) {
                continue;
            }
            match self.allowed.insert(net, id) {
                Some(other) if other != id => {
                    if let Some(o) = self.peers.get_mut(&other) {
                        o.allowed_ips.retain(|n| n != &net);
                    }
                }
                Some(_) => {}
                None => self.count_prefix(&net, true),
            }
            mine.push(net);
        }
        if let Some(p) = self.peers.get_mut(&id) {
            p.allowed_ips = mine;
        }
    }

    fn count_prefix(&mut self, net: &IpNet, add: bool) {
        let family = usize::from(matches!(net, IpNet::V6(_)));
        let counts = &mut self.prefix_lens[family];
        let len = net.prefix_len();
        if add {
            *counts.entry(len).or_insert(0) += 1;
        } else if let Some(n) = counts.get_mut(&len) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&len);
            }
        }
    }

    /// Longest-prefix match in the AllowedIPs table.
    fn lookup(&self, ip: IpAddr) -> Option<u32> {
        let family = usize::from(ip.is_ipv6());
        self.prefix_lens[family].keys().rev().find_map(|&len| {
            let net = IpNet::new(ip, len).ok()?.trunc();
            self.allowed.get(&net).copied()
        })
    }

    fn alloc_index(&mut self, rng: &mut Rng, id: u32) -> u32 {
        loop {
            let index = (rng.next_u64() >> 32) as u32;
            if let std::collections::btree_map::Entry::Vacant(slot) = self.indices.entry(index) {
                slot.insert(id);
                return index;
            }
        }
    }

    fn drop_keypair(&mut self, kp: Option<Keypair>) {
        if let Some(kp) = kp {
            self.indices.remove(&kp.local_index);
        }
    }

    /// Sends `msg` to the peer's endpoint; nothing goes out without one.
    fn transmit(&mut self, id: u32, msg: Message, out: &mut Vec<Action>) {
        let port = self.listen_port;
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(endpoint) = p.endpoint else {
            return;
        };
        p.tx_bytes += u64::from(msg.wire_len());
        out.push(Action::Transmit(udp_packet(
            port,
            p.endpoint_src,
            endpoint,
            msg,
        )));
    }

    /// Kernel `wg_packet_send_queued_handshake_initiation`.
    fn send_initiation(
        &mut self,
        id: u32,
        now: Instant,
        rng: &mut Rng,
        is_retry: bool,
        out: &mut Vec<Action>,
    ) {
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        if !is_retry {
            p.attempts = 0;
        }
        // At most one initiation per REKEY_TIMEOUT (whitepaper 6.4).
        if p.last_sent_handshake
            .is_some_and(|t| now.since(t) < REKEY_TIMEOUT)
        {
            return;
        }
        p.last_sent_handshake = Some(now);
        let old = p.handshake.take();
        if let Some(old) = old {
            self.indices.remove(&old);
        }
        let index = self.alloc_index(rng, id);
        let own = self.public_key;
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        p.handshake = Some(index);
        let has_cookie = p.cookie.is_some_and(|t| now.since(t) < COOKIE_USABLE_FOR);
        let msg = Message::HandshakeInitiation(Initiation {
            sender_index: index,
            sender_static: own,
            receiver_static: p.public_key,
            has_cookie,
        });
        any_authenticated_packet_traversal(p, now, out);
        p.disarm(TimerKind::SendKeepalive); // any authenticated packet sent
        let retry_at = now + REKEY_TIMEOUT + jitter(rng);
        p.arm(TimerKind::RetransmitHandshake, retry_at, out);
        self.transmit(id, msg, out);
    }

    fn send_keepalive(&mut self, id: u32, now: Instant, rng: &mut Rng, out: &mut Vec<Action>) {
        if let Some(p) = self.peers.get_mut(&id)
            && p.staged.is_empty()
        {
            p.staged.push_back(Staged::Keepalive);
        }
        self.send_staged(id, now, rng, out);
    }

    /// Kernel `wg_packet_send_staged_packets`: encrypt and send what is
    /// staged with the current session, or start a handshake.
    fn send_staged(&mut self, id: u32, now: Instant, rng: &mut Rng, out: &mut Vec<Action>) {
        let (port, mtu) = (self.listen_port, self.mtu);
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        if p.staged.is_empty() {
            return;
        }
        let usable = p.current.as_ref().is_some_and(|k| {
            !has_expired(k.birth, REJECT_AFTER_TIME, now)
                && k.send_counter.saturating_add(p.staged.len() as u64) <= REJECT_AFTER_MESSAGES
        });
        let (Some(endpoint), true) = (p.endpoint, usable) else {
            // No usable session: the packets wait for a handshake.
            self.send_initiation(id, now, rng, false, out);
            return;
        };
        let mut data_sent = false;
        while let Some(item) = p.staged.pop_front() {
            let Some(kp) = p.current.as_mut() else {
                break;
            };
            let inner = match item {
                Staged::Data(packet) => Some(packet),
                Staged::Keepalive => None,
            };
            data_sent |= inner.is_some();
            let len = inner.as_ref().map_or(0, |i| i.wire_len());
            let msg = Message::TransportData(TransportData {
                receiver_index: kp.remote_index,
                counter: kp.send_counter,
                session: kp.session,
                inner,
                padded_len: padded_len(len, mtu),
            });
            kp.send_counter += 1;
            p.tx_bytes += u64::from(msg.wire_len());
            out.push(Action::Transmit(udp_packet(
                port,
                p.endpoint_src,
                endpoint,
                msg,
            )));
        }
        any_authenticated_packet_traversal(p, now, out);
        p.disarm(TimerKind::SendKeepalive); // any authenticated packet sent
        if data_sent && !p.armed(TimerKind::NewHandshake) {
            // Data sent: expect something back within KEEPALIVE + REKEY.
            let at = now + KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter(rng);
            p.arm(TimerKind::NewHandshake, at, out);
        }
        // keep_key_fresh (send side), whitepaper 6.2.
        let rekey = p.current.as_ref().is_some_and(|k| {
            k.send_counter > REKEY_AFTER_MESSAGES
                || (k.initiator && has_expired(k.birth, REKEY_AFTER_TIME, now))
        });
        if rekey {
            self.send_initiation(id, now, rng, false, out);
        }
    }

    fn handshake_complete(&mut self, id: u32, now: Instant, role: &str, out: &mut Vec<Action>) {
        let iface = self.iface.clone();
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        p.disarm(TimerKind::RetransmitHandshake);
        p.attempts = 0;
        p.sent_lastminute_handshake = false;
        p.last_handshake = Some(now);
        let endpoint = p.endpoint.map_or_else(|| "?".to_owned(), |e| e.to_string());
        out.push(Action::Log(format!(
            "{iface}: handshake complete with {} at {endpoint} ({role})",
            p.name()
        )));
        out.push(Session::up(
            p.name(),
            p.endpoint.map(|e| e.ip()),
            format!("handshake complete ({role})"),
        ));
        p.arm(TimerKind::SessionExpiry, now + REJECT_AFTER_TIME, out);
    }

    fn on_initiation(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        m: &Initiation,
        from: SocketAddr,
        packet: &Packet,
        out: &mut Vec<Action>,
    ) {
        // The worker checked mac1 and the cookie (`pump_handshakes`).
        let Some(&id) = self.by_key.get(&m.sender_static) else {
            out.push(dropped(
                packet,
                format!(
                    "{}: handshake initiation from {from} by unknown public key {}",
                    self.iface, m.sender_static
                ),
            ));
            return;
        };
        let own = self.public_key;
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        p.endpoint = Some(from);
        p.endpoint_src = Some(packet.dst);
        p.rx_bytes += u64::from(MESSAGE_INITIATION_LEN);
        p.disarm(TimerKind::NewHandshake); // any authenticated packet received
        any_authenticated_packet_traversal(p, now, out);
        // Our own pending initiation (if any) is overwritten.
        let old = p.handshake.take();
        if let Some(old) = old {
            self.indices.remove(&old);
        }
        let index = self.alloc_index(rng, id);
        let session = rng.next_u64();
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let kp = Keypair {
            local_index: index,
            remote_index: m.sender_index,
            session,
            birth: now,
            initiator: false,
            send_counter: 0,
        };
        // Responder: the new keypair waits in `next`; `previous` goes.
        let old_next = p.next.replace(kp);
        let old_previous = p.previous.take();
        let reply = Message::HandshakeResponse(Response {
            sender_index: index,
            receiver_index: m.sender_index,
            sender_static: own,
            receiver_static: p.public_key,
            psk: p.psk,
            session,
        });
        p.disarm(TimerKind::SendKeepalive); // any authenticated packet sent
        p.arm(
            TimerKind::ZeroKeyMaterial,
            now + ZERO_KEY_MATERIAL_AFTER,
            out,
        );
        any_authenticated_packet_traversal(p, now, out);
        self.drop_keypair(old_next);
        self.drop_keypair(old_previous);
        self.transmit(id, reply, out);
    }

    fn on_response(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        m: &Response,
        from: SocketAddr,
        packet: &Packet,
        out: &mut Vec<Action>,
    ) {
        let id = self.indices.get(&m.receiver_index).copied();
        let Some((id, p)) = id
            .and_then(|id| self.peers.get_mut(&id).map(|p| (id, p)))
            .filter(|(_, p)| p.handshake == Some(m.receiver_index))
        else {
            out.push(dropped(
                packet,
                format!(
                    "{}: handshake response from {from} matches no pending initiation",
                    self.iface
                ),
            ));
            return;
        };
        if m.receiver_static != self.public_key || m.sender_static != p.public_key {
            out.push(dropped(
                packet,
                format!(
                    "{}: handshake response from {from} does not authenticate as {}",
                    self.iface,
                    p.name()
                ),
            ));
            return;
        }
        if m.psk != p.psk {
            out.push(dropped(
                packet,
                format!(
                    "{}: handshake response from {from} ({}) does not authenticate: the preshared keys differ",
                    self.iface,
                    p.name()
                ),
            ));
            return;
        }
        p.endpoint = Some(from);
        p.endpoint_src = Some(packet.dst);
        p.rx_bytes += u64::from(MESSAGE_RESPONSE_LEN);
        p.disarm(TimerKind::NewHandshake);
        any_authenticated_packet_traversal(p, now, out);
        p.handshake = None;
        let kp = Keypair {
            local_index: m.receiver_index,
            remote_index: m.sender_index,
            session: m.session,
            birth: now,
            initiator: true,
            send_counter: 0,
        };
        // Initiator (kernel `add_new_keypair`): the new keypair is current.
        let mut dropped = Vec::new();
        if let Some(next) = p.next.take() {
            dropped.push(p.previous.replace(next));
            dropped.push(p.current.take());
        } else {
            let current = p.current.take();
            dropped.push(std::mem::replace(&mut p.previous, current));
        }
        p.current = Some(kp);
        p.arm(
            TimerKind::ZeroKeyMaterial,
            now + ZERO_KEY_MATERIAL_AFTER,
            out,
        );
        for kp in dropped {
            self.drop_keypair(kp);
        }
        self.handshake_complete(id, now, "initiator", out);
        // Confirm the session at once: staged packets or a keepalive.
        self.send_keepalive(id, now, rng, out);
    }

    fn on_cookie(&mut self, now: Instant, m: &CookieReply, packet: &Packet, out: &mut Vec<Action>) {
        let iface = &self.iface;
        let peer = self
            .indices
            .get(&m.receiver_index)
            .and_then(|id| self.peers.get_mut(id))
            .filter(|p| p.handshake == Some(m.receiver_index));
        match peer {
            Some(p) => {
                p.cookie = Some(now);
                out.push(Action::Log(format!(
                    "{iface}: cookie reply from {} (it is under load); the next initiation carries it",
                    p.name()
                )));
            }
            None => out.push(dropped(
                packet,
                format!("{iface}: cookie reply matches no pending initiation"),
            )),
        }
    }

    fn on_data(
        &mut self,
        now: Instant,
        rng: &mut Rng,
        from: SocketAddr,
        packet: Packet,
        out: &mut Vec<Action>,
    ) {
        let Payload::Udp {
            body: Body::WireGuard(Message::TransportData(m)),
            ..
        } = &packet.payload
        else {
            return;
        };
        let index = m.receiver_index;
        let found = self.indices.get(&index).copied().and_then(|id| {
            let p = self.peers.get(&id)?;
            let slot = [&p.current, &p.previous, &p.next]
                .into_iter()
                .position(|k| k.as_ref().is_some_and(|k| k.local_index == index))?;
            Some((id, slot))
        });
        let Some((id, slot)) = found else {
            out.push(dropped(
                &packet,
                format!(
                    "{}: transport data from {from} for unknown receiver index {index:#010x} (no session)",
                    self.iface
                ),
            ));
            return;
        };
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        let Some(kp) = [&p.current, &p.previous, &p.next][slot].as_ref() else {
            return;
        };
        if kp.session != m.session {
            let reason = format!(
                "{}: transport data from {from} does not decrypt",
                self.iface
            );
            out.push(dropped(&packet, reason));
            return;
        }
        if has_expired(kp.birth, REJECT_AFTER_TIME, now) {
            let reason = format!(
                "{}: transport data from {} after its session expired (REJECT_AFTER_TIME)",
                self.iface,
                p.name()
            );
            out.push(dropped(&packet, reason));
            return;
        }
        p.rx_bytes += u64::from(m.wire_len_of());
        p.endpoint = Some(from);
        p.endpoint_src = Some(packet.dst);
        if slot == 2 {
            // The initiator used the session: the responder confirms it.
            let next = p.next.take();
            let current = std::mem::replace(&mut p.current, next);
            let previous = std::mem::replace(&mut p.previous, current);
            self.drop_keypair(previous);
            self.handshake_complete(id, now, "responder", out);
            self.send_staged(id, now, rng, out);
        }
        // keep_key_fresh (receive side), whitepaper 6.2.
        let rekey = self.peers.get(&id).is_some_and(|p| {
            !p.sent_lastminute_handshake
                && p.current.as_ref().is_some_and(|k| {
                    k.initiator && has_expired(k.birth, REKEY_ON_RECEIVE_AFTER, now)
                })
        });
        if rekey {
            if let Some(p) = self.peers.get_mut(&id) {
                p.sent_lastminute_handshake = true;
            }
            self.send_initiation(id, now, rng, false, out);
        }
        let Some(p) = self.peers.get_mut(&id) else {
            return;
        };
        p.disarm(TimerKind::NewHandshake);
        any_authenticated_packet_traversal(p, now, out);
        let Payload::Udp {
            body: Body::WireGuard(Message::TransportData(m)),
            ..
        } = packet.payload
        else {
            return;
        };
        let Some(inner) = m.inner else {
            return; // keepalive
        };
        // Data received: answer within KEEPALIVE_TIMEOUT (whitepaper 6.5).
        if p.armed(TimerKind::SendKeepalive) {
            p.need_another_keepalive = true;
        } else {
            p.arm(TimerKind::SendKeepalive, now + KEEPALIVE_TIMEOUT, out);
        }
        if self.lookup(inner.src) != Some(id) {
            let name = self.peers.get(&id).map(PeerState::name).unwrap_or_default();
            out.push(Action::Drop {
                reason: format!(
                    "{}: packet from {name} has source {} outside its AllowedIPs",
                    self.iface, inner.src
                ),
                packet: inner,
            });
            return;
        }
        out.push(Action::Deliver(*inner));
    }
}

impl TransportData {
    fn wire_len_of(&self) -> u32 {
        MESSAGE_DATA_HEADER_LEN + self.padded_len + AEAD_TAG_LEN
    }
}

/// Kernel `wg_timers_any_authenticated_packet_traversal`: the persistent
/// keepalive is due `interval` after the last authenticated packet either
/// way.
fn any_authenticated_packet_traversal(p: &mut PeerState, now: Instant, out: &mut Vec<Action>) {
    if p.persistent_keepalive > 0 {
        let at = now + Span::secs(u64::from(p.persistent_keepalive));
        p.arm(TimerKind::PersistentKeepalive, at, out);
    }
}

fn dropped(packet: &Packet, reason: String) -> Action {
    Action::Drop {
        packet: Box::new(packet.clone()),
        reason,
    }
}

fn udp_packet(src_port: u16, src: Option<IpAddr>, to: SocketAddr, msg: Message) -> Packet {
    let unspecified = match to {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let src = src
        .filter(|s| s.is_ipv4() == to.is_ipv4())
        .unwrap_or(unspecified);
    Packet {
        src,
        dst: to.ip(),
        ttl: 64,
        dont_fragment: false,
        payload: Payload::Udp {
            src_port,
            dst_port: to.port(),
            body: Body::WireGuard(msg),
        },
    }
}

/// A deterministic stand-in for the random port the kernel picks when the
/// file has no `ListenPort`: in Linux's ephemeral range 32768–60999.
fn ephemeral_port(key: &PublicKey) -> u16 {
    let b = key.as_bytes();
    32768 + u16::from_be_bytes([b[0], b[1]]) % (60999 - 32768 + 1)
}

fn resolve_endpoint(
    e: &wgquick::Endpoint,
    resolve: &impl Fn(&str) -> Option<IpAddr>,
) -> Result<SocketAddr, String> {
    match &e.host {
        Host::Ip(ip) => Ok(SocketAddr::new(*ip, e.port)),
        Host::Name(name) => resolve(name.as_str())
            .map(|ip| SocketAddr::new(ip, e.port))
            .ok_or_else(|| format!("unable to resolve endpoint {e}: Name or service not known")),
    }
}

impl Model for Device {
    fn send(&mut self, now: Instant, rng: &mut Rng, packet: Packet) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.running {
            let reason = format!("{} is down", self.iface);
            out.push(Action::Drop {
                packet: Box::new(packet),
                reason,
            });
            return out;
        }
        let Some(id) = self.lookup(packet.dst) else {
            let reason = format!("{}: no peer allows {}", self.iface, packet.dst);
            out.push(Action::Drop {
                packet: Box::new(packet),
                reason,
            });
            return out;
        };
        let iface = self.iface.clone();
        let Some(p) = self.peers.get_mut(&id) else {
            return out;
        };
        if p.endpoint.is_none() {
            let reason = format!(
                "{iface}: {} has no endpoint (configured or learnt from it)",
                p.name()
            );
            out.push(Action::Drop {
                packet: Box::new(packet),
                reason,
            });
            return out;
        }
        if p.staged.len() >= MAX_STAGED_PACKETS
            && let Some(Staged::Data(old)) = p.staged.pop_front()
        {
            out.push(Action::Drop {
                packet: old,
                reason: format!(
                    "{iface}: staged queue for {} full while the handshake is pending",
                    p.name()
                ),
            });
        }
        p.staged.push_back(Staged::Data(Box::new(packet)));
        self.send_staged(id, now, rng, &mut out);
        out
    }

    fn receive(&mut self, now: Instant, rng: &mut Rng, packet: Packet) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.running {
            let reason = format!("{} is down", self.iface);
            out.push(dropped(&packet, reason));
            return out;
        }
        let Payload::Udp {
            src_port,
            body: Body::WireGuard(msg),
            ..
        } = &packet.payload
        else {
            let reason = format!("{}: not a WireGuard message", self.iface);
            out.push(dropped(&packet, reason));
            return out;
        };
        let from = SocketAddr::new(packet.src, *src_port);
        match msg {
            Message::HandshakeInitiation(_) | Message::HandshakeResponse(_) => {
                if self.handshake_queue.len() >= MAX_QUEUED_INCOMING_HANDSHAKES {
                    let reason = format!(
                        "{}: handshake queue full ({MAX_QUEUED_INCOMING_HANDSHAKES} messages)",
                        self.iface
                    );
                    out.push(dropped(&packet, reason));
                    return out;
                }
                self.handshake_queue.push_back(packet);
                self.pump_handshakes(now, &mut out);
            }
            Message::CookieReply(m) => {
                let m = m.clone();
                self.on_cookie(now, &m, &packet, &mut out);
            }
            Message::TransportData(_) => self.on_data(now, rng, from, packet, &mut out),
        }
        out
    }

    fn on_timer(&mut self, now: Instant, rng: &mut Rng, token: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.running {
            return out;
        }
        if token == HANDSHAKE_WORKER_TOKEN {
            if self.worker_busy {
                self.handshake_processed(now, rng, &mut out);
            }
            return out;
        }
        let Some((id, kind)) = decode_token(token) else {
            return out;
        };
        let iface = self.iface.clone();
        let Some(p) = self.peers.get_mut(&id) else {
            return out;
        };
        p.requested[kind as usize] = None;
        match p.timers[kind as usize] {
            Some(at) if at <= now => p.timers[kind as usize] = None,
            Some(at) => {
                // Moved later since: wake up then.
                p.requested[kind as usize] = Some(at);
                out.push(Action::Timer { at, token });
                return out;
            }
            None => return out, // cancelled since
        }
        match kind {
            TimerKind::RetransmitHandshake => {
                if p.attempts > MAX_TIMER_HANDSHAKES {
                    let reason = format!(
                        "{iface}: handshake with {} did not complete after {} attempts, giving up",
                        p.name(),
                        MAX_TIMER_HANDSHAKES + 2
                    );
                    out.push(Action::Log(reason.clone()));
                    p.disarm(TimerKind::SendKeepalive);
                    for item in std::mem::take(&mut p.staged) {
                        if let Staged::Data(packet) = item {
                            out.push(Action::Drop {
                                packet,
                                reason: reason.clone(),
                            });
                        }
                    }
                    if !p.armed(TimerKind::ZeroKeyMaterial) {
                        p.arm(
                            TimerKind::ZeroKeyMaterial,
                            now + ZERO_KEY_MATERIAL_AFTER,
                            &mut out,
                        );
                    }
                } else {
                    p.attempts += 1;
                    out.push(Action::Log(format!(
                        "{iface}: handshake with {} did not complete after {} seconds, retrying (try {})",
                        p.name(),
                        REKEY_TIMEOUT.0 / 1_000_000_000,
                        p.attempts + 1
                    )));
                    self.send_initiation(id, now, rng, true, &mut out);
                }
            }
            TimerKind::SendKeepalive => {
                let again = std::mem::take(&mut p.need_another_keepalive);
                self.send_keepalive(id, now, rng, &mut out);
                if again && let Some(p) = self.peers.get_mut(&id) {
                    p.arm(TimerKind::SendKeepalive, now + KEEPALIVE_TIMEOUT, &mut out);
                }
            }
            TimerKind::NewHandshake => {
                out.push(Action::Log(format!(
                    "{iface}: nothing from {} for {} seconds after sending data, starting a new handshake",
                    p.name(),
                    (KEEPALIVE_TIMEOUT.0 + REKEY_TIMEOUT.0) / 1_000_000_000
                )));
                self.send_initiation(id, now, rng, false, &mut out);
            }
            TimerKind::ZeroKeyMaterial => {
                let had = p.current.is_some()
                    || p.next.is_some()
                    || p.previous.is_some()
                    || p.handshake.is_some();
                let indices = p.indices();
                p.previous = None;
                p.current = None;
                p.next = None;
                p.handshake = None;
                if had {
                    out.push(Action::Log(format!(
                        "{iface}: no new session with {} for 540 seconds (3 x REJECT_AFTER_TIME): keys zeroed",
                        p.name()
                    )));
                }
                for index in indices {
                    self.indices.remove(&index);
                }
            }
            TimerKind::PersistentKeepalive => {
                if p.persistent_keepalive > 0 {
                    self.send_keepalive(id, now, rng, &mut out);
                }
            }
            TimerKind::SessionExpiry => {
                if p.current
                    .as_ref()
                    .is_some_and(|k| now.since(k.birth) >= REJECT_AFTER_TIME)
                {
                    out.push(Action::Log(format!(
                        "{iface}: session with {} expired (REJECT_AFTER_TIME 180 s); the next packet needs a new handshake",
                        p.name()
                    )));
                    out.push(Session::down(
                        p.name(),
                        p.endpoint.map(|e| e.ip()),
                        "REJECT_AFTER_TIME",
                    ));
                }
            }
        }
        out
    }

    /// `wg-quick up` at boot or after a restart: no session survives; the
    /// endpoints are the configured ones; peers with persistent keepalive
    /// send one at once, which starts their handshakes.
    fn start(&mut self, now: Instant, rng: &mut Rng) -> Vec<Action> {
        let mut out = self.sessions_ended("interface restarted");
        self.stop();
        self.running = true;
        let ids: Vec<u32> = self.peers.keys().copied().collect();
        for id in ids {
            let keepalive = self
                .peers
                .get(&id)
                .is_some_and(|p| p.persistent_keepalive > 0);
            if keepalive {
                self.send_keepalive(id, now, rng, &mut out);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use vpnsim_keys::KeySource;
    use vpnsim_render::format::Format;
    use vpnsim_render::hosts::{Options, generate};

    use super::*;
    use crate::packet::Icmp;

    // -- the wireguard-star scenario's files ---------------------------------

    const NODE1: &str = "203.0.113.1";
    const NODE2: &str = "178.128.169.93";
    const NODE3: &str = "104.248.130.240";
    const OFFICE_NAT: &str = "198.51.100.44";

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn sock(text: &str) -> SocketAddr {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    fn cidr(text: &str) -> IpNet {
        text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
    }

    /// Every host's wg0.conf of the shipped wireguard-star, as `sim gen
    /// --demo-keys` writes them, parsed back.
    fn star_confs() -> &'static BTreeMap<String, WgQuickConf> {
        static CONFS: OnceLock<BTreeMap<String, WgQuickConf>> = OnceLock::new();
        CONFS.get_or_init(|| {
            let path =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/wireguard-star.toml");
            let scenario = vpnsim_topology::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
            let planned = vpnsim_plan::plan(&scenario);
            let keys = KeySource::demo(scenario.topology.seed);
            let files = generate(&scenario, &planned.plan, &keys, &Options::default())
                .unwrap_or_else(|e| panic!("{e:?}"));
            files
                .files()
                .filter(|f| f.path == "etc/wireguard/wg0.conf")
                .map(|f| {
                    let conf = WgQuickConf::parse(&f.contents)
                        .unwrap_or_else(|e| panic!("{}: {e}", f.host));
                    (f.host.clone(), conf)
                })
                .collect()
        })
    }

    fn conf(host: &str) -> WgQuickConf {
        star_confs()
            .get(host)
            .cloned()
            .unwrap_or_else(|| panic!("no wg0.conf for {host}"))
    }

    fn resolver(name: &str) -> Option<IpAddr> {
        (name == "node3.example.com").then(|| ip(NODE3))
    }

    fn device(conf: &WgQuickConf) -> Device {
        Device::from_conf(conf, "wg0", resolver).unwrap_or_else(|e| panic!("{e}"))
    }

    fn ping(src: &str, dst: &str, seq: u16) -> Packet {
        Packet {
            src: ip(src),
            dst: ip(dst),
            ttl: 64,
            dont_fragment: true,
            payload: Payload::Icmp(Icmp::EchoRequest {
                id: 1,
                seq,
                len: 56,
            }),
        }
    }

    fn wg_message(packet: &Packet) -> Option<&Message> {
        match &packet.payload {
            Payload::Udp {
                body: Body::WireGuard(m),
                ..
            } => Some(m),
            _ => None,
        }
    }

    // -- a hand-driven network: the engine's job, done simply ---------------

    struct Node {
        dev: Device,
        /// The address the node's datagrams come from and reach it at.
        addr: IpAddr,
        down: bool,
        timers: BTreeMap<u64, Instant>,
        /// Timer actions the device asked for.
        timer_requests: usize,
        sent: Vec<(Instant, Packet)>,
        delivered: Vec<(Instant, Packet)>,
        drops: Vec<(Instant, String)>,
        logs: Vec<(Instant, String)>,
        sessions: Vec<(Instant, Session)>,
    }

    impl Node {
        fn sent_kinds(&self) -> Vec<(Instant, &'static str, u32)> {
            self.sent
                .iter()
                .filter_map(|(t, p)| wg_message(p).map(|m| (*t, m.kind(), m.wire_len())))
                .collect()
        }
        fn sent_of(&self, kind: &str) -> Vec<Instant> {
            self.sent_kinds()
                .into_iter()
                .filter(|(_, k, _)| *k == kind)
                .map(|(t, _, _)| t)
                .collect()
        }
        fn logged(&self, text: &str) -> Vec<Instant> {
            self.logs
                .iter()
                .filter(|(_, l)| l.contains(text))
                .map(|(t, _)| *t)
                .collect()
        }
        fn dropped(&self, text: &str) -> bool {
            self.drops.iter().any(|(_, r)| r.contains(text))
        }
    }

    struct Net {
        nodes: Vec<Node>,
        now: Instant,
        rng: Rng,
        latency: Span,
        wire: Vec<(Instant, u64, usize, Packet)>,
        seq: u64,
        /// Nodes cut off from the network (both ways).
        cut: BTreeSet<usize>,
    }

    impl Net {
        fn new(nodes: Vec<(Device, &str)>) -> Net {
            Net {
                nodes: nodes
                    .into_iter()
                    .map(|(dev, addr)| Node {
                        dev,
                        addr: ip(addr),
                        down: true,
                        timers: BTreeMap::new(),
                        timer_requests: 0,
                        sent: Vec::new(),
                        delivered: Vec::new(),
                        drops: Vec::new(),
                        logs: Vec::new(),
                        sessions: Vec::new(),
                    })
                    .collect(),
                now: Instant::START,
                rng: Rng::new(42),
                latency: Span::millis(30),
                wire: Vec::new(),
                seq: 0,
                cut: BTreeSet::new(),
            }
        }

        fn apply(&mut self, i: usize, actions: Vec<Action>) {
            for action in actions {
                match action {
                    Action::Transmit(mut p) => {
                        assert!(
                            p.src.is_unspecified() || p.src == self.nodes[i].addr,
                            "the engine picks the source, or it is where the peer's datagrams came to"
                        );
                        p.src = self.nodes[i].addr;
                        self.nodes[i].sent.push((self.now, p.clone()));
                        let to = self.nodes.iter().position(|n| n.addr == p.dst);
                        if let Some(j) = to
                            && !self.cut.contains(&i)
                            && !self.cut.contains(&j)
                        {
                            self.seq += 1;
                            self.wire.push((self.now + self.latency, self.seq, j, p));
                        }
                    }
                    Action::Deliver(p) => self.nodes[i].delivered.push((self.now, p)),
                    Action::Timer { at, token } => {
                        assert!(at >= self.now);
                        self.nodes[i].timers.insert(token, at);
                        self.nodes[i].timer_requests += 1;
                    }
                    Action::Drop { reason, .. } => self.nodes[i].drops.push((self.now, reason)),
                    Action::Log(text) => self.nodes[i].logs.push((self.now, text)),
                    Action::Session(s) => self.nodes[i].sessions.push((self.now, s)),
                    Action::LinkState { .. } | Action::TransmitOn { .. } => {}
                }
            }
        }

        fn start(&mut self, i: usize) {
            self.nodes[i].down = false;
            self.nodes[i].timers.clear();
            let actions = self.nodes[i].dev.start(self.now, &mut self.rng);
            self.apply(i, actions);
        }

        fn crash(&mut self, i: usize) {
            self.nodes[i].down = true;
            self.nodes[i].dev.stop();
            self.nodes[i].timers.clear();
            self.cut.insert(i);
        }

        fn send(&mut self, i: usize, packet: Packet) {
            let actions = self.nodes[i].dev.send(self.now, &mut self.rng, packet);
            self.apply(i, actions);
        }

        fn receive(&mut self, i: usize, packet: Packet) {
            let actions = self.nodes[i].dev.receive(self.now, &mut self.rng, packet);
            self.apply(i, actions);
        }

        fn run_until(&mut self, end: Instant) {
            loop {
                let arrival = self
                    .wire
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, (at, seq, _, _))| (*at, *seq))
                    .map(|(k, (at, _, _, _))| (*at, k));
                let timer = self
                    .nodes
                    .iter()
                    .enumerate()
                    .flat_map(|(i, n)| n.timers.iter().map(move |(t, at)| (*at, i, *t)))
                    .min();
                match (arrival, timer) {
                    (Some((at, k)), t) if at <= end && t.is_none_or(|(tat, _, _)| at <= tat) => {
                        let (_, _, j, p) = self.wire.remove(k);
                        self.now = at;
                        if !self.nodes[j].down {
                            self.receive(j, p);
                        }
                    }
                    (_, Some((at, i, token))) if at <= end => {
                        self.nodes[i].timers.remove(&token);
                        self.now = at;
                        if !self.nodes[i].down {
                            let actions = self.nodes[i].dev.on_timer(at, &mut self.rng, token);
                            self.apply(i, actions);
                        }
                    }
                    _ => break,
                }
            }
            self.now = end;
        }

        fn run_for(&mut self, span: Span) {
            let end = self.now + span;
            self.run_until(end);
        }
    }

    fn at(secs: f64) -> Instant {
        Instant((secs * 1e9) as u64)
    }

    /// The CPU time of one handshake: the responder's and the initiator's.
    const CPU: Span = Span(INITIATION_CPU.0 + RESPONSE_CPU.0);

    fn star(hosts: &[&str], edit: impl Fn(&str, &mut WgQuickConf)) -> Net {
        let nodes = hosts
            .iter()
            .map(|h| {
                let mut c = conf(h);
                edit(h, &mut c);
                let addr = match *h {
                    "node1" => NODE1,
                    "node2" => NODE2,
                    "node3" => NODE3,
                    _ => OFFICE_NAT,
                };
                (device(&c), addr)
            })
            .collect();
        Net::new(nodes)
    }

    fn no_keepalive(_: &str, c: &mut WgQuickConf) {
        for p in &mut c.peers {
            p.persistent_keepalive = None;
        }
    }

    // -- numbers -------------------------------------------------------------

    #[test]
    fn message_sizes_follow_the_whitepaper() {
        let key = PublicKey::from_bytes([1; 32]);
        let init = Message::HandshakeInitiation(Initiation {
            sender_index: 1,
            sender_static: key,
            receiver_static: key,
            has_cookie: false,
        });
        let resp = Message::HandshakeResponse(Response {
            sender_index: 2,
            receiver_index: 1,
            sender_static: key,
            receiver_static: key,
            psk: PskId::of(None),
            session: 7,
        });
        let cookie = Message::CookieReply(CookieReply { receiver_index: 1 });
        let data = |inner: Option<Packet>| {
            let len = inner.as_ref().map_or(0, Packet::wire_len);
            Message::TransportData(TransportData {
                receiver_index: 2,
                counter: 0,
                session: 7,
                inner: inner.map(Box::new),
                padded_len: padded_len(len, DEFAULT_MTU),
            })
        };
        assert_eq!(init.wire_len(), 148);
        assert_eq!(resp.wire_len(), 92);
        assert_eq!(cookie.wire_len(), 64);
        assert_eq!(data(None).wire_len(), 32);
        assert_eq!(data(None).kind(), "keepalive");
        // An 84-byte ping pads to 96: 16 + 96 + 16.
        assert_eq!(data(Some(ping("10.5.4.1", "10.5.4.2", 1))).wire_len(), 128);
        // On the underlay: IPv4 20 + UDP 8 + message.
        let packet = udp_packet(55820, None, sock("203.0.113.1:55820"), init);
        assert_eq!(packet.wire_len(), 176);
        assert!(packet.src.is_unspecified() && !packet.dont_fragment);
    }

    #[test]
    fn padding_is_to_sixteen_but_never_beyond_the_mtu() {
        assert_eq!(padded_len(0, 1420), 0);
        assert_eq!(padded_len(1, 1420), 16);
        assert_eq!(padded_len(16, 1420), 16);
        assert_eq!(padded_len(17, 1420), 32);
        assert_eq!(padded_len(1415, 1420), 1420);
        assert_eq!(padded_len(1420, 1420), 1420);
        // A full-size packet on the default MTU: 1420 + 32 = 1452, plus
        // UDP 8 and IPv4 20 = 1480 <= 1500.
        assert_eq!(
            MESSAGE_DATA_HEADER_LEN + padded_len(1420, 1420) + AEAD_TAG_LEN + 28,
            1480
        );
    }

    #[test]
    fn timer_constants_are_the_whitepapers() {
        assert_eq!(REKEY_AFTER_TIME, Span::secs(120));
        assert_eq!(REJECT_AFTER_TIME, Span::secs(180));
        assert_eq!(REKEY_ATTEMPT_TIME, Span::secs(90));
        assert_eq!(REKEY_TIMEOUT, Span::secs(5));
        assert_eq!(KEEPALIVE_TIMEOUT, Span::secs(10));
        assert_eq!(REKEY_AFTER_MESSAGES, 1u64 << 60);
        assert_eq!(
            u128::from(REJECT_AFTER_MESSAGES),
            (1u128 << 64) - (1 << 13) - 1
        );
        assert_eq!(
            u64::from(MAX_TIMER_HANDSHAKES),
            REKEY_ATTEMPT_TIME.0 / REKEY_TIMEOUT.0
        );
        assert_eq!(ZERO_KEY_MATERIAL_AFTER, Span::secs(540));
        assert_eq!(REKEY_ON_RECEIVE_AFTER, Span::secs(165));
    }

    #[test]
    fn public_keys_are_derived_as_wg_pubkey_does() {
        let hub = conf("node1");
        let worker = conf("node2");
        // node2's file names the hub by the key node1's private key gives.
        assert_eq!(
            public_key_of(&hub.interface.private_key),
            worker.peers[0].public_key
        );
        assert_eq!(device(&hub).public_key(), worker.peers[0].public_key);
        assert_eq!(device(&worker).public_key(), hub.peers[0].public_key);
    }

    #[test]
    fn psk_ids_identify_without_revealing() {
        let a = SecretKey::from_bytes([3; 32]);
        let b = SecretKey::from_bytes([4; 32]);
        // Keys that differ only in bits X25519 clamps away still differ.
        let mut c = [3u8; 32];
        c[0] ^= 0b111;
        c[31] ^= 0b1100_0000;
        let c = SecretKey::from_bytes(c);
        assert_eq!(PskId::of(Some(&a)), PskId::of(Some(&a.clone())));
        assert_ne!(PskId::of(Some(&a)), PskId::of(Some(&b)));
        assert_ne!(PskId::of(Some(&a)), PskId::of(Some(&c)));
        assert_ne!(PskId::of(Some(&a)), PskId::of(None));
        // No PSK is the all-zero PSK.
        assert_eq!(
            PskId::of(Some(&SecretKey::from_bytes([0; 32]))),
            PskId::of(None)
        );
        assert_ne!(PskId::of(Some(&a)).0, a.as_bytes()[..8]);
    }

    #[test]
    fn from_conf_reads_the_file_and_needs_names_resolved() {
        let hub = conf("node1");
        let dev = device(&hub);
        assert_eq!(dev.listen_port(), 55820);
        assert_eq!(dev.addresses(), &[cidr("10.5.4.1/24")]);
        assert_eq!(dev.mtu(), 1420);
        let peers = dev.peers();
        assert_eq!(peers.len(), 3);
        assert_eq!(peers[0].endpoint, Some(sock("178.128.169.93:55820")));
        assert_eq!(peers[1].endpoint, Some(sock("104.248.130.240:55820")));
        assert_eq!(peers[2].endpoint, None);
        assert_eq!(peers[2].allowed_ips, vec![cidr("10.5.4.4/32")]);
        let err = Device::from_conf(&hub, "wg0", |_| None)
            .err()
            .unwrap_or_default();
        assert!(
            err.contains("unable to resolve endpoint node3.example.com:55820"),
            "{err}"
        );
        // Without ListenPort: a fixed port in the ephemeral range.
        let mut c = conf("node4");
        c.interface.listen_port = None;
        let port = device(&c).listen_port();
        assert!((32768..=60999).contains(&port));
        assert_eq!(device(&c).listen_port(), port);
    }

    #[test]
    fn debug_never_shows_secrets() {
        let mut c = conf("node2");
        c.peers[0].preshared_key = Some(SecretKey::from_bytes([9; 32]));
        let text = format!("{:?}", device(&c));
        assert!(!text.contains(&c.interface.private_key.to_base64()));
        assert!(!text.contains(&SecretKey::from_bytes([9; 32]).to_base64()));
        assert!(text.contains("redacted"));
    }

    // -- handshake -----------------------------------------------------------

    #[test]
    fn the_star_files_complete_a_handshake_and_carry_pings() {
        let mut net = star(&["node1", "node2"], |_, _| {});
        net.start(0);
        net.start(1);
        // node2 has PersistentKeepalive: wg-quick up sends a keepalive at
        // once, which needs a session: an initiation to the hub.
        let first = &net.nodes[1].sent[0].1;
        assert_eq!(first.dst, ip(NODE1));
        assert_eq!(first.ports(), (17, 55820, 55820));
        assert!(matches!(
            wg_message(first),
            Some(Message::HandshakeInitiation(_))
        ));
        assert!(net.nodes[0].sent.is_empty(), "the hub has no keepalive");
        net.run_until(at(1.0));
        assert_eq!(
            net.nodes[1].sent_kinds(),
            vec![
                (at(0.0), "handshake initiation", 148),
                (at(0.06) + CPU, "keepalive", 32)
            ]
        );
        // The hub spends INITIATION_CPU on the initiation, node2
        // RESPONSE_CPU on the response.
        assert_eq!(
            net.nodes[0].sent_kinds(),
            vec![(at(0.03) + INITIATION_CPU, "handshake response", 92)]
        );
        assert_eq!(net.nodes[1].logged("handshake complete").len(), 1);
        assert_eq!(
            net.nodes[0].logged("handshake complete"),
            vec![at(0.09) + CPU]
        );
        assert!(
            net.nodes[0].logs[0]
                .1
                .contains("178.128.169.93:55820 (responder)")
        );

        net.send(0, ping("10.5.4.1", "10.5.4.2", 1));
        net.send(1, ping("10.5.4.2", "10.5.4.1", 2));
        net.run_for(Span::secs(1));
        assert_eq!(net.nodes[1].delivered.len(), 1);
        assert_eq!(net.nodes[1].delivered[0].1, ping("10.5.4.1", "10.5.4.2", 1));
        assert_eq!(net.nodes[0].delivered[0].1, ping("10.5.4.2", "10.5.4.1", 2));
        assert!(net.nodes.iter().all(|n| n.drops.is_empty()));
        let info = &net.nodes[0].dev.peers()[0];
        assert_eq!(info.latest_handshake, Some(at(0.09) + CPU));
        assert_eq!(info.rx_bytes, 148 + 32 + 128);
        assert_eq!(info.tx_bytes, 92 + 128);
    }

    #[test]
    fn a_wrong_public_key_fails_the_handshake() {
        // node2 believes the hub has node3's key.
        let mut net = star(&["node1", "node2"], |h, c| {
            if h == "node2" {
                c.peers[0].public_key = conf("node1").peers[1].public_key;
            }
        });
        net.start(0);
        net.start(1);
        net.run_until(at(12.0));
        assert!(net.nodes[0].dropped("does not decrypt: made for public key"));
        assert!(net.nodes[0].sent.is_empty());
        assert!(net.nodes[1].logged("handshake complete").is_empty());
        assert_eq!(net.nodes[1].sent_of("handshake initiation").len(), 3);

        // The hub does not know node2's key.
        let mut net = star(&["node1", "node2"], |h, c| {
            if h == "node1" {
                c.peers.remove(0);
            }
        });
        net.start(0);
        net.start(1);
        net.run_until(at(1.0));
        assert!(net.nodes[0].dropped("by unknown public key"));
        assert!(net.nodes[1].logged("handshake complete").is_empty());
    }

    #[test]
    fn preshared_keys_must_match_and_the_initiator_notices() {
        let psk = |byte| Some(SecretKey::from_bytes([byte; 32]));
        let mut net = star(&["node1", "node2"], |h, c| {
            c.peers[0].preshared_key = if h == "node1" { psk(1) } else { psk(2) };
        });
        net.start(0);
        net.start(1);
        net.run_until(at(1.0));
        // IKpsk2 mixes the PSK in after the responder's ephemeral: the hub
        // answers, node2 cannot authenticate the answer.
        assert_eq!(net.nodes[0].sent_of("handshake response").len(), 1);
        assert!(net.nodes[1].dropped("the preshared keys differ"));
        assert!(net.nodes[1].logged("handshake complete").is_empty());

        let mut net = star(&["node1", "node2"], |_, c| {
            c.peers[0].preshared_key = psk(5)
        });
        net.start(0);
        net.start(1);
        net.run_until(at(1.0));
        assert_eq!(net.nodes[1].logged("handshake complete").len(), 1);
        assert_eq!(net.nodes[0].logged("handshake complete").len(), 1);
    }

    #[test]
    fn initiations_are_retried_after_rekey_timeout_plus_jitter_then_given_up() {
        let mut net = star(&["node1", "node2"], no_keepalive);
        net.cut.insert(1); // node2 unreachable
        net.start(0);
        net.send(0, ping("10.5.4.1", "10.5.4.2", 1));
        net.run_until(at(300.0));
        let tries = net.nodes[0].sent_of("handshake initiation");
        // Kernel counting: the first and MAX_TIMER_HANDSHAKES + 1 retries.
        assert_eq!(tries.len(), 20, "{tries:?}");
        assert_eq!(tries[0], at(0.0));
        for pair in tries.windows(2) {
            let gap = pair[1].since(pair[0]);
            assert!(
                gap >= REKEY_TIMEOUT && gap < REKEY_TIMEOUT + REKEY_TIMEOUT_JITTER_MAX,
                "{gap}"
            );
        }
        // Not all the same jitter.
        let gaps: BTreeSet<Span> = tries.windows(2).map(|p| p[1].since(p[0])).collect();
        assert!(gaps.len() > 10);
        let gave_up = net.nodes[0].logged("did not complete after 20 attempts, giving up");
        assert_eq!(gave_up.len(), 1);
        assert!(gave_up[0] > tries[19] && gave_up[0].since(tries[0]) > REKEY_ATTEMPT_TIME);
        assert!(
            net.nodes[0].dropped("giving up"),
            "the staged ping is dropped"
        );
        assert_eq!(net.nodes[0].logged("retrying (try 2)").len(), 1);
        // New traffic starts over.
        net.send(0, ping("10.5.4.1", "10.5.4.2", 2));
        assert_eq!(net.nodes[0].sent_of("handshake initiation").len(), 21);
    }

    #[test]
    fn packets_wait_for_the_handshake_and_leave_after_it() {
        let mut net = star(&["node1", "node2"], no_keepalive);
        net.start(0);
        net.start(1);
        for seq in 0..3 {
            net.send(0, ping("10.5.4.1", "10.5.4.2", seq));
        }
        assert_eq!(
            net.nodes[0].sent_of("handshake initiation").len(),
            1,
            "one initiation"
        );
        net.run_until(at(1.0));
        let seqs: Vec<u16> = net.nodes[1]
            .delivered
            .iter()
            .filter_map(|(_, p)| match p.payload {
                Payload::Icmp(Icmp::EchoRequest { seq, .. }) => Some(seq),
                _ => None,
            })
            .collect();
        assert_eq!(seqs, vec![0, 1, 2]);
        assert!(
            net.nodes[0].sent_of("keepalive").is_empty(),
            "data confirmed the session"
        );
        // The queue holds MAX_STAGED_PACKETS; the oldest go first.
        let mut net = star(&["node1", "node2"], no_keepalive);
        net.cut.insert(1);
        net.start(0);
        for seq in 0..130 {
            net.send(0, ping("10.5.4.1", "10.5.4.2", seq));
        }
        assert_eq!(net.nodes[0].drops.len(), 2);
        assert!(net.nodes[0].dropped("staged queue"));
    }

    #[test]
    fn the_initiator_rekeys_after_rekey_after_time_on_send() {
        let mut net = star(&["node1", "node2"], no_keepalive);
        net.start(0);
        net.start(1);
        net.send(0, ping("10.5.4.1", "10.5.4.2", 0)); // node1 initiates
        net.run_until(at(119.0));
        net.send(0, ping("10.5.4.1", "10.5.4.2", 1));
        // The responder never rekeys on time.
        net.send(1, ping("10.5.4.2", "10.5.4.1", 1));
        net.run_until(at(120.5));
        assert_eq!(net.nodes[0].sent_of("handshake initiation"), vec![at(0.0)]);
        net.send(1, ping("10.5.4.2", "10.5.4.1", 2));
        assert!(net.nodes[1].sent_of("handshake initiation").is_empty());
        net.send(0, ping("10.5.4.1", "10.5.4.2", 2));
        // The packet still leaves on the old session, then the initiation.
        let kinds = net.nodes[0].sent_kinds();
        let n = kinds.len();
        assert_eq!(kinds[n - 2].1, "transport data");
        assert_eq!(kinds[n - 1], (at(120.5), "handshake initiation", 148));
        net.run_for(Span::secs(1));
        assert_eq!(net.nodes[0].logged("handshake complete").len(), 2);
        assert_eq!(net.nodes[1].delivered.len(), 3);
        assert_eq!(net.nodes[0].delivered.len(), 2);
    }

    #[test]
    fn sessions_are_rejected_after_reject_after_time() {
        let mut net = star(&["node1", "node2"], no_keepalive);
        net.start(0);
        net.start(1);
        net.send(0, ping("10.5.4.1", "10.5.4.2", 0));
        net.run_until(at(1.0));
        let old = net.nodes[0]
            .sent
            .iter()
            .find(|(_, p)| wg_message(p).is_some_and(|m| m.kind() == "transport data"))
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no data sent"));
        // The same datagram is accepted within the session's life...
        net.now = at(170.0);
        net.receive(1, old.clone());
        assert_eq!(net.nodes[1].delivered.len(), 2);
        net.run_until(at(181.0));
        // ...and the session's end is logged on both sides.
        assert_eq!(net.nodes[0].logged("expired (REJECT_AFTER_TIME").len(), 1);
        assert_eq!(net.nodes[1].logged("expired (REJECT_AFTER_TIME").len(), 1);
        // Each side reports the session from its handshake to 180 s after.
        for n in &net.nodes {
            let [(up_at, up), (down_at, down)] = n.sessions.as_slice() else {
                panic!("one session up and down: {:?}", n.sessions);
            };
            assert!(
                up.up && !down.up && up.peer == down.peer,
                "{:?}",
                n.sessions
            );
            assert_eq!(down_at.since(*up_at), REJECT_AFTER_TIME);
            assert_eq!(down.why, "REJECT_AFTER_TIME");
        }
        net.receive(1, old);
        assert!(net.nodes[1].dropped("after its session expired"));
        assert_eq!(net.nodes[1].delivered.len(), 2);
        // Sending needs a new handshake: the responder initiates one now.
        net.send(1, ping("10.5.4.2", "10.5.4.1", 9));
        assert_eq!(
            net.nodes[1].sent_of("handshake initiation"),
            vec![at(181.0)]
        );
        net.run_for(Span::secs(1));
        assert!(
            net.nodes[0]
                .delivered
                .iter()
                .any(|(_, p)| p.src == ip("10.5.4.2"))
        );
    }

    #[test]
    fn persistent_keepalive_every_25_seconds() {
        let mut net = star(&["node1", "node2"], |_, _| {});
        net.start(0);
        net.start(1);
        net.run_until(at(100.0));
        let keepalives = net.nodes[1].sent_of("keepalive");
        assert_eq!(keepalives, [0.06, 25.06, 50.06, 75.06].map(|t| at(t) + CPU));
        // They keep the hub's session alive without the hub sending.
        assert_eq!(net.nodes[0].sent_kinds().len(), 1);
        assert!(net.nodes[0].drops.is_empty());
    }

    #[test]
    fn moving_a_timer_later_asks_the_engine_for_nothing_and_keepalives_stay_on_time() {
        let mut net = star(&["node1", "node2"], |_, _| {});
        net.start(0);
        net.start(1);
        net.run_until(at(1.0));
        let before = net.nodes[1].timer_requests;
        // A ping a second for a minute: every packet pushes the persistent
        // keepalive 25 s later.
        for i in 0..60u16 {
            net.run_until(at(1.0 + f64::from(i)));
            net.send(1, ping("10.5.4.2", "10.5.4.1", i));
        }
        net.run_until(at(120.0));
        let asked = net.nodes[1].timer_requests - before;
        assert!(
            asked < 30,
            "{asked} timer requests for 60 pings and their replies"
        );
        // The persistent keepalive still goes 25 s after the last
        // authenticated packet either way: the hub's passive keepalive,
        // 10 s after the last ping, arriving 30 ms after it left.
        let hub_last = net.nodes[0].sent_of("keepalive").last().copied();
        let late: Vec<Instant> = net.nodes[1]
            .sent_of("keepalive")
            .into_iter()
            .filter(|t| *t > at(61.0))
            .collect();
        let expected = hub_last.map(|h| h + Span::millis(30) + Span::secs(25));
        assert_eq!(
            late.first().copied(),
            expected,
            "{late:?} after {hub_last:?}"
        );
    }

    #[test]
    fn passive_keepalive_ten_seconds_after_data() {
        let mut net = star(&["node1", "node2"], no_keepalive);
        net.start(0);
        net.start(1);
        net.send(0, ping("10.5.4.1", "10.5.4.2", 0));
        net.run_until(at(30.0));
        // node2 received data at 0.09 (+ CPU) and had nothing to send back.
        assert_eq!(net.nodes[1].delivered[0].0, at(0.09) + CPU);
        assert_eq!(net.nodes[1].sent_of("keepalive"), vec![at(10.09) + CPU]);
        // The hub got the keepalive: no "stopped hearing back" handshake.
        assert!(net.nodes[0].logged("starting a new handshake").is_empty());
        assert!(net.nodes[0].sent_of("keepalive").is_empty());
    }

    #[test]
    fn a_silent_peer_gets_a_new_handshake_after_keepalive_plus_rekey_timeout() {
        let mut net = star(&["node1", "node2"], no_keepalive);
        net.start(0);
        net.start(1);
        net.send(0, ping("10.5.4.1", "10.5.4.2", 0));
        net.run_until(at(1.0));
        net.crash(1); // silently gone
        net.send(0, ping("10.5.4.1", "10.5.4.2", 1));
        net.run_until(at(20.0));
        let t = net.nodes[0].logged("starting a new handshake");
        assert_eq!(t.len(), 1);
        // Armed when data first left (0.06 s) and not moved by later data.
        let since = t[0].since(at(0.06));
        assert!(
            since >= Span::secs(15) && since < Span::secs(15) + REKEY_TIMEOUT_JITTER_MAX,
            "{since}"
        );
    }

    #[test]
    fn cryptokey_routing_drops_both_ways() {
        let mut net = star(&["node1", "node2"], |_, _| {});
        net.start(0);
        net.start(1);
        net.run_until(at(1.0));
        // Out: no peer allows the destination.
        net.send(1, ping("10.5.4.2", "192.0.2.1", 0));
        assert!(net.nodes[1].dropped("no peer allows 192.0.2.1"));
        // Out: the peer exists but has no endpoint yet (node4).
        net.send(0, ping("10.5.4.1", "10.5.4.4", 0));
        assert!(net.nodes[0].dropped("has no endpoint"));
        // In: node2 may send to 10.5.4.0/24, but the hub allows node2 only
        // 10.5.4.2/32 as a source.
        net.send(1, ping("10.5.4.99", "10.5.4.1", 1));
        net.run_for(Span::secs(1));
        assert!(net.nodes[0].dropped("has source 10.5.4.99 outside its AllowedIPs"));
        assert!(net.nodes[0].delivered.is_empty());
        // A source another peer owns is just as wrong.
        net.send(1, ping("10.5.4.3", "10.5.4.1", 2));
        net.run_for(Span::secs(1));
        assert!(net.nodes[0].dropped("has source 10.5.4.3"));
        net.send(1, ping("10.5.4.2", "10.5.4.1", 3));
        net.run_for(Span::secs(1));
        assert_eq!(net.nodes[0].delivered.len(), 1);
        assert_eq!(
            net.nodes[0].dev.route(ip("10.5.4.3")),
            Some(conf("node1").peers[1].public_key)
        );
    }

    #[test]
    fn endpoints_roam_to_the_source_of_authenticated_packets() {
        // node4 has no endpoint at the hub; it is behind the office NAT.
        let mut net = star(&["node1", "node4"], |_, _| {});
        net.start(0);
        net.send(0, ping("10.5.4.1", "10.5.4.4", 0));
        assert!(net.nodes[0].dropped("has no endpoint"));
        net.start(1);
        net.run_until(at(1.0));
        assert_eq!(
            net.nodes[0].dev.peers()[2].endpoint,
            Some(sock("198.51.100.44:55820"))
        );
        net.send(0, ping("10.5.4.1", "10.5.4.4", 1));
        net.run_for(Span::secs(1));
        assert_eq!(net.nodes[1].delivered.len(), 1);
        // The office gets a new public address: the next keepalive moves
        // the endpoint and the hub follows.
        net.nodes[1].addr = ip("198.51.100.99");
        net.nodes[1].dev.forget_local_sources();
        net.run_until(at(30.0));
        assert_eq!(
            net.nodes[0].dev.peers()[2].endpoint,
            Some(sock("198.51.100.99:55820"))
        );
        net.send(0, ping("10.5.4.1", "10.5.4.4", 2));
        net.run_for(Span::secs(1));
        assert_eq!(net.nodes[1].delivered.len(), 2);
        // A restart goes back to the configured endpoint (none).
        net.crash(0);
        net.cut.remove(&0);
        net.start(0);
        assert_eq!(net.nodes[0].dev.peers()[2].endpoint, None);
    }

    #[test]
    fn restart_clears_sessions_and_the_worker_reconnects() {
        let mut net = star(&["node1", "node2"], |_, _| {});
        net.start(0);
        net.start(1);
        net.run_until(at(10.0));
        net.crash(0);
        net.run_until(at(60.0));
        net.cut.remove(&0);
        net.start(0);
        assert!(net.nodes[0].dev.peers()[0].session_since.is_none());
        // node2's keepalive at 75.06 hits a hub without sessions; it does
        // not hear back and re-handshakes KEEPALIVE + REKEY_TIMEOUT later.
        net.run_until(at(120.0));
        assert!(net.nodes[0].dropped("unknown receiver index"));
        net.send(0, ping("10.5.4.1", "10.5.4.2", 1));
        net.run_for(Span::secs(1));
        assert_eq!(net.nodes[1].delivered.len(), 1);
    }

    #[test]
    fn cookie_replies_under_load() {
        let mut net = star(&["node1", "node2"], |_, _| {});
        net.nodes[0].dev.set_under_load(true);
        net.start(0);
        net.start(1);
        net.run_until(at(1.0));
        assert_eq!(
            net.nodes[0].sent_kinds(),
            vec![(at(0.03), "cookie reply", 64)]
        );
        assert_eq!(net.nodes[1].logged("cookie reply").len(), 1);
        net.run_until(at(7.0));
        // The retry carries the cookie and is answered.
        assert_eq!(net.nodes[1].logged("handshake complete").len(), 1);
    }

    /// A hub with `n` peers (keys from their number) and their keys.
    fn loaded_hub(n: u32) -> (Device, Vec<PublicKey>) {
        let secret = |i: u32| {
            // (bytes 1-4: X25519 clamps the low bits of byte 0)
            let mut b = [7u8; 32];
            b[1..5].copy_from_slice(&i.to_le_bytes());
            SecretKey::from_bytes(b)
        };
        let keys: Vec<PublicKey> = (1..=n).map(|i| public_key_of(&secret(i))).collect();
        let mut interface = wgquick::Interface::new(secret(0));
        interface.listen_port = Some(55820);
        let conf = WgQuickConf {
            header: Vec::new(),
            interface,
            peers: keys.iter().map(|k| wgquick::Peer::new(*k)).collect(),
        };
        let dev = Device::from_conf(&conf, "wg0", |_| None).unwrap_or_else(|e| panic!("{e}"));
        (dev, keys)
    }

    fn initiation(dev: &Device, i: usize, key: PublicKey, has_cookie: bool) -> Packet {
        udp_packet(
            55820,
            None,
            SocketAddr::new(IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i as u32)), 55820),
            Message::HandshakeInitiation(Initiation {
                sender_index: i as u32,
                sender_static: key,
                receiver_static: dev.public_key(),
                has_cookie,
            }),
        )
    }

    /// What the device sends, by kind, running its worker to the end.
    fn drain(
        dev: &mut Device,
        rng: &mut Rng,
        mut acts: Vec<Action>,
    ) -> BTreeMap<&'static str, Vec<Instant>> {
        let mut sent: BTreeMap<&'static str, Vec<Instant>> = BTreeMap::new();
        let mut now = Instant::START;
        loop {
            let mut worker = None;
            for a in acts.drain(..) {
                match a {
                    Action::Transmit(p) => {
                        if let Some(m) = wg_message(&p) {
                            sent.entry(m.kind()).or_default().push(now);
                        }
                    }
                    Action::Timer { at, token } if token == HANDSHAKE_WORKER_TOKEN => {
                        worker = Some(at);
                    }
                    _ => {}
                }
            }
            let Some(at) = worker else { return sent };
            now = at;
            acts = dev.on_timer(now, rng, HANDSHAKE_WORKER_TOKEN);
        }
    }

    #[test]
    fn handshake_queue_numbers_are_the_kernels() {
        assert_eq!(MAX_QUEUED_INCOMING_HANDSHAKES, 4096);
        assert_eq!(UNDER_LOAD_QUEUE_LEN, 512);
        assert_eq!(UNDER_LOAD_AFTER, Span::secs(1));
        // 156,995 cycles at 2.5 GHz.
        assert_eq!(X25519_TIME, Span::nanos(62_798));
        assert_eq!(INITIATION_CPU, Span::nanos(251_192));
        assert_eq!(RESPONSE_CPU, Span::nanos(125_596));
        assert_eq!(
            1_000_000_000 / INITIATION_CPU.0,
            3_981,
            "handshakes a second"
        );
    }

    #[test]
    fn a_burst_of_initiations_builds_the_queue_and_gets_cookie_replies() {
        let mut rng = Rng::new(1);
        let (mut hub, keys) = loaded_hub(600);
        let t0 = Instant::START;
        let mut acts = hub.start(t0, &mut rng);
        for (i, k) in keys.iter().enumerate() {
            let p = initiation(&hub, i, *k, false);
            acts.extend(hub.receive(t0, &mut rng, p));
        }
        assert_eq!(hub.handshake_queue_len(), 600);
        let sent = drain(&mut hub, &mut rng, acts);
        // The first is answered after its CPU time; 599 then wait (>= 512):
        // cookie replies for all of them, at once.
        assert_eq!(sent.get("handshake response").map(Vec::len), Some(1));
        assert_eq!(sent["handshake response"][0], t0 + INITIATION_CPU);
        assert_eq!(sent.get("cookie reply").map(Vec::len), Some(599));
        assert!(
            sent["cookie reply"]
                .iter()
                .all(|t| *t == t0 + INITIATION_CPU)
        );
        // Within a second of that the device is still under load: an
        // initiation without a cookie gets a cookie reply, one with it is
        // answered, CPU time after CPU time.
        let t1 = t0 + Span::millis(900);
        let mut acts = hub.receive(t1, &mut rng, initiation(&hub, 1, keys[1], false));
        for (i, k) in keys.iter().enumerate().skip(2).take(3) {
            acts.extend(hub.receive(t1, &mut rng, initiation(&hub, i, *k, true)));
        }
        let sent = drain(&mut hub, &mut rng, acts);
        assert_eq!(sent.get("cookie reply").map(Vec::len), Some(1));
        let answered: Vec<Span> = sent["handshake response"]
            .iter()
            .map(|t| t.since(t1))
            .collect();
        assert_eq!(answered, [1, 2, 3].map(|k| Span(k * INITIATION_CPU.0)));
        // More than a second after the queue was last 512 long: answered.
        let t2 = t0 + INITIATION_CPU + Span::millis(1001);
        let acts = hub.receive(t2, &mut rng, initiation(&hub, 9, keys[9], false));
        let sent = drain(&mut hub, &mut rng, acts);
        assert!(!sent.contains_key("cookie reply"));
        assert_eq!(sent.get("handshake response").map(Vec::len), Some(1));
    }

    #[test]
    fn a_burst_below_the_threshold_is_only_queued_and_a_full_queue_drops() {
        let mut rng = Rng::new(1);
        let (mut hub, keys) = loaded_hub(512);
        let mut acts = hub.start(Instant::START, &mut rng);
        // 512 at once: after the first is taken, 511 wait: never under load.
        for (i, k) in keys.iter().enumerate() {
            acts.extend(hub.receive(Instant::START, &mut rng, initiation(&hub, i, *k, false)));
        }
        let sent = drain(&mut hub, &mut rng, acts);
        assert!(!sent.contains_key("cookie reply"));
        let responses = &sent["handshake response"];
        assert_eq!(responses.len(), 512);
        assert_eq!(
            responses[511],
            Instant::START + Span(512 * INITIATION_CPU.0)
        );
        // The queue holds 4096 messages; the next is dropped.
        let t = Instant::START + Span::secs(10);
        let mut drops = Vec::new();
        for i in 0..=MAX_QUEUED_INCOMING_HANDSHAKES {
            let k = keys[i % keys.len()];
            for a in hub.receive(t, &mut rng, initiation(&hub, i, k, true)) {
                if let Action::Drop { reason, .. } = a {
                    drops.push(reason);
                }
            }
        }
        assert_eq!(drops, ["wg0: handshake queue full (4096 messages)"]);
    }

    #[test]
    fn set_peer_and_remove_peer_run_the_dead_leader_promotion() {
        let mut net = star(&["node1", "node2", "node3"], |_, _| {});
        for i in 0..3 {
            net.start(i);
        }
        net.run_until(at(60.0));
        let key = |i: usize| net.nodes[i].dev.public_key().to_base64();
        let (k1, k2, k3) = (key(0), key(1), key(2));
        net.crash(0);
        net.run_until(at(180.0));
        net.nodes[1].drops.clear();
        // node3 first, as the script says.
        let now = net.now;
        let mut acts = Vec::new();
        let rng = &mut net.rng;
        let dev3 = &mut net.nodes[2].dev;
        let off = Some(0);
        acts.extend(
            dev3.set_peer(
                now,
                rng,
                &k1,
                Some(vec![cidr("10.5.4.1/32")]),
                Some(sock("203.0.113.1:55820")),
                off,
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        acts.extend(
            dev3.set_peer(
                now,
                rng,
                &k2,
                Some(vec![cidr("10.5.4.2/32")]),
                Some(sock("178.128.169.93:55820")),
                off,
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(
            dev3.route(ip("10.5.4.1")),
            Some(PublicKey::from_base64(&k1).unwrap_or_else(|e| panic!("{e}")))
        );
        assert_eq!(
            dev3.route(ip("10.5.4.2")).map(|k| k.to_base64()),
            Some(k2.clone())
        );
        net.apply(2, acts);
        // node2: the new hub takes 10.5.4.0/24 from the old one, which goes.
        let dev2 = &mut net.nodes[1].dev;
        let acts = dev2
            .set_peer(
                now,
                &mut net.rng,
                &k3,
                Some(vec![cidr("10.5.4.0/24")]),
                Some(sock("104.248.130.240:55820")),
                Some(25),
            )
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            acts.iter().any(|a| matches!(a, Action::Transmit(p) if p.dst == ip(NODE3) && wg_message(p).is_some_and(|m| m.kind() == "handshake initiation"))),
            "turning keepalive on handshakes at once: {acts:?}"
        );
        assert!(
            dev2.peers()[0].allowed_ips.is_empty(),
            "the prefix moved to node3"
        );
        net.apply(1, acts);
        let acts = net.nodes[1]
            .dev
            .remove_peer(now, &k1)
            .unwrap_or_else(|e| panic!("{e}"));
        net.apply(1, acts);
        assert_eq!(net.nodes[1].dev.peers().len(), 1);
        assert!(
            net.nodes[1]
                .dev
                .remove_peer(now, &k1)
                .is_ok_and(|a| a.is_empty())
        );
        assert!(
            net.nodes[1]
                .dev
                .set_peer(now, &mut net.rng, "not a key", None, None, None)
                .is_err()
        );
        net.run_for(Span::secs(1));
        assert_eq!(
            net.nodes[1].logged("handshake complete").last().copied(),
            Some(now + Span::millis(60) + CPU)
        );
        net.send(1, ping("10.5.4.2", "10.5.4.3", 1));
        net.send(2, ping("10.5.4.3", "10.5.4.2", 2));
        net.run_for(Span::secs(1));
        assert_eq!(net.nodes[2].delivered.len(), 1);
        assert_eq!(net.nodes[1].delivered.len(), 1);
        // The removed peer's timers fire into nothing.
        net.run_for(Span::secs(600));
        assert!(net.nodes[1].drops.is_empty(), "{:?}", net.nodes[1].drops);
        // wg-quick save writes the runtime peers.
        let saved = net.nodes[1].dev.saved_conf(&conf("node2"));
        assert_eq!(saved.peers.len(), 1);
        assert_eq!(saved.peers[0].persistent_keepalive, Some(25));
        assert_eq!(
            saved.peers[0].endpoint.as_ref().map(ToString::to_string),
            Some("104.248.130.240:55820".to_owned())
        );
        assert_eq!(saved.interface, conf("node2").interface);
    }

    /// `wg-quick strip` of a member's file with `peers` as its peers.
    fn stripped(host: &str, peers: Vec<wgquick::Peer>) -> WgQuickConf {
        let mut c = conf(host);
        c.interface.addresses.clear();
        c.interface.mtu = None;
        c.peers = peers;
        c
    }

    fn peer_entry(
        key: PublicKey,
        psk: Option<SecretKey>,
        allowed: &str,
        endpoint: Option<&str>,
        keepalive: Option<u16>,
    ) -> wgquick::Peer {
        wgquick::Peer {
            comments: Vec::new(),
            public_key: key,
            preshared_key: psk,
            allowed_ips: vec![cidr(allowed)],
            endpoint: endpoint
                .map(|e| wgquick::Endpoint::parse(e).unwrap_or_else(|err| panic!("{e}: {err}"))),
            persistent_keepalive: keepalive,
        }
    }

    #[test]
    fn syncconf_applies_the_file_exactly_and_keeps_sessions_that_stay() {
        let mut net = star(&["node1", "node2", "node3"], |_, _| {});
        for i in 0..3 {
            net.start(i);
        }
        net.run_until(at(60.0));
        let key = |net: &Net, i: usize| net.nodes[i].dev.public_key();
        let (k1, k2, k3) = (key(&net, 0), key(&net, 1), key(&net, 2));
        let psk = SecretKey::from_bytes([7; 32]);
        let hub_session = net.nodes[2].dev.peers()[0].session_since;
        assert!(hub_session.is_some());
        // node3 becomes the hub: node1 stays (narrower AllowedIPs, session
        // kept), node2 is new, both with a preshared key.
        let file = stripped(
            "node3",
            vec![
                peer_entry(k1, Some(psk.clone()), "10.5.4.1/32", None, None),
                peer_entry(
                    k2,
                    Some(psk.clone()),
                    "10.5.4.2/32",
                    Some("178.128.169.93:55820"),
                    None,
                ),
            ],
        );
        let now = net.now;
        let acts = net.nodes[2]
            .dev
            .sync_conf(now, &mut net.rng, &file, resolver)
            .unwrap_or_else(|e| panic!("{e}"));
        net.apply(2, acts);
        let peers = net.nodes[2].dev.peers();
        assert_eq!(
            peers.iter().map(|p| p.public_key).collect::<Vec<_>>(),
            [k1, k2]
        );
        assert_eq!(peers[0].allowed_ips, [cidr("10.5.4.1/32")]);
        assert_eq!(peers[0].session_since, hub_session, "not disrupted");
        assert!(
            peers
                .iter()
                .all(|p| p.has_preshared_key && p.persistent_keepalive == 0)
        );
        // node2 switches to node3 with the same key: they handshake.
        let file = stripped(
            "node2",
            vec![peer_entry(
                k3,
                Some(psk.clone()),
                "10.5.4.0/24",
                Some("node3.example.com:55820"),
                Some(25),
            )],
        );
        let acts = net.nodes[1]
            .dev
            .sync_conf(now, &mut net.rng, &file, resolver)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            acts.iter()
                .any(|a| matches!(a, Action::Transmit(p) if p.dst == ip(NODE3))),
            "keepalive on: an initiation at once: {acts:?}"
        );
        net.apply(1, acts);
        assert_eq!(net.nodes[1].dev.peers().len(), 1, "node1 removed");
        net.run_for(Span::secs(1));
        assert_eq!(
            net.nodes[1].logged("handshake complete").last().copied(),
            Some(now + Span::millis(60) + CPU)
        );
        net.send(1, ping("10.5.4.2", "10.5.4.3", 1));
        net.run_for(Span::secs(1));
        assert_eq!(net.nodes[2].delivered.len(), 1);
        assert!(net.nodes[1].drops.is_empty(), "{:?}", net.nodes[1].drops);
    }

    #[test]
    fn syncconf_with_another_psk_fails_the_handshake_and_refuses_wg_quick_keys() {
        let mut net = star(&["node1", "node2"], |_, _| {});
        net.start(0);
        net.start(1);
        net.run_until(at(10.0));
        let k1 = net.nodes[0].dev.public_key();
        let k2 = net.nodes[1].dev.public_key();
        let now = net.now;
        let hub = stripped(
            "node1",
            vec![peer_entry(
                k2,
                Some(SecretKey::from_bytes([1; 32])),
                "10.5.4.2/32",
                None,
                None,
            )],
        );
        let acts = net.nodes[0]
            .dev
            .sync_conf(now, &mut net.rng, &hub, resolver)
            .unwrap_or_else(|e| panic!("{e}"));
        net.apply(0, acts);
        // The worker's file is not stripped: wg refuses it and changes nothing.
        let mut worker = conf("node2");
        worker.peers[0].preshared_key = Some(SecretKey::from_bytes([2; 32]));
        let err = net.nodes[1]
            .dev
            .sync_conf(now, &mut net.rng, &worker, resolver)
            .err()
            .unwrap_or_default();
        assert!(err.starts_with("Line unrecognized: `Address`"), "{err}");
        assert!(!net.nodes[1].dev.peers()[0].has_preshared_key);
        // Nor a name that does not resolve.
        let mut unresolved = stripped("node2", worker.peers.clone());
        unresolved.peers[0].endpoint = wgquick::Endpoint::parse("nowhere.example:55820").ok();
        assert!(
            net.nodes[1]
                .dev
                .sync_conf(now, &mut net.rng, &unresolved, resolver)
                .is_err()
        );
        assert!(!net.nodes[1].dev.peers()[0].has_preshared_key);
        // Stripped, it applies the other key: the next handshake fails at
        // the initiator, as a PSK mismatch does.
        let worker = stripped("node2", worker.peers.clone());
        let acts = net.nodes[1]
            .dev
            .sync_conf(now, &mut net.rng, &worker, resolver)
            .unwrap_or_else(|e| panic!("{e}"));
        net.apply(1, acts);
        assert_eq!(net.nodes[1].dev.peers()[0].public_key, k1);
        net.run_for(Span::secs(200));
        assert!(net.nodes[1].dropped("the preshared keys differ"));
    }

    #[test]
    fn same_seed_same_actions() {
        let run = || {
            let mut net = star(&["node1", "node2", "node4"], |_, _| {});
            for i in 0..3 {
                net.start(i);
            }
            net.send(1, ping("10.5.4.2", "10.5.4.4", 0));
            net.run_until(at(400.0));
            net.nodes
                .iter()
                .map(|n| format!("{:?}{:?}{:?}", n.sent, n.logs, n.drops))
                .collect::<Vec<_>>()
        };
        assert_eq!(run(), run());
    }
}

//! OpenVPN 2.6: control channel (reset, TLS, key method 2, push) with its
//! round trips, data channel (P_DATA_V2), ping / ping-restart, reconnect
//! across `remote`s, address pools, TUN and TAP. Sans-IO: see
//! [`crate::proto`].
//!
//! # API for the engine
//! - [`Client::from_text`]: a client profile (`client`) or the dialing end
//!   of a TAP link (`tls-client` + `remote`), with the host's underlay
//!   addresses (the source is the first of the remote's family), a
//!   `read(path)` for files the config names (`ca /etc/...`), and a
//!   [`Resolver`] for `remote` names (DNS round robin: return the records
//!   in the order the name server gives them; the client tries each address
//!   of a remote before the next remote).
//! - [`Server::from_text`]: a server process (`server`/`server-ipv6` pools)
//!   or the listening end of a TAP link (`tls-server`, no `remote`).
//! - `accepts(&packet)`: whether an underlay packet is for this instance
//!   (UDP to the server's port; for a client, from the server it talks to,
//!   to its source port). Give those to [`Model::receive`]; give packets
//!   routed into the tunnel device to [`Model::send`].
//! - [`Action::LinkState`] `up` at "Initialization Sequence Completed"
//!   (client) or when the TAP peer completes (listening end); `down` when
//!   the connection restarts or the peer times out. The route-up and
//!   route-pre-down scripts the config names are [`Client::scripts`] /
//!   [`Server::scripts`]: the bond model adds the route-up script's delay.
//! - Status: [`Client::connected_to`], [`Client::assigned`],
//!   [`Server::clients`], [`Server::tunnel_address`].
//! - Pushed options: the server's `push` lines travel in the PUSH_REPLY
//!   ([`PushReply::options`]); [`Client::pushed_routes`] gives what the
//!   engine installs at `up` and removes at `down` (tun prefixes of
//!   `redirect-gateway` / `route` / `route-ipv6`, the host route to the
//!   server via the previous gateway). `dhcp-option DNS` is recorded only.
//!
//! # Transport
//! Over UDP the model's messages are datagrams ([`wrap`]). Over TCP
//! (`proto tcp`, `tcp-server`, a `remote ... tcp`) the model still speaks
//! in messages: a client's connect is a SYN [`Payload::Tcp`] it transmits
//! and a SYN-ACK (or reset) it receives, and its messages are marked
//! `tcp` (their sizes include the 2-byte length OpenVPN puts before each
//! packet on TCP); the engine carries them over a real TCP connection of
//! the hosts' stacks ([`crate::carrier`]), and a broken connection comes
//! back to both ends as a reset.
//!
//! # Numbers
//! - Handshake (OpenVPN's `ssl.c` flow with TLS 1.3): HARD_RESET_CLIENT_V2
//!   → HARD_RESET_SERVER_V2; ClientHello → ServerHello..Finished (server
//!   certificate, CertificateRequest); client Certificate, CertificateVerify,
//!   Finished and its key-method-2 record → the server's key-method-2
//!   record; PUSH_REQUEST → PUSH_REPLY. Four round trips on UDP (TAP p2p
//!   without `pull`: three), plus one for TCP.
//! - Sizes ([`Message::wire_len`]): control packets with `tls-crypt`
//!   carry 1 opcode + 8 session id + 8 packet id/time + 32 HMAC, then
//!   1 ack count (+4 per ack + 8 peer session) + 4 message id + the TLS
//!   records (without tls-crypt: 1 + 8 + the rest). TLS records use the
//!   certificate DER lengths of the real files. Data: P_DATA_V2 is 4
//!   (opcode, key id, peer id) + 4 packet id + 16 AEAD tag + payload; a TAP
//!   frame adds a 14-byte Ethernet header; ping is the 16-byte magic.
//! - Timers: control retransmit `tls-timeout` 2 s doubling; a client gives
//!   a remote `server-poll-timeout` (config, default 120 s) to answer the
//!   reset and `hand-window` (default 60 s, counted from the first reset, so
//!   it is what ends an unanswered attempt) to finish TLS; after a failure
//!   it pauses `connect-retry` (config, default 1 s; after 5 failures per
//!   remote the pause doubles, capped at 300 s) except after a poll
//!   timeout, where the next remote is tried at once (OpenVPN logs "Server poll timeout,
//!   trying next remote entry"). `ping N`: a ping when nothing was sent for
//!   N s; `ping-restart N`: restart (next remote) when nothing was received
//!   for N s. A server's `keepalive I T` is `ping I` + `ping-restart 2T`
//!   for itself and pushes `ping I` + `ping-restart T` to clients.
//! - Pools: `server NET MASK` (topology subnet) keeps .1 for the server and
//!   hands out .2 upwards; `server-ipv6 NET/LEN` keeps ::1 and hands out
//!   from ::1000 (OpenVPN's helper). Lowest free first; freed on timeout.
//!   `ifconfig-pool-persist FILE [SECONDS]` (pool.c): a client whose
//!   certificate's common name has an entry in FILE gets that entry; with
//!   SECONDS 0 the entries are fixed, never handed to another client.
//! - Source address: a listener without `local` sends from the unspecified
//!   address (a wildcard-bound socket; the engine picks the source by
//!   route, as the kernel does), so after an address change it answers
//!   from the new address and a peer without `float` rejects that. With
//!   `multihome` a UDP listener answers from the address the datagram came
//!   to.
//! - Certificates: the server accepts a client whose certificate names the
//!   server's CA as issuer (issuer DN = CA subject DN and, when both exist,
//!   authority key id = CA subject key id), read from the PEM files; the
//!   client checks the server's the same way. A wrong `tls-crypt` key makes
//!   the server drop the reset silently.
//!
//! Not modelled: renegotiation (`reneg-sec`, 1 h), fragmentation, the
//! script blocking the OpenVPN event loop while it runs, `verify-x509-name`.

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use base64::Engine as _;
use ipnet::{Ipv4Net, Ipv6Net};
use vpnsim_render::openvpn::{
    Client as ClientConf, Config, Material, Push, Server as ServerConf, TapPeer, TapSide, Tls,
};

use crate::packet::{Body, Packet, Payload, TcpFlags};
use crate::proto::{Action, Model, Session};
use crate::rng::Rng;
use crate::time::{Instant, Span};

/// OpenVPN's IANA port.
pub const DEFAULT_PORT: u16 = 1194;
/// `--tls-timeout` default: control packet retransmit.
pub const TLS_TIMEOUT: Span = Span::secs(2);
/// `--hand-window` default.
pub const HAND_WINDOW: Span = Span::secs(60);
/// `--server-poll-timeout` default.
pub const SERVER_POLL_TIMEOUT: Span = Span::secs(120);
/// `--connect-retry` default. OpenVPN 2.6's `init_options` (options.c) sets
/// `o->ce.connect_retry_seconds = 1`; the man page still says 5, the value
/// of 2.5 and earlier, but the code is what runs.
pub const CONNECT_RETRY: Span = Span::secs(1);
/// `--connect-retry` cap on the doubled pause.
pub const CONNECT_RETRY_MAX: Span = Span::secs(300);
/// tls-crypt wrapper: opcode 1 + session id 8 + packet id 4 + time 4 +
/// HMAC-SHA256 32.
pub const TLS_CRYPT_OVERHEAD: u32 = 1 + 8 + 8 + 32;
/// P_DATA_V2 header: opcode/key id 1 + peer id 3.
pub const DATA_V2_HEADER: u32 = 4;
/// AEAD packet id (the sent part of the nonce).
pub const DATA_PACKET_ID: u32 = 4;
/// AES-GCM / ChaCha20-Poly1305 tag.
pub const AEAD_TAG: u32 = 16;
/// OpenVPN's ping magic (`ping_string` in ping.c).
pub const PING_MAGIC: u32 = 16;
/// Ethernet header of a TAP frame.
pub const ETHERNET_HEADER: u32 = 14;
/// TLS record header + AEAD tag of a TLS 1.3 record.
const TLS_RECORD: u32 = 5 + 17;

const TTL: u8 = 64;

// ---------------------------------------------------------------------------
// Wire messages
// ---------------------------------------------------------------------------

/// What a certificate says about itself and its issuer (hashes of the DER
/// fields), for the model's chain check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertId {
    pub subject: u64,
    /// The subject's common name (hashed like the rest), which pool
    /// entries are keyed by.
    pub common_name: Option<u64>,
    pub issuer: u64,
    pub subject_key_id: Option<u64>,
    pub authority_key_id: Option<u64>,
    pub der_len: u32,
}

impl CertId {
    /// Reads the first certificate of a PEM text.
    pub fn from_pem(pem: &str) -> Result<CertId, String> {
        let b64: String = pem
            .lines()
            .skip_while(|l| !l.starts_with("-----BEGIN CERTIFICATE"))
            .skip(1)
            .take_while(|l| !l.starts_with("-----END"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(b64.trim())
            .map_err(|e| format!("certificate PEM: {e}"))?;
        cert_id(&der).ok_or_else(|| "certificate PEM: not an X.509 certificate".into())
    }

    /// Whether `ca` issued this certificate.
    pub fn issued_by(&self, ca: &CertId) -> bool {
        self.issuer == ca.subject
            && match (self.authority_key_id, ca.subject_key_id) {
                (Some(a), Some(s)) => a == s,
                _ => true,
            }
    }
}

/// The hash [`CertId::common_name`] holds for a common name.
pub fn common_name_id(cn: &str) -> u64 {
    fnv(cn.as_bytes())
}

/// The common name (OID 2.5.4.3) of a DER `Name`'s contents, hashed.
fn common_name(name: &[u8]) -> Option<u64> {
    let mut rdns = name;
    while let Some((_, set, next)) = tlv(rdns) {
        rdns = next;
        let mut attrs = set;
        while let Some((_, attr, after)) = tlv(attrs) {
            attrs = after;
            let (_, oid, rest) = tlv(attr)?;
            if oid == [0x55, 0x04, 0x03] {
                let (_, value, _) = tlv(rest)?;
                return Some(fnv(value));
            }
        }
    }
    None
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// One DER TLV: (tag, content, rest, whole).
fn tlv(d: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let tag = *d.first()?;
    let first = *d.get(1)?;
    let (len, hdr) = if first < 0x80 {
        (usize::from(first), 2)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let mut len = 0usize;
        for i in 0..n {
            len = (len << 8) | usize::from(*d.get(2 + i)?);
        }
        (len, 2 + n)
    };
    let end = hdr.checked_add(len)?;
    let content = d.get(hdr..end)?;
    Some((tag, content, d.get(end..)?))
}

fn cert_id(der: &[u8]) -> Option<CertId> {
    let (_, cert, _) = tlv(der)?;
    let (_, tbs, _) = tlv(cert)?;
    let mut rest = tbs;
    let (tag, _, r) = tlv(rest)?;
    if tag == 0xa0 {
        rest = r;
    }
    let (_, _, r) = tlv(rest)?; // serial
    let (_, _, r) = tlv(r)?; // signature algorithm
    let (_, issuer, r) = tlv(r)?;
    let (_, _, r) = tlv(r)?; // validity
    let (_, subject, mut r) = tlv(r)?;
    let (_, _, r2) = tlv(r)?; // subject public key info
    r = r2;
    let mut ski = None;
    let mut aki = None;
    while let Some((tag, content, next)) = tlv(r) {
        r = next;
        if tag != 0xa3 {
            continue;
        }
        let (_, mut exts, _) = tlv(content)?;
        while let Some((_, ext, next)) = tlv(exts) {
            exts = next;
            let (_, oid, mut er) = tlv(ext)?;
            let (t, _, after) = tlv(er)?;
            if t == 0x01 {
                er = after; // critical flag
            }
            let (_, value, _) = tlv(er)?;
            match oid {
                [0x55, 0x1d, 0x0e] => ski = tlv(value).map(|(_, k, _)| fnv(k)),
                [0x55, 0x1d, 0x23] => {
                    aki = tlv(value)
                        .and_then(|(_, seq, _)| tlv(seq))
                        .filter(|(t, _, _)| *t == 0x80)
                        .map(|(_, k, _)| fnv(k));
                }
                _ => {}
            }
        }
    }
    Some(CertId {
        subject: fnv(subject),
        common_name: common_name(subject),
        issuer: fnv(issuer),
        subject_key_id: ski,
        authority_key_id: aki,
        der_len: der.len().min(1 << 20) as u32,
    })
}

/// What a PUSH_REPLY carries: the pool addresses, the keepalive timers
/// and the server's `push "…"` options (parsed by
/// [`vpnsim_render::openvpn::Push`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushReply {
    pub ifconfig: Option<Ipv4Net>,
    pub ifconfig_ipv6: Option<Ipv6Net>,
    pub ping: Option<u32>,
    pub ping_restart: Option<u32>,
    /// The server's `push` options, in config order.
    pub options: Vec<Push>,
}

/// IPv4 prefixes of `redirect-gateway def1`: two halves that beat the
/// default route without replacing it (OpenVPN `route.c`,
/// `redirect_default_route_to_vpn`: 0.0.0.0/1 and 128.0.0.0/1).
pub const DEF1_V4: [(Ipv4Addr, u8); 2] =
    [(Ipv4Addr::UNSPECIFIED, 1), (Ipv4Addr::new(128, 0, 0, 0), 1)];
/// IPv6 prefixes of `redirect-gateway ipv6`: OpenVPN 2.6 `init.c`
/// (`do_init_route_ipv6_list`) adds `::/3`, `2000::/4`, `3000::/4` and
/// `fc00::/7` (all global unicast and ULA space, more specific than the
/// `2000::/3` many hosts carry).
pub const REDIRECT_V6: [(Ipv6Addr, u8); 4] = [
    (Ipv6Addr::UNSPECIFIED, 3),
    (Ipv6Addr::new(0x2000, 0, 0, 0, 0, 0, 0, 0), 4),
    (Ipv6Addr::new(0x3000, 0, 0, 0, 0, 0, 0, 0), 4),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7),
];

/// Routes a connected client installs from what was pushed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PushedRoutes {
    /// Prefixes routed into the tun device (`redirect-gateway`, `route`,
    /// `route-ipv6`); IPv4 ones only with a pushed `ifconfig`, IPv6 ones
    /// only with a pushed `ifconfig-ipv6`.
    pub tunnel: Vec<ipnet::IpNet>,
    /// `redirect-gateway` (without the `local` flag): a host route to the
    /// server through the gateway the client had before, so the tunnel's
    /// own packets do not enter the tunnel.
    pub bypass: Option<IpAddr>,
    /// `dhcp-option DNS` servers (recorded, not applied: no resolver
    /// configuration is modelled).
    pub dns: Vec<IpAddr>,
}

impl PushReply {
    /// The routes these options install on a client talking to `server`.
    pub fn routes(&self, server: Option<IpAddr>) -> PushedRoutes {
        let mut out = PushedRoutes::default();
        let (v4, v6) = (self.ifconfig.is_some(), self.ifconfig_ipv6.is_some());
        let add = |n: ipnet::IpNet, out: &mut PushedRoutes| {
            if !out.tunnel.contains(&n) {
                out.tunnel.push(n);
            }
        };
        for o in &self.options {
            match o {
                Push::RedirectGateway(flags) => {
                    let has = |f: &str| flags.iter().any(|x| x == f);
                    // `!ipv4` (2.4+) leaves IPv4 alone; without `def1` OpenVPN
                    // replaces the default route, which routes the same here.
                    if v4 && !has("!ipv4") {
                        for (a, l) in DEF1_V4 {
                            if let Ok(n) = Ipv4Net::new(a, l) {
                                add(ipnet::IpNet::V4(n), &mut out);
                            }
                        }
                    }
                    if v6 && has("ipv6") {
                        for (a, l) in REDIRECT_V6 {
                            if let Ok(n) = Ipv6Net::new(a, l) {
                                add(ipnet::IpNet::V6(n), &mut out);
                            }
                        }
                    }
                    if !has("local") {
                        out.bypass = server;
                    }
                }
                Push::Route(n) if v4 => add(ipnet::IpNet::V4(*n), &mut out),
                Push::RouteIpv6(n) if v6 => add(ipnet::IpNet::V6(*n), &mut out),
                Push::Dns(a) => out.dns.push(*a),
                _ => {}
            }
        }
        out
    }

    /// The message text: `PUSH_REPLY,opt,opt,...`.
    pub fn text(&self) -> String {
        let mut opts: Vec<String> = self.options.iter().map(Push::text).collect();
        if let Some(p) = self.ping {
            opts.push(format!("ping {p}"));
        }
        if let Some(p) = self.ping_restart {
            opts.push(format!("ping-restart {p}"));
        }
        if let Some(n) = self.ifconfig {
            opts.push(format!("ifconfig {} {}", n.addr(), n.netmask()));
        }
        if let Some(n) = self.ifconfig_ipv6 {
            opts.push(format!("ifconfig-ipv6 {n} ::"));
        }
        format!("PUSH_REPLY,{}", opts.join(","))
    }
}

/// TLS records and OpenVPN control messages inside P_CONTROL_V1.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// ~300 B (x25519 key share, cipher suites, extensions).
    ClientHello,
    /// ServerHello, EncryptedExtensions, CertificateRequest, Certificate,
    /// CertificateVerify, Finished.
    ServerFlight {
        cert: CertId,
    },
    /// Certificate, CertificateVerify, Finished, then the client's key
    /// method 2 record (randoms, options string, peer info).
    ClientFlight {
        cert: CertId,
    },
    /// The server's key method 2 record.
    ServerKeyMethod,
    /// `PUSH_REQUEST`.
    PushRequest,
    PushReply(PushReply),
    /// A fatal TLS alert (e.g. the peer's certificate did not verify).
    Alert(String),
}

impl Record {
    fn len(&self) -> u32 {
        match self {
            Record::ClientHello => 300,
            // SH 128 + EE 20 + CR 40 + Cert (DER + 13) + CV 80 + Fin 36,
            // in 4 records.
            Record::ServerFlight { cert } => 128 + 20 + 40 + cert.der_len + 13 + 80 + 36 + 4 * 5,
            // Cert (DER + 13) + CV 80 + Fin 36 in 3 records, then key
            // method 2: 1+4+1 + 48+32+32 + options ~180 + peer info ~250.
            Record::ClientFlight { cert } => {
                cert.der_len + 13 + 80 + 36 + 3 * TLS_RECORD + 548 + TLS_RECORD
            }
            Record::ServerKeyMethod => 6 + 64 + 180 + TLS_RECORD,
            Record::PushRequest => 13 + TLS_RECORD,
            Record::PushReply(r) => r.text().len() as u32 + 1 + TLS_RECORD,
            Record::Alert(_) => 2 + TLS_RECORD,
        }
    }
}

/// What a data packet carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// TUN: an IP packet.
    Ip(Box<Packet>),
    /// TAP: an Ethernet frame (header + this packet).
    Ethernet(Box<Packet>),
    /// The 16-byte ping magic.
    Ping,
}

/// An OpenVPN packet (opcodes from OpenVPN's `ssl_pkt.h`).
#[derive(Debug, Clone, PartialEq)]
pub enum Message {
    /// P_CONTROL_HARD_RESET_CLIENT_V2 (7).
    HardResetClient {
        session: u64,
        /// Which tls-crypt key wrapped it (a hash; `None`: no tls-crypt).
        tls_crypt: Option<u64>,
        tcp: bool,
    },
    /// P_CONTROL_HARD_RESET_SERVER_V2 (8), acking the client's reset.
    HardResetServer {
        session: u64,
        peer_session: u64,
        tls_crypt: Option<u64>,
        tcp: bool,
    },
    /// P_CONTROL_V1 (4) with an ack piggybacked.
    Control {
        session: u64,
        record: Record,
        tls_crypt: Option<u64>,
        tcp: bool,
    },
    /// P_ACK_V1 (5).
    Ack {
        session: u64,
        tls_crypt: Option<u64>,
        tcp: bool,
    },
    /// P_DATA_V2 (9).
    Data {
        peer_id: u32,
        frame: Frame,
        tcp: bool,
    },
}

impl Message {
    /// UDP payload bytes (TCP: plus the 2-byte length prefix).
    pub fn wire_len(&self) -> u32 {
        let wrap = |tls_crypt: &Option<u64>, plain: u32| {
            if tls_crypt.is_some() {
                TLS_CRYPT_OVERHEAD + plain
            } else {
                1 + 8 + plain
            }
        };
        let ack = 1 + 4 + 8;
        let (len, tcp) = match self {
            Message::HardResetClient { tls_crypt, tcp, .. } => (wrap(tls_crypt, 1 + 4), *tcp),
            Message::HardResetServer { tls_crypt, tcp, .. } => (wrap(tls_crypt, ack + 4), *tcp),
            Message::Control {
                record,
                tls_crypt,
                tcp,
                ..
            } => (wrap(tls_crypt, ack + 4 + record.len()), *tcp),
            Message::Ack { tls_crypt, tcp, .. } => (wrap(tls_crypt, ack), *tcp),
            Message::Data { frame, tcp, .. } => {
                let payload = match frame {
                    Frame::Ip(p) => p.wire_len(),
                    Frame::Ethernet(p) => ETHERNET_HEADER + p.wire_len(),
                    Frame::Ping => PING_MAGIC,
                };
                (DATA_V2_HEADER + DATA_PACKET_ID + AEAD_TAG + payload, *tcp)
            }
        };
        len + if tcp { 2 } else { 0 }
    }

    /// Whether the message belongs to a TCP session.
    pub fn is_tcp(&self) -> bool {
        match self {
            Message::HardResetClient { tcp, .. }
            | Message::HardResetServer { tcp, .. }
            | Message::Control { tcp, .. }
            | Message::Ack { tcp, .. }
            | Message::Data { tcp, .. } => *tcp,
        }
    }

    fn session(&self) -> Option<u64> {
        match self {
            Message::HardResetClient { session, .. }
            | Message::HardResetServer { session, .. }
            | Message::Control { session, .. }
            | Message::Ack { session, .. } => Some(*session),
            Message::Data { .. } => None,
        }
    }
}

/// Puts a message on the wire (see "Transport" above for TCP).
pub fn wrap(src: SocketAddr, dst: SocketAddr, msg: Message) -> Packet {
    Packet {
        src: src.ip(),
        dst: dst.ip(),
        ttl: TTL,
        dont_fragment: false,
        payload: Payload::Udp {
            src_port: src.port(),
            dst_port: dst.port(),
            body: Body::OpenVpn(msg),
        },
    }
}

fn tcp_segment(src: SocketAddr, dst: SocketAddr, syn: bool, ack: bool, rst: bool) -> Packet {
    Packet {
        src: src.ip(),
        dst: dst.ip(),
        ttl: TTL,
        dont_fragment: true,
        payload: Payload::Tcp {
            src_port: src.port(),
            dst_port: dst.port(),
            flags: TcpFlags {
                syn,
                ack,
                rst,
                ..TcpFlags::default()
            },
            seq: 0,
            ack: 0,
            window: u16::MAX,
            options: crate::packet::TcpOptions::default(),
            data: crate::packet::Data::default(),
        },
    }
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// Why a config cannot make a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct OpenVpnError(pub String);

fn err<T>(m: impl Into<String>) -> Result<T, OpenVpnError> {
    Err(OpenVpnError(m.into()))
}

/// Resolves a `remote` name to addresses, in the order the name server
/// answers (the engine rotates or shuffles them as its DNS does).
pub type Resolver = dyn Fn(&str, &mut Rng) -> Vec<IpAddr>;

fn material(
    m: &Material,
    read: &dyn Fn(&str) -> Option<String>,
    what: &str,
) -> Result<String, OpenVpnError> {
    match m {
        Material::Inline(t) => Ok(t.clone()),
        Material::File(p) => {
            read(p).ok_or_else(|| OpenVpnError(format!("{what} {p}: cannot read")))
        }
    }
}

/// The TLS identities of one end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TlsIds {
    ca: CertId,
    cert: CertId,
    tls_crypt: Option<u64>,
}

impl TlsIds {
    fn new(tls: &Tls, read: &dyn Fn(&str) -> Option<String>) -> Result<TlsIds, OpenVpnError> {
        let ca = CertId::from_pem(&material(&tls.ca, read, "ca")?)
            .map_err(|e| OpenVpnError(format!("ca: {e}")))?;
        let cert = CertId::from_pem(&material(&tls.cert, read, "cert")?)
            .map_err(|e| OpenVpnError(format!("cert: {e}")))?;
        let tls_crypt = match &tls.tls_crypt {
            Some(m) => Some(static_key_id(&material(m, read, "tls-crypt")?)),
            None => None,
        };
        Ok(TlsIds {
            ca,
            cert,
            tls_crypt,
        })
    }
}

/// Identifies an OpenVPN static key by its key lines (comments and the
/// file's layout do not count).
fn static_key_id(text: &str) -> u64 {
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    fnv(body.as_bytes())
}

fn is_tcp_proto(p: vpnsim_render::openvpn::Proto) -> bool {
    !p.is_udp()
}

fn extra_secs(extra: &[vpnsim_render::openvpn::Directive], name: &str) -> Option<Span> {
    extra
        .iter()
        .find(|d| d.name() == name)
        .and_then(|d| d.arg(0))
        .and_then(|a| a.parse::<u64>().ok())
        .map(Span::secs)
}

/// The scripts a config runs when the link comes up and before it goes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Scripts {
    pub route_up: Option<String>,
    pub route_pre_down: Option<String>,
}

/// One `remote` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteSpec {
    pub host: String,
    pub port: u16,
    pub tcp: bool,
}

// ---------------------------------------------------------------------------
// Client
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Idle,
    Pause,
    TcpConnect,
    Reset,
    Tls,
    KeyEx,
    Push,
    Connected,
}

const C_RETRANSMIT: u64 = 0;
const C_DEADLINE: u64 = 1;
const C_PING: u64 = 2;
const C_PING_RESTART: u64 = 3;
const C_PAUSE: u64 = 4;

/// An OpenVPN client: a profile or the dialing end of a TAP link.
pub struct Client {
    remotes: Vec<RemoteSpec>,
    remote_random: bool,
    locals: Vec<IpAddr>,
    resolve: Box<Resolver>,
    tls: TlsIds,
    tap: bool,
    pull: bool,
    ping: Option<u32>,
    ping_restart: Option<u32>,
    poll_timeout: Span,
    hand_window: Span,
    connect_retry: Span,
    scripts: Scripts,
    // state
    order: Vec<usize>,
    pos: usize,
    addrs: Vec<IpAddr>,
    addr_pos: usize,
    failures: u32,
    phase: Phase,
    local: Option<SocketAddr>,
    server: Option<SocketAddr>,
    session: u64,
    last_control: Option<Message>,
    tries: u32,
    pushed: PushReply,
    eff_ping: Option<u32>,
    eff_restart: Option<u32>,
    last_rx: Instant,
    last_tx: Instant,
    attempt_started: Instant,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("remotes", &self.remotes)
            .field("phase", &self.phase)
            .field("server", &self.server)
            .field("assigned", &self.pushed.ifconfig)
            .finish()
    }
}

impl Client {
    /// A client profile or a TAP `tls-client` config, from its text.
    pub fn from_text(
        text: &str,
        locals: &[IpAddr],
        read: &dyn Fn(&str) -> Option<String>,
        resolve: Box<Resolver>,
    ) -> Result<Client, OpenVpnError> {
        use vpnsim_render::format::Format;
        let cfg = Config::parse(text).map_err(|e| OpenVpnError(e.to_string()))?;
        if cfg.get("client").is_some() || cfg.get("pull").is_some() {
            let c = ClientConf::from_config(&cfg).map_err(|e| OpenVpnError(e.to_string()))?;
            Client::from_profile(&c, locals, read, resolve)
        } else {
            let t = TapPeer::from_config(&cfg).map_err(|e| OpenVpnError(e.to_string()))?;
            Client::from_tap(&t, locals, read, resolve)
        }
    }

    pub fn from_profile(
        c: &ClientConf,
        locals: &[IpAddr],
        read: &dyn Fn(&str) -> Option<String>,
        resolve: Box<Resolver>,
    ) -> Result<Client, OpenVpnError> {
        let default_tcp = c.proto.is_some_and(is_tcp_proto);
        let remotes = c
            .remotes
            .iter()
            .map(|r| RemoteSpec {
                host: r.host.clone(),
                port: r.port.unwrap_or(DEFAULT_PORT),
                tcp: r.proto.map_or(default_tcp, is_tcp_proto),
            })
            .collect();
        let tap = c.dev.kind() == Some(vpnsim_render::openvpn::DevType::Tap);
        let (ping, restart) = c.liveness.effective(false);
        Client::build(
            remotes,
            c.remote_random,
            locals,
            resolve,
            TlsIds::new(&c.tls, read)?,
            tap,
            true,
            (ping, restart),
            &c.extra,
            Scripts {
                route_up: c.daemon.route_up.clone(),
                route_pre_down: c.daemon.route_pre_down.clone(),
            },
        )
    }

    pub fn from_tap(
        t: &TapPeer,
        locals: &[IpAddr],
        read: &dyn Fn(&str) -> Option<String>,
        resolve: Box<Resolver>,
    ) -> Result<Client, OpenVpnError> {
        let TapSide::Dial { remotes, .. } = &t.side else {
            return err("a listening TAP end is a Server");
        };
        let tcp = is_tcp_proto(t.proto);
        let remotes = remotes
            .iter()
            .map(|r| RemoteSpec {
                host: r.host.clone(),
                port: r.port.unwrap_or(DEFAULT_PORT),
                tcp: r.proto.map_or(tcp, is_tcp_proto),
            })
            .collect();
        Client::build(
            remotes,
            false,
            locals,
            resolve,
            TlsIds::new(&t.tls, read)?,
            true,
            false,
            t.liveness.effective(false),
            &t.extra,
            Scripts {
                route_up: t.daemon.route_up.clone(),
                route_pre_down: t.daemon.route_pre_down.clone(),
            },
        )
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        remotes: Vec<RemoteSpec>,
        remote_random: bool,
        locals: &[IpAddr],
        resolve: Box<Resolver>,
        tls: TlsIds,
        tap: bool,
        pull: bool,
        (ping, ping_restart): (Option<u32>, Option<u32>),
        extra: &[vpnsim_render::openvpn::Directive],
        scripts: Scripts,
    ) -> Result<Client, OpenVpnError> {
        if remotes.is_empty() {
            return err("no remote");
        }
        Ok(Client {
            remotes,
            remote_random,
            locals: locals.to_vec(),
            resolve,
            tls,
            tap,
            pull,
            ping,
            ping_restart,
            poll_timeout: extra_secs(extra, "server-poll-timeout").unwrap_or(SERVER_POLL_TIMEOUT),
            hand_window: extra_secs(extra, "hand-window").unwrap_or(HAND_WINDOW),
            connect_retry: extra_secs(extra, "connect-retry").unwrap_or(CONNECT_RETRY),
            scripts,
            order: Vec::new(),
            pos: 0,
            addrs: Vec::new(),
            addr_pos: 0,
            failures: 0,
            phase: Phase::Idle,
            local: None,
            server: None,
            session: 0,
            last_control: None,
            tries: 0,
            pushed: PushReply::default(),
            eff_ping: None,
            eff_restart: None,
            last_rx: Instant::START,
            last_tx: Instant::START,
            attempt_started: Instant::START,
        })
    }

    /// The remotes in file order.
    pub fn remotes(&self) -> &[RemoteSpec] {
        &self.remotes
    }

    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// The server of the completed connection.
    pub fn connected_to(&self) -> Option<SocketAddr> {
        (self.phase == Phase::Connected)
            .then_some(self.server)
            .flatten()
    }

    /// The tunnel addresses the server pushed (while connected).
    pub fn assigned(&self) -> (Option<Ipv4Net>, Option<Ipv6Net>) {
        if self.phase == Phase::Connected {
            (self.pushed.ifconfig, self.pushed.ifconfig_ipv6)
        } else {
            (None, None)
        }
    }

    /// What the server pushed on the completed connection (default while
    /// not connected).
    pub fn pushed(&self) -> PushReply {
        if self.phase == Phase::Connected {
            self.pushed.clone()
        } else {
            PushReply::default()
        }
    }

    /// The routes to install while connected (none otherwise); the engine
    /// installs them at [`Action::LinkState`] `up` and removes them at
    /// `down` (no `persist-tun`: the tun and its routes go away on restart).
    pub fn pushed_routes(&self) -> PushedRoutes {
        self.pushed().routes(self.connected_to().map(|s| s.ip()))
    }

    /// The client's underlay address and port of the current attempt.
    pub fn local(&self) -> Option<SocketAddr> {
        self.local
    }

    /// The server address and port of the current attempt.
    pub fn remote(&self) -> Option<SocketAddr> {
        self.server
    }

    /// Whether this underlay packet belongs to the client's connection.
    pub fn accepts(&self, p: &Packet) -> bool {
        let (Some(local), Some(server)) = (self.local, self.server) else {
            return false;
        };
        let (_, sp, dp) = p.ports();
        p.dst == local.ip() && dp == local.port() && p.src == server.ip() && sp == server.port()
    }

    /// The TCP connection the client is using or opening now, as (local,
    /// server): what its host should keep open (OpenVPN closes the socket
    /// when it restarts or moves to another remote).
    pub fn tcp_connection(&self) -> Option<(SocketAddr, SocketAddr)> {
        if !self.tcp() || matches!(self.phase, Phase::Idle | Phase::Pause) {
            return None;
        }
        Some((self.local?, self.server?))
    }

    fn current(&self) -> Option<&RemoteSpec> {
        self.order.get(self.pos).and_then(|&i| self.remotes.get(i))
    }

    fn tcp(&self) -> bool {
        self.current().is_some_and(|r| r.tcp)
    }

    fn transmit(&mut self, now: Instant, msg: Message) -> Action {
        self.last_tx = now;
        match (self.local, self.server) {
            (Some(l), Some(s)) => Action::Transmit(wrap(l, s, msg)),
            _ => Action::Log("openvpn: no connection to send on".into()),
        }
    }

    fn send_control(&mut self, now: Instant, msg: Message) -> Vec<Action> {
        self.last_control = Some(msg.clone());
        self.tries = 0;
        vec![
            self.transmit(now, msg),
            Action::Timer {
                at: now + TLS_TIMEOUT,
                token: C_RETRANSMIT,
            },
        ]
    }

    fn control(&self, record: Record) -> Message {
        Message::Control {
            session: self.session,
            record,
            tls_crypt: self.tls.tls_crypt,
            tcp: self.tcp(),
        }
    }

    /// Starts the attempt on the current remote / address.
    fn connect(&mut self, now: Instant, rng: &mut Rng) -> Vec<Action> {
        let mut out = Vec::new();
        // Find the next address to try, resolving remotes as needed.
        let mut guard = 0;
        loop {
            guard += 1;
            if guard > 4 * self.remotes.len() + 4 {
                out.push(Action::Log("openvpn: no remote resolves".into()));
                return out;
            }
            if self.addr_pos < self.addrs.len() {
                break;
            }
            let Some(r) = self.current().cloned() else {
                self.pos = 0;
                continue;
            };
            let addrs: Vec<IpAddr> = match r.host.parse::<IpAddr>() {
                Ok(ip) => vec![ip],
                Err(_) => (self.resolve)(&r.host, rng),
            };
            self.addrs = addrs
                .into_iter()
                .filter(|a| self.locals.iter().any(|l| l.is_ipv4() == a.is_ipv4()))
                .collect();
            self.addr_pos = 0;
            if self.addrs.is_empty() {
                out.push(Action::Log(format!(
                    "RESOLVE: cannot resolve host address: {}",
                    r.host
                )));
                self.pos = (self.pos + 1) % self.order.len().max(1);
            }
        }
        let Some(r) = self.current().cloned() else {
            return out;
        };
        let addr = self.addrs[self.addr_pos];
        let Some(local_ip) = self
            .locals
            .iter()
            .copied()
            .find(|l| l.is_ipv4() == addr.is_ipv4())
        else {
            return out;
        };
        // nobind: an ephemeral source port (Linux range 32768-60999).
        let port = 32768 + rng.below(28232) as u16;
        self.local = Some(SocketAddr::new(local_ip, port));
        self.server = Some(SocketAddr::new(addr, r.port));
        self.session = rng.next_u64().max(1);
        self.attempt_started = now;
        self.pushed = PushReply::default();
        let proto = if r.tcp { "TCP" } else { "UDP" };
        out.push(Action::Log(format!(
            "Attempting to establish a connection with [{}]:{} ({}) via {proto}",
            addr, r.port, r.host
        )));
        // The hand-window runs from the first reset on (OpenVPN 2.6 ssl.c:
        // `session_move_pre_start` sets `ks->must_negotiate = now +
        // handshake_window` when the initial packet is queued), so an
        // unanswered reset fails after 60 s, before the 120 s poll timeout.
        out.push(Action::Timer {
            at: now + self.poll_timeout.min(self.hand_window),
            token: C_DEADLINE,
        });
        if r.tcp {
            self.phase = Phase::TcpConnect;
            self.last_tx = now;
            out.push(Action::Transmit(tcp_segment(
                SocketAddr::new(local_ip, port),
                SocketAddr::new(addr, r.port),
                true,
                false,
                false,
            )));
            out.push(Action::Timer {
                at: now + Span::secs(1),
                token: C_RETRANSMIT,
            });
            return out;
        }
        out.extend(self.send_reset(now));
        out
    }

    fn send_reset(&mut self, now: Instant) -> Vec<Action> {
        self.phase = Phase::Reset;
        let msg = Message::HardResetClient {
            session: self.session,
            tls_crypt: self.tls.tls_crypt,
            tcp: self.tcp(),
        };
        self.send_control(now, msg)
    }

    /// Gives up on the current connection: SIGUSR1 soft restart.
    fn restart(&mut self, now: Instant, reason: &str, advance_now: bool) -> Vec<Action> {
        let mut out = vec![Action::Log(format!(
            "SIGUSR1[soft,{reason}] received, process restarting"
        ))];
        if self.phase == Phase::Connected {
            out.push(Action::LinkState { up: false });
            if let Some(server) = self.server {
                out.push(Session::down(server.to_string(), Some(server.ip()), reason));
            }
            if let Some(s) = &self.scripts.route_pre_down {
                out.push(Action::Log(format!("route-pre-down: {s}")));
            }
        }
        self.last_control = None;
        self.failures += 1;
        // Next address of this remote, else the next remote.
        self.addr_pos += 1;
        if self.addr_pos >= self.addrs.len() {
            self.addrs.clear();
            self.addr_pos = 0;
            self.pos = (self.pos + 1) % self.order.len().max(1);
        }
        if advance_now {
            self.phase = Phase::Pause;
            out.push(Action::Log(
                "Server poll timeout, trying next remote entry...".into(),
            ));
            out.push(Action::Timer {
                at: now,
                token: C_PAUSE,
            });
            return out;
        }
        let n = self.remotes.len() as u32;
        let mut pause = self.connect_retry;
        let slow = self.failures.saturating_sub(5 * n);
        if slow > 0 {
            pause = Span(pause.0.saturating_mul(1u64 << slow.min(16))).min(CONNECT_RETRY_MAX);
        }
        self.phase = Phase::Pause;
        out.push(Action::Log(format!("Restart pause, {pause}")));
        out.push(Action::Timer {
            at: now + pause,
            token: C_PAUSE,
        });
        out
    }

    fn connected(&mut self, now: Instant) -> Vec<Action> {
        self.phase = Phase::Connected;
        self.failures = 0;
        self.last_control = None;
        self.eff_ping = self.pushed.ping.or(self.ping);
        self.eff_restart = self.pushed.ping_restart.or(self.ping_restart);
        self.last_rx = now;
        let mut out = Vec::new();
        if let Some(s) = &self.scripts.route_up {
            out.push(Action::Log(format!("route-up: {s}")));
        }
        out.push(Action::Log(format!(
            "Initialization Sequence Completed (server {}{})",
            self.server.map_or_else(String::new, |s| s.to_string()),
            self.pushed
                .ifconfig
                .map_or_else(String::new, |a| format!(", ifconfig {a}"))
        )));
        out.push(Action::LinkState { up: true });
        if let Some(server) = self.server {
            out.push(Session::up(
                server.to_string(),
                Some(server.ip()),
                "Initialization Sequence Completed",
            ));
        }
        if let Some(p) = self.eff_ping {
            out.push(Action::Timer {
                at: self.last_tx + Span::secs(u64::from(p)),
                token: C_PING,
            });
        }
        if let Some(r) = self.eff_restart {
            out.push(Action::Timer {
                at: now + Span::secs(u64::from(r)),
                token: C_PING_RESTART,
            });
        }
        out
    }

    fn drop_packet(p: Packet, reason: impl Into<String>) -> Action {
        Action::Drop {
            packet: Box::new(p),
            reason: reason.into(),
        }
    }
}

impl Model for Client {
    fn send(&mut self, now: Instant, _rng: &mut Rng, packet: Packet) -> Vec<Action> {
        if self.phase != Phase::Connected {
            return vec![Client::drop_packet(packet, "openvpn: not connected")];
        }
        let frame = if self.tap {
            Frame::Ethernet(Box::new(packet))
        } else {
            Frame::Ip(Box::new(packet))
        };
        let tcp = self.tcp();
        vec![self.transmit(
            now,
            Message::Data {
                peer_id: 0,
                frame,
                tcp,
            },
        )]
    }

    fn receive(&mut self, now: Instant, _rng: &mut Rng, packet: Packet) -> Vec<Action> {
        if !self.accepts(&packet) {
            return vec![Client::drop_packet(
                packet,
                "openvpn: packet from an unknown peer",
            )];
        }
        let msg = match &packet.payload {
            Payload::Udp {
                body: Body::OpenVpn(m),
                ..
            } => m.clone(),
            // The connection broke after it was up (the server's process
            // went away, a middlebox reset it): socket.c "Connection
            // reset, restarting", then SIGUSR1.
            Payload::Tcp { flags, .. }
                if flags.rst
                    && self.tcp()
                    && !matches!(self.phase, Phase::Idle | Phase::Pause | Phase::TcpConnect) =>
            {
                let mut out = vec![Action::Log("Connection reset, restarting [0]".into())];
                out.extend(self.restart(now, "connection-reset", false));
                return out;
            }
            Payload::Tcp { flags, .. } if self.phase == Phase::TcpConnect => {
                if flags.rst {
                    return self.restart(now, "connection-reset", false);
                }
                if flags.syn && flags.ack {
                    self.last_rx = now;
                    let (Some(l), Some(s)) = (self.local, self.server) else {
                        return Vec::new();
                    };
                    let mut out = vec![
                        Action::Log(format!("TCP connection established with {s}")),
                        Action::Transmit(tcp_segment(l, s, false, true, false)),
                    ];
                    out.extend(self.send_reset(now));
                    return out;
                }
                return Vec::new();
            }
            _ => {
                return vec![Client::drop_packet(
                    packet,
                    "openvpn: not an OpenVPN packet",
                )];
            }
        };
        self.last_rx = now;
        match (msg, self.phase) {
            (Message::HardResetServer { peer_session, .. }, Phase::Reset)
                if peer_session == self.session =>
            {
                self.phase = Phase::Tls;
                let mut out = vec![Action::Timer {
                    at: self.attempt_started + self.hand_window,
                    token: C_DEADLINE,
                }];
                let m = self.control(Record::ClientHello);
                out.extend(self.send_control(now, m));
                out
            }
            (
                Message::Control {
                    record: Record::ServerFlight { cert },
                    ..
                },
                Phase::Tls,
            ) => {
                if !cert.issued_by(&self.tls.ca) {
                    return self
                        .restart(now, "tls-error", false)
                        .into_iter()
                        .chain([Action::Log(
                            "VERIFY ERROR: server certificate not issued by the configured CA"
                                .into(),
                        )])
                        .collect();
                }
                self.phase = Phase::KeyEx;
                let m = self.control(Record::ClientFlight {
                    cert: self.tls.cert,
                });
                self.send_control(now, m)
            }
            (
                Message::Control {
                    record: Record::ServerKeyMethod,
                    ..
                },
                Phase::KeyEx,
            ) => {
                if self.pull {
                    self.phase = Phase::Push;
                    let m = self.control(Record::PushRequest);
                    self.send_control(now, m)
                } else {
                    let ack = Message::Ack {
                        session: self.session,
                        tls_crypt: self.tls.tls_crypt,
                        tcp: self.tcp(),
                    };
                    let mut out = vec![self.transmit(now, ack)];
                    out.extend(self.connected(now));
                    out
                }
            }
            (
                Message::Control {
                    record: Record::PushReply(reply),
                    ..
                },
                Phase::Push,
            ) => {
                self.pushed = reply;
                let ack = Message::Ack {
                    session: self.session,
                    tls_crypt: self.tls.tls_crypt,
                    tcp: self.tcp(),
                };
                let mut out = vec![self.transmit(now, ack)];
                out.extend(self.connected(now));
                out
            }
            (
                Message::Control {
                    record: Record::Alert(why),
                    ..
                },
                _,
            ) => {
                let mut out = vec![Action::Log(format!("TLS Error: peer sent an alert: {why}"))];
                out.extend(self.restart(now, "tls-error", false));
                out
            }
            (Message::Data { frame, .. }, Phase::Connected) => match frame {
                Frame::Ping => Vec::new(),
                Frame::Ip(p) | Frame::Ethernet(p) => vec![Action::Deliver(*p)],
            },
            (Message::Ack { .. }, _) => Vec::new(),
            (m, _) => {
                let what = format!("openvpn: unexpected {m:?} in {:?}", self.phase);
                vec![Client::drop_packet(
                    packet,
                    what.chars().take(120).collect::<String>(),
                )]
            }
        }
    }

    fn on_timer(&mut self, now: Instant, rng: &mut Rng, token: u64) -> Vec<Action> {
        match (token, self.phase) {
            (C_PAUSE, Phase::Pause) => self.connect(now, rng),
            (C_RETRANSMIT, Phase::TcpConnect) => {
                let (Some(l), Some(s)) = (self.local, self.server) else {
                    return Vec::new();
                };
                self.tries += 1;
                let at = now + Span(Span::secs(1).0 << self.tries.min(6));
                vec![
                    Action::Transmit(tcp_segment(l, s, true, false, false)),
                    Action::Timer {
                        at,
                        token: C_RETRANSMIT,
                    },
                ]
            }
            (C_RETRANSMIT, Phase::Reset | Phase::Tls | Phase::KeyEx | Phase::Push) => {
                let Some(m) = self.last_control.clone() else {
                    return Vec::new();
                };
                self.tries += 1;
                let at = now + Span(TLS_TIMEOUT.0 << self.tries.min(5));
                vec![
                    self.transmit(now, m),
                    Action::Timer {
                        at,
                        token: C_RETRANSMIT,
                    },
                ]
            }
            (C_DEADLINE, Phase::TcpConnect | Phase::Reset) => {
                let poll = self.attempt_started + self.poll_timeout;
                let hand = self.attempt_started + self.hand_window;
                if self.phase == Phase::Reset && now >= hand && hand <= poll {
                    // ssl.c: "TLS key negotiation failed to occur within
                    // %d seconds", then a hard TLS error on a connection
                    // without keys: SIGUSR1 "tls-error", with the restart
                    // pause (not the poll timeout's immediate retry).
                    let mut out = vec![
                        Action::Log(format!(
                            "TLS Error: TLS key negotiation failed to occur within {} (check your network connectivity)",
                            self.hand_window
                        )),
                        Action::Log("TLS Error: TLS handshake failed".into()),
                    ];
                    out.extend(self.restart(now, "tls-error", false));
                    out
                } else if now >= poll {
                    self.restart(now, "server-poll-timeout", true)
                } else {
                    let next = if self.phase == Phase::Reset && now < hand {
                        hand.min(poll)
                    } else {
                        poll
                    };
                    vec![Action::Timer {
                        at: next,
                        token: C_DEADLINE,
                    }]
                }
            }
            (C_DEADLINE, Phase::Tls | Phase::KeyEx | Phase::Push) => {
                if now >= self.attempt_started + self.hand_window {
                    let mut out = vec![Action::Log(format!(
                        "TLS Error: TLS key negotiation failed to occur within {} (check your network connectivity)",
                        self.hand_window
                    ))];
                    out.extend(self.restart(now, "tls-error", false));
                    out
                } else {
                    Vec::new()
                }
            }
            (C_PING, Phase::Connected) => {
                let Some(p) = self.eff_ping else {
                    return Vec::new();
                };
                let every = Span::secs(u64::from(p));
                let mut out = Vec::new();
                if now >= self.last_tx + every {
                    let tcp = self.tcp();
                    out.push(self.transmit(
                        now,
                        Message::Data {
                            peer_id: 0,
                            frame: Frame::Ping,
                            tcp,
                        },
                    ));
                }
                out.push(Action::Timer {
                    at: self.last_tx + every,
                    token: C_PING,
                });
                out
            }
            (C_PING_RESTART, Phase::Connected) => {
                let Some(r) = self.eff_restart else {
                    return Vec::new();
                };
                let limit = Span::secs(u64::from(r));
                if now >= self.last_rx + limit {
                    let mut out = vec![Action::Log(format!(
                        "[{}] Inactivity timeout (--ping-restart), restarting",
                        self.server.map_or_else(String::new, |s| s.to_string())
                    ))];
                    out.extend(self.restart(now, "ping-restart", false));
                    out
                } else {
                    vec![Action::Timer {
                        at: self.last_rx + limit,
                        token: C_PING_RESTART,
                    }]
                }
            }
            _ => Vec::new(),
        }
    }

    fn start(&mut self, now: Instant, rng: &mut Rng) -> Vec<Action> {
        self.order = (0..self.remotes.len()).collect();
        if self.remote_random {
            for i in (1..self.order.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                self.order.swap(i, j);
            }
        }
        self.pos = 0;
        self.addrs.clear();
        self.addr_pos = 0;
        self.failures = 0;
        self.phase = Phase::Idle;
        self.local = None;
        self.server = None;
        self.last_control = None;
        self.connect(now, rng)
    }
}

// ---------------------------------------------------------------------------
// Server
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SPhase {
    Reset,
    Tls,
    KeyEx,
    Connected,
}

#[derive(Debug, Clone)]
struct Instance {
    id: u64,
    session: u64,
    peer_session: u64,
    phase: SPhase,
    v4: Option<Ipv4Addr>,
    v6: Option<Ipv6Addr>,
    last_rx: Instant,
    last_tx: Instant,
    last_reply: Option<Message>,
    tcp: bool,
    /// The server's address and port the client's packets come to.
    me: SocketAddr,
    /// The common name of the client's certificate, once seen.
    common_name: Option<u64>,
}

/// An OpenVPN server process, or the listening end of a TAP link.
#[derive(Debug, Clone)]
pub struct Server {
    local: Option<IpAddr>,
    port: u16,
    tcp: bool,
    tap: bool,
    /// `None`: point-to-point TAP (one peer, no pool, no push).
    pool4: Option<Ipv4Net>,
    pool6: Option<Ipv6Net>,
    /// `ifconfig-pool-persist` entries: common name → addresses, and
    /// whether they are fixed (the file is read only: SECONDS 0).
    pool_entries: BTreeMap<u64, (Option<Ipv4Addr>, Option<Ipv6Addr>)>,
    pool_fixed: bool,
    /// `--multihome`: UDP answers leave from the address they answer.
    multihome: bool,
    push: Vec<Push>,
    push_ping: Option<u32>,
    push_restart: Option<u32>,
    ping: Option<u32>,
    ping_restart: Option<u32>,
    tls: TlsIds,
    p2p: bool,
    scripts: Scripts,
    clients: BTreeMap<SocketAddr, Instance>,
    ids: BTreeMap<u64, SocketAddr>,
    next_id: u64,
}

const S_PING: u64 = 0;
const S_PING_RESTART: u64 = 1;

impl Server {
    /// A server config or a TAP `tls-server` config, from its text.
    pub fn from_text(
        text: &str,
        read: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Server, OpenVpnError> {
        use vpnsim_render::format::Format;
        let cfg = Config::parse(text).map_err(|e| OpenVpnError(e.to_string()))?;
        if cfg.get("server").is_some()
            || cfg.get("mode").is_some()
            || cfg.get("server-ipv6").is_some()
        {
            let s = ServerConf::from_config(&cfg).map_err(|e| OpenVpnError(e.to_string()))?;
            Server::from_server(&s, read)
        } else {
            let t = TapPeer::from_config(&cfg).map_err(|e| OpenVpnError(e.to_string()))?;
            Server::from_tap(&t, read)
        }
    }

    pub fn from_server(
        s: &ServerConf,
        read: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Server, OpenVpnError> {
        let (ping, ping_restart) = s.liveness.effective(true);
        let (push_ping, push_restart) = match s.liveness.keepalive {
            Some((i, t)) => (Some(i), Some(t)),
            None => (None, None),
        };
        let push = s.push.clone();
        // OpenVPN only warns when the pool file cannot be read, and skips
        // lines it cannot use; the model reads what it can.
        let pool_entries = s
            .pool_persist
            .as_ref()
            .and_then(|pp| read(&pp.path))
            .and_then(|text| {
                use vpnsim_render::format::Format;
                vpnsim_render::openvpn::PoolFile::parse(&text).ok()
            })
            .map(|f| {
                f.entries
                    .iter()
                    .map(|e| (common_name_id(&e.common_name), (e.v4, e.v6)))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Server {
            local: s.local,
            port: s.port,
            tcp: is_tcp_proto(s.proto),
            tap: s.dev.kind() == Some(vpnsim_render::openvpn::DevType::Tap),
            pool4: s.network,
            pool6: s.network6,
            pool_entries,
            pool_fixed: s.pool_persist.as_ref().is_some_and(|pp| pp.fixed()),
            multihome: s.extra.iter().any(|d| d.name() == "multihome"),
            push,
            push_ping,
            push_restart,
            ping,
            ping_restart,
            tls: TlsIds::new(&s.tls, read)?,
            p2p: false,
            scripts: Scripts {
                route_up: s.daemon.route_up.clone(),
                route_pre_down: s.daemon.route_pre_down.clone(),
            },
            clients: BTreeMap::new(),
            ids: BTreeMap::new(),
            next_id: 0,
        })
    }

    pub fn from_tap(
        t: &TapPeer,
        read: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Server, OpenVpnError> {
        let TapSide::Listen { local, port } = &t.side else {
            return err("a dialing TAP end is a Client");
        };
        let (ping, ping_restart) = t.liveness.effective(false);
        Ok(Server {
            local: *local,
            port: *port,
            tcp: is_tcp_proto(t.proto),
            tap: true,
            pool4: None,
            pool6: None,
            pool_entries: BTreeMap::new(),
            pool_fixed: false,
            multihome: t.extra.iter().any(|d| d.name() == "multihome"),
            push: Vec::new(),
            push_ping: None,
            push_restart: None,
            ping,
            ping_restart,
            tls: TlsIds::new(&t.tls, read)?,
            p2p: true,
            scripts: Scripts {
                route_up: t.daemon.route_up.clone(),
                route_pre_down: t.daemon.route_pre_down.clone(),
            },
            clients: BTreeMap::new(),
            ids: BTreeMap::new(),
            next_id: 0,
        })
    }

    pub fn scripts(&self) -> &Scripts {
        &self.scripts
    }

    /// The port and protocol it listens on.
    pub fn listen(&self) -> (Option<IpAddr>, u16, bool) {
        (self.local, self.port, self.tcp)
    }

    /// `server`'s own tunnel address (.1 of the pool).
    pub fn tunnel_address(&self) -> Option<Ipv4Addr> {
        self.pool4
            .map(|n| Ipv4Addr::from(u32::from(n.network()).wrapping_add(1)))
    }

    /// Connected clients: underlay address and tunnel addresses.
    pub fn clients(&self) -> Vec<(SocketAddr, Option<Ipv4Addr>, Option<Ipv6Addr>)> {
        self.clients
            .iter()
            .filter(|(_, c)| c.phase == SPhase::Connected)
            .map(|(a, c)| (*a, c.v4, c.v6))
            .collect()
    }

    /// Whether this underlay packet is for the server (its port and protocol).
    pub fn accepts(&self, p: &Packet) -> bool {
        // `local 0.0.0.0` / `local ::` binds every address, as the socket
        // API does with the unspecified address.
        if self
            .local
            .is_some_and(|l| !l.is_unspecified() && l != p.dst)
        {
            return false;
        }
        match &p.payload {
            // Messages of a TCP session (carried as UDP for now) go to the
            // TCP process of the port, the others to the UDP one.
            Payload::Udp {
                dst_port,
                body: Body::OpenVpn(m),
                ..
            } => *dst_port == self.port && m.is_tcp() == self.tcp,
            Payload::Tcp { dst_port, .. } => self.tcp && *dst_port == self.port,
            _ => false,
        }
    }

    /// The pool entry of a common name, if the pool file has one and it
    /// is free.
    fn entry_of(&self, cn: Option<u64>) -> Option<(Option<Ipv4Addr>, Option<Ipv6Addr>)> {
        let (v4, v6) = *self.pool_entries.get(&cn?)?;
        let v4 = v4.filter(|a| self.pool4.is_some_and(|n| n.contains(a)));
        let v6 = v6.filter(|a| self.pool6.is_some_and(|n| n.contains(a)));
        let in_use = self
            .clients
            .values()
            .any(|c| (v4.is_some() && c.v4 == v4) || (v6.is_some() && c.v6 == v6));
        (!in_use && (v4.is_some() || v6.is_some())).then_some((v4, v6))
    }

    /// An address another common name's fixed entry holds.
    fn reserved4(&self, a: Ipv4Addr) -> bool {
        self.pool_fixed && self.pool_entries.values().any(|(v4, _)| *v4 == Some(a))
    }

    fn reserved6(&self, a: Ipv6Addr) -> bool {
        self.pool_fixed && self.pool_entries.values().any(|(_, v6)| *v6 == Some(a))
    }

    fn alloc4(&self, cn: Option<u64>) -> Option<Ipv4Addr> {
        let net = self.pool4?;
        if let Some((v4, _)) = self.entry_of(cn) {
            return v4;
        }
        let base = u32::from(net.network());
        let last = u32::from(net.broadcast());
        (base + 2..last)
            .map(Ipv4Addr::from)
            .filter(|a| !self.reserved4(*a))
            .find(|a| !self.clients.values().any(|c| c.v4 == Some(*a)))
    }

    fn alloc6(&self, cn: Option<u64>) -> Option<Ipv6Addr> {
        let net = self.pool6?;
        if let Some((_, v6)) = self.entry_of(cn) {
            return v6;
        }
        let base = u128::from(net.network());
        (0x1000u128..0x1000 + 0x10000)
            .map(|o| Ipv6Addr::from(base + o))
            .filter(|a| net.contains(a) && !self.reserved6(*a))
            .find(|a| !self.clients.values().any(|c| c.v6 == Some(*a)))
    }

    /// The source of what the server sends to a peer that wrote to `dst`.
    /// A UDP socket without `local` is bound to the wildcard address and
    /// OpenVPN (without `--multihome`) sends with plain `sendto`, so the
    /// kernel picks the source by route at each send: the unspecified
    /// address here, filled in by the engine. After the host's address
    /// changes, replies leave from the new address, as on a real host.
    /// With `--multihome` OpenVPN answers from the address the datagram
    /// came to (IP_PKTINFO). A TCP connection keeps the address the client
    /// connected to.
    fn local_for(&self, dst: IpAddr) -> SocketAddr {
        let ip = match self.local {
            Some(l) => l,
            None if self.tcp || self.multihome => dst,
            None if dst.is_ipv4() => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            None => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        SocketAddr::new(ip, self.port)
    }

    /// Removes a client's instance; whoever removes a connected one reports
    /// its session gone ([`client_gone`]).
    fn remove(&mut self, addr: SocketAddr) -> Option<Instance> {
        let inst = self.clients.remove(&addr)?;
        self.ids.remove(&inst.id);
        Some(inst)
    }

    fn ctl(&self, inst: &Instance, record: Record) -> Message {
        Message::Control {
            session: inst.session,
            record,
            tls_crypt: self.tls.tls_crypt,
            tcp: inst.tcp,
        }
    }
}

/// The end of a connected client's session on the server.
fn client_gone(addr: SocketAddr, why: &str) -> Action {
    Session::down(addr.to_string(), Some(addr.ip()), why)
}

impl Model for Server {
    fn send(&mut self, now: Instant, _rng: &mut Rng, packet: Packet) -> Vec<Action> {
        let target = if self.p2p {
            self.clients
                .iter()
                .find(|(_, c)| c.phase == SPhase::Connected)
        } else {
            self.clients.iter().find(|(_, c)| {
                c.phase == SPhase::Connected
                    && (Some(packet.dst) == c.v4.map(IpAddr::V4)
                        || Some(packet.dst) == c.v6.map(IpAddr::V6))
            })
        };
        let Some((&addr, inst)) = target else {
            return vec![Action::Drop {
                reason: format!("openvpn: no client with tunnel address {}", packet.dst),
                packet: Box::new(packet),
            }];
        };
        let tcp = inst.tcp;
        let local = inst.me;
        let frame = if self.tap {
            Frame::Ethernet(Box::new(packet))
        } else {
            Frame::Ip(Box::new(packet))
        };
        if let Some(c) = self.clients.get_mut(&addr) {
            c.last_tx = now;
        }
        vec![Action::Transmit(wrap(
            local,
            addr,
            Message::Data {
                peer_id: 0,
                frame,
                tcp,
            },
        ))]
    }

    fn receive(&mut self, now: Instant, rng: &mut Rng, packet: Packet) -> Vec<Action> {
        let (_, sp, _) = packet.ports();
        let from = SocketAddr::new(packet.src, sp);
        let me = self.local_for(packet.dst);
        let msg = match &packet.payload {
            Payload::Udp {
                body: Body::OpenVpn(m),
                ..
            } => m.clone(),
            Payload::Tcp { flags, .. } if self.tcp => {
                if flags.syn && !flags.ack {
                    return vec![Action::Transmit(tcp_segment(me, from, true, true, false))];
                }
                if flags.rst {
                    // The client's connection is gone: so is its instance.
                    let mut out = Vec::new();
                    if let Some(old) = self.remove(from) {
                        out.push(Action::Log(format!(
                            "{from} Connection reset, restarting [0]"
                        )));
                        if old.phase == SPhase::Connected {
                            out.push(client_gone(from, "connection reset"));
                            if self.p2p {
                                out.push(Action::LinkState { up: false });
                            }
                        }
                    }
                    return out;
                }
                return Vec::new();
            }
            _ => {
                return vec![Action::Drop {
                    packet: Box::new(packet),
                    reason: "openvpn: not an OpenVPN packet".into(),
                }];
            }
        };
        let drop = |p: Packet, r: String| Action::Drop {
            packet: Box::new(p),
            reason: r,
        };
        if let Message::HardResetClient {
            session,
            tls_crypt,
            tcp,
        } = &msg
        {
            if *tls_crypt != self.tls.tls_crypt {
                return vec![drop(
                    packet,
                    "tls-crypt unwrap error: packet authentication failed (wrong tls-crypt key)"
                        .into(),
                )];
            }
            if let Some(inst) = self.clients.get(&from)
                && inst.peer_session == *session
            {
                // A retransmitted reset: answer again.
                return inst
                    .last_reply
                    .clone()
                    .map(|m| vec![Action::Transmit(wrap(me, from, m))])
                    .unwrap_or_default();
            }
            let mut out = Vec::new();
            if let Some(old) = self.remove(from)
                && old.phase == SPhase::Connected
            {
                out.push(client_gone(from, "the client started over"));
                if self.p2p {
                    out.push(Action::LinkState { up: false });
                }
            }
            if self.p2p {
                // One peer: a new reset replaces the old one.
                let others: Vec<SocketAddr> = self.clients.keys().copied().collect();
                for a in others {
                    if let Some(old) = self.remove(a)
                        && old.phase == SPhase::Connected
                    {
                        out.push(client_gone(a, "replaced by a new connection"));
                        out.push(Action::LinkState { up: false });
                    }
                }
            }
            self.next_id += 1;
            let id = self.next_id;
            let inst = Instance {
                id,
                session: rng.next_u64().max(1),
                peer_session: *session,
                phase: SPhase::Reset,
                v4: None,
                v6: None,
                last_rx: now,
                last_tx: now,
                last_reply: None,
                tcp: *tcp,
                me,
                common_name: None,
            };
            let reply = Message::HardResetServer {
                session: inst.session,
                peer_session: *session,
                tls_crypt: self.tls.tls_crypt,
                tcp: *tcp,
            };
            let mut inst = inst;
            inst.last_reply = Some(reply.clone());
            inst.last_tx = now;
            self.clients.insert(from, inst);
            self.ids.insert(id, from);
            out.push(Action::Transmit(wrap(me, from, reply)));
            if let Some(r) = self.ping_restart {
                out.push(Action::Timer {
                    at: now + Span::secs(u64::from(r)),
                    token: id * 2 + S_PING_RESTART,
                });
            }
            return out;
        }
        let Some(inst) = self.clients.get(&from).cloned() else {
            return vec![drop(
                packet,
                format!("openvpn: packet from {from} without a session"),
            )];
        };
        if let Some(s) = msg.session()
            && s != inst.peer_session
        {
            return vec![drop(packet, "openvpn: packet for another session".into())];
        }
        if let Some(c) = self.clients.get_mut(&from) {
            c.last_rx = now;
        }
        let resend = |inst: &Instance| {
            inst.last_reply
                .clone()
                .map(|m| vec![Action::Transmit(wrap(me, from, m))])
                .unwrap_or_default()
        };
        match (msg, inst.phase) {
            (
                Message::Control {
                    record: Record::ClientHello,
                    ..
                },
                SPhase::Reset,
            ) => {
                let reply = self.ctl(
                    &inst,
                    Record::ServerFlight {
                        cert: self.tls.cert,
                    },
                );
                if let Some(c) = self.clients.get_mut(&from) {
                    c.phase = SPhase::Tls;
                    c.last_reply = Some(reply.clone());
                    c.last_tx = now;
                }
                vec![Action::Transmit(wrap(me, from, reply))]
            }
            (
                Message::Control {
                    record: Record::ClientHello,
                    ..
                },
                SPhase::Tls,
            ) => resend(&inst),
            (
                Message::Control {
                    record: Record::ClientFlight { cert },
                    ..
                },
                SPhase::Tls,
            ) => {
                if !cert.issued_by(&self.tls.ca) {
                    let reply = self.ctl(&inst, Record::Alert("unknown CA".into()));
                    self.remove(from);
                    return vec![
                        drop(
                            packet,
                            format!(
                                "VERIFY ERROR: {from}: client certificate not issued by the server's CA"
                            ),
                        ),
                        Action::Transmit(wrap(me, from, reply)),
                    ];
                }
                let reply = self.ctl(&inst, Record::ServerKeyMethod);
                let mut out = vec![Action::Transmit(wrap(me, from, reply.clone()))];
                if let Some(c) = self.clients.get_mut(&from) {
                    c.common_name = cert.common_name;
                    c.phase = SPhase::KeyEx;
                    c.last_reply = Some(reply);
                    c.last_tx = now;
                }
                if self.p2p {
                    if let Some(c) = self.clients.get_mut(&from) {
                        c.phase = SPhase::Connected;
                    }
                    if let Some(s) = &self.scripts.route_up {
                        out.push(Action::Log(format!("route-up: {s}")));
                    }
                    out.push(Action::Log(format!(
                        "Initialization Sequence Completed (peer {from})"
                    )));
                    out.push(Action::LinkState { up: true });
                    out.push(Session::up(
                        from.to_string(),
                        Some(from.ip()),
                        "Initialization Sequence Completed",
                    ));
                    if let Some(p) = self.ping {
                        out.push(Action::Timer {
                            at: now + Span::secs(u64::from(p)),
                            token: inst.id * 2 + S_PING,
                        });
                    }
                }
                out
            }
            (
                Message::Control {
                    record: Record::ClientFlight { .. },
                    ..
                },
                SPhase::KeyEx | SPhase::Connected,
            ) => resend(&inst),
            (
                Message::Control {
                    record: Record::PushRequest,
                    ..
                },
                SPhase::KeyEx | SPhase::Connected,
            ) => {
                if inst.phase == SPhase::Connected {
                    return resend(&inst);
                }
                let v4 = self.alloc4(inst.common_name);
                let v6 = self.alloc6(inst.common_name);
                if self.pool4.is_some() && v4.is_none() {
                    return vec![drop(packet, "openvpn: address pool exhausted".into())];
                }
                let reply_body = PushReply {
                    ifconfig: v4.and_then(|a| {
                        self.pool4
                            .and_then(|n| Ipv4Net::new(a, n.prefix_len()).ok())
                    }),
                    ifconfig_ipv6: v6.and_then(|a| {
                        self.pool6
                            .and_then(|n| Ipv6Net::new(a, n.prefix_len()).ok())
                    }),
                    ping: self.push_ping,
                    ping_restart: self.push_restart,
                    options: self.push.clone(),
                };
                let reply = self.ctl(&inst, Record::PushReply(reply_body));
                if let Some(c) = self.clients.get_mut(&from) {
                    c.phase = SPhase::Connected;
                    c.v4 = v4;
                    c.v6 = v6;
                    c.last_reply = Some(reply.clone());
                    c.last_tx = now;
                }
                let mut out = vec![
                    Action::Log(format!(
                        "{from}: client connected, ifconfig {}{}",
                        v4.map_or_else(|| "-".into(), |a| a.to_string()),
                        v6.map_or_else(String::new, |a| format!(" / {a}"))
                    )),
                    Action::Transmit(wrap(me, from, reply)),
                    Session::up(
                        from.to_string(),
                        Some(from.ip()),
                        format!(
                            "client connected, ifconfig {}",
                            v4.map(IpAddr::V4)
                                .or(v6.map(IpAddr::V6))
                                .map_or_else(|| "-".into(), |a| a.to_string())
                        ),
                    ),
                ];
                if let Some(p) = self.ping {
                    out.push(Action::Timer {
                        at: now + Span::secs(u64::from(p)),
                        token: inst.id * 2 + S_PING,
                    });
                }
                out
            }
            (Message::Data { frame, .. }, SPhase::Connected) => match frame {
                Frame::Ping => Vec::new(),
                Frame::Ip(p) | Frame::Ethernet(p) => {
                    if !self.p2p {
                        let ok = Some(p.src) == inst.v4.map(IpAddr::V4)
                            || Some(p.src) == inst.v6.map(IpAddr::V6);
                        if !ok {
                            let reason = format!(
                                "MULTI: bad source address from client [{}], packet dropped",
                                p.src
                            );
                            return vec![drop(*p, reason)];
                        }
                    }
                    vec![Action::Deliver(*p)]
                }
            },
            (Message::Ack { .. }, _) => Vec::new(),
            (m, ph) => {
                let what = format!("openvpn: unexpected {m:?} in {ph:?}");
                vec![drop(packet, what.chars().take(120).collect())]
            }
        }
    }

    fn on_timer(&mut self, now: Instant, _rng: &mut Rng, token: u64) -> Vec<Action> {
        let id = token / 2;
        let Some(&addr) = self.ids.get(&id) else {
            return Vec::new();
        };
        let Some(inst) = self.clients.get(&addr).cloned() else {
            return Vec::new();
        };
        match token % 2 {
            S_PING => {
                let Some(p) = self.ping else {
                    return Vec::new();
                };
                if inst.phase != SPhase::Connected {
                    return Vec::new();
                }
                let every = Span::secs(u64::from(p));
                let mut out = Vec::new();
                let mut last_tx = inst.last_tx;
                if now >= inst.last_tx + every {
                    out.push(Action::Transmit(wrap(
                        inst.me,
                        addr,
                        Message::Data {
                            peer_id: 0,
                            frame: Frame::Ping,
                            tcp: inst.tcp,
                        },
                    )));
                    last_tx = now;
                    if let Some(c) = self.clients.get_mut(&addr) {
                        c.last_tx = now;
                    }
                }
                out.push(Action::Timer {
                    at: last_tx + every,
                    token,
                });
                out
            }
            _ => {
                let Some(r) = self.ping_restart else {
                    return Vec::new();
                };
                let limit = Span::secs(u64::from(r));
                if now >= inst.last_rx + limit {
                    self.remove(addr);
                    let mut out = vec![Action::Log(format!(
                        "{addr}: Inactivity timeout (--ping-restart), client instance removed"
                    ))];
                    if inst.phase == SPhase::Connected {
                        out.push(client_gone(addr, "ping-restart"));
                    }
                    if self.p2p && inst.phase == SPhase::Connected {
                        if let Some(s) = &self.scripts.route_pre_down {
                            out.push(Action::Log(format!("route-pre-down: {s}")));
                        }
                        out.push(Action::LinkState { up: false });
                    }
                    out
                } else {
                    vec![Action::Timer {
                        at: inst.last_rx + limit,
                        token,
                    }]
                }
            }
        }
    }

    fn start(&mut self, _now: Instant, _rng: &mut Rng) -> Vec<Action> {
        self.clients.clear();
        self.ids.clear();
        Vec::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::Icmp;
    use crate::proto::ipsec::testnet::{Net, file, generated};
    use vpnsim_render::tree::FileSet;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    fn ping(src: &str, dst: &str) -> Packet {
        Packet {
            src: ip(src),
            dst: ip(dst),
            ttl: 64,
            dont_fragment: false,
            payload: Payload::Icmp(Icmp::EchoRequest {
                id: 1,
                seq: 1,
                len: 56,
            }),
        }
    }

    /// A host of the test network: one client, or server processes that
    /// each take the packets they accept.
    #[derive(Debug)]
    #[allow(clippy::large_enum_variant)]
    enum Host {
        C(Client),
        /// Server processes and the host's address (learnt from the first
        /// packet it gets), which stands in for the kernel's source
        /// selection of a wildcard-bound socket.
        S(Vec<Server>, Option<IpAddr>),
    }

    /// Fills the unspecified source of transmitted packets, as the kernel
    /// does for an unbound socket.
    fn kernel_source(actions: Vec<Action>, addr: Option<IpAddr>) -> Vec<Action> {
        actions
            .into_iter()
            .map(|a| match (a, addr) {
                (Action::Transmit(mut p), Some(src)) if p.src.is_unspecified() => {
                    p.src = src;
                    Action::Transmit(p)
                }
                (a, _) => a,
            })
            .collect()
    }

    impl Model for Host {
        fn send(&mut self, now: Instant, rng: &mut Rng, packet: Packet) -> Vec<Action> {
            match self {
                Host::C(c) => c.send(now, rng, packet),
                Host::S(s, a) => kernel_source(s[0].send(now, rng, packet), *a),
            }
        }
        fn receive(&mut self, now: Instant, rng: &mut Rng, packet: Packet) -> Vec<Action> {
            match self {
                Host::C(c) => c.receive(now, rng, packet),
                Host::S(s, a) => {
                    a.get_or_insert(packet.dst);
                    let addr = *a;
                    match s.iter_mut().find(|x| x.accepts(&packet)) {
                        Some(x) => kernel_source(x.receive(now, rng, packet), addr),
                        None => vec![Action::Drop {
                            packet: Box::new(packet),
                            reason: "port closed".into(),
                        }],
                    }
                }
            }
        }
        fn on_timer(&mut self, now: Instant, rng: &mut Rng, token: u64) -> Vec<Action> {
            match self {
                Host::C(c) => c.on_timer(now, rng, token),
                // Test servers: one process answers timers (UDP first).
                Host::S(s, a) => kernel_source(s[0].on_timer(now, rng, token), *a),
            }
        }
        fn start(&mut self, now: Instant, rng: &mut Rng) -> Vec<Action> {
            match self {
                Host::C(c) => c.start(now, rng),
                Host::S(s, _) => s.iter_mut().flat_map(|x| x.start(now, rng)).collect(),
            }
        }
    }

    impl Host {
        fn client(&self) -> &Client {
            match self {
                Host::C(c) => c,
                Host::S(..) => panic!("not a client"),
            }
        }
    }

    fn reader<'a>(files: &'a FileSet, host: &'a str) -> impl Fn(&str) -> Option<String> + 'a {
        move |path: &str| {
            files
                .get(host, path.trim_start_matches('/'))
                .map(|f| f.contents.clone())
        }
    }

    fn edu_resolver() -> Box<Resolver> {
        Box::new(|name: &str, rng: &mut Rng| {
            let mut v = match name {
                "nodes.frkovpn.tuxed.net" => vec![ip("145.0.6.72"), ip("145.0.6.73")],
                "node-a.frkovpn.tuxed.net" => vec![ip("145.0.6.72")],
                "node-b.frkovpn.tuxed.net" => vec![ip("145.0.6.73")],
                _ => vec![],
            };
            if rng.below(2) == 1 {
                v.reverse();
            }
            v
        })
    }

    fn node(files: &FileSet, host: &str, procs: &[&str]) -> Host {
        let read = reader(files, host);
        Host::S(
            procs
                .iter()
                .map(|p| {
                    let text = file(files, host, &format!("etc/openvpn/server/{p}.conf"));
                    Server::from_text(&text, &read).unwrap_or_else(|e| panic!("{e}"))
                })
                .collect(),
            None,
        )
    }

    /// client-1 (192.168.1.10 behind 198.51.100.11), node-a, node-b; 10 ms.
    fn edu(seed: u64, ca_override: Option<String>) -> Net<Host> {
        edu_as("client-1", seed, ca_override)
    }

    /// `edu` with another client's profile (certificate) at 192.168.1.10.
    fn edu_as(client: &str, seed: u64, ca_override: Option<String>) -> Net<Host> {
        let files = generated("eduvpn-multinode");
        let profile = file(&files, client, "etc/openvpn/client/frkovpn-node-a.conf");
        let c = Client::from_text(&profile, &[ip("192.168.1.10")], &|_| None, edu_resolver())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut net = Net::new(Span::millis(10));
        net.rng = Rng::new(seed);
        net.add(Host::C(c), &["192.168.1.10"]);
        let a = match &ca_override {
            Some(ca) => {
                let read = |p: &str| {
                    if p.ends_with("ca.crt") {
                        Some(ca.clone())
                    } else {
                        reader(&files, "node-a")(p)
                    }
                };
                let t = file(&files, "node-a", "etc/openvpn/server/tun-1-0.conf");
                let t1 = file(&files, "node-a", "etc/openvpn/server/tun-1-1.conf");
                Host::S(
                    vec![
                        Server::from_text(&t, &read).unwrap_or_else(|e| panic!("{e}")),
                        Server::from_text(&t1, &read).unwrap_or_else(|e| panic!("{e}")),
                    ],
                    None,
                )
            }
            None => node(&files, "node-a", &["tun-1-0", "tun-1-1"]),
        };
        net.add(a, &["145.0.6.72"]);
        net.add(
            node(&files, "node-b", &["tun-2-0", "tun-2-1"]),
            &["145.0.6.73"],
        );
        net.nat = vec![(ip("192.168.1.10"), ip("198.51.100.11"))];
        net.start(1);
        net.start(2);
        net.start(0);
        net
    }

    #[test]
    fn pushed_routes_follow_the_options_and_the_pushed_families() {
        let parse = |t: &str| Push::parse(t).unwrap_or_else(|e| panic!("{e}"));
        let mut r = PushReply {
            ifconfig: "10.8.0.2/24".parse().ok(),
            options: vec![
                parse("route 192.168.7.0 255.255.255.0"),
                parse("route-ipv6 2001:db8:7::/48"),
                parse("redirect-gateway def1 local"),
            ],
            ..PushReply::default()
        };
        let got = r.routes(Some(ip("192.0.2.1")));
        let nets: Vec<String> = got.tunnel.iter().map(|n| n.to_string()).collect();
        // No ifconfig-ipv6: no IPv6 routes; `local`: no host route.
        assert_eq!(nets, ["192.168.7.0/24", "0.0.0.0/1", "128.0.0.0/1"]);
        assert_eq!(got.bypass, None);
        r.options = vec![parse("redirect-gateway !ipv4 ipv6")];
        let got = r.routes(Some(ip("192.0.2.1")));
        assert!(got.tunnel.is_empty());
        assert_eq!(got.bypass, Some(ip("192.0.2.1")));
    }

    #[test]
    fn wire_sizes() {
        let ping = Message::Data {
            peer_id: 0,
            frame: Frame::Ping,
            tcp: false,
        };
        assert_eq!(ping.wire_len(), 4 + 4 + 16 + 16);
        let reset = Message::HardResetClient {
            session: 1,
            tls_crypt: Some(1),
            tcp: false,
        };
        assert_eq!(reset.wire_len(), 49 + 1 + 4);
        let reset_tcp = Message::HardResetClient {
            session: 1,
            tls_crypt: None,
            tcp: true,
        };
        assert_eq!(reset_tcp.wire_len(), 1 + 8 + 1 + 4 + 2);
        let data = Message::Data {
            peer_id: 0,
            frame: Frame::Ethernet(Box::new(super::tests::ping("10.0.0.1", "10.0.0.2"))),
            tcp: false,
        };
        assert_eq!(data.wire_len(), 24 + 14 + 84);
    }

    #[test]
    fn certificates_chain_to_their_ca_only() {
        let files = generated("eduvpn-multinode");
        let bond = generated("dual-path-bond");
        let ca = CertId::from_pem(&file(
            &files,
            "node-a",
            "etc/openvpn/server/tls/node-a/ca.crt",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        let server = CertId::from_pem(&file(
            &files,
            "node-a",
            "etc/openvpn/server/tls/node-a/server.crt",
        ))
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(server.issued_by(&ca));
        assert!(server.authority_key_id.is_some() && ca.subject_key_id.is_some());
        assert!(!ca.issued_by(&server));
        let profile = file(&bond, "machine-a", "etc/openvpn/ovn0.conf");
        let cfg = <Config as vpnsim_render::format::Format>::parse(&profile)
            .unwrap_or_else(|e| panic!("{e}"));
        let t = TapPeer::from_config(&cfg).unwrap_or_else(|e| panic!("{e}"));
        let ids = TlsIds::new(&t.tls, &|_| None).unwrap_or_else(|e| panic!("{e}"));
        assert!(ids.cert.issued_by(&ids.ca));
        assert!(
            !ids.cert.issued_by(&ca),
            "the bond's machine cert is not from the eduVPN CA"
        );
        assert!(CertId::from_pem("garbage").is_err());
    }

    #[test]
    fn a_client_connects_in_four_round_trips_and_gets_its_pool_entry() {
        // Try seeds until the first remote is a UDP one (remote-random).
        // client-1 has its fixed pool entry on node-a (.2, ::1000); node-b's
        // pool file reserves .2 and .3 for its own clients (client-2,
        // client-4), so there it gets the lowest entry nobody holds.
        for seed in 0..20 {
            let mut net = edu(seed, None);
            let first = net.nodes[0].model.client().current().cloned();
            if first.as_ref().is_none_or(|r| r.tcp) {
                continue;
            }
            net.run_until(Instant(Span::millis(79).0));
            assert_eq!(net.nodes[0].model.client().connected_to(), None);
            net.run_until(Instant(Span::millis(80).0));
            let c = net.nodes[0].model.client();
            let server = c.connected_to().unwrap_or_else(|| panic!("not connected"));
            let (v4, v6) = c.assigned();
            let (want, want6) = if server.ip() == ip("145.0.6.72") {
                ("10.1.0.2/26", 0x1000)
            } else {
                ("10.2.0.4/26", 0x1002)
            };
            assert_eq!(v4.map(|n| n.to_string()).as_deref(), Some(want));
            assert!(
                v6.is_some_and(|n| n.addr().segments()[4..] == [0, 0, 0, want6]),
                "{v6:?}"
            );
            assert!(!net.logs(0, "Initialization Sequence Completed").is_empty());
            // Pushed keepalive 10 60: ping 10, ping-restart 60.
            assert_eq!((c.eff_ping, c.eff_restart), (Some(10), Some(60)));
            // Pushed `redirect-gateway def1 ipv6` and DNS: the def1 halves,
            // OpenVPN's four IPv6 prefixes, a host route to the server.
            let r = c.pushed_routes();
            let nets: Vec<String> = r.tunnel.iter().map(|n| n.to_string()).collect();
            assert_eq!(
                nets,
                [
                    "0.0.0.0/1",
                    "128.0.0.0/1",
                    "::/3",
                    "2000::/4",
                    "3000::/4",
                    "fc00::/7"
                ]
            );
            assert_eq!(r.bypass, Some(server.ip()));
            assert_eq!(r.dns, [ip("9.9.9.9"), ip("2620:fe::fe")]);
            assert!(
                c.pushed()
                    .text()
                    .starts_with("PUSH_REPLY,redirect-gateway def1 ipv6,dhcp-option DNS 9.9.9.9,")
            );
            // Data both ways, source address checked by the server.
            let k = if server.ip() == ip("145.0.6.72") {
                1
            } else {
                2
            };
            let me = v4.map(|n| n.addr().to_string()).unwrap_or_default();
            let t0 = net.now;
            net.send(0, ping(&me, "9.9.9.9"));
            net.send(0, ping("10.99.0.5", "9.9.9.9"));
            net.run_until(Instant(Span::millis(200).0));
            assert_eq!(net.delivered(k, t0).len(), 1);
            assert_eq!(net.drops(k, "bad source address").len(), 1);
            net.send(k, ping("9.9.9.9", &me));
            net.run_until(Instant(Span::millis(300).0));
            assert_eq!(net.delivered(0, t0).len(), 1);
            return;
        }
        panic!("no seed put a UDP remote first");
    }

    #[test]
    fn a_pool_entry_belongs_to_its_common_name_whoever_connects_first() {
        // client-3 is node-a's second client: the pool files give it entry
        // 1 of each process (.3 on udp, .67 on tcp), also when it connects
        // alone; on node-b, whose entries hold client-2 and client-4, it
        // gets the lowest entry nobody holds.
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..20 {
            let mut net = edu_as("client-3", seed, None);
            net.run_until(Instant(Span::secs(30).0));
            let c = net.nodes[0].model.client();
            let server = c.connected_to().unwrap_or_else(|| panic!("not connected"));
            let tcp = c.current().is_some_and(|r| r.tcp);
            let want = match (server.ip() == ip("145.0.6.72"), tcp) {
                (true, false) => "10.1.0.3/26",
                (true, true) => "10.1.0.67/26",
                (false, false) => "10.2.0.4/26",
                (false, true) => "10.2.0.68/26",
            };
            let (v4, _) = c.assigned();
            assert_eq!(
                v4.map(|n| n.to_string()).as_deref(),
                Some(want),
                "seed {seed}"
            );
            seen.insert(want);
        }
        assert!(seen.contains("10.1.0.3/26"), "{seen:?}");
    }

    #[test]
    fn remote_random_spreads_the_first_remote() {
        let files = generated("eduvpn-multinode");
        let profile = file(&files, "client-1", "etc/openvpn/client/frkovpn-node-a.conf");
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 0..30 {
            let mut c =
                Client::from_text(&profile, &[ip("192.168.1.10")], &|_| None, edu_resolver())
                    .unwrap_or_else(|e| panic!("{e}"));
            let _ = c.start(Instant::START, &mut Rng::new(seed));
            firsts.insert(c.server.map(|s| s.to_string()));
        }
        assert!(firsts.len() >= 2, "{firsts:?}");
    }

    #[test]
    fn a_node_crash_moves_the_client_to_the_other_node_after_ping_restart() {
        let mut net = edu(3, None);
        net.run_until(Instant(Span::secs(30).0));
        let first = net.nodes[0]
            .model
            .client()
            .connected_to()
            .unwrap_or_else(|| panic!("not connected"));
        let dead = if first.ip() == ip("145.0.6.72") { 1 } else { 2 };
        let crash = net.now;
        net.crash(dead);
        net.run_until(crash + Span::secs(59));
        assert!(
            net.nodes[0].model.client().connected_to().is_some(),
            "ping-restart is 60 s"
        );
        net.run_until(crash + Span::secs(61));
        assert_eq!(net.logs(0, "Inactivity timeout (--ping-restart)").len(), 1);
        net.run_until(crash + Span::secs(110));
        let now_on = net.nodes[0]
            .model
            .client()
            .connected_to()
            .unwrap_or_else(|| panic!("not reconnected"));
        assert_ne!(now_on.ip(), first.ip());
        let up = net.logs(0, "Initialization Sequence Completed");
        let back = up.last().map(|t| t.since(crash)).unwrap_or_default();
        // ping-restart 60 + restart pause 5 + at most 4 poll timeouts of 10 s
        // on the dead node's remotes + the handshake.
        assert!(back <= Span::secs(106), "{back}");
        let downs = net
            .events
            .iter()
            .filter(|(_, n, a)| *n == 0 && *a == Action::LinkState { up: false })
            .count();
        assert_eq!(downs, 1);
    }

    #[test]
    fn a_server_with_another_ca_refuses_the_client() {
        let bond = generated("dual-path-bond");
        let cfg = file(&bond, "machine-a", "etc/openvpn/ovn0.conf");
        let start = cfg.find("<ca>").unwrap_or(0) + 5;
        let end = cfg.find("</ca>").unwrap_or(0);
        let other_ca = cfg[start..end].to_string();
        let mut net = edu(0, Some(other_ca));
        // Make node-b unreachable so the client keeps trying node-a.
        net.nodes[2].link = false;
        net.run_until(Instant(Span::secs(120).0));
        assert!(
            !net.drops(1, "VERIFY ERROR").is_empty() || !net.logs(0, "VERIFY ERROR").is_empty()
        );
        assert!(net.nodes[0].model.client().connected_to().is_none());
    }

    #[test]
    fn a_wrong_tls_crypt_key_is_dropped_silently() {
        let files = generated("eduvpn-multinode");
        let profile = file(&files, "client-1", "etc/openvpn/client/frkovpn-node-a.conf").replace(
            "bbfa2c14198d0c27cba5eba2bca1323e",
            "00000000000000000000000000000000",
        );
        let c = Client::from_text(&profile, &[ip("192.168.1.10")], &|_| None, edu_resolver())
            .unwrap_or_else(|e| panic!("{e}"));
        let mut net = Net::new(Span::millis(10));
        net.add(Host::C(c), &["192.168.1.10"]);
        net.add(
            node(&files, "node-a", &["tun-1-0", "tun-1-1"]),
            &["145.0.6.72"],
        );
        net.add(
            node(&files, "node-b", &["tun-2-0", "tun-2-1"]),
            &["145.0.6.73"],
        );
        net.start(1);
        net.start(2);
        net.start(0);
        net.run_until(Instant(Span::secs(25).0));
        assert!(net.nodes[0].model.client().connected_to().is_none());
        let drops = net.drops(1, "tls-crypt unwrap error").len()
            + net.drops(2, "tls-crypt unwrap error").len();
        assert!(drops > 0);
        assert!(!net.logs(0, "Server poll timeout").is_empty());
    }

    fn tap(files: &FileSet, host: &str, conf: &str, locals: &[IpAddr]) -> Host {
        let text = file(files, host, &format!("etc/openvpn/{conf}.conf"));
        if text.contains("\nremote ") {
            Host::C(
                Client::from_text(
                    &text,
                    locals,
                    &|_| None,
                    Box::new(|_: &str, _: &mut Rng| Vec::new()),
                )
                .unwrap_or_else(|e| panic!("{e}")),
            )
        } else {
            Host::S(
                vec![Server::from_text(&text, &|_| None).unwrap_or_else(|e| panic!("{e}"))],
                None,
            )
        }
    }

    #[test]
    fn a_tap_link_comes_up_in_three_round_trips_and_restarts_on_silence() {
        let files = generated("dual-path-bond");
        let a = tap(&files, "machine-a", "ovn0", &[ip("198.51.100.1")]);
        let b = tap(&files, "machine-b", "ovn0", &[ip("198.51.100.2")]);
        let mut net = Net::new(Span::millis(8));
        net.add(a, &["198.51.100.1"]);
        net.add(b, &["198.51.100.2"]);
        net.start(1);
        net.start(0);
        net.run_until(Instant(Span::secs(1).0));
        let up = |net: &Net<Host>, n: usize, up: bool| -> Vec<Instant> {
            net.events
                .iter()
                .filter(|(_, k, a)| *k == n && *a == Action::LinkState { up })
                .map(|(t, _, _)| *t)
                .collect()
        };
        // Listener up when the client's flight arrives (2.5 RTT), dialer
        // when the server's key method arrives (3 RTT).
        assert_eq!(up(&net, 1, true), [Instant(Span::millis(40).0)]);
        assert_eq!(up(&net, 0, true), [Instant(Span::millis(48).0)]);
        assert!(
            !net.logs(0, "route-up: /etc/openvpn/scripts/enslave-bond0.sh")
                .is_empty()
        );
        assert_eq!(
            net.nodes[0].model.client().scripts().route_up.as_deref(),
            Some("/etc/openvpn/scripts/enslave-bond0.sh")
        );
        // A frame across.
        let t0 = net.now;
        net.send(0, ping("10.0.0.1", "10.0.0.2"));
        net.run_until(Instant(Span::secs(2).0));
        assert_eq!(net.delivered(1, t0).len(), 1);
        // The path dies: both ends restart 60 s after they last heard.
        net.nodes[1].link = false;
        let cut = net.now;
        net.run_until(cut + Span::secs(70));
        let down_a = up(&net, 0, false);
        let down_b = up(&net, 1, false);
        assert_eq!(down_a.len(), 1);
        assert_eq!(down_b.len(), 1);
        assert!(down_a[0].since(cut) <= Span::secs(60), "{}", down_a[0]);
        // It returns: the dialer's retries bring the link back.
        net.nodes[1].link = true;
        let back = net.now;
        net.run_until(back + Span::secs(30));
        let ups = up(&net, 0, true);
        assert_eq!(ups.len(), 2, "{ups:?}");
    }

    #[test]
    fn an_unanswered_reset_fails_after_the_hand_window_and_retries_after_one_second() {
        // OpenVPN 2.6: hand-window 60 s counts from the first reset
        // (ssl.c session_move_pre_start), so it ends the attempt before the
        // 120 s server-poll-timeout; then connect-retry's 1 s pause
        // (options.c init_options).
        assert_eq!(HAND_WINDOW, Span::secs(60));
        assert_eq!(SERVER_POLL_TIMEOUT, Span::secs(120));
        assert_eq!(CONNECT_RETRY, Span::secs(1));
        assert_eq!(TLS_TIMEOUT, Span::secs(2));
        let files = generated("dual-path-bond");
        let a = tap(&files, "machine-a", "ovn0", &[ip("198.51.100.1")]);
        let b = tap(&files, "machine-b", "ovn0", &[ip("198.51.100.2")]);
        let mut net = Net::new(Span::millis(8));
        net.add(a, &["198.51.100.1"]);
        net.add(b, &["198.51.100.2"]);
        net.nodes[1].link = false;
        net.start(1);
        net.start(0);
        net.run_until(Instant(Span::secs(70).0));
        assert_eq!(
            net.logs(0, "TLS key negotiation failed"),
            [Instant(Span::secs(60).0)]
        );
        assert!(net.logs(0, "Server poll timeout").is_empty());
        assert_eq!(net.logs(0, "Restart pause, 1.000s").len(), 1);
        let tries = net.logs(0, "Attempting to establish");
        assert_eq!(tries, [Instant::START, Instant(Span::secs(61).0)]);
        // Resets of the second attempt: 61, 63, 67 s (2 s doubling).
        let resets: Vec<Instant> = net
            .sent
            .iter()
            .filter(|(t, k, p)| {
                *k == 0
                    && *t >= Instant(Span::secs(61).0)
                    && matches!(
                        &p.payload,
                        Payload::Udp {
                            body: Body::OpenVpn(Message::HardResetClient { .. }),
                            ..
                        }
                    )
            })
            .map(|(t, _, _)| *t)
            .collect();
        assert_eq!(
            resets,
            [61, 63, 67].map(|s| Instant(Span::secs(s).0)),
            "{resets:?}"
        );
        // The path returns: the next retransmission (75 s) brings it up.
        net.nodes[1].link = true;
        net.run_until(Instant(Span::secs(76).0));
        let ups: Vec<Instant> = net
            .events
            .iter()
            .filter(|(_, k, a)| *k == 0 && *a == Action::LinkState { up: true })
            .map(|(t, _, _)| *t)
            .collect();
        assert_eq!(ups.len(), 1, "{ups:?}");
        assert!(ups[0] >= Instant(Span::secs(75).0), "{ups:?}");
    }

    #[test]
    fn a_wildcard_bound_listener_lets_the_kernel_pick_its_source() {
        // No `local`: the UDP socket is bound to 0.0.0.0 and replies leave
        // from the address the route gives (the engine fills it in), so a
        // host whose address changed answers from the new one.
        let files = generated("dual-path-bond");
        let a_text = file(&files, "machine-a", "etc/openvpn/ovn0.conf");
        let b_text = file(&files, "machine-b", "etc/openvpn/ovn0.conf");
        let mut a = Client::from_text(
            &a_text,
            &[ip("198.51.100.1")],
            &|_| None,
            Box::new(|_: &str, _: &mut Rng| Vec::new()),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let mut b = Server::from_text(&b_text, &|_| None).unwrap_or_else(|e| panic!("{e}"));
        let mut rng = Rng::new(1);
        let reset = a
            .start(Instant::START, &mut rng)
            .into_iter()
            .find_map(|x| match x {
                Action::Transmit(p) => Some(p),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no reset"));
        assert_eq!(reset.src, ip("198.51.100.1"));
        assert!(b.accepts(&reset));
        let replies: Vec<Packet> = b
            .receive(Instant::START, &mut rng, reset)
            .into_iter()
            .filter_map(|x| match x {
                Action::Transmit(p) => Some(p),
                _ => None,
            })
            .collect();
        assert!(!replies.is_empty());
        for p in &replies {
            assert_eq!(p.src, ip("0.0.0.0"));
            assert_eq!(p.dst, ip("198.51.100.1"));
            assert_eq!(p.ports().1, DEFAULT_PORT);
        }
    }
}

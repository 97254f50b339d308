//! A host's own TCP/IP stack: one smoltcp interface per node, for the
//! traffic that starts or ends at the host (ICMP echo, UDP datagrams, TCP
//! connections). The forwarding plane ([`crate::world`]) stays ours: it
//! routes, filters, NATs and tunnels; the stack sees only packets the host
//! accepted for itself, as bytes ([`crate::wire`]), and its output goes
//! back through the host's OUTPUT path.
//!
//! How smoltcp is set up, and why:
//! - `Medium::Ip`, one device whose MTU is 65,535: the forwarding plane
//!   owns MTUs. Like Linux, the host advertises an MSS from its route's
//!   MTU and splits segments to a learnt path MTU ([`crate::world`]),
//!   which smoltcp alone would not do (it has no path MTU discovery).
//! - The interface's only addresses are `0.0.0.0/0` and `::/0`, with
//!   AnyIP on: it accepts whatever the host hands it, answers from the
//!   address a packet was sent to, and leaves the source of what it
//!   originates unspecified, for the host to choose by route as Linux
//!   does. Connections are opened from the address the host chose.
//! - Checksums are ignored both ways (the host rewrites addresses and
//!   ports in NAT without fixing them up); pcap files get real ones.
//! - The virtual clock in microseconds; the random seed (initial
//!   sequence numbers, ephemeral ports) from the run's RNG.
//! - TCP: CUBIC congestion control (Linux's default), a 1 MiB receive
//!   buffer on served connections and bulk senders (window scaling: a
//!   long fat path is window-bound as with an untuned receiver, while one
//!   flow cannot overfill a link's 1000-frame queue, which smoltcp's loss
//!   recovery, without SACK, would handle far worse than Linux), smoltcp's
//!   own retransmission, delayed ACK (10 ms) and Nagle.
//!
//! The applications on top are the measurement tools: ping (an ICMP socket
//! per probe, identifier = probe number + 1), a TCP connect test (connect,
//! then close, like `nc -z`), UDP datagrams to a receiver, a bulk sender
//! (like `iperf3 -c`: an 8-byte flow cookie, then zeros) and the services'
//! listeners, which accept, read everything (counting bulk flows by their
//! cookie) and close when the peer does; monit's pinger; and the tunnel
//! models' TCP connections ([`crate::carrier`]). They report [`AppEvent`]s.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{self, ChecksumCapabilities, Device, DeviceCapabilities, Medium};
use smoltcp::socket::{icmp, tcp, udp};
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{
    HardwareAddress, Icmpv4Packet, Icmpv4Repr, Icmpv6Packet, Icmpv6Repr, IpAddress, IpCidr,
    IpEndpoint, IpListenEndpoint,
};

use crate::time::Instant;

/// The device MTU smoltcp sees (the forwarding plane applies the real ones).
const DEVICE_MTU: usize = 65_535;
/// Receive buffer of served connections and bulk senders' send buffer.
pub const BULK_BUFFER: usize = 1 << 20;
/// Buffers of connect tests.
const SMALL_BUFFER: usize = 4096;
/// Linux's ephemeral port range (`net.ipv4.ip_local_port_range`).
const EPHEMERAL: (u16, u16) = (32_768, 60_999);
/// First bytes of a bulk transfer: `VSBF` and the flow number.
const COOKIE_MAGIC: [u8; 4] = *b"VSBF";
/// Polls of one call that may leave work for "now" before giving up.
const MAX_ROUNDS: usize = 64;

/// What the applications saw during a poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AppEvent {
    /// Ping `probe` got the echo reply of request `seq`.
    EchoReply { probe: usize, seq: u16 },
    /// The connect test of `probe`, attempt `seq`, completed its handshake.
    Connected { probe: usize, seq: u32 },
    /// A datagram with this tag reached a UDP receiver.
    UdpData { tag: u64 },
    /// Bulk flow `flow` completed its handshake (sender side).
    BulkEstablished { flow: usize },
    /// The receiver of bulk flow `flow` has read `total` bytes after the
    /// cookie.
    BulkDelivered { flow: usize, total: u64 },
    /// A TCP connection of tunnel model `tunnel` is established (`local`
    /// as the model knows its end, `peer` the other end).
    StreamUp {
        tunnel: usize,
        local: SocketAddr,
        peer: SocketAddr,
    },
    /// A whole record arrived on it: the message stored under `id`.
    StreamRecord {
        tunnel: usize,
        local: SocketAddr,
        peer: SocketAddr,
        id: u64,
    },
    /// It was reset, closed by the peer or timed out.
    StreamDown {
        tunnel: usize,
        local: SocketAddr,
        peer: SocketAddr,
    },
    /// A daemon's ping socket (monit) with identifier `ident` got an echo
    /// reply `seq` from `from`.
    DaemonEchoReply { ident: u16, seq: u16, from: IpAddr },
}

/// Records a stream holds back before it drops new ones (OpenVPN's
/// `tcp-queue-limit`, 64 packets).
pub const STREAM_QUEUE_LIMIT: usize = 64;
/// Socket buffers of a tunnel's TCP connection.
const STREAM_BUFFER: usize = 256 * 1024;

/// What a socket is for.
#[derive(Debug, Clone)]
enum Role {
    Ping {
        probe: usize,
    },
    /// A daemon's ICMP socket (monit's pinger), by identifier.
    DaemonPing {
        ident: u16,
    },
    Connect {
        probe: usize,
        seq: u32,
        port: u16,
        done: bool,
    },
    UdpSend,
    UdpRecv,
    /// A service's listening socket (lazily made when a SYN comes).
    Listener {
        port: u16,
        addr: Option<IpAddr>,
    },
    /// An accepted connection: read everything, close when the peer does.
    Served {
        cookie: Vec<u8>,
        flow: Option<usize>,
        total: u64,
    },
    BulkSend {
        flow: usize,
        port: u16,
        stop: Instant,
        cookie_sent: usize,
        established: bool,
    },
    /// A listening socket of a tunnel model (OpenVPN `proto tcp-server`).
    StreamListener {
        tunnel: usize,
        port: u16,
        addr: Option<IpAddr>,
    },
    /// A tunnel model's TCP connection carrying length-prefixed records.
    Stream(Box<Stream>),
}

/// One TCP connection of a tunnel model.
#[derive(Debug, Clone)]
struct Stream {
    tunnel: usize,
    /// This end as the model knows it (for a client: the address and
    /// port it chose; for a server: the address the client connected to).
    local: Option<SocketAddr>,
    /// The other end; known at once for a client, at accept for a server.
    peer: Option<SocketAddr>,
    up: bool,
    /// Bytes received and not yet a whole record.
    rx: Vec<u8>,
    /// Records waiting for room in the socket's send buffer.
    pending: VecDeque<Vec<u8>>,
    /// Bytes of the first pending record already written.
    written: usize,
}

/// Who owns a local TCP or UDP port (for ICMP errors and resets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortOwner {
    /// A connect test: probe, attempt.
    Connect {
        probe: usize,
        seq: u32,
    },
    /// A UDP probe's sender.
    UdpProbe {
        probe: usize,
    },
    Bulk {
        flow: usize,
    },
}

/// The device between smoltcp and the forwarding plane: packets in, packets out.
#[derive(Debug, Default)]
struct Pipe {
    rx: VecDeque<Vec<u8>>,
    tx: Vec<Vec<u8>>,
}

struct RxToken(Vec<u8>);
struct TxToken<'a>(&'a mut Vec<Vec<u8>>);

impl phy::RxToken for RxToken {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl phy::TxToken for TxToken<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut buffer = vec![0; len];
        let r = f(&mut buffer);
        self.0.push(buffer);
        r
    }
}

impl Device for Pipe {
    type RxToken<'a> = RxToken;
    type TxToken<'a> = TxToken<'a>;

    fn receive(&mut self, _: SmolInstant) -> Option<(RxToken, TxToken<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((RxToken(packet), TxToken(&mut self.tx)))
    }

    fn transmit(&mut self, _: SmolInstant) -> Option<TxToken<'_>> {
        Some(TxToken(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = DEVICE_MTU;
        caps.checksum = ChecksumCapabilities::ignored();
        caps
    }
}

/// What a poll produced.
#[derive(Debug, Default)]
pub struct Polled {
    /// IP packets the stack sent, in order.
    pub packets: Vec<Vec<u8>>,
    pub events: Vec<AppEvent>,
}

/// One host's stack and its applications.
pub struct Stack {
    iface: Interface,
    sockets: SocketSet<'static>,
    dev: Pipe,
    roles: BTreeMap<SocketHandle, Role>,
    ports: BTreeMap<(u8, u16), (SocketHandle, PortOwner)>,
    /// UDP receivers by port.
    receivers: BTreeMap<u16, SocketHandle>,
    /// Ping sockets by probe.
    pingers: BTreeMap<usize, SocketHandle>,
    /// Daemons' ping sockets by identifier.
    daemon_pingers: BTreeMap<u16, SocketHandle>,
    next_port: u32,
    /// Echo request data (zeros), kept to avoid an allocation per ping.
    zeros: Vec<u8>,
    /// Aborted sockets whose reset has yet to go out.
    closing: Vec<SocketHandle>,
    /// The wake-up queued for this stack, if any.
    pub wake: Option<Instant>,
    /// Which stack of the run this is (wake-ups of an earlier life of the
    /// host are ignored).
    pub serial: u64,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack")
            .field("sockets", &self.roles.len())
            .field("wake", &self.wake)
            .finish()
    }
}

fn smol(at: Instant) -> SmolInstant {
    SmolInstant::from_micros((at.0 / 1_000) as i64)
}

fn ours(at: SmolInstant) -> Instant {
    Instant(
        u64::try_from(at.total_micros())
            .unwrap_or(0)
            .saturating_mul(1_000),
    )
}

fn endpoint(addr: SocketAddr) -> IpEndpoint {
    IpEndpoint::new(IpAddress::from(addr.ip()), addr.port())
}

impl Stack {
    /// A fresh stack (boot): no sockets, nothing queued.
    pub fn new(seed: u64, now: Instant) -> Stack {
        let mut dev = Pipe::default();
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut dev, smol(now));
        iface.set_any_ip(true);
        iface.update_ip_addrs(|addrs| {
            // Unspecified addresses: smoltcp allows them, and the host
            // fills in the source by route.
            let _ = addrs.push(IpCidr::new(IpAddress::from(Ipv4Addr::UNSPECIFIED), 0));
            let _ = addrs.push(IpCidr::new(IpAddress::from(Ipv6Addr::UNSPECIFIED), 0));
        });
        Stack {
            iface,
            sockets: SocketSet::new(Vec::new()),
            dev,
            roles: BTreeMap::new(),
            ports: BTreeMap::new(),
            receivers: BTreeMap::new(),
            pingers: BTreeMap::new(),
            daemon_pingers: BTreeMap::new(),
            next_port: (seed % u64::from(EPHEMERAL.1 - EPHEMERAL.0)) as u32,
            zeros: Vec::new(),
            closing: Vec::new(),
            wake: None,
            serial: 0,
        }
    }

    /// Queues a packet the host accepted for itself.
    pub fn receive(&mut self, bytes: Vec<u8>) {
        self.dev.rx.push_back(bytes);
    }

    /// Runs smoltcp and the applications until neither has more to do
    /// now; returns what went out and what the applications saw.
    pub fn poll(&mut self, now: Instant) -> Polled {
        let mut out = Polled::default();
        for _ in 0..MAX_ROUNDS {
            self.iface.poll(smol(now), &mut self.dev, &mut self.sockets);
            for h in std::mem::take(&mut self.closing) {
                self.sockets.remove(h);
            }
            let again = self.run_apps(now, &mut out.events);
            out.packets.append(&mut self.dev.tx);
            let due = self
                .iface
                .poll_at(smol(now), &self.sockets)
                .is_some_and(|at| at <= smol(now));
            if !again && !due && self.dev.rx.is_empty() {
                break;
            }
        }
        out
    }

    /// When smoltcp next needs a poll (retransmission, delayed ACK, ...).
    pub fn poll_at(&mut self, now: Instant) -> Option<Instant> {
        self.iface.poll_at(smol(now), &self.sockets).map(ours)
    }

    /// The owner of a local port (`proto` 6 or 17), if an application has it.
    pub fn port_owner(&self, proto: u8, port: u16) -> Option<PortOwner> {
        self.ports.get(&(proto, port)).map(|(_, o)| *o)
    }

    fn ephemeral(&mut self, proto: u8, reserved: &dyn Fn(u16) -> bool) -> Option<u16> {
        let span = u32::from(EPHEMERAL.1 - EPHEMERAL.0) + 1;
        for _ in 0..span {
            let port = EPHEMERAL.0 + (self.next_port % span) as u16;
            self.next_port = self.next_port.wrapping_add(1);
            if !self.ports.contains_key(&(proto, port)) && !reserved(port) {
                return Some(port);
            }
        }
        None
    }

    // -----------------------------------------------------------------
    // Applications
    // -----------------------------------------------------------------

    /// Sends echo request `seq` of ping `probe` (identifier `probe + 1`)
    /// with `len` bytes of data.
    pub fn ping(&mut self, probe: usize, seq: u16, target: IpAddr, len: u32) -> Result<(), String> {
        let ident = (probe as u16).wrapping_add(1);
        let handle = match self.pingers.get(&probe) {
            Some(h) => *h,
            None => {
                let h = self.icmp_socket(ident, len, Role::Ping { probe })?;
                self.pingers.insert(probe, h);
                h
            }
        };
        self.send_echo(handle, ident, seq, target, len)
    }

    /// Sends echo request `seq` with identifier `ident` and `len` bytes of
    /// data from a daemon's ICMP socket (monit's pinger, which uses its
    /// process id as the identifier): a socket of its own, apart from the
    /// probes' (identifiers 1 up), reporting [`AppEvent::DaemonEchoReply`].
    pub fn daemon_ping(
        &mut self,
        ident: u16,
        seq: u16,
        target: IpAddr,
        len: u32,
    ) -> Result<(), String> {
        let handle = match self.daemon_pingers.get(&ident) {
            Some(h) => *h,
            None => {
                let h = self.icmp_socket(ident, len, Role::DaemonPing { ident })?;
                self.daemon_pingers.insert(ident, h);
                h
            }
        };
        self.send_echo(handle, ident, seq, target, len)
    }

    /// An ICMP socket bound to echo identifier `ident`, room for 8 echoes
    /// of `len` bytes each way.
    fn icmp_socket(&mut self, ident: u16, len: u32, role: Role) -> Result<SocketHandle, String> {
        let size = 8 * (len as usize + 48).max(128);
        let rx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; size]);
        let tx = icmp::PacketBuffer::new(vec![icmp::PacketMetadata::EMPTY; 8], vec![0; size]);
        let mut socket = icmp::Socket::new(rx, tx);
        socket
            .bind(icmp::Endpoint::Ident(ident))
            .map_err(|e| format!("ping socket: {e}"))?;
        let h = self.sockets.add(socket);
        self.roles.insert(h, role);
        Ok(h)
    }

    /// Queues an echo request of `len` zero bytes on an ICMP socket.
    fn send_echo(
        &mut self,
        handle: SocketHandle,
        ident: u16,
        seq: u16,
        target: IpAddr,
        len: u32,
    ) -> Result<(), String> {
        if self.zeros.len() < len as usize {
            self.zeros.resize(len as usize, 0);
        }
        let data = &self.zeros[..len as usize];
        let caps = ChecksumCapabilities::ignored();
        let socket = self.sockets.get_mut::<icmp::Socket>(handle);
        match target {
            IpAddr::V4(_) => {
                let repr = Icmpv4Repr::EchoRequest {
                    ident,
                    seq_no: seq,
                    data,
                };
                let buf = socket
                    .send(repr.buffer_len(), IpAddress::from(target))
                    .map_err(|e| format!("ping: {e}"))?;
                repr.emit(&mut Icmpv4Packet::new_unchecked(buf), &caps);
            }
            IpAddr::V6(dst) => {
                let repr = Icmpv6Repr::EchoRequest {
                    ident,
                    seq_no: seq,
                    data,
                };
                let buf = socket
                    .send(repr.buffer_len(), IpAddress::from(target))
                    .map_err(|e| format!("ping: {e}"))?;
                // The checksum is ignored, so the source need not be known.
                repr.emit(
                    &Ipv6Addr::UNSPECIFIED,
                    &dst,
                    &mut Icmpv6Packet::new_unchecked(buf),
                    &caps,
                );
            }
        }
        Ok(())
    }

    /// Opens a connection from `local` to `target` for attempt `seq` of
    /// connect test `probe`; `timeout` aborts it when unanswered.
    pub fn connect(
        &mut self,
        probe: usize,
        seq: u32,
        local: IpAddr,
        target: SocketAddr,
        timeout: crate::time::Span,
        reserved: &dyn Fn(u16) -> bool,
    ) -> Result<u16, String> {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; SMALL_BUFFER]),
            tcp::SocketBuffer::new(vec![0; SMALL_BUFFER]),
        );
        socket.set_timeout(Some(smoltcp::time::Duration::from_micros(
            timeout.0 / 1_000,
        )));
        self.open(socket, local, target, reserved, |port| {
            (
                Role::Connect {
                    probe,
                    seq,
                    port,
                    done: false,
                },
                PortOwner::Connect { probe, seq },
            )
        })
    }

    /// Sends a datagram of `len` bytes tagged `tag` from UDP probe `probe`'s socket.
    pub fn udp_send(
        &mut self,
        probe: usize,
        target: SocketAddr,
        tag: u64,
        len: u32,
        reserved: &dyn Fn(u16) -> bool,
    ) -> Result<(), String> {
        let existing = self.ports.iter().find_map(|(&(proto, _), &(h, owner))| {
            (proto == 17 && owner == PortOwner::UdpProbe { probe }).then_some(h)
        });
        let handle = match existing {
            Some(h) => h,
            None => {
                let port = self
                    .ephemeral(17, reserved)
                    .ok_or("no free ephemeral port")?;
                let mut socket = udp_socket();
                socket.bind(port).map_err(|e| format!("udp bind: {e}"))?;
                let h = self.sockets.add(socket);
                self.roles.insert(h, Role::UdpSend);
                self.ports
                    .insert((17, port), (h, PortOwner::UdpProbe { probe }));
                h
            }
        };
        let mut data = vec![0u8; len as usize];
        let n = data.len().min(8);
        data[..n].copy_from_slice(&tag.to_be_bytes()[..n]);
        self.sockets
            .get_mut::<udp::Socket>(handle)
            .send_slice(&data, endpoint(target))
            .map_err(|e| format!("udp send: {e}"))
    }

    /// A UDP receiver on `port` (the measurement's server side), once.
    pub fn udp_receiver(&mut self, port: u16) -> Result<(), String> {
        if self.receivers.contains_key(&port) {
            return Ok(());
        }
        let mut socket = udp_socket();
        socket
            .bind(port)
            .map_err(|e| format!("udp receiver on port {port}: {e}"))?;
        let h = self.sockets.add(socket);
        self.receivers.insert(port, h);
        self.roles.insert(h, Role::UdpRecv);
        Ok(())
    }

    /// Opens tunnel model `tunnel`'s TCP connection from `bind` (port
    /// `local.port()`) to `peer`; `local` is that end as the model knows it.
    pub fn stream_connect(
        &mut self,
        tunnel: usize,
        local: SocketAddr,
        bind: IpAddr,
        peer: SocketAddr,
    ) -> Result<(), String> {
        let mut socket = stream_socket();
        socket
            .connect(
                self.iface.context(),
                endpoint(peer),
                IpListenEndpoint {
                    addr: Some(IpAddress::from(bind)),
                    port: local.port(),
                },
            )
            .map_err(|e| format!("connect: {e}"))?;
        let h = self.sockets.add(socket);
        self.roles.insert(
            h,
            Role::Stream(Box::new(Stream {
                tunnel,
                local: Some(local),
                peer: Some(peer),
                up: false,
                rx: Vec::new(),
                pending: VecDeque::new(),
                written: 0,
            })),
        );
        Ok(())
    }

    /// Makes sure tunnel model `tunnel` has a listening socket on `port`
    /// (bound to `addr`, or every address) for its next client.
    pub fn stream_listen(&mut self, tunnel: usize, port: u16, addr: Option<IpAddr>) {
        let listening = self.roles.iter().any(|(h, r)| {
            matches!(r, Role::StreamListener { tunnel: t, port: p, addr: a } if *t == tunnel && *p == port && *a == addr)
                && self.sockets.get::<tcp::Socket>(*h).is_listening()
        });
        if listening {
            return;
        }
        let mut socket = stream_socket();
        let at = IpListenEndpoint {
            addr: addr.map(IpAddress::from),
            port,
        };
        if socket.listen(at).is_ok() {
            let h = self.sockets.add(socket);
            self.roles
                .insert(h, Role::StreamListener { tunnel, port, addr });
        }
    }

    /// Whether tunnel model `tunnel` has a connection to `peer` (open or opening).
    pub fn has_stream(&self, tunnel: usize, peer: SocketAddr) -> bool {
        self.roles
            .values()
            .any(|r| matches!(r, Role::Stream(s) if s.tunnel == tunnel && s.peer == Some(peer)))
    }

    /// Queues a record of `len` bytes (2-byte length prefix included)
    /// carrying message `id` on tunnel `tunnel`'s connection to `peer`.
    /// `Err` when there is no such connection or its queue is full.
    pub fn stream_send(
        &mut self,
        tunnel: usize,
        peer: SocketAddr,
        id: u64,
        len: u32,
    ) -> Result<(), String> {
        let stream = self.roles.values_mut().find_map(|r| match r {
            Role::Stream(s) if s.tunnel == tunnel && s.peer == Some(peer) && s.up => Some(s),
            _ => None,
        });
        let Some(stream) = stream else {
            return Err(format!("no TCP connection to {peer}"));
        };
        if stream.pending.len() >= STREAM_QUEUE_LIMIT {
            return Err(format!(
                "TCP send queue to {peer} full (tcp-queue-limit {STREAM_QUEUE_LIMIT})"
            ));
        }
        stream.pending.push_back(record(id, len));
        Ok(())
    }

    /// Whether tunnel model `tunnel` has a connection to another peer than `keep`.
    pub fn has_other_stream(&self, tunnel: usize, keep: Option<SocketAddr>) -> bool {
        self.roles
            .values()
            .any(|r| matches!(r, Role::Stream(s) if s.tunnel == tunnel && s.peer.is_some() && s.peer != keep))
    }

    /// Aborts tunnel model `tunnel`'s connections except the one to `keep`.
    pub fn stream_retain(&mut self, tunnel: usize, keep: Option<SocketAddr>) {
        let stale: Vec<SocketAddr> = self
            .roles
            .values()
            .filter_map(|r| match r {
                Role::Stream(s) if s.tunnel == tunnel && s.peer != keep => s.peer,
                _ => None,
            })
            .collect();
        for peer in stale {
            self.stream_close(Some(tunnel), Some(peer));
        }
    }

    /// Aborts tunnel model `tunnel`'s connections (all, or the one to
    /// `peer`): its process closed them or is gone.
    pub fn stream_close(&mut self, tunnel: Option<usize>, peer: Option<SocketAddr>) {
        let gone: Vec<SocketHandle> = self
            .roles
            .iter()
            .filter(|(_, r)| match r {
                Role::Stream(s) => {
                    tunnel.is_none_or(|t| t == s.tunnel) && peer.is_none_or(|p| s.peer == Some(p))
                }
                Role::StreamListener { tunnel: t, .. } => {
                    peer.is_none() && tunnel.is_none_or(|x| x == *t)
                }
                _ => false,
            })
            .map(|(h, _)| *h)
            .collect();
        for h in gone {
            self.sockets.get_mut::<tcp::Socket>(h).abort();
            self.roles.remove(&h);
            // The reset goes out at the next poll; the socket is not needed for it.
            self.closing.push(h);
        }
    }

    /// Whether a UDP application has `port` (so that the stack, not a
    /// tunnel model, gets datagrams to it).
    pub fn has_udp_port(&self, port: u16) -> bool {
        self.receivers.contains_key(&port) || self.ports.contains_key(&(17, port))
    }

    /// Makes sure a service listening on `port` (bound to `addr`, or to
    /// every address) has a listening socket for the next connection.
    pub fn ensure_listener(&mut self, port: u16, addr: Option<IpAddr>) {
        let listening = self.roles.iter().any(|(h, r)| {
            matches!(r, Role::Listener { port: p, addr: a } if *p == port && *a == addr)
                && self.sockets.get::<tcp::Socket>(*h).is_listening()
        });
        if listening {
            return;
        }
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; BULK_BUFFER]),
            tcp::SocketBuffer::new(vec![0; SMALL_BUFFER]),
        );
        socket.set_congestion_control(tcp::CongestionControl::Cubic);
        let at = IpListenEndpoint {
            addr: addr.map(IpAddress::from),
            port,
        };
        if socket.listen(at).is_ok() {
            let h = self.sockets.add(socket);
            self.roles.insert(h, Role::Listener { port, addr });
        }
    }

    /// Starts bulk flow `flow` from `local` to `target`; it sends until
    /// `stop`, then closes.
    pub fn bulk_send(
        &mut self,
        flow: usize,
        local: IpAddr,
        target: SocketAddr,
        stop: Instant,
        reserved: &dyn Fn(u16) -> bool,
    ) -> Result<u16, String> {
        let mut socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; BULK_BUFFER]),
            tcp::SocketBuffer::new(vec![0; BULK_BUFFER]),
        );
        socket.set_congestion_control(tcp::CongestionControl::Cubic);
        self.open(socket, local, target, reserved, |port| {
            (
                Role::BulkSend {
                    flow,
                    port,
                    stop,
                    cookie_sent: 0,
                    established: false,
                },
                PortOwner::Bulk { flow },
            )
        })
    }

    /// Connects `socket` from `local` and an ephemeral port to `target`
    /// for the application `what` describes (given the port).
    fn open(
        &mut self,
        mut socket: tcp::Socket<'static>,
        local: IpAddr,
        target: SocketAddr,
        reserved: &dyn Fn(u16) -> bool,
        what: impl FnOnce(u16) -> (Role, PortOwner),
    ) -> Result<u16, String> {
        let port = self
            .ephemeral(6, reserved)
            .ok_or("no free ephemeral port")?;
        socket
            .connect(
                self.iface.context(),
                endpoint(target),
                IpListenEndpoint {
                    addr: Some(IpAddress::from(local)),
                    port,
                },
            )
            .map_err(|e| format!("connect: {e}"))?;
        let h = self.sockets.add(socket);
        let (role, owner) = what(port);
        self.roles.insert(h, role);
        self.ports.insert((6, port), (h, owner));
        Ok(port)
    }

    /// Runs every application once; true when one of them gave smoltcp
    /// something new to send.
    fn run_apps(&mut self, now: Instant, events: &mut Vec<AppEvent>) -> bool {
        let mut again = false;
        let mut gone = Vec::new();
        let handles: Vec<SocketHandle> = self.roles.keys().copied().collect();
        for h in handles {
            let Some(role) = self.roles.get_mut(&h) else {
                continue;
            };
            match role {
                Role::Ping { probe } => {
                    let socket = self.sockets.get_mut::<icmp::Socket>(h);
                    while let Ok((data, _)) = socket.recv() {
                        // Type 0 (ICMP) or 129 (ICMPv6) is an echo reply;
                        // the socket also sees requests with its identifier.
                        if data.len() >= 8 && (data[0] == 0 || data[0] == 129) {
                            let seq = u16::from_be_bytes([data[6], data[7]]);
                            events.push(AppEvent::EchoReply { probe: *probe, seq });
                        }
                    }
                }
                Role::DaemonPing { ident } => {
                    let socket = self.sockets.get_mut::<icmp::Socket>(h);
                    while let Ok((data, from)) = socket.recv() {
                        if data.len() >= 8 && (data[0] == 0 || data[0] == 129) {
                            let seq = u16::from_be_bytes([data[6], data[7]]);
                            events.push(AppEvent::DaemonEchoReply {
                                ident: *ident,
                                seq,
                                from: from.into(),
                            });
                        }
                    }
                }
                Role::Connect {
                    probe,
                    seq,
                    port,
                    done,
                } => {
                    let socket = self.sockets.get_mut::<tcp::Socket>(h);
                    if !*done && socket.may_send() {
                        *done = true;
                        events.push(AppEvent::Connected {
                            probe: *probe,
                            seq: *seq,
                        });
                        socket.close();
                        again = true;
                    }
                    if matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait) {
                        gone.push((h, Some((6, *port))));
                    }
                }
                Role::UdpSend => {}
                Role::UdpRecv => {
                    let socket = self.sockets.get_mut::<udp::Socket>(h);
                    while let Ok((data, _)) = socket.recv() {
                        let mut tag = [0u8; 8];
                        let n = data.len().min(8);
                        tag[..n].copy_from_slice(&data[..n]);
                        events.push(AppEvent::UdpData {
                            tag: u64::from_be_bytes(tag),
                        });
                    }
                }
                Role::Listener { .. } => {
                    let socket = self.sockets.get::<tcp::Socket>(h);
                    if !socket.is_listening() {
                        *role = Role::Served {
                            cookie: Vec::new(),
                            flow: None,
                            total: 0,
                        };
                        again |= serve(self.sockets.get_mut(h), role, events);
                    }
                }
                Role::Served { .. } => {
                    again |= serve(self.sockets.get_mut(h), role, events);
                    let socket = self.sockets.get::<tcp::Socket>(h);
                    if matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait) {
                        gone.push((h, None));
                    }
                }
                Role::StreamListener { tunnel, .. } => {
                    let tunnel = *tunnel;
                    let socket = self.sockets.get::<tcp::Socket>(h);
                    if !socket.is_listening() {
                        *role = Role::Stream(Box::new(Stream {
                            tunnel,
                            local: None,
                            peer: None,
                            up: false,
                            rx: Vec::new(),
                            pending: VecDeque::new(),
                            written: 0,
                        }));
                        again |= run_stream(self.sockets.get_mut(h), role, events, &mut gone, h);
                    }
                }
                Role::Stream(_) => {
                    again |= run_stream(self.sockets.get_mut(h), role, events, &mut gone, h);
                }
                Role::BulkSend {
                    flow,
                    port,
                    stop,
                    cookie_sent,
                    established,
                } => {
                    let socket = self.sockets.get_mut::<tcp::Socket>(h);
                    if !*established && socket.may_send() {
                        *established = true;
                        events.push(AppEvent::BulkEstablished { flow: *flow });
                    }
                    if *established && socket.may_send() {
                        if now >= *stop {
                            socket.close();
                            again = true;
                        } else {
                            again |= fill(socket, *flow, cookie_sent);
                        }
                    }
                    if matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait) {
                        gone.push((h, Some((6, *port))));
                    }
                }
            }
        }
        for (h, port) in gone {
            self.roles.remove(&h);
            self.sockets.remove(h);
            if let Some(key) = port {
                self.ports.remove(&key);
            }
        }
        again
    }
}

fn stream_socket() -> tcp::Socket<'static> {
    let mut socket = tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; STREAM_BUFFER]),
        tcp::SocketBuffer::new(vec![0; STREAM_BUFFER]),
    );
    socket.set_congestion_control(tcp::CongestionControl::Cubic);
    // OpenVPN sets TCP_NODELAY on its TCP sockets (socket.c).
    socket.set_nagle_enabled(false);
    socket
}

/// A record: the 2-byte length OpenVPN puts before each packet on TCP,
/// then the message id where the ciphertext would start, then zeros.
fn record(id: u64, len: u32) -> Vec<u8> {
    let len = (len as usize).clamp(10, usize::from(u16::MAX) + 2);
    let mut r = vec![0u8; len];
    r[..2].copy_from_slice(&((len - 2) as u16).to_be_bytes());
    r[2..10].copy_from_slice(&id.to_be_bytes());
    r
}

/// A tunnel's connection: reports it up, writes pending records, reads
/// whole records, reports it down. True when it gave smoltcp something
/// to send.
fn run_stream(
    socket: &mut tcp::Socket<'static>,
    role: &mut Role,
    events: &mut Vec<AppEvent>,
    gone: &mut Vec<(SocketHandle, Option<(u8, u16)>)>,
    h: SocketHandle,
) -> bool {
    let Role::Stream(stream) = role else {
        return false;
    };
    let mut again = false;
    if !stream.up && socket.may_send() {
        let (Some(local), Some(remote)) = (socket.local_endpoint(), socket.remote_endpoint())
        else {
            return false;
        };
        stream
            .local
            .get_or_insert(SocketAddr::new(IpAddr::from(local.addr), local.port));
        stream
            .peer
            .get_or_insert(SocketAddr::new(IpAddr::from(remote.addr), remote.port));
        stream.up = true;
        if let (Some(local), Some(peer)) = (stream.local, stream.peer) {
            events.push(AppEvent::StreamUp {
                tunnel: stream.tunnel,
                local,
                peer,
            });
        }
    }
    let (Some(local), Some(peer)) = (stream.local, stream.peer) else {
        // An accepted connection that died before it was up.
        if socket.state() == tcp::State::Closed {
            gone.push((h, None));
        }
        return false;
    };
    while socket.can_recv() {
        match socket.recv(|data| (data.len(), data.to_vec())) {
            Ok(bytes) => stream.rx.extend_from_slice(&bytes),
            Err(_) => break,
        }
    }
    while stream.rx.len() >= 2 {
        let n = usize::from(u16::from_be_bytes([stream.rx[0], stream.rx[1]]));
        if stream.rx.len() < 2 + n {
            break;
        }
        let mut id = [0u8; 8];
        let have = n.min(8);
        id[..have].copy_from_slice(&stream.rx[2..2 + have]);
        stream.rx.drain(..2 + n);
        events.push(AppEvent::StreamRecord {
            tunnel: stream.tunnel,
            local,
            peer,
            id: u64::from_be_bytes(id),
        });
    }
    while stream.up && socket.can_send() {
        let Some(front) = stream.pending.front() else {
            break;
        };
        match socket.send_slice(&front[stream.written..]) {
            Ok(n) if n > 0 => {
                again = true;
                stream.written += n;
                if stream.written == front.len() {
                    stream.pending.pop_front();
                    stream.written = 0;
                }
            }
            _ => break,
        }
    }
    let closed = matches!(socket.state(), tcp::State::Closed | tcp::State::TimeWait)
        || (stream.up && !socket.may_recv());
    if closed {
        socket.abort();
        events.push(AppEvent::StreamDown {
            tunnel: stream.tunnel,
            local,
            peer,
        });
        gone.push((h, None));
        again = true;
    }
    again
}

/// Payload bytes a UDP socket buffers each way: two of the largest
/// datagrams a stream may send (65507 bytes).
const UDP_BUFFER: usize = 128 * 1024;

fn udp_socket() -> udp::Socket<'static> {
    udp::Socket::new(
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; UDP_BUFFER]),
        udp::PacketBuffer::new(vec![udp::PacketMetadata::EMPTY; 64], vec![0; UDP_BUFFER]),
    )
}

/// A served connection: reads what came (a bulk flow's cookie first),
/// closes once the peer has. True when it gave smoltcp something to send.
fn serve(socket: &mut tcp::Socket<'static>, role: &mut Role, events: &mut Vec<AppEvent>) -> bool {
    let Role::Served {
        cookie,
        flow,
        total,
    } = role
    else {
        return false;
    };
    let before = *total;
    while socket.can_recv() {
        let read = socket.recv(|data| {
            let need = 8usize.saturating_sub(cookie.len()).min(data.len());
            cookie.extend_from_slice(&data[..need]);
            (data.len(), data.len() - need)
        });
        match read {
            Ok(n) => *total += n as u64,
            Err(_) => break,
        }
        if flow.is_none() && cookie.len() == 8 && cookie[..4] == COOKIE_MAGIC {
            *flow = Some(u32::from_be_bytes([cookie[4], cookie[5], cookie[6], cookie[7]]) as usize);
        }
    }
    if let Some(f) = flow
        && *total != before
    {
        events.push(AppEvent::BulkDelivered {
            flow: *f,
            total: *total,
        });
    }
    if socket.state() == tcp::State::CloseWait {
        socket.close();
        return true;
    }
    false
}

/// Keeps a bulk sender's buffer full: the cookie, then zeros. True when
/// it queued something.
fn fill(socket: &mut tcp::Socket<'static>, flow: usize, cookie_sent: &mut usize) -> bool {
    let mut cookie = [0u8; 8];
    cookie[..4].copy_from_slice(&COOKIE_MAGIC);
    cookie[4..].copy_from_slice(&(flow as u32).to_be_bytes());
    let mut queued = false;
    while socket.can_send() {
        let wrote = socket.send(|buf| {
            let n = buf.len();
            buf.fill(0);
            let c = (8 - *cookie_sent).min(n);
            buf[..c].copy_from_slice(&cookie[*cookie_sent..*cookie_sent + c]);
            *cookie_sent += c;
            (n, n)
        });
        match wrote {
            Ok(n) if n > 0 => queued = true,
            _ => break,
        }
    }
    queued
}

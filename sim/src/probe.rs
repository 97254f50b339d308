//! Probes: a request from one host to an address every interval, each
//! sample recording when it was sent and when the answer came (or the
//! error that came instead). ICMP echo uses the probe number + 1 as the
//! echo identifier and the sample number as the sequence; a TCP probe sends
//! a SYN from port `TCP_PORT_BASE + probe` and succeeds on SYN-ACK; a UDP
//! probe succeeds when the datagram is delivered.

use std::net::IpAddr;

use crate::packet::{Body, Icmp, Packet, Payload, TcpFlags};
use crate::time::{Instant, Span};
use crate::world::{Ev, World};

pub const TCP_PORT_BASE: u16 = 40000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// ICMP echo with this many payload bytes.
    Icmp {
        len: u32,
    },
    Tcp {
        port: u16,
    },
    Udp {
        port: u16,
    },
}

/// One request and its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    pub seq: u32,
    pub sent: Instant,
    pub reply: Option<Instant>,
    pub error: Option<String>,
}

impl Sample {
    /// Answered within `timeout`.
    pub fn ok(&self, timeout: Span) -> bool {
        self.reply.is_some_and(|r| r.since(self.sent) <= timeout)
    }
    pub fn rtt(&self) -> Option<Span> {
        self.reply.map(|r| r.since(self.sent))
    }
}

/// A probe between two hosts.
#[derive(Debug, Clone)]
pub struct Probe {
    /// Node index of the sender.
    pub node: usize,
    pub from: String,
    pub to: String,
    pub target: IpAddr,
    /// Source address; unspecified lets routing choose.
    pub source: Option<IpAddr>,
    pub kind: ProbeKind,
    pub interval: Span,
    pub dont_fragment: bool,
    pub until: Option<Instant>,
    pub samples: Vec<Sample>,
    /// The overlay the target address was taken from (for the report).
    pub via: Option<String>,
}

impl Probe {
    pub fn packet(&self, index: usize, seq: u32) -> Packet {
        let src = self.source.unwrap_or(if self.target.is_ipv4() {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        } else {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        });
        let payload = match self.kind {
            ProbeKind::Icmp { len } => Payload::Icmp(Icmp::EchoRequest {
                id: (index as u16).wrapping_add(1),
                seq: seq as u16,
                len,
            }),
            ProbeKind::Tcp { port } => Payload::Tcp {
                src_port: TCP_PORT_BASE.wrapping_add(index as u16),
                dst_port: port,
                flags: TcpFlags {
                    syn: true,
                    ..TcpFlags::default()
                },
                seq,
                ack: 0,
                len: 0,
            },
            ProbeKind::Udp { port } => Payload::Udp {
                src_port: TCP_PORT_BASE.wrapping_add(index as u16),
                dst_port: port,
                body: Body::Data {
                    len: 32,
                    tag: ((index as u64) << 32) | u64::from(seq),
                },
            },
        };
        Packet {
            src,
            dst: self.target,
            ttl: 64,
            dont_fragment: self.dont_fragment,
            payload,
        }
    }
}

fn sample_mut(
    world: &mut World,
    node: usize,
    probe: usize,
    seq: u32,
    udp: bool,
) -> Option<&mut Sample> {
    let p = world.probes.get_mut(probe)?;
    // Echo replies and SYN-ACKs come back to the sender; UDP data arrives at the target.
    if !udp && p.node != node {
        return None;
    }
    let exact = p.samples.iter().rposition(|s| s.seq == seq);
    // ICMP sequence numbers are 16 bits: else the latest sample with those bits.
    let i = exact.or_else(|| p.samples.iter().rposition(|s| s.seq as u16 == seq as u16))?;
    p.samples.get_mut(i)
}

pub fn on_reply(world: &mut World, node: usize, probe: usize, seq: u32, now: Instant) {
    let udp = world
        .probes
        .get(probe)
        .is_some_and(|p| matches!(p.kind, ProbeKind::Udp { .. }));
    if let Some(s) = sample_mut(world, node, probe, seq, udp)
        && s.reply.is_none()
    {
        s.reply = Some(now);
    }
}

pub fn on_refused(world: &mut World, node: usize, probe: usize, seq: u32, what: String) {
    if let Some(s) = sample_mut(world, node, probe, seq, false) {
        s.error.get_or_insert(what);
    }
}

/// An ICMP error quoting one of our requests.
pub fn on_error(world: &mut World, node: usize, original: &Packet, what: String) {
    let (probe, seq) = match &original.payload {
        Payload::Icmp(Icmp::EchoRequest { id, seq, .. }) => {
            (usize::from(*id).wrapping_sub(1), u32::from(*seq))
        }
        Payload::Tcp { src_port, seq, .. } => {
            (usize::from(src_port.wrapping_sub(TCP_PORT_BASE)), *seq)
        }
        Payload::Udp {
            body: Body::Data { tag, .. },
            ..
        } => ((tag >> 32) as usize, *tag as u32),
        _ => return,
    };
    if let Some(s) = sample_mut(world, node, probe, seq, false) {
        s.error.get_or_insert(what);
    }
}

// -------------------------------------------------------------------
// Bulk transfers (`expect.throughput`)
// -------------------------------------------------------------------
//
// A bulk TCP-like transfer measures what a single flow gets through the
// simulated network. It is a model of TCP's data path, not a TCP stack
// (no smoltcp yet). What it is:
// - a handshake: a SYN from port `BULK_PORT_BASE + flow` to the receiver's
//   port, answered by the host's own SYN handling (SYN-ACK when something
//   listens there, RST otherwise), retransmitted every second;
// - segments of MSS bytes, MSS = MTU of the interface the route to the
//   target uses (a tunnel's MTU when the route goes into a tunnel; the
//   smaller of the interface and link MTU on the underlay) − 40 (IPv4 +
//   TCP headers; 60 for IPv6), all with DF set, lowered by an ICMP
//   "fragmentation needed" quoting one of them (path MTU discovery);
// - a fixed receive window of `BULK_WINDOW` = 65,535 bytes: a receiver
//   without window scaling (RFC 7323), which is the modest case; the
//   sender never has more than min(cwnd, window) bytes in flight;
// - Reno congestion control (RFC 5681) with NewReno partial acks
//   (RFC 6582) but without window inflation: initial window 10 MSS
//   (RFC 6928, Linux), slow start (+min(acked, 2 MSS) per ACK, RFC 3465),
//   congestion avoidance (+MSS²/cwnd per MSS acked), fast retransmit on
//   the third duplicate ACK (ssthresh = cwnd = flight/2, at least 2 MSS)
//   once the first duplicate ACK of the run is a reordering window old
//   (min RTT / 4, as RACK does, RFC 8985 §6.2: the link model's jitter
//   reorders packets, which Linux tolerates, and plain 3-dupack Reno
//   would take for losses),
//   one retransmission per partial ACK until the recovery point is acked;
// - a retransmission timeout RTO = max(200 ms, 2 × srtt) (1 s before the
//   first RTT sample, RFC 6298), doubled on each consecutive timeout; a
//   timeout sets cwnd to 1 MSS and goes back to the first unacked byte
//   (go-back-N). RTT samples follow Karn's rule (one timed segment at a
//   time, none retransmitted); srtt = 7/8 srtt + 1/8 sample;
// - a receiver that acks every second in-order segment (delayed ACK,
//   RFC 1122/5681), at the latest 40 ms after an unacked one (Linux's
//   minimum delayed-ACK time), at once for an out-of-order, duplicate or
//   hole-filling segment; it keeps out-of-order data (like SACK-less TCP
//   with a reassembly queue) but the sender does not know what it holds.
// What it is not: no SACK, no timestamps, no window scaling, no Nagle, no
// CUBIC/BBR (Linux's default is CUBIC, which grows faster after a loss),
// no receive-buffer autotuning, no FIN. Flows are told apart by port: a
// NAT that changes the source port of a bulk flow hides it from its
// receiver (the simulator's SNAT keeps the port when it is free).

/// Source ports of bulk transfers: flow `i` sends from `BULK_PORT_BASE + i`
/// (below `TCP_PORT_BASE`, so probe numbering never sees them).
pub const BULK_PORT_BASE: u16 = 34000;
/// The receive window: 64 KiB − 1, the most a TCP header can announce
/// without window scaling (RFC 9293 §3.1, RFC 7323).
pub const BULK_WINDOW: u32 = 65_535;
/// Port of a bulk transfer to a host listening on no TCP port (iperf3's).
pub const BULK_DEFAULT_PORT: u16 = 5201;
/// Lower bound of the retransmission timeout (Linux TCP_RTO_MIN).
pub const BULK_RTO_MIN: Span = Span::millis(200);
/// Delayed-ACK timer (Linux TCP_DELACK_MIN).
pub const BULK_DELACK: Span = Span::millis(40);

/// Timer tokens of `Ev::Bulk`.
pub const BULK_START: u64 = 0;
pub const BULK_RTO: u64 = 1;
pub const BULK_DELACK_TIMER: u64 = 2;
pub const BULK_REORDER: u64 = 3;

/// One bulk transfer and its counters.
#[derive(Debug, Clone)]
pub struct Bulk {
    /// Node index of the sender and of the receiver.
    pub node: usize,
    pub to_node: usize,
    pub target: IpAddr,
    pub port: u16,
    /// No new data is sent from this instant on.
    pub stop: Option<Instant>,
    pub window: u32,
    pub mss: u32,
    pub established: Option<Instant>,
    pub error: Option<String>,
    pub syns: u32,
    snd_una: u64,
    snd_nxt: u64,
    /// Highest byte sent + 1 (data below it sent again is retransmitted).
    snd_max: u64,
    cwnd: u64,
    ssthresh: u64,
    dupacks: u32,
    /// When the first of the current run of duplicate ACKs came.
    first_dup: Option<Instant>,
    recover: Option<u64>,
    pub srtt: Option<Span>,
    pub rtt_min: Option<Span>,
    timed: Option<(u64, Instant)>,
    backoff: u32,
    rto_at: Option<Instant>,
    rto_queued: Option<Instant>,
    /// Data segments sent, of which retransmissions; timeouts.
    pub segments: u64,
    pub retransmits: u64,
    pub timeouts: u64,
    // Receiver.
    rcv_nxt: u64,
    ooo: std::collections::BTreeMap<u64, u64>,
    unacked: u32,
    delack_at: Option<Instant>,
    delack_queued: Option<Instant>,
    /// Where the receiver's ACKs go: the data's source address and port as
    /// they arrived, and the address they were sent to.
    ack_to: Option<(IpAddr, u16, IpAddr)>,
    /// (time, bytes delivered in order so far) at every advance.
    pub delivered: Vec<(Instant, u64)>,
}

impl Bulk {
    pub fn new(node: usize, to_node: usize, target: IpAddr, port: u16) -> Bulk {
        Bulk {
            node,
            to_node,
            target,
            port,
            stop: None,
            window: BULK_WINDOW,
            mss: 536,
            established: None,
            error: None,
            syns: 0,
            snd_una: 0,
            snd_nxt: 0,
            snd_max: 0,
            cwnd: 0,
            ssthresh: u64::MAX,
            dupacks: 0,
            first_dup: None,
            recover: None,
            srtt: None,
            rtt_min: None,
            timed: None,
            backoff: 0,
            rto_at: None,
            rto_queued: None,
            segments: 0,
            retransmits: 0,
            timeouts: 0,
            rcv_nxt: 0,
            ooo: std::collections::BTreeMap::new(),
            unacked: 0,
            delack_at: None,
            delack_queued: None,
            ack_to: None,
            delivered: Vec::new(),
        }
    }

    /// Bytes delivered in order up to `at`.
    pub fn delivered_at(&self, at: Instant) -> u64 {
        let i = self.delivered.partition_point(|(t, _)| *t <= at);
        i.checked_sub(1)
            .and_then(|i| self.delivered.get(i))
            .map_or(0, |(_, b)| *b)
    }

    /// Goodput in bits per second over [start, stop).
    pub fn goodput(&self, start: Instant, stop: Instant) -> f64 {
        let secs = stop.since(start).as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        (self
            .delivered_at(stop)
            .saturating_sub(self.delivered_at(start))) as f64
            * 8.0
            / secs
    }

    fn rto(&self) -> Span {
        let base = self
            .srtt
            .map_or(Span::secs(1), |s| Span(s.0 * 2).max(BULK_RTO_MIN));
        Span(base.0.saturating_mul(1u64 << self.backoff.min(6)))
    }

    fn flight(&self) -> u64 {
        self.snd_nxt - self.snd_una
    }
}

fn port_of(flow: usize) -> u16 {
    BULK_PORT_BASE.wrapping_add(flow as u16)
}

/// Widens a 32-bit sequence number to the 64-bit offset nearest `near`.
fn widen(seq: u32, near: u64) -> u64 {
    let d = seq.wrapping_sub(near as u32) as i32;
    near.wrapping_add_signed(i64::from(d))
}

/// The MSS for a segment from `node` to `target`: see the model above.
fn mss_for(world: &World, node: usize, target: IpAddr) -> Option<u32> {
    let n = world.nodes.get(node)?;
    let route = n.lookup(target, false)?;
    let iface = n.ifaces.get(route.iface)?;
    let mut mtu = iface.mtu;
    if let crate::host::IfaceKind::Underlay(seg) = iface.kind
        && let Some(s) = world.segs.get(seg)
    {
        mtu = mtu.min(s.mtu);
    }
    let headers = if target.is_ipv4() { 40 } else { 60 };
    Some(mtu.saturating_sub(headers).max(1))
}

fn bulk_packet(b: &Bulk, flow: usize, flags: TcpFlags, seq: u64, len: u32) -> Packet {
    let src = if b.target.is_ipv4() {
        IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
    } else {
        IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
    };
    Packet {
        src,
        dst: b.target,
        ttl: 64,
        dont_fragment: true,
        payload: Payload::Tcp {
            src_port: port_of(flow),
            dst_port: b.port,
            flags,
            seq: seq as u32,
            ack: 1,
            len,
        },
    }
}

fn send_data(world: &mut World, flow: usize, seq: u64, retransmit: bool) {
    let Some(b) = world.bulks.get_mut(flow) else {
        return;
    };
    let len = b.mss;
    b.segments += 1;
    if retransmit {
        b.retransmits += 1;
        b.timed = None;
    } else if b.timed.is_none() {
        b.timed = Some((seq + u64::from(len), world.q.now()));
    }
    let flags = TcpFlags {
        ack: true,
        ..TcpFlags::default()
    };
    let (node, p) = (b.node, bulk_packet(b, flow, flags, seq, len));
    world.output_local(node, p, false);
}

fn arm(world: &mut World, flow: usize, token: u64, at: Instant) {
    let Some(b) = world.bulks.get_mut(flow) else {
        return;
    };
    let queued = if token == BULK_RTO {
        b.rto_at = Some(at);
        &mut b.rto_queued
    } else {
        b.delack_at = Some(at);
        &mut b.delack_queued
    };
    if queued.is_none_or(|q| q > at) {
        *queued = Some(at);
        world.q.schedule(at, Ev::Bulk { flow, token });
    }
}

/// Sends new data while the window allows.
fn pump(world: &mut World, flow: usize) {
    loop {
        let now = world.q.now();
        let Some(b) = world.bulks.get_mut(flow) else {
            return;
        };
        if b.established.is_none() || b.error.is_some() || b.stop.is_some_and(|s| now >= s) {
            return;
        }
        let limit = b.cwnd.min(u64::from(b.window));
        if b.flight() + u64::from(b.mss) > limit {
            return;
        }
        let seq = b.snd_nxt;
        b.snd_nxt += u64::from(b.mss);
        let again = seq < b.snd_max;
        b.snd_max = b.snd_max.max(b.snd_nxt);
        let arm_rto = b.rto_at.is_none();
        let rto = b.rto();
        send_data(world, flow, seq, again);
        if arm_rto {
            arm(world, flow, BULK_RTO, now + rto);
        }
    }
}

fn send_syn(world: &mut World, flow: usize) {
    let now = world.q.now();
    let mss = world
        .bulks
        .get(flow)
        .and_then(|b| mss_for(world, b.node, b.target));
    let Some(b) = world.bulks.get_mut(flow) else {
        return;
    };
    if b.established.is_some() || b.stop.is_some_and(|s| now >= s) {
        return;
    }
    if let Some(m) = mss {
        b.mss = m;
    }
    b.syns += 1;
    let flags = TcpFlags {
        syn: true,
        ..TcpFlags::default()
    };
    let (node, p) = (b.node, bulk_packet(b, flow, flags, 0, 0));
    arm(world, flow, BULK_RTO, now + Span::secs(1));
    world.output_local(node, p, false);
}

/// A bulk timer (`Ev::Bulk`) fires.
pub fn bulk_timer(world: &mut World, flow: usize, token: u64) {
    let now = world.q.now();
    match token {
        BULK_START => send_syn(world, flow),
        BULK_RTO => {
            let Some(b) = world.bulks.get_mut(flow) else {
                return;
            };
            b.rto_queued = None;
            match b.rto_at {
                None => {}
                Some(at) if at > now => arm(world, flow, BULK_RTO, at),
                Some(_) => {
                    b.rto_at = None;
                    if b.established.is_none() {
                        return send_syn(world, flow);
                    }
                    if b.flight() == 0 {
                        return;
                    }
                    b.timeouts += 1;
                    b.backoff += 1;
                    b.ssthresh = (b.flight() / 2).max(2 * u64::from(b.mss));
                    b.cwnd = u64::from(b.mss);
                    b.recover = None;
                    b.dupacks = 0;
                    b.snd_nxt = b.snd_una + u64::from(b.mss);
                    let (seq, rto) = (b.snd_una, b.rto());
                    send_data(world, flow, seq, true);
                    arm(world, flow, BULK_RTO, now + rto);
                }
            }
        }
        BULK_REORDER => {
            // The reordering window of a run of duplicate ACKs has passed.
            let Some(b) = world.bulks.get(flow) else {
                return;
            };
            let reo_wnd = Span(b.rtt_min.map_or(0, |m| m.0 / 4));
            if b.dupacks >= 3
                && b.recover.is_none()
                && b.first_dup.is_some_and(|f| now.since(f) >= reo_wnd)
            {
                fast_retransmit(world, flow);
            }
        }
        _ => {
            let Some(b) = world.bulks.get_mut(flow) else {
                return;
            };
            b.delack_queued = None;
            match b.delack_at {
                None => {}
                Some(at) if at > now => arm(world, flow, BULK_DELACK_TIMER, at),
                Some(_) => send_ack(world, flow),
            }
        }
    }
}

/// The receiver acknowledges everything it holds in order.
fn send_ack(world: &mut World, flow: usize) {
    let Some(b) = world.bulks.get_mut(flow) else {
        return;
    };
    b.unacked = 0;
    b.delack_at = None;
    let (node, port, ack) = (b.to_node, b.port, b.rcv_nxt);
    let Some(sender) = b.ack_to else {
        return;
    };
    let p = Packet {
        src: sender.2,
        dst: sender.0,
        ttl: 64,
        dont_fragment: true,
        payload: Payload::Tcp {
            src_port: port,
            dst_port: sender.1,
            flags: TcpFlags {
                ack: true,
                ..TcpFlags::default()
            },
            seq: 1,
            ack: ack as u32,
            len: 0,
        },
    };
    world.output_local(node, p, false);
}

/// A TCP segment arriving at `node`: true when it belongs to a bulk
/// transfer (and was handled). SYNs to the receiver are left to the
/// host's own SYN handling.
pub fn bulk_input(world: &mut World, node: usize, p: &Packet) -> bool {
    let Payload::Tcp {
        src_port,
        dst_port,
        flags,
        seq,
        ack,
        len,
    } = p.payload
    else {
        return false;
    };
    let now = world.q.now();
    // At the sender: SYN-ACK, RST or ACK to one of our ports.
    let flow = usize::from(dst_port.wrapping_sub(BULK_PORT_BASE));
    if let Some(b) = world.bulks.get_mut(flow)
        && b.node == node
        && src_port == b.port
        && port_of(flow) == dst_port
    {
        if flags.rst {
            if b.established.is_none() {
                b.error
                    .get_or_insert_with(|| format!("connection refused by {}", p.src));
                b.rto_at = None;
            }
            return true;
        }
        if flags.syn {
            if b.established.is_none() {
                b.established = Some(now);
                b.rto_at = None;
                b.backoff = 0;
                b.cwnd = 10 * u64::from(b.mss);
                pump(world, flow);
            }
            return true;
        }
        if b.established.is_none() || !flags.ack {
            return true;
        }
        let ack = widen(ack, b.snd_una);
        on_ack(world, flow, ack, len);
        return true;
    }
    // At the receiver: data from a bulk port.
    if flags.syn || len == 0 {
        return false;
    }
    let flow = usize::from(src_port.wrapping_sub(BULK_PORT_BASE));
    let Some(b) = world.bulks.get_mut(flow) else {
        return false;
    };
    if b.to_node != node || dst_port != b.port || port_of(flow) != src_port {
        return false;
    }
    b.ack_to = Some((p.src, src_port, p.dst));
    let start = widen(seq, b.rcv_nxt);
    let end = start + u64::from(len);
    let now_ack;
    if start == b.rcv_nxt {
        let filled = !b.ooo.is_empty();
        b.rcv_nxt = end;
        while let Some((&s, &e)) = b.ooo.first_key_value() {
            if s > b.rcv_nxt {
                break;
            }
            b.rcv_nxt = b.rcv_nxt.max(e);
            b.ooo.remove(&s);
        }
        b.delivered.push((now, b.rcv_nxt));
        b.unacked += 1;
        now_ack = filled || b.unacked >= 2;
    } else {
        if start > b.rcv_nxt {
            let e = b.ooo.entry(start).or_insert(end);
            *e = (*e).max(end);
        }
        now_ack = true;
    }
    if now_ack {
        send_ack(world, flow);
    } else {
        arm(world, flow, BULK_DELACK_TIMER, now + BULK_DELACK);
    }
    true
}

/// The sender gets a cumulative ACK for `ack` (a pure ACK when `len` is 0).
fn on_ack(world: &mut World, flow: usize, ack: u64, len: u32) {
    let now = world.q.now();
    let Some(b) = world.bulks.get_mut(flow) else {
        return;
    };
    let mss = u64::from(b.mss);
    if ack > b.snd_una && ack <= b.snd_nxt.max(b.snd_una + u64::from(b.window) * 2) {
        let acked = ack - b.snd_una;
        b.snd_una = ack;
        b.snd_nxt = b.snd_nxt.max(ack);
        b.dupacks = 0;
        b.first_dup = None;
        b.backoff = 0;
        if let Some((end, sent)) = b.timed
            && ack >= end
        {
            let sample = now.since(sent);
            b.srtt = Some(match b.srtt {
                Some(s) => Span((s.0 * 7 + sample.0) / 8),
                None => sample,
            });
            b.rtt_min = Some(b.rtt_min.map_or(sample, |m| m.min(sample)));
            b.timed = None;
        }
        let mut retransmit = None;
        match b.recover {
            Some(r) if ack >= r => {
                b.recover = None;
                b.cwnd = b.ssthresh;
            }
            Some(_) => retransmit = Some(b.snd_una),
            None if b.cwnd < b.ssthresh => b.cwnd += acked.min(2 * mss),
            None => b.cwnd += (mss * acked.min(mss) / b.cwnd.max(1)).max(1),
        }
        b.cwnd = b.cwnd.min(u64::from(b.window));
        let rto = b.rto();
        if b.flight() == 0 {
            b.rto_at = None;
        }
        let busy = b.flight() > 0;
        if let Some(seq) = retransmit {
            send_data(world, flow, seq, true);
        }
        if busy {
            arm(world, flow, BULK_RTO, now + rto);
        }
        pump(world, flow);
    } else if ack == b.snd_una && len == 0 && b.flight() > 0 {
        b.dupacks += 1;
        let first = *b.first_dup.get_or_insert(now);
        let reo_wnd = Span(b.rtt_min.map_or(0, |m| m.0 / 4));
        if b.dupacks >= 3 && b.recover.is_none() {
            if now.since(first) >= reo_wnd {
                fast_retransmit(world, flow);
            } else if b.dupacks == 3 {
                world.q.schedule(
                    first + reo_wnd,
                    Ev::Bulk {
                        flow,
                        token: BULK_REORDER,
                    },
                );
            }
        }
    }
}

/// Reno's fast retransmit: halve, retransmit the first unacked segment
/// and stay in recovery until everything sent so far is acked.
fn fast_retransmit(world: &mut World, flow: usize) {
    let Some(b) = world.bulks.get_mut(flow) else {
        return;
    };
    let mss = u64::from(b.mss);
    b.ssthresh = (b.flight() / 2).max(2 * mss);
    b.cwnd = b.ssthresh;
    b.recover = Some(b.snd_nxt);
    let seq = b.snd_una;
    send_data(world, flow, seq, true);
}

/// An ICMP "fragmentation needed" quoting a bulk segment lowers the MSS
/// (path MTU discovery) and sends the unacked data again. True when the
/// quoted packet was a bulk segment.
pub fn bulk_icmp(world: &mut World, node: usize, original: &Packet, mtu: Option<u32>) -> bool {
    let Payload::Tcp { src_port, .. } = original.payload else {
        return false;
    };
    let flow = usize::from(src_port.wrapping_sub(BULK_PORT_BASE));
    let Some(b) = world.bulks.get_mut(flow) else {
        return false;
    };
    if b.node != node || port_of(flow) != src_port {
        return false;
    }
    let headers = if b.target.is_ipv4() { 40 } else { 60 };
    if let Some(m) = mtu.map(|m| m.saturating_sub(headers).max(1))
        && m < b.mss
    {
        b.mss = m;
        b.snd_nxt = b.snd_una;
        b.timed = None;
        pump(world, flow);
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_widen_to_the_nearest_offset() {
        assert_eq!(widen(100, 0), 100);
        assert_eq!(widen(5, (1u64 << 32) - 10), (1u64 << 32) + 5);
        assert_eq!(widen(u32::MAX - 1, 1u64 << 32), (1u64 << 32) - 2);
    }

    #[test]
    fn goodput_counts_bytes_delivered_in_the_window() {
        let mut b = Bulk::new(0, 1, IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 22);
        b.delivered = vec![
            (Instant(500_000_000), 1_000),
            (Instant(1_500_000_000), 126_000),
            (Instant(2_500_000_000), 251_000),
        ];
        assert_eq!(b.delivered_at(Instant(0)), 0);
        assert_eq!(b.delivered_at(Instant(1_000_000_000)), 1_000);
        // 250,000 bytes in 2 s = 1 Mbit/s.
        let g = b.goodput(Instant(1_000_000_000), Instant(3_000_000_000));
        assert!((g - 1e6).abs() < 1e-6, "{g}");
        assert_eq!(b.goodput(Instant(5), Instant(5)), 0.0);
    }

    #[test]
    fn the_window_is_the_largest_without_scaling_and_rto_has_a_floor() {
        assert_eq!(BULK_WINDOW, u32::from(u16::MAX));
        let mut b = Bulk::new(0, 1, IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 22);
        assert_eq!(b.rto(), Span::secs(1));
        b.srtt = Some(Span::millis(20));
        assert_eq!(b.rto(), BULK_RTO_MIN);
        b.srtt = Some(Span::millis(300));
        assert_eq!(b.rto(), Span::millis(600));
        b.backoff = 1;
        assert_eq!(b.rto(), Span::millis(1200));
    }
}

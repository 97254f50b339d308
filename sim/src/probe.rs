//! The measurements: probes (a request from one host to an address every
//! interval) and bulk transfers, both run by the hosts' smoltcp stacks
//! ([`crate::stack`]).
//!
//! - ICMP probe: ping with identifier probe number + 1 and the sample
//!   number as sequence; answered by the echo reply.
//! - TCP probe: a connection from an ephemeral port (the source address
//!   routing picks), answered when the handshake completes, refused by a
//!   reset; then closed (like `nc -z`).
//! - UDP probe: a datagram tagged (probe number << 32 | sample) to a
//!   receiver the target runs on the port; answered when it arrives.
//! - UDP stream (`expect.stream`): the same datagrams, `len` bytes each,
//!   one every `interval` (the stream's rate); a sample's "reply" is the
//!   datagram's arrival, so its round-trip time is the one-way delay, and
//!   loss, jitter and reordering come from the samples.
//! - Bulk transfer (`expect.throughput`): a TCP connection (CUBIC, smoltcp)
//!   that sends a cookie and then as much as it can until `stop`; the
//!   receiver's service reads everything and counts bytes in order, which
//!   is the goodput. Segments, retransmissions, MSS and RTT are observed on
//!   the sender's side of the wire, the way tcptrace reads a capture.
//!
//! ICMP errors that quote a probe's request are its evidence ("fragmentation
//! needed (mtu 1400) from 10.0.1.254").

use std::net::{IpAddr, SocketAddr};

use crate::packet::{Body, Icmp, Packet, Payload};
use crate::stack::{AppEvent, PortOwner};
use crate::time::{Instant, Span};
use crate::world::World;

/// Port of a bulk transfer to a host listening on no TCP port (iperf3's).
pub const BULK_DEFAULT_PORT: u16 = 5201;
/// Bytes of a UDP probe datagram (tag included).
pub const UDP_PROBE_LEN: u32 = 32;

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
    /// A constant-bitrate UDP stream of `len`-byte datagrams.
    Stream {
        port: u16,
        len: u32,
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
    /// Source address; `None` lets routing choose.
    pub source: Option<IpAddr>,
    pub kind: ProbeKind,
    pub interval: Span,
    /// A TCP attempt unanswered this long is given up.
    pub timeout: Span,
    pub until: Option<Instant>,
    pub samples: Vec<Sample>,
    /// The overlay the target address was taken from (for the report).
    pub via: Option<String>,
}

/// Sends the next request of probe `index` and schedules the one after.
pub fn send(world: &mut World, index: usize) {
    let now = world.now();
    let Some(probe) = world.probes.get_mut(index) else {
        return;
    };
    if probe.until.is_some_and(|u| now >= u) {
        return;
    }
    let seq = probe.samples.len() as u32;
    probe.samples.push(Sample {
        seq,
        sent: now,
        reply: None,
        error: None,
    });
    let (node, target, kind, timeout, source) = (
        probe.node,
        probe.target,
        probe.kind,
        probe.timeout,
        probe.source,
    );
    world.q.schedule(
        now + probe.interval,
        crate::world::Ev::Probe { probe: index },
    );
    if !world.nodes.get(node).is_some_and(|n| n.up) {
        return fail(world, index, seq, "source host is down".into());
    }
    let sent = match kind {
        ProbeKind::Icmp { len } => world
            .stack(node)
            .and_then(|s| s.ping(index, seq as u16, target, len).ok())
            .ok_or_else(|| "the ping socket refused the request".to_string()),
        ProbeKind::Tcp { port } => match source.or_else(|| world.route_source(node, target)) {
            Some(local) => {
                let reserved = world.reserved_ports(node);
                let opened = world
                    .stack(node)
                    .ok_or_else(|| "no stack".to_string())
                    .and_then(|s| {
                        s.connect(
                            index,
                            seq,
                            local,
                            SocketAddr::new(target, port),
                            timeout,
                            &|p| reserved.contains(&p),
                        )
                    });
                opened.map(|from| {
                    world.tcp_attempts.insert((local, from), (index, seq));
                })
            }
            None => Err(format!("no route to {target}")),
        },
        ProbeKind::Udp { port } | ProbeKind::Stream { port, .. } => {
            let len = match kind {
                ProbeKind::Stream { len, .. } => len,
                _ => UDP_PROBE_LEN,
            };
            let reserved = world.reserved_ports(node);
            let tag = ((index as u64) << 32) | u64::from(seq);
            world
                .stack(node)
                .ok_or_else(|| "no stack".to_string())
                .and_then(|s| {
                    s.udp_send(index, SocketAddr::new(target, port), tag, len, &|p| {
                        reserved.contains(&p)
                    })
                })
        }
    };
    match sent {
        Ok(()) => world.poll_stack(node),
        Err(e) => fail(world, index, seq, e),
    }
}

/// The source a packet from `node`'s stack must have when one of its
/// probes asks for one (the stack leaves sources unspecified).
pub fn requested_source(world: &World, node: usize, p: &Packet) -> Option<IpAddr> {
    let probe = match &p.payload {
        Payload::Icmp(Icmp::EchoRequest { id, .. }) => usize::from(*id).checked_sub(1)?,
        Payload::Udp { src_port, .. } => match world.port_owner(node, 17, *src_port)? {
            PortOwner::UdpProbe { probe } => probe,
            _ => return None,
        },
        _ => return None,
    };
    world
        .probes
        .get(probe)
        .filter(|pr| pr.node == node)
        .and_then(|pr| pr.source)
}

/// The probe request a packet is, as `(probe, sequence number)`: an echo
/// request's identifier is the probe number + 1 (ICMP sequence numbers
/// are 16 bits), a TCP probe's SYN is known by the address and port it
/// left from, a UDP probe's datagram carries both in its tag.
pub fn request_of(world: &World, p: &Packet) -> Option<(usize, u32)> {
    match &p.payload {
        Payload::Icmp(Icmp::EchoRequest { id, seq, .. }) => {
            Some((usize::from(*id).checked_sub(1)?, u32::from(*seq)))
        }
        Payload::Tcp {
            src_port, flags, ..
        } if flags.syn && !flags.ack => world.tcp_attempts.get(&(p.src, *src_port)).copied(),
        Payload::Udp {
            body: Body::Data { tag, .. },
            ..
        } => Some(((tag >> 32) as usize, *tag as u32)),
        _ => None,
    }
}

fn fail(world: &mut World, probe: usize, seq: u32, what: String) {
    if let Some(s) = world
        .probes
        .get_mut(probe)
        .and_then(|p| p.samples.get_mut(seq as usize))
    {
        s.error.get_or_insert(what);
    }
}

fn sample_mut(world: &mut World, probe: usize, seq: u32) -> Option<&mut Sample> {
    let p = world.probes.get_mut(probe)?;
    let exact = p.samples.iter().rposition(|s| s.seq == seq);
    // ICMP sequence numbers are 16 bits: else the latest sample with those bits.
    let i = exact.or_else(|| p.samples.iter().rposition(|s| s.seq as u16 == seq as u16))?;
    p.samples.get_mut(i)
}

fn on_reply(world: &mut World, probe: usize, seq: u32, now: Instant) {
    if let Some(s) = sample_mut(world, probe, seq)
        && s.reply.is_none()
    {
        s.reply = Some(now);
    }
}

fn on_failure(world: &mut World, probe: usize, seq: u32, what: String) {
    if let Some(s) = sample_mut(world, probe, seq) {
        s.error.get_or_insert(what);
    }
}

/// What an application of `node`'s stack saw.
pub fn on_app_event(world: &mut World, node: usize, ev: AppEvent) {
    let now = world.now();
    match ev {
        AppEvent::EchoReply { probe, seq } => {
            if world.probes.get(probe).is_some_and(|p| p.node == node) {
                on_reply(world, probe, u32::from(seq), now);
            }
        }
        AppEvent::Connected { probe, seq } => on_reply(world, probe, seq, now),
        AppEvent::UdpData { tag } => {
            // Receivers run only where a UDP probe aims (after NAT the
            // target address may not be the node's own), so the tag is enough.
            let probe = (tag >> 32) as usize;
            if world
                .probes
                .get(probe)
                .is_some_and(|p| matches!(p.kind, ProbeKind::Udp { .. } | ProbeKind::Stream { .. }))
            {
                on_reply(world, probe, tag as u32, now);
            }
        }
        AppEvent::BulkEstablished { flow } => {
            if let Some(b) = world.bulks.get_mut(flow) {
                b.established.get_or_insert(now);
            }
        }
        AppEvent::StreamUp { .. } | AppEvent::StreamRecord { .. } | AppEvent::StreamDown { .. } => {
            crate::carrier::on_event(world, node, ev);
        }
        AppEvent::DaemonEchoReply { ident, seq, from } => {
            crate::monit::on_echo_reply(world, node, ident, seq, from);
        }
        AppEvent::BulkDelivered { flow, total } => {
            if let Some(b) = world.bulks.get_mut(flow)
                && b.to_node == node
            {
                b.delivered.push((now, total));
            }
        }
    }
}

/// An ICMP error quoting one of `node`'s packets: evidence for the probe
/// or transfer that sent it.
pub fn on_error(world: &mut World, node: usize, original: &Packet, what: String) {
    let owner = match &original.payload {
        Payload::Icmp(Icmp::EchoRequest { id, seq, .. }) => {
            let probe = usize::from(*id).wrapping_sub(1);
            if world.probes.get(probe).is_some_and(|p| p.node == node) {
                on_failure(world, probe, u32::from(*seq), what);
            }
            return;
        }
        Payload::Tcp { src_port, .. } => world.port_owner(node, 6, *src_port),
        Payload::Udp {
            src_port,
            body: Body::Data { .. },
            ..
        } => world.port_owner(node, 17, *src_port),
        _ => None,
    };
    match owner {
        Some(PortOwner::Connect { probe, seq }) => on_failure(world, probe, seq, what),
        Some(PortOwner::UdpProbe { probe }) => {
            let seq = world
                .probes
                .get(probe)
                .and_then(|p| p.samples.last())
                .map(|s| s.seq);
            if let Some(seq) = seq {
                on_failure(world, probe, seq, what);
            }
        }
        Some(PortOwner::Bulk { flow }) => {
            if let Some(b) = world.bulks.get_mut(flow) {
                b.last_error = Some(what);
            }
        }
        None => {}
    }
}

/// A TCP reset arriving at `node` for one of its applications' ports.
pub fn on_reset(world: &mut World, node: usize, p: &Packet) {
    let Payload::Tcp { dst_port, .. } = p.payload else {
        return;
    };
    let what = format!("connection refused by {}", p.src);
    match world.port_owner(node, 6, dst_port) {
        Some(PortOwner::Connect { probe, seq }) => on_failure(world, probe, seq, what),
        Some(PortOwner::Bulk { flow }) => {
            if let Some(b) = world.bulks.get_mut(flow)
                && b.established.is_none()
            {
                b.error.get_or_insert(what);
            }
        }
        _ => {}
    }
}

// -------------------------------------------------------------------
// Bulk transfers (`expect.throughput`)
// -------------------------------------------------------------------

/// One bulk transfer and what was seen of it.
#[derive(Debug, Clone)]
pub struct Bulk {
    /// Node index of the sender and of the receiver.
    pub node: usize,
    pub to_node: usize,
    pub target: IpAddr,
    pub port: u16,
    /// No new data is sent from this instant on.
    pub stop: Instant,
    /// The sender's local port once connecting.
    pub local_port: Option<u16>,
    pub established: Option<Instant>,
    /// Why the transfer never started (refused, no route).
    pub error: Option<String>,
    /// The last ICMP error about one of its segments.
    pub last_error: Option<String>,
    /// (time, bytes the receiver has read) at every advance.
    pub delivered: Vec<(Instant, u64)>,
    pub wire: FlowStats,
}

/// A TCP flow as seen on the sender's side of the wire.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FlowStats {
    pub syns: u32,
    /// Data segments sent, and how many of them repeat bytes already sent.
    pub segments: u64,
    pub retransmits: u64,
    /// Largest segment payload sent since the path MTU last changed.
    pub mss: u32,
    /// Receive window the receiver announced last (scaled), bytes.
    pub peer_window: u64,
    isn: Option<u32>,
    peer_shift: u8,
    snd_max: u64,
    /// The segment being timed (end offset, sent at), Karn's rule.
    timed: Option<(u64, Instant)>,
    pub rtt_min: Option<Span>,
    rtt_sum: u64,
    rtt_count: u64,
}

impl FlowStats {
    pub fn rtt_avg(&self) -> Option<Span> {
        (self.rtt_count > 0).then(|| Span(self.rtt_sum / self.rtt_count))
    }

    fn offset(&self, seq: u32) -> u64 {
        u64::from(seq.wrapping_sub(self.isn.unwrap_or(seq)))
    }
}

impl Bulk {
    pub fn new(node: usize, to_node: usize, target: IpAddr, port: u16, stop: Instant) -> Bulk {
        Bulk {
            node,
            to_node,
            target,
            port,
            stop,
            local_port: None,
            established: None,
            error: None,
            last_error: None,
            delivered: Vec::new(),
            wire: FlowStats::default(),
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
}

/// Starts bulk flow `flow` (its connection's SYN goes out now).
pub fn start_bulk(world: &mut World, flow: usize) {
    let Some(b) = world.bulks.get(flow) else {
        return;
    };
    let (node, target, port, stop) = (b.node, b.target, b.port, b.stop);
    let Some(local) = world.route_source(node, target) else {
        if let Some(b) = world.bulks.get_mut(flow) {
            b.error = Some(format!("no route to {target}"));
        }
        return;
    };
    let reserved = world.reserved_ports(node);
    let started = world
        .stack(node)
        .ok_or_else(|| "the sender is down".to_string())
        .and_then(|s| {
            s.bulk_send(flow, local, SocketAddr::new(target, port), stop, &|p| {
                reserved.contains(&p)
            })
        });
    match started {
        Ok(port) => {
            if let Some(b) = world.bulks.get_mut(flow) {
                b.local_port = Some(port);
            }
            world.poll_stack(node);
        }
        Err(e) => {
            if let Some(b) = world.bulks.get_mut(flow) {
                b.error = Some(e);
            }
        }
    }
}

/// The bulk flow a TCP segment from (`node`, local `port`) belongs to.
fn flow_of(bulks: &[Bulk], node: usize, port: u16) -> Option<usize> {
    bulks
        .iter()
        .position(|b| b.node == node && b.local_port == Some(port))
}

/// `node` learnt a new path MTU towards `dst`: the segment size of flows
/// to it is measured afresh.
pub fn path_mtu_changed(bulks: &mut [Bulk], node: usize, dst: IpAddr) {
    for b in bulks
        .iter_mut()
        .filter(|b| b.node == node && b.target == dst)
    {
        b.wire.mss = 0;
    }
}

/// A segment `node`'s stack sends (after splitting to the path MTU).
pub fn observe_sent(bulks: &mut [Bulk], node: usize, p: &Packet, now: Instant) {
    let Payload::Tcp {
        src_port,
        flags,
        seq,
        data,
        ..
    } = &p.payload
    else {
        return;
    };
    let Some(flow) = flow_of(bulks, node, *src_port) else {
        return;
    };
    let w = &mut bulks[flow].wire;
    if flags.syn {
        w.syns += 1;
        w.isn = Some(seq.wrapping_add(1));
        return;
    }
    if data.is_empty() {
        return;
    }
    let end = w.offset(*seq) + u64::from(data.len());
    w.segments += 1;
    w.mss = w.mss.max(data.len());
    if end <= w.snd_max {
        w.retransmits += 1;
        w.timed = None;
    } else {
        w.snd_max = end;
        w.timed.get_or_insert((end, now));
    }
}

/// A segment arriving for `node`'s stack: ACKs time the flow's segments.
pub fn observe_received(bulks: &mut [Bulk], node: usize, p: &Packet, now: Instant) {
    let Payload::Tcp {
        dst_port,
        flags,
        ack,
        window,
        options,
        ..
    } = &p.payload
    else {
        return;
    };
    let Some(flow) = flow_of(bulks, node, *dst_port) else {
        return;
    };
    let w = &mut bulks[flow].wire;
    if flags.syn {
        w.peer_shift = options.window_scale.unwrap_or(0);
        w.peer_window = u64::from(*window);
        return;
    }
    w.peer_window = u64::from(*window) << w.peer_shift.min(14);
    if !flags.ack || w.isn.is_none() {
        return;
    }
    let acked = w.offset(*ack);
    if let Some((end, sent)) = w.timed
        && acked >= end
        && acked <= w.snd_max
    {
        let sample = now.since(sent);
        w.rtt_min = Some(w.rtt_min.map_or(sample, |m| m.min(sample)));
        w.rtt_sum += sample.0;
        w.rtt_count += 1;
        w.timed = None;
    }
}

// ---------------------------------------------------------------------------
// UDP streams (`expect.stream`)
// ---------------------------------------------------------------------------

/// What a UDP stream's datagrams sent in one window did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamFigures {
    /// Datagrams sent in the window (those still in flight at the end of
    /// the run left out).
    pub sent: u32,
    /// Of those, arrived within the probe timeout.
    pub received: u32,
    /// Arrived after a datagram sent later had arrived.
    pub reordered: u32,
    /// RFC 3550 interarrival jitter after the last arrival.
    pub jitter: Option<Span>,
    pub delay_min: Option<Span>,
    pub delay_avg: Option<Span>,
    pub delay_max: Option<Span>,
}

impl StreamFigures {
    /// Of the datagrams sent in [`start`, `stop`) by a stream whose
    /// samples are `samples`: loss, delay, reordering and the RFC 3550
    /// jitter estimate (J += (|D| - J) / 16 over arrivals in arrival
    /// order, D the change in transit time between consecutive arrivals).
    pub fn of(
        samples: &[Sample],
        (start, stop): (Instant, Instant),
        end: Instant,
        timeout: Span,
    ) -> Self {
        let mut f = StreamFigures::default();
        let mut arrivals: Vec<(Instant, u32, Span)> = Vec::new();
        for s in samples.iter().filter(|s| s.sent >= start && s.sent < stop) {
            let ok = s.ok(timeout);
            if !ok && s.sent + timeout > end {
                continue;
            }
            f.sent += 1;
            if let (true, Some(at), Some(delay)) = (ok, s.reply, s.rtt()) {
                f.received += 1;
                arrivals.push((at, s.seq, delay));
            }
        }
        arrivals.sort();
        let mut jitter: i128 = 0;
        let mut highest: Option<u32> = None;
        let mut total: u128 = 0;
        for (k, &(_, seq, delay)) in arrivals.iter().enumerate() {
            if highest.is_some_and(|h| seq < h) {
                f.reordered += 1;
            }
            highest = highest.max(Some(seq));
            total += u128::from(delay.0);
            if let Some(&(_, _, previous)) = k.checked_sub(1).and_then(|p| arrivals.get(p)) {
                let d = (i128::from(delay.0) - i128::from(previous.0)).abs();
                jitter += (d - jitter) / 16;
            }
        }
        let delays = arrivals.iter().map(|a| a.2);
        f.delay_min = delays.clone().min();
        f.delay_max = delays.max();
        f.delay_avg = (!arrivals.is_empty())
            .then(|| Span(u64::try_from(total / arrivals.len() as u128).unwrap_or(u64::MAX)));
        f.jitter = (arrivals.len() > 1).then(|| Span(u64::try_from(jitter).unwrap_or(0)));
        f
    }

    /// Lost share of `sent`, in hundredths of a percent (rounded up, so a
    /// single loss never reads as 0.00%).
    pub fn loss_hundredths(&self) -> u64 {
        let lost = u64::from(self.sent - self.received);
        (lost * 10_000).div_ceil(u64::from(self.sent).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goodput_counts_bytes_delivered_in_the_window() {
        let mut b = Bulk::new(0, 1, IpAddr::from([127, 0, 0, 1]), 22, Instant(0));
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

    fn segment(port: u16, syn: bool, seq: u32, len: usize) -> Packet {
        Packet {
            src: IpAddr::from([10, 0, 0, 1]),
            dst: IpAddr::from([10, 0, 0, 2]),
            ttl: 64,
            dont_fragment: true,
            payload: Payload::Tcp {
                src_port: port,
                dst_port: 5201,
                flags: crate::packet::TcpFlags {
                    syn,
                    ack: !syn,
                    ..Default::default()
                },
                seq,
                ack: 0,
                window: 0,
                options: Default::default(),
                data: crate::packet::Data::new(&vec![0; len]),
            },
        }
    }

    fn ack(port: u16, ack: u32) -> Packet {
        Packet {
            src: IpAddr::from([10, 0, 0, 2]),
            dst: IpAddr::from([10, 0, 0, 1]),
            ttl: 64,
            dont_fragment: true,
            payload: Payload::Tcp {
                src_port: 5201,
                dst_port: port,
                flags: crate::packet::TcpFlags {
                    ack: true,
                    ..Default::default()
                },
                seq: 0,
                ack,
                window: 1000,
                options: Default::default(),
                data: crate::packet::Data::default(),
            },
        }
    }

    #[test]
    fn the_wire_observer_counts_retransmissions_and_times_by_karns_rule() {
        let mut bulks = vec![Bulk::new(
            0,
            1,
            IpAddr::from([10, 0, 0, 2]),
            5201,
            Instant(0),
        )];
        bulks[0].local_port = Some(40000);
        let t = |ms: u64| Instant(ms * 1_000_000);
        // ISN u32::MAX: offsets wrap around zero.
        observe_sent(&mut bulks, 0, &segment(40000, true, u32::MAX, 0), t(0));
        observe_sent(&mut bulks, 0, &segment(40000, false, 0, 1000), t(10));
        observe_sent(&mut bulks, 0, &segment(40000, false, 1000, 1000), t(11));
        observe_received(&mut bulks, 0, &ack(40000, 1000), t(50));
        // The first segment is timed: 40 ms.
        assert_eq!(bulks[0].wire.rtt_min, Some(Span::millis(40)));
        // A retransmission of the second is counted and not timed.
        observe_sent(&mut bulks, 0, &segment(40000, false, 1000, 1000), t(300));
        observe_received(&mut bulks, 0, &ack(40000, 2000), t(340));
        let w = &bulks[0].wire;
        assert_eq!((w.syns, w.segments, w.retransmits, w.mss), (1, 3, 1, 1000));
        assert_eq!(w.rtt_avg(), Some(Span::millis(40)));
        assert_eq!(w.peer_window, 1000);
        // Another port is not the flow.
        observe_sent(&mut bulks, 0, &segment(40001, false, 5, 10), t(400));
        assert_eq!(bulks[0].wire.segments, 3);
    }
}

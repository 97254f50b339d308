//! Probes: a request from one host to an address every interval, each
//! sample recording when it was sent and when the answer came (or the
//! error that came instead). ICMP echo uses the probe number + 1 as the
//! echo identifier and the sample number as the sequence; a TCP probe sends
//! a SYN from port `TCP_PORT_BASE + probe` and succeeds on SYN-ACK; a UDP
//! probe succeeds when the datagram is delivered.

use std::net::IpAddr;

use crate::packet::{Body, Icmp, Packet, Payload, TcpFlags};
use crate::time::{Instant, Span};
use crate::world::World;

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

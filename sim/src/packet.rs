//! Packets as the simulator carries them: headers as values, tunnel
//! messages as the protocol models' own types, probe payloads by size and
//! TCP payloads as the bytes the sending stack wrote. Sizes follow the wire
//! (IPv4 20 B, IPv6 40 B, UDP 8 B, TCP 20 B + options, ICMP 8 B), so MTU
//! checks, serialisation delay and throughput come out as on a real
//! network. [`crate::wire`] turns endpoint packets into bytes and back (for
//! the hosts' smoltcp stacks and for pcap files).

use std::net::IpAddr;
use std::sync::Arc;

use crate::proto::{ipsec, openvpn, peervpn, wireguard};

/// An IP packet.
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub ttl: u8,
    /// IPv4 DF bit (always set for IPv6, which routers never fragment).
    pub dont_fragment: bool,
    pub payload: Payload,
}

/// What an IP packet carries.
#[derive(Debug, Clone, PartialEq)]
pub enum Payload {
    Icmp(Icmp),
    Udp {
        src_port: u16,
        dst_port: u16,
        body: Body,
    },
    Tcp {
        src_port: u16,
        dst_port: u16,
        flags: TcpFlags,
        seq: u32,
        ack: u32,
        /// The receive window as sent (unscaled).
        window: u16,
        options: TcpOptions,
        data: Data,
    },
    /// ESP (IP protocol 50), tunnel mode.
    Esp(ipsec::Esp),
}

/// ICMP / ICMPv6 messages the simulator uses.
#[derive(Debug, Clone, PartialEq)]
pub enum Icmp {
    EchoRequest {
        id: u16,
        seq: u16,
        len: u32,
    },
    EchoReply {
        id: u16,
        seq: u16,
        len: u32,
    },
    /// Destination unreachable (net/host/port/admin-prohibited) or, with
    /// `mtu`, fragmentation needed / packet too big.
    Unreachable {
        code: UnreachableCode,
        mtu: Option<u32>,
        original: Box<Packet>,
    },
    TimeExceeded {
        original: Box<Packet>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnreachableCode {
    Net,
    Host,
    Port,
    AdminProhibited,
    FragmentationNeeded,
}

/// UDP payloads.
#[derive(Debug, Clone, PartialEq)]
pub enum Body {
    /// Application data of this many bytes (probes, UDP streams).
    Data {
        len: u32,
        tag: u64,
    },
    WireGuard(wireguard::Message),
    OpenVpn(openvpn::Message),
    /// IKE (udp/500, or udp/4500 with the non-ESP marker).
    Ike(ipsec::IkeMessage),
    /// ESP in UDP (NAT traversal, udp/4500).
    EspInUdp(ipsec::Esp),
    PeerVpn(peervpn::Message),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpFlags {
    pub syn: bool,
    pub ack: bool,
    pub fin: bool,
    pub rst: bool,
    pub psh: bool,
}

/// TCP options (RFC 9293 MSS, RFC 7323 window scale and timestamps,
/// RFC 2018 SACK), the ones smoltcp and Linux send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpOptions {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub sack_ranges: [Option<(u32, u32)>; 3],
    /// (TSval, TSecr).
    pub timestamp: Option<(u32, u32)>,
}

impl TcpOptions {
    /// Bytes the options take in the header, padded to a multiple of 4
    /// (the layout smoltcp emits: MSS 4, window scale 3, SACK-permitted 2,
    /// timestamps 10, SACK blocks 2 + 8 each).
    pub fn wire_len(&self) -> u32 {
        let mut len = 0;
        if self.mss.is_some() {
            len += 4;
        }
        if self.window_scale.is_some() {
            len += 3;
        }
        if self.sack_permitted {
            len += 2;
        }
        if self.timestamp.is_some() {
            len += 10;
        }
        let blocks = self.sack_ranges.iter().flatten().count() as u32;
        if blocks > 0 {
            len += 2 + 8 * blocks;
        }
        len.div_ceil(4) * 4
    }
}

/// The bytes a TCP segment carries, shared between the copies of a packet
/// (captures, queues). `Debug` shows the length only: payloads are data,
/// not something to print.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Data(Option<Arc<[u8]>>);

impl Data {
    pub fn new(bytes: &[u8]) -> Data {
        if bytes.is_empty() {
            Data(None)
        } else {
            Data(Some(Arc::from(bytes)))
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        self.0.as_deref().unwrap_or(&[])
    }

    pub fn len(&self) -> u32 {
        self.as_slice().len() as u32
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_none()
    }
}

impl std::fmt::Debug for Data {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Data({} bytes)", self.len())
    }
}

pub const IPV4_HEADER: u32 = 20;
pub const IPV6_HEADER: u32 = 40;
pub const UDP_HEADER: u32 = 8;
pub const TCP_HEADER: u32 = 20;
pub const ICMP_HEADER: u32 = 8;

impl Packet {
    pub fn ip_header_len(&self) -> u32 {
        if self.src.is_ipv4() {
            IPV4_HEADER
        } else {
            IPV6_HEADER
        }
    }

    /// Bytes on the wire at layer 3: IP header plus payload.
    pub fn wire_len(&self) -> u32 {
        self.ip_header_len() + self.payload.wire_len()
    }

    /// The (protocol, source port, destination port) of the packet, as
    /// firewall rules and NAT see it; ports are 0 where there are none.
    pub fn ports(&self) -> (u8, u16, u16) {
        match &self.payload {
            Payload::Icmp(_) => (if self.src.is_ipv4() { 1 } else { 58 }, 0, 0),
            Payload::Udp {
                src_port, dst_port, ..
            } => (17, *src_port, *dst_port),
            Payload::Tcp {
                src_port, dst_port, ..
            } => (6, *src_port, *dst_port),
            Payload::Esp(_) => (50, 0, 0),
        }
    }
}

impl Payload {
    pub fn wire_len(&self) -> u32 {
        match self {
            Payload::Icmp(icmp) => ICMP_HEADER + icmp.body_len(),
            Payload::Udp { body, .. } => UDP_HEADER + body.wire_len(),
            Payload::Tcp { options, data, .. } => TCP_HEADER + options.wire_len() + data.len(),
            Payload::Esp(esp) => esp.wire_len(),
        }
    }
}

impl Icmp {
    fn body_len(&self) -> u32 {
        match self {
            Icmp::EchoRequest { len, .. } | Icmp::EchoReply { len, .. } => *len,
            // The original's IP header plus 8 bytes, as RFC 792 quotes it.
            Icmp::Unreachable { original, .. } | Icmp::TimeExceeded { original } => {
                original.ip_header_len() + 8
            }
        }
    }
}

impl Body {
    pub fn wire_len(&self) -> u32 {
        match self {
            Body::Data { len, .. } => *len,
            Body::WireGuard(m) => m.wire_len(),
            Body::OpenVpn(m) => m.wire_len(),
            Body::Ike(m) => m.wire_len(),
            Body::EspInUdp(esp) => esp.wire_len(),
            Body::PeerVpn(m) => m.wire_len(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ping_of_56_bytes_is_84_on_ipv4_and_104_on_ipv6() {
        let ping = |src: &str, dst: &str| Packet {
            src: src.parse().unwrap_or_else(|e| panic!("{e}")),
            dst: dst.parse().unwrap_or_else(|e| panic!("{e}")),
            ttl: 64,
            dont_fragment: true,
            payload: Payload::Icmp(Icmp::EchoRequest {
                id: 1,
                seq: 1,
                len: 56,
            }),
        };
        assert_eq!(ping("10.0.0.1", "10.0.0.2").wire_len(), 84);
        assert_eq!(ping("fd00::1", "fd00::2").wire_len(), 104);
    }
}

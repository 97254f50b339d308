//! Packets as bytes: [`emit`] writes a [`Packet`] as the IPv4/IPv6 packet
//! it stands for, [`parse`] reads an endpoint packet back. The hosts'
//! smoltcp stacks ([`crate::stack`]) exchange bytes with the forwarding
//! plane through these two, and pcap files ([`crate::pcap`]) are made of
//! [`emit`]'s output.
//!
//! What the bytes hold:
//! - IPv4 (RFC 791: version/IHL, total length, DF, TTL, protocol,
//!   addresses) and IPv6 (RFC 8200: payload length, next header, hop
//!   limit, addresses) headers;
//! - ICMP (RFC 792) / ICMPv6 (RFC 4443): echo with zero-filled data of the
//!   packet's length; errors quote the original's IP header and its first
//!   8 transport bytes (fragmentation needed carries the next-hop MTU,
//!   RFC 1191; packet too big the MTU);
//! - UDP: probe data carries its tag big-endian in its first 8 bytes, rest
//!   zero; tunnel messages start with their protocol's real header fields
//!   (WireGuard type, IKE SPIs and version, ESP SPI and sequence) and are
//!   zero-filled to their wire size: ciphertext is not reproduced;
//! - TCP: smoltcp's own header and option encoding, and the payload bytes.
//!
//! Checksums are filled in when asked (pcap files); the stacks are told to
//! ignore them, so the forwarding plane never has to fix them up after NAT.
//!
//! [`parse`] never panics: truncated or malformed input is a [`WireError`].
//! It understands what endpoints send (ICMP, UDP probe data, TCP); tunnel
//! messages never pass through a stack. An ICMP error's original comes
//! back in [`quoted_form`]: what its 8 quoted transport bytes can tell.

use std::net::IpAddr;

use smoltcp::phy::ChecksumCapabilities;
use smoltcp::wire::{
    IpAddress, Ipv4Packet, Ipv6Packet, TcpControl, TcpPacket, TcpRepr, TcpSeqNumber,
    TcpTimestampRepr, UdpPacket,
};

use crate::packet::{
    Body, Data, Icmp, Packet, Payload, TcpFlags, TcpOptions, UDP_HEADER, UnreachableCode,
};
use crate::proto::{ipsec, wireguard};

/// Why bytes are not an endpoint packet.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("truncated or malformed {0} header")]
    Malformed(&'static str),
    #[error("IP protocol {0} is not endpoint traffic")]
    Protocol(u8),
    #[error("ICMP type {0} code {1} is not one the simulator carries")]
    IcmpType(u8, u8),
    #[error("IP version {0}")]
    Version(u8),
}

// ---------------------------------------------------------------------------
// Emit
// ---------------------------------------------------------------------------

/// The packet as it would be on the wire; transport checksums (and the IPv4
/// header checksum) only with `checksums`.
pub fn emit(p: &Packet, checksums: bool) -> Vec<u8> {
    let (proto, l4) = transport_bytes(p, checksums);
    match (p.src, p.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let total = 20 + l4.len();
            let mut h = Vec::with_capacity(total);
            h.extend_from_slice(&[0x45, 0]);
            h.extend_from_slice(&(total.min(65_535) as u16).to_be_bytes());
            h.extend_from_slice(&[0, 0, if p.dont_fragment { 0x40 } else { 0 }, 0]);
            h.extend_from_slice(&[p.ttl, proto, 0, 0]);
            h.extend_from_slice(&src.octets());
            h.extend_from_slice(&dst.octets());
            if checksums {
                let sum = checksum(&h, 0);
                h[10..12].copy_from_slice(&sum.to_be_bytes());
            }
            h.extend_from_slice(&l4);
            h
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut h = Vec::with_capacity(40 + l4.len());
            h.extend_from_slice(&[0x60, 0, 0, 0]);
            h.extend_from_slice(&(l4.len().min(65_535) as u16).to_be_bytes());
            h.extend_from_slice(&[proto, p.ttl]);
            h.extend_from_slice(&src.octets());
            h.extend_from_slice(&dst.octets());
            h.extend_from_slice(&l4);
            h
        }
        // Mixed families never occur; keep the record readable anyway.
        _ => l4,
    }
}

/// (IP protocol number, transport header + payload).
fn transport_bytes(p: &Packet, checksums: bool) -> (u8, Vec<u8>) {
    let v6 = p.src.is_ipv6();
    match &p.payload {
        Payload::Icmp(icmp) => {
            let mut b = icmp_bytes(icmp, v6, checksums);
            let proto = if v6 { 58 } else { 1 };
            if checksums {
                let initial = if v6 { pseudo_sum(p, proto, b.len()) } else { 0 };
                let sum = checksum(&b, initial);
                b[2..4].copy_from_slice(&sum.to_be_bytes());
            }
            (proto, b)
        }
        Payload::Udp {
            src_port,
            dst_port,
            body,
        } => {
            let payload = body_bytes(body);
            let len = 8 + payload.len();
            let mut b = Vec::with_capacity(len);
            b.extend_from_slice(&src_port.to_be_bytes());
            b.extend_from_slice(&dst_port.to_be_bytes());
            b.extend_from_slice(&(len.min(65_535) as u16).to_be_bytes());
            b.extend_from_slice(&[0, 0]);
            b.extend_from_slice(&payload);
            if checksums {
                let sum = match checksum(&b, pseudo_sum(p, 17, len)) {
                    0 => 0xffff,
                    s => s,
                };
                b[6..8].copy_from_slice(&sum.to_be_bytes());
            }
            (17, b)
        }
        Payload::Tcp { .. } => (6, tcp_bytes(p, checksums)),
        Payload::Esp(esp) => (50, esp_bytes(esp)),
    }
}

fn tcp_bytes(p: &Packet, checksums: bool) -> Vec<u8> {
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
        return Vec::new();
    };
    let control = if flags.syn {
        TcpControl::Syn
    } else if flags.rst {
        TcpControl::Rst
    } else if flags.fin {
        TcpControl::Fin
    } else if flags.psh {
        TcpControl::Psh
    } else {
        TcpControl::None
    };
    let repr = TcpRepr {
        src_port: *src_port,
        dst_port: *dst_port,
        control,
        seq_number: TcpSeqNumber(*seq as i32),
        ack_number: flags.ack.then_some(TcpSeqNumber(*ack as i32)),
        window_len: *window,
        window_scale: options.window_scale,
        max_seg_size: options.mss,
        sack_permitted: options.sack_permitted,
        sack_ranges: options.sack_ranges,
        timestamp: options
            .timestamp
            .map(|(tsval, tsecr)| TcpTimestampRepr { tsval, tsecr }),
        payload: data.as_slice(),
    };
    let mut b = vec![0u8; repr.buffer_len()];
    let caps = if checksums {
        ChecksumCapabilities::default()
    } else {
        ChecksumCapabilities::ignored()
    };
    repr.emit(
        &mut TcpPacket::new_unchecked(&mut b[..]),
        &IpAddress::from(p.src),
        &IpAddress::from(p.dst),
        &caps,
    );
    b
}

fn icmp_bytes(icmp: &Icmp, v6: bool, checksums: bool) -> Vec<u8> {
    let (ty, code) = crate::host::icmp_type_code(icmp, !v6);
    let mut b = vec![ty, code, 0, 0, 0, 0, 0, 0];
    match icmp {
        Icmp::EchoRequest { id, seq, len } | Icmp::EchoReply { id, seq, len } => {
            b[4..6].copy_from_slice(&id.to_be_bytes());
            b[6..8].copy_from_slice(&seq.to_be_bytes());
            b.resize(8 + *len as usize, 0);
        }
        Icmp::Unreachable { mtu, original, .. } => {
            if let Some(mtu) = mtu {
                if v6 {
                    b[4..8].copy_from_slice(&mtu.to_be_bytes());
                } else {
                    b[6..8].copy_from_slice(&(*mtu).min(65_535).to_be_bytes()[2..]);
                }
            }
            b.extend(quote(original, checksums));
        }
        Icmp::TimeExceeded { original } => b.extend(quote(original, checksums)),
    }
    b
}

/// The original packet's IP header plus 8 bytes, as ICMP errors quote it.
fn quote(original: &Packet, checksums: bool) -> Vec<u8> {
    let mut bytes = emit(original, checksums);
    bytes.truncate(original.ip_header_len() as usize + 8);
    bytes
}

fn body_bytes(body: &Body) -> Vec<u8> {
    let len = body.wire_len() as usize;
    let mut b = match body {
        Body::Data { tag, .. } => tag.to_be_bytes().to_vec(),
        Body::WireGuard(m) => wireguard_head(m),
        // OpenVPN: opcode and the rest are not reproduced.
        Body::OpenVpn(_) => Vec::new(),
        Body::Ike(m) => ike_head(m),
        Body::EspInUdp(esp) => esp_bytes(esp),
        // PeerVPN: the packet's peer id field (0 for auth), rest zero.
        Body::PeerVpn(_) => Vec::new(),
    };
    b.resize(len, 0);
    b
}

/// WireGuard: message type (1-4) and reserved zeros, then the indices.
fn wireguard_head(m: &wireguard::Message) -> Vec<u8> {
    let ty: u8 = match m {
        wireguard::Message::HandshakeInitiation(_) => 1,
        wireguard::Message::HandshakeResponse(_) => 2,
        wireguard::Message::CookieReply(_) => 3,
        wireguard::Message::TransportData(_) => 4,
    };
    vec![ty, 0, 0, 0]
}

/// IKE header (RFC 2408 3.1 / RFC 7296 3.1): initiator and responder
/// SPIs, version 1.0 or 2.0, and for IKEv2 the message id and response
/// flag; the non-ESP marker (four zero bytes) first on udp/4500.
fn ike_head(m: &ipsec::IkeMessage) -> Vec<u8> {
    let mut h = vec![0u8; 28];
    let marker = match m {
        ipsec::IkeMessage::V1(v1) => {
            h[0..8].copy_from_slice(&v1.icookie.to_be_bytes());
            h[8..16].copy_from_slice(&v1.rcookie.to_be_bytes());
            h[17] = 0x10;
            h[18] = 2; // Identity Protection (Main Mode)
            v1.non_esp_marker
        }
        ipsec::IkeMessage::V2(v2) => {
            h[0..8].copy_from_slice(&v2.spi_i.to_be_bytes());
            h[8..16].copy_from_slice(&v2.spi_r.to_be_bytes());
            h[17] = 0x20;
            h[18] = 34; // IKE_SA_INIT; later exchanges differ only here
            h[19] = if v2.response { 0x20 } else { 0x08 };
            h[20..24].copy_from_slice(&v2.msg_id.to_be_bytes());
            v2.non_esp_marker
        }
    };
    if marker {
        let mut b = vec![0u8; 4];
        b.extend(h);
        b
    } else {
        h
    }
}

/// ESP: SPI and sequence number, then the (synthesised) ciphertext.
fn esp_bytes(esp: &ipsec::Esp) -> Vec<u8> {
    let mut b = vec![0u8; 8];
    let ipsec::Esp::Tunnel { spi, seq, .. } = esp;
    b[0..4].copy_from_slice(&spi.to_be_bytes());
    b[4..8].copy_from_slice(&seq.to_be_bytes());
    b.resize(esp.wire_len() as usize, 0);
    b
}

/// The pseudo-header sum of UDP/TCP/ICMPv6 checksums.
fn pseudo_sum(p: &Packet, proto: u8, len: usize) -> u32 {
    let mut sum = 0u32;
    let mut add = |bytes: &[u8]| {
        for pair in bytes.chunks(2) {
            sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        }
    };
    match (p.src, p.dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            add(&s.octets());
            add(&d.octets());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            add(&s.octets());
            add(&d.octets());
        }
        _ => {}
    }
    sum + u32::from(proto) + len as u32
}

/// The Internet checksum (RFC 1071) of `bytes` plus an initial sum.
pub fn checksum(bytes: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    for pair in bytes.chunks(2) {
        sum += u64::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

// ---------------------------------------------------------------------------
// Parse
// ---------------------------------------------------------------------------

/// IP header fields of a packet being parsed.
struct Ip<'a> {
    src: IpAddr,
    dst: IpAddr,
    ttl: u8,
    dont_fragment: bool,
    proto: u8,
    /// The transport bytes (as long as the IP header says).
    payload: &'a [u8],
}

fn ip_header(bytes: &[u8]) -> Result<Ip<'_>, WireError> {
    match bytes.first().map(|b| b >> 4) {
        Some(4) => {
            let packet =
                Ipv4Packet::new_checked(bytes).map_err(|_| WireError::Malformed("IPv4"))?;
            Ok(Ip {
                src: IpAddr::V4(packet.src_addr()),
                dst: IpAddr::V4(packet.dst_addr()),
                ttl: packet.hop_limit(),
                dont_fragment: packet.dont_frag(),
                proto: u8::from(packet.next_header()),
                payload: packet.payload(),
            })
        }
        Some(6) => {
            let packet =
                Ipv6Packet::new_checked(bytes).map_err(|_| WireError::Malformed("IPv6"))?;
            Ok(Ip {
                src: IpAddr::V6(packet.src_addr()),
                dst: IpAddr::V6(packet.dst_addr()),
                ttl: packet.hop_limit(),
                dont_fragment: true,
                proto: u8::from(packet.next_header()),
                payload: packet.payload(),
            })
        }
        Some(v) => Err(WireError::Version(v)),
        None => Err(WireError::Malformed("IP")),
    }
}

/// Reads an endpoint packet (ICMP, UDP probe data, TCP) from its bytes.
pub fn parse(bytes: &[u8]) -> Result<Packet, WireError> {
    let ip = ip_header(bytes)?;
    let payload = match ip.proto {
        1 | 58 => Payload::Icmp(parse_icmp(ip.payload, ip.proto == 58)?),
        17 => {
            let udp =
                UdpPacket::new_checked(ip.payload).map_err(|_| WireError::Malformed("UDP"))?;
            Payload::Udp {
                src_port: udp.src_port(),
                dst_port: udp.dst_port(),
                body: data_body(udp.payload()),
            }
        }
        6 => {
            let tcp =
                TcpPacket::new_checked(ip.payload).map_err(|_| WireError::Malformed("TCP"))?;
            let repr = TcpRepr::parse(
                &tcp,
                &IpAddress::from(ip.src),
                &IpAddress::from(ip.dst),
                &ChecksumCapabilities::ignored(),
            )
            .map_err(|_| WireError::Malformed("TCP"))?;
            tcp_payload(&repr)
        }
        other => return Err(WireError::Protocol(other)),
    };
    Ok(Packet {
        src: ip.src,
        dst: ip.dst,
        ttl: ip.ttl,
        dont_fragment: ip.dont_fragment,
        payload,
    })
}

/// Probe data: the tag is the first 8 bytes, big-endian (zero-padded when
/// the datagram is shorter).
fn data_body(bytes: &[u8]) -> Body {
    let mut tag = [0u8; 8];
    let n = bytes.len().min(8);
    tag[..n].copy_from_slice(&bytes[..n]);
    Body::Data {
        len: bytes.len() as u32,
        tag: u64::from_be_bytes(tag),
    }
}

fn tcp_payload(repr: &TcpRepr<'_>) -> Payload {
    Payload::Tcp {
        src_port: repr.src_port,
        dst_port: repr.dst_port,
        flags: TcpFlags {
            syn: repr.control == TcpControl::Syn,
            ack: repr.ack_number.is_some(),
            fin: repr.control == TcpControl::Fin,
            rst: repr.control == TcpControl::Rst,
            psh: repr.control == TcpControl::Psh,
        },
        seq: repr.seq_number.0 as u32,
        ack: repr.ack_number.map_or(0, |a| a.0 as u32),
        window: repr.window_len,
        options: TcpOptions {
            mss: repr.max_seg_size,
            window_scale: repr.window_scale,
            sack_permitted: repr.sack_permitted,
            sack_ranges: repr.sack_ranges,
            timestamp: repr.timestamp.map(|t| (t.tsval, t.tsecr)),
        },
        data: Data::new(repr.payload),
    }
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([
        b.get(at).copied().unwrap_or(0),
        b.get(at + 1).copied().unwrap_or(0),
    ])
}

fn parse_icmp(b: &[u8], v6: bool) -> Result<Icmp, WireError> {
    if b.len() < 8 {
        return Err(WireError::Malformed("ICMP"));
    }
    let (ty, code) = (b[0], b[1]);
    let echo = |reply: bool| {
        let (id, seq, len) = (be16(b, 4), be16(b, 6), (b.len() - 8) as u32);
        if reply {
            Icmp::EchoReply { id, seq, len }
        } else {
            Icmp::EchoRequest { id, seq, len }
        }
    };
    let original = || parse_quoted(&b[8..]).map(Box::new);
    let unreachable = |code, mtu| {
        Ok(Icmp::Unreachable {
            code,
            mtu,
            original: original()?,
        })
    };
    match (v6, ty, code) {
        (false, 8, 0) | (true, 128, 0) => Ok(echo(false)),
        (false, 0, 0) | (true, 129, 0) => Ok(echo(true)),
        (false, 11, _) | (true, 3, _) => Ok(Icmp::TimeExceeded {
            original: original()?,
        }),
        (false, 3, 4) => unreachable(
            UnreachableCode::FragmentationNeeded,
            Some(u32::from(be16(b, 6))),
        ),
        (true, 2, 0) => unreachable(
            UnreachableCode::FragmentationNeeded,
            Some(u32::from_be_bytes([b[4], b[5], b[6], b[7]])),
        ),
        (false, 3, 0) | (true, 1, 0) => unreachable(UnreachableCode::Net, None),
        (false, 3, 1) | (true, 1, 3) => unreachable(UnreachableCode::Host, None),
        (false, 3, 3) | (true, 1, 4) => unreachable(UnreachableCode::Port, None),
        (false, 3, 13) | (true, 1, 1) => unreachable(UnreachableCode::AdminProhibited, None),
        _ => Err(WireError::IcmpType(ty, code)),
    }
}

/// The original of an ICMP error from its quoted IP header and first 8
/// transport bytes.
fn parse_quoted(b: &[u8]) -> Result<Packet, WireError> {
    let (src, dst, ttl, dont_fragment, proto, header, total) = match b.first().map(|x| x >> 4) {
        Some(4) => {
            let ihl = usize::from(b[0] & 0x0f) * 4;
            if ihl < 20 || b.len() < ihl {
                return Err(WireError::Malformed("quoted IPv4"));
            }
            let addr = |at: usize| IpAddr::from([b[at], b[at + 1], b[at + 2], b[at + 3]]);
            (
                addr(12),
                addr(16),
                b[8],
                b[6] & 0x40 != 0,
                b[9],
                ihl,
                usize::from(be16(b, 2)),
            )
        }
        Some(6) => {
            if b.len() < 40 {
                return Err(WireError::Malformed("quoted IPv6"));
            }
            let addr = |at: usize| {
                let mut o = [0u8; 16];
                o.copy_from_slice(&b[at..at + 16]);
                IpAddr::from(o)
            };
            (
                addr(8),
                addr(24),
                b[7],
                true,
                b[6],
                40,
                40 + usize::from(be16(b, 4)),
            )
        }
        _ => return Err(WireError::Malformed("quoted IP")),
    };
    let t = &b[header..];
    if t.len() < 8 {
        return Err(WireError::Malformed("quoted transport"));
    }
    let body_len = total.saturating_sub(header) as u32;
    let payload = match proto {
        1 | 58 => {
            let (id, seq, len) = (be16(t, 4), be16(t, 6), body_len.saturating_sub(8));
            match (proto, t[0]) {
                (1, 8) | (58, 128) => Payload::Icmp(Icmp::EchoRequest { id, seq, len }),
                (1, 0) | (58, 129) => Payload::Icmp(Icmp::EchoReply { id, seq, len }),
                _ => return Err(WireError::IcmpType(t[0], t[1])),
            }
        }
        17 => Payload::Udp {
            src_port: be16(t, 0),
            dst_port: be16(t, 2),
            body: Body::Data {
                len: u32::from(be16(t, 4)).saturating_sub(UDP_HEADER),
                tag: 0,
            },
        },
        6 => Payload::Tcp {
            src_port: be16(t, 0),
            dst_port: be16(t, 2),
            flags: TcpFlags::default(),
            seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
            ack: 0,
            window: 0,
            options: TcpOptions::default(),
            data: Data::default(),
        },
        other => return Err(WireError::Protocol(other)),
    };
    Ok(Packet {
        src,
        dst,
        ttl,
        dont_fragment,
        payload,
    })
}

/// What an ICMP error quoting `original` can tell of it: addresses, TTL,
/// DF, protocol and the first 8 transport bytes (ports and the TCP sequence
/// number; an echo's identifier, sequence and length; a datagram's length).
pub fn quoted_form(original: &Packet) -> Packet {
    let payload = match &original.payload {
        Payload::Icmp(icmp) => Payload::Icmp(icmp.clone()),
        Payload::Udp {
            src_port,
            dst_port,
            body,
        } => Payload::Udp {
            src_port: *src_port,
            dst_port: *dst_port,
            body: Body::Data {
                len: body.wire_len(),
                tag: 0,
            },
        },
        Payload::Tcp {
            src_port,
            dst_port,
            seq,
            ..
        } => Payload::Tcp {
            src_port: *src_port,
            dst_port: *dst_port,
            flags: TcpFlags::default(),
            seq: *seq,
            ack: 0,
            window: 0,
            options: TcpOptions::default(),
            data: Data::default(),
        },
        Payload::Esp(e) => Payload::Esp(e.clone()),
    };
    Packet {
        src: original.src,
        dst: original.dst,
        ttl: original.ttl,
        dont_fragment: original.dont_fragment || original.src.is_ipv6(),
        payload,
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use proptest::prelude::*;

    use super::*;

    fn ping(len: u32) -> Packet {
        Packet {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            ttl: 64,
            dont_fragment: true,
            payload: Payload::Icmp(Icmp::EchoRequest { id: 7, seq: 1, len }),
        }
    }

    #[test]
    fn bytes_are_as_long_as_the_wire_says_and_checksums_verify() {
        let p = ping(56);
        let b = emit(&p, true);
        assert_eq!(b.len() as u32, p.wire_len());
        assert_eq!(checksum(&b[..20], 0), 0, "IPv4 header checksum");
        assert_eq!(checksum(&b[20..], 0), 0, "ICMP checksum");
        assert_eq!(&b[..2], &[0x45, 0]);
    }

    #[test]
    fn a_tcp_syn_with_options_is_as_long_as_its_header_says_and_smoltcp_verifies_it() {
        let p = Packet {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            ttl: 64,
            dont_fragment: true,
            payload: Payload::Tcp {
                src_port: 40000,
                dst_port: 22,
                flags: TcpFlags {
                    syn: true,
                    ..TcpFlags::default()
                },
                seq: 1,
                ack: 0,
                window: 65_535,
                options: TcpOptions {
                    mss: Some(1460),
                    window_scale: Some(7),
                    sack_permitted: true,
                    ..TcpOptions::default()
                },
                data: Data::default(),
            },
        };
        // 20 + MSS 4 + WS 3 + SACK-permitted 2 = 29, padded to 32.
        assert_eq!(p.wire_len(), 20 + 32);
        let b = emit(&p, true);
        assert_eq!(b.len() as u32, p.wire_len());
        let tcp = TcpPacket::new_checked(&b[20..]).unwrap_or_else(|e| panic!("{e}"));
        assert!(tcp.verify_checksum(&IpAddress::from(p.src), &IpAddress::from(p.dst)));
        assert_eq!(parse(&b), Ok(p));
    }

    #[test]
    fn fragmentation_needed_carries_the_mtu_and_the_quoted_original() {
        let original = quoted_form(&ping(1400));
        let err = Packet {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 1, 254)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            ttl: 64,
            dont_fragment: false,
            payload: Payload::Icmp(Icmp::Unreachable {
                code: UnreachableCode::FragmentationNeeded,
                mtu: Some(1000),
                original: Box::new(original),
            }),
        };
        let b = emit(&err, true);
        // ICMP header 8 + quoted IPv4 header 20 + 8.
        assert_eq!(b.len(), 20 + 8 + 28);
        assert_eq!((b[20], b[21]), (3, 4));
        assert_eq!(be16(&b, 26), 1000);
        assert_eq!(parse(&b), Ok(err));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert_eq!(parse(&[]), Err(WireError::Malformed("IP")));
        assert_eq!(parse(&[0x45, 0, 0]), Err(WireError::Malformed("IPv4")));
        assert_eq!(parse(&[0x20]), Err(WireError::Version(2)));
    }

    fn addr_pair() -> impl Strategy<Value = (IpAddr, IpAddr)> {
        prop_oneof![
            (any::<u32>(), any::<u32>()).prop_map(|(a, b)| (
                IpAddr::V4(Ipv4Addr::from(a | 1)),
                IpAddr::V4(Ipv4Addr::from(b | 1))
            )),
            (any::<u128>(), any::<u128>()).prop_map(|(a, b)| (
                IpAddr::V6(Ipv6Addr::from(a | 1)),
                IpAddr::V6(Ipv6Addr::from(b | 1))
            )),
        ]
    }

    fn tcp() -> impl Strategy<Value = Payload> {
        (
            (any::<u16>(), any::<u16>(), 0u8..5, any::<bool>()),
            (any::<u32>(), any::<u32>(), any::<u16>()),
            (
                proptest::option::of(any::<u16>()),
                proptest::option::of(0u8..15),
                any::<bool>(),
                proptest::option::of((any::<u32>(), any::<u32>())),
            ),
            proptest::collection::vec(any::<u8>(), 0..64),
        )
            .prop_map(
                |((sp, dp, control, ack_flag), (seq, ack, window), (mss, ws, sp_ok, ts), data)| {
                    let flags = TcpFlags {
                        syn: control == 1,
                        fin: control == 2,
                        rst: control == 3,
                        psh: control == 4,
                        ack: ack_flag,
                    };
                    Payload::Tcp {
                        src_port: sp,
                        dst_port: dp,
                        flags,
                        seq,
                        ack: if ack_flag { ack } else { 0 },
                        window,
                        options: TcpOptions {
                            mss,
                            window_scale: ws,
                            sack_permitted: sp_ok,
                            sack_ranges: [None; 3],
                            timestamp: ts,
                        },
                        data: Data::new(&data),
                    }
                },
            )
    }

    fn endpoint_payload() -> impl Strategy<Value = Payload> {
        prop_oneof![
            (any::<u16>(), any::<u16>(), 0u32..200, any::<bool>()).prop_map(
                |(id, seq, len, reply)| {
                    Payload::Icmp(if reply {
                        Icmp::EchoReply { id, seq, len }
                    } else {
                        Icmp::EchoRequest { id, seq, len }
                    })
                }
            ),
            (any::<u16>(), any::<u16>(), 8u32..200, any::<u64>()).prop_map(|(sp, dp, len, tag)| {
                Payload::Udp {
                    src_port: sp,
                    dst_port: dp,
                    body: Body::Data { len, tag },
                }
            }),
            tcp(),
        ]
    }

    fn endpoint_packet() -> impl Strategy<Value = Packet> {
        (addr_pair(), 1u8.., any::<bool>(), endpoint_payload()).prop_map(
            |((src, dst), ttl, df, payload)| Packet {
                src,
                dst,
                ttl,
                dont_fragment: df || src.is_ipv6(),
                payload,
            },
        )
    }

    fn error_about(p: Packet) -> impl Strategy<Value = Packet> {
        let v4 = p.src.is_ipv4();
        (
            0u8..6,
            576u32..9000,
            any::<u32>().prop_map(move |a| {
                if v4 {
                    IpAddr::V4(Ipv4Addr::from(a | 1))
                } else {
                    IpAddr::V6(Ipv6Addr::from(u128::from(a) | 1 << 64))
                }
            }),
        )
            .prop_map(move |(kind, mtu, from)| {
                let original = Box::new(quoted_form(&p));
                let icmp = match kind {
                    0 => Icmp::TimeExceeded { original },
                    1 => Icmp::Unreachable {
                        code: UnreachableCode::FragmentationNeeded,
                        mtu: Some(if v4 { mtu.min(65_535) } else { mtu }),
                        original,
                    },
                    k => Icmp::Unreachable {
                        code: [
                            UnreachableCode::Net,
                            UnreachableCode::Host,
                            UnreachableCode::Port,
                            UnreachableCode::AdminProhibited,
                        ][usize::from(k - 2)],
                        mtu: None,
                        original,
                    },
                };
                Packet {
                    src: from,
                    dst: p.src,
                    ttl: 64,
                    dont_fragment: !v4,
                    payload: Payload::Icmp(icmp),
                }
            })
    }

    proptest! {
        #[test]
        fn parse_of_emit_is_the_packet(p in endpoint_packet(), checksums in any::<bool>()) {
            let bytes = emit(&p, checksums);
            prop_assert_eq!(bytes.len() as u32, p.wire_len());
            prop_assert_eq!(parse(&bytes), Ok(p));
        }

        #[test]
        fn errors_round_trip_with_their_quoted_original(
            e in endpoint_packet().prop_flat_map(error_about)
        ) {
            prop_assert_eq!(parse(&emit(&e, true)), Ok(e));
        }

        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = parse(&bytes);
        }

        #[test]
        fn parse_never_panics_on_mangled_packets(
            p in endpoint_packet(),
            at in any::<prop::sample::Index>(),
            byte in any::<u8>(),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut bytes = emit(&p, false);
            let i = at.index(bytes.len());
            bytes[i] = byte;
            bytes.truncate(cut.index(bytes.len() + 1));
            let _ = parse(&bytes);
        }
    }
}

//! Packet captures in the classic pcap format (`LINKTYPE_RAW`: every
//! record is an IPv4 or IPv6 packet), one file per link, that Wireshark,
//! tshark and tcpdump open.
//!
//! The simulator carries headers as values and payloads by size, so the
//! bytes are synthesised: real IPv4/IPv6, UDP, TCP and ICMP headers with
//! correct lengths and checksums; tunnel payloads start with their
//! protocol's real header fields (WireGuard message type and indices, ESP
//! SPI and sequence number, IKE SPIs and version, OpenVPN opcode) and are
//! zero-filled to their wire size. Encrypted contents are not reproduced.
//! Timestamps are the virtual time: the capture of a run starts at the Unix
//! epoch.

use std::net::IpAddr;

use crate::packet::{Body, Icmp, Packet, Payload};
use crate::proto::{ipsec, openvpn, wireguard};
use crate::time::Instant;

/// `LINKTYPE_RAW`: raw IPv4/IPv6 packets.
const LINKTYPE_RAW: u32 = 101;

/// The bytes of a pcap file holding `records` in order.
pub fn file(records: &[(Instant, Packet)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + records.len() * 96);
    out.extend_from_slice(&0xa1b2_c3d4u32.to_le_bytes()); // microsecond timestamps
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&4u16.to_le_bytes());
    out.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    out.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    out.extend_from_slice(&65_535u32.to_le_bytes()); // snaplen
    out.extend_from_slice(&LINKTYPE_RAW.to_le_bytes());
    for (at, packet) in records {
        let bytes = packet_bytes(packet);
        let secs = (at.0 / 1_000_000_000) as u32;
        let micros = ((at.0 % 1_000_000_000) / 1_000) as u32;
        let caplen = bytes.len().min(65_535) as u32;
        out.extend_from_slice(&secs.to_le_bytes());
        out.extend_from_slice(&micros.to_le_bytes());
        out.extend_from_slice(&caplen.to_le_bytes());
        out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
        out.extend_from_slice(&bytes[..caplen as usize]);
    }
    out
}

/// One packet as it would be on the wire (headers real, payload synthesised).
pub fn packet_bytes(p: &Packet) -> Vec<u8> {
    let (proto, l4) = transport_bytes(p);
    match (p.src, p.dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let total = 20 + l4.len();
            let mut h = vec![0u8; 20];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&(total.min(65_535) as u16).to_be_bytes());
            if p.dont_fragment {
                h[6] = 0x40;
            }
            h[8] = p.ttl;
            h[9] = proto;
            h[12..16].copy_from_slice(&src.octets());
            h[16..20].copy_from_slice(&dst.octets());
            let sum = checksum(&h, 0);
            h[10..12].copy_from_slice(&sum.to_be_bytes());
            h.extend_from_slice(&l4);
            h
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let mut h = vec![0u8; 40];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(l4.len().min(65_535) as u16).to_be_bytes());
            h[6] = proto;
            h[7] = p.ttl;
            h[8..24].copy_from_slice(&src.octets());
            h[24..40].copy_from_slice(&dst.octets());
            h.extend_from_slice(&l4);
            h
        }
        // Mixed families never occur; keep the record readable anyway.
        _ => l4,
    }
}

/// (IP protocol number, transport header + payload) with the transport
/// checksum filled in.
fn transport_bytes(p: &Packet) -> (u8, Vec<u8>) {
    let v6 = p.src.is_ipv6();
    match &p.payload {
        Payload::Icmp(icmp) => {
            let mut b = icmp_bytes(icmp, v6);
            let proto = if v6 { 58 } else { 1 };
            let sum = if v6 {
                checksum(&b, pseudo_sum(p, proto, b.len()))
            } else {
                checksum(&b, 0)
            };
            b[2..4].copy_from_slice(&sum.to_be_bytes());
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
            let sum = match checksum(&b, pseudo_sum(p, 17, len)) {
                0 => 0xffff,
                s => s,
            };
            b[6..8].copy_from_slice(&sum.to_be_bytes());
            (17, b)
        }
        Payload::Tcp {
            src_port,
            dst_port,
            flags,
            seq,
            ack,
            len,
        } => {
            let mut b = vec![0u8; 20];
            b[0..2].copy_from_slice(&src_port.to_be_bytes());
            b[2..4].copy_from_slice(&dst_port.to_be_bytes());
            b[4..8].copy_from_slice(&seq.to_be_bytes());
            b[8..12].copy_from_slice(&ack.to_be_bytes());
            b[12] = 5 << 4;
            b[13] = u8::from(flags.fin)
                | u8::from(flags.syn) << 1
                | u8::from(flags.rst) << 2
                | u8::from(flags.ack) << 4;
            b[14..16].copy_from_slice(&65_535u16.to_be_bytes());
            b.resize(20 + *len as usize, 0);
            let sum = checksum(&b, pseudo_sum(p, 6, b.len()));
            b[16..18].copy_from_slice(&sum.to_be_bytes());
            (6, b)
        }
        Payload::Esp(esp) => (50, esp_bytes(esp)),
    }
}

fn icmp_bytes(icmp: &Icmp, v6: bool) -> Vec<u8> {
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
            b.extend(quote(original));
        }
        Icmp::TimeExceeded { original } => b.extend(quote(original)),
    }
    b
}

/// The original packet's IP header plus 8 bytes, as ICMP errors quote it.
fn quote(original: &Packet) -> Vec<u8> {
    let bytes = packet_bytes(original);
    let keep = (original.ip_header_len() as usize + 8).min(bytes.len());
    bytes[..keep].to_vec()
}

fn body_bytes(body: &Body) -> Vec<u8> {
    let len = body.wire_len() as usize;
    let mut b = match body {
        Body::Data { tag, .. } => tag.to_be_bytes().to_vec(),
        Body::WireGuard(m) => wireguard_head(m),
        Body::OpenVpn(m) => openvpn_head(m),
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

/// OpenVPN over UDP: the first byte is opcode << 3 | key id; the rest is
/// left zero.
fn openvpn_head(_m: &openvpn::Message) -> Vec<u8> {
    Vec::new()
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
fn checksum(bytes: &[u8], initial: u32) -> u16 {
    let mut sum = u64::from(initial);
    for pair in bytes.chunks(2) {
        sum += u64::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ping(len: u32) -> Packet {
        Packet {
            src: "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
            dst: "10.0.0.2".parse().unwrap_or_else(|e| panic!("{e}")),
            ttl: 64,
            dont_fragment: true,
            payload: Payload::Icmp(Icmp::EchoRequest { id: 7, seq: 1, len }),
        }
    }

    #[test]
    fn bytes_are_as_long_as_the_wire_says_and_checksums_verify() {
        let p = ping(56);
        let b = packet_bytes(&p);
        assert_eq!(b.len() as u32, p.wire_len());
        assert_eq!(
            checksum(&b[..20], 0),
            0,
            "IPv4 header checksum verifies to zero"
        );
        assert_eq!(checksum(&b[20..], 0), 0, "ICMP checksum verifies to zero");
        assert_eq!(&b[..2], &[0x45, 0]);
    }

    #[test]
    fn file_has_the_classic_header_and_one_record_per_packet() {
        let bytes = file(&[
            (Instant(1_500_000), ping(56)),
            (Instant(2_000_000_000), ping(8)),
        ]);
        assert_eq!(&bytes[..4], &0xa1b2_c3d4u32.to_le_bytes());
        assert_eq!(
            u32::from_le_bytes([bytes[20], bytes[21], bytes[22], bytes[23]]),
            LINKTYPE_RAW
        );
        assert_eq!(bytes.len(), 24 + 16 + 84 + 16 + 36);
        // First record: 0 s, 1500 us.
        assert_eq!(
            u32::from_le_bytes([bytes[28], bytes[29], bytes[30], bytes[31]]),
            1500
        );
    }
}

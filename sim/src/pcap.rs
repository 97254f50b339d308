//! Packet captures in the classic pcap format (`LINKTYPE_RAW`: every
//! record is an IPv4 or IPv6 packet), one file per link, that Wireshark,
//! tshark and tcpdump open.
//!
//! The bytes are [`crate::wire::emit`]'s, with checksums: real IPv4/IPv6,
//! UDP, TCP and ICMP headers; TCP payloads as the stacks sent them; tunnel
//! payloads start with their protocol's real header fields and are
//! zero-filled to their wire size (encrypted contents are not reproduced).
//! Timestamps are the virtual time: the capture of a run starts at the Unix
//! epoch.

use crate::packet::Packet;
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
        let bytes = crate::wire::emit(packet, true);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Icmp, Payload};

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

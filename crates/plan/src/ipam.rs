//! Prefix arithmetic for allocation: which addresses of a prefix are
//! reserved, the lowest free one, free blocks that avoid a set of prefixes.
//! All functions are pure and total (no panics for any prefix).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

/// Addresses already in use in one segment.
pub type Taken = BTreeSet<IpAddr>;

/// Which addresses of a prefix are not for hosts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserve {
    /// Network and broadcast (IPv4), subnet-router anycast (IPv6).
    Ends,
    /// `Ends` plus the first host address for the router.
    Router,
    /// AWS: network, +1 router, +2 DNS, +3 reserved, broadcast.
    Cloud,
}

impl Reserve {
    fn low(self) -> u128 {
        match self {
            Reserve::Ends => 1,
            Reserve::Router => 2,
            Reserve::Cloud => 4,
        }
    }
}

fn host_bits(net: IpNet) -> u32 {
    u32::from(net.max_prefix_len() - net.prefix_len())
}

/// Number of addresses in a prefix, saturating at u128::MAX.
pub fn size(net: IpNet) -> u128 {
    1u128.checked_shl(host_bits(net)).unwrap_or(u128::MAX)
}

/// Offsets `[low, high]` of usable host addresses; empty when none.
fn usable_range(net: IpNet, reserve: Reserve) -> Option<(u128, u128)> {
    let bits = host_bits(net);
    // /31, /32, /127, /128: point-to-point or single host, nothing reserved.
    if bits <= 1 {
        return Some((0, size(net) - 1));
    }
    let last = size(net).saturating_sub(1);
    let high = match net {
        IpNet::V4(_) => last - 1,
        IpNet::V6(_) => last,
    };
    let low = reserve.low();
    (low <= high).then_some((low, high))
}

/// Usable host addresses of a prefix.
pub fn usable(net: IpNet, reserve: Reserve) -> u128 {
    usable_range(net, reserve).map_or(0, |(low, high)| (high - low).saturating_add(1))
}

/// Offset of `addr` inside `net` (`None` outside it).
fn offset_of(net: IpNet, addr: IpAddr) -> Option<u128> {
    if !net.contains(&addr) {
        return None;
    }
    Some(match (net, addr) {
        (IpNet::V4(n), IpAddr::V4(a)) => u128::from(u32::from(a) - u32::from(n.network())),
        (IpNet::V6(n), IpAddr::V6(a)) => u128::from(a) - u128::from(n.network()),
        _ => return None,
    })
}

fn offset_addr(net: IpNet, offset: u128) -> IpAddr {
    match net {
        IpNet::V4(n) => IpAddr::V4(Ipv4Addr::from(
            u32::from(n.network()).wrapping_add(offset as u32),
        )),
        IpNet::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n.network()).wrapping_add(offset))),
    }
}

/// The `n`th address of an IPv4 prefix (0 = network address).
pub fn nth_host_v4(net: Ipv4Net, n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()).wrapping_add(n))
}

/// The lowest usable address of `net` that is not taken.
pub fn next_free(net: IpNet, reserve: Reserve, taken: &Taken) -> Option<IpAddr> {
    next_free_after(net, reserve, taken, None)
}

/// The lowest usable address of `net` above `after` that is not taken.
/// Allocating in order with the last result as `after` gives the same
/// addresses as [`next_free`] (everything below the last allocation is
/// taken) in linear instead of quadratic time: a 10,000-member overlay.
pub fn next_free_after(
    net: IpNet,
    reserve: Reserve,
    taken: &Taken,
    after: Option<IpAddr>,
) -> Option<IpAddr> {
    let (low, high) = usable_range(net, reserve)?;
    let mut offset = match after.and_then(|a| offset_of(net, a)) {
        Some(o) if o >= high => return None,
        Some(o) => (o + 1).max(low),
        None => low,
    };
    loop {
        let candidate = offset_addr(net, offset);
        if !taken.contains(&candidate) {
            return Some(candidate);
        }
        if offset == high {
            return None;
        }
        offset += 1;
    }
}

/// Number of addresses covered by the union of prefixes of one family each
/// (overlaps counted once).
pub fn union_size(nets: &[IpNet]) -> u128 {
    IpNet::aggregate(&nets.to_vec())
        .into_iter()
        .map(size)
        .fold(0u128, u128::saturating_add)
}

fn overlaps(a: IpNet, b: IpNet) -> bool {
    a.contains(&b) || b.contains(&a)
}

/// The lowest IPv4 block of `/prefix_len` inside the RFC 1918 ranges (10/8
/// first) that overlaps none of `avoid`.
pub fn free_v4_block(prefix_len: u8, avoid: &[IpNet]) -> Option<Ipv4Net> {
    let spaces = [
        Ipv4Net::new(Ipv4Addr::new(10, 0, 0, 0), 8),
        Ipv4Net::new(Ipv4Addr::new(172, 16, 0, 0), 12),
        Ipv4Net::new(Ipv4Addr::new(192, 168, 0, 0), 16),
    ];
    for space in spaces.into_iter().flatten() {
        let Ok(mut blocks) = space.subnets(prefix_len) else {
            continue;
        };
        if let Some(block) = blocks.find(|b| !avoid.iter().any(|a| overlaps(*a, IpNet::V4(*b)))) {
            return Some(block);
        }
    }
    None
}

/// The /64 number `id` of a /48.
pub fn ula_subnet(ula: Ipv6Net, id: u32) -> Option<Ipv6Net> {
    let id = u16::try_from(id).ok()?;
    let base = u128::from(ula.network()) | (u128::from(id) << 64);
    Ipv6Net::new(Ipv6Addr::from(base), 64).ok()
}

/// A /64 of the ULA /48 that overlaps none of `avoid`: number `preferred`
/// when that one is free, else the lowest free number from 1.
pub fn free_ula_subnet(ula: Ipv6Net, preferred: u32, avoid: &[IpNet]) -> Option<Ipv6Net> {
    let free = |id: u32| {
        ula_subnet(ula, id).filter(|n| !avoid.iter().any(|a| overlaps(*a, IpNet::V6(*n))))
    };
    free(preferred).or_else(|| (1..=u32::from(u16::MAX)).find_map(free))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn aws_subnets_keep_five_addresses() {
        assert_eq!(usable(net("12.11.6.0/24"), Reserve::Cloud), 251);
        let first = next_free(net("12.11.6.0/24"), Reserve::Cloud, &Taken::new());
        assert_eq!(
            first,
            Some("12.11.6.4".parse().unwrap_or_else(|e| panic!("{e}")))
        );
    }

    #[test]
    fn tiny_prefixes_do_not_panic() {
        for p in [
            "10.0.0.0/32",
            "10.0.0.0/31",
            "10.0.0.0/30",
            "::/128",
            "::/0",
            "0.0.0.0/0",
        ] {
            for r in [Reserve::Ends, Reserve::Router, Reserve::Cloud] {
                let _ = usable(net(p), r);
                let _ = next_free(net(p), r, &Taken::new());
            }
        }
        assert_eq!(usable(net("10.0.0.0/30"), Reserve::Cloud), 0);
        assert_eq!(
            next_free(net("10.0.0.0/30"), Reserve::Cloud, &Taken::new()),
            None
        );
    }

    #[test]
    fn free_block_skips_declared_ranges() {
        let block = free_v4_block(24, &[net("10.0.0.0/16"), net("10.1.0.0/25")]);
        assert_eq!(
            block,
            Some("10.1.1.0/24".parse().unwrap_or_else(|e| panic!("{e}")))
        );
        assert_eq!(free_v4_block(24, &[net("0.0.0.0/0")]), None);
    }

    #[test]
    fn union_counts_overlaps_once() {
        assert_eq!(
            union_size(&[net("10.0.0.0/24"), net("10.0.0.0/25"), net("10.0.1.0/24")]),
            512
        );
    }
}

#[cfg(test)]
mod next_free_after_tests {
    use super::*;

    #[test]
    fn allocating_after_the_last_gives_the_same_addresses_as_from_the_start() {
        let net: IpNet = "10.0.0.0/28".parse().unwrap_or_else(|e| panic!("{e}"));
        let mut taken: Taken = ["10.0.0.3", "10.0.0.4", "10.0.0.9"]
            .iter()
            .map(|a| a.parse().unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let (mut slow, mut fast) = (taken.clone(), Vec::new());
        let mut last = None;
        while let Some(a) = next_free_after(net, Reserve::Ends, &taken, last) {
            taken.insert(a);
            last = Some(a);
            fast.push(a);
        }
        let mut expected = Vec::new();
        while let Some(a) = next_free(net, Reserve::Ends, &slow) {
            slow.insert(a);
            expected.push(a);
        }
        assert_eq!(fast, expected);
        assert_eq!(fast.len(), 14 - 3);
    }
}

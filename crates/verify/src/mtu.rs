//! MTU budget: what a tunnel carries plus what it adds must fit the path
//! underneath.
//!
//! Code: `mtu-budget` (Warning).
//!
//! Semantics chosen where the brief is silent:
//! - The underlay MTU of a host is the smallest MTU of its interfaces on
//!   wan links; without any, of all its interfaces and its site's uplink
//!   (see `underlay_mtu`). For a bond TAP link it is the `via` link's MTU
//!   and the MTU of the two hosts' interfaces on that link.
//! - WireGuard star: the tunnel MTU (`mtu`, 1420 when left out) plus the
//!   WireGuard overhead (IPv6 numbers when the hub's endpoint is IPv6, else
//!   IPv4) must fit the smallest underlay MTU of the members; one finding
//!   per star at `mtu`.
//! - Bond: bond MTU + Ethernet + OpenVPN + UDP (or TCP) + IPv4 must fit every
//!   TAP link's underlay; one finding per bond at `mtu`, naming each link
//!   that does not fit and the largest MTU that fits all.
//! - IPsec: the largest subnet MTU at either end (the biggest packet that
//!   can enter the tunnel) + ESP (+ NAT-T) must fit the smaller underlay of
//!   the two gateways; one finding per tunnel, at the tunnel's spoke (or
//!   second gateway) in `gateways`, suggesting TCP MSS clamping.
//! - PeerVPN meshes are not checked: the model has no mesh MTU to compare.
//! - Outer headers are counted for IPv4 except where stated; the numbers
//!   are worst cases so that a suggested MTU is always safe.

use vpnsim_topology::Diagnostic;
use vpnsim_topology::format::IpsecLayout;
use vpnsim_topology::model::{BondM, EndpointHost, HostId, IpsecM, Segment, StarM, TapLinkM};
use vpnsim_topology::units::Proto;

use crate::Ctx;
use crate::check_util::{finding, host_name, underlay_mtu};

/// Outer IPv4 header without options.
const IPV4_HEADER: u32 = 20;
/// Outer IPv6 header without extension headers.
const IPV6_HEADER: u32 = 40;
/// UDP header.
const UDP_HEADER: u32 = 8;
/// TCP header without options.
const TCP_HEADER: u32 = 20;
/// Ethernet header a TAP device carries inside the tunnel (no VLAN tag).
const ETHERNET_HEADER: u32 = 14;

/// WireGuard transport data message (whitepaper §5.4.6): type and reserved
/// 4, receiver index 4, counter 8, Poly1305 tag 16. With IPv4 + UDP that is
/// the well-known 60 bytes, with IPv6 80 (why wg-quick picks 1420 for 1500).
const WIREGUARD_DATA: u32 = 4 + 4 + 8 + 16;
/// WireGuard's default tunnel MTU when the star sets none.
const WIREGUARD_DEFAULT_MTU: u32 = 1420;

/// ESP in tunnel mode (RFC 4303), worst case of the usual suites: SPI 4 +
/// sequence number 4, IV 16, padding up to 15, pad length 1 + next header 1,
/// ICV 12 (AES-CBC with HMAC-SHA1-96, OpenSwan's era) = 53 bytes; AES-GCM-16
/// (RFC 4106: IV 8, padding up to 3, ICV 16) needs 37. With the outer IPv4
/// header this is the 73 bytes usually quoted for ESP.
const ESP_TUNNEL: u32 = 4 + 4 + 16 + 15 + 1 + 1 + 12;
/// NAT traversal wraps ESP in UDP/4500 (RFC 3948).
const NAT_T: u32 = UDP_HEADER;

/// OpenVPN data channel packet: opcode 1 + HMAC-SHA1 20 + IV 16 + packet id
/// 4 = 41 (AES-CBC layout, before CBC padding). It bounds the AES-GCM
/// layout of OpenVPN 2.5+ (P_DATA_V2 opcode/peer-id 4 + packet id 4 + tag
/// 16 = 24).
const OPENVPN_DATA: u32 = 1 + 20 + 16 + 4;
/// OpenVPN over TCP prefixes every packet with a 2-byte length.
const OPENVPN_TCP_LENGTH: u32 = 2;

/// TCP MSS for a given MTU: IPv4 20 + TCP 20.
fn mss(mtu: u32) -> u32 {
    mtu.saturating_sub(IPV4_HEADER + TCP_HEADER)
}

pub fn check(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let mut out = Vec::new();
    for star in &t.stars {
        out.extend(star_budget(ctx, star));
    }
    for bond in &t.bonds {
        out.extend(bond_budget(ctx, bond));
    }
    for ipsec in &t.ipsec {
        out.extend(ipsec_budget(ctx, ipsec));
    }
    out
}

fn star_budget(ctx: &Ctx<'_>, star: &StarM) -> Option<Diagnostic> {
    let t = ctx.topology();
    let members: Vec<HostId> = star.members().collect();
    if members.len() < 2 {
        return None;
    }
    let hub_v6 = match star.endpoints.get(&star.hub).map(|e| &e.host) {
        Some(EndpointHost::Ip(ip)) => ip.is_ipv6(),
        Some(EndpointHost::Dns(name)) => {
            let wanted = name.trim_end_matches('.');
            t.dns
                .iter()
                .find(|r| r.name.trim_end_matches('.') == wanted)
                .is_some_and(|r| r.a.is_empty() && !r.aaaa.is_empty())
        }
        None => false,
    };
    let (ip, family) = if hub_v6 {
        (IPV6_HEADER, "IPv6")
    } else {
        (IPV4_HEADER, "IPv4")
    };
    let overhead = ip + UDP_HEADER + WIREGUARD_DATA;
    let (inner, inner_text) = match star.mtu {
        Some(m) => (m, format!("{m}")),
        None => (
            WIREGUARD_DEFAULT_MTU,
            format!("{WIREGUARD_DEFAULT_MTU} (the default)"),
        ),
    };
    let (underlay, what) = members
        .iter()
        .filter_map(|m| underlay_mtu(t, *m))
        .min_by_key(|(mtu, _)| *mtu)?;
    if inner + overhead <= underlay {
        return None;
    }
    let safe = underlay.saturating_sub(overhead);
    Some(finding(
        ctx,
        "mtu-budget",
        &star.path.key("mtu"),
        format!(
            "star `{}` tunnel MTU {inner_text} plus {overhead} bytes of WireGuard over UDP/{family} is {}, more than the underlay MTU {underlay} of {what}: full-size tunnel packets fragment or are dropped; set mtu = {safe} or lower",
            star.name,
            inner + overhead
        ),
    ))
}

/// Underlay MTU of one TAP link: its `via` link and the two hosts'
/// interfaces on it.
fn tap_underlay(ctx: &Ctx<'_>, link: &TapLinkM) -> (u32, String) {
    let t = ctx.topology();
    let via = t.links.get(link.via.index());
    let mut best = via.map_or((1500, "the underlay".to_string()), |l| {
        (l.mtu, format!("link `{}`", l.name))
    });
    for host in [link.client, link.server] {
        let Some(h) = t.hosts.get(host.index()) else {
            continue;
        };
        for iface in h
            .interfaces
            .iter()
            .filter(|i| i.segment == Segment::Link(link.via))
        {
            if iface.mtu < best.0 {
                best = (iface.mtu, format!("`{}` {}", h.name, iface.name));
            }
        }
    }
    best
}

fn bond_budget(ctx: &Ctx<'_>, bond: &BondM) -> Option<Diagnostic> {
    let mut problems = Vec::new();
    let mut safe: Option<u32> = None;
    for link in &bond.links {
        let (transport, transport_name) = match link.listen.proto {
            Proto::Udp => (UDP_HEADER, "UDP"),
            Proto::Tcp => (TCP_HEADER + OPENVPN_TCP_LENGTH, "TCP"),
        };
        let overhead = ETHERNET_HEADER + OPENVPN_DATA + transport + IPV4_HEADER;
        let (underlay, what) = tap_underlay(ctx, link);
        let fits = underlay.saturating_sub(overhead);
        safe = Some(safe.map_or(fits, |s| s.min(fits)));
        if bond.mtu + overhead > underlay {
            problems.push(format!(
                "on TAP link `{}` it is {} ({ETHERNET_HEADER} Ethernet + {} OpenVPN/{transport_name}/IPv4), more than the MTU {underlay} of {what}",
                link.name,
                bond.mtu + overhead,
                overhead - ETHERNET_HEADER
            ));
        }
    }
    if problems.is_empty() {
        return None;
    }
    let safe = safe.unwrap_or(0);
    Some(finding(
        ctx,
        "mtu-budget",
        &bond.path.key("mtu"),
        format!(
            "bond `{}` MTU {} does not fit its OpenVPN TAP slaves: {}; full-size frames get fragmented by IP or OpenVPN (or dropped); set mtu = {safe} or lower on the bond",
            bond.name,
            bond.mtu,
            problems.join("; ")
        ),
    ))
}

/// Largest MTU of the subnets at a gateway's site (the biggest packet that
/// can enter the tunnel there), with where it comes from.
fn site_inner_mtu(ctx: &Ctx<'_>, gateway: HostId) -> (u32, String) {
    let t = ctx.topology();
    let Some(host) = t.hosts.get(gateway.index()) else {
        return (1500, "the default MTU".into());
    };
    let from_subnets = t
        .sites
        .get(host.site.index())
        .into_iter()
        .flat_map(|s| s.subnets.iter())
        .filter_map(|s| t.subnets.get(s.index()))
        .map(|s| (s.mtu, format!("subnet `{}`", s.name)))
        .max_by_key(|(m, _)| *m);
    let from_interfaces = host
        .interfaces
        .iter()
        .map(|i| (i.mtu, format!("`{}` {}", host.name, i.name)))
        .max_by_key(|(m, _)| *m);
    from_subnets
        .or(from_interfaces)
        .unwrap_or((1500, "the default MTU".into()))
}

fn ipsec_budget(ctx: &Ctx<'_>, ipsec: &IpsecM) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let overhead = IPV4_HEADER + ESP_TUNNEL + if ipsec.nat_traversal { NAT_T } else { 0 };
    let esp = if ipsec.nat_traversal {
        "ESP tunnel mode in UDP (NAT-T)"
    } else {
        "ESP tunnel mode"
    };
    let mut out = Vec::new();
    for tunnel in &ipsec.tunnels {
        let (inner, inner_what) = [
            site_inner_mtu(ctx, tunnel.left),
            site_inner_mtu(ctx, tunnel.right),
        ]
        .into_iter()
        .max_by_key(|(m, _)| *m)
        .unwrap_or((1500, "the default MTU".into()));
        let (underlay, under_what) = [tunnel.left, tunnel.right]
            .into_iter()
            .filter_map(|h| underlay_mtu(t, h))
            .min_by_key(|(m, _)| *m)
            .unwrap_or((1500, "the internet path".into()));
        if inner + overhead <= underlay {
            continue;
        }
        let safe = underlay.saturating_sub(overhead);
        let field = match ipsec.gateways.iter().position(|g| *g == tunnel.right) {
            Some(i) => ipsec.path.key("gateways").index(i),
            None if ipsec.layout == IpsecLayout::HubAndSpoke => ipsec.path.key("hub"),
            None => ipsec.path.key("gateways"),
        };
        out.push(finding(
            ctx,
            "mtu-budget",
            &field,
            format!(
                "IPsec tunnel `{}` (`{}` to `{}`) carries packets up to {inner} bytes ({inner_what}), but {esp} adds up to {overhead} bytes over an underlay MTU of {underlay} ({under_what}): packets above {safe} bytes fragment after encryption, or vanish when DF is set and ICMP is filtered; TCP MSS clamping or a lower MTU is needed: clamp the MSS to {} on both gateways (iptables -t mangle -A FORWARD -p tcp --tcp-flags SYN,RST SYN -j TCPMSS --set-mss {}) or set the MTU of the subnets behind them to {safe}",
                tunnel.name,
                host_name(t, tunnel.left),
                host_name(t, tunnel.right),
                mss(safe),
                mss(safe),
            ),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_util::testing::{fields, run};

    #[test]
    fn overhead_constants_match_the_documented_numbers() {
        assert_eq!(IPV4_HEADER + UDP_HEADER + WIREGUARD_DATA, 60);
        assert_eq!(IPV6_HEADER + UDP_HEADER + WIREGUARD_DATA, 80);
        assert_eq!(IPV4_HEADER + ESP_TUNNEL, 73);
        assert_eq!(OPENVPN_DATA, 41);
    }

    fn star(mtu_line: &str, member_mtu: u32) -> String {
        format!(
            r#"[scenario]
name = "t"
seed = 1
[links.internet]
kind = "wan"
[sites.s]
kind = "datacenter"
[hosts.hub]
site = "s"
interfaces = [{{ name = "eth0", link = "internet", address = "192.0.2.1" }}]
[hosts.w]
site = "s"
interfaces = [{{ name = "eth0", link = "internet", address = "192.0.2.2", mtu = {member_mtu} }}]
[wireguard.cluster]
cidr = "10.5.4.0/24"
hub = "hub"
workers = ["w"]
{mtu_line}
"#
        )
    }

    #[test]
    fn wireguard_default_fits_1500() {
        assert!(run(check, &star("", 1500)).is_empty());
        assert!(run(check, &star("mtu = 1440", 1500)).is_empty());
    }

    #[test]
    fn wireguard_over_a_small_path() {
        let findings = run(check, &star("", 1400));
        assert_eq!(fields(&findings, "mtu-budget"), ["wireguard.cluster.mtu"]);
        let m = &findings[0].message;
        assert!(m.contains("1420 (the default) plus 60 bytes"), "{m}");
        assert!(
            m.contains("underlay MTU 1400 of `w` eth0 on link `internet`"),
            "{m}"
        );
        assert!(m.contains("set mtu = 1340"), "{m}");
        assert_eq!(findings[0].severity, vpnsim_topology::Severity::Warning);
        let findings = run(check, &star("mtu = 1500", 1500));
        assert!(
            findings[0].message.contains("set mtu = 1440"),
            "{}",
            findings[0].message
        );
    }

    fn bond(mtu: u32, via_mtu: u32) -> String {
        format!(
            r#"[scenario]
name = "t"
seed = 1
[links.isp-a]
kind = "wan"
mtu = {via_mtu}
[links.isp-b]
kind = "wan"
[sites.r]
kind = "roaming"
[hosts.a]
site = "r"
interfaces = [{{ name = "eth0", link = "isp-a", address = "198.51.100.1" }}, {{ name = "wwan0", link = "isp-b", address = "203.0.113.1", mtu = 1400 }}]
[hosts.b]
site = "r"
interfaces = [{{ name = "eth0", link = "isp-a", address = "198.51.100.2" }}, {{ name = "wwan0", link = "isp-b", address = "203.0.113.2" }}]
[bond.bond0]
hosts = ["a", "b"]
mode = "balance-alb"
mtu = {mtu}
addresses = {{ a = "10.0.0.1/24", b = "10.0.0.2/24" }}
links = [{{ name = "ovn0", client = "a", server = "b", via = "isp-a" }}, {{ name = "ovn1", client = "b", server = "a", via = "isp-b", listen = "tcp/443" }}]
"#
        )
    }

    #[test]
    fn bond_of_reference_004_does_not_fit() {
        let findings = run(check, &bond(1500, 1500));
        assert_eq!(fields(&findings, "mtu-budget"), ["bond.bond0.mtu"]);
        let m = &findings[0].message;
        // ovn0: 1500 + 14 + 41 + 8 + 20 = 1583 > 1500; ovn1 over TCP and a
        // 1400 interface: 1500 + 14 + 41 + 22 + 20 = 1597 > 1400.
        assert!(m.contains("on TAP link `ovn0` it is 1583"), "{m}");
        assert!(m.contains("on TAP link `ovn1` it is 1597"), "{m}");
        assert!(m.contains("MTU 1400 of `a` wwan0"), "{m}");
        assert!(m.contains("set mtu = 1303"), "{m}");
    }

    /// The project's scenario of reference 004 keeps mtu 1500 on the bond.
    #[test]
    fn dual_path_bond_scenario_file() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scenarios/dual-path-bond.toml");
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let findings = run(check, &text);
        assert_eq!(fields(&findings, "mtu-budget"), ["bond.bond0.mtu"]);
        assert!(
            findings[0].message.contains("set mtu = 1417"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn bond_that_fits() {
        // 1300 + 97 = 1397 over TCP on 1400; 1300 + 83 over UDP on 9000.
        assert!(run(check, &bond(1300, 9000)).is_empty());
    }

    fn ipsec(nat_t: bool, subnet_mtu: u32) -> String {
        ipsec_with(nat_t, subnet_mtu, subnet_mtu)
    }

    fn ipsec_with(nat_t: bool, subnet_mtu: u32, gateway_mtu: u32) -> String {
        format!(
            r#"[scenario]
name = "t"
seed = 1
[links.internet]
kind = "wan"
[sites.hub]
kind = "cloud-vpc"
cidrs = ["10.11.0.0/16"]
uplink = "internet"
[sites.spoke]
kind = "cloud-vpc"
cidrs = ["10.12.0.0/16"]
uplink = "internet"
[subnets.hub-vpn]
site = "hub"
cidr = "10.11.4.0/24"
mtu = {subnet_mtu}
[subnets.spoke-vpn]
site = "spoke"
cidr = "10.12.4.0/24"
mtu = {subnet_mtu}
[hosts.vpn-hub]
site = "hub"
public_address = "192.0.2.1"
interfaces = [{{ name = "eth0", subnet = "hub-vpn", address = "10.11.4.5", mtu = {gateway_mtu} }}]
[hosts.vpn-spoke]
site = "spoke"
public_address = "192.0.2.2"
interfaces = [{{ name = "eth0", subnet = "spoke-vpn", address = "10.12.4.5", mtu = {gateway_mtu} }}]
[ipsec.vpc]
daemon = "libreswan"
auth = "psk"
layout = "hub-and-spoke"
hub = "vpn-hub"
gateways = ["vpn-spoke"]
nat_traversal = {nat_t}
"#
        )
    }

    #[test]
    fn ipsec_full_size_packets_need_clamping() {
        let findings = run(check, &ipsec(true, 1500));
        assert_eq!(fields(&findings, "mtu-budget"), ["ipsec.vpc.gateways[0]"]);
        let m = &findings[0].message;
        assert!(m.contains("IPsec tunnel `hub-to-spoke`"), "{m}");
        assert!(m.contains("adds up to 81 bytes"), "{m}");
        assert!(m.contains("TCP MSS clamping or a lower MTU"), "{m}");
        assert!(m.contains("--set-mss 1379"), "{m}");
        let findings = run(check, &ipsec(false, 1500));
        assert!(
            findings[0].message.contains("--set-mss 1387"),
            "{}",
            findings[0].message
        );
    }

    #[test]
    fn ipsec_with_small_inner_mtu_fits() {
        // 1400 + 81 fits the gateways' 1500 ...
        assert!(run(check, &ipsec_with(true, 1400, 1500)).is_empty());
        // ... but not when the gateway itself sits on the 1400 segment.
        assert_eq!(run(check, &ipsec(true, 1400)).len(), 1);
        // Jumbo frames inside the VPC still leave through a 1500 uplink.
        let findings = run(check, &ipsec(true, 9001));
        assert!(
            findings[0].message.contains("up to 9001 bytes"),
            "{}",
            findings[0].message
        );
        assert!(
            findings[0]
                .message
                .contains("underlay MTU of 1500 (uplink `internet`"),
            "{}",
            findings[0].message
        );
    }
}

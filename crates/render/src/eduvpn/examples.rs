//! The eduVPN files of the reference documents as typed values, for tests,
//! documentation and as templates.
//!
//! - 001 (eduVPN "Multi Node" how-to): the controller's `config.php` after
//!   the "Load Balancing" step, node A's and node B's `config.php` and
//!   `firewall.php`, the API's `<RequireAny>` allow-list, and
//!   `/etc/sysconfig/vpn-daemon`. Settings the document does not show are
//!   those of `scenarios/eduvpn-multinode.toml` (ens160, udp+tcp 1194, Quad9
//!   resolvers).
//! - 000 (eduVPN "Multi Node" draft): the `config.yaml` of "More Locations"
//!   (profiles `europe` and `asia`) and of "More Servers" (`multiNode`).
//!   The values are the document's, including its managementIp 10.10.10.x
//!   (`scenarios/eduvpn-locations.toml` uses the PeerVPN mesh addresses
//!   instead).
//!
//! The API secrets are eduVPN's own placeholder strings, not secrets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use super::apache::{
    ApacheAccess, IpMatch, Require, RequireAny, Section, SectionKind, SectionPath,
};
use super::config::{
    DnsServer, InputRule, IpFamily, NatRule, NodeConfig, NodeFirewall, PortSpec, Proto, ProtoPort,
    ServerApiConfig, VpnProfile,
};
use super::sysconfig::{DaemonListen, VpnDaemonSysconfig};
use super::{Map, Secret};

const CONTROLLER4: Ipv4Addr = Ipv4Addr::new(145, 0, 6, 71);
const CONTROLLER6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x610, 0x188, 0x418, 0x145, 0, 6, 0x71);
const NODE_A4: Ipv4Addr = Ipv4Addr::new(145, 0, 6, 72);
const NODE_A6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x610, 0x188, 0x418, 0x145, 0, 6, 0x72);
const NODE_B4: Ipv4Addr = Ipv4Addr::new(145, 0, 6, 73);
const NODE_B6: Ipv6Addr = Ipv6Addr::new(0x2001, 0x610, 0x188, 0x418, 0x145, 0, 6, 0x73);

/// The placeholder eduVPN ships in its example configuration.
fn placeholder(consumer: &str) -> Secret {
    Secret::new(format!("XXX-{consumer}/vpn-server-api-XXX"))
}

fn udp_tcp_1194() -> Vec<ProtoPort> {
    vec![
        ProtoPort {
            proto: Proto::Udp,
            port: 1194,
        },
        ProtoPort {
            proto: Proto::Tcp,
            port: 1194,
        },
    ]
}

fn quad9() -> Vec<DnsServer> {
    vec![
        DnsServer::Addr(IpAddr::V4(Ipv4Addr::new(9, 9, 9, 9))),
        DnsServer::Addr(IpAddr::V6(Ipv6Addr::new(0x2620, 0xfe, 0, 0, 0, 0, 0, 0xfe))),
    ]
}

/// 001: a node profile after "Load Balancing".
fn multinode_profile(
    number: u32,
    display: &str,
    range: Ipv4Net,
    range6: Ipv6Net,
    mgmt: Ipv4Addr,
    hide: bool,
) -> VpnProfile {
    VpnProfile {
        profile_number: Some(number),
        display_name: Some(display.into()),
        ext_if: Some("ens160".into()),
        default_gateway: Some(true),
        host_name: Some("nodes.frkovpn.tuxed.net".into()),
        range: Some(range),
        range6: Some(range6),
        dns: Some(quad9()),
        management_ip: Some(IpAddr::V4(mgmt)),
        hide_profile: hide.then_some(true),
        vpn_proto_ports: Some(udp_tcp_1194()),
        ..Default::default()
    }
}

/// 001: `/etc/vpn-server-api/config.php` on the controller after "Load
/// Balancing": `useVpnDaemon`, profiles `node-a` ("Secure Internet") and
/// `node-b` (hidden), both on `nodes.frkovpn.tuxed.net`.
pub fn multinode_controller() -> ServerApiConfig {
    ServerApiConfig {
        header: Vec::new(),
        api_consumers: Some(vec![
            ("vpn-user-portal".into(), placeholder("vpn-user-portal")),
            ("vpn-server-node".into(), placeholder("vpn-server-node")),
        ]),
        use_vpn_daemon: Some(true),
        vpn_profiles: vec![
            (
                "node-a".into(),
                multinode_profile(
                    1,
                    "Secure Internet",
                    Ipv4Net::new_assert(Ipv4Addr::new(10, 1, 0, 0), 25),
                    Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 1, 1, 1, 0, 0, 0, 0), 64),
                    NODE_A4,
                    false,
                ),
            ),
            (
                "node-b".into(),
                multinode_profile(
                    2,
                    "Node B",
                    Ipv4Net::new_assert(Ipv4Addr::new(10, 2, 0, 0), 25),
                    Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 2, 2, 2, 0, 0, 0, 0), 64),
                    NODE_B4,
                    true,
                ),
            ),
        ],
        extra: Map::new(),
    }
}

/// 001: `/etc/vpn-server-node/config.php` on node `node-a` or `node-b`.
pub fn multinode_node(node: &str) -> NodeConfig {
    NodeConfig {
        header: Vec::new(),
        api_user: Some("vpn-server-node".into()),
        api_pass: Some(placeholder("vpn-server-node")),
        api_uri: Some("https://frkovpn.tuxed.net/vpn-server-api/api.php".into()),
        use_vpn_daemon: Some(true),
        profile_list: Some(vec![node.to_string()]),
        manage_firewall: Some(false),
        extra: Map::new(),
    }
}

/// 001: `/etc/vpn-server-node/firewall.php` on `node-a` or `node-b`: ssh,
/// vpn-daemon from the controller only, OpenVPN udp+tcp 1194; NAT for both
/// families.
pub fn multinode_firewall(node: &str) -> NodeFirewall {
    NodeFirewall {
        header: Vec::new(),
        input_rules: Some(vec![
            InputRule {
                proto: vec![Proto::Tcp],
                src_net: None,
                dst_port: Some(vec![PortSpec::Port(22)]),
            },
            InputRule {
                proto: vec![Proto::Tcp],
                src_net: Some(vec![
                    IpNet::V4(Ipv4Net::new_assert(CONTROLLER4, 32)),
                    IpNet::V6(Ipv6Net::new_assert(CONTROLLER6, 128)),
                ]),
                dst_port: Some(vec![PortSpec::Port(41194)]),
            },
            InputRule {
                proto: vec![Proto::Udp, Proto::Tcp],
                src_net: None,
                dst_port: Some(vec![PortSpec::Port(1194)]),
            },
        ]),
        nat_rules: Some(vec![(
            node.to_string(),
            NatRule {
                enable_nat: vec![IpFamily::V4, IpFamily::V6],
            },
        )]),
        extra: Map::new(),
    }
}

/// 001: the `<RequireAny>` of `/etc/httpd/conf.d/vpn-server-api.conf`,
/// inside the API's `<Directory>`.
pub fn multinode_api_access() -> ApacheAccess {
    let ip = |a: IpAddr| Require::Ip(IpMatch::Addr(a));
    ApacheAccess {
        header: Vec::new(),
        section: SectionPath::new("/usr/share/vpn-server-api/web")
            .ok()
            .map(|path| Section {
                kind: SectionKind::Directory,
                path,
            }),
        require_any: RequireAny::new(vec![
            Require::Local,
            ip(IpAddr::V4(NODE_A4)),
            ip(IpAddr::V6(NODE_A6)),
            ip(IpAddr::V4(NODE_B4)),
            ip(IpAddr::V6(NODE_B6)),
        ])
        .unwrap_or_else(|_| unreachable!("the rule list is not empty")),
    }
}

/// 001: `/etc/sysconfig/vpn-daemon` on the nodes.
pub fn multinode_vpn_daemon() -> VpnDaemonSysconfig {
    VpnDaemonSysconfig {
        header: Vec::new(),
        enable_tls: true,
        listen: Some(DaemonListen {
            addr: None,
            port: 41194,
        }),
    }
}

fn google_dns() -> Vec<DnsServer> {
    vec![
        DnsServer::Addr(IpAddr::V4(Ipv4Addr::new(8, 8, 8, 8))),
        DnsServer::Addr(IpAddr::V4(Ipv4Addr::new(8, 8, 4, 4))),
        DnsServer::Addr(IpAddr::V6(Ipv6Addr::new(
            0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8888,
        ))),
        DnsServer::Addr(IpAddr::V6(Ipv6Addr::new(
            0x2001, 0x4860, 0x4860, 0, 0, 0, 0, 0x8844,
        ))),
    ]
}

fn location(
    number: u32,
    display: &str,
    host: &str,
    range: Ipv4Net,
    range6: Ipv6Net,
    mgmt: Ipv4Addr,
) -> VpnProfile {
    VpnProfile {
        profile_number: Some(number),
        display_name: Some(display.into()),
        ext_if: Some("eth0".into()),
        use_nat: Some(true),
        default_gateway: Some(true),
        host_name: Some(host.into()),
        range: Some(range),
        range6: Some(range6),
        dns: Some(google_dns()),
        use_proxy: Some(false),
        listen: Some(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        management_ip: Some(IpAddr::V4(mgmt)),
        ..Default::default()
    }
}

/// 000 "More Locations": `vpnProfiles` `europe` and `asia` of
/// `/etc/vpn-server-api/vpn.example/config.yaml`.
pub fn locations_config() -> ServerApiConfig {
    ServerApiConfig {
        vpn_profiles: vec![
            (
                "europe".into(),
                location(
                    1,
                    "Internet Access (Europe)",
                    "europe.vpn.example",
                    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 24),
                    Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x4242, 0x4242, 0, 0, 0, 0, 0), 48),
                    Ipv4Addr::new(10, 10, 10, 2),
                ),
            ),
            (
                "asia".into(),
                location(
                    2,
                    "Internet Access (Asia)",
                    "asia.vpn.example",
                    Ipv4Net::new_assert(Ipv4Addr::new(10, 20, 30, 0), 24),
                    Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x4445, 0x4647, 0, 0, 0, 0, 0), 48),
                    Ipv4Addr::new(10, 10, 10, 3),
                ),
            ),
        ],
        ..Default::default()
    }
}

/// 000 "More Servers": one `internet` profile whose `multiNode` entries
/// `one` and `two` give each node its range, management address and
/// listen address.
pub fn more_servers_config() -> ServerApiConfig {
    let node = |range: Ipv4Net, range6: Ipv6Net, mgmt: Ipv4Addr, listen: Ipv4Addr| VpnProfile {
        range: Some(range),
        range6: Some(range6),
        management_ip: Some(IpAddr::V4(mgmt)),
        use_proxy: Some(false),
        listen: Some(IpAddr::V4(listen)),
        ..Default::default()
    };
    let internet = VpnProfile {
        profile_number: Some(1),
        display_name: Some("Internet Access".into()),
        ext_if: Some("eth0".into()),
        use_nat: Some(true),
        default_gateway: Some(true),
        host_name: Some("vpn.example".into()),
        dns: Some(google_dns()),
        multi_node: Some(vec![
            (
                "one".into(),
                node(
                    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 0, 0), 24),
                    Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x4242, 0x4242, 0, 0, 0, 0, 0), 48),
                    Ipv4Addr::new(10, 10, 10, 2),
                    Ipv4Addr::new(192, 0, 2, 55),
                ),
            ),
            (
                "two".into(),
                node(
                    Ipv4Net::new_assert(Ipv4Addr::new(10, 0, 1, 0), 24),
                    Ipv6Net::new_assert(Ipv6Addr::new(0xfd00, 0x4242, 0x4243, 0, 0, 0, 0, 0), 48),
                    Ipv4Addr::new(10, 10, 10, 3),
                    Ipv4Addr::new(192, 0, 2, 66),
                ),
            ),
        ]),
        ..Default::default()
    };
    ServerApiConfig {
        vpn_profiles: vec![("internet".into(), internet)],
        ..Default::default()
    }
}

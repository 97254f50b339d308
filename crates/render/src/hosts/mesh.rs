//! Generator for PeerVPN meshes (reference 000: the eduVPN management
//! mesh, 10.42.42.0/24 on udp/7000 with one shared PSK), through
//! [`crate::peervpn`].
//!
//! Per mesh `M` and member: `etc/peervpn/<M>.conf` (0600, demo-key marker:
//! it holds the mesh's `psk`, key label `peervpn-psk/<M>`) with
//! `networkname`, `psk`, `interface` (the TAP device), `ifconfig4` (or
//! `ifconfig6` for an IPv6 mesh: the member's declared or planned mesh
//! address with the mesh's prefix length), `port` and, when the member
//! lists `init_peers`, `initpeers` with every initial peer as
//! `<host> <port>`: the peer's `dns_name` when it has one (as the
//! reference's `initpeers vpn.example 7000`), else its public address,
//! else its first interface address.

use std::net::IpAddr;

use ipnet::{Ipv4Net, Ipv6Net};
use vpnsim_keys::Label;
use vpnsim_plan::Attachment;
use vpnsim_topology::model::{HostId, MeshId, MeshM, Segment};

use super::{Ctx, Out, RenderError};
use crate::format::Format;
use crate::peervpn::{Comment, Host, InitPeer, InitPeers, PeerVpnConf, Psk, Text, Word};
use crate::tree::MODE_SECRET;
use crate::wgquick::Hostname;

const PRODUCER: &str = "peervpn";

pub(super) fn render(ctx: &Ctx, out: &mut Out) {
    for (i, mesh) in ctx.topology().meshes.iter().enumerate() {
        render_mesh(ctx, out, MeshId(i as u32), mesh);
    }
}

fn missing(out: &mut Out, what: &str, message: String) {
    out.error(RenderError::Missing {
        what: what.to_owned(),
        message,
    });
}

/// How other members reach `host`: DNS name, public address, or the first
/// interface's address.
fn reachable(ctx: &Ctx, host: HostId) -> Option<Host> {
    let h = ctx.host(host);
    if let Some(name) = h.dns_name.as_deref().and_then(|n| Hostname::new(n).ok()) {
        return Some(Host::Name(name));
    }
    if let Some(a) = h.public_address {
        return Some(Host::Ip(IpAddr::V4(a)));
    }
    if let Some(a) = h.public_address6 {
        return Some(Host::Ip(IpAddr::V6(a)));
    }
    let first = h.interfaces.first()?;
    first
        .address
        .or_else(|| {
            let attachment = match first.segment {
                Segment::Subnet(s) => Attachment::Subnet(s),
                Segment::Link(l) => Attachment::Link(l),
            };
            ctx.address_on(host, attachment)
        })
        .map(Host::Ip)
}

fn render_mesh(ctx: &Ctx, out: &mut Out, id: MeshId, mesh: &MeshM) {
    let what = format!("mesh.{}", mesh.name);
    let Some(label) = out.label(&what, Label::peervpn_psk(&mesh.name)) else {
        return;
    };
    let Some(secret) = out.key(&what, &label, ctx.keys.shared_secret(&label)) else {
        return;
    };
    let psk = match Psk::new(secret.as_str()) {
        Ok(p) => p,
        Err(e) => return missing(out, &what, e.to_string()),
    };
    let networkname = match Text::new(mesh.network_name.as_str()) {
        Ok(t) => t,
        Err(e) => return missing(out, &what, e.to_string()),
    };
    let interface = match Word::new(mesh.interface.as_str()) {
        Ok(w) => w,
        Err(e) => return missing(out, &what, e.to_string()),
    };
    let marker = ctx
        .key_marker("#")
        .map(|line| Comment::from_line_lossy(line.strip_prefix('#').unwrap_or(&line)));
    for member in &mesh.members {
        let name = &ctx.host(member.host).name;
        let member_what = format!("{what}: {name}");
        let Some(address) = member
            .address
            .or_else(|| ctx.address_on(member.host, Attachment::Mesh(id)))
        else {
            missing(out, &member_what, "no mesh address planned".to_owned());
            continue;
        };
        let prefix = mesh.cidr.prefix_len();
        let (ifconfig4, ifconfig6) = match address {
            IpAddr::V4(a) => (Ipv4Net::new(a, prefix).ok(), None),
            IpAddr::V6(a) => (None, Ipv6Net::new(a, prefix).ok()),
        };
        if ifconfig4.is_none() && ifconfig6.is_none() {
            missing(
                out,
                &member_what,
                format!("address {address} does not fit the mesh prefix /{prefix}"),
            );
            continue;
        }
        let mut peers = Vec::new();
        for &peer in &member.init_peers {
            match reachable(ctx, peer) {
                Some(host) => peers.push(InitPeer {
                    host,
                    port: mesh.port,
                }),
                None => missing(
                    out,
                    &member_what,
                    format!(
                        "initial peer {} has no DNS name or address to dial",
                        ctx.host(peer).name
                    ),
                ),
            }
        }
        let initpeers = match InitPeers::new(peers) {
            Ok(p) => p,
            Err(e) => {
                missing(out, &member_what, e.to_string());
                continue;
            }
        };
        let mut header: Vec<Comment> = marker.iter().cloned().collect();
        header.extend(
            Comment::new(format!(
                "vpnsim: scenario {}, PeerVPN mesh {} ({}): {name}",
                ctx.topology().name,
                mesh.name,
                mesh.cidr
            ))
            .ok(),
        );
        let conf = PeerVpnConf {
            header,
            networkname: Some(networkname.clone()),
            psk: Some(psk.clone()),
            interface: Some(interface.clone()),
            ifconfig4,
            ifconfig6,
            port: Some(mesh.port),
            initpeers,
            ..PeerVpnConf::default()
        };
        out.file(
            name,
            &format!("etc/peervpn/{}.conf", mesh.name),
            MODE_SECRET,
            PRODUCER,
            conf.emit(),
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::Format;
    use crate::hosts::{Options, generate};
    use crate::peervpn::PeerVpnConf;
    use crate::tree::MODE_SECRET;
    use vpnsim_keys::KeySource;

    /// The shipped eduvpn-locations scenario (reference 000): every member's
    /// file reads back as what was emitted, with the reference's values.
    #[test]
    fn eduvpn_locations_mesh_files_read_back() {
        let text = include_str!("../../../../scenarios/eduvpn-locations.toml");
        let scenario = vpnsim_topology::load_str("eduvpn-locations.toml", text)
            .unwrap_or_else(|e| panic!("{e}"));
        let planned = vpnsim_plan::plan(&scenario);
        let keys = KeySource::demo(scenario.topology.seed);
        let set = generate(&scenario, &planned.plan, &keys, &Options::default())
            .unwrap_or_else(|e| panic!("{e:?}"));
        let mut psks = Vec::new();
        for (host, address, initpeers) in [
            ("controller", "10.42.42.1/24", ""),
            ("europe", "10.42.42.2/24", "vpn.example 7000"),
            ("asia", "10.42.42.3/24", "vpn.example 7000"),
        ] {
            let file = set
                .get(host, "etc/peervpn/peervpn.conf")
                .unwrap_or_else(|| panic!("{host}: no vpn.conf"));
            assert_eq!(file.mode, MODE_SECRET);
            assert!(file.contents.contains(vpnsim_keys::DEMO_MARKER));
            let conf = PeerVpnConf::parse(&file.contents).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(conf.emit(), file.contents);
            assert_eq!(conf.network_name(), "VPN");
            assert_eq!(conf.port, Some(7000));
            assert_eq!(
                conf.ifconfig4.map(|n| n.to_string()).as_deref(),
                Some(address)
            );
            assert_eq!(conf.initpeers.to_string(), initpeers);
            assert_eq!(conf.interface.as_ref().map(|w| w.as_str()), Some("tap0"));
            psks.push(conf.psk.map(|p| p.expose().to_owned()).unwrap_or_default());
        }
        assert!(!psks[0].is_empty());
        assert!(psks.iter().all(|p| *p == psks[0]), "one PSK for the mesh");
    }
}

//! IPsec site-to-site gateways (reference 003), the forwarding sysctls of
//! every routing host, and the cloud route tables.
//!
//! For every `[ipsec.*]` deployment and every tunnel (one PSK per tunnel,
//! `Label::ipsec_psk(tunnel)`, the same on both ends), each gateway gets:
//! - Libreswan (OpenSwan's layout, as 003 uses it): `etc/ipsec.conf` with
//!   `include /etc/ipsec.d/*.conf`, `etc/ipsec.secrets` including
//!   `/etc/ipsec.d/*.secrets`, `etc/ipsec.d/<conn>.conf` and
//!   `etc/ipsec.d/<conn>.secrets` (0600). The conn is named as seen from
//!   that gateway (`vpc1-to-vpc2` on the hub, `vpc2-to-vpc1` on the spoke).
//!   Behind a cloud 1:1 NAT (an elastic IP) `left` is the gateway's private
//!   address, `leftid` its public one; `right` and `rightid` are the peer's
//!   public address, so both ends agree on the IDs the PSK is filed under.
//!   003's `left=%defaultroute` works too, but names no address the
//!   simulator could check.
//! - strongSwan: `etc/swanctl/conf.d/<deployment>.conf` (0600: it holds the
//!   `secrets` section) with the same tunnels, IDs, selectors and PSKs.
//!
//! Both are generated for every deployment so an operator can pick either
//! daemon (Debian's libreswan and strongSwan's charon packages conflict, so
//! a host runs one). The deployment's `daemon` names the primary: its
//! files are what the simulator and the labs load; the other set says in
//! its header that it is the alternative. Explicit proposals
//! (aes256/sha2-256/modp2048, with the group on ESP when `pfs`) keep a
//! Libreswan end and a strongSwan end compatible.
//!
//! `etc/sysctl.d/90-vpnsim.conf` goes to every host with `forwarding = true`
//! (not only IPsec gateways): `net.ipv4.ip_forward = 1`, IPv6 forwarding
//! when the host has an IPv6 address, and on IPsec gateways 003's
//! `accept_redirects = 0` / `send_redirects = 0`.
//!
//! Cloud sites whose route table sends remote CIDRs to a VPN instance get
//! their entries in the pseudo-host `_cloud`: `routes.json` and `routes.tf`
//! (Terraform `aws_route`, IDs that exist only in the cloud as variables).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Display;
use std::net::IpAddr;

use ipnet::IpNet;
use vpnsim_keys::Label;
use vpnsim_plan::Attachment;
use vpnsim_topology::format::{IpsecAuth, IpsecAuto, IpsecDaemon};
use vpnsim_topology::model::{HostId, IpsecM, Segment, TunnelM};
use vpnsim_topology::units::Duration;

use super::{Ctx, Out, RenderError};
use crate::cloud::{
    self, AwsRoute, Block, Cidr, CloudRoute, HclString, IdRef, Ident, RouteTables, TerraformFile,
};
use crate::format::Format;
use crate::libreswan::{
    AuthBy, Auto, ConfigSetup, Conn, ConnFile, ConnName, ConnType, DpdAction, Endpoint,
    Ikev1Policy, Ikev2, IpsecConf, Param, Protostack, Psk, PskEntry, SecretEntry, SecretId,
    Secrets, Text, Token,
};
use crate::swanctl::{
    self, AuthRound, Child, Connection, IkeSecret, StartAction, SwanctlConf, Word,
};
use crate::sysctl::{Entry, SysctlConf};
use crate::tree::{MODE_CONFIG, MODE_SECRET};
use crate::wgquick::Comment;

/// The pseudo-host holding the cloud-side files.
pub const CLOUD_HOST: &str = "_cloud";

/// IKE proposal both daemons are given (Libreswan and strongSwan spelling).
const IKE_LIBRESWAN: &str = "aes256-sha2_256-modp2048";
const IKE_STRONGSWAN: &str = "aes256-sha256-modp2048";
const ESP_LIBRESWAN: &str = "aes256-sha2_256";
const ESP_STRONGSWAN_PFS: &str = "aes256-sha256-modp2048";
const ESP_STRONGSWAN: &str = "aes256-sha256";

pub(super) fn render(ctx: &Ctx, out: &mut Out) {
    let mut libreswan_hosts: BTreeMap<HostId, GatewaySetup> = BTreeMap::new();
    for deployment in &ctx.topology().ipsec {
        render_deployment(ctx, out, deployment, &mut libreswan_hosts);
    }
    for (host, setup) in &libreswan_hosts {
        render_ipsec_conf(ctx, out, *host, setup);
    }
    render_sysctl(ctx, out, &libreswan_hosts);
    render_cloud(ctx, out);
}

fn missing(out: &mut Out, what: &str, message: impl Display) {
    out.error(RenderError::Missing {
        what: what.to_string(),
        message: message.to_string(),
    });
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.0.div_ceil(1_000_000_000)).unwrap_or(u32::MAX)
}

/// What a gateway's `ipsec.conf` must allow.
#[derive(Default)]
struct GatewaySetup {
    ikev1: bool,
    /// Deployments (for the header) and whether Libreswan is their primary.
    deployments: BTreeMap<String, bool>,
}

/// A gateway's addresses: the one it owns and the one peers reach.
#[derive(Clone, Copy)]
struct Addrs {
    private: IpAddr,
    public: IpAddr,
}

/// The gateway's address in its site (its first subnet interface, IPv4
/// preferred) and its public (elastic) address, or the private one when it
/// has none.
fn addrs(ctx: &Ctx, host: HostId) -> Option<Addrs> {
    let h = ctx.host(host);
    let mut found: Vec<IpAddr> = Vec::new();
    for iface in &h.interfaces {
        let attachment = match iface.segment {
            Segment::Subnet(s) => Attachment::Subnet(s),
            Segment::Link(l) => Attachment::Link(l),
        };
        if let Some(a) = iface.address.or_else(|| ctx.address_on(host, attachment)) {
            found.push(a);
        }
    }
    let private = found
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| found.first())
        .copied()?;
    let public = h
        .public_address
        .map(IpAddr::V4)
        .or_else(|| {
            if private.is_ipv6() {
                h.public_address6.map(IpAddr::V6)
            } else {
                None
            }
        })
        .unwrap_or(private);
    Some(Addrs { private, public })
}

/// One end of a tunnel as seen from a gateway.
struct End<'a> {
    host: HostId,
    peer: HostId,
    conn: String,
    local_ts: &'a [IpNet],
    remote_ts: &'a [IpNet],
}

fn ends<'a>(ctx: &Ctx, tunnel: &'a TunnelM) -> [End<'a>; 2] {
    let t = ctx.topology();
    let site = |h: HostId| t.site(t.host(h).site).name.as_str();
    let (l, r) = (site(tunnel.left), site(tunnel.right));
    let reverse = if tunnel.name == format!("{l}-to-{r}") {
        format!("{r}-to-{l}")
    } else {
        format!("{}-reverse", tunnel.name)
    };
    [
        End {
            host: tunnel.left,
            peer: tunnel.right,
            conn: tunnel.name.clone(),
            local_ts: &tunnel.left_subnets,
            remote_ts: &tunnel.right_subnets,
        },
        End {
            host: tunnel.right,
            peer: tunnel.left,
            conn: reverse,
            local_ts: &tunnel.right_subnets,
            remote_ts: &tunnel.left_subnets,
        },
    ]
}

fn header(ctx: &Ctx, lines: &[String], secret: bool) -> Vec<Comment> {
    let mut out: Vec<Comment> = lines.iter().map(|l| Comment::from_line_lossy(l)).collect();
    if secret && let Some(marker) = ctx.key_marker("#") {
        out.push(Comment::from_line_lossy(
            marker.strip_prefix('#').unwrap_or(&marker),
        ));
    }
    out
}

fn render_deployment(
    ctx: &Ctx,
    out: &mut Out,
    d: &IpsecM,
    libreswan_hosts: &mut BTreeMap<HostId, GatewaySetup>,
) {
    let what = format!("ipsec.{}", d.name);
    if d.auth != IpsecAuth::Psk {
        missing(
            out,
            &what,
            "auth = \"cert\" is not rendered yet (use auth = \"psk\")",
        );
        return;
    }
    let primary_libreswan = d.daemon == IpsecDaemon::Libreswan;
    let scenario = &ctx.topology().name;
    let mut swan: BTreeMap<HostId, SwanctlConf> = BTreeMap::new();
    for tunnel in &d.tunnels {
        let what = format!("ipsec.{} tunnel {}", d.name, tunnel.name);
        let Some(label) = out.label(&what, Label::ipsec_psk(&tunnel.name)) else {
            continue;
        };
        let Some(psk) = out.key(&what, &label, ctx.keys.shared_secret(&label)) else {
            continue;
        };
        for end in ends(ctx, tunnel) {
            let me = ctx.host(end.host);
            let peer = ctx.host(end.peer);
            let (Some(mine), Some(theirs)) = (addrs(ctx, end.host), addrs(ctx, end.peer)) else {
                missing(
                    out,
                    &what,
                    format!(
                        "no address planned for {} or {} in their sites",
                        me.name, peer.name
                    ),
                );
                continue;
            };
            let setup = libreswan_hosts.entry(end.host).or_default();
            setup.ikev1 |= d.ike_version == 1;
            setup.deployments.insert(d.name.clone(), primary_libreswan);
            let role = if primary_libreswan {
                format!("primary for deployment {} (daemon = libreswan)", d.name)
            } else {
                format!(
                    "alternative to the strongSwan files of deployment {} (daemon = strongswan)",
                    d.name
                )
            };
            let intro = vec![
                format!(
                    "Generated by vpnsim from scenario {scenario}: IPsec tunnel {} on {}",
                    end.conn, me.name
                ),
                format!("Libreswan files, {role}"),
            ];
            match libreswan_files(d, &end, mine, theirs, psk.as_str()) {
                Ok((conn, secrets)) => {
                    let conf = ConnFile {
                        header: header(ctx, &intro, false),
                        conns: vec![conn],
                    };
                    out.file(
                        &me.name,
                        &format!("etc/ipsec.d/{}.conf", end.conn),
                        MODE_CONFIG,
                        "libreswan",
                        conf.emit(),
                    );
                    let secrets = Secrets {
                        header: header(ctx, &intro, true),
                        entries: vec![secrets],
                    };
                    out.file(
                        &me.name,
                        &format!("etc/ipsec.d/{}.secrets", end.conn),
                        MODE_SECRET,
                        "libreswan",
                        secrets.emit(),
                    );
                }
                Err(e) => missing(out, &what, e),
            }
            match swanctl_parts(d, &end, mine, theirs, psk.as_str()) {
                Ok((connection, secret)) => {
                    let conf = swan.entry(end.host).or_default();
                    conf.connections.push(connection);
                    conf.secrets.push(secret);
                }
                Err(e) => missing(out, &what, e),
            }
        }
    }
    for (host, mut conf) in swan {
        let name = &ctx.host(host).name;
        let role = if primary_libreswan {
            format!(
                "alternative to the Libreswan files (etc/ipsec.d) of deployment {} (daemon = libreswan)",
                d.name
            )
        } else {
            format!("primary for deployment {} (daemon = strongswan)", d.name)
        };
        conf.header = header(
            ctx,
            &[
                format!(
                    "Generated by vpnsim from scenario {scenario}: IPsec deployment {} on {name}",
                    d.name
                ),
                format!("strongSwan swanctl, {role}"),
                "Load with: swanctl --load-all".to_string(),
            ],
            true,
        );
        out.file(
            name,
            &format!("etc/swanctl/conf.d/{}.conf", d.name),
            MODE_SECRET,
            "swanctl",
            conf.emit(),
        );
    }
}

fn libreswan_files(
    d: &IpsecM,
    end: &End,
    mine: Addrs,
    theirs: Addrs,
    psk: &str,
) -> Result<(Conn, SecretEntry), String> {
    let e = |x: crate::wgquick::InvalidValue| x.to_string();
    let mut conn = Conn::new(ConnName::new(end.conn.as_str()).map_err(e)?);
    conn.conn_type = Some(ConnType::Tunnel);
    conn.authby = Some(AuthBy::Secret);
    conn.left.host = Some(Endpoint::Ip(mine.private));
    conn.left.id = Some(Text::new(mine.public.to_string()).map_err(e)?);
    conn.right.host = Some(Endpoint::Ip(theirs.public));
    conn.right.id = Some(Text::new(theirs.public.to_string()).map_err(e)?);
    for (side, nets) in [
        (&mut conn.left, end.local_ts),
        (&mut conn.right, end.remote_ts),
    ] {
        let nets: Vec<IpNet> = nets.iter().map(IpNet::trunc).collect();
        match nets.as_slice() {
            [] => return Err("a tunnel end has no traffic selector".to_string()),
            [one] => side.subnet = Some(*one),
            many => side.subnets = many.to_vec(),
        }
    }
    conn.pfs = Some(d.pfs);
    conn.auto = Some(match d.auto {
        IpsecAuto::Start => Auto::Start,
        IpsecAuto::Add => Auto::Add,
        IpsecAuto::Ondemand => Auto::Ondemand,
    });
    conn.ikev2 = Some(if d.ike_version == 1 {
        Ikev2::No
    } else {
        Ikev2::Yes
    });
    conn.ike = Some(Token::new(IKE_LIBRESWAN).map_err(e)?);
    conn.esp = Some(Token::new(ESP_LIBRESWAN).map_err(e)?);
    conn.dpddelay = Some(secs(d.dpd_delay));
    conn.dpdtimeout = Some(secs(d.dpd_timeout));
    conn.dpdaction = Some(DpdAction::Restart);
    if !d.nat_traversal {
        conn.extra
            .push(Param::new("encapsulation", "no").map_err(e)?);
    }
    let ids = vec![
        SecretId::new(mine.public.to_string()).map_err(e)?,
        SecretId::new(theirs.public.to_string()).map_err(e)?,
    ];
    let psk = Psk::text(psk).map_err(e)?;
    Ok((conn, SecretEntry::Psk(PskEntry { ids, psk })))
}

fn swanctl_parts(
    d: &IpsecM,
    end: &End,
    mine: Addrs,
    theirs: Addrs,
    psk: &str,
) -> Result<(Connection, IkeSecret), String> {
    let e = |x: crate::wgquick::InvalidValue| x.to_string();
    let name = swanctl::Name::new(end.conn.as_str()).map_err(e)?;
    let word = |s: String| Word::new(s).map_err(e);
    let text = |s: String| swanctl::Text::new(s).map_err(e);
    let mut child = Child::new(name.clone());
    child.local_ts = end.local_ts.iter().map(IpNet::trunc).collect();
    child.remote_ts = end.remote_ts.iter().map(IpNet::trunc).collect();
    child.esp_proposals = vec![word(
        if d.pfs {
            ESP_STRONGSWAN_PFS
        } else {
            ESP_STRONGSWAN
        }
        .to_string(),
    )?];
    child.start_action = Some(match d.auto {
        IpsecAuto::Start => StartAction::Start,
        IpsecAuto::Add => StartAction::None,
        IpsecAuto::Ondemand => StartAction::Trap,
    });
    child.dpd_action = Some(swanctl::DpdAction::Restart);
    let mut c = Connection::new(name);
    c.version = Some(d.ike_version);
    c.local_addrs = vec![word(mine.private.to_string())?];
    c.remote_addrs = vec![word(theirs.public.to_string())?];
    c.proposals = vec![word(IKE_STRONGSWAN.to_string())?];
    c.dpd_delay = Some(secs(d.dpd_delay));
    if d.ike_version == 1 {
        c.extra.push(
            swanctl::Param::new("dpd_timeout", &format!("{}s", secs(d.dpd_timeout))).map_err(e)?,
        );
    }
    if !d.nat_traversal {
        c.extra.push(swanctl::Param::new("encap", "no").map_err(e)?);
    }
    c.local = Some(AuthRound {
        auth: Some(word("psk".to_string())?),
        id: Some(text(mine.public.to_string())?),
    });
    c.remote = Some(AuthRound {
        auth: Some(word("psk".to_string())?),
        id: Some(text(theirs.public.to_string())?),
    });
    c.children = vec![child];
    let secret = IkeSecret {
        name: swanctl::Name::new(format!("ike-{}", end.conn)).map_err(e)?,
        ids: vec![
            (
                swanctl::Name::new("id-1").map_err(e)?,
                text(mine.public.to_string())?,
            ),
            (
                swanctl::Name::new("id-2").map_err(e)?,
                text(theirs.public.to_string())?,
            ),
        ],
        secret: swanctl::Secret::text(psk).map_err(e)?,
    };
    Ok((c, secret))
}

fn render_ipsec_conf(ctx: &Ctx, out: &mut Out, host: HostId, setup: &GatewaySetup) {
    let name = &ctx.host(host).name;
    let what = format!("{name}: etc/ipsec.conf");
    let deployments: Vec<String> = setup
        .deployments
        .iter()
        .map(|(d, primary)| {
            if *primary {
                format!("{d} (primary)")
            } else {
                format!("{d} (alternative to strongSwan)")
            }
        })
        .collect();
    let mut lines = vec![
        format!(
            "Generated by vpnsim from scenario {}: Libreswan on {name}",
            ctx.topology().name
        ),
        format!("IPsec deployments: {}", deployments.join(", ")),
        "OpenSwan's nat_traversal= and oe= are gone: Libreswan always does NAT-T".to_string(),
    ];
    let mut config = ConfigSetup {
        protostack: Some(Protostack::Netkey),
        ..ConfigSetup::default()
    };
    if setup.ikev1 {
        lines.push(
            "IKEv1 conns need ikev1-policy=accept (Libreswan 4 refuses IKEv1 otherwise)"
                .to_string(),
        );
        config.ikev1_policy = Some(Ikev1Policy::Accept);
    }
    let (Ok(version), Ok(include)) = (Token::new("2.0"), Token::new("/etc/ipsec.d/*.conf")) else {
        missing(out, &what, "invalid include path");
        return;
    };
    let conf = IpsecConf {
        header: header(ctx, &lines, false),
        version: Some(version),
        setup: Some(config),
        conns: Vec::new(),
        includes: vec![include],
    };
    out.file(
        name,
        "etc/ipsec.conf",
        MODE_CONFIG,
        "libreswan",
        conf.emit(),
    );
    let Ok(include) = Token::new("/etc/ipsec.d/*.secrets") else {
        missing(out, &what, "invalid include path");
        return;
    };
    let secrets = Secrets {
        header: header(
            ctx,
            &[
                format!(
                    "Generated by vpnsim from scenario {}: Libreswan secrets on {name}",
                    ctx.topology().name
                ),
                "The PSKs are in /etc/ipsec.d/<conn>.secrets (mode 0600); this file holds none"
                    .to_string(),
            ],
            false,
        ),
        entries: vec![SecretEntry::Include(include)],
    };
    out.file(
        name,
        "etc/ipsec.secrets",
        MODE_CONFIG,
        "libreswan",
        secrets.emit(),
    );
}

fn has_ipv6(ctx: &Ctx, host: HostId) -> bool {
    let h = ctx.host(host);
    h.public_address6.is_some()
        || h.interfaces.iter().any(|i| i.address6.is_some())
        || ctx.plan.host_addresses(host).any(|a| a.address.is_ipv6())
}

fn render_sysctl(ctx: &Ctx, out: &mut Out, ipsec_gateways: &BTreeMap<HostId, GatewaySetup>) {
    let t = ctx.topology();
    for host in t.host_ids() {
        let h = ctx.host(host);
        if !h.forwarding {
            continue;
        }
        let what = format!("{}: etc/sysctl.d/90-vpnsim.conf", h.name);
        let entry = |key: &str, value: &str, comment: Option<&str>| -> Result<Entry, String> {
            let mut e = Entry::new(key, value).map_err(|e| e.to_string())?;
            if let Some(c) = comment {
                e.comments = vec![Comment::from_line_lossy(c)];
            }
            Ok(e)
        };
        let mut entries = vec![entry(
            "net.ipv4.ip_forward",
            "1",
            Some("this host routes packets (forwarding = true in the scenario)"),
        )];
        if has_ipv6(ctx, host) {
            entries.push(entry("net.ipv6.conf.all.forwarding", "1", None));
        }
        if ipsec_gateways.contains_key(&host) {
            entries.push(entry(
                "net.ipv4.conf.all.accept_redirects",
                "0",
                Some("an IPsec gateway neither takes nor sends ICMP redirects (reference 003)"),
            ));
            entries.push(entry("net.ipv4.conf.all.send_redirects", "0", None));
        }
        let entries: Result<Vec<Entry>, String> = entries.into_iter().collect();
        match entries {
            Ok(entries) => {
                let conf = SysctlConf {
                    header: header(
                        ctx,
                        &[format!(
                            "Generated by vpnsim from scenario {}: forwarding on {}",
                            t.name, h.name
                        )],
                        false,
                    ),
                    entries,
                };
                out.file(
                    &h.name,
                    "etc/sysctl.d/90-vpnsim.conf",
                    MODE_CONFIG,
                    "sysctl",
                    conf.emit(),
                );
            }
            Err(e) => missing(out, &what, e),
        }
    }
}

fn render_cloud(ctx: &Ctx, out: &mut Out) {
    let t = ctx.topology();
    let what = "cloud route tables";
    let mut routes: Vec<CloudRoute> = Vec::new();
    let mut tf_routes: Vec<(String, Option<String>, Cidr, String)> = Vec::new();
    let mut skipped: BTreeSet<String> = BTreeSet::new();
    for site in &t.sites {
        for (net, host) in &site.routes {
            let region = site.region.map(|r| &t.regions[r.index()]);
            let cidr = match Cidr::new(net.trunc()) {
                Ok(c) => c,
                Err(e) => {
                    missing(out, what, e);
                    continue;
                }
            };
            let target = &ctx.host(*host).name;
            let (Ok(vpc), Ok(table), Ok(instance)) = (
                cloud::Name::new(site.name.as_str()),
                cloud::Name::new("main"),
                cloud::Name::new(target.as_str()),
            ) else {
                missing(
                    out,
                    what,
                    format!(
                        "site {} or host {target}: not a valid cloud name",
                        site.name
                    ),
                );
                continue;
            };
            let region_name = match region
                .map(|r| cloud::Name::new(r.name.as_str()))
                .transpose()
            {
                Ok(r) => r,
                Err(e) => {
                    missing(out, what, e);
                    continue;
                }
            };
            routes.push(CloudRoute {
                vpc,
                region: region_name,
                route_table: table,
                destination: cidr,
                target_instance: instance,
                target_address: addrs(ctx, *host).map(|a| a.private),
            });
            if region.is_some_and(|r| r.provider.as_deref() == Some("aws")) {
                tf_routes.push((
                    site.name.clone(),
                    region.map(|r| r.name.clone()),
                    cidr,
                    target.clone(),
                ));
            } else {
                skipped.insert(site.name.clone());
            }
        }
    }
    if routes.is_empty() {
        return;
    }
    routes.sort_by(|a, b| (&a.vpc, a.destination).cmp(&(&b.vpc, b.destination)));
    let tables = RouteTables { routes };
    if let Err(e) = tables.validate() {
        missing(out, what, e);
        return;
    }
    out.file(
        CLOUD_HOST,
        "routes.json",
        MODE_CONFIG,
        "cloud",
        tables.emit(),
    );

    tf_routes.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
    let mut lines = vec![
        format!(
            "Generated by vpnsim from scenario {}: VPC route-table entries that send remote",
            t.name
        ),
        "CIDRs through the VPN instances (aws_route, one aws provider alias per region)."
            .to_string(),
        "Route table and network interface IDs exist only in the cloud: they are the".to_string(),
        "variables var.<vpc>_route_table_id and var.<instance>_network_interface_id; set"
            .to_string(),
        "them in terraform.tfvars. The VPN instances also need source_dest_check = false."
            .to_string(),
    ];
    if !skipped.is_empty() {
        lines.push(format!(
            "Not AWS (see routes.json): {}",
            skipped.into_iter().collect::<Vec<_>>().join(", ")
        ));
    }
    let mut blocks: Vec<Block> = Vec::new();
    let hs = |s: String| HclString::new(s);
    let mut regions = BTreeSet::new();
    let mut vars: BTreeMap<String, String> = BTreeMap::new();
    for (vpc, region, _, target) in &tf_routes {
        if let Some(r) = region {
            regions.insert(r.clone());
        }
        vars.insert(
            format!("{}_route_table_id", Ident::sanitized(vpc)),
            format!("ID of the main route table of VPC {vpc} (rtb-...)"),
        );
        vars.insert(
            format!("{}_network_interface_id", Ident::sanitized(target)),
            format!("ID of the primary network interface of VPN instance {target} (eni-...)"),
        );
    }
    for r in &regions {
        match hs(r.clone()) {
            Ok(region) => blocks.push(Block::Provider(cloud::Provider {
                alias: Ident::sanitized(r),
                region,
            })),
            Err(e) => missing(out, what, e),
        }
    }
    for (name, description) in vars {
        match hs(description) {
            Ok(d) => blocks.push(Block::Variable(cloud::Variable {
                name: Ident::sanitized(&name),
                description: Some(d),
            })),
            Err(e) => missing(out, what, e),
        }
    }
    for (vpc, region, cidr, target) in tf_routes {
        blocks.push(Block::Route(AwsRoute {
            name: Ident::sanitized(&format!("{vpc}_{cidr}")),
            provider: region.as_deref().map(Ident::sanitized),
            route_table_id: IdRef::Var(Ident::sanitized(&format!(
                "{}_route_table_id",
                Ident::sanitized(&vpc)
            ))),
            destination_cidr_block: cidr,
            network_interface_id: IdRef::Var(Ident::sanitized(&format!(
                "{}_network_interface_id",
                Ident::sanitized(&target)
            ))),
        }));
    }
    let tf = TerraformFile {
        header: header(ctx, &lines, false),
        blocks,
    };
    if let Err(e) = tf.validate() {
        missing(out, what, e);
        return;
    }
    out.file(CLOUD_HOST, "routes.tf", MODE_CONFIG, "cloud", tf.emit());
}

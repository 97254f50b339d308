//! Generator for the bonded TAP pair (reference 004): for every bond and
//! each of its two hosts,
//! - `etc/openvpn/<link>.conf` per TAP link: the `server` host listens
//!   (`tls-server`), the `client` host dials it (`tls-client`, `remote` = the
//!   server's address on the link's underlay `via`); `dev <link>` with
//!   `dev-type tap`, the pinned MAC as `lladdr`, `ping`/`ping-restart` from
//!   the model, `script-security 2` with `route-up`/`route-pre-down` pointing
//!   at the bond scripts, and `route-delay` so that route-up runs when the
//!   link is established (without it, a point-to-point instance runs it as
//!   soon as it opens the TAP device, peer or not). TLS material is inline (CA, certificate, key and a
//!   tls-crypt key per link), so the file is a secret (0600) with the
//!   demo-key marker. A CA per bond (`pki/openvpn-tap/<bond>/ca`) issues a
//!   server certificate to the listening end and a client certificate to
//!   the dialling end of every link (CN = host name); each end also checks
//!   the peer's CN with `verify-x509-name`. No `writepid`: Debian's
//!   `openvpn@.service` passes `--writepid /run/openvpn/%i.pid`, which the
//!   monit checks watch.
//! - `etc/openvpn/scripts/enslave-<bond>.sh` (route-up: `sleep` for the
//!   model's `enslave_delay`, then the device leaves `up`, joins the bond
//!   through sysfs and comes back up) and `release-<bond>.sh`
//!   (route-pre-down: leave the bond).
//! - `etc/network/interfaces.d/<bond>` (bond-mode, bond-miimon, `bond-slaves
//!   none`, pinned MAC, MTU, static address; needs Debian's `ifenslave`) and
//!   `etc/network/interfaces.d/<link>` per TAP device (`allow-hotplug`,
//!   `inet manual`, pinned MAC): the device only exists once OpenVPN created
//!   it, so it is brought up on hotplug, not by `auto`.
//! - `etc/monit/conf.d/<link>` when the bond has a `monitor`: the openvpn
//!   process by its pidfile, and the peer's bond address by ICMP echo,
//!   restarting `openvpn@<link>` when it stops answering.
//!
//! MACs not pinned in the scenario are derived from the scenario seed, the
//! bond, the host and the interface (SHA-256, locally administered unicast),
//! so they are stable across runs.

use std::net::IpAddr;
use std::num::NonZeroU16;

use ipnet::IpNet;
use sha2::{Digest as _, Sha256};
use vpnsim_keys::{CaSpec, CertRequest, CertificateAuthority, IssuedCertificate, Label, Validity};
use vpnsim_plan::Attachment;
use vpnsim_topology::format::BondMode as ModelBondMode;
use vpnsim_topology::model::{BondM, HostId, TapLinkM};
use vpnsim_topology::units::{Duration, Mac, Proto as ModelProto};

use super::{Ctx, Out, RenderError};
use crate::Format as _;
use crate::ifupdown::{self, Addressing, Bond, IfName, Interfaces, MacAddr, Stanza};
use crate::monit::{self, IcmpCheck, MonitConf, Ping, Program, Service, ServiceKind, ServiceName};
use crate::openvpn::{
    CertUsage, Daemon, Dev, DevType, Dh, Directive, Liveness, Material, Proto, Remote, TapPeer,
    TapSide, Tls,
};
use crate::script::{Command, Name, Redirect, RedirectOp, Script, Statement, Word};
use crate::tree::{MODE_CONFIG, MODE_SCRIPT, MODE_SECRET};

const PRODUCER: &str = "bond";
/// The PKI purpose of the TAP links' CA (`pki/openvpn-tap/<bond>/...`).
const PKI_PURPOSE: &str = "openvpn-tap";
const SCRIPT_DIR: &str = "/etc/openvpn/scripts";

pub(super) fn render(ctx: &Ctx, out: &mut Out) {
    for bond in &ctx.topology().bonds {
        render_bond(ctx, out, bond);
    }
}

fn missing(what: impl Into<String>, message: impl Into<String>) -> RenderError {
    RenderError::Missing {
        what: what.into(),
        message: message.into(),
    }
}

/// Whole seconds of a duration (OpenVPN and monit count in seconds).
fn whole_secs(d: Duration) -> Option<u64> {
    let n = d.as_nanos();
    n.is_multiple_of(1_000_000_000).then_some(n / 1_000_000_000)
}

fn secs_u32(out: &mut Out, what: &str, d: Duration) -> Option<u32> {
    match whole_secs(d).and_then(|s| u32::try_from(s).ok()) {
        Some(s) => Some(s),
        None => {
            out.error(missing(
                what,
                format!("{d} is not a whole number of seconds (OpenVPN and monit count seconds)"),
            ));
            None
        }
    }
}

/// The scenario's MAC, or one derived from the seed: locally administered,
/// unicast, stable across runs.
fn mac_for(ctx: &Ctx, bond: &BondM, host: HostId, iface: &str, pinned: Option<&Mac>) -> MacAddr {
    if let Some(m) = pinned {
        return MacAddr(m.0);
    }
    let mut h = Sha256::new();
    h.update(b"vpnsim bond mac\0");
    h.update(ctx.topology().seed.to_be_bytes());
    for part in [bond.name.as_str(), ctx.host(host).name.as_str(), iface] {
        h.update(part.as_bytes());
        h.update([0u8]);
    }
    let digest = h.finalize();
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&digest[..6]);
    mac[0] = (mac[0] & 0xfc) | 0x02;
    MacAddr(mac)
}

fn render_bond(ctx: &Ctx, out: &mut Out, bond: &BondM) {
    let t = ctx.topology();
    let what = format!("bond {}", bond.name);
    let validity = match Validity::from_scenario(t.valid_from.as_deref(), t.valid_until.as_deref())
    {
        Ok(v) => v,
        Err(e) => {
            out.error(missing(&what, format!("certificate validity: {e}")));
            return;
        }
    };
    let spec = CaSpec::new(PKI_PURPOSE, &bond.name, validity);
    let Some(ca_label) = out.label(&what, spec.label()) else {
        return;
    };
    let Some(ca) = out.key(&what, &ca_label, ctx.keys.certificate_authority(&spec)) else {
        return;
    };
    let enslave = format!("{SCRIPT_DIR}/enslave-{}.sh", bond.name);
    let release = format!("{SCRIPT_DIR}/release-{}.sh", bond.name);

    for &host in &bond.hosts {
        let host_name = ctx.host(host).name.as_str();
        // The peer's bond address, for the monit checks.
        let peer = bond.hosts.iter().copied().find(|&h| h != host);
        let peer_addr = peer.and_then(|p| bond.addresses.get(&p)).map(IpNet::addr);

        for link in &bond.links {
            link_config(ctx, out, bond, link, host, &ca, &enslave, &release);
            if let Some(monitor) = &bond.monitor {
                match peer_addr {
                    Some(addr) => monit_file(ctx, out, bond, link, host, addr, monitor),
                    None => out.error(missing(
                        format!("{what}: monit check for {}", link.name),
                        format!("no bond address for the peer of {host_name}"),
                    )),
                }
            }
        }
        interfaces_files(ctx, out, bond, host);
        scripts(ctx, out, bond, host, &enslave, &release);
    }
}

#[allow(clippy::too_many_arguments)]
fn link_config(
    ctx: &Ctx,
    out: &mut Out,
    bond: &BondM,
    link: &TapLinkM,
    host: HostId,
    ca: &CertificateAuthority,
    enslave: &str,
    release: &str,
) {
    let t = ctx.topology();
    let me = ctx.host(host).name.as_str();
    let dials = link.client == host;
    if !dials && link.server != host {
        return;
    }
    let peer = if dials { link.server } else { link.client };
    let peer_name = ctx.host(peer).name.as_str();
    let what = format!("bond {}: link {} on {me}", bond.name, link.name);

    // Keys: this end's certificate and the link's tls-crypt key.
    let entity = format!("{}-{me}", link.name);
    let request = if dials {
        CertRequest::client(&entity)
    } else {
        CertRequest::server(&entity)
    }
    .with_common_name(me);
    let Some(cert_label) = out.label(&what, Label::issued(PKI_PURPOSE, &bond.name, &entity)) else {
        return;
    };
    let cert: Option<IssuedCertificate> = out.key(&what, &cert_label, ctx.keys.issue(ca, &request));
    let Some(tc_label) = out.label(
        &what,
        Label::from_components(["tls-crypt", "bond", bond.name.as_str(), link.name.as_str()]),
    ) else {
        return;
    };
    let tls_crypt = out.key(&what, &tc_label, ctx.keys.tls_crypt(&tc_label));
    let (Some(cert), Some(tls_crypt)) = (cert, tls_crypt) else {
        return;
    };

    let Some(ping) = secs_u32(out, &format!("{what}: ping"), link.ping) else {
        return;
    };
    let Some(ping_restart) = secs_u32(out, &format!("{what}: ping_restart"), link.ping_restart)
    else {
        return;
    };

    let side = if dials {
        let Some(addr) = ctx.address_on(peer, Attachment::Link(link.via)) else {
            out.error(missing(
                &what,
                format!(
                    "{peer_name} has no address on link {}, which {me} dials",
                    t.link(link.via).name
                ),
            ));
            return;
        };
        TapSide::Dial {
            remotes: vec![Remote {
                host: addr.to_string(),
                port: Some(link.listen.port),
                proto: None,
            }],
            nobind: true,
        }
    } else {
        TapSide::Listen {
            local: None,
            port: link.listen.port,
        }
    };
    let proto = match (link.listen.proto, dials) {
        (ModelProto::Udp, _) => Proto::Udp,
        (ModelProto::Tcp, true) => Proto::TcpClient,
        (ModelProto::Tcp, false) => Proto::TcpServer,
    };

    let provenance = cert.provenance().combine(tls_crypt.provenance());
    let mut header = vec![
        format!(
            "Generated by vpnsim from scenario {}: {} on {me}, TAP slave of {}{}",
            t.name,
            link.name,
            bond.interface,
            if bond.name == bond.interface {
                String::new()
            } else {
                format!(" (bond {})", bond.name)
            }
        ),
        if dials {
            format!(
                "{me} dials {peer_name} over {}; systemd unit openvpn@{}",
                t.link(link.via).name,
                link.name
            )
        } else {
            format!(
                "{me} listens for {peer_name} over {}; systemd unit openvpn@{}",
                t.link(link.via).name,
                link.name
            )
        },
    ];
    if let Some(marker) = provenance.marker() {
        header.push(marker);
    }

    let mut extra = Vec::new();
    // Without `route-delay`, a point-to-point TLS instance runs route-up when
    // it opens the TAP device at start (and again after every ping-restart),
    // before any peer answers: the device would join the bond while its link
    // is dead. With it, route-up runs once the link is established.
    match Directive::new("route-delay", Vec::<String>::new()) {
        Ok(d) => extra.push(d),
        Err(e) => out.error(missing(&what, e.0)),
    }
    match Directive::new("verify-x509-name", [peer_name, "name"]) {
        Ok(d) => extra.push(d),
        Err(e) => out.error(missing(&what, e.0)),
    }
    if bond.mtu != 1500 {
        match Directive::new("tun-mtu", [bond.mtu.to_string()]) {
            Ok(d) => extra.push(d),
            Err(e) => out.error(missing(&what, e.0)),
        }
    }

    let peer_cfg = TapPeer {
        header,
        dev: Dev::new(&link.name, Some(DevType::Tap)),
        lladdr: Some(mac_for(ctx, bond, host, &link.name, link.macs.get(&host))),
        proto,
        side,
        liveness: Liveness {
            keepalive: None,
            ping: Some(ping),
            ping_restart: Some(ping_restart),
        },
        tls: Tls {
            ca: Material::Inline(ca.cert_pem()),
            cert: Material::Inline(cert.cert_pem().to_owned()),
            key: Material::Inline(cert.key_pem()),
            dh: if dials { None } else { Some(Dh::None) },
            tls_crypt: Some(Material::Inline(tls_crypt.block())),
            remote_cert_tls: Some(if dials {
                CertUsage::Server
            } else {
                CertUsage::Client
            }),
            verify_client_cert: None,
            data_ciphers: Vec::new(),
        },
        daemon: Daemon {
            script_security: Some(2),
            route_up: Some(enslave.to_owned()),
            route_pre_down: Some(release.to_owned()),
            writepid: None,
            management: None,
        },
        extra,
    };
    match peer_cfg.render() {
        Ok(text) => out.file(
            me,
            &format!("etc/openvpn/{}.conf", link.name),
            MODE_SECRET,
            PRODUCER,
            text,
        ),
        Err(e) => out.error(missing(&what, e.0)),
    }
}

fn interfaces_files(ctx: &Ctx, out: &mut Out, bond: &BondM, host: HostId) {
    let t = ctx.topology();
    let me = ctx.host(host).name.as_str();
    let what = format!("bond {}: ifupdown on {me}", bond.name);
    let fail = |out: &mut Out, m: String| out.error(missing(&what, m));

    let address = match bond.addresses.get(&host) {
        Some(IpNet::V4(a)) => *a,
        Some(IpNet::V6(a)) => {
            fail(
                out,
                format!("bond address {a} is IPv6; only IPv4 is rendered"),
            );
            return;
        }
        None => {
            fail(out, "no bond address".into());
            return;
        }
    };
    let miimon = match u32::try_from(bond.miimon.as_nanos() / 1_000_000) {
        Ok(ms) if bond.miimon.as_nanos().is_multiple_of(1_000_000) => ms,
        _ => {
            fail(
                out,
                format!(
                    "miimon {} is not a whole number of milliseconds",
                    bond.miimon
                ),
            );
            return;
        }
    };
    let Ok(mtu) = u16::try_from(bond.mtu) else {
        fail(out, format!("mtu {} does not fit ifupdown", bond.mtu));
        return;
    };
    let Ok(bond_name) = IfName::new(&bond.interface) else {
        fail(
            out,
            format!("`{}` is not an interface name", bond.interface),
        );
        return;
    };
    let mode = match bond.mode {
        ModelBondMode::ActiveBackup => ifupdown::BondMode::ActiveBackup,
        ModelBondMode::BalanceAlb => ifupdown::BondMode::BalanceAlb,
    };
    let slaves: Vec<&str> = bond.links.iter().map(|l| l.name.as_str()).collect();
    let stanza = Stanza {
        name: bond_name,
        auto: true,
        hotplug: false,
        addressing: Addressing::Static {
            address,
            gateway: None,
            metric: None,
        },
        bond: Some(Bond {
            mode: Some(mode),
            miimon: Some(miimon),
            slaves: Some(Vec::new()),
            ..Bond::default()
        }),
        hwaddress: Some(mac_for(
            ctx,
            bond,
            host,
            &bond.interface,
            bond.macs.get(&host),
        )),
        mtu: Some(mtu),
        hooks: Vec::new(),
        extra: Vec::new(),
    };
    let header = [
        format!(
            "Generated by vpnsim from scenario {}: bond {} on {me} (Debian package ifenslave)",
            t.name, bond.name
        ),
        format!(
            "No slaves here: OpenVPN's route-up script adds {} when their links come up",
            slaves.join(" and ")
        ),
    ];
    match Interfaces::from_stanzas(&header, &[stanza]) {
        Ok(f) => out.file(
            me,
            &format!("etc/network/interfaces.d/{}", bond.interface),
            MODE_CONFIG,
            PRODUCER,
            f.emit(),
        ),
        Err(e) => fail(out, e.0),
    }

    for link in &bond.links {
        let Ok(name) = IfName::new(&link.name) else {
            fail(out, format!("`{}` is not an interface name", link.name));
            continue;
        };
        let stanza = Stanza {
            name,
            auto: false,
            hotplug: true,
            addressing: Addressing::Manual,
            bond: None,
            hwaddress: Some(mac_for(ctx, bond, host, &link.name, link.macs.get(&host))),
            mtu: None,
            hooks: Vec::new(),
            extra: Vec::new(),
        };
        let header = [
            format!(
                "Generated by vpnsim from scenario {}: TAP device {} on {me}, slave of {}",
                t.name, link.name, bond.interface
            ),
            format!(
                "Created by openvpn@{}, so brought up on hotplug rather than by `auto`",
                link.name
            ),
        ];
        match Interfaces::from_stanzas(&header, &[stanza]) {
            Ok(f) => out.file(
                me,
                &format!("etc/network/interfaces.d/{}", link.name),
                MODE_CONFIG,
                PRODUCER,
                f.emit(),
            ),
            Err(e) => fail(out, e.0),
        }
    }
}

/// `sleep` argument for a delay: whole seconds, or seconds with a fraction.
fn sleep_arg(d: Duration) -> String {
    let n = d.as_nanos();
    let (s, frac) = (n / 1_000_000_000, n % 1_000_000_000);
    if frac == 0 {
        s.to_string()
    } else {
        let f = format!("{frac:09}");
        format!("{s}.{}", f.trim_end_matches('0'))
    }
}

fn scripts(ctx: &Ctx, out: &mut Out, bond: &BondM, host: HostId, enslave: &str, release: &str) {
    let t = ctx.topology();
    let me = ctx.host(host).name.as_str();
    let what = format!("bond {}: scripts on {me}", bond.name);
    let built = (|| -> Result<(Script, Script), crate::script::InvalidValue> {
        let var_bond = Name::new("BONDING_INTERFACE")?;
        let dev = Word::var(Name::new("dev")?);
        let slaves = Word::template("/sys/class/net/$BONDING_INTERFACE/bonding/slaves")?;
        let assign = Statement::Assign {
            name: var_bond,
            value: Word::literal(&bond.interface)?,
        };
        let ip_link = |state: &str| -> Result<Statement, crate::script::InvalidValue> {
            Ok(Statement::Command(Command {
                program: Word::literal("/sbin/ip")?,
                args: vec![
                    Word::literal("link")?,
                    Word::literal("set")?,
                    Word::literal("dev")?,
                    dev.clone(),
                    Word::literal(state)?,
                ],
                redirects: Vec::new(),
            }))
        };
        let echo = |sign: &str| -> Result<Statement, crate::script::InvalidValue> {
            Ok(Statement::Command(Command {
                program: Word::literal("echo")?,
                args: vec![Word::template(&format!("{sign}$dev"))?],
                redirects: vec![Redirect {
                    fd: None,
                    op: RedirectOp::Write,
                    target: slaves.clone(),
                }],
            }))
        };
        let generated = format!(
            "Generated by vpnsim from scenario {}: bond {} on {me}",
            t.name, bond.name
        );
        let up = Script {
            header: crate::script::Comment::new(&generated)
                .into_iter()
                .chain(crate::script::Comment::new(
                    "OpenVPN route-up: enslave the TAP device $dev to the bond.",
                ))
                .chain(crate::script::Comment::new(
                    "OpenVPN waits for this script: the sleep delays the slave joining.",
                ))
                .collect(),
            body: vec![
                assign.clone(),
                Statement::Command(Command::literal(&[
                    "sleep",
                    &sleep_arg(bond.enslave_delay),
                ])?),
                ip_link("down")?,
                echo("+")?,
                ip_link("up")?,
            ],
            ..Script::sh()
        };
        let down = Script {
            header: crate::script::Comment::new(&generated)
                .into_iter()
                .chain(crate::script::Comment::new(
                    "OpenVPN route-pre-down: release the TAP device $dev from the bond",
                ))
                .collect(),
            body: vec![assign, echo("-")?],
            ..Script::sh()
        };
        Ok((up, down))
    })();
    match built {
        Ok((up, down)) => {
            for (path, script) in [(enslave, up), (release, down)] {
                let rel = path.trim_start_matches('/');
                out.file(me, rel, MODE_SCRIPT, PRODUCER, script.emit());
            }
        }
        Err(e) => out.error(missing(&what, e.to_string())),
    }
}

fn monit_file(
    ctx: &Ctx,
    out: &mut Out,
    bond: &BondM,
    link: &TapLinkM,
    host: HostId,
    peer_addr: IpAddr,
    monitor: &vpnsim_topology::format::Monitor,
) {
    let t = ctx.topology();
    let me = ctx.host(host).name.as_str();
    let what = format!("bond {}: monit check of {} on {me}", bond.name, link.name);
    let Some(interval) = secs_u32(out, &format!("{what}: interval"), monitor.interval) else {
        return;
    };
    let Some(timeout) = secs_u32(out, &format!("{what}: timeout"), monitor.timeout) else {
        return;
    };
    let (Some(interval), Ok(timeout), Ok(count)) = (
        u16::try_from(interval).ok().and_then(NonZeroU16::new),
        u16::try_from(timeout),
        u16::try_from(monitor.count),
    ) else {
        out.error(missing(
            &what,
            "interval, timeout or count out of monit's range",
        ));
        return;
    };
    let built = (|| -> Result<MonitConf, monit::InvalidValue> {
        let program =
            |verb: &str| Program::new(&format!("/usr/bin/systemctl {verb} openvpn@{}", link.name));
        Ok(MonitConf {
            header: vec![
                monit::Comment::new(format!(
                    "Generated by vpnsim from scenario {}: watchdog of {} on {me} ({})",
                    t.name, link.name, bond.name
                ))?,
                monit::Comment::new(format!(
                    "Restarts openvpn@{} when the peer's {} address stops answering ping",
                    link.name, bond.interface
                ))?,
            ],
            daemon: Some(monit::Daemon {
                interval,
                start_delay: None,
            }),
            services: vec![
                Service {
                    name: ServiceName::new(format!("{}-pid", link.name))?,
                    kind: ServiceKind::Process {
                        pidfile: monit::AbsPath::new(format!("/run/openvpn/{}.pid", link.name))?,
                    },
                    start: Some(program("start")?),
                    stop: Some(program("stop")?),
                },
                Service {
                    name: ServiceName::new(link.name.clone())?,
                    kind: ServiceKind::Host {
                        address: monit::Host::Ip(peer_addr),
                        checks: vec![IcmpCheck {
                            ping: Ping::IcmpEcho,
                            count: Some(count),
                            timeout: Some(timeout),
                            cycles: None,
                            action: monit::Action::Restart,
                        }],
                    },
                    start: Some(program("start")?),
                    stop: Some(program("stop")?),
                },
            ],
        })
    })();
    match built.and_then(|c| c.validate().map(|()| c)) {
        Ok(conf) => out.file(
            me,
            &format!("etc/monit/conf.d/{}", link.name),
            MODE_CONFIG,
            PRODUCER,
            conf.emit(),
        ),
        Err(e) => out.error(missing(&what, e.to_string())),
    }
}

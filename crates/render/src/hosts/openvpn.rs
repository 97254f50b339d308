//! Generator for eduVPN-style OpenVPN deployments (`[openvpn.NAME]`).
//!
//! Per deployment:
//! - PKI: an OpenVPN CA (`pki/openvpn/<deployment>`), a server certificate
//!   per profile (entity `server-<profile>`, CN the node's DNS name, SAN the
//!   profile's `hostName` and the node's DNS name), a client certificate per
//!   client host (entity `client-<host>`); the tls-crypt key
//!   (`tls-crypt/<deployment>` when `shared_tls_crypt`, the eduVPN `ta.key`;
//!   otherwise `tls-crypt/<deployment>/<profile>`); with `use_vpn_daemon` a
//!   vpn-daemon CA (`pki/vpn-daemon/<deployment>`) with the client
//!   certificate `vpn-daemon-client` on the controller and a server
//!   certificate `vpn-daemon-<node>` per node (SAN: the node's management
//!   addresses), as reference 001 makes them with vpn-ca.
//! - Nodes: one OpenVPN process per profile and listener, as eduVPN runs
//!   them: process `i` of profile `N` is `tun-N-i`
//!   (`vpnsim_plan::profile_device` for process 0) in
//!   `etc/openvpn/server/tun-N-i.conf`, listening on the i-th listener; the
//!   profile's ranges are split into as many equal parts as the next power of
//!   two (a `range6` shorter than /64 is narrowed to its first /64 first,
//!   because `server-ipv6` takes /64 to /124), so with one listener a process
//!   has the whole planned range (`vpnsim_plan::process_networks`: the plan
//!   names each process's address). The profile's clients keep fixed pool
//!   entries: `ifconfig-pool-persist etc/openvpn/server/ipp-tun-N-i.txt 0`
//!   lists client `k` (file order, certificate CN = host name) at entry `k`
//!   of every process (`.2 + k`, `::1000 + k`), read only, so no other
//!   client gets it and the plan's client address is where the client is.
//!   UDP processes have `multihome`: they answer from the address a client
//!   wrote to, not the one routing picks. Management: `127.0.0.1` when vpn-daemon
//!   fronts it, else the profile's `managementIp`, port
//!   `11940 + 16 * (profileNumber - 1) + i`. Certificates, keys and the
//!   tls-crypt key in `etc/openvpn/server/tls/<profile>/`.
//!   With vpn-daemon: `etc/sysconfig/vpn-daemon` and its certificates in
//!   `etc/pki/vpn-daemon/` (reference 001, CentOS paths).
//!   vpn-server-node: eduVPN 2.x (`use_vpn_daemon`) gets
//!   `etc/vpn-server-node/config.php` and `firewall.php` (input rules from
//!   the node's services, vpn-daemon from the controller only, the OpenVPN
//!   listeners; NAT rules per profile); 1.x gets
//!   `etc/vpn-server-node/<instance>/config.yaml`.
//! - Controller: the profile configuration, `etc/vpn-server-api/config.php`
//!   for 2.x (reference 001) or `etc/vpn-server-api/<instance>/config.yaml`
//!   for 1.x (reference 000; `<instance>` is the controller's DNS name), the
//!   Apache allow-list `etc/httpd/conf.d/vpn-server-api.conf` (`Require
//!   local` plus every node address the nodes call the API from: their
//!   management-mesh addresses when the deployment has a mesh, else their
//!   public addresses), the tls-crypt key(s) in `var/lib/vpn-server-api/`,
//!   and the vpn-daemon client certificate in
//!   `etc/vpn-server-api/vpn-daemon/`.
//! - Clients: `etc/openvpn/client/<deployment>-<profile>.conf` with inline
//!   certificates and keys. Remotes: the profile's `hostName` on each of its
//!   listeners, then (when the hostName is shared by several profiles, the
//!   round-robin merge of 001, and they share the tls-crypt key) every node
//!   serving one of those profiles by its own name, with `remote-random`.
//!   A client of one node tries its listeners in order (no `remote-random`):
//!   UDP first, TCP when UDP does not answer.
//!
//! eduVPN 2.x or 1.x: a deployment with `use_vpn_daemon` is 2.x (PHP
//! files), one without is 1.x (YAML files), as in the two references.
//!
//! Not written here: iptables/nftables (the firewall generator), the zone
//! (dns), PeerVPN (mesh). API secrets (`apiConsumers`, `apiPass`) are left
//! out: eduVPN's installer creates them and there is no key label for them.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use vpnsim_keys::{
    CaSpec, CertRequest, CertUsage as KeyUsage, CertificateAuthority, IssuedCertificate, Label,
    TlsCryptKey, Validity, ns, purpose,
};
use vpnsim_plan::{Attachment, CLIENT_DEVICE};
use vpnsim_topology::format::NatFamily;
use vpnsim_topology::model::{HostId, MeshId, OpenVpnId, OpenVpnM, ProfileM, Topology};
use vpnsim_topology::units::{Listener, Proto as ListenProto};

use super::{Ctx, Out, RenderError};
use crate::eduvpn::apache::{
    ApacheAccess, IpMatch, Require, RequireAny, Section, SectionKind, SectionPath,
};
use crate::eduvpn::config::{
    DnsServer, InputRule, IpFamily, NatRule, NodeConfig, NodeFirewall, PortSpec, Proto as EduProto,
    ProtoPort, ServerApiConfig, VpnProfile,
};
use crate::eduvpn::sysconfig::{DaemonListen, VpnDaemonSysconfig};
use crate::eduvpn::{CommentLine, Map};
use crate::format::Format;
use crate::openvpn::{
    CertUsage, Client, Daemon, Dev, Dh, Directive, Liveness, Material, PoolEntry, PoolFile,
    PoolPersist, Proto, Push, Remote, Server, Tls, Topology as OvpnTopology,
};
use crate::tree::{MODE_CONFIG, MODE_SECRET};

const PRODUCER: &str = "openvpn";
const PRODUCER_EDUVPN: &str = "eduvpn";
/// First management port of a node (eduVPN's `11940`).
const MANAGEMENT_BASE: u32 = 11940;
const DATA_CIPHERS: [&str; 2] = ["AES-256-GCM", "CHACHA20-POLY1305"];
/// Where a node keeps a profile's TLS files.
const SERVER_TLS_DIR: &str = "etc/openvpn/server/tls";
const API_CONFIG_DIR: &str = "etc/vpn-server-api";
const APACHE_CONF: &str = "etc/httpd/conf.d/vpn-server-api.conf";
const APACHE_DIRECTORY: &str = "/usr/share/vpn-server-api/web";

/// The tun device of process `process` of profile `profile_number`:
/// `tun-N-i`, [`vpnsim_plan::profile_device`] for process 0.
pub(crate) fn process_device(profile_number: u32, process: usize) -> String {
    vpnsim_plan::process_device(profile_number, process)
}

/// One OpenVPN server process of a profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Process {
    pub device: String,
    pub listener: Listener,
    pub network: Ipv4Net,
    pub network6: Option<Ipv6Net>,
    pub management_port: u16,
}

/// The processes of a profile: one per listener, ranges split evenly
/// ([`vpnsim_plan::process_networks`], so the plan's addresses are the
/// processes' own).
pub(crate) fn processes(
    profile_number: u32,
    listeners: &[Listener],
    range: Ipv4Net,
    range6: Option<Ipv6Net>,
) -> Result<Vec<Process>, String> {
    let nets = vpnsim_plan::process_networks(listeners.len(), range, range6)?;
    let mut out = Vec::new();
    for (i, (listener, net)) in listeners.iter().zip(nets).enumerate() {
        let port = u64::from(MANAGEMENT_BASE)
            + 16 * u64::from(profile_number.saturating_sub(1))
            + i as u64;
        let management_port = u16::try_from(port).map_err(|_| {
            format!("profileNumber {profile_number}: management port {port} is out of range")
        })?;
        out.push(Process {
            device: process_device(profile_number, i),
            listener: *listener,
            network: net.network,
            network6: net.network6,
            management_port,
        });
    }
    Ok(out)
}

fn secs(d: vpnsim_topology::units::Duration) -> u32 {
    u32::try_from(d.as_nanos() / 1_000_000_000)
        .unwrap_or(u32::MAX)
        .max(1)
}

fn missing(what: impl Into<String>, message: impl Into<String>) -> RenderError {
    RenderError::Missing {
        what: what.into(),
        message: message.into(),
    }
}

pub(super) fn render(ctx: &Ctx, out: &mut Out) {
    let t = ctx.topology();
    if t.openvpn.is_empty() {
        return;
    }
    let validity = match Validity::from_scenario(t.valid_from.as_deref(), t.valid_until.as_deref())
    {
        Ok(v) => v,
        Err(source) => {
            out.error(RenderError::Key {
                what: "openvpn: certificate validity".into(),
                label: "(scenario valid_from/valid_until)".into(),
                source,
            });
            return;
        }
    };
    for (d, dep) in t.openvpn.iter().enumerate() {
        Deployment {
            ctx,
            t,
            id: OpenVpnId(d as u32),
            dep,
            validity,
        }
        .render(out);
    }
}

struct Deployment<'a> {
    ctx: &'a Ctx<'a>,
    t: &'a Topology,
    id: OpenVpnId,
    dep: &'a OpenVpnM,
    validity: Validity,
}

/// Key material of one deployment.
struct Keys {
    ca: CertificateAuthority,
    /// Per profile index.
    servers: Vec<Option<IssuedCertificate>>,
    /// Per profile index.
    tls_crypt: Vec<Option<TlsCryptKey>>,
    daemon: Option<DaemonKeys>,
}

struct DaemonKeys {
    client: Option<IssuedCertificate>,
    /// Per node (in `dep.nodes()` order).
    servers: Vec<(HostId, Option<IssuedCertificate>)>,
}

impl<'a> Deployment<'a> {
    fn what(&self, rest: &str) -> String {
        format!("openvpn {}: {rest}", self.dep.name)
    }

    fn host_name(&self, id: HostId) -> &'a str {
        &self.t.host(id).name
    }

    fn header(&self) -> String {
        format!(
            "Generated by vpnsim from scenario {} (openvpn {}); do not edit.",
            self.t.name, self.dep.name
        )
    }

    /// The profiles by `profileNumber` (the order eduVPN lists them in),
    /// with their index in `dep.profiles`.
    fn by_number(&self) -> Vec<(usize, &'a ProfileM)> {
        let mut list: Vec<(usize, &'a ProfileM)> = self.dep.profiles.iter().enumerate().collect();
        list.sort_by(|(_, a), (_, b)| {
            (a.spec.profile_number, &a.id).cmp(&(b.spec.profile_number, &b.id))
        });
        list
    }

    /// The nodes, in the order of the first profile each serves.
    fn nodes_by_number(&self) -> Vec<HostId> {
        let mut seen = BTreeSet::new();
        self.by_number()
            .into_iter()
            .map(|(_, p)| p.node)
            .filter(|n| seen.insert(*n))
            .collect()
    }

    /// eduVPN 2.x (PHP, vpn-daemon) or 1.x (YAML).
    fn v2(&self) -> bool {
        self.dep.use_vpn_daemon
    }

    /// The eduVPN instance name (1.x directories): the controller's DNS name.
    fn instance(&self) -> String {
        self.t
            .host(self.dep.controller)
            .dns_name
            .clone()
            .unwrap_or_else(|| self.dep.name.clone())
    }

    fn render(&self, out: &mut Out) {
        let Some(keys) = self.keys(out) else { return };
        for (p, profile) in self.dep.profiles.iter().enumerate() {
            self.node_profile(out, &keys, p, profile);
        }
        self.nodes(out, &keys);
        self.controller(out, &keys);
        self.clients(out, &keys);
    }

    // -----------------------------------------------------------------------
    // Keys
    // -----------------------------------------------------------------------

    fn ca(&self, out: &mut Out, purpose: &str) -> Option<CertificateAuthority> {
        let spec = CaSpec::new(purpose, &self.dep.name, self.validity);
        let label = out.label(&self.what("CA"), spec.label())?;
        out.key(
            &self.what(&format!("{purpose} CA")),
            &label,
            self.ctx.keys.certificate_authority(&spec),
        )
    }

    fn issue(
        &self,
        out: &mut Out,
        ca: &CertificateAuthority,
        request: &CertRequest,
    ) -> Option<IssuedCertificate> {
        let spec = ca.spec();
        let what = self.what(&format!("{} certificate {}", spec.purpose, request.entity));
        let label = out.label(
            &what,
            Label::issued(&spec.purpose, &spec.deployment, &request.entity),
        )?;
        out.key(&what, &label, self.ctx.keys.issue(ca, request))
    }

    fn tls_crypt_label(&self, profile: &ProfileM) -> Result<Label, vpnsim_keys::KeyError> {
        if self.dep.shared_tls_crypt {
            Label::tls_crypt(&self.dep.name)
        } else {
            Label::from_components([ns::TLS_CRYPT, self.dep.name.as_str(), profile.id.as_str()])
        }
    }

    fn keys(&self, out: &mut Out) -> Option<Keys> {
        let ca = self.ca(out, purpose::OPENVPN)?;
        let mut servers = Vec::new();
        let mut tls_crypt = Vec::new();
        for profile in &self.dep.profiles {
            let node = self.t.host(profile.node);
            let cn = node.dns_name.clone().unwrap_or_else(|| node.name.clone());
            let mut request = CertRequest {
                entity: format!("server-{}", profile.id),
                common_name: cn,
                usage: KeyUsage::Server,
                dns_names: Vec::new(),
                ip_addresses: Vec::new(),
            }
            .with_dns_name(&profile.spec.host_name);
            if let Some(dns) = &node.dns_name {
                request = request.with_dns_name(dns);
            }
            servers.push(self.issue(out, &ca, &request));
            let what = self.what(&format!("tls-crypt key of profile {}", profile.id));
            let key = out
                .label(&what, self.tls_crypt_label(profile))
                .and_then(|label| out.key(&what, &label, self.ctx.keys.tls_crypt(&label)));
            tls_crypt.push(key);
        }
        let daemon = if self.dep.use_vpn_daemon {
            self.ca(out, purpose::VPN_DAEMON).map(|dca| {
                let client = self.issue(out, &dca, &CertRequest::client("vpn-daemon-client"));
                let servers = self
                    .dep
                    .nodes()
                    .into_iter()
                    .map(|node| {
                        let host = self.t.host(node);
                        let mut request = CertRequest::server(&format!("vpn-daemon-{}", host.name));
                        if let Some(dns) = &host.dns_name {
                            request = request.with_dns_name(dns);
                        }
                        for p in self.dep.profiles.iter().filter(|p| p.node == node) {
                            if let Some(ip) = p.spec.management_ip {
                                request = request.with_ip_address(ip);
                            }
                        }
                        (node, self.issue(out, &dca, &request))
                    })
                    .collect();
                DaemonKeys { client, servers }
            })
        } else {
            None
        };
        Some(Keys {
            ca,
            servers,
            tls_crypt,
            daemon,
        })
    }

    // -----------------------------------------------------------------------
    // Addresses
    // -----------------------------------------------------------------------

    /// The addresses `host` talks to the other eduVPN machines from: its
    /// management-mesh addresses when the deployment has a mesh, else its
    /// public addresses (or, without those, its planned underlay addresses).
    fn control_addresses(&self, host: HostId) -> Vec<IpAddr> {
        if let Some(mesh) = self.dep.management_mesh {
            return self.attached(host, Attachment::Mesh(mesh));
        }
        let h = self.t.host(host);
        let public: Vec<IpAddr> = h
            .public_address
            .map(IpAddr::V4)
            .into_iter()
            .chain(h.public_address6.map(IpAddr::V6))
            .collect();
        if !public.is_empty() {
            return public;
        }
        self.ctx
            .plan
            .host_addresses(host)
            .filter(|a| matches!(a.attachment, Attachment::Subnet(_) | Attachment::Link(_)))
            .map(|a| a.address)
            .collect()
    }

    fn attached(&self, host: HostId, attachment: Attachment) -> Vec<IpAddr> {
        self.ctx
            .plan
            .host_addresses(host)
            .filter(|a| a.attachment == attachment)
            .map(|a| a.address)
            .collect()
    }

    fn mesh_address(&self, mesh: MeshId, host: HostId) -> Option<IpAddr> {
        self.ctx.address_on(host, Attachment::Mesh(mesh))
    }

    /// Where nodes reach the API.
    fn api_uri(&self) -> String {
        let controller = self.t.host(self.dep.controller);
        if let Some(mesh) = self.dep.management_mesh
            && let Some(a) = self.mesh_address(mesh, self.dep.controller)
        {
            let host = match a {
                IpAddr::V4(a) => a.to_string(),
                IpAddr::V6(a) => format!("[{a}]"),
            };
            return format!("http://{host}/vpn-server-api/api.php");
        }
        let host = controller
            .dns_name
            .clone()
            .or_else(|| controller.public_address.map(|a| a.to_string()))
            .unwrap_or_else(|| controller.name.clone());
        format!("https://{host}/vpn-server-api/api.php")
    }

    // -----------------------------------------------------------------------
    // Nodes
    // -----------------------------------------------------------------------

    fn server_tls_path(profile: &ProfileM, file: &str) -> String {
        format!("{SERVER_TLS_DIR}/{}/{file}", profile.id)
    }

    fn node_profile(&self, out: &mut Out, keys: &Keys, p: usize, profile: &ProfileM) {
        let node = self.host_name(profile.node);
        let what = self.what(&format!("profile {} on {node}", profile.id));
        let Some(range) = self.ctx.plan.client_range(self.id, p) else {
            out.error(missing(what, "no client range planned"));
            return;
        };
        let spec = &profile.spec;
        let procs = match processes(
            spec.profile_number,
            &spec.listeners,
            range.range,
            range.range6,
        ) {
            Ok(procs) => procs,
            Err(message) => {
                out.error(missing(what, message));
                return;
            }
        };
        // TLS files.
        let (Some(server), Some(tls_crypt)) = (&keys.servers[p], &keys.tls_crypt[p]) else {
            return;
        };
        out.file(
            node,
            &Self::server_tls_path(profile, "ca.crt"),
            MODE_CONFIG,
            PRODUCER,
            keys.ca.cert_file_text(),
        );
        out.file(
            node,
            &Self::server_tls_path(profile, "server.crt"),
            MODE_CONFIG,
            PRODUCER,
            server.cert_file_text(),
        );
        out.file(
            node,
            &Self::server_tls_path(profile, "server.key"),
            MODE_SECRET,
            PRODUCER,
            server.key_file_text(),
        );
        out.file(
            node,
            &Self::server_tls_path(profile, "tls-crypt.key"),
            MODE_SECRET,
            PRODUCER,
            tls_crypt.file_text(),
        );
        let abs = |file: &str| Material::File(format!("/{}", Self::server_tls_path(profile, file)));
        let management_ip = if self.dep.use_vpn_daemon {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            spec.management_ip
                .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST))
        };
        let mut push = Vec::new();
        if spec.default_gateway {
            let mut flags = vec!["def1".to_string()];
            if range.range6.is_some() {
                flags.push("ipv6".into());
            }
            push.push(Push::RedirectGateway(flags));
        }
        push.extend(spec.dns.iter().copied().map(Push::Dns));
        // The profile's clients, in file order: client `k` has pool entry
        // `k` of every process (certificate CN = host name).
        let clients: Vec<&str> = self
            .dep
            .clients
            .iter()
            .filter(|(_, cp)| *cp == p)
            .map(|(c, _)| self.host_name(*c))
            .collect();
        for proc in &procs {
            let (proto, udp) = match proc.listener.proto {
                ListenProto::Udp => (Proto::Udp, true),
                ListenProto::Tcp => (Proto::TcpServer, false),
            };
            let mut extra = vec![
                ("persist-key", vec![]),
                ("persist-tun", vec![]),
                ("tls-version-min", vec!["1.2".to_string()]),
                ("setenv", vec!["PROFILE_ID".to_string(), profile.id.clone()]),
            ];
            if udp {
                extra.push(("explicit-exit-notify", vec!["1".to_string()]));
                // Answer from the address the client wrote to: without it a
                // node with several addresses answers from the one routing
                // picks, which a client that dialled another drops.
                extra.push(("multihome", vec![]));
            }
            extra.push(("verb", vec!["3".to_string()]));
            let extra: Result<Vec<Directive>, _> = extra
                .into_iter()
                .map(|(name, args)| Directive::new(name, args))
                .collect();
            let pool_persist = if clients.is_empty() {
                None
            } else {
                let path = format!("etc/openvpn/server/ipp-{}.txt", proc.device);
                let net = vpnsim_plan::ProcessNet {
                    network: proc.network,
                    network6: proc.network6,
                };
                let entries = clients
                    .iter()
                    .enumerate()
                    .filter_map(|(k, cn)| {
                        let (v4, v6) = net.slot(u32::try_from(k).ok()?)?;
                        Some(PoolEntry {
                            common_name: (*cn).to_string(),
                            v4: Some(v4),
                            v6,
                        })
                    })
                    .collect();
                let file = PoolFile {
                    header: vec![
                        format!(
                            "Pool entries of {} ({}): read only (ifconfig-pool-persist ... 0), each address is its client's.",
                            proc.device, proc.listener
                        ),
                        self.header(),
                    ],
                    entries,
                };
                match file.render() {
                    Ok(text) => out.file(node, &path, MODE_CONFIG, PRODUCER, text),
                    Err(e) => out.error(missing(self.what(&format!("{node}: {path}")), e.0)),
                }
                Some(PoolPersist {
                    path: format!("/{path}"),
                    seconds: Some(0),
                })
            };
            let server = extra.map(|extra| Server {
                header: vec![
                    format!(
                        "eduVPN {node}: profile {} ({}), process {} on {}",
                        profile.id, spec.display_name, proc.device, proc.listener
                    ),
                    self.header(),
                ],
                dev: Dev::new(&proc.device, None),
                proto,
                port: proc.listener.port,
                local: spec.listen,
                topology: Some(OvpnTopology::Subnet),
                network: Some(proc.network),
                network6: proc.network6,
                push: push.clone(),
                pool_persist,
                liveness: Liveness {
                    keepalive: Some((secs(spec.ping), secs(spec.ping_restart))),
                    ..Liveness::default()
                },
                tls: Tls {
                    ca: abs("ca.crt"),
                    cert: abs("server.crt"),
                    key: abs("server.key"),
                    dh: Some(Dh::None),
                    tls_crypt: Some(abs("tls-crypt.key")),
                    remote_cert_tls: Some(CertUsage::Client),
                    verify_client_cert: None,
                    data_ciphers: DATA_CIPHERS.iter().map(|c| (*c).to_string()).collect(),
                },
                daemon: Daemon {
                    management: Some((management_ip, proc.management_port)),
                    ..Daemon::default()
                },
                extra,
            });
            match server.and_then(|s| s.render()) {
                Ok(text) => out.file(
                    node,
                    &format!("etc/openvpn/server/{}.conf", proc.device),
                    MODE_CONFIG,
                    PRODUCER,
                    text,
                ),
                Err(e) => out.error(missing(
                    self.what(&format!("{node}: server {}", proc.device)),
                    e.0,
                )),
            }
        }
    }

    fn comment_lines(&self, out: &mut Out, what: &str, lines: &[String]) -> Vec<CommentLine> {
        lines
            .iter()
            .filter_map(|l| match CommentLine::new(l.clone()) {
                Ok(c) => Some(c),
                Err(e) => {
                    out.error(missing(self.what(what), e.0));
                    None
                }
            })
            .collect()
    }

    fn nodes(&self, out: &mut Out, keys: &Keys) {
        let controller_addrs = self.control_addresses(self.dep.controller);
        for node in self.dep.nodes() {
            let name = self.host_name(node);
            let profiles: Vec<&ProfileM> = self
                .dep
                .profiles
                .iter()
                .filter(|p| p.node == node)
                .collect();
            let header = self.comment_lines(out, name, &[self.header()]);
            let mut config = NodeConfig {
                header: header.clone(),
                api_user: Some("vpn-server-node".into()),
                api_pass: None,
                api_uri: Some(self.api_uri()),
                use_vpn_daemon: self.v2().then_some(true),
                profile_list: Some(profiles.iter().map(|p| p.id.clone()).collect()),
                manage_firewall: None,
                extra: Map::new(),
            };
            if self.v2() {
                // A scenario firewall means hand-made iptables (001's
                // "Firewall" step): keep apply_changes.sh off it.
                if self.t.firewalls.contains_key(&node) {
                    config.manage_firewall = Some(false);
                }
                out.file(
                    name,
                    "etc/vpn-server-node/config.php",
                    MODE_CONFIG,
                    PRODUCER_EDUVPN,
                    config.emit(),
                );
                let firewall = self.node_firewall(node, &profiles, &controller_addrs, header);
                out.file(
                    name,
                    "etc/vpn-server-node/firewall.php",
                    MODE_CONFIG,
                    PRODUCER_EDUVPN,
                    firewall.emit(),
                );
            } else {
                out.file(
                    name,
                    &format!("etc/vpn-server-node/{}/config.yaml", self.instance()),
                    MODE_CONFIG,
                    PRODUCER_EDUVPN,
                    config.emit_yaml(),
                );
            }
        }
        // vpn-daemon on every node.
        let Some(daemon) = &keys.daemon else { return };
        for (node, cert) in &daemon.servers {
            let name = self.host_name(*node);
            let sysconfig = VpnDaemonSysconfig {
                header: self.comment_lines(out, name, &[self.header()]),
                enable_tls: true,
                listen: Some(DaemonListen {
                    addr: None,
                    port: self.dep.vpn_daemon_port,
                }),
            };
            out.file(
                name,
                "etc/sysconfig/vpn-daemon",
                MODE_CONFIG,
                PRODUCER_EDUVPN,
                sysconfig.emit(),
            );
            let Some(cert) = cert else { continue };
            out.file(
                name,
                "etc/pki/vpn-daemon/ca.crt",
                MODE_CONFIG,
                PRODUCER,
                with_marker(self.ctx, cert.ca_cert_pem()),
            );
            out.file(
                name,
                "etc/pki/vpn-daemon/server.crt",
                MODE_CONFIG,
                PRODUCER,
                cert.cert_file_text(),
            );
            out.file(
                name,
                "etc/pki/vpn-daemon/private/server.key",
                MODE_SECRET,
                PRODUCER,
                cert.key_file_text(),
            );
        }
    }

    fn node_firewall(
        &self,
        node: HostId,
        profiles: &[&ProfileM],
        controller: &[IpAddr],
        header: Vec<CommentLine>,
    ) -> NodeFirewall {
        let proto = |p: ListenProto| match p {
            ListenProto::Udp => EduProto::Udp,
            ListenProto::Tcp => EduProto::Tcp,
        };
        let mut rules = Vec::new();
        for service in &self.t.host(node).services {
            rules.push(InputRule {
                proto: vec![proto(service.listen.proto)],
                src_net: None,
                dst_port: Some(vec![PortSpec::Port(service.listen.port)]),
            });
        }
        if self.dep.use_vpn_daemon {
            rules.push(InputRule {
                proto: vec![EduProto::Tcp],
                src_net: Some(controller.iter().map(|a| IpNet::from(*a)).collect()),
                dst_port: Some(vec![PortSpec::Port(self.dep.vpn_daemon_port)]),
            });
        }
        // OpenVPN listeners: one rule per port, its protocols udp first.
        let mut ports: Vec<(u16, BTreeSet<EduProto>)> = Vec::new();
        for l in profiles.iter().flat_map(|p| p.spec.listeners.iter()) {
            match ports.iter_mut().find(|(port, _)| *port == l.port) {
                Some((_, protos)) => {
                    protos.insert(proto(l.proto));
                }
                None => ports.push((l.port, BTreeSet::from([proto(l.proto)]))),
            }
        }
        for (port, protos) in ports {
            rules.push(InputRule {
                proto: protos.into_iter().collect(),
                src_net: None,
                dst_port: Some(vec![PortSpec::Port(port)]),
            });
        }
        let nat: Vec<(String, NatRule)> = profiles
            .iter()
            .filter(|p| !p.spec.nat.is_empty())
            .map(|p| {
                (
                    p.id.clone(),
                    NatRule {
                        enable_nat: p
                            .spec
                            .nat
                            .iter()
                            .map(|f| match f {
                                NatFamily::IPv4 => IpFamily::V4,
                                NatFamily::IPv6 => IpFamily::V6,
                            })
                            .collect(),
                    },
                )
            })
            .collect();
        NodeFirewall {
            header,
            input_rules: Some(rules),
            nat_rules: (!nat.is_empty()).then_some(nat),
            extra: Map::new(),
        }
    }

    // -----------------------------------------------------------------------
    // Controller
    // -----------------------------------------------------------------------

    fn vpn_profile(&self, p: usize, profile: &ProfileM) -> VpnProfile {
        let spec = &profile.spec;
        let range = self.ctx.plan.client_range(self.id, p);
        let v2 = self.v2();
        VpnProfile {
            profile_number: Some(spec.profile_number),
            display_name: Some(spec.display_name.clone()),
            ext_if: Some(spec.ext_if.clone()),
            // 1.x NATs with useNat; 2.x with the node's natRules.
            use_nat: (!v2).then_some(!spec.nat.is_empty()),
            default_gateway: Some(spec.default_gateway),
            host_name: Some(spec.host_name.clone()),
            range: range.map(|r| r.range),
            range6: range.and_then(|r| r.range6),
            dns: (!spec.dns.is_empty())
                .then(|| spec.dns.iter().copied().map(DnsServer::Addr).collect()),
            use_proxy: if v2 {
                spec.use_proxy.then_some(true)
            } else {
                Some(spec.use_proxy)
            },
            listen: spec.listen,
            management_ip: spec.management_ip,
            hide_profile: spec.hide_profile.then_some(true),
            vpn_proto_ports: Some(
                spec.listeners
                    .iter()
                    .map(|l| ProtoPort {
                        proto: match l.proto {
                            ListenProto::Udp => EduProto::Udp,
                            ListenProto::Tcp => EduProto::Tcp,
                        },
                        port: l.port,
                    })
                    .collect(),
            ),
            ..VpnProfile::default()
        }
    }

    fn controller(&self, out: &mut Out, keys: &Keys) {
        let name = self.host_name(self.dep.controller);
        let header = self.comment_lines(out, name, &[self.header()]);
        let config = ServerApiConfig {
            header: header.clone(),
            api_consumers: None,
            use_vpn_daemon: self.v2().then_some(true),
            vpn_profiles: self
                .by_number()
                .into_iter()
                .map(|(p, profile)| (profile.id.clone(), self.vpn_profile(p, profile)))
                .collect(),
            extra: Map::new(),
        };
        if self.v2() {
            out.file(
                name,
                &format!("{API_CONFIG_DIR}/config.php"),
                MODE_CONFIG,
                PRODUCER_EDUVPN,
                config.emit(),
            );
        } else {
            out.file(
                name,
                &format!("{API_CONFIG_DIR}/{}/config.yaml", self.instance()),
                MODE_CONFIG,
                PRODUCER_EDUVPN,
                config.emit_yaml(),
            );
        }
        // Apache: the API only for the nodes (and the controller itself).
        let mut rules = vec![Require::Local];
        let mut seen = BTreeSet::new();
        for node in self.nodes_by_number() {
            for a in self.control_addresses(node) {
                if seen.insert(a) {
                    rules.push(Require::Ip(IpMatch::Addr(a)));
                }
            }
        }
        match (RequireAny::new(rules), SectionPath::new(APACHE_DIRECTORY)) {
            (Ok(require_any), Ok(path)) => {
                let access = ApacheAccess {
                    header,
                    section: Some(Section {
                        kind: SectionKind::Directory,
                        path,
                    }),
                    require_any,
                };
                out.file(
                    name,
                    APACHE_CONF,
                    MODE_CONFIG,
                    PRODUCER_EDUVPN,
                    access.emit(),
                );
            }
            (Err(e), _) | (_, Err(e)) => out.error(missing(self.what("Apache allow-list"), e.0)),
        }
        // tls-crypt keys as eduVPN keeps them (`ta.key` when shared).
        if self.dep.shared_tls_crypt {
            if let Some(Some(key)) = keys.tls_crypt.first() {
                out.file(
                    name,
                    "var/lib/vpn-server-api/ta.key",
                    MODE_SECRET,
                    PRODUCER,
                    key.file_text(),
                );
            }
        } else {
            for (profile, key) in self.dep.profiles.iter().zip(&keys.tls_crypt) {
                if let Some(key) = key {
                    out.file(
                        name,
                        &format!("var/lib/vpn-server-api/tls-crypt-{}.key", profile.id),
                        MODE_SECRET,
                        PRODUCER,
                        key.file_text(),
                    );
                }
            }
        }
        // vpn-daemon client certificate.
        if let Some(DaemonKeys {
            client: Some(client),
            ..
        }) = &keys.daemon
        {
            let dir = format!("{API_CONFIG_DIR}/vpn-daemon");
            out.file(
                name,
                &format!("{dir}/ca.crt"),
                MODE_CONFIG,
                PRODUCER,
                with_marker(self.ctx, client.ca_cert_pem()),
            );
            out.file(
                name,
                &format!("{dir}/vpn-daemon-client.crt"),
                MODE_CONFIG,
                PRODUCER,
                client.cert_file_text(),
            );
            out.file(
                name,
                &format!("{dir}/vpn-daemon-client.key"),
                MODE_SECRET,
                PRODUCER,
                client.key_file_text(),
            );
        }
    }

    // -----------------------------------------------------------------------
    // Clients
    // -----------------------------------------------------------------------

    fn remotes(&self, p: usize) -> Vec<Remote> {
        let profile = &self.dep.profiles[p];
        let remote = |host: &str, l: &Listener| Remote {
            host: host.to_string(),
            port: Some(l.port),
            proto: Some(match l.proto {
                ListenProto::Udp => Proto::Udp,
                ListenProto::Tcp => Proto::Tcp,
            }),
        };
        let mut remotes: Vec<Remote> = profile
            .spec
            .listeners
            .iter()
            .map(|l| remote(&profile.spec.host_name, l))
            .collect();
        // Profiles merged behind the same hostName (round robin): a client
        // may land on any of their nodes, so it also knows each node by
        // name, as long as they accept its tls-crypt key.
        let group: Vec<(usize, &ProfileM)> = self
            .dep
            .profiles
            .iter()
            .enumerate()
            .filter(|(q, other)| {
                *q == p
                    || (self.dep.shared_tls_crypt && other.spec.host_name == profile.spec.host_name)
            })
            .collect();
        let nodes: BTreeSet<HostId> = group.iter().map(|(_, q)| q.node).collect();
        if nodes.len() > 1 {
            for (_, q) in &group {
                let host = self.t.host(q.node);
                let addr = host
                    .dns_name
                    .clone()
                    .or_else(|| host.public_address.map(|a| a.to_string()));
                let Some(addr) = addr else { continue };
                if addr == profile.spec.host_name {
                    continue;
                }
                for l in &q.spec.listeners {
                    let r = remote(&addr, l);
                    if !remotes.contains(&r) {
                        remotes.push(r);
                    }
                }
            }
        }
        remotes
    }

    /// Whether profile `p`'s clients may land on several nodes (profiles
    /// merged behind one hostName sharing the tls-crypt key): then they
    /// pick a remote at random (`remote-random`), spreading the load. A
    /// client of one node tries its listeners in order instead, UDP first:
    /// TCP is the fall-back for networks that block UDP, not a coin toss,
    /// and the process it lands on decides its address.
    fn round_robin(&self, p: usize) -> bool {
        let Some(profile) = self.dep.profiles.get(p) else {
            return false;
        };
        let nodes: BTreeSet<HostId> = self
            .dep
            .profiles
            .iter()
            .enumerate()
            .filter(|(q, other)| {
                *q == p
                    || (self.dep.shared_tls_crypt && other.spec.host_name == profile.spec.host_name)
            })
            .map(|(_, q)| q.node)
            .collect();
        nodes.len() > 1
    }

    fn clients(&self, out: &mut Out, keys: &Keys) {
        for &(client, p) in &self.dep.clients {
            let name = self.host_name(client);
            let profile = &self.dep.profiles[p];
            let what = self.what(&format!("client {name} (profile {})", profile.id));
            let request = CertRequest::client(name);
            let request = CertRequest {
                entity: format!("client-{name}"),
                ..request
            };
            let Some(cert) = self.issue(out, &keys.ca, &request) else {
                continue;
            };
            let Some(Some(tls_crypt)) = keys.tls_crypt.get(p) else {
                continue;
            };
            let mut header = Vec::new();
            if let Some(marker) = self.ctx.keys.provenance().marker() {
                header.push(marker);
            }
            header.push(format!(
                "eduVPN profile {} ({}) for {name}",
                profile.id, profile.spec.display_name
            ));
            header.push(self.header());
            let extra: Result<Vec<Directive>, _> = [
                ("server-poll-timeout", vec!["10"]),
                ("tls-version-min", vec!["1.2"]),
                ("verb", vec!["3"]),
            ]
            .into_iter()
            .map(|(n, a)| Directive::new(n, a))
            .collect();
            let client_cfg = extra.map(|extra| Client {
                header,
                dev: Dev::new(CLIENT_DEVICE, None),
                proto: None,
                remotes: self.remotes(p),
                remote_random: self.round_robin(p),
                resolv_retry_infinite: true,
                nobind: true,
                liveness: Liveness::default(),
                tls: Tls {
                    ca: Material::Inline(cert.ca_cert_pem().to_string()),
                    cert: Material::Inline(cert.cert_pem().to_string()),
                    key: Material::Inline(cert.key_pem()),
                    dh: None,
                    tls_crypt: Some(Material::Inline(tls_crypt.block())),
                    remote_cert_tls: Some(CertUsage::Server),
                    verify_client_cert: None,
                    data_ciphers: DATA_CIPHERS.iter().map(|c| (*c).to_string()).collect(),
                },
                daemon: Daemon::default(),
                extra,
            });
            match client_cfg.and_then(|c| c.render()) {
                Ok(text) => out.file(
                    name,
                    &format!("etc/openvpn/client/{}-{}.conf", self.dep.name, profile.id),
                    MODE_SECRET,
                    PRODUCER,
                    text,
                ),
                Err(e) => out.error(missing(what, e.0)),
            }
        }
    }
}

/// A CA certificate file with the demo marker when the keys are demo keys.
fn with_marker(ctx: &Ctx, pem: &str) -> String {
    match ctx.key_marker("#") {
        Some(line) => format!("{line}\n{pem}"),
        None => pem.to_string(),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use vpnsim_plan::profile_device;
    use vpnsim_topology::units::Proto as P;

    fn l(proto: P, port: u16) -> Listener {
        Listener { proto, port }
    }

    #[test]
    fn process_zero_is_the_planned_device() {
        for n in [1, 2, 17, 4000] {
            assert_eq!(process_device(n, 0), profile_device(n));
        }
        assert_eq!(process_device(2, 1), "tun-2-1");
    }

    #[test]
    fn one_listener_keeps_the_whole_range() {
        let p = processes(
            1,
            &[l(P::Udp, 1194)],
            "10.1.0.0/25".parse().unwrap(),
            Some("fd00:1:1:1::/64".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].network, "10.1.0.0/25".parse::<Ipv4Net>().unwrap());
        assert_eq!(p[0].network6, Some("fd00:1:1:1::/64".parse().unwrap()));
        assert_eq!(p[0].management_port, 11940);
    }

    #[test]
    fn listeners_split_the_range_like_eduvpn() {
        let p = processes(
            2,
            &[l(P::Udp, 1194), l(P::Tcp, 1194), l(P::Tcp, 443)],
            "10.2.0.0/24".parse().unwrap(),
            Some("fd00:4242:4242::/48".parse().unwrap()),
        )
        .unwrap();
        let nets: Vec<String> = p.iter().map(|p| p.network.to_string()).collect();
        assert_eq!(nets, ["10.2.0.0/26", "10.2.0.64/26", "10.2.0.128/26"]);
        let nets6: Vec<String> = p.iter().map(|p| p.network6.unwrap().to_string()).collect();
        assert_eq!(
            nets6,
            [
                "fd00:4242:4242::/66",
                "fd00:4242:4242:0:4000::/66",
                "fd00:4242:4242:0:8000::/66"
            ]
        );
        let ports: Vec<u16> = p.iter().map(|p| p.management_port).collect();
        assert_eq!(ports, [11956, 11957, 11958]);
        let devs: Vec<&str> = p.iter().map(|p| p.device.as_str()).collect();
        assert_eq!(devs, ["tun-2-0", "tun-2-1", "tun-2-2"]);
    }

    #[test]
    fn too_small_ranges_are_errors() {
        assert!(
            processes(
                1,
                &[l(P::Udp, 1194), l(P::Tcp, 1194)],
                "10.0.0.0/29".parse().unwrap(),
                None
            )
            .is_err()
        );
        assert!(processes(1, &[], "10.0.0.0/24".parse().unwrap(), None).is_err());
        assert!(processes(5000, &[l(P::Udp, 1)], "10.0.0.0/24".parse().unwrap(), None).is_err());
    }

    fn client_conf(scenario: &str, host: &str, path: &str) -> String {
        use crate::hosts::{Options, generate};
        use vpnsim_keys::KeySource;
        let text = match scenario {
            "eduvpn-locations" => include_str!("../../../../scenarios/eduvpn-locations.toml"),
            _ => include_str!("../../../../scenarios/eduvpn-multinode.toml"),
        };
        let s = vpnsim_topology::load_str("s.toml", text).unwrap();
        let planned = vpnsim_plan::plan(&s);
        let keys = KeySource::demo(s.topology.seed);
        let set = generate(&s, &planned.plan, &keys, &Options::default()).unwrap();
        set.get(host, path).unwrap().contents.clone()
    }

    #[test]
    fn a_client_of_one_node_tries_its_listeners_in_order() {
        // One node behind the hostName: UDP first, TCP only when UDP does
        // not answer (the process it lands on decides its address).
        let one = client_conf(
            "eduvpn-locations",
            "laptop-europe",
            "etc/openvpn/client/eduvpn-europe.conf",
        );
        assert!(
            one.contains("remote europe.vpn.example 1194 udp\nremote europe.vpn.example 443 tcp\n"),
            "{one}"
        );
        assert!(!one.lines().any(|l| l == "remote-random"), "{one}");
        // Profiles merged behind one hostName (round robin): the client
        // picks a node at random.
        let merged = client_conf(
            "eduvpn-multinode",
            "client-1",
            "etc/openvpn/client/frkovpn-node-a.conf",
        );
        assert!(merged.lines().any(|l| l == "remote-random"), "{merged}");
    }
}

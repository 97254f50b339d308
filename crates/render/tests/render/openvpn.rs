//! OpenVPN and ifupdown files on the real tools.
//!
//! - A throwaway PKI (EC P-256 CA, server and client certificates made with
//!   the `openssl` CLI, a tls-crypt key from `openvpn --genkey`), a server
//!   config and a client profile with inline certificates written through
//!   `vpnsim_render::openvpn`, two network namespaces joined by a veth pair
//!   (192.0.2.1/24 and 192.0.2.2/24, addresses only inside the namespaces),
//!   both daemons started as child processes, then a ping through the
//!   tunnel (IPv4 and IPv6).
//! - The same for reference 004's point-to-point TAP link (`dev ovn0`,
//!   `dev-type tap`, `tls-server` / `tls-client`, pinned `lladdr`): the
//!   route-up script must run on both ends, the MACs must be the pinned
//!   ones, and the two ends must reach each other over the TAP devices.
//! - The files GENERATED from `scenarios/eduvpn-multinode.toml` (demo keys):
//!   node-a's server processes (`tun-1-0` on udp/1194, `tun-1-1` on
//!   tcp/1194) and client-1's profile come up in namespaces over a veth to
//!   "Initialization Sequence Completed" and ping the node's tunnel
//!   addresses. Only what a namespace needs is rewritten: the server's
//!   `/etc/...` file paths point into a temp copy of the generated files, and
//!   the client keeps one `remote` (the veth address, on the process's
//!   protocol); certificates, keys and tls-crypt stay as generated. Every
//!   generated certificate also passes `openssl verify` against its CA.
//! - ifupdown stanzas checked by `ifup --no-act` / `ifquery` against a
//!   private state directory inside a namespace; our parser must accept and
//!   reject the same texts as ifquery.
//!
//! Everything (daemons, namespaces, temp dirs) is cleaned up by Drop guards,
//! also when an assertion fails.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use vpnsim_render::Format;
use vpnsim_render::ifupdown::{self, Addressing, Bond, BondMode, IfName, Interfaces, Stanza};
use vpnsim_render::openvpn::{
    CertUsage, Client, Daemon, Dev, DevType, Dh, Liveness, Material, Proto, Push, Remote, Server,
    TapPeer, TapSide, Tls, Topology, VerifyClientCert,
};

use crate::netns::{Netns, require};
use crate::scenarios::generated;

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "vpnsim-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn p(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(program: &str, args: &[&str]) {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA, a server and a client certificate (EC P-256), and a tls-crypt key.
struct Pki {
    dir: TempDir,
}

impl Pki {
    fn new() -> Pki {
        require("openssl", "openssl");
        require("openvpn", "openvpn");
        let dir = TempDir::new("pki");
        let p = |n: &str| dir.p(n);
        let key = |name: &str| {
            run(
                "openssl",
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    &p(&format!("{name}.key")),
                ],
            );
        };
        key("ca");
        fs::write(
            dir.path("req.cnf"),
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n\
             [v3_ca]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
             subjectKeyIdentifier = hash\n",
        )
        .expect("write req.cnf");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                &p("ca.key"),
                "-config",
                &p("req.cnf"),
                "-extensions",
                "v3_ca",
                "-subj",
                "/CN=vpnsim test CA (throwaway)",
                "-days",
                "2",
                "-out",
                &p("ca.crt"),
            ],
        );
        for (name, eku) in [("server", "serverAuth"), ("client", "clientAuth")] {
            key(name);
            run(
                "openssl",
                &[
                    "req",
                    "-new",
                    "-key",
                    &p(&format!("{name}.key")),
                    "-subj",
                    &format!("/CN={name}"),
                    "-config",
                    &p("req.cnf"),
                    "-out",
                    &p(&format!("{name}.csr")),
                ],
            );
            fs::write(
                dir.path(&format!("{name}.ext")),
                format!("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyAgreement\nextendedKeyUsage={eku}\n"),
            )
            .expect("write ext");
            run(
                "openssl",
                &[
                    "x509",
                    "-req",
                    "-in",
                    &p(&format!("{name}.csr")),
                    "-CA",
                    &p("ca.crt"),
                    "-CAkey",
                    &p("ca.key"),
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &p(&format!("{name}.ext")),
                    "-out",
                    &p(&format!("{name}.crt")),
                ],
            );
        }
        run("openvpn", &["--genkey", "tls-crypt", &p("tls-crypt.key")]);
        Pki { dir }
    }

    fn file(&self, name: &str) -> Material {
        Material::File(self.dir.p(name))
    }

    fn inline(&self, name: &str) -> Material {
        Material::Inline(fs::read_to_string(self.dir.path(name)).expect("read PKI file"))
    }
}

/// Two namespaces joined by a veth pair, 192.0.2.1/24 and 192.0.2.2/24.
fn pair() -> (Netns, Netns) {
    require("ip", "iproute2");
    let a = Netns::new();
    let b = Netns::new();
    a.run(
        "ip",
        &[
            "link", "add", "veth0", "type", "veth", "peer", "name", "veth1", "netns", &b.name,
        ],
    );
    a.run("ip", &["addr", "add", "192.0.2.1/24", "dev", "veth0"]);
    b.run("ip", &["addr", "add", "192.0.2.2/24", "dev", "veth1"]);
    a.run("ip", &["link", "set", "veth0", "up"]);
    b.run("ip", &["link", "set", "veth1", "up"]);
    (a, b)
}

/// An OpenVPN daemon in a namespace, a child process of the test (killed on drop).
struct OpenVpn {
    child: Child,
    log: PathBuf,
}

impl OpenVpn {
    fn start(ns: &Netns, config: &Path, log: PathBuf) -> OpenVpn {
        let out = File::create(&log).expect("create log");
        let err = out.try_clone().expect("clone log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "openvpn", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start openvpn: {e}"));
        OpenVpn { child, log }
    }

    fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for OpenVpn {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SIGTERM first so OpenVPN runs its down scripts, then SIGKILL.
            let _ = Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .output();
            let deadline = deadline_after(5);
            while !passed(deadline) {
                if let Ok(Some(_)) = self.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

// Real daemons run in real time: these timeouts bound how long a test waits
// for a process, they never reach generated output.
#[allow(clippy::disallowed_methods)]
fn deadline_after(secs: u64) -> Instant {
    Instant::now() + Duration::from_secs(secs)
}

#[allow(clippy::disallowed_methods)]
fn passed(deadline: Instant) -> bool {
    Instant::now() > deadline
}

const READY: &str = "Initialization Sequence Completed";

/// Waits (at most 30 s) until every daemon logged READY.
fn wait_ready(daemons: &mut [&mut OpenVpn]) {
    let deadline = deadline_after(30);
    loop {
        let logs: Vec<String> = daemons.iter().map(|d| d.log()).collect();
        if logs.iter().all(|l| l.contains(READY)) {
            return;
        }
        let exited = daemons
            .iter_mut()
            .any(|d| matches!(d.child.try_wait(), Ok(Some(_))));
        if exited || passed(deadline) {
            let why = if exited {
                "an openvpn exited"
            } else {
                "timeout (30 s)"
            };
            panic!(
                "{why} before both said {READY:?}:\n{}",
                logs.join("\n----------\n")
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn ping(ns: &Netns, args: &[&str], logs: &[&OpenVpn]) {
    require("ping", "iputils-ping");
    let out = ns.output("ping", args);
    assert!(
        out.status.success(),
        "ping {args:?} failed:\n{}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        logs.iter()
            .map(|d| d.log())
            .collect::<Vec<_>>()
            .join("\n----------\n")
    );
}

#[test]
fn openvpn_server_and_inline_client_reach_each_other() {
    let (ns_server, ns_client) = pair();
    let pki = Pki::new();
    let dir = TempDir::new("ovpn-tun");

    // 001's node-a process: range 10.1.0.0/25, range6 fd00:1:1:1::/64.
    let server = Server {
        header: vec!["vpnsim real-tool test: eduVPN-style node server (throwaway keys)".into()],
        dev: Dev::new("tun-1-0", None),
        proto: Proto::Udp,
        port: 1194,
        local: Some("192.0.2.1".parse().expect("ip")),
        topology: Some(Topology::Subnet),
        network: Some("10.1.0.0/25".parse().expect("net")),
        network6: Some("fd00:1:1:1::/64".parse().expect("net6")),
        push: vec![
            Push::Route("10.99.0.0/16".parse().expect("net")),
            Push::Dns("9.9.9.9".parse().expect("ip")),
        ],
        pool_persist: None,
        liveness: Liveness {
            keepalive: Some((10, 60)),
            ..Liveness::default()
        },
        tls: Tls {
            ca: pki.file("ca.crt"),
            cert: pki.file("server.crt"),
            key: pki.file("server.key"),
            dh: Some(Dh::None),
            tls_crypt: Some(pki.file("tls-crypt.key")),
            remote_cert_tls: None,
            verify_client_cert: Some(VerifyClientCert::Require),
            data_ciphers: vec!["AES-256-GCM".into(), "CHACHA20-POLY1305".into()],
        },
        daemon: Daemon {
            script_security: Some(2),
            route_up: None,
            route_pre_down: None,
            writepid: Some(dir.p("server.pid")),
            management: Some(("127.0.0.1".parse().expect("ip"), 11940)),
        },
        extra: vec![],
    };
    let client = Client {
        header: vec![
            "vpnsim real-tool test: client profile with inline throwaway certificates".into(),
        ],
        dev: Dev::new("tun", None),
        proto: None,
        remotes: vec![Remote {
            host: "192.0.2.1".into(),
            port: Some(1194),
            proto: Some(Proto::Udp),
        }],
        remote_random: true,
        resolv_retry_infinite: true,
        nobind: true,
        liveness: Liveness::default(),
        tls: Tls {
            ca: pki.inline("ca.crt"),
            cert: pki.inline("client.crt"),
            key: pki.inline("client.key"),
            dh: None,
            tls_crypt: Some(pki.inline("tls-crypt.key")),
            remote_cert_tls: Some(CertUsage::Server),
            verify_client_cert: None,
            data_ciphers: vec!["AES-256-GCM".into(), "CHACHA20-POLY1305".into()],
        },
        daemon: Daemon::default(),
        extra: vec![],
    };
    let server_text = server.render().expect("render server");
    let client_text = client.render().expect("render client");
    assert_eq!(Server::parse(&server_text).expect("parse server"), server);
    assert_eq!(Client::parse(&client_text).expect("parse client"), client);
    fs::write(dir.path("server.conf"), &server_text).expect("write");
    fs::write(dir.path("client.conf"), &client_text).expect("write");

    let mut s = OpenVpn::start(&ns_server, &dir.path("server.conf"), dir.path("server.log"));
    let mut c = OpenVpn::start(&ns_client, &dir.path("client.conf"), dir.path("client.log"));
    wait_ready(&mut [&mut s, &mut c]);
    ping(
        &ns_client,
        &["-c", "3", "-i", "0.2", "-W", "2", "10.1.0.1"],
        &[&s, &c],
    );
    ping(
        &ns_client,
        &["-6", "-c", "3", "-i", "0.2", "-W", "2", "fd00:1:1:1::1"],
        &[&s, &c],
    );
    // The pushed route arrived.
    let routes = String::from_utf8_lossy(&ns_client.run("ip", &["route"]).stdout).into_owned();
    assert!(
        routes.contains("10.99.0.0/16"),
        "pushed route missing:\n{routes}"
    );
    assert!(
        fs::read_to_string(dir.path("server.pid")).is_ok_and(|p| !p.trim().is_empty()),
        "writepid"
    );
}

/// The generated file `host`/`path` of a scenario tree.
fn generated_file<'a>(files: &'a vpnsim_render::tree::FileSet, host: &str, path: &str) -> &'a str {
    match files.get(host, path) {
        Some(f) => &f.contents,
        None => panic!("the scenario generated no {host}/{path}"),
    }
}

/// Copies the generated file `host`/`path` under `dir` (same relative path)
/// and returns the copy's path.
fn copy_generated(
    files: &vpnsim_render::tree::FileSet,
    dir: &TempDir,
    host: &str,
    path: &str,
) -> PathBuf {
    let target = dir.0.join(host).join(path);
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(&target, generated_file(files, host, path)).expect("write");
    target
}

/// node-a's generated server process `device` and client-1's generated
/// profile (profile node-a), brought up over a veth in two namespaces.
/// Returns after both pinged through the tunnel.
fn eduvpn_multinode_process_comes_up(device: &str, proto: Proto) {
    require("openvpn", "openvpn");
    let files = generated("eduvpn-multinode");
    let (ns_server, ns_client) = pair();
    let dir = TempDir::new("eduvpn-ns");

    // Server: the generated config; its /etc paths point into the copy.
    let conf_path = format!("etc/openvpn/server/{device}.conf");
    let mut server =
        Server::parse(generated_file(&files, "node-a", &conf_path)).expect("parse server");
    assert_eq!(server.dev.name, device);
    let relocate = |m: &mut Material| {
        if let Material::File(p) = m {
            let rel = p.trim_start_matches('/').to_owned();
            *m = Material::File(
                copy_generated(&files, &dir, "node-a", &rel)
                    .display()
                    .to_string(),
            );
        }
    };
    relocate(&mut server.tls.ca);
    relocate(&mut server.tls.cert);
    relocate(&mut server.tls.key);
    server
        .tls
        .tls_crypt
        .as_mut()
        .map(relocate)
        .expect("server has tls-crypt");
    let network = server.network.expect("server pool");
    let network6 = server.network6.expect("server-ipv6 pool");
    let port = server.port;
    fs::write(dir.path("server.conf"), server.render().expect("render")).expect("write");

    // Client: the generated profile with one remote, the veth address.
    let mut client = Client::parse(generated_file(
        &files,
        "client-1",
        "etc/openvpn/client/frkovpn-node-a.conf",
    ))
    .expect("parse client");
    assert!(
        client
            .remotes
            .iter()
            .any(|r| r.host == "nodes.frkovpn.tuxed.net")
    );
    let wanted = if proto.is_udp() {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    assert!(
        client
            .remotes
            .iter()
            .any(|r| r.proto == Some(wanted) && r.port == Some(port)),
        "client-1's profile has no {wanted} remote on port {port}"
    );
    client.remotes = vec![Remote {
        host: "192.0.2.1".into(),
        port: Some(port),
        proto: Some(wanted),
    }];
    fs::write(dir.path("client.conf"), client.render().expect("render")).expect("write");

    // redirect-gateway def1 needs a default route to redirect.
    ns_client.run("ip", &["route", "add", "default", "via", "192.0.2.1"]);
    let mut s = OpenVpn::start(&ns_server, &dir.path("server.conf"), dir.path("server.log"));
    let mut c = OpenVpn::start(&ns_client, &dir.path("client.conf"), dir.path("client.log"));
    wait_ready(&mut [&mut s, &mut c]);
    for d in [&s, &c] {
        assert!(
            !d.log().contains("Completed With Errors"),
            "initialization had errors:\n{}",
            d.log()
        );
    }
    // The server's device is the planned one; the client's is CLIENT_DEVICE.
    ns_server.run("ip", &["link", "show", "dev", device]);
    ns_client.run("ip", &["link", "show", "dev", vpnsim_plan::CLIENT_DEVICE]);
    let gw4 = std::net::Ipv4Addr::from(u32::from(network.network()) + 1).to_string();
    let gw6 = std::net::Ipv6Addr::from(u128::from(network6.network()) + 1).to_string();
    ping(
        &ns_client,
        &["-c", "3", "-i", "0.2", "-W", "2", &gw4],
        &[&s, &c],
    );
    ping(
        &ns_client,
        &["-6", "-c", "3", "-i", "0.2", "-W", "2", &gw6],
        &[&s, &c],
    );
    // The pushed keepalive (the profile's ping 10 / ping-restart 60) reached
    // the client.
    let push_reply = c
        .log()
        .lines()
        .find(|l| l.contains("PUSH_REPLY"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        push_reply.contains(",ping 10,ping-restart 60,"),
        "no pushed keepalive:\n{}",
        c.log()
    );
    let routes = String::from_utf8_lossy(&ns_client.run("ip", &["route"]).stdout).into_owned();
    assert!(
        routes.contains("0.0.0.0/1") && routes.contains("128.0.0.0/1"),
        "redirect-gateway def1 was not applied:\n{routes}"
    );
}

#[test]
fn generated_eduvpn_multinode_udp_process_and_client_come_up() {
    eduvpn_multinode_process_comes_up("tun-1-0", Proto::Udp);
}

#[test]
fn generated_eduvpn_multinode_tcp_process_and_client_come_up() {
    eduvpn_multinode_process_comes_up("tun-1-1", Proto::TcpServer);
}

#[test]
fn generated_eduvpn_openvpn_configs_parse_back_to_the_same_bytes() {
    let mut servers = 0;
    let mut clients = 0;
    for scenario in ["eduvpn-multinode", "eduvpn-locations"] {
        for f in generated(scenario).files() {
            if f.path.starts_with("etc/openvpn/server/") && f.path.ends_with(".conf") {
                let s = Server::parse(&f.contents)
                    .unwrap_or_else(|e| panic!("{scenario} {}/{}: {e}", f.host, f.path));
                assert_eq!(s.render().expect("render"), f.contents);
                let device = f.path.trim_start_matches("etc/openvpn/server/");
                assert_eq!(format!("{}.conf", s.dev.name), device);
                servers += 1;
            } else if f.path.starts_with("etc/openvpn/client/") {
                assert_eq!(f.mode, vpnsim_render::tree::MODE_SECRET);
                let c = Client::parse(&f.contents)
                    .unwrap_or_else(|e| panic!("{scenario} {}/{}: {e}", f.host, f.path));
                assert_eq!(c.render().expect("render"), f.contents);
                assert_eq!(c.dev.name, vpnsim_plan::CLIENT_DEVICE);
                // Shuffled only where the profile's name leads to several
                // nodes (multinode's round-robin); a one-node client tries
                // its remotes in order, UDP before TCP.
                assert_eq!(
                    c.remote_random,
                    scenario == "eduvpn-multinode",
                    "{}",
                    f.host
                );
                clients += 1;
            }
        }
    }
    // Two processes (udp, tcp) per profile, 2 + 2 profiles; 4 + 2 clients.
    assert_eq!((servers, clients), (8, 6));
}

/// `openssl verify` of a certificate file against a CA file, with the
/// purpose the certificate is for.
fn openssl_verify(dir: &TempDir, name: &str, ca: &str, cert: &str, purpose: &str) {
    let ca_path = dir.path(&format!("{name}-ca.pem"));
    let cert_path = dir.path(&format!("{name}.pem"));
    fs::write(&ca_path, ca).expect("write");
    fs::write(&cert_path, cert).expect("write");
    let out = Command::new("openssl")
        .args(["verify", "-x509_strict", "-purpose", purpose, "-CAfile"])
        .arg(&ca_path)
        .arg(&cert_path)
        .output()
        .expect("openssl verify");
    assert!(
        out.status.success(),
        "openssl verify {name} ({purpose}):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn inline_text(m: &Material) -> &str {
    match m {
        Material::Inline(t) => t,
        Material::File(p) => panic!("expected an inline block, found file {p}"),
    }
}

#[test]
fn generated_eduvpn_certificates_verify_against_their_ca() {
    require("openssl", "openssl");
    let dir = TempDir::new("eduvpn-verify");
    let mut checked = 0;
    for scenario in ["eduvpn-multinode", "eduvpn-locations"] {
        let files = generated(scenario);
        let mut openvpn_ca = None;
        for f in files.files() {
            let Some(profile_dir) = f
                .path
                .strip_prefix("etc/openvpn/server/tls/")
                .and_then(|p| p.strip_suffix("/server.crt"))
            else {
                continue;
            };
            let ca = generated_file(
                &files,
                &f.host,
                &format!("etc/openvpn/server/tls/{profile_dir}/ca.crt"),
            );
            // One OpenVPN CA per deployment: every profile has the same.
            assert_eq!(*openvpn_ca.get_or_insert_with(|| ca.to_owned()), ca);
            openssl_verify(
                &dir,
                &format!("{scenario}-{profile_dir}"),
                ca,
                &f.contents,
                "sslserver",
            );
            checked += 1;
        }
        let ca = openvpn_ca.expect("an OpenVPN CA");
        for f in files
            .files()
            .filter(|f| f.path.starts_with("etc/openvpn/client/"))
        {
            let client = Client::parse(&f.contents).expect("client profile parses");
            assert_eq!(
                inline_text(&client.tls.ca),
                ca.lines()
                    .filter(|l| !l.starts_with('#'))
                    .map(|l| format!("{l}\n"))
                    .collect::<String>()
            );
            openssl_verify(
                &dir,
                &format!("{scenario}-{}", f.host),
                &ca,
                inline_text(&client.tls.cert),
                "sslclient",
            );
            checked += 1;
        }
    }
    // vpn-daemon: its own CA; the controller's client cert, each node's server cert.
    let files = generated("eduvpn-multinode");
    let ca = generated_file(&files, "controller", "etc/vpn-server-api/vpn-daemon/ca.crt");
    openssl_verify(
        &dir,
        "vpn-daemon-client",
        ca,
        generated_file(
            &files,
            "controller",
            "etc/vpn-server-api/vpn-daemon/vpn-daemon-client.crt",
        ),
        "sslclient",
    );
    for node in ["node-a", "node-b"] {
        assert_eq!(
            generated_file(&files, node, "etc/pki/vpn-daemon/ca.crt"),
            ca
        );
        openssl_verify(
            &dir,
            &format!("vpn-daemon-{node}"),
            ca,
            generated_file(&files, node, "etc/pki/vpn-daemon/server.crt"),
            "sslserver",
        );
        checked += 1;
    }
    // The vpn-daemon CA is not the OpenVPN CA.
    assert_ne!(
        ca,
        generated_file(&files, "node-a", "etc/openvpn/server/tls/node-a/ca.crt")
    );
    // 4 server certs, 6 client profiles, 2 vpn-daemon servers.
    assert_eq!(checked, 12);
}

fn tap_peer(
    pki: &Pki,
    dir: &TempDir,
    side: TapSide,
    mac: &str,
    cert: &str,
    up: &str,
    down: &str,
) -> TapPeer {
    let listen = matches!(side, TapSide::Listen { .. });
    TapPeer {
        header: vec!["vpnsim real-tool test: reference 004 TAP link end (throwaway keys)".into()],
        dev: Dev::new("ovn0", Some(DevType::Tap)),
        lladdr: Some(mac.parse().expect("mac")),
        proto: Proto::Udp,
        side,
        liveness: Liveness {
            keepalive: None,
            ping: Some(10),
            ping_restart: Some(60),
        },
        tls: Tls {
            ca: pki.file("ca.crt"),
            cert: pki.file(&format!("{cert}.crt")),
            key: pki.file(&format!("{cert}.key")),
            dh: listen.then_some(Dh::None),
            tls_crypt: Some(pki.file("tls-crypt.key")),
            remote_cert_tls: Some(if listen {
                CertUsage::Client
            } else {
                CertUsage::Server
            }),
            verify_client_cert: None,
            data_ciphers: vec!["AES-256-GCM".into(), "CHACHA20-POLY1305".into()],
        },
        daemon: Daemon {
            script_security: Some(2),
            route_up: Some(up.into()),
            route_pre_down: Some(down.into()),
            writepid: Some(dir.p(&format!("{cert}.pid"))),
            management: None,
        },
        extra: vec![],
    }
}

/// The route-up script: records `$dev` (as reference 004's ovn-to-bond.sh
/// gets it) and, with no bonding module in this kernel, puts the address the
/// bond would carry on the TAP device itself. Without `ifconfig` OpenVPN
/// leaves the TAP device down, so the script brings it up, as the
/// reference's script does after enslaving it.
fn up_script(dir: &TempDir, name: &str, address: &str) -> String {
    let path = dir.path(name);
    let marker = dir.p(&format!("{name}.ran"));
    fs::write(&path, format!("#!/bin/sh\nset -e\necho \"$dev\" > '{marker}'\nip addr add {address} dev \"$dev\"\nip link set dev \"$dev\" up\n"))
        .expect("write script");
    run("chmod", &["0755", &path.display().to_string()]);
    path.display().to_string()
}

fn mac_of(ns: &Netns, dev: &str) -> String {
    let out = String::from_utf8_lossy(&ns.run("ip", &["-o", "link", "show", "dev", dev]).stdout)
        .into_owned();
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_else(|| panic!("no link/ether in {out}"))
        .to_owned()
}

#[test]
fn openvpn_tap_pair_of_reference_004() {
    let (ns_b, ns_a) = pair();
    let pki = Pki::new();
    let dir = TempDir::new("ovpn-tap");
    let down = dir.path("ovn-remove-bond.sh");
    fs::write(&down, "#!/bin/sh\nexit 0\n").expect("write");
    run("chmod", &["0755", &down.display().to_string()]);
    let down = down.display().to_string();

    // ovn0: machine A dials machine B; B listens on udp/1194.
    let mac_a = "72:2d:a8:a3:a2:01";
    let mac_b = "02:5e:00:00:00:01";
    let listen = tap_peer(
        &pki,
        &dir,
        TapSide::Listen {
            local: Some("192.0.2.1".parse().expect("ip")),
            port: 1194,
        },
        mac_b,
        "server",
        &up_script(&dir, "up-b.sh", "10.0.0.2/24"),
        &down,
    );
    let dial = tap_peer(
        &pki,
        &dir,
        TapSide::Dial {
            remotes: vec![Remote {
                host: "192.0.2.1".into(),
                port: Some(1194),
                proto: None,
            }],
            nobind: true,
        },
        mac_a,
        "client",
        &up_script(&dir, "up-a.sh", "10.0.0.1/24"),
        &down,
    );
    for (peer, file) in [(&listen, "b.conf"), (&dial, "a.conf")] {
        let text = peer.render().expect("render tap");
        assert_eq!(&TapPeer::parse(&text).expect("parse tap"), peer);
        fs::write(dir.path(file), text).expect("write");
    }
    let mut b = OpenVpn::start(&ns_b, &dir.path("b.conf"), dir.path("b.log"));
    let mut a = OpenVpn::start(&ns_a, &dir.path("a.conf"), dir.path("a.log"));
    wait_ready(&mut [&mut b, &mut a]);
    // route-up runs right after initialization; give the scripts a moment.
    let deadline = deadline_after(10);
    while !(dir.path("up-a.sh.ran").exists() && dir.path("up-b.sh.ran").exists()) {
        assert!(
            !passed(deadline),
            "route-up scripts did not run:\n{}\n----------\n{}",
            a.log(),
            b.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        fs::read_to_string(dir.path("up-a.sh.ran"))
            .expect("marker")
            .trim(),
        "ovn0"
    );
    assert_eq!(mac_of(&ns_a, "ovn0"), mac_a);
    assert_eq!(mac_of(&ns_b, "ovn0"), mac_b);
    ping(
        &ns_a,
        &["-c", "3", "-i", "0.2", "-W", "2", "10.0.0.2"],
        &[&a, &b],
    );
    ping(
        &ns_b,
        &["-c", "3", "-i", "0.2", "-W", "2", "10.0.0.1"],
        &[&a, &b],
    );
}

/// Runs `ifquery`/`ifup` on a file with a private state directory, in a
/// namespace. Returns (success, output).
fn ifupdown(ns: &Netns, program: &str, file: &Path, state: &Path, args: &[&str]) -> (bool, String) {
    let mut all = vec![
        "-i".to_owned(),
        file.display().to_string(),
        "--state-dir".into(),
        state.display().to_string(),
    ];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = ns.output(program, &refs);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn ifupdown_stanzas_pass_ifup_no_act() {
    require("ifup", "ifupdown");
    require("ifquery", "ifupdown");
    let ns = Netns::new();
    let dir = TempDir::new("ifupdown");
    let state = dir.path("state");
    fs::create_dir_all(&state).expect("mkdir state");
    let n = |s: &str| IfName::new(s).expect("name");
    let slave = |name: &str, mac: &str| Stanza {
        name: n(name),
        auto: true,
        hotplug: true,
        addressing: Addressing::Manual,
        bond: None,
        hwaddress: Some(mac.parse().expect("mac")),
        mtu: None,
        hooks: vec![],
        extra: vec![],
    };
    let bond = Stanza {
        name: n("bond0"),
        auto: true,
        hotplug: true,
        addressing: Addressing::Static {
            address: "10.0.0.1/24".parse().expect("net"),
            gateway: None,
            metric: Some(1),
        },
        bond: Some(Bond {
            mode: Some(BondMode::BalanceAlb),
            miimon: Some(100),
            slaves: Some(vec![]),
            ..Bond::default()
        }),
        hwaddress: Some("16:b9:3f:58:cb:4c".parse().expect("mac")),
        mtu: Some(1500),
        hooks: vec![],
        extra: vec![],
    };
    let stanzas = [
        bond,
        slave("ovn0", "72:2d:a8:a3:a2:01"),
        slave("ovn1", "b2:0f:a3:5b:84:04"),
    ];
    let file = Interfaces::from_stanzas(&["vpnsim real-tool test: reference 004 bond"], &stanzas)
        .expect("stanzas");
    let path = dir.path("interfaces");
    fs::write(&path, file.emit()).expect("write");

    let (ok, out) = ifupdown(
        &ns,
        "ifup",
        &path,
        &state,
        &["--no-act", "--no-scripts", "-a"],
    );
    assert!(ok, "ifup --no-act rejected the file:\n{out}");
    assert!(out.contains("ip addr add 10.0.0.1/255.255.255.0"), "{out}");
    assert!(out.contains("address 16:b9:3f:58:cb:4c"), "{out}");
    let (ok, out) = ifupdown(&ns, "ifquery", &path, &state, &["bond0"]);
    assert!(ok, "ifquery bond0:\n{out}");
    for line in [
        "address: 10.0.0.1",
        "netmask: 255.255.255.0",
        "metric: 1",
        "bond-slaves: none",
        "bond-mode: balance-alb",
        "bond-miimon: 100",
        "hwaddress: 16:b9:3f:58:cb:4c",
        "mtu: 1500",
    ] {
        assert!(
            out.lines().any(|l| l == line),
            "ifquery bond0 lacks {line:?}:\n{out}"
        );
    }
    let (ok, out) = ifupdown(
        &ns,
        "ifquery",
        &path,
        &state,
        &["--list", "--allow", "hotplug"],
    );
    assert!(
        ok && out.lines().collect::<Vec<_>>() == ["bond0", "ovn0", "ovn1"],
        "{out}"
    );
    assert!(
        fs::read_dir(&state).expect("state").next().is_none(),
        "--no-act wrote state"
    );

    // Our parser accepts exactly what ifquery accepts.
    for text in [
        "auto x\niface x inet manual\n  up echo a # b\n",
        "iface x inet static\n  address 10.0.0.1/24\n  # c \\\n  mtu 3\n",
        "auto x\niface x inet manual\n  up echo \\\n  continued\n",
        "source /nonexistent/*\nsource-directory /nonexistent\n",
        "allow-hotplug x\niface x inet6 auto\n",
        "address 1.2.3.4\n",
        "iface x inet\n",
        "iface x inet auto\n",
        "iface x inet manual\n  mtu\n",
        "iface x\n",
    ] {
        let p = dir.path("case");
        fs::write(&p, text).expect("write");
        let (ok, out) = ifupdown(&ns, "ifquery", &p, &state, &["--list", "-a"]);
        let ours = ifupdown::Interfaces::parse(text);
        assert_eq!(ours.is_ok(), ok, "{text:?}: ours {ours:?}, ifquery:\n{out}");
    }
}

//! Real-tool acceptance of the WireGuard star's files and of the small
//! host files around it:
//! - wg-quick: `wg-quick strip` reads the emitted file, `wg setconf` loads
//!   it into a wireguard-go interface in a throwaway namespace, and
//!   `wg show dump` / `wg showconf` report exactly what the representation
//!   says; two namespaces joined by a veth pair complete a handshake and
//!   ping each other over the tunnel addresses;
//! - sysctl: `sysctl -p` applies the forwarding file inside a namespace;
//! - script: `sh -n` accepts every emitted script, and dash and bash run
//!   one with awkward words to the very bytes `Script::steps` predicts;
//! - monit: `monit -t` accepts the emitted control file and agrees with our
//!   parser on what it accepts.
//!
//! Every test cleans up: namespaces are deleted on drop, wireguard-go
//! children are stopped by PID in a drop guard, temp dirs are removed.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use vpnsim_render::Format;
use vpnsim_render::monit::{self, MonitConf};
use vpnsim_render::script::{self, Name, Redirect, RedirectOp, Script, Statement, Step, Word};
use vpnsim_render::sysctl::{Entry, SysctlConf};
use vpnsim_render::wgquick::{
    self, Endpoint, Interface, Peer, PublicKey, SecretKey, WgQuickConf, comments,
};

use vpnsim_render::tree::FileSet;
use vpnsim_render::zone::{RData, Zone};

use crate::netns::{Netns, require};
use crate::scenarios::{generated, generated_with};

static NEXT: AtomicU32 = AtomicU32::new(0);

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::SeqCst)
    )
}

/// A private directory under the temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(unique("vpnsim-wg-"));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        TempDir(path)
    }

    /// Writes a file (mode 0600) and returns its path.
    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed:\n{}{}",
        stdout(out),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `wg genkey` / `wg pubkey`: a fresh key pair from the real tool.
fn wg_keypair() -> (SecretKey, PublicKey) {
    let private = run("wg", &["genkey"]);
    assert_ok(&private, "wg genkey");
    let private = stdout(&private).trim().to_owned();
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("wg pubkey: {e}"));
    {
        use std::io::Write;
        let mut stdin = child
            .stdin
            .take()
            .unwrap_or_else(|| panic!("wg pubkey stdin"));
        stdin
            .write_all(private.as_bytes())
            .unwrap_or_else(|e| panic!("wg pubkey stdin: {e}"));
    }
    let public = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wg pubkey: {e}"));
    assert_ok(&public, "wg pubkey");
    (
        SecretKey::from_base64(&private).unwrap_or_else(|e| panic!("wg genkey output: {e}")),
        PublicKey::from_base64(stdout(&public).trim())
            .unwrap_or_else(|e| panic!("wg pubkey output: {e}")),
    )
}

fn wg_psk() -> SecretKey {
    let out = run("wg", &["genpsk"]);
    assert_ok(&out, "wg genpsk");
    SecretKey::from_base64(stdout(&out).trim()).unwrap_or_else(|e| panic!("wg genpsk output: {e}"))
}

fn net(text: &str) -> ipnet::IpNet {
    text.parse().unwrap_or_else(|e| panic!("{text}: {e}"))
}

fn endpoint(text: &str) -> Endpoint {
    Endpoint::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// A wireguard-go process serving one interface in a namespace; stopped by
/// its PID (SIGTERM, then SIGKILL) on drop, its UAPI socket removed.
struct WireguardGo {
    child: Child,
    interface: String,
}

// Wall-clock timeouts while waiting for real daemons, not product output.
#[allow(clippy::disallowed_methods)]
impl WireguardGo {
    fn start(ns: &Netns, interface: &str) -> WireguardGo {
        // `ip netns exec` execs the program itself, so the child is wireguard-go.
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "wireguard-go", "-f", interface])
            .env("WG_PROCESS_FOREGROUND", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("wireguard-go: {e}"));
        let mut wg = WireguardGo {
            child,
            interface: interface.to_owned(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let socket_ready = wg.socket().exists();
            let link_ready = ns
                .output("ip", &["link", "show", interface])
                .status
                .success();
            if socket_ready && link_ready {
                break;
            }
            if let Ok(Some(status)) = wg.child.try_wait() {
                panic!("wireguard-go for {interface} exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "wireguard-go did not create {interface} within 10 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        wg
    }

    fn socket(&self) -> PathBuf {
        Path::new("/var/run/wireguard").join(format!("{}.sock", self.interface))
    }
}

// Wall-clock timeouts while waiting for real daemons, not product output.
#[allow(clippy::disallowed_methods)]
impl Drop for WireguardGo {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .output();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(self.socket());
    }
}

/// `wg-quick strip` on the emitted file (named `<interface>.conf`, as
/// wg-quick requires); returns the path of the stripped file.
fn strip(dir: &TempDir, interface: &str, conf: &WgQuickConf) -> PathBuf {
    let path = dir.write(&format!("{interface}.conf"), &conf.emit());
    let path_str = path
        .to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 temp path"));
    let out = run("wg-quick", &["strip", path_str]);
    assert_ok(&out, "wg-quick strip");
    let stripped = stdout(&out);
    // What wg-quick leaves for wg is a file our parser reads as the same
    // keys and peers.
    let back = WgQuickConf::parse(&stripped)
        .unwrap_or_else(|e| panic!("parse wg-quick strip output: {e}\n{stripped}"));
    assert_eq!(back.interface.private_key, conf.interface.private_key);
    assert_eq!(back.interface.listen_port, conf.interface.listen_port);
    assert_eq!(
        back.peers.iter().map(|p| &p.public_key).collect::<Vec<_>>(),
        conf.peers.iter().map(|p| &p.public_key).collect::<Vec<_>>()
    );
    dir.write(&format!("{interface}.stripped"), &stripped)
}

/// One peer line of `wg show IF dump`.
#[derive(Debug, PartialEq, Eq)]
struct DumpPeer {
    public_key: String,
    preshared_key: String,
    endpoint: String,
    allowed_ips: String,
    latest_handshake: u64,
    persistent_keepalive: String,
}

fn dump(ns: &Netns, interface: &str) -> (Vec<String>, Vec<DumpPeer>) {
    let out = ns.run("wg", &["show", interface, "dump"]);
    let text = stdout(&out);
    let mut lines = text.lines();
    let head: Vec<String> = lines
        .next()
        .unwrap_or_default()
        .split('\t')
        .map(str::to_owned)
        .collect();
    let peers = lines
        .map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            assert_eq!(f.len(), 8, "unexpected dump line {line:?}");
            DumpPeer {
                public_key: f[0].to_owned(),
                preshared_key: f[1].to_owned(),
                endpoint: f[2].to_owned(),
                // Sorted: wireguard-go lists them in its trie's order.
                allowed_ips: {
                    let mut ips: Vec<&str> = f[3].split(',').collect();
                    ips.sort_unstable();
                    ips.join(",")
                },
                latest_handshake: f[4].parse().unwrap_or(0),
                persistent_keepalive: f[7].to_owned(),
            }
        })
        .collect();
    (head, peers)
}

/// What `wg show dump` prints for a peer of the representation (its
/// AllowedIPs already canonical).
fn expected_dump(peer: &Peer) -> DumpPeer {
    let mut allowed: Vec<String> = peer.allowed_ips.iter().map(ToString::to_string).collect();
    allowed.sort();
    DumpPeer {
        public_key: peer.public_key.to_base64(),
        preshared_key: peer
            .preshared_key
            .as_ref()
            .map_or("(none)".to_owned(), SecretKey::to_base64),
        endpoint: peer
            .endpoint
            .as_ref()
            .map_or("(none)".to_owned(), ToString::to_string),
        allowed_ips: if allowed.is_empty() {
            "(none)".to_owned()
        } else {
            allowed.join(",")
        },
        latest_handshake: 0,
        persistent_keepalive: match peer.persistent_keepalive {
            None | Some(0) => "off".to_owned(),
            Some(n) => n.to_string(),
        },
    }
}

/// The NethServer leader of reference 002 with three workers, keys from
/// `wg genkey`, endpoints as addresses (nothing resolves names here).
#[test]
fn wg_quick_hub_loads_into_wireguard_go() {
    require("wg", "wireguard-tools");
    require("wg-quick", "wireguard-tools");
    require("wireguard-go", "wireguard-go");
    require("ip", "iproute2");

    let (hub_key, hub_pub) = wg_keypair();
    let mut interface = Interface::new(hub_key);
    interface.addresses = vec![net("10.5.4.1/24"), net("fd00:5:4::1/64")];
    interface.listen_port = Some(55820);
    interface.fwmark = Some(0x51820);
    interface.mtu = Some(1420);
    interface.post_up = vec![
        wgquick::Hook::new("ip route add 10.99.0.0/16 dev %i").unwrap_or_else(|e| panic!("{e}")),
    ];
    let worker =
        |allowed: &[&str], ep: Option<&str>, keepalive: Option<u16>, psk: bool, comment: &str| {
            let (_, public_key) = wg_keypair();
            Peer {
                comments: comments(comment).unwrap_or_else(|e| panic!("{e}")),
                public_key,
                preshared_key: psk.then(wg_psk),
                allowed_ips: allowed.iter().map(|a| net(a)).collect(),
                endpoint: ep.map(endpoint),
                persistent_keepalive: keepalive,
            }
        };
    let conf = WgQuickConf {
        header: comments("Generated by vpnsim test: keys from wg genkey, discarded")
            .unwrap_or_else(|e| panic!("{e}")),
        interface,
        peers: vec![
            worker(
                &["10.5.4.2/32"],
                Some("178.128.169.93:55820"),
                Some(25),
                false,
                "node 2",
            ),
            worker(
                &["10.5.4.3/32", "fd00:5:4::3/128", "10.20.0.0/16"],
                Some("[2001:db8::3]:55820"),
                Some(25),
                true,
                "node 3",
            ),
            worker(
                &["10.5.4.4/32"],
                None,
                Some(0),
                false,
                "node 4: no endpoint yet",
            ),
        ],
    };
    assert_eq!(WgQuickConf::parse(&conf.emit()), Ok(conf.clone()));

    let dir = TempDir::new();
    let ns = Netns::new();
    let interface = unique("vsw");
    let stripped = strip(&dir, &interface, &conf);
    let wg = WireguardGo::start(&ns, &interface);
    let stripped_str = stripped
        .to_str()
        .unwrap_or_else(|| panic!("non-UTF-8 temp path"));
    ns.run("wg", &["setconf", &interface, stripped_str]);

    let (head, peers) = dump(&ns, &interface);
    assert_eq!(
        head,
        [
            conf.interface.private_key.to_base64(),
            hub_pub.to_base64(),
            "55820".to_owned(),
            "0x51820".to_owned()
        ]
    );
    let expected: Vec<DumpPeer> = conf.peers.iter().map(expected_dump).collect();
    let mut got = peers;
    got.sort_by(|a, b| a.public_key.cmp(&b.public_key));
    let mut want = expected;
    want.sort_by(|a, b| a.public_key.cmp(&b.public_key));
    assert_eq!(got, want);

    // `wg showconf` is a wg config too: our parser reads the running state
    // back as the peers we wrote.
    let showconf = stdout(&ns.run("wg", &["showconf", &interface]));
    let running = WgQuickConf::parse(&showconf)
        .unwrap_or_else(|e| panic!("parse wg showconf: {e}\n{showconf}"));
    assert_eq!(running.interface.private_key, conf.interface.private_key);
    assert_eq!(running.interface.fwmark, conf.interface.fwmark);
    for peer in &conf.peers {
        let back = running
            .peer(&peer.public_key)
            .unwrap_or_else(|| panic!("peer {} missing in showconf", peer.public_key));
        let sorted = |ips: &[ipnet::IpNet]| {
            let mut ips = ips.to_vec();
            ips.sort();
            ips
        };
        assert_eq!(sorted(&back.allowed_ips), sorted(&peer.allowed_ips));
        assert_eq!(back.endpoint, peer.endpoint);
        assert_eq!(back.preshared_key, peer.preshared_key);
        assert_eq!(
            back.persistent_keepalive.unwrap_or(0),
            peer.persistent_keepalive.unwrap_or(0)
        );
    }

    // wg and our parser agree on what they refuse.
    let key = conf.interface.private_key.to_base64();
    let peer = hub_pub.to_base64();
    for bad in [
        format!("[Interface]\nPrivateKey = {key}\nListenPot = 1\n"),
        format!("[Interface]\nPrivateKey = {}\n", &key[..40]),
        format!(
            "[Interface]\nPrivateKey = {key}\n[Peer]\nPublicKey = {peer}\nEndpoint = 192.0.2.1\n"
        ),
        format!(
            "[Interface]\nPrivateKey = {key}\n[Peer]\nPublicKey = {peer}\nPersistentKeepalive = 65536\n"
        ),
        format!(
            "[Interface]\nPrivateKey = {key}\n[Peer]\nPublicKey = {peer}\nAllowedIPs = 10.0.0.0/33\n"
        ),
        format!("[Interface]\nPrivateKey = {key}\n[Peer]\nAllowedIPs = 10.0.0.0/8\n"),
    ] {
        assert!(
            WgQuickConf::parse(&bad).is_err(),
            "our parser accepts {bad:?}"
        );
        let path = dir.write("bad.conf", &bad);
        let out = ns.output(
            "wg",
            &["setconf", &interface, path.to_str().unwrap_or_default()],
        );
        assert!(!out.status.success(), "wg setconf accepts {bad:?}");
    }
    drop(wg);
}

/// Hub and worker in two namespaces joined by a veth pair: both load their
/// emitted files, the worker pings the hub over the tunnel, and the hub
/// learns the worker's endpoint from the handshake.
#[test]
// Wall-clock timeouts while waiting for real daemons, not product output.
#[allow(clippy::disallowed_methods)]
fn wg_quick_star_handshake_over_veth() {
    require("wg", "wireguard-tools");
    require("wg-quick", "wireguard-tools");
    require("wireguard-go", "wireguard-go");
    require("ip", "iproute2");
    require("ping", "iputils-ping");

    let hub_ns = Netns::new();
    let worker_ns = Netns::new();
    hub_ns.run(
        "ip",
        &[
            "link",
            "add",
            "v0",
            "type",
            "veth",
            "peer",
            "name",
            "v1",
            "netns",
            &worker_ns.name,
        ],
    );
    hub_ns.run("ip", &["address", "add", "192.0.2.1/24", "dev", "v0"]);
    hub_ns.run("ip", &["link", "set", "v0", "up"]);
    worker_ns.run("ip", &["address", "add", "192.0.2.2/24", "dev", "v1"]);
    worker_ns.run("ip", &["link", "set", "v1", "up"]);

    let (hub_key, hub_pub) = wg_keypair();
    let (worker_key, worker_pub) = wg_keypair();
    let psk = wg_psk();
    let mut hub_if = Interface::new(hub_key);
    hub_if.addresses = vec![net("10.5.4.1/24")];
    hub_if.listen_port = Some(55820);
    let hub = WgQuickConf {
        header: comments("leader").unwrap_or_else(|e| panic!("{e}")),
        interface: hub_if,
        peers: vec![Peer {
            comments: vec![],
            public_key: worker_pub,
            preshared_key: Some(psk.clone()),
            allowed_ips: vec![net("10.5.4.2/32")],
            endpoint: None,
            persistent_keepalive: None,
        }],
    };
    let mut worker_if = Interface::new(worker_key);
    worker_if.addresses = vec![net("10.5.4.2/24")];
    worker_if.listen_port = Some(55820);
    let worker = WgQuickConf {
        header: comments("worker").unwrap_or_else(|e| panic!("{e}")),
        interface: worker_if,
        peers: vec![Peer {
            comments: vec![],
            public_key: hub_pub,
            preshared_key: Some(psk),
            allowed_ips: vec![net("10.5.4.0/24")],
            endpoint: Some(endpoint("192.0.2.1:55820")),
            persistent_keepalive: Some(25),
        }],
    };

    let dir = TempDir::new();
    let mut daemons = Vec::new();
    let mut names = Vec::new();
    for (ns, conf) in [(&hub_ns, &hub), (&worker_ns, &worker)] {
        let interface = unique("vsw");
        let stripped = strip(&dir, &interface, conf);
        daemons.push(WireguardGo::start(ns, &interface));
        ns.run(
            "wg",
            &["setconf", &interface, stripped.to_str().unwrap_or_default()],
        );
        // What wg-quick does with Address, from the file read back.
        let back = WgQuickConf::parse(&conf.emit()).unwrap_or_else(|e| panic!("{e}"));
        for address in &back.interface.addresses {
            ns.run(
                "ip",
                &["address", "add", &address.to_string(), "dev", &interface],
            );
        }
        ns.run("ip", &["link", "set", &interface, "up"]);
        names.push(interface);
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = worker_ns.output("ping", &["-c", "1", "-W", "1", "10.5.4.1"]);
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no ping over the tunnel:\n{}",
            stdout(&out)
        );
    }
    let (_, peers) = dump(&hub_ns, &names[0]);
    assert_eq!(peers.len(), 1);
    assert!(peers[0].latest_handshake > 0, "no handshake: {peers:?}");
    assert_eq!(
        peers[0].endpoint, "192.0.2.2:55820",
        "the hub learns the worker's endpoint by roaming"
    );
    drop(daemons);
}

/// Reference 003's forwarding settings, applied by procps inside a
/// namespace (net.* keys are per network namespace).
#[test]
fn sysctl_p_applies_the_forwarding_file() {
    require("sysctl", "procps");
    require("ip", "iproute2");
    let entry = |k: &str, v: &str| Entry::new(k, v).unwrap_or_else(|e| panic!("{e}"));
    // `-key`: systemd-sysctl ignores a failure to set it; procps 4.0.2
    // (Debian 12) takes the prefix but still reports a missing key, so
    // the key exists here.
    let mut optional = entry("net.ipv4.conf.all.rp_filter", "2");
    optional.ignore_errors = true;
    let conf = SysctlConf {
        header: comments("Generated by vpnsim test").unwrap_or_else(|e| panic!("{e}")),
        entries: vec![
            entry("net.ipv4.ip_forward", "1"),
            entry("net.ipv4.conf.all.accept_redirects", "0"),
            entry("net.ipv4.conf.all.send_redirects", "0"),
            entry("net/ipv6/conf/all/forwarding", "1"),
            optional,
        ],
    };
    let text = conf.emit();
    assert_eq!(SysctlConf::parse(&text), Ok(conf.clone()));
    let dir = TempDir::new();
    let path = dir.write("90-vpnsim.conf", &text);
    let ns = Netns::new();
    ns.run("sysctl", &["-p", path.to_str().unwrap_or_default()]);
    for (key, want) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.accept_redirects", "0"),
        ("net.ipv4.conf.all.send_redirects", "0"),
        ("net.ipv6.conf.all.forwarding", "1"),
        ("net.ipv4.conf.all.rp_filter", "2"),
    ] {
        assert_eq!(
            stdout(&ns.run("sysctl", &["-n", key])).trim(),
            want,
            "{key}"
        );
        assert_eq!(conf.get(key).map(|v| v.as_str()), Some(want), "{key}");
    }
    // A key the namespace lacks is an error.
    let missing = SysctlConf {
        header: vec![],
        entries: vec![entry("net.ipv4.conf.vpnsim0.rp_filter", "2")],
    };
    let path = dir.write("91-missing.conf", &missing.emit());
    assert!(
        !ns.output("sysctl", &["-p", path.to_str().unwrap_or_default()])
            .status
            .success()
    );
}

fn t(text: &str) -> Word {
    Word::template(text).unwrap_or_else(|e| panic!("{e}"))
}

fn cmd(program: &str, args: &[Word], redirects: Vec<Redirect>) -> Statement {
    Statement::Command(script::Command {
        program: t(program),
        args: args.to_vec(),
        redirects,
    })
}

/// Reference 004's bond scripts and reference 002's promotion procedure.
fn reference_scripts() -> Vec<Script> {
    let bond = Statement::Assign {
        name: Name::new("BONDING_INTERFACE").unwrap_or_else(|e| panic!("{e}")),
        value: t("bond0"),
    };
    let slaves = |sign: &str| {
        cmd(
            "echo",
            &[t(&format!("{sign}$dev"))],
            vec![Redirect {
                fd: None,
                op: RedirectOp::Write,
                target: t("/sys/class/net/$BONDING_INTERFACE/bonding/slaves"),
            }],
        )
    };
    let to_bond = Script {
        interpreter: script::Interpreter::sh(),
        header: comments("ovn-to-bond.sh").unwrap_or_else(|e| panic!("{e}")),
        body: vec![
            bond.clone(),
            Statement::sleep(10),
            cmd("/usr/sbin/ifconfig", &[t("$dev"), t("down")], vec![]),
            slaves("+"),
            cmd("/usr/sbin/ifconfig", &[t("$dev"), t("up")], vec![]),
        ],
    };
    let remove = Script {
        interpreter: script::Interpreter::sh(),
        header: comments("ovn-remove-bond.sh").unwrap_or_else(|e| panic!("{e}")),
        body: vec![bond, slaves("-")],
    };
    let promote = Script {
        interpreter: script::Interpreter::sh(),
        header: comments("dead leader: run on every worker").unwrap_or_else(|e| panic!("{e}")),
        body: vec![
            Statement::command(&[
                "switch-leader",
                "--node",
                "3",
                "--endpoint",
                "node3.example.com:55820",
            ])
            .unwrap_or_else(|e| panic!("{e}")),
            Statement::command(&["wg-quick", "save", "wg0"]).unwrap_or_else(|e| panic!("{e}")),
            Statement::command(&["systemctl", "reload", "wg-quick@wg0"])
                .unwrap_or_else(|e| panic!("{e}")),
            Statement::command(&[
                "api-cli",
                "run",
                "promote-node",
                "--data",
                r#"{"node_id":3, "endpoint_address":"node3.example.com", "endpoint_port":55820}"#,
            ])
            .unwrap_or_else(|e| panic!("{e}")),
        ],
    };
    vec![to_bond, remove, promote]
}

/// Words that need every kind of quoting, plus pseudo-random ones.
fn awkward_words() -> Vec<String> {
    let mut words: Vec<String> = [
        "",
        " ",
        "plain",
        "two words",
        "it's",
        "\"dq\"",
        "$HOME",
        "${x}",
        "`id`",
        "\\",
        "\\n",
        "a\\",
        "#hash",
        "a#b",
        "*",
        "?",
        "[a]",
        "~",
        "~/x",
        "a=b",
        "if",
        "{",
        "}",
        "!",
        "-n",
        "-e",
        "%s",
        "é ü",
        "日本",
        ";",
        "&&",
        "|",
        "(x)",
        "<",
        ">",
        "2>&1",
        "'",
        "''",
        "\"",
        "$",
        "$$",
        "$1",
        "x$",
        "tab\there",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .filter(|s| !s.chars().any(char::is_control))
    .collect();
    // A fixed xorshift stream over printable ASCII and a few other letters.
    let mut state: u64 = 0x5eed_1234_abcd_9876;
    let alphabet: Vec<char> = (' '..='~').chain(['é', 'ß', '€', '日']).collect();
    for _ in 0..120 {
        let mut word = String::new();
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let len = (state % 12) as usize;
        for _ in 0..len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            word.push(alphabet[(state % alphabet.len() as u64) as usize]);
        }
        words.push(word);
    }
    words
}

#[test]
fn sh_accepts_every_emitted_script_and_runs_them_as_modelled() {
    require("sh", "dash");
    require("bash", "bash");
    let dir = TempDir::new();
    let mut scripts = reference_scripts();

    // printf each awkward word on its own line into $OUT, and echo one into
    // $SLAVES the way the bond script does.
    let words: Vec<Word> = awkward_words()
        .iter()
        .map(|w| Word::literal(w).unwrap_or_else(|e| panic!("{w:?}: {e}")))
        .collect();
    let mut args = vec![t("%s\\n")];
    args.extend(words.iter().cloned());
    args.push(t("$dev"));
    args.push(t("pre${dev}post"));
    let awkward = Script {
        interpreter: script::Interpreter::sh(),
        header: comments("awkward words").unwrap_or_else(|e| panic!("{e}")),
        body: vec![
            Statement::Assign {
                name: Name::new("X").unwrap_or_else(|e| panic!("{e}")),
                value: t("it's $dev"),
            },
            cmd(
                "printf",
                &args,
                vec![Redirect {
                    fd: None,
                    op: RedirectOp::Write,
                    target: t("$OUT"),
                }],
            ),
            cmd(
                "echo",
                &[t("+$X")],
                vec![Redirect {
                    fd: None,
                    op: RedirectOp::Append,
                    target: t("$SLAVES"),
                }],
            ),
            cmd(
                "ls",
                &[t("/nonexistent-vpnsim")],
                vec![Redirect {
                    fd: Some(2),
                    op: RedirectOp::Write,
                    target: t("/dev/null"),
                }],
            ),
            Statement::sleep(0),
        ],
    };
    scripts.push(awkward.clone());

    for (i, s) in scripts.iter().enumerate() {
        let text = s.emit();
        assert_eq!(Script::parse(&text), Ok(s.clone()));
        let path = dir.write(&format!("s{i}.sh"), &text);
        for shell in ["sh", "bash"] {
            let out = run(shell, &["-n", path.to_str().unwrap_or_default()]);
            assert_ok(&out, &format!("{shell} -n on\n{text}"));
        }
    }

    // Run the awkward script for real and compare with Script::steps.
    let path = dir.write("awkward.sh", &awkward.emit());
    for shell in ["sh", "bash"] {
        let out_file = dir.0.join(format!("{shell}.out"));
        let slaves_file = dir.0.join(format!("{shell}.slaves"));
        let env: BTreeMap<String, String> = [
            ("OUT".to_owned(), out_file.to_string_lossy().into_owned()),
            (
                "SLAVES".to_owned(),
                slaves_file.to_string_lossy().into_owned(),
            ),
            ("dev".to_owned(), "ovn0".to_owned()),
        ]
        .into();
        let out = Command::new(shell)
            .arg(&path)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .envs(&env)
            .output()
            .unwrap_or_else(|e| panic!("{shell}: {e}"));
        assert_ok(&out, &format!("{shell} awkward.sh"));
        let steps = awkward.steps(&env);
        let Step::Run(printf) = &steps[0] else {
            panic!("printf is not a command")
        };
        let expected: String = printf.argv[2..].iter().map(|w| format!("{w}\n")).collect();
        let written =
            std::fs::read_to_string(&out_file).unwrap_or_else(|e| panic!("{shell} output: {e}"));
        assert_eq!(
            written, expected,
            "{shell} printed other words than modelled"
        );
        let Step::Run(echo) = &steps[1] else {
            panic!("echo is not a command")
        };
        let (target, data, append) = echo
            .echo_to_file()
            .unwrap_or_else(|| panic!("echo writes no file"));
        assert_eq!(Path::new(target), slaves_file);
        assert!(append);
        assert_eq!(
            std::fs::read_to_string(&slaves_file).unwrap_or_default(),
            data
        );
        assert_eq!(data, "+it's ovn0\n");
        assert_eq!(steps.last(), Some(&Step::Sleep(Duration::ZERO)));
    }
}

/// Reference 004's two monit files, merged into one with a poll cycle.
fn reference_monit() -> MonitConf {
    let program = |verb: &str, dev: &str| {
        Some(
            monit::Program::new(&format!("/usr/bin/systemctl {verb} openvpn@{dev}"))
                .unwrap_or_else(|e| panic!("{e}")),
        )
    };
    let mut services = Vec::new();
    for dev in ["ovn0", "ovn1"] {
        services.push(monit::Service {
            name: monit::ServiceName::new(format!("{dev}-pid")).unwrap_or_else(|e| panic!("{e}")),
            kind: monit::ServiceKind::Process {
                pidfile: monit::AbsPath::new(format!("/run/openvpn/{dev}.pid"))
                    .unwrap_or_else(|e| panic!("{e}")),
            },
            start: program("start", dev),
            stop: program("stop", dev),
        });
        services.push(monit::Service {
            name: monit::ServiceName::new(dev).unwrap_or_else(|e| panic!("{e}")),
            kind: monit::ServiceKind::Host {
                address: wgquick::Host::parse("10.0.0.2").unwrap_or_else(|e| panic!("{e}")),
                checks: vec![monit::IcmpCheck {
                    ping: monit::Ping::IcmpEcho,
                    count: Some(5),
                    timeout: Some(15),
                    cycles: None,
                    action: monit::Action::Restart,
                }],
            },
            start: program("start", dev),
            stop: program("stop", dev),
        });
    }
    MonitConf {
        header: comments("Generated by vpnsim test").unwrap_or_else(|e| panic!("{e}")),
        daemon: Some(monit::Daemon {
            interval: std::num::NonZeroU16::MIN.saturating_add(29),
            start_delay: None,
        }),
        services,
    }
}

/// `monit -t -c FILE`, with HOME in `dir` so monit's id file lands there.
fn monit_accepts(dir: &TempDir, text: &str) -> (bool, String) {
    let path = dir.write("monitrc", text);
    let out = Command::new("monit")
        .args(["-t", "-c", path.to_str().unwrap_or_default()])
        .env("HOME", &dir.0)
        .output()
        .unwrap_or_else(|e| panic!("monit: {e}"));
    (
        out.status.success(),
        format!("{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr)),
    )
}

#[test]
fn monit_accepts_the_emitted_control_file() {
    require("monit", "monit");
    let dir = TempDir::new();
    let conf = reference_monit();
    let text = conf.emit();
    assert_eq!(MonitConf::parse(&text), Ok(conf));
    let (ok, output) = monit_accepts(&dir, &text);
    assert!(ok, "monit -t rejects\n{text}\n{output}");
    assert!(output.contains("Control file syntax OK"), "{output}");

    // monit and our parser agree on these.
    let daemon = "set daemon 30\n";
    for (body, accepted) in [
        (
            "check host ovn0 with address 10.0.0.2 start program = \"/bin/true\" if failed icmp type echo count 5 with timeout 15 seconds then restart\n",
            true,
        ),
        (
            "CHECK HOST 'gw' ADDRESS fe80::1\n if failed ping4 count 2 timeout 3 seconds 2 cycles then alert\n",
            true,
        ),
        (
            "check process a pidfile \"/run/a b.pid\"\n start \"/bin/true\" with timeout 9 seconds\n stop program \"/bin/true\"\n",
            true,
        ),
        ("check host x with address 10.0.0.2\n", false),
        (
            "check host x with address 10.0.0.2\n failed icmp type echo then restart\n",
            false,
        ),
        (
            "check host x with address 10.0.0.2\n if failed icmp echo then restart\n",
            false,
        ),
        (
            "check host x with address 10.0.0.2\n if failed ping with timeout 15 sec then restart\n",
            false,
        ),
        (
            "check host x with address 10.0.0.2\n if failed ping count 5 restart\n",
            false,
        ),
        ("check process a with pidfile run/a.pid\n", false),
        (
            "check process a with pidfile /a\ncheck process A with pidfile /b\n",
            false,
        ),
        (
            "check process a with pidfile /a\n if failed ping then restart\n",
            false,
        ),
        (
            "check process a with pidfile /a\n start program = '/bin/true'\n",
            false,
        ),
    ] {
        let text = format!("{daemon}{body}");
        let (monit_ok, output) = monit_accepts(&dir, &text);
        assert_eq!(monit_ok, accepted, "monit on {text:?}: {output}");
        assert_eq!(
            MonitConf::parse(&text).is_ok(),
            accepted,
            "our parser on {text:?}: {:?}",
            MonitConf::parse(&text)
        );
    }
}

// ---------------------------------------------------------------------------
// The files generated from the shipped wireguard-star scenario (reference
// 002): every wg-quick file is accepted by wg-quick and wg, every peer key is
// the partner's real public key, and the promotion scripts turn the running
// star into exactly the file set `--promote` generates.
// ---------------------------------------------------------------------------

const STAR: &str = "wireguard-star";
const STAR_IFACE: &str = "wg0";

fn promote(host: Option<&str>) -> vpnsim_render::hosts::Options {
    vpnsim_render::hosts::Options {
        promote: host.map(str::to_owned),
    }
}

/// Every member's generated `etc/wireguard/wg0.conf`: text and parsed value.
fn star_confs(set: &FileSet) -> BTreeMap<String, (String, WgQuickConf)> {
    let path = format!("etc/wireguard/{STAR_IFACE}.conf");
    set.files()
        .filter(|f| f.path == path)
        .map(|f| {
            assert_eq!(f.mode, 0o600, "{}/{} must be 0600", f.host, f.path);
            let conf = WgQuickConf::parse(&f.contents)
                .unwrap_or_else(|e| panic!("{}/{}: {e}\n{}", f.host, f.path, f.contents));
            assert_eq!(
                conf.emit(),
                f.contents,
                "{}/{} is not what the representation emits",
                f.host,
                f.path
            );
            (f.host.clone(), (f.contents.clone(), conf))
        })
        .collect()
}

/// `wg pubkey` on a private key.
fn pubkey_of(private: &SecretKey) -> PublicKey {
    let mut child = Command::new("wg")
        .arg("pubkey")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("wg pubkey: {e}"));
    {
        use std::io::Write;
        let mut stdin = child
            .stdin
            .take()
            .unwrap_or_else(|| panic!("wg pubkey stdin"));
        stdin
            .write_all(private.to_base64().as_bytes())
            .unwrap_or_else(|e| panic!("wg pubkey stdin: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wg pubkey: {e}"));
    assert_ok(&out, "wg pubkey");
    PublicKey::from_base64(stdout(&out).trim()).unwrap_or_else(|e| panic!("wg pubkey: {e}"))
}

/// Name → address from the generated zone files (the A records), so that
/// `wg` can resolve DNS endpoints such as `node3.example.com` inside a
/// namespace without any real DNS.
fn zone_names(set: &FileSet) -> BTreeMap<String, std::net::IpAddr> {
    let mut names = BTreeMap::new();
    for f in set.files().filter(|f| f.producer == "zone") {
        let zone = Zone::parse(&f.contents).unwrap_or_else(|e| panic!("{}: {e}", f.path));
        for record in &zone.records {
            if let RData::A(a) = record.data {
                names
                    .entry(record.owner.as_str().to_owned())
                    .or_insert(std::net::IpAddr::V4(a));
            }
        }
    }
    names
}

/// `/etc/netns/<ns>/hosts`, which `ip netns exec` bind-mounts over
/// `/etc/hosts` for the namespace's commands only; removed on drop.
struct NetnsHosts(PathBuf);

impl NetnsHosts {
    fn new(ns: &Netns, names: &BTreeMap<String, std::net::IpAddr>) -> NetnsHosts {
        let dir = Path::new("/etc/netns").join(&ns.name);
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let guard = NetnsHosts(dir);
        let mut text = String::from("127.0.0.1 localhost\n");
        for (name, ip) in names {
            text.push_str(&format!("{ip} {name}\n"));
        }
        std::fs::write(guard.0.join("hosts"), text).unwrap_or_else(|e| panic!("hosts: {e}"));
        guard
    }
}

impl Drop for NetnsHosts {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        // Leave /etc/netns itself only if something else uses it.
        let _ = std::fs::remove_dir(Path::new("/etc/netns"));
    }
}

/// A peer as `wg show dump` prints it once DNS endpoints are resolved.
fn resolved_dump(peer: &Peer, names: &BTreeMap<String, std::net::IpAddr>) -> DumpPeer {
    let mut peer = peer.clone();
    if let Some(ep) = &mut peer.endpoint
        && let wgquick::Host::Name(name) = &ep.host
    {
        let ip = names
            .get(name.as_str())
            .unwrap_or_else(|| panic!("{name} is in no generated zone"));
        ep.host = wgquick::Host::Ip(*ip);
    }
    expected_dump(&peer)
}

fn sorted_dump(mut peers: Vec<DumpPeer>) -> Vec<DumpPeer> {
    peers.sort_by(|a, b| a.public_key.cmp(&b.public_key));
    peers
}

/// A generated file running in wireguard-go: namespace (with the zone's
/// names in its /etc/hosts), daemon, interface name. Fields drop in
/// declaration order: the daemon first, then the hosts file, then the
/// namespace.
struct Running {
    _wg: WireguardGo,
    _hosts: NetnsHosts,
    ns: Netns,
    interface: String,
}

/// `wg-quick strip` on the generated text (written as `<if>.conf`), then
/// `wg setconf` into a fresh wireguard-go interface in its own namespace.
fn load_generated(
    dir: &TempDir,
    text: &str,
    names: &BTreeMap<String, std::net::IpAddr>,
) -> Running {
    let ns = Netns::new();
    let hosts = NetnsHosts::new(&ns, names);
    let interface = unique("vsw");
    let path = dir.write(&format!("{interface}.conf"), text);
    let out = run(
        "wg-quick",
        &[
            "strip",
            path.to_str().unwrap_or_else(|| panic!("temp path")),
        ],
    );
    assert_ok(&out, "wg-quick strip");
    let stripped = dir.write(&format!("{interface}.stripped"), &stdout(&out));
    let wg = WireguardGo::start(&ns, &interface);
    ns.run(
        "wg",
        &["setconf", &interface, stripped.to_str().unwrap_or_default()],
    );
    Running {
        _wg: wg,
        _hosts: hosts,
        ns,
        interface,
    }
}

impl Running {
    fn dump(&self) -> (Vec<String>, Vec<DumpPeer>) {
        dump(&self.ns, &self.interface)
    }
}

/// Checks the star shape and the keys of one generated file set: `hub`
/// peers with every other member under the partner's real public key (from
/// `wg pubkey` on the partner's own file), every other member has exactly
/// the hub as peer, and no two peers of one file share AllowedIPs.
fn check_star_keys(confs: &BTreeMap<String, (String, WgQuickConf)>, hub: &str) {
    let pubs: BTreeMap<&str, PublicKey> = confs
        .iter()
        .map(|(host, (_, conf))| (host.as_str(), pubkey_of(&conf.interface.private_key)))
        .collect();
    let host_of: BTreeMap<PublicKey, &str> = pubs.iter().map(|(h, k)| (*k, *h)).collect();
    assert_eq!(host_of.len(), confs.len(), "two members share a key");
    for (host, (_, conf)) in confs {
        let mut seen = std::collections::BTreeSet::new();
        for peer in &conf.peers {
            for ip in &peer.allowed_ips {
                assert!(seen.insert(*ip), "{host}: AllowedIPs {ip} on two peers");
            }
        }
        if host == hub {
            let want: std::collections::BTreeSet<PublicKey> = pubs
                .iter()
                .filter(|(h, _)| **h != hub)
                .map(|(_, k)| *k)
                .collect();
            let got: std::collections::BTreeSet<PublicKey> =
                conf.peers.iter().map(|p| p.public_key).collect();
            assert_eq!(
                got, want,
                "{host}: the hub's peers are not every other member"
            );
            for peer in &conf.peers {
                let partner = host_of[&peer.public_key];
                let (_, partner_conf) = &confs[partner];
                for address in &partner_conf.interface.addresses {
                    let host_prefix = ipnet::IpNet::from(address.addr());
                    assert!(
                        peer.allowed_ips.contains(&host_prefix),
                        "{host}: peer {partner} lacks {host_prefix}"
                    );
                }
            }
        } else {
            assert_eq!(
                conf.peers.len(),
                1,
                "{host}: a worker peers with the hub only"
            );
            let peer = &conf.peers[0];
            assert_eq!(
                peer.public_key, pubs[hub],
                "{host}: its hub peer's PublicKey is not {hub}'s public key"
            );
            for address in &conf.interface.addresses {
                assert!(
                    peer.allowed_ips.contains(&address.trunc()),
                    "{host}: the hub peer does not route the overlay {}",
                    address.trunc()
                );
            }
            assert!(peer.endpoint.is_some(), "{host}: no endpoint for the hub");
            assert_eq!(peer.persistent_keepalive, Some(25), "{host}: keepalive");
        }
    }
}

#[test]
fn shipped_star_files_load_into_wireguard_go_with_partner_keys() {
    require("wg", "wireguard-tools");
    require("wg-quick", "wireguard-tools");
    require("wireguard-go", "wireguard-go");
    require("ip", "iproute2");
    let dir = TempDir::new();
    for (promoted, hub) in [
        (None, "node1"),
        (Some("node3"), "node3"),
        (Some("node2"), "node2"),
    ] {
        let set = generated_with(STAR, &promote(promoted));
        let confs = star_confs(&set);
        assert_eq!(
            confs.keys().map(String::as_str).collect::<Vec<_>>(),
            ["node1", "node2", "node3", "node4"],
            "promote {promoted:?}"
        );
        check_star_keys(&confs, hub);
        let names = zone_names(&set);
        for (host, (text, conf)) in &confs {
            let running = load_generated(&dir, text, &names);
            let (head, peers) = running.dump();
            assert_eq!(head[0], conf.interface.private_key.to_base64(), "{host}");
            assert_eq!(
                head[1],
                pubkey_of(&conf.interface.private_key).to_base64(),
                "{host}"
            );
            assert_eq!(head[2], "55820", "{host}: listening port");
            let want: Vec<DumpPeer> = conf
                .peers
                .iter()
                .map(|p| resolved_dump(p, &names))
                .collect();
            assert_eq!(
                sorted_dump(peers),
                sorted_dump(want),
                "promote {promoted:?}: {host}: `wg show dump` differs from the file"
            );
            // `wg show` names every peer of the file.
            let show = stdout(&running.ns.run("wg", &["show", &running.interface]));
            for peer in &conf.peers {
                assert!(
                    show.contains(&format!("peer: {}", peer.public_key)),
                    "{host}: wg show lacks {}:\n{show}",
                    peer.public_key
                );
            }
        }
    }
}

/// The promotion scripts (old leader alive and dead, both candidates):
/// `sh -n` accepts them, they hold public keys only, and running their
/// `wg set` steps on the interfaces loaded from the scenario's files leaves
/// each interface exactly as the `--promote` file set describes it.
#[test]
fn promotion_scripts_turn_the_running_star_into_the_promoted_files() {
    require("wg", "wireguard-tools");
    require("wg-quick", "wireguard-tools");
    require("wireguard-go", "wireguard-go");
    require("ip", "iproute2");
    require("sh", "dash");
    let dir = TempDir::new();
    let base = generated(STAR);
    let base_confs = star_confs(&base);
    let names = zone_names(&base);
    let privates: Vec<String> = base_confs
        .values()
        .map(|(_, c)| c.interface.private_key.to_base64())
        .collect();
    let mut scripts_run = 0;
    for candidate in ["node2", "node3"] {
        let target = star_confs(&generated_with(STAR, &promote(Some(candidate))));
        for procedure in ["alive", "dead"] {
            let path = format!("usr/local/sbin/vpnsim-promote-cluster-{candidate}-{procedure}.sh");
            let hosts: Vec<&str> = base
                .files()
                .filter(|f| f.path == path)
                .map(|f| f.host.as_str())
                .collect();
            let want_hosts: Vec<&str> = if procedure == "alive" {
                vec!["node1", "node2", "node3", "node4"]
            } else {
                vec!["node2", "node3", "node4"]
            };
            assert_eq!(hosts, want_hosts, "{path}");
            for host in hosts {
                let file = base
                    .get(host, &path)
                    .unwrap_or_else(|| panic!("{host}/{path}"));
                assert_eq!(file.mode, 0o755, "{host}/{path}");
                for private in &privates {
                    assert!(
                        !file.contents.contains(private.as_str()),
                        "{host}/{path} holds a private key"
                    );
                }
                let script =
                    Script::parse(&file.contents).unwrap_or_else(|e| panic!("{host}/{path}: {e}"));
                assert_eq!(script.emit(), file.contents);
                let on_disk = dir.write("promote.sh", &file.contents);
                assert_ok(
                    &run("sh", &["-n", on_disk.to_str().unwrap_or_default()]),
                    &format!("sh -n {host}/{path}"),
                );

                let (text, _) = &base_confs[host];
                let running = load_generated(&dir, text, &names);
                let steps = script.steps(&BTreeMap::new());
                let last = steps.len().saturating_sub(1);
                for (i, step) in steps.iter().enumerate() {
                    let Step::Run(invocation) = step else {
                        panic!("{host}/{path}: unexpected sleep");
                    };
                    let argv: Vec<&str> = invocation.argv.iter().map(String::as_str).collect();
                    match argv.as_slice() {
                        ["set", "-e"] => {}
                        ["wg-quick", "save", iface] => {
                            // Persisting would write the real /etc/wireguard.
                            assert_eq!(*iface, STAR_IFACE);
                            assert_eq!(i, last, "{host}/{path}: save must come last");
                        }
                        ["wg", "set", iface, rest @ ..] => {
                            assert_eq!(*iface, STAR_IFACE);
                            let mut args = vec!["set", running.interface.as_str()];
                            args.extend(rest);
                            running.ns.run("wg", &args);
                        }
                        other => panic!("{host}/{path}: unexpected command {other:?}"),
                    }
                }
                let (_, peers) = running.dump();
                let (_, want) = &target[host];
                let want: Vec<DumpPeer> = want
                    .peers
                    .iter()
                    .map(|p| resolved_dump(p, &names))
                    .collect();
                assert_eq!(
                    sorted_dump(peers),
                    sorted_dump(want),
                    "{host}: after {path} the interface is not the promoted file"
                );
                scripts_run += 1;
            }
        }
    }
    assert_eq!(scripts_run, 14);
}

/// Golden snapshots of the WireGuard files after `--promote` (the scenario
/// snapshots cover the file set as written).
#[test]
fn promoted_star_files_match_their_snapshots() {
    for candidate in ["node2", "node3"] {
        let set = generated_with(STAR, &promote(Some(candidate)));
        for file in set
            .files()
            .filter(|f| f.producer == "wgquick" || f.producer == "script")
        {
            let snapshot = format!(
                "{STAR}-promote-{candidate}__{}__{}",
                file.host,
                file.path.replace('/', "_")
            );
            insta::with_settings!({ snapshot_path => "snapshots/scenarios", prepend_module_to_snapshot => false, omit_expression => true, description => format!("{STAR} --promote {candidate}: {}/{} (mode {:o}, {})", file.host, file.path, file.mode, file.producer) }, {
                insta::assert_snapshot!(snapshot, file.contents);
            });
        }
    }
}

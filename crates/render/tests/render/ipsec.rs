//! The IPsec family of `aws-three-regions` fed to the real tools:
//! - Libreswan: `ipsec addconn --checkconfig` reads every gateway's
//!   `ipsec.conf` with its conn files; then pluto runs on all three
//!   gateways in throwaway namespaces joined by an "internet" namespace that
//!   does AWS's 1:1 NAT (private address <-> elastic IP), and the hub's
//!   tunnels to both spokes negotiate: IKE SA established (PSK and IDs
//!   agree) and the quick-mode proposal accepted (traffic selectors and
//!   proposals agree). The ESP SA itself is not required: kernels without
//!   ESP support refuse to install it.
//! - strongSwan: charon (unpacked from Debian's strongswan-charon and
//!   strongswan-libcharon, which conflict with libreswan, into a separate
//!   root bind-mounted over /usr/lib/ipsec in a private mount namespace)
//!   loads every gateway's swanctl file through vici with `swanctl
//!   --load-all`, and refuses a broken one.
//! - sysctl: `sysctl -p` applies a gateway's forwarding file in a namespace.
//! - Consistency: every tunnel's PSK is the same on both ends (Libreswan
//!   and strongSwan files), left/right on one end mirror the other end, the
//!   route tables match the scenario, every file parses back with its
//!   module's parser, and Terraform parses with ours (`terraform fmt
//!   -check` too, ignored by default: terraform is not a Debian package).

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use vpnsim_render::Format;
use vpnsim_render::cloud::{IdRef, RouteTables, TerraformFile};
use vpnsim_render::libreswan::{ConnFile, Endpoint, IpsecConf, SecretEntry, Secrets};
use vpnsim_render::swanctl::SwanctlConf;
use vpnsim_render::sysctl::SysctlConf;
use vpnsim_render::tree::{FileSet, MODE_SECRET};

use super::netns::{Netns, require};
use super::scenarios::generated;

const SCENARIO: &str = "aws-three-regions";
/// Gateway, private address, elastic IP (scenario and reference 003).
const GATEWAYS: [(&str, &str, &str); 3] = [
    ("vpn-virginia", "10.11.4.5", "198.51.100.10"),
    ("vpn-sydney", "12.11.4.5", "203.0.113.20"),
    ("vpn-eu", "13.11.4.5", "192.0.2.30"),
];

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "vpnsim-ipsec-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TempDir(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }

    fn write(&self, rel: &str, contents: &str) -> PathBuf {
        let path = self.0.join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
        std::fs::write(&path, contents).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A daemon started by a test, killed by its PID on drop.
struct Daemon {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(name: &str, mut command: Command, log: PathBuf) -> Daemon {
        let file = std::fs::File::create(&log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = file.try_clone().unwrap_or_else(|e| panic!("{e}"));
        let child = command
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("start {name}: {e}"));
        Daemon {
            name: name.to_string(),
            child,
            log,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits until the log holds every needle, or fails with the log.
    #[allow(clippy::disallowed_methods)] // waits on a real daemon
    fn wait_for(&mut self, needles: &[&str], within: Duration) {
        let start = Instant::now();
        loop {
            let log = self.log();
            if needles.iter().all(|n| log.contains(n)) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited ({status}) before logging {needles:?}:\n{log}",
                    self.name
                );
            }
            if start.elapsed() > within {
                panic!("{}: no {needles:?} within {within:?}:\n{log}", self.name);
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(program: &str, args: &[&str]) -> std::process::Output {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn file<'a>(files: &'a FileSet, host: &str, path: &str) -> &'a str {
    files
        .get(host, path)
        .unwrap_or_else(|| panic!("{host}/{path} was not generated"))
        .contents
        .as_str()
}

fn conn_files<'a>(files: &'a FileSet, host: &str) -> Vec<(&'a str, &'a str)> {
    files
        .files()
        .filter(|f| f.host == host && f.path.starts_with("etc/ipsec.d/"))
        .map(|f| {
            (
                f.path.trim_start_matches("etc/ipsec.d/"),
                f.contents.as_str(),
            )
        })
        .collect()
}

/// A gateway's Libreswan files under `dir`, with `/etc/ipsec.d` pointing
/// there; returns the paths of ipsec.conf and ipsec.secrets.
fn libreswan_tree(files: &FileSet, host: &str, dir: &TempDir) -> (PathBuf, PathBuf) {
    let d = dir.path().join("ipsec.d");
    let d = d.to_str().unwrap_or_default();
    let conf = file(files, host, "etc/ipsec.conf").replace("/etc/ipsec.d", d);
    assert_ne!(
        conf,
        file(files, host, "etc/ipsec.conf"),
        "no include of /etc/ipsec.d"
    );
    let secrets = file(files, host, "etc/ipsec.secrets").replace("/etc/ipsec.d", d);
    for (name, contents) in conn_files(files, host) {
        dir.write(&format!("ipsec.d/{name}"), contents);
    }
    (
        dir.write("ipsec.conf", &conf),
        dir.write("ipsec.secrets", &secrets),
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap_or_default()
}

#[test]
fn libreswan_addconn_checkconfig_accepts_every_gateway() {
    require("ipsec", "libreswan");
    let files = generated(SCENARIO);
    let ns = Netns::new();
    for (host, _, _) in GATEWAYS {
        let dir = TempDir::new("checkconfig");
        let (conf, _) = libreswan_tree(&files, host, &dir);
        let out = ns.run(
            "ipsec",
            &["addconn", "--checkconfig", "--config", path_str(&conf)],
        );
        // addconn reports some problems (e.g. an authby= IKEv1 cannot use)
        // with exit status 0: only silence is a pass.
        assert!(text(&out).trim().is_empty(), "{host}: {}", text(&out));
        // The check really reads the conn files: a bad value fails it.
        let (name, contents) = conn_files(&files, host)
            .into_iter()
            .find(|(n, _)| n.ends_with(".conf"))
            .unwrap_or_else(|| panic!("{host}: no conn file"));
        dir.write(
            &format!("ipsec.d/{name}"),
            &contents.replace("authby=secret", "authby=sekret"),
        );
        let out = ns.output(
            "ipsec",
            &["addconn", "--checkconfig", "--config", path_str(&conf)],
        );
        assert!(
            !out.status.success() || !text(&out).trim().is_empty(),
            "{host}: a broken conn passed"
        );
    }
}

/// Three gateways behind 1:1 NAT, as in AWS: each in its own namespace with
/// only its private address; the "internet" namespace maps each elastic IP
/// to the private address (DNAT in, SNAT out) and routes between them.
#[test]
// Real daemons keep wall-clock time: the waits are bounded by it.
#[allow(clippy::disallowed_methods)]
fn libreswan_hub_and_spokes_negotiate_through_one_to_one_nat() {
    require("ipsec", "libreswan");
    require("certutil", "libnss3-tools");
    require("iptables", "iptables");
    let files = generated(SCENARIO);
    let internet = Netns::new();
    internet.run("sysctl", &["-qw", "net.ipv4.ip_forward=1"]);
    let mut nss = Vec::new();
    let mut daemons = BTreeMap::new();
    for (i, (host, private, public)) in GATEWAYS.iter().enumerate() {
        let ns = Netns::new();
        let (inside, outside) = (format!("gw{i}"), format!("up{i}"));
        run(
            "ip",
            &[
                "link",
                "add",
                &inside,
                "netns",
                &ns.name,
                "type",
                "veth",
                "peer",
                "name",
                &outside,
                "netns",
                &internet.name,
            ],
        );
        let router = private
            .rsplit_once('.')
            .map(|(net, _)| format!("{net}.1"))
            .unwrap_or_default();
        ns.run(
            "ip",
            &["addr", "add", &format!("{private}/24"), "dev", &inside],
        );
        ns.run("ip", &["link", "set", &inside, "up"]);
        ns.run("ip", &["route", "add", "default", "via", &router]);
        internet.run(
            "ip",
            &["addr", "add", &format!("{router}/24"), "dev", &outside],
        );
        internet.run("ip", &["link", "set", &outside, "up"]);
        internet.run(
            "iptables",
            &[
                "-t",
                "nat",
                "-A",
                "PREROUTING",
                "-d",
                public,
                "-j",
                "DNAT",
                "--to-destination",
                private,
            ],
        );
        internet.run(
            "iptables",
            &[
                "-t",
                "nat",
                "-A",
                "POSTROUTING",
                "-s",
                private,
                "-j",
                "SNAT",
                "--to-source",
                public,
            ],
        );

        let dir = TempDir::new(host);
        let (conf, secrets) = libreswan_tree(&files, host, &dir);
        let nssdir = dir.path().join("nss");
        std::fs::create_dir_all(&nssdir).unwrap_or_else(|e| panic!("{e}"));
        run("ipsec", &["initnss", "--nssdir", path_str(&nssdir)]);
        let rundir = dir.path().join("run");
        std::fs::create_dir_all(&rundir).unwrap_or_else(|e| panic!("{e}"));
        let mut cmd = Command::new("ip");
        cmd.args([
            "netns",
            "exec",
            &ns.name,
            "/usr/libexec/ipsec/pluto",
            "--nofork",
            "--stderrlog",
        ])
        .args([
            "--config",
            path_str(&conf),
            "--secretsfile",
            path_str(&secrets),
        ])
        .args(["--rundir", path_str(&rundir), "--nssdir", path_str(&nssdir)])
        .args(["--ipsecdir", path_str(&dir.path().join("ipsec.d"))]);
        let daemon = Daemon::start(host, cmd, dir.path().join("pluto.log"));
        daemons.insert(*host, daemon);
        nss.push((ns, dir));
    }
    // auto=start: the hub and the spokes initiate; each tunnel must come up
    // from both sides' point of view.
    let within = Duration::from_secs(30);
    for (host, conn) in [
        ("vpn-virginia", "vpc1-to-vpc2"),
        ("vpn-virginia", "vpc1-to-vpc3"),
        ("vpn-sydney", "vpc2-to-vpc1"),
        ("vpn-eu", "vpc3-to-vpc1"),
    ] {
        let d = daemons.get_mut(host).unwrap_or_else(|| panic!("{host}"));
        let start = Instant::now();
        loop {
            let log = d.log();
            let established = log.lines().any(|l| {
                l.contains(&format!("\"{conn}\" #"))
                    && l.contains("IKE SA established")
                    && l.contains("auth=PRESHARED_KEY")
            });
            let quick = log.lines().any(|l| {
                l.contains(&format!("\"{conn}\" #"))
                    && (l.contains("responding to Quick Mode proposal")
                        || l.contains("IPsec SA established"))
            });
            if established && quick {
                break;
            }
            assert!(
                start.elapsed() < within,
                "{host}: {conn} did not negotiate:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        assert!(
            !d.log().contains("no connection is known"),
            "{host}:\n{}",
            d.log()
        );
    }
    // Spokes do not talk to each other: no conn between them exists.
    for (host, _, _) in &GATEWAYS[1..] {
        let log = daemons.get(host).map(Daemon::log).unwrap_or_default();
        assert!(
            !log.contains("vpc2-to-vpc3") && !log.contains("vpc3-to-vpc2"),
            "{host}:\n{log}"
        );
    }
    drop(daemons);
    drop(nss);
}

/// Debian's strongswan-charon and strongswan-libcharon unpacked (they
/// conflict with libreswan, so they are not installed): from
/// `VPNSIM_STRONGSWAN_ROOT` if set, else fetched once with `apt-get
/// download` into the test target directory.
fn strongswan_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        if let Some(root) = std::env::var_os("VPNSIM_STRONGSWAN_ROOT") {
            return PathBuf::from(root);
        }
        let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("strongswan-root");
        if root.join("usr/lib/ipsec/charon").is_file() {
            return root;
        }
        require("apt-get", "apt");
        require("dpkg-deb", "dpkg");
        let debs = TempDir::new("debs");
        let out = Command::new("apt-get")
            .args(["download", "strongswan-charon", "strongswan-libcharon"])
            .current_dir(debs.path())
            .output()
            .unwrap_or_else(|e| panic!("apt-get download: {e}"));
        assert!(
            out.status.success(),
            "apt-get download strongswan-charon strongswan-libcharon:\n{}",
            text(&out)
        );
        let staging = root.with_extension("tmp");
        let _ = std::fs::remove_dir_all(&staging);
        for deb in std::fs::read_dir(debs.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .flatten()
        {
            run(
                "dpkg-deb",
                &["-x", path_str(&deb.path()), path_str(&staging)],
            );
        }
        std::fs::rename(&staging, &root).unwrap_or_else(|e| panic!("{e}"));
        root
    })
}

/// charon in its own namespace and mount namespace: `/usr/lib/ipsec` is the
/// installed libstrongswan plus the unpacked charon, `/run` a tmpfs, the
/// vici socket in `dir`.
#[allow(clippy::disallowed_methods)] // waits on a real daemon
fn start_charon(ns: &Netns, dir: &TempDir) -> (Daemon, String, PathBuf) {
    let root = strongswan_root();
    let merged = dir.path().join("lib-ipsec");
    run("cp", &["-a", "/usr/lib/ipsec/.", path_str(&merged)]);
    run(
        "cp",
        &[
            "-a",
            path_str(&root.join("usr/lib/ipsec/.")),
            path_str(&merged),
        ],
    );
    let uri = format!("unix://{}", path_str(&dir.path().join("charon.vici")));
    let conf = dir.write(
        "strongswan.conf",
        &format!(
            "charon {{\n  load = random nonce aes sha1 sha2 hmac kdf gmp pem pkcs1 x509 pubkey vici kernel-netlink socket-default\n  install_routes = no\n  plugins {{\n    vici {{\n      socket = {uri}\n    }}\n  }}\n  filelog {{\n    stderr {{\n      default = 1\n    }}\n  }}\n}}\nswanctl {{\n  load = pem pkcs1 x509 pubkey random\n}}\n"
        ),
    );
    let script = format!(
        "mount -t tmpfs none /run && mount --bind {} /usr/lib/ipsec && exec /usr/lib/ipsec/charon",
        path_str(&merged)
    );
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns",
        "exec",
        &ns.name,
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &script,
    ])
    .env("STRONGSWAN_CONF", &conf);
    let mut daemon = Daemon::start("charon", cmd, dir.path().join("charon.log"));
    daemon.wait_for(&["loaded plugins", "spawning"], Duration::from_secs(20));
    // The vici socket appears once the plugin is up.
    let socket = dir.path().join("charon.vici");
    let start = Instant::now();
    while !socket.exists() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no vici socket:\n{}",
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (daemon, uri, conf)
}

#[test]
fn strongswan_swanctl_loads_every_gateway_file() {
    require("swanctl", "strongswan-swanctl");
    require("unshare", "util-linux");
    let files = generated(SCENARIO);
    for (host, _, _) in GATEWAYS {
        let ns = Netns::new();
        let dir = TempDir::new("charon");
        let (daemon, uri, conf) = start_charon(&ns, &dir);
        let contents = file(&files, host, "etc/swanctl/conf.d/aws-vpn.conf");
        let parsed = SwanctlConf::parse(contents).unwrap_or_else(|e| panic!("{host}: {e}"));
        let path = dir.write("swanctl/aws-vpn.conf", contents);
        let swanctl = |args: &[&str]| {
            Command::new("ip")
                .args(["netns", "exec", &ns.name, "swanctl"])
                .args(args)
                .args(["--uri", &uri])
                .env("STRONGSWAN_CONF", &conf)
                .output()
                .unwrap_or_else(|e| panic!("swanctl: {e}"))
        };
        let out = swanctl(&["--load-all", "--file", path_str(&path)]);
        let log = text(&out);
        assert!(
            out.status.success(),
            "{host}: swanctl --load-all:\n{log}\n{}",
            daemon.log()
        );
        let n = parsed.connections.len();
        assert!(
            log.contains(&format!("successfully loaded {n} connections")),
            "{host}:\n{log}"
        );
        for s in &parsed.secrets {
            assert!(
                log.contains(&format!("loaded ike secret '{}'", s.name.as_str())),
                "{host}:\n{log}"
            );
        }
        let listed = text(&swanctl(&["--list-conns"]));
        for c in &parsed.connections {
            assert!(
                listed.contains(&format!("{}: IKEv1", c.name.as_str())),
                "{host}:\n{listed}"
            );
        }
        // charon really checks the values: a bad start_action is refused.
        let broken = dir.write(
            "swanctl/broken.conf",
            &contents.replace("start_action = start", "start_action = go"),
        );
        let out = swanctl(&["--load-conns", "--file", path_str(&broken)]);
        assert!(
            !out.status.success(),
            "{host}: a broken file loaded:\n{}",
            text(&out)
        );
        drop(daemon);
    }
}

#[test]
fn sysctl_p_applies_the_gateway_forwarding_file() {
    require("sysctl", "procps");
    let files = generated(SCENARIO);
    let ns = Netns::new();
    let dir = TempDir::new("sysctl");
    let contents = file(&files, "vpn-virginia", "etc/sysctl.d/90-vpnsim.conf");
    let conf = SysctlConf::parse(contents).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.write("90-vpnsim.conf", contents);
    ns.run("sysctl", &["-p", path_str(&path)]);
    for (key, want) in [
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv4.conf.all.accept_redirects", "0"),
        ("net.ipv4.conf.all.send_redirects", "0"),
    ] {
        let out = ns.run("sysctl", &["-n", key]);
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), want, "{key}");
        assert_eq!(conf.get(key).map(|v| v.as_str()), Some(want), "{key}");
    }
    // Application hosts do not forward, so they get no file.
    assert!(
        files
            .get("build-virginia", "etc/sysctl.d/90-vpnsim.conf")
            .is_none()
    );
}

/// For every tunnel: the conn on one end mirrors the conn on the other,
/// and the PSK is the same in both ends' Libreswan and strongSwan files.
#[test]
fn both_ends_of_every_tunnel_agree() {
    let files = generated(SCENARIO);
    let addr = |s: &str| s.parse::<IpAddr>().unwrap_or_else(|e| panic!("{s}: {e}"));
    let gw = |host: &str| {
        GATEWAYS
            .iter()
            .find(|g| g.0 == host)
            .map(|g| (addr(g.1), addr(g.2)))
            .unwrap_or_else(|| panic!("{host}"))
    };
    let site = |host: &str| match host {
        "vpn-virginia" => "vpc1",
        "vpn-sydney" => "vpc2",
        _ => "vpc3",
    };
    let cidr = |host: &str| match host {
        "vpn-virginia" => "10.11.0.0/16",
        "vpn-sydney" => "12.11.0.0/16",
        _ => "13.11.0.0/16",
    };
    let mut tunnels = 0;
    for (a, b) in [("vpn-virginia", "vpn-sydney"), ("vpn-virginia", "vpn-eu")] {
        let (ca, cb) = (
            format!("{}-to-{}", site(a), site(b)),
            format!("{}-to-{}", site(b), site(a)),
        );
        let conn_a = ConnFile::parse(file(&files, a, &format!("etc/ipsec.d/{ca}.conf")))
            .unwrap_or_else(|e| panic!("{e}"));
        let conn_b = ConnFile::parse(file(&files, b, &format!("etc/ipsec.d/{cb}.conf")))
            .unwrap_or_else(|e| panic!("{e}"));
        let (x, y) = (
            conn_a.conn(&ca).unwrap_or_else(|| panic!("{ca}")),
            conn_b.conn(&cb).unwrap_or_else(|| panic!("{cb}")),
        );
        let ((priv_a, pub_a), (priv_b, pub_b)) = (gw(a), gw(b));
        // Reference 003 behind 1:1 NAT: left is the private address, the
        // IDs and the peer address are the elastic IPs.
        assert_eq!(x.left.host, Some(Endpoint::Ip(priv_a)));
        assert_eq!(y.left.host, Some(Endpoint::Ip(priv_b)));
        assert_eq!(x.right.host, Some(Endpoint::Ip(pub_b)));
        assert_eq!(y.right.host, Some(Endpoint::Ip(pub_a)));
        let id =
            |t: &Option<vpnsim_render::libreswan::Text>| t.as_ref().map(|t| t.as_str().to_string());
        assert_eq!(id(&x.left.id), Some(pub_a.to_string()));
        assert_eq!(id(&x.left.id), id(&y.right.id));
        assert_eq!(id(&x.right.id), id(&y.left.id));
        assert_eq!(x.left.selectors(), y.right.selectors());
        assert_eq!(x.right.selectors(), y.left.selectors());
        assert_eq!(
            x.left
                .selectors()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec![cidr(a)]
        );
        assert_eq!(
            x.right
                .selectors()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>(),
            vec![cidr(b)]
        );
        for field in [
            (x.pfs == y.pfs && x.pfs == Some(true)),
            x.authby == y.authby,
            x.auto == y.auto,
            x.ikev2 == y.ikev2,
            x.ike == y.ike,
            x.esp == y.esp,
            x.dpdaction == y.dpdaction,
        ] {
            assert!(field, "{ca} and {cb} disagree:\n{x:?}\n{y:?}");
        }
        // PSKs: Libreswan both ends, strongSwan both ends.
        let secrets = |host: &str, conn: &str| {
            let f = files
                .get(host, &format!("etc/ipsec.d/{conn}.secrets"))
                .unwrap_or_else(|| panic!("{host}: {conn}.secrets"));
            assert_eq!(f.mode, MODE_SECRET, "{host}/{}", f.path);
            Secrets::parse(&f.contents).unwrap_or_else(|e| panic!("{e}"))
        };
        let (sa, sb) = (secrets(a, &ca), secrets(b, &cb));
        let (ida, idb) = (pub_a.to_string(), pub_b.to_string());
        let psk_a = sa
            .psk_for(&ida, &idb)
            .unwrap_or_else(|| panic!("{a}: no PSK for {ida} {idb}"));
        let psk_b = sb
            .psk_for(&idb, &ida)
            .unwrap_or_else(|| panic!("{b}: no PSK for {idb} {ida}"));
        assert!(
            psk_a.expose_secret() == psk_b.expose_secret(),
            "{ca}: the PSKs differ"
        );
        assert!(psk_a.expose_secret().len() >= 32, "{ca}: short PSK");
        let swan = |host: &str| {
            SwanctlConf::parse(file(&files, host, "etc/swanctl/conf.d/aws-vpn.conf"))
                .unwrap_or_else(|e| panic!("{e}"))
        };
        let (wa, wb) = (swan(a), swan(b));
        for w in [&wa, &wb] {
            let s = w
                .secret_for(&ida, &idb)
                .unwrap_or_else(|| panic!("no swanctl secret for {ca}"));
            assert!(
                s.expose_secret() == psk_a.expose_secret(),
                "{ca}: swanctl PSK differs"
            );
        }
        let (ka, kb) = (
            wa.connection(&ca).unwrap_or_else(|| panic!("{ca}")),
            wb.connection(&cb).unwrap_or_else(|| panic!("{cb}")),
        );
        assert_eq!(
            ka.local_addrs
                .iter()
                .map(|w| w.as_str())
                .collect::<Vec<_>>(),
            vec![priv_a.to_string()]
        );
        assert_eq!(
            ka.remote_addrs
                .iter()
                .map(|w| w.as_str())
                .collect::<Vec<_>>(),
            vec![pub_b.to_string()]
        );
        let ids = |c: &vpnsim_render::swanctl::Connection| {
            (
                c.local
                    .as_ref()
                    .and_then(|r| r.id.as_ref())
                    .map(|t| t.as_str().to_string()),
                c.remote
                    .as_ref()
                    .and_then(|r| r.id.as_ref())
                    .map(|t| t.as_str().to_string()),
            )
        };
        assert_eq!(ids(ka), (Some(ida.clone()), Some(idb.clone())));
        assert_eq!(ids(kb), (Some(idb.clone()), Some(ida.clone())));
        let (cha, chb) = (
            ka.child(&ca).unwrap_or_else(|| panic!("{ca} child")),
            kb.child(&cb).unwrap_or_else(|| panic!("{cb} child")),
        );
        assert_eq!(cha.local_ts, chb.remote_ts);
        assert_eq!(cha.remote_ts, chb.local_ts);
        assert_eq!(cha.local_ts, x.left.selectors());
        assert_eq!(
            (ka.proposals.clone(), cha.esp_proposals.clone()),
            (kb.proposals.clone(), chb.esp_proposals.clone())
        );
        tunnels += 1;
    }
    assert_eq!(tunnels, 2);
    // No tunnel between the spokes.
    assert!(
        conn_files(&files, "vpn-sydney")
            .iter()
            .all(|(n, _)| n.starts_with("vpc2-to-vpc1."))
    );
    assert!(
        conn_files(&files, "vpn-eu")
            .iter()
            .all(|(n, _)| n.starts_with("vpc3-to-vpc1."))
    );
}

/// Every IPsec, sysctl and cloud file parses back with its module's parser,
/// and every secret file is 0600.
#[test]
fn every_generated_file_parses_back() {
    let files = generated(SCENARIO);
    let mut seen = 0;
    for f in files.files() {
        let ok = match f.producer {
            "libreswan" if f.path == "etc/ipsec.conf" => {
                let conf = IpsecConf::parse(&f.contents).map(|c| c.emit());
                conf.map(|t| t == f.contents)
            }
            "libreswan" if f.path.ends_with(".conf") => {
                ConnFile::parse(&f.contents).map(|c| c.emit() == f.contents)
            }
            "libreswan" => Secrets::parse(&f.contents).map(|s| {
                let psk = s.entries.iter().any(|e| matches!(e, SecretEntry::Psk(_)));
                assert_eq!(psk, f.mode == MODE_SECRET, "{}/{}: mode", f.host, f.path);
                s.emit() == f.contents
            }),
            "swanctl" => {
                assert_eq!(f.mode, MODE_SECRET, "{}/{}", f.host, f.path);
                SwanctlConf::parse(&f.contents).map(|c| c.emit() == f.contents)
            }
            "sysctl" => SysctlConf::parse(&f.contents).map(|c| c.emit() == f.contents),
            "cloud" if f.path == "routes.json" => {
                RouteTables::parse(&f.contents).map(|c| c.emit() == f.contents)
            }
            "cloud" => TerraformFile::parse(&f.contents).map(|c| c.emit() == f.contents),
            _ => continue,
        };
        assert_eq!(
            ok,
            Ok(true),
            "{}/{} does not read back to itself",
            f.host,
            f.path
        );
        seen += 1;
    }
    // 3 ipsec.conf + 3 ipsec.secrets + 4 conn files + 4 secrets + 3 swanctl
    // + 3 sysctl + 2 cloud.
    assert_eq!(seen, 22);
}

/// The route tables of reference 003: Virginia sends both spokes to its VPN
/// instance, each spoke sends only Virginia to its own; JSON and Terraform
/// say the same.
#[test]
fn cloud_routes_match_reference_003() {
    let files = generated(SCENARIO);
    let json =
        RouteTables::parse(file(&files, "_cloud", "routes.json")).unwrap_or_else(|e| panic!("{e}"));
    let got: Vec<(String, String, String, Option<IpAddr>)> = json
        .routes
        .iter()
        .map(|r| {
            (
                r.vpc.to_string(),
                r.destination.to_string(),
                r.target_instance.to_string(),
                r.target_address,
            )
        })
        .collect();
    let want = |v: &str, d: &str, t: &str, a: &str| {
        (v.to_string(), d.to_string(), t.to_string(), a.parse().ok())
    };
    assert_eq!(
        got,
        vec![
            want("vpc1", "12.11.0.0/16", "vpn-virginia", "10.11.4.5"),
            want("vpc1", "13.11.0.0/16", "vpn-virginia", "10.11.4.5"),
            want("vpc2", "10.11.0.0/16", "vpn-sydney", "12.11.4.5"),
            want("vpc3", "10.11.0.0/16", "vpn-eu", "13.11.4.5"),
        ]
    );
    let tf =
        TerraformFile::parse(file(&files, "_cloud", "routes.tf")).unwrap_or_else(|e| panic!("{e}"));
    let routes: Vec<(String, String, String)> = tf
        .routes()
        .map(|r| {
            let var = |id: &IdRef| match id {
                IdRef::Var(v) => v.as_str().to_string(),
                IdRef::Literal(_) => {
                    panic!("{}: literal ID in generated Terraform", r.name.as_str())
                }
            };
            (
                var(&r.route_table_id),
                r.destination_cidr_block.to_string(),
                var(&r.network_interface_id),
            )
        })
        .collect();
    assert_eq!(
        routes,
        vec![
            (
                "vpc1_route_table_id".into(),
                "12.11.0.0/16".into(),
                "vpn_virginia_network_interface_id".into()
            ),
            (
                "vpc1_route_table_id".into(),
                "13.11.0.0/16".into(),
                "vpn_virginia_network_interface_id".into()
            ),
            (
                "vpc2_route_table_id".into(),
                "10.11.0.0/16".into(),
                "vpn_sydney_network_interface_id".into()
            ),
            (
                "vpc3_route_table_id".into(),
                "10.11.0.0/16".into(),
                "vpn_eu_network_interface_id".into()
            ),
        ]
    );
    assert!(tf.validate().is_ok());
}

/// `terraform fmt -check` on the generated file (syntax and layout).
/// Terraform is not a Debian package, so this runs only on request:
/// `cargo test -p vpnsim-render --test render terraform -- --ignored`.
#[test]
#[ignore = "needs terraform on PATH (not a Debian package)"]
fn terraform_fmt_accepts_the_routes() {
    require("terraform", "terraform (HashiCorp, not in Debian)");
    let files = generated(SCENARIO);
    let dir = TempDir::new("tf");
    let path = dir.write("routes.tf", file(&files, "_cloud", "routes.tf"));
    let out = Command::new("terraform")
        .args(["fmt", "-check", "-diff", path_str(&path)])
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("terraform: {e}"));
    assert!(
        out.status.success(),
        "terraform fmt -check:\n{}",
        text(&out)
    );
    let bad = dir.write(
        "bad.tf",
        &file(&files, "_cloud", "routes.tf").replacen('}', "", 1),
    );
    let out = Command::new("terraform")
        .args(["fmt", "-check", path_str(&bad)])
        .env("CHECKPOINT_DISABLE", "1")
        .env("TF_CLI_CONFIG_FILE", "/dev/null")
        .output()
        .unwrap_or_else(|e| panic!("terraform: {e}"));
    assert!(!out.status.success(), "terraform accepted a broken file");
}

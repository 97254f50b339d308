//! The bonded TAP pair of dual-path-bond fed to the real tools: both links
//! come up between two throwaway namespaces joined by two veth pairs that
//! carry the scenario's own underlay addresses (so the generated configs
//! run unchanged), the enslave/release scripts pass `sh -n`, monit accepts a
//! control file that includes the generated checks, ifupdown reads the
//! stanzas. Every file also parses with the project's own parser and
//! re-emits the same bytes.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use vpnsim_render::Format;
use vpnsim_render::ifupdown::{Addressing, BondMode, Interfaces};
use vpnsim_render::monit::{MonitConf, ServiceKind};
use vpnsim_render::openvpn::{TapPeer, TapSide};
use vpnsim_render::script::{Script, Step};
use vpnsim_render::tree::{FileSet, MODE_SCRIPT, MODE_SECRET, RenderedFile};

use super::firewall::TempDir;
use super::netns::{Netns, require};
use super::scenarios::generated;

const HOSTS: [&str; 2] = ["machine-a", "machine-b"];
const LINKS: [&str; 2] = ["ovn0", "ovn1"];

fn file<'a>(files: &'a FileSet, host: &str, path: &str) -> &'a RenderedFile {
    files
        .files()
        .find(|f| f.host == host && f.path == path)
        .unwrap_or_else(|| panic!("dual-path-bond: {host}/{path} was not generated"))
}

fn text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn generated_bond_files_parse_back_and_say_what_the_scenario_says() {
    let files = generated("dual-path-bond");
    for host in HOSTS {
        for link in LINKS {
            let f = file(&files, host, &format!("etc/openvpn/{link}.conf"));
            assert_eq!(f.mode, MODE_SECRET, "{host}/{link}: inline keys");
            let peer = TapPeer::parse(&f.contents).unwrap_or_else(|e| panic!("{host} {link}: {e}"));
            assert_eq!(peer.render().expect("renders"), f.contents);
            assert_eq!(peer.dev.name, link);
            assert_eq!(
                (peer.liveness.ping, peer.liveness.ping_restart),
                (Some(10), Some(60))
            );
            assert_eq!(peer.daemon.script_security, Some(2));
            assert_eq!(
                peer.daemon.route_up.as_deref(),
                Some("/etc/openvpn/scripts/enslave-bond0.sh")
            );
            let dials =
                (host, link) == ("machine-a", "ovn0") || (host, link) == ("machine-b", "ovn1");
            match &peer.side {
                TapSide::Dial { remotes, .. } => {
                    assert!(dials, "{host} should listen on {link}");
                    let want = if link == "ovn0" {
                        "198.51.100.2"
                    } else {
                        "203.0.113.1"
                    };
                    assert_eq!(remotes[0].host, want);
                    assert_eq!(remotes[0].port, Some(1194));
                }
                TapSide::Listen { port, .. } => {
                    assert!(!dials, "{host} should dial on {link}");
                    assert_eq!(*port, 1194);
                }
            }
            let monit = file(&files, host, &format!("etc/monit/conf.d/{link}"));
            let conf = MonitConf::parse(&monit.contents).expect("monit parses");
            assert_eq!(conf.emit(), monit.contents);
            let peer_bond = if host == "machine-a" {
                "10.0.0.2"
            } else {
                "10.0.0.1"
            };
            let ServiceKind::Host { address, checks } =
                &conf.service(link).expect("host check").kind
            else {
                panic!("{link} is not a host check")
            };
            assert_eq!(address.to_string(), peer_bond);
            assert_eq!(
                (checks[0].effective_count(), checks[0].effective_timeout()),
                (5, 15)
            );

            let tap = file(&files, host, &format!("etc/network/interfaces.d/{link}"));
            let ifs = Interfaces::parse(&tap.contents).expect("tap stanza parses");
            assert_eq!(ifs.emit(), tap.contents);
            let stanza = ifs.stanza(link).expect("tap stanza");
            assert_eq!(
                stanza.hwaddress, peer.lladdr,
                "{host} {link}: MAC of ifupdown and OpenVPN"
            );
            assert!(stanza.hwaddress.expect("pinned").is_local_unicast());
        }
        let bond = file(&files, host, "etc/network/interfaces.d/bond0");
        let ifs = Interfaces::parse(&bond.contents).expect("bond stanza parses");
        assert_eq!(ifs.emit(), bond.contents);
        let s = ifs.stanza("bond0").expect("bond0");
        let b = s.bond.expect("bond options");
        assert_eq!(b.mode, Some(BondMode::BalanceAlb));
        assert_eq!(b.miimon, Some(100));
        assert_eq!(b.slaves, Some(vec![]));
        assert_eq!(s.mtu, Some(1500));
        let Addressing::Static { address, .. } = s.addressing else {
            panic!("bond0 is not static")
        };
        let want = if host == "machine-a" {
            "10.0.0.1/24"
        } else {
            "10.0.0.2/24"
        };
        assert_eq!(address.to_string(), want);
        if host == "machine-a" {
            assert_eq!(s.hwaddress.expect("mac").to_string(), "16:b9:3f:58:cb:4c");
        } else {
            assert!(s.hwaddress.expect("mac").is_local_unicast());
        }

        let up = file(&files, host, "etc/openvpn/scripts/enslave-bond0.sh");
        let down = file(&files, host, "etc/openvpn/scripts/release-bond0.sh");
        for f in [up, down] {
            assert_eq!(f.mode, MODE_SCRIPT);
            assert_eq!(
                Script::parse(&f.contents).expect("script parses").emit(),
                f.contents
            );
        }
        let up = Script::parse(&up.contents).expect("parses");
        assert_eq!(up.total_sleep(), Duration::from_secs(10), "enslave_delay");
        let env = [("dev".to_owned(), "ovn1".to_owned())].into();
        let writes: Vec<_> = up
            .steps(&env)
            .iter()
            .filter_map(|s| match s {
                Step::Run(i) => i.echo_to_file().map(|(p, t, _)| (p.to_owned(), t)),
                Step::Sleep(_) => None,
            })
            .collect();
        assert_eq!(
            writes,
            [(
                "/sys/class/net/bond0/bonding/slaves".to_owned(),
                "+ovn1\n".to_owned()
            )]
        );
    }
}

#[test]
fn bond_scripts_pass_sh_n() {
    let files = generated("dual-path-bond");
    let dir = TempDir::new("bond-sh");
    let mut count = 0;
    for f in files
        .files()
        .filter(|f| f.path.ends_with(".sh") && f.producer == "bond")
    {
        let p = dir.write(&format!("{}-{}", f.host, f.path), &f.contents);
        let out = Command::new("sh").arg("-n").arg(&p).output().expect("sh");
        assert!(
            out.status.success(),
            "sh -n {}/{}: {}",
            f.host,
            f.path,
            text(&out)
        );
        count += 1;
    }
    assert_eq!(count, 4);
}

#[test]
fn monit_accepts_a_control_file_including_the_generated_checks() {
    require("monit", "monit");
    let files = generated("dual-path-bond");
    for host in HOSTS {
        let dir = TempDir::new("bond-monit");
        let mut rc = format!(
            "set daemon 120\nset idfile {0}/id\nset statefile {0}/state\n",
            dir.path.display()
        );
        for link in LINKS {
            let f = file(&files, host, &format!("etc/monit/conf.d/{link}"));
            let p = dir.write(link, &f.contents);
            rc.push_str(&format!("include {}\n", p.display()));
        }
        let rc_path = dir.write("monitrc", &rc);
        set_mode(&rc_path, 0o600);
        let out = Command::new("monit")
            .arg("-t")
            .arg("-c")
            .arg(&rc_path)
            .output()
            .expect("monit");
        assert!(out.status.success(), "monit -t ({host}): {}", text(&out));
        assert!(
            text(&out).contains("Control file syntax OK"),
            "{}",
            text(&out)
        );
        // A broken include is caught: the test can fail.
        let bad = dir.write("bad", "check host x with address 10.0.0.2\n    if failed icmp type echo count five then restart\n");
        let bad_rc = dir.write("monitrc-bad", &format!("{rc}include {}\n", bad.display()));
        set_mode(&bad_rc, 0o600);
        let out = Command::new("monit")
            .arg("-t")
            .arg("-c")
            .arg(&bad_rc)
            .output()
            .expect("monit");
        assert!(!out.status.success(), "monit accepted a broken check");
    }
}

fn set_mode(p: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn ifupdown_reads_the_generated_stanzas() {
    require("ifquery", "ifupdown");
    let files = generated("dual-path-bond");
    for host in HOSTS {
        let dir = TempDir::new("bond-ifq");
        let bond = dir.write(
            "bond0",
            &file(&files, host, "etc/network/interfaces.d/bond0").contents,
        );
        let ifquery = |args: &[&str], iface_file: &Path| {
            Command::new("ifquery")
                .arg("-i")
                .arg(iface_file)
                .args(args)
                .output()
                .expect("ifquery")
        };
        let out = ifquery(&["--list"], &bond);
        assert!(
            out.status.success(),
            "ifquery --list ({host}): {}",
            text(&out)
        );
        let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| *l != "lo")
            .map(str::to_owned)
            .collect();
        assert_eq!(listed, ["bond0"], "{host}: ifquery --list");
        let out = ifquery(&["bond0"], &bond);
        assert!(
            out.status.success(),
            "ifquery bond0 ({host}): {}",
            text(&out)
        );
        let shown = String::from_utf8_lossy(&out.stdout);
        for want in [
            "bond-mode: balance-alb",
            "bond-miimon: 100",
            "bond-slaves: none",
            "mtu: 1500",
        ] {
            assert!(
                shown.contains(want),
                "{host}: ifquery bond0 lacks `{want}`:\n{shown}"
            );
        }
        for link in LINKS {
            let f = file(&files, host, &format!("etc/network/interfaces.d/{link}"));
            let p = dir.write(link, &f.contents);
            let out = ifquery(&["--list", "--allow", "hotplug"], &p);
            assert!(
                out.status.success(),
                "ifquery {link} ({host}): {}",
                text(&out)
            );
            let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter(|l| *l != "lo")
                .map(str::to_owned)
                .collect();
            assert_eq!(listed, [link], "{host}: ifquery --list --allow hotplug");
            let out = ifquery(&[link], &p);
            assert!(
                out.status.success(),
                "ifquery {link} ({host}): {}",
                text(&out)
            );
            let stanza = Interfaces::parse(&f.contents)
                .expect("parses")
                .stanza(link)
                .expect("stanza");
            let mac = stanza.hwaddress.expect("pinned").to_string();
            let shown = String::from_utf8_lossy(&out.stdout);
            assert!(
                shown.contains(&format!("hwaddress: {mac}")),
                "{host} {link}: ifquery shows no hwaddress {mac}:\n{shown}"
            );
        }
        // ifquery rejects what ifup rejects: the test can fail.
        let bad = dir.write("bad", "iface bond0 inet static\n    address\n");
        assert!(!ifquery(&["--list"], &bad).status.success());
    }
}

/// An openvpn process in a namespace, killed by PID on drop.
struct OpenVpn {
    child: std::process::Child,
    log: PathBuf,
    what: String,
}

impl Drop for OpenVpn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl OpenVpn {
    /// Runs `openvpn --config CONFIG` in `ns`. `ip netns exec` gives the
    /// process its own mount namespace (a slave of the host's), where a
    /// tmpfs over /etc/openvpn holds the generated scripts at their own
    /// paths (`scripts` is the directory holding them); nothing leaks to
    /// the host. The shell execs openvpn, so the child's PID is openvpn's.
    fn start(ns: &Netns, config: &Path, scripts: &Path, dir: &TempDir, what: &str) -> OpenVpn {
        let log = dir
            .path
            .join(format!("{}.log", what.replace([' ', '/'], "_")));
        let out = File::create(&log).expect("log file");
        let err = out.try_clone().expect("log file");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "sh", "-c"])
            .arg(
                "set -e; mount -t tmpfs vpnsim-test /etc/openvpn; mkdir /etc/openvpn/scripts; \
                 cp -p \"$1\"/*.sh /etc/openvpn/scripts/; exec openvpn --config \"$2\"",
            )
            .arg("sh")
            .arg(scripts)
            .arg(config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .expect("openvpn");
        OpenVpn {
            child,
            log,
            what: what.to_owned(),
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

#[test]
fn openvpn_brings_up_both_tap_links_between_two_namespaces() {
    require("openvpn", "openvpn");
    let files = generated("dual-path-bond");
    let a = Netns::new();
    let b = Netns::new();
    // The scenario's underlay: eth0 on isp-a, wwan0 on isp-b, same
    // addresses as in the scenario, inside the two namespaces only.
    for (i, (ifname, addr_a, addr_b)) in [
        ("eth0", "198.51.100.1/24", "198.51.100.2/24"),
        ("wwan0", "203.0.113.1/24", "203.0.113.2/24"),
    ]
    .into_iter()
    .enumerate()
    {
        let tmp = format!("vb{}x{i}", std::process::id() % 100_000);
        let out = Command::new("ip")
            .args([
                "link", "add", &tmp, "netns", &a.name, "type", "veth", "peer", "name", ifname,
            ])
            .args(["netns", &b.name])
            .output()
            .expect("ip link add");
        assert!(out.status.success(), "{}", text(&out));
        a.run("ip", &["link", "set", &tmp, "name", ifname]);
        a.run("ip", &["addr", "add", addr_a, "dev", ifname]);
        a.run("ip", &["link", "set", ifname, "up"]);
        b.run("ip", &["addr", "add", addr_b, "dev", ifname]);
        b.run("ip", &["link", "set", ifname, "up"]);
    }
    let dir = TempDir::new("bond-ovpn");
    let mut procs = Vec::new();
    // Listening ends first.
    for (host, ns, link) in [
        ("machine-b", &b, "ovn0"),
        ("machine-a", &a, "ovn1"),
        ("machine-a", &a, "ovn0"),
        ("machine-b", &b, "ovn1"),
    ] {
        let f = file(&files, host, &format!("etc/openvpn/{link}.conf"));
        let p = dir.write(&format!("{host}-{link}.conf"), &f.contents);
        set_mode(&p, 0o600);
        let scripts = dir.path.join(format!("{host}-scripts"));
        if !scripts.exists() {
            std::fs::create_dir(&scripts).expect("mkdir");
            for name in ["enslave-bond0.sh", "release-bond0.sh"] {
                let s = file(&files, host, &format!("etc/openvpn/scripts/{name}"));
                let sp = scripts.join(name);
                std::fs::write(&sp, &s.contents).expect("write script");
                set_mode(&sp, s.mode);
            }
        }
        procs.push(OpenVpn::start(
            ns,
            &p,
            &scripts,
            &dir,
            &format!("{host} {link}"),
        ));
    }
    // Up to 60 s (240 polls of 250 ms); the route-up scripts' sleep takes 10.
    for poll in 0.. {
        let pending: Vec<&OpenVpn> = procs
            .iter()
            .filter(|p| !p.log().contains("Initialization Sequence Completed"))
            .collect();
        if pending.is_empty() {
            break;
        }
        for p in &pending {
            let log = p.log();
            assert!(
                !log.contains("Exiting due to fatal error") && !log.contains("Options error"),
                "{}: openvpn failed:\n{log}",
                p.what
            );
        }
        if poll >= 240 {
            let logs: Vec<String> = pending
                .iter()
                .map(|p| format!("--- {}:\n{}", p.what, p.log()))
                .collect();
            panic!("links did not come up within 60 s:\n{}", logs.join("\n"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    // The TAP devices carry the pinned MACs.
    for (ns, host) in [(&a, "machine-a"), (&b, "machine-b")] {
        for link in LINKS {
            let peer =
                TapPeer::parse(&file(&files, host, &format!("etc/openvpn/{link}.conf")).contents)
                    .expect("parses");
            let mac = peer.lladdr.expect("lladdr").to_string();
            let shown = ns.run("ip", &["link", "show", "dev", link]);
            let shown = String::from_utf8_lossy(&shown.stdout);
            assert!(
                shown.contains(&mac),
                "{host} {link}: MAC {mac} not set:\n{shown}"
            );
        }
    }
    // route-up (the enslave script, which fails here for want of a bond:
    // the kernel has no bonding module) ran only once the link was up.
    for p in &procs {
        let log = p.log();
        let connected = log.find("Peer Connection Initiated");
        let script = log.find("/etc/openvpn/scripts/enslave-bond0.sh");
        assert!(
            matches!((connected, script), (Some(c), Some(s)) if c < s),
            "{}: route-up did not run after the connection came up:\n{log}",
            p.what
        );
    }
    // Each end accepted the other's certificate (OpenVPN names the peer by
    // the CN that verify-x509-name checked).
    for p in &procs {
        let log = p.log();
        let peer = if p.what.starts_with("machine-a") {
            "machine-b"
        } else {
            "machine-a"
        };
        assert!(
            log.contains(&format!("[{peer}] Peer Connection Initiated")),
            "{}: peer certificate not seen in the log:\n{log}",
            p.what
        );
    }
    drop(procs);
}

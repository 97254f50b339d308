//! Firewall files of the five shipped scenarios fed to the real tools, all
//! inside throwaway network namespaces (never the host's own tables):
//! `iptables-restore --test` / `ip6tables-restore --test` and `nft -c -f`
//! accept every generated file; loaded for real into a namespace, what
//! `iptables-save` / `nft list ruleset` print back parses to the same
//! policy; every file parses with the project's own parser and re-emits the
//! same bytes. On eduvpn-multinode, the nodes accept tcp/41194 only from the
//! controller (checked by evaluating the rules, and with real connections
//! between two namespaces).

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use ipnet::IpNet;
use vpnsim_render::Format;
use vpnsim_render::iptables::{
    CtState, Family, Ip6tables, Iptables, Match, Protocol, Ruleset, TableName, Target,
};
use vpnsim_render::nftables;
use vpnsim_render::tree::RenderedFile;

use super::netns::{Netns, require};
use super::scenarios::{SCENARIOS, generated};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A temporary directory removed on drop.
pub struct TempDir {
    pub path: PathBuf,
}

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "vpnsim-{tag}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        TempDir { path }
    }

    /// Writes `contents` to `name` inside the directory.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let p = self.path.join(name.replace('/', "_"));
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

fn files_named(name: &str, path: &str) -> Vec<RenderedFile> {
    generated(name)
        .files()
        .filter(|f| f.path == path)
        .cloned()
        .collect()
}

fn out_text(out: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn ok(out: &std::process::Output, what: &str, file: &Path) {
    assert!(
        out.status.success(),
        "{what} rejected {}:\n{}\n--- file:\n{}",
        file.display(),
        out_text(out),
        std::fs::read_to_string(file).unwrap_or_default()
    );
}

#[test]
fn iptables_restore_accepts_every_generated_rules_file_and_saves_it_back_unchanged() {
    require("iptables-restore", "iptables");
    require("ip6tables-restore", "iptables");
    let dir = TempDir::new("fw");
    let mut count = 0;
    for name in SCENARIOS {
        for (path, family, restore, save) in [
            (
                "etc/iptables/rules.v4",
                Family::V4,
                "iptables-restore",
                "iptables-save",
            ),
            (
                "etc/iptables/rules.v6",
                Family::V6,
                "ip6tables-restore",
                "ip6tables-save",
            ),
        ] {
            for f in files_named(name, path) {
                count += 1;
                let file = dir.write(&format!("{name}-{}-{path}", f.host), &f.contents);
                let p = file.to_string_lossy();
                // Our own parser reads it back to the same bytes.
                let ours = Ruleset::parse(family, &f.contents)
                    .unwrap_or_else(|e| panic!("{name} {}/{path}: {e}", f.host));
                assert_eq!(ours.emit(), f.contents, "{name} {}/{path}", f.host);
                match family {
                    Family::V4 => assert!(Iptables::parse(&f.contents).is_ok()),
                    Family::V6 => assert!(Ip6tables::parse(&f.contents).is_ok()),
                }
                // The real tool, in a throwaway namespace.
                let ns = Netns::new();
                ok(&ns.output(restore, &["--test", &p]), restore, &file);
                // Loaded for real and saved back: the same policy.
                ok(&ns.output(restore, &[&p]), restore, &file);
                let saved = ns.run(save, &[]);
                let saved = String::from_utf8_lossy(&saved.stdout);
                let back = Ruleset::parse(family, &saved).unwrap_or_else(|e| {
                    panic!(
                        "{name} {}/{path}: {save} output does not parse: {e}\n{saved}",
                        f.host
                    )
                });
                let expected = ours.normalized();
                let mut got = back.normalized();
                // iptables-save lists only the tables the file loaded.
                got.tables
                    .retain(|t| expected.tables.iter().any(|e| e.name == t.name));
                assert_eq!(
                    got, expected,
                    "{name} {}/{path}: {save} differs from the file:\n{saved}",
                    f.host
                );
            }
        }
    }
    assert!(count >= 10, "only {count} rules files generated");
}

#[test]
fn nft_accepts_every_generated_ruleset_and_lists_it_back_unchanged() {
    require("nft", "nftables");
    let dir = TempDir::new("nft");
    let mut count = 0;
    for name in SCENARIOS {
        for f in files_named(name, "etc/nftables.conf") {
            count += 1;
            let file = dir.write(&format!("{name}-{}-nftables.conf", f.host), &f.contents);
            let p = file.to_string_lossy();
            let ours = nftables::Ruleset::parse(&f.contents)
                .unwrap_or_else(|e| panic!("{name} {}/nftables.conf: {e}", f.host));
            assert_eq!(ours.emit(), f.contents, "{name} {}", f.host);
            assert_eq!(ours.validate(), Ok(()), "{name} {}", f.host);
            let ns = Netns::new();
            ok(&ns.output("nft", &["-c", "-f", &p]), "nft -c", &file);
            ok(&ns.output("nft", &["-f", &p]), "nft -f", &file);
            let listed = ns.run("nft", &["list", "ruleset"]);
            let listed = String::from_utf8_lossy(&listed.stdout);
            let back = nftables::Ruleset::parse(&listed).unwrap_or_else(|e| {
                panic!(
                    "{name} {}: nft list ruleset does not parse: {e}\n{listed}",
                    f.host
                )
            });
            assert_eq!(
                back.without_state(),
                ours.without_state(),
                "{name} {}: nft lists a different ruleset:\n{listed}",
                f.host
            );
        }
    }
    assert!(count >= 10, "only {count} nftables files generated");
}

/// What the INPUT chain of a restore file does with a new TCP connection
/// from `source` to `port` arriving on `ifname`: the verdict of the first
/// rule that matches, or the chain policy.
fn input_verdict(rs: &Ruleset, source: IpAddr, ifname: &str, port: u16) -> String {
    let filter = rs.table(TableName::Filter).expect("a filter table");
    let chain = filter.chain("INPUT").expect("an INPUT chain");
    'rules: for rule in &chain.rules {
        if let Some(s) = &rule.source
            && s.value.contains(&source) == s.negated
        {
            continue;
        }
        if let Some(i) = &rule.in_interface
            && i.value.matches(ifname) == i.negated
        {
            continue;
        }
        if rule.destination.is_some() || rule.out_interface.is_some() {
            continue;
        }
        if let Some(p) = &rule.protocol
            && (p.value == Protocol::TCP) == p.negated
        {
            continue;
        }
        for m in &rule.matches {
            let matched = match m {
                Match::Tcp(pm) => {
                    pm.sport.is_none()
                        && pm
                            .dport
                            .as_ref()
                            .is_none_or(|d| d.value.contains(port) != d.negated)
                }
                Match::Conntrack(states) => states.value.contains(&CtState::New) != states.negated,
                Match::Udp(_) | Match::Icmp(_) | Match::Icmp6(_) => false,
                other => panic!("the evaluator does not know {other:?}"),
            };
            if !matched {
                continue 'rules;
            }
        }
        return match &rule.target {
            Some(Target::Accept) => "ACCEPT".into(),
            Some(Target::Drop) => "DROP".into(),
            Some(Target::Reject(_)) => "REJECT".into(),
            other => panic!("the evaluator does not follow {other:?}"),
        };
    }
    format!("{:?}", chain.policy).to_uppercase()
}

fn controller_addresses() -> Vec<IpAddr> {
    let path = super::scenarios::scenario_path("eduvpn-multinode");
    let scenario = vpnsim_topology::load_file(&path).expect("scenario");
    let t = &scenario.topology;
    let c = t.host(t.host_id("controller").expect("controller"));
    let mut v: Vec<IpAddr> = c
        .interfaces
        .iter()
        .flat_map(|i| i.address.into_iter().chain(i.address6.map(IpAddr::V6)))
        .collect();
    v.extend(c.public_address.map(IpAddr::V4));
    v.extend(c.public_address6.map(IpAddr::V6));
    v.sort();
    v.dedup();
    v
}

#[test]
fn eduvpn_nodes_accept_vpn_daemon_only_from_the_controller() {
    let controller = controller_addresses();
    assert!(controller.iter().any(IpAddr::is_ipv4) && controller.iter().any(IpAddr::is_ipv6));
    let strangers: Vec<IpAddr> = [
        "145.0.6.73",
        "145.0.6.72",
        "198.51.100.11",
        "10.1.0.2",
        "2001:610:188:418:145:0:6:73",
        "fd00:1:1:1::2",
    ]
    .iter()
    .map(|a| a.parse().expect("an address"))
    .collect();
    let files = generated("eduvpn-multinode");
    let mut checked = 0;
    for node in ["node-a", "node-b"] {
        for (path, family) in [
            ("etc/iptables/rules.v4", Family::V4),
            ("etc/iptables/rules.v6", Family::V6),
        ] {
            let f = files
                .files()
                .find(|f| f.host == node && f.path == path)
                .unwrap_or_else(|| panic!("{node} has no {path}"));
            let rs = Ruleset::parse(family, &f.contents).expect("parses");
            let v6 = family == Family::V6;
            for &c in controller.iter().filter(|a| a.is_ipv6() == v6) {
                assert_eq!(
                    input_verdict(&rs, c, "ens160", 41194),
                    "ACCEPT",
                    "{node} {path}: the controller {c} cannot reach tcp/41194"
                );
                checked += 1;
            }
            for &s in strangers.iter().filter(|a| a.is_ipv6() == v6) {
                for ifname in ["ens160", "tun-1-0", "tun-2-1"] {
                    let verdict = input_verdict(&rs, s, ifname, 41194);
                    assert!(
                        verdict == "REJECT" || verdict == "DROP",
                        "{node} {path}: {s} on {ifname} reaches tcp/41194 ({verdict})"
                    );
                }
                // ... while the public ports stay open to it.
                assert_eq!(input_verdict(&rs, s, "ens160", 22), "ACCEPT");
            }
            // Every rule that names port 41194 names a controller source.
            let filter = rs.table(TableName::Filter).expect("filter");
            for rule in &filter.chain("INPUT").expect("INPUT").rules {
                let names_port = rule.matches.iter().any(|m| {
                    matches!(m, Match::Tcp(pm) if pm.dport.as_ref().is_some_and(|d| d.value.contains(41194)))
                });
                if names_port {
                    let src = rule.source.as_ref().expect("a source").value;
                    assert!(
                        controller.iter().any(|c| IpNet::from(*c) == src),
                        "{node} {path}: tcp/41194 open to {src}"
                    );
                }
            }
        }
        // nftables: the same sources, nothing else.
        let f = files
            .files()
            .find(|f| f.host == node && f.path == "etc/nftables.conf")
            .expect("nftables.conf");
        let rs = nftables::Ruleset::parse(&f.contents).expect("parses");
        let input = rs
            .table(nftables::TableFamily::Inet, "filter")
            .and_then(|t| t.chain("input"))
            .expect("inet filter input");
        let mut sources = Vec::new();
        for rule in &input.rules {
            let port = rule.statements.iter().any(|s| {
                matches!(s, nftables::Statement::Port { ports, .. } if ports.iter().any(|p| p.contains(41194)))
            });
            if port {
                let src: Vec<IpNet> = rule
                    .statements
                    .iter()
                    .filter_map(|s| match s {
                        nftables::Statement::Addr { nets, .. } => Some(nets.clone()),
                        _ => None,
                    })
                    .flatten()
                    .collect();
                assert!(!src.is_empty(), "{node}: nft opens 41194 to any source");
                sources.extend(src);
            }
        }
        sources.sort();
        let mut want: Vec<IpNet> = controller.iter().map(|c| IpNet::from(*c)).collect();
        want.sort();
        assert_eq!(sources, want, "{node}: nft 41194 sources");
    }
    assert!(checked >= 4);
}

/// Python one-liners: a TCP listener and a client that prints OK or the error.
const LISTEN: &str = "import socket,sys\nfam=socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\ns=socket.socket(fam)\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\ns.bind((sys.argv[1],41194))\ns.listen(8)\nwhile True:\n  c,_=s.accept()\n  c.close()\n";
const CONNECT: &str = "import socket,sys\nfam=socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET\ns=socket.socket(fam)\ns.settimeout(3)\ns.bind((sys.argv[2],0))\ntry:\n  s.connect((sys.argv[1],41194))\n  print('OK')\nexcept Exception as e:\n  print('FAIL',e)\n";

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn python() -> &'static str {
    if Path::new("/usr/bin/python3").is_file() {
        "/usr/bin/python3"
    } else {
        "python3"
    }
}

#[test]
fn vpn_daemon_port_of_a_loaded_node_answers_the_controller_only() {
    require("iptables-restore", "iptables");
    require("python3", "python3");
    let files = generated("eduvpn-multinode");
    let node = Netns::new();
    let peer = Netns::new();
    let dir = TempDir::new("fw-live");
    // node-a's interface is ens160 (145.0.6.72, 2001:610:188:418:145:0:6:72).
    let veth = format!("vf{}", std::process::id() % 100_000);
    let out = Command::new("ip")
        .args(["link", "add", &veth, "netns", &node.name, "type", "veth"])
        .args(["peer", "name", "eth0", "netns", &peer.name])
        .output()
        .expect("ip link add");
    assert!(out.status.success(), "{}", out_text(&out));
    node.run("ip", &["link", "set", &veth, "name", "ens160"]);
    node.run("ip", &["addr", "add", "145.0.6.72/24", "dev", "ens160"]);
    node.run(
        "ip",
        &[
            "addr",
            "add",
            "2001:610:188:418:145:0:6:72/64",
            "dev",
            "ens160",
            "nodad",
        ],
    );
    node.run("ip", &["link", "set", "ens160", "up"]);
    for a in ["145.0.6.71/24", "145.0.6.99/24"] {
        peer.run("ip", &["addr", "add", a, "dev", "eth0"]);
    }
    for a in [
        "2001:610:188:418:145:0:6:71/64",
        "2001:610:188:418:145:0:6:99/64",
    ] {
        peer.run("ip", &["addr", "add", a, "dev", "eth0", "nodad"]);
    }
    peer.run("ip", &["link", "set", "eth0", "up"]);
    for (path, restore) in [
        ("etc/iptables/rules.v4", "iptables-restore"),
        ("etc/iptables/rules.v6", "ip6tables-restore"),
    ] {
        let f = files
            .files()
            .find(|f| f.host == "node-a" && f.path == path)
            .expect("rules");
        let file = dir.write(path, &f.contents);
        ok(
            &node.output(restore, &[&file.to_string_lossy()]),
            restore,
            &file,
        );
    }
    let listen = dir.write("listen.py", LISTEN);
    let connect = dir.write("connect.py", CONNECT);
    let mut listeners = Vec::new();
    for addr in ["145.0.6.72", "2001:610:188:418:145:0:6:72"] {
        listeners.push(Child(
            Command::new("ip")
                .args(["netns", "exec", &node.name, python()])
                .arg(&listen)
                .arg(addr)
                .spawn()
                .expect("listener"),
        ));
    }
    let try_connect = |to: &str, from: &str| -> String {
        for _ in 0..50 {
            let out = peer.output(python(), &[&connect.to_string_lossy(), to, from]);
            let text = out_text(&out);
            // The listener may not be up yet: refused is retried.
            if !text.contains("Connection refused") {
                return text;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        "FAIL refused".into()
    };
    for (to, controller, stranger) in [
        ("145.0.6.72", "145.0.6.71", "145.0.6.99"),
        (
            "2001:610:188:418:145:0:6:72",
            "2001:610:188:418:145:0:6:71",
            "2001:610:188:418:145:0:6:99",
        ),
    ] {
        let c = try_connect(to, controller);
        assert!(
            c.starts_with("OK"),
            "controller {controller} -> {to}:41194: {c}"
        );
        let s = try_connect(to, stranger);
        assert!(
            s.starts_with("FAIL"),
            "stranger {stranger} reached {to}:41194: {s}"
        );
    }
    drop(listeners);
}

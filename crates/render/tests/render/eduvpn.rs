//! The eduVPN controller and node files of the two eduVPN scenarios on the
//! real tools and our own parsers:
//! - `php -l` accepts every generated PHP file, and PHP itself reads each one
//!   to exactly the array our emitter wrote (`var_export` of `require FILE`
//!   equals the file's `return` body);
//! - the 1.x YAML files (reference 000) parse back with our YAML reader into
//!   the profiles the scenario declares;
//! - the Apache `<RequireAny>` allow-list lists exactly the node addresses
//!   (plus `Require local`): reference 001's four public addresses, and the
//!   PeerVPN mesh addresses of the nodes in 000;
//! - node-side `firewall.php` lets only the controller reach vpn-daemon, and
//!   `/etc/sysconfig/vpn-daemon` is the reference's.

use std::collections::BTreeSet;
use std::fs;
use std::net::IpAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use vpnsim_render::Format;
use vpnsim_render::eduvpn::apache::{ApacheAccess, IpMatch, Require};
use vpnsim_render::eduvpn::config::{NodeConfig, NodeFirewall, PortSpec, Proto, ServerApiConfig};
use vpnsim_render::eduvpn::sysconfig::VpnDaemonSysconfig;
use vpnsim_render::tree::{FileSet, MODE_CONFIG};

use crate::netns::require;
use crate::scenarios::generated;

static NEXT: AtomicU32 = AtomicU32::new(0);

struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let dir = std::env::temp_dir().join(format!(
            "vpnsim-eduvpn-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn file<'a>(files: &'a FileSet, host: &str, path: &str) -> &'a str {
    match files.get(host, path) {
        Some(f) => &f.contents,
        None => {
            let all: Vec<String> = files
                .files()
                .map(|f| format!("{}/{}", f.host, f.path))
                .collect();
            panic!("no {host}/{path}; generated:\n{}", all.join("\n"))
        }
    }
}

fn ips(list: &[&str]) -> BTreeSet<IpAddr> {
    list.iter().map(|a| a.parse().expect("ip")).collect()
}

#[test]
fn php_accepts_every_generated_php_file_and_reads_our_array() {
    require("php", "php-cli");
    let dir = TempDir::new();
    let mut checked = 0;
    for name in ["eduvpn-multinode", "eduvpn-locations"] {
        for f in generated(name).files().filter(|f| f.path.ends_with(".php")) {
            let path = dir.0.join(format!("{checked}.php"));
            fs::write(&path, &f.contents).expect("write");
            let out = Command::new("php")
                .arg("-l")
                .arg(&path)
                .output()
                .expect("php -l");
            assert!(
                out.status.success(),
                "{name}: php -l {}/{}:\n{}{}\n{}",
                f.host,
                f.path,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr),
                f.contents
            );
            // PHP's own reading of the file prints exactly our array.
            let out = Command::new("php")
                .args(["-r", "var_export(require $argv[1]);", "--"])
                .arg(&path)
                .output()
                .expect("php -r");
            assert!(out.status.success(), "{name}: php require {}", f.path);
            let exported = String::from_utf8_lossy(&out.stdout).into_owned();
            let body = f
                .contents
                .split_once("return ")
                .map(|(_, b)| b.trim_end().trim_end_matches(';'))
                .expect("return");
            assert_eq!(exported, body, "{name}: {}/{}", f.host, f.path);
            checked += 1;
        }
    }
    // multinode: controller config.php, config.php + firewall.php per node.
    assert_eq!(checked, 5, "PHP files generated");
}

#[test]
fn multinode_php_files_read_back_as_reference_001() {
    let files = generated("eduvpn-multinode");
    let api = ServerApiConfig::parse(file(&files, "controller", "etc/vpn-server-api/config.php"))
        .expect("config.php parses back");
    assert_eq!(api.use_vpn_daemon, Some(true));
    let ids: Vec<&str> = api.vpn_profiles.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(ids, ["node-a", "node-b"]);
    for (id, number, range, range6, mgmt, hide) in [
        (
            "node-a",
            1,
            "10.1.0.0/25",
            "fd00:1:1:1::/64",
            "145.0.6.72",
            None,
        ),
        (
            "node-b",
            2,
            "10.2.0.0/25",
            "fd00:2:2:2::/64",
            "145.0.6.73",
            Some(true),
        ),
    ] {
        let p = api.profile(id).expect("profile");
        assert_eq!(p.profile_number, Some(number));
        assert_eq!(p.host_name.as_deref(), Some("nodes.frkovpn.tuxed.net"));
        assert_eq!(p.range, Some(range.parse().expect("range")));
        assert_eq!(p.range6, Some(range6.parse().expect("range6")));
        assert_eq!(p.management_ip, Some(mgmt.parse().expect("ip")));
        assert_eq!(p.hide_profile, hide);
    }
    assert_eq!(
        api.profile("node-a")
            .and_then(|p| p.display_name.as_deref()),
        Some("Secure Internet")
    );

    for node in ["node-a", "node-b"] {
        let cfg = NodeConfig::parse(file(&files, node, "etc/vpn-server-node/config.php"))
            .expect("node config.php");
        assert_eq!(cfg.use_vpn_daemon, Some(true));
        assert_eq!(cfg.profile_list, Some(vec![node.to_string()]));
        assert_eq!(
            cfg.manage_firewall,
            Some(false),
            "{node} has a scenario firewall"
        );
        assert_eq!(
            cfg.api_uri.as_deref(),
            Some("https://frkovpn.tuxed.net/vpn-server-api/api.php")
        );
        let fw = NodeFirewall::parse(file(&files, node, "etc/vpn-server-node/firewall.php"))
            .expect("firewall.php");
        let rules = fw.input_rules.expect("inputRules");
        // vpn-daemon only from the controller's two addresses.
        let daemon: Vec<_> = rules
            .iter()
            .filter(|r| {
                r.dst_port
                    .as_ref()
                    .is_some_and(|p| p.contains(&PortSpec::Port(41194)))
            })
            .collect();
        assert_eq!(daemon.len(), 1, "{node}: {rules:?}");
        assert_eq!(daemon[0].proto, [Proto::Tcp]);
        let src: BTreeSet<String> = daemon[0]
            .src_net
            .iter()
            .flatten()
            .map(|n| n.to_string())
            .collect();
        assert_eq!(
            src,
            BTreeSet::from([
                "145.0.6.71/32".to_string(),
                "2001:610:188:418:145:0:6:71/128".to_string()
            ])
        );
        // OpenVPN on udp and tcp 1194, open to all.
        assert!(rules.iter().any(|r| r.src_net.is_none()
            && r.proto == [Proto::Udp, Proto::Tcp]
            && r.dst_port == Some(vec![PortSpec::Port(1194)])));
        let nat = fw.nat_rules.expect("natRules");
        assert_eq!(nat.len(), 1);
        assert_eq!(nat[0].0, node);
        assert_eq!(nat[0].1.enable_nat.len(), 2, "IPv4 and IPv6");

        let daemon = VpnDaemonSysconfig::parse(file(&files, node, "etc/sysconfig/vpn-daemon"))
            .expect("sysconfig");
        assert!(daemon.enable_tls);
        assert_eq!(daemon.listen.map(|l| (l.addr, l.port)), Some((None, 41194)));
    }
}

#[test]
fn locations_yaml_parses_back_as_reference_000() {
    let files = generated("eduvpn-locations");
    let text = file(
        &files,
        "controller",
        "etc/vpn-server-api/vpn.example/config.yaml",
    );
    let api = ServerApiConfig::parse_yaml(text).expect("config.yaml parses back");
    let ids: Vec<&str> = api.vpn_profiles.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(ids, ["europe", "asia"], "in profileNumber order, as in 000");
    for (id, number, host, range, range6, mgmt) in [
        (
            "europe",
            1,
            "europe.vpn.example",
            "10.0.0.0/24",
            "fd00:4242:4242::/48",
            "10.42.42.2",
        ),
        (
            "asia",
            2,
            "asia.vpn.example",
            "10.20.30.0/24",
            "fd00:4445:4647::/48",
            "10.42.42.3",
        ),
    ] {
        let p = api.profile(id).expect("profile");
        assert_eq!(p.profile_number, Some(number));
        assert_eq!(p.host_name.as_deref(), Some(host));
        assert_eq!(p.range, Some(range.parse().expect("range")));
        assert_eq!(p.range6, Some(range6.parse().expect("range6")));
        assert_eq!(p.management_ip, Some(mgmt.parse().expect("ip")));
        assert_eq!(p.use_nat, Some(true));
        assert_eq!(p.use_proxy, Some(false));
        assert_eq!(p.listen, Some("0.0.0.0".parse().expect("ip")));
        assert_eq!(p.dns.as_ref().map(Vec::len), Some(4));
    }
    // Emitting what we read gives the same bytes.
    assert_eq!(api.emit_yaml(), text);
    for node in ["europe", "asia"] {
        let text = file(&files, node, "etc/vpn-server-node/vpn.example/config.yaml");
        let cfg = NodeConfig::parse_yaml(text).expect("node config.yaml");
        assert_eq!(cfg.profile_list, Some(vec![node.to_string()]));
        assert_eq!(
            cfg.api_uri.as_deref(),
            Some("http://10.42.42.1/vpn-server-api/api.php"),
            "the API over the management mesh"
        );
        assert!(
            files.get(node, "etc/sysconfig/vpn-daemon").is_none(),
            "no vpn-daemon in 1.x"
        );
    }
    assert!(files.files().all(|f| !f.path.ends_with(".php")));
}

fn allow_list(files: &FileSet) -> BTreeSet<IpAddr> {
    let f = files
        .get("controller", "etc/httpd/conf.d/vpn-server-api.conf")
        .expect("vpn-server-api.conf");
    assert_eq!(f.mode, MODE_CONFIG);
    let access = ApacheAccess::parse(&f.contents).expect("apache conf parses back");
    assert_eq!(access.emit(), f.contents);
    let rules = access.require_any.rules();
    assert_eq!(rules.first(), Some(&Require::Local), "{rules:?}");
    rules
        .iter()
        .skip(1)
        .map(|r| match r {
            Require::Ip(IpMatch::Addr(a)) => *a,
            other => panic!("unexpected rule {other:?}"),
        })
        .collect()
}

#[test]
fn apache_allow_list_is_exactly_the_node_addresses() {
    let files = generated("eduvpn-multinode");
    let listed = allow_list(&files);
    assert_eq!(
        listed,
        ips(&[
            "145.0.6.72",
            "2001:610:188:418:145:0:6:72",
            "145.0.6.73",
            "2001:610:188:418:145:0:6:73",
        ])
    );
    let access = ApacheAccess::parse(file(
        &files,
        "controller",
        "etc/httpd/conf.d/vpn-server-api.conf",
    ))
    .expect("parse");
    for outsider in ["145.0.6.71", "198.51.100.11", "198.51.100.80"] {
        assert!(
            !access.require_any.allows(outsider.parse().expect("ip")),
            "{outsider}"
        );
    }
    // 000: the nodes call the API over the PeerVPN mesh.
    let files = generated("eduvpn-locations");
    assert_eq!(allow_list(&files), ips(&["10.42.42.2", "10.42.42.3"]));
}

//! Real-tool acceptance of the generated DNS zone files: `named-checkzone`
//! (BIND's own loader, with name checks and integrity checks failing hard)
//! accepts every zone generated from the shipped scenarios, and in BIND's
//! canonical form (`named-compilezone -o -`) every `[dns]` name, the
//! round-robin names of reference 001 included, answers with exactly the
//! scenario's addresses. Both tools run inside a throwaway namespace, so
//! the name-server lookups of the integrity checks never leave it.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use vpnsim_render::Format;
use vpnsim_render::zone::Zone;

use crate::netns::{Netns, require};
use crate::scenarios::{SCENARIOS, generated, scenario_path};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A private temp directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        let path = std::env::temp_dir().join(format!(
            "vpnsim-dns-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o700))
            .unwrap_or_else(|e| panic!("chmod: {e}"));
        TempDir(path)
    }

    fn write(&self, name: &str, text: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// `named-checkzone -k fail -i full ORIGIN FILE`: (accepted, output).
fn checkzone(ns: &Netns, origin: &str, path: &str) -> (bool, String) {
    let out = ns.output(
        "named-checkzone",
        &["-k", "fail", "-i", "full", origin, path],
    );
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// BIND's canonical form of a zone: `(owner, type) -> {(ttl, data)}`.
fn compiled(
    ns: &Netns,
    origin: &str,
    path: &str,
) -> BTreeMap<(String, String), BTreeSet<(u32, String)>> {
    let out = ns.run("named-compilezone", &["-q", "-o", "-", origin, path]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut records: BTreeMap<(String, String), BTreeSet<(u32, String)>> = BTreeMap::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [owner, ttl, class, kind, data @ ..] = fields.as_slice() else {
            panic!("unexpected named-compilezone line {line:?}");
        };
        assert_eq!(*class, "IN", "{line}");
        records
            .entry((owner.to_string(), kind.to_string()))
            .or_default()
            .insert((
                ttl.parse().unwrap_or_else(|e| panic!("{line}: {e}")),
                data.join(" "),
            ));
    }
    records
}

#[test]
fn named_checkzone_accepts_every_generated_zone_and_round_robin_names_resolve_to_all_nodes() {
    require("named-checkzone", "bind9-utils");
    require("named-compilezone", "bind9-utils");
    require("ip", "iproute2");
    let ns = Netns::new();
    let dir = TempDir::new();
    let mut round_robin = 0;
    let mut zones = 0;
    for name in SCENARIOS {
        let scenario = vpnsim_topology::load_file(&scenario_path(name))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let set = generated(name);
        // Every zone file: our parser reads it back as what emit wrote, BIND
        // loads it without a warning that fails, and its canonical records.
        let mut canonical = BTreeMap::new();
        for file in set.files().filter(|f| f.producer == "zone") {
            assert_eq!(file.host, "_dns", "{name}: {}", file.path);
            assert_eq!(file.mode, 0o644, "{name}: {}", file.path);
            let zone = Zone::parse(&file.contents)
                .unwrap_or_else(|e| panic!("{name}: {}: {e}\n{}", file.path, file.contents));
            assert_eq!(zone.emit(), file.contents, "{name}: {}", file.path);
            let origin = zone.origin.to_string();
            assert_eq!(file.path, format!("etc/bind/db.{}", zone.origin.as_str()));
            let path = dir.write(
                &format!("{name}-db.{}", zone.origin.as_str()),
                &file.contents,
            );
            let (ok, output) = checkzone(&ns, &origin, &path);
            assert!(
                ok && output.contains("OK"),
                "{name}: named-checkzone rejects {}:\n{output}\n{}",
                file.path,
                file.contents
            );
            let serial = zone.soa().map(|s| s.serial).unwrap_or_default();
            assert!(
                output.contains(&format!("loaded serial {serial}")),
                "{name}: {output}"
            );
            canonical.extend(compiled(&ns, &origin, &path));
            zones += 1;
        }
        // Every [dns] name answers with exactly the scenario's addresses and
        // TTL: all nodes of a round-robin name are in the zone.
        for dns in &scenario.topology.dns {
            let owner = format!("{}.", dns.name.trim_end_matches('.').to_ascii_lowercase());
            for (kind, want) in [
                (
                    "A",
                    dns.a
                        .iter()
                        .map(ToString::to_string)
                        .collect::<BTreeSet<_>>(),
                ),
                ("AAAA", dns.aaaa.iter().map(ToString::to_string).collect()),
            ] {
                let got = canonical
                    .get(&(owner.clone(), kind.to_string()))
                    .cloned()
                    .unwrap_or_default();
                let got_data: BTreeSet<String> = got.iter().map(|(_, d)| d.clone()).collect();
                assert_eq!(got_data, want, "{name}: {owner} {kind}");
                assert!(
                    got.iter().all(|(ttl, _)| *ttl == dns.ttl),
                    "{name}: {owner} {kind} TTL: {got:?}, want {}",
                    dns.ttl
                );
                if want.len() > 1 {
                    round_robin += 1;
                }
            }
        }
    }
    assert!(zones >= 3, "only {zones} zones generated");
    // eduvpn-multinode's nodes.frkovpn.tuxed.net: two A and two AAAA.
    assert!(round_robin >= 2, "no round-robin name checked");
}

/// BIND and our parser agree on what they refuse.
#[test]
fn named_checkzone_and_our_parser_agree() {
    require("named-checkzone", "bind9-utils");
    require("ip", "iproute2");
    let ns = Netns::new();
    let dir = TempDir::new();
    let head = "$ORIGIN example.com.\n$TTL 300\n@ IN SOA ns.vpnsim.invalid. hostmaster ( 1 3600 900 604800 300 )\n@ IN NS ns.vpnsim.invalid.\n";
    for (body, accepted) in [
        ("rr 60 IN A 192.0.2.1\nrr 60 IN A 192.0.2.2\n", true),
        ("rr IN 1h A 192.0.2.1\n   IN AAAA 2001:db8::1\n", true),
        ("www IN CNAME rr\nrr IN A 192.0.2.1\n", true),
        ("rr IN A 192.0.2\n", false),
        ("rr IN AAAA 192.0.2.1\n", false),
        ("rr IN A 192.0.2.1 192.0.2.2\n", false),
        ("rr IN BOGUS 192.0.2.1\n", false),
        ("rr IN A ( 192.0.2.1\n", false),
        ("rr IN A 192.0.2.1 )\n", false),
        ("-rr IN A 192.0.2.1\n", false),
    ] {
        let text = format!("{head}{body}");
        let path = dir.write("agree.zone", &text);
        let (ok, output) = checkzone(&ns, "example.com.", &path);
        assert_eq!(ok, accepted, "named-checkzone on {text:?}: {output}");
        assert_eq!(
            Zone::parse(&text).is_ok(),
            accepted,
            "our parser on {text:?}: {:?}",
            Zone::parse(&text)
        );
    }
}

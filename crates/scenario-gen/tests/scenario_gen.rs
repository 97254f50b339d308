//! The generators produce what they promise: valid, deterministic scenarios
//! that survive being written as TOML.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;

use ipnet::IpNet;
use proptest::prelude::*;
use vpnsim_scenario_gen::deploy::{arb_deploy_spec, build_deployment};
use vpnsim_scenario_gen::{arb_deployment, arb_scenario, large, to_toml, try_to_toml};
use vpnsim_topology::{LoadError, load_str};

fn load(name: &str, text: &str) -> vpnsim_topology::Scenario {
    match load_str(name, text) {
        Ok(s) => s,
        Err(LoadError::Invalid { diagnostics, .. }) => {
            let shown: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
            panic!(
                "{name} does not load:\n{}\n--- text ---\n{text}",
                shown.join("\n")
            )
        }
        Err(e) => panic!("{name}: {e}"),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_scenarios_load(file in arb_scenario()) {
        let text = to_toml(&file);
        let loaded = load("generated.toml", &text);
        prop_assert_eq!(&loaded.file, &file);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Deployments load, round-trip, and keep the layout's promise:
    /// every host address in the plan is unique.
    #[test]
    fn generated_deployments_load_with_unique_addresses(file in arb_deployment()) {
        let text = to_toml(&file);
        let loaded = load("deployment.toml", &text);
        prop_assert_eq!(&loaded.file, &file);
        prop_assert!(loaded.file.events.is_empty());
        let mut seen = BTreeSet::new();
        for host in loaded.file.hosts.values() {
            for i in &host.interfaces {
                prop_assert!(i.address.is_some(), "{}", text);
                prop_assert!(seen.insert(i.address), "{:?} twice\n{}", i.address, text);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// An active-backup bond's links are all dialled by one host: dialled
    /// from both ends, each host would make active the link that came up
    /// first there (the listening side finishes first) and drop the other
    /// host's frames on its backup slave. Every host here is on the
    /// internet and the spec asks for one link dialled from each end.
    #[test]
    fn active_backup_bonds_dial_every_link_from_one_host(
        spec in arb_deploy_spec(),
        a in any::<prop::sample::Index>(),
        b in any::<prop::sample::Index>(),
    ) {
        use vpnsim_scenario_gen::deploy::{DBond, DSite};
        use vpnsim_topology::format::{BondMode, SiteKind};
        let mut spec = spec;
        spec.sites = vec![DSite {
            kind: SiteKind::Roaming,
            uplink: false,
            nat: false,
            subnets: 1,
            v6: false,
            routes: Vec::new(),
        }];
        for h in &mut spec.hosts {
            h.second = 0;
        }
        prop_assume!(a.index(spec.hosts.len()) != b.index(spec.hosts.len()));
        spec.bond = Some(DBond {
            hosts: (a, b),
            mode: BondMode::ActiveBackup,
            links: vec![(true, false), (false, false)],
        });
        let file = build_deployment(spec);
        let bond = file.bond.values().next().unwrap();
        prop_assert_eq!(bond.links.len(), 2);
        let clients: BTreeSet<&String> = bond.links.iter().map(|l| &l.client).collect();
        prop_assert_eq!(clients.len(), 1, "{:?}", bond.links);
    }
}

#[test]
fn large_loads_and_round_trips() {
    for (sites, seed) in [(2, 0), (3, 1), (10, 42), (300, 7), (1000, 3)] {
        let file = large(sites, seed);
        let text = to_toml(&file);
        let loaded = load("large.toml", &text);
        assert_eq!(loaded.file, file, "large({sites}, {seed}) round trip");
        assert_eq!(loaded.topology.sites.len(), sites);
        assert_eq!(loaded.topology.stars[0].workers.len(), sites - 1);
    }
}

#[test]
fn large_is_a_function_of_sites_and_seed() {
    assert_eq!(to_toml(&large(50, 9)), to_toml(&large(50, 9)));
    assert_ne!(to_toml(&large(50, 9)), to_toml(&large(50, 10)));
    // Any u64 seed can be written (TOML integers are signed).
    assert!(try_to_toml(&large(5, u64::MAX)).is_ok());
}

#[test]
fn large_site_blocks_never_overlap_up_to_4000_sites() {
    for sites in [1, 272, 273, 4000, 4352, 4353] {
        let blocks: Vec<_> = (0..sites)
            .map(|i| vpnsim_scenario_gen::large::site_block(i, sites))
            .collect();
        let mut sorted = blocks.clone();
        sorted.sort();
        for pair in sorted.windows(2) {
            assert!(
                pair[0].broadcast() < pair[1].network(),
                "{} overlaps {} ({sites} sites)",
                pair[0],
                pair[1]
            );
        }
        for b in &blocks {
            let private = ["10.0.0.0/8", "172.16.0.0/12"]
                .iter()
                .any(|p| p.parse::<ipnet::Ipv4Net>().unwrap().contains(b));
            assert!(private, "{b} is not RFC 1918");
        }
    }
    let publics: BTreeSet<_> = (0..4000)
        .map(vpnsim_scenario_gen::large::public_address)
        .collect();
    assert_eq!(publics.len(), 4000);
    assert!(publics.iter().all(|a| {
        "198.18.0.0/15"
            .parse::<ipnet::Ipv4Net>()
            .unwrap()
            .contains(a)
    }));
}

#[test]
fn large_subnets_lie_in_their_site() {
    let file = large(400, 5);
    for (name, subnet) in &file.subnets {
        let site = &file.sites[&subnet.site];
        assert!(
            site.cidrs.iter().any(|c: &IpNet| c.contains(&subnet.cidr)),
            "{name}"
        );
    }
    let zones: BTreeSet<_> = file
        .subnets
        .values()
        .filter(|s| s.site == "site-0007")
        .map(|s| s.zone.clone())
        .collect();
    assert!(
        zones.len() >= 2,
        "subnets of one site sit in different zones"
    );
}

#[test]
fn generated_stars_load_and_plan_cleanly() {
    for workers in [1, 10, 1_000] {
        let text = vpnsim_scenario_gen::star_text(workers);
        let scenario = vpnsim_topology::load_str("star.toml", &text)
            .unwrap_or_else(|e| panic!("{workers}: {e}"));
        assert_eq!(scenario.topology.stars[0].workers.len(), workers);
        let planned = vpnsim_plan::plan(&scenario);
        let errors: Vec<String> = planned
            .findings
            .iter()
            .filter(|d| d.severity == vpnsim_topology::Severity::Error)
            .map(|d| d.to_string())
            .collect();
        assert!(errors.is_empty(), "{workers}: {errors:?}");
    }
}

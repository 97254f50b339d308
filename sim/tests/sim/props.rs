//! Property: on random deployable topologies without faults, the static
//! analysis and the simulation agree on reachability.
//!
//! Scenarios come from `vpnsim_scenario_gen::arb_deployment` (disjoint
//! ranges, files that render, no timeline, no impairment besides latency).
//! Each is planned, rendered with demo keys and simulated. For every
//! ordered pair of distinct hosts (A, B) and every address of B a probe
//! can aim at — B's first underlay address and its address on each
//! WireGuard star, PeerVPN mesh, bond and OpenVPN deployment it belongs to
//! — A pings that address once a second, and
//!
//!   the static model (`vpnsim_verify::reach::Engine::flow`: request and
//!   reply) says A reaches it
//!   ⇔ every probe sent in the steady state is answered,
//!   and it says A does not ⇔ none is.
//!
//! The steady state starts after a warm-up long enough for every tunnel to
//! come up (handshakes, OpenVPN's fall-back from UDP to TCP after its
//! 10 s server-poll-timeout, a bond's `sleep 10`, and PeerVPN's peer
//! exchange: members that only know each other through a third learn of
//! each other from its PEERINFO, sent at the latest 60 s after the last
//! one (on a session carrying the probes, exactly then: it is never idle
//! for the 10 s keepalive), and dial at once; a mesh of four whose init
//! peers form a chain needs two such rounds): the static model has no
//! time and takes every tunnel whose underlay works as up, and every pair
//! of mesh members that can dial each other as connected. A probe
//! answered only sometimes fails the property: without loss or faults
//! nothing should flap.
//!
//! OpenVPN client addresses are the plan's: the rendered servers pin each
//! client's pool entry by its certificate's common name
//! (`ifconfig-pool-persist FILE 0`), and a client of one node dials its
//! listeners in order, so it lands on the first process, whose entry the
//! plan names.
//!
//! Deterministic: a fixed proptest seed and no persistence file;
//! `PROPTEST_CASES` runs a longer hunt.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use proptest::prelude::*;
use proptest::test_runner::{RngAlgorithm, RngSeed};
use vpnsim_keys::KeySource;
use vpnsim_plan::Plan;
use vpnsim_render::hosts::{Options, generate};
use vpnsim_scenario_gen::{arb_deployment, to_toml};
use vpnsim_sim::probe::ProbeKind;
use vpnsim_sim::run::{ProbeSpec, RunResult};
use vpnsim_sim::time::{Instant, Span};
use vpnsim_sim::{Addressing, RunOptions, run};
use vpnsim_topology::Scenario;
use vpnsim_topology::model::{BondId, HostId, MeshId, OpenVpnId, OverlayId, StarId};
use vpnsim_verify::reach::{Engine, Probe, Trace};

/// Time for every tunnel to come up before probes are judged: two rounds
/// of PeerVPN's 60 s PEERINFO interval are the longest.
const WARMUP: Span = Span::secs(130);
/// Length of the run: the steady state is [WARMUP, END - timeout).
const END: Span = Span::secs(150);

/// Findings that mean the generator built a broken deployment (a user
/// would be told to fix the file before running it).
const BROKEN: &[&str] = &[
    "cidr-overlap",
    "duplicate-address",
    "address-outside-subnet",
    "port-conflict",
    "profile-range-collision",
    "allowed-ips-overlap",
    "pool-exhausted",
];

/// 32 cases by default (well under a minute in a debug build);
/// `PROPTEST_CASES` overrides it. Fixed seed, no persistence file.
fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32);
    ProptestConfig {
        cases,
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::ChaCha,
        rng_seed: RngSeed::Fixed(0x7670_6e73_696d),
        max_shrink_iters: 200,
        ..ProptestConfig::default()
    }
}

fn load(text: &str) -> Scenario {
    vpnsim_topology::load_str("deployment.toml", text)
        .unwrap_or_else(|e| panic!("a generated deployment does not load: {e:?}\n{text}"))
}

/// Every (sender, target) pair: B's first underlay address and its address
/// on each star, mesh, bond and OpenVPN deployment, for every A ≠ B that
/// does not own it.
fn targets(scenario: &Scenario, plan: &Plan, engine: &Engine<'_>) -> Vec<(HostId, IpAddr)> {
    let t = &scenario.topology;
    let overlays: Vec<Option<OverlayId>> = std::iter::once(None)
        .chain((0..t.stars.len()).map(|i| Some(OverlayId::Star(StarId(i as u32)))))
        .chain((0..t.meshes.len()).map(|i| Some(OverlayId::Mesh(MeshId(i as u32)))))
        .chain((0..t.bonds.len()).map(|i| Some(OverlayId::Bond(BondId(i as u32)))))
        .chain((0..t.openvpn.len()).map(|i| Some(OverlayId::OpenVpn(OpenVpnId(i as u32)))))
        .collect();
    let mut out = BTreeSet::new();
    for a in t.host_ids() {
        for b in t.host_ids().filter(|b| *b != a) {
            for via in &overlays {
                let Some(dst) = engine.target_address(b, *via, None) else {
                    continue;
                };
                if !plan.host_addresses(a).any(|x| x.address == dst) {
                    out.insert((a, dst));
                }
            }
        }
    }
    out.into_iter().collect()
}

/// What the simulation says about one probe: `Some(true)` every steady
/// state probe answered, `Some(false)` none, `None` some.
fn steady(r: &RunResult, probe: usize, options: &RunOptions) -> (Option<bool>, String) {
    let start = Instant::START + WARMUP;
    let stop = Instant::START + END - options.probe_timeout;
    let samples: Vec<_> = r.probes[probe]
        .samples
        .iter()
        .filter(|s| s.sent >= start && s.sent < stop)
        .collect();
    let answered = samples
        .iter()
        .filter(|s| s.ok(options.probe_timeout))
        .count();
    let verdict = match answered {
        0 => Some(false),
        n if n == samples.len() => Some(true),
        _ => None,
    };
    let error = samples
        .iter()
        .find_map(|s| s.error.clone())
        .map(|e| format!(", first error: {e}"))
        .unwrap_or_default();
    (
        verdict,
        format!("{answered}/{} answered{error}", samples.len()),
    )
}

/// Plans, renders and simulates one deployment and compares every probe
/// with `reaches`, the static verdict on a trace (`Trace::delivered`; a
/// test may pass a wrong one to see the comparison fail). `Ok` holds the
/// number of probes; `Err` describes each disagreement with the evidence
/// of both sides.
fn compare(text: &str, reaches: impl Fn(&Trace) -> bool) -> Result<usize, String> {
    let scenario = load(text);
    let t = &scenario.topology;
    let plan = vpnsim_plan::plan(&scenario).plan;
    let broken: Vec<String> = vpnsim_verify::check(&scenario, &plan)
        .into_iter()
        .filter(|d| BROKEN.contains(&d.code.as_str()))
        .map(|d| format!("{}: {}", d.code, d.message))
        .collect();
    if !broken.is_empty() {
        return Err(format!(
            "the generator built a broken deployment: {broken:#?}"
        ));
    }
    let keys = KeySource::demo(t.seed);
    let files = generate(&scenario, &plan, &keys, &Options::default())
        .map_err(|e| format!("a generated deployment does not render: {e:?}"))?;
    let engine = Engine::new(t, &plan);
    let pairs = targets(&scenario, &plan, &engine);
    let options = RunOptions {
        probes: pairs
            .iter()
            .map(|(a, dst)| ProbeSpec {
                from: t.host(*a).name.clone(),
                target: *dst,
                source: None,
                kind: ProbeKind::Icmp { len: 56 },
            })
            .collect(),
        duration: Some(END),
        warmup: WARMUP,
        ..RunOptions::default()
    };
    let r = run(&scenario, &Addressing::from(&plan), &files, &options)
        .map_err(|e| format!("the simulation does not start: {e}"))?;
    // The scenario declares no expectations: the probes are ours alone.
    let mut disagreements = String::new();
    for (i, (a, dst)) in pairs.iter().enumerate() {
        let trace = engine.flow(*a, *dst, Probe::PING);
        let static_says = reaches(&trace);
        let (sim, evidence) = steady(&r, i, &options);
        if sim != Some(static_says) {
            let why = trace
                .reason
                .clone()
                .unwrap_or_else(|| trace.hops.join(" → "));
            let _ = writeln!(
                disagreements,
                "{} → {} ({dst}): static {} [{why}]; simulation {evidence}",
                t.host(*a).name,
                r.probes[i].to,
                if static_says {
                    "reaches"
                } else {
                    "does not reach"
                },
            );
        }
    }
    if disagreements.is_empty() {
        Ok(pairs.len())
    } else {
        let drops: Vec<String> = r
            .drops
            .iter()
            .map(|(reason, n)| format!("  {n}x {reason}"))
            .collect();
        Err(format!(
            "{disagreements}simulator drops:\n{}",
            drops.join("\n")
        ))
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn static_reachability_is_what_the_simulation_measures(file in arb_deployment()) {
        let text = to_toml(&file);
        if let Err(e) = compare(&text, |t| t.delivered) {
            prop_assert!(false, "{e}\n--- scenario ---\n{text}");
        }
    }
}

/// The comparison can fail: on a deployment the two sides once disagreed
/// on (an OpenVPN client answers pings to its internet address into its
/// tunnel, where the node drops them: "MULTI: bad source address") the
/// static model agrees with the simulation, and a static verdict that
/// says "reaches" to everything does not.
#[test]
fn the_comparison_tells_a_wrong_static_verdict_apart() {
    let text = r#"
[scenario]
name = "client"
seed = 9
[links.internet]
kind = "wan"
latency = "10ms"
[sites.road]
kind = "roaming"
[hosts.node]
site = "road"
forwarding = true
interfaces = [{ name = "eth0", link = "internet", address = "203.0.113.1" }]
[hosts.laptop]
site = "road"
interfaces = [{ name = "eth0", link = "internet", address = "203.0.113.2" }]
[hosts.web]
site = "road"
interfaces = [{ name = "eth0", link = "internet", address = "203.0.113.3" }]
[openvpn.vpn]
controller = "node"
[openvpn.vpn.profiles.p]
profile_number = 1
display_name = "P"
node = "node"
host_name = "vpn.example.net"
range = "10.8.0.0/24"
nat = ["IPv4"]
[[openvpn.vpn.clients]]
host = "laptop"
profile = "p"
[dns."vpn.example.net"]
a = ["203.0.113.1"]
"#;
    assert_eq!(compare(text, |t| t.delivered), Ok(10));
    let wrong = compare(text, |_| true).expect_err("web cannot reach the laptop");
    assert!(
        wrong.contains("web → laptop (203.0.113.2): static reaches")
            && wrong.contains("simulation 0/"),
        "{wrong}"
    );
}

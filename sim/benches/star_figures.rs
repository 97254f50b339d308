//! Simulator figures for the notes: a WireGuard star (persistent keepalive
//! 25 s, every tenth worker with an endpoint) with one ping per worker per
//! second to the hub's overlay address, for 60 simulated seconds. Prints
//! wall time, simulated/real ratio, events per second and peak resident
//! memory (`VmHWM`).
//!
//! `cargo bench -p vpnsim-sim --bench star_figures` runs 1,000 and 10,000
//! workers (`VPNSIM_WORKERS=1000,5000` to choose), each `VPNSIM_RUNS`
//! times (default 3) and prints every run and the fastest and median wall
//! time: on a shared machine one run can be twice as slow as the next.
//! Under `cargo test` (no `--bench` argument) it runs 20 workers for 10 s
//! as a smoke test.

#![allow(clippy::unwrap_used)]
// A benchmark measures real elapsed time; nothing here feeds a model or a report.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use vpnsim_keys::KeySource;
use vpnsim_plan::Attachment;
use vpnsim_render::hosts::{Options, generate};
use vpnsim_scenario_gen::star_text;
use vpnsim_sim::probe::ProbeKind;
use vpnsim_sim::run::ProbeSpec;
use vpnsim_sim::time::Span;
use vpnsim_sim::{Addressing, RunOptions};
use vpnsim_topology::model::StarId;

fn peak_rss() -> String {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_string())
        })
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or_else(|| "n/a".into(), |kb| format!("{:.1} MiB", kb / 1024.0))
}

/// One run; returns its wall time in seconds.
fn star(workers: usize, seconds: u64) -> f64 {
    let text = star_text(workers);
    let scenario = vpnsim_topology::load_str("star.toml", &text).unwrap();
    let planned = vpnsim_plan::plan(&scenario);
    let files = generate(
        &scenario,
        &planned.plan,
        &KeySource::demo(1),
        &Options::default(),
    )
    .unwrap_or_else(|e| {
        panic!(
            "{}",
            e.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    let t = &scenario.topology;
    let hub = t.stars[0].hub;
    let hub_overlay = planned
        .plan
        .address_on(hub, Attachment::Star(StarId(0)))
        .unwrap();
    let probes: Vec<ProbeSpec> = t.stars[0]
        .workers
        .iter()
        .map(|&w| ProbeSpec {
            from: t.host(w).name.clone(),
            target: hub_overlay,
            source: None,
            kind: ProbeKind::Icmp { len: 56 },
        })
        .collect();
    let options = RunOptions {
        duration: Some(Span::secs(seconds)),
        probes,
        ..RunOptions::default()
    };
    let addressing = Addressing::from(&planned.plan);
    let start = Instant::now();
    let result = vpnsim_sim::run(&scenario, &addressing, &files, &options).unwrap();
    let wall = start.elapsed().as_secs_f64();
    let (sent, answered) = result.probes.iter().fold((0u64, 0u64), |(s, a), p| {
        (s + u64::from(p.sent), a + u64::from(p.answered))
    });
    assert!(answered > 0, "no ping was answered");
    // When the pings that went unanswered were sent: every host boots at
    // 0 s, so the first seconds carry the handshake burst (cookie replies
    // when the hub's handshake queue is long).
    let lost_after_10s = result
        .probes
        .iter()
        .flat_map(|p| &p.samples)
        .filter(|s| s.reply.is_none() && s.sent.0 >= 10_000_000_000)
        .count();
    let mut drops: Vec<(&String, &u64)> = result.drops.iter().collect();
    drops.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let top: Vec<String> = drops
        .iter()
        .take(3)
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    println!(
        "WireGuard star, {workers} workers, {seconds} s simulated: wall {wall:.2} s, {:.0}x real time, {} events ({:.0}/s), {} probes, pings {answered}/{sent} answered ({lost_after_10s} lost after 10 s), peak rss {}; top drops: {}",
        seconds as f64 / wall,
        result.events_run,
        result.events_run as f64 / wall,
        result.probes.len(),
        peak_rss(),
        if top.is_empty() {
            "none".to_string()
        } else {
            top.join("; ")
        }
    );
    wall
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    if !benching {
        star(20, 10);
        return;
    }
    let sizes = std::env::var("VPNSIM_WORKERS").unwrap_or_else(|_| "1000,10000".into());
    let runs: usize = std::env::var("VPNSIM_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3)
        .max(1);
    for n in sizes.split(',').filter_map(|s| s.trim().parse().ok()) {
        let mut walls: Vec<f64> = (0..runs).map(|_| star(n, 60)).collect();
        walls.sort_by(f64::total_cmp);
        let (fastest, median) = (walls[0], walls[walls.len() / 2]);
        println!(
            "  {n} workers over {runs} runs: fastest {fastest:.2} s ({:.0}x real time), median {median:.2} s ({:.0}x)",
            60.0 / fastest,
            60.0 / median
        );
    }
}

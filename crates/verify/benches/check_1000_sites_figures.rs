//! One run of the static pipeline on a generated 1,000-site deployment,
//! printing wall time per stage and the process's peak resident memory
//! (`VmHWM` from /proc/self/status), for figures to quote in notes.
//!
//! `cargo bench -p vpnsim-verify --bench check_1000_sites_figures`;
//! `VPNSIM_SITES=4000` changes the size.

#![allow(clippy::unwrap_used)]
// A benchmark measures real elapsed time; nothing here feeds a model or a report.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use vpnsim_scenario_gen::{large, to_toml};

/// A `kB` figure from /proc/self/status (Linux only; `None` elsewhere).
fn proc_status_kb(key: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(key))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn mib(kb: Option<u64>) -> String {
    kb.map_or_else(
        || "n/a".into(),
        |kb| format!("{:.1} MiB", kb as f64 / 1024.0),
    )
}

fn stage<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let start = Instant::now();
    let out = f();
    let elapsed = start.elapsed();
    println!(
        "{name:<22} {:>10.1} ms   rss {:>10}   peak {:>10}",
        elapsed.as_secs_f64() * 1e3,
        mib(proc_status_kb("VmRSS:")),
        mib(proc_status_kb("VmHWM:"))
    );
    out
}

fn main() {
    let sites: usize = std::env::var("VPNSIM_SITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    println!("static pipeline, {sites} sites (vpnsim_scenario_gen::large({sites}, 1))");
    let total = Instant::now();
    let file = stage("generate", || large(sites, 1));
    let text = stage("write toml", || to_toml(&file));
    drop(file);
    let scenario = stage("load (parse+resolve)", || {
        match vpnsim_topology::load_str("large.toml", &text) {
            Ok(s) => s,
            Err(e) => panic!("generated scenario does not load: {e}"),
        }
    });
    let planned = stage("plan", || vpnsim_plan::plan(&scenario));
    let findings = stage("verify::check", || {
        vpnsim_verify::check(&scenario, &planned.plan)
    });
    let t = &scenario.topology;
    println!(
        "size: {} bytes of TOML, {} sites, {} subnets, {} hosts, {} addresses, {} IPsec tunnels",
        text.len(),
        t.sites.len(),
        t.subnets.len(),
        t.hosts.len(),
        planned.plan.addresses.len(),
        t.ipsec.iter().map(|i| i.tunnels.len()).sum::<usize>()
    );
    let mut codes: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for d in planned.findings.iter().chain(&findings) {
        *codes.entry(d.code.as_str()).or_default() += 1;
    }
    println!("findings: {codes:?}");
    println!(
        "total {:.1} ms, peak RSS {}",
        total.elapsed().as_secs_f64() * 1e3,
        mib(proc_status_kb("VmHWM:"))
    );
}

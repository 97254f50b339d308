//! Rendering figures for the notes: wall time per stage and peak resident
//! memory (`VmHWM`) for a WireGuard star of 10,000 workers and an IPsec hub
//! with 200 spokes, rendered with demo keys (key derivation included, as
//! `sim gen --demo-keys` does it).
//!
//! `cargo bench -p vpnsim-render --bench render_figures` (one core is what
//! the target is stated for: `taskset -c 0 cargo bench ...`). Under
//! `cargo test` (no `--bench` argument) it runs small sizes as a smoke test.
//! `VPNSIM_WORKERS` / `VPNSIM_SPOKES` change the sizes.

#![allow(clippy::unwrap_used)]
// A benchmark measures real elapsed time; nothing here feeds a model or a report.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

use vpnsim_keys::KeySource;
use vpnsim_render::hosts::{Options, generate};
use vpnsim_scenario_gen::{large, star_text, to_toml};

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
    println!(
        "  {name:<24} {:>10.1} ms   peak rss {:>10}",
        start.elapsed().as_secs_f64() * 1e3,
        mib(proc_status_kb("VmHWM:"))
    );
    out
}

fn size(var: &str, bench: usize, smoke: usize, benching: bool) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if benching { bench } else { smoke })
}

fn render(label: &str, text: &str) {
    println!("{label}");
    let total = Instant::now();
    let scenario = stage("load", || {
        vpnsim_topology::load_str("bench.toml", text).unwrap()
    });
    let planned = stage("plan", || vpnsim_plan::plan(&scenario));
    let keys = KeySource::demo(scenario.topology.seed);
    stage("WireGuard keys alone", || {
        for host in &scenario.topology.hosts {
            if let Ok(label) = vpnsim_keys::Label::wireguard(&host.name, "wg0") {
                let _ = std::hint::black_box(keys.wireguard(&label));
            }
        }
    });
    let files = stage("render (keys + files)", || {
        generate(&scenario, &planned.plan, &keys, &Options::default())
    });
    let files = match files {
        Ok(f) => f,
        Err(errors) => panic!(
            "{label}: {}",
            errors
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")
        ),
    };
    assert!(!files.is_empty(), "{label}: nothing rendered");
    let manifest = stage("manifest (sha256)", || {
        files.manifest_json(&scenario.topology.name)
    });
    let bytes: usize = files.files().map(|f| f.contents.len()).sum();
    println!(
        "  {} files, {:.1} MiB, manifest {} KiB; total {:.1} ms, peak rss {}",
        files.len(),
        bytes as f64 / 1048576.0,
        manifest.len() / 1024,
        total.elapsed().as_secs_f64() * 1e3,
        mib(proc_status_kb("VmHWM:"))
    );
}

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let workers = size("VPNSIM_WORKERS", 10_000, 50, benching);
    let spokes = size("VPNSIM_SPOKES", 200, 5, benching);
    render(
        &format!("WireGuard star, {workers} workers"),
        &star_text(workers),
    );
    render(
        &format!("IPsec hub with {spokes} spokes (+ WireGuard management star)"),
        &to_toml(&large(spokes + 1, 1)),
    );
}

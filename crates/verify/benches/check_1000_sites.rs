//! Throughput of the static pipeline on generated deployments
//! (`vpnsim_scenario_gen::large`): load (TOML parse + name resolution),
//! plan (IPAM), `verify::check`, and all three together, at 100 and 1,000
//! sites (each site: a VPC with 2-3 subnets, a gateway and 1-2 application
//! hosts; IPsec hub-and-spoke plus a WireGuard star over every gateway).
//!
//! Kept short so `cargo bench` finishes in a few minutes on two cores:
//! 10 samples, 10 s of measurement per benchmark. `-- --quick` is faster.

#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use vpnsim_scenario_gen::{large, to_toml};
use vpnsim_topology::{Scenario, load_str};

const SIZES: [usize; 2] = [100, 1_000];
const SEED: u64 = 1;

fn load(text: &str) -> Scenario {
    match load_str("large.toml", text) {
        Ok(s) => s,
        Err(e) => panic!("generated scenario does not load: {e}"),
    }
}

fn pipeline(text: &str) -> usize {
    let scenario = load(text);
    let planned = vpnsim_plan::plan(&scenario);
    let findings = vpnsim_verify::check(&scenario, &planned.plan);
    findings.len() + planned.findings.len()
}

fn benches(c: &mut Criterion) {
    let texts: Vec<(usize, String)> = SIZES
        .iter()
        .map(|&n| (n, to_toml(&large(n, SEED))))
        .collect();

    let mut group = c.benchmark_group("load");
    for (n, text) in &texts {
        group.throughput(criterion::Throughput::Bytes(text.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(n), text, |b, text| {
            b.iter(|| load(black_box(text)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("plan");
    for (n, text) in &texts {
        let scenario = load(text);
        group.bench_with_input(BenchmarkId::from_parameter(n), &scenario, |b, s| {
            b.iter(|| vpnsim_plan::plan(black_box(s)))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("check");
    for (n, text) in &texts {
        let scenario = load(text);
        let planned = vpnsim_plan::plan(&scenario);
        group.bench_with_input(
            BenchmarkId::from_parameter(n),
            &(scenario, planned.plan),
            |b, (s, p)| b.iter(|| vpnsim_verify::check(black_box(s), black_box(p))),
        );
    }
    group.finish();

    let mut group = c.benchmark_group("pipeline");
    for (n, text) in &texts {
        group.bench_with_input(BenchmarkId::from_parameter(n), text, |b, text| {
            b.iter(|| pipeline(black_box(text)))
        });
    }
    group.finish();
}

criterion_group! {
    name = check_1000_sites;
    config = Criterion::default().sample_size(10).measurement_time(Duration::from_secs(10)).warm_up_time(Duration::from_secs(2));
    targets = benches
}
criterion_main!(check_1000_sites);

//! `cargo bench -p vpnsim-bench-turmoil`: the 1,000-worker star for 60
//! simulated seconds under turmoil, printing wall time and the simulated /
//! real ratio (compare with `cargo bench -p vpnsim-sim --bench star_figures`).
//! Under `cargo test` it runs 10 workers for 5 s; `VPNSIM_WORKERS` sets the
//! bench size.

#![allow(clippy::unwrap_used)]
// A benchmark measures real elapsed time.
#![allow(clippy::disallowed_methods)]

use std::time::Instant;

fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let workers = std::env::var("VPNSIM_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let (workers, seconds) = if benching { (workers, 60) } else { (10, 5) };
    let start = Instant::now();
    let counts = vpnsim_bench_turmoil::run_star(workers, seconds).unwrap();
    let wall = start.elapsed().as_secs_f64();
    assert!(counts.answered > 0);
    println!(
        "turmoil star, {workers} workers, {seconds} s simulated: wall {wall:.2} s, {:.1}x real time, pings {}/{} answered",
        seconds as f64 / wall,
        counts.answered,
        counts.sent
    );
}

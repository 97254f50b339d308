//! The progress bar of `sim run`: virtual time simulated over the run's
//! length, and which run of how many (`--seeds`, `--check-determinism`).
//! Drawn on stderr, only when stderr is a terminal and `-q` is not given,
//! so pipes, logs and CI output never carry it; it sees the simulation
//! only through [`vpnsim_sim::run::Progress`], which cannot change a result.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use vpnsim_sim::run::Progress as Hook;

/// Steps of the bar per run.
const PER_RUN: u64 = 1_000;

/// The bar, or nothing.
#[derive(Debug, Clone)]
pub struct Progress {
    bar: Option<ProgressBar>,
    runs: u64,
}

impl Progress {
    /// A bar over `runs` simulations when `shown`, else nothing at all.
    pub fn new(shown: bool, runs: u64) -> Self {
        let bar = shown.then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(runs.max(1) * PER_RUN),
                ProgressDrawTarget::stderr(),
            );
            if let Ok(style) = ProgressStyle::with_template("{prefix} [{bar:24}] {wide_msg}") {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix("sim run");
            bar
        });
        Progress { bar, runs }
    }

    /// The hook for run number `run` (0-based) with `seed`, or `None` when
    /// nothing is drawn (so the simulator runs without observer at all).
    pub fn hook(&self, run: u64, seed: u64) -> Option<Hook> {
        let bar = self.bar.clone()?;
        let runs = self.runs;
        Some(Hook::new(move |reached, total| {
            let part = if total.0 == 0 {
                PER_RUN
            } else {
                (u128::from(reached.0) * u128::from(PER_RUN) / u128::from(total.0)) as u64
            };
            bar.set_position(run * PER_RUN + part.min(PER_RUN));
            bar.set_message(format!(
                "run {}/{runs}, seed {seed}: {}/{} s",
                run + 1,
                reached.0 / 1_000_000_000,
                total.0 / 1_000_000_000
            ));
        }))
    }

    /// Removes the bar before anything else is printed.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

//! The simulation step of `sim run`: the host files (rendered in memory, or
//! read from `--configs DIR`), the main run and the `--seeds` sweep, and
//! writing the trace and pcap files once everything is known.
//!
//! Seeds: the rendered files (demo keys, derived MAC addresses) always come
//! from `[scenario] seed` in the file; `--seed` and `--seeds` choose the
//! simulation's randomness only, so every run of a sweep runs the same
//! files, and they are the files `sim gen --demo-keys` writes.

use std::path::Path;

use anyhow::{Context, Result, bail};
use vpnsim_keys::KeySource;
use vpnsim_render::hosts::{self, Options};
use vpnsim_render::tree::FileSet;
use vpnsim_report::run::HostFiles;
use vpnsim_report::sim::RunFigures;
use vpnsim_sim::{RunOptions, RunResult};

use crate::args::RunArgs;
use crate::pipeline::Checked;
use crate::progress::Progress;

/// What one pass of the simulation produced.
pub struct Simulated {
    /// The files that ran.
    pub files: FileSet,
    pub host_files: HostFiles,
    /// The options of the main run (the report takes the steady state and
    /// the probe timeout from them).
    pub options: RunOptions,
    pub result: RunResult,
    /// With `--seeds N`: the figures of all N runs, the main run first.
    pub sweep: Vec<RunFigures>,
}

/// How many simulations one pass makes.
pub fn runs_per_pass(args: &RunArgs) -> u64 {
    args.seeds.map_or(1, u64::from)
}

/// Renders (or reads) the files and runs them with `seed`, then the
/// following seeds of the sweep. `pass` numbers the passes of
/// `--check-determinism`, for the progress bar.
pub fn simulate(
    args: &RunArgs,
    checked: &Checked,
    seed: u64,
    pass: u64,
    progress: &Progress,
) -> Result<Simulated> {
    let (files, host_files) = host_files(args, checked)?;
    let runs = runs_per_pass(args);
    let first_run = pass * runs;
    let options = RunOptions {
        seed: Some(seed),
        capture: args.pcap.is_some(),
        ..RunOptions::default()
    };
    let addressing = vpnsim_sim::Addressing::from(&checked.planned.plan);
    let run = |options: &RunOptions, k: u64| {
        let options = RunOptions {
            progress: progress.hook(first_run + k, options.seed.unwrap_or(seed)),
            ..options.clone()
        };
        vpnsim_sim::run(&checked.scenario, &addressing, &files, &options)
    };
    let result = run(&options, 0).context("the simulation could not start")?;
    let mut sweep = Vec::new();
    if args.seeds.is_some() {
        sweep.push(RunFigures::of(&result));
        for k in 1..runs {
            let seed = seed.wrapping_add(k);
            let o = RunOptions {
                seed: Some(seed),
                capture: false,
                ..options.clone()
            };
            let other =
                run(&o, k).with_context(|| format!("the run with seed {seed} could not start"))?;
            sweep.push(RunFigures::of(&other));
        }
    }
    Ok(Simulated {
        files,
        host_files,
        options,
        result,
        sweep,
    })
}

fn host_files(args: &RunArgs, checked: &Checked) -> Result<(FileSet, HostFiles)> {
    if let Some(dir) = &args.configs {
        let files = crate::generate::read_tree(dir)
            .with_context(|| format!("cannot read the host files in {}", dir.display()))?;
        return Ok((
            files,
            HostFiles::Configs {
                dir: dir.display().to_string(),
            },
        ));
    }
    let file_seed = checked.scenario.topology.seed;
    let (keys, described) = match &args.keys {
        Some(dir) => (
            KeySource::store(dir).with_context(|| format!("key store {}", dir.display()))?,
            HostFiles::Rendered {
                keys: "store",
                key_seed: None,
            },
        ),
        None => (
            KeySource::demo(file_seed),
            HostFiles::Rendered {
                keys: "demo",
                key_seed: Some(file_seed),
            },
        ),
    };
    match hosts::generate(
        &checked.scenario,
        &checked.planned.plan,
        &keys,
        &Options::default(),
    ) {
        Ok(files) => Ok((files, described)),
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            bail!(
                "the host files could not be rendered:\n  {}",
                list.join("\n  ")
            )
        }
    }
}

/// The trace file's bytes: one line per event, virtual time first.
pub fn trace_bytes(result: &RunResult) -> Vec<u8> {
    result
        .trace
        .iter()
        .map(|line| format!("{line}\n"))
        .collect::<String>()
        .into_bytes()
}

/// `<link>.pcap` for every link and subnet, by file name.
pub fn pcap_files(result: &RunResult) -> Vec<(String, Vec<u8>)> {
    result
        .captures
        .iter()
        .map(|(link, packets)| (format!("{link}.pcap"), vpnsim_sim::pcap::file(packets)))
        .collect()
}

/// `DIR/<link>.pcap`, written as one tree (temporary directory, renamed
/// into place).
pub fn write_pcaps(dir: &Path, files: &[(String, Vec<u8>)]) -> Result<()> {
    crate::write_tree::write_tree(
        dir,
        files
            .iter()
            .map(|(name, bytes)| crate::write_tree::TreeFile {
                path: name.into(),
                mode: 0o644,
                contents: bytes,
            }),
    )
    .with_context(|| format!("cannot write the captures to {}", dir.display()))
}

/// Writes a report file whole: into a temporary sibling, then renamed.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let temp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&temp, bytes).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| {
        let _ = std::fs::remove_file(&temp);
        format!("cannot write {}", path.display())
    })
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use vpnsim_sim::run::Progress as Hook;
    use vpnsim_sim::time::Span;

    use super::*;

    /// A bundled scenario, rendered with demo keys as `sim run` does.
    fn scenario(name: &str) -> (Checked, FileSet) {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../scenarios")
            .join(format!("{name}.toml"));
        let scenario = crate::pipeline::load(&path)
            .unwrap_or_else(|bad| panic!("{}: {:?}", path.display(), bad.diagnostics));
        let checked = crate::pipeline::plan_and_verify(path.display().to_string(), scenario);
        let keys = KeySource::demo(checked.scenario.topology.seed);
        let files = hosts::generate(
            &checked.scenario,
            &checked.planned.plan,
            &keys,
            &Options::default(),
        )
        .unwrap_or_else(|e| panic!("{name} renders: {e:?}"));
        (checked, files)
    }

    #[test]
    fn the_progress_hook_sees_the_run_advance_and_changes_nothing() {
        for name in ["wireguard-star", "dual-path-bond"] {
            let (checked, files) = scenario(name);
            let addressing = vpnsim_sim::Addressing::from(&checked.planned.plan);
            let plain = RunOptions {
                capture: true,
                ..RunOptions::default()
            };
            let without = vpnsim_sim::run(&checked.scenario, &addressing, &files, &plain)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let seen: Arc<Mutex<Vec<(Span, Span)>>> = Arc::default();
            let log = Arc::clone(&seen);
            let observed = RunOptions {
                progress: Some(Hook::new(move |reached, total| {
                    if let Ok(mut v) = log.lock() {
                        v.push((reached, total));
                    }
                })),
                ..plain.clone()
            };
            let with = vpnsim_sim::run(&checked.scenario, &addressing, &files, &observed)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            assert!(with == without, "{name}: the hook changed the result");
            assert_eq!(trace_bytes(&with), trace_bytes(&without));
            assert_eq!(pcap_files(&with), pcap_files(&without));
            let seen = seen.lock().map(|v| v.clone()).unwrap_or_default();
            assert!(
                seen.len() > 30,
                "{name}: called about once per virtual second"
            );
            assert!(
                seen.windows(2).all(|w| w[0].0 < w[1].0),
                "{name}: time only advances"
            );
            assert_eq!(
                seen.last(),
                Some(&(with.duration, with.duration)),
                "{name}: the last call reports the end"
            );
        }
    }
}

//! The simulation step of `sim run`: the host files (rendered in memory, or
//! read from `--configs DIR`), the engine, and the optional determinism check
//! and trace file.

use std::path::Path;

use anyhow::{Context, Result, bail};
use vpnsim_keys::KeySource;
use vpnsim_render::hosts::{self, Options};
use vpnsim_render::tree::FileSet;
use vpnsim_sim::{RunOptions, RunResult};

use crate::args::RunArgs;
use crate::pipeline::Checked;

/// The main run and, with `--seeds N`, the runs of the N-1 following seeds.
pub struct Simulated {
    pub result: RunResult,
    pub sweep: Vec<RunResult>,
}

/// Renders (or reads) the files and runs them.
pub fn simulate(args: &RunArgs, checked: &Checked) -> Result<Simulated> {
    let files = host_files(args, checked)?;
    let options = RunOptions {
        seed: Some(checked.scenario.topology.seed),
        capture: args.pcap.is_some(),
        ..RunOptions::default()
    };
    let addressing = vpnsim_sim::Addressing::from(&checked.planned.plan);
    let run = || vpnsim_sim::run(&checked.scenario, &addressing, &files, &options);
    let result = run().context("the simulation could not start")?;
    if args.check_determinism {
        let again = run().context("the second run could not start")?;
        if format!("{again:?}") != format!("{result:?}") {
            bail!(
                "two runs with seed {} differ: the simulation is not deterministic (a bug; please report it)",
                result.seed
            );
        }
        tracing::info!("determinism: two runs gave identical results");
    }
    if let Some(path) = &args.trace {
        let text: String = result
            .trace
            .iter()
            .map(|line| format!("{line}\n"))
            .collect();
        write_file(path, &text)?;
    }
    if let Some(dir) = &args.pcap {
        write_pcaps(dir, &result)?;
    }
    let mut sweep = Vec::new();
    if let Some(n) = args.seeds {
        for k in 0..u64::from(n) {
            let seed = result.seed.wrapping_add(k);
            let o = RunOptions {
                seed: Some(seed),
                capture: false,
                ..options.clone()
            };
            sweep.push(
                vpnsim_sim::run(&checked.scenario, &addressing, &files, &o)
                    .with_context(|| format!("the run with seed {seed} could not start"))?,
            );
        }
    }
    Ok(Simulated { result, sweep })
}

fn host_files(args: &RunArgs, checked: &Checked) -> Result<FileSet> {
    if let Some(dir) = &args.configs {
        return crate::generate::read_tree(dir)
            .with_context(|| format!("cannot read the host files in {}", dir.display()));
    }
    let keys = match &args.keys {
        Some(dir) => {
            KeySource::store(dir).with_context(|| format!("key store {}", dir.display()))?
        }
        None => KeySource::demo(checked.scenario.topology.seed),
    };
    match hosts::generate(
        &checked.scenario,
        &checked.planned.plan,
        &keys,
        &Options::default(),
    ) {
        Ok(files) => Ok(files),
        Err(errors) => {
            let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
            bail!(
                "the host files could not be rendered:\n  {}",
                list.join("\n  ")
            )
        }
    }
}

/// `DIR/<link>.pcap` for every link and subnet, written as one tree
/// (temporary directory, renamed into place).
fn write_pcaps(dir: &Path, result: &RunResult) -> Result<()> {
    let files: Vec<(String, Vec<u8>)> = result
        .captures
        .iter()
        .map(|(link, packets)| (format!("{link}.pcap"), vpnsim_sim::pcap::file(packets)))
        .collect();
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
fn write_file(path: &Path, text: &str) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("{} names no file", path.display()))?;
    let temp = path.with_file_name(format!(
        ".{}.tmp-{}",
        name.to_string_lossy(),
        std::process::id()
    ));
    std::fs::write(&temp, text).with_context(|| format!("cannot write {}", temp.display()))?;
    std::fs::rename(&temp, path).with_context(|| {
        let _ = std::fs::remove_file(&temp);
        format!("cannot write {}", path.display())
    })
}

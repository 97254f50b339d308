//! The `sim run` report: the static findings, the plan, and what the
//! simulation measured ([`crate::sim::SimulationReport`]), or one line
//! saying why it did not run.

use serde::Serialize;
use vpnsim_topology::Diagnostic;
use vpnsim_topology::model::ExpectationsM;

use crate::diagnostics::{self, FileDiagnostics, Style};
use crate::plan::PlanReport;
use crate::to_json;

/// Where the seed of a run came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SeedSource {
    /// `[scenario] seed` in the file.
    File,
    /// `--seed` on the command line.
    CommandLine,
}

/// Which host files the simulation ran.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "source", rename_all = "kebab-case")]
pub enum HostFiles {
    /// Rendered in memory from the scenario. Demo keys (and everything
    /// else rendering derives from a seed) come from `key_seed`, the
    /// `[scenario] seed` of the file: `--seed` and `--seeds` vary the
    /// simulation, not the files.
    Rendered {
        /// `demo` or `store`.
        keys: &'static str,
        /// The seed demo keys are derived from (absent with a key store).
        #[serde(skip_serializing_if = "Option::is_none")]
        key_seed: Option<u64>,
    },
    /// Read from a tree (`--configs DIR`).
    Configs { dir: String },
}

impl HostFiles {
    /// One line for the text report.
    pub fn line(&self) -> String {
        match self {
            HostFiles::Rendered {
                key_seed: Some(seed),
                ..
            } => format!(
                "Host files: rendered in memory with demo keys from seed {seed} ([scenario] seed; --seed varies only the simulation)"
            ),
            HostFiles::Rendered { .. } => {
                String::from("Host files: rendered in memory with the keys of the key store")
            }
            HostFiles::Configs { dir } => format!("Host files: read from {dir}"),
        }
    }
}

/// How many expectations of each kind the scenario declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct ExpectationCounts {
    pub reach: usize,
    pub isolated: usize,
    pub recover: usize,
    pub throughput: usize,
}

impl ExpectationCounts {
    pub fn of(expect: &ExpectationsM) -> Self {
        ExpectationCounts {
            reach: expect.reach.len(),
            isolated: expect.isolated.len(),
            recover: expect.recover.len(),
            throughput: expect.throughput.len(),
        }
    }
}

/// What the simulation stage did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SimulationStatus {
    /// `not-implemented` until `sim/` exists; `not-run` after input errors.
    pub status: &'static str,
    pub expectations_declared: ExpectationCounts,
    pub expectations_evaluated: usize,
}

impl SimulationStatus {
    /// The simulator does not exist yet: nothing was evaluated.
    pub fn not_implemented(declared: ExpectationCounts) -> Self {
        SimulationStatus {
            status: "not-implemented",
            expectations_declared: declared,
            expectations_evaluated: 0,
        }
    }

    /// The simulation ran and judged `evaluated` expectations.
    pub fn ran(declared: ExpectationCounts, evaluated: usize) -> Self {
        SimulationStatus {
            status: "ran",
            expectations_declared: declared,
            expectations_evaluated: evaluated,
        }
    }

    /// The simulation could not start (a rendered file did not load).
    pub fn failed(declared: ExpectationCounts) -> Self {
        SimulationStatus {
            status: "failed",
            expectations_declared: declared,
            expectations_evaluated: 0,
        }
    }

    /// The scenario could not be loaded.
    pub fn not_run() -> Self {
        SimulationStatus {
            status: "not-run",
            expectations_declared: ExpectationCounts::default(),
            expectations_evaluated: 0,
        }
    }

    /// One line for the text report.
    pub fn line(&self) -> String {
        let d = self.expectations_declared;
        match self.status {
            "not-implemented" => format!(
                "Simulation: the simulation engine is not implemented yet, so no runtime expectations were evaluated \
                 ({} reach, {} isolated, {} recover, {} throughput declared).",
                d.reach, d.isolated, d.recover, d.throughput
            ),
            "ran" => format!(
                "Simulation: {} expectations evaluated.",
                self.expectations_evaluated
            ),
            "failed" => String::from("Simulation: could not start; see the error above."),
            _ => String::from("Simulation: not run, because the scenario could not be loaded."),
        }
    }
}

/// Everything `sim run` reports.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport<'a> {
    pub file: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scenario: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed_from: Option<SeedSource>,
    /// The files the simulation ran, when it got that far.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host_files: Option<HostFiles>,
    /// Input errors, or planning and verification findings.
    pub findings: &'a [Diagnostic],
    pub plan: Option<PlanReport<'a>>,
    pub simulation: SimulationStatus,
    /// What the simulation measured, when it ran.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<crate::sim::SimulationReport>,
    /// `--seeds N`: every expectation over N seeds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sweep: Option<crate::sim::SweepReport>,
    /// The file's text, for source snippets in the text report.
    #[serde(skip)]
    pub source: Option<&'a str>,
}

impl RunReport<'_> {
    pub fn json(&self) -> String {
        to_json(self)
    }

    pub fn text(&self, style: Style, quiet: bool) -> String {
        let mut out = format!("sim run {}", self.file);
        if let (Some(name), Some(seed)) = (self.scenario, self.seed) {
            let from = match self.seed_from {
                Some(SeedSource::CommandLine) => "from --seed",
                _ => "from the file",
            };
            out.push_str(&format!(": scenario `{name}`, seed {seed} ({from})"));
        }
        if let Some(files) = &self.host_files {
            out.push('\n');
            out.push_str(&files.line());
        }
        out.push_str("\n\nStatic checks:\n");
        let files = [FileDiagnostics {
            file: self.file,
            source: self.source,
            diagnostics: self.findings,
        }];
        out.push_str(&diagnostics::check_text(&files, style, quiet));
        if let Some(plan) = &self.plan {
            out.push('\n');
            out.push_str(&plan.text());
        }
        out.push('\n');
        match &self.result {
            Some(result) => {
                out.push_str(&result.text());
                if let Some(sweep) = &self.sweep {
                    out.push_str(&sweep.text());
                }
            }
            None => {
                out.push_str(&self.simulation.line());
                out.push('\n');
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_implemented_is_said_in_one_line() {
        let status = SimulationStatus::not_implemented(ExpectationCounts {
            reach: 2,
            isolated: 1,
            recover: 0,
            throughput: 0,
        });
        let line = status.line();
        assert!(!line.contains('\n'));
        assert!(line.contains("not implemented yet"));
        assert!(line.contains("2 reach, 1 isolated"));
        let report = RunReport {
            file: "x.toml",
            scenario: Some("x"),
            seed: Some(9),
            seed_from: Some(SeedSource::CommandLine),
            host_files: None,
            findings: &[],
            plan: None,
            simulation: status,
            result: None,
            sweep: None,
            source: None,
        };
        let text = report.text(Style::Plain, false);
        assert!(
            text.starts_with("sim run x.toml: scenario `x`, seed 9 (from --seed)\n"),
            "{text}"
        );
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap_or_default();
        assert_eq!(json["simulation"]["status"], "not-implemented");
        assert_eq!(json["seed_from"], "command-line");
    }
}

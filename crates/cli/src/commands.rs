//! One function per subcommand. Each returns what to print and how the
//! process ends; `main` does the printing.

use clap::CommandFactory;
use vpnsim_report::diagnostics::{self, FileDiagnostics};
use vpnsim_report::plan::PlanReport;
use vpnsim_report::run::{ExpectationCounts, RunReport, SeedSource, SimulationStatus};
use vpnsim_report::sim::{SimulationReport, SweepReport};
use vpnsim_report::{Format, Style};
use vpnsim_topology::Diagnostic;
use vpnsim_verify::Ctx;
use vpnsim_verify::reach::{SiteMatrix, site_matrix};

use crate::args::{CheckArgs, Cli, PlanArgs, RunArgs, RunFormatArg};
use crate::determinism::{self, Artifact};
use crate::pipeline::{self, BadInput, Checked};
use crate::progress::Progress;

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// No error findings (warnings allowed).
    Clean,
    /// At least one error finding.
    Findings,
    /// Bad input: unreadable, malformed or invalid file.
    BadInput,
    /// `sim run --check-determinism`: two passes differ (a bug in vpnsim).
    Nondeterministic,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Clean => 0,
            Outcome::Findings => 1,
            Outcome::BadInput => 2,
            Outcome::Nondeterministic => 3,
        }
    }

    fn of_findings(findings: &[Diagnostic]) -> Self {
        if findings
            .iter()
            .any(|d| d.severity == vpnsim_topology::Severity::Error)
        {
            Outcome::Findings
        } else {
            Outcome::Clean
        }
    }
}

/// What a command produced.
#[derive(Debug, Default)]
pub struct Output {
    pub stdout: String,
    pub stderr: String,
}

/// Terminal settings that rendering depends on, decided once in `main`.
#[derive(Debug, Clone, Copy)]
pub struct Terminal {
    pub stdout: Style,
    pub stderr: Style,
    pub quiet: bool,
    /// Draw progress bars: stderr is a terminal and `-q` was not given.
    pub progress: bool,
}

/// `sim check FILE...`: every file is reported, even after a bad one.
pub fn check(args: &CheckArgs, term: Terminal) -> (Output, Outcome) {
    let results: Vec<Result<Checked, BadInput>> =
        args.files.iter().map(|p| pipeline::check(p)).collect();
    let outcome = results
        .iter()
        .map(|r| match r {
            Ok(checked) => Outcome::of_findings(&checked.findings),
            Err(_) => Outcome::BadInput,
        })
        .max()
        .unwrap_or(Outcome::Clean);
    let files: Vec<FileDiagnostics<'_>> = results.iter().map(file_diagnostics).collect();
    let stdout = match args.format.into() {
        Format::Json => diagnostics::findings_json(files.iter().flat_map(|f| f.diagnostics)),
        Format::Text => diagnostics::check_text(&files, term.stdout, term.quiet),
    };
    (
        Output {
            stdout,
            stderr: String::new(),
        },
        outcome,
    )
}

fn file_diagnostics(result: &Result<Checked, BadInput>) -> FileDiagnostics<'_> {
    match result {
        Ok(c) => FileDiagnostics {
            file: &c.file,
            source: Some(&c.scenario.source.text),
            diagnostics: &c.findings,
        },
        Err(b) => FileDiagnostics {
            file: &b.file,
            source: b.source.as_deref(),
            diagnostics: &b.diagnostics,
        },
    }
}

fn matrix(checked: &Checked) -> SiteMatrix {
    site_matrix(&Ctx {
        scenario: &checked.scenario,
        plan: &checked.planned.plan,
    })
}

/// `sim plan FILE`: the plan on stdout; input errors and planning findings
/// on stderr (in JSON mode, input errors as `{"findings": [...]}` on stdout
/// and planning findings inside the plan object).
pub fn plan(args: &PlanArgs, term: Terminal) -> (Output, Outcome) {
    let format: Format = args.format.into();
    let scenario = match pipeline::load(&args.file) {
        Ok(s) => s,
        Err(bad) => return (bad_input_output(&bad, format, term), Outcome::BadInput),
    };
    // The plan shows the plan stage only; `check` runs the verifier's findings.
    let checked = Checked {
        file: args.file.display().to_string(),
        planned: vpnsim_plan::plan(&scenario),
        scenario,
        findings: Vec::new(),
    };
    let matrix = matrix(&checked);
    let report = PlanReport::new(&checked.file, &checked.scenario, &checked.planned, &matrix);
    let plan_findings = &checked.planned.findings;
    let mut output = Output::default();
    match format {
        Format::Json => output.stdout = report.json(),
        Format::Text => {
            output.stdout = report.text();
            if !plan_findings.is_empty() {
                let files = [FileDiagnostics {
                    file: &checked.file,
                    source: Some(&checked.scenario.source.text),
                    diagnostics: plan_findings,
                }];
                output.stderr = diagnostics::check_text(&files, term.stderr, term.quiet);
            }
        }
    }
    (output, Outcome::of_findings(plan_findings))
}

/// Input errors of a command whose stdout is a document of its own.
fn bad_input_output(bad: &BadInput, format: Format, term: Terminal) -> Output {
    match format {
        Format::Json => Output {
            stdout: diagnostics::findings_json(&bad.diagnostics),
            stderr: String::new(),
        },
        Format::Text => {
            let files = [FileDiagnostics {
                file: &bad.file,
                source: bad.source.as_deref(),
                diagnostics: &bad.diagnostics,
            }];
            Output {
                stdout: String::new(),
                stderr: diagnostics::check_text(&files, term.stderr, term.quiet),
            }
        }
    }
}

/// `sim run FILE`: checks, plan, the simulation (and with
/// `--check-determinism` a second pass compared byte for byte), then the
/// report in the chosen format and the trace and pcap files.
pub fn run(args: &RunArgs, term: Terminal) -> (Output, Outcome) {
    let file = args.file.display().to_string();
    let format: Format = match args.format {
        RunFormatArg::Json => Format::Json,
        _ => Format::Text,
    };
    let scenario = match pipeline::load(&args.file) {
        Ok(s) => s,
        Err(bad) => {
            let report = RunReport {
                file: &file,
                scenario: None,
                seed: None,
                seed_from: None,
                host_files: None,
                findings: &bad.diagnostics,
                plan: None,
                simulation: SimulationStatus::not_run(),
                result: None,
                sweep: None,
                source: bad.source.as_deref(),
            };
            return (render_run(&report, format, term), Outcome::BadInput);
        }
    };
    // The seed of the simulation; the files are always rendered with the
    // file's own seed (see `simulate`).
    let (seed, seed_from) = match args.seed {
        Some(seed) => (seed, SeedSource::CommandLine),
        None => (scenario.topology.seed, SeedSource::File),
    };
    let checked = pipeline::plan_and_verify(file.clone(), scenario);
    let passes = if args.check_determinism { 2 } else { 1 };
    let progress = Progress::new(term.progress, passes * crate::simulate::runs_per_pass(args));
    let first = pass(args, &checked, seed, seed_from, 0, &progress, term);
    let first_counts = (first.host_file_count, first.pcap_count);
    if args.check_determinism && first.simulated {
        let second = pass(args, &checked, seed, seed_from, 1, &progress, term);
        progress.finish();
        if let Some(difference) = determinism::compare(&first.artifacts, &second.artifacts) {
            let stderr = format!(
                "sim run: error: not deterministic: two passes with seed {seed} differ: {difference}\n\
                 This is a bug in vpnsim, not in the scenario; please report it with this message.\n"
            );
            return (
                Output {
                    stdout: String::new(),
                    stderr,
                },
                Outcome::Nondeterministic,
            );
        }
        let mut output = first.finish(args);
        if !term.quiet {
            output.0.stderr.insert_str(0, &format!(
                "sim run: deterministic: two passes with seed {seed} gave byte-identical output \
                 ({} host files, event trace, {} pcap files, text, JSON and JUnit reports)\n",
                first_counts.0, first_counts.1
            ));
        }
        return output;
    }
    progress.finish();
    first.finish(args)
}

/// One pass of `sim run`: everything it would print and write, in memory.
struct Pass {
    /// The simulation ran (else `stderr` says why).
    simulated: bool,
    /// Host files, trace, pcap files, and the report in every format.
    artifacts: Vec<Artifact>,
    host_file_count: usize,
    pcap_count: usize,
    /// The report in the chosen format.
    stdout: String,
    stderr: String,
    outcome: Outcome,
    /// The trace file to write, when asked for and the simulation ran.
    trace: Option<Vec<u8>>,
    /// The pcap files to write (name, bytes), likewise.
    pcaps: Option<Vec<(String, Vec<u8>)>>,
}

fn pass(
    args: &RunArgs,
    checked: &Checked,
    seed: u64,
    seed_from: SeedSource,
    number: u64,
    progress: &Progress,
    term: Terminal,
) -> Pass {
    let file = &checked.file;
    let t = &checked.scenario.topology;
    let matrix = matrix(checked);
    let declared = ExpectationCounts::of(&t.expect);
    let simulated = crate::simulate::simulate(args, checked, seed, number, progress);
    let mut stderr = String::new();
    let mut artifacts = Vec::new();
    let mut host_file_count = 0;
    let mut pcap_count = 0;
    let (simulation, result, sweep, host_files) = match &simulated {
        Ok(s) => {
            for f in s.files.files() {
                artifacts.push(Artifact::text(
                    format!("host file {}/{}", f.host, f.path),
                    f.contents.clone(),
                ));
                host_file_count += 1;
            }
            artifacts.push(Artifact::text(
                "the event trace (--trace)",
                String::from_utf8_lossy(&crate::simulate::trace_bytes(&s.result)).into_owned(),
            ));
            for (name, bytes) in crate::simulate::pcap_files(&s.result) {
                artifacts.push(Artifact::binary(format!("pcap {name} (--pcap)"), bytes));
                pcap_count += 1;
            }
            let report = SimulationReport::new(&s.result, &s.options);
            let sweep = (!s.sweep.is_empty()).then(|| SweepReport::new(&report, &s.sweep));
            (
                SimulationStatus::ran(declared, report.expectations.len()),
                Some(report),
                sweep,
                Some(s.host_files.clone()),
            )
        }
        Err(error) => {
            stderr = format!("sim run: {error:#}\n");
            (SimulationStatus::failed(declared), None, None, None)
        }
    };
    let report = RunReport {
        file,
        scenario: Some(&t.name),
        seed: Some(seed),
        seed_from: Some(seed_from),
        host_files,
        findings: &checked.findings,
        plan: Some(PlanReport::new(
            file,
            &checked.scenario,
            &checked.planned,
            &matrix,
        )),
        simulation,
        result,
        sweep,
        source: Some(&checked.scenario.source.text),
    };
    let outcome = match &report.result {
        None => Outcome::BadInput,
        Some(r) if !r.all_passed() || report.sweep.as_ref().is_some_and(|s| !s.all_passed()) => {
            Outcome::Findings.max(Outcome::of_findings(&checked.findings))
        }
        Some(_) => Outcome::of_findings(&checked.findings),
    };
    let text = report.text(term.stdout, term.quiet);
    let json = report.json();
    let junit = report
        .result
        .as_ref()
        .map(|r| r.junit(&t.name))
        .unwrap_or_default();
    let stdout = match args.format {
        RunFormatArg::Text => text.clone(),
        RunFormatArg::Json => json.clone(),
        RunFormatArg::Junit => junit.clone(),
    };
    artifacts.push(Artifact::text("the text report", text));
    artifacts.push(Artifact::text("the JSON report (--format json)", json));
    artifacts.push(Artifact::text("the JUnit report (--format junit)", junit));
    let (trace, pcaps) = match &simulated {
        Ok(s) => (
            args.trace
                .as_ref()
                .map(|_| crate::simulate::trace_bytes(&s.result)),
            args.pcap
                .as_ref()
                .map(|_| crate::simulate::pcap_files(&s.result)),
        ),
        Err(_) => (None, None),
    };
    Pass {
        simulated: simulated.is_ok(),
        artifacts,
        host_file_count,
        pcap_count,
        stdout,
        stderr,
        outcome,
        trace,
        pcaps,
    }
}

impl Pass {
    /// Writes the trace and pcap files (only now, after any comparison)
    /// and returns what to print.
    fn finish(self, args: &RunArgs) -> (Output, Outcome) {
        let mut output = Output {
            stdout: self.stdout,
            stderr: self.stderr,
        };
        let mut outcome = self.outcome;
        let (trace, pcaps) = (&self.trace, &self.pcaps);
        let written = (|| -> anyhow::Result<()> {
            if let (Some(path), Some(bytes)) = (&args.trace, trace) {
                crate::simulate::write_file(path, bytes)?;
            }
            if let (Some(dir), Some(files)) = (&args.pcap, pcaps) {
                crate::simulate::write_pcaps(dir, files)?;
            }
            Ok(())
        })();
        if let Err(error) = written {
            output
                .stderr
                .push_str(&format!("sim run: error: {error:#}\n"));
            outcome = outcome.max(Outcome::BadInput);
        }
        (output, outcome)
    }
}

fn render_run(report: &RunReport<'_>, format: Format, term: Terminal) -> Output {
    let stdout = match format {
        Format::Json => report.json(),
        Format::Text => report.text(term.stdout, term.quiet),
    };
    Output {
        stdout,
        stderr: String::new(),
    }
}

/// `sim schema`: the JSON Schema of the scenario format.
pub fn schema() -> Output {
    let schema = vpnsim_topology::json_schema();
    let mut stdout = serde_json::to_string_pretty(&schema).unwrap_or_else(|_| schema.to_string());
    stdout.push('\n');
    Output {
        stdout,
        stderr: String::new(),
    }
}

/// `sim completions SHELL`.
pub fn completions(shell: clap_complete::Shell) -> Output {
    let mut buffer = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "sim", &mut buffer);
    Output {
        stdout: String::from_utf8_lossy(&buffer).into_owned(),
        stderr: String::new(),
    }
}

/// `sim man`: roff for `man -l -`.
pub fn man() -> anyhow::Result<Output> {
    let mut buffer = Vec::new();
    clap_mangen::Man::new(Cli::command()).render(&mut buffer)?;
    Ok(Output {
        stdout: String::from_utf8_lossy(&buffer).into_owned(),
        stderr: String::new(),
    })
}

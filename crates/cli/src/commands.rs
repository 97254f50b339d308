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
use crate::pipeline::{self, BadInput, Checked};

/// How the process ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    /// No error findings (warnings allowed).
    Clean,
    /// At least one error finding.
    Findings,
    /// Bad input: unreadable, malformed or invalid file.
    BadInput,
}

impl Outcome {
    pub fn code(self) -> u8 {
        match self {
            Outcome::Clean => 0,
            Outcome::Findings => 1,
            Outcome::BadInput => 2,
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

/// `sim run FILE`: checks, plan, and the simulation status.
pub fn run(args: &RunArgs, term: Terminal) -> (Output, Outcome) {
    let file = args.file.display().to_string();
    let format: Format = match args.format {
        RunFormatArg::Json => Format::Json,
        _ => Format::Text,
    };
    let mut scenario = match pipeline::load(&args.file) {
        Ok(s) => s,
        Err(bad) => {
            let report = RunReport {
                file: &file,
                scenario: None,
                seed: None,
                seed_from: None,
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
    let seed_from = match args.seed {
        Some(seed) => {
            scenario.topology.seed = seed;
            SeedSource::CommandLine
        }
        None => SeedSource::File,
    };
    let checked = pipeline::plan_and_verify(file.clone(), scenario);
    let matrix = matrix(&checked);
    let t = &checked.scenario.topology;
    let declared = ExpectationCounts::of(&t.expect);
    let mut stderr = String::new();
    let (simulation, result, sweep) = match crate::simulate::simulate(args, &checked) {
        Ok(simulated) => {
            let report = SimulationReport::new(&simulated.result);
            let sweep = (!simulated.sweep.is_empty()).then(|| SweepReport::new(&simulated.sweep));
            (
                SimulationStatus::ran(declared, report.expectations.len()),
                Some(report),
                sweep,
            )
        }
        Err(error) => {
            stderr = format!("sim run: {error:#}\n");
            (SimulationStatus::failed(declared), None, None)
        }
    };
    let report = RunReport {
        file: &file,
        scenario: Some(&t.name),
        seed: Some(t.seed),
        seed_from: Some(seed_from),
        findings: &checked.findings,
        plan: Some(PlanReport::new(
            &file,
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
    let mut output = match args.format {
        RunFormatArg::Junit => Output {
            stdout: report
                .result
                .as_ref()
                .map(|r| r.junit(&t.name))
                .unwrap_or_default(),
            stderr: String::new(),
        },
        RunFormatArg::Json => render_run(&report, Format::Json, term),
        RunFormatArg::Text => render_run(&report, Format::Text, term),
    };
    output.stderr.push_str(&stderr);
    (output, outcome)
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

//! Load → plan → verify for one file, and every way loading can fail turned
//! into located diagnostics, so bad input is reported exactly like findings.

use std::path::Path;

use vpnsim_plan::Planned;
use vpnsim_topology::{Diagnostic, LoadError, MAX_FILE_BYTES, Scenario, Severity};

/// Codes for input errors that happen before the text is parsed.
pub const READ_ERROR: &str = "read-error";
pub const FILE_TOO_LARGE: &str = "file-too-large";
pub const NOT_UTF8: &str = "not-utf8";

/// A file that could not be loaded: its text when it was read, and why.
#[derive(Debug)]
pub struct BadInput {
    pub file: String,
    pub source: Option<String>,
    pub diagnostics: Vec<Diagnostic>,
}

/// A loaded, planned and verified scenario.
#[derive(Debug)]
pub struct Checked {
    pub file: String,
    pub scenario: Scenario,
    pub planned: Planned,
    /// Planning and verification findings, in file order.
    pub findings: Vec<Diagnostic>,
}

/// Loads a scenario file.
pub fn load(path: &Path) -> Result<Scenario, BadInput> {
    let file = path.display().to_string();
    tracing::debug!(file, "loading");
    match vpnsim_topology::load_file(path) {
        Ok(scenario) => {
            tracing::info!(
                file,
                scenario = scenario.topology.name,
                hosts = scenario.topology.hosts.len(),
                "loaded"
            );
            Ok(scenario)
        }
        Err(error) => Err(bad_input(path, file, error)),
    }
}

/// Loads, plans and verifies a scenario file.
pub fn check(path: &Path) -> Result<Checked, BadInput> {
    let scenario = load(path)?;
    Ok(plan_and_verify(path.display().to_string(), scenario))
}

/// Plans and verifies a loaded scenario.
pub fn plan_and_verify(file: String, scenario: Scenario) -> Checked {
    let planned = vpnsim_plan::plan(&scenario);
    tracing::info!(
        file,
        addresses = planned.plan.addresses.len(),
        pools = planned.plan.pools.len(),
        "planned"
    );
    let mut findings = planned.findings.clone();
    findings.extend(vpnsim_verify::check(&scenario, &planned.plan));
    findings.sort_by_key(Diagnostic::position_key);
    findings.dedup();
    tracing::info!(file, findings = findings.len(), "verified");
    Checked {
        file,
        scenario,
        planned,
        findings,
    }
}

/// A diagnostic for a file that has no text to point into.
fn whole_file(code: &str, file: &str, message: String, help: Option<String>) -> Diagnostic {
    Diagnostic {
        code: code.to_string(),
        severity: Severity::Error,
        file: file.to_string(),
        line: 1,
        column: 1,
        field: None,
        message,
        help,
        span: 0..0,
    }
}

/// Turns a load error into located diagnostics.
fn bad_input(path: &Path, file: String, error: LoadError) -> BadInput {
    let (source, diagnostics) = match error {
        LoadError::Invalid {
            file: source,
            diagnostics,
        } => (Some(source.text), diagnostics),
        LoadError::Read { source: io, .. } => {
            let help = if path.is_dir() {
                Some(format!(
                    "`{file}` is a directory; pass the scenario's .toml file"
                ))
            } else if io.kind() == std::io::ErrorKind::NotFound {
                Some("check the path; scenario files usually live in scenarios/".to_string())
            } else {
                None
            };
            (
                None,
                vec![whole_file(
                    READ_ERROR,
                    &file,
                    format!("cannot read {file}: {io}"),
                    help,
                )],
            )
        }
        LoadError::TooLarge { size, .. } => {
            let message = format!(
                "{file} is {size} bytes; scenario files are limited to {MAX_FILE_BYTES} bytes (16 MiB)"
            );
            let help = Some(
                "a scenario is a reviewed document: split it, or drop generated content"
                    .to_string(),
            );
            (None, vec![whole_file(FILE_TOO_LARGE, &file, message, help)])
        }
        LoadError::NotUtf8 { .. } => not_utf8(path, &file),
    };
    BadInput {
        file,
        source,
        diagnostics,
    }
}

/// `load_file` says only that the file is not UTF-8; find the first bad
/// byte so the user can go to it. The file was already read once and is
/// under the size limit.
fn not_utf8(path: &Path, file: &str) -> (Option<String>, Vec<Diagnostic>) {
    let bytes = std::fs::read(path).unwrap_or_default();
    let offset = std::str::from_utf8(&bytes)
        .err()
        .map_or(0, |e| e.valid_up_to());
    // The lossy text is byte-identical up to `offset`, so spans stay right.
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let source = vpnsim_topology::SourceFile::new(file, text.as_str());
    let invalid = bytes
        .get(offset)
        .map_or_else(String::new, |b| format!(" (byte 0x{b:02x})"));
    let diagnostic = Diagnostic::at_span(
        NOT_UTF8,
        Severity::Error,
        &source,
        offset..offset + 1,
        format!("{file} is not UTF-8 text: invalid byte at offset {offset}{invalid}"),
    )
    .with_help("save the scenario as UTF-8");
    (Some(text), vec![diagnostic])
}

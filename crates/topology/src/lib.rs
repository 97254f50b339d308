//! The scenario format and the topology model: the first stage of the pipeline.
//!
//! Map:
//! - [`format`]: serde types of the TOML file (what users write); JSON Schema
//!   via schemars.
//! - [`units`]: durations, bandwidths, listeners, MACs written as strings.
//! - [`source`]: file text, line index, and the field-path → span map.
//! - [`diag`]: [`Diagnostic`], the one located-message type every stage uses.
//! - [`model`]: resolution of names into IDs, giving a validated [`Topology`].
//! - [`graph`]: the topology as a petgraph graph (hosts and segments) for
//!   connectivity questions; petgraph types do not leave this crate.
//!
//! Architecture invariant: this crate does no IO beyond [`load_file`], which
//! only reads the one file it is given; everything else is a pure function of
//! the text.

pub mod diag;
pub mod format;
pub mod graph;
pub mod model;
pub mod source;
pub mod units;

use std::path::Path;

pub use diag::{Diagnostic, Severity};
pub use format::ScenarioFile;
pub use model::Topology;
pub use source::{FieldPath, SourceFile, SourceMap};

/// Files larger than this are refused before parsing: a scenario is a
/// reviewed document, and a runaway generator must not exhaust memory.
pub const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is {size} bytes; scenario files are limited to {MAX_FILE_BYTES} bytes")]
    TooLarge { path: String, size: u64 },
    #[error("{path} is not UTF-8 text")]
    NotUtf8 { path: String },
    #[error("{} problem(s) in {}", diagnostics.len(), file.name)]
    Invalid {
        file: Box<SourceFile>,
        diagnostics: Vec<Diagnostic>,
    },
}

/// A loaded scenario: the file as written, where things are in it, and the
/// validated model.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub source: SourceFile,
    pub map: SourceMap,
    pub file: ScenarioFile,
    pub topology: Topology,
}

impl Scenario {
    /// A diagnostic located at a field of this scenario's file.
    pub fn diagnostic(
        &self,
        code: &str,
        severity: Severity,
        field: &FieldPath,
        message: impl Into<String>,
    ) -> Diagnostic {
        Diagnostic::at_field(code, severity, &self.source, &self.map, field, message)
    }
}

/// Reads and loads a scenario file.
pub fn load_file(path: &Path) -> Result<Scenario, LoadError> {
    let name = path.display().to_string();
    let read_error = |source| LoadError::Read {
        path: name.clone(),
        source,
    };
    let size = std::fs::metadata(path).map_err(read_error)?.len();
    if size > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge { path: name, size });
    }
    let bytes = std::fs::read(path).map_err(read_error)?;
    let text = String::from_utf8(bytes).map_err(|_| LoadError::NotUtf8 { path: name.clone() })?;
    load_str(&name, &text)
}

/// Loads a scenario from text; `name` is used in diagnostics.
pub fn load_str(name: &str, text: &str) -> Result<Scenario, LoadError> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(LoadError::TooLarge {
            path: name.into(),
            size: text.len() as u64,
        });
    }
    let source = SourceFile::new(name, text);
    let map = SourceMap::build(text);
    let file: ScenarioFile = match toml::from_str(text) {
        Ok(file) => file,
        Err(error) => {
            let diagnostic = toml_error_diagnostic(&source, &map, &error);
            return Err(LoadError::Invalid {
                file: Box::new(source),
                diagnostics: vec![diagnostic],
            });
        }
    };
    match model::resolve(&file, &source, &map) {
        Ok(topology) => Ok(Scenario {
            source,
            map,
            file,
            topology,
        }),
        Err(diagnostics) => Err(LoadError::Invalid {
            file: Box::new(source),
            diagnostics,
        }),
    }
}

/// Turns a toml/serde error into a located diagnostic with a stable code and,
/// for misspelt keys and variants, a "did you mean" hint.
fn toml_error_diagnostic(
    source: &SourceFile,
    map: &SourceMap,
    error: &toml::de::Error,
) -> Diagnostic {
    let mut message = error.message().trim().to_string();
    let span = error.span().unwrap_or(0..0);
    let is_syntax = toml::de::DeTable::parse(&source.text).is_err();
    let duplicate = message.contains("duplicate key");
    let code = if duplicate {
        "duplicate-name"
    } else if is_syntax {
        "syntax"
    } else if message.starts_with("unknown field") {
        "unknown-field"
    } else if message.starts_with("missing field") {
        "missing-field"
    } else {
        "invalid-value"
    };
    let mut help = unknown_name_hint(&message);
    if duplicate {
        let key = source.text.get(span.clone()).unwrap_or("").trim();
        message = format!(
            "`{key}` is defined twice; every name in a table must be unique (rename or merge the two)"
        );
    }
    if message == "missing field `scenario`" {
        help =
            Some("a scenario file starts with a [scenario] table: name = \"...\", seed = N".into());
    }
    let mut diagnostic = Diagnostic::at_span(code, Severity::Error, source, span.clone(), message);
    diagnostic.field = map.field_at(&span).map(|p| p.to_string());
    diagnostic.help = help;
    diagnostic
}

/// serde writes "unknown field `x`, expected one of `a`, `b`" (and the same
/// for variants); offer the closest expected name.
fn unknown_name_hint(message: &str) -> Option<String> {
    let rest = message
        .strip_prefix("unknown field `")
        .or_else(|| message.strip_prefix("unknown variant `"))?;
    let (word, expected) = rest.split_once('`')?;
    let candidates: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
    diag::did_you_mean(word, candidates)
}

/// The JSON Schema of the scenario format, for editors.
pub fn json_schema() -> serde_json::Value {
    let schema = schemars::schema_for!(ScenarioFile);
    serde_json::to_value(schema).unwrap_or_default()
}

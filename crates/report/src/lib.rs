//! The report stage: what users read. Pure functions that turn findings and
//! plans into terminal text and JSON strings; the CLI only decides where the
//! strings go.
//!
//! Map:
//! - [`diagnostics`]: one block per [`Diagnostic`](vpnsim_topology::Diagnostic)
//!   (miette's graphical report with the source line and a label at the
//!   field), the one-line summary, and the `{"findings": [...]}` JSON.
//! - [`table`]: aligned plain-text tables.
//! - [`plan`]: the address plan and the site × site reachability matrix, as
//!   text tables and as one JSON object.
//! - [`run`]: the `sim run` report (findings, plan, simulation status).
//!
//! Architecture invariant: nothing here does IO, reads the clock or the
//! environment. Whether to colour is the caller's decision ([`Style`]), so the
//! same inputs always give the same bytes.

pub mod diagnostics;
pub mod plan;
pub mod run;
pub mod sim;
pub mod table;

pub use diagnostics::{Counts, FileDiagnostics, Style};

/// Output format chosen on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON document.
    Json,
}

/// Serialises a value as pretty JSON with a trailing newline. Our report
/// types contain only strings, numbers and sequences, which always
/// serialise; the fallback keeps this total anyway.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_string_pretty(value) {
        Ok(mut text) => {
            text.push('\n');
            text
        }
        Err(error) => format!("{{\"error\": {:?}}}\n", error.to_string()),
    }
}

/// `1 error`, `2 errors`.
pub(crate) fn plural(count: usize, word: &str) -> String {
    if count == 1 {
        format!("{count} {word}")
    } else {
        format!("{count} {word}s")
    }
}

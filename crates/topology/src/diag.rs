//! Diagnostics: one shape for input errors and verification findings, so the
//! CLI prints and serialises them the same way (`file:line:col`, code,
//! severity, field, message, help).

use std::fmt;
use std::ops::Range;

use serde::Serialize;

use crate::source::{FieldPath, SourceFile, SourceMap};

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth knowing; never fails a check.
    Info,
    /// Likely a mistake or a risk; does not fail a check.
    Warning,
    /// Must be fixed; `sim check` exits 1.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One located message about a scenario file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// Stable kebab-case code, e.g. `cidr-overlap`.
    pub code: String,
    pub severity: Severity,
    /// File name as the user gave it.
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Field path, e.g. `subnets.sydney-fns-a.cidr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// What is wrong and what to change.
    pub message: String,
    /// A hint (e.g. "did you mean `forwarding`?").
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Byte range in the file, for renderers that show the source line.
    #[serde(skip)]
    pub span: Range<usize>,
}

impl Diagnostic {
    /// A diagnostic at a field; the span is the field's key, or its nearest
    /// written ancestor when the field itself was left out.
    pub fn at_field(
        code: &str,
        severity: Severity,
        source: &SourceFile,
        map: &SourceMap,
        field: &FieldPath,
        message: impl Into<String>,
    ) -> Self {
        let span = map.find(field).map(|s| s.key.clone()).unwrap_or(0..0);
        let mut diagnostic = Self::at_span(code, severity, source, span, message);
        diagnostic.field = Some(field.to_string());
        diagnostic
    }

    /// A diagnostic at a byte range.
    pub fn at_span(
        code: &str,
        severity: Severity,
        source: &SourceFile,
        span: Range<usize>,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = source.line_col(span.start);
        Diagnostic {
            code: code.to_string(),
            severity,
            file: source.name.clone(),
            line,
            column,
            field: None,
            message: message.into(),
            help: None,
            span,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sort key that orders diagnostics as they appear in the file.
    pub fn position_key(&self) -> (String, usize, usize, String, String) {
        (
            self.file.clone(),
            self.line,
            self.column,
            self.code.clone(),
            self.message.clone(),
        )
    }
}

impl fmt::Display for Diagnostic {
    /// `file:line:col: severity[code]: message (field `x`)`, then `help:`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}[{}]: {}",
            self.file, self.line, self.column, self.severity, self.code, self.message
        )?;
        if let Some(field) = &self.field {
            write!(f, " (field `{field}`)")?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// "did you mean" for a misspelt name among candidates, by edit distance.
pub fn did_you_mean<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(distance, c)| *distance <= (c.len().max(word.len()) / 3).max(1) + 1)
        .min()
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

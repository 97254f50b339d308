//! Diagnostics as text blocks and as JSON.
//!
//! A block is miette's graphical report: a header naming
//! `file:line:col: severity[code]`, the message, the source line(s) with a
//! label under the field, and the help. Without the file's text (the file
//! could not be read) the block is the header, message and help only.

use std::fmt;
use std::ops::Range;

use miette::{
    GraphicalReportHandler, GraphicalTheme, LabeledSpan, MietteError, MietteSpanContents,
    SourceCode, SourceSpan, SpanContents,
};
use serde::Serialize;
use vpnsim_topology::{Diagnostic, Severity};

use crate::{plural, to_json};

/// How text is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Style {
    /// ASCII art, no escape codes: for pipes, files, CI logs and snapshots.
    #[default]
    Plain,
    /// Unicode box drawing and ANSI colours: for terminals.
    Color,
}

/// Layout width; fixed so output never depends on the terminal. Messages are
/// not wrapped (a wrapped message breaks names like `vpn-sydney` and
/// defeats grep); terminals wrap long lines themselves.
const WIDTH: usize = 100;

/// The diagnostics of one file, with its text when it could be read.
#[derive(Debug, Clone, Copy)]
pub struct FileDiagnostics<'a> {
    /// File name as the user gave it.
    pub file: &'a str,
    /// The file's text, for source snippets.
    pub source: Option<&'a str>,
    pub diagnostics: &'a [Diagnostic],
}

/// How many diagnostics of each severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
    pub infos: usize,
}

impl Counts {
    pub fn of<'a>(diagnostics: impl IntoIterator<Item = &'a Diagnostic>) -> Self {
        let mut counts = Counts::default();
        for d in diagnostics {
            match d.severity {
                Severity::Error => counts.errors += 1,
                Severity::Warning => counts.warnings += 1,
                Severity::Info => counts.infos += 1,
            }
        }
        counts
    }

    /// `2 errors, 1 warning in 3 files`.
    pub fn summary(&self, files: usize) -> String {
        format!(
            "{}, {} in {}",
            plural(self.errors, "error"),
            plural(self.warnings, "warning"),
            plural(files, "file")
        )
    }
}

/// One diagnostic as a text block (ends with a newline).
pub fn render_diagnostic(d: &Diagnostic, source: Option<&str>, style: Style) -> String {
    let theme = match style {
        Style::Plain => GraphicalTheme::none(),
        Style::Color => GraphicalTheme::unicode(),
    };
    let handler = GraphicalReportHandler::new_themed(theme)
        .with_width(WIDTH)
        .with_wrap_lines(false)
        .with_links(false)
        .with_urls(false);
    let view = View::new(d, source);
    let mut out = String::new();
    if handler.render_report(&mut out, &view).is_err() {
        // miette only fails when a span lies outside the text; say it plainly.
        out = format!("{d}\n");
    }
    out
}

/// The `sim check` text report: every diagnostic of every file (only errors
/// when `quiet`), then the summary line (left out when `quiet`).
pub fn check_text(files: &[FileDiagnostics<'_>], style: Style, quiet: bool) -> String {
    let mut out = String::new();
    for file in files {
        for d in file
            .diagnostics
            .iter()
            .filter(|d| !quiet || d.severity == Severity::Error)
        {
            out.push_str(&render_diagnostic(d, file.source, style));
            out.push('\n');
        }
    }
    if !quiet {
        let counts = Counts::of(files.iter().flat_map(|f| f.diagnostics));
        out.push_str(&counts.summary(files.len()));
        out.push('\n');
    }
    out
}

#[derive(Serialize)]
struct Findings<'a> {
    findings: Vec<&'a Diagnostic>,
}

/// `{"findings": [...]}`, pretty-printed, with a trailing newline.
pub fn findings_json<'a>(diagnostics: impl IntoIterator<Item = &'a Diagnostic>) -> String {
    to_json(&Findings {
        findings: diagnostics.into_iter().collect(),
    })
}

/// A [`Diagnostic`] seen through miette's eyes.
struct View<'a> {
    d: &'a Diagnostic,
    header: String,
    source: Option<Named<'a>>,
    span: Range<usize>,
}

impl<'a> View<'a> {
    fn new(d: &'a Diagnostic, text: Option<&'a str>) -> Self {
        // An empty file has no line to show; a snippet box would be empty.
        let text = text.filter(|t| !t.is_empty());
        let header = format!(
            "{}:{}:{}: {}[{}]",
            d.file, d.line, d.column, d.severity, d.code
        );
        let span = text.map(|t| clamp_span(t, &d.span)).unwrap_or(0..0);
        View {
            d,
            header,
            source: text.map(|text| Named {
                name: &d.file,
                text,
            }),
            span,
        }
    }
}

/// A span that lies inside the text and on character boundaries, so miette
/// never fails or slices through a character.
fn clamp_span(text: &str, span: &Range<usize>) -> Range<usize> {
    let mut start = span.start.min(text.len());
    while !text.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = span.end.clamp(start, text.len());
    while !text.is_char_boundary(end) {
        end += 1;
    }
    start..end
}

impl fmt::Debug for View<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("View").field("diagnostic", self.d).finish()
    }
}

impl fmt::Display for View<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.d.message)
    }
}

impl std::error::Error for View<'_> {}

impl miette::Diagnostic for View<'_> {
    fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        Some(Box::new(&self.header))
    }

    fn severity(&self) -> Option<miette::Severity> {
        Some(match self.d.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Info => miette::Severity::Advice,
        })
    }

    fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
        self.d
            .help
            .as_ref()
            .map(|h| Box::new(h) as Box<dyn fmt::Display + 'b>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        self.source.as_ref().map(|s| s as &dyn SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        self.source.as_ref()?;
        let text = self.d.field.as_ref().map(|f| format!("field `{f}`"));
        let span = SourceSpan::from(self.span.start..self.span.end);
        Some(Box::new(std::iter::once(
            LabeledSpan::new_primary_with_span(text, span),
        )))
    }
}

/// Borrowed file text with its name (miette's `NamedSource` wants to own it).
#[derive(Debug)]
struct Named<'a> {
    name: &'a str,
    text: &'a str,
}

impl SourceCode for Named<'_> {
    fn read_span<'b>(
        &'b self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'b> + 'b>, MietteError> {
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.to_string(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpnsim_topology::SourceFile;

    fn sample() -> (SourceFile, Diagnostic) {
        let text = "[scenario]\nname = \"x\"\nseed = 1\n\n[hosts.a]\nsite = \"hq\"\n";
        let source = SourceFile::new("x.toml", text);
        let start = text.find("site").unwrap_or(0);
        let mut d = Diagnostic::at_span(
            "dangling-reference",
            Severity::Error,
            &source,
            start..start + 4,
            "no site named `hq`",
        );
        d.field = Some("hosts.a.site".into());
        (source, d.with_help("did you mean `hk`?"))
    }

    #[test]
    fn block_names_location_code_field_and_help() {
        let (source, d) = sample();
        let text = render_diagnostic(&d, Some(&source.text), Style::Plain);
        assert!(
            text.starts_with("x.toml:6:1: error[dangling-reference]\n"),
            "{text}"
        );
        assert!(text.contains("no site named `hq`"), "{text}");
        assert!(text.contains("site = \"hq\""), "{text}");
        assert!(text.contains("field `hosts.a.site`"), "{text}");
        assert!(text.contains("help: did you mean `hk`?"), "{text}");
        assert!(
            !text.contains('\u{1b}'),
            "plain style has no escape codes: {text}"
        );
        insta::assert_snapshot!("plain_block", text);
    }

    #[test]
    fn block_without_source_has_no_snippet() {
        let (_, d) = sample();
        let text = render_diagnostic(&d, None, Style::Plain);
        assert!(text.contains("x.toml:6:1: error[dangling-reference]"));
        assert!(!text.contains("site = "));
    }

    #[test]
    fn out_of_range_spans_do_not_fail() {
        let (_, mut d) = sample();
        d.span = 1000..2000;
        let text = render_diagnostic(&d, Some("é"), Style::Plain);
        assert!(text.contains("dangling-reference"));
        assert_eq!(clamp_span("aé", &(2..2)), 1..3);
        assert_eq!(clamp_span("aé", &(0..2)), 0..3);
        let empty = render_diagnostic(&d, Some(""), Style::Plain);
        assert!(
            !empty.contains(",-["),
            "no snippet for an empty file: {empty}"
        );
    }

    #[test]
    fn summary_counts_and_pluralises() {
        let (source, d) = sample();
        let mut w = d.clone();
        w.severity = Severity::Warning;
        let diagnostics = [d, w.clone(), w];
        let files = [FileDiagnostics {
            file: "x.toml",
            source: Some(&source.text),
            diagnostics: &diagnostics,
        }];
        let text = check_text(&files, Style::Plain, false);
        assert!(text.ends_with("1 error, 2 warnings in 1 file\n"), "{text}");
        let quiet = check_text(&files, Style::Plain, true);
        assert_eq!(quiet.matches("x.toml:6:1:").count(), 1, "{quiet}");
        assert!(!quiet.contains("in 1 file"));
        assert_eq!(
            Counts::default().summary(2),
            "0 errors, 0 warnings in 2 files"
        );
    }

    #[test]
    fn json_uses_the_documented_field_names() {
        let (_, d) = sample();
        let json: serde_json::Value =
            serde_json::from_str(&findings_json([&d])).unwrap_or_default();
        let finding = &json["findings"][0];
        for key in [
            "code", "severity", "file", "line", "column", "field", "message", "help",
        ] {
            assert!(finding.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(finding["severity"], "error");
        assert_eq!(findings_json([]), "{\n  \"findings\": []\n}\n");
    }
}

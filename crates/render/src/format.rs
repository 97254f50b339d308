//! The contract every file format of this crate keeps, the smoltcp way: a
//! validated representation type per format, `emit` that cannot fail, and
//! `parse` that never panics on any input and reports the 1-based line of
//! the first problem.

use std::fmt;

/// Why a text is not a valid file of some format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// 1-based line of the problem (0 when it concerns the whole text).
    pub line: usize,
    pub message: String,
}

impl ParseError {
    pub fn new(line: usize, message: impl Into<String>) -> Self {
        ParseError {
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            f.write_str(&self.message)
        } else {
            write!(f, "line {}: {}", self.line, self.message)
        }
    }
}

/// A file format: `parse(emit(x)) == Ok(x)` for every valid `x`.
pub trait Format: Sized {
    /// The file's text. Deterministic: equal values give equal bytes.
    fn emit(&self) -> String;
    /// Reads a file back. Never panics; rejects what the real tool would.
    fn parse(text: &str) -> Result<Self, ParseError>;
}

//! The one error type of this crate. Every variant that concerns a file names
//! its path; no variant ever carries secret material (a corrupt key file is
//! described, never quoted).

use std::path::PathBuf;

/// Why a key, certificate or key store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A filesystem operation on a key store path failed.
    #[error("key store: cannot {op} {}: {source}", path.display())]
    Io {
        /// What was being done ("read", "create directory", "rename to", ...).
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// An existing secret file is readable or writable by group or others.
    #[error(
        "key store: {} has mode {mode:04o}; secret files must be private to their owner \
         (0600): fix with `chmod 600 {}` after checking nobody else read it",
        path.display(),
        path.display()
    )]
    TooOpen { path: PathBuf, mode: u32 },

    /// A key store path exists but is not what it should be (a symlink, a
    /// directory where a file belongs, a file where the store root belongs).
    #[error("key store: {} is {what}; expected {expected}", path.display())]
    NotAFile {
        path: PathBuf,
        what: &'static str,
        expected: &'static str,
    },

    /// An existing secret file could not be parsed. The reason never quotes
    /// the file's content.
    #[error(
        "key store: {} is corrupt: {reason}; restore it from a backup, or delete it \
         (or run `sim keys rotate`) to generate a new key",
        path.display()
    )]
    Corrupt { path: PathBuf, reason: String },

    /// A key label is malformed.
    #[error("invalid key label `{label}`: {reason}")]
    InvalidLabel { label: String, reason: String },

    /// A label names a different kind of key than the one asked for.
    #[error("key label `{label}` holds a {actual} key, not a {expected} key")]
    WrongKind {
        label: String,
        expected: &'static str,
        actual: &'static str,
    },

    /// A validity date is malformed or out of range.
    #[error("invalid certificate date {field} = `{value}`: {reason}")]
    InvalidDate {
        field: &'static str,
        value: String,
        reason: String,
    },

    /// A certificate request is inconsistent (bad DNS name, empty CN, ...).
    #[error("certificate `{label}`: {reason}")]
    Certificate { label: String, reason: String },

    /// The operating system's random number generator failed.
    #[error("the operating system's random number generator failed: {0}")]
    Rng(String),
}

impl KeyError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        KeyError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn label(label: impl Into<String>, reason: impl Into<String>) -> Self {
        KeyError::InvalidLabel {
            label: label.into(),
            reason: reason.into(),
        }
    }
}

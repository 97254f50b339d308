//! Where a key came from, and the marker every file holding a demo key
//! carries.

use std::fmt;

/// The words every demo-key marker starts with; grep for them to find files
/// that must never reach production.
pub const DEMO_MARKER: &str = "DEMO KEY";

/// Where a key value came from. Every key value in this crate carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Provenance {
    /// Derived from the scenario seed (`--demo-keys`): reproducible by anyone
    /// who has the scenario file, so for tests and demos only.
    Demo { seed: u64 },
    /// Drawn from the operating system's CSPRNG and kept in a key store
    /// (`--keys KEYDIR`).
    Production,
}

impl Provenance {
    /// True for seed-derived keys.
    pub fn is_demo(self) -> bool {
        matches!(self, Provenance::Demo { .. })
    }

    /// The marker text for demo keys, without a comment prefix:
    /// `DEMO KEY derived from scenario seed N -- for tests and demos only, never for production`.
    /// `None` for production keys, whose files carry no marker.
    ///
    /// The text is ASCII on purpose: it lands in wg-quick, swanctl,
    /// ipsec.secrets, OpenVPN, PEM and PHP files, and some of their parsers
    /// are byte-oriented.
    pub fn marker(self) -> Option<String> {
        match self {
            Provenance::Demo { seed } => Some(format!(
                "{DEMO_MARKER} derived from scenario seed {seed} -- for tests and demos only, never for production"
            )),
            Provenance::Production => None,
        }
    }

    /// The comment line a file holding this key must carry, for a format
    /// whose comments start with `comment` (`"#"`, `";"`, `"//"`), e.g.
    /// `# DEMO KEY derived from scenario seed 42 -- for tests and demos only,
    /// never for production`. No trailing newline. `None` for production.
    pub fn comment_line(self, comment: &str) -> Option<String> {
        self.marker().map(|m| format!("{comment} {m}"))
    }

    /// The provenance of a file holding keys of both provenances: demo wins,
    /// because one demo key makes the whole file unfit for production.
    pub fn combine(self, other: Provenance) -> Provenance {
        match (self, other) {
            (d @ Provenance::Demo { .. }, _) | (_, d @ Provenance::Demo { .. }) => d,
            _ => Provenance::Production,
        }
    }
}

impl fmt::Display for Provenance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Provenance::Demo { seed } => write!(f, "demo (scenario seed {seed})"),
            Provenance::Production => f.write_str("production"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_text() {
        let demo = Provenance::Demo { seed: 42 };
        assert_eq!(
            demo.comment_line("#").as_deref(),
            Some(
                "# DEMO KEY derived from scenario seed 42 -- for tests and demos only, never for production"
            )
        );
        assert_eq!(Provenance::Production.comment_line("#"), None);
        assert_eq!(Provenance::Production.combine(demo), demo);
        assert_eq!(demo.combine(Provenance::Production), demo);
        assert_eq!(
            Provenance::Production.combine(Provenance::Production),
            Provenance::Production
        );
    }
}

//! Virtual time. The simulator has no other clock: every instant is a
//! number of nanoseconds since the start of the run.

use std::fmt;
use std::ops::{Add, Sub};

/// Nanoseconds since the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(pub u64);

/// A span of virtual time in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Span(pub u64);

impl Span {
    pub const ZERO: Span = Span(0);

    pub const fn nanos(n: u64) -> Span {
        Span(n)
    }
    pub const fn micros(n: u64) -> Span {
        Span(n * 1_000)
    }
    pub const fn millis(n: u64) -> Span {
        Span(n * 1_000_000)
    }
    pub const fn secs(n: u64) -> Span {
        Span(n * 1_000_000_000)
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    pub fn as_millis_f64(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl Instant {
    pub const START: Instant = Instant(0);

    /// Time since `earlier` (zero if `earlier` is later).
    pub fn since(self, earlier: Instant) -> Span {
        Span(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Span> for Instant {
    type Output = Instant;
    fn add(self, d: Span) -> Instant {
        Instant(self.0.saturating_add(d.0))
    }
}

impl Sub<Span> for Instant {
    type Output = Instant;
    fn sub(self, d: Span) -> Instant {
        Instant(self.0.saturating_sub(d.0))
    }
}

impl Add for Span {
    type Output = Span;
    fn add(self, d: Span) -> Span {
        Span(self.0.saturating_add(d.0))
    }
}

impl fmt::Display for Instant {
    /// `12.345678s`: seconds with microsecond precision, for traces.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.0 / 1_000_000_000,
            (self.0 % 1_000_000_000) / 1_000
        )
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 >= 1_000_000_000 {
            write!(f, "{:.3}s", self.as_secs_f64())
        } else {
            write!(f, "{:.3}ms", self.as_millis_f64())
        }
    }
}

impl From<vpnsim_topology::units::Duration> for Span {
    fn from(d: vpnsim_topology::units::Duration) -> Span {
        Span(d.as_nanos())
    }
}

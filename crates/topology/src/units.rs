//! Value types with units that scenario files write as strings: durations
//! (`"25s"`, `"150ms"`), bandwidths (`"100Mbit"`), listeners (`"udp/1194"`)
//! and MAC addresses.
//!
//! Strings with explicit units are used because a bare number in a network
//! file is the most common source of "was that ms or s?" mistakes.

use std::fmt;
use std::str::FromStr;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Implements `Serialize`/`Deserialize` through `Display`/`FromStr` and a
/// string JSON Schema with a pattern, so editors can check the unit syntax.
macro_rules! string_value {
    ($ty:ty, $name:literal, $pattern:literal, $desc:literal) => {
        impl Serialize for $ty {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = String::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
        impl JsonSchema for $ty {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
                schemars::json_schema!({
                    "type": "string",
                    "pattern": $pattern,
                    "description": $desc,
                })
            }
        }
    };
}

/// A span of time with nanosecond resolution (the simulator's clock unit).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(pub u64);

impl Duration {
    pub const fn from_secs(s: u64) -> Self {
        Duration(s * 1_000_000_000)
    }
    pub const fn from_millis(ms: u64) -> Self {
        Duration(ms * 1_000_000)
    }
    pub const fn as_nanos(self) -> u64 {
        self.0
    }
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
}

const DURATION_UNITS: [(&str, u64); 6] = [
    ("ns", 1),
    ("us", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

impl FromStr for Duration {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (number, unit) = split_number(text.trim());
        let scale = DURATION_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| {
                format!("duration `{text}` needs a unit: ns, us, ms, s, m or h (e.g. \"25s\")")
            })?;
        let value = parse_decimal(number, scale)
            .ok_or_else(|| format!("duration `{text}` is not a non-negative number with a unit"))?;
        Ok(Duration(value))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, scale) in DURATION_UNITS.iter().rev() {
            if self.0 != 0 && self.0.is_multiple_of(*scale) {
                return write!(f, "{}{}", self.0 / scale, name);
            }
        }
        write!(f, "{}ns", self.0)
    }
}

string_value!(
    Duration,
    "Duration",
    "^[0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h)$",
    "A duration with a unit, e.g. \"25s\", \"150ms\", \"2m\"."
);

/// A data rate in bits per second.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Bandwidth(pub u64);

const BANDWIDTH_UNITS: [(&str, u64); 4] = [
    ("bit", 1),
    ("kbit", 1_000),
    ("Mbit", 1_000_000),
    ("Gbit", 1_000_000_000),
];

impl Bandwidth {
    pub const fn bits_per_second(self) -> u64 {
        self.0
    }
}

impl FromStr for Bandwidth {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let (number, unit) = split_number(text.trim());
        let scale = BANDWIDTH_UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| {
                format!(
                    "bandwidth `{text}` needs a unit: bit, kbit, Mbit or Gbit (e.g. \"100Mbit\")"
                )
            })?;
        let value = parse_decimal(number, scale)
            .filter(|v| *v > 0)
            .ok_or_else(|| format!("bandwidth `{text}` is not a positive number with a unit"))?;
        Ok(Bandwidth(value))
    }
}

impl fmt::Display for Bandwidth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (name, scale) in BANDWIDTH_UNITS.iter().rev() {
            if self.0.is_multiple_of(*scale) {
                return write!(f, "{}{}", self.0 / scale, name);
            }
        }
        write!(f, "{}bit", self.0)
    }
}

string_value!(
    Bandwidth,
    "Bandwidth",
    "^[0-9]+(\\.[0-9]+)?(bit|kbit|Mbit|Gbit)$",
    "A data rate, e.g. \"100Mbit\", \"1Gbit\", \"512kbit\"."
);

/// Transport protocol of a listener or a firewall rule.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        })
    }
}

/// A transport endpoint a daemon listens on, written `"udp/1194"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Listener {
    pub proto: Proto,
    pub port: u16,
}

impl FromStr for Listener {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("listener `{text}` must look like \"udp/1194\" or \"tcp/443\"");
        let (proto, port) = text.split_once('/').ok_or_else(bad)?;
        let proto = match proto {
            "udp" => Proto::Udp,
            "tcp" => Proto::Tcp,
            _ => return Err(bad()),
        };
        let port: u16 = port.parse().map_err(|_| bad())?;
        if port == 0 {
            return Err(bad());
        }
        Ok(Listener { proto, port })
    }
}

impl fmt::Display for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proto, self.port)
    }
}

string_value!(
    Listener,
    "Listener",
    "^(udp|tcp)/[0-9]{1,5}$",
    "A protocol and port, e.g. \"udp/1194\"."
);

/// An Ethernet MAC address, written `"16:b9:3f:58:cb:4c"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// Locally administered, unicast: what a pinned virtual interface must use.
    pub fn is_local_unicast(self) -> bool {
        self.0[0] & 0b10 != 0 && self.0[0] & 0b1 == 0
    }
}

impl FromStr for Mac {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let bad =
            || format!("MAC address `{text}` must be six hex octets like \"16:b9:3f:58:cb:4c\"");
        let mut octets = [0u8; 6];
        let mut parts = text.split(':');
        for octet in octets.iter_mut() {
            let part = parts.next().ok_or_else(bad)?;
            if part.len() != 2 {
                return Err(bad());
            }
            *octet = u8::from_str_radix(part, 16).map_err(|_| bad())?;
        }
        if parts.next().is_some() {
            return Err(bad());
        }
        Ok(Mac(octets))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

string_value!(
    Mac,
    "Mac",
    "^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$",
    "An Ethernet MAC address, e.g. \"16:b9:3f:58:cb:4c\"."
);

fn split_number(text: &str) -> (&str, &str) {
    let end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    text.split_at(end)
}

/// Parses `"1.5"` times `scale` exactly, without going through floats, so
/// `"0.1s"` is exactly 100 ms.
fn parse_decimal(number: &str, scale: u64) -> Option<u64> {
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (number.contains('.') && frac.is_empty()) {
        return None;
    }
    let mut value = whole.parse::<u64>().ok()?.checked_mul(scale)?;
    let mut place = scale;
    for digit in frac.bytes() {
        place /= 10;
        if place == 0 {
            return None;
        }
        value = value.checked_add(u64::from(digit - b'0') * place)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_print() {
        assert_eq!("25s".parse::<Duration>(), Ok(Duration::from_secs(25)));
        assert_eq!("0.1s".parse::<Duration>(), Ok(Duration::from_millis(100)));
        assert_eq!(
            "150ms"
                .parse::<Duration>()
                .map(|d| d.to_string())
                .as_deref(),
            Ok("150ms")
        );
        assert_eq!(Duration::from_secs(120).to_string(), "2m");
        assert!("25".parse::<Duration>().is_err());
        assert!("s".parse::<Duration>().is_err());
        assert!("1.s".parse::<Duration>().is_err());
        assert!("99999999999999999999h".parse::<Duration>().is_err());
    }

    #[test]
    fn bandwidths_parse_and_print() {
        assert_eq!("100Mbit".parse::<Bandwidth>(), Ok(Bandwidth(100_000_000)));
        assert_eq!(
            "1.5Gbit"
                .parse::<Bandwidth>()
                .map(|b| b.to_string())
                .as_deref(),
            Ok("1500Mbit")
        );
        assert!("0Mbit".parse::<Bandwidth>().is_err());
        assert!("100MB".parse::<Bandwidth>().is_err());
    }

    #[test]
    fn listeners_and_macs() {
        let l: Listener = "udp/1194".parse().unwrap_or_else(|e| panic!("{e}"));
        assert_eq!((l.proto, l.port), (Proto::Udp, 1194));
        assert!("sctp/1".parse::<Listener>().is_err());
        assert!("udp/0".parse::<Listener>().is_err());
        let m: Mac = "16:B9:3f:58:cb:4c"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(m.to_string(), "16:b9:3f:58:cb:4c");
        assert!(m.is_local_unicast());
        assert!("16:b9:3f:58:cb".parse::<Mac>().is_err());
    }
}

//! `sim run --check-determinism`: everything one pass of `sim run` would
//! produce — the host files it ran, the report in every format, the trace,
//! every pcap file — compared byte for byte with a second pass, and the
//! first difference described so that it can be found.

/// One output of a pass, by name (`the JSON report`, `host file
/// node1/etc/wireguard/wg0.conf`, ...), in the order they are produced:
/// upstream first, so the first difference named is the likeliest cause.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub name: String,
    pub bytes: Vec<u8>,
    /// Text: differences are located by line as well as by byte.
    pub text: bool,
}

impl Artifact {
    pub fn text(name: impl Into<String>, text: impl Into<String>) -> Self {
        Artifact {
            name: name.into(),
            bytes: text.into().into_bytes(),
            text: true,
        }
    }

    pub fn binary(name: impl Into<String>, bytes: Vec<u8>) -> Self {
        Artifact {
            name: name.into(),
            bytes,
            text: false,
        }
    }
}

/// Where two byte strings first differ: the byte offset, and for text the
/// 1-based line and both versions of that line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Difference {
    pub byte: usize,
    pub line: usize,
    pub first: String,
    pub second: String,
}

/// `None` when `a` and `b` are equal.
pub fn first_difference(a: &[u8], b: &[u8]) -> Option<Difference> {
    if a == b {
        return None;
    }
    let byte = a
        .iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let line_start = a[..byte]
        .iter()
        .rposition(|c| *c == b'\n')
        .map_or(0, |i| i + 1);
    let line = a[..byte].iter().filter(|c| **c == b'\n').count() + 1;
    let line_of = |s: &[u8]| {
        let rest = s.get(line_start..).unwrap_or_default();
        let end = rest.iter().position(|c| *c == b'\n').unwrap_or(rest.len());
        let text = String::from_utf8_lossy(&rest[..end]);
        let shown: String = text.chars().take(160).collect();
        if shown.len() < text.len() {
            format!("{shown}...")
        } else {
            shown
        }
    };
    Some(Difference {
        byte,
        line,
        first: line_of(a),
        second: line_of(b),
    })
}

/// Compares two passes; `None` when every artifact is byte-identical, else
/// a description of the first one that differs.
pub fn compare(first: &[Artifact], second: &[Artifact]) -> Option<String> {
    for a in first {
        let Some(b) = second.iter().find(|b| b.name == a.name) else {
            return Some(format!("{} was produced by the first pass only", a.name));
        };
        let Some(d) = first_difference(&a.bytes, &b.bytes) else {
            continue;
        };
        let sizes = format!("{} and {} bytes", a.bytes.len(), b.bytes.len());
        return Some(if a.text {
            format!(
                "{} differs at line {}, byte {} ({sizes}):\n  first pass:  {:?}\n  second pass: {:?}",
                a.name, d.line, d.byte, d.first, d.second
            )
        } else {
            format!("{} differs at byte {} ({sizes})", a.name, d.byte)
        });
    }
    second
        .iter()
        .find(|b| !first.iter().any(|a| a.name == b.name))
        .map(|b| format!("{} was produced by the second pass only", b.name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_passes_have_no_difference() {
        let pass = vec![
            Artifact::text("the text report", "a\nb\n"),
            Artifact::binary("pcap x.pcap", vec![1, 2, 3]),
        ];
        assert_eq!(compare(&pass, &pass.clone()), None);
    }

    #[test]
    fn a_text_difference_is_located_by_line_and_byte() {
        let a = vec![Artifact::text(
            "the JSON report",
            "{\n  \"seed\": 2,\n  \"x\": 1\n}\n",
        )];
        let b = vec![Artifact::text(
            "the JSON report",
            "{\n  \"seed\": 2,\n  \"x\": 7\n}\n",
        )];
        let message = compare(&a, &b).unwrap_or_default();
        assert!(
            message.starts_with("the JSON report differs at line 3, byte 22 (26 and 26 bytes)"),
            "{message}"
        );
        assert!(
            message.contains("first pass:  \"  \\\"x\\\": 1\""),
            "{message}"
        );
        assert!(
            message.contains("second pass: \"  \\\"x\\\": 7\""),
            "{message}"
        );
    }

    #[test]
    fn a_binary_difference_is_located_by_byte_and_the_first_differing_output_is_named() {
        let a = vec![
            Artifact::text("host file n/etc/a.conf", "same\n"),
            Artifact::binary("pcap wan.pcap", vec![0xd4, 0xc3, 0xb2, 0xa1, 9]),
            Artifact::text("the text report", "one\n"),
        ];
        let mut b = a.clone();
        b[1].bytes[4] = 8;
        b[2].bytes = b"two\n".to_vec();
        assert_eq!(
            compare(&a, &b).as_deref(),
            Some("pcap wan.pcap differs at byte 4 (5 and 5 bytes)")
        );
    }

    #[test]
    fn a_prefix_differs_where_the_shorter_ends_and_missing_outputs_are_named() {
        let d = first_difference(b"abc\ndef", b"abc\nde");
        assert_eq!(
            d,
            Some(Difference {
                byte: 6,
                line: 2,
                first: "def".into(),
                second: "de".into(),
            })
        );
        let a = vec![Artifact::text("the trace", "x")];
        assert_eq!(
            compare(&a, &[]).as_deref(),
            Some("the trace was produced by the first pass only")
        );
        assert_eq!(
            compare(&[], &a).as_deref(),
            Some("the trace was produced by the second pass only")
        );
    }
}

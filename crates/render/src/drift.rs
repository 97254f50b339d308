//! Drift between the tree a scenario would generate and a tree collected
//! from hosts (`sim diff FILE --against DIR`).
//!
//! Files are compared semantically where the format allows: both sides are
//! brought to a canonical text first, so whitespace, comments and the order
//! of WireGuard peers do not count, while a changed `AllowedIPs`, key or
//! firewall rule does. The canonical forms:
//! - wg-quick files: parsed and emitted again through [`crate::wgquick`],
//!   comments dropped, `[Peer]` blocks sorted (the kernel keeps peers in a
//!   hash table; their order means nothing);
//! - every other file: comment lines dropped (`#`, plus `;` in zone files and
//!   `//` in PHP), trailing whitespace and blank lines ignored, and leading
//!   whitespace too except in YAML, where indentation is structure.
//!
//! Reports never carry secrets: in a changed line that holds key material
//! (private keys, pre-shared keys, inline PEM or static-key blocks) the
//! value is replaced by `<secret>`, so a rotated key shows as drift without
//! being printed.
//!
//! Pure: both trees arrive as [`FileSet`]s; reading the collected tree is
//! the caller's job.

use std::collections::BTreeSet;

use crate::Format;
use crate::tree::FileSet;
use crate::wgquick::WgQuickConf;

/// What differs for one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Drift {
    /// Generated, but absent from the collected tree.
    Missing,
    /// In the collected tree, in a directory the scenario generates into,
    /// but not generated (e.g. a stale `wg1.conf`).
    Unexpected,
    /// Present on both sides with a different meaning: the changed lines of
    /// the canonical forms, `-` expected and `+` found.
    Changed { lines: Vec<String> },
    /// The collected file does not parse as its format.
    Unparsable { message: String },
}

/// Drift of one file of one host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDrift {
    pub host: String,
    pub path: String,
    pub drift: Drift,
}

/// Every file whose meaning differs, ordered by host and path. An empty list
/// means no drift.
pub fn compare(expected: &FileSet, collected: &FileSet) -> Vec<FileDrift> {
    let mut drifts = Vec::new();
    for file in expected.files() {
        let drift = match collected.get(&file.host, &file.path) {
            None => Some(Drift::Missing),
            Some(found) => compare_file(&file.path, &file.contents, &found.contents),
        };
        if let Some(drift) = drift {
            drifts.push(FileDrift {
                host: file.host.clone(),
                path: file.path.clone(),
                drift,
            });
        }
    }
    let generated_dirs: BTreeSet<(&str, &str)> = expected
        .files()
        .map(|f| (f.host.as_str(), parent(&f.path)))
        .collect();
    for file in collected.files() {
        if expected.get(&file.host, &file.path).is_none()
            && generated_dirs.contains(&(file.host.as_str(), parent(&file.path)))
        {
            drifts.push(FileDrift {
                host: file.host.clone(),
                path: file.path.clone(),
                drift: Drift::Unexpected,
            });
        }
    }
    drifts.sort_by(|a, b| (&a.host, &a.path).cmp(&(&b.host, &b.path)));
    drifts
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// The drift of one file, `None` when both mean the same.
pub fn compare_file(path: &str, expected: &str, found: &str) -> Option<Drift> {
    if expected == found {
        return None;
    }
    let canonical_expected = match canonical(path, expected) {
        Ok(lines) => lines,
        // What we generate always parses; compare as plain text if not.
        Err(_) => plain_lines(path, expected),
    };
    let canonical_found = match canonical(path, found) {
        Ok(lines) => lines,
        Err(message) => return Some(Drift::Unparsable { message }),
    };
    if canonical_expected == canonical_found {
        return None;
    }
    Some(Drift::Changed {
        lines: line_diff(&canonical_expected, &canonical_found)
            .into_iter()
            .map(|(sign, line)| format!("{sign} {}", redact(&line)))
            .collect(),
    })
}

fn is_wg_quick(path: &str) -> bool {
    path.starts_with("etc/wireguard/") && path.ends_with(".conf")
}

fn canonical(path: &str, text: &str) -> Result<Vec<String>, String> {
    if is_wg_quick(path) {
        let conf = WgQuickConf::parse(text).map_err(|e| e.to_string())?;
        return Ok(sorted_peer_blocks(&plain_lines(path, &conf.emit())));
    }
    Ok(plain_lines(path, text))
}

/// Lines without comments and insignificant whitespace.
fn plain_lines(path: &str, text: &str) -> Vec<String> {
    let keep_indent = path.ends_with(".yaml") || path.ends_with(".yml");
    let extra_comment = if path.ends_with(".php") {
        Some("//")
    } else if path.contains("/db.") || path.ends_with(".zone") {
        Some(";")
    } else {
        None
    };
    text.lines()
        .map(str::trim_end)
        .filter(|line| {
            let t = line.trim_start();
            !t.is_empty() && !t.starts_with('#') && !extra_comment.is_some_and(|c| t.starts_with(c))
        })
        .map(|line| {
            if keep_indent {
                line.to_string()
            } else {
                line.trim_start().to_string()
            }
        })
        .collect()
}

/// The `[Interface]` part first, then the `[Peer]` blocks in sorted order.
fn sorted_peer_blocks(lines: &[String]) -> Vec<String> {
    let mut head = Vec::new();
    let mut peers: Vec<Vec<String>> = Vec::new();
    for line in lines {
        if line.eq_ignore_ascii_case("[peer]") {
            peers.push(vec![line.clone()]);
        } else if let Some(peer) = peers.last_mut() {
            peer.push(line.clone());
        } else {
            head.push(line.clone());
        }
    }
    peers.sort();
    head.into_iter()
        .chain(peers.into_iter().flatten())
        .collect()
}

/// A minimal edit script (longest common subsequence) between two line
/// lists: `-` lines only in `a`, `+` lines only in `b`, in order.
fn line_diff(a: &[String], b: &[String]) -> Vec<(char, String)> {
    // Trim the common head and tail first: collected trees usually differ in
    // a few lines, which keeps the quadratic table small.
    let head = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let tail = a[head..]
        .iter()
        .rev()
        .zip(b[head..].iter().rev())
        .take_while(|(x, y)| x == y)
        .count();
    let a = &a[head..a.len() - tail];
    let b = &b[head..b.len() - tail];
    let (n, m) = (a.len(), b.len());
    let mut lcs = vec![vec![0u32; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::new();
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(('-', a[i].clone()));
            i += 1;
        } else {
            out.push(('+', b[j].clone()));
            j += 1;
        }
    }
    out
}

/// Hides key material in a line that is about to be reported.
fn redact(line: &str) -> String {
    let lower = line.to_ascii_lowercase();
    const SECRET_KEYS: [&str; 6] = [
        "privatekey",
        "presharedkey",
        "psk",
        "secret",
        "password",
        "pass",
    ];
    if let Some((key, _)) = line.split_once(['=', ':']) {
        let k = key
            .trim()
            .to_ascii_lowercase()
            .replace(['-', '_', ' ', '"', '\''], "");
        if SECRET_KEYS.iter().any(|s| k.contains(s)) {
            return format!("{} = <secret>", key.trim_end());
        }
    }
    if lower.contains("psk") && lower.contains('"') {
        return "<secret line>".to_string();
    }
    let token = line.trim();
    let looks_like_key_material = token.len() >= 16
        && !token.contains(' ')
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c));
    if looks_like_key_material || token.starts_with("-----") {
        return "<secret>".to_string();
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::RenderedFile;

    fn set(files: &[(&str, &str, &str)]) -> FileSet {
        let mut set = FileSet::new();
        for (host, path, contents) in files {
            set.add(RenderedFile {
                host: host.to_string(),
                path: path.to_string(),
                mode: 0o644,
                producer: "test",
                contents: contents.to_string(),
            })
            .unwrap_or_else(|e| panic!("{e}"));
        }
        set
    }

    const KEY_A: &str = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    const KEY_B: &str = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=";
    const KEY_C: &str = "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0=";

    fn wg(peers: &[(&str, &str)], comment: &str) -> String {
        let mut s = format!("# {comment}\n[Interface]\nPrivateKey = {KEY_A}\nListenPort = 51820\n");
        for (key, allowed) in peers {
            s.push_str(&format!(
                "\n[Peer]\nPublicKey = {key}\nAllowedIPs = {allowed}\n"
            ));
        }
        s
    }

    #[test]
    fn peer_order_whitespace_and_comments_are_not_drift() {
        let a = wg(
            &[(KEY_B, "10.0.0.2/32"), (KEY_C, "10.0.0.3/32")],
            "generated",
        );
        let b = wg(
            &[(KEY_C, "10.0.0.3/32"), (KEY_B, "10.0.0.2/32")],
            "edited by hand",
        )
        .replace(" = ", "=");
        assert_eq!(compare_file("etc/wireguard/wg0.conf", &a, &b), None);
    }

    #[test]
    fn a_changed_allowed_ips_is_drift() {
        let a = wg(&[(KEY_B, "10.0.0.2/32")], "x");
        let b = wg(&[(KEY_B, "10.0.0.9/32")], "x");
        assert_eq!(
            compare_file("etc/wireguard/wg0.conf", &a, &b),
            Some(Drift::Changed {
                lines: vec![
                    "- AllowedIPs = 10.0.0.2/32".into(),
                    "+ AllowedIPs = 10.0.0.9/32".into()
                ]
            })
        );
    }

    #[test]
    fn a_changed_private_key_is_drift_without_printing_the_key() {
        let a = wg(&[(KEY_B, "10.0.0.2/32")], "x");
        let b = a.replace(
            &format!("PrivateKey = {KEY_A}"),
            &format!("PrivateKey = {KEY_C}"),
        );
        let Some(Drift::Changed { lines }) = compare_file("etc/wireguard/wg0.conf", &a, &b) else {
            panic!("no drift")
        };
        assert_eq!(lines.len(), 2);
        for line in lines {
            assert!(!line.contains(KEY_A) && !line.contains(KEY_C), "{line}");
            assert!(line.contains("<secret>"), "{line}");
        }
    }

    #[test]
    fn a_broken_collected_file_is_unparsable() {
        let a = wg(&[(KEY_B, "10.0.0.2/32")], "x");
        let drift = compare_file("etc/wireguard/wg0.conf", &a, "[Interface]\nBogus = 1\n");
        assert!(matches!(drift, Some(Drift::Unparsable { .. })), "{drift:?}");
    }

    #[test]
    fn firewall_rule_order_counts_but_comments_do_not() {
        let a = "*filter\n-A INPUT -p tcp --dport 22 -j ACCEPT\n-A INPUT -j DROP\nCOMMIT\n";
        let commented = "# collected\n*filter\n-A INPUT -p tcp --dport 22 -j ACCEPT\n\n-A INPUT -j DROP\nCOMMIT\n";
        assert_eq!(compare_file("etc/iptables/rules.v4", a, commented), None);
        let swapped = "*filter\n-A INPUT -j DROP\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n";
        assert!(compare_file("etc/iptables/rules.v4", a, swapped).is_some());
    }

    #[test]
    fn missing_and_stale_files_are_reported_per_host() {
        let expected = set(&[
            ("hub", "etc/wireguard/wg0.conf", "a"),
            ("w1", "etc/sysctl.d/90-vpnsim.conf", "b"),
        ]);
        let collected = set(&[
            ("hub", "etc/wireguard/wg0.conf", "a"),
            ("hub", "etc/wireguard/wg1.conf", "stale"),
            ("hub", "etc/hostname", "unrelated"),
        ]);
        let drifts = compare(&expected, &collected);
        let summary: Vec<(&str, &str, &Drift)> = drifts
            .iter()
            .map(|d| (d.host.as_str(), d.path.as_str(), &d.drift))
            .collect();
        assert_eq!(
            summary,
            [
                ("hub", "etc/wireguard/wg1.conf", &Drift::Unexpected),
                ("w1", "etc/sysctl.d/90-vpnsim.conf", &Drift::Missing)
            ]
        );
    }

    #[test]
    fn line_diff_is_minimal() {
        let a: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        let b: Vec<String> = ["a", "x", "c", "d", "e"].map(String::from).into();
        assert_eq!(
            line_diff(&a, &b),
            [('-', "b".into()), ('+', "x".into()), ('+', "e".into())]
        );
    }
}

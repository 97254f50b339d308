//! Properties of the scenario format and loader:
//! - writing a loaded scenario and loading it again gives the same file and
//!   the same model;
//! - `load_str` never panics and locates every diagnostic inside the text;
//! - a misspelt key is reported as `unknown-field` with a "did you mean";
//! - the shipped scenarios load cleanly and round-trip.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use proptest::prelude::*;
use proptest::sample::Index;
use vpnsim_scenario_gen::{arb_scenario, to_toml};
use vpnsim_topology::{Diagnostic, LoadError, Scenario, load_file, load_str};

/// `cases` by default; `PROPTEST_CASES` overrides it for a longer hunt.
fn config(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn describe(diagnostics: &[Diagnostic]) -> String {
    diagnostics
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// Loads text that must be valid, with the diagnostics in the panic message.
fn must_load(name: &str, text: &str) -> Scenario {
    match load_str(name, text) {
        Ok(s) => s,
        Err(LoadError::Invalid { diagnostics, .. }) => {
            panic!(
                "{name} does not load:\n{}\n--- text ---\n{text}",
                describe(&diagnostics)
            )
        }
        Err(e) => panic!("{name}: {e}"),
    }
}

/// Loads any text and checks the shape of the outcome: `Ok`, or at least one
/// diagnostic, each inside the text (1-based line and column).
fn check_load_outcome(text: &str) -> Result<(), TestCaseError> {
    match load_str("fuzz.toml", text) {
        Ok(_) => {}
        Err(LoadError::Invalid { diagnostics, file }) => {
            prop_assert!(!diagnostics.is_empty(), "Invalid without diagnostics");
            prop_assert_eq!(&file.text, text);
            let lines: Vec<&str> = text.split('\n').collect();
            for d in &diagnostics {
                prop_assert!(
                    d.line >= 1 && d.column >= 1,
                    "{d}: line/column must be 1-based"
                );
                prop_assert!(
                    d.line <= text.lines().count() + 1,
                    "{d}: line past the end of the text"
                );
                let line_chars = lines.get(d.line - 1).map_or(0, |l| l.chars().count());
                prop_assert!(
                    d.column <= line_chars + 1,
                    "{d}: column past the end of line {}",
                    d.line
                );
                prop_assert!(
                    !d.code.is_empty() && !d.message.is_empty(),
                    "{d}: empty code or message"
                );
                prop_assert!(
                    d.span.start <= d.span.end && d.span.end <= text.len(),
                    "{d}: span {:?} outside the text",
                    d.span
                );
            }
        }
        Err(e) => prop_assert!(false, "unexpected error kind: {e}"),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Round trip.
// ---------------------------------------------------------------------------

proptest! {
    #![proptest_config(config(384))]

    /// text → load → write → load gives the same file and the same model,
    /// and writing is idempotent.
    #[test]
    fn write_then_load_round_trips(file in arb_scenario()) {
        let text = to_toml(&file);
        let s1 = must_load("first.toml", &text);
        prop_assert_eq!(&s1.file, &file);
        let text2 = to_toml(&s1.file);
        prop_assert_eq!(&text2, &text);
        let s2 = must_load("second.toml", &text2);
        prop_assert_eq!(&s1.file, &s2.file);
        prop_assert_eq!(&s1.topology, &s2.topology);
    }
}

// ---------------------------------------------------------------------------
// No panics, diagnostics located inside the text.
// ---------------------------------------------------------------------------

/// One text edit: delete, insert or replace the character at an index.
#[derive(Debug, Clone)]
enum Edit {
    Delete(Index),
    Insert(Index, char),
    Replace(Index, char),
}

fn arb_edit() -> impl Strategy<Value = Edit> {
    // Characters that matter to TOML, plus anything at all.
    let ch = prop_oneof![
        3 => proptest::sample::select(vec!['[', ']', '{', '}', '=', '"', '\'', '.', ',', '\n', '#', ' ', '\\', '-', '0', 'a', '\r', '\t']),
        1 => any::<char>(),
    ];
    prop_oneof![
        any::<Index>().prop_map(Edit::Delete),
        (any::<Index>(), ch.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        (any::<Index>(), ch).prop_map(|(i, c)| Edit::Replace(i, c)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        match edit {
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i.index(chars.len()));
            }
            Edit::Insert(i, c) => {
                let at = i.index(chars.len() + 1);
                chars.insert(at, *c);
            }
            Edit::Replace(i, c) if !chars.is_empty() => {
                let at = i.index(chars.len());
                chars[at] = *c;
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

/// Text that looks like TOML: headers, keys, values of every kind.
fn arb_tomlish() -> impl Strategy<Value = String> {
    let line = prop_oneof![
        "\\[\\[?[a-z_.\"-]{0,20}\\]\\]?",
        "[a-z_.\"-]{0,12} ?= ?(\"[^\"\n]{0,12}\"|[0-9.e+-]{1,8}|true|false|\\[[^\n]{0,20}\\]|\\{[^\n]{0,20}\\}|'[^'\n]{0,8}')",
        "(scenario|sites|hosts|subnets|links|wireguard|events|expect)[a-z0-9_.\\[\\]-]{0,20}",
        "[^\n]{0,30}",
    ];
    proptest::collection::vec(line, 0..20).prop_map(|lines| lines.join("\n"))
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_strings_never_panic(text in any::<String>()) {
        check_load_outcome(&text)?;
    }

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        check_load_outcome(&String::from_utf8_lossy(&bytes))?;
    }

    #[test]
    fn tomlish_text_never_panics(text in arb_tomlish()) {
        check_load_outcome(&text)?;
    }
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn mutated_scenarios_never_panic(
        file in arb_scenario(),
        edits in proptest::collection::vec(arb_edit(), 1..8),
    ) {
        let text = apply(&to_toml(&file), &edits);
        check_load_outcome(&text)?;
    }
}

// ---------------------------------------------------------------------------
// Unknown fields.
// ---------------------------------------------------------------------------

/// Every property name of every object in the JSON Schema: the keys the
/// format knows.
fn schema_keys() -> BTreeSet<String> {
    fn walk(value: &serde_json::Value, out: &mut BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::Object(props)) = map.get("properties") {
                    out.extend(props.keys().cloned());
                }
                map.values().for_each(|v| walk(v, out));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    walk(&vpnsim_topology::json_schema(), &mut out);
    out
}

/// Paths (table keys and array indexes) of every key that is a struct field.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Item(usize),
}

fn field_key_paths(
    value: &toml::Value,
    fields: &BTreeSet<String>,
    path: &mut Vec<Step>,
    out: &mut Vec<Vec<Step>>,
) {
    match value {
        toml::Value::Table(table) => {
            for (key, child) in table {
                path.push(Step::Key(key.clone()));
                if fields.contains(key) {
                    out.push(path.clone());
                }
                field_key_paths(child, fields, path, out);
                path.pop();
            }
        }
        toml::Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                path.push(Step::Item(i));
                field_key_paths(child, fields, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

/// Renames the key at `path` (whose last step is a key) to `new_key`.
fn rename(value: &mut toml::Value, path: &[Step], new_key: &str) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut cursor = value;
    for step in parents {
        cursor = match (step, cursor) {
            (Step::Key(k), toml::Value::Table(t)) => t.get_mut(k).unwrap(),
            (Step::Item(i), toml::Value::Array(a)) => &mut a[*i],
            _ => unreachable!("path follows the value"),
        };
    }
    if let (Step::Key(k), toml::Value::Table(t)) = (last, cursor) {
        let child = t.remove(k).unwrap();
        t.insert(new_key.to_string(), child);
    }
}

/// One edit (substitute, insert, delete or transpose) of a key.
fn one_edit(key: &str, op: u8, at: Index, ch: char) -> String {
    let mut chars: Vec<char> = key.chars().collect();
    match op % 4 {
        0 => {
            let i = at.index(chars.len());
            chars[i] = ch;
        }
        1 => chars.insert(at.index(chars.len() + 1), ch),
        2 if chars.len() > 1 => {
            chars.remove(at.index(chars.len()));
        }
        _ if chars.len() > 1 => {
            let i = at.index(chars.len() - 1);
            chars.swap(i, i + 1);
        }
        _ => chars.push(ch),
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(config(384))]

    #[test]
    fn misspelt_key_is_an_unknown_field_with_a_hint(
        file in arb_scenario(),
        which in any::<Index>(),
        op in any::<u8>(),
        at in any::<Index>(),
        ch in proptest::sample::select(('a'..='z').chain(['_', '0', '6']).collect::<Vec<char>>()),
    ) {
        let fields = schema_keys();
        let mut value = toml::Value::try_from(&file).unwrap();
        let mut paths = Vec::new();
        field_key_paths(&value, &fields, &mut Vec::new(), &mut paths);
        let path = which.get(&paths).clone();
        let Some(Step::Key(original)) = path.last().cloned() else { unreachable!() };
        let misspelt = one_edit(&original, op, at, ch);
        prop_assume!(!fields.contains(&misspelt) && strsim::damerau_levenshtein(&original, &misspelt) == 1);
        rename(&mut value, &path, &misspelt);
        let text = toml::to_string_pretty(&value).unwrap();
        let diagnostics = match load_str("misspelt.toml", &text) {
            Ok(_) => return Err(TestCaseError::fail(format!("`{original}` → `{misspelt}` was accepted:\n{text}"))),
            Err(LoadError::Invalid { diagnostics, .. }) => diagnostics,
            Err(e) => return Err(TestCaseError::fail(e.to_string())),
        };
        prop_assert_eq!(diagnostics.len(), 1, "{}", describe(&diagnostics));
        let d = &diagnostics[0];
        prop_assert_eq!(d.code.as_str(), "unknown-field", "`{}` → `{}`: {}", original, misspelt, d);
        prop_assert!(d.message.contains(&misspelt), "{d}");
        let help = d.help.clone().unwrap_or_default();
        let suggested = help.strip_prefix("did you mean `").and_then(|h| h.strip_suffix("`?"));
        prop_assert!(
            suggested.is_some_and(|s| strsim::damerau_levenshtein(s, &misspelt) <= 1),
            "`{}` → `{}`: hint {:?}", original, misspelt, d.help
        );
        // The diagnostic points at the misspelt key.
        let line = text.lines().nth(d.line - 1).unwrap_or_default();
        prop_assert!(line.contains(&misspelt), "`{}` reported at line {} `{}`:\n{}", misspelt, d.line, line, text);
    }
}

#[test]
fn misspelt_forwarding_suggests_forwarding() {
    let text = "[scenario]\nname = \"x\"\nseed = 1\n\n[sites.s1]\nkind = \"home\"\n\n[hosts.h1]\nsite = \"s1\"\nforwardng = true\n";
    let Err(LoadError::Invalid { diagnostics, .. }) = load_str("x.toml", text) else {
        panic!("accepted")
    };
    let d = &diagnostics[0];
    assert_eq!(d.code, "unknown-field");
    assert_eq!(d.help.as_deref(), Some("did you mean `forwarding`?"));
    assert_eq!((d.line, d.column), (10, 1));
}

// ---------------------------------------------------------------------------
// Shipped scenarios.
// ---------------------------------------------------------------------------

fn shipped() -> Vec<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../scenarios");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

#[test]
fn shipped_scenarios_load_and_round_trip() {
    let files = shipped();
    assert!(
        files.len() >= 5,
        "expected the five reference scenarios in scenarios/, found {files:?}"
    );
    for path in files {
        let name = path.display().to_string();
        let s1 = match load_file(&path) {
            Ok(s) => s,
            Err(LoadError::Invalid { diagnostics, .. }) => {
                panic!("{name}:\n{}", describe(&diagnostics))
            }
            Err(e) => panic!("{e}"),
        };
        let text = to_toml(&s1.file);
        let s2 = must_load(&format!("{name} (rewritten)"), &text);
        assert_eq!(s1.file, s2.file, "{name}: file differs after a rewrite");
        assert_eq!(
            s1.topology, s2.topology,
            "{name}: model differs after a rewrite"
        );
    }
}

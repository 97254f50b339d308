//! Where things are in a scenario file.
//!
//! Serde gives us plain values; diagnostics need `file:line:col`. Rather than
//! wrapping every field in `Spanned<T>` (which would leak into every later
//! stage and into the JSON Schema), the file is parsed a second time into
//! toml's spanned tree and flattened into a map from field path
//! (`hosts.vpn-virginia.interfaces[0].address`) to byte spans.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// A scenario file's text and line index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// Name as given by the user (the path on the command line).
    pub name: String,
    /// Full text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl SourceFile {
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        let text = text.into();
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        SourceFile {
            name: name.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self
            .line_starts
            .partition_point(|&start| start <= offset)
            .max(1);
        let start = self.line_starts[line - 1];
        let column = self
            .text
            .get(start..offset)
            .map_or(offset - start, |prefix| prefix.chars().count())
            + 1;
        (line, column)
    }
}

/// A dotted path to a field, as users see it in diagnostics.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(String::new())
    }

    /// `a.b` + `c` → `a.b.c`; keys that are not bare TOML keys are quoted.
    pub fn key(&self, key: &str) -> Self {
        let bare = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let key = if bare {
            key.to_string()
        } else {
            format!("{key:?}")
        };
        if self.0.is_empty() {
            FieldPath(key)
        } else {
            FieldPath(format!("{}.{key}", self.0))
        }
    }

    /// `a.b` + 3 → `a.b[3]`.
    pub fn index(&self, index: usize) -> Self {
        FieldPath(format!("{}[{index}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The path with its last segment removed.
    pub fn parent(&self) -> Option<FieldPath> {
        let cut = self.0.rfind(['.', '['])?;
        Some(FieldPath(self.0[..cut].to_string()))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Spans of a field: its key (where it is named) and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldSpan {
    pub key: Range<usize>,
    pub value: Range<usize>,
}

/// Field path → span, for every key and array element in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceMap {
    spans: BTreeMap<FieldPath, FieldSpan>,
}

impl SourceMap {
    /// Builds the map. toml's recovering parser keeps going after an error,
    /// so even a file with a syntax error or a duplicate key gets the spans
    /// of everything around it, and errors can be located at a field.
    pub fn build(text: &str) -> Self {
        let mut map = SourceMap::default();
        let (root, _errors) = DeTable::parse_recoverable(text);
        map.walk_table(&FieldPath::root(), root.get_ref());
        map
    }

    fn walk_table(&mut self, path: &FieldPath, table: &DeTable<'_>) {
        for (key, value) in table {
            let child = path.key(key.get_ref());
            self.spans.insert(
                child.clone(),
                FieldSpan {
                    key: key.span(),
                    value: value.span(),
                },
            );
            self.walk_value(&child, value.get_ref());
        }
    }

    fn walk_value(&mut self, path: &FieldPath, value: &DeValue<'_>) {
        match value {
            DeValue::Table(table) => self.walk_table(path, table),
            DeValue::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    let child = path.index(i);
                    let span = item.span();
                    self.spans.insert(
                        child.clone(),
                        FieldSpan {
                            key: span.clone(),
                            value: span,
                        },
                    );
                    self.walk_value(&child, item.get_ref());
                }
            }
            _ => {}
        }
    }

    /// Span of a field, or of its nearest ancestor that is written in the file
    /// (a defaulted field has no span of its own; its table does).
    pub fn find(&self, path: &FieldPath) -> Option<&FieldSpan> {
        let mut path = Some(path.clone());
        while let Some(p) = path {
            if let Some(span) = self.spans.get(&p) {
                return Some(span);
            }
            path = p.parent();
        }
        None
    }

    /// The deepest field whose value contains `span` (for serde errors that
    /// come with a span but no path).
    pub fn field_at(&self, span: &Range<usize>) -> Option<FieldPath> {
        self.spans
            .iter()
            .filter(|(_, s)| {
                (s.value.start <= span.start && span.end <= s.value.end)
                    || (s.key.start <= span.start && span.end <= s.key.end)
            })
            .min_by_key(|(_, s)| s.value.end - s.value.start)
            .map(|(p, _)| p.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_from_one() {
        let file = SourceFile::new("x.toml", "a = 1\nbé = 2\n");
        assert_eq!(file.line_col(0), (1, 1));
        assert_eq!(file.line_col(6), (2, 1));
        assert_eq!(file.line_col(10), (2, 4));
    }

    #[test]
    fn map_finds_nested_fields() {
        let text = "[hosts.a]\nsite = \"s\"\n[[hosts.a.interfaces]]\nname = \"eth0\"\n[dns.\"x.example\"]\na = [\"192.0.2.1\"]\n";
        let map = SourceMap::build(text);
        let path = FieldPath::root()
            .key("hosts")
            .key("a")
            .key("interfaces")
            .index(0)
            .key("name");
        assert_eq!(path.as_str(), "hosts.a.interfaces[0].name");
        let span = map.find(&path).map(|s| s.key.clone());
        assert_eq!(span.map(|s| &text[s]), Some("name"));
        let dns = FieldPath::root()
            .key("dns")
            .key("x.example")
            .key("a")
            .index(0);
        assert_eq!(dns.as_str(), "dns.\"x.example\".a[0]");
        assert!(map.find(&dns).is_some());
        let missing = FieldPath::root().key("hosts").key("a").key("forwarding");
        assert_eq!(
            map.find(&missing),
            map.find(&FieldPath::root().key("hosts").key("a"))
        );
    }
}

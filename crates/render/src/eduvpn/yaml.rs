//! A strict, small YAML subset: what eduVPN 1.x's `config.yaml` needs.
//!
//! Representation: [`YamlDoc`] = header comment lines + a root [`Value`]
//! (null, bool, int, string, list, map with string keys).
//!
//! Emit: block mappings indented by four spaces; lists of scalars (and
//! empty lists) in flow style `[a, b]`; other lists as block sequences
//! (`- ` items, a map item starting on the dash's line, its other keys two
//! columns right of the dash); `{}` for an empty map; `null`, `true`,
//! `false`, decimal integers. A string is written plain only when it is made
//! of `A-Za-z0-9_./@-`, starts with a letter, digit, `_` or `/`, and reads
//! back as that same string under both YAML 1.1 (PyYAML) and YAML 1.2
//! (so `10.0.0.0/24` and `8.8.8.8` stay plain, while `'fd00::/48'`,
//! `'1.5'`, `'yes'`, `'0755'`, `'2024-01-01'` are quoted); otherwise in
//! single quotes, or in double quotes with escapes when it holds control
//! characters or characters YAML treats as line breaks.
//!
//! Parse accepts: block mappings and block sequences (including `- key:`
//! compact items and a sequence at its parent key's indentation), flow
//! sequences on one line (nesting, trailing comma), `{}`, plain scalars on
//! one line, single- and double-quoted scalars on one line (YAML escapes),
//! comments, a leading `---` and a final `...`. A plain scalar is `null`
//! (`~`, `null`, `Null`, `NULL`, or nothing), a bool (`true`/`True`/`TRUE`,
//! `false`/…), a decimal integer (`[-+]?(0|[1-9][0-9]*)`, 64-bit), or else a
//! string — and it is rejected when YAML 1.1 and 1.2 would disagree or read
//! it as something the model does not have: floats, `yes`/`no`/`on`/`off`,
//! octal, hex, binary, `_` digit separators, sexagesimal numbers, dates,
//! `<<`, `=`. Also rejected, with the line: anchors, aliases, tags, block
//! scalars (`|`, `>`), flow mappings other than `{}`, complex keys (`?`),
//! multi-line scalars and flow collections, keys that are not strings,
//! keys longer than 1024 characters (PyYAML's limit for simple keys),
//! duplicate keys, tabs in indentation or plain scalars, non-printable
//! characters, a byte-order mark, directives, several documents, nesting
//! deeper than 64.

use super::value::{Map, Value};
use super::{CommentLine, Spans, is_yaml_special};
use crate::format::{Format, ParseError};

/// Deepest nesting `parse` accepts.
pub const MAX_DEPTH: usize = 64;

/// Longest simple key PyYAML reads (in characters of the source).
const MAX_KEY_LEN: usize = 1024;

/// A YAML document of the subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct YamlDoc {
    pub header: Vec<CommentLine>,
    pub root: Value,
}

impl YamlDoc {
    pub fn new(root: Value) -> Self {
        YamlDoc {
            header: Vec::new(),
            root,
        }
    }

    pub(crate) fn parse_spanned(text: &str) -> Result<(YamlDoc, Spans), ParseError> {
        parse_doc(text)
    }
}

impl Format for YamlDoc {
    fn emit(&self) -> String {
        let mut out = String::new();
        for line in &self.header {
            if line.as_str().is_empty() {
                out.push_str("#\n");
            } else {
                out.push_str("# ");
                out.push_str(line.as_str());
                out.push('\n');
            }
        }
        match &self.root {
            Value::Map(m) if !m.is_empty() => emit_map(&mut out, m, 0),
            Value::List(l) if !flowable(l) => emit_seq(&mut out, l, 0),
            v => {
                inline(&mut out, v);
                out.push('\n');
            }
        }
        out
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        parse_doc(text).map(|(doc, _)| doc)
    }
}

// ---------------------------------------------------------------------------
// Emit
// ---------------------------------------------------------------------------

fn is_scalar(v: &Value) -> bool {
    matches!(
        v,
        Value::Null | Value::Bool(_) | Value::Int(_) | Value::Str(_)
    )
}

/// Written as `[a, b]`: empty, or only scalars.
fn flowable(list: &[Value]) -> bool {
    list.iter().all(is_scalar)
}

fn push_indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

fn emit_map(out: &mut String, map: &Map, indent: usize) {
    for (key, value) in map.iter() {
        push_indent(out, indent);
        emit_str(out, key);
        out.push(':');
        match value {
            Value::Map(m) if !m.is_empty() => {
                out.push('\n');
                emit_map(out, m, indent + 4);
            }
            Value::List(l) if !flowable(l) => {
                out.push('\n');
                emit_seq(out, l, indent + 4);
            }
            v => {
                out.push(' ');
                inline(out, v);
                out.push('\n');
            }
        }
    }
}

fn emit_seq(out: &mut String, list: &[Value], indent: usize) {
    for item in list {
        let mut block = String::new();
        match item {
            Value::Map(m) if !m.is_empty() => emit_map(&mut block, m, indent + 2),
            Value::List(l) if !flowable(l) => emit_seq(&mut block, l, indent + 2),
            v => {
                push_indent(out, indent);
                out.push_str("- ");
                inline(out, v);
                out.push('\n');
                continue;
            }
        }
        // The nested block's first line starts at indent + 2: put the dash there.
        push_indent(out, indent);
        out.push_str("- ");
        out.push_str(&block[indent + 2..]);
    }
}

/// A scalar, an empty map, or a list of scalars on one line.
fn inline(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::Str(s) => emit_str(out, s),
        Value::List(l) => {
            out.push('[');
            for (i, item) in l.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                inline(out, item);
            }
            out.push(']');
        }
        // Only empty maps reach here (non-empty ones are blocks).
        Value::Map(_) => out.push_str("{}"),
    }
}

/// Words some YAML reader takes for a bool, null or float, in any case.
const QUOTED_WORDS: &[&str] = &[
    "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
];

fn plain_ok(s: &str) -> bool {
    let mut chars = s.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    (first.is_ascii_alphanumeric() || first == '_' || first == '/')
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./@-".contains(c))
        && !QUOTED_WORDS.iter().any(|w| w.eq_ignore_ascii_case(s))
        && matches!(resolve_plain(s), Ok(Value::Str(_)))
}

fn needs_double(c: char) -> bool {
    c.is_control() || is_yaml_special(c)
}

fn emit_str(out: &mut String, s: &str) {
    if plain_ok(s) {
        out.push_str(s);
    } else if !s.chars().any(needs_double) {
        out.push('\'');
        out.push_str(&s.replace('\'', "''"));
        out.push('\'');
    } else {
        out.push('"');
        for c in s.chars() {
            match c {
                '\\' => out.push_str("\\\\"),
                '"' => out.push_str("\\\""),
                '\n' => out.push_str("\\n"),
                '\t' => out.push_str("\\t"),
                '\r' => out.push_str("\\r"),
                '\0' => out.push_str("\\0"),
                c if (c as u32) < 0x100 && needs_double(c) => {
                    out.push_str(&format!("\\x{:02X}", c as u32))
                }
                c if needs_double(c) => out.push_str(&format!("\\u{:04X}", c as u32)),
                c => out.push(c),
            }
        }
        out.push('"');
    }
}

// ---------------------------------------------------------------------------
// Scalar resolution
// ---------------------------------------------------------------------------

fn digits_with(s: &str, ok: impl Fn(char) -> bool) -> bool {
    !s.is_empty() && s.chars().all(ok)
}

fn strip_sign(s: &str) -> &str {
    s.strip_prefix(['-', '+']).unwrap_or(s)
}

/// Matches `[1-9][0-9_]*(:[0-5]?[0-9])+` (sign already stripped) at the
/// start of `t` and returns what follows (for sexagesimal floats).
fn sexagesimal(t: &str) -> Option<&str> {
    let (head, _) = t.split_once(':')?;
    let mut hc = head.chars();
    if !(hc.next().is_some_and(|c| ('1'..='9').contains(&c))
        && hc.all(|c| c.is_ascii_digit() || c == '_'))
    {
        return None;
    }
    let mut rest = &t[head.len()..];
    while let Some(r) = rest.strip_prefix(':') {
        let n = r.chars().take_while(char::is_ascii_digit).count();
        let group = &r[..n];
        let ok = match group.as_bytes() {
            [_] => true,
            [a, _] => (b'0'..=b'5').contains(a),
            _ => false,
        };
        if !ok {
            return None;
        }
        rest = &r[n..];
    }
    Some(rest)
}

/// PyYAML's (YAML 1.1) int resolver.
fn yaml11_int(s: &str) -> bool {
    let t = strip_sign(s);
    if let Some(b) = t.strip_prefix("0b") {
        return digits_with(b, |c| c == '0' || c == '1' || c == '_');
    }
    if let Some(x) = t.strip_prefix("0x") {
        return digits_with(x, |c| c.is_ascii_hexdigit() || c == '_');
    }
    if let Some(o) = t.strip_prefix('0') {
        return o.is_empty() || digits_with(o, |c| ('0'..='7').contains(&c) || c == '_');
    }
    if t.starts_with(|c: char| ('1'..='9').contains(&c))
        && t.chars().all(|c| c.is_ascii_digit() || c == '_')
    {
        return true;
    }
    sexagesimal(t).is_some_and(str::is_empty)
}

/// `[eE][-+][0-9]+` (1.1: sign required) or `[eE][-+]?[0-9]+` (1.2).
fn exponent(s: &str, sign_required: bool) -> bool {
    let Some(r) = s.strip_prefix(['e', 'E']) else {
        return false;
    };
    let r = match r.strip_prefix(['-', '+']) {
        Some(r) => r,
        None if sign_required => return false,
        None => r,
    };
    digits_with(r, |c| c.is_ascii_digit())
}

/// PyYAML's (YAML 1.1) float resolver.
fn yaml11_float(s: &str) -> bool {
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let t = strip_sign(s);
    if matches!(t, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    let exp_ok = |r: &str| r.is_empty() || exponent(r, true);
    // [-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?
    if t.starts_with(|c: char| c.is_ascii_digit()) {
        let n = t
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '_')
            .count();
        if let Some(r) = t[n..].strip_prefix('.') {
            let m = r
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '_')
                .count();
            if exp_ok(&r[m..]) {
                return true;
            }
        }
    }
    // \.[0-9][0-9_]*([eE][-+][0-9]+)? (no sign)
    if let Some(r) = s.strip_prefix('.')
        && r.starts_with(|c: char| c.is_ascii_digit())
    {
        let m = r
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '_')
            .count();
        if exp_ok(&r[m..]) {
            return true;
        }
    }
    // [-+]?[0-9][0-9_]*(:[0-5]?[0-9])+\.[0-9_]*
    if let Some(rest) = sexagesimal(t)
        && let Some(r) = rest.strip_prefix('.')
    {
        return r.chars().all(|c| c.is_ascii_digit() || c == '_');
    }
    false
}

/// PyYAML's timestamp resolver, approximated from above: anything starting
/// with `YYYY-M`.
fn yaml11_timestamp(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 6 && b[..4].iter().all(u8::is_ascii_digit) && b[4] == b'-' && b[5].is_ascii_digit()
}

/// YAML 1.2 core schema ints and floats.
fn yaml12_number(s: &str) -> bool {
    if let Some(o) = s.strip_prefix("0o") {
        return digits_with(o, |c| ('0'..='7').contains(&c));
    }
    if let Some(x) = s.strip_prefix("0x") {
        return digits_with(x, |c| c.is_ascii_hexdigit());
    }
    if matches!(s, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    let t = strip_sign(s);
    if matches!(t, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    // (\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?
    let rest = if let Some(r) = t.strip_prefix('.') {
        let n = r.chars().take_while(char::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        &r[n..]
    } else {
        let n = t.chars().take_while(char::is_ascii_digit).count();
        if n == 0 {
            return false;
        }
        let r = &t[n..];
        match r.strip_prefix('.') {
            Some(r) => &r[r.chars().take_while(char::is_ascii_digit).count()..],
            None => r,
        }
    };
    rest.is_empty() || exponent(rest, false)
}

/// The value of a plain scalar, or why it is refused.
fn resolve_plain(s: &str) -> Result<Value, String> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        "yes" | "Yes" | "YES" | "no" | "No" | "NO" | "on" | "On" | "ON" | "off" | "Off" | "OFF" => {
            return Err(format!(
                "`{s}` is a boolean in YAML 1.1 and a string in YAML 1.2: quote it, or write true/false"
            ));
        }
        "<<" | "=" => return Err(format!("`{s}` has a special meaning in YAML 1.1: quote it")),
        _ => {}
    }
    let t = strip_sign(s);
    let decimal = match t.as_bytes() {
        [b'0'] => true,
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if decimal {
        return s
            .strip_prefix('+')
            .unwrap_or(s)
            .parse::<i64>()
            .map(Value::Int)
            .map_err(|_| format!("`{s}` is outside the 64-bit integer range"));
    }
    if yaml11_int(s) || yaml11_float(s) || yaml11_timestamp(s) || yaml12_number(s) {
        return Err(format!(
            "`{s}` is a number or date in YAML 1.1 or 1.2 that this subset does not read (floats, octal, hex, binary, `_`, sexagesimal, dates): quote it if it is a string"
        ));
    }
    Ok(Value::Str(s.to_string()))
}

// ---------------------------------------------------------------------------
// Lines
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Line {
    no: usize,
    indent: usize,
    text: String,
}

fn err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError::new(line, message)
}

fn printable(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | ' '..='~') || (c as u32 >= 0xA0 && !is_yaml_special(c))
}

fn parse_doc(text: &str) -> Result<(YamlDoc, Spans), ParseError> {
    let mut header = Vec::new();
    let mut lines = Vec::new();
    let mut started = false;
    let mut ended = false;
    for (i, raw) in text.split('\n').enumerate() {
        let no = i + 1;
        let raw = raw.strip_suffix('\r').unwrap_or(raw);
        if let Some(c) = raw.chars().find(|&c| !printable(c) || c == '\r') {
            return Err(err(
                no,
                format!(
                    "character U+{:04X} is not allowed in this YAML subset",
                    c as u32
                ),
            ));
        }
        let indent = raw.len() - raw.trim_start_matches(' ').len();
        let content = &raw[indent..];
        let trimmed = content.trim();
        if trimmed.is_empty() {
            continue;
        }
        if trimmed.starts_with('#') {
            if !started {
                // The text after `#` and one space, trailing blanks kept.
                let after = &content[content.find('#').map_or(0, |p| p + 1)..];
                let after = after.strip_prefix(' ').unwrap_or(after);
                header.push(CommentLine::new(after).map_err(|e| err(no, e.0))?);
            }
            continue;
        }
        if content.starts_with('\t') {
            return Err(err(no, "tab in indentation"));
        }
        if ended {
            return Err(err(no, "content after the document end marker `...`"));
        }
        if indent == 0
            && (content == "---" || content.starts_with("--- ") || content.starts_with("---\t"))
        {
            if started {
                return Err(err(no, "several documents in one file are not supported"));
            }
            let rest = content[3..].trim();
            if !(rest.is_empty() || rest.starts_with('#')) {
                return Err(err(no, "content on the `---` line is not supported"));
            }
            started = true;
            continue;
        }
        if indent == 0 && (content == "..." || content.starts_with("... ")) {
            ended = true;
            continue;
        }
        if indent == 0 && content.starts_with('%') {
            return Err(err(no, "directives (`%YAML`, `%TAG`) are not supported"));
        }
        started = true;
        lines.push(Line {
            no,
            indent,
            text: content.trim_end_matches([' ', '\t']).to_string(),
        });
    }
    let mut p = Parser {
        lines,
        pos: 0,
        spans: Spans::default(),
        path: Vec::new(),
    };
    let root = match p.lines.first() {
        None => Value::Null,
        Some(first) => {
            let indent = first.indent;
            p.block_node(indent, 0)?
        }
    };
    if let Some(line) = p.lines.get(p.pos) {
        return Err(err(
            line.no,
            "unexpected content (indentation does not match any open block)",
        ));
    }
    Ok((YamlDoc { header, root }, p.spans))
}

fn is_seq_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

struct Parser {
    lines: Vec<Line>,
    pos: usize,
    spans: Spans,
    path: Vec<String>,
}

impl Parser {
    fn block_node(&mut self, indent: usize, depth: usize) -> Result<Value, ParseError> {
        let line = self.lines[self.pos].clone();
        if depth > MAX_DEPTH {
            return Err(err(
                line.no,
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        if is_seq_item(&line.text) {
            self.block_seq(indent, depth)
        } else if split_key(&line.text, line.no)?.is_some() {
            self.block_map(indent, depth)
        } else {
            self.pos += 1;
            inline_value(&line.text, line.no, depth)
        }
    }

    fn block_map(&mut self, indent: usize, depth: usize) -> Result<Value, ParseError> {
        let mut map = Map::new();
        while let Some(line) = self.lines.get(self.pos).cloned() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return Err(err(
                    line.no,
                    "unexpected indentation (multi-line values are not supported)",
                ));
            }
            let Some((key, rest)) = split_key(&line.text, line.no)? else {
                return Err(err(line.no, "expected `key: value` at this indentation"));
            };
            if map.contains_key(&key) {
                return Err(err(line.no, format!("duplicate key `{key}`")));
            }
            self.path.push(key.clone());
            self.spans.record(&self.path, line.no);
            self.pos += 1;
            let rest_trim = rest.trim_start();
            let value = if rest_trim.is_empty() || rest_trim.starts_with('#') {
                match self.lines.get(self.pos) {
                    Some(next) if next.indent > indent => {
                        let next_indent = next.indent;
                        self.block_node(next_indent, depth + 1)
                    }
                    Some(next) if next.indent == indent && is_seq_item(&next.text) => {
                        self.block_seq(indent, depth + 1)
                    }
                    _ => Ok(Value::Null),
                }
            } else {
                inline_value(rest_trim, line.no, depth + 1)
            };
            self.path.pop();
            map.insert(key, value?);
        }
        Ok(Value::Map(map))
    }

    fn block_seq(&mut self, indent: usize, depth: usize) -> Result<Value, ParseError> {
        if depth > MAX_DEPTH {
            let no = self.lines.get(self.pos).map_or(0, |l| l.no);
            return Err(err(no, format!("nesting deeper than {MAX_DEPTH} levels")));
        }
        let mut list = Vec::new();
        while let Some(line) = self.lines.get(self.pos).cloned() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent {
                return Err(err(
                    line.no,
                    "unexpected indentation (multi-line values are not supported)",
                ));
            }
            if !is_seq_item(&line.text) {
                break;
            }
            let after = &line.text[1..];
            let spaces = after.len() - after.trim_start_matches(' ').len();
            let rest = &after[spaces..];
            self.path.push(list.len().to_string());
            self.spans.record(&self.path, line.no);
            let value = if rest.is_empty() || rest.starts_with('#') {
                self.pos += 1;
                match self.lines.get(self.pos) {
                    Some(next) if next.indent > indent => {
                        let next_indent = next.indent;
                        self.block_node(next_indent, depth + 1)
                    }
                    _ => Ok(Value::Null),
                }
            } else if rest.starts_with('\t') {
                Err(err(line.no, "tab after `-`"))
            } else {
                let column = indent + 1 + spaces;
                self.lines[self.pos] = Line {
                    no: line.no,
                    indent: column,
                    text: rest.to_string(),
                };
                self.block_node(column, depth + 1)
            };
            self.path.pop();
            list.push(value?);
        }
        Ok(Value::List(list))
    }
}

/// A mapping entry's key and the text after its `:`, when `text` is one.
fn split_key(text: &str, no: usize) -> Result<Option<(String, &str)>, ParseError> {
    if text.starts_with(['\'', '"']) {
        let (key, n) = quoted(text, no)?;
        let after = &text[n..];
        if after.starts_with(':') && (after.len() == 1 || after[1..].starts_with(' ')) {
            if n > MAX_KEY_LEN {
                return Err(err(no, "key longer than 1024 characters"));
            }
            return Ok(Some((key, &after[1..])));
        }
        return Ok(None);
    }
    if text.starts_with(['[', '{', '#']) || is_seq_item(text) {
        return Ok(None);
    }
    if text == "?" || text.starts_with("? ") {
        return Err(err(no, "complex keys (`?`) are not supported"));
    }
    let b = text.as_bytes();
    let mut found = None;
    for i in 0..b.len() {
        if b[i] == b'#' && i > 0 && b[i - 1] == b' ' {
            break;
        }
        if b[i] == b':' && (i + 1 == b.len() || b[i + 1] == b' ') {
            found = Some(i);
            break;
        }
    }
    let Some(i) = found else { return Ok(None) };
    let key_text = text[..i].trim_end_matches(' ');
    if key_text.is_empty() {
        return Err(err(no, "empty key"));
    }
    if i > MAX_KEY_LEN {
        return Err(err(no, "key longer than 1024 characters"));
    }
    check_plain_start(key_text, no)?;
    if key_text.contains('\t') {
        return Err(err(no, "tab in a plain key"));
    }
    match resolve_plain(key_text).map_err(|m| err(no, m))? {
        Value::Str(s) => Ok(Some((s, &text[i + 1..]))),
        _ => Err(err(
            no,
            format!("mapping keys must be strings: quote `{key_text}`"),
        )),
    }
}

/// Refuses plain scalars that start with an indicator.
fn check_plain_start(s: &str, no: usize) -> Result<(), ParseError> {
    let mut chars = s.chars();
    let first = chars.next();
    let second = chars.next();
    match first {
        Some('-' | '?' | ':') if matches!(second, None | Some(' ')) => Err(err(
            no,
            format!(
                "`{}` followed by a space cannot start a value here",
                first.unwrap_or('-')
            ),
        )),
        Some('&' | '*' | '!') => Err(err(no, "anchors, aliases and tags are not supported")),
        Some('|' | '>') => Err(err(no, "block scalars (`|`, `>`) are not supported")),
        Some(c @ ('%' | '@' | '`' | ',' | '[' | ']' | '{' | '}' | '#' | '\'' | '"')) => Err(err(
            no,
            format!("a plain value cannot start with `{c}`: quote it"),
        )),
        _ => Ok(()),
    }
}

/// A scalar or flow collection that is the rest of a line.
fn inline_value(s: &str, no: usize, depth: usize) -> Result<Value, ParseError> {
    if depth > MAX_DEPTH {
        return Err(err(no, format!("nesting deeper than {MAX_DEPTH} levels")));
    }
    let (value, n) = match s.as_bytes().first() {
        Some(b'[') => flow_seq(s, no, depth + 1)?,
        Some(b'{') => empty_flow_map(s, no)?,
        Some(b'\'' | b'"') => {
            let (v, n) = quoted(s, no)?;
            (Value::Str(v), n)
        }
        _ => {
            // A plain scalar: up to a comment.
            let b = s.as_bytes();
            let end = (1..b.len())
                .find(|&i| b[i] == b'#' && b[i - 1] == b' ')
                .unwrap_or(b.len());
            let plain = s[..end].trim_end_matches(' ');
            check_plain_start(plain, no)?;
            if plain.contains(": ") || plain.ends_with(':') {
                return Err(err(
                    no,
                    "`: ` inside a plain value (a mapping is not allowed here): quote the value",
                ));
            }
            if plain.contains('\t') {
                return Err(err(no, "tab in a plain value: quote it"));
            }
            return resolve_plain(plain).map_err(|m| err(no, m));
        }
    };
    let rest = &s[n..];
    let trimmed = rest.trim_start_matches(' ');
    if trimmed.is_empty() || (trimmed.starts_with('#') && trimmed.len() < rest.len()) {
        Ok(value)
    } else {
        Err(err(no, "unexpected text after the value"))
    }
}

fn empty_flow_map(s: &str, no: usize) -> Result<(Value, usize), ParseError> {
    let inner = s[1..].trim_start_matches(' ');
    if inner.starts_with('}') {
        Ok((Value::Map(Map::new()), s.len() - inner.len() + 1))
    } else {
        Err(err(
            no,
            "flow mappings are not supported (only the empty map `{}`)",
        ))
    }
}

fn flow_seq(s: &str, no: usize, depth: usize) -> Result<(Value, usize), ParseError> {
    if depth > MAX_DEPTH {
        return Err(err(no, format!("nesting deeper than {MAX_DEPTH} levels")));
    }
    let b = s.as_bytes();
    let mut i = 1;
    let mut items = Vec::new();
    let unclosed = || err(no, "a flow sequence `[...]` must close on the same line");
    loop {
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        let Some(&c) = b.get(i) else {
            return Err(unclosed());
        };
        match c {
            b']' => return Ok((Value::List(items), i + 1)),
            b',' => return Err(err(no, "empty entry in a flow sequence")),
            b'#' if b[i - 1] == b' ' => return Err(unclosed()),
            b'[' => {
                let (v, n) = flow_seq(&s[i..], no, depth + 1)?;
                items.push(v);
                i += n;
            }
            b'{' => {
                let (v, n) = empty_flow_map(&s[i..], no)?;
                items.push(v);
                i += n;
            }
            b'\'' | b'"' => {
                let (v, n) = quoted(&s[i..], no)?;
                items.push(Value::Str(v));
                i += n;
            }
            _ => {
                let start = i;
                while i < b.len()
                    && !matches!(b[i], b',' | b']')
                    && !(b[i] == b'#' && b[i - 1] == b' ')
                {
                    if matches!(b[i], b'[' | b'{' | b'}' | b'?') {
                        return Err(err(
                            no,
                            format!(
                                "`{}` inside a plain value in [ ]: quote the value",
                                b[i] as char
                            ),
                        ));
                    }
                    if b[i] == b':' {
                        return Err(err(no, "`:` inside a plain value in [ ]: quote the value"));
                    }
                    i += 1;
                }
                let plain = s[start..i].trim_end_matches(' ');
                check_plain_start(plain, no)?;
                if plain.starts_with(':') {
                    return Err(err(
                        no,
                        "a plain value in [ ] cannot start with `:`: quote it",
                    ));
                }
                if plain.contains('\t') {
                    return Err(err(no, "tab in a plain value: quote it"));
                }
                items.push(resolve_plain(plain).map_err(|m| err(no, m))?);
            }
        }
        while i < b.len() && b[i] == b' ' {
            i += 1;
        }
        match b.get(i) {
            Some(b',') => i += 1,
            Some(b']') => return Ok((Value::List(items), i + 1)),
            Some(_) => return Err(err(no, "expected `,` or `]` in a flow sequence")),
            None => return Err(unclosed()),
        }
    }
}

/// A quoted scalar at the start of `s` (single line): the string and the
/// bytes it spans.
fn quoted(s: &str, no: usize) -> Result<(String, usize), ParseError> {
    let unterminated = || {
        err(
            no,
            "unterminated quoted string (multi-line quoted strings are not supported)",
        )
    };
    let mut out = String::new();
    let mut it = s.char_indices().skip(1).peekable();
    if s.starts_with('\'') {
        while let Some((i, c)) = it.next() {
            if c == '\'' {
                if it.peek().is_some_and(|&(_, n)| n == '\'') {
                    it.next();
                    out.push('\'');
                } else {
                    return Ok((out, i + 1));
                }
            } else {
                out.push(c);
            }
        }
        return Err(unterminated());
    }
    while let Some((i, c)) = it.next() {
        match c {
            '"' => return Ok((out, i + 1)),
            '\\' => {
                let Some((_, e)) = it.next() else {
                    return Err(unterminated());
                };
                let simple = match e {
                    '0' => Some('\0'),
                    'a' => Some('\u{7}'),
                    'b' => Some('\u{8}'),
                    't' | '\t' => Some('\t'),
                    'n' => Some('\n'),
                    'v' => Some('\u{b}'),
                    'f' => Some('\u{c}'),
                    'r' => Some('\r'),
                    'e' => Some('\u{1b}'),
                    ' ' => Some(' '),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    'N' => Some('\u{85}'),
                    '_' => Some('\u{a0}'),
                    'L' => Some('\u{2028}'),
                    'P' => Some('\u{2029}'),
                    _ => None,
                };
                if let Some(c) = simple {
                    out.push(c);
                    continue;
                }
                let len = match e {
                    'x' => 2,
                    'u' => 4,
                    'U' => 8,
                    _ => {
                        return Err(err(
                            no,
                            format!("unknown escape `\\{e}` in a double-quoted string"),
                        ));
                    }
                };
                let mut v: u32 = 0;
                for _ in 0..len {
                    match it.next().and_then(|(_, d)| d.to_digit(16)) {
                        Some(d) => v = v * 16 + d,
                        None => return Err(err(no, format!("`\\{e}` needs {len} hex digits"))),
                    }
                }
                match char::from_u32(v) {
                    Some(c) => out.push(c),
                    None => {
                        return Err(err(
                            no,
                            format!("`\\{e}{v:X}` is not a Unicode scalar value"),
                        ));
                    }
                }
            }
            c => out.push(c),
        }
    }
    Err(unterminated())
}

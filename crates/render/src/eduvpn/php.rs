//! PHP array configuration files: `<?php return array (...);`.
//!
//! Representation: [`PhpFile`] = header comment lines + a root
//! [`PhpArray`], an ordered array of [`PhpKey`] (int or string, normalized
//! the way PHP casts keys: `'5'` is the int key 5) to [`PhpValue`] (null,
//! bool, int, string, array). A list is an array whose keys are 0, 1, 2, …
//!
//! Emit: `<?php`, the header as `//` lines, then `return ` followed by
//! exactly what `php -r 'var_export(require FILE);'` prints for the array
//! (two-space indentation, every key written out, `NULL`, strings in single
//! quotes with `\\` and `\'`, NUL bytes as `'' . "\0" . ''`, the smallest
//! integer as `-9223372036854775807-1`, a nested array on the line after
//! its key, PHP's trailing space after `=>` included), then `;`.
//!
//! Parse accepts the subset eduVPN's files and their documentation use:
//! `array (...)` and `[...]` (case-insensitive `array`), implicit and
//! explicit keys, trailing commas, `//`, `#` and `/* */` comments, single-
//! and double-quoted strings (escapes as PHP has them; no `$` interpolation,
//! no heredoc), `.` between string literals, decimal integers with unary
//! `-`, `true`/`false`/`null` in any case, an optional
//! `declare(strict_types=1);` and an optional closing `?>`. `//` and `#`
//! comments before `return` are the header. Rejected, with the line: floats,
//! hex/octal/binary literals, integers out of the 64-bit range (PHP makes
//! them floats), constants, variables, function calls, arithmetic, bool or
//! null keys, duplicate keys (PHP silently keeps the last), an implicit key
//! after only negative int keys (PHP versions disagree on it), text before
//! `<?php` or after `?>` (PHP would print it), nesting deeper than 64.

use std::fmt;

use super::value::{Map, Value};
use super::{CommentLine, Spans, is_secret_key};
use crate::format::{Format, ParseError};

/// Deepest array nesting `parse` accepts.
pub const MAX_DEPTH: usize = 64;

/// An array key. A `Str` holding a canonical decimal integer (`"5"`,
/// `"-3"`, not `"05"` or `"-0"`) is never stored: PHP turns such keys into
/// ints, and so do [`PhpKey::from`] and [`PhpArray::insert`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PhpKey {
    Int(i64),
    Str(String),
}

impl PhpKey {
    /// PHP's key cast.
    pub fn normalized(self) -> PhpKey {
        match self {
            PhpKey::Str(s) => match canonical_int(&s) {
                Some(i) => PhpKey::Int(i),
                None => PhpKey::Str(s),
            },
            k => k,
        }
    }

    /// The key as a map key string (ints in decimal).
    pub fn to_key_string(&self) -> String {
        match self {
            PhpKey::Int(i) => i.to_string(),
            PhpKey::Str(s) => s.clone(),
        }
    }
}

impl fmt::Debug for PhpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PhpKey::Int(i) => write!(f, "{i}"),
            PhpKey::Str(s) => write!(f, "{s:?}"),
        }
    }
}

impl From<i64> for PhpKey {
    fn from(i: i64) -> Self {
        PhpKey::Int(i)
    }
}
impl From<&str> for PhpKey {
    fn from(s: &str) -> Self {
        PhpKey::Str(s.to_string()).normalized()
    }
}
impl From<String> for PhpKey {
    fn from(s: String) -> Self {
        PhpKey::Str(s).normalized()
    }
}

/// `s` as PHP's integer key: `0` or `-?[1-9][0-9]*` within 64 bits.
fn canonical_int(s: &str) -> Option<i64> {
    let digits = s.strip_prefix('-').unwrap_or(s);
    let ok = match digits.as_bytes() {
        [b'0'] => !s.starts_with('-'),
        [b'1'..=b'9', rest @ ..] => rest.iter().all(u8::is_ascii_digit),
        _ => false,
    };
    if ok { s.parse().ok() } else { None }
}

/// A PHP value of the subset.
#[derive(Clone, PartialEq, Eq)]
pub enum PhpValue {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Array(PhpArray),
}

impl From<bool> for PhpValue {
    fn from(b: bool) -> Self {
        PhpValue::Bool(b)
    }
}
impl From<i64> for PhpValue {
    fn from(i: i64) -> Self {
        PhpValue::Int(i)
    }
}
impl From<&str> for PhpValue {
    fn from(s: &str) -> Self {
        PhpValue::Str(s.to_string())
    }
}
impl From<String> for PhpValue {
    fn from(s: String) -> Self {
        PhpValue::Str(s)
    }
}
impl From<PhpArray> for PhpValue {
    fn from(a: PhpArray) -> Self {
        PhpValue::Array(a)
    }
}

impl PhpValue {
    /// The value in the shared data model: an array with keys 0..n in order
    /// is a list, any other array a map with its int keys in decimal.
    pub fn to_value(&self) -> Value {
        match self {
            PhpValue::Null => Value::Null,
            PhpValue::Bool(b) => Value::Bool(*b),
            PhpValue::Int(i) => Value::Int(*i),
            PhpValue::Str(s) => Value::Str(s.clone()),
            PhpValue::Array(a) => a.to_value(),
        }
    }

    /// From the shared data model: lists get keys 0..n, map keys are cast
    /// as PHP casts them.
    pub fn from_value(value: &Value) -> PhpValue {
        match value {
            Value::Null => PhpValue::Null,
            Value::Bool(b) => PhpValue::Bool(*b),
            Value::Int(i) => PhpValue::Int(*i),
            Value::Str(s) => PhpValue::Str(s.clone()),
            Value::List(l) => PhpValue::Array(PhpArray::list(l.iter().map(PhpValue::from_value))),
            Value::Map(m) => PhpValue::Array(PhpArray::from_map(m)),
        }
    }
}

/// An ordered PHP array with unique, normalized keys.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct PhpArray {
    entries: Vec<(PhpKey, PhpValue)>,
}

impl PhpArray {
    pub fn new() -> Self {
        PhpArray::default()
    }

    /// A list: keys 0, 1, 2, …
    pub fn list(values: impl IntoIterator<Item = PhpValue>) -> Self {
        PhpArray {
            entries: (0..).map(PhpKey::Int).zip(values).collect(),
        }
    }

    pub fn from_map(map: &Map) -> Self {
        let mut a = PhpArray::new();
        for (k, v) in map.iter() {
            a.insert(k, PhpValue::from_value(v));
        }
        a
    }

    /// Sets a key the way `$a[$key] = $value` does: the key is normalized,
    /// an existing key keeps its position (the old value is returned).
    pub fn insert(
        &mut self,
        key: impl Into<PhpKey>,
        value: impl Into<PhpValue>,
    ) -> Option<PhpValue> {
        let key = key.into().normalized();
        let value = value.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some((_, v)) => Some(std::mem::replace(v, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    pub fn get(&self, key: impl Into<PhpKey>) -> Option<&PhpValue> {
        let key = key.into().normalized();
        self.entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&PhpKey, &PhpValue)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Keys are exactly 0, 1, 2, … in order.
    pub fn is_list(&self) -> bool {
        self.entries
            .iter()
            .enumerate()
            .all(|(i, (k, _))| *k == PhpKey::Int(i as i64))
    }

    pub fn to_value(&self) -> Value {
        if self.is_list() {
            Value::List(self.entries.iter().map(|(_, v)| v.to_value()).collect())
        } else {
            Value::Map(
                self.entries
                    .iter()
                    .map(|(k, v)| (k.to_key_string(), v.to_value()))
                    .collect(),
            )
        }
    }
}

/// `Debug` with strings under secret keys redacted.
struct DebugPhp<'a>(&'a PhpValue, bool);

impl fmt::Debug for DebugPhp<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            PhpValue::Null => f.write_str("Null"),
            PhpValue::Bool(b) => write!(f, "Bool({b})"),
            PhpValue::Int(i) => write!(f, "Int({i})"),
            PhpValue::Str(_) if self.1 => f.write_str("Str(<redacted>)"),
            PhpValue::Str(s) => write!(f, "Str({s:?})"),
            PhpValue::Array(a) => f
                .debug_tuple("Array")
                .field(&DebugArray(a, self.1))
                .finish(),
        }
    }
}

struct DebugArray<'a>(&'a PhpArray, bool);

impl fmt::Debug for DebugArray<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.0.entries.iter().map(|(k, v)| {
                let secret = self.1 || matches!(k, PhpKey::Str(s) if is_secret_key(s));
                (k, DebugPhp(v, secret))
            }))
            .finish()
    }
}

impl fmt::Debug for PhpValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DebugPhp(self, false).fmt(f)
    }
}

impl fmt::Debug for PhpArray {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        DebugArray(self, false).fmt(f)
    }
}

/// A PHP configuration file: `<?php`, header comments, `return ARRAY;`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PhpFile {
    pub header: Vec<CommentLine>,
    pub root: PhpArray,
}

impl PhpFile {
    pub fn new(root: PhpArray) -> Self {
        PhpFile {
            header: Vec::new(),
            root,
        }
    }

    /// What `var_export` prints for the returned array (the file without
    /// `<?php`, the header, `return ` and `;`).
    pub fn export(&self) -> String {
        let mut out = String::new();
        export_array(&mut out, &self.root, 0);
        out
    }

    /// Parses and also returns where each key path was found.
    pub(crate) fn parse_spanned(text: &str) -> Result<(PhpFile, Spans), ParseError> {
        Parser::parse_file(text)
    }
}

impl Format for PhpFile {
    fn emit(&self) -> String {
        let mut out = String::from("<?php\n");
        for line in &self.header {
            if line.as_str().is_empty() {
                out.push_str("//\n");
            } else {
                out.push_str("// ");
                out.push_str(line.as_str());
                out.push('\n');
            }
        }
        out.push_str("return ");
        export_array(&mut out, &self.root, 0);
        out.push_str(";\n");
        out
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        Parser::parse_file(text).map(|(file, _)| file)
    }
}

// ---------------------------------------------------------------------------
// var_export
// ---------------------------------------------------------------------------

fn export_str(out: &mut String, s: &str) {
    for (i, part) in s.split('\0').enumerate() {
        if i > 0 {
            out.push_str(" . \"\\0\" . ");
        }
        out.push('\'');
        for c in part.chars() {
            if c == '\\' || c == '\'' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('\'');
    }
}

fn export_key(out: &mut String, key: &PhpKey) {
    match key {
        // var_export writes the smallest key as this literal (a float that
        // PHP casts back to the int key exactly).
        PhpKey::Int(i) => out.push_str(&i.to_string()),
        PhpKey::Str(s) => export_str(out, s),
    }
}

fn export_array(out: &mut String, array: &PhpArray, indent: usize) {
    out.push_str("array (\n");
    for (key, value) in &array.entries {
        push_indent(out, indent + 2);
        export_key(out, key);
        out.push_str(" => ");
        match value {
            PhpValue::Null => out.push_str("NULL"),
            PhpValue::Bool(true) => out.push_str("true"),
            PhpValue::Bool(false) => out.push_str("false"),
            PhpValue::Int(i64::MIN) => out.push_str("-9223372036854775807-1"),
            PhpValue::Int(i) => out.push_str(&i.to_string()),
            PhpValue::Str(s) => export_str(out, s),
            PhpValue::Array(a) => {
                out.push('\n');
                push_indent(out, indent + 2);
                export_array(out, a, indent + 2);
            }
        }
        out.push_str(",\n");
    }
    push_indent(out, indent);
    out.push(')');
}

fn push_indent(out: &mut String, n: usize) {
    out.extend(std::iter::repeat_n(' ', n));
}

// ---------------------------------------------------------------------------
// Lexer
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    LBracket,
    RBracket,
    LParen,
    RParen,
    Comma,
    Arrow,
    Semi,
    Minus,
    Dot,
    Eq,
    /// Decimal digits, no sign.
    Int(String),
    Str(String),
    Ident(String),
    Close,
    Eof,
}

impl Tok {
    fn describe(&self) -> String {
        match self {
            Tok::LBracket => "`[`".into(),
            Tok::RBracket => "`]`".into(),
            Tok::LParen => "`(`".into(),
            Tok::RParen => "`)`".into(),
            Tok::Comma => "`,`".into(),
            Tok::Arrow => "`=>`".into(),
            Tok::Semi => "`;`".into(),
            Tok::Minus => "`-`".into(),
            Tok::Dot => "`.`".into(),
            Tok::Eq => "`=`".into(),
            Tok::Int(d) => format!("the integer {d}"),
            Tok::Str(_) => "a string".into(),
            Tok::Ident(i) => format!("`{i}`"),
            Tok::Close => "`?>`".into(),
            Tok::Eof => "the end of the file".into(),
        }
    }
}

struct Lexer<'a> {
    src: &'a str,
    pos: usize,
    line: usize,
    /// `//` and `#` comments seen so far: (line, text after the marker).
    comments: Vec<(usize, String)>,
}

fn is_ident_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_ident_char(c: char) -> bool {
    is_ident_start(c) || c.is_ascii_digit()
}

impl<'a> Lexer<'a> {
    fn peek_char(&self) -> Option<char> {
        self.src[self.pos..].chars().next()
    }

    fn peek_at(&self, offset: usize) -> Option<u8> {
        self.src.as_bytes().get(self.pos + offset).copied()
    }

    fn rest(&self) -> &'a str {
        &self.src[self.pos..]
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek_char()?;
        self.pos += c.len_utf8();
        if c == '\n' {
            self.line += 1;
        }
        Some(c)
    }

    fn err(&self, line: usize, message: impl Into<String>) -> ParseError {
        ParseError::new(line, message)
    }

    fn skip_trivia(&mut self) -> Result<(), ParseError> {
        loop {
            let rest = self.rest();
            if rest.starts_with([' ', '\t', '\n', '\r']) {
                self.bump();
            } else if rest.starts_with("//") || (rest.starts_with('#') && !rest.starts_with("#[")) {
                let line = self.line;
                self.pos += if rest.starts_with('#') { 1 } else { 2 };
                let start = self.pos;
                while let Some(c) = self.peek_char() {
                    if c == '\n' || self.rest().starts_with("?>") {
                        break;
                    }
                    self.bump();
                }
                let text = self.src[start..self.pos].trim_end_matches('\r');
                let text = text.strip_prefix(' ').unwrap_or(text);
                self.comments.push((line, text.to_string()));
            } else if rest.starts_with("/*") {
                let line = self.line;
                self.pos += 2;
                loop {
                    if self.rest().starts_with("*/") {
                        self.pos += 2;
                        break;
                    }
                    if self.bump().is_none() {
                        return Err(self.err(line, "unterminated `/*` comment"));
                    }
                }
            } else {
                return Ok(());
            }
        }
    }

    fn next(&mut self) -> Result<(Tok, usize), ParseError> {
        self.skip_trivia()?;
        let line = self.line;
        let Some(c) = self.peek_char() else {
            return Ok((Tok::Eof, line));
        };
        let rest = self.rest();
        let simple = |tok: Tok, len: usize, lx: &mut Self| {
            lx.pos += len;
            Ok((tok, line))
        };
        match c {
            '?' if rest.starts_with("?>") => simple(Tok::Close, 2, self),
            '[' => simple(Tok::LBracket, 1, self),
            ']' => simple(Tok::RBracket, 1, self),
            '(' => simple(Tok::LParen, 1, self),
            ')' => simple(Tok::RParen, 1, self),
            ',' => simple(Tok::Comma, 1, self),
            ';' => simple(Tok::Semi, 1, self),
            '=' if rest.starts_with("=>") => simple(Tok::Arrow, 2, self),
            '=' if rest.starts_with("==") => Err(self.err(line, "comparisons are not supported")),
            '=' => simple(Tok::Eq, 1, self),
            '-' if rest.starts_with("->") || rest.starts_with("--") || rest.starts_with("-=") => {
                Err(self.err(line, "unsupported operator after `-`"))
            }
            '-' => simple(Tok::Minus, 1, self),
            '.' if rest.starts_with("...") => {
                Err(self.err(line, "array unpacking (`...`) is not supported"))
            }
            '.' if self.peek_at(1).is_some_and(|b| b.is_ascii_digit()) => {
                Err(self.err(line, "floating-point numbers are not supported"))
            }
            '.' if rest.starts_with(".=") => Err(self.err(line, "assignments are not supported")),
            '.' => simple(Tok::Dot, 1, self),
            '0'..='9' => self.number(line),
            '\'' => self.single_quoted(line),
            '"' => self.double_quoted(line),
            '$' => Err(self.err(line, "variables are not supported")),
            '<' if rest.starts_with("<<<") => {
                Err(self.err(line, "heredoc and nowdoc strings are not supported"))
            }
            c if is_ident_start(c) => {
                let start = self.pos;
                while self.peek_char().is_some_and(is_ident_char) {
                    self.bump();
                }
                Ok((Tok::Ident(self.src[start..self.pos].to_string()), line))
            }
            c => Err(self.err(line, format!("unexpected character {c:?}"))),
        }
    }

    fn number(&mut self, line: usize) -> Result<(Tok, usize), ParseError> {
        let start = self.pos;
        while self.peek_char().is_some_and(|c| c.is_ascii_digit()) {
            self.bump();
        }
        let digits = &self.src[start..self.pos];
        match self.peek_char() {
            Some('.') => {
                return Err(self.err(line, "floating-point numbers are not supported"));
            }
            Some(c) if c.is_ascii_alphanumeric() || c == '_' => {
                return Err(self.err(
                    line,
                    "only decimal integer literals are supported (no hex, octal, binary, exponent or `_`)",
                ));
            }
            _ => {}
        }
        if digits.len() > 1 && digits.starts_with('0') {
            return Err(self.err(
                line,
                format!("`{digits}` is an octal literal in PHP; write it in decimal"),
            ));
        }
        Ok((Tok::Int(digits.to_string()), line))
    }

    fn single_quoted(&mut self, line: usize) -> Result<(Tok, usize), ParseError> {
        self.bump();
        let mut s = String::new();
        loop {
            match self.bump() {
                None => return Err(self.err(line, "unterminated string")),
                Some('\'') => return Ok((Tok::Str(s), line)),
                Some('\\') => match self.peek_char() {
                    Some(c @ ('\\' | '\'')) => {
                        self.bump();
                        s.push(c);
                    }
                    _ => s.push('\\'),
                },
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quoted(&mut self, line: usize) -> Result<(Tok, usize), ParseError> {
        self.bump();
        let mut bytes: Vec<u8> = Vec::new();
        let mut buf = [0u8; 4];
        loop {
            let Some(c) = self.bump() else {
                return Err(self.err(line, "unterminated string"));
            };
            match c {
                '"' => break,
                '$' if self
                    .peek_char()
                    .is_some_and(|n| is_ident_start(n) || n == '{') =>
                {
                    return Err(self.err(
                        self.line,
                        "variable interpolation in strings is not supported",
                    ));
                }
                '{' if self.peek_char() == Some('$') => {
                    return Err(self.err(
                        self.line,
                        "variable interpolation in strings is not supported",
                    ));
                }
                '\\' => {
                    let Some(e) = self.peek_char() else { continue };
                    let simple = match e {
                        'n' => Some(b'\n'),
                        't' => Some(b'\t'),
                        'r' => Some(b'\r'),
                        'v' => Some(0x0b),
                        'e' => Some(0x1b),
                        'f' => Some(0x0c),
                        '\\' => Some(b'\\'),
                        '$' => Some(b'$'),
                        '"' => Some(b'"'),
                        _ => None,
                    };
                    if let Some(b) = simple {
                        self.bump();
                        bytes.push(b);
                    } else if e.is_digit(8) {
                        let mut v: u32 = 0;
                        for _ in 0..3 {
                            match self.peek_char().and_then(|d| d.to_digit(8)) {
                                Some(d) => {
                                    v = v * 8 + d;
                                    self.bump();
                                }
                                None => break,
                            }
                        }
                        let Ok(b) = u8::try_from(v) else {
                            return Err(self.err(self.line, "octal escape greater than \\377"));
                        };
                        bytes.push(b);
                    } else if e == 'x' && self.peek_at(1).is_some_and(|b| b.is_ascii_hexdigit()) {
                        self.bump();
                        let mut v: u32 = 0;
                        for _ in 0..2 {
                            match self.peek_char().and_then(|d| d.to_digit(16)) {
                                Some(d) => {
                                    v = v * 16 + d;
                                    self.bump();
                                }
                                None => break,
                            }
                        }
                        bytes.push(v as u8);
                    } else if e == 'u' && self.peek_at(1) == Some(b'{') {
                        self.bump();
                        self.bump();
                        let start = self.pos;
                        while self.peek_char().is_some_and(|d| d.is_ascii_hexdigit()) {
                            self.bump();
                        }
                        let hex = &self.src[start..self.pos];
                        if self.peek_char() != Some('}') || hex.is_empty() {
                            return Err(self.err(self.line, "invalid \\u{...} escape"));
                        }
                        self.bump();
                        let ch = u32::from_str_radix(hex, 16).ok().and_then(char::from_u32);
                        let Some(ch) = ch else {
                            return Err(
                                self.err(self.line, "\\u{...} escape is not a Unicode code point")
                            );
                        };
                        bytes.extend_from_slice(ch.encode_utf8(&mut buf).as_bytes());
                    } else {
                        // Unknown escapes stay as written.
                        bytes.push(b'\\');
                    }
                }
                c => bytes.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
            }
        }
        match String::from_utf8(bytes) {
            Ok(s) => Ok((Tok::Str(s), line)),
            Err(_) => Err(self.err(line, "string escapes produce bytes that are not UTF-8")),
        }
    }
}

// ---------------------------------------------------------------------------
// Parser
// ---------------------------------------------------------------------------

/// An expression of the subset. `MinFloat` is the literal
/// `-9223372036854775808`: a float in PHP, usable only as a key (where PHP
/// casts it to the smallest int exactly; `var_export` writes that key so).
enum Expr {
    Val(PhpValue),
    MinFloat,
}

struct Parser<'a> {
    lex: Lexer<'a>,
    peeked: Option<(Tok, usize)>,
    spans: Spans,
    path: Vec<String>,
}

impl<'a> Parser<'a> {
    fn parse_file(text: &'a str) -> Result<(PhpFile, Spans), ParseError> {
        let open = text
            .get(..5)
            .is_some_and(|s| s.eq_ignore_ascii_case("<?php"));
        if !open {
            return Err(ParseError::new(
                1,
                "a PHP configuration file starts with `<?php` (text before it is printed by PHP)",
            ));
        }
        if !matches!(
            text.as_bytes().get(5),
            None | Some(b' ' | b'\t' | b'\n' | b'\r')
        ) {
            return Err(ParseError::new(
                1,
                "`<?php` must be followed by white space",
            ));
        }
        let mut p = Parser {
            lex: Lexer {
                src: text,
                pos: 5,
                line: 1,
                comments: Vec::new(),
            },
            peeked: None,
            spans: Spans::default(),
            path: Vec::new(),
        };
        let (mut tok, mut line) = p.next()?;
        if matches!(&tok, Tok::Ident(i) if i.eq_ignore_ascii_case("declare")) {
            p.declare()?;
            (tok, line) = p.next()?;
        }
        if !matches!(&tok, Tok::Ident(i) if i.eq_ignore_ascii_case("return")) {
            return Err(ParseError::new(
                line,
                format!("expected `return`, found {}", tok.describe()),
            ));
        }
        let mut header = Vec::new();
        for (line, text) in std::mem::take(&mut p.lex.comments) {
            header.push(CommentLine::new(text).map_err(|e| ParseError::new(line, e.0))?);
        }
        let (root, root_line) = p.expr(0)?;
        let root = match root {
            Expr::Val(PhpValue::Array(a)) => a,
            _ => return Err(ParseError::new(root_line, "the file must return an array")),
        };
        p.expect(Tok::Semi, "`;` after the returned array")?;
        let (tok, line) = p.next()?;
        match tok {
            Tok::Eof => {}
            Tok::Close => {
                let after = p.lex.rest();
                if !(after.is_empty() || after == "\n" || after == "\r\n") {
                    return Err(ParseError::new(
                        line,
                        "text after `?>` is printed by PHP; end the file at `?>`",
                    ));
                }
            }
            tok => {
                return Err(ParseError::new(
                    line,
                    format!("unexpected {} after the return statement", tok.describe()),
                ));
            }
        }
        Ok((PhpFile { header, root }, p.spans))
    }

    fn declare(&mut self) -> Result<(), ParseError> {
        self.expect(Tok::LParen, "`(` after `declare`")?;
        let (tok, line) = self.next()?;
        if !matches!(&tok, Tok::Ident(i) if i.eq_ignore_ascii_case("strict_types")) {
            return Err(ParseError::new(
                line,
                "only `declare(strict_types=1);` is supported",
            ));
        }
        self.expect(Tok::Eq, "`=`")?;
        let (tok, line) = self.next()?;
        if !matches!(&tok, Tok::Int(d) if d == "0" || d == "1") {
            return Err(ParseError::new(line, "strict_types must be 0 or 1"));
        }
        self.expect(Tok::RParen, "`)`")?;
        self.expect(Tok::Semi, "`;`")
    }

    fn next(&mut self) -> Result<(Tok, usize), ParseError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.lex.next(),
        }
    }

    fn peek(&mut self) -> Result<&Tok, ParseError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.lex.next()?);
        }
        Ok(self.peeked.as_ref().map(|(t, _)| t).unwrap_or(&Tok::Eof))
    }

    fn expect(&mut self, want: Tok, what: &str) -> Result<(), ParseError> {
        let (tok, line) = self.next()?;
        if tok == want {
            Ok(())
        } else {
            Err(ParseError::new(
                line,
                format!("expected {what}, found {}", tok.describe()),
            ))
        }
    }

    fn expr(&mut self, depth: usize) -> Result<(Expr, usize), ParseError> {
        let (tok, line) = self.next()?;
        let value = match tok {
            Tok::Minus => {
                let (tok, line) = self.next()?;
                let Tok::Int(digits) = tok else {
                    return Err(ParseError::new(
                        line,
                        format!("expected a number after `-`, found {}", tok.describe()),
                    ));
                };
                match digits.parse::<u64>() {
                    Ok(9_223_372_036_854_775_807) if *self.peek()? == Tok::Minus => {
                        self.next()?;
                        let (tok, line) = self.next()?;
                        if !matches!(&tok, Tok::Int(d) if d == "1") {
                            return Err(ParseError::new(line, "arithmetic is not supported"));
                        }
                        Expr::Val(PhpValue::Int(i64::MIN))
                    }
                    Ok(9_223_372_036_854_775_808) => Expr::MinFloat,
                    Ok(d) if d <= i64::MAX as u64 => Expr::Val(PhpValue::Int(-(d as i64))),
                    _ => return Err(int_range(line, &format!("-{digits}"))),
                }
            }
            Tok::Int(digits) => match digits.parse::<i64>() {
                Ok(i) => Expr::Val(PhpValue::Int(i)),
                Err(_) => return Err(int_range(line, &digits)),
            },
            Tok::Str(mut s) => {
                while *self.peek()? == Tok::Dot {
                    self.next()?;
                    match self.next()? {
                        (Tok::Str(more), _) => s.push_str(&more),
                        (tok, line) => {
                            return Err(ParseError::new(
                                line,
                                format!(
                                    "only string literals can be joined with `.`, found {}",
                                    tok.describe()
                                ),
                            ));
                        }
                    }
                }
                Expr::Val(PhpValue::Str(s))
            }
            Tok::Ident(id) if id.eq_ignore_ascii_case("true") => Expr::Val(PhpValue::Bool(true)),
            Tok::Ident(id) if id.eq_ignore_ascii_case("false") => Expr::Val(PhpValue::Bool(false)),
            Tok::Ident(id) if id.eq_ignore_ascii_case("null") => Expr::Val(PhpValue::Null),
            Tok::Ident(id) if id.eq_ignore_ascii_case("array") => {
                self.expect(Tok::LParen, "`(` after `array`")?;
                Expr::Val(PhpValue::Array(self.elements(
                    Tok::RParen,
                    line,
                    depth + 1,
                )?))
            }
            Tok::LBracket => Expr::Val(PhpValue::Array(self.elements(
                Tok::RBracket,
                line,
                depth + 1,
            )?)),
            Tok::Ident(id) => {
                return Err(ParseError::new(
                    line,
                    format!("constants and function calls are not supported (`{id}`)"),
                ));
            }
            tok => {
                return Err(ParseError::new(
                    line,
                    format!("expected a value, found {}", tok.describe()),
                ));
            }
        };
        Ok((value, line))
    }

    fn elements(
        &mut self,
        close: Tok,
        open_line: usize,
        depth: usize,
    ) -> Result<PhpArray, ParseError> {
        if depth > MAX_DEPTH {
            return Err(ParseError::new(
                open_line,
                format!("arrays nested deeper than {MAX_DEPTH} levels"),
            ));
        }
        let mut array = PhpArray::new();
        let mut max_int: Option<i64> = None;
        loop {
            if *self.peek()? == close {
                self.next()?;
                return Ok(array);
            }
            let implicit = match max_int {
                None => Ok(0),
                Some(m) if m < 0 => Err(
                    "an element without a key after only negative integer keys gets a different key in different PHP versions; write the key",
                ),
                Some(i64::MAX) => Err(
                    "an element without a key after the key 9223372036854775807: PHP fails with \"the next element is already occupied\"",
                ),
                Some(m) => Ok(m + 1),
            };
            self.path
                .push(implicit.map(|i| i.to_string()).unwrap_or_default());
            let first = self.expr(depth);
            self.path.pop();
            let (first, first_line) = first?;
            let (key, value) = if *self.peek()? == Tok::Arrow {
                self.next()?;
                let key = match first {
                    Expr::Val(PhpValue::Int(i)) => PhpKey::Int(i),
                    Expr::MinFloat => PhpKey::Int(i64::MIN),
                    Expr::Val(PhpValue::Str(s)) => PhpKey::Str(s).normalized(),
                    Expr::Val(_) => {
                        return Err(ParseError::new(
                            first_line,
                            "array keys must be integers or strings",
                        ));
                    }
                };
                self.path.push(key.to_key_string());
                let value = self.expr(depth);
                self.path.pop();
                let (value, line) = value?;
                (key, value_only(value, line)?)
            } else {
                let key = match implicit {
                    Ok(i) => PhpKey::Int(i),
                    Err(message) => return Err(ParseError::new(first_line, message)),
                };
                (key, value_only(first, first_line)?)
            };
            if array.get(key.clone()).is_some() {
                return Err(ParseError::new(
                    first_line,
                    format!(
                        "duplicate key {} (PHP keeps only the last value)",
                        DisplayKey(&key)
                    ),
                ));
            }
            if let PhpKey::Int(i) = key {
                max_int = Some(max_int.map_or(i, |m| m.max(i)));
            }
            self.path.push(key.to_key_string());
            self.spans.record(&self.path, first_line);
            self.path.pop();
            array.entries.push((key, value));
            let (tok, line) = self.next()?;
            if tok == close {
                return Ok(array);
            }
            if tok != Tok::Comma {
                let want = if close == Tok::RParen { "`)`" } else { "`]`" };
                return Err(ParseError::new(
                    line,
                    format!("expected `,` or {want}, found {}", tok.describe()),
                ));
            }
        }
    }
}

fn value_only(expr: Expr, line: usize) -> Result<PhpValue, ParseError> {
    match expr {
        Expr::Val(v) => Ok(v),
        Expr::MinFloat => Err(ParseError::new(
            line,
            "-9223372036854775808 is a float in PHP; write the smallest integer as -9223372036854775807-1",
        )),
    }
}

fn int_range(line: usize, digits: &str) -> ParseError {
    ParseError::new(
        line,
        format!("{digits} is outside the 64-bit integer range (PHP reads it as a float)"),
    )
}

struct DisplayKey<'a>(&'a PhpKey);

impl fmt::Display for DisplayKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            PhpKey::Int(i) => write!(f, "{i}"),
            PhpKey::Str(s) => write!(f, "'{s}'"),
        }
    }
}

//! POSIX shell scripts as a small, strict representation: a shebang, a
//! comment header and one simple statement per line. Enough for reference
//! 004's bond scripts
//!
//! ```text
//! #!/bin/sh
//! BONDING_INTERFACE=bond0
//! sleep 10
//! /usr/sbin/ifconfig "$dev" down
//! echo "+$dev" > "/sys/class/net/$BONDING_INTERFACE/bonding/slaves"
//! /usr/sbin/ifconfig "$dev" up
//! ```
//!
//! and for the NethServer leader promotion procedures of reference 002
//! (`switch-leader --node 3 --endpoint node3.example.com:55820`,
//! `wg-quick save wg0`, `systemctl reload wg-quick@wg0`). The simulator
//! reads scripts back and runs them through [`Script::steps`] to learn
//! their delays ([`Script::total_sleep`]) and actions.
//!
//! The subset [`Script::parse`] accepts: line 1 `#!interpreter`; then per
//! line a blank, a `#` comment, `NAME=word`, or a command `word word ...`
//! with redirections `>`, `>>`, `<` (optionally with a file descriptor
//! digit: `2>`). Words are made of bare characters, `'single quoted'`
//! text, `"double quoted"` text with `$NAME`/`${NAME}` and the backslash
//! escapes `\$ \` \" \\`, and backslash-escaped bare characters.
//!
//! It rejects, with the line: a missing shebang; unquoted `$` (so no word
//! splitting ever happens), command substitution, `${...}` modifiers and
//! special parameters; `| & ; ( )` and so pipelines, lists, subshells and
//! background jobs; reserved words in command position (`if`, `for`, `{`,
//! ... : compound commands); unquoted glob characters `* ? [` and `~`;
//! comments after a command; `NAME=value command`; fd duplication (`2>&1`)
//! and here-documents; unterminated quotes; line continuations; control
//! characters. Words are written back bare when that is safe, else single-
//! or double-quoted, so `sh -n` accepts every emitted script.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use crate::format::{Format, ParseError};
pub use crate::wgquick::{Comment, InvalidValue};

/// A shell variable name: `[A-Za-z_][A-Za-z0-9_]*`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Name(String);

impl Name {
    pub fn new(name: impl Into<String>) -> Result<Name, InvalidValue> {
        let name = name.into();
        if is_name(&name) {
            Ok(Name(name))
        } else {
            Err(InvalidValue::new(
                "variable name",
                &name,
                "must match [A-Za-z_][A-Za-z0-9_]*",
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_name(s: &str) -> bool {
    let mut bytes = s.bytes();
    matches!(bytes.next(), Some(b) if b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// A piece of a [`Word`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Part {
    /// Text taken literally (no control characters).
    Literal(String),
    /// A variable's value, never split into fields (always double-quoted).
    Var(Name),
}

/// One shell word: literal text and variable references, normalized
/// (adjacent literals merged, no empty literal), so equal words are equal
/// values.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Word(Vec<Part>);

impl Word {
    /// Literal text.
    pub fn literal(text: &str) -> Result<Word, InvalidValue> {
        Word::from_parts(vec![Part::Literal(text.to_owned())])
    }

    /// A variable reference, like `"$dev"`.
    pub fn var(name: Name) -> Word {
        Word(vec![Part::Var(name)])
    }

    /// Text with `$NAME` and `${NAME}` references (`"+$dev"`); a `$` not
    /// followed by a name is literal.
    pub fn template(text: &str) -> Result<Word, InvalidValue> {
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut rest = text;
        while let Some(at) = rest.find('$') {
            literal.push_str(&rest[..at]);
            let after = &rest[at + 1..];
            let (name, skip) = if let Some(inner) = after.strip_prefix('{') {
                match inner.find('}') {
                    Some(end) if is_name(&inner[..end]) => (Some(&inner[..end]), end + 2),
                    _ => (None, 0),
                }
            } else {
                let end = after
                    .find(|c: char| !is_name_char(c))
                    .unwrap_or(after.len());
                if is_name(&after[..end]) {
                    (Some(&after[..end]), end)
                } else {
                    (None, 0)
                }
            };
            match name {
                Some(name) => {
                    parts.push(Part::Literal(std::mem::take(&mut literal)));
                    parts.push(Part::Var(Name(name.to_owned())));
                    rest = &after[skip..];
                }
                None => {
                    literal.push('$');
                    rest = after;
                }
            }
        }
        literal.push_str(rest);
        parts.push(Part::Literal(literal));
        Word::from_parts(parts)
    }

    /// Builds a word from parts, merging adjacent literals and dropping
    /// empty ones; fails on control characters in literals.
    pub fn from_parts(parts: Vec<Part>) -> Result<Word, InvalidValue> {
        let mut out: Vec<Part> = Vec::with_capacity(parts.len());
        for part in parts {
            match part {
                Part::Literal(text) => {
                    if text.chars().any(char::is_control) {
                        return Err(InvalidValue::new(
                            "shell word",
                            &text,
                            "contains a control character",
                        ));
                    }
                    if text.is_empty() {
                        continue;
                    }
                    if let Some(Part::Literal(last)) = out.last_mut() {
                        last.push_str(&text);
                    } else {
                        out.push(Part::Literal(text));
                    }
                }
                var => out.push(var),
            }
        }
        Ok(Word(out))
    }

    pub fn parts(&self) -> &[Part] {
        &self.0
    }

    /// The text, when the word holds no variable.
    pub fn as_literal(&self) -> Option<&str> {
        match self.0.as_slice() {
            [] => Some(""),
            [Part::Literal(text)] => Some(text),
            _ => None,
        }
    }

    /// The word's value with variables looked up (unset ones are empty).
    pub fn expand(&self, lookup: &dyn Fn(&str) -> Option<String>) -> String {
        self.0
            .iter()
            .map(|p| match p {
                Part::Literal(text) => text.clone(),
                Part::Var(name) => lookup(name.as_str()).unwrap_or_default(),
            })
            .collect()
    }

    /// The word as shell source. `command_position`: also quote what would
    /// read as an assignment or a reserved word.
    fn to_source(&self, command_position: bool) -> String {
        if let Some(text) = self.as_literal() {
            if text.is_empty() {
                return "''".to_owned();
            }
            let bare = text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
            if bare && !(command_position && (text.contains('=') || RESERVED.contains(&text))) {
                return text.to_owned();
            }
            if !text.contains('\'') {
                return format!("'{text}'");
            }
        }
        let mut out = String::from("\"");
        for (i, part) in self.0.iter().enumerate() {
            match part {
                Part::Literal(text) => {
                    for c in text.chars() {
                        if matches!(c, '$' | '`' | '"' | '\\') {
                            out.push('\\');
                        }
                        out.push(c);
                    }
                }
                Part::Var(name) => {
                    let next_is_name_char = matches!(self.0.get(i + 1), Some(Part::Literal(t)) if t.starts_with(is_name_char));
                    if next_is_name_char {
                        out.push_str(&format!("${{{name}}}"));
                    } else {
                        out.push_str(&format!("${name}"));
                    }
                }
            }
        }
        out.push('"');
        out
    }
}

/// Words the shell reads as the start of a compound command.
const RESERVED: [&str; 16] = [
    "if", "then", "else", "elif", "fi", "do", "done", "case", "esac", "while", "until", "for",
    "in", "{", "}", "!",
];

/// A redirection operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RedirectOp {
    /// `>`: truncate and write (default fd 1).
    Write,
    /// `>>`: append (default fd 1).
    Append,
    /// `<`: read (default fd 0).
    Read,
}

impl RedirectOp {
    fn symbol(self) -> &'static str {
        match self {
            RedirectOp::Write => ">",
            RedirectOp::Append => ">>",
            RedirectOp::Read => "<",
        }
    }
}

/// `[fd]> target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redirect {
    /// An explicit file descriptor, 0 to 9.
    pub fd: Option<u8>,
    pub op: RedirectOp,
    pub target: Word,
}

impl Redirect {
    /// The file descriptor the redirection applies to.
    pub fn effective_fd(&self) -> u8 {
        self.fd
            .unwrap_or(if self.op == RedirectOp::Read { 0 } else { 1 })
    }
}

/// A simple command: program, arguments, redirections.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    pub program: Word,
    pub args: Vec<Word>,
    pub redirects: Vec<Redirect>,
}

impl Command {
    /// A command of literal words, e.g. `["wg-quick", "save", "wg0"]`.
    pub fn literal(argv: &[&str]) -> Result<Command, InvalidValue> {
        let Some((program, args)) = argv.split_first() else {
            return Err(InvalidValue::new("command", "", "needs a program"));
        };
        Ok(Command {
            program: Word::literal(program)?,
            args: args
                .iter()
                .map(|a| Word::literal(a))
                .collect::<Result<_, _>>()?,
            redirects: Vec::new(),
        })
    }

    /// The seconds a literal `sleep` waits (`10`, `0.5`, `2m`, several
    /// arguments add up), or `None` for anything else.
    pub fn sleep_duration(&self) -> Option<Duration> {
        if self.program.as_literal() != Some("sleep") || self.args.is_empty() {
            return None;
        }
        self.args.iter().try_fold(Duration::ZERO, |total, arg| {
            Some(total.saturating_add(parse_sleep(arg.as_literal()?)?))
        })
    }
}

/// `10`, `1.5`, `2m`, `1h`, `1d` as GNU sleep reads them.
fn parse_sleep(text: &str) -> Option<Duration> {
    let (number, unit) = match text.strip_suffix(['s', 'm', 'h', 'd']) {
        Some(n) => (n, text.as_bytes()[text.len() - 1]),
        None => (text, b's'),
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() && fraction.is_empty() {
        return None;
    }
    if !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
        || whole.len() > 12
    {
        return None;
    }
    let secs: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let mut nanos: u64 = 0;
    for (i, digit) in fraction.bytes().take(9).enumerate() {
        nanos += u64::from(digit - b'0') * 10u64.pow(8 - i as u32);
    }
    let base = Duration::new(secs, 0).saturating_add(Duration::from_nanos(nanos));
    let factor: u32 = match unit {
        b'm' => 60,
        b'h' => 3600,
        b'd' => 86400,
        _ => 1,
    };
    base.checked_mul(factor)
}

/// One line of a script body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    Blank,
    Comment(Comment),
    /// `NAME=value`
    Assign {
        name: Name,
        value: Word,
    },
    Command(Command),
}

impl Statement {
    /// A command of literal words.
    pub fn command(argv: &[&str]) -> Result<Statement, InvalidValue> {
        Command::literal(argv).map(Statement::Command)
    }

    /// `sleep SECONDS`.
    pub fn sleep(seconds: u64) -> Statement {
        Statement::Command(Command {
            program: Word(vec![Part::Literal("sleep".to_owned())]),
            args: vec![Word(vec![Part::Literal(seconds.to_string())])],
            redirects: Vec::new(),
        })
    }

    pub fn comment(text: &str) -> Result<Statement, InvalidValue> {
        Comment::new(text).map(Statement::Comment)
    }
}

/// The program line: `#!/bin/sh`. An absolute path, optionally followed by
/// an argument (`/bin/sh -e`, `/usr/bin/env sh`); no control characters,
/// no surrounding whitespace.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Interpreter(String);

impl Interpreter {
    pub fn new(line: impl Into<String>) -> Result<Interpreter, InvalidValue> {
        let line = line.into();
        if !line.starts_with('/') {
            return Err(InvalidValue::new(
                "interpreter",
                &line,
                "must start with an absolute path",
            ));
        }
        if line.chars().any(char::is_control) || line.trim() != line {
            return Err(InvalidValue::new(
                "interpreter",
                &line,
                "has control characters or surrounding whitespace",
            ));
        }
        Ok(Interpreter(line))
    }

    /// `/bin/sh`.
    pub fn sh() -> Interpreter {
        Interpreter("/bin/sh".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A whole script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Script {
    pub interpreter: Interpreter,
    /// Comment lines right below the shebang (what the script is for,
    /// "Generated by vpnsim ...").
    pub header: Vec<Comment>,
    pub body: Vec<Statement>,
}

/// What running a statement does, with variables expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A literal `sleep`.
    Sleep(Duration),
    /// Any other command.
    Run(Invocation),
}

/// A command after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    pub argv: Vec<String>,
    /// `(fd, op, target)` for each redirection, in order.
    pub redirects: Vec<(u8, RedirectOp, String)>,
}

impl Invocation {
    /// For `echo ARGS > FILE` (or `>>`): the file, the bytes echo writes
    /// there (arguments joined by spaces, then a newline) and whether it
    /// appends. This is how a bond script enslaves an interface.
    pub fn echo_to_file(&self) -> Option<(&str, String, bool)> {
        if self.argv.first().map(String::as_str) != Some("echo") {
            return None;
        }
        let (_, op, target) = self
            .redirects
            .iter()
            .rev()
            .find(|(fd, op, _)| *fd == 1 && *op != RedirectOp::Read)?;
        Some((
            target,
            format!("{}\n", self.argv[1..].join(" ")),
            *op == RedirectOp::Append,
        ))
    }
}

impl Script {
    /// An empty `#!/bin/sh` script.
    pub fn sh() -> Script {
        Script {
            interpreter: Interpreter::sh(),
            header: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The commands, in order.
    pub fn commands(&self) -> impl Iterator<Item = &Command> {
        self.body.iter().filter_map(|s| match s {
            Statement::Command(c) => Some(c),
            _ => None,
        })
    }

    /// The time the script spends in literal `sleep`s.
    pub fn total_sleep(&self) -> Duration {
        self.commands()
            .filter_map(Command::sleep_duration)
            .fold(Duration::ZERO, Duration::saturating_add)
    }

    /// Runs the script symbolically: assignments update the variables
    /// (starting from `env`, e.g. OpenVPN's `dev`), each command becomes a
    /// [`Step`] with its words expanded.
    pub fn steps(&self, env: &BTreeMap<String, String>) -> Vec<Step> {
        let mut vars = env.clone();
        let mut steps = Vec::new();
        for statement in &self.body {
            match statement {
                Statement::Assign { name, value } => {
                    let v = value.expand(&|n| vars.get(n).cloned());
                    vars.insert(name.0.clone(), v);
                }
                Statement::Command(command) => {
                    if let Some(d) = command.sleep_duration() {
                        steps.push(Step::Sleep(d));
                        continue;
                    }
                    let lookup = |n: &str| vars.get(n).cloned();
                    let argv = std::iter::once(&command.program)
                        .chain(&command.args)
                        .map(|w| w.expand(&lookup))
                        .collect();
                    let redirects = command
                        .redirects
                        .iter()
                        .map(|r| (r.effective_fd(), r.op, r.target.expand(&lookup)))
                        .collect();
                    steps.push(Step::Run(Invocation { argv, redirects }));
                }
                Statement::Blank | Statement::Comment(_) => {}
            }
        }
        steps
    }
}

impl Format for Script {
    fn emit(&self) -> String {
        let mut out = format!("#!{}\n", self.interpreter.0);
        for c in &self.header {
            out.push_str(&c.to_line('#'));
            out.push('\n');
        }
        if !self.body.is_empty() {
            out.push('\n');
        }
        for statement in &self.body {
            match statement {
                Statement::Blank => {}
                Statement::Comment(c) => out.push_str(&c.to_line('#')),
                Statement::Assign { name, value } => {
                    out.push_str(&format!("{name}={}", value.to_source(false)));
                }
                Statement::Command(c) => {
                    out.push_str(&c.program.to_source(true));
                    for arg in &c.args {
                        out.push(' ');
                        out.push_str(&arg.to_source(false));
                    }
                    for r in &c.redirects {
                        out.push(' ');
                        if let Some(fd) = r.fd {
                            out.push_str(&fd.to_string());
                        }
                        out.push_str(r.op.symbol());
                        out.push(' ');
                        out.push_str(&r.target.to_source(false));
                    }
                }
            }
            out.push('\n');
        }
        out
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let mut lines = text.split('\n').enumerate().peekable();
        let first = lines.next().map(|(_, l)| l).unwrap_or_default();
        check_controls(first, 1)?;
        let shebang = first
            .strip_prefix("#!")
            .ok_or_else(|| ParseError::new(1, "line 1 must be the shebang, e.g. #!/bin/sh"))?;
        let interpreter =
            Interpreter::new(shebang.trim()).map_err(|e| ParseError::new(1, e.to_string()))?;
        let mut script = Script {
            interpreter,
            header: Vec::new(),
            body: Vec::new(),
        };
        // The header: comment lines right below the shebang.
        while let Some((_, line)) = lines.peek() {
            match line.trim_start().strip_prefix('#') {
                Some(rest) => {
                    script.header.push(Comment::from_line_lossy(rest));
                    lines.next();
                }
                None => break,
            }
        }
        // One blank line separates header and body.
        if lines.peek().is_some_and(|(_, l)| l.trim().is_empty()) {
            lines.next();
        }
        let mut body: Vec<(usize, &str)> = lines.map(|(i, l)| (i + 1, l)).collect();
        // A final newline is the end of the last line, not a blank line.
        if body.last().is_some_and(|(_, l)| l.is_empty()) {
            body.pop();
        }
        for (n, line) in body {
            check_controls(line, n)?;
            let trimmed = line.trim_matches([' ', '\t']);
            let statement = if trimmed.is_empty() {
                Statement::Blank
            } else if let Some(rest) = trimmed.strip_prefix('#') {
                Statement::Comment(Comment::from_line_lossy(rest))
            } else {
                parse_statement(trimmed).map_err(|message| ParseError::new(n, message))?
            };
            script.body.push(statement);
        }
        Ok(script)
    }
}

fn check_controls(line: &str, n: usize) -> Result<(), ParseError> {
    match line.chars().find(|&c| c.is_control() && c != '\t') {
        Some(c) => Err(ParseError::new(
            n,
            format!("control character {c:?} in line"),
        )),
        None => Ok(()),
    }
}

// ---------------------------------------------------------------------------
// Statement parsing
// ---------------------------------------------------------------------------

enum Token {
    Word {
        word: Word,
        quoted: bool,
        raw: String,
    },
    Assign {
        name: Name,
        value: Word,
    },
    Redirect {
        fd: Option<u8>,
        op: RedirectOp,
    },
}

struct WordBuilder {
    parts: Vec<Part>,
    literal: String,
    quoted: bool,
    raw: String,
    active: bool,
}

impl WordBuilder {
    fn new() -> Self {
        WordBuilder {
            parts: Vec::new(),
            literal: String::new(),
            quoted: false,
            raw: String::new(),
            active: false,
        }
    }

    fn push_char(&mut self, c: char) {
        self.active = true;
        self.literal.push(c);
    }

    fn push_var(&mut self, name: String) {
        self.active = true;
        self.parts
            .push(Part::Literal(std::mem::take(&mut self.literal)));
        self.parts.push(Part::Var(Name(name)));
    }

    fn finish(&mut self) -> Result<Word, String> {
        self.parts
            .push(Part::Literal(std::mem::take(&mut self.literal)));
        let word = Word::from_parts(std::mem::take(&mut self.parts)).map_err(|e| e.to_string())?;
        self.active = false;
        self.quoted = false;
        self.raw.clear();
        Ok(word)
    }
}

fn read_name(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> String {
    let mut name = String::new();
    while let Some(&c) = chars.peek() {
        if !is_name_char(c) {
            break;
        }
        name.push(c);
        chars.next();
    }
    name
}

fn tokenize(line: &str) -> Result<Vec<Token>, String> {
    let mut tokens: Vec<Token> = Vec::new();
    let mut w = WordBuilder::new();
    // In the first word: the assignment's name once an unquoted `=` follows
    // a valid name.
    let mut assign: Option<Name> = None;
    let mut chars = line.chars().peekable();
    let end_word = |w: &mut WordBuilder,
                    tokens: &mut Vec<Token>,
                    assign: &mut Option<Name>|
     -> Result<(), String> {
        if let Some(name) = assign.take() {
            let value = w.finish()?;
            tokens.push(Token::Assign { name, value });
        } else if w.active {
            let (quoted, raw) = (w.quoted, w.raw.clone());
            let word = w.finish()?;
            tokens.push(Token::Word { word, quoted, raw });
        }
        Ok(())
    };
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => end_word(&mut w, &mut tokens, &mut assign)?,
            '\'' => {
                w.active = true;
                w.quoted = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => w.literal.push(c),
                        None => return Err("unterminated single quote".to_owned()),
                    }
                }
            }
            '"' => {
                w.active = true;
                w.quoted = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('$' | '`' | '"' | '\\')) => w.literal.push(c),
                            Some(c) => {
                                w.literal.push('\\');
                                w.literal.push(c);
                            }
                            None => return Err("unterminated double quote".to_owned()),
                        },
                        Some('$') => {
                            if chars.peek() == Some(&'{') {
                                chars.next();
                                let name = read_name(&mut chars);
                                if chars.next() != Some('}') || !is_name(&name) {
                                    return Err(
                                        "only ${NAME} is supported, without modifiers".to_owned()
                                    );
                                }
                                w.push_var(name);
                            } else {
                                let name = read_name(&mut chars);
                                if !is_name(&name) {
                                    return Err(
                                        "`$` must be followed by a variable name (write \\$ for a dollar sign)"
                                            .to_owned(),
                                    );
                                }
                                w.push_var(name);
                            }
                        }
                        Some('`') => return Err("command substitution is not supported".to_owned()),
                        Some(c) => w.literal.push(c),
                        None => return Err("unterminated double quote".to_owned()),
                    }
                }
            }
            '\\' => match chars.next() {
                Some(c) => {
                    w.quoted = true;
                    w.push_char(c);
                }
                None => return Err("line continuations are not supported".to_owned()),
            },
            '$' => return Err("unquoted `$`: write \"$NAME\" so the value is not split".to_owned()),
            '`' => return Err("command substitution is not supported".to_owned()),
            '|' | '&' | ';' | '(' | ')' => {
                return Err(format!(
                    "`{c}` is not supported: one simple command per line"
                ));
            }
            '*' | '?' | '[' => return Err(format!("unquoted glob character `{c}`")),
            '~' => return Err("unquoted `~`: quote it".to_owned()),
            '#' if !w.active => return Err("a comment must be on its own line".to_owned()),
            '>' | '<' => {
                // A lone unquoted digit right before the operator is its fd.
                let fd = if w.active
                    && !w.quoted
                    && assign.is_none()
                    && w.parts.is_empty()
                    && w.literal.len() == 1
                {
                    w.literal
                        .bytes()
                        .next()
                        .filter(u8::is_ascii_digit)
                        .map(|d| d - b'0')
                } else {
                    None
                };
                if fd.is_some() {
                    w = WordBuilder::new();
                } else {
                    end_word(&mut w, &mut tokens, &mut assign)?;
                }
                let op = match (c, chars.peek()) {
                    ('>', Some('>')) => {
                        chars.next();
                        RedirectOp::Append
                    }
                    ('>', Some('&' | '|')) | ('<', Some('<' | '>' | '&')) => {
                        return Err("only `>`, `>>` and `<` redirections are supported".to_owned());
                    }
                    ('>', _) => RedirectOp::Write,
                    _ => RedirectOp::Read,
                };
                tokens.push(Token::Redirect { fd, op });
            }
            '=' if tokens.is_empty()
                && assign.is_none()
                && !w.quoted
                && w.parts.is_empty()
                && is_name(&w.literal) =>
            {
                assign = Some(Name(std::mem::take(&mut w.literal)));
                w.active = true;
            }
            c => {
                w.raw.push(c);
                w.push_char(c);
            }
        }
    }
    end_word(&mut w, &mut tokens, &mut assign)?;
    Ok(tokens)
}

fn parse_statement(line: &str) -> Result<Statement, String> {
    let mut tokens = tokenize(line)?.into_iter();
    let mut command = match tokens.next() {
        Some(Token::Assign { name, value }) => {
            return match tokens.next() {
                None => Ok(Statement::Assign { name, value }),
                Some(_) => {
                    Err("`NAME=value command` is not supported: assign on its own line".to_owned())
                }
            };
        }
        Some(Token::Word { word, quoted, raw }) => {
            if !quoted && RESERVED.contains(&raw.as_str()) {
                return Err(format!(
                    "`{raw}` starts a compound command, which is not supported"
                ));
            }
            Command {
                program: word,
                args: Vec::new(),
                redirects: Vec::new(),
            }
        }
        Some(Token::Redirect { .. }) => {
            return Err("a redirection needs a command before it".to_owned());
        }
        None => return Err("empty statement".to_owned()),
    };
    while let Some(token) = tokens.next() {
        match token {
            Token::Word { word, .. } => command.args.push(word),
            Token::Redirect { fd, op } => match tokens.next() {
                Some(Token::Word { word, .. }) => command.redirects.push(Redirect {
                    fd,
                    op,
                    target: word,
                }),
                _ => return Err(format!("`{}` needs a target", op.symbol())),
            },
            Token::Assign { .. } => {
                return Err("internal: assignment after the first word".to_owned());
            }
        }
    }
    Ok(Statement::Command(command))
}

#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use crate::wgquick::strategies::arb_comment;
    use proptest::prelude::*;

    fn arb_name() -> impl Strategy<Value = Name> {
        "[A-Za-z_][A-Za-z0-9_]{0,6}".prop_map(Name)
    }

    fn arb_part() -> impl Strategy<Value = Part> {
        prop_oneof![
            3 => "[ -~]{0,8}".prop_map(Part::Literal),
            1 => "[a-z0-9]{1,8}".prop_map(Part::Literal),
            1 => "\\PC{0,4}".prop_map(Part::Literal),
            1 => arb_name().prop_map(Part::Var),
        ]
    }

    pub(crate) fn arb_word() -> impl Strategy<Value = Word> {
        proptest::collection::vec(arb_part(), 0..4)
            .prop_filter_map("valid word", |parts| Word::from_parts(parts).ok())
    }

    fn arb_redirect() -> impl Strategy<Value = Redirect> {
        (
            proptest::option::of(0u8..10),
            proptest::sample::select(vec![
                RedirectOp::Write,
                RedirectOp::Append,
                RedirectOp::Read,
            ]),
            arb_word(),
        )
            .prop_map(|(fd, op, target)| Redirect { fd, op, target })
    }

    fn arb_statement() -> impl Strategy<Value = Statement> {
        prop_oneof![
            1 => Just(Statement::Blank),
            1 => arb_comment().prop_map(Statement::Comment),
            2 => (arb_name(), arb_word()).prop_map(|(name, value)| Statement::Assign { name, value }),
            4 => (arb_word(), proptest::collection::vec(arb_word(), 0..4), proptest::collection::vec(arb_redirect(), 0..2))
                .prop_map(|(program, args, redirects)| Statement::Command(Command { program, args, redirects })),
            1 => (0u64..100).prop_map(Statement::sleep),
        ]
    }

    pub(crate) fn arb_script() -> impl Strategy<Value = Script> {
        (
            prop_oneof![
                Just("/bin/sh".to_owned()),
                Just("/bin/sh -e".to_owned()),
                "/[a-z/]{1,12}"
            ],
            proptest::collection::vec(arb_comment(), 0..3),
            proptest::collection::vec(arb_statement(), 0..8),
        )
            .prop_filter_map("valid script", |(interpreter, header, body)| {
                Some(Script {
                    interpreter: Interpreter::new(interpreter).ok()?,
                    header,
                    body,
                })
            })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::strategies::*;
    use super::*;
    use crate::wgquick::comments;
    use crate::wgquick::strategies::mutate;
    use proptest::prelude::*;

    fn t(text: &str) -> Word {
        Word::template(text).unwrap()
    }

    /// Reference 004's `ovn-to-bond.sh`.
    pub(crate) fn ovn_to_bond() -> Script {
        let dev = Word::var(Name::new("dev").unwrap());
        let ifconfig = |state: &str| {
            Statement::Command(Command {
                program: t("/usr/sbin/ifconfig"),
                args: vec![dev.clone(), t(state)],
                redirects: vec![],
            })
        };
        Script {
            interpreter: Interpreter::sh(),
            header: comments(
                "Generated by vpnsim from scenario dual-path-bond\nOpenVPN route-up: enslave the tunnel device $dev to the bond",
            )
            .unwrap(),
            body: vec![
                Statement::Assign { name: Name::new("BONDING_INTERFACE").unwrap(), value: t("bond0") },
                Statement::sleep(10),
                ifconfig("down"),
                Statement::Command(Command {
                    program: t("echo"),
                    args: vec![t("+$dev")],
                    redirects: vec![Redirect {
                        fd: None,
                        op: RedirectOp::Write,
                        target: t("/sys/class/net/$BONDING_INTERFACE/bonding/slaves"),
                    }],
                }),
                ifconfig("up"),
            ],
        }
    }

    /// Reference 002's dead-leader procedure on one worker.
    fn switch_leader() -> Script {
        Script {
            interpreter: Interpreter::sh(),
            header: comments("Promote node 3 to VPN leader (old leader dead): run on every worker")
                .unwrap(),
            body: vec![
                Statement::command(&[
                    "switch-leader",
                    "--node",
                    "3",
                    "--endpoint",
                    "node3.example.com:55820",
                ])
                .unwrap(),
                Statement::Blank,
                Statement::comment("persist the runtime state").unwrap(),
                Statement::command(&["wg-quick", "save", "wg0"]).unwrap(),
            ],
        }
    }

    #[test]
    fn snapshot_ovn_to_bond() {
        let text = ovn_to_bond().emit();
        insta::assert_snapshot!(text);
        assert_eq!(Script::parse(&text).unwrap(), ovn_to_bond());
    }

    #[test]
    fn snapshot_switch_leader() {
        let text = switch_leader().emit();
        insta::assert_snapshot!(text);
        assert_eq!(Script::parse(&text).unwrap(), switch_leader());
    }

    #[test]
    fn steps_and_sleep() {
        let script = ovn_to_bond();
        assert_eq!(script.total_sleep(), Duration::from_secs(10));
        let env: BTreeMap<String, String> = [("dev".to_owned(), "ovn0".to_owned())].into();
        let steps = script.steps(&env);
        assert_eq!(steps.len(), 4);
        assert_eq!(steps[0], Step::Sleep(Duration::from_secs(10)));
        let Step::Run(echo) = &steps[2] else {
            panic!("not a command")
        };
        assert_eq!(
            echo.echo_to_file(),
            Some((
                "/sys/class/net/bond0/bonding/slaves",
                "+ovn0\n".to_owned(),
                false
            ))
        );
        let Step::Run(down) = &steps[1] else {
            panic!("not a command")
        };
        assert_eq!(down.argv, ["/usr/sbin/ifconfig", "ovn0", "down"]);
    }

    #[test]
    fn parses_the_reference_script() {
        let text = "#!/bin/sh\n\
            BONDING_INTERFACE=bond0\n\
            \n\
            sleep 10\n\
            \t/usr/sbin/ifconfig \"$dev\" down\n\
            echo \"-$dev\" >\"/sys/class/net/${BONDING_INTERFACE}/bonding/slaves\"\n\
            ip link del x 2>/dev/null\n\
            sleep 0.5 1m\n\
            A=\"x y\"'z'\\ w\n";
        let script = Script::parse(text).unwrap();
        assert!(script.header.is_empty());
        assert_eq!(script.total_sleep(), Duration::from_millis(70_500));
        let Statement::Command(c) = &script.body[4] else {
            panic!("not a command")
        };
        assert_eq!(
            c.redirects[0].target,
            t("/sys/class/net/$BONDING_INTERFACE/bonding/slaves")
        );
        let Statement::Command(c) = &script.body[5] else {
            panic!("not a command")
        };
        assert_eq!(c.redirects[0].fd, Some(2));
        assert_eq!(
            script.body[7],
            Statement::Assign {
                name: Name::new("A").unwrap(),
                value: t("x yz w")
            }
        );
    }

    #[test]
    fn rejects_with_line_numbers() {
        for (text, line, needle) in [
            ("echo hi\n", 1, "shebang"),
            ("#!sh\n", 1, "absolute"),
            ("#!/bin/sh\necho $dev\n", 2, "unquoted `$`"),
            ("#!/bin/sh\n\necho a | b\n", 3, "`|`"),
            ("#!/bin/sh\necho a && b\n", 2, "`&`"),
            ("#!/bin/sh\nif true\n", 2, "compound"),
            ("#!/bin/sh\necho *\n", 2, "glob"),
            ("#!/bin/sh\necho 'a\n", 2, "unterminated"),
            ("#!/bin/sh\necho \"$(ls)\"\n", 2, "variable name"),
            ("#!/bin/sh\necho \"${a:-b}\"\n", 2, "modifiers"),
            ("#!/bin/sh\necho a # c\n", 2, "own line"),
            ("#!/bin/sh\nA=b echo\n", 2, "assign on its own line"),
            ("#!/bin/sh\necho a 2>&1\n", 2, "redirections"),
            ("#!/bin/sh\necho a >\n", 2, "target"),
            ("#!/bin/sh\n> f\n", 2, "command before"),
            ("#!/bin/sh\necho a \\\n", 2, "continuation"),
            ("#!/bin/sh\necho ~/x\n", 2, "`~`"),
            ("#!/bin/sh\necho \u{1b}\n", 2, "control"),
        ] {
            let err = Script::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn words_quote_only_when_needed() {
        let cmd =
            Statement::command(&["wg-quick", "save", "wg0", "a b", "it's", "$x", ""]).unwrap();
        let script = Script {
            interpreter: Interpreter::sh(),
            header: vec![],
            body: vec![cmd],
        };
        assert_eq!(
            script.emit(),
            "#!/bin/sh\n\nwg-quick save wg0 'a b' \"it's\" '$x' ''\n"
        );
        let promote = Statement::command(&[
            "api-cli",
            "run",
            "promote-node",
            "--data",
            r#"{"node_id":3, "endpoint_address":"node3.example.com", "endpoint_port":55820}"#,
        ])
        .unwrap();
        let odd = Statement::command(&["if", "it's", "a=b", "~x", "", "2"]).unwrap();
        let script = Script {
            interpreter: Interpreter::sh(),
            header: vec![],
            body: vec![promote, odd],
        };
        assert_eq!(
            script.emit(),
            "#!/bin/sh\n\napi-cli run promote-node --data '{\"node_id\":3, \"endpoint_address\":\"node3.example.com\", \"endpoint_port\":55820}'\n\
             'if' \"it's\" a=b '~x' '' 2\n"
        );
        assert_eq!(Script::parse(&script.emit()).unwrap(), script);
        assert_eq!(t("a${b}c$d").to_source(false), "\"a${b}c$d\"");
        assert_eq!(t("$").as_literal(), Some("$"));
    }

    proptest! {
        #[test]
        fn roundtrip(script in arb_script()) {
            let text = script.emit();
            prop_assert_eq!(Script::parse(&text), Ok(script), "{}", text);
        }

        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = Script::parse(&text);
        }

        #[test]
        fn parse_never_panics_bytes(bytes in any::<Vec<u8>>()) {
            let _ = Script::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn parse_never_panics_on_mutations(script in arb_script(), index in any::<usize>(), c in any::<char>()) {
            let _ = Script::parse(&mutate(&script.emit(), index, c));
        }

        #[test]
        fn sleep_never_panics(arg in "[0-9.smhd]{0,30}") {
            let _ = parse_sleep(&arg);
        }
    }
}

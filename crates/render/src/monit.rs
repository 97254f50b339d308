//! monit control files (`/etc/monit/conf.d/*`, `monitrc`), the subset of
//! reference 004: processes watched through a pidfile and hosts watched
//! with ICMP echo, each with start/stop programs.
//!
//! ```text
//! check process ovn0-pid with pidfile /run/openvpn/ovn0.pid
//!     start program = "/usr/bin/systemctl start openvpn@ovn0"
//!     stop program = "/usr/bin/systemctl stop openvpn@ovn0"
//!
//! check host ovn0 with address 10.0.0.2
//!     start program = "/usr/bin/systemctl start openvpn@ovn0"
//!     stop program = "/usr/bin/systemctl stop openvpn@ovn0"
//!     if failed icmp type echo count 5 with timeout 15 seconds then restart
//! ```
//!
//! Monit's syntax is free-form and token-oriented, so [`MonitConf::parse`]
//! reads tokens, not lines: statements may span or share lines (the
//! reference's files arrived flattened onto one line), keywords are
//! case-insensitive, `with`, `program` and `=` are optional where monit
//! makes them so, `#` starts a comment to the end of the line, names may be
//! quoted. It accepts `set daemon N [with start delay N]` (the last one
//! wins), `check process NAME with pidfile PATH`, `check host NAME with
//! address ADDR`, `start`/`stop program = "CMD" [with timeout N seconds]`,
//! and for hosts `if failed icmp type echo|ping|ping4|ping6 [count N]
//! [with timeout N seconds] [[for] N cycles] then
//! alert|restart|start|stop|unmonitor`.
//!
//! It rejects, with the line of the offending token, anything else
//! (monit knows far more; this subset is what the toolkit writes and
//! simulates), a host without an ICMP test and two services with the same
//! name ignoring case (monit rejects both), a second start or stop program
//! in one service, programs that are not absolute paths, and quoted strings
//! with backslashes, newlines or the other quote.
//!
//! Comment lines before the first statement are the
//! [`MonitConf::header`]; other comments are dropped on parse.
//!
//! [`MonitConf::parse_lenient`] reads files written for the real monit
//! (collected from hosts): the same subset, with every statement outside
//! it skipped and reported as a [`Skipped`] instead of failing the file, so
//! that the simulator can say what it does not run.

use std::fmt;
use std::num::NonZeroU16;

use crate::format::{Format, ParseError};
pub use crate::wgquick::{Comment, Host, InvalidValue};

/// A service name: ASCII letters, digits, `_`, `.` and `-`, 1 to 64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceName(String);

impl ServiceName {
    pub fn new(name: impl Into<String>) -> Result<ServiceName, InvalidValue> {
        let name = name.into();
        if name.is_empty() || name.len() > 64 {
            return Err(InvalidValue::new(
                "monit service name",
                &name,
                "must be 1 to 64 bytes",
            ));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(InvalidValue::new(
                "monit service name",
                &name,
                "holds only ASCII letters, digits, '_', '.' and '-'",
            ));
        }
        Ok(ServiceName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ServiceName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An absolute file path (a pidfile): starts with `/`, no control
/// characters, no `"` or `\`. Quoted when written if it holds anything
/// beyond ASCII letters, digits and `/._+-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AbsPath(String);

impl AbsPath {
    pub fn new(path: impl Into<String>) -> Result<AbsPath, InvalidValue> {
        let path = path.into();
        if !path.starts_with('/') {
            return Err(InvalidValue::new("path", &path, "must be absolute"));
        }
        if path
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return Err(InvalidValue::new(
                "path",
                &path,
                "contains a control character, '\"' or '\\'",
            ));
        }
        Ok(AbsPath(path))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn needs_quotes(&self) -> bool {
        !self
            .0
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'/' | b'.' | b'_' | b'+' | b'-'))
    }
}

impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.needs_quotes() {
            write!(f, "\"{}\"", self.0)
        } else {
            f.write_str(&self.0)
        }
    }
}

/// A program monit runs (through `execv`, split on spaces): the absolute
/// path of an executable and its arguments. Non-empty, no control
/// characters, no `"` or `\`, first character `/`, no surrounding spaces.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Command(String);

impl Command {
    pub fn new(command: impl Into<String>) -> Result<Command, InvalidValue> {
        let command = command.into();
        let bad = |reason| Err(InvalidValue::new("monit program", &command, reason));
        if !command.starts_with('/') {
            return bad("must start with the absolute path of the program");
        }
        if command
            .chars()
            .any(|c| c.is_control() || c == '"' || c == '\\')
        {
            return bad("contains a control character, '\"' or '\\'");
        }
        if command.trim() != command {
            return bad("has trailing whitespace");
        }
        Ok(Command(command))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The program and its arguments.
    pub fn argv(&self) -> Vec<&str> {
        self.0.split(' ').filter(|w| !w.is_empty()).collect()
    }
}

/// `start program` or `stop program`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    pub command: Command,
    /// `with timeout N seconds`: how long monit waits for it (default 30).
    pub timeout: Option<u16>,
}

impl Program {
    pub fn new(command: &str) -> Result<Program, InvalidValue> {
        Ok(Program {
            command: Command::new(command)?,
            timeout: None,
        })
    }
}

/// How an ICMP test is spelled; all send echo requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Ping {
    /// `icmp type echo`
    IcmpEcho,
    /// `ping`
    Ping,
    /// `ping4`: IPv4 only.
    Ping4,
    /// `ping6`: IPv6 only.
    Ping6,
}

/// What monit does when a test fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Action {
    Alert,
    Restart,
    Start,
    Stop,
    Unmonitor,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Alert => "alert",
            Action::Restart => "restart",
            Action::Start => "start",
            Action::Stop => "stop",
            Action::Unmonitor => "unmonitor",
        }
    }
}

/// `if failed icmp type echo count N with timeout T seconds then ACTION`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IcmpCheck {
    pub ping: Ping,
    /// Echo requests per cycle (monit's default 3).
    pub count: Option<u16>,
    /// Seconds to wait for the replies (monit's default 5).
    pub timeout: Option<u16>,
    /// `N cycles`: how many failed cycles in a row trigger the action.
    pub cycles: Option<NonZeroU16>,
    pub action: Action,
}

impl IcmpCheck {
    /// Echo requests monit sends per cycle.
    pub fn effective_count(&self) -> u16 {
        self.count.unwrap_or(3)
    }
    /// Seconds monit waits for replies.
    pub fn effective_timeout(&self) -> u16 {
        self.timeout.unwrap_or(5)
    }
}

/// What a service watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceKind {
    /// `check process NAME with pidfile PATH`: running while the pid lives.
    Process { pidfile: AbsPath },
    /// `check host NAME with address ADDR` with at least one ICMP test.
    Host {
        address: Host,
        checks: Vec<IcmpCheck>,
    },
}

/// One `check` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: ServiceName,
    pub kind: ServiceKind,
    pub start: Option<Program>,
    pub stop: Option<Program>,
}

/// `set daemon N [with start delay N]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Daemon {
    /// Seconds between two checking cycles.
    pub interval: NonZeroU16,
    /// Seconds before the first cycle.
    pub start_delay: Option<u16>,
}

/// A monit control file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MonitConf {
    /// Comment lines at the top.
    pub header: Vec<Comment>,
    /// The poll cycle; usually in the main `monitrc`, not in `conf.d` files.
    pub daemon: Option<Daemon>,
    pub services: Vec<Service>,
}

impl MonitConf {
    /// What monit itself rejects and the types cannot rule out: a host
    /// without tests, two services whose names differ only in case.
    pub fn validate(&self) -> Result<(), InvalidValue> {
        for (i, s) in self.services.iter().enumerate() {
            if matches!(&s.kind, ServiceKind::Host { checks, .. } if checks.is_empty()) {
                return Err(InvalidValue::new(
                    "monit host",
                    s.name.as_str(),
                    "needs at least one ICMP test",
                ));
            }
            if self.services[..i]
                .iter()
                .any(|t| t.name.0.eq_ignore_ascii_case(&s.name.0))
            {
                return Err(InvalidValue::new(
                    "monit service name",
                    s.name.as_str(),
                    "is defined twice",
                ));
            }
        }
        Ok(())
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services
            .iter()
            .find(|s| s.name.0.eq_ignore_ascii_case(name))
    }

    /// Reads a control file written for the real monit, which knows far
    /// more than this subset: what [`Format::parse`] reads, with every
    /// statement outside the subset skipped and reported instead of
    /// failing the file (`set httpd ...`, `check filesystem ...`,
    /// `if cpu > 90% then alert`, `group ...`, an ICMP test with options the
    /// subset lacks, a host left without an ICMP test, a second service of
    /// the same name). Statements resume at the next keyword that starts
    /// one. Only text that cannot be split into tokens (an unterminated
    /// quote, a control character) is an error. For the simulator, which
    /// must say what it does not run rather than fail a collected tree.
    pub fn parse_lenient(text: &str) -> Result<(MonitConf, Vec<Skipped>), ParseError> {
        let (header, tokens) = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            end_line: text.lines().count().max(1),
            lenient: true,
            skipped: Vec::new(),
        };
        let mut conf = parser.file()?;
        conf.header = header;
        Ok((conf, parser.skipped))
    }
}

/// A statement [`MonitConf::parse_lenient`] skipped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// 1-based line where the problem was found.
    pub line: usize,
    /// The skipped tokens, shortened.
    pub text: String,
    /// Why: what the strict parser would have said.
    pub reason: String,
    /// The real monit refuses the file for it too (a second service of the
    /// same name, a host without a test): monit would not start. Otherwise
    /// the statement is only outside the subset.
    pub refused: bool,
}

fn write_program(out: &mut String, verb: &str, program: &Program) {
    out.push_str(&format!(
        "    {verb} program = \"{}\"",
        program.command.as_str()
    ));
    if let Some(t) = program.timeout {
        out.push_str(&format!(" with timeout {t} seconds"));
    }
    out.push('\n');
}

impl Format for MonitConf {
    /// Emits the file; for a value that fails [`MonitConf::validate`] the
    /// text is what monit would reject too.
    fn emit(&self) -> String {
        let mut blocks: Vec<String> = Vec::new();
        if !self.header.is_empty() {
            blocks.push(self.header.iter().map(|c| c.to_line('#') + "\n").collect());
        }
        if let Some(d) = &self.daemon {
            let mut s = format!("set daemon {}", d.interval);
            if let Some(delay) = d.start_delay {
                s.push_str(&format!(" with start delay {delay}"));
            }
            s.push('\n');
            blocks.push(s);
        }
        for service in &self.services {
            let mut s = match &service.kind {
                ServiceKind::Process { pidfile } => {
                    format!("check process {} with pidfile {pidfile}\n", service.name)
                }
                ServiceKind::Host { address, .. } => {
                    format!("check host {} with address {address}\n", service.name)
                }
            };
            if let Some(p) = &service.start {
                write_program(&mut s, "start", p);
            }
            if let Some(p) = &service.stop {
                write_program(&mut s, "stop", p);
            }
            if let ServiceKind::Host { checks, .. } = &service.kind {
                for c in checks {
                    s.push_str("    if failed ");
                    s.push_str(match c.ping {
                        Ping::IcmpEcho => "icmp type echo",
                        Ping::Ping => "ping",
                        Ping::Ping4 => "ping4",
                        Ping::Ping6 => "ping6",
                    });
                    if let Some(n) = c.count {
                        s.push_str(&format!(" count {n}"));
                    }
                    if let Some(t) = c.timeout {
                        s.push_str(&format!(" with timeout {t} seconds"));
                    }
                    if let Some(n) = c.cycles {
                        s.push_str(&format!(" for {n} cycles"));
                    }
                    s.push_str(&format!(" then {}\n", c.action.name()));
                }
            }
            blocks.push(s);
        }
        blocks.join("\n")
    }

    fn parse(text: &str) -> Result<Self, ParseError> {
        let (header, tokens) = tokenize(text)?;
        let mut parser = Parser {
            tokens,
            at: 0,
            end_line: text.lines().count().max(1),
            lenient: false,
            skipped: Vec::new(),
        };
        let mut conf = parser.file()?;
        conf.header = header;
        Ok(conf)
    }
}

// ---------------------------------------------------------------------------
// Tokens
// ---------------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Word(String),
    /// Text in double quotes (`true`) or single quotes.
    Quoted(String, bool),
    Equals,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    line: usize,
}

/// Splits into tokens; comment lines before the first token are the header.
fn tokenize(text: &str) -> Result<(Vec<Comment>, Vec<Token>), ParseError> {
    let mut header = Vec::new();
    let mut tokens = Vec::new();
    let mut line = 1;
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                chars.next();
                let mut comment = String::new();
                while let Some(&c) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    comment.push(c);
                    chars.next();
                }
                if tokens.is_empty() {
                    header.push(Comment::from_line_lossy(&comment));
                }
            }
            '=' => {
                chars.next();
                tokens.push(Token {
                    tok: Tok::Equals,
                    line,
                });
            }
            '"' | '\'' => {
                chars.next();
                let mut s = String::new();
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\n') | None => {
                            return Err(ParseError::new(
                                line,
                                format!("unterminated {c}quoted string"),
                            ));
                        }
                        Some('\\') => {
                            return Err(ParseError::new(
                                line,
                                "backslashes in quoted strings are not supported",
                            ));
                        }
                        Some(ch) if ch.is_control() => {
                            return Err(ParseError::new(
                                line,
                                format!("control character {ch:?} in a quoted string"),
                            ));
                        }
                        Some(ch) => s.push(ch),
                    }
                }
                tokens.push(Token {
                    tok: Tok::Quoted(s, c == '"'),
                    line,
                });
            }
            c if c.is_control() => {
                return Err(ParseError::new(line, format!("control character {c:?}")));
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '=' | '#') {
                        break;
                    }
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token {
                    tok: Tok::Word(word),
                    line,
                });
            }
        }
    }
    Ok((header, tokens))
}

// ---------------------------------------------------------------------------
// Grammar
// ---------------------------------------------------------------------------

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    end_line: usize,
    /// Skip what is outside the subset instead of failing.
    lenient: bool,
    skipped: Vec<Skipped>,
}

/// Keywords that start a top-level statement (lenient parsing resumes there).
const TOP_LEVEL: &[&str] = &["check", "set", "include"];
/// Keywords that start a statement inside a `check` entry.
const SERVICE_LEVEL: &[&str] = &[
    "check", "set", "include", "if", "start", "stop", "restart", "group", "depends", "mode",
    "every", "alert", "noalert", "onreboot",
];
/// How much of a skipped statement [`Skipped::text`] keeps.
const SKIPPED_TEXT: usize = 80;

impl Parser {
    fn line(&self) -> usize {
        self.tokens.get(self.at).map_or(self.end_line, |t| t.line)
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        ParseError::new(self.line(), message)
    }

    fn describe(&self) -> String {
        match self.tokens.get(self.at).map(|t| &t.tok) {
            None => "end of file".to_owned(),
            Some(Tok::Word(w)) => format!("{w:?}"),
            Some(Tok::Quoted(q, _)) => format!("quoted {q:?}"),
            Some(Tok::Equals) => "'='".to_owned(),
        }
    }

    /// Whether the next token is the keyword `kw` (case-insensitive).
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.tokens.get(self.at), Some(Token { tok: Tok::Word(w), .. }) if w.eq_ignore_ascii_case(kw))
    }

    fn eat_kw(&mut self, kw: &str) -> bool {
        let found = self.peek_kw(kw);
        if found {
            self.at += 1;
        }
        found
    }

    fn expect_kw(&mut self, kw: &str, context: &str) -> Result<(), ParseError> {
        if self.eat_kw(kw) {
            Ok(())
        } else {
            Err(self.error(format!(
                "expected `{kw}` {context}, found {}",
                self.describe()
            )))
        }
    }

    /// A word or a quoted string.
    fn value(&mut self, what: &str) -> Result<(String, usize), ParseError> {
        match self.tokens.get(self.at) {
            Some(Token {
                tok: Tok::Word(w) | Tok::Quoted(w, _),
                line,
            }) => {
                let out = (w.clone(), *line);
                self.at += 1;
                Ok(out)
            }
            _ => Err(self.error(format!("expected {what}, found {}", self.describe()))),
        }
    }

    fn number(&mut self, what: &str) -> Result<u16, ParseError> {
        match self.tokens.get(self.at) {
            Some(Token {
                tok: Tok::Word(w), ..
            }) if !w.is_empty() && w.len() <= 5 && w.bytes().all(|b| b.is_ascii_digit()) => {
                let n = w
                    .parse::<u16>()
                    .map_err(|_| self.error(format!("{what} {w} is larger than 65535")))?;
                self.at += 1;
                Ok(n)
            }
            _ => Err(self.error(format!(
                "expected {what} (a number), found {}",
                self.describe()
            ))),
        }
    }

    fn is_number(&self) -> bool {
        matches!(self.tokens.get(self.at), Some(Token { tok: Tok::Word(w), .. }) if !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()))
    }

    fn seconds(&mut self) -> Result<u16, ParseError> {
        let n = self.number("timeout")?;
        if self.eat_kw("seconds") || self.eat_kw("second") {
            Ok(n)
        } else {
            Err(self.error(format!("expected `seconds`, found {}", self.describe())))
        }
    }

    fn file(&mut self) -> Result<MonitConf, ParseError> {
        let mut conf = MonitConf::default();
        while self.at < self.tokens.len() {
            let start = self.at;
            if let Err(e) = self.statement(&mut conf) {
                if !self.lenient {
                    return Err(e);
                }
                // Skip to the next top-level statement.
                self.at = start + 1;
                while self.at < self.tokens.len() && !self.peek_any(TOP_LEVEL) {
                    self.at += 1;
                }
                self.skip(start, e);
            }
        }
        Ok(conf)
    }

    /// Records that the tokens from `start` to here were skipped because of `e`.
    fn skip(&mut self, start: usize, e: ParseError) {
        let mut text = String::new();
        for t in self.tokens.get(start..self.at).unwrap_or_default() {
            if !text.is_empty() {
                text.push(' ');
            }
            match &t.tok {
                Tok::Word(w) => text.push_str(w),
                Tok::Quoted(q, true) => text.push_str(&format!("\"{q}\"")),
                Tok::Quoted(q, false) => text.push_str(&format!("'{q}'")),
                Tok::Equals => text.push('='),
            }
            if text.chars().count() > SKIPPED_TEXT {
                text = text.chars().take(SKIPPED_TEXT).collect::<String>() + "...";
                break;
            }
        }
        self.skipped.push(Skipped {
            line: e.line,
            text,
            reason: e.message,
            refused: false,
        });
    }

    fn peek_any(&self, keywords: &[&str]) -> bool {
        keywords.iter().any(|k| self.peek_kw(k))
    }

    /// One top-level statement: `set daemon ...` or a `check` entry.
    fn statement(&mut self, conf: &mut MonitConf) -> Result<(), ParseError> {
        if self.eat_kw("set") {
            self.expect_kw("daemon", "after `set` (only `set daemon` is supported)")?;
            let line = self.line();
            let interval = NonZeroU16::new(self.number("poll interval")?).ok_or_else(|| {
                ParseError::new(line, "the poll interval must be more than 0 seconds")
            })?;
            let mark = self.at;
            self.eat_kw("with");
            let start_delay = if self.eat_kw("start") {
                self.expect_kw("delay", "after `start`")?;
                Some(self.number("start delay")?)
            } else {
                self.at = mark;
                None
            };
            conf.daemon = Some(Daemon {
                interval,
                start_delay,
            });
        } else if self.peek_kw("check") {
            let line = self.line();
            let Some(service) = self.service()? else {
                return Ok(());
            };
            if conf
                .services
                .iter()
                .any(|s| s.name.0.eq_ignore_ascii_case(&service.name.0))
            {
                let e = ParseError::new(
                    line,
                    format!("service name conflict: {} is already defined", service.name),
                );
                if !self.lenient {
                    return Err(e);
                }
                self.skipped.push(Skipped {
                    line,
                    text: format!("check ... {}", service.name),
                    reason: e.message,
                    refused: true,
                });
                return Ok(());
            }
            conf.services.push(service);
        } else {
            return Err(self.error(format!(
                "expected `check` or `set daemon`, found {}",
                self.describe()
            )));
        }
        Ok(())
    }

    /// A `check` entry; `None` when lenient parsing dropped it.
    fn service(&mut self) -> Result<Option<Service>, ParseError> {
        let check_line = self.line();
        self.expect_kw("check", "")?;
        let is_host = if self.eat_kw("process") {
            false
        } else if self.eat_kw("host") {
            true
        } else {
            return Err(self.error(format!(
                "expected `process` or `host` after `check`, found {}",
                self.describe()
            )));
        };
        let (name, line) = self.value("a service name")?;
        let name = ServiceName::new(name).map_err(|e| ParseError::new(line, e.to_string()))?;
        self.eat_kw("with");
        let kind = if is_host {
            self.expect_kw("address", "after the host name")?;
            let (address, line) = self.value("an address")?;
            let address =
                Host::parse(&address).map_err(|e| ParseError::new(line, e.to_string()))?;
            ServiceKind::Host {
                address,
                checks: Vec::new(),
            }
        } else {
            self.expect_kw("pidfile", "after the process name")?;
            let (path, line) = self.value("a pidfile path")?;
            ServiceKind::Process {
                pidfile: AbsPath::new(path).map_err(|e| ParseError::new(line, e.to_string()))?,
            }
        };
        let mut service = Service {
            name,
            kind,
            start: None,
            stop: None,
        };
        loop {
            let start = self.at;
            match self.service_statement(&mut service) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) if self.lenient => {
                    self.at = start;
                    if self.eat_kw("if") {
                        self.skip_if_statement();
                    } else {
                        self.at = start + 1;
                        while self.at < self.tokens.len() && !self.peek_any(SERVICE_LEVEL) {
                            self.at += 1;
                        }
                    }
                    self.skip(start, e);
                }
                Err(e) => return Err(e),
            }
        }
        if matches!(&service.kind, ServiceKind::Host { checks, .. } if checks.is_empty()) {
            let e = ParseError::new(
                check_line,
                format!(
                    "check host {} has no ICMP test (monit rejects it)",
                    service.name
                ),
            );
            if !self.lenient {
                return Err(e);
            }
            self.skipped.push(Skipped {
                line: check_line,
                text: format!("check host {}", service.name),
                reason: e.message,
                refused: true,
            });
            return Ok(None);
        }
        Ok(Some(service))
    }

    /// One statement inside a `check` entry; `Ok(false)` at the entry's end.
    fn service_statement(&mut self, service: &mut Service) -> Result<bool, ParseError> {
        if self.peek_kw("start") || self.peek_kw("stop") {
            let line = self.line();
            let start = self.peek_kw("start");
            self.at += 1;
            let program = self.program()?;
            let slot = if start {
                &mut service.start
            } else {
                &mut service.stop
            };
            if slot.is_some() {
                return Err(ParseError::new(
                    line,
                    "a second start or stop program for this service",
                ));
            }
            *slot = Some(program);
            Ok(true)
        } else if self.peek_kw("if") {
            let line = self.line();
            self.at += 1;
            let check = self.icmp_check()?;
            match &mut service.kind {
                ServiceKind::Host { checks, .. } => checks.push(check),
                ServiceKind::Process { .. } => {
                    return Err(ParseError::new(
                        line,
                        "ICMP tests belong to `check host`, not `check process`",
                    ));
                }
            }
            Ok(true)
        } else if self.at >= self.tokens.len() || self.peek_kw("check") || self.peek_kw("set") {
            Ok(false)
        } else {
            Err(self.error(format!(
                "unsupported statement in service {}: {}",
                service.name,
                self.describe()
            )))
        }
    }

    /// Skips an `if ... then ACTION [else if ... then ACTION]` statement
    /// whose `if` was just read (lenient parsing).
    fn skip_if_statement(&mut self) {
        loop {
            while self.at < self.tokens.len() && !self.peek_kw("then") && !self.peek_any(TOP_LEVEL)
            {
                self.at += 1;
            }
            if !self.eat_kw("then") {
                return;
            }
            let exec = self.peek_kw("exec");
            if self.at < self.tokens.len() {
                self.at += 1;
            }
            if exec
                && matches!(
                    self.tokens.get(self.at),
                    Some(Token {
                        tok: Tok::Quoted(..),
                        ..
                    })
                )
            {
                self.at += 1;
            }
            if !self.eat_kw("else") {
                return;
            }
        }
    }

    fn program(&mut self) -> Result<Program, ParseError> {
        self.eat_kw("program");
        if matches!(
            self.tokens.get(self.at),
            Some(Token {
                tok: Tok::Equals,
                ..
            })
        ) {
            self.at += 1;
        }
        let (command, line) = match self.tokens.get(self.at) {
            Some(Token {
                tok: Tok::Quoted(q, true),
                line,
            }) => (q.clone(), *line),
            _ => {
                return Err(self.error(format!(
                    "expected a double-quoted program, found {}",
                    self.describe()
                )));
            }
        };
        self.at += 1;
        let command = Command::new(command).map_err(|e| ParseError::new(line, e.to_string()))?;
        let mark = self.at;
        self.eat_kw("with");
        let timeout = if self.eat_kw("timeout") {
            Some(self.seconds()?)
        } else {
            self.at = mark;
            None
        };
        Ok(Program { command, timeout })
    }

    fn icmp_check(&mut self) -> Result<IcmpCheck, ParseError> {
        self.expect_kw(
            "failed",
            "after `if` (only `if failed` ICMP tests are supported)",
        )?;
        let ping = if self.eat_kw("icmp") {
            self.expect_kw("type", "after `icmp`")?;
            self.expect_kw("echo", "after `icmp type`")?;
            Ping::IcmpEcho
        } else if self.eat_kw("ping") {
            Ping::Ping
        } else if self.eat_kw("ping4") {
            Ping::Ping4
        } else if self.eat_kw("ping6") {
            Ping::Ping6
        } else {
            return Err(self.error(format!(
                "expected `icmp type echo` or `ping`, found {}",
                self.describe()
            )));
        };
        let (mut count, mut timeout, mut cycles) = (None, None, None);
        loop {
            let mark = self.at;
            self.eat_kw("with");
            if self.eat_kw("count") {
                count = Some(self.number("count")?);
            } else if self.eat_kw("timeout") {
                timeout = Some(self.seconds()?);
            } else {
                self.at = mark;
                break;
            }
        }
        self.eat_kw("for");
        if self.is_number() {
            let line = self.line();
            let n = self.number("cycles")?;
            self.expect_kw("cycles", "after the number of cycles")?;
            cycles = Some(NonZeroU16::new(n).ok_or_else(|| ParseError::new(line, "0 cycles"))?);
        }
        self.expect_kw("then", "before the action")?;
        let action = [
            Action::Alert,
            Action::Restart,
            Action::Start,
            Action::Stop,
            Action::Unmonitor,
        ]
        .into_iter()
        .find(|a| self.peek_kw(a.name()))
        .ok_or_else(|| {
            self.error(format!(
                "expected alert, restart, start, stop or unmonitor, found {}",
                self.describe()
            ))
        })?;
        self.at += 1;
        Ok(IcmpCheck {
            ping,
            count,
            timeout,
            cycles,
            action,
        })
    }
}

#[cfg(test)]
pub(crate) mod strategies {
    use super::*;
    use crate::wgquick::strategies::{arb_comment, arb_host};
    use proptest::prelude::*;

    fn arb_program() -> impl Strategy<Value = Program> {
        (
            "/[a-z/]{1,10}( [ -!#-\\[\\]-~]{0,10}[a-z])?",
            proptest::option::of(any::<u16>()),
        )
            .prop_filter_map("valid program", |(c, timeout)| {
                Command::new(c)
                    .ok()
                    .map(|command| Program { command, timeout })
            })
    }

    fn arb_check() -> impl Strategy<Value = IcmpCheck> {
        (
            proptest::sample::select(vec![Ping::IcmpEcho, Ping::Ping, Ping::Ping4, Ping::Ping6]),
            proptest::option::of(any::<u16>()),
            proptest::option::of(any::<u16>()),
            proptest::option::of(1u16..),
            proptest::sample::select(vec![
                Action::Alert,
                Action::Restart,
                Action::Start,
                Action::Stop,
                Action::Unmonitor,
            ]),
        )
            .prop_map(|(ping, count, timeout, cycles, action)| IcmpCheck {
                ping,
                count,
                timeout,
                cycles: cycles.and_then(NonZeroU16::new),
                action,
            })
    }

    fn arb_kind() -> impl Strategy<Value = ServiceKind> {
        prop_oneof![
            "/[ -!#-\\[\\]-~]{0,16}"
                .prop_filter_map("valid path", |p| AbsPath::new(p).ok())
                .prop_map(|pidfile| ServiceKind::Process { pidfile }),
            (arb_host(), proptest::collection::vec(arb_check(), 1..3))
                .prop_map(|(address, checks)| ServiceKind::Host { address, checks }),
        ]
    }

    fn arb_service() -> impl Strategy<Value = Service> {
        (
            "[A-Za-z0-9_.-]{1,12}".prop_filter_map("valid name", |n| ServiceName::new(n).ok()),
            arb_kind(),
            proptest::option::of(arb_program()),
            proptest::option::of(arb_program()),
        )
            .prop_map(|(name, kind, start, stop)| Service {
                name,
                kind,
                start,
                stop,
            })
    }

    pub(crate) fn arb_monit() -> impl Strategy<Value = MonitConf> {
        (
            proptest::collection::vec(arb_comment(), 0..3),
            proptest::option::of((1u16.., proptest::option::of(any::<u16>()))),
            proptest::collection::vec(arb_service(), 0..4),
        )
            .prop_map(|(header, daemon, mut services)| {
                let mut seen = std::collections::BTreeSet::new();
                services.retain(|s| seen.insert(s.name.as_str().to_ascii_lowercase()));
                let daemon = daemon.and_then(|(i, start_delay)| {
                    NonZeroU16::new(i).map(|interval| Daemon {
                        interval,
                        start_delay,
                    })
                });
                MonitConf {
                    header,
                    daemon,
                    services,
                }
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

    /// Reference 004's `ovn0` monit file, with a poll cycle.
    pub(crate) fn ovn0() -> MonitConf {
        let program = |verb: &str| {
            Some(Program::new(&format!("/usr/bin/systemctl {verb} openvpn@ovn0")).unwrap())
        };
        MonitConf {
            header: comments("Generated by vpnsim from scenario dual-path-bond").unwrap(),
            daemon: Some(Daemon {
                interval: NonZeroU16::new(30).unwrap(),
                start_delay: None,
            }),
            services: vec![
                Service {
                    name: ServiceName::new("ovn0-pid").unwrap(),
                    kind: ServiceKind::Process {
                        pidfile: AbsPath::new("/run/openvpn/ovn0.pid").unwrap(),
                    },
                    start: program("start"),
                    stop: program("stop"),
                },
                Service {
                    name: ServiceName::new("ovn0").unwrap(),
                    kind: ServiceKind::Host {
                        address: Host::parse("10.0.0.2").unwrap(),
                        checks: vec![IcmpCheck {
                            ping: Ping::IcmpEcho,
                            count: Some(5),
                            timeout: Some(15),
                            cycles: None,
                            action: Action::Restart,
                        }],
                    },
                    start: program("start"),
                    stop: program("stop"),
                },
            ],
        }
    }

    #[test]
    fn snapshot_ovn0() {
        let text = ovn0().emit();
        insta::assert_snapshot!(text);
        assert_eq!(MonitConf::parse(&text).unwrap(), ovn0());
        assert_eq!(ovn0().validate(), Ok(()));
    }

    #[test]
    fn parses_the_flattened_reference() {
        // Reference 004 as published: comments, then everything on one line.
        let text = "###########################################################################\n\
##  Copyright (C) Wizardry and Steamworks 2023 - License: GNU GPLv3      ##\n\
###########################################################################\n\
check process ovn1-pid with pidfile /run/openvpn/ovn1.pid start program = \"/usr/bin/systemctl start openvpn@ovn1\" stop program = \"/usr/bin/systemctl stop openvpn@ovn1\" check host ovn1 with address 10.0.0.2 start program = \"/usr/bin/systemctl start openvpn@ovn1\" stop program = \"/usr/bin/systemctl stop openvpn@ovn1\" if failed icmp type echo count 5 with timeout 15 seconds then restart\n";
        let conf = MonitConf::parse(text).unwrap();
        assert_eq!(conf.header.len(), 3);
        assert_eq!(conf.services.len(), 2);
        let host = conf.service("OVN1").unwrap();
        let ServiceKind::Host { checks, .. } = &host.kind else {
            panic!("not a host")
        };
        assert_eq!(
            (checks[0].effective_count(), checks[0].effective_timeout()),
            (5, 15)
        );
        assert_eq!(
            host.start.as_ref().unwrap().command.argv(),
            ["/usr/bin/systemctl", "start", "openvpn@ovn1"]
        );
    }

    #[test]
    fn parses_variations() {
        let text = "SET DAEMON 10 With Start Delay 5\n\
            check host 'gw' address fe80::1 # trailing comment\n\
            start \"/bin/true\" timeout 9 second\n\
            if failed ping 3 cycles then alert\n\
            if failed icmp type echo with timeout 2 seconds count 1 then restart\n";
        let conf = MonitConf::parse(text).unwrap();
        assert_eq!(
            conf.daemon,
            Some(Daemon {
                interval: NonZeroU16::new(10).unwrap(),
                start_delay: Some(5)
            })
        );
        let ServiceKind::Host { checks, .. } = &conf.services[0].kind else {
            panic!("not a host")
        };
        assert_eq!(checks[0].cycles, NonZeroU16::new(3));
        assert_eq!((checks[1].count, checks[1].timeout), (Some(1), Some(2)));
        assert_eq!(conf.services[0].start.as_ref().unwrap().timeout, Some(9));
    }

    #[test]
    fn rejects_with_line_numbers() {
        for (text, line, needle) in [
            ("check host x with address 10.0.0.2\n", 1, "no ICMP test"),
            (
                "check host x with address 10.0.0.2\n  failed icmp type echo then restart\n",
                2,
                "unsupported",
            ),
            (
                "check host x with address 10.0.0.2\n if failed icmp echo then restart\n",
                2,
                "`type`",
            ),
            (
                "check host x with address 10.0.0.2\n if failed ping count 5 restart\n",
                2,
                "`then`",
            ),
            (
                "check host x with address 10.0.0.2\n if failed ping with timeout 1500 ms then restart\n",
                2,
                "`seconds`",
            ),
            ("check process a with pidfile run/a.pid\n", 1, "absolute"),
            (
                "check process a@b with pidfile /run/a.pid\n",
                1,
                "service name",
            ),
            (
                "check process a with pidfile /a\ncheck process A with pidfile /b\n",
                2,
                "conflict",
            ),
            (
                "check process a with pidfile /a\n start program = systemctl\n",
                2,
                "double-quoted",
            ),
            (
                "check process a with pidfile /a\n start program = '/bin/true'\n",
                2,
                "double-quoted",
            ),
            (
                "check process a with pidfile /a\n start program = \"systemctl start a\"\n",
                2,
                "absolute",
            ),
            (
                "check process a with pidfile /a\n start \"/bin/a\"\n start \"/bin/b\"\n",
                3,
                "second",
            ),
            (
                "check process a with pidfile /a\n if failed ping then restart\n",
                2,
                "check host",
            ),
            ("set daemon 0\n", 1, "more than 0"),
            ("set httpd port 2812\n", 1, "set daemon"),
            (
                "check process a with pidfile /a\n start \"/bin/a\n",
                2,
                "unterminated",
            ),
            ("check file a with path /a\n", 1, "`process` or `host`"),
            (
                "check host x with address 10.0.0.2\n if failed ping then\n",
                2,
                "end of file",
            ),
        ] {
            let err = MonitConf::parse(text).unwrap_err();
            assert_eq!(err.line, line, "{text:?}: {err}");
            assert!(err.message.contains(needle), "{text:?}: {err}");
        }
    }

    #[test]
    fn lenient_parsing_skips_and_reports_what_the_subset_lacks() {
        let text = "set daemon 120\n\
            set log /var/log/monit.log\n\
            set httpd port 2812 and\n    use address localhost\n    allow localhost\n\
            include /etc/monit/conf.d/*\n\
            check system $HOST\n    if loadavg (5min) > 2 then alert\n\
            check host ovn0 with address 10.0.0.2\n\
            \x20   start program = \"/usr/bin/systemctl start openvpn@ovn0\"\n\
            \x20   if failed port 22 protocol ssh then restart\n\
            \x20   if failed ping count 3 size 128 then alert else if succeeded then exec \"/bin/true\"\n\
            \x20   if failed icmp type echo count 5 with timeout 15 seconds then restart\n\
            \x20   group vpn\n\
            \x20   depends on ovn0-pid\n\
            check host empty with address 10.0.0.9\n\
            \x20   if failed port 80 then alert\n\
            check process ovn0-pid with pidfile /run/openvpn/ovn0.pid\n\
            \x20   if 5 restarts within 5 cycles then unmonitor\n\
            check process OVN0-PID with pidfile /run/x.pid\n";
        // The strict parser refuses the file at its second statement.
        assert_eq!(MonitConf::parse(text).unwrap_err().line, 2);
        let (conf, skipped) = MonitConf::parse_lenient(text).unwrap();
        assert_eq!(conf.daemon.map(|d| d.interval.get()), Some(120));
        let names: Vec<&str> = conf.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["ovn0", "ovn0-pid"]);
        let ServiceKind::Host { checks, .. } = &conf.services[0].kind else {
            panic!("not a host")
        };
        assert_eq!(checks.len(), 1);
        assert_eq!((checks[0].count, checks[0].timeout), (Some(5), Some(15)));
        assert!(conf.services[0].start.is_some());
        let starts: Vec<(usize, String)> = skipped
            .iter()
            .map(|s| {
                (
                    s.line,
                    s.text.split(' ').take(2).collect::<Vec<_>>().join(" "),
                )
            })
            .collect();
        assert_eq!(
            starts,
            [
                (2, "set log".to_string()),
                (3, "set httpd".into()),
                (6, "include /etc/monit/conf.d/*".into()),
                (7, "check system".into()),
                (11, "if failed".into()),
                (12, "if failed".into()),
                (14, "group vpn".into()),
                (15, "depends on".into()),
                (17, "if failed".into()),
                (16, "check host".into()),
                (19, "if 5".into()),
                (20, "check ...".into()),
            ],
            "{skipped:#?}"
        );
        // The whole `if ... else if ... then exec "..."` went, not just its start.
        assert!(
            skipped[5].text.contains("else if succeeded"),
            "{}",
            skipped[5].text
        );
        assert!(skipped[9].reason.contains("no ICMP test"));
        assert!(skipped[11].reason.contains("conflict"));
        // Only those two would stop the real monit too.
        let refused: Vec<usize> = (0..skipped.len()).filter(|i| skipped[*i].refused).collect();
        assert_eq!(refused, [9, 11]);
        // Tokens that cannot be read still fail.
        assert!(MonitConf::parse_lenient("check host x \"unterminated\n").is_err());
    }

    proptest! {
        #[test]
        fn roundtrip(conf in arb_monit()) {
            prop_assert_eq!(conf.validate(), Ok(()));
            let text = conf.emit();
            prop_assert_eq!(MonitConf::parse(&text), Ok(conf), "{}", text);
        }

        #[test]
        fn parse_never_panics(text in ".*") {
            let _ = MonitConf::parse(&text);
            let _ = MonitConf::parse_lenient(&text);
        }

        #[test]
        fn lenient_parsing_reads_the_subset_like_parse(conf in arb_monit()) {
            prop_assert_eq!(MonitConf::parse_lenient(&conf.emit()), Ok((conf, Vec::new())));
        }

        #[test]
        fn parse_never_panics_bytes(bytes in any::<Vec<u8>>()) {
            let _ = MonitConf::parse(&String::from_utf8_lossy(&bytes));
        }

        #[test]
        fn parse_never_panics_on_mutations(conf in arb_monit(), index in any::<usize>(), c in any::<char>()) {
            let _ = MonitConf::parse(&mutate(&conf.emit(), index, c));
            let _ = MonitConf::parse_lenient(&mutate(&conf.emit(), index, c));
        }
    }
}

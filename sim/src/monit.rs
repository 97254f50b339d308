//! monit, run from a host's control files (read back through render's
//! parser) as the real daemon runs them.
//!
//! # The daemon (monit 5, `src/monit.c`, `validate.c`, `event.c`, `net.c`)
//! - Poll cycle: `set daemon N [with start delay D]` (the last one read
//!   wins). The first cycle starts D seconds after the daemon (at once
//!   without a delay); each cycle checks the services in file order, one
//!   after the other, and the next cycle starts N seconds after the
//!   previous one *ended* (`while (true) { validate(); sleep(polltime); }`),
//!   so slow tests stretch the cycle. Without any `set daemon`, Debian's
//!   shipped monitrc applies: 120 s.
//! - `check host NAME with address ADDR` + `if failed icmp type echo|ping
//!   [count C] [with timeout T seconds] [for N cycles] then ACTION`: C echo
//!   requests (default 3) one after the other, each waiting up to T seconds
//!   (default 5) for a reply; the first reply from ADDR with the daemon's
//!   identifier and a sequence number from 1 to C ends the test with
//!   success (`icmp_echo` in `net.c`: "The 'count' echo requests is send
//!   and we expect at least one reply"). A request the host cannot send (no
//!   route) fails at once and the next one follows. So a dead peer costs
//!   C × T seconds of the cycle: 75 s with reference 004's `count 5 with
//!   timeout 15 seconds`. Requests carry 64 bytes of data (monit's
//!   default size) from the host's own stack, with identifier
//!   [`IDENT_BASE`] + node number (monit uses its pid), through routing,
//!   the firewall and the tunnels like any local traffic.
//! - `check process NAME with pidfile PATH`: running while the process
//!   named by the pidfile runs; if not, monit's implicit `if does not exist
//!   then restart`. The process is the OpenVPN instance of the pidfile
//!   (`/run/openvpn/NAME.pid`, as Debian's `openvpn@.service` writes it),
//!   else the one the start program names.
//! - Events (`Event_post`): a test's results are a bit map of cycles. The
//!   first failure creates the event in the "init" state; the state turns
//!   failed when the last N results (`for N cycles`, default 1) all failed,
//!   and then the action runs — and runs again at every further failed
//!   cycle ("Failed events are handled each time"). A success after a
//!   failure turns it back (and is logged). Failures below the threshold
//!   are only logged.
//! - Actions: `restart` runs the stop program, then the start program
//!   (`control.c`, `_doRestart` without a restart program); `start` runs
//!   the start program; `stop` runs the stop program and stops monitoring
//!   the service; `unmonitor` stops monitoring it; `alert` only logs (there
//!   is no mail server in the simulation).
//! - Programs: `systemctl start|stop|restart UNIT` (also `/usr/bin/`,
//!   `/bin/`) and `service UNIT start|stop|restart` of the units of
//!   Debian's OpenVPN packages: `openvpn@NAME` runs `etc/openvpn/NAME.conf`,
//!   `openvpn-server@NAME` `etc/openvpn/server/NAME.conf`,
//!   `openvpn-client@NAME` `etc/openvpn/client/NAME.conf`. Stopping is
//!   SIGTERM: if the link is up, route-pre-down runs and the bond releases
//!   the slave; the device goes away. Starting builds a fresh process from
//!   the file (new source port, new session), whose route-up script runs
//!   with its real sleep when it connects. Any other program is a warning
//!   in the trace and does nothing.
//!
//! # Not modelled (each a trace line where it matters)
//! - Programs take no time: `systemctl start` of a `Type=notify` unit
//!   returns at once here, where monit would wait for it up to the
//!   program's timeout (30 s by default).
//! - Statements outside render's monit subset (`set httpd`, `check
//!   filesystem`, resource tests, `depends on`, `every`, `mode`, ...) are
//!   skipped with a warning ([`MonitConf::parse_lenient`]). A file the real
//!   monit refuses (a service defined twice, a host without a test, an
//!   unterminated quote) stops the daemon: it does not run at all.

use std::collections::BTreeSet;
use std::net::IpAddr;

use vpnsim_render::monit::{
    Action as MonitAction, Command, Daemon, IcmpCheck, MonitConf, Ping, ServiceKind,
};
use vpnsim_render::wgquick::Host;

use crate::host::Engine;
use crate::load::HostFiles;
use crate::proto::{Action, Model};
use crate::rng::Rng;
use crate::time::{Instant, Span};
use crate::world::{Ev, World};

/// Debian's `/etc/monit/monitrc`: `set daemon 120`.
pub const DEBIAN_POLL: Span = Span::secs(120);
/// monit's ICMP echo data size.
pub const ICMP_SIZE: u32 = 64;
/// monit's echo identifier is its pid; here this plus the node number,
/// clear of the probes' identifiers (1 upwards).
pub const IDENT_BASE: u16 = 0xC000;

/// Results of the last 64 cycles, as monit's `state_map` (bit 0 = latest,
/// 1 = failed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventState {
    Init,
    Failed,
    Succeeded,
}

#[derive(Debug, Clone, Default)]
struct Event {
    /// `None` until the first failure (successes before it are ignored).
    state: Option<EventState>,
    map: u64,
}

impl Event {
    /// Posts one result; `Some(true)`: run the failed action, `Some(false)`:
    /// the test recovered; `None`: nothing to do.
    fn post(&mut self, failed: bool, cycles: u16) -> Option<bool> {
        let state = match self.state {
            None if !failed => return None,
            None => {
                self.map = 1;
                EventState::Init
            }
            Some(s) => {
                self.map = (self.map << 1) | u64::from(failed);
                s
            }
        };
        // _checkState: how many of the last `cycles` results match.
        let window = u32::from(cycles.clamp(1, 64));
        let (need, window) = if failed { (window, window) } else { (1, 1) };
        let matching = (0..window)
            .filter(|i| ((self.map >> i) & 1 == 1) == failed)
            .count() as u32;
        let posted = if failed {
            EventState::Failed
        } else {
            EventState::Succeeded
        };
        // Only a failure can change the initial state.
        let changed = (failed || state != EventState::Init) && matching >= need && posted != state;
        if changed {
            // "Restart state map on state change" (memset to the state).
            self.map = if failed { 0x0101_0101_0101_0101 } else { 0 };
            self.state = Some(posted);
            return Some(failed);
        }
        self.state = Some(state);
        // Recurring failures in the failed state run the action again.
        (failed && state == EventState::Failed).then_some(true)
    }
}

#[derive(Debug, Clone)]
enum Target {
    Addr(IpAddr),
    /// Why the address cannot be pinged (name that does not resolve,
    /// `ping4` to an IPv6 address, ...): the test fails at once.
    Unusable(String),
}

#[derive(Debug, Clone)]
enum Kind {
    Process {
        pidfile: String,
    },
    Host {
        target: Target,
        checks: Vec<IcmpCheck>,
    },
}

#[derive(Debug, Clone)]
struct Svc {
    name: String,
    kind: Kind,
    start: Option<Command>,
    stop: Option<Command>,
    monitored: bool,
    /// One per ICMP test (hosts) or the existence test (processes).
    events: Vec<Event>,
}

/// Where the daemon is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pos {
    /// Sleeping until the next cycle.
    Idle,
    /// About to check test `test` of service `svc`.
    At { svc: usize, test: usize },
    /// Waiting for the reply to request `retry` of a test.
    Waiting {
        svc: usize,
        test: usize,
        retry: u16,
        sent: Instant,
        deadline: Instant,
    },
}

/// What the daemon needs from its host.
pub trait Env {
    /// Sends echo request `seq`; an error is the sendto failure monit sees.
    fn ping(&mut self, target: IpAddr, ident: u16, seq: u16) -> Result<(), String>;
    /// Whether the process of a `check process` runs (`None`: unknown to
    /// the simulator, taken as running).
    fn running(&mut self, pidfile: &str, start: Option<&Command>) -> Option<bool>;
    /// Runs a start or stop program.
    fn run(&mut self, service: &str, program: &Command);
    fn log(&mut self, text: String);
}

/// A host's monit daemon.
#[derive(Debug, Clone)]
pub struct Monit {
    poll: Span,
    start_delay: Span,
    services: Vec<Svc>,
    ident: u16,
    pos: Pos,
    /// Number of the wake-up the daemon waits for (older ones are stale).
    wake: u64,
    /// Said when the daemon starts: what the files hold that is not run.
    notes: Vec<String>,
    /// The daemon refuses its files and does not run.
    refused: Option<String>,
    /// OpenVPN configs whose process monit stopped (path).
    pub(crate) stopped: BTreeSet<String>,
    /// When the queued wake-up fires (to queue it again when the node's
    /// other daemons stop and their timers with them).
    next_at: Option<Instant>,
}

impl Monit {
    /// The daemon of a host from its monit files (`None` without any):
    /// every file read with [`MonitConf::parse_lenient`], `set daemon`
    /// from the last file that has one, the services of all files in
    /// order.
    pub fn from_files(files: &HostFiles, node: usize) -> Option<Monit> {
        if files.monit.is_empty() {
            return None;
        }
        let mut notes = Vec::new();
        let mut refused = None;
        let mut daemon: Option<Daemon> = None;
        let mut confs = Vec::new();
        for (path, text) in &files.monit {
            match MonitConf::parse_lenient(text) {
                Ok((conf, skipped)) => {
                    for s in skipped {
                        if s.refused {
                            refused.get_or_insert(format!("/{path}:{}: {}", s.line, s.reason));
                        } else {
                            notes.push(format!(
                                "/{path}:{}: `{}` is not simulated ({})",
                                s.line, s.text, s.reason
                            ));
                        }
                    }
                    if conf.daemon.is_some() {
                        daemon = conf.daemon;
                    }
                    confs.push(conf);
                }
                Err(e) => {
                    refused.get_or_insert(format!("/{path}:{}: {}", e.line, e.message));
                }
            }
        }
        let mut services: Vec<Svc> = Vec::new();
        for conf in confs {
            for s in conf.services {
                if services
                    .iter()
                    .any(|x| x.name.eq_ignore_ascii_case(s.name.as_str()))
                {
                    refused.get_or_insert(format!(
                        "service name conflict, {} already defined",
                        s.name
                    ));
                    continue;
                }
                for p in [&s.start, &s.stop].into_iter().flatten() {
                    if p.timeout.is_some() {
                        notes.push(format!(
                            "'{}' program `{}`: `with timeout` is not simulated (programs take no time)",
                            s.name,
                            p.command.as_str()
                        ));
                    }
                }
                let kind = match s.kind {
                    ServiceKind::Process { pidfile } => Kind::Process {
                        pidfile: pidfile.as_str().to_string(),
                    },
                    ServiceKind::Host { address, checks } => {
                        let target = target_of(&address, &files.dns);
                        for c in &checks {
                            if c.action == MonitAction::Alert {
                                notes.push(format!(
                                    "'{}': `then alert` only logs (no mail server is simulated)",
                                    s.name
                                ));
                            }
                        }
                        Kind::Host { target, checks }
                    }
                };
                let tests = match &kind {
                    Kind::Process { .. } => 1,
                    Kind::Host { checks, .. } => checks.len(),
                };
                services.push(Svc {
                    name: s.name.as_str().to_string(),
                    kind,
                    start: s.start.map(|p| p.command),
                    stop: s.stop.map(|p| p.command),
                    monitored: true,
                    events: vec![Event::default(); tests],
                });
            }
        }
        let (poll, start_delay) = match daemon {
            Some(d) => (
                Span::secs(u64::from(d.interval.get())),
                Span::secs(u64::from(d.start_delay.unwrap_or(0))),
            ),
            None => {
                notes.push(format!(
                    "no `set daemon` in the files: Debian's monitrc polls every {}",
                    DEBIAN_POLL
                ));
                (DEBIAN_POLL, Span::ZERO)
            }
        };
        Some(Monit {
            poll,
            start_delay,
            services,
            ident: IDENT_BASE.wrapping_add((node & 0x3FFF) as u16),
            pos: Pos::Idle,
            wake: 0,
            notes,
            refused,
            stopped: BTreeSet::new(),
            next_at: None,
        })
    }

    /// The poll cycle.
    pub fn poll(&self) -> Span {
        self.poll
    }

    pub fn start_delay(&self) -> Span {
        self.start_delay
    }

    /// The echo identifier of the daemon's requests.
    pub fn ident(&self) -> u16 {
        self.ident
    }

    /// Service names in check order.
    pub fn services(&self) -> Vec<&str> {
        self.services.iter().map(|s| s.name.as_str()).collect()
    }

    /// The wake-up the daemon waits for.
    pub fn wake(&self) -> u64 {
        self.wake
    }

    /// Starts the daemon: the first cycle after the start delay. Returns
    /// the wake-up to schedule (none when it refuses its files).
    pub fn start(&mut self, now: Instant, env: &mut dyn Env) -> Option<Instant> {
        self.pos = Pos::Idle;
        for s in &mut self.services {
            s.monitored = true;
            s.events.iter_mut().for_each(|e| *e = Event::default());
        }
        for n in &self.notes {
            env.log(format!("warning: {n}"));
        }
        if let Some(why) = &self.refused {
            env.log(format!(
                "{why}: monit refuses its control file and does not run"
            ));
            return None;
        }
        env.log(format!(
            "Starting Monit daemon: {} services, poll every {}{}",
            self.services.len(),
            self.poll,
            if self.start_delay > Span::ZERO {
                format!(", start delay {}", self.start_delay)
            } else {
                String::new()
            }
        ));
        Some(self.wake_at(now + self.start_delay))
    }

    fn wake_at(&mut self, at: Instant) -> Instant {
        self.wake += 1;
        at
    }

    /// The wake-up `wake` fired: a new cycle, or a reply that did not come.
    pub fn on_timer(&mut self, now: Instant, wake: u64, env: &mut dyn Env) -> Option<Instant> {
        if wake != self.wake {
            return None;
        }
        match self.pos {
            Pos::Idle => {
                self.pos = Pos::At { svc: 0, test: 0 };
                self.advance(now, env)
            }
            Pos::Waiting {
                svc,
                test,
                retry,
                deadline,
                ..
            } if now >= deadline => self.next_request(now, svc, test, retry + 1, env),
            _ => None,
        }
    }

    /// An echo reply reached the daemon's socket.
    pub fn on_reply(
        &mut self,
        now: Instant,
        seq: u16,
        from: IpAddr,
        env: &mut dyn Env,
    ) -> Option<Instant> {
        let Pos::Waiting {
            svc, test, sent, ..
        } = self.pos
        else {
            return None;
        };
        let Some(Kind::Host {
            target: Target::Addr(addr),
            checks,
        }) = self.services.get(svc).map(|s| &s.kind)
        else {
            return None;
        };
        let count = checks.get(test).map_or(0, IcmpCheck::effective_count);
        if from != *addr || seq == 0 || seq > count {
            return None;
        }
        let rtt = now.since(sent);
        self.result(svc, test, None, Some(rtt), env);
        self.pos = Pos::At {
            svc,
            test: test + 1,
        };
        self.advance(now, env)
    }

    /// Sends request `retry` of a test, or ends it when all were sent.
    fn next_request(
        &mut self,
        now: Instant,
        svc: usize,
        test: usize,
        mut retry: u16,
        env: &mut dyn Env,
    ) -> Option<Instant> {
        let Some(Kind::Host { target, checks }) = self.services.get(svc).map(|s| s.kind.clone())
        else {
            self.pos = Pos::At {
                svc: svc + 1,
                test: 0,
            };
            return self.advance(now, env);
        };
        let Some(check) = checks.get(test) else {
            self.pos = Pos::At {
                svc: svc + 1,
                test: 0,
            };
            return self.advance(now, env);
        };
        let count = check.effective_count();
        let timeout = Span::secs(u64::from(check.effective_timeout()));
        let mut why = String::new();
        while retry <= count {
            let sent = match &target {
                Target::Addr(a) if family_ok(check.ping, *a) => env.ping(*a, self.ident, retry),
                Target::Addr(a) => Err(format!(
                    "{a} is not an address {} can ping",
                    ping_name(check.ping)
                )),
                Target::Unusable(w) => Err(w.clone()),
            };
            match sent {
                Ok(()) => {
                    let deadline = now + timeout;
                    self.pos = Pos::Waiting {
                        svc,
                        test,
                        retry,
                        sent: now,
                        deadline,
                    };
                    return Some(self.wake_at(deadline));
                }
                Err(e) => {
                    why = e;
                    retry += 1;
                }
            }
        }
        let what = if why.is_empty() {
            format!("no reply to {count} echo requests ({} each)", timeout)
        } else {
            format!("cannot send: {why}")
        };
        self.result(svc, test, Some(what), None, env);
        self.pos = Pos::At {
            svc,
            test: test + 1,
        };
        self.advance(now, env)
    }

    /// Checks services from the current position until a test waits or
    /// the cycle ends; returns the wake-up.
    fn advance(&mut self, now: Instant, env: &mut dyn Env) -> Option<Instant> {
        loop {
            let Pos::At { svc, test } = self.pos else {
                return None;
            };
            let Some(s) = self.services.get(svc).cloned() else {
                // The cycle is over: sleep a poll interval.
                self.pos = Pos::Idle;
                return Some(self.wake_at(now + self.poll));
            };
            if !s.monitored {
                self.pos = Pos::At {
                    svc: svc + 1,
                    test: 0,
                };
                continue;
            }
            match &s.kind {
                Kind::Process { pidfile } => {
                    let running = env.running(pidfile, s.start.as_ref()).unwrap_or(true);
                    let what = (!running).then(|| "process is not running".to_string());
                    self.result(svc, 0, what, None, env);
                    self.pos = Pos::At {
                        svc: svc + 1,
                        test: 0,
                    };
                }
                Kind::Host { checks, .. } => {
                    if test >= checks.len() {
                        self.pos = Pos::At {
                            svc: svc + 1,
                            test: 0,
                        };
                        continue;
                    }
                    return self.next_request(now, svc, test, 1, env);
                }
            }
        }
    }

    /// Posts a test's result (`failure`: why it failed) and runs what the
    /// event asks for.
    fn result(
        &mut self,
        svc: usize,
        test: usize,
        failure: Option<String>,
        rtt: Option<Span>,
        env: &mut dyn Env,
    ) {
        let Some(s) = self.services.get_mut(svc) else {
            return;
        };
        let (cycles, action, label) = match &s.kind {
            Kind::Process { .. } => (1, MonitAction::Restart, "process".to_string()),
            Kind::Host { checks, .. } => match checks.get(test) {
                Some(c) => (
                    c.cycles.map_or(1, |n| n.get()),
                    c.action,
                    format!("{} test", ping_name(c.ping)),
                ),
                None => return,
            },
        };
        let Some(event) = s.events.get_mut(test) else {
            return;
        };
        let name = s.name.clone();
        let outcome = event.post(failure.is_some(), cycles);
        match (&failure, outcome) {
            (Some(why), Some(true)) => {
                env.log(format!("'{name}' {label} failed: {why}"));
                self.act(svc, action, env);
            }
            (Some(why), None) => env.log(format!(
                "'{name}' {label} failed: {why} (failed {} of the {cycles} cycles needed)",
                event_failures(event, cycles)
            )),
            (None, Some(false)) => env.log(format!(
                "'{name}' {label} succeeded{}",
                rtt.map_or(String::new(), |r| format!(" [response time {r}]"))
            )),
            _ => {}
        }
    }

    /// Runs a failed test's action.
    fn act(&mut self, svc: usize, action: MonitAction, env: &mut dyn Env) {
        let Some(s) = self.services.get_mut(svc) else {
            return;
        };
        let name = s.name.clone();
        match action {
            MonitAction::Alert => env.log(format!("'{name}' alert (no mail server simulated)")),
            MonitAction::Restart => {
                env.log(format!("'{name}' trying to restart"));
                if s.start.is_none() && s.stop.is_none() {
                    env.log(format!("'{name}' restart skipped -- method not defined"));
                }
                if let Some(p) = s.stop.clone() {
                    env.log(format!("'{name}' stop: '{}'", p.as_str()));
                    env.run(&name, &p);
                }
                if let Some(p) = s.start.clone() {
                    env.log(format!("'{name}' start: '{}'", p.as_str()));
                    env.run(&name, &p);
                }
            }
            MonitAction::Start => match s.start.clone() {
                Some(p) => {
                    env.log(format!("'{name}' start: '{}'", p.as_str()));
                    env.run(&name, &p);
                }
                None => env.log(format!("'{name}' start skipped -- method not defined")),
            },
            MonitAction::Stop => {
                s.monitored = false;
                match s.stop.clone() {
                    Some(p) => {
                        env.log(format!("'{name}' stop: '{}'", p.as_str()));
                        env.run(&name, &p);
                    }
                    None => env.log(format!("'{name}' stop skipped -- method not defined")),
                }
                env.log(format!("'{name}' monitoring disabled"));
            }
            MonitAction::Unmonitor => {
                s.monitored = false;
                env.log(format!("'{name}' unmonitor: monitoring disabled"));
            }
        }
    }
}

/// Failures among the last `cycles` results.
fn event_failures(e: &Event, cycles: u16) -> u32 {
    let window = u32::from(cycles.clamp(1, 64));
    (0..window).filter(|i| (e.map >> i) & 1 == 1).count() as u32
}

fn ping_name(p: Ping) -> &'static str {
    match p {
        Ping::IcmpEcho => "icmp",
        Ping::Ping => "ping",
        Ping::Ping4 => "ping4",
        Ping::Ping6 => "ping6",
    }
}

fn family_ok(p: Ping, a: IpAddr) -> bool {
    match p {
        Ping::Ping4 => a.is_ipv4(),
        Ping::Ping6 => a.is_ipv6(),
        Ping::IcmpEcho | Ping::Ping => true,
    }
}

fn target_of(address: &Host, dns: &std::collections::BTreeMap<String, Vec<IpAddr>>) -> Target {
    match address {
        Host::Ip(ip) => Target::Addr(*ip),
        Host::Name(name) => match crate::tunnels::resolve(dns, name.as_str()) {
            Some(ip) => Target::Addr(ip),
            None => Target::Unusable(format!("{name}: getaddrinfo failed")),
        },
    }
}

// ---------------------------------------------------------------------------
// The engine's side
// ---------------------------------------------------------------------------

/// The daemon's host, while it runs: the node's stack for pings (sent
/// when the daemon is back in its node, so a reply cannot miss it), its
/// OpenVPN processes for programs.
struct Glue<'a> {
    w: &'a mut World,
    node: usize,
    host: String,
    stopped: BTreeSet<String>,
    pinged: bool,
}

impl Env for Glue<'_> {
    fn ping(&mut self, target: IpAddr, ident: u16, seq: u16) -> Result<(), String> {
        if self.w.route_source(self.node, target).is_none() {
            return Err(format!("{target}: Network is unreachable"));
        }
        let stack = self
            .w
            .stack(self.node)
            .ok_or_else(|| "the host is down".to_string())?;
        stack.daemon_ping(ident, seq, target, ICMP_SIZE)?;
        self.pinged = true;
        Ok(())
    }

    fn running(&mut self, pidfile: &str, start: Option<&Command>) -> Option<bool> {
        let files = self.w.files.get(&self.node)?;
        // Debian's openvpn@.service: --writepid /run/openvpn/%i.pid.
        let by_pidfile = pidfile
            .strip_prefix("/run/openvpn/")
            .and_then(|n| n.strip_suffix(".pid"))
            .map(|n| format!("etc/openvpn/{n}.conf"))
            .filter(|p| files.openvpn.contains_key(p));
        let path = by_pidfile.or_else(|| {
            let cmd = start?;
            let (_, unit) = systemd_verb(cmd)?;
            unit_config(files, &unit)
        })?;
        if self.stopped.contains(&path) {
            return Some(false);
        }
        Some(openvpn_tunnel(self.w, self.node, &path).is_some())
    }

    fn run(&mut self, service: &str, program: &Command) {
        let Some((verb, unit)) = systemd_verb(program) else {
            return self.log(format!(
                "warning: '{service}' program `{}` is not simulated (only systemctl / service \
                 of OpenVPN units are); it does nothing",
                program.as_str()
            ));
        };
        let Some(path) = self
            .w
            .files
            .get(&self.node)
            .and_then(|f| unit_config(f, &unit))
        else {
            return self.log(format!(
                "warning: '{service}' `{}`: {unit} is not an OpenVPN unit of this host; nothing happens",
                program.as_str()
            ));
        };
        let stop = matches!(verb.as_str(), "stop" | "restart");
        let start = matches!(verb.as_str(), "start" | "restart");
        if stop {
            self.stop_openvpn(&unit, &path);
        }
        if start {
            self.start_openvpn(&unit, &path);
        }
    }

    fn log(&mut self, text: String) {
        self.w.log(format!("{}: monit: {text}", self.host));
    }
}

impl Glue<'_> {
    /// SIGTERM to the OpenVPN process of `path`: route-pre-down if its link
    /// is up (the bond releases the slave), then the process and its device
    /// are gone.
    fn stop_openvpn(&mut self, unit: &str, path: &str) {
        if self.stopped.contains(path) {
            return self.log(format!("{unit} is not running"));
        }
        let Some(t) = openvpn_tunnel(self.w, self.node, path) else {
            return self.log(format!("{unit} is not running (no OpenVPN process)"));
        };
        let node = self.node;
        let (up, script) = match self.w.nodes[node].tunnels.get(t).map(|x| &x.engine) {
            Some(Engine::OpenVpnClient(c)) => (
                c.connected_to().is_some(),
                c.scripts().route_pre_down.clone(),
            ),
            Some(Engine::OpenVpnServer(s)) => {
                (!s.clients().is_empty(), s.scripts().route_pre_down.clone())
            }
            _ => (false, None),
        };
        let mut actions = vec![Action::Log(
            "SIGTERM[hard,] received, process exiting".to_string(),
        )];
        if up {
            if let Some(s) = script {
                actions.push(Action::Log(format!("route-pre-down: {s}")));
            }
            actions.push(Action::LinkState { up: false });
        }
        self.w.apply(node, t, actions);
        self.w.forget_timers(node, t);
        if let Some(tunnel) = self.w.nodes[node].tunnels.get_mut(t) {
            tunnel.engine = Engine::Other(Box::new(Stopped));
            tunnel.ports.clear();
        }
        self.stopped.insert(path.to_string());
    }

    /// Starts a fresh OpenVPN process from the config at `path`.
    fn start_openvpn(&mut self, unit: &str, path: &str) {
        let node = self.node;
        let Some(t) = openvpn_tunnel(self.w, node, path) else {
            return self.log(format!(
                "warning: cannot start {unit}: the host's OpenVPN devices are gone (its daemons \
                 were stopped); only a timeline `start` brings them back"
            ));
        };
        if !self.stopped.contains(path) {
            return self.log(format!("{unit} is already running"));
        }
        let Some(files) = self.w.files.get(&node).cloned() else {
            return;
        };
        let engine = match crate::load::openvpn_process(self.w, node, &files, path) {
            Ok(Some((_, engine))) => engine,
            Ok(None) => {
                return self.log(format!(
                    "warning: {unit}: /{path} is not a config the simulator runs"
                ));
            }
            Err(e) => return self.log(format!("{unit} fails to start: {e}")),
        };
        self.stopped.remove(path);
        let now = self.w.now();
        let actions = {
            let World { nodes, rng, .. } = &mut *self.w;
            match nodes[node].tunnels.get_mut(t) {
                Some(tunnel) => {
                    tunnel.engine = engine;
                    tunnel.ports.clear();
                    tunnel
                        .model()
                        .map(|m| m.start(now, rng))
                        .unwrap_or_default()
                }
                None => Vec::new(),
            }
        };
        self.w.apply(node, t, actions);
    }
}

/// A stopped OpenVPN process: no socket, no device, nothing to do.
struct Stopped;

impl Model for Stopped {
    fn send(&mut self, _: Instant, _: &mut Rng, packet: crate::packet::Packet) -> Vec<Action> {
        vec![Action::Drop {
            packet: Box::new(packet),
            reason: "the OpenVPN process is stopped".into(),
        }]
    }
    fn receive(&mut self, _: Instant, _: &mut Rng, _: crate::packet::Packet) -> Vec<Action> {
        Vec::new()
    }
    fn on_timer(&mut self, _: Instant, _: &mut Rng, _: u64) -> Vec<Action> {
        Vec::new()
    }
    fn start(&mut self, _: Instant, _: &mut Rng) -> Vec<Action> {
        Vec::new()
    }
}

/// `systemctl VERB UNIT` or `service UNIT VERB` (verb start, stop or
/// restart): the verb and the unit without `.service`.
fn systemd_verb(program: &Command) -> Option<(String, String)> {
    let argv = program.argv();
    let base = |p: &str| p.rsplit('/').next().unwrap_or(p).to_string();
    let (verb, unit) = match argv.as_slice() {
        [prog, verb, unit] if base(prog) == "systemctl" => (*verb, *unit),
        [prog, unit, verb] if base(prog) == "service" => (*verb, *unit),
        _ => return None,
    };
    if !matches!(verb, "start" | "stop" | "restart") {
        return None;
    }
    Some((
        verb.to_string(),
        unit.strip_suffix(".service").unwrap_or(unit).to_string(),
    ))
}

/// The config an OpenVPN unit runs (Debian's `openvpn@`,
/// `openvpn-server@`, `openvpn-client@` templates), if the host has it.
fn unit_config(files: &HostFiles, unit: &str) -> Option<String> {
    let (template, name) = unit.split_once('@')?;
    let dir = match template {
        "openvpn" => "etc/openvpn/",
        "openvpn-server" => "etc/openvpn/server/",
        "openvpn-client" => "etc/openvpn/client/",
        _ => return None,
    };
    let path = format!("{dir}{name}.conf");
    files.openvpn.contains_key(&path).then_some(path)
}

/// The tunnel of the node whose device the config at `path` opens.
fn openvpn_tunnel(w: &World, node: usize, path: &str) -> Option<usize> {
    use vpnsim_render::Format;
    let text = w.files.get(&node)?.openvpn.get(path)?;
    let cfg = vpnsim_render::openvpn::Config::parse(text).ok()?;
    let dev = crate::load::openvpn_dev(&cfg);
    let n = w.nodes.get(node)?;
    n.tunnels.iter().position(|t| {
        n.ifaces.get(t.iface).is_some_and(|i| i.name == dev)
            && (t.kind == crate::load::KIND_TAP || t.kind == "openvpn")
    })
}

/// Runs the daemon of `node` with the world as its host, then queues its
/// wake-up and flushes the pings it sent.
fn with_daemon(
    w: &mut World,
    node: usize,
    f: impl FnOnce(&mut Monit, Instant, &mut dyn Env) -> Option<Instant>,
) {
    let Some(mut monit) = w.nodes.get_mut(node).and_then(|n| n.monit.take()) else {
        return;
    };
    let now = w.now();
    let host = w.nodes[node].name.clone();
    let stopped = std::mem::take(&mut monit.stopped);
    let mut glue = Glue {
        w,
        node,
        host,
        stopped,
        pinged: false,
    };
    let wake = f(&mut monit, now, &mut glue);
    monit.stopped = std::mem::take(&mut glue.stopped);
    let pinged = glue.pinged;
    let epoch = w.nodes[node].epoch;
    if let Some(at) = wake {
        monit.next_at = Some(at);
        w.q.schedule(
            at,
            Ev::Monit {
                node,
                epoch,
                wake: monit.wake(),
            },
        );
    }
    if let Some(n) = w.nodes.get_mut(node) {
        n.monit = Some(monit);
    }
    if pinged {
        w.poll_stack(node);
    }
}

/// Starts the node's daemon (boot, or its files read again).
pub fn start(w: &mut World, node: usize) {
    if !w.nodes.get(node).is_some_and(|n| n.up) {
        return;
    }
    with_daemon(w, node, |m, now, env| m.start(now, env));
}

/// Queues the daemon's pending wake-up again after the node's timers were
/// invalidated without the daemon stopping (the timeline's `stop` of the
/// VPN daemons: monit keeps running, and finds their processes gone).
pub fn resume(w: &mut World, node: usize) {
    let now = w.now();
    let Some(n) = w.nodes.get(node).filter(|n| n.up) else {
        return;
    };
    let epoch = n.epoch;
    let Some((at, wake)) = n
        .monit
        .as_ref()
        .and_then(|m| Some((m.next_at?.max(now), m.wake())))
    else {
        return;
    };
    w.q.schedule(at, Ev::Monit { node, epoch, wake });
}

/// A daemon's wake-up fired.
pub fn on_timer(w: &mut World, node: usize, epoch: u64, wake: u64) {
    if !w.nodes.get(node).is_some_and(|n| n.up && n.epoch == epoch) {
        return;
    }
    with_daemon(w, node, |m, now, env| m.on_timer(now, wake, env));
}

/// An echo reply for identifier `ident` reached the node's stack.
pub fn on_echo_reply(w: &mut World, node: usize, ident: u16, seq: u16, from: IpAddr) {
    let ours = w
        .nodes
        .get(node)
        .and_then(|n| n.monit.as_ref())
        .is_some_and(|m| m.ident() == ident);
    if !ours {
        return;
    }
    with_daemon(w, node, |m, now, env| m.on_reply(now, seq, from, env));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A host for the daemon: pings to `up` addresses are answered after
    /// 20 ms, the others never; processes in `stopped` are not running.
    #[derive(Default)]
    struct Fake {
        up: BTreeSet<IpAddr>,
        unreachable: bool,
        pings: Vec<(u16, IpAddr)>,
        runs: Vec<String>,
        logs: Vec<String>,
        stopped: bool,
    }

    impl Env for Fake {
        fn ping(&mut self, target: IpAddr, _: u16, seq: u16) -> Result<(), String> {
            if self.unreachable {
                return Err("Network is unreachable".into());
            }
            self.pings.push((seq, target));
            Ok(())
        }
        fn running(&mut self, _: &str, _: Option<&Command>) -> Option<bool> {
            Some(!self.stopped)
        }
        fn run(&mut self, _: &str, program: &Command) {
            self.runs.push(program.as_str().to_string());
            if program.as_str().contains(" start ") {
                self.stopped = false;
            }
        }
        fn log(&mut self, text: String) {
            self.logs.push(text);
        }
    }

    const PEER: &str = "10.0.0.2";

    fn peer() -> IpAddr {
        PEER.parse().unwrap_or_else(|e| panic!("{e}"))
    }

    fn daemon(text: &str) -> Monit {
        let files = HostFiles {
            host: "a".into(),
            monit: vec![("etc/monit/conf.d/ovn0".into(), text.into())],
            ..HostFiles::default()
        };
        Monit::from_files(&files, 0).unwrap_or_else(|| panic!("no daemon"))
    }

    /// Reference 004's file for ovn0 with a poll cycle.
    fn reference(extra: &str) -> String {
        format!(
            "set daemon 30\n\
             check process ovn0-pid with pidfile /run/openvpn/ovn0.pid\n\
             \x20   start program = \"/usr/bin/systemctl start openvpn@ovn0\"\n\
             \x20   stop program = \"/usr/bin/systemctl stop openvpn@ovn0\"\n\
             check host ovn0 with address {PEER}\n\
             \x20   start program = \"/usr/bin/systemctl start openvpn@ovn0\"\n\
             \x20   stop program = \"/usr/bin/systemctl stop openvpn@ovn0\"\n\
             \x20   if failed icmp type echo count 5 with timeout 15 seconds {extra}then restart\n"
        )
    }

    /// Runs the daemon until `end`, answering pings of `env.up` after
    /// 20 ms; `change` may alter the host at a time (e.g. the peer dies).
    fn drive(m: &mut Monit, env: &mut Fake, end: Instant, change: &dyn Fn(Instant, &mut Fake)) {
        let mut wake = m.start(Instant::START, env);
        let mut reply: Option<(Instant, u16)> = None;
        loop {
            let next = match (wake, reply) {
                (Some(w), Some((r, _))) if r <= w => Some((r, true)),
                (Some(w), _) => Some((w, false)),
                (None, Some((r, _))) => Some((r, true)),
                (None, None) => None,
            };
            let Some((t, is_reply)) = next else { break };
            if t > end {
                break;
            }
            change(t, env);
            let sent = env.pings.len();
            let out = if is_reply {
                let seq = reply.map_or(0, |r| r.1);
                reply = None;
                m.on_reply(t, seq, peer(), env)
            } else {
                m.on_timer(t, m.wake(), env)
            };
            if out.is_some() {
                wake = out;
            } else if !is_reply {
                wake = None;
            }
            if env.pings.len() > sent
                && let Some((seq, to)) = env.pings.last().copied()
                && env.up.contains(&to)
            {
                reply = Some((t + Span::millis(20), seq));
            }
        }
    }

    fn at(s: u64) -> Instant {
        Instant(Span::secs(s).0)
    }

    fn log_times(env: &Fake, needle: &str) -> usize {
        env.logs.iter().filter(|l| l.contains(needle)).count()
    }

    #[test]
    fn the_daemon_reads_the_poll_cycle_and_the_services_in_order() {
        let m = daemon(&reference(""));
        assert_eq!(m.poll(), Span::secs(30));
        assert_eq!(m.start_delay(), Span::ZERO);
        assert_eq!(m.services(), ["ovn0-pid", "ovn0"]);
        let m = daemon("set daemon 60 with start delay 240\nset daemon 10\n");
        assert_eq!((m.poll(), m.start_delay()), (Span::secs(10), Span::ZERO));
        let mut m = daemon("check process p with pidfile /run/p.pid\n");
        assert_eq!(m.poll(), DEBIAN_POLL);
        let mut env = Fake::default();
        assert_eq!(m.start(Instant::START, &mut env), Some(Instant::START));
        assert!(
            env.logs
                .iter()
                .any(|l| l.contains("Debian's monitrc polls every 120"))
        );
    }

    #[test]
    fn a_dead_peer_costs_count_times_timeout_and_is_restarted_at_the_first_failed_cycle() {
        let mut m = daemon(&reference(""));
        let mut env = Fake::default();
        env.up.insert(peer());
        // The peer dies at 100 s.
        drive(&mut m, &mut env, at(310), &|t, e| {
            if t >= at(100) {
                e.up.clear();
            }
        });
        // Cycles: 0 s, 30.02 s, 60.04 s, 90.06 s (answered each time), then
        // 120.08 s: five requests 15 s apart, no reply: failed at 195.08 s.
        let failed: Vec<&String> = env
            .logs
            .iter()
            .filter(|l| l.contains("'ovn0' icmp test failed"))
            .collect();
        assert!(!failed.is_empty(), "{:#?}", env.logs);
        assert!(failed[0].contains("no reply to 5 echo requests (15.000s each)"));
        let seqs: Vec<u16> = env.pings.iter().map(|(s, _)| *s).collect();
        assert_eq!(&seqs[..4], [1, 1, 1, 1], "one request per answered cycle");
        assert_eq!(&seqs[4..9], [1, 2, 3, 4, 5]);
        // restart = the stop program, then the start program.
        assert_eq!(
            &env.runs[..2],
            [
                "/usr/bin/systemctl stop openvpn@ovn0",
                "/usr/bin/systemctl start openvpn@ovn0"
            ]
        );
        // "Failed events are handled each time": the next failed cycle
        // (30 s of sleep + 75 s of test later, at 300.08 s) restarts again.
        assert_eq!(env.runs.len(), 4, "{:#?}", env.logs);
        assert_eq!(log_times(&env, "trying to restart"), 2);
    }

    #[test]
    fn for_n_cycles_waits_for_n_failed_cycles_in_a_row() {
        let mut m = daemon(&reference("for 3 cycles "));
        let mut env = Fake::default();
        drive(&mut m, &mut env, at(300), &|_, _| {});
        // Each cycle is a 75 s test and a 30 s sleep: failures at 75, 180,
        // 285 s; the third triggers the restart.
        assert_eq!(log_times(&env, "(failed 1 of the 3 cycles needed)"), 1);
        assert_eq!(log_times(&env, "(failed 2 of the 3 cycles needed)"), 1);
        assert_eq!(log_times(&env, "trying to restart"), 1, "{:#?}", env.logs);
        // A success in between starts the count again: the peer answers
        // only in [100 s, 110 s), so cycle 2 (at 105 s) succeeds; cycles 1
        // (fails at 75 s), 3 (at 210 s) and 4 (at 315 s) fail, and only
        // the fourth completes two failures in a row.
        let flaky = |t: Instant, e: &mut Fake| {
            if t >= at(100) && t < at(110) {
                e.up.insert(peer());
            } else {
                e.up.clear();
            }
        };
        for (end, restarts) in [(at(314), 0), (at(316), 1)] {
            let mut m = daemon(&reference("for 2 cycles "));
            let mut env = Fake::default();
            drive(&mut m, &mut env, end, &flaky);
            assert_eq!(
                log_times(&env, "trying to restart"),
                restarts,
                "{end}: {:#?}",
                env.logs
            );
        }
    }

    #[test]
    fn an_unreachable_address_fails_at_once_and_the_start_delay_holds_the_first_cycle() {
        let mut m = daemon(&format!(
            "set daemon 30 with start delay 240\n{}",
            reference("").replace("set daemon 30\n", "")
        ));
        let mut env = Fake {
            unreachable: true,
            ..Fake::default()
        };
        let first = m.start(Instant::START, &mut env);
        assert_eq!(first, Some(at(240)));
        let _ = m.on_timer(at(240), m.wake(), &mut env);
        assert!(env.pings.is_empty());
        assert!(
            env.logs
                .iter()
                .any(|l| l.contains("cannot send: Network is unreachable")),
            "{:#?}",
            env.logs
        );
        assert_eq!(log_times(&env, "trying to restart"), 1);
    }

    #[test]
    fn a_stopped_process_is_restarted_by_its_check() {
        let mut m = daemon(&reference(""));
        let mut env = Fake {
            stopped: true,
            ..Fake::default()
        };
        env.up.insert(peer());
        let _ = m.start(Instant::START, &mut env);
        let _ = m.on_timer(Instant::START, m.wake(), &mut env);
        assert!(
            env.logs
                .iter()
                .any(|l| l.contains("'ovn0-pid' process failed"))
        );
        assert_eq!(
            env.runs.last().map(String::as_str),
            Some("/usr/bin/systemctl start openvpn@ovn0")
        );
        assert!(!env.stopped);
    }

    #[test]
    fn directives_outside_the_subset_are_warnings_and_a_refused_file_stops_the_daemon() {
        let text = format!(
            "set httpd port 2812 and allow localhost\n{}\
             check filesystem root with path /\n    if space usage > 90% then alert\n",
            reference("")
        );
        let mut m = daemon(&text);
        let mut env = Fake::default();
        assert!(m.start(Instant::START, &mut env).is_some());
        let warnings: Vec<&String> = env
            .logs
            .iter()
            .filter(|l| l.starts_with("warning"))
            .collect();
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(warnings[0].contains(
            "/etc/monit/conf.d/ovn0:1: `set httpd port 2812 and allow localhost` is not simulated"
        ));
        assert!(warnings[1].contains("check filesystem root"));
        // A second service of the same name: the real monit refuses to start.
        let mut m = daemon(&format!("{}{}", reference(""), reference("")));
        let mut env = Fake::default();
        assert_eq!(m.start(Instant::START, &mut env), None);
        assert!(
            env.logs.iter().any(|l| l.contains("does not run")),
            "{:#?}",
            env.logs
        );
    }

    #[test]
    fn only_systemctl_and_service_of_openvpn_units_are_understood() {
        let cmd = |c: &str| Command::new(c).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            systemd_verb(&cmd("/usr/bin/systemctl restart openvpn@ovn0.service")),
            Some(("restart".into(), "openvpn@ovn0".into()))
        );
        assert_eq!(
            systemd_verb(&cmd("/usr/sbin/service openvpn-client@x stop")),
            Some(("stop".into(), "openvpn-client@x".into()))
        );
        assert_eq!(
            systemd_verb(&cmd("/usr/bin/systemctl reload openvpn@a")),
            None
        );
        assert_eq!(systemd_verb(&cmd("/etc/init.d/openvpn restart")), None);
        let files = HostFiles {
            openvpn: [
                ("etc/openvpn/ovn0.conf".to_string(), String::new()),
                ("etc/openvpn/server/s.conf".to_string(), String::new()),
            ]
            .into_iter()
            .collect(),
            ..HostFiles::default()
        };
        assert_eq!(
            unit_config(&files, "openvpn@ovn0").as_deref(),
            Some("etc/openvpn/ovn0.conf")
        );
        assert_eq!(
            unit_config(&files, "openvpn-server@s").as_deref(),
            Some("etc/openvpn/server/s.conf")
        );
        assert_eq!(unit_config(&files, "openvpn@nope"), None);
        assert_eq!(unit_config(&files, "nginx"), None);
    }
}

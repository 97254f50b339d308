//! What the simulation of `sim run` measured, as a stable JSON document and
//! as terminal text: one line per expectation with its verdict and the
//! probe evidence (last success, first failure, recovery time), the
//! reachability the probes measured in the steady state, the probes and
//! bulk transfers with every figure, the timeline as it ran and the drop
//! counters; and, for `--seeds N`, the distribution of every measured time
//! over the runs ([`SweepReport`]).
//!
//! Times are seconds of virtual time since the start of the run, printed
//! with microsecond precision, and every fractional figure is a decimal
//! string computed from integers, so equal runs give equal bytes and JSON
//! numbers never depend on float formatting.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use vpnsim_sim::probe::{ProbeKind, Sample};
use vpnsim_sim::run::{ExpectKind, ProbeResult, RunOptions, RunResult, Status, TransferResult};
use vpnsim_sim::time::{Instant, Span};
use vpnsim_sim::world::SessionChange;

use crate::table::{Align, Table};

/// Seconds with microsecond precision, as text (`12.345678`), so JSON
/// numbers never depend on float formatting.
fn secs(at: Instant) -> String {
    format!(
        "{}.{:06}",
        at.0 / 1_000_000_000,
        (at.0 % 1_000_000_000) / 1_000
    )
}

/// Milliseconds with microsecond precision (`51052.493`).
fn span_ms(span: Span) -> String {
    format!("{}.{:03}", span.0 / 1_000_000, (span.0 % 1_000_000) / 1_000)
}

/// Hundredths as a decimal (`801` → `8.01`).
fn hundredths(n: u64) -> String {
    format!("{}.{:02}", n / 100, n % 100)
}

/// Loss in hundredths of a percent, rounded half up; `None` when nothing
/// was sent.
fn loss_hundredths(sent: u32, answered: u32) -> Option<u64> {
    let sent = u64::from(sent);
    let lost = sent.saturating_sub(u64::from(answered));
    (sent > 0).then(|| (lost * 10_000 + sent / 2) / sent)
}

/// Bits per second as Mbit/s with two decimals (`15390000` → `15.39`).
fn mbit(bps: u64) -> String {
    hundredths(bps.saturating_add(5_000) / 10_000)
}

/// A stretch of virtual time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Window {
    pub start_s: String,
    pub end_s: String,
}

impl Window {
    fn of((start, end): (Instant, Instant)) -> Self {
        Window {
            start_s: secs(start),
            end_s: secs(end),
        }
    }
}

/// The simulation part of the `sim run` report.
#[derive(Debug, Clone, Serialize)]
pub struct SimulationReport {
    pub seed: u64,
    /// Virtual seconds simulated.
    pub duration_s: String,
    pub events_processed: u64,
    pub passed: usize,
    pub failed: usize,
    pub not_measured: usize,
    /// From the end of the warm-up to the first timeline event: where
    /// `reach` is judged and the steady-state counts of probes are taken.
    pub steady_state: Window,
    pub expectations: Vec<ExpectationLine>,
    pub probes: Vec<ProbeLine>,
    /// One per `expect.throughput`, in order.
    pub transfers: Vec<TransferLine>,
    pub timeline: Vec<TimelineLine>,
    /// Every tunnel session from its start to its end, by host, tunnel and
    /// start time: where each client connected, when an SA or a bond slave
    /// went and came back.
    pub sessions: Vec<SessionLine>,
    pub drops: BTreeMap<String, u64>,
}

/// One tunnel session of one host with one peer, from up to down.
#[derive(Debug, Clone, Serialize)]
pub struct SessionLine {
    pub host: String,
    /// Interface (`tun0`, `wg0`, `bond0`) or `ipsec`.
    pub tunnel: String,
    /// The peer as the daemon names it: an address and port, a WireGuard
    /// key's start, an IPsec conn, a bond slave, a PeerVPN node id.
    pub peer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_addr: Option<String>,
    /// The scenario host behind `peer_addr`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_host: Option<String>,
    pub up_s: String,
    pub up_why: String,
    /// Absent: still up when the run ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_s: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub down_why: Option<String>,
}

/// A peer with the host behind it: `node-a 145.0.6.72:1194` for an
/// address, `peer AbCd1234 (node3)` for a name, `ovn0` alone.
fn peer_text(peer: &str, host: Option<&str>) -> String {
    match host {
        Some(h) if peer.parse::<std::net::SocketAddr>().is_ok() => format!("{h} {peer}"),
        Some(h) => format!("{peer} ({h})"),
        None => peer.to_string(),
    }
}

/// One change of a session, as the timeline lists it under the event
/// that preceded it.
#[derive(Debug, Clone, Serialize)]
pub struct SessionChangeLine {
    pub at_s: String,
    pub host: String,
    pub tunnel: String,
    pub peer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peer_host: Option<String>,
    /// `up` or `down`.
    pub change: &'static str,
    pub why: String,
}

impl SessionChangeLine {
    fn of(c: &SessionChange) -> Self {
        SessionChangeLine {
            at_s: secs(c.at),
            host: c.host.clone(),
            tunnel: c.tunnel.clone(),
            peer: c.peer.clone(),
            peer_host: c.peer_host.clone(),
            change: if c.up { "up" } else { "down" },
            why: c.why.clone(),
        }
    }

    fn text(&self) -> String {
        let peer = peer_text(&self.peer, self.peer_host.as_deref());
        format!(
            "{} s {} {} {peer} {}: {}",
            self.at_s, self.host, self.tunnel, self.change, self.why
        )
    }
}

/// The sessions of a run as intervals: each `up` opens one (closing the
/// open one of the same host, tunnel and peer, which moved), each `down`
/// closes it.
fn session_lines(changes: &[SessionChange]) -> Vec<SessionLine> {
    // Each with the instant it came up, to sort by.
    let mut done: Vec<(Instant, SessionLine)> = Vec::new();
    let mut open: BTreeMap<(&str, &str, &str), (Instant, SessionLine)> = BTreeMap::new();
    for c in changes {
        let key = (c.host.as_str(), c.tunnel.as_str(), c.peer.as_str());
        if let Some((since, mut line)) = open.remove(&key) {
            line.down_s = Some(secs(c.at));
            line.down_why = Some(if c.up {
                format!(
                    "moved to {}",
                    c.addr.map_or_else(|| "?".to_string(), |a| a.to_string())
                )
            } else {
                c.why.clone()
            });
            done.push((since, line));
        }
        if c.up {
            open.insert(
                key,
                (
                    c.at,
                    SessionLine {
                        host: c.host.clone(),
                        tunnel: c.tunnel.clone(),
                        peer: c.peer.clone(),
                        peer_addr: c.addr.map(|a| a.to_string()),
                        peer_host: c.peer_host.clone(),
                        up_s: secs(c.at),
                        up_why: c.why.clone(),
                        down_s: None,
                        down_why: None,
                    },
                ),
            );
        }
    }
    done.extend(open.into_values());
    done.sort_by(|(at_a, a), (at_b, b)| {
        (&a.host, &a.tunnel, at_a, &a.peer).cmp(&(&b.host, &b.tunnel, at_b, &b.peer))
    });
    done.into_iter().map(|(_, line)| line).collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct ExpectationLine {
    /// `reach`, `isolated`, `recover`, `throughput`, `stream`.
    pub kind: &'static str,
    /// Position in the scenario: `expect.reach[0]`.
    pub field: String,
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// `pass`, `fail`, `not-measured`.
    pub status: &'static str,
    pub detail: String,
    /// The samples judged: sent in [start, end).
    pub window: Window,
    pub sent: u32,
    pub answered: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_success_s: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure_s: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_ms: Option<String>,
    /// Index into `probes` of the probe that measured it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub probe: Option<usize>,
    /// Index into `transfers` (throughput expectations).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transfer: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeLine {
    pub from: String,
    pub to: String,
    /// The overlay whose address of `to` is probed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    pub target: String,
    /// `icmp` (echo), `tcp` (connect: SYN answered by SYN-ACK), `udp`
    /// (datagram delivered) or `stream` (a UDP stream's datagrams, each
    /// "answered" when it arrives: the `rtt_*` figures are one-way delays).
    pub kind: &'static str,
    /// Destination port of a TCP or UDP probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Payload bytes of an ICMP echo or of a stream's datagrams.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_bytes: Option<u32>,
    /// Over the whole run.
    pub sent: u32,
    pub answered: u32,
    /// Unanswered share of `sent`, percent with two decimals.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<String>,
    /// Within `steady_state` (probes still in flight at the end not counted).
    pub steady_sent: u32,
    pub steady_answered: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_min_ms: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_avg_ms: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_max_ms: Option<String>,
    /// A UDP stream's own figures over the whole run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<StreamLine>,
}

/// What a UDP stream's datagrams did over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct StreamLine {
    /// Time between datagrams (the rate).
    pub interval_ms: String,
    /// Lost share, percent, rounded up.
    pub loss_pct: String,
    /// RFC 3550 interarrival jitter at the end of the run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<String>,
    /// Datagrams that arrived after one sent later.
    pub reordered: u32,
}

impl ProbeLine {
    /// `min/avg/max` in ms (one-way delays for a stream), `-` without answers.
    fn rtt_text(&self) -> String {
        match (&self.rtt_min_ms, &self.rtt_avg_ms, &self.rtt_max_ms) {
            (Some(a), Some(b), Some(c)) => format!("{a}/{b}/{c}"),
            _ => "-".into(),
        }
    }

    /// `icmp`, `tcp/41194`, `udp/53`.
    pub fn label(&self) -> String {
        match self.port {
            Some(port) => format!("{}/{port}", self.kind),
            None => self.kind.to_string(),
        }
    }
}

/// A bulk TCP transfer (`expect.throughput`) and what it achieved.
#[derive(Debug, Clone, Serialize)]
pub struct TransferLine {
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    pub target: String,
    pub port: u16,
    /// Where the goodput was measured.
    pub window: Window,
    /// Bytes delivered in order to the receiver per second over `window`,
    /// times 8, rounded to whole bits per second.
    pub goodput_bps: u64,
    /// Bytes delivered in order over `window`.
    pub bytes: u64,
    /// Largest segment payload sent since the path MTU last changed.
    pub mss: u32,
    /// The receive window the receiver announced last, bytes.
    pub receive_window: u64,
    /// SYNs sent; data segments sent over the whole transfer, and
    /// retransmissions among them (seen on the sender's side of the wire).
    pub syns: u32,
    pub segments: u64,
    pub retransmits: u64,
    /// Round-trip times of segments sent once and acknowledged (Karn).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_min_ms: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_avg_ms: Option<String>,
    /// When the handshake completed; absent when it never did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub established_s: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The one place that reads [`TransferResult`]'s fields, so a change of
/// the transfer model changes this function only.
fn transfer_line(t: &TransferResult) -> TransferLine {
    TransferLine {
        from: t.from.clone(),
        to: t.to.clone(),
        via: t.via.clone(),
        target: t.target.to_string(),
        port: t.port,
        window: Window::of(t.window),
        goodput_bps: if t.goodput_bps.is_finite() && t.goodput_bps > 0.0 {
            t.goodput_bps.round() as u64
        } else {
            0
        },
        bytes: t.bytes,
        mss: t.mss,
        receive_window: t.receive_window,
        syns: t.syns,
        segments: t.segments,
        retransmits: t.retransmits,
        rtt_min_ms: t.rtt_min.map(span_ms),
        rtt_avg_ms: t.rtt_avg.map(span_ms),
        established_s: t.established.map(secs),
        error: t.error.clone(),
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineLine {
    pub at_s: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub what: String,
    /// The probes this event changed, and how (until the next event).
    pub effects: Vec<EffectLine>,
    /// Tunnel sessions that began or ended from this event to the next.
    pub sessions: Vec<SessionChangeLine>,
}

/// What one timeline event did to one probe.
#[derive(Debug, Clone, Serialize)]
pub struct EffectLine {
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// The probe's label: `icmp`, `tcp/41194`, `stream/5201`.
    pub probe: String,
    /// `cut`: answered before the event, requests lost after it; `back`:
    /// not answered before, answered after.
    pub change: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_failure_s: Option<String>,
    /// Requests lost between this event and the next.
    pub lost: u32,
    /// From the event to the answer after which the probe stayed
    /// answered until the next event; absent when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovered_after_ms: Option<String>,
}

impl EffectLine {
    fn of(o: &vpnsim_sim::run::Outage, result: &RunResult) -> Option<EffectLine> {
        let p = result.probes.get(o.probe)?;
        Some(EffectLine {
            from: p.from.clone(),
            to: p.to.clone(),
            via: p.via.clone(),
            probe: match p.kind {
                ProbeKind::Icmp { .. } => "icmp".to_string(),
                ProbeKind::Tcp { port } => format!("tcp/{port}"),
                ProbeKind::Udp { port } => format!("udp/{port}"),
                ProbeKind::Stream { port, .. } => format!("stream/{port}"),
            },
            change: if o.was_up { "cut" } else { "back" },
            first_failure_s: o.first_failure.map(secs),
            lost: o.lost,
            recovered_after_ms: o.recovered_after.map(span_ms),
        })
    }

    fn text(&self) -> String {
        let mut to = via_text(&self.to, self.via.as_deref());
        if self.probe != "icmp" {
            to.push_str(&format!(" ({})", self.probe));
        }
        let outcome = match (&self.recovered_after_ms, self.change) {
            (Some(ms), _) => format!("back {ms} ms after the event"),
            (None, "cut") => "not back before the next event".to_string(),
            (None, _) => "answered now and then, not steadily".to_string(),
        };
        let first = self
            .first_failure_s
            .as_ref()
            .map_or(String::new(), |f| format!(", first loss {f} s"));
        format!(
            "{} -> {to}: {}{first}, {} lost, {outcome}",
            self.from, self.change, self.lost
        )
    }
}

fn kind_name(kind: ExpectKind) -> &'static str {
    match kind {
        ExpectKind::Reach => "reach",
        ExpectKind::Isolated => "isolated",
        ExpectKind::Recover => "recover",
        ExpectKind::Throughput => "throughput",
        ExpectKind::Stream => "stream",
    }
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::NotMeasured => "not-measured",
    }
}

/// How many session changes the text timeline lists under one event; the
/// rest are in the sessions table (and all of them in the JSON).
const TIMELINE_SESSIONS: usize = 16;
/// How many sessions the text table lists (a star of a thousand workers
/// has thousands); the JSON has all of them.
const TEXT_SESSIONS: usize = 200;

/// When the timeline event after event `i` happens, if one does.
fn next_event(result: &RunResult, i: usize) -> Option<Instant> {
    result.events.get(i + 1).map(|e| e.at)
}

/// The steady state of a run as `reach` judges it: from the end of the
/// warm-up to the first timeline event (or the end).
fn steady_state(result: &RunResult, options: &RunOptions) -> (Instant, Instant) {
    let end = Instant::START + result.duration;
    let start = (Instant::START + options.warmup).min(end);
    let first_event = result.events.iter().map(|e| e.at).min();
    (start, first_event.unwrap_or(end).clamp(start, end))
}

/// Samples sent in `window` and how many were answered in time; one still
/// in flight when the run ended counts neither way.
fn count_in(
    samples: &[Sample],
    window: (Instant, Instant),
    end: Instant,
    timeout: Span,
) -> (u32, u32) {
    let (mut sent, mut answered) = (0, 0);
    for s in samples
        .iter()
        .filter(|s| s.sent >= window.0 && s.sent < window.1)
    {
        let ok = s.ok(timeout);
        if !ok && s.sent + timeout > end {
            continue;
        }
        sent += 1;
        if ok {
            answered += 1;
        }
    }
    (sent, answered)
}

fn probe_line(
    p: &ProbeResult,
    steady: (Instant, Instant),
    end: Instant,
    timeout: Span,
) -> ProbeLine {
    let (kind, port, payload_bytes) = match p.kind {
        ProbeKind::Icmp { len } => ("icmp", None, Some(len)),
        ProbeKind::Tcp { port } => ("tcp", Some(port), None),
        ProbeKind::Udp { port } => ("udp", Some(port), None),
        ProbeKind::Stream { port, len } => ("stream", Some(port), Some(len)),
    };
    let stream = p.stream.map(|f| StreamLine {
        interval_ms: span_ms(p.interval),
        loss_pct: hundredths(f.loss_hundredths()),
        jitter_ms: f.jitter.map(span_ms),
        reordered: f.reordered,
    });
    let (steady_sent, steady_answered) = count_in(&p.samples, steady, end, timeout);
    ProbeLine {
        from: p.from.clone(),
        to: p.to.clone(),
        via: p.via.clone(),
        target: p.target.to_string(),
        kind,
        port,
        payload_bytes,
        sent: p.sent,
        answered: p.answered,
        loss_pct: loss_hundredths(p.sent, p.answered).map(hundredths),
        steady_sent,
        steady_answered,
        rtt_min_ms: p.rtt_min.map(span_ms),
        rtt_avg_ms: p.rtt_avg.map(span_ms),
        rtt_max_ms: p.rtt_max.map(span_ms),
        stream,
    }
}

impl SimulationReport {
    /// The report of `result`, a run made with `options` (the steady state
    /// and the probe timeout come from them).
    pub fn new(result: &RunResult, options: &RunOptions) -> Self {
        let end = Instant::START + result.duration;
        let steady = steady_state(result, options);
        let expectations: Vec<ExpectationLine> = result
            .expectations
            .iter()
            .map(|e| ExpectationLine {
                kind: kind_name(e.kind),
                field: format!("expect.{}[{}]", kind_name(e.kind), e.index),
                from: e.from.clone(),
                to: e.to.clone(),
                via: e.via.clone(),
                status: status_name(e.status),
                detail: e.detail.clone(),
                window: Window::of(e.evidence.window),
                sent: e.evidence.sent,
                answered: e.evidence.answered,
                last_success_s: e.evidence.last_success.map(secs),
                first_failure_s: e.evidence.first_failure.map(secs),
                first_error: e.evidence.first_error.clone(),
                recovery_ms: e.evidence.recovery.map(span_ms),
                probe: e.probe,
                transfer: (e.kind == ExpectKind::Throughput && e.index < result.transfers.len())
                    .then_some(e.index),
            })
            .collect();
        let count = |s: &str| expectations.iter().filter(|e| e.status == s).count();
        SimulationReport {
            seed: result.seed,
            duration_s: secs(end),
            events_processed: result.events_run,
            passed: count("pass"),
            failed: count("fail"),
            not_measured: count("not-measured"),
            steady_state: Window::of(steady),
            probes: result
                .probes
                .iter()
                .map(|p| probe_line(p, steady, end, options.probe_timeout))
                .collect(),
            transfers: result.transfers.iter().map(transfer_line).collect(),
            timeline: result
                .events
                .iter()
                .enumerate()
                .map(|(i, e)| TimelineLine {
                    at_s: secs(e.at),
                    name: e.name.clone(),
                    what: e.what.clone(),
                    effects: result
                        .outages
                        .iter()
                        .filter(|o| o.event == i)
                        .filter_map(|o| EffectLine::of(o, result))
                        .collect(),
                    sessions: result
                        .sessions
                        .iter()
                        .filter(|c| c.at >= e.at && next_event(result, i).is_none_or(|n| c.at < n))
                        .map(SessionChangeLine::of)
                        .collect(),
                })
                .collect(),
            sessions: session_lines(&result.sessions),
            drops: result.drops.clone(),
            expectations,
        }
    }

    /// Every expectation passed (a `not-measured` one does not).
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && self.not_measured == 0
    }

    /// The terminal text: expectations, measured reachability, probes,
    /// transfers, timeline, drops.
    pub fn text(&self) -> String {
        let mut out = format!(
            "Simulation: seed {}, {} s of virtual time, {} events: {} expectations passed, {} failed, {} not measured\n",
            self.seed,
            self.duration_s,
            self.events_processed,
            self.passed,
            self.failed,
            self.not_measured
        );
        if !self.expectations.is_empty() {
            out.push_str("\nExpectations\n");
            out.push_str(&self.expectations_table());
        }
        if self.probes.iter().any(|p| p.stream.is_none()) {
            out.push_str(&format!(
                "\nMeasured reachability in the steady state ({} s to {} s): answered/sent, row probes column\n",
                self.steady_state.start_s, self.steady_state.end_s
            ));
            out.push_str(&self.reachability_table());
            out.push_str("\nProbes over the whole run\n");
            out.push_str(&self.probes_table());
        }
        if self.probes.iter().any(|p| p.stream.is_some()) {
            out.push_str("\nUDP streams over the whole run (delay is one-way)\n");
            out.push_str(&self.streams_table());
        }
        if !self.transfers.is_empty() {
            out.push_str("\nTransfers (one TCP flow each, smoltcp with CUBIC)\n");
            out.push_str(&self.transfers_table());
        }
        if !self.timeline.is_empty() {
            out.push_str("\nTimeline\n");
            for e in &self.timeline {
                let name = e
                    .name
                    .as_deref()
                    .map(|n| format!(" [{n}]"))
                    .unwrap_or_default();
                out.push_str(&format!("  {:>12} s{name} {}\n", e.at_s, e.what));
                for effect in &e.effects {
                    out.push_str(&format!("                   {}\n", effect.text()));
                }
                let shown = e.sessions.len().min(TIMELINE_SESSIONS);
                for c in &e.sessions[..shown] {
                    out.push_str(&format!("                   session {}\n", c.text()));
                }
                if e.sessions.len() > shown {
                    out.push_str(&format!(
                        "                   ... {} more session changes (see Tunnel sessions)\n",
                        e.sessions.len() - shown
                    ));
                }
            }
        }
        if !self.sessions.is_empty() {
            out.push_str("\nTunnel sessions (from up to down; - still up at the end)\n");
            out.push_str(&self.sessions_table());
            if self.sessions.len() > TEXT_SESSIONS {
                out.push_str(&format!(
                    "  ... {} more sessions (all of them in --format json)\n",
                    self.sessions.len() - TEXT_SESSIONS
                ));
            }
        }
        if !self.drops.is_empty() {
            out.push_str("\nDropped packets by reason\n");
            for (reason, n) in &self.drops {
                out.push_str(&format!("  {n:>8}  {reason}\n"));
            }
        }
        out
    }

    fn expectations_table(&self) -> String {
        let mut t = Table::new(&[
            ("status", Align::Left),
            ("expectation", Align::Left),
            ("from", Align::Left),
            ("to", Align::Left),
            ("evidence", Align::Left),
        ]);
        for e in &self.expectations {
            let to = via_text(&e.to, e.via.as_deref());
            t.row(vec![
                e.status.to_uppercase(),
                e.field.clone(),
                e.from.clone(),
                to,
                self.evidence(e),
            ]);
        }
        let mut out = t.render("  ");
        for e in self
            .expectations
            .iter()
            .filter(|e| e.status != "pass" && e.kind != "throughput" && e.kind != "stream")
        {
            out.push_str(&format!("  {}: {}\n", e.field, e.detail));
        }
        out
    }

    /// One line of evidence: the probe counts and times, or a transfer's
    /// figures (the detail says what was required).
    fn evidence(&self, e: &ExpectationLine) -> String {
        if e.kind == "throughput" || e.kind == "stream" {
            return e.detail.clone();
        }
        let mut evidence = format!("{}/{} answered", e.answered, e.sent);
        if let Some(label) = e
            .probe
            .and_then(|i| self.probes.get(i))
            .map(ProbeLine::label)
            && label != "icmp"
        {
            evidence = format!("{label} {evidence}");
        }
        if let Some(r) = &e.recovery_ms {
            evidence.push_str(&format!(", recovered in {r} ms"));
        }
        if let Some(s) = &e.last_success_s {
            evidence.push_str(&format!(", last success {s} s"));
        }
        if let Some(f) = &e.first_failure_s {
            evidence.push_str(&format!(", first failure {f} s"));
        }
        if let Some(err) = &e.first_error {
            evidence.push_str(&format!(" ({err})"));
        }
        evidence
    }

    /// Probing host × probed host: answered/sent in the steady state, one
    /// entry per probe of the pair, named by its kind unless it is the
    /// pair's only probe and an ICMP echo (`tcp/41194 0/110`, ` via X` after
    /// one aimed at an overlay address); `-` where nothing was probed. Rows
    /// and columns are sorted by name.
    pub fn reachability_table(&self) -> String {
        let probes = || self.probes.iter().filter(|p| p.stream.is_none());
        let rows: BTreeSet<&str> = probes().map(|p| p.from.as_str()).collect();
        let columns: BTreeSet<&str> = probes().map(|p| p.to.as_str()).collect();
        let mut pairs: BTreeMap<(&str, &str), Vec<&ProbeLine>> = BTreeMap::new();
        for p in probes() {
            pairs
                .entry((p.from.as_str(), p.to.as_str()))
                .or_default()
                .push(p);
        }
        let cell = |probes: &[&ProbeLine]| {
            let entries: Vec<String> = probes
                .iter()
                .map(|p| {
                    let label = p.label();
                    let mut entry = if probes.len() == 1 && label == "icmp" {
                        String::new()
                    } else {
                        format!("{label} ")
                    };
                    entry.push_str(&format!("{}/{}", p.steady_answered, p.steady_sent));
                    if let Some(via) = &p.via {
                        entry.push_str(&format!(" via {via}"));
                    }
                    entry
                })
                .collect();
            entries.join(", ")
        };
        let mut header: Vec<(&str, Align)> = vec![("FROM \\ TO", Align::Left)];
        header.extend(columns.iter().map(|c| (*c, Align::Left)));
        let mut t = Table::new(&header);
        for row in &rows {
            let mut line = vec![(*row).to_string()];
            line.extend(columns.iter().map(|column| {
                pairs
                    .get(&(*row, *column))
                    .map_or_else(|| "-".to_string(), |probes| cell(probes))
            }));
            t.row(line);
        }
        t.render("  ")
    }

    fn probes_table(&self) -> String {
        let mut t = Table::new(&[
            ("from", Align::Left),
            ("to", Align::Left),
            ("target", Align::Left),
            ("probe", Align::Left),
            ("answered", Align::Right),
            ("loss %", Align::Right),
            ("rtt min/avg/max ms", Align::Right),
        ]);
        for p in self.probes.iter().filter(|p| p.stream.is_none()) {
            let rtt = p.rtt_text();
            let to = via_text(&p.to, p.via.as_deref());
            t.row(vec![
                p.from.clone(),
                to,
                p.target.clone(),
                p.label(),
                format!("{}/{}", p.answered, p.sent),
                p.loss_pct.clone().unwrap_or_else(|| "-".into()),
                rtt,
            ]);
        }
        t.render("  ")
    }

    fn streams_table(&self) -> String {
        let mut t = Table::new(&[
            ("from", Align::Left),
            ("to", Align::Left),
            ("bytes", Align::Right),
            ("every ms", Align::Right),
            ("arrived", Align::Right),
            ("loss %", Align::Right),
            ("delay min/avg/max ms", Align::Right),
            ("jitter ms", Align::Right),
            ("reordered", Align::Right),
        ]);
        for p in &self.probes {
            let Some(st) = &p.stream else { continue };
            let to = via_text(
                &format!("{} {}:{}", p.to, p.target, p.port.unwrap_or(0)),
                p.via.as_deref(),
            );
            t.row(vec![
                p.from.clone(),
                to,
                p.payload_bytes.unwrap_or(0).to_string(),
                st.interval_ms.clone(),
                format!("{}/{}", p.answered, p.sent),
                st.loss_pct.clone(),
                p.rtt_text(),
                st.jitter_ms.clone().unwrap_or_else(|| "-".into()),
                st.reordered.to_string(),
            ]);
        }
        t.render("  ")
    }

    fn sessions_table(&self) -> String {
        let mut t = Table::new(&[
            ("host", Align::Left),
            ("tunnel", Align::Left),
            ("peer", Align::Left),
            ("up s", Align::Right),
            ("down s", Align::Right),
            ("why up / why down", Align::Left),
        ]);
        for x in self.sessions.iter().take(TEXT_SESSIONS) {
            t.row(vec![
                x.host.clone(),
                x.tunnel.clone(),
                peer_text(&x.peer, x.peer_host.as_deref()),
                x.up_s.clone(),
                x.down_s.clone().unwrap_or_else(|| "-".into()),
                match &x.down_why {
                    Some(d) => format!("{} / {d}", x.up_why),
                    None => x.up_why.clone(),
                },
            ]);
        }
        t.render("  ")
    }

    fn transfers_table(&self) -> String {
        let mut t = Table::new(&[
            ("from", Align::Left),
            ("to", Align::Left),
            ("goodput Mbit/s", Align::Right),
            ("bytes", Align::Right),
            ("mss", Align::Right),
            ("window", Align::Right),
            ("segments", Align::Right),
            ("retransmits", Align::Right),
            ("rtt min/avg ms", Align::Right),
            ("established", Align::Right),
        ]);
        for x in &self.transfers {
            let to = via_text(&format!("{}:{}", x.target, x.port), x.via.as_deref());
            t.row(vec![
                x.from.clone(),
                format!("{} {to}", x.to),
                mbit(x.goodput_bps),
                x.bytes.to_string(),
                x.mss.to_string(),
                x.receive_window.to_string(),
                x.segments.to_string(),
                x.retransmits.to_string(),
                match (&x.rtt_min_ms, &x.rtt_avg_ms) {
                    (Some(min), Some(avg)) => format!("{min}/{avg}"),
                    _ => "-".into(),
                },
                x.established_s
                    .as_ref()
                    .map_or_else(|| "never".into(), |s| format!("{s} s")),
            ]);
        }
        let mut out = t.render("  ");
        for x in &self.transfers {
            if let Some(error) = &x.error {
                out.push_str(&format!("  {} -> {}: {error}\n", x.from, x.to));
            }
        }
        out
    }

    /// JUnit XML: one testcase per expectation, for CI gates; a failure
    /// carries the verdict as its message and the evidence as its text.
    pub fn junit(&self, scenario: &str) -> String {
        let total = self.expectations.len();
        let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        out.push_str(&format!(
            "<testsuites><testsuite name=\"{}\" tests=\"{total}\" failures=\"{}\" skipped=\"{}\">\n",
            xml(scenario),
            self.failed,
            self.not_measured
        ));
        for e in &self.expectations {
            let name = format!("{} {} -> {}", e.field, e.from, e.to);
            out.push_str(&format!(
                "  <testcase classname=\"{}\" name=\"{}\">",
                xml(scenario),
                xml(&name)
            ));
            match e.status {
                "fail" => out.push_str(&format!(
                    "<failure message=\"{}\">{}</failure>",
                    xml(&e.detail),
                    xml(&self.evidence(e))
                )),
                "not-measured" => {
                    out.push_str(&format!("<skipped message=\"{}\"/>", xml(&e.detail)))
                }
                _ => {}
            }
            out.push_str("</testcase>\n");
        }
        out.push_str("</testsuite></testsuites>\n");
        out
    }
}

fn xml(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

// ---------------------------------------------------------------------------
// Seed sweeps
// ---------------------------------------------------------------------------

/// What one run of a sweep measured, in integers, small enough to keep
/// for thousands of runs (the [`RunResult`] with its trace and samples is
/// dropped after each run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFigures {
    pub seed: u64,
    /// Per expectation: held, and the recovery time when it recovered.
    pub expectations: Vec<(bool, Option<Span>)>,
    /// Per probe: average RTT, and loss in hundredths of a percent.
    pub probes: Vec<(Option<Span>, Option<u64>)>,
    /// Per transfer: goodput, bits per second.
    pub transfers: Vec<u64>,
}

impl RunFigures {
    pub fn of(result: &RunResult) -> Self {
        RunFigures {
            seed: result.seed,
            expectations: result
                .expectations
                .iter()
                .map(|e| (e.status == Status::Pass, e.evidence.recovery))
                .collect(),
            probes: result
                .probes
                .iter()
                .map(|p| (p.rtt_avg, loss_hundredths(p.sent, p.answered)))
                .collect(),
            transfers: result
                .transfers
                .iter()
                .map(|t| transfer_line(t).goodput_bps)
                .collect(),
        }
    }
}

/// How one figure spread over the runs that measured it: `count` of them,
/// and the nearest-rank minimum, median, 90th percentile and maximum
/// (decimal strings in the figure's unit).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Distribution {
    pub count: usize,
    pub min: String,
    pub median: String,
    pub p90: String,
    pub max: String,
}

impl Distribution {
    /// `None` when no run measured the figure.
    fn of(mut values: Vec<u64>, show: fn(u64) -> String) -> Option<Self> {
        values.sort_unstable();
        let n = values.len();
        // Nearest rank: the smallest value with at least p % of the values
        // at or below it.
        let rank = |p: usize| values.get((p * n).div_ceil(100).max(1) - 1).copied();
        Some(Distribution {
            count: n,
            min: show(*values.first()?),
            median: show(rank(50)?),
            p90: show(rank(90)?),
            max: show(*values.last()?),
        })
    }

    /// `min/median/p90/max`, with `(n=k)` when fewer than `runs` runs
    /// measured it.
    fn text(dist: Option<&Distribution>, runs: usize) -> String {
        match dist {
            None => String::from("-"),
            Some(d) => {
                let mut s = format!("{}/{}/{}/{}", d.min, d.median, d.p90, d.max);
                if d.count != runs {
                    s.push_str(&format!(" (n={})", d.count));
                }
                s
            }
        }
    }
}

/// `sim run --seeds N`: over N runs (the run's seed and the N-1 following
/// ones), how often each expectation held and the distribution of every
/// measured figure: recovery times, each probe's average RTT and loss, each
/// transfer's goodput.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub runs: usize,
    pub first_seed: u64,
    pub last_seed: u64,
    pub expectations: Vec<SweepLine>,
    pub probes: Vec<SweepProbe>,
    pub transfers: Vec<SweepTransfer>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepLine {
    pub field: String,
    pub kind: &'static str,
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    pub passed: usize,
    pub runs: usize,
    /// Seeds of the runs where it did not hold, to reproduce with `--seed`.
    pub failed_seeds: Vec<u64>,
    /// Recovery times in milliseconds over the runs that recovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_ms: Option<Distribution>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepProbe {
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Average RTT in milliseconds over the runs where it was answered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_avg_ms: Option<Distribution>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub loss_pct: Option<Distribution>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepTransfer {
    pub from: String,
    pub to: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub goodput_bps: Option<Distribution>,
}

impl SweepReport {
    /// `main` names the expectations, probes and transfers; `runs` holds
    /// every run's figures (the main run's among them). Figures are matched
    /// by position: every run of one scenario has the same expectations,
    /// probes and transfers in the same order.
    pub fn new(main: &SimulationReport, runs: &[RunFigures]) -> Self {
        let n = runs.len();
        let expectations = main
            .expectations
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let of_runs: Vec<(u64, bool, Option<Span>)> = runs
                    .iter()
                    .filter_map(|r| r.expectations.get(i).map(|(ok, rec)| (r.seed, *ok, *rec)))
                    .collect();
                SweepLine {
                    field: e.field.clone(),
                    kind: e.kind,
                    from: e.from.clone(),
                    to: e.to.clone(),
                    via: e.via.clone(),
                    passed: of_runs.iter().filter(|r| r.1).count(),
                    runs: of_runs.len(),
                    failed_seeds: of_runs.iter().filter(|r| !r.1).map(|r| r.0).collect(),
                    recovery_ms: Distribution::of(
                        of_runs.iter().filter_map(|r| r.2.map(|s| s.0)).collect(),
                        |ns| span_ms(Span(ns)),
                    ),
                }
            })
            .collect();
        let probes = main
            .probes
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let of_runs: Vec<&(Option<Span>, Option<u64>)> =
                    runs.iter().filter_map(|r| r.probes.get(i)).collect();
                SweepProbe {
                    from: p.from.clone(),
                    to: p.to.clone(),
                    via: p.via.clone(),
                    kind: p.kind,
                    port: p.port,
                    rtt_avg_ms: Distribution::of(
                        of_runs.iter().filter_map(|r| r.0.map(|s| s.0)).collect(),
                        |ns| span_ms(Span(ns)),
                    ),
                    loss_pct: Distribution::of(
                        of_runs.iter().filter_map(|r| r.1).collect(),
                        hundredths,
                    ),
                }
            })
            .collect();
        let transfers = main
            .transfers
            .iter()
            .enumerate()
            .map(|(i, x)| SweepTransfer {
                from: x.from.clone(),
                to: x.to.clone(),
                via: x.via.clone(),
                goodput_bps: Distribution::of(
                    runs.iter()
                        .filter_map(|r| r.transfers.get(i).copied())
                        .collect(),
                    |bps| bps.to_string(),
                ),
            })
            .collect();
        SweepReport {
            runs: n,
            first_seed: runs.first().map_or(main.seed, |r| r.seed),
            last_seed: runs.last().map_or(main.seed, |r| r.seed),
            expectations,
            probes,
            transfers,
        }
    }

    pub fn text(&self) -> String {
        let mut out = format!(
            "\nSeed sweep: {} runs, seeds {}..={} (min/median/p90/max over the runs that measured it)\n",
            self.runs, self.first_seed, self.last_seed
        );
        let mut t = Table::new(&[
            ("expectation", Align::Left),
            ("from", Align::Left),
            ("to", Align::Left),
            ("passed", Align::Right),
            ("recovery ms", Align::Right),
        ]);
        for e in &self.expectations {
            t.row(vec![
                e.field.clone(),
                e.from.clone(),
                via_text(&e.to, e.via.as_deref()),
                format!("{}/{}", e.passed, e.runs),
                Distribution::text(e.recovery_ms.as_ref(), e.runs),
            ]);
        }
        out.push_str(&t.render("  "));
        const SHOWN: usize = 10;
        for e in self
            .expectations
            .iter()
            .filter(|e| !e.failed_seeds.is_empty())
        {
            let mut seeds: Vec<String> = e
                .failed_seeds
                .iter()
                .take(SHOWN)
                .map(ToString::to_string)
                .collect();
            if e.failed_seeds.len() > SHOWN {
                seeds.push(format!("and {} more", e.failed_seeds.len() - SHOWN));
            }
            let plural = if e.failed_seeds.len() == 1 { "" } else { "s" };
            out.push_str(&format!(
                "  {} failed with seed{plural} {} (reproduce with --seed)\n",
                e.field,
                seeds.join(", ")
            ));
        }
        if !self.probes.is_empty() {
            out.push_str("\n  Probes over the sweep\n");
            let mut t = Table::new(&[
                ("from", Align::Left),
                ("to", Align::Left),
                ("probe", Align::Left),
                ("rtt avg ms", Align::Right),
                ("loss %", Align::Right),
            ]);
            for p in &self.probes {
                let label = match p.port {
                    Some(port) => format!("{}/{port}", p.kind),
                    None => p.kind.to_string(),
                };
                t.row(vec![
                    p.from.clone(),
                    via_text(&p.to, p.via.as_deref()),
                    label,
                    Distribution::text(p.rtt_avg_ms.as_ref(), self.runs),
                    Distribution::text(p.loss_pct.as_ref(), self.runs),
                ]);
            }
            out.push_str(&t.render("  "));
        }
        if !self.transfers.is_empty() {
            out.push_str("\n  Transfers over the sweep\n");
            let mut t = Table::new(&[
                ("from", Align::Left),
                ("to", Align::Left),
                ("goodput Mbit/s", Align::Right),
            ]);
            for x in &self.transfers {
                let goodput = x.goodput_bps.as_ref().map(|d| {
                    let m = |s: &str| mbit(s.parse().unwrap_or(0));
                    Distribution {
                        count: d.count,
                        min: m(&d.min),
                        median: m(&d.median),
                        p90: m(&d.p90),
                        max: m(&d.max),
                    }
                });
                t.row(vec![
                    x.from.clone(),
                    via_text(&x.to, x.via.as_deref()),
                    Distribution::text(goodput.as_ref(), self.runs),
                ]);
            }
            out.push_str(&t.render("  "));
        }
        out
    }

    pub fn all_passed(&self) -> bool {
        self.expectations.iter().all(|e| e.passed == e.runs)
    }
}

fn via_text(to: &str, via: Option<&str>) -> String {
    match via {
        Some(via) => format!("{to} via {via}"),
        None => to.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use vpnsim_sim::run::{EventRecord, Evidence, ExpectationResult};

    use super::*;

    const S: u64 = 1_000_000_000;
    const MS: u64 = 1_000_000;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]))
    }

    /// One probe every second from 1 s to 39 s, answered after `rtt_ms`
    /// unless `lost(second)`.
    fn probe(
        from: &str,
        to: &str,
        via: Option<&str>,
        kind: ProbeKind,
        rtt_ms: u64,
        lost: impl Fn(u64) -> bool,
    ) -> ProbeResult {
        let samples: Vec<Sample> = (1..40)
            .map(|sec| Sample {
                seq: sec as u32,
                sent: Instant(sec * S),
                reply: (!lost(sec)).then_some(Instant(sec * S + rtt_ms * MS)),
                error: lost(sec).then(|| "AdminProhibited unreachable from 10.0.0.3".to_string()),
            })
            .collect();
        let answered = samples.iter().filter(|s| s.reply.is_some()).count() as u32;
        let rtt = (answered > 0).then_some(Span(rtt_ms * MS));
        let samples_again = samples.clone();
        ProbeResult {
            from: from.into(),
            to: to.into(),
            via: via.map(Into::into),
            target: ip("10.0.0.2"),
            kind,
            sent: samples.len() as u32,
            answered,
            samples,
            rtt_min: rtt,
            rtt_avg: rtt,
            rtt_max: rtt,
            stream: matches!(kind, ProbeKind::Stream { .. }).then(|| {
                vpnsim_sim::probe::StreamFigures::of(
                    &samples_again,
                    (Instant::START, Instant(40 * S)),
                    Instant(40 * S),
                    Span(S),
                )
            }),
            interval: Span(S),
        }
    }

    fn expectation(
        kind: ExpectKind,
        (from, to): (&str, &str),
        status: Status,
        detail: &str,
        evidence: Evidence,
        probe: usize,
    ) -> ExpectationResult {
        ExpectationResult {
            kind,
            index: 0,
            from: from.into(),
            to: to.into(),
            via: None,
            status,
            detail: detail.into(),
            evidence,
            probe: (kind != ExpectKind::Throughput).then_some(probe),
        }
    }

    /// The only test code that builds a [`TransferResult`].
    fn transfer(goodput_bps: f64) -> TransferResult {
        TransferResult {
            from: "a".into(),
            to: "b".into(),
            via: None,
            target: ip("10.0.0.2"),
            port: 5201,
            window: (Instant(12 * S), Instant(20 * S)),
            goodput_bps,
            bytes: 15_000_000,
            mss: 1460,
            receive_window: 1 << 20,
            syns: 1,
            segments: 10_300,
            retransmits: 3,
            rtt_min: Some(Span(20 * MS)),
            rtt_avg: Some(Span(21 * MS)),
            established: Some(Instant(10 * S + 40 * MS)),
            error: None,
        }
    }

    /// A made-up run of three hosts: a reaches b (lost while b is down
    /// from 20 s to 25 s), c is isolated from b's port 443, a reaches c
    /// over the overlay, one transfer from a to b.
    fn run(seed: u64, recovery_ms: u64, goodput_bps: f64) -> RunResult {
        let down = |sec: u64| (20..25).contains(&sec);
        let probes = vec![
            probe("a", "b", None, ProbeKind::Icmp { len: 56 }, 20, down),
            probe("c", "b", None, ProbeKind::Tcp { port: 443 }, 1, |_| true),
            probe(
                "a",
                "c",
                Some("wg0"),
                ProbeKind::Icmp { len: 56 },
                30 + seed,
                |_| false,
            ),
            // A stream (of one datagram a second, to keep it short) that
            // loses the 25th.
            probe(
                "b",
                "a",
                None,
                ProbeKind::Stream {
                    port: 5004,
                    len: 172,
                },
                12,
                |s| s == 25,
            ),
        ];
        let expectations = vec![
            expectation(
                ExpectKind::Reach,
                ("a", "b"),
                Status::Pass,
                "10/10 answered in the steady state",
                Evidence {
                    window: (Instant(10 * S), Instant(20 * S)),
                    sent: 10,
                    answered: 10,
                    last_success: Some(Instant(19 * S + 20 * MS)),
                    ..Evidence::default()
                },
                0,
            ),
            expectation(
                ExpectKind::Isolated,
                ("c", "b"),
                Status::Pass,
                "0/39 answered over the whole run",
                Evidence {
                    window: (Instant(0), Instant(40 * S)),
                    sent: 39,
                    first_failure: Some(Instant(S)),
                    first_error: Some("AdminProhibited unreachable from 10.0.0.3".into()),
                    ..Evidence::default()
                },
                1,
            ),
            expectation(
                ExpectKind::Recover,
                ("a", "b"),
                if recovery_ms <= 10_000 {
                    Status::Pass
                } else {
                    Status::Fail
                },
                "recovered 5.020s after `b-down` (deadline 10.000s)",
                Evidence {
                    window: (Instant(20 * S), Instant(40 * S)),
                    sent: 20,
                    answered: 15,
                    last_success: Some(Instant(19 * S + 20 * MS)),
                    first_failure: Some(Instant(20 * S)),
                    recovery: Some(Span(recovery_ms * MS)),
                    ..Evidence::default()
                },
                0,
            ),
            expectation(
                ExpectKind::Throughput,
                ("a", "b"),
                Status::Pass,
                "goodput 15.00 Mbit/s (at least 10.00 Mbit/s required)",
                Evidence {
                    window: (Instant(12 * S), Instant(20 * S)),
                    ..Evidence::default()
                },
                0,
            ),
        ];
        RunResult {
            scenario: "made-up".into(),
            seed,
            duration: Span(40 * S),
            probes,
            expectations,
            events: vec![EventRecord {
                at: Instant(20 * S),
                name: Some("b-down".into()),
                what: "b crashes".into(),
            }],
            trace: Vec::new(),
            events_run: 1234,
            drops: BTreeMap::from([("host is down".to_string(), 5)]),
            captures: BTreeMap::new(),
            transfers: vec![transfer(goodput_bps)],
            sessions: sessions(),
            outages: vec![vpnsim_sim::run::Outage {
                event: 0,
                probe: 0,
                was_up: true,
                first_failure: Some(Instant(20 * S)),
                lost: 5,
                recovered_after: Some(Span(recovery_ms * MS)),
            }],
        }
    }

    /// a's OpenVPN client is with b, loses it when b crashes, and goes to c.
    fn sessions() -> Vec<SessionChange> {
        let change = |at: u64, peer: &str, host: &str, up: bool, why: &str| SessionChange {
            at: Instant(at * MS),
            host: "a".into(),
            tunnel: "tun0".into(),
            peer: peer.into(),
            addr: peer.split(':').next().and_then(|a| a.parse().ok()),
            peer_host: Some(host.into()),
            up,
            why: why.into(),
        };
        vec![
            change(
                120,
                "10.0.0.2:1194",
                "b",
                true,
                "Initialization Sequence Completed",
            ),
            change(30_000, "10.0.0.2:1194", "b", false, "ping-restart"),
            change(
                31_500,
                "10.0.0.3:1194",
                "c",
                true,
                "Initialization Sequence Completed",
            ),
        ]
    }

    #[test]
    fn a_long_sessions_table_is_cut_in_text_but_whole_in_json() {
        let mut result = run(7, 5_020, 1.0);
        result.sessions = (0..205u64)
            .map(|k| SessionChange {
                at: Instant(k * MS),
                host: "hub".into(),
                tunnel: "wg0".into(),
                peer: format!("peer {k:08}"),
                addr: None,
                peer_host: None,
                up: true,
                why: "handshake complete (responder)".into(),
            })
            .collect();
        let report = SimulationReport::new(&result, &RunOptions::default());
        let text = report.text();
        assert!(text.contains("  ... 5 more sessions (all of them in --format json)\n"));
        assert!(text.contains("peer 00000199") && !text.contains("peer 00000200"));
        assert_eq!(report.sessions.len(), 205);
    }

    #[test]
    fn a_matrix_cell_lists_every_probe_of_its_pair() {
        let mut report = SimulationReport::new(&run(7, 5_020, 1.0), &RunOptions::default());
        let mut tcp = report.probes[0].clone();
        (tcp.kind, tcp.port, tcp.via) = ("tcp", Some(22), None);
        (tcp.steady_sent, tcp.steady_answered) = (10, 9);
        report.probes.push(tcp);
        let matrix = report.reachability_table();
        assert!(
            matrix.contains("  a          icmp 10/10, tcp/22 9/10  10/10 via wg0\n"),
            "{matrix}"
        );
    }

    #[test]
    fn a_run_reads_as_text_json_and_junit() {
        let report = SimulationReport::new(&run(7, 5_020, 15_000_000.4), &RunOptions::default());
        let text = report.text();
        // The matrix counts the steady state only (10 s to the event at
        // 20 s), so b's outage does not show; c's port 443 never answered.
        assert!(text.contains("(10.000000 s to 20.000000 s)"), "{text}");
        assert!(
            text.contains("  a          10/10         10/10 via wg0\n"),
            "{text}"
        );
        assert!(text.contains("  c          tcp/443 0/10  -\n"), "{text}");
        let json: serde_json::Value =
            serde_json::from_str(&crate::to_json(&report)).unwrap_or_default();
        assert_eq!(json["probes"][1]["kind"], "tcp");
        assert_eq!(json["probes"][1]["port"], 443);
        assert_eq!(json["probes"][1]["loss_pct"], "100.00");
        assert_eq!(json["probes"][0]["steady_sent"], 10);
        assert_eq!(json["transfers"][0]["goodput_bps"], 15_000_000);
        assert_eq!(json["expectations"][3]["transfer"], 0);
        assert_eq!(json["expectations"][2]["recovery_ms"], "5020.000");
        // Sessions: as intervals, and under the event that preceded them.
        assert_eq!(json["sessions"][0]["down_why"], "ping-restart");
        assert_eq!(json["sessions"][1]["peer_host"], "c");
        assert_eq!(json["timeline"][0]["sessions"][1]["change"], "up");
        assert!(
            text.contains("session 31.500000 s a tun0 c 10.0.0.3:1194 up"),
            "{text}"
        );
        insta::assert_snapshot!("run_text", text);
        insta::assert_snapshot!("run_json", crate::to_json(&report));
        let failed = SimulationReport::new(&run(7, 12_000, 1.0), &RunOptions::default());
        insta::assert_snapshot!("run_junit", failed.junit("made-up"));
    }

    #[test]
    fn a_sweep_gives_every_figure_a_distribution() {
        let runs: Vec<RunResult> = (0..4)
            .map(|k| {
                run(
                    10 + k,
                    [5_020, 4_000, 12_000, 6_500][k as usize],
                    1e6 * (k + 1) as f64,
                )
            })
            .collect();
        let main = SimulationReport::new(&runs[0], &RunOptions::default());
        let figures: Vec<RunFigures> = runs.iter().map(RunFigures::of).collect();
        let sweep = SweepReport::new(&main, &figures);
        assert_eq!((sweep.runs, sweep.first_seed, sweep.last_seed), (4, 10, 13));
        let recover = &sweep.expectations[2];
        assert_eq!((recover.passed, recover.runs), (3, 4));
        assert_eq!(recover.failed_seeds, [12]);
        assert_eq!(
            recover.recovery_ms.as_ref().map(|d| (
                d.min.as_str(),
                d.median.as_str(),
                d.max.as_str()
            )),
            Some(("4000.000", "5020.000", "12000.000"))
        );
        // The overlay probe's RTT is 30 ms + the seed.
        assert_eq!(
            sweep.probes[2]
                .rtt_avg_ms
                .as_ref()
                .map(|d| (d.min.as_str(), d.max.as_str())),
            Some(("40.000", "43.000"))
        );
        assert_eq!(sweep.probes[1].rtt_avg_ms, None, "never answered: no RTT");
        assert_eq!(
            sweep.transfers[0]
                .goodput_bps
                .as_ref()
                .map(|d| d.p90.as_str()),
            Some("4000000")
        );
        assert!(!sweep.all_passed());
        insta::assert_snapshot!("sweep_text", sweep.text());
        insta::assert_snapshot!("sweep_json", crate::to_json(&sweep));
    }

    #[test]
    fn distribution_uses_nearest_ranks() {
        let show = |n: u64| n.to_string();
        let d = Distribution::of((1..=10).rev().collect(), show);
        assert_eq!(
            d,
            Some(Distribution {
                count: 10,
                min: "1".into(),
                median: "5".into(),
                p90: "9".into(),
                max: "10".into(),
            })
        );
        let one = Distribution::of(vec![7], show);
        assert_eq!(
            one.map(|d| (d.median, d.p90)),
            Some(("7".into(), "7".into()))
        );
        assert_eq!(Distribution::of(Vec::new(), show), None);
        let three = Distribution::of(vec![30, 10, 20], show);
        assert_eq!(
            three.map(|d| (d.min, d.median, d.p90, d.max)),
            Some(("10".into(), "20".into(), "30".into(), "30".into()))
        );
    }

    #[test]
    fn fractions_come_from_integers() {
        assert_eq!(
            loss_hundredths(749, 689).map(hundredths),
            Some("8.01".into())
        );
        assert_eq!(loss_hundredths(3, 0).map(hundredths), Some("100.00".into()));
        assert_eq!(loss_hundredths(0, 0), None);
        assert_eq!(mbit(15_394_999), "15.39");
        assert_eq!(mbit(15_395_000), "15.40");
        assert_eq!(span_ms(Span(51_052_493_123)), "51052.493");
        assert_eq!(secs(Instant(1_000_001_999)), "1.000001");
    }
}

//! The entry point: build the network from the scenario's physical layer
//! and the rendered files, start the hosts, schedule the timeline and the
//! probes the expectations need, run, and judge every expectation from the
//! probe samples.
//!
//! How expectations are judged:
//! - a probe answered counts only if its request went through ESP when
//!   the expectation says `via` an IPsec deployment (`require_esp`);
//! - `reach`: in the steady state (after the warm-up, before the first
//!   event) at least half the probes are answered within the timeout;
//! - `isolated`: no probe is ever answered;
//! - `recover`: after the last unanswered probe sent between the event and
//!   `within` + `recover_hold` after it, the next probe is answered, and
//!   its answer comes within `within` of the event;
//! - `throughput`: a bulk TCP transfer over the hosts' smoltcp stacks
//!   ([`crate::probe`], "Bulk transfer") from `from` to `to` (the address
//!   a probe would use: `via`'s overlay address, else the underlay one; the
//!   port is the lowest TCP port `to` listens on, else 5201) starts with
//!   its handshake at the end of the warm-up; its goodput (bytes delivered
//!   in order to the receiver per second) is measured from
//!   `throughput_rampup` after that for `throughput_window`, cut at the
//!   first event; it passes when the goodput is at least `at_least`. All
//!   the transfers run at the same time (they share links). The scenario
//!   format has no window of its own for throughput.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use vpnsim_render::Format;
use vpnsim_render::script::Script;
use vpnsim_render::tree::FileSet;
use vpnsim_topology::Scenario;
use vpnsim_topology::format::{Action as EventAction, ProbeProto, Procedure};
use vpnsim_topology::model::{HostId, OverlayId, Topology};

use crate::engine::TraceLine;
use crate::host::IfaceKind;
use crate::load::{self, Addressing};
use crate::probe::{Probe, ProbeKind, Sample};
use crate::time::{Instant, Span};
use crate::world::{Ev, Partition, World};

/// Why a run could not start.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A rendered file of a host could not be read back.
    #[error("{host}/{path}: {message}")]
    File {
        host: String,
        path: String,
        message: String,
    },
    /// A probe an expectation needs has no address to aim at.
    #[error("{what}: {message}")]
    Probe { what: String, message: String },
}

/// Knobs of a run. `Default` gives the documented values.
#[derive(Debug, Clone, PartialEq)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Overrides the run length (default: last event + the longest
    /// `recover.within` + 30 s, at least warm-up + 30 s).
    pub duration: Option<Span>,
    /// Interval between two requests of a probe (1 s, like ping).
    pub probe_interval: Span,
    /// A reply later than this counts as lost (2 s).
    pub probe_timeout: Span,
    /// Time for tunnels to come up before `reach` is judged (10 s).
    pub warmup: Span,
    /// Time an operator (or `promote-node`) takes per host of a
    /// promotion procedure (2 s): host number N runs its script at
    /// event + (N-1) × this.
    pub promotion_step: Span,
    /// ICMP echo payload bytes (56, like ping).
    pub ping_size: u32,
    /// `recover`: reach must hold from the recovery until `within` + this
    /// after the event (10 s).
    pub recover_hold: Span,
    /// Record every packet put on each link and subnet, for pcap files
    /// (`RunResult::captures`).
    pub capture: bool,
    /// `throughput`: time from the transfer's start (the end of the
    /// warm-up) to the start of its measurement, for the handshake and
    /// slow start (2 s).
    pub throughput_rampup: Span,
    /// `throughput`: length of the measurement (10 s), cut at the first
    /// event.
    pub throughput_window: Span,
    /// Probes besides those the expectations need (`sim ping`-like); their
    /// results follow the expectations' probes in `RunResult::probes`.
    pub probes: Vec<ProbeSpec>,
    /// Told how far the run has come, after every [`PROGRESS_STEP`] of
    /// virtual time. It cannot change the result: the same events run in
    /// the same order with or without it.
    pub progress: Option<Progress>,
}

/// How much virtual time passes between two calls of [`RunOptions::progress`].
pub const PROGRESS_STEP: Span = Span::secs(1);

/// An observer of a run's progress: called with the virtual time reached
/// and the run's length (for a progress bar; the simulator stays free of
/// terminal code). It sees nothing of the world, so it cannot steer it.
#[derive(Clone)]
pub struct Progress(Arc<dyn Fn(Span, Span) + Send + Sync>);

impl Progress {
    pub fn new(observer: impl Fn(Span, Span) + Send + Sync + 'static) -> Self {
        Progress(Arc::new(observer))
    }
}

impl std::fmt::Debug for Progress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Progress(..)")
    }
}

impl PartialEq for Progress {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// A probe asked for by the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeSpec {
    /// Host name of the sender.
    pub from: String,
    /// Address to probe.
    pub target: IpAddr,
    /// Source address (default: the one routing picks, as ping does); any
    /// address, also one the host does not have (`ping -I`, raw sockets).
    pub source: Option<IpAddr>,
    pub kind: ProbeKind,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: None,
            duration: None,
            probe_interval: Span::secs(1),
            probe_timeout: Span::secs(2),
            warmup: Span::secs(10),
            promotion_step: Span::secs(2),
            ping_size: 56,
            recover_hold: Span::secs(10),
            capture: false,
            throughput_rampup: Span::secs(2),
            throughput_window: Span::secs(10),
            probes: Vec::new(),
            progress: None,
        }
    }
}

/// One probe's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeResult {
    pub from: String,
    pub to: String,
    pub via: Option<String>,
    pub target: IpAddr,
    pub kind: ProbeKind,
    pub samples: Vec<Sample>,
    pub sent: u32,
    pub answered: u32,
    pub rtt_min: Option<Span>,
    pub rtt_avg: Option<Span>,
    pub rtt_max: Option<Span>,
    /// A UDP stream's figures over the whole run (the delays are the
    /// `rtt_*` fields: a stream's "answer" is the datagram's arrival).
    pub stream: Option<crate::probe::StreamFigures>,
    /// Time between a stream's datagrams.
    pub interval: Span,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExpectKind {
    Reach,
    Isolated,
    Recover,
    Throughput,
    Stream,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// The simulator does not measure this yet.
    NotMeasured,
}

/// The probe evidence behind a verdict.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evidence {
    /// Samples judged: sent in [start, end).
    pub window: (Instant, Instant),
    pub sent: u32,
    pub answered: u32,
    pub last_success: Option<Instant>,
    pub first_failure: Option<Instant>,
    /// The error an unanswered probe got, if any (e.g. "AdminProhibited
    /// unreachable from 10.0.0.1", "fragmentation needed (mtu 1400) ...").
    pub first_error: Option<String>,
    /// `recover`: from the event to the first answer.
    pub recovery: Option<Span>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ExpectationResult {
    pub kind: ExpectKind,
    /// Index in its kind's list in the scenario (`expect.reach[i]`).
    pub index: usize,
    pub from: String,
    pub to: String,
    pub via: Option<String>,
    pub status: Status,
    pub detail: String,
    pub evidence: Evidence,
    /// Index into `RunResult::probes`.
    pub probe: Option<usize>,
}

/// A timeline entry as it ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRecord {
    pub at: Instant,
    pub name: Option<String>,
    pub what: String,
}

/// One bulk transfer's outcome (`expect.throughput`).
#[derive(Debug, Clone, PartialEq)]
pub struct TransferResult {
    pub from: String,
    pub to: String,
    pub via: Option<String>,
    pub target: IpAddr,
    pub port: u16,
    /// Measurement window.
    pub window: (Instant, Instant),
    /// Goodput over the window, bits per second.
    pub goodput_bps: f64,
    /// Bytes delivered in order over the window.
    pub bytes: u64,
    /// Largest segment payload sent since the path MTU last changed.
    pub mss: u32,
    /// The receive window the receiver announced last, in bytes.
    pub receive_window: u64,
    /// SYNs sent; data segments sent over the whole transfer and the
    /// retransmissions among them (seen on the sender's side of the wire).
    pub syns: u32,
    pub segments: u64,
    pub retransmits: u64,
    /// Round-trip times of segments sent once and acknowledged (Karn).
    pub rtt_min: Option<Span>,
    pub rtt_avg: Option<Span>,
    pub established: Option<Instant>,
    pub error: Option<String>,
}

/// Everything a run measured. Same inputs and seed give an equal value.
#[derive(Debug, Clone, PartialEq)]
pub struct RunResult {
    pub scenario: String,
    pub seed: u64,
    pub duration: Span,
    pub probes: Vec<ProbeResult>,
    pub expectations: Vec<ExpectationResult>,
    pub events: Vec<EventRecord>,
    pub trace: Vec<TraceLine>,
    /// Simulator events processed.
    pub events_run: u64,
    /// Dropped packets by reason.
    pub drops: BTreeMap<String, u64>,
    /// With `RunOptions::capture`: what crossed each link and subnet, by
    /// name, in sending order (see [`crate::pcap::file`]).
    pub captures: BTreeMap<String, Vec<(Instant, crate::packet::Packet)>>,
    /// One per `expect.throughput`, in order.
    pub transfers: Vec<TransferResult>,
    /// What each timeline event did to each probe that changed state.
    pub outages: Vec<Outage>,
    /// Every change of a tunnel session, in order: where each client
    /// connected, when an SA or a bond slave went and came back.
    pub sessions: Vec<crate::world::SessionChange>,
}

/// What a timeline event did to one probe: it was answered before the
/// event and then lost requests (`was_up`), or it was not and then got
/// answers again. Judged from the event to the next one (or the end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outage {
    /// Index into `RunResult::events`.
    pub event: usize,
    /// Index into `RunResult::probes`.
    pub probe: usize,
    pub was_up: bool,
    /// The first unanswered request after the event, if any.
    pub first_failure: Option<Instant>,
    /// Requests unanswered between the event and the next one.
    pub lost: u32,
    /// From the event to the first answer after which the probe stays
    /// answered until the next event; `None`: not by then.
    pub recovered_after: Option<Span>,
}

impl RunResult {
    /// All expectations hold (`NotMeasured` counts as not holding).
    pub fn passed(&self) -> bool {
        self.expectations.iter().all(|e| e.status == Status::Pass)
    }
}

/// A probe request before it is placed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ProbeKey {
    from: HostId,
    to: HostId,
    via: Option<OverlayId>,
    proto: u8,
    port: u16,
}

/// Simulates `scenario` with the files in `files` (rendered, or collected
/// from real hosts) and the planned `addressing`.
pub fn run(
    scenario: &Scenario,
    addressing: &Addressing,
    files: &FileSet,
    options: &RunOptions,
) -> Result<RunResult, SimError> {
    let t = &scenario.topology;
    let seed = options.seed.unwrap_or(t.seed);
    let mut w = load::build(scenario, addressing, files, seed)?;
    if options.capture {
        w.captures = Some(BTreeMap::new());
    }
    let duration = options
        .duration
        .unwrap_or_else(|| default_duration(t, options));
    let end = Instant::START + duration;
    for n in 0..w.nodes.len() {
        w.start_models(n);
    }
    // Probes for every expectation (one per distinct flow).
    let mut keys: BTreeMap<ProbeKey, usize> = BTreeMap::new();
    let mut probe_of = |w: &mut World, key: ProbeKey| -> Result<usize, SimError> {
        if let Some(i) = keys.get(&key) {
            return Ok(*i);
        }
        let probe = make_probe(w, t, addressing, &key, options)?;
        if let ProbeKind::Udp { port } = probe.kind
            && let Some(n) = w.nodes.get_mut(key.to.index())
        {
            // The measurement's receiver (like `iperf3 -s -u`) runs there.
            n.udp_apps.insert(port);
        }
        let start = Instant::START + Span::secs(1) + Span::millis(10 * keys.len() as u64);
        let i = w.add_probe(probe, start);
        keys.insert(key, i);
        Ok(i)
    };
    let proto = |p: ProbeProto, port: Option<u16>| match p {
        ProbeProto::Icmp => (1, 0),
        ProbeProto::Tcp => (6, port.unwrap_or(0)),
        ProbeProto::Udp => (17, port.unwrap_or(0)),
    };
    let mut plan: Vec<(ExpectKind, usize, usize)> = Vec::new();
    for (i, f) in t.expect.reach.iter().enumerate() {
        let (pr, port) = proto(f.proto, f.port);
        plan.push((
            ExpectKind::Reach,
            i,
            probe_of(
                &mut w,
                ProbeKey {
                    from: f.from,
                    to: f.to,
                    via: f.via,
                    proto: pr,
                    port,
                },
            )?,
        ));
    }
    for (i, f) in t.expect.isolated.iter().enumerate() {
        let (pr, port) = proto(f.proto, f.port);
        plan.push((
            ExpectKind::Isolated,
            i,
            probe_of(
                &mut w,
                ProbeKey {
                    from: f.from,
                    to: f.to,
                    via: f.via,
                    proto: pr,
                    port,
                },
            )?,
        ));
    }
    for (i, f) in t.expect.recover.iter().enumerate() {
        let (pr, port) = proto(f.proto, f.port);
        plan.push((
            ExpectKind::Recover,
            i,
            probe_of(
                &mut w,
                ProbeKey {
                    from: f.from,
                    to: f.to,
                    via: f.via,
                    proto: pr,
                    port,
                },
            )?,
        ));
    }
    for (i, st) in t.expect.stream.iter().enumerate() {
        let probe = stream_probe(&mut w, t, addressing, st, options, end)?;
        plan.push((ExpectKind::Stream, i, probe));
    }
    for (i, spec) in options.probes.iter().enumerate() {
        let Some(id) = t.host_id(&spec.from) else {
            return Err(SimError::Probe {
                what: format!("probe {} -> {}", spec.from, spec.target),
                message: format!("no host named `{}`", spec.from),
            });
        };
        let to = w
            .addr_host
            .get(&spec.target)
            .map_or_else(|| spec.target.to_string(), |n| w.nodes[*n].name.clone());
        if let (ProbeKind::Udp { port }, Some(&n)) = (spec.kind, w.addr_host.get(&spec.target)) {
            w.nodes[n].udp_apps.insert(port);
        }
        let probe = Probe {
            node: id.index(),
            from: spec.from.clone(),
            to,
            target: spec.target,
            source: spec.source,
            kind: spec.kind,
            interval: options.probe_interval,
            timeout: options.probe_timeout,
            until: None,
            samples: Vec::new(),
            via: None,
        };
        // Spread over one interval after the expectations' probes, so that
        // thousands of probes still send once per interval each.
        let n = options.probes.len() as u64;
        let spread = Span::nanos(options.probe_interval.0 / n.max(1) * i as u64);
        let start = Instant::START + Span::secs(1) + Span::millis(10 * keys.len() as u64) + spread;
        w.add_probe(probe, start);
    }
    for p in &mut w.probes {
        p.until = Some(end);
    }
    // Bulk transfers for the throughput expectations.
    let first_event = t.events.iter().map(|e| Instant::START + e.at.into()).min();
    let tp_start = Instant::START + options.warmup;
    let measure_start = tp_start + options.throughput_rampup;
    let measure_stop = (measure_start + options.throughput_window)
        .min(first_event.unwrap_or(end))
        .min(end)
        .max(measure_start);
    for tp in &t.expect.throughput {
        let key = ProbeKey {
            from: tp.from,
            to: tp.to,
            via: tp.via,
            proto: 6,
            port: 0,
        };
        let target = make_probe(&w, t, addressing, &key, options)?.target;
        let port = w
            .nodes
            .get(tp.to.index())
            .and_then(|n| {
                n.tcp_listen
                    .iter()
                    .find(|(_, bound)| bound.is_none_or(|a| a == target))
                    .map(|(p, _)| *p)
            })
            .unwrap_or(crate::probe::BULK_DEFAULT_PORT);
        if let Some(n) = w.nodes.get_mut(tp.to.index()) {
            // Without a service to send to, the measurement brings its own
            // server (like `iperf3 -s`); a firewall may still stop it.
            n.tcp_listen.entry(port).or_insert(None);
        }
        let bulk =
            crate::probe::Bulk::new(tp.from.index(), tp.to.index(), target, port, measure_stop);
        let flow = w.bulks.len();
        w.bulks.push(bulk);
        w.q.schedule(tp_start, Ev::Bulk { flow });
    }
    // The timeline.
    for (i, e) in t.events.iter().enumerate() {
        w.q.schedule(Instant::START + e.at.into(), Ev::Timeline(i));
    }
    let mut records = Vec::new();
    let mut record_events = Vec::new();
    let mut timeline = |w: &mut World, i: usize| {
        if let Some(e) = t.events.get(i) {
            let what = apply_event(w, t, i, options);
            w.log(format!(
                "event {}: {what}",
                e.name.as_deref().unwrap_or("-")
            ));
            records.push(EventRecord {
                at: w.now(),
                name: e.name.clone(),
                what,
            });
            record_events.push(i);
        }
    };
    match &options.progress {
        None => w.run_until(end, &mut timeline),
        // In steps: every event due by a step's end runs before the call,
        // in the order it would run in one go.
        Some(progress) => {
            let mut reached = Instant::START;
            while reached < end {
                reached = (reached + PROGRESS_STEP).min(end);
                w.run_until(reached, &mut timeline);
                (progress.0)(reached.since(Instant::START), duration);
            }
        }
    }
    report_failed_procedures(&w, &mut records, &record_events);
    require_esp(&mut w, t, &keys);
    // Results.
    let probes: Vec<ProbeResult> = w.probes.iter().map(|p| probe_result(p, options)).collect();
    let mut expectations = Vec::new();
    for (kind, index, probe) in plan {
        let samples = &w.probes[probe].samples;
        let (from, to, via) = {
            let p = &probes[probe];
            (p.from.clone(), p.to.clone(), p.via.clone())
        };
        let (status, detail, evidence) = match kind {
            ExpectKind::Reach => {
                let start = Instant::START + options.warmup;
                let stop = first_event.unwrap_or(end).max(start);
                let ev = evidence(samples, start, stop, end, options.probe_timeout);
                let ok = ev.answered > 0 && ev.answered * 2 >= ev.sent;
                let detail = format!("{}/{} answered in the steady state", ev.answered, ev.sent);
                (if ok { Status::Pass } else { Status::Fail }, detail, ev)
            }
            ExpectKind::Isolated => {
                let ev = evidence(samples, Instant::START, end, end, options.probe_timeout);
                let detail = format!("{}/{} answered over the whole run", ev.answered, ev.sent);
                (
                    if ev.answered == 0 {
                        Status::Pass
                    } else {
                        Status::Fail
                    },
                    detail,
                    ev,
                )
            }
            ExpectKind::Recover => {
                let r = &t.expect.recover[index];
                let at = Instant::START
                    + t.events
                        .get(r.after.index())
                        .map_or(Span::ZERO, |e| e.at.into());
                let within: Span = r.within.into();
                let mut ev = evidence(samples, at, end, end, options.probe_timeout);
                ev.last_success = samples
                    .iter()
                    .filter(|s| s.sent < at && s.ok(options.probe_timeout))
                    .filter_map(|s| s.reply)
                    .next_back();
                ev.recovery = recovery(samples, at, within, end, options).map(|r| r.since(at));
                let name = t
                    .events
                    .get(r.after.index())
                    .and_then(|e| e.name.clone())
                    .unwrap_or_default();
                let (status, detail) = match ev.recovery {
                    Some(rec) if rec <= within => (
                        Status::Pass,
                        format!("recovered {rec} after `{name}` (deadline {within})"),
                    ),
                    Some(rec) => (
                        Status::Fail,
                        format!("recovered only {rec} after `{name}` (deadline {within})"),
                    ),
                    None => {
                        let last = samples
                            .iter()
                            .filter(|s| {
                                s.sent >= at
                                    && s.sent < at + within + options.recover_hold
                                    && !s.ok(options.probe_timeout)
                            })
                            .map(|s| s.sent)
                            .next_back();
                        let last = last.map_or(String::new(), |t| {
                            format!(" (last unanswered probe sent at {t})")
                        });
                        (
                            Status::Fail,
                            format!(
                                "reach did not come back to stay within {within} + {} after `{name}`{last}",
                                options.recover_hold
                            ),
                        )
                    }
                };
                (status, detail, ev)
            }
            ExpectKind::Throughput => (Status::NotMeasured, String::new(), Evidence::default()),
            ExpectKind::Stream => judge_stream(
                &t.expect.stream[index],
                &w.probes[probe],
                (Instant::START + options.warmup, first_event.unwrap_or(end)),
                end,
                options.probe_timeout,
            ),
        };
        expectations.push(ExpectationResult {
            kind,
            index,
            from,
            to,
            via,
            status,
            detail,
            evidence,
            probe: Some(probe),
        });
    }
    let mut transfers = Vec::new();
    for (i, (tp, b)) in t.expect.throughput.iter().zip(&w.bulks).enumerate() {
        let window = (measure_start, measure_stop);
        let bytes = b
            .delivered_at(measure_stop)
            .saturating_sub(b.delivered_at(measure_start));
        let goodput = b.goodput(measure_start, measure_stop);
        let tr = TransferResult {
            from: t.host(tp.from).name.clone(),
            to: t.host(tp.to).name.clone(),
            via: tp.via.map(|v| t.overlay_name(v).to_string()),
            target: b.target,
            port: b.port,
            window,
            goodput_bps: goodput,
            bytes,
            mss: b.wire.mss,
            receive_window: b.wire.peer_window,
            syns: b.wire.syns,
            segments: b.wire.segments,
            retransmits: b.wire.retransmits,
            rtt_min: b.wire.rtt_min,
            rtt_avg: b.wire.rtt_avg(),
            established: b.established,
            error: b.error.clone(),
        };
        let need = tp.at_least.bits_per_second();
        let rtt =
            |s: Option<Span>| s.map_or("-".to_string(), |s| format!("{:.1} ms", s.as_millis_f64()));
        let (status, detail) = if measure_stop <= measure_start {
            (
                Status::NotMeasured,
                format!(
                    "no time to measure: the first event comes before {measure_start} (warm-up + ramp-up)"
                ),
            )
        } else {
            let how = format!(
                "goodput {:.2} Mbit/s (at least {:.2} Mbit/s required) over {} from {measure_start}, \
                 one TCP flow (smoltcp, CUBIC) to {}:{}, MSS {}, receive window {} bytes; {} segments sent, \
                 {} retransmitted; RTT min {}, avg {}{}",
                goodput / 1e6,
                need as f64 / 1e6,
                measure_stop.since(measure_start),
                b.target,
                b.port,
                tr.mss,
                tr.receive_window,
                tr.segments,
                tr.retransmits,
                rtt(tr.rtt_min),
                rtt(tr.rtt_avg),
                match (&b.error, b.established, &b.last_error) {
                    (Some(e), _, _) => format!("; {e}"),
                    (None, None, None) =>
                        format!("; never connected ({} SYNs unanswered)", tr.syns),
                    (None, None, Some(e)) =>
                        format!("; never connected ({} SYNs sent; {e})", tr.syns),
                    (None, Some(_), Some(e)) => format!("; last ICMP error: {e}"),
                    (None, Some(_), None) => String::new(),
                }
            );
            let ok = b.established.is_some() && goodput >= need as f64;
            (if ok { Status::Pass } else { Status::Fail }, how)
        };
        expectations.push(ExpectationResult {
            kind: ExpectKind::Throughput,
            index: i,
            from: tr.from.clone(),
            to: tr.to.clone(),
            via: tr.via.clone(),
            status,
            detail,
            evidence: Evidence {
                window,
                first_error: b.error.clone(),
                ..Evidence::default()
            },
            probe: None,
        });
        transfers.push(tr);
    }
    let outages = outages(&records, &w.probes, end, options.probe_timeout);
    Ok(RunResult {
        scenario: t.name.clone(),
        seed,
        duration,
        probes,
        expectations,
        events: records,
        trace: std::mem::take(&mut w.trace),
        events_run: w.events_run,
        drops: std::mem::take(&mut w.drops),
        captures: w.captures.take().unwrap_or_default(),
        transfers,
        outages,
        sessions: std::mem::take(&mut w.sessions),
    })
}

/// Every probe that changed state at a timeline event, and how: see
/// [`Outage`]. Requests still unanswered when the run ends are left out.
fn outages(events: &[EventRecord], probes: &[Probe], end: Instant, timeout: Span) -> Vec<Outage> {
    let mut out = Vec::new();
    for (e, event) in events.iter().enumerate() {
        // Events at the same instant act together: their effects are the first's.
        if events[..e].iter().any(|x| x.at == event.at) {
            continue;
        }
        let next = events
            .iter()
            .map(|x| x.at)
            .filter(|at| *at > event.at)
            .min()
            .unwrap_or(end);
        for (i, probe) in probes.iter().enumerate() {
            let decided = |s: &&Sample| s.ok(timeout) || s.sent + timeout <= end;
            // A stream was up when a datagram sent in the last STREAM_GAP
            // arrived (the very last ones may be in flight at the event).
            let was_up = match probe.kind {
                ProbeKind::Stream { .. } => probe
                    .samples
                    .iter()
                    .filter(|s| s.sent < event.at && s.sent + STREAM_GAP >= event.at)
                    .any(|s| s.ok(timeout)),
                _ => probe
                    .samples
                    .iter()
                    .filter(decided)
                    .rfind(|s| s.sent < event.at)
                    .is_some_and(|s| s.ok(timeout)),
            };
            let after: Vec<&Sample> = probe
                .samples
                .iter()
                .filter(decided)
                .filter(|s| s.sent >= event.at && s.sent < next)
                .collect();
            let lost = after.iter().filter(|s| !s.ok(timeout)).count() as u32;
            let answered = after.len() as u32 - lost;
            let gaps = gaps(&after, timeout, probe);
            let changed = if was_up {
                !gaps.is_empty()
            } else {
                answered > 0
            };
            if !changed {
                continue;
            }
            let from = gaps.last().map_or(0, |&(_, last)| last + 1);
            out.push(Outage {
                event: e,
                probe: i,
                was_up,
                first_failure: gaps
                    .first()
                    .and_then(|&(k, _)| after.get(k))
                    .map(|s| s.sent),
                lost,
                recovered_after: after
                    .get(from)
                    .and_then(|s| s.reply)
                    .map(|r| r.since(event.at)),
            });
        }
    }
    out
}

/// A stream loses a datagram now and then on a lossy path; only a run of
/// losses this long is an outage.
const STREAM_GAP: Span = Span::millis(100);

/// Runs of unanswered samples in `after` (first and last index) long
/// enough to be an outage: every run for a probe, a run spanning at least
/// [`STREAM_GAP`] for a stream.
fn gaps(after: &[&Sample], timeout: Span, probe: &Probe) -> Vec<(usize, usize)> {
    let min = match probe.kind {
        ProbeKind::Stream { .. } => STREAM_GAP,
        _ => Span::ZERO,
    };
    let mut runs = Vec::new();
    let mut start: Option<usize> = None;
    for (k, s) in after.iter().enumerate() {
        match (s.ok(timeout), start) {
            (false, None) => start = Some(k),
            (true, Some(b)) => {
                runs.push((b, k - 1));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(b) = start {
        runs.push((b, after.len() - 1));
    }
    runs.retain(|&(b, l)| after[l].sent.since(after[b].sent) + probe.interval >= min);
    runs
}

/// `via` an IPsec deployment: the probe targets the destination's
/// underlay address, which routing alone might reach in cleartext, so a
/// sample counts as answered only when its request left some gateway of
/// that deployment inside ESP (the engine notes every probe request an
/// IPsec gateway encrypts, `World::esp_carried`). An answered sample whose
/// request did not is turned into a failure that says so. Only the request
/// is required: the expectation is about the path towards `to`.
fn require_esp(w: &mut World, t: &Topology, keys: &BTreeMap<ProbeKey, usize>) {
    for (key, &i) in keys {
        let Some(OverlayId::Ipsec(id)) = key.via else {
            continue;
        };
        let Some(d) = t.ipsec.get(id.index()) else {
            continue;
        };
        let gateways: std::collections::BTreeSet<usize> = d
            .hub
            .iter()
            .chain(&d.gateways)
            .chain(d.tunnels.iter().flat_map(|tn| [&tn.left, &tn.right]))
            .map(|h| h.index())
            .collect();
        let Some(probe) = w.probes.get_mut(i) else {
            continue;
        };
        let icmp = matches!(probe.kind, ProbeKind::Icmp { .. });
        for s in &mut probe.samples {
            if s.reply.is_none() {
                continue;
            }
            let seq = if icmp { s.seq & 0xffff } else { s.seq };
            let carried = w
                .esp_carried
                .get(&(i, seq))
                .is_some_and(|nodes| nodes.iter().any(|n| gateways.contains(n)));
            if !carried {
                s.reply = None;
                s.error = Some(format!(
                    "answered, but the request did not travel in ESP through a gateway of {}",
                    d.name
                ));
            }
        }
    }
}

/// A promotion procedure says in its timeline entry where its script
/// failed ("...; FAILED on node2 (usr/local/sbin/x.sh): `cmd`: why") and
/// on which hosts it could not run because they were down.
fn report_failed_procedures(w: &World, records: &mut [EventRecord], events: &[usize]) {
    for (record, event) in records.iter_mut().zip(events) {
        let runs = || w.scripts_run.iter().filter(|r| r.event == *event);
        let failures: Vec<String> = runs()
            .filter(|r| r.ran)
            .filter_map(|r| {
                r.failure
                    .as_ref()
                    .map(|f| format!("{} ({}): {f}", r.host, r.path))
            })
            .collect();
        let down: Vec<&str> = runs().filter(|r| !r.ran).map(|r| r.host.as_str()).collect();
        if !failures.is_empty() {
            record
                .what
                .push_str(&format!("; FAILED on {}", failures.join("; ")));
        }
        if !down.is_empty() {
            record
                .what
                .push_str(&format!("; not run on {} (down)", down.join(", ")));
        }
    }
}

/// When reach came back after the event at `at`: the reply time of the
/// first answered sample after the last unanswered one among the samples
/// sent in [`at`, `at` + `within` + `recover_hold`). A probe that still
/// gets through right after the event but fails a moment later has not
/// recovered; one that fails until the end of that window has not either.
fn recovery(
    samples: &[Sample],
    at: Instant,
    within: Span,
    end: Instant,
    options: &RunOptions,
) -> Option<Instant> {
    let stop = (at + within + options.recover_hold).min(end);
    let judged: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.sent >= at && s.sent < stop)
        .filter(|s| s.ok(options.probe_timeout) || s.sent + options.probe_timeout <= end)
        .collect();
    let after_last_failure = match judged.iter().rposition(|s| !s.ok(options.probe_timeout)) {
        Some(i) => i + 1,
        None => 0,
    };
    judged.get(after_last_failure).and_then(|s| s.reply)
}

fn default_duration(t: &Topology, options: &RunOptions) -> Span {
    let last = t
        .events
        .iter()
        .map(|e| Span::from(e.at))
        .max()
        .unwrap_or(Span::ZERO);
    let within = t
        .expect
        .recover
        .iter()
        .map(|r| Span::from(r.within))
        .max()
        .unwrap_or(Span::ZERO);
    (last + within + Span::secs(30)).max(options.warmup + Span::secs(30))
}

fn evidence(
    samples: &[Sample],
    start: Instant,
    stop: Instant,
    end: Instant,
    timeout: Span,
) -> Evidence {
    let mut ev = Evidence {
        window: (start, stop),
        ..Evidence::default()
    };
    for s in samples.iter().filter(|s| s.sent >= start && s.sent < stop) {
        let ok = s.ok(timeout);
        if !ok && s.sent + timeout > end {
            continue; // still in flight when the run ended
        }
        ev.sent += 1;
        if ok {
            ev.answered += 1;
            ev.last_success = s.reply;
        } else {
            if ev.first_failure.is_none() {
                ev.first_failure = Some(s.sent);
            }
            if ev.first_error.is_none() {
                ev.first_error.clone_from(&s.error);
            }
        }
    }
    ev
}

/// Places the probe of a UDP stream: `st.size`-byte datagrams (default:
/// the largest that fits the sender's route MTU) every `size * 8 / rate`
/// from the end of the warm-up to the end of the run, to a receiver on
/// the destination (like `iperf3 -s`).
fn stream_probe(
    w: &mut World,
    t: &Topology,
    addressing: &Addressing,
    st: &vpnsim_topology::model::StreamM,
    options: &RunOptions,
    end: Instant,
) -> Result<usize, SimError> {
    let key = ProbeKey {
        from: st.from,
        to: st.to,
        via: st.via,
        proto: 17,
        port: st.port,
    };
    let mut probe = make_probe(w, t, addressing, &key, options)?;
    let header = if probe.target.is_ipv4() { 28 } else { 48 };
    let len = st.size.unwrap_or_else(|| {
        w.path_mtu(probe.node, probe.target)
            .unwrap_or(1500)
            .saturating_sub(header)
            .max(vpnsim_topology::model::STREAM_MIN_SIZE)
    });
    let bits = u128::from(len) * 8 * 1_000_000_000;
    let interval = bits / u128::from(st.rate.bits_per_second().max(1));
    probe.interval = Span(u64::try_from(interval).unwrap_or(u64::MAX).max(1));
    probe.kind = ProbeKind::Stream { port: st.port, len };
    probe.until = Some(end);
    if let Some(n) = w.nodes.get_mut(st.to.index()) {
        n.udp_apps.insert(st.port);
    }
    Ok(w.add_probe(probe, Instant::START + options.warmup))
}

/// The verdict on a stream in the steady state `window`.
fn judge_stream(
    st: &vpnsim_topology::model::StreamM,
    probe: &Probe,
    window: (Instant, Instant),
    end: Instant,
    timeout: Span,
) -> (Status, String, Evidence) {
    let mut ev = evidence(&probe.samples, window.0, window.1, end, timeout);
    let f = crate::probe::StreamFigures::of(&probe.samples, window, end, timeout);
    let ProbeKind::Stream { len, port } = probe.kind else {
        return (Status::NotMeasured, String::new(), ev);
    };
    if f.sent == 0 {
        ev.window = window;
        return (
            Status::NotMeasured,
            format!(
                "no time to measure: the first event comes before {}",
                window.0
            ),
            ev,
        );
    }
    let loss = f.loss_hundredths();
    let secs = window.1.since(window.0).as_secs_f64();
    let delivered = f64::from(f.received) * f64::from(len) * 8.0 / secs.max(1e-9);
    let ms = |s: Option<Span>| s.map_or("-".to_string(), |s| format!("{:.2}", s.as_millis_f64()));
    let loss_ok = loss <= (st.max_loss * 100.0).round() as u64;
    let jitter_ok = st
        .max_jitter
        .is_none_or(|max| f.jitter.is_some_and(|j| j <= Span::from(max)));
    let detail = format!(
        "{:.2}% lost ({} of {} datagrams of {len} bytes to {}:{port}, one every {}.{:03} ms), \
         delivered {:.2} Mbit/s of {:.2} offered; one-way delay min/avg/max {}/{}/{} ms, \
         jitter {} ms, {} reordered (at most {:.2}% loss{} allowed)",
        loss as f64 / 100.0,
        f.sent - f.received,
        f.sent,
        probe.target,
        probe.interval.0 / 1_000_000,
        probe.interval.0 % 1_000_000 / 1_000,
        delivered / 1e6,
        st.rate.bits_per_second() as f64 / 1e6,
        ms(f.delay_min),
        ms(f.delay_avg),
        ms(f.delay_max),
        ms(f.jitter),
        f.reordered,
        st.max_loss,
        st.max_jitter.map_or(String::new(), |j| format!(
            ", jitter at most {}",
            Span::from(j)
        )),
    );
    let status = if loss_ok && jitter_ok {
        Status::Pass
    } else {
        Status::Fail
    };
    (status, detail, ev)
}

fn probe_result(p: &Probe, options: &RunOptions) -> ProbeResult {
    let rtts: Vec<Span> = p
        .samples
        .iter()
        .filter(|s| s.ok(options.probe_timeout))
        .filter_map(|s| s.rtt())
        .collect();
    let sum: u64 = rtts.iter().map(|r| r.0).sum();
    let whole_run = (Instant::START, Instant(u64::MAX));
    let end = p.until.unwrap_or(Instant(u64::MAX));
    ProbeResult {
        stream: matches!(p.kind, ProbeKind::Stream { .. }).then(|| {
            crate::probe::StreamFigures::of(&p.samples, whole_run, end, options.probe_timeout)
        }),
        interval: p.interval,
        from: p.from.clone(),
        to: p.to.clone(),
        via: p.via.clone(),
        target: p.target,
        kind: p.kind,
        samples: p.samples.clone(),
        sent: p.samples.len() as u32,
        answered: rtts.len() as u32,
        rtt_min: rtts.iter().min().copied(),
        rtt_avg: (!rtts.is_empty()).then(|| Span(sum / rtts.len() as u64)),
        rtt_max: rtts.iter().max().copied(),
    }
}

/// The address a probe aims at: the destination's address on the overlay
/// named by `via`, else its first interface address.
fn make_probe(
    w: &World,
    t: &Topology,
    addressing: &Addressing,
    key: &ProbeKey,
    options: &RunOptions,
) -> Result<Probe, SimError> {
    let from = t.host(key.from);
    let to = t.host(key.to);
    let what = format!("probe {} -> {}", from.name, to.name);
    let overlay_iface: Option<String> = match key.via {
        Some(OverlayId::Star(s)) => Some(t.stars[s.index()].interface.clone()),
        Some(OverlayId::Mesh(m)) => Some(t.meshes[m.index()].interface.clone()),
        Some(OverlayId::Bond(b)) => Some(t.bonds[b.index()].interface.clone()),
        Some(OverlayId::OpenVpn(_)) => addressing
            .entries
            .iter()
            .find(|e| e.host == key.to && e.interface.starts_with("tun"))
            .map(|e| e.interface.clone()),
        Some(OverlayId::Ipsec(_)) | None => None,
    };
    let from_overlay = overlay_iface.as_deref().and_then(|i| {
        addressing
            .on(key.to, i)
            .map(|e| e.address)
            .find(|a| a.is_ipv4())
            .or_else(|| addressing.on(key.to, i).map(|e| e.address).next())
    });
    let declared = match key.via {
        Some(OverlayId::Star(s)) => t.stars[s.index()].addresses.get(&key.to).copied(),
        _ => None,
    };
    let underlay = w.nodes.get(key.to.index()).and_then(|n| {
        n.ifaces
            .iter()
            .filter(|i| matches!(i.kind, IfaceKind::Underlay(_)))
            .flat_map(|i| i.addrs.iter())
            .map(|a| a.addr())
            .find(|a| a.is_ipv4())
            .or_else(|| {
                n.ifaces
                    .iter()
                    .flat_map(|i| i.addrs.iter())
                    .map(|a| a.addr())
                    .next()
            })
    });
    let target = from_overlay.or(declared).or(if overlay_iface.is_some() {
        None
    } else {
        underlay
    });
    let Some(target) = target else {
        return Err(SimError::Probe {
            what,
            message: format!("{} has no address to probe", to.name),
        });
    };
    let kind = match key.proto {
        6 => ProbeKind::Tcp { port: key.port },
        17 => ProbeKind::Udp { port: key.port },
        _ => ProbeKind::Icmp {
            len: options.ping_size,
        },
    };
    Ok(Probe {
        node: key.from.index(),
        from: from.name.clone(),
        to: to.name.clone(),
        target,
        source: None,
        kind,
        interval: options.probe_interval,
        timeout: options.probe_timeout,
        until: None,
        samples: Vec::new(),
        via: key.via.map(|v| t.overlay_name(v).to_string()),
    })
}

/// Carries out timeline entry `i`; returns what happened, for the record.
fn apply_event(w: &mut World, t: &Topology, i: usize, options: &RunOptions) -> String {
    let Some(e) = t.events.get(i) else {
        return String::new();
    };
    let host = e.host.map(|h| (h.index(), t.host(h).name.clone()));
    match e.action {
        EventAction::LinkDown | EventAction::LinkUp => {
            let up = e.action == EventAction::LinkUp;
            let word = if up { "up" } else { "down" };
            if let Some(l) = e.link {
                if let Some(s) = w.segs.get_mut(l.index()) {
                    s.set_up(up);
                }
                format!("link {} {word}", t.link(l).name)
            } else if let (Some((n, name)), Some(iface)) = (&host, &e.interface) {
                w.set_iface(*n, iface, up);
                format!("{name} {iface} {word}")
            } else {
                "link event without a link".into()
            }
        }
        EventAction::Crash => match host {
            Some((n, name)) => {
                w.crash(n);
                format!("{name} crashes")
            }
            None => String::new(),
        },
        EventAction::Restart => match host {
            Some((n, name)) => match w.restart(n) {
                Ok(()) => format!("{name} restarts"),
                Err(err) => format!("{name} restarts but cannot read its files: {err}"),
            },
            None => String::new(),
        },
        EventAction::Stop => match host {
            Some((n, name)) => {
                w.stop_daemons(n);
                // monit is not one of them: it keeps its poll cycle.
                crate::monit::resume(w, n);
                format!("{name} stops its VPN daemons")
            }
            None => String::new(),
        },
        EventAction::Start => match host {
            Some((n, name)) => {
                if let Some(files) = w.files.get(&n).cloned()
                    && let Err(err) = load::apply_files(w, n, &files)
                {
                    return format!("{name} cannot start its daemons: {err}");
                }
                w.start_models(n);
                format!("{name} starts its VPN daemons")
            }
            None => String::new(),
        },
        EventAction::Partition => {
            let groups: Vec<Vec<usize>> = e
                .groups
                .iter()
                .map(|g| g.iter().map(|h| h.index()).collect())
                .collect();
            let names: Vec<String> = e
                .groups
                .iter()
                .map(|g| {
                    g.iter()
                        .map(|h| t.host(*h).name.clone())
                        .collect::<Vec<_>>()
                        .join(",")
                })
                .collect();
            w.partitions.push(Partition {
                groups,
                one_way: e.one_way,
            });
            format!(
                "partition [{}]{}",
                names.join("] | ["),
                if e.one_way { " one way" } else { "" }
            )
        }
        EventAction::Heal => {
            w.partitions.clear();
            "partitions healed".into()
        }
        EventAction::LossBurst => {
            let (Some(l), Some(loss), Some(d)) = (e.link, e.loss, e.duration) else {
                return String::new();
            };
            let until = w.now() + d.into();
            if let Some(s) = w.segs.get_mut(l.index()) {
                s.burst = Some(((loss / 100.0).clamp(0.0, 1.0), until));
            }
            format!("{loss}% loss on {} until {until}", t.link(l).name)
        }
        EventAction::EndpointChange => {
            let (Some((n, name)), Some(addr)) = (host, e.address) else {
                return String::new();
            };
            let iface = e.interface.clone().or_else(|| {
                t.host(HostId(n as u32))
                    .interfaces
                    .first()
                    .map(|i| i.name.clone())
            });
            let Some(iface) = iface else {
                return format!("{name} has no interface");
            };
            w.change_address(n, &iface, addr);
            // WireGuard sends from the address a peer's datagrams came to;
            // that address may be gone now.
            if let Some(node) = w.nodes.get_mut(n) {
                for t in &mut node.tunnels {
                    if let crate::host::Engine::WireGuard(device) = &mut t.engine {
                        device.forget_local_sources();
                    }
                }
            }
            format!("{name} {iface} now has {addr}")
        }
        EventAction::Promote => {
            let (Some((_, name)), Some(star), Some(proc_)) = (host, e.star, e.procedure) else {
                return String::new();
            };
            let star = &t.stars[star.index()];
            let suffix = match proc_ {
                Procedure::AliveLeader => "alive",
                Procedure::DeadLeader => "dead",
            };
            let path = format!(
                "{}vpnsim-promote-{}-{name}-{suffix}.sh",
                load::SCRIPT_DIR,
                star.name
            );
            let mut steps = Vec::new();
            for member in star.members() {
                let n = member.index();
                let Some(text) = w.files.get(&n).and_then(|f| f.scripts.get(&path)) else {
                    continue;
                };
                let step = Script::parse(text)
                    .ok()
                    .and_then(|s| step_of(&s))
                    .unwrap_or(1);
                steps.push((step, n));
            }
            steps.sort();
            let order: Vec<String> = steps
                .iter()
                .map(|(_, n)| w.nodes[*n].name.clone())
                .collect();
            for (step, n) in &steps {
                let at = w.now()
                    + Span(
                        options
                            .promotion_step
                            .0
                            .saturating_mul(u64::from(step.saturating_sub(1))),
                    );
                w.q.schedule(
                    at,
                    Ev::Script {
                        node: *n,
                        path: path.clone(),
                        event: i,
                    },
                );
            }
            format!(
                "promote {name} to leader of {} ({suffix}-leader procedure, run on {})",
                star.name,
                order.join(", ")
            )
        }
    }
}

/// "This is node2: step 2 of 3." in a promotion script's header.
fn step_of(script: &Script) -> Option<u32> {
    script.header.iter().find_map(|c| {
        let text = c.as_str();
        let rest = &text[text.find("step ")? + 5..];
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sent: u64, reply: Option<u64>) -> Sample {
        Sample {
            seq: sent as u32,
            sent: Instant(sent * 1_000_000_000),
            reply: reply.map(|r| Instant(r * 1_000_000)),
            error: None,
        }
    }

    #[test]
    fn recovery_is_the_first_answer_after_the_last_failure() {
        let options = RunOptions::default();
        let end = Instant(1_000_000_000_000);
        // Answered at 10 s, lost 11..=14, answered again from 15 s on.
        let mut samples = vec![sample(10, Some(10_020))];
        samples.extend((11..15).map(|s| sample(s, None)));
        samples.extend((15..60).map(|s| sample(s, Some(s * 1000 + 20))));
        let at = Instant(10_000_000_000);
        let got = recovery(&samples, at, Span::secs(30), end, &options);
        assert_eq!(got, Some(Instant(15_020_000_000)));
        // Still failing at the end of deadline + hold: not recovered.
        let late: Vec<Sample> = (10..60)
            .map(|s| sample(s, if s < 12 { Some(s * 1000 + 20) } else { None }))
            .collect();
        assert_eq!(recovery(&late, at, Span::secs(30), end, &options), None);
    }

    #[test]
    fn the_step_of_a_promotion_script_comes_from_its_header() {
        let text =
            "#!/bin/sh\n# Old leader alive\n# This is node2: step 2 of 4.\n\nwg-quick save wg0\n";
        let script = Script::parse(text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(step_of(&script), Some(2));
    }
}

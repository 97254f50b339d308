//! What the simulation of `sim run` measured, as a stable JSON document and
//! as terminal text: one line per expectation with its verdict and the
//! probe evidence (last success, first failure, recovery time), then the
//! probes, the timeline as it ran and the drop counters.
//!
//! Times are seconds of virtual time since the start of the run, printed
//! with microsecond precision so equal runs give equal bytes.

use std::collections::BTreeMap;

use serde::Serialize;
use vpnsim_sim::run::{ExpectKind, RunResult, Status};
use vpnsim_sim::time::{Instant, Span};

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

fn span_ms(span: Span) -> String {
    format!("{}.{:03}", span.0 / 1_000_000, (span.0 % 1_000_000) / 1_000)
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
    pub expectations: Vec<ExpectationLine>,
    pub probes: Vec<ProbeLine>,
    pub timeline: Vec<TimelineLine>,
    pub drops: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ExpectationLine {
    /// `reach`, `isolated`, `recover`, `throughput`.
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
}

#[derive(Debug, Clone, Serialize)]
pub struct ProbeLine {
    pub from: String,
    pub to: String,
    pub target: String,
    pub sent: u32,
    pub answered: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_min_ms: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_avg_ms: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt_max_ms: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct TimelineLine {
    pub at_s: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub what: String,
}

fn kind_name(kind: ExpectKind) -> &'static str {
    match kind {
        ExpectKind::Reach => "reach",
        ExpectKind::Isolated => "isolated",
        ExpectKind::Recover => "recover",
        ExpectKind::Throughput => "throughput",
    }
}

fn status_name(status: Status) -> &'static str {
    match status {
        Status::Pass => "pass",
        Status::Fail => "fail",
        Status::NotMeasured => "not-measured",
    }
}

impl SimulationReport {
    pub fn new(result: &RunResult) -> Self {
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
                sent: e.evidence.sent,
                answered: e.evidence.answered,
                last_success_s: e.evidence.last_success.map(secs),
                first_failure_s: e.evidence.first_failure.map(secs),
                first_error: e.evidence.first_error.clone(),
                recovery_ms: e.evidence.recovery.map(span_ms),
            })
            .collect();
        let count = |s: &str| expectations.iter().filter(|e| e.status == s).count();
        SimulationReport {
            seed: result.seed,
            duration_s: secs(Instant(result.duration.0)),
            events_processed: result.events_run,
            passed: count("pass"),
            failed: count("fail"),
            not_measured: count("not-measured"),
            probes: result
                .probes
                .iter()
                .map(|p| ProbeLine {
                    from: p.from.clone(),
                    to: p.to.clone(),
                    target: p.target.to_string(),
                    sent: p.sent,
                    answered: p.answered,
                    rtt_min_ms: p.rtt_min.map(span_ms),
                    rtt_avg_ms: p.rtt_avg.map(span_ms),
                    rtt_max_ms: p.rtt_max.map(span_ms),
                })
                .collect(),
            timeline: result
                .events
                .iter()
                .map(|e| TimelineLine {
                    at_s: secs(e.at),
                    name: e.name.clone(),
                    what: e.what.clone(),
                })
                .collect(),
            drops: result.drops.clone(),
            expectations,
        }
    }

    /// Every expectation passed (a `not-measured` one does not).
    pub fn all_passed(&self) -> bool {
        self.failed == 0 && self.not_measured == 0
    }

    /// The terminal text: expectations, probes, timeline, drops.
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
            let mut t = Table::new(&[
                ("status", Align::Left),
                ("expectation", Align::Left),
                ("from", Align::Left),
                ("to", Align::Left),
                ("evidence", Align::Left),
            ]);
            for e in &self.expectations {
                if e.kind == "throughput" {
                    // The transfer's figures are the evidence.
                    let to = e
                        .via
                        .as_ref()
                        .map_or_else(|| e.to.clone(), |via| format!("{} via {via}", e.to));
                    t.row(vec![
                        e.status.to_uppercase(),
                        e.field.clone(),
                        e.from.clone(),
                        to,
                        e.detail.clone(),
                    ]);
                    continue;
                }
                let mut evidence = format!("{}/{} answered", e.answered, e.sent);
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
                let to = match &e.via {
                    Some(via) => format!("{} via {via}", e.to),
                    None => e.to.clone(),
                };
                t.row(vec![
                    e.status.to_uppercase(),
                    e.field.clone(),
                    e.from.clone(),
                    to,
                    evidence,
                ]);
            }
            out.push_str(&t.render("  "));
            for e in self
                .expectations
                .iter()
                .filter(|e| e.status != "pass" && e.kind != "throughput")
            {
                out.push_str(&format!("  {}: {}\n", e.field, e.detail));
            }
        }
        if !self.probes.is_empty() {
            out.push_str("\nProbes (ICMP echo)\n");
            let mut t = Table::new(&[
                ("from", Align::Left),
                ("to", Align::Left),
                ("target", Align::Left),
                ("answered", Align::Right),
                ("rtt min/avg/max ms", Align::Right),
            ]);
            for p in &self.probes {
                let rtt = match (&p.rtt_min_ms, &p.rtt_avg_ms, &p.rtt_max_ms) {
                    (Some(a), Some(b), Some(c)) => format!("{a}/{b}/{c}"),
                    _ => String::from("-"),
                };
                t.row(vec![
                    p.from.clone(),
                    p.to.clone(),
                    p.target.clone(),
                    format!("{}/{}", p.answered, p.sent),
                    rtt,
                ]);
            }
            out.push_str(&t.render("  "));
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

    /// JUnit XML: one testcase per expectation, for CI gates.
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
                "fail" => out.push_str(&format!("<failure message=\"{}\"/>", xml(&e.detail))),
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

/// `sim run --seeds N`: how each expectation fared over N seeds, and the
/// distribution of its measured recovery time.
#[derive(Debug, Clone, Serialize)]
pub struct SweepReport {
    pub seeds: Vec<u64>,
    pub expectations: Vec<SweepLine>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SweepLine {
    pub field: String,
    pub from: String,
    pub to: String,
    pub passed: usize,
    pub runs: usize,
    /// Recovery times in milliseconds over the runs that recovered.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recovery_ms: Option<Distribution>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Distribution {
    pub min: String,
    pub median: String,
    pub p90: String,
    pub max: String,
}

impl SweepReport {
    /// Expectations are matched by position: every run of one scenario has
    /// the same expectations in the same order.
    pub fn new(runs: &[RunResult]) -> Self {
        let seeds = runs.iter().map(|r| r.seed).collect();
        let Some(first) = runs.first() else {
            return SweepReport {
                seeds,
                expectations: Vec::new(),
            };
        };
        let expectations = first
            .expectations
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let of_runs: Vec<_> = runs.iter().filter_map(|r| r.expectations.get(i)).collect();
                let mut recoveries: Vec<Span> =
                    of_runs.iter().filter_map(|e| e.evidence.recovery).collect();
                recoveries.sort();
                let pick = |q: usize| recoveries[(recoveries.len() - 1) * q / 100];
                SweepLine {
                    field: format!("expect.{}[{}]", kind_name(e.kind), e.index),
                    from: e.from.clone(),
                    to: e.to.clone(),
                    passed: of_runs.iter().filter(|e| e.status == Status::Pass).count(),
                    runs: of_runs.len(),
                    recovery_ms: (!recoveries.is_empty()).then(|| Distribution {
                        min: span_ms(pick(0)),
                        median: span_ms(pick(50)),
                        p90: span_ms(pick(90)),
                        max: span_ms(pick(100)),
                    }),
                }
            })
            .collect();
        SweepReport {
            seeds,
            expectations,
        }
    }

    pub fn text(&self) -> String {
        let (first, last) = (
            self.seeds.first().copied().unwrap_or(0),
            self.seeds.last().copied().unwrap_or(0),
        );
        let mut out = format!(
            "\nSeed sweep: {} runs, seeds {first}..={last}\n",
            self.seeds.len()
        );
        let mut t = Table::new(&[
            ("expectation", Align::Left),
            ("from", Align::Left),
            ("to", Align::Left),
            ("passed", Align::Right),
            ("recovery ms min/median/p90/max", Align::Right),
        ]);
        for e in &self.expectations {
            let rec = e.recovery_ms.as_ref().map_or_else(
                || "-".to_string(),
                |d| format!("{}/{}/{}/{}", d.min, d.median, d.p90, d.max),
            );
            t.row(vec![
                e.field.clone(),
                e.from.clone(),
                e.to.clone(),
                format!("{}/{}", e.passed, e.runs),
                rec,
            ]);
        }
        out.push_str(&t.render("  "));
        out
    }

    pub fn all_passed(&self) -> bool {
        self.expectations.iter().all(|e| e.passed == e.runs)
    }
}

//! UDP streams (`expect.stream`): a constant-bitrate sender on one host's
//! stack, a receiver on the other's; loss, delay, jitter and outages come
//! from the datagrams themselves.

use vpnsim_sim::RunOptions;
use vpnsim_sim::probe::ProbeKind;
use vpnsim_sim::run::{ExpectKind, RunResult, Status};
use vpnsim_sim::time::Span;

use super::{PAIR, load, show, simulate};

fn stream_run(link: &str, stream: &str, extra: &str, seconds: u64) -> RunResult {
    let text = format!(
        "{}\n[[expect.stream]]\nfrom = \"a\"\nto = \"b\"\n{stream}\n{extra}",
        PAIR.replace("LOSS", link)
    );
    simulate(
        &load(&text),
        &RunOptions {
            duration: Some(Span::secs(seconds)),
            ..RunOptions::default()
        },
    )
}

fn stream_expectation(r: &RunResult) -> &vpnsim_sim::run::ExpectationResult {
    r.expectations
        .iter()
        .find(|e| e.kind == ExpectKind::Stream)
        .unwrap_or_else(|| panic!("no stream expectation: {}", show(r)))
}

fn stream_probe(r: &RunResult) -> &vpnsim_sim::run::ProbeResult {
    r.probes
        .iter()
        .find(|p| matches!(p.kind, ProbeKind::Stream { .. }))
        .unwrap_or_else(|| panic!("no stream probe: {}", show(r)))
}

/// Regression (issue 4): a 1 Mbit/s stream of default-size datagrams
/// (1472 bytes: the 1500-byte link MTU less the headers) is sent every
/// 11.776 ms, arrives after the link's 10 ms plus its serialisation, and
/// loses nothing on a clean link.
#[test]
fn issue_4_a_stream_on_a_clean_link_arrives_whole_at_the_links_delay() {
    let r = stream_run("", "rate = \"1Mbit\"", "", 60);
    let e = stream_expectation(&r);
    assert_eq!(e.status, Status::Pass, "{}", e.detail);
    let p = stream_probe(&r);
    assert_eq!(
        p.kind,
        ProbeKind::Stream {
            port: 5201,
            len: 1472
        }
    );
    assert_eq!(p.interval, Span::micros(11_776));
    let f = p.stream.unwrap_or_default();
    // Every datagram sent arrived, in order (those in flight when the run
    // ended are not counted as sent).
    assert_eq!(f.received, f.sent, "{f:?}");
    assert_eq!(f.received, p.answered);
    assert_eq!(f.reordered, 0);
    // 50 s of sending (from the 10 s warm-up) at 1 / 11.776 ms.
    assert!((4240..=4250).contains(&f.sent), "{f:?}");
    assert_eq!(f.delay_min, Some(Span::millis(10)), "{f:?}");
    assert_eq!(f.jitter, Some(Span::ZERO), "no jitter on the link: {f:?}");
    assert!(e.detail.starts_with("0.00% lost (0 of "), "{}", e.detail);
}

/// Regression (issue 4): the stream loses what the link loses, and fails
/// when that is more than `max_loss`.
#[test]
fn issue_4_a_stream_loses_at_the_links_loss_rate() {
    let r = stream_run("loss = 5", "rate = \"2Mbit\"\nsize = 500", "", 120);
    let f = stream_probe(&r).stream.unwrap_or_default();
    let loss = f64::from(f.sent - f.received) / f64::from(f.sent);
    assert!((0.04..0.06).contains(&loss), "{loss} {f:?}");
    let e = stream_expectation(&r);
    assert_eq!(e.status, Status::Fail, "5% is more than the default 1%");
    let r = stream_run(
        "loss = 5",
        "rate = \"2Mbit\"\nsize = 500\nmax_loss = 8",
        "",
        120,
    );
    assert_eq!(stream_expectation(&r).status, Status::Pass);
}

/// Regression (issue 4): offered twice the link's bandwidth, the stream
/// gets through at the link's rate and the rest overflows its queue; the
/// queue adds delay up to its 1000 frames.
#[test]
fn issue_4_a_stream_above_the_links_bandwidth_loses_the_excess() {
    let r = stream_run(
        "bandwidth = \"10Mbit\"",
        "rate = \"20Mbit\"\nsize = 472",
        "",
        40,
    );
    let f = stream_probe(&r).stream.unwrap_or_default();
    let delivered = f64::from(f.received) / f64::from(f.sent);
    assert!((0.45..0.56).contains(&delivered), "{delivered} {f:?}");
    // 1000 frames of 500 bytes at 10 Mbit/s wait 0.4 s at most.
    let max = f.delay_max.unwrap_or_default();
    assert!(
        max > Span::millis(300) && max < Span::millis(420),
        "{max} {f:?}"
    );
    assert!(r.drops.keys().any(|k| k.contains("queue")), "{:?}", r.drops);
}

/// Regression (issue 4): a link's jitter shows as the stream's RFC 3550
/// jitter, without reordering (the link keeps its order).
#[test]
fn issue_4_a_links_jitter_shows_in_the_streams_jitter() {
    let r = stream_run("jitter = \"4ms\"", "rate = \"500kbit\"\nsize = 200", "", 60);
    let f = stream_probe(&r).stream.unwrap_or_default();
    let jitter = f.jitter.unwrap_or_default();
    assert!(
        jitter > Span::micros(500) && jitter < Span::millis(8),
        "{jitter} {f:?}"
    );
    assert_eq!(f.reordered, 0);
    let r = stream_run(
        "jitter = \"4ms\"",
        "rate = \"500kbit\"\nsize = 200\nmax_jitter = \"100us\"",
        "",
        60,
    );
    assert_eq!(stream_expectation(&r).status, Status::Fail);
}

/// Regression (issue 4): a link outage cuts the stream for as long as the
/// link is down, and the timeline's effect counts the datagrams lost.
#[test]
fn issue_4_a_link_outage_cuts_the_stream_for_its_length() {
    let events = "[[events]]\nname = \"cut\"\nat = \"30s\"\naction = \"link-down\"\nlink = \"wire\"\n\
                  [[events]]\nname = \"mend\"\nat = \"35s\"\naction = \"link-up\"\nlink = \"wire\"\n";
    let r = stream_run("", "rate = \"1Mbit\"\nsize = 1000", events, 60);
    let probe = r
        .probes
        .iter()
        .position(|p| matches!(p.kind, ProbeKind::Stream { .. }))
        .unwrap_or_default();
    let cut = r
        .outages
        .iter()
        .find(|o| o.probe == probe && o.event == 0)
        .unwrap_or_else(|| panic!("no outage: {:?}", r.outages));
    assert!(cut.was_up);
    // 5 s at one datagram every 8 ms, and those in flight at the cut.
    assert!((625..=627).contains(&cut.lost), "{cut:?}");
    let back = r
        .outages
        .iter()
        .find(|o| o.probe == probe && o.event == 1)
        .unwrap_or_else(|| panic!("no recovery: {:?}", r.outages));
    let after = back.recovered_after.unwrap_or_default();
    assert!(after <= Span::millis(20), "{back:?}");
}

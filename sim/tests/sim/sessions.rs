//! Tunnel sessions (`RunResult::sessions`): the shipped scenarios say who
//! connected to whom and when, and the times follow the protocols' timers.

use vpnsim_sim::RunOptions;
use vpnsim_sim::run::RunResult;
use vpnsim_sim::time::{Instant, Span};
use vpnsim_sim::world::SessionChange;

use super::{shipped, simulate};

fn secs(s: u64) -> Instant {
    Instant::START + Span::secs(s)
}

fn changes<'a>(r: &'a RunResult, host: &str, tunnel: &str) -> Vec<&'a SessionChange> {
    r.sessions
        .iter()
        .filter(|c| c.host == host && c.tunnel == tunnel)
        .collect()
}

/// The server a client's session was with at `at`: the peer host of its
/// last `up` before then, if no `down` followed.
fn server_at(r: &RunResult, client: &str, at: Instant) -> Option<String> {
    let mut server = None;
    for c in changes(r, client, "tun0")
        .into_iter()
        .filter(|c| c.at <= at)
    {
        server = c.up.then(|| c.peer_host.clone()).flatten();
    }
    server
}

/// Regression (issue 4): eduvpn-multinode spreads its clients over both
/// nodes by DNS round-robin, and after node A crashes each of its clients
/// gives up on it at ping-restart (60 s of silence) and is connected to
/// node B within a few seconds of that (restart pause plus TLS set-up).
#[test]
fn issue_4_sessions_show_where_each_client_landed_and_where_it_went_after_a_crash() {
    let r = simulate(&shipped("eduvpn-multinode"), &RunOptions::default());
    let clients = ["client-1", "client-2", "client-3", "client-4"];
    let first: Vec<Option<String>> = clients.iter().map(|c| server_at(&r, c, secs(1))).collect();
    for (c, s) in clients.iter().zip(&first) {
        assert!(s.is_some(), "{c} connected within 1 s: {:?}", r.sessions);
    }
    for node in ["node-a", "node-b"] {
        assert!(
            first.iter().any(|s| s.as_deref() == Some(node)),
            "round-robin gave {node} a client: {first:?}"
        );
    }
    // Node A's crash ends its server's sessions at once.
    let crash = secs(120);
    let a_server: Vec<&SessionChange> = r
        .sessions
        .iter()
        .filter(|c| c.host == "node-a" && c.at == crash)
        .collect();
    assert!(!a_server.is_empty() && a_server.iter().all(|c| !c.up && c.why == "host crashed"));
    for (client, server) in clients.iter().zip(&first) {
        if server.as_deref() != Some("node-a") {
            assert_eq!(server_at(&r, client, secs(300)), server.clone(), "{client}");
            continue;
        }
        let after: Vec<&SessionChange> = changes(&r, client, "tun0")
            .into_iter()
            .filter(|c| c.at > crash)
            .collect();
        let [down, up, ..] = after.as_slice() else {
            panic!("{client}: down then up after the crash: {after:?}");
        };
        assert!(!down.up && down.why == "ping-restart", "{down:?}");
        assert!(
            down.at <= crash + Span::secs(60),
            "{client} noticed at {}",
            down.at
        );
        assert!(up.up && up.peer_host.as_deref() == Some("node-b"), "{up:?}");
        assert!(
            up.at.since(down.at) < Span::secs(5),
            "{client}: {down:?} {up:?}"
        );
    }
}

/// Regression (issue 4): in dual-path-bond a path re-joins the bond only
/// after the route-up script's `sleep 10`: every enslavement comes exactly
/// 10 s after its TAP link completed, and a path leaves the bond when its
/// link's ping-restart fires (route-pre-down).
#[test]
fn issue_4_a_bond_slave_joins_ten_seconds_after_its_link_and_leaves_with_it() {
    let r = simulate(&shipped("dual-path-bond"), &RunOptions::default());
    let mut joins = 0;
    for host in ["machine-a", "machine-b"] {
        for c in changes(&r, host, "bond0") {
            let link = changes(&r, host, &c.peer)
                .into_iter()
                .rfind(|l| l.at <= c.at && l.up == c.up)
                .unwrap_or_else(|| panic!("{host} {}: no link change before {c:?}", c.peer));
            if c.up {
                joins += 1;
                assert_eq!(c.why, "enslaved (route-up script)");
                assert_eq!(c.at.since(link.at), Span::secs(10), "{c:?} after {link:?}");
            } else {
                assert_eq!(c.why, "released (route-pre-down)");
                assert_eq!((c.at, link.why.as_str()), (link.at, "ping-restart"));
            }
        }
    }
    // Both slaves at boot, then each return after isp-a-up, isp-b-up,
    // isp-a-return and isp-b-return, on both machines.
    assert_eq!(joins, 2 * 2 + 2 * 4, "{:?}", r.sessions);
}

/// Regression (issue 4): the hub's IPsec SAs end with its crash and are
/// established again after its restart; in the WireGuard star, workers
/// hold sessions with the promoted leader after the promotion.
#[test]
fn issue_4_ipsec_and_wireguard_sessions_follow_crashes_and_promotions() {
    let r = simulate(&shipped("aws-three-regions"), &RunOptions::default());
    let hub = changes(&r, "vpn-virginia", "ipsec");
    for conn in ["vpc1-to-vpc2", "vpc1-to-vpc3"] {
        let of: Vec<(bool, Instant)> = hub
            .iter()
            .filter(|c| c.peer == conn)
            .map(|c| (c.up, c.at))
            .collect();
        assert!(
            matches!(of.as_slice(), [(true, a), (false, b), (true, c)]
                if *a < secs(1) && *b == secs(120) && *c > secs(180) && *c < secs(185)),
            "{conn}: {of:?}"
        );
    }

    let r = simulate(&shipped("wireguard-star"), &RunOptions::default());
    let node3_key = r
        .sessions
        .iter()
        .find(|c| c.peer_host.as_deref() == Some("node3"))
        .map(|c| c.peer.clone())
        .expect("a session with node3");
    for worker in ["node2", "node4"] {
        assert!(
            changes(&r, worker, "wg0")
                .iter()
                .any(|c| c.up && c.peer == node3_key && c.at > secs(180) && c.at < secs(190)),
            "{worker} has a session with node3 after its promotion: {:?}",
            r.sessions
        );
    }
}

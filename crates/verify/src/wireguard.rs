//! WireGuard stars: cryptokey routing on the hub and a worker that can take
//! over as hub.
//!
//! Codes: `allowed-ips-overlap`, `no-promotion-candidate`.
//!
//! Semantics chosen where the brief is silent:
//! - `allowed-ips-overlap` looks at the hub's interface, whose peers are the
//!   workers (AllowedIPs = the worker's overlay address from the plan plus
//!   its `allowed_ips`). A pair is reported when one worker's extra entry
//!   overlaps the other's extra entry or overlay address; two equal overlay
//!   addresses are `duplicate-address`, not this. WireGuard keeps an
//!   identical prefix on one peer only (the later `wg set` takes it); a
//!   contained prefix is kept but longest-prefix match sends the inner range
//!   to one peer and the hub drops packets from the other peer sourced in
//!   it. Both are reported (Error) with the consequence spelled out. The
//!   finding sits at `allowed_ips.<worker>` of the worker whose extra entry
//!   is involved (the later one when both are). Worker interfaces have one
//!   peer, the hub, so nothing can overlap there.
//! - `no-promotion-candidate` is one finding per star with at least one
//!   worker when no worker qualifies; the message lists why each worker's
//!   endpoint does not count. A worker's endpoint qualifies when its port
//!   is the star's listen port and it is one of the worker's public
//!   addresses, or a DNS name whose records (`[dns]`) include one of the
//!   worker's public addresses and nothing else (a name that also points to
//!   another machine sends some dialers to the wrong host). The hub's own
//!   endpoint is not checked here.

use std::net::IpAddr;

use ipnet::IpNet;
use vpnsim_plan::Attachment;
use vpnsim_topology::Diagnostic;
use vpnsim_topology::model::{EndpointHost, HostId, StarId, StarM, Topology};

use crate::Ctx;
use crate::check_util::{finding, host_name, join_names, overlaps, public_addresses};

pub fn check(ctx: &Ctx<'_>) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let mut out = Vec::new();
    for (i, star) in t.stars.iter().enumerate() {
        out.extend(allowed_ips_overlap(ctx, StarId(i as u32), star));
        out.extend(no_promotion_candidate(ctx, star));
    }
    out
}

/// One AllowedIPs entry of a worker peer on the hub.
#[derive(Debug, Clone, Copy)]
struct Entry {
    net: IpNet,
    /// From `allowed_ips` (true) or the worker's overlay address (false).
    extra: bool,
}

fn peer_entries(ctx: &Ctx<'_>, id: StarId, star: &StarM, worker: HostId) -> Vec<Entry> {
    let mut out: Vec<Entry> = ctx
        .plan
        .host_addresses(worker)
        .filter(|a| a.attachment == Attachment::Star(id))
        .map(|a| Entry {
            net: IpNet::from(a.address),
            extra: false,
        })
        .collect();
    if let Some(extra) = star.allowed_ips.get(&worker) {
        out.extend(extra.iter().map(|n| Entry {
            net: *n,
            extra: true,
        }));
    }
    out
}

fn describe(entry: &Entry, worker: &str) -> String {
    if entry.extra {
        format!("{} in the allowed_ips of `{worker}`", entry.net)
    } else {
        format!("{} (the overlay address of `{worker}`)", entry.net)
    }
}

fn allowed_ips_overlap(ctx: &Ctx<'_>, id: StarId, star: &StarM) -> Vec<Diagnostic> {
    let t = ctx.topology();
    let hub = host_name(t, star.hub);
    let peers: Vec<(HostId, Vec<Entry>)> = star
        .workers
        .iter()
        .map(|w| (*w, peer_entries(ctx, id, star, *w)))
        .collect();
    let mut out = Vec::new();
    for (j, (later, later_entries)) in peers.iter().enumerate() {
        for (earlier, earlier_entries) in peers.iter().take(j) {
            for b in later_entries {
                for a in earlier_entries {
                    if !(a.extra || b.extra) || !overlaps(&a.net, &b.net) {
                        continue;
                    }
                    let (an, bn) = (host_name(t, *earlier), host_name(t, *later));
                    let at = if b.extra { bn } else { an };
                    let consequence = if a.net == b.net {
                        format!(
                            "WireGuard keeps a prefix on one peer only, so the hub silently routes {} to whichever peer was configured last",
                            a.net
                        )
                    } else {
                        let (inner, inner_host, outer_host) = if a.net.contains(&b.net) {
                            (b.net, bn, an)
                        } else {
                            (a.net, an, bn)
                        };
                        format!(
                            "longest-prefix match sends {inner} to `{inner_host}`, and the hub drops packets from `{outer_host}` whose source is in {inner}"
                        )
                    };
                    out.push(finding(
                        ctx,
                        "allowed-ips-overlap",
                        &star.path.key("allowed_ips").key(at),
                        format!(
                            "on `{hub}` {} (star `{}`), peer AllowedIPs overlap: {} and {}; {consequence}; make the workers' allowed_ips disjoint and keep them off the other workers' overlay addresses",
                            star.interface,
                            star.name,
                            describe(b, bn),
                            describe(a, an)
                        ),
                    ));
                }
            }
        }
    }
    out
}

/// Why a worker's endpoint cannot serve as the new hub's endpoint, or `None`
/// when it can.
fn endpoint_problem(t: &Topology, star: &StarM, worker: HostId) -> Option<String> {
    let name = host_name(t, worker);
    let Some(endpoint) = star.endpoints.get(&worker) else {
        return Some(format!("`{name}` has no endpoint"));
    };
    let own = public_addresses(t, worker);
    let own_list = || {
        if own.is_empty() {
            format!("`{name}` has no public address")
        } else {
            let list: Vec<String> = own.iter().map(ToString::to_string).collect();
            format!("`{name}`'s public addresses are {}", list.join(", "))
        }
    };
    let problem = match &endpoint.host {
        EndpointHost::Ip(ip) if !own.contains(ip) => Some(format!(
            "endpoint {endpoint} of `{name}` is not one of its public addresses ({})",
            own_list()
        )),
        EndpointHost::Ip(_) => None,
        EndpointHost::Dns(dns) => {
            let wanted = dns.trim_end_matches('.');
            match t
                .dns
                .iter()
                .find(|r| r.name.trim_end_matches('.') == wanted)
            {
                None => Some(format!(
                    "endpoint {endpoint} of `{name}` has no DNS record in [dns]"
                )),
                Some(record) => {
                    let resolved: Vec<IpAddr> = record
                        .a
                        .iter()
                        .copied()
                        .map(IpAddr::V4)
                        .chain(record.aaaa.iter().copied().map(IpAddr::V6))
                        .collect();
                    let foreign: Vec<String> = resolved
                        .iter()
                        .filter(|a| !own.contains(a))
                        .map(ToString::to_string)
                        .collect();
                    if !resolved.iter().any(|a| own.contains(a)) {
                        let list: Vec<String> = resolved.iter().map(ToString::to_string).collect();
                        Some(format!(
                            "endpoint {endpoint} of `{name}` resolves to {}, none of which is `{name}`'s ({})",
                            list.join(", "),
                            own_list()
                        ))
                    } else if !foreign.is_empty() {
                        Some(format!(
                            "endpoint {endpoint} of `{name}` also resolves to {}, which is not `{name}`, so some workers would dial the wrong machine",
                            foreign.join(", ")
                        ))
                    } else {
                        None
                    }
                }
            }
        }
    };
    problem.or_else(|| {
        (endpoint.port != star.port).then(|| {
            format!(
                "endpoint {endpoint} of `{name}` uses port {} but the star listens on udp/{}",
                endpoint.port, star.port
            )
        })
    })
}

fn no_promotion_candidate(ctx: &Ctx<'_>, star: &StarM) -> Vec<Diagnostic> {
    let t = ctx.topology();
    if star.workers.is_empty() {
        return Vec::new();
    }
    let mut problems = Vec::new();
    for worker in &star.workers {
        match endpoint_problem(t, star, *worker) {
            None => return Vec::new(),
            Some(p) => problems.push(p),
        }
    }
    let with_public: Vec<&str> = star
        .workers
        .iter()
        .filter(|w| !public_addresses(t, **w).is_empty())
        .map(|w| host_name(t, *w))
        .collect();
    let fix = match star.workers.iter().find_map(|w| public_addresses(t, *w).first().map(|a| (*w, *a))) {
        Some((w, a)) => {
            let endpoint = match a {
                IpAddr::V6(v6) => format!("[{v6}]:{}", star.port),
                IpAddr::V4(v4) => format!("{v4}:{}", star.port),
            };
            format!(
                "give a worker with a public address ({}) an endpoint, e.g. {} = \"{endpoint}\" in [wireguard.{}.endpoints]",
                join_names(&with_public),
                host_name(t, w),
                star.name
            )
        }
        None => "give at least one worker a public address and an endpoint (address:port or a DNS name in [dns]) that the other members can reach".into(),
    };
    let field = if star.endpoints.is_empty() {
        star.path.clone()
    } else {
        star.path.key("endpoints")
    };
    vec![finding(
        ctx,
        "no-promotion-candidate",
        &field,
        format!(
            "no worker of star `{}` can take over as hub if `{}` fails: {}; {fix}",
            star.name,
            host_name(t, star.hub),
            problems.join("; ")
        ),
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check_util::testing::{fields, run, with_code};

    fn star(extra: &str) -> String {
        format!(
            r#"[scenario]
name = "t"
seed = 1
[links.internet]
kind = "wan"
[sites.s]
kind = "datacenter"
[hosts.leader]
site = "s"
interfaces = [{{ name = "eth0", link = "internet", address = "192.0.2.1" }}]
[hosts.worker-2]
site = "s"
interfaces = [{{ name = "eth0", link = "internet", address = "192.0.2.2" }}]
[hosts.worker-3]
site = "s"
public_address = "198.51.100.3"
[hosts.worker-4]
site = "s"
[wireguard.cluster]
cidr = "10.5.4.0/24"
port = 55820
hub = "leader"
workers = ["worker-2", "worker-3", "worker-4"]
{extra}
"#
        )
    }

    #[test]
    fn disjoint_allowed_ips_are_fine() {
        let text = star(
            r#"endpoints = { leader = "192.0.2.1:55820", worker-2 = "192.0.2.2:55820" }
allowed_ips = { leader = ["10.0.0.0/8"], worker-2 = ["192.168.2.0/24"], worker-3 = ["192.168.3.0/24"] }"#,
        );
        assert!(run(check, &text).is_empty());
    }

    #[test]
    fn overlapping_worker_allowed_ips() {
        let text = star(
            r#"endpoints = { leader = "192.0.2.1:55820", worker-2 = "192.0.2.2:55820" }
allowed_ips = { worker-2 = ["192.168.2.0/24", "10.5.4.0/24"], worker-3 = ["192.168.2.0/24"], worker-4 = ["192.168.2.128/25"] }"#,
        );
        let findings = run(check, &text);
        // worker-2's 10.5.4.0/24 swallows the overlay addresses of worker-3
        // and worker-4 (reported at worker-2, whose entry it is); the
        // 192.168.2.0/24 entries collide pairwise (reported at the later).
        assert_eq!(
            fields(&findings, "allowed-ips-overlap"),
            [
                "wireguard.cluster.allowed_ips.worker-2",
                "wireguard.cluster.allowed_ips.worker-3",
                "wireguard.cluster.allowed_ips.worker-2",
                "wireguard.cluster.allowed_ips.worker-4",
                "wireguard.cluster.allowed_ips.worker-4",
            ]
        );
        let d = with_code(&findings, "allowed-ips-overlap");
        assert!(
            d[0].message.contains(
                "10.5.4.3/32 (the overlay address of `worker-3`) and 10.5.4.0/24 in the allowed_ips of `worker-2`"
            ),
            "{}",
            d[0].message
        );
        assert!(
            d[0].message
                .contains("longest-prefix match sends 10.5.4.3/32 to `worker-3`"),
            "{}",
            d[0].message
        );
        assert!(
            d[1].message.contains(
                "192.168.2.0/24 in the allowed_ips of `worker-3` and 192.168.2.0/24 in the allowed_ips of `worker-2`"
            ),
            "{}",
            d[1].message
        );
        assert!(d[1].message.contains("whichever peer was configured last"));
        assert!(
            d.iter()
                .all(|d| d.severity == vpnsim_topology::Severity::Error)
        );
    }

    #[test]
    fn promotion_candidate_by_ip_or_dns() {
        let by_ip =
            star(r#"endpoints = { leader = "192.0.2.1:55820", worker-3 = "198.51.100.3:55820" }"#);
        assert!(run(check, &by_ip).is_empty());
        let by_dns = star(
            r#"endpoints = { leader = "192.0.2.1:55820", worker-3 = "node3.example.com:55820" }
[dns."node3.example.com"]
hosts = ["worker-3"]"#,
        );
        assert!(run(check, &by_dns).is_empty());
    }

    #[test]
    fn no_candidate_says_why() {
        let text = star(
            r#"endpoints = { leader = "192.0.2.1:55820", worker-2 = "192.0.2.9:55820", worker-3 = "node3.example.com:55820", worker-4 = "node4.example.com:55820" }
[dns."node4.example.com"]
a = ["192.0.2.2"]"#,
        );
        let findings = run(check, &text);
        assert_eq!(
            fields(&findings, "no-promotion-candidate"),
            ["wireguard.cluster.endpoints"]
        );
        let d = with_code(&findings, "no-promotion-candidate");
        let m = &d[0].message;
        assert_eq!(d[0].severity, vpnsim_topology::Severity::Warning);
        assert!(m.contains("if `leader` fails"), "{m}");
        assert!(
            m.contains("endpoint 192.0.2.9:55820 of `worker-2` is not one of its public addresses"),
            "{m}"
        );
        assert!(
            m.contains("endpoint node3.example.com:55820 of `worker-3` has no DNS record in [dns]"),
            "{m}"
        );
        assert!(m.contains("endpoint node4.example.com:55820 of `worker-4` resolves to 192.0.2.2, none of which is `worker-4`'s (`worker-4` has no public address)"), "{m}");
        assert!(m.contains("worker-2 = \"192.0.2.2:55820\""), "{m}");
    }

    #[test]
    fn missing_endpoints_and_wrong_port() {
        let none = star("");
        let findings = run(check, &none);
        assert_eq!(
            fields(&findings, "no-promotion-candidate"),
            ["wireguard.cluster"]
        );
        assert!(findings[0].message.contains("`worker-4` has no endpoint"));
        let port = star(r#"endpoints = { worker-3 = "198.51.100.3:51820" }"#);
        let findings = run(check, &port);
        assert!(
            findings[0]
                .message
                .contains("uses port 51820 but the star listens on udp/55820"),
            "{}",
            findings[0].message
        );
    }
}

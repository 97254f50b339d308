//! A WireGuard star of any size for render and simulator benchmarks: one hub
//! and `workers` workers on a shared WAN link, as in the NethServer cluster
//! write-up (udp/55820, persistent keepalive 25 s), with every tenth worker
//! publishing an endpoint (a promotion candidate). Overlay addresses are
//! left to the plan. The overlay is a /18 for up to 16,381 workers, a /16
//! beyond.
//!
//! A pure function of `workers`; written as scenario text directly, which is
//! much faster than building a `ScenarioFile` for 10,000 hosts.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

/// Public (benchmarking range 198.18.0.0/15) address of node `index`.
fn public_address(index: usize) -> Ipv4Addr {
    let base = u32::from(Ipv4Addr::new(198, 18, 0, 1));
    Ipv4Addr::from(base + index as u32)
}

/// Scenario text of a star with `workers` workers (at most 100,000).
pub fn star_text(workers: usize) -> String {
    let workers = workers.min(100_000);
    let cidr = if workers < 16_381 {
        "10.5.0.0/18"
    } else {
        "10.4.0.0/14"
    };
    let mut s = String::with_capacity(workers * 200);
    let _ = write!(
        s,
        "[scenario]\nname = \"star-{workers}\"\nseed = 1\n\n\
         [links.internet]\nkind = \"wan\"\nlatency = \"30ms\"\nbandwidth = \"1Gbit\"\n\n\
         [sites.dc]\nkind = \"datacenter\"\n\n"
    );
    let names: Vec<String> = (0..=workers).map(|i| format!("n{i:05}")).collect();
    for (i, name) in names.iter().enumerate() {
        let role = if i == 0 { "hub" } else { "spoke" };
        let _ = write!(
            s,
            "[hosts.{name}]\nsite = \"dc\"\nroles = [\"{role}\"]\nforwarding = {}\n\
             interfaces = [{{ name = \"eth0\", link = \"internet\", address = \"{}\" }}]\n\n",
            i == 0 || i % 10 == 0,
            public_address(i)
        );
    }
    let _ = write!(
        s,
        "[wireguard.cluster]\ninterface = \"wg0\"\ncidr = \"{cidr}\"\nport = 55820\nhub = \"{}\"\n\
         persistent_keepalive = \"25s\"\nworkers = [\n",
        names[0]
    );
    for name in &names[1..] {
        let _ = writeln!(s, "  \"{name}\",");
    }
    s.push_str("]\n\n[wireguard.cluster.endpoints]\n");
    for (i, name) in names.iter().enumerate().filter(|(i, _)| i % 10 == 0) {
        let _ = writeln!(s, "{name} = \"{}:55820\"", public_address(i));
    }
    s
}

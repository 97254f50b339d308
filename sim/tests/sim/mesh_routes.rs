//! A static route whose gateway is a PeerVPN mesh member: the switch sends
//! the frame to that member (the one ARP finds for the gateway), which
//! forwards it if it routes. `sim check` and `sim run` agree.

use vpnsim_sim::RunOptions;
use vpnsim_sim::run::Status;

use super::{load, show, simulate};

/// x reaches z, on y's LAN, by a route via y's mesh address; z routes the
/// mesh network back via y.
const THROUGH_A_MEMBER: &str = r#"
[scenario]
name = "mesh-route"
seed = 1
[links.net]
kind = "wan"
latency = "5ms"
[sites.dc]
kind = "datacenter"
cidrs = ["10.2.1.0/24"]
[subnets.lan-y]
site = "dc"
cidr = "10.2.1.0/24"
[sites.road]
kind = "roaming"
[hosts.x]
site = "road"
interfaces = [{ name = "eth0", link = "net", address = "198.51.100.1" }]
routes = [{ to = "10.2.1.0/24", via = "10.201.0.2" }]
[hosts.y]
site = "dc"
FORWARDING
interfaces = [
  { name = "eth0", link = "net", address = "198.51.100.2" },
  { name = "eth1", subnet = "lan-y", address = "10.2.1.11" },
]
[hosts.z]
site = "dc"
interfaces = [{ name = "eth0", subnet = "lan-y", address = "10.2.1.20" }]
routes = [{ to = "10.201.0.0/24", via = "10.2.1.11" }]
[mesh.m]
network_name = "mgmt"
cidr = "10.201.0.0/24"
members = [{ host = "x", init_peers = ["y"] }, { host = "y" }]
[[expect.reach]]
from = "x"
to = "z"
"#;

/// (static verdict holds, simulated verdict).
fn verdicts(forwarding: bool) -> (bool, Status, String) {
    let text = THROUGH_A_MEMBER.replace(
        "FORWARDING",
        if forwarding { "forwarding = true" } else { "" },
    );
    let scenario = load(&text);
    let plan = vpnsim_plan::plan(&scenario).plan;
    let static_ok = !vpnsim_verify::check(&scenario, &plan)
        .iter()
        .any(|d| d.code == "intent-violation");
    let r = simulate(&scenario, &RunOptions::default());
    (static_ok, r.expectations[0].status, show(&r))
}

/// Regression (issue 4): the mesh is a switch, so a route through a
/// member works end to end; both the static check and the simulation say
/// so, and both refuse it when the member does not forward.
#[test]
fn issue_4_a_route_through_a_mesh_member_reaches_the_network_behind_it() {
    let (static_ok, sim, evidence) = verdicts(true);
    assert!(static_ok);
    assert_eq!(sim, Status::Pass, "{evidence}");
    let (static_ok, sim, evidence) = verdicts(false);
    assert!(!static_ok);
    assert_eq!(sim, Status::Fail, "{evidence}");
    assert!(
        evidence.contains("net.ipv4.ip_forward is off"),
        "{evidence}"
    );
}

//! Static verification of a planned scenario: every finding at once, each
//! with a stable code, a severity and the field to change.
//!
//! Map:
//! - [`addressing`]: `cidr-overlap`, `subnet-outside-site`, `duplicate-address`,
//!   `address-outside-subnet`, `public-address-space`.
//! - [`wireguard`]: `allowed-ips-overlap`, `no-promotion-candidate`.
//! - [`services`]: `port-conflict`, `profile-range-collision`, `daemon-port-exposed`.
//! - [`mtu`]: `mtu-budget` (nested encapsulation overhead).
//! - [`reach`]: the static forwarding model (routes, forwarding, source/dest
//!   checks, tunnels, firewalls) behind `intent-violation`,
//!   `single-point-of-failure`, `routing-loop`, `management-ip-mismatch`,
//!   `management-unreachable` and the reachability matrix.
//!
//! Architecture invariant: verification is pure: it reads the topology and
//! the plan and returns diagnostics; it never touches files or the network.

pub mod addressing;
pub(crate) mod check_util;
pub mod mtu;
pub mod reach;
pub mod services;
pub mod wireguard;

use vpnsim_plan::Plan;
use vpnsim_topology::{Diagnostic, FieldPath, Scenario, Severity, Topology};

/// What every check reads.
#[derive(Debug, Clone, Copy)]
pub struct Ctx<'a> {
    pub scenario: &'a Scenario,
    pub plan: &'a Plan,
}

impl<'a> Ctx<'a> {
    pub fn topology(&self) -> &'a Topology {
        &self.scenario.topology
    }

    /// A finding located at a field of the scenario file.
    pub fn finding(
        &self,
        code: &str,
        severity: Severity,
        field: &FieldPath,
        message: impl Into<String>,
    ) -> Diagnostic {
        self.scenario.diagnostic(code, severity, field, message)
    }
}

/// Every finding code this crate can emit, with its severity, for docs and
/// for `sim check --explain`.
pub const CODES: &[(&str, Severity, &str)] = &[
    (
        "cidr-overlap",
        Severity::Error,
        "two ranges that must be disjoint overlap",
    ),
    (
        "subnet-outside-site",
        Severity::Error,
        "a subnet is not inside any of its site's CIDRs",
    ),
    (
        "duplicate-address",
        Severity::Error,
        "one address is given to two interfaces in one routing domain",
    ),
    (
        "address-outside-subnet",
        Severity::Error,
        "an interface address is not inside the prefix of its subnet or link",
    ),
    (
        "public-address-space",
        Severity::Warning,
        "a range used as private is public address space",
    ),
    (
        "allowed-ips-overlap",
        Severity::Error,
        "two WireGuard peers of one interface share AllowedIPs",
    ),
    (
        "no-promotion-candidate",
        Severity::Warning,
        "no worker of a star has a reachable endpoint to take over as hub",
    ),
    (
        "port-conflict",
        Severity::Error,
        "two services listen on the same protocol, port and address",
    ),
    (
        "profile-range-collision",
        Severity::Error,
        "two VPN profiles share a client range",
    ),
    (
        "daemon-port-exposed",
        Severity::Error,
        "the vpn-daemon port is reachable from beyond the controller",
    ),
    (
        "mtu-budget",
        Severity::Warning,
        "the path MTU after encapsulation is below what the inner interface assumes",
    ),
    (
        "intent-violation",
        Severity::Error,
        "a declared reach or isolation does not hold under static routing",
    ),
    (
        "single-point-of-failure",
        Severity::Warning,
        "losing one host cuts declared reachability",
    ),
    (
        "routing-loop",
        Severity::Error,
        "static routes send a packet around a loop",
    ),
    (
        "management-ip-mismatch",
        Severity::Error,
        "a profile's managementIp is not an address of its node",
    ),
    (
        "management-unreachable",
        Severity::Error,
        "the controller cannot reach a node's management port",
    ),
    (
        "pool-exhausted",
        Severity::Error,
        "a pool has no address left to allocate",
    ),
];

/// Runs every check and returns the findings ordered by position in the file.
pub fn check(scenario: &Scenario, plan: &Plan) -> Vec<Diagnostic> {
    let ctx = Ctx { scenario, plan };
    let mut findings = Vec::new();
    findings.extend(addressing::check(&ctx));
    findings.extend(wireguard::check(&ctx));
    findings.extend(services::check(&ctx));
    findings.extend(mtu::check(&ctx));
    findings.extend(reach::check(&ctx));
    findings.sort_by_key(Diagnostic::position_key);
    findings.dedup();
    findings
}

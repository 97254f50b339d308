//! Helpers shared by the addressing, WireGuard, services and MTU checks.

use std::net::IpAddr;

use ipnet::IpNet;
use vpnsim_topology::format::LinkKind;
use vpnsim_topology::model::{HostId, Segment, Topology};
use vpnsim_topology::{Diagnostic, FieldPath, Severity};

use crate::{CODES, Ctx};

/// Two prefixes overlap when one contains the other (prefixes of different
/// families never do).
pub(crate) fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(b) || b.contains(a)
}

/// The severity [`CODES`] gives a code, so a check can never disagree with
/// the documented table.
pub(crate) fn severity_of(code: &str) -> Severity {
    CODES
        .iter()
        .find(|(c, _, _)| *c == code)
        .map_or(Severity::Error, |(_, s, _)| *s)
}

/// A finding with the documented severity of its code.
pub(crate) fn finding(
    ctx: &Ctx<'_>,
    code: &str,
    field: &FieldPath,
    message: impl Into<String>,
) -> Diagnostic {
    ctx.finding(code, severity_of(code), field, message)
}

/// Name of a host, or `?` for an ID that does not exist (never panics).
pub(crate) fn host_name(t: &Topology, id: HostId) -> &str {
    t.hosts.get(id.index()).map_or("?", |h| h.name.as_str())
}

/// Addresses where the internet reaches a host: `public_address`,
/// `public_address6` and the declared addresses of its interfaces on wan links.
pub(crate) fn public_addresses(t: &Topology, id: HostId) -> Vec<IpAddr> {
    let Some(host) = t.hosts.get(id.index()) else {
        return Vec::new();
    };
    let mut out: Vec<IpAddr> = Vec::new();
    out.extend(host.public_address.map(IpAddr::V4));
    out.extend(host.public_address6.map(IpAddr::V6));
    for iface in &host.interfaces {
        if let Segment::Link(l) = iface.segment
            && t.links
                .get(l.index())
                .is_some_and(|l| l.kind == LinkKind::Wan)
        {
            out.extend(iface.address);
            out.extend(iface.address6.map(IpAddr::V6));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|a| seen.insert(*a));
    out
}

/// The underlay MTU of a host and what sets it: the smallest MTU of its
/// interfaces on wan links; without any, the smallest MTU of all its
/// interfaces and of its site's uplink (traffic to the internet leaves
/// through the site's gateway, e.g. an AWS internet gateway at 1500 even
/// when the VPC runs jumbo frames). `None` for a host without interfaces.
pub(crate) fn underlay_mtu(t: &Topology, id: HostId) -> Option<(u32, String)> {
    let host = t.hosts.get(id.index())?;
    let on_wan = |seg: Segment| match seg {
        Segment::Link(l) => t
            .links
            .get(l.index())
            .is_some_and(|l| l.kind == LinkKind::Wan),
        Segment::Subnet(_) => false,
    };
    let segment_name = |seg: Segment| match seg {
        Segment::Link(l) => t
            .links
            .get(l.index())
            .map_or_else(|| "?".to_string(), |l| format!("link `{}`", l.name)),
        Segment::Subnet(s) => t
            .subnets
            .get(s.index())
            .map_or_else(|| "?".to_string(), |s| format!("subnet `{}`", s.name)),
    };
    let wan: Vec<_> = host
        .interfaces
        .iter()
        .filter(|i| on_wan(i.segment))
        .collect();
    let candidates = if wan.is_empty() {
        host.interfaces.iter().collect()
    } else {
        wan.clone()
    };
    let mut best: Option<(u32, String)> = candidates
        .iter()
        .map(|i| {
            (
                i.mtu,
                format!("`{}` {} on {}", host.name, i.name, segment_name(i.segment)),
            )
        })
        .min_by_key(|(mtu, _)| *mtu);
    if wan.is_empty() {
        let uplink = t
            .sites
            .get(host.site.index())
            .and_then(|s| s.uplink)
            .and_then(|l| t.links.get(l.index()));
        if let Some(link) = uplink
            && best.as_ref().is_none_or(|(mtu, _)| link.mtu < *mtu)
        {
            best = Some((
                link.mtu,
                format!("uplink `{}` of `{}`'s site", link.name, host.name),
            ));
        }
    }
    best
}

/// Every address the plan gives a host, plus its public addresses.
pub(crate) fn all_addresses(ctx: &Ctx<'_>, id: HostId) -> Vec<IpAddr> {
    let mut out: Vec<IpAddr> = ctx.plan.host_addresses(id).map(|a| a.address).collect();
    out.extend(public_addresses(ctx.topology(), id));
    let mut seen = std::collections::BTreeSet::new();
    out.retain(|a| seen.insert(*a));
    out
}

/// Joins names as "`a`, `b` and `c`".
pub(crate) fn join_names<S: AsRef<str>>(names: &[S]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{}`", n.as_ref())).collect();
    match quoted.as_slice() {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Byte offset of a field in the file (its nearest written ancestor), for
/// ordering by declaration; unknown fields sort last.
pub(crate) fn position(ctx: &Ctx<'_>, field: &FieldPath) -> usize {
    ctx.scenario
        .map
        .find(field)
        .map_or(usize::MAX, |s| s.key.start)
}

#[cfg(test)]
pub(crate) mod testing {
    //! Builds a checked scenario from TOML text for unit tests.

    use vpnsim_plan::Plan;
    use vpnsim_topology::{Diagnostic, LoadError, Scenario};

    use crate::Ctx;

    /// Loads and plans `text`; panics with every diagnostic when it is not a
    /// valid scenario (tests only).
    pub(crate) fn load(text: &str) -> (Scenario, Plan) {
        let scenario = match vpnsim_topology::load_str("test.toml", text) {
            Ok(s) => s,
            Err(LoadError::Invalid { diagnostics, .. }) => {
                let all: Vec<String> = diagnostics.iter().map(ToString::to_string).collect();
                panic!("test scenario does not load:\n{}", all.join("\n"))
            }
            Err(e) => panic!("test scenario does not load: {e}"),
        };
        let planned = vpnsim_plan::plan(&scenario);
        (scenario, planned.plan)
    }

    /// Runs one check over a scenario.
    pub(crate) fn run(check: fn(&Ctx<'_>) -> Vec<Diagnostic>, text: &str) -> Vec<Diagnostic> {
        let (scenario, plan) = load(text);
        let ctx = Ctx {
            scenario: &scenario,
            plan: &plan,
        };
        check(&ctx)
    }

    /// Findings with one code.
    pub(crate) fn with_code<'a>(findings: &'a [Diagnostic], code: &str) -> Vec<&'a Diagnostic> {
        findings.iter().filter(|d| d.code == code).collect()
    }

    /// Field paths of findings with one code.
    pub(crate) fn fields(findings: &[Diagnostic], code: &str) -> Vec<String> {
        with_code(findings, code)
            .iter()
            .map(|d| d.field.clone().unwrap_or_default())
            .collect()
    }
}

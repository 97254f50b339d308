//! Generator for host firewalls: `etc/iptables/rules.v4`,
//! `etc/iptables/rules.v6` (iptables-restore, as Debian's
//! `iptables-persistent` loads them) and the same policy as one nftables
//! ruleset, `etc/nftables.conf`.
//!
//! Inputs: the scenario's `[firewall.HOST]` intent and NAT intent:
//! - an OpenVPN profile with `nat` on: its client range (IPv4 `range`,
//!   IPv6 `range6`, as planned) leaves the node's `ext_if` SNATed to that
//!   interface's address, as reference 001 does (MASQUERADE when the
//!   interface has no known address);
//! - a site with `nat_address`: hosts of that site that forward and have an
//!   interface on the site's uplink SNAT the site's IPv4 CIDRs to
//!   `nat_address` out of it (the implicit site router has no files).
//!
//! Only hosts with firewall intent or NAT get files, and a family without
//! any table (e.g. NAT-only with no IPv6 NAT) gets no iptables file.
//!
//! The policy, as in reference 001's hand-tightened set:
//! - INPUT (when its policy is not `accept`): established/related accepted,
//!   loopback accepted, invalid dropped, ICMPv6 accepted (IPv6 does not work
//!   without neighbour discovery, which conntrack does not see as related),
//!   trusted interfaces accepted, then the allow rules (TCP/UDP ones for new
//!   connections only, one line per port in iptables, a port set in nft;
//!   a host source means all of the host's planned and public addresses of
//!   that family, and a rule whose sources have no address of a family is
//!   left out of that family), then for `reject` a REJECT with
//!   administratively-prohibited (the chain policy is DROP either way).
//! - FORWARD (when its policy is not `accept`): the declared interface pairs
//!   only, no conntrack shortcut (the scenario states replies as pairs),
//!   then REJECT for `reject`.
//! - OUTPUT: accept.
//!
//! iptables interface wildcards `tun+` become nft's `tun*`. Trusted
//! interfaces concern INPUT only; forwarding is what `forward` lists.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use vpnsim_topology::format::{NatFamily, Policy as Intent};
use vpnsim_topology::model::{FirewallM, HostId, RuleProto, Segment, Source};

use super::{Ctx, Out, RenderError};
use crate::Format as _;
use crate::iptables::{
    self, CtState, Family, Interface, Ip6tables, Iptables, Match, Negatable, PortMatch, Protocol,
    RejectWith, Rule, Ruleset, Table, TableName, Target,
};
use crate::nftables;
use crate::tree::MODE_CONFIG;

const PRODUCER: &str = "firewall";

/// One source-NAT rule.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Nat {
    source: IpNet,
    out_if: String,
    /// `None`: MASQUERADE.
    to: Option<IpAddr>,
    why: String,
}

/// What an allow rule matches, resolved.
#[derive(Debug, Clone)]
struct Allow {
    /// `None`: any source.
    sources: Option<BTreeSet<IpNet>>,
    proto: RuleProto,
    ports: Vec<u16>,
}

impl Allow {
    /// The sources of one family; `Some(empty)` means the rule does not
    /// exist in that family.
    fn sources_of(&self, v6: bool) -> Option<Vec<IpNet>> {
        self.sources.as_ref().map(|s| {
            s.iter()
                .filter(|n| matches!(n, IpNet::V6(_)) == v6)
                .copied()
                .collect()
        })
    }
}

/// Everything one host's files say.
#[derive(Debug, Default)]
struct HostPolicy {
    firewall: Option<Resolved>,
    nat: Vec<Nat>,
}

#[derive(Debug)]
struct Resolved {
    input: Intent,
    forward: Intent,
    trusted: Vec<String>,
    allow: Vec<Allow>,
    forward_pairs: Vec<(String, String)>,
}

pub(super) fn render(ctx: &Ctx, out: &mut Out) {
    let mut hosts: BTreeMap<HostId, HostPolicy> = BTreeMap::new();
    for (&host, fw) in &ctx.topology().firewalls {
        hosts.entry(host).or_default().firewall = Some(resolve(ctx, fw));
    }
    for (host, nat) in nat_rules(ctx) {
        hosts.entry(host).or_default().nat.push(nat);
    }
    for (host, policy) in &hosts {
        render_host(ctx, out, *host, policy);
    }
}

/// Every address of `host`: planned (underlay and overlays) and public.
fn host_addresses(ctx: &Ctx, host: HostId) -> BTreeSet<IpNet> {
    let h = ctx.host(host);
    let mut set: BTreeSet<IpNet> = ctx
        .plan
        .host_addresses(host)
        .map(|a| IpNet::from(a.address))
        .collect();
    for i in &h.interfaces {
        set.extend(i.address.map(IpNet::from));
        set.extend(i.address6.map(|a| IpNet::from(IpAddr::V6(a))));
    }
    set.extend(h.public_address.map(|a| IpNet::from(IpAddr::V4(a))));
    set.extend(h.public_address6.map(|a| IpNet::from(IpAddr::V6(a))));
    set
}

fn resolve(ctx: &Ctx, fw: &FirewallM) -> Resolved {
    let allow = fw
        .allow
        .iter()
        .map(|a| {
            let sources = if a.from.iter().any(|s| matches!(s, Source::Any)) {
                None
            } else {
                let mut set = BTreeSet::new();
                for s in &a.from {
                    match s {
                        Source::Any => {}
                        Source::Host(h) => set.extend(host_addresses(ctx, *h)),
                        Source::Net(n) => {
                            set.insert(n.trunc());
                        }
                    }
                }
                Some(set)
            };
            let mut ports = a.ports.clone();
            ports.sort_unstable();
            ports.dedup();
            Allow {
                sources,
                proto: a.proto,
                ports,
            }
        })
        .collect();
    Resolved {
        input: fw.input_policy,
        forward: fw.forward_policy,
        trusted: fw.trusted_interfaces.clone(),
        allow,
        forward_pairs: fw
            .forward
            .iter()
            .map(|f| (f.in_interface.clone(), f.out_interface.clone()))
            .collect(),
    }
}

/// The address `host` has on its interface `ifname`, of one family.
fn interface_address(ctx: &Ctx, host: HostId, ifname: &str, v6: bool) -> Option<IpAddr> {
    let h = ctx.host(host);
    let declared = h
        .interfaces
        .iter()
        .find(|i| i.name == ifname)
        .and_then(|i| {
            if v6 {
                i.address6
                    .map(IpAddr::V6)
                    .or(i.address.filter(IpAddr::is_ipv6))
            } else {
                i.address.filter(IpAddr::is_ipv4)
            }
        });
    declared.or_else(|| {
        ctx.plan
            .host_addresses(host)
            .find(|a| a.interface == ifname && a.address.is_ipv6() == v6)
            .map(|a| a.address)
    })
}

fn nat_rules(ctx: &Ctx) -> Vec<(HostId, Nat)> {
    let t = ctx.topology();
    let mut rules = Vec::new();
    for (d, deployment) in t.openvpn.iter().enumerate() {
        for (i, profile) in deployment.profiles.iter().enumerate() {
            let spec = &profile.spec;
            if spec.nat.is_empty() {
                continue;
            }
            let Some(range) = ctx
                .plan
                .client_range(vpnsim_topology::model::OpenVpnId(d as u32), i)
            else {
                continue;
            };
            for family in &spec.nat {
                let (source, v6) = match family {
                    NatFamily::IPv4 => (IpNet::V4(range.range), false),
                    NatFamily::IPv6 => match range.range6 {
                        Some(r6) => (IpNet::V6(r6), true),
                        None => continue,
                    },
                };
                rules.push((
                    profile.node,
                    Nat {
                        source: source.trunc(),
                        out_if: spec.ext_if.clone(),
                        to: interface_address(ctx, profile.node, &spec.ext_if, v6),
                        why: format!("OpenVPN {} profile {} clients", deployment.name, profile.id),
                    },
                ));
            }
        }
    }
    for site in &t.sites {
        let (Some(nat_address), Some(uplink)) = (site.nat_address, site.uplink) else {
            continue;
        };
        for &host in &site.hosts {
            let h = ctx.host(host);
            if !h.forwarding {
                continue;
            }
            let Some(iface) = h
                .interfaces
                .iter()
                .find(|i| i.segment == Segment::Link(uplink))
            else {
                continue;
            };
            for cidr in site.cidrs.iter().filter(|c| matches!(c, IpNet::V4(_))) {
                rules.push((
                    host,
                    Nat {
                        source: cidr.trunc(),
                        out_if: iface.name.clone(),
                        to: Some(IpAddr::V4(nat_address)),
                        why: format!("site {} behind {nat_address}", site.name),
                    },
                ));
            }
        }
    }
    rules.sort();
    rules.dedup();
    rules
}

fn render_host(ctx: &Ctx, out: &mut Out, host: HostId, policy: &HostPolicy) {
    let t = ctx.topology();
    let me = ctx.host(host).name.as_str();
    let mut header = vec![format!(
        "Generated by vpnsim from scenario {}: firewall of {me}",
        t.name
    )];
    if policy.firewall.is_none() {
        header.push("No firewall intent for this host: NAT only".to_string());
    }
    let what = format!("firewall of {me}");

    for family in [Family::V4, Family::V6] {
        match iptables_ruleset(policy, family, &header) {
            Ok(None) => {}
            Ok(Some(rs)) => {
                let (path, text) = match family {
                    Family::V4 => ("etc/iptables/rules.v4", Iptables::new(rs).map(|f| f.emit())),
                    Family::V6 => (
                        "etc/iptables/rules.v6",
                        Ip6tables::new(rs).map(|f| f.emit()),
                    ),
                };
                match text {
                    Ok(text) => out.file(me, path, MODE_CONFIG, PRODUCER, text),
                    Err(e) => out.error(RenderError::Missing {
                        what: format!("{what}: {path}"),
                        message: e.message,
                    }),
                }
            }
            Err(e) => out.error(RenderError::Missing {
                what: what.clone(),
                message: e.message,
            }),
        }
    }
    match nft_ruleset(policy, &header) {
        Ok(rs) => match rs.validate() {
            Ok(()) => out.file(me, "etc/nftables.conf", MODE_CONFIG, PRODUCER, rs.emit()),
            Err(e) => out.error(RenderError::Missing {
                what: format!("{what}: etc/nftables.conf"),
                message: e.message,
            }),
        },
        Err(e) => out.error(RenderError::Missing {
            what: format!("{what}: etc/nftables.conf"),
            message: e.message,
        }),
    }
}

// ---------------------------------------------------------------------------
// iptables
// ---------------------------------------------------------------------------

fn ipt_iface(name: &str) -> Result<Negatable<Interface>, iptables::InvalidRuleset> {
    Interface::new(name).map(Negatable::is)
}

fn reject_for(family: Family) -> RejectWith {
    match family {
        Family::V4 => RejectWith::IcmpAdminProhibited,
        Family::V6 => RejectWith::Icmp6AdmProhibited,
    }
}

fn new_only() -> Match {
    Match::ctstate(&[CtState::New, CtState::Untracked])
}

fn iptables_ruleset(
    policy: &HostPolicy,
    family: Family,
    header: &[String],
) -> Result<Option<Ruleset>, iptables::InvalidRuleset> {
    let v6 = family == Family::V6;
    let mut rs = Ruleset::new(family);
    rs.header = header.to_vec();

    let nats: Vec<&Nat> = policy
        .nat
        .iter()
        .filter(|n| matches!(n.source, IpNet::V6(_)) == v6)
        .collect();
    if !nats.is_empty() {
        let mut nat = Table::with_builtins(TableName::Nat);
        let mut rules = Vec::new();
        for n in nats {
            let target = match n.to {
                Some(to) if to.is_ipv6() == v6 => Target::Snat { to, to_last: None },
                _ => Target::Masquerade,
            };
            rules.push(Rule {
                source: Some(Negatable::is(n.source)),
                out_interface: Some(ipt_iface(&n.out_if)?),
                ..Rule::target(target)
            });
        }
        if let Some(post) = nat.chain_mut("POSTROUTING") {
            post.rules = rules;
        }
        rs.tables.push(nat);
    }

    if let Some(fw) = &policy.firewall {
        let mut filter = Table::with_builtins(TableName::Filter);
        let mut input = Vec::new();
        if fw.input != Intent::Accept {
            input.push(Rule {
                matches: vec![Match::ctstate(&[CtState::Related, CtState::Established])],
                ..Rule::target(Target::Accept)
            });
            input.push(Rule {
                in_interface: Some(ipt_iface("lo")?),
                ..Rule::target(Target::Accept)
            });
            input.push(Rule {
                matches: vec![Match::ctstate(&[CtState::Invalid])],
                ..Rule::target(Target::Drop)
            });
            if v6 {
                input.push(Rule {
                    protocol: Some(Negatable::is(Protocol::IPV6_ICMP)),
                    ..Rule::target(Target::Accept)
                });
            }
            for i in &fw.trusted {
                input.push(Rule {
                    in_interface: Some(ipt_iface(i)?),
                    ..Rule::target(Target::Accept)
                });
            }
            for a in &fw.allow {
                allow_rules(a, family, &mut input);
            }
            if fw.input == Intent::Reject {
                input.push(Rule::target(Target::Reject(reject_for(family))));
            }
        }
        let mut forward = Vec::new();
        if fw.forward != Intent::Accept {
            for (i, o) in &fw.forward_pairs {
                forward.push(Rule {
                    in_interface: Some(ipt_iface(i)?),
                    out_interface: Some(ipt_iface(o)?),
                    ..Rule::target(Target::Accept)
                });
            }
            if fw.forward == Intent::Reject {
                forward.push(Rule::target(Target::Reject(reject_for(family))));
            }
        }
        for (name, intent, rules) in [("INPUT", fw.input, input), ("FORWARD", fw.forward, forward)]
        {
            if let Some(chain) = filter.chain_mut(name) {
                chain.policy = Some(ipt_policy(intent));
                chain.rules = rules;
            }
        }
        rs.tables.push(filter);
    }
    if rs.tables.is_empty() {
        return Ok(None);
    }
    Ok(Some(rs))
}

fn ipt_policy(intent: Intent) -> iptables::Policy {
    match intent {
        Intent::Accept => iptables::Policy::Accept,
        Intent::Drop | Intent::Reject => iptables::Policy::Drop,
    }
}

fn allow_rules(a: &Allow, family: Family, out: &mut Vec<Rule>) {
    let v6 = family == Family::V6;
    let sources: Vec<Option<IpNet>> = match a.sources_of(v6) {
        None => vec![None],
        Some(list) => list.into_iter().map(Some).collect(),
    };
    for source in sources {
        let base = Rule {
            source: source.map(Negatable::is),
            ..Rule::target(Target::Accept)
        };
        match a.proto {
            RuleProto::Any => out.push(base),
            // ICMPv6 is accepted whole before the allow rules.
            RuleProto::Icmp if v6 => {}
            RuleProto::Icmp => out.push(Rule {
                protocol: Some(Negatable::is(Protocol::ICMP)),
                ..base
            }),
            RuleProto::Tcp | RuleProto::Udp => {
                let tcp = a.proto == RuleProto::Tcp;
                let protocol = Some(Negatable::is(if tcp {
                    Protocol::TCP
                } else {
                    Protocol::UDP
                }));
                if a.ports.is_empty() {
                    out.push(Rule {
                        protocol: protocol.clone(),
                        matches: vec![new_only()],
                        ..base.clone()
                    });
                }
                for &port in &a.ports {
                    let pm = PortMatch::dport(port);
                    out.push(Rule {
                        protocol: protocol.clone(),
                        matches: vec![
                            if tcp { Match::Tcp(pm) } else { Match::Udp(pm) },
                            new_only(),
                        ],
                        ..base.clone()
                    });
                }
            }
        }
    }
}

// ---------------------------------------------------------------------------
// nftables
// ---------------------------------------------------------------------------

fn nft_name(name: &str) -> Result<nftables::Name, nftables::InvalidRuleset> {
    nftables::Name::new(name)
}

/// `tun+` (iptables) is `tun*` in nft.
fn nft_iface(name: &str) -> String {
    match name.strip_suffix('+') {
        Some(stem) => format!("{stem}*"),
        None => name.to_string(),
    }
}

fn nft_rule(statements: Vec<nftables::Statement>) -> nftables::Rule {
    nftables::Rule::new(statements)
}

fn nft_ruleset(
    policy: &HostPolicy,
    header: &[String],
) -> Result<nftables::Ruleset, nftables::InvalidRuleset> {
    use nftables::{BaseChain, Hook, Statement as S, TableFamily};
    let mut tables = Vec::new();

    if let Some(fw) = &policy.firewall {
        let reject = S::Reject(Some(nftables::RejectWith::Icmpx(
            nftables::IcmpxCode::AdminProhibited,
        )));
        let mut input = Vec::new();
        if fw.input != Intent::Accept {
            input.push(nft_rule(vec![
                S::ct_state(&[nftables::CtState::Established, nftables::CtState::Related]),
                S::Accept,
            ]));
            input.push(nft_rule(vec![S::iifname("lo")?, S::Accept]));
            input.push(nft_rule(vec![
                S::ct_state(&[nftables::CtState::Invalid]),
                S::Drop,
            ]));
            input.push(nft_rule(vec![
                S::L4proto {
                    op: nftables::Op::Eq,
                    protocols: vec![Protocol::IPV6_ICMP],
                },
                S::Accept,
            ]));
            for i in &fw.trusted {
                input.push(nft_rule(vec![S::iifname(&nft_iface(i))?, S::Accept]));
            }
            for a in &fw.allow {
                nft_allow(a, &mut input);
            }
            if fw.input == Intent::Reject {
                input.push(nft_rule(vec![reject.clone()]));
            }
        }
        let mut forward = Vec::new();
        if fw.forward != Intent::Accept {
            for (i, o) in &fw.forward_pairs {
                forward.push(nft_rule(vec![
                    S::iifname(&nft_iface(i))?,
                    S::oifname(&nft_iface(o))?,
                    S::Accept,
                ]));
            }
            if fw.forward == Intent::Reject {
                forward.push(nft_rule(vec![reject.clone()]));
            }
        }
        let base = |hook, intent| BaseChain::filter(hook, nft_policy(intent));
        tables.push(nftables::Table {
            family: TableFamily::Inet,
            name: nft_name("filter")?,
            chains: vec![
                nftables::Chain {
                    name: nft_name("input")?,
                    base: Some(base(Hook::Input, fw.input)),
                    rules: input,
                },
                nftables::Chain {
                    name: nft_name("forward")?,
                    base: Some(base(Hook::Forward, fw.forward)),
                    rules: forward,
                },
                nftables::Chain {
                    name: nft_name("output")?,
                    base: Some(base(Hook::Output, Intent::Accept)),
                    rules: Vec::new(),
                },
            ],
        });
    }

    if !policy.nat.is_empty() {
        let mut rules = Vec::new();
        for n in &policy.nat {
            let version = match n.source {
                IpNet::V4(_) => nftables::IpVersion::V4,
                IpNet::V6(_) => nftables::IpVersion::V6,
            };
            let terminal = match n.to {
                Some(to) if to.is_ipv6() == (version == nftables::IpVersion::V6) => S::Snat {
                    version: Some(version),
                    to,
                },
                _ => S::Masquerade,
            };
            rules.push(nft_rule(vec![
                S::saddr(n.source),
                S::oifname(&nft_iface(&n.out_if))?,
                terminal,
            ]));
        }
        tables.push(nftables::Table {
            family: TableFamily::Inet,
            name: nft_name("nat")?,
            chains: vec![nftables::Chain {
                name: nft_name("postrouting")?,
                base: Some(BaseChain::srcnat()),
                rules,
            }],
        });
    }
    Ok(nftables::Ruleset {
        header: header.to_vec(),
        flush: true,
        tables,
    })
}

fn nft_policy(intent: Intent) -> nftables::Policy {
    match intent {
        Intent::Accept => nftables::Policy::Accept,
        Intent::Drop | Intent::Reject => nftables::Policy::Drop,
    }
}

fn nft_allow(a: &Allow, out: &mut Vec<nftables::Rule>) {
    use nftables::{Direction, Op, PortProtocol, Statement as S};
    // One rule per source (none: any source); sources of both families
    // share the rule list.
    let sources: Vec<Option<IpNet>> = match &a.sources {
        None => vec![None],
        Some(set) => set.iter().copied().map(Some).collect(),
    };
    for source in sources {
        let mut statements: Vec<S> = source.map(S::saddr).into_iter().collect();
        match a.proto {
            RuleProto::Any => {}
            RuleProto::Icmp => {
                // ICMPv6 is accepted whole before the allow rules.
                if matches!(source, Some(IpNet::V6(_))) {
                    continue;
                }
                statements.push(S::L4proto {
                    op: Op::Eq,
                    protocols: vec![Protocol::ICMP],
                });
            }
            RuleProto::Tcp | RuleProto::Udp => {
                let protocol = if a.proto == RuleProto::Tcp {
                    PortProtocol::Tcp
                } else {
                    PortProtocol::Udp
                };
                if a.ports.is_empty() {
                    statements.push(S::L4proto {
                        op: Op::Eq,
                        protocols: vec![if protocol == PortProtocol::Tcp {
                            Protocol::TCP
                        } else {
                            Protocol::UDP
                        }],
                    });
                } else {
                    statements.push(S::Port {
                        protocol,
                        direction: Direction::Destination,
                        op: Op::Eq,
                        ports: a
                            .ports
                            .iter()
                            .map(|&p| iptables::PortRange::single(p))
                            .collect(),
                    });
                }
                statements.push(S::ct_state(&[
                    nftables::CtState::New,
                    nftables::CtState::Untracked,
                ]));
            }
        }
        statements.push(S::Accept);
        out.push(nft_rule(statements));
    }
}

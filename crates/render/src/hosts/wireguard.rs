//! Generator for WireGuard stars (reference 002, NethServer's cluster VPN:
//! the leader is the hub, every worker peers only with it).
//!
//! Files, for every star `S` (interface `I`, e.g. `wg0`) and every member:
//! - `etc/wireguard/<I>.conf` (0600, demo-key marker): `Address` (the
//!   planned overlay address with the overlay's prefix length),
//!   `ListenPort`, `PrivateKey` (key label `wireguard/<host>/<I>`), `MTU`
//!   when the star sets one, and the peers:
//!   - the hub has one peer per other member: `AllowedIPs` = that member's
//!     host prefix (/32 or /128) plus its declared `allowed_ips`,
//!     `Endpoint` when it has one (else the hub learns it from handshakes);
//!   - every other member has the hub as its only peer: `AllowedIPs` = the
//!     overlay prefix plus the declared `allowed_ips` of every OTHER member
//!     (the hub forwards to them), `Endpoint` = the hub's endpoint,
//!     `PersistentKeepalive` when the star sets one (the format doc puts
//!     it on the workers' hub peer only);
//!   - `PresharedKey` per (hub, member) pair when `preshared_keys` is on
//!     (label `wireguard-psk/<S>/<a>/<b>`, pair sorted).
//!
//!   Cryptokey routing is checked: two peers of one interface whose
//!   `AllowedIPs` overlap are an error (wg would silently move the prefix
//!   to the last peer).
//! - With `Options::promote = Some(W)`, the same files as they are after
//!   `W` became the hub of every star it is a worker of: `W` peers with
//!   every other member (the old hub included, as a worker), every other
//!   member has `W` as its hub peer. `W` needs an endpoint.
//!
//! Promotion procedures. For every promotion candidate `C` of the star as
//! generated (a non-hub member with an endpoint — only those can be reached
//! by all others — that a `promote` event of the scenario's timeline or
//! `--promote` names), POSIX scripts built with [`crate::script`]:
//! - `usr/local/sbin/vpnsim-promote-<S>-<C>-alive.sh` on EVERY member:
//!   the old leader is alive (NethServer's `promote-node`). Run order: the
//!   new leader `C` first (it accepts all members), then the other
//!   workers (they switch to `C`), the old leader last (it becomes a
//!   worker);
//! - `usr/local/sbin/vpnsim-promote-<S>-<C>-dead.sh` on every member but
//!   the old leader: the old leader is dead (NethServer's `switch-leader`
//!   on each worker), new leader first.
//!
//! Each script brings the running interface of the host it runs on to the
//! layout with `C` as hub, whatever the running layout is (a timeline may
//! hand over twice: the second script must not assume the first leader),
//! then persists it: `set -e`; one `wg set <I> peer <PUBLIC KEY>
//! allowed-ips ... [endpoint ...] persistent-keepalive N|off` per peer of
//! the new layout; `wg set <I> peer <PUBLIC KEY> remove` for every other
//! member (a no-op for a peer the interface does not have);
//! `wg-quick save <I>`. Only public keys appear; the private key never
//! leaves `<I>.conf`. Routes need no change: every member already routes
//! the overlay and the others' ranges through `<I>`.
//!
//! A star with preshared keys needs secrets for pairs that do not exist
//! yet (the new hub and the other workers), and `wg set ... preshared-key`
//! only reads them from a bare key file, which cannot carry the demo-key
//! marker. So for such stars each member also gets the promoted file
//! staged as `etc/wireguard/vpnsim-promote-<S>-<C>/<I>.conf` (0600,
//! marker), and the script applies it instead of `wg set`: `umask 077`,
//! `wg-quick strip STAGED > /run/vpnsim-<I>-promote.conf`,
//! `wg syncconf <I> /run/vpnsim-<I>-promote.conf`, `rm -f` of that file,
//! `wg-quick save <I>`.
//!
//! The scripts of a candidate start from the file set they belong to: with
//! `--promote W` they promote away from `W` (the scenario's next event may
//! hand the leadership on again). A set generated with `--promote W` also
//! holds `W`'s own scripts: the procedure that leads from the scenario's
//! files to this set.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use vpnsim_keys::Label;
use vpnsim_plan::Attachment;
use vpnsim_topology::format::Action;
use vpnsim_topology::model::{EndpointHost, HostId, StarId, StarM};

use super::{Ctx, Out, RenderError};
use crate::format::Format;
use crate::script::{Command, Redirect, RedirectOp, Script, Statement, Word};
use crate::tree::{MODE_SCRIPT, MODE_SECRET};
use crate::wgquick::{
    Comment, Endpoint, Host, Hostname, Interface, Peer, PublicKey, SecretKey, WgQuickConf,
};

const PRODUCER: &str = "wgquick";
const SCRIPT_PRODUCER: &str = "script";

pub(super) fn render(ctx: &Ctx, out: &mut Out) {
    for (i, star) in ctx.topology().stars.iter().enumerate() {
        render_star(ctx, out, StarId(i as u32), star);
    }
}

/// What the generator knows about one member.
struct Member {
    host: HostId,
    name: String,
    address: IpAddr,
    endpoint: Option<Endpoint>,
    ranges: Vec<IpNet>,
    private: SecretKey,
    public: PublicKey,
}

/// One peer entry of a member's interface, before keys.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PeerSpec {
    /// Index into the members.
    member: usize,
    allowed_ips: Vec<IpNet>,
    endpoint: Option<Endpoint>,
    keepalive: Option<u16>,
}

struct Star<'a> {
    model: &'a StarM,
    members: Vec<Member>,
    keepalive: Option<u16>,
    mtu: Option<u16>,
}

impl Star<'_> {
    fn index_of(&self, host: HostId) -> Option<usize> {
        self.members.iter().position(|m| m.host == host)
    }

    /// Every member's peers when member `hub` is the hub.
    fn layout(&self, hub: usize) -> Vec<Vec<PeerSpec>> {
        let cidr = self.model.cidr.trunc();
        (0..self.members.len())
            .map(|i| {
                if i == hub {
                    self.members
                        .iter()
                        .enumerate()
                        .filter(|(j, _)| *j != hub)
                        .map(|(j, m)| {
                            let mut allowed = vec![IpNet::from(m.address)];
                            push_unique(&mut allowed, &m.ranges);
                            PeerSpec {
                                member: j,
                                allowed_ips: allowed,
                                endpoint: m.endpoint.clone(),
                                keepalive: None,
                            }
                        })
                        .collect()
                } else {
                    let mut allowed = vec![cidr];
                    for (j, m) in self.members.iter().enumerate() {
                        if j != i {
                            push_unique(&mut allowed, &m.ranges);
                        }
                    }
                    vec![PeerSpec {
                        member: hub,
                        allowed_ips: allowed,
                        endpoint: self.members[hub].endpoint.clone(),
                        keepalive: self.keepalive,
                    }]
                }
            })
            .collect()
    }
}

fn push_unique(list: &mut Vec<IpNet>, items: &[IpNet]) {
    for item in items {
        let item = item.trunc();
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

fn comment(text: &str) -> Option<Comment> {
    Comment::new(text).ok()
}

/// The demo-key marker as a comment (`None` for production keys).
fn marker(ctx: &Ctx) -> Option<Comment> {
    ctx.key_marker("#")
        .map(|line| Comment::from_line_lossy(line.strip_prefix('#').unwrap_or(&line)))
}

fn render_star(ctx: &Ctx, out: &mut Out, id: StarId, model: &StarM) {
    let what = format!("wireguard.{}", model.name);
    let Some(star) = collect(ctx, out, id, model, &what) else {
        return;
    };
    let Some(scenario_hub) = star.index_of(model.hub) else {
        return;
    };
    // The hub of the file set being generated.
    let mut hub = scenario_hub;
    if let Some(promote) = &ctx.options.promote
        && let Some(w) = star.members.iter().position(|m| &m.name == promote)
    {
        if w == scenario_hub {
            // check_options only accepts workers; a host that is this
            // star's hub already needs no promotion here.
        } else if star.members[w].endpoint.is_none() {
            out.error(RenderError::Option {
                message: format!(
                    "--promote {promote}: {promote} has no endpoint in [{what}.endpoints], so the other members could not reach it as their hub"
                ),
            });
            return;
        } else {
            hub = w;
        }
    }
    if star.members[hub].endpoint.is_none() {
        out.error(RenderError::Missing {
            what: what.clone(),
            message: format!(
                "the hub {} has no endpoint in [{what}.endpoints]; the other members cannot reach it",
                star.members[hub].name
            ),
        });
        return;
    }
    let layout = star.layout(hub);
    if !check_cryptokey_routing(&star, &layout, out, &what) {
        return;
    }
    let psks = preshared_keys(ctx, out, &star, &what);
    if model.preshared_keys && psks.is_none() {
        return;
    }
    let promoted_from = (hub != scenario_hub).then_some(scenario_hub);
    for (i, peers) in layout.iter().enumerate() {
        let conf = wg_conf(ctx, &star, hub, i, peers, psks.as_ref(), promoted_from);
        out.file(
            &star.members[i].name,
            &format!("etc/wireguard/{}.conf", model.interface),
            MODE_SECRET,
            PRODUCER,
            conf.emit(),
        );
    }
    // Promotion procedures away from the current hub, for the promotions
    // the scenario rehearses (its `promote` events) and the one asked for.
    let candidates = promotion_candidates(ctx, id, &star, hub);
    // With `--promote`, the procedure that leads to this set is part of it.
    if hub != scenario_hub {
        write_procedure(
            ctx,
            out,
            (model, &star, psks.as_ref()),
            scenario_hub,
            hub,
            &what,
        );
    }
    for &candidate in &candidates {
        write_procedure(
            ctx,
            out,
            (model, &star, psks.as_ref()),
            hub,
            candidate,
            &what,
        );
    }
}

/// The promotion scripts (and, for PSK stars, the staged files) of every
/// member for the hand-over from `from` to `to`.
fn write_procedure(
    ctx: &Ctx,
    out: &mut Out,
    (model, star, psks): (&StarM, &Star, Option<&Psks>),
    from: usize,
    to: usize,
    what: &str,
) {
    let current = star.layout(from);
    let next = star.layout(to);
    if !check_cryptokey_routing(star, &next, out, what) {
        return;
    }
    for (i, member) in star.members.iter().enumerate() {
        if model.preshared_keys {
            let conf = wg_conf(ctx, star, to, i, &next[i], psks, Some(from));
            out.file(
                &member.name,
                &staged_path(model, &star.members[to].name),
                MODE_SECRET,
                PRODUCER,
                conf.emit(),
            );
        }
        for alive in [true, false] {
            if !alive && i == from {
                continue; // the dead leader runs nothing
            }
            let script = promotion_script(ctx, star, from, to, i, (&current[i], &next[i]), alive);
            out.file(
                &member.name,
                &format!(
                    "usr/local/sbin/vpnsim-promote-{}-{}-{}.sh",
                    model.name,
                    star.members[to].name,
                    if alive { "alive" } else { "dead" }
                ),
                MODE_SCRIPT,
                SCRIPT_PRODUCER,
                script.emit(),
            );
        }
    }
}

/// Members the procedures are generated for: every worker a `promote`
/// event of the timeline names for this star, plus `--promote`'s worker,
/// minus the current hub, and only those with an endpoint (the others
/// could not be reached by all members as their hub). Not every member
/// with an endpoint: the scripts of one candidate touch every member, so a
/// star with thousands of reachable workers would get millions of files.
fn promotion_candidates(ctx: &Ctx, id: StarId, star: &Star, hub: usize) -> Vec<usize> {
    let t = ctx.topology();
    let mut named: Vec<&str> = t
        .events
        .iter()
        .filter(|e| e.action == Action::Promote && e.star == Some(id))
        .filter_map(|e| e.host.map(|h| t.host(h).name.as_str()))
        .collect();
    if let Some(promote) = &ctx.options.promote {
        named.push(promote);
    }
    let mut candidates: Vec<usize> = (0..star.members.len())
        .filter(|&c| c != hub && star.members[c].endpoint.is_some())
        .filter(|&c| named.contains(&star.members[c].name.as_str()))
        .collect();
    candidates.dedup();
    candidates
}

fn staged_path(model: &StarM, candidate: &str) -> String {
    format!(
        "etc/wireguard/vpnsim-promote-{}-{candidate}/{}.conf",
        model.name, model.interface
    )
}

/// Addresses, endpoints and keys of every member; `None` after recording
/// the errors when something is missing.
fn collect<'a>(
    ctx: &Ctx,
    out: &mut Out,
    id: StarId,
    model: &'a StarM,
    what: &str,
) -> Option<Star<'a>> {
    let mut ok = true;
    let keepalive = match model.persistent_keepalive {
        None => None,
        Some(d) => {
            let secs = d.as_nanos().div_ceil(1_000_000_000);
            match u16::try_from(secs) {
                Ok(s) => Some(s),
                Err(_) => {
                    out.error(RenderError::Missing {
                        what: what.to_owned(),
                        message: format!(
                            "persistent_keepalive of {secs} s is above WireGuard's 65535 s"
                        ),
                    });
                    ok = false;
                    None
                }
            }
        }
    };
    let mtu = match model.mtu {
        None => None,
        Some(m) => match u16::try_from(m) {
            Ok(m) => Some(m),
            Err(_) => {
                out.error(RenderError::Missing {
                    what: what.to_owned(),
                    message: format!("mtu {m} is above 65535"),
                });
                ok = false;
                None
            }
        },
    };
    let mut members = Vec::new();
    for host in model.members() {
        let name = ctx.host(host).name.clone();
        let member_what = format!("{what}: {name}");
        let Some(address) = ctx.address_on(host, Attachment::Star(id)) else {
            out.error(RenderError::Missing {
                what: member_what,
                message: "no overlay address planned".to_owned(),
            });
            ok = false;
            continue;
        };
        let endpoint = match model.endpoints.get(&host) {
            None => None,
            Some(e) => {
                let host = match &e.host {
                    EndpointHost::Ip(ip) => Some(Host::Ip(*ip)),
                    EndpointHost::Dns(dns) => match Hostname::new(dns.as_str()) {
                        Ok(h) => Some(Host::Name(h)),
                        Err(err) => {
                            out.error(RenderError::Missing {
                                what: member_what.clone(),
                                message: format!("endpoint: {err}"),
                            });
                            ok = false;
                            None
                        }
                    },
                };
                host.map(|host| Endpoint { host, port: e.port })
            }
        };
        let Some(label) = out.label(
            &member_what,
            Label::wireguard(&name, model.interface.as_str()),
        ) else {
            ok = false;
            continue;
        };
        let Some(pair) = out.key(&member_what, &label, ctx.keys.wireguard(&label)) else {
            ok = false;
            continue;
        };
        members.push(Member {
            host,
            name,
            address,
            endpoint,
            ranges: model.allowed_ips.get(&host).cloned().unwrap_or_default(),
            private: SecretKey::from_bytes(*pair.private_key_bytes()),
            public: PublicKey::from_bytes(pair.public_key_bytes()),
        });
    }
    ok.then_some(Star {
        model,
        members,
        keepalive,
        mtu,
    })
}

/// No two peers of one interface may claim overlapping AllowedIPs.
fn check_cryptokey_routing(
    star: &Star,
    layout: &[Vec<PeerSpec>],
    out: &mut Out,
    what: &str,
) -> bool {
    let mut ok = true;
    for (i, peers) in layout.iter().enumerate() {
        for (x, px, y, py) in overlapping_allowed_ips(peers) {
            ok = false;
            out.error(RenderError::Missing {
                what: what.to_owned(),
                message: format!(
                    "on {}, AllowedIPs {x} of peer {} and {y} of peer {} overlap: cryptokey routing would be ambiguous",
                    star.members[i].name, star.members[px].name, star.members[py].name
                ),
            });
        }
    }
    ok
}

/// Every pair of AllowedIPs of two different peers where one prefix holds
/// the other, as (outer, its peer, inner, its peer). A sweep over the
/// prefixes sorted by first address: prefixes either nest or are disjoint,
/// so the prefixes still open when one starts are exactly those holding
/// it. O(n log n) instead of comparing all pairs (a hub with 10,000 peers).
fn overlapping_allowed_ips(peers: &[PeerSpec]) -> Vec<(IpNet, usize, IpNet, usize)> {
    fn bounds(net: &IpNet) -> (bool, u128, u128) {
        match net {
            IpNet::V4(n) => (
                false,
                u128::from(u32::from(n.network())),
                u128::from(u32::from(n.broadcast())),
            ),
            IpNet::V6(n) => (true, u128::from(n.network()), u128::from(n.broadcast())),
        }
    }
    let mut all: Vec<(bool, u128, u8, u128, IpNet, usize)> = peers
        .iter()
        .flat_map(|p| {
            p.allowed_ips.iter().map(move |net| {
                let (v6, start, end) = bounds(net);
                (v6, start, net.prefix_len(), end, *net, p.member)
            })
        })
        .collect();
    // Same start: the shorter prefix (the outer one) first.
    all.sort_by_key(|&(v6, start, len, ..)| (v6, start, len));
    let mut found = Vec::new();
    let mut open: Vec<(bool, u128, IpNet, usize)> = Vec::new();
    for (v6, start, _, end, net, member) in all {
        open.retain(|&(family, open_end, ..)| family == v6 && open_end >= start);
        for &(_, _, outer, outer_member) in &open {
            if outer_member != member {
                found.push((outer, outer_member, net, member));
            }
        }
        open.push((v6, end, net, member));
    }
    found
}

type Psks = BTreeMap<(usize, usize), SecretKey>;

/// The preshared key of every pair of members (every pair can become a
/// (hub, worker) pair through promotion); `None` when the star has none or
/// one is missing (errors recorded).
fn preshared_keys(ctx: &Ctx, out: &mut Out, star: &Star, what: &str) -> Option<Psks> {
    if !star.model.preshared_keys {
        return None;
    }
    let mut psks = Psks::new();
    let mut ok = true;
    for (a, ma) in star.members.iter().enumerate() {
        for (b, mb) in star.members.iter().enumerate().skip(a + 1) {
            let pair_what = format!("{what}: {} and {}", ma.name, mb.name);
            let Some(label) = out.label(
                &pair_what,
                Label::wireguard_psk(&star.model.name, &ma.name, &mb.name),
            ) else {
                ok = false;
                continue;
            };
            match out.key(&pair_what, &label, ctx.keys.wireguard_psk(&label)) {
                Some(psk) => {
                    psks.insert((a, b), SecretKey::from_bytes(*psk.bytes()));
                }
                None => ok = false,
            }
        }
    }
    ok.then_some(psks)
}

fn role(hub: usize, i: usize) -> &'static str {
    if i == hub { "hub" } else { "worker" }
}

/// Member `i`'s wg-quick file when member `hub` is the hub.
fn wg_conf(
    ctx: &Ctx,
    star: &Star,
    hub: usize,
    i: usize,
    peers: &[PeerSpec],
    psks: Option<&Psks>,
    promoted_from: Option<usize>,
) -> WgQuickConf {
    let me = &star.members[i];
    let mut header: Vec<Comment> = marker(ctx).into_iter().collect();
    header.extend(comment(&format!(
        "vpnsim: scenario {}, WireGuard star {} (hub {}): {}, {}",
        ctx.topology().name,
        star.model.name,
        star.members[hub].name,
        me.name,
        role(hub, i)
    )));
    if let Some(from) = promoted_from {
        header.extend(comment(&format!(
            "after promoting {} to leader in place of {}",
            star.members[hub].name, star.members[from].name
        )));
    }
    let mut interface = Interface::new(me.private.clone());
    interface.addresses = IpNet::new(me.address, star.model.cidr.prefix_len())
        .ok()
        .into_iter()
        .collect();
    interface.listen_port = Some(star.model.port);
    interface.mtu = star.mtu;
    let peers = peers
        .iter()
        .map(|spec| {
            let other = &star.members[spec.member];
            let pair = (i.min(spec.member), i.max(spec.member));
            Peer {
                comments: comment(&format!("{} ({})", other.name, role(hub, spec.member)))
                    .into_iter()
                    .collect(),
                public_key: other.public,
                preshared_key: psks.and_then(|p| p.get(&pair).cloned()),
                allowed_ips: spec.allowed_ips.clone(),
                endpoint: spec.endpoint.clone(),
                persistent_keepalive: spec.keepalive,
            }
        })
        .collect();
    WgQuickConf {
        header,
        interface,
        peers,
    }
}

fn join_nets(nets: &[IpNet]) -> String {
    nets.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

fn push(body: &mut Vec<Statement>, argv: &[&str]) {
    // Every word here is a host name, key, prefix or number: always valid.
    if let Ok(s) = Statement::command(argv) {
        body.push(s);
    }
}

fn push_comment(body: &mut Vec<Statement>, text: &str) {
    if let Ok(s) = Statement::comment(text) {
        body.push(s);
    }
}

/// The script member `i` runs to go from `current` (its peers under hub
/// `hub`) to `next` (its peers under hub `candidate`).
fn promotion_script(
    ctx: &Ctx,
    star: &Star,
    hub: usize,
    candidate: usize,
    i: usize,
    (current, next): (&[PeerSpec], &[PeerSpec]),
    alive: bool,
) -> Script {
    let name = |j: usize| star.members[j].name.as_str();
    let iface = star.model.interface.as_str();
    // The run order: new leader, other members in file order, old leader
    // last (alive only).
    let mut order = vec![candidate];
    order.extend((0..star.members.len()).filter(|&j| j != candidate && j != hub));
    if alive {
        order.push(hub);
    }
    let step = order.iter().position(|&j| j == i).map_or(0, |p| p + 1);
    let listed: Vec<String> = order
        .iter()
        .enumerate()
        .map(|(k, &j)| {
            let note = if j == candidate {
                " (new leader)"
            } else if j == hub {
                " (old leader)"
            } else {
                ""
            };
            format!("{}. {}{note}", k + 1, name(j))
        })
        .collect();
    let mut script = Script::sh();
    script.header = [
        format!(
            "vpnsim: scenario {}, WireGuard star {}: promote {} to leader in place of {}",
            ctx.topology().name,
            star.model.name,
            name(candidate),
            name(hub)
        ),
        if alive {
            format!(
                "Old leader alive (promote-node): run on every member in this order: {}",
                listed.join(", ")
            )
        } else {
            format!(
                "Old leader {} dead (switch-leader): run on every other member, new leader first: {}",
                name(hub),
                listed.join(", ")
            )
        },
        format!("This is {}: step {step} of {}.", name(i), order.len()),
        format!(
            "Public keys only: the private key stays in /etc/wireguard/{iface}.conf."
        ),
    ]
    .iter()
    .filter_map(|t| comment(t))
    .collect();
    let mut body = Vec::new();
    push(&mut body, &["set", "-e"]);
    if star.model.preshared_keys {
        let staged = format!("/{}", staged_path(star.model, name(candidate)));
        let stripped = format!("/run/vpnsim-{iface}-promote.conf");
        push_comment(
            &mut body,
            "New peer pairs need preshared keys: apply the staged file.",
        );
        push(&mut body, &["umask", "077"]);
        if let Ok(mut command) = Command::literal(&["wg-quick", "strip", &staged])
            && let Ok(target) = Word::literal(&stripped)
        {
            command.redirects.push(Redirect {
                fd: None,
                op: RedirectOp::Write,
                target,
            });
            body.push(Statement::Command(command));
        }
        push(&mut body, &["wg", "syncconf", iface, &stripped]);
        push(&mut body, &["rm", "-f", &stripped]);
    } else {
        // Every peer of the new layout is set, and every other member
        // removed, whatever the running layout is: the script converges
        // from any earlier hand-over (the timeline may promote twice).
        for spec in next {
            let other = &star.members[spec.member];
            let public = other.public.to_base64();
            let allowed = join_nets(&spec.allowed_ips);
            let endpoint = spec.endpoint.as_ref().map(ToString::to_string);
            let keepalive = spec
                .keepalive
                .map_or_else(|| "off".to_owned(), |k| k.to_string());
            let known = current.iter().any(|c| c.member == spec.member);
            push_comment(
                &mut body,
                &format!(
                    "{}: {} ({})",
                    if current.contains(spec) {
                        "keep peer"
                    } else if known {
                        "update peer"
                    } else {
                        "new peer"
                    },
                    other.name,
                    role(candidate, spec.member)
                ),
            );
            let mut argv = vec!["wg", "set", iface, "peer", &public, "allowed-ips", &allowed];
            if let Some(e) = &endpoint {
                argv.extend(["endpoint", e.as_str()]);
            }
            argv.extend(["persistent-keepalive", keepalive.as_str()]);
            push(&mut body, &argv);
        }
        for (member, other) in star.members.iter().enumerate() {
            if member == i || next.iter().any(|n| n.member == member) {
                continue;
            }
            let was_peer = current.iter().any(|c| c.member == member);
            push_comment(
                &mut body,
                &format!(
                    "remove peer: {}{}",
                    other.name,
                    if was_peer {
                        ""
                    } else {
                        " (if a later hand-over added it)"
                    }
                ),
            );
            let public = other.public.to_base64();
            push(&mut body, &["wg", "set", iface, "peer", &public, "remove"]);
        }
    }
    push(&mut body, &["wg-quick", "save", iface]);
    script.body = body;
    script
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hosts::{Options, generate};
    use crate::tree::FileSet;
    use vpnsim_keys::KeySource;

    const STAR: &str = r#"
[scenario]
name = "psk-star"
seed = 7
[sites.s]
kind = "datacenter"
[links.l]
kind = "wan"
[hosts.a]
site = "s"
interfaces = [{ name = "eth0", link = "l", address = "192.0.2.1" }]
[hosts.b]
site = "s"
interfaces = [{ name = "eth0", link = "l", address = "192.0.2.2" }]
[hosts.c]
site = "s"
interfaces = [{ name = "eth0", link = "l", address = "192.0.2.3" }]
[wireguard.mesh]
cidr = "10.9.0.0/24"
hub = "a"
workers = ["b", "c"]
preshared_keys = true
mtu = 1380
[wireguard.mesh.endpoints]
a = "192.0.2.1:51820"
b = "192.0.2.2:51820"
[wireguard.mesh.allowed_ips]
c = ["192.168.3.0/24"]
[[events]]
name = "promote-b"
at = "1m"
action = "promote"
host = "b"
star = "mesh"
procedure = "dead-leader"
"#;

    fn files(text: &str, options: &Options) -> Result<FileSet, Vec<String>> {
        let scenario = vpnsim_topology::load_str("t.toml", text).unwrap_or_else(|e| panic!("{e}"));
        let planned = vpnsim_plan::plan(&scenario);
        let keys = KeySource::demo(scenario.topology.seed);
        generate(&scenario, &planned.plan, &keys, options)
            .map_err(|e| e.iter().map(ToString::to_string).collect())
    }

    fn conf(set: &FileSet, host: &str, path: &str) -> WgQuickConf {
        let f = set
            .get(host, path)
            .unwrap_or_else(|| panic!("{host}/{path} missing"));
        WgQuickConf::parse(&f.contents).unwrap_or_else(|e| panic!("{host}/{path}: {e}"))
    }

    #[test]
    fn psk_star_with_ranges_and_staged_promotion() {
        let set = files(STAR, &Options::default()).unwrap_or_else(|e| panic!("{e:?}"));
        let a = conf(&set, "a", "etc/wireguard/wg0.conf");
        let b = conf(&set, "b", "etc/wireguard/wg0.conf");
        let c = conf(&set, "c", "etc/wireguard/wg0.conf");
        assert_eq!(a.interface.mtu, Some(1380));
        assert_eq!(a.peers.len(), 2);
        assert_eq!(b.peers.len(), 1);
        // The hub routes c's range to c; b routes it through the hub; c
        // does not route its own range into the tunnel.
        let net = |s: &str| s.parse::<IpNet>().unwrap_or_else(|e| panic!("{e}"));
        assert!(a.peers[1].allowed_ips.contains(&net("192.168.3.0/24")));
        assert_eq!(
            b.peers[0].allowed_ips,
            vec![net("10.9.0.0/24"), net("192.168.3.0/24")]
        );
        assert_eq!(c.peers[0].allowed_ips, vec![net("10.9.0.0/24")]);
        // Both ends of a pair share the PSK.
        assert!(a.peers[0].preshared_key.is_some());
        assert_eq!(a.peers[0].preshared_key, b.peers[0].preshared_key);
        // c has no endpoint: only b is a candidate; the staged file makes
        // b the hub.
        let staged = conf(&set, "c", "etc/wireguard/vpnsim-promote-mesh-b/wg0.conf");
        assert_eq!(staged.peers.len(), 1);
        assert_eq!(staged.peers[0].public_key, a.peers[0].public_key);
        assert!(
            set.get("a", "usr/local/sbin/vpnsim-promote-mesh-c-alive.sh")
                .is_none()
        );
        assert!(
            set.get("a", "usr/local/sbin/vpnsim-promote-mesh-b-dead.sh")
                .is_none()
        );
        let script = set
            .get("c", "usr/local/sbin/vpnsim-promote-mesh-b-alive.sh")
            .unwrap_or_else(|| panic!("script missing"));
        let parsed = Script::parse(&script.contents).unwrap_or_else(|e| panic!("{e}"));
        assert!(script.contents.contains("wg syncconf wg0"));
        assert!(
            !script
                .contents
                .contains(&a.interface.private_key.to_base64())
        );
        assert!(parsed.commands().count() >= 5);
    }

    proptest::proptest! {
        #[test]
        fn overlap_sweep_finds_what_comparing_all_pairs_finds(
            nets in proptest::collection::vec((0usize..4, 0u32..64, 26u8..=32), 0..24)
        ) {
            let peers: Vec<PeerSpec> = (0..4)
                .map(|member| PeerSpec {
                    member,
                    allowed_ips: nets
                        .iter()
                        .filter(|n| n.0 == member)
                        .filter_map(|&(_, host, len)| IpNet::new(IpAddr::from([10, 0, 0, host as u8]), len).ok())
                        .map(|n| n.trunc())
                        .collect(),
                    endpoint: None,
                    keepalive: None,
                })
                .collect();
            let pair = |a: IpNet, pa: usize, b: IpNet, pb: usize| if (a, pa) <= (b, pb) { (a, pa, b, pb) } else { (b, pb, a, pa) };
            let mut brute = std::collections::BTreeSet::new();
            for (i, p) in peers.iter().enumerate() {
                for q in &peers[i + 1..] {
                    for &x in &p.allowed_ips {
                        for &y in &q.allowed_ips {
                            if x.contains(&y) || y.contains(&x) {
                                brute.insert(pair(x, p.member, y, q.member));
                            }
                        }
                    }
                }
            }
            let swept: std::collections::BTreeSet<_> =
                overlapping_allowed_ips(&peers).into_iter().map(|(a, pa, b, pb)| pair(a, pa, b, pb)).collect();
            proptest::prop_assert_eq!(swept, brute);
        }
    }

    #[test]
    fn procedures_only_for_rehearsed_or_requested_promotions() {
        let no_events = STAR.split("[[events]]").next().unwrap_or(STAR);
        let set = files(no_events, &Options::default()).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(
            set.files()
                .all(|f| !f.path.starts_with("usr/local/sbin/vpnsim-promote-")),
            "b has an endpoint but no event promotes it: no scripts"
        );
        let promoted = files(
            no_events,
            &Options {
                promote: Some("b".into()),
            },
        )
        .unwrap_or_else(|e| panic!("{e:?}"));
        for host in ["a", "b", "c"] {
            assert!(
                promoted
                    .get(host, "usr/local/sbin/vpnsim-promote-mesh-b-alive.sh")
                    .is_some(),
                "{host}: `--promote b` carries the procedure that leads to it"
            );
        }
        assert!(
            promoted
                .get("a", "usr/local/sbin/vpnsim-promote-mesh-b-dead.sh")
                .is_none(),
            "the dead leader runs nothing"
        );
    }

    #[test]
    fn promotion_refuses_a_worker_without_endpoint() {
        let errors = files(
            STAR,
            &Options {
                promote: Some("c".into()),
            },
        )
        .err()
        .unwrap_or_default();
        assert!(
            errors.iter().any(|e| e.contains("has no endpoint")),
            "{errors:?}"
        );
    }

    #[test]
    fn overlapping_allowed_ips_are_refused() {
        let text = STAR.replace(
            "c = [\"192.168.3.0/24\"]",
            "c = [\"192.168.3.0/24\"]\nb = [\"192.168.0.0/16\"]",
        );
        let errors = files(&text, &Options::default()).err().unwrap_or_default();
        assert!(errors.iter().any(|e| e.contains("overlap")), "{errors:?}");
    }
}

//! Linux bonding (drivers/net/bonding, Documentation/networking/bonding.rst):
//! a bond built from its ifupdown stanza, with slaves that join and leave
//! through the OpenVPN route-up / route-pre-down scripts as rendered
//! (reference 004's `sleep 10` before `echo +$dev > .../bonding/slaves`).
//! Sans-IO like the other models, but the bond sits between the host and
//! its slave devices rather than on the underlay, so it has its own calls
//! instead of [`crate::proto::Model`]'s `send`/`receive`.
//!
//! # API for the engine
//! - [`Bond::from_texts`]: the interfaces file holding `iface BOND`, the
//!   bond's name, and the route-up and route-pre-down scripts' texts (the
//!   paths come from the OpenVPN configs: [`crate::proto::openvpn::Scripts`]).
//! - [`Bond::start`] at boot (the bond exists with no slaves: `bond-slaves
//!   none`); [`Bond::on_timer`] for the timers it asks for.
//! - [`Bond::slave_link_up`] when a TAP link comes up (OpenVPN's
//!   `LinkState { up: true }`): OpenVPN runs route-up, whose sleeps delay the
//!   enslaving; the slave joins when they are over.
//!   [`Bond::slave_link_down`] when it goes down (OpenVPN restarting): the
//!   route-pre-down script releases the slave at once.
//!   [`Bond::carrier`] for a slave's carrier changing without the scripts
//!   (a device vanishing): the bond notices at its next MII poll, every
//!   `bond-miimon` ms.
//! - [`Bond::transmit`] picks the slave for an outgoing packet (the engine
//!   hands it to that slave's OpenVPN model) or drops it;
//!   [`Bond::receive`] takes a packet that arrived on a slave.
//! - Actions: `Timer`, `Log`, `LinkState` (the bond has a usable slave or
//!   not), `Deliver`/`Drop` from [`Bond::receive`].
//!
//! # Behaviour
//! - active-backup: one active slave carries everything; the others are
//!   backups and frames arriving on them are dropped (as the driver does).
//!   The first usable slave becomes active; when the active one leaves or
//!   fails, the next usable slave in enslave order takes over; a slave that
//!   joins later stays backup (no `primary`).
//! - balance-alb (and balance-tlb, balance-xor, 802.3ad): each destination
//!   is assigned to one usable slave by a hash of its address (tlb's
//!   per-destination table, without the 10 s rebalancing); all slaves
//!   receive. balance-rr: round robin. broadcast: the first usable slave
//!   (the model carries one copy).
//! - MII monitoring: carrier is sampled every `miimon` ms from the bond's
//!   start (0 or unset: never, so a failed carrier is not noticed). No
//!   `updelay`/`downdelay`.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::Ipv4Net;
use vpnsim_render::format::Format;
use vpnsim_render::ifupdown::{Addressing, BondMode, Interfaces, Stanza};
use vpnsim_render::script::{Script, Step};

use crate::packet::Packet;
use crate::proto::Action;
use crate::time::{Instant, Span};

/// Why files cannot make a bond.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BondError(pub String);

/// What a script does to this bond for a device: its delay and whether it
/// adds (`+dev`) or removes (`-dev`) it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScriptEffect {
    /// Time spent in `sleep`s before the write to `bonding/slaves`.
    pub delay: Span,
    /// `Some(true)`: enslaves; `Some(false)`: releases; `None`: does not
    /// touch this bond.
    pub enslaves: Option<bool>,
}

/// Runs a script symbolically with `dev` set, as OpenVPN does.
pub fn script_effect(script: &Script, bond: &str, dev: &str) -> ScriptEffect {
    let env = BTreeMap::from([("dev".to_string(), dev.to_string())]);
    let target = format!("/sys/class/net/{bond}/bonding/slaves");
    let mut delay = Span::ZERO;
    for step in script.steps(&env) {
        match step {
            Step::Sleep(d) => delay = delay + Span(d.as_nanos().min(u128::from(u64::MAX)) as u64),
            Step::Run(inv) => {
                if let Some((file, text, _)) = inv.echo_to_file()
                    && file == target
                {
                    let t = text.trim();
                    if t == format!("+{dev}") {
                        return ScriptEffect {
                            delay,
                            enslaves: Some(true),
                        };
                    }
                    if t == format!("-{dev}") {
                        return ScriptEffect {
                            delay,
                            enslaves: Some(false),
                        };
                    }
                }
            }
        }
    }
    ScriptEffect {
        delay,
        enslaves: None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SlaveState {
    /// route-up is running; joins at the token's time.
    Joining {
        generation: u64,
    },
    Enslaved,
}

#[derive(Debug, Clone)]
struct Slave {
    state: SlaveState,
    /// The device's carrier.
    carrier: bool,
    /// The bond's view (MII), updated at polls.
    mii_up: bool,
    enslaved_at: Instant,
}

const T_MII: u64 = 0;

/// A Linux bond device.
#[derive(Debug, Clone)]
pub struct Bond {
    name: String,
    mode: BondMode,
    miimon: Span,
    address: Option<Ipv4Net>,
    up_script: Option<Script>,
    down_script: Option<Script>,
    slaves: BTreeMap<String, Slave>,
    /// Enslave order.
    order: Vec<String>,
    /// Stable token index per slave name.
    index: BTreeMap<String, u64>,
    active: Option<String>,
    rr: u64,
    started: Instant,
    generation: u64,
    was_up: bool,
}

impl Bond {
    /// From the interfaces file text with `iface NAME`, and the route-up /
    /// route-pre-down scripts (`None` when the configs name none).
    pub fn from_texts(
        interfaces: &str,
        name: &str,
        route_up: Option<&str>,
        route_pre_down: Option<&str>,
    ) -> Result<Bond, BondError> {
        let file =
            Interfaces::parse(interfaces).map_err(|e| BondError(format!("interfaces: {e}")))?;
        let stanza = Stanza::from_interfaces(&file, name)
            .map_err(|e| BondError(format!("interfaces: {e}")))?;
        let parse = |t: Option<&str>, what: &str| -> Result<Option<Script>, BondError> {
            t.map(|t| Script::parse(t).map_err(|e| BondError(format!("{what} script: {e}"))))
                .transpose()
        };
        Bond::from_stanza(
            &stanza,
            parse(route_up, "route-up")?,
            parse(route_pre_down, "route-pre-down")?,
        )
    }

    pub fn from_stanza(
        stanza: &Stanza,
        up: Option<Script>,
        down: Option<Script>,
    ) -> Result<Bond, BondError> {
        let Some(b) = &stanza.bond else {
            return Err(BondError(format!(
                "iface {} has no bond-mode/bond-slaves",
                stanza.name.as_str()
            )));
        };
        let address = match &stanza.addressing {
            Addressing::Static { address, .. } => Some(*address),
            _ => None,
        };
        Ok(Bond {
            name: stanza.name.as_str().to_owned(),
            // The driver's default mode is balance-rr.
            mode: b.mode.unwrap_or(BondMode::BalanceRr),
            miimon: Span::millis(u64::from(b.miimon.unwrap_or(0))),
            address,
            up_script: up,
            down_script: down,
            slaves: BTreeMap::new(),
            order: Vec::new(),
            index: BTreeMap::new(),
            active: None,
            rr: 0,
            started: Instant::START,
            generation: 0,
            was_up: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn mode(&self) -> BondMode {
        self.mode
    }

    pub fn miimon(&self) -> Span {
        self.miimon
    }

    /// The bond's address (`address`/`netmask`).
    pub fn address(&self) -> Option<Ipv4Net> {
        self.address
    }

    /// The delay route-up imposes before `dev` joins (its sleeps), or
    /// `None` when it does not enslave `dev` into this bond.
    pub fn enslave_delay(&self, dev: &str) -> Option<Span> {
        let s = self.up_script.as_ref()?;
        let e = script_effect(s, &self.name, dev);
        (e.enslaves == Some(true)).then_some(e.delay)
    }

    /// Slaves the bond would use now, in enslave order.
    pub fn usable(&self) -> Vec<&str> {
        self.order
            .iter()
            .filter(|n| {
                self.slaves
                    .get(*n)
                    .is_some_and(|s| s.state == SlaveState::Enslaved && s.mii_up)
            })
            .map(String::as_str)
            .collect()
    }

    /// The active slave (active-backup).
    pub fn active(&self) -> Option<&str> {
        self.active.as_deref()
    }

    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        self.slaves.clear();
        self.order.clear();
        self.active = None;
        self.started = now;
        self.was_up = false;
        vec![Action::Log(format!(
            "{}: bonding mode {}, miimon {} ms, no slaves",
            self.name,
            self.mode,
            self.miimon.0 / 1_000_000
        ))]
    }

    fn token_of(&mut self, dev: &str) -> u64 {
        let n = self.index.len() as u64;
        let idx = *self.index.entry(dev.to_owned()).or_insert(n);
        1 + idx
    }

    /// The TAP link of `dev` came up: route-up runs; `dev` joins after its
    /// sleeps.
    pub fn slave_link_up(&mut self, now: Instant, dev: &str) -> Vec<Action> {
        let Some(delay) = self.enslave_delay(dev) else {
            return vec![Action::Log(format!(
                "{}: route-up does not enslave {dev} (no `echo +{dev} > /sys/class/net/{}/bonding/slaves`)",
                self.name, self.name
            ))];
        };
        self.generation += 1;
        let generation = self.generation;
        let token = self.token_of(dev);
        self.slaves.insert(
            dev.to_owned(),
            Slave {
                state: SlaveState::Joining { generation },
                carrier: true,
                mii_up: false,
                enslaved_at: now,
            },
        );
        vec![
            Action::Log(format!(
                "{}: route-up for {dev}: enslaving after {delay}",
                self.name
            )),
            Action::Timer {
                at: now + delay,
                token,
            },
        ]
    }

    /// The TAP link of `dev` went down: route-pre-down releases it now.
    pub fn slave_link_down(&mut self, now: Instant, dev: &str) -> Vec<Action> {
        let releases = self
            .down_script
            .as_ref()
            .map(|s| script_effect(s, &self.name, dev))
            .filter(|e| e.enslaves == Some(false));
        let mut out = Vec::new();
        match releases {
            Some(e) if e.delay > Span::ZERO => out.push(Action::Log(format!(
                "{}: route-pre-down sleeps {} before releasing {dev} (not modelled: released now)",
                self.name, e.delay
            ))),
            Some(_) => {}
            None => out.push(Action::Log(format!(
                "{}: route-pre-down does not release {dev}; the device goes away with OpenVPN's restart",
                self.name
            ))),
        }
        // Either way the TAP device is gone or released: it leaves now.
        if self.slaves.remove(dev).is_some() {
            self.order.retain(|n| n != dev);
            out.push(Action::Log(format!("{}: releasing {dev}", self.name)));
        }
        out.extend(self.reselect(now));
        out
    }

    /// The carrier of `dev` changed; the bond notices at its next MII poll.
    pub fn carrier(&mut self, now: Instant, dev: &str, up: bool) -> Vec<Action> {
        let Some(s) = self.slaves.get_mut(dev) else {
            return Vec::new();
        };
        s.carrier = up;
        if self.miimon == Span::ZERO {
            return Vec::new();
        }
        vec![Action::Timer {
            at: self.next_poll(now),
            token: T_MII,
        }]
    }

    /// The first MII poll strictly after `now`.
    fn next_poll(&self, now: Instant) -> Instant {
        let m = self.miimon.0.max(1);
        let since = now.since(self.started).0;
        self.started + Span((since / m + 1) * m)
    }

    pub fn on_timer(&mut self, now: Instant, token: u64) -> Vec<Action> {
        if token == T_MII {
            let mut out = Vec::new();
            let names: Vec<String> = self.slaves.keys().cloned().collect();
            for n in names {
                if let Some(s) = self.slaves.get_mut(&n)
                    && s.state == SlaveState::Enslaved
                    && s.mii_up != s.carrier
                {
                    s.mii_up = s.carrier;
                    out.push(Action::Log(format!(
                        "{}: link status definitely {} for interface {n}",
                        self.name,
                        if s.carrier { "up" } else { "down" }
                    )));
                }
            }
            out.extend(self.reselect(now));
            return out;
        }
        let Some(dev) = self
            .index
            .iter()
            .find(|(_, i)| 1 + **i == token)
            .map(|(n, _)| n.clone())
        else {
            return Vec::new();
        };
        let Some(s) = self.slaves.get_mut(&dev) else {
            return Vec::new();
        };
        // A newer link-up re-arms the same token, so a firing join is the
        // latest one.
        let SlaveState::Joining { .. } = s.state else {
            return Vec::new();
        };
        s.state = SlaveState::Enslaved;
        s.mii_up = s.carrier;
        s.enslaved_at = now;
        self.order.push(dev.clone());
        let mut out = vec![Action::Log(format!(
            "{}: enslaving {dev} as {} interface with an up link",
            self.name,
            if self.mode == BondMode::ActiveBackup && self.active.is_some() {
                "a backup"
            } else {
                "an active"
            }
        ))];
        out.extend(self.reselect(now));
        out
    }

    /// Keeps the active slave valid and reports the bond's own state.
    fn reselect(&mut self, _now: Instant) -> Vec<Action> {
        let usable: Vec<String> = self.usable().iter().map(|s| (*s).to_owned()).collect();
        let mut out = Vec::new();
        let still = self.active.as_ref().is_some_and(|a| usable.contains(a));
        if !still {
            let new = usable.first().cloned();
            if new != self.active {
                if let Some(n) = &new {
                    out.push(Action::Log(format!(
                        "{}: making interface {n} the new active one",
                        self.name
                    )));
                }
                self.active = new;
            }
        }
        let up = !usable.is_empty();
        if up != self.was_up {
            self.was_up = up;
            if !up {
                out.push(Action::Log(format!(
                    "{}: now running without any active interface!",
                    self.name
                )));
            }
            out.push(Action::LinkState { up });
        }
        out
    }

    /// The slave for an outgoing packet, or a drop (an [`Action::Drop`]).
    pub fn transmit(
        &mut self,
        _now: Instant,
        packet: Packet,
    ) -> Result<(String, Packet), Box<Action>> {
        let usable: Vec<String> = self.usable().iter().map(|s| (*s).to_owned()).collect();
        if usable.is_empty() {
            return Err(Box::new(Action::Drop {
                reason: format!("{}: no slave with an up link", self.name),
                packet: Box::new(packet),
            }));
        }
        let pick = match self.mode {
            BondMode::ActiveBackup | BondMode::Broadcast => {
                self.active.clone().or_else(|| usable.first().cloned())
            }
            BondMode::BalanceRr => {
                self.rr = self.rr.wrapping_add(1);
                usable
                    .get((self.rr % usable.len() as u64) as usize)
                    .cloned()
            }
            _ => {
                let h = dst_hash(packet.dst);
                usable.get(h as usize % usable.len()).cloned()
            }
        };
        match pick {
            Some(s) => Ok((s, packet)),
            None => Err(Box::new(Action::Drop {
                reason: format!("{}: no active slave", self.name),
                packet: Box::new(packet),
            })),
        }
    }

    /// A packet that arrived on slave `dev`.
    pub fn receive(&mut self, _now: Instant, dev: &str, packet: Packet) -> Vec<Action> {
        let enslaved = self
            .slaves
            .get(dev)
            .is_some_and(|s| s.state == SlaveState::Enslaved);
        if !enslaved {
            return vec![Action::Drop {
                reason: format!("{dev} is not a slave of {}", self.name),
                packet: Box::new(packet),
            }];
        }
        if self.mode == BondMode::ActiveBackup && self.active.as_deref() != Some(dev) {
            return vec![Action::Drop {
                reason: format!("{}: frame on backup slave {dev} dropped", self.name),
                packet: Box::new(packet),
            }];
        }
        vec![Action::Deliver(packet)]
    }
}

/// tlb's hash of a destination: XOR of the address bytes.
fn dst_hash(ip: IpAddr) -> u64 {
    let bytes: Vec<u8> = match ip {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    u64::from(bytes.iter().fold(0u8, |h, b| h ^ b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{Icmp, Payload};
    use crate::proto::ipsec::testnet::{file, generated};

    fn ping(dst: &str) -> Packet {
        Packet {
            src: "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
            dst: dst.parse().unwrap_or_else(|e| panic!("{e}")),
            ttl: 64,
            dont_fragment: false,
            payload: Payload::Icmp(Icmp::EchoRequest {
                id: 1,
                seq: 1,
                len: 56,
            }),
        }
    }

    /// machine-a's bond0 from the generated files (mode edited if asked).
    fn bond(mode: Option<&str>) -> Bond {
        let files = generated("dual-path-bond");
        let mut ifs = file(&files, "machine-a", "etc/network/interfaces.d/bond0");
        if let Some(m) = mode {
            ifs = ifs.replace("bond-mode balance-alb", &format!("bond-mode {m}"));
        }
        let up = file(&files, "machine-a", "etc/openvpn/scripts/enslave-bond0.sh");
        let down = file(&files, "machine-a", "etc/openvpn/scripts/release-bond0.sh");
        Bond::from_texts(&ifs, "bond0", Some(&up), Some(&down)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Drives a bond: its timers in time order.
    struct Run {
        bond: Bond,
        timers: BTreeMap<u64, Instant>,
        events: Vec<(Instant, Action)>,
    }

    impl Run {
        fn new(bond: Bond) -> Run {
            let mut r = Run {
                bond,
                timers: BTreeMap::new(),
                events: Vec::new(),
            };
            let a = r.bond.start(Instant::START);
            r.take(Instant::START, a);
            r
        }
        fn take(&mut self, now: Instant, actions: Vec<Action>) {
            for a in actions {
                match a {
                    Action::Timer { at, token } => {
                        self.timers.insert(token, at);
                    }
                    other => self.events.push((now, other)),
                }
            }
        }
        fn until(&mut self, t: Instant) {
            loop {
                let next = self
                    .timers
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(k, at)| (*k, *at));
                match next {
                    Some((token, at)) if at <= t => {
                        self.timers.remove(&token);
                        let a = self.bond.on_timer(at, token);
                        self.take(at, a);
                    }
                    _ => break,
                }
            }
        }
        fn up(&mut self, t: Instant, dev: &str) {
            self.until(t);
            let a = self.bond.slave_link_up(t, dev);
            self.take(t, a);
        }
        fn down(&mut self, t: Instant, dev: &str) {
            self.until(t);
            let a = self.bond.slave_link_down(t, dev);
            self.take(t, a);
        }
        fn carrier(&mut self, t: Instant, dev: &str, up: bool) {
            self.until(t);
            let a = self.bond.carrier(t, dev, up);
            self.take(t, a);
        }
        /// The slave each of the destinations goes to at `t`.
        fn spread(&mut self, t: Instant, dsts: &[&str]) -> Vec<Option<String>> {
            self.until(t);
            dsts.iter()
                .map(|d| self.bond.transmit(t, ping(d)).ok().map(|(s, _)| s))
                .collect()
        }
    }

    fn at(ms: u64) -> Instant {
        Instant(Span::millis(ms).0)
    }

    const DSTS: [&str; 4] = ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5"];

    #[test]
    fn the_bond_reads_its_stanza_and_the_scripts_delay() {
        let b = bond(None);
        assert_eq!(b.name(), "bond0");
        assert_eq!(b.mode(), BondMode::BalanceAlb);
        assert_eq!(b.miimon(), Span::millis(100));
        assert_eq!(
            b.address().map(|a| a.to_string()).as_deref(),
            Some("10.0.0.1/24")
        );
        assert_eq!(b.enslave_delay("ovn0"), Some(Span::secs(10)));
        assert_eq!(b.enslave_delay("ovn1"), Some(Span::secs(10)));
        let down = b
            .down_script
            .as_ref()
            .map(|s| script_effect(s, "bond0", "ovn0"));
        assert_eq!(
            down,
            Some(ScriptEffect {
                delay: Span::ZERO,
                enslaves: Some(false)
            })
        );
        // A script that writes elsewhere enslaves nothing.
        let other = Script::parse(
            "#!/bin/sh\nsleep 3\necho \"+$dev\" > /sys/class/net/bond1/bonding/slaves\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(script_effect(&other, "bond0", "ovn0").enslaves, None);
    }

    #[test]
    fn a_slave_joins_only_after_the_route_up_sleep() {
        let mut r = Run::new(bond(None));
        r.up(at(1_000), "ovn0");
        assert_eq!(r.spread(at(10_999), &DSTS), vec![None; 4]);
        assert_eq!(
            r.spread(at(11_000), &DSTS),
            vec![Some("ovn0".to_string()); 4]
        );
        assert!(
            r.events
                .iter()
                .any(|(t, a)| *t == at(11_000) && *a == Action::LinkState { up: true })
        );
    }

    #[test]
    fn a_link_down_keeps_traffic_on_the_other_and_its_return_waits_for_the_sleep() {
        let mut r = Run::new(bond(None));
        r.up(at(0), "ovn0");
        r.up(at(500), "ovn1");
        let both = r.spread(at(20_000), &DSTS);
        assert!(
            both.contains(&Some("ovn0".into())) && both.contains(&Some("ovn1".into())),
            "{both:?}"
        );
        // OpenVPN restarts ovn0: route-pre-down releases it at once.
        r.down(at(30_000), "ovn0");
        assert_eq!(
            r.spread(at(30_000), &DSTS),
            vec![Some("ovn1".to_string()); 4]
        );
        assert!(
            !r.events
                .iter()
                .any(|(_, a)| *a == Action::LinkState { up: false })
        );
        // It comes back: nothing goes to it for the script's 10 s.
        r.up(at(40_000), "ovn0");
        assert_eq!(
            r.spread(at(49_999), &DSTS),
            vec![Some("ovn1".to_string()); 4]
        );
        let after = r.spread(at(50_000), &DSTS);
        assert!(after.contains(&Some("ovn0".into())), "{after:?}");
    }

    #[test]
    fn a_lost_carrier_is_seen_within_one_miimon_interval() {
        let mut r = Run::new(bond(None));
        r.up(at(0), "ovn0");
        r.up(at(0), "ovn1");
        r.until(at(20_000));
        let before = r.spread(at(20_000), &DSTS);
        r.carrier(at(20_030), "ovn0", false);
        // Until the next poll (20.100 s) the bond still uses ovn0.
        assert_eq!(r.spread(at(20_099), &DSTS), before);
        assert_eq!(
            r.spread(at(20_100), &DSTS),
            vec![Some("ovn1".to_string()); 4]
        );
        let gap = at(20_100).since(at(20_030));
        assert!(gap <= r.bond.miimon());
        assert!(
            r.events
                .iter()
                .any(|(_, a)| matches!(a, Action::Log(l) if l.contains("link status definitely down for interface ovn0")))
        );
    }

    #[test]
    fn active_backup_fails_over_and_drops_frames_on_the_backup() {
        let mut r = Run::new(bond(Some("active-backup")));
        r.up(at(0), "ovn0");
        r.up(at(1_000), "ovn1");
        r.until(at(12_000));
        assert_eq!(r.bond.active(), Some("ovn0"));
        assert_eq!(
            r.spread(at(12_000), &DSTS),
            vec![Some("ovn0".to_string()); 4]
        );
        let on_backup = r.bond.receive(at(12_000), "ovn1", ping("10.0.0.1"));
        assert!(matches!(&on_backup[..], [Action::Drop { .. }]));
        let on_active = r.bond.receive(at(12_000), "ovn0", ping("10.0.0.1"));
        assert!(matches!(&on_active[..], [Action::Deliver(_)]));
        r.down(at(13_000), "ovn0");
        assert_eq!(r.bond.active(), Some("ovn1"));
        assert_eq!(
            r.spread(at(13_000), &DSTS),
            vec![Some("ovn1".to_string()); 4]
        );
        // ovn0 returns as a backup: the active slave stays.
        r.up(at(14_000), "ovn0");
        r.until(at(30_000));
        assert_eq!(r.bond.active(), Some("ovn1"));
        r.down(at(31_000), "ovn1");
        assert_eq!(r.bond.active(), Some("ovn0"));
        r.down(at(32_000), "ovn0");
        assert_eq!(r.spread(at(32_000), &DSTS), vec![None; 4]);
        assert!(
            r.events
                .iter()
                .any(|(t, a)| *t == at(32_000) && *a == Action::LinkState { up: false })
        );
    }
}

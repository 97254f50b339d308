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
//!
//! # Link monitoring (Documentation/networking/bonding.rst)
//! The kernel runs one link monitor per bond:
//! - MII (`bond-miimon` ms): carrier is sampled every `miimon` ms from the
//!   bond's start. bonding.rst, `miimon`: "The default value is 100 if
//!   arp_interval is not set" (the kernel sets it when the mode is chosen,
//!   `bond_option_mode_set`), so an unset `bond-miimon` is 100 ms. A TAP
//!   device has carrier while its OpenVPN process holds it open, whatever
//!   the peer does: MII never sees a dead path (reference 004's point). No
//!   `updelay`/`downdelay`.
//! - ARP (`bond-arp-interval` ms, `bond-arp-ip-target`, `arp_validate
//!   none`, `arp_missed_max` 2): bonding.rst, `arp_interval`: "The ARP
//!   monitor works by periodically checking the slave devices to determine
//!   whether they have sent or received traffic recently [...]. Regular
//!   traffic is generated via ARP probes issued for the addresses specified
//!   by the arp_ip_target option." Every `arp_interval` (first at the
//!   bond's start) each slave is judged, then an ARP request goes to every
//!   target on each slave with carrier (`bond_loadbalance_arp_mon`). A
//!   time is "within N intervals" when it is at most N·δ + δ/2 old
//!   (`bond_time_in_interval`). A down slave comes up when it sent and
//!   received within 1 interval; an up slave goes down when it has not sent
//!   or not received within `arp_missed_max` (2) intervals (bonding.rst,
//!   `arp_missed_max`: "the number of arp_interval monitor checks that must
//!   fail in order for an interface to be marked down"). With `arp_validate
//!   none` any frame received counts. So a silent path goes down between
//!   2.5 and 3.5 intervals after its last frame. A slave is up when it is
//!   enslaved, and is given a receive time one interval and a tick old (the
//!   kernel's `last_rx` at enslaving), so it must hear from the peer within
//!   1.5 intervals.
//!   active-backup (`bond_ab_arp_inspect`): a backup goes down after
//!   `arp_missed_max` + 1 intervals without receiving ("backup interfaces
//!   are permitted an extra monitor check"), a slave up or made active less
//!   than 2 intervals ago is left alone, a down slave comes up on receiving
//!   alone. Deviation: the kernel probes only through the active slave (and
//!   rotates through the others when there is none); the model probes on
//!   every slave, as in the load-balancing modes.
//!   Refused combinations, as the kernel refuses them: `arp_interval` in
//!   balance-tlb, balance-alb and 802.3ad (`bond_options.c` lists those
//!   modes in `unsuppmodes`; ARP monitoring is off, MII runs); with both
//!   `miimon` and `arp_interval` set only ARP monitoring runs (setting one
//!   disables the other, `bond_option_arp_interval_set`). Each is a line in
//!   the trace at the bond's start.
//! - ARP frames cross the TAP links as 28-byte stand-in packets (the ARP
//!   payload's length; the TAP model adds the Ethernet header) that only
//!   bonds create and consume ([`arp_frame`], [`arp_op`]): a bond answers a
//!   request for its own address through its normal transmit choice, and
//!   never hands either kind to the host.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use ipnet::Ipv4Net;
use vpnsim_render::format::Format;
use vpnsim_render::ifupdown::{Addressing, BondMode, Interfaces, Stanza};
use vpnsim_render::script::{Script, Step};

use crate::packet::{Body, Packet, Payload};
use crate::proto::{Action, Session};
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
    /// The ARP monitor's view of the link.
    arp_up: bool,
    /// When the slave last sent / received a frame (the kernel's
    /// `dev_trans_start` and `slave->last_rx`).
    last_tx: Option<Instant>,
    last_rx: Option<Instant>,
    /// When the slave last came up or became active (active-backup's grace).
    last_link_up: Instant,
}

const T_MII: u64 = 0;
/// The ARP monitor's tick.
const T_ARP: u64 = u64::MAX;

/// bonding.rst, `miimon`: "The default value is 100 if arp_interval is not set."
pub const DEFAULT_MIIMON: Span = Span::millis(100);
/// bonding.rst, `arp_missed_max`: "The default value is 2".
pub const ARP_MISSED_MAX: u64 = 2;
/// An ARP packet for IPv4 over Ethernet: 8 header + 2 × (6 + 4) addresses.
pub const ARP_LEN: u32 = 28;
const ARP_REQUEST_TAG: u64 = 0x4152_5000_0000_0001;
const ARP_REPLY_TAG: u64 = 0x4152_5000_0000_0002;

/// ARP request or reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArpOp {
    Request,
    Reply,
}

/// An ARP frame from `sender` about `target`, as the stand-in packet that
/// crosses a TAP link: 28 bytes, the length of the ARP payload (an empty
/// UDP datagram has exactly that size), told apart by its tag.
pub fn arp_frame(op: ArpOp, sender: Ipv4Addr, target: Ipv4Addr) -> Packet {
    Packet {
        src: IpAddr::V4(sender),
        dst: IpAddr::V4(target),
        ttl: 0,
        dont_fragment: false,
        payload: Payload::Udp {
            src_port: 0,
            dst_port: 0,
            body: Body::Data {
                len: 0,
                tag: match op {
                    ArpOp::Request => ARP_REQUEST_TAG,
                    ArpOp::Reply => ARP_REPLY_TAG,
                },
            },
        },
    }
}

/// Whether `p` is an ARP frame of [`arp_frame`], and which.
pub fn arp_op(p: &Packet) -> Option<ArpOp> {
    match &p.payload {
        Payload::Udp {
            src_port: 0,
            dst_port: 0,
            body: Body::Data { len: 0, tag },
        } if p.ttl == 0 => match *tag {
            ARP_REQUEST_TAG => Some(ArpOp::Request),
            ARP_REPLY_TAG => Some(ArpOp::Reply),
            _ => None,
        },
        _ => None,
    }
}

/// A Linux bond device.
#[derive(Debug, Clone)]
pub struct Bond {
    name: String,
    mode: BondMode,
    miimon: Span,
    /// `arp_interval` (zero: no ARP monitoring).
    arp_interval: Span,
    arp_targets: Vec<Ipv4Addr>,
    /// What the kernel refused or changed in the stanza's monitoring
    /// options, said at start.
    notes: Vec<String>,
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
    /// The slaves usable at the last [`Bond::reselect`]: each is a session
    /// of the bond, reported when it starts or stops carrying traffic; the
    /// bond's own link is up while there is one.
    was_usable: Vec<String>,
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
        // The driver's default mode is balance-rr.
        let mode = b.mode.unwrap_or(BondMode::BalanceRr);
        let mut notes = Vec::new();
        let mut arp = Span::millis(u64::from(b.arp_interval.unwrap_or(0)));
        let uses_arp = !matches!(
            mode,
            BondMode::BalanceTlb | BondMode::BalanceAlb | BondMode::Ieee8023ad
        );
        if arp > Span::ZERO && !uses_arp {
            notes.push(format!(
                "option arp_interval: mode dependency failed, not supported in mode {mode}; \
                 no ARP monitoring"
            ));
            arp = Span::ZERO;
        }
        let miimon = match b.miimon {
            Some(m) if arp > Span::ZERO && m > 0 => {
                notes.push(
                    "ARP monitoring cannot be used with MII monitoring: bond-miimon is \
                     disabled, bond-arp-interval runs"
                        .into(),
                );
                Span::ZERO
            }
            Some(m) => Span::millis(u64::from(m)),
            None if arp > Span::ZERO => Span::ZERO,
            None => DEFAULT_MIIMON,
        };
        if arp > Span::ZERO && b.arp_ip_target.is_empty() {
            notes.push(
                "ARP monitoring has been set up, but no ARP targets have been specified".into(),
            );
        }
        Ok(Bond {
            name: stanza.name.as_str().to_owned(),
            mode,
            miimon,
            arp_interval: arp,
            arp_targets: b.arp_ip_target.clone(),
            notes,
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
            was_usable: Vec::new(),
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

    /// `arp_interval` as the kernel runs it (zero: no ARP monitoring).
    pub fn arp_interval(&self) -> Span {
        self.arp_interval
    }

    pub fn arp_targets(&self) -> &[Ipv4Addr] {
        &self.arp_targets
    }

    /// The slave's link as the running monitor sees it.
    fn link_ok(&self, s: &Slave) -> bool {
        if self.arp_interval > Span::ZERO {
            s.arp_up
        } else {
            s.mii_up
        }
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
                    .is_some_and(|s| s.state == SlaveState::Enslaved && self.link_ok(s))
            })
            .map(String::as_str)
            .collect()
    }

    /// The active slave (active-backup).
    pub fn active(&self) -> Option<&str> {
        self.active.as_deref()
    }

    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let ended: Vec<Action> = std::mem::take(&mut self.was_usable)
            .into_iter()
            .map(|n| Session::down(n, None, "bond restarted"))
            .collect();
        self.slaves.clear();
        self.order.clear();
        self.active = None;
        self.started = now;
        let monitor = if self.arp_interval > Span::ZERO {
            let targets: Vec<String> = self.arp_targets.iter().map(|t| t.to_string()).collect();
            format!(
                "arp_interval {} ms, arp_ip_target {}",
                self.arp_interval.0 / 1_000_000,
                if targets.is_empty() {
                    "none".to_string()
                } else {
                    targets.join(",")
                }
            )
        } else {
            format!("miimon {} ms", self.miimon.0 / 1_000_000)
        };
        let mut out = ended;
        out.push(Action::Log(format!(
            "{}: bonding mode {}, {monitor}, no slaves",
            self.name, self.mode
        )));
        for n in &self.notes {
            out.push(Action::Log(format!("{}: warning: {n}", self.name)));
        }
        if self.arp_interval > Span::ZERO {
            // The kernel queues the ARP monitor at once when the bond opens.
            out.push(Action::Timer {
                at: now,
                token: T_ARP,
            });
        }
        out
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
                arp_up: false,
                last_tx: None,
                last_rx: None,
                last_link_up: now,
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
        if token == T_ARP {
            return self.arp_monitor(now);
        }
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
        // bond_enslave with arp_interval: the link is up if the device has
        // carrier; `last_rx` is set one interval and a tick back, so the
        // first reply must come within 1.5 intervals; the script has just
        // brought the device up, which is its last transmit.
        s.arp_up = s.carrier;
        s.last_rx = Some(Instant(now.0.saturating_sub(self.arp_interval.0 + 1)));
        s.last_tx = Some(now);
        s.last_link_up = now;
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
    fn reselect(&mut self, now: Instant) -> Vec<Action> {
        let usable: Vec<String> = self.usable().iter().map(|s| (*s).to_owned()).collect();
        let was_up = !self.was_usable.is_empty();
        let mut out = self.usable_changes(now, &usable);
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
        if up != was_up {
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

    /// Session changes of the slaves between the last reselect and
    /// `usable`, with why each left or joined.
    fn usable_changes(&mut self, now: Instant, usable: &[String]) -> Vec<Action> {
        let mut out = Vec::new();
        for gone in self.was_usable.iter().filter(|n| !usable.contains(n)) {
            let why = match self.slaves.get(gone) {
                None => "released (route-pre-down)",
                Some(_) if self.arp_interval > Span::ZERO => "ARP monitor: link down",
                Some(_) => "MII monitor: link down",
            };
            out.push(Session::down(gone.clone(), None, why));
        }
        for new in usable.iter().filter(|n| !self.was_usable.contains(n)) {
            let why = match self.slaves.get(new) {
                Some(s) if s.enslaved_at == now => "enslaved (route-up script)",
                _ => "link up again",
            };
            out.push(Session::up(new.clone(), None, why));
        }
        self.was_usable = usable.to_vec();
        out
    }

    /// The slave for an outgoing packet, or a drop (an [`Action::Drop`]).
    pub fn transmit(
        &mut self,
        now: Instant,
        packet: Packet,
    ) -> Result<(String, Packet), Box<Action>> {
        match self.pick(&packet) {
            Ok(slave) => {
                if let Some(s) = self.slaves.get_mut(&slave) {
                    s.last_tx = Some(now);
                }
                Ok((slave, packet))
            }
            Err(reason) => Err(Box::new(Action::Drop {
                reason,
                packet: Box::new(packet),
            })),
        }
    }

    /// The transmit policy's slave for `packet`, or why there is none.
    fn pick(&mut self, packet: &Packet) -> Result<String, String> {
        let usable: Vec<String> = self.usable().iter().map(|s| (*s).to_owned()).collect();
        if usable.is_empty() {
            return Err(format!("{}: no slave with an up link", self.name));
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
        pick.ok_or_else(|| format!("{}: no active slave", self.name))
    }

    /// A packet that arrived on slave `dev`. Any frame counts as received
    /// for the ARP monitor (`arp_validate none`), even on a backup slave
    /// that then drops it. ARP frames stay in the bond: a request for the
    /// bond's address is answered (an [`Action::TransmitOn`]) unless it
    /// came in on an active-backup bond's backup slave.
    pub fn receive(&mut self, now: Instant, dev: &str, packet: Packet) -> Vec<Action> {
        let enslaved = match self.slaves.get_mut(dev) {
            Some(s) if s.state == SlaveState::Enslaved => {
                s.last_rx = Some(now);
                true
            }
            _ => false,
        };
        if !enslaved {
            return vec![Action::Drop {
                reason: format!("{dev} is not a slave of {}", self.name),
                packet: Box::new(packet),
            }];
        }
        let backup = self.mode == BondMode::ActiveBackup && self.active.as_deref() != Some(dev);
        if let Some(op) = arp_op(&packet) {
            let mine = self.address.map(|a| IpAddr::V4(a.addr()));
            if op != ArpOp::Request || backup || mine != Some(packet.dst) {
                return Vec::new();
            }
            let (IpAddr::V4(me), IpAddr::V4(asker)) = (packet.dst, packet.src) else {
                return Vec::new();
            };
            let reply = arp_frame(ArpOp::Reply, me, asker);
            return match self.transmit(now, reply) {
                Ok((device, packet)) => vec![Action::TransmitOn { device, packet }],
                Err(_) => Vec::new(),
            };
        }
        if backup {
            return vec![Action::Drop {
                reason: format!("{}: frame on backup slave {dev} dropped", self.name),
                packet: Box::new(packet),
            }];
        }
        vec![Action::Deliver(packet)]
    }

    /// Whether `last` is within `k` ARP intervals of `now`
    /// (`bond_time_in_interval`: `now` in [last − δ, last + k·δ + δ/2]).
    fn within(&self, now: Instant, last: Option<Instant>, k: u64) -> bool {
        let d = self.arp_interval.0;
        last.is_some_and(|t| {
            now.0.saturating_add(d) >= t.0
                && now.0
                    <= t.0
                        .saturating_add(k.saturating_mul(d))
                        .saturating_add(d / 2)
        })
    }

    /// One tick of the ARP monitor: judge every slave, then probe every
    /// target on each slave with carrier; the next tick one interval on.
    fn arp_monitor(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        let sender = self.address.map_or(Ipv4Addr::UNSPECIFIED, |a| a.addr());
        let names = self.order.clone();
        for n in &names {
            let Some(s) = self.slaves.get(n).cloned() else {
                continue;
            };
            let active = self.active.as_deref() == Some(n.as_str());
            let ab = self.mode == BondMode::ActiveBackup;
            let change = if !s.arp_up {
                let rx = self.within(now, s.last_rx, 1);
                let up = if ab {
                    rx
                } else {
                    rx && self.within(now, s.last_tx, 1)
                };
                up.then_some(true)
            } else if ab && self.within(now, Some(s.last_link_up), 2) {
                None
            } else if ab && !active {
                (!self.within(now, s.last_rx, ARP_MISSED_MAX + 1)).then_some(false)
            } else {
                let silent = !self.within(now, s.last_tx, ARP_MISSED_MAX)
                    || !self.within(now, s.last_rx, ARP_MISSED_MAX);
                silent.then_some(false)
            };
            if let Some(up) = change
                && let Some(slave) = self.slaves.get_mut(n)
            {
                slave.arp_up = up;
                if up {
                    slave.last_link_up = now;
                }
                out.push(Action::Log(format!(
                    "{}: link status definitely {} for interface {n} (ARP monitor)",
                    self.name,
                    if up { "up" } else { "down" }
                )));
            }
            if s.carrier && !self.arp_targets.is_empty() {
                for t in &self.arp_targets {
                    out.push(Action::TransmitOn {
                        device: n.clone(),
                        packet: arp_frame(ArpOp::Request, sender, *t),
                    });
                }
                if let Some(slave) = self.slaves.get_mut(n) {
                    slave.last_tx = Some(now);
                }
            }
        }
        let before = self.active.clone();
        out.extend(self.reselect(now));
        if self.active != before
            && let Some(a) = self.active.clone()
            && let Some(s) = self.slaves.get_mut(&a)
        {
            s.last_link_up = now;
        }
        out.push(Action::Timer {
            at: now + self.arp_interval,
            token: T_ARP,
        });
        out
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

    /// `host`'s bond0 from the generated files, its stanza edited.
    fn bond_of(host: &str, edit: &dyn Fn(String) -> String) -> Bond {
        let files = generated("dual-path-bond");
        let ifs = edit(file(&files, host, "etc/network/interfaces.d/bond0"));
        let up = file(&files, host, "etc/openvpn/scripts/enslave-bond0.sh");
        let down = file(&files, host, "etc/openvpn/scripts/release-bond0.sh");
        Bond::from_texts(&ifs, "bond0", Some(&up), Some(&down)).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Mode `mode`, ARP monitoring every `ms` towards `target`, no miimon.
    fn arp_edit(mode: &'static str, ms: u32, target: &'static str) -> impl Fn(String) -> String {
        move |text: String| {
            text.replace("bond-mode balance-alb", &format!("bond-mode {mode}"))
                .replace(
                    "bond-miimon 100",
                    &format!("bond-arp-interval {ms}\n    bond-arp-ip-target {target}"),
                )
        }
    }

    /// Two bonds (machine-a, machine-b) joined by the TAP paths ovn0 and
    /// ovn1, each with a one-way latency and a switch: frames a bond sends
    /// on a slave ([`Action::TransmitOn`] or its transmit choice) reach the
    /// other bond's slave of the same name while the path is alive.
    struct Pair {
        bonds: [Bond; 2],
        latency: Span,
        dead: BTreeMap<String, bool>,
        queue: BTreeMap<(Instant, u64), PairEv>,
        timers: BTreeMap<(usize, u64), Instant>,
        seq: u64,
        now: Instant,
        logs: Vec<(Instant, usize, String)>,
        delivered: Vec<(Instant, usize, String)>,
    }

    enum PairEv {
        Timer(usize, u64),
        Frame(usize, String, Box<Packet>),
    }

    impl Pair {
        fn new(edit: &dyn Fn(String) -> String) -> Pair {
            let mut p = Pair {
                bonds: [bond_of("machine-a", edit), bond_of("machine-b", edit)],
                latency: Span::millis(10),
                dead: BTreeMap::new(),
                queue: BTreeMap::new(),
                timers: BTreeMap::new(),
                seq: 0,
                now: Instant::START,
                logs: Vec::new(),
                delivered: Vec::new(),
            };
            for side in 0..2 {
                let a = p.bonds[side].start(Instant::START);
                p.take(side, a);
            }
            p
        }
        fn push(&mut self, at: Instant, ev: PairEv) {
            self.seq += 1;
            self.queue.insert((at, self.seq), ev);
        }
        fn send(&mut self, from: usize, dev: &str, packet: Packet) {
            if !self.dead.get(dev).copied().unwrap_or(false) {
                let at = self.now + self.latency;
                self.push(
                    at,
                    PairEv::Frame(1 - from, dev.to_string(), Box::new(packet)),
                );
            }
        }
        fn take(&mut self, side: usize, actions: Vec<Action>) {
            for a in actions {
                match a {
                    Action::Timer { at, token } if self.timers.get(&(side, token)) != Some(&at) => {
                        self.timers.insert((side, token), at);
                        self.push(at, PairEv::Timer(side, token));
                    }
                    Action::TransmitOn { device, packet } => self.send(side, &device, packet),
                    Action::Deliver(p) => self.delivered.push((self.now, side, p.dst.to_string())),
                    Action::Log(l) => self.logs.push((self.now, side, l)),
                    _ => {}
                }
            }
        }
        fn until(&mut self, t: Instant) {
            while let Some(((at, seq), _)) = self.queue.first_key_value() {
                let key = (*at, *seq);
                if key.0 > t {
                    break;
                }
                let Some(ev) = self.queue.remove(&key) else {
                    break;
                };
                self.now = key.0;
                match ev {
                    PairEv::Timer(side, token) => {
                        if self.timers.get(&(side, token)) == Some(&key.0) {
                            self.timers.remove(&(side, token));
                            let a = self.bonds[side].on_timer(key.0, token);
                            self.take(side, a);
                        }
                    }
                    PairEv::Frame(side, dev, packet) => {
                        let a = self.bonds[side].receive(key.0, &dev, *packet);
                        self.take(side, a);
                    }
                }
            }
            self.now = t;
        }
        /// Both links come up on both sides at `t` (route-up, then the sleep).
        fn up(&mut self, t: Instant) {
            self.until(t);
            for side in 0..2 {
                for dev in ["ovn0", "ovn1"] {
                    let a = self.bonds[side].slave_link_up(t, dev);
                    self.take(side, a);
                }
            }
        }
        /// One IP packet from `side` to the other side's bond address
        /// through the transmit policy.
        fn ping(&mut self, t: Instant, side: usize) {
            self.until(t);
            let dst = if side == 0 { "10.0.0.2" } else { "10.0.0.1" };
            if let Ok((dev, p)) = self.bonds[side].transmit(t, ping(dst)) {
                self.send(side, &dev, p);
            }
        }
        /// When `side` logged that `dev` went down (or up), after `after`.
        fn link_log(&self, side: usize, dev: &str, up: bool, after: Instant) -> Option<Instant> {
            let needle = format!(
                "link status definitely {} for interface {dev}",
                if up { "up" } else { "down" }
            );
            self.logs
                .iter()
                .find(|(t, s, l)| *t > after && *s == side && l.contains(&needle))
                .map(|(t, _, _)| *t)
        }
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

    #[test]
    fn an_unset_miimon_is_the_kernels_100_ms() {
        let b = bond_of("machine-a", &|t| t.replace("    bond-miimon 100\n", ""));
        assert_eq!(b.miimon(), DEFAULT_MIIMON);
        assert_eq!(b.miimon(), Span::millis(100));
        assert_eq!(b.arp_interval(), Span::ZERO);
    }

    #[test]
    fn arp_monitoring_is_refused_in_balance_alb_as_the_kernel_refuses_it() {
        let edit = |t: String| {
            t.replace(
                "bond-miimon 100",
                "bond-arp-interval 1000\n    bond-arp-ip-target 10.0.0.2",
            )
        };
        let mut b = bond_of("machine-a", &edit);
        assert_eq!(b.mode(), BondMode::BalanceAlb);
        assert_eq!(b.arp_interval(), Span::ZERO);
        assert_eq!(b.miimon(), DEFAULT_MIIMON);
        let logs = b.start(Instant::START);
        assert!(
            logs.iter().any(|a| matches!(a, Action::Log(l)
                if l.contains("not supported in mode balance-alb"))),
            "{logs:?}"
        );
        assert!(!logs.iter().any(|a| matches!(a, Action::Timer { .. })));
    }

    #[test]
    fn arp_monitoring_disables_miimon_when_both_are_set() {
        let edit = |t: String| {
            t.replace("bond-mode balance-alb", "bond-mode balance-rr")
                .replace(
                    "bond-miimon 100",
                    "bond-miimon 100\n    bond-arp-interval 500\n    bond-arp-ip-target 10.0.0.2",
                )
        };
        let mut b = bond_of("machine-a", &edit);
        assert_eq!(
            (b.miimon(), b.arp_interval()),
            (Span::ZERO, Span::millis(500))
        );
        let logs = b.start(Instant::START);
        assert!(logs.iter().any(|a| matches!(a, Action::Log(l)
            if l.contains("cannot be used with MII monitoring"))));
        // The monitor's first tick is at once, the next one interval on.
        assert!(logs.contains(&Action::Timer {
            at: Instant::START,
            token: T_ARP
        }));
    }

    #[test]
    fn a_dead_tap_path_is_invisible_to_miimon_but_the_arp_monitor_drops_it_within_3_5_intervals() {
        // MII: the TAP device keeps its carrier, so the dead slave stays.
        let mut mii = Pair::new(&|t| t.replace("bond-mode balance-alb", "bond-mode balance-rr"));
        mii.up(at(0));
        mii.until(at(20_000));
        mii.dead.insert("ovn0".into(), true);
        mii.until(at(60_000));
        assert_eq!(mii.bonds[0].usable(), ["ovn0", "ovn1"]);

        // ARP every second towards the peer's bond address.
        let mut arp = Pair::new(&arp_edit("balance-rr", 1000, "10.0.0.2"));
        let b_side = arp_edit("balance-rr", 1000, "10.0.0.1");
        arp.bonds[1] = bond_of("machine-b", &b_side);
        let a = arp.bonds[1].start(Instant::START);
        arp.take(1, a);
        arp.up(at(0));
        arp.until(at(20_000));
        assert_eq!(arp.bonds[0].usable(), ["ovn0", "ovn1"]);
        assert_eq!(arp.bonds[1].usable(), ["ovn0", "ovn1"]);
        arp.dead.insert("ovn0".into(), true);
        arp.until(at(30_000));
        let down = arp
            .link_log(0, "ovn0", false, at(20_000))
            .unwrap_or_else(|| panic!("no down: {:?}", arp.logs));
        // The probes of the tick at 20 s were already on their way: the
        // last frames on ovn0 arrived at 20.010 s (the peer's probe) and
        // 20.020 s (its reply). The monitor gives up after more than 2.5
        // and at most 3.5 intervals of silence: at the tick of 23 s.
        for last in [at(20_010), at(20_020)] {
            let silence = down.since(last);
            assert!(
                silence > Span::millis(2_500) && silence <= Span::millis(3_500),
                "{silence}"
            );
        }
        assert_eq!(down, at(23_000));
        assert_eq!(arp.bonds[0].usable(), ["ovn1"]);
        assert!(arp.link_log(1, "ovn0", false, at(20_000)).is_some());
        // Traffic keeps flowing on the other slave.
        arp.ping(at(25_000), 0);
        arp.until(at(25_100));
        assert!(
            arp.delivered
                .iter()
                .any(|(t, side, dst)| *t > at(25_000) && *side == 1 && dst == "10.0.0.2")
        );
        // The path returns: up again once it sent and received within one
        // interval, at the first tick after frames flow again.
        arp.dead.insert("ovn0".into(), false);
        arp.until(at(40_000));
        let up = arp
            .link_log(0, "ovn0", true, at(30_000))
            .unwrap_or_else(|| panic!("no up: {:?}", arp.logs));
        assert!(up > at(30_000) && up <= at(32_000), "{up}");
        assert_eq!(arp.bonds[0].usable(), ["ovn0", "ovn1"]);
    }

    #[test]
    fn a_slave_whose_peer_never_answers_goes_down_after_one_and_a_half_intervals() {
        // Only machine-a's bond: nobody answers its probes.
        let mut r = Run::new(bond_of(
            "machine-a",
            &arp_edit("balance-rr", 1000, "10.0.0.2"),
        ));
        r.up(at(0), "ovn0");
        r.until(at(10_000));
        assert_eq!(r.bond.usable(), ["ovn0"]);
        r.until(at(11_999));
        assert_eq!(
            r.bond.usable(),
            ["ovn0"],
            "up at 11 s: its last_rx is 1.0 + a tick old"
        );
        r.until(at(12_000));
        assert!(r.bond.usable().is_empty());
        // Each tick probed the target on the slave.
        let probes = r
            .events
            .iter()
            .filter(|(_, a)| {
                matches!(a, Action::TransmitOn { device, packet }
                if device == "ovn0" && arp_op(packet) == Some(ArpOp::Request))
            })
            .count();
        assert!(probes >= 2, "{probes}");
    }

    #[test]
    fn active_backup_fails_over_when_the_arp_monitor_loses_the_active_path() {
        let mut p = Pair::new(&arp_edit("active-backup", 1000, "10.0.0.2"));
        p.bonds[1] = bond_of("machine-b", &arp_edit("active-backup", 1000, "10.0.0.1"));
        let a = p.bonds[1].start(Instant::START);
        p.take(1, a);
        p.up(at(0));
        p.until(at(20_000));
        assert_eq!(p.bonds[0].active(), Some("ovn0"));
        assert_eq!(p.bonds[0].usable(), ["ovn0", "ovn1"]);
        p.dead.insert("ovn0".into(), true);
        p.until(at(30_000));
        let down = p
            .link_log(0, "ovn0", false, at(20_000))
            .unwrap_or_else(|| panic!("no down: {:?}", p.logs));
        assert!(down <= at(23_000), "{down}");
        assert_eq!(p.bonds[0].active(), Some("ovn1"));
        p.ping(at(25_000), 0);
        p.until(at(25_100));
        assert!(
            p.delivered
                .iter()
                .any(|(t, side, _)| *t > at(25_000) && *side == 1)
        );
    }

    #[test]
    fn arp_frames_are_answered_by_the_bond_and_never_reach_the_host() {
        let mut b = bond_of("machine-b", &arp_edit("balance-rr", 1000, "10.0.0.1"));
        let mut r = Run::new(b.clone());
        r.up(at(0), "ovn0");
        r.until(at(10_500));
        b = r.bond;
        let req = arp_frame(
            ArpOp::Request,
            "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
            "10.0.0.2".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        assert_eq!(req.wire_len(), ARP_LEN);
        let out = b.receive(at(10_600), "ovn0", req.clone());
        assert!(
            matches!(&out[..], [Action::TransmitOn { device, packet }]
                if device == "ovn0" && arp_op(packet) == Some(ArpOp::Reply)
                    && packet.dst.to_string() == "10.0.0.1"),
            "{out:?}"
        );
        // Not for us, or a reply: consumed silently.
        let other = arp_frame(
            ArpOp::Request,
            "10.0.0.1".parse().unwrap_or_else(|e| panic!("{e}")),
            "10.0.0.9".parse().unwrap_or_else(|e| panic!("{e}")),
        );
        assert!(b.receive(at(10_700), "ovn0", other).is_empty());
        assert_eq!(arp_op(&ping("10.0.0.2")), None);
    }
}

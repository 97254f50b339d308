//! The physical network: segments (underlay links and site subnets) with
//! latency, jitter, loss, bandwidth (serialisation delay and a FIFO queue
//! per sending interface), MTU and up/down. A segment delivers a frame to
//! the attachment that owns the next-hop address: an interface address on
//! it, or an address a site router answers for (elastic IPs, its NAT
//! address, routed public space).

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

use crate::rng::Rng;
use crate::time::{Instant, Span};

/// (node index, interface index).
pub type Port = (usize, usize);

#[derive(Debug, Clone)]
pub struct Segment {
    pub name: String,
    pub latency: Span,
    pub jitter: Span,
    /// Loss probability, 0..1.
    pub loss: f64,
    /// Extra loss during a burst, until the instant.
    pub burst: Option<(f64, Instant)>,
    /// Bits per second; `None` is unlimited.
    pub bandwidth: Option<u64>,
    pub mtu: u32,
    /// Set through [`Segment::set_up`], which keeps `generation`.
    pub up: bool,
    /// How many times the segment went down: a frame carries the
    /// generation it was sent in and is lost when it arrives in another
    /// (the link went down while it was on the wire, even if it came back).
    pub generation: u64,
    pub attachments: Vec<Port>,
    /// Addresses or prefixes answered by an attachment besides its own
    /// interface addresses.
    pub proxies: Vec<(IpNet, Port)>,
    /// When each sender's transmit queue is free again.
    pub busy: BTreeMap<Port, Instant>,
    /// Interface addresses of the attachments (kept by `World::index_segment`).
    pub owners: BTreeMap<IpAddr, Port>,
}

impl Segment {
    pub fn new(name: &str, mtu: u32) -> Segment {
        Segment {
            name: name.to_string(),
            latency: Span::ZERO,
            jitter: Span::ZERO,
            loss: 0.0,
            burst: None,
            bandwidth: None,
            mtu,
            up: true,
            generation: 0,
            attachments: Vec::new(),
            proxies: Vec::new(),
            busy: BTreeMap::new(),
            owners: BTreeMap::new(),
        }
    }

    /// Brings the segment up or down; going down loses every frame on the
    /// wire (see `generation`).
    pub fn set_up(&mut self, up: bool) {
        if self.up && !up {
            self.generation += 1;
        }
        self.up = up;
    }

    /// Whether a frame sent in `generation` still arrives: the segment is
    /// up and has not been down since.
    pub fn carries(&self, generation: u64) -> bool {
        self.up && self.generation == generation
    }

    /// Current loss probability at `now`.
    pub fn loss_at(&self, now: Instant) -> f64 {
        match self.burst {
            Some((p, until)) if now < until => 1.0 - (1.0 - self.loss) * (1.0 - p),
            _ => self.loss,
        }
    }

    /// The arrival time of a frame of `bytes` sent by `from` at `now`:
    /// it waits for the sender's queue, is serialised at the bandwidth,
    /// then travels the latency ± jitter.
    pub fn schedule(&mut self, from: Port, now: Instant, bytes: u32, rng: &mut Rng) -> Instant {
        let start = self.busy.get(&from).copied().unwrap_or(now).max(now);
        let serialise = match self.bandwidth {
            Some(bps) if bps > 0 => {
                Span((u64::from(bytes) * 8).saturating_mul(1_000_000_000) / bps)
            }
            _ => Span::ZERO,
        };
        let done = start + serialise;
        if self.bandwidth.is_some() {
            self.busy.insert(from, done);
        }
        let mut delay = self.latency;
        if self.jitter.0 > 0 {
            let j = rng.below(2 * self.jitter.0 + 1);
            delay = Span((delay.0 + j).saturating_sub(self.jitter.0));
        }
        done + delay
    }
}

/// The attachment of `seg` that owns `addr`: an interface address on it,
/// else the longest proxied prefix holding it.
pub fn owner(seg: &Segment, addr: IpAddr) -> Option<Port> {
    if let Some(p) = seg.owners.get(&addr) {
        return Some(*p);
    }
    seg.proxies
        .iter()
        .filter(|(net, _)| net.contains(&addr))
        .max_by_key(|(net, _)| net.prefix_len())
        .map(|(_, p)| *p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialisation_queues_and_latency_adds() {
        let mut s = Segment::new("l", 1500);
        s.latency = Span::millis(10);
        s.bandwidth = Some(8_000_000); // 1 byte per microsecond
        let mut rng = Rng::new(1);
        let a = s.schedule((0, 0), Instant::START, 1000, &mut rng);
        let b = s.schedule((0, 0), Instant::START, 1000, &mut rng);
        assert_eq!(a, Instant::START + Span::micros(1000) + Span::millis(10));
        assert_eq!(b, Instant::START + Span::micros(2000) + Span::millis(10));
        let other = s.schedule((1, 0), Instant::START, 1000, &mut rng);
        assert_eq!(other, a);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut s = Segment::new("l", 1500);
        s.latency = Span::millis(30);
        s.jitter = Span::millis(2);
        let mut rng = Rng::new(3);
        for _ in 0..1000 {
            let t = s.schedule((0, 0), Instant::START, 100, &mut rng);
            assert!((28_000_000..=32_000_000).contains(&t.0), "{t}");
        }
    }

    #[test]
    fn going_down_loses_what_is_on_the_wire_even_if_it_comes_back() {
        let mut s = Segment::new("l", 1500);
        let sent_in = s.generation;
        assert!(s.carries(sent_in));
        s.set_up(false);
        assert!(!s.carries(sent_in));
        s.set_up(true);
        assert!(!s.carries(sent_in), "a flap still cut the frame");
        assert!(s.carries(s.generation));
        // Up while up does not count as a flap.
        let g = s.generation;
        s.set_up(true);
        assert_eq!(s.generation, g);
    }

    #[test]
    fn loss_bursts_add_up() {
        let mut s = Segment::new("l", 1500);
        s.loss = 0.5;
        s.burst = Some((0.5, Instant(10)));
        assert!((s.loss_at(Instant(0)) - 0.75).abs() < 1e-9);
        assert!((s.loss_at(Instant(10)) - 0.5).abs() < 1e-9);
    }
}

//! The physical network: segments (underlay links and site subnets) with
//! latency, jitter, loss, bandwidth (serialisation delay and a FIFO queue
//! per sending interface, [`QUEUE_LIMIT`] frames long, tail drop), MTU and
//! up/down. Jitter varies the delay but never reorders the frames of one
//! sender: a path delivers in order. A segment delivers a frame to
//! the attachment that owns the next-hop address: an interface address on
//! it, or an address a site router answers for (elastic IPs, its NAT
//! address, routed public space).

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;

use ipnet::IpNet;

use crate::rng::Rng;
use crate::time::{Instant, Span};

/// (node index, interface index).
pub type Port = (usize, usize);

/// Frames a sender's queue holds before it drops (Linux's default
/// `txqueuelen`, 1000).
pub const QUEUE_LIMIT: usize = 1000;

/// One sender's side of a segment.
#[derive(Debug, Clone, Default)]
struct Sender {
    /// When the transmit queue is free again.
    busy: Instant,
    /// When each frame in the queue will have been serialised.
    queued: VecDeque<Instant>,
    /// The latest arrival scheduled (frames stay in order).
    last_arrival: Instant,
}

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
    /// Each sender's transmit queue.
    senders: BTreeMap<Port, Sender>,
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
            senders: BTreeMap::new(),
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
    /// then travels the latency ± jitter, never before the sender's
    /// previous frame. `None`: the queue is full and the frame is dropped.
    pub fn schedule(
        &mut self,
        from: Port,
        now: Instant,
        bytes: u32,
        rng: &mut Rng,
    ) -> Option<Instant> {
        let sender = self.senders.entry(from).or_default();
        if self.bandwidth.is_some() {
            while sender.queued.front().is_some_and(|done| *done <= now) {
                sender.queued.pop_front();
            }
            if sender.queued.len() >= QUEUE_LIMIT {
                return None;
            }
        }
        let start = sender.busy.max(now);
        let serialise = match self.bandwidth {
            Some(bps) if bps > 0 => {
                Span((u64::from(bytes) * 8).saturating_mul(1_000_000_000) / bps)
            }
            _ => Span::ZERO,
        };
        let done = start + serialise;
        if self.bandwidth.is_some() {
            sender.busy = done;
            sender.queued.push_back(done);
        }
        let mut delay = self.latency;
        if self.jitter.0 > 0 {
            let j = rng.below(2 * self.jitter.0 + 1);
            delay = Span((delay.0 + j).saturating_sub(self.jitter.0));
        }
        let arrival = (done + delay).max(sender.last_arrival);
        sender.last_arrival = arrival;
        Some(arrival)
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
        assert_eq!(
            a,
            Some(Instant::START + Span::micros(1000) + Span::millis(10))
        );
        assert_eq!(
            b,
            Some(Instant::START + Span::micros(2000) + Span::millis(10))
        );
        let other = s.schedule((1, 0), Instant::START, 1000, &mut rng);
        assert_eq!(other, a);
    }

    #[test]
    fn jitter_stays_within_bounds() {
        let mut s = Segment::new("l", 1500);
        s.latency = Span::millis(30);
        s.jitter = Span::millis(2);
        let mut rng = Rng::new(3);
        let mut previous = Instant::START;
        for i in 0..1000 {
            let sent = Instant::START + Span::micros(100 * i);
            let t = s
                .schedule((0, 0), sent, 100, &mut rng)
                .unwrap_or_else(|| panic!("no queue limit without bandwidth"));
            let delay = t.since(sent);
            assert!((28_000_000..=32_000_000).contains(&delay.0), "{delay}");
            assert!(t >= previous, "frame {i} overtook the one before");
            previous = t;
        }
    }

    #[test]
    fn a_full_queue_drops_at_the_tail() {
        let mut s = Segment::new("l", 1500);
        s.bandwidth = Some(8_000_000);
        let mut rng = Rng::new(1);
        for _ in 0..QUEUE_LIMIT {
            assert!(s.schedule((0, 0), Instant::START, 1000, &mut rng).is_some());
        }
        assert_eq!(s.schedule((0, 0), Instant::START, 1000, &mut rng), None);
        // Another sender has its own queue; once the first frame is out, one more fits.
        assert!(s.schedule((1, 0), Instant::START, 1000, &mut rng).is_some());
        let later = Instant::START + Span::micros(1000);
        assert!(s.schedule((0, 0), later, 1000, &mut rng).is_some());
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

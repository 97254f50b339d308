//! The event queue on the virtual clock and the run's trace.
//!
//! Events are ordered by (time, sequence number): two events at the same
//! instant run in the order they were scheduled, so ties never depend on
//! heap internals and the same inputs give the same run.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use crate::time::Instant;

/// One line of the event log: when, and what happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceLine {
    pub at: Instant,
    pub text: String,
}

impl std::fmt::Display for TraceLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.at, self.text)
    }
}

/// A heap key: the event itself waits in a slot of the slab, so the heap
/// only moves 24-byte keys, never the (large) events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    at: Instant,
    seq: u64,
    slot: u32,
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Key {
    /// Reversed: the heap is a max-heap and the earliest event must come out first.
    fn cmp(&self, other: &Self) -> Ordering {
        (other.at, other.seq).cmp(&(self.at, self.seq))
    }
}

/// A priority queue of events keyed by (instant, insertion order), with
/// the current virtual time.
pub struct Queue<E> {
    heap: BinaryHeap<Key>,
    slots: Vec<Option<E>>,
    free: Vec<u32>,
    seq: u64,
    now: Instant,
}

impl<E> std::fmt::Debug for Queue<E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("now", &self.now)
            .field("pending", &self.heap.len())
            .finish()
    }
}

impl<E> Default for Queue<E> {
    fn default() -> Self {
        Queue {
            heap: BinaryHeap::new(),
            slots: Vec::new(),
            free: Vec::new(),
            seq: 0,
            now: Instant::START,
        }
    }
}

impl<E> Queue<E> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The current virtual time (the time of the last event popped).
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Schedules `event` at `at` (an instant in the past runs now).
    pub fn schedule(&mut self, at: Instant, event: E) {
        let at = at.max(self.now);
        self.seq += 1;
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(s) = self.slots.get_mut(slot as usize) {
                    *s = Some(event);
                }
                slot
            }
            None => {
                self.slots.push(Some(event));
                (self.slots.len() - 1) as u32
            }
        };
        self.heap.push(Key {
            at,
            seq: self.seq,
            slot,
        });
    }

    pub fn len(&self) -> usize {
        self.heap.len()
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// The next event if it is due at or before `until`; advances the clock.
    pub fn pop_until(&mut self, until: Instant) -> Option<(Instant, E)> {
        loop {
            if self.heap.peek()?.at > until {
                return None;
            }
            let key = self.heap.pop()?;
            self.free.push(key.slot);
            if let Some(event) = self.slots.get_mut(key.slot as usize).and_then(Option::take) {
                self.now = key.at;
                return Some((key.at, event));
            }
        }
    }

    /// Runs every event due at or before `until` through `handle` (which may
    /// schedule more), then sets the clock to `until`. Returns how many ran.
    pub fn run_until(
        &mut self,
        until: Instant,
        mut handle: impl FnMut(&mut Self, Instant, E),
    ) -> u64 {
        let mut count = 0;
        while let Some((at, event)) = self.pop_until(until) {
            handle(self, at, event);
            count += 1;
        }
        self.now = self.now.max(until);
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Span;

    #[test]
    fn earliest_first_and_ties_in_scheduling_order() {
        let mut q = Queue::new();
        q.schedule(Instant(5), "c");
        q.schedule(Instant(1), "a");
        q.schedule(Instant(5), "d");
        q.schedule(Instant(1), "b");
        let mut seen = Vec::new();
        let n = q.run_until(Instant(10), |_, at, e| seen.push((at.0, e)));
        assert_eq!(n, 4);
        assert_eq!(seen, [(1, "a"), (1, "b"), (5, "c"), (5, "d")]);
        assert_eq!(q.now(), Instant(10));
    }

    #[test]
    fn run_until_stops_at_the_horizon_and_handlers_can_schedule() {
        let mut q = Queue::new();
        q.schedule(Instant::START, 0u32);
        let mut seen = Vec::new();
        q.run_until(Instant::START + Span::secs(3), |q, at, n| {
            seen.push(n);
            q.schedule(at + Span::secs(1), n + 1);
        });
        assert_eq!(seen, [0, 1, 2, 3]);
        assert_eq!(q.len(), 1);
        q.schedule(Instant(0), 99);
        assert_eq!(q.pop_until(Instant(u64::MAX)), Some((q.now(), 99)));
    }
}

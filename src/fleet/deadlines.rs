//! `Deadlines`: items due at instants, the earliest found in O(log n), any one cancelled by
//! the ticket its scheduling returned.

use std::collections::BTreeMap;

use tokio::time::Instant;

/// Where a scheduled item sits, to cancel or move it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Ticket {
    at: Instant,
    /// Tells apart items due at the same instant.
    serial: u64,
}

/// A timer queue keyed by deadline.
///
/// A `BTreeMap` rather than a `BinaryHeap` with lazy deletion: every heartbeat moves its
/// instance's deadline, and with lazy deletion the earliest entry would almost always be a
/// stale one, so [`next`](Self::next) would wake the caller once per event for nothing.
/// Removing the old entry keeps `next` exact at the same O(log n).
#[derive(Debug, Clone)]
pub(super) struct Deadlines<T> {
    queue: BTreeMap<Ticket, T>,
    serial: u64,
}

impl<T> Deadlines<T> {
    /// An empty queue.
    pub(super) fn new() -> Self {
        Self {
            queue: BTreeMap::new(),
            serial: 0,
        }
    }

    /// Schedules `item` at `at`.
    pub(super) fn schedule(&mut self, at: Instant, item: T) -> Ticket {
        self.serial = self.serial.wrapping_add(1);
        let ticket = Ticket {
            at,
            serial: self.serial,
        };
        self.queue.insert(ticket, item);
        ticket
    }

    /// Takes the item of `ticket` out, if it is still scheduled.
    pub(super) fn cancel(&mut self, ticket: Ticket) -> Option<T> {
        self.queue.remove(&ticket)
    }

    /// The earliest deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        self.queue.first_key_value().map(|(t, _)| t.at)
    }

    /// Takes out the earliest item if it is due at `now`.
    pub(super) fn pop_due(&mut self, now: Instant) -> Option<T> {
        let entry = self.queue.first_entry()?;
        (entry.key().at <= now).then(|| entry.remove())
    }

    /// Items scheduled.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn pops_in_deadline_order_and_forgets_cancelled_items() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut d = Deadlines::new();
        let a = d.schedule(at(30), "a");
        d.schedule(at(10), "b");
        let c = d.schedule(at(10), "c");
        d.schedule(at(20), "d");
        assert_eq!(d.cancel(c), Some("c"));
        assert_eq!(d.cancel(c), None);
        // Moving an item is cancelling it and scheduling it anew.
        let item = d.cancel(a);
        assert_eq!(item, Some("a"));
        d.schedule(at(5), "a");
        assert_eq!(d.next(), Some(at(5)));
        assert_eq!(d.pop_due(at(4)), None);
        let due: Vec<_> = std::iter::from_fn(|| d.pop_due(at(20))).collect();
        assert_eq!(due, ["a", "b", "d"]);
        assert_eq!((d.next(), d.len()), (None, 0));
    }
}

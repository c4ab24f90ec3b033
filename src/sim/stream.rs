//! The write stream between simulated agents and store replicas: rows wait here, counted, until
//! a replica with room pulls them, as JetStream's work queue holds them for the store pods.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Rows published and not yet pulled. Agents never wait on it (a publish is acknowledged once
/// stored); replicas take what fits in their queues.
#[derive(Debug, Default)]
pub struct Stream {
    pending: AtomicU64,
    published: AtomicU64,
}

impl Stream {
    /// Stores `rows` rows.
    pub fn publish(&self, rows: u64) {
        self.pending.fetch_add(rows, Relaxed);
        self.published.fetch_add(rows, Relaxed);
    }

    /// Takes up to `most` rows; returns how many it took.
    pub fn pull(&self, most: u64) -> u64 {
        let mut taken = 0;
        let _ = self.pending.fetch_update(Relaxed, Relaxed, |pending| {
            taken = pending.min(most);
            Some(pending - taken)
        });
        taken
    }

    /// Rows waiting.
    pub fn pending(&self) -> u64 {
        self.pending.load(Relaxed)
    }

    /// Rows ever published.
    pub fn published(&self) -> u64 {
        self.published.load(Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pulls_take_what_there_is() {
        let s = Stream::default();
        s.publish(250);
        assert_eq!(s.pull(100), 100);
        assert_eq!(s.pull(1_000), 150);
        assert_eq!(s.pull(10), 0);
        assert_eq!((s.pending(), s.published()), (0, 250));
    }
}

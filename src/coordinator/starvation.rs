//! Time the store's workers all spent waiting for items, counting a wait still going on.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// How many workers wait for items now, and the time during which all of them did.
///
/// The service rate is rows written over the time the store was busy (some worker had a
/// batch). An idle stretch counted only once it ended would leave a worker idle for a whole
/// window invisible in it: the window looks busy and measures the arrival rate as the
/// capacity, so with bursty arrivals and a lightly loaded fleet the estimate fell with every
/// replica added.
#[derive(Debug)]
pub(crate) struct Starvation {
    workers: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    waiting: usize,
    idle: Duration,
    idle_since: Option<Instant>,
}

/// One worker's wait; it ends when dropped (a batch taken, the queue closed, or the worker
/// cancelled).
pub(crate) struct Wait<'a>(&'a Starvation);

impl Starvation {
    /// For a store of `workers` workers.
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            workers: workers.max(1),
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A worker starts waiting for items now.
    pub(crate) fn begin(&self) -> Wait<'_> {
        let mut inner = self.lock();
        inner.waiting += 1;
        if inner.waiting >= self.workers && inner.idle_since.is_none() {
            inner.idle_since = Some(Instant::now());
        }
        Wait(self)
    }

    /// Time during which every worker waited, up to `now`, microseconds.
    pub(crate) fn idle_us(&self, now: Instant) -> u64 {
        let inner = self.lock();
        let ongoing = inner
            .idle_since
            .map_or(Duration::ZERO, |since| now.saturating_duration_since(since));
        u64::try_from((inner.idle + ongoing).as_micros()).unwrap_or(u64::MAX)
    }
}

impl Default for Starvation {
    fn default() -> Self {
        Self::new(1)
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        let mut inner = self.0.lock();
        inner.waiting = inner.waiting.saturating_sub(1);
        if let Some(since) = inner.idle_since.take() {
            inner.idle += since.elapsed();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_is_the_time_every_worker_waited_counted_while_it_goes_on() {
        let s = Starvation::new(2);
        let t0 = Instant::now();
        let a = s.begin();
        tokio::time::advance(Duration::from_millis(300)).await;
        // One of two waits: the store is still busy.
        assert_eq!(s.idle_us(Instant::now()), 0);
        let b = s.begin();
        tokio::time::advance(Duration::from_millis(100)).await;
        // Both wait: idle, counted before the wait ends.
        assert_eq!(s.idle_us(Instant::now()), 100_000);
        drop(a);
        tokio::time::advance(Duration::from_millis(500)).await;
        assert_eq!(s.idle_us(t0 + Duration::from_secs(9)), 100_000);
        drop(b);
    }
}

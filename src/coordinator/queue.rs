//! The bounded queue between submitters and batch workers, which also tracks the level.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;

use super::stats::CoordinatorStats;
use super::watermark::LevelTracker;
use crate::event::BackpressureLevel;

/// A level transition, in the order it happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LevelChange {
    pub(crate) level: BackpressureLevel,
    pub(crate) depth: u64,
}

/// Result of one attempt to enqueue.
pub(crate) enum Push<T> {
    /// Enqueued.
    Done,
    /// Enqueued after evicting this oldest item.
    Evicted(T),
    /// No room; the item is handed back.
    Full(T),
    /// The queue no longer accepts items.
    Closed(T),
}

struct Queued<T> {
    item: T,
    at: Instant,
}

struct State<T> {
    items: VecDeque<Queued<T>>,
    tracker: LevelTracker,
    external: u64,
    closed: bool,
    /// The integral of the depth over time (row-seconds) up to `changed`: its growth over an
    /// interval divided by the interval is the mean depth, free of the batches' saw-tooth.
    area: f64,
    changed: Instant,
}

impl<T> State<T> {
    fn depth(&self) -> u64 {
        self.items.len() as u64 + self.external
    }

    /// Accounts the depth up to `now`; called before every change of depth.
    fn account(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.changed).as_secs_f64();
        self.area += self.depth() as f64 * dt;
        self.changed = now;
    }
}

pub(crate) struct Queue<T> {
    state: Mutex<State<T>>,
    items_ready: Notify,
    space: Notify,
    capacity: usize,
    batch_size: usize,
    flush: Duration,
    levels: mpsc::UnboundedSender<LevelChange>,
}

impl<T> Queue<T> {
    pub(crate) fn new(
        capacity: usize,
        batch_size: usize,
        flush: Duration,
        tracker: LevelTracker,
        levels: mpsc::UnboundedSender<LevelChange>,
    ) -> Self {
        Self {
            state: Mutex::new(State {
                items: VecDeque::with_capacity(capacity.min(65_536)),
                tracker,
                external: 0,
                closed: false,
                area: 0.0,
                changed: Instant::now(),
            }),
            items_ready: Notify::new(),
            space: Notify::new(),
            capacity,
            batch_size,
            flush,
            levels,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State<T>> {
        // No code path panics while holding the lock; if one did, the state is still valid.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-evaluates the level after the depth changed; called with the lock held so that
    /// transitions are sent in the order they happened.
    fn track(&self, st: &mut State<T>, stats: &CoordinatorStats) {
        let depth = st.depth();
        if let Some(level) = st.tracker.update(depth) {
            stats.level_changes.fetch_add(1, Relaxed);
            // The emitter only goes away at shutdown, when nobody needs the signal any more.
            let _ = self.levels.send(LevelChange { level, depth });
        }
    }

    /// One non-blocking enqueue attempt.
    pub(crate) fn push(&self, item: T, evict: bool, stats: &CoordinatorStats) -> Push<T> {
        let mut st = self.lock();
        if st.closed {
            return Push::Closed(item);
        }
        let at = Instant::now();
        st.account(at);
        if st.items.len() >= self.capacity {
            if !evict {
                return Push::Full(item);
            }
            let oldest = st.items.pop_front().map(|q| q.item);
            st.items.push_back(Queued { item, at });
            stats.accepted.fetch_add(1, Relaxed);
            return match oldest {
                Some(old) => Push::Evicted(old),
                None => Push::Done,
            };
        }
        st.items.push_back(Queued { item, at });
        stats.accepted.fetch_add(1, Relaxed);
        let len = st.items.len();
        self.track(&mut st, stats);
        drop(st);
        if len == 1 || len % self.batch_size == 0 {
            self.items_ready.notify_one();
        }
        Push::Done
    }

    /// Waits until the queue may have room (or closed).
    pub(crate) async fn wait_for_space(&self) {
        let notified = self.space.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let st = self.lock();
            if st.closed || st.items.len() < self.capacity {
                return;
            }
        }
        notified.await;
    }

    /// The next batch for a worker: `batch_size` items at once, or fewer once the oldest item
    /// has waited `flush`, or everything at once when closed. `None` when closed and empty or
    /// when `abort` fires.
    pub(crate) async fn next_batch(
        &self,
        abort: &CancellationToken,
        stats: &CoordinatorStats,
    ) -> Option<Vec<T>> {
        // Time spent here is time without a batch: when every worker is here the store is
        // idle, which the service rate leaves out (counted while it goes on).
        let _wait = stats.starvation.begin();
        loop {
            let notified = self.items_ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let deadline = {
                let mut st = self.lock();
                let len = st.items.len();
                let now = Instant::now();
                let oldest_due = st.items.front().map(|q| q.at + self.flush);
                let ready = len >= self.batch_size
                    || (len > 0 && (st.closed || oldest_due.is_some_and(|due| now >= due)));
                if ready && !abort.is_cancelled() {
                    let n = len.min(self.batch_size);
                    st.account(now);
                    let mut batch = Vec::with_capacity(n);
                    for q in st.items.drain(..n) {
                        stats.queue_wait.record(now.saturating_duration_since(q.at));
                        batch.push(q.item);
                    }
                    stats.in_flight.fetch_add(n as u64, Relaxed);
                    self.track(&mut st, stats);
                    let more = !st.items.is_empty();
                    drop(st);
                    self.space.notify_waiters();
                    if more {
                        // Let another worker look at what is left.
                        self.items_ready.notify_one();
                    }
                    return Some(batch);
                }
                if (len == 0 && st.closed) || abort.is_cancelled() {
                    return None;
                }
                oldest_due
            };
            tokio::select! {
                () = &mut notified => {}
                () = sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {}
                () = abort.cancelled() => return None,
            }
        }
    }

    /// Stops accepting items and wakes everyone waiting.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.items_ready.notify_waiters();
        self.space.notify_waiters();
    }

    /// Removes every queued item (at stop, after the workers are gone).
    pub(crate) fn take_all(&self, stats: &CoordinatorStats) -> Vec<T> {
        let mut st = self.lock();
        st.account(Instant::now());
        let items = st.items.drain(..).map(|q| q.item).collect();
        self.track(&mut st, stats);
        items
    }

    /// Sets the backlog counted outside this queue (e.g. a JetStream consumer's pending
    /// messages) and re-evaluates the level.
    pub(crate) fn set_external(&self, n: u64, stats: &CoordinatorStats) {
        let mut st = self.lock();
        st.account(Instant::now());
        st.external = n;
        self.track(&mut st, stats);
    }

    /// (level, depth including the external backlog, queued items, external backlog, closed)
    pub(crate) fn snapshot(&self) -> QueueSnapshot {
        let st = self.lock();
        let since = Instant::now().saturating_duration_since(st.changed);
        QueueSnapshot {
            level: st.tracker.current(),
            depth: st.depth(),
            depth_area: st.area + st.depth() as f64 * since.as_secs_f64(),
            queued: st.items.len() as u64,
            external: st.external,
            closed: st.closed,
        }
    }

    pub(crate) fn capacity(&self) -> usize {
        self.capacity
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueSnapshot {
    pub(crate) level: BackpressureLevel,
    pub(crate) depth: u64,
    /// The integral of the depth over time since the start, row-seconds.
    pub(crate) depth_area: f64,
    pub(crate) queued: u64,
    pub(crate) external: u64,
    pub(crate) closed: bool,
}

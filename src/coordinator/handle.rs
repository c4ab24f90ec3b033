//! The `WriteCoordinator` handle: submit items, read counters, stop.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use super::config::OverflowStrategy;
use super::queue::Push;
use super::sink::DeadLetterReason;
use super::stats::{DropReason, StatsSnapshot};
use super::worker::Shared;
use crate::event::{BackpressureLevel, CoordinatorId, InstanceId};

/// Called with every item dropped by the coordinator and the reason.
pub type DropCallback<T> = Arc<dyn Fn(T, DropReason) + Send + Sync>;

/// A refused submit; the item is handed back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError<T> {
    /// The queue is full (the `error` strategy, or `try_submit` under `block`).
    #[error("write queue is full")]
    Full(T),
    /// The coordinator is stopping or stopped.
    #[error("write coordinator is closed")]
    Closed(T),
}

impl<T> SubmitError<T> {
    /// The refused item.
    pub fn into_item(self) -> T {
        match self {
            Self::Full(t) | Self::Closed(t) => t,
        }
    }
}

/// What [`WriteCoordinator::stop`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    /// Whether the workers emptied the queue before the timeout (always false without drain).
    pub drained: bool,
    /// Whether the publisher took the last (`leaving`) event within its bound.
    pub leaving_event_sent: bool,
    /// The steps of the stop that ran out of time (`drain`, `abandon`, `hand_back`,
    /// `leaving`), in order.
    pub timed_out: Vec<&'static str>,
    /// Counters after stopping; `stats.unaccounted()` is 0.
    pub stats: StatsSnapshot,
}

/// How long each step of [`WriteCoordinator::stop_within`] may take; the stop returns within
/// their [`total`](Self::total).
///
/// Choose `drain` from the batch write time and the queue's capacity; the other steps only
/// wait for writes already running and for the bus, which may be unreachable: keep them short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopBounds {
    /// Writing what is queued; `None`: no drain, running writes finish and the rest is handed
    /// back at once.
    pub drain: Option<Duration>,
    /// Writes still running once the drain gave up (or without drain): how long they may
    /// finish before they are abandoned.
    pub abandon: Duration,
    /// Handing what was not written to the dead-letter sink.
    pub hand_back: Duration,
    /// Publishing pending level changes and the last `leaving` event.
    pub leaving: Duration,
}

impl StopBounds {
    /// The longest a stop with these bounds takes.
    pub fn total(&self) -> Duration {
        self.drain.unwrap_or_default() + self.abandon + self.hand_back + self.leaving
    }
}

/// The tasks a coordinator runs.
pub(super) struct Tasks {
    pub(super) workers: Vec<JoinHandle<()>>,
    pub(super) emitter: JoinHandle<bool>,
    pub(super) emitter_stop: CancellationToken,
}

/// What every handle of one coordinator shares.
pub(super) struct Inner<T: Send + Sync + 'static> {
    pub(super) shared: Arc<Shared<T>>,
    pub(super) overflow: OverflowStrategy,
    pub(super) on_drop: Option<DropCallback<T>>,
    pub(super) coordinator_id: CoordinatorId,
    pub(super) instance_id: InstanceId,
    pub(super) capacity: u64,
    /// The agents' demands, from which the emitter computes fair rates.
    pub(super) demand: Arc<std::sync::Mutex<crate::fleet::DemandView>>,
    pub(super) tasks: tokio::sync::Mutex<Option<Tasks>>,
}

impl<T: Send + Sync + 'static> Drop for Inner<T> {
    fn drop(&mut self) {
        // The last handle is gone without stop(): let the workers drain what is queued and
        // exit, and let the emitter say goodbye.
        self.shared.queue.close();
        if let Some(tasks) = self.tasks.get_mut() {
            tasks.emitter_stop.cancel();
        }
    }
}

/// A bounded write queue in front of batching sink workers, publishing its backpressure level.
///
/// Cheap to clone; all clones share one queue. Build one with [`WriteCoordinator::builder`].
pub struct WriteCoordinator<T: Send + Sync + 'static> {
    pub(super) inner: Arc<Inner<T>>,
}

impl<T: Send + Sync + 'static> Clone for WriteCoordinator<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<T: Send + Sync + 'static> WriteCoordinator<T> {
    fn evicted(&self, item: T) {
        self.inner.shared.stats.dropped(DropReason::Overflow, 1);
        if let Some(f) = &self.inner.on_drop {
            f(item, DropReason::Overflow);
        }
    }

    /// Enqueues one item, applying the overflow strategy: `block` waits for room,
    /// `drop_oldest` evicts the oldest item, `error` hands the item back.
    pub async fn submit(&self, item: T) -> Result<(), SubmitError<T>> {
        let mut item = item;
        loop {
            match self.try_submit(item) {
                Err(SubmitError::Full(back)) if self.inner.overflow == OverflowStrategy::Block => {
                    item = back;
                    self.inner.shared.queue.wait_for_space().await;
                }
                other => return other,
            }
        }
    }

    /// Takes in one agent's demand (any transport): the fair rates of the next feedback
    /// events divide this store's budget among the demands of its coordinator's live agents.
    /// Events of other coordinators are ignored.
    pub fn observe_demand(&self, event: crate::event::DemandEvent) -> crate::fleet::Observed {
        if event.coordinator_id != self.inner.coordinator_id {
            return crate::fleet::Observed::Unfollowed;
        }
        let mut demand = self.inner.demand.lock().unwrap_or_else(|e| e.into_inner());
        demand.observe(event, tokio::time::Instant::now())
    }

    /// Enqueues one item without waiting; under `block` a full queue hands the item back.
    pub fn try_submit(&self, item: T) -> Result<(), SubmitError<T>> {
        let shared = &self.inner.shared;
        let evict = self.inner.overflow == OverflowStrategy::DropOldest;
        match shared.queue.push(item, evict, &shared.stats) {
            Push::Done => Ok(()),
            Push::Evicted(old) => {
                self.evicted(old);
                Ok(())
            }
            Push::Full(item) => {
                shared.stats.refused_full.fetch_add(1, Relaxed);
                Err(SubmitError::Full(item))
            }
            Push::Closed(item) => Err(SubmitError::Closed(item)),
        }
    }

    /// Sets the backlog waiting outside this queue (e.g. a JetStream consumer's pending
    /// count), which counts towards the level.
    pub fn set_external_backlog(&self, n: u64) {
        let shared = &self.inner.shared;
        shared.queue.set_external(n, &shared.stats);
    }

    /// Waits until the in-memory queue has a free slot (or the coordinator closed). For
    /// feeders that pull work only when there is room for it.
    pub async fn wait_for_room(&self) {
        self.inner.shared.queue.wait_for_space().await;
    }

    /// Free slots in the in-memory queue.
    pub fn free_capacity(&self) -> u64 {
        let q = self.inner.shared.queue.snapshot();
        (self.inner.shared.queue.capacity() as u64).saturating_sub(q.queued)
    }

    /// The current level.
    pub fn level(&self) -> BackpressureLevel {
        self.inner.shared.queue.snapshot().level
    }

    /// Counters.
    pub fn stats(&self) -> StatsSnapshot {
        self.inner.shared.stats.snapshot()
    }

    /// The `q`-quantile of the time items waited in the queue.
    pub fn queue_wait_quantile(&self, q: f64) -> Duration {
        self.inner.shared.stats.queue_wait.quantile(q)
    }

    /// The `q`-quantile of successful batch write latency.
    pub fn batch_latency_quantile(&self, q: f64) -> Duration {
        self.inner.shared.stats.batch_latency.quantile(q)
    }

    /// Successful batch write latency, for exporters.
    pub fn batch_latency(&self) -> &crate::histogram::Histogram {
        &self.inner.shared.stats.batch_latency
    }

    /// Time items waited in the queue, for exporters.
    pub fn queue_wait(&self) -> &crate::histogram::Histogram {
        &self.inner.shared.stats.queue_wait
    }

    /// The coordinator id.
    pub fn coordinator_id(&self) -> &CoordinatorId {
        &self.inner.coordinator_id
    }

    /// This instance's id.
    pub fn instance_id(&self) -> &InstanceId {
        &self.inner.instance_id
    }

    /// Stops accepting items and shuts down.
    ///
    /// With `drain`, workers first write what is queued, for up to `timeout`. Then retries
    /// and breaker waits are cut short, items not written go to the dead-letter sink with
    /// reason `shutdown`, and writes already running get up to `timeout` more before they are
    /// abandoned (counted as dropped, `abandoned_in_flight`). Finally a `leaving` event tells
    /// agents to forget this instance. Each of those steps waits at most `timeout`, so `stop`
    /// returns within 4 × `timeout` (see [`stop_within`](Self::stop_within) for separate
    /// bounds), and afterwards every accepted item is accounted for. Calling `stop` again
    /// returns at once.
    pub async fn stop(&self, drain: bool, timeout: Duration) -> StopReport {
        self.stop_within(StopBounds {
            drain: drain.then_some(timeout),
            abandon: timeout,
            hand_back: timeout,
            leaving: timeout,
        })
        .await
    }

    /// [`stop`](Self::stop), each step within its own bound: returns within
    /// `bounds.total()`. Items whose hand-back runs out of time are counted as dropped
    /// (`dead_letter_failed`).
    pub async fn stop_within(&self, bounds: StopBounds) -> StopReport {
        let shared = &self.inner.shared;
        let mut guard = self.inner.tasks.lock().await;
        let Some(mut tasks) = guard.take() else {
            return StopReport {
                drained: false,
                leaving_event_sent: false,
                timed_out: Vec::new(),
                stats: shared.stats.snapshot(),
            };
        };
        shared.queue.close();
        let mut timed_out = Vec::new();
        let mut drained = false;
        if let Some(drain) = bounds.drain {
            drained = join_all(&mut tasks.workers, Instant::now() + drain).await;
            if !drained {
                timed_out.push("drain");
            }
        }
        if !drained {
            shared.abort.cancel();
            let deadline = Instant::now() + bounds.abandon;
            if !join_all(&mut tasks.workers, deadline).await {
                timed_out.push("abandon");
                let abandoned = shared.stats.in_flight.swap(0, Relaxed);
                for w in &tasks.workers {
                    w.abort();
                }
                shared
                    .stats
                    .dropped(DropReason::AbandonedInFlight, abandoned);
                tracing::error!(items = abandoned, "Stop abandoned writes still running.");
            }
            let left = shared.queue.take_all(&shared.stats);
            let n = left.len() as u64;
            let handing_back = shared.dead_letter(left, DeadLetterReason::Shutdown);
            if timeout_at(Instant::now() + bounds.hand_back, handing_back)
                .await
                .is_err()
            {
                // Cut short, the dead-letter sink recorded none of them: they count as
                // dropped here. A JetStream-backed store loses nothing by it: unacknowledged
                // messages are redelivered after `ack_wait`.
                timed_out.push("hand_back");
                shared.stats.dropped(DropReason::DeadLetterFailed, n);
                tracing::warn!(items = n, "Hand-back at stop ran out of time.");
            }
        }
        tasks.emitter_stop.cancel();
        let leaving_event_sent =
            match timeout_at(Instant::now() + bounds.leaving, &mut tasks.emitter).await {
                Ok(sent) => sent.unwrap_or(false),
                Err(_) => {
                    timed_out.push("leaving");
                    tasks.emitter.abort();
                    false
                }
            };
        let stats = shared.stats.snapshot();
        tracing::info!(
            drained,
            leaving_event_sent,
            written = stats.written,
            dead_lettered = stats.dead_lettered(),
            dropped = stats.dropped(),
            "Write coordinator stopped."
        );
        StopReport {
            drained,
            leaving_event_sent,
            timed_out,
            stats,
        }
    }
}

/// Waits for every task until `deadline`; true if all finished. Finished tasks are removed.
async fn join_all(tasks: &mut Vec<JoinHandle<()>>, deadline: Instant) -> bool {
    while let Some(task) = tasks.last_mut() {
        match timeout_at(deadline, task).await {
            Ok(_) => {
                tasks.pop();
            }
            Err(_) => return false,
        }
    }
    true
}

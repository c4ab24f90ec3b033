//! The `WriteCoordinator` handle: submit items, read health, stop.

use std::sync::atomic::Ordering;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, timeout_at};
use tokio_util::sync::CancellationToken;

use super::config::{ConfigError, CoordinatorConfig, OverflowStrategy};
use super::emitter::Emitter;
use super::queue::{Push, Queue};
use super::sink::{DeadLetterReason, DeadLetterSink, LogDeadLetter, Sink};
use super::stats::{CoordinatorStats, DropReason, StatsSnapshot};
use super::watermark::LevelTracker;
use super::worker::{self, Shared};
use crate::breaker::{BreakerState, CircuitBreaker};
use crate::bus::{Discard, FeedbackPublisher};
use crate::clock::WallClock;
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

/// A point-in-time view of a coordinator for probes and dashboards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// The logical store.
    pub coordinator_id: CoordinatorId,
    /// This instance.
    pub instance_id: InstanceId,
    /// Current level.
    pub level: BackpressureLevel,
    /// Depth the level is computed from (queued + external backlog).
    pub depth: u64,
    /// Items in the in-memory queue.
    pub queued: u64,
    /// Backlog counted outside the queue.
    pub external_backlog: u64,
    /// Queue capacity.
    pub capacity: u64,
    /// Sink circuit breaker.
    pub breaker: BreakerState,
    /// Workers still running.
    pub workers_running: usize,
    /// Whether submits are accepted.
    pub accepting: bool,
    /// Counters.
    pub stats: StatsSnapshot,
}

impl Health {
    /// Accepting, workers alive, and the sink's breaker not open.
    pub fn is_healthy(&self) -> bool {
        self.accepting && self.workers_running > 0 && self.breaker != BreakerState::Open
    }
}

/// What [`WriteCoordinator::stop`] achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopReport {
    /// Whether the workers emptied the queue before the timeout (always false without drain).
    pub drained: bool,
    /// Counters after stopping; `stats.unaccounted()` is 0.
    pub stats: StatsSnapshot,
}

struct Tasks {
    workers: Vec<JoinHandle<()>>,
    emitter: JoinHandle<()>,
    emitter_stop: CancellationToken,
}

struct Inner<T: Send + Sync + 'static> {
    shared: Arc<Shared<T>>,
    overflow: OverflowStrategy,
    on_drop: Option<DropCallback<T>>,
    coordinator_id: CoordinatorId,
    instance_id: InstanceId,
    capacity: u64,
    tasks: tokio::sync::Mutex<Option<Tasks>>,
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
    inner: Arc<Inner<T>>,
}

impl<T: Send + Sync + 'static> Clone for WriteCoordinator<T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

/// Assembles a [`WriteCoordinator`].
pub struct Builder<T> {
    config: CoordinatorConfig,
    sink: Arc<dyn Sink<T>>,
    dead_letter: Arc<dyn DeadLetterSink<T>>,
    publisher: Arc<dyn FeedbackPublisher>,
    on_drop: Option<DropCallback<T>>,
    wall: Option<WallClock>,
}

impl<T: Send + Sync + 'static> Builder<T> {
    /// Where items that cannot be written go (default: logged and counted).
    pub fn dead_letter(mut self, dead_letter: Arc<dyn DeadLetterSink<T>>) -> Self {
        self.dead_letter = dead_letter;
        self
    }

    /// Where feedback events go (default: nowhere).
    pub fn publisher(mut self, publisher: Arc<dyn FeedbackPublisher>) -> Self {
        self.publisher = publisher;
        self
    }

    /// Called with each dropped item.
    pub fn on_drop(mut self, f: impl Fn(T, DropReason) + Send + Sync + 'static) -> Self {
        self.on_drop = Some(Arc::new(f));
        self
    }

    /// The wall clock used for event timestamps (default: the system time, advancing with
    /// tokio's clock).
    pub fn wall_clock(mut self, wall: WallClock) -> Self {
        self.wall = Some(wall);
        self
    }

    /// Validates the configuration and starts the workers and the feedback emitter on the
    /// current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(self) -> Result<WriteCoordinator<T>, ConfigError> {
        let config = self.config;
        let marks = config.validate()?;
        let capacity = usize::try_from(config.capacity)
            .map_err(|_| ConfigError::new("capacity", "too large for this platform"))?;
        let stats = Arc::new(CoordinatorStats::default());
        let (levels_tx, levels_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            queue: Queue::new(
                capacity,
                config.batch_size,
                config.flush_interval(),
                LevelTracker::new(marks),
                levels_tx,
            ),
            stats: stats.clone(),
            sink: self.sink,
            dead_letter: self.dead_letter,
            breaker: Mutex::new(CircuitBreaker::new(
                config.breaker.failure_threshold,
                Duration::from_millis(config.breaker.half_open_after_ms),
            )),
            retry: config.retry.clone(),
            abort: CancellationToken::new(),
            workers_running: AtomicUsize::new(config.workers),
        });
        let wall = self.wall.unwrap_or_default();
        let instance_id = config
            .instance_id
            .clone()
            .unwrap_or_else(InstanceId::generate);
        let emitter = Emitter {
            publisher: self.publisher,
            coordinator_id: config.coordinator_id.clone(),
            instance_id: instance_id.clone(),
            epoch: wall.now_us(),
            capacity: config.capacity,
            heartbeat: config.heartbeat_interval(),
            wall,
            stats,
            seq: 0,
            failing: false,
        };
        let emitter_stop = CancellationToken::new();
        let current = {
            let weak = Arc::downgrade(&shared);
            move || {
                weak.upgrade().map_or((BackpressureLevel::Ok, 0), |s| {
                    let q = s.queue.snapshot();
                    (q.level, q.depth)
                })
            }
        };
        let emitter = tokio::spawn(emitter.run(levels_rx, current, emitter_stop.clone()));
        let workers = (0..config.workers)
            .map(|_| tokio::spawn(worker::run(shared.clone())))
            .collect();
        tracing::info!(
            coordinator_id = %config.coordinator_id,
            %instance_id,
            capacity = config.capacity,
            low = marks.low(),
            high = marks.high(),
            workers = config.workers,
            "Write coordinator started."
        );
        Ok(WriteCoordinator {
            inner: Arc::new(Inner {
                shared,
                overflow: config.overflow,
                on_drop: self.on_drop,
                coordinator_id: config.coordinator_id,
                instance_id,
                capacity: config.capacity,
                tasks: tokio::sync::Mutex::new(Some(Tasks {
                    workers,
                    emitter,
                    emitter_stop,
                })),
            }),
        })
    }
}

impl<T: Send + Sync + 'static> WriteCoordinator<T> {
    /// Starts assembling a coordinator that writes to `sink`.
    pub fn builder(config: CoordinatorConfig, sink: Arc<dyn Sink<T>>) -> Builder<T> {
        Builder {
            config,
            sink,
            dead_letter: Arc::new(LogDeadLetter),
            publisher: Arc::new(Discard),
            on_drop: None,
            wall: None,
        }
    }

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

    /// A point-in-time view for health probes.
    pub fn health(&self) -> Health {
        let shared = &self.inner.shared;
        let q = shared.queue.snapshot();
        let breaker = shared
            .breaker
            .lock()
            .map_or(BreakerState::Closed, |b| b.state(Instant::now()));
        Health {
            coordinator_id: self.inner.coordinator_id.clone(),
            instance_id: self.inner.instance_id.clone(),
            level: q.level,
            depth: q.depth,
            queued: q.queued,
            external_backlog: q.external,
            capacity: self.inner.capacity,
            breaker,
            workers_running: shared.workers_running.load(Ordering::Acquire),
            accepting: !q.closed,
            stats: shared.stats.snapshot(),
        }
    }

    /// Stops accepting items and shuts down.
    ///
    /// With `drain`, workers first write what is queued, for up to `timeout`. Then retries
    /// and breaker waits are cut short, items not written go to the dead-letter sink with
    /// reason `shutdown`, and writes already running get up to `timeout` more before they are
    /// abandoned (counted as dropped, `abandoned_in_flight`). So `stop` returns within
    /// 2 × `timeout`, and afterwards every accepted item is accounted for. Finally a `leaving`
    /// event tells agents to forget this instance. Calling `stop` again returns at once.
    pub async fn stop(&self, drain: bool, timeout: Duration) -> StopReport {
        let shared = &self.inner.shared;
        let mut guard = self.inner.tasks.lock().await;
        let Some(mut tasks) = guard.take() else {
            return StopReport {
                drained: false,
                stats: shared.stats.snapshot(),
            };
        };
        shared.queue.close();
        let mut drained = false;
        if drain {
            let deadline = Instant::now() + timeout;
            drained = join_all(&mut tasks.workers, deadline).await;
        }
        if !drained {
            shared.abort.cancel();
            let deadline = Instant::now() + timeout;
            if !join_all(&mut tasks.workers, deadline).await {
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
            shared.dead_letter(left, DeadLetterReason::Shutdown).await;
        }
        tasks.emitter_stop.cancel();
        let _ = timeout_at(Instant::now() + timeout, &mut tasks.emitter).await;
        let stats = shared.stats.snapshot();
        tracing::info!(
            drained,
            written = stats.written,
            dead_lettered = stats.dead_lettered(),
            dropped = stats.dropped(),
            "Write coordinator stopped."
        );
        StopReport { drained, stats }
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

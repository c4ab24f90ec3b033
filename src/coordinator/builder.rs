//! `Builder`: assembles a [`WriteCoordinator`] from its configuration, sink, dead-letter sink
//! and publisher, and starts its tasks.

use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::config::CoordinatorConfig;
use super::emitter::{Emitter, Now};
use super::handle::{DropCallback, Inner, Tasks, WriteCoordinator};
use super::queue::{LevelChange, Queue};
use super::sink::{DeadLetterSink, LogDeadLetter, Sink};
use super::stats::{CoordinatorStats, DropReason, Starvation};
use super::watermark::LevelTracker;
use super::worker::{self, Shared};
use crate::breaker::CircuitBreaker;
use crate::bus::{Discard, FeedbackPublisher};
use crate::clock::WallClock;
use crate::event::{BackpressureLevel, InstanceId};
use crate::invalid::InvalidSetting;

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
    pub fn start(self) -> Result<WriteCoordinator<T>, InvalidSetting> {
        let config = self.config;
        let marks = config.validate()?;
        let capacity = usize::try_from(config.capacity)
            .map_err(|_| InvalidSetting::new("capacity", "too large for this platform"))?;
        let stats = Arc::new(CoordinatorStats {
            starvation: Starvation::new(config.workers),
            ..CoordinatorStats::default()
        });
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
        let instance_id = config
            .instance_id
            .clone()
            .unwrap_or_else(InstanceId::generate);
        let wall = self.wall.unwrap_or_default();
        let demand = Arc::new(std::sync::Mutex::new(crate::fleet::DemandView::new()));
        let emitter = Emitter::new(
            self.publisher,
            &config,
            instance_id.clone(),
            wall,
            stats,
            demand.clone(),
        );
        let tasks = spawn(&shared, emitter, levels_rx, config.workers);
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
                demand,
                tasks: tokio::sync::Mutex::new(Some(tasks)),
            }),
        })
    }
}

/// Starts the feedback emitter (which reads the queue's level through a weak reference, so it
/// never keeps the coordinator alive) and `workers` batch writers.
fn spawn<T: Send + Sync + 'static>(
    shared: &Arc<Shared<T>>,
    emitter: Emitter,
    levels: mpsc::UnboundedReceiver<LevelChange>,
    workers: usize,
) -> Tasks {
    let emitter_stop = CancellationToken::new();
    let current = {
        let weak = Arc::downgrade(shared);
        move || {
            weak.upgrade().map_or(
                Now {
                    level: BackpressureLevel::Ok,
                    depth: 0,
                    area: 0.0,
                },
                |s| {
                    let q = s.queue.snapshot();
                    Now {
                        level: q.level,
                        depth: q.depth,
                        area: q.depth_area,
                    }
                },
            )
        }
    };
    let emitter = tokio::spawn(emitter.run(levels, current, emitter_stop.clone()));
    let workers = (0..workers)
        .map(|_| tokio::spawn(worker::run(shared.clone())))
        .collect();
    Tasks {
        workers,
        emitter,
        emitter_stop,
    }
}

//! The store replicas of one coordinator, pulling from a shared write stream: started after
//! a pod start delay, stopped by draining, as the autoscaler asks.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep};
use tokio_util::sync::CancellationToken;

use super::scenario::Scenario;
use super::sink::SimSink;
use super::stream::Stream;
use crate::bus::MemoryBus;
use crate::coordinator::{
    CoordinatorConfig, MemorySink, OverflowStrategy, StatsSnapshot, Watermark, WriteCoordinator,
};
use crate::event::{CoordinatorId, InstanceId};

/// How often a replica re-reads the stream's backlog into its level (the store's
/// `backlog_poll_ms`).
const BACKLOG_POLL: Duration = Duration::from_millis(100);
/// The store's default `idle_poll_ms`.
const IDLE_POLL_MS: u64 = 50;
/// One pull's round trip to the server.
const ROUND_TRIP: Duration = Duration::from_micros(500);

/// One replica: its write coordinator and the task pulling from the stream.
struct Replica {
    coordinator: WriteCoordinator<u64>,
    stop: CancellationToken,
    puller: JoinHandle<()>,
}

/// A replica the autoscaler asked for, until its pod is ready.
struct Starting {
    index: usize,
    ready_at: Instant,
}

/// The replicas of coordinator `default`.
pub(super) struct Fleet {
    scenario: Scenario,
    bus: MemoryBus,
    stream: Arc<Stream>,
    running: Vec<Replica>,
    starting: Vec<Starting>,
    stopping: Vec<JoinHandle<StatsSnapshot>>,
    /// Counters of replicas that have stopped.
    stopped: Vec<StatsSnapshot>,
    next_index: usize,
    pod_start: Duration,
}

impl Fleet {
    /// `initial` replicas ready at once.
    pub(super) fn new(
        scenario: &Scenario,
        bus: &MemoryBus,
        stream: Arc<Stream>,
        initial: usize,
        pod_start: Duration,
    ) -> Self {
        let mut fleet = Self {
            scenario: scenario.clone(),
            bus: bus.clone(),
            stream,
            running: Vec::new(),
            starting: Vec::new(),
            stopping: Vec::new(),
            stopped: Vec::new(),
            next_index: 0,
            pod_start,
        };
        for _ in 0..initial {
            let index = fleet.take_index();
            fleet.running.push(fleet.start(index));
        }
        fleet
    }

    fn take_index(&mut self) -> usize {
        self.next_index += 1;
        self.next_index - 1
    }

    fn start(&self, index: usize) -> Replica {
        let st = &self.scenario.store;
        let config = CoordinatorConfig {
            coordinator_id: CoordinatorId::default(),
            instance_id: InstanceId::new(format!("replica-{index}")).ok(),
            capacity: st.capacity,
            high_watermark: Watermark::Fraction(st.high_watermark),
            low_watermark: Watermark::Fraction(st.low_watermark),
            // Replicas take only what fits: the stream holds the rest, nothing is dropped.
            overflow: OverflowStrategy::Block,
            workers: st.workers,
            batch_size: st.batch_size,
            flush_interval_ms: st.flush_interval_ms,
            heartbeat_interval_ms: st.heartbeat_ms,
            ..CoordinatorConfig::default()
        };
        let sink = Arc::new(SimSink::new(
            self.scenario.sink.clone(),
            self.scenario.seed ^ index as u64,
        ));
        let coordinator = match WriteCoordinator::builder(config, sink)
            .dead_letter(Arc::new(MemorySink::new()))
            .publisher(Arc::new(self.bus.clone()))
            .start()
        {
            Ok(c) => c,
            // The scenario was validated; the store settings derived from it are valid.
            Err(e) => unreachable!("simulated store configuration is valid: {e}"),
        };
        let stop = CancellationToken::new();
        let rng = fastrand::Rng::with_seed(self.scenario.seed ^ (index as u64).rotate_left(17));
        let idle_poll = Duration::from_millis(
            self.scenario
                .autoscale
                .as_ref()
                .map_or(IDLE_POLL_MS, |a| a.idle_poll_ms),
        );
        let puller = tokio::spawn(pull(
            coordinator.clone(),
            self.stream.clone(),
            Pacing { idle_poll, rng },
            stop.clone(),
        ));
        Replica {
            coordinator,
            stop,
            puller,
        }
    }

    /// Replicas asked for: running and starting.
    pub(super) fn replicas(&self) -> usize {
        self.running.len() + self.starting.len()
    }

    /// Replicas running (ready).
    pub(super) fn ready(&self) -> usize {
        self.running.len()
    }

    /// The running replicas' coordinators.
    pub(super) fn coordinators(&self) -> impl Iterator<Item = &WriteCoordinator<u64>> {
        self.running.iter().map(|r| &r.coordinator)
    }

    /// Moves replicas whose pod start delay has passed into service.
    pub(super) fn tick(&mut self, now: Instant) {
        let (ready, waiting): (Vec<Starting>, Vec<Starting>) =
            self.starting.drain(..).partition(|s| s.ready_at <= now);
        self.starting = waiting;
        for s in ready {
            let replica = self.start(s.index);
            self.running.push(replica);
        }
    }

    /// Asks for `n` replicas: new ones start after the pod start delay; surplus ones stop,
    /// those still starting first, then the newest, each draining its queue.
    pub(super) fn scale_to(&mut self, n: usize, now: Instant) {
        while self.replicas() < n {
            let index = self.take_index();
            self.starting.push(Starting {
                index,
                ready_at: now + self.pod_start,
            });
        }
        while self.replicas() > n.max(1) {
            if self.starting.pop().is_some() {
                continue;
            }
            if let Some(r) = self.running.pop() {
                self.stopping.push(tokio::spawn(drain(r)));
            }
        }
    }

    /// Stops every replica; returns the counters of every replica there ever was.
    pub(super) async fn stop(mut self) -> Vec<StatsSnapshot> {
        for r in self.running.drain(..) {
            self.stopping.push(tokio::spawn(drain(r)));
        }
        for handle in self.stopping {
            if let Ok(stats) = handle.await {
                self.stopped.push(stats);
            }
        }
        self.stopped
    }
}

/// Stops pulling, writes what is queued, says goodbye.
async fn drain(r: Replica) -> StatsSnapshot {
    r.stop.cancel();
    let _ = r.puller.await;
    r.coordinator
        .stop(true, Duration::from_secs(60))
        .await
        .stats
}

/// How a puller paces its pulls: its longest idle pause and its random numbers.
struct Pacing {
    idle_poll: Duration,
    rng: fastrand::Rng,
}

/// Takes rows from the stream while there is room, and keeps the stream's backlog counted in
/// the replica's level, as a store's pull loop and backlog poll do: after rows, it asks again
/// one round trip later; after nothing, after a pause doubling from 1 ms to the idle poll.
/// Round trips and pauses vary at random, so replicas interleave at the stream as real
/// pullers do, instead of the first one spawned taking every row.
async fn pull(
    coordinator: WriteCoordinator<u64>,
    stream: Arc<Stream>,
    mut pacing: Pacing,
    stop: CancellationToken,
) {
    let mut next_poll = Instant::now();
    let mut item = 0u64;
    let mut idle = Duration::ZERO;
    loop {
        if Instant::now() >= next_poll {
            coordinator.set_external_backlog(stream.pending());
            next_poll = Instant::now() + BACKLOG_POLL;
        }
        let free = coordinator.free_capacity();
        if free == 0 {
            tokio::select! {
                () = coordinator.wait_for_room() => continue,
                () = stop.cancelled() => return,
            }
        }
        let taken = stream.pull(free);
        for _ in 0..taken {
            item += 1;
            if coordinator.try_submit(item).is_err() {
                break;
            }
        }
        idle = if taken == 0 {
            (idle * 2).clamp(Duration::from_millis(1), pacing.idle_poll)
        } else {
            ROUND_TRIP
        };
        tokio::select! {
            () = sleep(idle.mul_f64(0.5 + pacing.rng.f64())) => {}
            () = stop.cancelled() => return,
        }
    }
}

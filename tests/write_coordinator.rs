//! WriteCoordinator behaviour: levels and their events, overflow strategies, batching,
//! retries, the breaker, dead letters and stopping, under paused tokio time.

mod common;

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use backflow::breaker::BreakerState;
use backflow::bus::{FeedbackSubscription, Interest, MemoryBus, MemorySubscription};
use backflow::coordinator::{
    BreakerConfig, CoordinatorConfig, DeadLetterReason, DeadLetterSink, DropReason, MemorySink,
    OverflowStrategy, RetryConfig, SinkError, SubmitError, Watermark, WriteCoordinator,
};
use backflow::event::BackpressureLevel::{self, Hard, Ok as Fine, Soft};
use backflow::event::FeedbackEvent;
use common::sink::TestSink;
use common::within;
use tokio::time::{Instant, sleep};

fn config(capacity: u64) -> CoordinatorConfig {
    CoordinatorConfig {
        capacity,
        low_watermark: Watermark::Fraction(0.5),
        high_watermark: Watermark::Fraction(0.8),
        workers: 1,
        batch_size: 10,
        flush_interval_ms: 10,
        heartbeat_interval_ms: 0,
        ..CoordinatorConfig::default()
    }
}

struct Rig {
    store: WriteCoordinator<u64>,
    sink: Arc<TestSink>,
    dead: Arc<MemorySink<u64>>,
    events: MemorySubscription,
}

fn rig(cfg: CoordinatorConfig) -> Rig {
    let sink = Arc::new(TestSink::default());
    let dead = Arc::new(MemorySink::new());
    let bus = MemoryBus::new(4096);
    let events = bus.subscribe(Interest::All);
    let store = WriteCoordinator::builder(cfg, sink.clone())
        .dead_letter(dead.clone())
        .publisher(Arc::new(bus))
        .start()
        .unwrap();
    Rig {
        store,
        sink,
        dead,
        events,
    }
}

async fn next_event(events: &mut MemorySubscription) -> FeedbackEvent {
    within(Duration::from_secs(30), "a feedback event", events.next())
        .await
        .expect("bus open")
        .event
}

/// Skips heartbeats and the start event; returns the next level change.
async fn next_change(events: &mut MemorySubscription) -> (BackpressureLevel, u64) {
    loop {
        let e = next_event(events).await;
        if e.reason.as_deref() == Some("level_change") {
            return (e.level, e.queue_depth);
        }
    }
}

/// The single worker takes the first batch of 10 into the held sink write, where it no
/// longer counts as queued; later submits then set the depth exactly.
async fn fill_the_held_write(store: &WriteCoordinator<u64>) {
    submit_all(store, 0..10).await;
    sleep(Duration::from_millis(1)).await;
    assert_eq!(store.health().queued, 0);
}

async fn submit_all(store: &WriteCoordinator<u64>, items: impl IntoIterator<Item = u64>) {
    for i in items {
        store.try_submit(i).unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn levels_follow_the_watermarks_and_each_change_is_published() {
    let mut r = rig(config(100));
    let start = next_event(&mut r.events).await;
    assert_eq!(
        (start.level, start.seq, start.reason.as_deref()),
        (Fine, 1, Some("start"))
    );
    r.sink.hold();
    fill_the_held_write(&r.store).await;
    submit_all(&r.store, 10..60).await; // depth 50 = low: still OK
    assert_eq!(r.store.level(), Fine);
    submit_all(&r.store, 60..61).await;
    assert_eq!(next_change(&mut r.events).await, (Soft, 51));
    submit_all(&r.store, 61..90).await;
    assert_eq!(next_change(&mut r.events).await, (Hard, 80));
    assert_eq!(r.store.level(), Hard);
    // Draining: SOFT below high, OK only at the low mark.
    r.sink.release();
    assert_eq!(next_change(&mut r.events).await.0, Soft);
    assert_eq!(next_change(&mut r.events).await, (Fine, 50));
    let report = r.store.stop(true, Duration::from_secs(5)).await;
    assert!(report.drained);
    assert_eq!(r.sink.written(), (0..90).collect::<Vec<_>>());
    // Sequence numbers rose by one per event, and the last one says goodbye.
    let mut last = next_event(&mut r.events).await;
    while !last.leaving {
        last = next_event(&mut r.events).await;
    }
    assert_eq!(last.reason.as_deref(), Some("stopping"));
    assert_eq!(last.seq, 6, "start, 4 changes, stopping");
}

#[tokio::test(start_paused = true)]
async fn heartbeats_repeat_the_current_state() {
    let mut cfg = config(100);
    cfg.heartbeat_interval_ms = 1_000;
    let mut r = rig(cfg);
    r.sink.hold();
    let t0 = Instant::now();
    next_event(&mut r.events).await; // start
    fill_the_held_write(&r.store).await;
    submit_all(&r.store, 10..70).await;
    assert_eq!(next_change(&mut r.events).await.0, Soft);
    for n in 1..=3u64 {
        let beat = next_event(&mut r.events).await;
        assert_eq!(beat.reason.as_deref(), Some("heartbeat"));
        assert_eq!(
            (beat.level, beat.queue_depth, beat.heartbeat_ms),
            (Soft, 60, 1_000)
        );
        assert_eq!(Instant::now() - t0, Duration::from_secs(n));
    }
}

#[tokio::test(start_paused = true)]
async fn block_waits_for_room() {
    let r = rig(config(10));
    r.sink.hold();
    submit_all(&r.store, 0..10).await;
    // The worker took one batch of 10 into its (held) write; refill the queue.
    sleep(Duration::from_millis(50)).await;
    submit_all(&r.store, 10..20).await;
    let store = r.store.clone();
    let blocked = tokio::spawn(async move { store.submit(20).await });
    sleep(Duration::from_secs(1)).await;
    assert!(
        !blocked.is_finished(),
        "submit must wait while the queue is full"
    );
    r.sink.release();
    within(Duration::from_secs(5), "the blocked submit", blocked)
        .await
        .unwrap()
        .unwrap();
    let report = r.store.stop(true, Duration::from_secs(5)).await;
    assert_eq!(report.stats.written, 21);
    assert_eq!(report.stats.dropped(), 0);
}

#[tokio::test(start_paused = true)]
async fn drop_oldest_evicts_counts_and_reports_each_drop() {
    let mut cfg = config(10);
    cfg.overflow = OverflowStrategy::DropOldest;
    let sink = Arc::new(TestSink::default());
    sink.hold();
    let dropped = Arc::new(Mutex::new(Vec::new()));
    let store = WriteCoordinator::builder(cfg, sink.clone())
        .on_drop({
            let dropped = dropped.clone();
            move |item, reason| dropped.lock().unwrap().push((item, reason))
        })
        .start()
        .unwrap();
    submit_all(&store, 0..10).await;
    sleep(Duration::from_millis(50)).await; // 0..10 are now in the held write
    submit_all(&store, 10..25).await;
    assert_eq!(
        *dropped.lock().unwrap(),
        (10..15)
            .map(|i| (i, DropReason::Overflow))
            .collect::<Vec<_>>()
    );
    sink.release();
    let report = store.stop(true, Duration::from_secs(5)).await;
    assert_eq!(report.stats.dropped_overflow, 5);
    assert_eq!(sink.written(), (0..10).chain(15..25).collect::<Vec<_>>());
    assert_eq!(report.stats.accepted, 25);
}

#[tokio::test(start_paused = true)]
async fn error_strategy_hands_the_item_back() {
    let mut cfg = config(10);
    cfg.overflow = OverflowStrategy::Error;
    let r = rig(cfg);
    r.sink.hold();
    submit_all(&r.store, 0..10).await;
    sleep(Duration::from_millis(50)).await;
    submit_all(&r.store, 10..20).await;
    assert_eq!(r.store.submit(99).await, Err(SubmitError::Full(99)));
    assert_eq!(r.store.stats().refused_full, 1);
    r.sink.release();
    let report = r.store.stop(true, Duration::from_secs(5)).await;
    assert_eq!(report.stats.accepted, 20);
    assert_eq!(report.stats.written, 20);
}

#[tokio::test(start_paused = true)]
async fn full_batches_go_at_once_and_partial_ones_after_the_flush_interval() {
    let mut cfg = config(100);
    cfg.flush_interval_ms = 100;
    let r = rig(cfg);
    let t0 = Instant::now();
    submit_all(&r.store, 0..23).await;
    within(Duration::from_secs(1), "two full batches", async {
        while r.sink.batches().len() < 2 {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(t0.elapsed() < Duration::from_millis(10));
    within(Duration::from_secs(1), "the partial batch", async {
        while r.sink.batches().len() < 3 {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(t0.elapsed() >= Duration::from_millis(100));
    assert_eq!(r.sink.batches(), vec![10, 10, 3]);
}

fn retrying(cfg: &mut CoordinatorConfig, attempts: u32) {
    cfg.retry = RetryConfig {
        max_attempts: attempts,
        initial_backoff_ms: 100,
        max_backoff_ms: 1_000,
        multiplier: 2.0,
        jitter: 0.0,
    };
    cfg.breaker = BreakerConfig {
        failure_threshold: 0,
        half_open_after_ms: 1_000,
    };
}

#[tokio::test(start_paused = true)]
async fn transient_failures_are_retried_with_exponential_backoff() {
    let mut cfg = config(100);
    retrying(&mut cfg, 5);
    let r = rig(cfg);
    r.sink.script([
        Err(SinkError::transient("timeout")),
        Err(SinkError::transient("timeout")),
        Err(SinkError::transient("timeout")),
    ]);
    let t0 = Instant::now();
    submit_all(&r.store, 0..10).await;
    within(Duration::from_secs(10), "the write", async {
        while r.sink.written().is_empty() {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    // 100 + 200 + 400 ms of backoff (the polling above adds up to 1 ms).
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(700) && took <= Duration::from_millis(701),
        "{took:?}"
    );
    let s = r.store.stats();
    assert_eq!((s.written, s.write_failures, s.dead_lettered()), (10, 3, 0));
}

#[tokio::test(start_paused = true)]
async fn exhausted_retries_and_permanent_failures_go_to_the_dead_letter_sink() {
    let mut cfg = config(100);
    retrying(&mut cfg, 3);
    let r = rig(cfg);
    r.sink.script([
        Err(SinkError::transient("down")),
        Err(SinkError::transient("down")),
        Err(SinkError::transient("down")),
        Err(SinkError::permanent("constraint violation")),
    ]);
    submit_all(&r.store, 0..10).await;
    sleep(Duration::from_secs(5)).await;
    submit_all(&r.store, 10..20).await;
    sleep(Duration::from_secs(1)).await;
    submit_all(&r.store, 20..30).await;
    let report = r.store.stop(true, Duration::from_secs(5)).await;
    let s = report.stats;
    assert_eq!(s.dead_lettered_retries_exhausted, 10);
    assert_eq!(s.dead_lettered_rejected, 10);
    assert_eq!(s.written, 10);
    assert_eq!(r.sink.calls(), 5);
    assert_eq!(r.dead.items(), (0..20).collect::<Vec<_>>());
    assert_eq!(s.unaccounted(), 0);
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_stops_calling_the_sink_and_probes_after_its_timeout() {
    let mut cfg = config(100);
    cfg.retry = RetryConfig {
        max_attempts: 100,
        initial_backoff_ms: 10,
        max_backoff_ms: 10,
        multiplier: 1.0,
        jitter: 0.0,
    };
    cfg.breaker = BreakerConfig {
        failure_threshold: 3,
        half_open_after_ms: 5_000,
    };
    let r = rig(cfg);
    r.sink.otherwise(Err(SinkError::transient("db down")));
    submit_all(&r.store, 0..10).await;
    within(Duration::from_secs(1), "three failures", async {
        while r.sink.calls() < 3 {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let opened = Instant::now();
    assert_eq!(r.store.health().breaker, BreakerState::Open);
    assert!(!r.store.health().is_healthy());
    sleep(Duration::from_millis(4_900)).await;
    assert_eq!(r.sink.calls(), 3, "no calls while open");
    r.sink.otherwise(Ok(()));
    within(Duration::from_secs(1), "the probe", async {
        while r.sink.written().is_empty() {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    assert!(opened.elapsed() >= Duration::from_secs(5));
    assert_eq!(r.sink.calls(), 4);
    assert_eq!(r.store.health().breaker, BreakerState::Closed);
    assert_eq!(
        r.store.stats().dead_lettered(),
        0,
        "waiting on the breaker used no attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn stop_with_drain_writes_everything() {
    let mut cfg = config(10_000);
    cfg.workers = 3;
    let r = rig(cfg);
    for i in 0..5_000 {
        r.store.submit(i).await.unwrap();
    }
    let report = r.store.stop(true, Duration::from_secs(60)).await;
    assert!(report.drained);
    let mut written = r.sink.written();
    written.sort_unstable();
    assert_eq!(written, (0..5_000).collect::<Vec<_>>());
    assert_eq!(report.stats.unaccounted(), 0);
    assert_eq!(r.store.submit(1).await, Err(SubmitError::Closed(1)));
    assert!(!r.store.health().accepting);
}

#[tokio::test(start_paused = true)]
async fn stop_that_cannot_drain_dead_letters_the_rest_and_accounts_for_every_item() {
    let mut cfg = config(1_000);
    cfg.workers = 2;
    let r = rig(cfg);
    r.sink.otherwise(Err(SinkError::transient("db down")));
    submit_all(&r.store, 0..500).await;
    let t0 = Instant::now();
    let report = r.store.stop(true, Duration::from_secs(2)).await;
    assert!(!report.drained);
    assert!(t0.elapsed() <= Duration::from_secs(4));
    let s = report.stats;
    assert_eq!(s.accepted, 500);
    assert_eq!(s.written + s.dead_lettered() + s.dropped(), 500, "{s:?}");
    assert!(s.dead_lettered_shutdown > 0, "{s:?}");
    let mut dead = r.dead.items();
    dead.sort_unstable();
    assert_eq!(dead.len() as u64, s.dead_lettered());
}

struct BrokenDeadLetter;

#[async_trait]
impl DeadLetterSink<u64> for BrokenDeadLetter {
    async fn dead_letter(&self, _: Vec<u64>, _: DeadLetterReason) -> Result<(), SinkError> {
        Err(SinkError::transient("dead-letter store unreachable"))
    }
}

#[tokio::test(start_paused = true)]
async fn a_failing_dead_letter_sink_is_counted_as_dropped() {
    let sink = Arc::new(TestSink::default());
    sink.otherwise(Err(SinkError::permanent("bad rows")));
    let store = WriteCoordinator::builder(config(100), sink)
        .dead_letter(Arc::new(BrokenDeadLetter))
        .start()
        .unwrap();
    submit_all(&store, 0..10).await;
    let report = store.stop(true, Duration::from_secs(5)).await;
    assert_eq!(report.stats.dropped_dead_letter_failed, 10);
    assert_eq!(report.stats.unaccounted(), 0);
}

#[tokio::test(start_paused = true)]
async fn external_backlog_counts_towards_the_level() {
    let mut r = rig(config(100));
    r.store.set_external_backlog(85);
    assert_eq!(next_change(&mut r.events).await, (Hard, 85));
    let h = r.store.health();
    assert_eq!((h.depth, h.queued, h.external_backlog), (85, 0, 85));
    r.store.set_external_backlog(0);
    assert_eq!(next_change(&mut r.events).await, (Fine, 0));
}

#[tokio::test(start_paused = true)]
async fn invalid_configuration_is_refused_with_the_key() {
    let sink = Arc::new(TestSink::default());
    let mut cfg = config(100);
    cfg.low_watermark = Watermark::Absolute(90);
    cfg.high_watermark = Watermark::Absolute(80);
    let err = WriteCoordinator::<u64>::builder(cfg, sink.clone())
        .start()
        .err()
        .unwrap();
    assert!(err.key.contains("watermark"), "{err}");
    let mut cfg = config(100);
    cfg.workers = 0;
    assert_eq!(
        WriteCoordinator::<u64>::builder(cfg, sink)
            .start()
            .err()
            .unwrap()
            .key,
        "workers"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stalled_subscriber_does_not_slow_the_coordinator_or_others() {
    let bus = MemoryBus::new(8);
    let _stalled = bus.subscribe(Interest::All); // never read
    let mut live = bus.subscribe(Interest::All);
    let sink = Arc::new(TestSink::default());
    sink.hold();
    let store = WriteCoordinator::builder(config(20), sink.clone())
        .publisher(Arc::new(bus.clone()))
        .start()
        .unwrap();
    let seen = Arc::new(AtomicU64::new(0));
    // Flap the level many more times than the stalled subscriber's buffer holds.
    for round in 0..50u64 {
        store.set_external_backlog(if round % 2 == 0 { 20 } else { 0 });
        loop {
            let e = within(Duration::from_secs(1), "live subscriber", live.next())
                .await
                .unwrap()
                .event;
            seen.fetch_add(1, Relaxed);
            if e.reason.as_deref() == Some("level_change") {
                break;
            }
        }
    }
    assert!(seen.load(Relaxed) >= 50);
    assert_eq!(store.stats().level_changes, 50);
    assert!(store.stats().events_published >= 51);
}

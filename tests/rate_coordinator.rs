//! RateCoordinator behaviour: the seed's ten tests by meaning, plus exact rates under scale
//! changes, pausing, cooldown and the breaker. All under paused tokio time.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use backflow::breaker::BreakerState;
use backflow::event::BackpressureLevel;
use backflow::rate::{ProviderConfig, RateCoordinator, RateError};
use common::within;
use tokio::time::{Instant, sleep};

fn coordinator(capacity: u32, rate: f64) -> RateCoordinator {
    let c = RateCoordinator::new();
    c.register_provider("test", ProviderConfig::new(capacity, rate))
        .unwrap();
    c
}

/// Spawns `tasks` acquirers of one item each in a loop; returns the shared grant counter.
fn saturate(c: &RateCoordinator, tasks: usize) -> Arc<AtomicU64> {
    let granted = Arc::new(AtomicU64::new(0));
    for _ in 0..tasks {
        let (c, granted) = (c.clone(), granted.clone());
        tokio::spawn(async move {
            while c.acquire("test", 1).await.is_ok() {
                granted.fetch_add(1, Relaxed);
            }
        });
    }
    granted
}

/// Items granted during `window`, after the bucket's initial burst is spent.
async fn granted_over(c: &RateCoordinator, window: Duration) -> u64 {
    let granted = saturate(c, 3);
    sleep(Duration::from_secs(2)).await; // spend the initial burst
    let before = granted.load(Relaxed);
    sleep(window).await;
    granted.load(Relaxed) - before
}

fn assert_close(actual: u64, expected: f64, tolerance: f64) {
    let err = (actual as f64 - expected).abs() / expected;
    assert!(
        err <= tolerance,
        "granted {actual}, expected {expected} (±{:.1}%)",
        tolerance * 100.0
    );
}

#[tokio::test(start_paused = true)]
async fn set_budget_scale_adjusts_rate() {
    let c = coordinator(100, 100.0);
    c.set_budget_scale("test", 0.5).unwrap();
    assert_close(granted_over(&c, Duration::from_secs(10)).await, 500.0, 0.01);
}

#[tokio::test(start_paused = true)]
async fn set_budget_scale_invalid_provider() {
    let c = coordinator(100, 100.0);
    assert_eq!(
        c.set_budget_scale("nope", 0.5),
        Err(RateError::UnknownProvider("nope".into()))
    );
    assert!(matches!(
        c.acquire("nope", 1).await,
        Err(RateError::UnknownProvider(_))
    ));
    assert_eq!(
        c.set_budget_scale("test", 1.5),
        Err(RateError::InvalidScale(1.5))
    );
    assert!(matches!(
        c.set_budget_scale("test", f64::NAN),
        Err(RateError::InvalidScale(_))
    ));
    assert_eq!(c.scale("test"), Ok(1.0), "a rejected scale changes nothing");
}

#[tokio::test(start_paused = true)]
async fn set_budget_scale_zero_pauses_acquire_until_the_scale_rises() {
    let c = coordinator(1, 10.0);
    c.acquire("test", 1).await.unwrap(); // empty the bucket
    c.set_budget_scale("test", 0.0).unwrap();
    let waiter = tokio::spawn({
        let c = c.clone();
        async move {
            c.acquire("test", 1).await.unwrap();
            Instant::now()
        }
    });
    sleep(Duration::from_secs(60)).await;
    assert!(
        !waiter.is_finished(),
        "acquire must wait while the scale is 0"
    );
    let resumed_at = Instant::now();
    c.set_budget_scale("test", 1.0).unwrap();
    let granted_at = within(Duration::from_secs(5), "the paused waiter", waiter)
        .await
        .unwrap();
    // The bucket refilled during the pause, so the waiter goes through at once.
    assert_eq!(granted_at, resumed_at);
}

#[tokio::test(start_paused = true)]
async fn set_budget_scale_one_grants_the_base_rate() {
    let c = coordinator(100, 100.0);
    c.set_budget_scale("test", 0.25).unwrap();
    c.set_budget_scale("test", 1.0).unwrap();
    assert_close(
        granted_over(&c, Duration::from_secs(10)).await,
        1_000.0,
        0.01,
    );
}

#[tokio::test(start_paused = true)]
async fn set_global_pressure_updates_state() {
    let c = coordinator(100, 100.0);
    assert_eq!(c.pressure("test"), Ok(BackpressureLevel::Ok));
    c.set_global_pressure("test", BackpressureLevel::Soft)
        .unwrap();
    assert_eq!(c.pressure("test"), Ok(BackpressureLevel::Soft));
    assert!(
        c.set_global_pressure("nope", BackpressureLevel::Hard)
            .is_err()
    );
}

#[tokio::test(start_paused = true)]
async fn scale_persists_across_acquire() {
    let c = coordinator(100, 100.0);
    c.set_budget_scale("test", 0.5).unwrap();
    for _ in 0..200 {
        c.acquire("test", 1).await.unwrap();
    }
    assert_eq!(c.scale("test"), Ok(0.5));
}

#[tokio::test(start_paused = true)]
async fn base_rate_preserved() {
    let c = coordinator(100, 100.0);
    for s in [0.1, 0.0, 0.7, 0.3] {
        c.set_budget_scale("test", s).unwrap();
        assert_eq!(c.snapshot("test").unwrap().base_rate, 100.0);
    }
    c.set_budget_scale("test", 1.0).unwrap();
    assert_close(
        granted_over(&c, Duration::from_secs(10)).await,
        1_000.0,
        0.01,
    );
}

#[tokio::test(start_paused = true)]
async fn scale_factor_metrics_updated() {
    let c = coordinator(100, 100.0);
    c.set_budget_scale("test", 0.3).unwrap();
    let s = c.snapshot("test").unwrap();
    assert_eq!(s.scale, 0.3);
    assert!((s.effective_rate - 30.0).abs() < 1e-9);
    for _ in 0..5 {
        c.acquire("test", 2).await.unwrap();
    }
    assert_eq!(c.snapshot("test").unwrap().granted, 10);
}

#[tokio::test(start_paused = true)]
async fn pressure_state_metrics_updated() {
    let c = coordinator(100, 100.0);
    c.set_global_pressure("test", BackpressureLevel::Hard)
        .unwrap();
    assert_eq!(
        c.snapshot("test").unwrap().pressure,
        BackpressureLevel::Hard
    );
}

#[tokio::test(start_paused = true)]
async fn scale_does_not_affect_capacity() {
    let c = coordinator(100, 100.0);
    c.set_budget_scale("test", 0.5).unwrap();
    assert_eq!(c.snapshot("test").unwrap().capacity, 100);
    // Requests up to the configured capacity stay valid at any scale...
    c.acquire("test", 100).await.unwrap();
    assert!(matches!(
        c.acquire("test", 101).await,
        Err(RateError::ExceedsCapacity { capacity: 100, .. })
    ));
    // ...and back at full scale a rested bucket holds the full burst again.
    c.set_budget_scale("test", 1.0).unwrap();
    sleep(Duration::from_secs(5)).await;
    let start = Instant::now();
    c.acquire("test", 100).await.unwrap();
    assert_eq!(start.elapsed(), Duration::ZERO);
}

#[tokio::test(start_paused = true)]
async fn granted_rate_tracks_the_scale_while_it_toggles_every_second() {
    let c = coordinator(20, 1_000.0);
    let granted = saturate(&c, 4);
    sleep(Duration::from_secs(1)).await;
    let before = granted.load(Relaxed);
    for i in 0..60 {
        c.set_budget_scale("test", if i % 2 == 0 { 1.0 } else { 0.5 })
            .unwrap();
        sleep(Duration::from_secs(1)).await;
    }
    // 30 s at 1,000/s and 30 s at 500/s; a fresh burst on each change would add 20 × 60.
    assert_close(granted.load(Relaxed) - before, 45_000.0, 0.01);
}

#[tokio::test(start_paused = true)]
async fn rising_scale_wakes_a_waiter_scheduled_at_the_old_rate() {
    let c = coordinator(1, 1.0);
    c.set_budget_scale("test", 0.01).unwrap(); // one item per 100 s
    c.acquire("test", 1).await.unwrap();
    let start = Instant::now();
    let waiter = tokio::spawn({
        let c = c.clone();
        async move { c.acquire("test", 1).await }
    });
    sleep(Duration::from_secs(1)).await;
    c.set_budget_scale("test", 1.0).unwrap();
    within(Duration::from_secs(5), "the rescheduled waiter", waiter)
        .await
        .unwrap()
        .unwrap();
    // At the old rate the next item was due after 100 s; at the new one after 1 s, now.
    assert!(
        start.elapsed() < Duration::from_millis(1_100),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn cooldown_pauses_the_provider_for_its_configured_time() {
    let c = RateCoordinator::new();
    let mut cfg = ProviderConfig::new(10, 100.0);
    cfg.cooldown_sec = 30.0;
    c.register_provider("test", cfg).unwrap();
    let start = Instant::now();
    c.trigger_cooldown("test", "http_429").unwrap();
    assert_eq!(
        c.snapshot("test").unwrap().cooldown_scope.as_deref(),
        Some("http_429")
    );
    c.acquire("test", 1).await.unwrap();
    assert_eq!(start.elapsed(), Duration::from_secs(30));
    assert_eq!(c.snapshot("test").unwrap().cooling_until, None);
}

#[tokio::test(start_paused = true)]
async fn breaker_opens_after_threshold_and_lets_one_probe_through() {
    let c = RateCoordinator::new();
    let mut cfg = ProviderConfig::new(10, 100.0);
    cfg.breaker_threshold = 3;
    cfg.breaker_timeout_sec = 20.0;
    c.register_provider("test", cfg).unwrap();
    for _ in 0..2 {
        assert_eq!(c.record_failure("test"), Ok(BreakerState::Closed));
    }
    assert_eq!(c.record_failure("test"), Ok(BreakerState::Open));
    let start = Instant::now();
    c.acquire("test", 1).await.unwrap(); // the probe, after the timeout
    assert_eq!(start.elapsed(), Duration::from_secs(20));
    let second = tokio::spawn({
        let c = c.clone();
        async move { c.acquire("test", 1).await }
    });
    sleep(Duration::from_secs(1)).await;
    assert!(!second.is_finished(), "only one probe while half-open");
    c.record_success("test").unwrap();
    within(Duration::from_secs(1), "the caller after the probe", second)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.snapshot("test").unwrap().breaker, BreakerState::Closed);
}

#[tokio::test(start_paused = true)]
async fn registration_rejects_bad_values_and_duplicates() {
    let c = RateCoordinator::new();
    assert!(matches!(
        c.register_provider("x", ProviderConfig::new(0, 1.0)),
        Err(RateError::Invalid(e)) if e.key == "capacity"
    ));
    assert!(matches!(
        c.register_provider("x", ProviderConfig::new(1, -1.0)),
        Err(RateError::Invalid(e)) if e.key == "refill_rate"
    ));
    c.register_provider("x", ProviderConfig::new(1, 1.0))
        .unwrap();
    assert_eq!(
        c.register_provider("x", ProviderConfig::new(1, 1.0)),
        Err(RateError::AlreadyRegistered("x".into()))
    );
}

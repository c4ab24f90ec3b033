//! FeedbackHandler behaviour: the seed's eight tests by meaning, then ordering, staleness,
//! expiry and merging.

mod common;

use std::time::Duration;

use backflow::clock::WallClock;
use backflow::event::BackpressureLevel::{self, Hard, Ok as Fine, Soft};
use backflow::event::{FairRates, FeedbackEvent};
use backflow::feedback::{
    Decision, FairShareConfig, FairSharePolicy, FeedbackHandler, Policy, ProportionalConfig,
    StepPolicy,
};
use backflow::fleet::{Fallback, FleetConfig, Observed, Signal};
use backflow::rate::{ProviderConfig, RateCoordinator, RateError};
use common::event;
use tokio::time::{Instant, sleep};

fn rate() -> RateCoordinator {
    let r = RateCoordinator::new();
    r.register_provider("ibkr", ProviderConfig::new(100, 100.0))
        .unwrap();
    r
}

fn step_handler(r: &RateCoordinator) -> FeedbackHandler {
    handler(r, Box::new(StepPolicy::default()))
}

/// A handler of provider `ibkr` of `r` running `policy`, with the default fleet settings.
fn handler(r: &RateCoordinator, policy: Box<dyn Policy>) -> FeedbackHandler {
    FeedbackHandler::new(r.clone(), ["ibkr"], policy, FleetConfig::default()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn handle_ok_sets_scale_one() {
    let r = rate();
    let mut h = step_handler(&r);
    h.handle(event("default", "a", 1, Hard, 950, 1000));
    h.handle(event("default", "a", 2, Fine, 100, 1000));
    assert_eq!(r.scale("ibkr"), Ok(1.0));
}

#[tokio::test(start_paused = true)]
async fn handle_soft_sets_scale_half() {
    let r = rate();
    let mut h = step_handler(&r);
    h.handle(event("default", "a", 1, Soft, 800, 1000));
    assert_eq!(r.scale("ibkr"), Ok(0.5));
}

#[tokio::test(start_paused = true)]
async fn handle_hard_sets_scale_zero() {
    let r = rate();
    let mut h = step_handler(&r);
    h.handle(event("default", "a", 1, Hard, 950, 1000));
    assert_eq!(r.scale("ibkr"), Ok(0.0));
}

#[tokio::test(start_paused = true)]
async fn handle_updates_pressure_state() {
    let r = rate();
    let mut h = step_handler(&r);
    h.handle(event("default", "a", 1, Soft, 800, 1000));
    assert_eq!(r.pressure("ibkr"), Ok(Soft));
}

#[tokio::test(start_paused = true)]
async fn handle_with_missing_provider() {
    let r = rate();
    let err = FeedbackHandler::new(
        r,
        ["polygon"],
        Box::new(StepPolicy::default()),
        FleetConfig::default(),
    )
    .err();
    assert_eq!(err, Some(RateError::UnknownProvider("polygon".into())));
}

#[tokio::test(start_paused = true)]
async fn handle_metrics_incremented() {
    use std::sync::atomic::Ordering::Relaxed;
    let r = rate();
    let mut h = step_handler(&r);
    let stats = h.stats();
    h.handle(event("default", "a", 1, Soft, 800, 1000));
    h.handle(event("default", "a", 1, Soft, 800, 1000));
    h.handle(event("default", "a", 2, Hard, 900, 1000));
    assert_eq!(stats.received.load(Relaxed), 3);
    assert_eq!(stats.applied.load(Relaxed), 2);
    assert_eq!(stats.duplicates.load(Relaxed), 1);
    assert_eq!(stats.adjustments.load(Relaxed), 2);
    assert_eq!(stats.scale(), 0.0);
    assert_eq!(stats.level.load(Relaxed), 2);
}

/// Halves the scale on anything but OK, whatever the level: a user-defined policy.
struct Halving(f64);

impl Policy for Halving {
    fn name(&self) -> &'static str {
        "halving"
    }
    fn on_signal(&mut self, signal: &Signal, _: Instant) -> Decision {
        self.0 = if signal.level == Fine {
            1.0
        } else {
            self.0 / 2.0
        };
        Decision::hold(self.0)
    }
    fn on_tick(&mut self, _: Instant) -> Decision {
        Decision::hold(self.0)
    }
}

#[tokio::test(start_paused = true)]
async fn custom_policy_via_trait() {
    let r = rate();
    let mut h = handler(&r, Box::new(Halving(1.0)));
    h.handle(event("default", "a", 1, Soft, 600, 1000));
    h.handle(event("default", "a", 2, Soft, 600, 1000));
    assert_eq!(r.scale("ibkr"), Ok(0.25));
    assert_eq!(h.policy_name(), "halving");
}

#[tokio::test(start_paused = true)]
async fn stale_duplicate_and_out_of_order_events_change_nothing() {
    let r = rate();
    let mut h = step_handler(&r);
    assert_eq!(
        h.handle(event("default", "a", 5, Soft, 800, 1000)),
        Observed::Applied
    );
    // A late HARD from before, the same event again, and an old-timestamped event.
    assert_eq!(
        h.handle(event("default", "a", 4, Hard, 990, 1000)),
        Observed::OutOfOrder
    );
    assert_eq!(
        h.handle(event("default", "a", 5, Hard, 990, 1000)),
        Observed::Duplicate
    );
    let mut old = event("default", "a", 6, Hard, 990, 1000);
    old.timestamp_ms -= 60_000;
    assert_eq!(h.handle(old), Observed::TooOld);
    assert_eq!(r.scale("ibkr"), Ok(0.5));
    // A restarted instance (new epoch) starts again at seq 1 and is believed.
    let mut reborn = event("default", "a", 1, Hard, 990, 1000);
    reborn.epoch = 2;
    assert_eq!(h.handle(reborn), Observed::Applied);
    assert_eq!(r.scale("ibkr"), Ok(0.0));
}

#[tokio::test(start_paused = true)]
async fn most_severe_coordinator_and_instance_wins() {
    let r = rate();
    let mut h = step_handler(&r);
    h.handle(event("eu", "eu-1", 1, Soft, 700, 1000));
    h.handle(event("us", "us-1", 1, Hard, 900, 1000));
    assert_eq!(r.scale("ibkr"), Ok(0.0));
    // us recovers; eu is still SOFT.
    h.handle(event("us", "us-1", 2, Fine, 100, 1000));
    assert_eq!(r.scale("ibkr"), Ok(0.5));
    // Two pods of one coordinator: one OK, one SOFT.
    h.handle(event("eu", "eu-2", 1, Fine, 10, 1000));
    assert_eq!(r.scale("ibkr"), Ok(0.5));
    h.handle(event("eu", "eu-1", 2, Fine, 10, 1000));
    assert_eq!(r.scale("ibkr"), Ok(1.0));
    assert_eq!(h.signal().instances, 3);
}

async fn run_until(h: &mut FeedbackHandler, t: Instant) {
    while let Some(at) = h.next_wake().filter(|at| *at <= t) {
        tokio::time::sleep_until(at).await;
        h.tick();
    }
    tokio::time::sleep_until(t).await;
}

#[tokio::test(start_paused = true)]
async fn silent_instance_falls_back_to_the_configured_scale_then_is_forgotten() {
    let r = rate();
    let fleet = FleetConfig {
        missed_heartbeats: 3,
        fallback: Fallback::Scale(0.25),
        forget_after_ms: 60_000,
        ..FleetConfig::default()
    };
    let mut h = FeedbackHandler::new(r.clone(), ["ibkr"], Box::new(StepPolicy::default()), fleet)
        .unwrap()
        .with_wall_clock(WallClock::new());
    let t0 = Instant::now();
    let mut e = event("default", "a", 1, Fine, 0, 1000);
    e.heartbeat_ms = 1_000;
    h.handle(e);
    assert_eq!(r.scale("ibkr"), Ok(1.0));
    run_until(&mut h, t0 + Duration::from_millis(2_999)).await;
    assert_eq!(
        r.scale("ibkr"),
        Ok(1.0),
        "two missed heartbeats are tolerated"
    );
    run_until(&mut h, t0 + Duration::from_secs(3)).await;
    assert_eq!(r.scale("ibkr"), Ok(0.25), "silent after three");
    assert_eq!(h.fleet().silent(), 1);
    run_until(&mut h, t0 + Duration::from_secs(60)).await;
    assert_eq!(r.scale("ibkr"), Ok(1.0), "forgotten");
    assert!(h.fleet().is_empty());
}

#[tokio::test(start_paused = true)]
async fn hold_last_keeps_obeying_a_silent_instance() {
    let r = rate();
    let fleet = FleetConfig {
        fallback: Fallback::HoldLast,
        ..FleetConfig::default()
    };
    let mut h =
        FeedbackHandler::new(r.clone(), ["ibkr"], Box::new(StepPolicy::default()), fleet).unwrap();
    h.handle(event("default", "a", 1, Soft, 700, 1000));
    run_until(&mut h, Instant::now() + Duration::from_secs(10)).await;
    assert_eq!(h.fleet().silent(), 1);
    assert_eq!(r.scale("ibkr"), Ok(0.5));
}

#[tokio::test(start_paused = true)]
async fn leaving_instance_is_forgotten_at_once() {
    let r = rate();
    let mut h = step_handler(&r);
    h.handle(event("default", "a", 1, Hard, 900, 1000));
    let mut bye = event("default", "a", 2, Fine, 0, 1000);
    bye.leaving = true;
    assert_eq!(h.handle(bye), Observed::Left);
    assert!(h.fleet().is_empty());
    assert_eq!(r.scale("ibkr"), Ok(1.0));
}

#[tokio::test(start_paused = true)]
async fn default_policy_tightens_at_once_and_relaxes_gradually() {
    use backflow::feedback::{HysteresisConfig, HysteresisPolicy};
    let r = rate();
    let policy = HysteresisPolicy::new(HysteresisConfig::default(), 7);
    let mut h = handler(&r, Box::new(policy));
    let t0 = Instant::now();
    h.handle(event("default", "a", 1, Hard, 900, 1000));
    assert_eq!(r.scale("ibkr"), Ok(0.0));
    h.handle(event("default", "a", 2, Fine, 100, 1000));
    assert_eq!(r.scale("ibkr"), Ok(0.0), "no jump back on the first OK");
    let mut seen: Vec<f64> = vec![];
    for ms in (100..=8_000).step_by(100) {
        // Heartbeats keep the instance alive.
        if ms % 1_000 == 0 {
            h.handle(event("default", "a", 2 + ms / 1_000, Fine, 100, 1000));
        }
        run_until(&mut h, t0 + Duration::from_millis(ms)).await;
        let s = r.scale("ibkr").unwrap();
        if seen.last() != Some(&s) {
            seen.push(s);
        }
    }
    assert!(seen.len() >= 8, "ramped in steps: {seen:?}");
    assert!(seen.windows(2).all(|w| w[1] > w[0]), "monotonic: {seen:?}");
    assert_eq!(seen.last(), Some(&1.0), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn run_applies_events_from_a_subscription_and_stops_on_shutdown() {
    use backflow::bus::{FeedbackPublisher, Interest, MemoryBus};
    let r = rate();
    let bus = MemoryBus::new(16);
    let sub = bus.subscribe(Interest::of([backflow::event::CoordinatorId::new(
        "default",
    )
    .unwrap()]));
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(step_handler(&r).run(sub, async {
        let _ = stop_rx.await;
    }));
    bus.publish(&event("other", "x", 1, Hard, 900, 1000))
        .await
        .unwrap();
    bus.publish(&event("default", "a", 1, Soft, 700, 1000))
        .await
        .unwrap();
    common::within(Duration::from_secs(1), "scale 0.5", async {
        while r.scale("ibkr") != Ok(0.5) {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
    let _ = stop_tx.send(());
    let h = common::within(Duration::from_secs(1), "handler exit", task)
        .await
        .unwrap();
    assert_eq!(h.fleet().len(), 1, "the other coordinator was filtered out");
    let _: BackpressureLevel = h.signal().level;
}

#[tokio::test(start_paused = true)]
async fn a_store_whose_clock_is_behind_is_followed_and_its_late_events_recognised() {
    let r = rate();
    let mut h = step_handler(&r);
    let behind = |seq, level, lag_ms: u64| {
        let mut e = event("default", "skewed", seq, level, 600, 1000);
        e.timestamp_ms -= lag_ms;
        e
    };
    // The store's clock runs two minutes behind: its events still count.
    assert_eq!(h.handle(behind(1, Soft, 120_000)), Observed::Applied);
    assert_eq!(r.scale("ibkr"), Ok(0.5));
    assert_eq!(h.handle(behind(2, Hard, 120_000)), Observed::Applied);
    assert_eq!(r.scale("ibkr"), Ok(0.0));
    // An event it queued 20 s ago and delivered now is stale by its own clock.
    assert_eq!(h.handle(behind(3, Fine, 140_000)), Observed::TooOld);
    assert_eq!(r.scale("ibkr"), Ok(0.0));
    assert_eq!(h.handle(behind(4, Fine, 120_000)), Observed::Applied);
    assert_eq!(r.scale("ibkr"), Ok(1.0));
}

#[tokio::test(start_paused = true)]
async fn a_first_event_far_from_the_local_clock_is_ignored() {
    let r = rate();
    let mut h = step_handler(&r);
    let mut ancient = event("default", "dead-pod", 7, Hard, 900, 1000);
    ancient.timestamp_ms -= 10 * 60_000;
    assert_eq!(h.handle(ancient), Observed::TooOld);
    let mut future = event("default", "fast-clock", 1, Hard, 900, 1000);
    future.timestamp_ms += 10 * 60_000;
    assert_eq!(h.handle(future), Observed::TooOld);
    assert_eq!(r.scale("ibkr"), Ok(1.0));
    assert!(h.fleet().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_silent_pod_with_a_live_sibling_is_forgotten_without_fallback() {
    let r = rate();
    let fleet = FleetConfig {
        fallback: Fallback::Scale(0.25),
        ..FleetConfig::default()
    };
    let mut h =
        FeedbackHandler::new(r.clone(), ["ibkr"], Box::new(StepPolicy::default()), fleet).unwrap();
    let t0 = Instant::now();
    h.handle(event("default", "pod-a", 1, Fine, 0, 1000));
    h.handle(event("default", "pod-b", 1, Soft, 700, 1000)); // then killed: never heard again
    assert_eq!(r.scale("ibkr"), Ok(0.5));
    for s in 2..=10 {
        run_until(&mut h, t0 + Duration::from_millis(s * 1_000)).await;
        h.handle(event("default", "pod-a", s, Fine, 0, 1000));
    }
    assert_eq!(h.fleet().len(), 1, "the dead pod is gone");
    assert_eq!(h.fleet().silent(), 0);
    assert_eq!(
        r.scale("ibkr"),
        Ok(1.0),
        "no fallback while its sibling reports"
    );
}

/// One agent (proportional policy, jitter from `seed`) following a store that heartbeats OK
/// every 250 ms, falls silent from 2 s to 7 s (a broker outage), then heartbeats again.
/// Returns (seconds, scale) every 10 ms until 12 s.
async fn through_an_outage(seed: u64) -> Vec<(f64, f64)> {
    use backflow::feedback::{ProportionalConfig, ProportionalPolicy};
    let r = rate();
    let policy = ProportionalPolicy::new(ProportionalConfig::default(), seed);
    let fleet = FleetConfig {
        fallback: Fallback::Scale(0.5),
        ..FleetConfig::default()
    };
    let mut h = FeedbackHandler::new(r.clone(), ["ibkr"], Box::new(policy), fleet)
        .unwrap()
        .with_wall_clock(WallClock::new());
    let t0 = Instant::now();
    let (mut seq, mut samples) = (0, Vec::new());
    for step in 0..=1_200u64 {
        let ms = step * 10;
        let now = t0 + Duration::from_millis(ms);
        run_until(&mut h, now).await;
        let outage = (2_000..7_000).contains(&ms);
        if ms % 250 == 0 && !outage {
            seq += 1;
            let mut e = event("default", "store-0", seq, Fine, 0, 1_000);
            e.heartbeat_ms = 250;
            h.handle(e);
        }
        samples.push((ms as f64 / 1_000.0, r.scale("ibkr").unwrap()));
    }
    samples
}

#[tokio::test(start_paused = true)]
async fn after_an_outage_scales_rise_no_faster_than_the_ramp_and_spread_by_jitter() {
    let max_rise = backflow::feedback::ProportionalConfig::default().max_rise_per_sec;
    let mut back_at = Vec::new();
    for seed in 1..=5 {
        let samples = through_an_outage(seed).await;
        let at = |t: f64| samples.iter().find(|(s, _)| *s >= t).map(|(_, x)| *x);
        assert_eq!(
            at(1.9),
            Some(1.0),
            "seed {seed}: full rate before the outage"
        );
        assert_eq!(
            at(6.9),
            Some(0.5),
            "seed {seed}: capped while the store is silent"
        );
        // No rise faster than the ramp: over any window, at most `max_rise` per second,
        // plus the one 250 ms step a single signal may justify.
        for (i, (t1, s1)) in samples.iter().enumerate() {
            for (t2, s2) in &samples[i + 1..] {
                let allowed = max_rise * (t2 - t1 + 0.25) + 1e-9;
                assert!(
                    s2 - s1 <= allowed,
                    "seed {seed}: rose {s1} -> {s2} between {t1} s and {t2} s"
                );
            }
        }
        let first_rise = samples
            .iter()
            .find(|(t, s)| *t > 7.0 && *s > 0.5)
            .map(|(t, _)| *t)
            .unwrap_or(f64::INFINITY);
        assert!(at(11.9) == Some(1.0), "seed {seed}: back to full rate");
        back_at.push(first_rise);
    }
    // The fleet's return is spread by the jitter: not every agent rises at the same moment.
    let earliest = back_at.iter().copied().fold(f64::INFINITY, f64::min);
    let latest = back_at.iter().copied().fold(0.0, f64::max);
    assert!(latest - earliest >= 0.05, "rises at {back_at:?}");
    assert!(earliest >= 8.0, "each waits a dwell first: {back_at:?}");
}

fn fair(mut e: FeedbackEvent, standard: f64) -> FeedbackEvent {
    e.fair_rates = Some(FairRates {
        critical: 0.0,
        standard,
        bulk: 0.0,
    });
    e
}

#[tokio::test(start_paused = true)]
async fn fair_rates_of_one_coordinators_instances_add_up_and_missing_ones_fall_back() {
    let r = rate();
    let policy = FairSharePolicy::new(FairShareConfig::default(), ProportionalConfig::default(), 1);
    let mut h = handler(&r, Box::new(policy));
    // 20 rows/s of a base of 100: 0.2, at once (a fall), although the queue is empty.
    h.handle(fair(event("default", "a", 1, Fine, 0, 1000), 20.0));
    assert_eq!(r.scale("ibkr"), Ok(0.2));
    assert_eq!(h.signal().fair.map(|f| f.standard), Some(20.0));
    // A second instance of the same coordinator grants 30 more: the agent may send 50 (a rise,
    // taken within 50 ms).
    h.handle(fair(event("default", "b", 1, Fine, 0, 1000), 30.0));
    assert_eq!(h.signal().fair.map(|f| f.standard), Some(50.0));
    run_until(&mut h, Instant::now() + Duration::from_millis(60)).await;
    assert_eq!(r.scale("ibkr"), Ok(0.5));
    // An instance without fair rates (an older store): the sum would be wrong, so the policy
    // steers by depth, which with every queue empty allows the full rate.
    h.handle(event("default", "c", 1, Fine, 0, 1000));
    assert_eq!(h.signal().fair, None);
    assert_eq!(r.scale("ibkr"), Ok(1.0));
    // It leaves: the rates add up again, and the fall to them is at once.
    let mut bye = event("default", "c", 2, Fine, 0, 1000);
    bye.leaving = true;
    h.handle(bye);
    assert_eq!(r.scale("ibkr"), Ok(0.5));
    // A second coordinator: rates of different stores divide different budgets.
    h.handle(fair(event("other", "x", 1, Fine, 0, 1000), 10.0));
    assert_eq!(h.signal().fair, None);
    assert_eq!(r.scale("ibkr"), Ok(1.0));
}

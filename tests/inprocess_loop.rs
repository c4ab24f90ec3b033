//! The loop closed in one process: a store, the in-process bus and agents.

mod common;

use std::sync::Arc;
use std::time::Duration;

use backflow::bus::{FeedbackPublisher, Interest, MemoryBus};
use backflow::coordinator::{
    CoordinatorConfig, NullSink, OverflowStrategy, Throttle, WriteCoordinator,
};
use backflow::event::BackpressureLevel::Soft;
use backflow::feedback::FeedbackHandler;
use backflow::rate::RateCoordinator;
use backflow::settings::Settings;
use common::{event, within};
use tokio::time::sleep;
use tokio_util::sync::CancellationToken;

async fn wait_for_scale(rate: &RateCoordinator, provider: &str, scale: f64) {
    within(Duration::from_secs(5), "the scale to change", async {
        while rate.scale(provider) != Ok(scale) {
            sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// The seed's integration test: a SOFT event on the bus halves the provider's rate.
#[tokio::test(start_paused = true)]
async fn feedback_inprocess_flow() {
    let (rate, handler) = common::step_agent("ibkr", 100);
    let bus = MemoryBus::default();
    let stop = CancellationToken::new();
    let task =
        tokio::spawn(handler.run(bus.subscribe(Interest::All), stop.clone().cancelled_owned()));
    bus.publish(&event("default", "store-0", 1, Soft, 800, 1000))
        .await
        .unwrap();
    wait_for_scale(&rate, "ibkr", 0.5).await;
    assert_eq!(rate.pressure("ibkr"), Ok(Soft));
    stop.cancel();
    within(Duration::from_secs(1), "handler exit", task)
        .await
        .unwrap();
}

/// Every agent on the bus applies every level change of a real coordinator.
#[tokio::test(start_paused = true)]
async fn every_agent_applies_each_level_change() {
    let bus = MemoryBus::default();
    let sink = Arc::new(common::sink::TestSink::default());
    sink.hold();
    let store: WriteCoordinator<u64> = WriteCoordinator::builder(
        CoordinatorConfig {
            capacity: 100,
            workers: 1,
            batch_size: 200,
            flush_interval_ms: 10_000,
            ..CoordinatorConfig::default()
        },
        sink.clone(),
    )
    .publisher(Arc::new(bus.clone()))
    .start()
    .unwrap();
    let stop = CancellationToken::new();
    let agents: Vec<RateCoordinator> = (0..20)
        .map(|_| {
            let (rate, handler) = common::step_agent("p", 10);
            tokio::spawn(handler.run(bus.subscribe(Interest::All), stop.clone().cancelled_owned()));
            rate
        })
        .collect();
    for (depth, scale) in [(60u64, 0.5), (85, 0.0), (70, 0.5), (10, 1.0)] {
        store.set_external_backlog(depth);
        for rate in &agents {
            wait_for_scale(rate, "p", scale).await;
        }
    }
    stop.cancel();
}

/// With feedback disabled in the settings the agent keeps its base rate and the overloaded
/// store drops rows; with it enabled the same load loses nothing.
#[tokio::test(start_paused = true)]
async fn disabling_feedback_in_settings_runs_at_base_rates() {
    let yaml = "rate_coordinator:\n  providers:\n    ibkr: {capacity: 100, refill_rate: 2000}\n";
    let mut dropped = vec![];
    for enable in [false, true] {
        let settings = Settings::parse(
            yaml,
            "test".into(),
            vec![("MDP_FB_ENABLE_FEEDBACK".into(), enable.to_string())],
        )
        .unwrap();
        let rate = settings.rate_coordinator.build().unwrap();
        let bus = MemoryBus::default();
        let sink = Arc::new(Throttle::new(NullSink, 1_000.0));
        let store: WriteCoordinator<u64> = WriteCoordinator::builder(
            CoordinatorConfig {
                capacity: 2_000,
                overflow: OverflowStrategy::DropOldest,
                batch_size: 100,
                ..CoordinatorConfig::default()
            },
            sink,
        )
        .publisher(Arc::new(bus.clone()))
        .start()
        .unwrap();
        let stop = CancellationToken::new();
        let handler = FeedbackHandler::from_config(
            rate.clone(),
            settings.feedback.providers(&rate),
            &settings.feedback,
            std::slice::from_ref(&settings.agent.coordinator_id),
            1,
        )
        .unwrap();
        if let Some(handler) = handler {
            tokio::spawn(handler.run(bus.subscribe(Interest::All), stop.clone().cancelled_owned()));
        }
        let producer = tokio::spawn({
            let (rate, store, stop) = (rate.clone(), store.clone(), stop.clone());
            async move {
                let mut i = 0u64;
                while !stop.is_cancelled() {
                    rate.acquire("ibkr", 10).await.unwrap();
                    for _ in 0..10 {
                        i += 1;
                        store.submit(i).await.unwrap();
                    }
                }
            }
        });
        sleep(Duration::from_secs(20)).await;
        if !enable {
            assert_eq!(rate.scale("ibkr"), Ok(1.0));
        }
        stop.cancel();
        producer.await.unwrap();
        let report = store.stop(true, Duration::from_secs(30)).await;
        assert_eq!(report.stats.unaccounted(), 0);
        dropped.push(report.stats.dropped());
    }
    assert!(
        dropped[0] > 10_000,
        "without feedback 2x overload drops rows: {dropped:?}"
    );
    assert_eq!(
        dropped[1], 0,
        "with feedback nothing is dropped: {dropped:?}"
    );
}

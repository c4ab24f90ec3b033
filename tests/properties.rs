//! Property tests of the invariants: bounded queue, level consistency, codec round-trip,
//! decoder robustness, and granted rate under any scale sequence.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use backflow::coordinator::{
    CoordinatorConfig, LevelTracker, NullSink, OverflowStrategy, Throttle, Watermark, Watermarks,
    WriteCoordinator,
};
use backflow::event::{
    BackpressureLevel, CoordinatorId, FeedbackEvent, InstanceId, decode, decode_json, encode,
    encode_json,
};
use backflow::rate::{ProviderConfig, RateCoordinator};
use proptest::prelude::*;

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .unwrap()
}

fn token() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,40}"
}

fn level() -> impl Strategy<Value = BackpressureLevel> {
    prop_oneof![
        Just(BackpressureLevel::Ok),
        Just(BackpressureLevel::Soft),
        Just(BackpressureLevel::Hard)
    ]
}

prop_compose! {
    fn any_event()(
        c in token(), i in token(), epoch in any::<u64>(), seq in 1..u64::MAX,
        ts in any::<u64>(), level in level(), depth in any::<u64>(), cap in any::<u64>(),
        reason in proptest::option::of("[ -~]{0,64}"), hb in any::<u32>(), leaving in any::<bool>(),
    ) -> FeedbackEvent {
        let mut e = FeedbackEvent::new(
            CoordinatorId::new(c).unwrap(), InstanceId::new(i).unwrap(),
            epoch, seq, ts, level, depth, cap,
        );
        e.reason = reason;
        e.heartbeat_ms = hb;
        e.leaving = leaving;
        e
    }
}

proptest! {
    #[test]
    fn codec_round_trips(e in any_event()) {
        prop_assert_eq!(decode(&encode(&e)), Ok(e.clone()));
        prop_assert_eq!(decode_json(encode_json(&e).as_bytes()), Ok(e));
    }

    #[test]
    fn decoder_never_panics_on_garbage(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = decode(&bytes);
        let _ = decode_json(&bytes);
    }

    #[test]
    fn decoder_never_panics_on_mutated_events(
        e in any_event(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = encode(&e);
        for (at, v) in flips {
            let i = at.index(bytes.len());
            bytes[i] = v;
        }
        let _ = decode(&bytes);
        let len = cut.index(bytes.len() + 1);
        let _ = decode(&bytes[..len]);
    }

    #[test]
    fn level_is_never_ok_above_low_and_hard_exactly_at_or_above_high(
        capacity in 2u64..10_000,
        low_f in 0.05f64..0.9,
        gap in 0.01f64..0.5,
        depths in proptest::collection::vec(any::<prop::sample::Index>(), 1..200),
    ) {
        let high_f = (low_f + gap).min(1.0);
        let Ok(marks) = Watermarks::new(Watermark::Fraction(low_f), Watermark::Fraction(high_f), capacity) else {
            return Ok(());
        };
        let mut t = LevelTracker::new(marks);
        for d in depths {
            let depth = d.index(capacity as usize + 1) as u64;
            t.update(depth);
            let level = t.current();
            prop_assert!(level != BackpressureLevel::Ok || depth <= marks.low());
            prop_assert_eq!(level == BackpressureLevel::Hard, depth >= marks.high());
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn queue_never_exceeds_capacity_and_level_matches_depth(
        capacity in 4u64..200,
        evict in any::<bool>(),
        bursts in proptest::collection::vec((1usize..120, 0u64..50), 1..30),
    ) {
        paused_runtime().block_on(async move {
            let cfg = CoordinatorConfig {
                capacity,
                overflow: if evict { OverflowStrategy::DropOldest } else { OverflowStrategy::Error },
                workers: 1,
                batch_size: 7,
                flush_interval_ms: 5,
                heartbeat_interval_ms: 0,
                ..CoordinatorConfig::default()
            };
            let marks = Watermarks::new(cfg.low_watermark, cfg.high_watermark, capacity).unwrap();
            let sink = Arc::new(Throttle::new(NullSink, 500.0));
            let store: WriteCoordinator<u64> = WriteCoordinator::builder(cfg, sink).start().unwrap();
            let mut n = 0;
            for (burst, pause_ms) in bursts {
                for _ in 0..burst {
                    n += 1;
                    let _ = store.try_submit(n);
                    let h = store.health();
                    prop_assert!(h.queued <= capacity);
                    prop_assert_eq!(h.level, marks.level(h.depth));
                }
                tokio::time::sleep(Duration::from_millis(pause_ms)).await;
            }
            let report = store.stop(true, Duration::from_secs(60)).await;
            prop_assert_eq!(report.stats.unaccounted(), 0);
            prop_assert_eq!(report.stats.accepted + report.stats.refused_full, n);
            Ok(())
        })?;
    }

    #[test]
    fn granted_rate_matches_base_times_scale_for_any_scale_sequence(
        base in 20.0f64..2_000.0,
        steps in proptest::collection::vec((1u32..=20, 1u64..=4), 1..12),
    ) {
        paused_runtime().block_on(async move {
            let rate = RateCoordinator::new();
            let capacity = (base / 10.0).max(1.0) as u32;
            rate.register_provider("p", ProviderConfig::new(capacity, base)).unwrap();
            let granted = Arc::new(AtomicU64::new(0));
            for _ in 0..2 {
                let (rate, granted) = (rate.clone(), granted.clone());
                tokio::spawn(async move {
                    while rate.acquire("p", 1).await.is_ok() {
                        granted.fetch_add(1, Relaxed);
                    }
                });
            }
            tokio::time::sleep(Duration::from_secs(1)).await; // spend the first burst
            let before = granted.load(Relaxed);
            let mut expected = 0.0;
            for (twentieths, secs) in &steps {
                let scale = f64::from(*twentieths) / 20.0;
                rate.set_budget_scale("p", scale).unwrap();
                tokio::time::sleep(Duration::from_secs(*secs)).await;
                expected += base * scale * *secs as f64;
            }
            let got = (granted.load(Relaxed) - before) as f64;
            // 1% plus one item per change for timer rounding at the boundaries.
            let slack = expected * 0.01 + steps.len() as f64 + 1.0;
            prop_assert!((got - expected).abs() <= slack, "granted {got}, expected {expected}");
            Ok(())
        })?;
    }
}

//! The indexed fleet view agrees with the scan-everything one it replaced, event by event and
//! expiry by expiry, under any sequence of events, goodbyes and elapsed time.

use std::time::Duration;

use backflow::clock::WallClock;
use backflow::event::{BackpressureLevel, CoordinatorId, FeedbackEvent, InstanceId};
use backflow::fleet::{Fallback, FleetConfig, FleetView};
use proptest::prelude::*;
use tokio::time::Instant;

#[path = "common/naive_fleet.rs"]
mod naive_fleet;

use naive_fleet::NaiveFleetView;

/// Longest heartbeat the events state.
const MAX_HEARTBEAT_MS: u64 = 5_000;

#[derive(Debug, Clone)]
enum Op {
    Event {
        coordinator: u8,
        instance: u8,
        epoch: u64,
        seq: u64,
        /// Timestamp relative to the local wall clock.
        offset_ms: i64,
        level: BackpressureLevel,
        depth: u64,
        capacity: u64,
        heartbeat_ms: u32,
        leaving: bool,
    },
    /// Time passes, then both views expire.
    Wait(u64),
}

fn level() -> impl Strategy<Value = BackpressureLevel> {
    prop_oneof![
        Just(BackpressureLevel::Ok),
        Just(BackpressureLevel::Soft),
        Just(BackpressureLevel::Hard)
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let event = (
        (0u8..3, 0u8..3, 0u64..3, 0u64..6, -20_000i64..20_000),
        (level(), 0u64..2_000, prop_oneof![Just(0u64), Just(1_000)]),
        (
            prop_oneof![Just(0u32), Just(250), Just(1_000), Just(5_000)],
            proptest::bool::weighted(0.15),
        ),
    )
        .prop_map(
            |(
                (coordinator, instance, epoch, seq, offset_ms),
                (level, depth, capacity),
                (heartbeat_ms, leaving),
            )| Op::Event {
                coordinator,
                instance,
                epoch,
                seq,
                offset_ms,
                level,
                depth,
                capacity,
                heartbeat_ms,
                leaving,
            },
        );
    prop_oneof![3 => event, 1 => (0u64..6_000).prop_map(Op::Wait)]
}

fn config() -> impl Strategy<Value = FleetConfig> {
    (
        1u32..4,
        prop_oneof![Just(0u64), Just(15_000)],
        prop_oneof![Just(0u64), Just(30_000)],
        prop_oneof![Just(Fallback::HoldLast), Just(Fallback::Scale(0.5))],
        prop_oneof![Just(2_000u64), Just(10_000), Just(300_000)],
        prop_oneof![Just(3_000u64), Just(900_000)],
    )
        .prop_map(
            |(missed, age, skew, fallback, forget, remember)| FleetConfig {
                missed_heartbeats: missed,
                default_heartbeat_ms: 1_000,
                max_event_age_ms: age,
                max_clock_skew_ms: skew,
                fallback,
                forget_after_ms: forget,
                remember_departed_ms: remember,
            },
        )
}

fn event(op: &Op, wall: &WallClock) -> Option<FeedbackEvent> {
    let Op::Event {
        coordinator,
        instance,
        epoch,
        seq,
        offset_ms,
        level,
        depth,
        capacity,
        heartbeat_ms,
        leaving,
    } = *op
    else {
        return None;
    };
    let ts = wall.now_ms().saturating_add_signed(offset_ms);
    let mut e = FeedbackEvent::new(
        CoordinatorId::new(format!("c{coordinator}")).ok()?,
        InstanceId::new(format!("i{instance}")).ok()?,
        epoch,
        seq,
        ts,
        level,
        depth,
        capacity,
    );
    e.heartbeat_ms = heartbeat_ms;
    e.leaving = leaving;
    Some(e)
}

type Seen = Vec<(String, String, (u64, u64), bool)>;

fn seen<'a>(instances: impl Iterator<Item = (&'a FeedbackEvent, bool)>) -> Seen {
    let mut all: Seen = instances
        .map(|(e, silent)| {
            let ids = (e.coordinator_id.to_string(), e.instance_id.to_string());
            (ids.0, ids.1, e.order_key(), silent)
        })
        .collect();
    all.sort();
    all
}

fn agree(indexed: &FleetView, naive: &NaiveFleetView, exact_expiry: bool) -> Result<(), String> {
    let check = |what: &str, ok: bool| if ok { Ok(()) } else { Err(what.to_owned()) };
    check("signal", indexed.signal() == naive.signal())?;
    check("cap", indexed.cap() == naive.cap())?;
    check("len", indexed.len() == naive.len())?;
    check("silent", indexed.silent() == naive.silent())?;
    check(
        "instances",
        seen(indexed.instances()) == seen(naive.instances()),
    )?;
    for c in 0..3 {
        let Ok(id) = CoordinatorId::new(format!("c{c}")) else {
            return Err("id".into());
        };
        let own = seen(naive.instances().filter(|(e, _)| e.coordinator_id == id));
        check("instances_of", seen(indexed.instances_of(&id)) == own)?;
        let known = !own.is_empty();
        check("knows", indexed.knows(&id) == known)?;
    }
    let (a, b) = (indexed.next_expiry(), naive.next_expiry());
    // With a forget_after_ms shorter than some heartbeat, the indexed view wakes when the
    // instance is forgotten rather than at the later silence the old one waited for.
    check(
        "next_expiry",
        if exact_expiry {
            a == b
        } else {
            a.is_some() == b.is_some() && a <= b
        },
    )
}

fn run(config: FleetConfig, ops: Vec<Op>) -> Result<(), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .map_err(|e| e.to_string())?;
    rt.block_on(async move {
        let wall = WallClock::anchored_at(Duration::from_secs(1_000_000));
        let exact_expiry = config.forget_after_ms
            >= MAX_HEARTBEAT_MS.saturating_mul(u64::from(config.missed_heartbeats));
        let mut indexed = FleetView::new(config.clone(), wall);
        let mut naive = NaiveFleetView::new(config, wall);
        for (step, op) in ops.iter().enumerate() {
            let at = |what: String| format!("step {step} ({op:?}): {what}");
            match (op, event(op, &wall)) {
                (Op::Wait(ms), _) => {
                    tokio::time::advance(Duration::from_millis(*ms)).await;
                    let now = Instant::now();
                    let (a, b) = (indexed.expire(now), naive.expire(now));
                    if a != b {
                        return Err(at(format!("expire changed: {a} vs {b}")));
                    }
                }
                (_, Some(e)) => {
                    let now = Instant::now();
                    let (a, b) = (indexed.observe(e.clone(), now), naive.observe(e, now));
                    if a != b {
                        return Err(at(format!("outcome {a:?} vs {b:?}")));
                    }
                }
                (_, None) => return Err(at("bad ids".into())),
            }
            agree(&indexed, &naive, exact_expiry).map_err(at)?;
        }
        Ok(())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn indexed_view_agrees_with_the_scanning_one(
        config in config(),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        if let Err(e) = run(config, ops) {
            prop_assert!(false, "{}", e);
        }
    }
}

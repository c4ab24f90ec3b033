//! The fleet view's cost per event at 100, 1,000 and 10,000 instances (3 per coordinator),
//! against the scan-everything view it replaced, in the same run.
//!
//! One event is what the bridge does per delivery: observe it, build its coordinator's state,
//! and ask when the next expiry is due; an agent's turn is observe, merge, next expiry.
//!
//! `cargo bench --bench fleet_view`

use std::hint::black_box;
use std::time::Duration;

use backflow::bridge::FleetState;
use backflow::clock::WallClock;
use backflow::event::{BackpressureLevel, CoordinatorId, FeedbackEvent, InstanceId};
use backflow::fleet::{CoordinatorView, DemandTotals, FleetConfig, FleetView, ScalingConfig};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use tokio::time::Instant;

#[path = "../tests/common/naive_fleet.rs"]
mod naive_fleet;

use naive_fleet::NaiveFleetView;

const SIZES: [usize; 3] = [100, 1_000, 10_000];
const PER_COORDINATOR: usize = 3;

/// `n` instances, three per coordinator, each sending heartbeats every 250 ms.
struct Fleet {
    ids: Vec<(CoordinatorId, InstanceId)>,
    wall: WallClock,
    seq: u64,
    next: usize,
}

impl Fleet {
    fn new(n: usize) -> Self {
        let ids = (0..n)
            .map(|i| {
                let c = CoordinatorId::new(format!("coord-{}", i / PER_COORDINATOR));
                let p = InstanceId::new(format!("store-{}", i % PER_COORDINATOR));
                (c.expect("valid id"), p.expect("valid id"))
            })
            .collect();
        Self {
            ids,
            wall: WallClock::new(),
            seq: 0,
            next: 0,
        }
    }

    /// The next instance's next heartbeat, round robin.
    fn event(&mut self) -> FeedbackEvent {
        if self.next == 0 {
            self.seq += 1;
        }
        let (c, p) = self.ids[self.next].clone();
        self.next = (self.next + 1) % self.ids.len();
        let depth = (self.seq * 37 + self.next as u64 * 11) % 10_000;
        let level = match depth {
            0..5_000 => BackpressureLevel::Ok,
            5_000..8_000 => BackpressureLevel::Soft,
            _ => BackpressureLevel::Hard,
        };
        let mut e = FeedbackEvent::new(c, p, 1, self.seq, self.wall.now_ms(), level, depth, 10_000);
        e.heartbeat_ms = 250;
        e
    }

    fn len(&self) -> usize {
        self.ids.len()
    }
}

fn config() -> FleetConfig {
    FleetConfig::bridge()
}

fn bridge(c: &mut Criterion) {
    let mut g = c.benchmark_group("fleet_view/bridge_event");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(30);
    for n in SIZES {
        let mut fleet = Fleet::new(n);
        let mut state = FleetState::new(config(), fleet.wall);
        for _ in 0..fleet.len() {
            state.observe(fleet.event(), Instant::now());
        }
        g.bench_with_input(BenchmarkId::new("indexed", n), &n, |b, _| {
            b.iter(|| {
                let e = fleet.event();
                let id = e.coordinator_id.clone();
                black_box(state.observe(e, Instant::now()));
                black_box(state.view(&id));
                black_box(state.next_expiry())
            })
        });

        let mut fleet = Fleet::new(n);
        let mut naive = NaiveFleetView::new(config(), fleet.wall);
        for _ in 0..fleet.len() {
            naive.observe(fleet.event(), Instant::now());
        }
        let scaling = ScalingConfig::default();
        g.bench_with_input(BenchmarkId::new("scan_all", n), &n, |b, _| {
            b.iter(|| {
                let e = fleet.event();
                let id = e.coordinator_id.clone();
                black_box(naive.observe(e, Instant::now()));
                // What `FleetState::view` did: filter every instance for this coordinator.
                let own = naive.instances().filter(|(e, _)| e.coordinator_id == id);
                let view = CoordinatorView::of(id.clone(), own, None)
                    .map(|v| v.with_demand(DemandTotals::default(), &scaling));
                black_box(view);
                black_box(naive.next_expiry())
            })
        });
    }
    g.finish();
}

fn agent(c: &mut Criterion) {
    let mut g = c.benchmark_group("fleet_view/agent_event");
    g.throughput(Throughput::Elements(1));
    g.measurement_time(Duration::from_secs(4));
    g.sample_size(30);
    let agent = FleetConfig::default;
    for n in SIZES {
        let mut fleet = Fleet::new(n);
        let mut view = FleetView::new(agent(), fleet.wall);
        for _ in 0..fleet.len() {
            view.observe(fleet.event(), Instant::now());
        }
        g.bench_with_input(BenchmarkId::new("indexed", n), &n, |b, _| {
            b.iter(|| {
                black_box(view.observe(fleet.event(), Instant::now()));
                black_box(view.signal());
                black_box(view.silent());
                black_box(view.next_expiry())
            })
        });

        let mut fleet = Fleet::new(n);
        let mut naive = NaiveFleetView::new(agent(), fleet.wall);
        for _ in 0..fleet.len() {
            naive.observe(fleet.event(), Instant::now());
        }
        g.bench_with_input(BenchmarkId::new("scan_all", n), &n, |b, _| {
            b.iter(|| {
                black_box(naive.observe(fleet.event(), Instant::now()));
                black_box(naive.signal());
                black_box(naive.silent());
                black_box(naive.next_expiry())
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bridge, agent);
criterion_main!(benches);

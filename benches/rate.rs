//! The `acquire` fast path (a grant that does not wait) against a bare governor check, in
//! the same run: `governor_check` is `RateLimiter::direct(..).check()` on governor's default
//! clock; `governor_check_tokio_clock` the same on backflow's `TokioClock`; `acquire` is
//! `RateCoordinator::acquire(provider, 1)` at scale 1 and at scale 0.37 (fractional cell
//! charges). `clock/*` shows what one clock read costs: tokio's `test-util` feature (enabled
//! in every build of this crate through async-nats → tryhard) adds an atomic load to
//! `tokio::time::Instant::now` as long as no runtime has paused time.
//!
//! `cargo bench --bench rate`

use std::num::NonZeroU32;
use std::time::Duration;

use backflow::clock::TokioClock;
use backflow::rate::{ProviderConfig, RateCoordinator};
use criterion::{Criterion, criterion_group, criterion_main};
use governor::{Quota, RateLimiter};

const BATCH: u64 = 10_000;

fn fast_path(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let mut g = c.benchmark_group("acquire_fast_path");
    g.measurement_time(Duration::from_secs(5));

    let quota = Quota::per_second(NonZeroU32::MAX);
    let bare = RateLimiter::direct(quota);
    g.bench_function("governor_check", |b| {
        b.iter(|| std::hint::black_box(bare.check()))
    });
    let tokio_clocked =
        rt.block_on(async { RateLimiter::direct_with_clock(quota, TokioClock::new()) });
    g.bench_function("governor_check_tokio_clock", |b| {
        b.iter(|| std::hint::black_box(tokio_clocked.check()))
    });

    let rate = RateCoordinator::new();
    // 3e8/s never makes the bench wait, and its cells per item are fractional (3.33), as
    // for real rates: the carry is exercised at scale 1 too.
    rate.register_provider("ibkr", ProviderConfig::new(1_000_000, 3e8))
        .expect("provider");
    rate.register_provider("scaled", ProviderConfig::new(1_000_000, 3e8))
        .expect("provider");
    rate.set_budget_scale("scaled", 0.37).expect("scale");
    for (name, provider) in [("acquire", "ibkr"), ("acquire_scaled", "scaled")] {
        g.bench_function(name, |b| {
            // Amortise block_on over a batch of acquires that never wait.
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = tokio::time::Instant::now();
                    let mut left = iters;
                    while left > 0 {
                        let n = left.min(BATCH);
                        for _ in 0..n {
                            rate.acquire(provider, 1).await.expect("granted");
                        }
                        left -= n;
                    }
                    start.elapsed()
                })
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("clock");
    g.bench_function("tokio_instant_now", |b| {
        b.iter(|| std::hint::black_box(tokio::time::Instant::now()))
    });
    #[allow(clippy::disallowed_types)] // the baseline of the line above
    g.bench_function("std_instant_now", |b| {
        b.iter(|| std::hint::black_box(std::time::Instant::now()))
    });
    g.finish();
}

criterion_group!(benches, fast_path);
criterion_main!(benches);

//! WriteCoordinator throughput: items submitted by one producer until a `NullSink` has
//! written them, against the same items through a raw tokio bounded mpsc (`send` one by one,
//! `recv_many` in batches of the same size) in the same run.
//!
//! `cargo bench --bench coordinator`

use std::sync::Arc;
use std::time::Duration;

use backflow::coordinator::{CoordinatorConfig, NullSink, OverflowStrategy, WriteCoordinator};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tokio::runtime::Runtime;
use tokio::time::Instant;

const ITEMS: u64 = 200_000;
const CAPACITY: usize = 10_000;
const BATCH: usize = 500;

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

fn config() -> CoordinatorConfig {
    CoordinatorConfig {
        capacity: CAPACITY as u64,
        overflow: OverflowStrategy::Block,
        workers: 2,
        batch_size: BATCH,
        flush_interval_ms: 1,
        heartbeat_interval_ms: 0,
        ..CoordinatorConfig::default()
    }
}

/// One producer submits `ITEMS` (waiting for room when full); returns when all are written.
async fn coordinator_round(store: &WriteCoordinator<u64>) {
    let target = store.stats().written + ITEMS;
    let producer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..ITEMS {
                store.submit(i).await.expect("open");
            }
        })
    };
    producer.await.expect("producer");
    while store.stats().written < target {
        tokio::task::yield_now().await;
    }
}

/// The same through a raw bounded channel and one batching consumer.
async fn mpsc_round() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<u64>(CAPACITY);
    let consumer = tokio::spawn(async move {
        let mut buf = Vec::with_capacity(BATCH);
        let mut n = 0u64;
        while n < ITEMS {
            buf.clear();
            if rx.recv_many(&mut buf, BATCH).await == 0 {
                break;
            }
            n += buf.len() as u64;
            std::hint::black_box(&buf);
        }
        n
    });
    for i in 0..ITEMS {
        tx.send(i).await.expect("open");
    }
    assert_eq!(consumer.await.expect("consumer"), ITEMS);
}

fn throughput(c: &mut Criterion) {
    let rt = runtime();
    let store: WriteCoordinator<u64> = rt.block_on(async {
        WriteCoordinator::builder(config(), Arc::new(NullSink))
            .start()
            .expect("store")
    });
    let mut g = c.benchmark_group("submit_to_written");
    g.throughput(Throughput::Elements(ITEMS));
    g.sample_size(20);
    g.measurement_time(Duration::from_secs(8));
    g.bench_function("tokio_mpsc_bounded", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    mpsc_round().await;
                }
                start.elapsed()
            })
        })
    });
    g.bench_function("write_coordinator", |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    coordinator_round(&store).await;
                }
                start.elapsed()
            })
        })
    });
    g.finish();
    rt.block_on(store.stop(true, Duration::from_secs(5)));
}

criterion_group!(benches, throughput);
criterion_main!(benches);

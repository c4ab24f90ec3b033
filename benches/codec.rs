//! Feedback event encode/decode, each beside its floor in the same run: `rmp_serde` on a
//! plain struct of the same named fields without validation (what any reader pays to parse
//! the bytes), so the ratio is the cost of backflow's typed, validated decode.
//!
//! `cargo bench --bench codec`

use backflow::event::{
    BackpressureLevel, CoordinatorId, FeedbackEvent, InstanceId, decode, decode_json, encode,
    encode_json,
};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde::{Deserialize, Serialize};

/// The same wire fields as plain strings and numbers: no ids, levels or ranges checked.
#[derive(Serialize, Deserialize)]
struct Plain {
    version: u16,
    coordinator_id: String,
    instance_id: String,
    epoch: u64,
    seq: u64,
    timestamp_ms: u64,
    level: String,
    queue_depth: u64,
    capacity: u64,
    reason: Option<String>,
    heartbeat_ms: u32,
}

fn event() -> FeedbackEvent {
    let mut e = FeedbackEvent::new(
        CoordinatorId::new("orders-eu-1").expect("id"),
        InstanceId::new("store-7f9c4d-x2k8p").expect("id"),
        1_764_000_000_000_000,
        123_456,
        1_764_000_000_123,
        BackpressureLevel::Soft,
        6_250,
        10_000,
    )
    .with_reason("heartbeat");
    e.heartbeat_ms = 250;
    e
}

fn plain(e: &FeedbackEvent) -> Plain {
    Plain {
        version: e.version,
        coordinator_id: e.coordinator_id.to_string(),
        instance_id: e.instance_id.to_string(),
        epoch: e.epoch,
        seq: e.seq,
        timestamp_ms: e.timestamp_ms,
        level: e.level.as_str().to_owned(),
        queue_depth: e.queue_depth,
        capacity: e.capacity,
        reason: e.reason.clone(),
        heartbeat_ms: e.heartbeat_ms,
    }
}

fn codec(c: &mut Criterion) {
    let e = event();
    let bytes = encode(&e);
    let json = encode_json(&e);
    let p = plain(&e);
    println!(
        "typical event: {} bytes MessagePack (named fields), {} bytes JSON",
        bytes.len(),
        json.len()
    );
    let mut g = c.benchmark_group("codec");
    g.throughput(Throughput::Elements(1));
    g.bench_function("encode/plain_rmp_named", |b| {
        b.iter(|| std::hint::black_box(rmp_serde::to_vec_named(std::hint::black_box(&p))))
    });
    g.bench_function("encode/feedback_event", |b| {
        b.iter(|| std::hint::black_box(encode(std::hint::black_box(&e))))
    });
    g.bench_function("decode/plain_rmp", |b| {
        b.iter(|| {
            std::hint::black_box(rmp_serde::from_slice::<Plain>(std::hint::black_box(&bytes)))
        })
    });
    g.bench_function("decode/feedback_event", |b| {
        b.iter(|| std::hint::black_box(decode(std::hint::black_box(&bytes))))
    });
    g.bench_function("encode/feedback_event_json", |b| {
        b.iter(|| std::hint::black_box(encode_json(std::hint::black_box(&e))))
    });
    g.bench_function("decode/feedback_event_json", |b| {
        b.iter(|| std::hint::black_box(decode_json(std::hint::black_box(json.as_bytes()))))
    });
    g.finish();
}

criterion_group!(benches, codec);
criterion_main!(benches);

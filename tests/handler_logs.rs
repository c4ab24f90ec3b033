//! The handler logs each adjustment (alone in its own test binary: tracing caches callsite
//! interest per process, and other tests running in parallel without a subscriber would race
//! with the scoped one installed here).

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use backflow::event::BackpressureLevel::Soft;
use backflow::feedback::{FeedbackHandler, StepPolicy};
use backflow::fleet::FleetConfig;
use backflow::rate::{ProviderConfig, RateCoordinator};
use common::event;

/// Collects everything the fmt subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn handle_logs_adjustment() {
    let r = RateCoordinator::new();
    r.register_provider("ibkr", ProviderConfig::new(100, 100.0))
        .unwrap();
    let mut h = FeedbackHandler::new(
        r.clone(),
        ["ibkr"],
        Box::new(StepPolicy::default()),
        FleetConfig::default(),
    )
    .unwrap();
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        h.handle(event("default", "a", 1, Soft, 800, 1000));
        h.handle(event("default", "a", 2, Soft, 810, 1000)); // no change: no log
    });
    let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("Feedback adjusted the rate scale."))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains("level=soft") && lines[0].contains("to=0.5"),
        "{text}"
    );
    assert_eq!(
        h.stats()
            .adjustments
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
}

//! Counters of the HTTP receiver's answers, shared with whoever reads them, and their probe.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use crate::bus::read_refusals;
use crate::telemetry::{Probe, Readings};

/// What the receiver answered, one counter per kind of answer.
#[derive(Debug, Default)]
pub struct HttpReceiverStats {
    /// Events the handler applied, or that said goodbye (202).
    pub accepted: AtomicU64,
    /// Events the handler ignored as duplicate, out of order or too old (409).
    pub ignored: AtomicU64,
    /// Requests without the right bearer token (401).
    pub unauthorized: AtomicU64,
    /// Requests with a body over the limit (413).
    pub too_large: AtomicU64,
    /// Requests with a content type other than MessagePack or JSON (415).
    pub unsupported_media_type: AtomicU64,
    /// Bodies that are not a valid event (400).
    pub invalid: AtomicU64,
    /// Events refused because the handler's queue was full (503).
    pub queue_full: AtomicU64,
    /// Events the handler did not answer: it has stopped, or it took too long (503).
    pub unanswered: AtomicU64,
}

impl HttpReceiverStats {
    /// Requests refused before reaching the handler, for any reason.
    pub fn rejected(&self) -> u64 {
        [
            &self.unauthorized,
            &self.too_large,
            &self.unsupported_media_type,
            &self.invalid,
            &self.queue_full,
        ]
        .iter()
        .map(|c| c.load(Relaxed))
        .sum()
    }
}

impl Probe for HttpReceiverStats {
    fn read(&self, out: &mut Readings) {
        read_refusals(
            out,
            "http",
            &self.invalid,
            &[
                ("unauthorized", &self.unauthorized),
                ("too_large", &self.too_large),
                ("unsupported_media_type", &self.unsupported_media_type),
                ("queue_full", &self.queue_full),
                ("unanswered", &self.unanswered),
            ],
        );
    }
}

//! Where batches go: the `Sink` trait, the dead-letter sink, and small built-in sinks.

use std::sync::Mutex;

use async_trait::async_trait;

/// Whether a failed write is worth retrying.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkErrorKind {
    /// The sink may accept the same batch later (timeouts, lost connections, outages).
    Transient,
    /// The batch will never be accepted (constraint violations, bad data): dead-letter it now.
    Permanent,
}

/// A failed batch write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind:?} sink error: {message}")]
pub struct SinkError {
    /// Retry or not.
    pub kind: SinkErrorKind,
    /// What happened.
    pub message: String,
}

impl SinkError {
    /// A retryable failure.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: SinkErrorKind::Transient,
            message: message.into(),
        }
    }

    /// A failure that retrying cannot fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: SinkErrorKind::Permanent,
            message: message.into(),
        }
    }
}

/// Writes batches of items; the coordinator's workers call it.
///
/// A write either commits the whole batch or fails; on a transient failure the same batch is
/// offered again, so writes should be idempotent.
#[async_trait]
pub trait Sink<T>: Send + Sync + 'static {
    /// Writes one batch.
    async fn write(&self, batch: &[T]) -> Result<(), SinkError>;
}

/// Why items went to the dead-letter sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// Transient failures outlasted `retry.max_attempts`.
    RetriesExhausted,
    /// The sink refused the batch permanently.
    Rejected,
    /// The coordinator stopped before the items could be written.
    Shutdown,
}

impl DeadLetterReason {
    /// Label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RetriesExhausted => "retries_exhausted",
            Self::Rejected => "rejected",
            Self::Shutdown => "shutdown",
        }
    }
}

/// Receives items the sink could not take, so that none is lost silently.
#[async_trait]
pub trait DeadLetterSink<T>: Send + Sync + 'static {
    /// Stores `items`; an error here means they are counted as dropped
    /// (`dead_letter_failed`).
    async fn dead_letter(&self, items: Vec<T>, reason: DeadLetterReason) -> Result<(), SinkError>;
}

/// The default dead-letter sink: logs a warning per batch. The items are counted in the
/// coordinator's `dead_lettered` statistics but not kept.
#[derive(Debug, Default, Clone, Copy)]
pub struct LogDeadLetter;

#[async_trait]
impl<T: Send + 'static> DeadLetterSink<T> for LogDeadLetter {
    async fn dead_letter(&self, items: Vec<T>, reason: DeadLetterReason) -> Result<(), SinkError> {
        tracing::warn!(
            items = items.len(),
            reason = reason.as_str(),
            "Dead-lettered a batch."
        );
        Ok(())
    }
}

/// Keeps everything it receives in memory: for tests, demos, and as a dead-letter store.
#[derive(Debug)]
pub struct MemorySink<T> {
    items: Mutex<Vec<T>>,
}

impl<T> Default for MemorySink<T> {
    fn default() -> Self {
        Self {
            items: Mutex::new(Vec::new()),
        }
    }
}

impl<T: Clone> MemorySink<T> {
    /// An empty sink.
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything received so far, in order.
    pub fn items(&self) -> Vec<T> {
        self.lock().clone()
    }

    /// How many items were received.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Whether nothing was received.
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<T>> {
        // A panic while holding this lock leaves a valid Vec behind.
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl<T: Clone + Send + Sync + 'static> Sink<T> for MemorySink<T> {
    async fn write(&self, batch: &[T]) -> Result<(), SinkError> {
        self.lock().extend_from_slice(batch);
        Ok(())
    }
}

#[async_trait]
impl<T: Clone + Send + Sync + 'static> DeadLetterSink<T> for MemorySink<T> {
    async fn dead_letter(&self, items: Vec<T>, _: DeadLetterReason) -> Result<(), SinkError> {
        self.lock().extend(items);
        Ok(())
    }
}

/// Accepts and discards every batch: the fastest possible sink, for benchmarks.
#[derive(Debug, Default, Clone, Copy)]
pub struct NullSink;

#[async_trait]
impl<T: Sync + 'static> Sink<T> for NullSink {
    async fn write(&self, _: &[T]) -> Result<(), SinkError> {
        Ok(())
    }
}

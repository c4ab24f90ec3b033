//! The store side: a bounded write queue with watermarks, batching workers, retries, a circuit
//! breaker and a dead-letter sink, publishing its backpressure level.

mod builder;
mod config;
mod emitter;
mod fair_rate;
mod handle;
mod health;
mod queue;
mod retry;
mod service_rate;
mod sink;
mod starvation;
mod stats;
mod throttle;
mod watermark;
mod worker;

pub use builder::Builder;
pub use config::{BreakerConfig, CoordinatorConfig, OverflowStrategy};
pub use handle::{DropCallback, StopBounds, StopReport, SubmitError, WriteCoordinator};
pub use health::Health;
pub use retry::RetryConfig;
pub use sink::{
    DeadLetterReason, DeadLetterSink, LogDeadLetter, MemorySink, NullSink, Sink, SinkError,
    SinkErrorKind,
};
pub use stats::{DropReason, StatsSnapshot};
pub use throttle::{Outage, Throttle};
pub use watermark::{LevelTracker, Watermark, Watermarks};

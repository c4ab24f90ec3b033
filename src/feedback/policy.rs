//! The `Policy` trait: how an agent turns the fleet's backpressure into a rate scale.

use tokio::time::Instant;

use crate::fleet::Signal;

/// A policy's answer: the scale to apply now, and when to be asked again if nothing new
/// arrives (for dwell timers and gradual ramps).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Decision {
    /// Scale within [0, 1].
    pub scale: f64,
    /// When to call [`Policy::on_tick`], if ever.
    pub wake_at: Option<Instant>,
}

impl Decision {
    /// A scale with no timer.
    pub fn hold(scale: f64) -> Self {
        Self {
            scale,
            wake_at: None,
        }
    }
}

/// Maps the fleet's signal to a rate scale. Policies are pure state machines: they do no I/O
/// and read time only from the `now` they are given, so they are tested without a runtime.
pub trait Policy: Send + 'static {
    /// A short name for logs and metrics.
    fn name(&self) -> &'static str;

    /// The agent's base rate (rows per second, before any scale), for policies that turn an
    /// explicit rate into a scale. Called once when the handler is built.
    fn set_base_rate(&mut self, _rows_per_sec: f64) {}

    /// A new merged signal (an event was applied or an instance expired).
    fn on_signal(&mut self, signal: &Signal, now: Instant) -> Decision;

    /// The time asked for in the last decision has come.
    fn on_tick(&mut self, now: Instant) -> Decision;
}

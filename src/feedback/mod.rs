//! The pipeline side's reaction to feedback: ordering and merging events, and policies that
//! turn them into rate scales.

mod fleet;
mod handler;
mod hysteresis;
mod policy;
mod step;

pub use fleet::{Fallback, FleetConfig, FleetView, Observed};
pub use handler::{FeedbackHandler, HandlerStats};
pub use hysteresis::{HysteresisConfig, HysteresisPolicy};
pub use policy::{Decision, Policy, Signal};
pub use step::StepPolicy;

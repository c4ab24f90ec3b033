//! The pipeline side's reaction to feedback: policies that turn the fleet's merged signal into
//! rate scales (the default, [`ProportionalPolicy`], scales with the store's queue depth;
//! [`HysteresisPolicy`] and the predecessor's [`StepPolicy`] remain available), and the
//! [`FeedbackHandler`] that applies them to a rate coordinator.

mod config;
mod handler;
mod hysteresis;
mod policy;
mod proportional;
mod stats;
mod step;

pub use config::{FeedbackConfig, PolicyKind};
pub use handler::FeedbackHandler;
pub use hysteresis::{HysteresisConfig, HysteresisPolicy};
pub use policy::{Decision, Policy};
pub use proportional::{ProportionalConfig, ProportionalPolicy};
pub use stats::HandlerStats;
pub use step::StepPolicy;

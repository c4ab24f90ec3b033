//! The pipeline side's reaction to feedback: ordering and merging events, and policies that
//! turn them into rate scales (the default, [`ProportionalPolicy`], scales with the store's queue
//! depth; [`HysteresisPolicy`] and the seed's [`StepPolicy`] remain available).

mod fleet;
mod handler;
mod hysteresis;
mod policy;
mod proportional;
mod step;

pub use fleet::{Fallback, FleetConfig, FleetView, Observed};
pub use handler::{FeedbackHandler, HandlerStats};
pub use hysteresis::{HysteresisConfig, HysteresisPolicy};
pub use policy::{Decision, Policy, Signal};
pub use proportional::{ProportionalConfig, ProportionalPolicy};
pub use step::StepPolicy;

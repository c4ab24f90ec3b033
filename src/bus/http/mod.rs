//! Feedback over HTTP: the `POST /feedback` receiver and the matching emitter.

mod answer;
mod auth;
mod body;
mod config;
mod emitter;
mod error;
mod receiver;
mod seed_json;
mod stats;

pub(crate) use body::{BodyError, Decoded, Encoding, parse_body};
pub use config::{HttpConfigError, HttpEmitterConfig, HttpReceiverConfig};
pub use emitter::HttpPublisher;
pub use error::HttpError;
pub use receiver::HttpReceiver;
pub use stats::HttpReceiverStats;

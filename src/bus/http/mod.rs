//! Feedback over HTTP: the `POST /feedback` receiver and the matching emitter.

mod answer;
mod auth;
mod body;
mod config;
mod emitter;
mod error;
mod legacy_json;
mod receiver;
mod stats;

pub(crate) use body::{BodyError, Decoded, Encoding, parse_body};
pub use config::{HttpConfig, HttpEmitterConfig, HttpReceiverConfig};
pub use emitter::{HttpPublisher, PostError, PostFailures};
pub use error::HttpError;
pub use receiver::HttpReceiver;
pub use stats::HttpReceiverStats;

//! Feedback over NATS: core subjects for live events, a JetStream stream for last values.

mod options;
mod publisher;
mod server;
mod signing;
mod state;
mod subjects;
mod subscriber;

pub use options::{NatsConnection, NatsOptions, Secret, TlsOptions};
pub use publisher::NatsPublisher;
pub use server::{ServerFeature, ServerVersion};
pub use signing::{KEY_HEADER, Refusal, SIGNATURE_HEADER, Signer, SigningOptions, Verifier};
pub use state::ensure_state_stream;
pub use subjects::Subjects;
pub use subscriber::{NatsSubscriber, SubscriberStats};

/// What can go wrong setting up the NATS transport.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NatsError {
    /// Invalid settings.
    #[error("invalid NATS setting: {0}")]
    Config(String),
    /// No server could be reached.
    #[error("cannot connect to NATS: {0}")]
    Connect(String),
    /// A subscription was refused.
    #[error("cannot subscribe: {0}")]
    Subscribe(String),
    /// A JetStream call failed.
    #[error("JetStream: {0}")]
    JetStream(String),
}

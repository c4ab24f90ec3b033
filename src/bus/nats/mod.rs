//! Feedback over NATS: core subjects for live events, a JetStream stream for last values.

mod connection;
mod demand;
mod options;
mod outage;
mod publisher;
mod secret;
mod server;
mod signing;
mod state;
mod subjects;
mod subscriber;

use std::path::PathBuf;

use crate::error::BoxError;
use crate::invalid::InvalidSetting;

pub use connection::NatsConnection;
pub use demand::{DemandStats, subscribe_demand};
pub use options::{NatsOptions, TlsOptions};
pub use publisher::NatsPublisher;
pub use secret::Secret;
pub use server::{ServerFeature, ServerVersion};
pub use signing::{KEY_HEADER, Refusal, SIGNATURE_HEADER, Signer, SigningOptions, Verifier};
pub use state::ensure_state_stream;
pub use subjects::Subjects;
pub use subscriber::{NatsSubscriber, NatsSubscription, SubscriberStats};

/// What can go wrong setting up or using the NATS transport.
#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    /// A setting is out of range (the key is under `nats.`).
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
    /// A file named in the settings cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// No server could be reached.
    #[error("cannot connect to NATS ({servers})")]
    Connect {
        /// The servers tried.
        servers: String,
        /// Why.
        #[source]
        source: async_nats::ConnectError,
    },
    /// A subscription was refused.
    #[error("cannot subscribe to {subject}")]
    Subscribe {
        /// The subject.
        subject: String,
        /// Why.
        #[source]
        source: async_nats::SubscribeError,
    },
    /// A JetStream call failed.
    #[error("JetStream: cannot {action}")]
    JetStream {
        /// What was being done (`create the write stream`).
        action: &'static str,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// An event could not be signed.
    #[error("cannot sign a feedback event")]
    Sign(#[source] BoxError),
}

/// What kind of [`NatsError`] it is, for callers that branch on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsErrorKind {
    /// Settings (or a file they name) are unusable: retrying will not help.
    Config,
    /// No server answered.
    Connect,
    /// The server refused a subscription (permissions).
    Subscribe,
    /// JetStream failed (it may be electing a leader: retrying may help).
    JetStream,
}

impl NatsError {
    /// What kind of error it is.
    pub fn kind(&self) -> NatsErrorKind {
        match self {
            Self::Invalid(_) | Self::Read { .. } | Self::Sign(_) => NatsErrorKind::Config,
            Self::Connect { .. } => NatsErrorKind::Connect,
            Self::Subscribe { .. } => NatsErrorKind::Subscribe,
            Self::JetStream { .. } => NatsErrorKind::JetStream,
        }
    }

    /// A JetStream failure while doing `action`.
    pub fn jetstream(action: &'static str, source: impl Into<BoxError>) -> Self {
        Self::JetStream {
            action,
            source: source.into(),
        }
    }
}

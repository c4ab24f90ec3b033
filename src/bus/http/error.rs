//! Failures of the HTTP transport's setup and server.

use std::net::SocketAddr;

use crate::invalid::InvalidSetting;

/// Why the HTTP receiver or emitter could not start, or why the server stopped.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] InvalidSetting),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed while running.
    #[error("feedback http server failed: {0}")]
    Serve(#[source] std::io::Error),
    /// The HTTP client could not be built.
    #[error("cannot build the feedback http client: {0}")]
    Client(#[source] reqwest::Error),
}

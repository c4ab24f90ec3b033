//! Process plumbing shared by the binaries: logging, shutdown signals and bounded stops.
//!
//! # Layout
//! - [`Shutdown`] (`signal.rs`): when to stop — the first SIGTERM/SIGINT, or any future — and
//!   the second signal that ends the process at once.
//! - [`StopPlan`] and [`StopProgress`] (`stop.rs`): the bounded steps of a stop, what each
//!   binary documents as its total, and what a second signal abandons.

mod signal;
mod stop;

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

pub use signal::Shutdown;
pub use stop::{StopPlan, StopProgress, StopSummary};

/// Logs to stderr; `RUST_LOG` overrides `default` (e.g. `info`, `backflow=debug`).
pub fn init_tracing(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    // A second initialisation (tests calling twice) is harmless.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .try_init();
}

//! When to stop: the first SIGTERM or SIGINT (or any future, for tests and embedders), and
//! the second signal, which ends the process at once after logging what it abandons.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::oneshot;

use super::stop::StopProgress;

/// Exit status after a second signal: 128 + the signal's number, as a shell reports a process
/// a signal ended (130 for SIGINT, 143 for SIGTERM).
const INTERRUPTED: i32 = 130;
#[cfg(unix)]
const TERMINATED: i32 = 143;

/// When a service should stop, and the progress of its stop.
///
/// A service's `run(setup, shutdown)` waits for [`requested`](Self::requested), then stops
/// step by step through [`progress`](Self::progress), which a second signal reads to log what
/// it abandons.
pub struct Shutdown {
    requested: Pin<Box<dyn Future<Output = ()> + Send>>,
    /// Set once `requested` completed: a completed future must not be polled again.
    done: bool,
    progress: StopProgress,
}

impl std::fmt::Debug for Shutdown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shutdown")
            .field("progress", &self.progress)
            .finish_non_exhaustive()
    }
}

impl<F: Future<Output = ()> + Send + 'static> From<F> for Shutdown {
    fn from(requested: F) -> Self {
        Self::when(requested)
    }
}

impl Shutdown {
    /// Stop when `requested` completes; no signal is handled.
    pub fn when(requested: impl Future<Output = ()> + Send + 'static) -> Self {
        Self {
            requested: Box::pin(requested),
            done: false,
            progress: StopProgress::new(),
        }
    }

    /// Stop on the first SIGTERM (Kubernetes stopping the pod) or SIGINT (Ctrl-C); a second
    /// one logs what the stop still had to do and ends the process at once, with status 143
    /// (SIGTERM) or 130 (SIGINT).
    ///
    /// # Panics
    /// Outside a Tokio runtime: the signals are watched by a task spawned here, so that they
    /// are handled from the start.
    pub fn on_signals() -> Self {
        let progress = StopProgress::new();
        let (first, requested) = oneshot::channel();
        tokio::spawn(watch_signals(first, progress.clone()));
        Self {
            requested: Box::pin(async move {
                if requested.await.is_err() {
                    // No signal can be received: run until killed.
                    std::future::pending::<()>().await;
                }
            }),
            done: false,
            progress,
        }
    }

    /// Completes when the stop is requested (at once if it already was). Cancel-safe.
    pub async fn requested(&mut self) {
        if !self.done {
            (&mut self.requested).await;
            self.done = true;
        }
    }

    /// The stop's progress: the service runs its steps through it.
    pub fn progress(&self) -> &StopProgress {
        &self.progress
    }
}

/// Forwards the first signal, and ends the process on the second.
async fn watch_signals(first: oneshot::Sender<()>, progress: StopProgress) {
    let mut signals = match Signals::new() {
        Ok(s) => s,
        Err(error) => {
            tracing::warn!(%error, "Cannot handle shutdown signals; only SIGKILL stops this process.");
            return;
        }
    };
    let name = signals.next().await;
    tracing::info!(signal = name, "Shutdown signal received.");
    let _ = first.send(());
    let name = signals.next().await;
    tracing::warn!(
        signal = name,
        abandoned = %progress.abandoned(),
        "Second signal: exiting at once."
    );
    #[cfg(unix)]
    let status = if name == "SIGTERM" {
        TERMINATED
    } else {
        INTERRUPTED
    };
    #[cfg(not(unix))]
    let status = INTERRUPTED;
    std::process::exit(status);
}

/// SIGTERM and SIGINT as one stream.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Handles both signals from now on (their default action, ending the process, is off).
    fn new() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                term: signal(SignalKind::terminate())?,
                int: signal(SignalKind::interrupt())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    /// The next signal's name.
    async fn next(&mut self) -> &'static str {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.term.recv() => "SIGTERM",
                _ = self.int.recv() => "SIGINT",
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}

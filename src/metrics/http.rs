//! `/metrics`, `/healthz` and `/readyz` as an axum router, and a helper that serves it.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::registry::CONTENT_TYPE;
use super::{Metrics, MetricsConfig, MetricsError};

/// A readiness switch to hand to [`Metrics::router`]: set it once the process can do its work
/// (connected, caught up), clear it while shutting down.
#[derive(Debug, Clone, Default)]
pub struct ReadyFlag(Arc<AtomicBool>);

impl ReadyFlag {
    /// Not ready yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets readiness.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::Release);
    }

    /// Whether ready.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    /// A probe for [`Metrics::router`].
    pub fn probe(&self) -> impl Fn() -> bool + Send + Sync + 'static {
        let flag = self.clone();
        move || flag.is_ready()
    }
}

struct Shared {
    metrics: Metrics,
    ready: Box<dyn Fn() -> bool + Send + Sync>,
}

impl Metrics {
    /// A router serving `GET /metrics` (this registry, Prometheus text format), `GET /healthz`
    /// (200 while the process serves requests) and `GET /readyz` (200 while `ready` returns
    /// true, else 503). Merge other routes into it (the bridge adds its JSON API, an agent
    /// `POST /feedback`).
    pub fn router(&self, ready: impl Fn() -> bool + Send + Sync + 'static) -> Router {
        let shared = Arc::new(Shared {
            metrics: self.clone(),
            ready: Box::new(ready),
        });
        Router::new()
            .route("/metrics", get(metrics))
            .route("/healthz", get(|| async { "ok\n" }))
            .route("/readyz", get(readyz))
            .with_state(shared)
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    match shared.metrics.render() {
        Ok(text) => ([(header::CONTENT_TYPE, CONTENT_TYPE)], text).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "Cannot render metrics.");
            (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response()
        }
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if (shared.ready)() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n").into_response()
    }
}

/// Binds `config.listen` and serves `router` until `shutdown` completes, then finishes the
/// requests in flight.
///
/// Returns the bound address (useful with port 0) and the server task.
pub async fn serve(
    config: &MetricsConfig,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(SocketAddr, JoinHandle<Result<(), MetricsError>>), MetricsError> {
    let listen = config.listen;
    let bind_error = |source| MetricsError::Bind {
        addr: listen,
        source,
    };
    let listener = TcpListener::bind(listen).await.map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    tracing::info!(%addr, "Metrics listening.");
    let task = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(MetricsError::Serve)
    });
    Ok((addr, task))
}

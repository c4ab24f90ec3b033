//! How an agent hears feedback: its NATS subscription, optionally the `POST /feedback`
//! receiver, merged into one stream for its feedback handler, all counted in its metrics.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::AgentError;
use super::config::AgentSetup;
use crate::bus::http::HttpReceiver;
use crate::bus::nats::{NatsConnection, NatsSubscriber};
use crate::bus::{Counted, Delivery, FeedbackSubscription};
use crate::feedback::{FeedbackHandler, HandlerStats};
use crate::metrics::Metrics;
use crate::rate::RateCoordinator;

/// A stable seed from the agent's name (FNV-1a), so each agent's jitter differs but stays
/// the same across restarts.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// What the agent's feedback handling runs.
#[derive(Default)]
pub(super) struct Listening {
    /// The handler's counters (none when feedback is off).
    pub(super) stats: Option<Arc<HandlerStats>>,
    /// Where `POST /feedback` is served, when it is.
    pub(super) http: Option<SocketAddr>,
}

/// Starts the agent's feedback handler on its transports; nothing when feedback is off (the
/// providers then only report their rates).
pub(super) async fn start_feedback(
    setup: &AgentSetup,
    name: &str,
    rate: &RateCoordinator,
    conn: &NatsConnection,
    metrics: &Metrics,
    stop: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<Listening, AgentError> {
    let fb = &setup.feedback;
    let providers = fb.providers(rate);
    let writes_to = [setup.agent.coordinator_id.clone()];
    let seed = seed_of(name);
    let Some(handler) =
        FeedbackHandler::from_config(rate.clone(), providers.clone(), fb, &writes_to, seed)?
    else {
        tracing::info!("Feedback disabled: running at base rates.");
        metrics.register(rate.probe(&rate.provider_names())?)?;
        return Ok(Listening::default());
    };
    // Subscribed to what the handler follows; the handler applies the same rule to every
    // transport (an HTTP post of another coordinator is refused as a NATS one would be).
    let (nats, nats_stats) = NatsSubscriber::start(conn, handler.interest().clone()).await?;
    metrics.register(nats_stats)?;
    let (deliveries, http): (Box<dyn FeedbackSubscription>, _) = if setup.agent.http_receiver {
        let (addr, http) = serve_http(setup, metrics, stop, tasks).await?;
        (Box::new(crate::bus::merge(nats, http)), Some(addr))
    } else {
        (Box::new(nats), None)
    };
    let stats = handler.stats();
    metrics.register(rate.probe(&providers)?)?;
    metrics.register(stats.clone())?;
    let counted = Counted::new(deliveries);
    metrics.register(counted.counts())?;
    let stop = stop.clone();
    tasks.spawn(async move {
        handler.run(counted, stop.cancelled_owned()).await;
    });
    Ok(Listening {
        stats: Some(stats),
        http,
    })
}

/// Serves `POST /feedback` on `http.receiver.listen` until `stop`.
async fn serve_http(
    setup: &AgentSetup,
    metrics: &Metrics,
    stop: &CancellationToken,
    tasks: &mut JoinSet<()>,
) -> Result<(SocketAddr, mpsc::Receiver<Delivery>), AgentError> {
    let receiver = HttpReceiver::new(setup.receiver.clone())?;
    let (addr, http, server) = receiver.serve(stop.clone().cancelled_owned()).await?;
    tracing::info!(%addr, "Accepting feedback over HTTP as well.");
    metrics.register(receiver.stats())?;
    tasks.spawn(async move {
        let _keep = receiver; // numbers v0-shaped events for as long as it serves
        let _ = server.await;
    });
    Ok((addr, http))
}

/// The agent's `/metrics` router: ready while NATS is connected.
pub(super) fn router(metrics: &Metrics, conn: &NatsConnection) -> Router {
    let client = conn.client.clone();
    metrics.router(move || client.connection_state() == async_nats::connection::State::Connected)
}

//! The running bridge: feedback in, fleet view out on `/metrics`, the JSON API and the bus.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::connection::State;
use tokio::task::JoinHandle;
use tokio::time::{Instant, interval, sleep_until};
use tokio_util::sync::CancellationToken;

use super::config::BridgeSetup;
use super::lag::{self, lock};
use super::probe::BridgeProbe;
use super::state::{BridgeStats, FleetState};
use super::{BridgeError, api};
use crate::bus::nats::{NatsConnection, NatsSubscriber, subscribe_demand};
use crate::bus::{Counted, FeedbackSubscription, Interest};
use crate::clock::WallClock;
use crate::error::Chain;
use crate::event::{BackpressureLevel, CoordinatorId};
use crate::fleet::CoordinatorView;
use crate::metrics::{Metrics, MetricsError, serve};
use crate::process::{Shutdown, StopPlan, StopProgress, StopSummary};

/// What a bridge did, reported when it stops.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BridgeReport {
    /// Coordinators in the fleet view at the end.
    pub coordinators: u64,
    /// Coordinator states republished on the bus.
    pub published: u64,
    /// Republishes the bus refused.
    pub publish_errors: u64,
    /// Failed consumer-lag reads.
    pub lag_errors: u64,
    /// How the stop went against its bound.
    pub stop: StopSummary,
}

/// A started bridge. Stop it with [`stop`](Self::stop).
pub struct Bridge {
    addr: SocketAddr,
    pub(super) state: Arc<Mutex<FleetState>>,
    pub(super) stats: Arc<BridgeStats>,
    pub(super) stop: CancellationToken,
    pub(super) tasks: Vec<JoinHandle<()>>,
    pub(super) server: JoinHandle<Result<(), MetricsError>>,
    pub(super) client: async_nats::Client,
    pub(super) plan: StopPlan,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// Runs the bridge until `shutdown` completes, then stops within
/// [`BridgeConfig::stop_plan`](super::BridgeConfig)'s total.
pub async fn run(
    setup: BridgeSetup,
    shutdown: impl Into<Shutdown>,
) -> Result<BridgeReport, BridgeError> {
    let mut shutdown = shutdown.into();
    let bridge = tokio::select! {
        started = Bridge::start(&setup) => started?,
        () = shutdown.requested() => return Err(BridgeError::StoppedWhileStarting),
    };
    shutdown.requested().await;
    bridge.stop_with(shutdown.progress()).await
}

impl Bridge {
    /// Connects to NATS, subscribes to every followed coordinator's feedback (reading the
    /// last-value stream first), and serves `/metrics`, `/healthz`, `/readyz` and the JSON API
    /// on `metrics.listen`.
    pub async fn start(setup: &BridgeSetup) -> Result<Self, BridgeError> {
        setup.validate()?;
        let config = &setup.bridge;
        let metrics = Metrics::new()?;
        let conn = setup.nats.connect("backflow-bridge").await?;
        let interest = Interest::of(config.coordinators.iter().cloned());
        let (deliveries, subscriber) = NatsSubscriber::start(&conn, interest.clone()).await?;
        let (demand, demand_stats) = subscribe_demand(&conn, &interest).await?;
        metrics.register(demand_stats)?;
        let state = Arc::new(Mutex::new(
            FleetState::new(config.fleet.clone(), WallClock::new())
                .with_scaling(config.scaling.clone()),
        ));
        let stats = Arc::new(BridgeStats::default());
        let deliveries = Counted::new(deliveries);
        metrics.register(subscriber)?;
        metrics.register(deliveries.counts())?;
        metrics.register(BridgeProbe::new(state.clone(), stats.clone()))?;

        let stop = CancellationToken::new();
        let mut tasks = vec![
            tokio::spawn(fold(
                deliveries,
                conn.clone(),
                state.clone(),
                stats.clone(),
                Duration::from_millis(config.publish_interval_ms),
                stop.clone(),
            )),
            tokio::spawn(follow_demand(demand, state.clone(), stop.clone())),
        ];
        if config.lag_poll_interval_ms > 0 {
            tasks.push(tokio::spawn(lag::poll(
                conn.clone(),
                state.clone(),
                stats.clone(),
                Duration::from_millis(config.lag_poll_interval_ms),
                stop.clone(),
            )));
        }
        let probe = conn.client.clone();
        let router = metrics
            .router(move || probe.connection_state() == State::Connected)
            .merge(api::router(state.clone()));
        let (addr, server) = serve(&setup.metrics, router, stop.clone().cancelled_owned())
            .await
            .inspect_err(|_| stop.cancel())?;
        tracing::info!(%addr, followed = ?config.coordinators, "Bridge running.");
        Ok(Self {
            addr,
            state,
            stats,
            stop,
            tasks,
            server,
            client: conn.client.clone(),
            plan: config.stop_plan(),
        })
    }

    /// Where `/metrics` and the API are served.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The fleet view now.
    pub fn views(&self) -> Vec<CoordinatorView> {
        lock(&self.state).views()
    }

    /// Stops every task and the server (finishing requests in flight), within
    /// [`BridgeConfig::stop_plan`](super::BridgeConfig)'s total. See
    /// [`stop_with`](Self::stop_with).
    pub async fn stop(self) -> Result<BridgeReport, BridgeError> {
        self.stop_with(&StopProgress::new()).await
    }
}

/// Takes in the agents' demand until `stop`, and forgets demand that stopped coming.
async fn follow_demand(
    mut demand: tokio::sync::mpsc::Receiver<crate::event::DemandEvent>,
    state: Arc<Mutex<FleetState>>,
    stop: CancellationToken,
) {
    let mut tidy = interval(Duration::from_millis(500));
    loop {
        tokio::select! {
            event = demand.recv() => match event {
                Some(event) => {
                    lock(&state).observe_demand(event, Instant::now());
                }
                None => return,
            },
            _ = tidy.tick() => lock(&state).expire_demand(Instant::now()),
            () = stop.cancelled() => return,
        }
    }
}

/// Applies events and expiries to the fleet view and republishes it: each coordinator on
/// every level change at once, and all of them every `every` (if not zero).
async fn fold<S: FeedbackSubscription>(
    mut deliveries: S,
    conn: NatsConnection,
    state: Arc<Mutex<FleetState>>,
    stats: Arc<BridgeStats>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut publisher = Republisher {
        conn,
        stats,
        levels: HashMap::new(),
    };
    let mut tick = interval(every.max(Duration::from_millis(1)));
    let mut open = true;
    let mut touched = std::collections::BTreeSet::new();
    loop {
        let wake = lock(&state).next_expiry();
        tokio::select! {
            delivery = deliveries.next(), if open => match delivery {
                Some(delivery) => {
                    let more = delivery.more;
                    let (event, reply) = delivery.into_parts();
                    touched.insert(event.coordinator_id.clone());
                    let outcome = lock(&state).observe(event, Instant::now());
                    reply(outcome);
                    // A batch of last values is republished once whole, never with a state
                    // an instance has since left.
                    if !more {
                        for id in std::mem::take(&mut touched) {
                            let view = lock(&state).view(&id);
                            publisher.on_change(&id, view).await;
                        }
                    }
                }
                None => {
                    tracing::warn!("Feedback subscription closed.");
                    open = false;
                }
            },
            () = sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => {
                let views = {
                    let mut s = lock(&state);
                    s.expire(Instant::now());
                    s.views()
                };
                publisher.forget_missing(&views);
            }
            _ = tick.tick(), if !every.is_zero() => {
                let views = lock(&state).views();
                for view in views {
                    publisher.publish(view).await;
                }
            }
            () = stop.cancelled() => return,
        }
    }
}

/// Publishes coordinator states on `<prefix>.metrics.<coordinator_id>` as JSON.
struct Republisher {
    conn: NatsConnection,
    stats: Arc<BridgeStats>,
    /// The level last published per coordinator.
    levels: HashMap<CoordinatorId, BackpressureLevel>,
}

impl Republisher {
    async fn on_change(&mut self, id: &CoordinatorId, view: Option<CoordinatorView>) {
        match view {
            Some(view) if self.levels.get(id) != Some(&view.level) => self.publish(view).await,
            Some(_) => {}
            None => {
                self.levels.remove(id);
            }
        }
    }

    fn forget_missing(&mut self, views: &[CoordinatorView]) {
        // A set, not a scan of `views` per level: this runs with every coordinator at once.
        let present: std::collections::HashSet<&CoordinatorId> =
            views.iter().map(|v| &v.coordinator_id).collect();
        self.levels.retain(|id, _| present.contains(id));
    }

    async fn publish(&mut self, view: CoordinatorView) {
        let subject = self.conn.subjects.metrics(&view.coordinator_id);
        let sent: Result<(), crate::error::BoxError> = match serde_json::to_vec(&view) {
            Ok(body) => self
                .conn
                .client
                .publish(subject, body.into())
                .await
                .map_err(Into::into),
            Err(e) => Err(e.into()),
        };
        match sent {
            Ok(()) => {
                self.stats.published.fetch_add(1, Relaxed);
                self.levels.insert(view.coordinator_id, view.level);
            }
            Err(error) => {
                self.stats.publish_errors.fetch_add(1, Relaxed);
                tracing::debug!(error = %Chain(&*error), "Cannot republish a coordinator's state.");
            }
        }
    }
}

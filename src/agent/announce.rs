//! The agent's demand on the bus: one [`DemandEvent`] per interval for the coordinator it
//! writes to, and a last one (`leaving`) when it stops, so its demand goes at once.

use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior, interval, timeout};
use tokio_util::sync::CancellationToken;

use super::demand::{Demand, DemandEstimate, Producer};
use crate::bus::nats::NatsConnection;
use crate::clock::WallClock;
use crate::error::Chain;
use crate::event::{CoordinatorId, DemandEvent, InstanceId, encode_demand};
use crate::feedback::FairShareConfig;

/// Longest wait for the last (`leaving`) event at stop: the broker may be gone.
pub(super) const LAST_EVENT_BOUND: Duration = Duration::from_secs(1);

/// Who announces, where, and how often.
pub(super) struct Announcer {
    pub(super) conn: NatsConnection,
    pub(super) coordinator_id: CoordinatorId,
    pub(super) agent_id: InstanceId,
    pub(super) every: Duration,
    pub(super) estimate: DemandEstimate,
    /// The class and weight it claims its share with.
    pub(super) share: FairShareConfig,
}

impl Announcer {
    /// An announcer of `producers`' demand, smoothed over `window`, every `every`.
    pub(super) fn new(
        conn: NatsConnection,
        coordinator_id: CoordinatorId,
        agent_id: InstanceId,
        producers: Vec<Producer>,
        every: Duration,
        window: Duration,
        share: FairShareConfig,
    ) -> Self {
        Self {
            conn,
            coordinator_id,
            agent_id,
            every,
            estimate: DemandEstimate::new(producers, window),
            share,
        }
    }

    /// Publishes the demand every interval until `stop`, then a last `leaving` event; true if
    /// the client took that last event.
    pub(super) async fn run(mut self, stop: CancellationToken) -> bool {
        let wall = WallClock::new();
        let epoch = wall.now_us();
        let mut seq = 0;
        let mut tick = interval(self.every);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = stop.cancelled() => break,
            }
            seq += 1;
            let demand = self.estimate.sample(Instant::now());
            let event = self.event(epoch, seq, wall.now_ms(), demand, false);
            match self.publish(&event).await {
                Ok(()) => failing = false,
                Err(error) if !failing => {
                    failing = true;
                    tracing::warn!(error = %Chain(&*error), "Cannot publish demand.");
                }
                Err(_) => {}
            }
        }
        let event = self.event(epoch, seq + 1, wall.now_ms(), Demand::default(), true);
        let sent = matches!(
            timeout(LAST_EVENT_BOUND, self.publish(&event)).await,
            Ok(Ok(()))
        );
        if !sent {
            tracing::debug!("The last demand event was not sent; it expires by itself.");
        }
        sent
    }

    fn event(&self, epoch: u64, seq: u64, now_ms: u64, d: Demand, leaving: bool) -> DemandEvent {
        DemandEvent {
            epoch,
            timestamp_ms: now_ms,
            heartbeat_ms: u32::try_from(self.every.as_millis()).unwrap_or(u32::MAX),
            leaving,
            weight: self.share.weight,
            class: Some(self.share.class.as_str().to_owned()),
            ..DemandEvent::new(
                self.coordinator_id.clone(),
                self.agent_id.clone(),
                seq,
                d.offered,
                d.granted,
            )
        }
    }

    async fn publish(&self, event: &DemandEvent) -> Result<(), crate::error::BoxError> {
        let subject = self.conn.subjects.demand(&event.coordinator_id);
        let payload = encode_demand(event);
        match &self.conn.signer {
            Some(signer) => {
                let headers = signer.headers(&payload)?;
                self.conn
                    .client
                    .publish_with_headers(subject, headers, payload.into())
                    .await?;
            }
            None => self.conn.client.publish(subject, payload.into()).await?,
        }
        Ok(())
    }
}

//! The store side of the NATS transport.

use async_trait::async_trait;

use super::options::NatsConnection;
use super::subjects::Subjects;
use crate::bus::{BusError, FeedbackPublisher};
use crate::event::{FeedbackEvent, encode};

/// Publishes each event, MessagePack-encoded, on `<prefix>.feedback.<coordinator_id>` with
/// core NATS (no acknowledgement wait, so a level change leaves at bus latency).
///
/// While the connection is down the client buffers events and sends them after reconnecting;
/// receivers recognise those late events by sequence number and timestamp.
#[derive(Debug, Clone)]
pub struct NatsPublisher {
    client: async_nats::Client,
    subjects: Subjects,
}

impl NatsPublisher {
    /// A publisher on `conn`.
    pub fn new(conn: &NatsConnection) -> Self {
        Self {
            client: conn.client.clone(),
            subjects: conn.subjects.clone(),
        }
    }
}

#[async_trait]
impl FeedbackPublisher for NatsPublisher {
    async fn publish(&self, event: &FeedbackEvent) -> Result<(), BusError> {
        let subject = self.subjects.feedback(&event.coordinator_id);
        self.client
            .publish(subject, encode(event).into())
            .await
            .map_err(|e| BusError(e.to_string()))
    }
}

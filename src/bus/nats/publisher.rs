//! The store side of the NATS transport.

use std::sync::Arc;

use async_trait::async_trait;

use super::connection::NatsConnection;
use super::signing::Signer;
use super::subjects::Subjects;
use crate::bus::{BusError, FeedbackPublisher};
use crate::event::{FeedbackEvent, encode};

/// Publishes each event, MessagePack-encoded, on `<prefix>.feedback.<coordinator_id>` with
/// core NATS (no acknowledgement wait, so a level change leaves at bus latency), signed in
/// headers when the connection has a signing seed (`nats.signing`).
///
/// While the connection is down the client buffers events and sends them after reconnecting;
/// receivers recognise those late events by sequence number and timestamp.
#[derive(Debug, Clone)]
pub struct NatsPublisher {
    client: async_nats::Client,
    subjects: Subjects,
    signer: Option<Arc<Signer>>,
}

impl NatsPublisher {
    /// A publisher on `conn`.
    pub fn new(conn: &NatsConnection) -> Self {
        Self {
            client: conn.client.clone(),
            subjects: conn.subjects.clone(),
            signer: conn.signer.clone(),
        }
    }
}

#[async_trait]
impl FeedbackPublisher for NatsPublisher {
    async fn publish(&self, event: &FeedbackEvent) -> Result<(), BusError> {
        let subject = self.subjects.feedback(&event.coordinator_id);
        let payload = encode(event);
        let sent = match &self.signer {
            Some(signer) => {
                let headers = signer
                    .headers(&payload)
                    .map_err(|e| BusError::new("nats", e))?;
                self.client
                    .publish_with_headers(subject, headers, payload.into())
                    .await
            }
            None => self.client.publish(subject, payload.into()).await,
        };
        sent.map_err(|e| BusError::new("nats", e))
    }
}

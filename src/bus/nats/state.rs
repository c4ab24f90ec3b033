//! The last-value stream: JetStream keeps the latest events of each coordinator subject so
//! that agents learn the current state when they start or reconnect.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use bytes::Bytes;
use futures_util::StreamExt;

use super::NatsError;
use super::options::NatsConnection;

/// Creates or updates the last-value stream over every feedback subject (store side).
///
/// It keeps `state_history` events per coordinator subject (every instance of a coordinator
/// shares its subject, so several are kept, and readers keep the newest of each instance),
/// for `state_max_age_ms`, on file storage so that a server restart does not lose them.
/// Works on nats-server 2.9 (a plain stream; no KV API needed).
pub async fn ensure_state_stream(conn: &NatsConnection) -> Result<(), NatsError> {
    let o = &conn.options;
    let config = stream::Config {
        name: conn.subjects.state_stream(),
        description: Some("backflow: last feedback events per coordinator".into()),
        subjects: vec![conn.subjects.all_feedback()],
        max_messages_per_subject: i64::from(o.state_history),
        max_age: Duration::from_millis(o.state_max_age_ms),
        storage: stream::StorageType::File,
        num_replicas: o.state_replicas.max(1),
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    };
    jetstream::new(conn.client.clone())
        .create_or_update_stream(config)
        .await
        .map_err(|e| NatsError::JetStream(format!("last-value stream: {e}")))?;
    Ok(())
}

/// Reads every kept event on `filter` (a feedback subject or the wildcard), oldest first, as
/// (subject, payload).
pub(crate) async fn read_state(
    conn: &NatsConnection,
    filter: &str,
) -> Result<Vec<(String, Bytes)>, NatsError> {
    let err = |e: String| NatsError::JetStream(format!("reading last values: {e}"));
    // A short timeout: this read only speeds up learning the state; live events carry on.
    let stream = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(conn.client.clone())
        .get_stream_no_info(conn.subjects.state_stream())
        .await
        .map_err(|e| err(e.to_string()))?;
    let consumer: consumer::PullConsumer = stream
        .create_consumer(consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::All,
            ack_policy: consumer::AckPolicy::None,
            filter_subject: filter.to_owned(),
            inactive_threshold: Duration::from_secs(30),
            memory_storage: true,
            ..Default::default()
        })
        .await
        .map_err(|e| err(e.to_string()))?;
    let pending = consumer.cached_info().num_pending as usize;
    let mut out = Vec::with_capacity(pending);
    while out.len() < pending {
        let mut batch = consumer
            .fetch()
            .max_messages((pending - out.len()).min(512))
            .messages()
            .await
            .map_err(|e| err(e.to_string()))?;
        let before = out.len();
        while let Some(msg) = batch.next().await {
            let msg = msg.map_err(|e| err(e.to_string()))?;
            out.push((msg.subject.to_string(), msg.payload.clone()));
        }
        if out.len() == before {
            break;
        }
    }
    Ok(out)
}

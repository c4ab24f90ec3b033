//! The write stream and the durable consumer shared by a coordinator's store pods.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use super::config::{StoreConfig, WriteStreamConfig};
use crate::bus::nats::{NatsConnection, NatsError};
use crate::event::CoordinatorId;

/// Creates or updates `<PREFIX>_WRITES` over `<prefix>.writes.>`: work-queue retention (a row
/// leaves the stream when a store acknowledges it), file storage, and `discard: new` so a full
/// stream refuses publishes (agents retry) instead of dropping rows.
pub async fn ensure_write_stream(
    conn: &NatsConnection,
    config: &WriteStreamConfig,
) -> Result<(), NatsError> {
    let cfg = stream::Config {
        name: conn.subjects.write_stream(),
        description: Some("backflow: rows waiting for a store".into()),
        subjects: vec![conn.subjects.all_writes()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::New,
        max_bytes: config.max_bytes,
        max_age: Duration::from_millis(config.max_age_ms),
        num_replicas: config.replicas.max(1),
        duplicate_window: Duration::from_millis(config.duplicate_window_ms),
        ..Default::default()
    };
    jetstream::new(conn.client.clone())
        .create_or_update_stream(cfg)
        .await
        .map_err(|e| NatsError::jetstream("create the write stream", e))?;
    Ok(())
}

/// Gets or creates the durable pull consumer `store-<coordinator_id>` filtered to the
/// coordinator's write subject, with explicit acknowledgements.
pub async fn ensure_write_consumer(
    conn: &NatsConnection,
    coordinator: &CoordinatorId,
    config: &StoreConfig,
) -> Result<consumer::PullConsumer, NatsError> {
    let stream = jetstream::new(conn.client.clone())
        .get_stream(conn.subjects.write_stream())
        .await
        .map_err(|e| NatsError::jetstream("find the write stream", e))?;
    let name = conn.subjects.write_consumer(coordinator);
    stream
        .get_or_create_consumer(
            &name,
            consumer::pull::Config {
                durable_name: Some(name.clone()),
                description: Some(format!("backflow store pods of {coordinator}")),
                filter_subject: conn.subjects.writes(coordinator),
                ack_policy: consumer::AckPolicy::Explicit,
                ack_wait: Duration::from_millis(config.ack_wait_ms),
                max_deliver: config.max_deliver,
                max_ack_pending: 100_000,
                deliver_policy: consumer::DeliverPolicy::All,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| NatsError::jetstream("create the write consumer", e))
}

//! The last-value stream: JetStream keeps the latest events of each coordinator subject so
//! that agents learn the current state when they start or reconnect.

use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::stream::RawMessageErrorKind;
use async_nats::jetstream::{self, stream};
use bytes::Bytes;

use super::NatsError;
use super::connection::NatsConnection;

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
        .map_err(|e| NatsError::jetstream("create the last-value stream", e))?;
    Ok(())
}

/// One kept event: its subject, payload and headers.
pub(crate) type Kept = (String, Bytes, Option<HeaderMap>);

/// Most events one read returns (a bound on the loop, far above `state_history` × ids).
const MAX_KEPT: usize = 100_000;

/// Reads every kept event on `filter` (a feedback subject or the wildcard), oldest first.
///
/// It walks the stream with `$JS.API.STREAM.MSG.GET.<stream>` and `next_by_subj` (one request
/// per kept event, answered by the stream leader). Readers need no consumer: the roles that
/// only read feedback are not allowed `$JS.API.CONSUMER.CREATE` on this stream, because a
/// consumer's `deliver_subject` would make the server replay old events onto a live feedback
/// subject on their behalf.
pub(crate) async fn read_state(
    conn: &NatsConnection,
    filter: &str,
) -> Result<Vec<Kept>, NatsError> {
    // A short timeout: this read only speeds up learning the state; live events carry on.
    let stream = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(2))
        .build(conn.client.clone())
        .get_stream_no_info(conn.subjects.state_stream())
        .await
        .map_err(|e| NatsError::jetstream("find the last-value stream", e))?;
    let mut out = Vec::new();
    let mut next = 1;
    while out.len() < MAX_KEPT {
        match stream.get_first_raw_message_by_subject(filter, next).await {
            Ok(msg) => {
                next = msg.sequence + 1;
                let headers = (!msg.headers.is_empty()).then_some(msg.headers);
                out.push((msg.subject.to_string(), msg.payload, headers));
            }
            Err(e) if e.kind() == RawMessageErrorKind::NoMessageFound => break,
            Err(e) => return Err(NatsError::jetstream("read the last values", e)),
        }
    }
    Ok(out)
}

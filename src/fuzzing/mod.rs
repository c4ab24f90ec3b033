//! Property checks shared by the `fuzz/` targets and `tests/fuzz_corpus.rs`: each takes raw
//! input bytes and panics when a property of what the parser accepted does not hold.
//!
//! Not a stable API: it exists so that the fuzzers and the corpus replay in CI check the
//! same things with the same code.

mod feedback;
mod http_body;
mod settings;

pub use feedback::check_feedback;
pub use http_body::check_http_body;
pub use settings::check_settings;

use crate::event::validate_token;
use crate::event::{
    FeedbackEvent, MAX_REASON_LEN, SCHEMA_VERSION, decode, decode_json, encode, encode_json,
};

/// A property check: panics when the input breaks a property.
pub type Check = fn(&[u8]);

/// The fuzz targets by name, with their checks: the names of `fuzz/fuzz_targets/*.rs` and of
/// the folders under `fuzz/corpus/`.
pub const TARGETS: [(&str, Check); 3] = [
    ("feedback_decode", check_feedback),
    ("http_body", check_http_body),
    ("settings_yaml", check_settings),
];

/// Panics unless `event` is something every reader of the wire format accepts unchanged:
/// valid fields, and equal after a MessagePack and after a JSON round trip.
fn assert_wire_event(event: &FeedbackEvent) {
    assert_eq!(event.version, SCHEMA_VERSION, "accepted another version");
    for (field, id) in [
        ("coordinator_id", event.coordinator_id.as_str()),
        ("instance_id", event.instance_id.as_str()),
    ] {
        assert!(
            validate_token(id).is_ok(),
            "accepted an invalid {field} {id:?}"
        );
    }
    assert!(event.seq >= 1, "accepted seq 0");
    if let Some(reason) = &event.reason {
        assert!(reason.len() <= MAX_REASON_LEN, "accepted a long reason");
    }
    assert_eq!(
        event.level.as_str().parse(),
        Ok(event.level),
        "level name does not parse back"
    );
    assert_eq!(
        decode(&encode(event)).as_ref(),
        Ok(event),
        "MessagePack round trip changed an accepted event"
    );
    assert_eq!(
        decode_json(encode_json(event).as_bytes()).as_ref(),
        Ok(event),
        "JSON round trip changed an accepted event"
    );
}

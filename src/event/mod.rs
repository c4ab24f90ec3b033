//! The feedback event a store publishes and an agent obeys, with its wire codec.

mod codec;
mod feedback;
mod id;
mod level;

pub use codec::{
    DecodeError, MAX_REASON_LEN, check_reason, coordinator_field, decode, decode_json, encode,
    encode_json,
};
pub use feedback::{FeedbackEvent, SCHEMA_VERSION};
pub use id::{CoordinatorId, IdError, InstanceId, MAX_ID_LEN, validate_token};
pub use level::{BackpressureLevel, UnknownLevel};

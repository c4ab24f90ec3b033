//! The events on the bus, with their wire codec: the feedback a store publishes and an agent
//! obeys, and the demand an agent publishes for the slow loop.

mod codec;
mod demand;
mod fair;
mod feedback;
mod id;
mod level;

pub use codec::{
    DecodeError, MAX_REASON_LEN, check_rate, check_reason, coordinator_field, decode, decode_json,
    encode, encode_json,
};
pub use demand::{DEMAND_SCHEMA_VERSION, DemandEvent, decode_demand, encode_demand};
pub use fair::{Class, FairRates};
pub use feedback::{FeedbackEvent, SCHEMA_VERSION};
pub use id::{CoordinatorId, IdError, InstanceId, MAX_ID_LEN, validate_token};
pub use level::{BackpressureLevel, UnknownLevel};

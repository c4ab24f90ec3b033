//! The store node: pulls rows from its JetStream consumer into a write coordinator, writes
//! them to the database, acknowledges only what was committed, and publishes feedback.

mod config;
mod pending;
mod run;
pub mod sink;
mod stream;

pub use config::{StoreConfig, WriteStreamConfig};
pub use pending::Pending;
pub use run::{StoreError, StoreReport, run};
pub use stream::{ensure_write_consumer, ensure_write_stream};

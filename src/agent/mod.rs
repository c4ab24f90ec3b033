//! The pipeline agent: providers' sources, paced by the rate coordinator, published to the
//! write stream with acknowledgements, and slowed down by feedback.

mod config;
mod publisher;
mod run;

pub use config::{AgentConfig, SourceConfig};
pub use run::{AgentError, AgentReport, run};

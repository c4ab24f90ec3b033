//! Closed-loop backpressure for market-data pipelines: store nodes publish their write-queue
//! pressure, pipeline agents scale their rate limits to it, and the fleet view feeds
//! autoscaling.
//!
//! # Layout
//! - [`event`]: the [`FeedbackEvent`](event::FeedbackEvent), its levels, ids and wire codec.
//! - [`coordinator`]: the store side, [`WriteCoordinator`](coordinator::WriteCoordinator): a
//!   bounded queue with watermarks in front of batching sink workers.
//! - [`rate`]: the agent side's limits, [`RateCoordinator`](rate::RateCoordinator): per-provider
//!   `governor` buckets whose rate follows a budget scale.
//! - [`feedback`]: [`FeedbackHandler`](feedback::FeedbackHandler) and the policies that turn
//!   the fleet's events into scales.
//! - [`bus`]: the transport trait and the in-process bus.
//! - [`metrics`]: Prometheus metrics through opentelemetry.
//! - [`bridge`]: the metrics bridge's fleet view.
//! - [`settings`]: YAML configuration with environment overrides.
//! - [`market`]: bars and the sources agents produce them from (synthetic, CSV).
//! - [`store`]: the store node: JetStream consumer → write coordinator → database, with acks.
//! - [`agent`]: the pipeline agent: sources → rate limits → JetStream, obeying feedback.
//! - [`demo`]: the embedded one-process demo.
//! - [`sim`]: the closed-loop scenario simulator that compares policies under paused time.
//! - [`process`]: logging and shutdown signals for the binaries.
//! - [`breaker`], [`clock`], [`histogram`]: small shared parts.
//! - `fuzzing` (hidden): the property checks the fuzz targets and the corpus replay share.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

pub mod agent;
pub mod breaker;
pub mod bridge;
pub mod bus;
pub mod clock;
pub mod coordinator;
pub mod demo;
pub mod event;
pub mod feedback;
#[doc(hidden)]
pub mod fuzzing;
pub mod histogram;
pub mod market;
pub mod metrics;
pub mod process;
pub mod rate;
pub mod settings;
pub mod sim;
pub mod store;

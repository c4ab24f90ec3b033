//! Closed-loop backpressure for market-data pipelines: store nodes publish their write-queue
//! pressure, pipeline agents scale their rate limits to it, and the fleet view feeds
//! autoscaling.
//!
//! # Layout
//! Two wings over one protocol, from the ground up:
//! - [`event`]: the [`FeedbackEvent`](event::FeedbackEvent), its levels, ids and wire codec;
//!   beside it the small shared parts [`clock`], [`histogram`], [`breaker`], [`market`] (the
//!   rows), [`invalid`] (one shape for a bad setting), [`error`] and [`telemetry`] (the
//!   vocabulary components report metrics in).
//! - [`fleet`]: every coordinator instance's latest state — ordering, expiry, merging — for
//!   agents, transports and the bridge alike.
//! - [`bus`]: the transport traits and their in-process, NATS and HTTP implementations.
//! - The store wing: [`coordinator`], the [`WriteCoordinator`](coordinator::WriteCoordinator)
//!   (a bounded queue with watermarks in front of batching sink workers), and [`store`], the
//!   store node (JetStream consumer → write coordinator → database, with acks).
//! - The agent wing: [`rate`], the [`RateCoordinator`](rate::RateCoordinator) (per-provider
//!   `governor` buckets whose rate follows a budget scale), [`feedback`] (policies and the
//!   [`FeedbackHandler`](feedback::FeedbackHandler)), and [`agent`], the pipeline agent.
//! - Above them: [`metrics`] (the Prometheus exporter, which knows no component),
//!   [`bridge`] (the fleet view served to Prometheus and KEDA), [`settings`] (the YAML file
//!   and environment assembled into each component's section), [`demo`] and [`sim`] (the
//!   closed-loop simulator), [`process`] (logging, signals and bounded stops for the binaries).
//! - [`autoscale`]: a pure model of KEDA and the Kubernetes HPA reading our ScaledObject,
//!   which the simulator and `backflow explain` drive; [`explain`] reads a ScaledObject's
//!   live sources once and says why the model scales (or not).
//! - `fuzzing` (hidden): the property checks the fuzz targets and the corpus replay share.

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub, rust_2018_idioms)]

pub mod agent;
pub mod autoscale;
pub mod breaker;
pub mod bridge;
pub mod bus;
pub mod clock;
pub mod coordinator;
pub mod demo;
pub mod error;
pub mod event;
pub mod explain;
pub mod feedback;
pub mod fleet;
#[doc(hidden)]
pub mod fuzzing;
pub mod histogram;
pub mod invalid;
pub mod market;
pub mod metrics;
pub mod process;
pub mod rate;
pub mod settings;
pub mod sim;
pub mod store;
pub mod telemetry;

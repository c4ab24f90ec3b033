//! The vocabulary components describe their state in: the [catalog](CATALOG) of every series
//! backflow exports, and the [`Probe`] trait a component implements to report them.
//!
//! Components implement probes; the exporter ([`metrics`](crate::metrics)) reads registered
//! probes at scrape time and knows no component; no component knows the exporter.

mod catalog;
mod probe;

pub use catalog::*;
pub use probe::{HistogramReading, Labels, Probe, Reading, Readings};

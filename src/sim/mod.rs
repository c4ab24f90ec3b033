//! The closed-loop scenario simulator: real write coordinators, in-process bus, feedback
//! handlers and rate coordinators around simulated sinks and producers, on tokio's clock.
//!
//! A [`Scenario`] is data (`tests/data/scenarios/*.yaml`); [`compare`] runs it once per
//! policy and returns a [`Comparison`] with each run's [`Figures`], a table, CSV and an SVG
//! plot ([`plot::svg`]). Under paused tokio time (`start_paused`) a minute of load runs in
//! well under a second, and the figures are reproducible (up to the random order in which
//! tokio's `select!` polls ready branches, which can move a figure by one histogram bucket).

mod expect;
mod figures;
mod measure;
pub mod plot;
mod producer;
mod report;
mod scenario;
mod sink;
mod spec;
mod world;

pub use expect::{Expect, Range, relative};
pub use figures::{Figures, SETTLE_BAND, StepFigures, jain};
pub use measure::figures;
pub use report::Comparison;
pub use scenario::{Scenario, ScenarioError};
pub use sink::SimSink;
pub use spec::{AgentSpec, Brownout, LoadStep, Silence, SinkSpec, StoreSpec, Window};
pub use world::{Sample, StoreOutcome, Trace, run};

/// Runs `scenario` once per policy it names, one after another, and computes the figures.
pub async fn compare(scenario: &Scenario) -> Comparison {
    let mut traces = Vec::with_capacity(scenario.policies.len());
    let mut figures = Vec::with_capacity(scenario.policies.len());
    for &policy in &scenario.policies {
        let trace = run(scenario, policy).await;
        figures.push(measure::figures(scenario, &trace));
        traces.push(trace);
    }
    Comparison {
        scenario: scenario.clone(),
        traces,
        figures,
    }
}

/// Runs `scenario` on a fresh single-threaded runtime with paused time and returns the
/// comparison. Blocks the calling thread; call it from outside any runtime.
///
/// Paused time needs tokio's `test-util` feature, which this crate's dependency tree enables
/// today (through async-nats → tryhard).
///
/// # Panics
/// If the runtime cannot be built or if called from inside a runtime.
pub fn compare_paused(scenario: &Scenario) -> Comparison {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    runtime.block_on(compare(scenario))
}

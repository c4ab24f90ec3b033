//! The closed-loop scenario simulator: real write coordinators, in-process bus, feedback
//! handlers and rate coordinators around simulated sinks and producers, on tokio's clock.
//!
//! A [`Scenario`] is data (`tests/data/scenarios/*.yaml`); [`compare`] runs it once per
//! policy and returns a [`Comparison`] with each run's [`Figures`], a table, CSV and an SVG
//! plot ([`plot::svg`]). Under paused tokio time (`start_paused`) a minute of load runs in
//! well under a second, and the figures are reproducible (up to the random order in which
//! tokio's `select!` polls ready branches, which can move a figure by one histogram bucket).

mod autoscaling;
mod expect;
mod figures;
mod fleet;
mod fleet_figures;
pub mod fleet_plot;
mod fleet_report;
mod fleet_spec;
mod measure;
pub mod plot;
mod producer;
mod report;
mod scenario;
mod sink;
mod spec;
mod stream;
mod world;

pub use autoscaling::{FleetSample, FleetTrace, run_fleet};
pub use expect::{Expect, Range, relative};
pub use figures::{Figures, SETTLE_BAND, StepFigures, jain};
pub use fleet_figures::{FleetFigures, SCALED_GRACE_S, fleet_figures};
pub use fleet_report::FleetComparison;
pub use fleet_spec::{AutoscaleSpec, FleetExpect};
pub use measure::figures;
pub use report::Comparison;
pub use scenario::{Scenario, ScenarioError};
pub use sink::SimSink;
pub use spec::{AgentSpec, Brownout, Churn, LoadStep, Silence, SinkSpec, StoreSpec, Window};
pub use stream::Stream;
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

/// Runs a fleet scenario (one with `autoscale:`) once per trigger set and policy: the same
/// agents and replicas, each ScaledObject read by the autoscaler model in turn.
///
/// # Errors
/// When the scenario has no `autoscale` section, or a trigger set's file cannot be read or
/// is not a ScaledObject the model runs.
pub async fn compare_fleet(scenario: &Scenario) -> Result<FleetComparison, ScenarioError> {
    let Some(spec) = &scenario.autoscale else {
        return Err(ScenarioError::Invalid {
            name: scenario.name.clone(),
            setting: crate::invalid::InvalidSetting::new(
                "autoscale",
                "missing: not a fleet scenario",
            ),
        });
    };
    let mut traces = Vec::new();
    for (name, model) in models(spec, &scenario.name)? {
        for &policy in &scenario.policies {
            traces.push(run_fleet(scenario, policy, &name, model.clone()).await);
        }
    }
    let figures = traces.iter().map(fleet_figures).collect();
    Ok(FleetComparison {
        scenario: scenario.clone(),
        traces,
        figures,
    })
}

/// Each trigger set's autoscaler model, read from its ScaledObject. A relative path is taken
/// from the working directory, else from the crate's own directory (so the scenarios run from
/// anywhere in a checkout).
fn models(
    spec: &AutoscaleSpec,
    scenario: &str,
) -> Result<Vec<(String, crate::autoscale::Autoscaler)>, ScenarioError> {
    spec.trigger_sets
        .iter()
        .map(|(name, path)| {
            let path = resolve(path);
            let shown = path.display().to_string();
            let yaml = std::fs::read_to_string(&path).map_err(|source| ScenarioError::Read {
                path: shown.clone(),
                source,
            })?;
            let model = crate::autoscale::Autoscaler::from_yaml(&yaml).map_err(|source| {
                ScenarioError::TriggerSet {
                    name: scenario.to_owned(),
                    path: shown,
                    source,
                }
            })?;
            Ok((name.clone(), model))
        })
        .collect()
}

fn resolve(path: &std::path::Path) -> std::path::PathBuf {
    if path.is_relative() && !path.exists() {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
    } else {
        path.to_owned()
    }
}

/// [`compare_fleet`] on a fresh single-threaded runtime with paused time.
///
/// # Errors
/// As [`compare_fleet`].
///
/// # Panics
/// If the runtime cannot be built or if called from inside a runtime.
pub fn compare_fleet_paused(scenario: &Scenario) -> Result<FleetComparison, ScenarioError> {
    paused_runtime().block_on(compare_fleet(scenario))
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds")
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
    paused_runtime().block_on(compare(scenario))
}

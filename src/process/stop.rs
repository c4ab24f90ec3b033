//! The bounded steps of a stop: the plan each binary documents, the progress a second signal
//! reports as abandoned, and the summary the final report carries.

use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::time::{Instant, timeout};

/// A step missing from the plan still gets a bound: a stop must never wait without one.
const UNPLANNED_BOUND: Duration = Duration::from_secs(1);

/// One step of a stop and the longest it may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StopStep {
    /// What the step does, as logged (`drain`, `acks`, `flush`, ...).
    pub name: &'static str,
    /// How long it may take before the stop goes on without it.
    pub bound: Duration,
}

/// The steps of a stop, in order, each with its bound: their sum is the longest the stop can
/// take, which a pod's `terminationGracePeriodSeconds` must exceed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StopPlan {
    steps: Vec<StopStep>,
}

impl StopPlan {
    /// A plan with no step.
    pub fn new() -> Self {
        Self::default()
    }

    /// The plan with `name` appended, bounded by `bound`.
    pub fn step(mut self, name: &'static str, bound: Duration) -> Self {
        self.steps.push(StopStep { name, bound });
        self
    }

    /// The steps, in order.
    pub fn steps(&self) -> &[StopStep] {
        &self.steps
    }

    /// The longest the whole stop can take: the sum of the bounds.
    pub fn total(&self) -> Duration {
        self.steps.iter().map(|s| s.bound).sum()
    }

    fn position(&self, name: &str) -> Option<usize> {
        self.steps.iter().position(|s| s.name == name)
    }
}

/// How a stop went, for the final report.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct StopSummary {
    /// The documented longest stop (the plan's total), milliseconds.
    pub bound_ms: u64,
    /// How long this one took, milliseconds.
    pub took_ms: u64,
    /// The steps that ran out of time, in order.
    pub timed_out: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
struct Running {
    first: usize,
    last: usize,
    since: Instant,
    bound: Duration,
}

#[derive(Debug, Default)]
struct State {
    plan: StopPlan,
    began: Option<Instant>,
    /// The running steps (first and last index: several when a step bounds its own
    /// sub-steps), when they started, and their bound.
    current: Option<Running>,
    /// The last step entered: between steps, what follows it is still to come.
    last_entered: Option<usize>,
    timed_out: Vec<&'static str>,
}

/// A stop under way: runs each step within its bound and knows, at any moment, which step is
/// running and which are still to come (what a second signal abandons). Cheap to clone; all
/// clones share one stop.
#[derive(Debug, Clone, Default)]
pub struct StopProgress {
    state: Arc<Mutex<State>>,
}

impl StopProgress {
    /// A stop not begun yet.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The stop begins, following `plan`.
    pub fn begin(&self, plan: StopPlan) {
        let mut state = self.lock();
        state.plan = plan;
        state.began = Some(Instant::now());
        state.current = None;
        state.last_entered = None;
        state.timed_out.clear();
    }

    /// Runs step `name` of the plan for at most its bound; `None` when it ran out of time
    /// (logged once, and listed in the summary), and the stop goes on without it.
    pub async fn step<T>(&self, name: &'static str, work: impl Future<Output = T>) -> Option<T> {
        self.steps(&[name], work).await
    }

    /// Runs `work`, which goes through the consecutive steps `names` of the plan by itself
    /// (bounding each), for at most the sum of their bounds; `None` when it ran out of time.
    pub async fn steps<T>(
        &self,
        names: &[&'static str],
        work: impl Future<Output = T>,
    ) -> Option<T> {
        let bound = {
            let mut state = self.lock();
            let at: Vec<usize> = names
                .iter()
                .filter_map(|n| state.plan.position(n))
                .collect();
            debug_assert_eq!(
                at.len(),
                names.len(),
                "stop steps {names:?} are not all planned"
            );
            let planned: Duration = at.iter().map(|i| state.plan.steps[*i].bound).sum();
            let bound = if at.is_empty() {
                UNPLANNED_BOUND
            } else {
                planned
            };
            state.current = match (at.first(), at.last()) {
                (Some(&first), Some(&last)) => Some(Running {
                    first,
                    last,
                    since: Instant::now(),
                    bound,
                }),
                _ => None,
            };
            state.last_entered = at.last().copied().or(state.last_entered);
            bound
        };
        let outcome = timeout(bound, work).await.ok();
        let mut state = self.lock();
        state.current = None;
        if outcome.is_none() {
            let name = names.first().copied().unwrap_or("unnamed");
            state.timed_out.push(name);
            tracing::warn!(
                step = name,
                bound_ms = bound.as_millis() as u64,
                "Stop step ran out of time; going on without it."
            );
        }
        outcome
    }

    /// Records that `name`, a step that bounds itself inside [`steps`](Self::steps), ran out
    /// of time (it logged that itself).
    pub fn timed_out(&self, name: &'static str) {
        self.lock().timed_out.push(name);
    }

    /// What stopping now would abandon: the running step (and for how long it ran) and the
    /// steps still to come.
    pub fn abandoned(&self) -> String {
        let state = self.lock();
        let Some(began) = state.began else {
            return "the stop had not begun".into();
        };
        let steps = state.plan.steps();
        let (next, running) = match state.current {
            Some(r) => {
                let (ran, of) = (r.since.elapsed().as_millis(), r.bound.as_millis());
                let running = if r.first == r.last {
                    format!(
                        "{} (running for {ran} ms of its {of} ms)",
                        steps[r.first].name
                    )
                } else {
                    format!(
                        "{} to {} (running for {ran} ms of their {of} ms)",
                        steps[r.first].name, steps[r.last].name
                    )
                };
                (r.last + 1, Some(running))
            }
            // Between steps: everything after the last one entered.
            None => (state.last_entered.map_or(0, |i| i + 1), None),
        };
        let rest = steps.iter().skip(next).map(|s| s.name);
        let all: Vec<String> = running.into_iter().chain(rest.map(String::from)).collect();
        if all.is_empty() {
            format!("nothing ({} ms into the stop)", began.elapsed().as_millis())
        } else {
            all.join(", then ")
        }
    }

    /// The plan's total, the time taken so far and the steps that ran out of time.
    pub fn summary(&self) -> StopSummary {
        let state = self.lock();
        StopSummary {
            bound_ms: state.plan.total().as_millis() as u64,
            took_ms: state.began.map_or(0, |b| b.elapsed().as_millis() as u64),
            timed_out: state.timed_out.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> StopPlan {
        StopPlan::new()
            .step("drain", Duration::from_secs(20))
            .step("acks", Duration::from_secs(2))
            .step("flush", Duration::from_secs(1))
    }

    #[test]
    fn the_total_is_the_sum_of_the_bounds() {
        assert_eq!(plan().total(), Duration::from_secs(23));
        assert_eq!(StopPlan::new().total(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_step_past_its_bound_is_cut_short_and_listed() {
        let progress = StopProgress::new();
        progress.begin(plan());
        assert_eq!(progress.step("drain", async { 7 }).await, Some(7));
        let stuck = progress.step("acks", std::future::pending::<()>()).await;
        assert_eq!(stuck, None);
        let summary = progress.summary();
        assert_eq!(summary.timed_out, vec!["acks".to_owned()]);
        assert_eq!(summary.bound_ms, 23_000);
        assert_eq!(summary.took_ms, 2_000);
    }

    #[tokio::test(start_paused = true)]
    async fn the_abandoned_steps_are_the_running_one_and_those_to_come() {
        let progress = StopProgress::new();
        assert_eq!(progress.abandoned(), "the stop had not begun");
        progress.begin(plan());
        assert_eq!(progress.abandoned(), "drain, then acks, then flush");
        let during = {
            let p = progress.clone();
            async move {
                tokio::time::sleep(Duration::from_millis(1_500)).await;
                p.abandoned()
            }
        };
        let seen = progress.step("drain", during).await;
        assert_eq!(
            seen.as_deref(),
            Some("drain (running for 1500 ms of its 20000 ms), then acks, then flush")
        );
        assert_eq!(progress.abandoned(), "acks, then flush");
        progress.step("acks", async {}).await;
        progress.step("flush", async {}).await;
        assert!(progress.abandoned().starts_with("nothing"));
    }

    #[tokio::test(start_paused = true)]
    async fn steps_run_as_one_are_bounded_and_reported_together() {
        let progress = StopProgress::new();
        progress.begin(plan());
        let p = progress.clone();
        let seen = progress
            .steps(&["drain", "acks"], async move {
                tokio::time::sleep(Duration::from_secs(21)).await;
                p.abandoned()
            })
            .await;
        assert_eq!(
            seen.as_deref(),
            Some("drain to acks (running for 21000 ms of their 22000 ms), then flush")
        );
        let stuck = progress
            .steps(&["drain", "acks"], std::future::pending::<()>())
            .await;
        assert_eq!(stuck, None);
        assert_eq!(progress.summary().timed_out, vec!["drain".to_owned()]);
    }
}

//! `Signal`: the merged state of every coordinator instance a reader follows.

use crate::event::{BackpressureLevel, FairRates};

/// The merged state of every coordinator an agent listens to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    /// The most severe level among live instances (`Ok` when none is known).
    pub level: BackpressureLevel,
    /// The highest queue utilization (depth / capacity) among live instances.
    pub utilization: f64,
    /// Instances that contributed.
    pub instances: usize,
    /// The ceiling silent coordinators impose under `fallback: {scale: x}` (1 when none is
    /// silent). Policies tighten to it at once and rise from it as from any pressure: no
    /// faster than their ramp, after their jittered dwell.
    pub cap: f64,
    /// The fair rates granted, when every counting instance of the one coordinator followed
    /// published them: the sum over its instances (each divides its own capacity among the
    /// whole demand, so the sum is exact while every agent is throttled and errs low
    /// otherwise). `None` with several coordinators or any instance without rates: policies
    /// fall back to their depth-driven behaviour.
    pub fair: Option<FairRates>,
}

impl Signal {
    /// The signal of one instance at `level` with an empty queue.
    pub fn at(level: BackpressureLevel) -> Self {
        Self {
            level,
            utilization: 0.0,
            instances: 1,
            cap: 1.0,
            fair: None,
        }
    }

    /// The signal of a fleet that reported nothing.
    pub const QUIET: Signal = Signal {
        level: BackpressureLevel::Ok,
        utilization: 0.0,
        instances: 0,
        cap: 1.0,
        fair: None,
    };
}

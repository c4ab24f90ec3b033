//! `Signal`: the merged state of every coordinator instance a reader follows.

use crate::event::BackpressureLevel;

/// The merged state of every coordinator an agent listens to.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signal {
    /// The most severe level among live instances (`Ok` when none is known).
    pub level: BackpressureLevel,
    /// The highest queue utilization (depth / capacity) among live instances.
    pub utilization: f64,
    /// Instances that contributed.
    pub instances: usize,
}

impl Signal {
    /// The signal of one instance at `level` with an empty queue.
    pub fn at(level: BackpressureLevel) -> Self {
        Self {
            level,
            utilization: 0.0,
            instances: 1,
        }
    }

    /// The signal of a fleet that reported nothing.
    pub const QUIET: Signal = Signal {
        level: BackpressureLevel::Ok,
        utilization: 0.0,
        instances: 0,
    };
}

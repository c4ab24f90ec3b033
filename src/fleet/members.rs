//! What the fleet view keeps per coordinator: its instances' latest states and the goodbyes
//! of those that left.

use std::collections::HashMap;

use tokio::time::Instant;

use super::deadlines::Ticket;
use crate::event::{FeedbackEvent, InstanceId};

/// One instance's latest state.
#[derive(Debug, Clone)]
pub(super) struct Instance {
    pub(super) last: FeedbackEvent,
    pub(super) received: Instant,
    pub(super) silent: bool,
    /// Smallest (local receive time − event timestamp) seen: the instance's clock baseline.
    pub(super) min_delay_ms: i64,
    /// Its next transition (silent, then forgotten); `None` when that lies beyond any instant.
    pub(super) timer: Option<Ticket>,
}

/// What is remembered of an instance that said goodbye: its last `(epoch, seq)`, so that no
/// older event of it (replayed from the last-value stream, or delivered late) brings it back.
#[derive(Debug, Clone, Copy)]
pub(super) struct Departed {
    pub(super) order: (u64, u64),
    pub(super) timer: Option<Ticket>,
}

/// One coordinator's instances, so that everything done for one event or one coordinator
/// touches its instances only, never the whole fleet.
#[derive(Debug, Clone, Default)]
pub(super) struct Members {
    pub(super) instances: HashMap<InstanceId, Instance>,
    /// How many of `instances` are silent.
    pub(super) silent: usize,
    pub(super) departed: HashMap<InstanceId, Departed>,
}

impl Members {
    /// Whether nothing is kept of the coordinator any more.
    pub(super) fn is_empty(&self) -> bool {
        self.instances.is_empty() && self.departed.is_empty()
    }

    /// Whether some instance still reports.
    pub(super) fn has_live(&self) -> bool {
        self.instances.len() > self.silent
    }
}

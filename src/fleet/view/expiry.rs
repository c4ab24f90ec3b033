//! How the fleet view moves with time: instances going silent, being forgotten, goodbyes
//! ageing out, each when its own deadline comes rather than by scanning the fleet.

use tokio::time::Instant;

use super::{Due, FleetView, Key};
use crate::event::CoordinatorId;
use crate::fleet::Fallback;

impl FleetView {
    /// Marks instances silent and forgets long-silent ones; true if the merge changed.
    pub fn expire(&mut self, now: Instant) -> bool {
        let mut changed = false;
        let mut quieted = Vec::new();
        while let Some(due) = self.deadlines.pop_due(now) {
            match due {
                Due::Departed((coordinator, instance)) => {
                    if let Some(m) = self.coordinators.get_mut(&coordinator) {
                        m.departed.remove(&instance);
                    }
                    self.drop_if_empty(&coordinator);
                }
                Due::Instance(key) => {
                    changed |= self.instance_due(key, now, &mut quieted);
                }
            }
        }
        // Only a coordinator one of whose instances just went quiet can hold silent instances
        // beside live ones: every applied event clears its own coordinator's.
        for coordinator in quieted {
            changed |= self.forget_silent_siblings(&coordinator);
        }
        changed
    }

    /// An instance's timer fired: it is forgotten or goes silent. True if either happened.
    fn instance_due(&mut self, key: Key, now: Instant, quieted: &mut Vec<CoordinatorId>) -> bool {
        let forget = self.forget_after();
        let hold = self.config.fallback == Fallback::HoldLast;
        let Some(members) = self.coordinators.get_mut(&key.0) else {
            return false;
        };
        let Some(instance) = members.instances.get_mut(&key.1) else {
            return false;
        };
        instance.timer = None;
        let forget_at = instance.received.checked_add(forget);
        if forget_at.is_some_and(|at| at <= now) {
            return self.remove(&key.0, &key.1);
        }
        if instance.silent {
            // Not yet forgettable (cannot happen: silent instances wait for exactly that).
            instance.timer = forget_at.map(|at| self.deadlines.schedule(at, Due::Instance(key)));
            return false;
        }
        instance.silent = true;
        members.silent += 1;
        self.silent += 1;
        if !hold {
            self.merge.remove(&instance.last);
        }
        tracing::warn!(coordinator_id = %key.0, instance_id = %key.1, "Coordinator instance went silent.");
        quieted.push(key.0.clone());
        instance.timer = forget_at.map(|at| self.deadlines.schedule(at, Due::Instance(key)));
        true
    }

    /// When the next instance goes silent or is forgotten, or a departed one is.
    pub fn next_expiry(&self) -> Option<Instant> {
        self.deadlines.next()
    }
}

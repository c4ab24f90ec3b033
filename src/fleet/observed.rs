//! What a fleet view did with one event: the outcome every transport reports back.

/// What the fleet view did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Observed {
    /// Newer than anything seen from its instance: it is the instance's state now.
    Applied,
    /// The same `(epoch, seq)` as the instance's current state.
    Duplicate,
    /// Older than the instance's current state, or than the goodbye of an instance that left
    /// (a late or replayed event).
    OutOfOrder,
    /// Its timestamp is too old: `max_event_age_ms` behind its instance's freshest events, or
    /// (first event of an instance) `max_clock_skew_ms` away from the local clock.
    TooOld,
    /// The instance said goodbye and was forgotten.
    Left,
    /// Its coordinator is not one this reader follows.
    Unfollowed,
}

impl Observed {
    /// Every outcome, in the order metrics list them.
    pub const ALL: [Observed; 6] = [
        Self::Applied,
        Self::Duplicate,
        Self::OutOfOrder,
        Self::TooOld,
        Self::Left,
        Self::Unfollowed,
    ];

    /// Label value for metrics and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Applied => "applied",
            Self::Duplicate => "duplicate",
            Self::OutOfOrder => "out_of_order",
            Self::TooOld => "too_old",
            Self::Left => "left",
            Self::Unfollowed => "unfollowed",
        }
    }

    /// Whether the event changed the view (it is applied or its instance left).
    pub fn changed(self) -> bool {
        matches!(self, Self::Applied | Self::Left)
    }
}

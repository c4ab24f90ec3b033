//! The subject and stream names of the NATS transport, derived from one prefix.

use crate::event::{CoordinatorId, validate_token};

use crate::invalid::InvalidSetting;

/// Names derived from the prefix (`backflow` by default):
///
/// | what | name |
/// |---|---|
/// | feedback of one coordinator | `<prefix>.feedback.<coordinator_id>` |
/// | all feedback | `<prefix>.feedback.>` |
/// | last-value stream | `<PREFIX>_FEEDBACK` (prefix upper-cased, `.` → `_`) |
/// | fleet metrics per coordinator | `<prefix>.metrics.<coordinator_id>` |
/// | agents' demand on one coordinator | `<prefix>.demand.<coordinator_id>` |
/// | rows for one coordinator | `<prefix>.writes.<coordinator_id>` |
/// | write stream | `<PREFIX>_WRITES` (work-queue retention) |
/// | write consumer of one coordinator (durable, shared by its pods) | `store-<coordinator_id>` |
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    prefix: String,
}

impl Subjects {
    /// Validates `prefix`: one or more subject tokens separated by `.`.
    pub fn new(prefix: &str) -> Result<Self, InvalidSetting> {
        Self::check(prefix)?;
        Ok(Self {
            prefix: prefix.to_owned(),
        })
    }

    /// Checks that `prefix` is one or more subject tokens separated by `.`.
    pub fn check(prefix: &str) -> Result<(), InvalidSetting> {
        if prefix.is_empty() {
            return Err(InvalidSetting::new("", "prefix is empty"));
        }
        for token in prefix.split('.') {
            validate_token(token)
                .map_err(|e| InvalidSetting::new("", format!("prefix {prefix:?}: {e}")))?;
        }
        Ok(())
    }

    /// The prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Where `coordinator` publishes its feedback.
    pub fn feedback(&self, coordinator: &CoordinatorId) -> String {
        format!("{}.feedback.{coordinator}", self.prefix)
    }

    /// Every coordinator's feedback.
    pub fn all_feedback(&self) -> String {
        format!("{}.feedback.>", self.prefix)
    }

    /// The coordinator id a feedback subject names, if it is one of ours.
    pub fn coordinator_of<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".feedback.")
            .filter(|id| validate_token(id).is_ok())
    }

    /// The stream that keeps the last events of every coordinator.
    pub fn state_stream(&self) -> String {
        format!("{}_FEEDBACK", self.stream_base())
    }

    /// Where agents publish their demand on `coordinator`.
    pub fn demand(&self, coordinator: &CoordinatorId) -> String {
        format!("{}.demand.{coordinator}", self.prefix)
    }

    /// Every coordinator's demand.
    pub fn all_demand(&self) -> String {
        format!("{}.demand.>", self.prefix)
    }

    /// The coordinator id a demand subject names, if it is one of ours.
    pub fn coordinator_of_demand<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".demand.")
            .filter(|id| validate_token(id).is_ok())
    }

    /// Where the bridge republishes a coordinator's aggregated depth.
    pub fn metrics(&self, coordinator: &CoordinatorId) -> String {
        format!("{}.metrics.{coordinator}", self.prefix)
    }

    /// Where agents publish rows for `coordinator`.
    pub fn writes(&self, coordinator: &CoordinatorId) -> String {
        format!("{}.writes.{coordinator}", self.prefix)
    }

    /// Every coordinator's rows.
    pub fn all_writes(&self) -> String {
        format!("{}.writes.>", self.prefix)
    }

    /// The coordinator id a write subject names, if it is one of ours.
    pub fn coordinator_of_write<'a>(&self, subject: &'a str) -> Option<&'a str> {
        subject
            .strip_prefix(self.prefix.as_str())?
            .strip_prefix(".writes.")
            .filter(|id| validate_token(id).is_ok())
    }

    /// Where a store parks rows it could not decode or write (`<prefix>.deadletter.<id>`).
    pub fn dead_letter(&self, coordinator: &CoordinatorId) -> String {
        format!("{}.deadletter.{coordinator}", self.prefix)
    }

    /// The work-queue stream holding rows until a store commits them.
    pub fn write_stream(&self) -> String {
        format!("{}_WRITES", self.stream_base())
    }

    /// The durable pull consumer shared by every store pod of `coordinator` (the name KEDA's
    /// nats-jetstream trigger points at).
    pub fn write_consumer(&self, coordinator: &CoordinatorId) -> String {
        format!("store-{coordinator}")
    }

    /// The prefix as a stream-name stem (`backflow.eu` → `BACKFLOW_EU`).
    pub fn stream_base(&self) -> String {
        self.prefix.replace('.', "_").to_ascii_uppercase()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_prefix() {
        let s = Subjects::new("md.eu").unwrap();
        let id = CoordinatorId::new("store-1").unwrap();
        assert_eq!(s.feedback(&id), "md.eu.feedback.store-1");
        assert_eq!(s.all_feedback(), "md.eu.feedback.>");
        assert_eq!(s.state_stream(), "MD_EU_FEEDBACK");
        assert_eq!(s.writes(&id), "md.eu.writes.store-1");
        assert_eq!(s.write_stream(), "MD_EU_WRITES");
        assert_eq!(s.write_consumer(&id), "store-store-1");
        assert_eq!(s.dead_letter(&id), "md.eu.deadletter.store-1");
        assert_eq!(s.demand(&id), "md.eu.demand.store-1");
        assert_eq!(
            s.coordinator_of_demand("md.eu.demand.store-1"),
            Some("store-1")
        );
        assert_eq!(s.coordinator_of_demand("md.eu.feedback.store-1"), None);
        assert_eq!(
            s.coordinator_of_write("md.eu.writes.store-1"),
            Some("store-1")
        );
        assert_eq!(s.coordinator_of("md.eu.feedback.store-1"), Some("store-1"));
        assert_eq!(s.coordinator_of("md.eu.feedback.a.b"), None);
        assert_eq!(s.coordinator_of("other.feedback.a"), None);
        assert!(Subjects::new("bad prefix").is_err());
        assert!(Subjects::new("a..b").is_err());
        assert!(Subjects::new("a.*").is_err());
    }
}

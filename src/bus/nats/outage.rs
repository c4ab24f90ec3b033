//! What the connection logs about an outage: its start once, how it goes at a bounded rate,
//! and its end — not one warning per reconnect attempt (ten a second at the default delay).

use std::time::Duration;

use tokio::time::Instant;

/// How often a continuing outage is reported.
const REMIND_EVERY: Duration = Duration::from_secs(30);

/// One line to log.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum OutageLine {
    /// The connection was lost.
    Started,
    /// Still reconnecting: attempts so far, time since the start.
    Continuing { attempts: u64, for_: Duration },
    /// Connected again: attempts it took, how long it lasted.
    Ended { attempts: u64, lasted: Duration },
}

/// The state of the current outage, if any. Pure: the caller passes the time.
#[derive(Debug, Default)]
pub(crate) struct OutageLog {
    since: Option<Instant>,
    attempts: u64,
    last_report: Option<Instant>,
}

impl OutageLog {
    /// The connection was lost at `now`.
    pub(crate) fn disconnected(&mut self, now: Instant) -> Option<OutageLine> {
        if self.since.is_some() {
            return None;
        }
        *self = Self {
            since: Some(now),
            attempts: 0,
            last_report: Some(now),
        };
        Some(OutageLine::Started)
    }

    /// A reconnect attempt failed at `now`; a line at most every [`REMIND_EVERY`].
    pub(crate) fn attempt_failed(&mut self, now: Instant) -> Option<OutageLine> {
        let since = self.since?;
        self.attempts += 1;
        let due = self
            .last_report
            .is_none_or(|t| now.saturating_duration_since(t) >= REMIND_EVERY);
        due.then(|| {
            self.last_report = Some(now);
            OutageLine::Continuing {
                attempts: self.attempts,
                for_: now.saturating_duration_since(since),
            }
        })
    }

    /// Connected at `now`; ends the outage if there was one.
    pub(crate) fn connected(&mut self, now: Instant) -> Option<OutageLine> {
        let since = self.since.take()?;
        Some(OutageLine::Ended {
            attempts: self.attempts,
            lasted: now.saturating_duration_since(since),
        })
    }

    /// Whether a reconnect attempt is under way (client errors then belong to the outage).
    pub(crate) fn in_outage(&self) -> bool {
        self.since.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_logged_at_its_start_every_half_minute_and_at_its_end() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut log = OutageLog::default();
        assert_eq!(log.connected(t0), None, "the first connection is no outage");
        assert_eq!(log.disconnected(at(0)), Some(OutageLine::Started));
        assert_eq!(log.disconnected(at(5)), None);
        let lines: Vec<OutageLine> = (1..=700)
            .filter_map(|i| log.attempt_failed(at(i * 100)))
            .collect();
        // 70 s of attempts every 100 ms: reminders at 30 s and 60 s only.
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert_eq!(
            log.connected(at(70_050)),
            Some(OutageLine::Ended {
                attempts: 700,
                lasted: Duration::from_millis(70_050)
            })
        );
        assert!(!log.in_outage());
    }
}

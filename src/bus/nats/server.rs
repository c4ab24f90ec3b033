//! What the connected nats-server can do, from the version it announces when a client connects.
//!
//! backflow runs on nats-server 2.9 (Debian's 2.9.10) and on current 2.x servers. Code that
//! would use a newer feature asks [`ServerVersion::supports`] first and keeps a 2.9 path;
//! `docs/nats-versions.md` says which feature needs which version and what we do on each.

use std::fmt;

/// A nats-server release, `major.minor.patch` (pre-release tails such as `-RC.1` ignored).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    /// Major version (2).
    pub major: u32,
    /// Minor version (9 for Debian's 2.9.10).
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

/// A server feature whose presence depends on the version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ServerFeature {
    /// Consumers with several filter subjects (`filter_subjects`), 2.10. A 2.9 server accepts
    /// the field and silently ignores it: the consumer then sees every subject of the stream.
    MultiFilterConsumers,
    /// Creating a KV bucket with async-nats's `create_key_value`, 2.10: the client reads
    /// account-info fields that 2.9 does not send, so the call fails there (a bucket's stream,
    /// `KV_<bucket>`, can still be made by hand and opened with `get_key_value`).
    KeyValueCreate,
    /// Pausing a consumer until a time (`pause_until`, `$JS.API.CONSUMER.PAUSE`), 2.11. Older
    /// servers ignore the field: the consumer is not paused.
    ConsumerPause,
}

impl ServerFeature {
    /// Every feature, for reports.
    pub const ALL: [ServerFeature; 3] = [
        ServerFeature::MultiFilterConsumers,
        ServerFeature::KeyValueCreate,
        ServerFeature::ConsumerPause,
    ];

    /// The first release with the feature.
    pub fn since(self) -> ServerVersion {
        match self {
            ServerFeature::MultiFilterConsumers | ServerFeature::KeyValueCreate => {
                ServerVersion::new(2, 10, 0)
            }
            ServerFeature::ConsumerPause => ServerVersion::new(2, 11, 0),
        }
    }

    /// A short name for logs.
    pub fn name(self) -> &'static str {
        match self {
            ServerFeature::MultiFilterConsumers => "multi_filter_consumers",
            ServerFeature::KeyValueCreate => "kv_create",
            ServerFeature::ConsumerPause => "consumer_pause",
        }
    }
}

impl ServerVersion {
    /// `major.minor.patch`.
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `2.9.10`, `v2.15.1` or `2.11.0-RC.1`; `None` for anything else.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim();
        let text = text.strip_prefix('v').unwrap_or(text);
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let mut number = || -> Option<u32> { parts.next()?.parse().ok() };
        let version = Self::new(number()?, number()?, number()?);
        parts.next().is_none().then_some(version)
    }

    /// The version the server announced when `client` connected (`None` if it announced
    /// none that parses, e.g. before the first connection).
    pub fn of(client: &async_nats::Client) -> Option<Self> {
        Self::parse(&client.server_info().version)
    }

    /// Whether this release has `feature`.
    pub fn supports(self, feature: ServerFeature) -> bool {
        self >= feature.since()
    }

    /// The features this release lacks (empty on a current server).
    pub fn missing(self) -> Vec<ServerFeature> {
        ServerFeature::ALL
            .into_iter()
            .filter(|f| !self.supports(*f))
            .collect()
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_versions_servers_announce() {
        assert_eq!(
            ServerVersion::parse("2.9.10"),
            Some(ServerVersion::new(2, 9, 10))
        );
        assert_eq!(
            ServerVersion::parse("v2.15.1"),
            Some(ServerVersion::new(2, 15, 1))
        );
        assert_eq!(
            ServerVersion::parse("2.11.0-RC.1"),
            Some(ServerVersion::new(2, 11, 0))
        );
        for bad in ["", "2.9", "2.9.x", "2.9.10.1", "latest"] {
            assert_eq!(ServerVersion::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn versions_order_numerically_not_as_text() {
        assert!(ServerVersion::new(2, 10, 0) > ServerVersion::new(2, 9, 10));
        assert!(ServerVersion::new(2, 9, 10) > ServerVersion::new(2, 9, 9));
    }

    #[test]
    fn debian_2_9_lacks_every_feature_and_a_current_server_has_them_all() {
        let debian = ServerVersion::new(2, 9, 10);
        assert_eq!(debian.missing(), ServerFeature::ALL.to_vec());
        assert!(ServerVersion::new(2, 15, 1).missing().is_empty());
        let v2_10 = ServerVersion::new(2, 10, 0);
        assert!(v2_10.supports(ServerFeature::MultiFilterConsumers));
        assert!(v2_10.supports(ServerFeature::KeyValueCreate));
        assert!(!v2_10.supports(ServerFeature::ConsumerPause));
    }
}

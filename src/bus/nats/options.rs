//! The NATS settings (`nats:`) every component reads: servers, credentials, TLS, reconnect
//! behaviour, subjects, signing.

use std::path::PathBuf;

use async_nats::ServerAddr;
use serde::Deserialize;

use super::secret::Secret;
use super::signing::SigningOptions;
use super::subjects::Subjects;
use crate::invalid::{InvalidSetting, at_least_one};

/// TLS settings (all paths PEM files).
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsOptions {
    /// Extra root certificates to trust (a private CA).
    pub ca_file: Option<PathBuf>,
    /// Client certificate, for servers that verify clients.
    pub cert_file: Option<PathBuf>,
    /// The client certificate's key.
    pub key_file: Option<PathBuf>,
    /// Refuse to connect without TLS.
    pub required: bool,
}

/// Connection and subject settings of the NATS transport (`nats:`).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NatsOptions {
    /// Server URLs; several for a cluster (the client fails over between them).
    pub servers: Vec<String>,
    /// Connection name shown in the server's monitoring (default: the binary's name).
    pub name: Option<String>,
    /// User name (with `password`).
    pub user: Option<String>,
    /// Password (with `user`).
    pub password: Option<Secret>,
    /// Authentication token.
    pub token: Option<Secret>,
    /// NKey seed (`SU...`).
    pub nkey_seed: Option<Secret>,
    /// A `.creds` file (JWT + NKey seed), as issued by `nsc`.
    pub creds_file: Option<PathBuf>,
    /// TLS.
    pub tls: TlsOptions,
    /// Prefix of this client's reply subjects (default `_INBOX`). Give each role its own
    /// (`_INBOX_<role>`, as `nats/roles.conf` expects) so that no role may subscribe to
    /// another's replies: pulled rows and JetStream answers travel on them.
    pub inbox_prefix: Option<String>,
    /// Delay between reconnect attempts, milliseconds. Short by default: a feedback signal is
    /// only as fresh as the connection carrying it.
    pub reconnect_delay_ms: u64,
    /// Timeout of each connection attempt, milliseconds.
    pub connect_timeout_ms: u64,
    /// Subject prefix: events go to `<prefix>.feedback.<coordinator_id>`.
    pub prefix: String,
    /// Events kept per coordinator subject in the last-value stream, so that an agent that
    /// starts or reconnects learns every instance's current state at once.
    pub state_history: u32,
    /// Age after which kept events are discarded, milliseconds.
    pub state_max_age_ms: u64,
    /// Replicas of the last-value stream (3 in a 3-node cluster).
    pub state_replicas: usize,
    /// Largest feedback message accepted by subscribers, bytes; larger ones are counted and
    /// dropped.
    pub max_event_bytes: usize,
    /// Signed feedback: the store's signing seed, the keys readers trust.
    pub signing: SigningOptions,
}

impl Default for NatsOptions {
    fn default() -> Self {
        Self {
            servers: vec!["nats://127.0.0.1:4222".into()],
            name: None,
            user: None,
            password: None,
            token: None,
            nkey_seed: None,
            creds_file: None,
            tls: TlsOptions::default(),
            inbox_prefix: None,
            reconnect_delay_ms: 100,
            connect_timeout_ms: 2_000,
            prefix: "backflow".into(),
            state_history: 32,
            state_max_age_ms: 600_000,
            state_replicas: 1,
            max_event_bytes: 4_096,
            signing: SigningOptions::default(),
        }
    }
}

impl NatsOptions {
    /// Options for one server URL, everything else default.
    pub fn for_url(url: impl Into<String>) -> Self {
        Self {
            servers: vec![url.into()],
            ..Self::default()
        }
    }

    /// Checks the settings, naming the offending key.
    pub fn validate(&self) -> Result<(), InvalidSetting> {
        if self.servers.is_empty() {
            return Err(InvalidSetting::new(
                "servers",
                "at least one server URL is needed",
            ));
        }
        for s in &self.servers {
            s.parse::<ServerAddr>().map_err(|e| {
                InvalidSetting::new("servers", format!("{s:?} is not a server URL: {e}"))
            })?;
        }
        let methods = [
            self.user.is_some(),
            self.token.is_some(),
            self.nkey_seed.is_some(),
            self.creds_file.is_some(),
        ]
        .iter()
        .filter(|m| **m)
        .count();
        if methods > 1 {
            return Err(InvalidSetting::new(
                "user/token/nkey_seed/creds_file",
                "choose one authentication method",
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(InvalidSetting::new(
                "password",
                "user and password go together",
            ));
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(InvalidSetting::new(
                "tls.key_file",
                "cert_file and key_file go together",
            ));
        }
        Subjects::check(&self.prefix).map_err(|e| e.under("prefix"))?;
        if let Some(inbox) = &self.inbox_prefix {
            Subjects::check(inbox).map_err(|e| e.under("inbox_prefix"))?;
        }
        at_least_one(&[("state_history", u64::from(self.state_history))])?;
        if self.max_event_bytes < 64 {
            return Err(InvalidSetting::new(
                "max_event_bytes",
                "must be at least 64",
            ));
        }
        self.signing.validate().map_err(|e| e.under("signing"))
    }
}

//! How every component connects to NATS: servers, credentials, TLS, reconnect behaviour.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use async_nats::{ConnectOptions, Event, ServerAddr};
use serde::Deserialize;
use tokio::sync::watch;

use super::NatsError;
use super::signing::{Signer, SigningOptions, Verifier};
use super::subjects::Subjects;
use std::sync::Arc;

/// A secret read from configuration; never printed.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The secret itself.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"<redacted>\"")
    }
}

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

/// A connected client, and a counter bumped at every (re)connection so that subscribers can
/// re-read the last-value stream after an outage.
#[derive(Debug, Clone)]
pub struct NatsConnection {
    /// The client.
    pub client: async_nats::Client,
    /// Bumped on every `Connected` event.
    pub connected: watch::Receiver<u64>,
    /// Subject layout.
    pub subjects: Subjects,
    /// The options used.
    pub options: NatsOptions,
    /// Signs published events (a seed is configured).
    pub signer: Option<Arc<Signer>>,
    /// Checks received events (keys are trusted).
    pub verifier: Option<Arc<Verifier>>,
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
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.servers.is_empty() {
            return Err(("servers", "at least one server URL is needed".into()));
        }
        for s in &self.servers {
            s.parse::<ServerAddr>()
                .map_err(|e| ("servers", format!("{s:?} is not a server URL: {e}")))?;
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
            return Err((
                "user/token/nkey_seed/creds_file",
                "choose one authentication method".into(),
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(("password", "user and password go together".into()));
        }
        if self.tls.cert_file.is_some() != self.tls.key_file.is_some() {
            return Err(("tls.key_file", "cert_file and key_file go together".into()));
        }
        Subjects::new(&self.prefix).map_err(|e| ("prefix", e.to_string()))?;
        if let Some(inbox) = &self.inbox_prefix {
            Subjects::new(inbox).map_err(|e| ("inbox_prefix", e.to_string()))?;
        }
        if self.state_history == 0 {
            return Err(("state_history", "must be at least 1".into()));
        }
        if self.max_event_bytes < 64 {
            return Err(("max_event_bytes", "must be at least 64".into()));
        }
        self.signing.validate()
    }

    /// Connects (failing fast if no server answers: under Kubernetes the pod restarts);
    /// after that the client reconnects forever, every `reconnect_delay_ms`.
    pub async fn connect(&self, default_name: &str) -> Result<NatsConnection, NatsError> {
        self.validate()
            .map_err(|(key, reason)| NatsError::Config(format!("nats.{key}: {reason}")))?;
        let subjects = Subjects::new(&self.prefix)?;
        let signer = self.signing.signer()?.map(Arc::new);
        if let Some(s) = &signer {
            tracing::info!(public_key = %s.public_key(), "Signing feedback events.");
        }
        let verifier = self.signing.verifier()?.map(Arc::new);
        let addrs: Vec<ServerAddr> = self
            .servers
            .iter()
            .map(|s| s.parse())
            .collect::<Result<_, _>>()
            .map_err(|e| NatsError::Config(format!("nats.servers: {e}")))?;
        let (tx, rx) = watch::channel(0u64);
        let delay = Duration::from_millis(self.reconnect_delay_ms);
        let mut opts = match &self.creds_file {
            Some(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| {
                    NatsError::Config(format!("nats.creds_file {}: {e}", path.display()))
                })?,
            None => ConnectOptions::new(),
        };
        if let (Some(user), Some(pass)) = (&self.user, &self.password) {
            opts = opts.user_and_password(user.clone(), pass.expose().to_owned());
        }
        if let Some(token) = &self.token {
            opts = opts.token(token.expose().to_owned());
        }
        if let Some(seed) = &self.nkey_seed {
            opts = opts.nkey(seed.expose().to_owned());
        }
        if let Some(ca) = &self.tls.ca_file {
            opts = opts.add_root_certificates(ca.clone());
        }
        if let (Some(cert), Some(key)) = (&self.tls.cert_file, &self.tls.key_file) {
            opts = opts.add_client_certificate(cert.clone(), key.clone());
        }
        if self.tls.required {
            opts = opts.require_tls(true);
        }
        if let Some(inbox) = &self.inbox_prefix {
            opts = opts.custom_inbox_prefix(inbox.clone());
        }
        let name = self.name.clone().unwrap_or_else(|| default_name.to_owned());
        let client = opts
            .name(name)
            .connection_timeout(Duration::from_millis(self.connect_timeout_ms))
            .reconnect_delay_callback(move |_| delay)
            .max_reconnects(None)
            .event_callback(move |event| {
                let tx = tx.clone();
                async move { on_event(event, &tx) }
            })
            .connect(addrs)
            .await
            .map_err(|e| NatsError::Connect(e.to_string()))?;
        if let Some(version) = super::ServerVersion::of(&client) {
            let missing: Vec<&str> = version.missing().iter().map(|f| f.name()).collect();
            tracing::info!(server_version = %version, ?missing, "NATS server version.");
        }
        Ok(NatsConnection {
            client,
            connected: rx,
            subjects,
            options: self.clone(),
            signer,
            verifier,
        })
    }
}

fn on_event(event: Event, connected: &watch::Sender<u64>) {
    match event {
        Event::Connected => {
            tracing::info!("NATS connected.");
            connected.send_modify(|n| *n += 1);
        }
        Event::Disconnected => tracing::warn!("NATS disconnected; reconnecting."),
        Event::ServerError(e) => tracing::warn!(error = %e, "NATS server error."),
        Event::ClientError(e) => tracing::warn!(error = %e, "NATS client error."),
        Event::SlowConsumer(sid) => tracing::warn!(sid, "NATS slow consumer: messages dropped."),
        Event::LameDuckMode => tracing::warn!("NATS server entering lame duck mode."),
        Event::Draining | Event::Closed => tracing::info!(%event, "NATS connection closing."),
    }
}

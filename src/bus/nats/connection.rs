//! `NatsConnection`: how every component connects — credentials, TLS, reconnect behaviour —
//! and the counter subscribers watch to re-read last values after an outage.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::{ConnectOptions, Event, ServerAddr};
use tokio::sync::watch;
use tokio::time::Instant;

use super::NatsError;
use super::options::NatsOptions;
use super::outage::{OutageLine, OutageLog};
use super::signing::{Signer, Verifier};
use super::subjects::Subjects;
use crate::invalid::InvalidSetting;

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
    /// Connects (failing fast if no server answers: under Kubernetes the pod restarts);
    /// after that the client reconnects forever, every `reconnect_delay_ms`.
    pub async fn connect(&self, default_name: &str) -> Result<NatsConnection, NatsError> {
        self.validate().map_err(|e| e.under("nats"))?;
        let subjects = Subjects::new(&self.prefix).map_err(|e| e.under("nats.prefix"))?;
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
            .map_err(|e: std::io::Error| InvalidSetting::new("nats.servers", e.to_string()))?;
        let (tx, rx) = watch::channel(0u64);
        let outage = Arc::new(Mutex::new(OutageLog::default()));
        let delay = Duration::from_millis(self.reconnect_delay_ms);
        let opts = self.client_options().await?;
        let name = self.name.clone().unwrap_or_else(|| default_name.to_owned());
        let client = opts
            .name(name)
            .connection_timeout(Duration::from_millis(self.connect_timeout_ms))
            .reconnect_delay_callback(move |_| delay)
            .max_reconnects(None)
            .event_callback(move |event| {
                let (tx, outage) = (tx.clone(), outage.clone());
                async move { on_event(event, &tx, &outage) }
            })
            .connect(addrs)
            .await
            .map_err(|source| NatsError::Connect {
                servers: self.servers.join(", "),
                source,
            })?;
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

    /// Credentials, TLS and the inbox prefix, as configured.
    async fn client_options(&self) -> Result<ConnectOptions, NatsError> {
        let mut opts = match &self.creds_file {
            Some(path) => ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| NatsError::Read {
                    path: path.clone(),
                    source: e.into(),
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
        Ok(opts)
    }
}

fn on_event(event: Event, connected: &watch::Sender<u64>, outage: &Mutex<OutageLog>) {
    let now = Instant::now();
    let mut outage = outage.lock().unwrap_or_else(PoisonError::into_inner);
    match event {
        Event::Connected => {
            match outage.connected(now) {
                Some(OutageLine::Ended { attempts, lasted }) => {
                    tracing::info!(
                        attempts,
                        lasted_ms = lasted.as_millis() as u64,
                        "NATS reconnected."
                    );
                }
                _ => tracing::info!("NATS connected."),
            }
            connected.send_modify(|n| *n += 1);
        }
        Event::Disconnected => {
            if outage.disconnected(now).is_some() {
                tracing::warn!("NATS disconnected; reconnecting.");
            }
        }
        Event::ClientError(e) if outage.in_outage() => {
            if let Some(OutageLine::Continuing { attempts, for_ }) = outage.attempt_failed(now) {
                tracing::warn!(error = %e, attempts, for_ms = for_.as_millis() as u64, "NATS still unreachable; reconnecting.");
            }
        }
        Event::ServerError(e) => tracing::warn!(error = %e, "NATS server error."),
        Event::ClientError(e) => tracing::warn!(error = %e, "NATS client error."),
        Event::SlowConsumer(sid) => tracing::warn!(sid, "NATS slow consumer: messages dropped."),
        Event::LameDuckMode => tracing::warn!("NATS server entering lame duck mode."),
        Event::Draining | Event::Closed => tracing::info!(%event, "NATS connection closing."),
    }
}

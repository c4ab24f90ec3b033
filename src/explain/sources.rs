//! Reading every trigger's source once: where to ask (the ScaledObject's addresses or the
//! caller's overrides) and the asking.

use std::time::Duration;

use futures_util::future::join_all;
use reqwest::Client;

use super::answer::{Answer, Observation, ReadError};
use super::{http, jetstream, metrics_api, prometheus};
use crate::autoscale::{ScaledObject, Scaler, Trigger};

/// KEDA's HTTP timeout for scalers (`KEDA_HTTP_DEFAULT_TIMEOUT`, 3 s).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3);

/// Where to read the triggers' sources. The ScaledObject names cluster addresses, which do
/// not resolve outside the cluster; each override replaces them for one kind of trigger
/// (through `kubectl port-forward` or `kubectl proxy`, say).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Replaces every prometheus trigger's `serverAddress` (`http://127.0.0.1:9090`).
    pub prometheus: Option<String>,
    /// Replaces the scheme, host and port of every metrics-api trigger's `url`, keeping its
    /// path (`http://127.0.0.1:9464`); a path of its own goes in front.
    pub bridge: Option<String>,
    /// Replaces every nats-jetstream trigger's `natsServerMonitoringEndpoint`
    /// (`http://127.0.0.1:8222`, or `host:port` for http).
    pub nats_monitor: Option<String>,
    /// How long one read may take.
    pub timeout: Duration,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            prometheus: None,
            bridge: None,
            nats_monitor: None,
            timeout: DEFAULT_TIMEOUT,
        }
    }
}

/// Reads triggers' sources over HTTP.
#[derive(Debug, Clone)]
pub struct Reader {
    client: Client,
    sources: Sources,
}

impl Reader {
    /// A reader of `sources`.
    ///
    /// Installs rustls' `ring` crypto provider as the process default if none is installed,
    /// as the HTTP client needs one for `https` addresses.
    pub fn new(sources: Sources) -> Result<Self, reqwest::Error> {
        // Fails only when another provider is installed already, which serves as well.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = Client::builder().timeout(sources.timeout).build()?;
        Ok(Self { client, sources })
    }

    /// Reads every trigger of `object` at once, in the triggers' order.
    pub async fn read_all(&self, object: &ScaledObject) -> Vec<Observation> {
        join_all(object.triggers.iter().map(|t| self.read(t))).await
    }

    /// Reads `trigger`'s source once. Never fails: a failed read is an [`Answer::Failed`].
    pub async fn read(&self, trigger: &Trigger) -> Observation {
        match &trigger.scaler {
            Scaler::Prometheus {
                server_address,
                query,
                ..
            } => {
                let server = self.sources.prometheus.as_deref().unwrap_or(server_address);
                let url = match prometheus::url(server, query) {
                    Ok(url) => url,
                    Err(e) => return Observation::new(None, Answer::Failed(e)),
                };
                let answer = match http::get_json(&self.client, &url).await {
                    Ok(body) => prometheus::answer(&url, &body),
                    Err(e) => Answer::Failed(e),
                };
                Observation::new(url.to_string(), answer)
            }
            Scaler::MetricsApi {
                url,
                value_location,
                format,
                ..
            } => {
                if format != "json" {
                    return Observation::new(
                        None,
                        Answer::Failed(ReadError::Format(format.clone())),
                    );
                }
                let url = match metrics_api::url(url, self.sources.bridge.as_deref()) {
                    Ok(url) => url,
                    Err(e) => return Observation::new(None, Answer::Failed(e)),
                };
                let answer = match http::get_json(&self.client, &url).await {
                    Ok(body) => metrics_api::value_at(&body, value_location),
                    Err(e) => Answer::Failed(e),
                };
                Observation::new(url.to_string(), answer)
            }
            Scaler::NatsJetStream {
                stream,
                consumer,
                account,
                monitoring_endpoint,
                ..
            } => {
                let endpoint = self
                    .sources
                    .nats_monitor
                    .as_deref()
                    .or(monitoring_endpoint.as_deref());
                let (Some(endpoint), Some(account)) = (endpoint, account.as_deref()) else {
                    let (what, flag) = match endpoint {
                        None => ("natsServerMonitoringEndpoint", "--nats-monitor"),
                        Some(_) => ("account", "the account in the trigger's metadata"),
                    };
                    return Observation::new(
                        None,
                        Answer::Failed(ReadError::NoAddress { what, flag }),
                    );
                };
                let url = match jetstream::url(endpoint, account) {
                    Ok(url) => url,
                    Err(e) => return Observation::new(None, Answer::Failed(e)),
                };
                match http::get_json(&self.client, &url).await {
                    Ok(jsz) => {
                        let (answer, note) = jetstream::lag(&jsz, account, stream, consumer);
                        let observation = Observation::new(url.to_string(), answer);
                        match note {
                            Some(note) => observation.noting(note),
                            None => observation,
                        }
                    }
                    Err(e) => Observation::new(url.to_string(), Answer::Failed(e)),
                }
            }
        }
    }
}

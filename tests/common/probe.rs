//! A raw client of one user that collects the server's error messages, to assert that the
//! server itself refuses what the user's permissions do not allow.

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use super::nats::NatsServer;
use super::within;

const WAIT: Duration = Duration::from_secs(10);

/// A connection as one user of `nats/roles.conf` (password `<user>-secret`).
pub struct Probe {
    pub client: async_nats::Client,
    errors: mpsc::UnboundedReceiver<String>,
}

impl Probe {
    pub async fn connect(server: &NatsServer, user: &str) -> Self {
        let (tx, errors) = mpsc::unbounded_channel();
        let client = async_nats::ConnectOptions::with_user_and_password(
            user.into(),
            format!("{user}-secret"),
        )
        .custom_inbox_prefix(format!("_INBOX_{user}"))
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                if let async_nats::Event::ServerError(err) = e {
                    let _ = tx.send(err.to_string());
                }
            }
        })
        .connect(server.url())
        .await
        .unwrap_or_else(|e| panic!("{user} connects: {e}"));
        Self { client, errors }
    }

    /// Publishes `payload` on `subject` (with a reply subject, as a JetStream API call has)
    /// and returns the server's permissions violation naming that subject.
    pub async fn refused(&mut self, subject: &str, payload: impl Into<Bytes>) -> String {
        let reply = self.client.new_inbox();
        self.client
            .publish_with_reply(subject.to_owned(), reply, payload.into())
            .await
            .unwrap();
        self.client.flush().await.unwrap();
        self.next_violation(subject).await
    }

    /// Subscribes to `subject` and returns the server's permissions violation for it.
    pub async fn refused_subscription(&mut self, subject: &str) -> String {
        let _sub = self.client.subscribe(subject.to_owned()).await.unwrap();
        self.client.flush().await.unwrap();
        self.next_violation(subject).await
    }

    /// The next permissions violation naming `subject` (earlier errors are skipped).
    pub async fn next_violation(&mut self, subject: &str) -> String {
        let what = format!("a permissions violation for {subject}");
        within(WAIT, &what, async {
            loop {
                let err = self.errors.recv().await.expect("the connection is open");
                if err.to_lowercase().contains("permissions violation") && err.contains(subject) {
                    return err;
                }
            }
        })
        .await
    }
}

//! PostgreSQL sink: a small pool of connections, each writing whole batches by binary `COPY`
//! into a staging table and one upsert (or one array upsert), over TLS as `sslmode` asks.

mod sslmode;
mod tls;
mod write;

use std::borrow::Borrow;
use std::str::FromStr;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use tokio::sync::{Mutex, MutexGuard};
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

pub use write::PostgresMode;

use self::sslmode::SslParams;
use self::tls::MakeRustls;
use self::write::Session;
use super::{SinkSetupError, dedup, valid_table};
use crate::coordinator::{Sink, SinkError};
use crate::error::Chain;
use crate::market::{Bar, BarKey};

/// How the sink connects and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostgresOptions {
    /// How batches are written.
    pub mode: PostgresMode,
    /// Connections in the pool: one per store worker lets every worker write at once; more
    /// than the workers stay idle.
    pub connections: usize,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            mode: PostgresMode::default(),
            connections: 1,
        }
    }
}

/// Writes bars into PostgreSQL. The schema is created at start; each batch is one
/// transaction, so it commits whole or not at all, and an upsert, so a redelivered row
/// lands once.
pub struct PostgresSink {
    target: Target,
    table: String,
    mode: PostgresMode,
    /// One slot per connection; `None` until (re)connected.
    slots: Vec<Mutex<Option<Session>>>,
    next: AtomicUsize,
}

/// Where to connect and with which TLS.
struct Target {
    config: Config,
    tls: Option<MakeRustls>,
}

impl Target {
    fn parse(url: &str) -> Result<Self, SinkSetupError> {
        let invalid = |e: String| SinkSetupError::Config(format!("sink.url: {e}"));
        let ssl = SslParams::split(url).map_err(invalid)?;
        let mut config = Config::from_str(&ssl.rest).map_err(|e| invalid(e.to_string()))?;
        config.ssl_mode(ssl.wire_mode());
        Ok(Self {
            config,
            tls: ssl.connector().map_err(invalid)?,
        })
    }

    async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let report = |error: tokio_postgres::Error| {
            tracing::warn!(error = %Chain(&error), "PostgreSQL connection ended.");
        };
        match &self.tls {
            Some(tls) => {
                let (client, connection) = self.config.connect(tls.clone()).await?;
                tokio::spawn(async move { connection.await.map_err(report) });
                Ok(client)
            }
            None => {
                let (client, connection) = self.config.connect(NoTls).await?;
                tokio::spawn(async move { connection.await.map_err(report) });
                Ok(client)
            }
        }
    }
}

/// The error as a sink error, its text with its causes (tokio-postgres' own text is only "db
/// error" or "error performing TLS handshake"; the reason is in the sources).
fn classify(e: tokio_postgres::Error) -> SinkError {
    // Bad data will never be accepted; everything else (connection, locks, server restarts)
    // may work later.
    match e.code() {
        Some(code)
            if code.code().starts_with("22")
                || code.code().starts_with("23")
                || *code == SqlState::CARDINALITY_VIOLATION =>
        {
            SinkError::permanent(Chain(&e).to_string())
        }
        _ => SinkError::transient(Chain(&e).to_string()),
    }
}

impl PostgresSink {
    /// Connects to `url` (a libpq-style string or URL, `sslmode` and `sslrootcert` included)
    /// with one connection in the default mode, and creates `table` if needed.
    pub async fn connect(url: &str, table: &str) -> Result<Self, SinkSetupError> {
        Self::connect_with(url, table, PostgresOptions::default()).await
    }

    /// The same with `options`. Only the first connection is opened here (a refused one
    /// fails the start); the others open on first use.
    pub async fn connect_with(
        url: &str,
        table: &str,
        options: PostgresOptions,
    ) -> Result<Self, SinkSetupError> {
        if !valid_table(table) {
            return Err(SinkSetupError::Config(format!(
                "invalid table name {table:?}"
            )));
        }
        if options.connections == 0 {
            return Err(SinkSetupError::Config(
                "sink.connections must be at least 1".into(),
            ));
        }
        let target = Target::parse(url)?;
        let setup = |e: tokio_postgres::Error| SinkSetupError::Database(Chain(&e).to_string());
        let client = target.connect().await.map_err(setup)?;
        create_table(&client, table).await.map_err(setup)?;
        let first = Session::prepare(client, table, options.mode)
            .await
            .map_err(setup)?;
        let mut slots: Vec<_> = (0..options.connections).map(|_| Mutex::new(None)).collect();
        slots[0] = Mutex::new(Some(first));
        Ok(Self {
            target,
            table: table.to_owned(),
            mode: options.mode,
            slots,
            next: AtomicUsize::new(0),
        })
    }

    /// A free connection, else the next one in turn, (re)connected if it was lost.
    async fn session(&self) -> Result<MutexGuard<'_, Option<Session>>, SinkError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.slots.len();
        let free = (0..n).find_map(|i| self.slots[(start + i) % n].try_lock().ok());
        let mut guard = match free {
            Some(guard) => guard,
            None => self.slots[start % n].lock().await,
        };
        if guard.as_ref().is_none_or(|s| s.client.is_closed()) {
            *guard = None;
            let client = self.target.connect().await.map_err(classify)?;
            *guard = Some(
                Session::prepare(client, &self.table, self.mode)
                    .await
                    .map_err(classify)?,
            );
            tracing::debug!("PostgreSQL connected.");
        }
        Ok(guard)
    }

    /// Rows stored.
    pub async fn count(&self) -> Result<u64, SinkError> {
        let guard = self.session().await?;
        let session = guard
            .as_ref()
            .ok_or_else(|| SinkError::transient("not connected"))?;
        let row = session
            .client
            .query_one(&format!("SELECT COUNT(*) FROM {}", self.table), &[])
            .await
            .map_err(classify)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Every stored key (for audits and tests).
    pub async fn keys(&self) -> Result<Vec<BarKey>, SinkError> {
        let guard = self.session().await?;
        let session = guard
            .as_ref()
            .ok_or_else(|| SinkError::transient("not connected"))?;
        let rows = session
            .client
            .query(
                &format!(
                    "SELECT source, symbol, ts FROM {} ORDER BY 1, 2, 3",
                    self.table
                ),
                &[],
            )
            .await
            .map_err(classify)?;
        Ok(rows
            .iter()
            .map(|r| BarKey {
                source: r.get(0),
                symbol: r.get(1),
                ts_ms: r.get(2),
            })
            .collect())
    }
}

async fn create_table(client: &Client, table: &str) -> Result<(), tokio_postgres::Error> {
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {table} (
            source TEXT NOT NULL, symbol TEXT NOT NULL, ts BIGINT NOT NULL,
            open DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL,
            low DOUBLE PRECISION NOT NULL, close DOUBLE PRECISION NOT NULL,
            volume DOUBLE PRECISION NOT NULL, PRIMARY KEY (source, symbol, ts))"
    );
    // Two pods starting together race inside CREATE TABLE IF NOT EXISTS (PostgreSQL
    // reports a unique violation on its catalog); the loser finds the table next time.
    let mut attempt = 0;
    loop {
        match client.batch_execute(&create).await {
            Ok(()) => return Ok(()),
            Err(e)
                if attempt < 3
                    && matches!(
                        e.code(),
                        Some(&SqlState::UNIQUE_VIOLATION | &SqlState::DUPLICATE_TABLE)
                    ) =>
            {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

#[async_trait]
impl<T: Borrow<Bar> + Sync + 'static> Sink<T> for PostgresSink {
    async fn write(&self, batch: &[T]) -> Result<(), SinkError> {
        let rows = dedup(batch);
        let mut guard = self.session().await?;
        let session = guard
            .as_mut()
            .ok_or_else(|| SinkError::transient("not connected"))?;
        if let Err(e) = session.write(&rows).await {
            if session.client.is_closed() {
                *guard = None;
            }
            return Err(classify(e));
        }
        Ok(())
    }
}

//! PostgreSQL sink: one multi-row upsert per batch (`UNNEST` of column arrays), reconnecting
//! after connection loss.

use std::borrow::Borrow;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, NoTls};

use super::{SinkSetupError, dedup, valid_table};
use crate::coordinator::{Sink, SinkError};
use crate::market::{Bar, BarKey};

/// Writes bars into PostgreSQL. The schema is created at start; each batch is one statement,
/// so it commits whole or not at all.
pub struct PostgresSink {
    url: String,
    table: String,
    upsert: String,
    client: Mutex<Option<Client>>,
}

fn classify(e: tokio_postgres::Error) -> SinkError {
    // Bad data will never be accepted; everything else (connection, locks, server restarts)
    // may work later.
    match e.code() {
        Some(code)
            if code.code().starts_with("22")
                || code.code().starts_with("23")
                || *code == SqlState::CARDINALITY_VIOLATION =>
        {
            SinkError::permanent(e.to_string())
        }
        _ => SinkError::transient(e.to_string()),
    }
}

async fn connect(url: &str) -> Result<Client, tokio_postgres::Error> {
    let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::warn!(%error, "PostgreSQL connection ended.");
        }
    });
    Ok(client)
}

impl PostgresSink {
    /// Connects to `url` (a libpq-style string or URL) and creates `table` if needed.
    pub async fn connect(url: &str, table: &str) -> Result<Self, SinkSetupError> {
        if !valid_table(table) {
            return Err(SinkSetupError::Config(format!(
                "invalid table name {table:?}"
            )));
        }
        let setup = |e: tokio_postgres::Error| SinkSetupError::Database(e.to_string());
        let client = connect(url).await.map_err(setup)?;
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
                Ok(()) => break,
                Err(e)
                    if attempt < 3
                        && matches!(
                            e.code(),
                            Some(&SqlState::UNIQUE_VIOLATION | &SqlState::DUPLICATE_TABLE)
                        ) =>
                {
                    attempt += 1;
                }
                Err(e) => return Err(setup(e)),
            }
        }
        Ok(Self {
            url: url.to_owned(),
            upsert: format!(
                "INSERT INTO {table} (source, symbol, ts, open, high, low, close, volume)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::float8[],
                                      $5::float8[], $6::float8[], $7::float8[], $8::float8[])
                 ON CONFLICT (source, symbol, ts) DO UPDATE SET open = EXCLUDED.open,
                   high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
                   volume = EXCLUDED.volume"
            ),
            table: table.to_owned(),
            client: Mutex::new(Some(client)),
        })
    }

    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, SinkError> {
        let mut guard = self.client.lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(connect(&self.url).await.map_err(classify)?);
            tracing::info!("PostgreSQL reconnected.");
        }
        Ok(guard)
    }

    /// Rows stored.
    pub async fn count(&self) -> Result<u64, SinkError> {
        let guard = self.client().await?;
        let client = guard
            .as_ref()
            .ok_or_else(|| SinkError::transient("not connected"))?;
        let row = client
            .query_one(&format!("SELECT COUNT(*) FROM {}", self.table), &[])
            .await
            .map_err(classify)?;
        Ok(row.get::<_, i64>(0) as u64)
    }

    /// Every stored key (for audits and tests).
    pub async fn keys(&self) -> Result<Vec<BarKey>, SinkError> {
        let guard = self.client().await?;
        let client = guard
            .as_ref()
            .ok_or_else(|| SinkError::transient("not connected"))?;
        let rows = client
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

#[async_trait]
impl<T: Borrow<Bar> + Sync + 'static> Sink<T> for PostgresSink {
    async fn write(&self, batch: &[T]) -> Result<(), SinkError> {
        let rows = dedup(batch);
        let source: Vec<&str> = rows.iter().map(|b| b.source.as_str()).collect();
        let symbol: Vec<&str> = rows.iter().map(|b| b.symbol.as_str()).collect();
        let ts: Vec<i64> = rows.iter().map(|b| b.ts_ms).collect();
        let col = |f: fn(&Bar) -> f64| rows.iter().map(|b| f(b)).collect::<Vec<f64>>();
        let (open, high, low, close, volume) = (
            col(|b| b.open),
            col(|b| b.high),
            col(|b| b.low),
            col(|b| b.close),
            col(|b| b.volume),
        );
        let mut guard = self.client().await?;
        let client = guard
            .as_ref()
            .ok_or_else(|| SinkError::transient("not connected"))?;
        let result = client
            .execute(
                &self.upsert,
                &[&source, &symbol, &ts, &open, &high, &low, &close, &volume],
            )
            .await;
        if let Err(e) = result {
            if client.is_closed() {
                *guard = None;
            }
            return Err(classify(e));
        }
        Ok(())
    }
}

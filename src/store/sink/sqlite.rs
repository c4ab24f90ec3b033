//! SQLite sink: one connection in WAL mode, one transaction per batch, upsert by key.

use std::borrow::Borrow;
use std::path::Path;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use rusqlite::{Connection, ErrorCode};

use super::{SinkSetupError, dedup, valid_table};
use crate::coordinator::{Sink, SinkError};
use crate::market::{Bar, BarKey};

/// Writes bars into a SQLite file (the embedded default). Writes run on tokio's blocking
/// pool so they never stall the runtime.
#[derive(Clone)]
pub struct SqliteSink {
    conn: Arc<Mutex<Connection>>,
    upsert: String,
    table: String,
}

fn classify(e: rusqlite::Error) -> SinkError {
    match e.sqlite_error_code() {
        Some(ErrorCode::ConstraintViolation | ErrorCode::TooBig | ErrorCode::TypeMismatch) => {
            SinkError::permanent(e.to_string())
        }
        _ => SinkError::transient(e.to_string()),
    }
}

impl SqliteSink {
    /// Opens (or creates) `path` and creates `table` if needed.
    pub fn open(path: &Path, table: &str) -> Result<Self, SinkSetupError> {
        if !valid_table(table) {
            return Err(SinkSetupError::Config(format!(
                "invalid table name {table:?}"
            )));
        }
        let setup =
            |e: rusqlite::Error| SinkSetupError::Database(format!("{}: {e}", path.display()));
        let conn = Connection::open(path).map_err(setup)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(setup)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(setup)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(setup)?;
        conn.execute_batch(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                source TEXT NOT NULL, symbol TEXT NOT NULL, ts INTEGER NOT NULL,
                open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
                volume REAL NOT NULL, PRIMARY KEY (source, symbol, ts))"
        ))
        .map_err(setup)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            upsert: format!(
                "INSERT INTO {table} (source, symbol, ts, open, high, low, close, volume)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (source, symbol, ts) DO UPDATE SET open = excluded.open,
                   high = excluded.high, low = excluded.low, close = excluded.close,
                   volume = excluded.volume"
            ),
            table: table.to_owned(),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Rows stored.
    pub fn count(&self) -> Result<u64, SinkError> {
        self.lock()
            .query_row(&format!("SELECT COUNT(*) FROM {}", self.table), [], |r| {
                r.get::<_, i64>(0)
            })
            .map(|n| n as u64)
            .map_err(classify)
    }

    /// Every stored key (for audits and tests).
    pub fn keys(&self) -> Result<Vec<BarKey>, SinkError> {
        let conn = self.lock();
        let mut stmt = conn
            .prepare(&format!(
                "SELECT source, symbol, ts FROM {} ORDER BY 1, 2, 3",
                self.table
            ))
            .map_err(classify)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(BarKey {
                    source: r.get(0)?,
                    symbol: r.get(1)?,
                    ts_ms: r.get(2)?,
                })
            })
            .map_err(classify)?;
        rows.collect::<Result<_, _>>().map_err(classify)
    }

    fn write_blocking(&self, rows: &[Bar]) -> Result<(), SinkError> {
        let mut conn = self.lock();
        let tx = conn.transaction().map_err(classify)?;
        {
            let mut stmt = tx.prepare_cached(&self.upsert).map_err(classify)?;
            for b in dedup(rows) {
                stmt.execute(rusqlite::params![
                    b.source, b.symbol, b.ts_ms, b.open, b.high, b.low, b.close, b.volume
                ])
                .map_err(classify)?;
            }
        }
        tx.commit().map_err(classify)
    }
}

#[async_trait]
impl<T: Borrow<Bar> + Sync + 'static> Sink<T> for SqliteSink {
    async fn write(&self, batch: &[T]) -> Result<(), SinkError> {
        let rows: Vec<Bar> = batch.iter().map(|b| b.borrow().clone()).collect();
        let this = self.clone();
        tokio::task::spawn_blocking(move || this.write_blocking(&rows))
            .await
            .map_err(|e| SinkError::transient(format!("sqlite writer task: {e}")))?
    }
}

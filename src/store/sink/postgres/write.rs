//! The two ways a batch reaches PostgreSQL: binary `COPY` into a per-connection staging table
//! then one upsert from it, or one upsert over column arrays (`UNNEST`); both in one
//! transaction, so a batch commits whole or not at all.

use std::pin::pin;

use serde::Deserialize;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Statement};

use crate::market::Bar;

/// How batches are written (`store.sink.mode`).
///
/// `insert` is the default: the two measured level within the noise at 500- and 5,000-row
/// batches (`benches/pipeline.rs`, docs/performance.md), and `insert` took about half the
/// client CPU; the upsert from the staging table is the same work on the server as the one
/// from arrays, and `copy` adds a round trip and emptying the staging table at every commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PostgresMode {
    /// `COPY … FROM STDIN (FORMAT binary)` into a temporary table, then
    /// `INSERT … SELECT … ON CONFLICT DO UPDATE` from it.
    Copy,
    /// One `INSERT … SELECT FROM UNNEST(…) ON CONFLICT DO UPDATE` with the columns as arrays.
    #[default]
    Insert,
}

/// The staging table, in the session's own temporary schema so it never meets a real table.
const STAGE: &str = "pg_temp.backflow_stage";

const COLUMNS: &str = "source, symbol, ts, open, high, low, close, volume";

const TYPES: [Type; 8] = [
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::FLOAT8,
];

const ON_CONFLICT: &str = "ON CONFLICT (source, symbol, ts) DO UPDATE SET open = EXCLUDED.open,
       high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
       volume = EXCLUDED.volume";

/// One connection with its statements prepared for one table.
pub(super) struct Session {
    pub(super) client: Client,
    write: Prepared,
}

enum Prepared {
    Copy { copy: Statement, merge: Statement },
    Insert(Statement),
}

impl Session {
    /// Prepares `client` for `mode` (creating its staging table for `copy`).
    pub(super) async fn prepare(
        client: Client,
        table: &str,
        mode: PostgresMode,
    ) -> Result<Self, tokio_postgres::Error> {
        let write = match mode {
            PostgresMode::Copy => {
                // ON COMMIT DELETE ROWS empties it at every commit, and a failed batch's rows
                // go with its rollback: the table holds one batch at most.
                client
                    .batch_execute(&format!(
                        "CREATE TEMPORARY TABLE IF NOT EXISTS backflow_stage
                           (LIKE {table} INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"
                    ))
                    .await?;
                Prepared::Copy {
                    copy: client
                        .prepare(&format!(
                            "COPY {STAGE} ({COLUMNS}) FROM STDIN (FORMAT binary)"
                        ))
                        .await?,
                    merge: client
                        .prepare(&format!(
                            "INSERT INTO {table} ({COLUMNS}) SELECT {COLUMNS} FROM {STAGE} {ON_CONFLICT}"
                        ))
                        .await?,
                }
            }
            PostgresMode::Insert => Prepared::Insert(
                client
                    .prepare(&format!(
                        "INSERT INTO {table} ({COLUMNS})
                         SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[], $4::float8[],
                                              $5::float8[], $6::float8[], $7::float8[], $8::float8[])
                         {ON_CONFLICT}"
                    ))
                    .await?,
            ),
        };
        Ok(Self { client, write })
    }

    /// Writes `rows` (keys unique) in one transaction.
    pub(super) async fn write(&mut self, rows: &[&Bar]) -> Result<(), tokio_postgres::Error> {
        match &self.write {
            Prepared::Copy { copy, merge } => {
                let tx = self.client.transaction().await?;
                let sink = tx.copy_in(copy).await?;
                let mut writer = pin!(BinaryCopyInWriter::new(sink, &TYPES));
                for b in rows {
                    let row: [&(dyn ToSql + Sync); 8] = [
                        &b.source, &b.symbol, &b.ts_ms, &b.open, &b.high, &b.low, &b.close,
                        &b.volume,
                    ];
                    writer.as_mut().write(&row).await?;
                }
                writer.finish().await?;
                tx.execute(merge, &[]).await?;
                tx.commit().await
            }
            Prepared::Insert(upsert) => {
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
                // One statement is its own transaction.
                self.client
                    .execute(
                        upsert,
                        &[&source, &symbol, &ts, &open, &high, &low, &close, &volume],
                    )
                    .await
                    .map(drop)
            }
        }
    }
}

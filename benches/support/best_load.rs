//! The anchor of the pipeline bench: the same rows straight into PostgreSQL by the fastest
//! idempotent loads written for it, over several connections at once, one transaction per
//! large batch: binary `COPY` into a per-connection temporary table then one
//! `INSERT … ON CONFLICT DO UPDATE` from it, or that upsert straight from column arrays.

use std::pin::pin;
use std::sync::{Arc, Mutex};

use backflow::market::Bar;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls};

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

async fn connect(url: &str) -> Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.expect("postgres");
    tokio::spawn(conn);
    client
}

/// Creates `table` as the sink does.
pub async fn create(url: &str, table: &str) {
    connect(url)
        .await
        .batch_execute(&format!(
            "CREATE TABLE IF NOT EXISTS {table} (
                source TEXT NOT NULL, symbol TEXT NOT NULL, ts BIGINT NOT NULL,
                open DOUBLE PRECISION NOT NULL, high DOUBLE PRECISION NOT NULL,
                low DOUBLE PRECISION NOT NULL, close DOUBLE PRECISION NOT NULL,
                volume DOUBLE PRECISION NOT NULL, PRIMARY KEY (source, symbol, ts))"
        ))
        .await
        .expect("create table");
}

const UPSERT: &str = "ON CONFLICT (source, symbol, ts) DO UPDATE SET open = EXCLUDED.open,
   high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close, volume = EXCLUDED.volume";

/// Loads `bars` (keys unique) into `table` by `COPY` through a staging table, in batches of
/// `batch` over `connections` connections; returns once every batch committed.
pub async fn copy(url: &str, table: &str, bars: Vec<Bar>, batch: usize, connections: usize) {
    let chunks: Vec<Vec<Bar>> = bars.chunks(batch).map(<[Bar]>::to_vec).collect();
    let queue = Arc::new(Mutex::new(chunks));
    let mut writers = Vec::new();
    for _ in 0..connections {
        let mut client = connect(url).await;
        client
            .batch_execute(&format!(
                "CREATE TEMPORARY TABLE stage (LIKE {table}) ON COMMIT DELETE ROWS"
            ))
            .await
            .expect("stage");
        let copy = client
            .prepare("COPY pg_temp.stage FROM STDIN (FORMAT binary)")
            .await
            .expect("copy");
        let merge = client
            .prepare(&format!(
                "INSERT INTO {table} SELECT * FROM pg_temp.stage {UPSERT}"
            ))
            .await
            .expect("merge");
        let queue = queue.clone();
        writers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some(rows) = next else { break };
                let tx = client.transaction().await.expect("begin");
                let sink = tx.copy_in(&copy).await.expect("copy in");
                let mut writer = pin!(BinaryCopyInWriter::new(sink, &TYPES));
                for b in &rows {
                    let row: [&(dyn ToSql + Sync); 8] = [
                        &b.source, &b.symbol, &b.ts_ms, &b.open, &b.high, &b.low, &b.close,
                        &b.volume,
                    ];
                    writer.as_mut().write(&row).await.expect("copy row");
                }
                writer.finish().await.expect("copy end");
                tx.execute(&merge, &[]).await.expect("merge");
                tx.commit().await.expect("commit");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
}

/// The same by one upsert per batch from column arrays (`UNNEST`).
pub async fn unnest(url: &str, table: &str, bars: Vec<Bar>, batch: usize, connections: usize) {
    let chunks: Vec<Vec<Bar>> = bars.chunks(batch).map(<[Bar]>::to_vec).collect();
    let queue = Arc::new(Mutex::new(chunks));
    let mut writers = Vec::new();
    for _ in 0..connections {
        let client = connect(url).await;
        let upsert = client
            .prepare(&format!(
                "INSERT INTO {table} SELECT * FROM UNNEST($1::text[], $2::text[], $3::int8[],
                   $4::float8[], $5::float8[], $6::float8[], $7::float8[], $8::float8[]) {UPSERT}"
            ))
            .await
            .expect("upsert");
        let queue = queue.clone();
        writers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue").pop();
                let Some(rows) = next else { break };
                let source: Vec<&str> = rows.iter().map(|b| b.source.as_str()).collect();
                let symbol: Vec<&str> = rows.iter().map(|b| b.symbol.as_str()).collect();
                let ts: Vec<i64> = rows.iter().map(|b| b.ts_ms).collect();
                let col = |f: fn(&Bar) -> f64| rows.iter().map(f).collect::<Vec<f64>>();
                let cols = [
                    col(|b| b.open),
                    col(|b| b.high),
                    col(|b| b.low),
                    col(|b| b.close),
                    col(|b| b.volume),
                ];
                client
                    .execute(
                        &upsert,
                        &[
                            &source, &symbol, &ts, &cols[0], &cols[1], &cols[2], &cols[3], &cols[4],
                        ],
                    )
                    .await
                    .expect("upsert");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
}

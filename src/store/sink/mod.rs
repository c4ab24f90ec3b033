//! Database sinks for bars: SQLite (embedded default) and PostgreSQL, both idempotent on
//! `(source, symbol, ts)`.

mod config;
mod postgres;
mod sqlite;

use std::borrow::Borrow;
use std::collections::HashMap;

pub(crate) use config::throttle_of;
pub use config::{OutageConfig, SinkConfig, SinkSetupError, ThrottleConfig, build_sink};
pub use postgres::{PostgresMode, PostgresOptions, PostgresSink};
pub use sqlite::SqliteSink;

use crate::market::Bar;

/// Checks a table name: letters, digits and `_`, starting with a letter or `_`.
fn valid_table(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The batch with repeated keys collapsed to their last occurrence (a redelivered row can
/// share a batch with its first delivery; an upsert may not touch one row twice).
fn dedup<T: Borrow<Bar>>(batch: &[T]) -> Vec<&Bar> {
    let mut last: HashMap<(&str, &str, i64), usize> = HashMap::with_capacity(batch.len());
    for (i, item) in batch.iter().enumerate() {
        let b = item.borrow();
        last.insert((&b.source, &b.symbol, b.ts_ms), i);
    }
    batch
        .iter()
        .enumerate()
        .filter(|(i, item)| {
            let b = (*item).borrow();
            last.get(&(b.source.as_str(), b.symbol.as_str(), b.ts_ms)) == Some(i)
        })
        .map(|(_, item)| item.borrow())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_keeps_the_last_of_each_key_in_order() {
        let bar = |sym: &str, ts, close| Bar {
            source: "s".into(),
            symbol: sym.into(),
            ts_ms: ts,
            open: 1.0,
            high: 1.0,
            low: 1.0,
            close,
            volume: 1.0,
        };
        let batch = vec![bar("A", 1, 1.0), bar("B", 1, 1.0), bar("A", 1, 2.0)];
        let out = dedup(&batch);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].symbol.as_str(), out[1].close), ("B", 2.0));
        assert!(valid_table("bars_1") && !valid_table("1bars") && !valid_table("b;drop"));
    }
}

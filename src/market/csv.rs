//! Replay of bars from a CSV file: `symbol,timestamp,open,high,low,close,volume`.

use std::io::BufRead;
use std::path::Path;

use super::{Bar, BarSource};

/// A CSV line that cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum CsvError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A line is not a bar.
    #[error("{path}:{line}: {reason}")]
    Line {
        /// The file.
        path: String,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}

/// Bars read from a CSV file with a header line and the columns
/// `symbol,timestamp,open,high,low,close,volume` (timestamp in milliseconds since the Unix
/// epoch). The whole file is checked when it is opened, so a bad line fails the start, not
/// the middle of a run.
pub struct CsvSource {
    bars: std::vec::IntoIter<Bar>,
}

impl CsvSource {
    /// Reads and validates `path`; bars get `source` as their source.
    pub fn open(path: &Path, source: &str) -> Result<Self, CsvError> {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| CsvError::Io {
            path: name.clone(),
            source,
        })?;
        let mut bars = Vec::new();
        for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
            let line = line.map_err(|source| CsvError::Io {
                path: name.clone(),
                source,
            })?;
            if i == 0 || line.trim().is_empty() {
                continue;
            }
            let err = |reason: String| CsvError::Line {
                path: name.clone(),
                line: i + 1,
                reason,
            };
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            if cols.len() != 7 {
                return Err(err(format!("expected 7 columns, found {}", cols.len())));
            }
            let num = |j: usize| {
                cols[j]
                    .parse::<f64>()
                    .map_err(|e| err(format!("column {}: {e}", j + 1)))
            };
            let bar = Bar {
                source: source.to_owned(),
                symbol: cols[0].to_owned(),
                ts_ms: cols[1]
                    .parse()
                    .map_err(|e| err(format!("timestamp: {e}")))?,
                open: num(2)?,
                high: num(3)?,
                low: num(4)?,
                close: num(5)?,
                volume: num(6)?,
            };
            bar.validate().map_err(|e| err(e.to_string()))?;
            bars.push(bar);
        }
        Ok(Self {
            bars: bars.into_iter(),
        })
    }
}

impl BarSource for CsvSource {
    fn next_bar(&mut self) -> Option<Bar> {
        self.bars.next()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_a_file_and_names_bad_lines() {
        let dir = std::env::temp_dir().join(format!("backflow-csv-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let good = dir.join("good.csv");
        std::fs::write(
            &good,
            "symbol,timestamp,open,high,low,close,volume\nAAPL,1000,1,2,0.5,1.5,10\nMSFT,2000,3,4,2,3,20\n",
        )
        .unwrap();
        let mut src = CsvSource::open(&good, "file").unwrap();
        assert_eq!(src.next_bar().map(|b| b.symbol), Some("AAPL".into()));
        assert_eq!(src.next_bar().map(|b| b.ts_ms), Some(2000));
        assert!(src.next_bar().is_none());
        let bad = dir.join("bad.csv");
        std::fs::write(&bad, "h\nAAPL,x,1,2,0.5,1.5,10\n").unwrap();
        let e = CsvSource::open(&bad, "file").err().unwrap().to_string();
        assert!(e.contains(":2:") && e.contains("timestamp"), "{e}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}

//! Market data rows (bars) and the sources agents produce them from.

mod bar;
mod csv;
mod synthetic;

pub use bar::{Bar, BarError, BarKey, MAX_BATCH_ROWS};
pub use csv::{CsvError, CsvSource};
pub use synthetic::SyntheticSource;

/// Something that yields bars, one unit of upstream work at a time.
pub trait BarSource: Send {
    /// The next bar, or `None` when the source is exhausted (a replayed file ended).
    fn next_bar(&mut self) -> Option<Bar>;
}

//! Error plumbing shared by every module: a boxed cause, and an error printed with its
//! sources for logs and reports.

use std::fmt;

/// Any error, kept as the cause of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Displays an error and its sources, `: `-separated (`cannot connect to NATS: timed out`).
///
/// Log lines show only `Display`; wrap an error in `Chain` so that the cause is not lost.
pub struct Chain<'a>(pub &'a (dyn std::error::Error + 'a));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn chain_prints_every_source() {
        let e = Outer(std::io::Error::other("inner"));
        assert_eq!(Chain(&e).to_string(), "outer: inner");
    }
}

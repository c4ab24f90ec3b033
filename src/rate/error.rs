//! `RateError`: why a rate call failed.

use crate::invalid::InvalidSetting;

/// Why a rate call failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RateError {
    /// No provider of that name was registered.
    #[error("unknown provider {0:?}")]
    UnknownProvider(String),
    /// A provider of that name already exists.
    #[error("provider {0:?} is already registered")]
    AlreadyRegistered(String),
    /// `acquire` asked for more than one burst; it could never be granted at once.
    #[error("requested {requested} items but provider {provider:?} has capacity {capacity}")]
    ExceedsCapacity {
        /// The provider.
        provider: String,
        /// Items asked for.
        requested: u32,
        /// The provider's burst capacity.
        capacity: u32,
    },
    /// A scale outside [0, 1].
    #[error("scale must be within [0, 1], got {0}")]
    InvalidScale(f64),
    /// A provider setting out of range.
    #[error(transparent)]
    Invalid(#[from] InvalidSetting),
}

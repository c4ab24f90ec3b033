//! Coordinator and instance ids, validated as single NATS subject tokens.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize};

/// Longest id accepted, in bytes. Ids end up in subjects, KV keys and consumer names.
pub const MAX_ID_LEN: usize = 128;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id is empty.
    #[error("id is empty")]
    Empty,
    /// The id is longer than [`MAX_ID_LEN`] bytes.
    #[error("id is {0} bytes long (at most {MAX_ID_LEN})")]
    TooLong(usize),
    /// The id contains a character that would break a subject token or a consumer name.
    #[error(
        "id {id:?} contains {ch:?}; ids may not contain '.', '*', '>', '/', '\\', whitespace or control characters"
    )]
    BadChar {
        /// The rejected id.
        id: String,
        /// The first offending character.
        ch: char,
    },
}

/// Checks that `s` can be used as one NATS subject token and as a JetStream consumer name.
pub fn validate_token(s: &str) -> Result<(), IdError> {
    if s.is_empty() {
        return Err(IdError::Empty);
    }
    if s.len() > MAX_ID_LEN {
        return Err(IdError::TooLong(s.len()));
    }
    match s
        .chars()
        .find(|c| matches!(c, '.' | '*' | '>' | '/' | '\\') || c.is_whitespace() || c.is_control())
    {
        Some(ch) => Err(IdError::BadChar {
            id: s.to_owned(),
            ch,
        }),
        None => Ok(()),
    }
}

macro_rules! token_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps `id`.
            pub fn new(id: impl Into<String>) -> Result<Self, IdError> {
                let id = id.into();
                validate_token(&id)?;
                Ok(Self(id))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, IdError> {
                Self::new(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::new(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

token_id!(
    /// Names one logical store (write coordinator); many pods may share it.
    CoordinatorId
);
token_id!(
    /// Names one running coordinator instance (one pod, one process).
    InstanceId
);

impl Default for CoordinatorId {
    /// The coordinator id `default`, as in the predecessor's examples.
    fn default() -> Self {
        Self("default".to_owned())
    }
}

impl InstanceId {
    /// A fresh id for this process: the host name (or `instance`) and a random suffix.
    pub fn generate() -> Self {
        let host = std::env::var("HOSTNAME")
            .ok()
            .filter(|h| validate_token(h).is_ok() && h.len() <= MAX_ID_LEN - 9)
            .unwrap_or_else(|| "instance".to_owned());
        Self(format!("{host}-{:08x}", fastrand::u32(..)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_subject_metacharacters_and_bound_length() {
        assert!(CoordinatorId::new("store-eu_1").is_ok());
        for bad in ["a.b", "a*", ">", "a b", "a\tb", "a/b", "a\\b", "a\u{7}"] {
            assert!(
                matches!(CoordinatorId::new(bad), Err(IdError::BadChar { .. })),
                "{bad:?}"
            );
        }
        assert_eq!(CoordinatorId::new(""), Err(IdError::Empty));
        assert_eq!(
            InstanceId::new("x".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong(MAX_ID_LEN + 1))
        );
        assert!(InstanceId::new("x".repeat(MAX_ID_LEN)).is_ok());
    }

    #[test]
    fn generated_instance_ids_are_valid_and_distinct() {
        let a = InstanceId::generate();
        let b = InstanceId::generate();
        assert!(validate_token(a.as_str()).is_ok());
        assert_ne!(a, b);
    }
}

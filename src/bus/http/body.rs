//! Request bodies: the accepted content types, and telling the two JSON shapes apart.

use crate::event::{DecodeError, FeedbackEvent, decode, decode_json};

use super::legacy_json::V0Event;

/// An accepted body encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Encoding {
    /// `application/msgpack` or `application/x-msgpack`.
    MessagePack,
    /// `application/json`.
    Json,
}

impl Encoding {
    /// The encoding a `Content-Type` value names, ignoring case and parameters such as
    /// `charset`; `None` for anything else.
    pub(crate) fn from_content_type(value: &[u8]) -> Option<Self> {
        let essence = value.split(|b| *b == b';').next()?.trim_ascii();
        let is = |name: &str| essence.eq_ignore_ascii_case(name.as_bytes());
        if is("application/msgpack") || is("application/x-msgpack") {
            Some(Self::MessagePack)
        } else if is("application/json") {
            Some(Self::Json)
        } else {
            None
        }
    }
}

/// A decoded body: a full event, or a v0 one still to be numbered.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Decoded {
    /// MessagePack, or JSON with a `version` field.
    Full(FeedbackEvent),
    /// JSON as the v0 JSON body (no `version` field).
    V0(V0Event),
}

/// Why a request body was refused before it reached the handler.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum BodyError {
    /// No `Content-Type`, or one naming neither MessagePack nor JSON (415).
    #[error("unsupported content type")]
    UnsupportedMediaType,
    /// The body is not a valid event in the named encoding (400).
    #[error(transparent)]
    Invalid(#[from] DecodeError),
}

/// The receiver's whole parsing step, free of I/O so that it can be fuzzed as it runs: the
/// encoding the `Content-Type` value names, then the decoded and validated body. Never
/// panics, whatever the bytes.
pub(crate) fn parse_body(content_type: Option<&[u8]>, bytes: &[u8]) -> Result<Decoded, BodyError> {
    let encoding = content_type
        .and_then(Encoding::from_content_type)
        .ok_or(BodyError::UnsupportedMediaType)?;
    Ok(decode_body(encoding, bytes)?)
}

/// Decodes and validates a body. Never panics, whatever the bytes.
pub(crate) fn decode_body(encoding: Encoding, bytes: &[u8]) -> Result<Decoded, DecodeError> {
    match encoding {
        Encoding::MessagePack => decode(bytes).map(Decoded::Full),
        Encoding::Json => {
            let value: serde_json::Value =
                serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
            if !value.is_object() {
                return Err(DecodeError::Malformed("expected a JSON object".into()));
            }
            // Our own shape always carries `version`; the v0 body never did.
            if value.get("version").is_some() {
                decode_json(bytes).map(Decoded::Full)
            } else {
                V0Event::parse(value).map(Decoded::V0)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{BackpressureLevel, CoordinatorId, InstanceId, encode, encode_json};

    #[test]
    fn content_types_ignore_case_and_parameters() {
        for (value, expected) in [
            (&b"application/msgpack"[..], Some(Encoding::MessagePack)),
            (b"Application/X-MsgPack", Some(Encoding::MessagePack)),
            (b"application/json; charset=utf-8", Some(Encoding::Json)),
            (b" application/json ", Some(Encoding::Json)),
            (b"text/plain", None),
            (b"application/jsonx", None),
            (b"", None),
        ] {
            assert_eq!(Encoding::from_content_type(value), expected, "{value:?}");
        }
    }

    #[test]
    fn parse_body_refuses_missing_or_other_content_types() {
        let v0 = br#"{"coordinator_id":"default","queue_size":1,"capacity":2,"level":"ok"}"#;
        assert!(matches!(
            parse_body(Some(b"application/json"), v0),
            Ok(Decoded::V0(_))
        ));
        for content_type in [None, Some(&b"text/plain"[..])] {
            assert_eq!(
                parse_body(content_type, v0),
                Err(BodyError::UnsupportedMediaType)
            );
        }
        assert!(matches!(
            parse_body(Some(b"application/msgpack"), v0),
            Err(BodyError::Invalid(DecodeError::Malformed(_)))
        ));
    }

    #[test]
    fn json_shapes_are_told_apart_by_version() {
        let e = FeedbackEvent::new(
            CoordinatorId::new("default").unwrap(),
            InstanceId::new("pod-1").unwrap(),
            1,
            3,
            4,
            BackpressureLevel::Hard,
            9,
            10,
        );
        assert_eq!(
            decode_body(Encoding::MessagePack, &encode(&e)),
            Ok(Decoded::Full(e.clone()))
        );
        assert_eq!(
            decode_body(Encoding::Json, encode_json(&e).as_bytes()),
            Ok(Decoded::Full(e))
        );
        let v0 = br#"{"coordinator_id":"default","queue_size":1,"capacity":2,"level":"OK"}"#;
        assert!(matches!(
            decode_body(Encoding::Json, v0),
            Ok(Decoded::V0(_))
        ));
        let versioned =
            br#"{"version":1,"coordinator_id":"default","queue_size":1,"capacity":2,"level":"OK"}"#;
        assert!(matches!(
            decode_body(Encoding::Json, versioned),
            Err(DecodeError::Malformed(_))
        ));
        for garbage in [&b"nope"[..], b"[]", b"", b"\xff"] {
            assert!(matches!(
                decode_body(Encoding::Json, garbage),
                Err(DecodeError::Malformed(_))
            ));
        }
    }
}

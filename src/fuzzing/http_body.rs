//! The HTTP receiver's body parsing: it never accepts what the wire decoder would refuse.

use crate::bus::http::{BodyError, Decoded, Encoding, parse_body};
use crate::event::{decode, decode_json};

/// Splits a fuzz input into the `Content-Type` value (the bytes before the first newline)
/// and the body; without a newline there is no `Content-Type` header.
fn split_request(data: &[u8]) -> (Option<&[u8]>, &[u8]) {
    match data.iter().position(|b| *b == b'\n') {
        Some(i) => (Some(&data[..i]), &data[i + 1..]),
        None => (None, data),
    }
}

/// Parses `data` (see [`split_request`]) as the receiver does and checks the verdict against
/// the content type and the wire decoders.
///
/// # Panics
/// When a property does not hold.
pub fn check_http_body(data: &[u8]) {
    let (content_type, body) = split_request(data);
    let encoding = content_type.and_then(Encoding::from_content_type);
    match (parse_body(content_type, body), encoding) {
        (Err(BodyError::UnsupportedMediaType), None) => {}
        (Err(BodyError::UnsupportedMediaType), Some(e)) => {
            panic!("refused {e:?} as an unsupported content type")
        }
        (_, None) => panic!("parsed a body without a supported content type"),
        (Err(BodyError::Invalid(_)), Some(Encoding::MessagePack)) => {
            assert!(
                decode(body).is_err(),
                "refused what the wire decoder accepts"
            );
        }
        (Err(BodyError::Invalid(_)), Some(Encoding::Json)) => {}
        (Ok(Decoded::Full(event)), Some(Encoding::MessagePack)) => {
            assert_eq!(
                decode(body).as_ref(),
                Ok(&event),
                "differs from the wire decoder"
            );
            super::assert_wire_event(&event);
        }
        (Ok(Decoded::Full(event)), Some(Encoding::Json)) => {
            assert_eq!(
                decode_json(body).as_ref(),
                Ok(&event),
                "differs from decode_json"
            );
            super::assert_wire_event(&event);
        }
        (Ok(Decoded::V0(_)), Some(Encoding::MessagePack)) => {
            panic!("read a MessagePack body in the v0 JSON shape")
        }
        (Ok(Decoded::V0(v0)), Some(Encoding::Json)) => {
            // The receiver numbers v0 events from 1 and stamps them with its clock.
            for (seq, now_ms) in [(1, 0), (u64::MAX, u64::MAX)] {
                super::assert_wire_event(&v0.clone().into_event(seq, now_ms));
            }
        }
    }
}

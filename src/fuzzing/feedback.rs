//! The wire decoder: whatever it accepts is valid and survives re-encoding unchanged.

use crate::event::decode;

/// Decodes `data` as a MessagePack feedback event; anything accepted must be valid and
/// round-trip through both encodings unchanged.
///
/// # Panics
/// When a property does not hold (that is the point).
pub fn check_feedback(data: &[u8]) {
    if let Ok(event) = decode(data) {
        super::assert_wire_event(&event);
    }
}

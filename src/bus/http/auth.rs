//! Bearer-token checks in constant time.

/// Whether an `Authorization` header value is `Bearer <expected>` (scheme in any case, as
/// RFC 7235 allows).
///
/// The token comparison takes the same time wherever the first difference lies, so response
/// times do not reveal how much of a guess was right.
pub(crate) fn bearer_matches(header: Option<&[u8]>, expected: &str) -> bool {
    let Some(header) = header else {
        return false;
    };
    let Some(space) = header.iter().position(|b| *b == b' ') else {
        return false;
    };
    let (scheme, rest) = header.split_at(space);
    scheme.eq_ignore_ascii_case(b"bearer")
        && constant_time_eq(rest.trim_ascii(), expected.as_bytes())
}

/// Byte-wise equality that inspects every byte of the longer input, whatever the contents.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        let x = a.get(i).copied().unwrap_or(0);
        let y = b.get(i).copied().unwrap_or(0);
        diff |= usize::from(x ^ y);
    }
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_needs_same_bytes_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(constant_time_eq(b"", b""));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
        assert!(!constant_time_eq(b"abc\0", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn only_the_bearer_scheme_with_the_right_token_matches() {
        assert!(bearer_matches(Some(b"Bearer s3cret"), "s3cret"));
        assert!(bearer_matches(Some(b"bearer  s3cret "), "s3cret"));
        assert!(!bearer_matches(Some(b"Bearer s3cre"), "s3cret"));
        assert!(!bearer_matches(Some(b"Basic s3cret"), "s3cret"));
        assert!(!bearer_matches(Some(b"Bearers3cret"), "s3cret"));
        assert!(!bearer_matches(Some(b"Bearer "), "s3cret"));
        assert!(!bearer_matches(None, "s3cret"));
    }
}

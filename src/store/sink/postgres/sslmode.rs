//! `sslmode` and `sslrootcert` taken out of a connection string (a `key=value` string or a
//! `postgres://` URL) with libpq's meaning, since tokio-postgres knows neither `verify-*` nor
//! `sslrootcert`.

use std::path::PathBuf;

use tokio_postgres::config::SslMode as WireSslMode;

/// libpq's `sslmode`, less `allow` (plain first, TLS as a fallback), which nothing needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, certificate unchecked (libpq's default).
    Prefer,
    /// TLS or no connection, certificate unchecked (checked against `sslrootcert` when one
    /// is given, as libpq does).
    Require,
    /// TLS, the certificate chain checked against `sslrootcert`, any host name.
    VerifyCa,
    /// TLS, the chain checked and the certificate naming the host connected to.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            "allow" => return Err("sslmode=allow is not supported: use disable or prefer".into()),
            other => {
                return Err(format!(
                    "unknown sslmode {other:?}: use disable, prefer, require, verify-ca or verify-full"
                ));
            }
        })
    }
}

/// A connection string split into what tokio-postgres understands and the TLS keys it does
/// not (it knows only disable/prefer/require and has no `sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SslParams {
    /// The string without `sslmode` and `sslrootcert`.
    pub(crate) rest: String,
    /// `sslmode` (libpq's default, `prefer`, when absent).
    pub(crate) mode: SslMode,
    /// `sslrootcert`: a PEM file of trusted CA certificates.
    pub(crate) root_cert: Option<PathBuf>,
}

impl SslParams {
    /// Splits `url`, a `key=value ...` string or a `postgres://` URL.
    pub(crate) fn split(url: &str) -> Result<Self, String> {
        let (rest, pairs) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            split_url(url)?
        } else {
            split_key_values(url)?
        };
        let mut mode = SslMode::Prefer;
        let mut root_cert = None;
        for (key, value) in pairs {
            match key.as_str() {
                "sslmode" => mode = SslMode::parse(&value)?,
                "sslrootcert" => root_cert = Some(PathBuf::from(value)),
                _ => {} // only TLS_KEYS are taken out
            }
        }
        Ok(Self {
            rest,
            mode,
            root_cert,
        })
    }

    /// What tokio-postgres negotiates on the wire.
    pub(crate) fn wire_mode(&self) -> WireSslMode {
        match self.mode {
            SslMode::Disable => WireSslMode::Disable,
            SslMode::Prefer => WireSslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => WireSslMode::Require,
        }
    }
}

type Split = (String, Vec<(String, String)>);

const TLS_KEYS: [&str; 2] = ["sslmode", "sslrootcert"];

/// `key=value` pairs separated by spaces, values optionally single-quoted with `\` escapes.
fn split_key_values(s: &str) -> Result<Split, String> {
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    let mut chars = s.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        let mut key = String::new();
        while let Some((_, c)) = chars.next_if(|(_, c)| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        if chars.next_if(|(_, c)| *c == '=').is_none() {
            return Err(format!("connection string: {key:?} has no value"));
        }
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        let quoted = chars.next_if(|(_, c)| *c == '\'').is_some();
        let mut closed = !quoted;
        while let Some((_, c)) = chars.next() {
            match c {
                '\\' => value.extend(chars.next().map(|(_, c)| c)),
                '\'' if quoted => {
                    closed = true;
                    break;
                }
                c if c.is_whitespace() && !quoted => break,
                c => value.push(c),
            }
        }
        if !closed {
            return Err(format!("connection string: unterminated quote in {key:?}"));
        }
        let end = chars.peek().map_or(s.len(), |(i, _)| *i);
        if TLS_KEYS.contains(&key.as_str()) {
            taken.push((key, value));
        } else {
            kept.push(s[start..end].trim_end());
        }
    }
    Ok((kept.join(" "), taken))
}

/// A `postgres://` URL: the TLS keys come out of its query string.
fn split_url(s: &str) -> Result<Split, String> {
    let Some((base, query)) = s.split_once('?') else {
        return Ok((s.to_owned(), Vec::new()));
    };
    let mut kept = Vec::new();
    let mut taken = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if TLS_KEYS.contains(&key) {
            taken.push((key.to_owned(), percent_decode(value)?));
        } else {
            kept.push(pair);
        }
    }
    Ok(if kept.is_empty() {
        (base.to_owned(), taken)
    } else {
        (format!("{base}?{}", kept.join("&")), taken)
    })
}

fn percent_decode(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| format!("connection URL: bad escape in {s:?}"))?;
                out.push(hex);
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| format!("connection URL: {s:?} is not UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_value_strings_lose_only_the_tls_keys() {
        let p = SslParams::split(
            "host=db user=postgres sslmode=verify-full sslrootcert='/etc/ca dir/ca.pem' dbname=test",
        )
        .unwrap();
        assert_eq!(p.rest, "host=db user=postgres dbname=test");
        assert_eq!(p.mode, SslMode::VerifyFull);
        assert_eq!(p.root_cert, Some(PathBuf::from("/etc/ca dir/ca.pem")));
        let p = SslParams::split("host=db password='a b\\'c'").unwrap();
        assert_eq!(
            (p.rest.as_str(), p.mode),
            ("host=db password='a b\\'c'", SslMode::Prefer)
        );
    }

    #[test]
    fn urls_lose_only_the_tls_query_keys() {
        let p = SslParams::split(
            "postgres://u@db:5432/test?sslmode=require&application_name=x&sslrootcert=%2Fca.pem",
        )
        .unwrap();
        assert_eq!(p.rest, "postgres://u@db:5432/test?application_name=x");
        assert_eq!(p.mode, SslMode::Require);
        assert_eq!(p.root_cert, Some(PathBuf::from("/ca.pem")));
        let p = SslParams::split("postgresql://db/test?sslmode=disable").unwrap();
        assert_eq!(
            (p.rest.as_str(), p.mode),
            ("postgresql://db/test", SslMode::Disable)
        );
    }

    #[test]
    fn unknown_or_unsupported_modes_are_refused_by_name() {
        let e = SslParams::split("host=db sslmode=sometimes").unwrap_err();
        assert!(e.contains("unknown sslmode \"sometimes\""), "{e}");
        assert!(SslParams::split("host=db sslmode=allow").is_err());
        assert!(SslParams::split("host=db sslmode='unterminated").is_err());
    }
}

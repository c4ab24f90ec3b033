//! TLS to PostgreSQL over rustls: `sslmode` and `sslrootcert` read from the connection string
//! with libpq's meaning, and the `MakeTlsConnect` adapter tokio-postgres needs.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::config::SslMode as WireSslMode;
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect, TlsStream};

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
                _ => root_cert = Some(PathBuf::from(value)),
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

    /// The rustls configuration this mode asks for (none for `disable`).
    pub(crate) fn connector(&self) -> Result<Option<MakeRustls>, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let verify_mode = match (self.mode, &self.root_cert) {
            (SslMode::Disable, _) => return Ok(None),
            (SslMode::Prefer, _) | (SslMode::Require, None) => None,
            // libpq: "if a root CA file exists, require behaves like verify-ca".
            (SslMode::Require | SslMode::VerifyCa, Some(_)) => Some(false),
            (SslMode::VerifyCa, None) | (SslMode::VerifyFull, None) => {
                return Err("sslmode=verify-ca and verify-full need sslrootcert (a PEM file of the trusted CA)".into());
            }
            (SslMode::VerifyFull, Some(_)) => Some(true),
        };
        let verifier: Arc<dyn ServerCertVerifier> = match (verify_mode, &self.root_cert) {
            (Some(check_name), Some(path)) => {
                let roots = load_roots(path)?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
                if check_name {
                    webpki
                } else {
                    Arc::new(AnyName(webpki))
                }
            }
            _ => Arc::new(Unchecked(provider.signature_verification_algorithms)),
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Some(MakeRustls {
            config: Arc::new(config),
        }))
    }
}

fn load_roots(path: &std::path::Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("sslrootcert {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "sslrootcert {}: no certificate in it",
            path.display()
        ));
    }
    Ok(roots)
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

/// `prefer` and `require` without a CA: encrypted, the server unauthenticated (libpq's
/// meaning); the handshake's signatures are still checked.
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain must lead to `sslrootcert`, the name may be anything. The webpki
/// verifier checks the chain before the name, so a name error means the chain held.
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// tokio-postgres' TLS hook over a rustls client configuration.
#[derive(Clone)]
pub(crate) struct MakeRustls {
    config: Arc<ClientConfig>,
}

impl<S> MakeTlsConnect<S> for MakeRustls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnect;
    type Error = io::Error;

    fn make_tls_connect(&mut self, domain: &str) -> io::Result<RustlsConnect> {
        let name = ServerName::try_from(domain.to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(RustlsConnect {
            name,
            config: self.config.clone(),
        })
    }
}

/// One handshake to come.
pub(crate) struct RustlsConnect {
    name: ServerName<'static>,
    config: Arc<ClientConfig>,
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        let connector = tokio_rustls::TlsConnector::from(self.config);
        Box::pin(async move { Ok(RustlsStream(connector.connect(self.name, stream).await?)) })
    }
}

/// An established TLS session. Channel binding is not offered, so SCRAM authenticates
/// without it (as libpq's `channel_binding=prefer` does against a client that has none).
pub(crate) struct RustlsStream<S>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
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
        let e = SslParams::split("host=db sslmode=verify-full")
            .unwrap()
            .connector()
            .err()
            .unwrap();
        assert!(e.contains("sslrootcert"), "{e}");
        assert!(SslParams::split("host=db sslmode='unterminated").is_err());
    }
}

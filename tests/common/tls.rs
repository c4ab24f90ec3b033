//! Test-time TLS: a CA, a server certificate for 127.0.0.1/localhost, one client certificate
//! per role, and a client certificate from a second, untrusted CA; `nats/tls.conf` started on
//! them; and the `nats:` settings each role connects with.

use std::path::{Path, PathBuf};

use backflow::bus::nats::{NatsOptions, Secret, TlsOptions};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

use super::nats::NatsServer;

/// The roles of `nats/roles.conf` that get a client certificate.
pub const ROLES: [&str; 4] = ["store-default", "agent", "bridge", "admin"];

/// PEM files in a temp dir, removed on drop.
pub struct TlsFiles {
    dir: TempDir,
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA cert")
}

impl TlsFiles {
    /// Generates every file (ECDSA P-256, in memory, no external tool).
    pub fn generate() -> Self {
        let files = Self {
            dir: TempDir::new().expect("a temp dir for certificates"),
        };
        let ca = new_ca("backflow test CA");
        files.write("ca.pem", &ca.pem());
        let issue = |name: &str,
                     sans: Vec<String>,
                     usage: ExtendedKeyUsagePurpose,
                     by: &CertifiedIssuer<'static, KeyPair>| {
            let mut params = CertificateParams::new(sans).expect("cert params");
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let key = KeyPair::generate().expect("key");
            let cert = params.signed_by(&key, &**by).expect("signed cert");
            files.write(&format!("{name}.pem"), &cert.pem());
            files.write(&format!("{name}-key.pem"), &key.serialize_pem());
        };
        issue(
            "server",
            vec!["localhost".into(), "127.0.0.1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
            &ca,
        );
        for role in ROLES {
            issue(role, vec![], ExtendedKeyUsagePurpose::ClientAuth, &ca);
        }
        let rogue = new_ca("another CA");
        issue("rogue", vec![], ExtendedKeyUsagePurpose::ClientAuth, &rogue);
        files
    }

    fn write(&self, name: &str, pem: &str) {
        std::fs::write(self.path(name), pem).expect("write a PEM file");
    }

    /// A file of the set (`ca.pem`, `server.pem`, `<role>.pem`, `<role>-key.pem`,
    /// `rogue.pem`, ...).
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The folder holding them.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// TLS settings presenting `cert`'s certificate (`None`: no client certificate).
    pub fn client(&self, cert: Option<&str>) -> TlsOptions {
        TlsOptions {
            ca_file: Some(self.path("ca.pem")),
            cert_file: cert.map(|c| self.path(&format!("{c}.pem"))),
            key_file: cert.map(|c| self.path(&format!("{c}-key.pem"))),
            required: true,
        }
    }
}

/// `tls://127.0.0.1:<port>` of `server`.
pub fn url(server: &NatsServer) -> String {
    format!("tls://127.0.0.1:{}", server.port)
}

impl TlsFiles {
    /// `nats/tls.conf` running on these certificates.
    pub fn start_server(&self) -> NatsServer {
        NatsServer::with_config_edited(
            "nats/tls.conf",
            &[("nats/tls/", format!("{}/", self.dir().display()))],
        )
    }

    /// The settings `role` connects to `server` with: its user and password, its own client
    /// certificate.
    pub fn options(&self, server: &NatsServer, role: &str) -> NatsOptions {
        NatsOptions {
            user: Some(role.into()),
            password: Some(Secret::new(format!("{role}-secret"))),
            inbox_prefix: Some(format!("_INBOX_{role}")),
            tls: self.client(Some(role)),
            ..NatsOptions::for_url(url(server))
        }
    }

    /// The same as a `nats:` block for a binary's settings file.
    pub fn yaml(&self, server: &NatsServer, role: &str) -> String {
        format!(
            "nats:\n  servers: ['{}']\n  user: {role}\n  password: {role}-secret\n  \
             inbox_prefix: _INBOX_{role}\n  \
             tls: {{ca_file: '{}', cert_file: '{}', key_file: '{}', required: true}}\n",
            url(server),
            self.path("ca.pem").display(),
            self.path(&format!("{role}.pem")).display(),
            self.path(&format!("{role}-key.pem")).display(),
        )
    }
}

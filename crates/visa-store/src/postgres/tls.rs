//! Where the database is and how to reach it: a `postgres://` URL with `sslmode` as libpq
//! spells it. The driver parses only `disable`, `prefer` and `require`, so `verify-ca`,
//! `verify-full` and `sslrootcert` (or `PGSSLROOTCERT`) are read here first and removed.
//!
//! `prefer` (the default) and `require` encrypt without checking the certificate (libpq's
//! meaning: a server with a self-signed certificate keeps working); `verify-ca` and
//! `verify-full` both check the chain and the host name against the web PKI roots plus
//! `sslrootcert` (a chain check without the name protects less and costs the same).

use crate::StoreError;
use postgres::config::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::str::FromStr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    /// Encrypt if the server offers TLS, without checking its certificate.
    Prefer,
    /// Encrypt, without checking the certificate.
    Require,
    /// Encrypt and check the chain and the host name.
    Verify,
}

/// A parsed database URL.
#[derive(Clone)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub mode: TlsMode,
    root_cert: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        f.debug_struct("Target").field("hosts", &self.config.get_hosts()).field("mode", &self.mode).finish()
    }
}

impl Target {
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        let invalid = |why: String| StoreError::Internal(format!("the database URL is not valid: {why}"));
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut mode = TlsMode::Prefer;
        let mut root_cert = std::env::var_os("PGSSLROOTCERT").map(std::path::PathBuf::from);
        let mut kept = vec![];
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            match name {
                "sslmode" => {
                    mode = match value {
                        "disable" => TlsMode::Disable,
                        "allow" | "prefer" => TlsMode::Prefer,
                        "require" => TlsMode::Require,
                        "verify-ca" | "verify-full" => TlsMode::Verify,
                        other => return Err(invalid(format!("unknown sslmode '{other}'"))),
                    }
                }
                "sslrootcert" => root_cert = Some(value.into()),
                _ => kept.push(pair),
            }
        }
        let rest = if kept.is_empty() { base.to_owned() } else { format!("{base}?{}", kept.join("&")) };
        // The driver's own error names the part that is wrong, never the password.
        let mut config = tokio_postgres::Config::from_str(&rest).map_err(|e| invalid(e.to_string()))?;
        config.ssl_mode(match mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            TlsMode::Require | TlsMode::Verify => SslMode::Require,
        });
        Ok(Self { config, mode, root_cert })
    }

    /// The TLS connector for this mode (also built for `disable`: the driver never uses it then).
    pub fn connector(&self) -> Result<tokio_postgres_rustls::MakeRustlsConnect, StoreError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Internal(format!("TLS: {e}")))?;
        let config = match self.mode {
            TlsMode::Verify => {
                let mut roots = rustls::RootCertStore::empty();
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
                if let Some(path) = &self.root_cert {
                    let unreadable = |e: String| StoreError::Internal(format!("sslrootcert {}: {e}", path.display()));
                    for cert in CertificateDer::pem_file_iter(path).map_err(|e| unreadable(e.to_string()))? {
                        roots
                            .add(cert.map_err(|e| unreadable(e.to_string()))?)
                            .map_err(|e| unreadable(e.to_string()))?;
                    }
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            _ => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth(),
        };
        Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
    }
}

/// `prefer` and `require`: the session is encrypted (the handshake's signatures are checked)
/// but the certificate is not, as libpq does for these modes.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_read_as_libpq_spells_it_and_the_rest_reaches_the_driver() {
        let t =
            Target::parse("postgres://visa:pw@db.internal:5433/visa?sslmode=verify-full&application_name=n1").unwrap();
        assert_eq!(t.mode, TlsMode::Verify);
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(t.config.get_application_name(), Some("n1"));
        assert_eq!(t.config.get_ports(), &[5433]);
        assert_eq!(Target::parse("postgres://h/db").unwrap().mode, TlsMode::Prefer);
        assert_eq!(Target::parse("postgres://h/db?sslmode=disable").unwrap().mode, TlsMode::Disable);
        let err = Target::parse("postgres://h/db?sslmode=sometimes").unwrap_err().to_string();
        assert!(err.contains("unknown sslmode 'sometimes'"), "{err}");
        let debug = format!("{:?}", Target::parse("postgres://u:hunter2@h/db").unwrap());
        assert!(!debug.contains("hunter2"), "{debug}");
        for mode in ["require", "verify-ca"] {
            Target::parse(&format!("postgres://h/db?sslmode={mode}")).unwrap().connector().unwrap();
        }
    }
}

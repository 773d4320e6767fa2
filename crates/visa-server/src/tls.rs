//! HTTPS with rustls (no OpenSSL): `--tls-cert` / `--tls-key` PEM files, loaded at start and
//! reloaded on SIGHUP (`Server::reload_tls`), so a renewed certificate is picked up without a
//! restart or a dropped connection.

use axum_server::tls_rustls::RustlsConfig;
use std::path::PathBuf;

/// Where the certificate chain and its private key live (PEM).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The live TLS configuration of a running server.
pub struct Tls {
    files: TlsFiles,
    config: RustlsConfig,
}

impl Tls {
    pub async fn load(files: TlsFiles) -> anyhow::Result<Self> {
        // One process-wide crypto provider (ring); a second install is a harmless no-op.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = RustlsConfig::from_pem_file(&files.cert, &files.key).await.map_err(|e| {
            anyhow::anyhow!("cannot load TLS certificate {} / key {}: {e}", files.cert.display(), files.key.display())
        })?;
        Ok(Self { files, config })
    }

    pub fn config(&self) -> RustlsConfig {
        self.config.clone()
    }

    /// Reads the files again; on failure the current certificate stays in use.
    pub async fn reload(&self) -> anyhow::Result<()> {
        self.config
            .reload_from_pem_file(&self.files.cert, &self.files.key)
            .await
            .map_err(|e| anyhow::anyhow!("cannot reload the TLS certificate: {e}"))
    }
}

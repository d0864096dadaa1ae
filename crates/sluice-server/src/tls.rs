//! TLS: the `[server] tls_*` settings, the TLS listener, and the per-connection handshake.
//!
//! rustls with the `ring` provider (given explicitly, so nothing depends on a process-wide
//! default provider). The certificate chain, key and client CA are read once, at bind; a
//! missing or unusable file is an `InvalidInput` error naming the field. Each accepted TCP
//! connection is handed by the server to its own task, which runs [`handshake`] and then
//! serves the decrypted stream like any other connection, so a slow or silent client never
//! holds up the accept loop. This module returns streams and knows nothing of the server.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_rustls::TlsAcceptor;
use tracing::warn;

use crate::config::ServerConfig;

/// How long a client has to complete the TLS handshake before it is disconnected.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS listener: a TCP listener and the acceptor that wraps what it accepts.
pub struct TlsListener {
    /// The bound TCP listener.
    pub listener: TcpListener,
    /// The handshake side, shared by every connection.
    pub acceptor: TlsAcceptor,
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// Checks how the `tls_*` settings combine and loads the certificate chain, key and client
/// CA. `Ok(None)` when TLS is off (no `tls_port`).
pub fn acceptor_from_config(config: &ServerConfig) -> io::Result<Option<TlsAcceptor>> {
    if config.tls_cert.is_some() != config.tls_key.is_some() {
        return Err(invalid(
            "[server] tls_cert and tls_key must be set together".to_string(),
        ));
    }
    if config.tls_only && config.tls_port.is_none() {
        return Err(invalid(
            "[server] tls_only requires tls_port (with tls_cert and tls_key)".to_string(),
        ));
    }
    let Some(tls_port) = config.tls_port else {
        if config.tls_cert.is_some() || config.tls_ca_cert.is_some() {
            warn!("[server] tls_cert/tls_key/tls_ca_cert are set but tls_port is not: TLS is off");
        }
        return Ok(None);
    };
    let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) else {
        return Err(invalid(
            "[server] tls_port requires tls_cert and tls_key".to_string(),
        ));
    };
    if !config.tls_only && tls_port != 0 && tls_port == config.port {
        return Err(invalid(format!(
            "[server] tls_port {tls_port} is also the plaintext port; pick another, or set tls_only = true"
        )));
    }
    let server_config = server_config(cert, key, config.tls_ca_cert.as_deref())?;
    Ok(Some(TlsAcceptor::from(Arc::new(server_config))))
}

/// The rustls server configuration from PEM files.
fn server_config(
    cert_path: &Path,
    key_path: &Path,
    ca_path: Option<&Path>,
) -> io::Result<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = load_certs("tls_cert", cert_path)?;
    let key = load_key(key_path)?;
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid(format!("[server] TLS: {e}")))?;
    let builder = match ca_path {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = rustls::RootCertStore::empty();
            for ca in load_certs("tls_ca_cert", path)? {
                roots.add(ca).map_err(|e| {
                    invalid(format!(
                        "[server] tls_ca_cert: {}: unusable CA certificate: {e}",
                        path.display()
                    ))
                })?;
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .map_err(|e| invalid(format!("[server] tls_ca_cert: {}: {e}", path.display())))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    builder.with_single_cert(chain, key).map_err(|e| {
        invalid(format!(
            "[server] tls_cert / tls_key: {} and {} are not a usable certificate and key: {e}",
            cert_path.display(),
            key_path.display()
        ))
    })
}

fn read(field: &str, path: &Path) -> io::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| {
        invalid(format!(
            "[server] {field}: cannot read {}: {e}",
            path.display()
        ))
    })
}

/// Every certificate in a PEM file (at least one).
fn load_certs(field: &str, path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let pem = read(field, path)?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            invalid(format!(
                "[server] {field}: {}: bad PEM: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(invalid(format!(
            "[server] {field}: {}: no PEM certificate (BEGIN CERTIFICATE) found",
            path.display()
        )));
    }
    Ok(certs)
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) in a PEM file.
fn load_key(path: &Path) -> io::Result<PrivateKeyDer<'static>> {
    let pem = read("tls_key", path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => invalid(format!(
            "[server] tls_key: {}: no PEM private key (BEGIN PRIVATE KEY) found",
            path.display()
        )),
        e => invalid(format!(
            "[server] tls_key: {}: bad PEM: {e}",
            path.display()
        )),
    })
}

/// Completes the server side of a TLS handshake, within [`HANDSHAKE_TIMEOUT`] (a timeout is
/// `TimedOut`).
pub async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
) -> io::Result<tokio_rustls::server::TlsStream<TcpStream>> {
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
        Ok(done) => done,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "TLS handshake timed out",
        )),
    }
}

/// Tells a TLS client over the connection limit why (after the handshake, so it can read
/// it), then closes.
pub async fn refuse(acceptor: TlsAcceptor, stream: TcpStream, line: &str) {
    let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        let mut stream = acceptor.accept(stream).await?;
        stream.write_all(format!("-{line}\r\n").as_bytes()).await?;
        stream.shutdown().await
    })
    .await;
}

//! The HTTPS listener: certificate and key from settings, minimum protocol version, and an
//! optional client CA bundle for mutual TLS. The client certificate's fingerprint is handed to
//! each request of the connection (see [`super::network::ClientCert`]).

use crate::config::TlsSettings;
use openssl::ssl::{SslAcceptor, SslAcceptorBuilder, SslFiletype, SslMethod, SslVerifyMode, SslVersion};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("tls.{0} is set but tls.{1} is not")]
    Incomplete(&'static str, &'static str),
    #[error("tls.min_version must be 1.2 or 1.3, not `{0}`")]
    Version(String),
    #[error("{what} {path}: {source}")]
    File { what: &'static str, path: String, source: openssl::error::ErrorStack },
    #[error("TLS set-up failed: {0}")]
    Ssl(#[from] openssl::error::ErrorStack),
}

/// `None` when no certificate is configured (plain HTTP).
pub fn acceptor(t: &TlsSettings) -> Result<Option<SslAcceptorBuilder>, TlsError> {
    let (cert, key) = match (&t.cert_file, &t.key_file) {
        (None, None) => return Ok(None),
        (Some(_), None) => return Err(TlsError::Incomplete("cert_file", "key_file")),
        (None, Some(_)) => return Err(TlsError::Incomplete("key_file", "cert_file")),
        (Some(c), Some(k)) => (c, k),
    };
    let version = match t.min_version.as_str() {
        "1.2" => SslVersion::TLS1_2,
        "1.3" => SslVersion::TLS1_3,
        other => return Err(TlsError::Version(other.to_string())),
    };
    let mut b = SslAcceptor::mozilla_intermediate_v5(SslMethod::tls_server())?;
    b.set_min_proto_version(Some(version))?;
    b.set_certificate_chain_file(cert).map_err(|source| TlsError::File {
        what: "certificate",
        path: cert.display().to_string(),
        source,
    })?;
    b.set_private_key_file(key, SslFiletype::PEM).map_err(|source| TlsError::File {
        what: "private key",
        path: key.display().to_string(),
        source,
    })?;
    b.check_private_key()?;
    if let Some(ca) = &t.client_ca_file {
        b.set_ca_file(ca).map_err(|source| TlsError::File {
            what: "client CA bundle",
            path: ca.display().to_string(),
            source,
        })?;
        let mut mode = SslVerifyMode::PEER;
        if t.require_client_cert {
            mode |= SslVerifyMode::FAIL_IF_NO_PEER_CERT;
        }
        b.set_verify(mode);
    }
    Ok(Some(b))
}

//! TLS for a listener: a rustls server configuration offering HTTP/2 and HTTP/1.1 by
//! ALPN, serving a certificate read from PEM files and reloaded when they change.
//!
//! Built from a [`TlsSection`] of the config, so any listener with such a section (the
//! API listener, the admin listener) gets the same behaviour. The config only names
//! the files; they are first read here, in [`TlsAcceptor::start`], whose errors name
//! the config key that pointed at the bad file. A reload only affects handshakes that
//! start after it; established connections keep going.

mod certificate;
mod reload;
mod resolver;

pub use certificate::{CertificateError, PemFile};
pub(crate) use certificate::{read_chain, read_key};

use crate::config::TlsSection;
use reload::{CertificateReloader, FilesStamp};
use resolver::SwappableCertificate;
use rustls::ServerConfig;
use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::server::TlsStream;

/// How long a client may take to finish its handshake. A client that connects and says
/// nothing holds a task and a socket; this bounds how long.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why TLS cannot be set up.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The certificate or key files cannot be served. Shown after the config key of
    /// the file to fix, e.g. `server.tls.key_file: cannot read …`.
    #[error("{section}.{}: {error}", .error.file().config_key())]
    Certificate {
        /// Where the section naming the files is in the config, e.g. `server.tls`.
        section: &'static str,
        /// What is wrong with them.
        error: CertificateError,
    },
    /// rustls refused the configuration.
    #[error("cannot configure TLS: {0}")]
    Setup(#[source] rustls::Error),
    /// A directory holding the files cannot be watched for changes.
    #[error("cannot watch `{}` for certificate changes: {source}", dir.display())]
    Watch {
        /// The directory.
        dir: PathBuf,
        /// The watcher's error.
        source: notify::Error,
    },
}

/// Why one client's handshake did not complete. Expected now and then (scanners,
/// clients that do not trust us); it ends that connection only.
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    /// The client did not finish within [`HANDSHAKE_TIMEOUT`].
    #[error("TLS handshake timed out")]
    TimedOut,
    /// The handshake failed.
    #[error("TLS handshake failed: {0}")]
    Failed(#[source] std::io::Error),
}

/// Turns accepted TCP streams into TLS streams, presenting the current certificate.
/// Keeps the files watched for as long as it lives.
pub struct TlsAcceptor {
    acceptor: tokio_rustls::TlsAcceptor,
    _reloader: CertificateReloader,
}

impl TlsAcceptor {
    /// Loads the certificate named by `section` and starts watching its files.
    pub fn start(section: &TlsSection) -> Result<TlsAcceptor, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let stamp = FilesStamp::of(section);
        let loaded =
            certificate::load(section, &provider).map_err(|error| TlsError::Certificate {
                section: section.config_key,
                error,
            })?;
        let certificate = Arc::new(SwappableCertificate::new(loaded));
        let mut config = ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Setup)?
            .with_no_client_auth()
            .with_cert_resolver(certificate.clone());
        // The client picks; the server then reads the matching connection preface.
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let reloader = CertificateReloader::start(section.clone(), provider, certificate, stamp)?;
        Ok(TlsAcceptor {
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
            _reloader: reloader,
        })
    }

    /// The TLS handshake on `stream`, bounded by [`HANDSHAKE_TIMEOUT`]. The future
    /// owns what it needs, so it can be moved to the connection's own task.
    pub fn handshake<S>(
        &self,
        stream: S,
    ) -> impl Future<Output = Result<TlsStream<S>, HandshakeError>> + Send + use<S>
    where
        S: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let accept = self.acceptor.accept(stream);
        async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
                Ok(Ok(stream)) => Ok(stream),
                Ok(Err(e)) => Err(HandshakeError::Failed(e)),
                Err(_elapsed) => Err(HandshakeError::TimedOut),
            }
        }
    }
}

//! TLS to the fleet's stores, Redis (`[cluster.tls]`) and PostgreSQL (`[ledger.tls]`):
//! the files a [`StoreTls`] names, read once at start with errors that say which file
//! is wrong and how (never what a key holds).
//!
//! The server's certificate is always verified, chain and name, with the ring
//! provider the rest of the gateway uses: against the section's `ca_file`, or the
//! public web's roots when there is none.

use crate::config::StoreTls;
use crate::server::tls::{CertificateError, PemFile, read_chain, read_key};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// What a [`StoreTls`]'s files hold, checked.
pub struct StoreCertificates {
    /// The authorities to trust; none: the public web's roots.
    pub authorities: Option<Vec<CertificateDer<'static>>>,
    /// The client's certificate chain and key, for mutual TLS.
    pub client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl StoreCertificates {
    /// Reads the files `tls` names (none named: the public roots, no client
    /// certificate).
    pub fn read(tls: Option<&StoreTls>) -> Result<StoreCertificates, CertificateError> {
        let Some(tls) = tls else {
            return Ok(StoreCertificates {
                authorities: None,
                client: None,
            });
        };
        let authorities = tls.ca_file.as_deref().map(read_chain).transpose()?;
        let client = match (&tls.cert_file, &tls.key_file) {
            (Some(cert), Some(key)) => Some((read_chain(cert)?, read_key(key)?)),
            // The config's check pairs them.
            _ => None,
        };
        Ok(StoreCertificates {
            authorities,
            client,
        })
    }

    /// A rustls client configuration that verifies the server against these
    /// authorities and presents the client certificate, if any.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, rustls::Error> {
        let mut roots = RootCertStore::empty();
        match &self.authorities {
            Some(authorities) => {
                for authority in authorities {
                    roots.add(authority.clone())?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
        match &self.client {
            Some((chain, key)) => builder.with_client_auth_cert(chain.clone(), key.clone_key()),
            None => Ok(builder.with_no_client_auth()),
        }
    }
}

/// The PEM text of `path`, for a client that parses PEM itself (redis-rs), after
/// [`StoreCertificates::read`] has checked it.
pub fn pem_text(file: PemFile, path: &Path) -> Result<Vec<u8>, CertificateError> {
    std::fs::read(path).map_err(|source| CertificateError::Unreadable {
        file,
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    fn files(dir: &Path) -> StoreTls {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["store".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        std::fs::write(dir.join("ca.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("client.pem"), cert.pem()).unwrap();
        std::fs::write(dir.join("client.key"), key.serialize_pem()).unwrap();
        StoreTls {
            ca_file: Some(dir.join("ca.pem")),
            cert_file: Some(dir.join("client.pem")),
            key_file: Some(dir.join("client.key")),
        }
    }

    #[test]
    fn an_authority_and_a_client_certificate_make_a_client_config() {
        let dir = tempfile::tempdir().unwrap();
        let tls = files(dir.path());
        let read = StoreCertificates::read(Some(&tls)).unwrap();
        assert_eq!(read.authorities.as_ref().unwrap().len(), 1);
        assert!(read.client.is_some());
        let config = read.client_config().unwrap();
        assert!(config.client_auth_cert_resolver.has_certs());
        // No section: the public roots, no client certificate.
        let public = StoreCertificates::read(None).unwrap();
        assert!(public.authorities.is_none());
        assert!(
            !public
                .client_config()
                .unwrap()
                .client_auth_cert_resolver
                .has_certs()
        );
    }

    #[test]
    fn a_wrong_file_is_named_and_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let mut tls = files(dir.path());
        std::fs::write(dir.path().join("ca.pem"), "no certificate here").unwrap();
        let e = StoreCertificates::read(Some(&tls))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("ca.pem") && e.contains("no PEM certificate"),
            "{e}"
        );

        tls.ca_file = Some(dir.path().join("missing.pem"));
        let e = StoreCertificates::read(Some(&tls))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("cannot read") && e.contains("missing.pem"),
            "{e}"
        );

        tls.ca_file = None;
        std::fs::write(
            dir.path().join("client.key"),
            "-----BEGIN PRIVATE KEY-----\nsecret!",
        )
        .unwrap();
        let e = StoreCertificates::read(Some(&tls))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("client.key") && !e.contains("secret!"), "{e}");
    }
}

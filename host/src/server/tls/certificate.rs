//! Reading a certificate chain and its private key from PEM files into what rustls
//! serves, with errors that say which file is wrong and how — never what the key is.

use crate::config::TlsSection;
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};

/// Which of the two files of a [`TlsSection`] a problem is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PemFile {
    /// The certificate chain.
    Certificate,
    /// The private key.
    Key,
}

impl PemFile {
    /// The file's key inside its TLS section, for errors that name the key path.
    pub fn config_key(self) -> &'static str {
        match self {
            PemFile::Certificate => "cert_file",
            PemFile::Key => "key_file",
        }
    }
}

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The file cannot be opened or read.
    #[error("cannot read `{}`: {source}", path.display())]
    Unreadable {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not well-formed PEM.
    #[error("`{}` is not valid PEM: {reason}", path.display())]
    MalformedPem {
        /// Which file.
        file: PemFile,
        /// Its path.
        path: PathBuf,
        /// What is wrong, in words that never quote the file's content.
        reason: &'static str,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("`{}` holds no PEM certificate (a `BEGIN CERTIFICATE` block)", path.display())]
    NoCertificate {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key file holds no private key block.
    #[error(
        "`{}` holds no PEM private key (a `BEGIN PRIVATE KEY`, `BEGIN RSA PRIVATE KEY` or `BEGIN EC PRIVATE KEY` block)",
        path.display()
    )]
    NoPrivateKey {
        /// The key file.
        path: PathBuf,
    },
    /// The key block cannot be used for signing (corrupt, or an unsupported algorithm).
    #[error("the private key in `{}` is not usable: {source}", path.display())]
    InvalidKey {
        /// The key file.
        path: PathBuf,
        /// rustls's reason (it names the problem, not the key).
        source: rustls::Error,
    },
    /// The leaf certificate cannot be parsed.
    #[error("the first certificate in `{}` is not usable: {source}", path.display())]
    InvalidCertificate {
        /// The certificate file.
        path: PathBuf,
        /// rustls's reason.
        source: rustls::Error,
    },
    /// The key is not the leaf certificate's key.
    #[error(
        "the private key in `{}` does not belong to the first certificate in `{}`",
        key_path.display(),
        cert_path.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert_path: PathBuf,
        /// The key file.
        key_path: PathBuf,
    },
}

impl CertificateError {
    /// The file to fix. A key that does not match the certificate is reported against
    /// the key file: the chain is usually the part that is right.
    pub fn file(&self) -> PemFile {
        match self {
            CertificateError::Unreadable { file, .. }
            | CertificateError::MalformedPem { file, .. } => *file,
            CertificateError::NoCertificate { .. }
            | CertificateError::InvalidCertificate { .. } => PemFile::Certificate,
            CertificateError::NoPrivateKey { .. }
            | CertificateError::InvalidKey { .. }
            | CertificateError::KeyMismatch { .. } => PemFile::Key,
        }
    }
}

/// Reads the chain and key named by `section` and checks that they belong together.
pub fn load(
    section: &TlsSection,
    provider: &CryptoProvider,
) -> Result<CertifiedKey, CertificateError> {
    let chain = read_chain(&section.cert_file)?;
    let key = read_key(&section.key_file)?;
    let key_path = &section.key_file;
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| CertificateError::InvalidKey {
            path: key_path.clone(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        // The key type cannot tell its public half: nothing to compare, as rustls's
        // own `CertifiedKey::from_der` also accepts.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(CertificateError::KeyMismatch {
            cert_path: section.cert_file.clone(),
            key_path: key_path.clone(),
        }),
        Err(source) => Err(CertificateError::InvalidCertificate {
            path: section.cert_file.clone(),
            source,
        }),
    }
}

/// The certificates of the PEM file at `path` (at least one).
pub(crate) fn read_chain(path: &Path) -> Result<Vec<CertificateDer<'static>>, CertificateError> {
    let file = PemFile::Certificate;
    let chain = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(file, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(file, path, e))?;
    if chain.is_empty() {
        return Err(CertificateError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(chain)
}

/// The private key of the PEM file at `path`.
pub(crate) fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, CertificateError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pem::Error::NoItemsFound => CertificateError::NoPrivateKey {
            path: path.to_owned(),
        },
        e => pem_error(PemFile::Key, path, e),
    })
}

/// Maps a PEM parser error to ours. The parser's own messages may quote a line of the
/// file; for a key file that could be key material, so none of them are passed on.
fn pem_error(file: PemFile, path: &Path, error: pem::Error) -> CertificateError {
    let reason = match error {
        pem::Error::Io(source) => {
            return CertificateError::Unreadable {
                file,
                path: path.to_owned(),
                source,
            };
        }
        pem::Error::MissingSectionEnd { .. } => "a section has no `END` line",
        pem::Error::IllegalSectionStart { .. } => "a `BEGIN` line is malformed",
        pem::Error::Base64Decode(_) => "a section's body is not valid base64",
        pem::Error::SectionTooLarge => "a section is too large",
        pem::Error::NoItemsFound => "no section found",
        _ => "unreadable PEM",
    };
    CertificateError::MalformedPem {
        file,
        path: path.to_owned(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }
        fn write(&self, name: &str, content: &str) -> PathBuf {
            let path = self.dir.path().join(name);
            std::fs::write(&path, content).unwrap();
            path
        }
        fn section(&self, cert: &str, key: &str) -> TlsSection {
            TlsSection {
                cert_file: self.write("cert.pem", cert),
                key_file: self.write("key.pem", key),
                config_key: "server.tls",
            }
        }
    }

    fn self_signed() -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    #[test]
    fn a_matching_pair_loads() {
        let (cert, key) = self_signed();
        let files = Files::new();
        let loaded = load(&files.section(&cert, &key), &provider()).unwrap();
        assert_eq!(loaded.cert.len(), 1);
    }

    #[test]
    fn a_missing_file_is_unreadable() {
        let (cert, _) = self_signed();
        let files = Files::new();
        let section = TlsSection {
            cert_file: files.write("cert.pem", &cert),
            key_file: files.dir.path().join("absent.pem"),
            config_key: "server.tls",
        };
        let e = load(&section, &provider()).unwrap_err();
        assert_eq!(e.file(), PemFile::Key);
        assert!(e.to_string().starts_with("cannot read `"), "{e}");
    }

    #[test]
    fn files_without_the_expected_blocks_are_refused() {
        let (cert, key) = self_signed();
        let files = Files::new();

        // A key where the chain should be, and the chain where the key should be.
        let e = load(&files.section(&key, &key), &provider()).unwrap_err();
        assert!(matches!(e, CertificateError::NoCertificate { .. }), "{e}");
        let e = load(&files.section(&cert, &cert), &provider()).unwrap_err();
        assert!(matches!(e, CertificateError::NoPrivateKey { .. }), "{e}");
        assert_eq!(e.file(), PemFile::Key);

        let e = load(&files.section(&cert, "not pem at all"), &provider()).unwrap_err();
        assert!(matches!(e, CertificateError::NoPrivateKey { .. }), "{e}");
    }

    #[test]
    fn a_corrupt_key_is_named_without_its_content() {
        let (cert, _) = self_signed();
        let files = Files::new();
        let junk = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWJ5dGVz\n-----END PRIVATE KEY-----\n";
        let e = load(&files.section(&cert, junk), &provider()).unwrap_err();
        assert!(matches!(e, CertificateError::InvalidKey { .. }), "{e}");
        assert!(!e.to_string().contains("c2VjcmV0"), "{e}");
    }

    #[test]
    fn a_key_of_another_certificate_is_a_mismatch() {
        let (cert, _) = self_signed();
        let (_, other_key) = self_signed();
        let files = Files::new();
        let e = load(&files.section(&cert, &other_key), &provider()).unwrap_err();
        assert!(matches!(e, CertificateError::KeyMismatch { .. }), "{e}");
        assert_eq!(e.file(), PemFile::Key);
    }
}

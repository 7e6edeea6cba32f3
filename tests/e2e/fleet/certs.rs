//! Certificates for the stores' TLS tests, made at test time by a throwaway CA: the
//! server's (for `localhost` and 127.0.0.1), a client's (mutual TLS), and the CA's,
//! as PEM files in a temporary directory.

use crate::tls::{Authority, Leaf};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Cheap to clone: the files live until the last clone is dropped.
#[derive(Clone)]
pub struct StoreCerts {
    dir: Arc<tempfile::TempDir>,
}

impl StoreCerts {
    /// A new CA's files, with a server and a client certificate it signed.
    pub fn new() -> StoreCerts {
        let authority = Authority::new("store CA");
        let certs = StoreCerts {
            dir: Arc::new(tempfile::tempdir().expect("a temporary directory")),
        };
        std::fs::write(certs.ca_file(), &authority.cert_pem).unwrap();
        let write = |leaf: Leaf, name: &str| {
            std::fs::write(certs.dir.path().join(format!("{name}.pem")), leaf.chain_pem).unwrap();
            std::fs::write(certs.dir.path().join(format!("{name}.key")), leaf.key_pem).unwrap();
        };
        write(authority.leaf(), "server");
        write(authority.client_leaf(), "client");
        certs
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
    pub fn ca_file(&self) -> PathBuf {
        self.dir().join("ca.pem")
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir().join("server.pem")
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir().join("server.key")
    }
    pub fn client_cert(&self) -> PathBuf {
        self.dir().join("client.pem")
    }
    pub fn client_key(&self) -> PathBuf {
        self.dir().join("client.key")
    }

    /// A `[cluster.tls]` or `[ledger.tls]` section's keys trusting this CA, with
    /// the client certificate.
    pub fn section(&self) -> String {
        format!(
            "ca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            self.ca_file().display(),
            self.client_cert().display(),
            self.client_key().display()
        )
    }

    pub fn read(path: &Path) -> Vec<u8> {
        std::fs::read(path).expect("a certificate file")
    }
}

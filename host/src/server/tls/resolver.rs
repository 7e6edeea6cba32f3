//! The certificate rustls presents, swappable while the server runs.

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use std::sync::Arc;

/// Hands every new handshake the current certificate. A reload swaps the pointer;
/// connections already established keep the session keys they negotiated, so they never
/// notice.
pub struct SwappableCertificate {
    current: ArcSwap<CertifiedKey>,
}

impl SwappableCertificate {
    /// Starts with `initial`.
    pub fn new(initial: CertifiedKey) -> SwappableCertificate {
        SwappableCertificate {
            current: ArcSwap::from_pointee(initial),
        }
    }

    /// Serves `next` to handshakes from now on.
    pub fn replace(&self, next: CertifiedKey) {
        self.current.store(Arc::new(next));
    }
}

impl ResolvesServerCert for SwappableCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

// Written by hand: the derived form would print the signing key's own `Debug`, and key
// material has no business in a log line.
impl std::fmt::Debug for SwappableCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SwappableCertificate")
            .field("chain_len", &self.current.load().cert.len())
            .finish_non_exhaustive()
    }
}

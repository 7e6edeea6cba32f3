//! Who is calling: API keys → tenants.
//!
//! Only SHA-256 hashes of keys are stored. A presented key is hashed, the hash looked
//! up, and the match confirmed with a constant-time comparison; the lookup's timing
//! depends only on the hash, which tells an attacker nothing about any stored key.
//! Keys never reach logs or error messages.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Arc;

/// A key's SHA-256.
pub type KeyHash = [u8; 32];

/// Hashes an API key as stored in the config.
pub fn hash_key(key: &str) -> KeyHash {
    Sha256::digest(key.as_bytes()).into()
}

/// Parses `sha256:<64 hex digits>`.
pub fn parse_key_hash(text: &str) -> Option<KeyHash> {
    let hex = text.strip_prefix("sha256:")?;
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

/// Formats a hash as the config stores it.
pub fn format_key_hash(hash: &KeyHash) -> String {
    use std::fmt::Write;
    hash.iter().fold(String::from("sha256:"), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The public id of the key in an authenticated `Authorization` header: the first
/// 8 hex digits of its SHA-256 (what the ledger records; never the key).
pub fn key_id(authorization: Option<&[u8]>) -> Arc<str> {
    let key = authorization
        .and_then(|h| std::str::from_utf8(h).ok())
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or("");
    format_key_hash(&hash_key(key))["sha256:".len()..]
        .get(..8)
        .unwrap_or("")
        .into()
}

/// Why a request could not be authenticated. Messages never include the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("missing API key: send `Authorization: Bearer <key>`")]
    Missing,
    /// A header that is not `Bearer <key>`.
    #[error("malformed Authorization header: expected `Bearer <key>`")]
    Malformed,
    /// A key no tenant has.
    #[error("invalid API key")]
    Unknown,
}

/// Every tenant's key hashes.
#[derive(Debug, Default)]
pub struct KeyRing {
    by_hash: HashMap<KeyHash, Arc<str>>,
}

impl KeyRing {
    /// Adds a key hash for `tenant`.
    pub fn insert(&mut self, hash: KeyHash, tenant: Arc<str>) {
        self.by_hash.insert(hash, tenant);
    }

    /// The tenant owning the key in an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<Arc<str>, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        let header = std::str::from_utf8(header).map_err(|_| AuthError::Malformed)?;
        let key = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .map(str::trim)
            .filter(|k| !k.is_empty() && !k.contains(' '))
            .ok_or(AuthError::Malformed)?;
        let presented = hash_key(key);
        match self.by_hash.get_key_value(&presented) {
            Some((stored, tenant)) if constant_time_eq(stored, &presented) => Ok(tenant.clone()),
            _ => Err(AuthError::Unknown),
        }
    }
}

fn constant_time_eq(a: &KeyHash, b: &KeyHash) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_tenants_by_hash() {
        let mut ring = KeyRing::default();
        ring.insert(hash_key("sb-alpha"), "alpha".into());
        assert_eq!(
            ring.authenticate(Some(b"Bearer sb-alpha")).as_deref(),
            Ok("alpha")
        );
        assert_eq!(
            ring.authenticate(Some(b"Bearer sb-beta")),
            Err(AuthError::Unknown)
        );
        assert_eq!(ring.authenticate(None), Err(AuthError::Missing));
        assert_eq!(
            ring.authenticate(Some(b"Basic abc")),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            ring.authenticate(Some(b"Bearer ")),
            Err(AuthError::Malformed)
        );
    }

    #[test]
    fn hashes_round_trip_through_text() {
        let h = hash_key("sb-alpha");
        assert_eq!(parse_key_hash(&format_key_hash(&h)), Some(h));
        assert_eq!(parse_key_hash("sha256:zz"), None);
        assert_eq!(parse_key_hash("md5:00"), None);
    }
}

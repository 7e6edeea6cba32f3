//! Every configured key hash, and the check of a presented key against them.

use super::key::{KeyHash, hash_key};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// Who is calling: the tenant and which of its keys. Nothing here is secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The tenant id.
    pub tenant: Arc<str>,
    /// The key's id (its configured `id`, or the first 8 hex digits of its hash).
    pub key_id: Arc<str>,
    /// The key's position in its tenant's key list (`key_hashes`, then `keys`).
    pub key_index: usize,
}

/// What was disabled, named by id (never by key).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disabled {
    /// The key itself, by id.
    Key(Arc<str>),
    /// The key's tenant, by id.
    Tenant(Arc<str>),
}

impl fmt::Display for Disabled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disabled::Key(id) => write!(f, "API key `{id}` is disabled"),
            Disabled::Tenant(id) => write!(f, "tenant `{id}` is disabled"),
        }
    }
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
    /// A known key that may not be used: it, or its tenant, is disabled.
    #[error("{0}")]
    Disabled(Disabled),
}

struct Entry {
    caller: Caller,
    disabled: Option<Disabled>,
}

/// Every tenant's key hashes.
///
/// A presented key is hashed, the hash looked up, and the match confirmed with a
/// constant-time comparison; the lookup's timing depends only on the hash, which tells
/// an attacker nothing about any stored key.
#[derive(Default)]
pub struct KeyRing {
    by_hash: HashMap<KeyHash, Entry>,
}

impl fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyRing")
            .field("keys", &self.by_hash.len())
            .finish()
    }
}

impl KeyRing {
    /// Adds a key hash for `caller`; a disabled key (or a key of a disabled tenant)
    /// authenticates only to be refused. Returns `false`, changing nothing, when the
    /// hash is already present (the config refuses duplicates before this).
    pub fn insert(&mut self, hash: KeyHash, caller: Caller, disabled: Option<Disabled>) -> bool {
        match self.by_hash.entry(hash) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(Entry { caller, disabled });
                true
            }
        }
    }

    /// Who sent an `Authorization` header value.
    pub fn authenticate(&self, authorization: Option<&[u8]>) -> Result<&Caller, AuthError> {
        let header = authorization.ok_or(AuthError::Missing)?;
        self.find(super::bearer_token(header).ok_or(AuthError::Malformed)?)
    }

    /// Who sent an `x-api-key` header value (how Anthropic's clients present a key):
    /// the key itself, without a scheme.
    pub fn authenticate_api_key(&self, value: &[u8]) -> Result<&Caller, AuthError> {
        let key = std::str::from_utf8(value)
            .ok()
            .map(|k| k.trim_matches([' ', '\t']))
            .filter(|k| !k.is_empty() && !k.contains([' ', '\t']))
            .ok_or(AuthError::Malformed)?;
        self.find(key)
    }

    fn find(&self, key: &str) -> Result<&Caller, AuthError> {
        let presented = hash_key(key);
        match self.by_hash.get_key_value(&presented) {
            Some((stored, entry)) if constant_time_eq(stored, &presented) => {
                match &entry.disabled {
                    Some(what) => Err(AuthError::Disabled(what.clone())),
                    None => Ok(&entry.caller),
                }
            }
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

    fn caller(tenant: &str, key: &str, index: usize) -> Caller {
        Caller {
            tenant: tenant.into(),
            key_id: key.into(),
            key_index: index,
        }
    }

    #[test]
    fn keys_map_to_tenants_and_key_ids_by_hash() {
        let mut ring = KeyRing::default();
        assert!(ring.insert(hash_key("sb-alpha"), caller("alpha", "a1", 0), None));
        assert!(ring.insert(hash_key("sb-alpha-2"), caller("alpha", "a2", 1), None));
        assert!(!ring.insert(hash_key("sb-alpha"), caller("beta", "b", 0), None));
        assert_eq!(
            ring.authenticate(Some(b"Bearer sb-alpha-2")),
            Ok(&caller("alpha", "a2", 1))
        );
        assert_eq!(
            ring.authenticate(Some(b"bearer  sb-alpha ")),
            Ok(&caller("alpha", "a1", 0))
        );
        assert_eq!(
            ring.authenticate_api_key(b"sb-alpha-2"),
            Ok(&caller("alpha", "a2", 1))
        );
        assert_eq!(
            ring.authenticate_api_key(b"Bearer sb-alpha-2"),
            Err(AuthError::Malformed)
        );
        assert_eq!(
            ring.authenticate_api_key(b"sb-beta"),
            Err(AuthError::Unknown)
        );
        assert_eq!(
            ring.authenticate(Some(b"Bearer sb-beta")),
            Err(AuthError::Unknown)
        );
        assert_eq!(ring.authenticate(None), Err(AuthError::Missing));
        // Only the spaces and tabs HTTP allows around a value are trimmed: with any
        // other white space around it, a key is another key.
        for other in ["Bearer sb-alpha\u{a0}", "Bearer \u{2003}sb-alpha"] {
            assert_eq!(
                ring.authenticate(Some(other.as_bytes())),
                Err(AuthError::Unknown),
                "{other:?}"
            );
        }
        for malformed in [
            &b"Basic abc"[..],
            b"Bearer ",
            b"sb-alpha",
            b"Bearer sb-alpha extra",
            b"Bearer \xff\xfe",
        ] {
            assert_eq!(
                ring.authenticate(Some(malformed)),
                Err(AuthError::Malformed),
                "{malformed:?}"
            );
        }
    }

    #[test]
    fn disabled_keys_and_tenants_are_refused_by_name_not_key() {
        let mut ring = KeyRing::default();
        ring.insert(
            hash_key("sb-off"),
            caller("alpha", "old", 0),
            Some(Disabled::Key("old".into())),
        );
        ring.insert(
            hash_key("sb-gone"),
            caller("gone", "k", 0),
            Some(Disabled::Tenant("gone".into())),
        );
        let key = ring.authenticate(Some(b"Bearer sb-off")).unwrap_err();
        assert_eq!(key.to_string(), "API key `old` is disabled");
        let tenant = ring.authenticate(Some(b"Bearer sb-gone")).unwrap_err();
        assert_eq!(tenant.to_string(), "tenant `gone` is disabled");
    }
}

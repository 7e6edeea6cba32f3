//! The per-tenant key-value store policies keep learned state in.
//!
//! It lives in the host, so it outlives any instance and any policy version, and all
//! instances of a tenant share it. Every operation takes one shard lock briefly; none
//! is held across a policy call.

use dashmap::DashMap;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Size limits of a tenant's store.
#[derive(Debug, Clone, Copy)]
pub struct StateLimits {
    /// Longest key, in bytes.
    pub max_key: usize,
    /// Largest value, in bytes.
    pub max_value: usize,
    /// Most bytes (keys plus values) per tenant.
    pub max_total: usize,
}

impl Default for StateLimits {
    fn default() -> Self {
        StateLimits {
            max_key: 256,
            max_value: 64 * 1024,
            max_total: 4 * 1024 * 1024,
        }
    }
}

/// Why a write was refused; mirrors the contract's `state-error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// Key over the limit (bytes).
    #[error("state key over {0} bytes")]
    KeyTooLarge(usize),
    /// Value over the limit (bytes).
    #[error("state value over {0} bytes")]
    ValueTooLarge(usize),
    /// The tenant's store is full.
    #[error("tenant state store is full")]
    QuotaExceeded,
}

/// One tenant's store.
#[derive(Debug, Default)]
pub struct StateStore {
    entries: DashMap<String, Vec<u8>>,
    bytes: AtomicUsize,
    limits: StateLimits,
}

impl StateStore {
    /// An empty store with `limits`.
    pub fn new(limits: StateLimits) -> Self {
        StateStore {
            entries: DashMap::new(),
            bytes: AtomicUsize::new(0),
            limits,
        }
    }

    /// The value under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.entries.get(key).map(|v| v.value().clone())
    }

    /// Stores `value` under `key`, within the limits.
    pub fn set(&self, key: &str, value: Vec<u8>) -> Result<(), StateError> {
        if key.len() > self.limits.max_key {
            return Err(StateError::KeyTooLarge(self.limits.max_key));
        }
        if value.len() > self.limits.max_value {
            return Err(StateError::ValueTooLarge(self.limits.max_value));
        }
        let new_len = key.len() + value.len();
        match self.entries.entry(key.to_owned()) {
            dashmap::Entry::Occupied(mut e) => {
                let old_len = key.len() + e.get().len();
                if new_len > old_len && !self.reserve(new_len - old_len) {
                    return Err(StateError::QuotaExceeded);
                }
                if new_len < old_len {
                    self.bytes.fetch_sub(old_len - new_len, Ordering::Relaxed);
                }
                e.insert(value);
            }
            dashmap::Entry::Vacant(e) => {
                if !self.reserve(new_len) {
                    return Err(StateError::QuotaExceeded);
                }
                e.insert(value);
            }
        }
        Ok(())
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) {
        if let Some((k, v)) = self.entries.remove(key) {
            self.bytes.fetch_sub(k.len() + v.len(), Ordering::Relaxed);
        }
    }

    /// Bytes used (keys plus values).
    pub fn bytes_used(&self) -> usize {
        self.bytes.load(Ordering::Relaxed)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the store is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn reserve(&self, extra: usize) -> bool {
        self.bytes
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                used.checked_add(extra)
                    .filter(|t| *t <= self.limits.max_total)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enforces_limits_and_tracks_bytes() {
        let store = StateStore::new(StateLimits {
            max_key: 4,
            max_value: 8,
            max_total: 20,
        });
        assert_eq!(
            store.set("toolong", vec![]),
            Err(StateError::KeyTooLarge(4))
        );
        assert_eq!(
            store.set("k", vec![0; 9]),
            Err(StateError::ValueTooLarge(8))
        );
        store.set("a", vec![0; 8]).unwrap();
        store.set("b", vec![0; 8]).unwrap();
        assert_eq!(store.bytes_used(), 18);
        assert_eq!(store.set("c", vec![0; 2]), Err(StateError::QuotaExceeded));
        store.set("a", vec![0; 1]).unwrap();
        assert_eq!(store.bytes_used(), 11);
        store.set("c", vec![0; 2]).unwrap();
        store.delete("b");
        store.delete("absent");
        assert_eq!(store.bytes_used(), 5);
        assert_eq!(store.get("c"), Some(vec![0; 2]));
    }
}

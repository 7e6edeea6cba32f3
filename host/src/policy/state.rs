//! The per-tenant key-value store policies keep learned state in.
//!
//! It lives in the host, so it outlives any instance and any policy version, and all
//! instances of a tenant share it. Every operation takes one shard lock briefly; none
//! is held across a policy call.

use dashmap::DashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

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
    /// Writes so far: a snapshot is taken only when this moved.
    writes: AtomicU64,
}

/// The first bytes of an encoded store (format version 1).
const SNAPSHOT_MAGIC: &[u8; 8] = b"SBSTATE1";

/// Why a snapshot could not be read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotError {
    /// Not a snapshot of this format.
    #[error("not a state snapshot (bad header)")]
    Header,
    /// Cut short or inconsistent.
    #[error("state snapshot is truncated or corrupt")]
    Corrupt,
}

impl StateStore {
    /// An empty store with `limits`.
    pub fn new(limits: StateLimits) -> Self {
        StateStore {
            entries: DashMap::new(),
            bytes: AtomicUsize::new(0),
            limits,
            writes: AtomicU64::new(0),
        }
    }

    /// Writes (sets and deletes) since the store was created.
    pub fn writes(&self) -> u64 {
        self.writes.load(Ordering::Relaxed)
    }

    /// The whole store as bytes: the header, then for each entry its key and value,
    /// each prefixed by its length (u32, little-endian). Entries are sorted by key,
    /// so equal stores encode equally.
    pub fn encode(&self) -> Vec<u8> {
        let mut entries: Vec<(String, Vec<u8>)> = self
            .entries
            .iter()
            .map(|e| (e.key().clone(), e.value().clone()))
            .collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        let mut out =
            Vec::with_capacity(SNAPSHOT_MAGIC.len() + 4 + self.bytes_used() + 8 * entries.len());
        out.extend_from_slice(SNAPSHOT_MAGIC);
        out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
        for (k, v) in &entries {
            out.extend_from_slice(&(k.len() as u32).to_le_bytes());
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(&(v.len() as u32).to_le_bytes());
            out.extend_from_slice(v);
        }
        out
    }

    /// A store with `limits` holding what [`encode`](Self::encode) wrote. Entries over
    /// the limits (which may have shrunk since) are dropped, not failed on.
    pub fn decode(bytes: &[u8], limits: StateLimits) -> Result<Self, SnapshotError> {
        let rest = bytes
            .strip_prefix(SNAPSHOT_MAGIC)
            .ok_or(SnapshotError::Header)?;
        let mut reader = Reader(rest);
        let count = reader.u32()?;
        let store = StateStore::new(limits);
        for _ in 0..count {
            let key_len = reader.u32()? as usize;
            let key = std::str::from_utf8(reader.take(key_len)?)
                .map_err(|_| SnapshotError::Corrupt)?
                .to_owned();
            let value_len = reader.u32()? as usize;
            let value = reader.take(value_len)?.to_vec();
            let _ = store.set(&key, value);
        }
        if !reader.0.is_empty() {
            return Err(SnapshotError::Corrupt);
        }
        store.writes.store(0, Ordering::Relaxed);
        Ok(store)
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
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) {
        if let Some((k, v)) = self.entries.remove(key) {
            self.bytes.fetch_sub(k.len() + v.len(), Ordering::Relaxed);
            self.writes.fetch_add(1, Ordering::Relaxed);
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

/// Reads length-prefixed fields from a snapshot.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], SnapshotError> {
        if self.0.len() < n {
            return Err(SnapshotError::Corrupt);
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn u32(&mut self) -> Result<u32, SnapshotError> {
        let bytes = self.take(4)?;
        Ok(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
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

    #[test]
    fn snapshots_round_trip_and_refuse_damage() {
        let store = StateStore::default();
        store.set("b", b"two".to_vec()).unwrap();
        store.set("a", vec![]).unwrap();
        store.set("gone", vec![1]).unwrap();
        store.delete("gone");
        assert_eq!(store.writes(), 4);
        let bytes = store.encode();
        let back = StateStore::decode(&bytes, StateLimits::default()).unwrap();
        assert_eq!(back.get("a"), Some(vec![]));
        assert_eq!(back.get("b"), Some(b"two".to_vec()));
        assert_eq!((back.len(), back.bytes_used(), back.writes()), (2, 5, 0));
        assert_eq!(back.encode(), bytes);
        for cut in 0..bytes.len() {
            assert!(StateStore::decode(&bytes[..cut], StateLimits::default()).is_err());
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            StateStore::decode(&longer, StateLimits::default()).err(),
            Some(SnapshotError::Corrupt)
        );
    }
}

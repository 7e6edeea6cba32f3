//! The per-tenant key-value store policies keep learned state in.
//!
//! It lives in the host, so it outlives any instance and any policy version, and all
//! instances of a tenant share it. Every operation takes one shard lock briefly; none
//! is held across a policy call. `add` reads, adds and writes under that one lock, so
//! concurrent counters lose nothing.
//!
//! In a fleet the store is also a replica of the tenant's store in Redis: every local
//! write is handed to [`StateStore::replicate_to`]'s sink as a [`StateChange`], and the
//! fleet's values come back through [`StateStore::apply_fleet`].

use dashmap::DashMap;
use std::sync::OnceLock;
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

/// Why `add` refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddError {
    /// The key or the result is over a limit, or the store is full.
    #[error(transparent)]
    State(#[from] StateError),
    /// The stored value is not a JSON array of numbers, or a delta is not finite.
    #[error("state value is not an array of numbers, or a delta is not finite")]
    NotNumeric,
}

/// A write made on this replica, for the fleet.
#[derive(Debug, Clone, PartialEq)]
pub enum StateChange {
    /// `key` now holds the value.
    Set(String, Vec<u8>),
    /// `key` was removed.
    Delete(String),
    /// The deltas were added to the counters under `key`.
    Add(String, Vec<f64>),
}

/// Where a fleet replica's writes go.
type Sink = Box<dyn Fn(StateChange) + Send + Sync>;

/// One tenant's store.
#[derive(Default)]
pub struct StateStore {
    entries: DashMap<String, Vec<u8>>,
    bytes: AtomicUsize,
    limits: StateLimits,
    /// Writes so far: a snapshot is taken only when this moved.
    writes: AtomicU64,
    /// In a fleet, where each local write is sent.
    sink: OnceLock<Sink>,
}

impl std::fmt::Debug for StateStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateStore")
            .field("keys", &self.entries.len())
            .field("bytes", &self.bytes_used())
            .field("replicated", &self.sink.get().is_some())
            .finish()
    }
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
            sink: OnceLock::new(),
        }
    }

    /// From now on, hands every local write to `sink` (once; later calls are ignored).
    pub fn replicate_to(&self, sink: impl Fn(StateChange) + Send + Sync + 'static) {
        let _ = self.sink.set(Box::new(sink));
    }

    fn replicate(&self, change: impl FnOnce() -> StateChange) {
        if let Some(sink) = self.sink.get() {
            sink(change());
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
        self.check_sizes(key, &value)?;
        let change = self.sink.get().map(|_| value.clone());
        self.write(self.entries.entry(key.to_owned()), value, true)?;
        if let Some(value) = change {
            self.replicate(|| StateChange::Set(key.to_owned(), value));
        }
        Ok(())
    }

    /// Adds `deltas` to the counters under `key` (a JSON array of numbers; see
    /// [`signalbox_contract::add_counters`]) in one step under the key's lock, and
    /// returns the new counters.
    pub fn add(&self, key: &str, deltas: &[f64]) -> Result<Vec<f64>, AddError> {
        if key.len() > self.limits.max_key {
            return Err(StateError::KeyTooLarge(self.limits.max_key).into());
        }
        let entry = self.entries.entry(key.to_owned());
        let existing = match &entry {
            dashmap::Entry::Occupied(e) => Some(e.get().as_slice()),
            dashmap::Entry::Vacant(_) => None,
        };
        let (values, encoded) =
            signalbox_contract::add_counters(existing, deltas).map_err(|_| AddError::NotNumeric)?;
        self.check_sizes(key, &encoded)?;
        self.write(entry, encoded, true)?;
        self.replicate(|| StateChange::Add(key.to_owned(), deltas.to_vec()));
        Ok(values)
    }

    /// Removes `key`.
    pub fn delete(&self, key: &str) {
        if let Some((k, v)) = self.entries.remove(key) {
            self.bytes.fetch_sub(k.len() + v.len(), Ordering::Relaxed);
            self.writes.fetch_add(1, Ordering::Relaxed);
        }
        self.replicate(|| StateChange::Delete(key.to_owned()));
    }

    /// Takes the fleet's value of `key` (`None`: the fleet removed it). Not sent back
    /// to the fleet, and not held to the quota: the replica that wrote it was.
    pub fn apply_fleet(&self, key: &str, value: Option<Vec<u8>>) {
        match value {
            Some(value) => {
                let _ = self.write(self.entries.entry(key.to_owned()), value, false);
            }
            None => {
                if let Some((k, v)) = self.entries.remove(key) {
                    self.bytes.fetch_sub(k.len() + v.len(), Ordering::Relaxed);
                    self.writes.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn check_sizes(&self, key: &str, value: &[u8]) -> Result<(), StateError> {
        if key.len() > self.limits.max_key {
            return Err(StateError::KeyTooLarge(self.limits.max_key));
        }
        if value.len() > self.limits.max_value {
            return Err(StateError::ValueTooLarge(self.limits.max_value));
        }
        Ok(())
    }

    /// Puts `value` in `entry`, keeping the byte count (and, when `quota`, within
    /// the tenant's total).
    fn write(
        &self,
        entry: dashmap::Entry<'_, String, Vec<u8>>,
        value: Vec<u8>,
        quota: bool,
    ) -> Result<(), StateError> {
        let key_len = entry.key().len();
        let new_len = key_len + value.len();
        match entry {
            dashmap::Entry::Occupied(mut e) => {
                let old_len = key_len + e.get().len();
                if new_len > old_len {
                    self.grow(new_len - old_len, quota)?;
                } else {
                    self.bytes.fetch_sub(old_len - new_len, Ordering::Relaxed);
                }
                e.insert(value);
            }
            dashmap::Entry::Vacant(e) => {
                self.grow(new_len, quota)?;
                e.insert(value);
            }
        }
        self.writes.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn grow(&self, extra: usize, quota: bool) -> Result<(), StateError> {
        if !quota {
            self.bytes.fetch_add(extra, Ordering::Relaxed);
            return Ok(());
        }
        if self.reserve(extra) {
            Ok(())
        } else {
            Err(StateError::QuotaExceeded)
        }
    }

    /// Every key, in no order.
    pub fn keys(&self) -> Vec<String> {
        self.entries.iter().map(|e| e.key().clone()).collect()
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
    fn concurrent_adds_lose_nothing() {
        let store = std::sync::Arc::new(StateStore::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for _ in 0..1000 {
                        store.add("arm", &[1.0, 0.5]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(store.get("arm").unwrap(), b"[8000.0,4000.0]");
        assert_eq!(store.bytes_used(), "arm".len() + "[8000.0,4000.0]".len());
    }

    #[test]
    fn add_refuses_what_is_not_counters_and_keeps_the_limits() {
        let store = StateStore::new(StateLimits {
            max_key: 4,
            max_value: 12,
            max_total: 100,
        });
        store.set("text", b"hello".to_vec()).unwrap();
        assert_eq!(store.add("text", &[1.0]), Err(AddError::NotNumeric));
        assert_eq!(store.get("text").unwrap(), b"hello", "left as it was");
        assert_eq!(store.add("n", &[f64::NAN]), Err(AddError::NotNumeric));
        assert!(store.get("n").is_none());
        assert_eq!(
            store.add("longer", &[1.0]),
            Err(AddError::State(StateError::KeyTooLarge(4)))
        );
        assert_eq!(
            store.add("n", &[1.0, 2.0, 3.0]),
            Err(AddError::State(StateError::ValueTooLarge(12)))
        );
        assert_eq!(store.add("n", &[1.0, 2.0]).unwrap(), [1.0, 2.0]);
    }

    #[test]
    fn a_replica_sends_its_writes_and_takes_the_fleets() {
        let sent = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let store = StateStore::default();
        let log = sent.clone();
        store.replicate_to(move |c| log.lock().unwrap().push(c));
        store.set("k", b"v".to_vec()).unwrap();
        store.add("c", &[2.0]).unwrap();
        store.delete("k");
        store.apply_fleet("c", Some(b"[5.0]".to_vec()));
        store.apply_fleet("f", Some(b"x".to_vec()));
        store.apply_fleet("f", None);
        assert_eq!(
            *sent.lock().unwrap(),
            [
                StateChange::Set("k".into(), b"v".to_vec()),
                StateChange::Add("c".into(), vec![2.0]),
                StateChange::Delete("k".into()),
            ],
            "the fleet's values are not sent back"
        );
        assert_eq!(store.add("c", &[1.0]).unwrap(), [6.0]);
        assert_eq!(store.bytes_used(), "c".len() + "[6.0]".len());
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

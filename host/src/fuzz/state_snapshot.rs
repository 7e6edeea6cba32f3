//! The policy state snapshot (`StateStore::decode`), read back from `state.bin` at
//! start-up, and the policy store's rule for a damaged one (`deploy::restore_state`).
//!
//! Properties: decoding never holds more than the file's bytes; what decodes encodes
//! back to a snapshot that decodes to the same store; `decode(encode(x)) == x` (less
//! entries over the limits, which are dropped); every cut, longer or damaged copy of
//! a snapshot is an error or a smaller store, never a panic; on disk, a snapshot that
//! does not decode is replaced by its last good copy or stops start-up naming the file.

use super::CI_TIME;
use crate::deploy::{PolicyStore, StoreError, restore_state};
use crate::policy::{StateLimits, StateStore};
use arbitrary::Unstructured;
use std::path::Path;

const MAGIC: &[u8] = b"SBSTATE1";

#[test]
fn state_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = PolicyStore::open(Some(dir.path())).unwrap();
    let file = dir.path().join("tenants/t/state.bin");
    bolero::check!(name = "state_snapshot")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            check_decode(bytes);
            check_decode(&[MAGIC, bytes].concat());
            // Restoring a damaged file rewrites it durably (synced): a sample suffices.
            if bytes.first().is_some_and(|b| b % 16 == 0) {
                check_on_disk(&store, &file, bytes);
            }
            check_round_trip(&mut Unstructured::new(bytes));
        });
}

fn check_decode(bytes: &[u8]) {
    let Ok(store) = StateStore::decode(bytes, StateLimits::default()) else {
        return;
    };
    assert!(store.bytes_used() <= bytes.len(), "more held than read");
    let encoded = store.encode();
    assert!(encoded.len() <= bytes.len());
    let again = StateStore::decode(&encoded, StateLimits::default()).expect("re-encoded");
    assert_eq!(again.encode(), encoded);
    assert_eq!(again.writes(), 0);
}

/// A store built from entries the input picks, under small limits, survives the round
/// trip; its snapshot, damaged, never decodes to more.
fn check_round_trip(u: &mut Unstructured<'_>) {
    let limits = StateLimits {
        max_key: 8,
        max_value: 16,
        max_total: 96,
    };
    let store = StateStore::new(limits);
    let mut entries = Vec::new();
    for _ in 0..u.int_in_range(0..=12u8).unwrap_or(0) {
        let key: String = u.arbitrary().unwrap_or_default();
        let value: Vec<u8> = u.arbitrary().unwrap_or_default();
        if u.ratio(1, 8).unwrap_or(false) {
            store.delete(&key);
        } else if store.set(&key, value.clone()).is_ok() {
            entries.push(key);
        }
    }
    let bytes = store.encode();
    let back = StateStore::decode(&bytes, limits).expect("a snapshot decodes");
    assert_eq!(back.encode(), bytes, "decode(encode(x)) == x");
    assert_eq!(
        (back.len(), back.bytes_used()),
        (store.len(), store.bytes_used())
    );
    for key in &entries {
        assert_eq!(back.get(key), store.get(key));
    }
    // Read with the default (larger) limits, nothing is dropped either.
    let roomy = StateStore::decode(&bytes, StateLimits::default()).expect("decodes");
    assert_eq!(roomy.encode(), bytes);

    let cut = u
        .int_in_range(0..=bytes.len().saturating_sub(1))
        .unwrap_or(0);
    assert!(
        StateStore::decode(&bytes[..cut], limits).is_err(),
        "cut at {cut}"
    );
    let mut longer = bytes.clone();
    longer.push(u.arbitrary().unwrap_or(0));
    assert!(StateStore::decode(&longer, limits).is_err());
    let mut damaged = bytes.clone();
    let at = u.int_in_range(0..=bytes.len() - 1).unwrap_or(0);
    damaged[at] ^= u.int_in_range(1..=255u8).unwrap_or(1);
    if let Ok(store) = StateStore::decode(&damaged, limits) {
        assert!(store.bytes_used() <= damaged.len());
    }
}

/// `state.bin` holding `bytes`, with or without a good last copy beside it.
fn check_on_disk(store: &PolicyStore, file: &Path, bytes: &[u8]) {
    let good = StateStore::new(StateLimits::default());
    good.set("weights", vec![1, 2, 3]).unwrap();
    let prev = file.with_file_name("state.bin.prev");
    let with_copy = bytes.len().is_multiple_of(2);
    // Plain writes: the store's own are durable (synced), too slow to repeat here.
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    if with_copy {
        std::fs::write(&prev, good.encode()).unwrap();
    } else if prev.exists() {
        std::fs::remove_file(&prev).unwrap();
    }
    std::fs::write(file, bytes).unwrap();
    let decodes = StateStore::decode(bytes, StateLimits::default());
    match (restore_state(store, "t"), decodes) {
        (Ok(restored), Ok(decoded)) => assert_eq!(restored.encode(), decoded.encode()),
        (Ok(restored), Err(_)) => {
            assert!(with_copy, "a damaged snapshot with no good copy was used");
            assert_eq!(restored.encode(), good.encode(), "the last good copy");
            assert_eq!(
                std::fs::read(file).unwrap(),
                good.encode(),
                "restored in place"
            );
        }
        (Err(StoreError::Damaged { path, .. }), Err(_)) => {
            assert!(!with_copy);
            assert_eq!(path, file);
        }
        (Err(e), _) => panic!("unexpected {e}"),
    }
}

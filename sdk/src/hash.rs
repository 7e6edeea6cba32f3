//! A stable hash for sticky splits.
//!
//! The function is frozen: the same key maps to the same bucket in every SDK version,
//! on every platform, so a user stays in their A/B arm across policy upgrades.

/// A 64-bit hash of `key` that never changes between SDK versions or platforms
/// (FNV-1a followed by a murmur3 finaliser for good avalanche on short keys).
///
/// ```
/// assert_eq!(signalbox_sdk::stable_hash(b"user-42"), signalbox_sdk::stable_hash(b"user-42"));
/// ```
pub fn stable_hash(key: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in key {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Where `key` falls in `[0, 1)`, uniformly and stably: compare it to cumulative
/// weights to make a sticky percentage split.
///
/// ```
/// let p = signalbox_sdk::unit_interval(b"session-7");
/// assert!((0.0..1.0).contains(&p));
/// ```
pub fn unit_interval(key: &[u8]) -> f64 {
    // The top 53 bits fill an f64 mantissa exactly.
    (stable_hash(key) >> 11) as f64 / (1u64 << 53) as f64
}

/// Picks an index from `weights` (any non-negative numbers, not necessarily summing to
/// one) for `key`, stably: the same key and weights always give the same index, and
/// the share of keys per index follows the weights. `None` when every weight is zero
/// or the list is empty.
///
/// ```
/// let arm = signalbox_sdk::weighted_pick(b"user-1", &[90.0, 10.0]).unwrap();
/// assert!(arm < 2);
/// ```
pub fn weighted_pick(key: &[u8], weights: &[f64]) -> Option<usize> {
    let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
    if total <= 0.0 || !total.is_finite() {
        return None;
    }
    let point = unit_interval(key) * total;
    let mut acc = 0.0;
    let mut last = None;
    for (i, &w) in weights.iter().enumerate() {
        if w <= 0.0 {
            continue;
        }
        acc += w;
        last = Some(i);
        if point < acc {
            return Some(i);
        }
    }
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_frozen() {
        // Changing these values breaks every deployed sticky split.
        assert_eq!(stable_hash(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(stable_hash(b"user-42"), 0xa395_32c7_ab05_1e8d);
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
    }

    #[test]
    fn weighted_pick_follows_weights() {
        let mut counts = [0u32; 3];
        for i in 0..30_000 {
            let key = format!("user-{i}");
            counts[weighted_pick(key.as_bytes(), &[1.0, 2.0, 0.0]).unwrap()] += 1;
        }
        assert_eq!(counts[2], 0);
        let share = f64::from(counts[1]) / 30_000.0;
        assert!((share - 2.0 / 3.0).abs() < 0.02, "share {share}");
    }

    #[test]
    fn weighted_pick_handles_degenerate_weights() {
        assert_eq!(weighted_pick(b"k", &[]), None);
        assert_eq!(weighted_pick(b"k", &[0.0, 0.0]), None);
        assert_eq!(weighted_pick(b"k", &[0.0, 5.0]), Some(1));
    }
}

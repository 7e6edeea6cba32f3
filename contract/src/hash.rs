//! The frozen hash behind sticky splits and dataset splits.
//!
//! The function never changes: the same key maps to the same bucket in every SDK and
//! gateway version, on every platform, so a user stays in their A/B arm across policy
//! upgrades and a dataset row stays in its split.

/// A 64-bit hash of `key` that never changes between versions or platforms
/// (FNV-1a followed by a murmur3 finaliser for good avalanche on short keys).
///
/// ```
/// use signalbox_contract::stable_hash;
/// assert_eq!(stable_hash(b"user-42"), stable_hash(b"user-42"));
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
/// let p = signalbox_contract::unit_interval(b"session-7");
/// assert!((0.0..1.0).contains(&p));
/// ```
pub fn unit_interval(key: &[u8]) -> f64 {
    // The top 53 bits fill an f64 mantissa exactly.
    (stable_hash(key) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_frozen() {
        // Changing these values breaks every deployed sticky split and dataset split.
        assert_eq!(stable_hash(b""), 0xefd0_1f60_ba99_2926);
        assert_eq!(stable_hash(b"user-42"), 0xa395_32c7_ab05_1e8d);
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
    }
}

//! Sticky weighted choice, built on the contract's frozen hash
//! ([`stable_hash`](crate::stable_hash), [`unit_interval`](crate::unit_interval)), so
//! a user stays in their A/B arm across policy and gateway upgrades.

use signalbox_contract::unit_interval;

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

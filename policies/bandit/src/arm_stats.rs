//! What the bandit has learned about one arm in one request class, kept in the
//! tenant's state store.
//!
//! One key per (class, target id): `bandit/arm/<class>/<target id>`, holding
//! `[pulls, reward]` as JSON (about 20 bytes). Keys use the target's id, not its
//! index, so learning survives a reordered target list, a new policy version and a
//! changed config. Separate keys per arm keep concurrent updates of different arms
//! from overwriting each other; two updates of the same arm at the same moment can
//! still lose one observation (the store is last-write-wins), which a bandit
//! tolerates.

use signalbox_sdk::{Level, log, stable_hash, state};

/// Longest key written as is; longer target ids are replaced by their hash.
const MAX_KEY: usize = 200;

/// Observations of one arm.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ArmStats {
    /// Requests counted.
    pub pulls: f64,
    /// Sum of their rewards, each in `[0, 1]`.
    pub reward: f64,
}

/// The state key of `target`'s stats in `class`.
pub fn key(class: &str, target: &str) -> String {
    let key = format!("bandit/arm/{class}/{target}");
    if key.len() <= MAX_KEY {
        key
    } else {
        format!(
            "bandit/arm/{class}/#{:016x}",
            stable_hash(target.as_bytes())
        )
    }
}

impl ArmStats {
    /// Reads the stats under `key` (zero when absent or unreadable).
    pub fn load(key: &str) -> ArmStats {
        state::get::<(f64, f64)>(key)
            .map(|(pulls, reward)| ArmStats { pulls, reward })
            .filter(|s| s.pulls.is_finite() && s.reward.is_finite())
            .unwrap_or_default()
    }

    /// Adds `pulls` observations worth `reward` in total (either may be negative to
    /// correct an earlier one) and stores the result.
    pub fn add(key: &str, pulls: f64, reward: f64) {
        let mut s = ArmStats::load(key);
        s.pulls = (s.pulls + pulls).max(0.0);
        s.reward = (s.reward + reward).clamp(0.0, s.pulls);
        if let Err(e) = state::put(key, &(s.pulls, s.reward)) {
            log(Level::Warn, &format!("bandit: cannot store {key}: {e}"));
        }
    }
}

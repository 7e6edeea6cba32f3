//! What the bandit has learned about one arm in one request class, kept in the
//! tenant's state store.
//!
//! One key per (class, target id): `bandit/arm/<class>/<target id>`, holding
//! `[pulls, reward]` as JSON (about 20 bytes). Keys use the target's id, not its
//! index, so learning survives a reordered target list, a new policy version and a
//! changed config. Observations are added with the store's atomic counters
//! (`state::add`), so two updates of one arm at the same moment, on two instances or
//! two gateway replicas, are both counted.

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
    /// Reads the stats under `key` (zero when absent or unreadable). Corrections
    /// are added as they come, so a sum may stray out of range for a moment (a
    /// replaced reward counted before the one it replaces); it is read clamped.
    pub fn load(key: &str) -> ArmStats {
        state::get::<(f64, f64)>(key)
            .filter(|(pulls, reward)| pulls.is_finite() && reward.is_finite())
            .map(|(pulls, reward)| {
                let pulls = pulls.max(0.0);
                ArmStats {
                    pulls,
                    reward: reward.clamp(0.0, pulls),
                }
            })
            .unwrap_or_default()
    }

    /// Adds `pulls` observations worth `reward` in total (either may be negative to
    /// correct an earlier one), atomically.
    pub fn add(key: &str, pulls: f64, reward: f64) {
        if let Err(e) = state::add(key, &[pulls, reward]) {
            log(Level::Warn, &format!("bandit: cannot store {key}: {e}"));
        }
    }
}

//! Per-request scratch state between the decision, the outcome and the feedback.
//!
//! Outcomes and feedback arrive without the request, so what they need from it is
//! kept in a short-lived record: the request's class (written at decision time, only
//! when classes are on) and, once the outcome is counted, the reward counted and the
//! request's cost (so feedback can replace that reward). Feedback deletes the record.
//!
//! The records live in a fixed number of slots, `bandit/pending/<n>` with `n` the
//! request id's hash modulo `pending_slots`, so they never take more than
//! `pending_slots` keys however many requests never get feedback. A newer request can
//! take the slot of an older one; each record carries its request id, so the older
//! request's feedback then finds a stranger's record and is ignored (its success
//! reward stands), never misapplied.

use serde::{Deserialize, Serialize};
use signalbox_sdk::{Level, log, stable_hash, state};

/// The scratch record of one request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Pending {
    /// The request id.
    pub id: String,
    /// Its class.
    #[serde(default, rename = "c")]
    pub class: String,
    /// The reward the outcome counted.
    #[serde(default, rename = "r", skip_serializing_if = "Option::is_none")]
    pub counted: Option<f64>,
    /// What the request cost, in US dollars.
    #[serde(default, rename = "k")]
    pub cost: f64,
    /// A feedback score that arrived before the outcome.
    #[serde(default, rename = "f", skip_serializing_if = "Option::is_none")]
    pub early_score: Option<f64>,
}

/// The slot key for `request_id`, or `None` when slots are off.
pub fn key(request_id: &str, slots: u32) -> Option<String> {
    (slots > 0).then(|| {
        format!(
            "bandit/pending/{}",
            stable_hash(request_id.as_bytes()) % u64::from(slots)
        )
    })
}

impl Pending {
    /// The record for `request_id` in its slot, if that slot still holds it.
    pub fn load(key: &str, request_id: &str) -> Option<Pending> {
        state::get::<Pending>(key).filter(|p| p.id == request_id)
    }

    /// Stores the record in its slot, replacing whatever was there.
    pub fn store(&self, key: &str) {
        if let Err(e) = state::put(key, self) {
            log(Level::Warn, &format!("bandit: cannot store {key}: {e}"));
        }
    }
}

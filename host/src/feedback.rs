//! Feedback on earlier answers: `POST /v1/feedback` finds the decision a request id
//! names and hands the score to the policy that made it.
//!
//! The gateway remembers the most recent decisions (a bounded window, oldest out
//! first, and nothing older than a time limit). It keeps only a weak reference to the
//! deciding deployment, so remembering a decision never keeps a swapped-out version's
//! instances alive: if that version is gone, the score goes to the tenant's active
//! version, which shares the tenant's state store (where learning policies keep what
//! they learned).
//!
//! Request ids carry a sequence number (see [`crate::request_id`]), so the window is
//! a ring indexed by it: remembering a decision is a slot write under a short lock,
//! with no hashing and no allocation on the request path.

use crate::deploy::Deployment;
use crate::policy::Feedback;
use crate::request_id;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

/// A decision feedback can still reach.
#[derive(Debug, Clone)]
pub struct Decided {
    /// The tenant the request belonged to.
    pub tenant: Arc<str>,
    /// The deployment that decided.
    pub deployment: Weak<Deployment>,
    /// Position of the target that served it, in the tenant's target list.
    pub target: u32,
}

struct Slot {
    seq: u64,
    at: Instant,
    decided: Decided,
}

/// The decisions of the most recent `capacity` request ids.
pub struct RecentDecisions {
    /// Slot `seq % capacity` holds request `seq`'s decision until a later request
    /// takes the slot. Grown on demand up to `capacity`.
    ring: Mutex<Vec<Option<Slot>>>,
    capacity: usize,
    ttl: Duration,
}

impl RecentDecisions {
    /// A window over the last `capacity` request ids, none older than `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        RecentDecisions {
            ring: Mutex::new(Vec::new()),
            capacity,
            ttl,
        }
    }

    /// Remembers the decision behind `request_id` (an id of this process).
    pub fn record(&self, request_id: &str, decided: Decided) {
        let Some(seq) = request_id::sequence(request_id) else {
            return;
        };
        if self.capacity == 0 {
            return;
        }
        let index = (seq % self.capacity as u64) as usize;
        let slot = Slot {
            seq,
            at: Instant::now(),
            decided,
        };
        let Ok(mut ring) = self.ring.lock() else {
            return;
        };
        if index >= ring.len() {
            ring.resize_with(index + 1, || None);
        }
        // Requests finish out of order: never let an older one evict a newer one.
        if ring[index].as_ref().is_none_or(|s| s.seq < seq) {
            ring[index] = Some(slot);
        }
    }

    /// The decision behind `request_id`, if it is `tenant`'s and still remembered.
    pub fn find(&self, tenant: &str, request_id: &str) -> Option<Decided> {
        let seq = request_id::sequence(request_id)?;
        if self.capacity == 0 {
            return None;
        }
        let index = (seq % self.capacity as u64) as usize;
        let ring = self.ring.lock().ok()?;
        let slot = ring.get(index)?.as_ref()?;
        (slot.seq == seq && slot.at.elapsed() <= self.ttl && *slot.decided.tenant == *tenant)
            .then(|| slot.decided.clone())
    }

    /// Decisions remembered now (expired ones included until their slot is reused).
    pub fn len(&self) -> usize {
        self.ring
            .lock()
            .map_or(0, |ring| ring.iter().filter(|s| s.is_some()).count())
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The body of `POST /v1/feedback`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackRequest {
    /// The `x-request-id` of the answer being scored.
    pub request_id: String,
    /// The score in `[0, 1]`, 1 best.
    pub score: f64,
    /// Free text for people; not passed to policies and never logged.
    #[serde(default)]
    pub comment: Option<String>,
}

impl FeedbackRequest {
    /// The record a policy receives.
    pub fn to_feedback(&self, target: u32) -> Feedback {
        Feedback {
            request_id: self.request_id.clone(),
            target,
            score: self.score as f32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decided(tenant: &str) -> Decided {
        Decided {
            tenant: tenant.into(),
            deployment: Weak::new(),
            target: 1,
        }
    }

    #[test]
    fn the_window_keeps_the_newest_and_only_for_their_tenant() {
        let recent = RecentDecisions::new(3, Duration::from_secs(60));
        for seq in 0..5 {
            recent.record(&request_id::format(seq), decided("acme"));
        }
        assert_eq!(recent.len(), 3);
        assert!(recent.find("acme", &request_id::format(1)).is_none());
        let newest = request_id::format(4);
        assert_eq!(recent.find("acme", &newest).map(|d| d.target), Some(1));
        assert!(recent.find("globex", &newest).is_none());
        assert!(recent.find("acme", "req-4").is_none());
    }

    #[test]
    fn a_late_finisher_does_not_evict_a_newer_decision() {
        let recent = RecentDecisions::new(2, Duration::from_secs(60));
        recent.record(&request_id::format(3), decided("acme"));
        recent.record(&request_id::format(1), decided("acme"));
        assert!(recent.find("acme", &request_id::format(3)).is_some());
        assert!(recent.find("acme", &request_id::format(1)).is_none());
    }

    #[test]
    fn old_decisions_expire() {
        let recent = RecentDecisions::new(10, Duration::ZERO);
        recent.record(&request_id::format(1), decided("t"));
        std::thread::sleep(Duration::from_millis(2));
        assert!(recent.find("t", &request_id::format(1)).is_none());
    }
}

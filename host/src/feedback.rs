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
//! a ring indexed by it, and it hands out this gateway's ids: remembering a decision is a slot write under a short lock,
//! with no hashing and no allocation on the request path.

use crate::deploy::Deployment;
use crate::gateway::{Gateway, Tenant};
use crate::policy::Feedback;
use crate::request_id::RequestIds;
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
    /// The ids of this gateway's requests.
    pub ids: RequestIds,
}

impl RecentDecisions {
    /// A window over the last `capacity` request ids, none older than `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        RecentDecisions {
            ring: Mutex::new(Vec::new()),
            capacity,
            ttl,
            ids: RequestIds::new(),
        }
    }

    /// Remembers the decision behind `request_id` (an id of this gateway).
    pub fn record(&self, request_id: &str, decided: Decided) {
        let Some(seq) = self.ids.sequence(request_id) else {
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
        let seq = self.ids.sequence(request_id)?;
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

/// Hands a score for `request_id` to the policy version of `tenant` that decided it
/// (or, if that version is gone, to the tenant's active one). False when this process
/// does not remember the request for this tenant.
pub fn deliver(gateway: &Gateway, tenant: &Tenant, request_id: &str, score: f64) -> bool {
    let Some(decided) = gateway.decisions.find(&tenant.id, request_id) else {
        return false;
    };
    let deployment = decided
        .deployment
        .upgrade()
        .unwrap_or_else(|| tenant.policy.current().active.clone());
    let feedback = Feedback {
        request_id: request_id.to_owned(),
        target: decided.target,
        score: score as f32,
    };
    if let Err(e) = deployment.binding.on_feedback(&feedback) {
        tracing::warn!(tenant = %tenant.id, policy = %deployment.label, error = %e, "policy on-feedback failed");
    }
    true
}

/// In a fleet, hands the scores other replicas forwarded to this one to the policies
/// that decided, until aborted (the gateway's stop aborts it).
pub fn spawn_forwarded(
    cluster: Arc<crate::cluster::Cluster>,
    gateway: Arc<Gateway>,
) -> tokio::task::JoinHandle<()> {
    let metrics = gateway.metrics.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(crate::cluster::FEEDBACK_POLL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Ok(scores) = cluster.take_feedback(gateway.decisions.ids.origin()).await else {
                continue;
            };
            if scores.is_empty() {
                continue;
            }
            let gateway = gateway.clone();
            // Policy calls are CPU work: off the async workers.
            let delivered = tokio::task::spawn_blocking(move || {
                let mut unknown = 0;
                for score in &scores {
                    let known = gateway
                        .tenants
                        .get(score.tenant.as_str())
                        .is_some_and(|t| deliver(&gateway, t, &score.request_id, score.score));
                    if !known {
                        unknown += 1;
                    }
                }
                (scores.len() as u64, unknown)
            })
            .await;
            if let Ok((received, unknown)) = delivered {
                metrics.feedback_forwarded("received", received - unknown);
                metrics.feedback_forwarded("unknown", unknown);
            }
        }
    })
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
            recent.record(&recent.ids.format(seq), decided("acme"));
        }
        assert_eq!(recent.len(), 3);
        assert!(recent.find("acme", &recent.ids.format(1)).is_none());
        let newest = recent.ids.format(4);
        assert_eq!(recent.find("acme", &newest).map(|d| d.target), Some(1));
        assert!(recent.find("globex", &newest).is_none());
        assert!(recent.find("acme", "req-4").is_none());
    }

    #[test]
    fn a_late_finisher_does_not_evict_a_newer_decision() {
        let recent = RecentDecisions::new(2, Duration::from_secs(60));
        recent.record(&recent.ids.format(3), decided("acme"));
        recent.record(&recent.ids.format(1), decided("acme"));
        assert!(recent.find("acme", &recent.ids.format(3)).is_some());
        assert!(recent.find("acme", &recent.ids.format(1)).is_none());
    }

    #[test]
    fn old_decisions_expire() {
        let recent = RecentDecisions::new(10, Duration::ZERO);
        recent.record(&recent.ids.format(1), decided("t"));
        std::thread::sleep(Duration::from_millis(2));
        assert!(recent.find("t", &recent.ids.format(1)).is_none());
    }
}

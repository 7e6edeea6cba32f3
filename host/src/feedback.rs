//! Feedback on earlier answers: `POST /v1/feedback` finds the decision a request id
//! names and hands the score to the policy that made it.
//!
//! The gateway remembers the most recent decisions (a bounded window, oldest out
//! first, and nothing older than a time limit). It keeps only a weak reference to the
//! deciding deployment, so remembering a decision never keeps a swapped-out version's
//! instances alive: if that version is gone, the score goes to the tenant's active
//! version, which shares the tenant's state store (where learning policies keep what
//! they learned).

use crate::deploy::Deployment;
use crate::policy::Feedback;
use dashmap::DashMap;
use std::collections::VecDeque;
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

/// The most recent decisions, by request id.
pub struct RecentDecisions {
    by_id: DashMap<Box<str>, Decided>,
    order: Mutex<VecDeque<(Box<str>, Instant)>>,
    capacity: usize,
    ttl: Duration,
}

impl RecentDecisions {
    /// A window of at most `capacity` decisions, none older than `ttl`.
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        RecentDecisions {
            by_id: DashMap::new(),
            order: Mutex::new(VecDeque::new()),
            capacity,
            ttl,
        }
    }

    /// Remembers a decision, forgetting the oldest ones beyond the window.
    pub fn record(&self, request_id: &str, decided: Decided) {
        if self.capacity == 0 {
            return;
        }
        let now = Instant::now();
        let id: Box<str> = request_id.into();
        self.by_id.insert(id.clone(), decided);
        let Ok(mut order) = self.order.lock() else {
            return;
        };
        order.push_back((id, now));
        while let Some((oldest, at)) = order.front() {
            if order.len() <= self.capacity && now.duration_since(*at) <= self.ttl {
                break;
            }
            self.by_id.remove(oldest);
            order.pop_front();
        }
    }

    /// The decision behind `request_id`, if it is `tenant`'s and still remembered.
    pub fn find(&self, tenant: &str, request_id: &str) -> Option<Decided> {
        let decided = self.by_id.get(request_id)?.clone();
        (*decided.tenant == *tenant).then_some(decided)
    }

    /// Decisions remembered now.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is remembered.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
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
        for i in 0..5 {
            recent.record(&format!("req-{i}"), decided("acme"));
        }
        assert_eq!(recent.len(), 3);
        assert!(recent.find("acme", "req-1").is_none());
        assert_eq!(recent.find("acme", "req-4").map(|d| d.target), Some(1));
        assert!(recent.find("globex", "req-4").is_none());
    }

    #[test]
    fn old_decisions_expire() {
        let recent = RecentDecisions::new(10, Duration::ZERO);
        recent.record("a", decided("t"));
        std::thread::sleep(Duration::from_millis(2));
        recent.record("b", decided("t"));
        assert!(recent.find("t", "a").is_none());
    }
}

//! A policy version deployed for a tenant, and the routing state a request reads:
//! the active deployment and, optionally, a candidate in shadow or canary.

use crate::policy::{
    CallCounters, PolicyBinding, PolicyError, RouteDecision, RouteRequest, TargetSignals,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// A version bound to a tenant with one config: what decides a request, from its
/// route call to its outcome callback.
pub struct Deployment {
    /// The activated policy.
    pub binding: Arc<PolicyBinding>,
    /// The policy's name (from the upload or the file name).
    pub name: String,
    /// `name@<first 12 hex digits of the version>`, for response headers.
    pub label: String,
    /// The label as a metrics label value.
    pub metric: crate::metrics::Name,
    /// Counters of the version, shared by every deployment of it.
    pub version_stats: Arc<VersionStats>,
    /// What the requests it decided went on to do.
    pub traffic: TrafficStats,
    /// What counts toward quarantine.
    failures: FailureStreak,
}

impl Deployment {
    /// Wraps an activated binding.
    pub fn new(binding: PolicyBinding, name: &str, version_stats: Arc<VersionStats>) -> Self {
        let version = binding.policy().version();
        let label = format!("{name}@{}", &version[..12.min(version.len())]);
        Deployment {
            metric: crate::metrics::Name::from(label.as_str()),
            label,
            name: name.to_owned(),
            binding: Arc::new(binding.count_in(version_stats.calls.clone())),
            version_stats,
            traffic: TrafficStats::default(),
            failures: FailureStreak::default(),
        }
    }

    /// The version id (sha256 of the component).
    pub fn version(&self) -> &str {
        self.binding.policy().version()
    }

    /// The config JSON it was activated with.
    pub fn config(&self) -> &str {
        self.binding.config()
    }

    /// Asks the policy (the binding counts the call for its version). Returns the decision and
    /// the version's quarantine streak after it: 0 unless the call trapped or ran
    /// past its deadline (see [`FailureStreak`]).
    pub fn route(
        &self,
        request: &RouteRequest,
        signals: &[TargetSignals],
    ) -> (Result<RouteDecision, PolicyError>, u32) {
        let result = self.binding.route(request, signals);
        let streak = self.failures.record(&result);
        (result, streak)
    }

    /// Asks the policy to review an answer; like [`route`](Self::route), returns the
    /// verdict and the quarantine streak after it (a review that traps or spins counts
    /// towards quarantine as a route call does).
    pub fn review(
        &self,
        answer: &crate::policy::AnswerView,
    ) -> (Result<crate::policy::Verdict, PolicyError>, u32) {
        let result = self.binding.review(answer);
        let streak = self.failures.record(&result);
        (result, streak)
    }
}

/// Whether a failed call counts toward quarantine: the README's "calls that trap or
/// time out" (a memory-cap hit is a trap). Those say the version itself is broken.
/// An invalid answer is the policy's fault too, but it is counted as an error and
/// served by the safe route without quarantine, as documented; an instance the host
/// could not create, or a refused config, says nothing about the version's calls.
pub fn counts_toward_quarantine(error: &PolicyError) -> bool {
    match error {
        PolicyError::Trap(_) | PolicyError::MemoryLimit(_) | PolicyError::Deadline(_) => true,
        PolicyError::InvalidDecision(_)
        | PolicyError::BadConfig(_)
        | PolicyError::Instantiate(_) => false,
    }
}

/// A version's calls in a row that [count toward quarantine](counts_toward_quarantine),
/// with no good answer in between. A good answer ends the streak; any other error
/// neither extends nor ends it.
#[derive(Debug, Default)]
pub struct FailureStreak(AtomicU32);

impl FailureStreak {
    /// Records one call's result; returns the streak after it, or 0 when this call
    /// did not extend it (so that only the call reaching the threshold acts).
    pub fn record<T>(&self, result: &Result<T, PolicyError>) -> u32 {
        match result {
            Ok(_) => {
                self.0.store(0, Ordering::Relaxed);
                0
            }
            Err(e) if counts_toward_quarantine(e) => self.0.fetch_add(1, Ordering::Relaxed) + 1,
            Err(_) => 0,
        }
    }
}

/// Counters of one policy version for one tenant (since the process started).
#[derive(Debug, Default)]
pub struct VersionStats {
    /// Its route calls, shared by every binding of it.
    pub calls: Arc<CallCounters>,
    /// Times it was quarantined.
    pub quarantines: AtomicU64,
}

/// What happened to the requests a deployment decided.
#[derive(Debug, Default)]
pub struct TrafficStats {
    /// Requests that reached an answer (any status).
    pub requests: AtomicU64,
    /// Of those, answered with a 5xx (or no route at all).
    pub errors: AtomicU64,
    /// Sum of latencies, in microseconds.
    pub latency_us: AtomicU64,
    /// Sum of costs, in micro-dollars.
    pub cost_micro_usd: AtomicU64,
}

impl TrafficStats {
    /// Records one finished request.
    pub fn record(&self, status: u16, latency_us: u64, cost_usd: f64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if status >= 500 {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.latency_us.fetch_add(latency_us, Ordering::Relaxed);
        self.cost_micro_usd
            .fetch_add(micro_usd(cost_usd), Ordering::Relaxed);
    }

    /// The counters for `/metrics`, under the deployment's label `policy`.
    pub fn sample(&self, policy: &crate::metrics::Name) -> crate::metrics::TrafficSample {
        crate::metrics::TrafficSample {
            policy: policy.clone(),
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency_seconds: self.latency_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }

    /// The counters as JSON for the admin API.
    pub fn report(&self) -> serde_json::Value {
        self.counts().report()
    }

    /// The counters as plain numbers (what a fleet replica publishes).
    pub fn counts(&self) -> TrafficCounts {
        TrafficCounts {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            latency_us: self.latency_us.load(Ordering::Relaxed),
            cost_micro_usd: self.cost_micro_usd.load(Ordering::Relaxed),
        }
    }
}

/// [`TrafficStats`] read at one moment; counts of several replicas add up.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrafficCounts {
    /// Requests that reached an answer.
    pub requests: u64,
    /// Of those, 5xx.
    pub errors: u64,
    /// Sum of latencies, microseconds.
    pub latency_us: u64,
    /// Sum of costs, micro-dollars.
    pub cost_micro_usd: u64,
}

impl std::ops::AddAssign for TrafficCounts {
    fn add_assign(&mut self, other: TrafficCounts) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.latency_us += other.latency_us;
        self.cost_micro_usd += other.cost_micro_usd;
    }
}

impl TrafficCounts {
    /// As the admin API reports them, rates and means included.
    pub fn report(&self) -> serde_json::Value {
        serde_json::json!({
            "requests": self.requests,
            "errors": self.errors,
            "error_rate": ratio(self.errors, self.requests),
            "mean_latency_ms": ratio(self.latency_us, self.requests) / 1000.0,
            "cost_usd": self.cost_micro_usd as f64 / 1e6,
        })
    }
}

/// How a candidate version takes part in routing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CandidateMode {
    /// Decides on every request; nothing it decides is acted on.
    Shadow,
    /// Serves this share of requests, in `[0, 1]`, sticky per user key.
    Canary(f64),
}

/// A version on trial next to the active one.
pub struct Candidate {
    /// The trial deployment.
    pub deployment: Arc<Deployment>,
    /// Shadow or canary.
    pub mode: CandidateMode,
    /// Shadow only: how its decisions compared with the active ones.
    pub shadow: ShadowStats,
}

/// How a shadow's decisions compare with the active version's.
#[derive(Debug, Default)]
pub struct ShadowStats {
    /// Requests both decided.
    pub decisions: AtomicU64,
    /// Of those, same first target.
    pub agreements: AtomicU64,
    /// Shadow calls that failed.
    pub failures: AtomicU64,
    /// Cost of the served requests, micro-dollars.
    pub active_cost_micro_usd: AtomicU64,
    /// What the same requests (same tokens) would have cost on the shadow's first
    /// choice, micro-dollars.
    pub shadow_cost_micro_usd: AtomicU64,
}

impl ShadowStats {
    /// The counters as JSON for the admin API.
    pub fn report(&self) -> serde_json::Value {
        self.counts().report()
    }

    /// The counters as plain numbers (what a fleet replica publishes).
    pub fn counts(&self) -> ShadowCounts {
        ShadowCounts {
            decisions: self.decisions.load(Ordering::Relaxed),
            agreements: self.agreements.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            active_cost_micro_usd: self.active_cost_micro_usd.load(Ordering::Relaxed),
            shadow_cost_micro_usd: self.shadow_cost_micro_usd.load(Ordering::Relaxed),
        }
    }
}

/// [`ShadowStats`] read at one moment; counts of several replicas add up.
#[derive(Debug, Default, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ShadowCounts {
    /// Requests both decided.
    pub decisions: u64,
    /// Of those, same first target.
    pub agreements: u64,
    /// Shadow calls that failed.
    pub failures: u64,
    /// Cost of the served requests, micro-dollars.
    pub active_cost_micro_usd: u64,
    /// Their cost on the shadow's first choice, micro-dollars.
    pub shadow_cost_micro_usd: u64,
}

impl std::ops::AddAssign for ShadowCounts {
    fn add_assign(&mut self, other: ShadowCounts) {
        self.decisions += other.decisions;
        self.agreements += other.agreements;
        self.failures += other.failures;
        self.active_cost_micro_usd += other.active_cost_micro_usd;
        self.shadow_cost_micro_usd += other.shadow_cost_micro_usd;
    }
}

impl ShadowCounts {
    /// As the admin API reports them.
    pub fn report(&self) -> serde_json::Value {
        let active = self.active_cost_micro_usd as f64 / 1e6;
        let shadow = self.shadow_cost_micro_usd as f64 / 1e6;
        serde_json::json!({
            "decisions": self.decisions,
            "agreements": self.agreements,
            // No decisions yet: no rate (0.0 would read as total disagreement).
            "agreement_rate": (self.decisions > 0)
                .then(|| ratio(self.agreements, self.decisions)),
            "failures": self.failures,
            "active_cost_usd": active,
            "shadow_cost_usd": shadow,
            "estimated_cost_difference_usd": shadow - active,
        })
    }
}

/// What a request reads, swapped atomically as a whole.
pub struct Routing {
    /// The active deployment.
    pub active: Arc<Deployment>,
    /// A version on trial, if any.
    pub candidate: Option<Candidate>,
}

impl Routing {
    /// The deployment that decides a request whose sticky key is `user`, and whether
    /// it is the canary.
    pub fn pick(&self, user: &str) -> &Arc<Deployment> {
        match &self.candidate {
            Some(Candidate {
                deployment,
                mode: CandidateMode::Canary(share),
                ..
            }) if in_canary(user, *share) => deployment,
            _ => &self.active,
        }
    }

    /// The candidate, when it runs in shadow.
    pub fn shadow(&self) -> Option<&Candidate> {
        self.candidate
            .as_ref()
            .filter(|c| c.mode == CandidateMode::Shadow)
    }

    /// The candidate's counters for `/metrics`: the same counters the admin API's
    /// candidate report reads, so the two agree.
    pub fn candidate_sample(&self, tenant: &crate::metrics::Name) -> Option<CandidateSample> {
        use crate::metrics::{CanarySample, ShadowSample};
        let candidate = self.candidate.as_ref()?;
        let micro = |n: &AtomicU64| n.load(Ordering::Relaxed) as f64 / 1e6;
        Some(match candidate.mode {
            CandidateMode::Shadow => {
                let stats = &candidate.shadow;
                CandidateSample::Shadow(ShadowSample {
                    tenant: tenant.clone(),
                    policy: self.active.metric.clone(),
                    shadow: candidate.deployment.metric.clone(),
                    decisions: stats.decisions.load(Ordering::Relaxed),
                    agreements: stats.agreements.load(Ordering::Relaxed),
                    failures: stats.failures.load(Ordering::Relaxed),
                    active_cost_usd: micro(&stats.active_cost_micro_usd),
                    shadow_cost_usd: micro(&stats.shadow_cost_micro_usd),
                })
            }
            CandidateMode::Canary(_) => CandidateSample::Canary(CanarySample {
                tenant: tenant.clone(),
                active: self.active.traffic.sample(&self.active.metric),
                canary: candidate
                    .deployment
                    .traffic
                    .sample(&candidate.deployment.metric),
            }),
        })
    }
}

/// A candidate's counters for `/metrics`, by its mode.
pub enum CandidateSample {
    /// A shadow and how it compares.
    Shadow(crate::metrics::ShadowSample),
    /// A canary and the active version's traffic beside it.
    Canary(crate::metrics::CanarySample),
}

/// Whether `user` falls in a canary serving `share` of users: a stable hash of the key
/// (FNV-1a, fixed here so that a user stays on one side across restarts) mapped to
/// `[0, 1)`.
pub fn in_canary(user: &str, share: f64) -> bool {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in user.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Mix the high bits down: FNV's low bits are weak for short keys.
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    ((hash >> 11) as f64 / (1u64 << 53) as f64) < share
}

/// Dollars as whole micro-dollars (negative and non-finite amounts count as zero).
pub fn micro_usd(usd: f64) -> u64 {
    if usd.is_finite() && usd > 0.0 {
        (usd * 1e6).round() as u64
    } else {
        0
    }
}

fn ratio(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn canary_share_is_close_to_the_configured_one_and_sticky() {
        let inside = (0..20_000)
            .filter(|i| in_canary(&format!("user-{i}"), 0.1))
            .count();
        assert!((1_800..=2_200).contains(&inside), "{inside}");
        for i in 0..100 {
            let key = format!("user-{i}");
            assert_eq!(in_canary(&key, 0.1), in_canary(&key, 0.1));
        }
        assert!(!in_canary("anyone", 0.0));
        assert!(in_canary("anyone", 1.0));
    }

    #[test]
    fn only_traps_and_deadlines_extend_the_quarantine_streak() {
        let streak = FailureStreak::default();
        let trap: Result<(), _> = Err(PolicyError::Trap("unreachable".into()));
        let memory: Result<(), _> = Err(PolicyError::MemoryLimit(1 << 20));
        let deadline: Result<(), _> = Err(PolicyError::Deadline(Duration::from_millis(2)));
        let invalid: Result<(), _> = Err(PolicyError::InvalidDecision("unknown target 9".into()));
        let no_instance: Result<(), _> = Err(PolicyError::Instantiate("pool exhausted".into()));
        assert_eq!(streak.record(&trap), 1);
        assert_eq!(streak.record(&memory), 2);
        // Not the version's crash: not counted, and the streak goes on.
        assert_eq!(streak.record(&invalid), 0);
        assert_eq!(streak.record(&no_instance), 0);
        assert_eq!(streak.record(&deadline), 3);
        // A good answer ends it.
        assert_eq!(streak.record(&Ok(())), 0);
        assert_eq!(streak.record(&trap), 1);
        // However many invalid answers in a row: never a streak.
        let fresh = FailureStreak::default();
        for _ in 0..100 {
            assert_eq!(fresh.record(&invalid), 0);
        }
    }

    #[test]
    fn a_canary_pick_follows_the_share() {
        assert!(in_canary("u", 1.0));
        assert!(!in_canary("u", 0.0));
        // Monotone in the share: a user inside at 10 % stays inside at 50 %.
        let inside_10: Vec<String> = (0..1_000)
            .map(|i| format!("user-{i}"))
            .filter(|u| in_canary(u, 0.1))
            .collect();
        assert!(inside_10.iter().all(|u| in_canary(u, 0.5)));
    }

    #[test]
    fn traffic_reports_rates_and_means() {
        let t = TrafficStats::default();
        assert_eq!(t.report()["error_rate"], 0.0, "no division by zero");
        t.record(200, 1_000, 0.5);
        t.record(502, 3_000, 0.0);
        t.record(404, 2_000, f64::NAN);
        let r = t.report();
        assert_eq!(r["requests"], 3);
        assert_eq!(r["errors"], 1, "only 5xx are errors");
        assert_eq!(r["mean_latency_ms"], 2.0);
        assert_eq!(r["cost_usd"], 0.5);
    }

    #[test]
    fn a_shadow_without_decisions_has_no_agreement_rate() {
        let s = ShadowStats::default();
        assert_eq!(s.report()["agreement_rate"], serde_json::Value::Null);
        s.decisions.fetch_add(4, Ordering::Relaxed);
        s.agreements.fetch_add(1, Ordering::Relaxed);
        assert_eq!(s.report()["agreement_rate"], 0.25);
    }

    #[test]
    fn amounts_become_micro_dollars() {
        assert_eq!(micro_usd(1.5), 1_500_000);
        assert_eq!(micro_usd(-1.0), 0);
        assert_eq!(micro_usd(f64::NAN), 0);
    }
}

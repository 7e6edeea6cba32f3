//! Prometheus metrics, served as text at `GET /metrics` on the admin listener.
//!
//! Names follow Prometheus conventions (`signalbox_…_total` counters, `_seconds` in
//! base units) and every label comes from a bounded set: tenants and targets from
//! the config, policy versions deployed, status classes and fixed cause names —
//! never request ids, user ids or keys. Label values are shared strings, so
//! recording a sample allocates nothing.

use crate::policy::CallCounters;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{
    DescriptorEncoder, EncodeLabelSet, EncodeLabelValue, EncodeMetric, LabelValueEncoder,
};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
pub use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A label value shared by reference count (tenant ids, target ids, policy labels).
#[derive(Clone, Debug, Hash, PartialEq, Eq)]
pub struct Name(pub Arc<str>);

impl From<&str> for Name {
    fn from(s: &str) -> Self {
        Name(s.into())
    }
}

impl EncodeLabelValue for Name {
    fn encode(&self, encoder: &mut LabelValueEncoder) -> Result<(), std::fmt::Error> {
        (&*self.0).encode(encoder)
    }
}

/// `2xx`, `4xx`, `5xx`… from a status code.
pub fn status_class(status: u16) -> &'static str {
    match status {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    tenant: Name,
    target: Name,
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    tenant: Name,
    policy: Name,
    target: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FallbackLabels {
    tenant: Name,
    target: Name,
    cause: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    tenant: Name,
    policy: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyFailureLabels {
    tenant: Name,
    policy: Name,
    kind: &'static str,
}

/// The route-call counters of the policy versions deployed, read when scraped: the
/// counts live in one place, the policy's [`CallCounters`].
#[derive(Debug, Default)]
struct PolicyCalls(Mutex<Vec<(PolicyLabels, Arc<CallCounters>)>>);

impl Collector for PolicyCalls {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let tracked = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let counter = ConstCounter::new(0u64).metric_type();
        let mut calls = encoder.encode_descriptor(
            "policy_calls",
            "Policy route calls, by tenant and policy version",
            None,
            counter,
        )?;
        for (labels, counters) in &tracked {
            ConstCounter::new(counters.calls()).encode(calls.encode_family(labels)?)?;
        }
        let mut failures = encoder.encode_descriptor(
            "policy_failures",
            "Policy calls that failed, by kind (trap, deadline, memory_limit, invalid_decision, bad_config, instantiate)",
            None,
            counter,
        )?;
        for (labels, counters) in &tracked {
            for (kind, n) in counters.failures() {
                let labels = PolicyFailureLabels {
                    tenant: labels.tenant.clone(),
                    policy: labels.policy.clone(),
                    kind,
                };
                ConstCounter::new(n).encode(failures.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// A tenant's shadow candidate as its counters stood at scrape time (the counters
/// the admin API's candidate report shows; a new candidate starts from zero).
#[derive(Debug, Clone)]
pub struct ShadowSample {
    /// The tenant.
    pub tenant: Name,
    /// The active version's label.
    pub policy: Name,
    /// The shadow version's label.
    pub shadow: Name,
    /// Requests both versions decided.
    pub decisions: u64,
    /// Of those, the same first target.
    pub agreements: u64,
    /// Shadow calls that failed.
    pub failures: u64,
    /// What the served requests cost, in US dollars.
    pub active_cost_usd: f64,
    /// What they would have cost on the shadow's first choice, in US dollars.
    pub shadow_cost_usd: f64,
}

/// What one deployment's decided requests did, at scrape time.
#[derive(Debug, Clone)]
pub struct TrafficSample {
    /// The deployment's version label.
    pub policy: Name,
    /// Requests that reached an answer.
    pub requests: u64,
    /// Of those, 5xx or no route.
    pub errors: u64,
    /// Sum of their latencies, in seconds.
    pub latency_seconds: f64,
}

/// A tenant's canary next to its active version, at scrape time.
#[derive(Debug, Clone)]
pub struct CanarySample {
    /// The tenant.
    pub tenant: Name,
    /// The active deployment's traffic.
    pub active: TrafficSample,
    /// The canary's traffic.
    pub canary: TrafficSample,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowLabels {
    tenant: Name,
    policy: Name,
    shadow: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AgreementLabels {
    tenant: Name,
    policy: Name,
    shadow: Name,
    agreement: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ShadowCostLabels {
    tenant: Name,
    policy: Name,
    shadow: Name,
    side: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CanaryLabels {
    tenant: Name,
    policy: Name,
    role: &'static str,
}

/// The shadow and canary series, read from the candidates' own counters at scrape
/// time (as [`PolicyCalls`] does): one home for each count, so `/metrics` and the
/// admin API's candidate report always agree. Their families are described even
/// with no candidate running, so a dashboard's queries name known metrics.
#[derive(Debug, Default)]
struct Candidates(Mutex<(Vec<ShadowSample>, Vec<CanarySample>)>);

impl Collector for Candidates {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (shadows, canaries) = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let counter = ConstCounter::new(0u64).metric_type();
        let gauge = ConstGauge::new(0i64).metric_type();
        let labels = |s: &ShadowSample| ShadowLabels {
            tenant: s.tenant.clone(),
            policy: s.policy.clone(),
            shadow: s.shadow.clone(),
        };
        let mut family = encoder.encode_descriptor(
            "shadow_decisions",
            "Requests the active version and its shadow both decided, by tenant, active policy version, shadow version and agreement (agree: same first target)",
            None,
            counter,
        )?;
        for s in &shadows {
            let l = labels(s);
            for (agreement, n) in [
                ("agree", s.agreements),
                ("disagree", s.decisions.saturating_sub(s.agreements)),
            ] {
                let labels = AgreementLabels {
                    tenant: l.tenant.clone(),
                    policy: l.policy.clone(),
                    shadow: l.shadow.clone(),
                    agreement,
                };
                ConstCounter::new(n).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "shadow_failures",
            "Shadow calls that failed, by tenant, active policy version and shadow version",
            None,
            counter,
        )?;
        for s in &shadows {
            ConstCounter::new(s.failures).encode(family.encode_family(&labels(s))?)?;
        }
        let mut family = encoder.encode_descriptor(
            "shadow_cost_usd",
            "Cost of the requests served while a shadow ran (side=active), and what the same tokens would have cost on the shadow's first choice (side=shadow), in US dollars",
            None,
            counter,
        )?;
        for s in &shadows {
            let l = labels(s);
            for (side, usd) in [("active", s.active_cost_usd), ("shadow", s.shadow_cost_usd)] {
                let labels = ShadowCostLabels {
                    tenant: l.tenant.clone(),
                    policy: l.policy.clone(),
                    shadow: l.shadow.clone(),
                    side,
                };
                ConstCounter::new(usd).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "shadow_estimated_cost_difference_usd",
            "What the shadow's choices would have cost minus what was spent, in US dollars (negative: the shadow is cheaper)",
            None,
            gauge,
        )?;
        for s in &shadows {
            ConstGauge::new(s.shadow_cost_usd - s.active_cost_usd)
                .encode(family.encode_family(&labels(s))?)?;
        }
        let sides = |c: &CanarySample| {
            [("active", c.active.clone()), ("canary", c.canary.clone())].map(|(role, t)| {
                let labels = CanaryLabels {
                    tenant: c.tenant.clone(),
                    policy: t.policy.clone(),
                    role,
                };
                (labels, t)
            })
        };
        let mut family = encoder.encode_descriptor(
            "canary_requests",
            "Requests decided by the active version (role=active, since its activation) and by its canary (role=canary), by tenant and policy version",
            None,
            counter,
        )?;
        for c in &canaries {
            for (labels, t) in sides(c) {
                ConstCounter::new(t.requests).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "canary_errors",
            "Of canary_requests, those answered with a 5xx or no route",
            None,
            counter,
        )?;
        for c in &canaries {
            for (labels, t) in sides(c) {
                ConstCounter::new(t.errors).encode(family.encode_family(&labels)?)?;
            }
        }
        let mut family = encoder.encode_descriptor(
            "canary_latency",
            "Sum of the latencies of canary_requests (their count is canary_requests_total)",
            Some(&Unit::Seconds),
            counter,
        )?;
        for c in &canaries {
            for (labels, t) in sides(c) {
                ConstCounter::new(t.latency_seconds).encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantTargetLabels {
    tenant: Name,
    target: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TokenLabels {
    tenant: Name,
    target: Name,
    direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RejectionLabels {
    tenant: Name,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReviewLabels {
    tenant: Name,
    verdict: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TargetLabels {
    target: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ListenerLabels {
    listener: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LedgerLabels {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: Name,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BudgetLabels {
    tenant: Name,
    window: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    listener: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabels {
    op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StoreLabels {
    store: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterOutcomeLabels {
    op: &'static str,
    outcome: &'static str,
}

type Hist = Family<PolicyLabels, Histogram, fn() -> Histogram>;
type TargetHist = Family<TargetLabels, Histogram, fn() -> Histogram>;

/// Every metric the gateway exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    decisions: Family<DecisionLabels, Counter>,
    fallbacks: Family<FallbackLabels, Counter>,
    reviews: Family<ReviewLabels, Counter>,
    policy_seconds: Hist,
    policy_calls: Arc<PolicyCalls>,
    candidates: Arc<Candidates>,
    quarantines: Family<PolicyLabels, Counter>,
    upstream_seconds: TargetHist,
    ttft_seconds: TargetHist,
    tokens: Family<TokenLabels, Counter>,
    cost: Family<TenantTargetLabels, Counter<f64, AtomicU64>>,
    rejections: Family<RejectionLabels, Counter>,
    in_flight: Family<TargetLabels, Gauge>,
    circuit: Family<TargetLabels, Gauge>,
    refusals: Family<RefusalLabels, Counter>,
    open_connections: Family<ListenerLabels, Gauge>,
    listener_in_flight: Family<ListenerLabels, Gauge>,
    budget_spent: Family<BudgetLabels, Gauge<f64, AtomicU64>>,
    alive_tasks: Gauge,
    ledger_rows: Family<LedgerLabels, Gauge>,
    cluster_calls: Family<ClusterOutcomeLabels, Counter>,
    cluster_seconds: Family<ClusterLabels, Histogram, fn() -> Histogram>,
    cluster_up: Family<StoreLabels, Gauge>,
    policy_sync_failures: Family<TenantLabels, Counter>,
    state_sync_dropped: Family<TenantLabels, Counter>,
    feedback_forwarded: Family<ForwardLabels, Counter>,
}

/// Labels of feedback passed between replicas.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ForwardLabels {
    /// `sent` (to the replica that decided) or `received`, `unknown` (received for
    /// a request this replica no longer remembers).
    direction: &'static str,
}

fn cluster_buckets() -> Histogram {
    // 50 µs to ~200 ms: a Redis round trip on a network, up to past any timeout.
    Histogram::new(exponential_buckets(5e-5, 2.0, 13))
}

fn policy_buckets() -> Histogram {
    // 1 µs to ~16 ms: policy calls are microseconds; the deadline is milliseconds.
    Histogram::new(exponential_buckets(1e-6, 2.0, 15))
}

fn upstream_buckets() -> Histogram {
    // 1 ms to ~65 s.
    Histogram::new(exponential_buckets(1e-3, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// All metrics, registered under the `signalbox` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("signalbox");
        let m = Metrics {
            requests: Family::default(),
            decisions: Family::default(),
            fallbacks: Family::default(),
            reviews: Family::default(),
            policy_seconds: Family::new_with_constructor(policy_buckets),
            policy_calls: Arc::default(),
            candidates: Arc::default(),
            quarantines: Family::default(),
            upstream_seconds: Family::new_with_constructor(upstream_buckets),
            ttft_seconds: Family::new_with_constructor(upstream_buckets),
            tokens: Family::default(),
            cost: Family::default(),
            rejections: Family::default(),
            in_flight: Family::default(),
            circuit: Family::default(),
            refusals: Family::default(),
            open_connections: Family::default(),
            listener_in_flight: Family::default(),
            budget_spent: Family::default(),
            alive_tasks: Gauge::default(),
            ledger_rows: Family::default(),
            cluster_calls: Family::default(),
            cluster_seconds: Family::new_with_constructor(cluster_buckets),
            cluster_up: Family::default(),
            policy_sync_failures: Family::default(),
            state_sync_dropped: Family::default(),
            feedback_forwarded: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "requests",
            "Requests answered, by tenant, serving target (`none` when no target answered) and status class",
            m.requests.clone(),
        );
        registry.register(
            "route_decisions",
            "Route decisions, by tenant, policy version and first-choice target",
            m.decisions.clone(),
        );
        registry.register(
            "fallbacks",
            "Targets given up on before the one that answered, by cause (`escalated`: an answer the policy's review refused)",
            m.fallbacks.clone(),
        );
        registry.register(
            "answer_reviews",
            "Answers a policy reviewed before the client saw them, by verdict (accept, escalate, verify)",
            m.reviews.clone(),
        );
        registry.register_with_unit(
            "policy_evaluation",
            "Time to evaluate a route decision, by tenant and policy version",
            Unit::Seconds,
            m.policy_seconds.clone(),
        );
        registry.register_collector(Box::new(m.policy_calls.clone()));
        registry.register_collector(Box::new(m.candidates.clone()));
        registry.register(
            "policy_quarantines",
            "Policy versions quarantined after repeated failures",
            m.quarantines.clone(),
        );
        registry.register_with_unit(
            "upstream_latency",
            "Time from dispatch to the end of the answer, by target",
            Unit::Seconds,
            m.upstream_seconds.clone(),
        );
        registry.register_with_unit(
            "upstream_ttft",
            "Time to first token of streamed answers, by target",
            Unit::Seconds,
            m.ttft_seconds.clone(),
        );
        registry.register(
            "tokens",
            "Tokens billed, by tenant, target and direction (input and output in all; cache_read, cache_write and reasoning: the parts of them priced or shown apart)",
            m.tokens.clone(),
        );
        registry.register(
            "cost_usd",
            "Cost in US dollars from the targets' prices",
            m.cost.clone(),
        );
        registry.register(
            "rejections",
            "Requests refused by a limit (rate_limit_requests, rate_limit_tokens, budget_exceeded, retry_budget)",
            m.rejections.clone(),
        );
        registry.register(
            "in_flight_requests",
            "Requests in flight, by target",
            m.in_flight.clone(),
        );
        registry.register(
            "circuit_state",
            "Circuit breaker state by target: 0 closed, 1 half-open, 2 open",
            m.circuit.clone(),
        );
        registry.register(
            "listener_refusals",
            "Connections and requests a listener refused or cut off (connection_limit, in_flight_limit, header_timeout, body_timeout, headers_too_large, malformed, ambiguous_framing, http2_flood, http2_protocol, idle_timeout)",
            m.refusals.clone(),
        );
        registry.register(
            "open_connections",
            "Client connections open, by listener (api, admin)",
            m.open_connections.clone(),
        );
        registry.register(
            "listener_in_flight_requests",
            "Requests in flight, by listener (streams until they end)",
            m.listener_in_flight.clone(),
        );
        registry.register(
            "budget_spent_usd",
            "Spend a tenant's budget has counted in the current UTC day and month (tenants with a budget), in US dollars",
            m.budget_spent.clone(),
        );
        registry.register(
            "ledger_rows",
            "Usage ledger rows since start, by state: recorded, spilled (found the queue full and waited in the spill list), written, dropped (the spill list full while the database could not be written)",
            m.ledger_rows.clone(),
        );
        registry.register(
            "runtime_alive_tasks",
            "Tasks alive on the gateway's async runtime",
            m.alive_tasks.clone(),
        );
        registry.register(
            "cluster_calls",
            "Calls to the fleet's shared store, by operation (admit, settle) and outcome (ok, error)",
            m.cluster_calls.clone(),
        );
        registry.register_with_unit(
            "cluster_call",
            "Round-trip time of calls to the fleet's shared store, by operation",
            Unit::Seconds,
            m.cluster_seconds.clone(),
        );
        registry.register(
            "policy_sync_failures",
            "Policy bindings another replica of the fleet set that this one could not take (it keeps its own), by tenant",
            m.policy_sync_failures.clone(),
        );
        registry.register(
            "state_sync_dropped",
            "Policy state-store writes this replica could not send to the fleet (its queue to Redis was full), by tenant",
            m.state_sync_dropped.clone(),
        );
        registry.register(
            "feedback_forwarded",
            "Feedback passed between replicas: sent to the replica that decided, received there, or received for a request it no longer remembers",
            m.feedback_forwarded.clone(),
        );
        registry.register(
            "cluster_up",
            "Whether the last call to the fleet's shared store (redis) succeeded (1) or not (0); absent without [cluster]",
            m.cluster_up.clone(),
        );
        Metrics { registry, ..m }
    }

    /// Bindings from the fleet that this replica could not take.
    pub fn policy_sync_failed(&self, tenant: &str) {
        self.policy_sync_failures
            .get_or_create(&TenantLabels {
                tenant: Name(tenant.into()),
            })
            .inc();
    }

    /// A state-store write that did not reach the fleet's queue.
    pub fn state_sync_dropped(&self, tenant: &str) {
        self.state_sync_dropped
            .get_or_create(&TenantLabels {
                tenant: Name(tenant.into()),
            })
            .inc();
    }

    /// Feedback passed between replicas (`sent`, `received` or `unknown`).
    pub fn feedback_forwarded(&self, direction: &'static str, n: u64) {
        self.feedback_forwarded
            .get_or_create(&ForwardLabels { direction })
            .inc_by(n);
    }

    /// A call to the fleet's shared store.
    pub fn cluster_call(&self, op: &'static str, ok: bool, took: std::time::Duration) {
        let outcome = if ok { "ok" } else { "error" };
        self.cluster_calls
            .get_or_create(&ClusterOutcomeLabels { op, outcome })
            .inc();
        self.cluster_seconds
            .get_or_create(&ClusterLabels { op })
            .observe(took.as_secs_f64());
        self.cluster_up
            .get_or_create(&StoreLabels { store: "redis" })
            .set(i64::from(ok));
    }

    /// A request answered (`target` `none` when no target did).
    pub fn request(&self, tenant: &Name, target: &Name, status: u16) {
        self.requests
            .get_or_create(&RequestLabels {
                tenant: tenant.clone(),
                target: target.clone(),
                status: status_class(status),
            })
            .inc();
    }

    /// A policy decided, in `elapsed`; `first` is its first choice (none when it
    /// rejected or failed: failures are counted by the policy's own counters, see
    /// [`Metrics::track_policy`]).
    pub fn decision(&self, tenant: &Name, policy: &Name, elapsed: Duration, first: Option<&Name>) {
        let labels = PolicyLabels {
            tenant: tenant.clone(),
            policy: policy.clone(),
        };
        self.policy_seconds
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        if let Some(target) = first {
            self.decisions
                .get_or_create(&DecisionLabels {
                    tenant: labels.tenant,
                    policy: labels.policy,
                    target: target.clone(),
                })
                .inc();
        }
    }

    /// Exports a policy version's route-call counters for `tenant` under the label
    /// `policy`, read at each scrape (a version is tracked once, under the label of its
    /// first deployment for the tenant).
    pub fn track_policy(&self, tenant: &Name, policy: &Name, calls: Arc<CallCounters>) {
        let mut tracked = self
            .policy_calls
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !tracked.iter().any(|(_, c)| Arc::ptr_eq(c, &calls)) {
            let labels = PolicyLabels {
                tenant: tenant.clone(),
                policy: policy.clone(),
            };
            tracked.push((labels, calls));
        }
    }

    /// A target given up on for `cause`.
    pub fn fallback(&self, tenant: &Name, target: &Name, cause: &'static str) {
        self.fallbacks
            .get_or_create(&FallbackLabels {
                tenant: tenant.clone(),
                target: target.clone(),
                cause,
            })
            .inc();
    }

    /// A policy's review of an answer, by its verdict.
    pub fn review(&self, tenant: &Name, verdict: &'static str) {
        self.reviews
            .get_or_create(&ReviewLabels {
                tenant: tenant.clone(),
                verdict,
            })
            .inc();
    }

    /// A policy version quarantined.
    pub fn quarantine(&self, tenant: &Name, policy: &Name) {
        self.quarantines
            .get_or_create(&PolicyLabels {
                tenant: tenant.clone(),
                policy: policy.clone(),
            })
            .inc();
    }

    /// An answer delivered by `target`: its latency, time to first token, tokens and
    /// cost.
    pub fn served(&self, usage: Served<'_>) {
        let target = TargetLabels {
            target: usage.target.clone(),
        };
        self.upstream_seconds
            .get_or_create(&target)
            .observe(usage.latency.as_secs_f64());
        if let Some(ttft) = usage.ttft {
            self.ttft_seconds
                .get_or_create(&target)
                .observe(ttft.as_secs_f64());
        }
        let tokens = usage.tokens;
        for (direction, n) in [
            ("input", tokens.input),
            ("output", tokens.output),
            ("cache_read", tokens.cache_read),
            ("cache_write", tokens.cache_write),
            ("reasoning", tokens.reasoning),
        ] {
            // The parts appear once a provider reports them, not as zeros for all.
            if n == 0 && !matches!(direction, "input" | "output") {
                continue;
            }
            self.tokens
                .get_or_create(&TokenLabels {
                    tenant: usage.tenant.clone(),
                    target: usage.target.clone(),
                    direction,
                })
                .inc_by(u64::from(n));
        }
        self.cost
            .get_or_create(&TenantTargetLabels {
                tenant: usage.tenant.clone(),
                target: usage.target.clone(),
            })
            .inc_by(usage.cost_usd.max(0.0));
    }

    /// A request refused by a limit.
    pub fn rejection(&self, tenant: &Name, reason: &'static str) {
        self.rejections
            .get_or_create(&RejectionLabels {
                tenant: tenant.clone(),
                reason,
            })
            .inc();
    }

    /// A connection or request `listener` refused or cut off, for `reason`.
    pub fn listener_refusal(&self, listener: &'static str, reason: &'static str) {
        self.refusals
            .get_or_create(&RefusalLabels { listener, reason })
            .inc();
    }

    /// The gauges of `listener`'s open connections and requests in flight, kept by
    /// the listener itself (a gauge is a shared counter: updating it allocates
    /// nothing).
    pub fn listener_gauges(&self, listener: &'static str) -> (Gauge, Gauge) {
        let labels = ListenerLabels { listener };
        (
            self.open_connections.get_or_create(&labels).clone(),
            self.listener_in_flight.get_or_create(&labels).clone(),
        )
    }

    /// Sets a target's gauges (called at scrape time from the live signals).
    pub fn target_state(&self, target: &Name, in_flight: u32, circuit: i64) {
        let labels = TargetLabels {
            target: target.clone(),
        };
        self.in_flight
            .get_or_create(&labels)
            .set(i64::from(in_flight));
        self.circuit.get_or_create(&labels).set(circuit);
    }

    /// Sets a tenant's budget gauges (called at scrape time from its quota).
    pub fn budget_state(&self, tenant: &Name, (day_usd, month_usd): (f64, f64)) {
        for (window, usd) in [("day", day_usd), ("month", month_usd)] {
            self.budget_spent
                .get_or_create(&BudgetLabels {
                    tenant: tenant.clone(),
                    window,
                })
                .set(usd);
        }
    }

    /// The ledger's row counts (at scrape time): recorded, spilled, written, dropped.
    pub fn ledger_state(&self, counts: (u64, u64, u64, u64)) {
        let (recorded, spilled, written, dropped) = counts;
        for (state, n) in [
            ("recorded", recorded),
            ("spilled", spilled),
            ("written", written),
            ("dropped", dropped),
        ] {
            self.ledger_rows
                .get_or_create(&LedgerLabels { state })
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
    }

    /// The tenants' shadows and canaries as they stand (called at scrape time): the
    /// next render shows exactly these.
    pub fn candidates_state(&self, shadows: Vec<ShadowSample>, canaries: Vec<CanarySample>) {
        *self.candidates.0.lock().unwrap_or_else(|p| p.into_inner()) = (shadows, canaries);
    }

    /// Sets the runtime's task gauge (called at scrape time): a count that does not
    /// return to its idle value after load is a task leak.
    pub fn runtime_state(&self, alive_tasks: usize) {
        self.alive_tasks
            .set(i64::try_from(alive_tasks).unwrap_or(i64::MAX));
    }

    /// The text exposition (OpenMetrics text format, which Prometheus reads).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// What [`Metrics::served`] records.
pub struct Served<'a> {
    /// The tenant.
    pub tenant: &'a Name,
    /// The target that answered.
    pub target: &'a Name,
    /// Dispatch to end of answer.
    pub latency: Duration,
    /// Time to first token (streams).
    pub ttft: Option<Duration>,
    /// The tokens used.
    pub tokens: &'a crate::usage::Usage,
    /// Cost in dollars.
    pub cost_usd: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_render_with_conventional_names() {
        let m = Metrics::new();
        let (t, x) = (Name::from("acme"), Name::from("gpt"));
        m.request(&t, &x, 200);
        m.request(&t, &x, 204);
        m.served(Served {
            tenant: &t,
            target: &x,
            latency: Duration::from_millis(20),
            ttft: None,
            tokens: &crate::usage::Usage {
                cache_read: 7,
                ..crate::usage::Usage::new(10, 5)
            },
            cost_usd: 0.25,
        });
        let text = m.render();
        assert!(
            text.contains(r#"signalbox_requests_total{tenant="acme",target="gpt",status="2xx"} 2"#),
            "{text}"
        );
        assert!(text.contains(
            r#"signalbox_tokens_total{tenant="acme",target="gpt",direction="input"} 10"#
        ));
        assert!(text.contains(
            r#"signalbox_tokens_total{tenant="acme",target="gpt",direction="cache_read"} 7"#
        ));
        assert!(
            !text.contains(r#"direction="reasoning""#),
            "parts no provider reported are left out: {text}"
        );
        assert!(text.contains(r#"signalbox_cost_usd_total{tenant="acme",target="gpt"} 0.25"#));
        assert!(text.contains("signalbox_upstream_latency_seconds_bucket"));
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn scrape_time_gauges_render_what_was_set_last() {
        let m = Metrics::new();
        let t = Name::from("acme");
        m.budget_state(&t, (0.5, 2.0));
        m.budget_state(&t, (0.75, 2.25));
        m.runtime_state(12);
        let text = m.render();
        assert!(
            text.contains(r#"signalbox_budget_spent_usd{tenant="acme",window="day"} 0.75"#),
            "{text}"
        );
        assert!(text.contains(r#"signalbox_budget_spent_usd{tenant="acme",window="month"} 2.25"#));
        assert!(text.contains("signalbox_runtime_alive_tasks 12"), "{text}");
    }
}

//! The decision for one request: ask the tenant's policy (and its shadow, if one is
//! running), fall back to the safe route when the policy fails, and keep who decided
//! until the request ends.

use crate::decision_log::{DecisionEntry, DecisionRecord, Rejection};
use crate::deploy::{Candidate, Deployment, Routing};
use crate::gateway::{Gateway, Tenant};
use crate::openai::ApiError;
use crate::policy::{PolicyError, RouteDecision, RouteRequest, TargetSignals};
use crate::telemetry::gen_ai;
use std::sync::Arc;
use std::time::Instant;

/// What a request is to do: try targets, or be refused.
pub(crate) enum Verdict {
    /// Try these targets (positions in the tenant's list) in order.
    Route {
        targets: Vec<u32>,
        reason: String,
        /// The kind of policy failure when the tenant's safe route stands in: the
        /// policy made no decision then, so it hears no outcome.
        policy_error: Option<&'static str>,
    },
    /// The policy refused the request.
    Reject(ApiError),
}

/// The decision for one request and who made it (kept until the request ends,
/// whatever is activated meanwhile).
pub(crate) struct Plan {
    pub routing: Arc<Routing>,
    pub deployment: Arc<Deployment>,
    /// The shadow candidate's first choice (global target index), if one ran.
    pub shadow_choice: Option<usize>,
    pub verdict: Verdict,
    /// The decision-log record so far (when the log is on).
    pub log: Option<DecisionRecord>,
}

impl Plan {
    /// Whether the policy itself decided (routed or rejected), so it hears the outcome.
    pub fn by_policy(&self) -> bool {
        match &self.verdict {
            Verdict::Route { policy_error, .. } => policy_error.is_none(),
            Verdict::Reject(_) => true,
        }
    }
}

pub(crate) fn decide(gateway: &Arc<Gateway>, tenant: &Arc<Tenant>, request: &RouteRequest) -> Plan {
    let routing = tenant.policy.current();
    let deployment = routing.pick(sticky_key(request)).clone();
    let signals = gateway.signals.snapshot(&tenant.targets);
    let started = Instant::now();
    let (decision, streak) = {
        // At info level, like the request and the attempts: exported traces take the
        // gateway's spans from info up, and the policy call belongs in them.
        let span = tracing::info_span!(
            "policy",
            policy = %deployment.label,
            outcome = tracing::field::Empty,
            gen_ai.operation.name = gen_ai::operation_of(request.fields().endpoint),
            gen_ai.request.model = request.model(),
            error.type = tracing::field::Empty,
        );
        let _entered = span.enter();
        let routed = deployment.route(request, &signals);
        span.record(
            "outcome",
            match &routed.0 {
                Ok(RouteDecision::Route { .. }) => "route",
                Ok(RouteDecision::Reject { .. }) => "reject",
                Err(e) => e.kind(),
            },
        );
        if let Err(e) = &routed.0 {
            span.record("error.type", e.kind());
        }
        routed
    };
    let first = match &decision {
        Ok(RouteDecision::Route { targets, .. }) => targets
            .first()
            .and_then(|&p| gateway.target_of(tenant, p))
            .map(|t| &t.name),
        Ok(RouteDecision::Reject { .. }) | Err(_) => None,
    };
    gateway
        .metrics
        .decision(&tenant.name(), &deployment.metric, started.elapsed(), first);
    if streak > 0 {
        watch_failures(gateway, tenant, &deployment, streak);
    }
    let shadow_choice = routing
        .shadow()
        .and_then(|c| shadow(gateway, tenant, c, request, &signals, &decision));
    let verdict = match decision {
        Ok(RouteDecision::Route { targets, reason }) => Verdict::Route {
            targets,
            reason,
            policy_error: None,
        },
        Ok(RouteDecision::Reject { status, message }) => {
            Verdict::Reject(ApiError::rejected(status, message))
        }
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, policy = %deployment.label, error = %e, "policy failed; using the safe route");
            Verdict::Route {
                targets: tenant.safe_route.clone(),
                reason: format!("safe route (policy {})", e.kind()),
                policy_error: Some(e.kind()),
            }
        }
    };
    let log = gateway.decision_log.as_ref().map(|_| {
        let mut record = log_record(gateway, tenant, request, &signals, &deployment, &verdict);
        record.shadow_choice = shadow_choice
            .and_then(|g| gateway.targets.get(g))
            .map(|t| t.config.id.clone());
        record
    });
    Plan {
        routing,
        deployment,
        shadow_choice,
        verdict,
        log,
    }
}

/// The decision-log record of a decision: what the policy saw and what it answered.
fn log_record(
    gateway: &Gateway,
    tenant: &Tenant,
    request: &RouteRequest,
    signals: &[TargetSignals],
    deployment: &Deployment,
    verdict: &Verdict,
) -> DecisionRecord {
    let id = |p: u32| {
        gateway
            .target_of(tenant, p)
            .map_or("?", |t| t.config.id.as_str())
    };
    let ids: Vec<&str> = (0..tenant.targets.len() as u32).map(id).collect();
    let mut entry = DecisionEntry {
        policy: deployment.label.clone(),
        targets: None,
        reason: None,
        rejection: None,
        error: None,
    };
    match verdict {
        Verdict::Route {
            targets,
            reason,
            policy_error,
        } => {
            entry.targets = Some(targets.iter().map(|&p| id(p).to_owned()).collect());
            entry.reason = Some(reason.clone());
            entry.error = *policy_error;
        }
        Verdict::Reject(error) => {
            entry.rejection = Some(Rejection {
                status: error.status.as_u16(),
                message: error.message.clone(),
            });
        }
    }
    DecisionRecord::new(
        &tenant.id,
        request,
        &ids,
        signals,
        tenant.log_message_text,
        entry,
    )
}

/// What a tenant's active policy would decide for `request` now, without calling any
/// upstream: the targets in order (ids) and the reason, or the rejection.
pub fn explain(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    request: &RouteRequest,
) -> Explanation {
    let plan = decide(gateway, tenant, request);
    let policy = plan.deployment.label.clone();
    match plan.verdict {
        Verdict::Route {
            targets, reason, ..
        } => Explanation {
            policy,
            targets: targets
                .iter()
                .filter_map(|&p| gateway.target_of(tenant, p))
                .map(|t| t.config.id.clone())
                .collect(),
            reason,
            rejection: None,
        },
        Verdict::Reject(error) => Explanation {
            policy,
            targets: Vec::new(),
            reason: String::new(),
            rejection: Some((error.status.as_u16(), error.message)),
        },
    }
}

/// A decision, explained (see [`explain`]).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Explanation {
    /// The deciding policy, `name@version`.
    pub policy: String,
    /// Target ids to try, in order.
    pub targets: Vec<String>,
    /// The policy's reason.
    pub reason: String,
    /// Status and message when the policy rejects the request.
    pub rejection: Option<(u16, String)>,
}

/// The key a canary split is sticky on: the end user (`user` in the body or the
/// `x-signalbox-user` header), else the request itself.
fn sticky_key(request: &RouteRequest) -> &str {
    request.metadata("user").unwrap_or_else(|| request.id())
}

/// At the quarantine threshold, hands the failing deployment to its tenant's
/// lifecycle, off the request path (it takes the tenant's admin lock). Exactly one
/// request sees the threshold streak, so this runs once per streak.
pub(super) fn watch_failures(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    deployment: &Arc<Deployment>,
    streak: u32,
) {
    if streak != gateway.deployer.quarantine_after.max(1) {
        return;
    }
    let (gateway, tenant, deployment) = (gateway.clone(), tenant.clone(), deployment.clone());
    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        runtime.spawn_blocking(move || {
            tenant
                .policy
                .quarantine_if_due(&gateway.deployer, &deployment, streak)
        });
    }
}

/// Lets the shadow decide the same request and records how it compares. Returns its
/// first choice as a global target index.
fn shadow(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    candidate: &Candidate,
    request: &RouteRequest,
    signals: &[TargetSignals],
    active: &Result<RouteDecision, PolicyError>,
) -> Option<usize> {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &candidate.shadow;
    let (decision, streak) = candidate.deployment.route(request, signals);
    if decision.is_err() {
        stats.failures.fetch_add(1, Relaxed);
    }
    if streak > 0 {
        watch_failures(gateway, tenant, &candidate.deployment, streak);
    }
    let (Ok(active), Ok(shadow)) = (active, &decision) else {
        return None;
    };
    stats.decisions.fetch_add(1, Relaxed);
    let choice = first_choice(shadow);
    if first_choice(active) == choice {
        stats.agreements.fetch_add(1, Relaxed);
    }
    choice.and_then(|p| tenant.targets.get(p as usize).copied())
}

/// A decision's primary target (position), if it routes.
fn first_choice(decision: &RouteDecision) -> Option<u32> {
    match decision {
        RouteDecision::Route { targets, .. } => targets.first().copied(),
        RouteDecision::Reject { .. } => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Endpoint, RequestFields};

    fn request(id: &str, metadata: &[(&str, &str)]) -> RouteRequest {
        RouteRequest::new(
            RequestFields {
                id: id.into(),
                endpoint: Endpoint::Chat,
                model: "m".into(),
                input_tokens: 1,
                max_output_tokens: None,
                stream: false,
                has_tools: false,
                metadata: metadata
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            },
            Vec::new(),
        )
    }

    #[test]
    fn canaries_stick_to_the_user_else_to_the_request() {
        assert_eq!(sticky_key(&request("r-1", &[("user", "u-9")])), "u-9");
        assert_eq!(sticky_key(&request("r-1", &[("tag", "x")])), "r-1");
    }

    #[test]
    fn the_first_choice_is_the_primary_of_a_route_only() {
        let route = RouteDecision::Route {
            targets: vec![2, 0],
            reason: String::new(),
        };
        assert_eq!(first_choice(&route), Some(2));
        let reject = RouteDecision::Reject {
            status: 403,
            message: String::new(),
        };
        assert_eq!(first_choice(&reject), None);
    }
}

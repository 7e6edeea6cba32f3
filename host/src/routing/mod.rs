//! The routing pipeline for one request: ask the tenant's policy (or fall back to its
//! safe route), then try the chosen targets in order until one answers.

mod attempt;
mod completion;
mod model_name;
mod relay;
mod scanner;

use crate::deploy::{Candidate, Deployment, Routing};
use crate::gateway::{Gateway, Tenant};
use crate::openai::{ApiError, ChatRequest, EmbeddingsRequest, ResponseBody, full};
use crate::policy::{RouteDecision, RouteRequest};
use crate::provider::{Attempt, AttemptKind};
use crate::quota::Reservation;
use crate::signals::Admission;
use attempt::Outcome;
use completion::Completion;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

// Header names as constants: `from_static` runs at compile time, where a `&str` name
// would be checked and looked up again on every response.

/// Response headers explaining the route.
pub const HEADER_TARGET: http::HeaderName = http::HeaderName::from_static("x-signalbox-target");
/// The policy that decided, as `name@version`.
pub const HEADER_POLICY: http::HeaderName = http::HeaderName::from_static("x-signalbox-policy");
/// How many targets were tried.
pub const HEADER_ATTEMPTS: http::HeaderName = http::HeaderName::from_static("x-signalbox-attempts");
/// Why the policy chose this route (or that the safe route was used).
pub const HEADER_REASON: http::HeaderName =
    http::HeaderName::from_static("x-signalbox-route-reason");

/// The `target` label of requests no target answered.
static NO_TARGET: std::sync::LazyLock<crate::metrics::Name> =
    std::sync::LazyLock::new(|| crate::metrics::Name::from("none"));

/// The decision for one request: who decided (kept until the outcome is reported,
/// whatever is activated meanwhile) and the targets to try, as positions in the
/// tenant's target list.
struct Plan {
    routing: Arc<Routing>,
    deployment: Arc<Deployment>,
    /// The shadow candidate's first choice (global target index), if one ran.
    shadow_choice: Option<usize>,
    targets: Vec<u32>,
    reason: String,
    /// The decision-log record so far (when the log is on).
    log: Option<serde_json::Value>,
}

/// A policy's refusal, with the label of the version that refused.
struct Refusal {
    error: ApiError,
    deployment: Arc<Deployment>,
    log: Option<serde_json::Value>,
}

fn decide(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    request: &RouteRequest,
) -> Result<Plan, Refusal> {
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
        routed
    };
    let first = match &decision {
        Ok(RouteDecision::Route { targets, .. }) => Ok(targets
            .first()
            .and_then(|&p| tenant.targets.get(p as usize))
            .and_then(|&g| gateway.targets.get(g))
            .map(|t| &t.name)),
        Ok(RouteDecision::Reject { .. }) => Ok(None),
        Err(e) => Err(e.kind()),
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
    let log = gateway.decision_log.as_ref().map(|_| {
        decision_record(
            gateway,
            tenant,
            request,
            &signals,
            &deployment,
            &decision,
            shadow_choice,
        )
    });
    match decision {
        Ok(RouteDecision::Route { targets, reason }) => Ok(Plan {
            routing,
            deployment,
            shadow_choice,
            targets,
            reason,
            log,
        }),
        Ok(RouteDecision::Reject { status, message }) => Err(Refusal {
            error: ApiError::rejected(status, message),
            deployment,
            log,
        }),
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, policy = %deployment.label, error = %e, "policy failed; using the safe route");
            Ok(Plan {
                routing,
                deployment,
                shadow_choice,
                targets: tenant.safe_route.clone(),
                reason: format!("safe route (policy {})", e.kind()),
                log,
            })
        }
    }
}

/// The decision-log record of a decision: what the policy saw and what it answered.
fn decision_record(
    gateway: &Gateway,
    tenant: &Tenant,
    request: &RouteRequest,
    signals: &[crate::policy::TargetSignals],
    deployment: &Deployment,
    decision: &Result<RouteDecision, crate::policy::PolicyError>,
    shadow_choice: Option<usize>,
) -> serde_json::Value {
    let id = |p: u32| {
        tenant
            .targets
            .get(p as usize)
            .and_then(|&g| gateway.targets.get(g))
            .map_or("?", |t| t.config.id.as_str())
    };
    let ids: Vec<&str> = (0..tenant.targets.len() as u32).map(id).collect();
    let mut record =
        crate::decision_log::features(&tenant.id, request, &ids, signals, tenant.log_message_text);
    record["decision"] = match decision {
        Ok(RouteDecision::Route { targets, reason }) => serde_json::json!({
            "policy": deployment.label,
            "targets": targets.iter().map(|&p| id(p)).collect::<Vec<_>>(),
            "reason": reason,
        }),
        Ok(RouteDecision::Reject { status, message }) => serde_json::json!({
            "policy": deployment.label,
            "rejection": {"status": status, "message": message},
        }),
        Err(e) => serde_json::json!({
            "policy": deployment.label,
            "error": e.kind(),
            "targets": tenant.safe_route.iter().map(|&p| id(p)).collect::<Vec<_>>(),
            "reason": "safe route",
        }),
    };
    if let Some(g) = shadow_choice {
        record["shadow_choice"] = gateway
            .targets
            .get(g)
            .map_or(serde_json::Value::Null, |t| t.config.id.as_str().into());
    }
    record
}

/// Completes a decision-log record with the outcome and queues it.
pub(crate) fn log_outcome(
    gateway: &Gateway,
    record: Option<serde_json::Value>,
    outcome: serde_json::Value,
) {
    if let (Some(log), Some(mut record)) = (&gateway.decision_log, record) {
        record["outcome"] = outcome;
        log.write(record);
    }
}

/// What a tenant's active policy would decide for `request` now, without calling any
/// upstream: the targets in order (ids) and the reason, or the rejection.
pub fn explain(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    request: &RouteRequest,
) -> Explanation {
    match decide(gateway, tenant, request) {
        Ok(plan) => Explanation {
            policy: plan.deployment.label.clone(),
            targets: plan
                .targets
                .iter()
                .filter_map(|&p| tenant.targets.get(p as usize))
                .filter_map(|&g| gateway.targets.get(g))
                .map(|t| t.config.id.clone())
                .collect(),
            reason: plan.reason,
            rejection: None,
        },
        Err(Refusal {
            error, deployment, ..
        }) => Explanation {
            policy: deployment.label.clone(),
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
fn watch_failures(
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
    signals: &[crate::policy::TargetSignals],
    active: &Result<RouteDecision, crate::policy::PolicyError>,
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
    let first = |d: &RouteDecision| match d {
        RouteDecision::Route { targets, .. } => targets.first().copied(),
        RouteDecision::Reject { .. } => None,
    };
    let (Ok(active), Ok(shadow)) = (active, &decision) else {
        return None;
    };
    stats.decisions.fetch_add(1, Relaxed);
    let choice = first(shadow);
    if first(active) == choice {
        stats.agreements.fetch_add(1, Relaxed);
    }
    choice.and_then(|p| tenant.targets.get(p as usize).copied())
}

/// Serves `POST /v1/chat/completions`, settling `reservation` with the usage of the
/// answer (or giving its tokens back when no upstream answers).
pub async fn chat(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    request: ChatRequest,
    request_id: &str,
    key_id: &Arc<str>,
    reservation: Reservation,
) -> http::Response<ResponseBody> {
    let attempt = Attempt {
        body: &request.body,
        kind: AttemptKind::Chat,
        stream: request.stream,
        include_usage: request.include_usage,
    };
    let view = request.route_request(request_id);
    route(
        gateway,
        tenant,
        &view,
        attempt,
        (request_id, key_id),
        request.input_tokens,
        reservation,
    )
    .await
}

/// Serves `POST /v1/embeddings`, settling `reservation` like [`chat`].
pub async fn embeddings(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    request: EmbeddingsRequest,
    request_id: &str,
    key_id: &Arc<str>,
    reservation: Reservation,
) -> http::Response<ResponseBody> {
    let attempt = Attempt {
        body: &request.body,
        kind: AttemptKind::Embeddings,
        stream: false,
        include_usage: false,
    };
    let view = request.route_request(request_id);
    route(
        gateway,
        tenant,
        &view,
        attempt,
        (request_id, key_id),
        request.input_tokens,
        reservation,
    )
    .await
}

/// Decides, then dispatches; a policy's rejection is answered at once.
async fn route(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    view: &RouteRequest,
    attempt: Attempt<'_>,
    ids: (&str, &Arc<str>),
    input_estimate: u32,
    reservation: Reservation,
) -> http::Response<ResponseBody> {
    let started = Instant::now();
    match decide(gateway, tenant, view) {
        Ok(plan) => {
            dispatch(
                gateway,
                tenant,
                plan,
                attempt,
                ids,
                input_estimate,
                reservation,
            )
            .await
        }
        Err(Refusal {
            error,
            deployment,
            log,
        }) => {
            let response = error.into_response();
            log_outcome(
                gateway,
                log,
                serde_json::json!({"status": response.status().as_u16(), "target": null}),
            );
            gateway
                .metrics
                .request(&tenant.name(), &NO_TARGET, response.status().as_u16());
            deployment
                .traffic
                .record(response.status().as_u16(), micros(started.elapsed()), 0.0);
            explained(response, &deployment.label, None, 0)
        }
    }
}

/// Tries the plan's targets in order. Falls back only while nothing has reached the
/// client; gives up after `max_attempts` tries with a 503 listing each attempt.
async fn dispatch(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    mut plan: Plan,
    attempt: Attempt<'_>,
    (request_id, key_id): (&str, &Arc<str>),
    input_estimate: u32,
    reservation: Reservation,
) -> http::Response<ResponseBody> {
    // Settled by the completion of the attempt that answers; dropped unsettled (tokens
    // given back) when none does.
    let mut reservation = Some(reservation);
    let mut reasons = Vec::new();
    let mut tried = 0u32;
    let label = plan.deployment.label.as_str();
    let dispatched = Instant::now();
    for &position in &plan.targets {
        if tried as usize >= gateway.config.server.max_attempts {
            reasons.push("attempt limit reached".to_owned());
            break;
        }
        let Some(&global) = tenant.targets.get(position as usize) else {
            continue;
        };
        let Some(target) = gateway.targets.get(global) else {
            continue;
        };
        if let Admission::Denied(why) = gateway.signals.admit(global) {
            reasons.push(format!("{}: skipped, {why}", target.config.id));
            gateway
                .metrics
                .fallback(&tenant.name(), &target.name, "circuit_open");
            continue;
        }
        tried += 1;
        let in_flight = gateway.signals.start(global);
        let started = Instant::now();
        let completion = |status: u16, ttft| Completion {
            gateway: gateway.clone(),
            deployment: plan.deployment.clone(),
            shadow: plan
                .shadow_choice
                .map(|choice| (plan.routing.clone(), choice)),
            target: global,
            position,
            fallback_depth: tried - 1,
            request_id: request_id.to_owned(),
            key_id: key_id.clone(),
            started,
            ttft,
            input_estimate,
            status,
            in_flight: None,
            accounted: false,
            log: None,
            reservation: None,
        };
        let span = tracing::info_span!(
            "attempt",
            target = %target.config.id,
            // Integers as i64: the OpenTelemetry layer would export a u32 as text.
            n = i64::from(tried),
            status = tracing::field::Empty,
            failure = tracing::field::Empty,
            why = tracing::field::Empty,
            otel.kind = "client",
        );
        let outcome = attempt::run(target, attempt).instrument(span.clone()).await;
        match &outcome {
            Outcome::Retry { cause, why, .. } => {
                span.record("failure", *cause);
                span.record("why", why.as_str());
            }
            Outcome::Complete { parts, .. }
            | Outcome::ClientError { parts, .. }
            | Outcome::Streaming { parts, .. } => {
                span.record("status", i64::from(parts.status.as_u16()));
            }
        }
        drop(span);
        match outcome {
            Outcome::Retry { cause, why, result } => {
                gateway.signals.record(global, result);
                gateway
                    .metrics
                    .fallback(&tenant.name(), &target.name, cause);
                tracing::info!(request_id, target = %target.config.id, why, "attempt failed; trying the next target");
                reasons.push(format!("{}: {why}", target.config.id));
                drop(in_flight);
            }
            Outcome::Complete { parts, body, usage } => {
                let status = parts.status.as_u16();
                let response = http::Response::from_parts(strip(parts), full(body));
                let mut done = completion(status, None);
                done.in_flight = Some(in_flight);
                done.log = plan.log.take();
                done.reservation = reservation.take();
                done.complete(usage);
                return explained(
                    response,
                    label,
                    Some((&target.config.id, &plan.reason)),
                    tried,
                );
            }
            Outcome::ClientError { parts, body } => {
                gateway
                    .signals
                    .record(global, crate::signals::AttemptResult::Neutral);
                gateway
                    .metrics
                    .request(&tenant.name(), &target.name, parts.status.as_u16());
                log_outcome(
                    gateway,
                    plan.log.take(),
                    serde_json::json!({"status": parts.status.as_u16(), "target": target.config.id, "fallback_depth": tried - 1}),
                );
                let response = http::Response::from_parts(strip(parts), full(body));
                return explained(
                    response,
                    label,
                    Some((&target.config.id, &plan.reason)),
                    tried,
                );
            }
            Outcome::Streaming {
                parts,
                held,
                rest,
                scanner,
                ttft,
                total_deadline,
            } => {
                let status = parts.status.as_u16();
                let mut done = completion(status, Some(ttft));
                done.in_flight = Some(in_flight);
                done.log = plan.log.take();
                done.reservation = reservation.take();
                let body = relay::Relay::new(held, rest, scanner, total_deadline, done).boxed();
                let mut parts = strip(parts);
                parts.headers.insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-cache"),
                );
                let response = http::Response::from_parts(parts, body);
                return explained(
                    response,
                    label,
                    Some((&target.config.id, &plan.reason)),
                    tried,
                );
            }
        }
    }
    if plan.targets.is_empty() {
        reasons.push("the policy named no target".to_owned());
    }
    let response = ApiError::no_route(&reasons).into_response();
    log_outcome(
        gateway,
        plan.log,
        serde_json::json!({"status": response.status().as_u16(), "target": null, "attempts": tried, "failures": reasons}),
    );
    gateway
        .metrics
        .request(&tenant.name(), &NO_TARGET, response.status().as_u16());
    plan.deployment.traffic.record(
        response.status().as_u16(),
        micros(dispatched.elapsed()),
        0.0,
    );
    explained(response, label, None, tried)
}

fn micros(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Keeps the upstream's status and content type, drops its framing and connection
/// headers (hyper sets ours) and anything else provider-specific.
fn strip(parts: http::response::Parts) -> http::response::Parts {
    let mut parts = parts;
    let content_type = parts.headers.remove(http::header::CONTENT_TYPE);
    parts.headers.clear();
    if let Some(ct) = content_type {
        parts.headers.insert(http::header::CONTENT_TYPE, ct);
    }
    parts
}

/// Adds the headers that explain the route.
fn explained(
    mut response: http::Response<ResponseBody>,
    policy_label: &str,
    target: Option<(&str, &str)>,
    attempts: u32,
) -> http::Response<ResponseBody> {
    let headers = response.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(policy_label) {
        headers.insert(HEADER_POLICY, v);
    }
    headers.insert(HEADER_ATTEMPTS, http::HeaderValue::from(attempts));
    if let Some((id, reason)) = target {
        if let Ok(v) = http::HeaderValue::from_str(id) {
            headers.insert(HEADER_TARGET, v);
        }
        if let Ok(v) = http::HeaderValue::from_str(reason) {
            headers.insert(HEADER_REASON, v);
        }
    }
    response
}

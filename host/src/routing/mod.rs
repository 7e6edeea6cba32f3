//! The routing pipeline for one request: ask the tenant's policy (or fall back to its
//! safe route), then try the chosen targets in order until one answers.

mod attempt;
mod completion;
mod model_name;
mod relay;
mod scanner;

use crate::gateway::{Gateway, Tenant};
use crate::openai::{ApiError, ChatRequest, EmbeddingsRequest, ResponseBody, full};
use crate::policy::{PolicyBinding, RouteDecision, RouteRequest};
use crate::provider::{Attempt, AttemptKind};
use crate::quota::Reservation;
use crate::signals::Admission;
use attempt::Outcome;
use completion::Completion;
use http_body_util::BodyExt;
use std::sync::Arc;
use std::time::Instant;

/// Response headers explaining the route.
pub const HEADER_TARGET: &str = "x-signalbox-target";
/// The policy that decided, as `name@version`.
pub const HEADER_POLICY: &str = "x-signalbox-policy";
/// How many targets were tried.
pub const HEADER_ATTEMPTS: &str = "x-signalbox-attempts";
/// Why the policy chose this route (or that the safe route was used).
pub const HEADER_REASON: &str = "x-signalbox-route-reason";

/// The targets to try, as positions in the tenant's target list.
struct Plan {
    binding: Arc<PolicyBinding>,
    targets: Vec<u32>,
    reason: String,
}

fn decide(gateway: &Gateway, tenant: &Tenant, request: &RouteRequest) -> Result<Plan, ApiError> {
    let binding = tenant.binding.clone();
    let signals = gateway.signals.snapshot(&tenant.targets);
    match binding.route(request, &signals) {
        Ok(RouteDecision::Route { targets, reason }) => Ok(Plan {
            binding,
            targets,
            reason,
        }),
        Ok(RouteDecision::Reject { status, message }) => Err(ApiError::rejected(status, message)),
        Err(e) => {
            tracing::warn!(tenant = %tenant.id, error = %e, "policy failed; using the safe route");
            Ok(Plan {
                binding,
                targets: tenant.safe_route.clone(),
                reason: format!("safe route (policy {})", e.kind()),
            })
        }
    }
}

/// Serves `POST /v1/chat/completions`, settling `reservation` with the usage of the
/// answer (or giving its tokens back when no upstream answers).
pub async fn chat(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    request: ChatRequest,
    request_id: &str,
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
        request_id,
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
        request_id,
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
    request_id: &str,
    input_estimate: u32,
    reservation: Reservation,
) -> http::Response<ResponseBody> {
    match decide(gateway, tenant, view) {
        Ok(plan) => {
            dispatch(
                gateway,
                tenant,
                plan,
                attempt,
                request_id,
                input_estimate,
                reservation,
            )
            .await
        }
        Err(e) => explained(e.into_response(), tenant, None, 0),
    }
}

/// Tries the plan's targets in order. Falls back only while nothing has reached the
/// client; gives up after `max_attempts` tries with a 503 listing each attempt.
async fn dispatch(
    gateway: &Arc<Gateway>,
    tenant: &Arc<Tenant>,
    plan: Plan,
    attempt: Attempt<'_>,
    request_id: &str,
    input_estimate: u32,
    reservation: Reservation,
) -> http::Response<ResponseBody> {
    // Settled by the completion of the attempt that answers; dropped unsettled (tokens
    // given back) when none does.
    let mut reservation = Some(reservation);
    let mut reasons = Vec::new();
    let mut tried = 0u32;
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
            continue;
        }
        tried += 1;
        let in_flight = gateway.signals.start(global);
        let started = Instant::now();
        let completion = |status: u16, ttft| Completion {
            gateway: gateway.clone(),
            binding: plan.binding.clone(),
            target: global,
            position,
            fallback_depth: tried - 1,
            request_id: request_id.to_owned(),
            started,
            ttft,
            input_estimate,
            status,
            in_flight: None,
            reservation: None,
            accounted: false,
        };
        match attempt::run(target, attempt).await {
            Outcome::Retry { why, result } => {
                gateway.signals.record(global, result);
                tracing::info!(request_id, target = %target.config.id, why, "attempt failed; trying the next target");
                reasons.push(format!("{}: {why}", target.config.id));
                drop(in_flight);
            }
            Outcome::Complete { parts, body, usage } => {
                let status = parts.status.as_u16();
                let response = http::Response::from_parts(strip(parts), full(body));
                let mut done = completion(status, None);
                done.in_flight = Some(in_flight);
                done.reservation = reservation.take();
                done.complete(usage);
                return explained(
                    response,
                    tenant,
                    Some((&target.config.id, &plan.reason)),
                    tried,
                );
            }
            Outcome::ClientError { parts, body } => {
                gateway
                    .signals
                    .record(global, crate::signals::AttemptResult::Neutral);
                let response = http::Response::from_parts(strip(parts), full(body));
                return explained(
                    response,
                    tenant,
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
                    tenant,
                    Some((&target.config.id, &plan.reason)),
                    tried,
                );
            }
        }
    }
    if plan.targets.is_empty() {
        reasons.push("the policy named no target".to_owned());
    }
    explained(
        ApiError::no_route(&reasons).into_response(),
        tenant,
        None,
        tried,
    )
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
    tenant: &Tenant,
    target: Option<(&str, &str)>,
    attempts: u32,
) -> http::Response<ResponseBody> {
    let headers = response.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(&tenant.policy_label) {
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

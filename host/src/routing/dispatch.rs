//! Trying the plan's targets in order. Falls back only while nothing has reached the
//! client, and only while the failing target's retry budget lasts; gives up after
//! `max_attempts` tries with a 503 listing each attempt.

use super::attempt::{self, Outcome};
use super::decide::Verdict;
use super::end::{Answer, Charged, Routed};
use super::headers::{explained, strip, with_escalations};
use super::hold;
use super::relay::Relay;
use super::review::{self, Asked, InHand, Reviewed};
use crate::config::ReviewStreams;
use crate::ledger::Charge;
use crate::openai::{ApiError, ResponseBody, full};
use crate::policy::Ending;
use crate::policy::RouteRequest;
use crate::protocol::Protocol;
use crate::provider::{Attempt, AttemptKind};
use crate::signals::Admission;
use crate::signals::AttemptResult;
use crate::telemetry::gen_ai;
use crate::usage::Usage;
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::time::Instant;
use tracing::Instrument;

/// Answers the request as its plan says, ending it exactly once whichever way.
pub(super) async fn dispatch(
    mut routed: Routed,
    attempt: Attempt<'_>,
    request: &RouteRequest,
) -> http::Response<ResponseBody> {
    let (label, verdict) = match routed.plan.as_mut() {
        Some(plan) => (plan.deployment.label.clone(), &mut plan.verdict),
        // `route` decides before it dispatches; this is never reached.
        None => {
            let response = ApiError::internal("The request reached dispatch undecided.")
                .into_response_in(routed.protocol);
            routed.end(Ending::Failed, response.status().as_u16(), None);
            return response;
        }
    };
    // The plan's targets and reason move out (the end needs neither), rather than
    // being copied per request.
    let (targets, reason) = match verdict {
        Verdict::Route {
            targets, reason, ..
        } => (std::mem::take(targets), std::mem::take(reason)),
        Verdict::Reject(error) => {
            let response = error.clone().into_response_in(routed.protocol);
            routed.end(Ending::Rejected, response.status().as_u16(), None);
            return explained(response, &label, None, 0);
        }
    };
    let gateway = routed.gateway.clone();
    let tenant = routed.tenant.clone();
    // A policy that reviews answers sees each JSON chat answer before the client does,
    // and streamed ones as far as the tenant's `review_streams` holds them.
    let hold_streams = tenant.review_streams;
    let asked = routed
        .plan
        .as_ref()
        .filter(|plan| {
            plan.by_policy()
                && plan.deployment.binding.policy().reviews_answers()
                && attempt.kind == AttemptKind::Chat
                // Reviews read chat answers (contract 0.4.0).
                && attempt.protocol == Protocol::Chat
                && (!attempt.stream || hold_streams != ReviewStreams::Off)
        })
        .map(|_| Asked::read(attempt.body, request));
    let planned = !targets.is_empty();
    let mut queue: VecDeque<u32> = targets.into();
    let mut asked_of: Vec<u32> = Vec::new();
    let mut tried = 0u32;
    let mut strict_refusals = 0u32;
    while let Some(position) = queue.pop_front() {
        if tried as usize >= gateway.config.server.max_attempts {
            routed.failures.push("attempt limit reached".to_owned());
            break;
        }
        let Some(&global) = tenant.targets.get(position as usize) else {
            continue;
        };
        let Some(target) = gateway.targets.get(global) else {
            continue;
        };
        if let Admission::Denied(why) = gateway.signals.admit(global) {
            routed
                .failures
                .push(format!("{}: skipped, {why}", target.config.id));
            gateway
                .metrics
                .fallback(&tenant.name(), &target.name, "circuit_open");
            continue;
        }
        tried += 1;
        if asked.is_some() {
            asked_of.push(position);
        }
        if tried == 1 {
            gateway.signals.first_attempt(global);
        }
        let in_flight = gateway.signals.start(global);
        let started = Instant::now();
        let span = tracing::info_span!(
            "attempt",
            target = %target.config.id,
            // Integers as i64: the OpenTelemetry layer would export a u32 as text.
            n = i64::from(tried),
            status = tracing::field::Empty,
            failure = tracing::field::Empty,
            why = tracing::field::Empty,
            otel.kind = "client",
            // The GenAI conventions of a client call: the model asked of this target
            // is its configured one, whatever the client named.
            gen_ai.operation.name = match attempt.kind {
                AttemptKind::Chat => gen_ai::OPERATION_CHAT,
                AttemptKind::Embeddings => gen_ai::OPERATION_EMBEDDINGS,
            },
            gen_ai.provider.name = gen_ai::provider_name(target.upstream.provider()),
            gen_ai.request.model = target.config.model.as_str(),
            gen_ai.response.model = tracing::field::Empty,
            gen_ai.usage.input_tokens = tracing::field::Empty,
            gen_ai.usage.output_tokens = tracing::field::Empty,
            error.type = tracing::field::Empty,
        );
        // A reviewing policy reads log-probabilities from targets that return them.
        let attempt = Attempt {
            logprobs: asked.is_some() && target.config.logprobs,
            ..attempt
        };
        let mut outcome = attempt::run(target, attempt).instrument(span.clone()).await;
        if asked.is_some() && matches!(outcome, Outcome::Streaming { .. }) {
            outcome = hold::hold(outcome, hold_streams, target.config.stream_idle_timeout())
                .instrument(span.clone())
                .await;
        }
        match &outcome {
            Outcome::Retry { cause, why, .. } => {
                if *cause == attempt::DEGRADED {
                    strict_refusals += 1;
                }
                span.record("failure", *cause);
                span.record("why", why.as_str());
                span.record("error.type", *cause);
            }
            Outcome::ClientError { parts, .. } => {
                span.record("status", i64::from(parts.status.as_u16()));
                span.record("error.type", parts.status.as_str());
            }
            Outcome::Complete { parts, body, usage } => {
                routed.degraded = degraded(parts);
                span.record("status", i64::from(parts.status.as_u16()));
                span.record("gen_ai.response.model", target.config.model.as_str());
                if let Some(usage) = usage {
                    span.record("gen_ai.usage.input_tokens", i64::from(usage.input));
                    if attempt.kind == AttemptKind::Chat {
                        span.record("gen_ai.usage.output_tokens", i64::from(usage.output));
                    }
                }
                if attempt.kind == AttemptKind::Chat {
                    let reasons = gen_ai::finish_reasons_of_json(body, attempt.protocol);
                    gen_ai::record_finish_reasons(&span, &reasons);
                    routed.finish_reasons(&reasons);
                }
            }
            Outcome::Streaming { parts, .. } => {
                routed.degraded = degraded(parts);
                span.record("status", i64::from(parts.status.as_u16()));
                span.record("gen_ai.response.model", target.config.model.as_str());
            }
        }
        drop(span);
        let answer = |ttft| Answer {
            target: global,
            position,
            started,
            ttft,
            _in_flight: in_flight,
        };
        let explain =
            |response| explained(response, &label, Some((&target.config.id, &reason)), tried);
        match outcome {
            Outcome::Retry { cause, why, result } => {
                gateway.signals.record(global, result);
                gateway
                    .metrics
                    .fallback(&tenant.name(), &target.name, cause);
                tracing::info!(request_id = %routed.request_id, target = %target.config.id, why, "attempt failed; trying the next target");
                routed.failed.push(position);
                routed.failures.push(format!("{}: {why}", target.config.id));
                let more =
                    !queue.is_empty() && (tried as usize) < gateway.config.server.max_attempts;
                if more && !gateway.signals.may_retry_after(global) {
                    tracing::warn!(request_id = %routed.request_id, target = %target.config.id, "retry budget spent; not trying further targets");
                    gateway.metrics.rejection(&tenant.name(), "retry_budget");
                    routed.failures.push(format!(
                        "{}: retry budget spent (server.retry_budget_ratio); no further target tried",
                        target.config.id
                    ));
                    break;
                }
            }
            Outcome::Complete { parts, body, usage } => {
                let status = parts.status.as_u16();
                if let Some(asked) = &asked
                    && parts.status.is_success()
                {
                    let in_hand = InHand {
                        target,
                        position,
                        body: &body,
                        usage,
                        streamed: None,
                    };
                    let cascade = Cascade {
                        queue: &mut queue,
                        asked_of: &asked_of,
                        tried,
                        global,
                        started,
                    };
                    if escalated(&mut routed, asked, &in_hand, cascade).await {
                        continue;
                    }
                }
                let escalations = routed.escalations();
                routed.answer = Some(answer(None));
                routed.end(Ending::Completed, status, usage);
                return with_escalations(
                    explain(http::Response::from_parts(strip(parts), full(body))),
                    &escalations,
                );
            }
            Outcome::ClientError { parts, body } => {
                let status = parts.status.as_u16();
                routed.answer = Some(answer(None));
                routed.end(Ending::Refused, status, None);
                return explain(http::Response::from_parts(strip(parts), full(body)));
            }
            Outcome::Streaming {
                parts,
                held,
                stream,
                ttft,
                total_deadline,
            } => {
                let status = parts.status.as_u16();
                if let Some(asked) = &asked {
                    let scanner = &stream.scanner;
                    let in_hand = InHand {
                        target,
                        position,
                        body: &held,
                        usage: scanner.usage.or(Some(Usage::estimated(
                            routed.input_estimate,
                            scanner.chunks,
                        ))),
                        streamed: Some(scanner.done),
                    };
                    let cascade = Cascade {
                        queue: &mut queue,
                        asked_of: &asked_of,
                        tried,
                        global,
                        started,
                    };
                    // An escalated stream is dropped here, which closes the upstream
                    // connection: what it would still have written is not paid for.
                    if escalated(&mut routed, asked, &in_hand, cascade).await {
                        continue;
                    }
                }
                let escalations = routed.escalations();
                routed.answer = Some(answer(Some(ttft)));
                let body = Relay::new(
                    held,
                    *stream,
                    total_deadline,
                    target.config.stream_idle_timeout(),
                    status,
                    routed,
                )
                .boxed();
                let mut parts = strip(parts);
                parts.headers.insert(
                    http::header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-cache"),
                );
                return with_escalations(
                    explain(http::Response::from_parts(parts, body)),
                    &escalations,
                );
            }
        }
    }
    if !planned {
        routed
            .failures
            .push("the policy named no target".to_owned());
    }
    let escalations = routed.escalations();
    // Every target tried would have dropped part of a strict request: that is the
    // request's answer, not an outage.
    let error = if strict_refusals > 0 && strict_refusals == tried {
        ApiError::invalid_request(
            "protocol_degraded",
            format!(
                "No target can serve this request without dropping part of it, and {} asks for none to be dropped: {}",
                crate::protocol::HEADER_STRICT,
                routed.failures.join("; ")
            ),
        )
    } else {
        ApiError::no_route(&routed.failures)
    };
    let response = error.into_response_in(routed.protocol);
    routed.end(Ending::Failed, response.status().as_u16(), None);
    with_escalations(explained(response, &label, None, tried), &escalations)
}

/// What the answering attempt's protocol dropped of the request, as its adapter said.
fn degraded(parts: &http::response::Parts) -> Option<String> {
    let value = parts.headers.get(crate::provider::HEADER_DEGRADED)?;
    value.to_str().ok().map(str::to_owned)
}

/// Where a cascade stands when an answer is in hand.
struct Cascade<'q> {
    /// The plan's targets still to try.
    queue: &'q mut VecDeque<u32>,
    /// The targets asked so far (positions).
    asked_of: &'q [u32],
    /// Attempts made.
    tried: u32,
    /// The answering target's global index.
    global: usize,
    /// When its attempt started.
    started: Instant,
}

/// Shows the answer in hand to the policy; `true` when it was escalated: paid for,
/// recorded, and the queue set for the next target (the caller moves on to it).
/// `false`: it is to be sent (accepted, or an escalation that cannot be honoured).
async fn escalated(
    routed: &mut Routed,
    asked: &Asked,
    in_hand: &InHand<'_>,
    cascade: Cascade<'_>,
) -> bool {
    let Reviewed::Escalate {
        reason,
        target: named,
    } = review::review(routed, asked, in_hand, cascade.queue).await
    else {
        return false;
    };
    let target = in_hand.target;
    let tokens = in_hand
        .usage
        .unwrap_or(Usage::estimated(routed.input_estimate, 0));
    let cost = target.cost_usd(&tokens);
    let next = match escalation(
        routed,
        cascade.queue,
        cascade.asked_of,
        named,
        cascade.tried,
        cost,
    ) {
        Ok(next) => next,
        Err(why) => {
            routed.note_review(
                "sent after all",
                format!("escalation `{reason}` not honoured: {why}"),
            );
            return false;
        }
    };
    let gateway = routed.gateway.clone();
    // The refused answer is paid for and never sent; the target itself did its job.
    gateway.signals.record(
        cascade.global,
        AttemptResult::Success {
            latency: cascade.started.elapsed(),
            ttft: None,
        },
    );
    routed.charge(Charged {
        target: cascade.global,
        charge: Charge::Escalated,
        reason: reason.clone(),
        tokens,
        latency: cascade.started.elapsed(),
    });
    gateway
        .metrics
        .fallback(&routed.tenant.name(), &target.name, "escalated");
    tracing::info!(request_id = %routed.request_id, target = %target.config.id, reason, "answer escalated by the policy's review");
    routed.escalated.push(in_hand.position);
    routed
        .failures
        .push(format!("{}: escalated ({reason})", target.config.id));
    if let Some(next) = next {
        cascade.queue.retain(|&p| p != next);
        cascade.queue.push_front(next);
    }
    true
}

/// Where an escalation goes: `Ok(Some(target))` for a named target (moved to the
/// front of the queue), `Ok(None)` for the next of the plan; `Err(why)` when it cannot
/// be honoured (the answer in hand is sent after all).
fn escalation(
    routed: &Routed,
    queue: &VecDeque<u32>,
    asked_of: &[u32],
    named: Option<u32>,
    tried: u32,
    cost: f64,
) -> Result<Option<u32>, String> {
    if tried as usize >= routed.gateway.config.server.max_attempts {
        return Err("the attempt limit (server.max_attempts) is reached".into());
    }
    if let Some(cap) = routed.tenant.max_request_usd
        && routed.spent_usd() + cost >= cap
    {
        return Err(format!(
            "the request has spent its cap of {cap} USD (max_request_usd)"
        ));
    }
    match named {
        Some(t) if asked_of.contains(&t) => Err(format!("target {t} has answered already")),
        Some(t) => Ok(Some(t)),
        None if queue.is_empty() => Err("no target of the plan is left".into()),
        None => Ok(None),
    }
}

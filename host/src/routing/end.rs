//! Where every request ends, whichever way it ends: refused by a quota, rejected by
//! the policy, answered, refused by the upstream, failed on every target, broken
//! mid-stream, or abandoned by the client. [`Routed`] carries what is known about the request from
//! its decision on; [`Routed::end`] builds the one description of its end and feeds
//! every recorder from it — target signals, quota settlement, metrics, the usage
//! ledger, the decision log, the feedback window, per-version traffic, the shadow's
//! cost, and the policy's `on-outcome`. A new recorder is one more line in `record`.
//!
//! Dropping a `Routed` that has not ended (the client went away while an upstream
//! was still being asked, or mid-stream) ends it as abandoned, so no request escapes.

use super::decide::Plan;
use crate::decision_log::{ChargedEntry, OutcomeEntry};
use crate::deploy::micro_usd;
use crate::feedback::Decided;
use crate::gateway::{Gateway, Target, Tenant};
use crate::ledger::{Charge, UsageRow};
use crate::policy::{Ending, Outcome};
use crate::protocol::Protocol;
use crate::provider::AttemptKind;
use crate::quota::Reservation;
use crate::signals::{AttemptResult, InFlight};
use crate::telemetry::gen_ai;
use crate::usage::Usage;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Status reported when the client went away mid-response (nginx's convention;
/// never sent to anyone).
pub(crate) const CLIENT_CLOSED: u16 = 499;

/// The `target` label of requests no target answered.
static NO_TARGET: std::sync::LazyLock<crate::metrics::Name> =
    std::sync::LazyLock::new(|| crate::metrics::Name::from("none"));

/// The attempt whose answer is reaching (or reached) the client.
pub(crate) struct Answer {
    /// Global target index.
    pub target: usize,
    /// Index in the policy's target list.
    pub position: u32,
    /// When the attempt started: the target's own latency counts from here.
    pub started: Instant,
    /// Time to first token, for streams.
    pub ttft: Option<Duration>,
    /// The attempt's slot in the target's in-flight count, held until the end.
    pub _in_flight: InFlight,
}

/// An attempt the request pays for besides its answer: an answer the policy's review
/// refused, or a verifier call it asked for.
pub(crate) struct Charged {
    /// Global target index.
    pub target: usize,
    /// Which kind of extra attempt.
    pub charge: Charge,
    /// Why (the policy's reason for an escalation).
    pub reason: String,
    /// The tokens it used.
    pub tokens: Usage,
    /// How long it took.
    pub latency: Duration,
}

/// A charged attempt with its cost.
struct Paid {
    attempt: Charged,
    cost: f64,
}

/// A request from its admission to its end.
pub(crate) struct Routed {
    pub gateway: Arc<Gateway>,
    pub tenant: Arc<Tenant>,
    /// The decision, once made (`None` when a quota refused the request first).
    pub plan: Option<Plan>,
    /// When the gateway took the request on: its latency counts from here.
    started: Instant,
    pub request_id: String,
    /// The caller's API key id (for the ledger; never the key).
    pub key_id: Arc<str>,
    /// The host's input-token estimate, used when the upstream reports no usage.
    pub input_estimate: u32,
    /// Settled with the real usage and cost when a target answered; dropped (its
    /// tokens given back) otherwise.
    pub reservation: Option<Reservation>,
    /// Positions of the targets whose attempt failed, in order.
    pub failed: Vec<u32>,
    /// Why each target was skipped or failed, for the 503 message and the log.
    pub failures: Vec<String>,
    /// The attempt answering now, once one is.
    pub answer: Option<Answer>,
    /// Positions of the targets whose answers the policy's review refused, in order.
    pub escalated: Vec<u32>,
    /// Extra attempts paid for (escalated answers, verifier calls).
    paid: Vec<Paid>,
    /// What reviews decided that the plan did not show (an escalation not honoured, a
    /// review that failed), for the decision log.
    review_notes: Vec<String>,
    /// The request's slot among its tenant's requests in flight (when the tenant has
    /// a limit), held until the request is dropped, streams included.
    pub tenant_slot: Option<tokio::sync::OwnedSemaphorePermit>,
    /// Chat or embeddings: which usage the GenAI conventions count.
    kind: AttemptKind,
    /// The protocol the client spoke: its errors take that protocol's shape.
    pub protocol: Protocol,
    /// What the answering target's protocol could not carry of the request (the
    /// `x-signalbox-degraded` header), for the decision log.
    pub degraded: Option<String>,
    /// The request's span, kept so that its end (which may come from a stream's
    /// body, after the handler returned) records the GenAI usage on it; holding it
    /// also makes the exported span last as long as the response.
    pub span: tracing::Span,
    ended: bool,
}

impl Routed {
    pub fn new(
        gateway: &Arc<Gateway>,
        tenant: &Arc<Tenant>,
        (request_id, key_id): (&str, &Arc<str>),
        input_estimate: u32,
        kind: AttemptKind,
    ) -> Self {
        Routed {
            gateway: gateway.clone(),
            tenant: tenant.clone(),
            plan: None,
            started: Instant::now(),
            request_id: request_id.to_owned(),
            key_id: key_id.clone(),
            input_estimate,
            reservation: None,
            failed: Vec::new(),
            failures: Vec::new(),
            answer: None,
            escalated: Vec::new(),
            paid: Vec::new(),
            review_notes: Vec::new(),
            tenant_slot: None,
            kind,
            protocol: Protocol::Chat,
            degraded: None,
            // Built inside the request's span, which is current here.
            span: tracing::Span::current(),
            ended: false,
        }
    }

    /// The answering target's configuration, if one is answering.
    pub fn answering_target(&self) -> Option<&Target> {
        self.answer
            .as_ref()
            .and_then(|a| self.gateway.targets.get(a.target))
    }

    /// Pays for an extra attempt: its cost reaches the ledger (a row of its own), the
    /// metrics and, when the request ends, the quota.
    pub fn charge(&mut self, attempt: Charged) {
        let Some(target) = self.gateway.targets.get(attempt.target) else {
            return;
        };
        let cost = target.cost_usd(&attempt.tokens);
        self.gateway.metrics.served(crate::metrics::Served {
            tenant: &self.tenant.name(),
            target: &target.name,
            latency: attempt.latency,
            ttft: None,
            tokens: &attempt.tokens,
            cost_usd: cost,
        });
        self.paid.push(Paid { attempt, cost });
    }

    /// What the extra attempts cost so far.
    pub fn spent_usd(&self) -> f64 {
        self.paid.iter().map(|p| p.cost).sum()
    }

    /// Records what a review decided that the plan does not show.
    pub fn note_review(&mut self, verdict: &str, why: String) {
        self.review_notes.push(format!("{verdict}: {why}"));
    }

    /// The escalations so far, `target: reason` each, for the response header.
    pub fn escalations(&self) -> Vec<String> {
        self.paid
            .iter()
            .filter(|p| p.attempt.charge == Charge::Escalated)
            .filter_map(|p| {
                let target = self.gateway.targets.get(p.attempt.target)?;
                Some(format!("{}: {}", target.config.id, p.attempt.reason))
            })
            .collect()
    }

    /// Ends the request: `usage` is what the upstream reported (input, output tokens);
    /// `None` for the estimate. Only the first call counts.
    pub fn end(&mut self, ending: Ending, status: u16, usage: Option<Usage>) {
        if std::mem::replace(&mut self.ended, true) {
            return;
        }
        let answer = self.answer.take();
        let end = End {
            ending,
            status,
            latency: self.started.elapsed(),
            tokens: match (&answer, usage) {
                // An upstream's refusal is not billed: its quota reservation is given
                // back (`settle`), so the ledger, the decision log and the policy hear
                // of no tokens and no cost either, and a restart, which restores the
                // budgets from the ledger, does not charge it.
                _ if ending == Ending::Refused => Usage::default(),
                (_, Some(usage)) => usage,
                (Some(_), None) => Usage::estimated(self.input_estimate, 0),
                (None, None) => Usage::default(),
            },
            answer,
        };
        self.record(end);
    }

    /// Feeds every recorder from one description of the end.
    fn record(&mut self, end: End) {
        let gateway = self.gateway.clone();
        let target = end
            .answer
            .as_ref()
            .and_then(|a| gateway.targets.get(a.target));
        let cost = target.map_or(0.0, |t| t.cost_usd(&end.tokens));

        if let Some(answer) = &end.answer {
            gateway
                .signals
                .record(answer.target, end.target_result(answer));
        }
        self.log_line(&end, target, cost);
        self.record_on_span(&end, target);
        self.settle(&end, cost);
        self.metrics(&end, target, cost);
        if let Some(ledger) = &gateway.ledger {
            ledger.record(self.usage_row(&end, target, cost));
            for paid in &self.paid {
                ledger.record(self.paid_row(paid));
            }
        }
        // The rest concerns the decision; a request a quota refused had none.
        let fallback_depth = self.fallback_depth();
        let Some(plan) = self.plan.as_mut() else {
            return;
        };
        if let Some(mut record) = plan.log.take()
            && let Some(log) = &gateway.decision_log
        {
            let mut entry = outcome_entry(&end, target, cost, fallback_depth, &self.failures);
            entry.charged = self
                .paid
                .iter()
                .map(|p| ChargedEntry {
                    target: gateway
                        .targets
                        .get(p.attempt.target)
                        .map(|t| t.config.id.clone())
                        .unwrap_or_default(),
                    charge: p.attempt.charge.as_str(),
                    reason: p.attempt.reason.clone(),
                    input_tokens: p.attempt.tokens.input,
                    output_tokens: p.attempt.tokens.output,
                    cost_usd: p.cost,
                })
                .collect();
            entry.reviews = std::mem::take(&mut self.review_notes);
            entry.protocol = (self.protocol != Protocol::Chat).then(|| self.protocol.name());
            entry.degraded = self.degraded.take();
            record.outcome = Some(entry);
            log.write(record);
        }
        if let Some(answer) = &end.answer {
            gateway.decisions.record(
                &self.request_id,
                Decided {
                    tenant: self.tenant.id.clone(),
                    deployment: Arc::downgrade(&plan.deployment),
                    target: answer.position,
                },
            );
        }
        plan.deployment.traffic.record(
            end.status,
            u64::try_from(end.latency.as_micros()).unwrap_or(u64::MAX),
            cost,
        );
        self.shadow_cost(&end, cost);
        self.report_outcome(&end, cost);
    }

    fn log_line(&self, end: &End, target: Option<&Target>, cost: f64) {
        tracing::info!(
            request_id = %self.request_id,
            target = target.map_or("-", |t| t.config.id.as_str()),
            ending = ?end.ending,
            status = end.status,
            input_tokens = end.tokens.input,
            output_tokens = end.tokens.output,
            cost_usd = cost,
            latency_ms = end.latency.as_millis() as u64,
            fallback_depth = self.failed.len(),
            "request ended"
        );
    }

    /// The GenAI conventions' response attributes on the request's span: who answered,
    /// with which model, and the tokens counted. A request that failed after its
    /// head was sent gets its `error.type` here (the handler saw a 200).
    fn record_on_span(&self, end: &End, target: Option<&Target>) {
        if let Some(target) = target {
            self.span.record(
                "gen_ai.provider.name",
                gen_ai::provider_name(target.upstream.provider()),
            );
            if end.ending != Ending::Refused {
                self.span
                    .record("gen_ai.response.model", target.config.model.as_str());
                self.span
                    .record("gen_ai.usage.input_tokens", i64::from(end.tokens.input));
                if self.kind == AttemptKind::Chat {
                    self.span
                        .record("gen_ai.usage.output_tokens", i64::from(end.tokens.output));
                }
            }
        }
        match end.ending {
            Ending::Interrupted => {
                self.span.record("error.type", "interrupted");
            }
            Ending::Abandoned => {
                self.span.record("error.type", "client_closed");
            }
            Ending::Completed | Ending::Refused | Ending::Rejected | Ending::Failed => {}
        }
    }

    /// Records the answer's finish reasons on the request's span.
    pub fn finish_reasons(&self, reasons: &[String]) {
        gen_ai::record_finish_reasons(&self.span, reasons);
    }

    fn settle(&mut self, end: &End, cost: f64) {
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        // An answer that reached the client costs quota, and so does every extra
        // attempt paid for (escalated answers, verifiers) whatever the end; a refusal
        // or a failure with nothing paid gives the reserved tokens back (by dropping
        // the reservation).
        let (mut tokens, mut usd) = (0u64, 0.0);
        if end.answer.is_some() && end.ending != Ending::Refused {
            tokens += u64::from(end.tokens.input) + u64::from(end.tokens.output);
            usd += cost;
        }
        for paid in &self.paid {
            tokens += u64::from(paid.attempt.tokens.input) + u64::from(paid.attempt.tokens.output);
            usd += paid.cost;
        }
        if tokens > 0 || usd > 0.0 || (end.answer.is_some() && end.ending != Ending::Refused) {
            reservation.settle(tokens, usd);
        }
    }

    fn metrics(&self, end: &End, target: Option<&Target>, cost: f64) {
        let metrics = &self.gateway.metrics;
        let tenant = self.tenant.name();
        metrics.request(&tenant, target.map_or(&*NO_TARGET, |t| &t.name), end.status);
        if let (Some(target), Some(answer)) = (target, &end.answer)
            && end.ending != Ending::Refused
        {
            metrics.served(crate::metrics::Served {
                tenant: &tenant,
                target: &target.name,
                latency: answer.started.elapsed(),
                ttft: answer.ttft,
                tokens: &end.tokens,
                cost_usd: cost,
            });
        }
    }

    fn usage_row(&self, end: &End, target: Option<&Target>, cost: f64) -> UsageRow {
        self.row(
            target,
            &end.tokens,
            cost,
            end.latency,
            end.status,
            Charge::Answer,
        )
    }

    /// The ledger row of an extra attempt: its own target, tokens and cost, under the
    /// request's id.
    fn paid_row(&self, paid: &Paid) -> UsageRow {
        let target = self.gateway.targets.get(paid.attempt.target);
        let attempt = &paid.attempt;
        self.row(
            target,
            &attempt.tokens,
            paid.cost,
            attempt.latency,
            200,
            attempt.charge,
        )
    }

    /// A ledger row of this request.
    fn row(
        &self,
        target: Option<&Target>,
        tokens: &Usage,
        cost_usd: f64,
        latency: Duration,
        status: u16,
        charge: Charge,
    ) -> UsageRow {
        UsageRow {
            ts_ms: crate::ledger::now_ms(),
            tenant: self.tenant.id.to_string(),
            key_id: self.key_id.to_string(),
            target: target.map(|t| t.config.id.clone()).unwrap_or_default(),
            model: target.map(|t| t.config.model.clone()).unwrap_or_default(),
            input_tokens: tokens.input,
            output_tokens: tokens.output,
            cache_read_tokens: tokens.cache_read,
            cache_write_tokens: tokens.cache_write,
            reasoning_tokens: tokens.reasoning,
            estimated: tokens.estimated,
            cost_usd,
            latency_ms: u32::try_from(latency.as_millis()).unwrap_or(u32::MAX),
            status,
            policy: self
                .plan
                .as_ref()
                .map(|p| p.deployment.label.clone())
                .unwrap_or_default(),
            fallback_depth: self.fallback_depth(),
            request_id: self.request_id.clone(),
            charge,
        }
    }

    /// With a shadow running, the same tokens priced on the shadow's first choice.
    fn shadow_cost(&self, end: &End, cost: f64) {
        use std::sync::atomic::Ordering::Relaxed;
        if end.answer.is_none() {
            return;
        }
        let Some(plan) = &self.plan else {
            return;
        };
        let Some(choice) = plan.shadow_choice else {
            return;
        };
        if let Some(candidate) = plan.routing.shadow()
            && let Some(target) = self.gateway.targets.get(choice)
        {
            let shadow_cost = target.cost_usd(&end.tokens);
            let stats = &candidate.shadow;
            stats
                .active_cost_micro_usd
                .fetch_add(micro_usd(cost), Relaxed);
            stats
                .shadow_cost_micro_usd
                .fetch_add(micro_usd(shadow_cost), Relaxed);
        }
    }

    /// `on-outcome`, off the request path, for a policy that decided and wants it.
    fn report_outcome(&mut self, end: &End, cost: f64) {
        let Some(plan) = &self.plan else {
            return;
        };
        let binding = &plan.deployment.binding;
        // Policies that learn nothing from outcomes say so (`OBSERVES_OUTCOMES` in the
        // SDK): no call, no task.
        if !plan.by_policy() || !binding.policy().observes_outcomes() {
            return;
        }
        let binding = binding.clone();
        let outcome = Outcome {
            request_id: std::mem::take(&mut self.request_id),
            ending: end.ending,
            target: end.answer.as_ref().map(|a| a.position),
            failed_targets: std::mem::take(&mut self.failed),
            status: end.status,
            latency_ms: u32::try_from(end.latency.as_millis()).unwrap_or(u32::MAX),
            ttft_ms: end
                .answer
                .as_ref()
                .and_then(|a| a.ttft)
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
            input_tokens: end.tokens.input,
            output_tokens: end.tokens.output,
            cost_usd: cost,
            escalated_targets: std::mem::take(&mut self.escalated),
        };
        // A policy call is microseconds, but it is not the client's to wait for. (No
        // runtime means the process is shutting down: the outcome is dropped.)
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = binding.on_outcome(&outcome) {
                    tracing::debug!(error = %e, "policy on-outcome failed");
                }
            });
        }
    }

    fn fallback_depth(&self) -> u32 {
        u32::try_from(self.failed.len()).unwrap_or(u32::MAX)
    }
}

fn outcome_entry(
    end: &End,
    target: Option<&Target>,
    cost: f64,
    fallback_depth: u32,
    failures: &[String],
) -> OutcomeEntry {
    OutcomeEntry {
        ending: end.ending,
        status: end.status,
        target: target.map(|t| t.config.id.clone()),
        fallback_depth,
        failures: failures.to_vec(),
        latency_ms: end.latency.as_millis() as u64,
        ttft_ms: end
            .answer
            .as_ref()
            .and_then(|a| a.ttft)
            .map(|d| d.as_millis() as u64),
        input_tokens: end.tokens.input,
        output_tokens: end.tokens.output,
        cache_read_tokens: end.tokens.cache_read,
        cache_write_tokens: end.tokens.cache_write,
        reasoning_tokens: end.tokens.reasoning,
        usage_estimated: end.tokens.estimated,
        cost_usd: cost,
        charged: Vec::new(),
        reviews: Vec::new(),
        protocol: None,
        degraded: None,
    }
}

impl Drop for Routed {
    fn drop(&mut self) {
        // Dropped before its end: the client went away.
        self.end(Ending::Abandoned, CLIENT_CLOSED, None);
    }
}

/// How a request ended: built once, read by every recorder.
struct End {
    ending: Ending,
    /// The status returned to the client.
    status: u16,
    /// From the decision to the end.
    latency: Duration,
    /// The tokens counted (the upstream's, or the estimate).
    tokens: Usage,
    answer: Option<Answer>,
}

impl End {
    /// What the end says about the answering target's health.
    fn target_result(&self, answer: &Answer) -> AttemptResult {
        match self.ending {
            Ending::Completed => AttemptResult::Success {
                latency: answer.started.elapsed(),
                ttft: answer.ttft,
            },
            Ending::Interrupted => AttemptResult::Failure,
            // The client's doing, not the target's.
            Ending::Refused | Ending::Abandoned | Ending::Rejected | Ending::Failed => {
                AttemptResult::Neutral
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(ending: Ending) -> (End, Answer) {
        let board = Arc::new(crate::signals::SignalBoard::new(
            &[0],
            crate::signals::BreakerConfig::default(),
            crate::signals::RetryBudgetConfig::default(),
        ));
        let answer = || Answer {
            target: 0,
            position: 0,
            started: Instant::now(),
            ttft: Some(Duration::from_millis(5)),
            _in_flight: board.start(0),
        };
        let end = End {
            ending,
            status: 200,
            latency: Duration::ZERO,
            tokens: Usage::default(),
            answer: Some(answer()),
        };
        (end, answer())
    }

    #[test]
    fn only_the_target_s_own_failures_count_against_it() {
        let (completed, answer) = end(Ending::Completed);
        assert!(matches!(
            completed.target_result(&answer),
            AttemptResult::Success { ttft: Some(_), .. }
        ));
        let (interrupted, answer) = end(Ending::Interrupted);
        assert!(matches!(
            interrupted.target_result(&answer),
            AttemptResult::Failure
        ));
        for ending in [Ending::Refused, Ending::Abandoned] {
            let (e, answer) = end(ending);
            assert!(matches!(e.target_result(&answer), AttemptResult::Neutral));
        }
    }
}

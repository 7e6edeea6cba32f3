//! Accounting for the attempt that answered: the target's signals, the tenant's and
//! key's quotas (tokens and spend, from the usage the upstream reported), metrics, the
//! usage ledger, the decision log, and the outcome reported to the policy that made
//! the decision (off the request path).

use super::scanner::StreamScanner;
use crate::deploy::{Deployment, Routing, micro_usd};
use crate::feedback::Decided;
use crate::gateway::Gateway;
use crate::ledger::UsageRow;
use crate::policy::Outcome;
use crate::quota::Reservation;
use crate::signals::{AttemptResult, InFlight};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Status reported to the policy when the client went away mid-response (nginx's
/// convention; never sent to anyone).
const CLIENT_CLOSED: u16 = 499;

pub(crate) struct Completion {
    pub gateway: Arc<Gateway>,
    /// The deployment that decided: outcomes go back to it even if a new one is
    /// active by now.
    pub deployment: Arc<Deployment>,
    /// A shadow that decided the same request, and its first choice (global index):
    /// the same tokens are priced on that target to estimate the cost difference.
    pub shadow: Option<(Arc<Routing>, usize)>,
    /// Global target index.
    pub target: usize,
    /// Index in the policy's target list.
    pub position: u32,
    pub fallback_depth: u32,
    pub request_id: String,
    /// The caller's API key id (for the ledger; never the key).
    pub key_id: Arc<str>,
    pub started: Instant,
    pub ttft: Option<Duration>,
    pub input_estimate: u32,
    pub status: u16,
    pub in_flight: Option<InFlight>,
    pub accounted: bool,
    /// The decision-log record, completed with the outcome here.
    pub log: Option<serde_json::Value>,
    /// The request's quota reservation, settled here with the real usage and cost.
    pub reservation: Option<Reservation>,
}

impl Completion {
    /// A non-streamed answer was delivered.
    pub fn complete(mut self, usage: Option<(u32, u32)>) {
        self.finish(
            AttemptResult::Success {
                latency: self.started.elapsed(),
                ttft: None,
            },
            self.status,
            usage,
        );
    }

    /// A stream ended properly.
    pub fn succeeded(mut self, scanner: &StreamScanner) {
        let usage = scanner
            .usage
            .or(Some((self.input_estimate, scanner.chunks)));
        self.finish(
            AttemptResult::Success {
                latency: self.started.elapsed(),
                ttft: self.ttft,
            },
            self.status,
            usage,
        );
    }

    /// A stream broke after content had reached the client.
    pub fn failed_midstream(mut self, why: &str) {
        tracing::warn!(request_id = %self.request_id, target = %self.target_id(), why, "upstream failed mid-stream");
        self.finish(AttemptResult::Failure, 502, None);
    }

    fn target_id(&self) -> &str {
        self.gateway
            .targets
            .get(self.target)
            .map_or("?", |t| t.config.id.as_str())
    }

    fn finish(&mut self, result: AttemptResult, status: u16, usage: Option<(u32, u32)>) {
        if std::mem::replace(&mut self.accounted, true) {
            return;
        }
        self.gateway.signals.record(self.target, result);
        self.in_flight.take();
        let (input, output) = usage.unwrap_or((self.input_estimate, 0));
        let cost = self.gateway.targets.get(self.target).map_or(0.0, |t| {
            (f64::from(input) * t.config.input_price + f64::from(output) * t.config.output_price)
                / 1e6
        });
        tracing::info!(
            request_id = %self.request_id,
            target = %self.target_id(),
            status,
            input_tokens = input,
            output_tokens = output,
            cost_usd = cost,
            latency_ms = self.started.elapsed().as_millis() as u64,
            fallback_depth = self.fallback_depth,
            "request completed"
        );
        if let (Some(ledger), Some(target)) =
            (&self.gateway.ledger, self.gateway.targets.get(self.target))
        {
            ledger.record(UsageRow {
                ts_ms: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX)),
                tenant: self.deployment.binding.tenant().tenant.to_string(),
                key_id: self.key_id.to_string(),
                target: target.config.id.clone(),
                model: target.config.model.clone(),
                input_tokens: input,
                output_tokens: output,
                cost_usd: cost,
                latency_ms: u32::try_from(self.started.elapsed().as_millis()).unwrap_or(u32::MAX),
                status,
                policy: self.deployment.label.clone(),
                fallback_depth: self.fallback_depth,
                request_id: self.request_id.clone(),
            });
        }
        if self.log.is_some() {
            let target = self.gateway.targets.get(self.target);
            super::log_outcome(
                &self.gateway,
                self.log.take(),
                serde_json::json!({
                    "status": status,
                    "target": target.map(|t| t.config.id.as_str()),
                    "fallback_depth": self.fallback_depth,
                    "latency_ms": self.started.elapsed().as_millis() as u64,
                    "ttft_ms": self.ttft.map(|d| d.as_millis() as u64),
                    "input_tokens": input,
                    "output_tokens": output,
                    "cost_usd": cost,
                }),
            );
        }
        self.gateway.decisions.record(
            &self.request_id,
            Decided {
                tenant: self.deployment.binding.tenant().tenant.clone(),
                deployment: Arc::downgrade(&self.deployment),
                target: self.position,
            },
        );
        if let Some(reservation) = self.reservation.take() {
            reservation.settle(u64::from(input) + u64::from(output), cost);
        }
        let latency = self.started.elapsed();
        if let Some(target) = self.gateway.targets.get(self.target) {
            let tenant = crate::metrics::Name(self.deployment.binding.tenant().tenant.clone());
            let metrics = &self.gateway.metrics;
            metrics.request(&tenant, &target.name, status);
            metrics.served(crate::metrics::Served {
                tenant: &tenant,
                target: &target.name,
                latency,
                ttft: self.ttft,
                input,
                output,
                cost_usd: cost,
            });
        }
        self.deployment.traffic.record(
            status,
            u64::try_from(latency.as_micros()).unwrap_or(u64::MAX),
            cost,
        );
        if let Some((routing, choice)) = self.shadow.take()
            && let Some(candidate) = routing.shadow()
            && let Some(target) = self.gateway.targets.get(choice)
        {
            use std::sync::atomic::Ordering::Relaxed;
            let shadow_cost = (f64::from(input) * target.config.input_price
                + f64::from(output) * target.config.output_price)
                / 1e6;
            let stats = &candidate.shadow;
            stats
                .active_cost_micro_usd
                .fetch_add(micro_usd(cost), Relaxed);
            stats
                .shadow_cost_micro_usd
                .fetch_add(micro_usd(shadow_cost), Relaxed);
        }
        // Policies that learn nothing from outcomes say so (`OBSERVES_OUTCOMES` in the
        // SDK): no call, no task.
        if !self.deployment.binding.policy().observes_outcomes() {
            return;
        }
        let binding = self.deployment.binding.clone();
        let outcome = Outcome {
            request_id: std::mem::take(&mut self.request_id),
            target: self.position,
            status,
            latency_ms: u32::try_from(latency.as_millis()).unwrap_or(u32::MAX),
            ttft_ms: self
                .ttft
                .map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX)),
            input_tokens: input,
            output_tokens: output,
            cost_usd: cost,
            fallback_depth: self.fallback_depth,
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
}

impl Drop for Completion {
    fn drop(&mut self) {
        // Dropped unaccounted: the client disconnected mid-response.
        self.finish(AttemptResult::Neutral, CLIENT_CLOSED, None);
    }
}

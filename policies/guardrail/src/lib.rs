//! The guardrail routing policy: hard data-protection rules first, then a delegated
//! choice among the targets the rules allow.
//!
//! **When to use it**: a tenant whose prompts may carry personal data (customer
//! emails, phone numbers, card numbers, IBANs) or data marked as regulated, and whose
//! contracts allow such data only on some targets (a self-hosted model, an EU region,
//! a provider with a data-processing agreement). The rules cannot be overridden by a
//! request; within the allowed set the usual cost/quality trade-off still applies.
//!
//! The rules, evaluated on every request:
//! - **personal data**: every message's text is scanned in one pass (see [`pii`]) for
//!   the kinds listed in `detect`. If any is found, only targets matching
//!   `approved.pii` (by id or tag) may serve the request.
//! - **regulated data**: a request with metadata `data-class: regulated` (header
//!   `x-signalbox-data-class: regulated`) or tag `data-class:regulated` may only go to
//!   targets matching `approved.regulated`.
//! - Both apply together when both match. If no allowed target is healthy, the request
//!   is rejected with **403** and a message naming the data class and saying that no
//!   approved target is healthy; it is never sent elsewhere.
//!
//! Inside the allowed set the `strategy` chooses: `cost-quality` (the default; the
//! `cost_quality` key holds its config, see `signalbox-policy-cost-quality-core`) or
//! `cheapest` (cheapest available first). Allowed targets without a cost-quality tier
//! are used, cheapest first, only when no tiered one is allowed. The reason names the
//! rule that applied (`pii:card`, `regulated`) — never the data itself.
//!
//! Only message text is scanned, not metadata. The guardrail enforces its rules only
//! while it answers: if it fails (a trap, a missed deadline), the host uses the
//! tenant's safe route, so list only approved targets there.
//!
//! Config (see `examples/policies/guardrail.json`):
//!
//! ```json
//! { "approved": { "pii": ["region:eu", "self-hosted"], "regulated": ["self-hosted"] },
//!   "detect": ["email", "phone", "card", "iban"],
//!   "strategy": "cost-quality",
//!   "cost_quality": { "tiers": { "mistral-small-eu": 1, "vllm-qwen-coder": 2 } } }
//! ```

pub mod pii;

use pii::{Detect, PiiKind};
use serde::Deserialize;
use signalbox_policy_cost_quality_core::{self as cost_quality, NoRoute, Tiering};
use signalbox_sdk::*;

/// The guardrail's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which targets may receive each data class.
    #[serde(default)]
    pub approved: Approved,
    /// The kinds of personal data to look for (default: all four).
    #[serde(default = "all_kinds")]
    pub detect: Vec<PiiKind>,
    /// How to choose among the allowed targets.
    #[serde(default)]
    pub strategy: Strategy,
    /// The cost-quality config, required with `strategy: cost-quality`.
    pub cost_quality: Option<cost_quality::Config>,
}

fn all_kinds() -> Vec<PiiKind> {
    PiiKind::ALL.to_vec()
}

/// Target ids or tags approved per data class. An empty list approves nothing.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approved {
    /// For requests carrying personal data.
    #[serde(default)]
    pub pii: Vec<String>,
    /// For requests marked `data-class: regulated`.
    #[serde(default)]
    pub regulated: Vec<String>,
}

/// The choice inside the allowed set.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// The cost-quality policy's logic.
    #[default]
    CostQuality,
    /// The cheapest available target first.
    Cheapest,
}

/// Output tokens assumed by the `cheapest` strategy when the client sets none.
const DEFAULT_OUTPUT_TOKENS: u32 = 512;

/// See the crate documentation.
pub struct Guardrail {
    detect: Detect,
    /// By target index: approved for personal data.
    pii_ok: Vec<bool>,
    /// By target index: approved for regulated data.
    regulated_ok: Vec<bool>,
    /// `None` for the `cheapest` strategy.
    tiering: Option<Tiering>,
}

impl Policy for Guardrail {
    type Config = Config;

    fn activate(config: Config, targets: &[Target]) -> Result<Self, String> {
        let pii_ok = approved_mask("approved.pii", &config.approved.pii, targets)?;
        let regulated_ok =
            approved_mask("approved.regulated", &config.approved.regulated, targets)?;
        let tiering = match (config.strategy, config.cost_quality) {
            (Strategy::CostQuality, Some(cq)) => Some(Tiering::new(cq, targets, "cost_quality.")?),
            (Strategy::CostQuality, None) => {
                return Err(
                    "`cost_quality`: required when `strategy` is `cost-quality` (the default)"
                        .into(),
                );
            }
            (Strategy::Cheapest, Some(_)) => {
                return Err("`cost_quality`: only used when `strategy` is `cost-quality`".into());
            }
            (Strategy::Cheapest, None) => None,
        };
        Ok(Guardrail {
            detect: Detect::of(&config.detect),
            pii_ok,
            regulated_ok,
            tiering,
        })
    }

    fn route(&self, request: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        let pii = self.find_pii(request);
        let regulated = is_regulated(request);
        let allowed = |i: u32| {
            let i = i as usize;
            (pii.is_none() || self.pii_ok.get(i) == Some(&true))
                && (!regulated || self.regulated_ok.get(i) == Some(&true))
        };
        let rule = match (pii, regulated) {
            (None, false) => return self.delegate(request, snapshot, |_| true, "no rule"),
            (Some(kind), false) => format!("pii:{}", kind.name()),
            (None, true) => "regulated".to_owned(),
            (Some(kind), true) => format!("pii:{}+regulated", kind.name()),
        };
        if !snapshot
            .iter()
            .any(|c| allowed(c.index) && c.signals.healthy)
        {
            return Decision::reject(403, refusal(pii, regulated));
        }
        self.delegate(request, snapshot, allowed, &rule)
    }
}

impl Guardrail {
    /// The first personal data in any message, if any.
    fn find_pii(&self, request: &Request<'_>) -> Option<PiiKind> {
        if !self.detect.any() {
            return None;
        }
        (0..request.message_count()).find_map(|i| {
            request
                .message_text(i)
                .and_then(|text| self.detect.scan(text.as_bytes()))
        })
    }

    /// Chooses among the `allowed` targets with the configured strategy.
    fn delegate(
        &self,
        request: &Request<'_>,
        snapshot: &Snapshot<'_>,
        allowed: impl Fn(u32) -> bool,
        rule: &str,
    ) -> Decision {
        let chosen = match &self.tiering {
            Some(tiering) => match tiering.choose(request, snapshot, &allowed) {
                // Allowed targets, none of them tiered: the cheapest of them.
                Err(NoRoute::NoTarget) if request.endpoint != Endpoint::Embedding => {
                    cheapest(request, snapshot, &allowed, tiering.output_tokens(request))
                }
                other => other,
            },
            None => cheapest(request, snapshot, &allowed, DEFAULT_OUTPUT_TOKENS),
        };
        match chosen {
            Ok(choice) => Decision::route(choice.targets, format!("{rule}; {}", choice.reason)),
            Err(no) => no.into_decision(request),
        }
    }
}

/// The `cheapest` strategy: the allowed targets that fit, cheapest first, available
/// ones before the rest.
fn cheapest(
    request: &Request<'_>,
    snapshot: &Snapshot<'_>,
    allowed: impl Fn(u32) -> bool,
    output: u32,
) -> Result<cost_quality::Choice, NoRoute> {
    let allowed = snapshot.candidates().filter(|c| allowed(c.index));
    let allowed = if request.endpoint == Endpoint::Embedding {
        allowed.serving(&request.model)
    } else {
        allowed
    };
    if allowed.is_empty() {
        return Err(NoRoute::NoTarget);
    }
    let needed = request.input_tokens.saturating_add(output);
    let fitting = allowed.fitting(needed);
    if fitting.is_empty() {
        return Err(NoRoute::TooLong { tokens: needed });
    }
    Ok(cost_quality::Choice {
        targets: fitting
            .by_price(request.input_tokens, output)
            .available_first()
            .indices(),
        reason: "cheapest".into(),
    })
}

/// Which targets `entries` (ids or tags) approve, by index. Every entry must match a
/// target, so a typo cannot silently approve nothing.
fn approved_mask(key: &str, entries: &[String], targets: &[Target]) -> Result<Vec<bool>, String> {
    let matches = |t: &Target, e: &str| t.id == e || t.has_tag(e);
    for (i, entry) in entries.iter().enumerate() {
        if !targets.iter().any(|t| matches(t, entry)) {
            return Err(format!(
                "`{key}[{i}]`: `{entry}` is neither the id nor a tag of any target"
            ));
        }
    }
    Ok(targets
        .iter()
        .map(|t| entries.iter().any(|e| matches(t, e)))
        .collect())
}

/// Marked regulated: metadata `data-class: regulated` or tag `data-class:regulated`.
fn is_regulated(request: &Request<'_>) -> bool {
    request
        .metadata_all("data-class")
        .any(|v| v.trim().eq_ignore_ascii_case("regulated"))
        || request.has_tag("data-class:regulated")
}

/// The 403 message: the data class, and that no approved target is healthy. Never the
/// data itself.
fn refusal(pii: Option<PiiKind>, regulated: bool) -> String {
    let class = match (pii, regulated) {
        (Some(kind), false) => format!("personal data ({})", kind.describe()),
        (None, _) => "data marked as regulated".to_owned(),
        (Some(kind), true) => format!(
            "personal data ({}) and is marked as regulated",
            kind.describe()
        ),
    };
    format!(
        "This request contains {class}; no target approved for it is healthy, so it was not sent anywhere. Try again later."
    )
}

export_policy!(Guardrail);

#[cfg(test)]
mod tests;

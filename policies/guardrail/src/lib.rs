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
//! - Both apply together when both match. Only healthy allowed targets are listed. If
//!   none is healthy (or none of the healthy ones can serve the request while an
//!   unhealthy one could), the request is rejected with **403** and a message naming
//!   the data class and saying that no approved target is healthy; if only unapproved
//!   targets could serve it (the model, the context window), the 403 says that no
//!   approved target can. It is never sent elsewhere.
//!
//! Inside the allowed set the `strategy` chooses: `cost-quality` (the default; the
//! `cost_quality` key holds its config, see `signalbox-policy-cost-quality-core`) or
//! `cheapest` (cheapest available first). Allowed targets without a cost-quality tier
//! are used, cheapest first, only when no tiered one is allowed. The reason names the
//! rule that applied (`pii:card`, `regulated`) — never the data itself.
//!
//! Only message text is scanned, not metadata. Embeddings requests show policies no
//! text (the contract gives them no messages), so by default they count as carrying
//! personal data (rule `pii:unscanned-embeddings`); set `embeddings_as_pii` to `false`
//! to let them go anywhere. The guardrail enforces its rules only while it answers:
//! if it fails (a trap, a missed deadline), the host uses the tenant's safe route, so
//! list only approved targets there.
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
    /// Treat embeddings requests, whose input policies cannot see, as carrying
    /// personal data (default `true`; only while `detect` lists a kind).
    #[serde(default = "yes")]
    pub embeddings_as_pii: bool,
}

fn yes() -> bool {
    true
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

/// Why a request counts as carrying personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PersonalData {
    /// Found in a message.
    Found(PiiKind),
    /// An embeddings request, whose input policies cannot see.
    Unscanned,
}

impl PersonalData {
    /// The rule's name in the reason: `pii:<this>`.
    fn rule(self) -> &'static str {
        match self {
            PersonalData::Found(kind) => kind.name(),
            PersonalData::Unscanned => "unscanned-embeddings",
        }
    }
}

/// What reading the messages found.
#[derive(Debug, Default)]
struct Scanned {
    pii: Option<PersonalData>,
    /// The last user message's text, when it was read.
    last_user_text: Option<String>,
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
    embeddings_as_pii: bool,
}

impl Policy for Guardrail {
    type Config = Config;
    // Stateless: it decides from the request and the live signals alone.
    const OBSERVES_OUTCOMES: bool = false;

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
            embeddings_as_pii: config.embeddings_as_pii,
        })
    }

    fn route(&self, request: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        let Scanned {
            pii,
            last_user_text,
        } = self.scan(request);
        let regulated = is_regulated(request);
        let allowed = |i: u32| {
            let i = i as usize;
            (pii.is_none() || self.pii_ok.get(i) == Some(&true))
                && (!regulated || self.regulated_ok.get(i) == Some(&true))
        };
        let rule = match (pii, regulated) {
            (None, false) => "no rule".to_owned(),
            (Some(found), false) => format!("pii:{}", found.rule()),
            (None, true) => "regulated".to_owned(),
            (Some(found), true) => format!("pii:{}+regulated", found.rule()),
        };
        let delegate = |among: &dyn Fn(u32) -> bool| {
            self.delegate(request, snapshot, among, &rule, &last_user_text)
        };
        if pii.is_none() && !regulated {
            return delegate(&|_| true);
        }
        // Only healthy approved targets are listed: nothing else may be tried, so
        // there is no point waiting for an unhealthy one to fail.
        let healthy =
            |i: u32| allowed(i) && snapshot.get(i as usize).is_some_and(|c| c.signals.healthy);
        let refuse = |why| Decision::reject(403, refusal(pii, regulated, why));
        if !snapshot.iter().any(|c| healthy(c.index)) {
            return refuse(UNHEALTHY);
        }
        match delegate(&healthy) {
            routed @ Decision::Route { .. } => routed,
            // No healthy approved target can serve it (model, context window). If an
            // unhealthy approved one could, that is the reason; if only unapproved
            // ones could, the rule is; if none could, the rejection stands.
            rejected if delegate(&allowed).targets().is_empty() => {
                if delegate(&|_| true).targets().is_empty() {
                    rejected
                } else {
                    refuse(UNSERVABLE)
                }
            }
            _ => refuse(UNHEALTHY),
        }
    }
}

impl Guardrail {
    /// The first personal data in any message, if any. Reads the messages newest
    /// first and keeps the last user message's text, so the cost-quality estimate
    /// does not copy it again.
    fn scan(&self, request: &Request<'_>) -> Scanned {
        let mut scanned = Scanned::default();
        if !self.detect.any() {
            return scanned;
        }
        if request.endpoint == Endpoint::Embedding {
            scanned.pii = self.embeddings_as_pii.then_some(PersonalData::Unscanned);
            return scanned;
        }
        for i in (0..request.message_count()).rev() {
            let Some(text) = request.message_text(i) else {
                continue;
            };
            let found = self.detect.scan(text.as_bytes());
            if scanned.last_user_text.is_none() && request.message_role(i) == Some(Role::User) {
                scanned.last_user_text = Some(text);
            }
            if let Some(kind) = found {
                scanned.pii = Some(PersonalData::Found(kind));
                break;
            }
        }
        scanned
    }

    /// Chooses among the `allowed` targets with the configured strategy.
    fn delegate(
        &self,
        request: &Request<'_>,
        snapshot: &Snapshot<'_>,
        allowed: impl Fn(u32) -> bool,
        rule: &str,
        last_user_text: &Option<String>,
    ) -> Decision {
        let chosen = match &self.tiering {
            Some(tiering) => match tiering.choose_with(request, snapshot, &allowed, || {
                tiering.estimate_with(request, last_user_text.as_deref())
            }) {
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

/// Why a sensitive request was refused: its approved targets are all unhealthy…
const UNHEALTHY: &str = "no target approved for it is healthy";
/// …or none of them can serve it (the model, the context window) though others could.
const UNSERVABLE: &str = "no target approved for it can serve it";

/// The 403 message: the data class and `why`. Never the data itself.
fn refusal(pii: Option<PersonalData>, regulated: bool, why: &str) -> String {
    let personal = match pii {
        Some(PersonalData::Found(kind)) => format!("contains personal data ({})", kind.describe()),
        Some(PersonalData::Unscanned) => {
            "may contain personal data (embeddings input cannot be scanned)".to_owned()
        }
        None => String::new(),
    };
    let class = match (pii.is_some(), regulated) {
        (true, false) => personal,
        (false, _) => "contains data marked as regulated".to_owned(),
        (true, true) => format!("{personal} and is marked as regulated"),
    };
    format!("This request {class}; {why}, so it was not sent anywhere.")
}

export_policy!(Guardrail);

#[cfg(test)]
mod tests;

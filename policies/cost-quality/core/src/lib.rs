//! The cost-quality routing logic: estimate the quality tier a request needs, then
//! choose the cheapest healthy target of that tier or above.
//!
//! Every target the tenant wants routed this way gets a quality tier in the config (1
//! is the weakest). A request's required tier is `signals.base` plus a weight for every
//! feature it shows — input length thresholds, code, mathematics, multi-step reasoning
//! markers (all read from the last user message, in one pass), tools on offer — or the
//! tier the client names explicitly (`x-signalbox-tag: tier:3` or metadata `tier`).
//!
//! The primary is the cheapest target at or above that tier that is available
//! (healthy and not rate-limited); the fallbacks go upward in tier (cheapest first
//! within a tier), then the unavailable ones the same way. Nothing below the required
//! tier is ever listed, unless no target reaches it: then the required tier is capped
//! at the highest one present, and the reason says so.
//!
//! The model the client names is not used for chat and completions: choosing the
//! model is this policy's job. Embeddings have no tiers; they go to the cheapest
//! target serving the requested model.
//!
//! This crate is a plain library so that both the `cost-quality` policy and the
//! `guardrail` policy (which delegates its choice to it) can use it.

#![warn(missing_docs)]

pub mod config;
pub mod features;

pub use config::{Config, SignalWeights};
pub use features::{MarkerScanner, TextFeatures};

use signalbox_sdk::{Candidate, Decision, Endpoint, Request, Snapshot, Target};
use std::fmt;

/// A validated cost-quality configuration, ready to route.
#[derive(Debug, Clone)]
pub struct Tiering {
    /// The tier of each target, by activation index; `None`: not routed to.
    tiers: Vec<Option<u8>>,
    highest: u8,
    weights: SignalWeights,
    default_output_tokens: u32,
    scanner: MarkerScanner,
}

/// What a request shows, feature by feature.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Text features of the last user message.
    pub text: TextFeatures,
    /// The request offers tools.
    pub tools: bool,
    /// How many `long_tokens` thresholds the input reaches.
    pub long: u8,
}

/// The tier a request needs, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Estimate {
    /// The required tier, capped at the highest configured one.
    pub tier: u8,
    /// Whether the client named the tier (then `features` were not looked at).
    pub explicit: bool,
    /// The features found.
    pub features: Features,
}

impl fmt::Display for Estimate {
    /// `tier 3: code+math`, `tier 4: explicit`, `tier 1: plain`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "tier {}: ", self.tier)?;
        if self.explicit {
            return f.write_str("explicit");
        }
        let fx = &self.features;
        let names = [
            (fx.long == 1, "long"),
            (fx.long > 1, "very-long"),
            (fx.text.code, "code"),
            (fx.text.math, "math"),
            (fx.text.reasoning, "reasoning"),
            (fx.tools, "tools"),
        ];
        let mut any = false;
        for (_, name) in names.iter().filter(|(on, _)| *on) {
            if any {
                f.write_str("+")?;
            }
            f.write_str(name)?;
            any = true;
        }
        if !any {
            f.write_str("plain")?;
        }
        Ok(())
    }
}

/// Targets in the order to try them, with the reason.
#[derive(Debug, Clone, PartialEq)]
pub struct Choice {
    /// Primary first, then fallbacks.
    pub targets: Vec<u32>,
    /// E.g. `tier 3: code+math`.
    pub reason: String,
}

/// Why no target could be chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoRoute {
    /// No allowed target has a tier (or, for embeddings, serves the model).
    NoTarget,
    /// Allowed targets exist, but the request does not fit any context window.
    TooLong {
        /// Input plus output tokens the request may need.
        tokens: u32,
    },
}

impl NoRoute {
    /// The rejection a policy answers with when this is the last word.
    pub fn into_decision(self, request: &Request<'_>) -> Decision {
        match self {
            NoRoute::NoTarget if request.endpoint == Endpoint::Embedding => Decision::reject(
                404,
                format!("no target serves the model `{}`", request.model),
            ),
            NoRoute::NoTarget => Decision::reject(503, "no target is configured with a tier"),
            NoRoute::TooLong { tokens } => Decision::reject(
                400,
                format!("this request needs about {tokens} tokens, more than any target accepts"),
            ),
        }
    }
}

impl Tiering {
    /// Validates `config` against the tenant's `targets`. Error messages name the
    /// offending key, prefixed with `path` (e.g. `cost_quality.` when nested).
    pub fn new(config: Config, targets: &[Target], path: &str) -> Result<Self, String> {
        if config.tiers.is_empty() {
            return Err(format!("`{path}tiers`: name at least one target"));
        }
        let mut tiers = vec![None; targets.len()];
        for (id, &tier) in &config.tiers {
            let Some(index) = targets.iter().position(|t| t.id == *id) else {
                return Err(format!("`{path}tiers.{id}`: no target has this id"));
            };
            if tier == 0 {
                return Err(format!("`{path}tiers.{id}`: tiers start at 1"));
            }
            tiers[index] = Some(tier);
        }
        let highest = tiers.iter().flatten().copied().max().unwrap_or(1);
        let weights = config.signals;
        if weights.base == 0 || weights.base > highest {
            return Err(format!(
                "`{path}signals.base`: must be between 1 and {highest}, the highest tier"
            ));
        }
        if weights.long_tokens.first() == Some(&0)
            || weights.long_tokens.windows(2).any(|w| w[0] >= w[1])
        {
            return Err(format!(
                "`{path}signals.long_tokens`: thresholds must be above 0 and ascending"
            ));
        }
        Ok(Tiering {
            tiers,
            highest,
            weights,
            default_output_tokens: config.default_output_tokens,
            scanner: MarkerScanner::new(),
        })
    }

    /// The tier of target `index`, if it has one.
    pub fn tier_of(&self, index: u32) -> Option<u8> {
        self.tiers.get(index as usize).copied().flatten()
    }

    /// The highest configured tier.
    pub fn highest_tier(&self) -> u8 {
        self.highest
    }

    /// Output tokens assumed for `request`.
    pub fn output_tokens(&self, request: &Request<'_>) -> u32 {
        request
            .max_output_tokens
            .unwrap_or(self.default_output_tokens)
    }

    /// The tier `request` needs. Reads the last user message (up to
    /// `signals.scan_bytes` of it) unless the client named the tier.
    pub fn estimate(&self, request: &Request<'_>) -> Estimate {
        self.estimate_with(request, None)
    }

    /// [`estimate`](Self::estimate), with the last user message's text when the
    /// caller has already read it (`None`: read it if needed).
    pub fn estimate_with(&self, request: &Request<'_>, last_user_text: Option<&str>) -> Estimate {
        if let Some(tier) = explicit_tier(request) {
            return Estimate {
                tier: tier.min(self.highest),
                explicit: true,
                features: Features::default(),
            };
        }
        let w = &self.weights;
        // A long message is scanned at both ends: a pasted document usually comes
        // with the question before or after it.
        let scan = |t: &str| {
            let (bytes, limit) = (t.as_bytes(), w.scan_bytes as usize);
            if bytes.len() <= limit {
                self.scanner.scan(bytes)
            } else {
                let head = limit / 2;
                let tail = &bytes[bytes.len() - (limit - head)..];
                self.scanner
                    .scan(&bytes[..head])
                    .or(self.scanner.scan(tail))
            }
        };
        let text = match last_user_text {
            _ if w.scan_bytes == 0 => TextFeatures::default(),
            Some(t) => scan(t),
            None => request
                .last_user_text()
                .map(|t| scan(&t))
                .unwrap_or_default(),
        };
        let long = w
            .long_tokens
            .iter()
            .take_while(|&&t| request.input_tokens >= t)
            .count()
            .min(usize::from(u8::MAX)) as u8;
        let features = Features {
            text,
            tools: request.has_tools,
            long,
        };
        let mut tier = u32::from(w.base) + u32::from(w.long) * u32::from(long);
        for (on, weight) in [
            (text.code, w.code),
            (text.math, w.math),
            (text.reasoning, w.reasoning),
            (features.tools, w.tools),
        ] {
            if on {
                tier += u32::from(weight);
            }
        }
        Estimate {
            tier: tier.min(u32::from(self.highest)) as u8,
            explicit: false,
            features,
        }
    }

    /// Orders the targets `allowed` admits for `request`: see the crate documentation.
    pub fn choose(
        &self,
        request: &Request<'_>,
        snapshot: &Snapshot<'_>,
        allowed: impl Fn(u32) -> bool,
    ) -> Result<Choice, NoRoute> {
        self.choose_with(request, snapshot, allowed, || self.estimate(request))
    }

    /// [`choose`](Self::choose) with the tier estimate from `estimate`, called only
    /// when there is a tiered target to choose from.
    pub fn choose_with(
        &self,
        request: &Request<'_>,
        snapshot: &Snapshot<'_>,
        allowed: impl Fn(u32) -> bool,
        estimate: impl FnOnce() -> Estimate,
    ) -> Result<Choice, NoRoute> {
        let output = self.output_tokens(request);
        let needed = request.input_tokens.saturating_add(output);
        if request.endpoint == Endpoint::Embedding {
            let serving = snapshot
                .candidates()
                .filter(|c| allowed(c.index))
                .serving(&request.model);
            if serving.is_empty() {
                return Err(NoRoute::NoTarget);
            }
            let fitting = serving.fitting(needed);
            if fitting.is_empty() {
                return Err(NoRoute::TooLong { tokens: needed });
            }
            return Ok(Choice {
                targets: fitting
                    .by_price(request.input_tokens, 0)
                    .available_first()
                    .indices(),
                reason: "embeddings: cheapest serving the model".into(),
            });
        }

        let tiered = snapshot
            .candidates()
            .filter(|c| allowed(c.index) && self.tier_of(c.index).is_some());
        if tiered.is_empty() {
            return Err(NoRoute::NoTarget);
        }
        let eligible = tiered.fitting(needed);
        let Some(top) = eligible.iter().filter_map(|c| self.tier_of(c.index)).max() else {
            return Err(NoRoute::TooLong { tokens: needed });
        };
        let estimate = estimate();
        let required = estimate.tier.min(top);

        // (availability group, tier, cost) for every candidate at or above `required`.
        let mut pool: Vec<(u8, u8, f64, u32)> = eligible
            .iter()
            .filter_map(|c| {
                let tier = self.tier_of(c.index)?;
                (tier >= required).then(|| {
                    (
                        availability(c),
                        tier,
                        c.target.cost(request.input_tokens, output),
                        c.index,
                    )
                })
            })
            .collect();
        // Primary: the cheapest in the best availability group, whatever its tier.
        let primary = pool
            .iter()
            .enumerate()
            .min_by(|(_, a), (_, b)| a.0.cmp(&b.0).then(a.2.total_cmp(&b.2)))
            .map(|(i, _)| i)
            .unwrap_or(0);
        let first = pool.swap_remove(primary);
        // Fallbacks: upward in tier, cheapest first within a tier.
        pool.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.total_cmp(&b.2)));

        let mut reason = estimate.to_string();
        if required < estimate.tier {
            reason.push_str(&format!(", capped at tier {required}"));
        }
        if first.1 > required {
            reason.push_str(&format!(", served at tier {}", first.1));
        }
        let mut targets = Vec::with_capacity(pool.len() + 1);
        targets.push(first.3);
        targets.extend(pool.iter().map(|c| c.3));
        Ok(Choice { targets, reason })
    }

    /// [`choose`](Self::choose) over every target, as a decision.
    pub fn route(&self, request: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        match self.choose(request, snapshot, |_| true) {
            Ok(choice) => Decision::route(choice.targets, choice.reason),
            Err(no) => no.into_decision(request),
        }
    }
}

/// 0: available, 1: healthy but rate-limited, 2: circuit open.
fn availability(c: &Candidate<'_>) -> u8 {
    match (c.signals.healthy, c.signals.rate_limited_ms) {
        (true, 0) => 0,
        (true, _) => 1,
        (false, _) => 2,
    }
}

/// The tier the client asked for: tag `tier:N` or metadata `tier` = `N` (N ≥ 1).
fn explicit_tier(request: &Request<'_>) -> Option<u8> {
    let from_tag = request
        .metadata_all("tag")
        .flat_map(|v| v.split(','))
        .find_map(|t| t.trim().strip_prefix("tier:"));
    let value = from_tag.or_else(|| request.metadata("tier"))?;
    value.trim().parse::<u8>().ok().filter(|t| *t >= 1)
}

#[cfg(test)]
mod tests;

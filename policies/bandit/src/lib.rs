//! The bandit routing policy: learns from outcomes and feedback which target gives
//! the best answers for the money, and sends most traffic there while still trying
//! the others now and then.
//!
//! **When to use it**: several targets could serve the same traffic and nobody knows
//! in advance which is worth its price — the answer is measured, from success rates
//! and from the quality scores clients send to `POST /v1/feedback`. It adapts when a
//! model gets better, worse or more expensive. Use cost-quality instead when the
//! ranking is known up front, and neither when a request needs a specific model (the
//! bandit does not look at the model the client names: choosing is its job).
//!
//! **Arms** are the targets in `arms` (default: all), minus those whose context window
//! the request does not fit. **Reward** of a request, in `[0, 1]`:
//! `score − cost_weight × cost_usd`, clamped, where `score` is the client's feedback
//! score, or — until feedback arrives, or when none ever does — 1 for a 2xx answer and
//! 0 otherwise; every arm whose attempt failed on the way (a fallback, or a request
//! no arm answered) counts a pull with reward 0. **Choice**: `thompson` draws from each arm's Beta posterior
//! (`prior.alpha + rewards`, `prior.beta + pulls − rewards`) with the host's
//! randomness; `ucb` takes the highest UCB1 index (untried arms first). Available
//! arms come first by that value, then unhealthy or rate-limited ones. With
//! `class_by` set, each class (a tag among `classes`, or an input-length bucket)
//! learns separately.
//!
//! **No double counting**: the outcome counts the success reward at once and keeps
//! the reward it counted and the request's cost in a scratch slot; feedback replaces
//! that reward by the score's (the pull count does not change) and deletes the slot.
//! Feedback that comes before the outcome waits in the slot and the outcome counts it
//! instead of success. See [`pending`] for how the slots stay bounded, and
//! [`arm_stats`] for the keys.
//!
//! **State** lives in the tenant's state store under `bandit/`, keyed by class and
//! target id, so it survives hot swaps and config changes and is shared by every
//! instance and version. The request's class is written to its scratch slot at
//! decision time (only when classes are on), because outcomes and feedback arrive
//! without the request.
//!
//! Config (see `examples/policies/bandit.json`; every key optional):
//!
//! ```json
//! { "algorithm": "thompson", "cost_weight": 20, "class_by": "tag",
//!   "classes": ["code", "support"], "prior": {"alpha": 1, "beta": 1},
//!   "arms": ["openai-gpt-4o", "openai-gpt-4o-mini"], "pending_slots": 1024 }
//! ```
//!
//! Rejections: 400 when the request fits no arm's context window; 503 when the tenant
//! has no target that is an arm.

pub mod arm_stats;
pub mod config;
pub mod pending;
mod sampling;

use arm_stats::ArmStats;
use config::{Algorithm, Classes, Settings};
use pending::Pending;
use signalbox_sdk::*;

/// See the crate documentation.
pub struct Bandit {
    settings: Settings,
    /// Every class name, by class index.
    class_names: Vec<String>,
    /// `[class][target]`: the arm's state key (empty for targets that are not arms).
    arm_keys: Vec<Vec<String>>,
}

impl Policy for Bandit {
    type Config = config::Config;

    fn activate(config: config::Config, targets: &[Target]) -> Result<Self, String> {
        let settings = Settings::new(config, targets)?;
        let class_names: Vec<String> = match &settings.classes {
            Classes::None => vec!["all".into()],
            Classes::Tag(tags) => tags
                .iter()
                .cloned()
                .chain(std::iter::once("other".into()))
                .collect(),
            Classes::Length(bounds) => bounds
                .iter()
                .map(|b| format!("tokens<{b}"))
                .chain(bounds.last().map(|b| format!("tokens>={b}")))
                .collect(),
        };
        let arm_keys = class_names
            .iter()
            .map(|class| {
                targets
                    .iter()
                    .zip(&settings.arms)
                    .map(|(t, &arm)| {
                        if arm {
                            arm_stats::key(class, &t.id)
                        } else {
                            String::new()
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(Bandit {
            settings,
            class_names,
            arm_keys,
        })
    }

    fn route(&self, request: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        let arms = snapshot.candidates().filter(|c| self.is_arm(c.index));
        if arms.is_empty() {
            return Decision::reject(503, "none of the tenant's targets is a bandit arm");
        }
        let needed = request.input_tokens.saturating_add(
            request
                .max_output_tokens
                .unwrap_or(self.settings.default_output_tokens),
        );
        let arms = arms.fitting(needed);
        if arms.is_empty() {
            return Decision::reject(
                400,
                format!("this request needs about {needed} tokens, more than any target accepts"),
            );
        }

        let class = self.class_of(request);
        let keys = &self.arm_keys[class];
        let stats: Vec<ArmStats> = arms
            .iter()
            .map(|c| ArmStats::load(&keys[c.index as usize]))
            .collect();
        let total: f64 = stats.iter().map(|s| s.pulls).sum();
        let prior = self.settings.prior;
        // (availability group, value, index)
        let mut scored: Vec<(u8, f64, u32)> = arms
            .iter()
            .zip(&stats)
            .map(|(c, s)| {
                let value = match self.settings.algorithm {
                    Algorithm::Thompson => sampling::beta(
                        prior.alpha + s.reward,
                        prior.beta + (s.pulls - s.reward).max(0.0),
                    ),
                    Algorithm::Ucb => {
                        sampling::ucb(s.reward, s.pulls, total, self.settings.exploration)
                    }
                };
                let group = c.signals.rank();
                (group, value, c.index)
            })
            .collect();
        scored.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.total_cmp(&a.1)));

        if !matches!(self.settings.classes, Classes::None)
            && let Some(slot) = pending::key(&request.id, self.settings.pending_slots)
        {
            Pending {
                id: request.id.clone(),
                class: self.class_names[class].clone(),
                ..Pending::default()
            }
            .store(&slot);
        }

        let best = scored[0].1;
        let mut reason = match self.settings.algorithm {
            Algorithm::Thompson => format!("thompson draw {best:.2}"),
            Algorithm::Ucb if best.is_infinite() => "ucb: untried arm".to_owned(),
            Algorithm::Ucb => format!("ucb {best:.2}"),
        };
        if !matches!(self.settings.classes, Classes::None) {
            reason.push_str(", class ");
            reason.push_str(&self.class_names[class]);
        }
        Decision::route(scored.iter().map(|s| s.2), reason)
    }

    fn on_outcome(&self, outcome: &Outcome) {
        let slot = pending::key(&outcome.request_id, self.settings.pending_slots);
        let pending = slot
            .as_deref()
            .and_then(|k| Pending::load(k, &outcome.request_id));
        let Some(class) = self.class_for(pending.as_ref()) else {
            log(
                Level::Debug,
                "bandit: outcome of a request whose class is no longer known; not counted",
            );
            return;
        };
        // Every arm that failed on the way is a pull that earned nothing; a request no
        // arm answered (every attempt failed) is only that.
        for &failed in &outcome.failed_targets {
            if self.is_arm(failed) {
                ArmStats::add(&self.arm_keys[class][failed as usize], 1.0, 0.0);
            }
        }
        let Some(target) = outcome.target.filter(|&t| self.is_arm(t)) else {
            // No answer to score: feedback cannot follow, so the slot is freed.
            if let (Some(slot), Some(_)) = (&slot, &pending) {
                state::delete(slot);
            }
            return;
        };
        let key = &self.arm_keys[class][target as usize];
        let penalty = self.settings.cost_weight * outcome.cost_usd;

        if let (Some(score), Some(slot)) = (pending.as_ref().and_then(|p| p.early_score), &slot) {
            // The feedback came first: it is the reward.
            ArmStats::add(key, 1.0, reward(score, penalty));
            state::delete(slot);
            return;
        }
        let counted = reward(if outcome.succeeded() { 1.0 } else { 0.0 }, penalty);
        ArmStats::add(key, 1.0, counted);
        if let Some(slot) = slot {
            Pending {
                id: outcome.request_id.clone(),
                class: self.class_names[class].clone(),
                counted: Some(counted),
                cost: outcome.cost_usd,
                early_score: None,
            }
            .store(&slot);
        }
    }

    fn on_feedback(&self, feedback: &Feedback) {
        if !self.is_arm(feedback.target) {
            return;
        }
        let Some(slot) = pending::key(&feedback.request_id, self.settings.pending_slots) else {
            return;
        };
        let score = f64::from(feedback.score);
        match Pending::load(&slot, &feedback.request_id) {
            Some(p) => match (p.counted, self.class_for(Some(&p))) {
                (Some(counted), Some(class)) => {
                    let key = &self.arm_keys[class][feedback.target as usize];
                    let replaced = reward(score, self.settings.cost_weight * p.cost);
                    ArmStats::add(key, 0.0, replaced - counted);
                    state::delete(&slot);
                }
                // Decided, not yet counted: the outcome will count the score.
                (None, _) => Pending {
                    early_score: Some(score),
                    ..p
                }
                .store(&slot),
                (Some(_), None) => state::delete(&slot),
            },
            // Not counted yet, and the slot is free: the outcome will count the
            // score. (A slot holding another request's record is left alone.)
            None if matches!(self.settings.classes, Classes::None)
                && state::get_bytes(&slot).is_none() =>
            {
                Pending {
                    id: feedback.request_id.clone(),
                    class: self.class_names[0].clone(),
                    early_score: Some(score),
                    ..Pending::default()
                }
                .store(&slot)
            }
            None => log(
                Level::Debug,
                "bandit: feedback for a request whose slot was reused; ignored",
            ),
        }
    }
}

impl Bandit {
    fn is_arm(&self, index: u32) -> bool {
        self.settings.arms.get(index as usize) == Some(&true)
    }

    /// The class index of `request`.
    fn class_of(&self, request: &Request<'_>) -> usize {
        match &self.settings.classes {
            Classes::None => 0,
            Classes::Tag(tags) => tags
                .iter()
                .position(|t| request.has_tag(t))
                .unwrap_or(tags.len()),
            Classes::Length(bounds) => bounds
                .iter()
                .position(|&b| request.input_tokens < b)
                .unwrap_or(bounds.len()),
        }
    }

    /// The class index recorded in `pending` (always 0 without classes).
    fn class_for(&self, pending: Option<&Pending>) -> Option<usize> {
        match &self.settings.classes {
            Classes::None => Some(0),
            _ => {
                let name = &pending?.class;
                self.class_names.iter().position(|c| c == name)
            }
        }
    }
}

/// A reward in `[0, 1]`: `score` minus the cost penalty.
fn reward(score: f64, penalty: f64) -> f64 {
    let r = score - penalty;
    if r.is_finite() {
        r.clamp(0.0, 1.0)
    } else {
        0.0
    }
}

export_policy!(Bandit);

#[cfg(test)]
mod tests;

//! The weighted policy: a sticky weighted split across targets, for A/B tests and
//! canaries.
//!
//! Use it to send a fixed share of traffic to each of a few interchangeable targets —
//! a new model for 5 % of users, a second provider for 30 % — where each user should
//! keep seeing the same one. The split ignores the requested model: bind it to a
//! tenant whose configured targets can all answer that tenant's requests.
//!
//! Each request's key is the value of the metadata entry named by `sticky_key`
//! (default `user`: the body's `user` field, or the `x-signalbox-user` header). The
//! key is hashed with the SDK's frozen [`stable_hash`], and [`weighted_pick`] chooses
//! the primary target, so the same key always lands on the same target for the same
//! weights, on every instance and after every redeploy. A request without the key is
//! keyed by its request id: it is split by weight but not sticky.
//!
//! With `fallback` (default `true`) the other configured targets follow the primary,
//! heaviest first, and available targets (circuit closed, not rate-limited) move ahead
//! of the others. Targets with weight `0` never get a user of their own but still
//! serve as fallbacks: set a weight to `0` to drain a target. With `fallback: false`
//! the decision is the primary alone.
//!
//! # How changing weights moves users
//!
//! `weighted_pick` lays the weights end to end on `[0, 1)`, in target-id order (the
//! order of the config's keys is not significant), and each key falls at a fixed point
//! of that line. Changing weights moves only the users whose point changes interval:
//!
//! - with two targets — the usual A/B test or canary — going from 95/5 to 90/10 moves
//!   exactly the 5 % of users between the old and the new boundary, all from the first
//!   target to the second; nobody else changes target;
//! - with more targets, shifting weight between two neighbours (in id order) likewise
//!   moves only the users between them; a change that moves several boundaries at once
//!   also moves users across each moved boundary, which can be more than the change in
//!   shares strictly requires.
//!
//! Config (see `examples/policies/weighted.json`):
//!
//! ```json
//! { "targets": { "openai-gpt-4o": 90, "anthropic-sonnet": 10 },
//!   "sticky_key": "user",
//!   "fallback": true }
//! ```
//!
//! Rejected at activation, naming the field: an empty `targets` map, an unknown target
//! id, a negative or non-finite weight, all weights zero, an empty `sticky_key`.

use serde::Deserialize;
use signalbox_sdk::*;
use std::collections::BTreeMap;

/// The policy's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Target id → weight (any non-negative numbers; only their ratios matter).
    pub targets: BTreeMap<String, f64>,
    /// Metadata key whose value keeps a user on one target; `null` for no stickiness.
    #[serde(default = "default_sticky_key")]
    pub sticky_key: Option<String>,
    /// Whether the other targets follow the primary as fallbacks.
    #[serde(default = "default_fallback")]
    pub fallback: bool,
}

fn default_sticky_key() -> Option<String> {
    Some("user".into())
}

fn default_fallback() -> bool {
    true
}

fn invalid(path: impl std::fmt::Display, message: impl std::fmt::Display) -> String {
    format!("invalid config at `{path}`: {message}")
}

/// See the crate documentation.
pub struct WeightedPolicy {
    /// Target indices of the split, in target-id order.
    indices: Vec<u32>,
    /// Their weights, same order.
    weights: Vec<f64>,
    /// For each position, the fallbacks that follow it: every other position, heaviest
    /// first (computed once here, not per request).
    fallbacks: Vec<Vec<u32>>,
    /// For each position: the reason when the request had a sticky key, and when not.
    reasons: Vec<(String, String)>,
    sticky_key: Option<String>,
}

impl Policy for WeightedPolicy {
    type Config = Config;
    // Stateless: it decides from the request and the live signals alone.
    const OBSERVES_OUTCOMES: bool = false;

    fn activate(config: Config, targets: &[Target]) -> Result<Self, String> {
        if config.targets.is_empty() {
            return Err(invalid("targets", "names no target"));
        }
        if let Some(key) = &config.sticky_key
            && key.trim().is_empty()
        {
            return Err(invalid(
                "sticky_key",
                "is empty; use null to split without stickiness",
            ));
        }
        let mut indices = Vec::with_capacity(config.targets.len());
        let mut weights = Vec::with_capacity(config.targets.len());
        for (id, &weight) in &config.targets {
            let Some(index) = targets.iter().position(|t| &t.id == id) else {
                return Err(invalid(
                    format_args!("targets.{id}"),
                    format_args!("no target has the id `{id}`"),
                ));
            };
            if !weight.is_finite() || weight < 0.0 {
                return Err(invalid(
                    format_args!("targets.{id}"),
                    format_args!("the weight must be a number ≥ 0, got {weight}"),
                ));
            }
            indices.push(index as u32);
            weights.push(weight);
        }
        if weights.iter().all(|w| *w == 0.0) {
            return Err(invalid(
                "targets",
                "every weight is 0; give at least one target a positive weight",
            ));
        }

        // Heaviest first; equal weights keep id order (the sort is stable).
        let mut by_weight: Vec<usize> = (0..indices.len()).collect();
        by_weight.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]));
        let fallbacks = (0..indices.len())
            .map(|primary| match config.fallback {
                true => by_weight
                    .iter()
                    .filter(|&&p| p != primary)
                    .map(|&p| indices[p])
                    .collect(),
                false => Vec::new(),
            })
            .collect();
        let key = config.sticky_key.as_deref().unwrap_or("");
        let reasons = config
            .targets
            .keys()
            .map(|id| {
                (
                    format!("weighted:{id} (sticky on {key})"),
                    format!("weighted:{id} (not sticky)"),
                )
            })
            .collect();
        Ok(WeightedPolicy {
            indices,
            weights,
            fallbacks,
            reasons,
            sticky_key: config.sticky_key.map(|k| k.to_ascii_lowercase()),
        })
    }

    fn route(&self, req: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        let sticky = self.sticky_key.as_deref().and_then(|k| req.metadata(k));
        let key = sticky.unwrap_or(&req.id);
        // Activation guarantees a positive weight, so the pick always succeeds.
        let primary = weighted_pick(key.as_bytes(), &self.weights).unwrap_or(0);
        let fallbacks = &self.fallbacks[primary];

        let class = |i: u32| snapshot.get(i as usize).map_or(3, |c| c.signals.rank());
        let first = self.indices[primary];
        let mut ordered: Vec<u32> = Vec::with_capacity(1 + fallbacks.len());
        for wanted in 0..3 {
            ordered.extend(
                std::iter::once(&first)
                    .chain(fallbacks)
                    .filter(|&&i| class(i) == wanted),
            );
        }
        let (with_key, without_key) = &self.reasons[primary];
        let reason = if sticky.is_some() {
            with_key
        } else {
            without_key
        };
        Decision::route(ordered, reason.as_str())
    }
}

export_policy!(WeightedPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use signalbox_sdk::testing::Harness;

    fn targets() -> Vec<Target> {
        vec![
            Target::new("stable", "gpt-4o"),
            Target::new("canary", "gpt-4o"),
            Target::new("other", "claude-sonnet"),
            Target::new("unused", "llama"),
        ]
    }

    fn harness(config: &str) -> Harness<WeightedPolicy> {
        Harness::new(config, targets()).unwrap()
    }

    fn primary_of(h: &Harness<WeightedPolicy>, user: &str) -> String {
        let req = RequestBuilder::chat("gpt-4o")
            .metadata("user", user)
            .build();
        let d = h.route_healthy(&req);
        h.targets()[d.primary().unwrap() as usize].id.clone()
    }

    #[test]
    fn shares_follow_weights_and_users_stay_put() {
        let h = harness(r#"{"targets": {"stable": 80, "canary": 20}}"#);
        let users: Vec<String> = (0..5000).map(|i| format!("user-{i}")).collect();
        let first: Vec<String> = users.iter().map(|u| primary_of(&h, u)).collect();
        let canary = first.iter().filter(|t| *t == "canary").count();
        let share = canary as f64 / users.len() as f64;
        assert!((share - 0.2).abs() < 0.02, "canary share {share}");
        // Same user, same target, on a freshly activated instance too.
        let again = harness(r#"{"targets": {"canary": 20, "stable": 80}}"#);
        for (u, t) in users.iter().zip(&first).take(500) {
            assert_eq!(&primary_of(&again, u), t, "{u}");
        }
    }

    #[test]
    fn changing_weights_moves_only_the_minimal_share_of_users() {
        let before = harness(r#"{"targets": {"stable": 95, "canary": 5}}"#);
        let after = harness(r#"{"targets": {"stable": 90, "canary": 10}}"#);
        let (mut moved, n) = (0, 10_000);
        for i in 0..n {
            let user = format!("u{i}");
            let (b, a) = (primary_of(&before, &user), primary_of(&after, &user));
            if b != a {
                assert_eq!((b.as_str(), a.as_str()), ("stable", "canary"), "{user}");
                moved += 1;
            }
        }
        let share = f64::from(moved) / f64::from(n);
        assert!((share - 0.05).abs() < 0.01, "moved {share}");
    }

    #[test]
    fn fallbacks_follow_by_weight_and_unavailable_targets_go_last() {
        let h = harness(r#"{"targets": {"stable": 10, "canary": 0, "other": 30}}"#);
        let req = RequestBuilder::chat("x").metadata("user", "alice").build();
        let ids = h.route_ids(&req, &[Signals::default(); 4]).unwrap();
        assert_eq!(ids.len(), 3);
        // Whoever is primary, the rest follow heaviest first; weight 0 comes last.
        let rest: Vec<&str> = ["other", "stable", "canary"]
            .into_iter()
            .filter(|t| *t != ids[0])
            .collect();
        assert_eq!(&ids[1..], rest.as_slice());
        assert_ne!(ids[0], "canary", "weight 0 is never primary");

        // The primary's circuit opens: it becomes the last resort.
        let mut signals = [Signals::default(); 4];
        let primary = h.targets().iter().position(|t| t.id == ids[0]).unwrap();
        signals[primary] = Signals::unhealthy();
        let moved = h.route_ids(&req, &signals).unwrap();
        assert_eq!(moved.last(), Some(&ids[0]));
    }

    #[test]
    fn without_fallback_the_decision_is_the_primary_alone() {
        let h = harness(r#"{"targets": {"stable": 1, "canary": 1}, "fallback": false}"#);
        let req = RequestBuilder::chat("x").metadata("user", "bob").build();
        assert_eq!(h.route_healthy(&req).targets().len(), 1);
    }

    #[test]
    fn without_the_key_requests_split_by_request_id() {
        let h = harness(r#"{"targets": {"stable": 50, "canary": 50}}"#);
        let mut seen = std::collections::BTreeSet::new();
        for i in 0..50 {
            let req = RequestBuilder::chat("x").id(format!("req-{i}")).build();
            let d = h.route_healthy(&req);
            let Decision::Route { reason, .. } = &d else {
                panic!("{d:?}")
            };
            assert!(reason.ends_with("(not sticky)"), "{reason}");
            seen.insert(d.primary());
        }
        assert_eq!(seen.len(), 2, "both arms get anonymous traffic");

        // A custom key, looked up case-insensitively like metadata keys.
        let h = harness(r#"{"targets": {"stable": 50, "canary": 50}, "sticky_key": "Session"}"#);
        let req = RequestBuilder::chat("x").metadata("session", "s-1").build();
        let Decision::Route { reason, .. } = h.route_healthy(&req) else {
            panic!()
        };
        assert!(reason.ends_with("(sticky on Session)"), "{reason}");
    }

    #[test]
    fn bad_configs_are_rejected_naming_the_field() {
        let cases = [
            (r#"{"targets": {}}"#, "`targets`: names no target"),
            (
                r#"{"targets": {"stable": 1, "nope": 1}}"#,
                "`targets.nope`: no target has the id `nope`",
            ),
            (
                r#"{"targets": {"stable": -1}}"#,
                "`targets.stable`: the weight must be a number ≥ 0, got -1",
            ),
            (
                r#"{"targets": {"stable": 0, "canary": 0}}"#,
                "`targets`: every weight is 0",
            ),
            (
                r#"{"targets": {"stable": 1}, "sticky_key": " "}"#,
                "`sticky_key`: is empty",
            ),
            (
                r#"{"targets": {"stable": "half"}}"#,
                "`targets.stable`: invalid type",
            ),
            (
                r#"{"targets": {"stable": 1}, "weights": {}}"#,
                "unknown field `weights`",
            ),
            (r#"{}"#, "missing field `targets`"),
        ];
        for (config, expected) in cases {
            let err = match Harness::<WeightedPolicy>::new(config, targets()) {
                Ok(_) => panic!("accepted: {config}"),
                Err(e) => e,
            };
            assert!(
                err.contains(expected),
                "{config}\n  gave: {err}\n  want: {expected}"
            );
        }
    }
}

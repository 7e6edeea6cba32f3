//! The latency policy: the fastest healthy target that can serve the request, with a
//! small exploration share.
//!
//! Use it when several deployments serve the same model (the same model at two
//! providers or regions, or interchangeable models behind an alias) and response time
//! matters more than price: it follows whichever is fastest right now, moves away from
//! a target as soon as it slows down, and comes back when it recovers.
//!
//! For each request:
//!
//! 1. **Who can serve it**: the targets whose model (or id) equals the requested
//!    model; when the requested model is one of the config's `aliases`, the targets of
//!    every model the alias names. Nothing serves it: 404.
//! 2. **Room for it**: targets whose context window holds the estimated input plus
//!    the output budget (`max_tokens`, else `default_output_tokens`). None: 400.
//! 3. **Order**: available targets (circuit closed, not rate-limited) first, then
//!    rate-limited ones, then those whose circuit is open. Within each group, by the
//!    gateway's moving average of the configured `metric`, fastest first; ties by
//!    price. `ttft` is the time to first token, measured on streamed responses; a
//!    target with no streamed response yet is compared by its total latency instead.
//!    `latency` is the total response time.
//! 4. **Unknown targets first**: a target never measured (average `0`) ranks before
//!    measured ones, so a new or idle target is tried once and gets a figure.
//! 5. **Exploration**: with probability `exploration` (host randomness, so it is not
//!    sticky to any user or request), a random other available target is tried first
//!    instead of the fastest. The averages only move when a target serves traffic;
//!    without this, a target that was slow once would never be measured again and
//!    never win back its traffic after it recovers.
//!
//! Reasons: `latency:fastest`, `latency:unmeasured`, `latency:explore`.
//!
//! The gateway's averages give the newest response a weight of 0.2, so a target that
//! turns slow loses its place after one or two slow responses, and one that turns fast
//! again wins it back after a handful of explored responses.
//!
//! Config (all optional; see `examples/policies/latency.json`):
//!
//! ```json
//! { "metric": "ttft", "exploration": 0.05,
//!   "aliases": { "fast": ["gpt-4o-mini", "llama-3.1-8b"] },
//!   "default_output_tokens": 512 }
//! ```
//!
//! Rejected at activation, naming the field: `exploration` outside `[0, 0.5]`, a
//! `metric` other than `ttft` or `latency`, an alias naming no model or a model no
//! target serves.

use serde::Deserialize;
use signalbox_sdk::*;
use std::collections::BTreeMap;

/// The policy's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Which moving average to compare.
    #[serde(default)]
    pub metric: Metric,
    /// Share of requests sent first to a random other available target, in `[0, 0.5]`.
    #[serde(default = "default_exploration")]
    pub exploration: f64,
    /// Alias → the models (or target ids) it stands for.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Output tokens assumed when the client sets no `max_tokens`, for the context check
    /// and the price tie-break.
    #[serde(default = "default_output_tokens")]
    pub default_output_tokens: u32,
}

/// The latency figure targets are compared by.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    /// Time to first token (total latency for targets with no streamed response yet).
    #[default]
    Ttft,
    /// Total response time.
    Latency,
}

fn default_exploration() -> f64 {
    0.05
}

fn default_output_tokens() -> u32 {
    512
}

fn invalid(path: impl std::fmt::Display, message: impl std::fmt::Display) -> String {
    format!("invalid config at `{path}`: {message}")
}

/// See the crate documentation.
pub struct LatencyPolicy {
    metric: Metric,
    exploration: f64,
    default_output_tokens: u32,
    /// Requested model, target id or alias → the target indices serving it.
    serving: BTreeMap<String, Vec<u32>>,
}

/// One candidate with what it is ranked by.
struct Ranked {
    index: u32,
    /// 0 available, 1 rate-limited, 2 circuit open.
    class: u8,
    /// Moving average in ms; 0 when never measured.
    ms: f32,
    cost: f64,
}

impl Policy for LatencyPolicy {
    type Config = Config;
    // Stateless: it decides from the request and the live signals alone.
    const OBSERVES_OUTCOMES: bool = false;

    fn activate(config: Config, targets: &[Target]) -> Result<Self, String> {
        if !(0.0..=0.5).contains(&config.exploration) {
            return Err(invalid(
                "exploration",
                format_args!("must be within [0, 0.5], got {}", config.exploration),
            ));
        }
        Ok(LatencyPolicy {
            metric: config.metric,
            exploration: config.exploration,
            default_output_tokens: config.default_output_tokens,
            serving: serving_map(&config.aliases, targets)?,
        })
    }

    fn route(&self, req: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        let Some(group) = self.serving.get(req.model.as_str()) else {
            return Decision::reject(404, format!("the model `{}` does not exist", req.model));
        };
        let output = req.max_output_tokens.unwrap_or(self.default_output_tokens);
        let needed = req.input_tokens.saturating_add(output);
        let mut ranked: Vec<Ranked> = group
            .iter()
            .filter_map(|&i| snapshot.get(i as usize))
            .filter(|c| c.target.fits(needed))
            .map(|c| Ranked {
                index: c.index,
                class: c.signals.rank(),
                ms: self.observed_ms(c.signals),
                cost: c.target.cost(req.input_tokens, output),
            })
            .collect();
        if ranked.is_empty() {
            return Decision::reject(
                400,
                format!(
                    "this request needs about {needed} tokens, more than any `{}` target accepts",
                    req.model
                ),
            );
        }
        ranked.sort_by(|a, b| {
            a.class
                .cmp(&b.class)
                .then(a.ms.total_cmp(&b.ms))
                .then(a.cost.total_cmp(&b.cost))
        });

        let available = ranked.iter().take_while(|r| r.class == 0).count();
        let reason = if available >= 2 && self.exploration > 0.0 && random_f64() < self.exploration
        {
            // Any available target but the fastest, uniformly.
            let pick = 1 + (random_u64() % (available as u64 - 1)) as usize;
            ranked[..=pick].rotate_right(1);
            "latency:explore"
        } else if ranked[0].ms == 0.0 {
            "latency:unmeasured"
        } else {
            "latency:fastest"
        };
        Decision::route(ranked.iter().map(|r| r.index), reason)
    }
}

impl LatencyPolicy {
    fn observed_ms(&self, signals: &Signals) -> f32 {
        match self.metric {
            Metric::Ttft if signals.ttft_ms > 0.0 => signals.ttft_ms,
            Metric::Ttft | Metric::Latency => signals.latency_ms,
        }
    }
}

export_policy!(LatencyPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use signalbox_sdk::testing::{Harness, reset};

    fn targets() -> Vec<Target> {
        vec![
            Target::new("a", "m")
                .price(1.0, 2.0)
                .context_window(100_000),
            Target::new("b", "m")
                .price(2.0, 4.0)
                .context_window(100_000),
            Target::new("c", "m").price(3.0, 6.0).context_window(8_000),
            Target::new("other", "n").price(0.1, 0.2),
        ]
    }

    fn harness(config: &str) -> Harness<LatencyPolicy> {
        Harness::new(config, targets()).unwrap()
    }

    fn measured(ttft: f32, latency: f32) -> Signals {
        Signals {
            ttft_ms: ttft,
            latency_ms: latency,
            ..Signals::default()
        }
    }

    fn reason(d: &Decision) -> &str {
        match d {
            Decision::Route { reason, .. } => reason,
            Decision::Reject { message, .. } => message,
        }
    }

    const NO_EXPLORATION: &str = r#"{"exploration": 0}"#;

    #[test]
    fn fastest_ttft_first_then_by_speed() {
        let h = harness(NO_EXPLORATION);
        let req = RequestBuilder::chat("m").user("hi").build();
        let s = [
            measured(300.0, 900.0),
            measured(100.0, 2000.0),
            measured(200.0, 400.0),
            Signals::default(),
        ];
        assert_eq!(h.route_ids(&req, &s), Ok(vec!["b", "c", "a"]));
        assert_eq!(reason(&h.route(&req, &s)), "latency:fastest");

        // Total latency instead, when configured.
        let h = harness(r#"{"exploration": 0, "metric": "latency"}"#);
        assert_eq!(h.route_ids(&req, &s), Ok(vec!["c", "a", "b"]));
    }

    #[test]
    fn ttft_falls_back_to_latency_for_targets_without_streams() {
        let h = harness(NO_EXPLORATION);
        let req = RequestBuilder::chat("m").build();
        let s = [
            measured(0.0, 150.0),
            measured(200.0, 900.0),
            measured(120.0, 500.0),
            Signals::default(),
        ];
        assert_eq!(h.route_ids(&req, &s), Ok(vec!["c", "a", "b"]));
    }

    #[test]
    fn unmeasured_targets_are_tried_first_and_ties_go_by_price() {
        let h = harness(NO_EXPLORATION);
        let req = RequestBuilder::chat("m").build();
        let s = [
            measured(50.0, 100.0),
            Signals::default(),
            Signals::default(),
            Signals::default(),
        ];
        let d = h.route(&req, &s);
        assert_eq!(reason(&d), "latency:unmeasured");
        assert_eq!(h.route_ids(&req, &s), Ok(vec!["b", "c", "a"]));
    }

    #[test]
    fn unhealthy_and_rate_limited_targets_go_last_whatever_their_speed() {
        let h = harness(NO_EXPLORATION);
        let req = RequestBuilder::chat("m").build();
        let mut s = [
            measured(10.0, 20.0),
            measured(20.0, 40.0),
            measured(500.0, 900.0),
            Signals::default(),
        ];
        s[0].healthy = false;
        s[1].rate_limited_ms = 1_000;
        assert_eq!(h.route_ids(&req, &s), Ok(vec!["c", "b", "a"]));
    }

    #[test]
    fn aliases_span_models_and_context_windows_filter() {
        let h = harness(r#"{"exploration": 0, "aliases": {"any": ["m", "n"]}}"#);
        let req = RequestBuilder::chat("any").build();
        let s = [
            measured(30.0, 0.0),
            measured(40.0, 0.0),
            measured(50.0, 0.0),
            measured(20.0, 0.0),
        ];
        assert_eq!(h.route_ids(&req, &s), Ok(vec!["other", "a", "b", "c"]));
        // 10,000 tokens do not fit `c`'s 8,000 window.
        let long = RequestBuilder::chat("m")
            .input_tokens(9_000)
            .max_output_tokens(1_000)
            .build();
        assert_eq!(h.route_ids(&long, &s), Ok(vec!["a", "b"]));
        let huge = RequestBuilder::chat("m").input_tokens(200_000).build();
        assert!(matches!(
            h.route_healthy(&huge),
            Decision::Reject { status: 400, .. }
        ));
        // A target id names that target.
        let by_id = RequestBuilder::chat("b").build();
        assert_eq!(h.route_ids(&by_id, &s), Ok(vec!["b"]));
        let unknown = RequestBuilder::chat("gpt-9").build();
        assert!(matches!(
            h.route_healthy(&unknown),
            Decision::Reject { status: 404, .. }
        ));
    }

    #[test]
    fn exploration_sends_a_small_random_share_to_the_others() {
        reset();
        let h = harness(r#"{"exploration": 0.1}"#);
        let req = RequestBuilder::chat("m").build();
        let s = [
            measured(300.0, 0.0),
            measured(100.0, 0.0),
            measured(200.0, 0.0),
            Signals::default(),
        ];
        let mut firsts = [0u32; 3];
        let n = 20_000;
        for _ in 0..n {
            let d = h.route(&req, &s);
            firsts[d.primary().unwrap() as usize] += 1;
            assert_eq!(d.targets().len(), 3);
        }
        let share = |c: u32| f64::from(c) / f64::from(n);
        assert!((share(firsts[1]) - 0.9).abs() < 0.01, "{firsts:?}");
        assert!((share(firsts[0]) - 0.05).abs() < 0.01, "{firsts:?}");
        assert!((share(firsts[2]) - 0.05).abs() < 0.01, "{firsts:?}");
    }

    #[test]
    fn a_lone_available_target_is_never_explored_away_from() {
        let h = harness(r#"{"exploration": 0.5}"#);
        let req = RequestBuilder::chat("m").build();
        let mut s = [Signals::unhealthy(); 4];
        s[2] = measured(900.0, 0.0);
        for _ in 0..100 {
            assert_eq!(h.route(&req, &s).primary(), Some(2));
        }
    }

    #[test]
    fn bad_configs_are_rejected_naming_the_field() {
        let cases = [
            (
                r#"{"exploration": 0.7}"#,
                "`exploration`: must be within [0, 0.5], got 0.7",
            ),
            (
                r#"{"exploration": -0.1}"#,
                "`exploration`: must be within [0, 0.5]",
            ),
            (r#"{"metric": "p99"}"#, "`metric`: unknown variant `p99`"),
            (
                r#"{"aliases": {"fast": []}}"#,
                "`aliases.fast`: names no model",
            ),
            (
                r#"{"aliases": {"fast": ["m", "gpt-9"]}}"#,
                "`aliases.fast[1]`: no target serves `gpt-9`",
            ),
            (r#"{"explore": 0.1}"#, "unknown field `explore`"),
        ];
        for (config, expected) in cases {
            let err = match Harness::<LatencyPolicy>::new(config, targets()) {
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

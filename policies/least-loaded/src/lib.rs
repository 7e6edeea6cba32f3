//! The least-loaded policy: the target with the fewest requests in flight relative to
//! its capacity, ties broken by price.
//!
//! Use it to spread load over deployments with hard concurrency limits — self-hosted
//! models (vLLM, llama.cpp) with a fixed number of slots, or provider accounts with a
//! concurrency quota — so that none queues while another sits idle, and the cheapest
//! wins whenever they are equally busy (in particular when all are idle).
//!
//! For each request:
//!
//! 1. **Who can serve it**: the targets whose model (or id) equals the requested
//!    model; when the requested model is one of the config's `aliases`, the targets of
//!    every model the alias names. Nothing serves it: 404.
//! 2. **Room for it**: targets whose context window holds the estimated input plus
//!    the output budget (`max_tokens`, else `default_output_tokens`). None: 400.
//! 3. **Order**: available targets (circuit closed, not rate-limited) first, then
//!    rate-limited ones, then those whose circuit is open (unhealthy last). Within each
//!    group by load, lowest first; equal loads by the request's estimated cost,
//!    cheapest first.
//!
//! **Load** is in-flight requests divided by capacity: the target's `max_in_flight`
//! in the gateway config when set, else this policy's `capacity` entry for the target,
//! else none — then the raw in-flight count is the load, so such a target looks as
//! loaded as a target with capacity 1 and the same count. Give every target a capacity
//! (in either place) for a fair comparison.
//!
//! The reason is always `least-loaded`.
//!
//! Config (all optional; see `examples/policies/least-loaded.json`):
//!
//! ```json
//! { "aliases": { "mini": ["gpt-4o-mini", "mistral-small"] },
//!   "capacity": { "vllm-qwen-coder": 8 },
//!   "default_output_tokens": 512 }
//! ```
//!
//! Rejected at activation, naming the field: a `capacity` for an unknown target id or
//! of 0, an alias naming no model or a model no target serves.

use serde::Deserialize;
use signalbox_sdk::*;
use std::collections::BTreeMap;

/// The policy's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Alias → the models (or target ids) it stands for.
    #[serde(default)]
    pub aliases: BTreeMap<String, Vec<String>>,
    /// Target id → requests it can take at once, for targets whose `max_in_flight` is
    /// not set in the gateway config (the gateway's value wins when set).
    #[serde(default)]
    pub capacity: BTreeMap<String, u32>,
    /// Output tokens assumed when the client sets no `max_tokens`, for the context check
    /// and the price tie-break.
    #[serde(default = "default_output_tokens")]
    pub default_output_tokens: u32,
}

fn default_output_tokens() -> u32 {
    512
}

fn invalid(path: impl std::fmt::Display, message: impl std::fmt::Display) -> String {
    format!("invalid config at `{path}`: {message}")
}

/// See the crate documentation.
pub struct LeastLoadedPolicy {
    default_output_tokens: u32,
    /// Requested model, target id or alias → the target indices serving it.
    serving: BTreeMap<String, Vec<u32>>,
    /// Per target index: the configured capacity, 0 when none.
    capacity: Vec<u32>,
}

/// One candidate with what it is ranked by.
struct Ranked {
    index: u32,
    /// 0 available, 1 rate-limited, 2 circuit open.
    class: u8,
    load: f32,
    cost: f64,
}

impl Policy for LeastLoadedPolicy {
    type Config = Config;
    // Stateless: it decides from the request and the live signals alone.
    const OBSERVES_OUTCOMES: bool = false;

    fn activate(config: Config, targets: &[Target]) -> Result<Self, String> {
        let mut capacity = vec![0; targets.len()];
        for (id, &slots) in &config.capacity {
            let Some(index) = targets.iter().position(|t| &t.id == id) else {
                return Err(invalid(
                    format_args!("capacity.{id}"),
                    format_args!("no target has the id `{id}`"),
                ));
            };
            if slots == 0 {
                return Err(invalid(
                    format_args!("capacity.{id}"),
                    "must be at least 1 (leave the target out for no capacity)",
                ));
            }
            capacity[index] = slots;
        }
        Ok(LeastLoadedPolicy {
            default_output_tokens: config.default_output_tokens,
            serving: serving_map(&config.aliases, targets)?,
            capacity,
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
                load: self.load(c.index, c.signals),
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
                .then(a.load.total_cmp(&b.load))
                .then(a.cost.total_cmp(&b.cost))
        });
        Decision::route(ranked.iter().map(|r| r.index), "least-loaded")
    }
}

impl LeastLoadedPolicy {
    fn load(&self, index: u32, signals: &Signals) -> f32 {
        let capacity = match signals.capacity {
            0 => self.capacity.get(index as usize).copied().unwrap_or(0),
            gateway => gateway,
        };
        match capacity {
            0 => signals.in_flight as f32,
            c => signals.in_flight as f32 / c as f32,
        }
    }
}

export_policy!(LeastLoadedPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use signalbox_sdk::testing::Harness;

    fn targets() -> Vec<Target> {
        vec![
            Target::new("pricey", "m").price(3.0, 6.0),
            Target::new("cheap", "m").price(1.0, 2.0),
            Target::new("small", "m")
                .price(0.5, 1.0)
                .context_window(4_000),
            Target::new("other", "n").price(0.1, 0.2),
        ]
    }

    fn harness(config: &str) -> Harness<LeastLoadedPolicy> {
        Harness::new(config, targets()).unwrap()
    }

    fn busy(in_flight: u32, capacity: u32) -> Signals {
        Signals {
            in_flight,
            capacity,
            ..Signals::default()
        }
    }

    #[test]
    fn idle_targets_tie_and_go_by_price() {
        let h = harness("{}");
        let req = RequestBuilder::chat("m").user("hi").build();
        assert_eq!(
            h.route_ids(&req, &[Signals::default(); 4]),
            Ok(vec!["small", "cheap", "pricey"])
        );
    }

    #[test]
    fn load_is_in_flight_relative_to_capacity() {
        let h = harness("{}");
        let req = RequestBuilder::chat("m").build();
        // pricey: 4/64, cheap: 2/8, small: 1/2.
        let s = [busy(4, 64), busy(2, 8), busy(1, 2), Signals::default()];
        assert_eq!(h.route_ids(&req, &s), Ok(vec!["pricey", "cheap", "small"]));
        // Without any capacity, raw counts compare.
        let s = [busy(4, 0), busy(2, 0), busy(3, 0), Signals::default()];
        assert_eq!(h.route_ids(&req, &s), Ok(vec!["cheap", "small", "pricey"]));
    }

    #[test]
    fn configured_capacity_stands_in_when_the_gateway_has_none() {
        let h = harness(r#"{"capacity": {"pricey": 100, "cheap": 4}}"#);
        let req = RequestBuilder::chat("m").build();
        // pricey 10/100 = 0.1; cheap 1/4 = 0.25; small has no capacity: 1 in flight = 1.0.
        let s = [busy(10, 0), busy(1, 0), busy(1, 0), Signals::default()];
        assert_eq!(h.route_ids(&req, &s), Ok(vec!["pricey", "cheap", "small"]));
        // The gateway's own capacity wins over the config's.
        let s = [busy(10, 10), busy(1, 0), busy(0, 0), Signals::default()];
        assert_eq!(h.route_ids(&req, &s), Ok(vec!["small", "cheap", "pricey"]));
    }

    #[test]
    fn unhealthy_last_rate_limited_before_them() {
        let h = harness("{}");
        let req = RequestBuilder::chat("m").build();
        let mut s = [
            busy(5, 10),
            Signals::unhealthy(),
            busy(0, 10),
            Signals::default(),
        ];
        s[2].rate_limited_ms = 100;
        assert_eq!(h.route_ids(&req, &s), Ok(vec!["pricey", "small", "cheap"]));
    }

    #[test]
    fn models_aliases_and_context_windows() {
        let h = harness(r#"{"aliases": {"any": ["n", "m"]}}"#);
        let any = RequestBuilder::chat("any").build();
        assert_eq!(
            h.route_ids(&any, &[Signals::default(); 4]),
            Ok(vec!["other", "small", "cheap", "pricey"])
        );
        let long = RequestBuilder::chat("m").input_tokens(5_000).build();
        assert_eq!(
            h.route_ids(&long, &[Signals::default(); 4]),
            Ok(vec!["cheap", "pricey"])
        );
        let unknown = RequestBuilder::chat("gpt-9").build();
        assert!(matches!(
            h.route_healthy(&unknown),
            Decision::Reject { status: 404, .. }
        ));
        // No context window means no limit.
        let huge = RequestBuilder::chat("n").input_tokens(u32::MAX).build();
        assert_eq!(
            h.route_ids(&huge, &[Signals::default(); 4]),
            Ok(vec!["other"])
        );
    }

    #[test]
    fn bad_configs_are_rejected_naming_the_field() {
        let cases = [
            (
                r#"{"capacity": {"nope": 4}}"#,
                "`capacity.nope`: no target has the id `nope`",
            ),
            (
                r#"{"capacity": {"cheap": 0}}"#,
                "`capacity.cheap`: must be at least 1",
            ),
            (r#"{"capacity": {"cheap": -2}}"#, "`capacity.cheap`"),
            (
                r#"{"aliases": {"x": ["m", "gpt-9"]}}"#,
                "`aliases.x[1]`: no target serves `gpt-9`",
            ),
            (r#"{"aliases": {"x": []}}"#, "`aliases.x`: names no model"),
            (r#"{"capacities": {}}"#, "unknown field `capacities`"),
        ];
        for (config, expected) in cases {
            let err = match Harness::<LeastLoadedPolicy>::new(config, targets()) {
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

//! A learned complexity router.
//!
//! Scores how much a request needs the strong model — the expected gain in quality
//! from the strong model over the weak one, in `[0, 1]` — from features of its last user
//! message (hashed words, word pairs and word pieces, length and math, code and
//! answer-option markers; see [`features`]), with a logistic regression trained
//! offline by `tools/train-complexity` on part of the routing-eval development data
//! (see `docs/routing-quality.md`). The weights are embedded in the component; scoring
//! a prompt takes microseconds and reads no state.
//!
//! The request goes to the `strong` model when the score exceeds `threshold`, else to
//! the highest middle tier whose `above` the score exceeds, else to `weak`. With
//! `cost_aware`, each of those thresholds is first scaled by how much dearer that model
//! is than `weak` for this request, relative to a typical request (see [`cost`]): the
//! model also predicts the length of the answer, and a prompt whose answer will be
//! long must promise more gain to be worth the strong model. Within the
//! chosen model, targets are ordered cheapest first for this request; the other
//! configured models follow as fallbacks (stronger ones first, then weaker ones), and
//! available targets go before unhealthy or rate-limited ones. Targets whose context
//! window is too small for the request are left out. The model the client asked for is
//! not consulted: every request the binding sees is routed among the configured models.
//!
//! Config:
//!
//! ```json
//! { "strong": "gpt-4-1106-preview",
//!   "weak": "mistralai/Mixtral-8x7B-Instruct-v0.1",
//!   "threshold": 0.5,
//!   "tiers": [{ "model": "gemini-1.5-flash-002", "above": 0.3 }],
//!   "default_output_tokens": 512,
//!   "cost_aware": false }
//! ```
//!
//! `threshold` and every `above` are numbers in `[0, 1]`; `tiers` (optional) are middle
//! tiers in ascending order of `above`; `default_output_tokens` (optional, default 512)
//! is assumed for the price and context checks when a request sets no `max_tokens`;
//! `cost_aware` (optional, default false) scales the thresholds by cost as above.
//! Every model named must be served by some target.

pub mod cost;
pub mod features;
pub mod model;

use cost::{Prices, cost_factor};
use model::{Estimate, Model};
use serde::Deserialize;
use signalbox_sdk::*;

/// The trained weights (written by `tools/train-complexity`).
pub static WEIGHTS: &[u8] = include_bytes!("../weights.bin");

/// The policy's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The model for requests scored above `threshold`.
    pub strong: String,
    /// The model for requests scored below every tier.
    pub weak: String,
    /// The score above which a request goes to `strong`, in `[0, 1]`.
    pub threshold: f64,
    /// Middle tiers, between `weak` and `strong`, in ascending order of `above`.
    #[serde(default)]
    pub tiers: Vec<Tier>,
    /// Output tokens assumed when the client sets no `max_tokens`.
    #[serde(default = "default_output_tokens")]
    pub default_output_tokens: u32,
    /// Scale each threshold by the chosen model's extra cost for the request (see
    /// [`cost`]).
    #[serde(default)]
    pub cost_aware: bool,
}

/// A middle tier: requests scored above `above` (and not above the stronger tiers'
/// thresholds) go to `model`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tier {
    /// The model of this tier.
    pub model: String,
    /// The score above which requests reach this tier, in `[0, 1]`.
    pub above: f64,
}

fn default_output_tokens() -> u32 {
    512
}

/// One rung of the ladder: a model and the score a request must exceed to reach it.
#[derive(Debug)]
struct Rung {
    model: String,
    above: f64,
    /// The prices of the model's cheapest target for the reference request.
    prices: Prices,
}

/// See the crate documentation.
#[derive(Debug)]
pub struct ComplexityPolicy {
    model: Model<'static>,
    /// Weakest first; the first rung's `above` is negative infinity.
    ladder: Vec<Rung>,
    default_output_tokens: u32,
    cost_aware: bool,
}

fn check_unit(field: &str, value: f64) -> Result<(), String> {
    if (0.0..=1.0).contains(&value) {
        Ok(())
    } else {
        Err(format!("`{field}` must be a number in [0, 1], not {value}"))
    }
}

impl ComplexityPolicy {
    /// The score of `text`: the strong model's expected gain in quality, in `[0, 1]`.
    pub fn score(&self, text: &str) -> f64 {
        self.model.score(text)
    }

    /// The score a request of `tokens` (input, expected output) must exceed to reach
    /// `rung` (not the first): its `above`, scaled by cost when cost-aware.
    fn bar(&self, rung: usize, tokens: (f64, f64)) -> f64 {
        let above = self.ladder[rung].above;
        if !self.cost_aware {
            return above;
        }
        let factor = cost_factor(
            self.ladder[rung].prices,
            self.ladder[0].prices,
            tokens,
            self.model.reference(),
        );
        above * factor
    }

    /// The index in the ladder of the rung a request goes to: the highest whose bar
    /// its gain exceeds.
    fn rung_for(&self, estimate: Estimate, tokens: (f64, f64)) -> usize {
        (1..self.ladder.len())
            .rev()
            .find(|&r| estimate.gain > self.bar(r, tokens))
            .unwrap_or(0)
    }
}

impl Policy for ComplexityPolicy {
    type Config = Config;
    // Stateless: it decides from the request and the live signals alone.
    const OBSERVES_OUTCOMES: bool = false;

    fn activate(config: Config, targets: &[Target]) -> Result<Self, String> {
        let model = Model::parse(WEIGHTS)?;
        // At activation, off the request path and under its longer deadline.
        std::hint::black_box(model.warm());
        check_unit("threshold", config.threshold)?;
        // Each rung's prices: its cheapest target's for the reference request (zero for
        // a model no target serves, which is refused below).
        let (ref_in, ref_out) = model.reference();
        let prices_of = |name: &str| {
            targets
                .iter()
                .filter(|t| t.model == name)
                .map(|t| Prices {
                    input: t.input_price,
                    output: t.output_price,
                })
                .min_by(|a, b| {
                    let cost = |p: &Prices| ref_in * p.input + ref_out * p.output;
                    cost(a).total_cmp(&cost(b))
                })
                .unwrap_or(Prices {
                    input: 0.0,
                    output: 0.0,
                })
        };
        let mut ladder = vec![Rung {
            model: config.weak.clone(),
            above: f64::NEG_INFINITY,
            prices: prices_of(&config.weak),
        }];
        for (i, tier) in config.tiers.iter().enumerate() {
            check_unit(&format!("tiers[{i}].above"), tier.above)?;
            if let Some(previous) = config.tiers[..i].last()
                && tier.above < previous.above
            {
                return Err(format!(
                    "`tiers[{i}].above` is {}, below the previous tier's {}: list tiers in ascending order",
                    tier.above, previous.above
                ));
            }
            ladder.push(Rung {
                model: tier.model.clone(),
                above: tier.above,
                prices: prices_of(&tier.model),
            });
        }
        ladder.push(Rung {
            model: config.strong.clone(),
            above: config.threshold,
            prices: prices_of(&config.strong),
        });

        let fields = std::iter::once("weak".to_owned())
            .chain((0..config.tiers.len()).map(|i| format!("tiers[{i}].model")))
            .chain(std::iter::once("strong".to_owned()));
        for (i, (rung, field)) in ladder.iter().zip(fields).enumerate() {
            if !targets.iter().any(|t| t.model == rung.model) {
                let mut served: Vec<&str> = targets.iter().map(|t| t.model.as_str()).collect();
                served.sort_unstable();
                served.dedup();
                return Err(format!(
                    "`{field}` names `{}`, which no target serves (targets serve: {})",
                    rung.model,
                    served.join(", ")
                ));
            }
            if ladder[..i].iter().any(|r| r.model == rung.model) {
                return Err(format!("`{field}` names `{}` twice", rung.model));
            }
        }
        Ok(ComplexityPolicy {
            model,
            ladder,
            default_output_tokens: config.default_output_tokens,
            cost_aware: config.cost_aware,
        })
    }

    fn route(&self, req: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        let text = req.last_user_text().unwrap_or_default();
        let estimate = self.model.estimate(&text);
        let expected_output = match req.max_output_tokens {
            Some(cap) => estimate.output_tokens.min(f64::from(cap)),
            None => estimate.output_tokens,
        };
        let tokens = (f64::from(req.input_tokens), expected_output);
        let chosen = self.rung_for(estimate, tokens);
        let output = req.max_output_tokens.unwrap_or(self.default_output_tokens);
        let needed = req.input_tokens.saturating_add(output);

        // The chosen rung, then stronger rungs upward, then weaker ones downward.
        let order = (chosen..self.ladder.len()).chain((0..chosen).rev());
        let mut indices = Vec::with_capacity(snapshot.len());
        let mut unavailable = Vec::new();
        for rung in order {
            let serving = snapshot
                .candidates()
                .serving(&self.ladder[rung].model)
                .fitting(needed)
                .by_price(req.input_tokens, output);
            for c in serving {
                if c.signals.available() {
                    indices.push(c.index);
                } else {
                    unavailable.push(c.index);
                }
            }
        }
        indices.append(&mut unavailable);
        if indices.is_empty() {
            return Decision::reject(
                400,
                format!("this request needs about {needed} tokens, more than any target accepts"),
            );
        }
        let score = estimate.gain;
        let model = &self.ladder[chosen].model;
        // The bar that decided: the chosen rung's, or the next one's when it was missed.
        let (relation, decisive) = if chosen + 1 == self.ladder.len() {
            (">", chosen)
        } else {
            ("<=", chosen + 1)
        };
        let reason = if self.cost_aware {
            format!(
                "complexity {score:.3} {relation} {:.3} ({} scaled by cost, answer ~{expected_output:.0} tokens): {model}",
                self.bar(decisive, tokens),
                self.ladder[decisive].above
            )
        } else {
            format!(
                "complexity {score:.3} {relation} {}: {model}",
                self.ladder[decisive].above
            )
        };
        Decision::route(indices, reason)
    }
}

export_policy!(ComplexityPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use signalbox_sdk::testing::Harness;

    fn targets() -> Vec<Target> {
        vec![
            Target::new("big", "strong-model")
                .price(10.0, 30.0)
                .context_window(128_000),
            Target::new("mid", "mid-model")
                .price(1.0, 1.0)
                .context_window(32_000),
            Target::new("small", "weak-model")
                .price(0.2, 0.2)
                .context_window(8_000),
        ]
    }

    fn harness(threshold: f64) -> Harness<ComplexityPolicy> {
        Harness::new(
            &format!(
                r#"{{"strong": "strong-model", "weak": "weak-model", "threshold": {threshold}}}"#
            ),
            targets(),
        )
        .unwrap()
    }

    #[test]
    fn threshold_splits_strong_from_weak() {
        let req = RequestBuilder::chat("auto").user("What is 2 + 2?").build();
        assert_eq!(harness(0.0).route_healthy(&req).targets(), &[0, 2]);
        assert_eq!(harness(1.0).route_healthy(&req).targets(), &[2, 0]);
        let score = harness(0.5).policy().score("What is 2 + 2?");
        assert!((0.0..=1.0).contains(&score), "{score}");
    }

    #[test]
    fn tiers_sit_between_weak_and_strong() {
        let h = Harness::<ComplexityPolicy>::new(
            r#"{"strong": "strong-model", "weak": "weak-model", "threshold": 1.0,
                "tiers": [{"model": "mid-model", "above": 0.0}]}"#,
            targets(),
        )
        .unwrap();
        let req = RequestBuilder::chat("auto").user("Prove it.").build();
        assert_eq!(
            h.route_ids(&req, &[Signals::default(); 3]),
            Ok(vec!["mid", "big", "small"])
        );
    }

    #[test]
    fn cost_aware_thresholds_weigh_the_request_s_extra_cost() {
        let text = "Prove that there are infinitely many primes p such that p + 2 is also prime, or explain why this is open.";
        let config = |threshold: f64, cost_aware: bool| {
            format!(
                r#"{{"strong": "strong-model", "weak": "weak-model", "threshold": {threshold}, "cost_aware": {cost_aware}}}"#
            )
        };
        let gain = harness(0.5).policy().score(text);
        assert!(gain > 0.0, "{gain}");
        let threshold = gain / 2.0;
        let route = |cost_aware: bool, input: u32, max_tokens: u32| {
            let h = Harness::<ComplexityPolicy>::new(&config(threshold, cost_aware), targets())
                .unwrap();
            let req = RequestBuilder::chat("auto")
                .user(text)
                .input_tokens(input)
                .max_output_tokens(max_tokens)
                .build();
            h.route_ids(&req, &[Signals::default(); 3]).unwrap()[0].to_owned()
        };
        // Plain thresholds ignore the cost: strong either way.
        assert_eq!(route(false, 10, 5), "big");
        assert_eq!(route(false, 7_000, 900), "big");
        // Cost-aware: a request far dearer than the reference must promise more gain
        // than this prompt does; a far cheaper one clears a lowered bar.
        let reference = harness(0.5).policy().model.reference();
        let (ref_in, ref_out) = reference;
        assert!(7_000.0 > 10.0 * ref_in && 900.0 > 2.0 * ref_out);
        assert_eq!(route(true, 7_000, 900), "small");
        assert_eq!(route(true, 10, 5), "big");
    }

    #[test]
    fn unavailable_and_too_small_targets() {
        let req = RequestBuilder::chat("auto")
            .user("hi")
            .input_tokens(20_000)
            .build();
        // The weak model's window is too small: the stronger one serves.
        assert_eq!(harness(1.0).route_healthy(&req).targets(), &[0]);
        let req = RequestBuilder::chat("auto").user("hi").build();
        let signals = [Signals::default(), Signals::default(), Signals::unhealthy()];
        assert_eq!(
            harness(1.0).route_ids(&req, &signals),
            Ok(vec!["big", "small"])
        );
        let req = RequestBuilder::chat("auto").input_tokens(500_000).build();
        assert!(matches!(
            harness(0.5).route_healthy(&req),
            Decision::Reject { status: 400, .. }
        ));
    }

    #[test]
    fn bad_configs_name_the_field() {
        let cases = [
            (
                r#"{"strong": "strong-model", "weak": "weak-model", "threshold": 1.5}"#,
                "`threshold`",
            ),
            (
                r#"{"strong": "gpt-5", "weak": "weak-model", "threshold": 0.5}"#,
                "`strong` names `gpt-5`",
            ),
            (
                r#"{"strong": "strong-model", "weak": "strong-model", "threshold": 0.5}"#,
                "twice",
            ),
            (
                r#"{"strong": "strong-model", "weak": "weak-model"}"#,
                "threshold",
            ),
            (
                r#"{"strong": "strong-model", "weak": "weak-model", "threshold": 0.5, "tiers": [{"model": "mid-model", "above": -1}]}"#,
                "`tiers[0].above`",
            ),
            (
                r#"{"strong": "strong-model", "weak": "weak-model", "threshold": 0.5, "tiers": [{"model": "nope", "above": 0.2}]}"#,
                "`tiers[0].model` names `nope`",
            ),
            (
                r#"{"strong": "strong-model", "weak": "weak-model", "threshold": 0.5, "treshold": 1}"#,
                "unknown field",
            ),
        ];
        for (config, needle) in cases {
            let err = Harness::<ComplexityPolicy>::new(config, targets())
                .err()
                .unwrap();
            assert!(err.contains(needle), "{config}: {err}");
        }
        let err = Harness::<ComplexityPolicy>::new(
            r#"{"strong": "x", "weak": "weak-model", "threshold": 0.5}"#,
            targets(),
        )
        .err()
        .unwrap();
        assert!(err.contains("mid-model, strong-model, weak-model"), "{err}");
    }

    #[test]
    fn embedded_weights_parse() {
        let model = Model::parse(WEIGHTS).unwrap();
        assert!(model.bits() >= 10);
    }
}

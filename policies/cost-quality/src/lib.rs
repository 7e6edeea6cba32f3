//! The cost-quality routing policy: each request goes to the cheapest healthy target
//! of the quality tier it needs.
//!
//! **When to use it**: a tenant with models of clearly different strength and price
//! (a small fast model, a mid-range one, a frontier one) whose clients send `auto`
//! and let the gateway pick. Plain chit-chat lands on the cheap tier; code,
//! mathematics, multi-step reasoning, tool use and long inputs climb the tiers.
//!
//! Every target to route to gets a tier in the config (1 is the weakest; unlisted
//! targets are never chosen). The required tier is `signals.base` plus the weight of
//! each feature the request shows, or the tier the client names with
//! `x-signalbox-tag: tier:N` (or metadata `tier`). The primary is the cheapest
//! available target at or above that tier; fallbacks go upward in tier, cheapest first
//! within a tier, and unhealthy or rate-limited targets come last. Nothing below the
//! required tier is listed. The reason says what was estimated and why, e.g.
//! `tier 3: code+math`.
//!
//! Config (see `examples/policies/cost-quality.json`):
//!
//! ```json
//! { "tiers": { "groq-llama-8b": 1, "openai-gpt-4o-mini": 2, "openai-gpt-4o": 4 },
//!   "signals": { "base": 1, "code": 1, "math": 1, "reasoning": 1, "tools": 1,
//!                "long": 1, "long_tokens": [2000, 16000], "scan_bytes": 16384 },
//!   "default_output_tokens": 512 }
//! ```
//!
//! Rejections: 400 when the request fits no tiered target's context window; 503 when
//! no target has a tier (cannot happen with a valid config and unchanged targets).
//!
//! The logic lives in `signalbox-policy-cost-quality-core`, which the guardrail policy
//! shares.

use signalbox_policy_cost_quality_core::{Config, Tiering};
use signalbox_sdk::*;

/// See the crate documentation.
pub struct CostQualityPolicy {
    tiering: Tiering,
}

impl Policy for CostQualityPolicy {
    type Config = Config;
    // Stateless: it decides from the request and the live signals alone.
    const OBSERVES_OUTCOMES: bool = false;

    fn activate(config: Config, targets: &[Target]) -> Result<Self, String> {
        Ok(CostQualityPolicy {
            tiering: Tiering::new(config, targets, "")?,
        })
    }

    fn route(&self, request: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        self.tiering.route(request, snapshot)
    }
}

export_policy!(CostQualityPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use signalbox_sdk::testing::Harness;

    /// The ten sample targets `signalbox policy check` uses, by id and price.
    fn targets() -> Vec<Target> {
        vec![
            Target::new("openai-gpt-4o", "gpt-4o").price(2.5, 10.0),
            Target::new("openai-gpt-4o-mini", "gpt-4o-mini").price(0.15, 0.6),
            Target::new("azure-gpt-4o-mini-eu", "gpt-4o-mini").price(0.165, 0.66),
            Target::new("anthropic-sonnet", "claude-sonnet-4").price(3.0, 15.0),
            Target::new("anthropic-haiku", "claude-haiku-3.5").price(0.8, 4.0),
            Target::new("together-llama-70b", "llama-3.3-70b").price(0.88, 0.88),
            Target::new("groq-llama-8b", "llama-3.1-8b").price(0.05, 0.08),
            Target::new("vllm-qwen-coder", "qwen2.5-coder-32b")
                .price(0.0, 0.0)
                .context_window(32_768),
            Target::new("openai-o3-mini", "o3-mini").price(1.1, 4.4),
            Target::new("mistral-small-eu", "mistral-small")
                .price(0.1, 0.3)
                .context_window(32_000),
        ]
    }

    fn example() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/policies/cost-quality.json"
        ))
        .unwrap()
    }

    fn harness() -> Harness<CostQualityPolicy> {
        Harness::new(&example(), targets()).unwrap()
    }

    #[test]
    fn the_example_config_routes_by_tier() {
        let h = harness();
        let chat = RequestBuilder::chat("auto")
            .user("Hi! How are you?")
            .build();
        // The free self-hosted model (tier 2) is the cheapest at or above tier 1; the
        // fallbacks then climb from tier 1, cheapest first within each tier.
        assert_eq!(
            h.route_healthy(&chat),
            Decision::route(
                [7, 6, 9, 1, 2, 5, 4, 8, 0, 3],
                "tier 1: plain, served at tier 2"
            )
        );

        let code = RequestBuilder::chat("auto")
            .user("Why does this fail?\n```rust\nfn main() { let v: Vec<u8> = vec![]; v[0]; }\n```")
            .build();
        let ids = h.route_ids(&code, &vec![Signals::default(); 10]).unwrap();
        // Tier 2 (code); the free self-hosted coder is the cheapest there.
        assert_eq!(ids[0], "vllm-qwen-coder");
        assert!(!ids.contains(&"groq-llama-8b") && !ids.contains(&"mistral-small-eu"));

        let hard = RequestBuilder::chat("auto")
            .user("Prove step by step that the integral of x^2 from 0 to 1 is 1/3.")
            .build();
        match h.route_healthy(&hard) {
            Decision::Route { targets, reason } => {
                assert_eq!(reason, "tier 4: math+reasoning");
                assert_eq!(targets, [8, 0, 3]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn an_unhealthy_tier_falls_upward_never_down() {
        let h = harness();
        let req = RequestBuilder::chat("auto")
            .user("hello")
            .tag("tier:4")
            .build();
        let mut signals = vec![Signals::default(); 10];
        signals[8] = Signals::unhealthy();
        assert_eq!(
            h.route_ids(&req, &signals),
            Ok(vec!["openai-gpt-4o", "anthropic-sonnet", "openai-o3-mini"])
        );
    }

    #[test]
    fn too_long_requests_are_rejected_with_400() {
        let h =
            Harness::<CostQualityPolicy>::new(r#"{"tiers": {"vllm-qwen-coder": 1}}"#, targets())
                .unwrap();
        let req = RequestBuilder::chat("auto")
            .user("hi")
            .input_tokens(40_000)
            .build();
        let (status, message) = h
            .route_ids(&req, &vec![Signals::default(); 10])
            .unwrap_err();
        assert_eq!(status, 400);
        assert!(message.contains("40512 tokens"), "{message}");
    }

    #[test]
    fn a_broken_config_is_rejected_naming_the_field() {
        for (config, needle) in [
            (
                r#"{"tiers": {"gpt-5": 3}}"#,
                "`tiers.gpt-5`: no target has this id",
            ),
            (
                r#"{"tiers": {"groq-llama-8b": 0}}"#,
                "`tiers.groq-llama-8b`: tiers start at 1",
            ),
            (r#"{"tiers": {"groq-llama-8b": -1}}"#, "tiers.groq-llama-8b"),
            (
                r#"{"tiers": {"groq-llama-8b": 1}, "signals": {"base": 2}}"#,
                "`signals.base`",
            ),
            (
                r#"{"tiers": {"groq-llama-8b": 1}, "signals": {"long_tokens": [0]}}"#,
                "`signals.long_tokens`",
            ),
            (r#"{"signals": {}}"#, "missing field `tiers`"),
            (
                r#"{"tiers": {"groq-llama-8b": 1}, "extra": true}"#,
                "unknown field `extra`",
            ),
        ] {
            let err = Harness::<CostQualityPolicy>::new(config, targets())
                .err()
                .unwrap_or_else(|| panic!("accepted {config}"));
            assert!(err.contains(needle), "{config}: {err}");
        }
    }
}

//! The JSON configuration, as written by whoever binds the policy.
//!
//! Plain serde structs that reject unknown keys; [`Tiering::new`](crate::Tiering::new)
//! validates them once, at activation, into the form `route` uses.

use serde::Deserialize;
use std::collections::BTreeMap;

/// The cost-quality configuration.
///
/// ```json
/// { "tiers": { "groq-llama-8b": 1, "openai-gpt-4o-mini": 2, "openai-gpt-4o": 4 },
///   "signals": { "base": 1, "code": 1, "math": 1, "reasoning": 1, "tools": 1,
///                "long": 1, "long_tokens": [2000, 16000] },
///   "default_output_tokens": 512 }
/// ```
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Target id → quality tier, 1 (lowest) and up. Targets not listed are never chosen.
    pub tiers: BTreeMap<String, u8>,
    /// How a request's required tier is estimated.
    #[serde(default)]
    pub signals: SignalWeights,
    /// Output tokens assumed when the client sets no `max_tokens`: for the price
    /// comparison and the context-window check.
    #[serde(default = "default_output_tokens")]
    pub default_output_tokens: u32,
}

fn default_output_tokens() -> u32 {
    512
}

/// The required tier is `base` plus the weight of every feature the request shows,
/// capped at the highest configured tier. Weights are whole tiers (0 turns a feature
/// off).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SignalWeights {
    /// The tier of a short, plain prompt.
    pub base: u8,
    /// Added when the last user message looks like code (fences, keywords, stack
    /// traces).
    pub code: u8,
    /// Added when it looks like mathematics (vocabulary, LaTeX, arithmetic).
    pub math: u8,
    /// Added when it asks for multi-step reasoning ("step by step", "compare",
    /// "first, … then, …").
    pub reasoning: u8,
    /// Added when the request offers tools.
    pub tools: u8,
    /// Added once for every threshold of `long_tokens` the input reaches.
    pub long: u8,
    /// Input-token thresholds, ascending.
    pub long_tokens: Vec<u32>,
    /// How many bytes of the last user message are scanned for features: all of a
    /// shorter one, half from each end of a longer one (the rest of a very long
    /// prompt only counts through its length).
    pub scan_bytes: u32,
}

impl Default for SignalWeights {
    fn default() -> Self {
        SignalWeights {
            base: 1,
            code: 1,
            math: 1,
            reasoning: 1,
            tools: 1,
            long: 1,
            long_tokens: vec![2_000, 16_000],
            scan_bytes: 16 * 1024,
        }
    }
}

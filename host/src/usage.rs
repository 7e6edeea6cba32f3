//! What an answer used, in tokens, read from whichever protocol's usage object its
//! upstream reported — the one count the ledger, budgets, metrics, the decision log
//! and the policy's outcome all take — and what it costs at a target's prices.
//!
//! The protocols count differently. OpenAI's `prompt_tokens` include the cached part
//! (`prompt_tokens_details.cached_tokens`) and `completion_tokens` the reasoning
//! (`completion_tokens_details.reasoning_tokens`); the Responses API says the same as
//! `input_tokens` and `output_tokens` with `*_details`. Anthropic's `input_tokens`
//! exclude the cache, whose reads and writes come as `cache_read_input_tokens` and
//! `cache_creation_input_tokens`; thinking is part of `output_tokens`. Here `input`
//! and `output` are always the totals, the rest the parts of them priced apart or
//! shown apart.

use serde_json::Value;

/// Tokens an answer used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// Input tokens in all, cache reads and writes included.
    pub input: u32,
    /// Output tokens in all, reasoning included (billed as output).
    pub output: u32,
    /// Of `input`, read from the provider's prompt cache.
    pub cache_read: u32,
    /// Of `input`, written to the provider's prompt cache.
    pub cache_write: u32,
    /// Of `output`, spent on reasoning.
    pub reasoning: u32,
    /// Counted by the gateway, not reported by the upstream: its input estimate and,
    /// for a stream, one token per content event.
    pub estimated: bool,
}

impl Usage {
    /// Reported counts without cache or reasoning parts.
    pub fn new(input: u32, output: u32) -> Self {
        Usage {
            input,
            output,
            ..Usage::default()
        }
    }

    /// The gateway's own count, for an answer whose upstream reported none.
    pub fn estimated(input: u32, output: u32) -> Self {
        Usage {
            estimated: true,
            ..Usage::new(input, output)
        }
    }

    /// The counts of a `usage` object of any protocol; `None` without an input count.
    pub fn of(usage: &Value) -> Option<Usage> {
        if usage.get("prompt_tokens").is_some() {
            // Chat Completions.
            return Some(Usage {
                input: count(usage.get("prompt_tokens"))?,
                output: count(usage.get("completion_tokens")).unwrap_or(0),
                cache_read: detail(usage, "prompt_tokens_details", "cached_tokens"),
                // Not OpenAI's: how a translation from Anthropic keeps the cache's
                // writes, which chat has no field for.
                cache_write: count(usage.get("cache_creation_input_tokens")).unwrap_or(0),
                reasoning: detail(usage, "completion_tokens_details", "reasoning_tokens"),
                estimated: false,
            });
        }
        let input = count(usage.get("input_tokens"))?;
        let output = count(usage.get("output_tokens")).unwrap_or(0);
        if usage.get("input_tokens_details").is_some() || usage.get("total_tokens").is_some() {
            // The Responses API: totals, with their details.
            return Some(Usage {
                input,
                output,
                cache_read: detail(usage, "input_tokens_details", "cached_tokens"),
                cache_write: detail(usage, "input_tokens_details", "cache_write_tokens"),
                reasoning: detail(usage, "output_tokens_details", "reasoning_tokens"),
                estimated: false,
            });
        }
        // Anthropic: the cache's tokens beside the rest of the input.
        let cache_read = count(usage.get("cache_read_input_tokens")).unwrap_or(0);
        let cache_write = count(usage.get("cache_creation_input_tokens")).unwrap_or(0);
        Some(Usage {
            input: input.saturating_add(cache_read).saturating_add(cache_write),
            output,
            cache_read,
            cache_write,
            ..Usage::default()
        })
    }

    /// Takes what an Anthropic `message_delta`'s usage says (the counts so far, each
    /// field optional) over what `message_start` said.
    pub fn update(&mut self, delta: &Value) {
        let field = |key: &str| count(delta.get(key));
        if let Some(output) = field("output_tokens") {
            self.output = output;
        }
        let plain = self
            .input
            .saturating_sub(self.cache_read)
            .saturating_sub(self.cache_write);
        let plain = field("input_tokens").unwrap_or(plain);
        self.cache_read = field("cache_read_input_tokens").unwrap_or(self.cache_read);
        self.cache_write = field("cache_creation_input_tokens").unwrap_or(self.cache_write);
        self.input = plain
            .saturating_add(self.cache_read)
            .saturating_add(self.cache_write);
        self.estimated = false;
    }

    /// Input and output, for what counts only those (token quotas, the policy's
    /// outcome).
    pub fn tokens(&self) -> (u32, u32) {
        (self.input, self.output)
    }

    /// Input tokens priced at the plain input price: neither read from nor written to
    /// the cache.
    pub fn uncached_input(&self) -> u32 {
        self.input
            .saturating_sub(self.cache_read)
            .saturating_sub(self.cache_write)
    }
}

/// A count: a non-negative integer, saturated at `u32::MAX`.
fn count(value: Option<&Value>) -> Option<u32> {
    value
        .and_then(Value::as_u64)
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
}

fn detail(usage: &Value, details: &str, key: &str) -> u32 {
    count(usage.get(details).and_then(|d| d.get(key))).unwrap_or(0)
}

/// A target's prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prices {
    /// Input not read from or written to the cache.
    pub input: f64,
    /// Output, reasoning included.
    pub output: f64,
    /// Input read from the cache.
    pub cache_read: f64,
    /// Input written to the cache.
    pub cache_write: f64,
}

impl Prices {
    /// What `usage` costs, in US dollars.
    pub fn cost_usd(&self, usage: &Usage) -> f64 {
        (f64::from(usage.uncached_input()) * self.input
            + f64::from(usage.cache_read) * self.cache_read
            + f64::from(usage.cache_write) * self.cache_write
            + f64::from(usage.output) * self.output)
            / 1e6
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_protocol_counts_totals_with_their_parts() {
        let chat = json!({"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500,
            "prompt_tokens_details": {"cached_tokens": 800},
            "completion_tokens_details": {"reasoning_tokens": 300}});
        assert_eq!(
            Usage::of(&chat),
            Some(Usage {
                input: 1000,
                output: 500,
                cache_read: 800,
                cache_write: 0,
                reasoning: 300,
                estimated: false
            })
        );
        let anthropic = json!({"input_tokens": 200, "cache_creation_input_tokens": 300,
            "cache_read_input_tokens": 500, "output_tokens": 400});
        assert_eq!(
            Usage::of(&anthropic),
            Some(Usage {
                input: 1000,
                output: 400,
                cache_read: 500,
                cache_write: 300,
                reasoning: 0,
                estimated: false
            })
        );
        let responses = json!({"input_tokens": 1000, "output_tokens": 500, "total_tokens": 1500,
            "input_tokens_details": {"cached_tokens": 800},
            "output_tokens_details": {"reasoning_tokens": 300}});
        assert_eq!(Usage::of(&responses), Usage::of(&chat));
        assert_eq!(Usage::of(&json!({"completion_tokens": 3})), None);
        assert_eq!(
            Usage::of(&json!({"prompt_tokens": 3})),
            Some(Usage::new(3, 0))
        );
        let huge =
            json!({"input_tokens": u64::MAX, "cache_read_input_tokens": 5, "output_tokens": -1});
        assert_eq!(
            Usage::of(&huge).map(|u| (u.input, u.output)),
            Some((u32::MAX, 0))
        );
    }

    #[test]
    fn a_message_delta_updates_what_message_start_said() {
        let mut usage = Usage::of(&json!({"input_tokens": 10, "cache_read_input_tokens": 90,
            "output_tokens": 1}))
        .unwrap();
        usage.update(&json!({"output_tokens": 42}));
        assert_eq!((usage.input, usage.output, usage.cache_read), (100, 42, 90));
        usage.update(
            &json!({"input_tokens": 12, "cache_creation_input_tokens": 8, "output_tokens": 50}),
        );
        assert_eq!(
            usage,
            Usage {
                input: 110,
                output: 50,
                cache_read: 90,
                cache_write: 8,
                reasoning: 0,
                estimated: false
            }
        );
    }

    #[test]
    fn the_cache_is_priced_apart_and_reasoning_as_output() {
        let prices = Prices {
            input: 3.0,
            output: 15.0,
            cache_read: 0.3,
            cache_write: 3.75,
        };
        let usage = Usage {
            input: 1000,
            output: 400,
            cache_read: 500,
            cache_write: 300,
            reasoning: 100,
            estimated: false,
        };
        // 200 plain input at 3, 500 read at 0.3, 300 written at 3.75, 400 out at 15.
        let expected = (200.0 * 3.0 + 500.0 * 0.3 + 300.0 * 3.75 + 400.0 * 15.0) / 1e6;
        assert!((prices.cost_usd(&usage) - expected).abs() < 1e-12);
    }
}

//! The rules policy: an ordered table of match rules, first match wins.
//!
//! Use it when the right target follows from what the request *is*: code questions to
//! a code model, free-tier users to a cheap model, long prompts to a long-context
//! model, tool calls to a model that handles tools well — decisions you can write
//! down as a table and review like configuration.
//!
//! Each rule has optional conditions, all of which must hold (a condition left out
//! matches anything), and a list of target ids:
//!
//! - `model`: the requested model or alias equals this string, or one of this list;
//! - `keywords`: the last user message contains any of them, ignoring case;
//! - `regex`: the last user message matches this regular expression (the `regex`
//!   crate's syntax, Unicode-aware; add `(?i)` to ignore case);
//! - `metadata`: every key has this value, ignoring ASCII case — headers
//!   `x-signalbox-<key>: <value>` and the body's `metadata` object become metadata,
//!   so `{"tag": "code"}` matches `x-signalbox-tag: code` and `{"user-tier": "free"}`
//!   matches `x-signalbox-user-tier: free`; a comma-separated header value counts as
//!   several values;
//! - `min_input_tokens`, `max_input_tokens`: bounds (inclusive) on the host's
//!   estimate of input tokens;
//! - `has_tools`, `stream`: the request offers tools, is streamed (or not).
//!
//! The first matching rule decides; `default` serves requests no rule matches. The
//! decision lists the rule's targets in the configured order, moving available ones
//! (circuit closed, not rate-limited) ahead of the others, which stay as last-resort
//! fallbacks. The reason is `rule:<name>` (the rule's position when it has no name),
//! or `rule:default`.
//!
//! Everything is prepared at activation: target ids become indices, keywords are
//! lower-cased, regexes compiled. The message text is read from the host only when a
//! rule with a text condition is reached, and at most once per request. Keywords and
//! regexes look at the first `scan_bytes` bytes of the message (default 16 KiB), so a
//! huge prompt costs a bounded time under the decision deadline.
//!
//! Config (see `examples/policies/rules.json`):
//!
//! ```json
//! { "rules": [
//!     { "name": "free-tier", "metadata": {"user-tier": "free"}, "targets": ["groq-llama-8b"] },
//!     { "name": "code", "keywords": ["stack trace", "compile"], "targets": ["anthropic-sonnet", "openai-gpt-4o"] }
//!   ],
//!   "default": ["openai-gpt-4o-mini", "azure-gpt-4o-mini-eu"] }
//! ```
//!
//! A configuration is rejected at activation, naming the field, for an empty `rules`
//! or target list, an unknown or repeated target id, an empty keyword, an invalid
//! regex, `max_input_tokens` below `min_input_tokens`, two rules with one name, or a
//! rule without any condition (it would hide every later rule).

mod config;
mod rule;

pub use config::{Config, OneOrMany, RuleConfig};

use rule::{Rule, UserText};
use signalbox_sdk::*;

/// See the crate documentation.
pub struct RulesPolicy {
    rules: Vec<Rule>,
    default: Vec<u32>,
    scan_bytes: usize,
}

impl Policy for RulesPolicy {
    type Config = Config;
    // Stateless: it decides from the request and the live signals alone.
    const OBSERVES_OUTCOMES: bool = false;

    fn activate(config: Config, targets: &[Target]) -> Result<Self, String> {
        let table = config.compile(targets)?;
        Ok(RulesPolicy {
            rules: table.rules,
            default: table.default,
            scan_bytes: table.scan_bytes,
        })
    }

    fn route(&self, req: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        let mut text = UserText::new(req, self.scan_bytes);
        match self.rules.iter().find(|r| r.matches(req, &mut text)) {
            Some(rule) => route_to(&rule.targets, &rule.reason, snapshot),
            None => route_to(&self.default, "rule:default", snapshot),
        }
    }
}

/// `targets` in order, available ones first, then rate-limited, then unhealthy.
fn route_to(targets: &[u32], reason: &str, snapshot: &Snapshot<'_>) -> Decision {
    let class = |i: u32| snapshot.get(i as usize).map(|c| c.signals.rank());
    let mut ordered: Vec<u32> = Vec::with_capacity(targets.len());
    for wanted in 0..3 {
        ordered.extend(targets.iter().filter(|&&i| class(i) == Some(wanted)));
    }
    Decision::route(ordered, reason)
}

export_policy!(RulesPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use signalbox_sdk::testing::Harness;

    fn targets() -> Vec<Target> {
        vec![
            Target::new("gpt-4o", "gpt-4o").price(2.5, 10.0),
            Target::new("mini", "gpt-4o-mini").price(0.15, 0.6),
            Target::new("coder", "qwen-coder").price(0.0, 0.0),
            Target::new("sonnet", "claude-sonnet").price(3.0, 15.0),
            Target::new("llama", "llama-8b").price(0.05, 0.08),
        ]
    }

    const TABLE: &str = r#"{
        "rules": [
            {"name": "free", "metadata": {"user-tier": "free"}, "targets": ["llama", "mini"]},
            {"name": "sql", "regex": "(?i)\\bselect\\b.+\\bfrom\\b", "targets": ["coder"]},
            {"name": "code", "keywords": ["Stack Trace", "compile", "Kompilieren"], "targets": ["coder", "sonnet"]},
            {"name": "tagged-code", "metadata": {"tag": "code"}, "stream": true, "targets": ["sonnet", "gpt-4o"]},
            {"name": "long", "min_input_tokens": 10000, "targets": ["sonnet"]},
            {"name": "tools", "has_tools": true, "max_input_tokens": 9999, "targets": ["gpt-4o", "mini"]},
            {"model": ["fast", "quick"], "targets": ["llama"]}
        ],
        "default": ["mini", "gpt-4o"]
    }"#;

    fn harness() -> Harness<RulesPolicy> {
        Harness::new(TABLE, targets()).unwrap()
    }

    fn reason(decision: &Decision) -> &str {
        match decision {
            Decision::Route { reason, .. } => reason,
            Decision::Reject { message, .. } => message,
        }
    }

    fn ids(h: &Harness<RulesPolicy>, req: &Request<'_>) -> (Vec<String>, String) {
        let d = h.route_healthy(req);
        let ids = d
            .targets()
            .iter()
            .map(|&i| h.targets()[i as usize].id.clone())
            .collect();
        (ids, reason(&d).to_owned())
    }

    #[test]
    fn metadata_rule_matches_header_values_ignoring_case() {
        let h = harness();
        let req = RequestBuilder::chat("gpt-4o")
            .metadata("user-tier", "Free")
            .user("hi")
            .build();
        assert_eq!(
            ids(&h, &req),
            (vec!["llama".into(), "mini".into()], "rule:free".into())
        );
        let req = RequestBuilder::chat("gpt-4o")
            .metadata("user-tier", "paid")
            .user("hi")
            .build();
        assert_eq!(ids(&h, &req).1, "rule:default");
    }

    #[test]
    fn keywords_match_any_case_in_the_last_user_message_only() {
        let h = harness();
        let req = RequestBuilder::chat("gpt-4o")
            .user("why does this not COMPILE?")
            .build();
        assert_eq!(ids(&h, &req).1, "rule:code");
        let req = RequestBuilder::chat("gpt-4o")
            .user("Hier ist ein STACK TRACE")
            .build();
        assert_eq!(ids(&h, &req).1, "rule:code");
        // Unicode lower-casing on both sides.
        let req = RequestBuilder::chat("gpt-4o")
            .user("Beim KOMPILIEREN: Fehler ä")
            .build();
        assert_eq!(ids(&h, &req).1, "rule:code");
        // An earlier user message does not count.
        let req = RequestBuilder::chat("gpt-4o")
            .user("it does not compile")
            .assistant("show me")
            .user("here you go")
            .build();
        assert_eq!(ids(&h, &req).1, "rule:default");
        // No user message at all: text rules cannot match.
        let req = RequestBuilder::chat("gpt-4o").system("compile").build();
        assert_eq!(ids(&h, &req).1, "rule:default");
    }

    #[test]
    fn regex_rules_match_and_order_decides() {
        let h = harness();
        // Both `sql` and `code` match; the earlier rule wins.
        let req = RequestBuilder::chat("gpt-4o")
            .user("Select name FROM users fails to compile")
            .build();
        assert_eq!(ids(&h, &req), (vec!["coder".into()], "rule:sql".into()));
    }

    #[test]
    fn conditions_within_a_rule_are_all_required() {
        let h = harness();
        let tagged = RequestBuilder::chat("gpt-4o").tag("eu, code").user("hi");
        assert_eq!(
            ids(&h, &tagged.clone().stream(true).build()),
            (
                vec!["sonnet".into(), "gpt-4o".into()],
                "rule:tagged-code".into()
            )
        );
        // The tag without streaming is not enough.
        assert_eq!(ids(&h, &tagged.build()).1, "rule:default");
    }

    #[test]
    fn token_bounds_tools_and_model_lists() {
        let h = harness();
        let long = RequestBuilder::chat("gpt-4o").input_tokens(10_000).build();
        assert_eq!(ids(&h, &long).1, "rule:long");
        let below = RequestBuilder::chat("gpt-4o").input_tokens(9_999).build();
        assert_eq!(ids(&h, &below).1, "rule:default");
        let tools = RequestBuilder::chat("gpt-4o")
            .has_tools(true)
            .input_tokens(9_999)
            .build();
        assert_eq!(ids(&h, &tools).1, "rule:tools");
        // An unnamed rule is named by its position.
        let quick = RequestBuilder::chat("quick").user("hi").build();
        assert_eq!(ids(&h, &quick), (vec!["llama".into()], "rule:6".into()));
    }

    #[test]
    fn available_targets_come_first_and_the_rest_stay_as_fallbacks() {
        let h = harness();
        let req = RequestBuilder::chat("gpt-4o")
            .metadata("user-tier", "free")
            .build();
        // llama (index 4) unhealthy, mini (1) rate-limited.
        let mut signals = vec![Signals::default(); 5];
        signals[4] = Signals::unhealthy();
        assert_eq!(h.route_ids(&req, &signals), Ok(vec!["mini", "llama"]));
        signals[1].rate_limited_ms = 500;
        assert_eq!(h.route_ids(&req, &signals), Ok(vec!["mini", "llama"]));
        signals[4] = Signals::default();
        assert_eq!(h.route_ids(&req, &signals), Ok(vec!["llama", "mini"]));
    }

    #[test]
    fn an_earlier_rule_decides_before_any_text_rule() {
        // The `free` rule decides before any keyword or regex rule: a request whose
        // text would match `sql` still goes by its tier.
        let h = harness();
        let req = RequestBuilder::chat("gpt-4o")
            .metadata("user-tier", "free")
            .user("select * from t")
            .build();
        assert_eq!(ids(&h, &req).1, "rule:free");
    }

    #[test]
    fn text_rules_look_at_the_first_scan_bytes_only() {
        let config = r#"{"rules": [{"keywords": ["needle"], "targets": ["coder"]}],
                         "default": ["mini"], "scan_bytes": 64}"#;
        let h = Harness::<RulesPolicy>::new(config, targets()).unwrap();
        let early = format!("{}needle", "é".repeat(29));
        let late = format!("{}needle", "é".repeat(30));
        let route = |text: &str| {
            let req = RequestBuilder::chat("gpt-4o").user(text).build();
            reason(&h.route_healthy(&req)).to_owned()
        };
        // 58 bytes of `é` plus the 6-byte keyword fit in 64 bytes; 60 do not.
        assert_eq!(route(&early), "rule:0");
        assert_eq!(route(&late), "rule:default");
        // A cut through a multi-byte character backs off to the boundary.
        assert_eq!(route(&"é".repeat(100)), "rule:default");
    }

    fn error(config: &str) -> String {
        match Harness::<RulesPolicy>::new(config, targets()) {
            Ok(_) => panic!("config accepted: {config}"),
            Err(e) => e,
        }
    }

    #[test]
    fn bad_configs_are_rejected_naming_the_field() {
        let cases = [
            (
                r#"{"rules": [], "default": ["mini"]}"#,
                "`rules`: the list is empty",
            ),
            (
                r#"{"rules": [{"model": "x", "targets": ["mini"]}], "default": []}"#,
                "`default`: the list is empty",
            ),
            (
                r#"{"rules": [{"model": "x", "targets": ["mini"]}, {"stream": true, "targets": ["nope"]}], "default": ["mini"]}"#,
                "`rules[1].targets[0]`: no target has the id `nope`",
            ),
            (
                r#"{"rules": [{"model": "x", "targets": ["mini", "mini"]}], "default": ["mini"]}"#,
                "`rules[0].targets[1]`: `mini` is listed twice",
            ),
            (
                r#"{"rules": [{"model": "x", "targets": ["mini"]}, {"model": "y", "targets": ["mini"]}, {"regex": "(unclosed", "targets": ["mini"]}], "default": ["mini"]}"#,
                "`rules[2].regex`: ",
            ),
            (
                r#"{"rules": [{"keywords": ["ok", " "], "targets": ["mini"]}], "default": ["mini"]}"#,
                "`rules[0].keywords[1]`: is empty",
            ),
            (
                r#"{"rules": [{"keywords": [], "targets": ["mini"]}], "default": ["mini"]}"#,
                "`rules[0].keywords`: the list is empty",
            ),
            (
                r#"{"rules": [{"min_input_tokens": 10, "max_input_tokens": 5, "targets": ["mini"]}], "default": ["mini"]}"#,
                "`rules[0].max_input_tokens`: 5 is below min_input_tokens (10)",
            ),
            (
                r#"{"rules": [{"name": "a", "stream": true, "targets": ["mini"]}, {"name": "a", "stream": false, "targets": ["mini"]}], "default": ["mini"]}"#,
                "`rules[1].name`: `a` is already the name of rules[0]",
            ),
            (
                r#"{"rules": [{"name": "all", "targets": ["mini"]}], "default": ["mini"]}"#,
                "`rules[0]`: has no condition",
            ),
            (
                r#"{"rules": [{"modle": "x", "targets": ["mini"]}], "default": ["mini"]}"#,
                "`rules[0].modle`: unknown field",
            ),
            (
                r#"{"rules": [{"model": "x", "targets": ["mini"]}]}"#,
                "missing field `default`",
            ),
            (
                r#"{"rules": [{"stream": "yes", "targets": ["mini"]}], "default": ["mini"]}"#,
                "`rules[0].stream`",
            ),
            (
                r#"{"rules": [{"stream": true, "targets": ["mini"]}], "default": ["mini"], "scan_bytes": 0}"#,
                "`scan_bytes`: must be at least 1",
            ),
        ];
        for (config, expected) in cases {
            let err = error(config);
            assert!(
                err.contains(expected),
                "{config}\n  gave: {err}\n  want: {expected}"
            );
        }
    }
}

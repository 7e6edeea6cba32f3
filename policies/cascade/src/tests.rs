use super::*;
use serde_json::json;
use signalbox_sdk::testing::Harness;

/// The ten sample targets `signalbox policy check` uses (`host/src/policy/sample.rs`).
fn sample_targets() -> Vec<Target> {
    vec![
        Target::new("openai-gpt-4o", "gpt-4o").price(2.5, 10.0),
        Target::new("openai-gpt-4o-mini", "gpt-4o-mini").price(0.15, 0.6),
        Target::new("azure-gpt-4o-mini-eu", "gpt-4o-mini").price(0.165, 0.66),
        Target::new("anthropic-sonnet", "claude-sonnet-4").price(3.0, 15.0),
        Target::new("anthropic-haiku", "claude-haiku-3.5").price(0.8, 4.0),
        Target::new("together-llama-70b", "llama-3.3-70b").price(0.88, 0.88),
        Target::new("groq-llama-8b", "llama-3.1-8b").price(0.05, 0.08),
        Target::new("vllm-qwen-coder", "qwen2.5-coder-32b").price(0.0, 0.0),
        Target::new("openai-o3-mini", "o3-mini").price(1.1, 4.4),
        Target::new("mistral-small-eu", "mistral-small").price(0.1, 0.3),
    ]
}

/// Three rungs: 0 cheap, 1 mid, 2 strong (activation order is not price order, so a
/// test can tell the ladder from the target list).
fn three() -> Vec<Target> {
    vec![
        Target::new("strong", "big").price(3.0, 15.0),
        Target::new("cheap", "small").price(0.05, 0.08),
        Target::new("mid", "medium").price(0.15, 0.6),
    ]
}

const STRONG: u32 = 0;
const CHEAP: u32 = 1;
const MID: u32 = 2;

fn harness(config: &str) -> Harness<Cascade> {
    Harness::new(config, three()).unwrap()
}

fn error(config: &str) -> String {
    match Harness::<Cascade>::new(config, three()) {
        Ok(_) => panic!("config {config} was accepted"),
        Err(e) => e,
    }
}

/// The first answer of a request: from the cheapest rung, two stronger ones to go.
fn first(text: &str) -> AnswerBuilder {
    AnswerBuilder::new(text)
        .target(CHEAP)
        .remaining([MID, STRONG])
}

fn escalated(reason: &str) -> Review {
    Review::escalate(reason)
}

mod ladder {
    use super::*;

    #[test]
    fn default_ladder_is_every_target_cheapest_first() {
        let h = Harness::<Cascade>::new("{}", sample_targets()).unwrap();
        let ids: Vec<&str> = h
            .policy()
            .ladder()
            .iter()
            .map(|&i| h.targets()[i as usize].id.as_str())
            .collect();
        assert_eq!(
            ids,
            [
                "vllm-qwen-coder",
                "groq-llama-8b",
                "mistral-small-eu",
                "openai-gpt-4o-mini",
                "azure-gpt-4o-mini-eu",
                "together-llama-70b",
                "anthropic-haiku",
                "openai-o3-mini",
                "openai-gpt-4o",
                "anthropic-sonnet",
            ]
        );
    }

    #[test]
    fn equal_prices_keep_activation_order() {
        let targets = vec![
            Target::new("a", "m").price(1.0, 1.0),
            Target::new("b", "m").price(0.0, 2.0),
            Target::new("c", "m").price(0.5, 0.5),
            Target::new("d", "m").price(2.0, 0.0),
        ];
        let h = Harness::<Cascade>::new("{}", targets).unwrap();
        assert_eq!(h.policy().ladder(), [2, 0, 1, 3]);
    }

    #[test]
    fn chat_requests_are_planned_over_the_whole_ladder() {
        let h = harness("{}");
        let req = RequestBuilder::chat("auto").user("hi").build();
        assert_eq!(
            h.route_healthy(&req),
            Decision::route([CHEAP, MID, STRONG], "cascade")
        );
    }

    #[test]
    fn the_configured_ladder_is_followed_as_written() {
        let h = harness(r#"{"ladder": ["mid", "strong"]}"#);
        let req = RequestBuilder::chat("whatever").user("hi").build();
        assert_eq!(
            h.route_ids(&req, &[Signals::default(); 3]),
            Ok(vec!["mid", "strong"])
        );
    }

    #[test]
    fn unavailable_targets_go_last_in_ladder_order() {
        let h = harness("{}");
        let req = RequestBuilder::chat("auto").user("hi").build();
        let limited = Signals {
            rate_limited_ms: 1_000,
            ..Signals::default()
        };
        // strong rate-limited, cheap unhealthy: mid first, then cheap and strong.
        let signals = [limited, Signals::unhealthy(), Signals::default()];
        assert_eq!(
            h.route_ids(&req, &signals),
            Ok(vec!["mid", "cheap", "strong"])
        );
    }

    #[test]
    fn embeddings_go_to_the_first_available_rung_alone() {
        let h = harness("{}");
        let req = RequestBuilder::chat("text-embedding-3-small")
            .endpoint(Endpoint::Embedding)
            .build();
        assert_eq!(
            h.route_healthy(&req),
            Decision::route([CHEAP], "cascade:embeddings")
        );
        let cheap_down = [Signals::default(), Signals::unhealthy(), Signals::default()];
        assert_eq!(
            h.route(&req, &cheap_down),
            Decision::route([MID], "cascade:embeddings")
        );
        let all_down = [Signals::unhealthy(); 3];
        assert_eq!(
            h.route(&req, &all_down),
            Decision::route([CHEAP], "cascade:embeddings")
        );
    }

    #[test]
    fn a_tenant_without_targets_is_refused_per_request() {
        let h = Harness::<Cascade>::new("{}", vec![]).unwrap();
        let req = RequestBuilder::chat("auto").user("hi").build();
        assert!(matches!(
            h.route(&req, &[]),
            Decision::Reject { status: 503, .. }
        ));
    }
}

mod config_errors {
    use super::*;

    fn assert_names(config: &str, key: &str, words: &str) {
        let e = error(config);
        assert!(e.contains(key), "{e:?} does not name {key}");
        assert!(e.contains(words), "{e:?} does not say {words:?}");
    }

    #[test]
    fn ladder_ids_must_exist_once() {
        assert_names(
            r#"{"ladder": ["cheap", "gpt-5"]}"#,
            "`ladder[1]`",
            "no target has the id `gpt-5`",
        );
        assert_names(
            r#"{"ladder": ["cheap", "mid", "cheap"]}"#,
            "`ladder[2]`",
            "listed twice",
        );
        assert_names(r#"{"ladder": []}"#, "`ladder`", "lists no target");
    }

    #[test]
    fn unknown_keys_and_wrong_types_are_refused() {
        assert_names(r#"{"checks": {"jsno": true}}"#, "checks", "jsno");
        assert_names(r#"{"lader": []}"#, "invalid config", "lader");
        assert_names(r#"{"checks": {"min_chars": -1}}"#, "`checks.min_chars`", "");
        assert_names(r#"{"checks": {"json": "yes"}}"#, "`checks.json`", "");
    }

    #[test]
    fn refusal_markers_must_not_be_empty() {
        assert_names(
            r#"{"checks": {"refusal_markers": ["i don't know", "  "]}}"#,
            "`checks.refusal_markers[1]`",
            "is empty",
        );
    }

    #[test]
    fn min_mean_logprob_is_a_log_probability() {
        assert_names(
            r#"{"checks": {"min_mean_logprob": 0.5}}"#,
            "`checks.min_mean_logprob`",
            "0 or less",
        );
        assert!(Harness::<Cascade>::new(r#"{"checks": {"min_mean_logprob": 0}}"#, three()).is_ok());
    }

    #[test]
    fn the_verifier_must_be_a_target_and_see_the_answer() {
        assert_names(
            r#"{"checks": {"verifier": {"target": "judge"}}}"#,
            "`checks.verifier.target`",
            "no target has the id `judge`",
        );
        assert_names(
            r#"{"checks": {"verifier": {"target": "mid", "max_tokens": 0}}}"#,
            "`checks.verifier.max_tokens`",
            "at least 1",
        );
        assert_names(
            r#"{"checks": {"verifier": {"target": "mid", "prompt": "Is {question} easy?"}}}"#,
            "`checks.verifier.prompt`",
            "{answer}",
        );
        assert_names(
            r#"{"checks": {"verifier": {"target": "mid", "temperature": 0}}}"#,
            "checks.verifier",
            "temperature",
        );
    }
}

mod checks {
    use super::*;

    #[test]
    fn a_good_answer_is_accepted() {
        let h = harness("{}");
        assert_eq!(
            h.review(&first("Paris is the capital of France.").build()),
            Review::Accept
        );
    }

    #[test]
    fn cut_short_answers_escalate_unless_switched_off() {
        let cut = first("The three reasons are: first,")
            .finish(FinishReason::Length)
            .build();
        assert_eq!(harness("{}").review(&cut), escalated("cut-short"));
        let off = harness(r#"{"checks": {"finish_length": false}}"#);
        assert_eq!(off.review(&cut), Review::Accept);
        // No finish reason reported: nothing to hold against it.
        let unknown = first("Fine.").finish(None).build();
        assert_eq!(harness("{}").review(&unknown), Review::Accept);
    }

    #[test]
    fn empty_answers_are_too_short_but_tool_calls_are_not() {
        let h = harness("{}");
        assert_eq!(h.review(&first("").build()), escalated("too-short"));
        assert_eq!(h.review(&first(" \n\t ").build()), escalated("too-short"));
        let tool = first("")
            .finish(FinishReason::ToolCalls)
            .tool_call("get_weather", r#"{"city": "Paris"}"#)
            .build();
        assert_eq!(h.review(&tool), Review::Accept);
    }

    #[test]
    fn min_chars_counts_characters_of_the_trimmed_text() {
        let h = harness(r#"{"checks": {"min_chars": 5}}"#);
        assert_eq!(h.review(&first("  four  ").build()), escalated("too-short"));
        assert_eq!(h.review(&first("fives").build()), Review::Accept);
        // Five characters, ten bytes.
        assert_eq!(h.review(&first("ééééé").build()), Review::Accept);
        let off = harness(r#"{"checks": {"min_chars": 0}}"#);
        assert_eq!(off.review(&first("").build()), Review::Accept);
    }

    #[test]
    fn answers_opening_with_a_refusal_marker_escalate() {
        let h = harness("{}");
        for refusal in [
            "I don't know.",
            "  i do not know",
            "I’m sorry, but I can’t help with that.",
            "As an AI language model, I have no opinions.",
            "I CANNOT HELP with this request",
        ] {
            assert_eq!(
                h.review(&first(refusal).build()),
                escalated("refusal"),
                "{refusal}"
            );
        }
    }

    #[test]
    fn a_marker_inside_an_answer_is_not_a_refusal() {
        let h = harness("{}");
        let quoting = r#"Saying "I don't know" is fine when you do not; here is how to find out."#;
        assert_eq!(h.review(&first(quoting).build()), Review::Accept);
        let later = "Paris. Beyond that, I don't know.";
        assert_eq!(h.review(&first(later).build()), Review::Accept);
    }

    #[test]
    fn refusal_markers_are_configurable_and_can_be_switched_off() {
        let custom = harness(r#"{"checks": {"refusal_markers": ["Unable to comply"]}}"#);
        assert_eq!(
            custom.review(&first("unable to comply.").build()),
            escalated("refusal")
        );
        assert_eq!(
            custom.review(&first("I don't know.").build()),
            Review::Accept
        );
        let off = harness(r#"{"checks": {"refusal_markers": []}}"#);
        assert_eq!(off.review(&first("I don't know.").build()), Review::Accept);
    }

    #[test]
    fn json_answers_must_parse() {
        let h = harness("{}");
        let broken = first(r#"{"city": "Paris""#).json(None).build();
        assert_eq!(h.review(&broken), escalated("invalid-json"));
        let fenced = first("```json\n{\"city\": \"Paris\"}\n```")
            .json(None)
            .build();
        assert_eq!(h.review(&fenced), escalated("invalid-json"));
        let fine = first(" {\"city\": \"Paris\"}\n").json(None).build();
        assert_eq!(h.review(&fine), Review::Accept);
        // Without `response_format` the text is prose.
        assert_eq!(h.review(&first(r#"{"city": "#).build()), Review::Accept);
        let off = harness(r#"{"checks": {"json": false}}"#);
        assert_eq!(off.review(&broken), Review::Accept);
    }

    const PERSON: &str = r#"{"type": "object",
        "properties": {"name": {"type": "string", "minLength": 1},
                       "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"], "additionalProperties": false}"#;

    #[test]
    fn json_answers_must_match_the_clients_schema() {
        let h = harness("{}");
        let review = |text: &str| h.review(&first(text).json(Some(PERSON)).build());
        assert_eq!(review(r#"{"name": "Ada", "age": 36}"#), Review::Accept);
        assert_eq!(
            review(r#"{"name": "Ada"}"#),
            escalated(r#"schema:missing "age""#)
        );
        assert_eq!(
            review(r#"{"name": "Ada", "age": 36.5}"#),
            escalated("schema:expected integer at /age")
        );
        assert_eq!(
            review(r#"{"name": "Ada", "age": -1}"#),
            escalated("schema:below the minimum 0 at /age")
        );
        assert_eq!(
            review(r#"{"name": "Ada", "age": 36, "email": "a@b.c"}"#),
            escalated(r#"schema:unexpected property "email""#)
        );
        assert_eq!(review("[1, 2]"), escalated("schema:expected object"));
        assert_eq!(review("not json"), escalated("invalid-json"));
    }

    #[test]
    fn an_unreadable_schema_is_not_held_against_the_answer() {
        let h = harness("{}");
        let answer = first(r#"{"a": 1}"#).json(Some("{not a schema")).build();
        assert_eq!(h.review(&answer), Review::Accept);
    }

    #[test]
    fn long_schema_reasons_are_cut() {
        let h = harness("{}");
        let key = "k".repeat(300);
        let schema = json!({"properties": {key.clone(): {"type": "string"}}}).to_string();
        let text = json!({key: 1}).to_string();
        let Review::Escalate { reason, target } =
            h.review(&first(&text).json(Some(&schema)).build())
        else {
            panic!("expected an escalation");
        };
        assert_eq!(target, None);
        assert!(
            reason.starts_with("schema:expected string at /kkk"),
            "{reason}"
        );
        assert!(reason.len() <= 128, "{} bytes", reason.len());
        assert!(reason.ends_with('…'));
    }

    #[test]
    fn low_confidence_escalates_with_the_mean() {
        let h = harness(r#"{"checks": {"min_mean_logprob": -0.7}}"#);
        let unsure = first("Probably 42.")
            .logprobs(vec![-0.9, -1.5, -1.302])
            .build();
        assert_eq!(h.review(&unsure), escalated("low-confidence:-1.23"));
        let sure = first("42.").logprobs(vec![-0.01, -0.2, -0.5]).build();
        assert_eq!(h.review(&sure), Review::Accept);
        // No log-probabilities from the upstream: the check passes.
        assert_eq!(h.review(&first("42.").build()), Review::Accept);
        // Not configured: log-probabilities are ignored.
        assert_eq!(harness("{}").review(&unsure), Review::Accept);
    }

    #[test]
    fn the_first_failing_check_names_the_reason() {
        let h = harness(r#"{"checks": {"min_mean_logprob": -0.5}}"#);
        let bad = first("I don't know")
            .json(None)
            .logprobs(vec![-3.0])
            .finish(FinishReason::Length)
            .build();
        assert_eq!(h.review(&bad), escalated("cut-short"));
        let bad = first("I don't know")
            .json(None)
            .logprobs(vec![-3.0])
            .build();
        assert_eq!(h.review(&bad), escalated("refusal"));
        let bad = first("nope").json(None).logprobs(vec![-3.0]).build();
        assert_eq!(h.review(&bad), escalated("invalid-json"));
    }

    #[test]
    fn every_check_can_be_switched_off() {
        let h = harness(
            r#"{"checks": {"json": false, "refusal_markers": [], "min_chars": 0,
                           "min_mean_logprob": null, "finish_length": false, "verifier": null}}"#,
        );
        let bad = first("")
            .json(Some(PERSON))
            .logprobs(vec![-9.0])
            .finish(FinishReason::Length)
            .build();
        assert_eq!(h.review(&bad), Review::Accept);
    }

    #[test]
    fn an_early_look_at_a_stream_only_checks_for_refusals() {
        let h = harness(r#"{"checks": {"min_mean_logprob": -0.1}}"#);
        let start = first(r#"{"na"#)
            .json(Some(PERSON))
            .finish(None)
            .logprobs(vec![-2.0])
            .incomplete()
            .build();
        assert_eq!(h.review(&start), Review::Accept);
        assert_eq!(h.review(&first("").incomplete().build()), Review::Accept);
        let refusing = first("I'm sorry, but").finish(None).incomplete().build();
        assert_eq!(h.review(&refusing), escalated("refusal"));
    }
}

mod escalation {
    use super::*;

    #[test]
    fn the_last_rung_is_accepted_whatever_it_says() {
        let h = harness(r#"{"checks": {"verifier": {"target": "strong"}}}"#);
        let last = AnswerBuilder::new("")
            .target(STRONG)
            .attempt(2)
            .finish(FinishReason::Length)
            .build();
        assert_eq!(h.review(&last), Review::Accept);
    }

    #[test]
    fn escalation_never_steps_down_the_ladder() {
        let h = harness("{}");
        // The plan put the unavailable cheap rung last: from mid, only strong is
        // better, even when cheap comes first in what remains.
        let from_mid = AnswerBuilder::new("")
            .target(MID)
            .remaining([CHEAP, STRONG]);
        assert_eq!(
            h.review(&from_mid.build()),
            Review::escalate_to(STRONG, "too-short")
        );
        let from_strong = AnswerBuilder::new("").target(STRONG).remaining([CHEAP]);
        assert_eq!(h.review(&from_strong.build()), Review::Accept);
    }

    #[test]
    fn targets_off_the_ladder_are_never_escalated_to() {
        let h = harness(r#"{"ladder": ["cheap", "mid"]}"#);
        let answer = first("").remaining([STRONG]).build();
        assert_eq!(h.review(&answer), Review::Accept);
    }
}

mod verifier {
    use super::*;

    const VERIFIED: &str = r#"{"checks": {"verifier": {"target": "strong"}}}"#;

    #[test]
    fn an_answer_that_passes_the_checks_is_verified_with_the_default_prompt() {
        let h = harness(VERIFIED);
        let answer = first("Paris.")
            .question("What is the capital of France?")
            .build();
        let expected = config::DEFAULT_VERIFIER_PROMPT
            .replace("{question}", "What is the capital of France?")
            .replace("{answer}", "Paris.");
        assert!(expected.contains("Question:\nWhat is the capital of France?\n"));
        assert_eq!(h.review(&answer), Review::verify(STRONG, expected, 8));
    }

    #[test]
    fn the_reply_decides() {
        let h = harness(VERIFIED);
        let reply = |reply: &str| {
            h.review(
                &first("Lyon.")
                    .question("What is the capital of France?")
                    .verification(reply)
                    .build(),
            )
        };
        assert_eq!(reply("No."), escalated("verifier-no"));
        assert_eq!(reply("  no"), escalated("verifier-no"));
        assert_eq!(reply("**No**, it is Paris."), escalated("verifier-no"));
        assert_eq!(reply("NOPE"), escalated("verifier-no"));
        assert_eq!(reply("yes"), Review::Accept);
        assert_eq!(reply("Yes."), Review::Accept);
        assert_eq!(reply(""), Review::Accept);
        assert_eq!(reply("The answer is correct."), Review::Accept);
    }

    #[test]
    fn a_custom_prompt_is_filled_once() {
        let h = harness(
            r#"{"checks": {"verifier": {"target": "mid", "max_tokens": 2,
                "prompt": "Q: {question} A: {answer} {answer}? {other} Say yes or no."}}}"#,
        );
        // The answer's own "{question}" stays as written.
        let answer = first("See {question}").question("Why?").build();
        assert_eq!(
            h.review(&answer),
            Review::verify(
                MID,
                "Q: Why? A: See {question} See {question}? {other} Say yes or no.",
                2
            )
        );
        let no_question = first("Paris.").build();
        assert_eq!(
            h.review(&no_question),
            Review::verify(MID, "Q:  A: Paris. Paris.? {other} Say yes or no.", 2)
        );
    }

    #[test]
    fn a_failing_check_escalates_without_asking_the_verifier() {
        let h = harness(VERIFIED);
        assert_eq!(
            h.review(&first("I don't know.").build()),
            escalated("refusal")
        );
    }

    #[test]
    fn tool_calls_and_stream_openings_are_not_verified() {
        let h = harness(VERIFIED);
        let tool = first("").tool_call("search", "{}").build();
        assert_eq!(h.review(&tool), Review::Accept);
        let opening = first("Paris").finish(None).incomplete().build();
        assert_eq!(h.review(&opening), Review::Accept);
    }
}

mod example {
    use super::*;

    fn example() -> String {
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../examples/policies/cascade.json"
        ))
        .unwrap()
    }

    #[test]
    fn the_example_config_activates_with_the_sample_targets() {
        let h = Harness::<Cascade>::new(&example(), sample_targets()).unwrap();
        let req = RequestBuilder::chat("auto").user("hi").build();
        assert_eq!(
            h.route_ids(&req, &[Signals::default(); 10]),
            Ok(vec!["groq-llama-8b", "openai-gpt-4o-mini", "openai-gpt-4o"])
        );
    }

    #[test]
    fn the_sample_targets_here_are_those_of_policy_check() {
        let sample = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../host/src/policy/sample.rs"
        ))
        .unwrap();
        for target in sample_targets() {
            assert!(
                sample.contains(&format!("\"{}\"", target.id)),
                "{} is not a sample target of `policy check`",
                target.id
            );
        }
    }
}

mod schema_keywords {
    use crate::schema::{Mismatch, validate};
    use serde_json::{Value, json};

    fn why(schema: Value, instance: Value) -> Option<String> {
        validate(&schema, &instance).err().map(|m| m.to_string())
    }

    #[test]
    fn types() {
        assert_eq!(why(json!({"type": "integer"}), json!(3)), None);
        assert_eq!(why(json!({"type": "integer"}), json!(3.0)), None);
        assert_eq!(
            why(json!({"type": "integer"}), json!(3.5)),
            Some("expected integer".into())
        );
        assert_eq!(why(json!({"type": ["string", "null"]}), json!(null)), None);
        assert_eq!(
            why(json!({"type": ["string", "null"]}), json!(1)),
            Some("expected string or null".into())
        );
        assert_eq!(why(json!({"type": "number"}), json!(1)), None);
        assert_eq!(why(json!({"type": "boolean"}), json!(false)), None);
        // Unknown type names: the keyword is not checked.
        assert_eq!(why(json!({"type": "int"}), json!("x")), None);
    }

    #[test]
    fn enum_and_const_compare_numbers_by_value() {
        assert_eq!(why(json!({"enum": [1, "two"]}), json!(1.0)), None);
        assert_eq!(
            why(json!({"enum": ["a", "b"]}), json!("c")),
            Some("not one of the allowed values".into())
        );
        assert_eq!(
            why(json!({"const": {"a": [1, 2]}}), json!({"a": [1.0, 2]})),
            None
        );
        assert_eq!(
            why(json!({"const": "x"}), json!("y")),
            Some("not the required value".into())
        );
    }

    #[test]
    fn objects() {
        let schema = json!({
            "properties": {"a/b": {"type": "string"}, "n": {"type": "number"}},
            "required": ["n"],
            "additionalProperties": {"type": "boolean"}
        });
        assert_eq!(why(schema.clone(), json!({"n": 1, "extra": true})), None);
        assert_eq!(
            why(schema.clone(), json!({"n": 1, "extra": 2})),
            Some("expected boolean at /extra".into())
        );
        assert_eq!(
            why(schema.clone(), json!({"n": 1, "a/b": 2})),
            Some("expected string at /a~1b".into())
        );
        assert_eq!(why(schema, json!({})), Some("missing \"n\"".into()));
        // With patternProperties (not checked), additional members are not judged.
        let patterned = json!({"patternProperties": {"^x": {}}, "additionalProperties": false});
        assert_eq!(why(patterned, json!({"y": 1})), None);
    }

    #[test]
    fn arrays() {
        let schema =
            json!({"items": {"type": "string", "maxLength": 3}, "minItems": 1, "maxItems": 2});
        assert_eq!(why(schema.clone(), json!(["ab", "çéà"])), None);
        assert_eq!(
            why(schema.clone(), json!([])),
            Some("fewer than 1 items".into())
        );
        assert_eq!(
            why(schema.clone(), json!(["a", "b", "c"])),
            Some("more than 2 items".into())
        );
        assert_eq!(
            why(schema, json!(["a", "abcd"])),
            Some("longer than 3 characters at /1".into())
        );
        let tuple = json!({"prefixItems": [{"type": "string"}], "items": {"type": "integer"}});
        assert_eq!(why(tuple.clone(), json!(["a", 1, 2])), None);
        assert_eq!(why(tuple, json!([1])), Some("expected string at /0".into()));
        let old_tuple = json!({"items": [{"type": "string"}, {"type": "integer"}]});
        assert_eq!(why(old_tuple.clone(), json!(["a", 1, null])), None);
        assert_eq!(
            why(old_tuple, json!(["a", "b"])),
            Some("expected integer at /1".into())
        );
    }

    #[test]
    fn strings_and_numbers() {
        assert_eq!(
            why(json!({"minLength": 2}), json!("é")),
            Some("shorter than 2 characters".into())
        );
        assert_eq!(
            why(json!({"maximum": 10}), json!(10.5)),
            Some("above the maximum 10".into())
        );
        assert_eq!(why(json!({"maximum": 10}), json!(10)), None);
        assert_eq!(
            why(json!({"exclusiveMinimum": 0}), json!(0)),
            Some("not above 0".into())
        );
        assert_eq!(
            why(json!({"maximum": 1, "exclusiveMaximum": true}), json!(1)),
            Some("not below 1".into())
        );
        // Bounds only apply to their own type.
        assert_eq!(
            why(json!({"minimum": 5, "minLength": 9}), json!("short")),
            Some("shorter than 9 characters".into())
        );
        assert_eq!(why(json!({"minimum": 5}), json!("short")), None);
    }

    #[test]
    fn combinators_and_local_references() {
        // What Pydantic generates for `Optional[Item]` and a nested model.
        let schema = json!({
            "$defs": {"Item": {"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]}},
            "type": "object",
            "properties": {
                "item": {"anyOf": [{"$ref": "#/$defs/Item"}, {"type": "null"}]},
                "items": {"type": "array", "items": {"$ref": "#/$defs/Item"}}
            }
        });
        assert_eq!(
            why(schema.clone(), json!({"item": null, "items": [{"id": 1}]})),
            None
        );
        assert_eq!(
            why(schema.clone(), json!({"items": [{"id": 1}, {"id": "2"}]})),
            Some("expected integer at /items/1/id".into())
        );
        assert_eq!(
            why(schema, json!({"item": {"name": "x"}})),
            Some("matches no schema of anyOf at /item".into())
        );
        let one = json!({"oneOf": [{"type": "integer"}, {"type": "number"}]});
        assert_eq!(why(one.clone(), json!(1.5)), None);
        assert_eq!(
            why(one, json!(1)),
            Some("matches more than one schema of oneOf".into())
        );
        let all = json!({"allOf": [{"type": "string"}, {"maxLength": 1}]});
        assert_eq!(
            why(all, json!("ab")),
            Some("longer than 1 characters".into())
        );
        // A recursive schema (a tree) is followed as deep as the value goes.
        let tree = json!({"type": "object", "properties": {"children": {"type": "array", "items": {"$ref": "#"}}}});
        assert_eq!(
            why(tree, json!({"children": [{"children": [{"children": 3}]}]})),
            Some("expected array at /children/0/children/0/children".into())
        );
    }

    #[test]
    fn false_schemas_refuse_and_true_ones_accept() {
        assert_eq!(why(json!(true), json!({"any": 1})), None);
        assert_eq!(why(json!(false), json!(1)), Some("not allowed".into()));
        assert_eq!(why(json!({"items": false}), json!([])), None);
        assert_eq!(
            why(json!({"items": false}), json!([1])),
            Some("not allowed at /0".into())
        );
    }

    #[test]
    fn unsupported_keywords_and_remote_references_are_not_checked() {
        let schema = json!({"type": "string", "pattern": "^[0-9]+$", "format": "email", "$ref": "https://example.com/s.json"});
        assert_eq!(why(schema, json!("not digits")), None);
    }

    #[test]
    fn reference_cycles_and_explosive_schemas_give_up_as_a_match() {
        assert_eq!(why(json!({"$ref": "#"}), json!(1)), None);
        // Each level tries both branches of an anyOf, without end: 2^256 paths.
        let explosive = json!({
            "$defs": {"x": {"anyOf": [{"$ref": "#/$defs/x"}, {"$ref": "#/$defs/x"}]}},
            "$ref": "#/$defs/x"
        });
        let started = std::time::Instant::now();
        assert_eq!(why(explosive, json!(1)), None);
        assert!(started.elapsed().as_secs() < 5);
    }

    #[test]
    fn mismatches_point_at_the_member() {
        let m = validate(&json!({"items": {"type": "string"}}), &json!(["a", 2])).unwrap_err();
        assert_eq!(
            m,
            Mismatch {
                at: "/1".into(),
                why: "expected string".into()
            }
        );
    }
}

use super::*;
use crate::pii::tests::{Rng, card_number, grouped, iban};
use signalbox_sdk::testing::Harness;

/// The ten sample targets `signalbox policy check` uses (ids, prices, windows, tags).
fn targets() -> Vec<Target> {
    vec![
        Target::new("openai-gpt-4o", "gpt-4o")
            .price(2.5, 10.0)
            .tag("code")
            .tag("vision"),
        Target::new("openai-gpt-4o-mini", "gpt-4o-mini")
            .price(0.15, 0.6)
            .tag("vision"),
        Target::new("azure-gpt-4o-mini-eu", "gpt-4o-mini")
            .price(0.165, 0.66)
            .tag("region:eu"),
        Target::new("anthropic-sonnet", "claude-sonnet-4")
            .price(3.0, 15.0)
            .tag("code"),
        Target::new("anthropic-haiku", "claude-haiku-3.5").price(0.8, 4.0),
        Target::new("together-llama-70b", "llama-3.3-70b")
            .price(0.88, 0.88)
            .tag("open-weights"),
        Target::new("groq-llama-8b", "llama-3.1-8b")
            .price(0.05, 0.08)
            .tag("open-weights")
            .tag("fast"),
        Target::new("vllm-qwen-coder", "qwen2.5-coder-32b")
            .price(0.0, 0.0)
            .context_window(32_768)
            .tag("code")
            .tag("self-hosted"),
        Target::new("openai-o3-mini", "o3-mini")
            .price(1.1, 4.4)
            .tag("reasoning"),
        Target::new("mistral-small-eu", "mistral-small")
            .price(0.1, 0.3)
            .context_window(32_000)
            .tag("region:eu"),
    ]
}

const EU_MINI: u32 = 2;
const QWEN: u32 = 7;
const MISTRAL_EU: u32 = 9;
const PII_APPROVED: [u32; 3] = [EU_MINI, QWEN, MISTRAL_EU];

fn example() -> String {
    std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/policies/guardrail.json"
    ))
    .unwrap()
}

fn harness() -> Harness<Guardrail> {
    Harness::new(&example(), targets()).unwrap()
}

fn healthy() -> Vec<Signals> {
    vec![Signals::default(); 10]
}

fn routed(d: &Decision) -> (&[u32], &str) {
    match d {
        Decision::Route { targets, reason } => (targets, reason),
        other => panic!("expected a route, got {other:?}"),
    }
}

#[test]
fn requests_without_sensitive_data_use_the_whole_fleet() {
    let h = harness();
    let req = RequestBuilder::chat("auto").user("Tell me a joke").build();
    let d = h.route_healthy(&req);
    let (targets, reason) = routed(&d);
    assert_eq!(targets.len(), 10);
    assert_eq!(reason, "no rule; tier 1: plain, served at tier 2");
}

#[test]
fn personal_data_anywhere_in_the_conversation_restricts_to_approved_targets() {
    let h = harness();
    for req in [
        RequestBuilder::chat("auto")
            .user("Charge 4111 1111 1111 1111 for the order")
            .build(),
        RequestBuilder::chat("auto")
            .system("Customer email: jane.doe@example.com")
            .user("Write a polite reminder")
            .build(),
        RequestBuilder::chat("auto")
            .user("My IBAN is DE89 3704 0044 0532 0130 00")
            .assistant("Thanks")
            .user("Now summarise our chat")
            .build(),
        RequestBuilder::chat("auto")
            .user("Call me on +44 20 7946 0958")
            .build(),
    ] {
        let d = h.route_healthy(&req);
        let (targets, reason) = routed(&d);
        assert!(!targets.is_empty());
        assert!(
            targets.iter().all(|t| PII_APPROVED.contains(t)),
            "{req:?}: {d:?}"
        );
        assert!(reason.starts_with("pii:"), "{reason}");
        for secret in ["4111", "jane", "DE89", "7946"] {
            assert!(!reason.contains(secret), "{reason}");
        }
    }
    let d = h.route_healthy(
        &RequestBuilder::chat("auto")
            .user("card 4111111111111111")
            .build(),
    );
    assert_eq!(
        d,
        Decision::route(
            [QWEN, MISTRAL_EU, EU_MINI],
            "pii:card; tier 1: plain, served at tier 2"
        )
    );
}

#[test]
fn regulated_requests_go_only_to_their_approved_targets() {
    let h = harness();
    for req in [
        RequestBuilder::chat("auto")
            .user("hello")
            .metadata("data-class", "Regulated")
            .build(),
        RequestBuilder::chat("auto")
            .user("hello")
            .tag("code, data-class:regulated")
            .build(),
    ] {
        let d = h.route_healthy(&req);
        assert_eq!(d.targets(), &[QWEN], "{d:?}");
        assert!(routed(&d).1.starts_with("regulated; "));
    }
    // Both rules: the intersection (self-hosted is approved for both).
    let req = RequestBuilder::chat("auto")
        .user("mail x@y.com")
        .metadata("data-class", "regulated")
        .build();
    let d = h.route_healthy(&req);
    assert_eq!(d.targets(), &[QWEN]);
    assert!(routed(&d).1.starts_with("pii:email+regulated; "));
}

#[test]
fn no_healthy_approved_target_is_a_clear_403() {
    let h = harness();
    let mut signals = healthy();
    for i in PII_APPROVED {
        signals[i as usize] = Signals::unhealthy();
    }
    let req = RequestBuilder::chat("auto")
        .user("Card 5555 5555 5555 4444, please refund")
        .build();
    let (status, message) = h.route_ids(&req, &signals).unwrap_err();
    assert_eq!(status, 403);
    assert!(
        message.contains("personal data (a payment card number)"),
        "{message}"
    );
    assert!(
        message.contains("no target approved for it is healthy"),
        "{message}"
    );
    assert!(!message.contains("5555"), "{message}");

    // One approved target healthy again: it alone is listed, even below the tier the
    // request would want.
    signals[MISTRAL_EU as usize] = Signals::default();
    let code = RequestBuilder::chat("auto")
        .user("Card 5555 5555 5555 4444: why does my refund() function throw?")
        .build();
    let d = h.route(&code, &signals);
    assert_eq!(
        d,
        Decision::route([MISTRAL_EU], "pii:card; tier 2: code, capped at tier 1")
    );

    let mut signals = healthy();
    signals[QWEN as usize] = Signals::unhealthy();
    let regulated = RequestBuilder::chat("auto")
        .user("hello")
        .metadata("data-class", "regulated")
        .build();
    let (status, message) = h.route_ids(&regulated, &signals).unwrap_err();
    assert_eq!(status, 403);
    assert!(message.contains("regulated"), "{message}");
}

#[test]
fn the_cheapest_strategy_and_untiered_approved_targets() {
    let h = Harness::<Guardrail>::new(
        r#"{"approved": {"pii": ["region:eu"]}, "strategy": "cheapest"}"#,
        targets(),
    )
    .unwrap();
    let req = RequestBuilder::chat("auto").user("a@b.com").build();
    let d = h.route_healthy(&req);
    assert_eq!(
        d,
        Decision::route([MISTRAL_EU, EU_MINI], "pii:email; cheapest")
    );

    // Cost-quality tiers only non-approved targets: the approved ones still serve,
    // cheapest first.
    let h = Harness::<Guardrail>::new(
        r#"{"approved": {"pii": ["region:eu"]},
            "cost_quality": {"tiers": {"openai-gpt-4o": 1}}}"#,
        targets(),
    )
    .unwrap();
    assert_eq!(h.route_healthy(&req).targets(), &[MISTRAL_EU, EU_MINI]);
    let plain = RequestBuilder::chat("auto").user("hi").build();
    assert_eq!(h.route_healthy(&plain).targets(), &[0]);
}

#[test]
fn embeddings_are_unscanned_so_they_count_as_personal_data_unless_allowed() {
    let targets = || {
        let mut t = targets();
        t.push(Target::new("embed-public", "text-embedding-3-small").price(0.02, 0.0));
        t.push(
            Target::new("embed-eu", "text-embedding-3-small")
                .price(0.03, 0.0)
                .tag("region:eu"),
        );
        t
    };
    let req = RequestBuilder::chat("text-embedding-3-small")
        .endpoint(Endpoint::Embedding)
        .build();
    let strict = Harness::<Guardrail>::new(&example(), targets()).unwrap();
    let d = strict.route(&req, &[Signals::default(); 12]);
    assert_eq!(
        d,
        Decision::route(
            [11],
            "pii:unscanned-embeddings; embeddings: cheapest serving the model"
        )
    );
    let mut signals = [Signals::default(); 12];
    signals[11] = Signals::unhealthy();
    let (status, message) = strict.route_ids(&req, &signals).unwrap_err();
    assert_eq!(status, 403);
    assert!(message.contains("may contain personal data"), "{message}");

    // A model only unapproved targets serve: refused by the rule, saying so.
    let public = RequestBuilder::chat("text-embedding-3-small")
        .endpoint(Endpoint::Embedding)
        .build();
    let only_public = Harness::<Guardrail>::new(&example(), {
        let mut t = targets();
        t.pop();
        t
    })
    .unwrap();
    let (status, message) = only_public
        .route_ids(&public, &[Signals::default(); 11])
        .unwrap_err();
    assert_eq!(status, 403);
    assert!(
        message.ends_with("no target approved for it can serve it, so it was not sent anywhere."),
        "{message}"
    );
    // A model nobody serves is still a 404.
    let nobody = RequestBuilder::chat("nope")
        .endpoint(Endpoint::Embedding)
        .build();
    assert_eq!(
        only_public
            .route_ids(&nobody, &[Signals::default(); 11])
            .unwrap_err()
            .0,
        404
    );

    let mut open: serde_json::Value = serde_json::from_str(&example()).unwrap();
    open["embeddings_as_pii"] = false.into();
    let open = Harness::<Guardrail>::new(&open.to_string(), targets()).unwrap();
    assert_eq!(
        open.route(&req, &[Signals::default(); 12]).targets(),
        &[10, 11]
    );
}

#[test]
fn only_the_configured_kinds_are_detected() {
    let h = Harness::<Guardrail>::new(
        r#"{"approved": {"pii": ["self-hosted"]}, "detect": ["card"], "strategy": "cheapest"}"#,
        targets(),
    )
    .unwrap();
    let email = RequestBuilder::chat("auto").user("a@b.com").build();
    assert_eq!(h.route_healthy(&email).targets().len(), 10);
    let card = RequestBuilder::chat("auto")
        .user("4111111111111111")
        .build();
    assert_eq!(h.route_healthy(&card).targets(), &[QWEN]);
}

#[test]
fn a_broken_config_is_rejected_naming_the_field() {
    for (config, needle) in [
        (
            r#"{"approved": {"pii": ["region:us"]}, "strategy": "cheapest"}"#,
            "`approved.pii[0]`: `region:us` is neither the id nor a tag of any target",
        ),
        (
            r#"{"approved": {"regulated": ["self-hosted", "onprem"]}, "strategy": "cheapest"}"#,
            "`approved.regulated[1]`",
        ),
        (
            r#"{"detect": ["email", "ssn"], "strategy": "cheapest"}"#,
            "detect[1]",
        ),
        (r#"{"strategy": "fastest"}"#, "strategy"),
        (r#"{}"#, "`cost_quality`: required"),
        (
            r#"{"strategy": "cheapest", "cost_quality": {"tiers": {}}}"#,
            "`cost_quality`: only used",
        ),
        (
            r#"{"cost_quality": {"tiers": {"gpt-9": 1}}}"#,
            "`cost_quality.tiers.gpt-9`: no target has this id",
        ),
        (
            r#"{"cost_quality": {"tiers": {"groq-llama-8b": "one"}}}"#,
            "cost_quality.tiers.groq-llama-8b",
        ),
        (r#"{"aproved": {}}"#, "unknown field `aproved`"),
    ] {
        let err = Harness::<Guardrail>::new(config, targets())
            .err()
            .unwrap_or_else(|| panic!("accepted {config}"));
        assert!(err.contains(needle), "{config}: {err}");
    }
}

/// 1,000 random requests — random prompts, some with personal data of each kind,
/// random metadata, random target health: a request with personal data or marked
/// regulated never lists an unapproved target, and is refused with 403 exactly when
/// no approved target is healthy.
#[test]
fn randomized_requests_never_reach_unapproved_targets() {
    let h = harness();
    let mut rng = Rng::new(0xc0ffee);
    let words = [
        "please",
        "summarise",
        "the",
        "invoice",
        "from",
        "2025-03-01",
        "total",
        "12.50",
        "fn",
        "main()",
        "step",
        "by",
        "compare",
        "ref",
        "#42",
        "v2.3",
        "x^2",
        "ok",
    ];
    let mut refused = 0;
    for round in 0..1_000 {
        let mut text = String::new();
        for _ in 0..1 + rng.below(20) {
            text.push_str(words[rng.below(words.len() as u64) as usize]);
            text.push(' ');
        }
        let pii = match round % 5 {
            0 => {
                let len = 13 + rng.below(7) as usize;
                let n = card_number(&mut rng, len);
                Some(grouped(&mut rng, &n))
            }
            1 => Some(format!(
                "u{}@mail{}.example.org",
                rng.below(99),
                rng.below(9)
            )),
            2 => Some(format!(
                "+{} {} {}",
                1 + rng.below(90),
                rng.digits(3),
                rng.digits(6)
            )),
            3 => {
                let n = iban(&mut rng, "FR", 23);
                Some(grouped(&mut rng, &n).replace('-', " "))
            }
            _ => None,
        };
        if let Some(p) = &pii {
            let at = rng.below(text.len() as u64 + 1) as usize;
            let at = text[..at].rfind(' ').map_or(0, |i| i + 1);
            text.insert_str(at, &format!("{p} "));
        }
        let mut builder = RequestBuilder::chat("auto").id(format!("req-{round}"));
        if rng.below(3) == 0 {
            builder = builder.system("You are a helpful assistant.");
        }
        builder = builder.user(text.clone());
        let regulated = rng.below(6) == 0;
        if regulated {
            builder = builder.metadata("data-class", "regulated");
        } else if rng.below(4) == 0 {
            builder = builder.metadata("data-class", "public");
        }
        if rng.below(3) == 0 {
            builder = builder.tag(["code", "tier:3", "eu", "tier:1"][rng.below(4) as usize]);
        }
        if rng.below(2) == 0 {
            builder = builder.metadata("user", format!("u-{}", rng.below(1000)));
        }
        let req = builder.build();
        let signals: Vec<Signals> = (0..10)
            .map(|_| {
                if rng.below(3) == 0 {
                    Signals::unhealthy()
                } else {
                    Signals::default()
                }
            })
            .collect();
        let ok_for =
            |i: u32| (pii.is_none() || PII_APPROVED.contains(&i)) && (!regulated || i == QWEN);
        let any_healthy = (0..10u32).any(|i| ok_for(i) && signals[i as usize].healthy);
        match h.route(&req, &signals) {
            Decision::Route { targets, reason } => {
                assert!(any_healthy || (pii.is_none() && !regulated), "{text}");
                assert!(targets.iter().all(|&t| ok_for(t)), "{text}: {targets:?}");
                if pii.is_some() || regulated {
                    assert!(
                        targets.iter().all(|&t| signals[t as usize].healthy),
                        "{text}: {targets:?}"
                    );
                }
                if let Some(p) = &pii {
                    assert!(!reason.contains(p.as_str()), "{reason}");
                }
            }
            Decision::Reject { status, message } => {
                assert_eq!(status, 403, "{message}");
                assert!(!any_healthy, "{text}");
                assert!(message.contains("no target approved for it is healthy"));
                refused += 1;
            }
        }
    }
    assert!(refused > 10, "the unhealthy case was exercised: {refused}");
}

use super::*;
use signalbox_sdk::{RequestBuilder, Signals, parse_config};

fn targets() -> Vec<Target> {
    vec![
        Target::new("llama-8b", "llama-3.1-8b").price(0.05, 0.08),
        Target::new("mini", "gpt-4o-mini").price(0.15, 0.6),
        Target::new("haiku", "claude-haiku").price(0.8, 4.0),
        Target::new("gpt-4o", "gpt-4o").price(2.5, 10.0),
        Target::new("o3-mini", "o3-mini").price(1.1, 4.4),
        Target::new("sonnet", "claude-sonnet").price(3.0, 15.0),
        Target::new("embed", "text-embedding-3-small").price(0.02, 0.0),
        Target::new("small-window", "tiny")
            .price(0.01, 0.01)
            .context_window(1_000),
    ]
}

const CONFIG: &str = r#"{"tiers": {"llama-8b": 1, "mini": 2, "haiku": 2, "gpt-4o": 4,
    "o3-mini": 4, "sonnet": 5}}"#;

fn tiering(config: &str) -> Tiering {
    Tiering::new(parse_config(config).unwrap(), &targets(), "").unwrap()
}

fn ids(choice: &Choice) -> Vec<&'static str> {
    let names = [
        "llama-8b",
        "mini",
        "haiku",
        "gpt-4o",
        "o3-mini",
        "sonnet",
        "embed",
        "small-window",
    ];
    choice.targets.iter().map(|&i| names[i as usize]).collect()
}

fn healthy() -> Vec<Signals> {
    vec![Signals::default(); targets().len()]
}

fn choose(t: &Tiering, req: &Request<'_>, signals: &[Signals]) -> Result<Choice, NoRoute> {
    let targets = targets();
    t.choose(req, &Snapshot::new(&targets, signals), |_| true)
}

#[test]
fn a_plain_prompt_goes_to_the_cheapest_target_then_up_the_tiers() {
    let t = tiering(CONFIG);
    let req = RequestBuilder::chat("auto").user("Say hi").build();
    let c = choose(&t, &req, &healthy()).unwrap();
    assert_eq!(
        ids(&c),
        ["llama-8b", "mini", "haiku", "o3-mini", "gpt-4o", "sonnet"]
    );
    assert_eq!(c.reason, "tier 1: plain");
}

#[test]
fn features_add_up_to_the_required_tier() {
    let t = tiering(CONFIG);
    let req = RequestBuilder::chat("auto")
        .user("Prove the theorem step by step, then check it in Python.")
        .build();
    let e = t.estimate(&req);
    assert_eq!(e.tier, 4);
    assert_eq!(e.to_string(), "tier 4: code+math+reasoning");
    let c = choose(&t, &req, &healthy()).unwrap();
    assert_eq!(ids(&c), ["o3-mini", "gpt-4o", "sonnet"]);

    let req = RequestBuilder::chat("auto")
        .user("What is 2 + 2 + 2?")
        .has_tools(true)
        .build();
    assert_eq!(t.estimate(&req).to_string(), "tier 3: math+tools");
    let c = choose(&t, &req, &healthy()).unwrap();
    assert_eq!(c.reason, "tier 3: math+tools, served at tier 4");
    assert_eq!(ids(&c), ["o3-mini", "gpt-4o", "sonnet"]);
}

#[test]
fn length_thresholds_each_add_a_tier() {
    let t = tiering(CONFIG);
    let at = |tokens| {
        t.estimate(
            &RequestBuilder::chat("auto")
                .user("hi")
                .input_tokens(tokens)
                .build(),
        )
    };
    assert_eq!(at(1_999).tier, 1);
    assert_eq!(at(2_000).to_string(), "tier 2: long");
    assert_eq!(at(16_000).to_string(), "tier 3: very-long");
}

#[test]
fn a_long_message_is_scanned_at_both_ends() {
    let t = tiering(r#"{"tiers": {"llama-8b": 1, "sonnet": 5}, "signals": {"long": 0}}"#);
    let filler = "lorem ipsum dolor sit amet ".repeat(4_000);
    let question_after = format!("{filler}\nWhy does this panic? ```let x = v[9];```");
    let question_before = format!("Prove this theorem about the text below.\n{filler}");
    let buried = format!("{filler}```code```{filler}");
    let features = |text: &str| t.estimate(&RequestBuilder::chat("auto").user(text).build());
    assert_eq!(
        features(&question_after).to_string(),
        "tier 2: very-long+code"
    );
    assert_eq!(
        features(&question_before).to_string(),
        "tier 2: very-long+math"
    );
    assert_eq!(features(&buried).to_string(), "tier 1: very-long");
}

#[test]
fn an_explicit_tier_overrides_the_estimate_and_is_capped() {
    let t = tiering(CONFIG);
    let tagged = RequestBuilder::chat("auto")
        .user("Prove it step by step in Python")
        .tag("eu, tier:2")
        .build();
    assert_eq!(t.estimate(&tagged).to_string(), "tier 2: explicit");
    let meta = RequestBuilder::chat("auto")
        .user("hi")
        .metadata("tier", "9")
        .build();
    assert_eq!(t.estimate(&meta).tier, 5);
    let junk = RequestBuilder::chat("auto")
        .user("hi")
        .metadata("tier", "high")
        .build();
    assert!(!t.estimate(&junk).explicit);
}

#[test]
fn unavailable_targets_go_last_and_the_tier_falls_upward() {
    let t = tiering(CONFIG);
    let req = RequestBuilder::chat("auto")
        .user("hi")
        .metadata("tier", "2")
        .build();
    let mut s = healthy();
    s[1] = Signals::unhealthy();
    s[2].rate_limited_ms = 1_000;
    let c = choose(&t, &req, &s).unwrap();
    assert_eq!(ids(&c), ["o3-mini", "gpt-4o", "sonnet", "haiku", "mini"]);
    assert_eq!(c.reason, "tier 2: explicit, served at tier 4");
}

#[test]
fn the_cheapest_target_at_or_above_the_tier_wins_even_from_a_higher_tier() {
    let t = tiering(
        r#"{"tiers": {"llama-8b": 1, "mini": 2, "small-window": 3}, "signals": {"base": 1}}"#,
    );
    let req = RequestBuilder::chat("auto")
        .user("hi")
        .input_tokens(10)
        .max_output_tokens(10)
        .build();
    // `small-window` (tier 3) is the cheapest of all: it leads; the fallbacks then go
    // upward from the required tier.
    assert_eq!(
        ids(&choose(&t, &req, &healthy()).unwrap()),
        ["small-window", "llama-8b", "mini"]
    );
}

#[test]
fn context_windows_and_allowed_sets_restrict_the_choice() {
    let t = tiering(r#"{"tiers": {"small-window": 1, "mini": 2}}"#);
    let long = RequestBuilder::chat("auto")
        .user("hi")
        .input_tokens(900)
        .build();
    let c = choose(&t, &long, &healthy()).unwrap();
    assert_eq!(ids(&c), ["mini"]);
    assert_eq!(c.reason, "tier 1: plain, served at tier 2");

    let targets = targets();
    let s = healthy();
    let snap = Snapshot::new(&targets, &s);
    assert_eq!(
        t.choose(&long, &snap, |i| i == 7),
        Err(NoRoute::TooLong { tokens: 1_412 })
    );
    assert_eq!(t.choose(&long, &snap, |i| i == 0), Err(NoRoute::NoTarget));
}

#[test]
fn the_required_tier_is_capped_by_what_is_allowed() {
    let t = tiering(CONFIG);
    let req = RequestBuilder::chat("auto")
        .user("Prove the theorem step by step in Python")
        .build();
    let targets = targets();
    let s = healthy();
    let c = t
        .choose(&req, &Snapshot::new(&targets, &s), |i| i <= 2)
        .unwrap();
    assert_eq!(ids(&c), ["mini", "haiku"]);
    assert_eq!(c.reason, "tier 4: code+math+reasoning, capped at tier 2");
}

#[test]
fn embeddings_go_to_the_cheapest_target_serving_the_model() {
    let t = tiering(CONFIG);
    let req = RequestBuilder::chat("text-embedding-3-small")
        .endpoint(Endpoint::Embedding)
        .build();
    assert_eq!(ids(&choose(&t, &req, &healthy()).unwrap()), ["embed"]);
    let req = RequestBuilder::chat("nope")
        .endpoint(Endpoint::Embedding)
        .build();
    assert_eq!(choose(&t, &req, &healthy()), Err(NoRoute::NoTarget));
    assert!(matches!(
        NoRoute::NoTarget.into_decision(&req),
        Decision::Reject { status: 404, .. }
    ));
}

#[test]
fn bad_configs_name_the_key() {
    let err = |json: &str| {
        let config = match parse_config::<Config>(json) {
            Ok(c) => c,
            Err(e) => return e,
        };
        Tiering::new(config, &targets(), "cost_quality.").unwrap_err()
    };
    assert_eq!(
        err(r#"{"tiers": {"nope": 1}}"#),
        "`cost_quality.tiers.nope`: no target has this id"
    );
    assert_eq!(
        err(r#"{"tiers": {"mini": 0}}"#),
        "`cost_quality.tiers.mini`: tiers start at 1"
    );
    assert_eq!(
        err(r#"{"tiers": {}}"#),
        "`cost_quality.tiers`: name at least one target"
    );
    assert_eq!(
        err(r#"{"tiers": {"mini": 2}, "signals": {"base": 3}}"#),
        "`cost_quality.signals.base`: must be between 1 and 2, the highest tier"
    );
    assert!(
        err(r#"{"tiers": {"mini": 2}, "signals": {"long_tokens": [10, 5]}}"#)
            .contains("signals.long_tokens")
    );
    assert!(err(r#"{"tiers": {"mini": "high"}}"#).contains("tiers.mini"));
    assert!(err(r#"{"tiers": {"mini": 1}, "signal": {}}"#).contains("unknown field `signal`"));
    assert!(err(r#"{"tiers": {"mini": 1}, "signals": {"cod": 1}}"#).contains("signals"));
}

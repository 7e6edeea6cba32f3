//! `policies/cost-quality` through the gateway: requests climb the quality tiers by
//! what they contain, fall back upward (never down) when a tier fails, and its
//! example config passes `policy check` while a broken one is refused.

use crate::fake_upstream::{FakeUpstream, Reply as UpstreamReply, Wire};
use crate::gateway_support::{KEY, Reply, TestGateway, send_with};
use crate::support::{engine, policy_check, wasm};
use serde_json::json;

fn component() -> std::path::PathBuf {
    wasm("signalbox_policy_cost_quality")
}

/// Three tiers, one upstream each: `small` (tier 1, cheapest), `mid` (tier 2),
/// `large` (tier 3, dearest).
fn gateway_config(small: &str, mid: &str, large: &str) -> String {
    let key = signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(KEY));
    let policy = component();
    let mut toml = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\nbreaker_failures = 2\nbreaker_cool_down_ms = 60000\n\n[engine]\ndeadline_ms = 50\n\n",
    );
    for (id, url, price) in [
        ("small", small, (0.1, 0.2)),
        ("mid", mid, (1.0, 2.0)),
        ("large", large, (10.0, 30.0)),
    ] {
        toml += &format!(
            "[[providers]]\nname = \"{id}\"\nkind = \"openai\"\nbase_url = \"{url}/v1\"\napi_key_env = \"TEST_KEY\"\n\n\
             [[targets]]\nid = \"{id}\"\nprovider = \"{id}\"\nmodel = \"{id}-model\"\ninput_price = {}\noutput_price = {}\ncontext_window = 100000\nfirst_byte_timeout_ms = 2000\n\n",
            price.0, price.1
        );
    }
    toml += &format!(
        r#"[[tenants]]
id = "acme"
key_hashes = ["{key}"]
policy = "{policy}"
safe_route = ["mid"]

[tenants.policy_config]
tiers = {{ small = 1, mid = 2, large = 3 }}
signals = {{ base = 1, code = 1, math = 1, reasoning = 1, tools = 1, long = 1, long_tokens = [2000] }}
"#,
        policy = policy.display()
    );
    toml
}

async fn ask(gw: &TestGateway, prompt: &str, headers: &[(&str, &str)]) -> Reply {
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": prompt}]});
    send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(body.to_string().as_bytes()),
        headers,
    )
    .await
}

async fn upstreams() -> [FakeUpstream; 3] {
    [
        FakeUpstream::start(Wire::OpenAi).await,
        FakeUpstream::start(Wire::OpenAi).await,
        FakeUpstream::start(Wire::OpenAi).await,
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_climb_the_tiers_by_what_they_contain() {
    let [small, mid, large] = upstreams().await;
    let gw = TestGateway::start(&gateway_config(&small.url(), &mid.url(), &large.url())).await;

    for (prompt, headers, target, reason) in [
        ("Hi there, how are you?", &[][..], "small", "tier 1: plain"),
        (
            "Why does this fail?\n```python\nprint(1/0)\n```",
            &[],
            "mid",
            "tier 2: code",
        ),
        (
            "Prove step by step that the integral of x from 0 to 1 is one half.",
            &[],
            "large",
            "tier 3: math+reasoning",
        ),
        (
            "Hi",
            &[("x-signalbox-tag", "tier:3")],
            "large",
            "tier 3: explicit",
        ),
        (
            "Hi",
            &[("x-signalbox-tier", "2")],
            "mid",
            "tier 2: explicit",
        ),
    ] {
        let r = ask(&gw, prompt, headers).await;
        assert_eq!(r.status, 200, "{prompt}: {}", r.text());
        assert_eq!(r.header("x-signalbox-target"), target, "{prompt}");
        assert_eq!(r.header("x-signalbox-route-reason"), reason, "{prompt}");
    }
    assert_eq!((small.hits(), mid.hits(), large.hits()), (1, 2, 2));
    // The client's model name is not what decides: each tier's model was asked for.
    assert_eq!(large.requests()[0].body["model"], "large-model");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_tier_falls_back_upward_never_down() {
    let [small, mid, large] = upstreams().await;
    let gw = TestGateway::start(&gateway_config(&small.url(), &mid.url(), &large.url())).await;
    mid.set_default(UpstreamReply::ok().status(500));

    // Code needs tier 2: `mid` fails, `large` answers; `small` is never tried.
    let code = "Refactor this: def f(x): return x*2";
    let r = ask(&gw, code, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-signalbox-target"), "large");
    assert_eq!(r.header("x-signalbox-attempts"), "2");

    // Once `mid`'s circuit opens, the policy sees it unhealthy and goes straight up.
    let _ = ask(&gw, code, &[]).await;
    let before = mid.hits();
    let r = ask(&gw, code, &[]).await;
    assert_eq!(r.header("x-signalbox-target"), "large");
    assert_eq!(r.header("x-signalbox-attempts"), "1");
    assert_eq!(mid.hits(), before);
    assert_eq!(small.hits(), 0);

    // A plain request still starts at tier 1 and climbs past the open circuit.
    small.set_default(UpstreamReply::ok().status(503));
    let r = ask(&gw, "hello", &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("x-signalbox-target"), "large");
    assert_eq!(small.hits(), 1);
}

#[test]
fn the_example_config_passes_policy_check() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/policies/cost-quality.json"
    );
    let config = std::fs::read_to_string(example).unwrap();
    let text = policy_check(&component(), &config);
    assert!(text.contains("(tier 2: code"), "{text}");
}

#[test]
fn a_broken_config_is_refused_at_activation_naming_the_field() {
    let policy = engine().load_file(&component()).unwrap();
    let targets = signalbox::policy::sample_targets();
    for (config, needle) in [
        (
            r#"{"tiers": {"openai-gpt-5": 2}}"#,
            "`tiers.openai-gpt-5`: no target has this id",
        ),
        (
            r#"{"tiers": {"groq-llama-8b": 1}, "signals": {"base": 4}}"#,
            "`signals.base`",
        ),
        (
            r#"{"tiers": {"groq-llama-8b": "top"}}"#,
            "tiers.groq-llama-8b",
        ),
    ] {
        let err = policy
            .bind(
                signalbox::policy::TenantContext::new("acme"),
                config,
                targets.clone(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), "bad_config", "{config}");
        assert!(err.to_string().contains(needle), "{config}: {err}");
    }
}

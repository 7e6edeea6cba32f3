//! `policies/least-loaded` through the gateway, the engine and `policy check`.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::*;
use serde_json::json;
use signalbox::policy::TenantContext;
use std::time::Duration;

fn policy() -> std::path::PathBuf {
    crate::support::wasm("signalbox_policy_least_loaded")
}

/// The gateway's default 2 ms policy deadline can be missed when the test machine is
/// busy, and a missed deadline takes the safe route instead: give the policy room, so
/// the test sees only the policy's own decisions.
const ROOMY_ENGINE: &str = "[engine]\ndeadline_ms = 100\n\n";

/// Which target serves each of four requests: one to an idle gateway, then one held
/// in flight, a second held in flight, and a third while both are held. Target `a` is
/// the cheaper. `policy_config` is the tenant's config table body.
async fn four_requests(policy_config: &str) -> Vec<String> {
    let a = FakeUpstream::start(Wire::OpenAi).await;
    let b = FakeUpstream::start(Wire::OpenAi).await;
    let tenant = format!(
        "policy = \"{}\"\n\n[tenants.policy_config]\n{policy_config}\n",
        policy().display()
    );
    let toml = config(
        &[
            ("pa", "openai", &format!("{}/v1", a.url())),
            ("pb", "openai", &format!("{}/v1", b.url())),
        ],
        &[("a", "pa", "m"), ("b", "pb", "m")],
        &tenant,
    );
    let gw = std::sync::Arc::new(TestGateway::start(&format!("{ROOMY_ENGINE}{toml}")).await);
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
    let target = |r: Reply| {
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("x-signalbox-route-reason"), "least-loaded");
        r.header("x-signalbox-target").to_owned()
    };
    let hold = |gw: std::sync::Arc<TestGateway>, body: serde_json::Value| {
        tokio::spawn(async move { chat(&gw, &body).await })
    };

    let idle = target(chat(&gw, &body).await);
    // From now on each upstream answers its next request only after 300 ms, so the
    // request it gets stays in flight meanwhile.
    let before = a.hits() + b.hits();
    for up in [&a, &b] {
        up.enqueue(Upstream::ok().delay_headers(Duration::from_millis(300)));
    }
    let first = hold(gw.clone(), body.clone());
    wait_for(|| a.hits() + b.hits() > before).await;
    let second = hold(gw.clone(), body.clone());
    wait_for(|| a.hits() + b.hits() > before + 1).await;
    let third = target(chat(&gw, &body).await);
    let first = target(first.await.unwrap());
    let second = target(second.await.unwrap());
    vec![idle, first, second, third]
}

async fn wait_for(mut done: impl FnMut() -> bool) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(std::time::Instant::now() < deadline, "timed out");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn requests_go_where_fewest_are_in_flight_ties_to_the_cheaper() {
    // Idle: a tie, so the cheaper `a`. The first held request goes to `a` too (both
    // idle again), the second to `b` (a has one in flight), the third to `a` (one each:
    // a tie again).
    let served = four_requests("").await;
    assert_eq!(served, ["a", "a", "b", "a"]);
}

#[tokio::test]
async fn in_flight_counts_relative_to_capacity() {
    // `a` takes one request at a time, `b` four: with one held on each, `a` is full
    // (1/1) and `b` a quarter busy (1/4), so the third goes to `b`.
    let served = four_requests("[tenants.policy_config.capacity]\na = 1\nb = 4").await;
    assert_eq!(served, ["a", "a", "b", "b"]);
}

#[test]
fn a_zero_capacity_is_refused_at_activation_naming_the_field() {
    let compiled = crate::support::engine().load_file(&policy()).unwrap();
    let err = compiled
        .bind(
            TenantContext::new("acme"),
            r#"{"capacity": {"mini": 0}}"#,
            crate::support::targets(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), "bad_config");
    assert!(
        err.to_string()
            .contains("`capacity.mini`: must be at least 1"),
        "{err}"
    );
}

#[test]
fn the_example_config_passes_policy_check() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/policies/least-loaded.json");
    let example = std::fs::read_to_string(path).unwrap();
    let out = policy_check(&example);
    assert!(out.0, "{}", out.1);
    assert!(
        out.1
            .contains("smoke:     `gpt-4o` -> openai-gpt-4o (least-loaded)"),
        "{}",
        out.1
    );
    let out = policy_check(&example.replace("\"vllm-qwen-coder\"", "\"vllm-gone\""));
    assert!(
        !out.0 && out.1.contains("`capacity.vllm-gone`"),
        "{}",
        out.1
    );
}

/// Runs `signalbox policy check <this policy> --config <json>`: (success, output).
fn policy_check(config: &str) -> (bool, String) {
    crate::support::policy_check_output(&policy(), config)
}

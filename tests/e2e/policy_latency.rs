//! `policies/latency` through the gateway, the engine and `policy check`.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::*;
use futures_util::future::join_all;
use serde_json::json;
use signalbox::policy::TenantContext;
use std::time::Duration;

fn policy() -> std::path::PathBuf {
    crate::support::wasm("signalbox_policy_latency")
}

/// The gateway's default 2 ms policy deadline can be missed when the test machine is
/// busy, and a missed deadline takes the safe route instead: give the policy room, so
/// the test sees only the policy's own decisions.
const ROOMY_ENGINE: &str = "[engine]\ndeadline_ms = 100\n\n";

/// Requests in flight at once.
const CONCURRENCY: usize = 8;

/// Sends `n` streamed chat requests, `CONCURRENCY` at a time; returns the target that
/// served each, in order.
async fn run(gw: &TestGateway, n: usize) -> Vec<String> {
    let url = gw.url("/v1/chat/completions");
    let body =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "Hi"}]})
            .to_string();
    let mut served = Vec::with_capacity(n);
    while served.len() < n {
        let batch = CONCURRENCY.min(n - served.len());
        let replies = join_all(
            (0..batch).map(|_| send_with("POST", &url, Some(KEY), Some(body.as_bytes()), &[])),
        )
        .await;
        for reply in replies {
            assert_eq!(reply.status, 200, "{}", reply.text());
            let reason = reply.header("x-signalbox-route-reason");
            assert!(reason.starts_with("latency:"), "{reason}");
            served.push(reply.header("x-signalbox-target").to_owned());
        }
    }
    served
}

fn share(served: &[String], target: &str) -> f64 {
    served.iter().filter(|t| *t == target).count() as f64 / served.len().max(1) as f64
}

/// Target `a` answers in 5 ms, `b` in 40 ms. When `a` turns slow (120 ms before its
/// first byte) its share falls below 10 % within 200 requests; when it turns fast
/// again, exploration measures it again and it wins its traffic back.
#[tokio::test]
async fn a_slow_target_loses_its_share_and_wins_it_back_when_fast_again() {
    let fast = Duration::from_millis(5);
    let a = FakeUpstream::start(Wire::OpenAi).await;
    let b = FakeUpstream::start(Wire::OpenAi).await;
    a.set_default(Upstream::ok().delay_headers(fast));
    b.set_default(Upstream::ok().delay_headers(Duration::from_millis(40)));
    // 3 % exploration: small enough that a slow target's share is clearly under 10 %,
    // large enough that a recovered one is measured again within a few hundred
    // requests.
    let tenant = format!(
        "policy = \"{}\"\n\n[tenants.policy_config]\nmetric = \"ttft\"\nexploration = 0.03\n",
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
    let gw = TestGateway::start(&format!("{ROOMY_ENGINE}{toml}")).await;

    // Both measured (unmeasured targets are tried first), then `a` leads.
    let warm = run(&gw, 48).await;
    assert!(share(&warm, "b") > 0.0, "b was never measured: {warm:?}");
    let settled = run(&gw, 48).await;
    assert!(share(&settled, "a") > 0.8, "a should lead: {settled:?}");

    // `a` turns slow: within 200 requests its share is below 10 %.
    a.set_default(Upstream::ok().delay_headers(Duration::from_millis(120)));
    let slow = run(&gw, 200).await;
    let tail = &slow[50..];
    assert!(
        share(tail, "a") < 0.10,
        "a kept {:.1} % of requests 51..200 while slow",
        100.0 * share(tail, "a")
    );

    // `a` is fast again: exploration re-measures it, and it takes the lead back.
    a.set_default(Upstream::ok().delay_headers(fast));
    let mut since = Vec::new();
    let recovered_after = loop {
        since.extend(run(&gw, CONCURRENCY).await);
        let recent = &since[since.len().saturating_sub(5 * CONCURRENCY)..];
        if since.len() >= 5 * CONCURRENCY && share(recent, "a") >= 0.75 {
            break since.len();
        }
        assert!(
            since.len() < 1_200,
            "a did not win its traffic back within 1,200 requests after turning fast"
        );
    };
    eprintln!(
        "latency policy: a served {:.1} % of requests 51..200 while slow; won back after {recovered_after} requests",
        100.0 * share(tail, "a")
    );
    let after = run(&gw, 48).await;
    assert!(
        share(&after, "a") > 0.8,
        "a recovered after {recovered_after} requests but then lost the lead: {after:?}"
    );
}

#[test]
fn an_exploration_share_out_of_range_is_refused_naming_the_field() {
    let compiled = crate::support::engine().load_file(&policy()).unwrap();
    let err = compiled
        .bind(
            TenantContext::new("acme"),
            r#"{"exploration": 0.9}"#,
            crate::support::targets(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), "bad_config");
    assert!(
        err.to_string()
            .contains("`exploration`: must be within [0, 0.5], got 0.9"),
        "{err}"
    );
}

#[test]
fn the_example_config_passes_policy_check() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies/latency.json");
    let example = std::fs::read_to_string(path).unwrap();
    let out = policy_check(&example);
    assert!(out.0, "{}", out.1);
    assert!(
        out.1
            .contains("smoke:     `gpt-4o` -> openai-gpt-4o (latency:"),
        "{}",
        out.1
    );
    let out = policy_check(&example.replace("\"ttft\"", "\"p50\""));
    assert!(!out.0 && out.1.contains("`metric`"), "{}", out.1);
}

/// Runs `signalbox policy check <this policy> --config <json>`: (success, output).
fn policy_check(config: &str) -> (bool, String) {
    crate::support::policy_check_output(&policy(), config)
}

//! Quotas over real TCP: requests and tokens per minute and spend budgets, for a tenant
//! and for one key, each refused with 429, the code naming the limit, and Retry-After.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::*;
use crate::keys_support::*;
use serde_json::{Value, json};
use std::time::{SystemTime, UNIX_EPOCH};

const CI_KEY: &str = "sb-quota-ci-3Fh8Jk2Lm5Np7Qr9St1Uv4Wx6Yz0Ab2Cd";

/// One upstream, target `a` (model `m`, $1 per 1M input tokens, $2 per 1M output),
/// tenant `acme` with [`KEY`] and the key `ci`, and `extra` TOML for the tenant (e.g.
/// `[tenants.limits]`) and for `ci` (its lines of `[[tenants.keys]]`).
async fn gateway(tenant_extra: &str, ci_extra: &str) -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let extra = format!("{tenant_extra}\n{}", key_entry("ci", CI_KEY, ci_extra));
    let toml = config(
        &[("pa", "openai", &format!("{}/v1", upstream.url()))],
        &[("a", "pa", "m")],
        &extra,
    );
    let gw = TestGateway::start(&toml).await;
    (upstream, gw)
}

/// A completion of `n` words, which the fake reports as `n` completion tokens.
fn words(n: usize) -> String {
    vec!["word"; n].join(" ")
}

fn with_max_tokens(n: u64) -> Value {
    let mut body = hello();
    body["max_tokens"] = json!(n);
    body
}

#[tokio::test]
async fn a_tenant_requests_per_minute_limit_covers_all_its_keys() {
    let (upstream, gw) = gateway("[tenants.limits]\nrequests_per_minute = 2\n", "").await;
    assert_eq!(chat_as(&gw, KEY, &hello()).await.status, 200);
    let embeddings = send(
        "POST",
        &gw.url("/v1/embeddings"),
        Some(CI_KEY),
        Some(json!({"model": "m", "input": "one"}).to_string().as_bytes()),
    )
    .await;
    assert_eq!(embeddings.status, 200, "{}", embeddings.text());

    for key in [KEY, CI_KEY] {
        let refused = chat_as(&gw, key, &hello()).await;
        let message = assert_error(&refused, 429, "rate_limit_error", "rate_limit_requests");
        assert!(
            message.contains("the limit of tenant `acme` is 2 per minute"),
            "{message}"
        );
        // One request comes back every 30 s.
        let secs = retry_after(&refused);
        assert!((29..=30).contains(&secs), "{secs}");
        assert!(
            message.contains(&format!("Try again in {secs} s")),
            "{message}"
        );
    }
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn a_key_requests_per_minute_limit_leaves_the_other_keys_alone() {
    let (upstream, gw) = gateway("", "requests_per_minute = 1").await;
    assert_eq!(chat_as(&gw, CI_KEY, &hello()).await.status, 200);
    let refused = chat_as(&gw, CI_KEY, &hello()).await;
    let message = assert_error(&refused, 429, "rate_limit_error", "rate_limit_requests");
    assert!(
        message.contains("the limit of API key `ci` is 1 per minute"),
        "{message}"
    );
    assert!((59..=60).contains(&retry_after(&refused)));
    for _ in 0..3 {
        assert_eq!(chat_as(&gw, KEY, &hello()).await.status, 200);
    }
    assert_eq!(upstream.hits(), 4);
}

#[tokio::test]
async fn tokens_per_minute_are_reconciled_with_the_reported_usage() {
    let (upstream, gw) = gateway("[tenants.limits]\ntokens_per_minute = 1000\n", "").await;
    // Estimated at the input plus max_tokens (over 900) but reported at 9 tokens: the
    // difference comes back, so the same request fits again at once.
    for _ in 0..2 {
        let reply = chat_as(&gw, KEY, &with_max_tokens(900)).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }

    // A streamed answer far longer than estimated (3000 tokens, with no max_tokens):
    // the usage in its last chunk puts the bucket in debt.
    upstream.enqueue(Upstream::ok().text(&words(3000)));
    let mut long = hello();
    long["stream"] = json!(true);
    long["stream_options"] = json!({"include_usage": true});
    let reply = chat_as(&gw, CI_KEY, &long).await;
    assert_eq!(reply.status, 200);
    assert!(reply.text().contains("\"completion_tokens\":3000"));

    let refused = chat_as(&gw, KEY, &hello()).await;
    let message = assert_error(&refused, 429, "rate_limit_error", "rate_limit_tokens");
    assert!(
        message.contains("the limit of tenant `acme` is 1000 per minute"),
        "{message}"
    );
    // About 3020 tokens used against 1000 a minute: the next fits in about two minutes.
    let secs = retry_after(&refused);
    assert!((100..=130).contains(&secs), "{secs}");
    assert_eq!(upstream.hits(), 3);
}

#[tokio::test]
async fn a_request_larger_than_a_whole_minute_of_tokens_is_refused_for_good() {
    let (upstream, gw) = gateway("", "tokens_per_minute = 100").await;
    let reply = chat_as(&gw, CI_KEY, &with_max_tokens(500)).await;
    let message = assert_error(&reply, 400, "invalid_request_error", "rate_limit_tokens");
    assert!(message.contains("can never be admitted"), "{message}");
    assert!(message.contains("API key `ci`"), "{message}");
    assert!(reply.headers.get("retry-after").is_none());
    // A request that fits is still served.
    assert_eq!(chat_as(&gw, CI_KEY, &with_max_tokens(50)).await.status, 200);
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn requests_no_upstream_answers_are_not_charged_tokens() {
    let (upstream, gw) = gateway("[tenants.limits]\ntokens_per_minute = 1000\n", "").await;
    // The policy rejects an unknown model: no upstream is asked.
    for _ in 0..3 {
        let mut body = with_max_tokens(900);
        body["model"] = json!("no-such-model");
        let reply = chat_as(&gw, KEY, &body).await;
        assert_eq!(reply.status, 404, "{}", reply.text());
    }
    // Every attempt fails: 503.
    upstream.set_default(Upstream::ok().status(500));
    for _ in 0..2 {
        let reply = chat_as(&gw, KEY, &with_max_tokens(900)).await;
        assert_error(&reply, 503, "upstream_error", "no_route");
    }
    upstream.set_default(Upstream::ok());
    let reply = chat_as(&gw, KEY, &with_max_tokens(900)).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
}

/// Seconds from now to the next UTC midnight.
fn secs_to_midnight() -> u64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    86_400 - now % 86_400
}

#[tokio::test]
async fn a_daily_budget_refuses_once_the_reported_usage_has_spent_it() {
    let (upstream, gw) = gateway("[tenants.limits]\nbudget_usd_per_day = 0.0003\n", "").await;
    // 4 input tokens at $1/M and 100 output tokens at $2/M: $0.000204 a request.
    upstream.set_default(Upstream::ok().text(&words(100)));
    for key in [KEY, CI_KEY] {
        let reply = chat_as(&gw, key, &hello()).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.json()["usage"]["completion_tokens"], 100);
    }
    let refused = chat_as(&gw, KEY, &hello()).await;
    let message = assert_error(&refused, 429, "insufficient_quota", "budget_exceeded");
    assert!(
        message.contains("tenant `acme` has used its daily budget of $0.0003"),
        "{message}"
    );
    let (secs, expected) = (retry_after(&refused), secs_to_midnight());
    assert!(secs.abs_diff(expected) <= 5, "{secs} vs {expected}");
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn a_key_monthly_budget_stops_that_key_only() {
    let (upstream, gw) = gateway("", "budget_usd_per_month = 0.0001").await;
    upstream.set_default(Upstream::ok().text(&words(100)));
    assert_eq!(chat_as(&gw, CI_KEY, &hello()).await.status, 200);
    let refused = chat_as(&gw, CI_KEY, &hello()).await;
    let message = assert_error(&refused, 429, "insufficient_quota", "budget_exceeded");
    assert!(
        message.contains("API key `ci` has used its monthly budget of $0.0001"),
        "{message}"
    );
    // Until the first of next month, 00:00 UTC.
    let secs = retry_after(&refused);
    assert!(
        secs + 5 >= secs_to_midnight() && secs <= 31 * 86_400,
        "{secs}"
    );
    assert_eq!(chat_as(&gw, KEY, &hello()).await.status, 200);
    assert_eq!(upstream.hits(), 2);
}

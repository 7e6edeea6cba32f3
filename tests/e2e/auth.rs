//! Every authentication outcome over real TCP: keys listed by hash or as entries get
//! through; missing, malformed and unknown keys get 401; disabled keys and keys of
//! disabled tenants get 403; all in the OpenAI error shape.

use crate::fake_upstream::{FakeUpstream, Wire};
use crate::gateway_support::*;
use crate::keys_support::*;

const CI_KEY: &str = "sb-auth-ci-7Qx2mN8pLk4vR9sT1wY6zA3bC5dE0fGh";
const OLD_KEY: &str = "sb-auth-old-Hj2Kl4Mn6Pq8Rs0Tu3Vw5Xy7Za9Bc1De";
const GONE_KEY: &str = "sb-auth-gone-Fg3Hi5Jk7Lm9No1Pq2Rs4Tu6Vw8Xy0Za";

/// Tenant `acme` with [`KEY`] (in `key_hashes`), `ci` and the disabled `old`; tenant
/// `gone`, disabled, with one key.
async fn gateway() -> (FakeUpstream, TestGateway) {
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let extra = format!(
        "{}{}[[tenants]]\nid = \"gone\"\ndisabled = true\nsafe_route = [\"a\"]\n\n{}",
        key_entry("ci", CI_KEY, ""),
        key_entry("old", OLD_KEY, "disabled = true"),
        key_entry("k", GONE_KEY, ""),
    );
    let toml = config(
        &[("pa", "openai", &format!("{}/v1", upstream.url()))],
        &[("a", "pa", "m")],
        &extra,
    );
    let gw = TestGateway::start(&toml).await;
    (upstream, gw)
}

#[tokio::test]
async fn keys_listed_by_hash_or_as_entries_get_through() {
    let (upstream, gw) = gateway().await;
    for key in [KEY, CI_KEY] {
        let reply = chat_as(&gw, key, &hello()).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        let models = send("GET", &gw.url("/v1/models"), Some(key), None).await;
        assert_eq!(models.status, 200, "{}", models.text());
    }
    // The client's key never goes upstream: the provider's own key does.
    for seen in upstream.requests() {
        assert_eq!(seen.header("authorization"), Some("Bearer upstream-secret"));
    }
}

#[tokio::test]
async fn missing_malformed_and_unknown_keys_get_401() {
    let (upstream, gw) = gateway().await;
    let url = gw.url("/v1/chat/completions");
    let body = hello().to_string();

    let missing = send("POST", &url, None, Some(body.as_bytes())).await;
    let message = assert_error(&missing, 401, "invalid_request_error", "invalid_api_key");
    assert!(message.contains("missing API key"), "{message}");

    for header in [
        format!("Basic {CI_KEY}"),
        format!("Token {CI_KEY}"),
        format!("Bearer {CI_KEY} {CI_KEY}"),
        CI_KEY.to_owned(),
        "Bearer".to_owned(),
        "Bearer    ".to_owned(),
    ] {
        let reply = send_with(
            "POST",
            &url,
            None,
            Some(body.as_bytes()),
            &[("authorization", &header)],
        )
        .await;
        let message = assert_error(&reply, 401, "invalid_request_error", "invalid_api_key");
        assert!(message.contains("malformed"), "{header:?}: {message}");
    }

    let unknown = chat_as(&gw, "sb-auth-unknown-0000000000000000000000000", &hello()).await;
    let message = assert_error(&unknown, 401, "invalid_request_error", "invalid_api_key");
    assert_eq!(message, "invalid API key");

    // Refused before reading the body: a GET is refused the same way.
    let models = send("GET", &gw.url("/v1/models"), Some("sb-nope"), None).await;
    assert_error(&models, 401, "invalid_request_error", "invalid_api_key");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn disabled_keys_and_disabled_tenants_get_403() {
    let (upstream, gw) = gateway().await;
    let old = chat_as(&gw, OLD_KEY, &hello()).await;
    let message = assert_error(&old, 403, "permission_error", "permission_denied");
    assert_eq!(message, "API key `old` is disabled");

    let gone = chat_as(&gw, GONE_KEY, &hello()).await;
    let message = assert_error(&gone, 403, "permission_error", "permission_denied");
    assert_eq!(message, "tenant `gone` is disabled");

    let models = send("GET", &gw.url("/v1/models"), Some(OLD_KEY), None).await;
    assert_error(&models, 403, "permission_error", "permission_denied");
    assert_eq!(upstream.hits(), 0);

    // The tenant's other keys are unaffected by one disabled key.
    assert_eq!(chat_as(&gw, CI_KEY, &hello()).await.status, 200);
}

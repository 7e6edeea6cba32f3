//! Helpers shared by the tests of keys, quotas and key leakage.

use crate::gateway_support::TestGateway;
use crate::gateway_support::{Reply, send};
use serde_json::{Value, json};

/// The config form of a key's hash.
pub fn hash(key: &str) -> String {
    signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(key))
}

/// A `[[tenants.keys]]` entry for `key` with `id` and extra TOML lines (e.g. limits).
pub fn key_entry(id: &str, key: &str, extra: &str) -> String {
    format!(
        "[[tenants.keys]]\nid = \"{id}\"\nhash = \"{}\"\n{extra}\n",
        hash(key)
    )
}

/// A short chat for model `m`.
pub fn hello() -> Value {
    json!({"model": "m", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]})
}

/// `POST /v1/chat/completions` with `body` and `key`.
pub async fn chat_as(gw: &TestGateway, key: &str, body: &Value) -> Reply {
    send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(key),
        Some(body.to_string().as_bytes()),
    )
    .await
}

/// Asserts an OpenAI-shaped error with `status`, `type` and `code`; returns the message.
pub fn assert_error(reply: &Reply, status: u16, kind: &str, code: &str) -> String {
    assert_eq!(reply.status, status, "{}", reply.text());
    assert_eq!(reply.header("content-type"), "application/json");
    let body = reply.json();
    let error = &body["error"];
    assert_eq!(error["type"], kind, "{body}");
    assert_eq!(error["code"], code, "{body}");
    assert!(error["param"].is_null(), "{body}");
    let message = error["message"].as_str().unwrap_or_default().to_owned();
    assert!(!message.is_empty(), "{body}");
    message
}

/// The `Retry-After` header in seconds.
pub fn retry_after(reply: &Reply) -> u64 {
    reply
        .header("retry-after")
        .parse()
        .unwrap_or_else(|_| panic!("no Retry-After in seconds: {:?}", reply.headers))
}

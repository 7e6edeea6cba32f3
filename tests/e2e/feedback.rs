//! `POST /v1/feedback`: a score reaches the policy that decided the request, only for
//! the tenant that made it, and bad input gets a clear error.

use crate::deploy::{GLOBEX_KEY, bytes, deploy, lifecycle_config, upstream};
use crate::gateway_support::{KEY, TestGateway, send, send_with};
use crate::support::hostile_policy;
use serde_json::json;

async fn chat(gw: &TestGateway, act: &str) -> crate::gateway_support::Reply {
    let r = send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#),
        &[("x-signalbox-act", act)],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r
}

async fn feedback(
    gw: &TestGateway,
    key: Option<&str>,
    body: &str,
) -> crate::gateway_support::Reply {
    send("POST", &gw.url("/v1/feedback"), key, Some(body.as_bytes())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feedback_reaches_the_deciding_policy_for_its_tenant_only() {
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    deploy(&gw, &bytes(&hostile_policy()), "hostile", json!({})).await;

    let answered = chat(&gw, "").await;
    let id = answered.header("x-request-id").to_owned();
    assert!(id.starts_with("req-"), "{id}");
    // Decisions are remembered once the response is accounted, just after it is sent.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;

    let body = json!({"request_id": id, "score": 0.75, "comment": "good answer"}).to_string();
    let foreign = feedback(&gw, Some(GLOBEX_KEY), &body).await;
    assert_eq!(
        (foreign.status, foreign.error_code().as_str()),
        (404, "not_found")
    );
    // Request ids are looked up per tenant (any of its keys may send feedback).
    let message = foreign.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.ends_with("for this tenant"), "{message}");
    assert_eq!(feedback(&gw, None, &body).await.status, 401);

    let accepted = feedback(&gw, Some(KEY), &body).await;
    assert_eq!(accepted.status, 200, "{}", accepted.text());
    assert_eq!(accepted.json()["status"], "accepted");
    // The policy saw it: request id, the served target's position (0: `pricey`),
    // and the score.
    let seen = chat(&gw, "feedback").await;
    assert_eq!(
        seen.header("x-signalbox-route-reason"),
        format!("feedback:{id}@0=0.75")
    );

    for (bad, code) in [
        (json!({"request_id": id, "score": 1.5}), 400),
        (json!({"request_id": id, "score": -0.1}), 400),
        (json!({"request_id": id}), 400),
        (json!({"request_id": id, "score": 0.5, "extra": 1}), 400),
        (json!({"request_id": "req-unknown", "score": 0.5}), 404),
    ] {
        let r = feedback(&gw, Some(KEY), &bad.to_string()).await;
        assert_eq!(r.status, code, "{bad}: {}", r.text());
        assert!(r.json()["error"]["message"].is_string());
    }
    let r = feedback(&gw, Some(KEY), "not json").await;
    assert_eq!(r.status, 400);
}

/// Every 400 the gateway and its admin API answer carries a `code` a client can branch
/// on, never `null`: each bad request below is sent over TCP and its code checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_request_answers_400_with_a_code() {
    use crate::deploy::OPERATOR;
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let chat = "/v1/chat/completions";
    let api: &[(&str, &str, &str)] = &[
        (chat, "not json", "invalid_json"),
        (chat, "[1]", "invalid_body"),
        (chat, "{}", "missing_required_parameter"),
        (chat, r#"{"model": 1}"#, "invalid_type"),
        (chat, r#"{"model": "m"}"#, "missing_required_parameter"),
        (chat, r#"{"model": "m", "messages": []}"#, "invalid_value"),
        (chat, r#"{"model": "m", "messages": "hi"}"#, "invalid_type"),
        (
            chat,
            r#"{"model": "m", "messages": [{"content": "hi"}]}"#,
            "missing_required_parameter",
        ),
        (
            "/v1/embeddings",
            r#"{"model": "m"}"#,
            "missing_required_parameter",
        ),
        ("/v1/feedback", "not json", "invalid_body"),
        ("/v1/feedback", r#"{"request_id": "r"}"#, "invalid_body"),
        (
            "/v1/feedback",
            r#"{"request_id": "r", "score": 2}"#,
            "invalid_value",
        ),
    ];
    let mut replies = Vec::new();
    for (path, body, code) in api {
        let r = send("POST", &gw.url(path), Some(KEY), Some(body.as_bytes())).await;
        replies.push((format!("POST {path} {body}"), r, *code));
    }
    let admin: &[(&str, &str, Option<&str>, &str)] = &[
        (
            "POST",
            "/admin/tenants/acme/activate",
            Some("not json"),
            "invalid_json",
        ),
        (
            "POST",
            "/admin/tenants/acme/activate",
            Some(r#"{"version": "a", "bogus": 1}"#),
            "invalid_json",
        ),
        (
            "POST",
            "/admin/tenants/acme/candidate",
            Some(r#"{"version": "a", "mode": "canary"}"#),
            "missing_required_parameter",
        ),
        (
            "POST",
            "/admin/tenants/acme/candidate",
            Some(r#"{"version": "a", "mode": "blue-green"}"#),
            "invalid_value",
        ),
        ("GET", "/admin/usage?from=yesterday", None, "invalid_value"),
        ("GET", "/admin/usage?group_by=colour", None, "invalid_value"),
        ("GET", "/admin/usage?colour=red", None, "unknown_parameter"),
    ];
    for (method, path, body, code) in admin {
        let r = send(
            method,
            &gw.admin_url(path),
            Some(OPERATOR),
            body.map(str::as_bytes),
        )
        .await;
        replies.push((format!("{method} {path} {body:?}"), r, *code));
    }
    for (what, r, code) in replies {
        assert_eq!(r.status, 400, "{what}: {}", r.text());
        let error = &r.json()["error"];
        assert!(error["code"].is_string(), "{what}: {error}");
        assert_eq!(error["code"], code, "{what}: {error}");
        assert!(error["message"].is_string(), "{what}: {error}");
    }
}

//! `policies/weighted` through the gateway, the engine and `policy check`.

use crate::fake_upstream::{FakeUpstream, Wire};
use crate::gateway_support::*;
use futures_util::future::join_all;
use serde_json::json;
use signalbox::policy::TenantContext;

fn policy() -> std::path::PathBuf {
    crate::support::wasm("signalbox_policy_weighted")
}

/// The gateway's default 2 ms policy deadline can be missed when the test machine is
/// busy, and a missed deadline takes the safe route instead: give the policy room, so
/// the test sees only the policy's own decisions.
const ROOMY_ENGINE: &str = "[engine]\ndeadline_ms = 100\n\n";

const USERS: usize = 500;

/// A gateway whose tenant splits `a`/`b` by these weights, sticky on `user`.
async fn gateway(a: &FakeUpstream, b: &FakeUpstream, weights: (u32, u32)) -> TestGateway {
    let tenant = format!(
        "policy = \"{}\"\n\n[tenants.policy_config]\nsticky_key = \"user\"\n\n[tenants.policy_config.targets]\na = {}\nb = {}\n",
        policy().display(),
        weights.0,
        weights.1
    );
    let toml = config(
        &[
            ("pa", "openai", &format!("{}/v1", a.url())),
            ("pb", "openai", &format!("{}/v1", b.url())),
        ],
        &[("a", "pa", "m"), ("b", "pb", "m")],
        &tenant,
    );
    TestGateway::start(&format!("{ROOMY_ENGINE}{toml}")).await
}

/// The target serving each of `USERS` users, the user named in the body's `user`
/// field or, with `by_header`, in the `x-signalbox-user` header. Sixteen requests at
/// a time.
async fn targets_of_users(gw: &TestGateway, by_header: bool) -> Vec<String> {
    let url = gw.url("/v1/chat/completions");
    let mut out = Vec::with_capacity(USERS);
    let users: Vec<usize> = (0..USERS).collect();
    for chunk in users.chunks(16) {
        let replies = join_all(chunk.iter().map(|i| {
            let user = format!("user-{i}");
            let url = url.clone();
            async move {
                let mut body =
                    json!({"model": "m", "messages": [{"role": "user", "content": "Hi"}]});
                let header = [("x-signalbox-user", user.as_str())];
                let headers: &[(&str, &str)] = if by_header {
                    &header
                } else {
                    body["user"] = json!(user);
                    &[]
                };
                send_with(
                    "POST",
                    &url,
                    Some(KEY),
                    Some(body.to_string().as_bytes()),
                    headers,
                )
                .await
            }
        }))
        .await;
        for reply in replies {
            assert_eq!(reply.status, 200, "{}", reply.text());
            let reason = reply.header("x-signalbox-route-reason");
            assert!(reason.starts_with("weighted:"), "{reason}");
            out.push(reply.header("x-signalbox-target").to_owned());
        }
    }
    out
}

#[tokio::test]
async fn an_80_20_split_holds_for_500_users_and_each_user_keeps_their_target() {
    let a = FakeUpstream::start(Wire::OpenAi).await;
    let b = FakeUpstream::start(Wire::OpenAi).await;
    let gw = gateway(&a, &b, (80, 20)).await;

    let first = targets_of_users(&gw, false).await;
    let on_b = first.iter().filter(|t| *t == "b").count();
    let share = on_b as f64 / USERS as f64;
    assert!((share - 0.2).abs() <= 0.06, "b served {share:.3} of users");
    assert_eq!(first.iter().filter(|t| *t == "a").count() + on_b, USERS);

    // Every user again, keyed by header this time: the same target each.
    let again = targets_of_users(&gw, true).await;
    assert_eq!(first, again, "a user changed target between requests");
    assert_eq!(a.hits() + b.hits(), 2 * USERS);

    // New weights, by config alone, on a fresh gateway: only users between the old and
    // the new boundary move, and only from `a` to `b`.
    let gw = gateway(&a, &b, (70, 30)).await;
    let after = targets_of_users(&gw, false).await;
    let moved: Vec<(&String, &String)> = first.iter().zip(&after).filter(|(x, y)| x != y).collect();
    assert!(
        moved.iter().all(|(x, y)| *x == "a" && *y == "b"),
        "{moved:?}"
    );
    let moved_share = moved.len() as f64 / USERS as f64;
    assert!(
        (moved_share - 0.1).abs() <= 0.04,
        "{moved_share:.3} of users moved for a 10-point change"
    );
}

#[test]
fn broken_weights_are_refused_at_activation_naming_the_field() {
    let compiled = crate::support::engine().load_file(&policy()).unwrap();
    for (config, needle) in [
        (
            r#"{"targets": {"mini": -5, "gpt-4o": 1}}"#,
            "`targets.mini`: the weight must be a number ≥ 0",
        ),
        (
            r#"{"targets": {"mini": 0, "gpt-4o": 0}}"#,
            "`targets`: every weight is 0",
        ),
        (
            r#"{"targets": {"gpt-5": 1}}"#,
            "`targets.gpt-5`: no target has the id `gpt-5`",
        ),
    ] {
        let err = compiled
            .bind(
                TenantContext::new("acme"),
                config,
                crate::support::targets(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), "bad_config");
        assert!(err.to_string().contains(needle), "{err}");
    }
}

#[test]
fn the_example_config_passes_policy_check() {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies/weighted.json");
    let example = std::fs::read_to_string(path).unwrap();
    let out = policy_check(&example);
    assert!(out.0, "{}", out.1);
    // The sample request's user is `u-1234`; either arm, the other follows.
    assert!(
        out.1.contains(
            "-> openai-gpt-4o, anthropic-sonnet (weighted:openai-gpt-4o (sticky on user))"
        ) || out
            .1
            .contains("-> openai-gpt-4o, anthropic-sonnet (weighted:anthropic-sonnet"),
        "{}",
        out.1
    );
    let out = policy_check(&example.replace("90", "-90"));
    assert!(
        !out.0 && out.1.contains("`targets.openai-gpt-4o`"),
        "{}",
        out.1
    );
}

/// Runs `signalbox policy check <this policy> --config <json>`: (success, output).
fn policy_check(config: &str) -> (bool, String) {
    crate::support::policy_check_output(&policy(), config)
}

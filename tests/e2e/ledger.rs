//! The usage ledger: a row per request with the upstream's tokens and the configured
//! prices; aggregates by target, model, key and day; kept across restarts; each
//! tenant's token reads only its tenant.

use crate::deploy::{
    ACME_DEPLOY, GLOBEX_DEPLOY, GLOBEX_KEY, OPERATOR, bytes, deploy, lifecycle_config,
};
use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire, prompt_tokens};
use crate::gateway_support::{KEY, TestGateway, send};
use crate::support::hostile_policy;
use serde_json::{Value, json};

const KEY2: &str = "sb-test-acme-second-key";

fn hash(secret: &str) -> String {
    signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(secret))
}

fn key_id(secret: &str) -> String {
    // The first 8 hex digits of the key's SHA-256.
    hash(secret)[7..15].to_owned()
}

async fn usage(gw: &TestGateway, token: &str, query: &str) -> (u16, Value) {
    let r = send(
        "GET",
        &gw.admin_url(&format!("/admin/usage?{query}")),
        Some(token),
        None,
    )
    .await;
    (r.status, r.json())
}

fn group<'a>(data: &'a Value, tenant: &str, key: &str) -> &'a Value {
    data["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["tenant"] == tenant && g["group"] == key)
        .unwrap_or_else(|| panic!("no {tenant}/{key} in {data}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_a_row_with_tokens_and_cost_and_aggregates_add_up() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    up.set_default(Upstream::ok().text("one two three"));
    let state = tempfile::tempdir().unwrap();
    let config = lifecycle_config(
        &up.url(),
        &format!("state_dir = '{}'", state.path().display()),
    )
    .replace(
        &format!("key_hashes = [\"{}\"]", hash(KEY)),
        &format!("key_hashes = [\"{}\", \"{}\"]", hash(KEY), hash(KEY2)),
    );
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "What is the capital of France?"}]});
    let prompt = prompt_tokens(&body) as f64;
    let completion = 3.0; // one token per word of "one two three"
    let chat = body.to_string();
    {
        let gw = TestGateway::start(&config).await;
        // acme: 4 requests on `cheap` (the default policy) with KEY, 2 with KEY2;
        // then 3 on `pricey` after deploying the hostile fixture. globex: 1.
        for key in [KEY, KEY, KEY, KEY, KEY2, KEY2] {
            let r = send(
                "POST",
                &gw.url("/v1/chat/completions"),
                Some(key),
                Some(chat.as_bytes()),
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
        }
        deploy(&gw, &bytes(&hostile_policy()), "hostile", json!({})).await;
        for _ in 0..3 {
            let r = send(
                "POST",
                &gw.url("/v1/chat/completions"),
                Some(KEY),
                Some(chat.as_bytes()),
            )
            .await;
            assert_eq!(r.header("x-signalbox-target"), "pricey");
        }
        let r = send(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(GLOBEX_KEY),
            Some(chat.as_bytes()),
        )
        .await;
        assert_eq!(r.status, 200);
    }

    // A new process on the same state directory still has every row.
    let gw = TestGateway::start(&config).await;
    let (status, by_target) = usage(&gw, OPERATOR, "group_by=target").await;
    assert_eq!(status, 200, "{by_target}");
    let cheap = group(&by_target, "acme", "cheap");
    assert_eq!(cheap["requests"], 6);
    assert_eq!(cheap["input_tokens"].as_f64().unwrap(), 6.0 * prompt);
    assert_eq!(cheap["output_tokens"].as_f64().unwrap(), 6.0 * completion);
    let expected = 6.0 * (prompt * 0.5 + completion * 1.5) / 1e6;
    assert!(
        (cheap["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{cheap}"
    );
    let pricey = group(&by_target, "acme", "pricey");
    assert_eq!(pricey["requests"], 3);
    let expected = 3.0 * (prompt * 10.0 + completion * 30.0) / 1e6;
    assert!(
        (pricey["cost_usd"].as_f64().unwrap() - expected).abs() < 1e-12,
        "{pricey}"
    );
    assert_eq!(group(&by_target, "globex", "cheap")["requests"], 1);

    let (_, by_model) = usage(&gw, OPERATOR, "tenant=acme&group_by=model").await;
    assert_eq!(by_model["data"].as_array().unwrap().len(), 1);
    assert_eq!(group(&by_model, "acme", "m")["requests"], 9);
    let (_, by_key) = usage(&gw, OPERATOR, "tenant=acme&group_by=key").await;
    assert_eq!(group(&by_key, "acme", &key_id(KEY))["requests"], 7);
    assert_eq!(group(&by_key, "acme", &key_id(KEY2))["requests"], 2);
    let today = {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        now.as_secs() / 86_400 * 86_400
    };
    let (_, by_day) = usage(
        &gw,
        OPERATOR,
        &format!("tenant=acme&group_by=day&from={today}"),
    )
    .await;
    let days = by_day["data"].as_array().unwrap();
    assert_eq!(days.len(), 1, "{by_day}");
    assert_eq!(days[0]["requests"], 9);
    let (_, none) = usage(&gw, OPERATOR, &format!("tenant=acme&to={today}")).await;
    assert!(none["data"].as_array().unwrap().is_empty());

    // Tenant tokens: their own usage only.
    let (status, own) = usage(&gw, ACME_DEPLOY, "group_by=target").await;
    assert_eq!(status, 200);
    assert!(
        own["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|g| g["tenant"] == "acme"),
        "{own}"
    );
    let (status, _) = usage(&gw, ACME_DEPLOY, "tenant=globex").await;
    assert_eq!(status, 403);
    let (_, globex) = usage(&gw, GLOBEX_DEPLOY, "").await;
    assert_eq!(globex["data"].as_array().unwrap().len(), 1);
    let (status, _) = usage(&gw, OPERATOR, "group_by=color").await;
    assert_eq!(status, 400);
    // `signalbox usage` reads the same figures from the database.
    let file = state.path().join("gateway.toml");
    std::fs::write(&file, &config).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args([
            "usage",
            "--tenant",
            "acme",
            "--group-by",
            "target",
            "--config",
        ])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let line = |name: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name) || l.starts_with(name))
            .unwrap_or_else(|| panic!("no {name} row in\n{table}"))
            .split_whitespace()
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    assert_eq!(line("cheap")[2], "6", "{table}");
    assert_eq!(line("pricey")[2], "3", "{table}");
    assert_eq!(line("total")[1], "9", "{table}");

    // Keys never reach the ledger, only their ids.
    let db = std::fs::read(state.path().join("usage.db")).unwrap();
    for secret in [KEY, KEY2, GLOBEX_KEY] {
        assert!(!db.windows(secret.len()).any(|w| w == secret.as_bytes()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_stays_spent_across_a_restart() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    let state = tempfile::tempdir().unwrap();
    let config = lifecycle_config(
        &up.url(),
        &format!("state_dir = '{}'", state.path().display()),
    )
    .replacen(
        "safe_route = [\"cheap\"]\n",
        "safe_route = [\"cheap\"]\n[tenants.limits]\nbudget_usd_per_day = 0.00002\n",
        1,
    );
    let chat =
        br#"{"model":"m","messages":[{"role":"user","content":"What is the capital of France?"}]}"#;
    {
        let gw = TestGateway::start(&config).await;
        let mut refused = None;
        for i in 0..20 {
            let r = send(
                "POST",
                &gw.url("/v1/chat/completions"),
                Some(KEY),
                Some(chat),
            )
            .await;
            if r.status == 429 {
                refused = Some((i, r.error_code()));
                break;
            }
            assert_eq!(r.status, 200, "{}", r.text());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        let (after, code) = refused.expect("the budget was never exhausted");
        assert!(after >= 1, "refused before spending anything");
        assert_eq!(code, "budget_exceeded");
    }
    let gw = TestGateway::start(&config).await;
    let r = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(chat),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (429, "budget_exceeded"),
        "{}",
        r.text()
    );
    assert!(r.header("retry-after").parse::<u64>().unwrap() >= 1);
    // Another tenant's budget is its own.
    let r = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(GLOBEX_KEY),
        Some(chat),
    )
    .await;
    assert_eq!(r.status, 200);
}

/// An upstream's refusal (a 4xx passed on to the client) is not billed: its ledger
/// row costs nothing, as its budget counted nothing, so a restart, which restores the
/// budgets from the ledger, does not charge it either. (Found by the chaos soak: the
/// ledger priced the refusal at the input estimate while the budget gave it back.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_refusal_costs_nothing_in_the_ledger_or_after_a_restart() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    let state = tempfile::tempdir().unwrap();
    // Less than any request costs: one charge exhausts it.
    let config = lifecycle_config(
        &up.url(),
        &format!("state_dir = '{}'", state.path().display()),
    )
    .replacen(
        "safe_route = [\"cheap\"]\n",
        "safe_route = [\"cheap\"]\n[tenants.limits]\nbudget_usd_per_day = 0.000001\n",
        1,
    );
    let chat =
        br#"{"model":"m","messages":[{"role":"user","content":"What is the capital of France?"}]}"#;
    {
        let gw = TestGateway::start(&config).await;
        up.enqueue(Upstream::ok().status(400));
        let r = send(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(KEY),
            Some(chat),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.text());
        // The row is written off the request's path: wait for it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let usage = loop {
            let (status, usage) = usage(&gw, OPERATOR, "tenant=acme").await;
            assert_eq!(status, 200, "{usage}");
            if usage["data"]
                .as_array()
                .is_some_and(|rows| !rows.is_empty())
                || std::time::Instant::now() > deadline
            {
                break usage;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        let cheap = group(&usage, "acme", "cheap");
        assert_eq!(cheap["requests"], 1);
        assert_eq!(cheap["cost_usd"].as_f64(), Some(0.0), "{cheap}");
        // The budget's own count agrees.
        let metrics = send("GET", &gw.admin_url("/metrics"), Some(OPERATOR), None).await;
        let spent: f64 = metrics
            .text()
            .lines()
            .find_map(|l| {
                l.strip_prefix("signalbox_budget_spent_usd{tenant=\"acme\",window=\"day\"} ")
            })
            .unwrap_or_else(|| panic!("no budget gauge in {}", metrics.text()))
            .parse()
            .unwrap();
        assert_eq!(spent, 0.0);
    }
    let gw = TestGateway::start(&config).await;
    let r = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(chat),
    )
    .await;
    assert_eq!(r.status, 200, "the refusal was charged: {}", r.text());
}

//! Sign-in, sessions, CSRF and scopes, over plain HTTP against a real gateway.

use super::{Dashboard, csrf_of};
use crate::deploy::{
    ACME_DEPLOY, GLOBEX_DEPLOY, GLOBEX_KEY, OPERATOR, bytes, report, served, upload,
};
use crate::gateway_support::send;
use crate::support::hostile_policy;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_a_strict_http_only_cookie_and_never_echoes_the_token() {
    let d = Dashboard::start().await;
    let form = d.get("/dashboard", "").await;
    assert_eq!(form.status, 200);
    assert!(form.text().contains("id=\"sign-in\""), "{}", form.text());
    assert!(
        form.header("content-security-policy")
            .contains("default-src 'self'")
    );

    let wrong = d
        .post_form("/dashboard/sign-in", "token=sb-not-a-token-xyz", &[])
        .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.headers.get("set-cookie").is_none());
    assert!(!wrong.text().contains("sb-not-a-token-xyz"));
    assert!(wrong.text().contains("not accepted"));

    let foreign = d
        .post_form(
            "/dashboard/sign-in",
            &format!("token={ACME_DEPLOY}"),
            &[("origin", "http://elsewhere.example")],
        )
        .await;
    assert_eq!(foreign.status, 403, "{}", foreign.text());
    assert!(foreign.headers.get("set-cookie").is_none());

    let ok = d
        .post_form("/dashboard/sign-in", &format!("token={ACME_DEPLOY}"), &[])
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.header("location"), "/dashboard");
    let cookie = ok.header("set-cookie");
    for flag in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/dashboard",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP listener: {cookie}");
    assert!(!cookie.contains(ACME_DEPLOY));
    let session = cookie.split(';').next().unwrap();

    for page in [
        "/dashboard",
        "/dashboard/policies",
        "/dashboard/usage",
        "/dashboard/decisions",
        "/dashboard/replay",
        "/dashboard/routing",
    ] {
        let r = d.get(page, session).await;
        assert_eq!(r.status, 200, "{page}");
        let text = r.text();
        assert!(text.contains("tenant acme"), "{page}: {text}");
        assert!(!text.contains(ACME_DEPLOY), "{page} echoes the token");
        assert!(!text.contains("globex"), "{page} shows another tenant");
        assert_eq!(r.header("cache-control"), "no-store");
    }
    // The assets are embedded and served to anyone (they hold no data).
    let js = d.get("/dashboard/assets/dashboard.js", "").await;
    assert_eq!(
        (js.status, js.header("content-type")),
        (200, "text/javascript; charset=utf-8")
    );
    // A made-up session id is no session.
    let forged = d.get("/dashboard/api/tenants", "sb_dashboard=00ff").await;
    assert_eq!(forged.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_action_needs_the_sessions_csrf_token() {
    let d = Dashboard::start().await;
    let hostile = upload(
        &d.gw,
        "acme",
        OPERATOR,
        "hostile",
        &bytes(&hostile_policy()),
        &json!({}),
    )
    .await;
    assert_eq!(hostile.status, 201, "{}", hostile.text());
    let version = hostile.json()["version"].as_str().unwrap().to_owned();
    let (cookie, csrf) = d.sign_in(OPERATOR).await;
    let before = report(&d.gw, "acme").await;

    let canary = json!({"version": version, "mode": "canary", "percent": 50});
    let actions = [
        ("activate", json!({"version": version})),
        ("rollback", json!({})),
        ("candidate", canary.clone()),
        ("candidate/promote", json!({})),
        ("candidate/discard", json!({})),
    ];
    let wrong = "0".repeat(64);
    for (op, body) in &actions {
        let without = vec![("cookie", cookie.as_str())];
        let forged = vec![
            ("cookie", cookie.as_str()),
            ("x-csrf-token", wrong.as_str()),
        ];
        for headers in [without, forged] {
            let r = d.act("acme", op, body, &headers).await;
            assert_eq!(r.status, 403, "{op}: {}", r.text());
            assert_eq!(r.error_code(), "csrf_token_invalid", "{op}");
        }
        // Without a session at all: 401.
        let r = d
            .act("acme", op, body, &[("x-csrf-token", csrf.as_str())])
            .await;
        assert_eq!(r.status, 401, "{op}");
    }
    let after = report(&d.gw, "acme").await;
    assert_eq!(
        after["active"], before["active"],
        "a refused action changed the binding"
    );
    assert!(after["candidate"].is_null());

    // With the token, the same action runs, through the admin API's own operation.
    let with = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    let r = d.act("acme", "candidate", &canary, &with).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(report(&d.gw, "acme").await["candidate"]["version"], version);
    // Bad input is the admin API's error, in the OpenAI shape.
    let r = d
        .act(
            "acme",
            "candidate",
            &json!({"version": version, "mode": "sideways"}),
            &with,
        )
        .await;
    assert_eq!((r.status, r.error_code().as_str()), (400, "invalid_value"));

    // Signing out is a state change too.
    let refused = d
        .post_form("/dashboard/sign-out", "", &[("cookie", cookie.as_str())])
        .await;
    assert_eq!(refused.status, 403);
    assert_eq!(d.get("/dashboard/api/tenants", &cookie).await.status, 200);
    let out = d
        .post_form(
            "/dashboard/sign-out",
            &format!("csrf={csrf}"),
            &[("cookie", cookie.as_str())],
        )
        .await;
    assert_eq!(out.status, 303);
    assert!(out.header("set-cookie").contains("Max-Age=0"));
    assert_eq!(d.get("/dashboard/api/tenants", &cookie).await.status, 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_token_session_sees_and_acts_on_its_own_tenant_only() {
    let d = Dashboard::start().await;
    served(&d.gw, None, &[]).await;
    let globex = send(
        "POST",
        &d.gw.url("/v1/chat/completions"),
        Some(GLOBEX_KEY),
        Some(
            json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]})
                .to_string()
                .as_bytes(),
        ),
    )
    .await;
    assert_eq!(globex.status, 200);
    let (cookie, csrf) = d.sign_in(ACME_DEPLOY).await;
    let (g_cookie, _) = d.sign_in(GLOBEX_DEPLOY).await;
    assert_ne!(cookie, g_cookie);

    let tenants = d.get("/dashboard/api/tenants", &cookie).await.json();
    let ids: Vec<&str> = tenants["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["acme"]);
    let overview = d.get("/dashboard/api/overview", &cookie).await;
    assert_eq!(overview.status, 200);
    let o = overview.json();
    assert!(o["traffic"]["acme"].is_object(), "{o}");
    assert!(o["traffic"].get("globex").is_none(), "{o}");

    for path in [
        "/dashboard/api/tenants/globex/policies",
        "/dashboard/api/tenants/globex/decisions",
        "/dashboard/api/tenants/globex/decisions/whatever",
        "/dashboard/api/usage?tenant=globex",
        "/dashboard/policies?tenant=globex",
        "/dashboard/decisions?tenant=globex",
    ] {
        let r = d.get(path, &cookie).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
    }
    let with = [("cookie", cookie.as_str()), ("x-csrf-token", csrf.as_str())];
    for op in ["rollback", "candidate/discard", "candidate/promote"] {
        let r = d.act("globex", op, &json!({}), &with).await;
        assert_eq!(r.status, 403, "{op}: {}", r.text());
    }
    // Its own tenant: readable.
    let own = d.get("/dashboard/api/tenants/acme/policies", &cookie).await;
    assert_eq!(own.status, 200, "{}", own.text());
    assert_eq!(own.json()["tenant"], "acme");
    // Budgets: its own tenant's only.
    let budgets = d.get("/dashboard/api/budgets", &cookie).await.json();
    let tenants: Vec<&Value> = budgets["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["tenant"])
        .collect();
    assert_eq!(tenants, [&json!("acme")], "{budgets}");
    // Usage without a tenant is its own tenant's.
    let usage = d
        .get("/dashboard/api/usage?group_by=target", &cookie)
        .await
        .json();
    assert!(
        usage["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["tenant"] == "acme"),
        "{usage}"
    );
    // A page's CSRF token is the session's own: globex's does not work for acme.
    let g_page = d.get("/dashboard", &g_cookie).await.text();
    let g_csrf = csrf_of(&g_page);
    assert_ne!(g_csrf, csrf);
    let r = d
        .act(
            "acme",
            "rollback",
            &json!({}),
            &[
                ("cookie", cookie.as_str()),
                ("x-csrf-token", g_csrf.as_str()),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
}

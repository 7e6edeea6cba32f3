//! Policy lifecycle through the admin API and the watched directory: uploads and
//! their validation, activation, rollback, quarantine, restart, tokens, shadow and
//! canary — against a real gateway over TCP with real policy components.

use crate::fake_upstream::{FakeUpstream, Reply as UpstreamReply, Wire};
use crate::gateway_support::{KEY, Reply, TestGateway, send};
use crate::support::{default_policy, hostile_policy, wasm};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub const OPERATOR: &str = "sb-admin-operator-token";
pub const ACME_DEPLOY: &str = "sb-admin-acme-deploy";
pub const GLOBEX_DEPLOY: &str = "sb-admin-globex-deploy";
pub const GLOBEX_KEY: &str = "sb-test-globex-key";

fn hash(secret: &str) -> String {
    signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(secret))
}

/// Two targets serving model `m` — `pricey` (index 0) and `cheap` (index 1) — so the
/// default policy (cheapest first) and the hostile fixture (always index 0) choose
/// differently. Tenants `acme` and `globex`, an admin listener with an operator
/// token and one deploy token per tenant; `admin_extra` goes into `[admin]`.
pub fn lifecycle_config(upstream: &str, admin_extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"

[engine]
deadline_ms = 50

[admin]
listen = "127.0.0.1:0"
quarantine_after = 3
{admin_extra}

[[admin.tokens]]
hash = "{op}"

[[admin.tokens]]
hash = "{acme}"
tenant = "acme"

[[admin.tokens]]
hash = "{globex}"
tenant = "globex"

[[providers]]
name = "up"
kind = "openai"
base_url = "{upstream}/v1"

[[targets]]
id = "pricey"
provider = "up"
model = "m"
input_price = 10.0
output_price = 30.0

[[targets]]
id = "cheap"
provider = "up"
model = "m"
input_price = 0.5
output_price = 1.5

[[tenants]]
id = "acme"
key_hashes = ["{key}"]
safe_route = ["cheap"]

[[tenants]]
id = "globex"
key_hashes = ["{globex_key}"]
safe_route = ["cheap"]
"#,
        op = hash(OPERATOR),
        acme = hash(ACME_DEPLOY),
        globex = hash(GLOBEX_DEPLOY),
        key = hash(KEY),
        globex_key = hash(GLOBEX_KEY),
    )
}

pub async fn upstream() -> FakeUpstream {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    up.set_default(UpstreamReply::ok());
    up
}

pub fn bytes(path: &std::path::Path) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// `POST .../policies` with the component and its config.
pub async fn upload(
    gw: &TestGateway,
    tenant: &str,
    token: &str,
    name: &str,
    component: &[u8],
    config: &Value,
) -> Reply {
    let query = format!("name={name}&config={}", form_encode(&config.to_string()));
    send(
        "POST",
        &gw.admin_url(&format!("/admin/tenants/{tenant}/policies?{query}")),
        Some(token),
        Some(component),
    )
    .await
}

fn form_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `POST .../{op}` with a JSON body.
pub async fn admin_post(
    gw: &TestGateway,
    tenant: &str,
    token: &str,
    op: &str,
    body: &Value,
) -> Reply {
    send(
        "POST",
        &gw.admin_url(&format!("/admin/tenants/{tenant}/{op}")),
        Some(token),
        Some(body.to_string().as_bytes()),
    )
    .await
}

pub async fn report(gw: &TestGateway, tenant: &str) -> Value {
    let r = send(
        "GET",
        &gw.admin_url(&format!("/admin/tenants/{tenant}/policies")),
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

/// Uploads and activates; returns the version id.
pub async fn deploy(gw: &TestGateway, component: &[u8], name: &str, config: Value) -> String {
    let up = upload(gw, "acme", OPERATOR, name, component, &config).await;
    assert_eq!(up.status, 201, "{}", up.text());
    let version = up.json()["version"].as_str().unwrap().to_owned();
    let on = admin_post(
        gw,
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": version, "config": config}),
    )
    .await;
    assert_eq!(on.status, 200, "{}", on.text());
    version
}

/// One chat as `acme` (optionally as end user `user`, with extra headers): the
/// policy label and target that served it.
pub async fn served(
    gw: &TestGateway,
    user: Option<&str>,
    headers: &[(&str, &str)],
) -> (String, String) {
    let mut body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]});
    if let Some(u) = user {
        body["user"] = json!(u);
    }
    let r = crate::gateway_support::send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(body.to_string().as_bytes()),
        headers,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    (
        r.header("x-signalbox-policy").to_owned(),
        r.header("x-signalbox-target").to_owned(),
    )
}

pub fn label(name: &str, version: &str) -> String {
    format!("{name}@{}", &version[..12])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_activate_list_and_roll_back() {
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let (before, target) = served(&gw, None, &[]).await;
    assert!(before.starts_with("default@"), "{before}");
    assert_eq!(target, "cheap");

    let hostile = bytes(&hostile_policy());
    let version = deploy(&gw, &hostile, "hostile", json!({})).await;
    assert_eq!(version.len(), 64);
    assert_eq!(
        served(&gw, None, &[]).await,
        (label("hostile", &version), "pricey".into())
    );

    let listed = report(&gw, "acme").await;
    assert_eq!(listed["active"]["version"], version);
    let versions = listed["versions"].as_array().unwrap();
    assert_eq!(versions.len(), 2, "{listed}");
    let entry = versions.iter().find(|v| v["version"] == version).unwrap();
    assert_eq!(entry["active"], true);
    assert_eq!(entry["size"], hostile.len());
    assert_eq!(entry["name"], "hostile");
    assert!(entry["uploaded_at"].as_u64().unwrap() > 1_700_000_000);
    // Smoke calls are not counted; the one live request is.
    assert_eq!(entry["calls"], 1, "{entry}");
    assert_eq!(entry["errors"], 0);

    let back = admin_post(&gw, "acme", OPERATOR, "rollback", &json!({})).await;
    assert_eq!(back.status, 200, "{}", back.text());
    assert_eq!(
        served(&gw, None, &[]).await,
        (before.clone(), "cheap".into())
    );
    let again = admin_post(&gw, "acme", OPERATOR, "rollback", &json!({})).await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (409, "no_history")
    );

    // Uploading the same bytes again is the same version.
    let same = upload(&gw, "acme", OPERATOR, "hostile", &hostile, &json!({})).await;
    assert_eq!(same.json()["version"], version);
    let missing = admin_post(
        &gw,
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": "0".repeat(64)}),
    )
    .await;
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "version_not_found")
    );
}

/// `component` with a custom section appended: the same policy as another version.
fn variant(component: &[u8], n: u32) -> Vec<u8> {
    let name = b"signalbox-test-variant";
    let payload = n.to_le_bytes();
    let size = 1 + name.len() + payload.len();
    assert!(size < 128, "one-byte LEB128 sizes");
    let mut out = component.to_vec();
    out.extend([0, size as u8, name.len() as u8]);
    out.extend(name);
    out.extend(payload);
    out
}

/// Headers show versions as 12 hex digits: `activate` takes any unique prefix, keeps
/// the version's last config when the request names none, and refuses an ambiguous
/// prefix with 409 naming the candidates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activate_takes_a_unique_prefix_and_keeps_the_last_config() {
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let (default_label, _) = served(&gw, None, &[]).await;
    let hostile = bytes(&hostile_policy());

    // Uploaded with a config (one only this test uses), never bound yet.
    let config = json!({"act": "env"});
    let r = upload(&gw, "acme", OPERATOR, "hostile", &hostile, &config).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let version = r.json()["version"].as_str().unwrap().to_owned();
    let on = admin_post(
        &gw,
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": &version[..12]}),
    )
    .await;
    assert_eq!(on.status, 200, "{}", on.text());
    assert_eq!(on.json()["active"]["version"], version);
    assert_eq!(report(&gw, "acme").await["active"]["config"], config);

    // Back to the default policy by a short prefix, then forward again without a
    // config: the hostile version keeps the config it was last bound with.
    let default_version = report(&gw, "acme").await["history"][0]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let short = default_label.split('@').nth(1).unwrap();
    assert!(default_version.starts_with(short));
    let mut prefix = short[..4].to_owned();
    while version.starts_with(&prefix) {
        prefix = default_version[..prefix.len() + 1].to_owned();
    }
    let back = admin_post(
        &gw,
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": prefix}),
    )
    .await;
    assert_eq!(back.status, 200, "{}", back.text());
    assert_eq!(served(&gw, None, &[]).await.0, default_label);
    let again = admin_post(
        &gw,
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": version.to_uppercase()[..8]}),
    )
    .await;
    assert_eq!(again.status, 200, "{}", again.text());
    assert_eq!(report(&gw, "acme").await["active"]["config"], config);

    // Two versions that share their first digit: that digit alone is ambiguous.
    let first = variant(&hostile, 0);
    let first_version = signalbox::policy::sha256_hex(&first);
    let second = (1..)
        .map(|n| variant(&hostile, n))
        .find(|c| signalbox::policy::sha256_hex(c)[..1] == first_version[..1])
        .unwrap();
    let second_version = signalbox::policy::sha256_hex(&second);
    for component in [&first, &second] {
        let r = upload(&gw, "acme", OPERATOR, "variant", component, &json!({})).await;
        assert_eq!(r.status, 201, "{}", r.text());
    }
    let ambiguous = admin_post(
        &gw,
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": &first_version[..1]}),
    )
    .await;
    assert_eq!(
        (ambiguous.status, ambiguous.error_code().as_str()),
        (409, "ambiguous_version"),
        "{}",
        ambiguous.text()
    );
    let message = ambiguous.json()["error"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    for v in [&first_version, &second_version] {
        assert!(message.contains(&v[..12]), "{message}");
    }
    assert_eq!(
        report(&gw, "acme").await["active"]["version"],
        version,
        "a refused activation changes nothing"
    );
    let unknown = admin_post(
        &gw,
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": "xyz"}),
    )
    .await;
    assert_eq!(
        (unknown.status, unknown.error_code().as_str()),
        (404, "version_not_found")
    );
}

/// `GET /admin/tenants` lists what the token may act on; the history names each
/// earlier binding with its config; a memory-cap hit is counted as its own kind; a
/// shadow with no decisions yet has no agreement rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_history_and_counters_say_what_they_mean() {
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let list = |token: Option<&'static str>| {
        let url = gw.admin_url("/admin/tenants");
        async move { send("GET", &url, token, None).await }
    };
    let all = list(Some(OPERATOR)).await;
    assert_eq!(all.status, 200, "{}", all.text());
    let ids: Vec<Value> = all.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("acme"), json!("globex")]);
    let own = list(Some(ACME_DEPLOY)).await.json();
    assert_eq!(own["data"].as_array().unwrap().len(), 1, "{own}");
    assert_eq!(own["data"][0]["id"], "acme");
    assert!(
        own["data"][0]["active"]["label"]
            .as_str()
            .unwrap()
            .starts_with("default@"),
        "{own}"
    );
    assert!(own["data"][0]["candidate"].is_null());
    assert_eq!(list(None).await.status, 401);

    let default_version = report(&gw, "acme").await["active"]["version"].clone();
    let version = deploy(
        &gw,
        &bytes(&hostile_policy()),
        "hostile",
        json!({"act": "env"}),
    )
    .await;
    let history = report(&gw, "acme").await["history"].clone();
    assert_eq!(history[0]["version"], default_version, "{history}");
    assert_eq!(history[0]["name"], "default", "{history}");
    assert!(history[0]["config"].is_object(), "{history}");

    // A request that runs the instance out of memory: served by the safe route,
    // counted as a memory-cap hit, not as a trap.
    let hog = [("x-signalbox-act", "hog")];
    assert_eq!(served(&gw, None, &hog).await.1, "cheap");
    let listed = report(&gw, "acme").await;
    let entry = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .unwrap()
        .clone();
    assert_eq!(
        (&entry["memory_limits"], &entry["traps"], &entry["errors"]),
        (&json!(1), &json!(0), &json!(1)),
        "{entry}"
    );

    let r = admin_post(
        &gw,
        "acme",
        OPERATOR,
        "candidate",
        &json!({"version": default_version, "mode": "shadow"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = list(Some(OPERATOR)).await.json();
    assert_eq!(listed["data"][0]["candidate"]["mode"], "shadow", "{listed}");
    let shadow = report(&gw, "acme").await["candidate"]["shadow"].clone();
    assert_eq!(shadow["decisions"], 0, "{shadow}");
    assert!(shadow["agreement_rate"].is_null(), "{shadow}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_uploads_are_refused_with_a_reason_and_change_nothing() {
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let (before, _) = served(&gw, None, &[]).await;
    let hostile = bytes(&hostile_policy());
    let random: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let cases: Vec<(&str, Vec<u8>, Value, &str, &str)> = vec![
        (
            "random bytes",
            random,
            json!({}),
            "invalid_policy",
            "not a WebAssembly file",
        ),
        (
            "wrong contract",
            bytes(&wasm("signalbox_fixture_future_contract")),
            json!({}),
            "invalid_policy",
            "policy built for signalbox:policy@",
        ),
        (
            "rejects its config",
            hostile.clone(),
            json!({"accept": false}),
            "activation_failed",
            "refuses its config",
        ),
        (
            "config not an object",
            hostile.clone(),
            json!([1, 2]),
            "invalid_config",
            "JSON object",
        ),
        (
            "unknown targets",
            hostile.clone(),
            json!({"act": "bogus"}),
            "smoke_call_failed",
            "target index 99 does not exist",
        ),
        (
            "infinite loop",
            hostile.clone(),
            json!({"act": "spin"}),
            "smoke_call_failed",
            "deadline",
        ),
    ];
    for (what, component, config, code, reason) in cases {
        let r = upload(&gw, "acme", OPERATOR, "bad", &component, &config).await;
        assert_eq!(r.status, 422, "{what}: {}", r.text());
        assert_eq!(r.error_code(), code, "{what}: {}", r.text());
        let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
        assert!(message.contains(reason), "{what}: {message}");
        assert_eq!(
            served(&gw, None, &[]).await,
            (before.clone(), "cheap".into()),
            "{what}"
        );
    }
    // Nothing was stored but the configured policy.
    assert_eq!(
        report(&gw, "acme").await["versions"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_scoped_to_their_tenant() {
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let hostile = bytes(&hostile_policy());
    let path = |t: &str| gw.admin_url(&format!("/admin/tenants/{t}/policies"));

    assert_eq!(send("GET", &path("acme"), None, None).await.status, 401);
    assert_eq!(
        send("GET", &path("acme"), Some("sb-admin-wrong"), None)
            .await
            .status,
        401
    );
    // The tenant's API key is not an admin token.
    assert_eq!(
        send("GET", &path("acme"), Some(KEY), None).await.status,
        401
    );
    assert_eq!(
        send("GET", &path("acme"), Some(ACME_DEPLOY), None)
            .await
            .status,
        200
    );
    let foreign = send("GET", &path("globex"), Some(ACME_DEPLOY), None).await;
    assert_eq!(
        (foreign.status, foreign.error_code().as_str()),
        (403, "permission_denied")
    );
    let r = upload(&gw, "globex", ACME_DEPLOY, "x", &hostile, &json!({})).await;
    assert_eq!(r.status, 403);
    let r = admin_post(&gw, "globex", ACME_DEPLOY, "rollback", &json!({})).await;
    assert_eq!(r.status, 403);
    assert_eq!(
        send("GET", &path("nobody"), Some(OPERATOR), None)
            .await
            .status,
        404
    );
    assert_eq!(
        send("GET", &path("nobody"), Some(ACME_DEPLOY), None)
            .await
            .status,
        403
    );

    // acme's deploy token deploys for acme; globex neither sees nor serves it.
    let r = upload(&gw, "acme", ACME_DEPLOY, "hostile", &hostile, &json!({})).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let version = r.json()["version"].as_str().unwrap().to_owned();
    let seen_by_globex = send("GET", &path("globex"), Some(GLOBEX_DEPLOY), None)
        .await
        .json();
    assert!(!seen_by_globex.to_string().contains(&version));
    let r = admin_post(
        &gw,
        "globex",
        GLOBEX_DEPLOY,
        "activate",
        &json!({"version": version}),
    )
    .await;
    assert_eq!(
        (r.status, r.error_code().as_str()),
        (404, "version_not_found")
    );
    let r = admin_post(
        &gw,
        "acme",
        ACME_DEPLOY,
        "activate",
        &json!({"version": version}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(served(&gw, None, &[]).await.1, "pricey");
    let globex = crate::gateway_support::send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(GLOBEX_KEY),
        Some(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#),
    )
    .await;
    assert_eq!(globex.header("x-signalbox-target"), "cheap");
    assert!(globex.header("x-signalbox-policy").starts_with("default@"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_that_keeps_trapping_is_quarantined_and_rolled_back() {
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let (before, _) = served(&gw, None, &[]).await;
    let version = deploy(&gw, &bytes(&hostile_policy()), "hostile", json!({})).await;
    let trap = [("x-signalbox-act", "panic")];
    // Every request succeeds: the safe route serves while the policy traps, then the
    // previous binding takes over.
    let mut labels = Vec::new();
    for _ in 0..10 {
        labels.push(served(&gw, None, &trap).await);
    }
    assert_eq!(
        labels[0],
        (label("hostile", &version), "cheap".into()),
        "safe route while trapping"
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while served(&gw, None, &trap).await.0 != before {
        assert!(Instant::now() < deadline, "never quarantined");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let listed = report(&gw, "acme").await;
    let entry = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .unwrap()
        .clone();
    assert_eq!(entry["quarantined"], true, "{entry}");
    assert_eq!(entry["quarantines"], 1);
    assert!(entry["traps"].as_u64().unwrap() >= 3, "{entry}");
    let r = admin_post(
        &gw,
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": version}),
    )
    .await;
    assert_eq!((r.status, r.error_code().as_str()), (422, "quarantined"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_answers_are_errors_but_only_traps_and_deadlines_quarantine() {
    let up = upstream().await;
    // quarantine_after = 3
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let (before, _) = served(&gw, None, &[]).await;
    let version = deploy(&gw, &bytes(&hostile_policy()), "hostile", json!({})).await;
    let hostile = label("hostile", &version);
    let bogus = [("x-signalbox-act", "bogus")];
    let trap = [("x-signalbox-act", "panic")];
    // Ten invalid answers in a row: each served by the safe route, none quarantines.
    for _ in 0..10 {
        assert_eq!(
            served(&gw, None, &bogus).await,
            (hostile.clone(), "cheap".into())
        );
    }
    // Two traps, an invalid answer (which neither extends nor ends the streak), and
    // a third trap: quarantined.
    for act in [&trap, &trap, &bogus, &trap] {
        assert_eq!(served(&gw, None, act).await.0, hostile);
    }
    // Plain requests until the rollback lands, so the counts below are exact.
    let deadline = Instant::now() + Duration::from_secs(5);
    while served(&gw, None, &[]).await.0 != before {
        assert!(Instant::now() < deadline, "never quarantined");
    }
    let listed = report(&gw, "acme").await;
    let entry = listed["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["version"] == version)
        .unwrap()
        .clone();
    assert_eq!(entry["quarantined"], true, "{entry}");
    assert_eq!(entry["traps"], 3, "{entry}");
    assert_eq!(
        entry["errors"], 14,
        "every failed call is an error: {entry}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_brings_back_the_active_binding_from_the_cache() {
    let up = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let extra = format!("state_dir = \"{}\"", state.path().display());
    let config = lifecycle_config(&up.url(), &extra);
    let count = [("x-signalbox-act", "count")];
    let version = {
        let gw = TestGateway::start(&config).await;
        let version = deploy(&gw, &bytes(&hostile_policy()), "hostile", json!({})).await;
        // Learned state: a counter in the tenant's state store.
        for _ in 0..2 {
            served(&gw, None, &count).await;
        }
        version
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let gw = TestGateway::start(&config).await;
    assert_eq!(
        served(&gw, None, &[]).await,
        (label("hostile", &version), "pricey".into())
    );
    let ready = started.elapsed();
    assert!(ready < Duration::from_secs(1), "took {ready:?}");
    let reason = crate::gateway_support::send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#),
        &count,
    )
    .await;
    assert_eq!(
        reason.header("x-signalbox-route-reason"),
        "count:3",
        "the state store was not restored"
    );
    let tenant = &gw.gateway.tenants["acme"];
    let source = tenant
        .policy
        .current()
        .active
        .binding
        .policy()
        .compile_source();
    assert!(
        matches!(source, signalbox::policy::CompileSource::Cached(_)),
        "{source:?}"
    );
    // The history survived too: rolling back reaches the configured policy.
    let back = admin_post(&gw, "acme", OPERATOR, "rollback", &json!({})).await;
    assert_eq!(back.status, 200, "{}", back.text());
    assert_eq!(served(&gw, None, &[]).await.1, "cheap");
    println!("restart to first request served: {ready:?}");
}

/// Per-version counters, the active binding's traffic and a shadow's comparison are
/// saved with the bindings: a restart on the same state directory reports them as
/// they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_and_the_shadow_comparison_survive_a_restart() {
    let up = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let extra = format!("state_dir = \"{}\"", state.path().display());
    let config = lifecycle_config(&up.url(), &extra);
    let before = {
        let gw = TestGateway::start(&config).await;
        let seed = report(&gw, "acme").await["active"]["version"].clone();
        deploy(&gw, &bytes(&hostile_policy()), "hostile", json!({})).await;
        let r = admin_post(
            &gw,
            "acme",
            OPERATOR,
            "candidate",
            &json!({"version": seed, "mode": "shadow"}),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        for i in 0..5 {
            served(&gw, Some(&format!("u{i}")), &[]).await;
        }
        served(&gw, None, &[("x-signalbox-act", "panic")]).await;
        // Outcomes are accounted just after each response.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = report(&gw, "acme").await;
            if r["active"]["traffic"]["requests"] == 6 && r["candidate"]["shadow"]["decisions"] == 5
            {
                break r;
            }
            assert!(Instant::now() < deadline, "never accounted: {r}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    assert_eq!(before["candidate"]["shadow"]["agreements"], 0);
    let hostile = before["versions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "hostile")
        .unwrap()
        .clone();
    assert_eq!(
        (&hostile["calls"], &hostile["traps"]),
        (&json!(6), &json!(1))
    );

    let gw = TestGateway::start(&config).await;
    let after = report(&gw, "acme").await;
    assert_eq!(after["versions"], before["versions"], "{after}");
    assert_eq!(after["active"]["traffic"], before["active"]["traffic"]);
    assert_eq!(after["candidate"]["shadow"], before["candidate"]["shadow"]);
    assert_eq!(
        after["candidate"]["traffic"],
        before["candidate"]["traffic"]
    );
    // And they go on counting from there.
    served(&gw, Some("u0"), &[]).await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while report(&gw, "acme").await["candidate"]["shadow"]["decisions"] != 6 {
        assert!(Instant::now() < deadline, "the restored counters stopped");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shadow_decides_every_request_and_serves_none() {
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let (active, _) = served(&gw, None, &[]).await;
    let r = upload(
        &gw,
        "acme",
        OPERATOR,
        "hostile",
        &bytes(&hostile_policy()),
        &json!({}),
    )
    .await;
    let version = r.json()["version"].as_str().unwrap().to_owned();
    let r = admin_post(
        &gw,
        "acme",
        OPERATOR,
        "candidate",
        &json!({"version": version, "mode": "shadow"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for i in 0..40 {
        let user = format!("u{i}");
        assert_eq!(
            served(&gw, Some(&user), &[]).await,
            (active.clone(), "cheap".into())
        );
    }
    // Outcomes are accounted just after the response; give them a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let candidate = send(
        "GET",
        &gw.admin_url("/admin/tenants/acme/candidate"),
        Some(OPERATOR),
        None,
    )
    .await
    .json();
    assert_eq!(candidate["mode"], "shadow");
    let shadow = &candidate["shadow"];
    assert_eq!(shadow["decisions"], 40, "{candidate}");
    assert_eq!(shadow["agreements"], 0);
    assert_eq!(shadow["agreement_rate"], 0.0);
    // The shadow picks the pricier target for the same tokens.
    assert!(
        shadow["estimated_cost_difference_usd"].as_f64().unwrap() > 0.0,
        "{shadow}"
    );

    let r = admin_post(&gw, "acme", OPERATOR, "candidate/promote", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        served(&gw, None, &[]).await,
        (label("hostile", &version), "pricey".into())
    );
    assert!(report(&gw, "acme").await["candidate"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_serves_its_share_sticky_per_user() {
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let (active, _) = served(&gw, None, &[]).await;
    let r = upload(
        &gw,
        "acme",
        OPERATOR,
        "hostile",
        &bytes(&hostile_policy()),
        &json!({}),
    )
    .await;
    let version = r.json()["version"].as_str().unwrap().to_owned();
    let canary = label("hostile", &version);
    let r = admin_post(
        &gw,
        "acme",
        OPERATOR,
        "candidate",
        &json!({"version": version, "mode": "canary", "percent": 10}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());

    let mut by_user: std::collections::HashMap<String, String> = Default::default();
    let mut canary_served = 0;
    for i in 0..2000 {
        let user = format!("user-{}", i % 1000);
        let (label, target) = served(&gw, Some(&user), &[]).await;
        assert!(label == active || label == canary, "{label}");
        assert_eq!(target, if label == canary { "pricey" } else { "cheap" });
        canary_served += usize::from(label == canary);
        let first = by_user.entry(user.clone()).or_insert_with(|| label.clone());
        assert_eq!(*first, label, "{user} switched versions");
    }
    let share = canary_served as f64 / 2000.0;
    assert!((0.07..=0.13).contains(&share), "canary share {share}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let candidate = report(&gw, "acme").await["candidate"].clone();
    assert_eq!(
        candidate["traffic"]["requests"], canary_served,
        "{candidate}"
    );
    assert_eq!(candidate["traffic"]["errors"], 0);

    let r = admin_post(&gw, "acme", OPERATOR, "candidate/discard", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    for i in 0..50 {
        assert_eq!(served(&gw, Some(&format!("user-{i}")), &[]).await.0, active);
    }
    let r = admin_post(&gw, "acme", OPERATOR, "candidate/promote", &json!({})).await;
    assert_eq!((r.status, r.error_code().as_str()), (409, "no_candidate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_watched_directory_activates_valid_files_and_reports_invalid_ones() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let extra = format!("policies_dir = \"{}\"", dir.path().display());
    let gw = TestGateway::start(&lifecycle_config(&up.url(), &extra)).await;
    let (before, _) = served(&gw, None, &[]).await;
    let acme = dir.path().join("acme");
    std::fs::create_dir_all(&acme).unwrap();
    std::fs::write(acme.join("config.json"), "{}").unwrap();
    std::fs::write(acme.join("policy.wasm"), bytes(&hostile_policy())).unwrap();
    let hostile = wait_for_target(&gw, "pricey").await;
    assert!(hostile.starts_with("policy@"), "{hostile}");

    // An invalid config: reported, the running binding stays.
    std::fs::write(acme.join("config.json"), r#"{"act": "bogus"}"#).unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        served(&gw, None, &[]).await,
        (hostile.clone(), "pricey".into())
    );

    std::fs::write(acme.join("policy.wasm"), bytes(&default_policy())).unwrap();
    std::fs::write(acme.join("config.json"), "{}").unwrap();
    let default = wait_for_target(&gw, "cheap").await;
    assert_eq!(default, before);
}

async fn wait_for_target(gw: &TestGateway, target: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (label, t) = served(gw, None, &[]).await;
        if t == target {
            return label;
        }
        assert!(Instant::now() < deadline, "still {label} → {t}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policy_push_uploads_and_activates_or_starts_a_canary() {
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("hostile.json");
    std::fs::write(&config, r#"{"accept": true}"#).unwrap();
    let admin = gw.admin_url("");
    let push = |extra: &'static [&'static str], token: &'static str| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"));
        cmd.args(["policy", "push"])
            .arg(hostile_policy())
            .args(["--tenant", "acme", "--admin", &admin, "--config"])
            .arg(&config)
            .args(extra)
            .env("SIGNALBOX_ADMIN_TOKEN", token);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
    };

    let refused = push(&[], GLOBEX_DEPLOY).await.unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("403") && stderr.contains("may not act"),
        "{stderr}"
    );
    // The token never shows up in the output.
    assert!(!stderr.contains(GLOBEX_DEPLOY));

    let canary = push(&["--canary", "100"], ACME_DEPLOY).await.unwrap();
    assert!(
        canary.status.success(),
        "{}",
        String::from_utf8_lossy(&canary.stderr)
    );
    let out = String::from_utf8_lossy(&canary.stdout);
    assert!(
        out.contains("uploaded signalbox_fixture_hostile version"),
        "{out}"
    );
    let listed = report(&gw, "acme").await;
    assert_eq!(listed["candidate"]["mode"], "canary");
    assert_eq!(served(&gw, Some("anyone"), &[]).await.1, "pricey");

    let activated = push(&[], ACME_DEPLOY).await.unwrap();
    assert!(
        activated.status.success(),
        "{}",
        String::from_utf8_lossy(&activated.stderr)
    );
    let listed = report(&gw, "acme").await;
    assert!(listed["candidate"].is_null());
    assert_eq!(listed["active"]["name"], "signalbox_fixture_hostile");
    assert_eq!(listed["active"]["config"], json!({"accept": true}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenants_never_see_each_others_targets_state_or_versions() {
    let up = upstream().await;
    let config = lifecycle_config(&up.url(), "").replace(
        "id = \"globex\"\n",
        "id = \"globex\"\ntargets = [\"cheap\"]\n",
    );
    let gw = TestGateway::start(&config).await;
    let hostile = bytes(&hostile_policy());
    for (tenant, token) in [("acme", ACME_DEPLOY), ("globex", GLOBEX_DEPLOY)] {
        let r = upload(&gw, tenant, token, "hostile", &hostile, &json!({})).await;
        assert_eq!(r.status, 201, "{}", r.text());
        let v = r.json()["version"].as_str().unwrap().to_owned();
        let r = admin_post(&gw, tenant, token, "activate", &json!({"version": v})).await;
        assert_eq!(r.status, 200, "{}", r.text());
    }
    let count = |key: &'static str| {
        let url = gw.url("/v1/chat/completions");
        async move {
            let r = crate::gateway_support::send_with(
                "POST",
                &url,
                Some(key),
                Some(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#),
                &[("x-signalbox-act", "count")],
            )
            .await;
            assert_eq!(r.status, 200, "{}", r.text());
            (
                r.header("x-signalbox-route-reason").to_owned(),
                r.header("x-signalbox-target").to_owned(),
            )
        }
    };
    // Each tenant's policy state is its own: the counters run independently.
    assert_eq!(count(KEY).await, ("count:1".into(), "pricey".into()));
    assert_eq!(count(KEY).await.0, "count:2");
    // globex's index 0 is its only target, `cheap`: it never sees `pricey`.
    assert_eq!(count(GLOBEX_KEY).await, ("count:1".into(), "cheap".into()));
    assert_eq!(count(KEY).await.0, "count:3");
    let listed = report(&gw, "globex").await;
    assert!(!listed.to_string().contains("pricey"));
    // Versions are stored per tenant: acme's list is acme's only.
    let acme = report(&gw, "acme").await;
    assert_eq!(acme["tenant"], "acme");
    assert_eq!(listed["tenant"], "globex");
}

//! The dashboard in headless Chromium over WebDriver (acceptance criterion 1 of the
//! dashboard's issue): a deploy-token session sees its tenant only, the overview's
//! counts equal `/metrics`, a canary is started and promoted from the Policies page,
//! a decision shows its route reason, and actions without the CSRF token or on another
//! tenant are refused. A screenshot of each page goes to
//! `target/dashboard-screenshots/`.

use super::chromedriver::ChromeDriver;
use super::{Dashboard, requests_in};
use crate::deploy::{ACME_DEPLOY, GLOBEX_KEY, OPERATOR, bytes, report, served, upload};
use crate::gateway_support::send;
use crate::support::hostile_policy;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// How long a page may take to show what the test waits for.
const PATIENCE: Duration = Duration::from_secs(30);

fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/dashboard-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn browser(driver: &ChromeDriver) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,1000",
            format!("--user-data-dir={}", driver.profile.path().join("profile").display()),
        ]}),
    );
    // confirm() dialogs are answered by the test itself.
    caps.insert("unhandledPromptBehavior".into(), json!("ignore"));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("no WebDriver session")
}

async fn shot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{name}.png")), png).unwrap();
}

/// Waits until `script` (a JS expression) is truthy in the page, and returns its value.
async fn wait_js(client: &Client, script: &str) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let v = client
            .execute(&format!("return {script};"), vec![])
            .await
            .unwrap();
        if !(v.is_null() || v == false || v == "" || v == 0) {
            return v;
        }
        if Instant::now() > deadline {
            let url = client.current_url().await.unwrap();
            let source = client.source().await.unwrap_or_default();
            panic!("waited in vain for `{script}` at {url}: {source}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `fetch` from the page (the browser's cookie, the page's origin): the status.
async fn page_fetch(client: &Client, path: &str, with_csrf: bool) -> u16 {
    let script = r#"
        const [path, withCsrf, done] = arguments;
        const headers = {"content-type": "application/json"};
        if (withCsrf) headers["x-csrf-token"] = document.querySelector('meta[name="csrf-token"]').content;
        fetch(path, {method: "POST", headers, body: "{}"}).then(r => done(r.status), () => done(0));
    "#;
    let v = client
        .execute_async(script, vec![json!(path), json!(with_csrf)])
        .await
        .unwrap();
    v.as_u64().unwrap() as u16
}

async fn click_and_confirm(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client.accept_alert().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "dashboard stage: needs chromium and chromedriver (tests/dashboard/run.sh installs them)"]
async fn an_operator_of_one_tenant_works_the_dashboard_in_a_browser() {
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
    // Traffic of both tenants: acme's must show, globex's must not.
    const N: usize = 5;
    for _ in 0..N {
        served(&d.gw, None, &[]).await;
    }
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).to_string();
    let globex = send(
        "POST",
        &d.gw.url("/v1/chat/completions"),
        Some(GLOBEX_KEY),
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(globex.status, 200);

    let driver = ChromeDriver::start().await;
    let c = browser(&driver).await;

    // Sign in with acme's deploy token.
    c.goto(&d.url("/dashboard")).await.unwrap();
    shot(&c, "sign-in").await;
    c.find(Locator::Id("token"))
        .await
        .unwrap()
        .send_keys(ACME_DEPLOY)
        .await
        .unwrap();
    c.find(Locator::Css("#sign-in button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    wait_js(&c, "document.body.dataset.page === 'overview'").await;
    assert!(
        c.current_url()
            .await
            .unwrap()
            .as_str()
            .ends_with("/dashboard")
    );

    // The overview's counts are /metrics' counts, for acme only.
    let metrics = d.metrics().await;
    let expected = requests_in(&metrics, "acme", "cheap");
    assert_eq!(expected, N as f64, "{metrics}");
    let shown = wait_js(
        &c,
        "(document.querySelector('#traffic tr[data-tenant=\"acme\"][data-target=\"cheap\"]') || {dataset: {}}).dataset.requests",
    )
    .await;
    assert_eq!(shown.as_str().unwrap().parse::<f64>().unwrap(), expected);
    // A second poll (the rate needs two) leaves the count where /metrics has it.
    wait_js(&c, "Number(document.body.dataset.loaded) >= 2").await;
    let source = c.source().await.unwrap();
    assert!(
        !source.contains("globex"),
        "the overview shows another tenant"
    );
    assert!(!source.contains(ACME_DEPLOY), "the page holds the token");
    shot(&c, "overview").await;

    // Routing: the first choices of acme's policy, as /metrics counts them.
    c.goto(&d.url("/dashboard/routing")).await.unwrap();
    let chosen = wait_js(
        &c,
        "(document.querySelector('#choices tr[data-target=\"cheap\"]') || {dataset: {}}).dataset.decisions",
    )
    .await;
    let decided: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("signalbox_route_decisions_total{tenant=\"acme\""))
        .filter(|l| l.contains("target=\"cheap\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(chosen.as_str().unwrap().parse::<f64>().unwrap(), decided);
    assert_eq!(decided, N as f64);
    wait_js(&c, "document.querySelector('#reasons tbody tr')").await;
    assert!(!c.source().await.unwrap().contains("globex"));
    shot(&c, "routing").await;

    // Policies: start the uploaded version as a canary, then promote it.
    c.goto(&d.url("/dashboard/policies")).await.unwrap();
    wait_js(&c, "document.querySelector('#versions tbody tr')").await;
    assert!(!c.source().await.unwrap().contains("globex"));
    c.find(Locator::Id("candidate-version"))
        .await
        .unwrap()
        .select_by_value(&version)
        .await
        .unwrap();
    c.find(Locator::Id("candidate-percent"))
        .await
        .unwrap()
        .clear()
        .await
        .unwrap();
    c.find(Locator::Id("candidate-percent"))
        .await
        .unwrap()
        .send_keys("50")
        .await
        .unwrap();
    click_and_confirm(&c, "#start").await;
    wait_js(
        &c,
        &format!("document.getElementById('candidate').dataset.version === '{version}'"),
    )
    .await;
    let r = report(&d.gw, "acme").await;
    assert_eq!(r["candidate"]["version"], version.as_str(), "{r}");
    // The two versions side by side, as the admin API counts them.
    let requests = wait_js(
        &c,
        "(document.querySelector('#compare tr[data-line=\"Requests\"]') || {cells: []}).cells.length === 3 \
         && [...document.querySelector('#compare tr[data-line=\"Requests\"]').cells].slice(1).map((td) => td.textContent).join(' ')",
    )
    .await;
    assert_eq!(
        requests.as_str().unwrap(),
        format!(
            "{} {}",
            r["active"]["traffic"]["requests"], r["candidate"]["traffic"]["requests"]
        )
    );
    shot(&c, "policies-canary").await;
    click_and_confirm(&c, "#promote").await;
    wait_js(
        &c,
        &format!("document.getElementById('active').dataset.version === '{version}'"),
    )
    .await;
    let r = report(&d.gw, "acme").await;
    assert_eq!(
        r["active"]["version"],
        version.as_str(),
        "the admin API's binding: {r}"
    );
    assert!(r["candidate"].is_null());
    shot(&c, "policies").await;

    // From this page: another tenant's action is refused, and so is every action
    // without the CSRF token; the binding stays.
    for op in [
        "rollback",
        "activate",
        "candidate",
        "candidate/promote",
        "candidate/discard",
    ] {
        assert_eq!(
            page_fetch(&c, &format!("/dashboard/api/tenants/globex/{op}"), true).await,
            403,
            "globex {op}"
        );
        assert_eq!(
            page_fetch(&c, &format!("/dashboard/api/tenants/acme/{op}"), false).await,
            403,
            "acme {op} without CSRF"
        );
    }
    assert_eq!(
        report(&d.gw, "acme").await["active"]["version"],
        version.as_str()
    );
    c.goto(&d.url("/dashboard/policies?tenant=globex"))
        .await
        .unwrap();
    let refused = c
        .find(Locator::Id("notice"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(refused.contains("may not see that tenant"), "{refused}");

    // Decisions: one click shows the route reason the decision log holds.
    served(&d.gw, None, &[]).await;
    c.goto(&d.url("/dashboard/decisions")).await.unwrap();
    let id = wait_js(
        &c,
        "(document.querySelector('#decisions tbody tr') || {dataset: {}}).dataset.requestId",
    )
    .await;
    let id = id.as_str().unwrap().to_owned();
    c.find(Locator::Css(&format!(
        "#decisions tr[data-request-id='{id}']"
    )))
    .await
    .unwrap()
    .click()
    .await
    .unwrap();
    let reason = wait_js(&c, "document.getElementById('decision-reason').textContent").await;
    let logged: Value = std::fs::read_to_string(d.decision_log())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(logged["tenant"], "acme");
    assert_eq!(reason, logged["decision"]["reason"], "{logged}");
    shot(&c, "decisions").await;

    // Usage (the ledger) and Replay (a report opened in the page).
    c.goto(&d.url("/dashboard/usage")).await.unwrap();
    wait_js(&c, "document.querySelector('#usage tbody tr')").await;
    wait_js(
        &c,
        "document.querySelector('#budgets tr[data-tenant=\"acme\"]')",
    )
    .await;
    assert!(!c.source().await.unwrap().contains("globex"));
    shot(&c, "usage").await;
    let report_file = d.dir.path().join("replay.json");
    std::fs::write(&report_file, replay_report().to_string()).unwrap();
    c.goto(&d.url("/dashboard/replay")).await.unwrap();
    c.find(Locator::Id("replay-file"))
        .await
        .unwrap()
        .send_keys(report_file.to_str().unwrap())
        .await
        .unwrap();
    let dots = wait_js(
        &c,
        "document.querySelectorAll('#replay-chart circle').length",
    )
    .await;
    assert_eq!(dots, 6, "policy, four baselines and one single model");
    shot(&c, "replay").await;

    c.close().await.unwrap();
}

/// The shape `signalbox replay --out` writes, cut to what the page draws.
fn replay_report() -> Value {
    let at = |cost: f64, quality: f64| json!({"cost": cost, "quality": quality});
    json!({
        "policy": {"file": "p.wasm", "cost": 1.2, "quality": 0.8},
        "baselines": {
            "always_strong": at(3.0, 0.9), "always_weak": at(0.3, 0.6),
            "random": at(1.6, 0.75), "oracle": at(0.9, 0.95),
            "single_models": [{"model": "strong", "cost": 3.0, "quality": 0.9}],
        },
        "curve": [{"value": 0.1, "cost": 0.5, "quality": 0.65}, {"value": 0.9, "cost": 2.5, "quality": 0.88}],
    })
}

//! `GET /metrics` after a known mix of traffic: the main counters have exactly the
//! values that traffic implies, parsed from the text exposition.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::{KEY, TestGateway, config, send, send_with};
use crate::support::hostile_policy;
use std::collections::HashMap;

const OPERATOR: &str = "sb-metrics-operator";
const CHAOS_KEY: &str = "sb-test-chaos-key";

fn hash(secret: &str) -> String {
    signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(secret))
}

/// Samples by `name{labels}` as written (labels in exposition order).
fn parse(text: &str) -> HashMap<String, f64> {
    let mut samples = HashMap::new();
    let mut eof = false;
    for line in text.lines() {
        assert!(!eof, "content after # EOF");
        if line == "# EOF" {
            eof = true;
            continue;
        }
        if line.starts_with('#') {
            let mut parts = line.splitn(4, ' ');
            let (_, kind, name) = (parts.next(), parts.next(), parts.next());
            assert!(matches!(kind, Some("HELP" | "TYPE" | "UNIT")), "{line}");
            assert!(name.is_some_and(|n| n.starts_with("signalbox_")), "{line}");
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample line: {line}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value: {line}"));
        let name = series.split('{').next().unwrap();
        assert!(
            name.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{name}"
        );
        samples.insert(series.to_owned(), value);
    }
    assert!(eof, "no # EOF");
    samples
}

fn hello(model: &str) -> Vec<u8> {
    format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#).into_bytes()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_match_a_known_mix_of_traffic() {
    let a = FakeUpstream::start(Wire::OpenAi).await;
    let b = FakeUpstream::start(Wire::OpenAi).await;
    let extra = format!(
        "[[tenants]]\nid = \"chaos\"\nkey_hashes = [\"{}\"]\npolicy = '{}'\nsafe_route = [\"b\"]\n\n[admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nhash = \"{}\"\n",
        hash(CHAOS_KEY),
        hostile_policy().display(),
        hash(OPERATOR),
    );
    let toml = config(
        &[
            ("pa", "openai", &format!("{}/v1", a.url())),
            ("pb", "openai", &format!("{}/v1", b.url())),
        ],
        &[("a", "pa", "m"), ("b", "pb", "m")],
        &extra,
    );
    let gw = TestGateway::start(&toml).await;
    let url = gw.url("/v1/chat/completions");

    // 3 plain successes on `a` (the cheaper target).
    for _ in 0..3 {
        assert_eq!(
            send("POST", &url, Some(KEY), Some(&hello("m")))
                .await
                .status,
            200
        );
    }
    // A 500 on `a`: falls back to `b`.
    a.enqueue(Upstream::ok().status(500));
    let r = send("POST", &url, Some(KEY), Some(&hello("m"))).await;
    assert_eq!(r.header("x-signalbox-target"), "b");
    // A policy rejection (a model nobody serves): no target.
    assert_eq!(
        send("POST", &url, Some(KEY), Some(&hello("nope")))
            .await
            .status,
        404
    );
    // Two requests through a trapping policy: the safe route (`b`) serves them.
    for _ in 0..2 {
        let r = send_with(
            "POST",
            &url,
            Some(CHAOS_KEY),
            Some(&hello("m")),
            &[("x-signalbox-act", "panic")],
        )
        .await;
        assert_eq!((r.status, r.header("x-signalbox-target")), (200, "b"));
    }
    // Last, a 429 on `a`: falls back to `b` and keeps `a` aside.
    a.enqueue(Upstream::ok().status(429).header("retry-after", "30"));
    let r = send("POST", &url, Some(KEY), Some(&hello("m"))).await;
    assert_eq!(r.header("x-signalbox-target"), "b");
    // Accounting happens just after each response.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;

    let unauthorized = send("GET", &gw.admin_url("/metrics"), None, None).await;
    assert_eq!(unauthorized.status, 401);
    let scrape = send("GET", &gw.admin_url("/metrics"), Some(OPERATOR), None).await;
    assert_eq!(scrape.status, 200);
    assert!(
        scrape
            .header("content-type")
            .starts_with("application/openmetrics-text")
    );
    let text = scrape.text();
    let m = parse(&text);
    let get = |series: &str| {
        m.get(series)
            .copied()
            .unwrap_or_else(|| panic!("no {series} in\n{text}"))
    };

    let default = format!(
        "default@{}",
        &signalbox::policy::sha256_hex(signalbox::embedded::DEFAULT_POLICY)[..12]
    );
    let hostile = format!(
        "signalbox_fixture_hostile@{}",
        &signalbox::policy::sha256_hex(&std::fs::read(hostile_policy()).unwrap())[..12]
    );
    assert_eq!(
        get(r#"signalbox_requests_total{tenant="acme",target="a",status="2xx"}"#),
        3.0
    );
    assert_eq!(
        get(r#"signalbox_requests_total{tenant="acme",target="b",status="2xx"}"#),
        2.0
    );
    assert_eq!(
        get(r#"signalbox_requests_total{tenant="acme",target="none",status="4xx"}"#),
        1.0
    );
    assert_eq!(
        get(r#"signalbox_requests_total{tenant="chaos",target="b",status="2xx"}"#),
        2.0
    );
    assert_eq!(
        get(r#"signalbox_fallbacks_total{tenant="acme",target="a",cause="server_error"}"#),
        1.0
    );
    assert_eq!(
        get(r#"signalbox_fallbacks_total{tenant="acme",target="a",cause="rate_limited"}"#),
        1.0
    );
    assert_eq!(
        get(&format!(
            r#"signalbox_route_decisions_total{{tenant="acme",policy="{default}",target="a"}}"#
        )),
        5.0
    );
    assert_eq!(
        get(&format!(
            r#"signalbox_policy_failures_total{{tenant="chaos",policy="{hostile}",kind="trap"}}"#
        )),
        2.0
    );
    assert_eq!(
        get(&format!(
            r#"signalbox_policy_evaluation_seconds_count{{tenant="acme",policy="{default}"}}"#
        )),
        6.0
    );
    // Calls and failures are read from the policy's own counters at scrape time.
    assert_eq!(
        get(&format!(
            r#"signalbox_policy_calls_total{{tenant="acme",policy="{default}"}}"#
        )),
        6.0
    );
    assert_eq!(
        get(&format!(
            r#"signalbox_policy_failures_total{{tenant="acme",policy="{default}",kind="trap"}}"#
        )),
        0.0
    );
    assert_eq!(
        get(r#"signalbox_upstream_latency_seconds_count{target="a"}"#),
        3.0
    );
    assert_eq!(
        get(r#"signalbox_upstream_latency_seconds_count{target="b"}"#),
        4.0
    );
    assert_eq!(get(r#"signalbox_in_flight_requests{target="a"}"#), 0.0);
    assert_eq!(get(r#"signalbox_circuit_state{target="a"}"#), 0.0);

    // Tokens and cost agree with the configured prices (a: $1/$2, b: $2/$3 per 1M).
    let tokens = |t: &str, d: &str| {
        get(&format!(
            r#"signalbox_tokens_total{{tenant="acme",target="{t}",direction="{d}"}}"#
        ))
    };
    let (ai, ao) = (tokens("a", "input"), tokens("a", "output"));
    assert!(ai > 0.0 && ao > 0.0);
    let cost = get(r#"signalbox_cost_usd_total{tenant="acme",target="a"}"#);
    assert!((cost - (ai * 1.0 + ao * 2.0) / 1e6).abs() < 1e-9, "{cost}");
    // No key or token ever appears in the exposition.
    for secret in [KEY, CHAOS_KEY, OPERATOR, "upstream-secret"] {
        assert!(!text.contains(secret));
    }
}

/// The shadow and canary series agree with the admin API's candidate report, which
/// reads the same counters: a shadow that always disagrees (the hostile fixture picks
/// the pricier target), then a canary serving half the users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shadow_and_canary_series_match_the_candidate_report() {
    use crate::deploy::{
        OPERATOR as ADMIN, admin_post, bytes, label, lifecycle_config, served, upload, upstream,
    };
    use serde_json::{Value, json};

    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let (active, _) = served(&gw, None, &[]).await;
    let r = upload(
        &gw,
        "acme",
        ADMIN,
        "hostile",
        &bytes(&hostile_policy()),
        &serde_json::json!({}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let version = r.json()["version"].as_str().unwrap().to_owned();
    let candidate = label("hostile", &version);

    // Families are described before any candidate runs (a dashboard can name them).
    let text = scrape(&gw, ADMIN).await;
    for family in [
        "signalbox_shadow_decisions",
        "signalbox_shadow_cost_usd",
        "signalbox_shadow_estimated_cost_difference_usd",
        "signalbox_canary_requests",
        "signalbox_canary_errors",
        "signalbox_canary_latency_seconds",
    ] {
        assert!(
            text.contains(&format!("# TYPE {family} ")),
            "{family}: {text}"
        );
    }

    let r = admin_post(
        &gw,
        "acme",
        ADMIN,
        "candidate",
        &json!({"version": version, "mode": "shadow"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    for i in 0..12 {
        served(&gw, Some(&format!("u{i}")), &[]).await;
    }
    let (report_now, samples) = settled(&gw, |r| {
        let shadow = &r["candidate"]["shadow"];
        shadow["decisions"] == 12 && shadow["shadow_cost_usd"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;
    let shadow = &report_now["candidate"]["shadow"];
    let series = |name: &str, extra: &str| {
        format!("{name}{{tenant=\"acme\",policy=\"{active}\",shadow=\"{candidate}\"{extra}}}")
    };
    let value = |series: String| sample(&samples, series);
    let count = |v: &Value| v.as_u64().unwrap() as f64;
    let usd = |v: &Value| v.as_f64().unwrap();
    let agree = value(series(
        "signalbox_shadow_decisions_total",
        ",agreement=\"agree\"",
    ));
    let disagree = value(series(
        "signalbox_shadow_decisions_total",
        ",agreement=\"disagree\"",
    ));
    assert_eq!(agree, count(&shadow["agreements"]), "{shadow}");
    assert_eq!(agree + disagree, count(&shadow["decisions"]), "{shadow}");
    assert_eq!(disagree, 12.0, "the hostile shadow never agrees: {shadow}");
    assert_eq!(
        value(series("signalbox_shadow_failures_total", "")),
        count(&shadow["failures"])
    );
    let close = |a: f64, b: f64| (a - b).abs() < 1e-9;
    for (side, key) in [("active", "active_cost_usd"), ("shadow", "shadow_cost_usd")] {
        let got = value(series(
            "signalbox_shadow_cost_usd_total",
            &format!(",side=\"{side}\""),
        ));
        assert!(close(got, usd(&shadow[key])), "{side}: {got} vs {shadow}");
    }
    let difference = value(series("signalbox_shadow_estimated_cost_difference_usd", ""));
    assert!(
        close(difference, usd(&shadow["estimated_cost_difference_usd"])) && difference > 0.0,
        "{difference} vs {shadow}"
    );

    // A canary instead: half the users, each sticky to one side.
    let r = admin_post(&gw, "acme", ADMIN, "candidate/discard", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let r = admin_post(
        &gw,
        "acme",
        ADMIN,
        "candidate",
        &json!({"version": version, "mode": "canary", "percent": 50}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let mut on_canary = 0u64;
    for i in 0..40 {
        on_canary += u64::from(served(&gw, Some(&format!("user-{i}")), &[]).await.0 == candidate);
    }
    assert!(
        (1..40).contains(&on_canary),
        "{on_canary} of 40 on the canary"
    );
    let (report_now, samples) = settled(&gw, |r| {
        r["candidate"]["mode"] == "canary"
            && r["candidate"]["traffic"]["requests"].as_u64().unwrap_or(0) > 0
    })
    .await;
    assert_eq!(report_now["candidate"]["traffic"]["requests"], on_canary);
    for (role, policy, traffic) in [
        ("active", &active, &report_now["active"]["traffic"]),
        ("canary", &candidate, &report_now["candidate"]["traffic"]),
    ] {
        let series =
            |name: &str| format!("{name}{{tenant=\"acme\",policy=\"{policy}\",role=\"{role}\"}}");
        let requests = sample(&samples, series("signalbox_canary_requests_total"));
        assert_eq!(requests, count(&traffic["requests"]), "{role}: {traffic}");
        assert_eq!(
            sample(&samples, series("signalbox_canary_errors_total")),
            count(&traffic["errors"]),
            "{role}: {traffic}"
        );
        // The report's mean (ms) times the count is the series' sum (s), to the
        // microsecond the counters keep.
        let latency = sample(&samples, series("signalbox_canary_latency_seconds_total"));
        let mean_ms = usd(&traffic["mean_latency_ms"]);
        assert!(
            (latency - mean_ms * requests / 1000.0).abs() < 1e-6,
            "{role}: {latency} s vs {traffic}"
        );
        assert!(latency > 0.0, "{role}: {traffic}");
    }
}

/// The value of `series` in a parsed scrape.
fn sample(samples: &HashMap<String, f64>, series: String) -> f64 {
    *samples
        .get(&series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

async fn scrape(gw: &TestGateway, token: &str) -> String {
    let r = send("GET", &gw.admin_url("/metrics"), Some(token), None).await;
    assert_eq!(r.status, 200);
    r.text()
}

/// The candidate report once `done` holds, with a scrape taken between two equal
/// reports (so no request moved a counter meanwhile).
async fn settled(
    gw: &TestGateway,
    done: fn(&serde_json::Value) -> bool,
) -> (serde_json::Value, HashMap<String, f64>) {
    use std::time::{Duration, Instant};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let before = crate::deploy::report(gw, "acme").await;
        let text = scrape(gw, crate::deploy::OPERATOR).await;
        let after = crate::deploy::report(gw, "acme").await;
        if before == after && done(&after) {
            return (after, parse(&text));
        }
        assert!(Instant::now() < deadline, "never settled: {after}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

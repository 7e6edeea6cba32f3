//! `examples/grafana-dashboard.json` references only metrics the gateway exports:
//! every `signalbox_…` name in its queries is checked against a real scrape of
//! `/metrics` from a gateway that has served a request.

use crate::deploy::{OPERATOR, lifecycle_config, served, upstream};
use crate::fake_upstream::Reply as UpstreamReply;
use crate::gateway_support::{KEY, TestGateway, send};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};

/// The sample names a scrape can hold: those present, and for each family its
/// type's sample names (a counter's `_total`, a histogram's `_bucket`, `_sum` and
/// `_count`), so a family with no samples yet still counts.
fn exported(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (family, kind) = rest.split_once(' ').unwrap();
            let suffixes: &[&str] = match kind {
                "counter" => &["_total"],
                "histogram" => &["_bucket", "_sum", "_count"],
                "summary" => &["_sum", "_count", ""],
                _ => &[""],
            };
            for suffix in suffixes {
                names.insert(format!("{family}{suffix}"));
            }
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            names.insert(name.to_owned());
        }
    }
    names
}

/// Every `signalbox_…` metric name in the dashboard's query expressions.
fn referenced(value: &Value, names: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                match (key.as_str(), v) {
                    ("expr" | "query", Value::String(expr)) => {
                        let mut rest = expr.as_str();
                        while let Some(at) = rest.find("signalbox_") {
                            let tail = &rest[at..];
                            let end = tail
                                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                                .unwrap_or(tail.len());
                            names.insert(tail[..end].to_owned());
                            rest = &tail[end..];
                        }
                    }
                    _ => referenced(v, names),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| referenced(v, names)),
        _ => {}
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_references_only_exported_metrics() {
    let up = upstream().await;
    // A budget (for its gauge) and a request limit (for a rejection).
    let config = lifecycle_config(&up.url(), "").replacen(
        "safe_route = [\"cheap\"]\n",
        "safe_route = [\"cheap\"]\n[tenants.limits]\nrequests_per_minute = 3\nbudget_usd_per_day = 100.0\n",
        1,
    );
    let gw = TestGateway::start(&config).await;
    // A plain answer, a stream (time to first token), a fallback (a 500 first), then
    // one request over the limit.
    served(&gw, None, &[]).await;
    let stream =
        json!({"model": "m", "stream": true, "messages": [{"role": "user", "content": "hi"}]});
    let r = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(stream.to_string().as_bytes()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    up.enqueue(UpstreamReply::ok().status(500));
    assert_eq!(served(&gw, None, &[]).await.1, "pricey");
    let over = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#),
    )
    .await;
    assert_eq!(over.status, 429, "{}", over.text());

    // Counted just after each response: wait until the last request shows.
    let deadline = Instant::now() + Duration::from_secs(10);
    let exported = loop {
        let scrape = send("GET", &gw.admin_url("/metrics"), Some(OPERATOR), None).await;
        assert_eq!(scrape.status, 200);
        let names = exported(&scrape.text());
        if names.contains("signalbox_rejections_total")
            && names.contains("signalbox_fallbacks_total")
        {
            break names;
        }
        assert!(Instant::now() < deadline, "{names:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };

    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/grafana-dashboard.json");
    let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let mut names = BTreeSet::new();
    referenced(&dashboard, &mut names);
    assert!(names.len() >= 12, "{names:?}");
    let unknown: Vec<&String> = names.iter().filter(|n| !exported.contains(*n)).collect();
    assert!(
        unknown.is_empty(),
        "the dashboard queries metrics the gateway does not export: {unknown:?}\nexported: {exported:?}"
    );
    // And the check can fail: a misspelt name is caught.
    assert!(!exported.contains("signalbox_request_total"));
}

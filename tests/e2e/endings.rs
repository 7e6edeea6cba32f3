//! Every request ends in one place: one request through each way a request can end,
//! and every recorder — the policy's `on-outcome`, the usage ledger, the decision log,
//! the metrics and the per-version traffic — tells the same story.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire, closed_port_url};
use crate::gateway_support::*;
use crate::support::wasm;
use serde_json::{Value, json};
use std::time::Duration;

/// The outcome-counter fixture's count of `key` in the tenant's state store.
fn counted(gw: &TestGateway, key: &str) -> u64 {
    let tenant = &gw.gateway.tenants["acme"];
    let routing = tenant.policy.current();
    let state = &routing.pick("any").binding.tenant().state;
    state
        .get(key)
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or(0)
}

/// Waits (outcomes are reported off the request path) until the policy has counted
/// `n` outcomes.
async fn wait_for_outcomes(gw: &TestGateway, n: u64) {
    for _ in 0..500 {
        if counted(gw, "outcomes") >= n {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "the policy counted {} outcomes, not {n}",
        counted(gw, "outcomes")
    );
}

fn body(stream: bool) -> Value {
    json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "Hello"}]})
}

async fn send_routed(gw: &TestGateway, route: &str, stream: bool) -> Reply {
    send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(body(stream).to_string().as_bytes()),
        &[("x-signalbox-route", route)],
    )
    .await
}

/// Starts a stream on target `route`, reads its first bytes and goes away.
async fn abandon(gw: &TestGateway, route: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let body = body(true).to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\nx-signalbox-route: {route}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn each_ending_is_recorded_once_and_everywhere_alike() {
    let good = FakeUpstream::start(Wire::OpenAi).await;
    good.set_default(Upstream::ok().text("Hello there"));
    let refusing = FakeUpstream::start(Wire::OpenAi).await;
    refusing.set_default(Upstream::ok().status(400));
    let breaking = FakeUpstream::start(Wire::OpenAi).await;
    breaking.set_default(Upstream::ok().text("one two three four").truncate_after(1));
    let slow = FakeUpstream::start(Wire::OpenAi).await;
    slow.set_default(
        Upstream::ok()
            .chunks(&["a", "b", "c", "d", "e", "f", "g", "h"])
            .chunk_interval(Duration::from_millis(200)),
    );
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("usage.db");
    let log = dir.path().join("decisions.jsonl");
    let closed = closed_port_url();
    let toml = config(
        &[
            ("good", "openai", &format!("{}/v1", good.url())),
            ("down", "openai", &closed),
            ("refusing", "openai", &format!("{}/v1", refusing.url())),
            ("breaking", "openai", &format!("{}/v1", breaking.url())),
            ("slow", "openai", &format!("{}/v1", slow.url())),
        ],
        &[
            ("good", "good", "m"),
            ("down", "down", "m"),
            ("refusing", "refusing", "m"),
            ("breaking", "breaking", "m"),
            ("slow", "slow", "m"),
        ],
        &format!(
            "policy = '{}'\n\n[ledger]\npath = '{}'\n\n[decision_log]\npath = '{}'\n",
            wasm("signalbox_fixture_outcome_counter").display(),
            ledger.display(),
            log.display()
        ),
    );
    let gw = TestGateway::start(&toml).await;

    // Completed: the first target answers.
    let completed = send_routed(&gw, "0", false).await;
    assert_eq!(completed.status, 200, "{}", completed.text());
    // Refused: the upstream answers 400, which is passed on.
    assert_eq!(send_routed(&gw, "2", false).await.status, 400);
    // Rejected by the policy.
    let rejected = send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(body(false).to_string().as_bytes()),
        &[("x-signalbox-reject", "403")],
    )
    .await;
    assert_eq!(rejected.status, 403);
    // Failed: the only target named is down.
    let failed = send_routed(&gw, "1", false).await;
    assert_eq!(failed.status, 503, "{}", failed.text());
    // Interrupted: the stream breaks after its first piece.
    let interrupted = send_routed(&gw, "3", true).await;
    assert_eq!(interrupted.status, 200);
    assert!(interrupted.text().contains("stream_interrupted"));
    // Abandoned: the client goes away mid-stream.
    abandon(&gw, "4").await;
    assert!(slow.wait_for_cancelled(1, Duration::from_secs(5)).await);

    // The policy hears each ending exactly once.
    wait_for_outcomes(&gw, 6).await;
    for ending in [
        "completed",
        "refused",
        "rejected",
        "failed",
        "interrupted",
        "abandoned",
    ] {
        assert_eq!(counted(&gw, ending), 1, "{ending}");
    }
    assert_eq!(counted(&gw, "failed_attempts"), 1);
    assert_eq!(counted(&gw, "outcomes"), 6);

    // Per-version traffic: six requests, two of them server errors (503, 502).
    let routing = gw.gateway.tenants["acme"].policy.current();
    let traffic = &routing.pick("any").traffic;
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(traffic.requests.load(Relaxed), 6);
    assert_eq!(traffic.errors.load(Relaxed), 2);

    // Metrics: one request each, labelled by the target that answered and the status
    // class.
    let metrics = gw.gateway.metrics.render();
    let requests: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("signalbox_requests_total{"))
        .collect();
    let total: f64 = requests
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 6.0, "{requests:#?}");
    for (target, status) in [
        ("good", "2xx"),
        ("refusing", "4xx"),
        ("none", "4xx"),
        ("none", "5xx"),
        ("breaking", "5xx"),
        ("slow", "4xx"),
    ] {
        assert!(
            requests
                .iter()
                .any(|l| l.contains(&format!("target=\"{target}\""))
                    && l.contains(&format!("status=\"{status}\""))),
            "no request metric for {target} {status}: {requests:#?}"
        );
    }

    drop(gw);
    // The ledger: one row per request, with the same statuses and targets.
    let conn = rusqlite_rows(&ledger);
    let mut expected = vec![
        ("good".to_owned(), 200),
        ("refusing".to_owned(), 400),
        (String::new(), 403),
        (String::new(), 503),
        ("breaking".to_owned(), 502),
        ("slow".to_owned(), 499),
    ];
    expected.sort();
    assert_eq!(conn, expected);

    // The decision log: one line per request, each with its ending.
    let lines: Vec<Value> = wait_for_lines(&log, 6)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let mut endings: Vec<(String, u64)> = lines
        .iter()
        .map(|l| {
            (
                l["outcome"]["ending"].as_str().unwrap().to_owned(),
                l["outcome"]["status"].as_u64().unwrap(),
            )
        })
        .collect();
    endings.sort();
    assert_eq!(
        endings,
        vec![
            ("abandoned".to_owned(), 499),
            ("completed".to_owned(), 200),
            ("failed".to_owned(), 503),
            ("interrupted".to_owned(), 502),
            ("refused".to_owned(), 400),
            ("rejected".to_owned(), 403),
        ]
    );
    let failure = lines
        .iter()
        .find(|l| l["outcome"]["ending"] == "failed")
        .unwrap();
    assert_eq!(failure["outcome"]["fallback_depth"], 1);
    assert!(failure["outcome"]["target"].is_null());
}

/// The ledger's rows as `(target, status)`, sorted.
fn rusqlite_rows(path: &std::path::Path) -> Vec<(String, u16)> {
    let conn = rusqlite::Connection::open(path).unwrap();
    let mut stmt = conn.prepare("SELECT target, status FROM usage").unwrap();
    let mut rows: Vec<(String, u16)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.sort();
    rows
}

/// The log's lines once it holds `n` (the writer flushes in the background).
fn wait_for_lines(path: &std::path::Path, n: usize) -> Vec<String> {
    for _ in 0..500 {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_owned).collect();
        if lines.len() >= n {
            return lines;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the decision log never held {n} lines");
}

#[tokio::test]
async fn a_quota_refusal_ends_in_the_same_place_without_troubling_the_policy() {
    let good = FakeUpstream::start(Wire::OpenAi).await;
    good.set_default(Upstream::ok());
    let dir = tempfile::tempdir().unwrap();
    let ledger = dir.path().join("usage.db");
    let toml = config(
        &[("good", "openai", &format!("{}/v1", good.url()))],
        &[("good", "good", "m")],
        &format!(
            "policy = '{}'\n\n[tenants.limits]\nrequests_per_minute = 1\n\n[ledger]\npath = '{}'\n",
            wasm("signalbox_fixture_outcome_counter").display(),
            ledger.display()
        ),
    );
    let gw = TestGateway::start(&toml).await;
    assert_eq!(send_routed(&gw, "0", false).await.status, 200);
    let refused = send_routed(&gw, "0", false).await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.error_code(), "rate_limit_requests");

    // The policy was never asked, so it hears only the first request's outcome.
    wait_for_outcomes(&gw, 1).await;
    let metrics = gw.gateway.metrics.render();
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("signalbox_requests_total{")
                && l.contains("target=\"none\"")
                && l.contains("status=\"4xx\"")),
        "{metrics}"
    );
    drop(gw);
    assert_eq!(
        rusqlite_rows(&ledger),
        vec![(String::new(), 429), ("good".to_owned(), 200)]
    );
    let conn = rusqlite::Connection::open(&ledger).unwrap();
    let policy: String = conn
        .query_row("SELECT policy FROM usage WHERE status = 429", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(policy, "", "a refusal before the policy names no policy");
}

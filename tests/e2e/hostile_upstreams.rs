//! Upstreams that misbehave: each case is bounded in time and memory and ends in a
//! clear error, falling back to the next target when nothing has reached the client
//! yet, and ending the stream with an error event when something has.
//!
//! Every request names its plan with the outcome-counter fixture's `x-signalbox-route`:
//! the hostile target first, a good one (model `g`) second.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::*;
use crate::support::wasm;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

const CHUNK: &str = "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}\n\n";

/// The config of a gateway with `hostile` as target 0 (model `h`) and a good upstream
/// as target 1 (model `g`).
fn toml(hostile: &FakeUpstream, good: &FakeUpstream) -> String {
    config(
        &[
            ("hostile", "openai", &format!("{}/v1", hostile.url())),
            ("good", "openai", &format!("{}/v1", good.url())),
        ],
        &[("hostile", "hostile", "h"), ("good", "good", "g")],
        &format!(
            "policy = '{}'\n",
            wasm("signalbox_fixture_outcome_counter").display()
        ),
    )
}

/// [`toml`]'s gateway with a total timeout of 1.5 s and 0.6 s of silence allowed
/// inside a stream.
async fn gateway(hostile: &FakeUpstream, good: &FakeUpstream) -> TestGateway {
    let toml = toml(hostile, good).replace(
        "total_timeout_ms = 5000\n",
        "total_timeout_ms = 1500\nstream_idle_timeout_ms = 600\n",
    );
    TestGateway::start(&toml).await
}

async fn upstreams(hostile: Upstream) -> (FakeUpstream, FakeUpstream) {
    let bad = FakeUpstream::start(Wire::OpenAi).await;
    bad.set_default(hostile);
    let good = FakeUpstream::start(Wire::OpenAi).await;
    good.set_default(Upstream::ok().text("Hello there"));
    (bad, good)
}

async fn ask(gw: &TestGateway, stream: bool) -> (Reply, Duration) {
    let body =
        json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "Hello"}]});
    let started = Instant::now();
    let reply = send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(body.to_string().as_bytes()),
        &[("x-signalbox-route", "0,1")],
    )
    .await;
    (reply, started.elapsed())
}

/// The served model of a JSON answer, or of every chunk of a stream.
fn served_by(reply: &Reply) -> Vec<String> {
    if reply
        .header("content-type")
        .starts_with("text/event-stream")
    {
        return reply
            .text()
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .filter_map(|c| c["model"].as_str().map(str::to_owned))
            .collect();
    }
    vec![reply.json()["model"].as_str().unwrap_or("").to_owned()]
}

/// Falls back: the good target serves the whole answer, the hostile one was tried.
async fn assert_falls_back(hostile: Upstream, stream: bool) {
    let (bad, good) = upstreams(hostile).await;
    let gw = gateway(&bad, &good).await;
    let (reply, took) = ask(&gw, stream).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let served = served_by(&reply);
    assert!(
        !served.is_empty() && served.iter().all(|m| m == "g"),
        "served by {served:?}: {}",
        reply.text()
    );
    if stream {
        assert!(
            reply.text().ends_with("data: [DONE]\n\n"),
            "{}",
            reply.text()
        );
    }
    assert_eq!((bad.hits(), good.hits()), (1, 1));
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test]
async fn an_html_page_with_status_200_is_a_failure_not_a_completion() {
    let page = Upstream::ok().raw("text/html", &["<html><body>502 Bad Gateway</body></html>"]);
    assert_falls_back(page, false).await;
}

#[tokio::test]
async fn a_json_body_that_does_not_parse_is_a_failure() {
    let broken = Upstream::ok().raw("application/json", &["{\"id\":\"x\",\"choices\":[{"]);
    assert_falls_back(broken, false).await;
}

#[tokio::test]
async fn a_stream_answering_a_request_for_json_is_a_failure() {
    let stream = Upstream::ok().raw("text/event-stream", &[CHUNK, "data: [DONE]\n\n"]);
    assert_falls_back(stream, false).await;
}

#[tokio::test]
async fn a_stream_of_events_that_are_not_json_falls_back_before_content() {
    let events = Upstream::ok().raw(
        "text/event-stream",
        &["data: <html>oops</html>\n\n", CHUNK, "data: [DONE]\n\n"],
    );
    assert_falls_back(events, true).await;
}

#[tokio::test]
async fn a_hang_after_the_headers_falls_back_at_the_timeout() {
    // Non-streaming: headers, then no body byte; the total timeout ends the wait.
    assert_falls_back(Upstream::ok().stall_after(0), false).await;
    // Streaming: the opening event, then nothing; the first-byte timeout ends it.
    assert_falls_back(Upstream::ok().stall_after(0), true).await;
}

#[tokio::test]
async fn a_body_without_end_is_cut_at_the_size_limit_and_falls_back() {
    assert_falls_back(Upstream::ok().endless(), false).await;
}

/// After content has reached the client: 200, the content, then an error event and
/// no `[DONE]`; the client is not kept waiting past the bound.
async fn assert_ends_with_error(hostile: Upstream, why: &str) {
    let (bad, good) = upstreams(hostile).await;
    let gw = gateway(&bad, &good).await;
    let (reply, took) = ask(&gw, true).await;
    assert_eq!(reply.status, 200);
    let text = reply.text();
    assert!(text.contains("\"content\":\"Hi\""), "{text}");
    assert!(
        text.contains("stream_interrupted") && text.contains(why),
        "{text}"
    );
    assert!(!text.contains("[DONE]"), "{text}");
    assert_eq!(good.hits(), 0, "nothing falls back once content was sent");
    assert!(took < Duration::from_secs(10), "took {took:?}");
}

#[tokio::test]
async fn an_event_that_is_not_json_after_content_ends_the_stream_with_an_error() {
    let events = Upstream::ok().raw(
        "text/event-stream",
        &[CHUNK, "data: Internal Server Error\n\n", "data: [DONE]\n\n"],
    );
    assert_ends_with_error(events, "not a JSON chunk").await;
}

#[tokio::test]
async fn a_stream_that_goes_silent_ends_at_the_idle_timeout() {
    let silent = Upstream::ok()
        .chunks(&["Hi", " there", " you"])
        .stall_after(1);
    assert_ends_with_error(silent, "sent nothing for 600 ms").await;
}

#[tokio::test]
async fn an_endless_stream_ends_at_the_total_timeout() {
    let endless = Upstream::ok()
        .chunks(&["Hi"])
        .endless()
        .chunk_interval(Duration::from_millis(5));
    assert_ends_with_error(endless, "total timeout").await;
}

#[tokio::test]
async fn an_endless_event_ends_the_stream_at_the_event_size_limit() {
    // One event that never ends: the relay holds at most 1 MiB of it.
    let mut pieces = vec![CHUNK.to_owned(), "data: {\"pad\":\"".to_owned()];
    pieces.extend(std::iter::repeat_n("x".repeat(64 << 10), 20));
    let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
    let endless = Upstream::ok().raw("text/event-stream", &pieces);
    assert_ends_with_error(endless, "exceeds").await;
}

#[tokio::test]
async fn a_failing_target_sends_on_no_more_than_its_retry_budget() {
    let (bad, good) = upstreams(Upstream::ok().status(500)).await;
    // No ratio, one retry a second: ten in the ten-second window. The circuit stays
    // closed, so every request tries the failing target first.
    let toml = toml(&bad, &good).replace(
        "breaker_failures = 3\n",
        "breaker_failures = 1000\nretry_budget_ratio = 0.0\nretry_budget_min_per_second = 1\n",
    );
    let gw = TestGateway::start(&toml).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..15 {
        let (reply, _) = ask(&gw, false).await;
        statuses.push(reply.status);
        last = Some(reply);
    }
    assert_eq!(statuses, [[200; 10].as_slice(), &[503; 5]].concat());
    let last = last.unwrap();
    assert!(
        last.text().contains("retry budget spent"),
        "{}",
        last.text()
    );
    assert_eq!((bad.hits(), good.hits()), (15, 10));
    let metrics = gw.gateway.metrics.render();
    assert!(
        metrics.contains(r#"signalbox_rejections_total{tenant="acme",reason="retry_budget"} 5"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn an_upstream_refusing_the_gateways_credentials_is_a_failed_target_not_the_clients_answer() {
    for status in [401, 403] {
        assert_falls_back(Upstream::ok().status(status), false).await;
    }
    // With no other target, the client gets a 503 that does not carry the upstream's
    // body (OpenAI's 401 quotes part of the key).
    let bad = FakeUpstream::start(Wire::OpenAi).await;
    bad.set_default(Upstream::ok().status(401));
    let toml = config(
        &[("hostile", "openai", &format!("{}/v1", bad.url()))],
        &[("hostile", "hostile", "h")],
        "",
    );
    let gw = TestGateway::start(&toml).await;
    let reply = chat(
        &gw,
        &json!({"model": "h", "messages": [{"role": "user", "content": "Hi"}]}),
    )
    .await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(
        reply
            .text()
            .contains("refused the gateway's credentials (401)"),
        "{}",
        reply.text()
    );
    assert!(!reply.text().contains("fake upstream"), "{}", reply.text());
}

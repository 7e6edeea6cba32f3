//! The Anthropic Messages API at the front door: byte for byte to an Anthropic
//! upstream, translated to and from chat for the others (JSON, streams, tools, errors),
//! with what chat cannot carry named in `x-signalbox-degraded` — or refused, when the
//! client asks for strictness. Every request goes over real TCP to fake upstreams
//! speaking the real wire formats.
//!
//! Plans are named with the outcome-counter fixture's `x-signalbox-route`.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::*;
use crate::support::wasm;
use serde_json::{Value, json};

/// A gateway with an Anthropic target (`claude`, position 0) and a chat one (`gpt`,
/// position 1), writing a decision log in a directory of its own.
async fn gateway(
    anthropic: &FakeUpstream,
    openai: &FakeUpstream,
) -> (TestGateway, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let toml = config(
        &[
            ("anthropic", "anthropic", &format!("{}/v1", anthropic.url())),
            ("openai", "openai", &format!("{}/v1", openai.url())),
        ],
        &[("claude", "anthropic", "claude"), ("gpt", "openai", "gpt")],
        &format!(
            "policy = '{}'\n\n[decision_log]\npath = '{}'\n",
            wasm("signalbox_fixture_outcome_counter").display(),
            dir.path().join("decisions.jsonl").display()
        ),
    );
    (TestGateway::start(&toml).await, dir)
}

/// The decision log's line for `reply`'s request, once written.
async fn logged(dir: &tempfile::TempDir, reply: &Reply) -> Value {
    let id = reply.header("x-request-id").to_owned();
    let path = dir.path().join("decisions.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some(line) = text
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|l| l["request_id"] == id.as_str())
        {
            return line;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no decision log line for {id}: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn upstreams() -> (FakeUpstream, FakeUpstream) {
    let anthropic = FakeUpstream::start(Wire::Anthropic).await;
    anthropic.set_default(Upstream::ok().text("Hello from Claude"));
    let openai = FakeUpstream::start(Wire::OpenAi).await;
    openai.set_default(Upstream::ok().text("Hello from GPT"));
    (anthropic, openai)
}

/// `POST /v1/messages` with the key in `x-api-key`, as Anthropic's clients send it,
/// routed to the targets at `route`.
async fn messages(gw: &TestGateway, route: &str, body: &[u8], headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![
        ("x-api-key", KEY),
        ("anthropic-version", "2023-06-01"),
        ("x-signalbox-route", route),
    ];
    all.extend_from_slice(headers);
    send_with("POST", &gw.url("/v1/messages"), None, Some(body), &all).await
}

fn hello(stream: bool) -> Value {
    json!({"model": "auto", "max_tokens": 64, "stream": stream,
           "messages": [{"role": "user", "content": "Hello"}]})
}

fn streamed_text(events: &[(String, Value)]) -> String {
    events
        .iter()
        .filter_map(|(_, d)| d["delta"]["text"].as_str())
        .collect()
}

#[tokio::test]
async fn a_messages_request_reaches_an_anthropic_upstream_byte_for_byte() {
    let (anthropic, openai) = upstreams().await;
    // What only the Messages API has, and JSON only a byte-exact relay keeps: thinking
    // blocks with signatures, cache control, unknown fields, key order, numbers as
    // spelt.
    let sent = br#"{"stream":false,"model":"auto","max_tokens":64,"temperature":0.10,"top_k":1e1,"seed":123456789012345678901234567890,
  "system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],
  "thinking":{"type":"enabled","budget_tokens":1024},
  "messages":[{"role":"user","content":"Why?"},
    {"role":"assistant","content":[{"type":"thinking","thinking":"Let me see.","signature":"c2lnbmF0dXJl"},{"type":"text","text":"Because."}]},
    {"role":"user","content":"And then?"}],
  "x_unknown":{"z":1,"a":[true,null]}}"#;
    let answer = r#"{"id":"msg_1","type":"message","role":"assistant","model":"claude-upstream","content":[{"type":"thinking","thinking":"Hmm.","signature":"EqQBCgIYAhIM"},{"type":"text","text":"Then this."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":30,"cache_read_input_tokens":12,"output_tokens":9},"x_extra":1.50}"#;
    anthropic.enqueue(Upstream::ok().raw("application/json", &[answer]));
    let (gw, _dir) = gateway(&anthropic, &openai).await;
    let reply = messages(
        &gw,
        "0",
        sent,
        &[("anthropic-beta", "interleaved-thinking-2025-05-14")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-target"), "claude");
    assert_eq!(reply.header("x-signalbox-degraded"), "");
    // The answer as the upstream wrote it, named for the served target.
    assert_eq!(reply.text(), answer.replace("claude-upstream", "claude"));

    let recorded = &anthropic.requests()[0];
    assert_eq!(recorded.path, "/v1/messages");
    let expected =
        String::from_utf8_lossy(sent).replace(r#""model":"auto""#, r#""model":"claude-upstream""#);
    assert_eq!(String::from_utf8_lossy(&recorded.raw_body), expected);
    // The client's protocol headers pass; its key does not (the provider's does).
    assert_eq!(
        recorded.header("anthropic-beta"),
        Some("interleaved-thinking-2025-05-14")
    );
    assert_eq!(recorded.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(recorded.header("x-api-key"), Some("upstream-secret"));
    assert_eq!(openai.hits(), 0);
}

#[tokio::test]
async fn a_messages_stream_passes_through_and_is_accounted() {
    let (anthropic, openai) = upstreams().await;
    let (gw, dir) = gateway(&anthropic, &openai).await;
    let reply = messages(&gw, "0", hello(true).to_string().as_bytes(), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(
        reply
            .header("content-type")
            .starts_with("text/event-stream")
    );
    let events = events(&reply.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names.first(), Some(&"message_start"));
    assert_eq!(names.last(), Some(&"message_stop"));
    assert_eq!(events[0].1["message"]["model"], "claude");
    assert_eq!(streamed_text(&events), "Hello from Claude");
    // The upstream's own counts, read from its events.
    let input = events[0].1["message"]["usage"]["input_tokens"]
        .as_u64()
        .unwrap();
    let line = logged(&dir, &reply).await;
    assert_eq!(line["outcome"]["protocol"], "messages");
    assert_eq!(line["outcome"]["ending"], "completed");
    assert_eq!(line["outcome"]["input_tokens"], input);
    assert_eq!(line["outcome"]["output_tokens"], 3);
}

#[tokio::test]
async fn a_messages_request_to_a_chat_target_is_translated_both_ways() {
    let (anthropic, openai) = upstreams().await;
    let (gw, _dir) = gateway(&anthropic, &openai).await;
    let body = json!({
        "model": "auto", "max_tokens": 100, "temperature": 0.5,
        "system": "Be brief.",
        "stop_sequences": ["END"],
        "messages": [{"role": "user", "content": [{"type": "text", "text": "Hi"},
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}],
    });
    let reply = messages(&gw, "1", body.to_string().as_bytes(), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-target"), "gpt");
    assert_eq!(reply.header("x-signalbox-degraded"), "");
    let answer = reply.json();
    assert_eq!(answer["type"], "message");
    assert_eq!(answer["role"], "assistant");
    assert_eq!(answer["model"], "gpt");
    assert_eq!(
        answer["content"],
        json!([{"type": "text", "text": "Hello from GPT"}])
    );
    assert_eq!(answer["stop_reason"], "end_turn");
    assert!(answer["usage"]["input_tokens"].as_u64().unwrap() > 0);
    assert_eq!(answer["usage"]["output_tokens"], 3);

    let sent = &openai.requests()[0];
    assert_eq!(sent.path, "/v1/chat/completions");
    assert_eq!(sent.body["model"], "gpt-upstream");
    assert_eq!(sent.body["max_tokens"], 100);
    assert_eq!(sent.body["stop"], json!(["END"]));
    assert_eq!(
        sent.body["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(
        sent.body["messages"][1]["content"][1],
        json!({"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}})
    );
    assert_eq!(sent.header("authorization"), Some("Bearer upstream-secret"));
    assert_eq!(sent.header("anthropic-version"), None);
}

#[tokio::test]
async fn a_chat_stream_comes_back_as_anthropic_events() {
    let (anthropic, openai) = upstreams().await;
    let (gw, _dir) = gateway(&anthropic, &openai).await;
    let reply = messages(&gw, "1", hello(true).to_string().as_bytes(), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let events = events(&reply.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names[0], "message_start");
    assert_eq!(names[1], "content_block_start");
    assert_eq!(
        &names[names.len() - 3..],
        ["content_block_stop", "message_delta", "message_stop"]
    );
    assert_eq!(events[0].1["message"]["model"], "gpt");
    assert_eq!(streamed_text(&events), "Hello from GPT");
    let delta = &events[events.len() - 2].1;
    assert_eq!(delta["delta"]["stop_reason"], "end_turn");
    assert_eq!(delta["usage"]["output_tokens"], 3);
    // The chat upstream was asked for usage, which the Messages stream reports.
    assert_eq!(
        openai.requests()[0].body["stream_options"]["include_usage"],
        true
    );
}

#[tokio::test]
async fn a_tool_call_round_trip_works_through_a_chat_target() {
    let (anthropic, openai) = upstreams().await;
    openai.enqueue(Upstream::ok().tool_call("get_weather", r#"{"city":"Paris"}"#));
    let (gw, _dir) = gateway(&anthropic, &openai).await;
    let tools = json!([{"name": "get_weather", "description": "Weather now",
                        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let first = json!({"model": "auto", "max_tokens": 64, "tools": tools,
        "tool_choice": {"type": "any"},
        "messages": [{"role": "user", "content": "Weather in Paris?"}]});
    let reply = messages(&gw, "1", first.to_string().as_bytes(), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let answer = reply.json();
    assert_eq!(answer["stop_reason"], "tool_use");
    let call = &answer["content"][0];
    assert_eq!(call["type"], "tool_use");
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["input"], json!({"city": "Paris"}));
    let sent = &openai.requests()[0].body;
    assert_eq!(sent["tools"][0]["function"]["name"], "get_weather");
    assert_eq!(sent["tools"][0]["function"]["parameters"]["type"], "object");
    assert_eq!(sent["tool_choice"], "required");

    let id = call["id"].as_str().unwrap();
    let second = json!({"model": "auto", "max_tokens": 64, "tools": tools,
        "messages": [
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": [call.clone()]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": id, "content": "18C, sunny"}]}]});
    let reply = messages(&gw, "1", second.to_string().as_bytes(), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent = &openai.requests()[1].body["messages"];
    assert_eq!(sent[1]["role"], "assistant");
    assert_eq!(sent[1]["tool_calls"][0]["id"], id);
    assert_eq!(
        sent[1]["tool_calls"][0]["function"]["arguments"],
        r#"{"city":"Paris"}"#
    );
    assert_eq!(
        sent[2],
        json!({"role": "tool", "tool_call_id": id, "content": "18C, sunny"})
    );
}

fn with_thinking() -> Value {
    json!({"model": "auto", "max_tokens": 64,
        "messages": [
            {"role": "user", "content": "Why?"},
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Let me see.", "signature": "c2ln"},
                {"type": "text", "text": "Because."}]},
            {"role": "user", "content": "And then?"}]})
}

#[tokio::test]
async fn what_chat_cannot_carry_is_named_or_refused_when_strict() {
    let (anthropic, openai) = upstreams().await;
    let (gw, dir) = gateway(&anthropic, &openai).await;
    let body = with_thinking().to_string();

    let reply = messages(&gw, "1", body.as_bytes(), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-degraded"), "thinking");
    assert_eq!(
        logged(&dir, &reply).await["outcome"]["degraded"],
        "thinking"
    );
    let sent = &openai.requests()[0].body["messages"];
    assert_eq!(sent[1], json!({"role": "assistant", "content": "Because."}));

    // Strict: the chat target is passed over; with nothing else in the plan, a 400 in
    // Anthropic's shape naming what would have been lost.
    let reply = messages(&gw, "1", body.as_bytes(), &[("x-signalbox-strict", "true")]).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let error = reply.json();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("thinking") && message.contains("gpt"),
        "{message}"
    );
    assert_eq!(
        openai.hits(),
        1,
        "a strict request is never sent to a target that would drop part of it"
    );

    // Strict with an Anthropic target next in the plan: served exactly there.
    let reply = messages(
        &gw,
        "1,0",
        body.as_bytes(),
        &[("x-signalbox-strict", "true")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-target"), "claude");
    assert_eq!(reply.header("x-signalbox-degraded"), "");
}

#[tokio::test]
async fn fallback_crosses_protocols_before_the_first_byte() {
    let (anthropic, openai) = upstreams().await;
    anthropic.enqueue(Upstream::ok().status(529));
    let (gw, _dir) = gateway(&anthropic, &openai).await;
    // Anthropic overloaded: chat serves the stream, in Anthropic's events.
    let reply = messages(&gw, "0,1", hello(true).to_string().as_bytes(), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-target"), "gpt");
    assert_eq!(reply.header("x-signalbox-attempts"), "2");
    assert_eq!(streamed_text(&events(&reply.text())), "Hello from GPT");
    // Chat failing: Anthropic serves.
    openai.enqueue(Upstream::ok().status(500));
    let reply = messages(&gw, "1,0", hello(false).to_string().as_bytes(), &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-target"), "claude");
    assert_eq!(reply.json()["content"][0]["text"], "Hello from Claude");
}

#[tokio::test]
async fn errors_take_anthropic_shape_and_status() {
    let (anthropic, openai) = upstreams().await;
    let (gw, _dir) = gateway(&anthropic, &openai).await;
    let kind = |r: &Reply| r.json()["error"]["type"].as_str().unwrap_or("").to_owned();

    let reply = send_with(
        "POST",
        &gw.url("/v1/messages"),
        None,
        Some(hello(false).to_string().as_bytes()),
        &[],
    )
    .await;
    assert_eq!(
        (reply.status, kind(&reply).as_str()),
        (401, "authentication_error"),
        "{}",
        reply.text()
    );
    assert_eq!(reply.json()["type"], "error");
    let reply = send_with(
        "POST",
        &gw.url("/v1/messages"),
        None,
        Some(hello(false).to_string().as_bytes()),
        &[("x-api-key", "sb-wrong")],
    )
    .await;
    assert_eq!(
        (reply.status, kind(&reply).as_str()),
        (401, "authentication_error")
    );
    // A bearer key works too (ANTHROPIC_AUTH_TOKEN).
    let reply = send_with(
        "POST",
        &gw.url("/v1/messages"),
        Some(KEY),
        Some(hello(false).to_string().as_bytes()),
        &[("x-signalbox-route", "0")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let no_max = json!({"model": "auto", "messages": [{"role": "user", "content": "Hi"}]});
    let reply = messages(&gw, "0", no_max.to_string().as_bytes(), &[]).await;
    assert_eq!(
        (reply.status, kind(&reply).as_str()),
        (400, "invalid_request_error")
    );
    assert!(reply.text().contains("max_tokens"), "{}", reply.text());
    let reply = messages(&gw, "0", b"{not json", &[]).await;
    assert_eq!(
        (reply.status, kind(&reply).as_str()),
        (400, "invalid_request_error")
    );
    assert_eq!(anthropic.hits(), 1, "refused requests are never forwarded");

    // A chat upstream's refusal, translated.
    openai.enqueue(Upstream::ok().status(400));
    let reply = messages(&gw, "1", hello(false).to_string().as_bytes(), &[]).await;
    assert_eq!(
        (reply.status, kind(&reply).as_str()),
        (400, "invalid_request_error"),
        "{}",
        reply.text()
    );
    // Nothing answers: 503, overloaded.
    openai.enqueue(Upstream::ok().status(500));
    let reply = messages(&gw, "1", hello(false).to_string().as_bytes(), &[]).await;
    assert_eq!(
        (reply.status, kind(&reply).as_str()),
        (503, "overloaded_error"),
        "{}",
        reply.text()
    );
}

#[tokio::test]
async fn a_stream_that_breaks_after_content_ends_with_an_anthropic_error_event() {
    let (anthropic, openai) = upstreams().await;
    openai.enqueue(
        Upstream::ok()
            .chunks(&["a", "b", "c", "d"])
            .truncate_after(2),
    );
    let (gw, _dir) = gateway(&anthropic, &openai).await;
    let reply = messages(&gw, "1", hello(true).to_string().as_bytes(), &[]).await;
    assert_eq!(reply.status, 200);
    let events = events(&reply.text());
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{}", reply.text());
    assert_eq!(data["type"], "error");
    assert_eq!(data["error"]["type"], "api_error");
    assert!(!events.iter().any(|(n, _)| n == "message_stop"));
}

#[tokio::test]
async fn count_tokens_answers_the_gateways_estimate() {
    let (anthropic, openai) = upstreams().await;
    let (gw, _dir) = gateway(&anthropic, &openai).await;
    let body = json!({"model": "auto", "system": "Be brief.",
        "messages": [{"role": "user", "content": "How many tokens is this?"}]});
    let reply = send_with(
        "POST",
        &gw.url("/v1/messages/count_tokens"),
        None,
        Some(body.to_string().as_bytes()),
        &[("x-api-key", KEY)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let count = reply.json()["input_tokens"].as_u64().unwrap();
    assert!((8..40).contains(&count), "{count}");
    assert_eq!(reply.header("x-signalbox-estimate"), "true");
    assert_eq!(anthropic.hits() + openai.hits(), 0);
    let reply = send_with(
        "POST",
        &gw.url("/v1/messages/count_tokens"),
        None,
        Some(b"{}"),
        &[("x-api-key", KEY)],
    )
    .await;
    assert_eq!(reply.status, 400);
    assert_eq!(reply.json()["error"]["type"], "invalid_request_error");
}

#[tokio::test]
async fn a_chat_request_to_an_anthropic_target_names_what_messages_cannot_carry() {
    let (anthropic, openai) = upstreams().await;
    let (gw, _dir) = gateway(&anthropic, &openai).await;
    let body = json!({"model": "auto", "n": 2, "logprobs": true, "seed": 7,
        "messages": [{"role": "user", "content": "Hello"}]})
    .to_string();
    let chat = |headers: &'static [(&'static str, &'static str)]| {
        let gw = &gw;
        let body = body.clone();
        async move {
            let mut all = vec![("x-signalbox-route", "0")];
            all.extend_from_slice(headers);
            send_with(
                "POST",
                &gw.url("/v1/chat/completions"),
                Some(KEY),
                Some(body.as_bytes()),
                &all,
            )
            .await
        }
    };
    let reply = chat(&[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-degraded"), "n, logprobs, seed");
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello from Claude"
    );

    let reply = chat(&[("x-signalbox-strict", "true")]).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.error_code(), "protocol_degraded");
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("n, logprobs, seed")
    );
    assert_eq!(anthropic.hits(), 1);
}

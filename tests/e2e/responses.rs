//! The OpenAI Responses API at the front door (`POST /v1/responses`), served by any
//! target through a translation to chat and back: the `response` object, the event
//! stream, function calls and their outputs, errors in OpenAI's shape; what chat cannot
//! carry named in `x-signalbox-degraded`; a request that needs a stored response
//! refused, since the gateway keeps none yet.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::*;
use crate::support::wasm;
use serde_json::{Value, json};

async fn gateway(anthropic: &FakeUpstream, openai: &FakeUpstream) -> TestGateway {
    let toml = config(
        &[
            ("anthropic", "anthropic", &format!("{}/v1", anthropic.url())),
            ("openai", "openai", &format!("{}/v1", openai.url())),
        ],
        &[("claude", "anthropic", "claude"), ("gpt", "openai", "gpt")],
        &format!(
            "policy = '{}'\n",
            wasm("signalbox_fixture_outcome_counter").display()
        ),
    );
    TestGateway::start(&toml).await
}

async fn upstreams() -> (FakeUpstream, FakeUpstream) {
    let anthropic = FakeUpstream::start(Wire::Anthropic).await;
    anthropic.set_default(Upstream::ok().text("Hello from Claude"));
    let openai = FakeUpstream::start(Wire::OpenAi).await;
    openai.set_default(Upstream::ok().text("Hello from GPT"));
    (anthropic, openai)
}

async fn responses(gw: &TestGateway, route: &str, body: &Value, headers: &[(&str, &str)]) -> Reply {
    let mut all = vec![("x-signalbox-route", route)];
    all.extend_from_slice(headers);
    send_with(
        "POST",
        &gw.url("/v1/responses"),
        Some(KEY),
        Some(body.to_string().as_bytes()),
        &all,
    )
    .await
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|item| item["content"].as_array().into_iter().flatten())
        .filter_map(|part| part["text"].as_str())
        .collect()
}

#[tokio::test]
async fn a_response_is_answered_by_chat_and_anthropic_targets_alike() {
    let (anthropic, openai) = upstreams().await;
    let gw = gateway(&anthropic, &openai).await;
    let body = json!({"model": "auto", "instructions": "Be brief.", "input": "Hello", "max_output_tokens": 50});
    for (route, text, target) in [
        ("1", "Hello from GPT", "gpt"),
        ("0", "Hello from Claude", "claude"),
    ] {
        let reply = responses(&gw, route, &body, &[]).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-signalbox-target"), target);
        let response = reply.json();
        assert_eq!(response["object"], "response");
        assert_eq!(response["status"], "completed");
        assert_eq!(response["model"], target);
        assert!(response["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(output_text(&response), text);
        assert!(response["usage"]["input_tokens"].as_u64().unwrap() > 0);
        assert_eq!(response["usage"]["output_tokens"], 3);
    }
    let sent = &openai.requests()[0].body;
    assert_eq!(
        sent["messages"][0],
        json!({"role": "system", "content": "Be brief."})
    );
    assert_eq!(sent["messages"][1]["role"], "user");
    assert_eq!(sent["max_completion_tokens"], 50);
    // Through chat, then Messages for the Anthropic target.
    let sent = &anthropic.requests()[0].body;
    assert_eq!(sent["system"], "Be brief.");
    assert_eq!(sent["max_tokens"], 50);
}

#[tokio::test]
async fn a_stream_is_the_responses_event_sequence() {
    let (anthropic, openai) = upstreams().await;
    let gw = gateway(&anthropic, &openai).await;
    let body = json!({"model": "auto", "input": "Hello", "stream": true});
    let reply = responses(&gw, "1", &body, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let events = events(&reply.text());
    let names: Vec<&str> = events.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(&names[..2], ["response.created", "response.in_progress"]);
    assert_eq!(names.last(), Some(&"response.completed"));
    for (i, (name, data)) in events.iter().enumerate() {
        assert_eq!(data["type"], name.as_str());
        assert_eq!(data["sequence_number"], i);
    }
    let deltas: String = events
        .iter()
        .filter(|(n, _)| n == "response.output_text.delta")
        .filter_map(|(_, d)| d["delta"].as_str())
        .collect();
    assert_eq!(deltas, "Hello from GPT");
    let done = &events.last().unwrap().1["response"];
    assert_eq!(output_text(done), "Hello from GPT");
    assert_eq!(done["usage"]["output_tokens"], 3);
    assert_eq!(done["model"], "gpt");
}

#[tokio::test]
async fn a_function_call_round_trip() {
    let (anthropic, openai) = upstreams().await;
    openai.enqueue(Upstream::ok().tool_call("get_weather", r#"{"city":"Paris"}"#));
    let gw = gateway(&anthropic, &openai).await;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Weather now",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}]);
    let first = json!({"model": "auto", "tools": tools, "input": "Weather in Paris?"});
    let reply = responses(&gw, "1", &first, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let call = reply.json()["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["type"] == "function_call")
        .cloned()
        .unwrap();
    assert_eq!(call["name"], "get_weather");
    assert_eq!(call["arguments"], r#"{"city":"Paris"}"#);
    assert_eq!(
        openai.requests()[0].body["tools"][0]["function"]["name"],
        "get_weather"
    );

    let call_id = call["call_id"].as_str().unwrap();
    let second = json!({"model": "auto", "tools": tools, "input": [
        {"role": "user", "content": "Weather in Paris?"},
        call,
        {"type": "function_call_output", "call_id": call_id, "output": "18C, sunny"}]});
    let reply = responses(&gw, "1", &second, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let sent = &openai.requests()[1].body["messages"];
    assert_eq!(sent[1]["tool_calls"][0]["id"], call_id);
    assert_eq!(
        sent[2],
        json!({"role": "tool", "tool_call_id": call_id, "content": "18C, sunny"})
    );
}

#[tokio::test]
async fn what_chat_cannot_carry_is_named_and_stored_state_is_refused() {
    let (anthropic, openai) = upstreams().await;
    let gw = gateway(&anthropic, &openai).await;
    let with_reasoning = json!({"model": "auto", "input": [
        {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "opaque"},
        {"role": "user", "content": "And then?"}]});
    let reply = responses(&gw, "1", &with_reasoning, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-degraded"), "reasoning");
    let reply = responses(&gw, "1", &with_reasoning, &[("x-signalbox-strict", "true")]).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert_eq!(reply.error_code(), "protocol_degraded");

    let chained = json!({"model": "auto", "input": "More", "previous_response_id": "resp_123"});
    let reply = responses(&gw, "1", &chained, &[]).await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    assert!(
        reply.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("keeps no responses")
    );
    assert_eq!(openai.hits(), 1, "refused requests are never sent");
}

#[tokio::test]
async fn a_stream_that_breaks_after_content_ends_with_an_error_event() {
    let (anthropic, openai) = upstreams().await;
    openai.enqueue(
        Upstream::ok()
            .chunks(&["a", "b", "c", "d"])
            .truncate_after(2),
    );
    let gw = gateway(&anthropic, &openai).await;
    let reply = responses(
        &gw,
        "1",
        &json!({"model": "auto", "input": "Hi", "stream": true}),
        &[],
    )
    .await;
    assert_eq!(reply.status, 200);
    let events = events(&reply.text());
    let (name, data) = events.last().unwrap();
    assert_eq!(name, "error", "{}", reply.text());
    assert_eq!(data["code"], "stream_interrupted");
    assert_eq!(data["sequence_number"], events.len() - 1);
    assert!(!events.iter().any(|(n, _)| n == "response.completed"));
}

/// A gateway whose target `resp` (position 0) is an OpenAI Responses upstream and
/// `gpt` (position 1) a chat one.
async fn responses_gateway(up: &FakeUpstream, chat: &FakeUpstream) -> TestGateway {
    let toml = config(
        &[
            ("responses", "openai-responses", &format!("{}/v1", up.url())),
            ("openai", "openai", &format!("{}/v1", chat.url())),
        ],
        &[("resp", "responses", "resp"), ("gpt", "openai", "gpt")],
        &format!(
            "policy = '{}'\n",
            wasm("signalbox_fixture_outcome_counter").display()
        ),
    );
    TestGateway::start(&toml).await
}

#[tokio::test]
async fn a_responses_request_reaches_a_responses_upstream_byte_for_byte() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    let chat = FakeUpstream::start(Wire::OpenAi).await;
    chat.set_default(Upstream::ok().text("Hello from GPT"));
    let sent = br#"{"input":[{"type":"reasoning","id":"rs_1","summary":[],"encrypted_content":"opaque=="},{"role":"user","content":"Why?"}],"model":"auto","temperature":0.10,"top_p":1e0,"seed":123456789012345678901234567890,"store":false,"include":["reasoning.encrypted_content"],"x_unknown":{"z":[true,null]}}"#;
    let answer = r#"{"id":"resp_up","object":"response","created_at":1,"status":"completed","model":"resp-upstream","output":[{"type":"reasoning","id":"rs_2","summary":[],"encrypted_content":"more=="},{"type":"message","id":"msg_1","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Because.","annotations":[]}]}],"usage":{"input_tokens":20,"input_tokens_details":{"cached_tokens":0},"output_tokens":9,"output_tokens_details":{"reasoning_tokens":5},"total_tokens":29},"x_extra":1.50}"#;
    up.enqueue(Upstream::ok().raw("application/json", &[answer]));
    let gw = responses_gateway(&up, &chat).await;
    let reply = send_with(
        "POST",
        &gw.url("/v1/responses"),
        Some(KEY),
        Some(sent),
        &[("x-signalbox-route", "0")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-target"), "resp");
    assert_eq!(
        reply.header("x-signalbox-degraded"),
        "",
        "nothing is dropped"
    );
    assert_eq!(reply.text(), answer.replace("resp-upstream", "resp"));
    let recorded = &up.requests()[0];
    assert_eq!(recorded.path, "/v1/responses");
    assert_eq!(
        String::from_utf8_lossy(&recorded.raw_body),
        String::from_utf8_lossy(sent).replace(r#""model":"auto""#, r#""model":"resp-upstream""#)
    );
    assert_eq!(
        recorded.header("authorization"),
        Some("Bearer upstream-secret")
    );

    // Its stream passes through too, its end and usage read.
    let stream = [
        "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_s\",\"object\":\"response\",\"status\":\"in_progress\",\"model\":\"resp-upstream\",\"output\":[],\"usage\":null}}\n\n",
        "event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"msg_1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Hi\"}\n\n",
        "event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_s\",\"object\":\"response\",\"status\":\"completed\",\"model\":\"resp-upstream\",\"output\":[],\"usage\":{\"input_tokens\":20,\"output_tokens\":1,\"total_tokens\":21}}}\n\n",
    ];
    up.enqueue(Upstream::ok().raw("text/event-stream", &stream));
    let body = json!({"model": "auto", "input": "Hi", "stream": true});
    let reply = responses(&gw, "0", &body, &[]).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.text(),
        stream.concat().replace("resp-upstream", "resp")
    );

    // A chat client is not translated to it: the next target serves.
    let chat_body = json!({"model": "auto", "messages": [{"role": "user", "content": "Hi"}]});
    let reply = send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(chat_body.to_string().as_bytes()),
        &[("x-signalbox-route", "0,1")],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-target"), "gpt");
    assert_eq!(up.hits(), 2);
}

//! The gateway over real TCP, against fake OpenAI and Anthropic upstreams.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire, closed_port_url};
use crate::gateway_support::*;
use serde_json::{Value, json};
use std::time::Duration;

fn hello(model: &str) -> Value {
    json!({"model": model, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]})
}

fn hello_stream(model: &str) -> Value {
    let mut body = hello(model);
    body["stream"] = json!(true);
    body
}

/// Two OpenAI-compatible upstreams serving model `m`: target `a` (cheaper, so the
/// default policy tries it first) then `b`.
async fn two_upstreams() -> (FakeUpstream, FakeUpstream, TestGateway) {
    let a = FakeUpstream::start(Wire::OpenAi).await;
    let b = FakeUpstream::start(Wire::OpenAi).await;
    let toml = config(
        &[
            ("pa", "openai", &format!("{}/v1", a.url())),
            ("pb", "openai", &format!("{}/v1", b.url())),
        ],
        &[("a", "pa", "m"), ("b", "pb", "m")],
        "",
    );
    let gw = TestGateway::start(&toml).await;
    (a, b, gw)
}

#[tokio::test]
async fn non_streaming_passes_through_with_model_rewritten_and_fields_kept() {
    let (a, b, gw) = two_upstreams().await;
    let mut body = hello("m");
    body["seed"] = json!(42);
    body["response_format"] = json!({"type": "json_object"});
    body["logprobs"] = json!(true);
    body["x_vendor_extension"] = json!({"keep": ["me"]});
    let reply = chat(&gw, &body).await;

    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-target"), "a");
    assert_eq!(reply.header("x-signalbox-attempts"), "1");
    assert!(reply.header("x-signalbox-policy").starts_with("default@"));
    assert!(reply.header("x-request-id").starts_with("req-"));
    assert_eq!(reply.json()["object"], "chat.completion");
    assert!(
        reply.json()["choices"][0]["message"]["content"]
            .as_str()
            .is_some()
    );

    let seen = &a.requests()[0];
    assert_eq!(seen.path, "/v1/chat/completions");
    assert_eq!(seen.body["model"], "m-upstream");
    assert_eq!(seen.header("authorization"), Some("Bearer upstream-secret"));
    for field in [
        "seed",
        "response_format",
        "logprobs",
        "x_vendor_extension",
        "messages",
    ] {
        assert_eq!(
            seen.body[field], body[field],
            "{field} changed on the way up"
        );
    }
    assert_eq!(b.hits(), 0);
}

#[tokio::test]
async fn request_bodies_reach_the_upstream_byte_for_byte_but_the_model() {
    let (a, _b, gw) = two_upstreams().await;
    // Key order, spacing, a number no 64-bit type holds, `1e0`, a nested `model` key:
    // all of it must arrive as sent; only the top-level model value changes.
    let sent = r#"{ "seed" : 123456789012345678901234567890, "model": "m", "n": 1e0,
        "temperature": 0.10, "metadata": {"model": "not this one"},
        "messages": [{"role": "user", "content": "say \"model\": \u00e9"}] }"#;
    let reply = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(sent.as_bytes()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let seen = &a.requests()[0];
    assert_eq!(
        std::str::from_utf8(&seen.raw_body).unwrap(),
        sent.replace(r#""model": "m""#, r#""model": "m-upstream""#)
    );
}

#[tokio::test]
async fn streaming_passes_through_byte_for_byte() {
    let (a, _b, gw) = two_upstreams().await;
    a.set_default(Upstream::ok().chunks(&["Hel", "lo", " there"]));
    let mut body = hello_stream("m");
    body["stream_options"] = json!({"include_usage": true});
    let through_gateway = chat(&gw, &body).await;
    assert_eq!(through_gateway.status, 200);
    assert_eq!(through_gateway.header("content-type"), "text/event-stream");

    // The same request straight to the upstream, with the model it would receive: the
    // gateway's bytes are the upstream's, except `model` names the served target's
    // model (the fake echoes the upstream name) and the fake numbers its ids by request.
    body["model"] = json!("m-upstream");
    let direct = send(
        "POST",
        &format!("{}/v1/chat/completions", a.url()),
        Some("x"),
        Some(body.to_string().as_bytes()),
    )
    .await;
    let expected = direct
        .text()
        .replace("\"model\":\"m-upstream\"", "\"model\":\"m\"")
        .replace("chatcmpl-fake-2", "chatcmpl-fake-1");
    assert_eq!(through_gateway.text(), expected);
    assert_eq!(streamed_text(&through_gateway.text()), "Hello there");
    assert!(through_gateway.text().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn falls_back_on_500() {
    let (a, b, gw) = two_upstreams().await;
    a.enqueue(Upstream::ok().status(500));
    let reply = chat(&gw, &hello("m")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-signalbox-target"), "b");
    assert_eq!(reply.header("x-signalbox-attempts"), "2");
    assert_eq!((a.hits(), b.hits()), (1, 1));
}

#[tokio::test]
async fn a_429_falls_back_and_keeps_the_target_aside_for_retry_after() {
    let (a, b, gw) = two_upstreams().await;
    a.enqueue(Upstream::ok().status(429).header("retry-after", "30"));
    let reply = chat(&gw, &hello("m")).await;
    assert_eq!(reply.header("x-signalbox-target"), "b");
    // Inside the window the rate-limited target is not tried at all.
    let reply = chat(&gw, &hello("m")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-signalbox-target"), "b");
    assert_eq!(reply.header("x-signalbox-attempts"), "1");
    assert_eq!((a.hits(), b.hits()), (1, 2));
}

#[tokio::test]
async fn falls_back_on_first_byte_timeout_and_on_connection_refused() {
    let (a, b, gw) = two_upstreams().await;
    a.enqueue(Upstream::ok().delay_headers(Duration::from_secs(2)));
    let started = std::time::Instant::now();
    let reply = chat(&gw, &hello("m")).await;
    assert_eq!(reply.header("x-signalbox-target"), "b");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "waited {:?}",
        started.elapsed()
    );

    a.enqueue(Upstream::ok().delay_first_chunk(Duration::from_secs(2)));
    let reply = chat(&gw, &hello_stream("m")).await;
    assert_eq!(reply.header("x-signalbox-target"), "b");
    assert_eq!(b.hits(), 2);

    let closed = closed_port_url();
    let toml = config(
        &[
            ("dead", "openai", &format!("{closed}/v1")),
            ("pb", "openai", &format!("{}/v1", b.url())),
        ],
        &[("dead", "dead", "m"), ("b", "pb", "m")],
        "",
    );
    let gw = TestGateway::start(&toml).await;
    let reply = chat(&gw, &hello("m")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-signalbox-target"), "b");
    assert_eq!(reply.header("x-signalbox-attempts"), "2");
}

#[tokio::test]
async fn a_stream_that_fails_before_content_falls_back_invisibly() {
    let (a, b, gw) = two_upstreams().await;
    a.enqueue(Upstream::ok().fail_before_content());
    b.set_default(Upstream::ok().chunks(&["from ", "b"]));
    let reply = chat(&gw, &hello_stream("m")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("x-signalbox-target"), "b");
    assert_eq!(streamed_text(&reply.text()), "from b");
    assert!(reply.text().ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn after_the_first_content_a_failure_ends_the_stream_with_an_error_event() {
    let (a, b, gw) = two_upstreams().await;
    // The interval lets the content reach the gateway before the connection dies, as
    // with a real upstream that fails mid-answer.
    a.enqueue(
        Upstream::ok()
            .chunks(&["one ", "two ", "three"])
            .chunk_interval(Duration::from_millis(30))
            .truncate_after(2),
    );
    let reply = chat(&gw, &hello_stream("m")).await;
    assert_eq!(reply.status, 200);
    let text = reply.text();
    assert_eq!(streamed_text(&text), "one two ");
    let last = sse_data(&text).last().cloned().unwrap_or_default();
    let last: Value = serde_json::from_str(&last).unwrap();
    assert_eq!(last["error"]["code"], "stream_interrupted");
    assert!(!text.contains("[DONE]"));
    assert_eq!(b.hits(), 0, "no fallback once content was sent");
}

#[tokio::test]
async fn the_circuit_opens_after_repeated_failures_and_recovers_through_a_probe() {
    let (a, b, gw) = two_upstreams().await;
    a.set_default(Upstream::ok().status(503));
    for _ in 0..3 {
        assert_eq!(
            chat(&gw, &hello("m")).await.header("x-signalbox-target"),
            "b"
        );
    }
    assert_eq!(a.hits(), 3);
    // Open: `a` is skipped without being called.
    let reply = chat(&gw, &hello("m")).await;
    assert_eq!(
        (
            reply.header("x-signalbox-target"),
            reply.header("x-signalbox-attempts")
        ),
        ("b", "1")
    );
    assert_eq!(a.hits(), 3);

    // After the cool-down one probe goes to `a`; it succeeds, so the circuit closes.
    a.set_default(Upstream::ok());
    tokio::time::sleep(Duration::from_millis(350)).await;
    assert_eq!(
        chat(&gw, &hello("m")).await.header("x-signalbox-target"),
        "a"
    );
    assert_eq!(
        chat(&gw, &hello("m")).await.header("x-signalbox-target"),
        "a"
    );
    assert_eq!(a.hits(), 5);
    assert_eq!(b.hits(), 4);
}

#[tokio::test]
async fn every_attempt_failing_is_a_503_listing_the_reasons() {
    let (a, b, gw) = two_upstreams().await;
    a.set_default(Upstream::ok().status(500));
    b.set_default(Upstream::ok().status(502));
    let reply = chat(&gw, &hello("m")).await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.error_code(), "no_route");
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    assert!(
        message.contains("a: upstream answered 500")
            && message.contains("b: upstream answered 502"),
        "{message}"
    );
    assert!(
        !message.contains("upstream-secret") && !message.contains("127.0.0.1"),
        "{message}"
    );
}

#[tokio::test]
async fn client_errors_are_answered_in_the_openai_shape() {
    let (_a, _b, gw) = two_upstreams().await;
    let url = gw.url("/v1/chat/completions");
    let cases: Vec<(Reply, u16)> = vec![
        (send("POST", &url, Some(KEY), Some(b"{not json")).await, 400),
        (
            send("POST", &url, Some(KEY), Some(br#"{"model":"m"}"#)).await,
            400,
        ),
        (
            send("POST", &url, Some(KEY), Some(&vec![b' '; 70_000])).await,
            413,
        ),
        (
            send("POST", &gw.url("/v1/nothing"), Some(KEY), Some(b"{}")).await,
            404,
        ),
        (send("GET", &url, Some(KEY), None).await, 405),
        (send("POST", &url, None, Some(b"{}")).await, 401),
        (send("POST", &url, Some("sb-wrong"), Some(b"{}")).await, 401),
        (chat(&gw, &hello("no-such-model")).await, 404),
    ];
    for (reply, status) in cases {
        assert_eq!(reply.status, status, "{}", reply.text());
        let error = &reply.json()["error"];
        assert!(
            error["message"].is_string() && error["type"].is_string(),
            "{}",
            reply.text()
        );
        assert!(!reply.text().contains(KEY));
    }
}

#[tokio::test]
async fn models_lists_what_the_tenant_may_call() {
    let (_a, _b, gw) = two_upstreams().await;
    let reply = send("GET", &gw.url("/v1/models"), Some(KEY), None).await;
    assert_eq!(reply.status, 200);
    let ids: Vec<String> = reply.json()["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, vec!["m"]);
    assert_eq!(
        send("GET", &gw.url("/healthz"), None, None).await.status,
        200
    );
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_request() {
    let (a, _b, gw) = two_upstreams().await;
    a.set_default(
        Upstream::ok()
            .chunks(&["a", "b", "c", "d", "e", "f", "g", "h"])
            .chunk_interval(Duration::from_millis(200)),
    );
    // Raw TCP, so the test controls exactly when the client goes away.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let body = hello_stream("m").to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = stream.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    drop(stream);
    for _ in 0..50 {
        if a.cancelled() == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the upstream kept streaming to nobody");
}

/// An Anthropic upstream behind the OpenAI API, both ways.
async fn anthropic() -> (FakeUpstream, TestGateway) {
    let up = FakeUpstream::start(Wire::Anthropic).await;
    let toml = config(
        &[("claude", "anthropic", &format!("{}/v1", up.url()))],
        &[("c", "claude", "claude-x")],
        "",
    );
    let gw = TestGateway::start(&toml).await;
    (up, gw)
}

#[tokio::test]
async fn anthropic_requests_and_answers_are_translated() {
    let (up, gw) = anthropic().await;
    up.set_default(Upstream::ok().text("Bonjour"));
    let reply = chat(&gw, &hello("claude-x")).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["object"], "chat.completion");
    assert_eq!(v["choices"][0]["message"]["content"], "Bonjour");
    assert_eq!(v["choices"][0]["finish_reason"], "stop");
    assert!(v["usage"]["prompt_tokens"].as_u64().is_some());

    let seen = &up.requests()[0];
    assert_eq!(seen.path, "/v1/messages");
    assert_eq!(seen.body["model"], "claude-x-upstream");
    assert_eq!(seen.body["system"], "Be brief.");
    assert_eq!(seen.body["messages"][0]["role"], "user");
    assert!(seen.body["max_tokens"].as_u64().is_some());
    assert_eq!(seen.header("x-api-key"), Some("upstream-secret"));
    assert!(seen.header("anthropic-version").is_some());

    up.enqueue(Upstream::ok().tool_call("get_weather", r#"{"city":"Paris"}"#));
    let mut body = hello("claude-x");
    body["tools"] = json!([{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]);
    let v = chat(&gw, &body).await.json();
    assert_eq!(v["choices"][0]["finish_reason"], "tool_calls");
    let call = &v["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather");
    assert_eq!(
        serde_json::from_str::<Value>(call["function"]["arguments"].as_str().unwrap()).unwrap(),
        json!({"city": "Paris"})
    );
}

#[tokio::test]
async fn anthropic_streams_become_openai_chunks() {
    let (up, gw) = anthropic().await;
    up.set_default(Upstream::ok().chunks(&["Bon", "jour"]));
    let mut body = hello_stream("claude-x");
    body["stream_options"] = json!({"include_usage": true});
    let reply = chat(&gw, &body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let text = reply.text();
    assert_eq!(streamed_text(&text), "Bonjour");
    let chunks: Vec<Value> = sse_data(&text)
        .iter()
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect();
    assert!(
        chunks
            .iter()
            .all(|c| c["object"] == "chat.completion.chunk")
    );
    assert!(
        chunks
            .iter()
            .any(|c| c["choices"][0]["finish_reason"] == "stop")
    );
    assert!(
        chunks.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .is_some()
    );
    assert!(text.ends_with("data: [DONE]\n\n"));

    // A broken Anthropic stream after content: the OpenAI client sees an error event.
    up.enqueue(
        Upstream::ok()
            .chunks(&["a", "b", "c"])
            .chunk_interval(Duration::from_millis(30))
            .truncate_after(1),
    );
    let text = chat(&gw, &hello_stream("claude-x")).await.text();
    assert!(
        text.contains("stream_interrupted") && !text.contains("[DONE]"),
        "{text}"
    );
}

#[tokio::test]
async fn the_deciding_policy_hears_every_outcome_and_sees_header_metadata() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    let policy = crate::support::hostile_policy();
    let extra = format!("policy = \"{}\"\n", policy.display());
    let toml = config(
        &[("p", "openai", &format!("{}/v1", up.url()))],
        &[("t", "p", "m")],
        "",
    );
    // The tenant section is last: give it the hostile fixture as its policy.
    let toml = format!("{toml}{extra}");
    let gw = TestGateway::start(&toml).await;
    for _ in 0..3 {
        assert_eq!(chat(&gw, &hello("m")).await.status, 200);
    }
    assert!(
        chat(&gw, &hello_stream("m"))
            .await
            .text()
            .ends_with("[DONE]\n\n")
    );
    // Outcomes are delivered off the request path: give them a moment.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let counted = send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(hello("m").to_string().as_bytes()),
        &[("x-signalbox-act", "outcomes")],
    )
    .await;
    assert_eq!(counted.header("x-signalbox-route-reason"), "outcomes:4");
}

#[tokio::test]
async fn sigterm_lets_fifty_streams_finish_then_exits_zero() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    up.set_default(
        Upstream::ok()
            .chunks(&["one ", "two ", "three ", "four"])
            .chunk_interval(Duration::from_millis(150)),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(
        &path,
        config(
            &[("p", "openai", &format!("{}/v1", up.url()))],
            &[("t", "p", "m")],
            "",
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&path)
        .env("TEST_KEY", "upstream-secret")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    use tokio::io::AsyncBufReadExt;
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next_line().await.unwrap().unwrap();
    let base = first
        .strip_prefix("signalbox listening on ")
        .unwrap()
        .to_owned();

    let streams: Vec<_> = (0..50)
        .map(|_| {
            let url = format!("{base}/v1/chat/completions");
            tokio::spawn(async move {
                send(
                    "POST",
                    &url,
                    Some(KEY),
                    Some(hello_stream("m").to_string().as_bytes()),
                )
                .await
            })
        })
        .collect();
    // Wait until every stream has started upstream, then ask the gateway to stop.
    for _ in 0..100 {
        if up.hits() == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(up.hits(), 50);
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );

    for stream in streams {
        let reply = stream.await.unwrap();
        assert_eq!(reply.status, 200);
        assert_eq!(streamed_text(&reply.text()), "one two three four");
        assert!(reply.text().ends_with("data: [DONE]\n\n"));
    }
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
}

#[tokio::test]
async fn http2_clients_are_served_too() {
    let (_a, _b, gw) = two_upstreams().await;
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .http2_only(true)
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    let request = http::Request::post(gw.url("/v1/chat/completions"))
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            hello_stream("m").to_string(),
        )))
        .unwrap();
    let response = client.request(request).await.unwrap();
    assert_eq!(response.version(), http::Version::HTTP_2);
    assert_eq!(response.status(), 200);
    use http_body_util::BodyExt;
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).ends_with("data: [DONE]\n\n"));
}

#[tokio::test]
async fn embeddings_are_routed_like_chats() {
    let (a, _b, gw) = two_upstreams().await;
    let body = json!({"model": "m", "input": ["one", "two"], "encoding_format": "float"});
    let reply = send(
        "POST",
        &gw.url("/v1/embeddings"),
        Some(KEY),
        Some(body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(reply.header("x-signalbox-target"), "a");
    let seen = &a.requests()[0];
    assert_eq!(seen.path, "/v1/embeddings");
    assert_eq!(seen.body["model"], "m-upstream");
    assert_eq!(seen.body["encoding_format"], "float");
}

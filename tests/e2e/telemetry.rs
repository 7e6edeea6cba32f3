//! Span export: the gateway binary, built with the `otlp` feature, sends the spans of
//! a request (the request, the policy call, each upstream attempt) to an OTLP/HTTP
//! collector, carrying the request id the client saw, the GenAI semantic conventions'
//! attributes (operation, provider, models, settings, usage, finish reasons, error
//! type), and no secret, prompt or answer. Built without the feature, a config asking
//! for export stops start-up with a clear error.

use crate::gateway_support::config;

/// The provider's key, set in the gateway's environment; it must never be exported.
const PROVIDER_SECRET: &str = "sk-otlp-sentinel-4d2f9a";
/// Words of the prompts and of the answers: spans carry neither.
#[cfg(feature = "otlp")]
const PROMPT_TEXT: &str = "prompt-sentinel walrus tangerine";
#[cfg(feature = "otlp")]
const ANSWER_TEXT: &str = "answer-sentinel heron quince";

/// A gateway process for `toml`; its stdout, stderr and exit are the caller's.
fn gateway(toml: &str, dir: &std::path::Path) -> tokio::process::Command {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalbox"));
    command
        .args(["serve", "--config"])
        .arg(&path)
        .env("TEST_KEY", PROVIDER_SECRET)
        // Only the config decides where spans go.
        .env_remove("OTEL_EXPORTER_OTLP_ENDPOINT")
        .env_remove("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

#[cfg(feature = "otlp")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_of_a_request_reach_an_otlp_collector_with_its_request_id() {
    use crate::fake_collector::{AttributeValue, FakeCollector};
    use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
    use crate::gateway_support::{KEY, send};
    use std::time::Duration;
    use tokio::io::{AsyncBufReadExt, AsyncReadExt};

    let collector = FakeCollector::start().await;
    let up = FakeUpstream::start(Wire::OpenAi).await;
    // Two targets for the model: the first answers 500, so the request makes two
    // attempts, a failed one and the one that answers.
    let toml = config(
        &[("p", "openai", &format!("{}/v1", up.url()))],
        &[("first", "p", "m"), ("second", "p", "m")],
        &format!(
            "[telemetry]\notlp_endpoint = \"{}\"\nservice_name = \"signalbox-e2e\"\n",
            collector.url()
        ),
    );
    let dir = tempfile::tempdir().unwrap();
    let mut child = gateway(&toml, dir.path()).spawn().unwrap();
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let first = stdout
        .next_line()
        .await
        .unwrap()
        .expect("gateway exited early");
    let base = first
        .strip_prefix("signalbox listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {first}"))
        .to_owned();

    let answer = Upstream::ok().text(ANSWER_TEXT);
    up.set_default(answer.clone());
    up.enqueue(Upstream::ok().status(500));
    let chat = serde_json::json!({
        "model": "m",
        "max_tokens": 64,
        "temperature": 0.25,
        "messages": [{"role": "user", "content": PROMPT_TEXT}],
    });
    let reply = send(
        "POST",
        &format!("{base}/v1/chat/completions"),
        Some(KEY),
        Some(chat.to_string().as_bytes()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(up.hits(), 2, "the 500 was not retried on the second target");
    let request_id = reply.header("x-request-id").to_owned();
    assert!(!request_id.is_empty());
    // The usage the upstream reports, which the spans must carry.
    let prompt_tokens = crate::fake_upstream::prompt_tokens(&chat) as i64;
    let completion_tokens = answer.completion_tokens() as i64;
    assert_eq!(
        reply.json()["usage"]["completion_tokens"],
        completion_tokens,
        "{}",
        reply.text()
    );

    // A streamed chat: its finish reason and usage are read from the stream's events.
    let streamed = serde_json::json!({
        "model": "m",
        "stream": true,
        "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": PROMPT_TEXT}],
    });
    let reply = send(
        "POST",
        &format!("{base}/v1/chat/completions"),
        Some(KEY),
        Some(streamed.to_string().as_bytes()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let stream_id = reply.header("x-request-id").to_owned();

    let embed = serde_json::json!({"model": "m", "input": PROMPT_TEXT});
    let reply = send(
        "POST",
        &format!("{base}/v1/embeddings"),
        Some(KEY),
        Some(embed.to_string().as_bytes()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let embed_id = reply.header("x-request-id").to_owned();
    let embed_tokens = crate::fake_upstream::prompt_tokens(&embed) as i64;

    // A failed request: its `error.type` is its status.
    let reply = send(
        "POST",
        &format!("{base}/v1/chat/completions"),
        Some(KEY),
        Some(br#"{"model":"m"}"#),
    )
    .await;
    assert_eq!(reply.status, 400, "{}", reply.text());
    let refused_id = reply.header("x-request-id").to_owned();

    // Stopped right away, well before the exporter's periodic batch (5 s): the spans
    // arrive because shutdown flushes them.
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success()
    );
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the gateway did not stop")
        .unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .await
        .unwrap();
    assert!(status.success(), "gateway failed: {stderr}");

    let spans = collector
        .wait_for_spans(Duration::from_secs(5), |spans| {
            spans
                .iter()
                .filter(|s| s.name == "request" && s.attribute("gen_ai.operation.name").is_some())
                .count()
                >= 4
        })
        .await;
    let exports = collector.exports();
    assert!(
        exports
            .iter()
            .all(|e| e.path == "/v1/traces" && e.content_type == "application/x-protobuf"),
        "{exports:?}"
    );

    let requests: Vec<_> = spans
        .iter()
        .filter(|s| s.name == "request" && s.str("request_id") == request_id)
        .collect();
    assert_eq!(
        requests.len(),
        1,
        "no single request span for {request_id} in {spans:#?}"
    );
    let root = requests[0];
    assert_eq!(root.service, "signalbox-e2e");
    assert_eq!(root.str("tenant"), "acme");
    assert_eq!(root.str("path"), "/v1/chat/completions");
    assert_eq!(root.attribute("status"), Some(&AttributeValue::Int(200)));
    let int = |n: i64| Some(AttributeValue::Int(n));
    assert_eq!(root.str("gen_ai.operation.name"), "chat", "{root:#?}");
    assert_eq!(root.str("gen_ai.request.model"), "m");
    assert_eq!(root.str("gen_ai.response.model"), "m");
    assert_eq!(root.str("gen_ai.provider.name"), "openai");
    assert_eq!(
        root.attribute("gen_ai.request.max_tokens").cloned(),
        int(64)
    );
    assert_eq!(
        root.attribute("gen_ai.request.temperature"),
        Some(&AttributeValue::Double(0.25))
    );
    assert_eq!(
        root.attribute("gen_ai.request.stream"),
        Some(&AttributeValue::Bool(false))
    );
    assert_eq!(
        root.attribute("gen_ai.usage.input_tokens").cloned(),
        int(prompt_tokens)
    );
    assert_eq!(
        root.attribute("gen_ai.usage.output_tokens").cloned(),
        int(completion_tokens)
    );
    assert_eq!(
        root.attribute("gen_ai.response.finish_reasons"),
        Some(&AttributeValue::Strs(vec!["stop".to_owned()]))
    );
    assert_eq!(root.attribute("error.type"), None);

    // The policy call and both attempts are children of that request span.
    let children = |name: &str| -> Vec<_> {
        spans
            .iter()
            .filter(|s| s.name == name && s.parent_span_id == root.span_id)
            .collect()
    };
    for child in spans.iter().filter(|s| s.parent_span_id == root.span_id) {
        assert_eq!(child.trace_id, root.trace_id);
    }
    let policy = children("policy");
    assert_eq!(policy.len(), 1, "{spans:#?}");
    assert!(!policy[0].str("policy").is_empty(), "{:?}", policy[0]);
    assert_eq!(policy[0].str("outcome"), "route");
    assert_eq!(policy[0].str("gen_ai.operation.name"), "chat");
    assert_eq!(policy[0].str("gen_ai.request.model"), "m");

    let mut attempts = children("attempt");
    attempts.sort_by_key(|s| match s.attribute("n") {
        Some(AttributeValue::Int(n)) => *n,
        _ => 0,
    });
    assert_eq!(attempts.len(), 2, "{spans:#?}");
    assert_eq!(attempts[0].str("target"), "first");
    assert_eq!(attempts[0].str("failure"), "server_error");
    assert_eq!(attempts[0].str("error.type"), "server_error");
    assert_eq!(attempts[0].attribute("gen_ai.response.model"), None);
    assert_eq!(attempts[1].str("target"), "second");
    assert_eq!(
        attempts[1].attribute("status"),
        Some(&AttributeValue::Int(200))
    );
    for attempt in &attempts {
        assert_eq!(attempt.str("gen_ai.operation.name"), "chat");
        assert_eq!(attempt.str("gen_ai.provider.name"), "openai");
        assert_eq!(attempt.str("gen_ai.request.model"), "m");
    }
    assert_eq!(attempts[1].str("gen_ai.response.model"), "m");
    assert_eq!(attempts[1].attribute("error.type"), None);
    assert_eq!(
        attempts[1].attribute("gen_ai.usage.input_tokens").cloned(),
        int(prompt_tokens)
    );
    assert_eq!(
        attempts[1].attribute("gen_ai.usage.output_tokens").cloned(),
        int(completion_tokens)
    );
    assert_eq!(
        attempts[1].attribute("gen_ai.response.finish_reasons"),
        Some(&AttributeValue::Strs(vec!["stop".to_owned()]))
    );

    let root_of = |id: &str| {
        spans
            .iter()
            .find(|s| s.name == "request" && s.str("request_id") == id)
            .unwrap_or_else(|| panic!("no request span for {id} in {spans:#?}"))
    };
    let stream = root_of(&stream_id);
    assert_eq!(
        stream.attribute("gen_ai.request.stream"),
        Some(&AttributeValue::Bool(true))
    );
    assert_eq!(stream.str("gen_ai.response.model"), "m");
    assert_eq!(
        stream.attribute("gen_ai.usage.input_tokens").cloned(),
        int(prompt_tokens)
    );
    assert_eq!(
        stream.attribute("gen_ai.usage.output_tokens").cloned(),
        int(completion_tokens)
    );
    assert_eq!(
        stream.attribute("gen_ai.response.finish_reasons"),
        Some(&AttributeValue::Strs(vec!["stop".to_owned()]))
    );

    let refused = root_of(&refused_id);
    assert_eq!(refused.str("error.type"), "400", "{refused:#?}");
    assert_eq!(refused.str("gen_ai.operation.name"), "chat");

    let embeddings = root_of(&embed_id);
    assert_eq!(embeddings.str("gen_ai.operation.name"), "embeddings");
    assert_eq!(embeddings.str("gen_ai.request.model"), "m");
    assert_eq!(embeddings.str("gen_ai.response.model"), "m");
    assert_eq!(embeddings.str("gen_ai.provider.name"), "openai");
    assert_eq!(
        embeddings.attribute("gen_ai.usage.input_tokens").cloned(),
        int(embed_tokens)
    );
    // Chat-only attributes stay off an embeddings span.
    for key in [
        "gen_ai.usage.output_tokens",
        "gen_ai.response.finish_reasons",
        "gen_ai.request.max_tokens",
        "gen_ai.request.stream",
    ] {
        assert_eq!(embeddings.attribute(key), None, "{key} on {embeddings:#?}");
    }

    // No key, header value or secret anywhere in what was exported.
    for export in &exports {
        let raw = String::from_utf8_lossy(&export.body);
        for secret in [KEY, PROVIDER_SECRET, "Bearer", "sentinel"] {
            assert!(!raw.contains(secret), "`{secret}` was exported");
        }
    }
}

#[cfg(not(feature = "otlp"))]
#[tokio::test]
async fn an_otlp_endpoint_stops_a_gateway_built_without_the_feature() {
    let toml = config(
        &[("p", "openai", "http://127.0.0.1:9/v1")],
        &[("t", "p", "m")],
        "[telemetry]\notlp_endpoint = \"http://127.0.0.1:4318\"\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let out = gateway(&toml, dir.path()).output().await.unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("telemetry.otlp_endpoint"), "{stderr}");
    assert!(stderr.contains("cargo build --features otlp"), "{stderr}");
}

//! Costs that reconcile with a provider's invoice: cache reads and writes priced at
//! their own prices, reasoning tokens billed as output, read from each protocol's own
//! usage fields — answers whole and streamed, passed through and translated — into
//! the ledger to the cent. A stream whose upstream reported no usage is charged for
//! the gateway's estimate, marked as such.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::*;
use crate::support::wasm;
use serde_json::json;
use std::path::Path;

/// Prices per million tokens: (input, output, cache read, cache write).
const GPT: (f64, f64, f64, f64) = (2.5, 10.0, 1.25, 2.5);
const CLAUDE: (f64, f64, f64, f64) = (3.0, 15.0, 0.3, 3.75);

async fn gateway(anthropic: &FakeUpstream, openai: &FakeUpstream, dir: &Path) -> TestGateway {
    let price = |toml: String, model: &str, (i, o, r, w): (f64, f64, f64, f64)| {
        let from = format!("model = \"{model}\"\nupstream_model");
        let at = toml.find(&from).unwrap();
        let end = at + toml[at..].find("context_window").unwrap();
        let mut toml = toml;
        let old = toml[at..end].to_owned();
        let new = old
            .lines()
            .filter(|l| !l.starts_with("input_price") && !l.starts_with("output_price"))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
            + &format!(
                "input_price = {i}\noutput_price = {o}\ncache_read_price = {r}\ncache_write_price = {w}\n"
            );
        toml.replace_range(at..end, &new);
        toml
    };
    let toml = config(
        &[
            ("anthropic", "anthropic", &format!("{}/v1", anthropic.url())),
            ("openai", "openai", &format!("{}/v1", openai.url())),
        ],
        &[("claude", "anthropic", "claude"), ("gpt", "openai", "gpt")],
        &format!(
            "policy = '{}'\n\n[ledger]\npath = '{}'\n",
            wasm("signalbox_fixture_outcome_counter").display(),
            dir.join("usage.db").display()
        ),
    );
    // Paced streams (one event per interval) take a while to reach their content.
    let toml = price(price(toml, "claude", CLAUDE), "gpt", GPT).replace(
        "first_byte_timeout_ms = 400",
        "first_byte_timeout_ms = 4000",
    );
    TestGateway::start(&toml).await
}

/// The ledger row of `reply`'s request, once written: (input, output, cache read,
/// cache write, reasoning, estimated, cost).
async fn row(dir: &Path, reply: &Reply) -> (u32, u32, u32, u32, u32, bool, f64) {
    let id = reply.header("x-request-id").to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Ok(conn) = rusqlite::Connection::open(dir.join("usage.db")) {
            let found = conn.query_row(
                "SELECT input_tokens, output_tokens, cache_read_tokens, cache_write_tokens,
                        reasoning_tokens, estimated, cost_usd FROM usage WHERE request_id = ?1",
                [&id],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                    ))
                },
            );
            if let Ok(found) = found {
                return found;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no ledger row for {id}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// The invoice by hand: plain input, cache reads and writes, output (reasoning in it).
fn invoice(
    (i, o, r, w): (f64, f64, f64, f64),
    plain: u32,
    read: u32,
    written: u32,
    output: u32,
) -> f64 {
    (f64::from(plain) * i + f64::from(read) * r + f64::from(written) * w + f64::from(output) * o)
        / 1e6
}

fn assert_cents(got: f64, want: f64) {
    // To the cent, and closer: the same sum in floating point.
    assert!((got - want).abs() < 1e-9, "cost {got}, invoice {want}");
}

const OPENAI_USAGE: &str = r#"{"prompt_tokens":1000,"completion_tokens":500,"total_tokens":1500,"prompt_tokens_details":{"cached_tokens":800},"completion_tokens_details":{"reasoning_tokens":300}}"#;
const ANTHROPIC_USAGE: &str = r#"{"input_tokens":200,"cache_creation_input_tokens":300,"cache_read_input_tokens":500,"output_tokens":400}"#;

async fn chat(gw: &TestGateway, route: &str, stream: bool) -> Reply {
    let body =
        json!({"model": "auto", "stream": stream, "messages": [{"role": "user", "content": "Hi"}]});
    send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(body.to_string().as_bytes()),
        &[("x-signalbox-route", route)],
    )
    .await
}

async fn messages(gw: &TestGateway, route: &str, stream: bool) -> Reply {
    let body = json!({"model": "auto", "max_tokens": 64, "stream": stream,
        "messages": [{"role": "user", "content": "Hi"}]});
    send_with(
        "POST",
        &gw.url("/v1/messages"),
        None,
        Some(body.to_string().as_bytes()),
        &[("x-api-key", KEY), ("x-signalbox-route", route)],
    )
    .await
}

#[tokio::test]
async fn cache_and_reasoning_tokens_are_priced_as_the_invoice_says() {
    let (anthropic, openai) = (
        FakeUpstream::start(Wire::Anthropic).await,
        FakeUpstream::start(Wire::OpenAi).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&anthropic, &openai, dir.path()).await;
    let openai_json = format!(
        r#"{{"id":"c1","object":"chat.completion","model":"x","choices":[{{"index":0,"message":{{"role":"assistant","content":"ok"}},"finish_reason":"stop"}}],"usage":{OPENAI_USAGE}}}"#
    );
    let openai_stream = [
        "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"ok\"},\"finish_reason\":null}]}\n\n".to_owned(),
        "data: {\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n".to_owned(),
        format!("data: {{\"id\":\"c2\",\"object\":\"chat.completion.chunk\",\"model\":\"x\",\"choices\":[],\"usage\":{OPENAI_USAGE}}}\n\n"),
        "data: [DONE]\n\n".to_owned(),
    ];
    let anthropic_json = format!(
        r#"{{"id":"m1","type":"message","role":"assistant","model":"x","content":[{{"type":"text","text":"ok"}}],"stop_reason":"end_turn","stop_sequence":null,"usage":{ANTHROPIC_USAGE}}}"#
    );
    let anthropic_stream = [
        "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m2\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"x\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":200,\"cache_creation_input_tokens\":300,\"cache_read_input_tokens\":500,\"output_tokens\":1}}}\n\n".to_owned(),
        "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n".to_owned(),
        "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"ok\"}}\n\n".to_owned(),
        "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n".to_owned(),
        "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":400}}\n\n".to_owned(),
        "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n".to_owned(),
    ];
    let raw = |content_type: &str, pieces: &[String]| {
        let pieces: Vec<&str> = pieces.iter().map(String::as_str).collect();
        Upstream::ok().raw(content_type, &pieces)
    };
    let gpt_invoice = invoice(GPT, 200, 800, 0, 500);
    let claude_invoice = invoice(CLAUDE, 200, 500, 300, 400);

    // OpenAI's counts, whole and streamed, reached by a chat client and by a Messages
    // client (translated).
    for (stream, messages_client) in [(false, false), (true, false), (false, true), (true, true)] {
        openai.enqueue(if stream {
            raw("text/event-stream", &openai_stream)
        } else {
            raw("application/json", std::slice::from_ref(&openai_json))
        });
        let reply = if messages_client {
            messages(&gw, "1", stream).await
        } else {
            chat(&gw, "1", stream).await
        };
        assert_eq!(reply.status, 200, "{}", reply.text());
        let (input, output, read, written, reasoning, estimated, cost) =
            row(dir.path(), &reply).await;
        let case = format!("gpt, stream {stream}, messages client {messages_client}");
        assert_eq!(
            (input, output, read, written),
            (1000, 500, 800, 0),
            "{case}"
        );
        // An answer translated to Messages loses the reasoning part of its count
        // (Messages has no field for it); the cost does not, reasoning being output.
        if !messages_client {
            assert_eq!(reasoning, 300, "{case}");
        }
        assert!(!estimated, "{case}");
        assert_cents(cost, gpt_invoice);
    }

    // Anthropic's counts, whole and streamed, passed through to a Messages client and
    // translated for a chat client (the cache's writes survive the translation).
    for (stream, messages_client) in [(false, true), (true, true), (false, false), (true, false)] {
        anthropic.enqueue(if stream {
            raw("text/event-stream", &anthropic_stream)
        } else {
            raw("application/json", std::slice::from_ref(&anthropic_json))
        });
        let reply = if messages_client {
            messages(&gw, "0", stream).await
        } else {
            chat(&gw, "0", stream).await
        };
        assert_eq!(reply.status, 200, "{}", reply.text());
        let (input, output, read, written, _, estimated, cost) = row(dir.path(), &reply).await;
        let case = format!("claude, stream {stream}, messages client {messages_client}");
        assert_eq!(
            (input, output, read, written),
            (1000, 400, 500, 300),
            "{case}"
        );
        assert!(!estimated, "{case}");
        assert_cents(cost, claude_invoice);
    }

    // The ledger's aggregates count the parts too.
    let query = signalbox::ledger::UsageQuery {
        tenant: Some("acme".into()),
        from_ms: None,
        to_ms: None,
        group_by: signalbox::ledger::GroupBy::Target,
    };
    let totals = signalbox::ledger::query_file(&dir.path().join("usage.db"), &query).unwrap();
    let of = |target: &str| totals.iter().find(|a| a.group == target).unwrap();
    let (gpt, claude) = (of("gpt"), of("claude"));
    assert_eq!(
        (gpt.cache_read_tokens, gpt.cache_write_tokens),
        (4 * 800, 0)
    );
    assert_eq!(gpt.reasoning_tokens, 2 * 300, "the chat clients' answers");
    assert_eq!(
        (claude.cache_read_tokens, claude.cache_write_tokens),
        (4 * 500, 4 * 300)
    );
}

#[tokio::test]
async fn a_stream_without_usage_is_charged_for_an_estimate_marked_as_such() {
    let (anthropic, openai) = (
        FakeUpstream::start(Wire::Anthropic).await,
        FakeUpstream::start(Wire::OpenAi).await,
    );
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&anthropic, &openai, dir.path()).await;
    openai.enqueue(Upstream::ok().raw(
        "text/event-stream",
        &[
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"one\"},\"finish_reason\":null}]}\n\n",
            "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"model\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\" two\"},\"finish_reason\":\"stop\"}]}\n\n",
            "data: [DONE]\n\n",
        ],
    ));
    let reply = chat(&gw, "1", true).await;
    assert_eq!(reply.status, 200);
    let (input, output, read, _, _, estimated, cost) = row(dir.path(), &reply).await;
    assert!(
        estimated,
        "no usage reported: the row says its counts are estimated"
    );
    assert!(input > 0 && output == 2 && read == 0, "{input} {output}");
    assert_cents(cost, invoice(GPT, input, 0, 0, output));
}

#[tokio::test]
async fn a_stream_the_client_leaves_is_charged_for_what_was_relayed() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (anthropic, openai) = (
        FakeUpstream::start(Wire::Anthropic).await,
        FakeUpstream::start(Wire::OpenAi).await,
    );
    // Anthropic's stream states its input (with the cache) at once, then is slow.
    anthropic.enqueue(
        Upstream::ok()
            .chunks(&["a", "b", "c", "d", "e", "f"])
            .chunk_interval(std::time::Duration::from_millis(150)),
    );
    let dir = tempfile::tempdir().unwrap();
    let gw = gateway(&anthropic, &openai, dir.path()).await;
    let body = json!({"model": "auto", "max_tokens": 64, "stream": true,
        "messages": [{"role": "user", "content": "Hi"}]})
    .to_string();
    let mut stream = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let request = format!(
        "POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: {KEY}\r\nx-signalbox-route: 0\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut seen = String::new();
    let mut buf = vec![0u8; 4096];
    while !seen.contains("content_block_delta") {
        let n = stream.read(&mut buf).await.unwrap();
        assert!(
            n > 0 && !seen.contains(" 503 "),
            "the stream ended early: {seen}"
        );
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    let id = seen
        .lines()
        .find_map(|l| l.strip_prefix("x-request-id: "))
        .unwrap()
        .trim()
        .to_owned();
    drop(stream);
    let reply = Reply {
        status: 200,
        headers: [(
            http::HeaderName::from_static("x-request-id"),
            id.parse().unwrap(),
        )]
        .into_iter()
        .collect(),
        body: bytes::Bytes::new(),
    };
    let (input, output, _, _, _, estimated, cost) = row(dir.path(), &reply).await;
    // The input as the upstream stated it, at least one output token per delta seen.
    assert_eq!(
        input,
        crate::fake_upstream::prompt_tokens(&serde_json::from_str(&body).unwrap()) as u32
    );
    assert!(output >= 1, "{output}");
    assert!(
        estimated,
        "a stream cut short is charged on partial counts, marked estimated"
    );
    assert_cents(cost, invoice(CLAUDE, input, 0, 0, output));
}

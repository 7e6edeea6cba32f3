//! Clients that try to make the gateway hold what it should not, over real TCP: raw
//! HTTP/1 bytes (ambiguous framing, header floods, slowloris, slow bodies), raw HTTP/2
//! frames (rapid reset, SETTINGS and PING floods), and floods of connections and
//! requests. Each is refused or cut off within its bound while a normal client is still
//! served. Latency and memory figures under a flood are measured by
//! `tests/load/flood.sh`, not here.

use crate::fake_upstream::{FakeUpstream, Reply, Wire};
use crate::gateway_support::{KEY, TestGateway, config, send};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Slack allowed past a configured timeout before "bounded" counts as broken: the
/// suite shares two cores with other tests.
const SLACK: Duration = Duration::from_secs(2);

const CHAT: &str = r#"{"model":"gpt-test","messages":[{"role":"user","content":"Hi"}]}"#;

/// A gateway in front of one OpenAI fake, with `server` lines added to `[server]` and
/// `extra` TOML after tenant `acme`.
async fn gateway(server: &str, extra: &str) -> (TestGateway, FakeUpstream) {
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let toml = config(
        &[("up", "openai", &format!("{}/v1", upstream.url()))],
        &[("t1", "up", "gpt-test")],
        extra,
    )
    .replacen("[server]\n", &format!("[server]\n{server}\n"), 1);
    (TestGateway::start(&toml).await, upstream)
}

/// What a raw exchange got back: the bytes, and whether the gateway closed the
/// connection (EOF or reset) within the time allowed.
struct Raw {
    bytes: Vec<u8>,
    closed: bool,
}

impl Raw {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
    fn status(&self) -> u16 {
        self.text()
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok())
            .unwrap_or(0)
    }
    /// The JSON body of a response with a Content-Length.
    fn json(&self) -> serde_json::Value {
        let text = self.text();
        let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
        serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
    }
}

/// Reads from `stream` until the gateway closes it or `within` passes.
async fn read_until_closed(stream: &mut TcpStream, within: Duration) -> Raw {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Raw {
                    bytes,
                    closed: true,
                };
            }
            Ok(Ok(n)) => bytes.extend_from_slice(&buf[..n]),
            Err(_) => {
                return Raw {
                    bytes,
                    closed: false,
                };
            }
        }
    }
}

/// Writes `request` on a fresh connection and reads until the gateway closes it.
async fn exchange(gw: &TestGateway, request: &[u8], within: Duration) -> Raw {
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    stream.write_all(request).await.unwrap();
    read_until_closed(&mut stream, within).await
}

fn metric(gw: &TestGateway, series: &str) -> u64 {
    let text = gw.gateway.metrics.render();
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0)
}

fn refusals(gw: &TestGateway, reason: &str) -> u64 {
    metric(
        gw,
        &format!("signalbox_listener_refusals_total{{listener=\"api\",reason=\"{reason}\"}}"),
    )
}

async fn wait_for(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn chat_head(extra_headers: &str) -> String {
    format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n{extra_headers}\r\n"
    )
}

#[tokio::test]
async fn ambiguous_framing_is_refused_and_never_forwarded() {
    let (gw, upstream) = gateway("", "").await;
    let chunked_body = format!("{:x}\r\n{CHAT}\r\n0\r\n\r\n", CHAT.len());
    let cases = [
        (
            "CL then TE",
            format!(
                "{}{chunked_body}",
                chat_head(&format!(
                    "Content-Length: {}\r\nTransfer-Encoding: chunked\r\n",
                    CHAT.len()
                ))
            ),
        ),
        (
            "TE then CL",
            format!(
                "{}{chunked_body}",
                chat_head(&format!(
                    "Transfer-Encoding: chunked\r\nContent-Length: {}\r\n",
                    CHAT.len()
                ))
            ),
        ),
        (
            "CL twice, same value",
            format!(
                "{}{CHAT}",
                chat_head(&format!(
                    "Content-Length: {0}\r\nContent-Length: {0}\r\n",
                    CHAT.len()
                ))
            ),
        ),
    ];
    for (name, request) in &cases {
        // A second, clean request pipelined behind must not be served either.
        let pipelined = format!(
            "{request}{}{CHAT}",
            chat_head(&format!("Content-Length: {}\r\n", CHAT.len()))
        );
        let raw = exchange(&gw, pipelined.as_bytes(), Duration::from_secs(5)).await;
        assert_eq!(raw.status(), 400, "{name}: {}", raw.text());
        assert_eq!(raw.json()["error"]["code"], "ambiguous_framing", "{name}");
        assert!(raw.closed, "{name}: the connection must close");
        assert_eq!(
            raw.text().matches("HTTP/1.1 ").count(),
            1,
            "{name}: nothing after the refusal is answered"
        );
    }
    assert_eq!(refusals(&gw, "ambiguous_framing"), 3);

    // Conflicting lengths: hyper refuses them itself.
    let conflicting = format!(
        "{}{CHAT}",
        chat_head(&format!(
            "Content-Length: {}\r\nContent-Length: 3\r\n",
            CHAT.len()
        ))
    );
    let raw = exchange(&gw, conflicting.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(raw.status(), 400, "{}", raw.text());
    assert!(raw.closed);
    assert_eq!(upstream.hits(), 0, "nothing ambiguous reaches the upstream");

    // The same connection framing, unambiguous, is served.
    let clean = format!(
        "{}{CHAT}",
        chat_head(&format!(
            "Content-Length: {}\r\nConnection: close\r\n",
            CHAT.len()
        ))
    );
    let raw = exchange(&gw, clean.as_bytes(), Duration::from_secs(5)).await;
    assert_eq!(raw.status(), 200, "{}", raw.text());
    assert_eq!(upstream.hits(), 1);
}

#[tokio::test]
async fn header_floods_and_long_request_lines_are_refused() {
    let (gw, upstream) = gateway("max_header_count = 50\nmax_header_bytes = 16384", "").await;
    let many: String = (0..200).map(|i| format!("X-Flood-{i}: y\r\n")).collect();
    let raw = exchange(
        &gw,
        format!("GET /healthz HTTP/1.1\r\nHost: gw\r\n{many}\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw.status(), 431, "{}", raw.text());
    assert!(raw.closed);

    let huge = "x".repeat(40_000);
    let raw = exchange(
        &gw,
        format!("GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Big: {huge}\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw.status(), 431, "{}", raw.text());

    let long_path = "/v1/".to_owned() + &"a".repeat(40_000);
    let raw = exchange(
        &gw,
        format!("GET {long_path} HTTP/1.1\r\nHost: gw\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    )
    .await;
    assert!(
        [414, 431].contains(&raw.status()),
        "{}",
        raw.text().get(..200).unwrap_or_default()
    );
    assert!(raw.closed);
    assert!(refusals(&gw, "headers_too_large") >= 3);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_thousand_slowloris_connections_are_closed_within_the_header_timeout() {
    let (gw, upstream) = gateway("header_read_timeout_ms = 1000\nidle_timeout_ms = 1000", "").await;
    let bound = Duration::from_secs(1) + SLACK;
    let mut loris = Vec::new();
    for i in 0..1000 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        // Most send a head that never ends; some stall inside the HTTP/2 preface,
        // before hyper knows which protocol it reads.
        let trickle = i % 10 != 0;
        let start: &[u8] = if trickle {
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\nX-Slow: "
        } else {
            b"PRI * HTTP/2"
        };
        stream.write_all(start).await.unwrap();
        let opened = Instant::now();
        loris.push(tokio::spawn(async move {
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    read = stream.read(&mut buf) => match read {
                        Ok(0) | Err(_) => return opened.elapsed(),
                        Ok(_) => {}
                    },
                    () = tokio::time::sleep(Duration::from_millis(200)) => {
                        if trickle && stream.write_all(b"X").await.is_err() {
                            return opened.elapsed();
                        }
                    }
                }
                if opened.elapsed() > Duration::from_secs(30) {
                    return opened.elapsed();
                }
            }
        }));
    }
    // While they hang on, a normal client is served.
    let started = Instant::now();
    let reply = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(CHAT.as_bytes()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert!(started.elapsed() < Duration::from_secs(5));
    let mut slowest = Duration::ZERO;
    for held in loris {
        slowest = slowest.max(held.await.unwrap());
    }
    assert!(
        slowest <= bound,
        "a slowloris connection lasted {slowest:?}"
    );
    assert_eq!(upstream.hits(), 1);
    wait_for(
        "the open-connection gauge back to 0",
        Duration::from_secs(5),
        || metric(&gw, "signalbox_open_connections{listener=\"api\"}") == 0,
    )
    .await;
}

#[tokio::test]
async fn a_slow_body_gets_408_and_the_connection_closes() {
    let (gw, upstream) = gateway("body_read_timeout_ms = 1000", "").await;
    let mut stream = TcpStream::connect(gw.addr).await.unwrap();
    let head = chat_head(&format!("Content-Length: {}\r\n", CHAT.len()));
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&CHAT.as_bytes()[..10]).await.unwrap();
    let started = Instant::now();
    let raw = read_until_closed(&mut stream, Duration::from_secs(1) + SLACK * 2).await;
    assert_eq!(raw.status(), 408, "{}", raw.text());
    assert_eq!(raw.json()["error"]["code"], "request_timeout");
    assert!(raw.closed, "the rest of the body cannot be trusted: close");
    assert!(started.elapsed() <= Duration::from_secs(1) + SLACK);
    assert_eq!(refusals(&gw, "body_timeout"), 1);
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn over_the_connection_limit_a_connection_gets_a_quick_503() {
    let (gw, _upstream) = gateway("max_connections = 5\noverload_retry_after_secs = 3", "").await;
    let mut held = Vec::new();
    for _ in 0..5 {
        held.push(TcpStream::connect(gw.addr).await.unwrap());
    }
    wait_for("5 open connections", Duration::from_secs(5), || {
        metric(&gw, "signalbox_open_connections{listener=\"api\"}") == 5
    })
    .await;
    let started = Instant::now();
    let raw = exchange(
        &gw,
        b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(raw.status(), 503, "{}", raw.text());
    assert!(raw.text().to_ascii_lowercase().contains("retry-after: 3"));
    assert_eq!(raw.json()["error"]["code"], "overloaded");
    assert!(raw.closed);
    assert!(took < Duration::from_secs(1), "shed in {took:?}");
    assert_eq!(refusals(&gw, "connection_limit"), 1);
    // A slot given back is a slot to serve.
    drop(held.pop());
    wait_for("a freed slot", Duration::from_secs(5), || {
        metric(&gw, "signalbox_open_connections{listener=\"api\"}") == 4
    })
    .await;
    let raw = exchange(
        &gw,
        b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    )
    .await;
    assert_eq!(raw.status(), 200, "{}", raw.text());
}

#[tokio::test]
async fn over_the_in_flight_limit_a_request_gets_a_quick_503() {
    let (gw, _upstream) = gateway("max_in_flight = 2", "").await;
    // Two requests whose bodies never finish hold both slots.
    let mut holders = Vec::new();
    for _ in 0..2 {
        let mut stream = TcpStream::connect(gw.addr).await.unwrap();
        let head = chat_head(&format!("Content-Length: {}\r\n", CHAT.len()));
        stream.write_all(head.as_bytes()).await.unwrap();
        holders.push(stream);
    }
    let in_flight = "signalbox_listener_in_flight_requests{listener=\"api\"}";
    wait_for("2 requests in flight", Duration::from_secs(5), || {
        metric(&gw, in_flight) == 2
    })
    .await;
    let started = Instant::now();
    let reply = send("GET", &gw.url("/v1/models"), Some(KEY), None).await;
    assert_eq!(reply.status, 503, "{}", reply.text());
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(reply.header("retry-after"), "1");
    assert_eq!(reply.error_code(), "overloaded");
    assert_eq!(refusals(&gw, "in_flight_limit"), 1);
    // Health checks are never shed: a balancer must not drop every busy replica.
    for path in ["/healthz", "/readyz"] {
        assert_eq!(send("GET", &gw.url(path), None, None).await.status, 200);
    }
    assert_eq!(refusals(&gw, "in_flight_limit"), 1);
    drop(holders);
    wait_for("the slots given back", Duration::from_secs(5), || {
        metric(&gw, in_flight) == 0
    })
    .await;
    assert_eq!(
        send("GET", &gw.url("/healthz"), None, None).await.status,
        200
    );
}

#[tokio::test]
async fn a_tenant_at_its_concurrency_limit_does_not_starve_another() {
    const KEY_B: &str = "sb-test-beta-key";
    let hash = signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(KEY_B));
    let extra = format!(
        "[tenants.limits]\nmax_in_flight = 1\n\n[[tenants]]\nid = \"beta\"\nkey_hashes = [\"{hash}\"]\nsafe_route = [\"t1\"]\n"
    );
    let (gw, upstream) = gateway("", &extra).await;
    // A slow stream keeps acme's one slot busy; later requests get quick answers.
    upstream.enqueue(
        Reply::ok()
            .chunks(&["a"; 40])
            .chunk_interval(Duration::from_millis(100)),
    );
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let stream_request = |key: &str| {
        http::Request::post(gw.url("/v1/chat/completions"))
            .header("authorization", format!("Bearer {key}"))
            .body(Full::new(Bytes::from(
                json!({"model": "gpt-test", "stream": true, "messages": [{"role": "user", "content": "Hi"}]})
                    .to_string(),
            )))
            .unwrap()
    };
    let held = client.request(stream_request(KEY)).await.unwrap();
    assert_eq!(held.status(), 200);

    let refused = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(CHAT.as_bytes()),
    )
    .await;
    assert_eq!(refused.status, 429, "{}", refused.text());
    assert_eq!(refused.error_code(), "concurrency_limit");
    assert_eq!(refused.header("retry-after"), "1");
    let other = client.request(stream_request(KEY_B)).await.unwrap();
    assert_eq!(
        other.status(),
        200,
        "beta is served while acme is at its limit"
    );
    let body = other.into_body().collect().await.unwrap().to_bytes();
    assert!(String::from_utf8_lossy(&body).contains("[DONE]"));
    assert_eq!(
        metric(
            &gw,
            "signalbox_rejections_total{tenant=\"acme\",reason=\"concurrency_limit\"}"
        ),
        1
    );
    // The slot is held until the stream ends, then acme is served again.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let reply = send(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(KEY),
            Some(CHAT.as_bytes()),
        )
        .await;
        if reply.status == 200 {
            break;
        }
        assert_eq!(reply.status, 429);
        assert!(Instant::now() < deadline, "acme's slot never came back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// HTTP/2 frames, written raw.
mod h2_frames {
    pub const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

    pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags];
        f.extend(stream.to_be_bytes());
        f.extend(payload);
        f
    }

    pub fn settings() -> Vec<u8> {
        frame(0x4, 0, 0, &[])
    }

    pub fn ping(n: u64) -> Vec<u8> {
        frame(0x6, 0, 0, &n.to_be_bytes())
    }

    /// `GET /healthz` (HPACK: indexed :method GET and :scheme http, literal :path and
    /// :authority).
    pub fn get_healthz(stream: u32) -> Vec<u8> {
        let mut block = vec![0x82, 0x86, 0x04, 8];
        block.extend(b"/healthz");
        block.extend([0x01, 2, b'g', b'w']);
        // END_STREAM | END_HEADERS
        frame(0x1, 0x5, stream, &block)
    }

    pub fn rst_stream(stream: u32) -> Vec<u8> {
        frame(0x3, 0, stream, &8u32.to_be_bytes())
    }
}

/// Opens an h2c connection and writes what `next` makes (up to `rounds` times) while
/// reading; returns how long the gateway took to end the connection, if it did within
/// 10 seconds.
async fn h2_flood(
    gw: &TestGateway,
    rounds: u32,
    next: impl Fn(u32) -> Vec<u8>,
) -> Option<Duration> {
    let stream = TcpStream::connect(gw.addr).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let started = Instant::now();
    let reader = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 << 10];
        loop {
            match tokio::time::timeout(Duration::from_secs(10), read.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
                Ok(Ok(_)) => {}
                Err(_) => return None,
            }
        }
    });
    let mut opening = h2_frames::PREFACE.to_vec();
    opening.extend(h2_frames::settings());
    if write.write_all(&opening).await.is_ok() {
        let mut batch = Vec::new();
        for i in 0..rounds {
            batch.extend(next(i));
            if batch.len() > 16 << 10 {
                if write.write_all(&batch).await.is_err() {
                    break;
                }
                batch.clear();
            }
        }
        let _ = write.write_all(&batch).await;
    }
    reader.await.unwrap()
}

async fn still_serving(gw: &TestGateway) {
    assert_eq!(
        send("GET", &gw.url("/healthz"), None, None).await.status,
        200
    );
}

#[tokio::test]
async fn http2_rapid_reset_ends_the_connection() {
    let (gw, _upstream) = gateway("", "").await;
    let ended = h2_flood(&gw, 20_000, |i| {
        let id = 2 * i + 1;
        let mut pair = h2_frames::get_healthz(id);
        pair.extend(h2_frames::rst_stream(id));
        pair
    })
    .await;
    assert!(
        ended.is_some(),
        "the connection outlived 20,000 HEADERS+RST_STREAM"
    );
    assert!(refusals(&gw, "http2_flood") + refusals(&gw, "http2_protocol") >= 1);
    still_serving(&gw).await;
}

#[tokio::test]
async fn http2_settings_and_ping_floods_end_the_connection() {
    let (gw, _upstream) = gateway("", "").await;
    let ended = h2_flood(&gw, 50_000, |_| h2_frames::settings()).await;
    assert!(ended.is_some(), "the connection outlived a SETTINGS flood");
    let ended = h2_flood(&gw, 50_000, |i| h2_frames::ping(u64::from(i))).await;
    assert!(ended.is_some(), "the connection outlived a PING flood");
    assert_eq!(refusals(&gw, "http2_flood"), 2);
    still_serving(&gw).await;
}

#[tokio::test]
async fn the_admin_listener_has_its_own_bounds() {
    let admin_hash = signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key("admin-t"));
    let extra =
        format!("[admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nhash = \"{admin_hash}\"\n");
    let (gw, _upstream) = gateway("max_connections = 2", &extra).await;
    let admin = gw.admin.unwrap();
    // The API listener full does not lock operators out.
    let _api: Vec<TcpStream> = vec![
        TcpStream::connect(gw.addr).await.unwrap(),
        TcpStream::connect(gw.addr).await.unwrap(),
    ];
    wait_for("the API listener full", Duration::from_secs(5), || {
        metric(&gw, "signalbox_open_connections{listener=\"api\"}") == 2
    })
    .await;
    assert_eq!(
        send("GET", &gw.admin_url("/healthz"), None, None)
            .await
            .status,
        200
    );
    wait_for("that client gone", Duration::from_secs(5), || {
        metric(&gw, "signalbox_open_connections{listener=\"admin\"}") == 0
    })
    .await;
    // And the admin listener is bounded the same way.
    let _held: Vec<TcpStream> = vec![
        TcpStream::connect(admin).await.unwrap(),
        TcpStream::connect(admin).await.unwrap(),
    ];
    wait_for("the admin listener full", Duration::from_secs(5), || {
        metric(&gw, "signalbox_open_connections{listener=\"admin\"}") == 2
    })
    .await;
    let mut stream = TcpStream::connect(admin).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .unwrap();
    let raw = read_until_closed(&mut stream, Duration::from_secs(5)).await;
    assert_eq!(raw.status(), 503, "{}", raw.text());
}

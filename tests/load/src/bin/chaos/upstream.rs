//! Fake upstreams speaking the OpenAI chat wire protocol (a JSON body, or SSE with the
//! usage in a last chunk when `stream_options.include_usage`), each with a fault that
//! the schedule switches on and off. While a fault is on, every other request meets
//! it; each one injected is counted by kind. Every request must carry the upstream's
//! own provider key: one that does not is answered 401 and counted, and the soak fails.

use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::sync::mpsc;

/// What a faulty upstream does instead of answering well.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 500 with an error body.
    ServerError,
    /// 429 with `Retry-After: 1`.
    RateLimited,
    /// No answer until long after the gateway's first-byte timeout.
    Hang,
    /// The connection cut after part of the answer (mid-stream for streams).
    Reset,
    /// Silence after part of the answer, longer than the stream idle timeout.
    Stall,
    /// A 200 whose body (or, for a stream, one event) is not JSON.
    InvalidJson,
    /// 400: the upstream refuses the request itself (passed on to the client).
    ClientError,
}

impl Fault {
    /// Every kind, in the order the schedule cycles through them.
    pub const ALL: [Fault; 7] = [
        Fault::ServerError,
        Fault::RateLimited,
        Fault::Hang,
        Fault::Reset,
        Fault::Stall,
        Fault::InvalidJson,
        Fault::ClientError,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Fault::ServerError => "5xx",
            Fault::RateLimited => "429 + Retry-After",
            Fault::Hang => "hang",
            Fault::Reset => "reset mid-answer",
            Fault::Stall => "stall mid-stream",
            Fault::InvalidJson => "invalid JSON",
            Fault::ClientError => "400 from upstream",
        }
    }

    fn index(self) -> usize {
        Fault::ALL.iter().position(|f| *f == self).unwrap_or(0)
    }
}

/// How long a hang or a stall lasts: far beyond the gateway's timeouts (it gives up
/// first), yet bounded so the fake holds nothing forever.
const SILENCE: Duration = Duration::from_secs(12);
/// Between stream chunks, so streams are in flight when chaos strikes.
const CHUNK_INTERVAL: Duration = Duration::from_millis(15);
/// No fault is on.
const HEALTHY: u8 = u8::MAX;

/// One fake upstream: its counters and its fault switch.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    key: String,
    fault: AtomicU8,
    seq: AtomicU64,
    /// Requests received.
    pub requests: AtomicU64,
    /// Requests that did not carry this upstream's key.
    pub wrong_key: AtomicU64,
    injected: [AtomicU64; Fault::ALL.len()],
    /// Connections open now.
    pub connections: AtomicU64,
    /// Tells every open connection to close.
    close: tokio::sync::watch::Sender<u64>,
}

impl Upstream {
    /// Starts serving on a fresh loopback port; `key` is the provider key it expects.
    pub async fn start(name: &str, key: &str) -> anyhow::Result<Arc<Upstream>> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let upstream = Arc::new(Upstream {
            name: name.to_owned(),
            addr: listener.local_addr()?,
            key: format!("Bearer {key}"),
            fault: AtomicU8::new(HEALTHY),
            seq: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            wrong_key: AtomicU64::new(0),
            injected: Default::default(),
            connections: AtomicU64::new(0),
            close: tokio::sync::watch::channel(0).0,
        });
        let serving = upstream.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let _ = stream.set_nodelay(true);
                let upstream = serving.clone();
                let mut close = upstream.close.subscribe();
                upstream.connections.fetch_add(1, Relaxed);
                tokio::spawn(async move {
                    let answering = upstream.clone();
                    let service = service_fn(move |req| {
                        let upstream = answering.clone();
                        async move { Ok::<_, Infallible>(upstream.answer(req).await) }
                    });
                    let connection = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service);
                    tokio::select! {
                        _ = connection => {}
                        _ = close.changed() => {}
                    }
                    upstream.connections.fetch_sub(1, Relaxed);
                });
            }
        });
        Ok(upstream)
    }

    /// Closes every open connection (the gateway's pooled ones included), so what the
    /// gateway holds for them must go too.
    pub fn close_connections(&self) {
        self.close.send_modify(|n| *n += 1);
    }

    /// Switches a fault on (`Some`) or off.
    pub fn set_fault(&self, fault: Option<Fault>) {
        let value = fault.map_or(HEALTHY, |f| f.index() as u8);
        self.fault.store(value, Relaxed);
    }

    /// Faults injected so far, by kind (in [`Fault::ALL`] order).
    pub fn injected(&self) -> [u64; Fault::ALL.len()] {
        std::array::from_fn(|i| self.injected[i].load(Relaxed))
    }

    async fn answer(&self, req: hyper::Request<Incoming>) -> hyper::Response<ChannelBody> {
        use http_body_util::BodyExt;
        self.requests.fetch_add(1, Relaxed);
        let seq = self.seq.fetch_add(1, Relaxed);
        let authorized = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .is_some_and(|v| v.as_bytes() == self.key.as_bytes());
        let body = req
            .into_body()
            .collect()
            .await
            .map(|c| c.to_bytes())
            .unwrap_or_default();
        if !authorized {
            self.wrong_key.fetch_add(1, Relaxed);
            return error(401, "invalid provider key");
        }
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let stream = request["stream"] == json!(true);
        let include_usage = request["stream_options"]["include_usage"] == json!(true);
        let fault = Fault::ALL
            .get(usize::from(self.fault.load(Relaxed)))
            .copied()
            // Every other request while a fault is on.
            .filter(|_| seq.is_multiple_of(2));
        if let Some(fault) = fault {
            self.injected[fault.index()].fetch_add(1, Relaxed);
        }
        let answer = Answer::new(&self.name, seq, &request);
        match (fault, stream) {
            (Some(Fault::ServerError), _) => error(500, "the fake upstream failed on purpose"),
            (Some(Fault::RateLimited), _) => {
                let mut response = error(429, "slow down");
                response.headers_mut().insert(
                    hyper::header::RETRY_AFTER,
                    hyper::header::HeaderValue::from_static("1"),
                );
                response
            }
            (Some(Fault::ClientError), _) => error(400, "this request is not accepted"),
            (Some(Fault::Hang), _) => {
                tokio::time::sleep(SILENCE).await;
                error(504, "gave up hanging")
            }
            (Some(Fault::InvalidJson), false) => respond(
                200,
                "application/json",
                vec![Bytes::from_static(
                    b"<html><body>captive portal</body></html>",
                )],
                End::Finish,
                None,
            ),
            (Some(Fault::Reset), false) => {
                let full = answer.json();
                let half = full.slice(..full.len() / 2);
                respond(
                    200,
                    "application/json",
                    vec![half],
                    End::Cut,
                    Some(full.len()),
                )
            }
            (Some(Fault::Stall), false) => {
                let full = answer.json();
                let half = full.slice(..full.len() / 2);
                respond(
                    200,
                    "application/json",
                    vec![half],
                    End::Stall,
                    Some(full.len()),
                )
            }
            (fault, false) => {
                debug_assert!(fault.is_none());
                let full = answer.json();
                let len = full.len();
                respond(200, "application/json", vec![full], End::Finish, Some(len))
            }
            (fault, true) => {
                let mut events = answer.stream(include_usage);
                // Faults strike after the first content chunk, so the client has
                // seen part of the answer and the gateway must end it with an error.
                let end = match fault {
                    Some(Fault::Reset) => End::Cut,
                    Some(Fault::Stall) => End::Stall,
                    Some(Fault::InvalidJson) => {
                        events.truncate(2);
                        events.push(Bytes::from_static(b"data: {\"choices\": [{\"delta\n\n"));
                        End::Finish
                    }
                    _ => End::Finish,
                };
                if matches!(end, End::Cut | End::Stall) {
                    events.truncate(2);
                }
                respond(200, "text/event-stream", events, end, None)
            }
        }
    }
}

/// The well-formed answer to one request: its token counts and words.
struct Answer {
    id: String,
    model: String,
    prompt_tokens: u64,
    words: u64,
}

impl Answer {
    fn new(upstream: &str, seq: u64, request: &Value) -> Answer {
        Answer {
            id: format!("chatcmpl-{upstream}-{seq}"),
            model: request["model"].as_str().unwrap_or("m").to_owned(),
            prompt_tokens: 10 + seq % 7,
            words: 3 + seq % 5,
        }
    }

    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.words,
            "total_tokens": self.prompt_tokens + self.words,
        })
    }

    fn json(&self) -> Bytes {
        let text = vec!["word"; self.words as usize].join(" ");
        Bytes::from(
            json!({
                "id": self.id,
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": "stop"}],
                "usage": self.usage(),
            })
            .to_string(),
        )
    }

    /// The SSE events: a role chunk, one chunk per word, the finish chunk, the usage
    /// chunk when asked for, `[DONE]`.
    fn stream(&self, include_usage: bool) -> Vec<Bytes> {
        let chunk = |delta: Value, finish: Value| {
            let mut chunk = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            });
            if include_usage {
                chunk["usage"] = Value::Null;
            }
            Bytes::from(format!("data: {chunk}\n\n"))
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        for _ in 0..self.words {
            events.push(chunk(json!({"content": "word "}), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
        if include_usage {
            let last = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": self.model,
                "choices": [],
                "usage": self.usage(),
            });
            events.push(Bytes::from(format!("data: {last}\n\n")));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }
}

/// How a body ends after its pieces.
#[derive(Clone, Copy)]
enum End {
    Finish,
    /// An error: hyper closes the connection without finishing the message.
    Cut,
    /// Silence, then the cut.
    Stall,
}

fn error(status: u16, message: &str) -> hyper::Response<ChannelBody> {
    let body =
        json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}});
    let body = Bytes::from(body.to_string());
    let len = body.len();
    respond(
        status,
        "application/json",
        vec![body],
        End::Finish,
        Some(len),
    )
}

fn respond(
    status: u16,
    content_type: &'static str,
    pieces: Vec<Bytes>,
    end: End,
    length: Option<usize>,
) -> hyper::Response<ChannelBody> {
    let (tx, rx) = mpsc::channel(4);
    let streamed = content_type == "text/event-stream";
    tokio::spawn(async move {
        for (i, piece) in pieces.into_iter().enumerate() {
            if streamed && i > 0 {
                tokio::time::sleep(CHUNK_INTERVAL).await;
            }
            if tx.send(Ok(piece)).await.is_err() {
                return;
            }
        }
        match end {
            End::Finish => {}
            End::Cut => {
                let _ = tx.send(Err(std::io::Error::other("cut on purpose"))).await;
            }
            End::Stall => {
                // Until the gateway gives up and closes (the send fails), or the bound.
                let _ = tokio::time::timeout(SILENCE, tx.closed()).await;
                let _ = tx
                    .send(Err(std::io::Error::other("stalled on purpose")))
                    .await;
            }
        }
    });
    let mut response = hyper::Response::new(ChannelBody(rx));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    if let Some(length) = length {
        headers.insert(hyper::header::CONTENT_LENGTH, length.into());
    }
    response
}

/// A body fed by the task that writes the answer.
pub struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|f| f.map(|r| r.map(Frame::data)))
    }
}

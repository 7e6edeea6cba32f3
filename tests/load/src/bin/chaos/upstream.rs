//! Fake upstreams speaking the OpenAI chat wire protocol (a JSON body, or SSE with the
//! usage in a last chunk when `stream_options.include_usage`), each with a fault that
//! the schedule switches on and off. While a fault is on, every other request meets
//! it; each one injected is counted by kind. Every request must carry the upstream's
//! own provider key: one that does not is answered 401 and counted, and the soak fails.

mod wire;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering::Relaxed};
use wire::{Answer, ChannelBody, End, SILENCE, error, respond};

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

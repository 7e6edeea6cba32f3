//! A fake upstream LLM provider for end-to-end tests.
//!
//! [`FakeUpstream`] is a real HTTP server on a real TCP port of 127.0.0.1 (HTTP/1.1 and
//! h2c with prior knowledge) that speaks the OpenAI or the Anthropic wire format,
//! streaming included, so the gateway under test talks to it exactly as it would talk
//! to a provider. Each request is answered by a scripted [`Reply`]: normal completions,
//! tool calls, provider-shaped errors, delays, and faults at the TCP level (reset before
//! any response, stream cut off mid-way). Every request is recorded for assertions.
//!
//! Deterministic values a test can predict:
//! - `n` is a request's position in [`FakeUpstream::requests`], from 1. Ids are derived
//!   from it: `chatcmpl-fake-{n}`, `call_fake_{n}`, `msg_fake_{n}`, `toolu_fake_{n}`,
//!   and the `x-request-id` (OpenAI) or `request-id` (Anthropic) header `req_fake_{n}`.
//! - `created` is always [`CREATED`].
//! - Prompt tokens: [`prompt_tokens`] (UTF-8 bytes of the request's text / 4 + 1).
//! - Completion tokens: [`Reply::completion_tokens`] (one per streamed content piece).
//!
//! Inside: [`Reply`] (the script, in `reply`), the accept loop and connections
//! (`server`), request handling and validation (`handler`), the paced body and its
//! faults (`body`), and the OpenAI and Anthropic answers (`openai`, `anthropic`).

// Each test uses a few of the capabilities; the rest must not warn as dead code.
#![allow(dead_code)]

mod anthropic;
mod body;
mod handler;
mod openai;
mod reply;
mod server;

pub use reply::Reply;

use bytes::Bytes;
use serde_json::Value;
use server::{Script, Shared, accept_loop, lock};
use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The `created` timestamp of every OpenAI response and chunk. Fixed rather than the
/// clock so that whole stream frames can be compared byte for byte.
pub const CREATED: u64 = 1_700_000_000;

/// The text of [`Reply::ok`] when no other text is set.
pub const DEFAULT_TEXT: &str = "Hello from the fake upstream.";

/// Longest fragment, in characters, that a tool call's arguments are split into when
/// streamed (see [`Reply::completion_tokens`]).
pub const TOOL_FRAGMENT_CHARS: usize = 8;

/// Which provider's API the fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wire {
    /// `POST /v1/chat/completions`, `POST /v1/embeddings`, `GET /v1/models`.
    OpenAi,
    /// `POST /v1/messages`, `GET /v1/models`.
    Anthropic,
}

/// A running fake provider. Dropping it shuts the server down: the listener closes and
/// every open connection is dropped as soon as the runtime next runs (use
/// [`FakeUpstream::shutdown`] to wait until the port is closed).
pub struct FakeUpstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept_task: Option<JoinHandle<()>>,
    // Never sent on: dropping it is the shutdown signal every task of the server watches.
    _shutdown: watch::Sender<()>,
}

/// One request as the fake received it.
#[derive(Clone, Debug)]
pub struct Recorded {
    /// `GET`, `POST`, …
    pub method: String,
    /// The path without the query, e.g. `/v1/chat/completions`.
    pub path: String,
    /// The query string without `?`, if any.
    pub query: Option<String>,
    /// Every header in arrival order, names lower-case (values decoded lossily).
    pub headers: Vec<(String, String)>,
    /// The body parsed as JSON, or `Value::Null` when it is empty or not JSON.
    pub body: Value,
    /// The body exactly as received.
    pub raw_body: Bytes,
}

impl Recorded {
    /// The first value of header `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A URL on 127.0.0.1 where nothing listens, for "connection refused" tests. The port
/// was free a moment ago (bound, read, released); another process could take it, which
/// on a test machine is unlikely enough.
pub fn closed_port_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        // Port 1 (tcpmux) is privileged and never served on a test machine.
        .unwrap_or(1);
    format!("http://127.0.0.1:{port}")
}

/// The prompt-token count the fake reports for a request body: the UTF-8 byte length of
/// its text, divided by 4, plus 1. The text is every string `content` of `messages`
/// (or the `text` of each part when `content` is an array), the Anthropic `system`
/// (string or blocks' `text`), and the embeddings `input` (string or array of strings;
/// token-id arrays count nothing).
pub fn prompt_tokens(request: &Value) -> u64 {
    fn text_bytes(v: &Value) -> usize {
        match v {
            Value::String(s) => s.len(),
            Value::Array(parts) => parts
                .iter()
                .map(|p| match p {
                    Value::String(s) => s.len(),
                    _ => p.get("text").and_then(Value::as_str).map_or(0, str::len),
                })
                .sum(),
            _ => 0,
        }
    }
    let messages: usize = request
        .get("messages")
        .and_then(Value::as_array)
        .map_or(0, |ms| {
            ms.iter()
                .filter_map(|m| m.get("content"))
                .map(text_bytes)
                .sum()
        });
    let system = request.get("system").map_or(0, text_bytes);
    let input = request.get("input").map_or(0, text_bytes);
    ((messages + system + input) / 4 + 1) as u64
}

impl FakeUpstream {
    /// Starts a server for `wire` on 127.0.0.1 with an OS-chosen port. Accepted sockets
    /// get TCP_NODELAY so that each stream event leaves at once.
    pub async fn start(wire: Wire) -> FakeUpstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap_or_else(|e| panic!("fake upstream: cannot bind 127.0.0.1:0: {e}"));
        let addr = listener
            .local_addr()
            .unwrap_or_else(|e| panic!("fake upstream: no local address: {e}"));
        let shared = Arc::new(Shared {
            wire,
            script: Mutex::new(Script {
                queue: VecDeque::new(),
                default: Reply::ok(),
            }),
            requests: Mutex::new(Vec::new()),
            cancelled: AtomicUsize::new(0),
        });
        let (shutdown, shutdown_rx) = watch::channel(());
        let accept_task = tokio::spawn(accept_loop(listener, shared.clone(), shutdown_rx));
        FakeUpstream {
            addr,
            shared,
            accept_task: Some(accept_task),
            _shutdown: shutdown,
        }
    }

    /// Base URL, `http://127.0.0.1:PORT` (no trailing slash).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Queues `reply` for a coming request. Queued replies are used in order, one per
    /// request to a known endpoint that passes validation (404s and validation 400s do
    /// not use one); when the queue is empty the default reply answers.
    pub fn enqueue(&self, reply: Reply) {
        lock(&self.shared.script).queue.push_back(reply);
    }

    /// Sets the reply used whenever the queue is empty (initially [`Reply::ok`]).
    pub fn set_default(&self, reply: Reply) {
        lock(&self.shared.script).default = reply;
    }

    /// Every request received so far, in arrival order (including 404s and 400s).
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.requests).clone()
    }

    /// Number of requests received so far (the length of [`FakeUpstream::requests`]).
    pub fn hits(&self) -> usize {
        lock(&self.shared.requests).len()
    }

    /// Number of scripted responses whose client went away before the whole response
    /// was handed to the connection: the request future was dropped while it waited
    /// (e.g. during [`Reply::delay_headers`]), or the body was dropped before its last
    /// byte (the connection failed or was closed). Faults the fake injects itself
    /// (reset, truncation) do not count. Detection is asynchronous: see
    /// [`FakeUpstream::wait_for_cancelled`].
    pub fn cancelled(&self) -> usize {
        self.shared.cancelled.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` responses were cancelled, or `within` has passed;
    /// returns whether the count was reached.
    pub async fn wait_for_cancelled(&self, n: usize, within: Duration) -> bool {
        wait_until(within, || self.cancelled() >= n).await
    }

    /// Waits until at least `n` requests were received, or `within` has passed;
    /// returns whether the count was reached.
    pub async fn wait_for_hits(&self, n: usize, within: Duration) -> bool {
        wait_until(within, || self.hits() >= n).await
    }

    /// Shuts the server down and waits until its port is closed, so that a connection
    /// attempt right after this returns is refused.
    pub async fn shutdown(mut self) {
        let task = self.accept_task.take();
        drop(self);
        if let Some(task) = task {
            // The accept loop ends on the dropped shutdown sender; its result is `()` or
            // a cancellation at runtime shutdown, neither of which matters here.
            let _ = task.await;
        }
    }
}

async fn wait_until(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

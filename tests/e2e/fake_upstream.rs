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

// Each test uses a few of the capabilities; the rest must not warn as dead code.
#![allow(dead_code)]

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use serde_json::{Value, json};
use std::collections::VecDeque;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, ready};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
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

/// A scripted answer, built from [`Reply::ok`] with the builder methods. Of the faults
/// ([`Reply::reset_before_headers`], [`Reply::fail_before_content`],
/// [`Reply::truncate_after`]) the last one set wins.
#[derive(Clone, Debug)]
pub struct Reply {
    content: Content,
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    delay_headers: Duration,
    delay_first_chunk: Duration,
    chunk_interval: Duration,
    fault: Fault,
    model: Option<String>,
}

#[derive(Clone, Debug)]
enum Content {
    /// The completion text as the content pieces a stream sends.
    Text(Vec<String>),
    Tool {
        name: String,
        arguments: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fault {
    None,
    ResetBeforeHeaders,
    FailBeforeContent,
    TruncateAfter(usize),
}

impl Default for Reply {
    fn default() -> Self {
        Reply::ok()
    }
}

impl Reply {
    /// A successful completion (HTTP 200) of [`DEFAULT_TEXT`], streamed word by word.
    pub fn ok() -> Reply {
        Reply {
            content: Content::Text(split_words(DEFAULT_TEXT)),
            status: StatusCode::OK,
            headers: Vec::new(),
            delay_headers: Duration::ZERO,
            delay_first_chunk: Duration::ZERO,
            chunk_interval: Duration::ZERO,
            fault: Fault::None,
            model: None,
        }
    }

    /// The completion text. Streams send it as one piece per word, each piece after the
    /// first starting with the whitespace before its word ("Hi there" → "Hi", " there"),
    /// so the pieces concatenate back to `t`.
    pub fn text(mut self, t: &str) -> Reply {
        self.content = Content::Text(split_words(t));
        self
    }

    /// The completion as exactly these stream pieces (non-streaming answers send their
    /// concatenation).
    pub fn chunks(mut self, parts: &[&str]) -> Reply {
        self.content = Content::Text(parts.iter().map(|p| p.to_string()).collect());
        self
    }

    /// Answers with this HTTP status. From 400 up the body is the provider's error JSON
    /// (type chosen from the status: e.g. 429 → rate limit, 529 → Anthropic overloaded);
    /// below 400 the normal body is sent with this status.
    ///
    /// # Panics
    /// On a code outside 100..=999 (a mistake in the test).
    pub fn status(mut self, code: u16) -> Reply {
        self.status = StatusCode::from_u16(code)
            .unwrap_or_else(|_| panic!("Reply::status: {code} is not an HTTP status"));
        self
    }

    /// Adds a response header (e.g. `retry-after`); it replaces a header of the same
    /// name the fake would send itself.
    ///
    /// # Panics
    /// On an invalid header name or value (a mistake in the test).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|_| panic!("Reply::header: invalid name {name:?}"));
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|_| panic!("Reply::header: invalid value {value:?}"));
        self.headers.push((name, value));
        self
    }

    /// Waits this long after reading the request before sending status and headers.
    pub fn delay_headers(mut self, d: Duration) -> Reply {
        self.delay_headers = d;
        self
    }

    /// Sends status and headers at once, and the first body bytes this long later (for
    /// first-byte timeouts; applies to non-streaming bodies too).
    pub fn delay_first_chunk(mut self, d: Duration) -> Reply {
        self.delay_first_chunk = d;
        self
    }

    /// Waits this long between two stream events (every SSE frame, role and finish
    /// frames included).
    pub fn chunk_interval(mut self, d: Duration) -> Reply {
        self.chunk_interval = d;
        self
    }

    /// Reads the request, then resets the TCP connection (RST) without any response
    /// (after [`Reply::delay_headers`] if set). On h2c the whole connection goes.
    pub fn reset_before_headers(mut self) -> Reply {
        self.fault = Fault::ResetBeforeHeaders;
        self
    }

    /// Streams: sends status, headers, the opening events (OpenAI: the role chunk, and
    /// the tool-call header chunk for tool calls; Anthropic: `message_start`,
    /// `content_block_start`, `ping`) and the first `n` content pieces, then aborts the
    /// connection: no finish chunk, no `[DONE]` / `message_stop`, no chunked terminator
    /// (h2: the stream is reset). Non-streaming: sends the headers and the first half of
    /// the JSON body, then aborts.
    pub fn truncate_after(mut self, n_content_chunks: usize) -> Reply {
        self.fault = Fault::TruncateAfter(n_content_chunks);
        self
    }

    /// Streams: sends status 200, headers and only the first event (OpenAI: the
    /// role-only chunk; Anthropic: `message_start`), then aborts the connection.
    /// Non-streaming: sends the headers, then aborts before any body byte.
    pub fn fail_before_content(mut self) -> Reply {
        self.fault = Fault::FailBeforeContent;
        self
    }

    /// Answers with one call of tool `name` instead of text. `arguments_json` is the
    /// arguments object as JSON text: OpenAI gets it verbatim as `arguments`, Anthropic
    /// parsed as `input`. Streams send it in fragments of at most
    /// [`TOOL_FRAGMENT_CHARS`] characters.
    ///
    /// # Panics
    /// When `arguments_json` is not a JSON object (a mistake in the test).
    pub fn tool_call(mut self, name: &str, arguments_json: &str) -> Reply {
        assert!(
            serde_json::from_str::<Value>(arguments_json).is_ok_and(|v| v.is_object()),
            "Reply::tool_call: arguments must be a JSON object, got {arguments_json:?}"
        );
        self.content = Content::Tool {
            name: name.to_string(),
            arguments: arguments_json.to_string(),
        };
        self
    }

    /// The model name reported in responses (default: the request's `model`).
    pub fn model(mut self, name: &str) -> Reply {
        self.model = Some(name.to_string());
        self
    }

    /// The completion-token count reported for this reply: the number of content pieces
    /// a stream carries, i.e. the words of the text (see [`Reply::text`]), the parts
    /// given to [`Reply::chunks`], or for a tool call the fragments of its arguments
    /// (`ceil(chars / TOOL_FRAGMENT_CHARS)`). Streaming and non-streaming agree.
    pub fn completion_tokens(&self) -> u64 {
        self.pieces().len() as u64
    }

    /// The content pieces a stream sends, one per delta event.
    fn pieces(&self) -> Vec<String> {
        match &self.content {
            Content::Text(parts) => parts.clone(),
            Content::Tool { arguments, .. } => {
                let chars: Vec<char> = arguments.chars().collect();
                chars
                    .chunks(TOOL_FRAGMENT_CHARS)
                    .map(|c| c.iter().collect())
                    .collect()
            }
        }
    }
}

/// Splits before each whitespace run that follows a non-space, so that the pieces
/// concatenate back to `t` and each word carries its leading space, as tokenizers do.
fn split_words(t: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut prev_space = true;
    for c in t.chars() {
        if c.is_whitespace() && !prev_space && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        prev_space = c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

// ---------------------------------------------------------------------------------
// Server machinery

struct Shared {
    wire: Wire,
    script: Mutex<Script>,
    requests: Mutex<Vec<Recorded>>,
    cancelled: AtomicUsize,
}

struct Script {
    queue: VecDeque<Reply>,
    default: Reply,
}

/// Locks, ignoring poisoning: a panicking test thread must not turn every later request
/// into a second panic inside the server.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Spawns hyper's background futures (h2 streams) so that they end with the server,
/// rather than outliving it as plain `tokio::spawn` would.
#[derive(Clone)]
struct ScopedExecutor(watch::Receiver<()>);

impl<F> hyper::rt::Executor<F> for ScopedExecutor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let mut shutdown = self.0.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

async fn accept_loop(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<()>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    // Best effort: without it events would still arrive, only later.
                    let _ = tcp.set_nodelay(true);
                    tokio::spawn(serve_connection(tcp, shared.clone(), shutdown.clone()));
                }
                // E.g. out of file descriptors under a load test: back off instead of
                // spinning, the condition may clear when connections close.
                Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            },
            _ = shutdown.changed() => return,
        }
    }
}

async fn serve_connection(tcp: TcpStream, shared: Arc<Shared>, mut shutdown: watch::Receiver<()>) {
    let kill = Arc::new(Kill::default());
    let socket = Socket {
        tcp,
        kill: kill.clone(),
    };
    let service = {
        let kill = kill.clone();
        hyper::service::service_fn(move |req| handle(shared.clone(), kill.clone(), req))
    };
    // The auto builder detects the h2 preface, so one port serves HTTP/1.1 and h2c.
    let builder = auto::Builder::new(ScopedExecutor(shutdown.clone()));
    let connection = builder.serve_connection(TokioIo::new(socket), service);
    tokio::select! {
        // Connection errors (client gone, aborted bodies) are the expected end of many
        // tests; there is nobody to report them to.
        _ = connection => {}
        // Dropping the connection drops the socket, which then closes with a reset.
        _ = kill.notify.notified() => {}
        _ = shutdown.changed() => {}
    }
}

/// Asks the connection task to drop the connection with a TCP reset.
#[derive(Default)]
struct Kill {
    reset: AtomicBool,
    notify: Notify,
}

impl Kill {
    fn reset_connection(&self) {
        self.reset.store(true, Ordering::SeqCst);
        // notify_one keeps a permit if the connection task is not waiting right now.
        self.notify.notify_one();
    }
}

/// The accepted TCP stream. It exists to reach the socket at the moment it is dropped:
/// hyper owns the I/O object and gives no access to it, and SO_LINGER=0 must be set on
/// that drop only (set earlier, an ordinary close would discard unsent bytes, which
/// would spoil truncation tests that expect the bytes before the cut to arrive).
struct Socket {
    tcp: TcpStream,
    kill: Arc<Kill>,
}

impl Drop for Socket {
    fn drop(&mut self) {
        if self.kill.reset.load(Ordering::SeqCst) {
            // Zero linger makes close() send RST instead of FIN. If it fails the client
            // still sees the connection close without a response.
            let _ = self.tcp.set_zero_linger();
        }
    }
}

impl AsyncRead for Socket {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Socket {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Counts a cancellation when dropped while armed: created when a scripted response
/// starts, disarmed once its last byte (or an intended abort) is handed to hyper.
struct CancelGuard(Option<Arc<Shared>>);

impl CancelGuard {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        if let Some(shared) = self.0.take() {
            shared.cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// The error a body yields to make hyper abort the connection (HTTP/1.1: close without
/// the chunked terminator or before Content-Length is reached; h2: RST_STREAM).
#[derive(Debug)]
struct Aborted;

impl std::fmt::Display for Aborted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fake upstream aborted the response on purpose")
    }
}

impl std::error::Error for Aborted {}

enum Piece {
    Data(Bytes),
    Abort,
}

/// A response body that paces itself: each piece becomes one frame, after the first
/// delay or the interval. Timing inside the body (rather than a producer task feeding a
/// channel) keeps the waits real while leaving nothing running once hyper drops it.
struct ReplyBody {
    pieces: VecDeque<Piece>,
    wait: Option<Pin<Box<tokio::time::Sleep>>>,
    interval: Duration,
    exact_len: Option<u64>,
    abort_grace_done: bool,
    guard: CancelGuard,
}

/// How long a body pauses before an intended abort (see `ReplyBody::poll_frame`).
const ABORT_GRACE: Duration = Duration::from_millis(20);

impl ReplyBody {
    fn new(
        pieces: Vec<Piece>,
        first_delay: Duration,
        interval: Duration,
        exact_len: Option<u64>,
    ) -> Self {
        ReplyBody {
            pieces: pieces.into(),
            wait: (!first_delay.is_zero()).then(|| Box::pin(tokio::time::sleep(first_delay))),
            interval,
            exact_len,
            abort_grace_done: false,
            guard: CancelGuard(None),
        }
    }

    /// A body sent at once, not counted as a scripted response (404s, validation 400s).
    fn full(bytes: Bytes) -> Self {
        let len = bytes.len() as u64;
        ReplyBody::new(
            vec![Piece::Data(bytes)],
            Duration::ZERO,
            Duration::ZERO,
            Some(len),
        )
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Aborted;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Aborted>>> {
        let this = self.get_mut();
        loop {
            if let Some(wait) = this.wait.as_mut() {
                ready!(wait.as_mut().poll(cx));
                this.wait = None;
            }
            if matches!(this.pieces.front(), Some(Piece::Abort)) && !this.abort_grace_done {
                // On a body error hyper drops what it has not written yet: HTTP/1 closes
                // without flushing its buffer (the head and earlier chunks too, when they
                // were all polled at once), h2 clears the stream's send queue. Pausing
                // first lets the connection flush everything before the cut.
                this.abort_grace_done = true;
                this.wait = Some(Box::pin(tokio::time::sleep(ABORT_GRACE)));
                continue;
            }
            break;
        }
        match this.pieces.pop_front() {
            None => {
                this.guard.disarm();
                Poll::Ready(None)
            }
            Some(Piece::Data(bytes)) => {
                if this.pieces.is_empty() {
                    // hyper may never poll again once a Content-Length is satisfied.
                    this.guard.disarm();
                } else if !this.interval.is_zero() {
                    this.wait = Some(Box::pin(tokio::time::sleep(this.interval)));
                }
                Poll::Ready(Some(Ok(Frame::data(bytes))))
            }
            Some(Piece::Abort) => {
                this.guard.disarm();
                Poll::Ready(Some(Err(Aborted)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.pieces.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        self.exact_len
            .map_or_else(SizeHint::default, SizeHint::with_exact)
    }
}

// ---------------------------------------------------------------------------------
// Request handling

#[derive(Clone, Copy, PartialEq, Eq)]
enum Route {
    Chat,
    Embeddings,
    Models,
}

async fn handle(
    shared: Arc<Shared>,
    kill: Arc<Kill>,
    req: Request<Incoming>,
) -> Result<Response<ReplyBody>, Infallible> {
    let wire = shared.wire;
    let (parts, body) = req.into_parts();
    // The client may abort mid-upload; record what arrived (nothing) and answer 400,
    // which will not be read anyway.
    let (raw, read_ok) = match body.collect().await {
        Ok(collected) => (collected.to_bytes(), true),
        Err(_) => (Bytes::new(), false),
    };
    let json: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    let seq = {
        let mut requests = lock(&shared.requests);
        requests.push(Recorded {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query: parts.uri.query().map(str::to_string),
            headers: parts
                .headers
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: json.clone(),
            raw_body: raw,
        });
        requests.len()
    };

    let route = match (wire, &parts.method, parts.uri.path()) {
        (Wire::OpenAi, &Method::POST, "/v1/chat/completions") => Route::Chat,
        (Wire::OpenAi, &Method::POST, "/v1/embeddings") => Route::Embeddings,
        (Wire::Anthropic, &Method::POST, "/v1/messages") => Route::Chat,
        (_, &Method::GET, "/v1/models") => Route::Models,
        (_, method, path) => {
            let message = format!("fake upstream: no route for {method} {path}");
            return Ok(error_response(wire, StatusCode::NOT_FOUND, &message, seq));
        }
    };
    if !read_ok {
        return Ok(error_response(
            wire,
            StatusCode::BAD_REQUEST,
            "request body could not be read",
            seq,
        ));
    }
    if let Err(message) = validate(wire, route, &json) {
        return Ok(error_response(wire, StatusCode::BAD_REQUEST, &message, seq));
    }

    let reply = {
        let mut script = lock(&shared.script);
        let next = script.queue.pop_front();
        next.unwrap_or_else(|| script.default.clone())
    };

    if reply.fault == Fault::ResetBeforeHeaders {
        tokio::time::sleep(reply.delay_headers).await;
        kill.reset_connection();
        // The connection task drops this future together with the connection; hang
        // until then so that no response can slip out first.
        let never: Infallible = std::future::pending().await;
        match never {}
    }

    // Armed from here: if hyper drops this future during the delay (client gone), the
    // guard counts the cancellation; otherwise it moves into the body.
    let guard = CancelGuard(Some(shared.clone()));
    if !reply.delay_headers.is_zero() {
        tokio::time::sleep(reply.delay_headers).await;
    }
    let mut response = scripted_response(wire, route, seq, &json, &reply);
    response.body_mut().guard = guard;
    Ok(response)
}

/// What the real APIs reject before doing anything, so a translation bug in the gateway
/// shows up as a 400 instead of a success.
fn validate(wire: Wire, route: Route, body: &Value) -> Result<(), String> {
    if route == Route::Models {
        return Ok(());
    }
    if !body.is_object() {
        return Err("request body must be a JSON object".into());
    }
    if !body.get("model").is_some_and(Value::is_string) {
        return Err("model: field required (a string)".into());
    }
    match route {
        Route::Chat => {
            if !body.get("messages").is_some_and(Value::is_array) {
                return Err("messages: field required (an array)".into());
            }
            if wire == Wire::Anthropic && !body.get("max_tokens").is_some_and(Value::is_u64) {
                return Err("max_tokens: field required (an integer)".into());
            }
        }
        Route::Embeddings => {
            if !body
                .get("input")
                .is_some_and(|i| i.is_string() || i.is_array())
            {
                return Err("input: field required (a string or an array)".into());
            }
        }
        Route::Models => {}
    }
    Ok(())
}

/// Quotes and escapes `s` as a JSON string.
fn q(s: &str) -> String {
    Value::String(s.to_string()).to_string()
}

fn request_id_header(wire: Wire) -> &'static str {
    match wire {
        Wire::OpenAi => "x-request-id",
        Wire::Anthropic => "request-id",
    }
}

/// An unscripted JSON response (404, validation 400): sent at once, never counted as
/// cancelled.
fn error_response(
    wire: Wire,
    status: StatusCode,
    message: &str,
    seq: usize,
) -> Response<ReplyBody> {
    let body = Bytes::from(error_json(wire, status, message).to_string());
    let mut response = Response::new(ReplyBody::full(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Ok(id) = HeaderValue::from_str(&format!("req_fake_{seq}")) {
        headers.insert(request_id_header(wire), id);
    }
    response
}

/// The provider's error body; the type follows the status as the real APIs do.
fn error_json(wire: Wire, status: StatusCode, message: &str) -> Value {
    let code = status.as_u16();
    match wire {
        Wire::OpenAi => {
            let (kind, code_name) = match code {
                401 => ("invalid_request_error", json!("invalid_api_key")),
                403 => ("permission_error", Value::Null),
                404 => ("invalid_request_error", json!("not_found")),
                429 => ("requests", json!("rate_limit_exceeded")),
                500..=599 => ("server_error", Value::Null),
                _ => ("invalid_request_error", Value::Null),
            };
            json!({"error": {"message": message, "type": kind, "param": null, "code": code_name}})
        }
        Wire::Anthropic => {
            let kind = match code {
                401 => "authentication_error",
                403 => "permission_error",
                404 => "not_found_error",
                413 => "request_too_large",
                429 => "rate_limit_error",
                529 => "overloaded_error",
                500..=599 => "api_error",
                _ => "invalid_request_error",
            };
            json!({"type": "error", "error": {"type": kind, "message": message}})
        }
    }
}

/// A body before faults are applied: stream events split into the opening events, one
/// event per content piece, and the closing events; a JSON body is one piece.
struct Planned {
    stream: bool,
    content_type: &'static str,
    head: Vec<Bytes>,
    pieces: Vec<Bytes>,
    tail: Vec<Bytes>,
}

impl Planned {
    fn json(value: Value) -> Planned {
        Planned {
            stream: false,
            content_type: "application/json",
            head: Vec::new(),
            pieces: vec![Bytes::from(value.to_string())],
            tail: Vec::new(),
        }
    }

    fn sse(head: Vec<String>, pieces: Vec<String>, tail: Vec<String>) -> Planned {
        let bytes = |v: Vec<String>| v.into_iter().map(Bytes::from).collect();
        Planned {
            stream: true,
            content_type: "text/event-stream",
            head: bytes(head),
            pieces: bytes(pieces),
            tail: bytes(tail),
        }
    }
}

fn scripted_response(
    wire: Wire,
    route: Route,
    seq: usize,
    req: &Value,
    reply: &Reply,
) -> Response<ReplyBody> {
    let model = reply
        .model
        .clone()
        .or_else(|| req.get("model").and_then(Value::as_str).map(str::to_string))
        .unwrap_or_else(|| "fake-model".to_string());
    let planned = if reply.status.as_u16() >= 400 {
        let message = format!("fake upstream: scripted {} error", reply.status.as_u16());
        Planned::json(error_json(wire, reply.status, &message))
    } else {
        match (wire, route) {
            (Wire::OpenAi, Route::Chat) => openai_chat(seq, &model, req, reply),
            (Wire::OpenAi, Route::Embeddings) => openai_embeddings(&model, req),
            (Wire::Anthropic, Route::Chat) => anthropic_messages(seq, &model, req, reply),
            (_, Route::Models) => models(wire, reply),
            // validate() routes embeddings to OpenAI only.
            (Wire::Anthropic, Route::Embeddings) => Planned::json(Value::Null),
        }
    };

    let stream = planned.stream;
    let content_type = planned.content_type;
    let (pieces, exact_len) = apply_fault(planned, reply.fault);
    let body = ReplyBody::new(
        pieces,
        reply.delay_first_chunk,
        reply.chunk_interval,
        exact_len,
    );
    let mut response = Response::new(body);
    *response.status_mut() = reply.status;
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        HeaderValue::from_static(content_type),
    );
    if stream {
        headers.insert(
            hyper::header::CACHE_CONTROL,
            HeaderValue::from_static("no-cache"),
        );
    }
    if let Ok(id) = HeaderValue::from_str(&format!("req_fake_{seq}")) {
        headers.insert(request_id_header(wire), id);
    }
    for (name, _) in &reply.headers {
        headers.remove(name);
    }
    for (name, value) in &reply.headers {
        headers.append(name.clone(), value.clone());
    }
    response
}

/// Turns a planned body into the pieces actually sent, and the Content-Length to
/// announce (JSON bodies announce their full length even when cut, as a server that
/// dies mid-write would have).
fn apply_fault(planned: Planned, fault: Fault) -> (Vec<Piece>, Option<u64>) {
    let Planned {
        stream,
        head,
        mut pieces,
        tail,
        ..
    } = planned;
    if !stream {
        let whole = pieces.pop().unwrap_or_default();
        let len = Some(whole.len() as u64);
        return match fault {
            Fault::FailBeforeContent => (vec![Piece::Abort], len),
            Fault::TruncateAfter(_) => (
                vec![Piece::Data(whole.slice(..whole.len() / 2)), Piece::Abort],
                len,
            ),
            Fault::None | Fault::ResetBeforeHeaders => (vec![Piece::Data(whole)], len),
        };
    }
    let data = |v: Vec<Bytes>| v.into_iter().map(Piece::Data);
    let out: Vec<Piece> = match fault {
        Fault::FailBeforeContent => data(head).take(1).chain([Piece::Abort]).collect(),
        Fault::TruncateAfter(n) => data(head)
            .chain(data(pieces).take(n))
            .chain([Piece::Abort])
            .collect(),
        Fault::None | Fault::ResetBeforeHeaders => {
            data(head).chain(data(pieces)).chain(data(tail)).collect()
        }
    };
    (out, None)
}

fn is_stream(req: &Value) -> bool {
    req.get("stream") == Some(&Value::Bool(true))
}

// Stream frames are written with format! rather than serde_json so that keys come in the
// real servers' order and the bytes do not depend on serde_json's `preserve_order`.

fn openai_chat(seq: usize, model: &str, req: &Value, reply: &Reply) -> Planned {
    let id = format!("chatcmpl-fake-{seq}");
    let prompt = prompt_tokens(req);
    let pieces = reply.pieces();
    let completion = pieces.len() as u64;
    let usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    });
    let call_id = format!("call_fake_{seq}");

    if !is_stream(req) {
        let (message, finish) = match &reply.content {
            Content::Text(parts) => (
                json!({"role": "assistant", "content": parts.concat()}),
                "stop",
            ),
            Content::Tool { name, arguments } => (
                json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }],
                }),
                "tool_calls",
            ),
        };
        return Planned::json(json!({
            "id": id,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage,
        }));
    }

    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // With include_usage the real API puts "usage":null on every chunk but the last.
    let usage_null = if include_usage {
        r#","usage":null"#
    } else {
        ""
    };
    let (id, model) = (q(&id), q(model));
    let prefix = format!(
        r#"{{"id":{id},"object":"chat.completion.chunk","created":{CREATED},"model":{model}"#
    );
    // `delta` is JSON text, `finish` too (`null` or a quoted reason).
    let chunk = |delta: &str, finish: &str| {
        let choice = format!(r#"{{"index":0,"delta":{delta},"finish_reason":{finish}}}"#);
        format!("data: {prefix},\"choices\":[{choice}]{usage_null}}}\n\n")
    };

    let mut head = vec![chunk(r#"{"role":"assistant","content":null}"#, "null")];
    let (deltas, finish): (Vec<String>, &str) = match &reply.content {
        Content::Text(_) => (
            pieces
                .iter()
                .map(|p| chunk(&format!(r#"{{"content":{}}}"#, q(p)), "null"))
                .collect(),
            "\"stop\"",
        ),
        Content::Tool { name, .. } => {
            let (call_id, name) = (q(&call_id), q(name));
            let call = format!(
                r#"{{"index":0,"id":{call_id},"type":"function","function":{{"name":{name},"arguments":""}}}}"#
            );
            head.push(chunk(&format!(r#"{{"tool_calls":[{call}]}}"#), "null"));
            (
                pieces
                    .iter()
                    .map(|p| {
                        let fragment =
                            format!(r#"{{"index":0,"function":{{"arguments":{}}}}}"#, q(p));
                        chunk(&format!(r#"{{"tool_calls":[{fragment}]}}"#), "null")
                    })
                    .collect(),
                "\"tool_calls\"",
            )
        }
    };
    let mut tail = vec![chunk("{}", finish)];
    if include_usage {
        tail.push(format!(
            "data: {prefix},\"choices\":[],\"usage\":{usage}}}\n\n"
        ));
    }
    tail.push("data: [DONE]\n\n".to_string());
    Planned::sse(head, deltas, tail)
}

fn openai_embeddings(model: &str, req: &Value) -> Planned {
    // One embedding per input: a string, an array of strings, a token-id array, or an
    // array of token-id arrays.
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embedding_of(input);
            let embedding = if base64 {
                // The real API's base64 form: little-endian f32s.
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|x| (*x as f32).to_le_bytes())
                    .collect();
                json!(base64_encode(&bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let prompt = prompt_tokens(req);
    Planned::json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }))
}

/// Eight deterministic values in [-1, 1] derived from the input (FNV-1a per dimension),
/// so equal inputs get equal vectors and different inputs almost surely differ.
fn embedding_of(input: &str) -> Vec<f64> {
    (0u64..8)
        .map(|dim| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ dim;
            for b in input.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            (h % 2001) as f64 / 1000.0 - 1.0
        })
        .collect()
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn models(wire: Wire, reply: &Reply) -> Planned {
    let mut ids: Vec<String> = match wire {
        Wire::OpenAi => vec![
            "gpt-4o".into(),
            "gpt-4o-mini".into(),
            "text-embedding-3-small".into(),
        ],
        Wire::Anthropic => vec!["claude-sonnet-4-5".into(), "claude-haiku-4-5".into()],
    };
    if let Some(m) = &reply.model
        && !ids.contains(m)
    {
        ids.insert(0, m.clone());
    }
    Planned::json(match wire {
        Wire::OpenAi => json!({
            "object": "list",
            "data": ids
                .iter()
                .map(|id| json!({"id": id, "object": "model", "created": CREATED, "owned_by": "fake-upstream"}))
                .collect::<Vec<_>>(),
        }),
        Wire::Anthropic => json!({
            "data": ids
                .iter()
                .map(|id| json!({"type": "model", "id": id, "display_name": id, "created_at": "2025-01-01T00:00:00Z"}))
                .collect::<Vec<_>>(),
            "has_more": false,
            "first_id": ids.first(),
            "last_id": ids.last(),
        }),
    })
}

fn anthropic_messages(seq: usize, model: &str, req: &Value, reply: &Reply) -> Planned {
    let id = format!("msg_fake_{seq}");
    let tool_id = format!("toolu_fake_{seq}");
    let input_tokens = prompt_tokens(req);
    let pieces = reply.pieces();
    let output_tokens = pieces.len() as u64;
    let stop_reason = match reply.content {
        Content::Text(_) => "end_turn",
        Content::Tool { .. } => "tool_use",
    };

    if !is_stream(req) {
        let block = match &reply.content {
            Content::Text(parts) => json!({"type": "text", "text": parts.concat()}),
            Content::Tool { name, arguments } => json!({
                "type": "tool_use",
                "id": tool_id,
                "name": name,
                // Validated as a JSON object by Reply::tool_call.
                "input": serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({})),
            }),
        };
        return Planned::json(json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }));
    }

    let event = |kind: &str, data: String| format!("event: {kind}\ndata: {data}\n\n");
    let (block, delta_kind, delta_field) = match &reply.content {
        Content::Text(_) => (
            r#"{"type":"text","text":""}"#.to_string(),
            "text_delta",
            "text",
        ),
        Content::Tool { name, .. } => (
            format!(
                r#"{{"type":"tool_use","id":{},"name":{},"input":{{}}}}"#,
                q(&tool_id),
                q(name)
            ),
            "input_json_delta",
            "partial_json",
        ),
    };
    let (id, model) = (q(&id), q(model));
    // Like the real API, message_start reports the input and one token of output so far.
    let message = format!(
        r#"{{"id":{id},"type":"message","role":"assistant","model":{model},"content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{input_tokens},"output_tokens":1}}}}"#
    );
    let head = vec![
        event(
            "message_start",
            format!(r#"{{"type":"message_start","message":{message}}}"#),
        ),
        event(
            "content_block_start",
            format!(r#"{{"type":"content_block_start","index":0,"content_block":{block}}}"#),
        ),
        event("ping", r#"{"type":"ping"}"#.to_string()),
    ];
    let deltas = pieces
        .iter()
        .map(|p| {
            event(
                "content_block_delta",
                format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"{delta_kind}","{delta_field}":{}}}}}"#,
                    q(p)
                ),
            )
        })
        .collect();
    let tail = vec![
        event(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#.to_string(),
        ),
        event(
            "message_delta",
            format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop_reason}","stop_sequence":null}},"usage":{{"output_tokens":{output_tokens}}}}}"#
            ),
        ),
        event("message_stop", r#"{"type":"message_stop"}"#.to_string()),
    ];
    Planned::sse(head, deltas, tail)
}

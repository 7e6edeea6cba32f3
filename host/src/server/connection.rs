//! One client connection, from its first byte to its close: its bytes scanned
//! ([`inspect`](super::inspect)), its requests admitted against the listener's
//! in-flight limit, closed when idle or at shutdown, and the way it ended counted.

use super::inspect::{Finding, Findings, Inspected};
use super::listener::Bounds;
use super::refusal::{self, reason};
use crate::metrics::Gauge;
use crate::openai::ResponseBody;
use bytes::Bytes;
use http::{Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, watch};

/// What a connection's requests and its idle watch share.
struct Activity {
    /// When the connection opened: times below count from here.
    opened: Instant,
    /// Requests in flight on it (until their response body ends).
    in_flight: AtomicU32,
    /// When it last had nothing in flight, in milliseconds since `opened`.
    idle_since_ms: AtomicU64,
    /// HTTP/1 requests received so far, to match them with the scanner's findings.
    http1_requests: AtomicU64,
    /// Whether the connection speaks HTTP/2 (known from its first request).
    http2: AtomicBool,
    /// Whether the gateway is shutting down: HTTP/1 answers then close the connection.
    draining: AtomicBool,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicU32::new(0),
            idle_since_ms: AtomicU64::new(0),
            http1_requests: AtomicU64::new(0),
            http2: AtomicBool::new(false),
            draining: AtomicBool::new(false),
        }
    }

    /// When the connection will have been idle for `timeout`, if nothing is in flight.
    fn idle_deadline(&self, timeout: Duration) -> Option<Instant> {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since_ms.load(Ordering::Acquire));
        Some(self.opened + since + timeout)
    }
}

/// Resolves once the connection has had nothing in flight for `timeout`.
async fn idle_for(activity: &Activity, timeout: Duration) {
    loop {
        match activity.idle_deadline(timeout) {
            Some(at) if at <= Instant::now() => return,
            Some(at) => tokio::time::sleep_until(at.into()).await,
            // Busy: look again later; a request ending resets the idle clock anyway.
            None => tokio::time::sleep(timeout).await,
        }
    }
}

/// A request's hold on the listener: its in-flight slot and its connection's
/// activity, both given back when its response body ends or is dropped.
pub(super) struct RequestGuard {
    /// None for a health check admitted past a full listener.
    _slot: Option<OwnedSemaphorePermit>,
    gauge: Gauge,
    activity: Arc<Activity>,
}

impl RequestGuard {
    fn new(slot: Option<OwnedSemaphorePermit>, gauge: Gauge, activity: Arc<Activity>) -> Self {
        gauge.inc();
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        RequestGuard {
            _slot: slot,
            gauge,
            activity,
        }
    }
}

impl Drop for RequestGuard {
    fn drop(&mut self) {
        self.gauge.dec();
        let now = self.activity.opened.elapsed().as_millis() as u64;
        self.activity.idle_since_ms.store(now, Ordering::Release);
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// A response body holding its request's [`RequestGuard`] until it ends, so a stream
/// counts as in flight for as long as it streams.
pub(super) struct GuardedBody {
    inner: ResponseBody,
    _guard: Option<RequestGuard>,
}

impl Body for GuardedBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Serves one accepted connection (already through TLS, if any) until it ends: at
/// the client's will, at an error, when idle, or at `shutdown` (gracefully: requests
/// in flight finish).
pub(super) async fn serve_connection<I, H, F>(
    io: I,
    bounds: Arc<Bounds>,
    handler: H,
    mut shutdown: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let findings = Arc::new(Findings::default());
    let io = Inspected::new(io, bounds.scan, findings.clone());
    let scanned = findings.clone();
    let service = {
        let (bounds, activity) = (bounds.clone(), activity.clone());
        service_fn(move |request: Request<Incoming>| {
            let admitted = admit(&bounds, &activity, &findings, &request)
                .map(|guard| (guard, request.version(), handler(request)));
            let listener = bounds.name;
            let metrics = bounds.metrics.clone();
            let activity = activity.clone();
            async move {
                Ok::<_, Infallible>(match admitted {
                    Ok((guard, version, response)) => {
                        let mut response = response.await;
                        if response.status() == StatusCode::REQUEST_TIMEOUT {
                            metrics.listener_refusal(listener, reason::BODY_TIMEOUT);
                            close_after(&mut response, version);
                        }
                        if activity.draining.load(Ordering::Acquire) {
                            close_after(&mut response, version);
                        }
                        response.map(|inner| GuardedBody {
                            inner,
                            _guard: Some(guard),
                        })
                    }
                    Err(refused) => refused.into_response().map(|inner| GuardedBody {
                        inner,
                        _guard: None,
                    }),
                })
            }
        })
    };
    let connection = bounds.builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let idle = idle_for(&activity, bounds.idle_timeout);
    tokio::pin!(idle);
    let mut state = State::Serving;
    let mut draining = *shutdown.borrow_and_update();
    let ended = loop {
        if draining && state == State::Serving {
            // Envoy's drain: an HTTP/2 client is sent a GOAWAY at once (it knows which
            // of its streams were taken and retries the others elsewhere). An HTTP/1
            // client cannot be told before it sends, and closing its idle connection
            // now would reset a request already on its way: so each of its next
            // answers closes the connection, and one left idle closes after
            // DRAIN_IDLE.
            activity.draining.store(true, Ordering::Release);
            if activity.http2.load(Ordering::Acquire) {
                connection.as_mut().graceful_shutdown();
                state = State::Closing;
            } else {
                idle.set(idle_for(&activity, DRAIN_IDLE.min(bounds.idle_timeout)));
                state = State::Draining;
            }
        }
        tokio::select! {
            ended = connection.as_mut() => break ended,
            // A closed channel means shutdown too.
            _ = shutdown.changed(), if state == State::Serving => draining = true,
            () = &mut idle, if state != State::Closing => {
                if state == State::Serving {
                    bounds.metrics.listener_refusal(bounds.name, reason::IDLE_TIMEOUT);
                    tracing::debug!(listener = bounds.name, "closing an idle connection");
                }
                state = State::Closing;
                connection.as_mut().graceful_shutdown();
            }
        }
    };
    if let Err(e) = ended {
        let why = if scanned.flooded() {
            Some(reason::HTTP2_FLOOD)
        } else {
            cause(&*e)
        };
        if let Some(why) = why {
            bounds.metrics.listener_refusal(bounds.name, why);
        }
        tracing::debug!(listener = bounds.name, reason = why.unwrap_or("other"), error = %e, "connection ended with an error");
    }
}

/// How long a connection with nothing in flight stays open once the gateway drains:
/// long enough that a client sending its next request at that moment is answered
/// (with `Connection: close`) instead of having its request cut off by the close.
const DRAIN_IDLE: Duration = Duration::from_secs(1);

/// Where a connection is in its life.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Serving,
    /// The gateway is shutting down (or handing its listeners over): HTTP/1
    /// answers say `Connection: close`, and the connection closes once idle for
    /// [`DRAIN_IDLE`].
    Draining,
    /// hyper has been told to close it once what is in flight is done.
    Closing,
}

/// Why the listener answers a request itself.
enum Refused {
    /// Its HTTP/1 head was ambiguous: 400, and the connection closes.
    Ambiguous(Finding),
    /// Over the in-flight limit: 503 with `Retry-After` (seconds).
    Overloaded(u64),
}

impl Refused {
    fn into_response(self) -> Response<ResponseBody> {
        match self {
            Refused::Ambiguous(finding) => {
                let mut response = refusal::ambiguous_framing(finding.message()).into_response();
                close_after(&mut response, Version::HTTP_11);
                response
            }
            Refused::Overloaded(secs) => refusal::overloaded(secs).into_response(),
        }
    }
}

/// Admits a request on the listener, or says why it is answered at once.
fn admit(
    bounds: &Bounds,
    activity: &Arc<Activity>,
    findings: &Findings,
    request: &Request<Incoming>,
) -> Result<RequestGuard, Refused> {
    if request.version() == Version::HTTP_2 {
        activity.http2.store(true, Ordering::Release);
    } else if request.version() <= Version::HTTP_11 {
        let n = activity.http1_requests.fetch_add(1, Ordering::Relaxed) + 1;
        if let Some(finding) = findings.ambiguous(n) {
            bounds
                .metrics
                .listener_refusal(bounds.name, reason::AMBIGUOUS_FRAMING);
            tracing::info!(
                listener = bounds.name,
                ?finding,
                "ambiguous request framing refused"
            );
            return Err(Refused::Ambiguous(finding));
        }
    }
    match bounds.in_flight.clone().try_acquire_owned() {
        Ok(slot) => Ok(RequestGuard::new(
            Some(slot),
            bounds.in_flight_gauge.clone(),
            activity.clone(),
        )),
        // Health checks are answered at once, from memory, and must not be shed: a
        // balancer would take every busy replica out of rotation at the same time.
        Err(_) if matches!(request.uri().path(), "/healthz" | "/readyz") => Ok(RequestGuard::new(
            None,
            bounds.in_flight_gauge.clone(),
            activity.clone(),
        )),
        Err(_) => {
            bounds
                .metrics
                .listener_refusal(bounds.name, reason::IN_FLIGHT_LIMIT);
            tracing::debug!(listener = bounds.name, "request shed: in-flight limit");
            Err(Refused::Overloaded(bounds.retry_after_secs))
        }
    }
}

/// Makes hyper close an HTTP/1 connection after `response`: the request's body may
/// still be on the wire, and what follows it cannot be trusted as a next request.
/// (HTTP/2 has no such header; its stream is reset instead.)
fn close_after(response: &mut Response<ResponseBody>, version: Version) {
    if version <= Version::HTTP_11 {
        response.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
}

/// The refusal reason of a connection's error, when it is one (a client that simply
/// went away is none).
fn cause(error: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    let mut source = Some(error);
    while let Some(e) = source {
        if let Some(e) = e.downcast_ref::<h2::Error>() {
            // A GOAWAY the gateway sent for the client's misbehaviour.
            return (e.is_go_away() && e.is_library()).then_some(reason::HTTP2_PROTOCOL);
        }
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            if e.is_timeout() {
                return Some(reason::HEADER_TIMEOUT);
            }
            if e.is_parse_too_large() {
                return Some(reason::HEADERS_TOO_LARGE);
            }
            if e.is_parse() {
                return Some(reason::MALFORMED);
            }
        }
        source = e.source();
    }
    None
}

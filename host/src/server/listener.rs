//! A listener's accept loop and the bounds it keeps: how many connections it holds
//! open and how many requests it has in flight (a connection or request over either
//! is refused at once, never queued), the HTTP/1 and HTTP/2 limits hyper enforces for
//! it, and a graceful shutdown that waits for what is in flight.

use super::connection::serve_connection;
use super::inspect::ScanLimits;
use super::refusal::{self, reason};
use super::tls::TlsAcceptor;
use crate::config::ServerSection;
use crate::metrics::{Gauge, Metrics};
use crate::openai::ResponseBody;
use bytes::Bytes;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};

/// Shed connections answered and closed in their own task, at most. Each holds a
/// socket for at most twice [`LINGER`]; a client that sends its request, reads the
/// answer and closes ends it sooner.
const LINGERING_MAX: usize = 1024;

/// How long a shed connection may wait for its request, and then for the client to
/// close after the answer.
const LINGER: Duration = Duration::from_secs(1);

/// What one listener enforces, shared by its connections.
pub(crate) struct Bounds {
    /// The listener's metrics label (`api`, `admin`).
    pub name: &'static str,
    pub metrics: Arc<Metrics>,
    /// hyper's connection builder, with the HTTP/1 and HTTP/2 limits set.
    pub builder: auto::Builder<TokioExecutor>,
    pub scan: ScanLimits,
    pub idle_timeout: Duration,
    pub retry_after_secs: u64,
    /// Slots for requests in flight.
    pub in_flight: Arc<Semaphore>,
    pub in_flight_gauge: Gauge,
    /// Slots for open connections.
    connections: Arc<Semaphore>,
    max_connections: u32,
    open_gauge: Gauge,
    /// What an over-limit connection is told.
    shed_answer: Bytes,
    /// Slots for shed connections still closing.
    lingering: Arc<Semaphore>,
}

impl Bounds {
    /// The bounds `server` sets, for the listener named `name`; each listener has its
    /// own slots, so a flood on one (the API) cannot lock operators out of the other.
    pub(crate) fn new(name: &'static str, server: &ServerSection, metrics: Arc<Metrics>) -> Self {
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            .header_read_timeout(server.header_read_timeout())
            .max_headers(server.max_header_count)
            .max_buf_size(server.max_header_bytes);
        let keep_alive = (server.http2_keep_alive_interval_secs > 0)
            .then(|| Duration::from_secs(server.http2_keep_alive_interval_secs));
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(server.http2_max_concurrent_streams)
            .max_pending_accept_reset_streams(server.http2_max_pending_accept_reset_streams)
            .max_local_error_reset_streams(server.http2_max_local_error_reset_streams)
            .max_header_list_size(u32::try_from(server.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(keep_alive)
            .keep_alive_timeout(Duration::from_secs(server.http2_keep_alive_timeout_secs));
        let (open_gauge, in_flight_gauge) = metrics.listener_gauges(name);
        // Validation keeps both at most u32::MAX.
        let max_connections = u32::try_from(server.max_connections).unwrap_or(u32::MAX);
        Bounds {
            name,
            metrics,
            builder,
            scan: ScanLimits {
                max_head: server.max_header_bytes,
                control_frames_per_sec: server.http2_max_control_frames_per_sec,
            },
            idle_timeout: server.idle_timeout(),
            retry_after_secs: server.overload_retry_after_secs,
            in_flight: Arc::new(Semaphore::new(server.max_in_flight)),
            in_flight_gauge,
            connections: Arc::new(Semaphore::new(max_connections as usize)),
            max_connections,
            open_gauge,
            shed_answer: refusal::shed_connection(server.overload_retry_after_secs),
            lingering: Arc::new(Semaphore::new(LINGERING_MAX)),
        }
    }
}

/// An open connection's slot, counted in the gauge while it is held.
struct ConnectionSlot {
    _permit: OwnedSemaphorePermit,
    gauge: Gauge,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Accepts connections on `listener` (through `tls` when given) and answers each
/// request with `handler` until `shutdown` resolves; then waits up to `grace` for
/// in-flight requests. Shared by the client API and the admin API, each with its own
/// [`Bounds`].
pub(crate) async fn serve_connections<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: H,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
    bounds: Bounds,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let bounds = Arc::new(bounds);
    let (stop, stopping) = watch::channel(false);
    let tls = tls.map(Arc::new);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = bounds.connections.clone().try_acquire_owned() else {
                    shed(&bounds, stream, tls.is_some());
                    continue;
                };
                bounds.open_gauge.inc();
                let slot = ConnectionSlot { _permit: permit, gauge: bounds.open_gauge.clone() };
                let _ = stream.set_nodelay(true);
                let (bounds, handler, stopping) = (bounds.clone(), handler.clone(), stopping.clone());
                let tls = tls.clone();
                // The handshake runs in the connection's task: a slow or silent client
                // must not hold up accepting the next one.
                tokio::spawn(async move {
                    let _slot = slot;
                    match tls {
                        None => serve_connection(stream, bounds, handler, stopping).await,
                        Some(tls) => match tls.handshake(stream).await {
                            // ALPN told the client which preface to send; hyper reads it.
                            Ok(stream) => serve_connection(stream, bounds, handler, stopping).await,
                            Err(e) => tracing::debug!(%peer, error = %e, "TLS connection not established"),
                        },
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!(
        listener = bounds.name,
        "shutting down: waiting for in-flight requests"
    );
    let _ = stop.send(true);
    // Every connection task holds a slot until it ends: all slots back, all ended.
    let drained = bounds.connections.acquire_many(bounds.max_connections);
    if tokio::time::timeout(grace, drained).await.is_err() {
        tracing::warn!(?grace, "grace period over; closing remaining connections");
    }
    Ok(())
}

/// Refuses a connection over the limit with a bare 503, without parsing the request,
/// then closes the socket; nothing is queued. Over TLS nothing can be said before a
/// handshake the gateway will not spend, so it is closed at once.
fn shed(bounds: &Bounds, stream: TcpStream, tls: bool) {
    bounds
        .metrics
        .listener_refusal(bounds.name, reason::CONNECTION_LIMIT);
    tracing::debug!(listener = bounds.name, "connection shed: connection limit");
    if tls {
        return;
    }
    let answer = bounds.shed_answer.clone();
    let Ok(lingering) = bounds.lingering.clone().try_acquire_owned() else {
        // Too many closing already: answer and close now. Reading what has arrived
        // first lets the close be orderly (a socket closed with unread data resets).
        drain(&stream);
        let _ = stream.try_write(&answer);
        return;
    };
    // An HTTP/1 client that receives an answer before it has sent its request may take
    // it for a broken connection, and one whose request is left unread gets a reset
    // that can discard the answer: so wait (briefly) for the request, answer, close
    // the sending side, and read what else comes until the client closes.
    tokio::spawn(async move {
        let _lingering = lingering;
        let mut stream = stream;
        let _ = tokio::time::timeout(LINGER, stream.readable()).await;
        drain(&stream);
        let respond = async {
            stream.write_all(&answer).await?;
            stream.shutdown().await?;
            let mut sink = [0u8; 4096];
            while stream.read(&mut sink).await? > 0 {}
            std::io::Result::Ok(())
        };
        let _ = tokio::time::timeout(LINGER, respond).await;
    });
}

/// Reads, without waiting, whatever the client has sent so far.
fn drain(stream: &TcpStream) {
    let mut sink = [0u8; 4096];
    while matches!(stream.try_read(&mut sink), Ok(n) if n > 0) {}
}

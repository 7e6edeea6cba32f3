//! The inbound side: accept connections (HTTP/1.1 and HTTP/2, in clear or over TLS),
//! route requests to the API, and shut down gracefully, letting in-flight requests
//! finish.

mod routes;
pub mod tls;

pub(crate) use routes::{RouteTable, read_body};

use crate::gateway::Gateway;
use crate::openai::ResponseBody;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tls::TlsAcceptor;
use tokio::net::TcpListener;

/// Serves `gateway` on `listener` in clear until `shutdown` resolves, then stops
/// accepting and waits up to `grace` for in-flight requests (streams included) to
/// finish.
pub async fn serve(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let handler = move |request| {
        let gateway = gateway.clone();
        async move { routes::handle(&gateway, request).await }
    };
    serve_connections(listener, None, handler, shutdown, grace).await
}

/// [`serve`], HTTPS only: every connection goes through `tls` first. The watch on the
/// certificate files lasts as long as this does.
pub async fn serve_tls(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    tls: TlsAcceptor,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let handler = move |request| {
        let gateway = gateway.clone();
        async move { routes::handle(&gateway, request).await }
    };
    serve_connections(listener, Some(tls), handler, shutdown, grace).await
}

/// Accepts connections on `listener` (through `tls` when given) and answers each
/// request with `handler` until `shutdown` resolves; then waits up to `grace` for
/// in-flight requests. Shared by the client API and the admin API.
pub(crate) async fn serve_connections<H, F>(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    handler: H,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()>
where
    H: Fn(Request<Incoming>) -> F + Clone + Send + 'static,
    F: Future<Output = Response<ResponseBody>> + Send + 'static,
{
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
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
                let _ = stream.set_nodelay(true);
                let handler = handler.clone();
                let service = service_fn(move |request| {
                    let response = handler(request);
                    async move { Ok::<_, std::convert::Infallible>(response.await) }
                });
                let Some(tls) = &tls else {
                    let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                    let watched = graceful.watch(connection);
                    tokio::spawn(async move {
                        if let Err(e) = watched.await {
                            tracing::debug!(error = %e, "connection ended with an error");
                        }
                    });
                    continue;
                };
                // The handshake runs in the connection's task: a slow or silent client
                // must not hold up accepting the next one. Watching starts now, so a
                // shutdown during the handshake still closes the connection after it.
                let handshake = tls.handshake(stream);
                let watcher = graceful.watcher();
                let builder = builder.clone();
                tokio::spawn(async move {
                    let stream = match handshake.await {
                        Ok(stream) => stream,
                        Err(e) => {
                            tracing::debug!(%peer, error = %e, "TLS connection not established");
                            return;
                        }
                    };
                    // ALPN told the client which preface to send; the builder reads it.
                    let connection = builder.serve_connection(TokioIo::new(stream), service);
                    if let Err(e) = watcher.watch(connection).await {
                        tracing::debug!(error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => break,
        }
    }
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(?grace, "grace period over; closing remaining connections");
    }
    Ok(())
}

/// Listens for SIGTERM and SIGINT (Ctrl-C) from now on: the returned future resolves
/// on the first. The handlers are installed before this returns, so a signal sent the
/// moment the gateway says it is listening stops it gracefully instead of killing it.
pub fn shutdown_signal() -> std::io::Result<impl Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        Ok(async move {
            tokio::select! {
                _ = term.recv() => {}
                _ = interrupt.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

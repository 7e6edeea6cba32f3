//! The inbound side: accept connections (HTTP/1.1 and HTTP/2, in clear or over TLS),
//! route requests to the API, and shut down gracefully, letting in-flight requests
//! finish.

mod connection;
mod inspect;
mod listener;
mod refusal;
mod routes;
pub mod tls;

pub(crate) use listener::{Bounds, serve_connections};
pub(crate) use routes::{BodyLimit, RouteTable, read_body};

use crate::gateway::Gateway;
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
    serve_api(gateway, listener, None, shutdown, grace).await
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
    serve_api(gateway, listener, Some(tls), shutdown, grace).await
}

async fn serve_api(
    gateway: Arc<Gateway>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) -> std::io::Result<()> {
    let bounds = Bounds::new("api", &gateway.config.server, gateway.metrics.clone());
    warn_if_few_files(gateway.config.server.max_connections);
    let handler = move |request| {
        let gateway = gateway.clone();
        async move { routes::handle(&gateway, request).await }
    };
    serve_connections(listener, tls, handler, shutdown, grace, bounds).await
}

/// Warns when the process may open fewer files than `server.max_connections`: past
/// the descriptor limit, accepting fails (and is retried) instead of shedding with a
/// clear 503.
fn warn_if_few_files(max_connections: usize) {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit only writes the struct it is given.
        #[allow(unsafe_code)]
        let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
        if ok && (limit.rlim_cur as u128) < max_connections as u128 + 64 {
            tracing::warn!(
                open_files = limit.rlim_cur,
                max_connections,
                "the open-files limit is below server.max_connections; raise it (ulimit -n) or lower the setting"
            );
        }
    }
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

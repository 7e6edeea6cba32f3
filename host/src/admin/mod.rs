//! The admin API, on its own listener: policy uploads, activation, rollback,
//! candidates (shadow, canary), for operators and for teams' deploy tokens.

mod auth;
mod routes;

pub use auth::{AdminTokens, Scope};
pub use routes::MAX_UPLOAD_BYTES;

use crate::gateway::Gateway;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// What the admin API serves.
pub struct Admin {
    /// The gateway it manages.
    pub gateway: Arc<Gateway>,
    /// Who may call it.
    pub tokens: AdminTokens,
}

impl Admin {
    /// The admin API for `gateway`, with the tokens of its config.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        let tokens = AdminTokens::new(&gateway.config.admin.tokens);
        Admin { gateway, tokens }
    }
}

/// Serves the admin API on `listener` until `shutdown` resolves. Admin calls are
/// short, so shutdown does not wait for them.
pub async fn serve(
    admin: Arc<Admin>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let builder = auto::Builder::new(TokioExecutor::new());
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _peer)) = accepted else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let admin = admin.clone();
                let service = service_fn(move |request| {
                    let admin = admin.clone();
                    async move { Ok::<_, std::convert::Infallible>(routes::handle(&admin, request).await) }
                });
                let connection = builder.serve_connection(TokioIo::new(stream), service).into_owned();
                tokio::spawn(async move {
                    if let Err(e) = connection.await {
                        tracing::debug!(error = %e, "admin connection ended with an error");
                    }
                });
            }
            () = &mut shutdown => return Ok(()),
        }
    }
}

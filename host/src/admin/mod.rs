//! The admin API, on its own listener: policy uploads, activation, rollback,
//! candidates (shadow, canary), for operators and for teams' deploy tokens; and the
//! dashboard, the same in a browser.

mod auth;
mod dashboard;
mod reports;
pub(crate) mod routes;

pub use auth::{AdminTokens, Scope};
pub use routes::MAX_UPLOAD_BYTES;

use crate::gateway::Gateway;
use crate::server::tls::TlsAcceptor;
use crate::server::{Bounds, serve_connections};
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
    /// The dashboard's signed-in browsers.
    pub sessions: dashboard::Sessions,
}

impl Admin {
    /// The admin API for `gateway`, with the tokens of its config.
    pub fn new(gateway: Arc<Gateway>) -> Self {
        let tokens = AdminTokens::new(&gateway.config.admin.tokens);
        Admin {
            gateway,
            tokens,
            sessions: dashboard::Sessions::default(),
        }
    }
}

/// Serves the admin API on `listener` (over TLS when `tls` is given) until
/// `shutdown` resolves. Admin calls are short; shutdown waits a few seconds at most.
pub async fn serve(
    admin: Arc<Admin>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let gateway = &admin.gateway;
    let bounds = Bounds::new("admin", &gateway.config.server, gateway.metrics.clone());
    let handler = move |request| {
        let admin = admin.clone();
        async move { routes::handle(&admin, request).await }
    };
    serve_connections(
        listener,
        tls,
        handler,
        shutdown,
        Duration::from_secs(5),
        bounds,
    )
    .await
}

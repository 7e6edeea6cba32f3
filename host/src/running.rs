//! A running gateway: the one way to start one from a config and listeners, used by
//! `signalbox serve` and by the end-to-end tests alike, so what the tests run is what
//! ships (the API server, the admin API, the watched policy directory, the periodic
//! state snapshots), and the one way to stop it without losing learned state or usage.

use crate::config::Config;
use crate::gateway::Gateway;
use crate::server::tls::TlsAcceptor;
use anyhow::Context;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpSocket};
use tokio::task::JoinHandle;

/// The sockets a gateway serves on, bound by the caller (so a test can bind port 0).
pub struct Listeners {
    /// The client API.
    pub api: TcpListener,
    /// The admin API, when the config has an admin listener.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds the addresses the config names (`server.listen`, `admin.listen`), each
    /// with the configured backlog.
    pub async fn bind(config: &Config) -> anyhow::Result<Listeners> {
        let backlog = config.server.listen_backlog;
        let listen = &config.server.listen;
        let api = bind(listen, backlog).with_context(|| format!("cannot listen on {listen}"))?;
        let admin = match &config.admin.listen {
            Some(listen) => Some(
                bind(listen, backlog)
                    .with_context(|| format!("cannot listen on {listen} (admin)"))?,
            ),
            None => None,
        };
        Ok(Listeners { api, admin })
    }
}

/// A listening socket on `listen` (an address or host name, and a port) with a queue
/// of `backlog` connections: tokio's own `bind` queues 1,024, fewer than a burst of
/// connects a gateway should shed rather than leave to the clients' SYN retries.
fn bind(listen: &str, backlog: u32) -> anyhow::Result<TcpListener> {
    let mut last = None;
    for addr in listen.to_socket_addrs()? {
        match bind_one(addr, backlog) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.map_or_else(|| anyhow::anyhow!("no address found"), Into::into))
}

fn bind_one(addr: SocketAddr, backlog: u32) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // As the standard library's bind does: a restarted gateway can bind at once while
    // its old connections are in TIME_WAIT.
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(backlog)
}

/// A gateway serving until [`Running::stop`] (or until dropped, which stops it too).
pub struct Running {
    /// Everything the request path reads.
    pub gateway: Arc<Gateway>,
    /// Where the client API listens.
    pub addr: SocketAddr,
    /// Where the admin API listens, if it does.
    pub admin_addr: Option<SocketAddr>,
    /// Whether the client API speaks HTTPS.
    pub tls: bool,
    /// Whether the admin API speaks HTTPS.
    pub admin_tls: bool,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
    admin: Option<JoinHandle<std::io::Result<()>>>,
    snapshots: Option<JoinHandle<()>>,
    /// With `[cluster]`: the heartbeat, the policy, state and feedback syncs.
    fleet: Vec<JoinHandle<()>>,
    _watcher: Option<crate::deploy::watch::DirWatcher>,
}

/// Starts a gateway from `config` on `listeners`: TLS (whose certificate files are
/// watched from now on), every tenant's policy, the admin API, the policy directory
/// watch and the state snapshots. Must run inside a tokio runtime.
pub async fn start(config: Config, listeners: Listeners) -> anyhow::Result<Running> {
    // Before the gateway: a bad certificate stops start-up before anything else
    // starts, and the watch on the certificate files starts with it. The error names
    // the config key; the context names the file.
    let tls = config
        .server
        .tls
        .as_ref()
        .map(TlsAcceptor::start)
        .transpose()
        .with_context(|| config.source.clone())?;
    let admin_tls = match (&listeners.admin, &config.admin.tls) {
        (Some(_), Some(section)) => {
            Some(TlsAcceptor::start(section).with_context(|| config.source.clone())?)
        }
        _ => None,
    };
    let grace = Duration::from_secs(config.server.shutdown_grace_secs);
    let gateway = Arc::new(Gateway::build(config)?);

    let addr = listeners.api.local_addr()?;
    let admin_addr = match &listeners.admin {
        Some(listener) => Some(listener.local_addr()?),
        None => None,
    };
    let (is_tls, is_admin_tls) = (tls.is_some(), admin_tls.is_some());
    let admin = listeners.admin.map(|listener| {
        let api = Arc::new(crate::admin::Admin::new(gateway.clone()));
        tokio::spawn(crate::admin::serve(
            api,
            listener,
            admin_tls,
            std::future::pending(),
        ))
    });
    let watcher = match &gateway.config.admin.policies_dir {
        Some(dir) => Some(
            crate::deploy::watch::spawn(gateway.clone(), Path::new(dir))
                .with_context(|| format!("cannot watch the policies directory {dir}"))?,
        ),
        None => None,
    };
    let snapshots = crate::deploy::spawn_state_snapshots(
        &gateway,
        Duration::from_secs(gateway.config.admin.state_snapshot_secs.max(1)),
    );
    let fleet = match gateway.cluster.clone() {
        Some(cluster) => {
            let live: Arc<dyn crate::deploy::LiveTenants> = gateway.clone();
            vec![
                crate::cluster::spawn_heartbeat(cluster.clone()),
                crate::cluster::spawn_policy_sync(cluster.clone(), live.clone()),
                crate::cluster::spawn_state_sync(cluster.clone(), live.clone()),
                crate::cluster::spawn_stats_publish(cluster.clone(), live),
                crate::feedback::spawn_forwarded(cluster, gateway.clone()),
            ]
        }
        None => Vec::new(),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async {
        let _ = stopped.await;
    };
    let server = match tls {
        Some(tls) => tokio::spawn(crate::server::serve_tls(
            gateway.clone(),
            listeners.api,
            tls,
            shutdown,
            grace,
        )),
        None => tokio::spawn(crate::server::serve(
            gateway.clone(),
            listeners.api,
            shutdown,
            grace,
        )),
    };
    Ok(Running {
        gateway,
        addr,
        admin_addr,
        tls: is_tls,
        admin_tls: is_admin_tls,
        stop: Some(stop),
        server: Some(server),
        admin,
        snapshots: Some(snapshots),
        fleet,
        _watcher: watcher,
    })
}

/// How long a stopping replica waits for its spend to reach the shared store.
const CLUSTER_DRAIN: Duration = Duration::from_secs(5);

impl Running {
    /// Stops accepting, waits for in-flight requests (up to the configured grace),
    /// then saves what must outlive the process.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.context("the server task failed")??;
        }
        if let Some(cluster) = &self.gateway.cluster {
            cluster.drain(CLUSTER_DRAIN).await;
        }
        self.finish();
        Ok(())
    }

    /// What every stop does last: the admin API and the snapshot task end, learned
    /// state written since the last snapshot reaches the disk, and so does every
    /// usage row recorded.
    fn finish(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(admin) = self.admin.take() {
            admin.abort();
        }
        if let Some(snapshots) = self.snapshots.take() {
            snapshots.abort();
        }
        for task in self.fleet.drain(..) {
            task.abort();
        }
        crate::deploy::save_states(&*self.gateway);
        if let Some(ledger) = &self.gateway.ledger
            && !ledger.flush(Duration::from_secs(10))
        {
            tracing::error!("usage ledger: rows still unwritten at exit");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Stopped without waiting (a test ending, an error path): the server is told
        // to stop and everything is saved all the same.
        if self.server.is_some() {
            self.finish();
        }
    }
}

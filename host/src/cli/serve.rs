//! `signalbox serve`: run the gateway.

use crate::config::Config;
use crate::gateway::Gateway;
use crate::server::tls::TlsAcceptor;
use anyhow::Context;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

/// The demo tenant's key in the embedded default config. The embedded default listens
/// on loopback only and serves simulated models, so a fixed, published key is fine.
pub const DEMO_KEY: &str = "sb-demo-0123456789abcdef";

pub fn run(
    config: Option<&Path>,
    listen: Option<String>,
    logging: crate::telemetry::Logging,
) -> anyhow::Result<()> {
    let mut config = match config {
        Some(path) => Config::load(path)?,
        None => Config::embedded()?,
    };
    if let Some(listen) = listen {
        config.server.listen = listen;
    }
    let embedded = config.source == crate::config::EMBEDDED_NAME;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Logging starts here, not before the config is read: span export depends on
        // it, and its batch task runs on this runtime. A config error is reported by
        // `main` all the same.
        let telemetry = crate::telemetry::init(logging, Some(&config.telemetry))?;
        let grace = Duration::from_secs(config.server.shutdown_grace_secs);
        let listen = config.server.listen.clone();
        // Before the gateway: the watch on the certificate files starts with it, and the
        // files were already checked when the config was read.
        let tls = config
            .server
            .tls
            .as_ref()
            .map(TlsAcceptor::start)
            .transpose()
            .with_context(|| format!("{}: server.tls", config.source))?;
        let gateway = Arc::new(Gateway::build(config)?);
        release_startup_memory();
        let listener = tokio::net::TcpListener::bind(&listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let addr = listener.local_addr()?;
        let scheme = if tls.is_some() { "https" } else { "http" };
        // Tests and scripts read this line to learn the port when listening on :0.
        println!("signalbox listening on {scheme}://{addr}");
        if embedded {
            println!("embedded default config: demo tenant key {DEMO_KEY}");
            println!(
                "try: curl -s http://{addr}/v1/chat/completions -H 'authorization: Bearer {DEMO_KEY}' -H 'content-type: application/json' -d '{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
            );
        }
        let admin = match &gateway.config.admin.listen {
            Some(admin_listen) => {
                let admin_listener = tokio::net::TcpListener::bind(admin_listen)
                    .await
                    .with_context(|| format!("cannot listen on {admin_listen} (admin)"))?;
                let admin_tls = match &gateway.config.admin.tls {
                    Some(section) => Some(crate::server::tls::TlsAcceptor::start(section)?),
                    None => None,
                };
                let scheme = if admin_tls.is_some() { "https" } else { "http" };
                println!(
                    "signalbox admin API on {scheme}://{}",
                    admin_listener.local_addr()?
                );
                let admin = Arc::new(crate::admin::Admin::new(gateway.clone()));
                Some(tokio::spawn(crate::admin::serve(
                    admin,
                    admin_listener,
                    admin_tls,
                    std::future::pending(),
                )))
            }
            None => None,
        };
        let _watcher = match &gateway.config.admin.policies_dir {
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
        let shutdown = crate::server::shutdown_signal();
        let kept = gateway.clone();
        match tls {
            Some(tls) => crate::server::serve_tls(gateway, listener, tls, shutdown, grace).await?,
            None => crate::server::serve(gateway, listener, shutdown, grace).await?,
        }
        if let Some(admin) = admin {
            admin.abort();
        }
        snapshots.abort();
        // Learned state written since the last periodic snapshot is not lost, and
        // every usage row recorded reaches the ledger.
        crate::deploy::save_states(&*kept);
        if let Some(ledger) = &kept.ledger
            && !ledger.flush(Duration::from_secs(10))
        {
            tracing::error!("usage ledger: rows still unwritten at exit");
        }
        // Last: the spans of the requests drained above are sent too.
        telemetry.shutdown().await;
        println!("signalbox stopped");
        Ok(())
    })
}

/// Compiling the tenants' policies leaves megabytes of freed heap in the allocator's
/// arenas (and glibc keeps it); give it back to the system before serving.
fn release_startup_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only releases free pages of the allocator's own arenas; it
    // touches no live allocation.
    #[allow(unsafe_code)]
    unsafe {
        libc::malloc_trim(0);
    }
}

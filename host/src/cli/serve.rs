//! `signalbox serve`: run the gateway.

use crate::config::Config;
use anyhow::Context;
use std::path::Path;

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
        let listeners = crate::running::Listeners::bind(&config).await?;
        let running = crate::running::start(config, listeners).await?;
        release_startup_memory();
        let shutdown = crate::server::shutdown_signal().context("cannot listen for signals")?;
        let addr = running.addr;
        let scheme = if running.tls { "https" } else { "http" };
        // Tests and scripts read this line to learn the port when listening on :0.
        println!("signalbox listening on {scheme}://{addr}");
        if embedded {
            println!("embedded default config: demo tenant key {DEMO_KEY}");
            println!(
                "try: curl -s http://{addr}/v1/chat/completions -H 'authorization: Bearer {DEMO_KEY}' -H 'content-type: application/json' -d '{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
            );
        }
        if let Some(admin) = running.admin_addr {
            let scheme = if running.admin_tls { "https" } else { "http" };
            println!("signalbox admin API on {scheme}://{admin}");
        }
        shutdown.await;
        running.stop().await?;
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

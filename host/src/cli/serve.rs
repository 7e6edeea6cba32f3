//! `signalbox serve`: run the gateway.

use crate::config::Config;
use anyhow::Context;
use std::path::{Path, PathBuf};

/// The demo tenant's key in the embedded default config. The embedded default listens
/// on loopback only and serves simulated models, so a fixed, published key is fine.
pub const DEMO_KEY: &str = "sb-demo-0123456789abcdef";

pub fn run(
    config: Option<&Path>,
    listen: Option<String>,
    take_over: bool,
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
    // No config: the quick start, with the admin API, a ledger and a decision log.
    let quick_start = embedded
        .then(|| super::quickstart::QuickStart::prepare(&mut config))
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Logging starts here, not before the config is read: span export depends on
        // it, and its batch task runs on this runtime. A config error is reported by
        // `main` all the same.
        let telemetry = crate::telemetry::init(logging, Some(&config.telemetry))?;
        let handover = config.server.handover_socket.clone().map(PathBuf::from);
        let (listeners, predecessor) = if take_over {
            let path = handover.as_deref().context(
                "--take-over needs server.handover_socket: the running gateway offers its listeners there",
            )?;
            let (listeners, predecessor) = take_over_from(path, &config).await?;
            (listeners, Some(predecessor))
        } else {
            (crate::running::Listeners::bind(&config).await?, None)
        };
        let sockets = listening_sockets(handover.is_some(), &listeners)?;
        let running = crate::running::start(config, listeners).await?;
        release_startup_memory();
        let shutdown = crate::server::shutdown_signal().context("cannot listen for signals")?;
        if let Some(predecessor) = predecessor {
            let pid = predecessor.pid;
            let stopped = predecessor.serving().await?;
            println!("signalbox took over the listeners of process {pid}; it drains and stops");
            tokio::spawn(async move {
                stopped.await;
                tracing::info!(predecessor = pid, "the previous gateway has stopped");
            });
        }
        let mut offer = offer(handover.as_deref(), sockets, take_over)?;
        let addr = running.addr;
        let scheme = if running.tls { "https" } else { "http" };
        // Tests and scripts read this line to learn the port when listening on :0.
        println!("signalbox listening on {scheme}://{addr}");
        if let Some(quick_start) = &quick_start {
            quick_start.announce(addr, running.admin_addr);
        }
        if let Some(admin) = running.admin_addr {
            let scheme = if running.admin_tls { "https" } else { "http" };
            println!("signalbox admin API on {scheme}://{admin}");
        }
        let successor = tokio::select! {
            () = shutdown => None,
            successor = replaced(&mut offer) => Some(successor),
        };
        if let Some(successor) = &successor {
            println!("signalbox replaced by process {}: draining", successor.pid);
        }
        drop(offer);
        running.stop().await?;
        // Last: the spans of the requests drained above are sent too.
        telemetry.shutdown().await;
        // Only now does the successor learn this process has stopped.
        drop(successor);
        // The ledger and decision log are flushed: the quick start's state can go.
        drop(quick_start);
        println!("signalbox stopped");
        Ok(())
    })
}

// The hand-over of listening sockets (`crate::handover`) is Unix only: elsewhere a
// config asking for it is refused at start.
#[cfg(unix)]
use crate::handover::{Offer, Predecessor, Sockets, Successor};

#[cfg(unix)]
async fn take_over_from(
    path: &Path,
    config: &Config,
) -> anyhow::Result<(crate::running::Listeners, Predecessor)> {
    crate::handover::take_over(path, config).await
}

/// Duplicates of the listening sockets, kept to offer them to a successor.
#[cfg(unix)]
fn listening_sockets(
    offered: bool,
    listeners: &crate::running::Listeners,
) -> anyhow::Result<Option<Sockets>> {
    Ok(offered.then(|| Sockets::of(listeners)).transpose()?)
}

#[cfg(unix)]
fn offer(
    path: Option<&Path>,
    sockets: Option<Sockets>,
    replacing: bool,
) -> anyhow::Result<Option<Offer>> {
    match (path, sockets) {
        (Some(path), Some(sockets)) => Ok(Some(Offer::start(path, sockets, replacing)?)),
        _ => Ok(None),
    }
}

/// Resolves once a successor serves on the offered sockets; never without an offer.
#[cfg(unix)]
async fn replaced(offer: &mut Option<Offer>) -> Successor {
    match offer {
        Some(offer) => offer.replaced().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
mod no_handover {
    //! Stand-ins where sockets cannot be handed over: asking for it is an error.
    use super::*;
    pub struct Predecessor {
        pub pid: u32,
    }
    impl Predecessor {
        pub async fn serving(self) -> anyhow::Result<std::future::Ready<()>> {
            Ok(std::future::ready(()))
        }
    }
    pub struct Sockets;
    pub struct Offer;
    pub struct Successor {
        pub pid: u32,
    }
    pub async fn take_over_from(
        _: &Path,
        _: &Config,
    ) -> anyhow::Result<(crate::running::Listeners, Predecessor)> {
        anyhow::bail!("--take-over is available on Unix only")
    }
    pub fn listening_sockets(
        offered: bool,
        _: &crate::running::Listeners,
    ) -> anyhow::Result<Option<Sockets>> {
        anyhow::ensure!(!offered, "server.handover_socket is available on Unix only");
        Ok(None)
    }
    pub fn offer(_: Option<&Path>, _: Option<Sockets>, _: bool) -> anyhow::Result<Option<Offer>> {
        Ok(None)
    }
    pub async fn replaced(_: &mut Option<Offer>) -> Successor {
        std::future::pending().await
    }
}
#[cfg(not(unix))]
use no_handover::*;

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

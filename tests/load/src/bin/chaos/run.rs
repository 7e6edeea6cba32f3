//! What the parts of a run share: its files and secrets, the fake upstreams, the
//! gateway process, the clients' records, and the tally of what happened.

use crate::admin::Admin;
use crate::gateway::{GatewayProcess, Stopped};
use crate::load::Shared;
use crate::setup::{Authority, Layout, Secrets};
use crate::upstream::Upstream;
use anyhow::Context;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub struct Run {
    pub layout: Layout,
    pub secrets: Secrets,
    pub authority: Authority,
    pub upstreams: Vec<Arc<Upstream>>,
    pub admin: Admin,
    pub shared: Arc<Shared>,
    pub api_port: u16,
    pub binary: PathBuf,
    pub policies: PathBuf,
    pub gateway: tokio::sync::Mutex<Option<GatewayProcess>>,
    /// Every stopped gateway process, in order.
    pub stopped: Mutex<Vec<Stopped>>,
    counts: Mutex<BTreeMap<&'static str, u64>>,
    problems: Mutex<Vec<String>>,
}

impl Run {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        layout: Layout,
        secrets: Secrets,
        authority: Authority,
        upstreams: Vec<Arc<Upstream>>,
        admin: Admin,
        shared: Arc<Shared>,
        api_port: u16,
        (binary, policies): (PathBuf, PathBuf),
    ) -> Run {
        Run {
            layout,
            secrets,
            authority,
            upstreams,
            admin,
            shared,
            api_port,
            binary,
            policies,
            gateway: tokio::sync::Mutex::new(None),
            stopped: Mutex::new(Vec::new()),
            counts: Mutex::new(BTreeMap::new()),
            problems: Mutex::new(Vec::new()),
        }
    }

    /// Starts the gateway (the `generation`-th time).
    pub async fn start_gateway(&self, generation: u32) -> anyhow::Result<()> {
        let process = GatewayProcess::start(
            &self.binary,
            &self.layout.config(),
            &self.layout.logs(),
            generation,
            &self.secrets.provider_keys,
        )
        .await?;
        *self.gateway.lock().await = Some(process);
        Ok(())
    }

    /// Stops the gateway with SIGTERM and waits for it to exit.
    pub async fn stop_gateway(&self) -> anyhow::Result<u32> {
        let process = self
            .gateway
            .lock()
            .await
            .take()
            .context("no gateway running")?;
        let generation = process.generation;
        let stopped = process.stop().await?;
        if !stopped.exit_ok {
            self.problem(format!(
                "gateway {generation} did not exit cleanly after SIGTERM"
            ));
        }
        if let Ok(mut all) = self.stopped.lock() {
            all.push(stopped);
        }
        Ok(generation)
    }

    /// SIGTERM, then a new process on the same state directory.
    pub async fn restart(&self) -> anyhow::Result<()> {
        let generation = self.stop_gateway().await?;
        self.start_gateway(generation + 1).await
    }

    /// A policy component built by `cargo build-policies`.
    pub fn policy_wasm(&self, crate_name: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.policies.join(format!("{crate_name}.wasm"));
        std::fs::read(&path).with_context(|| {
            format!(
                "{}: build the policy components first (`cargo build-policies`)",
                path.display()
            )
        })
    }

    /// The leaf certificate a new TLS connection to the API listener is served.
    pub async fn served_certificate(&self) -> anyhow::Result<Vec<u8>> {
        let config = self.authority.client_config(&[b"http/1.1"])?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.api_port)).await?;
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1")?;
        let tls = tokio::time::timeout(Duration::from_secs(5), connector.connect(name, tcp))
            .await
            .context("TLS handshake timed out")??;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .context("no certificate")?;
        Ok(leaf.to_vec())
    }

    /// Counts something that happened.
    pub fn count(&self, what: &'static str) {
        if let Ok(mut counts) = self.counts.lock() {
            *counts.entry(what).or_default() += 1;
        }
    }

    pub fn counts(&self) -> BTreeMap<&'static str, u64> {
        self.counts.lock().map(|c| c.clone()).unwrap_or_default()
    }

    /// Something that makes the soak fail.
    pub fn problem(&self, what: String) {
        eprintln!("chaos: PROBLEM: {what}");
        if let Ok(mut problems) = self.problems.lock() {
            problems.push(what);
        }
    }

    pub fn problems(&self) -> Vec<String> {
        self.problems.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Sleeps `d`, or less if the run is told to stop meanwhile.
    pub async fn sleep_unless_stopped(&self, d: Duration) {
        let until = tokio::time::Instant::now() + d;
        while !self.shared.stop.load(Relaxed) && tokio::time::Instant::now() < until {
            let left = until.saturating_duration_since(tokio::time::Instant::now());
            tokio::time::sleep(left.min(Duration::from_millis(200))).await;
        }
    }
}

//! The fleet's shared store: replicas pointed at the same Redis (`[cluster]`) keep
//! their rate limits and budgets there, so a fleet admits what one gateway would.
//!
//! Every call is bounded by `cluster.timeout_ms`, connecting included: a request never
//! waits longer on Redis. A call that fails or runs out of time is logged (once per
//! change of state), counted, and answered by `cluster.on_failure`: serve on this
//! replica's own limits (`fail_open`) or refuse (`fail_closed`). The connection is
//! re-made by itself, so enforcement resumes when Redis returns, without a restart.

mod feedback;
mod limits;
mod policies;
mod replicas;
mod state;
mod stats;

pub use feedback::ForwardedFeedback;
pub(crate) use feedback::POLL as FEEDBACK_POLL;
pub use limits::SharedReservation;
pub use policies::spawn_policy_sync;
pub use replicas::spawn_heartbeat;
pub use state::spawn_state_sync;
pub use stats::spawn_stats_publish;

use crate::config::{ClusterSection, FailMode};
use crate::metrics::Metrics;
use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// Why a call to the shared store gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No answer within `cluster.timeout_ms`.
    #[error("the shared store did not answer within {0:?}")]
    Timeout(Duration),
    /// The last call failed: until the heartbeat (every second) reaches Redis again,
    /// requests do not wait for a call that would likely fail too.
    #[error("the shared store was unreachable at the last call")]
    Down,
    /// Redis answered with an error, or the connection failed.
    #[error("the shared store failed: {0}")]
    Redis(#[from] redis::RedisError),
}

/// A connection to the fleet's Redis, shared by every request of this replica.
pub struct Cluster {
    connection: ConnectionManager,
    timeout: Duration,
    /// What a request meets when Redis does not answer.
    pub on_failure: FailMode,
    prefix: String,
    /// Whether the last call succeeded (for `/readyz`, and to log changes once).
    up: AtomicBool,
    metrics: Arc<Metrics>,
    /// Spend Redis has not taken yet (a settlement that failed, or a request admitted
    /// on local limits while Redis was unreachable), by spend total: the total's key,
    /// the USD owed and the key's lifetime. Bounded by the number of budget windows
    /// of the configured tenants and keys.
    owed: Mutex<HashMap<String, (f64, u64)>>,
    /// Whether a task is sending what is owed.
    paying: AtomicBool,
    /// Settlements sent and not yet answered (a stop waits for them).
    settling: AtomicUsize,
    /// This replica's name in the fleet's heartbeat set: random, new at each start.
    replica_id: String,
    /// Replicas alive at the last heartbeat Redis answered.
    replicas: AtomicU64,
    /// Policy changes made here, for the policy sync to send.
    outbox: tokio::sync::mpsc::UnboundedSender<policies::Announcement>,
    /// Their receiving end, until the policy sync takes it.
    inbox: Mutex<Option<tokio::sync::mpsc::UnboundedReceiver<policies::Announcement>>>,
    /// Policy state-store writes made here, for the state sync to send (bounded).
    state_outbox: tokio::sync::mpsc::Sender<state::Queued>,
    /// Their receiving end, until the state sync takes it.
    state_inbox: Mutex<Option<tokio::sync::mpsc::Receiver<state::Queued>>>,
    /// Whether writes are being dropped (logged once per episode).
    state_dropping: AtomicBool,
    /// State-store writes the sync holds that Redis has not taken (a stop waits).
    state_unsent: AtomicUsize,
}

impl Cluster {
    /// A cluster client for `section`. It connects on first use (a replica starts
    /// while Redis is down, on its failure mode) and reconnects by itself.
    pub fn new(section: &ClusterSection, metrics: Arc<Metrics>) -> anyhow::Result<Cluster> {
        let mut info = section
            .redis_url
            .as_str()
            .into_connection_info()
            .map_err(|e| anyhow::anyhow!("cluster.redis_url: {e}"))?;
        let mut settings = info.redis_settings().clone();
        if let Some(user) = &section.credentials.username {
            settings = settings.set_username(user);
        }
        if let Some(password) = &section.credentials.password {
            settings = settings.set_password(password);
        }
        info = info.set_redis_settings(settings);
        let client = match &section.tls {
            // A `rediss://` URL with the public roots.
            None => redis::Client::open(info)?,
            Some(tls) => redis::Client::build_with_tls(info, redis_certificates(tls)?)?,
        };
        let timeout = section.timeout();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            // Each call is bounded by its own timeout (`call_within`); this only stops
            // a connection from waiting forever, and lets a component through.
            .set_response_timeout(Some(policies::SYNC_TIMEOUT))
            // Reconnection happens in the background of the next calls; none of them
            // waits past the timeout for it.
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        let (outbox, inbox) = tokio::sync::mpsc::unbounded_channel();
        let (state_outbox, state_inbox) = tokio::sync::mpsc::channel(state::QUEUE);
        Ok(Cluster {
            connection,
            timeout,
            on_failure: section.on_failure,
            prefix: section.key_prefix.clone(),
            up: AtomicBool::new(true),
            metrics,
            owed: Mutex::default(),
            paying: AtomicBool::new(false),
            settling: AtomicUsize::new(0),
            replica_id: replica_id()?,
            replicas: AtomicU64::new(1),
            outbox,
            inbox: Mutex::new(Some(inbox)),
            state_outbox,
            state_inbox: Mutex::new(Some(state_inbox)),
            state_dropping: AtomicBool::new(false),
            state_unsent: AtomicUsize::new(0),
        })
    }

    /// Whether the last call to Redis succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// Asks Redis whether it is there (bounded by the timeout, like every call): for
    /// `/readyz`, which also notices Redis's return on a replica with no traffic.
    pub async fn ping(&self) -> bool {
        let pong: Result<String, _> = self
            .call("ping", async |c| redis::cmd("PING").query_async(c).await)
            .await;
        pong.is_ok()
    }

    /// Whether spend is waiting to reach Redis.
    pub fn owes(&self) -> bool {
        !self.owed().is_empty()
    }

    fn owed(&self) -> MutexGuard<'_, HashMap<String, (f64, u64)>> {
        self.owed.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The key prefix of this fleet.
    fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Waits (up to `limit`) for this replica's settlements to reach Redis and pays
    /// what is owed: a replica that stops loses no spend it acknowledged, unless
    /// Redis is unreachable for all of `limit` (then it logs how much).
    pub async fn drain(self: &Arc<Self>, limit: Duration) {
        let deadline = Instant::now() + limit;
        while (self.settling.load(Ordering::Acquire) > 0 || self.state_unsent())
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        while !self.pay_once().await && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let owed: f64 = self.owed().values().map(|(usd, _)| usd).sum();
        if owed > 0.0 {
            tracing::error!(
                owed_usd = owed,
                "stopping with spend the shared store has not taken"
            );
        }
    }

    /// The receiving end of the policy changes made here (once).
    fn inbox(&self) -> Option<tokio::sync::mpsc::UnboundedReceiver<policies::Announcement>> {
        self.inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Whether state-store writes made here have not reached Redis yet.
    fn state_unsent(&self) -> bool {
        self.state_unsent.load(Ordering::Acquire) > 0
            || self.state_outbox.capacity() < self.state_outbox.max_capacity()
    }

    /// The receiving end of the state-store writes made here (once).
    fn state_inbox(&self) -> Option<tokio::sync::mpsc::Receiver<state::Queued>> {
        self.state_inbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Runs one call on the shared connection, bounded by the timeout; counts it and
    /// notes whether Redis is up.
    async fn call<T, F>(&self, op: &'static str, call: F) -> Result<T, ClusterError>
    where
        F: AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    {
        self.call_within(op, self.timeout, call).await
    }

    /// [`Cluster::call`] with its own bound: for work off the request path that moves
    /// more than a few bytes (policy components).
    async fn call_within<T, F>(
        &self,
        op: &'static str,
        limit: Duration,
        call: F,
    ) -> Result<T, ClusterError>
    where
        F: AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    {
        let started = Instant::now();
        let mut connection = self.connection.clone();
        let result = match tokio::time::timeout(limit, call(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(ClusterError::Redis(e)),
            Err(_) => Err(ClusterError::Timeout(limit)),
        };
        self.metrics
            .cluster_call(op, result.is_ok(), started.elapsed());
        let was_up = self.up.swap(result.is_ok(), Ordering::Relaxed);
        match (&result, was_up) {
            (Err(e), true) => tracing::error!(
                error = %e,
                mode = ?self.on_failure,
                "the shared store is unreachable: shared limits are not enforced until it returns"
            ),
            (Ok(_), false) => tracing::warn!("the shared store is reachable again"),
            _ => {}
        }
        result
    }
}

/// A random name for this replica's heartbeat.
fn replica_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no random source: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The files of `[cluster.tls]`, checked, in the form redis-rs takes them (PEM).
fn redis_certificates(tls: &crate::config::StoreTls) -> anyhow::Result<redis::TlsCertificates> {
    use crate::server::tls::PemFile;
    use crate::store_tls::{StoreCertificates, pem_text};
    // Parsed here for errors that name the file, before redis-rs parses them again.
    StoreCertificates::read(Some(tls)).map_err(|e| anyhow::anyhow!("cluster.tls: {e}"))?;
    let text = |file, path: &std::path::Path| {
        pem_text(file, path).map_err(|e| anyhow::anyhow!("cluster.tls: {e}"))
    };
    let client_tls = match (&tls.cert_file, &tls.key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: text(PemFile::Certificate, cert)?,
            client_key: text(PemFile::Key, key)?,
        }),
        _ => None,
    };
    let root_cert = tls
        .ca_file
        .as_deref()
        .map(|path| text(PemFile::Certificate, path))
        .transpose()?;
    Ok(redis::TlsCertificates {
        client_tls,
        root_cert,
    })
}

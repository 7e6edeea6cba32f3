//! The fleet's shared store: replicas pointed at the same Redis (`[cluster]`) keep
//! their rate limits and budgets there, so a fleet admits what one gateway would.
//!
//! Every call is bounded by `cluster.timeout_ms`, connecting included: a request never
//! waits longer on Redis. A call that fails or runs out of time is logged (once per
//! change of state), counted, and answered by `cluster.on_failure`: serve on this
//! replica's own limits (`fail_open`) or refuse (`fail_closed`). The connection is
//! re-made by itself, so enforcement resumes when Redis returns, without a restart.

mod limits;

pub use limits::SharedReservation;

use crate::config::{ClusterSection, FailMode};
use crate::metrics::Metrics;
use redis::IntoConnectionInfo;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

/// Why a call to the shared store gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No answer within `cluster.timeout_ms`.
    #[error("the shared store did not answer within {0:?}")]
    Timeout(Duration),
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
        let client = redis::Client::open(info)?;
        let timeout = section.timeout();
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // Reconnection happens in the background of the next calls; none of them
            // waits past the timeout for it.
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let connection = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(Cluster {
            connection,
            timeout,
            on_failure: section.on_failure,
            prefix: section.key_prefix.clone(),
            up: AtomicBool::new(true),
            metrics,
        })
    }

    /// Whether the last call to Redis succeeded.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// The key prefix of this fleet.
    fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs one call on the shared connection, bounded by the timeout; counts it and
    /// notes whether Redis is up.
    async fn call<T, F>(&self, op: &'static str, call: F) -> Result<T, ClusterError>
    where
        F: AsyncFnOnce(&mut ConnectionManager) -> redis::RedisResult<T>,
    {
        let started = Instant::now();
        let mut connection = self.connection.clone();
        let result = match tokio::time::timeout(self.timeout, call(&mut connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(ClusterError::Redis(e)),
            Err(_) => Err(ClusterError::Timeout(self.timeout)),
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

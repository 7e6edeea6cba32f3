//! Which replicas are alive: each writes a heartbeat to Redis every second, and counts
//! the replicas heard from in the last few seconds. The count is what a replica divides
//! the limits by when Redis becomes unreachable (`fail_open`): the last count it saw.

use super::Cluster;
use redis::Script;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// How often a replica says it is alive.
const BEAT: Duration = Duration::from_secs(1);

/// Records this replica's heartbeat and answers how many replicas beat recently.
///
/// KEYS: the fleet's heartbeat set. ARGV: this replica's id, and how long (ms) a
/// replica counts as alive after its last beat. On Redis's clock, so the replicas'
/// clocks do not matter.
const BEAT_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[2]))
redis.call('PEXPIRE', KEYS[1], 60000)
return redis.call('ZCARD', KEYS[1])
"#;

/// A replica missing three beats no longer counts.
const ALIVE_FOR: Duration = Duration::from_secs(3);

static BEAT_ONCE: LazyLock<Script> = LazyLock::new(|| Script::new(BEAT_SCRIPT));

impl Cluster {
    /// How many replicas (this one included) were alive when Redis last answered.
    pub fn replicas(&self) -> u64 {
        self.replicas.load(Ordering::Relaxed).max(1)
    }

    /// Beats once; notes how many replicas are alive.
    async fn beat(&self) {
        let key = format!("{}:replicas", self.prefix());
        let alive_ms = ALIVE_FOR.as_millis() as u64;
        let alive: Result<u64, _> = self
            .call("heartbeat", async |c| {
                BEAT_ONCE
                    .key(&key)
                    .arg(&self.replica_id)
                    .arg(alive_ms)
                    .invoke_async(c)
                    .await
            })
            .await;
        if let Ok(alive) = alive {
            let before = self.replicas.swap(alive, Ordering::Relaxed);
            if before != alive {
                tracing::info!(replicas = alive, "replicas of the fleet alive");
            }
        }
    }
}

/// Beats every second until aborted (the gateway's stop aborts it).
pub fn spawn_heartbeat(cluster: Arc<Cluster>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(BEAT);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            cluster.beat().await;
        }
    })
}

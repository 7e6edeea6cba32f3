//! The traffic of each tenant's active and candidate versions across the fleet: each
//! replica counts what it decided (as without `[cluster]`) and publishes its counts
//! every second; the admin API's report adds a `fleet` section, the sum over the
//! replicas heard from in the last [`FRESH`], so a shadow's agreement or a canary's
//! errors are judged on all the fleet's traffic, not one replica's share.
//!
//! In Redis, per tenant: `…:stats:<tenant>` (a hash: replica → its counts as JSON,
//! with the time it wrote them), expiring a minute after the last write.

use super::Cluster;
use crate::deploy::{CandidateMode, LiveTenants, Routing, ShadowCounts, TrafficCounts};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How often a replica publishes its counts.
const PUBLISH: Duration = Duration::from_secs(1);

/// Counts older than this are a replica's that stopped: left out of the sum.
const FRESH: Duration = Duration::from_secs(5);

/// One version's counts on one replica.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VersionCounts {
    version: String,
    traffic: TrafficCounts,
}

/// What one replica publishes for one tenant.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct ReplicaCounts {
    /// When, in milliseconds since the Unix epoch.
    at_ms: u64,
    active: VersionCounts,
    candidate: Option<CandidateCounts>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct CandidateCounts {
    #[serde(flatten)]
    counts: VersionCounts,
    /// `shadow` or `canary`.
    mode: String,
    shadow: Option<ShadowCounts>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

fn counts_of(routing: &Routing) -> ReplicaCounts {
    ReplicaCounts {
        at_ms: now_ms(),
        active: VersionCounts {
            version: routing.active.version().to_owned(),
            traffic: routing.active.traffic.counts(),
        },
        candidate: routing.candidate.as_ref().map(|c| CandidateCounts {
            counts: VersionCounts {
                version: c.deployment.version().to_owned(),
                traffic: c.deployment.traffic.counts(),
            },
            mode: match c.mode {
                CandidateMode::Shadow => "shadow".into(),
                CandidateMode::Canary(_) => "canary".into(),
            },
            shadow: matches!(c.mode, CandidateMode::Shadow).then(|| c.shadow.counts()),
        }),
    }
}

impl Cluster {
    fn stats_key(&self, tenant: &str) -> String {
        format!("{}:stats:{tenant}", self.prefix())
    }

    /// The fleet's counts for `routing` (this replica's active and candidate
    /// versions): the sum over the replicas heard from lately that run the same
    /// versions, as the admin API shows one replica's.
    pub async fn fleet_report(
        &self,
        tenant: &str,
        routing: &Routing,
    ) -> Result<serde_json::Value, super::ClusterError> {
        let key = self.stats_key(tenant);
        let all: std::collections::HashMap<String, String> = self
            .call("stats_read", async |c| {
                redis::cmd("HGETALL").arg(&key).query_async(c).await
            })
            .await?;
        let mine = counts_of(routing);
        let oldest = mine.at_ms.saturating_sub(FRESH.as_millis() as u64);
        let (mut replicas, mut active) = (0, TrafficCounts::default());
        let (mut candidate, mut shadow) = (TrafficCounts::default(), ShadowCounts::default());
        for counts in all
            .values()
            .filter_map(|v| serde_json::from_str::<ReplicaCounts>(v).ok())
            .filter(|c| c.at_ms >= oldest)
        {
            replicas += 1;
            if counts.active.version == mine.active.version {
                active += counts.active.traffic;
            }
            if let (Some(theirs), Some(ours)) = (&counts.candidate, &mine.candidate)
                && theirs.counts.version == ours.counts.version
            {
                candidate += theirs.counts.traffic;
                if let Some(s) = theirs.shadow {
                    shadow += s;
                }
            }
        }
        Ok(serde_json::json!({
            "replicas": replicas,
            "active": {"version": mine.active.version, "traffic": active.report()},
            "candidate": mine.candidate.map(|c| {
                let mut report = serde_json::json!({
                    "version": c.counts.version,
                    "mode": c.mode,
                    "traffic": candidate.report(),
                });
                if c.shadow.is_some() {
                    report["shadow"] = shadow.report();
                }
                report
            }),
        }))
    }

    async fn publish_counts(&self, live: &dyn LiveTenants) -> Result<(), super::ClusterError> {
        let mut pipe = redis::pipe();
        for policy in live.policies() {
            let key = self.stats_key(&policy.context.tenant);
            let counts = serde_json::to_string(&counts_of(&policy.current())).unwrap_or_default();
            pipe.hset(&key, &self.replica_id, counts)
                .ignore()
                .expire(&key, 60)
                .ignore();
        }
        self.call("stats_publish", async |c| pipe.query_async::<()>(c).await)
            .await
    }
}

/// Publishes this replica's counts every second, until aborted.
pub fn spawn_stats_publish(
    cluster: Arc<Cluster>,
    live: Arc<dyn LiveTenants>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PUBLISH);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let _ = cluster.publish_counts(&*live).await;
        }
    })
}

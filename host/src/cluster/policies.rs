//! Policy versions and bindings shared by the fleet. A replica that changes a
//! tenant's policy (an upload, an activation, a rollback, a candidate, a quarantine)
//! writes the change to Redis and bumps the tenant's revision; every replica reads
//! the revisions four times a second and takes what changed: the versions' bytes into
//! its own store, compiled by itself, then the bindings. A version that does not build
//! on a replica leaves that replica's binding as it was, logged, counted and recorded
//! in Redis beside the tenant (`…:policy:<tenant>:failed`, by replica).
//!
//! In Redis, per tenant: `…:policy:<tenant>:versions` (a hash: version → its metadata
//! as JSON), `…:policy:<tenant>:v:<version>` (the component), and
//! `…:policy:<tenant>:bindings` (the bindings and the replica that set them); and one
//! hash `…:policy:rev` of every tenant's revision. Changes made at once on two
//! replicas: the last one written wins, everywhere.

use super::Cluster;
use crate::deploy::{LiveTenants, TenantBindings, VersionMeta};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

/// How often a replica looks for changes: the fleet converges within this (plus a
/// compile, for a version it has not seen).
const POLL: Duration = Duration::from_millis(250);

/// The bound on each call of the policy sync: components are up to megabytes, and
/// nothing waits on this but the sync itself.
pub(super) const SYNC_TIMEOUT: Duration = Duration::from_secs(5);

/// A change made on this replica, on its way to Redis.
pub enum Announcement {
    /// A version was uploaded.
    Version {
        tenant: Arc<str>,
        meta: VersionMeta,
        bytes: Arc<[u8]>,
    },
    /// The bindings changed.
    Bindings {
        tenant: Arc<str>,
        bindings: TenantBindings,
    },
}

/// The bindings as written to Redis.
#[derive(Serialize, Deserialize)]
struct Record {
    /// The replica that set them (it does not take them back).
    origin: String,
    bindings: TenantBindings,
}

impl Cluster {
    fn policy_key(&self, tenant: &str, what: &str) -> String {
        format!("{}:policy:{tenant}:{what}", self.prefix())
    }

    fn revisions_key(&self) -> String {
        format!("{}:policy:rev", self.prefix())
    }

    /// Queues an upload for the other replicas (sent in order, off the caller's path).
    pub fn announce_version(&self, tenant: &Arc<str>, meta: &VersionMeta, bytes: &[u8]) {
        let _ = self.outbox.send(Announcement::Version {
            tenant: tenant.clone(),
            meta: meta.clone(),
            bytes: bytes.into(),
        });
    }

    /// Queues a change of bindings for the other replicas.
    pub fn announce_bindings(&self, tenant: &Arc<str>, bindings: &TenantBindings) {
        let _ = self.outbox.send(Announcement::Bindings {
            tenant: tenant.clone(),
            bindings: bindings.clone(),
        });
    }

    /// Writes one announcement and bumps its tenant's revision, in one transaction.
    async fn publish(&self, announcement: &Announcement) -> Result<(), super::ClusterError> {
        let mut pipe = redis::pipe();
        pipe.atomic();
        let tenant = match announcement {
            Announcement::Version {
                tenant,
                meta,
                bytes,
            } => {
                let meta_json = serde_json::to_string(meta).unwrap_or_default();
                pipe.hset(
                    self.policy_key(tenant, "versions"),
                    &meta.version,
                    meta_json,
                )
                .ignore()
                .set(
                    self.policy_key(tenant, &format!("v:{}", meta.version)),
                    &**bytes,
                )
                .ignore();
                tenant
            }
            Announcement::Bindings { tenant, bindings } => {
                let record = Record {
                    origin: self.replica_id.clone(),
                    bindings: bindings.clone(),
                };
                let json = serde_json::to_string(&record).unwrap_or_default();
                pipe.set(self.policy_key(tenant, "bindings"), json).ignore();
                tenant
            }
        };
        pipe.hincr(self.revisions_key(), &**tenant, 1).ignore();
        self.call_within("policy_publish", SYNC_TIMEOUT, async |c| {
            pipe.query_async::<()>(c).await
        })
        .await
    }

    /// Every tenant's revision.
    async fn revisions(&self) -> Result<HashMap<String, u64>, super::ClusterError> {
        let key = self.revisions_key();
        self.call_within("policy_poll", POLL, async |c| {
            redis::cmd("HGETALL").arg(&key).query_async(c).await
        })
        .await
    }

    /// Brings one tenant up to the fleet's state: missing versions into the local
    /// store, then the bindings (unless this replica set them).
    async fn sync_tenant(
        self: &Arc<Self>,
        live: &Arc<dyn LiveTenants>,
        tenant: &str,
    ) -> Result<(), SyncError> {
        let versions_key = self.policy_key(tenant, "versions");
        let metas: HashMap<String, String> = self
            .call_within("policy_sync", SYNC_TIMEOUT, async |c| {
                redis::cmd("HGETALL")
                    .arg(&versions_key)
                    .query_async(c)
                    .await
            })
            .await?;
        let deployer = live.deployer();
        let local: Vec<String> = deployer
            .store
            .versions(tenant)
            .map_err(|e| SyncError::Local(e.to_string()))?
            .into_iter()
            .map(|m| m.version)
            .collect();
        for (version, meta) in metas {
            if local.contains(&version) {
                continue;
            }
            let Ok(meta) = serde_json::from_str::<VersionMeta>(&meta) else {
                tracing::warn!(
                    tenant,
                    version,
                    "the fleet's record of a version does not read"
                );
                continue;
            };
            let bytes_key = self.policy_key(tenant, &format!("v:{version}"));
            let bytes: Option<Vec<u8>> = self
                .call_within("policy_sync", SYNC_TIMEOUT, async |c| {
                    redis::cmd("GET").arg(&bytes_key).query_async(c).await
                })
                .await?;
            // Content-addressed: bytes that are not the version they claim to be are
            // not stored.
            match bytes {
                Some(bytes) if crate::policy::sha256_hex(&bytes) == version => deployer
                    .store
                    .put_version(tenant, &meta, &bytes)
                    .map_err(|e| SyncError::Local(e.to_string()))?,
                _ => tracing::warn!(
                    tenant,
                    version,
                    "the fleet's copy of a version is missing or damaged"
                ),
            }
        }
        let bindings_key = self.policy_key(tenant, "bindings");
        let record: Option<String> = self
            .call_within("policy_sync", SYNC_TIMEOUT, async |c| {
                redis::cmd("GET").arg(&bindings_key).query_async(c).await
            })
            .await?;
        let Some(record) = record.and_then(|r| serde_json::from_str::<Record>(&r).ok()) else {
            return Ok(());
        };
        if record.origin == self.replica_id {
            return Ok(());
        }
        // Compiling is CPU work: off the async workers.
        let (live, name) = (live.clone(), tenant.to_owned());
        let applied = tokio::task::spawn_blocking(move || {
            let policy = live.policy(&name)?;
            Some(policy.apply_fleet(live.deployer(), record.bindings))
        })
        .await
        .map_err(|e| SyncError::Local(e.to_string()))?;
        match applied {
            None | Some(Ok(false)) => Ok(()),
            Some(Ok(true)) => {
                tracing::info!(tenant, "policy bindings taken from the fleet");
                Ok(())
            }
            Some(Err(e)) => Err(SyncError::Apply(e.to_string())),
        }
    }

    /// Notes, beside the tenant in Redis, that this replica could not take the
    /// fleet's bindings (best effort).
    async fn report_failure(&self, tenant: &str, error: &str) {
        let key = self.policy_key(tenant, "failed");
        let _: Result<(), _> = self
            .call_within("policy_sync", SYNC_TIMEOUT, async |c| {
                redis::cmd("HSET")
                    .arg(&key)
                    .arg(&self.replica_id)
                    .arg(error)
                    .query_async(c)
                    .await
            })
            .await;
    }
}

#[derive(Debug, thiserror::Error)]
enum SyncError {
    #[error(transparent)]
    Store(#[from] super::ClusterError),
    #[error("{0}")]
    Local(String),
    #[error("{0}")]
    Apply(String),
}

/// Sends this replica's changes and takes the fleet's, until aborted (the gateway's
/// stop aborts it).
pub fn spawn_policy_sync(
    cluster: Arc<Cluster>,
    live: Arc<dyn LiveTenants>,
) -> tokio::task::JoinHandle<()> {
    let outbox = cluster.inbox();
    tokio::spawn(async move {
        let Some(mut outbox) = outbox else {
            return;
        };
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut every = tokio::time::interval(POLL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                Some(announcement) = outbox.recv() => {
                    // In order: a change waits until the one before it is written.
                    while let Err(e) = cluster.publish(&announcement).await {
                        tracing::warn!(error = %e, "a policy change has not reached the fleet yet; retrying");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                _ = every.tick() => {
                    let Ok(revisions) = cluster.revisions().await else { continue };
                    for (tenant, revision) in revisions {
                        if seen.get(&tenant).is_some_and(|&s| s >= revision) {
                            continue;
                        }
                        match cluster.sync_tenant(&live, &tenant).await {
                            Ok(()) => {}
                            // Redis again later: the same revision is tried next time.
                            Err(SyncError::Store(_)) => continue,
                            Err(e) => {
                                cluster.metrics.policy_sync_failed(&tenant);
                                tracing::error!(%tenant, error = %e, "cannot take the fleet's policy bindings; this replica keeps its own");
                                cluster.report_failure(&tenant, &e.to_string()).await;
                            }
                        }
                        seen.insert(tenant, revision);
                    }
                }
            }
        }
    })
}

//! Policy lifecycle per tenant: versions (content-addressed), the active binding and
//! its history, candidates in shadow or canary, quarantine of a failing version, and
//! the on-disk store that brings it all back after a restart.
//!
//! A request reads one [`Routing`] snapshot (an `ArcSwap` load) and keeps the
//! [`Deployment`] it picked until its outcome is reported, so a swap never changes
//! the binding of a request in flight. Changes are serialised by a per-tenant mutex
//! that no request ever takes.

mod deployment;
mod store;
mod validate;
pub mod watch;

pub use deployment::{
    Candidate, CandidateMode, Deployment, Routing, ShadowStats, TrafficStats, VersionStats,
    in_canary, micro_usd,
};
pub use store::{
    BindingSpec, CandidateSpec, PolicyStore, StoreError, TenantBindings, VersionMeta, is_version_id,
};

use crate::policy::{
    CompiledPolicy, LoadError, PolicyEngine, PolicyError, TargetInfo, TargetSignals, TenantContext,
};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

/// Why a lifecycle operation was refused. Nothing changed when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// Not a loadable policy (not wasm, wrong contract, does not compile…).
    #[error("invalid policy: {0}")]
    Load(#[from] LoadError),
    /// The config is not a JSON object.
    #[error("invalid config: {0}")]
    ConfigNotJson(String),
    /// Activation failed: the policy refused its config, trapped or ran too long.
    #[error("activation failed: {0}")]
    Activation(PolicyError),
    /// A smoke call failed.
    #[error("smoke call failed: {0}")]
    Smoke(String),
    /// No such version for this tenant.
    #[error("unknown version `{0}`")]
    UnknownVersion(String),
    /// The version was quarantined after failing on live traffic.
    #[error("version {0} is quarantined; upload a fixed version")]
    Quarantined(String),
    /// Rollback with no earlier binding.
    #[error("there is no earlier binding to roll back to")]
    NoHistory,
    /// Promote or discard with no candidate.
    #[error("there is no candidate version")]
    NoCandidate,
    /// A canary share outside `(0, 1]`.
    #[error("canary share must be in (0, 100] percent")]
    BadShare,
    /// The store could not be written.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl DeployError {
    /// Whether the caller's input was at fault (as opposed to the server).
    pub fn is_invalid_input(&self) -> bool {
        !matches!(self, DeployError::Store(_))
    }
}

/// What every tenant's lifecycle shares: the engine, the store and the settings.
pub struct Deployer {
    /// The policy engine.
    pub engine: PolicyEngine,
    /// Versions and bindings.
    pub store: PolicyStore,
    /// Failed calls in a row (traps or deadlines) that quarantine a version.
    pub quarantine_after: u32,
    /// Where quarantines are counted.
    pub metrics: Arc<crate::metrics::Metrics>,
}

/// A policy version to bind, however it arrived.
pub struct Source<'a> {
    /// Name for labels.
    pub name: &'a str,
    /// The component.
    pub bytes: &'a [u8],
    /// Config JSON.
    pub config: &'a str,
}

/// One tenant's policy state.
pub struct TenantPolicy {
    /// The tenant id.
    pub tenant: Arc<str>,
    /// State store and log budget, shared by every version of the tenant.
    pub context: TenantContext,
    /// The tenant's targets as policies see them.
    pub targets: Vec<TargetInfo>,
    routing: ArcSwap<Routing>,
    admin: Mutex<AdminState>,
    /// The state store's write count at the last snapshot.
    snapshot_writes: std::sync::atomic::AtomicU64,
}

/// What only lifecycle operations touch.
struct AdminState {
    bindings: TenantBindings,
    /// Compiled versions seen by this process (compiling is the slow part).
    compiled: HashMap<String, CompiledPolicy>,
    stats: HashMap<String, Arc<VersionStats>>,
}

impl TenantPolicy {
    /// Brings a tenant up: the stored active binding if there is one and the config's
    /// policy (`seed`) has not changed since it was last seen; otherwise the seed,
    /// activated on top of the stored history.
    pub fn start(
        deployer: &Deployer,
        context: TenantContext,
        targets: Vec<TargetInfo>,
        seed: Source<'_>,
    ) -> Result<TenantPolicy, DeployError> {
        let tenant = context.tenant.clone();
        let mut admin = AdminState {
            bindings: deployer.store.bindings(&tenant),
            compiled: HashMap::new(),
            stats: HashMap::new(),
        };
        let seed_policy = deployer.engine.load(seed.bytes)?;
        let seed_spec = BindingSpec {
            version: seed_policy.version().to_owned(),
            name: seed.name.to_owned(),
            config: seed.config.to_owned(),
        };
        admin
            .compiled
            .insert(seed_spec.version.clone(), seed_policy.clone());

        let stored = admin
            .bindings
            .active
            .clone()
            .filter(|_| admin.bindings.seed.as_ref() == Some(&seed_spec));
        let restored = stored.and_then(|spec| {
            match build(deployer, &mut admin, &context, &targets, &spec, None) {
                Ok(d) => Some(d),
                Err(e) => {
                    tracing::error!(%tenant, version = %spec.version, error = %e, "stored binding failed to start; using the configured policy");
                    None
                }
            }
        });
        let active = match restored {
            Some(d) => d,
            None => {
                deployer.store.put_version(
                    &tenant,
                    &meta_for(&seed_policy, seed.name),
                    seed.bytes,
                )?;
                let d = build(deployer, &mut admin, &context, &targets, &seed_spec, None)?;
                if admin.bindings.active.as_ref() != Some(&seed_spec) {
                    admin.bindings.activate(seed_spec.clone());
                }
                admin.bindings.seed = Some(seed_spec);
                admin.bindings.candidate = None;
                deployer.store.save_bindings(&tenant, &admin.bindings)?;
                d
            }
        };
        let candidate = admin.bindings.candidate.clone().and_then(|c| {
            let built = build(deployer, &mut admin, &context, &targets, &c.binding, None).ok()?;
            Some(Candidate {
                deployment: built,
                mode: mode_of(&c),
                shadow: ShadowStats::default(),
            })
        });
        Ok(TenantPolicy {
            tenant,
            context,
            targets,
            routing: ArcSwap::from_pointee(Routing { active, candidate }),
            admin: Mutex::new(admin),
            snapshot_writes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Saves the tenant's state store if it changed since the last save. Returns
    /// whether it wrote.
    pub fn save_state(&self, deployer: &Deployer) -> Result<bool, StoreError> {
        let writes = self.context.state.writes();
        if writes == self.snapshot_writes.load(Ordering::Relaxed) || !deployer.store.is_persistent()
        {
            return Ok(false);
        }
        deployer
            .store
            .save_state(&self.tenant, &self.context.state.encode())?;
        self.snapshot_writes.store(writes, Ordering::Relaxed);
        Ok(true)
    }

    /// What a request routes with. Load once per request and keep it.
    pub fn current(&self) -> Arc<Routing> {
        self.routing.load_full()
    }

    fn admin(&self) -> MutexGuard<'_, AdminState> {
        // A panic while holding the lock leaves consistent data (every change is
        // stored before it is applied), so a poisoned lock is still usable.
        self.admin.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Validates and stores a new version. Does not activate it.
    pub fn upload(
        &self,
        deployer: &Deployer,
        source: Source<'_>,
        signals: &[TargetSignals],
    ) -> Result<VersionMeta, DeployError> {
        // A version this process already compiled is not compiled again.
        let version = crate::policy::sha256_hex(source.bytes);
        let compiled = self.admin().compiled.get(&version).cloned();
        let policy = match compiled {
            Some(p) => p,
            None => deployer.engine.load(source.bytes)?,
        };
        validate::bind_checked(
            &policy,
            &self.context,
            source.config,
            &self.targets,
            signals,
        )?;
        // Content-addressed: a version uploaded again keeps its first name and time.
        let known = deployer
            .store
            .versions(&self.tenant)
            .into_iter()
            .find(|m| m.version == policy.version());
        let meta = match known {
            Some(meta) => meta,
            None => {
                let meta = meta_for(&policy, source.name);
                deployer
                    .store
                    .put_version(&self.tenant, &meta, source.bytes)?;
                meta
            }
        };
        let mut admin = self.admin();
        admin.bindings.quarantined.retain(|v| *v != meta.version);
        admin.compiled.insert(meta.version.clone(), policy);
        Ok(meta)
    }

    /// Makes `version` with `config` the active binding (validated first). A candidate,
    /// if any, is dropped.
    pub fn activate(
        &self,
        deployer: &Deployer,
        version: &str,
        config: &str,
        signals: &[TargetSignals],
    ) -> Result<Arc<Deployment>, DeployError> {
        let mut admin = self.admin();
        let spec = self.spec(deployer, &admin, version, config)?;
        let d = build(
            deployer,
            &mut admin,
            &self.context,
            &self.targets,
            &spec,
            Some(signals),
        )?;
        let mut next = admin.bindings.clone();
        next.activate(spec);
        next.candidate = None;
        self.commit(deployer, &mut admin, next, d.clone(), None)?;
        tracing::info!(tenant = %self.tenant, policy = %d.label, "policy activated");
        Ok(d)
    }

    /// Restores the previous binding.
    pub fn rollback(&self, deployer: &Deployer) -> Result<Arc<Deployment>, DeployError> {
        let mut admin = self.admin();
        let d = self.rollback_locked(deployer, &mut admin)?;
        tracing::info!(tenant = %self.tenant, policy = %d.label, "policy rolled back");
        Ok(d)
    }

    fn rollback_locked(
        &self,
        deployer: &Deployer,
        admin: &mut AdminState,
    ) -> Result<Arc<Deployment>, DeployError> {
        let mut next = admin.bindings.clone();
        let spec = next.history.pop().ok_or(DeployError::NoHistory)?;
        let d = build(deployer, admin, &self.context, &self.targets, &spec, None)?;
        next.active = Some(spec);
        let candidate = self.current().candidate.as_ref().map(|c| Candidate {
            deployment: c.deployment.clone(),
            mode: c.mode,
            shadow: ShadowStats::default(),
        });
        self.commit(deployer, admin, next, d.clone(), candidate)?;
        Ok(d)
    }

    /// Puts `version` on trial next to the active binding.
    pub fn start_candidate(
        &self,
        deployer: &Deployer,
        version: &str,
        config: &str,
        mode: CandidateMode,
        signals: &[TargetSignals],
    ) -> Result<Arc<Deployment>, DeployError> {
        if let CandidateMode::Canary(share) = mode
            && !(share > 0.0 && share <= 1.0)
        {
            return Err(DeployError::BadShare);
        }
        let mut admin = self.admin();
        let spec = self.spec(deployer, &admin, version, config)?;
        let d = build(
            deployer,
            &mut admin,
            &self.context,
            &self.targets,
            &spec,
            Some(signals),
        )?;
        let mut next = admin.bindings.clone();
        next.candidate = Some(CandidateSpec {
            binding: spec,
            mode: match mode {
                CandidateMode::Shadow => "shadow".into(),
                CandidateMode::Canary(_) => "canary".into(),
            },
            share: match mode {
                CandidateMode::Shadow => 0.0,
                CandidateMode::Canary(s) => s,
            },
        });
        let active = self.current().active.clone();
        let candidate = Candidate {
            deployment: d.clone(),
            mode,
            shadow: ShadowStats::default(),
        };
        self.commit(deployer, &mut admin, next, active, Some(candidate))?;
        tracing::info!(tenant = %self.tenant, policy = %d.label, ?mode, "candidate started");
        Ok(d)
    }

    /// Makes the candidate the active binding.
    pub fn promote(&self, deployer: &Deployer) -> Result<Arc<Deployment>, DeployError> {
        let mut admin = self.admin();
        let current = self.current();
        let candidate = current.candidate.as_ref().ok_or(DeployError::NoCandidate)?;
        let mut next = admin.bindings.clone();
        let spec = next
            .candidate
            .take()
            .ok_or(DeployError::NoCandidate)?
            .binding;
        next.activate(spec);
        let d = candidate.deployment.clone();
        self.commit(deployer, &mut admin, next, d.clone(), None)?;
        tracing::info!(tenant = %self.tenant, policy = %d.label, "candidate promoted");
        Ok(d)
    }

    /// Drops the candidate.
    pub fn discard(&self, deployer: &Deployer) -> Result<(), DeployError> {
        let mut admin = self.admin();
        let current = self.current();
        if current.candidate.is_none() {
            return Err(DeployError::NoCandidate);
        }
        let mut next = admin.bindings.clone();
        next.candidate = None;
        self.commit(deployer, &mut admin, next, current.active.clone(), None)?;
        tracing::info!(tenant = %self.tenant, "candidate discarded");
        Ok(())
    }

    /// Called when `failed` has failed `streak` calls in a row. At the threshold the
    /// version is quarantined: the active binding rolls back to the previous one (or
    /// the candidate is dropped). Returns whether it acted.
    pub fn quarantine_if_due(
        &self,
        deployer: &Deployer,
        failed: &Arc<Deployment>,
        streak: u32,
    ) -> bool {
        if streak < deployer.quarantine_after.max(1) {
            return false;
        }
        let mut admin = self.admin();
        let current = self.current();
        let is_active = Arc::ptr_eq(&current.active, failed);
        let is_candidate = current
            .candidate
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.deployment, failed));
        if !is_active && !is_candidate {
            return false; // already handled by a concurrent request
        }
        let version = failed.version().to_owned();
        let result = if is_candidate {
            let mut next = admin.bindings.clone();
            next.candidate = None;
            next.quarantined.push(version.clone());
            self.commit(deployer, &mut admin, next, current.active.clone(), None)
                .map(|()| current.active.clone())
        } else {
            admin.bindings.quarantined.push(version.clone());
            self.rollback_locked(deployer, &mut admin)
        };
        match result {
            Ok(restored) => {
                failed
                    .version_stats
                    .quarantines
                    .fetch_add(1, Ordering::Relaxed);
                deployer
                    .metrics
                    .quarantine(&crate::metrics::Name(self.tenant.clone()), &failed.metric);
                tracing::error!(tenant = %self.tenant, policy = %failed.label, failures = streak, restored = %restored.label, "policy quarantined after repeated failures");
                true
            }
            Err(e) => {
                admin.bindings.quarantined.retain(|v| *v != version);
                tracing::error!(tenant = %self.tenant, policy = %failed.label, error = %e, "policy keeps failing but cannot be quarantined; the safe route serves meanwhile");
                false
            }
        }
    }

    /// Versions, bindings and counters, for the admin API.
    pub fn report(&self, deployer: &Deployer) -> serde_json::Value {
        let admin = self.admin();
        let current = self.current();
        let active = current.active.version();
        let candidate = current.candidate.as_ref().map(|c| c.deployment.version());
        let versions: Vec<serde_json::Value> = deployer
            .store
            .versions(&self.tenant)
            .into_iter()
            .map(|m| {
                let stats = admin.stats.get(&m.version);
                let count = |f: fn(&VersionStats) -> &std::sync::atomic::AtomicU64| {
                    stats.map_or(0, |s| f(s).load(Ordering::Relaxed))
                };
                serde_json::json!({
                    "version": m.version,
                    "name": m.name,
                    "size": m.size,
                    "uploaded_at": m.uploaded_at,
                    "active": m.version == active,
                    "candidate": Some(m.version.as_str()) == candidate,
                    "quarantined": admin.bindings.quarantined.contains(&m.version),
                    "calls": count(|s| &s.calls),
                    "errors": count(|s| &s.errors),
                    "traps": count(|s| &s.traps),
                    "deadlines": count(|s| &s.deadlines),
                    "quarantines": count(|s| &s.quarantines),
                })
            })
            .collect();
        serde_json::json!({
            "tenant": &*self.tenant,
            "active": deployment_report(&current.active),
            "candidate": current.candidate.as_ref().map(candidate_report),
            "history": admin.bindings.history.iter().rev().map(|s| &s.version).collect::<Vec<_>>(),
            "versions": versions,
        })
    }

    /// The binding spec for `version` with `config`, if the version is known.
    fn spec(
        &self,
        deployer: &Deployer,
        admin: &AdminState,
        version: &str,
        config: &str,
    ) -> Result<BindingSpec, DeployError> {
        if admin.bindings.quarantined.iter().any(|v| v == version) {
            return Err(DeployError::Quarantined(version.to_owned()));
        }
        let meta = deployer
            .store
            .versions(&self.tenant)
            .into_iter()
            .find(|m| m.version == version)
            .ok_or_else(|| DeployError::UnknownVersion(version.to_owned()))?;
        Ok(BindingSpec {
            version: meta.version,
            name: meta.name,
            config: config.to_owned(),
        })
    }

    /// Stores `next`, then swaps in the routing it describes: stored first, so a
    /// failed write changes nothing.
    fn commit(
        &self,
        deployer: &Deployer,
        admin: &mut AdminState,
        next: TenantBindings,
        active: Arc<Deployment>,
        candidate: Option<Candidate>,
    ) -> Result<(), DeployError> {
        deployer.store.save_bindings(&self.tenant, &next)?;
        admin.bindings = next;
        self.routing.store(Arc::new(Routing { active, candidate }));
        Ok(())
    }
}

/// Restores a tenant's state store from its last snapshot (empty when there is none;
/// a damaged snapshot is reported and set aside rather than failing start-up).
pub fn restore_state(store: &PolicyStore, tenant: &str) -> crate::policy::StateStore {
    let limits = crate::policy::StateLimits::default();
    match store.load_state(tenant) {
        None => crate::policy::StateStore::new(limits),
        Some(bytes) => crate::policy::StateStore::decode(&bytes, limits).unwrap_or_else(|e| {
            tracing::error!(tenant, error = %e, "policy state snapshot unreadable; starting with an empty store");
            crate::policy::StateStore::new(limits)
        }),
    }
}

/// Saves every tenant's changed state store; errors are logged, not returned, so
/// one tenant's full disk does not stop the others' snapshots.
pub fn save_states(gateway: &crate::gateway::Gateway) {
    for tenant in gateway.tenants.values() {
        if let Err(e) = tenant.policy.save_state(&gateway.deployer) {
            tracing::error!(tenant = %tenant.id, error = %e, "cannot save the policy state snapshot");
        }
    }
}

/// Snapshots changed state stores every `every` until the gateway is dropped.
pub fn spawn_state_snapshots(
    gateway: &Arc<crate::gateway::Gateway>,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(gateway);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(gateway) = weak.upgrade() else {
                return;
            };
            let _ = tokio::task::spawn_blocking(move || save_states(&gateway)).await;
        }
    })
}

/// Loads (from this process's memory, the artifact cache or by compiling) and binds a
/// stored version; with `smoke`, also runs the smoke calls.
fn build(
    deployer: &Deployer,
    admin: &mut AdminState,
    context: &TenantContext,
    targets: &[TargetInfo],
    spec: &BindingSpec,
    smoke: Option<&[TargetSignals]>,
) -> Result<Arc<Deployment>, DeployError> {
    let policy = match admin.compiled.get(&spec.version) {
        Some(p) => p.clone(),
        None => {
            let (_, bytes) = deployer
                .store
                .version(&context.tenant, &spec.version)
                .ok_or_else(|| DeployError::UnknownVersion(spec.version.clone()))?;
            let p = deployer.engine.load(&bytes)?;
            admin.compiled.insert(spec.version.clone(), p.clone());
            p
        }
    };
    let binding = match smoke {
        Some(signals) => validate::bind_checked(&policy, context, &spec.config, targets, signals)?,
        None => policy
            .bind(context.clone(), &spec.config, targets.to_vec())
            .map_err(DeployError::Activation)?,
    };
    let stats = admin.stats.entry(spec.version.clone()).or_default().clone();
    Ok(Arc::new(Deployment::new(binding, &spec.name, stats)))
}

fn meta_for(policy: &CompiledPolicy, name: &str) -> VersionMeta {
    VersionMeta {
        version: policy.version().to_owned(),
        name: name.to_owned(),
        size: policy.size(),
        uploaded_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

fn mode_of(c: &CandidateSpec) -> CandidateMode {
    if c.mode == "canary" {
        CandidateMode::Canary(c.share)
    } else {
        CandidateMode::Shadow
    }
}

fn deployment_report(d: &Arc<Deployment>) -> serde_json::Value {
    serde_json::json!({
        "version": d.version(),
        "name": d.name,
        "label": d.label,
        "config": serde_json::from_str::<serde_json::Value>(d.config()).unwrap_or_default(),
        "traffic": d.traffic.report(),
    })
}

fn candidate_report(c: &Candidate) -> serde_json::Value {
    let mut report = deployment_report(&c.deployment);
    if let Some(obj) = report.as_object_mut() {
        match c.mode {
            CandidateMode::Shadow => {
                obj.insert("mode".into(), "shadow".into());
                obj.insert("shadow".into(), c.shadow.report());
            }
            CandidateMode::Canary(share) => {
                obj.insert("mode".into(), "canary".into());
                obj.insert("share".into(), share.into());
            }
        }
    }
    report
}

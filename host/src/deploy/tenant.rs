//! One tenant's policy lifecycle: bring it up from the store, upload, activate, roll
//! back, try a candidate, promote or discard it, quarantine a failing version.
//!
//! Every change is stored before it is applied (a failed write changes nothing), under
//! a per-tenant mutex that no request takes: requests only load the [`Routing`].

use super::report;
use super::{
    BindingSpec, Candidate, CandidateMode, CandidateSpec, DeployError, Deployer, Deployment,
    Routing, SavedStats, ShadowStats, Source, TenantBindings, VersionMeta, VersionStats, validate,
};
use crate::policy::{CompiledPolicy, TargetInfo, TargetSignals, TenantContext};
use arc_swap::ArcSwap;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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
    pub(super) snapshot_writes: AtomicU64,
    /// The counters as last saved (nothing is written while they stand still).
    pub(super) saved_stats: Mutex<SavedStats>,
}

/// What only lifecycle operations touch.
struct AdminState {
    bindings: TenantBindings,
    /// Compiled versions seen by this process (compiling is the slow part).
    compiled: HashMap<String, CompiledPolicy>,
    stats: HashMap<String, Arc<VersionStats>>,
    /// Counters saved by an earlier process for versions not bound yet in this one
    /// (moved into `stats` when they are).
    restored: HashMap<String, Arc<VersionStats>>,
}

impl AdminState {
    /// Every version's counters: those bound in this process and those restored.
    fn all_stats(&self) -> HashMap<String, Arc<VersionStats>> {
        let mut all = self.restored.clone();
        all.extend(self.stats.iter().map(|(v, s)| (v.clone(), s.clone())));
        all
    }
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
        // Counters are worth less than the bindings: a damaged record (and no good
        // copy) starts them at zero rather than stopping start-up.
        let saved = deployer.store.load_stats(&tenant).unwrap_or_else(|e| {
            tracing::error!(%tenant, error = %e, "policy counters not restored; they start at zero");
            None
        });
        let saved = saved.unwrap_or_default();
        let mut admin = AdminState {
            bindings: deployer.store.bindings(&tenant)?,
            compiled: HashMap::new(),
            stats: HashMap::new(),
            restored: saved.version_stats(),
        };
        // Every stored record is read once now, so a damaged one stops start-up
        // (or is replaced by its last good copy) before any request depends on it.
        deployer.store.versions(&tenant)?;
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
                Ok(d) => {
                    saved.restore_traffic(&spec, &d.traffic);
                    Some(d)
                }
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
                    &meta_for(&seed_policy, seed.name, seed.config),
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
            saved.restore_traffic(&c.binding, &built.traffic);
            Some(Candidate {
                deployment: built,
                mode: c.mode(),
                shadow: saved.shadow_stats(&c.binding),
            })
        });
        Ok(TenantPolicy {
            tenant,
            context,
            targets,
            routing: ArcSwap::from_pointee(Routing { active, candidate }),
            admin: Mutex::new(admin),
            snapshot_writes: AtomicU64::new(0),
            saved_stats: Mutex::new(saved),
        })
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
            .versions(&self.tenant)?
            .into_iter()
            .find(|m| m.version == policy.version());
        let meta = match known {
            Some(meta) => meta,
            None => {
                let meta = meta_for(&policy, source.name, source.config);
                deployer
                    .store
                    .put_version(&self.tenant, &meta, source.bytes)?;
                if let Some(fleet) = &deployer.fleet {
                    fleet.announce_version(&self.tenant, &meta, source.bytes);
                }
                meta
            }
        };
        let mut admin = self.admin();
        admin.bindings.release(&meta.version);
        admin.compiled.insert(meta.version.clone(), policy);
        Ok(meta)
    }

    /// Makes `version` (a full id or any unique prefix) with `config` the active
    /// binding (validated first); without a config, the one the version was last
    /// bound or uploaded with. A candidate, if any, is dropped.
    pub fn activate(
        &self,
        deployer: &Deployer,
        version: &str,
        config: Option<&str>,
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
        let spec = next.roll_back().ok_or(DeployError::NoHistory)?.clone();
        let d = build(deployer, admin, &self.context, &self.targets, &spec, None)?;
        let candidate = self.current().candidate.as_ref().map(|c| Candidate {
            deployment: c.deployment.clone(),
            mode: c.mode,
            shadow: ShadowStats::default(),
        });
        self.commit(deployer, admin, next, d.clone(), candidate)?;
        Ok(d)
    }

    /// Puts `version` on trial next to the active binding (the version and config are
    /// found as [`TenantPolicy::activate`] finds them).
    pub fn start_candidate(
        &self,
        deployer: &Deployer,
        version: &str,
        config: Option<&str>,
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
        next.candidate = Some(CandidateSpec::new(spec, mode));
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
            next.quarantine(&version);
            self.commit(deployer, &mut admin, next, current.active.clone(), None)
                .map(|()| current.active.clone())
        } else {
            admin.bindings.quarantine(&version);
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
                admin.bindings.release(&version);
                tracing::error!(tenant = %self.tenant, policy = %failed.label, error = %e, "policy keeps failing but cannot be quarantined; the safe route serves meanwhile");
                false
            }
        }
    }

    /// Versions, bindings and counters, for the admin API.
    pub fn report(&self, deployer: &Deployer) -> Result<serde_json::Value, DeployError> {
        let versions = deployer.store.versions(&self.tenant)?;
        let admin = self.admin();
        Ok(report::tenant_report(
            &self.tenant,
            &self.current(),
            &admin.bindings,
            &versions,
            &admin.all_stats(),
        ))
    }

    /// The counters as they stand, as they are saved.
    pub(super) fn capture_stats(&self) -> SavedStats {
        let admin = self.admin();
        let current = self.current();
        let candidate = current.candidate.as_ref().map(|c| {
            (
                &*c.deployment,
                (c.mode == CandidateMode::Shadow).then_some(&c.shadow),
            )
        });
        SavedStats::capture(&admin.all_stats(), &current.active, candidate)
    }

    /// The binding spec for the stored version that `version` names (its full id or
    /// a unique prefix), with `config`, or else the config it was last bound with,
    /// or else the one it was uploaded with.
    fn spec(
        &self,
        deployer: &Deployer,
        admin: &AdminState,
        version: &str,
        config: Option<&str>,
    ) -> Result<BindingSpec, DeployError> {
        let versions = deployer.store.versions(&self.tenant)?;
        let found = super::resolve_prefix(version, versions.iter().map(|m| m.version.as_str()))
            .map_err(|matches| DeployError::AmbiguousVersion {
                prefix: version.to_owned(),
                matches: matches
                    .iter()
                    .map(|v| v[..v.len().min(12)].to_owned())
                    .collect(),
            })?
            .ok_or_else(|| DeployError::UnknownVersion(version.to_owned()))?
            .to_owned();
        if admin.bindings.is_quarantined(&found) {
            return Err(DeployError::Quarantined(found));
        }
        let meta = versions
            .into_iter()
            .find(|m| m.version == found)
            .ok_or_else(|| DeployError::UnknownVersion(version.to_owned()))?;
        let config = config
            .or_else(|| admin.bindings.last_config(&meta.version))
            .or(meta.config.as_deref())
            .unwrap_or("{}")
            .to_owned();
        Ok(BindingSpec {
            version: meta.version,
            name: meta.name,
            config,
        })
    }

    /// Stores `next`, then swaps in the routing it describes: stored first, so a
    /// failed write changes nothing. In a fleet, the change is then announced to the
    /// other replicas.
    fn commit(
        &self,
        deployer: &Deployer,
        admin: &mut AdminState,
        next: TenantBindings,
        active: Arc<Deployment>,
        candidate: Option<Candidate>,
    ) -> Result<(), DeployError> {
        self.apply(deployer, admin, next, active, candidate)?;
        if let Some(fleet) = &deployer.fleet {
            fleet.announce_bindings(&self.tenant, &admin.bindings);
        }
        Ok(())
    }

    /// [`TenantPolicy::commit`] without the announcement.
    fn apply(
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

    /// Takes the bindings another replica of the fleet announced: builds what they
    /// name that this process does not run yet (compiling for itself, from versions
    /// already in its store), stores them and swaps them in. Bindings equal to the
    /// current ones change nothing (returns false). A version that does not build here
    /// leaves everything as it was and is the error.
    pub fn apply_fleet(
        &self,
        deployer: &Deployer,
        remote: TenantBindings,
    ) -> Result<bool, DeployError> {
        let mut admin = self.admin();
        // The config file's policy is this process's own business.
        let remote = TenantBindings {
            seed: admin.bindings.seed.clone(),
            ..remote
        };
        if admin.bindings == remote {
            return Ok(false);
        }
        if admin.bindings.active == remote.active && admin.bindings.candidate == remote.candidate {
            // History or quarantine list only: what serves stays, with its counters.
            deployer.store.save_bindings(&self.tenant, &remote)?;
            admin.bindings = remote;
            return Ok(true);
        }
        let current = self.current();
        let active = match &remote.active {
            Some(spec) if admin.bindings.active.as_ref() != Some(spec) => build(
                deployer,
                &mut admin,
                &self.context,
                &self.targets,
                spec,
                None,
            )?,
            _ => current.active.clone(),
        };
        let candidate = match &remote.candidate {
            None => None,
            Some(c) if admin.bindings.candidate.as_ref() == Some(c) => {
                current.candidate.as_ref().map(|now| Candidate {
                    deployment: now.deployment.clone(),
                    mode: now.mode,
                    shadow: ShadowStats::default(),
                })
            }
            Some(c) => Some(Candidate {
                deployment: build(
                    deployer,
                    &mut admin,
                    &self.context,
                    &self.targets,
                    &c.binding,
                    None,
                )?,
                mode: c.mode(),
                shadow: ShadowStats::default(),
            }),
        };
        self.apply(deployer, &mut admin, remote, active, candidate)?;
        Ok(true)
    }
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
                .version(&context.tenant, &spec.version)?
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
    let fresh = !admin.stats.contains_key(&spec.version);
    if fresh {
        let restored = admin.restored.remove(&spec.version).unwrap_or_default();
        admin.stats.insert(spec.version.clone(), restored);
    }
    let stats = admin.stats[&spec.version].clone();
    let deployment = Arc::new(Deployment::new(binding, &spec.name, stats));
    if fresh {
        deployer.metrics.track_policy(
            &crate::metrics::Name(context.tenant.clone()),
            &deployment.metric,
            deployment.version_stats.calls.clone(),
        );
    }
    Ok(deployment)
}

fn meta_for(policy: &CompiledPolicy, name: &str, config: &str) -> VersionMeta {
    VersionMeta {
        version: policy.version().to_owned(),
        name: name.to_owned(),
        config: Some(config.to_owned()),
        size: policy.size(),
        uploaded_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

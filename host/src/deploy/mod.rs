//! Policy lifecycle per tenant: versions (content-addressed), the active binding and
//! its history, candidates in shadow or canary, quarantine of a failing version, and
//! the on-disk store that brings it all back after a restart.
//!
//! A request reads one [`Routing`] snapshot (an `ArcSwap` load) and keeps the
//! [`Deployment`] it picked until its outcome is reported, so a swap never changes
//! the binding of a request in flight. Changes are serialised by a per-tenant mutex
//! that no request ever takes.
//!
//! `deploy` sits below the gateway: it never names it. What its background work (the
//! watched directory, the state snapshots) needs from the running gateway is the
//! small [`LiveTenants`] view, which the gateway implements.

mod bindings;
mod deployment;
mod report;
mod saved_stats;
mod state;
mod store;
mod tenant;
mod validate;
pub mod watch;

pub use bindings::{
    BindingSpec, CandidateSpec, HISTORY_LIMIT, TenantBindings, VersionMeta, resolve_prefix,
};
pub use deployment::{
    Candidate, CandidateMode, CandidateSample, Deployment, FailureStreak, Routing, ShadowCounts,
    ShadowStats, TrafficCounts, TrafficStats, VersionStats, counts_toward_quarantine, in_canary,
    micro_usd,
};
pub use saved_stats::SavedStats;
pub use state::{restore_state, save_states, spawn_state_snapshots};
pub use store::{PolicyStore, StoreError, StoredVersion, is_version_id};
pub use tenant::TenantPolicy;

use crate::policy::{LoadError, PolicyEngine, PolicyError, TargetSignals};
use std::sync::Arc;

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
    /// A version prefix that more than one stored version starts with.
    #[error("version prefix `{prefix}` is ambiguous: it matches {}; give more digits", .matches.join(", "))]
    AmbiguousVersion {
        /// What was asked for.
        prefix: String,
        /// The matching versions' short forms (12 hex digits, as in labels).
        matches: Vec<String>,
    },
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
    /// The fleet's shared store, with `[cluster]`: every change made here (an upload,
    /// an activation, a rollback, a candidate, a quarantine) is announced to the other
    /// replicas through it, and theirs arrive through [`TenantPolicy::apply_fleet`].
    pub fleet: Option<Arc<crate::cluster::Cluster>>,
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

/// The running tenants as the lifecycle's background work sees them: the watched
/// directory activates policies through it, the state snapshots save through it.
pub trait LiveTenants: Send + Sync {
    /// The engine, store and settings every tenant's lifecycle shares.
    fn deployer(&self) -> &Deployer;
    /// Every tenant's policy state.
    fn policies(&self) -> Box<dyn Iterator<Item = &TenantPolicy> + '_>;
    /// One tenant's policy state, by tenant id.
    fn policy(&self, tenant: &str) -> Option<&TenantPolicy>;
    /// The live signals of the tenant's targets, in its policy's order: what smoke
    /// calls run against. Empty for an unknown tenant.
    fn signals(&self, tenant: &str) -> Vec<TargetSignals>;
}

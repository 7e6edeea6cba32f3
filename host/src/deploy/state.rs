//! Policy state stores across restarts: each tenant's store (what learning policies
//! learned) is restored at start-up and snapshotted while the gateway runs and at exit,
//! and so are its policy counters (`saved_stats`).

use super::{Deployer, LiveTenants, PolicyStore, StoreError, TenantPolicy};
use crate::policy::{StateLimits, StateStore};
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A tenant's state store as of its last snapshot (empty when there is none). A
/// damaged snapshot is set aside and its last good copy used; with no good copy,
/// the error names the file and start-up stops.
pub fn restore_state(store: &PolicyStore, tenant: &str) -> Result<StateStore, StoreError> {
    let limits = StateLimits::default();
    let restored = store.load_state(tenant, |bytes| {
        StateStore::decode(bytes, limits).map_err(|e| e.to_string())
    })?;
    Ok(restored.unwrap_or_else(|| StateStore::new(limits)))
}

impl TenantPolicy {
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

    /// Saves the tenant's policy counters if they changed since the last save.
    /// Returns whether it wrote.
    pub fn save_stats(&self, deployer: &Deployer) -> Result<bool, StoreError> {
        if !deployer.store.is_persistent() {
            return Ok(false);
        }
        let now = self.capture_stats();
        let mut saved = self.saved_stats.lock().unwrap_or_else(|p| p.into_inner());
        if *saved == now {
            return Ok(false);
        }
        deployer.store.save_stats(&self.tenant, &now)?;
        *saved = now;
        Ok(true)
    }
}

/// Saves every tenant's changed state store; errors are logged, not returned, so
/// one tenant's full disk does not stop the others' snapshots.
pub fn save_states(tenants: &dyn LiveTenants) {
    let deployer = tenants.deployer();
    for policy in tenants.policies() {
        if let Err(e) = policy.save_state(deployer) {
            tracing::error!(tenant = %policy.tenant, error = %e, "cannot save the policy state snapshot");
        }
        if let Err(e) = policy.save_stats(deployer) {
            tracing::error!(tenant = %policy.tenant, error = %e, "cannot save the policy counters");
        }
    }
}

/// Snapshots changed state stores and counters every `every` until `tenants` is
/// dropped.
pub fn spawn_state_snapshots<T: LiveTenants + 'static>(
    tenants: &Arc<T>,
    every: std::time::Duration,
) -> tokio::task::JoinHandle<()> {
    let weak = Arc::downgrade(tenants);
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            let Some(tenants) = weak.upgrade() else {
                return;
            };
            let _ = tokio::task::spawn_blocking(move || save_states(&*tenants)).await;
        }
    })
}

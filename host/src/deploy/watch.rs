//! A watched directory as a second source of policies: `<dir>/<tenant>/policy.wasm`
//! and `<dir>/<tenant>/config.json`. A change is validated and activated like an
//! upload; an invalid file is reported and the running binding stays.

use super::LiveTenants;
use notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer_opt};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// File names inside a tenant's folder.
pub const POLICY_FILE: &str = "policy.wasm";
/// The config beside it (optional: `{}` when absent).
pub const CONFIG_FILE: &str = "config.json";

/// Quiet time after a change before a tenant's folder is read, so a deploy that
/// writes the policy and then the config is applied once, complete. The debouncer
/// delivers changes in batches at most twice this long after they happen, however
/// long a burst of writes lasts.
const SETTLE: Duration = Duration::from_millis(150);

/// Keeps the watch running; dropping it stops it.
pub struct DirWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher>,
}

/// Applies what `dir` holds now, then watches it for changes.
pub fn spawn<T: LiveTenants + 'static>(tenants: Arc<T>, dir: &Path) -> notify::Result<DirWatcher> {
    std::fs::create_dir_all(dir).map_err(notify::Error::io)?;
    let dir = dir.canonicalize().map_err(notify::Error::io)?;
    let (tx, rx) = mpsc::channel::<DebounceEventResult>();
    let config = notify_debouncer_mini::Config::default()
        .with_timeout(SETTLE)
        .with_batch_mode(true);
    let mut debouncer = new_debouncer_opt::<_, notify::RecommendedWatcher>(config, tx)?;
    debouncer.watcher().watch(&dir, RecursiveMode::Recursive)?;
    let known: Vec<String> = tenants.policies().map(|p| p.tenant.to_string()).collect();
    for tenant in known {
        apply(&*tenants, &dir, &tenant, true);
    }
    std::thread::Builder::new()
        .name("signalbox-policy-dir".into())
        .spawn(move || run(&*tenants, &dir, &rx))
        .map_err(notify::Error::io)?;
    Ok(DirWatcher {
        _debouncer: debouncer,
    })
}

fn run(tenants: &dyn LiveTenants, dir: &Path, rx: &mpsc::Receiver<DebounceEventResult>) {
    // Ends when the debouncer (which owns the sender) is dropped.
    while let Ok(batch) = rx.recv() {
        let events = match batch {
            Ok(events) => events,
            Err(e) => {
                tracing::warn!(folder = %dir.display(), error = %e, "policy folder watch error");
                continue;
            }
        };
        let touched: BTreeSet<String> = events
            .iter()
            .filter_map(|event| tenant_of(dir, &event.path))
            .collect();
        for tenant in touched {
            apply(tenants, dir, &tenant, false);
        }
    }
}

/// The tenant folder a changed path belongs to.
fn tenant_of(dir: &Path, path: &Path) -> Option<String> {
    let relative = path.strip_prefix(dir).ok()?;
    let first = relative.components().next()?;
    Some(first.as_os_str().to_string_lossy().into_owned())
}

/// Validates and activates the tenant's folder, unless it is what already runs.
fn apply(tenants: &dyn LiveTenants, dir: &Path, tenant: &str, at_start: bool) {
    let Some(policy) = tenants.policy(tenant) else {
        if !at_start {
            tracing::warn!(folder = %dir.join(tenant).display(), "policy folder for an unknown tenant; ignored");
        }
        return;
    };
    let folder: PathBuf = dir.join(tenant);
    let Ok(bytes) = std::fs::read(folder.join(POLICY_FILE)) else {
        return; // nothing deployed here (yet)
    };
    let config = match std::fs::read_to_string(folder.join(CONFIG_FILE)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => "{}".to_owned(),
        Err(e) => {
            tracing::error!(tenant, error = %e, "cannot read the policy folder's config; the running binding stays");
            return;
        }
    };
    let current = policy.current();
    let version = crate::policy::sha256_hex(&bytes);
    if current.active.version() == version && same_json(current.active.config(), &config) {
        return;
    }
    let deployer = tenants.deployer();
    let signals = tenants.signals(tenant);
    let source = super::Source {
        name: "policy",
        bytes: &bytes,
        config: &config,
    };
    let result = policy
        .upload(deployer, source, &signals)
        .and_then(|meta| policy.activate(deployer, &meta.version, Some(&config), &signals));
    match result {
        Ok(d) => {
            tracing::info!(tenant, policy = %d.label, folder = %folder.display(), "policy folder activated")
        }
        Err(e) => {
            tracing::error!(tenant, folder = %folder.display(), error = %e, "policy folder rejected; the running binding stays")
        }
    }
}

fn same_json(a: &str, b: &str) -> bool {
    let parse = |s: &str| serde_json::from_str::<serde_json::Value>(s).ok();
    a == b || (parse(a).is_some() && parse(a) == parse(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_belong_to_the_tenant_folder_they_are_in() {
        let dir = Path::new("/policies");
        assert_eq!(
            tenant_of(dir, Path::new("/policies/acme/policy.wasm")),
            Some("acme".to_owned())
        );
        assert_eq!(
            tenant_of(dir, Path::new("/policies/acme")),
            Some("acme".to_owned())
        );
        assert_eq!(tenant_of(dir, Path::new("/policies")), None);
        assert_eq!(
            tenant_of(dir, Path::new("/elsewhere/acme/policy.wasm")),
            None
        );
    }

    #[test]
    fn configs_compare_as_json() {
        assert!(same_json("{}", "{}"));
        assert!(same_json(r#"{"a": 1, "b": 2}"#, r#"{"b":2,"a":1}"#));
        assert!(!same_json(r#"{"a": 1}"#, r#"{"a": 2}"#));
        assert!(!same_json("not json", "also not json"));
        assert!(same_json("same text", "same text"));
    }
}

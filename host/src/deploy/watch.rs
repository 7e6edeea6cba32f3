//! A watched directory as a second source of policies: `<dir>/<tenant>/policy.wasm`
//! and `<dir>/<tenant>/config.json`. A change is validated and activated like an
//! upload; an invalid file is reported and the running binding stays.

use crate::gateway::Gateway;
use notify::{RecursiveMode, Watcher};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// File names inside a tenant's folder.
pub const POLICY_FILE: &str = "policy.wasm";
/// The config beside it (optional: `{}` when absent).
pub const CONFIG_FILE: &str = "config.json";

/// Quiet time after the last change before a tenant's folder is read: a deploy that
/// writes the policy and then the config is applied once, complete.
const SETTLE: Duration = Duration::from_millis(150);

/// Keeps the watch running; dropping it stops it.
pub struct DirWatcher {
    _watcher: notify::RecommendedWatcher,
}

/// Applies what `dir` holds now, then watches it for changes.
pub fn spawn(gateway: Arc<Gateway>, dir: &Path) -> notify::Result<DirWatcher> {
    std::fs::create_dir_all(dir).map_err(notify::Error::io)?;
    let dir = dir.canonicalize().map_err(notify::Error::io)?;
    let (tx, rx) = mpsc::channel::<PathBuf>();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            for path in event.paths {
                let _ = tx.send(path);
            }
        }
    })?;
    watcher.watch(&dir, RecursiveMode::Recursive)?;
    for tenant in gateway.tenants.keys() {
        apply(&gateway, &dir, tenant, true);
    }
    std::thread::Builder::new()
        .name("signalbox-policy-dir".into())
        .spawn(move || run(&gateway, &dir, &rx))
        .map_err(notify::Error::io)?;
    Ok(DirWatcher { _watcher: watcher })
}

fn run(gateway: &Gateway, dir: &Path, rx: &mpsc::Receiver<PathBuf>) {
    // Ends when the watcher (the sender's owner) is dropped.
    while let Ok(first) = rx.recv() {
        let mut touched = BTreeSet::new();
        touched.extend(tenant_of(dir, &first));
        loop {
            match rx.recv_timeout(SETTLE) {
                Ok(path) => touched.extend(tenant_of(dir, &path)),
                Err(mpsc::RecvTimeoutError::Timeout) => break,
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        }
        for tenant in touched {
            apply(gateway, dir, &tenant, false);
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
fn apply(gateway: &Gateway, dir: &Path, tenant: &str, at_start: bool) {
    let Some(t) = gateway.tenants.get(tenant) else {
        if !at_start {
            tracing::warn!(folder = %dir.join(tenant).display(), "policy folder for an unknown tenant; ignored");
        }
        return;
    };
    let folder = dir.join(tenant);
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
    let current = t.policy.current();
    let version = crate::policy::sha256_hex(&bytes);
    if current.active.version() == version && same_json(current.active.config(), &config) {
        return;
    }
    let deployer = &gateway.deployer;
    let signals = gateway.signals.snapshot(&t.targets);
    let source = super::Source {
        name: "policy",
        bytes: &bytes,
        config: &config,
    };
    let result = t
        .policy
        .upload(deployer, source, &signals)
        .and_then(|meta| {
            t.policy
                .activate(deployer, &meta.version, &config, &signals)
        });
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

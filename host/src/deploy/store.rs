//! Where uploaded policy versions and each tenant's bindings live.
//!
//! On disk (when a state directory is configured), one folder per tenant:
//! `tenants/<tenant>/versions/<sha256>.wasm` with a `<sha256>.json` beside it (name,
//! size, upload time), and `tenants/<tenant>/bindings.json` (active, history,
//! candidate). Every write goes to a temporary file that is synced and renamed over
//! the old one, so a crash leaves either the old state or the new, never half.
//! Without a directory the same data is kept in memory and lost at exit.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What a store operation failed on.
#[derive(Debug, thiserror::Error)]
#[error("policy store: {action} {path}: {source}")]
pub struct StoreError {
    action: &'static str,
    path: PathBuf,
    source: std::io::Error,
}

/// Metadata of one uploaded version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VersionMeta {
    /// sha256 of the component, hex.
    pub version: String,
    /// Name given at upload.
    pub name: String,
    /// Size in bytes.
    pub size: usize,
    /// Upload time, seconds since the Unix epoch.
    pub uploaded_at: u64,
}

/// A version with the config it runs with.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BindingSpec {
    /// Version id.
    pub version: String,
    /// Policy name.
    pub name: String,
    /// Config JSON text.
    pub config: String,
}

/// A candidate on record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CandidateSpec {
    /// The version and config.
    pub binding: BindingSpec,
    /// `shadow` or `canary`.
    pub mode: String,
    /// Canary share in `[0, 1]` (0 for shadow).
    #[serde(default)]
    pub share: f64,
}

/// A tenant's bindings as stored.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TenantBindings {
    /// The active binding.
    pub active: Option<BindingSpec>,
    /// Earlier active bindings, most recent last (rollback pops).
    #[serde(default)]
    pub history: Vec<BindingSpec>,
    /// A version on trial.
    #[serde(default)]
    pub candidate: Option<CandidateSpec>,
    /// Versions quarantined automatically.
    #[serde(default)]
    pub quarantined: Vec<String>,
    /// The binding the config file named when it was last read: a changed config
    /// activates its policy at start-up, an unchanged one leaves the stored state.
    #[serde(default)]
    pub seed: Option<BindingSpec>,
}

/// Earlier bindings kept for rollback.
const HISTORY_LIMIT: usize = 20;

impl TenantBindings {
    /// Makes `spec` active, remembering the one it replaces.
    pub fn activate(&mut self, spec: BindingSpec) {
        if let Some(old) = self.active.replace(spec) {
            self.history.push(old);
            if self.history.len() > HISTORY_LIMIT {
                self.history.remove(0);
            }
        }
    }
}

/// A stored version in memory: its metadata and bytes, by (tenant, version).
type MemoryVersions = HashMap<(String, String), (VersionMeta, Arc<[u8]>)>;

/// The store of versions and bindings.
pub struct PolicyStore {
    dir: Option<PathBuf>,
    /// Blobs when there is no directory.
    memory: Mutex<MemoryVersions>,
    memory_bindings: Mutex<HashMap<String, TenantBindings>>,
}

impl PolicyStore {
    /// A store in `dir` (created if missing), or in memory.
    pub fn open(dir: Option<&Path>) -> Result<Self, StoreError> {
        if let Some(dir) = dir {
            let tenants = dir.join("tenants");
            std::fs::create_dir_all(&tenants).map_err(|source| StoreError {
                action: "create",
                path: tenants,
                source,
            })?;
        }
        Ok(PolicyStore {
            dir: dir.map(Path::to_owned),
            memory: Mutex::default(),
            memory_bindings: Mutex::default(),
        })
    }

    /// Whether state survives a restart.
    pub fn is_persistent(&self) -> bool {
        self.dir.is_some()
    }

    fn tenant_dir(&self, tenant: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join("tenants").join(path_component(tenant)))
    }

    /// Stores a version (idempotent: the id is the content's hash).
    pub fn put_version(
        &self,
        tenant: &str,
        meta: &VersionMeta,
        bytes: &[u8],
    ) -> Result<(), StoreError> {
        let Some(dir) = self.tenant_dir(tenant) else {
            if let Ok(mut memory) = self.memory.lock() {
                memory.insert(
                    (tenant.to_owned(), meta.version.clone()),
                    (meta.clone(), bytes.into()),
                );
            }
            return Ok(());
        };
        let versions = dir.join("versions");
        let wasm = versions.join(format!("{}.wasm", meta.version));
        if !wasm.exists() {
            write_atomic(&wasm, bytes)?;
        }
        let json = serde_json::to_vec_pretty(meta).unwrap_or_default();
        write_atomic(&versions.join(format!("{}.json", meta.version)), &json)
    }

    /// A version's bytes and metadata.
    pub fn version(&self, tenant: &str, version: &str) -> Option<(VersionMeta, Arc<[u8]>)> {
        if !is_version_id(version) {
            return None;
        }
        let Some(dir) = self.tenant_dir(tenant) else {
            let memory = self.memory.lock().ok()?;
            return memory
                .get(&(tenant.to_owned(), version.to_owned()))
                .cloned();
        };
        let versions = dir.join("versions");
        let bytes = std::fs::read(versions.join(format!("{version}.wasm"))).ok()?;
        let meta = std::fs::read(versions.join(format!("{version}.json")))
            .ok()
            .and_then(|j| serde_json::from_slice(&j).ok())
            .unwrap_or_else(|| VersionMeta {
                version: version.to_owned(),
                name: "policy".into(),
                size: bytes.len(),
                uploaded_at: 0,
            });
        Some((meta, bytes.into()))
    }

    /// Every stored version of a tenant, oldest upload first.
    pub fn versions(&self, tenant: &str) -> Vec<VersionMeta> {
        let mut out: Vec<VersionMeta> = match self.tenant_dir(tenant) {
            None => self
                .memory
                .lock()
                .map(|m| {
                    m.iter()
                        .filter(|((t, _), _)| t == tenant)
                        .map(|(_, (meta, _))| meta.clone())
                        .collect()
                })
                .unwrap_or_default(),
            Some(dir) => std::fs::read_dir(dir.join("versions"))
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.path().extension().is_some_and(|x| x == "json"))
                .filter_map(|e| std::fs::read(e.path()).ok())
                .filter_map(|j| serde_json::from_slice(&j).ok())
                .collect(),
        };
        out.sort_by(|a, b| (a.uploaded_at, &a.version).cmp(&(b.uploaded_at, &b.version)));
        out
    }

    /// A tenant's stored bindings (empty if none yet).
    pub fn bindings(&self, tenant: &str) -> TenantBindings {
        match self.tenant_dir(tenant) {
            None => self
                .memory_bindings
                .lock()
                .ok()
                .and_then(|m| m.get(tenant).cloned())
                .unwrap_or_default(),
            Some(dir) => std::fs::read(dir.join("bindings.json"))
                .ok()
                .and_then(|j| serde_json::from_slice(&j).ok())
                .unwrap_or_default(),
        }
    }

    /// Replaces a tenant's stored bindings.
    pub fn save_bindings(&self, tenant: &str, bindings: &TenantBindings) -> Result<(), StoreError> {
        match self.tenant_dir(tenant) {
            None => {
                if let Ok(mut m) = self.memory_bindings.lock() {
                    m.insert(tenant.to_owned(), bindings.clone());
                }
                Ok(())
            }
            Some(dir) => {
                let json = serde_json::to_vec_pretty(bindings).unwrap_or_default();
                write_atomic(&dir.join("bindings.json"), &json)
            }
        }
    }
}

impl PolicyStore {
    /// A tenant's state-store snapshot, if one was saved (never without a directory:
    /// in memory, the live store is the only copy).
    pub fn load_state(&self, tenant: &str) -> Option<Vec<u8>> {
        std::fs::read(self.tenant_dir(tenant)?.join("state.bin")).ok()
    }

    /// Saves a tenant's state-store snapshot (nothing to do without a directory).
    pub fn save_state(&self, tenant: &str, snapshot: &[u8]) -> Result<(), StoreError> {
        match self.tenant_dir(tenant) {
            Some(dir) => write_atomic(&dir.join("state.bin"), snapshot),
            None => Ok(()),
        }
    }
}

/// A version id is 64 lower-case hex digits (which also keeps it a safe file name).
pub fn is_version_id(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A tenant id as a file name: safe characters kept, anything else `%XX`.
fn path_component(id: &str) -> String {
    let mut out = String::with_capacity(id.len());
    for b in id.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Writes `bytes` to `path` so that readers see the old content or the new, never a
/// mix: temporary file in the same directory, synced, renamed.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    let fail = |action, source| StoreError {
        action,
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| fail("create the folder of", e))?;
    let mut tmp = tempfile_in(dir, path).map_err(|e| fail("create a temporary file for", e))?;
    tmp.1
        .write_all(bytes)
        .and_then(|()| tmp.1.sync_all())
        .map_err(|e| fail("write", e))?;
    std::fs::rename(&tmp.0, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp.0);
        fail("replace", e)
    })
}

fn tempfile_in(dir: &Path, target: &Path) -> std::io::Result<(PathBuf, std::fs::File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)?;
    Ok((tmp, file))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: char) -> VersionMeta {
        VersionMeta {
            version: v.to_string().repeat(64),
            name: "p".into(),
            size: 3,
            uploaded_at: 1,
        }
    }

    fn spec(v: char) -> BindingSpec {
        BindingSpec {
            version: v.to_string().repeat(64),
            name: "p".into(),
            config: "{}".into(),
        }
    }

    #[test]
    fn versions_and_bindings_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(Some(dir.path())).unwrap();
        store.put_version("team a/1", &meta('a'), b"abc").unwrap();
        let mut b = TenantBindings::default();
        b.activate(spec('a'));
        b.activate(spec('b'));
        store.save_bindings("team a/1", &b).unwrap();

        let again = PolicyStore::open(Some(dir.path())).unwrap();
        assert_eq!(again.bindings("team a/1"), b);
        assert_eq!(again.versions("team a/1"), vec![meta('a')]);
        let (m, bytes) = again.version("team a/1", &"a".repeat(64)).unwrap();
        assert_eq!((m, &*bytes), (meta('a'), &b"abc"[..]));
        assert!(again.version("team a/1", "../../etc/passwd").is_none());
        assert!(again.versions("other").is_empty());
        // No temporary files are left behind.
        let leftovers = std::fs::read_dir(dir.path().join("tenants/team%20a%2F1"))
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .count();
        assert_eq!(leftovers, 0);
    }

    #[test]
    fn history_keeps_the_replaced_bindings_in_order() {
        let mut b = TenantBindings::default();
        for c in ['a', 'b', 'c'] {
            b.activate(spec(c));
        }
        assert_eq!(b.active, Some(spec('c')));
        assert_eq!(b.history, vec![spec('a'), spec('b')]);
    }

    #[test]
    fn the_memory_store_behaves_like_the_disk_store() {
        let store = PolicyStore::open(None).unwrap();
        store.put_version("t", &meta('a'), b"abc").unwrap();
        assert_eq!(store.versions("t"), vec![meta('a')]);
        assert!(store.version("u", &"a".repeat(64)).is_none());
    }
}

//! Where uploaded policy versions, each tenant's bindings and its policy state live.
//!
//! On disk (when a state directory is configured), one folder per tenant:
//! `tenants/<tenant>/versions/<sha256>.wasm` with a `<sha256>.json` beside it (name,
//! size, upload time), `tenants/<tenant>/bindings.json` (active, history, candidate,
//! quarantine), `tenants/<tenant>/stats.json` (the counters the admin API reports)
//! and `tenants/<tenant>/state.bin` (the policy state store's snapshot).
//! Without a directory the same data is kept in memory and lost at exit.
//!
//! Nothing stored is ever silently replaced by defaults. Every write is atomic and
//! durable ([`crate::atomic_file`]), and each record is then copied to `<file>.prev`,
//! its last good copy. A record that does not read back is moved aside as
//! `<file>.corrupt-<unix ms>` with an error log, and its last good copy takes its
//! place; when there is no good copy either, the read fails with an error naming the
//! file, and start-up stops there: the operator decides what to do with it.

use super::{SavedStats, TenantBindings, VersionMeta};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// What a store operation failed on.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file could not be read or written.
    #[error("policy store: cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// A record does not read back and has no good copy to fall back on.
    #[error(
        "policy store: {} is damaged ({reason}) and its last good copy {} is missing or damaged too; repair the file, or remove it to start without what it held",
        path.display(),
        prev.display()
    )]
    Damaged {
        /// The damaged file (left where it is).
        path: PathBuf,
        /// Where its last good copy would be.
        prev: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

/// A stored version: its metadata and the component's bytes.
pub type StoredVersion = (VersionMeta, Arc<[u8]>);

/// Versions in memory, by (tenant, version).
type MemoryVersions = HashMap<(String, String), StoredVersion>;

/// The store of versions and bindings.
pub struct PolicyStore {
    dir: Option<PathBuf>,
    /// Blobs when there is no directory.
    memory: Mutex<MemoryVersions>,
    memory_bindings: Mutex<HashMap<String, TenantBindings>>,
}

const BINDINGS_FILE: &str = "bindings.json";
const STATE_FILE: &str = "state.bin";
const STATS_FILE: &str = "stats.json";

impl PolicyStore {
    /// A store in `dir` (created if missing), or in memory.
    pub fn open(dir: Option<&Path>) -> Result<Self, StoreError> {
        if let Some(dir) = dir {
            let tenants = dir.join("tenants");
            std::fs::create_dir_all(&tenants).map_err(|source| StoreError::Io {
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
            write_file(&wasm, bytes)?;
        }
        write_record(
            &versions.join(format!("{}.json", meta.version)),
            &json(meta),
        )
    }

    /// A version's bytes and metadata (`None` if it is not stored).
    pub fn version(
        &self,
        tenant: &str,
        version: &str,
    ) -> Result<Option<StoredVersion>, StoreError> {
        if !is_version_id(version) {
            return Ok(None);
        }
        let Some(dir) = self.tenant_dir(tenant) else {
            return Ok(self
                .memory
                .lock()
                .ok()
                .and_then(|m| m.get(&(tenant.to_owned(), version.to_owned())).cloned()));
        };
        let versions = dir.join("versions");
        let wasm = versions.join(format!("{version}.wasm"));
        let bytes = match std::fs::read(&wasm) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(io_error("read", &wasm, source)),
        };
        // A component written without its metadata (a crash between the two writes)
        // is still the version its name says; only the name and time are unknown.
        let meta = read_record(&versions.join(format!("{version}.json")), parse_json)?
            .unwrap_or_else(|| VersionMeta {
                version: version.to_owned(),
                name: "policy".into(),
                size: bytes.len(),
                uploaded_at: 0,
                config: None,
            });
        Ok(Some((meta, bytes.into())))
    }

    /// Every stored version of a tenant, oldest upload first.
    pub fn versions(&self, tenant: &str) -> Result<Vec<VersionMeta>, StoreError> {
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
            Some(dir) => {
                let folder = dir.join("versions");
                let entries = match std::fs::read_dir(&folder) {
                    Ok(entries) => entries,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
                    Err(source) => return Err(io_error("list", &folder, source)),
                };
                // Listed first, read after: reading may set a damaged file aside and
                // restore its good copy in this folder.
                let mut paths = Vec::new();
                for entry in entries {
                    let path = entry.map_err(|e| io_error("list", &folder, e))?.path();
                    if path.extension().is_some_and(|x| x == "json") {
                        paths.push(path);
                    }
                }
                let mut metas = Vec::new();
                for path in paths {
                    metas.extend(read_record(&path, parse_json)?);
                }
                metas
            }
        };
        out.sort_by(|a, b| (a.uploaded_at, &a.version).cmp(&(b.uploaded_at, &b.version)));
        Ok(out)
    }

    /// A tenant's stored bindings (empty if none yet).
    pub fn bindings(&self, tenant: &str) -> Result<TenantBindings, StoreError> {
        match self.tenant_dir(tenant) {
            None => Ok(self
                .memory_bindings
                .lock()
                .ok()
                .and_then(|m| m.get(tenant).cloned())
                .unwrap_or_default()),
            Some(dir) => Ok(read_record(&dir.join(BINDINGS_FILE), parse_json)?.unwrap_or_default()),
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
            Some(dir) => write_record(&dir.join(BINDINGS_FILE), &json(bindings)),
        }
    }

    /// A tenant's saved policy counters, if any were saved (never without a
    /// directory).
    pub fn load_stats(&self, tenant: &str) -> Result<Option<SavedStats>, StoreError> {
        match self.tenant_dir(tenant) {
            Some(dir) => read_record(&dir.join(STATS_FILE), parse_json),
            None => Ok(None),
        }
    }

    /// Saves a tenant's policy counters (nothing to do without a directory).
    pub fn save_stats(&self, tenant: &str, stats: &SavedStats) -> Result<(), StoreError> {
        match self.tenant_dir(tenant) {
            Some(dir) => write_record(&dir.join(STATS_FILE), &json(stats)),
            None => Ok(()),
        }
    }

    /// A tenant's state-store snapshot, decoded by `decode`, if one was saved (never
    /// without a directory: in memory, the live store is the only copy).
    pub fn load_state<T>(
        &self,
        tenant: &str,
        decode: impl Fn(&[u8]) -> Result<T, String>,
    ) -> Result<Option<T>, StoreError> {
        match self.tenant_dir(tenant) {
            Some(dir) => read_record(&dir.join(STATE_FILE), decode),
            None => Ok(None),
        }
    }

    /// Saves a tenant's state-store snapshot (nothing to do without a directory).
    pub fn save_state(&self, tenant: &str, snapshot: &[u8]) -> Result<(), StoreError> {
        match self.tenant_dir(tenant) {
            Some(dir) => write_record(&dir.join(STATE_FILE), snapshot),
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

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> StoreError {
    StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

fn json<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Plain data (strings, numbers, options, vectors) always serialises.
    serde_json::to_vec_pretty(value).unwrap_or_default()
}

fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_json::from_slice(bytes).map_err(|e| e.to_string())
}

/// Where the last good copy of `path` is kept.
fn last_good_copy(path: &Path) -> PathBuf {
    with_suffix(path, ".prev")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    crate::atomic_file::write(path, bytes).map_err(|e| io_error("write", path, e))
}

/// Writes a record, then its last good copy. The record is what counts: once it is
/// written the change is made, so a failure to refresh the copy is logged, not
/// returned (the caller would otherwise believe nothing changed).
fn write_record(path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
    write_file(path, bytes)?;
    let prev = last_good_copy(path);
    if let Err(e) = crate::atomic_file::write(&prev, bytes) {
        tracing::error!(file = %prev.display(), error = %e, "cannot refresh the last good copy of a policy store file");
    }
    Ok(())
}

/// Reads a record: `None` if it does not exist; its last good copy (restored in its
/// place, the damaged file set aside) if it does not parse; an error naming the file
/// if neither does.
fn read_record<T>(
    path: &Path,
    parse: impl Fn(&[u8]) -> Result<T, String>,
) -> Result<Option<T>, StoreError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(io_error("read", path, source)),
    };
    let reason = match parse(&bytes) {
        Ok(value) => return Ok(Some(value)),
        Err(reason) => reason,
    };
    let prev = last_good_copy(path);
    let good = std::fs::read(&prev)
        .ok()
        .and_then(|b| parse(&b).ok().map(|value| (value, b)));
    let Some((value, good_bytes)) = good else {
        return Err(StoreError::Damaged {
            path: path.to_owned(),
            prev,
            reason,
        });
    };
    let aside = with_suffix(path, &format!(".corrupt-{}", unix_ms()));
    std::fs::rename(path, &aside).map_err(|e| io_error("set aside", path, e))?;
    tracing::error!(
        file = %path.display(),
        set_aside_as = %aside.display(),
        error = %reason,
        "damaged policy store file set aside; its last good copy takes its place"
    );
    // Restored at once: a later start-up must not find the file missing and begin
    // from nothing.
    write_file(path, &good_bytes)?;
    Ok(Some(value))
}

fn unix_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::bindings::tests::spec;

    fn meta(v: char) -> VersionMeta {
        VersionMeta {
            version: v.to_string().repeat(64),
            name: "p".into(),
            size: 3,
            uploaded_at: 1,
            config: None,
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    /// Bindings with a history and a quarantine list: what must not be lost.
    fn rich_bindings() -> TenantBindings {
        let mut b = TenantBindings::default();
        b.activate(spec('a'));
        b.activate(spec('b'));
        b.activate(spec('c'));
        b.quarantine(&spec('d').version);
        b
    }

    #[test]
    fn versions_and_bindings_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(Some(dir.path())).unwrap();
        store.put_version("team a/1", &meta('a'), b"abc").unwrap();
        let b = rich_bindings();
        store.save_bindings("team a/1", &b).unwrap();

        let again = PolicyStore::open(Some(dir.path())).unwrap();
        assert_eq!(again.bindings("team a/1").unwrap(), b);
        assert_eq!(again.versions("team a/1").unwrap(), vec![meta('a')]);
        let (m, bytes) = again.version("team a/1", &"a".repeat(64)).unwrap().unwrap();
        assert_eq!((m, &*bytes), (meta('a'), &b"abc"[..]));
        assert!(
            again
                .version("team a/1", "../../etc/passwd")
                .unwrap()
                .is_none()
        );
        assert!(again.versions("other").unwrap().is_empty());
        assert_eq!(again.bindings("other").unwrap(), TenantBindings::default());
        // Each record has its last good copy, and no temporary file is left behind.
        assert_eq!(
            files(&dir.path().join("tenants/team%20a%2F1")),
            vec!["bindings.json", "bindings.json.prev", "versions"]
        );
        let versions = files(&dir.path().join("tenants/team%20a%2F1/versions"));
        assert_eq!(versions.len(), 3, "{versions:?}");
    }

    #[test]
    fn damaged_bindings_are_set_aside_and_the_last_good_copy_used() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(Some(dir.path())).unwrap();
        let b = rich_bindings();
        store.save_bindings("t", &b).unwrap();
        let tenant = dir.path().join("tenants/t");
        std::fs::write(tenant.join("bindings.json"), b"{\"active\": {\"vers").unwrap();

        assert_eq!(
            store.bindings("t").unwrap(),
            b,
            "history and quarantine intact"
        );
        let names = files(&tenant);
        let aside: Vec<&String> = names
            .iter()
            .filter(|n| n.starts_with("bindings.json.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{names:?}");
        assert_eq!(
            std::fs::read(tenant.join(aside[0])).unwrap(),
            b"{\"active\": {\"vers"
        );
        // The good copy is back in place: the next start reads it directly.
        assert_eq!(
            parse_json::<TenantBindings>(&std::fs::read(tenant.join("bindings.json")).unwrap()),
            Ok(b)
        );
    }

    #[test]
    fn damaged_bindings_without_a_good_copy_are_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(Some(dir.path())).unwrap();
        store.save_bindings("t", &rich_bindings()).unwrap();
        let tenant = dir.path().join("tenants/t");
        std::fs::write(tenant.join("bindings.json"), b"").unwrap();
        std::fs::remove_file(tenant.join("bindings.json.prev")).unwrap();

        let e = store.bindings("t").unwrap_err();
        assert!(matches!(e, StoreError::Damaged { .. }), "{e:?}");
        let message = e.to_string();
        assert!(
            message.contains(&tenant.join("bindings.json").display().to_string()),
            "{message}"
        );
        // Nothing moved: the operator finds the file where it was.
        assert_eq!(files(&tenant), vec!["bindings.json"]);

        // A damaged last good copy is no better.
        std::fs::write(tenant.join("bindings.json.prev"), b"[]").unwrap();
        assert!(matches!(
            store.bindings("t"),
            Err(StoreError::Damaged { .. })
        ));
    }

    #[test]
    fn damaged_version_metadata_follows_the_same_rule() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(Some(dir.path())).unwrap();
        store.put_version("t", &meta('a'), b"abc").unwrap();
        let json = dir
            .path()
            .join(format!("tenants/t/versions/{}.json", "a".repeat(64)));
        std::fs::write(&json, b"not json").unwrap();
        assert_eq!(store.versions("t").unwrap(), vec![meta('a')]);

        std::fs::write(&json, b"not json").unwrap();
        std::fs::remove_file(last_good_copy(&json)).unwrap();
        assert!(matches!(
            store.versions("t"),
            Err(StoreError::Damaged { .. })
        ));
        assert!(matches!(
            store.version("t", &"a".repeat(64)),
            Err(StoreError::Damaged { .. })
        ));
    }

    #[test]
    fn state_snapshots_follow_the_same_rule() {
        let dir = tempfile::tempdir().unwrap();
        let store = PolicyStore::open(Some(dir.path())).unwrap();
        let decode = |b: &[u8]| {
            if b.starts_with(b"ok:") {
                Ok(b.to_vec())
            } else {
                Err("bad magic".to_owned())
            }
        };
        assert_eq!(store.load_state("t", decode).unwrap(), None);
        store.save_state("t", b"ok:1").unwrap();
        let state = dir.path().join("tenants/t/state.bin");
        std::fs::write(&state, b"garbage").unwrap();
        assert_eq!(
            store.load_state("t", decode).unwrap(),
            Some(b"ok:1".to_vec())
        );

        std::fs::write(&state, b"garbage").unwrap();
        std::fs::remove_file(last_good_copy(&state)).unwrap();
        let e = store.load_state("t", decode).unwrap_err();
        assert!(e.to_string().contains("bad magic"), "{e}");
    }

    #[test]
    fn the_memory_store_behaves_like_the_disk_store() {
        let store = PolicyStore::open(None).unwrap();
        store.put_version("t", &meta('a'), b"abc").unwrap();
        assert_eq!(store.versions("t").unwrap(), vec![meta('a')]);
        assert!(store.version("u", &"a".repeat(64)).unwrap().is_none());
        let b = rich_bindings();
        store.save_bindings("t", &b).unwrap();
        assert_eq!(store.bindings("t").unwrap(), b);
        assert_eq!(store.load_state("t", |b| Ok(b.to_vec())).unwrap(), None);
    }
}

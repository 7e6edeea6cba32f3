//! The on-disk cache of compiled policies, so a restart does not recompile.
//!
//! Entries are keyed by the component's sha256 and by the engine's compatibility
//! hash (wasmtime version, target, settings), so a host upgrade or a settings change
//! never loads an incompatible artifact. Writes are atomic and durable
//! ([`crate::atomic_file`]): a crash never leaves half an artifact under a valid name.
//!
//! The directory must be as trusted as the binary itself: a compiled artifact is
//! native code, and loading one skips validation.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Debug)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_key: u64,
}

impl ArtifactCache {
    pub fn new(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut hasher = DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache {
            dir: dir.to_owned(),
            engine_key: hasher.finish(),
        })
    }

    fn path(&self, sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{sha256}-{:016x}.cwasm", self.engine_key))
    }

    /// The cached compilation of the component with this hash, if any and usable.
    pub fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        if !path.is_file() {
            return None;
        }
        // SAFETY: the file was written by `store` below from a component this engine
        // compiled, under a name that includes the engine's compatibility hash, in a
        // directory the operator trusts like the binary (see the module docs).
        // wasmtime still checks the artifact's header against the engine.
        #[allow(unsafe_code)]
        let loaded = unsafe { Component::deserialize_file(engine, &path) };
        match loaded {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "ignoring unusable compiled policy");
                None
            }
        }
    }

    /// Saves a compiled component; failures are logged, never fatal.
    pub fn store(&self, sha256: &str, component: &Component) {
        let path = self.path(sha256);
        let result = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|bytes| crate::atomic_file::write(&path, &bytes));
        if let Err(e) = result {
            tracing::warn!(path = %path.display(), error = %e, "cannot cache compiled policy");
        }
    }
}

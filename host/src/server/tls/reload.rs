//! Watching the certificate files and reloading them when they change.
//!
//! The parent directories are watched, not the files: editors, `mv` and Kubernetes'
//! symlink swaps replace a file rather than write into it, and a watch on the old file
//! would go quiet. Changes are gathered by `notify-debouncer-mini` for
//! [`QUIET_PERIOD`], so a chain and its key written together are read together; the
//! debouncer reports within twice that even while changes keep coming, so a reload is
//! never put off for long. The files are then reloaded only if they differ from the
//! last attempt, so a neighbour file changing or our own reads do not count. A pair
//! caught half-written fails to load (incomplete PEM, or a key that does not match the
//! chain): the previous certificate stays in service, and the write that completes the
//! pair brings another attempt.
//! Reloads run on the debouncer's own thread: they read files, which has no place on
//! the async workers.

use super::TlsError;
use super::certificate;
use super::resolver::SwappableCertificate;
use crate::config::TlsSection;
use notify::{RecommendedWatcher, RecursiveMode};
use notify_debouncer_mini::{DebounceEventResult, Debouncer, new_debouncer};
use rustls::crypto::CryptoProvider;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// How long changes are gathered before the files are read.
const QUIET_PERIOD: Duration = Duration::from_millis(200);

/// Keeps the watch going; dropping it stops watching and ends the debouncer's thread.
pub struct CertificateReloader {
    _debouncer: Debouncer<RecommendedWatcher>,
}

impl CertificateReloader {
    /// Watches the files of `section` and swaps `target`'s certificate when they change.
    /// `loaded` is what the files looked like when `target`'s certificate was read.
    pub fn start(
        section: TlsSection,
        provider: Arc<CryptoProvider>,
        target: Arc<SwappableCertificate>,
        loaded: FilesStamp,
    ) -> Result<CertificateReloader, TlsError> {
        let mut dirs = vec![watched_dir(&section.cert_file)];
        let key_dir = watched_dir(&section.key_file);
        if !dirs.contains(&key_dir) {
            dirs.push(key_dir);
        }
        let mut last = loaded;
        let on_change = move |result: DebounceEventResult| match result {
            // Which paths changed does not matter: a symlink swap changes a neighbour
            // (`..data`), and the stamps tell whether our files did.
            Ok(_events) => {
                let now = FilesStamp::of(&section);
                if now != last {
                    last = now;
                    reload(&section, &provider, &target);
                }
            }
            Err(e) => tracing::warn!(error = %e, "watching the TLS certificate files failed"),
        };
        let mut debouncer =
            new_debouncer(QUIET_PERIOD, on_change).map_err(|source| TlsError::Watch {
                dir: dirs[0].clone(),
                source,
            })?;
        for dir in dirs {
            debouncer
                .watcher()
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|source| TlsError::Watch { dir, source })?;
        }
        Ok(CertificateReloader {
            _debouncer: debouncer,
        })
    }
}

fn reload(section: &TlsSection, provider: &CryptoProvider, target: &SwappableCertificate) {
    match certificate::load(section, provider) {
        Ok(next) => {
            target.replace(next);
            tracing::info!(
                cert_file = %section.cert_file.display(),
                key_file = %section.key_file.display(),
                "TLS certificate reloaded"
            );
        }
        // The error names the file and the problem; it never quotes the key.
        Err(e) => tracing::warn!(
            error = %e,
            "TLS certificate not reloaded; still serving the previous one"
        ),
    }
}

/// The directory holding `file` (a bare file name lives in the current directory).
fn watched_dir(file: &Path) -> PathBuf {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// What the two files look like from the outside: enough to tell that one was
/// rewritten or replaced without reading the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilesStamp {
    cert: Option<FileStamp>,
    key: Option<FileStamp>,
}

impl FilesStamp {
    /// The files of `section` now (symlinks followed).
    pub fn of(section: &TlsSection) -> FilesStamp {
        FilesStamp {
            cert: FileStamp::of(&section.cert_file),
            key: FileStamp::of(&section.key_file),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    len: u64,
    modified: Option<SystemTime>,
    /// Device and inode: a file replaced by `mv` may keep its size and time.
    identity: (u64, u64),
}

impl FileStamp {
    fn of(path: &Path) -> Option<FileStamp> {
        let meta = std::fs::metadata(path).ok()?;
        Some(FileStamp {
            len: meta.len(),
            modified: meta.modified().ok(),
            identity: identity(&meta),
        })
    }
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bare_file_name_is_watched_in_the_current_directory() {
        assert_eq!(watched_dir(Path::new("cert.pem")), PathBuf::from("."));
        assert_eq!(
            watched_dir(Path::new("/etc/tls/cert.pem")),
            PathBuf::from("/etc/tls")
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_replaced_file_changes_the_stamp() {
        let dir = tempfile::tempdir().unwrap();
        let section = TlsSection {
            cert_file: dir.path().join("cert.pem"),
            key_file: dir.path().join("key.pem"),
            config_key: "server.tls",
        };
        std::fs::write(&section.cert_file, "one").unwrap();
        std::fs::write(&section.key_file, "one").unwrap();
        let before = FilesStamp::of(&section);
        assert_eq!(before, FilesStamp::of(&section));

        // Same size, replaced by a rename: the inode tells.
        let staged = dir.path().join("staged");
        std::fs::write(&staged, "two").unwrap();
        std::fs::rename(&staged, &section.key_file).unwrap();
        assert_ne!(before, FilesStamp::of(&section));
    }
}

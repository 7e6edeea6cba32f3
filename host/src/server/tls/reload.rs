//! Watching the certificate files and reloading them when they change.
//!
//! The parent directories are watched, not the files: editors, `mv` and Kubernetes'
//! symlink swaps replace a file rather than write into it, and a watch on the old file
//! would go quiet. Any change in those directories starts a short quiet period (a chain
//! written just before its key must not be loaded half-way); after it, the files are
//! reloaded only if they differ from the last attempt, so a neighbour file changing or
//! our own reads do not count. Reloading runs on its own thread: it reads files, which
//! has no place on the async workers.

use super::TlsError;
use super::certificate;
use super::resolver::SwappableCertificate;
use crate::config::TlsSection;
use notify::event::{AccessKind, AccessMode};
use notify::{Event, EventKind, RecommendedWatcher, RecursiveMode, Watcher};
use rustls::crypto::CryptoProvider;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime};

/// How long the files must stay untouched before they are read.
const QUIET_PERIOD: Duration = Duration::from_millis(200);
/// Longest wait for quiet: a directory that never settles still gets its reload.
const LONGEST_WAIT: Duration = Duration::from_secs(2);

/// Keeps the watch going; dropping it stops watching and ends the reload thread.
pub struct CertificateReloader {
    _watcher: RecommendedWatcher,
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
        // One pending signal is enough: a reload reads whatever is there by then.
        let (changed, changes) = mpsc::sync_channel::<()>(1);
        let mut watcher =
            notify::recommended_watcher(on_event(changed)).map_err(|source| TlsError::Watch {
                dir: watched_dir(&section.cert_file),
                source,
            })?;
        let mut dirs = vec![watched_dir(&section.cert_file)];
        let key_dir = watched_dir(&section.key_file);
        if !dirs.contains(&key_dir) {
            dirs.push(key_dir);
        }
        for dir in dirs {
            watcher
                .watch(&dir, RecursiveMode::NonRecursive)
                .map_err(|source| TlsError::Watch { dir, source })?;
        }
        std::thread::Builder::new()
            .name("tls-reload".into())
            .spawn(move || reload_on_change(&changes, &section, &provider, &target, loaded))
            .map_err(TlsError::ReloadThread)?;
        Ok(CertificateReloader { _watcher: watcher })
    }
}

/// The watcher's callback: runs on the watcher's thread, so it only signals.
fn on_event(changed: SyncSender<()>) -> impl FnMut(notify::Result<Event>) + Send + 'static {
    move |event| match event {
        Ok(event) if is_change(&event.kind) => match changed.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => {}
        },
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "watching the TLS certificate files failed"),
    }
}

/// Opening or reading a file (our own reloads do both) changes nothing; closing it
/// after writing does.
fn is_change(kind: &EventKind) -> bool {
    match kind {
        EventKind::Access(access) => *access == AccessKind::Close(AccessMode::Write),
        _ => true,
    }
}

fn reload_on_change(
    changes: &Receiver<()>,
    section: &TlsSection,
    provider: &CryptoProvider,
    target: &SwappableCertificate,
    mut last: FilesStamp,
) {
    // `recv` fails once the watcher, which owns the sender, is dropped.
    while changes.recv().is_ok() {
        if !wait_for_quiet(changes) {
            return;
        }
        let now = FilesStamp::of(section);
        if now == last {
            continue;
        }
        last = now;
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
}

/// Waits until no change arrived for [`QUIET_PERIOD`] (or [`LONGEST_WAIT`] passed).
/// False when the watcher is gone.
fn wait_for_quiet(changes: &Receiver<()>) -> bool {
    let deadline = Instant::now() + LONGEST_WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return true;
        }
        match changes.recv_timeout(QUIET_PERIOD.min(left)) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
        }
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
    fn only_writes_and_replacements_count_as_changes() {
        use notify::event::{CreateKind, ModifyKind, RenameMode};
        assert!(!is_change(&EventKind::Access(AccessKind::Open(
            AccessMode::Any
        ))));
        assert!(!is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Read
        ))));
        assert!(is_change(&EventKind::Access(AccessKind::Close(
            AccessMode::Write
        ))));
        assert!(is_change(&EventKind::Create(CreateKind::File)));
        assert!(is_change(&EventKind::Modify(ModifyKind::Name(
            RenameMode::To
        ))));
    }

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

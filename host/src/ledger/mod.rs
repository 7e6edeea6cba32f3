//! The usage ledger: one row per routed request, whichever way it ended, in an
//! embedded SQLite database, for billing and the usage API.
//!
//! Rows are written by a background thread in batches (one transaction per batch),
//! so a slow disk never slows a request. The request path hands a row over without
//! blocking: into a bounded queue, or — when the queue is full — into a spill list
//! the writer drains next, counted in `signalbox_ledger_spilled_total`. Nothing is
//! dropped.

mod query;
mod writer;

pub use query::{Aggregate, GroupBy, UsageQuery, parse_time};

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex};

/// One request the gateway routed, whichever way it ended. Never holds a key: `key_id`
/// is the key's public id.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageRow {
    /// Completion time, milliseconds since the Unix epoch (UTC).
    pub ts_ms: i64,
    /// Tenant id.
    pub tenant: String,
    /// The API key's id (never the key).
    pub key_id: String,
    /// The id of the target whose answer reached the client; empty when none did (the
    /// policy rejected the request, or every attempt failed).
    pub target: String,
    /// Model name (the target's); empty when no target answered.
    pub model: String,
    /// Input tokens.
    pub input_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Cost in US dollars from the target's prices.
    pub cost_usd: f64,
    /// Dispatch to end of answer, milliseconds.
    pub latency_ms: u32,
    /// Status returned to the client.
    pub status: u16,
    /// The deciding policy, `name@version`.
    pub policy: String,
    /// Targets that failed before this one (or in all, when none answered).
    pub fallback_depth: u32,
    /// The request id.
    pub request_id: String,
}

/// Now, in milliseconds since the Unix epoch (UTC): the ledger's and the decision
/// log's clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// What can go wrong opening or reading the ledger.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    /// SQLite refused.
    #[error("usage ledger {path}: {source}")]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// Why.
        source: rusqlite::Error,
    },
    /// The writer thread could not start.
    #[error("usage ledger: cannot start its writer: {0}")]
    Thread(std::io::Error),
}

/// Rows waiting in memory between the request path and the writer.
const QUEUE: usize = 16 * 1024;

/// The ledger: a handle for recording rows, and the database path for queries.
pub struct Ledger {
    path: PathBuf,
    queue: SyncSender<UsageRow>,
    shared: Arc<Shared>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What the request path and the writer share.
#[derive(Default)]
struct Shared {
    /// Rows that found the queue full; the writer takes them next.
    spill: Mutex<Vec<UsageRow>>,
    spilled: AtomicU64,
    written: AtomicU64,
    recorded: AtomicU64,
}

impl Ledger {
    /// Opens (creating if needed) the database at `path` and starts the writer.
    pub fn open(path: &Path) -> Result<Self, LedgerError> {
        let connection = writer::open(path)?;
        let (queue, rows) = std::sync::mpsc::sync_channel(QUEUE);
        let shared = Arc::new(Shared::default());
        let writer = {
            let shared = shared.clone();
            let path = path.to_owned();
            std::thread::Builder::new()
                .name("signalbox-ledger".into())
                .spawn(move || writer::run(connection, &path, &rows, &shared))
                .map_err(LedgerError::Thread)?
        };
        Ok(Ledger {
            path: path.to_owned(),
            queue,
            shared,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Hands a row to the writer without waiting.
    pub fn record(&self, row: UsageRow) {
        self.shared.recorded.fetch_add(1, Ordering::Relaxed);
        match self.queue.try_send(row) {
            Ok(()) => {}
            Err(TrySendError::Full(row) | TrySendError::Disconnected(row)) => {
                self.shared.spilled.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut spill) = self.shared.spill.lock() {
                    spill.push(row);
                }
            }
        }
    }

    /// Rows recorded, rows that went through the spill list, rows written.
    pub fn counts(&self) -> (u64, u64, u64) {
        (
            self.shared.recorded.load(Ordering::Relaxed),
            self.shared.spilled.load(Ordering::Relaxed),
            self.shared.written.load(Ordering::Relaxed),
        )
    }

    /// Waits until every row recorded so far is written (tests, shutdown).
    pub fn flush(&self, timeout: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        loop {
            let recorded = self.shared.recorded.load(Ordering::Relaxed);
            if self.shared.written.load(Ordering::Relaxed) >= recorded {
                return true;
            }
            if std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Aggregates from the database (a separate read connection).
    pub fn query(&self, query: &UsageQuery) -> Result<Vec<Aggregate>, LedgerError> {
        query::run(&self.path, query)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Aggregates from a ledger database file, without a running gateway.
pub fn query_file(path: &Path, query: &UsageQuery) -> Result<Vec<Aggregate>, LedgerError> {
    query::run(path, query)
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what it holds and exit.
        let (closed, _) = std::sync::mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.queue, closed));
        if let Some(writer) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = writer.join();
        }
    }
}

//! The usage ledger: one row per routed request, whichever way it ended, in an
//! embedded SQLite database, or in a fleet's PostgreSQL database (`[ledger] url`), for
//! billing and the usage API.
//!
//! Rows are written by a background thread in batches (one transaction per batch),
//! so a slow disk or database never slows a request. The request path hands a row
//! over without blocking: into a bounded queue, or — when the queue is full — into a
//! spill list the writer drains next (`signalbox_ledger_rows{state="spilled"}`). The
//! spill list is bounded too (`max_spill_rows`): past it, while the database cannot
//! be written for a long time, rows are dropped, counted and logged, rather than the
//! gateway running out of memory.

mod postgres;
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
    /// Input tokens, the cache's included.
    pub input_tokens: u32,
    /// Output tokens, reasoning included.
    pub output_tokens: u32,
    /// Of the input, read from the provider's prompt cache.
    pub cache_read_tokens: u32,
    /// Of the input, written to the provider's prompt cache.
    pub cache_write_tokens: u32,
    /// Of the output, spent on reasoning.
    pub reasoning_tokens: u32,
    /// The counts are the gateway's estimate: the upstream reported none (a stream the
    /// client cancelled, an upstream without usage).
    pub estimated: bool,
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
    /// What the row charges for: [`Charge::Answer`] for the request itself (one row per
    /// request), or an extra attempt of a cascade (several rows share its request id;
    /// a request's cost is the sum of its rows).
    pub charge: Charge,
}

/// What a ledger row charges for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Charge {
    /// The request: the answer the client received, or how it failed.
    Answer,
    /// An answer the policy's review refused (escalated): paid for, never sent.
    Escalated,
    /// A verifier's call the policy's review asked for.
    Verifier,
}

impl Charge {
    /// As stored in the `charge` column (`''` for the request's own row, so rows
    /// written before the column existed read as requests).
    pub fn as_str(self) -> &'static str {
        match self {
            Charge::Answer => "",
            Charge::Escalated => "escalated",
            Charge::Verifier => "verifier",
        }
    }
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
    /// PostgreSQL refused, or could not be reached.
    #[error("usage ledger (postgres): {0}")]
    Postgres(String),
}

/// Rows waiting in memory between the request path and the writer.
const QUEUE: usize = 16 * 1024;

/// How long a stopping gateway's writer keeps retrying a database it cannot write.
const LAST_TRY: std::time::Duration = std::time::Duration::from_secs(10);

/// Where the rows go.
enum Store {
    /// A SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres(Box<postgres::Database>),
}

/// The ledger: a handle for recording rows, and where to read them for queries.
pub struct Ledger {
    store: Store,
    queue: SyncSender<UsageRow>,
    shared: Arc<Shared>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// What the request path and the writer share.
struct Shared {
    /// Rows that found the queue full; the writer takes them next.
    spill: Mutex<Vec<UsageRow>>,
    spilled: AtomicU64,
    written: AtomicU64,
    recorded: AtomicU64,
    /// Rows dropped because the spill list was full.
    dropped: AtomicU64,
    /// When the ledger was dropped: a writer retrying a failing database gives up
    /// [`LAST_TRY`] after it instead of holding the exit forever.
    closed_at: std::sync::OnceLock<std::time::Instant>,
    /// The most rows the spill list holds.
    max_spill: usize,
}

impl Shared {
    /// Whether the gateway stopped more than [`LAST_TRY`] ago: what the writer still
    /// cannot write is given up (counted as dropped).
    fn past_last_try(&self) -> bool {
        self.closed_at
            .get()
            .is_some_and(|at| at.elapsed() > LAST_TRY)
    }

    /// Gives a batch up at exit.
    fn give_up(&self, rows: usize, database: &str) {
        self.dropped.fetch_add(rows as u64, Ordering::Relaxed);
        tracing::error!(database, rows, "usage ledger: rows not written at exit");
    }
}

impl Ledger {
    /// Opens (creating if needed) the database at `path` and starts the writer; at
    /// most `max_spill` rows wait in memory beyond the queue.
    pub fn open(path: &Path, max_spill: usize) -> Result<Self, LedgerError> {
        let connection = writer::open(path)?;
        let store_path = path.to_owned();
        Ledger::start(
            Store::Sqlite(path.to_owned()),
            max_spill,
            move |rows, shared| {
                writer::run(connection, &store_path, rows, shared);
            },
        )
    }

    /// Starts a ledger in the PostgreSQL database at `url` (over TLS, with `tls`'s
    /// files, when it says `sslmode=require`). It does not wait for the database:
    /// rows wait (bounded) until it can be written.
    pub fn open_postgres(
        url: &str,
        password: Option<&str>,
        tls: Option<&crate::config::StoreTls>,
        max_spill: usize,
    ) -> Result<Self, LedgerError> {
        let database = postgres::Database::new(url, password, tls)?;
        tracing::info!(database = %database.describe(), "usage ledger in postgres");
        let writer_database = database.clone();
        Ledger::start(
            Store::Postgres(Box::new(database)),
            max_spill,
            move |rows, shared| {
                postgres::run(&writer_database, rows, shared);
            },
        )
    }

    fn start(
        store: Store,
        max_spill: usize,
        writer: impl FnOnce(&std::sync::mpsc::Receiver<UsageRow>, &Shared) + Send + 'static,
    ) -> Result<Self, LedgerError> {
        let (queue, rows) = std::sync::mpsc::sync_channel(QUEUE);
        let shared = Arc::new(Shared {
            spill: Mutex::default(),
            spilled: AtomicU64::new(0),
            written: AtomicU64::new(0),
            recorded: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            closed_at: std::sync::OnceLock::new(),
            max_spill: max_spill.max(1),
        });
        let writer = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("signalbox-ledger".into())
                .spawn(move || writer(&rows, &shared))
                .map_err(LedgerError::Thread)?
        };
        Ok(Ledger {
            store,
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
                let Ok(mut spill) = self.shared.spill.lock() else {
                    return;
                };
                if spill.len() < self.shared.max_spill {
                    self.shared.spilled.fetch_add(1, Ordering::Relaxed);
                    spill.push(row);
                    return;
                }
                drop(spill);
                let dropped = self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                // The first, then one line per 10,000.
                if dropped.is_multiple_of(10_000) {
                    tracing::error!(
                        dropped = dropped + 1,
                        "usage ledger: the database has not been written for too long and the spill is full; rows are dropped"
                    );
                }
            }
        }
    }

    /// Rows recorded, rows that went through the spill list, rows written, rows
    /// dropped (the spill list full).
    pub fn counts(&self) -> (u64, u64, u64, u64) {
        (
            self.shared.recorded.load(Ordering::Relaxed),
            self.shared.spilled.load(Ordering::Relaxed),
            self.shared.written.load(Ordering::Relaxed),
            self.shared.dropped.load(Ordering::Relaxed),
        )
    }

    /// Waits until every row recorded so far is written (tests, shutdown).
    pub fn flush(&self, timeout: std::time::Duration) -> bool {
        let until = std::time::Instant::now() + timeout;
        loop {
            let recorded = self.shared.recorded.load(Ordering::Relaxed);
            let gone = self.shared.written.load(Ordering::Relaxed)
                + self.shared.dropped.load(Ordering::Relaxed);
            if gone >= recorded {
                return true;
            }
            if std::time::Instant::now() >= until {
                return false;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Aggregates from the database (a separate read connection). Blocks: call it off
    /// the async workers.
    pub fn query(&self, query: &UsageQuery) -> Result<Vec<Aggregate>, LedgerError> {
        match &self.store {
            Store::Sqlite(path) => query::run(path, query),
            Store::Postgres(database) => postgres::query(database, query),
        }
    }
}

/// Aggregates from a PostgreSQL ledger, without a running gateway.
pub fn query_postgres(
    url: &str,
    password: Option<&str>,
    tls: Option<&crate::config::StoreTls>,
    query: &UsageQuery,
) -> Result<Vec<Aggregate>, LedgerError> {
    postgres::query(&postgres::Database::new(url, password, tls)?, query)
}

/// Aggregates from a ledger database file, without a running gateway.
pub fn query_file(path: &Path, query: &UsageQuery) -> Result<Vec<Aggregate>, LedgerError> {
    query::run(path, query)
}

impl Drop for Ledger {
    fn drop(&mut self) {
        // Closing the queue lets the writer finish what it holds and exit.
        let _ = self.shared.closed_at.set(std::time::Instant::now());
        let (closed, _) = std::sync::mpsc::sync_channel(1);
        drop(std::mem::replace(&mut self.queue, closed));
        if let Some(writer) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = writer.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: usize) -> UsageRow {
        UsageRow {
            ts_ms: 0,
            tenant: "t".into(),
            key_id: "k".into(),
            target: "a".into(),
            model: "m".into(),
            input_tokens: 1,
            output_tokens: 1,
            cache_read_tokens: 0,
            cache_write_tokens: 0,
            reasoning_tokens: 0,
            estimated: false,
            cost_usd: 0.0,
            latency_ms: 1,
            status: 200,
            policy: "p".into(),
            fallback_depth: 0,
            request_id: format!("r{i}"),
            charge: Charge::Answer,
        }
    }

    /// A database that cannot be reached holds rows in the writer's hand, the queue and
    /// the spill list, and no more: memory stays bounded, what is dropped is counted,
    /// and dropping the ledger does not wait forever for the database.
    #[test]
    fn an_unreachable_database_bounds_what_waits_and_counts_what_is_dropped() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let ledger =
            Ledger::open_postgres(&format!("postgres://u@127.0.0.1:{port}/db"), None, None, 5)
                .unwrap();
        let total = QUEUE + writer::BATCH + 1_000;
        for i in 0..total {
            ledger.record(row(i));
        }
        let (recorded, spilled, written, dropped) = ledger.counts();
        assert_eq!(recorded, total as u64);
        assert_eq!(written, 0);
        assert!(spilled <= 5, "{spilled}");
        assert!(dropped >= 1_000 - 5, "{dropped}");
        let started = std::time::Instant::now();
        drop(ledger);
        assert!(started.elapsed() < LAST_TRY + std::time::Duration::from_secs(10));
    }
}

//! The SQLite ledger's writer thread: batches rows into one transaction each.

use super::{LedgerError, Shared, UsageRow};
use rusqlite::Connection;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Most rows per transaction.
pub(super) const BATCH: usize = 2048;
/// How long a write waits for another process's lock on the file.
pub(super) const BUSY_WAIT: Duration = Duration::from_secs(5);
/// How long a batch waits to fill before it is written anyway.
const LINGER: Duration = Duration::from_millis(20);

/// Opens the database, creating the table, in WAL mode so reads do not block writes.
/// Columns added to the `usage` table after its first release, with their definitions:
/// `open` adds those an older ledger lacks.
const ADDED_COLUMNS: [(&str, &str); 5] = [
    ("charge", "TEXT NOT NULL DEFAULT ''"),
    ("cache_read_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("cache_write_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("reasoning_tokens", "INTEGER NOT NULL DEFAULT 0"),
    ("estimated", "INTEGER NOT NULL DEFAULT 0"),
];

pub(super) fn open(path: &Path) -> Result<Connection, LedgerError> {
    let fail = |source| LedgerError::Sqlite {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(dir);
    }
    let connection = Connection::open(path).map_err(fail)?;
    // Two gateways write the same file while one hands its listeners to the other
    // (`crate::handover`): a write that finds the other's lock waits for it.
    connection.busy_timeout(BUSY_WAIT).map_err(fail)?;
    connection
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS usage (
                 id INTEGER PRIMARY KEY,
                 ts_ms INTEGER NOT NULL,
                 tenant TEXT NOT NULL,
                 key_id TEXT NOT NULL,
                 target TEXT NOT NULL,
                 model TEXT NOT NULL,
                 input_tokens INTEGER NOT NULL,
                 output_tokens INTEGER NOT NULL,
                 cost_usd REAL NOT NULL,
                 latency_ms INTEGER NOT NULL,
                 status INTEGER NOT NULL,
                 policy TEXT NOT NULL,
                 fallback_depth INTEGER NOT NULL,
                 request_id TEXT NOT NULL
             );
             CREATE INDEX IF NOT EXISTS usage_tenant_ts ON usage (tenant, ts_ms);",
        )
        .map_err(fail)?;
    // A ledger written by an earlier release lacks the columns added since: before
    // cascades, every row was a request's own (`charge`); before the cache and
    // reasoning were counted apart, none were (0), and no count was marked estimated.
    for (column, definition) in ADDED_COLUMNS {
        let exists = connection
            .prepare("SELECT 1 FROM pragma_table_info('usage') WHERE name = ?1")
            .and_then(|mut s| s.exists([column]))
            .map_err(fail)?;
        if !exists {
            connection
                .execute_batch(&format!(
                    "ALTER TABLE usage ADD COLUMN {column} {definition}"
                ))
                .map_err(fail)?;
        }
    }
    Ok(connection)
}

pub(super) fn run(
    mut connection: Connection,
    path: &Path,
    rows: &Receiver<UsageRow>,
    shared: &Shared,
) {
    let mut batch: Vec<UsageRow> = Vec::with_capacity(BATCH);
    loop {
        let open = gather(rows, shared, &mut batch);
        if !batch.is_empty() {
            write(&mut connection, path, &batch, shared);
            batch.clear();
        }
        if !open {
            return;
        }
    }
}

/// Fills `batch` with what is waiting: rows from the queue (waiting up to [`LINGER`]
/// for the first), then the spill list. False once the queue is closed (the gateway
/// is stopping; what was gathered is still to be written).
pub(super) fn gather(
    rows: &Receiver<UsageRow>,
    shared: &Shared,
    batch: &mut Vec<UsageRow>,
) -> bool {
    let open = match rows.recv_timeout(LINGER) {
        Ok(row) => {
            batch.push(row);
            while batch.len() < BATCH {
                match rows.try_recv() {
                    Ok(row) => batch.push(row),
                    Err(_) => break,
                }
            }
            true
        }
        Err(RecvTimeoutError::Timeout) => true,
        Err(RecvTimeoutError::Disconnected) => false,
    };
    if let Ok(mut spill) = shared.spill.lock() {
        batch.append(&mut spill);
    }
    open
}

/// Writes a batch; on failure retries with back-off, keeping the rows (a ledger
/// that loses rows cannot be billed from).
fn write(connection: &mut Connection, path: &Path, batch: &[UsageRow], shared: &Shared) {
    let mut wait = Duration::from_millis(50);
    loop {
        if shared.past_last_try() {
            shared.give_up(batch.len(), &path.display().to_string());
            return;
        }
        match insert(connection, batch) {
            Ok(()) => {
                shared
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                return;
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, rows = batch.len(), "usage ledger write failed; retrying");
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn insert(connection: &mut Connection, batch: &[UsageRow]) -> rusqlite::Result<()> {
    let tx = connection.transaction()?;
    {
        let mut statement = tx.prepare_cached(
            "INSERT INTO usage (ts_ms, tenant, key_id, target, model, input_tokens, output_tokens,
                                cost_usd, latency_ms, status, policy, fallback_depth, request_id,
                                charge, cache_read_tokens, cache_write_tokens, reasoning_tokens,
                                estimated)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18)",
        )?;
        for r in batch {
            statement.execute(rusqlite::params![
                r.ts_ms,
                r.tenant,
                r.key_id,
                r.target,
                r.model,
                r.input_tokens,
                r.output_tokens,
                r.cost_usd,
                r.latency_ms,
                r.status,
                r.policy,
                r.fallback_depth,
                r.request_id,
                r.charge.as_str(),
                r.cache_read_tokens,
                r.cache_write_tokens,
                r.reasoning_tokens,
                r.estimated,
            ])?;
        }
    }
    tx.commit()
}

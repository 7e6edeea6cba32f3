//! The fleet's ledger in PostgreSQL (`[ledger] url`): the same rows as the SQLite
//! file, written by the same kind of thread (batches, here with `COPY`), read by the
//! same aggregates. Every replica writes to it and reads the fleet's rows.
//!
//! The database may be down: the writer keeps its batch and retries with back-off
//! (reconnecting), rows meanwhile wait in the queue and the spill list (bounded by
//! `max_spill_rows`), and everything waiting is written when it returns. Every
//! connection and statement is bounded in time.

use super::{Aggregate, GroupBy, LedgerError, Shared, UsageQuery, UsageRow};
use crate::config::StoreTls;
use crate::store_tls::StoreCertificates;
use postgres::binary_copy::BinaryCopyInWriter;
use postgres::config::SslMode;
use postgres::types::Type;
use postgres::{Client, NoTls};
use std::sync::atomic::Ordering;
use std::sync::mpsc::Receiver;
use std::time::Duration;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long any statement may run (the server stops it).
const STATEMENT_TIMEOUT_MS: u32 = 10_000;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS usage (
    id BIGSERIAL PRIMARY KEY,
    ts_ms BIGINT NOT NULL,
    tenant TEXT NOT NULL,
    key_id TEXT NOT NULL,
    target TEXT NOT NULL,
    model TEXT NOT NULL,
    input_tokens BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    cost_usd DOUBLE PRECISION NOT NULL,
    latency_ms BIGINT NOT NULL,
    status INTEGER NOT NULL,
    policy TEXT NOT NULL,
    fallback_depth INTEGER NOT NULL,
    request_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS usage_tenant_ts ON usage (tenant, ts_ms);
ALTER TABLE usage ADD COLUMN IF NOT EXISTS charge TEXT NOT NULL DEFAULT '';
ALTER TABLE usage ADD COLUMN IF NOT EXISTS cache_read_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN IF NOT EXISTS cache_write_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN IF NOT EXISTS reasoning_tokens BIGINT NOT NULL DEFAULT 0;
ALTER TABLE usage ADD COLUMN IF NOT EXISTS estimated BOOLEAN NOT NULL DEFAULT FALSE;";

const COPY: &str = "COPY usage (ts_ms, tenant, key_id, target, model, input_tokens, output_tokens,
    cost_usd, latency_ms, status, policy, fallback_depth, request_id, charge, cache_read_tokens,
    cache_write_tokens, reasoning_tokens, estimated) FROM STDIN BINARY";

const COLUMNS: [Type; 18] = [
    Type::INT8,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::FLOAT8,
    Type::INT8,
    Type::INT4,
    Type::TEXT,
    Type::INT4,
    Type::TEXT,
    Type::TEXT,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::BOOL,
];

/// A PostgreSQL database and how to reach it: the connection settings, bounded in
/// time, and TLS when the URL says `sslmode=require`.
#[derive(Clone)]
pub(super) struct Database {
    config: postgres::Config,
    /// Present for `sslmode=require`: verifies the server against `[ledger.tls]`'s
    /// authority, or the public roots.
    tls: Option<MakeRustlsConnect>,
}

impl Database {
    /// The database at `url` with `password`, over TLS (with `tls`'s files, if any)
    /// when the URL asks for it.
    pub(super) fn new(
        url: &str,
        password: Option<&str>,
        tls: Option<&StoreTls>,
    ) -> Result<Database, LedgerError> {
        let mut config: postgres::Config = url
            .parse()
            .map_err(|e: postgres::Error| LedgerError::Postgres(format!("ledger.url: {e}")))?;
        if let Some(password) = password {
            config.password(password);
        }
        config
            .connect_timeout(CONNECT_TIMEOUT)
            .options(&format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"))
            .application_name("signalbox");
        let tls = match config.get_ssl_mode() {
            SslMode::Require => {
                let fail =
                    |e: &dyn std::fmt::Display| LedgerError::Postgres(format!("ledger.tls: {e}"));
                let client = StoreCertificates::read(tls)
                    .map_err(|e| fail(&e))?
                    .client_config()
                    .map_err(|e| fail(&e))?;
                Some(MakeRustlsConnect::new(client))
            }
            // `prefer` (the default) and `disable`: plain, as the config's check says.
            _ => None,
        };
        Ok(Database { config, tls })
    }

    /// Where the database is, for logs: host and database name, never the user or a
    /// password.
    pub(super) fn describe(&self) -> String {
        let host = match self.config.get_hosts().first() {
            Some(postgres::config::Host::Tcp(host)) => host.clone(),
            Some(postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "localhost".into(),
        };
        let tls = if self.tls.is_some() { " (TLS)" } else { "" };
        format!(
            "postgres {host}/{}{tls}",
            self.config.get_dbname().unwrap_or_default()
        )
    }

    /// A new connection, with the ledger's table in place.
    fn connect(&self) -> Result<Client, postgres::Error> {
        let mut client = match &self.tls {
            Some(tls) => self.config.connect(tls.clone())?,
            None => self.config.connect(NoTls)?,
        };
        client.batch_execute(SCHEMA)?;
        Ok(client)
    }
}

/// `error` and its causes: the client's own message is often only the kind ("error
/// performing TLS handshake"), the why ("invalid peer certificate: UnknownIssuer") is
/// in its source.
fn with_causes(error: &postgres::Error) -> String {
    let mut text = error.to_string();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        text = format!("{text}: {cause}");
        source = cause.source();
    }
    text
}

/// The writer thread: batches from the queue and the spill list, each written with
/// one `COPY` in one transaction.
pub(super) fn run(database: &Database, rows: &Receiver<UsageRow>, shared: &Shared) {
    let mut client = None;
    let mut batch = Vec::with_capacity(super::writer::BATCH);
    loop {
        let open = super::writer::gather(rows, shared, &mut batch);
        if !batch.is_empty() {
            write(database, &mut client, &batch, shared);
            batch.clear();
        }
        if !open {
            return;
        }
    }
}

/// Writes a batch, reconnecting and retrying with back-off until it is written (or,
/// once the gateway is stopping, for [`LAST_TRY`]).
fn write(database: &Database, client: &mut Option<Client>, batch: &[UsageRow], shared: &Shared) {
    let mut wait = Duration::from_millis(50);
    let mut failures = 0u32;
    loop {
        if shared.past_last_try() {
            shared.give_up(batch.len(), &database.describe());
            return;
        }
        let result = match client {
            Some(c) => insert(c, batch),
            None => database.connect().and_then(|mut c| {
                let written = insert(&mut c, batch);
                *client = Some(c);
                written
            }),
        };
        match result {
            Ok(()) => {
                shared
                    .written
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                if failures > 0 {
                    tracing::warn!(database = %database.describe(), rows = batch.len(), "usage ledger written again");
                }
                return;
            }
            Err(e) => {
                *client = None;
                failures += 1;
                // Once, then every tenth try: a long outage is not a flood of lines.
                if failures % 10 == 1 {
                    tracing::error!(database = %database.describe(), error = %with_causes(&e), rows = batch.len(), "usage ledger write failed; retrying");
                }
                std::thread::sleep(wait);
                wait = (wait * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn insert(client: &mut Client, batch: &[UsageRow]) -> Result<(), postgres::Error> {
    let mut tx = client.transaction()?;
    let sink = tx.copy_in(COPY)?;
    let mut writer = BinaryCopyInWriter::new(sink, &COLUMNS);
    for r in batch {
        writer.write(&[
            &r.ts_ms,
            &r.tenant,
            &r.key_id,
            &r.target,
            &r.model,
            &i64::from(r.input_tokens),
            &i64::from(r.output_tokens),
            &r.cost_usd,
            &i64::from(r.latency_ms),
            &i32::from(r.status),
            &r.policy,
            &i32::try_from(r.fallback_depth).unwrap_or(i32::MAX),
            &r.request_id,
            &r.charge.as_str(),
            &i64::from(r.cache_read_tokens),
            &i64::from(r.cache_write_tokens),
            &i64::from(r.reasoning_tokens),
            &r.estimated,
        ])?;
    }
    writer.finish()?;
    tx.commit()
}

/// The aggregates, from a connection of their own. The synchronous client runs its
/// own small runtime, which cannot start on a thread inside the gateway's: the query
/// runs on a thread of its own.
pub(super) fn query(
    database: &Database,
    query: &UsageQuery,
) -> Result<Vec<Aggregate>, LedgerError> {
    let (database, query) = (database.clone(), query.clone());
    let fail = |e: postgres::Error| LedgerError::Postgres(with_causes(&e));
    std::thread::scope(|scope| {
        scope
            .spawn(move || {
                let mut client = database.connect().map_err(fail)?;
                // The group expression comes from a closed set, never from the caller.
                let group = match query.group_by {
                    GroupBy::Target => "target",
                    GroupBy::Model => "model",
                    GroupBy::Key => "key_id",
                    GroupBy::Day => {
                        "to_char(to_timestamp(ts_ms / 1000.0) AT TIME ZONE 'UTC', 'YYYY-MM-DD')"
                    }
                };
                let sql = format!(
                    "SELECT tenant, {group} AS g, COUNT(*) FILTER (WHERE charge = '')::BIGINT, SUM(input_tokens)::BIGINT,
                            SUM(output_tokens)::BIGINT, SUM(cost_usd), SUM(cache_read_tokens)::BIGINT,
                            SUM(cache_write_tokens)::BIGINT, SUM(reasoning_tokens)::BIGINT
                     FROM usage
                     WHERE ($1::TEXT IS NULL OR tenant = $1) AND ($2::BIGINT IS NULL OR ts_ms >= $2)
                       AND ($3::BIGINT IS NULL OR ts_ms < $3)
                     GROUP BY tenant, g ORDER BY tenant, g"
                );
                let rows = client
                    .query(&sql, &[&query.tenant, &query.from_ms, &query.to_ms])
                    .map_err(fail)?;
                Ok(rows
                    .iter()
                    .map(|r| Aggregate {
                        tenant: r.get(0),
                        group: r.get(1),
                        requests: r.get::<_, i64>(2).max(0) as u64,
                        input_tokens: r.get::<_, i64>(3).max(0) as u64,
                        output_tokens: r.get::<_, i64>(4).max(0) as u64,
                        cost_usd: r.get(5),
                        cache_read_tokens: r.get::<_, i64>(6).max(0) as u64,
                        cache_write_tokens: r.get::<_, i64>(7).max(0) as u64,
                        reasoning_tokens: r.get::<_, i64>(8).max(0) as u64,
                    })
                    .collect())
            })
            .join()
            .unwrap_or_else(|_| Err(LedgerError::Postgres("the query's thread panicked".into())))
    })
}

//! Aggregates over the ledger: by target, model, key or day, for one tenant (or all)
//! and a time range.

use super::LedgerError;
use rusqlite::{Connection, OpenFlags};
use std::path::Path;

/// How rows are grouped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    /// By target id.
    Target,
    /// By model name.
    Model,
    /// By API key id.
    Key,
    /// By UTC day (`YYYY-MM-DD`).
    Day,
}

impl std::str::FromStr for GroupBy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "target" => Ok(GroupBy::Target),
            "model" => Ok(GroupBy::Model),
            "key" => Ok(GroupBy::Key),
            "day" => Ok(GroupBy::Day),
            other => Err(format!(
                "group_by must be target, model, key or day, not `{other}`"
            )),
        }
    }
}

/// A usage question.
#[derive(Debug, Clone)]
pub struct UsageQuery {
    /// One tenant, or every tenant.
    pub tenant: Option<String>,
    /// From this time (ms since the epoch, inclusive).
    pub from_ms: Option<i64>,
    /// Until this time (ms since the epoch, exclusive).
    pub to_ms: Option<i64>,
    /// Grouping.
    pub group_by: GroupBy,
}

/// One group's totals.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Aggregate {
    /// The tenant.
    pub tenant: String,
    /// The group's key (target, model, key id or day).
    pub group: String,
    /// Requests.
    pub requests: u64,
    /// Input tokens.
    pub input_tokens: u64,
    /// Output tokens.
    pub output_tokens: u64,
    /// Cost, US dollars.
    pub cost_usd: f64,
    /// Of the input, read from providers' prompt caches.
    pub cache_read_tokens: u64,
    /// Of the input, written to providers' prompt caches.
    pub cache_write_tokens: u64,
    /// Of the output, spent on reasoning.
    pub reasoning_tokens: u64,
}

pub(super) fn run(path: &Path, query: &UsageQuery) -> Result<Vec<Aggregate>, LedgerError> {
    let fail = |source| LedgerError::Sqlite {
        path: path.to_owned(),
        source,
    };
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(fail)?;
    connection
        .busy_timeout(super::writer::BUSY_WAIT)
        .map_err(fail)?;
    // The group expression comes from a closed set, never from the caller's text.
    // Days are grouped by their number and formatted once per group, not per row.
    let (group, by) = match query.group_by {
        GroupBy::Target => ("target", "g"),
        GroupBy::Model => ("model", "g"),
        GroupBy::Key => ("key_id", "g"),
        GroupBy::Day => (
            "strftime('%Y-%m-%d', (ts_ms / 86400000) * 86400, 'unixepoch')",
            "ts_ms / 86400000",
        ),
    };
    // `NOT INDEXED`: the filters below cannot search the (tenant, ts_ms) index, and
    // walking it for the GROUP BY's order costs a table lookup per row: a plain scan
    // is 2–3 times faster (docs/benchmarks.md, "Dashboard").
    let sql = format!(
        "SELECT tenant, {group} AS g, SUM(charge = ''), SUM(input_tokens), SUM(output_tokens), SUM(cost_usd),
                SUM(cache_read_tokens), SUM(cache_write_tokens), SUM(reasoning_tokens)
         FROM usage NOT INDEXED
         WHERE (?1 IS NULL OR tenant = ?1) AND (?2 IS NULL OR ts_ms >= ?2) AND (?3 IS NULL OR ts_ms < ?3)
         GROUP BY tenant, {by} ORDER BY tenant, g"
    );
    let mut statement = connection.prepare(&sql).map_err(fail)?;
    let rows = statement
        .query_map(
            rusqlite::params![query.tenant, query.from_ms, query.to_ms],
            |r| {
                Ok(Aggregate {
                    tenant: r.get(0)?,
                    group: r.get(1)?,
                    requests: r.get::<_, i64>(2)?.max(0) as u64,
                    input_tokens: r.get::<_, i64>(3)?.max(0) as u64,
                    output_tokens: r.get::<_, i64>(4)?.max(0) as u64,
                    cost_usd: r.get(5)?,
                    cache_read_tokens: r.get::<_, i64>(6)?.max(0) as u64,
                    cache_write_tokens: r.get::<_, i64>(7)?.max(0) as u64,
                    reasoning_tokens: r.get::<_, i64>(8)?.max(0) as u64,
                })
            },
        )
        .map_err(fail)?;
    rows.collect::<Result<Vec<_>, _>>().map_err(fail)
}

/// Parses a time bound: `YYYY-MM-DD` (midnight UTC) or seconds since the epoch.
pub fn parse_time(text: &str) -> Result<i64, String> {
    if let Ok(secs) = text.parse::<i64>() {
        return Ok(secs.saturating_mul(1000));
    }
    let bad = || format!("`{text}` is not YYYY-MM-DD or seconds since the epoch");
    let mut parts = text.splitn(3, '-');
    let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    let (y, m, d): (i64, i64, i64) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        d.parse().map_err(|_| bad())?,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return Err(bad());
    }
    Ok(days_from_civil(y, m, d) * 86_400_000)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_become_epoch_milliseconds() {
        assert_eq!(parse_time("1970-01-01"), Ok(0));
        assert_eq!(parse_time("2026-11-28"), Ok(1_795_824_000_000));
        assert_eq!(parse_time("2000-03-01"), Ok(951_868_800_000));
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert!(parse_time("2026-13-01").is_err());
        assert!(parse_time("yesterday").is_err());
    }
}

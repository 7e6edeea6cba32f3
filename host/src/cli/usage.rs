//! `signalbox usage`: the usage ledger's aggregates as a table, read from the database
//! the config names (the same figures as `GET /admin/usage`).

use crate::config::Config;
use crate::ledger::{GroupBy, UsageQuery, parse_time};
use anyhow::anyhow;
use std::path::PathBuf;

/// Arguments of `usage`.
#[derive(Debug, clap::Args)]
pub struct UsageArgs {
    /// The gateway's config file (it names the ledger).
    #[arg(long)]
    config: PathBuf,
    /// One tenant (default: all).
    #[arg(long)]
    tenant: Option<String>,
    /// From this day (`YYYY-MM-DD`, UTC, from its midnight) or time (seconds since
    /// the epoch), inclusive.
    #[arg(long)]
    from: Option<String>,
    /// Until this day (its midnight) or time, exclusive: `--from 2026-03-01 --to
    /// 2026-03-02` is the one day of March 1st.
    #[arg(long)]
    to: Option<String>,
    /// Group by `target`, `model`, `key` or `day`.
    #[arg(long, default_value = "target")]
    group_by: String,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: UsageArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let ledger = &config.ledger;
    let time = |t: &Option<String>| -> anyhow::Result<Option<i64>> {
        t.as_deref()
            .map(parse_time)
            .transpose()
            .map_err(|e| anyhow!(e))
    };
    let query = UsageQuery {
        tenant: args.tenant.clone(),
        from_ms: time(&args.from)?,
        to_ms: time(&args.to)?,
        group_by: args.group_by.parse::<GroupBy>().map_err(|e| anyhow!(e))?,
    };
    let rows = match (&ledger.url, &ledger.path) {
        (Some(url), _) => crate::ledger::query_postgres(
            url,
            ledger.credentials.password.as_deref(),
            ledger.tls.as_ref(),
            &query,
        )?,
        (None, Some(path)) => crate::ledger::query_file(std::path::Path::new(path), &query)?,
        (None, None) => {
            return Err(anyhow!(
                "the config has no usage ledger ([ledger] path or url, or [admin] state_dir)"
            ));
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "{:<16} {:<28} {:>9} {:>13} {:>13} {:>12}",
        "tenant", args.group_by, "requests", "input tok", "output tok", "cost USD"
    );
    let mut total = (0u64, 0u64, 0u64, 0f64);
    for r in &rows {
        println!(
            "{:<16} {:<28} {:>9} {:>13} {:>13} {:>12.6}",
            r.tenant, r.group, r.requests, r.input_tokens, r.output_tokens, r.cost_usd
        );
        total.0 += r.requests;
        total.1 += r.input_tokens;
        total.2 += r.output_tokens;
        total.3 += r.cost_usd;
    }
    println!(
        "{:<16} {:<28} {:>9} {:>13} {:>13} {:>12.6}",
        "total", "", total.0, total.1, total.2, total.3
    );
    Ok(())
}

//! The books, checked when the load has stopped: the clients' records against the
//! usage ledger, the ledger against the spend the gateway's budgets counted, and the
//! small budget's refusals. Each failed check is a problem of the run.

use crate::load::{CLIENTS_PER_TENANT, Record, Seen};
use crate::run::Run;
use crate::setup::SMALL_BUDGET_USD;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One ledger row, as far as the books need it.
pub struct Row {
    pub request_id: String,
    pub tenant: String,
    pub key_id: String,
    pub status: u16,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub ts_ms: i64,
    pub fallback_depth: i64,
}

/// Every row of the ledger (read after the last gateway has exited).
pub fn read_ledger(path: &Path) -> anyhow::Result<(Vec<Row>, String)> {
    let db =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let mut statement = db.prepare(
        "SELECT request_id, tenant, key_id, status, cost_usd, input_tokens, output_tokens, ts_ms, \
         target, model, policy, latency_ms, fallback_depth FROM usage",
    )?;
    // Every column as text too, for the secrets sweep.
    let mut text = String::new();
    let rows = statement
        .query_map([], |r| {
            let row = Row {
                request_id: r.get(0)?,
                tenant: r.get(1)?,
                key_id: r.get(2)?,
                status: r.get(3)?,
                cost_usd: r.get(4)?,
                input_tokens: r.get::<_, i64>(5)?.max(0) as u64,
                output_tokens: r.get::<_, i64>(6)?.max(0) as u64,
                ts_ms: r.get(7)?,
                fallback_depth: r.get(12)?,
            };
            let (target, model, policy): (String, String, String) =
                (r.get(8)?, r.get(9)?, r.get(10)?);
            Ok((row, format!("{target} {model} {policy}")))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let rows = rows
        .into_iter()
        .map(|(row, extra)| {
            text += &format!(
                "{} {} {} {} {} {extra}\n",
                row.request_id, row.tenant, row.key_id, row.status, row.cost_usd
            );
            row
        })
        .collect();
    Ok((rows, text))
}

/// What the books found, for the summary.
#[derive(Default)]
pub struct Figures {
    pub rows: usize,
    /// Rows of answers served by a target after an earlier one failed.
    pub served_after_fallback: usize,
    pub completed_matched: usize,
    pub usage_compared: usize,
    pub other_answers_with_row: usize,
    pub rows_no_client_saw: usize,
    pub budget_refusals: usize,
    /// The last process's ledger rows and its own count of requests answered.
    pub last_process: Option<(usize, usize)>,
    pub small_budget_spent: f64,
    /// Tenant → (ledger sum, budget gauge, admin usage sum), USD, today.
    pub spend: BTreeMap<String, (f64, f64, f64)>,
}

/// Spend the gateway reports per tenant for today: its budget gauge and its usage API.
pub struct Reported {
    pub day_start_ms: i64,
    /// The last process's own count of the requests it answered
    /// (`signalbox_requests_total`), and the request-id prefix of that process.
    pub last_process: Option<(String, f64)>,
    pub budget_gauge: BTreeMap<String, f64>,
    pub usage_api: BTreeMap<String, f64>,
}

fn same_usd(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-12 + 1e-9 * a.abs().max(b.abs())
}

pub fn check(run: &Run, records: &[Record], rows: &[Row], reported: &Reported) -> Figures {
    let mut figures = Figures {
        rows: rows.len(),
        served_after_fallback: rows
            .iter()
            .filter(|r| r.fallback_depth > 0 && (200..300).contains(&r.status))
            .count(),
        ..Figures::default()
    };
    let mut by_id: HashMap<&str, Vec<&Row>> = HashMap::new();
    for row in rows {
        by_id.entry(&row.request_id).or_default().push(row);
    }
    let twice: Vec<&&str> = by_id
        .iter()
        .filter(|(_, r)| r.len() > 1)
        .map(|(id, _)| id)
        .collect();
    if !twice.is_empty() {
        run.problem(format!(
            "{} request ids have more than one ledger row (charged twice), e.g. {:?}",
            twice.len(),
            twice.iter().take(5).collect::<Vec<_>>()
        ));
    }

    let mut seen_ids = std::collections::HashSet::new();
    let mut missing = Vec::new();
    for record in records {
        let Some(id) = &record.request_id else {
            if record.seen == Seen::Completed {
                run.problem("a completed answer without an x-request-id".into());
            }
            continue;
        };
        seen_ids.insert(id.as_str());
        let found = by_id.get(id.as_str()).map_or(&[][..], Vec::as_slice);
        if record.seen != Seen::Completed {
            figures.other_answers_with_row += usize::from(!found.is_empty());
            continue;
        }
        let [row] = found else {
            missing.push(format!("{id} ({} rows)", found.len()));
            continue;
        };
        figures.completed_matched += 1;
        if row.tenant != record.tenant || row.key_id != record.key_id {
            run.problem(format!(
                "{id}: ledger says {}/{}, the client was {}/{}",
                row.tenant, row.key_id, record.tenant, record.key_id
            ));
        }
        if Some(row.status) != record.status {
            run.problem(format!(
                "{id}: ledger status {}, the client saw {:?}",
                row.status, record.status
            ));
        }
        if let Some((input, output)) = record.usage {
            figures.usage_compared += 1;
            if (row.input_tokens, row.output_tokens) != (input, output) {
                run.problem(format!(
                    "{id}: ledger tokens {}/{}, the answer reported {input}/{output}",
                    row.input_tokens, row.output_tokens
                ));
            }
        }
    }
    if !missing.is_empty() {
        run.problem(format!(
            "{} completed requests do not have exactly one ledger row, e.g. {:?}",
            missing.len(),
            missing.iter().take(5).collect::<Vec<_>>()
        ));
    }
    figures.rows_no_client_saw = by_id.keys().filter(|id| !seen_ids.contains(*id)).count();

    // Today's spend per tenant: the ledger's rows, the budget's own count, the usage API.
    let mut ledger: BTreeMap<String, f64> = BTreeMap::new();
    for row in rows.iter().filter(|r| r.ts_ms >= reported.day_start_ms) {
        *ledger.entry(row.tenant.clone()).or_default() += row.cost_usd;
    }
    for (tenant, gauge) in &reported.budget_gauge {
        let sum = ledger.get(tenant).copied().unwrap_or(0.0);
        let api = reported.usage_api.get(tenant).copied().unwrap_or(0.0);
        if !same_usd(sum, *gauge) {
            run.problem(format!(
                "{tenant}: the ledger's rows sum to {sum:.9} USD today, its budget counted {gauge:.9} USD"
            ));
        }
        if !same_usd(sum, api) {
            run.problem(format!(
                "{tenant}: the ledger's rows sum to {sum:.9} USD today, the usage API says {api:.9} USD"
            ));
        }
        figures.spend.insert(tenant.clone(), (sum, *gauge, api));
    }
    if reported.budget_gauge.len() != crate::setup::TENANTS.len() {
        run.problem(format!(
            "budget gauges for {} tenants, expected {}",
            reported.budget_gauge.len(),
            crate::setup::TENANTS.len()
        ));
    }

    // Every request the last process answered is a row, whether a client saw the
    // answer or not (request ids start with a per-process prefix).
    if let Some((prefix, answered)) = &reported.last_process {
        let own = rows
            .iter()
            .filter(|r| r.request_id.starts_with(prefix))
            .count();
        figures.last_process = Some((own, *answered as usize));
        if own as f64 != *answered {
            run.problem(format!(
                "the last gateway process answered {answered} requests and wrote {own} ledger rows"
            ));
        }
    }

    check_small_budget(run, records, rows, reported.day_start_ms, &mut figures);
    figures
}

/// The key with the small budget was refused once its spend reached the budget, by
/// no more than what its requests in flight at that moment could add; no other key
/// was refused for a budget.
fn check_small_budget(
    run: &Run,
    records: &[Record],
    rows: &[Row],
    day_start_ms: i64,
    figures: &mut Figures,
) {
    let Some(small) = run.secrets.keys.iter().find(|k| k.small_budget) else {
        return;
    };
    let refusals: Vec<&Record> = records
        .iter()
        .filter(|r| r.code == "budget_exceeded")
        .collect();
    figures.budget_refusals = refusals.len();
    if let Some(other) = refusals.iter().find(|r| r.key_id != small.id) {
        run.problem(format!(
            "{} was refused for a budget it does not have",
            other.key_id
        ));
    }
    if refusals.iter().any(|r| r.status != Some(429)) {
        run.problem("a budget refusal was not a 429".into());
    }
    let own: Vec<&Row> = rows
        .iter()
        .filter(|r| r.key_id == small.id && r.tenant == small.tenant && r.ts_ms >= day_start_ms)
        .collect();
    let spent: f64 = own.iter().map(|r| r.cost_usd).sum();
    let dearest = own.iter().map(|r| r.cost_usd).fold(0.0, f64::max);
    figures.small_budget_spent = spent;
    if refusals.is_empty() {
        run.problem(format!(
            "{}'s budget of {SMALL_BUDGET_USD} USD never refused a request (spent {spent:.6})",
            small.id
        ));
    } else if spent < SMALL_BUDGET_USD {
        run.problem(format!(
            "{} was refused for its budget with only {spent:.6} of {SMALL_BUDGET_USD} USD spent",
            small.id
        ));
    }
    // Each of the tenant's clients (and the quarantine's) may have had one request in
    // flight when the budget was reached.
    let bound = SMALL_BUDGET_USD + (CLIENTS_PER_TENANT + 1) as f64 * dearest;
    if spent > bound + 1e-12 {
        run.problem(format!(
            "{} spent {spent:.6} USD against a budget of {SMALL_BUDGET_USD} (at most {bound:.6} with the requests in flight)",
            small.id
        ));
    }
}

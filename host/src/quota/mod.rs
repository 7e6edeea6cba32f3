//! Quotas: how much a tenant, and each of its keys, may use.
//!
//! Each tenant and each key has a [`Quota`]: requests per minute and tokens per minute
//! (lock-free [`TokenBucket`]s refilling continuously) and spend budgets per UTC day
//! and month ([`Budget`], computed from the targets' prices). A request is admitted
//! against both its tenant's quota and its key's ([`admit`]) after its body is parsed
//! and before the policy is asked; the [`Reservation`] it gets is settled with the
//! usage the upstream reports once the response is complete.
//!
//! Spend, like the buckets, lives in memory and is not shared between replicas; with a
//! usage ledger the current day's and month's spend is restored from it at start-up.

mod admission;
mod bucket;
mod budget;
mod error;
pub(crate) mod utc;

pub use admission::{Reservation, admit, admit_share, fits};
pub use bucket::{Refusal, TokenBucket};
pub use budget::{Budget, Exhausted, Period};
pub use error::{QuotaError, Scope};

use crate::config::LimitsSection;
use std::sync::OnceLock;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Rate limits are per minute.
const MINUTE_NS: u64 = 60_000_000_000;

/// A per-minute limit and its bucket.
#[derive(Debug)]
struct RateLimit {
    per_minute: u32,
    bucket: TokenBucket,
}

impl RateLimit {
    fn new(per_minute: Option<u32>) -> Option<RateLimit> {
        per_minute.map(|per_minute| RateLimit {
            per_minute,
            bucket: TokenBucket::new(u64::from(per_minute), MINUTE_NS),
        })
    }
}

/// What a quota allows, as configured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Requests per minute.
    pub requests_per_minute: Option<u32>,
    /// Tokens per minute.
    pub tokens_per_minute: Option<u32>,
    /// USD per UTC day.
    pub usd_per_day: Option<f64>,
    /// USD per UTC calendar month.
    pub usd_per_month: Option<f64>,
}

/// The live limits of one tenant or one key.
#[derive(Debug)]
pub struct Quota {
    scope: Scope,
    requests: Option<RateLimit>,
    tokens: Option<RateLimit>,
    budget: Option<Budget>,
}

impl Quota {
    /// Fresh state (full buckets, nothing spent) for `limits`.
    pub fn new(scope: Scope, limits: &LimitsSection) -> Quota {
        Quota {
            scope,
            requests: RateLimit::new(limits.requests_per_minute),
            tokens: RateLimit::new(limits.tokens_per_minute),
            budget: Budget::new(limits.budget_usd_per_day, limits.budget_usd_per_month),
        }
    }

    /// Whether nothing is limited: such a quota is skipped entirely on the hot path.
    pub fn is_unlimited(&self) -> bool {
        self.requests.is_none() && self.tokens.is_none() && self.budget.is_none()
    }

    /// Whose quota this is.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }

    /// Its limits, for the shared store to enforce.
    pub fn limits(&self) -> Limits {
        Limits {
            requests_per_minute: self.requests.as_ref().map(|l| l.per_minute),
            tokens_per_minute: self.tokens.as_ref().map(|l| l.per_minute),
            usd_per_day: self.budget.as_ref().and_then(Budget::per_day),
            usd_per_month: self.budget.as_ref().and_then(Budget::per_month),
        }
    }

    /// Whether this quota has a spend budget.
    pub fn has_budget(&self) -> bool {
        self.budget.is_some()
    }

    /// Starts the current UTC day and month at what was already spent in them.
    pub fn restore_spend(&self, day_usd: f64, month_usd: f64) {
        if let Some(budget) = &self.budget {
            budget.restore(day_usd, month_usd, unix_secs());
        }
    }

    /// Midnight UTC of the current day and of the first of the current month, as
    /// milliseconds since the epoch (the windows budgets count in).
    pub fn window_starts_ms() -> (i64, i64) {
        let now = unix_secs();
        let day_start = now - now % 86_400;
        let (year, month, _) = utc::civil_date(utc::day(now));
        let month_start = utc::days_since_epoch(year, month, 1) * 86_400;
        let ms = |secs: u64| i64::try_from(secs).unwrap_or(i64::MAX).saturating_mul(1000);
        (ms(day_start), ms(month_start))
    }

    /// Spend in the current UTC day and month, USD (zero without a budget).
    pub fn spent_usd(&self) -> (f64, f64) {
        self.budget
            .as_ref()
            .map_or((0.0, 0.0), |b| b.spent(unix_secs()))
    }
}

/// Nanoseconds on a monotonic clock shared by every bucket of the process.
fn monotonic_ns() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let elapsed = START.get_or_init(Instant::now).elapsed();
    u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX)
}

/// Seconds since the Unix epoch: budgets follow the calendar, so they need wall time.
pub(crate) fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Whole seconds for `Retry-After`, rounded up and at least 1: a client told 0 would
/// come straight back.
fn retry_after_secs(wait_ns: u64) -> u64 {
    wait_ns.div_ceil(1_000_000_000).max(1)
}

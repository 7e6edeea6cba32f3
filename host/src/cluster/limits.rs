//! Rate limits and budgets kept in Redis, checked and taken in one round trip.
//!
//! Each limit is a key: a token bucket per requests-per-minute and tokens-per-minute
//! limit (a hash of tokens left and when they were counted, refilled continuously as
//! the in-process buckets are, on Redis's clock so the replicas' clocks do not
//! matter), and a spend total per budget window (the UTC day or month in the key's
//! name, expiring after the window). A request's admission is one script: every limit
//! of its tenant and key is checked, in the order the in-process admission uses, and
//! only if all pass is anything taken; so replicas admitting at once cannot together
//! pass a limit. Its settlement (tokens corrected to what was used, cost added) is a
//! second script, sent after the answer, off the request's path.

use super::{Cluster, ClusterError};
use crate::quota::{Period, Quota, QuotaError, Scope, utc};
use redis::Script;
use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

/// Checks each limit in order, then takes from every bucket if all passed.
///
/// KEYS: one per check. ARGV: the number of checks, then per check its kind (`b`: a
/// bucket, with its capacity per minute and what to take; `s`: a spend total, with its
/// limit and nothing). Answers `{0, 0}` when admitted, else `{i, ms}`: check `i`
/// (from 1) refused, and a bucket refills enough in `ms` milliseconds.
const ADMIT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local n = tonumber(ARGV[1])
local left = {}
for i = 1, n do
  local kind, a, b = ARGV[3 * i - 1], tonumber(ARGV[3 * i]), tonumber(ARGV[3 * i + 1])
  if kind == 'b' then
    local v = redis.call('HMGET', KEYS[i], 'tokens', 'at')
    local tokens, at = tonumber(v[1]) or a, tonumber(v[2]) or now
    if now > at then tokens = math.min(a, tokens + (now - at) * a / 60000000) end
    if tokens < b then
      return {i, math.ceil((b - tokens) * 60000 / a)}
    end
    left[i] = tokens - b
  else
    local spent = tonumber(redis.call('GET', KEYS[i]) or '0')
    if spent >= a then return {i, 0} end
  end
end
for i = 1, n do
  if left[i] then
    redis.call('HSET', KEYS[i], 'tokens', tostring(left[i]), 'at', tostring(now))
    redis.call('PEXPIRE', KEYS[i], 120000)
  end
end
return {0, 0}
"#;

/// Corrects token buckets and adds spend.
///
/// KEYS: the token buckets, then the spend totals. ARGV: the number of buckets; per
/// bucket its capacity and how many more tokens to take (negative: give back); the
/// cost; per spend total its lifetime in seconds. A bucket may go below zero (more
/// used than estimated): it owes, and refuses until it has refilled.
const SETTLE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local m = tonumber(ARGV[1])
for i = 1, m do
  local cap, take = tonumber(ARGV[2 * i]), tonumber(ARGV[2 * i + 1])
  local v = redis.call('HMGET', KEYS[i], 'tokens', 'at')
  local tokens, at = tonumber(v[1]) or cap, tonumber(v[2]) or now
  if now > at then tokens = math.min(cap, tokens + (now - at) * cap / 60000000) end
  tokens = math.min(cap, tokens - take)
  redis.call('HSET', KEYS[i], 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', KEYS[i], 120000)
end
local cost = tonumber(ARGV[2 * m + 2])
if cost > 0 then
  for j = m + 1, #KEYS do
    redis.call('INCRBYFLOAT', KEYS[j], ARGV[2 * m + 2])
    redis.call('EXPIRE', KEYS[j], tonumber(ARGV[2 * m + 2 + j - m]))
  end
end
return 0
"#;

static ADMIT_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADMIT));
static SETTLE_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(SETTLE));

/// How long a window's spend total outlives the window.
const DAY_TTL_SECS: u64 = 2 * 86_400;
const MONTH_TTL_SECS: u64 = 32 * 86_400;

/// One limit's check, in the order checks run.
struct Check {
    key: String,
    scope: Scope,
    what: What,
}

enum What {
    Spend { period: Period, limit_usd: f64 },
    Requests { per_minute: u32 },
    Tokens { per_minute: u32 },
}

/// An admitted request's claim on the shared limits: settled after the answer with
/// what it used, or, dropped unsettled (no upstream answer), giving its tokens back.
#[must_use = "dropping a reservation gives its tokens back"]
pub struct SharedReservation {
    cluster: Arc<Cluster>,
    /// Token buckets taken from, with their capacities.
    token_buckets: Vec<(String, u32)>,
    /// Spend totals to add the cost to, with their lifetimes.
    spend_totals: Vec<(String, u64)>,
    tokens: u64,
    settled: bool,
}

impl std::fmt::Debug for SharedReservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedReservation")
            .field("token_buckets", &self.token_buckets.len())
            .field("spend_totals", &self.spend_totals.len())
            .field("tokens", &self.tokens)
            .field("settled", &self.settled)
            .finish()
    }
}

impl Cluster {
    fn scope_key(&self, scope: &Scope) -> String {
        match scope {
            Scope::Tenant(id) => format!("{}:limit:t:{id}", self.prefix()),
            Scope::Key(id) => format!("{}:limit:k:{id}", self.prefix()),
        }
    }

    /// The checks of `quotas` (a tenant's and a key's), in the order of the
    /// in-process admission: spent budgets (the month first), then requests, then
    /// tokens; the tenant before the key.
    fn checks(&self, quotas: [&Quota; 2], now: u64) -> Vec<Check> {
        let (day, month) = (utc::day(now), utc::month(now));
        let scoped = quotas.map(|q| (self.scope_key(q.scope()), q.scope(), q.limits()));
        let mut checks = Vec::with_capacity(8);
        for (base, scope, limits) in &scoped {
            for (period, limit, window) in [
                (
                    Period::Month,
                    limits.usd_per_month,
                    format!("month:{month}"),
                ),
                (Period::Day, limits.usd_per_day, format!("day:{day}")),
            ] {
                if let Some(limit_usd) = limit {
                    checks.push(Check {
                        key: format!("{base}:spend:{window}"),
                        scope: (*scope).clone(),
                        what: What::Spend { period, limit_usd },
                    });
                }
            }
        }
        for (base, scope, limits) in &scoped {
            if let Some(per_minute) = limits.requests_per_minute {
                checks.push(Check {
                    key: format!("{base}:requests"),
                    scope: (*scope).clone(),
                    what: What::Requests { per_minute },
                });
            }
        }
        for (base, scope, limits) in &scoped {
            if let Some(per_minute) = limits.tokens_per_minute {
                checks.push(Check {
                    key: format!("{base}:tokens"),
                    scope: (*scope).clone(),
                    what: What::Tokens { per_minute },
                });
            }
        }
        checks
    }

    /// Admits a request estimated at `tokens` against the shared limits of `quotas`
    /// (its tenant's and its key's), in one round trip; a refusal names the limit as
    /// the in-process admission does. A request that could never fit is refused
    /// before Redis is asked (the caller checks that).
    pub async fn admit(
        self: &Arc<Self>,
        quotas: [&Quota; 2],
        tokens: u64,
    ) -> Result<Result<SharedReservation, QuotaError>, ClusterError> {
        if !self.is_up() {
            return Err(ClusterError::Down);
        }
        let now = crate::quota::unix_secs();
        let checks = self.checks(quotas, now);
        let mut invocation = ADMIT_SCRIPT.prepare_invoke();
        invocation.arg(checks.len());
        for check in &checks {
            invocation.key(&check.key);
            match check.what {
                What::Spend { limit_usd, .. } => invocation.arg("s").arg(limit_usd).arg(0),
                What::Requests { per_minute } => invocation.arg("b").arg(per_minute).arg(1),
                What::Tokens { per_minute } => invocation.arg("b").arg(per_minute).arg(tokens),
            };
        }
        let (refused, wait_ms): (usize, u64) = self
            .call("admit", async |c| invocation.invoke_async(c).await)
            .await?;
        if refused > 0 {
            let Some(check) = checks.get(refused - 1) else {
                return Err(ClusterError::Redis(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "the admission script named no limit",
                ))));
            };
            return Ok(Err(refusal(check, tokens, wait_ms, now)));
        }
        Ok(Ok(self.reservation(checks, tokens, true)))
    }

    /// A claim on the shared budgets of `quotas` only, taken without asking Redis: for
    /// a request admitted on this replica's own limits while Redis is unreachable, so
    /// that its cost reaches the fleet's totals once Redis returns.
    pub fn spend_only(self: &Arc<Self>, quotas: [&Quota; 2]) -> SharedReservation {
        let checks = self.checks(quotas, crate::quota::unix_secs());
        self.reservation(checks, 0, false)
    }

    fn reservation(
        self: &Arc<Self>,
        checks: Vec<Check>,
        tokens: u64,
        took_tokens: bool,
    ) -> SharedReservation {
        let mut token_buckets = Vec::new();
        let mut spend_totals = Vec::new();
        for check in checks {
            match check.what {
                What::Tokens { per_minute } if took_tokens => {
                    token_buckets.push((check.key, per_minute));
                }
                What::Spend { period, .. } => spend_totals.push((
                    check.key,
                    match period {
                        Period::Day => DAY_TTL_SECS,
                        Period::Month => MONTH_TTL_SECS,
                    },
                )),
                What::Tokens { .. } | What::Requests { .. } => {}
            }
        }
        SharedReservation {
            cluster: self.clone(),
            token_buckets,
            spend_totals,
            tokens,
            settled: false,
        }
    }

    /// Sends one settlement, off the request's path. If Redis does not take it, the
    /// cost waits in [`Cluster::owed`] and is sent again until it does (spend is
    /// what budgets are made of); a token correction is dropped (buckets refill
    /// within the minute anyway).
    fn settle_later(
        self: &Arc<Self>,
        buckets: Vec<(String, u32, i64)>,
        spend: Vec<(String, u64)>,
        cost_usd: f64,
    ) {
        let runtime = match tokio::runtime::Handle::try_current() {
            Ok(runtime) if self.is_up() => runtime,
            _ => {
                self.owe(&spend, cost_usd);
                return;
            }
        };
        let cluster = self.clone();
        self.settling.fetch_add(1, Ordering::AcqRel);
        runtime.spawn(async move {
            let mut invocation = SETTLE_SCRIPT.prepare_invoke();
            invocation.arg(buckets.len());
            for (key, capacity, take) in &buckets {
                invocation.key(key).arg(*capacity).arg(*take);
            }
            invocation.arg(cost_usd);
            for (key, ttl) in &spend {
                invocation.key(key).arg(*ttl);
            }
            let sent: Result<i64, _> = cluster
                .call("settle", async |c| invocation.invoke_async(c).await)
                .await;
            if sent.is_err() {
                cluster.owe(&spend, cost_usd);
            }
            cluster.settling.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Notes spend Redis has not taken yet, and makes sure a task is sending it.
    fn owe(self: &Arc<Self>, spend: &[(String, u64)], cost_usd: f64) {
        if spend.is_empty() || cost_usd <= 0.0 {
            return;
        }
        {
            let mut owed = self.owed();
            for (key, ttl) in spend {
                owed.entry(key.clone()).or_insert((0.0, *ttl)).0 += cost_usd;
            }
        }
        if self.paying.swap(true, Ordering::AcqRel) {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            self.paying.store(false, Ordering::Release);
            return;
        };
        let cluster = self.clone();
        runtime.spawn(async move { cluster.pay_owed().await });
    }

    /// Sends what is owed every second until Redis has taken all of it; then the task
    /// ends (a healthy fleet runs none).
    async fn pay_owed(self: Arc<Self>) {
        loop {
            tokio::time::sleep(OWED_RETRY).await;
            if self.pay_once().await {
                self.paying.store(false, Ordering::Release);
                // Owed in the moment between the last payment and the flag.
                if self.owes() && !self.paying.swap(true, Ordering::AcqRel) {
                    continue;
                }
                return;
            }
        }
    }

    /// Sends everything owed in one transaction; true when nothing is owed after.
    pub(super) async fn pay_once(&self) -> bool {
        let owed: Vec<(String, f64, u64)> = self
            .owed()
            .iter()
            .map(|(key, (usd, ttl))| (key.clone(), *usd, *ttl))
            .collect();
        if owed.is_empty() {
            return true;
        }
        let mut pipe = redis::pipe();
        pipe.atomic();
        for (key, usd, ttl) in &owed {
            pipe.incr(key, *usd)
                .ignore()
                .expire(key, i64::try_from(*ttl).unwrap_or(i64::MAX))
                .ignore();
        }
        let paid: Result<(), _> = self
            .call("settle", async |c| pipe.query_async(c).await)
            .await;
        let mut left = self.owed();
        if paid.is_ok() {
            for (key, usd, _) in &owed {
                if let Some(entry) = left.get_mut(key) {
                    entry.0 -= usd;
                    // What was added while the payment was on its way stays owed.
                    if entry.0 <= 1e-12 {
                        left.remove(key);
                    }
                }
            }
            tracing::info!(
                totals = owed.len(),
                "spend owed to the shared budgets is paid"
            );
        }
        left.is_empty()
    }
}

/// How often spend Redis did not take is sent again.
const OWED_RETRY: Duration = Duration::from_secs(1);

/// The client's error for a refused check.
fn refusal(check: &Check, tokens: u64, wait_ms: u64, now: u64) -> QuotaError {
    let retry_after_secs = wait_ms.div_ceil(1000).max(1);
    let scope = check.scope.clone();
    match check.what {
        What::Spend { period, limit_usd } => QuotaError::Budget {
            scope,
            period,
            limit_usd,
            retry_after_secs: match period {
                Period::Day => utc::secs_to_next_day(now),
                Period::Month => utc::secs_to_next_month(now),
            },
        },
        What::Requests { per_minute } => QuotaError::Requests {
            scope,
            limit: per_minute,
            retry_after_secs,
        },
        What::Tokens { per_minute } => QuotaError::Tokens {
            scope,
            limit: per_minute,
            needed: tokens,
            retry_after_secs,
        },
    }
}

impl SharedReservation {
    /// Corrects the tokens to `used_tokens` and adds `cost_usd` to the budgets.
    pub fn settle(mut self, used_tokens: u64, cost_usd: f64) {
        self.settled = true;
        let take = i64::try_from(used_tokens).unwrap_or(i64::MAX)
            - i64::try_from(self.tokens).unwrap_or(i64::MAX);
        self.send(take, cost_usd);
    }

    fn send(&mut self, take: i64, cost_usd: f64) {
        let buckets: Vec<_> = if take == 0 {
            Vec::new()
        } else {
            self.token_buckets
                .drain(..)
                .map(|(key, capacity)| (key, capacity, take))
                .collect()
        };
        let spend = if cost_usd > 0.0 {
            std::mem::take(&mut self.spend_totals)
        } else {
            Vec::new()
        };
        if buckets.is_empty() && spend.is_empty() {
            return;
        }
        self.cluster.settle_later(buckets, spend, cost_usd);
    }
}

impl Drop for SharedReservation {
    fn drop(&mut self) {
        if !self.settled {
            // No upstream answer, so no tokens used; the request itself was made.
            let give_back = -i64::try_from(self.tokens).unwrap_or(i64::MAX);
            self.send(give_back, 0.0);
        }
    }
}

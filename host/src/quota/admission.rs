//! Admitting a request against its tenant's and its key's quotas, and settling what it
//! really used once the upstream has answered.

use super::{Quota, QuotaError, Refusal, monotonic_ns, retry_after_secs, unix_secs};
use std::sync::Arc;

/// What one scope's reservation took from its buckets, so that exactly that is given
/// back.
#[derive(Debug, Default, Clone, Copy)]
struct Held {
    requests: u64,
    tokens: u64,
}

/// An admitted request's claim on its quotas: one request and its estimated tokens,
/// taken from the tenant's and the key's buckets.
///
/// [`Reservation::settle`] corrects the tokens to what the upstream reported and adds
/// the cost to the budgets. Dropped unsettled (the request ended without an upstream
/// answer: no route, a policy's rejection, an upstream client error, the client gone
/// before the answer), the tokens are given back; the request still counts.
#[must_use = "dropping a reservation gives its tokens back at once"]
#[derive(Debug)]
pub struct Reservation {
    /// Tenant, then key; `None` for a scope with no limits (nothing to do for it).
    scopes: [Option<Arc<Quota>>; 2],
    held: [Held; 2],
    tokens: u64,
    /// How many replicas' worth each request takes: 1, or, on a replica of a fleet
    /// enforcing its share of the limits while the shared store is unreachable, the
    /// number of replicas (a bucket of N per minute taking `share` per request
    /// admits N ÷ `share`).
    share: u64,
    settled: bool,
    /// Held in the fleet's shared store instead (`[cluster]`).
    shared: Option<crate::cluster::SharedReservation>,
}

impl Reservation {
    /// A reservation against no quota at all.
    pub fn unlimited() -> Reservation {
        Reservation {
            scopes: [None, None],
            held: [Held::default(); 2],
            tokens: 0,
            share: 1,
            settled: true,
            shared: None,
        }
    }

    /// A reservation whose limits are held in the fleet's shared store. The local
    /// quotas take nothing, but their budgets are still charged at settlement: they
    /// are this replica's own view of the spend (the budget gauge, and what it
    /// enforces if the shared store fails open).
    pub fn shared(
        tenant: &Arc<Quota>,
        key: &Arc<Quota>,
        tokens: u64,
        shared: crate::cluster::SharedReservation,
    ) -> Reservation {
        Reservation {
            scopes: [tenant, key].map(|q| q.has_budget().then(|| q.clone())),
            held: [Held::default(); 2],
            tokens,
            share: 1,
            settled: false,
            shared: Some(shared),
        }
    }

    /// Also charges the request's cost to the shared store's budgets when it settles:
    /// for a request admitted on this replica's own limits while the shared store was
    /// unreachable, so the fleet's spend catches up when it returns.
    pub fn with_shared(mut self, shared: crate::cluster::SharedReservation) -> Reservation {
        self.shared = Some(shared);
        self
    }

    /// Settles with what the request really used: the token buckets are charged the
    /// difference from the estimate (more than estimated can leave a bucket owing,
    /// which refuses the next requests until it has refilled), and `cost_usd` is added
    /// to every budget.
    pub fn settle(mut self, used_tokens: u64, cost_usd: f64) {
        self.settled = true;
        if let Some(shared) = self.shared.take() {
            shared.settle(used_tokens, cost_usd);
        }
        if self.scopes.iter().all(Option::is_none) {
            return;
        }
        let now = monotonic_ns();
        let mut wall = None;
        for (quota, held) in self.scopes.iter().zip(&self.held) {
            let Some(quota) = quota else { continue };
            if let Some(limit) = &quota.tokens
                && held.tokens > 0
            {
                let used = used_tokens.saturating_mul(self.share);
                if used > held.tokens {
                    limit.bucket.take_anyway(used - held.tokens, now);
                } else {
                    limit.bucket.give_back(held.tokens - used, now);
                }
            }
            if let Some(budget) = &quota.budget {
                budget.add(cost_usd, *wall.get_or_insert_with(unix_secs));
            }
        }
    }

    /// Takes a request, then the tokens, from each scope; stops at the first refusal,
    /// leaving in `held` what was taken.
    fn take(&mut self, now: u64) -> Result<(), QuotaError> {
        for (quota, held) in self.scopes.iter().zip(&mut self.held) {
            let Some(quota) = quota else { continue };
            if let Some(limit) = &quota.requests {
                let take = self.share.min(limit.bucket.capacity());
                limit
                    .bucket
                    .try_take(take, now)
                    .map_err(|refusal| QuotaError::Requests {
                        scope: quota.scope.clone(),
                        limit: limit.per_minute,
                        retry_after_secs: wait_secs(refusal),
                    })?;
                held.requests = take;
            }
        }
        for (quota, held) in self.scopes.iter().zip(&mut self.held) {
            let Some(quota) = quota else { continue };
            if let Some(limit) = &quota.tokens {
                // Never more than the bucket holds: a request that fits the limit
                // fits its share too, only less often.
                let take = self
                    .tokens
                    .saturating_mul(self.share)
                    .min(limit.bucket.capacity());
                limit
                    .bucket
                    .try_take(take, now)
                    .map_err(|refusal| QuotaError::Tokens {
                        scope: quota.scope.clone(),
                        limit: limit.per_minute,
                        needed: self.tokens,
                        retry_after_secs: wait_secs(refusal),
                    })?;
                held.tokens = take;
            }
        }
        Ok(())
    }

    /// Gives back everything held, the request included: for a request refused here.
    fn cancel(&mut self, now: u64) {
        for (quota, held) in self.scopes.iter().zip(&mut self.held) {
            let Some(quota) = quota else { continue };
            if let Some(limit) = &quota.requests {
                limit.bucket.give_back(held.requests, now);
            }
            if let Some(limit) = &quota.tokens {
                limit.bucket.give_back(held.tokens, now);
            }
            *held = Held::default();
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        // No upstream answer, so no tokens used; the request itself was made.
        let now = monotonic_ns();
        for (quota, held) in self.scopes.iter().zip(&self.held) {
            if let Some(quota) = quota
                && let Some(limit) = &quota.tokens
            {
                limit.bucket.give_back(held.tokens, now);
            }
        }
    }
}

fn wait_secs(refusal: Refusal) -> u64 {
    match refusal {
        Refusal::Wait(ns) => retry_after_secs(ns),
        // Checked before any take; here only if a bucket shrank, which none does.
        Refusal::NeverFits => 60,
    }
}

/// Refuses a request estimated at `tokens` that could never fit a tokens-per-minute
/// limit of `quotas`: waiting would not help, so this is checked before anything else
/// (and before the shared store is asked).
pub fn fits(quotas: [&Quota; 2], tokens: u64) -> Result<(), QuotaError> {
    for quota in quotas {
        if let Some(limit) = &quota.tokens
            && tokens > limit.bucket.capacity()
        {
            return Err(QuotaError::TokensNeverFit {
                scope: quota.scope.clone(),
                limit: limit.per_minute,
                needed: tokens,
            });
        }
    }
    Ok(())
}

/// Admits a request estimated at `tokens` (input plus the most output it asked for)
/// against its tenant's and its key's quotas, or says which limit refuses it.
///
/// Checks run from the most lasting refusal to the least: a request that could never
/// fit the tokens per minute, then spent budgets (retrying in seconds would not help),
/// then requests per minute, then tokens per minute. A refused request takes nothing.
/// With no limits configured this touches no shared state and allocates nothing.
pub fn admit(
    tenant: &Arc<Quota>,
    key: &Arc<Quota>,
    tokens: u64,
) -> Result<Reservation, QuotaError> {
    admit_share(tenant, key, tokens, 1)
}

/// [`admit`] on a replica holding `1 / share` of each limit: each request takes
/// `share` requests and `share` times its tokens from the buckets, and a budget
/// refuses once this replica's spend times `share` reaches it. For a replica of a
/// fleet of `share` replicas while their shared store is unreachable.
pub fn admit_share(
    tenant: &Arc<Quota>,
    key: &Arc<Quota>,
    tokens: u64,
    share: u64,
) -> Result<Reservation, QuotaError> {
    let scopes = [tenant, key].map(|q| (!q.is_unlimited()).then(|| q.clone()));
    let mut reservation = Reservation {
        scopes,
        held: [Held::default(); 2],
        tokens,
        share: share.max(1),
        settled: false,
        shared: None,
    };
    if let Err(never) = fits([&**tenant, &**key], tokens) {
        reservation.settled = true;
        return Err(never);
    }
    let mut wall = None;
    for quota in reservation.scopes.iter().flatten() {
        if let Some(budget) = &quota.budget
            && let Err(spent) = budget.check(*wall.get_or_insert_with(unix_secs), reservation.share)
        {
            reservation.settled = true;
            return Err(QuotaError::Budget {
                scope: quota.scope.clone(),
                period: spent.period,
                limit_usd: spent.limit_usd,
                retry_after_secs: spent.retry_after_secs,
            });
        }
    }
    if reservation.scopes.iter().all(Option::is_none) {
        return Ok(reservation);
    }
    let now = monotonic_ns();
    if let Err(refused) = reservation.take(now) {
        reservation.cancel(now);
        reservation.settled = true;
        return Err(refused);
    }
    Ok(reservation)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitsSection;
    use crate::quota::Scope;

    fn quota(scope: Scope, limits: LimitsSection) -> Arc<Quota> {
        Arc::new(Quota::new(scope, &limits))
    }

    fn tenant(limits: LimitsSection) -> Arc<Quota> {
        quota(Scope::Tenant("acme".into()), limits)
    }

    fn key(limits: LimitsSection) -> Arc<Quota> {
        quota(Scope::Key("ci".into()), limits)
    }

    fn none() -> LimitsSection {
        LimitsSection::default()
    }

    #[test]
    fn without_limits_everything_is_admitted() {
        let (t, k) = (tenant(none()), key(none()));
        for _ in 0..1000 {
            admit(&t, &k, 1_000_000).unwrap().settle(5_000_000, 100.0);
        }
        assert_eq!(t.spent_usd(), (0.0, 0.0));
    }

    #[test]
    fn requests_per_minute_name_the_scope_and_a_refusal_takes_nothing() {
        let t = tenant(LimitsSection {
            requests_per_minute: Some(2),
            ..none()
        });
        let k = key(LimitsSection {
            requests_per_minute: Some(1),
            ..none()
        });
        let other = key(none());
        let first = admit(&t, &k, 10).unwrap();
        let e = admit(&t, &k, 10).unwrap_err();
        assert_eq!(e.code(), "rate_limit_requests");
        assert_eq!(e.scope(), &Scope::Key("ci".into()));
        // The key's refusal gave the tenant's request back: another key still fits.
        let second = admit(&t, &other, 10).unwrap();
        let e = admit(&t, &other, 10).unwrap_err();
        assert_eq!(e.scope(), &Scope::Tenant("acme".into()));
        assert_eq!(e.retry_after_secs(), Some(30));
        assert!(
            e.to_string()
                .contains("the limit of tenant `acme` is 2 per minute"),
            "{e}"
        );
        drop((first, second));
    }

    #[test]
    fn tokens_are_reserved_then_reconciled() {
        let t = tenant(LimitsSection {
            tokens_per_minute: Some(1000),
            ..none()
        });
        let k = key(none());
        // Estimated 600, used 100: 500 come back, so another 600 fits.
        admit(&t, &k, 600).unwrap().settle(100, 0.0);
        let r = admit(&t, &k, 600).unwrap();
        // Used far more than estimated: the bucket owes, the next small one is refused.
        r.settle(2500, 0.0);
        let e = admit(&t, &k, 10).unwrap_err();
        assert_eq!(e.code(), "rate_limit_tokens");
        assert!(e.retry_after_secs().unwrap() > 60, "{e:?}");
    }

    #[test]
    fn unanswered_requests_give_their_tokens_back() {
        let t = tenant(LimitsSection {
            tokens_per_minute: Some(100),
            requests_per_minute: Some(3),
            ..none()
        });
        let k = key(none());
        drop(admit(&t, &k, 100).unwrap());
        drop(admit(&t, &k, 100).unwrap());
        drop(admit(&t, &k, 100).unwrap());
        // The tokens came back each time, the requests did not.
        assert_eq!(admit(&t, &k, 1).unwrap_err().code(), "rate_limit_requests");
    }

    #[test]
    fn a_request_larger_than_the_bucket_can_never_fit() {
        let t = tenant(none());
        let k = key(LimitsSection {
            tokens_per_minute: Some(100),
            ..none()
        });
        let e = admit(&t, &k, 101).unwrap_err();
        assert_eq!(e.code(), "rate_limit_tokens");
        assert_eq!(e.retry_after_secs(), None);
        assert!(e.to_string().contains("can never be admitted"), "{e}");
    }

    #[test]
    fn budgets_refuse_once_spent() {
        let t = tenant(none());
        let k = key(LimitsSection {
            budget_usd_per_day: Some(0.01),
            ..none()
        });
        admit(&t, &k, 10).unwrap().settle(10, 0.006);
        admit(&t, &k, 10).unwrap().settle(10, 0.006);
        let e = admit(&t, &k, 10).unwrap_err();
        assert_eq!(e.code(), "budget_exceeded");
        let secs = e.retry_after_secs().unwrap();
        assert!((1..=86_400).contains(&secs), "{secs}");
        assert!(e.to_string().contains("daily budget of $0.01"), "{e}");
    }
}

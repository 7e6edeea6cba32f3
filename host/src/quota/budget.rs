//! Spend budgets per UTC day and per UTC calendar month.
//!
//! Spend is kept in memory; at start-up the gateway restores the current windows from
//! the usage ledger when there is one ([`Budget::restore`]). Replicas do not share it.

use super::utc;
use std::fmt;
use std::sync::{Mutex, PoisonError};

/// A budget window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    /// The UTC day.
    Day,
    /// The UTC calendar month.
    Month,
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Period::Day => "daily",
            Period::Month => "monthly",
        })
    }
}

/// A budget found spent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Exhausted {
    /// Which window.
    pub period: Period,
    /// Its limit, USD.
    pub limit_usd: f64,
    /// Seconds until the window resets (at least 1).
    pub retry_after_secs: u64,
}

#[derive(Debug, Default)]
struct Spent {
    day: u64,
    day_usd: f64,
    month: u64,
    month_usd: f64,
}

impl Spent {
    /// Starts new windows when `now` has left the current ones (or the clock went back).
    fn roll(&mut self, now: u64) {
        let day = utc::day(now);
        if day != self.day {
            self.day = day;
            self.day_usd = 0.0;
            let month = utc::month(now);
            if month != self.month {
                self.month = month;
                self.month_usd = 0.0;
            }
        }
    }
}

/// Day and month budgets of one tenant or key, and what has been spent in the current
/// windows. The lock is held for a few arithmetic operations, never across an await.
#[derive(Debug)]
pub struct Budget {
    per_day: Option<f64>,
    per_month: Option<f64>,
    spent: Mutex<Spent>,
}

impl Budget {
    /// A budget, or `None` when neither limit is set.
    pub fn new(per_day: Option<f64>, per_month: Option<f64>) -> Option<Budget> {
        (per_day.is_some() || per_month.is_some()).then(|| Budget {
            per_day,
            per_month,
            // Day 0 is in month 0 (January 1970), consistent for the first `roll`.
            spent: Mutex::new(Spent::default()),
        })
    }

    /// Refuses when a window's spend has reached its limit. The month is checked first:
    /// when both are spent, the month's reset is the one worth waiting for.
    pub fn check(&self, now_unix_secs: u64) -> Result<(), Exhausted> {
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        spent.roll(now_unix_secs);
        if let Some(limit) = self.per_month
            && spent.month_usd >= limit
        {
            return Err(Exhausted {
                period: Period::Month,
                limit_usd: limit,
                retry_after_secs: utc::secs_to_next_month(now_unix_secs).max(1),
            });
        }
        if let Some(limit) = self.per_day
            && spent.day_usd >= limit
        {
            return Err(Exhausted {
                period: Period::Day,
                limit_usd: limit,
                retry_after_secs: utc::secs_to_next_day(now_unix_secs).max(1),
            });
        }
        Ok(())
    }

    /// Adds what a request cost to the current windows.
    pub fn add(&self, usd: f64, now_unix_secs: u64) {
        if !(usd.is_finite() && usd > 0.0) {
            return;
        }
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        spent.roll(now_unix_secs);
        spent.day_usd += usd;
        spent.month_usd += usd;
    }

    /// Starts the current windows at what was already spent in them (as the usage
    /// ledger recorded it before a restart).
    pub fn restore(&self, day_usd: f64, month_usd: f64, now_unix_secs: u64) {
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        spent.roll(now_unix_secs);
        // Not `max(0.0)`: a sum of no rows is -0.0, which `max` may keep, and the
        // metrics would show it.
        let positive = |usd: f64| if usd > 0.0 { usd } else { 0.0 };
        spent.day_usd = positive(day_usd);
        spent.month_usd = positive(month_usd);
    }

    /// Spend in the current day and month windows, USD.
    pub fn spent(&self, now_unix_secs: u64) -> (f64, f64) {
        let mut spent = self.spent.lock().unwrap_or_else(PoisonError::into_inner);
        spent.roll(now_unix_secs);
        (spent.day_usd, spent.month_usd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2024-02-28 12:00:00 UTC.
    const NOON: u64 = 19_781 * 86_400 + 43_200;

    #[test]
    fn no_limits_no_budget() {
        assert!(Budget::new(None, None).is_none());
    }

    #[test]
    fn a_day_budget_refuses_once_reached_until_midnight() {
        let b = Budget::new(Some(1.0), None).unwrap();
        b.add(0.6, NOON);
        assert_eq!(b.check(NOON), Ok(()));
        b.add(0.6, NOON);
        assert_eq!(
            b.check(NOON + 1),
            Err(Exhausted {
                period: Period::Day,
                limit_usd: 1.0,
                retry_after_secs: 43_199
            })
        );
        // The next UTC day starts from zero; the month goes on.
        assert_eq!(b.check(NOON + 43_200), Ok(()));
        let (day, month) = b.spent(NOON + 43_200);
        assert_eq!(day, 0.0);
        assert!((month - 1.2).abs() < 1e-9, "{month}");
    }

    #[test]
    fn a_month_budget_outlasts_days_and_wins_over_the_day() {
        let b = Budget::new(Some(1.0), Some(1.5)).unwrap();
        b.add(1.0, NOON);
        b.add(0.6, NOON + 86_400);
        // Day 2 is under its day limit, but the month is spent: wait for March 1st,
        // which is 2024-02-29 12:00 + 12 h.
        let e = b.check(NOON + 86_400).unwrap_err();
        assert_eq!(e.period, Period::Month);
        assert_eq!(e.retry_after_secs, 43_200);
        assert_eq!(b.check(NOON + 86_400 + 43_200), Ok(()));
    }

    #[test]
    fn nonsense_costs_are_ignored() {
        let b = Budget::new(Some(1.0), None).unwrap();
        for usd in [f64::NAN, f64::INFINITY, -5.0, 0.0] {
            b.add(usd, NOON);
        }
        assert_eq!(b.spent(NOON), (0.0, 0.0));
    }

    #[test]
    fn a_restore_of_nothing_is_a_plain_zero() {
        let b = Budget::new(Some(1.0), None).unwrap();
        // What summing no ledger rows gives.
        let nothing: f64 = std::iter::empty::<f64>().sum();
        b.restore(nothing, f64::NAN, NOON);
        let (day, month) = b.spent(NOON);
        assert!(day == 0.0 && day.is_sign_positive(), "{day}");
        assert!(month == 0.0 && month.is_sign_positive(), "{month}");
        b.restore(0.25, -1.0, NOON);
        assert_eq!(b.spent(NOON), (0.25, 0.0));
    }
}

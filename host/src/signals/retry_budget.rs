//! A retry budget per target, as linkerd keeps one: the attempts a failing target
//! sends on to the next target of a plan may add at most `ratio` of the requests that
//! went to it first, plus `min_per_second`, over the last ten seconds. A target that
//! fails everything then costs the others a bounded extra load instead of doubling it
//! until its circuit opens; the requests over the budget end at once with a 503.
//!
//! Counted per second in a ring of ten slots with atomics, so the request path takes no
//! lock. A slot is reset by the first count of a new second; a count racing that reset
//! may be lost, which moves a bound meant as a ratio by a request or two.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// Seconds of history the budget looks at.
const WINDOW_SECS: u64 = 10;

/// The budget's settings (`[server] retry_budget_ratio`, `retry_budget_min_per_second`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryBudgetConfig {
    /// Retries allowed per request first sent to the target.
    pub ratio: f64,
    /// Retries allowed per second whatever the traffic, so that a quiet target's
    /// occasional failure still falls back.
    pub min_per_second: u32,
}

impl Default for RetryBudgetConfig {
    /// linkerd's defaults: a fifth more load at most, and ten retries a second.
    fn default() -> Self {
        RetryBudgetConfig {
            ratio: 0.2,
            min_per_second: 10,
        }
    }
}

/// One target's requests and retries over the last [`WINDOW_SECS`] seconds.
#[derive(Debug, Default)]
pub(super) struct RetryBudget {
    slots: [Slot; WINDOW_SECS as usize],
}

#[derive(Debug, Default)]
struct Slot {
    /// The second (since the board started) this slot counts. A fresh slot counts
    /// second 0 with zeros, which is right for it.
    second: AtomicU64,
    requests: AtomicU32,
    retries: AtomicU32,
}

impl RetryBudget {
    fn slot(&self, second: u64) -> &Slot {
        let slot = &self.slots[(second % WINDOW_SECS) as usize];
        let seen = slot.second.load(Ordering::Acquire);
        if seen != second
            && slot
                .second
                .compare_exchange(seen, second, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            slot.requests.store(0, Ordering::Relaxed);
            slot.retries.store(0, Ordering::Relaxed);
        }
        slot
    }

    /// A request's first attempt went to this target.
    pub fn deposit(&self, second: u64) {
        self.slot(second).requests.fetch_add(1, Ordering::Relaxed);
    }

    /// This target failed an attempt: may the request go on to the next target? Takes
    /// one retry from the budget if so.
    pub fn withdraw(&self, second: u64, config: RetryBudgetConfig) -> bool {
        let (mut requests, mut retries) = (0u64, 0u64);
        for slot in &self.slots {
            let s = slot.second.load(Ordering::Acquire);
            if s <= second && second - s < WINDOW_SECS {
                requests += u64::from(slot.requests.load(Ordering::Relaxed));
                retries += u64::from(slot.retries.load(Ordering::Relaxed));
            }
        }
        let allowed =
            config.ratio * requests as f64 + f64::from(config.min_per_second) * WINDOW_SECS as f64;
        if retries as f64 >= allowed {
            return false;
        }
        self.slot(second).retries.fetch_add(1, Ordering::Relaxed);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENTH: RetryBudgetConfig = RetryBudgetConfig {
        ratio: 0.1,
        min_per_second: 0,
    };

    #[test]
    fn retries_are_a_share_of_the_requests_in_the_window() {
        let budget = RetryBudget::default();
        for _ in 0..100 {
            budget.deposit(5);
        }
        let granted = (0..50).filter(|_| budget.withdraw(5, TENTH)).count();
        assert_eq!(granted, 10);
        // Nine seconds later the requests still count; ten seconds later they do not.
        assert!(!budget.withdraw(14, TENTH));
        for _ in 0..10 {
            budget.deposit(15);
        }
        assert!(budget.withdraw(15, TENTH), "ten new requests buy one retry");
        assert!(!budget.withdraw(15, TENTH));
    }

    #[test]
    fn a_floor_per_second_lets_a_quiet_target_fall_back() {
        let budget = RetryBudget::default();
        let floor = RetryBudgetConfig {
            ratio: 0.0,
            min_per_second: 1,
        };
        let granted = (0..20).filter(|_| budget.withdraw(3, floor)).count();
        assert_eq!(granted, 10, "one per second over the ten-second window");
    }
}

//! A token bucket that refills continuously, lock-free.
//!
//! The bucket is kept as one number, the instant at which it will be full again
//! (`full_at`, the "theoretical arrival time" of the generic cell rate algorithm).
//! Taking `n` tokens pushes that instant `n` token-intervals later; the take is allowed
//! while the bucket would still be full again within one period. Everything is a
//! compare-and-swap on one `AtomicU64`, so concurrent requests never wait on a lock.
//!
//! Time is passed in by the caller, in nanoseconds of a monotonic clock, which keeps
//! the arithmetic testable without sleeping.

use std::sync::atomic::{AtomicU64, Ordering};

/// Why a take was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Enough tokens will be there after this many nanoseconds (if nothing else takes).
    Wait(u64),
    /// More tokens were asked for than the bucket ever holds.
    NeverFits,
}

/// `capacity` tokens per `period`, refilled continuously, starting full.
#[derive(Debug)]
pub struct TokenBucket {
    capacity: u64,
    period_ns: u64,
    full_at: AtomicU64,
}

impl TokenBucket {
    /// A full bucket of `capacity` tokens (at least 1) refilling over `period_ns`.
    pub fn new(capacity: u64, period_ns: u64) -> TokenBucket {
        TokenBucket {
            capacity: capacity.max(1),
            period_ns: period_ns.max(1),
            full_at: AtomicU64::new(0),
        }
    }

    /// How many tokens a full bucket holds.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The time `n` tokens take to refill, rounded up so that rounding never grants
    /// more than the rate.
    fn refill_ns(&self, n: u64) -> u64 {
        let ns = (u128::from(n) * u128::from(self.period_ns)).div_ceil(u128::from(self.capacity));
        u64::try_from(ns).unwrap_or(u64::MAX)
    }

    /// Takes `n` tokens at `now` if the bucket holds them.
    pub fn try_take(&self, n: u64, now: u64) -> Result<(), Refusal> {
        if n > self.capacity {
            return Err(Refusal::NeverFits);
        }
        let cost = self.refill_ns(n);
        let mut full_at = self.full_at.load(Ordering::Acquire);
        loop {
            let next = full_at.max(now).saturating_add(cost);
            let limit = now.saturating_add(self.period_ns);
            if next > limit {
                return Err(Refusal::Wait(next - limit));
            }
            match self.full_at.compare_exchange_weak(
                full_at,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(current) => full_at = current,
            }
        }
    }

    /// Takes `n` tokens at `now` even if that leaves the bucket owing: used when a
    /// request turns out to have used more than was reserved. A bucket in debt refuses
    /// everything until time has paid the debt back.
    pub fn take_anyway(&self, n: u64, now: u64) {
        let cost = self.refill_ns(n);
        let _ = self
            .full_at
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |full_at| {
                Some(full_at.max(now).saturating_add(cost))
            });
    }

    /// Returns `n` tokens taken earlier and not used. A bucket never holds more than
    /// its capacity: tokens returned to a bucket that has refilled meanwhile are lost.
    pub fn give_back(&self, n: u64, now: u64) {
        let cost = self.refill_ns(n);
        let _ = self
            .full_at
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |full_at| {
                (full_at > now).then(|| full_at.saturating_sub(cost).max(now))
            });
    }

    /// Tokens available at `now` (rounded down; 0 while in debt).
    pub fn available(&self, now: u64) -> u64 {
        let full_at = self.full_at.load(Ordering::Acquire);
        let missing_ns = full_at.saturating_sub(now);
        if missing_ns >= self.period_ns {
            return 0;
        }
        let missing = (u128::from(missing_ns) * u128::from(self.capacity))
            .div_ceil(u128::from(self.period_ns));
        self.capacity - u64::try_from(missing).unwrap_or(self.capacity)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const MINUTE: u64 = 60_000_000_000;

    #[test]
    fn starts_full_and_refuses_when_empty_with_the_wait() {
        let b = TokenBucket::new(3, MINUTE);
        for _ in 0..3 {
            assert_eq!(b.try_take(1, 0), Ok(()));
        }
        // One token comes back every 20 s.
        assert_eq!(b.try_take(1, 0), Err(Refusal::Wait(20_000_000_000)));
        assert_eq!(
            b.try_take(1, 5_000_000_000),
            Err(Refusal::Wait(15_000_000_000))
        );
        assert_eq!(b.try_take(1, 20_000_000_000), Ok(()));
        assert_eq!(b.try_take(4, 0), Err(Refusal::NeverFits));
    }

    #[test]
    fn debt_is_paid_back_by_time_and_refunds_do_not_overfill() {
        let b = TokenBucket::new(100, MINUTE);
        b.try_take(10, 0).unwrap();
        b.take_anyway(290, 0);
        assert_eq!(b.available(0), 0);
        // 300 taken: 200 of debt clears after two minutes, a full bucket after three.
        assert!(matches!(b.try_take(1, 2 * MINUTE), Err(Refusal::Wait(_))));
        assert_eq!(b.available(3 * MINUTE), 100);

        let b = TokenBucket::new(100, MINUTE);
        b.try_take(30, 0).unwrap();
        b.give_back(50, 0);
        assert_eq!(b.available(0), 100);
        assert_eq!(b.try_take(100, 0), Ok(()));
    }

    /// A sequence of takes at non-decreasing times.
    fn takes() -> impl Strategy<Value = Vec<(u64, u64)>> {
        prop::collection::vec((0u64..2_000_000_000, 1u64..40), 1..200)
    }

    proptest! {
        /// Over any stretch of time starting from a full bucket, no more is granted than
        /// the capacity plus what the rate refills, and the level never exceeds the
        /// capacity.
        #[test]
        fn never_grants_more_than_capacity_plus_refill(capacity in 1u64..500, steps in takes()) {
            let b = TokenBucket::new(capacity, MINUTE);
            let (mut now, mut granted) = (0u64, 0u64);
            for (gap, n) in steps {
                now += gap;
                if b.try_take(n, now).is_ok() {
                    granted += n;
                }
                prop_assert!(b.available(now) <= capacity);
                let refilled = u128::from(now) * u128::from(capacity) / u128::from(MINUTE);
                prop_assert!(u128::from(granted) <= u128::from(capacity) + refilled);
            }
        }

        /// An emptied bucket gets back `capacity × elapsed / period` tokens (give or take
        /// one for rounding), up to its capacity.
        #[test]
        fn refills_at_the_configured_rate(capacity in 1u64..100_000, elapsed in 0u64..2 * MINUTE) {
            let b = TokenBucket::new(capacity, MINUTE);
            b.try_take(capacity, 0).unwrap();
            let expected = (u128::from(elapsed) * u128::from(capacity) / u128::from(MINUTE))
                .min(u128::from(capacity)) as u64;
            let available = b.available(elapsed);
            prop_assert!(available <= expected && available + 1 >= expected,
                "available {} expected {}", available, expected);
        }

        /// When a take is refused with a wait, the same take succeeds after exactly that
        /// wait and not a nanosecond before.
        #[test]
        fn the_wait_is_exact(capacity in 1u64..1000, steps in takes(), n in 1u64..1000) {
            let n = n.min(capacity);
            let b = TokenBucket::new(capacity, MINUTE);
            let mut now = 0u64;
            for (gap, k) in steps {
                now += gap;
                let _ = b.try_take(k.min(capacity), now);
            }
            match b.try_take(n, now) {
                Ok(()) => {}
                Err(Refusal::Wait(wait)) => {
                    prop_assert!(wait > 0);
                    prop_assert!(matches!(b.try_take(n, now + wait - 1), Err(Refusal::Wait(1))));
                    prop_assert_eq!(b.try_take(n, now + wait), Ok(()));
                }
                Err(Refusal::NeverFits) => prop_assert!(false, "{} fits in {}", n, capacity),
            }
        }
    }
}

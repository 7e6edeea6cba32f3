//! How a policy's route calls went: the one place they are counted. A version's
//! bindings share one set (see `deploy`), the admin API reports it and the Prometheus
//! series `signalbox_policy_failures_total` is read from it at scrape time.

use super::error::PolicyError;
use std::sync::atomic::{AtomicU64, Ordering};

/// Every way a call can fail, in the order of [`CallCounters::failures`].
pub const FAILURE_KINDS: [&str; 6] = [
    "trap",
    "deadline",
    "memory_limit",
    "invalid_decision",
    "bad_config",
    "instantiate",
];

/// Route calls and their failures by kind ([`PolicyError::kind`]).
#[derive(Debug, Default)]
pub struct CallCounters {
    calls: AtomicU64,
    failures: [AtomicU64; FAILURE_KINDS.len()],
}

impl CallCounters {
    /// Counts one call and how it ended.
    pub fn record<T>(&self, result: &Result<T, PolicyError>) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = result {
            self.failures[kind_index(e)].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds counts saved by an earlier process: `calls`, and `failed(kind)` for each
    /// kind of [`FAILURE_KINDS`].
    pub fn restore(&self, calls: u64, failed: impl Fn(&str) -> u64) {
        self.calls.fetch_add(calls, Ordering::Relaxed);
        for (kind, n) in FAILURE_KINDS.iter().zip(&self.failures) {
            n.fetch_add(failed(kind), Ordering::Relaxed);
        }
    }

    /// Calls made.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    /// Failed calls, per kind: `(kind, count)` in [`FAILURE_KINDS`] order.
    pub fn failures(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        FAILURE_KINDS
            .iter()
            .zip(&self.failures)
            .map(|(kind, n)| (*kind, n.load(Ordering::Relaxed)))
    }

    fn failed(&self, kinds: &[&str]) -> u64 {
        self.failures()
            .filter(|(kind, _)| kinds.contains(kind))
            .map(|(_, n)| n)
            .sum()
    }

    /// Calls that failed in any way.
    pub fn errors(&self) -> u64 {
        self.failed(&FAILURE_KINDS)
    }

    /// Calls that trapped (a memory-cap hit is counted apart, as
    /// [`memory_limits`](Self::memory_limits): the fix differs).
    pub fn traps(&self) -> u64 {
        self.failed(&["trap"])
    }

    /// Calls stopped because the instance reached its memory cap.
    pub fn memory_limits(&self) -> u64 {
        self.failed(&["memory_limit"])
    }

    /// Calls stopped at the deadline.
    pub fn deadlines(&self) -> u64 {
        self.failed(&["deadline"])
    }
}

/// The index of `error`'s kind in [`FAILURE_KINDS`] (a unit test checks they agree).
fn kind_index(error: &PolicyError) -> usize {
    match error {
        PolicyError::Trap(_) => 0,
        PolicyError::Deadline(_) => 1,
        PolicyError::MemoryLimit(_) => 2,
        PolicyError::InvalidDecision(_) => 3,
        PolicyError::BadConfig(_) => 4,
        PolicyError::Instantiate(_) => 5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_is_counted_under_its_own_kind() {
        let counters = CallCounters::default();
        let errors = [
            PolicyError::Trap("t".into()),
            PolicyError::Deadline(std::time::Duration::from_millis(1)),
            PolicyError::MemoryLimit(1),
            PolicyError::InvalidDecision("i".into()),
            PolicyError::BadConfig("b".into()),
            PolicyError::Instantiate("n".into()),
        ];
        for e in errors {
            let kind = e.kind();
            counters.record::<()>(&Err(e));
            assert_eq!(
                counters.failures().find(|(k, _)| *k == kind),
                Some((kind, 1))
            );
        }
        counters.record(&Ok(()));
        assert_eq!(counters.calls(), 7);
        assert_eq!(counters.errors(), 6);
        assert_eq!(counters.traps(), 1);
        assert_eq!(counters.memory_limits(), 1);
        assert_eq!(counters.deadlines(), 1);
    }
}

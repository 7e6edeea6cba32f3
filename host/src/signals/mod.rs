//! Live signals per target, learned from real traffic: latency and time-to-first-token
//! averages, error rate, in-flight count, rate-limit window and a circuit breaker.
//!
//! Every policy call gets a snapshot; dispatch consults the breaker before each
//! attempt and reports every attempt's result back here.

mod circuit;
mod retry_budget;

pub use circuit::{Admission, BreakerConfig};
pub use retry_budget::RetryBudgetConfig;

use crate::policy::TargetSignals;
use circuit::Breaker;
use retry_budget::RetryBudget;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Weight of the newest observation in the moving averages.
const EWMA_ALPHA: f32 = 0.2;
/// Weight of the newest attempt in the error rate (≈ the last 20 attempts).
const ERROR_ALPHA: f32 = 0.05;

/// How an attempt ended, as far as the target's health is concerned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AttemptResult {
    /// Answered; with its total latency and, for streams, time to first token.
    Success {
        /// Total latency.
        latency: Duration,
        /// Time to first content, for streams.
        ttft: Option<Duration>,
    },
    /// Failed in a way that counts against the target (connect error, timeout, 5xx,
    /// broken stream).
    Failure,
    /// Rate-limited (429) until this long from now.
    RateLimited(Duration),
    /// Says nothing about health (the client's own error, an unsupported request).
    Neutral,
}

/// The signals of every configured target, indexed like the configuration.
#[derive(Debug)]
pub struct SignalBoard {
    targets: Vec<TargetState>,
    started: Instant,
    retry: RetryBudgetConfig,
}

#[derive(Debug)]
struct TargetState {
    capacity: u32,
    in_flight: AtomicU32,
    /// Milliseconds since `started` until which the upstream asked us to back off.
    rate_limited_until_ms: AtomicU64,
    stats: Mutex<Stats>,
    retry_budget: RetryBudget,
}

#[derive(Debug)]
struct Stats {
    latency_ms: f32,
    ttft_ms: f32,
    error_rate: f32,
    breaker: Breaker,
}

impl SignalBoard {
    /// A board for targets with these capacities (`0` = unlimited).
    pub fn new(capacities: &[u32], breaker: BreakerConfig, retry: RetryBudgetConfig) -> Self {
        SignalBoard {
            targets: capacities
                .iter()
                .map(|&capacity| TargetState {
                    capacity,
                    in_flight: AtomicU32::new(0),
                    rate_limited_until_ms: AtomicU64::new(0),
                    stats: Mutex::new(Stats {
                        latency_ms: 0.0,
                        ttft_ms: 0.0,
                        error_rate: 0.0,
                        breaker: Breaker::new(breaker),
                    }),
                    retry_budget: RetryBudget::default(),
                })
                .collect(),
            started: Instant::now(),
            retry,
        }
    }

    fn now_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// A request's first attempt goes to target `index`: it adds to the target's
    /// retry budget.
    pub fn first_attempt(&self, index: usize) {
        if let Some(t) = self.targets.get(index) {
            t.retry_budget.deposit(self.now_secs());
        }
    }

    /// Target `index` failed an attempt: may the request try the next target? Takes a
    /// retry from the failed target's budget when it may (see [`RetryBudgetConfig`]).
    pub fn may_retry_after(&self, index: usize) -> bool {
        self.targets
            .get(index)
            .is_none_or(|t| t.retry_budget.withdraw(self.now_secs(), self.retry))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The signals of `indices`, in that order, as a policy sees them.
    pub fn snapshot(&self, indices: &[usize]) -> Vec<TargetSignals> {
        let now_ms = self.now_ms();
        indices
            .iter()
            .map(|&i| match self.targets.get(i) {
                Some(t) => {
                    let until = t.rate_limited_until_ms.load(Ordering::Relaxed);
                    let (latency_ms, ttft_ms, error_rate, healthy) = match t.stats.lock() {
                        Ok(s) => (s.latency_ms, s.ttft_ms, s.error_rate, s.breaker.healthy()),
                        Err(_) => (0.0, 0.0, 0.0, true),
                    };
                    TargetSignals {
                        healthy,
                        in_flight: t.in_flight.load(Ordering::Relaxed),
                        capacity: t.capacity,
                        latency_ms,
                        ttft_ms,
                        error_rate,
                        rate_limited_ms: u32::try_from(until.saturating_sub(now_ms))
                            .unwrap_or(u32::MAX),
                    }
                }
                None => TargetSignals {
                    healthy: false,
                    in_flight: 0,
                    capacity: 0,
                    latency_ms: 0.0,
                    ttft_ms: 0.0,
                    error_rate: 1.0,
                    rate_limited_ms: 0,
                },
            })
            .collect()
    }

    /// Whether target `index` may be tried now: its breaker is closed (or lets a
    /// half-open probe through), it is not inside a rate-limit window, and it has room.
    pub fn admit(&self, index: usize) -> Admission {
        let Some(t) = self.targets.get(index) else {
            return Admission::Denied("unknown target");
        };
        if t.rate_limited_until_ms.load(Ordering::Relaxed) > self.now_ms() {
            return Admission::Denied("rate-limited by the upstream");
        }
        if t.capacity > 0 && t.in_flight.load(Ordering::Relaxed) >= t.capacity {
            return Admission::Denied("at its in-flight limit");
        }
        match t.stats.lock() {
            Ok(mut s) => s.breaker.admit(),
            Err(_) => Admission::Allowed,
        }
    }

    /// Counts a request in flight to `index` until the guard drops (which may be when
    /// a streamed response ends, hence the owned handle).
    pub fn start(self: &Arc<Self>, index: usize) -> InFlight {
        if let Some(t) = self.targets.get(index) {
            t.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        InFlight {
            board: self.clone(),
            index,
        }
    }

    /// Requests in flight to `index` and its circuit state (0 closed, 1 half-open,
    /// 2 open), for the metrics gauges.
    pub fn gauges(&self, index: usize) -> (u32, i64) {
        let Some(t) = self.targets.get(index) else {
            return (0, 0);
        };
        let circuit = t.stats.lock().map_or(0, |s| s.breaker.state_code());
        (t.in_flight.load(Ordering::Relaxed), circuit)
    }

    /// Records how an attempt on `index` ended.
    pub fn record(&self, index: usize, result: AttemptResult) {
        let Some(t) = self.targets.get(index) else {
            return;
        };
        if let AttemptResult::RateLimited(wait) = result {
            let until = self
                .now_ms()
                .saturating_add(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
            t.rate_limited_until_ms.fetch_max(until, Ordering::Relaxed);
        }
        let Ok(mut s) = t.stats.lock() else {
            return;
        };
        match result {
            AttemptResult::Success { latency, ttft } => {
                s.latency_ms = ewma(s.latency_ms, latency.as_secs_f32() * 1e3, EWMA_ALPHA);
                if let Some(ttft) = ttft {
                    s.ttft_ms = ewma(s.ttft_ms, ttft.as_secs_f32() * 1e3, EWMA_ALPHA);
                }
                s.error_rate = ewma_rate(s.error_rate, 0.0);
                s.breaker.success();
            }
            AttemptResult::Failure => {
                s.error_rate = ewma_rate(s.error_rate, 1.0);
                s.breaker.failure();
            }
            // A 429 is the upstream protecting itself, not a sign it is broken: it
            // opens a rate-limit window but does not trip the breaker.
            AttemptResult::RateLimited(_) | AttemptResult::Neutral => s.breaker.neutral(),
        }
    }
}

/// A request in flight to one target; decrements the count when dropped.
#[derive(Debug)]
pub struct InFlight {
    board: Arc<SignalBoard>,
    index: usize,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Some(t) = self.board.targets.get(self.index) {
            t.in_flight.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

fn ewma(old: f32, sample: f32, alpha: f32) -> f32 {
    if old == 0.0 {
        sample
    } else {
        old + alpha * (sample - old)
    }
}

fn ewma_rate(old: f32, sample: f32) -> f32 {
    old + ERROR_ALPHA * (sample - old)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn board() -> Arc<SignalBoard> {
        Arc::new(SignalBoard::new(
            &[2, 0],
            BreakerConfig {
                failures_to_open: 3,
                cool_down: Duration::from_millis(50),
            },
            RetryBudgetConfig::default(),
        ))
    }

    #[test]
    fn averages_and_in_flight_follow_traffic() {
        let b = board();
        let guard = b.start(0);
        let _second = b.start(0);
        assert!(
            matches!(b.admit(0), Admission::Denied(_)),
            "capacity 2 reached"
        );
        drop(guard);
        assert_eq!(b.snapshot(&[0])[0].in_flight, 1);
        b.record(
            0,
            AttemptResult::Success {
                latency: Duration::from_millis(100),
                ttft: Some(Duration::from_millis(10)),
            },
        );
        b.record(
            0,
            AttemptResult::Success {
                latency: Duration::from_millis(200),
                ttft: None,
            },
        );
        let s = b.snapshot(&[0])[0];
        assert!((s.latency_ms - 120.0).abs() < 0.01, "{}", s.latency_ms);
        assert!((s.ttft_ms - 10.0).abs() < 0.01);
    }

    #[test]
    fn rate_limits_open_a_window_without_tripping_the_breaker() {
        let b = board();
        b.record(1, AttemptResult::RateLimited(Duration::from_secs(30)));
        let s = b.snapshot(&[1])[0];
        assert!(s.healthy);
        assert!(s.rate_limited_ms > 29_000 && s.rate_limited_ms <= 30_000);
        assert!(matches!(
            b.admit(1),
            Admission::Denied("rate-limited by the upstream")
        ));
    }

    #[test]
    fn breaker_opens_then_probes_then_closes() {
        let b = board();
        for _ in 0..3 {
            b.record(1, AttemptResult::Failure);
        }
        assert!(!b.snapshot(&[1])[0].healthy);
        assert!(matches!(b.admit(1), Admission::Denied(_)));
        std::thread::sleep(Duration::from_millis(60));
        assert_eq!(b.admit(1), Admission::Probe);
        assert!(
            matches!(b.admit(1), Admission::Denied(_)),
            "one probe at a time"
        );
        b.record(
            1,
            AttemptResult::Success {
                latency: Duration::from_millis(5),
                ttft: None,
            },
        );
        assert_eq!(b.admit(1), Admission::Allowed);
        assert!(b.snapshot(&[1])[0].healthy);
    }
}

//! A per-target circuit breaker: open after N consecutive failures, let one probe
//! through after a cool-down, close on the probe's success.

use std::time::{Duration, Instant};

/// When the breaker opens and how long it stays open.
#[derive(Debug, Clone, Copy)]
pub struct BreakerConfig {
    /// Consecutive failures that open the circuit.
    pub failures_to_open: u32,
    /// How long it stays open before a probe is let through.
    pub cool_down: Duration,
}

impl Default for BreakerConfig {
    fn default() -> Self {
        BreakerConfig {
            failures_to_open: 5,
            cool_down: Duration::from_secs(10),
        }
    }
}

/// Whether a target may be tried now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Closed circuit: go.
    Allowed,
    /// Half-open: this attempt is the probe that decides whether to close.
    Probe,
    /// Not now, and why.
    Denied(&'static str),
}

#[derive(Debug)]
enum State {
    Closed { failures: u32 },
    Open { until: Instant },
    HalfOpen { probing: bool },
}

#[derive(Debug)]
pub(crate) struct Breaker {
    config: BreakerConfig,
    state: State,
}

impl Breaker {
    pub fn new(config: BreakerConfig) -> Self {
        Breaker {
            config,
            state: State::Closed { failures: 0 },
        }
    }

    /// Healthy as policies see it: closed, or open long enough to be probed.
    pub fn healthy(&self) -> bool {
        match self.state {
            State::Closed { .. } => true,
            State::Open { until } => Instant::now() >= until,
            State::HalfOpen { probing } => !probing,
        }
    }

    /// 0 closed, 1 half-open, 2 open (as the `circuit_state` gauge reports it).
    pub fn state_code(&self) -> i64 {
        match self.state {
            State::Closed { .. } => 0,
            State::HalfOpen { .. } => 1,
            State::Open { .. } => 2,
        }
    }

    pub fn admit(&mut self) -> Admission {
        match self.state {
            State::Closed { .. } => Admission::Allowed,
            State::Open { until } if Instant::now() < until => Admission::Denied("circuit open"),
            State::Open { .. } | State::HalfOpen { probing: false } => {
                self.state = State::HalfOpen { probing: true };
                Admission::Probe
            }
            State::HalfOpen { probing: true } => {
                Admission::Denied("circuit half-open, probe in flight")
            }
        }
    }

    pub fn success(&mut self) {
        self.state = State::Closed { failures: 0 };
    }

    pub fn failure(&mut self) {
        self.state = match self.state {
            State::Closed { failures } if failures + 1 < self.config.failures_to_open => {
                State::Closed {
                    failures: failures + 1,
                }
            }
            _ => State::Open {
                until: Instant::now() + self.config.cool_down,
            },
        };
    }

    /// An attempt that says nothing about health (e.g. a 429) ends a probe without a
    /// verdict, so another probe may follow.
    pub fn neutral(&mut self) {
        if let State::HalfOpen { probing: true } = self.state {
            self.state = State::HalfOpen { probing: false };
        }
    }
}

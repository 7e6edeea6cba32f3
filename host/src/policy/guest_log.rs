//! Policy log lines (the `log` import and a guest's stdout/stderr), rate-limited per
//! tenant so a chatty or hostile policy cannot flood the host's logs.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// A token bucket of log lines, shared by all instances of one tenant.
#[derive(Debug)]
pub struct LogLimiter {
    per_second: f64,
    burst: f64,
    bucket: Mutex<(f64, Instant)>,
    dropped: AtomicU64,
}

impl LogLimiter {
    /// Allows `per_second` lines on average and bursts of `burst`.
    pub fn new(per_second: u32, burst: u32) -> Self {
        LogLimiter {
            per_second: f64::from(per_second),
            burst: f64::from(burst.max(1)),
            bucket: Mutex::new((f64::from(burst.max(1)), Instant::now())),
            dropped: AtomicU64::new(0),
        }
    }

    /// Takes one line's worth; false (and counted) when over the limit.
    pub fn admit(&self) -> bool {
        let Ok(mut bucket) = self.bucket.lock() else {
            return false;
        };
        let now = Instant::now();
        let (tokens, last) = *bucket;
        let refilled =
            (tokens + now.duration_since(last).as_secs_f64() * self.per_second).min(self.burst);
        if refilled >= 1.0 {
            *bucket = (refilled - 1.0, now);
            true
        } else {
            *bucket = (refilled, now);
            self.dropped.fetch_add(1, Ordering::Relaxed);
            false
        }
    }

    /// Lines dropped so far.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl Default for LogLimiter {
    /// 20 lines a second, bursts of 100.
    fn default() -> Self {
        LogLimiter::new(20, 100)
    }
}

/// Where a guest line came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    Log(tracing::Level),
    Stdout,
    Stderr,
}

/// Longest line kept; the rest is cut so one call cannot produce a huge log record.
const MAX_LINE: usize = 2048;

pub(crate) fn emit(limiter: &LogLimiter, tenant: &str, version: &str, source: Source, line: &str) {
    if !limiter.admit() {
        return;
    }
    let line = cut(line);
    match source {
        Source::Log(tracing::Level::ERROR) => {
            tracing::error!(target: "signalbox::policy::guest", tenant, version, "{line}")
        }
        Source::Log(tracing::Level::WARN) => {
            tracing::warn!(target: "signalbox::policy::guest", tenant, version, "{line}")
        }
        Source::Log(tracing::Level::INFO) => {
            tracing::info!(target: "signalbox::policy::guest", tenant, version, "{line}")
        }
        Source::Log(tracing::Level::DEBUG) => {
            tracing::debug!(target: "signalbox::policy::guest", tenant, version, "{line}")
        }
        Source::Log(_) => {
            tracing::trace!(target: "signalbox::policy::guest", tenant, version, "{line}")
        }
        Source::Stdout => {
            tracing::info!(target: "signalbox::policy::guest", tenant, version, stream = "stdout", "{line}")
        }
        Source::Stderr => {
            tracing::warn!(target: "signalbox::policy::guest", tenant, version, stream = "stderr", "{line}")
        }
    }
}

fn cut(line: &str) -> &str {
    if line.len() <= MAX_LINE {
        return line;
    }
    let mut end = MAX_LINE;
    while !line.is_char_boundary(end) {
        end -= 1;
    }
    &line[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_admits_a_burst_then_drops() {
        let limiter = LogLimiter::new(0, 3);
        assert!((0..3).all(|_| limiter.admit()));
        assert!(!limiter.admit());
        assert_eq!(limiter.dropped(), 1);
    }
}

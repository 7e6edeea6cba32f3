//! Checking `[server]`: the listener's address and the bounds on what a client can
//! make the gateway hold (time, headers, connections, requests, HTTP/2 streams).

use super::error::Invalid;
use super::location::KeyPath;
use super::sections::ServerSection;
use std::time::Duration;

/// hyper refuses (panics on) a smaller HTTP/1 read buffer.
pub(crate) const MIN_HEADER_BYTES: usize = 8192;

/// HTTP/2's largest header list size setting.
const MAX_HEADER_BYTES: usize = u32::MAX as usize;

/// Checks `[server]`: every bound is set (no zero that would mean "refuse all" or,
/// worse, "no bound").
pub(super) fn validate_server(server: &ServerSection) -> Result<(), Invalid> {
    let at = |key: &str| KeyPath::dotted("server").key(key);
    if server.listen.parse::<std::net::SocketAddr>().is_err() {
        return Err(Invalid::new(
            at("listen"),
            format!("`{}` is not an address:port", server.listen),
        ));
    }
    for (key, value) in [
        ("header_read_timeout_ms", server.header_read_timeout_ms),
        ("body_read_timeout_ms", server.body_read_timeout_ms),
        ("idle_timeout_ms", server.idle_timeout_ms),
        (
            "overload_retry_after_secs",
            server.overload_retry_after_secs,
        ),
        (
            "http2_keep_alive_timeout_secs",
            server.http2_keep_alive_timeout_secs,
        ),
    ] {
        if value == 0 {
            return Err(Invalid::new(at(key), "must be above zero"));
        }
    }
    for (key, value) in [
        ("max_header_count", server.max_header_count),
        ("max_connections", server.max_connections),
        ("listen_backlog", server.listen_backlog as usize),
        ("max_in_flight", server.max_in_flight),
        (
            "http2_max_concurrent_streams",
            server.http2_max_concurrent_streams as usize,
        ),
        (
            "http2_max_pending_accept_reset_streams",
            server.http2_max_pending_accept_reset_streams,
        ),
        (
            "http2_max_local_error_reset_streams",
            server.http2_max_local_error_reset_streams,
        ),
        (
            "http2_max_control_frames_per_sec",
            server.http2_max_control_frames_per_sec as usize,
        ),
    ] {
        if value == 0 {
            return Err(Invalid::new(at(key), "must be at least 1"));
        }
    }
    // A semaphore holds at most `usize::MAX >> 3` permits.
    for (key, value) in [
        ("max_connections", server.max_connections),
        ("max_in_flight", server.max_in_flight),
    ] {
        if value > u32::MAX as usize {
            return Err(Invalid::new(at(key), "must be at most 4294967295"));
        }
    }
    let ratio = server.retry_budget_ratio;
    if !ratio.is_finite() || ratio < 0.0 {
        return Err(Invalid::new(
            at("retry_budget_ratio"),
            "the retry budget must be a number, zero or more",
        ));
    }
    if !(MIN_HEADER_BYTES..=MAX_HEADER_BYTES).contains(&server.max_header_bytes) {
        return Err(Invalid::new(
            at("max_header_bytes"),
            format!("must be from {MIN_HEADER_BYTES} to {MAX_HEADER_BYTES}"),
        ));
    }
    Ok(())
}

impl ServerSection {
    /// Time allowed for a request's headers.
    pub fn header_read_timeout(&self) -> Duration {
        Duration::from_millis(self.header_read_timeout_ms)
    }
    /// Time allowed for a request's body.
    pub fn body_read_timeout(&self) -> Duration {
        Duration::from_millis(self.body_read_timeout_ms)
    }
    /// Time a connection may sit with nothing in flight.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_zeros_are_refused_by_name() {
        assert!(validate_server(&ServerSection::default()).is_ok());
        type Change = fn(&mut ServerSection);
        let cases: [(&str, Change); 6] = [
            ("header_read_timeout_ms", |s| s.header_read_timeout_ms = 0),
            ("body_read_timeout_ms", |s| s.body_read_timeout_ms = 0),
            ("max_connections", |s| s.max_connections = 0),
            ("max_in_flight", |s| s.max_in_flight = 0),
            ("max_header_bytes", |s| s.max_header_bytes = 4096),
            ("http2_max_control_frames_per_sec", |s| {
                s.http2_max_control_frames_per_sec = 0
            }),
        ];
        for (key, change) in cases {
            let mut server = ServerSection::default();
            change(&mut server);
            let e = validate_server(&server).unwrap_err();
            assert_eq!(e.path.to_string(), format!("server.{key}"));
        }
    }
}

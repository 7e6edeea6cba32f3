//! The example configs stay valid.

use signalbox::config::Config;
use std::path::Path;

#[test]
fn the_fleet_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config = Config::parse(&text, "fleet.toml", Path::new("."), &|_| None).unwrap();
    let cluster = config.cluster.expect("a [cluster] section");
    assert_eq!(cluster.redis_url, "redis://127.0.0.1:6379");
    assert_eq!(cluster.on_failure, signalbox::config::FailMode::FailOpen);
    assert_eq!(config.tenants[0].limits.requests_per_minute, Some(20));
}

#[test]
fn the_gateway_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gateway.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config =
        Config::parse(&text, "gateway.toml", Path::new("."), &|_| Some("k".into())).unwrap();
    assert_eq!(config.targets.len(), 4);
    assert_eq!(
        config.tenants[0].safe_route,
        ["openai-gpt-4o-mini", "local-sim"]
    );
    let keys = config.tenants[0].api_keys();
    let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["3b7f2a0c", "ci-bot", "laptop-2023"]);
    assert!(keys[2].disabled);
    assert_eq!(config.tenants[0].limits.requests_per_minute, Some(600));
    assert_eq!(config.tenants[0].limits.max_in_flight, Some(64));
    // The listener bounds shown are the defaults, so the example documents them.
    let defaults = signalbox::config::ServerSection::default();
    let s = &config.server;
    assert_eq!(
        (
            s.header_read_timeout_ms,
            s.body_read_timeout_ms,
            s.idle_timeout_ms
        ),
        (
            defaults.header_read_timeout_ms,
            defaults.body_read_timeout_ms,
            defaults.idle_timeout_ms
        )
    );
    assert_eq!(
        (
            s.max_header_count,
            s.max_header_bytes,
            s.max_connections,
            s.max_in_flight
        ),
        (
            defaults.max_header_count,
            defaults.max_header_bytes,
            defaults.max_connections,
            defaults.max_in_flight
        )
    );
    assert_eq!(
        (
            s.http2_max_concurrent_streams,
            s.http2_max_pending_accept_reset_streams,
            s.http2_max_local_error_reset_streams,
            s.http2_max_control_frames_per_sec,
            s.http2_keep_alive_interval_secs,
            s.http2_keep_alive_timeout_secs,
            s.overload_retry_after_secs,
        ),
        (
            defaults.http2_max_concurrent_streams,
            defaults.http2_max_pending_accept_reset_streams,
            defaults.http2_max_local_error_reset_streams,
            defaults.http2_max_control_frames_per_sec,
            defaults.http2_keep_alive_interval_secs,
            defaults.http2_keep_alive_timeout_secs,
            defaults.overload_retry_after_secs,
        )
    );
    // Without the environment variables it refuses to start, naming the variable.
    let err = Config::parse(&text, "gateway.toml", Path::new("."), &|_| None).unwrap_err();
    assert!(
        err.to_string()
            .contains("providers[0].api_key_env: environment variable `OPENAI_API_KEY` is not set"),
        "{err}"
    );
}

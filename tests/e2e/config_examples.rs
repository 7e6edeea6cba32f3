//! The example configs stay valid: `gateway.toml` parses and names every config key,
//! `offline.toml` starts and serves.

use crate::gateway_support::{Reply, TestGateway, send};
use serde_json::json;
use signalbox::config::Config;
use std::path::Path;
use std::time::{Duration, Instant};

fn example(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples")
        .join(name);
    std::fs::read_to_string(&path).unwrap()
}

/// Every field of every config section (read from the structs that parse them), so a
/// key added to the code and not to the example fails here.
fn config_fields() -> Vec<String> {
    let source = concat!(
        include_str!("../../host/src/config/sections.rs"),
        include_str!("../../host/src/config/cluster.rs"),
    );
    let mut fields = Vec::new();
    let mut in_section = false;
    let mut skip_next = false;
    let mut derives_deserialize = false;
    for line in source.lines() {
        let t = line.trim();
        if t.starts_with("#[derive(") {
            derives_deserialize = t.contains("Deserialize");
        } else if t.starts_with("pub struct") || t.starts_with("pub(crate) struct") {
            in_section = derives_deserialize && t.ends_with('{');
        } else if line.starts_with('}') {
            in_section = false;
        } else if in_section {
            if t.starts_with("#[serde(skip") {
                skip_next = true;
            } else if let Some(rest) = t.strip_prefix("pub ") {
                let name = rest.split(':').next().unwrap().trim().to_owned();
                if !std::mem::take(&mut skip_next) {
                    fields.push(name);
                }
            }
        }
    }
    fields.sort();
    fields.dedup();
    fields
}

/// Whether `text` sets `key` (commented out or not) or opens a table named `key`.
fn names_key(text: &str, key: &str) -> bool {
    text.lines().any(|line| {
        let line = line.trim_start().trim_start_matches('#').trim_start();
        let sets = |s: &str| {
            s.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        };
        sets(line)
            || line
                .split(['{', ','])
                .skip(1)
                .any(|part| sets(part.trim_start()))
            || (line.starts_with('[')
                && line
                    .split('#')
                    .next()
                    .unwrap()
                    .trim_end()
                    .trim_matches(['[', ']'])
                    .split('.')
                    .any(|part| part == key))
    })
}

#[test]
fn the_gateway_example_names_every_config_key() {
    let text = example("gateway.toml");
    let fields = config_fields();
    assert!(
        fields.len() > 60,
        "the section structs were not read: {fields:?}"
    );
    for must in [
        "listen",
        "feedback_window",
        "log_message_text",
        "state_snapshot_secs",
    ] {
        assert!(
            fields.iter().any(|f| f == must),
            "{must} not found in {fields:?}"
        );
    }
    let missing: Vec<&String> = fields.iter().filter(|f| !names_key(&text, f)).collect();
    assert!(
        missing.is_empty(),
        "examples/gateway.toml does not show: {missing:?}"
    );
    assert!(!names_key("# listen_backlog = 1", "listen"));
    assert!(names_key("x = { latency_ms = 1 }", "latency_ms"));
    assert!(names_key("# [admin.tls]", "tls"));
}

/// The offline example starts as it is (its state directory and decision log moved to
/// a temporary directory) and serves both tenants, the admin API, the ledger and the
/// decision log, with the keys and tokens its comments name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offline_example_serves_two_tenants_and_the_admin_api() {
    let dir = tempfile::tempdir().unwrap();
    let text = example("offline.toml");
    let state = dir.path().join("state");
    let log = dir.path().join("decisions.jsonl");
    let moved = text
        .replace(
            r#"state_dir = "offline-state""#,
            &format!("state_dir = {:?}", state.display().to_string()),
        )
        .replace(
            r#"path = "offline-state/decisions.jsonl""#,
            &format!("path = {:?}", log.display().to_string()),
        );
    assert_eq!(moved.matches(dir.path().to_str().unwrap()).count(), 2);
    let gw = TestGateway::start(&moved).await;

    let chat = |key: &'static str| {
        let url = gw.url("/v1/chat/completions");
        async move {
            let body = json!({"model": "auto", "messages": [{"role": "user", "content": "hi"}]});
            send("POST", &url, Some(key), Some(body.to_string().as_bytes())).await
        }
    };
    let a: Reply = chat("sb-example-team-a-key").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.header("x-signalbox-target"), "sim-small");
    let b = chat("sb-example-team-b-key").await;
    assert_eq!(b.status, 200, "{}", b.text());
    assert_eq!(b.header("x-signalbox-target"), "sim-large");

    let admin = |path: &str, token: &'static str| {
        let url = gw.admin_url(path);
        async move { send("GET", &url, Some(token), None).await }
    };
    let all = admin("/admin/tenants", "sb-admin-example-operator").await;
    assert_eq!(all.status, 200, "{}", all.text());
    assert_eq!(all.json()["data"].as_array().unwrap().len(), 2);
    let own = admin("/admin/tenants", "sb-admin-example-team-b")
        .await
        .json();
    assert_eq!(own["data"][0]["id"], "team-b", "{own}");
    assert_eq!(own["data"].as_array().unwrap().len(), 1, "{own}");

    // The ledger and the decision log record both requests (written just after each).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let usage = admin("/admin/usage?group_by=target", "sb-admin-example-operator").await;
        assert_eq!(usage.status, 200, "{}", usage.text());
        let rows = usage.json()["data"].as_array().unwrap().len();
        let lines = std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if rows == 2 && lines == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ledger rows {rows}, log lines {lines}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

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
    let text = example("gateway.toml");
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

//! The quick start as a new user runs it: `signalbox serve` with no config, as a real
//! process. It serves chat and embeddings offline, opens the admin API on loopback
//! with the operator token it prints, records usage and decisions in a temporary
//! state directory, and removes that directory at exit.

use crate::gateway_support::send;
use serde_json::json;
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

const DEMO_KEY: &str = "sb-demo-0123456789abcdef";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_config_shows_everything_offline() {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut api, mut admin, mut token, mut state) = (None, None, None, None);
    let mut dashboard = None;
    while state.is_none() {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("start-up lines")
            .unwrap()
            .expect("the gateway exited during start-up");
        if let Some(url) = line.strip_prefix("signalbox listening on ") {
            api = Some(url.to_owned());
        } else if let Some(rest) = line.strip_prefix("admin API: ") {
            let (url, t) = rest.split_once(" operator token ").unwrap();
            admin = Some(url.to_owned());
            token = Some(t.to_owned());
        } else if let Some(rest) = line.strip_prefix("dashboard: ") {
            dashboard = rest.split_once(' ').map(|(url, _)| url.to_owned());
        } else if let Some(rest) = line.strip_prefix("usage ledger and decision log in ") {
            state = Some(rest.strip_suffix(" (removed at exit)").unwrap().to_owned());
        }
    }
    let (api, admin, token, state) = (
        api.unwrap(),
        admin.expect("no admin API line"),
        token.unwrap(),
        std::path::PathBuf::from(state.unwrap()),
    );
    assert!(admin.starts_with("http://127.0.0.1:"), "{admin}");
    assert!(
        token.starts_with("sb-admin-") && token.len() > 40,
        "{token}"
    );
    assert!(state.is_dir(), "{}", state.display());
    // The dashboard is printed beside the admin API, and signs in with its token.
    assert_eq!(
        dashboard.expect("no dashboard line"),
        format!("{admin}/dashboard")
    );
    let form = send("GET", &format!("{admin}/dashboard"), None, None).await;
    assert_eq!(form.status, 200);
    assert!(form.text().contains("id=\"sign-in\""), "{}", form.text());
    let signed_in = crate::gateway_support::send_with(
        "POST",
        &format!("{admin}/dashboard/sign-in"),
        None,
        Some(format!("token={token}").as_bytes()),
        &[],
    )
    .await;
    assert_eq!(signed_in.status, 303, "{}", signed_in.text());

    let chat = json!({"model": "auto", "messages": [{"role": "user", "content": "Hello"}]});
    let r = send(
        "POST",
        &format!("{api}/v1/chat/completions"),
        Some(DEMO_KEY),
        Some(chat.to_string().as_bytes()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let embed = json!({"model": "sim-embed", "input": ["Hello", "world"]});
    let r = send(
        "POST",
        &format!("{api}/v1/embeddings"),
        Some(DEMO_KEY),
        Some(embed.to_string().as_bytes()),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let body = r.json();
    assert_eq!(body["object"], "list");
    let vectors = body["data"].as_array().unwrap();
    assert_eq!(vectors.len(), 2, "{body}");
    let first = vectors[0]["embedding"].as_array().unwrap();
    assert_eq!(first.len(), 64);
    assert!(first.iter().all(|x| x.as_f64().is_some_and(f64::is_finite)));
    assert_ne!(vectors[0]["embedding"], vectors[1]["embedding"]);
    assert_eq!(r.header("x-signalbox-target"), "sim-embed");

    // The admin API answers to the printed token, and only to it.
    let tenants = send("GET", &format!("{admin}/admin/tenants"), Some(&token), None).await;
    assert_eq!(tenants.status, 200, "{}", tenants.text());
    assert_eq!(tenants.json()["data"][0]["id"], "demo");
    let refused = send(
        "GET",
        &format!("{admin}/admin/tenants"),
        Some(DEMO_KEY),
        None,
    )
    .await;
    assert_eq!(refused.status, 401);
    let metrics = send("GET", &format!("{admin}/metrics"), Some(&token), None).await;
    assert_eq!(metrics.status, 200);
    assert!(metrics.text().contains("signalbox_"), "{}", metrics.text());

    // Both requests reach the ledger and the decision log (written just after each).
    let log = state.join("decisions.jsonl");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let usage = send(
            "GET",
            &format!("{admin}/admin/usage?group_by=target"),
            Some(&token),
            None,
        )
        .await;
        assert_eq!(usage.status, 200, "{}", usage.text());
        let requests: u64 = usage.json()["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| row["requests"].as_u64().unwrap_or(0))
            .sum();
        let lines = std::fs::read_to_string(&log)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if requests == 2 && lines == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "ledger requests {requests}, decision log lines {lines}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(!state.exists(), "{} was left behind", state.display());
}

/// `config print-default` writes the embedded config out; it is a valid config that
/// `serve --config` accepts as it is.
#[test]
fn config_print_default_writes_the_embedded_config() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["config", "print-default"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text, signalbox::config::EMBEDDED_DEFAULT);
    let config =
        signalbox::config::Config::parse(&text, "gateway.toml", std::path::Path::new("."), &|_| {
            None
        })
        .unwrap();
    assert!(config.targets.iter().any(|t| t.id == "sim-embed"));
}

//! A damaged policy store never silently loses a tenant's history or quarantine list:
//! the gateway, started as a real process on a state directory whose `bindings.json`
//! was damaged, sets the file aside, logs an error and uses the last good copy — or,
//! with no good copy, refuses to start and names the file.

use crate::deploy::{OPERATOR, bytes, deploy, lifecycle_config, report, served, upstream};
use crate::gateway_support::{TestGateway, send};
use crate::support::hostile_policy;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// A state directory where tenant `acme` has a history (one earlier binding) and a
/// quarantined version; returns the gateway config and acme's report as it was.
async fn state_with_history_and_quarantine(state: &Path, upstream: &str) -> (String, Value) {
    let extra = format!("state_dir = \"{}\"", state.display());
    let config = lifecycle_config(upstream, &extra);
    let gw = TestGateway::start(&config).await;
    let (seed_label, _) = served(&gw, None, &[]).await;
    let hostile = deploy(&gw, &bytes(&hostile_policy()), "hostile", json!({})).await;
    let trap = [("x-signalbox-act", "panic")];
    let deadline = Instant::now() + Duration::from_secs(10);
    while served(&gw, None, &trap).await.0 != seed_label {
        assert!(Instant::now() < deadline, "never quarantined");
    }
    // Activating the seed's binding again puts the current one into the history.
    let seed = report(&gw, "acme").await["active"].clone();
    deploy_again(&gw, &seed).await;
    let listed = report(&gw, "acme").await;
    assert_eq!(listed["history"].as_array().unwrap().len(), 1, "{listed}");
    assert!(quarantined(&listed).contains(&hostile), "{listed}");
    (config, listed)
}

async fn deploy_again(gw: &TestGateway, active: &Value) {
    let r = crate::deploy::admin_post(
        gw,
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": active["version"], "config": active["config"]}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
}

fn quarantined(report: &Value) -> Vec<String> {
    report["versions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["quarantined"] == true)
        .map(|v| v["version"].as_str().unwrap().to_owned())
        .collect()
}

fn bindings_file(state: &Path) -> PathBuf {
    state.join("tenants/acme/bindings.json")
}

fn file_names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

/// `signalbox serve` on `config` (written beside the state), JSON logs on stderr.
fn serve(config: &str, dir: &Path) -> tokio::process::Child {
    let path = dir.join("gateway.toml");
    std::fs::write(&path, config).unwrap();
    tokio::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--log-format", "json", "--config"])
        .arg(&path)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_bindings_file_is_set_aside_and_its_last_good_copy_used() {
    let up = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let (config, before) = state_with_history_and_quarantine(state.path(), &up.url()).await;
    let damaged = br#"{"active": {"version": "#;
    std::fs::write(bindings_file(state.path()), damaged).unwrap();

    let mut child = serve(&config, state.path());
    let stderr = child.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stderr).lines();
        let mut all = Vec::new();
        while let Ok(Some(line)) = lines.next_line().await {
            all.push(line);
        }
        all
    });
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let admin = loop {
        let line = stdout
            .next_line()
            .await
            .unwrap()
            .expect("the gateway exited instead of recovering");
        if let Some(url) = line.strip_prefix("signalbox admin API on ") {
            break url.to_owned();
        }
    };
    let r = send(
        "GET",
        &format!("{admin}/admin/tenants/acme/policies"),
        Some(OPERATOR),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let after = r.json();
    assert_eq!(after["history"], before["history"], "history lost: {after}");
    assert_eq!(
        quarantined(&after),
        quarantined(&before),
        "quarantine lost: {after}"
    );
    assert_eq!(after["active"]["version"], before["active"]["version"]);
    child.kill().await.unwrap();
    let logs = logs.await.unwrap();

    // The damaged copy is kept for the operator, under a name that says so.
    let tenant = state.path().join("tenants/acme");
    let aside: Vec<String> = file_names(&tenant)
        .into_iter()
        .filter(|n| n.starts_with("bindings.json.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{:?}", file_names(&tenant));
    assert_eq!(std::fs::read(tenant.join(&aside[0])).unwrap(), damaged);
    // And the error names the file and what was wrong with it.
    let logged = logs
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["level"] == "ERROR" && l.to_string().contains("set aside"))
        .unwrap_or_else(|| panic!("no error logged: {logs:#?}"));
    let fields = logged["fields"].to_string();
    assert!(
        fields.contains(&bindings_file(state.path()).display().to_string()),
        "{logged}"
    );
    assert!(fields.contains("EOF"), "what was wrong: {logged}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_bindings_file_without_a_good_copy_stops_start_up_naming_it() {
    let up = upstream().await;
    let state = tempfile::tempdir().unwrap();
    let (config, _) = state_with_history_and_quarantine(state.path(), &up.url()).await;
    let file = bindings_file(state.path());
    std::fs::write(&file, b"").unwrap();
    std::fs::remove_file(state.path().join("tenants/acme/bindings.json.prev")).unwrap();

    let child = serve(&config, state.path());
    let out = tokio::time::timeout(Duration::from_secs(120), child.wait_with_output())
        .await
        .expect("the gateway started on a damaged store")
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&file.display().to_string()) && stderr.contains("damaged"),
        "{stderr}"
    );
    // Left in place, untouched, for the operator to decide.
    assert_eq!(std::fs::read(&file).unwrap(), b"");
}

//! The gateway as a process with JSON logs at debug level: every line is a JSON object,
//! request lines carry the request id and tenant, and no secret (the provider's key,
//! client keys, admin tokens) appears in logs, metrics or responses.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::{Reply, config, send, send_with};
use std::time::Duration;
use tokio::io::AsyncBufReadExt;

const PROVIDER_SECRET: &str = "sk-sentinel-provider-7f1c2e";
const CLIENT_KEY: &str = "sb-sentinel-client-9a8b7c";
const WRONG_KEY: &str = "sb-sentinel-wrong-3d4e5f";
const ADMIN_TOKEN: &str = "sb-sentinel-admin-1a2b3c";
const SECRETS: [&str; 4] = [PROVIDER_SECRET, CLIENT_KEY, WRONG_KEY, ADMIN_TOKEN];

fn hash(secret: &str) -> String {
    signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(secret))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_request_ids_and_no_secret_reaches_any_output() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    let extra = format!(
        "[[tenants]]\nid = \"sentinel\"\nkey_hashes = [\"{}\"]\nsafe_route = [\"t\"]\n\n[admin]\nlisten = \"127.0.0.1:0\"\n[[admin.tokens]]\nhash = \"{}\"\n",
        hash(CLIENT_KEY),
        hash(ADMIN_TOKEN)
    );
    let toml = config(
        &[("p", "openai", &format!("{}/v1", up.url()))],
        &[("t", "p", "m")],
        &extra,
    )
    .replace("TEST_KEY", "SENTINEL_PROVIDER_KEY");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--log-format", "json", "-vv", "--config"])
        .arg(&path)
        .env("SENTINEL_PROVIDER_KEY", PROVIDER_SECRET)
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Drained from the start: at debug level the logs would fill the pipe and stall
    // the gateway.
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
    let (mut base, mut admin) = (String::new(), String::new());
    while base.is_empty() || admin.is_empty() {
        let line = stdout
            .next_line()
            .await
            .unwrap()
            .expect("gateway exited early");
        if let Some(url) = line.strip_prefix("signalbox listening on ") {
            base = url.to_owned();
        } else if let Some(url) = line.strip_prefix("signalbox admin API on ") {
            admin = url.to_owned();
        }
    }

    let chat = br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#;
    let url = format!("{base}/v1/chat/completions");
    let mut replies: Vec<Reply> = Vec::new();
    replies.push(send("POST", &url, Some(CLIENT_KEY), Some(chat)).await);
    up.enqueue(Upstream::ok().status(500));
    replies.push(send("POST", &url, Some(CLIENT_KEY), Some(chat)).await);
    replies.push(send("POST", &url, Some(WRONG_KEY), Some(chat)).await);
    replies.push(
        send(
            "POST",
            &url,
            Some(&format!("{CLIENT_KEY} extra")),
            Some(chat),
        )
        .await,
    );
    replies.push(
        send(
            "GET",
            &format!("{admin}/admin/tenants/sentinel/policies"),
            Some(ADMIN_TOKEN),
            None,
        )
        .await,
    );
    replies.push(
        send(
            "GET",
            &format!("{admin}/admin/tenants/sentinel/policies"),
            Some(WRONG_KEY),
            None,
        )
        .await,
    );
    // The dashboard: a refused and an accepted sign-in, and an action, which is logged
    // with the session's scope (never the token, nor the session id).
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let sign_in = format!("{admin}/dashboard/sign-in");
    let body = format!("token={WRONG_KEY}");
    replies.push(send_with("POST", &sign_in, None, Some(body.as_bytes()), &form).await);
    assert_eq!(replies.last().unwrap().status, 401);
    let body = format!("token={ADMIN_TOKEN}");
    replies.push(send_with("POST", &sign_in, None, Some(body.as_bytes()), &form).await);
    let signed_in = replies.last().unwrap();
    assert_eq!(signed_in.status, 303);
    let cookie = signed_in
        .header("set-cookie")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let session_id = cookie.split_once('=').unwrap().1.to_owned();
    let page = send_with(
        "GET",
        &format!("{admin}/dashboard"),
        None,
        None,
        &[("cookie", &cookie)],
    )
    .await;
    let csrf = crate::dashboard::csrf_of(&page.text());
    replies.push(page);
    let active = replies[4].json()["active"]["version"]
        .as_str()
        .unwrap()
        .to_owned();
    let activate = serde_json::json!({ "version": active }).to_string();
    replies.push(
        send_with(
            "POST",
            &format!("{admin}/dashboard/api/tenants/sentinel/activate"),
            None,
            Some(activate.as_bytes()),
            &[("cookie", &cookie), ("x-csrf-token", &csrf)],
        )
        .await,
    );
    assert_eq!(
        replies.last().unwrap().status,
        200,
        "{}",
        replies.last().unwrap().text()
    );
    let metrics = send("GET", &format!("{admin}/metrics"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(replies[0].status, 200, "{}", replies[0].text());
    assert_eq!(replies[2].status, 401);
    assert_eq!(metrics.status, 200);
    let request_id = replies[0].header("x-request-id").to_owned();
    tokio::time::sleep(Duration::from_millis(100)).await;

    let pid = child.id().unwrap().to_string();
    std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success());
    let logs = logs.await.unwrap();

    let mut with_request_id = 0;
    for line in &logs {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if v["span"]["request_id"] == request_id.as_str()
            || v["fields"]["request_id"] == request_id.as_str()
        {
            with_request_id += 1;
            if v["span"]["request_id"] == request_id.as_str() {
                assert_eq!(v["span"]["tenant"], "sentinel", "{line}");
            }
        }
    }
    assert!(
        with_request_id >= 1,
        "no log line names {request_id}:\n{}",
        logs.join("\n")
    );
    assert!(
        logs.iter()
            .any(|l| l.contains("attempt failed; trying the next target")),
        "the 500 left no log line"
    );
    let audited = logs.iter().any(|l| {
        let v: serde_json::Value = serde_json::from_str(l).unwrap();
        v["fields"]["message"] == "dashboard action"
            && v["fields"]["scope"] == "operator"
            && v["fields"]["tenant"] == "sentinel"
            && v["fields"]["action"] == "Activate"
    });
    assert!(
        audited,
        "the dashboard's action left no audit line:\n{}",
        logs.join("\n")
    );
    assert!(logs.iter().any(|l| l.contains("dashboard sign-in")));
    assert!(
        logs.iter()
            .all(|l| !l.contains(&session_id) && !l.contains(&csrf)),
        "a session id or CSRF token reached the logs"
    );

    let mut outputs: Vec<String> = logs;
    outputs.push(metrics.text());
    for r in &replies {
        outputs.push(r.text());
        outputs.push(format!("{:?}", r.headers));
    }
    for output in &outputs {
        for secret in SECRETS {
            assert!(!output.contains(secret), "a secret leaked into: {output}");
        }
    }
}

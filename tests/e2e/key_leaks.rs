//! No API key ever appears in a log line or a response.
//!
//! The gateway runs as a real process logging at trace level, its stderr captured. It is
//! sent valid keys (served, rate-limited, refused for a bad body), disabled keys, a key
//! of a disabled tenant, unknown keys and keys inside malformed headers; then the logs,
//! stdout and every response (status line aside: headers and body) are searched for each
//! key and for any 12-character piece of one. The provider's own key is searched too.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::{KEY, Reply, config, send, send_with};
use crate::keys_support::{hash, hello, key_entry};
use serde_json::json;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};

const UPSTREAM_SECRET: &str = "upstream-secret";

/// Everything at trace level, except the compiler's own bookkeeping while it compiles
/// the policy at start-up (tens of thousands of lines that take a minute to write and
/// never see a request).
const LOG_FILTER: &str = "trace,cranelift_codegen=info,cranelift_frontend=info,wasmtime_internal_cranelift=info,regalloc2=info";

fn fresh_key() -> String {
    signalbox::tenancy::generate_key().unwrap()
}

/// Every 12-character piece of `key` after its `sb-` prefix (or all of a short key).
fn pieces(key: &str) -> Vec<&str> {
    let body = key.strip_prefix("sb-").unwrap_or(key);
    if body.len() <= 12 {
        return vec![body];
    }
    (0..=body.len() - 12).map(|i| &body[i..i + 12]).collect()
}

#[tokio::test]
async fn no_key_appears_in_any_log_line_or_response() {
    let (ci, old, gone, unknown) = (fresh_key(), fresh_key(), fresh_key(), fresh_key());
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let extra = format!(
        "{}{}[[tenants]]\nid = \"gone\"\ndisabled = true\nkey_hashes = [\"{}\"]\nsafe_route = [\"a\"]\n",
        key_entry(
            "ci",
            &ci,
            "requests_per_minute = 2\ntokens_per_minute = 500"
        ),
        key_entry("old", &old, "disabled = true"),
        hash(&gone),
    );
    let toml = config(
        &[("pa", "openai", &format!("{}/v1", upstream.url()))],
        &[("a", "pa", "m")],
        &extra,
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, toml).unwrap();

    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .env("RUST_LOG", LOG_FILTER)
        .env("TEST_KEY", UPSTREAM_SECRET)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let logs = tokio::spawn(async move {
        let mut all = Vec::new();
        let _ = stderr.read_to_end(&mut all).await;
        String::from_utf8_lossy(&all).into_owned()
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let base = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stdout.next_line().await.unwrap() {
            printed += &line;
            printed.push('\n');
            if let Some(addr) = line.strip_prefix("signalbox listening on ") {
                return addr.to_owned();
            }
        }
        panic!("the gateway exited before listening: {printed}");
    })
    .await
    .unwrap();

    let chat_url = format!("{base}/v1/chat/completions");
    let chat = |key: String, body: serde_json::Value| {
        let url = chat_url.clone();
        async move { send("POST", &url, Some(&key), Some(body.to_string().as_bytes())).await }
    };
    let mut replies: Vec<(String, Reply)> = Vec::new();
    let mut expect = |what: &str, reply: Reply, status: u16| {
        assert_eq!(reply.status, status, "{what}: {}", reply.text());
        replies.push((what.to_owned(), reply));
    };

    // Served, with the usage logged.
    expect("valid", chat(KEY.into(), hello()).await, 200);
    let mut stream = hello();
    stream["stream"] = json!(true);
    expect("valid stream", chat(ci.clone(), stream).await, 200);
    let models = send("GET", &format!("{base}/v1/models"), Some(&ci), None).await;
    expect("models", models, 200);
    // A valid key with requests that fail for other reasons.
    let bad_json = send("POST", &chat_url, Some(&ci), Some(b"{not json")).await;
    expect("bad body", bad_json, 400);
    let mut unknown_model = hello();
    unknown_model["model"] = json!("no-such-model");
    expect("unknown model", chat(KEY.into(), unknown_model).await, 404);
    upstream.enqueue(Upstream::ok().status(500));
    expect("upstream failure", chat(KEY.into(), hello()).await, 503);
    let mut huge = hello();
    huge["max_tokens"] = json!(100_000);
    expect("never fits", chat(ci.clone(), huge).await, 400);
    expect("second of ci", chat(ci.clone(), hello()).await, 200);
    expect("over the limit", chat(ci.clone(), hello()).await, 429);
    // Keys that may not be used.
    expect("disabled key", chat(old.clone(), hello()).await, 403);
    expect("disabled tenant", chat(gone.clone(), hello()).await, 403);
    expect("unknown key", chat(unknown.clone(), hello()).await, 401);
    // Keys in headers that are not `Bearer <key>`.
    let body = hello().to_string();
    for (i, (name, value)) in [
        ("authorization", format!("Basic {ci}")),
        ("authorization", format!("Token {old}")),
        ("authorization", ci.clone()),
        ("authorization", format!("Bearer {unknown} {ci}")),
        ("x-api-key", unknown.clone()),
    ]
    .into_iter()
    .enumerate()
    {
        let reply = send_with(
            "POST",
            &chat_url,
            None,
            Some(body.as_bytes()),
            &[(name, &value)],
        )
        .await;
        expect(&format!("malformed {i}"), reply, 401);
    }

    child.start_kill().unwrap();
    let _ = child.wait().await;
    while let Ok(Some(line)) = stdout.next_line().await {
        printed += &line;
        printed.push('\n');
    }
    let logs = tokio::time::timeout(Duration::from_secs(10), logs)
        .await
        .unwrap()
        .unwrap();

    // The failure paths were logged, so the search below looked at them.
    for needle in [
        "request ended",
        "request not authenticated",
        "request refused by a quota",
        "attempt failed",
    ] {
        assert!(logs.contains(needle), "no `{needle}` in the logs:\n{logs}");
    }

    let mut searched = vec![("logs".to_owned(), logs), ("stdout".to_owned(), printed)];
    for (what, reply) in &replies {
        searched.push((
            format!("response to {what}"),
            format!("{:?}\n{}", reply.headers, reply.text()),
        ));
    }
    for key in [KEY, &ci, &old, &gone, &unknown, UPSTREAM_SECRET] {
        for (what, text) in &searched {
            for piece in pieces(key) {
                assert!(
                    !text.contains(piece),
                    "a piece of a key ({piece}) is in the {what}:\n{text}"
                );
            }
        }
    }
    // The upstream saw its own key, never a client's.
    for seen in upstream.requests() {
        assert_eq!(seen.header("authorization"), Some("Bearer upstream-secret"));
    }
}

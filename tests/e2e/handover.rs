//! Replacing the gateway's process under load (`signalbox serve --take-over`): the new
//! process takes the listening sockets over, the old one drains, and no client sees a
//! failed request; a replacement that cannot start leaves the old one serving.

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::{KEY, config, send, streamed_text};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout};

fn chat_body(stream: bool) -> serde_json::Value {
    serde_json::json!({"model": "m", "stream": stream, "messages": [{"role": "user", "content": "Hello"}]})
}

/// The test config, with a hand-over socket and a ledger in `dir`.
fn handover_config(upstream: &str, dir: &Path) -> String {
    config(
        &[("p", "openai", &format!("{upstream}/v1"))],
        &[("t", "p", "m")],
        &format!("[ledger]\npath = '{}'\n", dir.join("usage.db").display()),
    )
    .replacen(
        "[server]\n",
        &format!(
            "[server]\nhandover_socket = '{}'\n",
            dir.join("handover.sock").display()
        ),
        1,
    )
}

struct Process {
    child: Child,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Process {
    fn spawn(config: &Path, take_over: bool) -> Process {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalbox"));
        command.args(["serve", "--config"]).arg(config);
        if take_over {
            command.arg("--take-over");
        }
        let mut child = command
            .env("TEST_KEY", "upstream-secret")
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        Process { child, stdout }
    }

    /// Reads stdout until a line starting with `prefix`; returns its rest (None if the
    /// process ended first).
    async fn line(&mut self, prefix: &str) -> Option<String> {
        while let Some(line) = self.stdout.next_line().await.unwrap() {
            if let Some(rest) = line.strip_prefix(prefix) {
                return Some(rest.to_owned());
            }
        }
        None
    }

    fn pid(&self) -> u32 {
        self.child.id().unwrap()
    }

    async fn exit_code(&mut self) -> Option<i32> {
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .expect("the gateway did not exit")
            .unwrap()
            .code()
    }

    fn terminate(&self) {
        let pid = self.pid().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
    }
}

/// What the load's clients saw.
#[derive(Default)]
struct Tally {
    completed: AtomicUsize,
    failures: std::sync::Mutex<Vec<String>>,
}

/// Sends requests on one keep-alive client (HTTP/1 or HTTP/2), JSON and streams in
/// turn, until `stop`; every answer must be a 200 with a complete body.
async fn client_loop(base: String, http2: bool, stop: Arc<AtomicBool>, tally: Arc<Tally>) {
    let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build_http();
    let mut stream = false;
    while !stop.load(Ordering::Relaxed) {
        stream = !stream;
        let body = chat_body(stream);
        let request = http::Request::post(format!("{base}/v1/chat/completions"))
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        let outcome = match client.request(request).await {
            Err(e) => Err(format!("request failed: {e:?}")),
            Ok(response) => {
                let status = response.status();
                match response.into_body().collect().await {
                    Err(e) => Err(format!("body failed after {status}: {e:?}")),
                    Ok(body) => {
                        let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
                        let complete = if stream {
                            text.ends_with("data: [DONE]\n\n")
                                && streamed_text(&text) == "one two three"
                        } else {
                            serde_json::from_str::<serde_json::Value>(&text).is_ok_and(|v| {
                                v["choices"][0]["message"]["content"] == "one two three"
                            })
                        };
                        if status == 200 && complete {
                            Ok(())
                        } else {
                            Err(format!("{status}: {text}"))
                        }
                    }
                }
            }
        };
        match outcome {
            Ok(()) => {
                tally.completed.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => tally.failures.lock().unwrap().push(e),
        }
    }
}

/// Waits until the clients have completed at least `n` requests.
async fn completed_at_least(tally: &Tally, n: usize) {
    for _ in 0..3000 {
        if tally.completed.load(Ordering::Relaxed) >= n {
            return;
        }
        assert!(
            tally.failures.lock().unwrap().is_empty(),
            "{:?}",
            tally.failures.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("fewer than {n} requests completed in 30 s");
}

fn ledger_rows(dir: &Path) -> usize {
    let db = rusqlite::Connection::open(dir.join("usage.db")).unwrap();
    let rows: i64 = db
        .query_row("SELECT COUNT(*) FROM usage", [], |r| r.get(0))
        .unwrap();
    let distinct: i64 = db
        .query_row("SELECT COUNT(DISTINCT request_id) FROM usage", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(rows, distinct, "a request was charged twice");
    rows as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_takes_over_under_load_and_no_request_fails() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    // Streams last a while, so some are in flight on the old process when it drains.
    up.set_default(
        Upstream::ok()
            .chunks(&["one ", "two ", "three"])
            .chunk_interval(Duration::from_millis(30)),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    std::fs::write(&path, handover_config(&up.url(), dir.path())).unwrap();

    let mut old = Process::spawn(&path, false);
    let base = old.line("signalbox listening on ").await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    // Six HTTP/1 keep-alive clients and two HTTP/2 ones.
    let clients: Vec<_> = (0..8)
        .map(|i| {
            tokio::spawn(client_loop(
                base.clone(),
                i >= 6,
                stop.clone(),
                tally.clone(),
            ))
        })
        .collect();
    completed_at_least(&tally, 40).await;

    let mut new = Process::spawn(&path, true);
    let took_over = new
        .line("signalbox took over the listeners of process ")
        .await
        .expect("the replacement did not take over");
    assert!(took_over.starts_with(&old.pid().to_string()), "{took_over}");
    assert_eq!(
        new.line("signalbox listening on ").await.as_deref(),
        Some(base.as_str()),
        "the replacement serves on the same address"
    );
    let replaced = old.line("signalbox replaced by process ").await.unwrap();
    assert!(replaced.starts_with(&new.pid().to_string()), "{replaced}");
    assert_eq!(old.exit_code().await, Some(0));

    // The old process is gone: whatever completes from now on, the new one served.
    let before = tally.completed.load(Ordering::Relaxed);
    completed_at_least(&tally, before + 40).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    let failures = tally.failures.lock().unwrap().clone();
    assert!(failures.is_empty(), "failed requests: {failures:?}");

    new.terminate();
    assert_eq!(new.exit_code().await, Some(0));
    // Both processes wrote the one ledger: one row per completed request.
    assert_eq!(
        ledger_rows(dir.path()),
        tally.completed.load(Ordering::Relaxed)
    );
    assert!(
        !dir.path().join("handover.sock").exists(),
        "the socket file is removed at the end"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replacement_that_cannot_start_leaves_the_gateway_serving() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    up.set_default(Upstream::ok().text("one two three"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.toml");
    let good = handover_config(&up.url(), dir.path());
    std::fs::write(&path, &good).unwrap();
    let mut old = Process::spawn(&path, false);
    let base = old.line("signalbox listening on ").await.unwrap();

    // A config whose certificate is missing: the replacement fails after it has the
    // sockets (certificates are read when the gateway starts), before it serves.
    let broken = dir.path().join("broken.toml");
    std::fs::write(
        &broken,
        format!("{good}\n[server.tls]\ncert_file = 'missing.pem'\nkey_file = 'missing.key'\n"),
    )
    .unwrap();
    let mut failed = Process::spawn(&broken, true);
    assert_ne!(failed.exit_code().await, Some(0));

    // A config that moves the listener: refused, the address is kept.
    let moved = dir.path().join("moved.toml");
    std::fs::write(
        &moved,
        good.replace("listen = \"127.0.0.1:0\"", "listen = \"127.0.0.1:1\""),
    )
    .unwrap();
    let mut refused = Process::spawn(&moved, true);
    assert_ne!(refused.exit_code().await, Some(0));

    // A second gateway started without --take-over does not steal the socket.
    let mut second = Process::spawn(&path, false);
    assert_ne!(second.exit_code().await, Some(0));

    let url = format!("{base}/v1/chat/completions");
    let reply = send(
        "POST",
        &url,
        Some(KEY),
        Some(chat_body(false).to_string().as_bytes()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    // The old gateway still offers its sockets: a good replacement takes them.
    let mut new = Process::spawn(&path, true);
    assert!(new.line("signalbox listening on ").await.is_some());
    assert_eq!(old.exit_code().await, Some(0));
    let reply = send(
        "POST",
        &url,
        Some(KEY),
        Some(chat_body(false).to_string().as_bytes()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    new.terminate();
    assert_eq!(new.exit_code().await, Some(0));
}

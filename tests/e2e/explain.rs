//! `signalbox route` prints the decision the running gateway makes for the same
//! request.

use crate::fake_upstream::{FakeUpstream, Wire};
use crate::gateway_support::{KEY, TestGateway, config, send_with};
use serde_json::Value;

fn route_cli(config: &std::path::Path, args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .env("TEST_KEY", "upstream-secret")
        .args(["route", "--json", "--tenant", "acme", "--config"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn route_prints_what_the_gateway_decides() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    let toml = config(
        &[("up", "openai", &format!("{}/v1", up.url()))],
        &[
            ("small", "up", "mini"),
            ("large", "up", "maxi"),
            ("large-eu", "up", "maxi"),
        ],
        "[aliases]\nauto = [\"mini\", \"maxi\"]\nsmart = [\"maxi\"]\n",
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("gateway.toml");
    std::fs::write(&file, &toml).unwrap();
    let gw = TestGateway::start(&toml).await;

    for model in ["mini", "maxi", "auto", "smart"] {
        let body = format!(
            r#"{{"model":"{model}","messages":[{{"role":"user","content":"Hello there"}}]}}"#
        );
        let served = send_with(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(KEY),
            Some(body.as_bytes()),
            &[],
        )
        .await;
        assert_eq!(served.status, 200, "{}", served.text());
        let explained = route_cli(&file, &["--prompt", "Hello there", "--model", model]);
        assert_eq!(
            explained["targets"][0].as_str(),
            Some(served.header("x-signalbox-target")),
            "{model}: {explained}"
        );
        assert_eq!(
            explained["policy"].as_str(),
            Some(served.header("x-signalbox-policy"))
        );
        assert_eq!(
            explained["reason"].as_str(),
            Some(served.header("x-signalbox-route-reason"))
        );
    }

    // A request file works the same way, and a rejection is explained too.
    let request = dir.path().join("request.json");
    std::fs::write(
        &request,
        r#"{"model":"nobody-serves-this","messages":[{"role":"user","content":"x"}]}"#,
    )
    .unwrap();
    let explained = route_cli(&file, &["--request", request.to_str().unwrap()]);
    assert_eq!(explained["rejection"][0], 404, "{explained}");
    let served = send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(&std::fs::read(&request).unwrap()),
        &[],
    )
    .await;
    assert_eq!(served.status, 404);
}

//! Swapping a tenant's policy under load: 64 clients send requests without pause for
//! 20 s while the policy flips between two versions 40 times, through the admin API
//! and, separately, through the watched directory. No request may fail, and every
//! response must come from one of the two versions, routed the way that version
//! routes. Prints the swap latency (upload to the first request served by the new
//! version); `docs/benchmarks.md` records the figures.

use crate::deploy::{OPERATOR, admin_post, bytes, lifecycle_config, served, upload, upstream};
use crate::gateway_support::{KEY, TestGateway};
use crate::support::{default_policy, hostile_policy};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::json;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

const CLIENTS: usize = 64;
const SWAPS: usize = 40;
const RUN: Duration = Duration::from_secs(20);

/// The two versions: component, its label prefix, and the target it chooses.
struct Version {
    component: Vec<u8>,
    name: &'static str,
    target: &'static str,
}

fn versions() -> [Version; 2] {
    [
        Version {
            component: bytes(&hostile_policy()),
            name: "hostile",
            target: "pricey",
        },
        Version {
            component: bytes(&default_policy()),
            name: "default",
            target: "cheap",
        },
    ]
}

#[derive(Default)]
struct Tally {
    ok: usize,
    failures: Vec<String>,
    by_label: HashMap<String, usize>,
}

/// One client: requests back to back on a kept-alive connection until `stop`; checks
/// each response against `expected` (label → target).
async fn client_loop(
    url: String,
    stop: Arc<AtomicBool>,
    expected: Arc<std::sync::Mutex<HashMap<String, &'static str>>>,
) -> Tally {
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let body = Bytes::from_static(br#"{"model":"m","messages":[{"role":"user","content":"hi"}]}"#);
    let mut tally = Tally::default();
    while !stop.load(Ordering::Relaxed) {
        let request = http::Request::post(&url)
            .header("authorization", format!("Bearer {KEY}"))
            .header("content-type", "application/json")
            .body(Full::new(body.clone()))
            .unwrap();
        let response = match client.request(request).await {
            Ok(r) => r,
            Err(e) => {
                tally.failures.push(format!("transport: {e}"));
                continue;
            }
        };
        let status = response.status();
        let header = |n: &str| {
            response
                .headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned()
        };
        let (label, target) = (header("x-signalbox-policy"), header("x-signalbox-target"));
        let reason = header("x-signalbox-route-reason");
        let _ = response.into_body().collect().await;
        let want = expected.lock().unwrap().get(&label).copied();
        if status != 200 {
            tally.failures.push(format!("status {status}"));
        } else if want != Some(target.as_str()) {
            tally.failures.push(format!(
                "{label} served by {target} ({reason}), expected {want:?}"
            ));
        } else {
            tally.ok += 1;
            *tally.by_label.entry(label).or_default() += 1;
        }
    }
    tally
}

/// Runs the load while `swap` is called `SWAPS` times, spread over `RUN`; `swap(i)`
/// deploys version `i % 2` and the latency until a request is served by it is
/// measured. Returns the latencies, sorted.
async fn swap_under_load<F, Fut>(gw: &TestGateway, labels: [String; 2], swap: F) -> Vec<Duration>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    // One load at a time: two would share the cores and measure each other.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let all = versions();
    let expected: HashMap<String, &'static str> = labels
        .iter()
        .cloned()
        .zip(all.iter().map(|v| v.target))
        .collect();
    let expected = Arc::new(std::sync::Mutex::new(expected));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            tokio::spawn(client_loop(
                gw.url("/v1/chat/completions"),
                stop.clone(),
                expected.clone(),
            ))
        })
        .collect();

    let started = Instant::now();
    let mut latencies = Vec::new();
    for i in 0..SWAPS {
        let want = &labels[i % 2];
        let t0 = Instant::now();
        swap(i).await;
        loop {
            let (label, _) = served(gw, None, &[]).await;
            if &label == want {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(10),
                "swap {i} never took effect"
            );
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        latencies.push(t0.elapsed());
        let slot = RUN * (i as u32 + 1) / SWAPS as u32;
        if let Some(rest) = slot.checked_sub(started.elapsed()) {
            tokio::time::sleep(rest).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let mut total = Tally::default();
    for c in clients {
        let t = c.await.unwrap();
        total.ok += t.ok;
        total.failures.extend(t.failures);
        for (k, v) in t.by_label {
            *total.by_label.entry(k).or_default() += v;
        }
    }
    assert!(
        total.failures.is_empty(),
        "{} failed of {}: {:?}",
        total.failures.len(),
        total.ok + total.failures.len(),
        &total.failures[..total.failures.len().min(10)]
    );
    assert!(total.ok > 1000, "only {} requests in {RUN:?}", total.ok);
    for label in &labels {
        assert!(
            total.by_label.get(label).copied().unwrap_or(0) > 0,
            "{label} never served"
        );
    }
    println!(
        "{} requests over {:?} by {CLIENTS} clients, {SWAPS} swaps, no failures; by version {:?}",
        total.ok,
        started.elapsed(),
        total.by_label
    );
    latencies.sort();
    latencies
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

fn report(how: &str, latencies: &[Duration]) {
    println!(
        "swap latency via {how}, upload to first request served by the new version: p50 {:.1} ms, p99 {:.1} ms (n = {})",
        percentile(latencies, 0.5).as_secs_f64() * 1e3,
        percentile(latencies, 0.99).as_secs_f64() * 1e3,
        latencies.len()
    );
}

fn label_of(name: &str, component: &[u8]) -> String {
    format!("{name}@{}", &signalbox::policy::sha256_hex(component)[..12])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_through_the_admin_api_under_load_fails_no_request() {
    let up = upstream().await;
    let gw = TestGateway::start(&lifecycle_config(&up.url(), "")).await;
    let all = versions();
    let labels = [
        label_of(all[0].name, &all[0].component),
        label_of(all[1].name, &all[1].component),
    ];
    let gw = &gw;
    let latencies = swap_under_load(gw, labels, |i| {
        let v = &all[i % 2];
        async move {
            let up = upload(gw, "acme", OPERATOR, v.name, &v.component, &json!({})).await;
            assert_eq!(up.status, 201, "{}", up.text());
            let version = up.json()["version"].as_str().unwrap().to_owned();
            let on = admin_post(
                gw,
                "acme",
                OPERATOR,
                "activate",
                &json!({"version": version}),
            )
            .await;
            assert_eq!(on.status, 200, "{}", on.text());
        }
    })
    .await;
    report("the admin API", &latencies);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_through_the_watched_directory_under_load_fails_no_request() {
    let up = upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("acme");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("config.json"), "{}").unwrap();
    let extra = format!("policies_dir = \"{}\"", dir.path().display());
    let gw = TestGateway::start(&lifecycle_config(&up.url(), &extra)).await;
    let all = versions();
    // Versions deployed through the folder are named `policy`; the configured
    // default keeps its name when it comes back, since versions are content-addressed.
    let labels = [
        label_of("policy", &all[0].component),
        label_of("default", &all[1].component),
    ];
    let gw = &gw;
    let latencies = swap_under_load(gw, labels, |i| {
        let v = &all[i % 2];
        let folder = folder.clone();
        async move { replace(&folder.join("policy.wasm"), &v.component) }
    })
    .await;
    report("the watched directory", &latencies);
}

/// Replaces a file the way deploy tools should: write beside it, then rename.
fn replace(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("wasm.tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

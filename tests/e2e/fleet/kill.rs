//! `kill -9` of one replica under load, each replica its own process, with spend in a
//! real Redis and usage rows in a real PostgreSQL: the others keep serving, none of
//! their spend or rows is lost, and the killed replica loses at most what it served in
//! its last moments (its settlements and ledger batch on their way).

use super::postgres_server::Postgres;
use super::redis_server::Redis;
use super::wait_until;
use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// One tenant (and key) per replica, so each replica's spend and rows can be told
/// apart in the shared stores.
const TENANTS: [&str; 3] = ["t0", "t1", "t2"];

/// How much of what the killed replica served just before it died may be missing:
/// its ledger batches every 20 ms and settles spend right after each answer; this
/// allows for a busy debug build.
const LAST_MOMENTS: Duration = Duration::from_secs(1);

fn key(tenant: &str) -> String {
    format!("sk-kill-test-{tenant}")
}

fn fleet_config(upstream: &str, redis: &Redis, pg: &Postgres) -> String {
    let hash = |s: &str| signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(s));
    let mut toml = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n\
         [[providers]]\nname = \"p\"\nkind = \"openai\"\nbase_url = \"{upstream}/v1\"\napi_key_env = \"TEST_KEY\"\n\n\
         [[targets]]\nid = \"t\"\nprovider = \"p\"\nmodel = \"m\"\ninput_price = 1.0\noutput_price = 2.0\n\n"
    );
    for tenant in TENANTS {
        toml += &format!(
            "[[tenants]]\nid = \"{tenant}\"\nkey_hashes = [\"{}\"]\nsafe_route = [\"t\"]\n\n[tenants.limits]\nbudget_usd_per_day = 1000.0\n\n",
            hash(&key(tenant))
        );
    }
    toml += &format!(
        "[cluster]\nredis_url = \"{}\"\ntimeout_ms = 500\n\n[ledger]\nurl = \"{}\"\n",
        redis.url(),
        pg.url()
    );
    toml
}

/// A replica in its own process; returns it and its base URL.
async fn spawn(config: &Path) -> (tokio::process::Child, String) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--config"])
        .arg(config)
        .env("TEST_KEY", "upstream-secret")
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    while let Some(line) = lines.next_line().await.unwrap() {
        if let Some(url) = line.strip_prefix("signalbox listening on ") {
            // Keep reading stdout so the replica never blocks on a full pipe.
            tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
            return (child, url.to_owned());
        }
    }
    panic!("the replica exited before listening");
}

/// A chat as `tenant`; the status, or `None` when the connection failed (the replica
/// was killed).
async fn try_chat(url: &str, tenant: &str, body: &str) -> Option<u16> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::post(format!("{url}/v1/chat/completions"))
        .header("authorization", format!("Bearer {}", key(tenant)))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), client.request(request))
        .await
        .ok()?
        .ok()?;
    let status = response.status().as_u16();
    // The answer counts as received once its whole body is.
    response.into_body().collect().await.ok()?;
    Some(status)
}

/// Completions seen by one client: when each answer arrived.
type Completions = Arc<Mutex<Vec<Instant>>>;

/// Sends chats to `url` as `tenant` until `stop`; records each 200 and returns the
/// number of other answers (a refused connection counts too).
fn load(
    url: String,
    tenant: &'static str,
    done: Completions,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let body =
            serde_json::json!({"model": "m", "messages": [{"role": "user", "content": "Hello"}]})
                .to_string();
        let mut failed = 0;
        while !stop.load(std::sync::atomic::Ordering::Relaxed) {
            if try_chat(&url, tenant, &body).await == Some(200) {
                done.lock().unwrap().push(Instant::now());
            } else {
                failed += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
        failed
    })
}

async fn spend(redis: &Redis, tenant: &str) -> f64 {
    let mut c = redis.connection().await.expect("redis answers");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("signalbox:limit:t:{tenant}:spend:day:*"))
        .query_async(&mut c)
        .await
        .expect("KEYS");
    let mut total = 0.0;
    for key in keys {
        total += redis.number(&key).await;
    }
    total
}

async fn rows(pg: &Postgres, tenant: &str) -> i64 {
    pg.count(&format!(
        "SELECT COUNT(*) FROM usage WHERE tenant = '{tenant}'"
    ))
    .await
    .unwrap_or(-1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server and PostgreSQL (tests/run installs them)"]
async fn a_replica_killed_under_load_loses_no_spend_or_rows_of_the_others() {
    let redis = Redis::start().await;
    let pg = Postgres::start().await;
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    upstream.set_default(Upstream::ok().text("four words of answer"));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("fleet.toml");
    std::fs::write(&config, fleet_config(&upstream.url(), &redis, &pg)).unwrap();
    let mut replicas = Vec::new();
    for _ in TENANTS {
        replicas.push(spawn(&config).await);
    }

    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done: Vec<Completions> = TENANTS.iter().map(|_| Completions::default()).collect();
    let clients: Vec<_> = TENANTS
        .iter()
        .zip(&replicas)
        .zip(&done)
        .map(|((tenant, (_, url)), done)| load(url.clone(), tenant, done.clone(), stop.clone()))
        .collect();

    // Under load, replica 3 is killed (SIGKILL: no drain, no flush).
    let loaded = async || done.iter().all(|d| d.lock().unwrap().len() >= 50);
    assert!(wait_until(Duration::from_secs(30), loaded).await);
    replicas[2].0.start_kill().unwrap();
    replicas[2].0.wait().await.unwrap();
    let killed_at = Instant::now();
    let served_before_kill = |d: &Completions| d.lock().unwrap().len();
    let survivors_then = [served_before_kill(&done[0]), served_before_kill(&done[1])];
    // The others keep serving.
    let more = async || {
        done[0].lock().unwrap().len() >= survivors_then[0] + 50
            && done[1].lock().unwrap().len() >= survivors_then[1] + 50
    };
    assert!(wait_until(Duration::from_secs(30), more).await);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut failures = Vec::new();
    for client in clients {
        failures.push(client.await.unwrap());
    }
    assert_eq!(
        failures[..2],
        [0, 0],
        "the surviving replicas failed requests"
    );

    let served: Vec<usize> = done.iter().map(|d| d.lock().unwrap().len()).collect();
    let settled_before = done[2]
        .lock()
        .unwrap()
        .iter()
        .filter(|t| killed_at.duration_since(**t) > LAST_MOMENTS)
        .count();

    // Every row and every cent of the survivors is there.
    for (i, tenant) in TENANTS[..2].iter().enumerate() {
        let want = served[i] as i64;
        assert!(
            wait_until(Duration::from_secs(20), async || rows(&pg, tenant).await
                == want)
            .await,
            "{tenant}: {} rows for {want} answers",
            rows(&pg, tenant).await
        );
    }
    let cost = pg
        .count("SELECT (SUM(cost_usd) * 1e12)::BIGINT FROM usage WHERE tenant = 't0'")
        .await
        .unwrap() as f64
        / 1e12
        / served[0] as f64;
    assert!(cost > 0.0);
    for (i, tenant) in TENANTS[..2].iter().enumerate() {
        let want = served[i] as f64 * cost;
        assert!(
            wait_until(Duration::from_secs(20), async || (spend(&redis, tenant)
                .await
                - want)
                .abs()
                < 1e-9)
            .await,
            "{tenant}: {} USD in Redis for {want} USD served",
            spend(&redis, tenant).await
        );
    }

    // The killed replica: what it served before its last moments is in both stores.
    let (spent, written) = (spend(&redis, "t2").await, rows(&pg, "t2").await);
    let missing_rows = served[2] as i64 - written;
    let missing_usd = served[2] as f64 * cost - spent;
    eprintln!(
        "killed replica: served {}, rows written {written} (missing {missing_rows}), spend missing {missing_usd:.9} USD ({:.1} requests)",
        served[2],
        missing_usd / cost
    );
    assert!(
        (settled_before as i64..=served[2] as i64).contains(&written),
        "{written} rows of {} answers, {settled_before} of them more than {LAST_MOMENTS:?} before the kill",
        served[2]
    );
    assert!(
        spent >= settled_before as f64 * cost - 1e-9 && spent <= served[2] as f64 * cost + 1e-9,
        "{spent} USD in Redis for {} answers, {settled_before} of them more than {LAST_MOMENTS:?} before the kill",
        served[2]
    );
}

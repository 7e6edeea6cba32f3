//! A fleet: gateway replicas sharing their limits and budgets through a real
//! `redis-server`. These run in their own stage of `tests/run` (which installs Redis
//! when it is missing): `cargo test -p signalbox --test e2e fleet:: -- --ignored`.

mod certs;
mod kill;
mod ledger;
mod policies;
mod postgres_server;
mod redis_server;
mod state;
mod stats;
mod tls;

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::*;
use crate::keys_support::*;
use redis_server::Redis;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// A completion of `n` words, which the fake reports as `n` completion tokens.
fn words(n: usize) -> String {
    vec!["word"; n].join(" ")
}

/// Replicas of one config: one upstream, target `a`, tenant `acme` with `limits`
/// (lines of `[tenants.limits]`), and `[cluster]` with `cluster` lines when given.
async fn replicas(
    upstream: &FakeUpstream,
    count: usize,
    limits: &str,
    cluster: Option<String>,
) -> Vec<TestGateway> {
    let mut extra = format!("[tenants.limits]\n{limits}\n");
    if let Some(cluster) = cluster {
        extra += &format!("\n[cluster]\n{cluster}\n");
    }
    let toml = config(
        &[("pa", "openai", &format!("{}/v1", upstream.url()))],
        &[("a", "pa", "m")],
        &extra,
    );
    let mut gateways = Vec::new();
    for _ in 0..count {
        gateways.push(TestGateway::start(&toml).await);
    }
    gateways
}

/// The deploy tests' lifecycle config (admin API, tokens, one tenant) with `[cluster]`.
fn lifecycle_fleet_config(upstream: &str, redis: &Redis) -> String {
    format!(
        "{}\n[cluster]\nredis_url = \"{}\"\ntimeout_ms = 200\n",
        crate::deploy::lifecycle_config(upstream, ""),
        redis.url()
    )
}

fn cluster_of(redis: &Redis, extra: &str) -> Option<String> {
    Some(format!(
        "redis_url = \"{}\"\ntimeout_ms = 200\n{extra}",
        redis.url()
    ))
}

/// Sends `attempts` requests one after another, each to the next replica in turn;
/// counts the answers by status.
async fn in_turn(gateways: &[TestGateway], body: &Value, attempts: usize) -> (usize, usize) {
    let (mut ok, mut limited) = (0, 0);
    for i in 0..attempts {
        let reply = chat_as(&gateways[i % gateways.len()], KEY, body).await;
        match reply.status {
            200 => ok += 1,
            429 => limited += 1,
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    (ok, limited)
}

/// Waits for `condition`, polling, up to `within`.
async fn wait_until<F: AsyncFn() -> bool>(within: Duration, condition: F) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition().await {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The tenant's spend today on each replica, summed (each replica's budget counts
/// what it served).
fn local_spend(gateways: &[TestGateway]) -> f64 {
    gateways
        .iter()
        .map(|gw| gw.gateway.tenants["acme"].quota.spent_usd().0)
        .sum()
}

/// The tenant's spend today in Redis.
async fn shared_spend(redis: &Redis) -> f64 {
    let mut c = redis.connection().await.expect("redis answers");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("signalbox:limit:t:acme:spend:day:*")
        .query_async(&mut c)
        .await
        .expect("KEYS");
    assert!(keys.len() <= 1, "{keys:?}");
    match keys.first() {
        Some(key) => redis.number(key).await,
        None => 0.0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server (tests/run installs it)"]
async fn three_replicas_admit_a_tenant_requests_per_minute_limit_once() {
    let redis = Redis::start().await;
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let fleet = replicas(
        &upstream,
        3,
        "requests_per_minute = 60",
        cluster_of(&redis, ""),
    )
    .await;

    // Six clients at once, each spreading its requests over the three replicas.
    let started = Instant::now();
    let fleet = std::sync::Arc::new(fleet);
    let mut clients = Vec::new();
    for c in 0..6 {
        let fleet = fleet.clone();
        clients.push(tokio::spawn(async move {
            let mut served = [0usize; 3];
            let mut limited = 0;
            for i in 0..20 {
                let replica = (c + i) % 3;
                let reply = chat_as(&fleet[replica], KEY, &hello()).await;
                match reply.status {
                    200 => served[replica] += 1,
                    429 => {
                        assert_error(&reply, 429, "rate_limit_error", "rate_limit_requests");
                        limited += 1;
                    }
                    other => panic!("unexpected {other}: {}", reply.text()),
                }
            }
            (served, limited)
        }));
    }
    let (mut served, mut limited) = ([0usize; 3], 0);
    for client in clients {
        let (s, l) = client.await.unwrap();
        for r in 0..3 {
            served[r] += s[r];
        }
        limited += l;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let admitted: usize = served.iter().sum();
    // 60 at once, then one a second as the shared bucket refills.
    let bound = 60 + elapsed.ceil() as usize;
    assert!(
        (60..=bound).contains(&admitted),
        "{admitted} admitted in {elapsed:.2} s (bound {bound}); by replica {served:?}"
    );
    assert_eq!(admitted + limited, 120);
    assert!(served.iter().all(|&s| s > 0), "{served:?}");
    assert_eq!(upstream.hits(), admitted);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server (tests/run installs it)"]
async fn a_fleet_admits_the_tokens_and_the_budget_one_gateway_admits() {
    let redis = Redis::start().await;
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    upstream.set_default(Upstream::ok().text(&words(50)));
    let mut body = hello();
    body["max_tokens"] = json!(50);

    for limits in [
        "tokens_per_minute = 400",
        // Each request costs about 1.2e-4 USD ($1 and $2 per million tokens).
        "budget_usd_per_day = 0.0006",
    ] {
        let alone = replicas(&upstream, 1, limits, None).await;
        let (one, _) = in_turn(&alone, &body, 20).await;
        assert!(
            (2..20).contains(&one),
            "{limits}: one gateway admitted {one}"
        );

        // A fresh key space in the same Redis for each limit.
        let prefix = format!("key_prefix = \"{}\"", limits.split(' ').next().unwrap());
        let fleet = replicas(&upstream, 3, limits, cluster_of(&redis, &prefix)).await;
        let (all, limited) = in_turn(&fleet, &body, 20).await;
        // The same, give or take the one request a settlement still on its way to
        // Redis can let through; three separate gateways would admit three times as
        // many.
        assert!(
            (one.saturating_sub(1)..=one + 1).contains(&all),
            "{limits}: one gateway admitted {one}, the fleet {all} (refused {limited})"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server (tests/run installs it)"]
async fn redis_down_fail_open_serves_each_replica_its_share_then_catches_up() {
    let mut redis = Redis::start().await;
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let fleet = replicas(
        &upstream,
        3,
        "requests_per_minute = 30\nbudget_usd_per_day = 10.0",
        cluster_of(&redis, "on_failure = \"fail_open\""),
    )
    .await;
    // Every replica has seen the other two.
    let all_seen = wait_until(Duration::from_secs(10), async || {
        fleet
            .iter()
            .all(|gw| gw.gateway.cluster.as_ref().unwrap().replicas() == 3)
    })
    .await;
    assert!(all_seen, "the replicas did not see each other");
    let (ok, _) = in_turn(&fleet, &hello(), 6).await;
    assert_eq!(ok, 6);

    redis.stop();
    // Each replica now holds a third of the 30 a minute: 10 each, and none waits on
    // the unreachable store longer than its 200 ms timeout (here: well under a second).
    for gw in &fleet {
        let mut served = 0;
        for _ in 0..15 {
            let started = Instant::now();
            let reply = chat_as(gw, KEY, &hello()).await;
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
            match reply.status {
                200 => served += 1,
                _ => {
                    assert_error(&reply, 429, "rate_limit_error", "rate_limit_requests");
                }
            }
        }
        assert_eq!(served, 10, "a replica's share of 30 among 3");
        let ready = send("GET", &gw.url("/readyz"), None, None).await;
        assert_eq!(ready.status, 200);
        assert_eq!(ready.json()["shared_store"], "unreachable");
    }

    redis.resume().await;
    // The heartbeat finds Redis again; the spend served meanwhile reaches it, so the
    // fleet's total is every replica's spend.
    let back = wait_until(Duration::from_secs(10), async || {
        fleet
            .iter()
            .all(|gw| gw.gateway.cluster.as_ref().unwrap().is_up())
    })
    .await;
    assert!(back, "the replicas did not notice Redis's return");
    let caught_up = wait_until(Duration::from_secs(10), async || {
        let (shared, local) = (shared_spend(&redis).await, local_spend(&fleet));
        local > 0.0 && (shared - local).abs() <= 1e-9 * local
    })
    .await;
    assert!(
        caught_up,
        "Redis holds {} USD, the replicas served {}",
        shared_spend(&redis).await,
        local_spend(&fleet)
    );
    // Shared enforcement again: the shared bucket (refilled by now to what the six
    // requests before the outage left, plus time) is what a request takes from.
    let ready = send("GET", &fleet[0].url("/readyz"), None, None).await;
    assert_eq!(ready.json()["shared_store"], "up", "{}", ready.text());
    let mut c = redis.connection().await.unwrap();
    let before: f64 = redis::cmd("HGET")
        .arg("signalbox:limit:t:acme:requests")
        .arg("tokens")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(chat_as(&fleet[1], KEY, &hello()).await.status, 200);
    let after: f64 = redis::cmd("HGET")
        .arg("signalbox:limit:t:acme:requests")
        .arg("tokens")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(after < before, "{before} → {after}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server (tests/run installs it)"]
async fn redis_down_fail_closed_refuses_at_once_and_recovers_by_itself() {
    let mut redis = Redis::start().await;
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let fleet = replicas(
        &upstream,
        2,
        "requests_per_minute = 1000",
        cluster_of(&redis, "on_failure = \"fail_closed\""),
    )
    .await;
    assert_eq!(in_turn(&fleet, &hello(), 4).await, (4, 0));

    redis.stop();
    let hits = upstream.hits();
    for gw in &fleet {
        for _ in 0..5 {
            let started = Instant::now();
            let reply = chat_as(gw, KEY, &hello()).await;
            assert!(
                started.elapsed() < Duration::from_secs(1),
                "{:?}",
                started.elapsed()
            );
            assert_error(
                &reply,
                503,
                "service_unavailable",
                "shared_limits_unavailable",
            );
            assert!(!reply.header("retry-after").is_empty());
        }
        let ready = send("GET", &gw.url("/readyz"), None, None).await;
        assert_eq!(ready.status, 503, "{}", ready.text());
        assert_eq!(ready.json()["shared_store"], "unreachable");
    }
    assert_eq!(
        upstream.hits(),
        hits,
        "a refused request reached the upstream"
    );

    redis.resume().await;
    for gw in &fleet {
        let served = wait_until(Duration::from_secs(10), async || {
            chat_as(gw, KEY, &hello()).await.status == 200
        })
        .await;
        assert!(served, "a replica did not serve again after Redis returned");
        assert_eq!(
            send("GET", &gw.url("/readyz"), None, None).await.status,
            200
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server (tests/run installs it)"]
async fn two_replicas_of_the_fleet_example_share_its_limit() {
    let redis = Redis::start().await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/fleet.toml");
    let example = std::fs::read_to_string(path).unwrap();
    assert!(example.contains("redis://127.0.0.1:6379"));
    let toml = example.replace("redis://127.0.0.1:6379", &redis.url());
    let fleet = [
        TestGateway::start(&toml).await,
        TestGateway::start(&toml).await,
    ];
    let demo = "sb-demo-0123456789abcdef";
    let body = json!({"model": "auto", "messages": [{"role": "user", "content": "Hello"}]});
    let mut served = 0;
    let started = Instant::now();
    for i in 0..30 {
        let reply = chat_as(&fleet[i % 2], demo, &body).await;
        match reply.status {
            200 => served += 1,
            _ => {
                assert_error(&reply, 429, "rate_limit_error", "rate_limit_requests");
            }
        }
    }
    // 20 a minute for the tenant, refilled at one every 3 s (the simulated models take
    // 20 to 150 ms an answer, so the loop can outlast a refill).
    let bound = 20 + (started.elapsed().as_secs_f64() / 3.0).ceil() as usize;
    assert!((20..=bound).contains(&served), "{served} (bound {bound})");
}

//! The policy state store across the fleet: counters added on three replicas at once
//! lose nothing (Redis stopped and restarted in the middle included), and
//! `policies/bandit` learns across three replicas from feedback sent to a different
//! replica than the one that decided.

use super::redis_server::Redis;
use super::wait_until;
use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::{KEY, TestGateway, send};
use crate::support::wasm;
use serde_json::{Value, json};
use signalbox::policy::StateStore;
use std::sync::Arc;
use std::time::Duration;

/// How long replicas may take to agree: the sync runs ten times a second.
const CONVERGE: Duration = Duration::from_secs(10);

fn store(gw: &TestGateway) -> Arc<StateStore> {
    gw.gateway.tenants["acme"].policy.context.state.clone()
}

fn counters(store: &StateStore, key: &str) -> Vec<f64> {
    store
        .get(key)
        .and_then(|v| signalbox_contract::parse_counters(&v))
        .unwrap_or_default()
}

/// Adds `[1, 0.5]` to `key` `n` times from each of `threads` threads on each replica.
async fn add_everywhere(fleet: &[TestGateway], key: &'static str, threads: usize, n: usize) {
    let mut handles = Vec::new();
    for gw in fleet {
        for _ in 0..threads {
            let store = store(gw);
            handles.push(tokio::task::spawn_blocking(move || {
                for _ in 0..n {
                    store.add(key, &[1.0, 0.5]).unwrap();
                }
            }));
        }
    }
    for h in handles {
        h.await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server (tests/run installs it)"]
async fn counters_added_on_three_replicas_at_once_lose_nothing() {
    let mut redis = Redis::start().await;
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let fleet = super::replicas(
        &upstream,
        3,
        "requests_per_minute = 100000",
        super::cluster_of(&redis, ""),
    )
    .await;

    // 3 replicas × 4 threads × 500 adds, all at once, into one key.
    add_everywhere(&fleet, "arm", 4, 500).await;
    let total = 3.0 * 4.0 * 500.0;
    for (i, gw) in fleet.iter().enumerate() {
        let store = store(gw);
        assert!(
            wait_until(CONVERGE, async || counters(&store, "arm")
                == [total, total / 2.0])
            .await,
            "replica {i} has {:?}, the fleet added [{total}, {}]",
            counters(&store, "arm"),
            total / 2.0
        );
    }
    let mut c = redis.connection().await.unwrap();
    let in_redis: Vec<u8> = redis::cmd("HGET")
        .arg("signalbox:state:acme")
        .arg("arm")
        .query_async(&mut c)
        .await
        .unwrap();
    assert_eq!(
        signalbox_contract::parse_counters(&in_redis).unwrap(),
        [total, total / 2.0]
    );

    // Plain values travel too, removals included.
    store(&fleet[0])
        .set("note", b"from replica 1".to_vec())
        .unwrap();
    let other = store(&fleet[2]);
    assert!(
        wait_until(CONVERGE, async || other.get("note").as_deref()
            == Some(&b"from replica 1"[..]))
        .await
    );
    store(&fleet[1]).delete("note");
    assert!(wait_until(CONVERGE, async || other.get("note").is_none()).await);

    // Redis away: the replicas keep counting locally; when it returns, what they
    // counted meanwhile reaches every replica, once.
    redis.stop();
    add_everywhere(&fleet, "arm", 2, 100).await;
    let counted_while_away: f64 = 3.0 * 2.0 * 100.0;
    for gw in &fleet {
        let own = counters(&store(gw), "arm")[0];
        assert!(own >= total + 2.0 * 100.0, "{own}");
    }
    redis.resume().await;
    let after = total + counted_while_away;
    for (i, gw) in fleet.iter().enumerate() {
        let store = store(gw);
        assert!(
            wait_until(CONVERGE, async || counters(&store, "arm")
                == [after, after / 2.0])
            .await,
            "replica {i} has {:?} after Redis returned, the fleet added [{after}, {}]",
            counters(&store, "arm"),
            after / 2.0
        );
    }
}

/// Simulated quality (mean feedback score) and price of the three arms, as in the
/// single-gateway bandit test: `value` gives the best reward for the money.
const ARMS: [(&str, f64, f64); 3] = [
    ("premium", 0.9, 100.0),
    ("value", 0.75, 5.0),
    ("budget", 0.4, 0.0),
];
const BEST: &str = "value";

fn bandit_config(urls: &[String], redis: &Redis) -> String {
    let hash = |s: &str| signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(s));
    let mut toml =
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[engine]\ndeadline_ms = 50\n\n".to_owned();
    for ((id, _, price), url) in ARMS.iter().zip(urls) {
        toml += &format!(
            "[[providers]]\nname = \"{id}\"\nkind = \"openai\"\nbase_url = \"{url}/v1\"\napi_key_env = \"TEST_KEY\"\n\n\
             [[targets]]\nid = \"{id}\"\nprovider = \"{id}\"\nmodel = \"{id}-model\"\ninput_price = {price}\noutput_price = {}\n\n",
            price * 2.0
        );
    }
    toml += &format!(
        "[[tenants]]\nid = \"acme\"\nkey_hashes = [\"{}\"]\npolicy = \"{}\"\nsafe_route = [\"budget\"]\n\n\
         [tenants.policy_config]\nalgorithm = \"thompson\"\ncost_weight = 200\n\n\
         [cluster]\nredis_url = \"{}\"\ntimeout_ms = 500\n",
        hash(KEY),
        wasm("signalbox_policy_bandit").display(),
        redis.url()
    );
    toml
}

/// The sum of every arm's pulls in `store`.
fn pulls(store: &StateStore) -> f64 {
    ARMS.iter()
        .map(|(id, _, _)| {
            counters(store, &format!("bandit/arm/all/{id}"))
                .first()
                .copied()
                .unwrap_or(0.0)
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server (tests/run installs it)"]
async fn the_bandit_learns_across_replicas_from_feedback_sent_elsewhere() {
    let redis = Redis::start().await;
    let mut urls = Vec::new();
    let mut upstreams = Vec::new();
    for _ in ARMS {
        let up = FakeUpstream::start(Wire::OpenAi).await;
        up.set_default(Upstream::ok().text("Paris."));
        urls.push(up.url());
        upstreams.push(up);
    }
    let toml = bandit_config(&urls, &redis);
    let fleet = [
        TestGateway::start(&toml).await,
        TestGateway::start(&toml).await,
        TestGateway::start(&toml).await,
    ];

    let body = json!({"model": "auto", "messages": [{"role": "user", "content": "Answer briefly: what is the capital of France?"}]})
        .to_string();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut unit = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed >> 11) as f64 / (1u64 << 53) as f64
    };
    const N: usize = 1500;
    let mut served = Vec::with_capacity(N);
    for i in 0..N {
        let r = send(
            "POST",
            &fleet[i % 3].url("/v1/chat/completions"),
            Some(KEY),
            Some(body.as_bytes()),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let target = r.header("x-signalbox-target").to_owned();
        let quality = ARMS.iter().find(|a| a.0 == target).unwrap().1;
        let score = (quality + (unit() - 0.5) * 0.4).clamp(0.0, 1.0);
        // Feedback to the next replica: never the one that decided.
        let feedback = json!({"request_id": r.header("x-request-id"), "score": score});
        let f = send(
            "POST",
            &fleet[(i + 1) % 3].url("/v1/feedback"),
            Some(KEY),
            Some(feedback.to_string().as_bytes()),
        )
        .await;
        assert_eq!(f.status, 200, "{}", f.text());
        let answer: Value = serde_json::from_slice(&f.body).unwrap();
        assert_eq!(answer["forwarded"], true, "{answer}");
        served.push(target);
    }

    let last = &served[N - 300..];
    let best = last.iter().filter(|t| *t == BEST).count() as f64 / last.len() as f64;
    assert!(
        best >= 0.8,
        "the fleet sent {best:.2} of the last 300 to {BEST}; served: {:?}",
        ARMS.map(|a| last.iter().filter(|t| **t == a.0).count())
    );

    // Every outcome of every replica counted once, on every replica: the pulls sum
    // to the requests served.
    for (i, gw) in fleet.iter().enumerate() {
        let store = store(gw);
        assert!(
            wait_until(CONVERGE, async || pulls(&store) == N as f64).await,
            "replica {i} counts {} pulls for {N} requests",
            pulls(&store)
        );
    }
    // Every score reached the replica that decided.
    let received = async || {
        fleet
            .iter()
            .map(|gw| {
                metric(
                    &gw.gateway.metrics.render(),
                    "signalbox_feedback_forwarded_total{direction=\"received\"}",
                )
            })
            .sum::<f64>()
    };
    assert!(
        wait_until(CONVERGE, async || received().await == N as f64).await,
        "{} of {N} scores reached the replica that decided",
        received().await
    );
    for gw in &fleet {
        let metrics = gw.gateway.metrics.render();
        let series = "signalbox_feedback_forwarded_total{direction=\"unknown\"}";
        assert_eq!(metric(&metrics, series), 0.0);
    }
}

fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

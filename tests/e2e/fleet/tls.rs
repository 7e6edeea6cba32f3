//! The fleet's stores over TLS: a real `redis-server` that speaks TLS only and a real
//! PostgreSQL that takes TLS connections only, both asking for a client certificate.
//! Replicas share a limit through the one and write their rows to the other; a replica
//! that trusts another authority reaches neither.

use super::certs::StoreCerts;
use super::postgres_server::Postgres;
use super::redis_server::Redis;
use crate::fake_upstream::{FakeUpstream, Wire};
use crate::gateway_support::*;
use crate::keys_support::*;
use signalbox::ledger::{GroupBy, UsageQuery};
use std::time::{Duration, Instant};

/// A replica of tenant `acme` (5 requests a minute, shared) whose Redis and ledger
/// are reached over TLS, trusting `trust`'s CA and presenting its client certificate.
async fn replica(
    upstream: &FakeUpstream,
    redis: Option<&Redis>,
    pg: Option<&Postgres>,
    trust: &StoreCerts,
) -> TestGateway {
    let mut extra = "[tenants.limits]\nrequests_per_minute = 5\n\n".to_owned();
    if let Some(redis) = redis {
        extra += &format!(
            "[cluster]\nredis_url = \"{}\"\ntimeout_ms = 500\non_failure = \"fail_closed\"\n\n\
             [cluster.tls]\n{}\n",
            redis.url(),
            trust.section()
        );
    }
    if let Some(pg) = pg {
        extra += &format!(
            "[ledger]\nurl = \"{}\"\n\n[ledger.tls]\n{}",
            pg.url(),
            trust.section()
        );
    }
    let toml = config(
        &[("pa", "openai", &format!("{}/v1", upstream.url()))],
        &[("a", "pa", "m")],
        &extra,
    );
    TestGateway::start(&toml).await
}

/// The fleet's rows, as `gw`'s ledger reads them.
async fn ledger_requests(gw: &TestGateway) -> Result<u64, String> {
    let gateway = gw.gateway.clone();
    tokio::task::spawn_blocking(move || {
        let ledger = gateway.ledger.as_ref().expect("a ledger");
        ledger
            .query(&UsageQuery {
                tenant: Some("acme".into()),
                from_ms: None,
                to_ms: None,
                group_by: GroupBy::Target,
            })
            .map(|rows| rows.iter().map(|a| a.requests).sum())
            .map_err(|e| e.to_string())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server and PostgreSQL (tests/run installs them)"]
async fn replicas_share_limits_and_a_ledger_over_mutual_tls() {
    let certs = StoreCerts::new();
    let redis = Redis::start_tls(&certs).await;
    let pg = Postgres::start_tls(&certs).await;
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let fleet = [
        replica(&upstream, Some(&redis), Some(&pg), &certs).await,
        replica(&upstream, Some(&redis), Some(&pg), &certs).await,
    ];

    // Five a minute across both: one limit, held in the TLS-only Redis.
    let (mut ok, mut limited) = (0, 0);
    for i in 0..8 {
        let reply = chat_as(&fleet[i % 2], KEY, &hello()).await;
        match reply.status {
            200 => ok += 1,
            429 => {
                assert_error(&reply, 429, "rate_limit_error", "rate_limit_requests");
                limited += 1;
            }
            other => panic!("unexpected {other}: {}", reply.text()),
        }
    }
    assert_eq!((ok, limited), (5, 3));
    let mut c = redis.connection().await.expect("redis answers over TLS");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("signalbox:limit:t:acme:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "the gateways wrote no limit to Redis");

    // Every request's row (served or refused) reaches the TLS-only database, and
    // either replica reads the fleet's rows back over TLS.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = pg
            .count("SELECT COUNT(*) FROM usage WHERE status = 200")
            .await;
        if rows == Ok(5) {
            break;
        }
        assert!(Instant::now() < deadline, "{rows:?} rows, expected 5");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ledger_requests(&fleet[0]).await, Ok(8));
    assert_eq!(ledger_requests(&fleet[1]).await, Ok(8));
    // And the database says the gateways' connections are encrypted.
    assert_eq!(
        pg.count(
            "SELECT COUNT(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) \
             WHERE application_name = 'signalbox' AND NOT ssl"
        )
        .await,
        Ok(0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server and PostgreSQL (tests/run installs them)"]
async fn a_replica_that_trusts_another_authority_reaches_neither_store() {
    let certs = StoreCerts::new();
    let redis = Redis::start_tls(&certs).await;
    let pg = Postgres::start_tls(&certs).await;
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    // Its own CA and client certificate: the servers' certificates fail its check
    // (and its certificate theirs).
    let stranger = StoreCerts::new();
    // Each store on its own replica: a ledger that cannot be written would hold the
    // replica's stop for its last try (10 s) with the refused request's row.
    let gw = replica(&upstream, Some(&redis), None, &stranger).await;

    let started = Instant::now();
    let reply = chat_as(&gw, KEY, &hello()).await;
    assert_error(
        &reply,
        503,
        "service_unavailable",
        "shared_limits_unavailable",
    );
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(upstream.hits(), 0);

    let gw = replica(&upstream, None, Some(&pg), &stranger).await;
    let error = ledger_requests(&gw).await.expect_err("no ledger over TLS");
    assert!(error.contains("invalid peer certificate"), "{error}");
}

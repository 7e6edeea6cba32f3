//! The fleet's usage ledger in a real PostgreSQL: every replica writes its rows there
//! and reads the fleet's; while the database is down, rows wait and nothing a client
//! sends waits for it.

use super::postgres_server::Postgres;
use crate::fake_upstream::{FakeUpstream, Wire};
use crate::gateway_support::*;
use crate::keys_support::*;
use signalbox::ledger::{GroupBy, UsageQuery};
use std::time::{Duration, Instant};

async fn replica(upstream: &FakeUpstream, pg: &Postgres) -> TestGateway {
    let toml = config(
        &[("pa", "openai", &format!("{}/v1", upstream.url()))],
        &[("a", "pa", "m")],
        &format!("\n[ledger]\nurl = \"{}\"\n", pg.url()),
    );
    TestGateway::start(&toml).await
}

/// The fleet's requests for tenant `acme`, as `gw`'s ledger reads them.
async fn fleet_requests(gw: &TestGateway) -> u64 {
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
            .expect("the ledger answers")
            .iter()
            .map(|a| a.requests)
            .sum()
    })
    .await
    .unwrap()
}

async fn wait_for_rows(pg: &Postgres, n: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let rows = pg.count("SELECT COUNT(*) FROM usage").await.unwrap_or(-1);
        if rows == n {
            return;
        }
        assert!(Instant::now() < deadline, "{rows} rows, expected {n}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs PostgreSQL (tests/run installs it)"]
async fn replicas_write_one_postgres_ledger_and_wait_out_its_outage() {
    let mut pg = Postgres::start().await;
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let fleet = [replica(&upstream, &pg).await, replica(&upstream, &pg).await];

    for i in 0..10 {
        assert_eq!(chat_as(&fleet[i % 2], KEY, &hello()).await.status, 200);
    }
    wait_for_rows(&pg, 10).await;
    // Either replica reads the fleet's rows, one per request.
    assert_eq!(fleet_requests(&fleet[0]).await, 10);
    assert_eq!(fleet_requests(&fleet[1]).await, 10);
    assert_eq!(
        pg.count("SELECT COUNT(DISTINCT request_id) FROM usage")
            .await,
        Ok(10)
    );

    // The database goes away: requests are served as before, none waiting for it.
    pg.stop();
    for i in 0..12 {
        let started = Instant::now();
        assert_eq!(chat_as(&fleet[i % 2], KEY, &hello()).await.status, 200);
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );
    }
    let waiting = |gw: &TestGateway| {
        let (recorded, _, written, dropped) = gw.gateway.ledger.as_ref().unwrap().counts();
        (recorded - written, dropped)
    };
    assert_eq!(waiting(&fleet[0]), (6, 0));
    assert_eq!(waiting(&fleet[1]), (6, 0));

    // It returns: what waited is written, once.
    pg.resume().await;
    wait_for_rows(&pg, 22).await;
    assert_eq!(
        pg.count("SELECT COUNT(DISTINCT request_id) FROM usage")
            .await,
        Ok(22)
    );
    for gw in &fleet {
        assert_eq!(waiting(gw), (0, 0));
    }
    assert_eq!(fleet_requests(&fleet[1]).await, 22);
}

//! Policy versions and bindings across the fleet: a change made through one replica's
//! admin API serves on the others, under load, with no request failing.

use super::redis_server::Redis;
use crate::deploy::{OPERATOR, admin_post, bytes, deploy, label, report, served, upstream};
use crate::gateway_support::{KEY, TestGateway, send};
use crate::support::hostile_policy;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long the others may take: the sync looks four times a second, then compiles
/// the version (a debug build of the compiler, on a busy 2-core machine, takes most of
/// this; the README gives the figure of a release build).
const CONVERGE: Duration = Duration::from_secs(5);

/// Waits until `gw` serves with the policy `label`; returns how long that took.
async fn serves(gw: &TestGateway, label: &str, since: Instant) -> Duration {
    loop {
        if served(gw, None, &[]).await.0 == label {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < CONVERGE,
            "still not serving {label} after {CONVERGE:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server (tests/run installs it)"]
async fn a_policy_change_on_one_replica_serves_on_every_replica() {
    let redis = Redis::start().await;
    let up = upstream().await;
    let toml = super::lifecycle_fleet_config(&up.url(), &redis);
    let fleet = Arc::new([
        TestGateway::start(&toml).await,
        TestGateway::start(&toml).await,
        TestGateway::start(&toml).await,
    ]);
    let (before, _) = served(&fleet[1], None, &[]).await;

    // Load on all three throughout: no request may fail while bindings change.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (fleet, stop, sent, failed) =
            (fleet.clone(), stop.clone(), sent.clone(), failed.clone());
        tokio::spawn(async move {
            let body =
                json!({"model": "m", "messages": [{"role": "user", "content": "hi"}]}).to_string();
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let r = send(
                    "POST",
                    &fleet[i % 3].url("/v1/chat/completions"),
                    Some(KEY),
                    Some(body.as_bytes()),
                )
                .await;
                sent.fetch_add(1, Ordering::Relaxed);
                if r.status != 200 {
                    failed.fetch_add(1, Ordering::Relaxed);
                    eprintln!("failed during a change: {} {}", r.status, r.text());
                }
                i += 1;
            }
        })
    };

    // Pushed and activated on replica 1: serves on 2 and 3.
    let version = deploy(&fleet[0], &bytes(&hostile_policy()), "hostile", json!({})).await;
    let hostile = label("hostile", &version);
    let changed = Instant::now();
    let took = [
        serves(&fleet[1], &hostile, changed).await,
        serves(&fleet[2], &hostile, changed).await,
    ];
    eprintln!("activation reached the other replicas in {took:?}");
    // Their stores hold the version too, under its name.
    let listed = report(&fleet[2], "acme").await;
    assert!(
        listed["versions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["version"] == version && v["name"] == "hostile"),
        "{listed}"
    );

    // Rolled back on replica 3: replicas 1 and 2 follow.
    let r = admin_post(&fleet[2], "acme", OPERATOR, "rollback", &json!({})).await;
    assert_eq!(r.status, 200, "{}", r.text());
    let changed = Instant::now();
    let took = [
        serves(&fleet[0], &before, changed).await,
        serves(&fleet[1], &before, changed).await,
    ];
    eprintln!("rollback reached the other replicas in {took:?}");

    // Activated again, then quarantined by replica 2's traffic: the quarantine and its
    // rollback reach replicas 1 and 3, where the version is refused from then on.
    let r = admin_post(
        &fleet[0],
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": version}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let changed = Instant::now();
    serves(&fleet[1], &hostile, changed).await;
    serves(&fleet[2], &hostile, changed).await;
    let trap = [("x-signalbox-act", "panic")];
    let deadline = Instant::now() + CONVERGE;
    while served(&fleet[1], None, &trap).await.0 != before {
        assert!(
            Instant::now() < deadline,
            "replica 2 never quarantined the version"
        );
    }
    let changed = Instant::now();
    serves(&fleet[0], &before, changed).await;
    serves(&fleet[2], &before, changed).await;
    let again = admin_post(
        &fleet[2],
        "acme",
        OPERATOR,
        "activate",
        &json!({"version": version}),
    )
    .await;
    assert_eq!(
        (again.status, again.error_code().as_str()),
        (422, "quarantined"),
        "{}",
        again.text()
    );

    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(sent.load(Ordering::Relaxed) > 0);
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed during the changes"
    );
}

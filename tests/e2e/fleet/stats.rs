//! Canary and shadow statistics across the fleet: the admin API of any replica
//! reports, beside its own counts, the fleet's: the sum over every replica.

use super::redis_server::Redis;
use super::wait_until;
use crate::deploy::{OPERATOR, admin_post, bytes, label, report, served, upload, upstream};
use crate::gateway_support::TestGateway;
use crate::support::hostile_policy;
use serde_json::{Value, json};
use std::time::Duration;

/// Within this the others have taken the candidate (policy sync, compile included)
/// and every replica's counts have been published twice.
const CONVERGE: Duration = Duration::from_secs(10);

fn requests(traffic: &Value) -> u64 {
    traffic["requests"].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "fleet stage: needs redis-server (tests/run installs it)"]
async fn a_canary_and_a_shadow_are_judged_on_the_whole_fleet_s_traffic() {
    let redis = Redis::start().await;
    let up = upstream().await;
    let toml = super::lifecycle_fleet_config(&up.url(), &redis);
    let fleet = [
        TestGateway::start(&toml).await,
        TestGateway::start(&toml).await,
        TestGateway::start(&toml).await,
    ];
    let uploaded = upload(
        &fleet[0],
        "acme",
        OPERATOR,
        "hostile",
        &bytes(&hostile_policy()),
        &json!({}),
    )
    .await;
    assert_eq!(uploaded.status, 201, "{}", uploaded.text());
    let version = uploaded.json()["version"].as_str().unwrap().to_owned();
    let canary = label("hostile", &version);

    for (mode, body) in [
        (
            "canary",
            json!({"version": version, "mode": "canary", "percent": 50}),
        ),
        ("shadow", json!({"version": version, "mode": "shadow"})),
    ] {
        let r = admin_post(&fleet[0], "acme", OPERATOR, "candidate", &body).await;
        assert_eq!(r.status, 200, "{}", r.text());
        // Every replica runs the candidate before traffic starts.
        for gw in &fleet {
            assert!(
                wait_until(
                    CONVERGE,
                    async || report(gw, "acme").await["candidate"]["mode"] == mode
                )
                .await,
                "a replica never took the {mode}"
            );
        }
        // Each replica's own counts, summed, are what every replica reports for the
        // fleet.
        let own = async || {
            let mut sums = (0, 0, 0);
            for gw in &fleet {
                let r = report(gw, "acme").await;
                sums.0 += requests(&r["active"]["traffic"]);
                sums.1 += requests(&r["candidate"]["traffic"]);
                sums.2 += r["candidate"]["shadow"]["decisions"].as_u64().unwrap_or(0);
            }
            sums
        };
        // The active version's counts run on from the phase before.
        let (active_before, _, _) = own().await;
        let mut on_canary = 0u64;
        for i in 0..90 {
            let (policy, _) = served(&fleet[i % 3], Some(&format!("user-{i}")), &[]).await;
            on_canary += u64::from(policy == canary);
        }

        let (active, candidate, decisions) = own().await;
        assert_eq!(active - active_before + candidate, 90, "{mode}");
        match mode {
            "canary" => assert_eq!(candidate, on_canary),
            _ => assert_eq!(decisions, 90, "the shadow decided every request"),
        }
        for (i, gw) in fleet.iter().enumerate() {
            let fleet_view = async || {
                let f = report(gw, "acme").await["fleet"].clone();
                f["replicas"] == 3
                    && requests(&f["active"]["traffic"]) == active
                    && requests(&f["candidate"]["traffic"]) == candidate
                    && f["candidate"]["shadow"]["decisions"].as_u64().unwrap_or(0) == decisions
            };
            assert!(
                wait_until(CONVERGE, fleet_view).await,
                "{mode}: replica {i} reports {} for the fleet; the replicas counted active {active}, candidate {candidate}, shadow decisions {decisions}",
                report(gw, "acme").await["fleet"]
            );
        }
        let r = admin_post(&fleet[0], "acme", OPERATOR, "candidate/discard", &json!({})).await;
        assert_eq!(r.status, 200, "{}", r.text());
        for gw in &fleet {
            assert!(
                wait_until(CONVERGE, async || report(gw, "acme").await["candidate"]
                    .is_null())
                .await
            );
        }
    }
}

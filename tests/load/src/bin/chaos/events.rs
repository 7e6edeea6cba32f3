//! The chaos: upstream faults switched on a schedule, and the operator's events —
//! policy swaps and rollbacks, a quarantine, certificate reloads, a SIGTERM and
//! restart — at fixed points of the run. Each is counted only once it is seen to
//! have happened (the admin API's answer, the certificate a new connection is served,
//! the process exiting and listening again).

use crate::run::Run;
use crate::upstream::Fault;
use anyhow::{Context, bail};
use serde_json::{Value, json};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Switches one upstream's fault on at a time, cycling through every upstream and
/// every kind; one slot in three is healthy throughout.
pub async fn faults(run: &Run, duration: Duration) {
    let slot = (duration / 24).clamp(Duration::from_secs(2), Duration::from_secs(25));
    let mut faulty = 0usize;
    for k in 0usize.. {
        if run.shared.stop.load(Relaxed) {
            break;
        }
        for upstream in &run.upstreams {
            upstream.set_fault(None);
        }
        if k % 3 != 2 {
            let upstream = &run.upstreams[faulty % run.upstreams.len()];
            upstream.set_fault(Some(Fault::ALL[faulty % Fault::ALL.len()]));
            faulty += 1;
        }
        run.sleep_unless_stopped(slot).await;
    }
    for upstream in &run.upstreams {
        upstream.set_fault(None);
    }
}

/// An operator's action.
#[derive(Clone, Copy)]
enum Event {
    Swap(&'static str, &'static str),
    Rollback(&'static str),
    Quarantine(&'static str),
    CertReload,
    Restart,
}

/// One cycle of events, at fractions of the cycle.
const CYCLE: [(f64, Event); 14] = [
    (0.05, Event::Swap("alpha", "latency")),
    (0.10, Event::Swap("beta", "weighted")),
    (0.15, Event::CertReload),
    // Early, so that every kind of fault also strikes the restarted process (whose
    // budgets were restored from the ledger) before the books are checked.
    (0.30, Event::Restart),
    (0.40, Event::Quarantine("beta")),
    (0.45, Event::Rollback("alpha")),
    (0.50, Event::Swap("gamma", "least_loaded")),
    (0.60, Event::Swap("alpha", "least_loaded")),
    (0.65, Event::Rollback("beta")),
    (0.70, Event::CertReload),
    (0.75, Event::Rollback("gamma")),
    (0.80, Event::Swap("beta", "latency")),
    (0.85, Event::Rollback("alpha")),
    (0.92, Event::Rollback("beta")),
];

/// How long one cycle of events lasts at most: a longer run repeats the cycle.
const LONGEST_CYCLE: Duration = Duration::from_secs(150);

/// Runs the cycles of events until `duration` has passed since `start`. A failed
/// event is a problem of the run (reported, and the soak fails), not the end of it.
pub async fn operator(run: &Run, start: Instant, duration: Duration) {
    let cycles = (duration.as_secs_f64() / LONGEST_CYCLE.as_secs_f64())
        .ceil()
        .max(1.0);
    let cycle = duration.div_f64(cycles);
    for c in 0..cycles as u32 {
        for (at, event) in CYCLE {
            let when = start + cycle * c + cycle.mul_f64(at);
            run.sleep_unless_stopped(when.saturating_duration_since(Instant::now()))
                .await;
            if run.shared.stop.load(Relaxed) {
                return;
            }
            if let Err(e) = happen(run, event).await {
                run.problem(format!("chaos event failed: {e:#}"));
            }
        }
    }
}

async fn happen(run: &Run, event: Event) -> anyhow::Result<()> {
    match event {
        Event::Swap(tenant, policy) => {
            let wasm = run.policy_wasm(&format!("signalbox_policy_{policy}"))?;
            let config = policy_config(policy);
            let version = run.admin.upload(tenant, policy, wasm, &config).await?;
            run.admin.activate(tenant, &version, &config).await?;
            run.count("policy swaps");
        }
        Event::Rollback(tenant) => {
            run.admin.rollback(tenant).await?;
            run.count("rollbacks");
        }
        Event::Quarantine(tenant) => quarantine(run, tenant).await?,
        Event::CertReload => {
            let leaf = run.authority.install_leaf(&run.layout.dir)?;
            let started = Instant::now();
            while run.served_certificate().await.ok().as_deref() != Some(leaf.as_slice()) {
                if started.elapsed() > Duration::from_secs(20) {
                    bail!("the reloaded certificate was not served within 20 s");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            run.count("certificate reloads");
        }
        Event::Restart => {
            let before = active_versions(run).await?;
            run.restart().await?;
            // The state directory brings every tenant's binding back.
            let after = active_versions(run).await?;
            if before != after {
                bail!("the active policies before the restart were {before:?}, after {after:?}");
            }
            run.count("restarts (SIGTERM + start)");
        }
    }
    Ok(())
}

/// Each tenant's active policy version.
async fn active_versions(run: &Run) -> anyhow::Result<Vec<String>> {
    let mut versions = Vec::new();
    for tenant in crate::setup::TENANTS {
        let report = run.admin.report(tenant).await?;
        let active = report["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["active"] == json!(true)))
            .and_then(|v| v["version"].as_str())
            .unwrap_or("the config's policy")
            .to_owned();
        versions.push(active);
    }
    Ok(versions)
}

fn policy_config(policy: &str) -> Value {
    match policy {
        "weighted" => json!({"targets": {"t0": 1, "t1": 1, "t2": 1}, "sticky_key": null}),
        _ => json!({}),
    }
}

/// Deploys the hostile fixture and sends requests that make it trap until the
/// gateway quarantines it and restores the previous binding. The tenant's other
/// clients keep sending requests it answers well, and a good answer ends a streak of
/// failures, so the traps come in bursts. Those requests are clients' requests like
/// any other: served through the safe route, and booked.
async fn quarantine(run: &Run, tenant: &str) -> anyhow::Result<()> {
    const BURST: usize = 6;
    let wasm = run.policy_wasm("signalbox_fixture_hostile")?;
    let version = run
        .admin
        .upload(tenant, "hostile", wasm, &json!({}))
        .await?;
    run.admin.activate(tenant, &version, &json!({})).await?;
    let client = std::sync::Arc::new(crate::load::ApiClient::new(
        &run.authority,
        run.api_port,
        false,
    )?);
    let key = run
        .secrets
        .keys
        .iter()
        .find(|k| k.tenant == tenant)
        .context("no key for the tenant")?;
    let started = Instant::now();
    loop {
        let mut burst = tokio::task::JoinSet::new();
        for _ in 0..BURST {
            let (client, key, shared) = (client.clone(), key.clone(), run.shared.clone());
            burst.spawn(async move {
                let trap = [("x-signalbox-act", "panic")];
                client.chat(&key, false, false, &trap, &shared.sweep).await
            });
        }
        while let Some(record) = burst.join_next().await {
            if let Ok(record) = record {
                run.shared.record(record);
            }
        }
        let report = run.admin.report(tenant).await?;
        let entry = report["versions"]
            .as_array()
            .and_then(|v| v.iter().find(|v| v["version"] == version.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        if entry["quarantined"] == json!(true) && entry["active"] == json!(false) {
            run.count("quarantines");
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the hostile policy was not quarantined within 60 s: {entry}");
        }
    }
}

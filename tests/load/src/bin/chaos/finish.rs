//! The end of a run: the gateway back at rest (connections, requests, tasks and
//! threads at their idle values), the spend it reports, its last SIGTERM, the books,
//! the secrets sweep over every file it wrote, and the summary.

use crate::admin::Metrics;
use crate::books::{self, Reported};
use crate::run::Run;
use crate::summary::Summary;
use anyhow::Context;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Runtime tasks above the idle count still taken as idle: a scrape's own
/// connection, a watcher's or snapshot's task waking at that moment.
const TASK_SLACK: i64 = 4;
/// Threads above the idle count still taken as idle: a blocking-pool thread the
/// runtime has not retired yet.
const THREAD_SLACK: u64 = 4;
/// How long the gateway has to come back to rest after the load stops: longer than
/// the runtime's 10 s keep-alive of idle blocking threads.
const SETTLE: Duration = Duration::from_secs(40);

/// The gateway at rest.
#[derive(Clone, Copy, Debug)]
pub struct Idle {
    pub rss_kib: u64,
    pub threads: u64,
    pub tasks: i64,
    pub connections: i64,
    pub in_flight: i64,
}

impl Idle {
    /// The just-started gateway, before any load.
    pub async fn measure(run: &Run) -> anyhow::Result<Idle> {
        let metrics = run.admin.metrics().await?;
        Idle::read(run, &metrics).await
    }

    async fn read(run: &Run, metrics: &Metrics) -> anyhow::Result<Idle> {
        let gateway = run.gateway.lock().await;
        let process = gateway.as_ref().context("no gateway running")?;
        let api = [("listener", "api")];
        Ok(Idle {
            rss_kib: process.rss_kib().unwrap_or(0),
            threads: process.threads().unwrap_or(0),
            tasks: metrics.sum("signalbox_runtime_alive_tasks", &[]) as i64,
            connections: metrics.sum("signalbox_open_connections", &api) as i64,
            in_flight: (metrics.sum("signalbox_listener_in_flight_requests", &api)
                + metrics.sum("signalbox_in_flight_requests", &[])) as i64,
        })
    }

    fn at_rest(&self, idle: &Idle) -> bool {
        self.connections == 0
            && self.in_flight == 0
            && self.tasks <= idle.tasks + TASK_SLACK
            && self.threads <= idle.threads + THREAD_SLACK
    }
}

pub async fn finish(
    run: &Run,
    idle: &Idle,
    rss_limit_mib: u64,
    load_time: Duration,
) -> anyhow::Result<bool> {
    // Back at rest once the clients are gone and the upstreams have closed the
    // connections the gateway keeps in its pools (each one a task of its runtime,
    // kept for 90 s otherwise).
    for upstream in &run.upstreams {
        upstream.close_connections();
    }
    let started = Instant::now();
    let (rest, metrics) = loop {
        let metrics = run.admin.metrics().await?;
        let now = Idle::read(run, &metrics).await?;
        if now.at_rest(idle) || started.elapsed() > SETTLE {
            break (now, metrics);
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    if !rest.at_rest(idle) {
        run.problem(format!(
            "{} s after the load stopped the gateway is not at rest: {rest:?} (idle: {idle:?})",
            SETTLE.as_secs()
        ));
    }

    // The spend the gateway reports, with nothing in flight.
    let now_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let day_start = now_secs - now_secs % 86_400;
    // Ids are `req-` and eight hex digits of a per-process prefix, then a sequence.
    let last_prefix = run.shared.records().iter().rev().find_map(|r| {
        r.request_id
            .as_ref()
            .and_then(|id| id.get(..12))
            .map(str::to_owned)
    });
    let mut reported = Reported {
        last_process: last_prefix.map(|p| (p, metrics.sum("signalbox_requests_total", &[]))),
        day_start_ms: day_start as i64 * 1000,
        budget_gauge: BTreeMap::new(),
        usage_api: BTreeMap::new(),
    };
    for tenant in crate::setup::TENANTS {
        let gauge = metrics.samples(
            "signalbox_budget_spent_usd",
            &[("tenant", tenant), ("window", "day")],
        );
        if let Some(usd) = gauge.first() {
            reported.budget_gauge.insert(tenant.to_owned(), *usd);
        }
        let usage = run
            .admin
            .expect(
                "GET",
                &format!("/admin/usage?tenant={tenant}&from={day_start}&group_by=key"),
                Vec::new(),
                200,
            )
            .await?;
        let sum = usage["data"].as_array().map_or(0.0, |groups| {
            groups.iter().filter_map(|g| g["cost_usd"].as_f64()).sum()
        });
        reported.usage_api.insert(tenant.to_owned(), sum);
        // The versions report, for the sweep.
        run.admin.report(tenant).await?;
    }
    let scrape = run.layout.dir.join("metrics.txt");
    std::fs::write(&scrape, &metrics.0)?;

    run.stop_gateway().await?;
    let (rows, ledger_text) = books::read_ledger(&run.layout.ledger())?;
    let records = run.shared.records();
    let figures = books::check(run, &records, &rows, &reported);

    let peak_rss_kib = run
        .stopped
        .lock()
        .map(|s| s.iter().map(|s| s.peak_rss_kib).max().unwrap_or(0))
        .unwrap_or(0);
    if peak_rss_kib > rss_limit_mib * 1024 {
        run.problem(format!(
            "peak resident memory {} MiB is over the bound of {rss_limit_mib} MiB",
            peak_rss_kib / 1024
        ));
    }
    for upstream in &run.upstreams {
        let wrong = upstream
            .wrong_key
            .load(std::sync::atomic::Ordering::Relaxed);
        if wrong > 0 {
            run.problem(format!(
                "{} received {wrong} requests without its provider key",
                upstream.name
            ));
        }
        if upstream.requests.load(std::sync::atomic::Ordering::Relaxed) == 0 {
            run.problem(format!(
                "{} received no request, so its key was never shown to be used",
                upstream.name
            ));
        }
    }

    // What the sweep reads must hold what it is meant to cover: the gateway's logs
    // of requests, failed attempts, a quarantine and a certificate reload.
    let logs = run.layout.logs();
    for needle in [
        "request ended",
        "attempt failed",
        "policy quarantined",
        "TLS certificate reloaded",
    ] {
        if !logged(&logs, needle)? {
            run.problem(format!("no `{needle}` in the gateway's logs"));
        }
    }
    if std::fs::metadata(run.layout.decision_log()).map_or(0, |m| m.len()) == 0 {
        run.problem("the decision log is empty".into());
    }

    // The secrets sweep over everything the run wrote (the clients' answers and the
    // admin API's were searched as they arrived).
    let sweep = &run.shared.sweep;
    sweep.scan("the ledger's rows", ledger_text.as_bytes());
    sweep.scan_tree("the gateway's logs", &run.layout.logs())?;
    sweep.scan_tree("the state directory", &run.layout.state())?;
    sweep.scan_file("the decision log", &run.layout.decision_log())?;
    sweep.scan_file("the /metrics scrape", &scrape)?;
    for hit in sweep.hits() {
        run.problem(format!("secret found: {hit}"));
    }

    let summary = Summary {
        run,
        records: &records,
        figures: &figures,
        idle,
        rest: &rest,
        peak_rss_kib,
        rss_limit_mib,
        load_time,
    };
    summary.print();
    Ok(run.problems().is_empty())
}

/// Whether any of the gateway's stderr logs has a line containing `needle`.
fn logged(dir: &std::path::Path, needle: &str) -> anyhow::Result<bool> {
    use std::io::BufRead;
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if !path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("stderr"))
        {
            continue;
        }
        let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
        for line in reader.split(b'\n') {
            if String::from_utf8_lossy(&line?).contains(needle) {
                return Ok(true);
            }
        }
    }
    Ok(false)
}

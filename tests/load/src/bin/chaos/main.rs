//! The chaos soak (issue 17): the real `signalbox` binary for a bounded time under
//! mixed load from several tenants over keep-alive HTTPS, while its upstreams fail,
//! hang, reset, stall, rate-limit and answer garbage, its policies are swapped, rolled
//! back and quarantined, its certificate is reloaded and it is stopped with SIGTERM
//! and restarted on the same state directory. Then the books are checked and every
//! secret is searched for in everything the run produced. Exits non-zero on any
//! problem; prints a summary either way.
//!
//! `chaos [--seconds 600] [--gateway target/debug/signalbox]
//!        [--policies target/policies/wasm32-wasip2/policy] [--rss-limit-mib 200] [--keep]`
//!
//! `tests/chaos/run.sh [SECONDS]` builds what it needs and runs it.

mod admin;
mod books;
mod events;
mod finish;
mod gateway;
mod load;
mod run;
mod setup;
mod summary;
mod sweep;
mod upstream;

use anyhow::Context;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match soak().await {
        Ok(true) => std::process::ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("chaos: the soak FAILED (problems above)");
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("chaos: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the soak; whether the books balanced and nothing leaked.
async fn soak() -> anyhow::Result<bool> {
    let arg = signalbox_load::arg;
    let seconds: u64 = arg("--seconds", "600").parse().context("--seconds")?;
    let duration = Duration::from_secs(seconds);
    let binary = PathBuf::from(arg("--gateway", "target/debug/signalbox"));
    let policies = PathBuf::from(arg("--policies", "target/policies/wasm32-wasip2/policy"));
    let rss_limit_mib: u64 = arg("--rss-limit-mib", "200")
        .parse()
        .context("--rss-limit-mib")?;
    let keep = std::env::args().any(|a| a == "--keep");

    let dir = tempfile::Builder::new()
        .prefix("signalbox-chaos-")
        .tempdir()?;
    let layout = setup::Layout {
        dir: dir.path().to_owned(),
    };
    let secrets = setup::Secrets::fresh()?;
    let sweep = Arc::new(sweep::Sweep::new(&secrets.all())?);
    anyhow::ensure!(
        sweep.finds_every_secret(&secrets.all()),
        "the secrets sweep does not find the secrets it is given"
    );
    let authority = setup::Authority::new()?;
    authority.install_leaf(&layout.dir)?;
    let mut upstreams = Vec::new();
    for (i, key) in secrets.provider_keys.iter().enumerate() {
        upstreams.push(upstream::Upstream::start(&format!("up{i}"), key).await?);
    }
    let addresses = setup::Addresses {
        api_port: free_port()?,
        admin_port: free_port()?,
        upstreams: upstreams.iter().map(|u| u.addr).collect(),
    };
    std::fs::write(layout.config(), setup::config(&secrets, &addresses))?;
    let admin = admin::Admin::new(addresses.admin_port, &secrets.admin_token, sweep.clone());
    let shared = Arc::new(load::Shared {
        records: Default::default(),
        stop: AtomicBool::new(false),
        sweep,
    });
    let run = Arc::new(run::Run::new(
        layout,
        secrets,
        authority,
        upstreams,
        admin,
        shared.clone(),
        addresses.api_port,
        (binary, policies),
    ));
    println!(
        "chaos: {seconds} s against {} in {}",
        run.binary.display(),
        run.layout.dir.display()
    );

    run.start_gateway(1).await?;
    let idle = finish::Idle::measure(&run).await?;
    println!(
        "chaos: idle gateway: {} MiB resident, {} threads, {} runtime tasks",
        idle.rss_kib / 1024,
        idle.threads,
        idle.tasks
    );

    let started = Instant::now();
    let clients = load::spawn_clients(&shared, &run.authority, run.api_port, &run.secrets.keys)?;
    let faults = {
        let run = run.clone();
        tokio::spawn(async move { events::faults(&run, duration).await })
    };
    let operator = {
        let run = run.clone();
        tokio::spawn(async move { events::operator(&run, started, duration).await })
    };
    let progress = {
        let shared = shared.clone();
        tokio::spawn(async move {
            while !shared.stop.load(Relaxed) {
                tokio::time::sleep(Duration::from_secs(30)).await;
                let n = shared.records.lock().map(|r| r.len()).unwrap_or(0);
                println!("chaos: {} s, {n} requests", started.elapsed().as_secs());
            }
        })
    };
    run.sleep_unless_stopped(duration).await;
    // The operator finishes the event under way (a restart must complete) first.
    let _ = tokio::time::timeout(Duration::from_secs(240), operator).await;
    shared.stop.store(true, Relaxed);
    for client in clients {
        let _ = client.await;
    }
    let _ = faults.await;
    progress.abort();
    let load_time = started.elapsed();

    let outcome = finish::finish(&run, &idle, rss_limit_mib, load_time).await?;
    if keep {
        let kept = dir.keep();
        println!("chaos: files kept in {}", kept.display());
    }
    Ok(outcome)
}

/// A loopback port free now (the gateway binds it again at each start).
fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

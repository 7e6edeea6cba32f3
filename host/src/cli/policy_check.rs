//! `signalbox policy check`: is this component a policy this host can run?

use crate::policy::{
    CompileSource, EngineConfig, PolicyEngine, RouteDecision, TenantContext, sample_request,
    sample_signals, sample_targets,
};
use anyhow::Context;
use std::path::{Path, PathBuf};
use std::time::Instant;

pub fn run(
    file: Option<&Path>,
    config: &str,
    list_targets: bool,
    cache_dir: Option<PathBuf>,
) -> anyhow::Result<()> {
    let (name, bytes) = super::policy_bytes(file)?;
    let engine = PolicyEngine::new(EngineConfig {
        cache_dir,
        ..EngineConfig::default()
    })?;
    let policy = engine
        .load(&bytes)
        .with_context(|| format!("{name} is not a valid policy"))?;

    println!("policy:    {name}");
    println!("version:   {}", policy.version());
    println!("contract:  signalbox:policy@{}", policy.contract_version());
    println!(
        "outcomes:  {}",
        if policy.observes_outcomes() {
            "on-outcome called after each request"
        } else {
            "not wanted (on-outcome skipped)"
        }
    );
    println!(
        "reviews:   {}",
        if policy.reviews_answers() {
            "review called with each answer before the client sees it"
        } else {
            "none (answers go to the client unreviewed)"
        }
    );
    println!("size:      {} bytes", policy.size());
    match policy.compile_source() {
        CompileSource::Compiled(t) => println!("compile:   {:.1} ms", t.as_secs_f64() * 1e3),
        CompileSource::Cached(t) => {
            println!(
                "compile:   loaded from cache in {:.2} ms",
                t.as_secs_f64() * 1e3
            )
        }
    }
    println!("exports:   {}", policy.exports().join(", "));
    println!("imports:   {}", policy.imports().join(", "));

    let targets = sample_targets();
    if list_targets {
        super::print_sample_targets(&targets);
    }
    let model = targets.first().map(|t| t.model.clone()).unwrap_or_default();
    let signals = sample_signals(targets.len());
    let binding = policy
        .bind(TenantContext::new("policy-check"), config, targets)
        .context("activation failed")?;
    let request = sample_request(&model, 400);
    let started = Instant::now();
    let decision = binding
        .route(&request, &signals)
        .context("smoke call failed")?;
    let took = started.elapsed();
    match decision {
        RouteDecision::Route { targets, reason } => {
            let ids: Vec<&str> = targets
                .iter()
                .map(|&i| binding.targets()[i as usize].id.as_str())
                .collect();
            println!(
                "smoke:     `{model}` -> {} ({reason}) in {} µs",
                ids.join(", "),
                took.as_micros()
            );
        }
        RouteDecision::Reject { status, message } => {
            println!("smoke:     `{model}` -> rejected {status}: {message}");
        }
    }
    println!("ok");
    Ok(())
}

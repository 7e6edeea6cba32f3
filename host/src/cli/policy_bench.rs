//! `signalbox policy bench`: decisions per second and latency per decision, and for a
//! policy that reviews answers, the same for its review of one answer.

use crate::policy::{
    EngineConfig, PolicyEngine, PolicyError, RouteDecision, TenantContext, sample_answer,
    sample_request, sample_signals, sample_targets,
};
use anyhow::Context;
use std::path::PathBuf;
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The policy component (`.wasm`); omit to bench the embedded default policy.
    file: Option<PathBuf>,
    /// The config to activate it with: inline JSON, or a JSON file (`FILE` or `@FILE`);
    /// default `{}`.
    #[arg(long, value_name = "JSON|FILE")]
    config: Option<String>,
    /// Print the sample targets the decisions route among, then measure.
    #[arg(long)]
    list_targets: bool,
    /// Decisions measured per thread.
    #[arg(long, default_value_t = 200_000)]
    iterations: usize,
    /// Size of the last user message in bytes.
    #[arg(long, default_value_t = 400)]
    prompt_bytes: usize,
    /// Size of the answer a reviewing policy reviews, in bytes (a JSON answer to a
    /// request for JSON).
    #[arg(long, default_value_t = 2048)]
    answer_bytes: usize,
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    let config = super::policy_config::read(args.config.as_deref())?;
    let (name, bytes) = super::policy_bytes(args.file.as_deref())?;
    let engine = PolicyEngine::new(EngineConfig::default())?;
    let policy = engine
        .load(&bytes)
        .with_context(|| format!("loading {name}"))?;
    let targets = sample_targets();
    if args.list_targets {
        super::print_sample_targets(&targets);
    }
    let model = targets.first().map(|t| t.model.clone()).unwrap_or_default();
    let binding = policy
        .bind(TenantContext::new("policy-bench"), &config.text, targets)
        .context("activation failed")?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());

    println!(
        "policy {name}: 10 targets, 4 messages, {} B prompt, {} decisions per thread",
        args.prompt_bytes, args.iterations
    );
    let request = sample_request(&model, args.prompt_bytes);
    let signals = sample_signals(binding.targets().len());
    let route = || binding.route(&request, &signals).map(drop);
    report("decisions", args.iterations, threads, &route)?;
    if policy.reviews_answers() {
        println!(
            "review of a {} B JSON answer ({} log-probabilities):",
            args.answer_bytes,
            args.answer_bytes / 4
        );
        // The answer of the policy's own first choice, with the rest of its plan left
        // to escalate to: what the gateway would show it.
        let mut answer = sample_answer(args.answer_bytes);
        if let Ok(RouteDecision::Route { targets, .. }) = binding.route(&request, &signals)
            && let Some((first, rest)) = targets.split_first()
        {
            answer.target = *first;
            answer.remaining = rest.to_vec();
        }
        let review = || binding.review(&answer).map(drop);
        report("reviews", args.iterations, threads, &review)?;
    }
    Ok(())
}

/// Measures `call` on one thread, then on every core, and prints both.
fn report(
    what: &str,
    iterations: usize,
    threads: usize,
    call: &(dyn Fn() -> Result<(), PolicyError> + Sync),
) -> anyhow::Result<()> {
    for n in [1, threads] {
        let report = measure(call, iterations, n)?;
        println!(
            "{n} thread(s): {:>9.0} {what}/s   p50 {:>6.2} µs   p99 {:>6.2} µs   {} failed",
            report.per_second, report.p50_us, report.p99_us, report.failed
        );
        if n == threads {
            break;
        }
    }
    Ok(())
}

struct Report {
    /// Calls that ended in an error (e.g. a deadline missed because the thread was
    /// descheduled); the gateway would have used the safe route for them.
    failed: usize,
    per_second: f64,
    p50_us: f64,
    p99_us: f64,
}

fn measure(
    call: &(dyn Fn() -> Result<(), PolicyError> + Sync),
    iterations: usize,
    threads: usize,
) -> anyhow::Result<Report> {
    let per_thread: Vec<anyhow::Result<(Vec<Duration>, usize)>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    // Warm up (instance creation, caches); a policy that cannot answer
                    // even once is an error, not a benchmark.
                    call()?;
                    for _ in 0..1_000.min(iterations) {
                        let _ = call();
                    }
                    let mut samples = Vec::with_capacity(iterations);
                    let mut failed = 0;
                    for _ in 0..iterations {
                        let t = Instant::now();
                        let result = call();
                        samples.push(t.elapsed());
                        failed += usize::from(result.is_err());
                    }
                    Ok((samples, failed))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("bench thread panicked")))
            })
            .collect()
    });
    let mut samples = Vec::new();
    let mut failed = 0;
    for result in per_thread {
        let (s, f) = result?;
        samples.extend(s);
        failed += f;
    }
    samples.sort_unstable();
    let pick = |q: f64| {
        let i = ((samples.len() as f64 * q) as usize).min(samples.len().saturating_sub(1));
        samples.get(i).map_or(0.0, |d| d.as_secs_f64() * 1e6)
    };
    let measured: Duration = samples.iter().sum();
    // Throughput from the measured calls only (warm-up excluded), across threads.
    let per_second = samples.len() as f64 / (measured.as_secs_f64() / threads as f64);
    Ok(Report {
        failed,
        per_second,
        p50_us: pick(0.50),
        p99_us: pick(0.99),
    })
}

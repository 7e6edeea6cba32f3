//! Cost of a routing decision through the policy engine.
//!
//! `cargo bench -p signalbox --bench policy`; figures are recorded in
//! `docs/benchmarks.md`.

#![allow(clippy::expect_used)] // a benchmark without its policy cannot run

use criterion::{Criterion, criterion_group, criterion_main};
use signalbox::policy::{
    EngineConfig, PolicyEngine, TenantContext, sample_request, sample_signals, sample_targets,
};
use std::hint::black_box;

fn decisions(c: &mut Criterion) {
    let engine = PolicyEngine::new(EngineConfig::default()).expect("engine");
    let policy = engine
        .load(signalbox::embedded::DEFAULT_POLICY)
        .expect("default policy loads");
    let targets = sample_targets();
    let model = targets[0].model.clone();
    let signals = sample_signals(targets.len());
    let binding = policy
        .bind(TenantContext::new("bench"), "{}", targets.clone())
        .expect("default policy activates");

    let mut group = c.benchmark_group("route_default_10_targets");
    for (name, prompt) in [("4_messages_400B", 400), ("4_messages_100KB", 100 * 1024)] {
        let request = sample_request(&model, prompt);
        group.bench_function(name, |b| {
            b.iter(|| black_box(binding.route(black_box(&request), black_box(&signals))))
        });
    }
    group.finish();

    // What a fresh instance per call would cost (instantiate + activate): the reason
    // the engine pools instances.
    c.bench_function("bind_fresh_instance", |b| {
        b.iter(|| {
            black_box(
                policy
                    .bind(TenantContext::new("bench"), "{}", targets.clone())
                    .expect("activates"),
            )
        })
    });
}

criterion_group!(benches, decisions);
criterion_main!(benches);

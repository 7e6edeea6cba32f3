//! A restart loads the compiled policy from the disk cache instead of recompiling.

use crate::support::*;
use signalbox::policy::{CompileSource, EngineConfig, PolicyEngine, RouteDecision, TenantContext};

#[test]
fn a_second_engine_loads_the_cached_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..EngineConfig::default()
    };
    let bytes = std::fs::read(default_policy()).unwrap();

    let first = PolicyEngine::new(config.clone())
        .unwrap()
        .load(&bytes)
        .unwrap();
    let CompileSource::Compiled(compile) = first.compile_source() else {
        panic!(
            "an empty cache cannot hold the policy: {:?}",
            first.compile_source()
        );
    };
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);

    // A new engine stands for a restarted process.
    let restarted = PolicyEngine::new(config).unwrap();
    let second = restarted.load(&bytes).unwrap();
    let CompileSource::Cached(load) = second.compile_source() else {
        panic!("the restart recompiled: {:?}", second.compile_source());
    };
    assert!(
        load < compile,
        "cache load {load:?} not faster than compile {compile:?}"
    );

    // And the cached code decides like the compiled one.
    let route = |p: &signalbox::policy::CompiledPolicy| {
        p.bind(TenantContext::new("t"), "{}", targets())
            .unwrap()
            .route(&request("gpt-4o-mini", &[]), &healthy(4))
            .unwrap()
    };
    let (a, b) = (route(&first), route(&second));
    assert_eq!(a, b);
    assert!(matches!(a, RouteDecision::Route { .. }));
}

#[test]
fn a_corrupt_cache_entry_is_recompiled() {
    let dir = tempfile::tempdir().unwrap();
    let config = EngineConfig {
        cache_dir: Some(dir.path().to_owned()),
        ..EngineConfig::default()
    };
    let bytes = std::fs::read(default_policy()).unwrap();
    PolicyEngine::new(config.clone())
        .unwrap()
        .load(&bytes)
        .unwrap();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"corrupted").unwrap();
    }
    let reloaded = PolicyEngine::new(config).unwrap().load(&bytes).unwrap();
    assert!(matches!(
        reloaded.compile_source(),
        CompileSource::Compiled(_)
    ));
}

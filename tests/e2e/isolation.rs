//! No state crosses from one tenant's instances to another's.

use crate::support::*;
use signalbox::policy::{PolicyBinding, RouteDecision, TenantContext};

fn reason(binding: &PolicyBinding, metadata: &[(&str, &str)]) -> String {
    match binding
        .route(&request("any", metadata), &healthy(4))
        .unwrap()
    {
        RouteDecision::Route { reason, .. } => reason,
        other => panic!("expected a route, got {other:?}"),
    }
}

#[test]
fn a_canary_in_one_tenants_memory_is_never_seen_by_another() {
    let policy = engine().load_file(&hostile_policy()).unwrap();
    let alice = policy
        .bind(TenantContext::new("alice"), "{}", targets())
        .unwrap();
    let bob = policy
        .bind(TenantContext::new("bob"), "{}", targets())
        .unwrap();

    reason(&alice, &[("act", "plant"), ("canary", "alice-secret-7f3a")]);
    // The canary really sits in Alice's instance memory: her next call sees it.
    assert_eq!(reason(&alice, &[]), "seen:alice-secret-7f3a");

    for _ in 0..50 {
        assert_eq!(reason(&bob, &[]), "seen:");
    }

    // Recycle Alice's instance (a trap discards it and frees its memory slot), then
    // make Bob create fresh instances that may land in that slot.
    assert!(
        alice
            .route(&request("any", &[("act", "panic")]), &healthy(4))
            .is_err()
    );
    for _ in 0..8 {
        assert!(
            bob.route(&request("any", &[("act", "panic")]), &healthy(4))
                .is_err()
        );
        assert_eq!(reason(&bob, &[]), "seen:");
    }
    // Not even Alice gets the canary back from a new instance.
    assert_eq!(reason(&alice, &[]), "seen:");
}

#[test]
fn the_state_store_is_per_tenant_and_outlives_instances() {
    let policy = engine().load_file(&hostile_policy()).unwrap();
    let alice = TenantContext::new("alice");
    let a = policy.bind(alice.clone(), "{}", targets()).unwrap();
    let b = policy
        .bind(TenantContext::new("bob"), "{}", targets())
        .unwrap();
    for n in 1..=3 {
        assert_eq!(reason(&a, &[("act", "count")]), format!("count:{n}"));
    }
    assert_eq!(reason(&b, &[("act", "count")]), "count:1");

    // A trap discards the instance, not the tenant's state; a new binding of the same
    // tenant (a policy swap) continues from it.
    assert!(
        a.route(&request("any", &[("act", "panic")]), &healthy(4))
            .is_err()
    );
    let swapped = policy.bind(alice, "{}", targets()).unwrap();
    assert_eq!(reason(&swapped, &[("act", "count")]), "count:4");
}

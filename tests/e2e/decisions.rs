//! `policies/default` decides as documented, through the engine.

use crate::support::*;

fn binding() -> signalbox::policy::PolicyBinding {
    bind(
        &default_policy(),
        "acme",
        r#"{"aliases": {"fast": ["gpt-4o-mini"], "smart": ["gpt-4o", "claude-sonnet"]}}"#,
        targets(),
    )
}

#[test]
fn exact_model_goes_to_its_targets_cheapest_first() {
    let b = binding();
    let d = b.route(&request("gpt-4o-mini", &[]), &healthy(4)).unwrap();
    assert_eq!(ids(&b, d), Ok(vec!["mini".into(), "mini-eu".into()]));
}

#[test]
fn alias_spans_several_models_by_price() {
    let b = binding();
    let d = b.route(&request("smart", &[]), &healthy(4)).unwrap();
    assert_eq!(ids(&b, d), Ok(vec!["gpt-4o".into(), "claude".into()]));
}

#[test]
fn unhealthy_and_rate_limited_targets_become_last_resorts() {
    let b = binding();
    let mut s = healthy(4);
    s[1] = signals(false);
    let d = b.route(&request("fast", &[]), &s).unwrap();
    assert_eq!(ids(&b, d), Ok(vec!["mini-eu".into(), "mini".into()]));

    let mut s = healthy(4);
    s[0].rate_limited_ms = 30_000;
    let d = b.route(&request("smart", &[]), &s).unwrap();
    assert_eq!(ids(&b, d), Ok(vec!["claude".into(), "gpt-4o".into()]));
}

#[test]
fn context_window_overflow_skips_small_targets_or_rejects() {
    let b = binding();
    let long = request_with("smart", 150_000, &[], vec![]);
    let d = b.route(&long, &healthy(4)).unwrap();
    assert_eq!(ids(&b, d), Ok(vec!["claude".into()]));

    let too_long = request_with("fast", 20_000, &[], vec![]);
    assert_eq!(ids(&b, b.route(&too_long, &healthy(4)).unwrap()), Err(400));
}

#[test]
fn required_tags_restrict_the_choice() {
    let b = binding();
    let d = b
        .route(&request("fast", &[("require", "region:eu")]), &healthy(4))
        .unwrap();
    assert_eq!(ids(&b, d), Ok(vec!["mini-eu".into()]));
    let d = b
        .route(&request("smart", &[("require", "region:eu")]), &healthy(4))
        .unwrap();
    assert_eq!(ids(&b, d), Err(403));
}

#[test]
fn unknown_models_are_rejected_with_404_and_a_reason() {
    let b = binding();
    match b.route(&request("gpt-9", &[]), &healthy(4)).unwrap() {
        signalbox::policy::RouteDecision::Reject { status, message } => {
            assert_eq!(status, 404);
            assert!(message.contains("gpt-9"), "{message}");
        }
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn a_bad_alias_config_is_rejected_at_bind() {
    let policy = engine().load_file(&default_policy()).unwrap();
    let err = policy
        .bind(
            signalbox::policy::TenantContext::new("acme"),
            r#"{"aliases": {"fast": ["no-such-model"]}}"#,
            targets(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), "bad_config");
    assert!(err.to_string().contains("no-such-model"), "{err}");
}

#[test]
fn the_quickstart_example_routes_through_the_engine() {
    let b = bind(
        &wasm("signalbox_example_quickstart"),
        "acme",
        "{}",
        targets(),
    );
    let d = b.route(&request("gpt-4o-mini", &[]), &healthy(4)).unwrap();
    assert_eq!(ids(&b, d), Ok(vec!["mini".into(), "mini-eu".into()]));
    let d = b
        .route(
            &request("gpt-4o-mini", &[("tag", "region:eu")]),
            &healthy(4),
        )
        .unwrap();
    assert_eq!(ids(&b, d), Ok(vec!["mini-eu".into()]));
}

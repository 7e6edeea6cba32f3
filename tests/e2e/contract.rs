//! Components are checked against the contract, with a distinct error per problem.

use crate::support::*;
use signalbox::policy::LoadError;

#[test]
fn the_default_policy_speaks_this_contract() {
    let policy = engine().load_file(&default_policy()).unwrap();
    assert_eq!(
        policy.contract_version(),
        signalbox_contract::CONTRACT_VERSION
    );
    let router = format!(
        "{}{}",
        signalbox_contract::ROUTER_PREFIX,
        signalbox_contract::CONTRACT_VERSION
    );
    assert!(policy.exports().contains(&router));
    assert_eq!(policy.version().len(), 64);
}

#[test]
fn policies_say_whether_they_want_outcomes() {
    let load = |name: &str| engine().load_file(&wasm(name)).unwrap();
    // Stateless library policies opt out, so the gateway skips the call...
    assert!(
        !engine()
            .load_file(&default_policy())
            .unwrap()
            .observes_outcomes()
    );
    assert!(!load("signalbox_policy_rules").observes_outcomes());
    // ...while a learning policy (and any that does not say) is called.
    assert!(load("signalbox_policy_bandit").observes_outcomes());
    assert!(load("signalbox_fixture_hostile").observes_outcomes());
}

#[test]
fn each_wrong_input_gets_its_own_error() {
    let e = engine();
    assert!(matches!(
        e.load(b"definitely not wasm"),
        Err(LoadError::NotWasm)
    ));
    assert!(matches!(
        e.load(b"\0asm\x01\0\0\0"),
        Err(LoadError::CoreModule)
    ));
    match e.load_file(&wasm("signalbox_fixture_other_world")) {
        Err(LoadError::NotAPolicy { exports }) => assert_eq!(exports, "greet"),
        other => panic!("expected NotAPolicy, got {other:?}"),
    }
    let err = e
        .load_file(&wasm("signalbox_fixture_future_contract"))
        .unwrap_err();
    assert!(matches!(err, LoadError::ContractMismatch { .. }));
    assert!(
        err.to_string().contains(
            "built for signalbox:policy@0.5.0, host speaks signalbox:policy@0.4.0 (and 0.1.0, 0.2.0, 0.3.0)"
        ),
        "{err}"
    );
    // A component header with garbage after it fails validation, not the header check.
    assert!(matches!(
        e.load(b"\0asm\x0d\0\x01\0garbage"),
        Err(LoadError::Invalid(_))
    ));
}

#[test]
fn the_embedded_default_policy_loads() {
    let policy = engine().load(signalbox::embedded::DEFAULT_POLICY).unwrap();
    let from_file = engine().load_file(&default_policy()).unwrap();
    assert_eq!(policy.version(), from_file.version());
}

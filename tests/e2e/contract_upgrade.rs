//! Components built for contract 0.1.0, and state directories written by the gateway
//! that spoke it, keep working on this gateway (fixtures in
//! `tests/fixtures/contract-0.1.0/`, written by that release and never rebuilt).

use crate::fake_upstream::closed_port_url;
use crate::gateway_support::*;
use crate::support::{engine, healthy, request, targets};
use serde_json::json;
use signalbox::policy::{Ending, Outcome, RouteDecision, TenantContext};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/contract-0.1.0")
}

fn count(context: &TenantContext, key: &str) -> u64 {
    context
        .state
        .get(key)
        .and_then(|v| serde_json::from_slice(&v).ok())
        .unwrap_or(0)
}

fn outcome(ending: Ending, target: Option<u32>, failed: &[u32], status: u16) -> Outcome {
    Outcome {
        request_id: "r-1".into(),
        ending,
        target,
        failed_targets: failed.to_vec(),
        status,
        latency_ms: 10,
        ttft_ms: None,
        input_tokens: 5,
        output_tokens: 7,
        cost_usd: 0.001,
        escalated_targets: Vec::new(),
    }
}

#[test]
fn a_0_1_component_loads_routes_hears_outcomes_and_keeps_state() {
    let policy = engine()
        .load_file(&fixtures().join("outcome_counter.wasm"))
        .unwrap();
    assert_eq!(policy.contract_version(), "0.1.0");
    assert!(
        policy
            .exports()
            .iter()
            .any(|e| e == "signalbox:policy/router@0.1.0")
    );
    let context = TenantContext::new("acme");
    let binding = policy.bind(context.clone(), "{}", targets()).unwrap();
    let routed = binding.route(&request("m", &[]), &healthy(4)).unwrap();
    assert_eq!(
        routed,
        RouteDecision::Route {
            targets: vec![0, 1, 2, 3],
            reason: "outcomes=0 ok=0 failed=0 feedback=0".into()
        }
    );

    binding
        .on_outcome(&outcome(Ending::Completed, Some(1), &[0], 200))
        .unwrap();
    // Every attempt failed: 0.1.0 hears it as its last target failing.
    binding
        .on_outcome(&outcome(Ending::Failed, None, &[2, 3], 503))
        .unwrap();
    // Nothing tried: 0.1.0 has no way to say it, so it hears nothing.
    binding
        .on_outcome(&outcome(Ending::Rejected, None, &[], 403))
        .unwrap();
    assert_eq!(count(&context, "outcomes"), 2);
    assert_eq!(count(&context, "ok"), 1);
    assert_eq!(count(&context, "failed"), 1);
    match binding.route(&request("m", &[]), &healthy(4)).unwrap() {
        RouteDecision::Route { reason, .. } => {
            assert_eq!(reason, "outcomes=2 ok=1 failed=1 feedback=0")
        }
        other => panic!("{other:?}"),
    }
}

/// Copies `from` into `to`, recursively.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[tokio::test]
async fn a_state_directory_written_before_the_upgrade_comes_back_whole() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    copy_dir(&fixtures().join("state"), &state);
    let hash = signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(KEY));
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"

[[providers]]
name = "simulated"
kind = "simulated"
simulated = {{ latency_ms = 1, tokens_per_second = 10000, error_rate = 0.0 }}

[[providers]]
name = "down"
kind = "openai"
base_url = "{down}"

[[targets]]
id = "sim"
provider = "simulated"
model = "m"
input_price = 1.0
output_price = 2.0
context_window = 100000

[[targets]]
id = "down"
provider = "down"
model = "m"
connect_timeout_ms = 500

[[tenants]]
id = "acme"
key_hashes = ["{hash}"]
policy = '{policy}'
safe_route = ["sim"]

[admin]
state_dir = '{state}'
"#,
        down = closed_port_url(),
        policy = fixtures().join("outcome_counter.wasm").display(),
        state = state.display(),
    );
    let gw = TestGateway::start(&toml).await;
    let routing = gw.gateway.tenants["acme"].policy.current();
    let active = routing.pick("any");
    assert_eq!(active.binding.policy().contract_version(), "0.1.0");
    assert_eq!(
        active.version(),
        "2af3c07d71c459a76355d48ff68d5cbf07b521736e701ce81c1387e8b6272f87"
    );

    // What the policy learned before the upgrade is there, and it routes.
    let body = json!({"model": "m", "messages": [{"role": "user", "content": "Hello"}]});
    let first = chat(&gw, &body).await;
    assert_eq!(first.status, 200, "{}", first.text());
    assert_eq!(
        first.header("x-signalbox-route-reason"),
        "outcomes=4 ok=4 failed=0 feedback=0"
    );
    // A request no target answers reaches it as its last target failing.
    let failed = send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(body.to_string().as_bytes()),
        &[("x-signalbox-route", "1")],
    )
    .await;
    assert_eq!(failed.status, 503, "{}", failed.text());
    let context = active.binding.tenant();
    for _ in 0..500 {
        if count(context, "outcomes") >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(count(context, "outcomes"), 6);
    assert_eq!(count(context, "ok"), 5);
    assert_eq!(count(context, "failed"), 1);
}

/// A component built for an older contract (`tests/fixtures/contract-<version>/`,
/// built before the next version was published and never rebuilt).
fn fixture_of(version: &str, name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../tests/fixtures/contract-{version}"))
        .join(name)
}

fn arm(context: &TenantContext, target: &str) -> Vec<f64> {
    context
        .state
        .get(&format!("bandit/arm/all/{target}"))
        .and_then(|v| signalbox_contract::parse_counters(&v))
        .unwrap_or_default()
}

#[test]
fn a_0_2_bandit_and_its_successors_share_what_was_learned() {
    let old = engine()
        .load_file(&fixture_of("0.2.0", "bandit.wasm"))
        .unwrap();
    assert_eq!(old.contract_version(), "0.2.0");
    let middle = engine()
        .load_file(&fixture_of("0.3.0", "bandit.wasm"))
        .unwrap();
    assert_eq!(middle.contract_version(), "0.3.0");
    assert!(!middle.reviews_answers());
    let new = engine()
        .load_file(&crate::support::wasm("signalbox_policy_bandit"))
        .unwrap();
    assert_eq!(new.contract_version(), signalbox_contract::CONTRACT_VERSION);
    let context = TenantContext::new("acme");
    let config = r#"{"cost_weight": 0}"#;
    let outcome = |id: &str, target: u32| Outcome {
        request_id: id.into(),
        ..outcome(Ending::Completed, Some(target), &[], 200)
    };

    // The 0.2.0 bandit routes and counts an outcome with `state-get` and `state-set`.
    let before = old.bind(context.clone(), config, targets()).unwrap();
    assert!(matches!(
        before.route(&request("m", &[]), &healthy(4)).unwrap(),
        RouteDecision::Route { .. }
    ));
    before.on_outcome(&outcome("r-1", 1)).unwrap();
    assert_eq!(arm(&context, "mini"), [1.0, 1.0]);

    // The 0.3.0 bandit, bound to the same tenant, adds to the same counters with
    // `state-add`, runs unchanged on this host and accepts every answer (0.3.0 has no
    // review).
    let between = middle.bind(context.clone(), config, targets()).unwrap();
    between.on_outcome(&outcome("r-2", 1)).unwrap();
    assert_eq!(arm(&context, "mini"), [2.0, 2.0]);
    assert!(matches!(
        between.route(&request("m", &[]), &healthy(4)).unwrap(),
        RouteDecision::Route { .. }
    ));

    // The current build, on the same counters; feedback for the request the 0.2.0 one
    // counted replaces its reward.
    let after = new.bind(context.clone(), config, targets()).unwrap();
    after.on_outcome(&outcome("r-3", 1)).unwrap();
    assert_eq!(arm(&context, "mini"), [3.0, 3.0]);
    after
        .on_feedback(&signalbox::policy::Feedback {
            request_id: "r-1".into(),
            target: 1,
            score: 0.25,
        })
        .unwrap();
    assert_eq!(arm(&context, "mini"), [3.0, 2.25]);
    assert!(matches!(
        after.route(&request("m", &[]), &healthy(4)).unwrap(),
        RouteDecision::Route { .. }
    ));
}

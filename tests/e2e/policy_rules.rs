//! `policies/rules` through the gateway, the engine and `policy check`.

use crate::fake_upstream::{FakeUpstream, Wire, closed_port_url};
use crate::gateway_support::*;
use serde_json::{Value, json};
use signalbox::policy::{RouteDecision, TenantContext, sample_request, sample_signals};

fn policy() -> std::path::PathBuf {
    crate::support::wasm("signalbox_policy_rules")
}

/// The gateway's default 2 ms policy deadline can be missed when the test machine is
/// busy, and a missed deadline takes the safe route instead: give the policy room, so
/// the test sees only the policy's own decisions.
const ROOMY_ENGINE: &str = "[engine]\ndeadline_ms = 100\n\n";

/// The tenant's policy and its rule table, written as TOML in the gateway config.
fn rules_tenant() -> String {
    format!(
        r#"policy = "{}"

[tenants.policy_config]
default = ["general"]

[[tenants.policy_config.rules]]
name = "free-tier"
targets = ["cheap", "general"]
[tenants.policy_config.rules.metadata]
user-tier = "free"

[[tenants.policy_config.rules]]
name = "debugging"
keywords = ["stack trace", "segfault"]
targets = ["coder", "general"]

[[tenants.policy_config.rules]]
name = "tagged-code"
targets = ["coder"]
[tenants.policy_config.rules.metadata]
tag = "code"

[[tenants.policy_config.rules]]
name = "long"
min_input_tokens = 2000
targets = ["general"]

[[tenants.policy_config.rules]]
name = "fast-streams"
model = ["fast", "quick"]
stream = true
targets = ["cheap"]
"#,
        policy().display()
    )
}

fn ask(model: &str, text: &str) -> Value {
    json!({"model": model, "messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": text},
    ]})
}

async fn post(gw: &TestGateway, body: &Value, headers: &[(&str, &str)]) -> Reply {
    send_with(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(body.to_string().as_bytes()),
        headers,
    )
    .await
}

fn route(reply: &Reply) -> (u16, String, String) {
    (
        reply.status,
        reply.header("x-signalbox-target").to_owned(),
        reply.header("x-signalbox-route-reason").to_owned(),
    )
}

fn expect(target: &str, reason: &str) -> (u16, String, String) {
    (200, target.to_owned(), reason.to_owned())
}

#[tokio::test]
async fn rules_route_by_metadata_keywords_size_and_stream_first_match_wins() {
    let general = FakeUpstream::start(Wire::OpenAi).await;
    let cheap = FakeUpstream::start(Wire::OpenAi).await;
    let coder = FakeUpstream::start(Wire::OpenAi).await;
    let toml = config(
        &[
            ("p-general", "openai", &format!("{}/v1", general.url())),
            ("p-cheap", "openai", &format!("{}/v1", cheap.url())),
            ("p-coder", "openai", &format!("{}/v1", coder.url())),
        ],
        &[
            ("general", "p-general", "gpt-4o"),
            ("cheap", "p-cheap", "gpt-4o-mini"),
            ("coder", "p-coder", "qwen-coder"),
        ],
        &rules_tenant(),
    );
    let gw = TestGateway::start(&format!("{ROOMY_ENGINE}{toml}")).await;

    // No rule matches: the default route.
    let reply = post(&gw, &ask("gpt-4o", "Hello"), &[]).await;
    assert_eq!(route(&reply), expect("general", "rule:default"));

    // A metadata header, value case ignored.
    let reply = post(
        &gw,
        &ask("gpt-4o", "Hello"),
        &[("x-signalbox-user-tier", "Free")],
    )
    .await;
    assert_eq!(route(&reply), expect("cheap", "rule:free-tier"));
    // The served model is the target's, whatever was asked for.
    assert_eq!(reply.json()["model"], "gpt-4o-mini");

    // A keyword in the last user message, any case.
    let reply = post(&gw, &ask("gpt-4o", "Here is the STACK TRACE: ..."), &[]).await;
    assert_eq!(route(&reply), expect("coder", "rule:debugging"));

    // Both the tier and a keyword match: the earlier rule wins.
    let reply = post(
        &gw,
        &ask("gpt-4o", "a segfault"),
        &[("x-signalbox-user-tier", "free")],
    )
    .await;
    assert_eq!(route(&reply), expect("cheap", "rule:free-tier"));

    // A routing tag among several, from the header.
    let reply = post(
        &gw,
        &ask("gpt-4o", "Hello"),
        &[("x-signalbox-tag", "eu, code")],
    )
    .await;
    assert_eq!(route(&reply), expect("coder", "rule:tagged-code"));

    // Estimated input tokens: about 4 bytes per token.
    let reply = post(&gw, &ask("gpt-4o", &"lorem ipsum ".repeat(800)), &[]).await;
    assert_eq!(route(&reply), expect("general", "rule:long"));

    // Model alias and stream, both required.
    let mut body = ask("quick", "Hello");
    let reply = post(&gw, &body, &[]).await;
    assert_eq!(route(&reply), expect("general", "rule:default"));
    body["stream"] = json!(true);
    let reply = post(&gw, &body, &[]).await;
    assert_eq!(route(&reply), expect("cheap", "rule:fast-streams"));
    assert!(reply.text().ends_with("data: [DONE]\n\n"));

    assert_eq!(
        (general.hits(), cheap.hits(), coder.hits()),
        (3, 3, 2),
        "each request reached exactly the upstream its rule named"
    );
}

#[tokio::test]
async fn a_rule_target_list_is_an_ordered_fallback_list() {
    let general = FakeUpstream::start(Wire::OpenAi).await;
    let cheap = FakeUpstream::start(Wire::OpenAi).await;
    let toml = config(
        &[
            ("p-general", "openai", &format!("{}/v1", general.url())),
            ("p-cheap", "openai", &format!("{}/v1", cheap.url())),
            ("p-down", "openai", &closed_port_url()),
        ],
        &[
            ("general", "p-general", "gpt-4o"),
            ("cheap", "p-cheap", "gpt-4o-mini"),
            ("coder", "p-down", "qwen-coder"),
        ],
        &rules_tenant(),
    );
    let gw = TestGateway::start(&format!("{ROOMY_ENGINE}{toml}")).await;
    // `debugging` names coder, then general: coder's upstream refuses connections.
    let reply = post(&gw, &ask("gpt-4o", "segfault again"), &[]).await;
    assert_eq!(route(&reply), expect("general", "rule:debugging"));
    assert_eq!(reply.header("x-signalbox-attempts"), "2");
}

#[test]
fn a_broken_rule_table_is_refused_at_activation_naming_the_field() {
    let compiled = crate::support::engine().load_file(&policy()).unwrap();
    let err = compiled
        .bind(
            TenantContext::new("acme"),
            r#"{"rules": [{"stream": true, "targets": ["mini"]}, {"regex": "([a-z]+", "targets": ["mini"]}], "default": ["mini"]}"#,
            crate::support::targets(),
        )
        .unwrap_err();
    assert_eq!(err.kind(), "bad_config");
    assert!(err.to_string().contains("`rules[1].regex`"), "{err}");

    let err = compiled
        .bind(
            TenantContext::new("acme"),
            r#"{"rules": [{"stream": true, "targets": ["gpt-5"]}], "default": ["mini"]}"#,
            crate::support::targets(),
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("`rules[0].targets[0]`: no target has the id `gpt-5`"),
        "{err}"
    );
}

/// `examples/policies/rules.json` against the ten sample targets of `policy check`.
#[test]
fn the_example_config_passes_policy_check_and_routes_the_sample() {
    let example = example_config("rules");
    let out = policy_check(&policy(), &example);
    assert!(out.0, "{}", out.1);
    // The sample request is tagged `code`: the `code` rule, whose second target
    // (anthropic-sonnet) is unhealthy in the sample signals and so goes last.
    assert!(
        out.1
            .contains("-> vllm-qwen-coder, openai-gpt-4o, anthropic-sonnet (rule:code)"),
        "{}",
        out.1
    );
    // An unclosed group in the `sql` rule's regex.
    let bad = example.replace(r#""(?i)"#, r#""(?i)("#);
    let out = policy_check(&policy(), &bad);
    assert!(!out.0 && out.1.contains("`rules[4].regex`"), "{}", out.1);

    let binding = crate::support::bind(
        &policy(),
        "acme",
        &example,
        signalbox::policy::sample_targets(),
    );
    let decision = binding
        .route(&sample_request("gpt-4o", 400), &sample_signals(10))
        .unwrap();
    assert!(
        matches!(decision, RouteDecision::Route { .. }),
        "{decision:?}"
    );
}

fn example_config(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../examples/policies/{name}.json"));
    std::fs::read_to_string(path).unwrap()
}

/// Runs `signalbox policy check <wasm> --config <json>`: (success, output).
fn policy_check(wasm: &std::path::Path, config: &str) -> (bool, String) {
    crate::support::policy_check_output(wasm, config)
}

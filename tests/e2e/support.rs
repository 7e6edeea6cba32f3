//! Shared set-up: the policy components built from `policies/`, an engine, a
//! realistic target list and request builder.

use signalbox::policy::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

/// Path of a policy component built from `policies/` (crate name with underscores).
///
/// The host's build script builds only the default policy; the others come from the
/// `build-policies` step of `tests/run`, into the directory the build script names. A
/// missing one fails the test with the command that builds it, rather than with a
/// confusing load error.
pub fn wasm(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("SIGNALBOX_POLICY_WASM_DIR")).join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "policy component {} is missing: build the policy components with \
         `cargo build-policies` from the workspace root (as tests/run does)",
        path.display()
    );
    path
}

pub fn default_policy() -> PathBuf {
    wasm("signalbox_policy_default")
}

pub fn hostile_policy() -> PathBuf {
    wasm("signalbox_fixture_hostile")
}

/// One engine for the whole test binary, as in the gateway (engines are heavy).
pub fn engine() -> &'static PolicyEngine {
    static ENGINE: OnceLock<PolicyEngine> = OnceLock::new();
    // A deadline well above the default: the tests share two cores with parallel
    // tests and builds, and a call preempted for a few milliseconds must not fail.
    // Deadline tests read the configured value, so they test exactly this one.
    ENGINE.get_or_init(|| {
        PolicyEngine::new(EngineConfig {
            deadline: std::time::Duration::from_millis(20),
            ..EngineConfig::default()
        })
        .unwrap()
    })
}

pub fn target(id: &str, model: &str, price: (f64, f64), window: u32, tags: &[&str]) -> TargetInfo {
    TargetInfo {
        id: id.into(),
        provider: "openai".into(),
        model: model.into(),
        input_price: price.0,
        output_price: price.1,
        context_window: window,
        tags: tags.iter().map(|t| t.to_string()).collect(),
    }
}

/// Four targets over two models, one of them in the EU.
pub fn targets() -> Vec<TargetInfo> {
    vec![
        target("gpt-4o", "gpt-4o", (2.5, 10.0), 128_000, &["code"]),
        target("mini", "gpt-4o-mini", (0.15, 0.6), 16_000, &[]),
        target("mini-eu", "gpt-4o-mini", (0.2, 0.8), 16_000, &["region:eu"]),
        target("claude", "claude-sonnet", (3.0, 15.0), 200_000, &["code"]),
    ]
}

pub fn healthy(n: usize) -> Vec<TargetSignals> {
    vec![signals(true); n]
}

pub fn signals(healthy: bool) -> TargetSignals {
    TargetSignals {
        healthy,
        in_flight: 0,
        capacity: 0,
        latency_ms: 0.0,
        ttft_ms: 0.0,
        error_rate: 0.0,
        rate_limited_ms: 0,
    }
}

pub fn request(model: &str, metadata: &[(&str, &str)]) -> RouteRequest {
    request_with(
        model,
        30,
        metadata,
        vec![
            ChatMessage::new(Role::System, "You are terse."),
            ChatMessage::new(Role::User, "Hello there"),
        ],
    )
}

pub fn request_with(
    model: &str,
    input_tokens: u32,
    metadata: &[(&str, &str)],
    messages: Vec<ChatMessage>,
) -> RouteRequest {
    RouteRequest::new(
        RequestFields {
            id: "req-1".into(),
            endpoint: Endpoint::Chat,
            model: model.into(),
            input_tokens,
            max_output_tokens: Some(256),
            stream: false,
            has_tools: false,
            metadata: metadata
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        },
        messages,
    )
}

/// Binds `path` for a fresh tenant named `tenant`.
pub fn bind(path: &Path, tenant: &str, config: &str, targets: Vec<TargetInfo>) -> PolicyBinding {
    engine()
        .load_file(path)
        .unwrap()
        .bind(TenantContext::new(tenant), config, targets)
        .unwrap()
}

/// The target ids a decision routes to, or the rejection status.
pub fn ids(binding: &PolicyBinding, decision: RouteDecision) -> Result<Vec<String>, u16> {
    match decision {
        RouteDecision::Route { targets, .. } => Ok(targets
            .iter()
            .map(|&i| binding.targets()[i as usize].id.clone())
            .collect()),
        RouteDecision::Reject { status, .. } => Err(status),
    }
}

/// Runs the `signalbox` binary with `args` (and no `RUST_LOG` from the test's
/// environment) to completion.
pub fn signalbox(args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
}

/// A finished command's stdout and stderr together.
pub fn output_text(o: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Runs `signalbox policy check <component> --config <config>` once: whether it
/// succeeded, and its stdout and stderr together.
pub fn policy_check_output(component: &Path, config: &str) -> (bool, String) {
    let component = component.to_string_lossy();
    let out = signalbox(&["policy", "check", &component, "--config", config]);
    (out.status.success(), output_text(&out))
}

/// Runs `signalbox policy check <component> --config <config>` and returns its output
/// when it succeeds; panics with the output otherwise. A smoke call that missed its
/// 2 ms deadline is retried (twice at most): on a loaded test machine a debug build can
/// be descheduled mid-call, which says nothing about the policy.
pub fn policy_check(component: &Path, config: &str) -> String {
    let mut last = String::new();
    for _ in 0..3 {
        let (ok, text) = policy_check_output(component, config);
        if ok {
            return text;
        }
        last = text;
        if !last.contains("deadline") {
            break;
        }
    }
    panic!("policy check failed: {last}");
}

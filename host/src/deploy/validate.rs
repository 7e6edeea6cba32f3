//! Checks a policy version before any request depends on it: it loads (contract,
//! compile), accepts its config, and answers smoke calls against the tenant's real
//! targets with known targets, within the deadline.

use super::DeployError;
use crate::policy::{
    ChatMessage, CompiledPolicy, Endpoint, PolicyBinding, RequestFields, Role, RouteRequest,
    TargetInfo, TargetSignals, TenantContext,
};

/// Distinct models asked for in smoke calls, at most.
const SMOKE_MODELS: usize = 4;

/// Binds `policy` with `config` for the tenant and runs the smoke calls.
pub fn bind_checked(
    policy: &CompiledPolicy,
    tenant: &TenantContext,
    config: &str,
    targets: &[TargetInfo],
    signals: &[TargetSignals],
) -> Result<PolicyBinding, DeployError> {
    check_json(config)?;
    let binding = policy
        .bind(tenant.clone(), config, targets.to_vec())
        .map_err(DeployError::Activation)?;
    for request in smoke_requests(targets) {
        binding.route(&request, signals).map_err(|e| {
            DeployError::Smoke(format!(
                "a `{}` request: {e} ({})",
                request.model(),
                e.kind()
            ))
        })?;
    }
    Ok(binding)
}

/// The config must be a JSON object (policies read their settings from one).
pub fn check_json(config: &str) -> Result<(), DeployError> {
    let text = if config.trim().is_empty() {
        "{}"
    } else {
        config
    };
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(_)) => Ok(()),
        Ok(_) => Err(DeployError::ConfigNotJson(
            "the config must be a JSON object".into(),
        )),
        Err(e) => Err(DeployError::ConfigNotJson(e.to_string())),
    }
}

/// One ordinary chat request per model the tenant serves (a few at most): what a
/// policy sees on its first live request.
fn smoke_requests(targets: &[TargetInfo]) -> Vec<RouteRequest> {
    let mut models: Vec<&str> = Vec::new();
    for t in targets {
        if !models.contains(&t.model.as_str()) && models.len() < SMOKE_MODELS {
            models.push(&t.model);
        }
    }
    if models.is_empty() {
        models.push("auto");
    }
    let messages: std::sync::Arc<[ChatMessage]> = vec![
        ChatMessage::new(Role::System, "You are a helpful assistant."),
        ChatMessage::new(Role::User, "Say hello in one short sentence."),
    ]
    .into();
    models
        .into_iter()
        .map(|model| {
            RouteRequest::new(
                RequestFields {
                    id: "smoke".into(),
                    endpoint: Endpoint::Chat,
                    model: model.to_owned(),
                    input_tokens: 20,
                    max_output_tokens: Some(64),
                    stream: false,
                    has_tools: false,
                    metadata: Vec::new(),
                },
                messages.clone(),
            )
        })
        .collect()
}

//! The admin API's paths. Every tenant path checks the token's scope first; the
//! lifecycle operations (which compile and run policies) run on the blocking pool.
//!
//! - `GET  /admin/tenants/{t}/policies` — versions, active binding, candidate, counters
//! - `POST /admin/tenants/{t}/policies?name=N&config=JSON` — upload (body: the wasm)
//! - `POST /admin/tenants/{t}/activate` — `{"version", "config"}`
//! - `POST /admin/tenants/{t}/rollback`
//! - `POST /admin/tenants/{t}/candidate` — `{"version", "config", "mode": "shadow" |
//!   "canary", "percent"}`; `GET` reports it
//! - `POST /admin/tenants/{t}/candidate/promote`, `.../candidate/discard`
//! - `GET /metrics` — Prometheus text (operator tokens only)
//! - `GET /admin/usage?tenant=&from=&to=&group_by=` — usage ledger aggregates

use super::Admin;
use super::auth::Scope;
use crate::deploy::{CandidateMode, DeployError, Source};
use crate::gateway::Tenant;
use crate::openai::{ApiError, ResponseBody, json};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use std::sync::Arc;

/// Largest policy upload accepted.
pub const MAX_UPLOAD_BYTES: usize = 32 << 20;

pub(super) async fn handle(
    admin: &Arc<Admin>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match segments.as_slice() {
        ["healthz"] => json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        ["metrics"] if request.method() == Method::GET => {
            metrics(admin, &request).unwrap_or_else(ApiError::into_response)
        }
        ["admin", "usage"] if request.method() == Method::GET => {
            let admin = admin.clone();
            usage(&admin, &request)
                .await
                .unwrap_or_else(ApiError::into_response)
        }
        ["admin", "tenants", tenant, rest @ ..] => {
            let tenant = (*tenant).to_owned();
            let rest: Vec<String> = rest.iter().map(|s| (*s).to_owned()).collect();
            tenant_request(admin, request, &tenant, &rest)
                .await
                .unwrap_or_else(ApiError::into_response)
        }
        _ => ApiError::unknown_route(request.method().as_str(), &path).into_response(),
    }
}

async fn tenant_request(
    admin: &Arc<Admin>,
    request: Request<Incoming>,
    tenant_id: &str,
    rest: &[String],
) -> Result<Response<ResponseBody>, ApiError> {
    let scope = token_scope(admin, &request)?;
    if !scope.allows(tenant_id) {
        return Err(error(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "this token may not act on that tenant",
        ));
    }
    let tenant = admin
        .gateway
        .tenants
        .get(tenant_id)
        .cloned()
        .ok_or_else(|| {
            error(
                StatusCode::NOT_FOUND,
                "tenant_not_found",
                format!("no tenant `{tenant_id}`"),
            )
        })?;
    debug_assert!(scope == Scope::Operator || scope.allows(&tenant.id));

    let method = request.method().clone();
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    let allowed = match rest.as_slice() {
        ["policies"] => &[Method::GET, Method::POST][..],
        ["candidate"] => &[Method::GET, Method::POST][..],
        ["activate"] | ["rollback"] | ["candidate", "promote"] | ["candidate", "discard"] => {
            &[Method::POST][..]
        }
        _ => {
            return Err(ApiError::unknown_route(
                method.as_str(),
                request.uri().path(),
            ));
        }
    };
    if !allowed.contains(&method) {
        return Err(ApiError::method_not_allowed(
            method.as_str(),
            request.uri().path(),
        ));
    }

    let gateway = admin.gateway.clone();
    match (method, rest.as_slice()) {
        (Method::GET, ["policies"]) => Ok(json(
            StatusCode::OK,
            &tenant.policy.report(&gateway.deployer),
        )),
        (Method::GET, ["candidate"]) => {
            let report = tenant.policy.report(&gateway.deployer);
            Ok(json(StatusCode::OK, &report["candidate"]))
        }
        (Method::POST, ["policies"]) => {
            let query = request.uri().query().unwrap_or("").to_owned();
            let (name, config) = upload_params(&query);
            let (parts, body) = request.into_parts();
            let bytes = crate::server::read_body(body, &parts.headers, MAX_UPLOAD_BYTES).await?;
            let meta = blocking(&tenant, move |t| {
                let signals = gateway.signals.snapshot(&t.targets);
                let source = Source {
                    name: &name,
                    bytes: &bytes,
                    config: &config,
                };
                t.policy.upload(&gateway.deployer, source, &signals)
            })
            .await?;
            Ok(json(
                StatusCode::CREATED,
                &serde_json::to_value(meta).unwrap_or_default(),
            ))
        }
        (Method::POST, ["activate"]) => {
            let body: VersionRequest = read_json(request).await?;
            let d = blocking(&tenant, move |t| {
                let signals = gateway.signals.snapshot(&t.targets);
                t.policy
                    .activate(&gateway.deployer, &body.version, &body.config(), &signals)
            })
            .await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"active": {"version": d.version(), "label": d.label}}),
            ))
        }
        (Method::POST, ["rollback"]) => {
            let d = blocking(&tenant, move |t| t.policy.rollback(&gateway.deployer)).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"active": {"version": d.version(), "label": d.label}}),
            ))
        }
        (Method::POST, ["candidate"]) => {
            let body: CandidateRequest = read_json(request).await?;
            let mode = match (body.mode.as_str(), body.percent) {
                ("shadow", _) => CandidateMode::Shadow,
                ("canary", Some(p)) => CandidateMode::Canary(p / 100.0),
                ("canary", None) => {
                    return Err(ApiError::invalid_request("a canary needs `percent`"));
                }
                (other, _) => {
                    return Err(ApiError::invalid_request(format!(
                        "mode must be `shadow` or `canary`, not `{other}`"
                    )));
                }
            };
            let config = body.version.config();
            let d = blocking(&tenant, move |t| {
                let signals = gateway.signals.snapshot(&t.targets);
                t.policy.start_candidate(
                    &gateway.deployer,
                    &body.version.version,
                    &config,
                    mode,
                    &signals,
                )
            })
            .await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"candidate": {"version": d.version(), "label": d.label}}),
            ))
        }
        (Method::POST, ["candidate", "promote"]) => {
            let d = blocking(&tenant, move |t| t.policy.promote(&gateway.deployer)).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"active": {"version": d.version(), "label": d.label}}),
            ))
        }
        (Method::POST, ["candidate", "discard"]) => {
            blocking(&tenant, move |t| t.policy.discard(&gateway.deployer)).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"candidate": null}),
            ))
        }
        _ => Err(ApiError::internal("unrouted admin path")),
    }
}

/// What the request's admin token may do; 401 without a valid one.
fn token_scope(admin: &Admin, request: &Request<Incoming>) -> Result<Scope, ApiError> {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    admin
        .tokens
        .scope(header)
        .ok_or_else(|| ApiError::unauthorized("missing or invalid admin token"))
}

/// `GET /admin/usage?tenant=&from=&to=&group_by=target|model|key|day`: ledger
/// aggregates. A tenant-scoped token sees its own tenant only.
async fn usage(
    admin: &Arc<Admin>,
    request: &Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    let scope = token_scope(admin, request)?;
    let mut query = crate::ledger::UsageQuery {
        tenant: None,
        from_ms: None,
        to_ms: None,
        group_by: crate::ledger::GroupBy::Target,
    };
    for (k, v) in form_urlencoded::parse(request.uri().query().unwrap_or("").as_bytes()) {
        let bad = |e: String| ApiError::invalid_request(format!("`{k}`: {e}"));
        match &*k {
            "tenant" => query.tenant = Some(v.into_owned()),
            "from" => query.from_ms = Some(crate::ledger::parse_time(&v).map_err(bad)?),
            "to" => query.to_ms = Some(crate::ledger::parse_time(&v).map_err(bad)?),
            "group_by" => query.group_by = v.parse().map_err(bad)?,
            other => {
                return Err(ApiError::invalid_request(format!(
                    "unknown parameter `{other}` (tenant, from, to, group_by)"
                )));
            }
        }
    }
    match (&scope, &query.tenant) {
        (Scope::Tenant(own), Some(asked)) if own != asked => {
            return Err(error(
                StatusCode::FORBIDDEN,
                "permission_denied",
                "this token may not read that tenant's usage",
            ));
        }
        (Scope::Tenant(own), None) => query.tenant = Some(own.clone()),
        _ => {}
    }
    let gateway = admin.gateway.clone();
    let rows = tokio::task::spawn_blocking(move || match &gateway.ledger {
        Some(ledger) => ledger.query(&query).map(Some),
        None => Ok(None),
    })
    .await
    .map_err(|_| ApiError::internal("the query was interrupted"))?
    .map_err(|e| {
        tracing::error!(error = %e, "usage query failed");
        ApiError::internal("the usage ledger could not be read")
    })?
    .ok_or_else(|| {
        error(
            StatusCode::NOT_FOUND,
            "ledger_disabled",
            "no usage ledger is configured ([ledger] path or [admin] state_dir)",
        )
    })?;
    Ok(json(StatusCode::OK, &serde_json::json!({ "data": rows })))
}

/// `GET /metrics`: Prometheus text, for operator tokens (it spans every tenant).
fn metrics(admin: &Admin, request: &Request<Incoming>) -> Result<Response<ResponseBody>, ApiError> {
    if let Scope::Tenant(_) = token_scope(admin, request)? {
        return Err(error(
            StatusCode::FORBIDDEN,
            "permission_denied",
            "metrics span every tenant: use an operator token",
        ));
    }
    let gateway = &admin.gateway;
    for (i, target) in gateway.targets.iter().enumerate() {
        let (in_flight, circuit) = gateway.signals.gauges(i);
        gateway
            .metrics
            .target_state(&target.name, in_flight, circuit);
    }
    let mut response = Response::new(crate::openai::full(gateway.metrics.render()));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    Ok(response)
}

/// `{"version": "...", "config": {...}}`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionRequest {
    version: String,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

impl VersionRequest {
    fn config(&self) -> String {
        self.config
            .as_ref()
            .map_or_else(|| "{}".to_owned(), serde_json::Value::to_string)
    }
}

#[derive(Deserialize)]
struct CandidateRequest {
    #[serde(flatten)]
    version: VersionRequest,
    mode: String,
    #[serde(default)]
    percent: Option<f64>,
}

/// `name` and `config` from an upload's query string.
fn upload_params(query: &str) -> (String, String) {
    let mut name = "policy".to_owned();
    let mut config = "{}".to_owned();
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        match &*k {
            "name" if !v.is_empty() => name = v.into_owned(),
            "config" => config = v.into_owned(),
            _ => {}
        }
    }
    (name, config)
}

async fn read_json<T: serde::de::DeserializeOwned>(
    request: Request<Incoming>,
) -> Result<T, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes = crate::server::read_body(body, &parts.headers, 1 << 20).await?;
    serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid_request(format!("invalid JSON body: {e}")))
}

/// Runs a lifecycle operation on the blocking pool (it may compile a component).
async fn blocking<T: Send + 'static>(
    tenant: &Arc<Tenant>,
    op: impl FnOnce(&Tenant) -> Result<T, DeployError> + Send + 'static,
) -> Result<T, ApiError> {
    let tenant = tenant.clone();
    tokio::task::spawn_blocking(move || op(&tenant))
        .await
        .map_err(|_| ApiError::internal("the operation was interrupted"))?
        .map_err(deploy_error)
}

fn deploy_error(e: DeployError) -> ApiError {
    let (status, code) = match &e {
        DeployError::Load(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_policy"),
        DeployError::ConfigNotJson(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_config"),
        DeployError::Activation(_) => (StatusCode::UNPROCESSABLE_ENTITY, "activation_failed"),
        DeployError::Smoke(_) => (StatusCode::UNPROCESSABLE_ENTITY, "smoke_call_failed"),
        DeployError::Quarantined(_) => (StatusCode::UNPROCESSABLE_ENTITY, "quarantined"),
        DeployError::BadShare => (StatusCode::UNPROCESSABLE_ENTITY, "invalid_share"),
        DeployError::UnknownVersion(_) => (StatusCode::NOT_FOUND, "version_not_found"),
        DeployError::NoHistory => (StatusCode::CONFLICT, "no_history"),
        DeployError::NoCandidate => (StatusCode::CONFLICT, "no_candidate"),
        DeployError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store_error"),
    };
    if !e.is_invalid_input() {
        tracing::error!(error = %e, "admin operation failed");
    }
    error(status, code, e.to_string())
}

fn error(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        status,
        message: message.into(),
        kind: if status.is_server_error() {
            "server_error"
        } else {
            "invalid_request_error"
        },
        code: Some(code),
        retry_after: None,
    }
}

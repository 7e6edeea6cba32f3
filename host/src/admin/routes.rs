//! The admin API's paths. Every tenant path checks the token's scope first; the
//! lifecycle operations (which compile and run policies) run on the blocking pool.
//! An unknown path is a 404, a known one with the wrong method a 405 with `Allow`.
//!
//! - `GET  /admin/tenants` — the tenants the token may act on, with their bindings
//! - `GET  /admin/tenants/{t}/policies` — versions, active binding, candidate, counters
//! - `POST /admin/tenants/{t}/policies?name=N&config=JSON` — upload (body: the wasm)
//! - `POST /admin/tenants/{t}/activate` — `{"version", "config"}` (any unique version
//!   prefix; without `config`, the version's last one)
//! - `POST /admin/tenants/{t}/rollback`
//! - `POST /admin/tenants/{t}/candidate` — `{"version", "config", "mode": "shadow" |
//!   "canary", "percent"}`; `GET` reports it
//! - `POST /admin/tenants/{t}/candidate/promote`, `.../candidate/discard`
//! - `GET /metrics` — Prometheus text (operator tokens only)
//! - `GET /admin/usage?tenant=&from=&to=&group_by=` — usage ledger aggregates

use super::Admin;
use super::auth::Scope;
use super::reports::{metrics_text, tenant_bindings, usage_rows};
use crate::deploy::{CandidateMode, DeployError, Source};
use crate::gateway::{Gateway, Tenant};
use crate::openai::{ApiError, ResponseBody, codes, json};
use crate::server::RouteTable;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;
use std::sync::{Arc, LazyLock};

/// Largest policy upload accepted.
pub const MAX_UPLOAD_BYTES: usize = 32 << 20;

/// What serves a path of the admin API.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Endpoint {
    Health,
    Metrics,
    Usage,
    Tenants,
    /// An operation on the tenant named in the path.
    Tenant(TenantOp),
}

/// The lifecycle operations on one tenant (the dashboard's actions are these too).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum TenantOp {
    Report,
    Upload,
    Activate,
    Rollback,
    ShowCandidate,
    StartCandidate,
    Promote,
    Discard,
}

/// The admin API's paths, each once, with the methods it allows.
static ROUTES: LazyLock<RouteTable<Endpoint>> = LazyLock::new(|| {
    use Endpoint::Tenant;
    use Method as M;
    RouteTable::new(&[
        ("/healthz", &[(M::GET, Endpoint::Health)]),
        ("/metrics", &[(M::GET, Endpoint::Metrics)]),
        ("/admin/usage", &[(M::GET, Endpoint::Usage)]),
        ("/admin/tenants", &[(M::GET, Endpoint::Tenants)]),
        (
            "/admin/tenants/{tenant}/policies",
            &[
                (M::GET, Tenant(TenantOp::Report)),
                (M::POST, Tenant(TenantOp::Upload)),
            ],
        ),
        (
            "/admin/tenants/{tenant}/activate",
            &[(M::POST, Tenant(TenantOp::Activate))],
        ),
        (
            "/admin/tenants/{tenant}/rollback",
            &[(M::POST, Tenant(TenantOp::Rollback))],
        ),
        (
            "/admin/tenants/{tenant}/candidate",
            &[
                (M::GET, Tenant(TenantOp::ShowCandidate)),
                (M::POST, Tenant(TenantOp::StartCandidate)),
            ],
        ),
        (
            "/admin/tenants/{tenant}/candidate/promote",
            &[(M::POST, Tenant(TenantOp::Promote))],
        ),
        (
            "/admin/tenants/{tenant}/candidate/discard",
            &[(M::POST, Tenant(TenantOp::Discard))],
        ),
    ])
});

pub(super) async fn handle(
    admin: &Arc<Admin>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    if path == "/dashboard" || path.starts_with("/dashboard/") {
        return super::dashboard::handle(admin, request).await;
    }
    let (endpoint, tenant) = match ROUTES.resolve(request.method(), &path) {
        Ok((endpoint, params)) => (endpoint, params.get("tenant").map(str::to_owned)),
        Err(unrouted) => return unrouted.into_response(request.method(), &path),
    };
    let result = match (endpoint, tenant) {
        (Endpoint::Health, _) => Ok(json(StatusCode::OK, &serde_json::json!({"status": "ok"}))),
        (Endpoint::Metrics, _) => metrics(admin, &request),
        (Endpoint::Usage, _) => usage(admin, &request).await,
        (Endpoint::Tenants, _) => tenants(admin, &request),
        (Endpoint::Tenant(op), Some(tenant)) => match token_scope(admin, &request) {
            Ok(scope) => tenant_request(admin, request, &scope, &tenant, op).await,
            Err(e) => Err(e),
        },
        (Endpoint::Tenant(_), None) => Err(ApiError::internal("a tenant path without a tenant")),
    };
    result.unwrap_or_else(ApiError::into_response)
}

/// A lifecycle operation on `tenant_id` by a caller of `scope` (an admin token's, or
/// a dashboard session's).
pub(super) async fn tenant_request(
    admin: &Arc<Admin>,
    request: Request<Incoming>,
    scope: &Scope,
    tenant_id: &str,
    op: TenantOp,
) -> Result<Response<ResponseBody>, ApiError> {
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
    debug_assert!(*scope == Scope::Operator || scope.allows(&tenant.id));

    let gateway = admin.gateway.clone();
    match op {
        TenantOp::Report => {
            let mut report = tenant
                .policy
                .report(&gateway.deployer)
                .map_err(deploy_error)?;
            // In a fleet, beside this replica's counts: the fleet's (null when Redis
            // does not answer; this replica's report stands).
            if let Some(fleet) = super::reports::fleet_counts(&gateway, &tenant).await {
                report["fleet"] = fleet;
            }
            Ok(json(StatusCode::OK, &report))
        }
        TenantOp::ShowCandidate => {
            let report = tenant
                .policy
                .report(&gateway.deployer)
                .map_err(deploy_error)?;
            Ok(json(StatusCode::OK, &report["candidate"]))
        }
        TenantOp::Upload => {
            let query = request.uri().query().unwrap_or("").to_owned();
            let (name, config) = upload_params(&query);
            let (parts, body) = request.into_parts();
            let bytes = crate::server::read_body(
                body,
                &parts.headers,
                body_limit(&gateway, MAX_UPLOAD_BYTES),
            )
            .await?;
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
        TenantOp::Activate => {
            let body: VersionRequest = read_json(request, &gateway).await?;
            let d = blocking(&tenant, move |t| {
                let signals = gateway.signals.snapshot(&t.targets);
                t.policy.activate(
                    &gateway.deployer,
                    &body.version,
                    body.config().as_deref(),
                    &signals,
                )
            })
            .await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"active": {"version": d.version(), "label": d.label}}),
            ))
        }
        TenantOp::Rollback => {
            let d = blocking(&tenant, move |t| t.policy.rollback(&gateway.deployer)).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"active": {"version": d.version(), "label": d.label}}),
            ))
        }
        TenantOp::StartCandidate => {
            let body: CandidateRequest = read_json(request, &gateway).await?;
            let mode = match (body.mode.as_str(), body.percent) {
                ("shadow", _) => CandidateMode::Shadow,
                ("canary", Some(p)) => CandidateMode::Canary(p / 100.0),
                ("canary", None) => {
                    return Err(ApiError::invalid_request(
                        codes::MISSING_PARAMETER,
                        "a canary needs `percent`",
                    ));
                }
                (other, _) => {
                    return Err(ApiError::invalid_request(
                        codes::INVALID_VALUE,
                        format!("mode must be `shadow` or `canary`, not `{other}`"),
                    ));
                }
            };
            let config = body.version.config();
            let d = blocking(&tenant, move |t| {
                let signals = gateway.signals.snapshot(&t.targets);
                t.policy.start_candidate(
                    &gateway.deployer,
                    &body.version.version,
                    config.as_deref(),
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
        TenantOp::Promote => {
            let d = blocking(&tenant, move |t| t.policy.promote(&gateway.deployer)).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"active": {"version": d.version(), "label": d.label}}),
            ))
        }
        TenantOp::Discard => {
            blocking(&tenant, move |t| t.policy.discard(&gateway.deployer)).await?;
            Ok(json(
                StatusCode::OK,
                &serde_json::json!({"candidate": null}),
            ))
        }
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

/// `GET /admin/tenants`: every tenant for an operator token, its own for a deploy
/// token, by id, each with its active binding and candidate (label and version).
fn tenants(admin: &Admin, request: &Request<Incoming>) -> Result<Response<ResponseBody>, ApiError> {
    let scope = token_scope(admin, request)?;
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({ "data": tenant_bindings(admin, &scope) }),
    ))
}

/// `GET /admin/usage?tenant=&from=&to=&group_by=target|model|key|day`: ledger
/// aggregates. A tenant-scoped token sees its own tenant only.
async fn usage(
    admin: &Arc<Admin>,
    request: &Request<Incoming>,
) -> Result<Response<ResponseBody>, ApiError> {
    let scope = token_scope(admin, request)?;
    let rows = usage_rows(admin, &scope, request.uri().query().unwrap_or("")).await?;
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
    let mut response = Response::new(crate::openai::full(metrics_text(&admin.gateway)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    Ok(response)
}

/// `{"version": "...", "config": {...}}`: the version's full id or any unique prefix;
/// without `config`, the one the version was last bound (or uploaded) with.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VersionRequest {
    version: String,
    #[serde(default)]
    config: Option<serde_json::Value>,
}

impl VersionRequest {
    fn config(&self) -> Option<String> {
        self.config.as_ref().map(serde_json::Value::to_string)
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
pub(crate) fn upload_params(query: &str) -> (String, String) {
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
    gateway: &Gateway,
) -> Result<T, ApiError> {
    let (parts, body) = request.into_parts();
    let bytes =
        crate::server::read_body(body, &parts.headers, body_limit(gateway, 1 << 20)).await?;
    serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::invalid_request(codes::INVALID_JSON, format!("invalid JSON body: {e}"))
    })
}

/// At most `bytes`, within the listeners' body timeout.
pub(super) fn body_limit(gateway: &Gateway, bytes: usize) -> crate::server::BodyLimit {
    crate::server::BodyLimit {
        bytes,
        timeout: gateway.config.server.body_read_timeout(),
    }
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
        DeployError::AmbiguousVersion { .. } => (StatusCode::CONFLICT, "ambiguous_version"),
        DeployError::NoHistory => (StatusCode::CONFLICT, "no_history"),
        DeployError::NoCandidate => (StatusCode::CONFLICT, "no_candidate"),
        DeployError::Store(_) => (StatusCode::INTERNAL_SERVER_ERROR, "store_error"),
    };
    if !e.is_invalid_input() {
        tracing::error!(error = %e, "admin operation failed");
    }
    error(status, code, e.to_string())
}

pub(super) fn error(
    status: StatusCode,
    code: &'static str,
    message: impl Into<String>,
) -> ApiError {
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The endpoint, or the refusal's status and `Allow` header.
    fn resolved(method: Method, path: &str) -> Result<Endpoint, (u16, Option<String>)> {
        ROUTES
            .resolve(&method, path)
            .map(|(e, _)| e)
            .map_err(|unrouted| {
                let response = unrouted.into_response(&method, path);
                let allow = response.headers().get(http::header::ALLOW);
                (
                    response.status().as_u16(),
                    allow.map(|v| v.to_str().unwrap().to_owned()),
                )
            })
    }

    fn wrong_method(allow: &str) -> Result<Endpoint, (u16, Option<String>)> {
        Err((405, Some(allow.to_owned())))
    }

    #[test]
    fn each_tenant_path_names_its_tenant_and_allows_its_methods() {
        use TenantOp::*;
        for (suffix, get, post) in [
            ("policies", Some(Report), Some(Upload)),
            ("candidate", Some(ShowCandidate), Some(StartCandidate)),
            ("activate", None, Some(Activate)),
            ("rollback", None, Some(Rollback)),
            ("candidate/promote", None, Some(Promote)),
            ("candidate/discard", None, Some(Discard)),
        ] {
            let path = format!("/admin/tenants/team-a/{suffix}");
            let (_, params) = ROUTES.resolve(&Method::POST, &path).unwrap();
            assert_eq!(params.get("tenant"), Some("team-a"));
            assert_eq!(
                resolved(Method::POST, &path),
                Ok(Endpoint::Tenant(post.unwrap()))
            );
            match get {
                Some(op) => assert_eq!(resolved(Method::GET, &path), Ok(Endpoint::Tenant(op))),
                None => assert_eq!(resolved(Method::GET, &path), wrong_method("POST")),
            }
            assert_eq!(
                resolved(Method::DELETE, &path),
                wrong_method(if get.is_some() { "GET, POST" } else { "POST" })
            );
        }
    }

    #[test]
    fn operator_paths_are_get_only_and_the_rest_is_unknown() {
        for path in ["/healthz", "/metrics", "/admin/usage", "/admin/tenants"] {
            assert!(resolved(Method::GET, path).is_ok(), "{path}");
            assert_eq!(resolved(Method::POST, path), wrong_method("GET"));
        }
        for path in [
            "/admin",
            "/admin/tenants/acme",
            "/admin/tenant",
            "/admin/tenants/acme/bogus",
            "/admin/tenants/acme/candidate/bogus",
        ] {
            assert_eq!(resolved(Method::GET, path), Err((404, None)), "{path}");
        }
    }
}

//! Which handler serves which path, and the steps every API request shares:
//! authenticate, bound and read the body, parse it once, admit it against quotas.

use crate::feedback::FeedbackRequest;
use crate::gateway::{Gateway, Tenant};
use crate::openai::{self, ApiError, ResponseBody};
use crate::quota::{self, QuotaError, Reservation};
use crate::routing;
use crate::tenancy::{AuthError, Caller};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::Arc;
use tracing::Instrument;

/// The request id header, on every response.
pub const HEADER_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");

pub(super) async fn handle(
    gateway: &Arc<Gateway>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let request_id = crate::request_id::next();
    // The span carries the request id (and, once known, the tenant) into every log
    // line of the request, including the policy call and each upstream attempt.
    // Exported as a trace's root span too: the fields are what a collector shows, so
    // none of them may carry a secret (no header value, no query string).
    let span = tracing::info_span!(
        "request",
        request_id = %request_id,
        method = %request.method(),
        path = %request.uri().path(),
        tenant = tracing::field::Empty,
        status = tracing::field::Empty,
        otel.kind = "server",
        otel.status_code = tracing::field::Empty,
    );
    // Boxed: hyper keeps the allocation of a connection's service future for the
    // connection's whole life, and the routing future is kilobytes (every await point
    // down to the upstream attempt). Boxed, it is freed when the response head is
    // ready, so a long stream holds only the small outer future.
    let mut response = Box::pin(route(gateway, request, &request_id))
        .instrument(span.clone())
        .await;
    let status = response.status();
    // Integers as i64: the OpenTelemetry layer would export a u64 as text.
    span.record("status", i64::from(status.as_u16()));
    if status.is_server_error() {
        span.record("otel.status_code", "error");
    }
    drop(span);
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(HEADER_REQUEST_ID, v);
    }
    response
}

async fn route(
    gateway: &Arc<Gateway>,
    request: Request<Incoming>,
    request_id: &str,
) -> Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    let allowed = match path.as_str() {
        "/healthz" | "/readyz" | "/v1/models" => Method::GET,
        "/v1/chat/completions" | "/v1/embeddings" | "/v1/feedback" => Method::POST,
        _ => return ApiError::unknown_route(method.as_str(), &path).into_response(),
    };
    if method != allowed {
        let mut response = ApiError::method_not_allowed(method.as_str(), &path).into_response();
        if let Ok(v) = http::HeaderValue::from_str(allowed.as_str()) {
            response.headers_mut().insert(http::header::ALLOW, v);
        }
        return response;
    }
    match path.as_str() {
        "/healthz" => openai::json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        // Tenants' policies are activated before the listener opens.
        "/readyz" => openai::json(StatusCode::OK, &serde_json::json!({"status": "ready"})),
        _ => api(gateway, request, &path, request_id)
            .await
            .unwrap_or_else(ApiError::into_response),
    }
}

async fn api(
    gateway: &Arc<Gateway>,
    request: Request<Incoming>,
    path: &str,
    request_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let (tenant, caller) = authenticate(gateway, &request, request_id)?;
    tracing::Span::current().record("tenant", &*tenant.id);
    if path == "/v1/models" {
        return Ok(models(gateway, &tenant));
    }
    let (parts, body) = request.into_parts();
    let body = read_body(body, &parts.headers, gateway.config.server.max_body_bytes).await?;
    Ok(match path {
        "/v1/feedback" => feedback(gateway, &tenant, &body)?,
        "/v1/chat/completions" => {
            let chat = openai::parse_chat(body, &parts.headers)?;
            let estimate =
                u64::from(chat.input_tokens) + u64::from(chat.max_output_tokens.unwrap_or(0));
            let reservation = admit(gateway, &tenant, caller, estimate, request_id)?;
            routing::chat(
                gateway,
                &tenant,
                chat,
                request_id,
                &caller.key_id,
                reservation,
            )
            .await
        }
        _ => {
            let embeddings = openai::parse_embeddings(body, &parts.headers)?;
            let estimate = u64::from(embeddings.input_tokens);
            let reservation = admit(gateway, &tenant, caller, estimate, request_id)?;
            routing::embeddings(
                gateway,
                &tenant,
                embeddings,
                request_id,
                &caller.key_id,
                reservation,
            )
            .await
        }
    })
}

/// The caller's tenant and key. 401 for a missing, malformed or unknown key, 403 for a
/// disabled key or tenant; what is logged and answered names keys by id only.
fn authenticate<'g>(
    gateway: &'g Gateway,
    request: &Request<Incoming>,
    request_id: &str,
) -> Result<(Arc<Tenant>, &'g Caller), ApiError> {
    let header = request
        .headers()
        .get(http::header::AUTHORIZATION)
        .map(|v| v.as_bytes());
    let caller = gateway.keys.authenticate(header).map_err(|e| {
        tracing::debug!(request_id, reason = %e, "request not authenticated");
        match e {
            AuthError::Disabled(_) => ApiError::forbidden(e.to_string()),
            AuthError::Missing | AuthError::Malformed | AuthError::Unknown => {
                ApiError::unauthorized(e.to_string())
            }
        }
    })?;
    let tenant = gateway
        .tenants
        .get(&caller.tenant)
        .cloned()
        .ok_or_else(|| ApiError::unauthorized("invalid API key"))?;
    Ok((tenant, caller))
}

/// Admits a request estimated at `tokens` against the tenant's and the key's quotas.
fn admit(
    gateway: &Gateway,
    tenant: &Tenant,
    caller: &Caller,
    tokens: u64,
    request_id: &str,
) -> Result<Reservation, ApiError> {
    let Some(key_quota) = tenant.key_quotas.get(caller.key_index) else {
        return Err(ApiError::internal("The API key's quota is missing."));
    };
    quota::admit(&tenant.quota, key_quota, tokens).map_err(|refused| {
        gateway.metrics.rejection(&tenant.name(), refused.code());
        tracing::info!(
            request_id,
            tenant = %caller.tenant,
            key = %caller.key_id,
            code = refused.code(),
            "request refused by a quota"
        );
        let message = refused.to_string();
        match (&refused, refused.retry_after_secs()) {
            (QuotaError::Budget { .. }, Some(secs)) => ApiError::budget_exceeded(message, secs),
            (_, Some(secs)) => ApiError::rate_limited(refused.code(), message, secs),
            (_, None) => ApiError::over_limit(refused.code(), message),
        }
    })
}

/// Reads the body, refusing more than `limit` bytes (early, from `Content-Length`,
/// when the client declares it).
pub(crate) async fn read_body(
    body: Incoming,
    headers: &http::HeaderMap,
    limit: usize,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    match http_body_util::Limited::new(body, limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Err(ApiError::too_large(limit)),
        Err(_) => Err(ApiError::invalid_request(
            "The request body could not be read.",
        )),
    }
}

/// `POST /v1/feedback`: a score for an earlier answer, passed to the policy version
/// that decided it (or, if that version is gone, to the tenant's active one).
fn feedback(
    gateway: &Gateway,
    tenant: &Tenant,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let request: FeedbackRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::invalid_request(format!("invalid feedback: {e}")))?;
    if !(0.0..=1.0).contains(&request.score) {
        return Err(ApiError::invalid_request(
            "`score` must be a number from 0 to 1",
        ));
    }
    let Some(decided) = gateway.decisions.find(&tenant.id, &request.request_id) else {
        return Err(ApiError::not_found(format!(
            "no recent request `{}` for this key",
            request.request_id
        )));
    };
    let deployment = decided
        .deployment
        .upgrade()
        .unwrap_or_else(|| tenant.policy.current().active.clone());
    if let Err(e) = deployment
        .binding
        .on_feedback(&request.to_feedback(decided.target))
    {
        tracing::warn!(tenant = %tenant.id, policy = %deployment.label, error = %e, "policy on-feedback failed");
    }
    Ok(openai::json(
        StatusCode::OK,
        &serde_json::json!({"status": "accepted", "request_id": request.request_id}),
    ))
}

/// `GET /v1/models`: the models and aliases the caller's tenant may ask for.
fn models(gateway: &Gateway, tenant: &Tenant) -> Response<ResponseBody> {
    let mut names: Vec<&str> = tenant
        .targets
        .iter()
        .filter_map(|&i| gateway.targets.get(i))
        .map(|t| t.config.model.as_str())
        .collect();
    names.extend(gateway.config.aliases.keys().map(String::as_str));
    names.sort_unstable();
    names.dedup();
    let data: Vec<serde_json::Value> = names
        .into_iter()
        .map(|id| serde_json::json!({"id": id, "object": "model", "created": 0, "owned_by": "signalbox"}))
        .collect();
    openai::json(
        StatusCode::OK,
        &serde_json::json!({"object": "list", "data": data}),
    )
}

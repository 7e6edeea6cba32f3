//! Which handler serves which path, and the steps every API request shares:
//! authenticate, bound and read the body, parse it once, and hand it to routing (which
//! admits it against quotas).

use crate::anthropic;
use crate::feedback::FeedbackRequest;
use crate::gateway::{Gateway, Tenant};
use crate::openai::{self, ApiError, ResponseBody};
use crate::protocol::Protocol;
use crate::routing;
use crate::telemetry::gen_ai;
use crate::tenancy::{AuthError, Caller};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use std::sync::{Arc, LazyLock};
use std::time::Duration;
use tracing::Instrument;

/// The request id header, on every response.
pub const HEADER_REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-request-id");
/// Where Anthropic's clients put their API key.
const HEADER_API_KEY: http::HeaderName = http::HeaderName::from_static("x-api-key");
/// On a count of tokens that is the gateway's estimate.
const HEADER_ESTIMATE: http::HeaderName = http::HeaderName::from_static("x-signalbox-estimate");

pub(super) async fn handle(
    gateway: &Arc<Gateway>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let request_id = gateway.decisions.ids.next();
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
        // The GenAI conventions (`telemetry::gen_ai`), for the chat and embeddings
        // calls: what was asked, who answered with which model, the tokens counted.
        gen_ai.operation.name = tracing::field::Empty,
        gen_ai.request.model = tracing::field::Empty,
        gen_ai.request.max_tokens = tracing::field::Empty,
        gen_ai.request.temperature = tracing::field::Empty,
        gen_ai.request.stream = tracing::field::Empty,
        gen_ai.provider.name = tracing::field::Empty,
        gen_ai.response.model = tracing::field::Empty,
        gen_ai.usage.input_tokens = tracing::field::Empty,
        gen_ai.usage.output_tokens = tracing::field::Empty,
        error.type = tracing::field::Empty,
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
    // The HTTP conventions' `error.type` of a failed request: its status code. A
    // request that fails after its head (a broken stream) says so when it ends.
    if status.is_client_error() || status.is_server_error() {
        span.record("error.type", status.as_str());
    }
    drop(span);
    if let Ok(v) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(HEADER_REQUEST_ID, v);
    }
    response
}

/// What serves a path of the API.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Endpoint {
    Health,
    Ready,
    /// A call that needs the caller's API key.
    Api(Call),
}

/// The authenticated calls.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    Models,
    Chat,
    Messages,
    CountTokens,
    Responses,
    Embeddings,
    Feedback,
}

impl Call {
    /// The protocol whose shapes the call's answers and errors take.
    fn protocol(self) -> Protocol {
        match self {
            Call::Messages | Call::CountTokens => Protocol::Messages,
            Call::Responses => Protocol::Responses,
            Call::Models | Call::Chat | Call::Embeddings | Call::Feedback => Protocol::Chat,
        }
    }
}

/// The API's paths, each once, with the methods it allows.
static ROUTES: LazyLock<RouteTable<Endpoint>> = LazyLock::new(|| {
    RouteTable::new(&[
        ("/healthz", &[(Method::GET, Endpoint::Health)]),
        ("/readyz", &[(Method::GET, Endpoint::Ready)]),
        ("/v1/models", &[(Method::GET, Endpoint::Api(Call::Models))]),
        (
            "/v1/chat/completions",
            &[(Method::POST, Endpoint::Api(Call::Chat))],
        ),
        (
            "/v1/messages",
            &[(Method::POST, Endpoint::Api(Call::Messages))],
        ),
        (
            "/v1/responses",
            &[(Method::POST, Endpoint::Api(Call::Responses))],
        ),
        (
            "/v1/messages/count_tokens",
            &[(Method::POST, Endpoint::Api(Call::CountTokens))],
        ),
        (
            "/v1/embeddings",
            &[(Method::POST, Endpoint::Api(Call::Embeddings))],
        ),
        (
            "/v1/feedback",
            &[(Method::POST, Endpoint::Api(Call::Feedback))],
        ),
    ])
});

async fn route(
    gateway: &Arc<Gateway>,
    request: Request<Incoming>,
    request_id: &str,
) -> Response<ResponseBody> {
    let endpoint = match ROUTES.resolve(request.method(), request.uri().path()) {
        Ok((endpoint, _)) => endpoint,
        Err(unrouted) => return unrouted.into_response(request.method(), request.uri().path()),
    };
    match endpoint {
        Endpoint::Health => openai::json(StatusCode::OK, &serde_json::json!({"status": "ok"})),
        Endpoint::Ready => ready(gateway).await,
        Endpoint::Api(call) => api(gateway, request, call, request_id)
            .await
            .unwrap_or_else(|e| e.into_response_in(call.protocol())),
    }
}

/// Readiness. Tenants' policies are activated before the listener opens, so a
/// listening gateway is ready, unless it is one of a fleet whose shared store it
/// cannot reach and whose requests would be refused for it (`fail_closed`): then a
/// balancer should send its traffic elsewhere. With `fail_open` it serves (on its own
/// share of the limits) and says the store is down.
async fn ready(gateway: &Gateway) -> Response<ResponseBody> {
    let Some(cluster) = &gateway.cluster else {
        return openai::json(StatusCode::OK, &serde_json::json!({"status": "ready"}));
    };
    let up = cluster.ping().await;
    let refusing = !up && cluster.on_failure == crate::config::FailMode::FailClosed;
    let (status, word) = if refusing {
        (StatusCode::SERVICE_UNAVAILABLE, "not_ready")
    } else {
        (StatusCode::OK, "ready")
    };
    openai::json(
        status,
        &serde_json::json!({
            "status": word,
            "shared_store": if up { "up" } else { "unreachable" },
        }),
    )
}

/// A router's table, stated once: each path with the methods it allows and what
/// serves each. A path it does not know is a 404; a known path asked with another
/// method is a 405 that lists the allowed ones in `Allow`.
pub(crate) struct RouteTable<T> {
    router: matchit::Router<Vec<(Method, T)>>,
}

impl<T: Copy> RouteTable<T> {
    /// The table of `routes`: matchit patterns (`/a/{param}/b`) and their methods.
    /// The patterns are literals of this crate, checked by its tests; one that
    /// matchit refuses is logged and left out.
    pub(crate) fn new(routes: &[(&str, &[(Method, T)])]) -> Self {
        let mut router = matchit::Router::new();
        for (pattern, methods) in routes {
            if let Err(e) = router.insert(*pattern, methods.to_vec()) {
                tracing::error!(pattern, error = %e, "route left out of its table");
            }
        }
        RouteTable { router }
    }

    /// What serves `method` on `path`, with the path's parameters.
    pub(crate) fn resolve<'t, 'p>(
        &'t self,
        method: &Method,
        path: &'p str,
    ) -> Result<(T, matchit::Params<'t, 'p>), Unrouted> {
        let found = self.router.at(path).map_err(|_| Unrouted::UnknownPath)?;
        match found.value.iter().find(|(m, _)| m == method) {
            Some(&(_, target)) => Ok((target, found.params)),
            None => {
                let allow: Vec<&str> = found.value.iter().map(|(m, _)| m.as_str()).collect();
                Err(Unrouted::WrongMethod {
                    allow: allow.join(", "),
                })
            }
        }
    }
}

/// Why a request matched no route.
#[derive(Debug, PartialEq)]
pub(crate) enum Unrouted {
    /// No route has this path: 404.
    UnknownPath,
    /// The path exists with other methods: 405, listing them in `Allow`.
    WrongMethod {
        /// The `Allow` header's value.
        allow: String,
    },
}

impl Unrouted {
    /// The error response for `method` on `path`.
    pub(crate) fn into_response(self, method: &Method, path: &str) -> Response<ResponseBody> {
        match self {
            Unrouted::UnknownPath => ApiError::unknown_route(method.as_str(), path).into_response(),
            Unrouted::WrongMethod { allow } => {
                let mut response =
                    ApiError::method_not_allowed(method.as_str(), path).into_response();
                if let Ok(v) = http::HeaderValue::from_str(&allow) {
                    response.headers_mut().insert(http::header::ALLOW, v);
                }
                response
            }
        }
    }
}

async fn api(
    gateway: &Arc<Gateway>,
    request: Request<Incoming>,
    call: Call,
    request_id: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let (tenant, caller) = authenticate(gateway, &request, request_id)?;
    tracing::Span::current().record("tenant", &*tenant.id);
    let limit = BodyLimit::of(&gateway.config.server);
    Ok(match call {
        Call::Models => models(gateway, &tenant),
        Call::Feedback => {
            let (parts, body) = request.into_parts();
            let body = read_body(body, &parts.headers, limit).await?;
            feedback(gateway, &tenant, &body).await?
        }
        Call::Chat => {
            let span = tracing::Span::current();
            span.record("gen_ai.operation.name", gen_ai::OPERATION_CHAT);
            let (parts, body) = request.into_parts();
            let body = read_body(body, &parts.headers, limit).await?;
            let chat = openai::parse_chat(body, &parts.headers)?;
            span.record("gen_ai.request.model", chat.model.as_str());
            span.record("gen_ai.request.stream", chat.stream);
            if let Some(max) = chat.max_output_tokens {
                // Integers as i64: the OpenTelemetry layer would export a u32 as text.
                span.record("gen_ai.request.max_tokens", i64::from(max));
            }
            if let Some(temperature) = chat.temperature {
                span.record("gen_ai.request.temperature", temperature);
            }
            routing::chat(gateway, &tenant, caller, chat, request_id).await
        }
        Call::Messages => {
            let span = tracing::Span::current();
            span.record("gen_ai.operation.name", gen_ai::OPERATION_CHAT);
            let (parts, body) = request.into_parts();
            let body = read_body(body, &parts.headers, limit).await?;
            let messages = anthropic::parse_messages(body, &parts.headers)?;
            span.record("gen_ai.request.model", messages.model.as_str());
            span.record("gen_ai.request.stream", messages.stream);
            span.record(
                "gen_ai.request.max_tokens",
                i64::from(messages.max_output_tokens),
            );
            if let Some(temperature) = messages.temperature {
                span.record("gen_ai.request.temperature", temperature);
            }
            routing::messages(gateway, &tenant, caller, messages, request_id).await
        }
        Call::Responses => {
            let span = tracing::Span::current();
            span.record("gen_ai.operation.name", gen_ai::OPERATION_CHAT);
            let (parts, body) = request.into_parts();
            let body = read_body(body, &parts.headers, limit).await?;
            let responses = openai::parse_responses(body, &parts.headers)?;
            span.record("gen_ai.request.model", responses.model.as_str());
            span.record("gen_ai.request.stream", responses.stream);
            if let Some(max) = responses.max_output_tokens {
                span.record("gen_ai.request.max_tokens", i64::from(max));
            }
            if let Some(temperature) = responses.temperature {
                span.record("gen_ai.request.temperature", temperature);
            }
            routing::responses(gateway, &tenant, caller, responses, request_id).await
        }
        Call::CountTokens => {
            let (parts, body) = request.into_parts();
            let body = read_body(body, &parts.headers, limit).await?;
            let input_tokens = anthropic::count_tokens(body)?;
            let mut response = openai::json(
                StatusCode::OK,
                &serde_json::json!({"input_tokens": input_tokens}),
            );
            // The gateway's own estimate, not a provider's tokenizer: said so.
            response
                .headers_mut()
                .insert(HEADER_ESTIMATE, http::HeaderValue::from_static("true"));
            response
        }
        Call::Embeddings => {
            let span = tracing::Span::current();
            span.record("gen_ai.operation.name", gen_ai::OPERATION_EMBEDDINGS);
            let (parts, body) = request.into_parts();
            let body = read_body(body, &parts.headers, limit).await?;
            let embeddings = openai::parse_embeddings(body, &parts.headers)?;
            span.record("gen_ai.request.model", embeddings.model.as_str());
            routing::embeddings(gateway, &tenant, caller, embeddings, request_id).await
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
    // OpenAI's clients send `Authorization: Bearer`, Anthropic's `x-api-key`.
    let headers = request.headers();
    let authenticated = match (
        headers.get(http::header::AUTHORIZATION),
        headers.get(&HEADER_API_KEY),
    ) {
        (None, Some(key)) => gateway.keys.authenticate_api_key(key.as_bytes()),
        (bearer, _) => gateway.keys.authenticate(bearer.map(|v| v.as_bytes())),
    };
    let caller = authenticated.map_err(|e| {
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

/// How much body a request may send, and how fast.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit {
    /// Most bytes (413 above).
    pub bytes: usize,
    /// Time to receive them all (408 after).
    pub timeout: Duration,
}

impl BodyLimit {
    /// `[server]`'s `max_body_bytes` and `body_read_timeout_ms`.
    pub(crate) fn of(server: &crate::config::ServerSection) -> Self {
        BodyLimit {
            bytes: server.max_body_bytes,
            timeout: server.body_read_timeout(),
        }
    }
}

/// Reads the body, refusing more than `limit.bytes` (early, from `Content-Length`,
/// when the client declares it) and a body still arriving after `limit.timeout`.
pub(crate) async fn read_body(
    body: Incoming,
    headers: &http::HeaderMap,
    limit: BodyLimit,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.bytes as u64) {
        return Err(ApiError::too_large(limit.bytes));
    }
    let mut collect = std::pin::pin!(http_body_util::Limited::new(body, limit.bytes).collect());
    // Most bodies arrived with their head: collected at the first poll, they need no
    // timer (arming and disarming one is a measurable share of a small request).
    let first = std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match collect.as_mut().poll(cx) {
            std::task::Poll::Ready(collected) => Some(collected),
            std::task::Poll::Pending => None,
        })
    })
    .await;
    let collected = match first {
        Some(collected) => Ok(collected),
        None => tokio::time::timeout(limit.timeout, collect).await,
    };
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::too_large(limit.bytes))
        }
        Ok(Err(_)) => Err(ApiError::invalid_request(
            crate::openai::codes::INVALID_BODY,
            "The request body could not be read.",
        )),
        Err(_elapsed) => {
            tracing::debug!(timeout = ?limit.timeout, "request body too slow");
            Err(super::refusal::body_timeout(limit.timeout))
        }
    }
}

/// `POST /v1/feedback`: a score for an earlier answer, passed to the policy version
/// that decided it (or, if that version is gone, to the tenant's active one). In a
/// fleet, a score for a request another replica decided goes to that replica.
async fn feedback(
    gateway: &Gateway,
    tenant: &Tenant,
    body: &[u8],
) -> Result<Response<ResponseBody>, ApiError> {
    let request: FeedbackRequest = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_request(
            crate::openai::codes::INVALID_BODY,
            format!("invalid feedback: {e}"),
        )
    })?;
    if !(0.0..=1.0).contains(&request.score) {
        return Err(ApiError::invalid_request(
            crate::openai::codes::INVALID_VALUE,
            "`score` must be a number from 0 to 1",
        ));
    }
    let accepted = |forwarded: bool| {
        openai::json(
            StatusCode::OK,
            &serde_json::json!({
                "status": "accepted",
                "request_id": request.request_id,
                "forwarded": forwarded,
            }),
        )
    };
    if crate::feedback::deliver(gateway, tenant, &request.request_id, request.score) {
        return Ok(accepted(false));
    }
    let origin = crate::request_id::origin(&request.request_id)
        .filter(|&o| o != gateway.decisions.ids.origin());
    if let (Some(cluster), Some(origin)) = (&gateway.cluster, origin) {
        let forwarded = crate::cluster::ForwardedFeedback {
            tenant: tenant.id.to_string(),
            request_id: request.request_id.clone(),
            score: request.score,
        };
        cluster
            .forward_feedback(origin, &forwarded)
            .await
            .map_err(|e| {
                ApiError::unavailable(
                    crate::openai::codes::SHARED_STORE_UNAVAILABLE,
                    format!("cannot pass the feedback to the replica that decided: {e}"),
                    1,
                )
            })?;
        gateway.metrics.feedback_forwarded("sent", 1);
        return Ok(accepted(true));
    }
    Err(ApiError::not_found(format!(
        "no recent request `{}` for this tenant",
        request.request_id
    )))
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

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(method: Method, path: &str) -> Result<Endpoint, Unrouted> {
        ROUTES.resolve(&method, path).map(|(e, _)| e)
    }

    #[test]
    fn every_path_resolves_with_its_method_only() {
        for (path, method, endpoint) in [
            ("/healthz", Method::GET, Endpoint::Health),
            ("/readyz", Method::GET, Endpoint::Ready),
            ("/v1/models", Method::GET, Endpoint::Api(Call::Models)),
            (
                "/v1/chat/completions",
                Method::POST,
                Endpoint::Api(Call::Chat),
            ),
            (
                "/v1/embeddings",
                Method::POST,
                Endpoint::Api(Call::Embeddings),
            ),
            ("/v1/feedback", Method::POST, Endpoint::Api(Call::Feedback)),
            ("/v1/messages", Method::POST, Endpoint::Api(Call::Messages)),
            (
                "/v1/responses",
                Method::POST,
                Endpoint::Api(Call::Responses),
            ),
            (
                "/v1/messages/count_tokens",
                Method::POST,
                Endpoint::Api(Call::CountTokens),
            ),
        ] {
            assert_eq!(resolved(method.clone(), path), Ok(endpoint));
            let other = if method == Method::GET {
                Method::POST
            } else {
                Method::GET
            };
            assert_eq!(
                resolved(other.clone(), path),
                Err(Unrouted::WrongMethod {
                    allow: method.to_string()
                }),
                "{other} {path}"
            );
        }
    }

    #[test]
    fn unknown_paths_are_404_whatever_the_method() {
        for path in [
            "/",
            "/v1",
            "/v1/chat/completions/x",
            "/v1/nothing",
            "/healthz/",
        ] {
            assert_eq!(
                resolved(Method::GET, path),
                Err(Unrouted::UnknownPath),
                "{path}"
            );
            assert_eq!(
                resolved(Method::POST, path),
                Err(Unrouted::UnknownPath),
                "{path}"
            );
        }
    }

    #[test]
    fn a_wrong_method_is_a_405_listing_every_allowed_one() {
        let table = RouteTable::new(&[("/t/{id}/x", &[(Method::GET, 1), (Method::POST, 2)])]);
        let (value, params) = table.resolve(&Method::POST, "/t/a%20b/x").unwrap();
        assert_eq!((value, params.get("id")), (2, Some("a%20b")));
        let unrouted = table.resolve(&Method::DELETE, "/t/a/x").unwrap_err();
        let response = unrouted.into_response(&Method::DELETE, "/t/a/x");
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[http::header::ALLOW], "GET, POST");
        let response = Unrouted::UnknownPath.into_response(&Method::GET, "/nowhere");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert!(response.headers().get(http::header::ALLOW).is_none());
    }
}

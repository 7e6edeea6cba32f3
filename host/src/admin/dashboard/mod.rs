//! The dashboard: the operator's view in a browser, served on the admin listener.
//!
//! Pages are HTML built here (a frame, navigation, the tenants the session may see)
//! with one small CSS and one small JS file embedded in the binary; the JS polls the
//! JSON endpoints under `/dashboard/api/` and draws tables and SVG charts. Nothing is
//! fetched from anywhere else (the Content-Security-Policy says so to the browser).
//! The JSON endpoints reuse the admin API's own functions: the lifecycle operations,
//! the tenants' bindings, the ledger's aggregates and the metrics registry.
//!
//! Security model: a session starts by posting an admin token (operator or a tenant's
//! deploy token, checked by [`super::AdminTokens`]) to `/dashboard/sign-in`; the token
//! is never stored, echoed or logged. The session's random id travels in an
//! `HttpOnly; SameSite=Strict; Path=/dashboard` cookie (`Secure` over TLS). Every other
//! POST must carry the session's CSRF token (`x-csrf-token` header or a `csrf` form
//! field) and is refused 403 without it. A tenant session reads and acts on its own
//! tenant only: every endpoint checks the scope on the server.

mod api;
mod decisions;
mod metrics_text;
mod pages;
mod session;

pub use session::Sessions;

use super::Admin;
use super::auth::Scope;
use super::routes::{TenantOp, error, tenant_request};
use crate::openai::{ApiError, ResponseBody, full};
use crate::server::RouteTable;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use hyper::body::Incoming;
use session::Session;
use std::sync::{Arc, LazyLock};

/// What serves a path under `/dashboard`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum View {
    Page(pages::Page),
    SignIn,
    SignOut,
    Asset(&'static str),
    Api(api::Query),
    /// A lifecycle operation on the tenant in the path.
    Action(TenantOp),
}

static ROUTES: LazyLock<RouteTable<View>> = LazyLock::new(|| {
    use Method as M;
    use pages::Page;
    RouteTable::new(&[
        ("/dashboard", &[(M::GET, View::Page(Page::Overview))]),
        (
            "/dashboard/policies",
            &[(M::GET, View::Page(Page::Policies))],
        ),
        ("/dashboard/usage", &[(M::GET, View::Page(Page::Usage))]),
        (
            "/dashboard/decisions",
            &[(M::GET, View::Page(Page::Decisions))],
        ),
        ("/dashboard/replay", &[(M::GET, View::Page(Page::Replay))]),
        ("/dashboard/routing", &[(M::GET, View::Page(Page::Routing))]),
        ("/dashboard/sign-in", &[(M::POST, View::SignIn)]),
        ("/dashboard/sign-out", &[(M::POST, View::SignOut)]),
        (
            "/dashboard/assets/dashboard.css",
            &[(M::GET, View::Asset("css"))],
        ),
        (
            "/dashboard/assets/dashboard.js",
            &[(M::GET, View::Asset("js"))],
        ),
        (
            "/dashboard/api/overview",
            &[(M::GET, View::Api(api::Query::Overview))],
        ),
        (
            "/dashboard/api/tenants",
            &[(M::GET, View::Api(api::Query::Tenants))],
        ),
        (
            "/dashboard/api/usage",
            &[(M::GET, View::Api(api::Query::Usage))],
        ),
        (
            "/dashboard/api/budgets",
            &[(M::GET, View::Api(api::Query::Budgets))],
        ),
        (
            "/dashboard/api/tenants/{tenant}/policies",
            &[(M::GET, View::Api(api::Query::Policies))],
        ),
        (
            "/dashboard/api/tenants/{tenant}/decisions",
            &[(M::GET, View::Api(api::Query::Decisions))],
        ),
        (
            "/dashboard/api/tenants/{tenant}/decisions/{request_id}",
            &[(M::GET, View::Api(api::Query::Decision))],
        ),
        (
            "/dashboard/api/tenants/{tenant}/activate",
            &[(M::POST, View::Action(TenantOp::Activate))],
        ),
        (
            "/dashboard/api/tenants/{tenant}/rollback",
            &[(M::POST, View::Action(TenantOp::Rollback))],
        ),
        (
            "/dashboard/api/tenants/{tenant}/candidate",
            &[(M::POST, View::Action(TenantOp::StartCandidate))],
        ),
        (
            "/dashboard/api/tenants/{tenant}/candidate/promote",
            &[(M::POST, View::Action(TenantOp::Promote))],
        ),
        (
            "/dashboard/api/tenants/{tenant}/candidate/discard",
            &[(M::POST, View::Action(TenantOp::Discard))],
        ),
    ])
});

/// Serves a request under `/dashboard`.
pub(super) async fn handle(
    admin: &Arc<Admin>,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let path = request.uri().path().to_owned();
    let (view, tenant, request_id) = match ROUTES.resolve(request.method(), &path) {
        Ok((view, params)) => (
            view,
            params.get("tenant").map(str::to_owned),
            params.get("request_id").map(str::to_owned),
        ),
        Err(unrouted) => return unrouted.into_response(request.method(), &path),
    };
    let secure = admin.gateway.config.admin.tls.is_some();
    let session = admin.sessions.find(
        request
            .headers()
            .get(header::COOKIE)
            .map(HeaderValue::as_bytes),
    );
    let mut response = match (view, session) {
        (View::Asset(kind), _) => pages::asset(kind),
        (View::SignIn, _) => sign_in(admin, request, secure).await,
        (View::Page(_), None) => pages::sign_in(StatusCode::OK, None),
        (View::Page(page), Some(s)) => pages::page(admin, page, &s, request.uri().query()),
        (View::Api(_) | View::Action(_) | View::SignOut, None) => {
            ApiError::unauthorized("sign in to the dashboard first").into_response()
        }
        (View::SignOut, Some(s)) => sign_out(admin, request, &s, secure).await,
        (View::Api(query), Some(s)) => {
            let target = api::Target {
                tenant: tenant.as_deref(),
                request_id: request_id.as_deref(),
                query: request.uri().query().unwrap_or(""),
            };
            api::answer(admin, &s.scope, query, target)
                .await
                .unwrap_or_else(ApiError::into_response)
        }
        (View::Action(op), Some(s)) => match (csrf_header_ok(&request, &s), tenant) {
            (false, _) => csrf_refusal().into_response(),
            (true, None) => ApiError::internal("an action without a tenant").into_response(),
            (true, Some(tenant)) => {
                let response = tenant_request(admin, request, &s.scope, &tenant, op).await;
                if response.is_ok() {
                    // The audit trail: who (the session's scope, never its token) did what.
                    tracing::info!(scope = %describe(&s.scope), tenant = %tenant, action = ?op, "dashboard action");
                }
                response.unwrap_or_else(ApiError::into_response)
            }
        },
    };
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: with the latter a browser sends `Origin: null`
    // on form posts, and the sign-in's origin check could not tell our page from any.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    response
}

/// A scope as the log shows it.
fn describe(scope: &Scope) -> String {
    match scope {
        Scope::Operator => "operator".to_owned(),
        Scope::Tenant(t) => format!("tenant {t}"),
    }
}

fn csrf_refusal() -> ApiError {
    error(
        StatusCode::FORBIDDEN,
        "csrf_token_invalid",
        "this action needs the page's CSRF token (x-csrf-token header or csrf field)",
    )
}

fn csrf_header_ok(request: &Request<Incoming>, session: &Session) -> bool {
    request
        .headers()
        .get("x-csrf-token")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| session.csrf_matches(v))
}

/// A form post's fields (sign-in, sign-out), bounded to a few kilobytes.
async fn form(
    admin: &Admin,
    request: Request<Incoming>,
) -> Result<Vec<(String, String)>, ApiError> {
    let (parts, body) = request.into_parts();
    let limit = super::routes::body_limit(&admin.gateway, 8 << 10);
    let bytes = crate::server::read_body(body, &parts.headers, limit).await?;
    Ok(form_urlencoded::parse(&bytes).into_owned().collect())
}

/// Whether a browser's `Origin`, when it sends one, is this listener (a sign-in form
/// posted from another site is refused).
fn same_origin(request: &Request<Incoming>) -> bool {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return true;
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let origin = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, h)| h);
    matches!((origin, host), (Some(o), Some(h)) if o == h)
}

async fn sign_in(
    admin: &Admin,
    request: Request<Incoming>,
    secure: bool,
) -> Response<ResponseBody> {
    if !same_origin(&request) {
        return error(
            StatusCode::FORBIDDEN,
            "cross_origin",
            "sign in from the dashboard's own page",
        )
        .into_response();
    }
    let fields = match form(admin, request).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let token = fields
        .iter()
        .find(|(k, _)| k == "token")
        .map(|(_, v)| v.as_str());
    let Some(scope) = token.and_then(|t| admin.tokens.scope_of_token(t.trim())) else {
        return pages::sign_in(
            StatusCode::UNAUTHORIZED,
            Some("That token was not accepted."),
        );
    };
    let Some((id, _)) = admin.sessions.open(scope.clone()) else {
        return ApiError::internal("no randomness for a session id").into_response();
    };
    tracing::info!(scope = %describe(&scope), "dashboard sign-in");
    redirect_with_cookie(&session::set_cookie(&id, secure))
}

async fn sign_out(
    admin: &Admin,
    request: Request<Incoming>,
    session: &Session,
    secure: bool,
) -> Response<ResponseBody> {
    let cookie = request.headers().get(header::COOKIE).cloned();
    let header_ok = csrf_header_ok(&request, session);
    let fields = match form(admin, request).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let field_ok = fields
        .iter()
        .any(|(k, v)| k == "csrf" && session.csrf_matches(v));
    if !(header_ok || field_ok) {
        return csrf_refusal().into_response();
    }
    admin
        .sessions
        .close(cookie.as_ref().map(HeaderValue::as_bytes));
    tracing::info!(scope = %describe(&session.scope), "dashboard sign-out");
    redirect_with_cookie(&session::clear_cookie(secure))
}

/// 303 to the overview, setting `cookie`.
fn redirect_with_cookie(cookie: &str) -> Response<ResponseBody> {
    let mut response = Response::new(full(""));
    *response.status_mut() = StatusCode::SEE_OTHER;
    response
        .headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/dashboard"));
    if let Ok(v) = HeaderValue::from_str(cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dashboard_path_resolves() {
        for (method, path) in [
            (Method::GET, "/dashboard"),
            (Method::GET, "/dashboard/policies"),
            (Method::POST, "/dashboard/sign-in"),
            (Method::GET, "/dashboard/assets/dashboard.js"),
            (Method::GET, "/dashboard/api/tenants/acme/decisions/req-1"),
            (
                Method::POST,
                "/dashboard/api/tenants/acme/candidate/promote",
            ),
        ] {
            assert!(ROUTES.resolve(&method, path).is_ok(), "{path}");
        }
        assert!(
            ROUTES
                .resolve(&Method::GET, "/dashboard/api/tenants/acme/activate")
                .is_err()
        );
        assert!(ROUTES.resolve(&Method::GET, "/dashboard/nope").is_err());
    }
}

//! Errors in the OpenAI shape: `{"error":{"message","type","param","code"}}`.

use http::StatusCode;

/// The `code`s of 400 answers for a request the gateway cannot understand.
pub mod codes {
    /// The body is not JSON.
    pub const INVALID_JSON: &str = "invalid_json";
    /// The body is JSON but not of the expected shape (not an object, unreadable).
    pub const INVALID_BODY: &str = "invalid_body";
    /// A required field is missing.
    pub const MISSING_PARAMETER: &str = "missing_required_parameter";
    /// A field has the wrong type.
    pub const INVALID_TYPE: &str = "invalid_type";
    /// A field has a value out of its range or set.
    pub const INVALID_VALUE: &str = "invalid_value";
    /// A query parameter the endpoint does not know.
    pub const UNKNOWN_PARAMETER: &str = "unknown_parameter";
    /// The fleet's shared store (Redis) did not answer a call the request needs.
    pub const SHARED_STORE_UNAVAILABLE: &str = "shared_store_unavailable";
}

/// An error answered to a client. Messages are written for the client and never
/// contain secrets or internal addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Human-readable message.
    pub message: String,
    /// OpenAI's `type`, e.g. `invalid_request_error`.
    pub kind: &'static str,
    /// OpenAI's `code`, e.g. `model_not_found`.
    pub code: Option<&'static str>,
    /// Seconds for a `Retry-After` header.
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(
        status: StatusCode,
        kind: &'static str,
        code: Option<&'static str>,
        message: impl Into<String>,
    ) -> Self {
        ApiError {
            status,
            message: message.into(),
            kind,
            code,
            retry_after: None,
        }
    }

    /// 400: the request cannot be understood. `code` says why in a word a client can
    /// branch on (every 400 has one), e.g. [`codes::MISSING_PARAMETER`].
    pub fn invalid_request(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some(code),
            message,
        )
    }

    /// 401.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            Some("invalid_api_key"),
            message,
        )
    }

    /// 403: a known key that may not be used (it, or its tenant, is disabled).
    pub fn forbidden(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "permission_error",
            Some("permission_denied"),
            message,
        )
    }

    /// 429 for a rate limit; `code` names which (e.g. `rate_limit_requests`).
    pub fn rate_limited(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                Some(code),
                message,
            )
        }
    }

    /// 429 for a spent budget (OpenAI's `insufficient_quota`, code `budget_exceeded`).
    pub fn budget_exceeded(message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "insufficient_quota",
                Some("budget_exceeded"),
                message,
            )
        }
    }

    /// 503 for a request the gateway cannot serve right now through no fault of the
    /// request (`code` says why), with `Retry-After`.
    pub fn unavailable(code: &'static str, message: impl Into<String>, retry_after: u64) -> Self {
        ApiError {
            retry_after: Some(retry_after),
            ..ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "service_unavailable",
                Some(code),
                message,
            )
        }
    }

    /// 400 for a request that a limit could never admit: retrying cannot help, so no
    /// `Retry-After` and not a 429 (which clients retry).
    pub fn over_limit(code: &'static str, message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            Some(code),
            message,
        )
    }

    /// 404 for an unknown path.
    pub fn unknown_route(method: &str, path: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("unknown_url"),
            format!("Unrecognized request URL ({method} {path})."),
        )
    }

    /// 404 for something the request names that does not exist (for this caller).
    pub fn not_found(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            Some("not_found"),
            message,
        )
    }

    /// 405 for a known path with the wrong method.
    pub fn method_not_allowed(method: &str, path: &str) -> Self {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "invalid_request_error",
            Some("method_not_allowed"),
            format!("{method} is not allowed on {path}."),
        )
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            Some("request_too_large"),
            format!("The request body is larger than the {limit}-byte limit."),
        )
    }

    /// A policy's rejection, with its status.
    pub fn rejected(status: u16, message: impl Into<String>) -> Self {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_REQUEST);
        let code = match status {
            StatusCode::NOT_FOUND => Some("model_not_found"),
            _ => Some("rejected_by_policy"),
        };
        ApiError::new(status, "invalid_request_error", code, message)
    }

    /// 503 when every attempt failed; `reasons` lists each attempt (no secrets).
    pub fn no_route(reasons: &[String]) -> Self {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_error",
            Some("no_route"),
            format!(
                "No upstream could serve the request: {}.",
                reasons.join("; ")
            ),
        )
    }

    /// 500 for a fault of the gateway itself.
    pub fn internal(message: impl Into<String>) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            None,
            message,
        )
    }

    /// The JSON body.
    pub fn body(&self) -> Vec<u8> {
        let body = serde_json::json!({
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": null,
                "code": self.code,
            }
        });
        serde_json::to_vec(&body).unwrap_or_default()
    }
}

//! Errors in Anthropic's shape: `{"type":"error","error":{"type","message"}}`, the
//! `type` following from the status as Anthropic's own API sets it.

/// Anthropic's error `type` for an HTTP status.
pub fn error_type(status: u16) -> &'static str {
    match status {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        500..=599 => "api_error",
        _ => "invalid_request_error",
    }
}

/// The error body for `status` with `message` (written for the client: no secrets).
pub fn error_body(status: u16, message: &str) -> Vec<u8> {
    let body = serde_json::json!({
        "type": "error",
        "error": {"type": error_type(status), "message": message},
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_carry_the_type_of_their_status() {
        let body: serde_json::Value =
            serde_json::from_slice(&error_body(429, "slow \"down\"")).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow \"down\""}})
        );
        for (status, kind) in [
            (400, "invalid_request_error"),
            (401, "authentication_error"),
            (403, "permission_error"),
            (404, "not_found_error"),
            (405, "invalid_request_error"),
            (413, "request_too_large"),
            (500, "api_error"),
            (502, "api_error"),
            (503, "overloaded_error"),
        ] {
            assert_eq!(error_type(status), kind, "{status}");
        }
    }
}

//! The response headers that explain a route, and what is kept of an upstream's.

use crate::openai::ResponseBody;
use crate::provider::HEADER_DEGRADED;

// Header names as constants: `from_static` runs at compile time, where a `&str` name
// would be checked and looked up again on every response.

/// The target that answered.
pub const HEADER_TARGET: http::HeaderName = http::HeaderName::from_static("x-signalbox-target");
/// The policy that decided, as `name@version`.
pub const HEADER_POLICY: http::HeaderName = http::HeaderName::from_static("x-signalbox-policy");
/// How many targets were tried.
pub const HEADER_ATTEMPTS: http::HeaderName = http::HeaderName::from_static("x-signalbox-attempts");
/// Why the policy chose this route (or that the safe route was used).
pub const HEADER_REASON: http::HeaderName =
    http::HeaderName::from_static("x-signalbox-route-reason");

/// The answers the policy's review refused before the one sent: `target: reason`,
/// separated by `; `.
pub const HEADER_ESCALATIONS: http::HeaderName =
    http::HeaderName::from_static("x-signalbox-escalations");

/// Adds [`HEADER_ESCALATIONS`] when the review refused any answer (values that cannot
/// be sent in a header are left out).
pub(super) fn with_escalations(
    mut response: http::Response<ResponseBody>,
    escalations: &[String],
) -> http::Response<ResponseBody> {
    if !escalations.is_empty()
        && let Ok(v) = http::HeaderValue::from_str(&escalations.join("; "))
    {
        response.headers_mut().insert(HEADER_ESCALATIONS, v);
    }
    response
}

/// Keeps the upstream's status and content type (and what its adapter says was
/// degraded), drops its framing and connection headers (hyper sets ours) and anything
/// else provider-specific.
pub(super) fn strip(mut parts: http::response::Parts) -> http::response::Parts {
    let content_type = parts.headers.remove(http::header::CONTENT_TYPE);
    let degraded = parts.headers.remove(HEADER_DEGRADED);
    parts.headers.clear();
    if let Some(ct) = content_type {
        parts.headers.insert(http::header::CONTENT_TYPE, ct);
    }
    if let Some(degraded) = degraded {
        parts.headers.insert(HEADER_DEGRADED, degraded);
    }
    parts
}

/// Adds the headers that explain the route: the policy, the attempts, and — when a
/// target answered — which one and why it was chosen.
pub(super) fn explained(
    mut response: http::Response<ResponseBody>,
    policy_label: &str,
    target: Option<(&str, &str)>,
    attempts: u32,
) -> http::Response<ResponseBody> {
    let headers = response.headers_mut();
    if let Ok(v) = http::HeaderValue::from_str(policy_label) {
        headers.insert(HEADER_POLICY, v);
    }
    headers.insert(HEADER_ATTEMPTS, http::HeaderValue::from(attempts));
    if let Some((id, reason)) = target {
        if let Ok(v) = http::HeaderValue::from_str(id) {
            headers.insert(HEADER_TARGET, v);
        }
        if let Ok(v) = http::HeaderValue::from_str(reason) {
            headers.insert(HEADER_REASON, v);
        }
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::openai::full;

    #[test]
    fn only_the_content_type_of_the_upstream_survives() {
        let (mut parts, ()) = http::Response::new(()).into_parts();
        parts
            .headers
            .insert("content-type", "application/json".parse().unwrap());
        parts.headers.insert("set-cookie", "a=b".parse().unwrap());
        parts
            .headers
            .insert("content-length", "12".parse().unwrap());
        let parts = strip(parts);
        assert_eq!(parts.headers.len(), 1);
        assert_eq!(parts.headers["content-type"], "application/json");
    }

    #[test]
    fn the_route_is_explained_and_unsendable_values_are_left_out() {
        let response = http::Response::new(full(bytes::Bytes::new()));
        let response = explained(response, "rules@abc", Some(("gpt", "bad\nreason")), 2);
        let h = response.headers();
        assert_eq!(h[HEADER_POLICY], "rules@abc");
        assert_eq!(h[HEADER_ATTEMPTS], "2");
        assert_eq!(h[HEADER_TARGET], "gpt");
        assert!(h.get(HEADER_REASON).is_none());
        let response = explained(http::Response::new(full(bytes::Bytes::new())), "p", None, 0);
        assert!(response.headers().get(HEADER_TARGET).is_none());
        assert_eq!(response.headers()[HEADER_ATTEMPTS], "0");
    }
}

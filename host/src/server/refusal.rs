//! What a listener answers when it refuses work for its own reasons (overload,
//! ambiguous framing, a body too slow to arrive), in the OpenAI error shape, and the
//! reasons it counts them under (`signalbox_listener_refusals_total{reason}`).

use crate::openai::ApiError;
use bytes::Bytes;
use http::StatusCode;
use std::time::Duration;

/// Reasons a listener refuses or cuts off work: the `reason` label.
pub(crate) mod reason {
    /// A connection over `max_connections`.
    pub const CONNECTION_LIMIT: &str = "connection_limit";
    /// A request over `max_in_flight`.
    pub const IN_FLIGHT_LIMIT: &str = "in_flight_limit";
    /// Headers not received within `header_read_timeout_ms`.
    pub const HEADER_TIMEOUT: &str = "header_timeout";
    /// A body not received within `body_read_timeout_ms`.
    pub const BODY_TIMEOUT: &str = "body_timeout";
    /// A head over `max_header_bytes` or `max_header_count`, or a request line too long.
    pub const HEADERS_TOO_LARGE: &str = "headers_too_large";
    /// A head hyper could not parse.
    pub const MALFORMED: &str = "malformed";
    /// Content-Length with Transfer-Encoding, or Content-Length twice.
    pub const AMBIGUOUS_FRAMING: &str = "ambiguous_framing";
    /// HTTP/2 control frames over `http2_max_control_frames_per_sec`.
    pub const HTTP2_FLOOD: &str = "http2_flood";
    /// An HTTP/2 connection ended by a protocol error (h2's own limits included: too
    /// many reset streams, a header list too large, a CONTINUATION flood).
    pub const HTTP2_PROTOCOL: &str = "http2_protocol";
    /// A connection with nothing in flight for `idle_timeout_ms`.
    pub const IDLE_TIMEOUT: &str = "idle_timeout";
}

/// 503 for a request over the listener's in-flight limit.
pub(crate) fn overloaded(retry_after_secs: u64) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message: "The gateway is at capacity; retry after the time in Retry-After.".into(),
        kind: "server_error",
        code: Some("overloaded"),
        retry_after: Some(retry_after_secs),
    }
}

/// 408 for a body that did not arrive in time.
pub(crate) fn body_timeout(timeout: Duration) -> ApiError {
    ApiError {
        status: StatusCode::REQUEST_TIMEOUT,
        message: format!(
            "The request body did not arrive within {} ms.",
            timeout.as_millis()
        ),
        kind: "invalid_request_error",
        code: Some("request_timeout"),
        retry_after: None,
    }
}

/// 400 for a head whose body framing is ambiguous.
pub(crate) fn ambiguous_framing(message: &str) -> ApiError {
    ApiError {
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
        kind: "invalid_request_error",
        code: Some("ambiguous_framing"),
        retry_after: None,
    }
}

/// The whole answer written to a connection over `max_connections` before it is
/// closed: an HTTP/1.1 503 with the OpenAI error body, built once per listener so
/// refusing costs one write.
pub(crate) fn shed_connection(retry_after_secs: u64) -> Bytes {
    let body = overloaded(retry_after_secs).body();
    let mut bytes = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: {retry_after_secs}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend(body);
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_shed_connection_reads_as_a_complete_http_response() {
        let bytes = shed_connection(2);
        let mut headers = [httparse::EMPTY_HEADER; 8];
        let mut response = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head) = response.parse(&bytes).unwrap() else {
            panic!("partial");
        };
        assert_eq!(response.code, Some(503));
        let body: serde_json::Value = serde_json::from_slice(&bytes[head..]).unwrap();
        assert_eq!(body["error"]["code"], "overloaded");
        assert!(
            response
                .headers
                .iter()
                .any(|h| h.name == "retry-after" && h.value == b"2")
        );
    }
}

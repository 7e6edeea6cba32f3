//! Responses to clients.

use super::ApiError;
use crate::protocol::Protocol;
use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use std::convert::Infallible;

/// The body of every response the gateway sends. It cannot fail: an upstream that
/// breaks mid-stream is reported to the client as an SSE error event, not by
/// aborting the connection.
pub type ResponseBody = BoxBody<Bytes, Infallible>;

/// A body of these bytes.
pub fn full(bytes: impl Into<Bytes>) -> ResponseBody {
    http_body_util::Full::new(bytes.into()).boxed()
}

/// A JSON response.
pub fn json(status: http::StatusCode, body: &serde_json::Value) -> http::Response<ResponseBody> {
    let mut response = http::Response::new(full(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

impl ApiError {
    /// This error as a response in OpenAI's shape.
    pub fn into_response(self) -> http::Response<ResponseBody> {
        self.into_response_in(Protocol::Chat)
    }

    /// This error as a response in the shape of the protocol the client spoke.
    pub fn into_response_in(self, protocol: Protocol) -> http::Response<ResponseBody> {
        let body = match protocol {
            Protocol::Chat | Protocol::Responses => self.body(),
            Protocol::Messages => crate::anthropic::error_body(self.status.as_u16(), &self.message),
        };
        let mut response = http::Response::new(full(body));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(secs));
        }
        response
    }
}

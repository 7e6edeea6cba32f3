//! Answers put into another protocol on their way down: a JSON body translated when
//! first read, a stream event by event through a stateful translator.

use super::sse::SseError;
use super::{UpstreamBody, UpstreamError};
use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

/// Why a body or stream could not be translated.
///
/// Messages never quote request or response content, only say which part was
/// wrong, so they are safe to log and to return to clients.
#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    /// The client's request cannot be expressed in the upstream's protocol.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The upstream sent something that is not a well-formed answer of its protocol.
    #[error("invalid upstream response: {0}")]
    InvalidResponse(String),
    /// The upstream reported an error inside the stream (an `error` event).
    #[error("upstream error: {0}")]
    Upstream(String),
    /// The upstream stream ended before its end (`message_stop`, `data: [DONE]`).
    #[error("the upstream stream ended before its end")]
    Truncated,
    /// The upstream stream is not usable SSE.
    #[error("invalid upstream stream: {0}")]
    Sse(#[from] SseError),
}

/// Longest upstream error message passed on, in characters: upstream text ends up
/// in client responses and logs, so it is kept short.
pub(crate) const MAX_ERROR_MESSAGE_CHARS: usize = 300;

/// An upstream's error message made safe to pass on: shortened, and with control
/// characters (which could forge log lines or break header values) replaced.
pub(crate) fn safe_message(message: &str) -> String {
    message
        .chars()
        .take(MAX_ERROR_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Largest non-streamed answer or error body read from an upstream to translate.
const MAX_BODY: usize = 32 << 20;

/// A stateful translator of one stream into another protocol's events.
pub(super) trait StreamTranslation: Send + Sync + 'static {
    /// Takes upstream bytes (cut anywhere); returns the events they complete.
    fn feed(&mut self, bytes: &[u8]) -> Result<String, TranslateError>;
    /// At the upstream's end: the closing events, or why the stream is incomplete.
    fn finish(&mut self) -> Result<String, TranslateError>;
}

/// A body of one frame, computed when first polled (so the dispatcher's timeouts
/// apply to reading the upstream, not to `send`).
pub(super) fn lazy<F>(make: F) -> UpstreamBody
where
    F: Future<Output = Result<Bytes, UpstreamError>> + Send + Sync + 'static,
{
    let stream = futures_util::stream::once(async move { make.await.map(Frame::data) });
    StreamBody::new(stream).boxed()
}

/// The whole body, refused past [`MAX_BODY`].
pub(super) async fn collect(body: UpstreamBody) -> Result<Bytes, UpstreamError> {
    http_body_util::Limited::new(body, MAX_BODY)
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| UpstreamError::Body(e.to_string()))
}

/// Feeds the upstream's stream through `translator`, yielding its events.
pub(super) fn translate_stream<T: StreamTranslation>(
    upstream: UpstreamBody,
    translator: T,
) -> UpstreamBody {
    let state = Some((upstream, translator));
    let stream = futures_util::stream::unfold(state, |state| async move {
        let (mut upstream, mut translator) = state?;
        loop {
            match upstream.frame().await {
                Some(Ok(frame)) => {
                    let Ok(data) = frame.into_data() else {
                        continue;
                    };
                    match translator.feed(&data) {
                        Ok(out) if out.is_empty() => continue,
                        Ok(out) => {
                            return Some((
                                Ok(Frame::data(Bytes::from(out))),
                                Some((upstream, translator)),
                            ));
                        }
                        Err(e) => return Some((Err(UpstreamError::Body(e.to_string())), None)),
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    return match translator.finish() {
                        Ok(out) if out.is_empty() => None,
                        Ok(out) => Some((Ok(Frame::data(Bytes::from(out))), None)),
                        Err(e) => Some((Err(UpstreamError::Body(e.to_string())), None)),
                    };
                }
            }
        }
    });
    StreamBody::new(stream).boxed()
}

/// Sets the content type of a translated answer (and drops the upstream's length,
/// which no longer holds).
pub(super) fn set_content_type(parts: &mut http::response::Parts, content_type: &'static str) {
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(content_type),
    );
    parts.headers.remove(http::header::CONTENT_LENGTH);
}

/// Whether the upstream answered a stream.
pub(super) fn is_stream(parts: &http::response::Parts) -> bool {
    parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/event-stream"))
}

/// Seconds since the epoch, for translated answers' `created`.
pub(super) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

//! Answers put into another protocol on their way down: a JSON body translated when
//! first read, a stream event by event through a stateful translator.

use super::anthropic_wire::TranslateError;
use super::{UpstreamBody, UpstreamError};
use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};

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

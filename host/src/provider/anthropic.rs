//! Anthropic's Messages API behind the OpenAI wire format: requests are translated on
//! the way up, answers (JSON, SSE streams and errors) on the way down, so an OpenAI
//! client cannot tell the difference.

use super::anthropic_wire::{self, StreamTranslator};
use super::{Attempt, AttemptKind, HttpsClient, UpstreamBody, UpstreamError, post_json};
use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use serde_json::{Value, json};

/// The API version this adapter speaks.
const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; this is used when the client set none.
const DEFAULT_MAX_TOKENS: u32 = 4096;
/// Largest non-streamed answer or error body read from the upstream.
const MAX_BODY: usize = 32 << 20;

pub(super) struct Anthropic {
    client: HttpsClient,
    url: String,
    headers: Vec<(&'static str, String)>,
}

impl Anthropic {
    pub fn new(
        client: HttpsClient,
        base_url: &str,
        key: Option<&str>,
    ) -> Result<Self, UpstreamError> {
        let mut headers = vec![("anthropic-version", API_VERSION.to_owned())];
        if let Some(key) = key {
            headers.push(("x-api-key", key.to_owned()));
        }
        Ok(Anthropic {
            client,
            url: format!("{}/messages", base_url.trim_end_matches('/')),
            headers,
        })
    }

    pub async fn send(
        &self,
        model: &str,
        attempt: Attempt<'_>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        if attempt.kind == AttemptKind::Embeddings {
            return Err(UpstreamError::Unsupported(
                "Anthropic targets do not serve embeddings",
            ));
        }
        let request = anthropic_wire::to_messages_request(
            &attempt.body.to_value(),
            model,
            DEFAULT_MAX_TOKENS,
        )
        .map_err(|e| UpstreamError::Request(e.to_string()))?;
        let body =
            serde_json::to_vec(&request).map_err(|e| UpstreamError::Request(e.to_string()))?;
        let response = post_json(&self.client, &self.url, &self.headers, body).await?;
        let (mut parts, upstream) = response.into_parts();
        let created = unix_now();
        let model = model.to_owned();

        let body: UpstreamBody = if !parts.status.is_success() {
            // Errors become OpenAI-shaped, keeping the upstream's status.
            parts.headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            lazy(async move {
                let bytes = collect(upstream).await?;
                let message = anthropic_wire::error_message(&bytes)
                    .unwrap_or_else(|| "the Anthropic upstream returned an error".to_owned());
                Ok(json!({"error": {"message": message, "type": "upstream_error", "param": null, "code": null}})
                    .to_string()
                    .into())
            })
        } else if attempt.stream {
            parts.headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("text/event-stream"),
            );
            translate_stream(
                upstream,
                StreamTranslator::new(&model, attempt.include_usage, created),
            )
        } else {
            parts.headers.insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            lazy(async move {
                let bytes = collect(upstream).await?;
                let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
                    UpstreamError::Body(format!("invalid JSON from Anthropic: {e}"))
                })?;
                let translated = anthropic_wire::from_messages_response(&value, &model, created)
                    .map_err(|e| UpstreamError::Body(e.to_string()))?;
                Ok(translated.to_string().into())
            })
        };
        parts.headers.remove(http::header::CONTENT_LENGTH);
        Ok(http::Response::from_parts(parts, body))
    }
}

/// A body of one frame, computed when first polled (so the dispatcher's timeouts
/// apply to reading the upstream, not to `send`).
fn lazy<F>(make: F) -> UpstreamBody
where
    F: Future<Output = Result<Bytes, UpstreamError>> + Send + Sync + 'static,
{
    let stream = futures_util::stream::once(async move { make.await.map(Frame::data) });
    StreamBody::new(stream).boxed()
}

async fn collect(body: UpstreamBody) -> Result<Bytes, UpstreamError> {
    let limited = http_body_util::Limited::new(body, MAX_BODY);
    limited
        .collect()
        .await
        .map(|c| c.to_bytes())
        .map_err(|e| UpstreamError::Body(e.to_string()))
}

/// Feeds upstream SSE through the translator, yielding OpenAI frames.
fn translate_stream(upstream: UpstreamBody, translator: StreamTranslator) -> UpstreamBody {
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

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

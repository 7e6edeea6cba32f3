//! Anthropic's Messages API. A chat request is translated on the way up and its
//! answer (JSON, SSE streams and errors) on the way down, so an OpenAI client cannot
//! tell the difference. A Messages request passes through byte for byte, only its
//! `model` replaced, and so does its answer.

use super::anthropic_wire::{self, StreamTranslator, TranslateError};
use super::translated::{self, StreamTranslation, collect, lazy, set_content_type, unix_now};
use super::{
    Attempt, AttemptKind, HEADER_DEGRADED, HttpsClient, UpstreamBody, UpstreamError, post_json,
};
use serde_json::{Value, json};

/// The API version this adapter speaks.
const API_VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; this is used when the client set none.
const DEFAULT_MAX_TOKENS: u32 = 4096;
pub(super) struct Anthropic {
    client: HttpsClient,
    url: String,
    headers: Vec<(&'static str, String)>,
    key: Option<String>,
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
            key: key.map(str::to_owned),
        })
    }

    /// A Messages request as the client wrote it, with the client's `anthropic-version`
    /// (or this adapter's) and `anthropic-beta`; the answer comes back untouched.
    pub async fn pass_through(
        &self,
        model: &str,
        attempt: Attempt<'_>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        let mut headers: Vec<(&'static str, String)> = Vec::with_capacity(3);
        for name in ["anthropic-version", "anthropic-beta"] {
            let values: Vec<&str> = attempt
                .forward
                .iter()
                .filter(|(n, _)| n == name)
                .filter_map(|(_, v)| v.to_str().ok())
                .collect();
            if !values.is_empty() {
                headers.push((name, values.join(",")));
            }
        }
        if !headers.iter().any(|(n, _)| *n == "anthropic-version") {
            headers.push(("anthropic-version", API_VERSION.to_owned()));
        }
        if let Some(key) = &self.key {
            headers.push(("x-api-key", key.clone()));
        }
        post_json(
            &self.client,
            &self.url,
            &headers,
            attempt.body.with_model(model),
        )
        .await
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
        let chat = attempt.body.to_value();
        let dropped = anthropic_wire::chat_fields_dropped(&chat).join(", ");
        if attempt.strict && !dropped.is_empty() {
            return Err(UpstreamError::Degraded(dropped));
        }
        let request = anthropic_wire::to_messages_request(&chat, model, DEFAULT_MAX_TOKENS)
            .map_err(|e| UpstreamError::Untranslatable(e.to_string()))?;
        let body =
            serde_json::to_vec(&request).map_err(|e| UpstreamError::Request(e.to_string()))?;
        let response = post_json(&self.client, &self.url, &self.headers, body).await?;
        let (mut parts, upstream) = response.into_parts();
        if !dropped.is_empty()
            && let Ok(value) = http::HeaderValue::from_str(&dropped)
        {
            parts.headers.insert(HEADER_DEGRADED, value);
        }
        let created = unix_now();
        let model = model.to_owned();

        let body: UpstreamBody = if !parts.status.is_success() {
            // Errors become OpenAI-shaped, keeping the upstream's status.
            set_content_type(&mut parts, "application/json");
            lazy(async move {
                let bytes = collect(upstream).await?;
                let message = anthropic_wire::error_message(&bytes)
                    .unwrap_or_else(|| "the Anthropic upstream returned an error".to_owned());
                Ok(json!({"error": {"message": message, "type": "upstream_error", "param": null, "code": null}})
                    .to_string()
                    .into())
            })
        } else if attempt.stream {
            set_content_type(&mut parts, "text/event-stream");
            translated::translate_stream(
                upstream,
                StreamTranslator::new(&model, attempt.include_usage, created),
            )
        } else {
            set_content_type(&mut parts, "application/json");
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
        Ok(http::Response::from_parts(parts, body))
    }
}

impl StreamTranslation for StreamTranslator {
    fn feed(&mut self, bytes: &[u8]) -> Result<String, TranslateError> {
        StreamTranslator::feed(self, bytes)
    }

    fn finish(&mut self) -> Result<String, TranslateError> {
        StreamTranslator::finish(self)
    }
}

//! A Messages request served by an upstream that speaks chat (an OpenAI-compatible
//! server, or the simulated provider): the request is translated to a chat request,
//! the answer — JSON, stream or error — back into Messages. What chat cannot carry
//! (thinking blocks, `cache_control`, …) is named in [`HEADER_DEGRADED`]; a client
//! that asked for strictness gets [`UpstreamError::Degraded`] instead, and the next
//! target is tried.

use super::anthropic_wire::{
    MessagesStream, TranslateError, chat_error_message, chat_request_from_messages,
    messages_response_from_chat,
};
use super::translated::{self, StreamTranslation, collect, lazy, set_content_type};
use super::{Attempt, HEADER_DEGRADED, Upstream, UpstreamBody, UpstreamError};
use crate::openai::JsonBody;
use crate::protocol::Protocol;
use bytes::Bytes;

pub(super) async fn send(
    upstream: &Upstream,
    model: &str,
    attempt: Attempt<'_>,
) -> Result<http::Response<UpstreamBody>, UpstreamError> {
    let translated = chat_request_from_messages(&attempt.body.to_value(), model)
        .map_err(|e| UpstreamError::Untranslatable(e.to_string()))?;
    let dropped = translated.dropped.join(", ");
    if attempt.strict && !dropped.is_empty() {
        return Err(UpstreamError::Degraded(dropped));
    }
    let body = serde_json::to_vec(&translated.body)
        .ok()
        .and_then(|b| JsonBody::parse(Bytes::from(b)).ok())
        .ok_or_else(|| {
            UpstreamError::Untranslatable("the chat request did not serialise".into())
        })?;
    let chat = Attempt {
        body: &body,
        protocol: Protocol::Chat,
        // The Messages answer reports usage whatever the client asked.
        include_usage: true,
        forward: &[],
        ..attempt
    };
    let (mut parts, answer) = upstream.send_chat(chat).await?.into_parts();
    if !dropped.is_empty()
        && let Ok(value) = http::HeaderValue::from_str(&dropped)
    {
        parts.headers.insert(HEADER_DEGRADED, value);
    }
    let model = model.to_owned();
    let status = parts.status.as_u16();
    let answer: UpstreamBody = if !parts.status.is_success() {
        set_content_type(&mut parts, "application/json");
        lazy(async move {
            let bytes = collect(answer).await?;
            let message = chat_error_message(&bytes)
                .unwrap_or_else(|| "the upstream returned an error".to_owned());
            Ok(crate::anthropic::error_body(status, &message).into())
        })
    } else if translated::is_stream(&parts) {
        set_content_type(&mut parts, "text/event-stream");
        translated::translate_stream(answer, MessagesStream::new(&model, attempt.input_estimate))
    } else {
        set_content_type(&mut parts, "application/json");
        lazy(async move {
            let bytes = collect(answer).await?;
            let value: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| UpstreamError::Body(format!("invalid JSON from the upstream: {e}")))?;
            let message = messages_response_from_chat(&value, &model)
                .map_err(|e| UpstreamError::Body(e.to_string()))?;
            Ok(message.to_string().into())
        })
    };
    Ok(http::Response::from_parts(parts, answer))
}

impl StreamTranslation for MessagesStream {
    fn feed(&mut self, bytes: &[u8]) -> Result<String, TranslateError> {
        MessagesStream::feed(self, bytes)
    }

    fn finish(&mut self) -> Result<String, TranslateError> {
        MessagesStream::finish(self)
    }
}

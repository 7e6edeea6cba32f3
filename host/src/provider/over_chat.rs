//! A request in another protocol served by an upstream that speaks chat (an
//! OpenAI-compatible server, the simulated provider, or Anthropic through its chat
//! translation): the request is translated to a chat request, the answer — JSON,
//! stream or error — back into the client's protocol. What chat cannot carry
//! (thinking blocks, `cache_control`, reasoning items, …) is named in
//! [`HEADER_DEGRADED`]; a client that asked for strictness gets
//! [`UpstreamError::Degraded`] instead, and the next target is tried.

use super::anthropic_wire::{self, MessagesStream};
use super::responses_wire::{self, ResponsesStream};
use super::translated::{
    self, StreamTranslation, TranslateError, collect, lazy, set_content_type, unix_now,
};
use super::{Attempt, HEADER_DEGRADED, Upstream, UpstreamBody, UpstreamError};
use crate::openai::JsonBody;
use crate::protocol::Protocol;
use bytes::Bytes;
use serde_json::Value;

/// One protocol's translation to chat and back.
pub(super) trait OverChat: Send + Sync + 'static {
    /// The stream translator of an answer.
    type Stream: StreamTranslation;
    /// The chat request for the client's `request`, and what it had to drop.
    fn request(
        &self,
        request: &Value,
        model: &str,
    ) -> Result<(Value, Vec<&'static str>), TranslateError>;
    /// A chat upstream's error body (`status`) in the client's protocol.
    fn error(&self, status: u16, body: &[u8]) -> Bytes;
    /// A whole chat completion in the client's protocol.
    fn whole(&self, chat: &Value, model: &str) -> Result<Value, TranslateError>;
    /// The translator of a chat stream.
    fn stream(&self, model: &str, input_estimate: u32) -> Self::Stream;
}

/// Sends `attempt`, in the protocol `over` translates, to `upstream` as chat.
pub(super) async fn send<T: OverChat>(
    upstream: &Upstream,
    model: &str,
    attempt: Attempt<'_>,
    over: T,
) -> Result<http::Response<UpstreamBody>, UpstreamError> {
    let (chat, dropped) = over
        .request(&attempt.body.to_value(), model)
        .map_err(|e| UpstreamError::Untranslatable(e.to_string()))?;
    let dropped = dropped.join(", ");
    if attempt.strict && !dropped.is_empty() {
        return Err(UpstreamError::Degraded(dropped));
    }
    let body = serde_json::to_vec(&chat)
        .ok()
        .and_then(|b| JsonBody::parse(Bytes::from(b)).ok())
        .ok_or_else(|| {
            UpstreamError::Untranslatable("the chat request did not serialise".into())
        })?;
    let chat = Attempt {
        body: &body,
        protocol: Protocol::Chat,
        // The translated answer reports usage whatever the client asked.
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
            Ok(over.error(status, &bytes))
        })
    } else if translated::is_stream(&parts) {
        set_content_type(&mut parts, "text/event-stream");
        let stream = over.stream(&model, attempt.input_estimate);
        translated::translate_stream(answer, stream)
    } else {
        set_content_type(&mut parts, "application/json");
        lazy(async move {
            let bytes = collect(answer).await?;
            let value: Value = serde_json::from_slice(&bytes)
                .map_err(|e| UpstreamError::Body(format!("invalid JSON from the upstream: {e}")))?;
            let whole = over
                .whole(&value, &model)
                .map_err(|e| UpstreamError::Body(e.to_string()))?;
            Ok(whole.to_string().into())
        })
    };
    Ok(http::Response::from_parts(parts, answer))
}

/// Anthropic's Messages over chat.
pub(super) struct Messages;

impl OverChat for Messages {
    type Stream = MessagesStream;

    fn request(
        &self,
        request: &Value,
        model: &str,
    ) -> Result<(Value, Vec<&'static str>), TranslateError> {
        anthropic_wire::chat_request_from_messages(request, model).map(|r| (r.body, r.dropped))
    }

    fn error(&self, status: u16, body: &[u8]) -> Bytes {
        let message = anthropic_wire::chat_error_message(body)
            .unwrap_or_else(|| "the upstream returned an error".to_owned());
        crate::anthropic::error_body(status, &message).into()
    }

    fn whole(&self, chat: &Value, model: &str) -> Result<Value, TranslateError> {
        anthropic_wire::messages_response_from_chat(chat, model)
    }

    fn stream(&self, model: &str, input_estimate: u32) -> MessagesStream {
        MessagesStream::new(model, input_estimate)
    }
}

impl StreamTranslation for MessagesStream {
    fn feed(&mut self, bytes: &[u8]) -> Result<String, TranslateError> {
        MessagesStream::feed(self, bytes)
    }

    fn finish(&mut self) -> Result<String, TranslateError> {
        MessagesStream::finish(self)
    }
}

/// OpenAI's Responses over chat: the response's id and time are the gateway's.
pub(super) struct Responses {
    id: String,
    created_at: u64,
}

impl Responses {
    pub fn new() -> Self {
        let mut random = [0u8; 12];
        // Ids need only be unique, not secret: the clock stands in if the
        // operating system's source fails.
        if getrandom::fill(&mut random).is_err() {
            random[..8].copy_from_slice(&unix_now().to_le_bytes());
        }
        let hex: String = random.iter().map(|b| format!("{b:02x}")).collect();
        Responses {
            id: format!("resp_{hex}"),
            created_at: unix_now(),
        }
    }
}

impl OverChat for Responses {
    type Stream = ResponsesStream;

    fn request(
        &self,
        request: &Value,
        model: &str,
    ) -> Result<(Value, Vec<&'static str>), TranslateError> {
        responses_wire::chat_request_from_responses(request, model).map(|r| (r.body, r.dropped))
    }

    /// Chat's errors are OpenAI's, which the Responses API shares.
    fn error(&self, _status: u16, body: &[u8]) -> Bytes {
        Bytes::copy_from_slice(body)
    }

    fn whole(&self, chat: &Value, model: &str) -> Result<Value, TranslateError> {
        responses_wire::response_from_chat(chat, model, &self.id, self.created_at)
    }

    fn stream(&self, model: &str, _input_estimate: u32) -> ResponsesStream {
        ResponsesStream::new(model, &self.id, self.created_at)
    }
}

impl StreamTranslation for ResponsesStream {
    fn feed(&mut self, bytes: &[u8]) -> Result<String, TranslateError> {
        ResponsesStream::feed(self, bytes)
    }

    fn finish(&mut self) -> Result<String, TranslateError> {
        ResponsesStream::finish(self)
    }
}

//! Translation between the OpenAI Chat Completions wire format and Anthropic's
//! Messages API, both ways: requests, non-streaming responses, error bodies and SSE
//! streams. A chat client served by an Anthropic upstream uses `request`,
//! `response` and `stream`; a Messages client served by a chat upstream uses
//! `to_chat`, `from_chat` and `chat_stream`.
//!
//! Bodies stay `serde_json::Value` because the gateway keeps them that way for
//! every upstream; only the fields that matter are read, so unexpected extra
//! fields in either direction are tolerated rather than rejected.
//!
//! OpenAI request fields with no Anthropic equivalent are dropped: `n`,
//! `presence_penalty`, `frequency_penalty`, `logit_bias`, `logprobs`,
//! `top_logprobs`, `response_format`, `seed`, `service_tier`, `store`,
//! `stream_options` (the caller passes `include_usage` to
//! [`StreamTranslator::new`] instead), `modalities`, `audio`, `prediction`,
//! `reasoning_effort`, `web_search_options`, the legacy `functions` /
//! `function_call`, message `name`s, and anything else not listed in
//! [`to_messages_request`].
//!
//! `request` translates requests (with `tools` for tool definitions and the tool
//! choice), `response` non-streaming responses and error bodies, `stream` SSE streams.

mod chat_stream;
mod from_chat;
mod request;
mod response;
mod stream;
mod to_chat;
mod tools;

pub use chat_stream::MessagesStream;
pub use from_chat::{chat_error_message, messages_response_from_chat, stop_reason};
pub use request::{chat_fields_dropped, to_messages_request};
pub use response::{error_message, from_messages_response};
pub use stream::StreamTranslator;
pub use to_chat::{ChatRequest, chat_request_from_messages};

use thiserror::Error;

use super::sse::SseError;
use crate::usage::Usage;

/// Why a body or stream could not be translated.
///
/// Messages never quote request or response content, only say which part was
/// wrong, so they are safe to log and to return to clients.
#[derive(Debug, Error)]
pub enum TranslateError {
    /// The client's request cannot be expressed as an Anthropic request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The upstream sent something that is not a well-formed Anthropic response.
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
pub(super) const MAX_ERROR_MESSAGE_CHARS: usize = 300;

/// An upstream's error message made safe to pass on: shortened, and with control
/// characters (which could forge log lines or break header values) replaced.
pub(super) fn safe_message(message: &str) -> String {
    message
        .chars()
        .take(MAX_ERROR_MESSAGE_CHARS)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Anthropic's `usage` of `usage`: its `input_tokens` exclude the cache's reads and
/// writes, which it counts apart.
pub(super) fn messages_usage(usage: &Usage) -> serde_json::Value {
    serde_json::json!({
        "input_tokens": usage.uncached_input(),
        "output_tokens": usage.output,
        "cache_read_input_tokens": usage.cache_read,
        "cache_creation_input_tokens": usage.cache_write,
    })
}

/// Chat's `usage` of `usage`: the cache's reads as `prompt_tokens_details.cached_tokens`;
/// its writes, for which chat has no field, as `cache_creation_input_tokens` beside
/// (the name Anthropic gives them), so that the cost of an answer stays readable.
pub(super) fn chat_usage(usage: &Usage) -> serde_json::Value {
    let mut value = serde_json::json!({
        "prompt_tokens": usage.input,
        "completion_tokens": usage.output,
        "total_tokens": u64::from(usage.input) + u64::from(usage.output),
    });
    if usage.cache_read > 0 {
        value["prompt_tokens_details"] = serde_json::json!({"cached_tokens": usage.cache_read});
    }
    if usage.cache_write > 0 {
        value["cache_creation_input_tokens"] = usage.cache_write.into();
    }
    value
}

pub(super) fn bad_request(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

pub(super) fn bad_response(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidResponse(message.into())
}

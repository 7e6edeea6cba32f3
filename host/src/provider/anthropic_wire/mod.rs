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

pub use super::translated::TranslateError;
pub(super) use super::translated::safe_message;
use crate::usage::Usage;

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

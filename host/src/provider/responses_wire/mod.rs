//! Translation between OpenAI's Responses API (`POST /v1/responses`) and its Chat
//! Completions API, for a client that speaks Responses in front of an upstream that
//! speaks only Chat: the request (`to_chat`), a whole completion (`from_chat`) and a
//! chunk stream (`chat_stream`).
//!
//! Bodies stay `serde_json::Value` because the gateway keeps them that way for every
//! upstream; only the fields that matter are read, so unexpected extra fields in
//! either direction are tolerated rather than rejected.
//!
//! The gateway keeps no responses, so what needs them is not served: a
//! `previous_response_id`, a `conversation`, a stored `prompt` or an
//! `item_reference`. Built-in tools run inside OpenAI's service, so they and their
//! calls are left out as well. What is left out is named in
//! [`ChatRequest::dropped`]. The `response` objects sent back echo the defaults of
//! the request parameters (`tools: []`, `temperature: null`, ...), not what the
//! client sent: the gateway translates the answer without the request at hand.

mod chat_stream;
mod from_chat;
mod to_chat;

pub use chat_stream::ResponsesStream;
pub use from_chat::response_from_chat;
pub use to_chat::{ChatRequest, chat_request_from_responses};

pub use super::translated::TranslateError;
use super::translated::safe_message;

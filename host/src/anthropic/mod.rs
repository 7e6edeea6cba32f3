//! Anthropic's Messages API as clients speak it (`POST /v1/messages`, the
//! `count_tokens` call): reading their requests once, and answering errors in
//! Anthropic's shape. Claude Code and the Anthropic SDKs need nothing but the
//! gateway's address as their base URL and a gateway key as their API key.

mod error;
mod request;

pub use error::{error_body, error_type};
pub use request::{MessagesRequest, count_tokens, parse_messages};

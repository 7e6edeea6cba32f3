//! Reading a Responses API request (`POST /v1/responses`) once: what the gateway and
//! the policy need, with the body kept for the translation to the upstream.
//!
//! The gateway keeps no responses yet, so a request that builds on a stored one
//! (`previous_response_id`, `conversation`) is refused with a 400 that says so, rather
//! than answered without the conversation it names.

use super::body::JsonBody;
use super::request::{lenient, metadata, model_of, object};
use super::{ApiError, codes};
use crate::policy::{ChatMessage, Endpoint, RequestFields, Role, RouteRequest};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::Value;
use signalbox_contract::estimate_tokens;
use std::sync::Arc;

/// A parsed `POST /v1/responses` body.
#[derive(Debug, Clone)]
pub struct ResponsesRequest {
    /// The body as sent.
    pub body: JsonBody,
    /// The model or alias asked for.
    pub model: String,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// `max_output_tokens`.
    pub max_output_tokens: Option<u32>,
    /// `temperature`, for telemetry.
    pub temperature: Option<f64>,
    /// Whether tools are offered.
    pub has_tools: bool,
    /// Roles and text, for the policy.
    pub messages: Arc<[ChatMessage]>,
    /// Estimated input tokens.
    pub input_tokens: u32,
    /// Routing metadata from headers and the body's `metadata`.
    pub metadata: Vec<(String, String)>,
    /// The client asked for strictness ([`crate::protocol::HEADER_STRICT`]).
    pub strict: bool,
}

/// Parses a Responses request.
pub fn parse_responses(bytes: Bytes, headers: &HeaderMap) -> Result<ResponsesRequest, ApiError> {
    let body = object(bytes)?;
    let model = model_of(&body)?;
    for key in ["previous_response_id", "conversation"] {
        if lenient::<Value>(&body, key).is_some_and(|v| !v.is_null()) {
            return Err(ApiError::invalid_request(
                codes::INVALID_VALUE,
                format!(
                    "`{key}` is not supported: this gateway keeps no responses yet. Send the whole conversation in `input`."
                ),
            ));
        }
    }
    let messages = conversation(&body)?;
    let input_tokens = messages
        .iter()
        .map(|m| estimate_tokens(&m.text).saturating_add(4))
        .fold(0u32, u32::saturating_add);
    Ok(ResponsesRequest {
        stream: lenient::<bool>(&body, "stream").unwrap_or(false),
        max_output_tokens: lenient::<u64>(&body, "max_output_tokens")
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX)),
        temperature: lenient::<f64>(&body, "temperature"),
        has_tools: lenient::<Vec<serde::de::IgnoredAny>>(&body, "tools")
            .is_some_and(|t| !t.is_empty()),
        metadata: metadata(headers, &body),
        strict: crate::protocol::is_strict(headers),
        messages: messages.into(),
        model,
        input_tokens,
        body,
    })
}

impl ResponsesRequest {
    /// The request as the policy sees it: a chat.
    pub fn route_request(&self, id: &str) -> RouteRequest {
        RouteRequest::new(
            RequestFields {
                id: id.to_owned(),
                endpoint: Endpoint::Chat,
                model: self.model.clone(),
                input_tokens: self.input_tokens,
                max_output_tokens: self.max_output_tokens,
                stream: self.stream,
                has_tools: self.has_tools,
                metadata: self.metadata.clone(),
            },
            self.messages.clone(),
        )
    }
}

/// `instructions` and `input` as roles and text: message items by their role, a
/// function call by its arguments, a function call's output as a tool message.
fn conversation(body: &JsonBody) -> Result<Vec<ChatMessage>, ApiError> {
    let mut out = Vec::new();
    if let Some(instructions) = lenient::<String>(body, "instructions")
        && !instructions.is_empty()
    {
        out.push(ChatMessage::new(Role::System, instructions));
    }
    match lenient::<Value>(body, "input") {
        Some(Value::String(text)) => out.push(ChatMessage::new(Role::User, text)),
        Some(Value::Array(items)) => {
            for item in &items {
                let text = |v: Option<&Value>| match v {
                    Some(Value::String(s)) => s.clone(),
                    Some(Value::Array(parts)) => parts
                        .iter()
                        .filter_map(|p| p.get("text").and_then(Value::as_str))
                        .collect::<Vec<_>>()
                        .join("\n"),
                    _ => String::new(),
                };
                let kind = item
                    .get("type")
                    .and_then(Value::as_str)
                    .unwrap_or("message");
                let (role, text) = match kind {
                    "message" => {
                        let role = match item.get("role").and_then(Value::as_str) {
                            Some("system" | "developer") => Role::System,
                            Some("assistant") => Role::Assistant,
                            _ => Role::User,
                        };
                        (role, text(item.get("content")))
                    }
                    "function_call" => (Role::Assistant, text(item.get("arguments"))),
                    "function_call_output" => (Role::Tool, text(item.get("output"))),
                    _ => continue,
                };
                out.push(ChatMessage::new(role, text));
            }
        }
        Some(_) => {
            return Err(ApiError::invalid_request(
                codes::INVALID_TYPE,
                "`input` must be a string or an array of input items.",
            ));
        }
        None => {
            return Err(ApiError::invalid_request(
                codes::MISSING_PARAMETER,
                "Missing required parameter: 'input'.",
            ));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_requests_are_read_once() {
        let body = br#"{"model":"auto","instructions":"Be brief.","stream":true,"max_output_tokens":99,
            "input":[{"role":"user","content":[{"type":"input_text","text":"Weather?"}]},
                     {"type":"function_call","call_id":"c1","name":"w","arguments":"{\"city\":\"Paris\"}"},
                     {"type":"function_call_output","call_id":"c1","output":"18C"}],
            "tools":[{"type":"function","name":"w","parameters":{}}]}"#;
        let r = parse_responses(Bytes::from_static(body), &HeaderMap::new()).unwrap();
        assert!(r.stream && r.has_tools);
        assert_eq!(r.max_output_tokens, Some(99));
        let roles: Vec<(Role, &str)> = r.messages.iter().map(|m| (m.role, &*m.text)).collect();
        assert_eq!(
            roles,
            [
                (Role::System, "Be brief."),
                (Role::User, "Weather?"),
                (Role::Assistant, "{\"city\":\"Paris\"}"),
                (Role::Tool, "18C"),
            ]
        );
    }

    #[test]
    fn what_needs_a_stored_response_is_refused() {
        let h = HeaderMap::new();
        let msg = |b: &'static [u8]| {
            parse_responses(Bytes::from_static(b), &h)
                .unwrap_err()
                .message
        };
        assert!(
            msg(br#"{"model":"m","input":"x","previous_response_id":"resp_1"}"#)
                .contains("keeps no responses")
        );
        assert!(
            msg(br#"{"model":"m","input":"x","conversation":"conv_1"}"#).contains("conversation")
        );
        assert!(msg(br#"{"model":"m"}"#).contains("'input'"));
        assert!(msg(br#"{"model":"m","input":3}"#).contains("`input`"));
        assert!(
            parse_responses(
                Bytes::from_static(br#"{"model":"m","input":"x","previous_response_id":null}"#),
                &h
            )
            .is_ok()
        );
    }
}

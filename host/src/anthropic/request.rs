//! Reading a Messages request once: what the gateway and the policy need, with the
//! body kept verbatim for an Anthropic upstream (which gets it byte for byte, only
//! `model` replaced) and translated for any other.

use crate::openai::{ApiError, JsonBody, codes, lenient, metadata, model_of, object};
use crate::policy::{ChatMessage, Endpoint, RequestFields, Role, RouteRequest};
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value;
use signalbox_contract::estimate_tokens;
use std::sync::Arc;

/// The client headers an Anthropic upstream is given as they came: the API version
/// the client speaks, and the beta features it opted into.
const FORWARDED: [HeaderName; 2] = [
    HeaderName::from_static("anthropic-version"),
    HeaderName::from_static("anthropic-beta"),
];

/// A parsed `POST /v1/messages` body.
#[derive(Debug, Clone)]
pub struct MessagesRequest {
    /// The body as sent; unknown fields are passed upstream unchanged.
    pub body: JsonBody,
    /// The model or alias asked for.
    pub model: String,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// `max_tokens`.
    pub max_output_tokens: u32,
    /// `temperature`, for telemetry.
    pub temperature: Option<f64>,
    /// Whether tools are offered.
    pub has_tools: bool,
    /// Roles and text, for the policy (tool results as tool messages).
    pub messages: Arc<[ChatMessage]>,
    /// Estimated input tokens.
    pub input_tokens: u32,
    /// Routing metadata from headers and the body's `metadata`.
    pub metadata: Vec<(String, String)>,
    /// The `anthropic-*` headers to pass to an Anthropic upstream.
    pub forward: Vec<(HeaderName, HeaderValue)>,
    /// The client asked for strictness ([`crate::protocol::HEADER_STRICT`]).
    pub strict: bool,
}

/// Parses a Messages request.
pub fn parse_messages(bytes: Bytes, headers: &HeaderMap) -> Result<MessagesRequest, ApiError> {
    let body = object(bytes)?;
    let model = model_of(&body)?;
    let max_output_tokens = match lenient::<Value>(&body, "max_tokens") {
        Some(Value::Number(n)) if n.as_u64().is_some_and(|n| n > 0) => {
            u32::try_from(n.as_u64().unwrap_or(0)).unwrap_or(u32::MAX)
        }
        Some(_) => {
            return Err(ApiError::invalid_request(
                codes::INVALID_VALUE,
                "max_tokens: must be a positive integer.",
            ));
        }
        None => {
            return Err(ApiError::invalid_request(
                codes::MISSING_PARAMETER,
                "max_tokens: Field required.",
            ));
        }
    };
    let messages = conversation(&body)?;
    let input_tokens = tokens(&messages);
    let strict = crate::protocol::is_strict(headers);
    let forward = FORWARDED
        .iter()
        .flat_map(|name| {
            headers
                .get_all(name)
                .iter()
                .map(|v| (name.clone(), v.clone()))
        })
        .collect();
    Ok(MessagesRequest {
        stream: lenient::<bool>(&body, "stream").unwrap_or(false),
        temperature: lenient::<f64>(&body, "temperature"),
        has_tools: lenient::<Vec<serde::de::IgnoredAny>>(&body, "tools")
            .is_some_and(|t| !t.is_empty()),
        metadata: metadata(headers, &body),
        messages: messages.into(),
        model,
        max_output_tokens,
        input_tokens,
        forward,
        strict,
        body,
    })
}

/// `POST /v1/messages/count_tokens`: the gateway's estimate of the request's input
/// tokens (the same estimate its quotas and policies use).
pub fn count_tokens(bytes: Bytes) -> Result<u32, ApiError> {
    let body = object(bytes)?;
    model_of(&body)?;
    Ok(tokens(&conversation(&body)?))
}

impl MessagesRequest {
    /// The request as the policy sees it: a chat, in the roles and text the contract
    /// knows.
    pub fn route_request(&self, id: &str) -> RouteRequest {
        RouteRequest::new(
            RequestFields {
                id: id.to_owned(),
                endpoint: Endpoint::Chat,
                model: self.model.clone(),
                input_tokens: self.input_tokens,
                max_output_tokens: Some(self.max_output_tokens),
                stream: self.stream,
                has_tools: self.has_tools,
                metadata: self.metadata.clone(),
            },
            self.messages.clone(),
        )
    }
}

fn tokens(messages: &[ChatMessage]) -> u32 {
    messages
        .iter()
        .map(|m| estimate_tokens(&m.text).saturating_add(4))
        .fold(0u32, u32::saturating_add)
}

/// The system prompt and the turns, as roles and text: text blocks are read, a tool
/// use counts by its input, a tool result becomes a tool message; images and other
/// blocks carry no text.
fn conversation(body: &JsonBody) -> Result<Vec<ChatMessage>, ApiError> {
    let list = match lenient::<Value>(body, "messages") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid_request(
                codes::INVALID_VALUE,
                "messages: at least one message is required.",
            ));
        }
        Some(_) => {
            return Err(ApiError::invalid_request(
                codes::INVALID_TYPE,
                "messages: Input should be a valid list.",
            ));
        }
        None => {
            return Err(ApiError::invalid_request(
                codes::MISSING_PARAMETER,
                "messages: Field required.",
            ));
        }
    };
    let mut out = Vec::with_capacity(list.len() + 1);
    if let Some(system) = lenient::<Value>(body, "system") {
        let text = blocks_text(&system);
        if !text.is_empty() {
            out.push(ChatMessage::new(Role::System, text));
        }
    }
    for (i, message) in list.iter().enumerate() {
        let role = match message.get("role").and_then(Value::as_str) {
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some(_) => {
                return Err(ApiError::invalid_request(
                    codes::INVALID_VALUE,
                    format!("messages.{i}.role: Input should be 'user' or 'assistant'."),
                ));
            }
            None => {
                return Err(ApiError::invalid_request(
                    codes::MISSING_PARAMETER,
                    format!("messages.{i}.role: Field required."),
                ));
            }
        };
        let content = message.get("content");
        let mut text = Vec::new();
        match content {
            Some(Value::String(s)) => text.push(s.clone()),
            Some(Value::Array(blocks)) => {
                for block in blocks {
                    match block.get("type").and_then(Value::as_str) {
                        Some("text") | Some("thinking") => {
                            let key = if block.get("text").is_some() {
                                "text"
                            } else {
                                "thinking"
                            };
                            if let Some(t) = block.get(key).and_then(Value::as_str) {
                                text.push(t.to_owned());
                            }
                        }
                        Some("tool_use") => {
                            if let Some(input) = block.get("input") {
                                text.push(input.to_string());
                            }
                        }
                        Some("tool_result") => out.push(ChatMessage::new(
                            Role::Tool,
                            blocks_text(block.get("content").unwrap_or(&Value::Null)),
                        )),
                        _ => {}
                    }
                }
            }
            _ => {
                return Err(ApiError::invalid_request(
                    codes::INVALID_TYPE,
                    format!("messages.{i}.content: Input should be a string or a list of blocks."),
                ));
            }
        }
        if !text.is_empty() {
            out.push(ChatMessage::new(role, text.join("\n")));
        }
    }
    Ok(out)
}

/// The text of a string or of a list of blocks' `text`s.
fn blocks_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Array(blocks) => blocks
            .iter()
            .filter_map(|b| b.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_requests_are_read_once_and_kept_whole() {
        let mut headers = HeaderMap::new();
        headers.insert("anthropic-version", "2023-06-01".parse().unwrap());
        headers.insert("anthropic-beta", "tools-2024".parse().unwrap());
        headers.insert("x-signalbox-strict", "true".parse().unwrap());
        let body = br#"{"model":"auto","max_tokens":256,"stream":true,"top_k":5,
            "system":[{"type":"text","text":"be brief","cache_control":{"type":"ephemeral"}}],
            "tools":[{"name":"f","input_schema":{"type":"object"}}],
            "metadata":{"user_id":"u1"},
            "messages":[{"role":"user","content":"hello"},
                        {"role":"assistant","content":[{"type":"thinking","thinking":"hm","signature":"s"},{"type":"tool_use","id":"t","name":"f","input":{"a":1}}]},
                        {"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"42"},{"type":"text","text":"and?"}]}]}"#;
        let r = parse_messages(Bytes::from_static(body), &headers).unwrap();
        assert_eq!(r.model, "auto");
        assert!(r.stream && r.has_tools && r.strict);
        assert_eq!(r.max_output_tokens, 256);
        let roles: Vec<(Role, &str)> = r.messages.iter().map(|m| (m.role, &*m.text)).collect();
        assert_eq!(
            roles,
            [
                (Role::System, "be brief"),
                (Role::User, "hello"),
                (Role::Assistant, "hm\n{\"a\":1}"),
                (Role::Tool, "42"),
                (Role::User, "and?"),
            ]
        );
        assert_eq!(r.body.raw("top_k"), Some("5"));
        assert_eq!(r.forward.len(), 2);
        assert!(r.metadata.contains(&("user_id".into(), "u1".into())));
        assert!(r.input_tokens > 0);
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let h = HeaderMap::new();
        let msg = |b: &'static [u8]| {
            parse_messages(Bytes::from_static(b), &h)
                .unwrap_err()
                .message
        };
        assert!(msg(b"{not json").contains("could not parse the JSON body"));
        assert!(
            msg(br#"{"model":"m","messages":[{"role":"user","content":"x"}]}"#)
                .contains("max_tokens")
        );
        assert!(
            msg(br#"{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]}"#)
                .contains("max_tokens")
        );
        assert!(msg(br#"{"model":"m","max_tokens":9}"#).contains("messages"));
        assert!(
            msg(br#"{"model":"m","max_tokens":9,"messages":[{"role":"system","content":"x"}]}"#)
                .contains("messages.0.role")
        );
        assert!(
            msg(br#"{"model":"m","max_tokens":9,"messages":[{"role":"user","content":3}]}"#)
                .contains("messages.0.content")
        );
        assert_eq!(
            count_tokens(Bytes::from_static(
                br#"{"model":"m","messages":[{"role":"user","content":"hello there"}]}"#
            ))
            .unwrap(),
            estimate_tokens("hello there") + 4
        );
    }
}

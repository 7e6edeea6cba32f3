//! Reading a client's request body once: what the gateway and the policy need, with
//! everything else kept verbatim for the upstream.

use super::body::{BodyError, JsonBody};
use super::{ApiError, codes};
use crate::policy::{ChatMessage, Endpoint, RequestFields, Role, RouteRequest};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{Map, Value};
use signalbox_contract::estimate_tokens;
use std::sync::Arc;

/// Header prefix whose entries become routing metadata (`x-signalbox-tag: code` →
/// `("tag", "code")`).
const METADATA_PREFIX: &str = "x-signalbox-";

/// A parsed `POST /v1/chat/completions` body.
#[derive(Debug, Clone)]
pub struct ChatRequest {
    /// The body as sent; unknown fields are passed upstream unchanged.
    pub body: JsonBody,
    /// The model or alias asked for.
    pub model: String,
    /// Whether a stream was asked for.
    pub stream: bool,
    /// `stream_options.include_usage`.
    pub include_usage: bool,
    /// `max_completion_tokens` or `max_tokens`.
    pub max_output_tokens: Option<u32>,
    /// `temperature`, for telemetry (the upstream reads it from the body).
    pub temperature: Option<f64>,
    /// Whether tools are offered.
    pub has_tools: bool,
    /// Message roles and text, for the policy.
    pub messages: Arc<[ChatMessage]>,
    /// Estimated input tokens.
    pub input_tokens: u32,
    /// Routing metadata from headers and the body's `metadata`.
    pub metadata: Vec<(String, String)>,
    /// The client asked for strictness ([`crate::protocol::HEADER_STRICT`]).
    pub strict: bool,
}

/// A parsed `POST /v1/embeddings` body.
#[derive(Debug, Clone)]
pub struct EmbeddingsRequest {
    /// The body as sent.
    pub body: JsonBody,
    /// The model asked for.
    pub model: String,
    /// Estimated input tokens.
    pub input_tokens: u32,
    /// Routing metadata.
    pub metadata: Vec<(String, String)>,
}

pub(crate) fn object(bytes: Bytes) -> Result<JsonBody, ApiError> {
    JsonBody::parse(bytes).map_err(|e| match e {
        BodyError::NotObject => ApiError::invalid_request(
            codes::INVALID_BODY,
            "The request body must be a JSON object.",
        ),
        BodyError::Syntax(e) => ApiError::invalid_request(
            codes::INVALID_JSON,
            format!("We could not parse the JSON body of your request: {e}."),
        ),
    })
}

pub(crate) fn model_of(body: &JsonBody) -> Result<String, ApiError> {
    match body.get::<String>("model") {
        Some(Ok(m)) if !m.is_empty() => Ok(m),
        Some(Ok(_)) | None => Err(ApiError::invalid_request(
            codes::MISSING_PARAMETER,
            "You must provide a model parameter.",
        )),
        Some(Err(_)) => Err(ApiError::invalid_request(
            codes::INVALID_TYPE,
            "`model` must be a string.",
        )),
    }
}

/// A top-level field the gateway reads leniently: absent or of another shape, `None`.
pub(crate) fn lenient<T: serde::de::DeserializeOwned>(body: &JsonBody, key: &str) -> Option<T> {
    body.get(key).and_then(Result::ok)
}

/// Parses a chat completion request.
pub fn parse_chat(bytes: Bytes, headers: &HeaderMap) -> Result<ChatRequest, ApiError> {
    let body = object(bytes)?;
    let model = model_of(&body)?;
    let messages = match lenient::<Value>(&body, "messages") {
        Some(Value::Array(list)) if !list.is_empty() => list,
        Some(Value::Array(_)) => {
            return Err(ApiError::invalid_request(
                codes::INVALID_VALUE,
                "`messages` must not be empty.",
            ));
        }
        Some(_) => {
            return Err(ApiError::invalid_request(
                codes::INVALID_TYPE,
                "`messages` must be an array.",
            ));
        }
        None => {
            return Err(ApiError::invalid_request(
                codes::MISSING_PARAMETER,
                "Missing required parameter: 'messages'.",
            ));
        }
    };
    let mut parsed = Vec::with_capacity(messages.len());
    for (i, m) in messages.iter().enumerate() {
        let role = match m.get("role").and_then(Value::as_str) {
            Some("system") => Role::System,
            Some("user") => Role::User,
            Some("assistant") => Role::Assistant,
            Some("tool") | Some("function") => Role::Tool,
            Some(_) => Role::Other,
            None => {
                return Err(ApiError::invalid_request(
                    codes::MISSING_PARAMETER,
                    format!("Missing required parameter: 'messages[{i}].role'."),
                ));
            }
        };
        parsed.push(ChatMessage::new(role, text_of(m.get("content"))));
    }
    let input_tokens = parsed
        .iter()
        .map(|m| estimate_tokens(&m.text).saturating_add(4))
        .fold(0u32, u32::saturating_add);
    let stream = lenient::<bool>(&body, "stream").unwrap_or(false);
    let include_usage = lenient::<Value>(&body, "stream_options")
        .and_then(|o| o.get("include_usage").and_then(Value::as_bool))
        .unwrap_or(false);
    let max_output_tokens = ["max_completion_tokens", "max_tokens"]
        .iter()
        .find_map(|k| lenient::<u64>(&body, k))
        .map(|n| u32::try_from(n).unwrap_or(u32::MAX));
    let temperature = lenient::<f64>(&body, "temperature");
    let has_tools = lenient::<Vec<serde::de::IgnoredAny>>(&body, "tools")
        .is_some_and(|t| !t.is_empty())
        || body.raw("functions").is_some();
    let metadata = metadata(headers, &body);
    Ok(ChatRequest {
        strict: crate::protocol::is_strict(headers),
        model,
        stream,
        include_usage,
        max_output_tokens,
        temperature,
        has_tools,
        messages: parsed.into(),
        input_tokens,
        metadata,
        body,
    })
}

/// Parses an embeddings request.
pub fn parse_embeddings(bytes: Bytes, headers: &HeaderMap) -> Result<EmbeddingsRequest, ApiError> {
    let body = object(bytes)?;
    let model = model_of(&body)?;
    let input_tokens = match lenient::<Value>(&body, "input") {
        Some(Value::String(s)) => estimate_tokens(&s),
        Some(Value::Array(items)) if !items.is_empty() => items
            .iter()
            .map(|v| match v {
                Value::String(s) => estimate_tokens(s),
                // Pre-tokenised input: one token per number.
                Value::Array(tokens) => u32::try_from(tokens.len()).unwrap_or(u32::MAX),
                _ => 1,
            })
            .fold(0u32, u32::saturating_add),
        _ => {
            return Err(ApiError::invalid_request(
                codes::MISSING_PARAMETER,
                "Missing required parameter: 'input' (a string or a non-empty array).",
            ));
        }
    };
    let metadata = metadata(headers, &body);
    Ok(EmbeddingsRequest {
        body,
        model,
        input_tokens,
        metadata,
    })
}

impl ChatRequest {
    /// The request as the policy sees it.
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

impl EmbeddingsRequest {
    /// The request as the policy sees it.
    pub fn route_request(&self, id: &str) -> RouteRequest {
        RouteRequest::new(
            RequestFields {
                id: id.to_owned(),
                endpoint: Endpoint::Embedding,
                model: self.model.clone(),
                input_tokens: self.input_tokens,
                max_output_tokens: None,
                stream: false,
                has_tools: false,
                metadata: self.metadata.clone(),
            },
            Vec::new(),
        )
    }
}

/// The text of a message's `content`: a string, or its text parts joined by newlines.
fn text_of(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("\n"),
        _ => String::new(),
    }
}

pub(crate) fn metadata(headers: &HeaderMap, body: &JsonBody) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, value) in headers {
        if let Some(key) = name.as_str().strip_prefix(METADATA_PREFIX)
            && let Ok(value) = value.to_str()
        {
            out.push((key.to_owned(), value.to_owned()));
        }
    }
    if let Some(meta) = lenient::<Map<String, Value>>(body, "metadata") {
        for (k, v) in meta {
            if let Value::String(v) = v {
                out.push((k.to_ascii_lowercase(), v));
            }
        }
    }
    // OpenAI's end-user id: what canaries and sticky splits key on.
    if let Some(user) = lenient::<String>(body, "user")
        && !out.iter().any(|(k, _)| k == "user")
    {
        out.push(("user".to_owned(), user));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_requests_are_read_once_and_kept_whole() {
        let mut headers = HeaderMap::new();
        headers.insert("x-signalbox-tag", "code".parse().unwrap());
        let body = br#"{"model":"auto","stream":true,"stream_options":{"include_usage":true},
            "max_tokens":100,"seed":7,"tools":[{"type":"function","function":{"name":"f"}}],
            "metadata":{"User":"u1"},
            "messages":[{"role":"system","content":"be brief"},
                        {"role":"user","content":[{"type":"text","text":"hello"},{"type":"image_url","image_url":{"url":"x"}}]}]}"#;
        let r = parse_chat(Bytes::from_static(body), &headers).unwrap();
        assert_eq!(r.model, "auto");
        assert!(r.stream && r.include_usage && r.has_tools);
        assert_eq!(r.max_output_tokens, Some(100));
        assert_eq!(r.messages[1].text.as_ref(), "hello");
        assert_eq!(r.body.raw("seed"), Some("7"));
        assert_eq!(
            r.metadata,
            vec![("tag".into(), "code".into()), ("user".into(), "u1".into())]
        );
    }

    #[test]
    fn bad_requests_say_what_is_wrong() {
        let h = HeaderMap::new();
        let msg = |b: &'static [u8]| parse_chat(Bytes::from_static(b), &h).unwrap_err().message;
        assert!(msg(b"{not json").contains("could not parse the JSON body"));
        assert!(msg(b"[1]").contains("must be a JSON object"));
        assert!(
            msg(br#"{"messages":[{"role":"user","content":"x"}]}"#).contains("model parameter")
        );
        assert!(msg(br#"{"model":"m"}"#).contains("'messages'"));
        assert!(msg(br#"{"model":"m","messages":[{"content":"x"}]}"#).contains("messages[0].role"));
        assert!(
            parse_embeddings(Bytes::from_static(br#"{"model":"e"}"#), &h)
                .unwrap_err()
                .message
                .contains("'input'")
        );
    }
}

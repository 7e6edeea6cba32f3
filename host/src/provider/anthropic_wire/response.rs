//! Non-streaming Anthropic responses and error bodies to OpenAI's shapes, and the
//! usage and stop-reason mappings the stream translator shares.

use serde_json::{Map, Value, json};

use super::{TranslateError, bad_response, chat_usage, safe_message};
use crate::usage::Usage;

/// Translates a non-streaming Anthropic message into an OpenAI
/// `chat.completion` object reporting `client_model` (the name the client
/// asked for, not the upstream's).
///
/// Text blocks are concatenated into `content` (`null` when there are none),
/// `tool_use` blocks become `tool_calls`, and other block types (e.g.
/// `thinking`) are dropped. Cache read/creation tokens count as prompt tokens,
/// since the client was billed for them as input.
pub fn from_messages_response(
    anthropic: &Value,
    client_model: &str,
    created: u64,
) -> Result<Value, TranslateError> {
    let id = anthropic
        .get("id")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_response("message has no `id`"))?;
    let blocks = anthropic
        .get("content")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_response("message has no `content` array"))?;

    let mut text: Option<String> = None;
    let mut tool_calls = Vec::new();
    for block in blocks {
        match block.get("type").and_then(Value::as_str) {
            Some("text") => {
                let piece = block
                    .get("text")
                    .and_then(Value::as_str)
                    .ok_or_else(|| bad_response("text block has no `text`"))?;
                text.get_or_insert_with(String::new).push_str(piece);
            }
            Some("tool_use") => {
                let call_id = block.get("id").and_then(Value::as_str);
                let name = block.get("name").and_then(Value::as_str);
                let (Some(call_id), Some(name)) = (call_id, name) else {
                    return Err(bad_response("tool_use block missing `id` or `name`"));
                };
                let arguments = block
                    .get("input")
                    .map_or_else(|| "{}".to_owned(), Value::to_string);
                tool_calls.push(json!({
                    "id": call_id,
                    "type": "function",
                    "function": { "name": name, "arguments": arguments },
                }));
            }
            _ => {}
        }
    }

    let mut message = Map::new();
    message.insert("role".into(), Value::from("assistant"));
    message.insert("content".into(), text.map_or(Value::Null, Value::String));
    if !tool_calls.is_empty() {
        message.insert("tool_calls".into(), Value::Array(tool_calls));
    }
    let stop_reason = anthropic.get("stop_reason").and_then(Value::as_str);
    let mut usage = Usage::default();
    if let Some(reported) = anthropic.get("usage") {
        usage.update(reported);
    }

    Ok(json!({
        "id": format!("chatcmpl-{id}"),
        "object": "chat.completion",
        "created": created,
        "model": client_model,
        "choices": [{
            "index": 0,
            "message": message,
            "finish_reason": finish_reason(stop_reason),
            "logprobs": null,
        }],
        "usage": chat_usage(&usage),
    }))
}

pub(super) fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        // end_turn, stop_sequence, pause_turn, refusal and anything newer all
        // mean "the model stopped on its own" as far as an OpenAI client knows.
        _ => "stop",
    }
}

/// Extracts a short, printable message from an Anthropic error body
/// (`{"type":"error","error":{"type":..,"message":..}}`), as
/// `"<error type>: <message>"`. Returns `None` for anything else, so callers
/// never echo an arbitrary upstream body.
pub fn error_message(anthropic_error_body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(anthropic_error_body).ok()?;
    error_text(&body)
}

pub(super) fn error_text(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    let message = error.get("message")?.as_str()?;
    let full = match error.get("type").and_then(Value::as_str) {
        Some(kind) => format!("{kind}: {message}"),
        None => message.to_owned(),
    };
    Some(safe_message(&full))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::translated::MAX_ERROR_MESSAGE_CHARS;

    #[test]
    fn response_with_text_and_tool_use() {
        let anthropic = json!({
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-x",
            "content": [
                {"type": "thinking", "thinking": "hmm", "signature": "sig"},
                {"type": "text", "text": "Checking "},
                {"type": "text", "text": "the weather."},
                {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}
            ],
            "stop_reason": "tool_use",
            "stop_sequence": null,
            "usage": {"input_tokens": 10, "cache_read_input_tokens": 5, "cache_creation_input_tokens": 2, "output_tokens": 7}
        });
        let out = from_messages_response(&anthropic, "my-model", 1700).unwrap();
        assert_eq!(
            out,
            json!({
                "id": "chatcmpl-msg_01",
                "object": "chat.completion",
                "created": 1700,
                "model": "my-model",
                "choices": [{
                    "index": 0,
                    "message": {
                        "role": "assistant",
                        "content": "Checking the weather.",
                        "tool_calls": [{"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}}]
                    },
                    "finish_reason": "tool_calls",
                    "logprobs": null
                }],
                "usage": {"prompt_tokens": 17, "completion_tokens": 7, "total_tokens": 24,
                          "prompt_tokens_details": {"cached_tokens": 5}, "cache_creation_input_tokens": 2}
            })
        );
    }

    #[test]
    fn response_stop_reasons_and_null_content() {
        for (reason, expected) in [
            ("end_turn", "stop"),
            ("stop_sequence", "stop"),
            ("max_tokens", "length"),
            ("tool_use", "tool_calls"),
            ("refusal", "stop"),
        ] {
            let anthropic = json!({"id": "m", "content": [], "stop_reason": reason});
            let out = from_messages_response(&anthropic, "m", 0).unwrap();
            assert_eq!(out["choices"][0]["finish_reason"], expected);
            assert_eq!(out["choices"][0]["message"]["content"], Value::Null);
            assert!(out["choices"][0]["message"].get("tool_calls").is_none());
            assert_eq!(out["usage"]["total_tokens"], 0);
        }
    }

    #[test]
    fn malformed_responses_are_errors() {
        for bad in [
            json!(null),
            json!({"content": []}),
            json!({"id": "m"}),
            json!({"id": "m", "content": [{"type": "tool_use"}]}),
        ] {
            assert!(matches!(
                from_messages_response(&bad, "m", 0),
                Err(TranslateError::InvalidResponse(_))
            ));
        }
    }

    #[test]
    fn error_message_extracts_only_the_message() {
        let body = br#"{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"},"request_id":"req_1"}"#;
        assert_eq!(
            error_message(body).as_deref(),
            Some("overloaded_error: Overloaded")
        );
        assert_eq!(error_message(b"<html>502</html>"), None);
        assert_eq!(error_message(br#"{"message":"x"}"#), None);
        let long = json!({"error": {"message": format!("a\nb{}", "x".repeat(1000))}});
        let msg = error_message(long.to_string().as_bytes()).unwrap();
        assert_eq!(msg.chars().count(), MAX_ERROR_MESSAGE_CHARS);
        assert!(msg.starts_with("a b"));
    }
}

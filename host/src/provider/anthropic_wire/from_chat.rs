//! OpenAI chat completions and error bodies to Anthropic Messages shapes, and the
//! stop-reason and usage mappings the stream translator shares.

use serde_json::{Value, json};

use super::{TranslateError, messages_usage, safe_message};
use crate::usage::Usage;

/// Translates a non-streaming chat completion into an Anthropic message reporting
/// `model` (the name the client asked for).
///
/// From `choices[0].message`: `content` becomes a text block, `refusal` another,
/// and each of `tool_calls` a `tool_use` block. `reasoning_content` is left out:
/// a thinking block without a signature is refused when the client sends it back.
/// Malformed tool call arguments are an error rather than passed on, because a
/// client cannot run a tool with them.
pub fn messages_response_from_chat(chat: &Value, model: &str) -> Result<Value, TranslateError> {
    let choice = chat
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or_else(|| bad_response("response has no choices"))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| bad_response("`choices[0].message` must be an object"))?;

    let mut content = Vec::new();
    for key in ["content", "refusal"] {
        match message.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if text.is_empty() => {}
            Some(Value::String(text)) => content.push(json!({ "type": "text", "text": text })),
            Some(_) => {
                return Err(bad_response(format!(
                    "`choices[0].message.{key}` must be a string"
                )));
            }
        }
    }
    let calls: &[Value] = match message.get("tool_calls") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(calls)) => calls,
        Some(_) => {
            return Err(bad_response(
                "`choices[0].message.tool_calls` must be an array",
            ));
        }
    };
    for (i, call) in calls.iter().enumerate() {
        content.push(tool_use_block(call, i)?);
    }

    let finish = choice.get("finish_reason").and_then(Value::as_str);
    let id = chat
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .unwrap_or("gateway");
    Ok(json!({
        "id": format!("msg_{id}"),
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": message_stop_reason(finish, !calls.is_empty()),
        "stop_sequence": null,
        "usage": messages_usage(&chat.get("usage").and_then(Usage::of).unwrap_or_default()),
    }))
}

fn bad_response(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidResponse(message.into())
}

fn tool_use_block(call: &Value, i: usize) -> Result<Value, TranslateError> {
    let id = call.get("id").and_then(Value::as_str);
    let function = call.get("function");
    let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
    let (Some(id), Some(name)) = (id, name) else {
        return Err(bad_response(format!(
            "`tool_calls[{i}]` has no `id` or `function.name`"
        )));
    };
    let input = tool_input(function.and_then(|f| f.get("arguments"))).ok_or_else(|| {
        bad_response(format!(
            "`tool_calls[{i}].function.arguments` is not a JSON object"
        ))
    })?;
    Ok(json!({ "type": "tool_use", "id": id, "name": name, "input": input }))
}

/// A tool call's `arguments` (a JSON string) as the object Anthropic wants as
/// `input`; `None` when it is not one.
fn tool_input(arguments: Option<&Value>) -> Option<Value> {
    let parsed: Value = match arguments {
        // Tools without parameters often come with "" or nothing at all.
        None | Some(Value::Null) => return Some(json!({})),
        Some(Value::String(text)) if text.trim().is_empty() => return Some(json!({})),
        Some(Value::String(text)) => serde_json::from_str(text).ok()?,
        Some(_) => return None,
    };
    parsed.is_object().then_some(parsed)
}

/// The Anthropic `stop_reason` for a chat `finish_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        // `stop` and anything newer: the model stopped on its own.
        _ => "end_turn",
    }
}

/// The stop reason of a whole answer. Some chat servers end an answer that calls
/// tools with `stop` (or nothing); Anthropic clients loop on `tool_use`, so an
/// answer with tool calls that otherwise ended normally reports that.
pub(super) fn message_stop_reason(finish_reason: Option<&str>, called_tools: bool) -> &'static str {
    match stop_reason(finish_reason.unwrap_or_default()) {
        "end_turn" if called_tools => "tool_use",
        other => other,
    }
}

/// The `error.message` of an OpenAI error body, shortened and with control
/// characters replaced; `None` for anything else, so callers never echo an
/// arbitrary upstream body.
pub fn chat_error_message(body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(body).ok()?;
    error_text(&body)
}

/// The `error.message` of a parsed OpenAI error object, made safe to pass on.
pub(super) fn error_text(body: &Value) -> Option<String> {
    let message = body.get("error")?.get("message")?.as_str()?;
    Some(safe_message(message))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::provider::translated::MAX_ERROR_MESSAGE_CHARS;

    fn translate(chat: Value) -> Value {
        messages_response_from_chat(&chat, "claude-alias").unwrap()
    }

    fn completion(message: Value, finish_reason: &str) -> Value {
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-up",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                      "prompt_tokens_details": {"cached_tokens": 100}}
        })
    }

    #[test]
    fn text_response() {
        let out = translate(completion(
            json!({"role": "assistant", "content": "Hello!", "reasoning_content": "thinking..."}),
            "stop",
        ));
        assert_eq!(
            out,
            json!({
                "id": "msg_chatcmpl-1",
                "type": "message",
                "role": "assistant",
                "model": "claude-alias",
                "content": [{"type": "text", "text": "Hello!"}],
                "stop_reason": "end_turn",
                "stop_sequence": null,
                "usage": {"input_tokens": 20, "output_tokens": 30, "cache_read_input_tokens": 100, "cache_creation_input_tokens": 0}
            })
        );
    }

    #[test]
    fn tool_call_response() {
        let out = translate(completion(
            json!({"role": "assistant", "content": "Let me check.", "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}},
                {"id": "call_3", "type": "function", "function": {"name": "ping"}}
            ]}),
            "tool_calls",
        ));
        assert_eq!(
            out["content"],
            json!([
                {"type": "text", "text": "Let me check."},
                {"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {"city": "Paris"}},
                {"type": "tool_use", "id": "call_2", "name": "now", "input": {}},
                {"type": "tool_use", "id": "call_3", "name": "ping", "input": {}}
            ])
        );
        assert_eq!(out["stop_reason"], "tool_use");
    }

    #[test]
    fn tool_calls_ended_with_stop_report_tool_use() {
        let message = json!({"role": "assistant", "content": null, "tool_calls": [
            {"id": "c", "type": "function", "function": {"name": "f", "arguments": "{}"}}
        ]});
        assert_eq!(
            translate(completion(message.clone(), "stop"))["stop_reason"],
            "tool_use"
        );
        assert_eq!(
            translate(completion(message, "length"))["stop_reason"],
            "max_tokens"
        );
    }

    #[test]
    fn refusal_and_empty_content() {
        let out = translate(completion(
            json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
            "content_filter",
        ));
        assert_eq!(
            out["content"],
            json!([{"type": "text", "text": "I can't help with that."}])
        );
        assert_eq!(out["stop_reason"], "refusal");
        let out = translate(completion(
            json!({"role": "assistant", "content": ""}),
            "length",
        ));
        assert_eq!(out["content"], json!([]));
        assert_eq!(out["stop_reason"], "max_tokens");
    }

    #[test]
    fn missing_id_usage_and_finish_reason() {
        let out =
            translate(json!({"choices": [{"message": {"role": "assistant", "content": "x"}}]}));
        assert_eq!(out["id"], "msg_gateway");
        assert_eq!(out["stop_reason"], "end_turn");
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 0, "output_tokens": 0, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
        );
        let out = translate(json!({
            "id": "c",
            "choices": [{"message": {"content": "x"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3}
        }));
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 7, "output_tokens": 3, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
        );
    }

    #[test]
    fn usage_saturates() {
        let out = translate(json!({
            "choices": [{"message": {"content": "x"}}],
            "usage": {"prompt_tokens": 5, "completion_tokens": u64::MAX, "prompt_tokens_details": {"cached_tokens": 9}}
        }));
        assert_eq!(out["usage"]["input_tokens"], 0);
        assert_eq!(out["usage"]["output_tokens"], u32::MAX);
        assert_eq!(out["usage"]["cache_read_input_tokens"], 9);
    }

    #[test]
    fn stop_reasons() {
        for (finish, expected) in [
            ("stop", "end_turn"),
            ("length", "max_tokens"),
            ("tool_calls", "tool_use"),
            ("function_call", "tool_use"),
            ("content_filter", "refusal"),
            ("something_new", "end_turn"),
            ("", "end_turn"),
        ] {
            assert_eq!(stop_reason(finish), expected, "{finish}");
        }
    }

    #[test]
    fn malformed_responses_are_errors() {
        let tool = |arguments: Value| {
            completion(
                json!({"content": null, "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": arguments}}]}),
                "tool_calls",
            )
        };
        for bad in [
            json!(null),
            json!({}),
            json!({"choices": []}),
            json!({"choices": [{}]}),
            json!({"choices": [{"message": "hi"}]}),
            completion(json!({"content": 5}), "stop"),
            completion(json!({"content": "x", "tool_calls": {}}), "stop"),
            completion(
                json!({"tool_calls": [{"function": {"name": "f", "arguments": "{}"}}]}),
                "tool_calls",
            ),
            completion(
                json!({"tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}),
                "tool_calls",
            ),
            tool(json!("{not json")),
            tool(json!("[1, 2]")),
            tool(json!("\"text\"")),
            tool(json!(7)),
        ] {
            assert!(
                matches!(
                    messages_response_from_chat(&bad, "m"),
                    Err(TranslateError::InvalidResponse(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn chat_error_message_reads_only_error_message() {
        let body = br#"{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}"#;
        assert_eq!(
            chat_error_message(body).as_deref(),
            Some("Rate limit reached")
        );
        assert_eq!(chat_error_message(b"<html>502</html>"), None);
        assert_eq!(chat_error_message(br#"{"message":"x"}"#), None);
        assert_eq!(chat_error_message(br#"{"error":"x"}"#), None);
        let long = json!({"error": {"message": format!("a\nb{}", "x".repeat(1000))}});
        let message = chat_error_message(long.to_string().as_bytes()).unwrap();
        assert_eq!(message.chars().count(), MAX_ERROR_MESSAGE_CHARS);
        assert!(message.starts_with("a b"));
    }
}

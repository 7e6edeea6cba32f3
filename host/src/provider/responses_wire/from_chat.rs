//! OpenAI chat completions to Responses API `response` objects, and the pieces of
//! one (output items, content parts, usage, how it ended) that the stream
//! translator builds too, so that a streamed response ends as the whole one would.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::{TranslateError, safe_message};
use crate::usage::Usage;

/// Translates a non-streaming chat completion into a Responses API `response`
/// object with id `response_id`, reporting `model` (the name the client asked for)
/// and `created_at` (Unix seconds).
///
/// From `choices[0].message`: `content` becomes an `output_text` part and `refusal`
/// a `refusal` part of one assistant `message` item, and each of `tool_calls` a
/// `function_call` item after it (two calls with the same id are an error: the
/// client could not tell their outputs apart). `reasoning_content` is left out: Chat gives no
/// reasoning item a client could send back. A `finish_reason` of `length` or
/// `content_filter` makes the response `incomplete`, and its last item with it.
/// The request parameters the object echoes (`tools`, `temperature`, ...) are
/// their defaults: the request is not at hand here.
pub fn response_from_chat(
    chat: &Value,
    model: &str,
    response_id: &str,
    created_at: u64,
) -> Result<Value, TranslateError> {
    let choice = chat
        .get("choices")
        .and_then(Value::as_array)
        .and_then(|choices| choices.first())
        .ok_or_else(|| bad_response("response has no choices"))?;
    let message = choice
        .get("message")
        .filter(|m| m.is_object())
        .ok_or_else(|| bad_response("`choices[0].message` must be an object"))?;

    let mut parts = Vec::new();
    for key in ["content", "refusal"] {
        match message.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(text)) if text.is_empty() => {}
            Some(Value::String(text)) if key == "content" => parts.push(output_text_part(text)),
            Some(Value::String(text)) => parts.push(refusal_part(text)),
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

    let mut output = Vec::new();
    if !parts.is_empty() {
        let id = item_id(response_id, "msg", output.len());
        output.push(message_item(&id, COMPLETED, parts));
    }
    let mut call_ids = HashSet::new();
    for (i, call) in calls.iter().enumerate() {
        let (call_id, name, arguments) = tool_call(call, i)?;
        // The client answers a call by its id, and OpenAI's SDKs refuse two calls
        // of one response with the same.
        if !call_ids.insert(call_id) {
            return Err(bad_response(format!(
                "`tool_calls[{i}].id` is another call's"
            )));
        }
        let id = item_id(response_id, "fc", output.len());
        output.push(function_call_item(
            &id,
            COMPLETED,
            call_id,
            name,
            &arguments_or_empty_object(arguments),
        ));
    }
    let end = End::of(choice.get("finish_reason").and_then(Value::as_str));
    end.mark_last_item(&mut output);
    let usage = chat.get("usage").and_then(Usage::of);
    Ok(response_object(
        response_id,
        created_at,
        model,
        end.status(),
        output,
        usage.as_ref(),
    ))
}

fn bad_response(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidResponse(message.into())
}

/// A chat tool call's id, function name and arguments.
fn tool_call(call: &Value, i: usize) -> Result<(&str, &str, &str), TranslateError> {
    let id = call
        .get("id")
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty());
    let function = call.get("function");
    let name = function
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .filter(|name| !name.is_empty());
    let (Some(id), Some(name)) = (id, name) else {
        return Err(bad_response(format!(
            "`tool_calls[{i}]` has no `id` or `function.name`"
        )));
    };
    let arguments = match function.and_then(|f| f.get("arguments")) {
        None | Some(Value::Null) => "",
        Some(Value::String(arguments)) => arguments.as_str(),
        Some(_) => {
            return Err(bad_response(format!(
                "`tool_calls[{i}].function.arguments` must be a string"
            )));
        }
    };
    Ok((id, name, arguments))
}

/// A call's arguments as the client gets them: chat servers give a tool without
/// parameters "" or nothing, and a Responses client parses `arguments` as JSON.
pub(super) fn arguments_or_empty_object(arguments: &str) -> String {
    if arguments.is_empty() {
        "{}".to_owned()
    } else {
        arguments.to_owned()
    }
}

/// How a response ended, from the chat `finish_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum End {
    Completed,
    /// Cut short, for this `incomplete_details.reason`.
    Incomplete(&'static str),
}

impl End {
    /// `length` ran into `max_output_tokens`; `content_filter` was stopped by a
    /// filter; anything else (`stop`, `tool_calls`, newer reasons, none) completed.
    pub(super) fn of(finish_reason: Option<&str>) -> End {
        match finish_reason {
            Some("length") => End::Incomplete("max_output_tokens"),
            Some("content_filter") => End::Incomplete("content_filter"),
            _ => End::Completed,
        }
    }

    /// The response's `status`, also the name of the stream's last event after
    /// `response.`.
    pub(super) fn status(self) -> Status {
        match self {
            End::Completed => Status::Completed,
            End::Incomplete(reason) => Status::Incomplete(reason),
        }
    }

    /// The `status` of the last output item: the one that was being written when
    /// the answer was cut short.
    pub(super) fn last_item_status(self) -> &'static str {
        match self {
            End::Completed => COMPLETED,
            End::Incomplete(_) => INCOMPLETE,
        }
    }

    fn mark_last_item(self, output: &mut [Value]) {
        if let Some(last) = output.last_mut() {
            last["status"] = Value::from(self.last_item_status());
        }
    }
}

/// A response's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    InProgress,
    Completed,
    Incomplete(&'static str),
}

impl Status {
    pub(super) fn name(self) -> &'static str {
        match self {
            Status::InProgress => "in_progress",
            Status::Completed => COMPLETED,
            Status::Incomplete(_) => INCOMPLETE,
        }
    }
}

pub(super) const COMPLETED: &str = "completed";
pub(super) const INCOMPLETE: &str = "incomplete";
pub(super) const IN_PROGRESS: &str = "in_progress";

/// The id of output item `output_index` of response `response_id`: `prefix` (`msg`
/// or `fc`, as OpenAI's own), the response id without its `resp_`, and the index,
/// so ids are the same in a streamed and a whole response and unique within one.
pub(super) fn item_id(response_id: &str, prefix: &str, output_index: usize) -> String {
    let suffix = response_id.strip_prefix("resp_").unwrap_or(response_id);
    format!("{prefix}_{suffix}_{output_index}")
}

/// An assistant `message` output item.
pub(super) fn message_item(id: &str, status: &str, content: Vec<Value>) -> Value {
    json!({
        "id": id,
        "type": "message",
        "status": status,
        "role": "assistant",
        "content": content,
    })
}

/// A `function_call` output item.
pub(super) fn function_call_item(
    id: &str,
    status: &str,
    call_id: &str,
    name: &str,
    arguments: &str,
) -> Value {
    json!({
        "id": id,
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    })
}

/// An `output_text` content part. Chat gives no annotations and, unasked, no
/// log probabilities: both are empty.
pub(super) fn output_text_part(text: &str) -> Value {
    json!({ "type": "output_text", "text": text, "annotations": [], "logprobs": [] })
}

/// A `refusal` content part.
pub(super) fn refusal_part(refusal: &str) -> Value {
    json!({ "type": "refusal", "refusal": refusal })
}

/// The Responses API `usage` of `usage`: totals, with the cache's reads and writes
/// and the reasoning as their details.
pub(super) fn responses_usage(usage: &Usage) -> Value {
    json!({
        "input_tokens": usage.input,
        "input_tokens_details": {
            "cached_tokens": usage.cache_read,
            "cache_write_tokens": usage.cache_write,
        },
        "output_tokens": usage.output,
        "output_tokens_details": { "reasoning_tokens": usage.reasoning },
        "total_tokens": u64::from(usage.input) + u64::from(usage.output),
    })
}

/// A whole `response` object. The request parameters it echoes are their defaults;
/// `usage` is null until known (and when the upstream never reported it).
pub(super) fn response_object(
    response_id: &str,
    created_at: u64,
    model: &str,
    status: Status,
    output: Vec<Value>,
    usage: Option<&Usage>,
) -> Value {
    let incomplete_details = match status {
        Status::Incomplete(reason) => json!({ "reason": reason }),
        Status::InProgress | Status::Completed => Value::Null,
    };
    json!({
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status.name(),
        "background": false,
        "error": null,
        "incomplete_details": incomplete_details,
        "instructions": null,
        "max_output_tokens": null,
        "metadata": {},
        "model": model,
        "output": output,
        "parallel_tool_calls": true,
        "previous_response_id": null,
        "reasoning": { "effort": null, "summary": null },
        "store": false,
        "temperature": null,
        "text": { "format": { "type": "text" } },
        "tool_choice": "auto",
        "tools": [],
        "top_p": null,
        "truncation": "disabled",
        "usage": usage.map(responses_usage),
    })
}

/// The `error.message` of a parsed OpenAI error object, made safe to pass on.
pub(super) fn error_text(body: &Value) -> Option<String> {
    let message = body.get("error")?.get("message")?.as_str()?;
    Some(safe_message(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "resp_abc";

    fn translate(chat: Value) -> Value {
        response_from_chat(&chat, "client-model", ID, 1_700_000_000).unwrap()
    }

    fn completion(message: Value, finish_reason: &str) -> Value {
        json!({
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1,
            "model": "gpt-up",
            "choices": [{"index": 0, "message": message, "finish_reason": finish_reason}],
            "usage": {"prompt_tokens": 120, "completion_tokens": 30, "total_tokens": 150,
                      "prompt_tokens_details": {"cached_tokens": 100},
                      "completion_tokens_details": {"reasoning_tokens": 8}}
        })
    }

    /// The response object with the defaults, `status`, `output` and `usage`.
    fn expected(status: &str, incomplete: Value, output: Value, usage: Value) -> Value {
        json!({
            "id": ID,
            "object": "response",
            "created_at": 1_700_000_000u64,
            "status": status,
            "background": false,
            "error": null,
            "incomplete_details": incomplete,
            "instructions": null,
            "max_output_tokens": null,
            "metadata": {},
            "model": "client-model",
            "output": output,
            "parallel_tool_calls": true,
            "previous_response_id": null,
            "reasoning": {"effort": null, "summary": null},
            "store": false,
            "temperature": null,
            "text": {"format": {"type": "text"}},
            "tool_choice": "auto",
            "tools": [],
            "top_p": null,
            "truncation": "disabled",
            "usage": usage
        })
    }

    fn usage_120_30() -> Value {
        json!({
            "input_tokens": 120,
            "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 0},
            "output_tokens": 30,
            "output_tokens_details": {"reasoning_tokens": 8},
            "total_tokens": 150
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
            expected(
                "completed",
                Value::Null,
                json!([{
                    "id": "msg_abc_0", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": "Hello!", "annotations": [], "logprobs": []}]
                }]),
                usage_120_30()
            )
        );
        assert!(out.get("output_text").is_none());
        // The usage reads back as what the upstream said.
        assert_eq!(
            Usage::of(&out["usage"]),
            Usage::of(&completion(json!({}), "stop")["usage"])
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
            out["output"],
            json!([
                {"id": "msg_abc_0", "type": "message", "status": "completed", "role": "assistant",
                 "content": [{"type": "output_text", "text": "Let me check.", "annotations": [], "logprobs": []}]},
                {"id": "fc_abc_1", "type": "function_call", "status": "completed", "call_id": "call_1",
                 "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"},
                {"id": "fc_abc_2", "type": "function_call", "status": "completed", "call_id": "call_2",
                 "name": "now", "arguments": "{}"},
                {"id": "fc_abc_3", "type": "function_call", "status": "completed", "call_id": "call_3",
                 "name": "ping", "arguments": "{}"}
            ])
        );
        assert_eq!(out["status"], "completed");
        let only_call = translate(completion(
            json!({"content": null, "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{}"}}]}),
            "stop",
        ));
        assert_eq!(only_call["output"][0]["id"], "fc_abc_0");
        assert_eq!(only_call["output"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn refusal_response() {
        let out = translate(completion(
            json!({"role": "assistant", "content": null, "refusal": "I can't help with that."}),
            "stop",
        ));
        assert_eq!(
            out["output"],
            json!([{"id": "msg_abc_0", "type": "message", "status": "completed", "role": "assistant",
                    "content": [{"type": "refusal", "refusal": "I can't help with that."}]}])
        );
        let both = translate(completion(
            json!({"content": "Partly.", "refusal": "No more."}),
            "stop",
        ));
        assert_eq!(
            both["output"][0]["content"],
            json!([
                {"type": "output_text", "text": "Partly.", "annotations": [], "logprobs": []},
                {"type": "refusal", "refusal": "No more."}
            ])
        );
    }

    #[test]
    fn incomplete_responses() {
        let out = translate(completion(
            json!({"role": "assistant", "content": "Once upon"}),
            "length",
        ));
        assert_eq!(out["status"], "incomplete");
        assert_eq!(
            out["incomplete_details"],
            json!({"reason": "max_output_tokens"})
        );
        assert_eq!(out["output"][0]["status"], "incomplete");
        let out = translate(completion(json!({"content": "x"}), "content_filter"));
        assert_eq!(out["status"], "incomplete");
        assert_eq!(
            out["incomplete_details"],
            json!({"reason": "content_filter"})
        );
        // Only the item being written when the answer was cut is incomplete.
        let out = translate(completion(
            json!({"content": "a", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{\"x\":"}}]}),
            "length",
        ));
        assert_eq!(out["output"][0]["status"], "completed");
        assert_eq!(out["output"][1]["status"], "incomplete");
        let out = translate(completion(json!({"content": ""}), "length"));
        assert_eq!(out["output"], json!([]));
        assert_eq!(out["status"], "incomplete");
    }

    #[test]
    fn end_of_each_finish_reason() {
        for (finish, end) in [
            (Some("stop"), End::Completed),
            (Some("tool_calls"), End::Completed),
            (Some("function_call"), End::Completed),
            (Some("length"), End::Incomplete("max_output_tokens")),
            (Some("content_filter"), End::Incomplete("content_filter")),
            (Some("something_new"), End::Completed),
            (None, End::Completed),
        ] {
            assert_eq!(End::of(finish), end, "{finish:?}");
        }
    }

    #[test]
    fn missing_usage_and_finish_reason() {
        let out =
            translate(json!({"choices": [{"message": {"role": "assistant", "content": "x"}}]}));
        assert_eq!(out["status"], "completed");
        assert_eq!(out["usage"], Value::Null);
        let out = translate(json!({
            "choices": [{"message": {"content": "x"}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3}
        }));
        assert_eq!(
            out["usage"],
            json!({"input_tokens": 7, "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
                   "output_tokens": 3, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 10})
        );
        // A translation from Anthropic keeps the cache's writes beside.
        let out = translate(json!({
            "choices": [{"message": {"content": "x"}}],
            "usage": {"prompt_tokens": 50, "completion_tokens": 1, "cache_creation_input_tokens": 40}
        }));
        assert_eq!(
            out["usage"]["input_tokens_details"]["cache_write_tokens"],
            40
        );
    }

    #[test]
    fn usage_saturates() {
        let out = translate(json!({
            "choices": [{"message": {"content": "x"}}],
            "usage": {"prompt_tokens": u64::MAX, "completion_tokens": u64::MAX}
        }));
        assert_eq!(out["usage"]["input_tokens"], u32::MAX);
        assert_eq!(out["usage"]["output_tokens"], u32::MAX);
        assert_eq!(out["usage"]["total_tokens"], 2 * u64::from(u32::MAX));
    }

    #[test]
    fn item_ids_come_from_the_response_id() {
        assert_eq!(item_id("resp_abc", "msg", 0), "msg_abc_0");
        assert_eq!(item_id("gw-7", "fc", 3), "fc_gw-7_3");
        assert_eq!(item_id("resp_", "msg", 1), "msg__1");
    }

    #[test]
    fn malformed_responses_are_errors() {
        let tool =
            |call: Value| completion(json!({"content": null, "tool_calls": [call]}), "tool_calls");
        for bad in [
            json!(null),
            json!({}),
            json!({"choices": []}),
            json!({"choices": {}}),
            json!({"choices": [{}]}),
            json!({"choices": [{"message": "hi"}]}),
            completion(json!({"content": 5}), "stop"),
            completion(json!({"refusal": ["x"]}), "stop"),
            completion(json!({"content": "x", "tool_calls": {}}), "stop"),
            tool(json!({"function": {"name": "f", "arguments": "{}"}})),
            tool(json!({"id": "", "function": {"name": "f"}})),
            tool(json!({"id": "c", "function": {"arguments": "{}"}})),
            tool(json!({"id": "c", "function": {"name": "f", "arguments": {"a": 1}}})),
            tool(json!({"id": "c"})),
            completion(
                json!({"tool_calls": [
                    {"id": "c", "function": {"name": "f", "arguments": "{}"}},
                    {"id": "c", "function": {"name": "g", "arguments": "{}"}}
                ]}),
                "tool_calls",
            ),
        ] {
            assert!(
                matches!(
                    response_from_chat(&bad, "m", ID, 0),
                    Err(TranslateError::InvalidResponse(_))
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn error_text_reads_only_error_message() {
        let body = json!({"error": {"message": "Rate\nlimit", "type": "requests"}});
        assert_eq!(error_text(&body).as_deref(), Some("Rate limit"));
        assert_eq!(error_text(&json!({"error": "x"})), None);
        assert_eq!(error_text(&json!({"message": "x"})), None);
        let long = json!({"error": {"message": "x".repeat(1000)}});
        assert_eq!(
            error_text(&long).map(|m| m.chars().count()),
            Some(crate::provider::translated::MAX_ERROR_MESSAGE_CHARS)
        );
    }
}

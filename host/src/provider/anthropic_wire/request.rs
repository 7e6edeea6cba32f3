//! OpenAI chat requests to Anthropic Messages requests.

use serde_json::{Map, Value, json};

use super::tools::add_tools;
use super::{TranslateError, bad_request};

/// Translates an OpenAI chat request body into an Anthropic Messages request
/// body for `upstream_model`.
///
/// Mapped fields: `messages` (`system`/`developer` messages become the
/// top-level `system`, joined with `"\n\n"`; `tool` messages become
/// `tool_result` blocks; consecutive messages of one role are merged, since
/// Anthropic requires alternating roles), `tools`, `tool_choice`,
/// `parallel_tool_calls: false`, `max_completion_tokens` / `max_tokens`
/// (falling back to `default_max_tokens`, as Anthropic requires a value),
/// `temperature`, `top_p`, `stop`, `stream`, and `user` / `metadata.user`
/// (as `metadata.user_id`). Everything else is dropped; see the [module docs](super).
///
/// Message content is always emitted as an array of blocks. Empty text is left
/// out because Anthropic rejects empty text blocks, and a message left with no
/// blocks at all is skipped.
pub fn to_messages_request(
    openai: &Value,
    upstream_model: &str,
    default_max_tokens: u32,
) -> Result<Value, TranslateError> {
    let req = openai
        .as_object()
        .ok_or_else(|| bad_request("body must be a JSON object"))?;
    let messages = match req.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        _ => return Err(bad_request("`messages` must be a non-empty array")),
    };

    let mut system: Vec<&str> = Vec::new();
    let mut turns: Vec<(&'static str, Vec<Value>)> = Vec::new();
    for (i, message) in messages.iter().enumerate() {
        let role = message
            .get("role")
            .and_then(Value::as_str)
            .ok_or_else(|| bad_request(format!("messages[{i}]: missing `role`")))?;
        let (role, blocks) = match role {
            "system" | "developer" => {
                system.extend(text_parts(message.get("content"), i)?);
                continue;
            }
            "user" => ("user", user_blocks(message, i)?),
            "assistant" => ("assistant", assistant_blocks(message, i)?),
            "tool" => ("user", vec![tool_result_block(message, i)?]),
            _ => return Err(bad_request(format!("messages[{i}]: unsupported role"))),
        };
        if blocks.is_empty() {
            continue;
        }
        match turns.last_mut() {
            Some((last_role, last_blocks)) if *last_role == role => last_blocks.extend(blocks),
            _ => turns.push((role, blocks)),
        }
    }
    if turns.is_empty() {
        return Err(bad_request("`messages` has no user or assistant content"));
    }

    let mut out = Map::new();
    out.insert("model".into(), Value::from(upstream_model));
    let system: Vec<&str> = system.into_iter().filter(|s| !s.is_empty()).collect();
    if !system.is_empty() {
        out.insert("system".into(), Value::from(system.join("\n\n")));
    }
    let turns = turns
        .into_iter()
        .map(|(role, content)| json!({ "role": role, "content": content }))
        .collect();
    out.insert("messages".into(), Value::Array(turns));
    out.insert(
        "max_tokens".into(),
        Value::from(max_tokens(req, default_max_tokens)?),
    );

    for key in ["temperature", "top_p"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(value @ Value::Number(_)) => {
                out.insert(key.into(), value.clone());
            }
            Some(_) => return Err(bad_request(format!("`{key}` must be a number"))),
        }
    }
    if let Some(stop) = stop_sequences(req.get("stop"))? {
        out.insert("stop_sequences".into(), stop);
    }
    match req.get("stream") {
        None | Some(Value::Null) => {}
        Some(Value::Bool(stream)) => {
            out.insert("stream".into(), Value::Bool(*stream));
        }
        Some(_) => return Err(bad_request("`stream` must be a boolean")),
    }
    let user = req
        .get("user")
        .and_then(Value::as_str)
        .or_else(|| req.get("metadata")?.get("user")?.as_str());
    if let Some(user) = user {
        out.insert("metadata".into(), json!({ "user_id": user }));
    }
    add_tools(req, &mut out)?;
    Ok(Value::Object(out))
}

/// What of an OpenAI chat request the Messages API has no place for and that changes
/// the answer or what the client can read of it, named once each in a stable order:
/// `n` (more than one choice), `logprobs`, `response_format` (other than text), `seed`,
/// `reasoning_effort`, `audio`, `prediction`, `logit_bias`, `penalties` (non-zero
/// presence or frequency penalties), `web_search`, `functions` (the legacy function
/// calling). Fields that change nothing an answer shows (`store`, `service_tier`,
/// `user`, …) are not named.
pub fn chat_fields_dropped(openai: &Value) -> Vec<&'static str> {
    let field = |key: &str| openai.get(key).filter(|v| !v.is_null());
    let number = |key: &str| field(key).and_then(Value::as_f64);
    let mut dropped = Vec::new();
    if number("n").is_some_and(|n| n > 1.0) {
        dropped.push("n");
    }
    if field("logprobs").and_then(Value::as_bool) == Some(true) || field("top_logprobs").is_some() {
        dropped.push("logprobs");
    }
    if field("response_format")
        .is_some_and(|f| f.get("type").and_then(Value::as_str) != Some("text"))
    {
        dropped.push("response_format");
    }
    for (key, name) in [
        ("seed", "seed"),
        ("reasoning_effort", "reasoning_effort"),
        ("audio", "audio"),
        ("prediction", "prediction"),
    ] {
        if field(key).is_some() {
            dropped.push(name);
        }
    }
    if field("logit_bias")
        .and_then(Value::as_object)
        .is_some_and(|m| !m.is_empty())
    {
        dropped.push("logit_bias");
    }
    if ["presence_penalty", "frequency_penalty"]
        .iter()
        .any(|k| number(k).is_some_and(|p| p != 0.0))
    {
        dropped.push("penalties");
    }
    if field("web_search_options").is_some() {
        dropped.push("web_search");
    }
    if field("functions").is_some() || field("function_call").is_some() {
        dropped.push("functions");
    }
    dropped
}

/// The text pieces of a `content` that may only hold text: a string or an array
/// of `text` parts (system, developer and tool messages).
fn text_parts(content: Option<&Value>, i: usize) -> Result<Vec<&str>, TranslateError> {
    match content {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(vec![text.as_str()]),
        Some(Value::Array(parts)) => parts
            .iter()
            .map(|part| match part.get("type").and_then(Value::as_str) {
                Some("text") => part_text(part, "text", i),
                _ => Err(bad_request(format!(
                    "messages[{i}]: only text content is supported here"
                ))),
            })
            .collect(),
        Some(_) => Err(bad_request(format!("messages[{i}]: invalid `content`"))),
    }
}

fn part_text<'a>(part: &'a Value, key: &str, i: usize) -> Result<&'a str, TranslateError> {
    part.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("messages[{i}]: content part missing `{key}`")))
}

fn text_block(text: &str) -> Value {
    json!({ "type": "text", "text": text })
}

/// Pushes a text block unless `text` is empty, which Anthropic rejects.
fn push_text(blocks: &mut Vec<Value>, text: &str) {
    if !text.is_empty() {
        blocks.push(text_block(text));
    }
}

fn user_blocks(message: &Value, i: usize) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = Vec::new();
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => push_text(&mut blocks, text),
        Some(Value::Array(parts)) => {
            for part in parts {
                match part.get("type").and_then(Value::as_str) {
                    Some("text") => push_text(&mut blocks, part_text(part, "text", i)?),
                    Some("image_url") => blocks.push(image_block(part, i)?),
                    _ => {
                        return Err(bad_request(format!(
                            "messages[{i}]: unsupported content part type"
                        )));
                    }
                }
            }
        }
        Some(_) => return Err(bad_request(format!("messages[{i}]: invalid `content`"))),
    }
    Ok(blocks)
}

/// Maps an `image_url` part: `data:` URLs become inline base64 images, http(s)
/// URLs are passed by reference for Anthropic to fetch.
fn image_block(part: &Value, i: usize) -> Result<Value, TranslateError> {
    let image_url = part.get("image_url");
    // Some clients send the URL as a bare string instead of `{"url": ..}`.
    let url = image_url
        .and_then(|v| v.get("url"))
        .or(image_url)
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("messages[{i}]: image part missing `url`")))?;

    if let Some(rest) = url.strip_prefix("data:") {
        let parsed = rest.split_once(',').and_then(|(meta, data)| {
            let media_type = meta.strip_suffix(";base64")?;
            (!media_type.is_empty()).then_some((media_type, data))
        });
        let (media_type, data) = parsed.ok_or_else(|| {
            bad_request(format!(
                "messages[{i}]: image data URL must be `data:<type>;base64,<data>`"
            ))
        })?;
        return Ok(json!({
            "type": "image",
            "source": { "type": "base64", "media_type": media_type, "data": data },
        }));
    }
    let has_scheme = |scheme: &str| {
        url.get(..scheme.len())
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
    };
    if has_scheme("https://") || has_scheme("http://") {
        return Ok(json!({ "type": "image", "source": { "type": "url", "url": url } }));
    }
    Err(bad_request(format!(
        "messages[{i}]: image URL must be a data: or http(s) URL"
    )))
}

fn assistant_blocks(message: &Value, i: usize) -> Result<Vec<Value>, TranslateError> {
    let mut blocks = Vec::new();
    match message.get("content") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => push_text(&mut blocks, text),
        Some(Value::Array(parts)) => {
            for part in parts {
                // A refusal is what the assistant said, so it stays in the
                // history as plain text.
                let key = match part.get("type").and_then(Value::as_str) {
                    Some("text") => "text",
                    Some("refusal") => "refusal",
                    _ => {
                        return Err(bad_request(format!(
                            "messages[{i}]: unsupported assistant content part type"
                        )));
                    }
                };
                push_text(&mut blocks, part_text(part, key, i)?);
            }
        }
        Some(_) => return Err(bad_request(format!("messages[{i}]: invalid `content`"))),
    }

    let calls = match message.get("tool_calls") {
        None | Some(Value::Null) => return Ok(blocks),
        Some(Value::Array(calls)) => calls,
        Some(_) => return Err(bad_request(format!("messages[{i}]: invalid `tool_calls`"))),
    };
    for call in calls {
        let id = call.get("id").and_then(Value::as_str);
        let function = call.get("function");
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
        let (Some(id), Some(name)) = (id, name) else {
            return Err(bad_request(format!(
                "messages[{i}]: tool call missing `id` or `function.name`"
            )));
        };
        let input = tool_arguments(function.and_then(|f| f.get("arguments")), i)?;
        blocks.push(json!({ "type": "tool_use", "id": id, "name": name, "input": input }));
    }
    Ok(blocks)
}

/// Parses a tool call's `arguments` JSON string into the object Anthropic wants
/// as `input`.
fn tool_arguments(arguments: Option<&Value>, i: usize) -> Result<Value, TranslateError> {
    let invalid = || {
        bad_request(format!(
            "messages[{i}]: tool call `arguments` must be a JSON object encoded as a string"
        ))
    };
    let parsed = match arguments {
        // Clients commonly send "" (or nothing) for tools without parameters.
        None | Some(Value::Null) => return Ok(json!({})),
        Some(Value::String(s)) if s.trim().is_empty() => return Ok(json!({})),
        Some(Value::String(s)) => serde_json::from_str(s).map_err(|_| invalid())?,
        Some(_) => return Err(invalid()),
    };
    match parsed {
        Value::Object(_) => Ok(parsed),
        _ => Err(invalid()),
    }
}

fn tool_result_block(message: &Value, i: usize) -> Result<Value, TranslateError> {
    let id = message
        .get("tool_call_id")
        .and_then(Value::as_str)
        .ok_or_else(|| {
            bad_request(format!(
                "messages[{i}]: tool message missing `tool_call_id`"
            ))
        })?;
    let text = text_parts(message.get("content"), i)?.concat();
    // Omitted rather than empty: an empty result is still a valid result.
    if text.is_empty() {
        return Ok(json!({ "type": "tool_result", "tool_use_id": id }));
    }
    Ok(json!({ "type": "tool_result", "tool_use_id": id, "content": text }))
}

fn max_tokens(req: &Map<String, Value>, default: u32) -> Result<u64, TranslateError> {
    let given = ["max_completion_tokens", "max_tokens"]
        .into_iter()
        .find_map(|key| req.get(key).filter(|v| !v.is_null()));
    match given {
        None => Ok(u64::from(default)),
        Some(value) => value
            .as_u64()
            .filter(|n| *n > 0)
            .ok_or_else(|| bad_request("`max_tokens` must be a positive integer")),
    }
}

fn stop_sequences(stop: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    let invalid = || bad_request("`stop` must be a string or an array of strings");
    match stop {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(json!([s]))),
        Some(Value::Array(items)) if items.is_empty() => Ok(None),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(Some(Value::Array(items.clone())))
        }
        Some(_) => Err(invalid()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(body: Value) -> Value {
        to_messages_request(&body, "claude-test", 1024).unwrap()
    }

    fn request_error(body: Value) -> TranslateError {
        to_messages_request(&body, "claude-test", 1024).unwrap_err()
    }

    #[test]
    fn request_maps_system_turns_images_tools_and_results() {
        let body = json!({
            "model": "client-alias",
            "messages": [
                {"role": "system", "content": "Be brief."},
                {"role": "developer", "content": [{"type": "text", "text": "Use tools."}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}},
                    {"type": "image_url", "image_url": {"url": "https://example.com/cat.jpg", "detail": "low"}}
                ]},
                {"role": "assistant", "content": "Let me check.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\":\"cat\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": ""}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "a cat"},
                {"role": "tool", "tool_call_id": "call_2", "content": [{"type": "text", "text": "noon"}]},
                {"role": "user", "content": "Thanks"},
                {"role": "assistant", "content": null, "tool_calls": null},
                {"role": "assistant", "content": "You're welcome."}
            ],
            "max_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop": "END",
            "stream": true,
            "user": "u-1",
            "seed": 7,
            "n": 1,
            "frequency_penalty": 0.1
        });
        let expected = json!({
            "model": "claude-test",
            "system": "Be brief.\n\nUse tools.",
            "messages": [
                {"role": "user", "content": [
                    {"type": "text", "text": "What is in these?"},
                    {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/cat.jpg"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "text", "text": "Let me check."},
                    {"type": "tool_use", "id": "call_1", "name": "lookup", "input": {"q": "cat"}},
                    {"type": "tool_use", "id": "call_2", "name": "now", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "call_1", "content": "a cat"},
                    {"type": "tool_result", "tool_use_id": "call_2", "content": "noon"},
                    {"type": "text", "text": "Thanks"}
                ]},
                {"role": "assistant", "content": [{"type": "text", "text": "You're welcome."}]}
            ],
            "max_tokens": 50,
            "temperature": 0.5,
            "top_p": 0.9,
            "stop_sequences": ["END"],
            "stream": true,
            "metadata": {"user_id": "u-1"}
        });
        assert_eq!(translate(body), expected);
    }

    #[test]
    fn request_defaults_and_precedence() {
        let out = translate(json!({"messages": [{"role": "user", "content": "hi"}]}));
        assert_eq!(
            out,
            json!({
                "model": "claude-test",
                "messages": [{"role": "user", "content": [{"type": "text", "text": "hi"}]}],
                "max_tokens": 1024
            })
        );
        let out = translate(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "max_completion_tokens": 10,
            "max_tokens": 20,
            "stop": ["a", "b"],
            "metadata": {"user": "u-2"}
        }));
        assert_eq!(out["max_tokens"], 10);
        assert_eq!(out["stop_sequences"], json!(["a", "b"]));
        assert_eq!(out["metadata"], json!({"user_id": "u-2"}));
    }

    #[test]
    fn what_messages_cannot_carry_is_named() {
        let none = chat_fields_dropped(&json!({"model": "m", "messages": [], "n": 1, "seed": null,
            "logprobs": false, "response_format": {"type": "text"}, "presence_penalty": 0,
            "logit_bias": {}, "store": true, "user": "u"}));
        assert!(none.is_empty(), "{none:?}");
        let all = chat_fields_dropped(
            &json!({"n": 2, "logprobs": true, "response_format": {"type": "json_schema"},
            "seed": 1, "reasoning_effort": "high", "audio": {}, "prediction": {}, "logit_bias": {"1": 2},
            "frequency_penalty": 0.5, "web_search_options": {}, "functions": []}),
        );
        assert_eq!(
            all,
            [
                "n",
                "logprobs",
                "response_format",
                "seed",
                "reasoning_effort",
                "audio",
                "prediction",
                "logit_bias",
                "penalties",
                "web_search",
                "functions"
            ]
        );
    }

    #[test]
    fn invalid_requests_are_rejected() {
        let cases = [
            json!([]),
            json!({}),
            json!({"messages": []}),
            json!({"messages": [{"role": "system", "content": "only system"}]}),
            json!({"messages": [{"role": "wizard", "content": "hi"}]}),
            json!({"messages": [{"content": "hi"}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "{not json"}}]}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": "[1]"}}]}]}),
            json!({"messages": [{"role": "assistant", "tool_calls": [{"function": {"name": "f"}}]}]}),
            json!({"messages": [{"role": "tool", "content": "x"}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]}),
            json!({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "data:image/png,AAA"}}]}]}),
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}),
            json!({"messages": [{"role": "user", "content": "hi"}], "max_tokens": "10"}),
            json!({"messages": [{"role": "user", "content": "hi"}], "stop": [1]}),
            json!({"messages": [{"role": "user", "content": "hi"}], "temperature": "hot"}),
            json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "code_interpreter"}]}),
        ];
        for case in cases {
            assert!(
                matches!(
                    request_error(case.clone()),
                    TranslateError::InvalidRequest(_)
                ),
                "{case}"
            );
        }
    }
}

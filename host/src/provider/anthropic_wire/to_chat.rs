//! Anthropic Messages requests to OpenAI Chat Completions requests, for a client
//! that speaks Messages in front of an upstream that speaks only Chat.
//!
//! What Chat cannot carry is left out and named in [`ChatRequest::dropped`], so the
//! gateway can log or report it; the request itself still goes through.

use serde_json::{Map, Value, json};

use super::TranslateError;

/// A Messages request translated into a chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The chat request body.
    pub body: Value,
    /// What the chat upstream could not be given, each named once, in this order:
    /// `thinking`, `cache_control`, `top_k`, `document`, `citations`,
    /// `server_tools`, `container`, `mcp_servers`, `tool_result_images`.
    pub dropped: Vec<&'static str>,
}

/// Something in a Messages request that has no place in a chat request.
#[derive(Debug, Clone, Copy)]
enum Lost {
    Thinking,
    CacheControl,
    TopK,
    Document,
    Citations,
    ServerTools,
    Container,
    McpServers,
    ToolResultImages,
}

impl Lost {
    /// Every kind, in the order [`ChatRequest::dropped`] lists them.
    const ALL: [Lost; 9] = [
        Lost::Thinking,
        Lost::CacheControl,
        Lost::TopK,
        Lost::Document,
        Lost::Citations,
        Lost::ServerTools,
        Lost::Container,
        Lost::McpServers,
        Lost::ToolResultImages,
    ];

    fn name(self) -> &'static str {
        match self {
            Lost::Thinking => "thinking",
            Lost::CacheControl => "cache_control",
            Lost::TopK => "top_k",
            Lost::Document => "document",
            Lost::Citations => "citations",
            Lost::ServerTools => "server_tools",
            Lost::Container => "container",
            Lost::McpServers => "mcp_servers",
            Lost::ToolResultImages => "tool_result_images",
        }
    }

    fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// The kinds of [`Lost`] seen so far; a set, so each is reported once whatever
/// the number of occurrences.
#[derive(Debug, Default)]
struct LostSet(u16);

impl LostSet {
    fn note(&mut self, lost: Lost) {
        self.0 |= lost.bit();
    }

    fn names(&self) -> Vec<&'static str> {
        Lost::ALL
            .into_iter()
            .filter(|lost| self.0 & lost.bit() != 0)
            .map(Lost::name)
            .collect()
    }
}

/// Translates an Anthropic Messages request body into an OpenAI chat request body
/// for `upstream_model`.
///
/// Mapped: `system` (a leading system message), `messages` (`tool_result` blocks
/// become `tool` messages placed before the rest of their user turn, `tool_use`
/// blocks become `tool_calls`, images become `image_url` parts), `max_tokens`,
/// `temperature`, `top_p`, `stop_sequences` (as `stop`), `stream` (with
/// `stream_options.include_usage`, since the gateway accounts usage),
/// `metadata.user_id` (as `user`), `tools` and `tool_choice`. What Chat cannot
/// carry is listed in [`ChatRequest::dropped`]; other unknown fields are ignored.
pub fn chat_request_from_messages(
    request: &Value,
    upstream_model: &str,
) -> Result<ChatRequest, TranslateError> {
    let req = request
        .as_object()
        .ok_or_else(|| bad_request("body must be a JSON object"))?;
    let messages = match req.get("messages") {
        Some(Value::Array(messages)) if !messages.is_empty() => messages,
        _ => return Err(bad_request("`messages` must be a non-empty array")),
    };

    let mut lost = LostSet::default();
    let mut chat_messages = Vec::new();
    if let Some(system) = system_text(req.get("system"), &mut lost)? {
        chat_messages.push(json!({ "role": "system", "content": system }));
    }
    let first_turn = chat_messages.len();
    for (i, message) in messages.iter().enumerate() {
        match message.get("role").and_then(Value::as_str) {
            Some("user") => user_turn(message, i, &mut lost, &mut chat_messages)?,
            Some("assistant") => assistant_turn(message, i, &mut lost, &mut chat_messages)?,
            _ => {
                return Err(bad_request(format!(
                    "messages[{i}].role: must be `user` or `assistant`"
                )));
            }
        }
    }
    if chat_messages.len() == first_turn {
        return Err(bad_request("`messages` has no content to send"));
    }

    let mut body = Map::new();
    body.insert("model".into(), Value::from(upstream_model));
    body.insert("messages".into(), Value::Array(chat_messages));
    body.insert("max_tokens".into(), Value::from(max_tokens(req)?));
    for key in ["temperature", "top_p"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(value @ Value::Number(_)) => {
                body.insert(key.into(), value.clone());
            }
            Some(_) => return Err(bad_request(format!("`{key}` must be a number"))),
        }
    }
    if let Some(stop) = stop_sequences(req.get("stop_sequences"))? {
        body.insert("stop".into(), stop);
    }
    match req.get("stream") {
        None | Some(Value::Null | Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            body.insert("stream".into(), Value::Bool(true));
            body.insert("stream_options".into(), json!({ "include_usage": true }));
        }
        Some(_) => return Err(bad_request("`stream` must be a boolean")),
    }
    let user = req
        .get("metadata")
        .and_then(|m| m.get("user_id"))
        .and_then(Value::as_str)
        .filter(|user| !user.is_empty());
    if let Some(user) = user {
        body.insert("user".into(), Value::from(user));
    }
    add_tools(req, &mut body, &mut lost)?;
    note_unsupported_parameters(req, &mut lost);

    Ok(ChatRequest {
        body: Value::Object(body),
        dropped: lost.names(),
    })
}

fn bad_request(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

/// Request parameters that only change how Anthropic runs the request.
fn note_unsupported_parameters(req: &Map<String, Value>, lost: &mut LostSet) {
    let thinking_on = match req.get("thinking") {
        None | Some(Value::Null) => false,
        Some(thinking) => thinking.get("type").and_then(Value::as_str) != Some("disabled"),
    };
    if thinking_on {
        lost.note(Lost::Thinking);
    }
    if is_set(req.get("top_k")) {
        lost.note(Lost::TopK);
    }
    if is_set(req.get("container")) {
        lost.note(Lost::Container);
    }
    if is_set(req.get("mcp_servers")) {
        lost.note(Lost::McpServers);
    }
}

/// Whether an optional field asks for something: present, and not null, false or
/// empty.
fn is_set(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null | Value::Bool(false)) => false,
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(fields)) => !fields.is_empty(),
        Some(_) => true,
    }
}

/// Notes the per-block features Chat has no room for: prompt caching marks and
/// citations (given on text blocks, or asked for on documents).
fn note_block_extras(block: &Value, lost: &mut LostSet) {
    if is_set(block.get("cache_control")) {
        lost.note(Lost::CacheControl);
    }
    let citations = match block.get("citations") {
        Some(Value::Array(items)) => !items.is_empty(),
        Some(config) => config.get("enabled") == Some(&Value::Bool(true)),
        None => false,
    };
    if citations {
        lost.note(Lost::Citations);
    }
}

/// The top-level `system`, as one string; `None` when it holds no text.
fn system_text(
    system: Option<&Value>,
    lost: &mut LostSet,
) -> Result<Option<String>, TranslateError> {
    let mut pieces: Vec<&str> = Vec::new();
    match system {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => pieces.push(text),
        Some(Value::Array(blocks)) => {
            for (k, block) in blocks.iter().enumerate() {
                let path = format!("system[{k}]");
                if block_type(block, &path)? != "text" {
                    return Err(bad_request(format!("{path}: system blocks must be text")));
                }
                note_block_extras(block, lost);
                pieces.push(block_text(block, &path)?);
            }
        }
        Some(_) => {
            return Err(bad_request(
                "`system` must be a string or an array of text blocks",
            ));
        }
    }
    pieces.retain(|piece| !piece.is_empty());
    Ok((!pieces.is_empty()).then(|| pieces.join("\n\n")))
}

/// A message's `content`: Messages allows a bare string for a single text block.
enum Content<'a> {
    Text(&'a str),
    Blocks(&'a [Value]),
}

fn content(message: &Value, i: usize) -> Result<Content<'_>, TranslateError> {
    match message.get("content") {
        Some(Value::String(text)) => Ok(Content::Text(text)),
        Some(Value::Array(blocks)) => Ok(Content::Blocks(blocks)),
        _ => Err(bad_request(format!(
            "messages[{i}].content: must be a string or an array of blocks"
        ))),
    }
}

fn block_type<'a>(block: &'a Value, path: &str) -> Result<&'a str, TranslateError> {
    block
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("{path}: missing `type`")))
}

fn block_text<'a>(block: &'a Value, path: &str) -> Result<&'a str, TranslateError> {
    block
        .get("text")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("{path}: missing `text`")))
}

fn string_field<'a>(value: &'a Value, key: &str, path: &str) -> Result<&'a str, TranslateError> {
    value
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("{path}: missing `{key}`")))
}

/// Pushes the chat messages for one user turn: its tool results first, as `tool`
/// messages (Chat wants them right after the assistant's `tool_calls`), then a
/// user message with the rest, if any.
fn user_turn(
    message: &Value,
    i: usize,
    lost: &mut LostSet,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let mut parts = Vec::new();
    match content(message, i)? {
        Content::Text(text) => push_text_part(&mut parts, text),
        Content::Blocks(blocks) => {
            for (j, block) in blocks.iter().enumerate() {
                let path = format!("messages[{i}].content[{j}]");
                let kind = block_type(block, &path)?;
                note_block_extras(block, lost);
                match kind {
                    "text" => push_text_part(&mut parts, block_text(block, &path)?),
                    "image" => parts.push(image_part(block, &path)?),
                    "document" => lost.note(Lost::Document),
                    "tool_result" => out.push(tool_message(block, &path, lost)?),
                    "tool_use" | "thinking" | "redacted_thinking" => {
                        return Err(bad_request(format!(
                            "{path}: block type not allowed in a user message"
                        )));
                    }
                    _ => return Err(bad_request(format!("{path}: unknown block type"))),
                }
            }
        }
    }
    let content = match parts.as_slice() {
        [] => return Ok(()),
        [only] if only.get("type").and_then(Value::as_str) == Some("text") => {
            only.get("text").cloned().unwrap_or_else(|| Value::from(""))
        }
        _ => Value::Array(parts),
    };
    out.push(json!({ "role": "user", "content": content }));
    Ok(())
}

/// Empty text is skipped: it carries nothing, and an empty message must not be sent.
fn push_text_part(parts: &mut Vec<Value>, text: &str) {
    if !text.is_empty() {
        parts.push(json!({ "type": "text", "text": text }));
    }
}

fn image_part(block: &Value, path: &str) -> Result<Value, TranslateError> {
    let source = block
        .get("source")
        .ok_or_else(|| bad_request(format!("{path}: missing `source`")))?;
    let source_path = format!("{path}.source");
    let url = match source.get("type").and_then(Value::as_str) {
        Some("base64") => {
            let media_type = string_field(source, "media_type", &source_path)?;
            let data = string_field(source, "data", &source_path)?;
            format!("data:{media_type};base64,{data}")
        }
        Some("url") => string_field(source, "url", &source_path)?.to_owned(),
        _ => {
            return Err(bad_request(format!(
                "{source_path}: unsupported image source type"
            )));
        }
    };
    Ok(json!({ "type": "image_url", "image_url": { "url": url } }))
}

/// A `tool_result` block as a chat `tool` message. Only its text survives: a tool
/// message holds no images or documents.
fn tool_message(block: &Value, path: &str, lost: &mut LostSet) -> Result<Value, TranslateError> {
    let id = string_field(block, "tool_use_id", path)?;
    let mut text = match block.get("content") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(items)) => {
            let mut pieces = Vec::new();
            for (k, item) in items.iter().enumerate() {
                let item_path = format!("{path}.content[{k}]");
                let kind = block_type(item, &item_path)?;
                note_block_extras(item, lost);
                match kind {
                    "text" => pieces.push(block_text(item, &item_path)?),
                    "image" => lost.note(Lost::ToolResultImages),
                    "document" => lost.note(Lost::Document),
                    _ => return Err(bad_request(format!("{item_path}: unknown block type"))),
                }
            }
            pieces.join("\n")
        }
        Some(_) => {
            return Err(bad_request(format!(
                "{path}.content: must be a string or an array of blocks"
            )));
        }
    };
    // Chat has no error flag on tool messages; the model still needs to know.
    if block.get("is_error") == Some(&Value::Bool(true)) {
        text.insert_str(0, "Error: ");
    }
    Ok(json!({ "role": "tool", "tool_call_id": id, "content": text }))
}

/// Pushes the chat message for one assistant turn, unless nothing in it survives.
fn assistant_turn(
    message: &Value,
    i: usize,
    lost: &mut LostSet,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    // Text blocks are one answer cut up (around tool calls, citations), so they are
    // joined with nothing in between.
    let mut text = String::new();
    let mut calls = Vec::new();
    match content(message, i)? {
        Content::Text(whole) => text.push_str(whole),
        Content::Blocks(blocks) => {
            for (j, block) in blocks.iter().enumerate() {
                let path = format!("messages[{i}].content[{j}]");
                let kind = block_type(block, &path)?;
                note_block_extras(block, lost);
                match kind {
                    "text" => text.push_str(block_text(block, &path)?),
                    "tool_use" => calls.push(tool_call(block, &path)?),
                    "thinking" | "redacted_thinking" => lost.note(Lost::Thinking),
                    "image" | "document" | "tool_result" => {
                        return Err(bad_request(format!(
                            "{path}: block type not allowed in an assistant message"
                        )));
                    }
                    _ => return Err(bad_request(format!("{path}: unknown block type"))),
                }
            }
        }
    }
    if text.is_empty() && calls.is_empty() {
        return Ok(());
    }
    let mut chat = Map::new();
    chat.insert("role".into(), Value::from("assistant"));
    let content = if text.is_empty() {
        Value::Null
    } else {
        Value::String(text)
    };
    chat.insert("content".into(), content);
    if !calls.is_empty() {
        chat.insert("tool_calls".into(), Value::Array(calls));
    }
    out.push(Value::Object(chat));
    Ok(())
}

fn tool_call(block: &Value, path: &str) -> Result<Value, TranslateError> {
    let id = string_field(block, "id", path)?;
    let name = string_field(block, "name", path)?;
    let arguments = match block.get("input") {
        None | Some(Value::Null) => "{}".to_owned(),
        Some(input) => input.to_string(),
    };
    Ok(json!({
        "id": id,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    }))
}

/// Messages requires `max_tokens`, so unlike Chat there is no default to fall back on.
fn max_tokens(req: &Map<String, Value>) -> Result<u64, TranslateError> {
    req.get("max_tokens")
        .and_then(Value::as_u64)
        .filter(|n| *n > 0)
        .ok_or_else(|| bad_request("`max_tokens` must be a positive integer"))
}

fn stop_sequences(stop: Option<&Value>) -> Result<Option<Value>, TranslateError> {
    match stop {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Array(items)) if items.is_empty() => Ok(None),
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => {
            Ok(Some(Value::Array(items.clone())))
        }
        Some(_) => Err(bad_request("`stop_sequences` must be an array of strings")),
    }
}

/// Adds `tools`, `tool_choice` and `parallel_tool_calls`. Server tools (a `type`
/// other than `custom`) run inside Anthropic's API, so a chat upstream cannot run
/// them: they are left out. With no tool left, the choice is left out too, since
/// Chat refuses a `tool_choice` without `tools`. So is a choice of a server tool:
/// Chat refuses one that names a function it was not given.
fn add_tools(
    req: &Map<String, Value>,
    body: &mut Map<String, Value>,
    lost: &mut LostSet,
) -> Result<(), TranslateError> {
    let tools: &[Value] = match req.get("tools") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(bad_request("`tools` must be an array")),
    };
    let mut functions = Vec::with_capacity(tools.len());
    let mut server_tools = Vec::new();
    for (k, tool) in tools.iter().enumerate() {
        let path = format!("tools[{k}]");
        if !tool.is_object() {
            return Err(bad_request(format!("{path}: must be an object")));
        }
        if is_set(tool.get("cache_control")) {
            lost.note(Lost::CacheControl);
        }
        match tool.get("type") {
            None | Some(Value::Null) => {}
            Some(Value::String(kind)) if kind == "custom" => {}
            Some(_) => {
                lost.note(Lost::ServerTools);
                server_tools.extend(tool.get("name").and_then(Value::as_str));
                continue;
            }
        }
        let mut function = Map::new();
        function.insert(
            "name".into(),
            Value::from(string_field(tool, "name", &path)?),
        );
        if let Some(description) = tool.get("description").and_then(Value::as_str) {
            function.insert("description".into(), Value::from(description));
        }
        match tool.get("input_schema") {
            None | Some(Value::Null) => {}
            Some(schema @ Value::Object(_)) => {
                function.insert("parameters".into(), schema.clone());
            }
            Some(_) => {
                return Err(bad_request(format!(
                    "{path}.input_schema: must be an object"
                )));
            }
        }
        functions.push(json!({ "type": "function", "function": function }));
    }

    let choice = tool_choice(req.get("tool_choice"))?;
    if functions.is_empty() {
        return Ok(());
    }
    let chosen = choice
        .as_ref()
        .and_then(|(choice, _)| choice.get("function"))
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str);
    let server_tool_chosen = chosen.is_some_and(|name| {
        server_tools.contains(&name) && !functions.iter().any(|f| f["function"]["name"] == name)
    });
    body.insert("tools".into(), Value::Array(functions));
    if let Some((choice, one_at_a_time)) = choice {
        if !server_tool_chosen {
            body.insert("tool_choice".into(), choice);
        }
        if one_at_a_time {
            body.insert("parallel_tool_calls".into(), Value::Bool(false));
        }
    }
    Ok(())
}

/// The chat `tool_choice`, and whether parallel tool use is disabled.
fn tool_choice(choice: Option<&Value>) -> Result<Option<(Value, bool)>, TranslateError> {
    let Some(choice) = choice.filter(|c| !c.is_null()) else {
        return Ok(None);
    };
    let mapped = match choice.get("type").and_then(Value::as_str) {
        Some("auto") => Value::from("auto"),
        Some("any") => Value::from("required"),
        Some("none") => Value::from("none"),
        Some("tool") => {
            let name = string_field(choice, "name", "tool_choice")?;
            json!({ "type": "function", "function": { "name": name } })
        }
        _ => {
            return Err(bad_request(
                "`tool_choice.type` must be `auto`, `any`, `tool` or `none`",
            ));
        }
    };
    let one_at_a_time = choice.get("disable_parallel_tool_use") == Some(&Value::Bool(true));
    Ok(Some((mapped, one_at_a_time)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(body: Value) -> ChatRequest {
        chat_request_from_messages(&body, "gpt-up").unwrap()
    }

    fn request_error(body: Value) -> String {
        match chat_request_from_messages(&body, "gpt-up") {
            Err(TranslateError::InvalidRequest(message)) => message,
            other => panic!("expected InvalidRequest for {body}, got {other:?}"),
        }
    }

    /// A minimal valid request with `extra` fields merged in.
    fn with(extra: Value) -> Value {
        let mut body = json!({
            "model": "claude-alias",
            "max_tokens": 100,
            "messages": [{"role": "user", "content": "hi"}]
        });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    }

    fn dropped_by(extra: Value) -> Vec<&'static str> {
        translate(with(extra)).dropped
    }

    #[test]
    fn minimal_request() {
        let out = translate(with(json!({})));
        assert_eq!(
            out.body,
            json!({
                "model": "gpt-up",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 100
            })
        );
        assert!(out.dropped.is_empty());
    }

    #[test]
    fn parameters_are_mapped() {
        let out = translate(with(json!({
            "temperature": 0.3,
            "top_p": 0.9,
            "stop_sequences": ["END", "STOP"],
            "stream": true,
            "metadata": {"user_id": "u-1"},
            "service_tier": "auto",
            "some_future_field": {"x": 1}
        })));
        assert_eq!(
            out.body,
            json!({
                "model": "gpt-up",
                "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 100,
                "temperature": 0.3,
                "top_p": 0.9,
                "stop": ["END", "STOP"],
                "stream": true,
                "stream_options": {"include_usage": true},
                "user": "u-1"
            })
        );
        assert!(out.dropped.is_empty());
        let quiet = translate(with(
            json!({"stream": false, "stop_sequences": [], "temperature": null}),
        ));
        assert!(quiet.body.get("stream").is_none());
        assert!(quiet.body.get("stream_options").is_none());
        assert!(quiet.body.get("stop").is_none());
        assert!(quiet.body.get("temperature").is_none());
    }

    #[test]
    fn system_string_and_blocks() {
        let out = translate(with(json!({"system": "Be brief."})));
        assert_eq!(
            out.body["messages"],
            json!([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}])
        );
        let out = translate(with(json!({"system": [
            {"type": "text", "text": "One."},
            {"type": "text", "text": ""},
            {"type": "text", "text": "Two.", "cache_control": {"type": "ephemeral"}}
        ]})));
        assert_eq!(
            out.body["messages"][0],
            json!({"role": "system", "content": "One.\n\nTwo."})
        );
        assert_eq!(out.dropped, ["cache_control"]);
        for empty in [
            json!(""),
            json!([]),
            json!([{"type": "text", "text": ""}]),
            json!(null),
        ] {
            let out = translate(with(json!({ "system": empty })));
            assert_eq!(
                out.body["messages"],
                json!([{"role": "user", "content": "hi"}])
            );
        }
    }

    #[test]
    fn user_content_forms() {
        let out = translate(with(json!({"messages": [
            {"role": "user", "content": [{"type": "text", "text": "one block"}]},
            {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
            {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}}]},
            {"role": "user", "content": [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]}
        ]})));
        assert_eq!(
            out.body["messages"],
            json!([
                {"role": "user", "content": "one block"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "user", "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
                ]},
                {"role": "user", "content": [
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
                ]}
            ])
        );
    }

    #[test]
    fn tool_round_trip_keeps_chat_order() {
        let out = translate(json!({
            "model": "claude-alias",
            "max_tokens": 1024,
            "system": "Use tools.",
            "tools": [
                {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"name": "now", "input_schema": {"type": "object"}}
            ],
            "messages": [
                {"role": "user", "content": "Weather in Paris, and the time?"},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "need tools", "signature": "sig"},
                    {"type": "text", "text": "Checking "},
                    {"type": "text", "text": "both."},
                    {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "18C"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": [
                        {"type": "text", "text": "noon"},
                        {"type": "text", "text": "UTC"}
                    ]},
                    {"type": "text", "text": "Thanks!"}
                ]},
                {"role": "assistant", "content": [
                    {"type": "tool_use", "id": "toolu_3", "name": "now"}
                ]},
                {"role": "user", "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_3", "content": "clock broke", "is_error": true}
                ]},
                {"role": "assistant", "content": "It is noon and 18C."}
            ]
        }));
        assert_eq!(
            out.body["messages"],
            json!([
                {"role": "system", "content": "Use tools."},
                {"role": "user", "content": "Weather in Paris, and the time?"},
                {"role": "assistant", "content": "Checking both.", "tool_calls": [
                    {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "toolu_2", "content": "noon\nUTC"},
                {"role": "user", "content": "Thanks!"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "toolu_3", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "toolu_3", "content": "Error: clock broke"},
                {"role": "assistant", "content": "It is noon and 18C."}
            ])
        );
        assert_eq!(
            out.body["tools"],
            json!([
                {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "now", "parameters": {"type": "object"}}}
            ])
        );
        assert_eq!(out.dropped, ["thinking"]);
    }

    #[test]
    fn tool_result_images_and_documents_are_dropped_from_tool_messages() {
        let out = translate(with(json!({"messages": [
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "shot", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "text", "text": "see image"},
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AA"}},
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "doc"}}
            ]}]}
        ]})));
        assert_eq!(
            out.body["messages"],
            json!([
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "t1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "t1", "content": "see image"}
            ])
        );
        assert_eq!(out.dropped, ["document", "tool_result_images"]);
    }

    #[test]
    fn messages_left_empty_are_not_sent() {
        let out = translate(with(json!({"messages": [
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "redacted_thinking", "data": "xx"}]},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": [{"type": "text", "text": ""}]},
            {"role": "user", "content": [{"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}]},
            {"role": "user", "content": "again"}
        ]})));
        assert_eq!(
            out.body["messages"],
            json!([{"role": "user", "content": "q"}, {"role": "user", "content": "again"}])
        );
        assert_eq!(out.dropped, ["thinking", "document"]);
        let error = request_error(with(json!({"messages": [
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "x", "signature": "s"}]}
        ]})));
        assert_eq!(error, "`messages` has no content to send");
    }

    #[test]
    fn tools_and_tool_choice() {
        let tools = json!([
            {"name": "a", "input_schema": {"type": "object"}, "cache_control": {"type": "ephemeral"}},
            {"type": "custom", "name": "b", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search", "max_uses": 3},
            {"type": "bash_20250124", "name": "bash"}
        ]);
        let out = translate(with(json!({ "tools": tools })));
        assert_eq!(
            out.body["tools"],
            json!([
                {"type": "function", "function": {"name": "a", "parameters": {"type": "object"}}},
                {"type": "function", "function": {"name": "b", "parameters": {"type": "object"}}}
            ])
        );
        assert!(out.body.get("tool_choice").is_none());
        assert_eq!(out.dropped, ["cache_control", "server_tools"]);

        for (choice, expected) in [
            (json!({"type": "auto"}), json!("auto")),
            (json!({"type": "any"}), json!("required")),
            (json!({"type": "none"}), json!("none")),
            (
                json!({"type": "tool", "name": "a"}),
                json!({"type": "function", "function": {"name": "a"}}),
            ),
        ] {
            let out = translate(with(json!({"tools": tools, "tool_choice": choice})));
            assert_eq!(out.body["tool_choice"], expected);
            assert!(out.body.get("parallel_tool_calls").is_none());
        }
        for kind in ["auto", "any", "tool", "none"] {
            let choice = json!({"type": kind, "name": "a", "disable_parallel_tool_use": true});
            let out = translate(with(json!({"tools": tools, "tool_choice": choice})));
            assert_eq!(out.body["parallel_tool_calls"], json!(false), "{kind}");
        }
    }

    #[test]
    fn a_choice_of_a_server_tool_is_left_out() {
        let tools = json!([
            {"name": "a", "input_schema": {"type": "object"}},
            {"type": "web_search_20250305", "name": "web_search"}
        ]);
        let choice =
            json!({"type": "tool", "name": "web_search", "disable_parallel_tool_use": true});
        let out = translate(with(json!({"tools": tools, "tool_choice": choice})));
        assert!(out.body.get("tool_choice").is_none());
        assert_eq!(out.body["parallel_tool_calls"], json!(false));
        assert_eq!(out.dropped, ["server_tools"]);
        // A function that shares the name is still chosen.
        let tools = json!([
            {"type": "bash_20250124", "name": "bash"},
            {"name": "bash", "input_schema": {"type": "object"}}
        ]);
        let choice = json!({"type": "tool", "name": "bash"});
        let out = translate(with(json!({"tools": tools, "tool_choice": choice})));
        assert_eq!(
            out.body["tool_choice"],
            json!({"type": "function", "function": {"name": "bash"}})
        );
    }

    #[test]
    fn only_server_tools_leaves_out_tools_and_choice() {
        let out = translate(with(json!({
            "tools": [{"type": "web_search_20250305", "name": "web_search"}],
            "tool_choice": {"type": "any", "disable_parallel_tool_use": true}
        })));
        assert!(out.body.get("tools").is_none());
        assert!(out.body.get("tool_choice").is_none());
        assert!(out.body.get("parallel_tool_calls").is_none());
        assert_eq!(out.dropped, ["server_tools"]);
    }

    #[test]
    fn each_dropped_name() {
        assert_eq!(
            dropped_by(json!({"thinking": {"type": "enabled", "budget_tokens": 2000}})),
            ["thinking"]
        );
        assert_eq!(
            dropped_by(json!({"thinking": {"type": "adaptive"}})),
            ["thinking"]
        );
        assert!(dropped_by(json!({"thinking": {"type": "disabled"}})).is_empty());
        assert_eq!(
            dropped_by(
                json!({"messages": [{"role": "user", "content": [{"type": "text", "text": "x", "cache_control": {"type": "ephemeral"}}]}]})
            ),
            ["cache_control"]
        );
        assert_eq!(dropped_by(json!({"top_k": 5})), ["top_k"]);
        assert_eq!(
            dropped_by(json!({"messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "AA"}},
                {"type": "text", "text": "summarise"}
            ]}]})),
            ["document"]
        );
        assert_eq!(
            dropped_by(json!({"messages": [
                {"role": "user", "content": "q"},
                {"role": "assistant", "content": [{"type": "text", "text": "cited", "citations": [{"type": "char_location", "cited_text": "c"}]}]}
            ]})),
            ["citations"]
        );
        assert_eq!(
            dropped_by(json!({"messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}, "citations": {"enabled": true}}
            ]}, {"role": "user", "content": "hi"}]})),
            ["document", "citations"]
        );
        assert_eq!(
            dropped_by(json!({"tools": [{"type": "bash_20250124", "name": "bash"}]})),
            ["server_tools"]
        );
        assert_eq!(
            dropped_by(json!({"container": "container_1"})),
            ["container"]
        );
        assert_eq!(
            dropped_by(
                json!({"mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "x"}]})
            ),
            ["mcp_servers"]
        );
        assert!(
            dropped_by(json!({"mcp_servers": [], "container": null, "top_k": null})).is_empty()
        );
    }

    #[test]
    fn dropped_names_are_listed_once_in_a_fixed_order() {
        let out = translate(with(json!({
            "mcp_servers": [{"type": "url", "url": "https://mcp.example.com", "name": "x"}],
            "container": "c",
            "tools": [{"type": "web_search_20250305", "name": "web_search"}, {"type": "bash_20250124", "name": "bash"}],
            "top_k": 3,
            "thinking": {"type": "enabled", "budget_tokens": 1024},
            "system": [{"type": "text", "text": "s", "cache_control": {"type": "ephemeral"}}],
            "messages": [
                {"role": "user", "content": [
                    {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "d"}, "citations": {"enabled": true}},
                    {"type": "text", "text": "q", "cache_control": {"type": "ephemeral"}}
                ]},
                {"role": "assistant", "content": [
                    {"type": "thinking", "thinking": "t", "signature": "s"},
                    {"type": "tool_use", "id": "t1", "name": "f", "input": {}}
                ]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": [
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/x.png"}},
                    {"type": "image", "source": {"type": "url", "url": "https://example.com/y.png"}}
                ]}]}
            ]
        })));
        assert_eq!(
            out.dropped,
            [
                "thinking",
                "cache_control",
                "top_k",
                "document",
                "citations",
                "server_tools",
                "container",
                "mcp_servers",
                "tool_result_images"
            ]
        );
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases = [
            (json!([]), "body must be a JSON object"),
            (
                json!({"max_tokens": 10}),
                "`messages` must be a non-empty array",
            ),
            (
                json!({"max_tokens": 10, "messages": []}),
                "`messages` must be a non-empty array",
            ),
            (
                json!({"max_tokens": 10, "messages": {"role": "user"}}),
                "`messages` must be a non-empty array",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "system", "content": "x"}]}),
                "messages[0].role: must be `user` or `assistant`",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"content": "x"}]}),
                "messages[0].role: must be `user` or `assistant`",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "user", "content": "a"}, {"role": "user", "content": 5}]}),
                "messages[1].content: must be a string or an array of blocks",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}, {"role": "user", "content": [{"type": "video"}]}]}),
                "messages[2].content[0]: unknown block type",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "user", "content": [{"text": "x"}]}]}),
                "messages[0].content[0]: missing `type`",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "user", "content": ["x"]}]}),
                "messages[0].content[0]: missing `type`",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "text"}]}]}),
                "messages[0].content[0]: missing `text`",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "tool_use", "id": "t", "name": "f", "input": {}}]}]}),
                "messages[0].content[0]: block type not allowed in a user message",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "assistant", "content": [{"type": "image", "source": {"type": "url", "url": "u"}}]}]}),
                "messages[0].content[0]: block type not allowed in an assistant message",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "assistant", "content": [{"type": "tool_use", "name": "f", "input": {}}]}]}),
                "messages[0].content[0]: missing `id`",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "tool_result", "content": "x"}]}]}),
                "messages[0].content[0]: missing `tool_use_id`",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "search_result"}]}]}]}),
                "messages[0].content[0].content[0]: unknown block type",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "file", "file_id": "f"}}]}]}),
                "messages[0].content[0].source: unsupported image source type",
            ),
            (
                json!({"max_tokens": 10, "messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "base64", "data": "AA"}}]}]}),
                "messages[0].content[0].source: missing `media_type`",
            ),
            (
                json!({"max_tokens": 10, "system": [{"type": "image"}], "messages": [{"role": "user", "content": "x"}]}),
                "system[0]: system blocks must be text",
            ),
            (
                json!({"max_tokens": 10, "system": 3, "messages": [{"role": "user", "content": "x"}]}),
                "`system` must be a string or an array of text blocks",
            ),
        ];
        for (body, expected) in cases {
            assert_eq!(request_error(body.clone()), expected, "{body}");
        }
    }

    #[test]
    fn parameter_validation_errors() {
        for (extra, expected) in [
            (
                json!({"max_tokens": null}),
                "`max_tokens` must be a positive integer",
            ),
            (
                json!({"max_tokens": 0}),
                "`max_tokens` must be a positive integer",
            ),
            (
                json!({"max_tokens": -5}),
                "`max_tokens` must be a positive integer",
            ),
            (
                json!({"max_tokens": 1.5}),
                "`max_tokens` must be a positive integer",
            ),
            (
                json!({"max_tokens": "100"}),
                "`max_tokens` must be a positive integer",
            ),
            (
                json!({"temperature": "hot"}),
                "`temperature` must be a number",
            ),
            (json!({"top_p": true}), "`top_p` must be a number"),
            (
                json!({"stop_sequences": "END"}),
                "`stop_sequences` must be an array of strings",
            ),
            (
                json!({"stop_sequences": ["a", 1]}),
                "`stop_sequences` must be an array of strings",
            ),
            (json!({"stream": "yes"}), "`stream` must be a boolean"),
            (json!({"tools": {}}), "`tools` must be an array"),
            (
                json!({"tools": [{"input_schema": {}}]}),
                "tools[0]: missing `name`",
            ),
            (
                json!({"tools": [{"name": "a", "input_schema": "x"}]}),
                "tools[0].input_schema: must be an object",
            ),
            (
                json!({"tool_choice": {"type": "sometimes"}}),
                "`tool_choice.type` must be `auto`, `any`, `tool` or `none`",
            ),
            (
                json!({"tool_choice": "auto"}),
                "`tool_choice.type` must be `auto`, `any`, `tool` or `none`",
            ),
            (
                json!({"tool_choice": {"type": "tool"}}),
                "tool_choice: missing `name`",
            ),
        ] {
            assert_eq!(request_error(with(extra.clone())), expected, "{extra}");
        }
        // A missing `max_tokens` is an error too.
        let mut body = with(json!({}));
        body.as_object_mut().unwrap().remove("max_tokens");
        assert_eq!(
            request_error(body),
            "`max_tokens` must be a positive integer"
        );
    }

    #[test]
    fn errors_do_not_quote_content() {
        let secret = "SECRET-PROMPT-TEXT";
        let bodies = [
            json!({"max_tokens": 1, "messages": [{"role": secret, "content": secret}]}),
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": [{"type": secret, "text": secret}]}]}),
            json!({"max_tokens": secret, "messages": [{"role": "user", "content": "x"}]}),
            json!({"max_tokens": 1, "messages": [{"role": "user", "content": "x"}], "tool_choice": {"type": secret}}),
        ];
        for body in bodies {
            assert!(!request_error(body).contains(secret));
        }
    }
}

//! Translation between the OpenAI Chat Completions wire format (what clients
//! speak) and Anthropic's Messages API (what the upstream speaks): requests,
//! non-streaming responses, error bodies and SSE streams.
//!
//! Bodies stay `serde_json::Value` because the gateway keeps them that way for
//! every upstream; only the fields that matter are read, so unexpected extra
//! fields in either direction are tolerated rather than rejected.
//!
//! OpenAI request fields with no Anthropic equivalent are dropped: `n`,
//! `presence_penalty`, `frequency_penalty`, `logit_bias`, `logprobs`,
//! `top_logprobs`, `response_format`, `seed`, `service_tier`, `store`,
//! `stream_options` (the caller passes `include_usage` to
//! [`StreamTranslator::new`] instead), `modalities`, `audio`, `prediction`,
//! `reasoning_effort`, `web_search_options`, the legacy `functions` /
//! `function_call`, message `name`s, and anything else not listed in
//! [`to_messages_request`].

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use thiserror::Error;

use super::sse::{self, SseError, SseEvent, SseParser};

/// Longest upstream error message passed on, in characters; upstream text ends
/// up in client responses and logs, so it is kept short.
const MAX_ERROR_MESSAGE_CHARS: usize = 300;

/// Why a body or stream could not be translated.
///
/// Messages never quote request or response content, only say which part was
/// wrong, so they are safe to log and to return to clients.
#[derive(Debug, Error)]
pub enum TranslateError {
    /// The client's request cannot be expressed as an Anthropic request.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The upstream sent something that is not a well-formed Anthropic response.
    #[error("invalid upstream response: {0}")]
    InvalidResponse(String),
    /// The upstream reported an error inside the stream (an `error` event).
    #[error("upstream error: {0}")]
    Upstream(String),
    /// The upstream stream ended before `message_stop`.
    #[error("upstream stream ended before message_stop")]
    Truncated,
    /// The upstream stream is not usable SSE.
    #[error("invalid upstream stream: {0}")]
    Sse(#[from] SseError),
}

fn bad_request(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidRequest(message.into())
}

fn bad_response(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidResponse(message.into())
}

// ---------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------

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
/// (as `metadata.user_id`). Everything else is dropped; see the module docs.
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

/// Adds `tools` and `tool_choice`. `tool_choice: "none"` drops both, because
/// with no tools offered Anthropic cannot call one.
fn add_tools(req: &Map<String, Value>, out: &mut Map<String, Value>) -> Result<(), TranslateError> {
    let choice = req.get("tool_choice").filter(|v| !v.is_null());
    if choice.and_then(Value::as_str) == Some("none") {
        return Ok(());
    }
    let tools = match req.get("tools") {
        None | Some(Value::Null) => return Ok(()),
        Some(Value::Array(tools)) if tools.is_empty() => return Ok(()),
        Some(Value::Array(tools)) => tools,
        Some(_) => return Err(bad_request("`tools` must be an array")),
    };

    let mut mapped = Vec::with_capacity(tools.len());
    for (i, tool) in tools.iter().enumerate() {
        let kind = tool.get("type").and_then(Value::as_str);
        let function = tool.get("function");
        let name = function.and_then(|f| f.get("name")).and_then(Value::as_str);
        let (Some("function"), Some(name)) = (kind, name) else {
            return Err(bad_request(format!(
                "tools[{i}]: expected a function tool with `function.name`"
            )));
        };
        let mut entry = Map::new();
        entry.insert("name".into(), Value::from(name));
        if let Some(description) = function
            .and_then(|f| f.get("description"))
            .and_then(Value::as_str)
        {
            entry.insert("description".into(), Value::from(description));
        }
        let schema = function
            .and_then(|f| f.get("parameters"))
            .filter(|p| !p.is_null())
            .cloned()
            .unwrap_or_else(|| json!({ "type": "object" }));
        entry.insert("input_schema".into(), schema);
        mapped.push(Value::Object(entry));
    }
    out.insert("tools".into(), Value::Array(mapped));

    let mut choice = match choice {
        None => None,
        Some(Value::String(s)) if s == "auto" => Some(json!({ "type": "auto" })),
        Some(Value::String(s)) if s == "required" => Some(json!({ "type": "any" })),
        Some(Value::Object(obj)) => {
            let name = obj
                .get("function")
                .and_then(|f| f.get("name"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad_request("`tool_choice` object must name a function"))?;
            Some(json!({ "type": "tool", "name": name }))
        }
        Some(_) => return Err(bad_request("unsupported `tool_choice`")),
    };
    if req.get("parallel_tool_calls") == Some(&Value::Bool(false)) {
        let choice = choice.get_or_insert_with(|| json!({ "type": "auto" }));
        if let Some(obj) = choice.as_object_mut() {
            obj.insert("disable_parallel_tool_use".into(), Value::Bool(true));
        }
    }
    if let Some(choice) = choice {
        out.insert("tool_choice".into(), choice);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------

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
    let usage = anthropic.get("usage");
    let input = usage.and_then(input_tokens).unwrap_or(0);
    let output = usage.and_then(output_tokens).unwrap_or(0);

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
        "usage": usage_json(input, output),
    }))
}

fn finish_reason(stop_reason: Option<&str>) -> &'static str {
    match stop_reason {
        Some("max_tokens") => "length",
        Some("tool_use") => "tool_calls",
        // end_turn, stop_sequence, pause_turn, refusal and anything newer all
        // mean "the model stopped on its own" as far as an OpenAI client knows.
        _ => "stop",
    }
}

/// Token counts are u32 in the gateway; absurd upstream values saturate
/// instead of wrapping.
fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// Prompt tokens including cache reads and writes; `None` when the usage
/// object reports no input counts at all (e.g. an older `message_delta`).
fn input_tokens(usage: &Value) -> Option<u32> {
    let keys = [
        "input_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ];
    let counts: Vec<u64> = keys.iter().filter_map(|k| usage.get(k)?.as_u64()).collect();
    (!counts.is_empty()).then(|| saturate(counts.iter().fold(0u64, |a, b| a.saturating_add(*b))))
}

fn output_tokens(usage: &Value) -> Option<u32> {
    usage.get("output_tokens")?.as_u64().map(saturate)
}

fn usage_json(input: u32, output: u32) -> Value {
    json!({
        "prompt_tokens": input,
        "completion_tokens": output,
        "total_tokens": u64::from(input) + u64::from(output),
    })
}

/// Extracts a short, printable message from an Anthropic error body
/// (`{"type":"error","error":{"type":..,"message":..}}`), as
/// `"<error type>: <message>"`. Returns `None` for anything else, so callers
/// never echo an arbitrary upstream body.
pub fn error_message(anthropic_error_body: &[u8]) -> Option<String> {
    let body: Value = serde_json::from_slice(anthropic_error_body).ok()?;
    error_text(&body)
}

fn error_text(body: &Value) -> Option<String> {
    let error = body.get("error")?;
    let message = error.get("message")?.as_str()?;
    let full = match error.get("type").and_then(Value::as_str) {
        Some(kind) => format!("{kind}: {message}"),
        None => message.to_owned(),
    };
    // Control characters could forge log lines or break header values.
    Some(
        full.chars()
            .take(MAX_ERROR_MESSAGE_CHARS)
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect(),
    )
}

// ---------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------

/// Stateful translator of an Anthropic SSE stream into OpenAI
/// `chat.completion.chunk` SSE frames.
///
/// Each emitted frame is exactly `data: <compact json>\n\n`.
#[derive(Debug)]
pub struct StreamTranslator {
    parser: SseParser,
    client_model: String,
    include_usage: bool,
    created: u64,
    /// OpenAI chunk id, known once `message_start` arrives.
    id: Option<String>,
    input_tokens: u32,
    output_tokens: u32,
    /// Anthropic content block index -> OpenAI tool call index, because
    /// Anthropic numbers all blocks while OpenAI numbers only tool calls.
    tool_indexes: HashMap<u64, usize>,
    next_tool_index: usize,
    saw_content: bool,
    saw_stop: bool,
    finished: bool,
}

impl StreamTranslator {
    /// Creates a translator for one response. `client_model` is reported as
    /// `model` in every chunk; `include_usage` mirrors the client's
    /// `stream_options.include_usage`; `created` is the Unix timestamp to use.
    pub fn new(client_model: &str, include_usage: bool, created: u64) -> Self {
        Self {
            parser: SseParser::new(),
            client_model: client_model.to_owned(),
            include_usage,
            created,
            id: None,
            input_tokens: 0,
            output_tokens: 0,
            tool_indexes: HashMap::new(),
            next_tool_index: 0,
            saw_content: false,
            saw_stop: false,
            finished: false,
        }
    }

    /// Feeds raw upstream bytes (split anywhere) and returns the OpenAI SSE
    /// text to send on, possibly empty.
    ///
    /// On error, frames produced earlier in the same call are discarded; the
    /// stream should then be abandoned.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<String, TranslateError> {
        let mut out = String::new();
        for event in self.parser.feed(bytes)? {
            self.handle(&event, &mut out)?;
        }
        Ok(out)
    }

    /// Call at upstream end-of-stream. If `message_stop` was seen, returns the
    /// final frames: the usage chunk (when `include_usage`), then
    /// `data: [DONE]\n\n`. Otherwise returns [`TranslateError::Truncated`].
    /// Calling it again after success returns an empty string.
    pub fn finish(&mut self) -> Result<String, TranslateError> {
        if self.finished {
            return Ok(String::new());
        }
        if !self.saw_stop {
            return Err(TranslateError::Truncated);
        }
        let mut out = String::new();
        if self.include_usage {
            let mut chunk = self.chunk_base()?;
            chunk.insert("choices".into(), json!([]));
            chunk.insert(
                "usage".into(),
                usage_json(self.input_tokens, self.output_tokens),
            );
            out.push_str(&sse::frame(&Value::Object(chunk).to_string()));
        }
        out.push_str(&sse::frame("[DONE]"));
        self.finished = true;
        Ok(out)
    }

    /// Whether a frame carrying actual content (a non-empty text delta or a
    /// tool call) has been produced yet. The gateway holds the client's
    /// response until this becomes true, so failures before it can still fall
    /// back to another upstream.
    pub fn saw_content(&self) -> bool {
        self.saw_content
    }

    /// Usage so far: (input_tokens, output_tokens), input including cache
    /// reads and writes.
    pub fn usage(&self) -> (u32, u32) {
        (self.input_tokens, self.output_tokens)
    }

    fn handle(&mut self, event: &SseEvent, out: &mut String) -> Result<(), TranslateError> {
        let data: Value = serde_json::from_str(&event.data)
            .map_err(|_| bad_response("stream event data is not JSON"))?;
        // Anthropic repeats the event name as `type` in the data; prefer it so a
        // missing `event:` line does not lose the event.
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .or(event.event.as_deref())
            .unwrap_or_default();
        match kind {
            "message_start" => self.on_message_start(&data, out),
            "content_block_start" => self.on_block_start(&data, out),
            "content_block_delta" => self.on_block_delta(&data, out),
            "message_delta" => self.on_message_delta(&data, out),
            "message_stop" => {
                self.saw_stop = true;
                Ok(())
            }
            "error" => Err(TranslateError::Upstream(
                error_text(&data).unwrap_or_else(|| "unspecified stream error".to_owned()),
            )),
            // ping, content_block_stop, and event types added after this was written.
            _ => Ok(()),
        }
    }

    fn on_message_start(&mut self, data: &Value, out: &mut String) -> Result<(), TranslateError> {
        let message = data.get("message");
        let id = message
            .and_then(|m| m.get("id"))
            .and_then(Value::as_str)
            .ok_or_else(|| bad_response("message_start has no message id"))?;
        self.id = Some(format!("chatcmpl-{id}"));
        if let Some(usage) = message.and_then(|m| m.get("usage")) {
            self.record_usage(usage);
        }
        self.emit(out, json!({ "role": "assistant", "content": "" }), None)
    }

    fn on_block_start(&mut self, data: &Value, out: &mut String) -> Result<(), TranslateError> {
        let block = data.get("content_block");
        match block.and_then(|b| b.get("type")).and_then(Value::as_str) {
            Some("tool_use") => {
                let index = block_index(data)?;
                let call_id = block.and_then(|b| b.get("id")).and_then(Value::as_str);
                let name = block.and_then(|b| b.get("name")).and_then(Value::as_str);
                let (Some(call_id), Some(name)) = (call_id, name) else {
                    return Err(bad_response("tool_use block missing `id` or `name`"));
                };
                let tool_index = self.next_tool_index;
                self.next_tool_index += 1;
                self.tool_indexes.insert(index, tool_index);
                let delta = json!({ "tool_calls": [{
                    "index": tool_index,
                    "id": call_id,
                    "type": "function",
                    "function": { "name": name, "arguments": "" },
                }]});
                self.emit_content(out, delta)
            }
            // Text blocks normally start empty, but any initial text is content.
            Some("text") => match block.and_then(|b| b.get("text")).and_then(Value::as_str) {
                Some(text) if !text.is_empty() => {
                    self.emit_content(out, json!({ "content": text }))
                }
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }

    fn on_block_delta(&mut self, data: &Value, out: &mut String) -> Result<(), TranslateError> {
        let delta = data.get("delta");
        let field = |key: &str| delta.and_then(|d| d.get(key)).and_then(Value::as_str);
        match field("type") {
            Some("text_delta") => {
                let text = field("text").ok_or_else(|| bad_response("text_delta has no `text`"))?;
                if text.is_empty() {
                    return Ok(());
                }
                self.emit_content(out, json!({ "content": text }))
            }
            Some("input_json_delta") => {
                let partial = field("partial_json")
                    .ok_or_else(|| bad_response("input_json_delta has no `partial_json`"))?;
                let tool_index = *self.tool_indexes.get(&block_index(data)?).ok_or_else(|| {
                    bad_response("input_json_delta for a block that is not a tool call")
                })?;
                // Anthropic often opens with an empty fragment; it carries nothing.
                if partial.is_empty() {
                    return Ok(());
                }
                let delta = json!({ "tool_calls": [{
                    "index": tool_index,
                    "function": { "arguments": partial },
                }]});
                self.emit_content(out, delta)
            }
            // thinking, signatures, citations: no OpenAI equivalent.
            _ => Ok(()),
        }
    }

    fn on_message_delta(&mut self, data: &Value, out: &mut String) -> Result<(), TranslateError> {
        if let Some(usage) = data.get("usage") {
            self.record_usage(usage);
        }
        let stop_reason = data
            .get("delta")
            .and_then(|d| d.get("stop_reason"))
            .and_then(Value::as_str);
        self.emit(out, json!({}), Some(finish_reason(stop_reason)))
    }

    /// Anthropic's usage counts are cumulative, so later values replace earlier ones.
    fn record_usage(&mut self, usage: &Value) {
        if let Some(input) = input_tokens(usage) {
            self.input_tokens = input;
        }
        if let Some(output) = output_tokens(usage) {
            self.output_tokens = output;
        }
    }

    fn emit_content(&mut self, out: &mut String, delta: Value) -> Result<(), TranslateError> {
        self.emit(out, delta, None)?;
        self.saw_content = true;
        Ok(())
    }

    fn emit(
        &self,
        out: &mut String,
        delta: Value,
        finish_reason: Option<&str>,
    ) -> Result<(), TranslateError> {
        let mut chunk = self.chunk_base()?;
        chunk.insert(
            "choices".into(),
            json!([{ "index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null }]),
        );
        // OpenAI sends `usage: null` on every chunk but the last when usage was requested.
        if self.include_usage {
            chunk.insert("usage".into(), Value::Null);
        }
        out.push_str(&sse::frame(&Value::Object(chunk).to_string()));
        Ok(())
    }

    fn chunk_base(&self) -> Result<Map<String, Value>, TranslateError> {
        let id = self
            .id
            .as_deref()
            .ok_or_else(|| bad_response("stream content before message_start"))?;
        let mut chunk = Map::new();
        chunk.insert("id".into(), Value::from(id));
        chunk.insert("object".into(), Value::from("chat.completion.chunk"));
        chunk.insert("created".into(), Value::from(self.created));
        chunk.insert("model".into(), Value::from(self.client_model.as_str()));
        Ok(chunk)
    }
}

fn block_index(data: &Value) -> Result<u64, TranslateError> {
    data.get("index")
        .and_then(Value::as_u64)
        .ok_or_else(|| bad_response("content block event has no `index`"))
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

    fn with_tools(tool_choice: Value) -> Value {
        let mut body = json!({
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [
                {"type": "function", "function": {"name": "get_weather", "description": "Weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}},
                {"type": "function", "function": {"name": "ping"}}
            ]
        });
        if !tool_choice.is_null() {
            body["tool_choice"] = tool_choice;
        }
        translate(body)
    }

    #[test]
    fn tools_are_mapped() {
        let out = with_tools(Value::Null);
        assert_eq!(
            out["tools"],
            json!([
                {"name": "get_weather", "description": "Weather", "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}},
                {"name": "ping", "input_schema": {"type": "object"}}
            ])
        );
        assert!(out.get("tool_choice").is_none());
    }

    #[test]
    fn tool_choice_variants() {
        assert_eq!(
            with_tools(json!("auto"))["tool_choice"],
            json!({"type": "auto"})
        );
        assert_eq!(
            with_tools(json!("required"))["tool_choice"],
            json!({"type": "any"})
        );
        assert_eq!(
            with_tools(json!({"type": "function", "function": {"name": "ping"}}))["tool_choice"],
            json!({"type": "tool", "name": "ping"})
        );
        let none = with_tools(json!("none"));
        assert!(none.get("tools").is_none());
        assert!(none.get("tool_choice").is_none());
        assert!(matches!(
            to_messages_request(
                &json!({"messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function", "function": {"name": "x"}}], "tool_choice": "sometimes"}),
                "m",
                1
            ),
            Err(TranslateError::InvalidRequest(_))
        ));
    }

    #[test]
    fn parallel_tool_calls_false_disables_parallel_use() {
        let out = translate(json!({
            "messages": [{"role": "user", "content": "hi"}],
            "tools": [{"type": "function", "function": {"name": "x"}}],
            "parallel_tool_calls": false
        }));
        assert_eq!(
            out["tool_choice"],
            json!({"type": "auto", "disable_parallel_tool_use": true})
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
                "usage": {"prompt_tokens": 17, "completion_tokens": 7, "total_tokens": 24}
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

    // -- streams ----------------------------------------------------------

    fn event(name: &str, data: Value) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    fn message_start() -> String {
        event(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_1", "type": "message", "role": "assistant", "content": [], "model": "claude-x", "stop_reason": null, "usage": {"input_tokens": 25, "cache_read_input_tokens": 5, "output_tokens": 1}}}),
        )
    }

    fn text_stream() -> String {
        [
            message_start(),
            event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
            event("ping", json!({"type": "ping"})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hello"}})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": " w\u{f6}rld \u{1F30D}"}})),
            event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": null}, "usage": {"output_tokens": 15}})),
            event("message_stop", json!({"type": "message_stop"})),
        ]
        .concat()
    }

    fn chunk(delta: Value, finish_reason: Value) -> Value {
        json!({
            "id": "chatcmpl-msg_1", "object": "chat.completion.chunk", "created": 42, "model": "client-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null}]
        })
    }

    /// Splits translator output into frames, checking each is exactly
    /// `data: <compact json>\n\n`. Compared as values so the tests do not
    /// depend on serde_json's key order (the `preserve_order` feature).
    fn frames(out: &str) -> Vec<Value> {
        assert!(out.is_empty() || out.ends_with("\n\n"));
        out.split_terminator("\n\n")
            .map(|frame| {
                let data = frame.strip_prefix("data: ").unwrap();
                if data == "[DONE]" {
                    return json!("[DONE]");
                }
                let value: Value = serde_json::from_str(data).unwrap();
                assert_eq!(value.to_string(), data, "frame is not compact JSON");
                value
            })
            .collect()
    }

    fn run(translator: &mut StreamTranslator, input: &[u8], chunk_size: usize) -> String {
        input
            .chunks(chunk_size)
            .map(|piece| translator.feed(piece).unwrap())
            .collect()
    }

    #[test]
    fn text_stream_translates_identically_whole_and_byte_by_byte() {
        let input = text_stream();
        let mut whole = StreamTranslator::new("client-model", false, 42);
        let mut bytewise = StreamTranslator::new("client-model", false, 42);
        let out_whole = run(&mut whole, input.as_bytes(), input.len()) + &whole.finish().unwrap();
        let out_bytes = run(&mut bytewise, input.as_bytes(), 1) + &bytewise.finish().unwrap();

        let expected = [
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Hello"}), Value::Null),
            chunk(json!({"content": " w\u{f6}rld \u{1F30D}"}), Value::Null),
            chunk(json!({}), json!("stop")),
            json!("[DONE]"),
        ];
        assert_eq!(out_whole, out_bytes);
        assert_eq!(frames(&out_whole), expected);
        assert_eq!(whole.usage(), (30, 15));
        assert_eq!(bytewise.usage(), (30, 15));
        // Finishing twice does not repeat the terminator.
        assert_eq!(whole.finish().unwrap(), "");
    }

    #[test]
    fn include_usage_adds_usage_chunk_and_null_usage() {
        let mut t = StreamTranslator::new("client-model", true, 42);
        let out = t.feed(text_stream().as_bytes()).unwrap();
        let chunks = frames(&out);
        assert_eq!(chunks.len(), 4);
        for chunk in chunks {
            assert_eq!(chunk["usage"], Value::Null);
        }
        let end = t.finish().unwrap();
        let usage_chunk = json!({
            "id": "chatcmpl-msg_1", "object": "chat.completion.chunk", "created": 42, "model": "client-model",
            "choices": [],
            "usage": {"prompt_tokens": 30, "completion_tokens": 15, "total_tokens": 45}
        });
        assert_eq!(frames(&end), vec![usage_chunk, json!("[DONE]")]);
    }

    #[test]
    fn tool_call_stream() {
        let input = [
            message_start(),
            event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Let me look."}})),
            event("content_block_stop", json!({"type": "content_block_stop", "index": 0})),
            event("content_block_start", json!({"type": "content_block_start", "index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {}}})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": ""}})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "{\"city\": "}})),
            event("content_block_delta", json!({"type": "content_block_delta", "index": 1, "delta": {"type": "input_json_delta", "partial_json": "\"Paris\"}"}})),
            event("content_block_stop", json!({"type": "content_block_stop", "index": 1})),
            event("content_block_start", json!({"type": "content_block_start", "index": 2, "content_block": {"type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}})),
            event("content_block_stop", json!({"type": "content_block_stop", "index": 2})),
            event("message_delta", json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 40}})),
            event("message_stop", json!({"type": "message_stop"})),
        ]
        .concat();
        let mut t = StreamTranslator::new("client-model", false, 42);
        let out = run(&mut t, input.as_bytes(), 7) + &t.finish().unwrap();
        let expected = [
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"content": "Let me look."}), Value::Null),
            chunk(
                json!({"tool_calls": [{"index": 0, "id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": ""}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "{\"city\": "}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 0, "function": {"arguments": "\"Paris\"}"}}]}),
                Value::Null,
            ),
            chunk(
                json!({"tool_calls": [{"index": 1, "id": "toolu_2", "type": "function", "function": {"name": "now", "arguments": ""}}]}),
                Value::Null,
            ),
            chunk(json!({}), json!("tool_calls")),
            json!("[DONE]"),
        ];
        assert_eq!(frames(&out), expected);
        assert_eq!(t.usage(), (30, 40));
    }

    #[test]
    fn tool_call_alone_counts_as_content() {
        let mut t = StreamTranslator::new("m", false, 0);
        t.feed(message_start().as_bytes()).unwrap();
        assert!(!t.saw_content());
        t.feed(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "tool_use", "id": "t", "name": "f", "input": {}}})).as_bytes())
            .unwrap();
        assert!(t.saw_content());
    }

    #[test]
    fn saw_content_only_after_non_empty_text() {
        let mut t = StreamTranslator::new("m", false, 0);
        assert!(!t.saw_content());
        let first = t.feed(message_start().as_bytes()).unwrap();
        assert!(!first.is_empty());
        assert!(!t.saw_content());
        t.feed(event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})).as_bytes())
            .unwrap();
        t.feed(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": ""}})).as_bytes())
            .unwrap();
        assert!(!t.saw_content());
        t.feed(event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Hi"}})).as_bytes())
            .unwrap();
        assert!(t.saw_content());
    }

    #[test]
    fn truncated_stream_is_an_error() {
        let input = text_stream();
        let cut = input.find("event: message_stop").unwrap();
        let mut t = StreamTranslator::new("m", true, 0);
        t.feed(&input.as_bytes()[..cut]).unwrap();
        assert!(matches!(t.finish(), Err(TranslateError::Truncated)));
        let mut empty = StreamTranslator::new("m", false, 0);
        assert!(matches!(empty.finish(), Err(TranslateError::Truncated)));
    }

    #[test]
    fn error_event_is_upstream_error() {
        let mut t = StreamTranslator::new("m", false, 0);
        t.feed(message_start().as_bytes()).unwrap();
        let err = t
            .feed(event("error", json!({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}})).as_bytes())
            .unwrap_err();
        match err {
            TranslateError::Upstream(message) => {
                assert_eq!(message, "overloaded_error: Overloaded")
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn malformed_streams_are_invalid_responses() {
        let bad_inputs = [
            "event: message_start\ndata: {not json\n\n".to_owned(),
            event(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "early"}}),
            ),
            event(
                "message_start",
                json!({"type": "message_start", "message": {}}),
            ),
            message_start()
                + &event(
                    "content_block_delta",
                    json!({"type": "content_block_delta", "index": 3, "delta": {"type": "input_json_delta", "partial_json": "{}"}}),
                ),
        ];
        for input in bad_inputs {
            let mut t = StreamTranslator::new("m", false, 0);
            assert!(
                matches!(
                    t.feed(input.as_bytes()),
                    Err(TranslateError::InvalidResponse(_))
                ),
                "{input}"
            );
        }
    }

    #[test]
    fn unknown_events_are_ignored() {
        let mut t = StreamTranslator::new("m", false, 0);
        t.feed(message_start().as_bytes()).unwrap();
        let out = t
            .feed(
                [
                    event("ping", json!({"type": "ping"})),
                    event("future_event", json!({"type": "future_event", "x": 1})),
                    event("content_block_start", json!({"type": "content_block_start", "index": 0, "content_block": {"type": "thinking", "thinking": ""}})),
                    event("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "thinking_delta", "thinking": "hmm"}})),
                ]
                .concat()
                .as_bytes(),
            )
            .unwrap();
        assert_eq!(out, "");
        assert!(!t.saw_content());
    }
}

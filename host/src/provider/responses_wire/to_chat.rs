//! OpenAI Responses API requests to Chat Completions requests, for a client that
//! speaks Responses in front of an upstream that speaks only Chat.
//!
//! The Responses `input` is a flat list of items (messages, function calls, their
//! outputs, reasoning, built-in tool calls); Chat wants messages, the calls of one
//! assistant turn gathered in its `tool_calls`. What Chat cannot carry is left out
//! and named in [`ChatRequest::dropped`], so the gateway can log or report it; the
//! request itself still goes through.

use serde_json::{Map, Value, json};

use super::TranslateError;

/// A Responses request translated into a chat request.
#[derive(Debug, Clone, PartialEq)]
pub struct ChatRequest {
    /// The chat request body.
    pub body: Value,
    /// What the chat upstream could not be given, each named once, in this order:
    /// `previous_response_id`, `conversation`, `prompt` (stored state the gateway
    /// does not have), `reasoning` (reasoning items, encrypted reasoning asked for),
    /// `reasoning_summary`, `builtin_tools` (OpenAI's hosted tools and their calls),
    /// `custom_tools` (free-form and namespaced tools and their calls),
    /// `file_inputs` (files, and images given by file id), `tool_output_images`
    /// (images in a function call's output) and `logprobs`.
    pub dropped: Vec<&'static str>,
}

/// Something in a Responses request that has no place in a chat request.
#[derive(Debug, Clone, Copy)]
enum Lost {
    PreviousResponseId,
    Conversation,
    Prompt,
    Reasoning,
    ReasoningSummary,
    BuiltinTools,
    CustomTools,
    FileInputs,
    ToolOutputImages,
    Logprobs,
}

impl Lost {
    /// Every kind, in the order [`ChatRequest::dropped`] lists them.
    const ALL: [Lost; 10] = [
        Lost::PreviousResponseId,
        Lost::Conversation,
        Lost::Prompt,
        Lost::Reasoning,
        Lost::ReasoningSummary,
        Lost::BuiltinTools,
        Lost::CustomTools,
        Lost::FileInputs,
        Lost::ToolOutputImages,
        Lost::Logprobs,
    ];

    fn name(self) -> &'static str {
        match self {
            Lost::PreviousResponseId => "previous_response_id",
            Lost::Conversation => "conversation",
            Lost::Prompt => "prompt",
            Lost::Reasoning => "reasoning",
            Lost::ReasoningSummary => "reasoning_summary",
            Lost::BuiltinTools => "builtin_tools",
            Lost::CustomTools => "custom_tools",
            Lost::FileInputs => "file_inputs",
            Lost::ToolOutputImages => "tool_output_images",
            Lost::Logprobs => "logprobs",
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

/// Translates a Responses API request body into an OpenAI chat request body for
/// `upstream_model`.
///
/// Mapped: `instructions` (a leading system message), `input` (a string is one user
/// message; of the items, messages keep their role, `developer` becoming `system`,
/// with text and image parts; `function_call` items become the `tool_calls` of an
/// assistant message, joining the assistant message just before them, and
/// `function_call_output` items `tool` messages), `tools` (functions only),
/// `tool_choice`, `parallel_tool_calls`, `max_output_tokens` (as
/// `max_completion_tokens`), `temperature`, `top_p`, `stream` (with
/// `stream_options.include_usage`, since the gateway accounts usage), `user` (or
/// `safety_identifier`), `metadata`, `text.format` (as `response_format`),
/// `text.verbosity` (as `verbosity`) and `reasoning.effort` (as `reasoning_effort`).
/// What Chat cannot carry is listed in [`ChatRequest::dropped`]; `store`,
/// `background`, `include` (but for what it asks that is dropped), `truncation`,
/// `service_tier`, `prompt_cache_key`, `max_tool_calls`, `stream_options` and other
/// unknown fields are ignored.
///
/// An `item_reference` is refused: the gateway keeps no items to refer to.
pub fn chat_request_from_responses(
    request: &Value,
    upstream_model: &str,
) -> Result<ChatRequest, TranslateError> {
    let req = request
        .as_object()
        .ok_or_else(|| bad_request("body must be a JSON object"))?;

    let mut lost = LostSet::default();
    let mut messages = Vec::new();
    match req.get("instructions") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) if text.is_empty() => {}
        Some(Value::String(text)) => messages.push(json!({ "role": "system", "content": text })),
        Some(_) => return Err(bad_request("`instructions` must be a string")),
    }
    let first_turn = messages.len();
    match req.get("input") {
        Some(Value::String(text)) => {
            if !text.is_empty() {
                messages.push(json!({ "role": "user", "content": text }));
            }
        }
        Some(Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                input_item(item, i, &mut lost, &mut messages)?;
            }
        }
        _ => {
            return Err(bad_request("`input` must be a string or an array of items"));
        }
    }
    if messages.len() == first_turn {
        return Err(bad_request("`input` has no content to send"));
    }

    let mut body = Map::new();
    body.insert("model".into(), Value::from(upstream_model));
    body.insert("messages".into(), Value::Array(messages));
    match req.get("max_output_tokens") {
        None | Some(Value::Null) => {}
        Some(value) => match value.as_u64().filter(|n| *n > 0) {
            Some(n) => {
                body.insert("max_completion_tokens".into(), Value::from(n));
            }
            None => {
                return Err(bad_request(
                    "`max_output_tokens` must be a positive integer",
                ));
            }
        },
    }
    for key in ["temperature", "top_p"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(value @ Value::Number(_)) => {
                body.insert(key.into(), value.clone());
            }
            Some(_) => return Err(bad_request(format!("`{key}` must be a number"))),
        }
    }
    match req.get("stream") {
        None | Some(Value::Null | Value::Bool(false)) => {}
        Some(Value::Bool(true)) => {
            body.insert("stream".into(), Value::Bool(true));
            body.insert("stream_options".into(), json!({ "include_usage": true }));
        }
        Some(_) => return Err(bad_request("`stream` must be a boolean")),
    }
    if let Some(user) = user(req)? {
        body.insert("user".into(), Value::from(user));
    }
    match req.get("metadata") {
        None | Some(Value::Null) => {}
        Some(Value::Object(fields)) if fields.is_empty() => {}
        Some(metadata @ Value::Object(_)) => {
            body.insert("metadata".into(), metadata.clone());
        }
        Some(_) => return Err(bad_request("`metadata` must be an object")),
    }
    add_text_config(req, &mut body)?;
    add_reasoning(req, &mut body, &mut lost)?;
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

/// Whether an optional field asks for something: present, and not null, false,
/// zero or empty.
fn is_set(value: Option<&Value>) -> bool {
    match value {
        None | Some(Value::Null | Value::Bool(false)) => false,
        Some(Value::String(text)) => !text.is_empty(),
        Some(Value::Number(n)) => n.as_f64() != Some(0.0),
        Some(Value::Array(items)) => !items.is_empty(),
        Some(Value::Object(fields)) => !fields.is_empty(),
        Some(Value::Bool(true)) => true,
    }
}

/// Request parameters that need what the gateway does not have (stored responses,
/// conversations and prompts) or that ask for output Chat does not give.
fn note_unsupported_parameters(req: &Map<String, Value>, lost: &mut LostSet) {
    if is_set(req.get("previous_response_id")) {
        lost.note(Lost::PreviousResponseId);
    }
    if is_set(req.get("conversation")) {
        lost.note(Lost::Conversation);
    }
    if is_set(req.get("prompt")) {
        lost.note(Lost::Prompt);
    }
    let included = req.get("include").and_then(Value::as_array);
    for included in included.into_iter().flatten().filter_map(Value::as_str) {
        match included {
            // Chat has no reasoning items to hand back encrypted.
            "reasoning.encrypted_content" => lost.note(Lost::Reasoning),
            "message.output_text.logprobs" => lost.note(Lost::Logprobs),
            // The rest are outputs of built-in tools, which are dropped anyway, or
            // inputs echoed back, which the gateway does not echo.
            _ => {}
        }
    }
    if is_set(req.get("top_logprobs")) {
        lost.note(Lost::Logprobs);
    }
}

/// The end user: `user`, or the `safety_identifier` that replaces it.
fn user(req: &Map<String, Value>) -> Result<Option<&str>, TranslateError> {
    let mut found = None;
    for key in ["user", "safety_identifier"] {
        match req.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::String(user)) => {
                if found.is_none() && !user.is_empty() {
                    found = Some(user.as_str());
                }
            }
            Some(_) => return Err(bad_request(format!("`{key}` must be a string"))),
        }
    }
    Ok(found)
}

/// Adds `response_format` for `text.format` and `verbosity` for `text.verbosity`.
fn add_text_config(
    req: &Map<String, Value>,
    body: &mut Map<String, Value>,
) -> Result<(), TranslateError> {
    let text = match req.get("text") {
        None | Some(Value::Null) => return Ok(()),
        Some(text @ Value::Object(_)) => text,
        Some(_) => return Err(bad_request("`text` must be an object")),
    };
    match text.get("verbosity") {
        None | Some(Value::Null) => {}
        Some(verbosity @ Value::String(_)) => {
            body.insert("verbosity".into(), verbosity.clone());
        }
        Some(_) => return Err(bad_request("`text.verbosity` must be a string")),
    }
    let format = match text.get("format") {
        None | Some(Value::Null) => return Ok(()),
        Some(format @ Value::Object(_)) => format,
        Some(_) => return Err(bad_request("`text.format` must be an object")),
    };
    let response_format = match format.get("type").and_then(Value::as_str) {
        // Plain text is what Chat gives without being asked.
        Some("text") => return Ok(()),
        Some("json_object") => json!({ "type": "json_object" }),
        Some("json_schema") => {
            // Chat nests under `json_schema` what Responses puts beside `type`.
            let mut schema = Map::new();
            schema.insert(
                "name".into(),
                Value::from(string_field(format, "name", "text.format")?),
            );
            for (key, valid) in [
                ("schema", Value::is_object as fn(&Value) -> bool),
                ("strict", Value::is_boolean),
                ("description", Value::is_string),
            ] {
                match format.get(key) {
                    None | Some(Value::Null) => {}
                    Some(value) if valid(value) => {
                        schema.insert(key.into(), value.clone());
                    }
                    Some(_) => {
                        return Err(bad_request(format!(
                            "`text.format.{key}` has the wrong type"
                        )));
                    }
                }
            }
            json!({ "type": "json_schema", "json_schema": schema })
        }
        _ => {
            return Err(bad_request(
                "`text.format.type` must be `text`, `json_schema` or `json_object`",
            ));
        }
    };
    body.insert("response_format".into(), response_format);
    Ok(())
}

/// Adds `reasoning_effort` for `reasoning.effort`; a summary asked for is dropped,
/// since Chat returns no reasoning summaries.
fn add_reasoning(
    req: &Map<String, Value>,
    body: &mut Map<String, Value>,
    lost: &mut LostSet,
) -> Result<(), TranslateError> {
    let reasoning = match req.get("reasoning") {
        None | Some(Value::Null) => return Ok(()),
        Some(reasoning @ Value::Object(_)) => reasoning,
        Some(_) => return Err(bad_request("`reasoning` must be an object")),
    };
    match reasoning.get("effort") {
        None | Some(Value::Null) => {}
        Some(effort @ Value::String(_)) => {
            body.insert("reasoning_effort".into(), effort.clone());
        }
        Some(_) => return Err(bad_request("`reasoning.effort` must be a string")),
    }
    // `generate_summary` is the deprecated name of `summary`.
    if is_set(reasoning.get("summary")) || is_set(reasoning.get("generate_summary")) {
        lost.note(Lost::ReasoningSummary);
    }
    Ok(())
}

fn string_field<'a>(value: &'a Value, key: &str, path: &str) -> Result<&'a str, TranslateError> {
    value
        .get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("{path}: missing `{key}`")))
}

/// A string field that must be present and not empty, like the ids that tie a call
/// to its output.
fn id_field<'a>(value: &'a Value, key: &str, path: &str) -> Result<&'a str, TranslateError> {
    value
        .get(key)
        .and_then(Value::as_str)
        .filter(|id| !id.is_empty())
        .ok_or_else(|| bad_request(format!("{path}: missing `{key}`")))
}

/// Pushes the chat messages for one input item, if anything of it survives.
fn input_item(
    item: &Value,
    i: usize,
    lost: &mut LostSet,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let path = format!("input[{i}]");
    if !item.is_object() {
        return Err(bad_request(format!("{path}: must be an object")));
    }
    let kind = match item.get("type") {
        // An "easy" input message: `role` and `content` alone.
        None | Some(Value::Null) => "message",
        Some(Value::String(kind)) => kind.as_str(),
        Some(_) => return Err(bad_request(format!("{path}.type: must be a string"))),
    };
    match kind {
        "message" => message(item, &path, lost, out),
        "function_call" => function_call(item, &path, out),
        "function_call_output" => function_call_output(item, &path, lost, out),
        // A chat upstream cannot take reasoning back; the answer before it stands.
        "reasoning" => {
            lost.note(Lost::Reasoning);
            Ok(())
        }
        "item_reference" => Err(bad_request(format!(
            "{path}: stored items are not available"
        ))),
        "custom_tool_call" | "custom_tool_call_output" => {
            lost.note(Lost::CustomTools);
            Ok(())
        }
        // Calls of built-in tools and their outputs (web and file search, computer
        // use, code interpreter, image generation, MCP, shell, ...), and item kinds
        // newer than this code: nothing a chat upstream could run or read back.
        _ => {
            lost.note(Lost::BuiltinTools);
            Ok(())
        }
    }
}

/// The chat role of a message's `role`: a developer message is a system one, the
/// name every chat server knows.
fn chat_role(item: &Value, path: &str) -> Result<&'static str, TranslateError> {
    match item.get("role").and_then(Value::as_str) {
        Some("user") => Ok("user"),
        Some("assistant") => Ok("assistant"),
        Some("system" | "developer") => Ok("system"),
        _ => Err(bad_request(format!(
            "{path}.role: must be `user`, `assistant`, `system` or `developer`"
        ))),
    }
}

/// Pushes the chat message for one input message, unless nothing in it survives.
fn message(
    item: &Value,
    path: &str,
    lost: &mut LostSet,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let role = chat_role(item, path)?;
    let mut parts = Vec::new();
    match item.get("content") {
        Some(Value::String(text)) => push_text_part(&mut parts, text),
        Some(Value::Array(items)) => {
            for (j, part) in items.iter().enumerate() {
                let part_path = format!("{path}.content[{j}]");
                match part_type(part, &part_path)? {
                    "input_text" | "output_text" => {
                        push_text_part(&mut parts, string_field(part, "text", &part_path)?);
                    }
                    // A refusal given back is what the assistant said.
                    "refusal" => {
                        push_text_part(&mut parts, string_field(part, "refusal", &part_path)?);
                    }
                    "input_image" if role == "user" => {
                        if let Some(image) = image_part(part, &part_path, lost)? {
                            parts.push(image);
                        }
                    }
                    "input_image" => {
                        return Err(bad_request(format!(
                            "{part_path}: images are allowed only in user messages"
                        )));
                    }
                    "input_file" => lost.note(Lost::FileInputs),
                    _ => {
                        return Err(bad_request(format!(
                            "{part_path}: unknown content part type"
                        )));
                    }
                }
            }
        }
        _ => {
            return Err(bad_request(format!(
                "{path}.content: must be a string or an array of content parts"
            )));
        }
    }
    if parts.is_empty() {
        return Ok(());
    }
    let content = match role {
        "user" => match parts.as_slice() {
            [only] if only.get("type").and_then(Value::as_str) == Some("text") => {
                only.get("text").cloned().unwrap_or_else(|| Value::from(""))
            }
            _ => Value::Array(parts),
        },
        // The parts of an answer are one answer cut up; those of instructions are
        // paragraphs.
        "assistant" => Value::from(joined_text(&parts, "")),
        _ => Value::from(joined_text(&parts, "\n\n")),
    };
    out.push(json!({ "role": role, "content": content }));
    Ok(())
}

fn part_type<'a>(part: &'a Value, path: &str) -> Result<&'a str, TranslateError> {
    part.get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_request(format!("{path}: missing `type`")))
}

/// Empty text is skipped: it carries nothing, and an empty message must not be sent.
fn push_text_part(parts: &mut Vec<Value>, text: &str) {
    if !text.is_empty() {
        parts.push(json!({ "type": "text", "text": text }));
    }
}

/// The texts of chat text parts, joined with `separator` (only text parts are ever
/// given: images are refused outside user messages).
fn joined_text(parts: &[Value], separator: &str) -> String {
    let texts: Vec<&str> = parts
        .iter()
        .filter_map(|part| part.get("text").and_then(Value::as_str))
        .collect();
    texts.join(separator)
}

/// An `input_image` part as a chat `image_url` part; `None` when it is given by
/// file id, which only OpenAI's file store can resolve.
fn image_part(
    part: &Value,
    path: &str,
    lost: &mut LostSet,
) -> Result<Option<Value>, TranslateError> {
    match part.get("image_url") {
        Some(Value::String(url)) if !url.is_empty() => {
            let mut image = Map::new();
            image.insert("url".into(), Value::from(url.as_str()));
            // Chat knows these three; `original` and the like fall back to its
            // default rather than being refused.
            if let Some(detail @ ("auto" | "low" | "high")) =
                part.get("detail").and_then(Value::as_str)
            {
                image.insert("detail".into(), Value::from(detail));
            }
            Ok(Some(json!({ "type": "image_url", "image_url": image })))
        }
        None | Some(Value::Null) if is_set(part.get("file_id")) => {
            lost.note(Lost::FileInputs);
            Ok(None)
        }
        _ => Err(bad_request(format!("{path}: missing `image_url`"))),
    }
}

/// A `function_call` item as a chat tool call, added to the assistant message just
/// before it (the text that introduced the call, or the calls made beside it) or
/// else to a new one.
fn function_call(item: &Value, path: &str, out: &mut Vec<Value>) -> Result<(), TranslateError> {
    let call_id = id_field(item, "call_id", path)?;
    let name = id_field(item, "name", path)?;
    let arguments = match item.get("arguments") {
        // Tools without parameters may come with "" or nothing at all.
        None | Some(Value::Null) => "{}",
        Some(Value::String(text)) if text.trim().is_empty() => "{}",
        Some(Value::String(text)) => text.as_str(),
        Some(_) => return Err(bad_request(format!("{path}.arguments: must be a string"))),
    };
    let call = json!({
        "id": call_id,
        "type": "function",
        "function": { "name": name, "arguments": arguments },
    });
    if let Some(Value::Object(last)) = out.last_mut()
        && last.get("role").and_then(Value::as_str) == Some("assistant")
    {
        match last.get_mut("tool_calls") {
            Some(Value::Array(calls)) => calls.push(call),
            _ => {
                last.insert("tool_calls".into(), Value::Array(vec![call]));
            }
        }
        return Ok(());
    }
    out.push(json!({ "role": "assistant", "content": null, "tool_calls": [call] }));
    Ok(())
}

/// A `function_call_output` item as a chat `tool` message. Only its text survives:
/// a tool message holds no images or files.
fn function_call_output(
    item: &Value,
    path: &str,
    lost: &mut LostSet,
    out: &mut Vec<Value>,
) -> Result<(), TranslateError> {
    let call_id = id_field(item, "call_id", path)?;
    let text = match item.get("output") {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Array(parts)) => {
            let mut pieces = Vec::new();
            for (k, part) in parts.iter().enumerate() {
                let part_path = format!("{path}.output[{k}]");
                match part_type(part, &part_path)? {
                    "input_text" | "output_text" => {
                        pieces.push(string_field(part, "text", &part_path)?);
                    }
                    "input_image" => lost.note(Lost::ToolOutputImages),
                    "input_file" => lost.note(Lost::FileInputs),
                    _ => {
                        return Err(bad_request(format!(
                            "{part_path}: unknown content part type"
                        )));
                    }
                }
            }
            pieces.join("\n")
        }
        _ => {
            return Err(bad_request(format!(
                "{path}.output: must be a string or an array of content parts"
            )));
        }
    };
    out.push(json!({ "role": "tool", "tool_call_id": call_id, "content": text }));
    Ok(())
}

/// Adds `tools`, `tool_choice` and `parallel_tool_calls`. Only function tools reach
/// Chat: built-in tools run inside OpenAI's service, and custom (free-form) and
/// namespaced tools have no chat form every server knows. With no function left,
/// the choice and `parallel_tool_calls` are left out too, since Chat refuses them
/// without `tools`; so is a choice of a tool that was left out, since Chat refuses
/// one that names a function it was not given.
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
    for (k, tool) in tools.iter().enumerate() {
        let path = format!("tools[{k}]");
        if !tool.is_object() {
            return Err(bad_request(format!("{path}: must be an object")));
        }
        match string_field(tool, "type", &path)? {
            "function" => functions.push(function_tool(tool, &path)?),
            "custom" | "namespace" => lost.note(Lost::CustomTools),
            _ => lost.note(Lost::BuiltinTools),
        }
    }
    let choice = tool_choice(req.get("tool_choice"))?;
    let parallel = match req.get("parallel_tool_calls") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(parallel)) => Some(*parallel),
        Some(_) => return Err(bad_request("`parallel_tool_calls` must be a boolean")),
    };

    let choice = match choice {
        Choice::Unset | Choice::LeftOut => None,
        Choice::Mode(mode) => Some(Value::from(mode)),
        Choice::Function(name) => offers(&functions, name)
            .then(|| json!({ "type": "function", "function": { "name": name } })),
        Choice::Allowed { mode, names } => {
            // Chat's own `allowed_tools` choice is OpenAI's alone; offering only the
            // allowed functions says the same to every server.
            functions.retain(|f| {
                let name = f["function"]["name"].as_str().unwrap_or_default();
                names.contains(&name)
            });
            Some(Value::from(mode))
        }
    };
    if functions.is_empty() {
        return Ok(());
    }
    body.insert("tools".into(), Value::Array(functions));
    if let Some(choice) = choice {
        body.insert("tool_choice".into(), choice);
    }
    if let Some(parallel) = parallel {
        body.insert("parallel_tool_calls".into(), Value::Bool(parallel));
    }
    Ok(())
}

/// Whether `functions` (chat tools) has one named `name`.
fn offers(functions: &[Value], name: &str) -> bool {
    functions.iter().any(|f| f["function"]["name"] == name)
}

/// A Responses function tool (`name`, `description`, `parameters` and `strict`
/// beside `type`) as a chat tool, which nests them under `function`.
fn function_tool(tool: &Value, path: &str) -> Result<Value, TranslateError> {
    let mut function = Map::new();
    function.insert("name".into(), Value::from(id_field(tool, "name", path)?));
    for (key, valid) in [
        ("description", Value::is_string as fn(&Value) -> bool),
        ("parameters", Value::is_object),
        ("strict", Value::is_boolean),
    ] {
        match tool.get(key) {
            None | Some(Value::Null) => {}
            Some(value) if valid(value) => {
                function.insert(key.into(), value.clone());
            }
            Some(_) => return Err(bad_request(format!("{path}.{key}: has the wrong type"))),
        }
    }
    Ok(json!({ "type": "function", "function": function }))
}

/// A `tool_choice`, read.
enum Choice<'a> {
    Unset,
    /// `auto`, `none` or `required`.
    Mode(&'a str),
    /// One function, by name.
    Function(&'a str),
    /// Any of some tools (`allowed_tools`): the functions among them, by name.
    Allowed {
        mode: &'a str,
        names: Vec<&'a str>,
    },
    /// A built-in, custom or other tool that Chat will not be offered.
    LeftOut,
}

fn tool_choice(choice: Option<&Value>) -> Result<Choice<'_>, TranslateError> {
    let choice = match choice {
        None | Some(Value::Null) => return Ok(Choice::Unset),
        Some(Value::String(mode)) => {
            return match mode.as_str() {
                mode @ ("auto" | "none" | "required") => Ok(Choice::Mode(mode)),
                _ => Err(bad_request(
                    "`tool_choice` must be `auto`, `none`, `required` or an object",
                )),
            };
        }
        Some(choice @ Value::Object(_)) => choice,
        Some(_) => {
            return Err(bad_request(
                "`tool_choice` must be `auto`, `none`, `required` or an object",
            ));
        }
    };
    match string_field(choice, "type", "tool_choice")? {
        "function" => Ok(Choice::Function(id_field(choice, "name", "tool_choice")?)),
        "allowed_tools" => {
            let mode = match choice.get("mode").and_then(Value::as_str) {
                Some(mode @ ("auto" | "required")) => mode,
                _ => {
                    return Err(bad_request(
                        "`tool_choice.mode` must be `auto` or `required`",
                    ));
                }
            };
            let tools = choice
                .get("tools")
                .and_then(Value::as_array)
                .ok_or_else(|| bad_request("`tool_choice.tools` must be an array"))?;
            let names = tools
                .iter()
                .filter(|tool| tool.get("type").and_then(Value::as_str) == Some("function"))
                .filter_map(|tool| tool.get("name").and_then(Value::as_str))
                .collect();
            Ok(Choice::Allowed { mode, names })
        }
        // `file_search`, `web_search_preview`, `computer_use_preview`, `mcp`,
        // `custom`, `shell`, `apply_patch` and the rest: tools left out above.
        _ => Ok(Choice::LeftOut),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn translate(body: Value) -> ChatRequest {
        chat_request_from_responses(&body, "gpt-up").unwrap()
    }

    fn request_error(body: Value) -> String {
        match chat_request_from_responses(&body, "gpt-up") {
            Err(TranslateError::InvalidRequest(message)) => message,
            other => panic!("expected InvalidRequest for {body}, got {other:?}"),
        }
    }

    /// A minimal valid request with `extra` fields merged in.
    fn with(extra: Value) -> Value {
        let mut body = json!({ "model": "client-model", "input": "hi" });
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        body
    }

    fn dropped_by(extra: Value) -> Vec<&'static str> {
        translate(with(extra)).dropped
    }

    fn messages_of(input: Value) -> Value {
        translate(with(json!({ "input": input }))).body["messages"].clone()
    }

    #[test]
    fn minimal_request() {
        let out = translate(with(json!({})));
        assert_eq!(
            out.body,
            json!({ "model": "gpt-up", "messages": [{"role": "user", "content": "hi"}] })
        );
        assert!(out.dropped.is_empty());
    }

    #[test]
    fn parameters_are_mapped() {
        let out = translate(with(json!({
            "instructions": "Be brief.",
            "max_output_tokens": 256,
            "temperature": 0.3,
            "top_p": 0.9,
            "stream": true,
            "user": "u-1",
            "metadata": {"k": "v"},
            "text": {"format": {"type": "json_object"}, "verbosity": "low"},
            "reasoning": {"effort": "high", "summary": null},
            "store": true,
            "background": false,
            "include": ["file_search_call.results"],
            "truncation": "auto",
            "service_tier": "auto",
            "prompt_cache_key": "k",
            "max_tool_calls": 3,
            "stream_options": {"include_obfuscation": false},
            "some_future_field": {"x": 1}
        })));
        assert_eq!(
            out.body,
            json!({
                "model": "gpt-up",
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "hi"}
                ],
                "max_completion_tokens": 256,
                "temperature": 0.3,
                "top_p": 0.9,
                "stream": true,
                "stream_options": {"include_usage": true},
                "user": "u-1",
                "metadata": {"k": "v"},
                "response_format": {"type": "json_object"},
                "verbosity": "low",
                "reasoning_effort": "high"
            })
        );
        assert!(out.dropped.is_empty());
        let quiet = translate(with(json!({
            "instructions": "", "stream": false, "temperature": null, "max_output_tokens": null,
            "metadata": {}, "text": {"format": {"type": "text"}}, "reasoning": {"effort": null},
            "user": ""
        })));
        assert_eq!(
            quiet.body,
            json!({ "model": "gpt-up", "messages": [{"role": "user", "content": "hi"}] })
        );
    }

    #[test]
    fn safety_identifier_stands_for_user() {
        let out = translate(with(json!({ "safety_identifier": "hash-1" })));
        assert_eq!(out.body["user"], "hash-1");
        let out = translate(with(
            json!({ "safety_identifier": "hash-1", "user": "u-1" }),
        ));
        assert_eq!(out.body["user"], "u-1");
    }

    #[test]
    fn json_schema_format() {
        let out = translate(with(json!({"text": {"format": {
            "type": "json_schema", "name": "person", "strict": true, "description": "A person",
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}}
        }}})));
        assert_eq!(
            out.body["response_format"],
            json!({"type": "json_schema", "json_schema": {
                "name": "person", "strict": true, "description": "A person",
                "schema": {"type": "object", "properties": {"name": {"type": "string"}}}
            }})
        );
    }

    #[test]
    fn message_forms_and_roles() {
        let messages = messages_of(json!([
            {"role": "user", "content": "plain"},
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "one part"}]},
            {"role": "user", "content": [{"type": "input_text", "text": "a"}, {"type": "input_text", "text": "b"}]},
            {"role": "developer", "content": "dev"},
            {"role": "system", "content": [{"type": "input_text", "text": "s1"}, {"type": "input_text", "text": "s2"}]},
            {"type": "message", "id": "msg_1", "status": "completed", "role": "assistant", "content": [
                {"type": "output_text", "text": "Hel", "annotations": []},
                {"type": "output_text", "text": "lo", "annotations": []}
            ]},
            {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]}
        ]));
        assert_eq!(
            messages,
            json!([
                {"role": "user", "content": "plain"},
                {"role": "user", "content": "one part"},
                {"role": "user", "content": [{"type": "text", "text": "a"}, {"type": "text", "text": "b"}]},
                {"role": "system", "content": "dev"},
                {"role": "system", "content": "s1\n\ns2"},
                {"role": "assistant", "content": "Hello"},
                {"role": "assistant", "content": "No."}
            ])
        );
    }

    #[test]
    fn images() {
        let out = translate(with(json!({"input": [{"role": "user", "content": [
            {"type": "input_text", "text": "look"},
            {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "high"},
            {"type": "input_image", "image_url": "data:image/png;base64,AAAA", "detail": "original"},
            {"type": "input_image", "file_id": "file-1", "detail": "auto"}
        ]}]})));
        assert_eq!(
            out.body["messages"],
            json!([{"role": "user", "content": [
                {"type": "text", "text": "look"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png", "detail": "high"}},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
            ]}])
        );
        assert_eq!(out.dropped, ["file_inputs"]);
    }

    #[test]
    fn function_call_round_trip_keeps_chat_order() {
        let out = translate(json!({
            "model": "client-model",
            "instructions": "Use tools.",
            "tools": [
                {"type": "function", "name": "get_weather", "description": "Weather",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true},
                {"type": "function", "name": "now", "parameters": null, "strict": null}
            ],
            "input": [
                {"role": "user", "content": "Weather in Paris, and the time?"},
                {"type": "reasoning", "id": "rs_1", "summary": []},
                {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "Checking both.", "annotations": []}]},
                {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Paris\"}", "status": "completed"},
                {"type": "function_call", "call_id": "call_2", "name": "now", "arguments": ""},
                {"type": "function_call_output", "call_id": "call_1", "output": "18C"},
                {"type": "function_call_output", "call_id": "call_2", "output": [
                    {"type": "input_text", "text": "noon"},
                    {"type": "input_text", "text": "UTC"}
                ]},
                {"role": "user", "content": "Thanks! Again?"},
                {"type": "function_call", "call_id": "call_3", "name": "now", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "call_3", "output": "one"},
                {"role": "assistant", "content": "It is noon and 18C."}
            ]
        }));
        assert_eq!(
            out.body["messages"],
            json!([
                {"role": "system", "content": "Use tools."},
                {"role": "user", "content": "Weather in Paris, and the time?"},
                {"role": "assistant", "content": "Checking both.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "18C"},
                {"role": "tool", "tool_call_id": "call_2", "content": "noon\nUTC"},
                {"role": "user", "content": "Thanks! Again?"},
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "call_3", "type": "function", "function": {"name": "now", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "call_3", "content": "one"},
                {"role": "assistant", "content": "It is noon and 18C."}
            ])
        );
        assert_eq!(
            out.body["tools"],
            json!([
                {"type": "function", "function": {"name": "get_weather", "description": "Weather",
                 "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}, "strict": true}},
                {"type": "function", "function": {"name": "now"}}
            ])
        );
        assert_eq!(out.dropped, ["reasoning"]);
    }

    #[test]
    fn tool_output_images_and_files_are_dropped() {
        let out = translate(with(json!({"input": [
            {"type": "function_call", "call_id": "c1", "name": "shot", "arguments": "{}"},
            {"type": "function_call_output", "call_id": "c1", "output": [
                {"type": "input_text", "text": "see image"},
                {"type": "input_image", "image_url": "https://example.com/x.png"},
                {"type": "input_file", "file_id": "file-1"}
            ]}
        ]})));
        assert_eq!(
            out.body["messages"],
            json!([
                {"role": "assistant", "content": null, "tool_calls": [
                    {"id": "c1", "type": "function", "function": {"name": "shot", "arguments": "{}"}}
                ]},
                {"role": "tool", "tool_call_id": "c1", "content": "see image"}
            ])
        );
        assert_eq!(out.dropped, ["file_inputs", "tool_output_images"]);
    }

    #[test]
    fn messages_left_empty_are_not_sent() {
        let messages = messages_of(json!([
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": ""},
            {"role": "user", "content": [{"type": "input_text", "text": ""}]},
            {"role": "user", "content": [{"type": "input_file", "file_id": "file-1"}]},
            {"type": "web_search_call", "id": "ws_1", "status": "completed"},
            {"role": "user", "content": "again"}
        ]));
        assert_eq!(
            messages,
            json!([{"role": "user", "content": "q"}, {"role": "user", "content": "again"}])
        );
        for input in [
            json!(""),
            json!([]),
            json!([{"type": "reasoning", "summary": []}]),
        ] {
            assert_eq!(
                request_error(with(json!({"input": input, "instructions": "x"}))),
                "`input` has no content to send"
            );
        }
    }

    #[test]
    fn tools_and_tool_choice() {
        let tools = json!([
            {"type": "function", "name": "a", "parameters": {"type": "object"}},
            {"type": "web_search", "search_context_size": "low"},
            {"type": "function", "name": "b", "parameters": {"type": "object"}},
            {"type": "mcp", "server_label": "x", "server_url": "https://mcp.example.com"}
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
        assert_eq!(out.dropped, ["builtin_tools"]);

        for (choice, expected) in [
            (json!("auto"), json!("auto")),
            (json!("none"), json!("none")),
            (json!("required"), json!("required")),
            (
                json!({"type": "function", "name": "a"}),
                json!({"type": "function", "function": {"name": "a"}}),
            ),
        ] {
            let out = translate(with(
                json!({"tools": tools, "tool_choice": choice, "parallel_tool_calls": false}),
            ));
            assert_eq!(out.body["tool_choice"], expected);
            assert_eq!(out.body["parallel_tool_calls"], false);
        }
        // A choice of a tool left out, or of none offered, is left out itself.
        for choice in [
            json!({"type": "web_search_preview"}),
            json!({"type": "mcp", "server_label": "x"}),
            json!({"type": "custom", "name": "grammar"}),
            json!({"type": "function", "name": "not_offered"}),
        ] {
            let out = translate(with(json!({"tools": tools, "tool_choice": choice})));
            assert!(out.body.get("tool_choice").is_none(), "{choice}");
            assert_eq!(out.body["tools"].as_array().map(Vec::len), Some(2));
        }
    }

    #[test]
    fn allowed_tools_offers_only_those() {
        let tools = json!([
            {"type": "function", "name": "a"},
            {"type": "function", "name": "b"},
            {"type": "function", "name": "c"}
        ]);
        let choice = json!({"type": "allowed_tools", "mode": "required", "tools": [
            {"type": "function", "name": "c"}, {"type": "function", "name": "a"}, {"type": "web_search"}
        ]});
        let out = translate(with(json!({"tools": tools, "tool_choice": choice})));
        assert_eq!(
            out.body["tools"],
            json!([
                {"type": "function", "function": {"name": "a"}},
                {"type": "function", "function": {"name": "c"}}
            ])
        );
        assert_eq!(out.body["tool_choice"], "required");
        let choice = json!({"type": "allowed_tools", "mode": "auto", "tools": [{"type": "mcp", "server_label": "x"}]});
        let out = translate(with(
            json!({"tools": tools, "tool_choice": choice, "parallel_tool_calls": true}),
        ));
        assert!(out.body.get("tools").is_none());
        assert!(out.body.get("tool_choice").is_none());
        assert!(out.body.get("parallel_tool_calls").is_none());
    }

    #[test]
    fn only_builtin_tools_leaves_out_tools_and_choice() {
        let out = translate(with(json!({
            "tools": [{"type": "file_search", "vector_store_ids": ["vs_1"]}, {"type": "code_interpreter", "container": {"type": "auto"}}],
            "tool_choice": "required",
            "parallel_tool_calls": false
        })));
        assert!(out.body.get("tools").is_none());
        assert!(out.body.get("tool_choice").is_none());
        assert!(out.body.get("parallel_tool_calls").is_none());
        assert_eq!(out.dropped, ["builtin_tools"]);
    }

    #[test]
    fn each_dropped_name() {
        assert_eq!(
            dropped_by(json!({"previous_response_id": "resp_1"})),
            ["previous_response_id"]
        );
        assert_eq!(
            dropped_by(json!({"conversation": "conv_1"})),
            ["conversation"]
        );
        assert_eq!(
            dropped_by(json!({"prompt": {"id": "pmpt_1", "variables": {}}})),
            ["prompt"]
        );
        assert_eq!(
            dropped_by(json!({"input": [
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "xx"},
                {"role": "user", "content": "q"}
            ]})),
            ["reasoning"]
        );
        assert_eq!(
            dropped_by(json!({"include": ["reasoning.encrypted_content"]})),
            ["reasoning"]
        );
        assert_eq!(
            dropped_by(json!({"reasoning": {"effort": "low", "summary": "auto"}})),
            ["reasoning_summary"]
        );
        assert_eq!(
            dropped_by(json!({"reasoning": {"generate_summary": "concise"}})),
            ["reasoning_summary"]
        );
        assert_eq!(
            dropped_by(json!({"tools": [{"type": "image_generation"}]})),
            ["builtin_tools"]
        );
        assert_eq!(
            dropped_by(json!({"input": [
                {"type": "computer_call", "id": "cu_1", "call_id": "c", "action": {"type": "click"}},
                {"type": "file_search_call", "id": "fs_1", "queries": [], "status": "completed"},
                {"role": "user", "content": "q"}
            ]})),
            ["builtin_tools"]
        );
        assert_eq!(
            dropped_by(json!({"tools": [{"type": "custom", "name": "grammar"}]})),
            ["custom_tools"]
        );
        assert_eq!(
            dropped_by(json!({"input": [
                {"type": "custom_tool_call", "call_id": "c", "name": "g", "input": "x"},
                {"type": "custom_tool_call_output", "call_id": "c", "output": "y"},
                {"role": "user", "content": "q"}
            ]})),
            ["custom_tools"]
        );
        assert_eq!(
            dropped_by(json!({"input": [{"role": "user", "content": [
                {"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"},
                {"type": "input_text", "text": "summarise"}
            ]}]})),
            ["file_inputs"]
        );
        assert_eq!(dropped_by(json!({"top_logprobs": 3})), ["logprobs"]);
        assert_eq!(
            dropped_by(json!({"include": ["message.output_text.logprobs"]})),
            ["logprobs"]
        );
        assert!(
            dropped_by(json!({
                "previous_response_id": null, "conversation": null, "prompt": null,
                "top_logprobs": 0, "include": [], "reasoning": {"summary": null}
            }))
            .is_empty()
        );
    }

    #[test]
    fn dropped_names_are_listed_once_in_a_fixed_order() {
        let out = translate(json!({
            "model": "m",
            "top_logprobs": 2,
            "tools": [{"type": "web_search"}, {"type": "custom", "name": "g"}, {"type": "shell"}],
            "include": ["reasoning.encrypted_content", "message.output_text.logprobs"],
            "reasoning": {"summary": "detailed"},
            "prompt": {"id": "p"},
            "conversation": {"id": "conv_1"},
            "previous_response_id": "resp_0",
            "input": [
                {"role": "user", "content": [
                    {"type": "input_file", "file_id": "f"},
                    {"type": "input_image", "file_id": "f2"},
                    {"type": "input_text", "text": "q"}
                ]},
                {"type": "reasoning", "summary": []},
                {"type": "reasoning", "summary": []},
                {"type": "web_search_call", "id": "ws"},
                {"type": "function_call", "call_id": "c", "name": "f", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c", "output": [
                    {"type": "input_image", "image_url": "https://example.com/x.png"},
                    {"type": "input_image", "image_url": "https://example.com/y.png"}
                ]}
            ]
        }));
        assert_eq!(
            out.dropped,
            [
                "previous_response_id",
                "conversation",
                "prompt",
                "reasoning",
                "reasoning_summary",
                "builtin_tools",
                "custom_tools",
                "file_inputs",
                "tool_output_images",
                "logprobs"
            ]
        );
    }

    #[test]
    fn validation_errors_name_the_field() {
        let cases = [
            (json!([]), "body must be a JSON object"),
            (
                json!({"model": "m"}),
                "`input` must be a string or an array of items",
            ),
            (
                json!({"input": {"role": "user"}}),
                "`input` must be a string or an array of items",
            ),
            (
                json!({"input": 5}),
                "`input` must be a string or an array of items",
            ),
            (json!({"input": ["hi"]}), "input[0]: must be an object"),
            (
                json!({"input": [{"content": "x"}]}),
                "input[0].role: must be `user`, `assistant`, `system` or `developer`",
            ),
            (
                json!({"input": [{"type": "message", "role": "tool", "content": "x"}]}),
                "input[0].role: must be `user`, `assistant`, `system` or `developer`",
            ),
            (
                json!({"input": [{"role": "user", "content": "a"}, {"role": "user", "content": 5}]}),
                "input[1].content: must be a string or an array of content parts",
            ),
            (
                json!({"input": [{"role": "user"}]}),
                "input[0].content: must be a string or an array of content parts",
            ),
            (
                json!({"input": [{"type": 5, "role": "user", "content": "x"}]}),
                "input[0].type: must be a string",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"text": "x"}]}]}),
                "input[0].content[0]: missing `type`",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_text"}]}]}),
                "input[0].content[0]: missing `text`",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_audio"}]}]}),
                "input[0].content[0]: unknown content part type",
            ),
            (
                json!({"input": [{"role": "user", "content": [{"type": "input_image", "detail": "auto"}]}]}),
                "input[0].content[0]: missing `image_url`",
            ),
            (
                json!({"input": [{"role": "assistant", "content": [{"type": "input_image", "image_url": "u"}]}]}),
                "input[0].content[0]: images are allowed only in user messages",
            ),
            (
                json!({"input": [{"type": "function_call", "name": "f", "arguments": "{}"}]}),
                "input[0]: missing `call_id`",
            ),
            (
                json!({"input": [{"type": "function_call", "call_id": "", "name": "f"}]}),
                "input[0]: missing `call_id`",
            ),
            (
                json!({"input": [{"type": "function_call", "call_id": "c", "arguments": "{}"}]}),
                "input[0]: missing `name`",
            ),
            (
                json!({"input": [{"type": "function_call", "call_id": "c", "name": "f", "arguments": {}}]}),
                "input[0].arguments: must be a string",
            ),
            (
                json!({"input": [{"type": "function_call_output", "output": "x"}]}),
                "input[0]: missing `call_id`",
            ),
            (
                json!({"input": [{"type": "function_call_output", "call_id": "c"}]}),
                "input[0].output: must be a string or an array of content parts",
            ),
            (
                json!({"input": [{"type": "function_call_output", "call_id": "c", "output": [{"type": "refusal"}]}]}),
                "input[0].output[0]: unknown content part type",
            ),
            (
                json!({"input": [{"role": "user", "content": "x"}, {"type": "item_reference", "id": "msg_1"}]}),
                "input[1]: stored items are not available",
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
                json!({"instructions": ["x"]}),
                "`instructions` must be a string",
            ),
            (
                json!({"max_output_tokens": 0}),
                "`max_output_tokens` must be a positive integer",
            ),
            (
                json!({"max_output_tokens": -5}),
                "`max_output_tokens` must be a positive integer",
            ),
            (
                json!({"max_output_tokens": "100"}),
                "`max_output_tokens` must be a positive integer",
            ),
            (
                json!({"temperature": "hot"}),
                "`temperature` must be a number",
            ),
            (json!({"top_p": true}), "`top_p` must be a number"),
            (json!({"stream": "yes"}), "`stream` must be a boolean"),
            (json!({"user": 5}), "`user` must be a string"),
            (
                json!({"safety_identifier": []}),
                "`safety_identifier` must be a string",
            ),
            (json!({"metadata": "x"}), "`metadata` must be an object"),
            (json!({"text": "json"}), "`text` must be an object"),
            (
                json!({"text": {"format": "json"}}),
                "`text.format` must be an object",
            ),
            (
                json!({"text": {"format": {"type": "yaml"}}}),
                "`text.format.type` must be `text`, `json_schema` or `json_object`",
            ),
            (
                json!({"text": {"format": {"type": "json_schema", "schema": {}}}}),
                "text.format: missing `name`",
            ),
            (
                json!({"text": {"format": {"type": "json_schema", "name": "n", "schema": "x"}}}),
                "`text.format.schema` has the wrong type",
            ),
            (
                json!({"text": {"verbosity": 1}}),
                "`text.verbosity` must be a string",
            ),
            (
                json!({"reasoning": "high"}),
                "`reasoning` must be an object",
            ),
            (
                json!({"reasoning": {"effort": 3}}),
                "`reasoning.effort` must be a string",
            ),
            (json!({"tools": {}}), "`tools` must be an array"),
            (json!({"tools": ["f"]}), "tools[0]: must be an object"),
            (
                json!({"tools": [{"name": "f"}]}),
                "tools[0]: missing `type`",
            ),
            (
                json!({"tools": [{"type": "function", "parameters": {}}]}),
                "tools[0]: missing `name`",
            ),
            (
                json!({"tools": [{"type": "function", "name": "f", "parameters": "x"}]}),
                "tools[0].parameters: has the wrong type",
            ),
            (
                json!({"tool_choice": "sometimes"}),
                "`tool_choice` must be `auto`, `none`, `required` or an object",
            ),
            (
                json!({"tool_choice": 1}),
                "`tool_choice` must be `auto`, `none`, `required` or an object",
            ),
            (json!({"tool_choice": {}}), "tool_choice: missing `type`"),
            (
                json!({"tool_choice": {"type": "function"}}),
                "tool_choice: missing `name`",
            ),
            (
                json!({"tool_choice": {"type": "allowed_tools", "mode": "none", "tools": []}}),
                "`tool_choice.mode` must be `auto` or `required`",
            ),
            (
                json!({"tool_choice": {"type": "allowed_tools", "mode": "auto"}}),
                "`tool_choice.tools` must be an array",
            ),
            (
                json!({"parallel_tool_calls": "no"}),
                "`parallel_tool_calls` must be a boolean",
            ),
        ] {
            assert_eq!(request_error(with(extra.clone())), expected, "{extra}");
        }
    }

    #[test]
    fn errors_do_not_quote_content() {
        let secret = "SECRET-PROMPT-TEXT";
        let bodies = [
            json!({"input": [{"role": secret, "content": secret}]}),
            json!({"input": [{"role": "user", "content": [{"type": secret, "text": secret}]}]}),
            json!({"input": [{"type": "item_reference", "id": secret}]}),
            json!({"input": "x", "max_output_tokens": secret}),
            json!({"input": "x", "tool_choice": secret}),
            json!({"input": "x", "text": {"format": {"type": secret}}}),
        ];
        for body in bodies {
            assert!(!request_error(body).contains(secret));
        }
    }
}

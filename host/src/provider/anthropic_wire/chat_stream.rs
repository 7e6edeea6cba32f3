//! OpenAI chat completion chunk streams to Anthropic Messages SSE streams.
//!
//! Chat streams one flat delta per chunk; Messages streams numbered content blocks,
//! each opened, filled and closed in turn. Text deltas fill a text block and each
//! tool call gets a `tool_use` block; the end of the message is only sent at
//! `data: [DONE]`, because the usage chunk comes after the finish chunk.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::TranslateError;
use super::from_chat::{error_text, message_stop_reason};
use super::messages_usage;
use crate::provider::sse::{self, SseParser};
use crate::usage::Usage;

/// What the open content block holds.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Block {
    Text,
    /// A tool call, by its chat `index` and `id`.
    Tool {
        index: u64,
        id: String,
    },
}

/// Stateful translator of one chat completion SSE stream into Anthropic Messages
/// SSE events.
///
/// Each emitted event is exactly `event: <type>\ndata: <compact json>\n\n`.
#[derive(Debug)]
pub struct MessagesStream {
    parser: SseParser,
    model: String,
    input_tokens_estimate: u32,
    started: bool,
    /// The open content block: its index and what it holds.
    open: Option<(usize, Block)>,
    next_index: usize,
    /// Chat indexes of the tool calls given a block so far. Blocks cannot be
    /// reopened, so a fragment for one of them whose block has closed is an error.
    tool_calls: HashSet<u64>,
    /// Ids of the tool calls given a block so far: a call with a new id starts a
    /// block even at an index seen before (some servers number every call 0).
    tool_ids: HashSet<String>,
    /// `content_block_delta` events sent: the output count when no usage comes.
    deltas: u64,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    saw_content: bool,
    done: bool,
}

impl MessagesStream {
    /// Creates a translator for one response. `model` is reported in
    /// `message_start` (the name the client asked for), with
    /// `input_tokens_estimate` as its input tokens: the real count only comes at
    /// the end of a chat stream.
    pub fn new(model: &str, input_tokens_estimate: u32) -> Self {
        Self {
            parser: SseParser::new(),
            model: model.to_owned(),
            input_tokens_estimate,
            started: false,
            open: None,
            next_index: 0,
            tool_calls: HashSet::new(),
            tool_ids: HashSet::new(),
            deltas: 0,
            finish_reason: None,
            usage: None,
            saw_content: false,
            done: false,
        }
    }

    /// Feeds raw upstream bytes (split anywhere) and returns the Messages SSE text
    /// to send on, possibly empty. Bytes after `data: [DONE]` are ignored.
    ///
    /// On error, events produced earlier in the same call are discarded; the
    /// stream should then be abandoned.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<String, TranslateError> {
        let mut out = String::new();
        // Given at most an event's limit at a time, the parser only fails on bytes
        // that come before every event still to handle, so `[DONE]` or a bad chunk
        // followed by an oversize event in the same bytes counts as it would have
        // in smaller pieces.
        for piece in bytes.chunks(sse::MAX_EVENT_BYTES) {
            if self.done {
                break;
            }
            for event in self.parser.feed(piece)? {
                self.handle(&event.data, &mut out)?;
                if self.done {
                    break;
                }
            }
        }
        Ok(out)
    }

    /// Call at upstream end of stream: an empty string if `data: [DONE]` was seen
    /// (the message was already ended then), else [`TranslateError::Truncated`].
    pub fn finish(&mut self) -> Result<String, TranslateError> {
        if self.done {
            Ok(String::new())
        } else {
            Err(TranslateError::Truncated)
        }
    }

    /// Whether actual content (a non-empty text delta or a tool call) has been
    /// emitted yet. The gateway holds the client's response until this becomes
    /// true, so failures before it can still fall back to another upstream.
    pub fn saw_content(&self) -> bool {
        self.saw_content
    }

    /// Usage so far, as (input tokens with cache reads, output tokens): the
    /// upstream's counts once its usage chunk came, else the input estimate and
    /// the number of content deltas sent.
    pub fn usage(&self) -> (u32, u32) {
        match self.usage {
            Some(usage) => usage.tokens(),
            None => (
                self.input_tokens_estimate,
                u32::try_from(self.deltas).unwrap_or(u32::MAX),
            ),
        }
    }

    fn handle(&mut self, data: &str, out: &mut String) -> Result<(), TranslateError> {
        if data.trim() == "[DONE]" {
            self.end(out);
            return Ok(());
        }
        let chunk: Value =
            serde_json::from_str(data).map_err(|_| bad_response("stream chunk is not JSON"))?;
        if chunk.get("error").is_some_and(|e| !e.is_null()) {
            return Err(TranslateError::Upstream(
                error_text(&chunk).unwrap_or_else(|| "unspecified stream error".to_owned()),
            ));
        }
        if !chunk.is_object() {
            return Err(bad_response("stream chunk is not a JSON object"));
        }
        self.start(chunk.get("id").and_then(Value::as_str), out);
        if let Some(usage) = chunk.get("usage").and_then(Usage::of) {
            self.usage = Some(usage);
        }

        let Some(choice) = chunk
            .get("choices")
            .and_then(Value::as_array)
            .and_then(|choices| choices.first())
        else {
            return Ok(());
        };
        if let Some(finish) = choice.get("finish_reason").and_then(Value::as_str) {
            self.finish_reason = Some(finish.to_owned());
        }
        let Some(delta) = choice.get("delta") else {
            return Ok(());
        };
        // `reasoning_content` is not passed on: a thinking block without a
        // signature is refused when the client sends it back. A `refusal` is text,
        // as in a whole response (`messages_response_from_chat`).
        for key in ["content", "refusal"] {
            if let Some(text) = delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                self.on_text(text, out);
            }
        }
        match delta.get("tool_calls") {
            None | Some(Value::Null) => Ok(()),
            Some(Value::Array(calls)) => calls
                .iter()
                .try_for_each(|call| self.on_tool_fragment(call, out)),
            Some(_) => Err(bad_response("`delta.tool_calls` must be an array")),
        }
    }

    /// Sends `message_start` once, named after the first chunk's id.
    fn start(&mut self, chunk_id: Option<&str>, out: &mut String) {
        if self.started {
            return;
        }
        self.started = true;
        let id = chunk_id.filter(|id| !id.is_empty()).unwrap_or("gateway");
        let message = json!({
            "type": "message_start",
            "message": {
                "id": format!("msg_{id}"),
                "type": "message",
                "role": "assistant",
                "model": self.model,
                "content": [],
                "stop_reason": null,
                "stop_sequence": null,
                "usage": { "input_tokens": self.input_tokens_estimate, "output_tokens": 0 },
            },
        });
        emit(out, "message_start", &message);
    }

    fn on_text(&mut self, text: &str, out: &mut String) {
        let index = match self.open {
            Some((index, Block::Text)) => index,
            _ => self.open_block(Block::Text, json!({ "type": "text", "text": "" }), out),
        };
        self.delta(index, json!({ "type": "text_delta", "text": text }), out);
        self.saw_content = true;
    }

    /// One entry of `delta.tool_calls`: the first for a call opens its block (and
    /// must name it), later ones carry argument pieces.
    ///
    /// A fragment continues the open call when it has the call's `index` and no
    /// `id` or the call's own: servers may repeat `id` and `name` on later
    /// fragments, and the first ones count. A fragment with an `id` starts a new
    /// call when its `index` or its `id` is new: some servers (Ollama, several
    /// OpenAI-compatible bridges) give every parallel call index 0, told apart only
    /// by their ids.
    fn on_tool_fragment(&mut self, call: &Value, out: &mut String) -> Result<(), TranslateError> {
        let chat_index = call
            .get("index")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad_response("tool call fragment has no `index`"))?;
        let function = call.get("function");
        let id = non_empty(call.get("id"));
        let index = match &self.open {
            Some((
                index,
                Block::Tool {
                    index: open,
                    id: open_id,
                },
            )) if *open == chat_index && id.is_none_or(|id| id == open_id) => *index,
            _ => {
                let new_call = !self.tool_calls.contains(&chat_index)
                    || id.is_some_and(|id| !self.tool_ids.contains(id));
                if !new_call {
                    return Err(bad_response(
                        "tool call fragment arrived after another block started",
                    ));
                }
                let name = non_empty(function.and_then(|f| f.get("name")));
                let (Some(id), Some(name)) = (id, name) else {
                    return Err(bad_response(
                        "tool call starts without `id` or `function.name`",
                    ));
                };
                let block = json!({ "type": "tool_use", "id": id, "name": name, "input": {} });
                self.tool_calls.insert(chat_index);
                self.tool_ids.insert(id.to_owned());
                self.saw_content = true;
                let open = Block::Tool {
                    index: chat_index,
                    id: id.to_owned(),
                };
                self.open_block(open, block, out)
            }
        };
        if let Some(piece) = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .filter(|piece| !piece.is_empty())
        {
            self.delta(
                index,
                json!({ "type": "input_json_delta", "partial_json": piece }),
                out,
            );
        }
        Ok(())
    }

    /// Closes the open block and opens the next one; returns its index.
    fn open_block(&mut self, block: Block, content_block: Value, out: &mut String) -> usize {
        self.close_block(out);
        let index = self.next_index;
        self.next_index += 1;
        self.open = Some((index, block));
        let start = json!({
            "type": "content_block_start",
            "index": index,
            "content_block": content_block,
        });
        emit(out, "content_block_start", &start);
        index
    }

    fn close_block(&mut self, out: &mut String) {
        if let Some((index, _)) = self.open.take() {
            let stop = json!({ "type": "content_block_stop", "index": index });
            emit(out, "content_block_stop", &stop);
        }
    }

    fn delta(&mut self, index: usize, delta: Value, out: &mut String) {
        let event = json!({ "type": "content_block_delta", "index": index, "delta": delta });
        emit(out, "content_block_delta", &event);
        self.deltas += 1;
    }

    /// Ends the message at `data: [DONE]`, once finish reason and usage are known.
    fn end(&mut self, out: &mut String) {
        self.start(None, out);
        self.close_block(out);
        let stop_reason =
            message_stop_reason(self.finish_reason.as_deref(), !self.tool_calls.is_empty());
        let usage = match self.usage {
            Some(usage) => messages_usage(&usage),
            None => json!({ "output_tokens": self.deltas }),
        };
        let delta = json!({
            "type": "message_delta",
            "delta": { "stop_reason": stop_reason, "stop_sequence": null },
            "usage": usage,
        });
        emit(out, "message_delta", &delta);
        emit(out, "message_stop", &json!({ "type": "message_stop" }));
        self.done = true;
    }
}

/// A string field that is present and not empty.
fn non_empty(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn bad_response(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidResponse(message.into())
}

/// Appends one event; compact JSON never holds a line break, so it fits one
/// `data:` line.
fn emit(out: &mut String, kind: &str, data: &Value) {
    out.push_str("event: ");
    out.push_str(kind);
    out.push('\n');
    out.push_str(&sse::frame(&data.to_string()));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(chunk: Value) -> String {
        format!("data: {chunk}\n\n")
    }

    const DONE: &str = "data: [DONE]\n\n";

    fn chunk(delta: Value, finish_reason: Value) -> String {
        data(json!({
            "id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]
        }))
    }

    fn text(piece: &str) -> String {
        chunk(json!({"content": piece}), Value::Null)
    }

    fn usage_chunk(prompt: u64, completion: u64, cached: u64) -> String {
        data(json!({
            "id": "chatcmpl-9", "object": "chat.completion.chunk", "created": 1, "model": "gpt-up",
            "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
                      "prompt_tokens_details": {"cached_tokens": cached}}
        }))
    }

    fn tool_start(index: u64, id: &str, name: &str, arguments: &str) -> Value {
        json!({"index": index, "id": id, "type": "function", "function": {"name": name, "arguments": arguments}})
    }

    fn tool_args(index: u64, arguments: &str) -> Value {
        json!({"index": index, "function": {"arguments": arguments}})
    }

    fn tools(fragments: Value) -> String {
        chunk(json!({ "tool_calls": fragments }), Value::Null)
    }

    /// Splits output into (event type, data), checking each event is exactly
    /// `event: <type>\ndata: <compact json>\n\n` and that the data repeats the type.
    fn events(out: &str) -> Vec<(String, Value)> {
        assert!(out.is_empty() || out.ends_with("\n\n"));
        out.split_terminator("\n\n")
            .map(|event| {
                let (kind, data) = event.split_once('\n').unwrap();
                let kind = kind.strip_prefix("event: ").unwrap();
                let data = data.strip_prefix("data: ").unwrap();
                let value: Value = serde_json::from_str(data).unwrap();
                assert_eq!(value.to_string(), data, "data is not compact JSON");
                assert_eq!(value["type"], kind);
                (kind.to_owned(), value)
            })
            .collect()
    }

    fn datas(out: &str) -> Vec<Value> {
        events(out).into_iter().map(|(_, data)| data).collect()
    }

    fn run(input: &str, chunk_size: usize) -> (String, MessagesStream) {
        let mut stream = MessagesStream::new("claude-alias", 42);
        let mut out: String = input
            .as_bytes()
            .chunks(chunk_size)
            .map(|piece| stream.feed(piece).unwrap())
            .collect();
        out.push_str(&stream.finish().unwrap());
        (out, stream)
    }

    fn message_start(id: &str) -> Value {
        json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": "claude-alias", "content": [],
            "stop_reason": null, "stop_sequence": null, "usage": {"input_tokens": 42, "output_tokens": 0}
        }})
    }

    fn block_start(index: usize, block: Value) -> Value {
        json!({"type": "content_block_start", "index": index, "content_block": block})
    }

    fn text_delta(index: usize, text: &str) -> Value {
        json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}})
    }

    fn json_delta(index: usize, partial: &str) -> Value {
        json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": partial}})
    }

    fn block_stop(index: usize) -> Value {
        json!({"type": "content_block_stop", "index": index})
    }

    fn message_delta(stop_reason: &str, usage: Value) -> Value {
        json!({"type": "message_delta", "delta": {"stop_reason": stop_reason, "stop_sequence": null}, "usage": usage})
    }

    fn message_stop() -> Value {
        json!({"type": "message_stop"})
    }

    fn text_stream() -> String {
        [
            chunk(json!({"role": "assistant", "content": ""}), Value::Null),
            chunk(json!({"reasoning_content": "let me think"}), Value::Null),
            text("Hello"),
            text(" w\u{f6}rld \u{1F30D}"),
            chunk(json!({}), json!("stop")),
            usage_chunk(100, 12, 60),
            DONE.to_owned(),
        ]
        .concat()
    }

    #[test]
    fn text_stream_with_usage_after_finish() {
        let (out, stream) = run(&text_stream(), usize::MAX);
        assert_eq!(
            datas(&out),
            [
                message_start("msg_chatcmpl-9"),
                block_start(0, json!({"type": "text", "text": ""})),
                text_delta(0, "Hello"),
                text_delta(0, " w\u{f6}rld \u{1F30D}"),
                block_stop(0),
                message_delta(
                    "end_turn",
                    json!({"input_tokens": 40, "output_tokens": 12, "cache_read_input_tokens": 60, "cache_creation_input_tokens": 0})
                ),
                message_stop(),
            ]
        );
        assert_eq!(stream.usage(), (100, 12));
    }

    #[test]
    fn every_split_gives_the_same_output() {
        let input = [
            text_stream().replace(DONE, ""),
            tools(json!([tool_start(0, "call_1", "f\u{e9}", "{\"a\":")])),
            tools(json!([tool_args(0, "\"\u{1F600}\"}")])),
            DONE.to_owned(),
        ]
        .concat();
        let (whole, _) = run(&input, usize::MAX);
        for split in 0..=input.len() {
            let (a, b) = input.as_bytes().split_at(split);
            let mut stream = MessagesStream::new("claude-alias", 42);
            let out =
                stream.feed(a).unwrap() + &stream.feed(b).unwrap() + &stream.finish().unwrap();
            assert_eq!(out, whole, "split at {split}");
        }
        let (bytewise, _) = run(&input, 1);
        assert_eq!(bytewise, whole);
    }

    #[test]
    fn text_then_tool_calls_then_text() {
        let input = [
            text("Let me check."),
            tools(json!([tool_start(0, "call_1", "get_weather", "")])),
            tools(json!([tool_args(0, "{\"city\":")])),
            tools(json!([tool_args(0, "\"Paris\"}")])),
            tools(json!([tool_start(1, "call_2", "now", "{}")])),
            text("More text."),
            chunk(json!({}), json!("tool_calls")),
            usage_chunk(10, 20, 0),
            DONE.to_owned(),
        ]
        .concat();
        let (out, stream) = run(&input, 5);
        assert_eq!(
            datas(&out),
            [
                message_start("msg_chatcmpl-9"),
                block_start(0, json!({"type": "text", "text": ""})),
                text_delta(0, "Let me check."),
                block_stop(0),
                block_start(
                    1,
                    json!({"type": "tool_use", "id": "call_1", "name": "get_weather", "input": {}})
                ),
                json_delta(1, "{\"city\":"),
                json_delta(1, "\"Paris\"}"),
                block_stop(1),
                block_start(
                    2,
                    json!({"type": "tool_use", "id": "call_2", "name": "now", "input": {}})
                ),
                json_delta(2, "{}"),
                block_stop(2),
                block_start(3, json!({"type": "text", "text": ""})),
                text_delta(3, "More text."),
                block_stop(3),
                message_delta(
                    "tool_use",
                    json!({"input_tokens": 10, "output_tokens": 20, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
                ),
                message_stop(),
            ]
        );
        assert!(stream.saw_content());
    }

    #[test]
    fn two_parallel_tool_calls() {
        let input = [
            chunk(json!({"role": "assistant", "content": null}), Value::Null),
            tools(json!([tool_start(0, "call_a", "lookup", "")])),
            tools(json!([tool_args(0, "{\"q\":\"x\"}")])),
            // Some servers repeat the id and name on later fragments.
            tools(json!([tool_start(0, "call_a", "lookup", "")])),
            tools(json!([tool_start(1, "call_b", "lookup", "")])),
            tools(json!([tool_args(1, "{\"q\":\"y\"}")])),
            chunk(json!({}), json!("tool_calls")),
            DONE.to_owned(),
        ]
        .concat();
        let (out, _) = run(&input, usize::MAX);
        assert_eq!(
            datas(&out),
            [
                message_start("msg_chatcmpl-9"),
                block_start(
                    0,
                    json!({"type": "tool_use", "id": "call_a", "name": "lookup", "input": {}})
                ),
                json_delta(0, "{\"q\":\"x\"}"),
                block_stop(0),
                block_start(
                    1,
                    json!({"type": "tool_use", "id": "call_b", "name": "lookup", "input": {}})
                ),
                json_delta(1, "{\"q\":\"y\"}"),
                block_stop(1),
                message_delta("tool_use", json!({"output_tokens": 2})),
                message_stop(),
            ]
        );
    }

    #[test]
    fn calls_reusing_an_index_are_told_apart_by_id() {
        // Ollama and some bridges number every parallel call 0.
        let input = [
            tools(json!([tool_start(0, "call_a", "f", "{\"n\":")])),
            tools(json!([tool_args(0, "1}")])),
            tools(json!([tool_start(0, "call_b", "g", "{}")])),
            // Repeating the open call's id continues it.
            tools(json!([tool_start(0, "call_b", "g", "")])),
            text("done"),
            // A new id at an index whose block has closed starts another call...
            tools(json!([tool_start(1, "call_c", "h", "")])),
            tools(json!([tool_start(0, "call_d", "f", "")])),
            DONE.to_owned(),
        ]
        .concat();
        let (out, _) = run(&input, usize::MAX);
        let starts: Vec<Value> = datas(&out)
            .into_iter()
            .filter(|data| data["type"] == "content_block_start")
            .map(|data| data["content_block"]["id"].clone())
            .collect();
        assert_eq!(
            starts,
            [
                json!("call_a"),
                json!("call_b"),
                Value::Null,
                json!("call_c"),
                json!("call_d")
            ]
        );
        assert_eq!(
            datas(&out)[2..6],
            [
                json_delta(0, "{\"n\":"),
                json_delta(0, "1}"),
                block_stop(0),
                block_start(
                    1,
                    json!({"type": "tool_use", "id": "call_b", "name": "g", "input": {}})
                ),
            ]
        );
        // ...but a closed call's own id, or no id once its block has closed, cannot
        // continue a call.
        for stale in [
            tools(json!([tool_start(0, "call_a", "f", "{}")])),
            text("x") + &tools(json!([tool_args(0, "{}")])),
        ] {
            let input = [
                tools(json!([tool_start(0, "call_a", "f", "")])),
                tools(json!([tool_start(0, "call_b", "g", "")])),
                stale,
            ]
            .concat();
            let mut stream = MessagesStream::new("m", 0);
            assert!(matches!(
                stream.feed(input.as_bytes()),
                Err(TranslateError::InvalidResponse(_))
            ));
        }
    }

    #[test]
    fn whole_tool_calls_in_one_chunk() {
        let input = [
            tools(json!([
                tool_start(0, "call_a", "f", "{\"n\":1}"),
                tool_start(1, "call_b", "g", "")
            ])),
            chunk(json!({}), json!("stop")),
            DONE.to_owned(),
        ]
        .concat();
        let (out, _) = run(&input, usize::MAX);
        assert_eq!(
            datas(&out),
            [
                message_start("msg_chatcmpl-9"),
                block_start(
                    0,
                    json!({"type": "tool_use", "id": "call_a", "name": "f", "input": {}})
                ),
                json_delta(0, "{\"n\":1}"),
                block_stop(0),
                block_start(
                    1,
                    json!({"type": "tool_use", "id": "call_b", "name": "g", "input": {}})
                ),
                block_stop(1),
                // `stop` with tool calls still tells the client to run them.
                message_delta("tool_use", json!({"output_tokens": 1})),
                message_stop(),
            ]
        );
    }

    #[test]
    fn refusal_streams_as_text() {
        let input = [
            chunk(
                json!({"role": "assistant", "content": null, "refusal": ""}),
                Value::Null,
            ),
            chunk(json!({"refusal": "I can't"}), Value::Null),
            chunk(json!({"refusal": " help."}), Value::Null),
            chunk(json!({}), json!("stop")),
            DONE.to_owned(),
        ]
        .concat();
        let (out, stream) = run(&input, usize::MAX);
        assert_eq!(
            datas(&out)[1..4],
            [
                block_start(0, json!({"type": "text", "text": ""})),
                text_delta(0, "I can't"),
                text_delta(0, " help."),
            ]
        );
        assert!(stream.saw_content());
    }

    #[test]
    fn no_usage_counts_content_deltas() {
        let input = [
            text("a"),
            text("b"),
            text(""),
            chunk(json!({}), json!("length")),
            DONE.to_owned(),
        ]
        .concat();
        let (out, stream) = run(&input, usize::MAX);
        let datas = datas(&out);
        assert_eq!(
            datas[datas.len() - 2],
            message_delta("max_tokens", json!({"output_tokens": 2}))
        );
        assert_eq!(stream.usage(), (42, 2));
    }

    #[test]
    fn usage_in_the_finish_chunk_and_null_usage() {
        let input = [
            data(json!({"id": "x", "choices": [{"index": 0, "delta": {"content": "hi"}, "finish_reason": null}], "usage": null})),
            data(json!({"id": "x", "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 9, "completion_tokens": 1}})),
            DONE.to_owned(),
        ]
        .concat();
        let (out, _) = run(&input, usize::MAX);
        let datas = datas(&out);
        assert_eq!(datas[0]["message"]["id"], "msg_x");
        assert_eq!(
            datas[datas.len() - 2],
            message_delta(
                "end_turn",
                json!({"input_tokens": 9, "output_tokens": 1, "cache_read_input_tokens": 0, "cache_creation_input_tokens": 0})
            )
        );
    }

    #[test]
    fn empty_stream_still_makes_a_message() {
        let (out, stream) = run(DONE, usize::MAX);
        assert_eq!(
            datas(&out),
            [
                message_start("msg_gateway"),
                message_delta("end_turn", json!({"output_tokens": 0})),
                message_stop(),
            ]
        );
        assert!(!stream.saw_content());
    }

    #[test]
    fn role_only_and_reasoning_chunks_emit_only_message_start() {
        let mut stream = MessagesStream::new("claude-alias", 42);
        let out = stream
            .feed(chunk(json!({"role": "assistant", "content": ""}), Value::Null).as_bytes())
            .unwrap();
        assert_eq!(datas(&out), [message_start("msg_chatcmpl-9")]);
        let out = stream
            .feed(
                [
                    chunk(json!({"reasoning_content": "hmm"}), Value::Null),
                    chunk(json!({}), Value::Null),
                    data(json!({"id": "chatcmpl-9", "choices": []})),
                    data(json!({"id": "chatcmpl-9"})),
                ]
                .concat()
                .as_bytes(),
            )
            .unwrap();
        assert_eq!(out, "");
        assert!(!stream.saw_content());
    }

    #[test]
    fn saw_content_after_text_or_tool_call() {
        let mut stream = MessagesStream::new("m", 0);
        stream.feed(text("").as_bytes()).unwrap();
        assert!(!stream.saw_content());
        stream.feed(text("x").as_bytes()).unwrap();
        assert!(stream.saw_content());
        let mut stream = MessagesStream::new("m", 0);
        stream
            .feed(tools(json!([tool_start(0, "c", "f", "")])).as_bytes())
            .unwrap();
        assert!(stream.saw_content());
    }

    #[test]
    fn error_chunk_is_an_upstream_error() {
        let mut stream = MessagesStream::new("m", 0);
        stream.feed(text("partial").as_bytes()).unwrap();
        let error = data(
            json!({"error": {"message": "Overloaded\nnow", "type": "server_error", "code": null}}),
        );
        match stream.feed(error.as_bytes()) {
            Err(TranslateError::Upstream(message)) => assert_eq!(message, "Overloaded now"),
            other => panic!("unexpected {other:?}"),
        }
        let mut stream = MessagesStream::new("m", 0);
        assert!(matches!(
            stream.feed(data(json!({"error": "boom"})).as_bytes()),
            Err(TranslateError::Upstream(message)) if message == "unspecified stream error"
        ));
    }

    #[test]
    fn truncated_stream() {
        let input = text_stream();
        let cut = input.find(DONE).unwrap();
        let mut stream = MessagesStream::new("m", 0);
        stream.feed(&input.as_bytes()[..cut]).unwrap();
        assert!(matches!(stream.finish(), Err(TranslateError::Truncated)));
        // `[DONE]` without its blank line was never a complete event.
        stream.feed(b"data: [DONE]").unwrap();
        assert!(matches!(stream.finish(), Err(TranslateError::Truncated)));
        let mut empty = MessagesStream::new("m", 0);
        assert!(matches!(empty.finish(), Err(TranslateError::Truncated)));
    }

    #[test]
    fn nothing_after_done_counts() {
        let mut stream = MessagesStream::new("m", 0);
        let out = stream
            .feed(
                [
                    text("a"),
                    DONE.to_owned(),
                    text("b"),
                    "data: {not json\n\n".to_owned(),
                ]
                .concat()
                .as_bytes(),
            )
            .unwrap();
        assert_eq!(
            events(&out).last().map(|(kind, _)| kind.as_str()),
            Some("message_stop")
        );
        assert_eq!(stream.feed(text("c").as_bytes()).unwrap(), "");
        assert_eq!(stream.finish().unwrap(), "");
        assert_eq!(stream.finish().unwrap(), "");
    }

    #[test]
    fn malformed_streams_are_invalid_responses() {
        let bad_inputs = [
            "data: {not json\n\n".to_owned(),
            data(json!([1, 2])),
            data(json!("text")),
            chunk(json!({"tool_calls": {"index": 0}}), Value::Null),
            tools(json!([{"id": "c", "function": {"name": "f", "arguments": ""}}])),
            tools(json!([tool_args(0, "{}")])),
            tools(json!([{"index": 0, "function": {"name": "f"}}])),
            tools(json!([{"index": 0, "id": "c", "function": {"arguments": "{}"}}])),
            // A fragment for a call whose block has closed cannot be placed.
            [
                tools(json!([tool_start(0, "a", "f", "")])),
                tools(json!([tool_start(1, "b", "g", "")])),
                tools(json!([tool_args(0, "{}")])),
            ]
            .concat(),
        ];
        for input in bad_inputs {
            let mut stream = MessagesStream::new("m", 0);
            assert!(
                matches!(
                    stream.feed(input.as_bytes()),
                    Err(TranslateError::InvalidResponse(_))
                ),
                "{input}"
            );
        }
    }

    #[test]
    fn what_follows_the_end_or_an_error_does_not_count_however_cut() {
        let mut oversize = b"data: ".to_vec();
        oversize.resize(sse::MAX_EVENT_BYTES + 16, b'a');
        let cuts = |input: &[u8]| {
            let at = input.len() - oversize.len();
            let (head, tail) = input.split_at(at);
            let mut whole = MessagesStream::new("m", 0);
            let mut cut = MessagesStream::new("m", 0);
            (whole.feed(input), cut.feed(head), cut.feed(tail))
        };
        let input = [text("a").as_bytes(), DONE.as_bytes(), &oversize].concat();
        let (whole, head, tail) = cuts(&input);
        assert_eq!(whole.unwrap(), head.unwrap());
        assert_eq!(tail.unwrap(), "");
        let input = [b"data: {not json\n\n".as_slice(), &oversize].concat();
        let (whole, head, _) = cuts(&input);
        assert!(matches!(whole, Err(TranslateError::InvalidResponse(_))));
        assert!(matches!(head, Err(TranslateError::InvalidResponse(_))));
    }

    #[test]
    fn oversize_event_is_an_sse_error() {
        let mut stream = MessagesStream::new("m", 0);
        let mut input = b"data: ".to_vec();
        input.resize(sse::MAX_EVENT_BYTES + 16, b'a');
        assert!(matches!(stream.feed(&input), Err(TranslateError::Sse(_))));
    }
}

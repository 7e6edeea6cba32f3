//! Anthropic SSE streams to OpenAI `chat.completion.chunk` frames.

use std::collections::HashMap;

use serde_json::{Map, Value, json};

use super::chat_usage;
use super::response::{error_text, finish_reason};
use super::{TranslateError, bad_response};
use crate::provider::sse::{self, SseEvent, SseParser};
use crate::usage::Usage;

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
    usage: Usage,
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
            usage: Usage::default(),
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
            chunk.insert("usage".into(), chat_usage(&self.usage));
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
        self.usage.tokens()
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
        let mut chunk = self.chunk(json!({}), Some(finish_reason(stop_reason)))?;
        // A client that asked for no usage chunk still gets the counts, on the finish
        // chunk (a field every chunk may carry): the gateway charges what the upstream
        // counted, not an estimate.
        if !self.include_usage {
            chunk.insert("usage".into(), chat_usage(&self.usage));
        }
        out.push_str(&sse::frame(&Value::Object(chunk).to_string()));
        Ok(())
    }

    /// Anthropic's usage counts are cumulative, so later values replace earlier ones.
    fn record_usage(&mut self, usage: &Value) {
        self.usage.update(usage);
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
        let chunk = self.chunk(delta, finish_reason)?;
        out.push_str(&sse::frame(&Value::Object(chunk).to_string()));
        Ok(())
    }

    /// A chunk of one choice with `delta`.
    fn chunk(
        &self,
        delta: Value,
        finish_reason: Option<&str>,
    ) -> Result<Map<String, Value>, TranslateError> {
        let mut chunk = self.chunk_base()?;
        chunk.insert(
            "choices".into(),
            json!([{ "index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": null }]),
        );
        // OpenAI sends `usage: null` on every chunk but the last when usage was requested.
        if self.include_usage {
            chunk.insert("usage".into(), Value::Null);
        }
        Ok(chunk)
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

    /// `chunk` carrying the counts, as the finish chunk does when the client asked
    /// for no usage chunk.
    fn with_usage(mut chunk: Value, usage: Value) -> Value {
        chunk["usage"] = usage;
        chunk
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
            with_usage(
                chunk(json!({}), json!("stop")),
                json!({"prompt_tokens": 30, "completion_tokens": 15, "total_tokens": 45,
                       "prompt_tokens_details": {"cached_tokens": 5}}),
            ),
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
            "usage": {"prompt_tokens": 30, "completion_tokens": 15, "total_tokens": 45,
                      "prompt_tokens_details": {"cached_tokens": 5}}
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
            with_usage(
                chunk(json!({}), json!("tool_calls")),
                json!({"prompt_tokens": 30, "completion_tokens": 40, "total_tokens": 70,
                       "prompt_tokens_details": {"cached_tokens": 5}}),
            ),
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

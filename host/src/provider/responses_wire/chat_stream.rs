//! OpenAI chat completion chunk streams to Responses API SSE streams.
//!
//! Chat streams one flat delta per chunk; Responses streams output items, each
//! added, filled and done in turn, a message item holding content parts that are
//! themselves added, filled and done. Text and refusal deltas fill the parts of a
//! message item and each tool call gets a `function_call` item. Every event carries
//! a `sequence_number` counting from 0. The response is only completed at
//! `data: [DONE]`, because the usage chunk comes after the finish chunk; the last
//! event, `response.completed` or `response.incomplete`, carries the whole response
//! as [`response_from_chat`](super::response_from_chat) would have built it.

use std::collections::HashSet;

use serde_json::{Value, json};

use super::TranslateError;
use super::from_chat::{
    COMPLETED, End, IN_PROGRESS, Status, arguments_or_empty_object, error_text, function_call_item,
    item_id, message_item, output_text_part, refusal_part, response_object,
};
use crate::provider::sse::{self, SseParser};
use crate::usage::Usage;

/// Which kind of content part is being written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    /// An `output_text` part, from chat `content`.
    Text,
    /// A `refusal` part, from chat `refusal`.
    Refusal,
}

/// The output item being written.
#[derive(Debug)]
enum Open {
    Message {
        output_index: usize,
        id: String,
        /// The parts written so far, done.
        parts: Vec<Value>,
        /// The part being written and its text so far.
        part: Option<(Part, String)>,
    },
    Call {
        output_index: usize,
        id: String,
        /// The call's chat `index`.
        index: u64,
        call_id: String,
        name: String,
        arguments: String,
    },
}

/// Stateful translator of one chat completion SSE stream into Responses API SSE
/// events.
///
/// Each emitted event is exactly `event: <type>\ndata: <compact json>\n\n`, the
/// data's `type` repeating the event's.
#[derive(Debug)]
pub struct ResponsesStream {
    parser: SseParser,
    model: String,
    response_id: String,
    created_at: u64,
    /// The `sequence_number` of the next event.
    sequence: u64,
    started: bool,
    /// The output items done so far, as the final response lists them.
    output: Vec<Value>,
    open: Option<Open>,
    /// Chat indexes of the tool calls given an item so far. Items cannot be
    /// reopened, so a fragment for one of them whose item is done is an error.
    tool_calls: HashSet<u64>,
    /// Ids of the tool calls given an item so far: a call with a new id starts an
    /// item even at an index seen before (some servers number every call 0).
    tool_ids: HashSet<String>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
    saw_content: bool,
    done: bool,
}

impl ResponsesStream {
    /// Creates a translator for one response, with id `response_id`, reporting
    /// `model` (the name the client asked for) and `created_at` (Unix seconds).
    pub fn new(model: &str, response_id: &str, created_at: u64) -> Self {
        Self {
            parser: SseParser::new(),
            model: model.to_owned(),
            response_id: response_id.to_owned(),
            created_at,
            sequence: 0,
            started: false,
            output: Vec::new(),
            open: None,
            tool_calls: HashSet::new(),
            tool_ids: HashSet::new(),
            finish_reason: None,
            usage: None,
            saw_content: false,
            done: false,
        }
    }

    /// Feeds raw upstream bytes (split anywhere) and returns the Responses SSE text
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
    /// (the response was already completed then), else
    /// [`TranslateError::Truncated`].
    pub fn finish(&mut self) -> Result<String, TranslateError> {
        if self.done {
            Ok(String::new())
        } else {
            Err(TranslateError::Truncated)
        }
    }

    /// Whether actual content (a non-empty text or refusal delta, or a function
    /// call item) has been emitted yet. The gateway holds the client's response
    /// until this becomes true, so failures before it can still fall back to
    /// another upstream.
    pub fn saw_content(&self) -> bool {
        self.saw_content
    }

    /// The upstream's usage once its usage chunk came; `None` before, and for good
    /// when it sends none (the final response then reports `usage: null`, and the
    /// gateway counts with its own estimate).
    pub fn usage(&self) -> Option<Usage> {
        self.usage
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
        self.start(out);
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
        // `reasoning_content` is not passed on: Chat gives no reasoning item a
        // client could send back, and a summary it did not ask for would be noise.
        for (key, part) in [("content", Part::Text), ("refusal", Part::Refusal)] {
            if let Some(text) = delta
                .get(key)
                .and_then(Value::as_str)
                .filter(|t| !t.is_empty())
            {
                self.on_text(part, text, out);
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

    /// Sends `response.created` and `response.in_progress` once.
    fn start(&mut self, out: &mut String) {
        if self.started {
            return;
        }
        self.started = true;
        for kind in ["response.created", "response.in_progress"] {
            let response = self.response(Status::InProgress, Vec::new());
            self.emit(out, kind, json!({ "response": response }));
        }
    }

    fn response(&self, status: Status, output: Vec<Value>) -> Value {
        let usage = match status {
            Status::InProgress => None,
            Status::Completed | Status::Incomplete(_) => self.usage.as_ref(),
        };
        response_object(
            &self.response_id,
            self.created_at,
            &self.model,
            status,
            output,
            usage,
        )
    }

    /// One text or refusal delta: it continues the part being written if of its
    /// kind, else starts a part of the message item being written, else a message
    /// item.
    fn on_text(&mut self, kind: Part, text: &str, out: &mut String) {
        let (in_message, writing) = match &self.open {
            Some(Open::Message { part, .. }) => (true, part.as_ref().map(|(kind, _)| *kind)),
            _ => (false, None),
        };
        if writing != Some(kind) {
            if !in_message {
                self.open_message(out);
            }
            self.close_part(out);
            self.open_part(kind, out);
        }
        let Some(Open::Message {
            output_index,
            id,
            parts,
            part: Some((_, written)),
        }) = &mut self.open
        else {
            return;
        };
        written.push_str(text);
        let mut event = json!({
            "item_id": id.as_str(),
            "output_index": *output_index,
            "content_index": parts.len(),
            "delta": text,
        });
        let name = match kind {
            Part::Text => {
                event["logprobs"] = json!([]);
                "response.output_text.delta"
            }
            Part::Refusal => "response.refusal.delta",
        };
        self.emit(out, name, event);
        self.saw_content = true;
    }

    /// Ends the item being written, if any, and starts a message item.
    fn open_message(&mut self, out: &mut String) {
        self.close_item(COMPLETED, out);
        let output_index = self.output.len();
        let id = item_id(&self.response_id, "msg", output_index);
        let item = message_item(&id, IN_PROGRESS, Vec::new());
        self.emit(
            out,
            "response.output_item.added",
            json!({ "output_index": output_index, "item": item }),
        );
        self.open = Some(Open::Message {
            output_index,
            id,
            parts: Vec::new(),
            part: None,
        });
    }

    /// Starts a content part of the open message item.
    fn open_part(&mut self, kind: Part, out: &mut String) {
        let Some(Open::Message {
            output_index,
            id,
            parts,
            part,
        }) = &mut self.open
        else {
            return;
        };
        *part = Some((kind, String::new()));
        let event = json!({
            "item_id": id.as_str(),
            "output_index": *output_index,
            "content_index": parts.len(),
            "part": content_part(kind, ""),
        });
        self.emit(out, "response.content_part.added", event);
    }

    /// Ends the content part being written, if any.
    fn close_part(&mut self, out: &mut String) {
        let Some(Open::Message {
            output_index,
            id,
            parts,
            part,
        }) = &mut self.open
        else {
            return;
        };
        let Some((kind, text)) = part.take() else {
            return;
        };
        let (item_id, output_index, content_index) = (id.clone(), *output_index, parts.len());
        let whole = content_part(kind, &text);
        parts.push(whole.clone());
        let mut done = json!({
            "item_id": item_id,
            "output_index": output_index,
            "content_index": content_index,
        });
        let name = match kind {
            Part::Text => {
                done["text"] = Value::from(text);
                done["logprobs"] = json!([]);
                "response.output_text.done"
            }
            Part::Refusal => {
                done["refusal"] = Value::from(text);
                "response.refusal.done"
            }
        };
        self.emit(out, name, done);
        let event = json!({
            "item_id": item_id,
            "output_index": output_index,
            "content_index": content_index,
            "part": whole,
        });
        self.emit(out, "response.content_part.done", event);
    }

    /// One entry of `delta.tool_calls`: the first for a call starts its item (and
    /// must name it), later ones carry argument pieces.
    ///
    /// A fragment continues the open call when it has the call's `index` and no
    /// `id` or the call's own: servers may repeat `id` and `name` on later
    /// fragments, and the first ones count. A fragment with an `id` starts a new
    /// call when its `index` or its `id` is new: some servers (Ollama, several
    /// OpenAI-compatible bridges) give every parallel call index 0, told apart only
    /// by their ids.
    fn on_tool_fragment(&mut self, call: &Value, out: &mut String) -> Result<(), TranslateError> {
        let index = call
            .get("index")
            .and_then(Value::as_u64)
            .ok_or_else(|| bad_response("tool call fragment has no `index`"))?;
        let function = call.get("function");
        let id = non_empty(call.get("id"));
        let continues = matches!(
            &self.open,
            Some(Open::Call { index: open, call_id, .. })
                if *open == index && id.is_none_or(|id| id == call_id)
        );
        if !continues {
            let new_call = !self.tool_calls.contains(&index)
                || id.is_some_and(|id| !self.tool_ids.contains(id));
            if !new_call {
                return Err(bad_response(
                    "tool call fragment arrived after another item started",
                ));
            }
            let name = non_empty(function.and_then(|f| f.get("name")));
            let (Some(call_id), Some(name)) = (id, name) else {
                return Err(bad_response(
                    "tool call starts without `id` or `function.name`",
                ));
            };
            // The client answers a call by its id, and OpenAI's SDKs refuse two
            // calls of one response with the same.
            if self.tool_ids.contains(call_id) {
                return Err(bad_response("two tool calls have the same `id`"));
            }
            self.close_item(COMPLETED, out);
            let output_index = self.output.len();
            let item_id = item_id(&self.response_id, "fc", output_index);
            let item = function_call_item(&item_id, IN_PROGRESS, call_id, name, "");
            self.emit(
                out,
                "response.output_item.added",
                json!({ "output_index": output_index, "item": item }),
            );
            self.tool_calls.insert(index);
            self.tool_ids.insert(call_id.to_owned());
            self.saw_content = true;
            self.open = Some(Open::Call {
                output_index,
                id: item_id,
                index,
                call_id: call_id.to_owned(),
                name: name.to_owned(),
                arguments: String::new(),
            });
        }
        if let Some(piece) = function
            .and_then(|f| f.get("arguments"))
            .and_then(Value::as_str)
            .filter(|piece| !piece.is_empty())
        {
            self.arguments_delta(piece, out);
        }
        Ok(())
    }

    /// Adds `piece` to the arguments of the open call.
    fn arguments_delta(&mut self, piece: &str, out: &mut String) {
        let Some(Open::Call {
            output_index,
            id,
            arguments,
            ..
        }) = &mut self.open
        else {
            return;
        };
        arguments.push_str(piece);
        let event =
            json!({ "item_id": id.as_str(), "output_index": *output_index, "delta": piece });
        self.emit(out, "response.function_call_arguments.delta", event);
    }

    /// Ends the item being written, if any, with `status`, and adds it to the
    /// output.
    fn close_item(&mut self, status: &str, out: &mut String) {
        self.close_part(out);
        // A call without arguments gets "{}", as a whole response gives it, sent as
        // a delta so that what the deltas build is what the item says.
        if let Some(Open::Call { arguments, .. }) = &self.open
            && arguments.is_empty()
        {
            let arguments = arguments_or_empty_object(arguments);
            self.arguments_delta(&arguments, out);
        }
        let (output_index, item) = match self.open.take() {
            None => return,
            Some(Open::Message {
                output_index,
                id,
                parts,
                ..
            }) => (output_index, message_item(&id, status, parts)),
            Some(Open::Call {
                output_index,
                id,
                call_id,
                name,
                arguments,
                ..
            }) => {
                let done = json!({
                    "item_id": id.as_str(),
                    "output_index": output_index,
                    "name": name.as_str(),
                    "arguments": arguments.as_str(),
                });
                self.emit(out, "response.function_call_arguments.done", done);
                let item = function_call_item(&id, status, &call_id, &name, &arguments);
                (output_index, item)
            }
        };
        self.emit(
            out,
            "response.output_item.done",
            json!({ "output_index": output_index, "item": item.clone() }),
        );
        self.output.push(item);
    }

    /// Ends the response at `data: [DONE]`, once finish reason and usage are known.
    fn end(&mut self, out: &mut String) {
        self.start(out);
        let end = End::of(self.finish_reason.as_deref());
        self.close_item(end.last_item_status(), out);
        let status = end.status();
        let response = self.response(status, self.output.clone());
        let name = match status {
            Status::Incomplete(_) => "response.incomplete",
            Status::InProgress | Status::Completed => "response.completed",
        };
        self.emit(out, name, json!({ "response": response }));
        self.done = true;
    }

    /// Appends one event: `data` (an object) with its `type` and `sequence_number`
    /// added. Compact JSON never holds a line break, so it fits one `data:` line.
    fn emit(&mut self, out: &mut String, kind: &str, mut data: Value) {
        data["type"] = Value::from(kind);
        data["sequence_number"] = Value::from(self.sequence);
        self.sequence += 1;
        out.push_str("event: ");
        out.push_str(kind);
        out.push('\n');
        out.push_str(&sse::frame(&data.to_string()));
    }
}

/// An empty or whole content part of `kind`.
fn content_part(kind: Part, text: &str) -> Value {
    match kind {
        Part::Text => output_text_part(text),
        Part::Refusal => refusal_part(text),
    }
}

/// A string field that is present and not empty.
fn non_empty(value: Option<&Value>) -> Option<&str> {
    value.and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn bad_response(message: impl Into<String>) -> TranslateError {
    TranslateError::InvalidResponse(message.into())
}

#[cfg(test)]
mod tests {
    use super::super::response_from_chat;
    use super::*;

    const ID: &str = "resp_abc";
    const CREATED: u64 = 1_700_000_000;
    const DONE: &str = "data: [DONE]\n\n";

    fn data(chunk: Value) -> String {
        format!("data: {chunk}\n\n")
    }

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
    /// `event: <type>\ndata: <compact json>\n\n`, that the data repeats the type and
    /// that sequence numbers count up from 0.
    fn events(out: &str) -> Vec<(String, Value)> {
        assert!(out.is_empty() || out.ends_with("\n\n"));
        let events: Vec<(String, Value)> = out
            .split_terminator("\n\n")
            .map(|event| {
                let (kind, data) = event.split_once('\n').unwrap();
                let kind = kind.strip_prefix("event: ").unwrap();
                let data = data.strip_prefix("data: ").unwrap();
                let value: Value = serde_json::from_str(data).unwrap();
                assert_eq!(value.to_string(), data, "data is not compact JSON");
                assert_eq!(value["type"], kind);
                (kind.to_owned(), value)
            })
            .collect();
        for (n, (_, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], n as u64);
        }
        events
    }

    /// The events' data without `sequence_number` (checked by [`events`]).
    fn datas(out: &str) -> Vec<Value> {
        events(out)
            .into_iter()
            .map(|(_, mut data)| {
                data.as_object_mut().unwrap().remove("sequence_number");
                data
            })
            .collect()
    }

    fn kinds(out: &str) -> Vec<String> {
        events(out).into_iter().map(|(kind, _)| kind).collect()
    }

    fn run(input: &str, chunk_size: usize) -> (String, ResponsesStream) {
        let mut stream = ResponsesStream::new("client-model", ID, CREATED);
        let mut out: String = input
            .as_bytes()
            .chunks(chunk_size)
            .map(|piece| stream.feed(piece).unwrap())
            .collect();
        out.push_str(&stream.finish().unwrap());
        (out, stream)
    }

    /// The response carried by the last event.
    fn final_response(out: &str) -> Value {
        datas(out).pop().unwrap()["response"].clone()
    }

    fn response(status: &str, output: Value, usage: Value) -> Value {
        let mut response = response_from_chat(
            &json!({"choices": [{"message": {}}]}),
            "client-model",
            ID,
            CREATED,
        )
        .unwrap();
        response["status"] = Value::from(status);
        response["output"] = output;
        response["usage"] = usage;
        response
    }

    fn text_part(text: &str) -> Value {
        json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []})
    }

    fn message(id: &str, status: &str, content: Value) -> Value {
        json!({"id": id, "type": "message", "status": status, "role": "assistant", "content": content})
    }

    fn call(id: &str, status: &str, call_id: &str, name: &str, arguments: &str) -> Value {
        json!({"id": id, "type": "function_call", "status": status, "call_id": call_id,
               "name": name, "arguments": arguments})
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
        let in_progress = response("in_progress", json!([]), Value::Null);
        let usage = json!({
            "input_tokens": 100, "input_tokens_details": {"cached_tokens": 60, "cache_write_tokens": 0},
            "output_tokens": 12, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 112
        });
        let whole = "Hello w\u{f6}rld \u{1F30D}";
        let item = message("msg_abc_0", "completed", json!([text_part(whole)]));
        assert_eq!(
            datas(&out),
            [
                json!({"type": "response.created", "response": in_progress}),
                json!({"type": "response.in_progress", "response": in_progress}),
                json!({"type": "response.output_item.added", "output_index": 0,
                       "item": message("msg_abc_0", "in_progress", json!([]))}),
                json!({"type": "response.content_part.added", "item_id": "msg_abc_0", "output_index": 0,
                       "content_index": 0, "part": text_part("")}),
                json!({"type": "response.output_text.delta", "item_id": "msg_abc_0", "output_index": 0,
                       "content_index": 0, "delta": "Hello", "logprobs": []}),
                json!({"type": "response.output_text.delta", "item_id": "msg_abc_0", "output_index": 0,
                       "content_index": 0, "delta": " w\u{f6}rld \u{1F30D}", "logprobs": []}),
                json!({"type": "response.output_text.done", "item_id": "msg_abc_0", "output_index": 0,
                       "content_index": 0, "text": whole, "logprobs": []}),
                json!({"type": "response.content_part.done", "item_id": "msg_abc_0", "output_index": 0,
                       "content_index": 0, "part": text_part(whole)}),
                json!({"type": "response.output_item.done", "output_index": 0, "item": item}),
                json!({"type": "response.completed",
                       "response": response("completed", json!([item]), usage)}),
            ]
        );
        assert_eq!(
            stream.usage(),
            Some(Usage {
                cache_read: 60,
                ..Usage::new(100, 12)
            })
        );
        assert!(stream.saw_content());
    }

    #[test]
    fn every_split_gives_the_same_output() {
        let input = [
            text_stream().replace(DONE, ""),
            chunk(json!({"refusal": "n\u{f6}"}), Value::Null),
            tools(json!([tool_start(0, "call_1", "f\u{e9}", "{\"a\":")])),
            tools(json!([tool_args(0, "\"\u{1F600}\"}")])),
            DONE.to_owned(),
        ]
        .concat();
        let (whole, _) = run(&input, usize::MAX);
        for split in 0..=input.len() {
            let (a, b) = input.as_bytes().split_at(split);
            let mut stream = ResponsesStream::new("client-model", ID, CREATED);
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
        let (out, stream) = run(&input, 7);
        assert_eq!(
            kinds(&out),
            [
                "response.created",
                "response.in_progress",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.function_call_arguments.delta",
                "response.function_call_arguments.done",
                "response.output_item.done",
                "response.output_item.added",
                "response.content_part.added",
                "response.output_text.delta",
                "response.output_text.done",
                "response.content_part.done",
                "response.output_item.done",
                "response.completed",
            ]
        );
        let datas = datas(&out);
        assert_eq!(
            datas[8],
            json!({"type": "response.output_item.added", "output_index": 1,
                   "item": call("fc_abc_1", "in_progress", "call_1", "get_weather", "")})
        );
        assert_eq!(
            datas[9],
            json!({"type": "response.function_call_arguments.delta", "item_id": "fc_abc_1",
                   "output_index": 1, "delta": "{\"city\":"})
        );
        assert_eq!(
            datas[11],
            json!({"type": "response.function_call_arguments.done", "item_id": "fc_abc_1",
                   "output_index": 1, "name": "get_weather", "arguments": "{\"city\":\"Paris\"}"})
        );
        assert_eq!(
            final_response(&out)["output"],
            json!([
                message(
                    "msg_abc_0",
                    "completed",
                    json!([text_part("Let me check.")])
                ),
                call(
                    "fc_abc_1",
                    "completed",
                    "call_1",
                    "get_weather",
                    "{\"city\":\"Paris\"}"
                ),
                call("fc_abc_2", "completed", "call_2", "now", "{}"),
                message("msg_abc_3", "completed", json!([text_part("More text.")])),
            ])
        );
        assert_eq!(final_response(&out)["usage"]["total_tokens"], 30);
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
        let datas = datas(&out);
        assert_eq!(
            datas[2..].to_vec(),
            [
                json!({"type": "response.output_item.added", "output_index": 0,
                       "item": call("fc_abc_0", "in_progress", "call_a", "lookup", "")}),
                json!({"type": "response.function_call_arguments.delta", "item_id": "fc_abc_0",
                       "output_index": 0, "delta": "{\"q\":\"x\"}"}),
                json!({"type": "response.function_call_arguments.done", "item_id": "fc_abc_0",
                       "output_index": 0, "name": "lookup", "arguments": "{\"q\":\"x\"}"}),
                json!({"type": "response.output_item.done", "output_index": 0,
                       "item": call("fc_abc_0", "completed", "call_a", "lookup", "{\"q\":\"x\"}")}),
                json!({"type": "response.output_item.added", "output_index": 1,
                       "item": call("fc_abc_1", "in_progress", "call_b", "lookup", "")}),
                json!({"type": "response.function_call_arguments.delta", "item_id": "fc_abc_1",
                       "output_index": 1, "delta": "{\"q\":\"y\"}"}),
                json!({"type": "response.function_call_arguments.done", "item_id": "fc_abc_1",
                       "output_index": 1, "name": "lookup", "arguments": "{\"q\":\"y\"}"}),
                json!({"type": "response.output_item.done", "output_index": 1,
                       "item": call("fc_abc_1", "completed", "call_b", "lookup", "{\"q\":\"y\"}")}),
                json!({"type": "response.completed", "response": response("completed", json!([
                    call("fc_abc_0", "completed", "call_a", "lookup", "{\"q\":\"x\"}"),
                    call("fc_abc_1", "completed", "call_b", "lookup", "{\"q\":\"y\"}"),
                ]), Value::Null)}),
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
            // A new id at an index whose item is done starts another call...
            tools(json!([tool_start(1, "call_c", "h", "")])),
            tools(json!([tool_start(0, "call_d", "f", "")])),
            DONE.to_owned(),
        ]
        .concat();
        let (out, _) = run(&input, usize::MAX);
        assert_eq!(
            final_response(&out)["output"],
            json!([
                call("fc_abc_0", "completed", "call_a", "f", "{\"n\":1}"),
                call("fc_abc_1", "completed", "call_b", "g", "{}"),
                message("msg_abc_2", "completed", json!([text_part("done")])),
                call("fc_abc_3", "completed", "call_c", "h", "{}"),
                call("fc_abc_4", "completed", "call_d", "f", "{}"),
            ])
        );
        // ...but a closed call's own id, or no id once its item is done, cannot
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
            let mut stream = ResponsesStream::new("m", ID, 0);
            assert!(matches!(
                stream.feed(input.as_bytes()),
                Err(TranslateError::InvalidResponse(_))
            ));
        }
    }

    #[test]
    fn a_call_without_arguments_gets_an_empty_object() {
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
        let datas = datas(&out);
        assert_eq!(
            datas[7..10].to_vec(),
            [
                json!({"type": "response.function_call_arguments.delta", "item_id": "fc_abc_1",
                       "output_index": 1, "delta": "{}"}),
                json!({"type": "response.function_call_arguments.done", "item_id": "fc_abc_1",
                       "output_index": 1, "name": "g", "arguments": "{}"}),
                json!({"type": "response.output_item.done", "output_index": 1,
                       "item": call("fc_abc_1", "completed", "call_b", "g", "{}")}),
            ]
        );
    }

    #[test]
    fn refusal_streams_as_a_refusal_part() {
        let input = [
            chunk(
                json!({"role": "assistant", "content": null, "refusal": ""}),
                Value::Null,
            ),
            text("Well,"),
            chunk(json!({"refusal": "I can't"}), Value::Null),
            chunk(json!({"refusal": " help."}), Value::Null),
            chunk(json!({}), json!("stop")),
            DONE.to_owned(),
        ]
        .concat();
        let (out, stream) = run(&input, usize::MAX);
        let refusal = |text: &str| json!({"type": "refusal", "refusal": text});
        assert_eq!(
            datas(&out)[6..14].to_vec(),
            [
                json!({"type": "response.content_part.done", "item_id": "msg_abc_0", "output_index": 0,
                       "content_index": 0, "part": text_part("Well,")}),
                json!({"type": "response.content_part.added", "item_id": "msg_abc_0", "output_index": 0,
                       "content_index": 1, "part": refusal("")}),
                json!({"type": "response.refusal.delta", "item_id": "msg_abc_0", "output_index": 0,
                       "content_index": 1, "delta": "I can't"}),
                json!({"type": "response.refusal.delta", "item_id": "msg_abc_0", "output_index": 0,
                       "content_index": 1, "delta": " help."}),
                json!({"type": "response.refusal.done", "item_id": "msg_abc_0", "output_index": 0,
                       "content_index": 1, "refusal": "I can't help."}),
                json!({"type": "response.content_part.done", "item_id": "msg_abc_0", "output_index": 0,
                       "content_index": 1, "part": refusal("I can't help.")}),
                json!({"type": "response.output_item.done", "output_index": 0, "item": message(
                    "msg_abc_0", "completed", json!([text_part("Well,"), refusal("I can't help.")]))}),
                json!({"type": "response.completed", "response": response("completed", json!([message(
                    "msg_abc_0", "completed", json!([text_part("Well,"), refusal("I can't help.")]))]), Value::Null)}),
            ]
        );
        assert!(stream.saw_content());
    }

    #[test]
    fn length_and_content_filter_end_incomplete() {
        for (finish, reason) in [
            ("length", "max_output_tokens"),
            ("content_filter", "content_filter"),
        ] {
            let input = [
                text("Once"),
                tools(json!([tool_start(0, "c", "f", "{\"a\":")])),
                chunk(json!({}), json!(finish)),
                usage_chunk(5, 7, 0),
                DONE.to_owned(),
            ]
            .concat();
            let (out, _) = run(&input, usize::MAX);
            let events = events(&out);
            let (last, data) = events.last().unwrap();
            assert_eq!(last, "response.incomplete");
            let response = &data["response"];
            assert_eq!(response["status"], "incomplete");
            assert_eq!(response["incomplete_details"], json!({"reason": reason}));
            assert_eq!(response["output"][0]["status"], "completed");
            assert_eq!(response["output"][1]["status"], "incomplete");
            assert_eq!(response["usage"]["output_tokens"], 7);
            assert_eq!(events[events.len() - 2].1["item"]["status"], "incomplete");
        }
    }

    #[test]
    fn the_final_response_is_the_whole_completions() {
        let input = [
            text("Hi "),
            text("there."),
            chunk(json!({"refusal": "No."}), Value::Null),
            tools(json!([tool_start(0, "call_1", "f", "{\"x\":")])),
            tools(json!([tool_args(0, "1}")])),
            tools(json!([tool_start(1, "call_2", "g", "")])),
            chunk(json!({}), json!("length")),
            usage_chunk(9, 4, 2),
            DONE.to_owned(),
        ]
        .concat();
        let (out, _) = run(&input, 3);
        let whole = json!({
            "id": "chatcmpl-9",
            "choices": [{"index": 0, "finish_reason": "length", "message": {
                "role": "assistant", "content": "Hi there.", "refusal": "No.",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{\"x\":1}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "g", "arguments": ""}}
                ]
            }}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 4, "prompt_tokens_details": {"cached_tokens": 2}}
        });
        assert_eq!(
            final_response(&out),
            response_from_chat(&whole, "client-model", ID, CREATED).unwrap()
        );
    }

    #[test]
    fn no_usage_leaves_usage_null() {
        let input = [text("a"), chunk(json!({}), json!("stop")), DONE.to_owned()].concat();
        let (out, stream) = run(&input, usize::MAX);
        assert_eq!(final_response(&out)["usage"], Value::Null);
        assert_eq!(stream.usage(), None);
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
        let (out, stream) = run(&input, usize::MAX);
        assert_eq!(final_response(&out)["usage"]["input_tokens"], 9);
        assert_eq!(stream.usage(), Some(Usage::new(9, 1)));
    }

    #[test]
    fn empty_stream_still_makes_a_response() {
        let (out, stream) = run(DONE, usize::MAX);
        assert_eq!(
            kinds(&out),
            [
                "response.created",
                "response.in_progress",
                "response.completed"
            ]
        );
        assert_eq!(final_response(&out)["output"], json!([]));
        assert!(!stream.saw_content());
    }

    #[test]
    fn role_only_and_reasoning_chunks_only_start_the_response() {
        let mut stream = ResponsesStream::new("client-model", ID, CREATED);
        let out = stream
            .feed(chunk(json!({"role": "assistant", "content": ""}), Value::Null).as_bytes())
            .unwrap();
        assert_eq!(kinds(&out), ["response.created", "response.in_progress"]);
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
    fn saw_content_after_text_refusal_or_tool_call() {
        let mut stream = ResponsesStream::new("m", ID, 0);
        stream.feed(text("").as_bytes()).unwrap();
        assert!(!stream.saw_content());
        stream.feed(text("x").as_bytes()).unwrap();
        assert!(stream.saw_content());
        let mut stream = ResponsesStream::new("m", ID, 0);
        stream
            .feed(chunk(json!({"refusal": "no"}), Value::Null).as_bytes())
            .unwrap();
        assert!(stream.saw_content());
        let mut stream = ResponsesStream::new("m", ID, 0);
        stream
            .feed(tools(json!([tool_start(0, "c", "f", "")])).as_bytes())
            .unwrap();
        assert!(stream.saw_content());
    }

    #[test]
    fn error_chunk_is_an_upstream_error() {
        let mut stream = ResponsesStream::new("m", ID, 0);
        stream.feed(text("partial").as_bytes()).unwrap();
        let error = data(
            json!({"error": {"message": "Overloaded\nnow", "type": "server_error", "code": null}}),
        );
        match stream.feed(error.as_bytes()) {
            Err(TranslateError::Upstream(message)) => assert_eq!(message, "Overloaded now"),
            other => panic!("unexpected {other:?}"),
        }
        let mut stream = ResponsesStream::new("m", ID, 0);
        assert!(matches!(
            stream.feed(data(json!({"error": "boom"})).as_bytes()),
            Err(TranslateError::Upstream(message)) if message == "unspecified stream error"
        ));
    }

    #[test]
    fn truncated_stream() {
        let input = text_stream();
        let cut = input.find(DONE).unwrap();
        let mut stream = ResponsesStream::new("m", ID, 0);
        let out = stream.feed(&input.as_bytes()[..cut]).unwrap();
        assert!(!kinds(&out).iter().any(|kind| kind == "response.completed"));
        assert!(matches!(stream.finish(), Err(TranslateError::Truncated)));
        // `[DONE]` without its blank line was never a complete event.
        stream.feed(b"data: [DONE]").unwrap();
        assert!(matches!(stream.finish(), Err(TranslateError::Truncated)));
        let mut empty = ResponsesStream::new("m", ID, 0);
        assert!(matches!(empty.finish(), Err(TranslateError::Truncated)));
    }

    #[test]
    fn nothing_after_done_counts() {
        let mut stream = ResponsesStream::new("m", ID, 0);
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
            kinds(&out).last().map(String::as_str),
            Some("response.completed")
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
            // A fragment for a call whose item is done cannot be placed.
            [
                tools(json!([tool_start(0, "a", "f", "")])),
                tools(json!([tool_start(1, "b", "g", "")])),
                tools(json!([tool_args(0, "{}")])),
            ]
            .concat(),
            // Nor can two calls share an id.
            [
                tools(json!([tool_start(0, "a", "f", "")])),
                tools(json!([tool_start(1, "a", "g", "")])),
            ]
            .concat(),
        ];
        for input in bad_inputs {
            let mut stream = ResponsesStream::new("m", ID, 0);
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
            let mut whole = ResponsesStream::new("m", ID, 0);
            let mut cut = ResponsesStream::new("m", ID, 0);
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
        let mut stream = ResponsesStream::new("m", ID, 0);
        let mut input = b"data: ".to_vec();
        input.resize(sse::MAX_EVENT_BYTES + 16, b'a');
        assert!(matches!(stream.feed(&input), Err(TranslateError::Sse(_))));
    }
}

//! A Messages client in front of an OpenAI chat upstream (`provider::anthropic_wire`):
//! the client's request translated for the upstream (`chat_request_from_messages`),
//! and what the upstream answers translated back: streams (`MessagesStream`), whole
//! completions (`messages_response_from_chat`) and error bodies
//! (`chat_error_message`).
//!
//! Properties of a stream: the translation does not depend on how the bytes were cut
//! (whole, one byte at a time, in pieces); every event sent on is
//! `event: <name>\ndata: <compact JSON>\n\n` whose data has that `type`; the events
//! form a well-formed message (`message_start` first and once, blocks numbered from
//! 0, opened one at a time, deltas and stops for the open block only, and
//! `message_delta` then `message_stop` last exactly when `finish` succeeds); the
//! stream counts as having content exactly when a text delta or a tool call was
//! sent; usage is the upstream's or, without it, the estimate and the deltas sent; a
//! clean stream is never refused, and its text (refusals too) and each of its tool
//! calls (even ones that reuse an index) reach the client whole.
//! Of a request: a chat request for the upstream model whose messages all have a
//! chat role and content, whose tool messages answer earlier tool calls, whose tool
//! arguments are JSON, whose chosen tool is one it offers, and which names what it
//! dropped once each (`thinking` always when an assistant turn held thinking). Of a
//! completion: a message whose blocks are text or `tool_use` with an object input
//! and whose usage counts are non-negative integers. Of an error: a short message
//! without control characters, and request and response errors that never quote
//! the body.

use super::{CI_TIME, pieces};
use crate::provider::anthropic_wire::{
    MessagesStream, TranslateError, chat_error_message, chat_request_from_messages,
    messages_response_from_chat,
};
use arbitrary::Unstructured;
use serde_json::{Map, Value, json};
use std::collections::HashSet;

/// The model the client asked for, reported back to it.
const MODEL: &str = "client-model";
/// The model the upstream is asked for.
const UPSTREAM_MODEL: &str = "upstream-model";
/// The input token estimate `message_start` reports.
const ESTIMATE: u32 = 42;
/// Text the shaped inputs put everywhere: error messages about requests and
/// responses must never quote it.
const SECRET: &str = "SECRET-b7e1";

#[test]
fn chat_stream_to_messages() {
    bolero::check!(name = "chat_stream_to_messages")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            check_stream(bytes, None);
            let mut u = Unstructured::new(bytes);
            let (stream, carried) = shaped_stream(&mut u);
            check_stream(stream.as_bytes(), carried.as_ref());
        });
}

#[test]
fn messages_request_to_chat() {
    bolero::check!(name = "messages_request_to_chat")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            check_error_body(bytes);
            if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
                check_request(&value, None);
                check_completion(&value);
            }
            let mut u = Unstructured::new(bytes);
            let (request, paired) = shaped_request(&mut u);
            check_request(&request, Some(&paired));
            check_completion(&shaped_completion(&mut u));
            check_error_body(
                json!({"error": {"message": text(&mut u), "type": text(&mut u)}})
                    .to_string()
                    .as_bytes(),
            );
        });
}

// ---- Streams ----------------------------------------------------------------------

/// What a translation came to: the text sent on, or which kind of error ended it,
/// then the usage, whether content was seen, and how `finish` answered.
#[derive(Debug, PartialEq)]
struct Translation {
    fed: Result<String, &'static str>,
    usage: (u32, u32),
    saw_content: bool,
    finished: Option<Result<String, &'static str>>,
}

fn kind(e: &TranslateError) -> &'static str {
    match e {
        TranslateError::InvalidRequest(_) => "invalid request",
        TranslateError::InvalidResponse(_) => "invalid response",
        TranslateError::Upstream(_) => "upstream",
        TranslateError::Truncated => "truncated",
        TranslateError::Sse(_) => "sse",
    }
}

/// Checks what an error says: an upstream's own message made safe to pass on, or
/// ours, which never quotes the body.
fn check_error(e: &TranslateError) {
    match e {
        TranslateError::Upstream(message) => check_safe(message),
        TranslateError::InvalidRequest(message) | TranslateError::InvalidResponse(message) => {
            assert!(!message.contains(SECRET), "{message}");
        }
        TranslateError::Truncated | TranslateError::Sse(_) => {}
    }
}

fn check_safe(message: &str) {
    assert!(message.chars().count() <= 300, "{message}");
    assert!(!message.chars().any(char::is_control), "{message:?}");
}

fn translate(chunks: &[&[u8]]) -> Translation {
    let mut t = MessagesStream::new(MODEL, ESTIMATE);
    let mut text = String::new();
    let mut fed = Ok(());
    for chunk in chunks {
        match t.feed(chunk) {
            Ok(more) => text.push_str(&more),
            Err(e) => {
                check_error(&e);
                fed = Err(kind(&e));
                break;
            }
        }
    }
    let finished = fed.is_ok().then(|| t.finish().map_err(|e| kind(&e)));
    Translation {
        // After an error, what was sent before it depends on the cut (the events of
        // the failing call are dropped): only the error is compared.
        fed: fed.map(|()| text),
        usage: t.usage(),
        saw_content: t.saw_content(),
        finished,
    }
}

/// Checks the translation of `bytes`; `carried`, for a clean shaped stream, is what
/// it must come to.
fn check_stream(bytes: &[u8], carried: Option<&Carried>) {
    let whole = translate(&[bytes]);
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    let sizes = bytes.get(..8).unwrap_or(bytes);
    for (how, cut) in [
        ("one byte at a time", translate(&singles)),
        ("in pieces", translate(&pieces(bytes, sizes))),
    ] {
        match (&whole.fed, &cut.fed) {
            // An error ends the stream where it happened; what was counted before
            // it depends on the cut, so only its kind is compared.
            (Err(a), Err(b)) => assert_eq!(a, b, "{how}"),
            _ => assert_eq!(whole, cut, "{how}"),
        }
    }
    if carried.is_some() {
        assert!(whole.fed.is_ok(), "a clean stream failed: {:?}", whole.fed);
    }
    let Ok(text) = &whole.fed else { return };
    let mut all = text.clone();
    let finished = match &whole.finished {
        Some(Ok(end)) => {
            all.push_str(end);
            true
        }
        Some(Err(kind)) => {
            assert_eq!(*kind, "truncated");
            false
        }
        None => unreachable!("finish is called after every successful feed"),
    };
    let events = events(&all);
    check_events(&events, finished, &whole);
    if let Some(carried) = carried.filter(|_| finished) {
        assert_eq!(&received(&events), carried, "what the stream carried");
    }
}

/// The text and tool calls a client reads from `events`.
fn received(events: &[(String, Value)]) -> Carried {
    let mut out = Carried::default();
    for (name, data) in events {
        match (name.as_str(), data["delta"]["type"].as_str()) {
            ("content_block_start", _) if data["content_block"]["type"] == "tool_use" => {
                let block = &data["content_block"];
                let field = |key: &str| block[key].as_str().unwrap_or_default().to_owned();
                out.calls.push((field("id"), field("name"), String::new()));
            }
            ("content_block_delta", Some("text_delta")) => {
                out.text
                    .push_str(data["delta"]["text"].as_str().unwrap_or_default());
            }
            ("content_block_delta", Some("input_json_delta")) => {
                if let Some(call) = out.calls.last_mut() {
                    call.2
                        .push_str(data["delta"]["partial_json"].as_str().unwrap_or_default());
                }
            }
            _ => {}
        }
    }
    out
}

/// Splits output into (event name, data), checking each event is exactly
/// `event: <name>\ndata: <compact JSON>\n\n` and that the data's `type` is the name.
fn events(text: &str) -> Vec<(String, Value)> {
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text:?}");
    text.split_terminator("\n\n")
        .map(|event| {
            let (name, data) = event.split_once('\n').expect("two lines");
            let name = name.strip_prefix("event: ").expect("an event line");
            let data = data.strip_prefix("data: ").expect("a data line");
            assert!(!data.contains(['\n', '\r']), "{data:?}");
            let value: Value = serde_json::from_str(data).expect("JSON data");
            assert_eq!(value.to_string(), data, "compact JSON");
            assert_eq!(value["type"], name, "{data}");
            (name.to_owned(), value)
        })
        .collect()
}

/// The event sequence of one message, checked as a client would read it.
fn check_events(events: &[(String, Value)], finished: bool, t: &Translation) {
    // The open block: its index and whether it holds a tool call.
    let mut open: Option<(u64, bool)> = None;
    let mut next_index = 0u64;
    let mut content = false;
    let mut tool_calls = false;
    let mut deltas = 0u64;
    let last = events.len().saturating_sub(1);
    for (i, (name, data)) in events.iter().enumerate() {
        match name.as_str() {
            "message_start" => {
                assert_eq!(i, 0, "message_start first and once");
                let message = &data["message"];
                assert_eq!(message["model"], MODEL);
                assert_eq!(message["type"], "message");
                assert_eq!(message["role"], "assistant");
                assert_eq!(message["content"], json!([]));
                assert!(
                    message["id"]
                        .as_str()
                        .is_some_and(|id| id.starts_with("msg_"))
                );
                assert_eq!(message["usage"]["input_tokens"], ESTIMATE);
            }
            _ if i == 0 => panic!("{name} before message_start"),
            "content_block_start" => {
                assert_eq!(open, None, "a block opened while another is open");
                assert_eq!(data["index"], next_index, "block indexes count up from 0");
                let block = &data["content_block"];
                let tool = match block["type"].as_str() {
                    Some("text") => {
                        assert_eq!(block["text"], "");
                        false
                    }
                    Some("tool_use") => {
                        assert!(block["id"].as_str().is_some_and(|id| !id.is_empty()));
                        assert!(block["name"].as_str().is_some_and(|n| !n.is_empty()));
                        assert_eq!(block["input"], json!({}));
                        content = true;
                        tool_calls = true;
                        true
                    }
                    _ => panic!("block type: {block}"),
                };
                open = Some((next_index, tool));
                next_index += 1;
            }
            "content_block_delta" => {
                let (index, tool) = open.expect("a delta outside a block");
                assert_eq!(data["index"], index, "a delta for another block");
                let delta = &data["delta"];
                match (tool, delta["type"].as_str()) {
                    (false, Some("text_delta")) => {
                        assert!(delta["text"].as_str().is_some_and(|t| !t.is_empty()));
                        content = true;
                    }
                    (true, Some("input_json_delta")) => {
                        assert!(
                            delta["partial_json"]
                                .as_str()
                                .is_some_and(|t| !t.is_empty())
                        );
                    }
                    _ => panic!("delta {delta} in a block with tool = {tool}"),
                }
                deltas += 1;
            }
            "content_block_stop" => {
                let (index, _) = open.take().expect("a stop outside a block");
                assert_eq!(data["index"], index, "a stop for another block");
            }
            "message_delta" => {
                assert_eq!(open, None, "message_delta with a block open");
                assert_eq!(i + 1, last, "message_delta right before the last event");
                let reason = data["delta"]["stop_reason"].as_str().expect("stop_reason");
                assert!(
                    ["end_turn", "max_tokens", "tool_use", "refusal"].contains(&reason),
                    "{reason}"
                );
                assert!(
                    !(tool_calls && reason == "end_turn"),
                    "tool calls end a turn"
                );
                check_usage(&data["usage"], deltas, t.usage);
            }
            "message_stop" => {
                assert_eq!(i, last, "message_stop last");
                assert_eq!(events[i - 1].0, "message_delta");
            }
            _ => panic!("unknown event {name}"),
        }
    }
    let stopped = events
        .last()
        .is_some_and(|(name, _)| name == "message_stop");
    assert_eq!(
        stopped, finished,
        "message_stop exactly when finish succeeds"
    );
    assert_eq!(t.saw_content, content, "saw_content");
}

/// The usage of `message_delta`: the upstream's counts when it sent some (input
/// tokens without cache reads), else the deltas sent; `usage()` agrees.
fn check_usage(usage: &Value, deltas: u64, reported: (u32, u32)) {
    let fields = usage.as_object().expect("usage object");
    for (key, value) in fields {
        assert!(value.is_u64(), "usage.{key}: {value}");
    }
    let output = usage["output_tokens"].as_u64().expect("output_tokens");
    assert_eq!(reported.1, saturate(output));
    match usage["input_tokens"].as_u64() {
        None => {
            assert_eq!(fields.len(), 1, "{usage}");
            assert_eq!(output, deltas);
            assert_eq!(reported.0, ESTIMATE);
        }
        Some(input) => {
            let cached = usage["cache_read_input_tokens"]
                .as_u64()
                .expect("cache_read_input_tokens");
            // `input_tokens` is the prompt less cache reads, saturated at 0.
            if input > 0 {
                assert_eq!(reported.0, saturate(input + cached));
            } else {
                assert!(u64::from(reported.0) <= cached);
            }
        }
    }
}

fn saturate(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// One time in `n`; never once the input is used up (`Unstructured` then answers
/// the low end of every range, so the low ends are the plain cases).
fn one_in(u: &mut Unstructured<'_>, n: u8) -> bool {
    u.int_in_range(1..=n).is_ok_and(|x| x == n)
}

/// How hostile a shaped input is. A clean one (level 0) keeps to the protocol, in
/// all its legal variety; the others break it somewhere, more often the higher
/// their level, so that some get deep before they do.
#[derive(Debug, Clone, Copy)]
struct Hostility(u8);

impl Hostility {
    fn new(u: &mut Unstructured<'_>) -> Self {
        Self(u.int_in_range(0..=3u8).unwrap_or(0))
    }

    /// Whether to break the protocol here: never in a clean input, else about one
    /// time in `n / level`.
    fn strikes(self, u: &mut Unstructured<'_>, n: u8) -> bool {
        self.0 > 0 && one_in(u, (n / self.0).max(2))
    }
}

fn chunk(id: &str, delta: Value, finish_reason: Value) -> Value {
    json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": "upstream-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})
}

/// What a clean shaped stream carries, as its client must receive it: the text,
/// and each tool call's id, name and arguments.
#[derive(Debug, Default, PartialEq)]
struct Carried {
    text: String,
    calls: Vec<(String, String, String)>,
}

/// A chat chunk stream: text, tool calls started and filled piece by piece (one or
/// two to a chunk, `id` and `name` repeated now and then, a new call reusing an
/// index as some servers do), role-only chunks, `reasoning_content`, finish
/// reasons, usage with huge, negative or fractional counts, comments, `event:`
/// lines, data over several lines, every line ending, `[DONE]` early, at the end
/// or missing. Hostile ones add tool call fragments with missing or odd indexes and
/// ids, error chunks, data that is not JSON, is mistyped or cut short, and near
/// misses of `[DONE]`. With a clean one, what it carries up to its `[DONE]`.
fn shaped_stream(u: &mut Unstructured<'_>) -> (String, Option<Carried>) {
    let hostility = Hostility::new(u);
    let id = if hostility.strikes(u, 8) {
        text(u)
    } else {
        "chatcmpl-1".to_owned()
    };
    let without_done = one_in(u, 6);
    let mut out = String::new();
    if one_in(u, 16) {
        out.push('\u{FEFF}');
    }
    let mut carried = Carried::default();
    let mut done = false;
    // The calls started, as (chat index, id, name); the next unused chat index; the
    // call being filled.
    let mut calls: Vec<(u64, String, String)> = Vec::new();
    let mut next_index = 0u64;
    let mut open_call: Option<usize> = None;
    while !u.is_empty() {
        let data = match u.int_in_range(0..=15u8).unwrap_or(0) {
            0..=4 => {
                open_call = None;
                let text = text(u);
                if !done {
                    carried.text.push_str(&text);
                }
                chunk(&id, json!({ "content": text }), Value::Null)
            }
            5 | 6 => {
                let index = match (u.int_in_range(0..=7u8).unwrap_or(0), open_call) {
                    // Some servers number every call 0, or reuse the open one's index.
                    (6, _) => 0,
                    (7, Some(open)) => calls[open].0,
                    _ => next_index,
                };
                next_index = next_index.max(index + 1);
                let fragment = start_call(u, index, &mut calls, (!done).then_some(&mut carried));
                open_call = Some(calls.len() - 1);
                chunk(&id, json!({ "tool_calls": [fragment] }), Value::Null)
            }
            7..=9 => match open_call {
                Some(open) => {
                    let (index, call_id, name) = &calls[open];
                    let arguments = arguments_piece(u);
                    if !done && let Some(call) = carried.calls.get_mut(open) {
                        call.2.push_str(&arguments);
                    }
                    let fragment = if one_in(u, 4) {
                        json!({"index": index, "id": call_id, "type": "function",
                            "function": {"name": name, "arguments": arguments}})
                    } else {
                        json!({"index": index, "function": {"arguments": arguments}})
                    };
                    chunk(&id, json!({ "tool_calls": [fragment] }), Value::Null)
                }
                None => chunk(&id, json!({}), Value::Null),
            },
            10 => {
                let first = start_call(u, next_index, &mut calls, (!done).then_some(&mut carried));
                let second = start_call(
                    u,
                    next_index + 1,
                    &mut calls,
                    (!done).then_some(&mut carried),
                );
                next_index += 2;
                open_call = Some(calls.len() - 1);
                chunk(&id, json!({ "tool_calls": [first, second] }), Value::Null)
            }
            11 => match u.int_in_range(0..=3u8).unwrap_or(0) {
                0 => chunk(&id, json!({"reasoning_content": text(u)}), Value::Null),
                1 => chunk(
                    &id,
                    json!({"role": "assistant", "content": ""}),
                    Value::Null,
                ),
                2 => chunk(
                    &id,
                    json!({"role": "assistant", "content": null}),
                    Value::Null,
                ),
                _ => {
                    // A refusal streams like text.
                    open_call = None;
                    let text = text(u);
                    if !done {
                        carried.text.push_str(&text);
                    }
                    chunk(&id, json!({"content": null, "refusal": text}), Value::Null)
                }
            },
            12 => chunk(&id, json!({}), finish_reason(u)),
            13 => {
                let mut usage = if one_in(u, 3) {
                    chunk(&id, json!({}), finish_reason(u))
                } else {
                    json!({"id": id, "choices": []})
                };
                usage["usage"] = chat_usage(u);
                usage
            }
            14 => {
                // A comment, or an event without data: nothing is dispatched.
                out.push_str(if one_in(u, 2) {
                    "id: 7"
                } else {
                    ": keep-alive"
                });
                out.push_str(eol(u));
                out.push_str(eol(u));
                continue;
            }
            _ if one_in(u, 3) => {
                done = true;
                Value::from("[DONE]")
            }
            _ => {
                open_call = None;
                let text = text(u);
                if !done {
                    carried.text.push_str(&text);
                }
                chunk(&id, json!({ "content": text }), finish_reason(u))
            }
        };
        let mut data = match data {
            Value::String(raw) => raw,
            data if one_in(u, 8) => serde_json::to_string_pretty(&data).unwrap_or_default(),
            data => data.to_string(),
        };
        if hostility.strikes(u, 160) {
            data = hostile_data(u, &id, next_index, data);
        }
        let eol = eol(u);
        if one_in(u, 4) {
            let name = *u
                .choose(&["message", "", "delta", "error", "a\u{e9}"])
                .unwrap_or(&"");
            out.push_str("event: ");
            out.push_str(name);
            out.push_str(eol);
        }
        if one_in(u, 16) {
            out.push_str(": comment");
            out.push_str(eol);
        }
        for line in data.split(['\n', '\r']) {
            out.push_str(if one_in(u, 8) { "data:" } else { "data: " });
            out.push_str(line);
            out.push_str(eol);
        }
        out.push_str(eol);
    }
    if !without_done {
        out.push_str("data: [DONE]\n\n");
    }
    (out, (hostility.0 == 0).then_some(carried))
}

/// Starts a tool call with chat index `index` and a new id: its first fragment. The
/// call is noted in `calls`, and in `carried` unless the stream has ended.
fn start_call(
    u: &mut Unstructured<'_>,
    index: u64,
    calls: &mut Vec<(u64, String, String)>,
    carried: Option<&mut Carried>,
) -> Value {
    let call = (index, format!("{}#{}", text(u), calls.len()), name(u));
    let arguments = arguments_piece(u);
    if let Some(carried) = carried {
        let (_, id, name) = &call;
        carried
            .calls
            .push((id.clone(), name.clone(), arguments.clone()));
    }
    let fragment = json!({"index": index, "id": call.1, "type": "function",
        "function": {"name": call.2, "arguments": arguments}});
    calls.push(call);
    fragment
}

fn eol(u: &mut Unstructured<'_>) -> &'static str {
    match u.int_in_range(0..=7u8).unwrap_or(0) {
        6 => "\r\n",
        7 => "\r",
        _ => "\n",
    }
}

/// What a hostile stream sends instead of `data`: it cut short, an error chunk,
/// text that is not JSON, a mistyped chunk, a tool call fragment with a missing or
/// odd index, id or name (`calls` have been started so far), a near miss of
/// `[DONE]`, or nothing.
fn hostile_data(u: &mut Unstructured<'_>, id: &str, calls: u64, mut data: String) -> String {
    match u.int_in_range(0..=7u8).unwrap_or(0) {
        0 => {
            let mut cut = u.int_in_range(0..=data.len()).unwrap_or(0);
            while !data.is_char_boundary(cut) {
                cut -= 1;
            }
            data.truncate(cut);
            data
        }
        1 => match u.int_in_range(0..=2u8).unwrap_or(0) {
            0 => json!({"error": {"message": text(u), "type": "server_error", "code": null}}),
            1 => json!({"error": text(u)}),
            _ => json!({"error": {"message": 5}}),
        }
        .to_string(),
        2 => text(u),
        3 => mistyped_chunk(u, id).to_string(),
        4 => {
            let fragments: Vec<Value> = (0..u.int_in_range(1..=2u8).unwrap_or(1))
                .map(|_| odd_fragment(u, calls))
                .collect();
            chunk(id, json!({ "tool_calls": fragments }), Value::Null).to_string()
        }
        5 => (*u
            .choose(&[
                "[done]",
                "[DONE",
                " [DONE] ",
                "[DONE]\n",
                "data: [DONE]",
                "[DONE]]",
            ])
            .unwrap_or(&"[done]"))
        .to_owned(),
        6 => {
            // A null `error` is no error.
            let mut data = chunk(id, json!({"content": text(u)}), Value::Null);
            data["error"] = Value::Null;
            data.to_string()
        }
        _ => String::new(),
    }
}

/// A tool call fragment a chat server should not send: its index missing, odd, of
/// a call whose block has closed or of none started; its id or name missing, empty
/// or mistyped.
fn odd_fragment(u: &mut Unstructured<'_>, calls: u64) -> Value {
    let mut fragment = match u.int_in_range(0..=6u8).unwrap_or(0) {
        0 => json!({"function": {"arguments": arguments_piece(u)}}),
        1 => json!({"id": tool_id(u)}),
        2 => json!({"function": {"name": name(u)}}),
        3 => json!({"id": "", "function": {"name": ""}}),
        4 => json!({"function": null}),
        5 => json!({"id": 5, "function": {"name": ["f"], "arguments": {"a": 1}}}),
        _ => json!({"id": tool_id(u), "type": "function",
            "function": {"name": name(u), "arguments": arguments_piece(u)}}),
    };
    let index = match u.int_in_range(0..=6u8).unwrap_or(0) {
        0 => Value::from(u.int_in_range(0..=calls).unwrap_or(0)),
        1 => Value::from(calls + 3),
        2 => Value::from(-1),
        3 => Value::from("0"),
        4 => Value::from(u.arbitrary::<u64>().unwrap_or(u64::MAX)),
        5 => Value::from(1.5),
        _ => return fragment,
    };
    fragment["index"] = index;
    fragment
}

fn tool_id(u: &mut Unstructured<'_>) -> String {
    match u.int_in_range(0..=5u8).unwrap_or(0) {
        0..=3 => format!("call_{}", u.int_in_range(0..=2u8).unwrap_or(0)),
        4 => String::new(),
        _ => text(u),
    }
}

fn name(u: &mut Unstructured<'_>) -> String {
    (*u.choose(&["get_weather", "lookup", "now", "w\u{e9}ird \"name\"\n"])
        .unwrap_or(&"get_weather"))
    .to_owned()
}

fn arguments_piece(u: &mut Unstructured<'_>) -> String {
    match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => String::new(),
        1 => (*u
            .choose(&["{\"city\": ", "\"Paris\"}", "{}", "{\"q\":\"x\"}"])
            .unwrap_or(&"{}"))
        .to_owned(),
        _ => text(u),
    }
}

fn finish_reason(u: &mut Unstructured<'_>) -> Value {
    match u.int_in_range(0..=11u8).unwrap_or(0) {
        0..=4 => Value::Null,
        5 => Value::from("stop"),
        6 => Value::from("length"),
        7 => Value::from("tool_calls"),
        8 => Value::from("content_filter"),
        9 => Value::from("function_call"),
        10 => Value::from(text(u)),
        _ => Value::from(5),
    }
}

/// A chunk a chat server should not send: not an object, or with `choices`,
/// `delta` or its fields of the wrong type.
fn mistyped_chunk(u: &mut Unstructured<'_>, id: &str) -> Value {
    match u.int_in_range(0..=8u8).unwrap_or(0) {
        0 => json!([1, 2]),
        1 => json!(text(u)),
        2 => json!({"id": id, "choices": "x"}),
        3 => json!({"id": id, "choices": [{"delta": "x"}]}),
        4 => json!({"id": id, "choices": [{"delta": {"content": 5}}]}),
        5 => json!({"id": id, "choices": [{"delta": {"tool_calls": {"index": 0}}}]}),
        6 => json!({"id": id, "choices": [null, {"delta": {"content": "x"}}]}),
        7 => json!({"id": 5, "choices": [{"delta": {"content": text(u), "tool_calls": null}}]}),
        _ => json!({"choices": [{"finish_reason": 7, "delta": null}], "usage": "many"}),
    }
}

/// A chat `usage` object, its counts huge, negative or fractional now and then.
fn chat_usage(u: &mut Unstructured<'_>) -> Value {
    match u.int_in_range(0..=9u8).unwrap_or(0) {
        8 => Value::Null,
        9 => json!({}),
        _ => json!({
            "prompt_tokens": number(u),
            "completion_tokens": number(u),
            "total_tokens": number(u),
            "prompt_tokens_details": {"cached_tokens": number(u)},
        }),
    }
}

fn number(u: &mut Unstructured<'_>) -> Value {
    match u.int_in_range(0..=7u8).unwrap_or(0) {
        0..=3 => Value::from(u.int_in_range(0..=100_000u64).unwrap_or(0)),
        4 => Value::from(u.arbitrary::<u64>().unwrap_or(u64::MAX)),
        5 => Value::from(-5),
        6 => Value::from(1.5),
        _ => Value::from("12"),
    }
}

// ---- Requests, completions and error bodies ---------------------------------------

const DROPPED: &[&str] = &[
    "thinking",
    "cache_control",
    "top_k",
    "document",
    "citations",
    "server_tools",
    "container",
    "mcp_servers",
    "tool_result_images",
];

fn check_error_body(bytes: &[u8]) {
    if let Some(message) = chat_error_message(bytes) {
        check_safe(&message);
    }
}

/// Checks the translation of `request`. `paired`, for a shaped request, says for
/// each `tool_result` block in order whether it answered an earlier `tool_use`.
fn check_request(request: &Value, paired: Option<&[bool]>) {
    let out = match chat_request_from_messages(request, UPSTREAM_MODEL) {
        Ok(out) => out,
        Err(e) => {
            assert!(matches!(e, TranslateError::InvalidRequest(_)), "{e:?}");
            check_error(&e);
            return;
        }
    };
    let body = out.body.as_object().expect("a JSON object");
    assert_eq!(body.get("model"), Some(&Value::from(UPSTREAM_MODEL)));
    let messages = body["messages"].as_array().expect("messages");
    assert!(!messages.is_empty());
    let mut call_ids = HashSet::new();
    let mut tool_messages = 0;
    for message in messages {
        match message["role"].as_str() {
            Some("system") => {
                assert!(message["content"].as_str().is_some_and(|c| !c.is_empty()));
            }
            Some("user") => check_user_content(&message["content"]),
            Some("assistant") => {
                let text = &message["content"];
                assert!(text.is_null() || text.as_str().is_some_and(|t| !t.is_empty()));
                let calls = match message.get("tool_calls") {
                    None => &[][..],
                    Some(calls) => calls.as_array().expect("tool_calls array"),
                };
                assert!(!(text.is_null() && calls.is_empty()), "empty: {message}");
                for call in calls {
                    assert_eq!(call["type"], "function");
                    assert!(call["function"]["name"].is_string());
                    let arguments = call["function"]["arguments"].as_str().expect("arguments");
                    assert!(
                        serde_json::from_str::<Value>(arguments).is_ok(),
                        "{arguments}"
                    );
                    call_ids.insert(call["id"].as_str().expect("call id"));
                }
            }
            Some("tool") => {
                let id = message["tool_call_id"].as_str().expect("tool_call_id");
                assert!(message["content"].is_string());
                if paired.is_some_and(|paired| paired[tool_messages]) {
                    assert!(call_ids.contains(id), "{id} answers no earlier call");
                }
                tool_messages += 1;
            }
            _ => panic!("role of {message}"),
        }
    }
    if let Some(paired) = paired {
        assert_eq!(
            tool_messages,
            paired.len(),
            "one tool message per tool result"
        );
    }

    let mut seen = HashSet::new();
    let mut last = 0;
    for name in &out.dropped {
        assert!(seen.insert(*name), "{name} listed twice");
        let at = DROPPED
            .iter()
            .position(|d| d == name)
            .expect("a known name");
        assert!(at >= last, "{:?} out of order", out.dropped);
        last = at;
    }
    if thinking_in_assistant_turn(request) {
        assert!(out.dropped.contains(&"thinking"), "{:?}", out.dropped);
    }

    assert_eq!(body.get("max_tokens"), request.get("max_tokens"));
    if body.get("stream") == Some(&Value::Bool(true)) {
        assert_eq!(body["stream_options"]["include_usage"], true);
    }
    let tools = body
        .get("tools")
        .map(|t| t.as_array().expect("tools array"));
    if let Some(tools) = tools {
        assert!(!tools.is_empty());
        for tool in tools {
            assert_eq!(tool["type"], "function");
            assert!(tool["function"]["name"].is_string());
        }
    }
    if body.contains_key("tool_choice") {
        assert!(tools.is_some(), "tool_choice without tools");
    }
    // A choice of one of the client's tools names one of the upstream's.
    let chosen = &request["tool_choice"];
    let mut offered = request["tools"].as_array().into_iter().flatten();
    if chosen["type"] == "tool"
        && offered.any(|tool| tool["name"] == chosen["name"])
        && let Some(choice) = body.get("tool_choice")
    {
        let name = &choice["function"]["name"];
        let mut functions = tools.into_iter().flatten();
        assert!(
            functions.any(|tool| &tool["function"]["name"] == name),
            "{name}"
        );
    }
    if body.contains_key("parallel_tool_calls") {
        assert!(tools.is_some(), "parallel_tool_calls without tools");
    }
}

/// A chat user message's content: non-empty text, or non-empty parts of text and
/// images.
fn check_user_content(content: &Value) {
    match content {
        Value::String(text) => assert!(!text.is_empty()),
        Value::Array(parts) => {
            assert!(!parts.is_empty());
            for part in parts {
                match part["type"].as_str() {
                    Some("text") => {
                        assert!(part["text"].as_str().is_some_and(|t| !t.is_empty()));
                    }
                    Some("image_url") => assert!(part["image_url"]["url"].is_string()),
                    _ => panic!("part {part}"),
                }
            }
        }
        _ => panic!("user content {content}"),
    }
}

fn thinking_in_assistant_turn(request: &Value) -> bool {
    let messages = request["messages"].as_array().into_iter().flatten();
    messages
        .filter(|m| m["role"] == "assistant")
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .any(|block| {
            matches!(
                block["type"].as_str(),
                Some("thinking" | "redacted_thinking")
            )
        })
}

fn check_completion(chat: &Value) {
    let message = match messages_response_from_chat(chat, MODEL) {
        Ok(message) => message,
        Err(e) => {
            assert!(matches!(e, TranslateError::InvalidResponse(_)), "{e:?}");
            check_error(&e);
            return;
        }
    };
    assert_eq!(message["type"], "message");
    assert_eq!(message["role"], "assistant");
    assert_eq!(message["model"], MODEL);
    assert!(
        message["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("msg_"))
    );
    let mut tool_calls = false;
    for block in message["content"].as_array().expect("content") {
        match block["type"].as_str() {
            Some("text") => assert!(block["text"].as_str().is_some_and(|t| !t.is_empty())),
            Some("tool_use") => {
                assert!(block["id"].is_string() && block["name"].is_string());
                assert!(block["input"].is_object(), "{block}");
                tool_calls = true;
            }
            _ => panic!("block {block}"),
        }
    }
    let reason = message["stop_reason"].as_str().expect("stop_reason");
    assert!(
        ["end_turn", "max_tokens", "tool_use", "refusal"].contains(&reason),
        "{reason}"
    );
    assert!(!(tool_calls && reason == "end_turn"));
    let usage = &message["usage"];
    for key in [
        "input_tokens",
        "output_tokens",
        "cache_read_input_tokens",
        "cache_creation_input_tokens",
    ] {
        assert!(usage[key].is_u64(), "usage.{key}: {usage}");
    }
}

/// A Messages request: turns of every block kind (text with citations, images by
/// base64 and URL, documents, tool calls with any `input`, tool results with text,
/// block or image content and errors, thinking and redacted thinking),
/// `cache_control` here and there, tools of every kind (server tools too), every
/// tool choice and the optional parameters. Hostile ones put blocks in the wrong
/// role, give unknown roles and block types, and leave fields out or mistype them.
/// With it, for each `tool_result` in order, whether it answers an earlier
/// `tool_use`.
fn shaped_request(u: &mut Unstructured<'_>) -> (Value, Vec<bool>) {
    let hostility = Hostility::new(u);
    let mut ids = Vec::new();
    let mut paired = Vec::new();
    let mut messages = Vec::new();
    for turn in 0..u.int_in_range(1..=6u8).unwrap_or(1) {
        let assistant = (turn % 2 == 1) != hostility.strikes(u, 24);
        let role = if hostility.strikes(u, 48) {
            u.choose(&[json!("system"), json!("tool"), json!(null), json!(5)])
                .cloned()
                .unwrap_or(Value::Null)
        } else if assistant {
            Value::from("assistant")
        } else {
            Value::from("user")
        };
        let content = if one_in(u, 4) {
            Value::from(text(u))
        } else if hostility.strikes(u, 48) {
            Value::from(5)
        } else {
            let blocks: Vec<Value> = (0..u.int_in_range(1..=4u8).unwrap_or(1))
                .map(|_| {
                    let mut block = if assistant {
                        assistant_block(u, hostility, &mut ids)
                    } else {
                        user_block(u, hostility, &ids, &mut paired)
                    };
                    cache_control(u, &mut block);
                    block
                })
                .collect();
            Value::Array(blocks)
        };
        messages.push(json!({ "role": role, "content": content }));
    }

    let mut request = Map::new();
    request.insert("model".into(), Value::from("claude-x"));
    request.insert("messages".into(), Value::Array(messages));
    let max_tokens = if hostility.strikes(u, 16) {
        u.choose(&[json!(0), json!(-1), json!("100"), json!(null), json!(1.5)])
            .cloned()
            .ok()
    } else if one_in(u, 16) {
        Some(Value::from(u64::MAX))
    } else {
        Some(Value::from(u.int_in_range(1..=100_000u64).unwrap_or(1)))
    };
    if let Some(max_tokens) = max_tokens {
        request.insert("max_tokens".into(), max_tokens);
    }
    let mut optional: Vec<(&str, Value)> = Vec::new();
    optional.push(("system", system(u, hostility)));
    for key in ["temperature", "top_p"] {
        let value = if hostility.strikes(u, 8) {
            Value::from("hot")
        } else if one_in(u, 8) {
            Value::Null
        } else {
            Value::from(f64::from(u.int_in_range(0..=10u8).unwrap_or(0)) / 10.0)
        };
        optional.push((key, value));
    }
    optional.push(("top_k", json!(u.int_in_range(0..=50u8).unwrap_or(0))));
    let stop = if hostility.strikes(u, 8) {
        u.choose(&[json!("END"), json!(["a", 1])])
            .cloned()
            .unwrap_or(Value::Null)
    } else if one_in(u, 4) {
        json!([])
    } else {
        json!(["END", text(u)])
    };
    optional.push(("stop_sequences", stop));
    let stream = if hostility.strikes(u, 8) {
        Value::from("yes")
    } else {
        Value::Bool(one_in(u, 2))
    };
    optional.push(("stream", stream));
    let user_id = if hostility.strikes(u, 8) {
        Value::from(5)
    } else {
        Value::from(text(u))
    };
    optional.push(("metadata", json!({ "user_id": user_id })));
    let thinking = match u.int_in_range(0..=4u8).unwrap_or(0) {
        0 => json!({"type": "enabled", "budget_tokens": 1024}),
        1 => json!({"type": "disabled"}),
        2 => json!({"type": "adaptive"}),
        3 => Value::Null,
        _ => Value::from("on"),
    };
    optional.push(("thinking", thinking));
    let container = match u.int_in_range(0..=2u8).unwrap_or(0) {
        0 => Value::from("container_1"),
        1 => Value::Null,
        _ => json!({}),
    };
    optional.push(("container", container));
    let mcp = if one_in(u, 3) {
        json!([])
    } else {
        json!([{"type": "url", "url": "https://mcp.example.com", "name": "x"}])
    };
    optional.push(("mcp_servers", mcp));
    let tools = tools(u, hostility);
    let names: Vec<String> = tools
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
        .collect();
    optional.push(("tools", tools));
    optional.push(("tool_choice", tool_choice(u, hostility, &names)));
    for (key, value) in optional {
        if !one_in(u, 3) {
            continue;
        }
        request.insert(key.into(), value);
    }
    (Value::Object(request), paired)
}

fn system(u: &mut Unstructured<'_>, hostility: Hostility) -> Value {
    if hostility.strikes(u, 8) {
        return u
            .choose(&[
                json!(3),
                json!([{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]),
                json!([{"type": "text"}]),
            ])
            .cloned()
            .unwrap_or(Value::Null);
    }
    match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 | 1 => Value::from(text(u)),
        2 => {
            let blocks: Vec<Value> = (0..u.int_in_range(0..=2u8).unwrap_or(0))
                .map(|_| {
                    let mut block = json!({"type": "text", "text": text(u)});
                    cache_control(u, &mut block);
                    block
                })
                .collect();
            Value::Array(blocks)
        }
        _ => Value::Null,
    }
}

/// Now and then a `cache_control` mark, set or empty.
fn cache_control(u: &mut Unstructured<'_>, block: &mut Value) {
    if !block.is_object() {
        return;
    }
    match u.int_in_range(0..=11u8).unwrap_or(0) {
        9 | 10 => block["cache_control"] = json!({"type": "ephemeral"}),
        11 if one_in(u, 2) => block["cache_control"] = Value::Null,
        11 => block["cache_control"] = json!({}),
        _ => {}
    }
}

fn image(u: &mut Unstructured<'_>, hostility: Hostility) -> Value {
    let source = if hostility.strikes(u, 8) {
        match u.int_in_range(0..=2u8).unwrap_or(0) {
            0 => json!({"type": "file", "file_id": "file_1"}),
            1 => json!({"type": "base64", "data": "AA"}),
            _ => return json!({"type": "image"}),
        }
    } else if one_in(u, 2) {
        json!({"type": "url", "url": "https://example.com/cat.png"})
    } else {
        json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
    };
    json!({"type": "image", "source": source})
}

fn document(u: &mut Unstructured<'_>) -> Value {
    let source = match u.int_in_range(0..=2u8).unwrap_or(0) {
        0 => json!({"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}),
        1 => json!({"type": "text", "media_type": "text/plain", "data": text(u)}),
        _ => json!({"type": "url", "url": "https://example.com/a.pdf"}),
    };
    let mut block = json!({"type": "document", "source": source});
    if one_in(u, 3) {
        block["citations"] = json!({"enabled": one_in(u, 2)});
    }
    block
}

fn text_block(u: &mut Unstructured<'_>, hostility: Hostility) -> Value {
    if hostility.strikes(u, 64) {
        return json!({"type": "text", "text": 5});
    }
    let mut block = json!({"type": "text", "text": text(u)});
    if one_in(u, 8) {
        block["citations"] = if one_in(u, 2) {
            json!([])
        } else {
            json!([{"type": "char_location", "cited_text": text(u)}])
        };
    }
    block
}

fn user_block(
    u: &mut Unstructured<'_>,
    hostility: Hostility,
    ids: &[String],
    paired: &mut Vec<bool>,
) -> Value {
    if hostility.strikes(u, 40) {
        // Blocks only an assistant may send, and unknown ones.
        return match u.int_in_range(0..=5u8).unwrap_or(0) {
            0 => json!({"type": "thinking", "thinking": text(u), "signature": "sig"}),
            1 => json!({"type": "redacted_thinking", "data": "xx"}),
            2 => json!({"type": "tool_use", "id": "toolu_x", "name": "f", "input": {}}),
            3 => json!({"type": SECRET, "text": SECRET}),
            4 => json!({"text": text(u)}),
            _ => Value::from(text(u)),
        };
    }
    match u.int_in_range(0..=11u8).unwrap_or(0) {
        0..=3 => text_block(u, hostility),
        4 | 5 => image(u, hostility),
        6 => document(u),
        _ => tool_result(u, hostility, ids, paired),
    }
}

fn tool_result(
    u: &mut Unstructured<'_>,
    hostility: Hostility,
    ids: &[String],
    paired: &mut Vec<bool>,
) -> Value {
    let earlier = if one_in(u, 5) {
        None
    } else {
        u.choose(ids).ok()
    };
    let id = earlier.cloned().unwrap_or_else(|| tool_id(u));
    let mut block = json!({"type": "tool_result", "tool_use_id": id});
    if hostility.strikes(u, 32) {
        // No tool message comes of it: the request is refused.
        block["tool_use_id"] = Value::Null;
    } else {
        paired.push(earlier.is_some());
    }
    match u.int_in_range(0..=5u8).unwrap_or(0) {
        0 | 1 => block["content"] = Value::from(text(u)),
        2 => {}
        3 => block["content"] = Value::Null,
        _ => {
            let items: Vec<Value> = (0..u.int_in_range(0..=3u8).unwrap_or(0))
                .map(|_| match u.int_in_range(0..=6u8).unwrap_or(0) {
                    0..=3 => text_block(u, hostility),
                    4 | 5 => image(u, hostility),
                    _ => document(u),
                })
                .collect();
            block["content"] = Value::Array(items);
        }
    }
    if hostility.strikes(u, 16) {
        block["content"] = u
            .choose(&[json!(5), json!([{"type": "search_result"}]), json!({})])
            .cloned()
            .unwrap_or(Value::Null);
    }
    if one_in(u, 4) {
        block["is_error"] = Value::Bool(true);
    }
    block
}

fn assistant_block(u: &mut Unstructured<'_>, hostility: Hostility, ids: &mut Vec<String>) -> Value {
    if hostility.strikes(u, 40) {
        // Blocks only a user may send, unknown ones, and tool calls without id or name.
        return match u.int_in_range(0..=6u8).unwrap_or(0) {
            0 => image(u, hostility),
            1 => document(u),
            2 => json!({"type": "tool_result", "tool_use_id": "toolu_0", "content": "x"}),
            3 => json!({"type": "tool_use", "id": 5, "name": "f", "input": {}}),
            4 => json!({"type": "tool_use", "id": "toolu_x", "input": {}}),
            5 => json!({"type": SECRET}),
            _ => json!({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search"}),
        };
    }
    match u.int_in_range(0..=9u8).unwrap_or(0) {
        0..=3 => text_block(u, hostility),
        4..=6 => {
            let id = if one_in(u, 4) {
                tool_id(u)
            } else {
                format!("toolu_{}", ids.len())
            };
            let mut block = json!({"type": "tool_use", "id": id, "name": name(u)});
            match u.int_in_range(0..=7u8).unwrap_or(0) {
                0..=2 => block["input"] = json!({"q": text(u), "n": number(u)}),
                3 => block["input"] = json!({}),
                4 => block["input"] = Value::Null,
                5 => {}
                6 => block["input"] = Value::from(text(u)),
                _ => block["input"] = json!([1, "two", u.arbitrary::<u64>().unwrap_or(0)]),
            }
            ids.push(id);
            block
        }
        7 | 8 => json!({"type": "thinking", "thinking": text(u), "signature": "sig"}),
        _ => json!({"type": "redacted_thinking", "data": "xx"}),
    }
}

fn tools(u: &mut Unstructured<'_>, hostility: Hostility) -> Value {
    if hostility.strikes(u, 32) {
        return json!({});
    }
    let tools: Vec<Value> = (0..u.int_in_range(1..=3u8).unwrap_or(1))
        .map(|_| {
            let mut tool = if hostility.strikes(u, 16) {
                u.choose(&[
                    json!({"input_schema": {}}),
                    json!({"name": "a", "input_schema": "x"}),
                    json!({"type": 5, "name": "a"}),
                    json!("tool"),
                ])
                .cloned()
                .unwrap_or(Value::Null)
            } else {
                match u.int_in_range(0..=11u8).unwrap_or(0) {
                    0..=5 => json!({"name": name(u), "description": text(u),
                        "input_schema": {"type": "object", "properties": {"q": {"type": "string"}}}}),
                    6 => json!({"type": "custom", "name": name(u), "input_schema": {"type": "object"}}),
                    7 => json!({"name": name(u)}),
                    8 => json!({"type": "web_search_20250305", "name": "web_search", "max_uses": 3}),
                    9 => json!({"type": "bash_20250124", "name": "bash"}),
                    10 => json!({"type": "text_editor_20250429", "name": "str_replace_based_edit_tool"}),
                    _ => json!({"type": "code_execution_20250522", "name": "code_execution"}),
                }
            };
            cache_control(u, &mut tool);
            tool
        })
        .collect();
    Value::Array(tools)
}

/// A tool choice, naming one of `names` (the request's tools) or another.
fn tool_choice(u: &mut Unstructured<'_>, hostility: Hostility, names: &[String]) -> Value {
    if hostility.strikes(u, 8) {
        return u
            .choose(&[
                json!({"type": "tool"}),
                json!({"type": "sometimes"}),
                json!("auto"),
            ])
            .cloned()
            .unwrap_or(Value::Null);
    }
    let mut choice = match u.int_in_range(0..=7u8).unwrap_or(0) {
        0 | 1 => json!({"type": "auto"}),
        2 | 3 => json!({"type": "any"}),
        4 => json!({"type": "none"}),
        5 | 6 => {
            let name = match u.choose(names) {
                Ok(name) if !one_in(u, 4) => name.clone(),
                _ => name(u),
            };
            json!({"type": "tool", "name": name})
        }
        _ => Value::Null,
    };
    if choice.is_object() && one_in(u, 3) {
        choice["disable_parallel_tool_use"] = Value::Bool(one_in(u, 4));
    }
    choice
}

/// A chat completion with text, a refusal, reasoning and tool calls whose arguments
/// are objects, empty or missing. Hostile ones have arguments that are not JSON
/// objects, calls without id or name, and other fields missing or mistyped.
fn shaped_completion(u: &mut Unstructured<'_>) -> Value {
    let hostility = Hostility::new(u);
    let mut message = Map::new();
    message.insert("role".into(), Value::from("assistant"));
    let content = if hostility.strikes(u, 16) {
        Value::from(5)
    } else if one_in(u, 4) {
        Value::Null
    } else {
        Value::from(text(u))
    };
    message.insert("content".into(), content);
    if one_in(u, 6) {
        message.insert("refusal".into(), Value::from(text(u)));
    }
    if one_in(u, 4) {
        message.insert("reasoning_content".into(), Value::from(text(u)));
    }
    if one_in(u, 2) {
        let calls: Vec<Value> = (0..u.int_in_range(1..=3u8).unwrap_or(1))
            .map(|_| {
                let arguments = if hostility.strikes(u, 8) {
                    Some(match u.int_in_range(0..=3u8).unwrap_or(0) {
                        0 => Value::from("[1, 2]"),
                        1 => Value::from(7),
                        2 => Value::from("{\"city\": "),
                        _ => Value::from(text(u)),
                    })
                } else {
                    match u.int_in_range(0..=7u8).unwrap_or(0) {
                        0..=4 => Some(Value::from(
                            json!({"city": text(u), "n": number(u)}).to_string(),
                        )),
                        5 => Some(Value::from("")),
                        6 => Some(Value::from(" \n")),
                        _ => None,
                    }
                };
                let mut call = json!({"id": tool_id(u), "type": "function",
                    "function": {"name": name(u)}});
                if let Some(arguments) = arguments {
                    call["function"]["arguments"] = arguments;
                }
                if hostility.strikes(u, 24) {
                    call[*u.choose(&["id", "function"]).unwrap_or(&"id")] = Value::Null;
                }
                call
            })
            .collect();
        message.insert("tool_calls".into(), Value::Array(calls));
    }
    let mut choice = json!({"index": 0, "message": message, "finish_reason": finish_reason(u)});
    if hostility.strikes(u, 32) {
        choice["message"] = Value::from(text(u));
    }
    let id = if hostility.strikes(u, 16) {
        Value::from(5)
    } else if one_in(u, 8) {
        Value::from("")
    } else {
        Value::from("chatcmpl-1")
    };
    let choices = if hostility.strikes(u, 32) {
        u.choose(&[json!([]), json!({})])
            .cloned()
            .unwrap_or(Value::Null)
    } else {
        json!([choice])
    };
    json!({"id": id, "object": "chat.completion", "created": 1, "model": "upstream-model",
        "choices": choices, "usage": chat_usage(u)})
}

fn text(u: &mut Unstructured<'_>) -> String {
    const WORDS: &[&str] = &[
        "",
        "Hello",
        " wörld 🌍",
        "{\"city\": ",
        "\"Paris\"}",
        "a\nb",
        "r\r\n",
        "call_1",
        "toolu_0",
        "[DONE]",
        "tool_calls",
        "\u{0}",
        "\u{2028}",
        "data: x\n\n",
        SECRET,
    ];
    match u.int_in_range(0..=2u8).unwrap_or(0) {
        0 => u.arbitrary::<String>().unwrap_or_default(),
        _ => u.choose(WORDS).map_or("", |w| *w).to_owned(),
    }
}

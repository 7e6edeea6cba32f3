//! A Responses API client in front of an OpenAI chat upstream
//! (`provider::responses_wire`): the client's request translated for the upstream
//! (`chat_request_from_responses`), and what the upstream answers translated back:
//! streams (`ResponsesStream`) and whole completions (`response_from_chat`).
//!
//! Properties of a stream: the translation does not depend on how the bytes were cut
//! (whole, one byte at a time, in pieces); every event sent on is
//! `event: <type>\ndata: <compact JSON>\n\n` whose data has that `type` and a
//! `sequence_number` counting up by one from 0; the events form a well-formed
//! response (`response.created` then `response.in_progress` first, output items
//! numbered from 0 and added, filled and done one at a time, a message's content
//! parts likewise inside it, each `*.done` repeating what its deltas built); exactly
//! one terminal event (`response.completed` or `response.incomplete`) comes, last,
//! exactly when `finish` succeeds, and its response's `output` is what the events
//! built, its usage what `usage()` says; the stream counts as having content exactly
//! when a text or refusal delta or a function call item was sent; a clean stream is
//! never refused, and its text, refusals and each of its tool calls (even ones that
//! reuse an index) reach the client whole.
//! Of a request: a chat request for the upstream model whose messages all have a
//! chat role and content, whose tool messages answer earlier tool calls, whose chosen
//! tool is one it offers, and which names what it dropped once each, in order
//! (`previous_response_id` and `reasoning` always when asked or given). Of a
//! completion: a `response` object with the fields OpenAI's SDKs require, whose items
//! are messages with text or refusal parts and function calls with distinct ids, and
//! whose usage counts are non-negative integers. Request and response errors never
//! quote the body; upstream errors are short and free of control characters.

use super::{CI_TIME, pieces};
use crate::provider::responses_wire::{
    ResponsesStream, TranslateError, chat_request_from_responses, response_from_chat,
};
use crate::usage::Usage;
use arbitrary::Unstructured;
use serde_json::{Map, Value, json};
use std::collections::HashSet;

/// The model the client asked for, reported back to it.
const MODEL: &str = "client-model";
/// The model the upstream is asked for.
const UPSTREAM_MODEL: &str = "upstream-model";
/// The id the gateway gives the response.
const RESPONSE_ID: &str = "resp_f00d";
const CREATED_AT: u64 = 1_700_000_000;
/// Text the shaped inputs put everywhere: error messages about requests and
/// responses must never quote it.
const SECRET: &str = "SECRET-b7e1";

#[test]
fn chat_stream_to_responses() {
    bolero::check!(name = "chat_stream_to_responses")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            check_stream(bytes, None);
            let mut u = Unstructured::new(bytes);
            let (stream, carried) = shaped_stream(&mut u);
            check_stream(stream.as_bytes(), carried.as_ref());
        });
}

#[test]
fn responses_request_to_chat() {
    bolero::check!(name = "responses_request_to_chat")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
                check_request(&value, None);
                check_completion(&value);
            }
            let mut u = Unstructured::new(bytes);
            let (request, paired) = shaped_request(&mut u);
            check_request(&request, Some(&paired));
            check_completion(&shaped_completion(&mut u));
        });
}

// ---- Streams ----------------------------------------------------------------------

/// What a translation came to: the text sent on, or which kind of error ended it,
/// then the usage, whether content was seen, and how `finish` answered.
#[derive(Debug, PartialEq)]
struct Translation {
    fed: Result<String, &'static str>,
    usage: Option<Usage>,
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
        TranslateError::Upstream(message) => {
            assert!(message.chars().count() <= 300, "{message}");
            assert!(!message.chars().any(char::is_control), "{message:?}");
        }
        TranslateError::InvalidRequest(message) | TranslateError::InvalidResponse(message) => {
            assert!(!message.contains(SECRET), "{message}");
        }
        TranslateError::Truncated | TranslateError::Sse(_) => {}
    }
}

fn translate(chunks: &[&[u8]]) -> Translation {
    let mut t = ResponsesStream::new(MODEL, RESPONSE_ID, CREATED_AT);
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
            assert!(
                end.is_empty(),
                "finish sends nothing: the end came with [DONE]"
            );
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
    let built = check_events(&events, finished, &whole);
    if let Some(carried) = carried.filter(|_| finished) {
        assert_eq!(&received(&built), carried, "what the stream carried");
    }
}

/// Splits output into (event type, data), checking each event is exactly
/// `event: <type>\ndata: <compact JSON>\n\n`, that the data's `type` is the event's
/// and that `sequence_number` counts up by one from 0.
fn events(text: &str) -> Vec<(String, Value)> {
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text:?}");
    let events: Vec<(String, Value)> = text
        .split_terminator("\n\n")
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
        .collect();
    for (n, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], n as u64, "sequence numbers");
    }
    events
}

/// The output item a client is building from the events: its index, its item as
/// added with what the events put in since, and the content part being written.
struct Building {
    output_index: u64,
    item: Value,
    /// The open part's content index and type (`output_text` or `refusal`).
    part: Option<(u64, &'static str)>,
}

/// The event sequence of one response, checked as a client would read it, with the
/// output the events built, as the final response must list it.
fn check_events(events: &[(String, Value)], finished: bool, t: &Translation) -> Vec<Value> {
    let mut built: Vec<Value> = Vec::new();
    let mut open: Option<Building> = None;
    let mut content = false;
    let mut call_ids = HashSet::new();
    let mut terminal = None;
    for (i, (name, data)) in events.iter().enumerate() {
        assert!(terminal.is_none(), "{name} after the terminal event");
        match (i, name.as_str()) {
            (0, "response.created") | (1, "response.in_progress") => {
                check_response(&data["response"], "in_progress");
                assert_eq!(data["response"]["output"], json!([]));
                assert_eq!(data["response"]["usage"], Value::Null);
                continue;
            }
            (0 | 1, _) => panic!("{name} before response.created and response.in_progress"),
            _ => {}
        }
        // Events about an item or a part name the open one.
        let open_item = |open: &Option<Building>| {
            let building = open.as_ref().expect("an event outside an item");
            assert_eq!(data["output_index"], building.output_index, "{name}");
            if data.get("item_id").is_some() {
                assert_eq!(data["item_id"], building.item["id"], "{name}");
            }
        };
        match name.as_str() {
            "response.output_item.added" => {
                assert!(open.is_none(), "an item added while another is open");
                assert_eq!(data["output_index"], built.len() as u64, "output indexes");
                let item = &data["item"];
                assert_eq!(item["status"], "in_progress");
                let id = item["id"].as_str().expect("item id");
                match item["type"].as_str() {
                    Some("message") => {
                        assert!(id.starts_with("msg_"), "{id}");
                        assert_eq!(item["role"], "assistant");
                        assert_eq!(item["content"], json!([]));
                    }
                    Some("function_call") => {
                        assert!(id.starts_with("fc_"), "{id}");
                        assert_eq!(item["arguments"], "");
                        let call_id = item["call_id"].as_str().expect("call_id");
                        assert!(!call_id.is_empty());
                        assert!(call_ids.insert(call_id.to_owned()), "call ids repeat");
                        assert!(item["name"].as_str().is_some_and(|n| !n.is_empty()));
                        content = true;
                    }
                    _ => panic!("item type: {item}"),
                }
                open = Some(Building {
                    output_index: built.len() as u64,
                    item: item.clone(),
                    part: None,
                });
            }
            "response.content_part.added" => {
                open_item(&open);
                let building = open.as_mut().expect("open");
                assert_eq!(building.item["type"], "message");
                assert_eq!(building.part, None, "a part added while another is open");
                let parts = building.item["content"].as_array_mut().expect("content");
                assert_eq!(data["content_index"], parts.len() as u64, "content indexes");
                let part = &data["part"];
                let kind = match part["type"].as_str() {
                    Some("output_text") => {
                        assert_eq!(
                            part,
                            &json!({"type": "output_text", "text": "", "annotations": [], "logprobs": []})
                        );
                        "output_text"
                    }
                    Some("refusal") => {
                        assert_eq!(part, &json!({"type": "refusal", "refusal": ""}));
                        "refusal"
                    }
                    _ => panic!("part {part}"),
                };
                building.part = Some((parts.len() as u64, kind));
                parts.push(part.clone());
            }
            "response.output_text.delta" | "response.refusal.delta" => {
                open_item(&open);
                let (field, kind) = if name == "response.output_text.delta" {
                    assert_eq!(data["logprobs"], json!([]));
                    ("text", "output_text")
                } else {
                    ("refusal", "refusal")
                };
                let part = open_part(&mut open, data, kind);
                let delta = data["delta"].as_str().expect("delta");
                assert!(!delta.is_empty(), "empty delta");
                append(&mut part[field], delta);
                content = true;
            }
            "response.output_text.done" | "response.refusal.done" => {
                open_item(&open);
                let (field, kind) = if name == "response.output_text.done" {
                    assert_eq!(data["logprobs"], json!([]));
                    ("text", "output_text")
                } else {
                    ("refusal", "refusal")
                };
                let part = open_part(&mut open, data, kind);
                assert_eq!(data[field], part[field], "{name} repeats its deltas");
                assert!(part[field].as_str().is_some_and(|t| !t.is_empty()));
                let next = events.get(i + 1).map(|(name, _)| name.as_str());
                assert_eq!(next, Some("response.content_part.done"));
            }
            "response.content_part.done" => {
                open_item(&open);
                let building = open.as_mut().expect("open");
                let (index, _) = building.part.take().expect("a part done outside a part");
                assert_eq!(data["content_index"], index);
                assert_eq!(data["part"], building.item["content"][index as usize]);
            }
            "response.function_call_arguments.delta" => {
                open_item(&open);
                let building = open.as_mut().expect("open");
                assert_eq!(building.item["type"], "function_call");
                let delta = data["delta"].as_str().expect("delta");
                assert!(!delta.is_empty(), "empty delta");
                append(&mut building.item["arguments"], delta);
            }
            "response.function_call_arguments.done" => {
                open_item(&open);
                let building = open.as_ref().expect("open");
                assert_eq!(building.item["type"], "function_call");
                assert_eq!(data["arguments"], building.item["arguments"]);
                assert_eq!(data["name"], building.item["name"]);
                assert!(data["arguments"].as_str().is_some_and(|a| !a.is_empty()));
                let next = events.get(i + 1).map(|(name, _)| name.as_str());
                assert_eq!(next, Some("response.output_item.done"));
            }
            "response.output_item.done" => {
                open_item(&open);
                let mut building = open.take().expect("open");
                assert_eq!(building.part, None, "an item done with a part open");
                let item = &data["item"];
                let status = item["status"].as_str().expect("status");
                assert!(["completed", "incomplete"].contains(&status), "{status}");
                building.item["status"] = Value::from(status);
                assert_eq!(item, &building.item, "the item is what its events built");
                if item["type"] == "message" {
                    assert_ne!(item["content"], json!([]), "an empty message");
                }
                built.push(building.item);
            }
            "response.completed" | "response.incomplete" => {
                assert!(open.is_none(), "the response ended with an item open");
                let response = &data["response"];
                let status = name.strip_prefix("response.").unwrap_or_default();
                check_response(response, status);
                assert_eq!(response["output"], Value::Array(built.clone()));
                for (k, item) in built.iter().enumerate() {
                    let last = k + 1 == built.len();
                    let expected = if last && status == "incomplete" {
                        "incomplete"
                    } else {
                        "completed"
                    };
                    assert_eq!(item["status"], expected, "item {k} of an {status} response");
                }
                check_usage(&response["usage"], t.usage);
                terminal = Some(i);
            }
            _ => panic!("unknown event {name}"),
        }
    }
    assert_eq!(
        terminal.is_some(),
        finished,
        "a terminal event exactly when finish succeeds"
    );
    assert_eq!(t.saw_content, content, "saw_content");
    built
}

/// The open part of the open message item, which must be of `kind` and the one
/// `data` names.
fn open_part<'a>(open: &'a mut Option<Building>, data: &Value, kind: &str) -> &'a mut Value {
    let building = open.as_mut().expect("open");
    let (index, open_kind) = building.part.expect("a delta outside a part");
    assert_eq!(open_kind, kind, "a {kind} event in another part");
    assert_eq!(data["content_index"], index);
    &mut building.item["content"][index as usize]
}

fn append(field: &mut Value, piece: &str) {
    let mut text = field.as_str().expect("a string").to_owned();
    text.push_str(piece);
    *field = Value::from(text);
}

/// A `response` object with `status` and what every one of ours carries.
fn check_response(response: &Value, status: &str) {
    assert_eq!(response["id"], RESPONSE_ID);
    assert_eq!(response["object"], "response");
    assert_eq!(response["created_at"], CREATED_AT);
    assert_eq!(response["model"], MODEL);
    assert_eq!(response["status"], status);
    assert!(response["output"].is_array());
    // What OpenAI's SDKs require of a response beyond those.
    assert!(response["parallel_tool_calls"].is_boolean());
    assert!(response["tools"].is_array());
    assert!(response["tool_choice"].is_string());
    let reason = response["incomplete_details"]["reason"].as_str();
    match status {
        "incomplete" => assert!(
            matches!(reason, Some("max_output_tokens" | "content_filter")),
            "{reason:?}"
        ),
        _ => assert_eq!(response["incomplete_details"], Value::Null),
    }
    assert!(response.get("output_text").is_none(), "the SDK computes it");
}

/// A response's `usage`: null without one from the upstream, else its counts, in
/// the Responses API's shape.
fn check_usage(usage: &Value, reported: Option<Usage>) {
    let Some(reported) = reported else {
        assert_eq!(usage, &Value::Null);
        return;
    };
    let count = |value: &Value| value.as_u64().expect("a count");
    assert_eq!(count(&usage["input_tokens"]), u64::from(reported.input));
    assert_eq!(count(&usage["output_tokens"]), u64::from(reported.output));
    let details = &usage["input_tokens_details"];
    assert_eq!(
        count(&details["cached_tokens"]),
        u64::from(reported.cache_read)
    );
    assert_eq!(
        count(&details["cache_write_tokens"]),
        u64::from(reported.cache_write)
    );
    assert_eq!(
        count(&usage["output_tokens_details"]["reasoning_tokens"]),
        u64::from(reported.reasoning)
    );
    assert_eq!(
        count(&usage["total_tokens"]),
        u64::from(reported.input) + u64::from(reported.output)
    );
}

/// What a clean shaped stream carries, as its client must receive it: the text,
/// the refusals, and each tool call's id, name and arguments.
#[derive(Debug, Default, PartialEq)]
struct Carried {
    text: String,
    refusal: String,
    calls: Vec<(String, String, String)>,
}

/// What a client reads from the output the events built. A call without arguments
/// reads `{}`, as the translator gives it.
fn received(output: &[Value]) -> Carried {
    let mut out = Carried::default();
    let field = |value: &Value, key: &str| value[key].as_str().unwrap_or_default().to_owned();
    for item in output {
        match item["type"].as_str() {
            Some("message") => {
                for part in item["content"].as_array().into_iter().flatten() {
                    out.text.push_str(&field(part, "text"));
                    out.refusal.push_str(&field(part, "refusal"));
                }
            }
            _ => out.calls.push((
                field(item, "call_id"),
                field(item, "name"),
                field(item, "arguments"),
            )),
        }
    }
    out
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
    json!({"id": id, "object": "chat.completion.chunk", "created": 1, "model": UPSTREAM_MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}]})
}

/// A chat chunk stream: text and refusals, tool calls started and filled piece by
/// piece (one or two to a chunk, `id` and `name` repeated now and then, a new call
/// reusing an index as some servers do), role-only chunks, `reasoning_content`,
/// finish reasons, usage with huge, negative or fractional counts, comments,
/// `event:` lines, data over several lines, every line ending, `[DONE]` early, at
/// the end or missing. Hostile ones add tool call fragments with missing or odd
/// indexes and ids, error chunks, data that is not JSON, is mistyped or cut short,
/// and near misses of `[DONE]`. With a clean one, what it carries up to its
/// `[DONE]`.
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
                let text = text(u);
                if !text.is_empty() {
                    open_call = None;
                }
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
                    json!({"role": "assistant", "content": null, "refusal": null}),
                    Value::Null,
                ),
                _ => {
                    let text = text(u);
                    if !text.is_empty() {
                        open_call = None;
                    }
                    if !done {
                        carried.refusal.push_str(&text);
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
                let text = text(u);
                if !text.is_empty() {
                    open_call = None;
                }
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
    for call in &mut carried.calls {
        if call.2.is_empty() {
            call.2.push_str("{}");
        }
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
/// a call whose item is done or of none started; its id or name missing, empty,
/// mistyped or another call's.
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
        4 => json!({"id": id, "choices": [{"delta": {"content": 5, "refusal": [1]}}]}),
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
            "completion_tokens_details": {"reasoning_tokens": number(u)},
            "cache_creation_input_tokens": number(u),
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

// ---- Requests and completions -----------------------------------------------------

const DROPPED: &[&str] = &[
    "previous_response_id",
    "conversation",
    "prompt",
    "reasoning",
    "reasoning_summary",
    "builtin_tools",
    "custom_tools",
    "file_inputs",
    "tool_output_images",
    "logprobs",
];

/// Checks the translation of `request`. `paired`, for a shaped request, says for
/// each `function_call_output` item in order whether it answered an earlier
/// `function_call`.
fn check_request(request: &Value, paired: Option<&[bool]>) {
    let out = match chat_request_from_responses(request, UPSTREAM_MODEL) {
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
    if let Some(instructions) = request["instructions"].as_str().filter(|i| !i.is_empty()) {
        assert_eq!(
            messages[0],
            json!({"role": "system", "content": instructions})
        );
    }
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
                    assert!(
                        call["function"]["name"]
                            .as_str()
                            .is_some_and(|n| !n.is_empty())
                    );
                    let arguments = call["function"]["arguments"].as_str().expect("arguments");
                    assert!(!arguments.trim().is_empty());
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
        assert_eq!(tool_messages, paired.len(), "one tool message per output");
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
    if request["previous_response_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty())
    {
        assert!(out.dropped.contains(&"previous_response_id"));
    }
    let mut items = request["input"].as_array().into_iter().flatten();
    if items.any(|item| item["type"] == "reasoning") {
        assert!(out.dropped.contains(&"reasoning"), "{:?}", out.dropped);
    }

    if let Some(max) = request["max_output_tokens"].as_u64() {
        assert_eq!(body["max_completion_tokens"], max);
    }
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
    if body.contains_key("tool_choice") || body.contains_key("parallel_tool_calls") {
        assert!(tools.is_some(), "tool_choice without tools");
    }
    if let Some(name) = body
        .get("tool_choice")
        .and_then(|choice| choice.get("function"))
        .map(|function| &function["name"])
    {
        let mut functions = tools.into_iter().flatten();
        assert!(
            functions.any(|tool| &tool["function"]["name"] == name),
            "{name} is not offered"
        );
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
                    Some("image_url") => {
                        assert!(
                            part["image_url"]["url"]
                                .as_str()
                                .is_some_and(|u| !u.is_empty())
                        );
                    }
                    _ => panic!("part {part}"),
                }
            }
        }
        _ => panic!("user content {content}"),
    }
}

fn check_completion(chat: &Value) {
    let response = match response_from_chat(chat, MODEL, RESPONSE_ID, CREATED_AT) {
        Ok(response) => response,
        Err(e) => {
            assert!(matches!(e, TranslateError::InvalidResponse(_)), "{e:?}");
            check_error(&e);
            return;
        }
    };
    let status = response["status"].as_str().expect("status");
    assert!(["completed", "incomplete"].contains(&status), "{status}");
    check_response(&response, status);
    let output = response["output"].as_array().expect("output");
    let mut ids = HashSet::new();
    let mut call_ids = HashSet::new();
    for (k, item) in output.iter().enumerate() {
        assert!(
            ids.insert(item["id"].as_str().expect("item id")),
            "item ids repeat"
        );
        let last = k + 1 == output.len();
        let expected = if last { status } else { "completed" };
        assert_eq!(item["status"], expected);
        match item["type"].as_str() {
            Some("message") => {
                assert_eq!(k, 0, "the message comes first");
                assert_eq!(item["role"], "assistant");
                let parts = item["content"].as_array().expect("content");
                assert!(!parts.is_empty());
                for part in parts {
                    match part["type"].as_str() {
                        Some("output_text") => {
                            assert!(part["text"].as_str().is_some_and(|t| !t.is_empty()));
                            assert_eq!(part["annotations"], json!([]));
                        }
                        Some("refusal") => {
                            assert!(part["refusal"].as_str().is_some_and(|t| !t.is_empty()));
                        }
                        _ => panic!("part {part}"),
                    }
                }
            }
            Some("function_call") => {
                let call_id = item["call_id"].as_str().expect("call_id");
                assert!(call_ids.insert(call_id), "call ids repeat");
                assert!(item["name"].as_str().is_some_and(|n| !n.is_empty()));
                assert!(item["arguments"].as_str().is_some_and(|a| !a.is_empty()));
            }
            _ => panic!("item {item}"),
        }
    }
    let reported = chat.get("usage").and_then(Usage::of);
    check_usage(&response["usage"], reported);
}

/// A Responses request: items of every kind (messages of each role, with and
/// without `type`, as strings or parts of text, refusals, images by URL or file id
/// and files; function calls and their outputs as text or parts; reasoning, built-in
/// and custom tool calls), tools of every kind, every tool choice and the optional
/// parameters. Hostile ones give unknown roles, item and part types, leave ids out,
/// refer to stored items, and mistype fields. With it, for each
/// `function_call_output` in order, whether it answers an earlier `function_call`.
fn shaped_request(u: &mut Unstructured<'_>) -> (Value, Vec<bool>) {
    let hostility = Hostility::new(u);
    let mut ids = Vec::new();
    let mut paired = Vec::new();
    let input = if one_in(u, 6) {
        Value::from(text(u))
    } else if hostility.strikes(u, 32) {
        u.choose(&[
            json!(5),
            json!({"role": "user", "content": "x"}),
            Value::Null,
        ])
        .cloned()
        .unwrap_or(Value::Null)
    } else {
        let items: Vec<Value> = (0..u.int_in_range(1..=8u8).unwrap_or(1))
            .map(|_| input_item(u, hostility, &mut ids, &mut paired))
            .collect();
        Value::Array(items)
    };

    let mut request = Map::new();
    request.insert("model".into(), Value::from("gpt-x"));
    request.insert("input".into(), input);
    // Each optional field is there one time in three, decided before it is built
    // so that fields late in the list do not depend on bytes left over; tools
    // first, since they matter most.
    maybe_set(u, hostility, &mut request, "tools", tools);
    if one_in(u, 2) {
        let names: Vec<String> = request
            .get("tools")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|tool| tool["name"].as_str().map(str::to_owned))
            .collect();
        request.insert("tool_choice".into(), tool_choice(u, hostility, &names));
    }
    maybe_set(
        u,
        hostility,
        &mut request,
        "parallel_tool_calls",
        |u, hostility| {
            if hostility.strikes(u, 16) {
                Value::from("no")
            } else {
                Value::Bool(one_in(u, 2))
            }
        },
    );
    maybe_set(
        u,
        hostility,
        &mut request,
        "instructions",
        |u, hostility| {
            if hostility.strikes(u, 16) {
                json!([{"role": "system", "content": "x"}])
            } else {
                Value::from(text(u))
            }
        },
    );
    maybe_set(
        u,
        hostility,
        &mut request,
        "max_output_tokens",
        |u, hostility| {
            if hostility.strikes(u, 16) {
                u.choose(&[json!(0), json!(-1), json!("100"), json!(1.5)])
                    .cloned()
                    .unwrap_or(Value::Null)
            } else if one_in(u, 8) {
                Value::Null
            } else {
                Value::from(u.int_in_range(1..=100_000u64).unwrap_or(1))
            }
        },
    );
    for key in ["temperature", "top_p"] {
        maybe_set(u, hostility, &mut request, key, |u, hostility| {
            if hostility.strikes(u, 8) {
                Value::from("hot")
            } else if one_in(u, 8) {
                Value::Null
            } else {
                Value::from(f64::from(u.int_in_range(0..=10u8).unwrap_or(0)) / 10.0)
            }
        });
    }
    maybe_set(u, hostility, &mut request, "stream", |u, hostility| {
        if hostility.strikes(u, 8) {
            Value::from("yes")
        } else {
            Value::Bool(one_in(u, 2))
        }
    });
    for key in ["user", "safety_identifier"] {
        maybe_set(u, hostility, &mut request, key, |u, hostility| {
            if hostility.strikes(u, 16) {
                Value::from(5)
            } else {
                Value::from(text(u))
            }
        });
    }
    maybe_set(u, hostility, &mut request, "metadata", |u, hostility| {
        if hostility.strikes(u, 16) {
            Value::from("m")
        } else {
            json!({ "k": text(u) })
        }
    });
    maybe_set(u, hostility, &mut request, "text", text_config);
    maybe_set(
        u,
        hostility,
        &mut request,
        "reasoning",
        |u, hostility| match u.int_in_range(0..=5u8).unwrap_or(0) {
            0 => json!({"effort": "low"}),
            1 => json!({"effort": "high", "summary": "auto"}),
            2 => json!({"generate_summary": "concise"}),
            3 => json!({"effort": null, "summary": null}),
            4 if hostility.strikes(u, 2) => json!({"effort": 3}),
            _ => Value::Null,
        },
    );
    maybe_set(
        u,
        hostility,
        &mut request,
        "previous_response_id",
        |u, _| Value::from(text(u)),
    );
    maybe_set(u, hostility, &mut request, "conversation", |u, _| {
        match u.int_in_range(0..=2u8).unwrap_or(0) {
            0 => Value::from("conv_1"),
            1 => json!({"id": "conv_1"}),
            _ => Value::Null,
        }
    });
    maybe_set(
        u,
        hostility,
        &mut request,
        "prompt",
        |u, _| json!({"id": "pmpt_1", "variables": {"x": text(u)}}),
    );
    maybe_set(u, hostility, &mut request, "include", |u, _| {
        match u.int_in_range(0..=3u8).unwrap_or(0) {
            0 => json!(["reasoning.encrypted_content"]),
            1 => json!(["message.output_text.logprobs", "file_search_call.results"]),
            2 => json!([]),
            _ => json!("all"),
        }
    });
    maybe_set(u, hostility, &mut request, "top_logprobs", |u, _| {
        Value::from(u.int_in_range(0..=5u8).unwrap_or(0))
    });
    maybe_set(u, hostility, &mut request, "store", |u, _| {
        Value::Bool(one_in(u, 2))
    });
    maybe_set(u, hostility, &mut request, "background", |_, _| {
        json!(false)
    });
    maybe_set(u, hostility, &mut request, "truncation", |_, _| {
        json!("auto")
    });
    maybe_set(u, hostility, &mut request, "service_tier", |_, _| {
        json!("flex")
    });
    maybe_set(u, hostility, &mut request, "prompt_cache_key", |_, _| {
        json!("k")
    });
    maybe_set(u, hostility, &mut request, "max_tool_calls", |_, _| {
        json!(3)
    });
    (Value::Object(request), paired)
}

/// Sets `key` to what `value` builds one time in three.
fn maybe_set(
    u: &mut Unstructured<'_>,
    hostility: Hostility,
    request: &mut Map<String, Value>,
    key: &str,
    value: fn(&mut Unstructured<'_>, Hostility) -> Value,
) {
    if one_in(u, 3) {
        request.insert(key.into(), value(u, hostility));
    }
}

/// One input item; `ids` are the call ids of the function calls so far, and
/// `paired` notes for each function call output whether it answers one of them.
fn input_item(
    u: &mut Unstructured<'_>,
    hostility: Hostility,
    ids: &mut Vec<String>,
    paired: &mut Vec<bool>,
) -> Value {
    if hostility.strikes(u, 40) {
        return match u.int_in_range(0..=7u8).unwrap_or(0) {
            0 => json!({"type": "item_reference", "id": SECRET}),
            1 => json!({"role": SECRET, "content": SECRET}),
            2 => json!({"type": "message", "content": "x"}),
            3 => json!({"type": "function_call", "name": "f", "arguments": "{}"}),
            4 => {
                json!({"type": "function_call", "call_id": "c", "arguments": {"a": 1}, "name": "f"})
            }
            5 => json!({"type": "function_call_output", "call_id": "c"}),
            6 => json!({"type": 5}),
            _ => Value::from(text(u)),
        };
    }
    match u.int_in_range(0..=13u8).unwrap_or(0) {
        0..=5 => message(u, hostility),
        6..=8 => {
            let call_id = if hostility.strikes(u, 8) {
                tool_id(u)
            } else if one_in(u, 4) {
                // Two calls may share an id: Chat takes it as it comes.
                format!("call_{}", u.int_in_range(0..=2u8).unwrap_or(0))
            } else {
                format!("call_{}", ids.len())
            };
            let mut item = json!({"type": "function_call", "call_id": call_id, "name": name(u)});
            match u.int_in_range(0..=5u8).unwrap_or(0) {
                0..=2 => item["arguments"] = Value::from(json!({"q": text(u)}).to_string()),
                3 => item["arguments"] = Value::from(""),
                4 => item["arguments"] = Value::from(text(u)),
                _ => {}
            }
            if one_in(u, 2) {
                item["id"] = Value::from(format!("fc_{}", ids.len()));
                item["status"] = Value::from("completed");
            }
            if !call_id.is_empty() {
                ids.push(call_id);
            }
            item
        }
        9 | 10 => {
            let earlier = if one_in(u, 5) {
                None
            } else {
                u.choose(ids).ok()
            };
            let call_id = match earlier {
                Some(id) => id.clone(),
                None if hostility.strikes(u, 8) => tool_id(u),
                None => format!("call_x{}", u.int_in_range(0..=2u8).unwrap_or(0)),
            };
            let output = if one_in(u, 2) {
                Value::from(text(u))
            } else {
                let parts: Vec<Value> = (0..u.int_in_range(0..=3u8).unwrap_or(0))
                    .map(|_| match u.int_in_range(0..=4u8).unwrap_or(0) {
                        0..=2 => json!({"type": "input_text", "text": text(u)}),
                        3 => json!({"type": "input_image", "image_url": "https://example.com/a.png"}),
                        _ => json!({"type": "input_file", "file_id": "file-1"}),
                    })
                    .collect();
                Value::Array(parts)
            };
            // An output without a call id is refused: it is no tool message.
            if !call_id.is_empty() {
                paired.push(earlier.is_some());
            }
            json!({"type": "function_call_output", "call_id": call_id, "output": output})
        }
        11 => json!({"type": "reasoning", "id": "rs_1", "summary": [
            {"type": "summary_text", "text": text(u)}
        ], "encrypted_content": "xx"}),
        12 => u
            .choose(&[
                json!({"type": "web_search_call", "id": "ws_1", "status": "completed"}),
                json!({"type": "file_search_call", "id": "fs_1", "queries": [], "status": "completed"}),
                json!({"type": "computer_call", "id": "cu_1", "call_id": "c", "action": {"type": "click"}}),
                json!({"type": "mcp_list_tools", "id": "ml_1", "server_label": "x", "tools": []}),
                json!({"type": "some_future_item"}),
            ])
            .cloned()
            .unwrap_or(Value::Null),
        _ => json!({"type": "custom_tool_call", "call_id": "cc", "name": "g", "input": text(u)}),
    }
}

/// A message of any role, content as a string or parts.
fn message(u: &mut Unstructured<'_>, hostility: Hostility) -> Value {
    let role = if hostility.strikes(u, 32) {
        u.choose(&[json!("tool"), json!(null), json!(5)])
            .cloned()
            .unwrap_or(Value::Null)
    } else {
        Value::from(
            *u.choose(&["user", "user", "assistant", "system", "developer"])
                .unwrap_or(&"user"),
        )
    };
    let user = role == "user";
    let content = if one_in(u, 3) {
        Value::from(text(u))
    } else if hostility.strikes(u, 32) {
        Value::from(5)
    } else {
        let parts: Vec<Value> = (0..u.int_in_range(1..=4u8).unwrap_or(1))
            .map(|_| content_part(u, hostility, user))
            .collect();
        Value::Array(parts)
    };
    let mut item = json!({ "role": role, "content": content });
    if one_in(u, 2) {
        item["type"] = Value::from("message");
    }
    item
}

fn content_part(u: &mut Unstructured<'_>, hostility: Hostility, user: bool) -> Value {
    if hostility.strikes(u, 40) {
        return match u.int_in_range(0..=4u8).unwrap_or(0) {
            0 => json!({"type": SECRET, "text": SECRET}),
            1 => json!({"text": text(u)}),
            2 => json!({"type": "input_text", "text": 5}),
            3 => json!({"type": "input_image", "detail": "auto"}),
            _ => Value::from(text(u)),
        };
    }
    match u.int_in_range(0..=9u8).unwrap_or(0) {
        0..=3 => json!({"type": "input_text", "text": text(u)}),
        4 => json!({"type": "output_text", "text": text(u), "annotations": []}),
        5 => json!({"type": "refusal", "refusal": text(u)}),
        6 | 7 if user => {
            let detail = *u
                .choose(&["auto", "low", "high", "original"])
                .unwrap_or(&"auto");
            if one_in(u, 3) {
                json!({"type": "input_image", "file_id": "file-1", "detail": detail})
            } else {
                json!({"type": "input_image", "image_url": "https://example.com/cat.png", "detail": detail})
            }
        }
        8 => {
            json!({"type": "input_file", "file_data": "data:application/pdf;base64,JVBE", "filename": "a.pdf"})
        }
        _ => json!({"type": "input_text", "text": text(u)}),
    }
}

fn text_config(u: &mut Unstructured<'_>, hostility: Hostility) -> Value {
    if hostility.strikes(u, 8) {
        return u
            .choose(&[
                json!("json"),
                json!({"format": {"type": "yaml"}}),
                json!({"format": {"type": "json_schema"}}),
                json!({"verbosity": 2}),
            ])
            .cloned()
            .unwrap_or(Value::Null);
    }
    let format = match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => json!({"type": "text"}),
        1 => json!({"type": "json_object"}),
        2 => json!({"type": "json_schema", "name": "person", "strict": true,
            "schema": {"type": "object", "properties": {"name": {"type": "string"}}}}),
        _ => Value::Null,
    };
    json!({ "format": format, "verbosity": "low" })
}

fn tools(u: &mut Unstructured<'_>, hostility: Hostility) -> Value {
    if hostility.strikes(u, 32) {
        return json!({});
    }
    let tools: Vec<Value> = (0..u.int_in_range(1..=3u8).unwrap_or(1))
        .map(|_| {
            if hostility.strikes(u, 16) {
                return u
                    .choose(&[
                        json!({"name": "f"}),
                        json!({"type": "function", "parameters": {}}),
                        json!({"type": "function", "name": "a", "parameters": "x"}),
                        json!("tool"),
                    ])
                    .cloned()
                    .unwrap_or(Value::Null);
            }
            match u.int_in_range(0..=11u8).unwrap_or(0) {
                0..=5 => json!({"type": "function", "name": name(u), "description": text(u),
                    "parameters": {"type": "object", "properties": {"q": {"type": "string"}}},
                    "strict": one_in(u, 2)}),
                6 => json!({"type": "function", "name": name(u), "parameters": null, "strict": null}),
                7 => json!({"type": "web_search", "search_context_size": "low"}),
                8 => json!({"type": "file_search", "vector_store_ids": ["vs_1"]}),
                9 => json!({"type": "mcp", "server_label": "x", "server_url": "https://mcp.example.com"}),
                10 => json!({"type": "custom", "name": "grammar"}),
                _ => json!({"type": "code_interpreter", "container": {"type": "auto"}}),
            }
        })
        .collect();
    Value::Array(tools)
}

/// A tool choice, naming one of `names` (the request's tools) or another.
fn tool_choice(u: &mut Unstructured<'_>, hostility: Hostility, names: &[String]) -> Value {
    if hostility.strikes(u, 8) {
        return u
            .choose(&[
                json!({"type": "function"}),
                json!("sometimes"),
                json!({}),
                json!({"type": "allowed_tools", "mode": "none", "tools": []}),
            ])
            .cloned()
            .unwrap_or(Value::Null);
    }
    let pick = |u: &mut Unstructured<'_>| match u.choose(names) {
        Ok(name) if !one_in(u, 4) => name.clone(),
        _ => name(u),
    };
    match u.int_in_range(0..=9u8).unwrap_or(0) {
        0 | 1 => json!("auto"),
        2 => json!("none"),
        3 => json!("required"),
        4 | 5 => json!({"type": "function", "name": pick(u)}),
        6 => json!({"type": "allowed_tools", "mode": "required", "tools": [
            {"type": "function", "name": pick(u)}, {"type": "web_search"}
        ]}),
        7 => json!({"type": "web_search_preview"}),
        8 => json!({"type": "mcp", "server_label": "x"}),
        _ => Value::Null,
    }
}

/// A chat completion with text, a refusal, reasoning and tool calls whose arguments
/// are JSON, empty or missing. Hostile ones have arguments that are not strings,
/// calls without id or name or sharing one, and other fields missing or mistyped.
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
            .map(|n| {
                let arguments = if hostility.strikes(u, 8) {
                    Some(match u.int_in_range(0..=1u8).unwrap_or(0) {
                        0 => Value::from(7),
                        _ => json!({"a": 1}),
                    })
                } else {
                    match u.int_in_range(0..=7u8).unwrap_or(0) {
                        0..=4 => Some(Value::from(
                            json!({"city": text(u), "n": number(u)}).to_string(),
                        )),
                        5 => Some(Value::from("")),
                        6 => Some(Value::from(text(u))),
                        _ => None,
                    }
                };
                let id = if hostility.strikes(u, 8) {
                    tool_id(u)
                } else {
                    format!("call_{n}")
                };
                let mut call = json!({"id": id, "type": "function", "function": {"name": name(u)}});
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
    let choices = if hostility.strikes(u, 32) {
        u.choose(&[json!([]), json!({})])
            .cloned()
            .unwrap_or(Value::Null)
    } else {
        json!([choice])
    };
    json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": UPSTREAM_MODEL,
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
        "resp_0",
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

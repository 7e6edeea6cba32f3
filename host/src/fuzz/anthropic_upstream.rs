//! What an Anthropic upstream answers, translated for an OpenAI client
//! (`provider::anthropic_wire`): streams (`StreamTranslator`), whole messages
//! (`from_messages_response`) and error bodies (`error_message`).
//!
//! Properties of a stream: the translation does not depend on how the bytes were cut
//! (whole, one byte at a time, in pieces); every frame sent on is
//! `data: <compact JSON>\n\n` (or the final `[DONE]`) with the client's model, the
//! chunk id and the `created` time; the stream counts as having content only after a
//! frame carried some; it finishes only after `message_stop`. Of a message: a chat
//! completion of the client's model whose tool arguments are JSON and whose total is
//! the sum of its token counts. Of an error body: a short message without control
//! characters (it reaches logs and clients).

use super::{CI_TIME, pieces};
use crate::provider::anthropic_wire::{
    StreamTranslator, TranslateError, error_message, from_messages_response,
};
use arbitrary::Unstructured;
use serde_json::{Value, json};

const MODEL: &str = "client-model";
const CREATED: u64 = 1_700_000_000;

#[test]
fn anthropic_stream() {
    bolero::check!(name = "anthropic_stream")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            let include_usage = bytes.len().is_multiple_of(2);
            check_stream(bytes, include_usage);
            let mut u = Unstructured::new(bytes);
            check_stream(shaped(&mut u).as_bytes(), include_usage);
        });
}

#[test]
fn anthropic_response() {
    bolero::check!(name = "anthropic_response")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            check_error_body(bytes);
            if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
                check_message(&value);
            }
            let mut u = Unstructured::new(bytes);
            let message = shaped_message(&mut u);
            check_message(&message);
            check_error_body(
                json!({"error": {"type": text(&mut u), "message": text(&mut u)}})
                    .to_string()
                    .as_bytes(),
            );
        });
}

fn check_error_body(bytes: &[u8]) {
    if let Some(message) = error_message(bytes) {
        assert!(message.chars().count() <= 300, "{message}");
        assert!(!message.chars().any(char::is_control), "{message:?}");
    }
}

fn check_message(anthropic: &Value) {
    let Ok(chat) = from_messages_response(anthropic, MODEL, CREATED) else {
        return;
    };
    assert_eq!(chat["object"], "chat.completion");
    assert_eq!(chat["model"], MODEL);
    assert!(
        chat["id"]
            .as_str()
            .is_some_and(|id| id.starts_with("chatcmpl-"))
    );
    let message = &chat["choices"][0]["message"];
    assert!(message["content"].is_string() || message["content"].is_null());
    for call in message["tool_calls"].as_array().into_iter().flatten() {
        let arguments = call["function"]["arguments"].as_str().expect("arguments");
        assert!(
            serde_json::from_str::<Value>(arguments).is_ok(),
            "{arguments}"
        );
    }
    let usage = &chat["usage"];
    let (prompt, completion) = (
        usage["prompt_tokens"].as_u64(),
        usage["completion_tokens"].as_u64(),
    );
    assert_eq!(
        usage["total_tokens"].as_u64(),
        prompt.zip(completion).map(|(p, c)| p + c)
    );
}

/// An Anthropic message with blocks of every kind, fields missing or mistyped.
fn shaped_message(u: &mut Unstructured<'_>) -> Value {
    let mut blocks = Vec::new();
    for _ in 0..u.int_in_range(0..=4u8).unwrap_or(0) {
        blocks.push(match u.int_in_range(0..=4u8).unwrap_or(0) {
            0 => json!({"type": "text", "text": text(u)}),
            1 => {
                json!({"type": "tool_use", "id": text(u), "name": text(u), "input": {"q": text(u)}})
            }
            2 => json!({"type": "tool_use", "id": text(u)}),
            3 => json!({"type": "thinking", "thinking": text(u)}),
            _ => json!({"type": "text"}),
        });
    }
    let mut message = json!({
        "id": text(u),
        "type": "message",
        "content": blocks,
        "stop_reason": text(u),
        "usage": usage(u),
    });
    if u.ratio(1, 8).unwrap_or(false) {
        message["id"] = index(u);
    }
    message
}

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

fn translate(chunks: &[&[u8]], include_usage: bool) -> Translation {
    let mut t = StreamTranslator::new(MODEL, include_usage, CREATED);
    let mut text = String::new();
    let mut fed = Ok(());
    for chunk in chunks {
        match t.feed(chunk) {
            Ok(more) => text.push_str(&more),
            Err(e) => {
                fed = Err(kind(&e));
                break;
            }
        }
    }
    let finished = fed.is_ok().then(|| t.finish().map_err(|e| kind(&e)));
    Translation {
        // After an error, what was sent before it depends on the cut (the frames of
        // the failing call are dropped): only the error is compared.
        fed: fed.map(|()| text),
        usage: t.usage(),
        saw_content: t.saw_content(),
        finished,
    }
}

fn check_stream(bytes: &[u8], include_usage: bool) {
    let whole = translate(&[bytes], include_usage);
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    let sizes = bytes.get(..8).unwrap_or(bytes);
    for (how, cut) in [
        ("one byte at a time", translate(&singles, include_usage)),
        ("in pieces", translate(&pieces(bytes, sizes), include_usage)),
    ] {
        match (&whole.fed, &cut.fed) {
            // An error ends the stream where it happened; what was counted before
            // it depends on the cut, so only its kind is compared.
            (Err(a), Err(b)) => assert_eq!(a, b, "{how}"),
            _ => assert_eq!(whole, cut, "{how}"),
        }
    }
    let Ok(text) = &whole.fed else { return };
    let frames = frames(text, include_usage);
    let content = frames.iter().any(carries_content);
    assert_eq!(whole.saw_content, content, "saw_content without content");
    if let Some(Ok(end)) = &whole.finished {
        let end_frames = frames_of(end);
        assert_eq!(end_frames.last(), Some(&Value::from("[DONE]")));
        if include_usage {
            let usage = &end_frames[0]["usage"];
            assert_eq!(usage["prompt_tokens"], whole.usage.0);
            assert_eq!(usage["completion_tokens"], whole.usage.1);
        }
    }
}

/// The frames of `text`, each checked: `data: <compact JSON>\n\n`, a chunk of this
/// response, `usage: null` on each when usage was asked for.
fn frames(text: &str, include_usage: bool) -> Vec<Value> {
    let frames = frames_of(text);
    for frame in &frames {
        assert_eq!(frame["object"], "chat.completion.chunk", "{frame}");
        assert_eq!(frame["model"], MODEL);
        assert_eq!(frame["created"], CREATED);
        assert!(
            frame["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("chatcmpl-"))
        );
        assert_eq!(frame["choices"].as_array().map(Vec::len), Some(1));
        if include_usage {
            assert_eq!(frame.get("usage"), Some(&Value::Null));
        }
    }
    frames
}

fn frames_of(text: &str) -> Vec<Value> {
    assert!(text.is_empty() || text.ends_with("\n\n"), "{text:?}");
    text.split_terminator("\n\n")
        .map(|frame| {
            let data = frame.strip_prefix("data: ").expect("a data line");
            if data == "[DONE]" {
                return Value::from("[DONE]");
            }
            let value: Value = serde_json::from_str(data).expect("JSON data");
            assert_eq!(value.to_string(), data, "compact JSON");
            value
        })
        .collect()
}

fn carries_content(frame: &Value) -> bool {
    let delta = &frame["choices"][0]["delta"];
    delta["content"].as_str().is_some_and(|c| !c.is_empty()) || delta.get("tool_calls").is_some()
}

/// An Anthropic stream with hostile details: events in any order, missing or
/// mistyped fields, huge and negative numbers, unknown event types, an `event:`
/// line that disagrees with the data, data that is not JSON, text with line breaks.
fn shaped(u: &mut Unstructured<'_>) -> String {
    let mut out = String::new();
    while !u.is_empty() {
        let data = match u.int_in_range(0..=11u8).unwrap_or(0) {
            0 => json!({"type": "message_start", "message": {
                "id": text(u), "usage": usage(u)}}),
            1 => json!({"type": "content_block_start", "index": index(u),
                "content_block": {"type": "text", "text": text(u)}}),
            2 => json!({"type": "content_block_start", "index": index(u),
                "content_block": {"type": "tool_use", "id": text(u), "name": text(u), "input": {}}}),
            3 | 4 => json!({"type": "content_block_delta", "index": index(u),
                "delta": {"type": "text_delta", "text": text(u)}}),
            5 => json!({"type": "content_block_delta", "index": index(u),
                "delta": {"type": "input_json_delta", "partial_json": text(u)}}),
            6 => json!({"type": "message_delta",
                "delta": {"stop_reason": text(u)}, "usage": usage(u)}),
            7 => json!({"type": "message_stop"}),
            8 => json!({"type": "error", "error": {"type": text(u), "message": text(u)}}),
            9 => json!({"type": "ping"}),
            10 => json!({"type": text(u), "index": index(u), "delta": text(u)}),
            _ => Value::String(text(u)),
        };
        let mut data = data.to_string();
        // Now and then a field is left out or the JSON is cut short.
        if u.ratio(1, 16).unwrap_or(false) {
            let cut = u.int_in_range(0..=data.len()).unwrap_or(0);
            while !data.is_char_boundary(cut.min(data.len())) {
                data.pop();
            }
            data.truncate(cut.min(data.len()));
        }
        if u.ratio(1, 2).unwrap_or(false) {
            let name = data_type(&data).unwrap_or_else(|| text(u));
            out.push_str(&format!("event: {}\n", name.replace(['\n', '\r'], " ")));
        }
        for line in data.split(['\n', '\r']) {
            out.push_str("data: ");
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out
}

fn data_type(data: &str) -> Option<String> {
    let value: Value = serde_json::from_str(data).ok()?;
    value["type"].as_str().map(str::to_owned)
}

fn text(u: &mut Unstructured<'_>) -> String {
    const WORDS: &[&str] = &[
        "",
        "Hello",
        " wörld 🌍",
        "{\"city\": ",
        "\"Paris\"}",
        "a\nb",
        "msg_1",
        "toolu_1",
        "end_turn",
        "tool_use",
        "\u{0}",
        "data: x\n\n",
    ];
    match u.int_in_range(0..=2u8).unwrap_or(0) {
        0 => u.arbitrary::<String>().unwrap_or_default(),
        _ => u.choose(WORDS).map_or("", |w| *w).to_owned(),
    }
}

fn index(u: &mut Unstructured<'_>) -> Value {
    match u.int_in_range(0..=5u8).unwrap_or(0) {
        0..=2 => Value::from(u.int_in_range(0..=3u64).unwrap_or(0)),
        3 => Value::from(u.arbitrary::<u64>().unwrap_or(u64::MAX)),
        4 => Value::from(-1),
        _ => Value::from("0"),
    }
}

fn usage(u: &mut Unstructured<'_>) -> Value {
    let number = |u: &mut Unstructured<'_>| match u.int_in_range(0..=4u8).unwrap_or(0) {
        0 | 1 => Value::from(u.int_in_range(0..=100_000u64).unwrap_or(0)),
        2 => Value::from(u.arbitrary::<u64>().unwrap_or(u64::MAX)),
        3 => Value::from(-5),
        _ => Value::from(1.5),
    };
    json!({
        "input_tokens": number(u),
        "output_tokens": number(u),
        "cache_read_input_tokens": number(u),
        "cache_creation_input_tokens": number(u),
    })
}

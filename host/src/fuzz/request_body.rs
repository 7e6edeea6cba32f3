//! A client's request body (`openai::JsonBody`, `parse_chat`, `parse_embeddings`).
//!
//! Properties: a body is accepted exactly when it is a JSON object to serde_json
//! (so its value tree, which adapters translate from, is never silently empty); each
//! field's raw text is that field's value; replacing the model changes nothing else;
//! what `parse_chat` reads agrees with the body; a refusal is a 400 in the OpenAI
//! shape whose message does not echo the body back.

use super::CI_TIME;
use crate::openai::{ApiError, JsonBody, parse_chat, parse_embeddings};
use arbitrary::Unstructured;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use serde_json::Value;

#[test]
fn request_body() {
    bolero::check!(name = "request_body")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            check_body(bytes, &HeaderMap::new());
            let mut u = Unstructured::new(bytes);
            let headers = headers(&mut u);
            let body = shaped(&mut u);
            check_body(body.as_bytes(), &headers);
        });
}

fn check_body(bytes: &[u8], headers: &HeaderMap) {
    let reference: Option<Value> = serde_json::from_slice(bytes).ok();
    let parsed = JsonBody::parse(Bytes::copy_from_slice(bytes));
    match (&parsed, &reference) {
        (Ok(body), Some(value @ Value::Object(fields))) => {
            assert_eq!(&body.to_value(), value, "the value tree is the body");
            for (key, field) in fields {
                let raw = body.raw(key).expect("every field has its raw text");
                assert_eq!(&serde_json::from_str::<Value>(raw).unwrap(), field, "{key}");
            }
            check_model_replaced(body, value, bytes);
        }
        (Err(_), Some(Value::Object(_))) => panic!("a JSON object was refused"),
        (Ok(_), _) => panic!("accepted what is not a JSON object"),
        (Err(_), _) => {}
    }
    let object = reference.as_ref().and_then(Value::as_object);
    match parse_chat(Bytes::copy_from_slice(bytes), headers) {
        Ok(chat) => {
            let body = object.expect("a chat request is an object");
            assert_eq!(body["model"], chat.model.as_str());
            assert!(!chat.model.is_empty());
            let messages = body["messages"].as_array().expect("messages");
            assert_eq!(chat.messages.len(), messages.len());
            assert!(!messages.is_empty());
            assert_eq!(
                chat.stream,
                body.get("stream").and_then(Value::as_bool).unwrap_or(false)
            );
            let floor = 4u32.saturating_mul(u32::try_from(messages.len()).unwrap_or(u32::MAX));
            assert!(chat.input_tokens >= floor);
            for (name, value) in headers {
                if let (Some(key), Ok(value)) =
                    (name.as_str().strip_prefix("x-signalbox-"), value.to_str())
                {
                    assert!(chat.metadata.contains(&(key.to_owned(), value.to_owned())));
                }
            }
            assert_eq!(chat.route_request("req-1").model(), chat.model);
        }
        Err(e) => check_refusal(&e, bytes),
    }
    match parse_embeddings(Bytes::copy_from_slice(bytes), headers) {
        Ok(embeddings) => {
            let body = object.expect("an embeddings request is an object");
            assert_eq!(body["model"], embeddings.model.as_str());
        }
        Err(e) => check_refusal(&e, bytes),
    }
}

fn check_model_replaced(body: &JsonBody, value: &Value, sent: &[u8]) {
    const MODEL: &str = "gpt-4o \"mini\" \u{1F600}";
    let out = body.with_model(MODEL);
    if value.get("model").is_none() {
        assert_eq!(out, sent, "no model, every byte as sent");
        return;
    }
    let replaced: Value = serde_json::from_slice(&out).expect("still JSON");
    let mut expected = value.clone();
    expected["model"] = Value::from(MODEL);
    assert_eq!(replaced, expected);
    // Asking for log-probabilities adds the field only where the client set none.
    let added: Value =
        serde_json::from_slice(&body.with_model_and(MODEL, "logprobs", "true")).expect("JSON");
    if value.get("logprobs").is_none() {
        expected["logprobs"] = Value::Bool(true);
    }
    assert_eq!(added, expected);
}

/// A refused body: 400, the OpenAI error type, a message that says what is wrong
/// without quoting the body.
fn check_refusal(e: &ApiError, body: &[u8]) {
    assert_eq!(e.status, StatusCode::BAD_REQUEST);
    assert_eq!(e.kind, "invalid_request_error");
    assert!(!e.message.is_empty());
    assert!(e.message.len() < 300, "{}", e.message);
    if body.len() > 64 {
        let echoed = body
            .windows(48)
            .any(|w| std::str::from_utf8(w).is_ok_and(|w| e.message.contains(w)));
        assert!(!echoed, "the body is echoed in {:?}", e.message);
    }
    let rendered: Value = serde_json::from_slice(&e.body()).expect("an OpenAI error body");
    assert_eq!(rendered["error"]["message"], e.message.as_str());
}

/// `x-signalbox-*` routing headers (and one other), with values the input picks.
fn headers(u: &mut Unstructured<'_>) -> HeaderMap {
    const NAMES: &[&str] = &[
        "x-signalbox-tag",
        "x-signalbox-user",
        "x-signalbox-",
        "x-other",
    ];
    let mut headers = HeaderMap::new();
    for _ in 0..u.int_in_range(0..=3u8).unwrap_or(0) {
        let name = HeaderName::from_static(u.choose(NAMES).map_or(NAMES[0], |n| *n));
        let value: Vec<u8> = u.arbitrary().unwrap_or_default();
        if let Ok(value) = HeaderValue::from_bytes(&value) {
            headers.append(name, value);
        }
    }
    headers
}

/// A chat or embeddings request written by hand: the fields the gateway reads, of the
/// right shape or not, repeated, with odd number spellings, deep nesting, and now and
/// then cut short or with a stray byte.
fn shaped(u: &mut Unstructured<'_>) -> String {
    const KEYS: &[&str] = &[
        "model",
        "messages",
        "stream",
        "stream_options",
        "max_tokens",
        "max_completion_tokens",
        "tools",
        "functions",
        "metadata",
        "user",
        "input",
        "seed",
        "temperature",
        "Model",
        "",
    ];
    let mut fields = Vec::new();
    for _ in 0..u.int_in_range(0..=8u8).unwrap_or(0) {
        let key = u.choose(KEYS).map_or("model", |k| *k);
        fields.push(format!("{}:{}", Value::from(key), value_for(u, key)));
    }
    let space = u.choose(&["", " ", "\n\t ", "\r\n"]).map_or("", |s| *s);
    let mut body = format!("{{{space}{}{space}}}", fields.join(&format!(",{space}")));
    if u.ratio(1, 16).unwrap_or(false) {
        let cut = u.int_in_range(0..=body.len()).unwrap_or(0);
        body.truncate(floor_char_boundary(&body, cut));
    }
    if u.ratio(1, 16).unwrap_or(false) {
        let at = floor_char_boundary(&body, u.int_in_range(0..=body.len()).unwrap_or(0));
        body.insert(at, char::from(u.int_in_range(0..=127u8).unwrap_or(0)));
    }
    body
}

fn value_for(u: &mut Unstructured<'_>, key: &str) -> String {
    if u.ratio(1, 4).unwrap_or(false) {
        return scalar(u);
    }
    match key {
        "model" | "Model" | "user" => Value::from(string(u)).to_string(),
        "messages" => {
            let messages: Vec<String> = (0..u.int_in_range(0..=4u8).unwrap_or(1))
                .map(|_| message(u))
                .collect();
            format!("[{}]", messages.join(","))
        }
        "input" => match u.int_in_range(0..=2u8).unwrap_or(0) {
            0 => Value::from(string(u)).to_string(),
            1 => format!("[{},[1,2,3],7]", Value::from(string(u))),
            _ => "[]".to_owned(),
        },
        "stream_options" => format!("{{\"include_usage\":{}}}", scalar(u)),
        "tools" => "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]".to_owned(),
        "metadata" => format!("{{\"Tag\":{},\"n\":1}}", Value::from(string(u))),
        _ => scalar(u),
    }
}

fn message(u: &mut Unstructured<'_>) -> String {
    const ROLES: &[&str] = &["system", "user", "assistant", "tool", "function", "other"];
    let role = u.choose(ROLES).map_or("user", |r| *r);
    let content = match u.int_in_range(0..=3u8).unwrap_or(0) {
        0 => Value::from(string(u)).to_string(),
        1 => format!(
            "[{{\"type\":\"text\",\"text\":{}}},{{\"type\":\"image_url\"}}]",
            Value::from(string(u))
        ),
        2 => scalar(u),
        _ => return format!("{{\"content\":{}}}", Value::from(string(u))),
    };
    format!("{{\"role\":\"{role}\",\"content\":{content}}}")
}

fn scalar(u: &mut Unstructured<'_>) -> String {
    const SPELLINGS: &[&str] = &[
        "true",
        "false",
        "null",
        "0",
        "-0",
        "7",
        "1e3",
        "0.10",
        "-1",
        "4294967296",
        "18446744073709551616",
        "123456789012345678901234567890",
        "1e400",
        "-1e400",
        "1.7976931348623157e309",
        "\"\"",
        "\"\\ud800\"",
        "\"\\u0000\"",
        "{}",
        "[]",
    ];
    match u.int_in_range(0..=5u8).unwrap_or(0) {
        0 => {
            let depth = usize::from(u.int_in_range(100..=140u8).unwrap_or(128));
            format!("{}{}", "[".repeat(depth), "]".repeat(depth))
        }
        1 => Value::from(string(u)).to_string(),
        _ => u.choose(SPELLINGS).map_or("null", |s| *s).to_owned(),
    }
}

fn string(u: &mut Unstructured<'_>) -> String {
    u.arbitrary().unwrap_or_default()
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

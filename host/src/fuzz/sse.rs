//! The SSE parser (`provider::sse`), fed what an upstream sends.
//!
//! Properties: the events equal those of a plain reading of the event-stream rules
//! over the whole input; feeding the same bytes in any pieces (one byte at a time,
//! or sizes the input chooses) gives the same events; no more than
//! `MAX_EVENT_BYTES` is ever held; an event that never ends is refused, not buffered.

use super::{CI_TIME, pieces};
use crate::provider::sse::{self, MAX_EVENT_BYTES, SseError, SseEvent, SseParser};
use arbitrary::Unstructured;

#[test]
fn sse() {
    bolero::check!(name = "sse")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            check_stream(bytes);
            check_stream(&shaped(&mut Unstructured::new(bytes)));
            if bytes.first().is_some_and(|b| b % 32 == 0) {
                check_endless_event(bytes);
            }
        });
}

fn check_stream(bytes: &[u8]) {
    let expected = reference(bytes);
    assert_eq!(feed_all(&[bytes]), expected, "whole input");
    let singles: Vec<&[u8]> = bytes.chunks(1).collect();
    assert_eq!(feed_all(&singles), expected, "one byte at a time");
    let sizes = bytes.get(..8).unwrap_or(bytes);
    assert_eq!(feed_all(&pieces(bytes, sizes)), expected, "in pieces");
    // What the gateway frames for a client reads back as the same data.
    for event in &expected {
        if !event.data.contains(['\n', '\r']) {
            let back = feed_all(&[sse::frame(&event.data).as_bytes()]);
            assert_eq!(back.len(), 1);
            assert_eq!(back[0].data, event.data);
        }
    }
}

fn feed_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        match parser.feed(chunk) {
            Ok(more) => events.extend(more),
            Err(e) => panic!("an input under the size limit was refused: {e}"),
        }
        assert!(parser.pending_bytes() <= MAX_EVENT_BYTES);
    }
    events
}

/// An event that never ends (the input without its line breaks, again and again)
/// is refused once it passes the limit, and its memory is released.
fn check_endless_event(bytes: &[u8]) {
    let mut line: Vec<u8> = Vec::with_capacity(8192);
    while line.len() < 4096 {
        line.extend(
            bytes
                .iter()
                .map(|&b| if b == b'\n' || b == b'\r' { b'x' } else { b }),
        );
    }
    let mut parser = SseParser::new();
    let mut fed = 0;
    let refused = loop {
        match parser.feed(&line) {
            Ok(events) => assert!(events.is_empty()),
            Err(e) => break e,
        }
        fed += line.len();
        assert!(
            fed <= MAX_EVENT_BYTES + line.len(),
            "{fed} bytes held without a refusal"
        );
    };
    assert_eq!(
        refused,
        SseError::EventTooLarge {
            limit: MAX_EVENT_BYTES
        }
    );
    assert_eq!(parser.pending_bytes(), 0);
}

/// The event-stream interpretation rules read plainly over the whole input (with the
/// parser's documented choices: `id` and `retry` ignored, an empty `data` value still
/// an event), to compare the incremental parser with.
fn reference(bytes: &[u8]) -> Vec<SseEvent> {
    let text = String::from_utf8_lossy(bytes);
    let mut text: &str = &text;
    text = text.strip_prefix('\u{FEFF}').unwrap_or(text);
    let mut events = Vec::new();
    let (mut event, mut data, mut has_data) = (None, String::new(), false);
    let mut rest = text;
    // Only complete lines count: the last one, without its terminator, is pending.
    while let Some(end) = rest.find(['\r', '\n']) {
        let line = &rest[..end];
        rest = match rest[end..].strip_prefix("\r\n") {
            Some(after) => after,
            None => &rest[end + 1..],
        };
        if line.is_empty() {
            if has_data {
                events.push(SseEvent {
                    event: event.take(),
                    data: std::mem::take(&mut data),
                });
            }
            event = None;
            has_data = false;
            continue;
        }
        if line.starts_with(':') {
            continue;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => event = (!value.is_empty()).then(|| value.to_owned()),
            "data" => {
                if has_data {
                    data.push('\n');
                }
                data.push_str(value);
                has_data = true;
            }
            _ => {}
        }
    }
    events
}

/// A stream of SSE tokens: fields, comments, every line ending, a byte-order mark,
/// split UTF-8 and invalid bytes, in the order the input picks.
fn shaped(u: &mut Unstructured<'_>) -> Vec<u8> {
    const TOKENS: &[&[u8]] = &[
        b"data:",
        b"data: ",
        b"data",
        b"event:",
        b"event: ",
        b"id: 1",
        b"retry: 10",
        b": keep-alive",
        b":",
        b"\n",
        b"\n",
        b"\r",
        b"\r\n",
        b"\n\n",
        b"\xEF\xBB\xBF",
        b"\xEF\xBB",
        b"\xFF",
        b"\xF0\x9F\x98\x80",
        b"\xC3",
        b" ",
        b"{\"type\":\"ping\"}",
        b"[DONE]",
        b"message_start",
        b"x",
    ];
    let mut out = Vec::new();
    while !u.is_empty() {
        match u.choose(TOKENS) {
            Ok(token) => out.extend_from_slice(token),
            Err(_) => break,
        }
    }
    out
}

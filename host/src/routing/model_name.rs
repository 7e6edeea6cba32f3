//! Responses name the model that served them the same way whatever the upstream says:
//! the served target's configured model name. (Upstreams answer with their own names,
//! which may be internal: llama.cpp reports its model file's path.)
//!
//! Both JSON answers and streams (event by event, see `events`) are rewritten at the
//! byte level, so every other byte passes through untouched.

use crate::usage::Usage;
use bytes::{Bytes, BytesMut};
use memchr::memmem::{self, Finder};
use serde_json::Value;
use std::sync::LazyLock;

/// Built once: a searcher's set-up costs as much as searching one stream event.
static MODEL_KEY: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"model\":"));

/// Sets `model` in a JSON answer and reads its usage, without parsing the whole body:
/// the model value is replaced at the byte level (every other byte is kept), and only
/// the `usage` object is parsed.
pub(crate) fn rewrite_json(body: Bytes, model: &str) -> (Bytes, Option<Usage>) {
    const USAGE: &[u8] = b"\"usage\":";
    let usage = memmem::find(&body, USAGE)
        .and_then(|at| {
            serde_json::Deserializer::from_slice(&body[at + USAGE.len()..])
                .into_iter::<Value>()
                .next()?
                .ok()
        })
        .and_then(|usage| Usage::of(&usage));
    let mut out = BytesMut::with_capacity(body.len() + model.len());
    rewrite_event(&body, escaped(model).as_bytes(), &mut out);
    (out.freeze(), usage)
}

/// `model` as it must appear between the quotes of a JSON string.
pub(super) fn escaped(model: &str) -> String {
    let quoted = serde_json::to_string(model).unwrap_or_else(|_| "\"\"".to_owned());
    quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or("")
        .to_owned()
}

/// Appends one SSE event to `out` with the value of its first `"model":"…"` replaced by
/// `model` (escaped). Inside JSON strings quotes are escaped, so an unescaped
/// `"model":` can only be a key.
pub(super) fn rewrite_event(event: &[u8], model: &[u8], out: &mut BytesMut) {
    let Some(key) = MODEL_KEY.find(event) else {
        out.extend_from_slice(event);
        return;
    };
    let mut start = key + MODEL_KEY.needle().len();
    while event.get(start).is_some_and(|b| b.is_ascii_whitespace()) {
        start += 1;
    }
    if event.get(start) != Some(&b'"') {
        out.extend_from_slice(event);
        return;
    }
    let mut end = start + 1;
    while let Some(&b) = event.get(end) {
        match b {
            b'\\' => end += 2,
            b'"' => break,
            _ => end += 1,
        }
    }
    if end >= event.len() {
        out.extend_from_slice(event);
        return;
    }
    out.extend_from_slice(&event[..=start]);
    out.extend_from_slice(model);
    out.extend_from_slice(&event[end..]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(event: &str, model: &str) -> String {
        let mut out = BytesMut::new();
        rewrite_event(event.as_bytes(), model.as_bytes(), &mut out);
        String::from_utf8(out.to_vec()).unwrap()
    }

    #[test]
    fn only_the_model_value_changes() {
        assert_eq!(
            rewrite(
                "data: {\"id\":\"x\",\"model\":\"/models/a \\\"b\\\".gguf\",\"choices\":[]}\n\n",
                "small"
            ),
            "data: {\"id\":\"x\",\"model\":\"small\",\"choices\":[]}\n\n"
        );
        assert_eq!(rewrite("data: [DONE]\n\n", "small"), "data: [DONE]\n\n");
        // A "model" inside content is escaped and so left alone.
        let content =
            "data: {\"choices\":[{\"delta\":{\"content\":\"\\\"model\\\":\\\"x\\\"\"}}]}\n\n";
        assert_eq!(rewrite(content, "small"), content);
        let (body, usage) = rewrite_json(
            Bytes::from_static(
                b"{\"model\":\"a\",\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4}}",
            ),
            "b",
        );
        assert_eq!(
            serde_json::from_slice::<Value>(&body).unwrap()["model"],
            "b"
        );
        assert_eq!(usage, Some(Usage::new(3, 4)));
    }

    #[test]
    fn usage_is_read_past_details_and_gaps() {
        let usage = |json: &'static str| rewrite_json(Bytes::from_static(json.as_bytes()), "m").1;
        assert_eq!(
            usage(
                r#"{"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cached_tokens":2},"completion_tokens":5}}"#
            ),
            Some(Usage {
                cache_read: 2,
                ..Usage::new(9, 5)
            })
        );
        assert_eq!(
            usage(r#"{"usage":{"prompt_tokens":9}}"#),
            Some(Usage::new(9, 0))
        );
        assert_eq!(usage(r#"{"usage":{"completion_tokens":5}}"#), None);
        assert_eq!(usage(r#"{"usage":null}"#), None);
        assert_eq!(usage(r#"{"choices":[]}"#), None);
    }
}

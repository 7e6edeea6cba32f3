//! Watches a stream's events go by, in the client's protocol (OpenAI chat chunks or
//! Anthropic Messages events): has real content arrived yet, did it end properly, and
//! what usage did it report. It reads each event's `data`; the bytes themselves pass
//! through untouched.

use crate::protocol::Protocol;
use crate::provider::sse::EventFields;
use crate::usage::Usage;
use memchr::memmem::Finder;
use serde_json::Value;
use std::sync::LazyLock;

// Built once: a searcher's set-up costs as much as searching one chunk.
static USAGE: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"usage\""));
static ERROR: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"error\""));
// Most chunks carry `"finish_reason":null`; only a reason given as a string matters.
static FINISH: LazyLock<Finder<'static>> = LazyLock::new(|| Finder::new(b"\"finish_reason\":\""));

#[derive(Debug, Default)]
pub(crate) struct StreamScanner {
    /// Whose events these are.
    pub protocol: Protocol,
    /// A chunk with content, a tool call or a finish reason has been seen.
    pub content: bool,
    /// The stream's end has been seen (`data: [DONE]`, `message_stop`).
    pub done: bool,
    /// An in-stream `{"error": …}` event.
    pub error: Option<String>,
    /// An event whose data is not a JSON object: the stream is broken (an HTML page,
    /// a proxy's message), whatever came before.
    pub invalid: Option<String>,
    /// Usage reported by the upstream.
    pub usage: Option<Usage>,
    /// Content chunks, an estimate of output tokens when no usage is reported.
    pub chunks: u32,
    /// The finish reasons the stream's choices ended with, in the order they came
    /// (for telemetry's `gen_ai.response.finish_reasons`).
    pub finish_reasons: Vec<String>,
    /// The last `sequence_number` of a Responses stream, which an error event the
    /// gateway adds continues.
    pub sequence: Option<u64>,
}

impl StreamScanner {
    /// A scanner of a stream in `protocol`.
    pub fn new(protocol: Protocol) -> Self {
        StreamScanner {
            protocol,
            ..StreamScanner::default()
        }
    }

    /// Reads one complete event.
    pub fn scan(&mut self, event: &EventFields<'_>) {
        let Some(data) = event.data.as_deref() else {
            return;
        };
        let data = data.trim_ascii();
        match self.protocol {
            Protocol::Chat => {}
            Protocol::Messages => return self.scan_messages(event.event, data),
            Protocol::Responses => return self.scan_responses(data),
        }
        if data == b"[DONE]" {
            self.done = true;
            return;
        }
        // Every chunk is a JSON object. Once content has been seen only usage and
        // errors matter, so the plain content chunks that make up nearly all of a
        // stream are checked by their first byte, not parsed.
        if data.first() != Some(&b'{') {
            self.invalid = Some(not_json(data));
            return;
        }
        if self.content && USAGE.find(data).is_none() && ERROR.find(data).is_none() {
            self.chunks = self.chunks.saturating_add(1);
            // The chunk that ends a choice is read for its reason, nothing else.
            if FINISH.find(data).is_some()
                && let Ok(chunk) = serde_json::from_slice::<Value>(data)
            {
                self.note_finish_reasons(&chunk);
            }
            return;
        }
        let Ok(chunk) = serde_json::from_slice::<Value>(data) else {
            self.invalid = Some(not_json(data));
            return;
        };
        if let Some(error) = chunk.get("error") {
            let message = error
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("upstream error");
            self.error = Some(message.to_owned());
            return;
        }
        if let Some(usage) = chunk.get("usage").and_then(Usage::of) {
            self.usage = Some(usage);
        }
        self.note_finish_reasons(&chunk);
        let Some(choice) = chunk.get("choices").and_then(|c| c.get(0)) else {
            return;
        };
        let delta = choice.get("delta");
        let has_text = delta
            .and_then(|d| d.get("content"))
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty());
        let has_call = delta.is_some_and(|d| {
            d.get("tool_calls").is_some_and(|t| !t.is_null())
                || d.get("function_call").is_some_and(|t| !t.is_null())
                || d.get("refusal")
                    .and_then(Value::as_str)
                    .is_some_and(|s| !s.is_empty())
        });
        if has_text || has_call {
            self.content = true;
            self.chunks = self.chunks.saturating_add(1);
        }
        // An empty answer is still an answer: a finish reason commits too.
        if choice.get("finish_reason").is_some_and(|f| !f.is_null()) {
            self.content = true;
        }
    }
}

impl StreamScanner {
    /// Reads one event of a Messages stream: content is any block that is not empty
    /// text (a thinking block too: once shown, it cannot be taken back), the end is
    /// `message_stop`, and usage comes from `message_start` and, growing, from each
    /// `message_delta`.
    fn scan_messages(&mut self, name: Option<&[u8]>, data: &[u8]) {
        if data.first() != Some(&b'{') {
            self.invalid = Some(not_json(data));
            return;
        }
        // Nearly all of a stream is deltas: once content has been seen they are
        // counted, not parsed.
        if self.content && name == Some(b"content_block_delta") {
            self.chunks = self.chunks.saturating_add(1);
            return;
        }
        let Ok(event) = serde_json::from_slice::<Value>(data) else {
            self.invalid = Some(not_json(data));
            return;
        };
        let field = |v: Option<&Value>, key: &str| {
            v.and_then(|v| v.get(key))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        match event.get("type").and_then(Value::as_str) {
            Some("message_start") => {
                if let Some(usage) = event.get("message").and_then(|m| m.get("usage")) {
                    self.usage = Usage::of(usage);
                }
            }
            Some("content_block_start") => {
                let block = event.get("content_block");
                self.content |= match field(block, "type").as_deref() {
                    Some("text") => field(block, "text").is_some_and(|t| !t.is_empty()),
                    Some(_) => true,
                    None => false,
                };
            }
            Some("content_block_delta") => {
                let delta = event.get("delta");
                let empty_text = field(delta, "type").as_deref() == Some("text_delta")
                    && field(delta, "text").is_none_or(|t| t.is_empty());
                if !empty_text {
                    self.content = true;
                    self.chunks = self.chunks.saturating_add(1);
                }
            }
            Some("message_delta") => {
                if let Some(delta) = event.get("usage") {
                    self.usage.get_or_insert_default().update(delta);
                }
                if let Some(reason) = field(event.get("delta"), "stop_reason") {
                    self.finish_reasons.push(reason);
                }
                // An empty answer is still an answer.
                self.content = true;
            }
            Some("message_stop") => self.done = true,
            Some("error") => {
                self.error = Some(
                    field(event.get("error"), "message")
                        .unwrap_or_else(|| "upstream error".to_owned()),
                );
            }
            _ => {}
        }
    }

    /// Reads one event of a Responses stream: content is a text, refusal or
    /// function-call delta or a function call's item; the end is `response.completed`
    /// or `response.incomplete`, whose response carries the usage.
    fn scan_responses(&mut self, data: &[u8]) {
        if data.first() != Some(&b'{') {
            self.invalid = Some(not_json(data));
            return;
        }
        let Ok(event) = serde_json::from_slice::<Value>(data) else {
            self.invalid = Some(not_json(data));
            return;
        };
        if let Some(n) = event.get("sequence_number").and_then(Value::as_u64) {
            self.sequence = Some(n);
        }
        let kind = event
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default();
        match kind {
            "response.output_text.delta"
            | "response.refusal.delta"
            | "response.function_call_arguments.delta" => {
                self.content = true;
                self.chunks = self.chunks.saturating_add(1);
            }
            "response.output_item.added" => {
                let item = event.get("item").and_then(|i| i.get("type"));
                if item.and_then(Value::as_str) == Some("function_call") {
                    self.content = true;
                }
            }
            "response.completed" | "response.incomplete" => {
                let response = event.get("response");
                if let Some(usage) = response.and_then(|r| r.get("usage")).and_then(Usage::of) {
                    self.usage = Some(usage);
                }
                if let Some(status) = response
                    .and_then(|r| r.get("status"))
                    .and_then(Value::as_str)
                {
                    self.finish_reasons.push(status.to_owned());
                }
                self.content = true;
                self.done = true;
            }
            "response.failed" | "error" => {
                let error = event
                    .get("response")
                    .and_then(|r| r.get("error"))
                    .unwrap_or(&event);
                self.error = Some(
                    error
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or("upstream error")
                        .to_owned(),
                );
            }
            _ => {}
        }
    }

    fn note_finish_reasons(&mut self, chunk: &Value) {
        let choices = chunk.get("choices").and_then(Value::as_array);
        for choice in choices.into_iter().flatten() {
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reasons.push(reason.to_owned());
            }
        }
    }
}

/// Why an event is refused. What it held is not quoted: the message reaches the client
/// and the logs, and an upstream's page may echo what it was sent, keys included.
fn not_json(data: &[u8]) -> String {
    format!(
        "the upstream sent an event that is not a JSON chunk ({} bytes)",
        data.len()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Scans every complete event of `bytes`.
    fn scan_all(scanner: &mut StreamScanner, bytes: &[u8]) {
        let mut framer = crate::provider::sse::EventFramer::default();
        framer.push(bytes);
        while let Some(event) = framer.next_event().unwrap() {
            scanner.scan(&event.fields());
        }
    }

    #[test]
    fn role_only_chunks_are_not_content() {
        let mut s = StreamScanner::default();
        scan_all(&mut s, b"data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":null}}]}\n\n");
        assert!(!s.content);
        scan_all(&mut s, b"data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":1}}\n\ndata: [DONE]\n\n");
        assert!(s.content && s.done);
        assert_eq!(s.usage, Some(Usage::new(5, 1)));
        assert_eq!(s.chunks, 1);
    }

    #[test]
    fn finish_reasons_are_collected_before_and_after_content() {
        let mut s = StreamScanner::default();
        scan_all(
            &mut s,
            b"data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"length\"}]}\n\n",
        );
        scan_all(&mut s, b"data: {\"choices\":[{\"index\":1,\"delta\":{\"content\":\"x\"},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"index\":1,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n");
        assert_eq!(s.finish_reasons, ["length", "stop"]);
    }

    #[test]
    fn an_event_that_is_not_json_breaks_the_stream_before_and_after_content() {
        let mut s = StreamScanner::default();
        scan_all(&mut s, b"data: <html>Bearer sk-secret</html>\n\n");
        let why = s.invalid.unwrap();
        assert!(
            why.contains("not a JSON chunk") && !why.contains("sk-secret"),
            "{why}"
        );
        let mut s = StreamScanner::default();
        scan_all(
            &mut s,
            b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
        );
        assert!(s.invalid.is_none());
        scan_all(&mut s, b"data: oops\n\n");
        assert!(s.invalid.is_some());
        let mut s = StreamScanner::default();
        scan_all(&mut s, b"data: {\"choices\": [\n\n");
        assert!(s.invalid.is_some(), "a chunk that does not parse");
    }

    #[test]
    fn messages_streams_are_read_for_content_end_and_usage() {
        let mut s = StreamScanner::new(Protocol::Messages);
        scan_all(&mut s, b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"usage\":{\"input_tokens\":7,\"cache_read_input_tokens\":100,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\nevent: ping\ndata: {\"type\":\"ping\"}\n\n");
        assert!(!s.content);
        assert_eq!(
            s.usage.map(|u| (u.input, u.output, u.cache_read)),
            Some((107, 1, 100))
        );
        scan_all(&mut s, b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi\"}}\n\nevent: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\" there\"}}\n\n");
        assert!(s.content && !s.done);
        assert_eq!(s.chunks, 2);
        scan_all(&mut s, b"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":12}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n");
        assert!(s.done);
        assert_eq!(s.usage.map(|u| u.tokens()), Some((107, 12)));
        assert_eq!(s.finish_reasons, ["end_turn"]);

        let mut s = StreamScanner::new(Protocol::Messages);
        scan_all(&mut s, b"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}\n\n");
        assert!(s.content, "a thinking block commits the stream");
        let mut s = StreamScanner::new(Protocol::Messages);
        scan_all(&mut s, b"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n\n");
        assert_eq!(s.error.as_deref(), Some("Overloaded"));
        let mut s = StreamScanner::new(Protocol::Messages);
        scan_all(&mut s, b"event: message_start\ndata: <html>\n\n");
        assert!(s.invalid.is_some());
    }

    #[test]
    fn an_error_event_is_read_even_after_content() {
        let mut s = StreamScanner::default();
        scan_all(&mut s, b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\ndata: {\"error\":{\"message\":\"overloaded\"}}\n\n");
        assert_eq!(s.error.as_deref(), Some("overloaded"));
    }
}

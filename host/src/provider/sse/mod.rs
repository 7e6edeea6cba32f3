//! Server-Sent Events framing: an incremental parser for upstream streams and a
//! formatter for frames sent to clients.
//!
//! The parser follows the WHATWG event-stream interpretation rules, except that
//! `id` and `retry` are treated like any other unknown field: the gateway relays
//! single responses, so reconnection state is of no use to it.

mod framer;

pub use framer::{EventFields, EventFramer, RawEvent};
use thiserror::Error;

/// Largest number of bytes a single not-yet-dispatched event may buffer.
///
/// Upstream data is untrusted; without a bound a stream that never sends a blank
/// line would grow the buffer until the process runs out of memory.
pub const MAX_EVENT_BYTES: usize = 1 << 20;

/// One SSE event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field of the event; `None` when absent or empty (which the
    /// spec treats as the default type, `message`).
    pub event: Option<String>,
    /// The values of the event's `data:` lines, joined with `\n`.
    pub data: String,
}

/// Why an SSE stream could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SseError {
    /// A single event grew past [`MAX_EVENT_BYTES`] before it was complete.
    #[error("SSE event exceeds {limit} bytes")]
    EventTooLarge {
        /// The limit that was exceeded, in bytes.
        limit: usize,
    },
}

/// Incremental SSE parser: feed arbitrary byte chunks (split anywhere, even in
/// the middle of a UTF-8 sequence or a line) and get back complete events.
///
/// Events are cut by [`EventFramer`] and decoded only once complete, so a
/// multi-byte character split across chunks is decoded correctly. Invalid UTF-8
/// is replaced with U+FFFD, as the spec requires.
#[derive(Debug, Default)]
pub struct SseParser {
    framer: EventFramer,
}

impl SseParser {
    /// Creates a parser positioned at the start of a stream.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next chunk of the stream and returns the events it completed,
    /// in order (possibly none).
    ///
    /// Returns [`SseError::EventTooLarge`] once a pending event exceeds
    /// [`MAX_EVENT_BYTES`]; the parser then drops its buffers and keeps
    /// returning that error, and events completed earlier in the same chunk are
    /// discarded, since the caller is expected to abandon the stream.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.framer.push(bytes);
        let mut events = Vec::new();
        while let Some(raw) = self.framer.next_event()? {
            let fields = raw.fields();
            // An event without a `data` line is not dispatched.
            if let Some(data) = fields.data {
                events.push(SseEvent {
                    event: fields
                        .event
                        .map(|e| String::from_utf8_lossy(e).into_owned()),
                    data: String::from_utf8_lossy(&data).into_owned(),
                });
            }
        }
        Ok(events)
    }

    /// Number of bytes buffered that do not yet form a complete event.
    pub fn pending_bytes(&self) -> usize {
        self.framer.pending_bytes()
    }
}

/// Formats `data` as one SSE frame: `data: {data}\n\n`.
///
/// `data` must not contain line breaks (`\n` or `\r`): they would end the
/// `data:` line early and corrupt the frame. Compact JSON from `serde_json`
/// never contains them, since it escapes them inside strings.
pub fn frame(data: &str) -> String {
    format!("data: {data}\n\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: Option<&str>, data: &str) -> SseEvent {
        SseEvent {
            event: event.map(str::to_owned),
            data: data.to_owned(),
        }
    }

    fn parse_all(chunks: &[&[u8]]) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        for chunk in chunks {
            events.extend(parser.feed(chunk).unwrap());
        }
        events
    }

    const MULTI: &str = "event: message_start\ndata: {\"a\":1}\n\n\
                         : keep-alive\n\n\
                         event: delta\r\ndata: h\u{e9}llo \u{1F600}\r\n\r\n\
                         data: line one\rdata:line two\r\r\
                         id: 7\nretry: 10\ndata\n\n";

    fn multi_expected() -> Vec<SseEvent> {
        vec![
            ev(Some("message_start"), "{\"a\":1}"),
            ev(Some("delta"), "h\u{e9}llo \u{1F600}"),
            ev(None, "line one\nline two"),
            ev(None, ""),
        ]
    }

    #[test]
    fn parses_multi_event_input_in_one_piece() {
        assert_eq!(parse_all(&[MULTI.as_bytes()]), multi_expected());
    }

    #[test]
    fn every_split_offset_gives_same_events() {
        let bytes = MULTI.as_bytes();
        for split in 0..=bytes.len() {
            let (a, b) = bytes.split_at(split);
            assert_eq!(parse_all(&[a, b]), multi_expected(), "split at {split}");
        }
        // One byte at a time covers every split point at once, including ones
        // inside multi-byte characters and between `\r` and `\n`.
        let singles: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(parse_all(&singles), multi_expected());
    }

    #[test]
    fn crlf_line_endings() {
        let input = b"event: a\r\ndata: 1\r\ndata: 2\r\n\r\nevent: b\r\ndata: 3\r\n\r\n";
        assert_eq!(
            parse_all(&[input]),
            vec![ev(Some("a"), "1\n2"), ev(Some("b"), "3")]
        );
    }

    #[test]
    fn comments_and_unknown_fields_are_ignored() {
        let input = b": comment\ndata: x\n:another\nfoo: bar\n\n: only a comment\n\n";
        assert_eq!(parse_all(&[input]), vec![ev(None, "x")]);
    }

    #[test]
    fn multi_line_data_and_space_handling() {
        let input = b"data:no space\ndata:  two spaces\ndata: \n\n";
        assert_eq!(
            parse_all(&[input]),
            vec![ev(None, "no space\n two spaces\n")]
        );
    }

    #[test]
    fn event_without_data_is_not_dispatched_and_type_resets() {
        let input = b"event: lonely\n\ndata: next\n\n";
        assert_eq!(parse_all(&[input]), vec![ev(None, "next")]);
    }

    #[test]
    fn incomplete_event_stays_pending() {
        let mut parser = SseParser::new();
        assert!(parser.feed(b"data: abc\ndata: de").unwrap().is_empty());
        assert_eq!(parser.pending_bytes(), 18);
        assert_eq!(parser.feed(b"f\n\n").unwrap(), vec![ev(None, "abc\ndef")]);
        assert_eq!(parser.pending_bytes(), 0);
    }

    #[test]
    fn leading_bom_is_stripped() {
        assert_eq!(
            parse_all(&[b"\xEF\xBB", b"\xBFdata: x\n\n"]),
            vec![ev(None, "x")]
        );
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(parse_all(&[b"data: \xFF\n\n"]), vec![ev(None, "\u{FFFD}")]);
    }

    #[test]
    fn oversize_event_is_an_error() {
        let mut parser = SseParser::new();
        let chunk = vec![b'a'; 64 * 1024];
        assert!(parser.feed(b"data: ").unwrap().is_empty());
        let mut result = Ok(Vec::new());
        for _ in 0..=(MAX_EVENT_BYTES / chunk.len()) {
            result = parser.feed(&chunk);
            if result.is_err() {
                break;
            }
        }
        assert_eq!(
            result,
            Err(SseError::EventTooLarge {
                limit: MAX_EVENT_BYTES
            })
        );
        assert_eq!(parser.pending_bytes(), 0);
        // The stream position is lost, so the parser stays failed.
        assert!(parser.feed(b"\n\ndata: x\n\n").is_err());
    }

    #[test]
    fn many_small_data_lines_count_towards_the_limit() {
        let mut parser = SseParser::new();
        let line = "data: 0123456789abcdef\n".repeat(1024);
        let mut failed = false;
        for _ in 0..100 {
            if parser.feed(line.as_bytes()).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed);
    }

    #[test]
    fn event_just_under_limit_is_fine() {
        let mut parser = SseParser::new();
        let data = "a".repeat(MAX_EVENT_BYTES - 10);
        let input = format!("data: {data}\n\n");
        let events = parser.feed(input.as_bytes()).unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].data.len(), MAX_EVENT_BYTES - 10);
    }

    #[test]
    fn frame_formats_data_line() {
        assert_eq!(frame("{\"a\":1}"), "data: {\"a\":1}\n\n");
        assert_eq!(
            parse_all(&[frame("[DONE]").as_bytes()]),
            vec![ev(None, "[DONE]")]
        );
    }
}

//! An SSE stream cut into its events without decoding them, and one event's fields
//! read where they lie. The relay passes each event on whole and looks only at its
//! `data`; [`super::SseParser`] builds owned events from the same two steps, so the
//! framing rules live here once.
//!
//! Lines end in `\r\n`, `\n` or `\r` (WHATWG event-stream rules); an event ends with
//! an empty line.

use super::{MAX_EVENT_BYTES, SseError};
use bytes::BytesMut;
use std::borrow::Cow;

/// Where the framer stands in the current line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Position {
    /// At the start of a line: a line terminator here ends the event.
    #[default]
    LineStart,
    /// Inside a line with content.
    InLine,
    /// Just after a `\r` that ended a line: a `\n` here belongs to it.
    AfterCr,
}

/// Cuts a byte stream, fed in chunks split anywhere, into complete events: each one
/// the exact bytes of the event, its closing empty line included. At most
/// [`MAX_EVENT_BYTES`] of an unfinished event are held.
#[derive(Debug, Default)]
pub struct EventFramer {
    pending: BytesMut,
    /// How much of `pending` has been searched for the end of its first event, and
    /// where that search stood: each byte is looked at once, however the stream is cut.
    searched: usize,
    position: Position,
    /// Bytes at the start of the event being searched that are not part of it (see
    /// [`RawEvent`]); `None` until they are known.
    skip: Option<usize>,
    /// An event has been cut: only the first may start with a byte-order mark.
    started: bool,
    /// The last event ended with a `\r`: a `\n` opening the next belongs to it.
    after_cr: bool,
    failed: bool,
}

/// One complete event as it came, its closing empty line included.
#[derive(Debug)]
pub struct RawEvent {
    /// The event's bytes, untouched.
    pub bytes: BytesMut,
    /// Leading bytes that are not the event's: the byte-order mark opening a stream,
    /// or the `\n` of a `\r\n` whose `\r` ended the event before.
    skip: usize,
}

impl RawEvent {
    /// The event's fields, read in place.
    pub fn fields(&self) -> EventFields<'_> {
        fields(&self.bytes[self.skip..])
    }
}

const BOM: &[u8] = "\u{FEFF}".as_bytes();

impl EventFramer {
    /// Adds the stream's next bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if !self.failed {
            self.pending.extend_from_slice(bytes);
        }
    }

    /// The next complete event, if the bytes pushed so far hold one. An unfinished
    /// event over [`MAX_EVENT_BYTES`] is an error, and so is every call after it: the
    /// stream's framing is lost.
    pub fn next_event(&mut self) -> Result<Option<RawEvent>, SseError> {
        if self.failed {
            return Err(TOO_LARGE);
        }
        match self.event_end() {
            Some((end, after_cr)) => {
                let skip = self.skip.take().unwrap_or(0);
                self.searched = 0;
                self.position = Position::LineStart;
                self.started = true;
                self.after_cr = after_cr;
                Ok(Some(RawEvent {
                    bytes: self.pending.split_to(end),
                    skip,
                }))
            }
            None if self.pending.len() > MAX_EVENT_BYTES => {
                self.failed = true;
                self.pending = BytesMut::new();
                Err(TOO_LARGE)
            }
            None => Ok(None),
        }
    }

    /// The bytes of an unfinished event, taken (at the end of the stream).
    pub fn take_rest(&mut self) -> BytesMut {
        self.searched = 0;
        self.position = Position::LineStart;
        self.skip = None;
        self.pending.split()
    }

    /// Bytes held that do not yet form a complete event.
    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// How many leading bytes of `buf` are not the event's (see [`RawEvent::skip`]),
    /// or `None` while too few bytes have come to tell.
    fn leading(&self, buf: &[u8]) -> Option<usize> {
        if !self.started {
            if buf.len() < BOM.len() && BOM.starts_with(buf) {
                return None;
            }
            return Some(if buf.starts_with(BOM) { BOM.len() } else { 0 });
        }
        if self.after_cr {
            return Some(match buf.first()? {
                b'\n' => 1,
                _ => 0,
            });
        }
        Some(0)
    }

    /// The end (exclusive) of the first event in `pending`, continuing the search
    /// where the last one stopped, and whether it ended with a `\r`.
    fn event_end(&mut self) -> Option<(usize, bool)> {
        let buf = &self.pending[..];
        if self.skip.is_none() {
            let skip = self.leading(buf)?;
            self.skip = Some(skip);
            self.searched = skip;
        }
        let mut at = self.searched;
        while let Some(found) = memchr::memchr2(b'\n', b'\r', &buf[at..]) {
            let p = at + found;
            if found > 0 {
                self.position = Position::InLine;
            }
            match (self.position, buf[p]) {
                (Position::AfterCr, b'\n') => self.position = Position::LineStart,
                (Position::InLine, b'\n') => self.position = Position::LineStart,
                (Position::InLine, _) => self.position = Position::AfterCr,
                (Position::LineStart, b'\n') => return Some((p + 1, false)),
                // An empty line ended by `\r`: the event ends here, with the `\n` that
                // may follow; if that byte has not come yet, the next event skips it.
                (Position::LineStart | Position::AfterCr, _) => {
                    return Some(match buf.get(p + 1) {
                        Some(b'\n') => (p + 2, false),
                        Some(_) => (p + 1, false),
                        None => (p + 1, true),
                    });
                }
            }
            at = p + 1;
        }
        if at < buf.len() {
            self.position = Position::InLine;
        }
        self.searched = buf.len();
        None
    }
}

const TOO_LARGE: SseError = SseError::EventTooLarge {
    limit: MAX_EVENT_BYTES,
};

/// The fields of one complete event, read in place.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EventFields<'a> {
    /// The last `event:` value (empty counts as none).
    pub event: Option<&'a [u8]>,
    /// The `data:` values joined with `\n`; `None` when the event has no `data` line
    /// (such an event is not dispatched). Borrowed unless there are several.
    pub data: Option<Cow<'a, [u8]>>,
}

/// Reads the fields of `event`, the bytes of one event as [`EventFramer`] cuts them.
/// Comments and other fields (`id`, `retry`) are skipped.
fn fields(event: &[u8]) -> EventFields<'_> {
    let mut out = EventFields::default();
    let mut rest = event;
    while !rest.is_empty() {
        let (line, after) = match memchr::memchr2(b'\n', b'\r', rest) {
            Some(end) => {
                let terminator = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                (&rest[..end], &rest[end + terminator..])
            }
            None => (rest, &rest[rest.len()..]),
        };
        rest = after;
        if line.is_empty() {
            break;
        }
        if line[0] == b':' {
            continue;
        }
        let (field, value) = match memchr::memchr(b':', line) {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &line[line.len()..]),
        };
        match field {
            b"event" => out.event = (!value.is_empty()).then_some(value),
            b"data" => {
                out.data = Some(match out.data.take() {
                    None => Cow::Borrowed(value),
                    Some(joined) => {
                        let mut joined = joined.into_owned();
                        joined.push(b'\n');
                        joined.extend_from_slice(value);
                        Cow::Owned(joined)
                    }
                });
            }
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The events cut from `chunks` (their bytes, and their data as text) and what is
    /// left over.
    fn frame_all(chunks: &[&[u8]]) -> (Vec<Vec<u8>>, Vec<Option<String>>, Vec<u8>) {
        let mut framer = EventFramer::default();
        let (mut events, mut data) = (Vec::new(), Vec::new());
        for chunk in chunks {
            framer.push(chunk);
            while let Some(event) = framer.next_event().unwrap() {
                let fields = event.fields();
                data.push(
                    fields
                        .data
                        .map(|d| String::from_utf8_lossy(&d).into_owned()),
                );
                events.push(event.bytes.to_vec());
            }
        }
        (events, data, framer.take_rest().to_vec())
    }

    #[test]
    fn every_line_ending_closes_an_event_and_bytes_are_kept() {
        let stream: &[u8] =
            b"data: a\n\ndata: b\r\n\r\ndata: c\r\rdata: d\n\r\nevent: e\r\ndata: f\r\n\npartial";
        let want: Vec<&[u8]> = vec![
            b"data: a\n\n",
            b"data: b\r\n\r\n",
            b"data: c\r\r",
            b"data: d\n\r\n",
            b"event: e\r\ndata: f\r\n\n",
        ];
        let data = ["a", "b", "c", "d", "f"]
            .map(|d| Some(d.to_owned()))
            .to_vec();
        let (events, read, rest) = frame_all(&[stream]);
        assert_eq!(events, want);
        assert_eq!(read, data);
        assert_eq!(rest, b"partial");
        // Cut anywhere, byte by byte included, the events say the same and every byte
        // comes out once, in order (a `\r\n` cut in two may end up split between two
        // events).
        let mut cuts: Vec<Vec<&[u8]>> = (0..=stream.len())
            .map(|cut| {
                let (a, b) = stream.split_at(cut);
                vec![a, b]
            })
            .collect();
        cuts.push(stream.chunks(1).collect());
        for chunks in cuts {
            let (events, read, rest) = frame_all(&chunks);
            assert_eq!(read, data, "{chunks:?}");
            assert_eq!([events.concat(), rest].concat(), stream, "{chunks:?}");
        }
    }

    #[test]
    fn an_empty_line_ended_by_a_last_cr_ends_the_event_at_once() {
        let (events, read, _) = frame_all(&[b"data: x\r\r"]);
        assert_eq!(events, [b"data: x\r\r"]);
        assert_eq!(read, [Some("x".to_owned())]);
        // The `\n` that follows belongs to that `\r`, not to an empty line.
        let (_, read, _) = frame_all(&[b"data: x\r\r", b"\ndata: y\n\n"]);
        assert_eq!(read, [Some("x".to_owned()), Some("y".to_owned())]);
    }

    #[test]
    fn an_unfinished_event_is_bounded() {
        let mut framer = EventFramer::default();
        framer.push(b"data: ");
        let chunk = vec![b'a'; 64 * 1024];
        let mut result = Ok(None);
        for _ in 0..=(MAX_EVENT_BYTES / chunk.len()) {
            framer.push(&chunk);
            result = framer.next_event();
            if result.is_err() {
                break;
            }
        }
        assert!(result.is_err());
        assert_eq!(framer.pending_bytes(), 0);
        framer.push(b"\n\ndata: x\n\n");
        assert!(framer.next_event().is_err(), "the framing is lost for good");
    }

    #[test]
    fn only_the_first_event_may_start_with_a_byte_order_mark() {
        let mut framer = EventFramer::default();
        framer.push("\u{FEFF}data: a\n\n\u{FEFF}data: b\n\n".as_bytes());
        let first = framer.next_event().unwrap().unwrap();
        assert_eq!(first.fields().data.as_deref(), Some(&b"a"[..]));
        let second = framer.next_event().unwrap().unwrap();
        assert_eq!(second.fields().data, None);
    }

    #[test]
    fn an_empty_line_right_after_the_byte_order_mark_ends_an_empty_event() {
        let stream = "\u{FEFF}\ndata: x\n\n".as_bytes();
        let want: Vec<&[u8]> = vec!["\u{FEFF}\n".as_bytes(), b"data: x\n\n"];
        assert_eq!(frame_all(&[stream]).0, want);
        let singles: Vec<&[u8]> = stream.chunks(1).collect();
        let (events, read, _) = frame_all(&singles);
        assert_eq!(events, want);
        assert_eq!(read, [None, Some("x".to_owned())]);
    }

    #[test]
    fn fields_are_read_in_place() {
        let f = fields(b"data: {\"a\":1}\n\n");
        assert_eq!(f.data.as_deref(), Some(&b"{\"a\":1}"[..]));
        assert!(matches!(f.data, Some(Cow::Borrowed(_))));
        let f = fields(b": note\nevent: delta\r\nid: 7\ndata:one\ndata:  two\ndata\n\n");
        assert_eq!(f.event, Some(&b"delta"[..]));
        assert_eq!(f.data.as_deref(), Some(&b"one\n two\n"[..]));
        assert_eq!(fields(b"event: lonely\n\n").data, None);
        assert_eq!(fields(b"event:\ndata: x\r\r").event, None);
    }
}

//! Follows an HTTP/1 connection's bytes from request head to request head, to find
//! heads whose body framing is ambiguous: `Content-Length` together with
//! `Transfer-Encoding`, or `Content-Length` more than once.
//!
//! hyper resolves both itself (Transfer-Encoding wins and the connection closes after;
//! equal repeated lengths are merged) and then shows its handler a clean head, so the
//! ambiguity, the mark of a request-smuggling attempt, is invisible above it. This
//! scanner sees the raw bytes first. It only ever *reports* a head: when in doubt it
//! stops following the connection (`Off`) and leaves every judgement to hyper, which
//! parses the same bytes and refuses what is malformed.

use super::Finding;

/// Heads with at most this many fields are parsed without allocating.
const STACK_HEADERS: usize = 64;

/// Where the scanner is in the byte stream.
#[derive(Debug)]
enum State {
    /// Reading a request head; `buf` holds its bytes when it spans reads.
    Head,
    /// Skipping a body of this many more bytes.
    Body(u64),
    /// Reading a chunk-size line: its value so far, whether a digit was seen, and
    /// whether the digits are over (an extension or the line end follows).
    ChunkSize {
        value: u64,
        digits: bool,
        done: bool,
    },
    /// Skipping this many more bytes of chunk data.
    ChunkData(u64),
    /// Skipping the line end after a chunk's data.
    ChunkEnd,
    /// Reading trailer lines after the last chunk; `empty` while the current line has
    /// nothing but an optional `\r`.
    Trailers { empty: bool },
    /// No longer following the connection.
    Off,
}

/// The HTTP/1 scanner of one connection.
#[derive(Debug)]
pub(super) struct Http1Scan {
    state: State,
    /// A head split across reads.
    buf: Vec<u8>,
    /// Largest head followed; hyper refuses a larger one itself.
    max_head: usize,
    /// Heads seen so far (the next head's number is this plus one).
    heads: u64,
}

impl Http1Scan {
    pub(super) fn new(max_head: usize) -> Self {
        Http1Scan {
            state: State::Head,
            buf: Vec::new(),
            max_head,
            heads: 0,
        }
    }

    /// Whether the scanner stopped following the connection.
    #[cfg(test)]
    pub(super) fn is_off(&self) -> bool {
        matches!(self.state, State::Off)
    }

    /// Follows `bytes`, the next ones the client sent. Returns the first ambiguous
    /// head among them with its number (counted from 1 on this connection).
    pub(super) fn feed(&mut self, mut bytes: &[u8]) -> Option<(u64, Finding)> {
        while !bytes.is_empty() {
            match &mut self.state {
                State::Off => return None,
                State::Head => {
                    let (used, found) = self.head(bytes);
                    bytes = &bytes[used..];
                    if found.is_some() {
                        return found;
                    }
                }
                State::Body(left) | State::ChunkData(left) => {
                    let n = (*left).min(bytes.len() as u64);
                    *left -= n;
                    bytes = &bytes[n as usize..];
                    if *left == 0 {
                        self.state = match self.state {
                            State::ChunkData(_) => State::ChunkEnd,
                            _ => State::Head,
                        };
                    }
                }
                State::ChunkEnd => {
                    let end = bytes.iter().position(|&b| b == b'\n')?;
                    bytes = &bytes[end + 1..];
                    self.state = State::ChunkSize {
                        value: 0,
                        digits: false,
                        done: false,
                    };
                }
                State::ChunkSize {
                    value,
                    digits,
                    done,
                } => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    if b == b'\n' {
                        self.state = match (*digits, *value) {
                            (false, _) => State::Off,
                            (true, 0) => State::Trailers { empty: true },
                            (true, n) => State::ChunkData(n),
                        };
                    } else if let (false, Some(d)) = (*done, (b as char).to_digit(16)) {
                        let Some(v) = value.checked_mul(16) else {
                            self.state = State::Off;
                            return None;
                        };
                        *value = v + u64::from(d);
                        *digits = true;
                    } else {
                        *done = true;
                    }
                }
                State::Trailers { empty } => {
                    let b = bytes[0];
                    bytes = &bytes[1..];
                    match b {
                        b'\n' if *empty => self.state = State::Head,
                        b'\n' => *empty = true,
                        b'\r' => {}
                        _ => *empty = false,
                    }
                }
            }
        }
        None
    }

    /// Reads head bytes from the start of `bytes`: how many it used, and the head's
    /// finding if the head is complete and ambiguous.
    fn head(&mut self, bytes: &[u8]) -> (usize, Option<(u64, Finding)>) {
        // Most heads arrive in one read: parse them in place.
        let from = self.buf.len();
        let end = if from == 0 {
            head_end(bytes, 0)
        } else {
            self.buf.extend_from_slice(bytes);
            head_end(&self.buf, from.saturating_sub(3))
        };
        let Some(end) = end else {
            if from == 0 {
                self.buf.extend_from_slice(bytes);
            }
            if self.buf.len() > self.max_head {
                self.state = State::Off;
                self.buf = Vec::new();
            }
            return (bytes.len(), None);
        };
        let head = if from == 0 { bytes } else { &self.buf[..] };
        self.heads += 1;
        let (next, finding) = judge(&head[..end]);
        self.state = next;
        let used = if from == 0 { end } else { end - from };
        self.buf.clear();
        (used, finding.map(|f| (self.heads, f)))
    }
}

/// Where the head in `bytes` ends (just past its empty line), searching from `from`.
/// hyper accepts bare `\n` line ends, so this does too.
fn head_end(bytes: &[u8], from: usize) -> Option<usize> {
    let mut at = from;
    while let Some(i) = bytes.get(at..)?.iter().position(|&b| b == b'\n') {
        let nl = at + i;
        // The line before this `\n` is empty: `\n\n` or `\n\r\n`.
        let before = &bytes[..nl];
        if before.ends_with(b"\n") || before.ends_with(b"\n\r") {
            return Some(nl + 1);
        }
        at = nl + 1;
    }
    None
}

/// What a complete head says: how its body is framed (the scanner's next state) and
/// whether that framing is ambiguous.
fn judge(head: &[u8]) -> (State, Option<Finding>) {
    let mut on_stack = [httparse::EMPTY_HEADER; STACK_HEADERS];
    let mut request = httparse::Request::new(&mut on_stack);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => framing(&request),
        Err(httparse::Error::TooManyHeaders) => {
            // Rare: a head with many fields. hyper bounds their number.
            let mut on_heap = vec![httparse::EMPTY_HEADER; head.len() / 4 + 1];
            let mut request = httparse::Request::new(&mut on_heap);
            match request.parse(head) {
                Ok(httparse::Status::Complete(_)) => framing(&request),
                _ => (State::Off, None),
            }
        }
        // Malformed (hyper answers it) or, impossibly, partial.
        _ => (State::Off, None),
    }
}

fn framing(request: &httparse::Request<'_, '_>) -> (State, Option<Finding>) {
    let mut lengths = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"));
    let mut encodings = request
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    let length = lengths.next();
    let encoding = encodings.next();
    if length.is_some() && encoding.is_some() {
        return (State::Off, Some(Finding::LengthAndChunked));
    }
    if lengths.next().is_some() {
        return (State::Off, Some(Finding::RepeatedLength));
    }
    // An upgraded connection stops being HTTP/1 after this request.
    let upgrade = request.method == Some("CONNECT")
        || request
            .headers
            .iter()
            .any(|h| h.name.eq_ignore_ascii_case("upgrade"));
    if upgrade {
        return (State::Off, None);
    }
    if let Some(encoding) = encoding {
        // Chunked must be the last coding; hyper refuses anything else.
        let last = encoding.value.rsplit(|&b| b == b',').next().unwrap_or(b"");
        let chunked =
            encodings.next().is_none() && last.trim_ascii().eq_ignore_ascii_case(b"chunked");
        let next = if chunked {
            State::ChunkSize {
                value: 0,
                digits: false,
                done: false,
            }
        } else {
            State::Off
        };
        return (next, None);
    }
    let next = match length {
        None => State::Head,
        Some(h) => match std::str::from_utf8(h.value)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(0) => State::Head,
            Some(n) => State::Body(n),
            None => State::Off,
        },
    };
    (next, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scan(bytes: &[u8]) -> Option<(u64, Finding)> {
        Http1Scan::new(64 << 10).feed(bytes)
    }

    #[test]
    fn clean_requests_are_followed_from_head_to_head() {
        let two = b"POST /a HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /b HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut s = Http1Scan::new(1 << 16);
        assert_eq!(s.feed(two), None);
        assert_eq!(s.heads, 2);
        assert!(!s.is_off());
    }

    #[test]
    fn ambiguous_heads_are_found_whatever_the_order_or_case() {
        for head in [
            "POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
            "POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 5\r\n\r\n",
        ] {
            assert_eq!(scan(head.as_bytes()), Some((1, Finding::LengthAndChunked)));
        }
        let twice = b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n";
        assert_eq!(scan(twice), Some((1, Finding::RepeatedLength)));
    }

    #[test]
    fn a_smuggled_head_inside_a_body_is_not_a_head() {
        let body = "GET / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n";
        let request = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        assert_eq!(scan(request.as_bytes()), None);
    }

    #[test]
    fn chunked_bodies_with_extensions_and_trailers_are_skipped() {
        let request = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n";
        assert_eq!(scan(request), Some((2, Finding::RepeatedLength)));
    }

    #[test]
    fn doubt_turns_the_scanner_off_instead_of_guessing() {
        let mut s = Http1Scan::new(1 << 16);
        assert_eq!(s.feed(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), None);
        assert!(s.is_off());
        let mut s = Http1Scan::new(100);
        assert_eq!(s.feed(&[b'a'; 200]), None);
        assert!(s.is_off());
    }

    /// A request as a client might frame it.
    fn request(framing: u8, body: &[u8]) -> (Vec<u8>, Option<Finding>) {
        let mut out = b"POST /v1/chat/completions HTTP/1.1\r\nHost: gw\r\n".to_vec();
        let finding = match framing % 4 {
            0 => {
                out.extend(format!("Content-Length: {}\r\n\r\n", body.len()).bytes());
                out.extend(body);
                None
            }
            1 => {
                out.extend(b"Transfer-Encoding: chunked\r\n\r\n");
                for part in body.chunks(3) {
                    out.extend(format!("{:x}\r\n", part.len()).bytes());
                    out.extend(part);
                    out.extend(b"\r\n");
                }
                out.extend(b"0\r\n\r\n");
                None
            }
            2 => {
                out.extend(b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
                Some(Finding::LengthAndChunked)
            }
            _ => {
                out.extend(b"Content-Length: 0\r\nContent-Length: 0\r\n\r\n");
                Some(Finding::RepeatedLength)
            }
        };
        (out, finding)
    }

    proptest! {
        /// Whatever the bodies hold and however the bytes are split into reads, the
        /// first ambiguous head is found, with its number, and nothing else is.
        #[test]
        fn the_first_ambiguous_head_is_found_across_any_split(
            requests in proptest::collection::vec((any::<u8>(), proptest::collection::vec(any::<u8>(), 0..40)), 1..6),
            cuts in proptest::collection::vec(1usize..17, 1..64),
        ) {
            let mut stream = Vec::new();
            let mut expected = None;
            for (n, (framing, body)) in requests.iter().enumerate() {
                let (bytes, finding) = request(*framing, body);
                stream.extend(bytes);
                if let (None, Some(f)) = (expected, finding) {
                    expected = Some((n as u64 + 1, f));
                }
            }
            let mut s = Http1Scan::new(1 << 16);
            let mut found = None;
            let mut rest = &stream[..];
            for cut in cuts.iter().cycle() {
                if rest.is_empty() { break; }
                let (now, later) = rest.split_at((*cut).min(rest.len()));
                if let Some(f) = s.feed(now) { found.get_or_insert(f); }
                rest = later;
            }
            prop_assert_eq!(found, expected);
        }
    }
}

//! The scripted answer a test sets up: content, status, headers, timing and faults.

use super::{DEFAULT_TEXT, TOOL_FRAGMENT_CHARS};
use hyper::StatusCode;
use hyper::header::{HeaderName, HeaderValue};
use std::time::Duration;

/// A scripted answer, built from [`Reply::ok`] with the builder methods. Of the faults
/// ([`Reply::reset_before_headers`], [`Reply::fail_before_content`],
/// [`Reply::truncate_after`]) the last one set wins.
#[derive(Clone, Debug)]
pub struct Reply {
    pub(super) content: Content,
    pub(super) status: StatusCode,
    pub(super) headers: Vec<(HeaderName, HeaderValue)>,
    pub(super) delay_headers: Duration,
    pub(super) delay_first_chunk: Duration,
    pub(super) chunk_interval: Duration,
    pub(super) fault: Fault,
    pub(super) model: Option<String>,
    /// Sent instead of the planned body: its content type and pieces.
    pub(super) raw: Option<(String, Vec<String>)>,
    /// Token log-probabilities of a JSON answer (OpenAI's `choices[0].logprobs`), one
    /// per content piece.
    pub(super) logprobs: Option<Vec<f32>>,
}

#[derive(Clone, Debug)]
pub(super) enum Content {
    /// The completion text as the content pieces a stream sends.
    Text(Vec<String>),
    Tool {
        name: String,
        arguments: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fault {
    None,
    ResetBeforeHeaders,
    FailBeforeContent,
    TruncateAfter(usize),
    StallAfter(usize),
    Endless,
}

impl Default for Reply {
    fn default() -> Self {
        Reply::ok()
    }
}

impl Reply {
    /// A successful completion (HTTP 200) of [`DEFAULT_TEXT`], streamed word by word.
    pub fn ok() -> Reply {
        Reply {
            content: Content::Text(split_words(DEFAULT_TEXT)),
            status: StatusCode::OK,
            headers: Vec::new(),
            delay_headers: Duration::ZERO,
            delay_first_chunk: Duration::ZERO,
            chunk_interval: Duration::ZERO,
            fault: Fault::None,
            model: None,
            raw: None,
            logprobs: None,
        }
    }

    /// Token log-probabilities for a JSON answer, as OpenAI returns them when asked
    /// (`logprobs: true`): one entry per content piece of the text, in order, each
    /// piece its token.
    pub fn logprobs(mut self, logprobs: &[f32]) -> Reply {
        self.logprobs = Some(logprobs.to_vec());
        self
    }

    /// The completion text. Streams send it as one piece per word, each piece after the
    /// first starting with the whitespace before its word ("Hi there" → "Hi", " there"),
    /// so the pieces concatenate back to `t`.
    pub fn text(mut self, t: &str) -> Reply {
        self.content = Content::Text(split_words(t));
        self
    }

    /// The completion as exactly these stream pieces (non-streaming answers send their
    /// concatenation).
    pub fn chunks(mut self, parts: &[&str]) -> Reply {
        self.content = Content::Text(parts.iter().map(|p| p.to_string()).collect());
        self
    }

    /// Answers with this HTTP status. From 400 up the body is the provider's error JSON
    /// (type chosen from the status: e.g. 429 → rate limit, 529 → Anthropic overloaded);
    /// below 400 the normal body is sent with this status.
    ///
    /// # Panics
    /// On a code outside 100..=999 (a mistake in the test).
    pub fn status(mut self, code: u16) -> Reply {
        self.status = StatusCode::from_u16(code)
            .unwrap_or_else(|_| panic!("Reply::status: {code} is not an HTTP status"));
        self
    }

    /// Adds a response header (e.g. `retry-after`); it replaces a header of the same
    /// name the fake would send itself.
    ///
    /// # Panics
    /// On an invalid header name or value (a mistake in the test).
    pub fn header(mut self, name: &str, value: &str) -> Reply {
        let name = HeaderName::from_bytes(name.as_bytes())
            .unwrap_or_else(|_| panic!("Reply::header: invalid name {name:?}"));
        let value = HeaderValue::from_str(value)
            .unwrap_or_else(|_| panic!("Reply::header: invalid value {value:?}"));
        self.headers.push((name, value));
        self
    }

    /// Waits this long after reading the request before sending status and headers.
    pub fn delay_headers(mut self, d: Duration) -> Reply {
        self.delay_headers = d;
        self
    }

    /// Sends status and headers at once, and the first body bytes this long later (for
    /// first-byte timeouts; applies to non-streaming bodies too).
    pub fn delay_first_chunk(mut self, d: Duration) -> Reply {
        self.delay_first_chunk = d;
        self
    }

    /// Waits this long between two stream events (every SSE frame, role and finish
    /// frames included).
    pub fn chunk_interval(mut self, d: Duration) -> Reply {
        self.chunk_interval = d;
        self
    }

    /// Reads the request, then resets the TCP connection (RST) without any response
    /// (after [`Reply::delay_headers`] if set). On h2c the whole connection goes.
    pub fn reset_before_headers(mut self) -> Reply {
        self.fault = Fault::ResetBeforeHeaders;
        self
    }

    /// Streams: sends status, headers, the opening events (OpenAI: the role chunk, and
    /// the tool-call header chunk for tool calls; Anthropic: `message_start`,
    /// `content_block_start`, `ping`) and the first `n` content pieces, then aborts the
    /// connection: no finish chunk, no `[DONE]` / `message_stop`, no chunked terminator
    /// (h2: the stream is reset). Non-streaming: sends the headers and the first half of
    /// the JSON body, then aborts.
    pub fn truncate_after(mut self, n_content_chunks: usize) -> Reply {
        self.fault = Fault::TruncateAfter(n_content_chunks);
        self
    }

    /// Streams: sends status 200, headers and only the first event (OpenAI: the
    /// role-only chunk; Anthropic: `message_start`), then aborts the connection.
    /// Non-streaming: sends the headers, then aborts before any body byte.
    pub fn fail_before_content(mut self) -> Reply {
        self.fault = Fault::FailBeforeContent;
        self
    }

    /// Streams: sends status, headers, the opening events and the first `n` content
    /// pieces, then nothing more while keeping the connection open. Non-streaming: sends
    /// the headers, then no body byte.
    pub fn stall_after(mut self, n_content_chunks: usize) -> Reply {
        self.fault = Fault::StallAfter(n_content_chunks);
        self
    }

    /// Streams: sends the opening events, then the first content piece again and
    /// again, forever (paced by [`Reply::chunk_interval`]). Non-streaming: a body of
    /// spaces that never ends.
    pub fn endless(mut self) -> Reply {
        self.fault = Fault::Endless;
        self
    }

    /// Sends these pieces (one frame each, paced like stream events) with this
    /// content type instead of the answer the API would give: an HTML page, a stream
    /// to a JSON request, invalid events.
    pub fn raw(mut self, content_type: &str, pieces: &[&str]) -> Reply {
        self.raw = Some((
            content_type.to_owned(),
            pieces.iter().map(|p| p.to_string()).collect(),
        ));
        self
    }

    /// Answers with one call of tool `name` instead of text. `arguments_json` is the
    /// arguments object as JSON text: OpenAI gets it verbatim as `arguments`, Anthropic
    /// parsed as `input`. Streams send it in fragments of at most
    /// [`TOOL_FRAGMENT_CHARS`] characters.
    ///
    /// # Panics
    /// When `arguments_json` is not a JSON object (a mistake in the test).
    pub fn tool_call(mut self, name: &str, arguments_json: &str) -> Reply {
        assert!(
            serde_json::from_str::<serde_json::Value>(arguments_json).is_ok_and(|v| v.is_object()),
            "Reply::tool_call: arguments must be a JSON object, got {arguments_json:?}"
        );
        self.content = Content::Tool {
            name: name.to_string(),
            arguments: arguments_json.to_string(),
        };
        self
    }

    /// The model name reported in responses (default: the request's `model`).
    pub fn model(mut self, name: &str) -> Reply {
        self.model = Some(name.to_string());
        self
    }

    /// The completion-token count reported for this reply: the number of content pieces
    /// a stream carries, i.e. the words of the text (see [`Reply::text`]), the parts
    /// given to [`Reply::chunks`], or for a tool call the fragments of its arguments
    /// (`ceil(chars / TOOL_FRAGMENT_CHARS)`). Streaming and non-streaming agree.
    pub fn completion_tokens(&self) -> u64 {
        self.pieces().len() as u64
    }

    /// The content pieces a stream sends, one per delta event.
    pub(super) fn pieces(&self) -> Vec<String> {
        match &self.content {
            Content::Text(parts) => parts.clone(),
            Content::Tool { arguments, .. } => {
                let chars: Vec<char> = arguments.chars().collect();
                chars
                    .chunks(TOOL_FRAGMENT_CHARS)
                    .map(|c| c.iter().collect())
                    .collect()
            }
        }
    }
}

/// Splits before each whitespace run that follows a non-space, so that the pieces
/// concatenate back to `t` and each word carries its leading space, as tokenizers do.
fn split_words(t: &str) -> Vec<String> {
    let mut pieces = Vec::new();
    let mut current = String::new();
    let mut prev_space = true;
    for c in t.chars() {
        if c.is_whitespace() && !prev_space && !current.is_empty() {
            pieces.push(std::mem::take(&mut current));
        }
        prev_space = c.is_whitespace();
        current.push(c);
    }
    if !current.is_empty() {
        pieces.push(current);
    }
    pieces
}

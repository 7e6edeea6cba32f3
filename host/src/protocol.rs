//! The APIs clients speak. A request is answered in the protocol it was asked in —
//! its answer, its stream and every error — whichever protocol the upstream that
//! serves it speaks.

/// The header by which a client asks for an exact answer or none: with it, a target
/// whose protocol would drop part of the request (thinking blocks for a chat upstream,
/// `logprobs` for Anthropic) is not used, and when no target can take the request whole
/// the answer is a 400 naming what would have been lost.
pub const HEADER_STRICT: http::HeaderName = http::HeaderName::from_static("x-signalbox-strict");

/// Whether the client sent [`HEADER_STRICT`] (`true`, `1` or `yes`).
pub fn is_strict(headers: &http::HeaderMap) -> bool {
    headers
        .get(&HEADER_STRICT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| matches!(v.trim(), "1" | "true" | "yes"))
}

/// The API a client called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// OpenAI's Chat Completions (and its embeddings): OpenAI's shapes.
    #[default]
    Chat,
    /// Anthropic's Messages: Anthropic's shapes and stream events.
    Messages,
    /// OpenAI's Responses: its `response` object and stream events, OpenAI's errors.
    Responses,
}

impl Protocol {
    /// The name used in logs, the decision log and the `x-signalbox-degraded` docs.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Chat => "chat",
            Protocol::Messages => "messages",
            Protocol::Responses => "responses",
        }
    }
}

//! What the host tells a policy about a request and its targets.

use super::bindings::types;
use std::sync::Arc;

/// One configured target as a policy sees it (the contract's `target` record).
pub type TargetInfo = types::Target;

/// Live signals of one target (the contract's `signals` record).
pub type TargetSignals = types::Signals;

/// Who wrote a message.
pub type Role = types::Role;

/// Which API the client called.
pub type Endpoint = types::Endpoint;

/// One message of a request, as the policy may read it: its role and its text (string
/// content, or text parts joined by newlines).
#[derive(Debug, Clone)]
pub struct ChatMessage {
    /// Who wrote it.
    pub role: Role,
    /// Its text.
    pub text: Box<str>,
}

impl ChatMessage {
    /// A message with `role` and `text`.
    pub fn new(role: Role, text: impl Into<Box<str>>) -> Self {
        ChatMessage {
            role,
            text: text.into(),
        }
    }
}

/// The messages a policy reads on demand, shared (not copied) per call.
#[derive(Debug, Clone)]
pub struct MessagesView(pub(crate) Arc<[ChatMessage]>);

/// A request ready to route: the contract's request record, built once, and the
/// messages behind it. Routing it any number of times copies no message text unless
/// the policy reads it.
#[derive(Debug, Clone)]
pub struct RouteRequest {
    pub(crate) record: types::Request,
    pub(crate) messages: Arc<[ChatMessage]>,
}

/// The fields of a [`RouteRequest`], without messages.
#[derive(Debug, Clone)]
pub struct RequestFields {
    /// The gateway's request id (at most 64 bytes are kept).
    pub id: String,
    /// Which API was called.
    pub endpoint: Endpoint,
    /// The model or alias asked for.
    pub model: String,
    /// Estimated input tokens.
    pub input_tokens: u32,
    /// Requested output budget.
    pub max_output_tokens: Option<u32>,
    /// Streamed response asked for.
    pub stream: bool,
    /// Tools offered.
    pub has_tools: bool,
    /// Lower-case metadata pairs.
    pub metadata: Vec<(String, String)>,
}

impl RouteRequest {
    /// Builds the request a policy will see.
    pub fn new(fields: RequestFields, messages: impl Into<Arc<[ChatMessage]>>) -> Self {
        let messages = messages.into();
        let mut id = fields.id;
        truncate_at_char(&mut id, 64);
        RouteRequest {
            record: types::Request {
                id,
                endpoint: fields.endpoint,
                model: fields.model,
                input_tokens: fields.input_tokens,
                max_output_tokens: fields.max_output_tokens,
                stream: fields.stream,
                has_tools: fields.has_tools,
                message_count: u32::try_from(messages.len()).unwrap_or(u32::MAX),
                metadata: fields.metadata,
            },
            messages,
        }
    }

    /// The request id.
    pub fn id(&self) -> &str {
        &self.record.id
    }

    /// The value of a metadata key (lower-case), if the request has it.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.record
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The model or alias asked for.
    pub fn model(&self) -> &str {
        &self.record.model
    }
}

/// Cuts `s` to at most `max` bytes on a character boundary.
pub(crate) fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

/// A checked routing answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteDecision {
    /// Try these target indices in order.
    Route {
        /// Non-empty, in range, no repeats.
        targets: Vec<u32>,
        /// Why (at most 256 bytes).
        reason: String,
    },
    /// Refuse the request.
    Reject {
        /// 400–599.
        status: u16,
        /// Shown to the client (at most 1024 bytes).
        message: String,
    },
}

/// What happened to a routed request, for the policy to learn from.
pub type Outcome = types::Outcome;

/// A client's quality score for a routed request.
pub type Feedback = types::Feedback;

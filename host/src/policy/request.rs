//! What the host tells a policy about a request and its targets.

use std::sync::Arc;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions from the application (`system`).
    System,
    /// The end user.
    User,
    /// The model's earlier turns.
    Assistant,
    /// A tool (function) result.
    Tool,
    /// Any other role (e.g. `developer`).
    Other,
}

/// Which API the client called.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embedding,
}

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

/// A request ready to route: its fields and the messages behind them. Routing it any
/// number of times copies no message text unless the policy reads it.
#[derive(Debug, Clone)]
pub struct RouteRequest {
    pub(crate) fields: RequestFields,
    pub(crate) messages: Arc<[ChatMessage]>,
}

/// The fields of a [`RouteRequest`], without messages.
#[derive(Debug, Clone)]
pub struct RequestFields {
    /// The gateway's request id (at most [`MAX_REQUEST_ID`] bytes are kept).
    ///
    /// [`MAX_REQUEST_ID`]: signalbox_contract::MAX_REQUEST_ID
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
    pub fn new(mut fields: RequestFields, messages: impl Into<Arc<[ChatMessage]>>) -> Self {
        signalbox_contract::truncate_at_char(&mut fields.id, signalbox_contract::MAX_REQUEST_ID);
        RouteRequest {
            fields,
            messages: messages.into(),
        }
    }

    /// The request's fields.
    pub fn fields(&self) -> &RequestFields {
        &self.fields
    }

    /// The messages, oldest first.
    pub fn messages(&self) -> &[ChatMessage] {
        &self.messages
    }

    /// The number of messages.
    pub fn message_count(&self) -> u32 {
        u32::try_from(self.messages.len()).unwrap_or(u32::MAX)
    }

    /// The request id.
    pub fn id(&self) -> &str {
        &self.fields.id
    }

    /// The value of a metadata key (lower-case), if the request has it.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.fields
            .metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The model or alias asked for.
    pub fn model(&self) -> &str {
        &self.fields.model
    }
}

//! What the host shows a policy's `review` of an answer, and what it may answer
//! (contract 0.4.0 on): the host's own types, converted to the contract's records
//! only in `contract`.

use std::sync::Arc;

/// Why a model stopped writing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// It finished.
    Stop,
    /// It reached the output limit.
    Length,
    /// It called tools.
    ToolCalls,
    /// The provider's content filter stopped it.
    ContentFilter,
    /// Anything else.
    Other,
}

impl FinishReason {
    /// The reason as OpenAI's `finish_reason` spells it.
    pub fn parse(reason: &str) -> FinishReason {
        match reason {
            "stop" | "end_turn" | "stop_sequence" => FinishReason::Stop,
            "length" | "max_tokens" => FinishReason::Length,
            "tool_calls" | "function_call" | "tool_use" => FinishReason::ToolCalls,
            "content_filter" => FinishReason::ContentFilter,
            _ => FinishReason::Other,
        }
    }
}

/// A tool call in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The function's name.
    pub name: String,
    /// Its arguments, as written.
    pub arguments: String,
}

/// The parts of an answer a policy reads on demand, shared with the call (not copied
/// unless read).
#[derive(Debug, Clone, Default)]
pub struct AnswerBody {
    /// The first choice's message content.
    pub text: Arc<str>,
    /// Token log-probabilities, in order.
    pub logprobs: Arc<[f32]>,
    /// The JSON Schema the client required, as JSON text.
    pub schema: Option<Arc<str>>,
    /// The request's last user message.
    pub question: Option<Arc<str>>,
}

/// The resource handed to `review` (the contract's `answer-body`).
#[derive(Debug, Clone)]
pub struct AnswerBodyView(pub(crate) AnswerBody);

/// One answer, as `review` sees it.
#[derive(Debug, Clone)]
pub struct AnswerView {
    /// The request's id.
    pub request_id: String,
    /// The answering target (the policy's index).
    pub target: u32,
    /// 0 for the first answer, 1 after one escalation…
    pub attempt: u32,
    /// The plan's targets still to try.
    pub remaining: Vec<u32>,
    /// Why the model stopped, when it said.
    pub finish_reason: Option<FinishReason>,
    /// The answer's tool calls.
    pub tool_calls: Vec<ToolCall>,
    /// Input tokens of this attempt.
    pub input_tokens: u32,
    /// Output tokens of this attempt.
    pub output_tokens: u32,
    /// This attempt's cost.
    pub cost_usd: f64,
    /// The request's cost so far, this attempt included.
    pub spent_usd: f64,
    /// Whether the client asked for JSON.
    pub wants_json: bool,
    /// False for an early check of a stream.
    pub complete: bool,
    /// The verifier's reply, on the review after a `verify`.
    pub verification: Option<String>,
    /// Text, log-probabilities, schema and question.
    pub body: AnswerBody,
}

/// What a policy makes of an answer, checked against the target count.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Send it.
    Accept,
    /// Ask another target: a named one, or the next of the plan.
    Escalate {
        /// Why (cut to the contract's limit).
        reason: String,
        /// The target, by the policy's index.
        target: Option<u32>,
    },
    /// Ask a verifier first.
    Verify {
        /// The verifier, by the policy's index.
        target: u32,
        /// The question.
        prompt: String,
        /// The most tokens it may write.
        max_tokens: u32,
    },
}

impl Verdict {
    /// The verdict if it names only targets below `target_count` and a prompt within
    /// the contract's limit; a description of the fault otherwise.
    pub fn checked(self, target_count: usize) -> Result<Verdict, String> {
        let known = |t: u32| (t as usize) < target_count;
        match &self {
            Verdict::Escalate {
                target: Some(t), ..
            }
            | Verdict::Verify { target: t, .. }
                if !known(*t) =>
            {
                Err(format!(
                    "review named target {t}, but there are {target_count}"
                ))
            }
            Verdict::Verify { prompt, .. }
                if prompt.len() > signalbox_contract::MAX_VERIFY_PROMPT =>
            {
                Err(format!(
                    "review's verifier prompt is {} bytes, over the {} allowed",
                    prompt.len(),
                    signalbox_contract::MAX_VERIFY_PROMPT
                ))
            }
            _ => Ok(self),
        }
    }

    /// The kind, for metrics and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Escalate { .. } => "escalate",
            Verdict::Verify { .. } => "verify",
        }
    }
}

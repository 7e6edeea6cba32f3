//! Reviewing answers before the client sees them: [`Answer`], what the policy is shown,
//! and [`Review`], what it makes of it (see [`Policy::review`](crate::Policy::review)).

use crate::bindings::signalbox::policy::types as wit;

/// Why a model stopped writing its answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// It finished (or reached a stop sequence).
    Stop,
    /// It reached the output limit: the answer is cut short.
    Length,
    /// It called tools.
    ToolCalls,
    /// The provider's content filter stopped it.
    ContentFilter,
    /// A reason the contract does not name.
    Other,
}

impl From<wit::FinishReason> for FinishReason {
    fn from(r: wit::FinishReason) -> Self {
        match r {
            wit::FinishReason::Stop => FinishReason::Stop,
            wit::FinishReason::Length => FinishReason::Length,
            wit::FinishReason::ToolCalls => FinishReason::ToolCalls,
            wit::FinishReason::ContentFilter => FinishReason::ContentFilter,
            wit::FinishReason::Other => FinishReason::Other,
        }
    }
}

/// A tool (function) call in an answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The function's name.
    pub name: String,
    /// Its arguments, as the JSON text the model wrote (not necessarily valid).
    pub arguments: String,
}

/// Where an answer's text, log-probabilities and schema come from.
enum Body<'a> {
    /// The host's handle: each read crosses the boundary once.
    Host(&'a wit::AnswerBody),
    /// Built in a test.
    Local {
        text: String,
        logprobs: Vec<f32>,
        schema: Option<String>,
        question: Option<String>,
    },
}

/// One target's answer, as [`Policy::review`](crate::Policy::review) sees it before the
/// client does. The text, the token log-probabilities and the client's JSON Schema
/// are read on demand ([`text`](Answer::text), [`logprobs`](Answer::logprobs),
/// [`response_schema`](Answer::response_schema)): a check that needs only the finish
/// reason pays nothing for a long answer.
///
/// ```
/// use signalbox_sdk::{AnswerBuilder, FinishReason};
/// let answer = AnswerBuilder::new(r#"{"ok": true}"#)
///     .finish(FinishReason::Stop)
///     .logprobs(vec![-0.1, -0.3])
///     .build();
/// assert_eq!(answer.text(), r#"{"ok": true}"#);
/// assert!((answer.mean_logprob().unwrap() + 0.2).abs() < 1e-6);
/// ```
pub struct Answer<'a> {
    /// The id of the request the policy routed.
    pub request_id: String,
    /// The target that answered (activation index).
    pub target: u32,
    /// Which answer of the request this is: 0 for the first, 1 after one escalation.
    pub attempt: u32,
    /// The plan's targets after this one that could still be tried; an escalation
    /// without a named target goes to the first.
    pub remaining: Vec<u32>,
    /// Why the model stopped, when the upstream said.
    pub finish_reason: Option<FinishReason>,
    /// The answer's tool calls, in order.
    pub tool_calls: Vec<ToolCall>,
    /// Input tokens of this attempt.
    pub input_tokens: u32,
    /// Output tokens of this attempt so far.
    pub output_tokens: u32,
    /// What this attempt cost, in US dollars.
    pub cost_usd: f64,
    /// What the request has cost so far, this attempt and every earlier one included.
    pub spent_usd: f64,
    /// Size of the answer's text in bytes.
    pub text_len: u32,
    /// How many token log-probabilities [`logprobs`](Answer::logprobs) holds (0: the
    /// upstream returned none).
    pub logprob_count: u32,
    /// Whether the client asked for a JSON answer (`response_format`).
    pub wants_json: bool,
    /// False for an early check of a stream: the first tokens only.
    pub complete: bool,
    /// The verifier's reply when this review follows the policy's own
    /// [`Review::Verify`]; `None` otherwise, or when the verifier failed.
    pub verification: Option<String>,
    body: Body<'a>,
}

impl<'a> Answer<'a> {
    pub(crate) fn from_host(answer: wit::Answer, body: &'a wit::AnswerBody) -> Self {
        Answer {
            request_id: answer.request_id,
            target: answer.target,
            attempt: answer.attempt,
            remaining: answer.remaining,
            finish_reason: answer.finish_reason.map(FinishReason::from),
            tool_calls: answer
                .tool_calls
                .into_iter()
                .map(|c| ToolCall {
                    name: c.name,
                    arguments: c.arguments,
                })
                .collect(),
            input_tokens: answer.input_tokens,
            output_tokens: answer.output_tokens,
            cost_usd: answer.cost_usd,
            spent_usd: answer.spent_usd,
            text_len: answer.text_len,
            logprob_count: answer.logprob_count,
            wants_json: answer.wants_json,
            complete: answer.complete,
            verification: answer.verification,
            body: Body::Host(body),
        }
    }

    /// The answer's text (the first choice's message content).
    pub fn text(&self) -> String {
        match &self.body {
            Body::Host(body) => body.text(),
            Body::Local { text, .. } => text.clone(),
        }
    }

    /// The log-probability of each token, in order; empty when the upstream returned
    /// none.
    pub fn logprobs(&self) -> Vec<f32> {
        match &self.body {
            Body::Host(body) if self.logprob_count > 0 => body.logprobs(),
            Body::Host(_) => Vec::new(),
            Body::Local { logprobs, .. } => logprobs.clone(),
        }
    }

    /// The mean token log-probability, a cheap confidence figure (closer to 0 is more
    /// confident); `None` without log-probabilities.
    pub fn mean_logprob(&self) -> Option<f32> {
        let logprobs = self.logprobs();
        if logprobs.is_empty() {
            return None;
        }
        Some(logprobs.iter().sum::<f32>() / logprobs.len() as f32)
    }

    /// The JSON Schema the client required, as JSON text.
    pub fn response_schema(&self) -> Option<String> {
        match &self.body {
            Body::Host(body) => body.response_schema(),
            Body::Local { schema, .. } => schema.clone(),
        }
    }

    /// The request's last user message: what the answer answers (for a verifier's
    /// question).
    pub fn question(&self) -> Option<String> {
        match &self.body {
            Body::Host(body) => body.question(),
            Body::Local { question, .. } => question.clone(),
        }
    }
}

impl std::fmt::Debug for Answer<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("request_id", &self.request_id)
            .field("target", &self.target)
            .field("attempt", &self.attempt)
            .field("finish_reason", &self.finish_reason)
            .field("text_len", &self.text_len)
            .finish_non_exhaustive()
    }
}

/// Builds an [`Answer`] for tests: the answer a target gave, with everything else
/// defaulted (target 0, first attempt, no targets remaining, finished with `stop`).
#[derive(Debug, Clone)]
pub struct AnswerBuilder {
    text: String,
    logprobs: Vec<f32>,
    schema: Option<String>,
    question: Option<String>,
    target: u32,
    attempt: u32,
    remaining: Vec<u32>,
    finish_reason: Option<FinishReason>,
    tool_calls: Vec<ToolCall>,
    tokens: (u32, u32),
    cost_usd: f64,
    spent_usd: f64,
    wants_json: bool,
    complete: bool,
    verification: Option<String>,
}

impl AnswerBuilder {
    /// An answer with this text.
    pub fn new(text: impl Into<String>) -> Self {
        AnswerBuilder {
            text: text.into(),
            logprobs: Vec::new(),
            schema: None,
            question: None,
            target: 0,
            attempt: 0,
            remaining: Vec::new(),
            finish_reason: Some(FinishReason::Stop),
            tool_calls: Vec::new(),
            tokens: (0, 0),
            cost_usd: 0.0,
            spent_usd: 0.0,
            wants_json: false,
            complete: true,
            verification: None,
        }
    }

    /// The target that answered.
    pub fn target(mut self, target: u32) -> Self {
        self.target = target;
        self
    }

    /// Which answer of the request this is.
    pub fn attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    /// The plan's targets still to try.
    pub fn remaining(mut self, targets: impl Into<Vec<u32>>) -> Self {
        self.remaining = targets.into();
        self
    }

    /// Why the model stopped (`None`: not reported).
    pub fn finish(mut self, reason: impl Into<Option<FinishReason>>) -> Self {
        self.finish_reason = reason.into();
        self
    }

    /// The token log-probabilities.
    pub fn logprobs(mut self, logprobs: Vec<f32>) -> Self {
        self.logprobs = logprobs;
        self
    }

    /// The client asked for JSON, with this schema if any.
    pub fn json(mut self, schema: Option<&str>) -> Self {
        self.wants_json = true;
        self.schema = schema.map(str::to_owned);
        self
    }

    /// The request's last user message.
    pub fn question(mut self, question: impl Into<String>) -> Self {
        self.question = Some(question.into());
        self
    }

    /// A tool call in the answer.
    pub fn tool_call(mut self, name: impl Into<String>, arguments: impl Into<String>) -> Self {
        self.tool_calls.push(ToolCall {
            name: name.into(),
            arguments: arguments.into(),
        });
        self
    }

    /// Input and output tokens.
    pub fn tokens(mut self, input: u32, output: u32) -> Self {
        self.tokens = (input, output);
        self
    }

    /// This attempt's cost and the request's so far, in US dollars.
    pub fn cost(mut self, cost_usd: f64, spent_usd: f64) -> Self {
        self.cost_usd = cost_usd;
        self.spent_usd = spent_usd;
        self
    }

    /// The verifier's reply to the policy's question.
    pub fn verification(mut self, reply: impl Into<String>) -> Self {
        self.verification = Some(reply.into());
        self
    }

    /// An early check of a stream: the first tokens only.
    pub fn incomplete(mut self) -> Self {
        self.complete = false;
        self
    }

    /// The answer.
    pub fn build(self) -> Answer<'static> {
        let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        Answer {
            request_id: "test-request".into(),
            target: self.target,
            attempt: self.attempt,
            remaining: self.remaining,
            finish_reason: self.finish_reason,
            tool_calls: self.tool_calls,
            input_tokens: self.tokens.0,
            output_tokens: self.tokens.1,
            cost_usd: self.cost_usd,
            spent_usd: self.spent_usd,
            text_len: clamp(self.text.len()),
            logprob_count: clamp(self.logprobs.len()),
            wants_json: self.wants_json,
            complete: self.complete,
            verification: self.verification,
            body: Body::Local {
                text: self.text,
                logprobs: self.logprobs,
                schema: self.schema,
                question: self.question,
            },
        }
    }
}

/// What a policy makes of an answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Review {
    /// Send it to the client.
    Accept,
    /// Do not send it: ask another target (the first remaining one when `target` is
    /// `None`). Honoured while the request's attempts and cost cap allow; past them the
    /// answer is sent after all.
    Escalate {
        /// Why, for headers, logs and the decision log (cut to 256 bytes).
        reason: String,
        /// The target to ask instead.
        target: Option<u32>,
    },
    /// Ask a verifier target first: `prompt` goes to `target` as one user message, and
    /// `review` is called again with its reply in [`Answer::verification`]. Once per
    /// answer.
    Verify {
        /// The verifier target.
        target: u32,
        /// The whole question, answer included.
        prompt: String,
        /// The most tokens the verifier may write.
        max_tokens: u32,
    },
}

impl Review {
    /// Escalates to the next target of the plan.
    pub fn escalate(reason: impl Into<String>) -> Self {
        Review::Escalate {
            reason: reason.into(),
            target: None,
        }
    }

    /// Escalates to a named target.
    pub fn escalate_to(target: u32, reason: impl Into<String>) -> Self {
        Review::Escalate {
            reason: reason.into(),
            target: Some(target),
        }
    }

    /// Asks `target` about the answer first.
    pub fn verify(target: u32, prompt: impl Into<String>, max_tokens: u32) -> Self {
        Review::Verify {
            target,
            prompt: prompt.into(),
            max_tokens,
        }
    }
}

//! What the policy hears after a request it routed has ended, and later any feedback.

/// How a routed request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// A target answered and the whole answer reached the client.
    Completed,
    /// A target refused the request as the client's mistake (a 4xx other than 408
    /// and 429); its answer was passed on.
    Refused,
    /// The policy (or the quota, before the policy) refused the request; no target
    /// was tried.
    Rejected,
    /// No target answered: every attempt failed, or none could be tried.
    Failed,
    /// A streamed answer broke after part of it reached the client.
    Interrupted,
    /// The client went away before the answer ended.
    Abandoned,
}

/// What happened to a routed request, for the policy to learn from.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The request id the decision was made for.
    pub request_id: String,
    /// How it ended.
    pub ending: Ending,
    /// The target whose answer reached the client, if one did.
    pub target: Option<u32>,
    /// Targets whose attempt failed, in the order tried.
    pub failed_targets: Vec<u32>,
    /// The status returned to the client.
    pub status: u16,
    /// From admission (just before the decision) to the end of the response, ms.
    pub latency_ms: u32,
    /// Time to first token of a streamed answer, ms.
    pub ttft_ms: Option<u32>,
    /// Input tokens (the upstream's count, or the estimate).
    pub input_tokens: u32,
    /// Output tokens.
    pub output_tokens: u32,
    /// Cost in US dollars of the answer the client received (escalated attempts and
    /// verifier calls are charged apart).
    pub cost_usd: f64,
    /// Targets whose answers the policy's `review` refused, in the order they
    /// answered.
    pub escalated_targets: Vec<u32>,
}

/// A client's quality score for a routed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// The request id the score is about.
    pub request_id: String,
    /// The target that served it.
    pub target: u32,
    /// In `[0, 1]`, 1 best.
    pub score: f32,
}

//! What a policy hears after the requests it routed: how each ended, and later the
//! clients' scores.

use crate::bindings::signalbox::policy::types as wit;

/// How a routed request ended (see [`Outcome::ending`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A target answered and the whole answer reached the client.
    Completed,
    /// A target refused the request as the client's mistake (a 4xx other than 408 and
    /// 429); its answer was passed on and no other target was tried.
    Refused,
    /// The policy rejected the request; no target was tried.
    Rejected,
    /// No target answered: every attempt failed, or none could be tried. The client
    /// received 503.
    Failed,
    /// A target started a streamed answer and then failed mid-stream.
    Interrupted,
    /// The client went away before the answer ended.
    Abandoned,
}

impl From<wit::Ending> for Ending {
    fn from(e: wit::Ending) -> Self {
        match e {
            wit::Ending::Completed => Ending::Completed,
            wit::Ending::Refused => Ending::Refused,
            wit::Ending::Rejected => Ending::Rejected,
            wit::Ending::Failed => Ending::Failed,
            wit::Ending::Interrupted => Ending::Interrupted,
            wit::Ending::Abandoned => Ending::Abandoned,
        }
    }
}

/// What happened to a request this policy routed: delivered once per request it
/// routed or rejected, whichever way the request ended.
///
/// ```
/// use signalbox_sdk::{Ending, Outcome};
/// let total_failure = Outcome {
///     request_id: "r-1".into(),
///     ending: Ending::Failed,
///     target: None,
///     failed_targets: vec![2, 0],
///     status: 503,
///     latency_ms: 30_000,
///     ttft_ms: None,
///     input_tokens: 0,
///     output_tokens: 0,
///     cost_usd: 0.0,
///     escalated_targets: vec![],
/// };
/// assert!(!total_failure.succeeded());
/// assert_eq!(total_failure.fallback_depth(), 2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The id of the routed request.
    pub request_id: String,
    /// How the request ended.
    pub ending: Ending,
    /// Index of the target whose answer reached the client; `None` when no target
    /// answered ([`Ending::Rejected`], [`Ending::Failed`]).
    pub target: Option<u32>,
    /// Indices of the targets whose attempt failed, in the order tried: those before
    /// `target`, or every attempt when none answered.
    pub failed_targets: Vec<u32>,
    /// HTTP status returned to the client (`499` when the client went away).
    pub status: u16,
    /// Total latency in ms.
    pub latency_ms: u32,
    /// Time to first token in ms, for streamed responses.
    pub ttft_ms: Option<u32>,
    /// Input tokens reported by the upstream (`0` when no target answered).
    pub input_tokens: u32,
    /// Output tokens reported by the upstream (`0` when no target answered).
    pub output_tokens: u32,
    /// Cost in US dollars of the answer the client received (escalated attempts are
    /// charged apart).
    pub cost_usd: f64,
    /// Targets whose answers [`Policy::review`](crate::Policy::review) refused, in
    /// the order they answered; empty without a cascade.
    pub escalated_targets: Vec<u32>,
}

impl Outcome {
    /// Whether the client got a successful (2xx) answer.
    pub fn succeeded(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// How many targets failed before the answer (or in all, when none answered).
    pub fn fallback_depth(&self) -> u32 {
        u32::try_from(self.failed_targets.len()).unwrap_or(u32::MAX)
    }
}

impl From<wit::Outcome> for Outcome {
    fn from(o: wit::Outcome) -> Self {
        Outcome {
            request_id: o.request_id,
            ending: o.ending.into(),
            target: o.target,
            failed_targets: o.failed_targets,
            status: o.status,
            latency_ms: o.latency_ms,
            ttft_ms: o.ttft_ms,
            input_tokens: o.input_tokens,
            output_tokens: o.output_tokens,
            cost_usd: o.cost_usd,
            escalated_targets: o.escalated_targets,
        }
    }
}

/// A client's quality score for an earlier response.
#[derive(Debug, Clone, PartialEq)]
pub struct Feedback {
    /// The id of the scored request.
    pub request_id: String,
    /// Index of the target that served it.
    pub target: u32,
    /// Score in `[0, 1]`; `1` is best.
    pub score: f32,
}

impl From<wit::Feedback> for Feedback {
    fn from(f: wit::Feedback) -> Self {
        Feedback {
            request_id: f.request_id,
            target: f.target,
            score: f.score,
        }
    }
}

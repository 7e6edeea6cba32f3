//! The glue between the generated bindings and a [`Policy`]; used by
#![allow(missing_docs)]
//! [`export_policy!`](crate::export_policy) and not meant to be called directly.

use crate::bindings::exports::signalbox::policy::router as wit_router;
use crate::bindings::signalbox::policy::types as wit;
use crate::{Answer, Decision, Policy, Request, Review, Signals, Snapshot, Target, parse_config};
use std::cell::RefCell;

pub use crate::bindings::export;
pub use crate::bindings::exports::signalbox::policy::router::Guest;

/// An activated policy with the targets it was activated with.
pub struct Active<P> {
    policy: P,
    targets: Vec<Target>,
}

/// The slot an exported policy lives in (one per instance; wasm is single-threaded).
pub type Slot<P> = RefCell<Option<Active<P>>>;

// Trimming to the host's limits here saves copying what the host would cut anyway.
use signalbox_contract::{MAX_MESSAGE, MAX_REASON, truncate_at_char};

/// The contract version as a fixed-size array, for the custom section.
pub const fn contract_version_bytes<const N: usize>() -> [u8; N] {
    let src = crate::CONTRACT_VERSION.as_bytes();
    let mut out = [0u8; N];
    let mut i = 0;
    while i < N {
        out[i] = src[i];
        i += 1;
    }
    out
}

pub fn activate<P: Policy>(
    slot: &Slot<P>,
    config: String,
    targets: Vec<wit::Target>,
) -> Result<(), String> {
    let targets: Vec<Target> = targets.into_iter().map(Target::from).collect();
    let config = parse_config::<P::Config>(&config)?;
    let policy = P::activate(config, &targets)?;
    *slot.borrow_mut() = Some(Active { policy, targets });
    Ok(())
}

pub fn route<P: Policy>(
    slot: &Slot<P>,
    request: wit::Request,
    messages: &wit::Messages,
    signals: Vec<wit::Signals>,
) -> Result<wit_router::Decision, wit_router::Rejection> {
    let guard = slot.borrow();
    let Some(active) = guard.as_ref() else {
        return Err(wit_router::Rejection {
            status: 503,
            message: "the routing policy was not activated".into(),
        });
    };
    let signals: Vec<Signals> = signals.into_iter().map(Signals::from).collect();
    let request = Request::from_host(request, messages);
    let snapshot = Snapshot::new(&active.targets, &signals);
    match active.policy.route(&request, &snapshot) {
        Decision::Route { targets, reason } => Ok(wit_router::Decision {
            targets,
            reason: truncate(reason, MAX_REASON),
        }),
        Decision::Reject { status, message } => Err(wit_router::Rejection {
            status,
            message: truncate(message, MAX_MESSAGE),
        }),
    }
}

pub fn on_outcome<P: Policy>(slot: &Slot<P>, outcome: wit::Outcome) {
    if let Some(active) = slot.borrow().as_ref() {
        active.policy.on_outcome(&outcome.into());
    }
}

pub fn on_feedback<P: Policy>(slot: &Slot<P>, feedback: wit::Feedback) {
    if let Some(active) = slot.borrow().as_ref() {
        active.policy.on_feedback(&feedback.into());
    }
}

pub fn review<P: Policy>(
    slot: &Slot<P>,
    answer: wit::Answer,
    body: &wit::AnswerBody,
) -> wit::Verdict {
    let guard = slot.borrow();
    let Some(active) = guard.as_ref() else {
        return wit::Verdict::Accept;
    };
    match active.policy.review(&Answer::from_host(answer, body)) {
        Review::Accept => wit::Verdict::Accept,
        Review::Escalate { reason, target } => wit::Verdict::Escalate(wit::Escalation {
            reason: truncate(reason, MAX_REASON),
            target,
        }),
        Review::Verify {
            target,
            prompt,
            max_tokens,
        } => wit::Verdict::Verify(wit::Verification {
            target,
            prompt,
            max_tokens,
        }),
    }
}

fn truncate(mut s: String, max: usize) -> String {
    truncate_at_char(&mut s, max);
    s
}

pub use crate::bindings;
pub use signalbox_contract::Hooks;
pub use wit::{
    Answer as WitAnswer, AnswerBody as WitAnswerBody, Feedback as WitFeedback,
    Messages as WitMessages, Outcome as WitOutcome, Request as WitRequest, Signals as WitSignals,
    Target as WitTarget, Verdict as WitVerdict,
};
pub use wit_router::{Decision as WitDecision, Rejection as WitRejection};

//! Unit-testing a policy natively, with plain `cargo test`.
//!
//! A [`Harness`] activates a policy the way the host does (same JSON decoding, same
//! decision checks) without building WebAssembly. Host services
//! ([`log`](crate::log), [`state`](crate::state), time, randomness) are served by an
//! in-memory stand-in per test thread, which the functions here inspect and reset.
//!
//! ```
//! use signalbox_sdk::testing::Harness;
//! use signalbox_sdk::*;
//!
//! struct Cheapest;
//! impl Policy for Cheapest {
//!     type Config = NoConfig;
//!     fn activate(_: NoConfig, _: &[Target]) -> Result<Self, String> { Ok(Cheapest) }
//!     fn route(&self, req: &Request<'_>, snap: &Snapshot<'_>) -> Decision {
//!         snap.candidates().available().by_price(req.input_tokens, 256).into_decision("cheapest")
//!     }
//! }
//!
//! let harness = Harness::<Cheapest>::new("{}", vec![
//!     Target::new("big", "gpt-4o").price(2.5, 10.0),
//!     Target::new("small", "gpt-4o-mini").price(0.15, 0.6),
//! ]).unwrap();
//! let req = RequestBuilder::chat("auto").user("hi").build();
//! assert_eq!(harness.route_ids(&req, &[Signals::default(), Signals::default()]), Ok(vec!["small", "big"]));
//! assert_eq!(harness.route_ids(&req, &[Signals::default(), Signals::unhealthy()]), Ok(vec!["big"]));
//! ```

use crate::host::{Level, imp};
use crate::{
    Answer, Decision, Feedback, Outcome, Policy, Request, Review, Signals, Snapshot, Target,
    parse_config,
};

/// A policy activated in memory, as the host would activate it.
pub struct Harness<P: Policy> {
    policy: P,
    targets: Vec<Target>,
}

impl<P: Policy> Harness<P> {
    /// Activates `P` with the JSON `config` and `targets`; the error is the message
    /// the host would report for a rejected configuration.
    pub fn new(config: &str, targets: Vec<Target>) -> Result<Self, String> {
        let policy = P::activate(parse_config::<P::Config>(config)?, &targets)?;
        Ok(Harness { policy, targets })
    }

    /// The targets the policy was activated with.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// Routes `request` with `signals` (one per target).
    ///
    /// # Panics
    ///
    /// When `signals` does not have one entry per target, or when the policy answers
    /// something the host would refuse (empty or out-of-range targets, repeats, a
    /// rejection status outside 400–599): a test should fail loudly on that.
    pub fn route(&self, request: &Request<'_>, signals: &[Signals]) -> Decision {
        assert_eq!(
            signals.len(),
            self.targets.len(),
            "pass one Signals per target"
        );
        let decision = self
            .policy
            .route(request, &Snapshot::new(&self.targets, signals));
        if let Err(e) = decision.validate(self.targets.len()) {
            panic!("the host would refuse this decision: {e}: {decision:?}");
        }
        decision
    }

    /// Routes with every target healthy and idle.
    pub fn route_healthy(&self, request: &Request<'_>) -> Decision {
        self.route(request, &vec![Signals::default(); self.targets.len()])
    }

    /// Routes and returns the chosen target ids in order, or the rejection's status
    /// and message: the most readable thing to assert on.
    pub fn route_ids(
        &self,
        request: &Request<'_>,
        signals: &[Signals],
    ) -> Result<Vec<&str>, (u16, String)> {
        match self.route(request, signals) {
            Decision::Route { targets, .. } => Ok(targets
                .iter()
                .map(|&i| self.targets[i as usize].id.as_str())
                .collect()),
            Decision::Reject { status, message } => Err((status, message)),
        }
    }

    /// Delivers an outcome, as the host does after a response.
    pub fn outcome(&self, outcome: &Outcome) {
        self.policy.on_outcome(outcome)
    }

    /// Delivers a feedback score.
    pub fn feedback(&self, feedback: &Feedback) {
        self.policy.on_feedback(feedback)
    }

    /// Shows the policy an answer, as the host does before the client sees it (only
    /// for a policy whose `REVIEWS_ANSWERS` is true).
    pub fn review(&self, answer: &Answer<'_>) -> Review {
        self.policy.review(answer)
    }

    /// The activated policy, to inspect its fields.
    pub fn policy(&self) -> &P {
        &self.policy
    }
}

/// The log lines this thread's policies have written, oldest first.
pub fn logs() -> Vec<(Level, String)> {
    imp::HOST.with(|h| h.borrow().logs.clone())
}

/// The raw value under `key` in this thread's state store.
pub fn state_value(key: &str) -> Option<Vec<u8>> {
    imp::state_get(key)
}

/// Clears this thread's state store and logs (the clock and random sequence restart
/// too), so a test starts from nothing.
pub fn reset() {
    imp::HOST.with(|h| {
        *h.borrow_mut() = imp::NativeHost {
            rng: 0x853c_49e6_748f_ea9b,
            ..imp::NativeHost::default()
        }
    });
}

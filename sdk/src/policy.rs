//! The trait a policy implements, and how its configuration is read.

use crate::{Answer, Decision, Feedback, Outcome, Request, Review, Snapshot, Target};
use serde::de::DeserializeOwned;

/// A routing policy.
///
/// The host creates a policy per instance with [`activate`](Policy::activate), then
/// calls [`route`](Policy::route) for each request. Several instances of the same
/// policy may run at once and any of them may be discarded at any time, so anything
/// learned across requests belongs in [`state`](crate::state), not in `self`.
pub trait Policy: Sized + 'static {
    /// The binding's JSON configuration, decoded with serde. Use [`NoConfig`] when
    /// there is none. A decoding error rejects the configuration at activation.
    type Config: DeserializeOwned;

    /// Builds the policy from its configuration and the tenant's targets (in the order
    /// every later index refers to). Return an error to reject the configuration; the
    /// message is shown to whoever activated it.
    fn activate(config: Self::Config, targets: &[Target]) -> Result<Self, String>;

    /// Chooses targets for `request`, given every target's live signals.
    fn route(&self, request: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision;

    /// Whether the gateway calls [`on_outcome`](Policy::on_outcome) after each
    /// request. A policy that learns nothing from outcomes sets it to `false` and the
    /// gateway skips that call, and its cost, for every request. `true` by default, so
    /// an `on_outcome` that is written is never skipped by accident.
    ///
    /// ```
    /// # use signalbox_sdk::*;
    /// struct First;
    /// impl Policy for First {
    ///     type Config = NoConfig;
    ///     // Stateless: nothing to learn from outcomes.
    ///     const OBSERVES_OUTCOMES: bool = false;
    ///     fn activate(_: NoConfig, _: &[Target]) -> Result<Self, String> {
    ///         Ok(First)
    ///     }
    ///     fn route(&self, _: &Request<'_>, _: &Snapshot<'_>) -> Decision {
    ///         Decision::route([0], "the first target")
    ///     }
    /// }
    /// ```
    const OBSERVES_OUTCOMES: bool = true;

    /// Learns from what happened to a routed request. Off the request path. Does
    /// nothing by default.
    fn on_outcome(&self, outcome: &Outcome) {
        let _ = outcome;
    }

    /// Learns from a client's quality score. Off the request path. Does nothing by
    /// default.
    fn on_feedback(&self, feedback: &Feedback) {
        let _ = feedback;
    }

    /// Whether the gateway calls [`review`](Policy::review) with each answer before
    /// the client sees it. `false` by default: a policy that does not review answers
    /// costs nothing per answer. A policy that implements `review` sets it to `true`.
    const REVIEWS_ANSWERS: bool = false;

    /// Inspects an answer before it reaches the client: accept it, escalate to
    /// another target, or ask a verifier target about it first (cascades: the
    /// cheapest model first, a stronger one only when its answer fails a check).
    /// Called on the request path under the same deadline as `route`; a panic or a
    /// timeout counts as [`Review::Accept`]. Accepts by default.
    ///
    /// ```
    /// # use signalbox_sdk::*;
    /// struct CheapFirst;
    /// impl Policy for CheapFirst {
    ///     type Config = NoConfig;
    ///     const REVIEWS_ANSWERS: bool = true;
    ///     fn activate(_: NoConfig, _: &[Target]) -> Result<Self, String> {
    ///         Ok(CheapFirst)
    ///     }
    ///     fn route(&self, _: &Request<'_>, _: &Snapshot<'_>) -> Decision {
    ///         Decision::route([0, 1], "cheap first, strong on escalation")
    ///     }
    ///     fn review(&self, answer: &Answer<'_>) -> Review {
    ///         if answer.finish_reason == Some(FinishReason::Length) {
    ///             return Review::escalate("cut short");
    ///         }
    ///         Review::Accept
    ///     }
    /// }
    /// let harness = testing::Harness::<CheapFirst>::new(
    ///     "{}",
    ///     vec![Target::new("cheap", "m"), Target::new("strong", "m")],
    /// ).unwrap();
    /// let cut = AnswerBuilder::new("The answer is").finish(FinishReason::Length).build();
    /// assert_eq!(harness.review(&cut), Review::escalate("cut short"));
    /// ```
    fn review(&self, answer: &Answer<'_>) -> Review {
        let _ = answer;
        Review::Accept
    }
}

/// The configuration of a policy that takes none: accepts `{}` and rejects any key.
#[derive(Debug, Clone, Copy, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoConfig {}

/// Decodes a JSON configuration, naming the path of the offending key on error.
///
/// An empty string counts as `{}`.
///
/// ```
/// #[derive(Debug, serde::Deserialize)]
/// struct Config { threshold: f64 }
/// let err = signalbox_sdk::parse_config::<Config>(r#"{"threshold": "high"}"#).unwrap_err();
/// assert!(err.contains("threshold"), "{err}");
/// ```
pub fn parse_config<C: DeserializeOwned>(json: &str) -> Result<C, String> {
    let json = if json.trim().is_empty() { "{}" } else { json };
    let mut de = serde_json::Deserializer::from_str(json);
    let config: C = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            format!("invalid config: {}", e.inner())
        } else {
            format!("invalid config at `{path}`: {}", e.inner())
        }
    })?;
    de.end().map_err(|e| format!("invalid config: {e}"))?;
    Ok(config)
}

//! The cascade routing policy: the cheapest target first, a stronger one only when its
//! answer fails a check.
//!
//! **When to use it**: most requests are easy enough for a small, cheap model, some
//! are not, and which ones cannot be told from the prompt — but can be told from the
//! answer: it is cut short, empty, a refusal, not the JSON the client asked for, given
//! with low confidence, or judged wrong by a verifier model. Use cost-quality instead
//! when the prompt tells (code, maths, long inputs): it pays for one answer, where a
//! cascade pays for every answer it throws away.
//!
//! **Routing**: every chat request is planned over the whole `ladder` (target ids,
//! cheapest first; default: every target by input plus output price per million
//! tokens, ties in activation order), available targets (circuit closed, not
//! rate-limited) before the others, each group in ladder order. Reason `cascade`. The
//! model the client names is not used: bind the cascade to a tenant whose targets can
//! all answer its requests. Embeddings requests (never reviewed) go to the first
//! available target of the ladder alone, reason `cascade:embeddings`.
//!
//! **Review**: the gateway shows the policy each answer before the client sees it
//! ([`Policy::review`]). The checks run cheapest first, and the first that fails
//! escalates with its reason:
//!
//! | check (`checks.…`) | escalates when | reason |
//! | --- | --- | --- |
//! | `finish_length` | the model hit the output limit | `cut-short` |
//! | `min_chars` | the trimmed text is shorter (never for an answer that calls tools) | `too-short` |
//! | `refusal_markers` | the trimmed, lower-cased text starts with a marker | `refusal` |
//! | `json` | the client asked for JSON and the text does not parse, or misses its schema ([`schema`] lists the keywords checked) | `invalid-json`, `schema:<why>` |
//! | `min_mean_logprob` | the mean token log-probability is lower (an answer without log-probabilities passes) | `low-confidence:<mean, 2 decimals>` |
//! | `verifier` | asked last, the verifier's reply starts with "no" | `verifier-no` |
//!
//! The verifier is asked (`Review::Verify`) only about an answer every other check
//! passed; the gateway sends it the filled prompt and calls `review` again with the
//! reply, which is judged alone. When the verifier fails, the gateway accepts the
//! answer by itself. An early check of a stream (its first tokens) runs the refusal
//! check only; answers that call tools skip `min_chars`, `json` and the verifier.
//!
//! An escalation goes to the next target of the plan, unless that one stands lower on
//! the ladder than the target that answered (an unavailable cheaper target at the end
//! of the plan): then to the first higher one still in the plan. When none is left
//! the answer is accepted without a check being run, so the last rung costs nothing
//! to review.
//!
//! **What it costs**: every escalated answer is paid for (its tokens are charged,
//! apart from the accepted answer's); a verifier call is one more small request per
//! answer; the JSON and verifier checks need the whole answer, so a streamed request
//! is reviewed only when its binding holds the stream (see "Cascades" in the README);
//! `min_mean_logprob` needs log-probabilities from the upstream. Reviewing itself
//! reads the answer's text once, and only when a text check is on.
//!
//! Config (see `examples/policies/cascade.json`; every key optional):
//!
//! ```json
//! { "ladder": ["groq-llama-8b", "openai-gpt-4o-mini", "openai-gpt-4o"],
//!   "checks": { "json": true, "min_chars": 1, "finish_length": true,
//!               "refusal_markers": ["i don't know", "i'm sorry, but"],
//!               "min_mean_logprob": -0.7,
//!               "verifier": { "target": "openai-gpt-4o-mini", "max_tokens": 8 } } }
//! ```
//!
//! Refused at activation, naming the key: an empty, unknown or repeated `ladder` id;
//! an empty refusal marker; a `min_mean_logprob` above 0 or not finite; an unknown
//! verifier target, a verifier `max_tokens` of 0, a verifier `prompt` without
//! `{answer}`.

pub mod checks;
pub mod config;
pub mod schema;

use checks::{Failure, Reading, Verifier};
use config::Settings;
use signalbox_sdk::*;

/// See the crate documentation.
pub struct Cascade {
    /// Target indices, weakest first.
    ladder: Vec<u32>,
    /// By target index: its position on the ladder (`None`: not on it).
    rungs: Vec<Option<u32>>,
    checks: checks::Checks,
}

impl Policy for Cascade {
    type Config = config::Config;
    // Stateless: it judges each answer on its own.
    const OBSERVES_OUTCOMES: bool = false;
    const REVIEWS_ANSWERS: bool = true;

    fn activate(config: config::Config, targets: &[Target]) -> Result<Self, String> {
        let Settings { ladder, checks } = Settings::new(config, targets)?;
        let mut rungs = vec![None; targets.len()];
        for (rung, &target) in (0u32..).zip(&ladder) {
            rungs[target as usize] = Some(rung);
        }
        Ok(Cascade {
            ladder,
            rungs,
            checks,
        })
    }

    fn route(&self, request: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        let Some(&cheapest) = self.ladder.first() else {
            return Decision::reject(503, "the cascade has no target to route to");
        };
        let available = |i: &u32| {
            snapshot
                .get(*i as usize)
                .is_some_and(|c| c.signals.available())
        };
        if request.endpoint == Endpoint::Embedding {
            let first = self.ladder.iter().copied().find(available);
            return Decision::route([first.unwrap_or(cheapest)], "cascade:embeddings");
        }
        let (mut plan, unavailable): (Vec<u32>, Vec<u32>) =
            self.ladder.iter().partition(|i| available(i));
        plan.extend(unavailable);
        Decision::route(plan, "cascade")
    }

    fn review(&self, answer: &Answer<'_>) -> Review {
        // Nowhere better to go: accept before reading anything.
        let Some(next) = self.escalation_target(answer) else {
            return Review::Accept;
        };
        let escalate = |failure: Failure| {
            let reason = failure.reason();
            if answer.remaining.first() == Some(&next) {
                Review::escalate(reason)
            } else {
                Review::escalate_to(next, reason)
            }
        };
        // The second call, after this policy's own `Verify`: judge the reply alone.
        if let Some(reply) = &answer.verification {
            return match Verifier::says_no(reply) {
                true => escalate(Failure::VerifierNo),
                false => Review::Accept,
            };
        }
        let reading = Reading::new(answer);
        if let Some(failure) = self.checks.first_failure(&reading) {
            return escalate(failure);
        }
        match self.checks.verifier_for(answer) {
            Some(verifier) => {
                let question = match verifier.prompt.mentions_question() {
                    true => answer.question().unwrap_or_default(),
                    false => String::new(),
                };
                Review::verify(
                    verifier.target,
                    verifier.prompt.fill(&question, reading.text()),
                    verifier.max_tokens,
                )
            }
            None => Review::Accept,
        }
    }
}

impl Cascade {
    /// The ladder: target indices, weakest first.
    pub fn ladder(&self) -> &[u32] {
        &self.ladder
    }

    /// Where an answer that fails a check goes: the first target still in the plan
    /// that stands higher on the ladder than the one that answered; `None` when there
    /// is none, and escalating could only buy a weaker answer.
    fn escalation_target(&self, answer: &Answer<'_>) -> Option<u32> {
        let rung = |target: u32| self.rungs.get(target as usize).copied().flatten();
        let answered = rung(answer.target);
        answer
            .remaining
            .iter()
            .copied()
            .find(|&next| match (answered, rung(next)) {
                (Some(answered), Some(next)) => next > answered,
                // An answer from off the ladder: anything on the plan may do better.
                (None, _) => true,
                (Some(_), None) => false,
            })
    }
}

export_policy!(Cascade);

#[cfg(test)]
mod tests;

//! Contract 0.1.0, frozen (`wit/archive/0.1.0`): kept so that components built for it
//! run unchanged.

super::bindings::contract_bindings!("../wit/archive/0.1.0");

use crate::policy::Outcome;

/// The 0.1.0 outcome of `outcome`, if that version can express it. It has no way to
/// say "no target answered", so a request whose every attempt failed is reported as
/// the last target tried failing (as its contract text promised); a request no target
/// was tried for (rejected, or nothing could be tried) has no 0.1.0 outcome.
pub(super) fn outcome(o: &Outcome) -> Option<types::Outcome> {
    let (target, fallback_depth) = match o.target {
        Some(target) => (target, o.failed_targets.len()),
        None => {
            let (&last, before) = o.failed_targets.split_last()?;
            (last, before.len())
        }
    };
    Some(types::Outcome {
        request_id: o.request_id.clone(),
        target,
        status: o.status,
        latency_ms: o.latency_ms,
        ttft_ms: o.ttft_ms,
        input_tokens: o.input_tokens,
        output_tokens: o.output_tokens,
        cost_usd: o.cost_usd,
        fallback_depth: u32::try_from(fallback_depth).unwrap_or(u32::MAX),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::Ending;

    fn outcome(ending: Ending, target: Option<u32>, failed: &[u32]) -> Outcome {
        Outcome {
            request_id: "r".into(),
            ending,
            target,
            failed_targets: failed.to_vec(),
            status: 200,
            latency_ms: 1,
            ttft_ms: None,
            input_tokens: 1,
            output_tokens: 1,
            cost_usd: 0.0,
            escalated_targets: Vec::new(),
        }
    }

    #[test]
    fn an_answer_after_fallbacks_keeps_its_depth() {
        let o = super::outcome(&outcome(Ending::Completed, Some(2), &[0, 1])).unwrap();
        assert_eq!((o.target, o.fallback_depth), (2, 2));
    }

    #[test]
    fn a_total_failure_is_the_last_target_tried_failing() {
        let o = super::outcome(&outcome(Ending::Failed, None, &[3, 1])).unwrap();
        assert_eq!((o.target, o.fallback_depth), (1, 1));
    }

    #[test]
    fn without_any_target_tried_there_is_nothing_to_say() {
        assert!(super::outcome(&outcome(Ending::Rejected, None, &[])).is_none());
    }
}

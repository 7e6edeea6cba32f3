//! Contract 0.2.0 (`wit/policy.wit`), the newest.

super::bindings::contract_bindings!("../wit");

use crate::policy::{Ending, Outcome};

/// The 0.2.0 outcome record.
pub(super) fn outcome(o: &Outcome) -> types::Outcome {
    types::Outcome {
        request_id: o.request_id.clone(),
        ending: match o.ending {
            Ending::Completed => types::Ending::Completed,
            Ending::Refused => types::Ending::Refused,
            Ending::Rejected => types::Ending::Rejected,
            Ending::Failed => types::Ending::Failed,
            Ending::Interrupted => types::Ending::Interrupted,
            Ending::Abandoned => types::Ending::Abandoned,
        },
        target: o.target,
        failed_targets: o.failed_targets.clone(),
        status: o.status,
        latency_ms: o.latency_ms,
        ttft_ms: o.ttft_ms,
        input_tokens: o.input_tokens,
        output_tokens: o.output_tokens,
        cost_usd: o.cost_usd,
    }
}

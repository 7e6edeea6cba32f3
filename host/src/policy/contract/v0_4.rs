//! Contract 0.4.0 (`wit/policy.wit`), the newest: 0.3.0, `review` of answers, and
//! the escalated targets in `outcome`.

use crate::policy::review::{AnswerBodyView, AnswerView, FinishReason, Verdict};

super::bindings::contract_bindings!("../wit", with {
    "signalbox:policy/types.answer-body": crate::policy::review::AnswerBodyView,
}, {
    fn state_add(&mut self, key: String, deltas: Vec<f64>) -> Result<Vec<f64>, types::StateError> {
        use crate::policy::state::AddError;
        self.tenant.state.add(&key, &deltas).map_err(|e| match e {
            AddError::NotNumeric => types::StateError::NotNumeric,
            AddError::State(e) => state_error(e),
        })
    }
});

impl types::HostAnswerBody for StoreData {
    fn text(&mut self, this: Resource<AnswerBodyView>) -> String {
        self.table
            .get(&this)
            .map(|b| b.0.text.to_string())
            .unwrap_or_default()
    }

    fn logprobs(&mut self, this: Resource<AnswerBodyView>) -> Vec<f32> {
        self.table
            .get(&this)
            .map(|b| b.0.logprobs.to_vec())
            .unwrap_or_default()
    }

    fn response_schema(&mut self, this: Resource<AnswerBodyView>) -> Option<String> {
        self.table
            .get(&this)
            .ok()
            .and_then(|b| b.0.schema.as_deref().map(str::to_owned))
    }

    fn question(&mut self, this: Resource<AnswerBodyView>) -> Option<String> {
        self.table
            .get(&this)
            .ok()
            .and_then(|b| b.0.question.as_deref().map(str::to_owned))
    }

    fn drop(&mut self, this: Resource<AnswerBodyView>) -> wasmtime::Result<()> {
        // As for `messages`: the host owns the handle and deletes it after the call.
        let _ = self.table.delete(this);
        Ok(())
    }
}

// The outcome record: 0.2.0's and the escalated targets.
super::bindings::outcome_since_0_2!(o => {
    escalated_targets: o.escalated_targets.clone(),
});

/// The answer record (the body stays behind its resource).
pub(super) fn answer(a: &AnswerView) -> types::Answer {
    let clamp = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
    types::Answer {
        request_id: a.request_id.clone(),
        target: a.target,
        attempt: a.attempt,
        remaining: a.remaining.clone(),
        finish_reason: a.finish_reason.map(|r| match r {
            FinishReason::Stop => types::FinishReason::Stop,
            FinishReason::Length => types::FinishReason::Length,
            FinishReason::ToolCalls => types::FinishReason::ToolCalls,
            FinishReason::ContentFilter => types::FinishReason::ContentFilter,
            FinishReason::Other => types::FinishReason::Other,
        }),
        tool_calls: a
            .tool_calls
            .iter()
            .map(|c| types::ToolCall {
                name: c.name.clone(),
                arguments: c.arguments.clone(),
            })
            .collect(),
        input_tokens: a.input_tokens,
        output_tokens: a.output_tokens,
        cost_usd: a.cost_usd,
        spent_usd: a.spent_usd,
        text_len: clamp(a.body.text.len()),
        logprob_count: clamp(a.body.logprobs.len()),
        wants_json: a.wants_json,
        complete: a.complete,
        verification: a.verification.clone(),
    }
}

/// A review's answer, in the host's terms (checked by the caller).
pub(super) fn verdict(v: types::Verdict) -> Verdict {
    match v {
        types::Verdict::Accept => Verdict::Accept,
        types::Verdict::Escalate(e) => Verdict::Escalate {
            reason: {
                let mut reason = e.reason;
                signalbox_contract::truncate_at_char(&mut reason, signalbox_contract::MAX_REASON);
                reason
            },
            target: e.target,
        },
        types::Verdict::Verify(v) => Verdict::Verify {
            target: v.target,
            prompt: v.prompt,
            max_tokens: v.max_tokens,
        },
    }
}

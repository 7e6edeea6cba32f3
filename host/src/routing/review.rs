//! The policy's review of an answer before any of it reaches the client (contract
//! 0.4.0): the answer is read out of the upstream's JSON, shown to the policy, and the
//! policy accepts it, escalates to another target, or first asks a verifier target
//! about it. A review that traps or runs out of time accepts (and counts towards the
//! version's quarantine, as a failed route call does); a verifier that fails accepts.
//!
//! Every attempt is paid for: an escalated answer and a verifier call are charged to
//! the request ([`Routed::charge`]), whichever answer the client gets.

use super::attempt::{self, Outcome};
use super::end::{Charged, Routed};
use crate::gateway::Target;
use crate::ledger::Charge;
use crate::openai::JsonBody;
use crate::policy::{AnswerBody, AnswerView, FinishReason, Role, RouteRequest, ToolCall, Verdict};
use crate::provider::Attempt;
use crate::signals::AttemptResult;
use crate::usage::Usage;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::value::RawValue;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Instant;

/// What the request asked of its answer's form, read from its body once per request
/// (only for a policy that reviews).
pub(super) struct Asked {
    /// `response_format` of `json_object` or `json_schema`.
    wants_json: bool,
    /// The JSON Schema of `json_schema`, as JSON text.
    schema: Option<Arc<str>>,
    /// The last user message.
    question: Option<Arc<str>>,
}

impl Asked {
    pub fn read(body: &JsonBody, request: &RouteRequest) -> Asked {
        #[derive(Deserialize)]
        struct Format<'a> {
            #[serde(rename = "type", borrow)]
            kind: Option<&'a str>,
            #[serde(borrow)]
            json_schema: Option<JsonSchema<'a>>,
        }
        #[derive(Deserialize)]
        struct JsonSchema<'a> {
            #[serde(borrow)]
            schema: Option<&'a RawValue>,
        }
        let format = body
            .raw("response_format")
            .and_then(|raw| serde_json::from_str::<Format<'_>>(raw).ok());
        let wants_json = format
            .as_ref()
            .and_then(|f| f.kind)
            .is_some_and(|k| k == "json_object" || k == "json_schema");
        let schema = format
            .and_then(|f| f.json_schema)
            .and_then(|s| s.schema)
            .map(|raw| Arc::from(raw.get()));
        let question = request
            .messages()
            .iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| Arc::from(&*m.text));
        Asked {
            wants_json,
            schema,
            question,
        }
    }
}

/// The answer an attempt brought back, for review.
pub(super) struct InHand<'a> {
    pub target: &'a Target,
    /// Its index in the policy's list.
    pub position: u32,
    /// A JSON answer's body, or a held stream's events.
    pub body: &'a Bytes,
    pub usage: Option<Usage>,
    /// `None` for a JSON answer; for a held stream, whether it is complete.
    pub streamed: Option<bool>,
}

/// What the review decided.
pub(super) enum Reviewed {
    /// Send the answer.
    Accept,
    /// Do not send it; ask this target (the policy's index) or the next of the plan.
    Escalate { reason: String, target: Option<u32> },
}

/// Shows `answer` to the policy (and a verifier, if it asks) and says what to do;
/// `remaining` are the plan's targets still to try.
pub(super) async fn review(
    routed: &mut Routed,
    asked: &Asked,
    answer: &InHand<'_>,
    remaining: &VecDeque<u32>,
) -> Reviewed {
    let Some(plan) = routed.plan.as_ref() else {
        return Reviewed::Accept;
    };
    let deployment = plan.deployment.clone();
    let usage = answer
        .usage
        .unwrap_or(Usage::estimated(routed.input_estimate, 0));
    let cost = answer.target.cost_usd(&usage);
    let mut view = match answer.streamed {
        None => read_answer(answer.body, asked),
        Some(complete) => {
            let mut view = read_stream(answer.body, asked);
            view.complete = complete;
            view
        }
    };
    view.request_id.clone_from(&routed.request_id);
    view.target = answer.position;
    // Each refused answer before this one was an escalation.
    view.attempt = u32::try_from(routed.escalated.len()).unwrap_or(u32::MAX);
    view.remaining = remaining.iter().copied().collect();
    view.input_tokens = usage.input;
    view.output_tokens = usage.output;
    view.cost_usd = cost;
    let mut verified = false;
    loop {
        view.spent_usd = routed.spent_usd() + cost;
        let (verdict, streak) = deployment.review(&view);
        if streak > 0 {
            super::decide::watch_failures(&routed.gateway, &routed.tenant, &deployment, streak);
        }
        let verdict = match verdict {
            Ok(verdict) => verdict,
            Err(e) => {
                tracing::warn!(request_id = %routed.request_id, policy = %deployment.label, error = %e, "policy review failed; the answer is accepted");
                routed.note_review("accept", format!("review failed ({})", e.kind()));
                return Reviewed::Accept;
            }
        };
        routed
            .gateway
            .metrics
            .review(&routed.tenant.name(), verdict.kind());
        match verdict {
            Verdict::Accept => return Reviewed::Accept,
            Verdict::Escalate { reason, target } => return Reviewed::Escalate { reason, target },
            Verdict::Verify { .. } if verified => {
                routed.note_review("accept", "a second verify for one answer".to_owned());
                return Reviewed::Accept;
            }
            Verdict::Verify {
                target,
                prompt,
                max_tokens,
            } => {
                verified = true;
                match verify(routed, target, &prompt, max_tokens).await {
                    Some(reply) => view.verification = Some(reply),
                    None => {
                        routed.note_review("accept", "the verifier failed".to_owned());
                        return Reviewed::Accept;
                    }
                }
            }
        }
    }
}

/// Asks verifier `position` the policy's question; charges the call; its reply's text,
/// or `None` when it failed.
async fn verify(
    routed: &mut Routed,
    position: u32,
    prompt: &str,
    max_tokens: u32,
) -> Option<String> {
    let gateway = routed.gateway.clone();
    let global = *routed.tenant.targets.get(position as usize)?;
    let target = gateway.targets.get(global)?;
    let body = serde_json::json!({
        "model": target.config.model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "stream": false,
    });
    let body = JsonBody::parse(Bytes::from(serde_json::to_vec(&body).ok()?)).ok()?;
    let attempt = Attempt::chat(&body, false, false);
    let started = Instant::now();
    let _in_flight = gateway.signals.start(global);
    let outcome = attempt::run(target, attempt).await;
    match outcome {
        Outcome::Complete { parts, body, usage } if parts.status.is_success() => {
            gateway.signals.record(
                global,
                AttemptResult::Success {
                    latency: started.elapsed(),
                    ttft: None,
                },
            );
            let tokens = usage.unwrap_or(Usage::estimated(
                signalbox_contract::estimate_tokens(prompt),
                0,
            ));
            routed.charge(Charged {
                target: global,
                charge: Charge::Verifier,
                reason: "verifier".to_owned(),
                tokens,
                latency: started.elapsed(),
            });
            Some(read_answer(&body, &Asked::none()).body.text.to_string())
        }
        Outcome::Retry { result, why, .. } => {
            gateway.signals.record(global, result);
            tracing::info!(request_id = %routed.request_id, target = %target.config.id, why, "verifier failed");
            None
        }
        _ => None,
    }
}

impl Asked {
    fn none() -> Asked {
        Asked {
            wants_json: false,
            schema: None,
            question: None,
        }
    }
}

/// What a chat completion says: the first choice's text, finish reason, tool calls and
/// token log-probabilities (the rest of the view is filled by the caller).
fn read_answer(body: &[u8], asked: &Asked) -> AnswerView {
    #[derive(Deserialize, Default)]
    struct Completion {
        #[serde(default)]
        choices: Vec<Choice>,
    }
    #[derive(Deserialize)]
    struct Choice {
        message: Option<Message>,
        finish_reason: Option<String>,
        logprobs: Option<Logprobs>,
    }
    #[derive(Deserialize)]
    struct Message {
        content: Option<String>,
        #[serde(default)]
        tool_calls: Vec<Call>,
    }
    #[derive(Deserialize)]
    struct Call {
        function: Function,
    }
    #[derive(Deserialize)]
    struct Function {
        #[serde(default)]
        name: String,
        #[serde(default)]
        arguments: String,
    }
    #[derive(Deserialize)]
    struct Logprobs {
        #[serde(default)]
        content: Option<Vec<TokenLogprob>>,
    }
    #[derive(Deserialize)]
    struct TokenLogprob {
        logprob: f32,
    }
    let completion: Completion = serde_json::from_slice(body).unwrap_or_default();
    let choice = completion.choices.into_iter().next();
    let (message, finish_reason, logprobs) = match choice {
        Some(c) => (c.message, c.finish_reason, c.logprobs),
        None => (None, None, None),
    };
    let (text, tool_calls) = match message {
        Some(m) => (
            m.content.unwrap_or_default(),
            m.tool_calls
                .into_iter()
                .map(|c| ToolCall {
                    name: c.function.name,
                    arguments: c.function.arguments,
                })
                .collect(),
        ),
        None => (String::new(), Vec::new()),
    };
    let logprobs: Vec<f32> = logprobs
        .and_then(|l| l.content)
        .map(|tokens| tokens.into_iter().map(|t| t.logprob).collect())
        .unwrap_or_default();
    AnswerView {
        request_id: String::new(),
        target: 0,
        attempt: 0,
        remaining: Vec::new(),
        finish_reason: finish_reason.as_deref().map(FinishReason::parse),
        tool_calls,
        input_tokens: 0,
        output_tokens: 0,
        cost_usd: 0.0,
        spent_usd: 0.0,
        wants_json: asked.wants_json,
        complete: true,
        verification: None,
        body: AnswerBody {
            text: Arc::from(text),
            logprobs: Arc::from(logprobs),
            schema: asked.schema.clone(),
            question: asked.question.clone(),
        },
    }
}

/// What a held stream's chunks say, put together: the first choice's text, finish
/// reason, tool calls (their fragments joined) and token log-probabilities.
fn read_stream(events: &[u8], asked: &Asked) -> AnswerView {
    #[derive(Deserialize)]
    struct Chunk {
        #[serde(default)]
        choices: Vec<Choice>,
    }
    #[derive(Deserialize)]
    struct Choice {
        #[serde(default)]
        index: u32,
        delta: Option<Delta>,
        finish_reason: Option<String>,
        logprobs: Option<Logprobs>,
    }
    #[derive(Deserialize)]
    struct Delta {
        content: Option<String>,
        #[serde(default)]
        tool_calls: Vec<CallPart>,
    }
    #[derive(Deserialize)]
    struct CallPart {
        #[serde(default)]
        index: usize,
        function: Option<FunctionPart>,
    }
    #[derive(Deserialize)]
    struct FunctionPart {
        name: Option<String>,
        arguments: Option<String>,
    }
    #[derive(Deserialize)]
    struct Logprobs {
        content: Option<Vec<TokenLogprob>>,
    }
    #[derive(Deserialize)]
    struct TokenLogprob {
        logprob: f32,
    }
    let mut framer = crate::provider::sse::EventFramer::default();
    framer.push(events);
    let (mut text, mut finish, mut calls, mut logprobs) =
        (String::new(), None, Vec::<ToolCall>::new(), Vec::new());
    while let Ok(Some(event)) = framer.next_event() {
        let fields = event.fields();
        let Some(data) = fields.data.as_deref() else {
            continue;
        };
        let Ok(chunk) = serde_json::from_slice::<Chunk>(data) else {
            continue; // `[DONE]`, and usage-only chunks
        };
        for choice in chunk.choices.into_iter().filter(|c| c.index == 0) {
            if let Some(delta) = choice.delta {
                text.push_str(delta.content.as_deref().unwrap_or_default());
                for part in delta.tool_calls {
                    if calls.len() <= part.index {
                        calls.resize_with(part.index + 1, || ToolCall {
                            name: String::new(),
                            arguments: String::new(),
                        });
                    }
                    if let Some(f) = part.function {
                        let call = &mut calls[part.index];
                        call.name.push_str(f.name.as_deref().unwrap_or_default());
                        call.arguments
                            .push_str(f.arguments.as_deref().unwrap_or_default());
                    }
                }
            }
            if let Some(reason) = choice.finish_reason {
                finish = Some(FinishReason::parse(&reason));
            }
            if let Some(tokens) = choice.logprobs.and_then(|l| l.content) {
                logprobs.extend(tokens.into_iter().map(|t| t.logprob));
            }
        }
    }
    let mut view = read_answer(b"", asked);
    view.finish_reason = finish;
    view.tool_calls = calls;
    view.body.text = Arc::from(text);
    view.body.logprobs = Arc::from(logprobs);
    view
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_completion_is_read_with_its_tool_calls_and_logprobs() {
        let body = br#"{"id":"x","choices":[{"index":0,"message":{"role":"assistant","content":"{\"a\":1}",
            "tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
            "finish_reason":"length","logprobs":{"content":[{"token":"{","logprob":-0.5,"top_logprobs":[]},
            {"token":"a","logprob":-1.5}]}}],"usage":{"prompt_tokens":3,"completion_tokens":2}}"#;
        let asked = Asked {
            wants_json: true,
            schema: Some(Arc::from("{}")),
            question: Some(Arc::from("q")),
        };
        let view = read_answer(body, &asked);
        assert_eq!(&*view.body.text, "{\"a\":1}");
        assert_eq!(view.finish_reason, Some(FinishReason::Length));
        assert_eq!(view.tool_calls.len(), 1);
        assert_eq!(view.tool_calls[0].name, "f");
        assert_eq!(&*view.body.logprobs, &[-0.5, -1.5]);
        assert!(view.wants_json);
        assert_eq!(view.body.question.as_deref(), Some("q"));
    }

    #[test]
    fn a_held_stream_is_put_together() {
        let events = concat!(
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"{\\\"a\\\"\"},\"logprobs\":{\"content\":[{\"token\":\"x\",\"logprob\":-0.5}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\": 1}\",\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"f\",\"arguments\":\"{\\\"x\"}}]}}]}\n\n",
            "data: {\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\":1}\"}}]},\"finish_reason\":\"stop\"}]}\n\n",
            "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2}}\n\n",
            "data: [DONE]\n\n",
        );
        let view = read_stream(events.as_bytes(), &Asked::none());
        assert_eq!(&*view.body.text, "{\"a\": 1}");
        assert_eq!(view.finish_reason, Some(FinishReason::Stop));
        assert_eq!(view.tool_calls[0].name, "f");
        assert_eq!(view.tool_calls[0].arguments, "{\"x\":1}");
        assert_eq!(&*view.body.logprobs, &[-0.5]);
    }

    #[test]
    fn what_the_client_asked_for_is_read_from_its_body() {
        let request = RouteRequest::new(
            crate::policy::RequestFields {
                id: "r".into(),
                endpoint: crate::policy::Endpoint::Chat,
                model: "m".into(),
                input_tokens: 1,
                max_output_tokens: None,
                stream: false,
                has_tools: false,
                metadata: Vec::new(),
            },
            vec![
                crate::policy::ChatMessage::new(Role::User, "first"),
                crate::policy::ChatMessage::new(Role::Assistant, "a"),
                crate::policy::ChatMessage::new(Role::User, "second"),
            ],
        );
        let body =
            |text: &'static str| JsonBody::parse(Bytes::from_static(text.as_bytes())).unwrap();
        let asked = Asked::read(
            &body(
                r#"{"model":"m","response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}}}"#,
            ),
            &request,
        );
        assert!(asked.wants_json);
        assert_eq!(asked.schema.as_deref(), Some(r#"{"type":"object"}"#));
        assert_eq!(asked.question.as_deref(), Some("second"));
        let plain = Asked::read(&body(r#"{"model":"m"}"#), &request);
        assert!(!plain.wants_json && plain.schema.is_none());
        // A format that is not what it should be is a request without one.
        assert!(!Asked::read(&body(r#"{"response_format":[1]}"#), &request).wants_json);
    }
}

//! The OpenTelemetry GenAI semantic conventions on the gateway's spans, so a
//! collector's LLM views (token usage, models, finish reasons) read Signalbox's
//! traces like any instrumented client's.
//!
//! The spans declare the `gen_ai.*` fields empty and record them as they become
//! known; what is recorded is metadata only (names, counts, settings, reasons),
//! never a prompt or an answer.

use crate::config::ProviderKind;
use crate::policy::Endpoint;
use crate::protocol::Protocol;

/// `gen_ai.operation.name` of a chat completion.
pub(crate) const OPERATION_CHAT: &str = "chat";
/// `gen_ai.operation.name` of an embeddings request.
pub(crate) const OPERATION_EMBEDDINGS: &str = "embeddings";

/// `gen_ai.operation.name` of a request the policy sees.
pub(crate) fn operation_of(endpoint: Endpoint) -> &'static str {
    match endpoint {
        Endpoint::Chat => OPERATION_CHAT,
        Endpoint::Embedding => OPERATION_EMBEDDINGS,
    }
}

/// `gen_ai.provider.name` for a provider kind. An `openai` provider is any
/// OpenAI-compatible server; the convention asks for the instrumentation's best
/// knowledge, and the wire protocol is what the gateway knows. The simulated
/// provider is no vendor's: its name is namespaced as the convention asks of
/// custom values.
pub(crate) fn provider_name(kind: ProviderKind) -> &'static str {
    match kind {
        ProviderKind::Openai | ProviderKind::OpenaiResponses => "openai",
        ProviderKind::Anthropic => "anthropic",
        ProviderKind::Azure => "azure.ai.openai",
        ProviderKind::Simulated => "signalbox.simulated",
    }
}

/// Records `gen_ai.response.finish_reasons` on `span`. The convention makes it a
/// string array, which a `tracing` field cannot carry, so it goes straight to the
/// span's OpenTelemetry attributes (and nowhere without the `otlp` feature).
pub(crate) fn record_finish_reasons(span: &tracing::Span, reasons: &[String]) {
    if reasons.is_empty() {
        return;
    }
    #[cfg(feature = "otlp")]
    {
        use opentelemetry::{Array, StringValue, Value};
        use tracing_opentelemetry::OpenTelemetrySpanExt;
        let values: Vec<StringValue> = reasons.iter().map(|r| r.clone().into()).collect();
        span.set_attribute(
            "gen_ai.response.finish_reasons",
            Value::Array(Array::String(values)),
        );
    }
    #[cfg(not(feature = "otlp"))]
    let _ = span;
}

/// The `finish_reason` of every choice of a JSON chat answer (the `stop_reason` of a
/// Messages answer), in order. Read at the byte level like the answer's usage: an
/// unescaped `"finish_reason"` can only be a key, since quotes inside JSON strings are
/// escaped.
pub(crate) fn finish_reasons_of_json(body: &[u8], protocol: Protocol) -> Vec<String> {
    let key: &[u8] = match protocol {
        Protocol::Chat => b"\"finish_reason\"",
        Protocol::Messages => b"\"stop_reason\"",
        // A response's `status` key is also every output item's: none is read.
        Protocol::Responses => return Vec::new(),
    };
    let mut reasons = Vec::new();
    for at in memchr::memmem::find_iter(body, key) {
        let rest = &body[at + key.len()..];
        let Some(colon) = rest.iter().position(|b| !b.is_ascii_whitespace()) else {
            continue;
        };
        if rest[colon] != b':' {
            continue;
        }
        let value = serde_json::Deserializer::from_slice(&rest[colon + 1..])
            .into_iter::<Option<String>>()
            .next();
        if let Some(Ok(Some(reason))) = value {
            reasons.push(reason);
        }
    }
    reasons
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finish_reasons_are_read_from_keys_only() {
        let body = br#"{"choices":[{"index":0,"message":{"content":"say \"finish_reason\": \"x\""},"finish_reason":"stop"},{"index":1,"finish_reason" : "length"},{"finish_reason":null}]}"#;
        assert_eq!(
            finish_reasons_of_json(body, Protocol::Chat),
            ["stop", "length"]
        );
        assert!(finish_reasons_of_json(b"{\"data\":[]}", Protocol::Chat).is_empty());
        let message = br#"{"type":"message","stop_reason":"tool_use","stop_sequence":null}"#;
        assert_eq!(
            finish_reasons_of_json(message, Protocol::Messages),
            ["tool_use"]
        );
    }
}

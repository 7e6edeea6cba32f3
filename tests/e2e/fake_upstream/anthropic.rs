//! Answers in the Anthropic Messages wire format (JSON and SSE).

use super::body::Planned;
use super::handler::{is_stream, q};
use super::prompt_tokens;
use super::reply::{Content, Reply};
use serde_json::{Value, json};

pub(super) fn anthropic_messages(seq: usize, model: &str, req: &Value, reply: &Reply) -> Planned {
    let id = format!("msg_fake_{seq}");
    let tool_id = format!("toolu_fake_{seq}");
    let input_tokens = prompt_tokens(req);
    let pieces = reply.pieces();
    let output_tokens = pieces.len() as u64;
    let stop_reason = match reply.content {
        Content::Text(_) => "end_turn",
        Content::Tool { .. } => "tool_use",
    };

    if !is_stream(req) {
        let block = match &reply.content {
            Content::Text(parts) => json!({"type": "text", "text": parts.concat()}),
            Content::Tool { name, arguments } => json!({
                "type": "tool_use",
                "id": tool_id,
                "name": name,
                // Validated as a JSON object by Reply::tool_call.
                "input": serde_json::from_str::<Value>(arguments).unwrap_or_else(|_| json!({})),
            }),
        };
        return Planned::json(json!({
            "id": id,
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": stop_reason,
            "stop_sequence": null,
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens},
        }));
    }

    let event = |kind: &str, data: String| format!("event: {kind}\ndata: {data}\n\n");
    let (block, delta_kind, delta_field) = match &reply.content {
        Content::Text(_) => (
            r#"{"type":"text","text":""}"#.to_string(),
            "text_delta",
            "text",
        ),
        Content::Tool { name, .. } => (
            format!(
                r#"{{"type":"tool_use","id":{},"name":{},"input":{{}}}}"#,
                q(&tool_id),
                q(name)
            ),
            "input_json_delta",
            "partial_json",
        ),
    };
    let (id, model) = (q(&id), q(model));
    // Like the real API, message_start reports the input and one token of output so far.
    let message = format!(
        r#"{{"id":{id},"type":"message","role":"assistant","model":{model},"content":[],"stop_reason":null,"stop_sequence":null,"usage":{{"input_tokens":{input_tokens},"output_tokens":1}}}}"#
    );
    let head = vec![
        event(
            "message_start",
            format!(r#"{{"type":"message_start","message":{message}}}"#),
        ),
        event(
            "content_block_start",
            format!(r#"{{"type":"content_block_start","index":0,"content_block":{block}}}"#),
        ),
        event("ping", r#"{"type":"ping"}"#.to_string()),
    ];
    let deltas = pieces
        .iter()
        .map(|p| {
            event(
                "content_block_delta",
                format!(
                    r#"{{"type":"content_block_delta","index":0,"delta":{{"type":"{delta_kind}","{delta_field}":{}}}}}"#,
                    q(p)
                ),
            )
        })
        .collect();
    let tail = vec![
        event(
            "content_block_stop",
            r#"{"type":"content_block_stop","index":0}"#.to_string(),
        ),
        event(
            "message_delta",
            format!(
                r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop_reason}","stop_sequence":null}},"usage":{{"output_tokens":{output_tokens}}}}}"#
            ),
        ),
        event("message_stop", r#"{"type":"message_stop"}"#.to_string()),
    ];
    Planned::sse(head, deltas, tail)
}

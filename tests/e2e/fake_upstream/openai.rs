//! Answers in the OpenAI wire format: chat completions (JSON and SSE) and embeddings.

use super::body::Planned;
use super::handler::{is_stream, q};
use super::reply::{Content, Reply};
use super::{CREATED, prompt_tokens};
use serde_json::{Value, json};

// Stream frames are written with format! rather than serde_json so that keys come in the
// real servers' order and the bytes do not depend on serde_json's `preserve_order`.

pub(super) fn openai_chat(seq: usize, model: &str, req: &Value, reply: &Reply) -> Planned {
    let id = format!("chatcmpl-fake-{seq}");
    let prompt = prompt_tokens(req);
    let pieces = reply.pieces();
    let completion = pieces.len() as u64;
    let usage = json!({
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    });
    let call_id = format!("call_fake_{seq}");

    if !is_stream(req) {
        let (message, finish) = match &reply.content {
            Content::Text(parts) => (
                json!({"role": "assistant", "content": parts.concat()}),
                "stop",
            ),
            Content::Tool { name, arguments } => (
                json!({
                    "role": "assistant",
                    "content": null,
                    "tool_calls": [{
                        "id": call_id,
                        "type": "function",
                        "function": {"name": name, "arguments": arguments},
                    }],
                }),
                "tool_calls",
            ),
        };
        let logprobs = match (&reply.logprobs, &reply.content) {
            (Some(values), Content::Text(parts)) => json!({"content": parts
                .iter()
                .chain(std::iter::repeat(&String::new()))
                .zip(values)
                .map(|(token, logprob)| json!({"token": token, "logprob": logprob, "bytes": null, "top_logprobs": []}))
                .collect::<Vec<_>>()}),
            _ => Value::Null,
        };
        return Planned::json(json!({
            "id": id,
            "object": "chat.completion",
            "created": CREATED,
            "model": model,
            "choices": [{"index": 0, "message": message, "logprobs": logprobs, "finish_reason": finish}],
            "usage": usage,
        }));
    }

    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    // With include_usage the real API puts "usage":null on every chunk but the last.
    let usage_null = if include_usage {
        r#","usage":null"#
    } else {
        ""
    };
    let (id, model) = (q(&id), q(model));
    let prefix = format!(
        r#"{{"id":{id},"object":"chat.completion.chunk","created":{CREATED},"model":{model}"#
    );
    // `delta` is JSON text, `finish` too (`null` or a quoted reason).
    let chunk = |delta: &str, finish: &str| {
        let choice = format!(r#"{{"index":0,"delta":{delta},"finish_reason":{finish}}}"#);
        format!("data: {prefix},\"choices\":[{choice}]{usage_null}}}\n\n")
    };

    let mut head = vec![chunk(r#"{"role":"assistant","content":null}"#, "null")];
    let (deltas, finish): (Vec<String>, &str) = match &reply.content {
        Content::Text(_) => (
            pieces
                .iter()
                .map(|p| chunk(&format!(r#"{{"content":{}}}"#, q(p)), "null"))
                .collect(),
            "\"stop\"",
        ),
        Content::Tool { name, .. } => {
            let (call_id, name) = (q(&call_id), q(name));
            let call = format!(
                r#"{{"index":0,"id":{call_id},"type":"function","function":{{"name":{name},"arguments":""}}}}"#
            );
            head.push(chunk(&format!(r#"{{"tool_calls":[{call}]}}"#), "null"));
            (
                pieces
                    .iter()
                    .map(|p| {
                        let fragment =
                            format!(r#"{{"index":0,"function":{{"arguments":{}}}}}"#, q(p));
                        chunk(&format!(r#"{{"tool_calls":[{fragment}]}}"#), "null")
                    })
                    .collect(),
                "\"tool_calls\"",
            )
        }
    };
    let mut tail = vec![chunk("{}", finish)];
    if include_usage {
        tail.push(format!(
            "data: {prefix},\"choices\":[],\"usage\":{usage}}}\n\n"
        ));
    }
    tail.push("data: [DONE]\n\n".to_string());
    Planned::sse(head, deltas, tail)
}

pub(super) fn openai_embeddings(model: &str, req: &Value) -> Planned {
    // One embedding per input: a string, an array of strings, a token-id array, or an
    // array of token-id arrays.
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_number) => {
            vec![Value::Array(items.clone()).to_string()]
        }
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| i.as_str().map_or_else(|| i.to_string(), str::to_string))
            .collect(),
        _ => Vec::new(),
    };
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(index, input)| {
            let vector = embedding_of(input);
            let embedding = if base64 {
                // The real API's base64 form: little-endian f32s.
                let bytes: Vec<u8> = vector
                    .iter()
                    .flat_map(|x| (*x as f32).to_le_bytes())
                    .collect();
                json!(base64_encode(&bytes))
            } else {
                json!(vector)
            };
            json!({"object": "embedding", "index": index, "embedding": embedding})
        })
        .collect();
    let prompt = prompt_tokens(req);
    Planned::json(json!({
        "object": "list",
        "data": data,
        "model": model,
        "usage": {"prompt_tokens": prompt, "total_tokens": prompt},
    }))
}

/// Eight deterministic values in [-1, 1] derived from the input (FNV-1a per dimension),
/// so equal inputs get equal vectors and different inputs almost surely differ.
fn embedding_of(input: &str) -> Vec<f64> {
    (0u64..8)
        .map(|dim| {
            let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ dim;
            for b in input.bytes() {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
            (h % 2001) as f64 / 1000.0 - 1.0
        })
        .collect()
}

fn base64_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for group in bytes.chunks(3) {
        let b = [
            group[0],
            *group.get(1).unwrap_or(&0),
            *group.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= group.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

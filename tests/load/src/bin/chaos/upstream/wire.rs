//! The fake upstreams' side of the OpenAI wire: well-formed answers (a chat
//! completion, or its SSE events with the usage chunk when asked for), error bodies,
//! and the body type that lets an answer be cut or stalled part-way.

use bytes::Bytes;
use hyper::body::Frame;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::sync::mpsc;

/// How long a hang or a stall lasts: far beyond the gateway's timeouts (it gives up
/// first), yet bounded so the fake holds nothing forever.
pub const SILENCE: Duration = Duration::from_secs(12);
/// Between stream chunks, so streams are in flight when chaos strikes.
const CHUNK_INTERVAL: Duration = Duration::from_millis(15);

/// The well-formed answer to one request: its token counts and words.
pub struct Answer {
    id: String,
    model: String,
    prompt_tokens: u64,
    words: u64,
}

impl Answer {
    pub fn new(upstream: &str, seq: u64, request: &Value) -> Answer {
        Answer {
            id: format!("chatcmpl-{upstream}-{seq}"),
            model: request["model"].as_str().unwrap_or("m").to_owned(),
            prompt_tokens: 10 + seq % 7,
            words: 3 + seq % 5,
        }
    }

    fn usage(&self) -> Value {
        json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.words,
            "total_tokens": self.prompt_tokens + self.words,
        })
    }

    pub fn json(&self) -> Bytes {
        let text = vec!["word"; self.words as usize].join(" ");
        Bytes::from(
            json!({
                "id": self.id,
                "object": "chat.completion",
                "created": 1_700_000_000,
                "model": self.model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "logprobs": null, "finish_reason": "stop"}],
                "usage": self.usage(),
            })
            .to_string(),
        )
    }

    /// The SSE events: a role chunk, one chunk per word, the finish chunk, the usage
    /// chunk when asked for, `[DONE]`.
    pub fn stream(&self, include_usage: bool) -> Vec<Bytes> {
        let chunk = |delta: Value, finish: Value| {
            let mut chunk = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": self.model,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            });
            if include_usage {
                chunk["usage"] = Value::Null;
            }
            Bytes::from(format!("data: {chunk}\n\n"))
        };
        let mut events = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        for _ in 0..self.words {
            events.push(chunk(json!({"content": "word "}), Value::Null));
        }
        events.push(chunk(json!({}), json!("stop")));
        if include_usage {
            let last = json!({
                "id": self.id,
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": self.model,
                "choices": [],
                "usage": self.usage(),
            });
            events.push(Bytes::from(format!("data: {last}\n\n")));
        }
        events.push(Bytes::from_static(b"data: [DONE]\n\n"));
        events
    }
}

/// How a body ends after its pieces.
#[derive(Clone, Copy)]
pub enum End {
    Finish,
    /// An error: hyper closes the connection without finishing the message.
    Cut,
    /// Silence, then the cut.
    Stall,
}

pub fn error(status: u16, message: &str) -> hyper::Response<ChannelBody> {
    let body =
        json!({"error": {"message": message, "type": "server_error", "param": null, "code": null}});
    let body = Bytes::from(body.to_string());
    let len = body.len();
    respond(
        status,
        "application/json",
        vec![body],
        End::Finish,
        Some(len),
    )
}

pub fn respond(
    status: u16,
    content_type: &'static str,
    pieces: Vec<Bytes>,
    end: End,
    length: Option<usize>,
) -> hyper::Response<ChannelBody> {
    let (tx, rx) = mpsc::channel(4);
    let streamed = content_type == "text/event-stream";
    tokio::spawn(async move {
        for (i, piece) in pieces.into_iter().enumerate() {
            if streamed && i > 0 {
                tokio::time::sleep(CHUNK_INTERVAL).await;
            }
            if tx.send(Ok(piece)).await.is_err() {
                return;
            }
        }
        match end {
            End::Finish => {}
            End::Cut => {
                let _ = tx.send(Err(std::io::Error::other("cut on purpose"))).await;
            }
            End::Stall => {
                // Until the gateway gives up and closes (the send fails), or the bound.
                let _ = tokio::time::timeout(SILENCE, tx.closed()).await;
                let _ = tx
                    .send(Err(std::io::Error::other("stalled on purpose")))
                    .await;
            }
        }
    });
    let mut response = hyper::Response::new(ChannelBody(rx));
    *response.status_mut() =
        hyper::StatusCode::from_u16(status).unwrap_or(hyper::StatusCode::INTERNAL_SERVER_ERROR);
    let headers = response.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    if let Some(length) = length {
        headers.insert(hyper::header::CONTENT_LENGTH, length.into());
    }
    response
}

/// A body fed by the task that writes the answer.
pub struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|f| f.map(|r| r.map(Frame::data)))
    }
}

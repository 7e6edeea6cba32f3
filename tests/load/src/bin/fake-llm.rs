//! A fast fake LLM upstream for load tests: answers every chat completion at once, as
//! one JSON body or (when the request says `"stream":true`) as an SSE stream of
//! `--chunks` content chunks, `--interval-ms` apart. `POST /v1/messages` is answered
//! the same way in Anthropic's Messages format.
//!
//! `fake-llm --listen 127.0.0.1:9001 [--chunks 8] [--interval-ms 0]`

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Frame;
use std::convert::Infallible;
use std::time::Duration;

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = signalbox_load::arg("--listen", "127.0.0.1:9001")
        .parse()
        .map_err(|e| std::io::Error::other(format!("--listen: {e}")))?;
    let chunks: usize = signalbox_load::arg("--chunks", "8").parse().unwrap_or(8);
    let interval = Duration::from_millis(
        signalbox_load::arg("--interval-ms", "0")
            .parse()
            .unwrap_or(0),
    );
    signalbox_load::serve(
        addr,
        move |req: hyper::Request<hyper::body::Incoming>| async move {
            let wire = if req.uri().path().ends_with("/messages") {
                &MESSAGES
            } else {
                &CHAT
            };
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let stream = body.windows(13).any(|w| w == b"\"stream\":true");
            if !stream {
                return respond(
                    "application/json",
                    Full::new(Bytes::from_static(wire.whole)).boxed(),
                );
            }
            let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(16);
            tokio::spawn(async move {
                let mut frames = vec![Bytes::from_static(wire.head)];
                frames.extend((0..chunks).map(|_| Bytes::from_static(wire.chunk)));
                frames.extend(wire.tail.iter().map(|f| Bytes::from_static(f)));
                for (i, f) in frames.into_iter().enumerate() {
                    if i > 0 && !interval.is_zero() {
                        tokio::time::sleep(interval).await;
                    }
                    if tx.send(f).await.is_err() {
                        return;
                    }
                }
            });
            respond("text/event-stream", ChannelBody(rx).boxed())
        },
    )
    .await
}

fn respond(content_type: &'static str, body: Body) -> hyper::Response<Body> {
    let mut response = hyper::Response::new(body);
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(content_type),
    );
    response
}

/// The stream's frames, as the generating task sends them.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.0.poll_recv(cx).map(|f| f.map(|b| Ok(Frame::data(b))))
    }
}

/// One wire format's answers: whole, and a stream's opening, content chunk and end.
struct Wire {
    whole: &'static [u8],
    head: &'static [u8],
    chunk: &'static [u8],
    /// The frames after the content.
    tail: &'static [&'static [u8]],
}

const CHAT: Wire = Wire {
    whole: COMPLETION,
    head: ROLE,
    chunk: CHUNK,
    tail: &[FINISH, b"data: [DONE]\n\n"],
};

const MESSAGES: Wire = Wire {
    whole: br#"{"id":"msg_load","type":"message","role":"assistant","model":"claude","content":[{"type":"text","text":"Hello from the load-test upstream."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":12,"output_tokens":7}}"#,
    head: b"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_load\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,\"usage\":{\"input_tokens\":12,\"output_tokens\":1}}}\n\nevent: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
    chunk: b"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"word \"}}\n\n",
    tail: &[b"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\nevent: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":7}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"],
};

const COMPLETION: &[u8] = br#"{"id":"chatcmpl-load","object":"chat.completion","created":1700000000,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the load-test upstream."},"finish_reason":"stop","logprobs":null}],"usage":{"prompt_tokens":12,"completion_tokens":7,"total_tokens":19}}"#;
const ROLE: &[u8] = b"data: {\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n";
const CHUNK: &[u8] = b"data: {\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"word \"},\"finish_reason\":null}]}\n\n";
const FINISH: &[u8] = b"data: {\"id\":\"chatcmpl-load\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n";

//! An in-process model for demos and load tests: configurable time to first token,
//! output speed and error rate, answering in the OpenAI wire format. It also answers
//! embeddings: a deterministic unit vector per input text, so a quick start's
//! `/v1/embeddings` works offline (similar texts are not close: it is no model). Never used by the
//! tests of the HTTP path, which use real fake servers over TCP.

use super::{Attempt, AttemptKind, UpstreamBody, UpstreamError};
use crate::config::SimulatedSection;
use bytes::Bytes;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub(super) struct Simulated {
    config: SimulatedSection,
    /// For the error rate: a cheap deterministic sequence is random enough here.
    counter: AtomicU64,
}

const WORDS: &[&str] = &[
    "This",
    " is",
    " a",
    " simulated",
    " answer",
    " from",
    " Signalbox.",
    " It",
    " streams",
    " one",
    " word",
    " per",
    " token",
    " at",
    " the",
    " configured",
    " speed,",
    " so",
    " you",
    " can",
    " try",
    " routing",
    " without",
    " any",
    " network.",
];

impl Simulated {
    pub fn new(config: SimulatedSection) -> Self {
        Simulated {
            config,
            counter: AtomicU64::new(0),
        }
    }

    fn fails(&self) -> bool {
        if self.config.error_rate <= 0.0 {
            return false;
        }
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        // Golden-ratio sequence: evenly spread in [0, 1).
        let x = (n as f64 * 0.618_033_988_749_895).fract();
        x < self.config.error_rate
    }

    pub async fn send(
        &self,
        model: &str,
        attempt: Attempt<'_>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        tokio::time::sleep(Duration::from_millis(self.config.latency_ms)).await;
        if self.fails() {
            let body = json!({"error": {"message": "simulated failure", "type": "server_error", "param": null, "code": null}});
            return respond(500, "application/json", full(body.to_string()));
        }
        if attempt.kind == AttemptKind::Embeddings {
            let inputs = match attempt.body.get::<Value>("input") {
                Some(Ok(Value::Array(items))) => items,
                Some(Ok(one)) => vec![one],
                _ => Vec::new(),
            };
            let data: Vec<Value> = inputs
                .iter()
                .enumerate()
                .map(|(i, input)| {
                    let text = input
                        .as_str()
                        .map_or_else(|| input.to_string(), str::to_owned);
                    json!({"object": "embedding", "index": i, "embedding": embedding(&text)})
                })
                .collect();
            let tokens: usize = inputs.iter().map(|v| v.to_string().len() / 4 + 1).sum();
            let body = json!({
                "object": "list", "data": data, "model": model,
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
            });
            return respond(200, "application/json", full(body.to_string()));
        }
        let max = ["max_completion_tokens", "max_tokens"]
            .iter()
            .find_map(|k| attempt.body.get::<u64>(k).and_then(Result::ok))
            .unwrap_or(u64::MAX);
        let words: Vec<&'static str> = WORDS
            .iter()
            .copied()
            .take(usize::try_from(max).unwrap_or(usize::MAX).max(1))
            .collect();
        let prompt_tokens = attempt.body.raw("messages").map_or(1, |s| s.len() / 4 + 1);
        let usage = json!({
            "prompt_tokens": prompt_tokens,
            "completion_tokens": words.len(),
            "total_tokens": prompt_tokens + words.len(),
        });
        let per_token =
            Duration::from_secs_f64(1.0 / f64::from(self.config.tokens_per_second.max(1)));
        let id = format!(
            "chatcmpl-sim{}",
            self.counter.fetch_add(1, Ordering::Relaxed)
        );
        if !attempt.stream {
            tokio::time::sleep(per_token * u32::try_from(words.len()).unwrap_or(u32::MAX)).await;
            let body = json!({
                "id": id, "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": {"role": "assistant", "content": words.concat()},
                             "finish_reason": "stop", "logprobs": null}],
                "usage": usage,
            });
            return respond(200, "application/json", full(body.to_string()));
        }

        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, UpstreamError>>(4);
        let chunk = move |delta: Value, finish: Value| {
            json!({"id": id, "object": "chat.completion.chunk", "created": 0, "model": model,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": null}]})
        };
        let mut frames = vec![chunk(
            json!({"role": "assistant", "content": ""}),
            Value::Null,
        )];
        frames.extend(
            words
                .iter()
                .map(|w| chunk(json!({"content": w}), Value::Null)),
        );
        frames.push(chunk(json!({}), json!("stop")));
        let mut usage_frame = chunk(json!({}), Value::Null);
        usage_frame["choices"] = json!([]);
        usage_frame["usage"] = usage;
        let include_usage = attempt.include_usage;
        tokio::spawn(async move {
            for (i, frame) in frames.into_iter().enumerate() {
                if i > 0 {
                    tokio::time::sleep(per_token).await;
                }
                let text = Bytes::from(format!("data: {frame}\n\n"));
                // A closed channel means the client went away: stop generating.
                if tx.send(Ok(http_body::Frame::data(text))).await.is_err() {
                    return;
                }
            }
            if include_usage {
                let _ = tx
                    .send(Ok(http_body::Frame::data(Bytes::from(format!(
                        "data: {usage_frame}\n\n"
                    )))))
                    .await;
            }
            let _ = tx
                .send(Ok(http_body::Frame::data(Bytes::from_static(
                    b"data: [DONE]\n\n",
                ))))
                .await;
        });
        let stream = http_body_util::StreamBody::new(tokio_stream_from(rx));
        respond(200, "text/event-stream", stream.boxed())
    }
}

/// Dimensions of a simulated embedding.
pub const EMBEDDING_DIMENSIONS: usize = 64;

/// A unit vector that depends only on `text`: a SplitMix64 sequence seeded with the
/// text's FNV-1a hash (fixed here, so the same text embeds the same everywhere).
fn embedding(text: &str) -> Vec<f32> {
    let mut state = text.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    let mut next = || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let raw: Vec<f64> = (0..EMBEDDING_DIMENSIONS)
        .map(|_| (next() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect();
    let norm = raw
        .iter()
        .map(|x| x * x)
        .sum::<f64>()
        .sqrt()
        .max(f64::MIN_POSITIVE);
    raw.iter().map(|x| (x / norm) as f32).collect()
}

fn full(text: String) -> UpstreamBody {
    http_body_util::Full::new(Bytes::from(text))
        .map_err(|never| match never {})
        .boxed()
}

fn respond(
    status: u16,
    content_type: &str,
    body: UpstreamBody,
) -> Result<http::Response<UpstreamBody>, UpstreamError> {
    http::Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, content_type)
        .body(body)
        .map_err(|e| UpstreamError::Request(e.to_string()))
}

/// A receiver as a `Stream` of frames, without pulling in a stream-adapter crate.
fn tokio_stream_from<T>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + Sync + 'static
where
    T: Send + 'static,
{
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeddings_are_deterministic_unit_vectors() {
        let a = embedding("hello");
        assert_eq!(a.len(), EMBEDDING_DIMENSIONS);
        assert_eq!(a, embedding("hello"));
        assert_ne!(a, embedding("hello!"));
        let norm: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-4, "{norm}");
    }
}
